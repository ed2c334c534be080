//! Domains, the domain table and `createdomain` sanitisation.
//!
//! Mirrors Xen 4.17:
//! - `xen/common/domain.c`: `sanitise_domain_config()`, `domain_create()` (the order
//!   of the later checks), pause counts, `domain_shutdown()`;
//! - `xen/arch/x86/domain.c`: `arch_sanitise_domain_config()`, the emulation-flag
//!   rules of `arch_domain_create()` and `emulation_flags_ok()`;
//! - `xen/arch/x86/mm/paging.c` + `mm/shadow/none.c`: HVM without HAP on a build
//!   without shadow paging is `-EOPNOTSUPP`;
//! - `xen/common/grant_table.c`: `grant_table_init()`'s version and frame limits;
//! - `xen/common/sched/cpupool.c`: only pool 0 exists here (`-ESRCH` otherwise);
//! - `xen/common/domctl.c`: the 4.17 domain-id picking (a rolling counter).
//!
//! Validation comes first and in one place ([`validate_createdomain`]), returning
//! the first errno that applies in Xen's order; construction ([`Domain::new`]) runs
//! only after everything passed and cannot half-fail, so a refused
//! `createdomain` leaves nothing behind (the only resource taken before the
//! domain exists, its `shared_info` frame, is taken last).
//!
//! What this machine and build can offer (HAP, IOMMU, vPMU, ...) is a value,
//! [`HostCaps`], so the rules that depend on it are testable both ways.

// Xen's names (`XEN_DOMCTL_createdomain`, `__HYPERVISOR_domctl`, ...) in match patterns.
#![allow(non_upper_case_globals)]

use alloc::boxed::Box;
use alloc::collections::BTreeMap;
use alloc::vec::Vec;

use log::{info, warn};
use xen_public_abi::arch_x86::{
    XEN_X86_EMU_ALL, XEN_X86_EMU_IOAPIC, XEN_X86_EMU_LAPIC, XEN_X86_EMU_PIT, XEN_X86_EMU_USE_PIRQ,
    XEN_X86_EMU_VPCI, XEN_X86_MSR_RELAXED,
};
use xen_public_abi::domctl::{
    xen_domctl_createdomain, XEN_DOMCTL_CDF_evtchn_fifo, XEN_DOMCTL_CDF_evtchn_upcall,
    XEN_DOMCTL_CDF_hap, XEN_DOMCTL_CDF_hvm, XEN_DOMCTL_CDF_iommu, XEN_DOMCTL_CDF_nested_virt,
    XEN_DOMCTL_CDF_oos_off, XEN_DOMCTL_CDF_s3_integrity, XEN_DOMCTL_CDF_vpmu,
    XEN_DOMCTL_CDF_xs_domain, XEN_DOMCTL_GRANT_version_mask, XEN_DOMCTL_IOMMU_no_sharept,
};
use xen_public_abi::xen::{domid_t, DOMID_FIRST_RESERVED, DOMID_SELF};
use xen_public_abi::{Errno, XenResult};

use super::console_io::GuestConsoleBuffer;
use super::page_alloc::{Mfn, PageAllocator};
use super::sched_op::PollState;

/// `HVM_MAX_VCPUS` (xen/include/public/hvm/hvm_info_table.h).
pub const HVM_MAX_VCPUS: u32 = 128;
/// x86-64 `MAX_VIRT_CPUS` (1024 MiB of GDT/LDT area at 128 KiB per vCPU).
pub const MAX_VIRT_CPUS: u32 = 8192;
/// `INITIAL_NR_GRANT_FRAMES`: the smallest `max_grant_frames` a domain may have.
pub const INITIAL_NR_GRANT_FRAMES: u32 = 1;
/// `SHUTDOWN_CODE_INVALID` (xen/include/xen/sched.h): "never shut down". Shows as
/// 0xffff in the top half of getdomaininfo's flags.
pub const SHUTDOWN_CODE_INVALID: u32 = !0;
/// Xen limits the toolstack's pause count to 255 (`-EOVERFLOW` beyond).
pub const MAX_CONTROLLER_PAUSE_COUNT: u32 = 255;
/// `INT_MAX`: Xen's `evtchn_init()` clamps `max_evtchn_port` to it.
const INT_MAX: u32 = i32::MAX as u32;
/// The highest domain id a guest domain can have.
pub const DOMID_MAX_NORMAL: domid_t = DOMID_FIRST_RESERVED - 1;

/// Every `XEN_DOMCTL_CDF_*` bit that `sanitise_domain_config()` knows: Xen 4.17's
/// eight, plus this project's two event-channel ABI flags (bits 8 and 9).
pub const KNOWN_CDF_FLAGS: u32 = XEN_DOMCTL_CDF_hvm
    | XEN_DOMCTL_CDF_hap
    | XEN_DOMCTL_CDF_s3_integrity
    | XEN_DOMCTL_CDF_oos_off
    | XEN_DOMCTL_CDF_xs_domain
    | XEN_DOMCTL_CDF_iommu
    | XEN_DOMCTL_CDF_nested_virt
    | XEN_DOMCTL_CDF_vpmu
    | XEN_DOMCTL_CDF_evtchn_fifo
    | XEN_DOMCTL_CDF_evtchn_upcall;

