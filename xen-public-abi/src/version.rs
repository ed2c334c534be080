//! `xen/include/public/version.h` and `features.h`: `__HYPERVISOR_xen_version`, its
//! `XENVER_*` commands and argument types, and the `XENFEAT_*` feature bits that
//! `XENVER_get_features` reports.

use crate::xen::xen_ulong_t;

/// `XENVER_version`: returns `(major << 16) | minor`.
pub const XENVER_version: u32 = 0;
/// `XENVER_extraversion`: `xen_extraversion_t`.
pub const XENVER_extraversion: u32 = 1;
/// `xen_extraversion_t`.
pub type xen_extraversion_t = [u8; 16];
/// `XENVER_compile_info`: `struct xen_compile_info`.
pub const XENVER_compile_info: u32 = 2;
/// `XENVER_capabilities`: `xen_capabilities_info_t`.
pub const XENVER_capabilities: u32 = 3;
/// `xen_capabilities_info_t`.
pub type xen_capabilities_info_t = [u8; 1024];
/// `XENVER_changeset`: `xen_changeset_info_t`.
pub const XENVER_changeset: u32 = 4;
/// `xen_changeset_info_t`.
pub type xen_changeset_info_t = [u8; 64];
/// `XENVER_platform_parameters`: `struct xen_platform_parameters`.
pub const XENVER_platform_parameters: u32 = 5;
/// `XENVER_get_features`: `struct xen_feature_info`.
pub const XENVER_get_features: u32 = 6;
/// `XENVER_pagesize`: returns the page size (argument must be NULL).
pub const XENVER_pagesize: u32 = 7;
/// `XENVER_guest_handle`: the domain's `xen_domain_handle_t`.
pub const XENVER_guest_handle: u32 = 8;
/// `XENVER_commandline`: `xen_commandline_t`.
pub const XENVER_commandline: u32 = 9;
/// `xen_commandline_t`.
pub type xen_commandline_t = [u8; 1024];
/// `XENVER_build_id`: `struct xen_build_id` (variable length).
pub const XENVER_build_id: u32 = 10;

abi_struct! {
    /// `struct xen_compile_info`.
    pub struct xen_compile_info [size 144, align 1] {
        0 => compiler: [u8; 64],
        64 => compile_by: [u8; 16],
        80 => compile_domain: [u8; 32],
        112 => compile_date: [u8; 32],
    }
}

abi_struct! {
    /// `struct xen_platform_parameters`.
    pub struct xen_platform_parameters [size 8, align 8] {
        0 => virt_start: xen_ulong_t,
    }
}

abi_struct! {
    /// `struct xen_feature_info`.
    pub struct xen_feature_info [size 8, align 4] {
        /// IN: which 32-bit submap to return.
        0 => submap_idx: u32,
        /// OUT: the submap.
        4 => submap: u32,
    }
}

// ---- features.h ------------------------------------------------------------------

pub const XENFEAT_writable_page_tables: u32 = 0;
pub const XENFEAT_writable_descriptor_tables: u32 = 1;
pub const XENFEAT_auto_translated_physmap: u32 = 2;
pub const XENFEAT_supervisor_mode_kernel: u32 = 3;
pub const XENFEAT_pae_pgdir_above_4gb: u32 = 4;
pub const XENFEAT_mmu_pt_update_preserve_ad: u32 = 5;
pub const XENFEAT_highmem_assist: u32 = 6;
pub const XENFEAT_gnttab_map_avail_bits: u32 = 7;
pub const XENFEAT_hvm_callback_vector: u32 = 8;
pub const XENFEAT_hvm_safe_pvclock: u32 = 9;
pub const XENFEAT_hvm_pirqs: u32 = 10;
pub const XENFEAT_dom0: u32 = 11;
pub const XENFEAT_grant_map_identity: u32 = 12;
pub const XENFEAT_memory_op_vnode_supported: u32 = 13;
pub const XENFEAT_ARM_SMCCC_supported: u32 = 14;
pub const XENFEAT_linux_rsdp_unrestricted: u32 = 15;
pub const XENFEAT_not_direct_mapped: u32 = 16;
pub const XENFEAT_direct_mapped: u32 = 17;
/// `XENFEAT_NR_SUBMAPS`: only submap 0 exists.
pub const XENFEAT_NR_SUBMAPS: u32 = 1;
