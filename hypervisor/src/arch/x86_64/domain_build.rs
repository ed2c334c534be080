//! Boot-time domain construction: every domain of the ramdisk's `domains.cfg`
//! (dom0 privileged, then any domUs, in file order) is created through the same
//! createdomain path as the hypercall (`DomainTable::create_boot_domain`), given
//! its RAM (GPA 0 up, frames from `alloc_domheap_page` after `max_pages` is set,
//! mapped in the host p2m), its vCPUs, its HVM params, and its PVH image; vCPU 0
//! is set to the PVH entry state and the domain is unpaused.
//!
//! Mirrors Xen 4.17's `create_dom0()` / `dom0_construct_pvh()`
//! (`xen/arch/x86/setup.c`, `hvm/dom0_build.c`) and the dom0less builder
//! (`xen/arch/arm/domain_build.c`: `create_domUs()`), which is what the toolstack
//! will later do from dom0 over hypercalls.

use alloc::boxed::Box;
use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;

use xen_public_abi::hvm::params::HVM_PARAM_ALTP2M;
use xen_public_abi::xen::{domid_t, SIF_INITDOMAIN, SIF_PRIVILEGED};

use super::guest_mem::PHYS_MACHINE;
use super::hvm::vcpu::{InitialState, Vcpu};
use super::{frame, hvm, pvh, ramdisk};
use crate::common::boot_manifest::{self, BootDomain};
use crate::common::dispatch::XenExt;
use crate::common::domctl::create_vcpus;
use crate::common::guest_access::GuestRam;
use crate::common::hypercall::Hypervisor;
use crate::common::memory::P2mAccess;
use crate::common::memory_op::{E820Entry, E820_RAM};
use xen_public_abi::arch_x86::XEN_X86_EMU_IOAPIC;

/// `E820_ACPI` (ACPI tables, reclaimable).
const E820_ACPI: u32 = 3;
use crate::common::page_alloc::{Mfn, PageAllocator};

/// Machine frames for the domain table, from the kernel's frame allocator
/// (zeroed, as guest RAM must start).
pub struct KernelPages;

impl PageAllocator for KernelPages {
    fn alloc_frame(&mut self) -> Option<Mfn> {
        frame::alloc_zeroed().map(|pa| pa >> 12)
    }
    fn free_frame(&mut self, mfn: Mfn) {
        frame::free_contiguous(mfn << 12, 1);
    }
}

/// A built vCPU's hardware half, for the scheduler.
pub struct BuiltVcpu {
    pub domid: domid_t,
    pub vcpu: u32,
    pub hw: Box<dyn Vcpu>,
}

