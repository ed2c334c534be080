//! `xen/include/public/sysctl.h` (interface version 0x15, Xen 4.17): the
//! toolstack's system-control hypercall, `struct xen_sysctl`, with the payloads
//! `xl list` / `xl info` need (physinfo, getdomaininfolist) and
//! `XEN_SYSCTL_get_cpu_policy`.

use crate::xen::{domid_t, XEN_GUEST_HANDLE_64};

/// `XEN_SYSCTL_INTERFACE_VERSION`: `xen_sysctl.interface_version` must equal this
/// (`-EACCES` otherwise).
pub const XEN_SYSCTL_INTERFACE_VERSION: u32 = 0x0000_0015;

/// `XEN_SYSCTL_readconsole`.
pub const XEN_SYSCTL_readconsole: u32 = 1;
/// `XEN_SYSCTL_tbuf_op`.
pub const XEN_SYSCTL_tbuf_op: u32 = 2;
/// `XEN_SYSCTL_physinfo`.
pub const XEN_SYSCTL_physinfo: u32 = 3;
/// `XEN_SYSCTL_sched_id`.
pub const XEN_SYSCTL_sched_id: u32 = 4;
/// `XEN_SYSCTL_perfc_op`.
pub const XEN_SYSCTL_perfc_op: u32 = 5;
/// `XEN_SYSCTL_getdomaininfolist`.
pub const XEN_SYSCTL_getdomaininfolist: u32 = 6;
/// `XEN_SYSCTL_debug_keys`.
pub const XEN_SYSCTL_debug_keys: u32 = 7;
/// `XEN_SYSCTL_getcpuinfo`.
pub const XEN_SYSCTL_getcpuinfo: u32 = 8;
/// `XEN_SYSCTL_availheap`.
pub const XEN_SYSCTL_availheap: u32 = 9;
/// `XEN_SYSCTL_get_cpu_featureset`.
pub const XEN_SYSCTL_get_cpu_featureset: u32 = 26;
/// `XEN_SYSCTL_get_cpu_policy`.
pub const XEN_SYSCTL_get_cpu_policy: u32 = 29;

/// `_XEN_SYSCTL_PHYSCAP_hvm`.
pub const _XEN_SYSCTL_PHYSCAP_hvm: u32 = 0;
/// `XEN_SYSCTL_PHYSCAP_hvm`: HVM guests can run.
pub const XEN_SYSCTL_PHYSCAP_hvm: u32 = 1 << _XEN_SYSCTL_PHYSCAP_hvm;
/// `_XEN_SYSCTL_PHYSCAP_pv`.
pub const _XEN_SYSCTL_PHYSCAP_pv: u32 = 1;
/// `XEN_SYSCTL_PHYSCAP_pv`.
pub const XEN_SYSCTL_PHYSCAP_pv: u32 = 1 << _XEN_SYSCTL_PHYSCAP_pv;
/// `_XEN_SYSCTL_PHYSCAP_directio`.
pub const _XEN_SYSCTL_PHYSCAP_directio: u32 = 2;
/// `XEN_SYSCTL_PHYSCAP_directio`.
pub const XEN_SYSCTL_PHYSCAP_directio: u32 = 1 << _XEN_SYSCTL_PHYSCAP_directio;
/// `_XEN_SYSCTL_PHYSCAP_hap`.
pub const _XEN_SYSCTL_PHYSCAP_hap: u32 = 3;
/// `XEN_SYSCTL_PHYSCAP_hap`.
pub const XEN_SYSCTL_PHYSCAP_hap: u32 = 1 << _XEN_SYSCTL_PHYSCAP_hap;
/// `_XEN_SYSCTL_PHYSCAP_shadow`.
pub const _XEN_SYSCTL_PHYSCAP_shadow: u32 = 4;
/// `XEN_SYSCTL_PHYSCAP_shadow`.
pub const XEN_SYSCTL_PHYSCAP_shadow: u32 = 1 << _XEN_SYSCTL_PHYSCAP_shadow;
/// `_XEN_SYSCTL_PHYSCAP_iommu_hap_pt_share`.
pub const _XEN_SYSCTL_PHYSCAP_iommu_hap_pt_share: u32 = 5;
/// `XEN_SYSCTL_PHYSCAP_iommu_hap_pt_share`.
pub const XEN_SYSCTL_PHYSCAP_iommu_hap_pt_share: u32 = 1 << _XEN_SYSCTL_PHYSCAP_iommu_hap_pt_share;
/// `XEN_SYSCTL_PHYSCAP_vmtrace`.
pub const XEN_SYSCTL_PHYSCAP_vmtrace: u32 = 1 << 6;
/// `XEN_SYSCTL_PHYSCAP_vpmu`.
pub const XEN_SYSCTL_PHYSCAP_vpmu: u32 = 1 << 7;
/// `XEN_SYSCTL_PHYSCAP_gnttab_v1`.
pub const XEN_SYSCTL_PHYSCAP_gnttab_v1: u32 = 1 << 8;
/// `XEN_SYSCTL_PHYSCAP_gnttab_v2`.
pub const XEN_SYSCTL_PHYSCAP_gnttab_v2: u32 = 1 << 9;
/// `XEN_SYSCTL_PHYSCAP_MAX`.
pub const XEN_SYSCTL_PHYSCAP_MAX: u32 = XEN_SYSCTL_PHYSCAP_gnttab_v2;

