//! xenconsoled in the `xl` dom0 role: serves the console of every domain the
//! toolstack created (the `toolstack/xenconsoled` crate's ring logic over a
//! foreign mapping of the domain's console page), relays its output to dom0's
//! console (`CONSOLEIO_write`, each line prefixed `[dN name] `), and forwards
//! dom0's serial input (`CONSOLEIO_read`; the hypervisor raises
//! `VIRQ_CONSOLE`) to the domain attached with `xl console` (Ctrl-] detaches,
//! as in xl).
//!
//! dom0 polls (`SCHEDOP_yield` between rounds) rather than sleeping on its
//! event channels: the runtime has no upcall handler. The domain's console
//! event channel is bound interdomain and used to notify it after its output
//! was consumed and after input was written (Linux's `hvc_xen` reads input
//! only when notified).

// Xen's names (`SHUTDOWN_poweroff`, ...) in match patterns.
#![allow(non_upper_case_globals)]

use alloc::string::String;
use alloc::vec::Vec;

use guest_rt::xen;
use xen_public_abi::domctl::{XEN_DOMINF_dying, XEN_DOMINF_shutdown, XEN_DOMINF_shutdownshift};
use xen_public_abi::sched::{
    SHUTDOWN_crash, SHUTDOWN_poweroff, SHUTDOWN_reboot, SHUTDOWN_suspend, SHUTDOWN_watchdog,
};
use xen_public_abi::xen::{domid_t, VIRQ_CONSOLE, VIRQ_DOM_EXC};
use xenconsoled::{read_output, write_input, ConsolePage, Relay};
use xenctrl::{Hypercall, Xc};

/// dom0 gfns where served console pages stay mapped: one per domain id, in the
/// top pages of the `xl` role's foreign window (identity-mapped by the runtime;
/// the builder's slots there are the domU gfn modulo 1 GiB, which these pages
/// only meet for a domU of more than 1008 MiB).
const CONSOLE_SLOT_BASE: u64 = 0xb_f000;
const CONSOLE_SLOTS: u64 = 0xff0;
/// Ctrl-]: leaves `xl console`.
pub const CTRL_RIGHT_BRACKET: u8 = 0x1d;

/// The console page of a served domain, through its dom0 mapping.
pub(crate) struct Mapped(pub(crate) u64);

impl Mapped {
    fn at(&self, off: usize) -> usize {
        (self.0 << 12) as usize + off
    }
}

impl ConsolePage for Mapped {
    fn read_u8(&self, off: usize) -> u8 {
        // SAFETY: gfn `self.0` maps the domain's console page while this
        // exists (identity-mapped below 4 GiB); `off` < 3088 (the ring code's
        // contract).
        unsafe { core::ptr::read_volatile(self.at(off) as *const u8) }
    }
    fn write_u8(&mut self, off: usize, v: u8) {
        // SAFETY: as in `read_u8`.
        unsafe { core::ptr::write_volatile(self.at(off) as *mut u8, v) }
    }
    fn read_u32(&self, off: usize) -> u32 {
        // SAFETY: as in `read_u8`; the indices are 4-byte aligned fields.
        unsafe { core::ptr::read_volatile(self.at(off) as *const u32) }
    }
    fn write_u32(&mut self, off: usize, v: u32) {
        // SAFETY: as in `read_u32`.
        unsafe { core::ptr::write_volatile(self.at(off) as *mut u32, v) }
    }
    fn barrier(&self) {
        core::sync::atomic::fence(core::sync::atomic::Ordering::SeqCst);
    }
}

/// One served domain.
pub(crate) struct Served {
    pub(crate) domid: domid_t,
    name: String,
    page: Mapped,
    /// dom0's end of the console event channel.
    port: u32,
    relay: Relay,
    /// Lines printed so far (whole or partial).
    printed: usize,
    /// A bogus ring was reported once.
    reported_bogus: bool,
}

/// How a domain ended, as `getdomaininfo` shows it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Ended {
    Shutdown(u32),
    Gone,
}

