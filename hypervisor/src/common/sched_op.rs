//! `__HYPERVISOR_sched_op`: yield, block, shutdown, poll and friends.
//!
//! Mirrors Xen 4.17's `do_sched_op()` and `do_poll()` (`xen/common/sched/core.c`)
//! and `domain_shutdown()` (`xen/common/domain.c`). This module only records what
//! the guest asked for on the vCPU and domain (`blocked`, `poll`, shutdown state);
//! the scheduler and the vendor backend act on it after the hypercall returns.

// Xen's names (`XEN_DOMCTL_createdomain`, `__HYPERVISOR_domctl`, ...) in match patterns.
#![allow(non_upper_case_globals)]

use alloc::vec::Vec;

use log::{info, warn};
use xen_public_abi::sched::{
    sched_poll, sched_remote_shutdown, sched_shutdown, sched_watchdog, SCHEDOP_block,
    SCHEDOP_pin_override, SCHEDOP_poll, SCHEDOP_remote_shutdown, SCHEDOP_shutdown,
    SCHEDOP_shutdown_code, SCHEDOP_watchdog, SCHEDOP_yield, SHUTDOWN_poweroff, SHUTDOWN_watchdog,
};
use xen_public_abi::xen::domid_t;
use xen_public_abi::{Errno, XenResult};

use super::domain::{Domain, WatchdogSlot, NR_DOMAIN_WATCHDOG_TIMERS};
use super::guest_access::{copy_from_guest, GuestAccess};
use super::hypercall::{Caller, ExtHandlers, Hypervisor};

/// `do_poll()`'s "fairly arbitrary" limit on the number of ports.
pub const SCHED_POLL_MAX_PORTS: u32 = 128;

/// What a vCPU blocked in `SCHEDOP_poll` waits for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PollState {
    /// The ports polled; any of them becoming pending wakes the vCPU.
    pub ports: Vec<u32>,
    /// Absolute system time (ns) at which to give up, 0 for none.
    pub timeout: u64,
}

/// `__HYPERVISOR_sched_op(int cmd, void *arg)`.
pub fn do_sched_op(
    hv: &mut Hypervisor,
    ext: &mut dyn ExtHandlers,
    caller: Caller,
    cmd: i32,
    arg: u64,
    guest: &mut dyn GuestAccess,
) -> i64 {
    if cmd == SCHEDOP_watchdog as i32 {
        return match watchdog(hv, caller, arg, guest) {
            Ok(v) => v,
            Err(e) => e.as_ret(),
        };
    }
    match sched_op(hv, ext, caller, cmd, arg, guest) {
        Ok(()) => 0,
        Err(e) => e.as_ret(),
    }
}

/// `evtchn_check_pollers()`: `port` of domain `d` just became pending; wake the
/// vCPUs polling it. A vCPU polling one port wakes only for that port; one
/// polling several wakes for any (as Xen's `poll_evtchn` of -1). The
/// event-channel code calls this after setting a port pending. Returns how many
/// vCPUs woke.
pub fn check_pollers(d: &mut Domain, port: u32) -> usize {
    let mut woken = 0;
    for v in &mut d.vcpus {
        let wake = match &v.poll {
            Some(p) if p.ports.len() == 1 => p.ports[0] == port,
            Some(_) => true,
            None => false,
        };
        if wake {
            v.poll = None;
            v.blocked = false;
            woken += 1;
        }
    }
    woken
}

/// Wake every polling vCPU whose timeout (absolute system time, non-zero) has
/// passed (`poll_timer_fn()`). The timer code calls this. Returns (domain, vCPU)
/// pairs woken.
pub fn fire_poll_timeouts(hv: &mut Hypervisor) -> Vec<(domid_t, u32)> {
    let now = hv.clock.now_ns();
    let mut woken = Vec::new();
    let ids: Vec<domid_t> = hv.domains.ids().collect();
    for id in ids {
        let Some(d) = hv.domains.get_mut(id) else {
            continue;
        };
        for v in &mut d.vcpus {
            if v.poll
                .as_ref()
                .is_some_and(|p| p.timeout != 0 && p.timeout <= now)
            {
                v.poll = None;
                v.blocked = false;
                woken.push((id, v.vcpu_id));
            }
        }
    }
    woken
}

