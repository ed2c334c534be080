//! `xen/include/public/domctl.h` (interface version 0x15, Xen 4.17): the
//! toolstack's domain-control hypercall, `struct xen_domctl`, with the payloads
//! this project serves (createdomain, getdomaininfo, max_mem, max_vcpus,
//! set/getvcpucontext, getvcpuinfo, setdomainhandle, vcpuaffinity, scheduler_op,
//! tsc_info, hvmcontext, paging_mempool) and every command number.
//!
//! Project extension: `XEN_DOMCTL_CDF_evtchn_fifo` (bit 8) and
//! `XEN_DOMCTL_CDF_evtchn_upcall` (bit 9) are not in Xen 4.17; see their docs and
//! `docs/abi.md`. `XEN_DOMCTL_CDF_MAX` accordingly names `evtchn_upcall`.

use bitflags::bitflags;
use static_assertions::const_assert_eq;

use crate::arch_x86::xen_arch_domainconfig;
use crate::xen::{domid_t, xen_domain_handle_t, xenctl_bitmap, XEN_GUEST_HANDLE_64};

/// `XEN_DOMCTL_INTERFACE_VERSION`: `xen_domctl.interface_version` must equal this
/// (Xen answers `-EACCES` otherwise).
pub const XEN_DOMCTL_INTERFACE_VERSION: u32 = 0x0000_0015;

// ---- XEN_DOMCTL_CDF_* ------------------------------------------------------------

/// `_XEN_DOMCTL_CDF_hvm`.
pub const _XEN_DOMCTL_CDF_hvm: u32 = 0;
/// `_XEN_DOMCTL_CDF_hap`.
pub const _XEN_DOMCTL_CDF_hap: u32 = 1;
/// `_XEN_DOMCTL_CDF_s3_integrity`.
pub const _XEN_DOMCTL_CDF_s3_integrity: u32 = 2;
/// `_XEN_DOMCTL_CDF_oos_off`.
pub const _XEN_DOMCTL_CDF_oos_off: u32 = 3;
/// `_XEN_DOMCTL_CDF_xs_domain`.
pub const _XEN_DOMCTL_CDF_xs_domain: u32 = 4;
/// `_XEN_DOMCTL_CDF_iommu`.
pub const _XEN_DOMCTL_CDF_iommu: u32 = 5;
/// `_XEN_DOMCTL_CDF_nested_virt`.
pub const _XEN_DOMCTL_CDF_nested_virt: u32 = 6;

/// `XEN_DOMCTL_CDF_hvm`: an HVM (here: PVH) domain rather than PV.
pub const XEN_DOMCTL_CDF_hvm: u32 = 1 << _XEN_DOMCTL_CDF_hvm;
/// `XEN_DOMCTL_CDF_hap`: use hardware-assisted paging (EPT/NPT).
pub const XEN_DOMCTL_CDF_hap: u32 = 1 << _XEN_DOMCTL_CDF_hap;
/// `XEN_DOMCTL_CDF_s3_integrity`: tboot S3 integrity protection.
pub const XEN_DOMCTL_CDF_s3_integrity: u32 = 1 << _XEN_DOMCTL_CDF_s3_integrity;
/// `XEN_DOMCTL_CDF_oos_off`: disable out-of-sync shadow page tables.
pub const XEN_DOMCTL_CDF_oos_off: u32 = 1 << _XEN_DOMCTL_CDF_oos_off;
/// `XEN_DOMCTL_CDF_xs_domain`: the domain is the xenstore domain.
pub const XEN_DOMCTL_CDF_xs_domain: u32 = 1 << _XEN_DOMCTL_CDF_xs_domain;
/// `XEN_DOMCTL_CDF_iommu`: the domain will have passed-through devices.
pub const XEN_DOMCTL_CDF_iommu: u32 = 1 << _XEN_DOMCTL_CDF_iommu;
/// `XEN_DOMCTL_CDF_nested_virt`: expose nested virtualisation.
pub const XEN_DOMCTL_CDF_nested_virt: u32 = 1 << _XEN_DOMCTL_CDF_nested_virt;
/// `XEN_DOMCTL_CDF_vpmu`: expose the virtual PMU.
pub const XEN_DOMCTL_CDF_vpmu: u32 = 1 << 7;
/// **Project extension (not in Xen 4.17).** The domain may use the FIFO
/// event-channel ABI. Without it `EVTCHNOP_init_control`, `EVTCHNOP_expand_array`
/// and `EVTCHNOP_set_priority` return `-ENOSYS`, as Xen before 4.4 did, and the
/// guest stays on the 2-level ABI. Opt-in (positive sense) as upstream review of
/// the "Xen ABI feature control" series asked; bit 8 because bit 7 became `vpmu`.
pub const XEN_DOMCTL_CDF_evtchn_fifo: u32 = 1 << 8;
/// **Project extension (not in Xen 4.17).** The domain may use
/// `HVMOP_set_evtchn_upcall_vector` (per-vCPU upcall vectors); without it that op
/// returns `-ENOSYS`.
pub const XEN_DOMCTL_CDF_evtchn_upcall: u32 = 1 << 9;
/// `XEN_DOMCTL_CDF_MAX`: the highest valid flag, for validating `flags`.
/// Xen 4.17: `XEN_DOMCTL_CDF_vpmu`; here `XEN_DOMCTL_CDF_evtchn_upcall` (extension).
pub const XEN_DOMCTL_CDF_MAX: u32 = XEN_DOMCTL_CDF_evtchn_upcall;
/// `XEN_DOMCTL_CDF_MAX` as the Xen 4.17 headers define it (`vpmu`): what an
/// unaware 4.17 toolstack considers the highest flag.
pub const XEN_DOMCTL_CDF_MAX_4_17: u32 = XEN_DOMCTL_CDF_vpmu;

