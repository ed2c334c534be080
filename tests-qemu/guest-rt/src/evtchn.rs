//! Event channels from the guest side, both ABIs, driven as Linux drives them
//! (`drivers/xen/events/events_{base,2l,fifo}.c`; xen-abi.md §9.1):
//!
//! - setup: map `shared_info` (`XENMEM_add_to_physmap`), set the upcall vector
//!   (`HVM_PARAM_CALLBACK_IRQ` = VECTOR type, or the per-vCPU
//!   `HVMOP_set_evtchn_upcall_vector`), then try `EVTCHNOP_init_control` and fall
//!   back to 2-level on any error;
//! - 2-level upcall: clear `evtchn_upcall_pending`, take `evtchn_pending_sel`,
//!   scan pending & ~mask, clear each pending bit and handle the port;
//! - FIFO upcall: take `ready`, per priority walk the queue from `head` with
//!   cmpxchg on LINKED/LINK, handle PENDING && !MASKED ports and clear PENDING;
//! - FIFO ports need event-array pages: `EVTCHNOP_expand_array` with pages whose
//!   words start MASKED, as Linux does.

use core::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, AtomicU8, Ordering};

use xen_public_abi::event_channel::*;
use xen_public_abi::hvm::hvm_op::{
    xen_hvm_evtchn_upcall_vector, xen_hvm_param, HVMOP_set_evtchn_upcall_vector, HVMOP_set_param,
};
use xen_public_abi::hvm::params::{HVM_PARAM_CALLBACK_IRQ, HVM_PARAM_CALLBACK_TYPE_VECTOR};
use xen_public_abi::memory::{xen_add_to_physmap, XENMAPSPACE_shared_info, XENMEM_add_to_physmap};
use xen_public_abi::xen::{
    __HYPERVISOR_event_channel_op, __HYPERVISOR_hvm_op, __HYPERVISOR_memory_op, shared_info,
    DOMID_SELF,
};

use crate::idt::{self, TrapFrame, UPCALL_VECTOR};
use crate::xen::hypercall_ptr;

/// Ports the helpers track (counts per port).
pub const MAX_PORTS: usize = 1024;
const FIFO_PAGES: usize = 2;

#[repr(C, align(4096))]
struct Page([u8; 4096]);

static mut SHARED_INFO: Page = Page([0; 4096]);
static mut CONTROL_BLOCK: Page = Page([0; 4096]);
static mut EVENT_ARRAY: [Page; FIFO_PAGES] = [Page([0; 4096]), Page([0; 4096])];

#[allow(clippy::declare_interior_mutable_const)] // array initialiser only
const ZERO: AtomicU32 = AtomicU32::new(0);
/// Events received per port.
static RECEIVED: [AtomicU32; MAX_PORTS] = [ZERO; MAX_PORTS];
/// Order in which ports were handled (the last 64), for the priority check.
static ORDER: [AtomicU32; 64] = [ZERO; 64];
static ORDER_LEN: AtomicU32 = AtomicU32::new(0);
static UPCALLS: AtomicU64 = AtomicU64::new(0);
static FIFO: AtomicBool = AtomicBool::new(false);
static ARRAY_PAGES: AtomicU32 = AtomicU32::new(0);
/// How the per-vCPU upcall vector is EOIed: 0 none (callback vector), 1 xAPIC
/// MMIO, 2 x2APIC MSR.
static EOI: AtomicU8 = AtomicU8::new(0);
/// FIFO: our local copy of each queue's head (Linux's `evtchn_fifo_queue`).
static LOCAL_HEAD: [AtomicU32; 16] = [ZERO; 16];

/// The ABI in use.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Abi {
    TwoLevel,
    Fifo,
}

/// How upcalls are delivered.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Upcall {
    /// `HVM_PARAM_CALLBACK_IRQ` = VECTOR type (domain-wide, no EOI).
    CallbackVector,
    /// `HVMOP_set_evtchn_upcall_vector` (per vCPU; LAPIC vector, EOI needed).
    PerVcpu,
}

