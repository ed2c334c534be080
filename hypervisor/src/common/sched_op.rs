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
    sched_poll, sched_remote_shutdown, sched_shutdown, SCHEDOP_block, SCHEDOP_pin_override,
    SCHEDOP_poll, SCHEDOP_remote_shutdown, SCHEDOP_shutdown, SCHEDOP_shutdown_code,
    SCHEDOP_watchdog, SCHEDOP_yield,
};
use xen_public_abi::{Errno, XenResult};

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
    match sched_op(hv, ext, caller, cmd, arg, guest) {
        Ok(()) => 0,
        Err(e) => e.as_ret(),
    }
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
        SCHEDOP_watchdog => {
            warn!(
                "d{}: SCHEDOP_watchdog is not implemented by this hypervisor",
                caller.domid
            );
            Err(Errno::ENOSYS)
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