assert_flags!(
    max = XEN_DOMCTL_CDF_MAX,
    [
        XEN_DOMCTL_CDF_hvm = 0,
        XEN_DOMCTL_CDF_hap = 1,
        XEN_DOMCTL_CDF_s3_integrity = 2,
        XEN_DOMCTL_CDF_oos_off = 3,
        XEN_DOMCTL_CDF_xs_domain = 4,
        XEN_DOMCTL_CDF_iommu = 5,
        XEN_DOMCTL_CDF_nested_virt = 6,
        XEN_DOMCTL_CDF_vpmu = 7,
        XEN_DOMCTL_CDF_evtchn_fifo = 8,
        XEN_DOMCTL_CDF_evtchn_upcall = 9,
    ]
);
const_assert_eq!(XEN_DOMCTL_CDF_MAX_4_17, 1 << 7);

bitflags! {
    /// `XEN_DOMCTL_CDF_*` as a typed set (for `xen_domctl_createdomain.flags`).
    /// `all()` is every flag up to `XEN_DOMCTL_CDF_MAX`; validate with
    /// `CdfFlags::from_bits(raw)` (None = unknown bit, Xen's `-EINVAL`).
    #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
    pub struct CdfFlags: u32 {
        const hvm = XEN_DOMCTL_CDF_hvm;
        const hap = XEN_DOMCTL_CDF_hap;
        const s3_integrity = XEN_DOMCTL_CDF_s3_integrity;
        const oos_off = XEN_DOMCTL_CDF_oos_off;
        const xs_domain = XEN_DOMCTL_CDF_xs_domain;
        const iommu = XEN_DOMCTL_CDF_iommu;
        const nested_virt = XEN_DOMCTL_CDF_nested_virt;
        const vpmu = XEN_DOMCTL_CDF_vpmu;
        const evtchn_fifo = XEN_DOMCTL_CDF_evtchn_fifo;
        const evtchn_upcall = XEN_DOMCTL_CDF_evtchn_upcall;
    }
}
// The typed set holds exactly the flags up to and including `XEN_DOMCTL_CDF_MAX`.
const_assert_eq!(CdfFlags::all().bits(), (XEN_DOMCTL_CDF_MAX << 1) - 1);

// ---- XEN_DOMCTL_IOMMU_*, XEN_DOMCTL_GRANT_* ------------------------------------------

/// `_XEN_DOMCTL_IOMMU_no_sharept`.
pub const _XEN_DOMCTL_IOMMU_no_sharept: u32 = 0;
/// `XEN_DOMCTL_IOMMU_no_sharept`: do not share the p2m with the IOMMU.
pub const XEN_DOMCTL_IOMMU_no_sharept: u32 = 1 << _XEN_DOMCTL_IOMMU_no_sharept;
/// `XEN_DOMCTL_IOMMU_MAX`.
pub const XEN_DOMCTL_IOMMU_MAX: u32 = XEN_DOMCTL_IOMMU_no_sharept;
assert_flags!(
    max = XEN_DOMCTL_IOMMU_MAX,
    [XEN_DOMCTL_IOMMU_no_sharept = 0]
);

/// `XEN_DOMCTL_GRANT_version_mask`: `grant_opts` bits holding the max grant version.
pub const XEN_DOMCTL_GRANT_version_mask: u32 = 0xf;

/// `XEN_DOMCTL_GRANT_version(v)`: the max grant-table version in `grant_opts`.
pub const fn XEN_DOMCTL_GRANT_version(v: u32) -> u32 {
    v & XEN_DOMCTL_GRANT_version_mask
}

