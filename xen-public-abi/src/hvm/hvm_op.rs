//! `xen/include/public/hvm/hvm_op.h`: `__HYPERVISOR_hvm_op` and its `HVMOP_*`
//! sub-ops: parameters, the per-vCPU event-channel upcall vector, and
//! `HVMOP_altp2m` with every sub-op of altp2m interface version 1.
//!
//! Project extension: a domain created without `XEN_DOMCTL_CDF_evtchn_upcall`
//! gets `-ENOSYS` from `HVMOP_set_evtchn_upcall_vector`.

use crate::xen::{domid_t, XEN_GUEST_HANDLE_64};

/// `HVMOP_set_param`: `xen_hvm_param`.
pub const HVMOP_set_param: u32 = 0;
/// `HVMOP_get_param`: `xen_hvm_param`.
pub const HVMOP_get_param: u32 = 1;
/// `HVMOP_flush_tlbs`.
pub const HVMOP_flush_tlbs: u32 = 5;
/// `HVMOP_pagetable_dying`: `xen_hvm_pagetable_dying`.
pub const HVMOP_pagetable_dying: u32 = 9;
/// `HVMOP_get_time`: `xen_hvm_get_time`.
pub const HVMOP_get_time: u32 = 10;
/// `HVMOP_xentrace`.
pub const HVMOP_xentrace: u32 = 11;
/// `HVMOP_set_mem_access` (tools; now `XENMEM_access_op`).
pub const HVMOP_set_mem_access: u32 = 12;
/// `HVMOP_get_mem_access` (tools; now `XENMEM_access_op`).
pub const HVMOP_get_mem_access: u32 = 13;
/// `HVMOP_get_mem_type`: `xen_hvm_get_mem_type`.
pub const HVMOP_get_mem_type: u32 = 15;
/// `HVMOP_set_evtchn_upcall_vector`: `xen_hvm_evtchn_upcall_vector`.
pub const HVMOP_set_evtchn_upcall_vector: u32 = 23;
/// `HVMOP_guest_request_vm_event`.
pub const HVMOP_guest_request_vm_event: u32 = 24;
/// `HVMOP_altp2m`: `xen_hvm_altp2m_op`.
pub const HVMOP_altp2m: u32 = 25;

/// `HVM_IOREQSRV_BUFIOREQ_OFF`.
pub const HVM_IOREQSRV_BUFIOREQ_OFF: u32 = 0;
/// `HVM_IOREQSRV_BUFIOREQ_LEGACY`.
pub const HVM_IOREQSRV_BUFIOREQ_LEGACY: u32 = 1;
/// `HVM_IOREQSRV_BUFIOREQ_ATOMIC`.
pub const HVM_IOREQSRV_BUFIOREQ_ATOMIC: u32 = 2;

abi_struct! {
    /// `struct xen_hvm_param` (`HVMOP_set_param` / `HVMOP_get_param`).
    pub struct xen_hvm_param [size 16, align 8] {
        /// IN.
        0 => domid: domid_t,
        2 => pad: u16,
        /// IN: `HVM_PARAM_*`.
        4 => index: u32,
        /// IN (set) / OUT (get).
        8 => value: u64,
    }
}

abi_struct! {
    /// `struct xen_hvm_pagetable_dying` (`HVMOP_pagetable_dying`).
    pub struct xen_hvm_pagetable_dying [size 16, align 8] {
        0 => domid: domid_t,
        2 => pad: [u16; 3],
        /// Guest-physical address of the dying top-level page table.
        8 => gpa: u64,
    }
}

abi_struct! {
    /// `struct xen_hvm_get_time` (`HVMOP_get_time`).
    pub struct xen_hvm_get_time [size 8, align 8] {
        /// OUT: system time in ns.
        0 => now: u64,
    }
}

/// `hvmmem_type_t` (a C enum, 4 bytes).
pub type hvmmem_type_t = u32;
/// `HVMMEM_ram_rw`.
pub const HVMMEM_ram_rw: hvmmem_type_t = 0;
/// `HVMMEM_ram_ro`.
pub const HVMMEM_ram_ro: hvmmem_type_t = 1;
/// `HVMMEM_mmio_dm`.
pub const HVMMEM_mmio_dm: hvmmem_type_t = 2;
/// `HVMMEM_unused` (was `mmio_write_dm` before 4.7).
pub const HVMMEM_unused: hvmmem_type_t = 3;
/// `HVMMEM_ioreq_server`.
pub const HVMMEM_ioreq_server: hvmmem_type_t = 4;

abi_struct! {
    /// `struct xen_hvm_get_mem_type` (`HVMOP_get_mem_type`).
    pub struct xen_hvm_get_mem_type [size 16, align 8] {
        0 => domid: domid_t,
        /// OUT: `HVMMEM_*`.
        2 => mem_type: u16,
        4 => pad: [u16; 2],
        8 => pfn: u64,
    }
}