/// `SHUTDOWN_*` as xl names them.
pub fn reason_name(code: u32) -> &'static str {
    match code {
        SHUTDOWN_poweroff => "poweroff",
        SHUTDOWN_reboot => "reboot",
        SHUTDOWN_suspend => "suspend",
        SHUTDOWN_crash => "crash",
        SHUTDOWN_watchdog => "watchdog",
        _ => "unknown",
    }
}

/// The console daemon's state.
pub struct Consoles {
    pub(crate) served: Vec<Served>,
    /// The domain `xl console` is attached to.
    pub(crate) attached: Option<domid_t>,
    /// dom0's `VIRQ_CONSOLE` and `VIRQ_DOM_EXC` ports (bound once).
    virq_console: Option<u32>,
    virq_dom_exc: Option<u32>,
}

impl Consoles {
    pub const fn new() -> Self {
        Consoles {
            served: Vec::new(),
            attached: None,
            virq_console: None,
            virq_dom_exc: None,
        }
    }

    /// Start serving `domid`'s console: map its page (`CONSOLE_PFN`), bind its
    /// console event channel (`console_port`, unbound with dom0 as remote).
    pub fn add<H: Hypercall>(
        &mut self,
        xc: &mut Xc<H>,
        domid: domid_t,
        name: &str,
        console_pfn: u64,
        console_port: u32,
    ) -> Result<(), String> {
        if self.virq_console.is_none() {
            // Serial input for dom0 and domain-exception notices, as xenconsoled
            // and xl bind them (failures leave us polling, which works anyway).
            self.virq_console = xc.evtchn_bind_virq(VIRQ_CONSOLE).ok();
            self.virq_dom_exc = xc.evtchn_bind_virq(VIRQ_DOM_EXC).ok();
        }
        if u64::from(domid) >= CONSOLE_SLOTS {
            return Err(alloc::format!(
                "d{domid}: no console slot for ids this high"
            ));
        }
        let slot = CONSOLE_SLOT_BASE + u64::from(domid);
        xc.map_foreign(domid, console_pfn, slot)
            .map_err(|e| alloc::format!("map console page of d{domid}: {e}"))?;
        let port = match xc.evtchn_bind_interdomain(domid, console_port) {
            Ok(p) => p,
            Err(e) => {
                let _ = xc.unmap_foreign(slot);
                return Err(alloc::format!("bind console port of d{domid}: {e}"));
            }
        };
        self.served.push(Served {
            domid,
            name: name.into(),
            page: Mapped(slot),
            port,
            relay: Relay::new(name, domid),
            printed: 0,
            reported_bogus: false,
        });
        Ok(())
    }

    /// Stop serving `domid` (before it is destroyed): unmap, unbind.
    pub fn remove<H: Hypercall>(&mut self, xc: &mut Xc<H>, domid: domid_t) {
        self.serve(xc);
        if let Some(i) = self.served.iter().position(|s| s.domid == domid) {
            let s = self.served.remove(i);
            let tail = s.relay.clone().break_line();
            if !tail.is_empty() {
                let _ = xc.console_write(tail);
            }
            let _ = xc.evtchn_close(s.port);
            let _ = xc.unmap_foreign(s.page.0);
        }
        if self.attached == Some(domid) {
            self.attached = None;
        }
    }

    /// Whether `domid`'s console has printed anything yet.
    pub fn printed(&self, domid: domid_t) -> usize {
        self.served
            .iter()
            .find(|s| s.domid == domid)
            .map_or(0, |s| s.printed)
    }

    pub fn attach(&mut self, domid: domid_t) {
        self.attached = Some(domid);
    }

    pub fn attached(&self) -> Option<domid_t> {
        self.attached
    }

