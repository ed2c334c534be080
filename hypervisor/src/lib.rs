//! The hypervisor's testable core. `common/` is arch-neutral and runs in host
//! tests; `arch/` (bare metal only) implements the seams `common/` declares.
#![cfg_attr(not(test), no_std)]

extern crate alloc;

#[cfg(target_os = "none")]
pub mod arch;
pub mod common;

#[cfg(test)]
pub mod test_alloc;
