//! Guest debug registers DR0-DR3 (and DR6 where the backend's control block does
//! not hold it), switched lazily between vCPUs, as Xen does
//! (`__restore_debug_registers`, `flag_dr_dirty`): a vCPU starts with MOV DR
//! intercepted; its first MOV DR loads its values into the hardware and turns
//! the intercept off ("dirty"). While dirty, the values are saved after every
//! exit and reloaded before entry whenever another vCPU's values were loaded on
//! this CPU since. A clean vCPU cannot read the hardware registers (MOV DR
//! exits), so it never sees another domain's values. DR7 (both backends) and
//! DR6 (SVM) are in the VMCB/VMCS and switched by the hardware on every entry
//! and exit; the host itself uses no debug registers.

use core::arch::asm;
use core::sync::atomic::{AtomicU64, Ordering};

use crate::arch::x86_64::percpu::{self, MAX_CPUS};

/// Whose debug-register values each CPU holds (0: none / the host's).
static OWNER: [AtomicU64; MAX_CPUS] = [const { AtomicU64::new(0) }; MAX_CPUS];

/// `DR6` architectural reset value.
pub const DR6_INIT: u64 = 0xFFFF_0FF0;
/// `DR6.BS`: the #DB was a single step.
pub const DR6_BS: u64 = 1 << 14;

/// One vCPU's debug registers while they are not in the hardware.
#[derive(Clone, Copy, Debug)]
pub struct GuestDebugRegs {
    /// A value unique to the vCPU (its control block's address).
    id: u64,
    pub dr: [u64; 4],
    /// DR6, for backends whose control block does not hold it (VMX).
    pub dr6: u64,
    /// The guest uses the hardware registers directly (MOV DR not intercepted).
    pub dirty: bool,
    /// Also switch DR6 here.
    with_dr6: bool,
}

impl GuestDebugRegs {
    pub fn new(id: u64, with_dr6: bool) -> Self {
        GuestDebugRegs {
            id,
            dr: [0; 4],
            dr6: DR6_INIT,
            dirty: false,
            with_dr6,
        }
    }

    /// Before entry (interrupts off): a dirty vCPU gets its values into this CPU's
    /// registers unless they are still there.
    pub fn before_entry(&mut self) {
        if self.with_dr6 {
            // SAFETY: DR6 is status only; the host does not read it.
            unsafe { asm!("mov dr6, {}", in(reg) self.dr6, options(nostack, nomem)) };
        }
        if !self.dirty {
            return;
        }
        let cpu = percpu::cpu_index() as usize;
        if OWNER[cpu].load(Ordering::Relaxed) == self.id {
            return;
        }
        // SAFETY: writing DR0-3/DR6 only arms breakpoints if DR7 enables them; the
        // host's DR7 is 0x400 (nothing enabled) and the guest's is loaded by
        // VMRUN/VM entry from its control block, so these values act only in the
        // guest. Interrupts are off (the caller is about to enter).
        unsafe {
            asm!("mov dr0, {}", in(reg) self.dr[0], options(nostack, nomem));
            asm!("mov dr1, {}", in(reg) self.dr[1], options(nostack, nomem));
            asm!("mov dr2, {}", in(reg) self.dr[2], options(nostack, nomem));
            asm!("mov dr3, {}", in(reg) self.dr[3], options(nostack, nomem));
        }
        OWNER[cpu].store(self.id, Ordering::Relaxed);
    }

    /// After an exit (interrupts off, same CPU): a dirty vCPU's values are read
    /// back, so they follow it to another CPU.
    pub fn after_exit(&mut self) {
        if self.with_dr6 {
            // SAFETY: reading DR6 has no side effects.
            unsafe { asm!("mov {}, dr6", out(reg) self.dr6, options(nostack, nomem)) };
        }
        if !self.dirty {
            return;
        }
        // SAFETY: reading debug registers has no side effects.
        unsafe {
            asm!("mov {}, dr0", out(reg) self.dr[0], options(nostack, nomem));
            asm!("mov {}, dr1", out(reg) self.dr[1], options(nostack, nomem));
            asm!("mov {}, dr2", out(reg) self.dr[2], options(nostack, nomem));
            asm!("mov {}, dr3", out(reg) self.dr[3], options(nostack, nomem));
        }
    }

    /// The guest's first MOV DR: from now on it owns the hardware registers
    /// (the caller turns the intercept off and re-executes the instruction).
    pub fn take_ownership(&mut self) {
        self.dirty = true;
        // Force the load at the next entry.
        let cpu = percpu::cpu_index() as usize;
        let _ = OWNER[cpu].compare_exchange(self.id, 0, Ordering::Relaxed, Ordering::Relaxed);
    }

    /// OR `bits` into the guest's DR6 (single-step after an emulated
    /// instruction), for backends that switch DR6 here.
    pub fn dr6_or(&mut self, bits: u64) {
        self.dr6 |= bits;
    }

    /// The vCPU is reset (`VCPUOP_initialise`): clean, zeroed.
    pub fn reset(&mut self) {
        self.dr = [0; 4];
        self.dr6 = DR6_INIT;
        self.dirty = false;
        let cpu = percpu::cpu_index() as usize;
        let _ = OWNER[cpu].compare_exchange(self.id, 0, Ordering::Relaxed, Ordering::Relaxed);
    }
}