abi_struct! {
    /// `struct xen_domctl_createdomain` (`XEN_DOMCTL_createdomain`, IN/OUT). Xen
    /// 4.17 has no `altp2m` field here (that came in 4.19).
    pub struct xen_domctl_createdomain [size 64, align 4] {
        /// IN: security reference (XSM).
        0 => ssidref: u32,
        /// IN: the toolstack's UUID for the domain.
        4 => handle: xen_domain_handle_t,
        /// IN: `XEN_DOMCTL_CDF_*`.
        20 => flags: u32,
        /// IN: `XEN_DOMCTL_IOMMU_*`.
        24 => iommu_opts: u32,
        /// IN: number of vCPUs the domain will ever have.
        28 => max_vcpus: u32,
        /// IN: highest event-channel port the domain may allocate.
        32 => max_evtchn_port: u32,
        /// IN: grant-table frames (< 0: hypervisor default).
        36 => max_grant_frames: i32,
        /// IN: maptrack frames (< 0: hypervisor default).
        40 => max_maptrack_frames: i32,
        /// IN: `XEN_DOMCTL_GRANT_version(..)` in the low bits.
        44 => grant_opts: u32,
        /// IN: per-vCPU processor-trace buffer size (0 = off).
        48 => vmtrace_size: u32,
        /// IN: CPU pool.
        52 => cpupool_id: u32,
        /// IN: x86 configuration.
        56 => arch: xen_arch_domainconfig,
    }
}

// ---- getdomaininfo ---------------------------------------------------------------

/// `_XEN_DOMINF_dying`.
pub const _XEN_DOMINF_dying: u32 = 0;
/// `_XEN_DOMINF_hvm_guest`.
pub const _XEN_DOMINF_hvm_guest: u32 = 1;
/// `_XEN_DOMINF_shutdown`.
pub const _XEN_DOMINF_shutdown: u32 = 2;
/// `_XEN_DOMINF_paused`.
pub const _XEN_DOMINF_paused: u32 = 3;
/// `_XEN_DOMINF_blocked`.
pub const _XEN_DOMINF_blocked: u32 = 4;
/// `_XEN_DOMINF_running`.
pub const _XEN_DOMINF_running: u32 = 5;
/// `_XEN_DOMINF_debugged`.
pub const _XEN_DOMINF_debugged: u32 = 6;
/// `_XEN_DOMINF_xs_domain`.
pub const _XEN_DOMINF_xs_domain: u32 = 7;
/// `_XEN_DOMINF_hap`.
pub const _XEN_DOMINF_hap: u32 = 8;
/// `XEN_DOMINF_dying`: the domain is being destroyed.
pub const XEN_DOMINF_dying: u32 = 1 << _XEN_DOMINF_dying;
/// `XEN_DOMINF_hvm_guest`.
pub const XEN_DOMINF_hvm_guest: u32 = 1 << _XEN_DOMINF_hvm_guest;
/// `XEN_DOMINF_shutdown`: shut down; the reason is in the `shutdownmask` bits.
pub const XEN_DOMINF_shutdown: u32 = 1 << _XEN_DOMINF_shutdown;
/// `XEN_DOMINF_paused`.
pub const XEN_DOMINF_paused: u32 = 1 << _XEN_DOMINF_paused;
/// `XEN_DOMINF_blocked`: all vCPUs are blocked.
pub const XEN_DOMINF_blocked: u32 = 1 << _XEN_DOMINF_blocked;
/// `XEN_DOMINF_running`: some vCPU is running.
pub const XEN_DOMINF_running: u32 = 1 << _XEN_DOMINF_running;
/// `XEN_DOMINF_debugged`.
pub const XEN_DOMINF_debugged: u32 = 1 << _XEN_DOMINF_debugged;
/// `XEN_DOMINF_xs_domain`.
pub const XEN_DOMINF_xs_domain: u32 = 1 << _XEN_DOMINF_xs_domain;
/// `XEN_DOMINF_hap`.
pub const XEN_DOMINF_hap: u32 = 1 << _XEN_DOMINF_hap;
/// `XEN_DOMINF_shutdownmask`: the shutdown reason, at `XEN_DOMINF_shutdownshift`.
pub const XEN_DOMINF_shutdownmask: u32 = 255;
/// `XEN_DOMINF_shutdownshift`.
pub const XEN_DOMINF_shutdownshift: u32 = 16;
/// `XEN_INVALID_MAX_VCPU_ID`: `max_vcpu_id` of a domain without vCPUs.
pub const XEN_INVALID_MAX_VCPU_ID: u32 = !0;

assert_flags!([
    XEN_DOMINF_dying = 0,
    XEN_DOMINF_hvm_guest = 1,
    XEN_DOMINF_shutdown = 2,
    XEN_DOMINF_paused = 3,
    XEN_DOMINF_blocked = 4,
    XEN_DOMINF_running = 5,
    XEN_DOMINF_debugged = 6,
    XEN_DOMINF_xs_domain = 7,
    XEN_DOMINF_hap = 8,
]);

