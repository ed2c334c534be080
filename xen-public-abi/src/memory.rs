//! `xen/include/public/memory.h`: `__HYPERVISOR_memory_op` and its `XENMEM_*`
//! sub-ops: reservations (populate_physmap, increase/decrease), placing special
//! pages in the physmap (`XENMEM_add_to_physmap(_batch)`, `XENMAPSPACE_*`), memory
//! maps, memory access rights (`xenmem_access_t`) and resource mapping.

use crate::xen::{domid_t, xen_pfn_t, xen_ulong_t, XEN_GUEST_HANDLE_64};

/// `XENMEM_increase_reservation`: `xen_memory_reservation`.
pub const XENMEM_increase_reservation: u32 = 0;
/// `XENMEM_decrease_reservation`: `xen_memory_reservation`.
pub const XENMEM_decrease_reservation: u32 = 1;
/// `XENMEM_maximum_ram_page`.
pub const XENMEM_maximum_ram_page: u32 = 2;
/// `XENMEM_current_reservation`: argument is a `domid_t`.
pub const XENMEM_current_reservation: u32 = 3;
/// `XENMEM_maximum_reservation`: argument is a `domid_t`.
pub const XENMEM_maximum_reservation: u32 = 4;
/// `XENMEM_machphys_mfn_list`.
pub const XENMEM_machphys_mfn_list: u32 = 5;
/// `XENMEM_populate_physmap`: `xen_memory_reservation`, allocate frames at the
/// given gpfns.
pub const XENMEM_populate_physmap: u32 = 6;
/// `XENMEM_add_to_physmap`: `xen_add_to_physmap`.
pub const XENMEM_add_to_physmap: u32 = 7;
/// `XENMEM_memory_map`: `xen_memory_map` (the caller's E820).
pub const XENMEM_memory_map: u32 = 9;
/// `XENMEM_machine_memory_map`.
pub const XENMEM_machine_memory_map: u32 = 10;
/// `XENMEM_exchange`: `xen_memory_exchange`.
pub const XENMEM_exchange: u32 = 11;
/// `XENMEM_machphys_mapping`.
pub const XENMEM_machphys_mapping: u32 = 12;
/// `XENMEM_set_memory_map`: `xen_foreign_memory_map`.
pub const XENMEM_set_memory_map: u32 = 13;
/// `XENMEM_maximum_gpfn`: argument is a `domid_t`.
pub const XENMEM_maximum_gpfn: u32 = 14;
/// `XENMEM_remove_from_physmap`: `xen_remove_from_physmap`.
pub const XENMEM_remove_from_physmap: u32 = 15;
/// `XENMEM_set_pod_target`: `xen_pod_target`.
pub const XENMEM_set_pod_target: u32 = 16;
/// `XENMEM_get_pod_target`: `xen_pod_target`.
pub const XENMEM_get_pod_target: u32 = 17;
/// `XENMEM_get_sharing_freed_pages`.
pub const XENMEM_get_sharing_freed_pages: u32 = 18;
/// `XENMEM_get_sharing_shared_pages`.
pub const XENMEM_get_sharing_shared_pages: u32 = 19;
/// `XENMEM_paging_op`.
pub const XENMEM_paging_op: u32 = 20;
/// `XENMEM_access_op`: `xen_mem_access_op`.
pub const XENMEM_access_op: u32 = 21;
/// `XENMEM_sharing_op`.
pub const XENMEM_sharing_op: u32 = 22;
/// `XENMEM_add_to_physmap_batch`: `xen_add_to_physmap_batch`.
pub const XENMEM_add_to_physmap_batch: u32 = 23;
/// `XENMEM_claim_pages`.
pub const XENMEM_claim_pages: u32 = 24;
/// `XENMEM_machphys_compat_mfn_list`.
pub const XENMEM_machphys_compat_mfn_list: u32 = 25;
/// `XENMEM_get_vnumainfo`.
pub const XENMEM_get_vnumainfo: u32 = 26;
/// `XENMEM_reserved_device_memory_map`.
pub const XENMEM_reserved_device_memory_map: u32 = 27;
/// `XENMEM_acquire_resource`: `xen_mem_acquire_resource`.
pub const XENMEM_acquire_resource: u32 = 28;

// ---- reservations ----------------------------------------------------------------