fn evtchn_op<T>(cmd: u32, arg: &mut T) -> i64 {
    hypercall_ptr(__HYPERVISOR_event_channel_op, cmd as u64, arg)
}

fn pfn_of<T>(p: *const T) -> u64 {
    (p as u64) >> 12
}

/// The mapped shared_info page.
pub fn shared() -> *mut shared_info {
    (&raw mut SHARED_INFO) as *mut shared_info
}

/// Maps shared_info at our static page (`XENMEM_add_to_physmap`).
pub fn map_shared_info() -> i64 {
    let mut xatp = xen_add_to_physmap {
        domid: DOMID_SELF,
        size: 0,
        space: XENMAPSPACE_shared_info,
        idx: 0,
        gpfn: pfn_of(shared()),
    };
    hypercall_ptr(
        __HYPERVISOR_memory_op,
        XENMEM_add_to_physmap as u64,
        &mut xatp,
    )
}

/// Registers the upcall vector the chosen way and installs our handler on it.
pub fn set_upcall(how: Upcall) -> i64 {
    idt::set_handler(UPCALL_VECTOR, upcall);
    match how {
        Upcall::CallbackVector => {
            let mut p = xen_hvm_param {
                domid: DOMID_SELF,
                pad: 0,
                index: HVM_PARAM_CALLBACK_IRQ,
                value: (HVM_PARAM_CALLBACK_TYPE_VECTOR << 56) | UPCALL_VECTOR as u64,
            };
            hypercall_ptr(__HYPERVISOR_hvm_op, HVMOP_set_param as u64, &mut p)
        }
        Upcall::PerVcpu => {
            let mut v = xen_hvm_evtchn_upcall_vector {
                vcpu: 0,
                vector: UPCALL_VECTOR,
                _implicit0: [0; 3],
            };
            let rc = hypercall_ptr(
                __HYPERVISOR_hvm_op,
                HVMOP_set_evtchn_upcall_vector as u64,
                &mut v,
            );
            if rc == 0 {
                EOI.store(lapic_eoi_mode(), Ordering::SeqCst);
            }
            rc
        }
    }
}

/// # Safety
/// `msr` must be an MSR the hypervisor lets the guest write.
unsafe fn wrmsr(msr: u32, value: u64) {
    // SAFETY: per the caller.
    unsafe {
        core::arch::asm!("wrmsr", in("ecx") msr, in("eax") value as u32,
            in("edx") (value >> 32) as u32, options(nostack));
    }
}

fn rdmsr(msr: u32) -> u64 {
    let (lo, hi): (u32, u32);
    // SAFETY: only called for IA32_APIC_BASE, which every x86-64 CPU has.
    unsafe {
        core::arch::asm!("rdmsr", in("ecx") msr, out("eax") lo, out("edx") hi, options(nostack));
    }
    ((hi as u64) << 32) | lo as u64
}

/// The local APIC mode for EOIs: x2APIC (enabled here if the CPU offers it and
/// it is off) or xAPIC MMIO, as Linux picks.
fn lapic_eoi_mode() -> u8 {
    const APIC_BASE: u32 = 0x1b;
    const EN: u64 = 1 << 11;
    const EXTD: u64 = 1 << 10;
    if crate::xen::cpuid(1, 0)[2] & (1 << 21) == 0 {
        return 1;
    }
    let base = rdmsr(APIC_BASE);
    if base & EXTD == 0 {
        // SAFETY: IA32_APIC_BASE with EN|EXTD: the architectural x2APIC switch.
        unsafe { wrmsr(APIC_BASE, base | EN | EXTD) };
    }
    2
}