abi_struct! {
    /// `struct xen_hvm_evtchn_upcall_vector` (`HVMOP_set_evtchn_upcall_vector`):
    /// deliver this vCPU's event upcall as a plain LAPIC vector.
    pub struct xen_hvm_evtchn_upcall_vector [size 8, align 4] {
        0 => vcpu: u32,
        /// The vector (Xen refuses < 0x10 with `-EINVAL`).
        4 => vector: u8,
        5 => _implicit0: [u8; 3],
    }
}

// ---- HVMOP_altp2m ----------------------------------------------------------------

/// `HVMOP_ALTP2M_INTERFACE_VERSION`: `xen_hvm_altp2m_op.version` must equal it.
pub const HVMOP_ALTP2M_INTERFACE_VERSION: u32 = 0x0000_0001;

/// `HVMOP_altp2m_get_domain_state`: `domain_state`.
pub const HVMOP_altp2m_get_domain_state: u32 = 1;
/// `HVMOP_altp2m_set_domain_state`: `domain_state`.
pub const HVMOP_altp2m_set_domain_state: u32 = 2;
/// `HVMOP_altp2m_vcpu_enable_notify`: `enable_notify` (#VE info page).
pub const HVMOP_altp2m_vcpu_enable_notify: u32 = 3;
/// `HVMOP_altp2m_create_p2m`: `view` (OUT: the new view's index).
pub const HVMOP_altp2m_create_p2m: u32 = 4;
/// `HVMOP_altp2m_destroy_p2m`: `view`.
pub const HVMOP_altp2m_destroy_p2m: u32 = 5;
/// `HVMOP_altp2m_switch_p2m`: `view`, on every vCPU.
pub const HVMOP_altp2m_switch_p2m: u32 = 6;
/// `HVMOP_altp2m_set_mem_access`: `mem_access`.
pub const HVMOP_altp2m_set_mem_access: u32 = 7;
/// `HVMOP_altp2m_change_gfn`: `change_gfn`.
pub const HVMOP_altp2m_change_gfn: u32 = 8;
/// `HVMOP_altp2m_set_mem_access_multi`: `set_mem_access_multi`.
pub const HVMOP_altp2m_set_mem_access_multi: u32 = 9;
/// `HVMOP_altp2m_set_suppress_ve`: `suppress_ve`.
pub const HVMOP_altp2m_set_suppress_ve: u32 = 10;
/// `HVMOP_altp2m_get_suppress_ve`: `suppress_ve`.
pub const HVMOP_altp2m_get_suppress_ve: u32 = 11;
/// `HVMOP_altp2m_get_mem_access`: `mem_access`.
pub const HVMOP_altp2m_get_mem_access: u32 = 12;
/// `HVMOP_altp2m_vcpu_disable_notify`: `disable_notify`.
pub const HVMOP_altp2m_vcpu_disable_notify: u32 = 13;
/// `HVMOP_altp2m_get_p2m_idx`: `get_vcpu_p2m_idx`.
pub const HVMOP_altp2m_get_p2m_idx: u32 = 14;
/// `HVMOP_altp2m_set_suppress_ve_multi`: `suppress_ve_multi`.
pub const HVMOP_altp2m_set_suppress_ve_multi: u32 = 15;
/// `HVMOP_altp2m_set_visibility`: `set_visibility`.
pub const HVMOP_altp2m_set_visibility: u32 = 16;

abi_struct! {
    /// `struct xen_hvm_altp2m_domain_state`.
    pub struct xen_hvm_altp2m_domain_state [size 1, align 1] {
        /// IN (set) / OUT (get): altp2m active for the domain.
        0 => state: u8,
    }
}

abi_struct! {
    /// `struct xen_hvm_altp2m_vcpu_enable_notify`.
    pub struct xen_hvm_altp2m_vcpu_enable_notify [size 16, align 8] {
        0 => vcpu_id: u32,
        4 => pad: u32,
        /// Frame of the #VE information page.
        8 => gfn: u64,
    }
}

abi_struct! {
    /// `struct xen_hvm_altp2m_vcpu_disable_notify`.
    pub struct xen_hvm_altp2m_vcpu_disable_notify [size 4, align 4] {
        0 => vcpu_id: u32,
    }
}

abi_struct! {
    /// `struct xen_hvm_altp2m_view`.
    pub struct xen_hvm_altp2m_view [size 4, align 2] {
        /// IN/OUT: the view index.
        0 => view: u16,
        /// IN (create): `XENMEM_access_*` for pages without explicit access.
        2 => hvmmem_default_access: u16,
    }
}