/// `XENMEMF_populate_on_demand`.
pub const XENMEMF_populate_on_demand: u32 = 1 << 16;
/// `XENMEMF_exact_node_request`.
pub const XENMEMF_exact_node_request: u32 = 1 << 17;
/// `XENMEMF_vnode`: the node in `mem_flags` is a virtual node.
pub const XENMEMF_vnode: u32 = 1 << 18;
assert_flags!([
    XENMEMF_populate_on_demand = 16,
    XENMEMF_exact_node_request = 17,
    XENMEMF_vnode = 18,
]);

/// `XENMEMF_address_bits(x)`: restrict frames to below 2^x (bits 7:0).
pub const fn XENMEMF_address_bits(x: u32) -> u32 {
    x
}
/// `XENMEMF_get_address_bits(x)`.
pub const fn XENMEMF_get_address_bits(x: u32) -> u32 {
    x & 0xff
}
/// `XENMEMF_node(x)`: prefer NUMA node `x` (stored as x + 1 in bits 15:8).
pub const fn XENMEMF_node(x: u32) -> u32 {
    (x + 1) << 8
}
/// `XENMEMF_get_node(x)`.
pub const fn XENMEMF_get_node(x: u32) -> u32 {
    ((x >> 8).wrapping_sub(1)) & 0xff
}

abi_struct! {
    /// `struct xen_memory_reservation` (increase/decrease_reservation, populate_physmap).
    pub struct xen_memory_reservation [size 32, align 8] {
        /// Guest handle of `xen_pfn_t[nr_extents]` (IN gpfns for populate_physmap).
        0 => extent_start: XEN_GUEST_HANDLE_64,
        /// Number of extents.
        8 => nr_extents: xen_ulong_t,
        /// Each extent is 2^extent_order pages.
        16 => extent_order: u32,
        /// `XENMEMF_*`.
        20 => mem_flags: u32,
        /// The target domain.
        24 => domid: domid_t,
        26 => _implicit0: [u8; 6],
    }
}

abi_struct! {
    /// `struct xen_memory_exchange` (`XENMEM_exchange`).
    pub struct xen_memory_exchange [size 72, align 8] {
        0 => r#in: xen_memory_reservation,
        32 => out: xen_memory_reservation,
        /// OUT: extents exchanged so far.
        64 => nr_exchanged: xen_ulong_t,
    }
}

abi_struct! {
    /// `struct xen_memory_domain`.
    pub struct xen_memory_domain [size 2, align 2] {
        0 => domid: domid_t,
    }
}

abi_struct! {
    /// `struct xen_machphys_mapping` (`XENMEM_machphys_mapping`, PV).
    pub struct xen_machphys_mapping [size 24, align 8] {
        0 => v_start: xen_ulong_t,
        8 => v_end: xen_ulong_t,
        16 => max_mfn: xen_ulong_t,
    }
}

// ---- add_to_physmap ----------------------------------------------------------------

/// `XENMAPSPACE_shared_info`: map the `shared_info` page.
pub const XENMAPSPACE_shared_info: u32 = 0;
/// `XENMAPSPACE_grant_table`: map a grant-table frame.
pub const XENMAPSPACE_grant_table: u32 = 1;
/// `XENMAPSPACE_gmfn`: move a guest frame.
pub const XENMAPSPACE_gmfn: u32 = 2;
/// `XENMAPSPACE_gmfn_range`: move a range of guest frames (add_to_physmap only).
pub const XENMAPSPACE_gmfn_range: u32 = 3;
/// `XENMAPSPACE_gmfn_foreign`: map another domain's frame.
pub const XENMAPSPACE_gmfn_foreign: u32 = 4;
/// `XENMAPSPACE_dev_mmio`: device MMIO (Arm only).
pub const XENMAPSPACE_dev_mmio: u32 = 5;
/// `XENMAPIDX_grant_table_status`: `idx` flag selecting grant status frames.
pub const XENMAPIDX_grant_table_status: u64 = 0x8000_0000;

abi_struct! {
    /// `struct xen_add_to_physmap` (`XENMEM_add_to_physmap`).
    pub struct xen_add_to_physmap [size 24, align 8] {
        0 => domid: domid_t,
        /// Number of frames for `XENMAPSPACE_gmfn_range`.
        2 => size: u16,
        /// `XENMAPSPACE_*`.
        4 => space: u32,
        /// Index in the space (e.g. grant frame number).
        8 => idx: xen_ulong_t,
        /// Where to map it.
        16 => gpfn: xen_pfn_t,
    }
}

