//! `xen/include/public/hvm/hvm_op.h` (Xen 4.17): `__HYPERVISOR_hvm_op` sub-ops and their
//! argument structs, including every `HVMOP_altp2m` payload (interface version 1).
//!
//! The C `union u` of `xen_hvm_altp2m_op` is kept as 64 raw bytes (`u`); each member is
//! its own struct here, read from / written to `u` with zerocopy.

use crate::xen::domid_t;
use static_assertions::{const_assert, const_assert_eq};
use zerocopy::{FromBytes, Immutable, IntoBytes, KnownLayout};

pub const HVMOP_set_param: u32 = 0;
pub const HVMOP_get_param: u32 = 1;
pub const HVMOP_flush_tlbs: u32 = 5;
pub const HVMOP_pagetable_dying: u32 = 9;
pub const HVMOP_get_time: u32 = 10;
pub const HVMOP_xentrace: u32 = 11;
pub const HVMOP_set_mem_access: u32 = 12;
pub const HVMOP_get_mem_access: u32 = 13;
pub const HVMOP_get_mem_type: u32 = 15;
pub const HVMOP_set_evtchn_upcall_vector: u32 = 23;
pub const HVMOP_guest_request_vm_event: u32 = 24;
pub const HVMOP_altp2m: u32 = 25;

/// `struct xen_hvm_param` (HVMOP_set_param / HVMOP_get_param).
#[repr(C)]
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout,
)]
pub struct xen_hvm_param {
    pub domid: domid_t,
    pub pad: u16,
    pub index: u32,
    pub value: u64,
}

/// `struct xen_hvm_evtchn_upcall_vector` (HVMOP_set_evtchn_upcall_vector).
#[repr(C)]
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout,
)]
pub struct xen_hvm_evtchn_upcall_vector {
    pub vcpu: u32,
    pub vector: u8,
    /// C tail padding (sizeof is 8).
    pub _pad: [u8; 3],
}

pub const HVMOP_ALTP2M_INTERFACE_VERSION: u32 = 0x0000_0001;

pub const HVMOP_altp2m_get_domain_state: u32 = 1;
pub const HVMOP_altp2m_set_domain_state: u32 = 2;
pub const HVMOP_altp2m_vcpu_enable_notify: u32 = 3;
pub const HVMOP_altp2m_create_p2m: u32 = 4;
pub const HVMOP_altp2m_destroy_p2m: u32 = 5;
pub const HVMOP_altp2m_switch_p2m: u32 = 6;
pub const HVMOP_altp2m_set_mem_access: u32 = 7;
pub const HVMOP_altp2m_change_gfn: u32 = 8;
pub const HVMOP_altp2m_set_mem_access_multi: u32 = 9;
pub const HVMOP_altp2m_set_suppress_ve: u32 = 10;
pub const HVMOP_altp2m_get_suppress_ve: u32 = 11;
pub const HVMOP_altp2m_get_mem_access: u32 = 12;
pub const HVMOP_altp2m_vcpu_disable_notify: u32 = 13;
pub const HVMOP_altp2m_get_p2m_idx: u32 = 14;
pub const HVMOP_altp2m_set_suppress_ve_multi: u32 = 15;
pub const HVMOP_altp2m_set_visibility: u32 = 16;

/// `struct xen_hvm_altp2m_domain_state`.
#[repr(C)]
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout,
)]
pub struct xen_hvm_altp2m_domain_state {
    pub state: u8,
}

/// `struct xen_hvm_altp2m_vcpu_enable_notify`.
#[repr(C)]
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout,
)]
pub struct xen_hvm_altp2m_vcpu_enable_notify {
    pub vcpu_id: u32,
    pub pad: u32,
    /// gfn of the #VE information page.
    pub gfn: u64,
}

/// `struct xen_hvm_altp2m_vcpu_disable_notify`.
#[repr(C)]
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout,
)]
pub struct xen_hvm_altp2m_vcpu_disable_notify {
    pub vcpu_id: u32,
}

/// `struct xen_hvm_altp2m_view`.
#[repr(C)]
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout,
)]
pub struct xen_hvm_altp2m_view {
    pub view: u16,
    /// A `xenmem_access_t`.
    pub hvmmem_default_access: u16,
}

/// `struct xen_hvm_altp2m_mem_access`.
#[repr(C)]
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout,
)]
pub struct xen_hvm_altp2m_mem_access {
    pub view: u16,
    /// A `xenmem_access_t`.
    pub access: u16,
    pub pad: u32,
    pub gfn: u64,
}

/// `struct xen_hvm_altp2m_set_mem_access_multi`.
#[repr(C)]
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout,
)]
pub struct xen_hvm_altp2m_set_mem_access_multi {
    pub view: u16,
    pub pad: u16,
    pub nr: u32,
    /// Continuation counter; zero on the first call.
    pub opaque: u64,
    /// `XEN_GUEST_HANDLE(const_uint64)`.
    pub pfn_list: u64,
    /// `XEN_GUEST_HANDLE(const_uint8)`.
    pub access_list: u64,
}

