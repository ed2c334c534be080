//! x86-64 bare-metal support: boot, console, memory, descriptor tables, interrupts,
//! ACPI, local APIC, SMP start-up and virtualization feature detection.
//!
//! Mirrors the roles of Xen's `xen/arch/x86/` setup code (`setup.c`, `smpboot.c`,
//! `apic.c`, `traps.c`) in the shape of rust-osdev's blog_os: one file per hardware
//! concept. [`boot::start`] is the bootstrap processor's entry from `main.rs`.

pub mod acpi;
pub mod apic;
pub mod backtrace;
pub mod boot;
pub mod boot_memmap;
pub mod console;
pub mod domain_build;
pub mod elf;
pub mod frame;
pub mod gdt;
pub mod guest_mem;
pub mod guest_walk;
pub mod heap;
pub mod hvm;
pub mod idt;
pub mod lock;
pub mod paging;
pub mod percpu;
pub mod pvh;
pub mod pvh_entry;
pub mod ramdisk;
pub mod rtc;
pub mod sched;
pub mod shutdown;
pub mod smp;
pub mod time;
pub mod virt;
