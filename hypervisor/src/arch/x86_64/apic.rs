//! The local APIC (xAPIC, memory-mapped; QEMU TCG 7.2 has no x2APIC) and its
//! timer, plus masking the legacy 8259 PICs. The timer is calibrated against the
//! TSC and then runs periodically at [`TICK_HZ`] on the BSP.
//!
//! Mirrors Xen's `xen/arch/x86/apic.c` (`setup_local_APIC`, `calibrate_APIC_clock`).

use core::sync::atomic::{AtomicU64, Ordering};

use x86_64::instructions::port::Port;
use x86_64::registers::model_specific::Msr;

use super::{paging, time};

/// The timer's interrupt vector.
pub const TIMER_VECTOR: u8 = 0x20;
/// The spurious-interrupt vector.
pub const SPURIOUS_VECTOR: u8 = 0xFF;
/// Periodic timer rate: 1 ms, the granularity at which slices end and a
/// boosted vCPU's short slice (`common::sched::BOOST_SLICE_NS`) is enforced.
/// Measured in `hostile-smp2` at load 10-12: ping p50 1.5 ms / p99 42-50 ms at
/// 1000 Hz against p50 6-14 ms / p99 82-190 ms at 100 Hz (docs/security.md).
pub const TICK_HZ: u64 = 1000;

const IA32_APIC_BASE: u32 = 0x1B;
const APIC_BASE_ENABLE: u64 = 1 << 11;

const REG_ID: usize = 0x20;
const REG_TPR: usize = 0x80;
const REG_EOI: usize = 0xB0;
const REG_SVR: usize = 0xF0;
const REG_ESR: usize = 0x280;
const REG_ICR_LOW: usize = 0x300;
const REG_ICR_HIGH: usize = 0x310;
const REG_LVT_TIMER: usize = 0x320;
const REG_TIMER_INIT: usize = 0x380;
const REG_TIMER_CURRENT: usize = 0x390;
const REG_TIMER_DIVIDE: usize = 0x3E0;

const LVT_MASKED: u32 = 1 << 16;
const LVT_PERIODIC: u32 = 1 << 17;
const ICR_DELIVERY_PENDING: u32 = 1 << 12;

static BASE_PA: AtomicU64 = AtomicU64::new(0xFEE0_0000);
/// Timer input ticks per second (after the divide-by-16).
static TIMER_HZ: AtomicU64 = AtomicU64::new(0);
/// Timer interrupts seen on the BSP.
static TICKS: AtomicU64 = AtomicU64::new(0);

fn reg(off: usize) -> *mut u32 {
    paging::phys_to_virt(BASE_PA.load(Ordering::Relaxed) + off as u64).cast()
}

fn read(off: usize) -> u32 {
    // SAFETY: the APIC page is mapped (uncached) by the physical map; `off` is a
    // register offset within it.
    unsafe { reg(off).read_volatile() }
}

fn write(off: usize, v: u32) {
    // SAFETY: as in `read`.
    unsafe { reg(off).write_volatile(v) }
}

/// Records the APIC's physical address (from the MADT).
pub fn set_base(pa: u64) {
    BASE_PA.store(pa, Ordering::Relaxed);
}

/// Remaps the 8259 PICs to vectors 0x20..0x2F (so a stray legacy IRQ cannot look
/// like an exception) and masks every line: the hypervisor uses the local APIC.
pub fn disable_pic() {
    // SAFETY: ports 0x20/0x21/0xA0/0xA1 are the PC's two 8259s; the standard
    // ICW1..ICW4 sequence followed by masking all lines.
    unsafe {
        let mut m_cmd = Port::<u8>::new(0x20);
        let mut m_data = Port::<u8>::new(0x21);
        let mut s_cmd = Port::<u8>::new(0xA0);
        let mut s_data = Port::<u8>::new(0xA1);
        m_cmd.write(0x11);
        s_cmd.write(0x11);
        m_data.write(0x20);
        s_data.write(0x28);
        m_data.write(4);
        s_data.write(2);
        m_data.write(1);
        s_data.write(1);
        m_data.write(0xFF);
        s_data.write(0xFF);
    }
}