/// `struct xen_hvm_altp2m_change_gfn`.
#[repr(C)]
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout,
)]
pub struct xen_hvm_altp2m_change_gfn {
    pub view: u16,
    pub pad1: u16,
    pub pad2: u32,
    pub old_gfn: u64,
    /// `INVALID_GFN` (`!0`) means revert.
    pub new_gfn: u64,
}

/// `struct xen_hvm_altp2m_suppress_ve`.
#[repr(C)]
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout,
)]
pub struct xen_hvm_altp2m_suppress_ve {
    pub view: u16,
    pub suppress_ve: u8,
    pub pad1: u8,
    pub pad2: u32,
    pub gfn: u64,
}

/// `struct xen_hvm_altp2m_suppress_ve_multi`.
#[repr(C)]
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout,
)]
pub struct xen_hvm_altp2m_suppress_ve_multi {
    pub view: u16,
    pub suppress_ve: u8,
    pub pad1: u8,
    /// OUT: the first error met (0 if none).
    pub first_error: i32,
    /// IN/OUT: where to start (updated on continuation).
    pub first_gfn: u64,
    pub last_gfn: u64,
    /// OUT: the gfn of `first_error`.
    pub first_error_gfn: u64,
}

/// `struct xen_hvm_altp2m_get_vcpu_p2m_idx`.
#[repr(C)]
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout,
)]
pub struct xen_hvm_altp2m_get_vcpu_p2m_idx {
    pub vcpu_id: u32,
    pub altp2m_idx: u16,
    /// C tail padding (sizeof is 8).
    pub _pad: u16,
}

/// `struct xen_hvm_altp2m_set_visibility`.
#[repr(C)]
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout,
)]
pub struct xen_hvm_altp2m_set_visibility {
    pub altp2m_idx: u16,
    pub visible: u8,
    pub pad: u8,
}

/// `struct xen_hvm_altp2m_op`. `u` is the C union (`uint8_t pad[64]`, 8-aligned because
/// some members hold `uint64_t`); use [`xen_hvm_altp2m_op::payload`] and
/// [`xen_hvm_altp2m_op::set_payload`] to view it as one member.
#[repr(C)]
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout,
)]
pub struct xen_hvm_altp2m_op {
    pub version: u32,
    pub cmd: u32,
    pub domain: domid_t,
    pub pad1: u16,
    pub pad2: u32,
    pub u: [u64; 8],
}

impl xen_hvm_altp2m_op {
    /// The union viewed as member `T` (every member is at most 64 bytes).
    pub fn payload<T: FromBytes>(&self) -> T {
        match T::read_from_prefix(self.u.as_bytes()) {
            Ok((v, _)) => v,
            // Only reachable for a `T` larger than the union; no ABI member is.
            Err(_) => T::new_zeroed(),
        }
    }

    /// Store member `T` into the union (bytes past `T` are left as they were).
    pub fn set_payload<T: IntoBytes + Immutable>(&mut self, v: &T) {
        let src = v.as_bytes();
        let dst = self.u.as_mut_bytes();
        let n = src.len().min(dst.len());
        dst[..n].copy_from_slice(&src[..n]);
    }
}

const_assert_eq!(core::mem::size_of::<xen_hvm_param>(), 16);
const_assert_eq!(core::mem::size_of::<xen_hvm_evtchn_upcall_vector>(), 8);
const_assert_eq!(core::mem::size_of::<xen_hvm_altp2m_op>(), 80);
const_assert_eq!(core::mem::align_of::<xen_hvm_altp2m_op>(), 8);
const_assert_eq!(core::mem::offset_of!(xen_hvm_altp2m_op, u), 16);
const_assert_eq!(core::mem::size_of::<xen_hvm_altp2m_domain_state>(), 1);
const_assert_eq!(
    core::mem::size_of::<xen_hvm_altp2m_vcpu_enable_notify>(),
    16
);
const_assert_eq!(
    core::mem::size_of::<xen_hvm_altp2m_vcpu_disable_notify>(),
    4
);
const_assert_eq!(core::mem::size_of::<xen_hvm_altp2m_view>(), 4);
const_assert_eq!(core::mem::size_of::<xen_hvm_altp2m_mem_access>(), 16);
const_assert_eq!(
    core::mem::size_of::<xen_hvm_altp2m_set_mem_access_multi>(),
    32
);
const_assert_eq!(core::mem::size_of::<xen_hvm_altp2m_change_gfn>(), 24);
const_assert_eq!(core::mem::size_of::<xen_hvm_altp2m_suppress_ve>(), 16);
const_assert_eq!(core::mem::size_of::<xen_hvm_altp2m_suppress_ve_multi>(), 32);
const_assert_eq!(core::mem::size_of::<xen_hvm_altp2m_get_vcpu_p2m_idx>(), 8);
const_assert_eq!(core::mem::size_of::<xen_hvm_altp2m_set_visibility>(), 4);
const_assert_eq!(
    core::mem::offset_of!(xen_hvm_altp2m_suppress_ve_multi, first_error),
    4
);
const_assert_eq!(
    core::mem::offset_of!(xen_hvm_altp2m_set_mem_access_multi, opaque),
    8
);
const_assert!(core::mem::size_of::<xen_hvm_altp2m_change_gfn>() <= 64);