abi_union! {
    /// `union xen_add_to_physmap_batch_extra`.
    pub union xen_add_to_physmap_batch_extra [size 2, align 2] as [u16; 1] {
        /// `XENMAPSPACE_gmfn_foreign`: the foreign domain.
        foreign_domid: domid_t,
        /// Other spaces: must be zero.
        res0: u16 as dup,
    }
}

abi_struct! {
    /// `struct xen_add_to_physmap_batch` (`XENMEM_add_to_physmap_batch`).
    pub struct xen_add_to_physmap_batch [size 32, align 8] {
        0 => domid: domid_t,
        /// `XENMAPSPACE_*` (not `gmfn_range`).
        2 => space: u16,
        /// Number of entries in the three lists.
        4 => size: u16,
        6 => u: xen_add_to_physmap_batch_extra,
        /// Guest handle of `xen_ulong_t[size]`.
        8 => idxs: XEN_GUEST_HANDLE_64,
        /// Guest handle of `xen_pfn_t[size]`.
        16 => gpfns: XEN_GUEST_HANDLE_64,
        /// Guest handle of `int[size]`: per-entry result.
        24 => errs: XEN_GUEST_HANDLE_64,
    }
}

abi_struct! {
    /// `struct xen_remove_from_physmap` (`XENMEM_remove_from_physmap`).
    pub struct xen_remove_from_physmap [size 16, align 8] {
        0 => domid: domid_t,
        2 => _implicit0: [u8; 6],
        8 => gpfn: xen_pfn_t,
    }
}

// ---- memory maps, PoD --------------------------------------------------------------

abi_struct! {
    /// `struct xen_memory_map` (`XENMEM_memory_map`, `XENMEM_machine_memory_map`).
    pub struct xen_memory_map [size 16, align 8] {
        /// IN: capacity of `buffer`; OUT: entries written.
        0 => nr_entries: u32,
        4 => _implicit0: [u8; 4],
        /// Guest handle of E820 entries (20 bytes each).
        8 => buffer: XEN_GUEST_HANDLE_64,
    }
}

abi_struct! {
    /// `struct xen_foreign_memory_map` (`XENMEM_set_memory_map`).
    pub struct xen_foreign_memory_map [size 24, align 8] {
        0 => domid: domid_t,
        2 => _implicit0: [u8; 6],
        8 => map: xen_memory_map,
    }
}

abi_struct! {
    /// `struct xen_pod_target` (`XENMEM_set/get_pod_target`).
    pub struct xen_pod_target [size 40, align 8] {
        0 => target_pages: u64,
        8 => tot_pages: u64,
        16 => pod_cache_pages: u64,
        24 => pod_entries: u64,
        32 => domid: domid_t,
        34 => _implicit0: [u8; 6],
    }
}

// ---- memory access -------------------------------------------------------------------

/// `XENMEM_access_op_set_access`.
pub const XENMEM_access_op_set_access: u8 = 0;
/// `XENMEM_access_op_get_access`.
pub const XENMEM_access_op_get_access: u8 = 1;
/// `XENMEM_access_op_set_access_multi`.
pub const XENMEM_access_op_set_access_multi: u8 = 4;

/// `xenmem_access_t` (a C enum, 4 bytes): a page's access rights in a p2m view.
pub type xenmem_access_t = u32;
/// `XENMEM_access_n`: no access.
pub const XENMEM_access_n: xenmem_access_t = 0;
/// `XENMEM_access_r`.
pub const XENMEM_access_r: xenmem_access_t = 1;
/// `XENMEM_access_w`.
pub const XENMEM_access_w: xenmem_access_t = 2;
/// `XENMEM_access_rw`.
pub const XENMEM_access_rw: xenmem_access_t = 3;
/// `XENMEM_access_x`.
pub const XENMEM_access_x: xenmem_access_t = 4;
/// `XENMEM_access_rx`.
pub const XENMEM_access_rx: xenmem_access_t = 5;
/// `XENMEM_access_wx`.
pub const XENMEM_access_wx: xenmem_access_t = 6;
/// `XENMEM_access_rwx`.
pub const XENMEM_access_rwx: xenmem_access_t = 7;
/// `XENMEM_access_rx2rw`: read/execute; the first write makes it rw (one event).
pub const XENMEM_access_rx2rw: xenmem_access_t = 8;
/// `XENMEM_access_n2rwx`: no access; the first access makes it rwx (one event).
pub const XENMEM_access_n2rwx: xenmem_access_t = 9;
/// `XENMEM_access_default`: the view's default access (4.17: 10, no `r_pw`).
pub const XENMEM_access_default: xenmem_access_t = 10;