/// What the machine and this build can offer, i.e. the answers to the capability
/// questions Xen's sanitisation asks (`hvm_enabled`, `hvm_hap_supported()`,
/// `iommu_enabled`, `vmtrace_available`, `vpmu_is_available`, `CONFIG_*`).
///
/// [`HostCaps::THIS_HYPERVISOR`] is what this hypervisor answers; tests flip single
/// fields to reach the checks behind them. See `docs/domctl.md` for each choice.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct HostCaps {
    /// `hvm_enabled`: the CPU has SVM or VMX (HVM/PVH guests possible).
    pub hvm: bool,
    /// `CONFIG_PV`: PV domain configurations pass createdomain.
    pub pv: bool,
    /// `hvm_hap_supported()`: NPT or EPT.
    pub hap: bool,
    /// `CONFIG_SHADOW_PAGING`: HVM without HAP.
    pub shadow_paging: bool,
    /// `iommu_enabled`.
    pub iommu: bool,
    /// `vmtrace_available` (Intel PT).
    pub vmtrace: bool,
    /// `vpmu_is_available`.
    pub vpmu: bool,
    /// `CONFIG_TBOOT` (needed for `XEN_DOMCTL_CDF_s3_integrity`).
    pub tboot: bool,
    /// Nested virtualisation for HVM guests.
    pub nested_virt: bool,
    /// The FIFO event-channel ABI is compiled in (Cargo feature `evtchn-fifo`).
    pub evtchn_fifo: bool,
    /// `opt_gnttab_max_version` (x86 default 2).
    pub gnttab_max_version: u32,
    /// `opt_max_grant_frames` (default 64).
    pub max_grant_frames: u32,
    /// `opt_max_maptrack_frames` (default 1024).
    pub max_maptrack_frames: u32,
    /// `hap_paddr_bits`: the guest-physical address width getdomaininfo reports.
    pub gpaddr_bits: u8,
}

impl HostCaps {
    /// This hypervisor: HVM with HAP (NPT/EPT), PV configurations accepted at the
    /// control plane as 4.17 with `CONFIG_PV` does (running a PV vCPU is not
    /// supported), and none of shadow paging, IOMMU, Intel PT, vPMU, tboot or nested
    /// virtualisation. `gpaddr_bits` is 40 until the boot code sets the CPU's value.
    pub const THIS_HYPERVISOR: HostCaps = HostCaps {
        hvm: true,
        pv: true,
        hap: true,
        shadow_paging: false,
        iommu: false,
        vmtrace: false,
        vpmu: false,
        tboot: false,
        nested_virt: false,
        evtchn_fifo: cfg!(feature = "evtchn-fifo"),
        gnttab_max_version: 2,
        max_grant_frames: 64,
        max_maptrack_frames: 1024,
        gpaddr_bits: 40,
    };
}

impl Default for HostCaps {
    fn default() -> Self {
        HostCaps::THIS_HYPERVISOR
    }
}

/// A `createdomain` configuration after every check passed: what the domain keeps.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DomainConfig {
    /// `XEN_DOMCTL_CDF_*` as accepted (Xen forces `oos_off` on for PV domains).
    pub flags: u32,
    pub iommu_opts: u32,
    pub max_vcpus: u32,
    /// `min(max_evtchn_port, INT_MAX)`, as `evtchn_init()` stores it.
    pub max_evtchn_port: u32,
    /// Grant-table limits with "negative = hypervisor default" resolved.
    pub max_grant_frames: u32,
    pub max_maptrack_frames: u32,
    /// `XEN_DOMCTL_GRANT_version(grant_opts)`: 1 or 2.
    pub max_grant_version: u32,
    pub vmtrace_size: u32,
    pub cpupool_id: u32,
    pub ssidref: u32,
    pub handle: [u8; 16],
    /// `XEN_X86_EMU_*` (PIT forced on for a PV hardware domain, as Xen does).
    pub emulation_flags: u32,
    /// `XEN_X86_MSR_RELAXED` or 0.
    pub misc_flags: u32,
}