/// Build one domain; on failure the domain (if created) is destroyed again and
/// the reason returned.
fn build_one(
    hv: &mut Hypervisor,
    ext: &mut XenExt,
    bd: &BootDomain,
    images: &[ramdisk::Entry<'_>],
    out: &mut Vec<BuiltVcpu>,
) -> Result<domid_t, String> {
    let image = images
        .iter()
        .find(|e| e.name == bd.image)
        .ok_or_else(|| format!("image `{}` is not in the ramdisk", bd.image))?;
    let id = hv
        .domains
        .create_boot_domain(bd.domid, &bd.config, bd.privileged)
        .map_err(|e| format!("createdomain refused: {e:?}"))?;
    match populate_and_load(hv, ext, id, bd, image.data, images, out) {
        Ok(()) => Ok(id),
        Err(why) => {
            out.retain(|v| v.domid != id);
            let _ = hv.domains.destroy_domain(id);
            Err(why)
        }
    }
}

fn populate_and_load(
    hv: &mut Hypervisor,
    ext: &mut XenExt,
    id: domid_t,
    bd: &BootDomain,
    image: &[u8],
    images: &[ramdisk::Entry<'_>],
    out: &mut Vec<BuiltVcpu>,
) -> Result<(), String> {
    let pages = bd.memory_pages();
    let d = hv.domains.get_mut(id).ok_or("vanished")?;
    d.max_pages = pages;
    for gfn in 0..pages {
        let mfn = hv
            .domains
            .alloc_domheap_page(id)
            .map_err(|e| format!("RAM page {gfn:#x} of {pages:#x}: {e:?}"))?;
        let d = hv.domains.get_mut(id).ok_or("vanished")?;
        d.hvm
            .p2m
            .set_host_entry(gfn, mfn, P2mAccess::RWX)
            .map_err(|e| format!("p2m entry {gfn:#x}: {e:?}"))?;
    }
    let d = hv.domains.get_mut(id).ok_or("vanished")?;
    create_vcpus(d, ext).map_err(|e| format!("vCPUs: {e:?}"))?;
    if bd.altp2m != 0 {
        d.hvm
            .set_param_raw(HVM_PARAM_ALTP2M, bd.altp2m)
            .map_err(|e| format!("HVM_PARAM_ALTP2M: {e:?}"))?;
    }
    let flags = if d.is_privileged {
        SIF_PRIVILEGED | if id == 0 { SIF_INITDOMAIN } else { 0 }
    } else {
        0
    };
    let mut ram = GuestRam {
        p2m: &d.hvm.p2m,
        machine: &PHYS_MACHINE,
    };
    // ACPI tables as libxl builds them for PVH, in the last page(s) of RAM.
    let ram_bytes = pages << 12;
    let probe = xen_pvh_build::acpi::Config {
        base: 0,
        vcpus: d.vcpus.len() as u32,
        ioapic: bd.config.arch.emulation_flags & XEN_X86_EMU_IOAPIC != 0,
    };
    let size = xen_pvh_build::acpi::build(&probe)
        .map_err(|e| format!("ACPI tables: {e:?}"))?
        .bytes
        .len() as u64;
    let base = ram_bytes
        .checked_sub((size + 0xfff) & !0xfff)
        .filter(|&b| b >= 1 << 20)
        .ok_or("no room for the ACPI tables")?;
    let tables = xen_pvh_build::acpi::build(&xen_pvh_build::acpi::Config { base, ..probe })
        .map_err(|e| format!("ACPI tables: {e:?}"))?;
    let acpi = pvh::AcpiBlob {
        base,
        bytes: &tables.bytes,
        rsdp: tables.rsdp,
    };
    let loaded = pvh::load(&mut ram, ram_bytes, image, &bd.cmdline, flags, Some(&acpi))?;
    d.memmap = alloc::vec![
        E820Entry {
            addr: 0,
            size: base,
            kind: E820_RAM,
        },
        E820Entry {
            addr: base,
            size: ram_bytes - base,
            kind: E820_ACPI,
        },
    ];
    let mut mods = Vec::new();
    // xl's `ramdisk=` is the first module, then dom0's `modules=`.
    for m in bd.ramdisk.iter().chain(&bd.modules) {
        let e = images
            .iter()
            .find(|e| e.name == m.as_str())
            .ok_or_else(|| format!("module `{m}` is not in the ramdisk"))?;
        mods.push((e.name, e.data));
    }
    pvh::load_modules(&mut ram, ram_bytes, &loaded, &mods)?;
    log::info!(
        "d{id}: {} loaded at {:#x}..{:#x}, entry {:#x}, {} MiB, {} vCPU(s)",
        bd.image,
        loaded.image_start,
        loaded.image_end,
        loaded.entry,
        bd.memory_mib,
        d.vcpus.len()
    );
    for v in 0..d.vcpus.len() as u32 {
        let mut hw = hvm::new_vcpu().map_err(|e| format!("vCPU {v}: {e:?}"))?;
        if v == 0 {
            hw.set_initial_state(&InitialState::pvh(loaded.entry, loaded.start_info));
        }
        out.push(BuiltVcpu {
            domid: id,
            vcpu: v,
            hw,
        });
    }
    if let Some(c) = d.vcpu_mut(0) {
        c.online = true;
    }
    if bd.paused {
        // Left to dom0, as a toolstack leaves a domain it created: creation is
        // not finished until its first unpause (set_cpu_policy still allowed).
        log::info!("d{id}: left paused for dom0 (paused=1)");
    } else {
        d.unpause_by_systemcontroller()
            .map_err(|e| format!("unpause: {e:?}"))?;
    }
    Ok(())
}

/// Build every domain `domains.cfg` names. A domain that cannot be built is
/// logged (`d? <name>: not built: <why>`) and skipped; the others are built.
/// Returns the vCPUs' hardware halves, or an error if the manifest itself is bad.
pub fn build_all(
    hv: &mut Hypervisor,
    ext: &mut XenExt,
    images: &[ramdisk::Entry<'_>],
) -> Result<Vec<BuiltVcpu>, String> {
    let Some(cfg) = images.iter().find(|e| e.name == "domains.cfg") else {
        return Ok(Vec::new());
    };
    let text = core::str::from_utf8(cfg.data).map_err(|_| "domains.cfg is not UTF-8 text")?;
    let manifest = boot_manifest::parse(text).map_err(|e| format!("{e}"))?;
    let mut out = Vec::new();
    for bd in &manifest {
        match build_one(hv, ext, bd, images, &mut out) {
            Ok(id) => log::info!("d{id}: {} built", bd.name),
            Err(why) => log::error!("domain `{}`: not built: {why}", bd.name),
        }
    }
    Ok(out)
}

/// Guest console output as log lines: `d<id>: <text>` (dom0's raw bytes are
/// gathered into lines; a domU's arrive as `(d<id>) <text>` lines from
/// `console_io`, rate-limited there).
struct LogSink {
    line: Vec<u8>,
}

impl crate::common::console_io::ConsoleSink for LogSink {
    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            if b != b'\n' {
                if self.line.len() < 4096 {
                    self.line.push(b);
                }
                continue;
            }
            let text = String::from_utf8_lossy(&self.line);
            let text = text.trim_end_matches('\r');
            if let Some(rest) = text.strip_prefix("(d") {
                match rest.split_once(") ") {
                    Some((id, msg)) if id.bytes().all(|c| c.is_ascii_digit()) => {
                        log::info!("d{id}: {msg}")
                    }
                    _ => log::info!("d0: {text}"),
                }
            } else if text.starts_with("(XEN)") {
                log::info!("{text}");
            } else {
                log::info!("d0: {text}");
            }
            self.line.clear();
        }
    }
}

/// `max_page`, for [`host_facts`].
static MAX_RAM_PAGE: core::sync::atomic::AtomicU64 = core::sync::atomic::AtomicU64::new(0);

/// The machine's facts for `XEN_SYSCTL_physinfo`: online CPUs, TSC kHz, usable
/// and free frames (the frame allocator's own count), the highest frame.
fn host_facts() -> crate::common::hypercall::HostFacts {
    crate::common::hypercall::HostFacts {
        nr_cpus: super::percpu::online_count() as u32,
        cpu_khz: (super::time::tsc_hz() / 1000) as u32,
        total_pages: frame::usable_frames(),
        free_pages: frame::free_frames() as u64,
        max_mfn: MAX_RAM_PAGE.load(core::sync::atomic::Ordering::Relaxed),
        cpuid1_eax: core::arch::x86_64::__cpuid(1).eax,
    }
}

/// After READY: build the manifest's domains and run them (never returns when
/// there is something to run). `Err`: nothing to run, and why.
pub fn boot(images: &[ramdisk::Entry<'_>], max_ram_page: u64) -> Result<(), String> {
    use crate::common::console_io::Console;
    use crate::common::domain::{DomainTable, HostCaps};
    use crate::common::time::TimeScale;
    use alloc::sync::Arc;

    super::virt::guests_allowed().map_err(String::from)?;
    let scale = TimeScale::from_hz(super::time::tsc_hz());
    let clock = || Box::new(super::sched::TscClock { scale });
    let mut domains = DomainTable::new(HostCaps::THIS_HYPERVISOR, Box::new(KernelPages));
    domains.set_cpu_policies(super::hvm::system_cpu_policies());
    let mut console = Console::new(Box::new(LogSink { line: Vec::new() }));
    let boot_cmd = images
        .iter()
        .find(|e| e.name == "boot.cmd")
        .and_then(|e| core::str::from_utf8(e.data).ok())
        .map(ramdisk::parse_boot_cmd);
    if boot_cmd.is_some_and(|c| c.guest_log_unlimited) {
        log::info!("console: guest output is not rate-limited (guest_loglvl=all)");
        console.set_guest_ratelimit(false);
    }
    let mut hv = Hypervisor::new(domains, console, clock());
    let mut ext = XenExt::new(Arc::new(super::guest_mem::PhysMachine), clock());
    ext.max_ram_page = max_ram_page;
    MAX_RAM_PAGE.store(max_ram_page, core::sync::atomic::Ordering::Relaxed);
    ext.facts = host_facts;
    let vcpus = build_all(&mut hv, &mut ext, images)?;
    if hv.domains.get(0).is_none() {
        return Err("no dom0 was built".into());
    }
    log::info!("domains: {} built, {} vCPUs", hv.domains.len(), vcpus.len());
    // Wall time at system time 0: the RTC now, minus the time since reset.
    let now_ns = super::time::rdtsc();
    let now_ns = scale.scale(now_ns);
    let boot_wall_ns = match super::rtc::unix_time() {
        Some(s) => {
            log::info!("rtc: {s} s since the epoch");
            (s * 1_000_000_000).saturating_sub(now_ns)
        }
        None => {
            log::warn!("rtc: unreadable, the guests' wallclock starts at the epoch");
            0
        }
    };
    super::sched::start(hv, ext, vcpus, boot_wall_ns)
}
