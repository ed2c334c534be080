//! The AMD SVM backend. (Being written.)

use super::vcpu::VcpuError;
use crate::arch::x86_64::virt::SvmCaps;

pub fn cpu_enable() -> Result<(), VcpuError> {
    Err(VcpuError::Unsupported("SVM backend not written yet"))
}

pub fn new_vcpu(_caps: SvmCaps) -> Result<alloc::boxed::Box<dyn super::vcpu::Vcpu>, VcpuError> {
    Err(VcpuError::Unsupported("SVM backend not written yet"))
}