/// `SCHEDOP_watchdog` (`domain_watchdog()`): id 0 allocates a watchdog armed to
/// fire in `timeout` seconds and returns its id (1 or 2; `-ENOSPC` if both are
/// taken); an allocated id re-arms it, or with timeout 0 frees it; any other id
/// is `-EINVAL`.
fn watchdog(
    hv: &mut Hypervisor,
    caller: Caller,
    arg: u64,
    guest: &mut dyn GuestAccess,
) -> XenResult<i64> {
    let w: sched_watchdog = copy_from_guest(guest, arg)?;
    let now = hv.clock.now_ns();
    let deadline = now.saturating_add(u64::from(w.timeout).saturating_mul(1_000_000_000));
    let d = hv.domains.get_mut(caller.domid).ok_or(Errno::ESRCH)?;
    if w.id as usize > NR_DOMAIN_WATCHDOG_TIMERS {
        return Err(Errno::EINVAL);
    }
    if w.id == 0 {
        let (i, slot) = d
            .watchdogs
            .iter_mut()
            .enumerate()
            .find(|(_, s)| !s.in_use)
            .ok_or(Errno::ENOSPC)?;
        *slot = WatchdogSlot {
            in_use: true,
            deadline_ns: Some(deadline),
        };
        return Ok(i as i64 + 1);
    }
    let slot = &mut d.watchdogs[w.id as usize - 1];
    if !slot.in_use {
        return Err(Errno::EINVAL);
    }
    *slot = if w.timeout == 0 {
        WatchdogSlot::default()
    } else {
        WatchdogSlot {
            in_use: true,
            deadline_ns: Some(deadline),
        }
    };
    Ok(0)
}

/// Fire every armed watchdog whose time has come (`domain_watchdog_timeout()`):
/// the domain shuts down with `SHUTDOWN_watchdog` unless it is already shutting
/// down. The timer code calls this; returns the domains shut down.
pub fn fire_watchdogs(hv: &mut Hypervisor, ext: &mut dyn ExtHandlers) -> Vec<domid_t> {
    let now = hv.clock.now_ns();
    let mut fired = Vec::new();
    let ids: Vec<domid_t> = hv.domains.ids().collect();
    for id in ids {
        let Some(d) = hv.domains.get_mut(id) else {
            continue;
        };
        let mut expired = false;
        for slot in &mut d.watchdogs {
            if slot.deadline_ns.is_some_and(|t| t <= now) {
                slot.deadline_ns = None;
                expired = true;
            }
        }
        if expired && !d.shutdown.is_shutting_down {
            warn!("watchdog timer fired for domain {id}");
            shutdown(hv, ext, id, SHUTDOWN_watchdog);
            fired.push(id);
        }
    }
    fired
}

