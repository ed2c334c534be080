//! Hardware-assisted virtualization: the vendor-neutral vCPU interface
//! ([`vcpu`]), the exit handlers above it ([`exit`]), event delivery ([`irq`]) and
//! the AMD SVM backend ([`svm`]). The VMX backend (`vmx/`) implements the same
//! interface. The backend is picked at run time from CPUID ([`super::virt`]).
//!
//! Mirrors `xen/arch/x86/hvm/` (`hvm.c`'s function table, `svm/`, `vmx/`).

pub mod altp2m_hw;
pub mod debugreg;
pub mod exit;
pub mod fpu;
pub mod irq;
pub mod selftest;
pub mod stage2;
pub mod svm;
pub mod vcpu;
pub mod vmx;

use alloc::boxed::Box;

use super::virt::{self, VirtSupport};
use vcpu::{Vcpu, VcpuError};

/// Per-CPU enable of the detected backend (SVM: `EFER.SVME` and the host save
/// area in `VM_HSAVE_PA`). Must run on every CPU that will run vCPUs, before the
/// first [`Vcpu::run`] there; calling it again on the same CPU is harmless.
pub fn cpu_enable() -> Result<(), VcpuError> {
    match virt::guests_allowed().map_err(VcpuError::Unsupported)? {
        VirtSupport::Svm(_) => svm::cpu_enable(),
        VirtSupport::Vmx(_) => vmx::cpu_enable(),
        VirtSupport::None(why) => Err(VcpuError::Unsupported(why)),
    }
}

/// The system CPU policies for this machine: the boot CPU's CPUID and what the
/// detected backend can virtualise (`common::cpu_policy::derive`).
pub fn system_cpu_policies() -> crate::common::cpu_policy::derive::SystemPolicies {
    use crate::common::cpu_policy::derive::{Backend, SystemPolicies};
    let backend = match virt::guests_allowed() {
        Ok(VirtSupport::Vmx(_)) => Backend::Vmx,
        _ => Backend::Svm,
    };
    let cpuid = |leaf: u32, subleaf: u32| {
        let r = core::arch::x86_64::__cpuid_count(leaf, subleaf);
        [r.eax, r.ebx, r.ecx, r.edx]
    };
    let p = SystemPolicies::derive(backend, &cpuid);
    log::info!(
        "cpu policy: {backend:?}, HVM max: max leaf {:#x}, extended {:#x}, 1c {:#010x} 1d {:#010x} 7b0 {:#010x} 7c0 {:#010x} e1c {:#010x} e1d {:#010x}",
        p.hvm_max.cpuid.max_leaf(),
        p.hvm_max.cpuid.extd_max_leaf(),
        p.hvm_max.cpuid.word(1),
        p.hvm_max.cpuid.word(0),
        p.hvm_max.cpuid.word(5),
        p.hvm_max.cpuid.word(6),
        p.hvm_max.cpuid.word(3),
        p.hvm_max.cpuid.word(2),
    );
    p
}

/// A new vCPU of the detected backend, in the reset state (use
/// [`Vcpu::set_initial_state`] before running it).
pub fn new_vcpu() -> Result<Box<dyn Vcpu>, VcpuError> {
    match virt::guests_allowed().map_err(VcpuError::Unsupported)? {
        VirtSupport::Svm(caps) => svm::new_vcpu(*caps),
        VirtSupport::Vmx(_) => vmx::new_vcpu(),
        VirtSupport::None(why) => Err(VcpuError::Unsupported(why)),
    }
}
