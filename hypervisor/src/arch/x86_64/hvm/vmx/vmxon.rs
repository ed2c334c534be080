//! Entering VMX root operation on one CPU: `IA32_FEATURE_CONTROL` (locked with VMX
//! outside SMX enabled, or left alone when the firmware already did so), CR0 and CR4
//! adjusted to the `IA32_VMX_CR{0,4}_FIXED*` MSRs (the bootloader leaves CR0.NE clear),
//! CR4.VMXE, and a VMXON region carrying the VMCS revision identifier. Done once per
//! CPU, on that CPU, before its first VM entry.
//!
//! Mirrors Xen's `vmx/vmcs.c` (`_vmx_cpu_up`, `vmx_cpu_up_prepare`).

use core::arch::asm;
use core::sync::atomic::{AtomicU64, Ordering};

use x86_64::registers::control::{Cr0, Cr4};
use x86_64::registers::model_specific::Msr;

use super::caps::{self, IA32_FEATURE_CONTROL};
use crate::arch::x86_64::{frame, paging, percpu};

const FC_LOCKED: u64 = 1 << 0;
const FC_VMX_OUTSIDE_SMX: u64 = 1 << 2;

/// Each CPU's VMXON region (0: not in VMX operation yet).
static VMXON_REGION: [AtomicU64; percpu::MAX_CPUS] =
    [const { AtomicU64::new(0) }; percpu::MAX_CPUS];

/// Allocates a zeroed frame with the VMCS revision identifier in its first dword (a
/// VMXON region or a VMCS region: SDM 25.2, 25.11.5).
pub fn alloc_region() -> Option<u64> {
    let pa = frame::alloc_zeroed()?;
    let revision = caps::get().revision;
    // SAFETY: a fresh frame of ours, reached through the physical map.
    unsafe { (paging::phys_to_virt(pa) as *mut u32).write_volatile(revision) };
    Some(pa)
}

/// Puts this CPU in VMX root operation, once. Returns why not where it cannot.
pub fn cpu_up() -> Result<(), &'static str> {
    let cpu = percpu::cpu_index() as usize;
    if VMXON_REGION[cpu].load(Ordering::Acquire) != 0 {
        return Ok(());
    }
    let c = caps::get();
    let mut fc = Msr::new(IA32_FEATURE_CONTROL);
    // SAFETY: IA32_FEATURE_CONTROL exists on every CPU with VMX (CPUID.1:ECX.VMX).
    let v = unsafe { fc.read() };
    if v & FC_LOCKED == 0 {
        // SAFETY: as above; locking with VMX enabled is what firmware normally does.
        unsafe { fc.write(v | FC_LOCKED | FC_VMX_OUTSIDE_SMX) };
    } else if v & FC_VMX_OUTSIDE_SMX == 0 {
        return Err("IA32_FEATURE_CONTROL is locked with VMX disabled");
    }
    let cr0 = Cr0::read_raw();
    let fixed_cr0 = (cr0 | c.cr0_fixed0) & c.cr0_fixed1;
    // SAFETY: the fixed-1 bits are PE, PG and NE on every VMX CPU; the hypervisor
    // already runs with PE and PG, and NE only selects native FPU error reporting.
    unsafe { Cr0::write_raw(fixed_cr0) };
    let cr4 = Cr4::read_raw();
    let fixed_cr4 = caps::fix_cr4(c, cr4 | (1 << 13));
    // SAFETY: the fixed-1 bits add VMXE (and whatever the CPU demands for VMX,
    // nothing that changes paging); fixed-0 bits are ones this CPU cannot set anyway.
    unsafe { Cr4::write_raw(fixed_cr4) };
    // Guests' x87/SSE state is switched with FXSAVE/FXRSTOR (vcpu.rs), which covers
    // the XMM registers only with CR4.OSFXSR.
    // SAFETY: OSFXSR/OSXMMEXCPT and clearing EM/TS change only how x87/SSE
    // instructions behave, and the soft-float hypervisor executes none of its own.
    unsafe {
        Cr4::write_raw(Cr4::read_raw() | (1 << 9) | (1 << 10));
        Cr0::write_raw(Cr0::read_raw() & !((1 << 2) | (1 << 3)));
    }
    let region = alloc_region().ok_or("out of memory for the VMXON region")?;
    let rflags: u64;
    // SAFETY: CR0/CR4 satisfy the fixed bits and VMXE is set; `region` is a 4 KiB
    // aligned frame holding the revision id; VMXON reads only the 8-byte operand.
    unsafe {
        asm!("vmxon [{p}]", "pushfq", "pop {r}", p = in(reg) &region, r = out(reg) rflags);
    }
    if rflags & 0x41 != 0 {
        frame::free_contiguous(region, 1);
        return Err("VMXON failed");
    }
    VMXON_REGION[cpu].store(region, Ordering::Release);
    log::info!(
        "vmx: cpu{cpu} in VMX root operation (VMCS revision {:#x}, cr0 {fixed_cr0:#x}, cr4 {fixed_cr4:#x})",
        c.revision
    );
    Ok(())
}
