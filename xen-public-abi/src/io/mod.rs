//! `xen/include/public/io/`: split-driver ring protocols.

pub mod console;
pub mod xs_wire;
