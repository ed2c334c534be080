//! `xenguest`: builds and starts a PVH domU from dom0 over hypercalls, in the
//! order Xen 4.17's toolstack does it (`libxl__domain_make`, `libxl__build_pre`,
//! `libxl__build_hvm` → `xc_dom_*`, `vcpu_hvm`, unpause; the mapping to each 4.17
//! function is in `docs/toolstack.md`).
//!
//! [`layout`] is the pure part (ELF, PVH note, extents, start info, E820, CPU
//! record) and is host-tested; [`build`] drives the hypercalls through
//! [`xenctrl::Xc`] and writes guest memory through a [`Window`] (a foreign
//! mapping at a dom0 gfn). A failure at any step destroys the half-built domain
//! and names the step ([`BuildError`]).
#![cfg_attr(not(test), no_std)]

extern crate alloc;

pub mod layout;

use alloc::string::String;
use alloc::vec::Vec;
use core::fmt;

use xen_public_abi::arch_x86::{xen_arch_domainconfig, XEN_X86_EMU_LAPIC};
use xen_public_abi::domctl::{
    xen_domctl_createdomain, XEN_DOMCTL_CDF_evtchn_fifo, XEN_DOMCTL_CDF_evtchn_upcall,
    XEN_DOMCTL_CDF_hap, XEN_DOMCTL_CDF_hvm,
};
use xen_public_abi::hvm::params::{
    HVM_PARAM_ALTP2M, HVM_PARAM_CONSOLE_EVTCHN, HVM_PARAM_CONSOLE_PFN, HVM_PARAM_STORE_EVTCHN,
    HVM_PARAM_STORE_PFN, HVM_PARAM_TIMER_MODE,
};
use xen_public_abi::xen::domid_t;
use xenctrl::{Errno, Hypercall, Xc};
use zerocopy::FromZeros;

use layout::{Layout, CONSOLE_PFN, SPECIAL_PFNS, SPECIAL_PFN_BASE, STORE_PFN};

/// Writes into a domU's memory from dom0: one page at a time through a foreign
/// mapping (`Xc::map_foreign` at a dom0 gfn, then a plain store).
pub trait Window {
    /// Write `bytes` at byte `offset` of page `gfn` of `dom` (`offset + len` ≤ 4096).
    fn write(&mut self, dom: domid_t, gfn: u64, offset: usize, bytes: &[u8]) -> Result<(), Errno>;

    /// Write `bytes` from guest-physical address `paddr` of `dom`, across pages
    /// (a kernel segment, the ramdisk). The default writes page by page; a
    /// window that can map many pages at once overrides it.
    fn write_run(&mut self, dom: domid_t, paddr: u64, bytes: &[u8]) -> Result<(), Errno> {
        let mut done = 0usize;
        while done < bytes.len() {
            let pa = paddr + done as u64;
            let n = (4096 - (pa & 0xfff) as usize).min(bytes.len() - done);
            self.write(dom, pa >> 12, (pa & 0xfff) as usize, &bytes[done..done + n])?;
            done += n;
        }
        Ok(())
    }
}

/// What to build.
#[derive(Clone, Debug)]
pub struct DomainSpec<'a> {
    pub name: &'a str,
    pub memory_mib: u64,
    pub maxmem_mib: u64,
    pub vcpus: u32,
    pub max_evtchn_port: u32,
    pub evtchn_fifo: bool,
    pub evtchn_upcall: bool,
    /// `HVM_PARAM_ALTP2M` (0: off).
    pub altp2m: u64,
    pub kernel: &'a [u8],
    pub ramdisk: Option<&'a [u8]>,
    pub cmdline: &'a str,
    /// A xenstore daemon serves the domain: `HVM_PARAM_STORE_PFN` /
    /// `STORE_EVTCHN` are set. Without one they stay 0 (the store page and port
    /// are still made): a Linux domU that is given a store nobody answers
    /// waits forever for its first xenbus reply during boot.
    pub xenstore: bool,
}

/// The builder's steps, in order (each names the 4.17 function it mirrors in
/// `docs/toolstack.md`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Step {
    ParseKernel,
    CreateDomain,
    MaxVcpus,
    MaxMem,
    AllocEvtchn,
    ArchSetup,
    Claim,
    PopulateRam,
    MemoryMap,
    LoadKernel,
    LoadRamdisk,
    SpecialPages,
    /// The ACPI tables (`libxl__dom_load_acpi`).
    Acpi,
    StartInfo,
    Params,
    CpuContext,
    Scheduler,
    Unpause,
}

/// A failed build: the step and why. The domain (if created) is destroyed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BuildError {
    pub step: Step,
    pub why: String,
}

