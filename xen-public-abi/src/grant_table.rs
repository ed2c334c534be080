//! `xen/include/public/grant_table.h`: grant tables, `__HYPERVISOR_grant_table_op`
//! and its `GNTTABOP_*` argument structs, the v1 and v2 shared entries, the
//! `GTF_*` entry flags, `GNTMAP_*` mapping flags, `GNTCOPY_*` and the `GNTST_*`
//! status codes.
//!
//! A domain shares a table of grant entries with the hypervisor; entry `ref`
//! says which other domain may map or copy which of its frames. The hypervisor
//! side is `hypervisor/src/common/grant_table/` (v1 only, see `docs/grant-tables.md`).

use static_assertions::const_assert_eq;

use crate::xen::domid_t;

/// `grant_ref_t`: an index into a domain's grant table.
pub type grant_ref_t = u32;
/// `grant_handle_t`: a mapping handle returned by `GNTTABOP_map_grant_ref`.
pub type grant_handle_t = u32;
/// `grant_status_t`: a v2 status word.
pub type grant_status_t = u16;

// ---- shared entries --------------------------------------------------------------

abi_struct! {
    /// `struct grant_entry_v1`: one v1 entry, 8 bytes.
    pub struct grant_entry_v1 [size 8, align 4] {
        /// `GTF_*`: type and flags (the guest writes the type, Xen the busy bits).
        0 => flags: u16,
        /// The domain being granted access.
        2 => domid: domid_t,
        /// The granted gfn (`GTF_permit_access`).
        4 => frame: u32,
    }
}

abi_struct! {
    /// `struct grant_entry_header`: the prefix v1 and v2 entries share.
    pub struct grant_entry_header [size 4, align 2] {
        0 => flags: u16,
        2 => domid: domid_t,
    }
}

abi_struct! {
    /// The `full_page` member of `union grant_entry_v2`.
    pub struct grant_entry_v2_full_page [size 16, align 8] {
        0 => hdr: grant_entry_header,
        4 => pad0: u32,
        8 => frame: u64,
    }
}

abi_struct! {
    /// The `sub_page` member of `union grant_entry_v2`.
    pub struct grant_entry_v2_sub_page [size 16, align 8] {
        0 => hdr: grant_entry_header,
        4 => page_off: u16,
        6 => length: u16,
        8 => frame: u64,
    }
}

abi_struct! {
    /// The `transitive` member of `union grant_entry_v2`.
    pub struct grant_entry_v2_transitive [size 12, align 4] {
        0 => hdr: grant_entry_header,
        4 => trans_domid: domid_t,
        6 => pad0: u16,
        8 => gref: grant_ref_t,
    }
}

abi_union! {
    /// `union grant_entry_v2`: one v2 entry, 16 bytes.
    pub union grant_entry_v2 [size 16, align 8] as [u64; 2] {
        hdr: grant_entry_header,
        full_page: grant_entry_v2_full_page,
        sub_page: grant_entry_v2_sub_page,
        transitive: grant_entry_v2_transitive,
        __spacer: [u32; 4],
    }
}

/// `GNTTAB_NR_RESERVED_ENTRIES`: entries kept across version changes, seeded by
/// the toolstack.
pub const GNTTAB_NR_RESERVED_ENTRIES: u32 = 8;
/// `GNTTAB_RESERVED_CONSOLE`: the console ring's entry.
pub const GNTTAB_RESERVED_CONSOLE: u32 = 0;
/// `GNTTAB_RESERVED_XENSTORE`: the xenstore ring's entry.
pub const GNTTAB_RESERVED_XENSTORE: u32 = 1;

// ---- GTF_* entry flags -----------------------------------------------------------