abi_struct! {
    /// `struct xen_hvm_altp2m_mem_access` (set/get mem access of one gfn).
    pub struct xen_hvm_altp2m_mem_access [size 16, align 8] {
        0 => view: u16,
        /// `XENMEM_access_*`.
        2 => access: u16,
        4 => pad: u32,
        8 => gfn: u64,
    }
}

abi_struct! {
    /// `struct xen_hvm_altp2m_set_mem_access_multi`.
    pub struct xen_hvm_altp2m_set_mem_access_multi [size 32, align 8] {
        0 => view: u16,
        2 => pad: u16,
        /// Number of entries in the lists.
        4 => nr: u32,
        /// IN/OUT: continuation index.
        8 => opaque: u64,
        /// Guest handle of `u64` gfns.
        16 => pfn_list: XEN_GUEST_HANDLE_64,
        /// Guest handle of `u8` accesses.
        24 => access_list: XEN_GUEST_HANDLE_64,
    }
}

abi_struct! {
    /// `struct xen_hvm_altp2m_change_gfn`: in `view`, make `old_gfn` map what
    /// `new_gfn` maps (or restore it when `new_gfn` is `INVALID_GFN`).
    pub struct xen_hvm_altp2m_change_gfn [size 24, align 8] {
        0 => view: u16,
        2 => pad1: u16,
        4 => pad2: u32,
        8 => old_gfn: u64,
        16 => new_gfn: u64,
    }
}

abi_struct! {
    /// `struct xen_hvm_altp2m_suppress_ve`.
    pub struct xen_hvm_altp2m_suppress_ve [size 16, align 8] {
        0 => view: u16,
        /// Boolean.
        2 => suppress_ve: u8,
        3 => pad1: u8,
        4 => pad2: u32,
        8 => gfn: u64,
    }
}

abi_struct! {
    /// `struct xen_hvm_altp2m_suppress_ve_multi`.
    pub struct xen_hvm_altp2m_suppress_ve_multi [size 32, align 8] {
        0 => view: u16,
        /// Boolean.
        2 => suppress_ve: u8,
        3 => pad1: u8,
        /// OUT: the first error met.
        4 => first_error: i32,
        /// IN/OUT: advances as the range is done (continuation).
        8 => first_gfn: u64,
        16 => last_gfn: u64,
        /// OUT: the gfn of `first_error`.
        24 => first_error_gfn: u64,
    }
}

abi_struct! {
    /// `struct xen_hvm_altp2m_get_vcpu_p2m_idx`.
    pub struct xen_hvm_altp2m_get_vcpu_p2m_idx [size 8, align 4] {
        /// IN.
        0 => vcpu_id: u32,
        /// OUT: the view the vCPU is on.
        4 => altp2m_idx: u16,
        6 => _implicit0: [u8; 2],
    }
}

abi_struct! {
    /// `struct xen_hvm_altp2m_set_visibility`.
    pub struct xen_hvm_altp2m_set_visibility [size 4, align 2] {
        0 => altp2m_idx: u16,
        /// Boolean: the view may be switched to with VMFUNC.
        2 => visible: u8,
        3 => pad: u8,
    }
}

abi_union! {
    /// `xen_hvm_altp2m_op.u` (anonymous in C, 64 bytes).
    pub union xen_hvm_altp2m_op_u [size 64, align 8] as [u64; 8] {
        domain_state: xen_hvm_altp2m_domain_state,
        enable_notify: xen_hvm_altp2m_vcpu_enable_notify,
        view: xen_hvm_altp2m_view,
        mem_access: xen_hvm_altp2m_mem_access,
        change_gfn: xen_hvm_altp2m_change_gfn,
        set_mem_access_multi: xen_hvm_altp2m_set_mem_access_multi,
        suppress_ve: xen_hvm_altp2m_suppress_ve,
        suppress_ve_multi: xen_hvm_altp2m_suppress_ve_multi,
        disable_notify: xen_hvm_altp2m_vcpu_disable_notify,
        get_vcpu_p2m_idx: xen_hvm_altp2m_get_vcpu_p2m_idx,
        set_visibility: xen_hvm_altp2m_set_visibility,
    }
}

abi_struct! {
    /// `struct xen_hvm_altp2m_op` (`HVMOP_altp2m`).
    pub struct xen_hvm_altp2m_op [size 80, align 8] {
        /// `HVMOP_ALTP2M_INTERFACE_VERSION`.
        0 => version: u32,
        /// `HVMOP_altp2m_*`.
        4 => cmd: u32,
        8 => domain: domid_t,
        10 => pad1: u16,
        12 => pad2: u32,
        16 => u: xen_hvm_altp2m_op_u,
    }
}
