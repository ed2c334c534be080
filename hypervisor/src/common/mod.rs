//! Arch-neutral core (like `xen/common/`): no `unsafe`, no vendor names, host-testable.
#![forbid(unsafe_code)]

pub mod boot_manifest;
pub mod console_io;
pub mod dispatch;
pub mod domain;
pub mod domctl;
pub mod event_channel;
#[cfg(test)]
mod fuzz;
pub mod guest_access;
pub mod hvm;
pub mod hypercall;
pub mod log_ratelimit;
pub mod memory;
pub mod memory_op;
pub mod page_alloc;
pub mod sched;
pub mod sched_op;
#[cfg(test)]
pub mod test_support;
pub mod time;
pub mod vcpu_op;
pub mod xen_version;
#[cfg(test)]
mod xsa_tests;