/// `GTF_invalid`: the entry grants nothing.
pub const GTF_invalid: u16 = 0;
/// `GTF_permit_access`: `domid` may map/access `frame`.
pub const GTF_permit_access: u16 = 1;
/// `GTF_accept_transfer`: `domid` may transfer a frame to this domain.
pub const GTF_accept_transfer: u16 = 2;
/// `GTF_transitive` (v2): access through another domain's grant.
pub const GTF_transitive: u16 = 3;
/// `GTF_type_mask`.
pub const GTF_type_mask: u16 = 3;
/// `GTF_readonly`: read-only mappings and copies only.
pub const GTF_readonly: u16 = 1 << 2;
/// `GTF_reading`: mapped (or being copied) for reading; set by Xen.
pub const GTF_reading: u16 = 1 << 3;
/// `GTF_writing`: mapped (or being copied) for writing; set by Xen.
pub const GTF_writing: u16 = 1 << 4;
/// `GTF_PWT`.
pub const GTF_PWT: u16 = 1 << 5;
/// `GTF_PCD`.
pub const GTF_PCD: u16 = 1 << 6;
/// `GTF_PAT`.
pub const GTF_PAT: u16 = 1 << 7;
/// `GTF_sub_page` (v2): only a sub-range may be copied, never mapped.
pub const GTF_sub_page: u16 = 1 << 8;
/// `GTF_transfer_committed`.
pub const GTF_transfer_committed: u16 = 1 << 2;
/// `GTF_transfer_completed`.
pub const GTF_transfer_completed: u16 = 1 << 3;

assert_flags!([
    GTF_readonly = 2,
    GTF_reading = 3,
    GTF_writing = 4,
    GTF_PWT = 5,
    GTF_PCD = 6,
    GTF_PAT = 7,
    GTF_sub_page = 8,
    GTF_transfer_committed = 2,
    GTF_transfer_completed = 3,
]);
const_assert_eq!(
    GTF_type_mask,
    GTF_permit_access | GTF_accept_transfer | GTF_transitive
);

// ---- GNTTABOP_* ------------------------------------------------------------------

/// `GNTTABOP_map_grant_ref`.
pub const GNTTABOP_map_grant_ref: u32 = 0;
/// `GNTTABOP_unmap_grant_ref`.
pub const GNTTABOP_unmap_grant_ref: u32 = 1;
/// `GNTTABOP_setup_table`.
pub const GNTTABOP_setup_table: u32 = 2;
/// `GNTTABOP_dump_table`.
pub const GNTTABOP_dump_table: u32 = 3;
/// `GNTTABOP_transfer` (PV only).
pub const GNTTABOP_transfer: u32 = 4;
/// `GNTTABOP_copy`.
pub const GNTTABOP_copy: u32 = 5;
/// `GNTTABOP_query_size`.
pub const GNTTABOP_query_size: u32 = 6;
/// `GNTTABOP_unmap_and_replace`.
pub const GNTTABOP_unmap_and_replace: u32 = 7;
/// `GNTTABOP_set_version`.
pub const GNTTABOP_set_version: u32 = 8;
/// `GNTTABOP_get_status_frames`.
pub const GNTTABOP_get_status_frames: u32 = 9;
/// `GNTTABOP_get_version`.
pub const GNTTABOP_get_version: u32 = 10;
/// `GNTTABOP_swap_grant_ref`.
pub const GNTTABOP_swap_grant_ref: u32 = 11;
/// `GNTTABOP_cache_flush`.
pub const GNTTABOP_cache_flush: u32 = 12;

// ---- argument structs ------------------------------------------------------------

abi_struct! {
    /// `struct gnttab_map_grant_ref` (`GNTTABOP_map_grant_ref`).
    pub struct gnttab_map_grant_ref [size 32, align 8] {
        /// IN: with `GNTMAP_host_map`, where to map (a translated caller: a
        /// guest-physical address of its own).
        0 => host_addr: u64,
        /// IN: `GNTMAP_*`.
        8 => flags: u32,
        /// IN: the grant reference in `dom`'s table.
        12 => r#ref: grant_ref_t,
        /// IN: the granting domain.
        16 => dom: domid_t,
        /// OUT: `GNTST_*`.
        18 => status: i16,
        /// OUT: the mapping's handle.
        20 => handle: grant_handle_t,
        /// OUT: the frame's bus address.
        24 => dev_bus_addr: u64,
    }
}

abi_struct! {
    /// `struct gnttab_unmap_grant_ref` (`GNTTABOP_unmap_grant_ref`).
    pub struct gnttab_unmap_grant_ref [size 24, align 8] {
        0 => host_addr: u64,
        8 => dev_bus_addr: u64,
        16 => handle: grant_handle_t,
        /// OUT: `GNTST_*`.
        20 => status: i16,
        22 => _implicit0: [u8; 2],
    }
}