abi_struct! {
    /// `struct xen_domctl_getdomaininfo` (`XEN_DOMCTL_getdomaininfo`, OUT).
    pub struct xen_domctl_getdomaininfo [size 112, align 8] {
        /// The domain described (the next existing one at or after the asked id).
        0 => domain: domid_t,
        2 => pad1: u16,
        /// `XEN_DOMINF_*`.
        4 => flags: u32,
        8 => tot_pages: u64,
        16 => max_pages: u64,
        24 => outstanding_pages: u64,
        32 => shr_pages: u64,
        40 => paged_pages: u64,
        /// Frame number of the domain's `shared_info`.
        48 => shared_info_frame: u64,
        /// CPU time used, in ns.
        56 => cpu_time: u64,
        64 => nr_online_vcpus: u32,
        /// Highest vCPU id (`XEN_INVALID_MAX_VCPU_ID` if none).
        68 => max_vcpu_id: u32,
        72 => ssidref: u32,
        76 => handle: xen_domain_handle_t,
        92 => cpupool: u32,
        /// Guest physical address width.
        96 => gpaddr_bits: u8,
        97 => pad2: [u8; 7],
        104 => arch_config: xen_arch_domainconfig,
    }
}

// ---- small payloads --------------------------------------------------------------

abi_struct! {
    /// `struct xen_domctl_max_mem` (`XEN_DOMCTL_max_mem`, IN).
    pub struct xen_domctl_max_mem [size 8, align 8] {
        /// Memory limit in KiB.
        0 => max_memkb: u64,
    }
}

abi_struct! {
    /// `struct xen_domctl_vcpucontext` (`XEN_DOMCTL_setvcpucontext` IN,
    /// `XEN_DOMCTL_getvcpucontext` OUT).
    pub struct xen_domctl_vcpucontext [size 16, align 8] {
        0 => vcpu: u32,
        4 => _implicit0: [u8; 4],
        /// Guest handle of a `vcpu_guest_context`.
        8 => ctxt: XEN_GUEST_HANDLE_64,
    }
}

abi_struct! {
    /// `struct xen_domctl_getvcpuinfo` (`XEN_DOMCTL_getvcpuinfo`).
    pub struct xen_domctl_getvcpuinfo [size 24, align 8] {
        /// IN: the vCPU.
        0 => vcpu: u32,
        /// OUT: the vCPU is up.
        4 => online: u8,
        /// OUT: the vCPU is blocked.
        5 => blocked: u8,
        /// OUT: the vCPU is running.
        6 => running: u8,
        7 => _implicit0: [u8; 1],
        /// OUT: CPU time used, in ns.
        8 => cpu_time: u64,
        /// OUT: the physical CPU it is on.
        16 => cpu: u32,
        20 => _implicit1: [u8; 4],
    }
}

abi_struct! {
    /// `struct xen_domctl_max_vcpus` (`XEN_DOMCTL_max_vcpus`, IN).
    pub struct xen_domctl_max_vcpus [size 4, align 4] {
        /// Number of vCPUs to bring into existence.
        0 => max: u32,
    }
}

abi_struct! {
    /// `struct xen_domctl_setdomainhandle` (`XEN_DOMCTL_setdomainhandle`, IN).
    pub struct xen_domctl_setdomainhandle [size 16, align 1] {
        0 => handle: xen_domain_handle_t,
    }
}

abi_struct! {
    /// `struct xen_domctl_cpu_policy` (`XEN_DOMCTL_get_cpu_policy` /
    /// `XEN_DOMCTL_set_cpu_policy`, x86): the domain's CPUID and MSR policy as
    /// `xen_cpuid_leaf` / `xen_msr_entry` arrays.
    pub struct xen_domctl_cpu_policy [size 40, align 8] {
        /// IN/OUT: entries in / written to `leaves`.
        0 => nr_leaves: u32,
        /// IN/OUT: entries in / written to `msrs`.
        4 => nr_msrs: u32,
        /// `XEN_GUEST_HANDLE_64(xen_cpuid_leaf_t)`.
        8 => leaves: XEN_GUEST_HANDLE_64,
        /// `XEN_GUEST_HANDLE_64(xen_msr_entry_t)`.
        16 => msrs: XEN_GUEST_HANDLE_64,
        /// OUT (set_policy errors): the leaf, subleaf and MSR the audit objects to.
        24 => err_leaf: u32,
        28 => err_subleaf: u32,
        32 => err_msr: u32,
        36 => _implicit_pad: u32,
    }
}