    /// One round: relay every served domain's output; forward serial input to
    /// the attached domain (Ctrl-] detaches; the byte after it is kept for the
    /// next reader). Returns the input bytes read while no domain is attached
    /// (for the `xl>` prompt).
    pub fn serve<H: Hypercall>(&mut self, xc: &mut Xc<H>) -> Vec<u8> {
        let mut out = Vec::new();
        for s in &mut self.served {
            let mut bytes = Vec::new();
            match read_output(&mut s.page, &mut bytes) {
                Ok(0) => {}
                Ok(_) => {
                    let text = s.relay.feed(&bytes);
                    s.printed += 1;
                    let _ = xc.console_write(&text);
                    let _ = xc.evtchn_notify(s.port);
                }
                Err(e) if !s.reported_bogus => {
                    s.reported_bogus = true;
                    let msg = alloc::format!(
                        "xenconsoled: d{} ({}): console ring indices are bogus (prod {:#x} cons {:#x}): output ignored\n",
                        s.domid, s.name, e.prod, e.cons
                    );
                    let _ = xc.console_write(msg.as_bytes());
                }
                Err(_) => {}
            }
        }
        let mut buf = [0u8; 64];
        let n = xc.console_read(&mut buf).unwrap_or(0);
        let mut input = &buf[..n];
        while !input.is_empty() {
            let Some(dom) = self.attached else {
                out.extend_from_slice(input);
                break;
            };
            let (to_dom, rest) = match input.iter().position(|&b| b == CTRL_RIGHT_BRACKET) {
                Some(i) => (&input[..i], Some(&input[i + 1..])),
                None => (input, None),
            };
            if let Some(s) = self.served.iter_mut().find(|s| s.domid == dom) {
                // What does not fit in the ring is dropped, as a full pty would.
                if let Ok(k) = write_input(&mut s.page, to_dom) {
                    if k != 0 {
                        let _ = xc.evtchn_notify(s.port);
                    }
                }
            }
            match rest {
                Some(r) => {
                    self.attached = None;
                    let _ = xc.console_write(b"\n");
                    input = r;
                }
                None => break,
            }
        }
        out
    }

    /// How `domid` stands: running (`None`), shut down with a reason, or gone.
    pub fn ended<H: Hypercall>(xc: &mut Xc<H>, domid: domid_t) -> Option<Ended> {
        match xc.domain_getinfo(domid) {
            Ok(i) if i.domain != domid => Some(Ended::Gone),
            Ok(i) if i.flags & XEN_DOMINF_dying != 0 => Some(Ended::Gone),
            Ok(i) if i.flags & XEN_DOMINF_shutdown != 0 => Some(Ended::Shutdown(
                (i.flags >> XEN_DOMINF_shutdownshift) & 0xff,
            )),
            Ok(_) => None,
            Err(_) => Some(Ended::Gone),
        }
    }
}

/// Serve until `done` says so, at most `rounds` rounds (yielding between
/// them). Returns whether `done` became true.
pub fn serve_until<H: Hypercall>(
    c: &mut Consoles,
    xc: &mut Xc<H>,
    rounds: u64,
    mut done: impl FnMut(&mut Consoles, &mut Xc<H>) -> bool,
) -> bool {
    for _ in 0..rounds {
        let _ = c.serve(xc);
        if done(c, xc) {
            let _ = c.serve(xc);
            return true;
        }
        xen::yield_now();
    }
    false
}

/// `xl console DOM`: attach dom0's console to the domain until Ctrl-] or
/// until it shuts down; then act as libxl does for the reason
/// (`on_poweroff` / `on_reboot` / `on_crash`).
pub(crate) fn console(xl: &mut crate::xl_role::Xl, id: domid_t) -> Result<(), String> {
    if !xl.consoles.served.iter().any(|s| s.domid == id) {
        return Err(alloc::format!("d{id}: no console is served for it"));
    }
    xl.consoles.attach(id);
    let ended = loop {
        let _ = xl.consoles.serve(&mut xl.xc);
        xl.store.poll();
        if xl.consoles.attached() != Some(id) {
            return Ok(());
        }
        if let Some(e) = Consoles::ended(&mut xl.xc, id) {
            let _ = xl.consoles.serve(&mut xl.xc);
            break e;
        }
        xen::yield_now();
    };
    xl.consoles.attached = None;
    match ended {
        Ended::Gone => Err(alloc::format!("d{id} ({}) went away", xl.name_of(id))),
        Ended::Shutdown(code) => on_shutdown(xl, id, code),
    }
}