/// `EVTCHNOP_init_control` for vCPU 0 with our control-block page; on success
/// the FIFO ABI is in use. Returns the hypercall's result.
pub fn init_fifo() -> i64 {
    let mut init = evtchn_init_control {
        control_gfn: pfn_of(&raw const CONTROL_BLOCK),
        offset: 0,
        vcpu: 0,
        link_bits: 0,
        _pad: [0; 7],
    };
    let rc = evtchn_op(EVTCHNOP_init_control, &mut init);
    if rc == 0 {
        FIFO.store(true, Ordering::SeqCst);
    }
    rc
}

/// Adds one event-array page (all words MASKED first, as Linux does).
/// Returns the hypercall's result, or -ENOSPC (-28) when our pages are used up.
pub fn expand_array() -> i64 {
    let n = ARRAY_PAGES.load(Ordering::SeqCst) as usize;
    if n >= FIFO_PAGES {
        return -28;
    }
    // SAFETY: page `n` is not yet known to Xen; we own it until expand_array.
    let page = unsafe { &raw mut EVENT_ARRAY[n] } as *mut u32;
    for i in 0..1024 {
        // SAFETY: within the 4 KiB page.
        unsafe { page.add(i).write_volatile(1 << EVTCHN_FIFO_MASKED) };
    }
    let mut exp = evtchn_expand_array {
        array_gfn: pfn_of(page),
    };
    let rc = evtchn_op(EVTCHNOP_expand_array, &mut exp);
    if rc == 0 {
        ARRAY_PAGES.store(n as u32 + 1, Ordering::SeqCst);
    }
    rc
}

/// Event-array pages registered so far.
pub fn array_pages() -> u32 {
    ARRAY_PAGES.load(Ordering::SeqCst)
}

/// The ABI in use.
pub fn abi() -> Abi {
    if FIFO.load(Ordering::SeqCst) {
        Abi::Fifo
    } else {
        Abi::TwoLevel
    }
}

/// Full setup as Linux does it: shared_info, upcall, FIFO if `try_fifo` and
/// `init_control` succeeds (plus the first array page), else 2-level.
/// Returns (ABI, init_control's result or 0 when not tried).
pub fn setup(how: Upcall, try_fifo: bool) -> Result<(Abi, i64), (&'static str, i64)> {
    let rc = map_shared_info();
    if rc != 0 {
        return Err(("XENMEM_add_to_physmap(shared_info)", rc));
    }
    let rc = set_upcall(how);
    if rc != 0 {
        return Err(("upcall registration", rc));
    }
    if !try_fifo {
        return Ok((Abi::TwoLevel, 0));
    }
    let rc = init_fifo();
    if rc != 0 {
        return Ok((Abi::TwoLevel, rc));
    }
    let erc = expand_array();
    if erc != 0 {
        return Err(("EVTCHNOP_expand_array (first page)", erc));
    }
    Ok((Abi::Fifo, 0))
}

fn fifo_word(port: u32) -> Option<*mut u32> {
    let page = (port / 1024) as usize;
    if page >= ARRAY_PAGES.load(Ordering::SeqCst) as usize {
        return None;
    }
    // SAFETY: the page is registered; the index is within it.
    Some(unsafe { ((&raw mut EVENT_ARRAY[page]) as *mut u32).add((port % 1024) as usize) })
}

fn atomic_word(p: *mut u32) -> &'static AtomicU32 {
    // SAFETY: event words are 4-byte aligned u32s shared with the hypervisor,
    // accessed only atomically.
    unsafe { AtomicU32::from_ptr(p) }
}

fn shared_bits(offset_words: usize) -> *mut u64 {
    // SAFETY: shared_info is 4 KiB; the arrays are within it.
    unsafe { ((shared() as *mut u8).add(offset_words)) as *mut u64 }
}

fn two_level_word(base: usize, port: u32) -> &'static core::sync::atomic::AtomicU64 {
    let p = shared_bits(base);
    // SAFETY: port < 4096 is checked by callers; 64 words per array.
    unsafe { AtomicU64::from_ptr(p.add((port / 64) as usize)) }
}

const PENDING_OFF: usize = 2048;
const MASK_OFF: usize = 2560;

