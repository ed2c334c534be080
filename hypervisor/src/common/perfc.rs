//! Per-vCPU performance counters: Xen's `perfc` (`xen/common/perfc.c`,
//! debug key 'p' prints them, 'P' resets them, both reachable from dom0 through
//! `XEN_SYSCTL_debug_keys`). Xen's counters are per physical CPU and only built
//! with `CONFIG_PERF_COUNTERS`; these are per vCPU and always there, because
//! what the bench asks is "how many VM exits and injections does one event
//! round trip cost each side" (`cargo xtask bench`, docs/benchmarks-notes.md).
//! The exit path counts (`arch::x86_64::hvm::exit`), nothing else reads them.

use alloc::format;
use alloc::string::String;

use super::domain::DomainTable;

/// What one vCPU's exits and injected interrupts were since the last reset.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct VcpuPerfc {
    /// Every VM exit.
    pub exits: u64,
    /// VMMCALL / VMCALL exits.
    pub hypercall_exits: u64,
    /// HLT exits.
    pub hlt_exits: u64,
    /// Exits for a physical interrupt (timer tick, IPI) or an interrupt window.
    pub interrupt_exits: u64,
    /// Interrupts injected at entry (upcall / callback / vLAPIC vectors).
    pub injections: u64,
}

/// The kinds of exit counted apart.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ExitKind {
    Hypercall,
    Hlt,
    Interrupt,
    Other,
}

impl VcpuPerfc {
    pub fn note_exit(&mut self, kind: ExitKind) {
        self.exits = self.exits.wrapping_add(1);
        let c = match kind {
            ExitKind::Hypercall => &mut self.hypercall_exits,
            ExitKind::Hlt => &mut self.hlt_exits,
            ExitKind::Interrupt => &mut self.interrupt_exits,
            ExitKind::Other => return,
        };
        *c = c.wrapping_add(1);
    }

    pub fn note_injection(&mut self) {
        self.injections = self.injections.wrapping_add(1);
    }
}

/// One vCPU's line as key 'p' prints it (the bench parses it).
pub fn line(domid: u16, vcpu: u32, c: &VcpuPerfc) -> String {
    format!(
        "perfc d{domid}v{vcpu}: exits {} hypercall {} hlt {} interrupt {} injections {}",
        c.exits, c.hypercall_exits, c.hlt_exits, c.interrupt_exits, c.injections
    )
}

/// Debug key 'p': every vCPU's counters, one line each, after a header line.
pub fn print_all(domains: &DomainTable) {
    log::info!("perfc: per-vCPU counters since the last reset (debug key 'P')");
    for id in domains.ids() {
        let Some(d) = domains.get(id) else { continue };
        for v in &d.vcpus {
            log::info!("{}", line(id, v.vcpu_id, &v.perfc));
        }
    }
}

/// Debug key 'P': every vCPU's counters back to zero.
pub fn reset_all(domains: &mut DomainTable) {
    let ids: alloc::vec::Vec<u16> = domains.ids().collect();
    for id in ids {
        if let Some(d) = domains.get_mut(id) {
            for v in &mut d.vcpus {
                v.perfc = VcpuPerfc::default();
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_by_kind_and_prints_one_line() {
        let mut c = VcpuPerfc::default();
        c.note_exit(ExitKind::Hypercall);
        c.note_exit(ExitKind::Hypercall);
        c.note_exit(ExitKind::Hlt);
        c.note_exit(ExitKind::Interrupt);
        c.note_exit(ExitKind::Other);
        c.note_injection();
        assert_eq!(
            line(1, 0, &c),
            "perfc d1v0: exits 5 hypercall 2 hlt 1 interrupt 1 injections 1"
        );
    }
}