abi_struct! {
    /// `struct xen_domctl_vcpuaffinity` (`XEN_DOMCTL_setvcpuaffinity` /
    /// `getvcpuaffinity`).
    pub struct xen_domctl_vcpuaffinity [size 40, align 8] {
        /// IN: the vCPU.
        0 => vcpu: u32,
        /// IN: `XEN_VCPUAFFINITY_*`.
        4 => flags: u32,
        /// IN/OUT: hard affinity (effective affinity on return).
        8 => cpumap_hard: xenctl_bitmap,
        /// IN/OUT: soft affinity.
        24 => cpumap_soft: xenctl_bitmap,
    }
}

/// `_XEN_VCPUAFFINITY_HARD`.
pub const _XEN_VCPUAFFINITY_HARD: u32 = 0;
/// `XEN_VCPUAFFINITY_HARD`: set/get the hard affinity.
pub const XEN_VCPUAFFINITY_HARD: u32 = 1 << _XEN_VCPUAFFINITY_HARD;
/// `_XEN_VCPUAFFINITY_SOFT`.
pub const _XEN_VCPUAFFINITY_SOFT: u32 = 1;
/// `XEN_VCPUAFFINITY_SOFT`: set/get the soft affinity.
pub const XEN_VCPUAFFINITY_SOFT: u32 = 1 << _XEN_VCPUAFFINITY_SOFT;
/// `_XEN_VCPUAFFINITY_FORCE`.
pub const _XEN_VCPUAFFINITY_FORCE: u32 = 2;
/// `XEN_VCPUAFFINITY_FORCE`: undo `SCHEDOP_pin_override`.
pub const XEN_VCPUAFFINITY_FORCE: u32 = 1 << _XEN_VCPUAFFINITY_FORCE;

assert_flags!([
    XEN_VCPUAFFINITY_HARD = 0,
    XEN_VCPUAFFINITY_SOFT = 1,
    XEN_VCPUAFFINITY_FORCE = 2,
]);

abi_struct! {
    /// `struct xen_domctl_sched_credit2`: the credit2 scheduler's per-domain
    /// parameters.
    pub struct xen_domctl_sched_credit2 [size 4, align 2] {
        0 => weight: u16,
        /// Percent of one CPU (0: no cap).
        2 => cap: u16,
    }
}

abi_union! {
    /// The union `u` of `struct xen_domctl_scheduler_op` (only credit2's member is
    /// mirrored; the buffer covers credit, rtds and the per-vCPU form).
    pub union xen_domctl_scheduler_op_u [size 16, align 8] as [u64; 2] {
        credit2: xen_domctl_sched_credit2,
    }
}

abi_struct! {
    /// `struct xen_domctl_scheduler_op` (`XEN_DOMCTL_scheduler_op`, IN/OUT).
    pub struct xen_domctl_scheduler_op [size 24, align 8] {
        /// `XEN_SCHEDULER_*`.
        0 => sched_id: u32,
        /// `XEN_DOMCTL_SCHEDOP_*`.
        4 => cmd: u32,
        8 => u: xen_domctl_scheduler_op_u,
    }
}

/// `XEN_SCHEDULER_CREDIT`.
pub const XEN_SCHEDULER_CREDIT: u32 = 5;
/// `XEN_SCHEDULER_CREDIT2`: the default scheduler of Xen 4.17.
pub const XEN_SCHEDULER_CREDIT2: u32 = 6;
/// `XEN_SCHEDULER_ARINC653`.
pub const XEN_SCHEDULER_ARINC653: u32 = 7;
/// `XEN_SCHEDULER_RTDS`.
pub const XEN_SCHEDULER_RTDS: u32 = 8;
/// `XEN_SCHEDULER_NULL`.
pub const XEN_SCHEDULER_NULL: u32 = 9;
/// `XEN_DOMCTL_SCHEDOP_putinfo`.
pub const XEN_DOMCTL_SCHEDOP_putinfo: u32 = 0;
/// `XEN_DOMCTL_SCHEDOP_getinfo`.
pub const XEN_DOMCTL_SCHEDOP_getinfo: u32 = 1;
/// `XEN_DOMCTL_SCHEDOP_putvcpuinfo`.
pub const XEN_DOMCTL_SCHEDOP_putvcpuinfo: u32 = 2;
/// `XEN_DOMCTL_SCHEDOP_getvcpuinfo`.
pub const XEN_DOMCTL_SCHEDOP_getvcpuinfo: u32 = 3;

abi_struct! {
    /// `struct xen_domctl_tsc_info` (`XEN_DOMCTL_settscinfo` IN,
    /// `XEN_DOMCTL_gettscinfo` OUT).
    pub struct xen_domctl_tsc_info [size 24, align 8] {
        /// `XEN_CPUID_TSC_MODE_*`: 0 default, 1 always emulate, 2 never emulate.
        0 => tsc_mode: u32,
        /// Guest TSC frequency in kHz (0: the host's).
        4 => gtsc_khz: u32,
        8 => incarnation: u32,
        12 => pad: u32,
        16 => elapsed_nsec: u64,
    }
}