/// Unmasks `port` as Linux does (local unmask, hypercall when pending).
pub fn unmask(port: u32) -> i64 {
    match abi() {
        Abi::TwoLevel => {
            if port >= 4096 {
                return -22;
            }
            let bit = 1u64 << (port % 64);
            two_level_word(MASK_OFF, port).fetch_and(!bit, Ordering::SeqCst);
            if two_level_word(PENDING_OFF, port).load(Ordering::SeqCst) & bit != 0 {
                two_level_word(MASK_OFF, port).fetch_or(bit, Ordering::SeqCst);
                let mut u = evtchn_unmask { port };
                return evtchn_op(EVTCHNOP_unmask, &mut u);
            }
            0
        }
        Abi::Fifo => {
            let Some(w) = fifo_word(port) else {
                return -22;
            };
            let w = atomic_word(w);
            let mut old = w.load(Ordering::SeqCst);
            loop {
                let new = old & !(1 << EVTCHN_FIFO_MASKED);
                if old & (1 << EVTCHN_FIFO_BUSY) != 0 {
                    core::hint::spin_loop();
                    old = w.load(Ordering::SeqCst);
                    continue;
                }
                match w.compare_exchange(old, new, Ordering::SeqCst, Ordering::SeqCst) {
                    Ok(_) => break,
                    Err(cur) => old = cur,
                }
            }
            if w.load(Ordering::SeqCst) & (1 << EVTCHN_FIFO_PENDING) != 0 {
                let mut u = evtchn_unmask { port };
                return evtchn_op(EVTCHNOP_unmask, &mut u);
            }
            0
        }
    }
}

/// Makes sure the FIFO array covers `port` (expanding as Linux does on bind).
pub fn ensure_port(port: u32) -> i64 {
    if abi() != Abi::Fifo {
        return 0;
    }
    while port / 1024 >= array_pages() {
        let rc = expand_array();
        if rc != 0 {
            return rc;
        }
    }
    0
}

/// `EVTCHNOP_alloc_unbound(dom, remote)`.
pub fn alloc_unbound(dom: u16, remote_dom: u16) -> Result<u32, i64> {
    let mut a = evtchn_alloc_unbound {
        dom,
        remote_dom,
        port: 0,
    };
    match evtchn_op(EVTCHNOP_alloc_unbound, &mut a) {
        0 => Ok(a.port),
        rc => Err(rc),
    }
}

/// `EVTCHNOP_bind_interdomain(remote_dom, remote_port)`.
pub fn bind_interdomain(remote_dom: u16, remote_port: u32) -> Result<u32, i64> {
    let mut b = evtchn_bind_interdomain {
        remote_dom,
        _implicit0: [0; 2],
        remote_port,
        local_port: 0,
    };
    match evtchn_op(EVTCHNOP_bind_interdomain, &mut b) {
        0 => Ok(b.local_port),
        rc => Err(rc),
    }
}

/// `EVTCHNOP_send(port)`.
pub fn send(port: u32) -> i64 {
    let mut s = evtchn_send { port };
    evtchn_op(EVTCHNOP_send, &mut s)
}

/// `EVTCHNOP_close(port)`.
pub fn close(port: u32) -> i64 {
    let mut c = evtchn_close { port };
    evtchn_op(EVTCHNOP_close, &mut c)
}

/// `EVTCHNOP_set_priority(port, priority)`.
pub fn set_priority(port: u32, priority: u32) -> i64 {
    let mut p = evtchn_set_priority { port, priority };
    evtchn_op(EVTCHNOP_set_priority, &mut p)
}

/// Events handled on `port` so far.
pub fn received(port: u32) -> u32 {
    RECEIVED
        .get(port as usize)
        .map_or(0, |c| c.load(Ordering::SeqCst))
}

/// Upcalls taken so far.
pub fn upcalls() -> u64 {
    UPCALLS.load(Ordering::SeqCst)
}