assert_flags!(
    max = XEN_SYSCTL_PHYSCAP_MAX,
    [
        XEN_SYSCTL_PHYSCAP_hvm = 0,
        XEN_SYSCTL_PHYSCAP_pv = 1,
        XEN_SYSCTL_PHYSCAP_directio = 2,
        XEN_SYSCTL_PHYSCAP_hap = 3,
        XEN_SYSCTL_PHYSCAP_shadow = 4,
        XEN_SYSCTL_PHYSCAP_iommu_hap_pt_share = 5,
        XEN_SYSCTL_PHYSCAP_vmtrace = 6,
        XEN_SYSCTL_PHYSCAP_vpmu = 7,
        XEN_SYSCTL_PHYSCAP_gnttab_v1 = 8,
        XEN_SYSCTL_PHYSCAP_gnttab_v2 = 9,
    ]
);

abi_struct! {
    /// `struct xen_sysctl_physinfo` (`XEN_SYSCTL_physinfo`, OUT).
    pub struct xen_sysctl_physinfo [size 112, align 8] {
        0 => threads_per_core: u32,
        4 => cores_per_socket: u32,
        /// CPUs online.
        8 => nr_cpus: u32,
        12 => max_cpu_id: u32,
        16 => nr_nodes: u32,
        20 => max_node_id: u32,
        24 => cpu_khz: u32,
        /// `XEN_SYSCTL_PHYSCAP_*`.
        28 => capabilities: u32,
        32 => arch_capabilities: u32,
        36 => pad: u32,
        40 => total_pages: u64,
        /// Frames the hypervisor's heap can still hand out.
        48 => free_pages: u64,
        56 => scrub_pages: u64,
        64 => outstanding_pages: u64,
        72 => max_mfn: u64,
        80 => hw_cap: [u32; 8],
    }
}

abi_struct! {
    /// `struct xen_sysctl_getdomaininfolist` (`XEN_SYSCTL_getdomaininfolist`).
    pub struct xen_sysctl_getdomaininfolist [size 24, align 8] {
        /// IN: the lowest domain id to report.
        0 => first_domain: domid_t,
        2 => _implicit0: [u8; 2],
        /// IN: room in `buffer`, in `xen_domctl_getdomaininfo` entries.
        4 => max_domains: u32,
        /// IN: array of `xen_domctl_getdomaininfo`.
        8 => buffer: XEN_GUEST_HANDLE_64,
        /// OUT: entries written.
        16 => num_domains: u32,
        20 => _implicit1: [u8; 4],
    }
}

/// `XEN_SYSCTL_cpu_policy_raw`: what the hardware reports.
pub const XEN_SYSCTL_cpu_policy_raw: u32 = 0;
/// `XEN_SYSCTL_cpu_policy_host`: what the hypervisor itself uses.
pub const XEN_SYSCTL_cpu_policy_host: u32 = 1;
/// `XEN_SYSCTL_cpu_policy_pv_max`.
pub const XEN_SYSCTL_cpu_policy_pv_max: u32 = 2;
/// `XEN_SYSCTL_cpu_policy_hvm_max`: the most an HVM guest may be given.
pub const XEN_SYSCTL_cpu_policy_hvm_max: u32 = 3;
/// `XEN_SYSCTL_cpu_policy_pv_default`.
pub const XEN_SYSCTL_cpu_policy_pv_default: u32 = 4;
/// `XEN_SYSCTL_cpu_policy_hvm_default`: what an HVM guest gets unless narrowed.
pub const XEN_SYSCTL_cpu_policy_hvm_default: u32 = 5;

abi_struct! {
    /// `struct xen_sysctl_cpu_policy` (`XEN_SYSCTL_get_cpu_policy`).
    pub struct xen_sysctl_cpu_policy [size 32, align 8] {
        /// IN: `XEN_SYSCTL_cpu_policy_*`.
        0 => index: u32,
        /// IN/OUT: entries in / written to `leaves` (the maximum when the
        /// handle is NULL).
        4 => nr_leaves: u32,
        /// IN/OUT: likewise for `msrs`.
        8 => nr_msrs: u32,
        /// Must be zero.
        12 => _rsvd: u32,
        /// `XEN_GUEST_HANDLE_64(xen_cpuid_leaf_t)`, OUT.
        16 => leaves: XEN_GUEST_HANDLE_64,
        /// `XEN_GUEST_HANDLE_64(xen_msr_entry_t)`, OUT.
        24 => msrs: XEN_GUEST_HANDLE_64,
    }
}

abi_union! {
    /// The 128-byte union `u` of `struct xen_sysctl` (members this project uses).
    pub union xen_sysctl_u [size 128, align 8] as [u64; 16] {
        physinfo: xen_sysctl_physinfo,
        getdomaininfolist: xen_sysctl_getdomaininfolist,
        cpu_policy: xen_sysctl_cpu_policy,
    }
}

abi_struct! {
    /// `struct xen_sysctl`: the argument of `__HYPERVISOR_sysctl`.
    pub struct xen_sysctl [size 136, align 8] {
        /// `XEN_SYSCTL_*`.
        0 => cmd: u32,
        /// Must be `XEN_SYSCTL_INTERFACE_VERSION`.
        4 => interface_version: u32,
        8 => u: xen_sysctl_u,
    }
}