abi_struct! {
    /// `struct xen_domctl_hvmcontext` (`XEN_DOMCTL_sethvmcontext` /
    /// `gethvmcontext`): a buffer of HVM save records (`hvm::save`).
    pub struct xen_domctl_hvmcontext [size 16, align 8] {
        /// IN: buffer size; OUT (get): bytes filled, or the size needed when
        /// `buffer` is NULL.
        0 => size: u32,
        4 => _implicit0: [u8; 4],
        8 => buffer: XEN_GUEST_HANDLE_64,
    }
}

abi_struct! {
    /// `struct xen_domctl_paging_mempool` (`XEN_DOMCTL_{get,set}_paging_mempool_size`).
    pub struct xen_domctl_paging_mempool [size 8, align 8] {
        /// Size in bytes.
        0 => size: u64,
    }
}

abi_union! {
    /// The 128-byte union `u` of `struct xen_domctl`. The members listed are the
    /// payloads this project mirrors; the buffer has room for all of Xen's.
    pub union xen_domctl_u [size 128, align 8] as [u64; 16] {
        createdomain: xen_domctl_createdomain,
        getdomaininfo: xen_domctl_getdomaininfo,
        max_mem: xen_domctl_max_mem,
        vcpucontext: xen_domctl_vcpucontext,
        getvcpuinfo: xen_domctl_getvcpuinfo,
        max_vcpus: xen_domctl_max_vcpus,
        setdomainhandle: xen_domctl_setdomainhandle,
        cpu_policy: xen_domctl_cpu_policy,
        vcpuaffinity: xen_domctl_vcpuaffinity,
        scheduler_op: xen_domctl_scheduler_op,
        tsc_info: xen_domctl_tsc_info,
        hvmcontext: xen_domctl_hvmcontext,
        paging_mempool: xen_domctl_paging_mempool,
    }
}

abi_struct! {
    /// `struct xen_domctl`: the argument of `__HYPERVISOR_domctl`.
    pub struct xen_domctl [size 144, align 8] {
        /// `XEN_DOMCTL_*`.
        0 => cmd: u32,
        /// Must be `XEN_DOMCTL_INTERFACE_VERSION`.
        4 => interface_version: u32,
        /// The target domain (for createdomain: the wanted id, or 0 to allocate).
        8 => domain: domid_t,
        10 => _pad: [u16; 3],
        /// The command's payload.
        16 => u: xen_domctl_u,
    }
}

// ---- command numbers -------------------------------------------------------------

