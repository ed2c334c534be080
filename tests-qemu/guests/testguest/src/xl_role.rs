//! The `xl` dom0 role: runs an `xl` script (a start-info module) with the dom0
//! toolstack (`toolstack/`): `create` builds a domU from an xl.cfg module and a
//! kernel module over hypercalls, `list` prints `xl list`'s table, `pause`,
//! `unpause`, `destroy`, `info`, and `mark-free-pages` / `check-free-pages`
//! compare physinfo's free frames. Each command prints `RESULT xl.<n>-<verb>`.
//! `xl-domu` is the domain it creates: it says so and idles.

use alloc::string::String;
use alloc::vec::Vec;
use core::sync::atomic::{AtomicUsize, Ordering};

use guest_rt::report::{check, done};
use guest_rt::{println, xen, Boot};
use xen_public_abi::domctl::{
    XEN_DOMINF_blocked, XEN_DOMINF_dying, XEN_DOMINF_paused, XEN_DOMINF_running,
    XEN_DOMINF_shutdown,
};
use xen_public_abi::hvm::params::HVM_PARAM_CONSOLE_PFN;
use xen_public_abi::hvm::start_info::hvm_modlist_entry;
use xen_public_abi::sched::SHUTDOWN_poweroff;
use xen_public_abi::xen::domid_t;
use xenctrl::{DomInfo, Errno, Hypercall, Xc};
use xl::verb::{Target, Verb};
use zerocopy::FromZeros;

const S: &str = "xl";

/// Hypercalls from this vCPU.
pub struct GuestHc;

impl Hypercall for GuestHc {
    fn hypercall(&mut self, nr: u32, a: [u64; 5]) -> i64 {
        xen::hypercall(nr, a[0], a[1], a[2], a[3], a[4])
    }
}

/// dom0 gfns where domU pages are mapped while the builder writes them: a
/// 1 GiB window at 2 GiB (identity-mapped by the runtime), one slot per domU gfn
/// modulo the window, so consecutive writes use different gfns.
const WINDOW_GFN: u64 = 0x8_0000;
const WINDOW_PAGES: u64 = 0x4_0000;

struct ForeignWindow(Xc<GuestHc>);

impl xenguest::Window for ForeignWindow {
    fn write(&mut self, dom: domid_t, gfn: u64, offset: usize, bytes: &[u8]) -> Result<(), Errno> {
        let slot = WINDOW_GFN + gfn % WINDOW_PAGES;
        self.0.map_foreign(dom, gfn, slot)?;
        let dst = (slot << 12) as usize + offset;
        // SAFETY: `slot` is a dom0 gfn below 4 GiB (identity-mapped by the
        // runtime) that now maps the domU's page; offset + len ≤ 4096 (the
        // builder's contract).
        unsafe { core::ptr::copy_nonoverlapping(bytes.as_ptr(), dst as *mut u8, bytes.len()) };
        self.0.unmap_foreign(slot)
    }

    /// Up to [`BATCH`] pages mapped with one `add_to_physmap_batch`, written,
    /// then unmapped (as privcmd's `MMAPBATCH_V2` of a range).
    fn write_run(&mut self, dom: domid_t, paddr: u64, bytes: &[u8]) -> Result<(), Errno> {
        const BATCH: usize = 256;
        let mut done = 0usize;
        while done < bytes.len() {
            let pa = paddr + done as u64;
            let first = pa >> 12;
            let span = (pa & 0xfff) as usize + (bytes.len() - done);
            let pages = span.div_ceil(4096).min(BATCH);
            let fgfns: Vec<u64> = (0..pages as u64).map(|i| first + i).collect();
            let slots: Vec<u64> = fgfns
                .iter()
                .map(|g| WINDOW_GFN + g % WINDOW_PAGES)
                .collect();
            let mut errs = alloc::vec![0i32; pages];
            let mapped = self.0.map_foreign_batch(dom, &fgfns, &slots, &mut errs);
            let mut result = mapped;
            if result.is_ok() {
                if let Some(e) = errs.iter().find(|&&e| e != 0) {
                    result = Err(Errno(-i64::from(*e)));
                }
            }
            if result.is_ok() {
                for (i, slot) in slots.iter().enumerate() {
                    let page_pa = (first + i as u64) << 12;
                    let from = page_pa.max(pa);
                    let end = (page_pa + 4096).min(paddr + bytes.len() as u64);
                    let src = &bytes[(from - paddr) as usize..(end - paddr) as usize];
                    let dst = (slot << 12) as usize + (from & 0xfff) as usize;
                    // SAFETY: `slot` is a dom0 gfn below 4 GiB (identity-mapped
                    // by the runtime) that now maps the domU's page `first + i`;
                    // the copy stays inside that page.
                    unsafe {
                        core::ptr::copy_nonoverlapping(src.as_ptr(), dst as *mut u8, src.len())
                    };
                }
            }
            // Unmap what was mapped, also after a failure.
            for (slot, e) in slots.iter().zip(&errs) {
                if mapped.is_ok() && *e == 0 {
                    self.0.unmap_foreign(*slot)?;
                }
            }
            result?;
            done += (pages * 4096 - (pa & 0xfff) as usize).min(bytes.len() - done);
        }
        Ok(())
    }
}

