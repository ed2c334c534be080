//! Xen 4.17's public hypercall ABI (`xen/include/public/`) in `#[repr(C)]` Rust.
//!
//! Item names follow the C headers exactly, so anyone who knows Xen finds their way;
//! typed helpers (`DomId`, `EvtchnPort`, `Errno`, flag sets) sit beside the raw items.
//! Modules are named after the headers: [`xen`], [`domctl`], [`event_channel`],
//! [`hvm::hvm_op`], [`hvm::params`], [`hvm::start_info`], [`memory`], [`sched`],
//! [`hvm::hvm_vcpu`], [`sysctl`], [`vcpu`], [`version`], [`features`], [`elfnote`],
//! [`grant_table`], [`arch_x86`] (with [`arch_x86::cpuid`]), [`io::console`],
//! [`io::xs_wire`].
//!
//! Two checks keep the layouts honest:
//! - at compile time, every struct is declared through [`abi_struct!`], which pins
//!   its size, its alignment and the offset of every field with
//!   `static_assertions` (the job Xen's `abi-check` does with `BUILD_BUG_ON`); flag
//!   constants are pinned to `1 << bit` and each `*_MAX` to its highest flag. A wrong
//!   edit fails the build.
//! - `tests/c_headers.rs` compiles a C program against Debian's `libxen-dev` 4.17
//!   headers and compares every size, offset and constant with the Rust values.
//!
//! # Project extension
//!
//! [`domctl::XEN_DOMCTL_CDF_evtchn_fifo`] (bit 8) and
//! [`domctl::XEN_DOMCTL_CDF_evtchn_upcall`] (bit 9) are not in Xen 4.17: they are this
//! project's per-domain event-channel ABI control (see `docs/abi.md`). They are the
//! only intended differences from the 4.17 headers, and so `XEN_DOMCTL_CDF_MAX` is
//! `evtchn_upcall` here (4.17: `vpmu`).
//!
//! # Example
//!
//! ```
//! use xen_public_abi::domctl::{xen_domctl, xen_domctl_max_vcpus, XEN_DOMCTL_max_vcpus};
//! use zerocopy::FromZeros;
//! let mut op = xen_domctl::new_zeroed();
//! op.cmd = XEN_DOMCTL_max_vcpus;
//! op.u.set(&xen_domctl_max_vcpus { max: 2 });
//! assert_eq!(op.u.get::<xen_domctl_max_vcpus>().max, 2);
//! ```
#![no_std]
#![allow(non_camel_case_types, non_upper_case_globals, non_snake_case)]