/// One createdomain check, named after what it refuses. Every refusal carries the
/// check that made it, so tests can pin not only the errno but which check fired
/// (checks sharing an errno would otherwise be free to swap places unnoticed).
/// `docs/domctl.md` lists them all with their errno and covering test.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum CreateCheck {
    /// A `XEN_DOMCTL_CDF_*` bit outside the known ones.
    UnknownFlags,
    /// `XEN_DOMCTL_CDF_evtchn_fifo` with FIFO compiled out (project rule).
    FifoCompiledOut,
    /// `grant_opts` bits outside `XEN_DOMCTL_GRANT_version_mask`.
    GrantOptsUnknown,
    /// `max_vcpus == 0`.
    NoVcpus,
    /// `hap` without `hvm`.
    HapWithoutHvm,
    /// `iommu` with `iommu_opts` other than `no_sharept`.
    IommuOptsUnknown,
    /// `iommu` requested, no IOMMU here.
    IommuUnavailable,
    /// `iommu_opts` without `iommu`.
    IommuOptsWithoutIommu,
    /// `vmtrace_size` without Intel PT.
    VmtraceUnavailable,
    /// `vpmu` without a vPMU.
    VpmuUnavailable,
    /// HVM without SVM/VMX, or PV without PV support.
    GuestTypeUnavailable,
    /// `max_vcpus` above 128 (HVM) or 8192 (PV).
    TooManyVcpus,
    /// `s3_integrity` without tboot.
    S3IntegrityUnavailable,
    /// `hap` without NPT/EPT.
    HapUnavailable,
    /// `nested_virt`, which this hypervisor does not offer.
    NestedVirtUnavailable,
    /// `nested_virt` without `hap`.
    NestedVirtWithoutHap,
    /// `vmtrace_size` for a PV domain.
    VmtraceNotHvm,
    /// `vmtrace_size` not a power of two in 4 KiB..=64 MiB.
    VmtraceSize,
    /// `arch.misc_flags` other than `XEN_X86_MSR_RELAXED`.
    MiscFlagsUnknown,
    /// `arch.emulation_flags` outside `XEN_X86_EMU_ALL`.
    EmulationUnknownBits,
    /// An emulator set `emulation_flags_ok()` refuses.
    EmulationUnsupported,
    /// HVM without HAP: needs shadow paging, which is not built here.
    HvmWithoutHap,
    /// Grant version 0.
    GrantVersionZero,
    /// Grant version above the supported maximum (2).
    GrantVersionTooHigh,
    /// `max_grant_frames` not in 1..=64, or `max_maptrack_frames` above 1024.
    GrantFrameLimits,
    /// A `cpupool_id` other than 0.
    NoSuchCpupool,
}

impl CreateCheck {
    /// The errno Xen 4.17 returns for this refusal.
    pub const fn errno(self) -> Errno {
        match self {
            CreateCheck::EmulationUnsupported | CreateCheck::HvmWithoutHap => Errno::EOPNOTSUPP,
            CreateCheck::NoSuchCpupool => Errno::ESRCH,
            _ => Errno::EINVAL,
        }
    }
}

impl From<CreateCheck> for Errno {
    fn from(c: CreateCheck) -> Errno {
        c.errno()
    }
}

/// Result of a createdomain check.
pub type CheckResult<T> = Result<T, CreateCheck>;

/// Xen's `sanitise_domain_config()` (common part), in Xen's order. May update
/// `cfg` (the arch part forces `oos_off` for PV), as Xen does.
pub fn sanitise_domain_config(
    cfg: &mut xen_domctl_createdomain,
    caps: &HostCaps,
) -> CheckResult<()> {
    let flags = cfg.flags;
    let hvm = flags & XEN_DOMCTL_CDF_hvm != 0;
    let hap = flags & XEN_DOMCTL_CDF_hap != 0;
    let iommu = flags & XEN_DOMCTL_CDF_iommu != 0;
    let vpmu = flags & XEN_DOMCTL_CDF_vpmu != 0;

    if flags & !KNOWN_CDF_FLAGS != 0 {
        info!("createdomain: unknown CDF flags {flags:#x}");
        return Err(CreateCheck::UnknownFlags);
    }
    // Project rule: the FIFO ABI flag names something this build does not have.
    if flags & XEN_DOMCTL_CDF_evtchn_fifo != 0 && !caps.evtchn_fifo {
        warn!("createdomain: XEN_DOMCTL_CDF_evtchn_fifo requested, but FIFO event channels are compiled out");
        return Err(CreateCheck::FifoCompiledOut);
    }
    if cfg.grant_opts & !XEN_DOMCTL_GRANT_version_mask != 0 {
        info!("createdomain: unknown grant options {:#x}", cfg.grant_opts);
        return Err(CreateCheck::GrantOptsUnknown);
    }
    if cfg.max_vcpus < 1 {
        info!("createdomain: no vCPUs");
        return Err(CreateCheck::NoVcpus);
    }
    if hap && !hvm {
        info!("createdomain: HAP requested for a non-HVM guest");
        return Err(CreateCheck::HapWithoutHvm);
    }
    if iommu {
        if cfg.iommu_opts & !XEN_DOMCTL_IOMMU_no_sharept != 0 {
            info!("createdomain: unknown IOMMU options {:#x}", cfg.iommu_opts);
            return Err(CreateCheck::IommuOptsUnknown);
        }
        if !caps.iommu {
            info!("createdomain: IOMMU requested but not available here");
            return Err(CreateCheck::IommuUnavailable);
        }
    } else if cfg.iommu_opts != 0 {
        info!("createdomain: IOMMU options given but IOMMU not requested");
        return Err(CreateCheck::IommuOptsWithoutIommu);
    }
    if cfg.vmtrace_size != 0 && !caps.vmtrace {
        info!("createdomain: vmtrace requested but not available here");
        return Err(CreateCheck::VmtraceUnavailable);
    }
    if vpmu && !caps.vpmu {
        info!("createdomain: vPMU requested but not available here");
        return Err(CreateCheck::VpmuUnavailable);
    }
    arch_sanitise_domain_config(cfg, caps)
}