/// The start-info modules: (name, bytes).
fn modules(boot: &Boot) -> Vec<(&'static str, &'static [u8])> {
    let Some(si) = boot.start_info else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for i in 0..si.nr_modules.min(64) as u64 {
        let at = si.modlist_paddr + i * core::mem::size_of::<hvm_modlist_entry>() as u64;
        // SAFETY: the loader wrote the module list there (identity-mapped RAM).
        let m = unsafe { &*(at as *const hvm_modlist_entry) };
        // SAFETY: as above: the module's bytes and its NUL-terminated name.
        let data = unsafe { core::slice::from_raw_parts(m.paddr as *const u8, m.size as usize) };
        let name = cstr(m.cmdline_paddr);
        out.push((name, data));
    }
    out
}

fn cstr(pa: u64) -> &'static str {
    let mut n = 0;
    // SAFETY: a NUL-terminated name the loader wrote (scan capped at 256).
    unsafe {
        while n < 256 && *((pa + n) as *const u8) != 0 {
            n += 1;
        }
        core::str::from_utf8(core::slice::from_raw_parts(pa as *const u8, n as usize)).unwrap_or("")
    }
}

pub(crate) struct Xl {
    pub(crate) xc: Xc<GuestHc>,
    mods: Vec<(&'static str, &'static [u8])>,
    /// Domains this toolstack created: (name, id).
    pub(crate) names: Vec<(String, domid_t)>,
    free_mark: Option<u64>,
    /// xenstored and libxl's nodes (`xs_dom0`), served in every loop that
    /// serves the consoles.
    pub(crate) store: crate::xs_dom0::Store,
    /// xenconsoled: the consoles of the domains created here.
    pub(crate) consoles: crate::xl_console::Consoles,
    /// What to do when a domain shuts down (`on_poweroff`, `on_reboot`,
    /// `on_crash`), by domain.
    pub(crate) actions: Vec<(domid_t, [xl::config::Action; 3])>,
}

static STEP: AtomicUsize = AtomicUsize::new(0);