/// `XEN_DOMCTL_createdomain`.
pub const XEN_DOMCTL_createdomain: u32 = 1;
/// `XEN_DOMCTL_destroydomain`.
pub const XEN_DOMCTL_destroydomain: u32 = 2;
/// `XEN_DOMCTL_pausedomain`.
pub const XEN_DOMCTL_pausedomain: u32 = 3;
/// `XEN_DOMCTL_unpausedomain`.
pub const XEN_DOMCTL_unpausedomain: u32 = 4;
/// `XEN_DOMCTL_getdomaininfo`.
pub const XEN_DOMCTL_getdomaininfo: u32 = 5;
/// `XEN_DOMCTL_setvcpuaffinity`.
pub const XEN_DOMCTL_setvcpuaffinity: u32 = 9;
/// `XEN_DOMCTL_shadow_op`.
pub const XEN_DOMCTL_shadow_op: u32 = 10;
/// `XEN_DOMCTL_max_mem`.
pub const XEN_DOMCTL_max_mem: u32 = 11;
/// `XEN_DOMCTL_setvcpucontext`.
pub const XEN_DOMCTL_setvcpucontext: u32 = 12;
/// `XEN_DOMCTL_getvcpucontext`.
pub const XEN_DOMCTL_getvcpucontext: u32 = 13;
/// `XEN_DOMCTL_getvcpuinfo`.
pub const XEN_DOMCTL_getvcpuinfo: u32 = 14;
/// `XEN_DOMCTL_max_vcpus`.
pub const XEN_DOMCTL_max_vcpus: u32 = 15;
/// `XEN_DOMCTL_scheduler_op`.
pub const XEN_DOMCTL_scheduler_op: u32 = 16;
/// `XEN_DOMCTL_setdomainhandle`.
pub const XEN_DOMCTL_setdomainhandle: u32 = 17;
/// `XEN_DOMCTL_setdebugging`.
pub const XEN_DOMCTL_setdebugging: u32 = 18;
/// `XEN_DOMCTL_irq_permission`.
pub const XEN_DOMCTL_irq_permission: u32 = 19;
/// `XEN_DOMCTL_iomem_permission`.
pub const XEN_DOMCTL_iomem_permission: u32 = 20;
/// `XEN_DOMCTL_ioport_permission`.
pub const XEN_DOMCTL_ioport_permission: u32 = 21;
/// `XEN_DOMCTL_hypercall_init`.
pub const XEN_DOMCTL_hypercall_init: u32 = 22;
/// `XEN_DOMCTL_settimeoffset`.
pub const XEN_DOMCTL_settimeoffset: u32 = 24;
/// `XEN_DOMCTL_getvcpuaffinity`.
pub const XEN_DOMCTL_getvcpuaffinity: u32 = 25;
/// `XEN_DOMCTL_real_mode_area` (obsolete, PPC).
pub const XEN_DOMCTL_real_mode_area: u32 = 26;
/// `XEN_DOMCTL_resumedomain`.
pub const XEN_DOMCTL_resumedomain: u32 = 27;
/// `XEN_DOMCTL_sendtrigger`.
pub const XEN_DOMCTL_sendtrigger: u32 = 28;
/// `XEN_DOMCTL_subscribe`.
pub const XEN_DOMCTL_subscribe: u32 = 29;
/// `XEN_DOMCTL_gethvmcontext`.
pub const XEN_DOMCTL_gethvmcontext: u32 = 33;
/// `XEN_DOMCTL_sethvmcontext`.
pub const XEN_DOMCTL_sethvmcontext: u32 = 34;
/// `XEN_DOMCTL_set_address_size`.
pub const XEN_DOMCTL_set_address_size: u32 = 35;
/// `XEN_DOMCTL_get_address_size`.
pub const XEN_DOMCTL_get_address_size: u32 = 36;
/// `XEN_DOMCTL_assign_device`.
pub const XEN_DOMCTL_assign_device: u32 = 37;
/// `XEN_DOMCTL_bind_pt_irq`.
pub const XEN_DOMCTL_bind_pt_irq: u32 = 38;
/// `XEN_DOMCTL_memory_mapping`.
pub const XEN_DOMCTL_memory_mapping: u32 = 39;
/// `XEN_DOMCTL_ioport_mapping`.
pub const XEN_DOMCTL_ioport_mapping: u32 = 40;
/// `XEN_DOMCTL_set_ext_vcpucontext`.
pub const XEN_DOMCTL_set_ext_vcpucontext: u32 = 42;
/// `XEN_DOMCTL_get_ext_vcpucontext`.
pub const XEN_DOMCTL_get_ext_vcpucontext: u32 = 43;
/// `XEN_DOMCTL_set_opt_feature` (obsolete, IA64).
pub const XEN_DOMCTL_set_opt_feature: u32 = 44;
/// `XEN_DOMCTL_test_assign_device`.
pub const XEN_DOMCTL_test_assign_device: u32 = 45;
/// `XEN_DOMCTL_set_target`.
pub const XEN_DOMCTL_set_target: u32 = 46;
/// `XEN_DOMCTL_deassign_device`.
pub const XEN_DOMCTL_deassign_device: u32 = 47;
/// `XEN_DOMCTL_unbind_pt_irq`.
pub const XEN_DOMCTL_unbind_pt_irq: u32 = 48;
/// `XEN_DOMCTL_get_device_group`.
pub const XEN_DOMCTL_get_device_group: u32 = 50;
/// `XEN_DOMCTL_debug_op`.
pub const XEN_DOMCTL_debug_op: u32 = 54;
/// `XEN_DOMCTL_gethvmcontext_partial`.
pub const XEN_DOMCTL_gethvmcontext_partial: u32 = 55;
/// `XEN_DOMCTL_vm_event_op`.
pub const XEN_DOMCTL_vm_event_op: u32 = 56;
/// `XEN_DOMCTL_mem_sharing_op`.
pub const XEN_DOMCTL_mem_sharing_op: u32 = 57;
/// `XEN_DOMCTL_gettscinfo`.
pub const XEN_DOMCTL_gettscinfo: u32 = 59;
/// `XEN_DOMCTL_settscinfo`.
pub const XEN_DOMCTL_settscinfo: u32 = 60;
/// `XEN_DOMCTL_getpageframeinfo3`.
pub const XEN_DOMCTL_getpageframeinfo3: u32 = 61;
/// `XEN_DOMCTL_setvcpuextstate`.
pub const XEN_DOMCTL_setvcpuextstate: u32 = 62;
/// `XEN_DOMCTL_getvcpuextstate`.
pub const XEN_DOMCTL_getvcpuextstate: u32 = 63;
/// `XEN_DOMCTL_set_access_required`.
pub const XEN_DOMCTL_set_access_required: u32 = 64;
/// `XEN_DOMCTL_audit_p2m`.
pub const XEN_DOMCTL_audit_p2m: u32 = 65;
/// `XEN_DOMCTL_set_virq_handler`.
pub const XEN_DOMCTL_set_virq_handler: u32 = 66;
/// `XEN_DOMCTL_set_broken_page_p2m`.
pub const XEN_DOMCTL_set_broken_page_p2m: u32 = 67;
/// `XEN_DOMCTL_setnodeaffinity`.
pub const XEN_DOMCTL_setnodeaffinity: u32 = 68;
/// `XEN_DOMCTL_getnodeaffinity`.
pub const XEN_DOMCTL_getnodeaffinity: u32 = 69;
/// `XEN_DOMCTL_cacheflush`.
pub const XEN_DOMCTL_cacheflush: u32 = 71;
/// `XEN_DOMCTL_get_vcpu_msrs`.
pub const XEN_DOMCTL_get_vcpu_msrs: u32 = 72;
/// `XEN_DOMCTL_set_vcpu_msrs`.
pub const XEN_DOMCTL_set_vcpu_msrs: u32 = 73;
/// `XEN_DOMCTL_setvnumainfo`.
pub const XEN_DOMCTL_setvnumainfo: u32 = 74;
/// `XEN_DOMCTL_psr_cmt_op`.
pub const XEN_DOMCTL_psr_cmt_op: u32 = 75;
/// `XEN_DOMCTL_monitor_op`.
pub const XEN_DOMCTL_monitor_op: u32 = 77;
/// `XEN_DOMCTL_psr_alloc`.
pub const XEN_DOMCTL_psr_alloc: u32 = 78;
/// `XEN_DOMCTL_soft_reset`.
pub const XEN_DOMCTL_soft_reset: u32 = 79;
/// `XEN_DOMCTL_vuart_op`.
pub const XEN_DOMCTL_vuart_op: u32 = 81;
/// `XEN_DOMCTL_get_cpu_policy`.
pub const XEN_DOMCTL_get_cpu_policy: u32 = 82;
/// `XEN_DOMCTL_set_cpu_policy`.
pub const XEN_DOMCTL_set_cpu_policy: u32 = 83;
/// `XEN_DOMCTL_vmtrace_op`.
pub const XEN_DOMCTL_vmtrace_op: u32 = 84;
/// `XEN_DOMCTL_get_paging_mempool_size`.
pub const XEN_DOMCTL_get_paging_mempool_size: u32 = 85;
/// `XEN_DOMCTL_set_paging_mempool_size`.
pub const XEN_DOMCTL_set_paging_mempool_size: u32 = 86;
/// `XEN_DOMCTL_gdbsx_guestmemio`.
pub const XEN_DOMCTL_gdbsx_guestmemio: u32 = 1000;
/// `XEN_DOMCTL_gdbsx_pausevcpu`.
pub const XEN_DOMCTL_gdbsx_pausevcpu: u32 = 1001;
/// `XEN_DOMCTL_gdbsx_unpausevcpu`.
pub const XEN_DOMCTL_gdbsx_unpausevcpu: u32 = 1002;
/// `XEN_DOMCTL_gdbsx_domstatus`.
pub const XEN_DOMCTL_gdbsx_domstatus: u32 = 1003;

