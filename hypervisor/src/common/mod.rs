//! Arch-neutral core (like `xen/common/`): no `unsafe`, no vendor names, host-testable.
#![forbid(unsafe_code)]

pub mod boot_manifest;
pub mod console_io;
pub mod cpu_policy;
pub mod dispatch;
pub mod domain;
pub mod domain_memory;
pub mod domctl;
pub mod event_channel;
pub mod foreign_map;
#[cfg(test)]
mod fuzz;
pub mod grant_table;
pub mod guest_access;
pub mod hvm;
pub mod hvm_save;
pub mod hypercall;
pub mod lock_order;
pub mod log_ratelimit;
pub mod memory;
pub mod memory_op;
pub mod page_alloc;
pub mod perfc;
pub mod sched;
pub mod sched_op;
pub mod sysctl;
#[cfg(test)]
pub mod test_support;
pub mod time;
pub mod vcpu_op;
pub mod x86_emulate;
pub mod xen_version;
#[cfg(test)]
mod xsa_tests;