impl Xl {
    fn module(&self, name: &str) -> Option<&'static [u8]> {
        self.mods.iter().find(|m| m.0 == name).map(|m| m.1)
    }

    fn resolve(&self, t: &Target) -> Result<domid_t, String> {
        match t {
            Target::Id(id) => Ok(*id),
            Target::Name(n) => self
                .names
                .iter()
                .find(|x| &x.0 == n)
                .map(|x| x.1)
                .ok_or_else(|| alloc::format!("no domain named `{n}`")),
        }
    }

    pub(crate) fn name_of(&self, id: domid_t) -> &str {
        if id == 0 {
            return "Domain-0";
        }
        self.names
            .iter()
            .find(|x| x.1 == id)
            .map_or("(unknown)", |x| x.0.as_str())
    }

    pub(crate) fn run(&mut self, v: &Verb) -> Result<(), String> {
        match v {
            Verb::Create(file) => {
                let text = self
                    .module(file)
                    .ok_or_else(|| alloc::format!("{file}: no such module"))?;
                let text = core::str::from_utf8(text).map_err(|_| "not UTF-8 text")?;
                let cfg = xl::config::parse(file, text).map_err(|e| alloc::format!("{e}"))?;
                let kernel = self
                    .module(&cfg.kernel)
                    .ok_or_else(|| alloc::format!("kernel `{}`: no such module", cfg.kernel))?;
                let ramdisk = match &cfg.ramdisk {
                    Some(r) => Some(self.module(r).ok_or("ramdisk: no such module")?),
                    None => None,
                };
                let spec = xenguest::DomainSpec {
                    name: &cfg.name,
                    memory_mib: cfg.memory,
                    maxmem_mib: cfg.maxmem,
                    vcpus: cfg.vcpus,
                    max_evtchn_port: cfg.event_channels,
                    evtchn_fifo: cfg.evtchn_fifo,
                    evtchn_upcall: cfg.evtchn_upcall,
                    altp2m: cfg.altp2m as u64,
                    kernel,
                    ramdisk,
                    cmdline: &cfg.cmdline,
                    // dom0's xenstored serves every domain it builds.
                    xenstore: true,
                };
                let mut win = ForeignWindow(Xc::new(GuestHc));
                let b = xenguest::build(&mut self.xc, &mut win, &spec)
                    .map_err(|e| alloc::format!("{e}"))?;
                // Read the kernel's first page back through a new foreign mapping.
                let lay = xenguest::layout::Layout::new(kernel, None, cfg.memory, "")?;
                let (pa, want) = lay.kernel_chunks(kernel)[0];
                let slot = WINDOW_GFN + WINDOW_PAGES - 1;
                let mut win = ForeignWindow(Xc::new(GuestHc));
                win.0
                    .map_foreign(b.domid, pa >> 12, slot)
                    .map_err(|e| alloc::format!("map back: {e}"))?;
                // SAFETY: `slot` maps the domU page just now (identity-mapped gfn).
                let got = unsafe {
                    core::slice::from_raw_parts(
                        ((slot << 12) + (pa & 0xfff)) as *const u8,
                        want.len(),
                    )
                };
                let same = got == want;
                win.0
                    .unmap_foreign(slot)
                    .map_err(|e| alloc::format!("unmap: {e}"))?;
                if !same {
                    return Err(alloc::format!(
                        "d{}: kernel page {pa:#x} reads back different",
                        b.domid
                    ));
                }
                println!(
                    "xl: created {} as d{} (entry {:#x}, console port {}, store port {})",
                    cfg.name, b.domid, b.entry, b.console_port, b.store_port
                );
                self.names.push((cfg.name.clone(), b.domid));
                self.store.created(&xenstored::layout::DomainLayout {
                    domid: b.domid,
                    name: &cfg.name,
                    uuid: xenctrl::handle_from_name(&cfg.name),
                    max_memkb: cfg.maxmem * 1024,
                    target_memkb: cfg.memory * 1024,
                    vcpus: cfg.vcpus,
                    store_port: b.store_port,
                    store_mfn: xenguest::layout::STORE_PFN,
                    console_port: b.console_port,
                    console_mfn: xenguest::layout::CONSOLE_PFN,
                    old_guest_device_workaround: cfg.workaround_old_guests_enumerating_device,
                })?;
                self.actions
                    .push((b.domid, [cfg.on_poweroff, cfg.on_reboot, cfg.on_crash]));
                self.consoles.add(
                    &mut self.xc,
                    b.domid,
                    &cfg.name,
                    xenguest::layout::CONSOLE_PFN,
                    b.console_port,
                )
            }
            Verb::Console(t) => {
                let id = self.resolve(t)?;
                crate::xl_console::console(self, id)
            }
            Verb::WaitConsole(t) => {
                let id = self.resolve(t)?;
                let (c, xc, store) = (&mut self.consoles, &mut self.xc, &mut self.store);
                crate::xl_console::serve_until(c, xc, 200_000, |c, _| {
                    store.poll();
                    c.printed(id) != 0
                })
                .then_some(())
                .ok_or_else(|| alloc::format!("d{id} never wrote to its console"))
            }
            Verb::List => {
                let mut infos = [DomInfo::new_zeroed(); 16];
                let n = self
                    .xc
                    .domain_getinfolist(0, &mut infos)
                    .map_err(|e| alloc::format!("getdomaininfolist: {e}"))?;
                println!(
                    "Name                                        ID   Mem VCPUs\tState\tTime(s)"
                );
                for i in &infos[..n] {
                    println!(
                        "{:<40} {:>5} {:>5} {:>5}     {}\t{:>7}.{}",
                        self.name_of(i.domain),
                        i.domain,
                        i.tot_pages >> 8,
                        i.nr_online_vcpus,
                        state(i.flags),
                        i.cpu_time / 1_000_000_000,
                        (i.cpu_time / 100_000_000) % 10
                    );
                }
                Ok(())
            }
            Verb::Destroy(t) => {
                let id = self.resolve(t)?;
                self.store.destroying(id)?;
                self.consoles.remove(&mut self.xc, id);
                self.actions.retain(|x| x.0 != id);
                self.xc
                    .domain_destroy(id)
                    .map_err(|e| alloc::format!("destroy d{id}: {e}"))?;
                self.names.retain(|x| x.1 != id);
                Ok(())
            }
            Verb::Pause(t) => {
                let id = self.resolve(t)?;
                self.xc
                    .domain_pause(id)
                    .map_err(|e| alloc::format!("pause d{id}: {e}"))?;
                let i = self
                    .xc
                    .domain_getinfo(id)
                    .map_err(|e| alloc::format!("{e}"))?;
                (i.flags & XEN_DOMINF_paused != 0)
                    .then_some(())
                    .ok_or_else(|| "not paused after pause".into())
            }
            Verb::Unpause(t) => {
                let id = self.resolve(t)?;
                self.xc
                    .domain_unpause(id)
                    .map_err(|e| alloc::format!("unpause d{id}: {e}"))?;
                let i = self
                    .xc
                    .domain_getinfo(id)
                    .map_err(|e| alloc::format!("{e}"))?;
                (i.flags & XEN_DOMINF_paused == 0)
                    .then_some(())
                    .ok_or_else(|| "still paused after unpause".into())
            }
            Verb::Shutdown(_) => Err("shutdown needs xenstore's control/shutdown: not done".into()),
            Verb::Info => {
                let p = self
                    .xc
                    .physinfo()
                    .map_err(|e| alloc::format!("physinfo: {e}"))?;
                println!(
                    "xl info: nr_cpus {} cpu_khz {} total_pages {} free_pages {} max_mfn {:#x} caps {:#x}",
                    p.nr_cpus, p.cpu_khz, p.total_pages, p.free_pages, p.max_mfn, p.capabilities
                );
                Ok(())
            }
            Verb::Help => {
                println!("{}", xl::verb::HELP);
                Ok(())
            }
            Verb::FreePagesMark => {
                let f = self
                    .xc
                    .physinfo()
                    .map_err(|e| alloc::format!("{e}"))?
                    .free_pages;
                println!("xl: free pages {f} (mark)");
                self.free_mark = Some(f);
                Ok(())
            }
            Verb::FreePagesCheck => {
                let m = self.free_mark.ok_or("no mark-free-pages before")?;
                // A destroyed domain's vCPUs and stage-2 tables are freed by the
                // run loop once no CPU runs them: let it run.
                let mut f = 0;
                for _ in 0..1000 {
                    f = self
                        .xc
                        .physinfo()
                        .map_err(|e| alloc::format!("{e}"))?
                        .free_pages;
                    if f == m {
                        break;
                    }
                    xen::yield_now();
                }
                println!("xl: free pages {f} (mark {m})");
                (f == m)
                    .then_some(())
                    .ok_or_else(|| alloc::format!("{} frames not returned", m as i64 - f as i64))
            }
        }
    }
}