/// Ports in handling order since the last [`clear_order`] (at most 64).
pub fn order(out: &mut [u32; 64]) -> usize {
    let n = (ORDER_LEN.load(Ordering::SeqCst) as usize).min(64);
    for (i, slot) in out.iter_mut().enumerate().take(n) {
        *slot = ORDER[i].load(Ordering::SeqCst);
    }
    n
}

/// Forgets the handling order.
pub fn clear_order() {
    ORDER_LEN.store(0, Ordering::SeqCst);
}

fn handle_port(port: u32) {
    if let Some(c) = RECEIVED.get(port as usize) {
        c.fetch_add(1, Ordering::SeqCst);
    }
    let i = ORDER_LEN.fetch_add(1, Ordering::SeqCst) as usize;
    if i < 64 {
        ORDER[i].store(port, Ordering::SeqCst);
    }
}

/// Handles pending events (the body of the upcall; also callable by polling
/// with interrupts off).
pub fn handle_events() {
    match abi() {
        Abi::TwoLevel => handle_2l(),
        Abi::Fifo => handle_fifo(),
    }
}

fn handle_2l() {
    let si = shared();
    // SAFETY: shared_info is mapped; vcpu_info[0] fields are accessed atomically.
    let (pending_flag, sel) = unsafe {
        let v0 = &raw mut (*si).vcpu_info[0];
        (
            AtomicU8::from_ptr(&raw mut (*v0).evtchn_upcall_pending),
            AtomicU64::from_ptr(&raw mut (*v0).evtchn_pending_sel),
        )
    };
    loop {
        pending_flag.store(0, Ordering::SeqCst);
        let mut words = sel.swap(0, Ordering::SeqCst);
        if words == 0 {
            break;
        }
        while words != 0 {
            let w = words.trailing_zeros();
            words &= words - 1;
            let pend = two_level_word(PENDING_OFF, w * 64);
            let mask = two_level_word(MASK_OFF, w * 64);
            let mut bits = pend.load(Ordering::SeqCst) & !mask.load(Ordering::SeqCst);
            while bits != 0 {
                let b = bits.trailing_zeros();
                bits &= bits - 1;
                pend.fetch_and(!(1u64 << b), Ordering::SeqCst);
                handle_port(w * 64 + b);
            }
        }
    }
}

fn handle_fifo() {
    // SAFETY: the control block is registered with Xen; `ready` is accessed atomically.
    let cb = (&raw mut CONTROL_BLOCK) as *mut evtchn_fifo_control_block;
    let ready_ptr = unsafe { AtomicU32::from_ptr(&raw mut (*cb).ready) };
    // HVM guests clear the vcpu_info pending flag too (Xen sets it for FIFO as well).
    // SAFETY: shared_info is mapped.
    unsafe {
        let v0 = &raw mut (*shared()).vcpu_info[0];
        AtomicU8::from_ptr(&raw mut (*v0).evtchn_upcall_pending).store(0, Ordering::SeqCst);
    }
    let mut ready = ready_ptr.swap(0, Ordering::SeqCst);
    while ready != 0 {
        let q = ready.trailing_zeros();
        let mut head = LOCAL_HEAD[q as usize].load(Ordering::SeqCst);
        if head == 0 {
            // SAFETY: within the control block.
            head = unsafe { AtomicU32::from_ptr(&raw mut (*cb).head[q as usize]) }
                .load(Ordering::SeqCst);
        }
        let port = head;
        let next = match fifo_word(port) {
            Some(w) => {
                let w = atomic_word(w);
                // Clear LINKED and LINK, taking the link.
                let mut old = w.load(Ordering::SeqCst);
                loop {
                    let new = old & !((1 << EVTCHN_FIFO_LINKED) | EVTCHN_FIFO_LINK_MASK);
                    match w.compare_exchange(old, new, Ordering::SeqCst, Ordering::SeqCst) {
                        Ok(_) => break old & EVTCHN_FIFO_LINK_MASK,
                        Err(cur) => old = cur,
                    }
                }
            }
            None => 0,
        };
        if next == 0 {
            ready &= !(1 << q);
        }
        if let Some(w) = fifo_word(port) {
            let w = atomic_word(w);
            let v = w.load(Ordering::SeqCst);
            if v & (1 << EVTCHN_FIFO_PENDING) != 0 && v & (1 << EVTCHN_FIFO_MASKED) == 0 {
                w.fetch_and(!(1 << EVTCHN_FIFO_PENDING), Ordering::SeqCst);
                handle_port(port);
            }
        }
        LOCAL_HEAD[q as usize].store(next, Ordering::SeqCst);
        ready |= ready_ptr.swap(0, Ordering::SeqCst);
    }
}