/// Xen's x86 `arch_sanitise_domain_config()`, in Xen's order, plus this
/// hypervisor's "no nested virtualisation" check (at the place Xen's later
/// releases check `hvm_nested_virt_supported()`).
pub fn arch_sanitise_domain_config(
    cfg: &mut xen_domctl_createdomain,
    caps: &HostCaps,
) -> CheckResult<()> {
    let hvm = cfg.flags & XEN_DOMCTL_CDF_hvm != 0;
    let hap = cfg.flags & XEN_DOMCTL_CDF_hap != 0;
    let nested_virt = cfg.flags & XEN_DOMCTL_CDF_nested_virt != 0;

    if if hvm { !caps.hvm } else { !caps.pv } {
        info!(
            "createdomain: {} support not available",
            if hvm { "HVM" } else { "PV" }
        );
        return Err(CreateCheck::GuestTypeUnavailable);
    }
    let max_vcpus = if hvm { HVM_MAX_VCPUS } else { MAX_VIRT_CPUS };
    if cfg.max_vcpus > max_vcpus {
        info!(
            "createdomain: {} vCPUs requested, at most {max_vcpus}",
            cfg.max_vcpus
        );
        return Err(CreateCheck::TooManyVcpus);
    }
    if !caps.tboot && cfg.flags & XEN_DOMCTL_CDF_s3_integrity != 0 {
        info!("createdomain: S3 integrity needs tboot, not available here");
        return Err(CreateCheck::S3IntegrityUnavailable);
    }
    if hap && !caps.hap {
        info!("createdomain: HAP requested but not available");
        return Err(CreateCheck::HapUnavailable);
    }
    if !hvm {
        // Only HVM guests can have out-of-sync shadows; Xen records it as off.
        cfg.flags |= XEN_DOMCTL_CDF_oos_off;
    }
    if nested_virt && !caps.nested_virt {
        info!("createdomain: nested virtualisation is not available here");
        return Err(CreateCheck::NestedVirtUnavailable);
    }
    if nested_virt && !hap {
        info!("createdomain: nested virtualisation needs HAP");
        return Err(CreateCheck::NestedVirtWithoutHap);
    }
    if cfg.vmtrace_size != 0 {
        let size = cfg.vmtrace_size;
        if !hvm {
            info!("createdomain: vmtrace is HVM-only");
            return Err(CreateCheck::VmtraceNotHvm);
        }
        if !(4096..=64 << 20).contains(&size) || !size.is_power_of_two() {
            info!("createdomain: unsupported vmtrace size {size:#x}");
            return Err(CreateCheck::VmtraceSize);
        }
    }
    if cfg.arch.misc_flags & !XEN_X86_MSR_RELAXED != 0 {
        info!(
            "createdomain: invalid arch misc flags {:#x}",
            cfg.arch.misc_flags
        );
        return Err(CreateCheck::MiscFlagsUnknown);
    }
    Ok(())
}

/// Xen's `emulation_flags_ok()`: the only emulator sets each kind of domain may
/// have in 4.17.
pub fn emulation_flags_ok(hvm: bool, is_hardware: bool, emflags: u32) -> bool {
    if hvm {
        if is_hardware {
            emflags == XEN_X86_EMU_VPCI | XEN_X86_EMU_LAPIC | XEN_X86_EMU_IOAPIC
        } else {
            emflags == XEN_X86_EMU_ALL & !XEN_X86_EMU_VPCI || emflags == XEN_X86_EMU_LAPIC
        }
    } else {
        emflags == 0 || emflags == XEN_X86_EMU_PIT
    }
}

/// The emulation-flag part of Xen's `arch_domain_create()`: unknown bits are
/// `-EINVAL`, a set `emulation_flags_ok()` refuses is `-EOPNOTSUPP`. Returns the
/// flags the domain keeps.
pub fn arch_emulation_flags(
    domid: domid_t,
    hvm: bool,
    is_hardware: bool,
    requested: u32,
) -> CheckResult<u32> {
    let mut emflags = requested;
    if is_hardware && !hvm {
        emflags |= XEN_X86_EMU_PIT;
    }
    if emflags & !XEN_X86_EMU_ALL != 0 {
        warn!("d{domid}: invalid emulation bitmap: {emflags:#x}");
        return Err(CreateCheck::EmulationUnknownBits);
    }
    if !emulation_flags_ok(hvm, is_hardware, emflags) {
        warn!(
            "d{domid}: this hypervisor does not allow {} domain creation with the current selection of emulators: {emflags:#x}",
            if hvm { "HVM" } else { "PV" }
        );
        return Err(CreateCheck::EmulationUnsupported);
    }
    Ok(emflags)
}