impl fmt::Display for BuildError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "build failed at {:?}: {}", self.step, self.why)
    }
}

/// A built, running domain.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Built {
    pub domid: domid_t,
    pub console_port: u32,
    pub store_port: u32,
    pub entry: u64,
}

fn fail<T>(step: Step, e: impl fmt::Display) -> Result<T, BuildError> {
    Err(BuildError {
        step,
        why: alloc::format!("{e}"),
    })
}

/// `xl create` of a PVH domain: create, build, start. On error the domain is
/// destroyed (no frame stays allocated) and the step is reported.
pub fn build<H: Hypercall>(
    xc: &mut Xc<H>,
    win: &mut dyn Window,
    spec: &DomainSpec<'_>,
) -> Result<Built, BuildError> {
    // The kernel first: nothing is created for an image we cannot boot.
    let mut lay = match Layout::new(
        spec.kernel,
        spec.ramdisk.map(<[u8]>::len),
        spec.memory_mib,
        spec.cmdline,
    ) {
        Ok(l) => l,
        Err(e) => return fail(Step::ParseKernel, e),
    };
    let tables = match lay.place_acpi(spec.vcpus) {
        Ok(t) => t,
        Err(e) => return fail(Step::Acpi, e),
    };
    let mut cfg = xen_domctl_createdomain::new_zeroed();
    cfg.handle = xenctrl::handle_from_name(spec.name);
    cfg.flags = XEN_DOMCTL_CDF_hvm | XEN_DOMCTL_CDF_hap;
    if spec.evtchn_fifo {
        cfg.flags |= XEN_DOMCTL_CDF_evtchn_fifo;
    }
    if spec.evtchn_upcall {
        cfg.flags |= XEN_DOMCTL_CDF_evtchn_upcall;
    }
    cfg.max_vcpus = spec.vcpus;
    cfg.max_evtchn_port = spec.max_evtchn_port;
    cfg.max_grant_frames = -1;
    cfg.max_maptrack_frames = -1;
    cfg.grant_opts = 1;
    cfg.arch = xen_arch_domainconfig {
        emulation_flags: XEN_X86_EMU_LAPIC,
        misc_flags: 0,
    };
    let domid = match xc.domain_create(&cfg) {
        Ok(d) => d,
        Err(e) => return fail(Step::CreateDomain, e),
    };
    match build_created(xc, win, spec, &lay, &tables, domid) {
        Ok(b) => Ok(b),
        Err(e) => {
            // Nothing half-built stays behind.
            let _ = xc.domain_destroy(domid);
            Err(e)
        }
    }
}

