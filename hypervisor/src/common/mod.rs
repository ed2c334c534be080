//! Arch-neutral core (like `xen/common/`): no `unsafe`, no vendor names, host-testable.
#![forbid(unsafe_code)]

pub mod guest_access;
pub mod hvm;
pub mod memory;