/// Xen's `grant_table_init()` checks: returns (max grant frames, max maptrack
/// frames, max grant version) with negative limits replaced by the defaults.
pub fn grant_table_limits(
    cfg: &xen_domctl_createdomain,
    caps: &HostCaps,
) -> CheckResult<(u32, u32, u32)> {
    let version = cfg.grant_opts & XEN_DOMCTL_GRANT_version_mask;
    if version == 0 {
        info!("createdomain: grant table version 0 requested");
        return Err(CreateCheck::HvmWithoutHap);
    }
    if version > caps.gnttab_max_version {
        info!(
            "createdomain: grant version {version} above the supported {}",
            caps.gnttab_max_version
        );
        return Err(CreateCheck::GrantVersionZero);
    }
    // Negative means "the hypervisor's default", which is also the maximum.
    let frames = u32::try_from(cfg.max_grant_frames).unwrap_or(caps.max_grant_frames);
    let maptrack = u32::try_from(cfg.max_maptrack_frames).unwrap_or(caps.max_maptrack_frames);
    if frames < INITIAL_NR_GRANT_FRAMES
        || frames > caps.max_grant_frames
        || maptrack > caps.max_maptrack_frames
    {
        info!("createdomain: bad grant table sizes: grant {frames}, maptrack {maptrack}");
        return Err(CreateCheck::GrantVersionTooHigh);
    }
    Ok((frames, maptrack, version))
}

/// Every check `XEN_DOMCTL_createdomain` makes, in Xen 4.17's order, for a
/// domain that would get id `domid`. `is_hardware` is true for domain 0 only.
///
/// Order (each step returns the first errno that applies):
/// 1. [`sanitise_domain_config`] (+ [`arch_sanitise_domain_config`]) — `-EINVAL`;
/// 2. [`arch_emulation_flags`] — `-EINVAL` / `-EOPNOTSUPP`;
/// 3. paging: HVM without HAP needs shadow paging — `-EOPNOTSUPP` here;
/// 4. [`grant_table_limits`] — `-EINVAL`;
/// 5. cpupool: only pool 0 exists — `-ESRCH`.
pub fn validate_createdomain(
    domid: domid_t,
    is_hardware: bool,
    config: &xen_domctl_createdomain,
    caps: &HostCaps,
) -> CheckResult<DomainConfig> {
    let mut cfg = *config;
    sanitise_domain_config(&mut cfg, caps)?;
    let hvm = cfg.flags & XEN_DOMCTL_CDF_hvm != 0;
    let hap = cfg.flags & XEN_DOMCTL_CDF_hap != 0;

    let emulation_flags = arch_emulation_flags(domid, hvm, is_hardware, cfg.arch.emulation_flags)?;

    // paging_domain_init(): without HAP an HVM guest needs shadow paging.
    if hvm && !hap && !caps.shadow_paging {
        info!("d{domid}: HVM without HAP needs shadow paging, which this hypervisor does not have");
        return Err(CreateCheck::GrantFrameLimits);
    }

    let (max_grant_frames, max_maptrack_frames, max_grant_version) =
        grant_table_limits(&cfg, caps)?;

    if cfg.cpupool_id != 0 {
        info!("d{domid}: cpupool {} does not exist", cfg.cpupool_id);
        return Err(CreateCheck::NoSuchCpupool);
    }

    Ok(DomainConfig {
        flags: cfg.flags,
        iommu_opts: cfg.iommu_opts,
        max_vcpus: cfg.max_vcpus,
        max_evtchn_port: cfg.max_evtchn_port.min(INT_MAX),
        max_grant_frames,
        max_maptrack_frames,
        max_grant_version,
        vmtrace_size: cfg.vmtrace_size,
        cpupool_id: cfg.cpupool_id,
        ssidref: cfg.ssidref,
        handle: cfg.handle,
        emulation_flags,
        misc_flags: cfg.arch.misc_flags,
    })
}

/// One vCPU as the arch-neutral core sees it (the vendor backend keeps the
/// hardware state). Created by `XEN_DOMCTL_max_vcpus`, "down" until brought up.
#[derive(Debug, Default)]
pub struct Vcpu {
    pub vcpu_id: u32,
    /// Not `VPF_down`: the vCPU has been brought up.
    pub online: bool,
    /// `VPF_blocked`: waiting for an event (`SCHEDOP_block`, `SCHEDOP_poll`).
    pub blocked: bool,
    /// Currently running on a physical CPU (set by the scheduler/backend).
    pub running: bool,
    /// Paused because its domain shut down.
    pub paused_for_shutdown: bool,
    /// Nanoseconds spent running (maintained by the backend), for getdomaininfo.
    pub run_time_ns: u64,
    /// The ports a `SCHEDOP_poll` is waiting on, if polling.
    pub poll: Option<PollState>,
}