fn sched_op(
    hv: &mut Hypervisor,
    ext: &mut dyn ExtHandlers,
    caller: Caller,
    cmd: i32,
    arg: u64,
    guest: &mut dyn GuestAccess,
) -> XenResult<()> {
    let Ok(cmd) = u32::try_from(cmd) else {
        return Err(Errno::ENOSYS);
    };
    match cmd {
        // The scheduler picks another vCPU at the next opportunity; nothing to record.
        SCHEDOP_yield => Ok(()),
        SCHEDOP_block => {
            block(hv, ext, caller);
            Ok(())
        }
        SCHEDOP_shutdown => {
            let s: sched_shutdown = copy_from_guest(guest, arg)?;
            shutdown(hv, ext, caller.domid, s.reason);
            Ok(())
        }
        SCHEDOP_shutdown_code => {
            let s: sched_shutdown = copy_from_guest(guest, arg)?;
            let d = hv.domains.get_mut(caller.domid).ok_or(Errno::ESRCH)?;
            d.set_shutdown_code(s.reason as u8);
            Ok(())
        }
        SCHEDOP_poll => {
            let p: sched_poll = copy_from_guest(guest, arg)?;
            poll(hv, ext, caller, &p, guest)
        }
        SCHEDOP_remote_shutdown => {
            let s: sched_remote_shutdown = copy_from_guest(guest, arg)?;
            if hv.domains.get(s.domain_id).is_none() {
                return Err(Errno::ESRCH);
            }
            // XSM_DM_PRIV with no device-model domains here: the control domain.
            if !hv
                .domains
                .get(caller.domid)
                .is_some_and(|c| c.is_privileged)
            {
                return Err(Errno::EPERM);
            }
            shutdown(hv, ext, s.domain_id, s.reason);
            Ok(())
        }
        SCHEDOP_pin_override => {
            if caller.domid != 0 {
                return Err(Errno::EPERM);
            }
            warn!("d0: SCHEDOP_pin_override is not implemented by this hypervisor");
            Err(Errno::ENOSYS)
        }
        _ => Err(Errno::ENOSYS),
    }
}

/// `SCHEDOP_block`: events are enabled for HVM guests by their own RFLAGS.IF, so
/// this marks the vCPU blocked unless an event is already waiting.
fn block(hv: &mut Hypervisor, ext: &mut dyn ExtHandlers, caller: Caller) {
    let Some(d) = hv.domains.get_mut(caller.domid) else {
        return;
    };
    let pending = ext.local_events_need_delivery(d, caller.vcpu);
    if let Some(v) = d.vcpu_mut(caller.vcpu) {
        v.blocked = !pending;
    }
}

/// `hvm_vcpu_down()`: a vCPU halted with interrupts disabled (`hvm_hlt`'s
/// "pretty sure sign that we want to shut down") goes down (`VPF_down`: it is
/// no longer scheduled); when no vCPU of its domain is left up, the domain shuts
/// down with `SHUTDOWN_poweroff`. This is how a Linux PVH domU without an ACPI
/// power-off method (`poweroff -f` ends in `machine_halt`'s `cli; hlt`) reaches
/// dom0 as powered off. Returns whether the domain was shut down.
pub fn hvm_vcpu_down(hv: &mut Hypervisor, ext: &mut dyn ExtHandlers, id: u16, vcpu: u32) -> bool {
    let Some(d) = hv.domains.get_mut(id) else {
        return false;
    };
    if let Some(v) = d.vcpu_mut(vcpu) {
        v.online = false;
    }
    if d.vcpus.iter().any(|v| v.online) {
        return false;
    }
    info!("d{id}: all vCPUs offline -- powering off");
    shutdown(hv, ext, id, SHUTDOWN_poweroff);
    true
}

/// `domain_shutdown(d, (u8)reason)`: Xen truncates the reason to 8 bits and does
/// not check it against `SHUTDOWN_MAX`.
fn shutdown(hv: &mut Hypervisor, ext: &mut dyn ExtHandlers, id: u16, reason: u32) {
    let Some(d) = hv.domains.get_mut(id) else {
        return;
    };
    if d.shutdown(reason as u8) {
        let code = d.shutdown.code;
        info!("d{id}: shut down, reason {code}");
        ext.domain_shutdown(&mut hv.domains, id, code);
    }
}