abi_struct! {
    /// `struct gnttab_setup_table` (`GNTTABOP_setup_table`).
    pub struct gnttab_setup_table [size 24, align 8] {
        0 => dom: domid_t,
        2 => _implicit0: [u8; 2],
        4 => nr_frames: u32,
        /// OUT: `GNTST_*`.
        8 => status: i16,
        10 => _implicit1: [u8; 6],
        /// `XEN_GUEST_HANDLE(xen_pfn_t)`: where the frames' gfns go.
        16 => frame_list: u64,
    }
}

abi_struct! {
    /// `struct gnttab_dump_table` (`GNTTABOP_dump_table`).
    pub struct gnttab_dump_table [size 4, align 2] {
        0 => dom: domid_t,
        2 => status: i16,
    }
}

abi_struct! {
    /// `struct gnttab_transfer` (`GNTTABOP_transfer`, PV only).
    pub struct gnttab_transfer [size 24, align 8] {
        0 => mfn: u64,
        8 => domid: domid_t,
        10 => _implicit0: [u8; 2],
        12 => r#ref: grant_ref_t,
        16 => status: i16,
        18 => _implicit1: [u8; 6],
    }
}

/// `GNTCOPY_source_gref`: the source is a grant reference (else a gmfn).
pub const GNTCOPY_source_gref: u16 = 1 << 0;
/// `GNTCOPY_dest_gref`: the destination is a grant reference.
pub const GNTCOPY_dest_gref: u16 = 1 << 1;
assert_flags!([GNTCOPY_source_gref = 0, GNTCOPY_dest_gref = 1]);

abi_union! {
    /// The anonymous union `u` of `struct gnttab_copy_ptr`.
    pub union gnttab_copy_ptr_u [size 8, align 8] as [u64; 1] {
        r#ref: grant_ref_t,
        gmfn: u64,
    }
}

abi_struct! {
    /// `struct gnttab_copy_ptr`: one end of a `GNTTABOP_copy`.
    pub struct gnttab_copy_ptr [size 16, align 8] {
        /// A grant reference or a gmfn (`GNTCOPY_*`).
        0 => u: gnttab_copy_ptr_u,
        8 => domid: domid_t,
        10 => offset: u16,
        12 => _implicit0: [u8; 4],
    }
}

abi_struct! {
    /// `struct gnttab_copy` (`GNTTABOP_copy`).
    pub struct gnttab_copy [size 40, align 8] {
        0 => source: gnttab_copy_ptr,
        16 => dest: gnttab_copy_ptr,
        32 => len: u16,
        /// `GNTCOPY_*`.
        34 => flags: u16,
        /// OUT: `GNTST_*`.
        36 => status: i16,
        38 => _implicit0: [u8; 2],
    }
}

abi_struct! {
    /// `struct gnttab_query_size` (`GNTTABOP_query_size`).
    pub struct gnttab_query_size [size 16, align 4] {
        0 => dom: domid_t,
        2 => _implicit0: [u8; 2],
        4 => nr_frames: u32,
        8 => max_nr_frames: u32,
        12 => status: i16,
        14 => _implicit1: [u8; 2],
    }
}

abi_struct! {
    /// `struct gnttab_unmap_and_replace` (`GNTTABOP_unmap_and_replace`).
    pub struct gnttab_unmap_and_replace [size 24, align 8] {
        0 => host_addr: u64,
        8 => new_addr: u64,
        16 => handle: grant_handle_t,
        20 => status: i16,
        22 => _implicit0: [u8; 2],
    }
}

abi_struct! {
    /// `struct gnttab_set_version` (`GNTTABOP_set_version`).
    pub struct gnttab_set_version [size 4, align 4] {
        /// IN: 1 or 2; OUT: the version in effect.
        0 => version: u32,
    }
}

abi_struct! {
    /// `struct gnttab_get_status_frames` (`GNTTABOP_get_status_frames`).
    pub struct gnttab_get_status_frames [size 16, align 8] {
        0 => nr_frames: u32,
        4 => dom: domid_t,
        6 => status: i16,
        /// `XEN_GUEST_HANDLE(uint64_t)`.
        8 => frame_list: u64,
    }
}

abi_struct! {
    /// `struct gnttab_get_version` (`GNTTABOP_get_version`).
    pub struct gnttab_get_version [size 8, align 4] {
        0 => dom: domid_t,
        2 => pad: u16,
        /// OUT.
        4 => version: u32,
    }
}