impl Vcpu {
    pub fn new(vcpu_id: u32) -> Self {
        Vcpu {
            vcpu_id,
            ..Vcpu::default()
        }
    }
}

/// A domain's shutdown state (`is_shutting_down`, `is_shut_down`, `shutdown_code`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ShutdownState {
    pub is_shutting_down: bool,
    pub is_shut_down: bool,
    /// The first reason given (`SCHEDOP_shutdown` or `SCHEDOP_shutdown_code`),
    /// [`SHUTDOWN_CODE_INVALID`] until then.
    pub code: u32,
}

/// One domain.
///
/// Adding a per-domain sub-state of another mechanism (event channels, HVM
/// params, p2m views) is one field here plus one line in [`Domain::new`], which
/// runs only after every createdomain check has passed.
#[derive(Debug)]
pub struct Domain {
    pub domain_id: domid_t,
    /// The accepted createdomain configuration.
    pub config: DomainConfig,
    /// `is_privileged`: may use domctl (dom0, or a privileged boot domain).
    pub is_privileged: bool,
    /// `is_hardware_domain()`: domain 0.
    pub is_hardware: bool,
    /// vCPUs `0..len`, created by `XEN_DOMCTL_max_vcpus`.
    pub vcpus: Vec<Vcpu>,
    /// Pauses by the toolstack; a new domain starts at 1 (created paused).
    pub controller_pause_count: u32,
    /// The controller pause count first reached 0.
    pub creation_finished: bool,
    pub shutdown: ShutdownState,
    /// `max_pages` (`XEN_DOMCTL_max_mem`); 0 at creation, as in Xen.
    pub max_pages: u64,
    /// The frame holding this domain's `shared_info`.
    pub shared_info_mfn: Mfn,
    /// Where the guest mapped `shared_info` (`u64::MAX` until it did).
    pub shared_info_gfn: u64,
    /// The partial console line of a non-hardware domain (`pbuf`).
    pub console: GuestConsoleBuffer,
    /// Guest memory frames this domain owns (`tot_pages` = its length).
    pages: Vec<Mfn>,
}

impl Domain {
    /// Construct a domain whose configuration has passed every check. This is the
    /// one place a `Domain` is built: add sub-state construction here.
    fn new(
        domain_id: domid_t,
        config: DomainConfig,
        is_privileged: bool,
        shared_info_mfn: Mfn,
    ) -> Self {
        Domain {
            domain_id,
            config,
            is_privileged,
            is_hardware: domain_id == 0,
            vcpus: Vec::new(),
            controller_pause_count: 1,
            creation_finished: false,
            shutdown: ShutdownState {
                is_shutting_down: false,
                is_shut_down: false,
                code: SHUTDOWN_CODE_INVALID,
            },
            max_pages: 0,
            shared_info_mfn,
            shared_info_gfn: u64::MAX,
            console: GuestConsoleBuffer::new(),
            pages: Vec::new(),
        }
    }

    pub fn flags(&self) -> u32 {
        self.config.flags
    }
    pub fn is_hvm(&self) -> bool {
        self.config.flags & XEN_DOMCTL_CDF_hvm != 0
    }
    /// `paging_mode_hap()`.
    pub fn hap(&self) -> bool {
        self.is_hvm() && self.config.flags & XEN_DOMCTL_CDF_hap != 0
    }
    /// `is_xenstore_domain()`.
    pub fn is_xenstore(&self) -> bool {
        self.config.flags & XEN_DOMCTL_CDF_xs_domain != 0
    }
    /// The domain was created with `XEN_DOMCTL_CDF_evtchn_fifo`: it may switch to
    /// the FIFO event-channel ABI.
    pub fn evtchn_fifo_allowed(&self) -> bool {
        self.config.flags & XEN_DOMCTL_CDF_evtchn_fifo != 0
    }
    /// The domain was created with `XEN_DOMCTL_CDF_evtchn_upcall`.
    pub fn evtchn_upcall_allowed(&self) -> bool {
        self.config.flags & XEN_DOMCTL_CDF_evtchn_upcall != 0
    }
    /// `has_pirq()`: the HVM domain emulates PIRQs (`XEN_X86_EMU_USE_PIRQ`).
    pub fn has_pirq(&self) -> bool {
        self.config.emulation_flags & XEN_X86_EMU_USE_PIRQ != 0
    }
    pub fn max_vcpus(&self) -> u32 {
        self.config.max_vcpus
    }
    /// `domain_tot_pages()`: guest frames held.
    pub fn tot_pages(&self) -> u64 {
        self.pages.len() as u64
    }
    pub fn vcpu(&self, id: u32) -> Option<&Vcpu> {
        self.vcpus.get(id as usize)
    }
    pub fn vcpu_mut(&mut self, id: u32) -> Option<&mut Vcpu> {
        self.vcpus.get_mut(id as usize)
    }
    /// The domain's vCPUs may run: not paused by the toolstack, not shut down.
    pub fn is_runnable(&self) -> bool {
        self.controller_pause_count == 0 && !self.shutdown.is_shutting_down
    }