/// `xl list`'s State column: r b p s c d.
fn state(f: u32) -> String {
    let c = |bit: u32, ch: char| if f & bit != 0 { ch } else { '-' };
    let crashed = f & XEN_DOMINF_shutdown != 0 && (f >> 16) & 0xff == 3;
    [
        c(XEN_DOMINF_running, 'r'),
        c(XEN_DOMINF_blocked, 'b'),
        c(XEN_DOMINF_paused, 'p'),
        if f & XEN_DOMINF_shutdown != 0 && !crashed {
            's'
        } else {
            '-'
        },
        if crashed { 'c' } else { '-' },
        c(XEN_DOMINF_dying, 'd'),
    ]
    .iter()
    .collect()
}

fn verb_name(v: &Verb) -> &'static str {
    match v {
        Verb::Create(_) => "create",
        Verb::List => "list",
        Verb::Destroy(_) => "destroy",
        Verb::Pause(_) => "pause",
        Verb::Unpause(_) => "unpause",
        Verb::Shutdown(_) => "shutdown",
        Verb::Info => "info",
        Verb::Help => "help",
        Verb::Console(_) => "console",
        Verb::WaitConsole(_) => "wait-console",
        Verb::FreePagesMark => "mark-free-pages",
        Verb::FreePagesCheck => "check-free-pages",
    }
}