/// Enables this CPU's local APIC (software enable, spurious vector, TPR 0).
pub fn init_local() {
    let mut msr = Msr::new(IA32_APIC_BASE);
    // SAFETY: IA32_APIC_BASE exists on every CPU with an APIC; we only set the
    // global-enable bit, keeping the base address.
    unsafe {
        let v = msr.read();
        msr.write(v | APIC_BASE_ENABLE);
    }
    write(REG_TPR, 0);
    write(REG_SVR, 0x100 | SPURIOUS_VECTOR as u32);
    write(REG_ESR, 0);
    write(REG_ESR, 0);
}

/// This CPU's APIC id.
pub fn id() -> u32 {
    read(REG_ID) >> 24
}

/// Signals end-of-interrupt.
pub fn eoi() {
    write(REG_EOI, 0);
}

/// Measures the timer's rate against the TSC over 10 ms (divide by 16).
pub fn calibrate_timer() -> u64 {
    write(REG_TIMER_DIVIDE, 0x3);
    write(REG_LVT_TIMER, LVT_MASKED | TIMER_VECTOR as u32);
    write(REG_TIMER_INIT, u32::MAX);
    time::delay_us(10_000);
    let elapsed = u32::MAX - read(REG_TIMER_CURRENT);
    write(REG_TIMER_INIT, 0);
    let hz = elapsed as u64 * 100;
    TIMER_HZ.store(hz, Ordering::Relaxed);
    hz
}

/// Starts the periodic timer at [`TICK_HZ`] on this CPU.
pub fn start_periodic() {
    let count = (TIMER_HZ.load(Ordering::Relaxed) / TICK_HZ).clamp(1, u32::MAX as u64);
    write(REG_TIMER_DIVIDE, 0x3);
    write(REG_LVT_TIMER, LVT_PERIODIC | TIMER_VECTOR as u32);
    write(REG_TIMER_INIT, count as u32);
}

/// Stops this CPU's timer.
pub fn stop_timer() {
    write(REG_LVT_TIMER, LVT_MASKED | TIMER_VECTOR as u32);
    write(REG_TIMER_INIT, 0);
}

/// The timer interrupt handler.
pub fn timer_interrupt() {
    TICKS.fetch_add(1, Ordering::Relaxed);
    eoi();
}

/// Timer interrupts so far.
pub fn ticks() -> u64 {
    TICKS.load(Ordering::Relaxed)
}

fn wait_icr_idle() -> bool {
    for _ in 0..1_000_000u32 {
        if read(REG_ICR_LOW) & ICR_DELIVERY_PENDING == 0 {
            return true;
        }
        core::hint::spin_loop();
    }
    false
}

/// Sends a fixed interrupt with `vector` to every other CPU (shorthand "all
/// excluding self"): wakes halted CPUs and makes running guests exit.
pub fn send_ipi_all_but_self(vector: u8) -> bool {
    write(REG_ICR_HIGH, 0);
    write(REG_ICR_LOW, 0x000C_4000 | vector as u32);
    wait_icr_idle()
}

/// Sends a fixed interrupt with `vector` to the CPU with `apic_id` (physical
/// destination): makes a guest running there exit.
pub fn send_ipi(apic_id: u32, vector: u8) -> bool {
    write(REG_ICR_HIGH, apic_id << 24);
    write(REG_ICR_LOW, 0x0000_4000 | vector as u32);
    wait_icr_idle()
}

/// Sends an INIT IPI (assert) to `apic_id`.
pub fn send_init(apic_id: u32) -> bool {
    write(REG_ICR_HIGH, apic_id << 24);
    write(REG_ICR_LOW, 0x0000_4500);
    wait_icr_idle()
}

/// Sends a start-up IPI with vector `page` (start address `page << 12`).
pub fn send_sipi(apic_id: u32, page: u8) -> bool {
    write(REG_ICR_HIGH, apic_id << 24);
    write(REG_ICR_LOW, 0x0000_4600 | page as u32);
    wait_icr_idle()
}