/// `xenmem_access_t`, typed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[repr(u32)]
pub enum XenmemAccess {
    n = XENMEM_access_n,
    r = XENMEM_access_r,
    w = XENMEM_access_w,
    rw = XENMEM_access_rw,
    x = XENMEM_access_x,
    rx = XENMEM_access_rx,
    wx = XENMEM_access_wx,
    rwx = XENMEM_access_rwx,
    rx2rw = XENMEM_access_rx2rw,
    n2rwx = XENMEM_access_n2rwx,
    default = XENMEM_access_default,
}

impl XenmemAccess {
    /// Every value, in numeric order.
    pub const ALL: [XenmemAccess; 11] = [
        Self::n,
        Self::r,
        Self::w,
        Self::rw,
        Self::x,
        Self::rx,
        Self::wx,
        Self::rwx,
        Self::rx2rw,
        Self::n2rwx,
        Self::default,
    ];

    /// The access for a raw value, or `None` (Xen: `-EINVAL`) if out of range.
    pub const fn from_raw(v: u32) -> Option<Self> {
        if (v as usize) < Self::ALL.len() {
            Some(Self::ALL[v as usize])
        } else {
            None
        }
    }
}

abi_struct! {
    /// `struct xen_mem_access_op` (`XENMEM_access_op`).
    pub struct xen_mem_access_op [size 32, align 8] {
        /// `XENMEM_access_op_*`.
        0 => op: u8,
        /// `xenmem_access_t`.
        1 => access: u8,
        2 => domid: domid_t,
        /// Number of pages (set_access) / entries (set_access_multi).
        4 => nr: u32,
        /// First pfn, or `~0` for the default access.
        8 => pfn: u64,
        /// Guest handle of `u64` pfns (set_access_multi).
        16 => pfn_list: XEN_GUEST_HANDLE_64,
        /// Guest handle of `u8` accesses (set_access_multi).
        24 => access_list: XEN_GUEST_HANDLE_64,
    }
}

// ---- acquire_resource ------------------------------------------------------------------

/// `XENMEM_resource_ioreq_server`.
pub const XENMEM_resource_ioreq_server: u16 = 0;
/// `XENMEM_resource_grant_table`.
pub const XENMEM_resource_grant_table: u16 = 1;
/// `XENMEM_resource_vmtrace_buf`.
pub const XENMEM_resource_vmtrace_buf: u16 = 2;
/// `XENMEM_resource_grant_table_id_shared`.
pub const XENMEM_resource_grant_table_id_shared: u32 = 0;
/// `XENMEM_resource_grant_table_id_status`.
pub const XENMEM_resource_grant_table_id_status: u32 = 1;
/// `XENMEM_resource_ioreq_server_frame_bufioreq`.
pub const XENMEM_resource_ioreq_server_frame_bufioreq: u64 = 0;

abi_struct! {
    /// `struct xen_mem_acquire_resource` (`XENMEM_acquire_resource`).
    pub struct xen_mem_acquire_resource [size 32, align 8] {
        0 => domid: domid_t,
        /// `XENMEM_resource_*`.
        2 => r#type: u16,
        4 => id: u32,
        8 => nr_frames: u32,
        12 => pad: u32,
        /// First frame of the resource.
        16 => frame: u64,
        /// Guest handle of `xen_pfn_t[nr_frames]`.
        24 => frame_list: XEN_GUEST_HANDLE_64,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn access_from_raw() {
        for (i, a) in XenmemAccess::ALL.iter().enumerate() {
            assert_eq!(*a as u32, i as u32);
            assert_eq!(XenmemAccess::from_raw(i as u32), Some(*a));
        }
        assert_eq!(XenmemAccess::from_raw(XENMEM_access_default + 1), None);
        assert_eq!(XENMEMF_get_node(XENMEMF_node(3)), 3);
    }
}