#[cfg(test)]
mod tests {
    use super::*;
    use zerocopy::{FromZeros, IntoBytes};

    #[test]
    fn union_payload_round_trip() {
        let mut d = xen_domctl::new_zeroed();
        let mut cd = xen_domctl_createdomain::new_zeroed();
        cd.flags = XEN_DOMCTL_CDF_hvm | XEN_DOMCTL_CDF_hap;
        cd.max_vcpus = 4;
        d.u.set(&cd);
        // createdomain.flags sits at byte 20 of the union, byte 36 of xen_domctl.
        assert_eq!(&d.as_bytes()[36..40], &3u32.to_le_bytes());
        assert_eq!(d.u.get::<xen_domctl_createdomain>().max_vcpus, 4);
        // set() clears what a previous, larger payload left behind.
        d.u.set(&xen_domctl_max_vcpus { max: 1 });
        assert_eq!(d.u.get::<xen_domctl_createdomain>().flags, 0);
    }

    #[test]
    fn cdf_validation_with_typed_flags() {
        assert!(CdfFlags::from_bits(XEN_DOMCTL_CDF_evtchn_upcall).is_some());
        assert!(CdfFlags::from_bits(XEN_DOMCTL_CDF_MAX << 1).is_none());
        assert_eq!(XEN_DOMCTL_GRANT_version(0x12), 2);
    }
}