fn upcall(_frame: &mut TrapFrame) {
    UPCALLS.fetch_add(1, Ordering::SeqCst);
    handle_events();
    match EOI.load(Ordering::SeqCst) {
        // SAFETY: the x2APIC EOI MSR (the per-vCPU vector is a LAPIC vector).
        2 => unsafe { wrmsr(0x80b, 0) },
        // SAFETY: the xAPIC EOI register, identity-mapped.
        1 => unsafe { (0xfee0_00b0 as *mut u32).write_volatile(0) },
        _ => {}
    }
}

/// Waits with interrupts enabled, yielding the CPU between checks
/// (`SCHEDOP_yield`), until `cond()` holds or `max_rounds` rounds passed.
/// The check runs with interrupts off. Returns whether `cond()` held.
pub fn wait_until(mut cond: impl FnMut() -> bool, max_rounds: u64) -> bool {
    for _ in 0..max_rounds {
        if without_interrupts(&mut cond) {
            return true;
        }
        // SAFETY: opens an interrupt window for the pending upcall.
        unsafe { core::arch::asm!("sti", "nop", options(nomem, nostack)) };
        crate::xen::yield_now();
    }
    without_interrupts(&mut cond)
}

/// Runs `f` with interrupts off, then enables them.
pub fn without_interrupts<R>(f: impl FnOnce() -> R) -> R {
    // SAFETY: toggling IF; the guest has no other interrupt-sensitive state.
    unsafe { core::arch::asm!("cli", options(nomem, nostack)) };
    let r = f();
    // SAFETY: as above.
    unsafe { core::arch::asm!("sti", options(nomem, nostack)) };
    r
}

/// `EVTCHNOP_bind_ipi(vcpu)`.
pub fn bind_ipi(vcpu: u32) -> Result<u32, i64> {
    let mut b = evtchn_bind_ipi { vcpu, port: 0 };
    match evtchn_op(EVTCHNOP_bind_ipi, &mut b) {
        0 => Ok(b.port),
        rc => Err(rc),
    }
}

/// `EVTCHNOP_status(DOMID_SELF, port)`: the `EVTCHNSTAT_*` value.
pub fn status(port: u32) -> Result<u32, i64> {
    use zerocopy::FromZeros;
    let mut st = evtchn_status::new_zeroed();
    st.dom = DOMID_SELF;
    st.port = port;
    match evtchn_op(EVTCHNOP_status, &mut st) {
        0 => Ok(st.status),
        rc => Err(rc),
    }
}

/// Clears `port`'s pending bit without handling it (discards a notification,
/// e.g. the one Xen raises on the local port of every `bind_interdomain`).
pub fn clear_pending(port: u32) {
    match abi() {
        Abi::TwoLevel if port < 4096 => {
            two_level_word(PENDING_OFF, port).fetch_and(!(1u64 << (port % 64)), Ordering::SeqCst);
        }
        Abi::Fifo => {
            if let Some(w) = fifo_word(port) {
                atomic_word(w).fetch_and(!(1 << EVTCHN_FIFO_PENDING), Ordering::SeqCst);
            }
        }
        _ => {}
    }
}