    /// `domain_pause_by_systemcontroller()`: one more toolstack pause.
    pub fn pause_by_systemcontroller(&mut self) -> XenResult<()> {
        if self.controller_pause_count >= MAX_CONTROLLER_PAUSE_COUNT {
            return Err(Errno::EOVERFLOW);
        }
        self.controller_pause_count += 1;
        Ok(())
    }

    /// `domain_unpause_by_systemcontroller()`: one toolstack pause fewer;
    /// `-EINVAL` when not paused. The first drop to 0 finishes creation.
    pub fn unpause_by_systemcontroller(&mut self) -> XenResult<()> {
        if self.controller_pause_count == 0 {
            return Err(Errno::EINVAL);
        }
        self.controller_pause_count -= 1;
        if self.controller_pause_count == 0 && !self.creation_finished {
            self.creation_finished = true;
        }
        Ok(())
    }

    /// `domain_shutdown()`: the first reason sticks; every vCPU is paused for
    /// shutdown and the domain is shut down at once (no vCPU defers it here).
    /// Returns true if this call started the shutdown.
    pub fn shutdown(&mut self, reason: u8) -> bool {
        if self.shutdown.code == SHUTDOWN_CODE_INVALID {
            self.shutdown.code = u32::from(reason);
        }
        if self.shutdown.is_shutting_down {
            return false;
        }
        self.shutdown.is_shutting_down = true;
        for v in &mut self.vcpus {
            v.paused_for_shutdown = true;
        }
        self.shutdown.is_shut_down = true;
        true
    }

    /// `SCHEDOP_shutdown_code`: record a reason without shutting down (first wins).
    pub fn set_shutdown_code(&mut self, reason: u8) {
        if self.shutdown.code == SHUTDOWN_CODE_INVALID {
            self.shutdown.code = u32::from(reason);
        }
    }
}

/// The domain table: every domain by id, Xen 4.17's id rules, and the frames the
/// domains hold.
pub struct DomainTable {
    domains: BTreeMap<domid_t, Domain>,
    /// The last picked domain id (`rover` in 4.17's `do_domctl`).
    rover: domid_t,
    caps: HostCaps,
    pages: Box<dyn PageAllocator + Send>,
}

impl DomainTable {
    pub fn new(caps: HostCaps, pages: Box<dyn PageAllocator + Send>) -> Self {
        DomainTable {
            domains: BTreeMap::new(),
            rover: 0,
            caps,
            pages,
        }
    }