abi_struct! {
    /// `struct gnttab_swap_grant_ref` (`GNTTABOP_swap_grant_ref`).
    pub struct gnttab_swap_grant_ref [size 12, align 4] {
        0 => ref_a: grant_ref_t,
        4 => ref_b: grant_ref_t,
        8 => status: i16,
        10 => _implicit0: [u8; 2],
    }
}

abi_union! {
    /// The anonymous union `a` of `struct gnttab_cache_flush`.
    pub union gnttab_cache_flush_a [size 8, align 8] as [u64; 1] {
        dev_bus_addr: u64,
        r#ref: grant_ref_t,
    }
}

abi_struct! {
    /// `struct gnttab_cache_flush` (`GNTTABOP_cache_flush`).
    pub struct gnttab_cache_flush [size 16, align 8] {
        0 => a: gnttab_cache_flush_a,
        8 => offset: u16,
        10 => length: u16,
        12 => op: u32,
    }
}

/// `GNTTAB_CACHE_CLEAN`.
pub const GNTTAB_CACHE_CLEAN: u32 = 1 << 0;
/// `GNTTAB_CACHE_INVAL`.
pub const GNTTAB_CACHE_INVAL: u32 = 1 << 1;
/// `GNTTAB_CACHE_SOURCE_GREF`.
pub const GNTTAB_CACHE_SOURCE_GREF: u32 = 1 << 31;
assert_flags!([
    GNTTAB_CACHE_CLEAN = 0,
    GNTTAB_CACHE_INVAL = 1,
    GNTTAB_CACHE_SOURCE_GREF = 31,
]);

// ---- GNTMAP_* --------------------------------------------------------------------

/// `GNTMAP_device_map`: for I/O devices (not for translated callers).
pub const GNTMAP_device_map: u32 = 1 << 0;
/// `GNTMAP_host_map`: for the CPUs, at `host_addr`.
pub const GNTMAP_host_map: u32 = 1 << 1;
/// `GNTMAP_readonly`.
pub const GNTMAP_readonly: u32 = 1 << 2;
/// `GNTMAP_application_map` (PV).
pub const GNTMAP_application_map: u32 = 1 << 3;
/// `GNTMAP_contains_pte` (PV): `host_addr` is the machine address of a PTE.
pub const GNTMAP_contains_pte: u32 = 1 << 4;
/// `GNTMAP_guest_avail_mask`.
pub const GNTMAP_guest_avail_mask: u32 = !0u32 << 16;
assert_flags!([
    GNTMAP_device_map = 0,
    GNTMAP_host_map = 1,
    GNTMAP_readonly = 2,
    GNTMAP_application_map = 3,
    GNTMAP_contains_pte = 4,
]);

// ---- GNTST_* ---------------------------------------------------------------------

/// `GNTST_okay`.
pub const GNTST_okay: i16 = 0;
/// `GNTST_general_error`.
pub const GNTST_general_error: i16 = -1;
/// `GNTST_bad_domain`: unknown domain id.
pub const GNTST_bad_domain: i16 = -2;
/// `GNTST_bad_gntref`: unknown or inappropriate grant reference.
pub const GNTST_bad_gntref: i16 = -3;
/// `GNTST_bad_handle`.
pub const GNTST_bad_handle: i16 = -4;
/// `GNTST_bad_virt_addr`.
pub const GNTST_bad_virt_addr: i16 = -5;
/// `GNTST_bad_dev_addr`.
pub const GNTST_bad_dev_addr: i16 = -6;
/// `GNTST_no_device_space`.
pub const GNTST_no_device_space: i16 = -7;
/// `GNTST_permission_denied`.
pub const GNTST_permission_denied: i16 = -8;
/// `GNTST_bad_page`.
pub const GNTST_bad_page: i16 = -9;
/// `GNTST_bad_copy_arg`: the copy crosses a page boundary.
pub const GNTST_bad_copy_arg: i16 = -10;
/// `GNTST_address_too_big`.
pub const GNTST_address_too_big: i16 = -11;
/// `GNTST_eagain`.
pub const GNTST_eagain: i16 = -12;
/// `GNTST_no_space`: out of handles.
pub const GNTST_no_space: i16 = -13;
