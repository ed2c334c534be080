//! `xen/include/public/version.h`: `__HYPERVISOR_xen_version` and its `XENVER_*`
//! sub-ops. The feature bits `XENVER_get_features` reports are in
//! [`crate::features`].

use crate::xen::xen_ulong_t;

/// `XENVER_version`: returns `major << 16 | minor`.
pub const XENVER_version: u32 = 0;
/// `XENVER_extraversion`: `xen_extraversion_t`.
pub const XENVER_extraversion: u32 = 1;
/// `XENVER_compile_info`: `xen_compile_info`.
pub const XENVER_compile_info: u32 = 2;
/// `XENVER_capabilities`: `xen_capabilities_info_t`.
pub const XENVER_capabilities: u32 = 3;
/// `XENVER_changeset`: `xen_changeset_info_t`.
pub const XENVER_changeset: u32 = 4;
/// `XENVER_platform_parameters`: `xen_platform_parameters`.
pub const XENVER_platform_parameters: u32 = 5;
/// `XENVER_get_features`: `xen_feature_info`.
pub const XENVER_get_features: u32 = 6;
/// `XENVER_pagesize`: returns the page size.
pub const XENVER_pagesize: u32 = 7;
/// `XENVER_guest_handle`: `xen_domain_handle_t`.
pub const XENVER_guest_handle: u32 = 8;
/// `XENVER_commandline`: `xen_commandline_t`.
pub const XENVER_commandline: u32 = 9;
/// `XENVER_build_id`: `xen_build_id`.
pub const XENVER_build_id: u32 = 10;

/// `xen_extraversion_t`: e.g. ".0" (NUL-terminated).
pub type xen_extraversion_t = [u8; 16];
/// `XEN_EXTRAVERSION_LEN`.
pub const XEN_EXTRAVERSION_LEN: usize = core::mem::size_of::<xen_extraversion_t>();
/// `xen_capabilities_info_t`: e.g. "hvm-3.0-x86_64".
pub type xen_capabilities_info_t = [u8; 1024];
/// `XEN_CAPABILITIES_INFO_LEN`.
pub const XEN_CAPABILITIES_INFO_LEN: usize = core::mem::size_of::<xen_capabilities_info_t>();
/// `xen_changeset_info_t`.
pub type xen_changeset_info_t = [u8; 64];
/// `XEN_CHANGESET_INFO_LEN`.
pub const XEN_CHANGESET_INFO_LEN: usize = core::mem::size_of::<xen_changeset_info_t>();
/// `xen_commandline_t`.
pub type xen_commandline_t = [u8; 1024];

abi_struct! {
    /// `struct xen_compile_info` (`XENVER_compile_info`).
    pub struct xen_compile_info [size 144, align 1] {
        0 => compiler: [u8; 64],
        64 => compile_by: [u8; 16],
        80 => compile_domain: [u8; 32],
        112 => compile_date: [u8; 32],
    }
}

abi_struct! {
    /// `struct xen_platform_parameters` (`XENVER_platform_parameters`).
    pub struct xen_platform_parameters [size 8, align 8] {
        /// Start of the hypervisor's virtual range (PV).
        0 => virt_start: xen_ulong_t,
    }
}

abi_struct! {
    /// `struct xen_feature_info` (`XENVER_get_features`).
    pub struct xen_feature_info [size 8, align 4] {
        /// IN: which 32-bit word of features.
        0 => submap_idx: u32,
        /// OUT: `XENFEAT_*` bits of that word.
        4 => submap: u32,
    }
}

abi_struct! {
    /// `struct xen_build_id` (`XENVER_build_id`): `len` followed by `len` bytes
    /// (a flexible array in C, not part of the struct's size).
    pub struct xen_build_id [size 4, align 4] {
        /// IN: buffer size; OUT: id length.
        0 => len: u32,
    }
}
