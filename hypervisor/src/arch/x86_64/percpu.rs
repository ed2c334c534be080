//! Per-CPU data, found through the GS base MSR (like Xen's `get_cpu_info()`/
//! `this_cpu()` idea, simplified): each CPU points `IA32_GS_BASE` at its slot in
//! [`CPUS`]. Before a CPU set its GS base (early BSP boot) it is CPU 0.

use core::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};

use x86_64::registers::model_specific::Msr;

/// Most CPUs the hypervisor brings up; further MADT entries are logged and skipped.
pub const MAX_CPUS: usize = 64;

/// `IA32_GS_BASE`.
const IA32_GS_BASE: u32 = 0xC000_0101;

/// One CPU's slot.
pub struct PerCpu {
    /// Dense CPU number (BSP = 0), used in log lines.
    pub index: AtomicU32,
    /// Local APIC id.
    pub apic_id: AtomicU32,
    /// Bounds of the CPU's main stack, for the backtrace walker.
    pub stack_bottom: AtomicU64,
    pub stack_top: AtomicU64,
    /// The CPU has logged itself online.
    pub online: AtomicBool,
    /// Set while this CPU prints a fatal error (a fault inside that path ends the run).
    pub in_fatal: AtomicBool,
}

impl PerCpu {
    const fn new() -> Self {
        PerCpu {
            index: AtomicU32::new(0),
            apic_id: AtomicU32::new(0),
            stack_bottom: AtomicU64::new(0),
            stack_top: AtomicU64::new(0),
            online: AtomicBool::new(false),
            in_fatal: AtomicBool::new(false),
        }
    }
}

/// All CPU slots, indexed by CPU number.
pub static CPUS: [PerCpu; MAX_CPUS] = [const { PerCpu::new() }; MAX_CPUS];

/// Points this CPU's GS base at slot `index` and records its stack bounds.
pub fn init_this_cpu(index: usize, apic_id: u32, stack_bottom: u64, stack_top: u64) {
    let slot = &CPUS[index];
    slot.index.store(index as u32, Ordering::Relaxed);
    slot.apic_id.store(apic_id, Ordering::Relaxed);
    slot.stack_bottom.store(stack_bottom, Ordering::Relaxed);
    slot.stack_top.store(stack_top, Ordering::Relaxed);
    // SAFETY: IA32_GS_BASE exists on every x86-64 CPU; the hypervisor uses GS only
    // through this MSR, and the value is a valid static address.
    unsafe { Msr::new(IA32_GS_BASE).write(slot as *const PerCpu as u64) };
}

/// This CPU's slot (slot 0 before [`init_this_cpu`] ran).
pub fn current() -> &'static PerCpu {
    // SAFETY: reading IA32_GS_BASE has no side effects.
    let base = unsafe { Msr::new(IA32_GS_BASE).read() };
    let first = &CPUS[0] as *const PerCpu as u64;
    let size = core::mem::size_of::<PerCpu>() as u64;
    if base >= first && base < first + size * MAX_CPUS as u64 && (base - first).is_multiple_of(size)
    {
        &CPUS[((base - first) / size) as usize]
    } else {
        &CPUS[0]
    }
}

/// This CPU's number.
pub fn cpu_index() -> u32 {
    current().index.load(Ordering::Relaxed)
}

/// How many CPUs are online.
pub fn online_count() -> usize {
    CPUS.iter()
        .filter(|c| c.online.load(Ordering::Acquire))
        .count()
}
