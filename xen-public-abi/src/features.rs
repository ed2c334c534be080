//! `xen/include/public/features.h`: the `XENFEAT_*` bits returned by
//! `XENVER_get_features` (bit numbers within submap 0).

/// `XENFEAT_writable_page_tables`.
pub const XENFEAT_writable_page_tables: u32 = 0;
/// `XENFEAT_writable_descriptor_tables`.
pub const XENFEAT_writable_descriptor_tables: u32 = 1;
/// `XENFEAT_auto_translated_physmap`: the guest sees a p2m-translated physmap
/// (every HVM/PVH guest).
pub const XENFEAT_auto_translated_physmap: u32 = 2;
/// `XENFEAT_supervisor_mode_kernel`.
pub const XENFEAT_supervisor_mode_kernel: u32 = 3;
/// `XENFEAT_pae_pgdir_above_4gb`.
pub const XENFEAT_pae_pgdir_above_4gb: u32 = 4;
/// `XENFEAT_mmu_pt_update_preserve_ad`.
pub const XENFEAT_mmu_pt_update_preserve_ad: u32 = 5;
/// `XENFEAT_highmem_assist`.
pub const XENFEAT_highmem_assist: u32 = 6;
/// `XENFEAT_gnttab_map_avail_bits`.
pub const XENFEAT_gnttab_map_avail_bits: u32 = 7;
/// `XENFEAT_hvm_callback_vector`: `HVM_PARAM_CALLBACK_TYPE_VECTOR` is supported.
pub const XENFEAT_hvm_callback_vector: u32 = 8;
/// `XENFEAT_hvm_safe_pvclock`.
pub const XENFEAT_hvm_safe_pvclock: u32 = 9;
/// `XENFEAT_hvm_pirqs`.
pub const XENFEAT_hvm_pirqs: u32 = 10;
/// `XENFEAT_dom0`: the domain is the initial domain.
pub const XENFEAT_dom0: u32 = 11;
/// `XENFEAT_memory_op_vnode_supported`.
pub const XENFEAT_memory_op_vnode_supported: u32 = 13;
/// `XENFEAT_ARM_SMCCC_supported`.
pub const XENFEAT_ARM_SMCCC_supported: u32 = 14;
/// `XENFEAT_linux_rsdp_unrestricted`.
pub const XENFEAT_linux_rsdp_unrestricted: u32 = 15;
/// `XENFEAT_not_direct_mapped`.
pub const XENFEAT_not_direct_mapped: u32 = 16;
/// `XENFEAT_direct_mapped`.
pub const XENFEAT_direct_mapped: u32 = 17;
/// `XENFEAT_NR_SUBMAPS`: number of 32-bit feature words.
pub const XENFEAT_NR_SUBMAPS: u32 = 1;
