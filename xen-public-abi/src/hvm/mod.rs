//! `xen/include/public/hvm/`: HVM operations and parameters.

pub mod hvm_op;
pub mod params;