/// Declares a `#[repr(C)]` ABI struct as a layout table: each field is written
/// `OFFSET => name: Type`, and the macro pins the struct's size and alignment and
/// every field's offset with `static_assertions`, so a wrong edit fails the build.
///
/// Fields whose name starts with `_implicit` are padding the C compiler inserts
/// silently; Rust needs them spelled out so that `IntoBytes` can be derived.
///
/// The macro also emits `ABI_FIELDS` (name, offset, size of every field), which
/// the C conformance test walks to compare each one with `offsetof`/`sizeof`.
#[macro_export]
#[doc(hidden)]
macro_rules! abi_struct {
    (
        $(#[$meta:meta])*
        pub struct $name:ident [size $size:literal, align $align:literal] {
            $(
                $(#[$fmeta:meta])*
                $off:literal => $field:ident : $ty:ty
            ),* $(,)?
        }
    ) => {
        $(#[$meta])*
        #[repr(C)]
        #[derive(
            Clone, Copy, Debug,
            ::zerocopy::FromBytes, ::zerocopy::IntoBytes,
            ::zerocopy::Immutable, ::zerocopy::KnownLayout,
        )]
        pub struct $name {
            $( $(#[$fmeta])* pub $field: $ty, )*
        }

        // One associated const per check, named after what it checks, so that a
        // failure reads e.g. "evaluation of `xen_domctl::cmd::_::{constant#0}` failed".
        #[allow(non_upper_case_globals, dead_code)]
        impl $name {
            const ABI_SIZE: () = {
                ::static_assertions::const_assert_eq!(::core::mem::size_of::<$name>(), $size);
            };
            const ABI_ALIGN: () = {
                ::static_assertions::const_assert_eq!(::core::mem::align_of::<$name>(), $align);
            };
            $(
                const $field: () = {
                    ::static_assertions::const_assert_eq!(
                        ::core::mem::offset_of!($name, $field),
                        $off
                    );
                };
            )*
        }

        impl $name {
            /// Every field as (name, offset, size), for the C conformance test.
            pub const ABI_FIELDS: &'static [(&'static str, usize, usize)] = &[
                $( (stringify!($field), $off, ::core::mem::size_of::<$ty>()), )*
            ];
        }
    };
}

/// Declares a C union as an aligned byte buffer of the union's size, with typed
/// access to its members through zerocopy (`get::<T>()`, `set(&T)`, `member::<T>()`).
///
/// Every listed member is checked at compile time to fit the buffer in size and
/// alignment; `ABI_FIELDS` lists the members (name, offset 0, size) so the C
/// conformance test can check each member's size and name against the header.
/// Members the project does not use yet are omitted (the buffer covers them). A
/// member whose type repeats an earlier member's is written `name: Type as dup`.
#[macro_export]
#[doc(hidden)]
macro_rules! abi_union {
    (
        $(#[$meta:meta])*
        pub union $name:ident [size $size:literal, align $align:literal] as [$unit:ty; $n:literal] {
            $( $(#[$fmeta:meta])* $member:ident : $ty:ty $(as $dup:ident)? ),* $(,)?
        }
    ) => {
        $(#[$meta])*
        #[repr(C)]
        #[derive(
            Clone, Copy, Debug,
            ::zerocopy::FromBytes, ::zerocopy::IntoBytes,
            ::zerocopy::Immutable, ::zerocopy::KnownLayout,
        )]
        pub struct $name {
            /// The raw bytes of the union (typed access: `get`, `set`, `member`).
            pub raw: [$unit; $n],
        }

        ::static_assertions::const_assert_eq!(::core::mem::size_of::<$name>(), $size);
        ::static_assertions::const_assert_eq!(::core::mem::align_of::<$name>(), $align);
        $(
            ::static_assertions::const_assert!(::core::mem::size_of::<$ty>() <= $size);
            ::static_assertions::const_assert!(::core::mem::align_of::<$ty>() <= $align);
        )*

        impl $name {
            /// Every member as (name, offset, size), for the C conformance test.
            pub const ABI_FIELDS: &'static [(&'static str, usize, usize)] = &[
                $( (stringify!($member), 0, ::core::mem::size_of::<$ty>()), )*
            ];

            /// Read member `T` (a copy of the leading `size_of::<T>()` bytes).
            pub fn get<T: $crate::UnionMember<Self>>(&self) -> T {
                *self.member::<T>()
            }

            /// Borrow member `T` in place.
            pub fn member<T: $crate::UnionMember<Self>>(&self) -> &T {
                use ::zerocopy::IntoBytes;
                match T::ref_from_prefix(self.raw.as_bytes()) {
                    Ok((v, _)) => v,
                    // `UnionMember` is only implemented (below) for members whose size
                    // and alignment the const assertions above prove to fit `raw`.
                    Err(_) => unreachable!(),
                }
            }

            /// Borrow member `T` mutably in place.
            pub fn member_mut<T: $crate::UnionMember<Self>>(&mut self) -> &mut T {
                use ::zerocopy::IntoBytes;
                match T::mut_from_prefix(self.raw.as_mut_bytes()) {
                    Ok((v, _)) => v,
                    // As in `member`: size and alignment are proven at compile time.
                    Err(_) => unreachable!(),
                }
            }

            /// Zero the whole union, then write member `T` at its start.
            pub fn set<T: $crate::UnionMember<Self>>(&mut self, v: &T) {
                self.raw = [0; $n];
                *self.member_mut::<T>() = *v;
            }
        }

        $( $crate::__union_member_impl!($name, $ty $(, $dup)?); )*
    };
}

/// Helper of [`abi_union!`]: implements `UnionMember` for a member type, except for
/// a member marked `as dup` (a second member of a type already listed: C unions
/// may repeat a type, Rust impls may not).
#[macro_export]
#[doc(hidden)]
macro_rules! __union_member_impl {
    ($name:ident, $ty:ty) => {
        impl $crate::UnionMember<$name> for $ty {}
    };
    ($name:ident, $ty:ty, dup) => {};
}

/// Pins a family of single-bit flags at compile time: each flag equals `1 << bit`
/// (the bit written as a literal beside it), `max` (a C `*_MAX`) equals the highest
/// flag, and `mask` (a C `*_ALL`) equals all flags ORed together.
macro_rules! assert_flags {
    ([$($flag:ident = $bit:literal),* $(,)?]) => {
        $( ::static_assertions::const_assert_eq!($flag, 1 << $bit); )*
    };
    (max = $max:expr, [$($flag:ident = $bit:literal),* $(,)?]) => {
        assert_flags!([$($flag = $bit),*]);
        ::static_assertions::const_assert_eq!($max, {
            let mut m = 0;
            $( if $flag > m { m = $flag; } )*
            m
        });
    };
    (max = $max:expr, mask = $mask:expr, [$($flag:ident = $bit:literal),* $(,)?]) => {
        assert_flags!(max = $max, [$($flag = $bit),*]);
        ::static_assertions::const_assert_eq!($mask, 0 $(| $flag)*);
    };
}

/// Marker: `Self` is a member of the union `U` (implemented by [`abi_union!`] only for
/// members whose size and alignment fit, which makes the typed accessors infallible).
pub trait UnionMember<U>:
    zerocopy::FromBytes + zerocopy::IntoBytes + zerocopy::Immutable + zerocopy::KnownLayout + Copy
{
}

pub mod arch_x86;
pub mod domctl;
pub mod elfnote;
pub mod errno;
pub mod event_channel;
pub mod features;
pub mod grant_table;
pub mod hvm;
pub mod io;
pub mod memory;
pub mod sched;
pub mod sysctl;
pub mod vcpu;
pub mod version;
pub mod xen;

pub use errno::{Errno, XenResult};

/// The README's example, compiled and run as a doctest.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeDoctest;
pub use event_channel::EvtchnPort;
pub use xen::DomId;