fn build_created<H: Hypercall>(
    xc: &mut Xc<H>,
    win: &mut dyn Window,
    spec: &DomainSpec<'_>,
    lay: &Layout,
    tables: &[u8],
    domid: domid_t,
) -> Result<Built, BuildError> {
    use Step::*;
    let step = |s: Step| {
        move |e: Errno| BuildError {
            step: s,
            why: alloc::format!("{e}"),
        }
    };
    // libxl__build_pre.
    xc.domain_max_vcpus(domid, spec.vcpus)
        .map_err(step(MaxVcpus))?;
    // target + LIBXL_MAXMEM_CONSTANT (1 MiB), which also covers the special pages.
    xc.domain_setmaxmem(domid, spec.maxmem_mib * 1024 + 1024)
        .map_err(step(MaxMem))?;
    let store_port = xc
        .evtchn_alloc_unbound(domid, 0)
        .map_err(step(AllocEvtchn))?;
    let console_port = xc
        .evtchn_alloc_unbound(domid, 0)
        .map_err(step(AllocEvtchn))?;
    // libxl__arch_domain_create: timer mode, altp2m, TSC (default mode), pool.
    xc.hvm_param_set(domid, HVM_PARAM_TIMER_MODE, 1)
        .map_err(step(ArchSetup))?;
    if spec.altp2m != 0 {
        xc.hvm_param_set(domid, HVM_PARAM_ALTP2M, spec.altp2m)
            .map_err(step(ArchSetup))?;
    }
    xc.domain_set_tsc_info(domid, 0, 0)
        .map_err(step(ArchSetup))?;
    // libxl's shadow_memkb default: 1 MiB per vCPU + 8 KiB per MiB of RAM.
    let pool = (u64::from(spec.vcpus) * 256 + spec.maxmem_mib * 2) << 12;
    xc.set_paging_mempool_size(domid, pool)
        .map_err(step(ArchSetup))?;

    // meminit_hvm: claim, populate (large extents where aligned), cancel claim.
    xc.claim_pages(domid, lay.ram_pages + SPECIAL_PFNS)
        .map_err(step(Claim))?;
    for (order, gfns) in lay.extents_by_order() {
        let mut gfns = gfns;
        // Several extents per call, as libxenguest.
        for chunk in gfns.chunks_mut(64) {
            let done = xc
                .populate_physmap(domid, order, chunk)
                .map_err(step(PopulateRam))?;
            if done != chunk.len() as u64 {
                return fail(
                    PopulateRam,
                    alloc::format!("{done} of {} order-{order} extents", chunk.len()),
                );
            }
        }
    }
    xc.claim_pages(domid, 0).map_err(step(Claim))?;
    xc.set_memory_map(domid, &lay.e820_bytes())
        .map_err(step(MemoryMap))?;

    // xc_dom_build_image: the kernel's segments at their physical addresses.
    for s in &lay.segments {
        let file = &spec.kernel[s.offset as usize..(s.offset + s.filesz) as usize];
        win.write_run(domid, s.paddr, file)
            .map_err(step(LoadKernel))?;
    }
    if let Some(rd) = spec.ramdisk {
        win.write_run(domid, lay.ramdisk_pfn << 12, rd)
            .map_err(step(LoadRamdisk))?;
    }
    // alloc_magic_pages_hvm: the special pages, zeroed.
    let mut specials: Vec<u64> = (0..SPECIAL_PFNS).map(|i| SPECIAL_PFN_BASE + i).collect();
    let done = xc
        .populate_physmap(domid, 0, &mut specials)
        .map_err(step(SpecialPages))?;
    if done != SPECIAL_PFNS {
        return fail(
            SpecialPages,
            alloc::format!("{done} of {SPECIAL_PFNS} pages"),
        );
    }
    let zero = [0u8; 4096];
    for i in 0..SPECIAL_PFNS {
        win.write(domid, SPECIAL_PFN_BASE + i, 0, &zero)
            .map_err(step(SpecialPages))?;
    }
    // libxl__dom_load_acpi: the tables, in the last pages of low RAM.
    for (i, page) in tables.chunks(4096).enumerate() {
        win.write(domid, lay.acpi_pfn + i as u64, 0, page)
            .map_err(step(Acpi))?;
    }
    // bootlate_hvm: hvm_start_info with modules, memory map, command line.
    let page = lay.start_info_page(spec.cmdline, spec.ramdisk.map(<[u8]>::len));
    win.write(domid, lay.start_info_pfn, 0, &page)
        .map_err(step(StartInfo))?;
    let store = [
        (HVM_PARAM_STORE_PFN, STORE_PFN),
        (HVM_PARAM_STORE_EVTCHN, u64::from(store_port)),
    ];
    let console = [
        (HVM_PARAM_CONSOLE_PFN, CONSOLE_PFN),
        (HVM_PARAM_CONSOLE_EVTCHN, u64::from(console_port)),
    ];
    let store = if spec.xenstore { &store[..] } else { &[] };
    for &(index, value) in store.iter().chain(&console) {
        xc.hvm_param_set(domid, index, value)
            .map_err(step(Params))?;
    }
    // vcpu_hvm: the saved context's HEADER, MTRR per vCPU, then CPU#0.
    let size = xc.hvm_context_size(domid).map_err(step(CpuContext))?;
    let mut ctx = alloc::vec![0u8; size as usize];
    let used = xc
        .hvm_getcontext(domid, &mut ctx)
        .map_err(step(CpuContext))?;
    let header = layout::header_of(&ctx[..used as usize]).ok_or(BuildError {
        step: CpuContext,
        why: "the saved context has no HEADER record".into(),
    })?;
    for v in 0..spec.vcpus {
        let rec = layout::context(
            &header,
            &[(layout::CODE_MTRR, v as u16, &layout::mtrr_wb())],
        );
        xc.hvm_setcontext(domid, &rec).map_err(step(CpuContext))?;
    }
    let cpu = layout::pvh_cpu(lay.entry as u32, (lay.start_info_pfn << 12) as u32);
    let rec = layout::context(&header, &[(layout::CODE_CPU, 0, &cpu)]);
    xc.hvm_setcontext(domid, &rec).map_err(step(CpuContext))?;

    // libxl__build_post: scheduler parameters (credit2's defaults back).
    let (w, c) = xc.sched_credit2_get(domid).map_err(step(Scheduler))?;
    xc.sched_credit2_set(domid, w, c).map_err(step(Scheduler))?;
    xc.domain_unpause(domid).map_err(step(Unpause))?;
    Ok(Built {
        domid,
        console_port,
        store_port,
        entry: lay.entry,
    })
}