/// `do_poll()`: block the calling vCPU until one of the ports is pending (or the
/// timeout passes). Returns at once if an event is already waiting or a port is
/// already pending; ports are read one by one as Xen does (a bad pointer is
/// `-EFAULT` when reached). The pending test is the event-channel seam.
fn poll(
    hv: &mut Hypervisor,
    ext: &mut dyn ExtHandlers,
    caller: Caller,
    p: &sched_poll,
    guest: &mut dyn GuestAccess,
) -> XenResult<()> {
    if p.nr_ports > SCHED_POLL_MAX_PORTS {
        return Err(Errno::EINVAL);
    }
    let d = hv.domains.get_mut(caller.domid).ok_or(Errno::ESRCH)?;
    if d.vcpu(caller.vcpu).is_none() {
        return Err(Errno::EINVAL);
    }
    if ext.local_events_need_delivery(d, caller.vcpu) {
        return Ok(());
    }
    let mut ports = Vec::with_capacity(p.nr_ports as usize);
    for i in 0..u64::from(p.nr_ports) {
        let port: u32 = copy_from_guest(guest, p.ports.wrapping_add(i * 4))?;
        if ext.evtchn_port_poll(d, port)? {
            return Ok(());
        }
        ports.push(port);
    }
    if let Some(v) = d.vcpu_mut(caller.vcpu) {
        v.blocked = true;
        v.poll = Some(PollState {
            ports,
            timeout: p.timeout,
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::common::domain::{Domain, DomainTable, Vcpu, SHUTDOWN_CODE_INVALID};
    use crate::common::hypercall::do_hypercall;
    use crate::common::test_support::*;
    use xen_public_abi::sched::{SHUTDOWN_crash, SHUTDOWN_poweroff, SHUTDOWN_MAX};
    use xen_public_abi::xen::__HYPERVISOR_sched_op as SO;

    fn domu(env: &mut Env) -> u16 {
        let (_, u) = env.create(&baseline(), 0);
        let d = env.hv.domains.get_mut(u).unwrap();
        d.vcpus.push(Vcpu::new(0));
        d.vcpus[0].online = true;
        d.unpause_by_systemcontroller().unwrap();
        u
    }

    fn shutdown_call(env: &mut Env, dom: u16, cmd: u32, reason: u32) -> i64 {
        env.put(ARG_GVA, &sched_shutdown { reason });
        env.hypercall(dom, SO, [u64::from(cmd), ARG_GVA, 0, 0, 0])
    }

    /// Oracle E: yield is 0, an unknown command -ENOSYS.
    #[test]
    fn yield_and_unknown() {
        let mut env = Env::new();
        assert_eq!(
            env.hypercall(0, SO, [u64::from(SCHEDOP_yield), 0, 0, 0, 0]),
            0
        );
        assert_eq!(env.hypercall(0, SO, [999, 0, 0, 0, 0]), -38);
        assert_eq!(env.hypercall(0, SO, [u64::from(u32::MAX), 0, 0, 0, 0]), -38);
    }

    /// `SCHEDOP_watchdog`: two per domain, re-armed by id, freed with timeout 0,
    /// firing shuts the domain down with `SHUTDOWN_watchdog`.
    #[test]
    fn watchdog() {
        let mut env = Env::new();
        let u = domu(&mut env);
        let w = |env: &mut Env, id: u32, timeout: u32| {
            env.put(ARG_GVA, &sched_watchdog { id, timeout });
            env.hypercall(u, SO, [u64::from(SCHEDOP_watchdog), ARG_GVA, 0, 0, 0])
        };
        assert_eq!(w(&mut env, 1, 10), -22, "not allocated");
        assert_eq!(w(&mut env, 3, 10), -22);
        assert_eq!(w(&mut env, 0, 10), 1);
        assert_eq!(w(&mut env, 0, 30), 2);
        assert_eq!(w(&mut env, 0, 30), -28, "-ENOSPC");
        assert_eq!(w(&mut env, 2, 0), 0, "freed");
        assert_eq!(w(&mut env, 2, 5), -22);
        let mut ext = crate::common::hypercall::NoExt;
        env.clock.advance_ms(9_000);
        assert!(fire_watchdogs(&mut env.hv, &mut ext).is_empty());
        assert_eq!(w(&mut env, 1, 20), 0, "kicked: fires 20 s from now");
        env.clock.advance_ms(19_000);
        assert!(fire_watchdogs(&mut env.hv, &mut ext).is_empty());
        env.clock.advance_ms(1_000);
        assert_eq!(fire_watchdogs(&mut env.hv, &mut ext), [u]);
        let d = env.hv.domains.get(u).unwrap();
        assert_eq!(d.shutdown.code, SHUTDOWN_watchdog);
        assert!(d.watchdogs[0].in_use && d.watchdogs[0].deadline_ns.is_none());
        assert!(
            fire_watchdogs(&mut env.hv, &mut ext).is_empty(),
            "fires once"
        );
        assert_eq!(
            env.hypercall(u, SO, [u64::from(SCHEDOP_watchdog), BAD_GVA, 0, 0, 0]),
            -14
        );
    }

    #[test]
    fn block_marks_the_vcpu() {
        let mut env = Env::new();
        let u = domu(&mut env);
        assert_eq!(
            env.hypercall(u, SO, [u64::from(SCHEDOP_block), 0, 0, 0, 0]),
            0
        );
        assert!(env.hv.domains.get(u).unwrap().vcpus[0].blocked);
    }

    /// Every reason 0..=SHUTDOWN_MAX, and others (Xen keeps the low 8 bits and
    /// does not check the range): recorded, shown by getdomaininfo.
    #[test]
    fn shutdown_every_reason() {
        for reason in (0..=SHUTDOWN_MAX).chain([6, 0xff, 0x1_03]) {
            let mut env = Env::new();
            let u = domu(&mut env);
            assert_eq!(
                shutdown_call(&mut env, u, SCHEDOP_shutdown, reason),
                0,
                "reason {reason}"
            );
            let d = env.hv.domains.get(u).unwrap();
            assert!(d.shutdown.is_shut_down && !d.is_runnable());
            assert!(d.vcpus[0].paused_for_shutdown);
            assert_eq!(d.shutdown.code, reason & 0xff);
            let info = crate::common::domctl::getdomaininfo(d, 40);
            assert_eq!(info.flags >> 16, reason & 0xff);
            assert_ne!(info.flags & 0x4, 0, "XEN_DOMINF_shutdown");
            // A second shutdown keeps the first reason.
            assert_eq!(
                shutdown_call(&mut env, u, SCHEDOP_shutdown, SHUTDOWN_crash),
                0
            );
            assert_eq!(env.hv.domains.get(u).unwrap().shutdown.code, reason & 0xff);
        }
    }

    #[test]
    fn shutdown_code_then_shutdown() {
        let mut env = Env::new();
        let u = domu(&mut env);
        assert_eq!(
            shutdown_call(&mut env, u, SCHEDOP_shutdown_code, SHUTDOWN_crash),
            0
        );
        let d = env.hv.domains.get(u).unwrap();
        assert!(!d.shutdown.is_shutting_down);
        assert_eq!(d.shutdown.code, SHUTDOWN_crash);
        assert_eq!(
            shutdown_call(&mut env, u, SCHEDOP_shutdown_code, SHUTDOWN_poweroff),
            0
        );
        assert_eq!(
            shutdown_call(&mut env, u, SCHEDOP_shutdown, SHUTDOWN_poweroff),
            0
        );
        assert_eq!(env.hv.domains.get(u).unwrap().shutdown.code, SHUTDOWN_crash);
    }

    #[test]
    fn remote_shutdown() {
        let mut env = Env::new();
        let u = domu(&mut env);
        let v = domu(&mut env);
        let op = |env: &mut Env, caller, target, reason| {
            env.put(
                ARG_GVA,
                &sched_remote_shutdown {
                    domain_id: target,
                    _implicit0: [0; 2],
                    reason,
                },
            );
            env.hypercall(
                caller,
                SO,
                [u64::from(SCHEDOP_remote_shutdown), ARG_GVA, 0, 0, 0],
            )
        };
        assert_eq!(op(&mut env, u, v, 0), -1, "a domU may not");
        assert_eq!(op(&mut env, 0, 30000, 0), -3);
        assert_eq!(op(&mut env, 0, v, 1), 0);
        assert_eq!(env.hv.domains.get(v).unwrap().shutdown.code, 1);
        assert_eq!(
            env.hv.domains.get(u).unwrap().shutdown.code,
            SHUTDOWN_CODE_INVALID
        );
    }

    #[test]
    fn pin_override() {
        let mut env = Env::new();
        let u = domu(&mut env);
        assert_eq!(
            env.hypercall(u, SO, [u64::from(SCHEDOP_pin_override), ARG_GVA, 0, 0, 0]),
            -1
        );
        assert_eq!(
            env.hypercall(0, SO, [u64::from(SCHEDOP_pin_override), ARG_GVA, 0, 0, 0]),
            -38
        );
    }

    /// An event-channel stand-in: ports listed in `pending` are pending, ports
    /// >= 64 are invalid.
    struct Ports {
        pending: Vec<u32>,
        upcall: bool,
        shut: Vec<(u16, u32)>,
    }
    impl ExtHandlers for Ports {
        fn evtchn_port_poll(&mut self, _d: &mut Domain, port: u32) -> XenResult<bool> {
            if port >= 64 {
                return Err(Errno::EINVAL);
            }
            Ok(self.pending.contains(&port))
        }
        fn local_events_need_delivery(&mut self, _d: &mut Domain, _vcpu: u32) -> bool {
            self.upcall
        }
        fn domain_shutdown(&mut self, _t: &mut DomainTable, id: u16, reason: u32) {
            self.shut.push((id, reason));
        }
    }

    fn poll_call(
        env: &mut Env,
        ext: &mut dyn ExtHandlers,
        dom: u16,
        ports: &[u32],
        timeout: u64,
    ) -> i64 {
        for (i, p) in ports.iter().enumerate() {
            env.put(0x2000 + 4 * i as u64, p);
        }
        env.put(
            ARG_GVA,
            &sched_poll {
                ports: 0x2000,
                nr_ports: ports.len() as u32,
                _implicit0: [0; 4],
                timeout,
            },
        );
        let caller = Caller {
            domid: dom,
            vcpu: 0,
        };
        do_hypercall(
            &mut env.hv,
            ext,
            caller,
            u64::from(SO),
            [u64::from(SCHEDOP_poll), ARG_GVA, 0, 0, 0],
            &mut env.mem,
        )
    }

    #[test]
    fn poll() {
        let mut env = Env::new();
        let u = domu(&mut env);
        let mut ext = Ports {
            pending: alloc::vec![5],
            upcall: false,
            shut: Vec::new(),
        };
        // A pending port: return at once, not blocked.
        assert_eq!(poll_call(&mut env, &mut ext, u, &[3, 5], 0), 0);
        assert!(!env.hv.domains.get(u).unwrap().vcpus[0].blocked);
        // An invalid port: its error.
        assert_eq!(poll_call(&mut env, &mut ext, u, &[3, 100], 0), -22);
        // Too many ports.
        let many: Vec<u32> = (0..129).collect();
        assert_eq!(poll_call(&mut env, &mut ext, u, &many, 0), -22);
        // An upcall already pending: return at once.
        ext.upcall = true;
        assert_eq!(poll_call(&mut env, &mut ext, u, &[3], 0), 0);
        assert!(!env.hv.domains.get(u).unwrap().vcpus[0].blocked);
        // Nothing pending: blocked, polling those ports until the timeout.
        ext.upcall = false;
        assert_eq!(poll_call(&mut env, &mut ext, u, &[1, 2, 3], 777), 0);
        let v = &env.hv.domains.get(u).unwrap().vcpus[0];
        assert!(v.blocked);
        assert_eq!(
            v.poll,
            Some(PollState {
                ports: alloc::vec![1, 2, 3],
                timeout: 777
            })
        );
        // Without event channels wired, poll says so.
        let mut env = Env::new();
        let u = domu(&mut env);
        assert_eq!(
            poll_call(&mut env, &mut crate::common::hypercall::NoExt, u, &[1], 0),
            -38
        );
    }

    #[test]
    fn pollers_wake() {
        let mut env = Env::new();
        let mut two = baseline();
        two.max_vcpus = 3;
        let (_, u) = env.create(&two, 0);
        let d = env.hv.domains.get_mut(u).unwrap();
        crate::common::domctl::create_vcpus(d, &mut crate::common::hypercall::NoExt).unwrap();
        let poll = |ports: &[u32], timeout| {
            Some(PollState {
                ports: ports.to_vec(),
                timeout,
            })
        };
        d.vcpus[0].poll = poll(&[4], 0);
        d.vcpus[1].poll = poll(&[1, 2], 0);
        d.vcpus[2].poll = poll(&[9], 1_000_000);
        for v in &mut d.vcpus {
            v.blocked = true;
        }
        // Port 5: only the multi-port poller wakes.
        assert_eq!(check_pollers(d, 5), 1);
        assert!(d.vcpus[0].blocked && !d.vcpus[1].blocked && d.vcpus[1].poll.is_none());
        assert_eq!(check_pollers(d, 4), 1);
        assert!(!d.vcpus[0].blocked);
        // vCPU 2 times out at 1 ms.
        assert!(fire_poll_timeouts(&mut env.hv).is_empty());
        env.clock.advance_ms(1);
        assert_eq!(fire_poll_timeouts(&mut env.hv), [(u, 2)]);
        assert!(!env.hv.domains.get(u).unwrap().vcpus[2].blocked);
    }

    #[test]
    fn shutdown_hook_fires_once() {
        let mut env = Env::new();
        let u = domu(&mut env);
        let mut ext = Ports {
            pending: Vec::new(),
            upcall: false,
            shut: Vec::new(),
        };
        let caller = Caller { domid: u, vcpu: 0 };
        for reason in [2, 3] {
            env.put(ARG_GVA, &sched_shutdown { reason });
            let rc = do_hypercall(
                &mut env.hv,
                &mut ext,
                caller,
                u64::from(SO),
                [u64::from(SCHEDOP_shutdown), ARG_GVA, 0, 0, 0],
                &mut env.mem,
            );
            assert_eq!(rc, 0);
        }
        assert_eq!(ext.shut, [(u, 2)]);
    }

    /// `hvm_hlt` with interrupts off: each vCPU goes down; the last one down
    /// shuts the domain down with `SHUTDOWN_poweroff`, and dom0 is told once.
    #[test]
    fn halting_every_vcpu_with_interrupts_off_powers_off() {
        let mut env = Env::new();
        let u = domu(&mut env);
        {
            let d = env.hv.domains.get_mut(u).unwrap();
            d.vcpus.push(Vcpu::new(1));
            d.vcpus[1].online = true;
        }
        let mut ext = Ports {
            pending: Vec::new(),
            upcall: false,
            shut: Vec::new(),
        };
        assert!(!hvm_vcpu_down(&mut env.hv, &mut ext, u, 1));
        let d = env.hv.domains.get(u).unwrap();
        assert!(!d.vcpus[1].online && d.vcpus[0].online);
        assert!(!d.shutdown.is_shutting_down, "vCPU 0 is still up");
        assert!(ext.shut.is_empty());
        assert!(hvm_vcpu_down(&mut env.hv, &mut ext, u, 0));
        let d = env.hv.domains.get(u).unwrap();
        assert!(d.shutdown.is_shut_down);
        assert_eq!(d.shutdown.code, SHUTDOWN_poweroff);
        assert_eq!(ext.shut, [(u, SHUTDOWN_poweroff)]);
        // A vCPU of a domain that is gone: nothing happens.
        assert!(!hvm_vcpu_down(&mut env.hv, &mut ext, 999, 0));
    }
}