    pub fn caps(&self) -> &HostCaps {
        &self.caps
    }
    pub fn len(&self) -> usize {
        self.domains.len()
    }
    pub fn is_empty(&self) -> bool {
        self.domains.is_empty()
    }
    /// Ids of all domains, ascending.
    pub fn ids(&self) -> impl Iterator<Item = domid_t> + '_ {
        self.domains.keys().copied()
    }
    /// The domain with exactly this id (`rcu_lock_domain_by_id`: no `DOMID_SELF`).
    pub fn get(&self, id: domid_t) -> Option<&Domain> {
        self.domains.get(&id)
    }
    pub fn get_mut(&mut self, id: domid_t) -> Option<&mut Domain> {
        self.domains.get_mut(&id)
    }
    /// `DOMID_SELF` resolved to the caller, other ids unchanged
    /// (`rcu_lock_domain_by_any_id`).
    pub fn resolve(caller: domid_t, id: domid_t) -> domid_t {
        if id == DOMID_SELF {
            caller
        } else {
            id
        }
    }
    /// Lookup with `DOMID_SELF` meaning the caller; `-ESRCH` if absent.
    pub fn lookup_any_mut(&mut self, caller: domid_t, id: domid_t) -> XenResult<&mut Domain> {
        self.domains
            .get_mut(&Self::resolve(caller, id))
            .ok_or(Errno::ESRCH)
    }
    /// The first domain whose id is `>= id` (4.17's getdomaininfo search).
    pub fn first_at_or_above(&self, id: domid_t) -> Option<&Domain> {
        self.domains.range(id..).next().map(|(_, d)| d)
    }

    /// Two different domains mutably at once (interdomain event channels).
    /// `None` if `a == b` or either does not exist; the pair is in (a, b) order.
    pub fn get_pair_mut(&mut self, a: domid_t, b: domid_t) -> Option<(&mut Domain, &mut Domain)> {
        if a == b {
            return None;
        }
        let (lo, hi) = (a.min(b), a.max(b));
        let mut range = self.domains.range_mut(lo..=hi);
        let first = range.next().filter(|(k, _)| **k == lo)?.1;
        let last = range.next_back().filter(|(k, _)| **k == hi)?.1;
        if a < b {
            Some((first, last))
        } else {
            Some((last, first))
        }
    }

    /// 4.17's domain-id choice for `XEN_DOMCTL_createdomain`: 1..=0x7fef is an exact
    /// request (`-EEXIST` if taken); 0 and every reserved id mean "pick": the next
    /// free id after the last one picked, wrapping from 0x7fef to 1. The picked id
    /// is consumed even if the creation then fails (as in 4.17).
    fn pick_domid(&mut self, requested: domid_t) -> XenResult<domid_t> {
        if requested > 0 && requested < DOMID_FIRST_RESERVED {
            if self.domains.contains_key(&requested) {
                return Err(Errno::EEXIST);
            }
            return Ok(requested);
        }
        let mut dom = self.rover;
        for _ in 0..DOMID_MAX_NORMAL {
            dom = if dom >= DOMID_MAX_NORMAL { 1 } else { dom + 1 };
            if !self.domains.contains_key(&dom) {
                self.rover = dom;
                return Ok(dom);
            }
        }
        Err(Errno::ENOMEM)
    }

    /// `XEN_DOMCTL_createdomain` after the privilege and version checks: pick the
    /// id, validate, construct. Domains created this way are not privileged.
    pub fn create_domain(
        &mut self,
        requested: domid_t,
        config: &xen_domctl_createdomain,
    ) -> XenResult<domid_t> {
        let domid = self.pick_domid(requested)?;
        self.domain_create(domid, config, false)?;
        Ok(domid)
    }

    /// The boot-time path (dom0 and the boot manifest's domUs), through the same
    /// checks as the hypercall. `domid`: `Some(id)` is exactly that id (0 is
    /// allowed here, and only here; reserved ids are `-EINVAL`, a taken id
    /// `-EEXIST`), `None` picks as `createdomain` does.
    pub fn create_boot_domain(
        &mut self,
        domid: Option<domid_t>,
        config: &xen_domctl_createdomain,
        privileged: bool,
    ) -> XenResult<domid_t> {
        let domid = match domid {
            Some(id) if id >= DOMID_FIRST_RESERVED => return Err(Errno::EINVAL),
            Some(id) if self.domains.contains_key(&id) => return Err(Errno::EEXIST),
            Some(id) => id,
            None => self.pick_domid(0)?,
        };
        self.domain_create(domid, config, privileged)?;
        Ok(domid)
    }

    /// `domain_create()`: validate everything, then take the `shared_info` frame,
    /// then build the domain. Nothing is held if this fails.
    fn domain_create(
        &mut self,
        domid: domid_t,
        config: &xen_domctl_createdomain,
        privileged: bool,
    ) -> XenResult<()> {
        let cfg =
            validate_createdomain(domid, domid == 0, config, &self.caps).map_err(|c| c.errno())?;
        let shared_info = self.pages.alloc_frame().ok_or(Errno::ENOMEM)?;
        let d = Domain::new(domid, cfg, privileged, shared_info);
        info!(
            "d{domid}: created (flags {:#x}, {} vCPUs max{})",
            d.config.flags,
            d.config.max_vcpus,
            if privileged { ", privileged" } else { "" }
        );
        self.domains.insert(domid, d);
        Ok(())
    }

    /// Remove a domain and give back every frame it held. The id is free again at
    /// once. (The domctl layer refuses to destroy the caller itself.)
    pub fn destroy_domain(&mut self, id: domid_t) -> XenResult<()> {
        let d = self.domains.remove(&id).ok_or(Errno::ESRCH)?;
        for mfn in d.pages {
            self.pages.free_frame(mfn);
        }
        self.pages.free_frame(d.shared_info_mfn);
        info!("d{id}: destroyed");
        Ok(())
    }

    /// Give domain `id` one more guest frame (for the memory-op handlers):
    /// `-E2BIG` beyond `max_pages` (as Xen's `assign_pages()`), `-ENOMEM` when the
    /// machine has none left.
    pub fn alloc_domheap_page(&mut self, id: domid_t) -> XenResult<Mfn> {
        let d = self.domains.get_mut(&id).ok_or(Errno::ESRCH)?;
        if d.tot_pages() >= d.max_pages {
            return Err(Errno::E2BIG);
        }
        let mfn = self.pages.alloc_frame().ok_or(Errno::ENOMEM)?;
        d.pages.push(mfn);
        Ok(mfn)
    }

    /// Take a guest frame back from domain `id`; `-EINVAL` if it does not own it.
    pub fn free_domheap_page(&mut self, id: domid_t, mfn: Mfn) -> XenResult<()> {
        let d = self.domains.get_mut(&id).ok_or(Errno::ESRCH)?;
        let pos = d
            .pages
            .iter()
            .position(|&m| m == mfn)
            .ok_or(Errno::EINVAL)?;
        d.pages.swap_remove(pos);
        self.pages.free_frame(mfn);
        Ok(())
    }
}
