//! What a PVH domain is handed when it is built, in one `no_std` crate that both
//! the hypervisor's boot-time builder (`arch/x86_64/domain_build.rs`) and the dom0
//! toolstack's builder use, so a domain looks the same whoever builds it.
//!
//! Today: the ACPI tables (`acpi`), as Xen 4.17's libxl/libacpi build them for a
//! PVH guest, and the vCPU state it starts in (`cpu`).

#![no_std]
#![forbid(unsafe_code)]

extern crate alloc;

pub mod acpi;
pub mod cpu;

pub use cpu::pvh_cpu_record;