/// A domain shut down: say so and act as libxl does for the reason
/// (`on_poweroff` / `on_reboot` / `on_crash`).
fn on_shutdown(xl: &mut crate::xl_role::Xl, id: domid_t, code: u32) -> Result<(), String> {
    use guest_rt::println;
    use xl::config::Action;
    let name = String::from(xl.name_of(id));
    println!("xl: {name} (d{id}) shut down: {}", reason_name(code));
    let acts = xl.actions.iter().find(|a| a.0 == id).map(|a| a.1);
    let (key, action) = match code {
        SHUTDOWN_poweroff => ("on_poweroff", acts.map(|a| a[0])),
        SHUTDOWN_reboot => ("on_reboot", acts.map(|a| a[1])),
        SHUTDOWN_crash | SHUTDOWN_watchdog => ("on_crash", acts.map(|a| a[2])),
        _ => ("", None),
    };
    // Acted on once: a preserved domain is not reported again.
    xl.actions.retain(|x| x.0 != id);
    match action {
        Some(Action::Destroy | Action::CoredumpDestroy) => {
            xl.consoles.remove(&mut xl.xc, id);
            xl.xc
                .domain_destroy(id)
                .map_err(|e| alloc::format!("destroy d{id}: {e}"))?;
            xl.names.retain(|x| x.1 != id);
            println!("xl: {name} (d{id}) destroyed ({key}=destroy)");
        }
        Some(Action::Preserve) => println!("xl: {name} (d{id}) preserved ({key}=preserve)"),
        Some(a) => println!("xl: {name} (d{id}): {key}={a:?} is not done; left as it is"),
        None => {}
    }
    Ok(())
}

/// xl's watch for domain deaths (`VIRQ_DOM_EXC`, polled here): every domain
/// this toolstack created that has shut down and was not acted on yet gets its
/// `on_*` action.
pub(crate) fn reap(xl: &mut crate::xl_role::Xl) {
    let ids: Vec<domid_t> = xl.actions.iter().map(|a| a.0).collect();
    for id in ids {
        if let Some(Ended::Shutdown(code)) = Consoles::ended(&mut xl.xc, id) {
            let _ = xl.consoles.serve(&mut xl.xc);
            if let Err(why) = on_shutdown(xl, id, code) {
                guest_rt::println!("xl: {why}");
            }
        }
    }
}

/// The interactive `xl>` prompt on dom0's console (what `cargo xtask run`
/// ends at): reads dom0's serial input (`CONSOLEIO_read`) while no domain is
/// attached, echoes it, runs each line as an `xl` command; `console DOM`
/// attaches until Ctrl-]. Consoles are served all along.
pub(crate) fn prompt(xl: &mut crate::xl_role::Xl) -> ! {
    let mut line: Vec<u8> = Vec::new();
    let _ = xl.xc.console_write(b"xl> ");
    let mut round = 0u64;
    loop {
        if round.is_multiple_of(64) {
            reap(xl);
        }
        round = round.wrapping_add(1);
        xl.store.poll();
        let input = xl.consoles.serve(&mut xl.xc);
        for b in input {
            match b {
                b'\r' | b'\n' => {
                    let _ = xl.xc.console_write(b"\n");
                    let text = String::from_utf8_lossy(&line).into_owned();
                    line.clear();
                    match xl::verb::parse(&text) {
                        Ok(None) => {}
                        Ok(Some(v)) => {
                            if let Err(why) = xl.run(&v) {
                                let msg = alloc::format!("xl: {why}\n");
                                let _ = xl.xc.console_write(msg.as_bytes());
                            }
                        }
                        Err(why) => {
                            let msg = alloc::format!("xl: {why}\n");
                            let _ = xl.xc.console_write(msg.as_bytes());
                        }
                    }
                    let _ = xl.xc.console_write(b"xl> ");
                }
                // Backspace / DEL.
                0x08 | 0x7f if line.pop().is_some() => {
                    let _ = xl.xc.console_write(b"\x08 \x08");
                }
                0x20..=0x7e if line.len() < 256 => {
                    line.push(b);
                    let _ = xl.xc.console_write(&[b]);
                }
                _ => {}
            }
        }
        xen::yield_now();
    }
}
