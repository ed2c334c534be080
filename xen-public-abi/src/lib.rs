//! Xen 4.17's public hypercall ABI (`xen/include/public/`) in `#[repr(C)]` Rust.
//!
//! Item names follow the C headers exactly, so anyone who knows Xen finds their way;
//! typed helpers (`DomId`, `Errno`, flag sets) sit beside the raw items. Every
//! layout is pinned at compile time with `static_assertions` and checked against
//! Debian's `libxen-dev` headers by `tests/c_headers.rs`.
#![no_std]
#![allow(non_camel_case_types, non_upper_case_globals)]

pub mod errno;
pub mod hvm;
pub mod memory;
pub mod xen;

pub use errno::{Errno, XenResult};
pub use xen::DomId;