pub fn dom0(boot: &Boot) -> ! {
    let mods = modules(boot);
    println!("xl: {} modules", mods.len());
    let script_name = boot.arg("script").unwrap_or("xl-script");
    let mut xl = Xl {
        xc: Xc::new(GuestHc),
        mods,
        names: Vec::new(),
        free_mark: None,
        store: crate::xs_dom0::Store::new(),
        consoles: crate::xl_console::Consoles::new(),
        actions: Vec::new(),
    };
    let Some(script) = xl.module(script_name) else {
        check(
            S,
            "script",
            false,
            format_args!("no module `{script_name}`"),
        );
        done(S);
        xen::shutdown(SHUTDOWN_poweroff)
    };
    let script = core::str::from_utf8(script).unwrap_or("");
    for line in script.lines() {
        match xl::verb::parse(line) {
            Ok(None) => {}
            Ok(Some(v)) => {
                let _ = xl.consoles.serve(&mut xl.xc);
                crate::xl_console::reap(&mut xl);
                println!("xl> {}", line.trim());
                let n = STEP.fetch_add(1, Ordering::SeqCst) + 1;
                let name = alloc::format!("{n}-{}", verb_name(&v));
                match xl.run(&v) {
                    Ok(()) => check(S, &name, true, format_args!("")),
                    Err(why) => check(S, &name, false, format_args!("{why}")),
                }
            }
            Err(why) => check(S, "script-line", false, format_args!("{why}")),
        }
    }
    done(S);
    if boot.arg("interactive") == Some("1") {
        crate::xl_console::prompt(&mut xl)
    }
    xen::shutdown(SHUTDOWN_poweroff)
}

/// The domain the `xl` scenario creates: says it runs (on the hypervisor
/// console and in its PV console ring, which dom0's xenconsoled relays), then
/// echoes what it reads from its console (`xl console` shows it answering).
pub fn domu(boot: &Boot) -> ! {
    match boot.arg("test") {
        Some("xenstore") => crate::xenbus::xenstore(boot),
        Some("xsa175") => crate::xenbus::xsa175(boot),
        _ => {}
    }
    println!("xl-domu: running ({})", boot.cmdline);
    let mut xc = Xc::new(GuestHc);
    let Ok(pfn) = xc.hvm_param_get(xen_public_abi::xen::DOMID_SELF, HVM_PARAM_CONSOLE_PFN) else {
        loop {
            xen::yield_now();
        }
    };
    // The console page the builder gave this domain (below 4 GiB,
    // identity-mapped).
    let mut page = crate::xl_console::Mapped(pfn);
    xenconsoled::ring::guest_write_output(&mut page, b"xl-domu: running\n");
    loop {
        let mut got = Vec::new();
        if xenconsoled::ring::guest_read_input(&mut page, &mut got) != 0 {
            let echo: Vec<u8> = got
                .iter()
                .map(|&b| if b == b'\r' { b'\n' } else { b })
                .collect();
            xenconsoled::ring::guest_write_output(&mut page, &echo);
        }
        xen::yield_now();
    }
}
