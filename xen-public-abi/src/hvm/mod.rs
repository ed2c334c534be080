//! `xen/include/public/hvm/`: HVM (and PVH) specific interfaces.

pub mod hvm_op;
pub mod hvm_vcpu;
pub mod params;
pub mod save;
pub mod start_info;
