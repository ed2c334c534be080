//! `__HYPERVISOR_vcpu_op`: per-vCPU timers, `vcpu_info` placement, the time and
//! runstate areas, and vCPU state queries.
//!
//! Mirrors Xen 4.17's `do_vcpu_op()` (`xen/common/domain.c`), `map_vcpu_info()`
//! and x86's `arch_do_vcpu_op()` (`xen/arch/x86/domain.c`). The target vCPU
//! belongs to the caller's domain: a vCPU id that does not exist is `-ENOENT`;
//! an unknown command is `-ENOSYS`.
//!
//! Timers here only record deadlines; [`fire_timers`] (called by the scheduler
//! with the current time) sends `VIRQ_TIMER` when they pass, as Xen's
//! `vcpu_singleshot_timer_fn()` / `vcpu_periodic_timer_fn()` do.

// Xen's names in match patterns.
#![allow(non_upper_case_globals)]

use alloc::vec::Vec;

use log::debug;
use xen_public_abi::vcpu::{
    vcpu_register_runstate_memory_area, vcpu_register_time_memory_area, vcpu_register_vcpu_info,
    vcpu_runstate_info, vcpu_set_periodic_timer, vcpu_set_singleshot_timer, RUNSTATE_blocked,
    RUNSTATE_offline, RUNSTATE_runnable, RUNSTATE_running, VCPUOP_down, VCPUOP_get_physid,
    VCPUOP_get_runstate_info, VCPUOP_initialise, VCPUOP_is_up,
    VCPUOP_register_runstate_memory_area, VCPUOP_register_vcpu_info,
    VCPUOP_register_vcpu_time_memory_area, VCPUOP_send_nmi, VCPUOP_set_periodic_timer,
    VCPUOP_set_singleshot_timer, VCPUOP_stop_periodic_timer, VCPUOP_stop_singleshot_timer,
    VCPUOP_up, VCPU_SSHOTTMR_future,
};
use xen_public_abi::xen::{domid_t, vcpu_info, VIRQ_TIMER};
use xen_public_abi::{DomId, Errno, XenResult};
use zerocopy::{FromZeros, IntoBytes};

use super::dispatch::XenExt;
use super::domain::{Domain, DomainTable, Vcpu};
use super::event_channel;
use super::guest_access::{copy_from_guest, copy_to_guest, GuestAccess, GuestMemory, GuestRam};
use super::hypercall::Caller;

const PAGE_SIZE: u64 = 4096;
/// `MILLISECS(1)`: the shortest periodic timer period.
const MIN_PERIOD_NS: u64 = 1_000_000;
/// `STIME_DELTA_MAX`: the longest period (`(s_time_t)((uint64_t)1 << 62)`).
const STIME_DELTA_MAX: u64 = 1 << 62;

/// A vCPU's `VCPUOP_*` state: timers and the areas it registered (GPAs,
/// translated from the guest-virtual addresses at registration).
#[derive(Debug, Clone)]
pub struct VcpuOpState {
    /// Absolute system time of the single-shot timer, if armed.
    pub singleshot_ns: Option<u64>,
    /// Periodic timer period (0: off) and its next expiry.
    pub periodic_period_ns: u64,
    pub periodic_next_ns: u64,
    /// `VCPUOP_register_vcpu_time_memory_area`: a second pvclock record.
    pub time_area_gpa: Option<u64>,
    /// `VCPUOP_register_runstate_memory_area`: where the runstate goes.
    pub runstate_area_gpa: Option<u64>,
    /// `RUNSTATE_*` now, since when (system time), and time per state.
    pub runstate: i32,
    pub runstate_entry_ns: u64,
    pub runstate_time: [u64; 4],
}

impl Default for VcpuOpState {
    fn default() -> Self {
        VcpuOpState {
            singleshot_ns: None,
            periodic_period_ns: 0,
            periodic_next_ns: 0,
            time_area_gpa: None,
            runstate_area_gpa: None,
            // A new vCPU is down.
            runstate: RUNSTATE_offline,
            runstate_entry_ns: 0,
            runstate_time: [0; 4],
        }
    }
}

/// `__HYPERVISOR_vcpu_op(int cmd, unsigned int vcpuid, void *arg)`.
pub fn do_vcpu_op(
    ext: &mut XenExt,
    domains: &mut DomainTable,
    caller: Caller,
    cmd: u64,
    vcpuid: u64,
    arg: u64,
    guest: &mut dyn GuestAccess,
) -> i64 {
    match vcpu_op(ext, domains, caller, cmd as i32, vcpuid as u32, arg, guest) {
        Ok(v) => v,
        Err(e) => e.as_ret(),
    }
}

fn vcpu_op(
    ext: &mut XenExt,
    domains: &mut DomainTable,
    caller: Caller,
    cmd: i32,
    vcpuid: u32,
    arg: u64,
    guest: &mut dyn GuestAccess,
) -> XenResult<i64> {
    let now = ext.clock.now_ns();
    let d = domains.get_mut(caller.domid).ok_or(Errno::ESRCH)?;
    if d.vcpu(vcpuid).is_none() {
        return Err(Errno::ENOENT);
    }
    let is_current = vcpuid == caller.vcpu;
    let Ok(cmd) = u32::try_from(cmd) else {
        return Err(Errno::ENOSYS);
    };
    match cmd {
        VCPUOP_is_up => Ok(i64::from(vcpu(d, vcpuid)?.online)),
        VCPUOP_set_periodic_timer => {
            let set: vcpu_set_periodic_timer = copy_from_guest(guest, arg)?;
            if !(MIN_PERIOD_NS..=STIME_DELTA_MAX).contains(&set.period_ns) {
                return Err(Errno::EINVAL);
            }
            let op = &mut vcpu_mut(d, vcpuid)?.op;
            op.periodic_period_ns = set.period_ns;
            op.periodic_next_ns = now.saturating_add(set.period_ns);
            Ok(0)
        }
        VCPUOP_stop_periodic_timer => {
            vcpu_mut(d, vcpuid)?.op.periodic_period_ns = 0;
            Ok(0)
        }
        VCPUOP_set_singleshot_timer => {
            if !is_current {
                return Err(Errno::EINVAL);
            }
            let set: vcpu_set_singleshot_timer = copy_from_guest(guest, arg)?;
            if set.flags & VCPU_SSHOTTMR_future != 0 && set.timeout_abs_ns < now {
                return Err(Errno::ETIME);
            }
            vcpu_mut(d, vcpuid)?.op.singleshot_ns = Some(set.timeout_abs_ns);
            Ok(0)
        }
        VCPUOP_stop_singleshot_timer => {
            if !is_current {
                return Err(Errno::EINVAL);
            }
            vcpu_mut(d, vcpuid)?.op.singleshot_ns = None;
            Ok(0)
        }
        VCPUOP_register_vcpu_info => {
            let info: vcpu_register_vcpu_info = copy_from_guest(guest, arg)?;
            register_vcpu_info(ext, d, vcpuid, is_current, &info)?;
            ext.actions.push(super::dispatch::ArchAction::Upcall {
                domid: caller.domid,
                vcpu: vcpuid,
            });
            Ok(0)
        }
        VCPUOP_register_vcpu_time_memory_area => {
            let area: vcpu_register_time_memory_area = copy_from_guest(guest, arg)?;
            let gpa = translate_area(guest, area.addr, 32)?;
            vcpu_mut(d, vcpuid)?.op.time_area_gpa = gpa;
            Ok(0)
        }
        VCPUOP_register_runstate_memory_area => {
            let area: vcpu_register_runstate_memory_area = copy_from_guest(guest, arg)?;
            let len = core::mem::size_of::<vcpu_runstate_info>() as u64;
            let gpa = translate_area(guest, area.addr, len)?;
            vcpu_mut(d, vcpuid)?.op.runstate_area_gpa = gpa;
            write_runstate(d, &*ext.machine, vcpuid, now);
            Ok(0)
        }
        VCPUOP_get_runstate_info => {
            let info = runstate_info(vcpu(d, vcpuid)?, now);
            copy_to_guest(guest, arg, &info)?;
            Ok(0)
        }
        // Xen 4.17 lets only a hardware domain's pinned vCPUs ask; none are here.
        VCPUOP_get_physid => Err(Errno::EINVAL),
        VCPUOP_initialise | VCPUOP_up | VCPUOP_down | VCPUOP_send_nmi => {
            debug!(
                "d{}v{}: vcpu_op {cmd} is not implemented by this hypervisor",
                caller.domid, caller.vcpu
            );
            Err(Errno::ENOSYS)
        }
        _ => Err(Errno::ENOSYS),
    }
}

fn vcpu(d: &Domain, v: u32) -> XenResult<&Vcpu> {
    d.vcpu(v).ok_or(Errno::ENOENT)
}

fn vcpu_mut(d: &mut Domain, v: u32) -> XenResult<&mut Vcpu> {
    d.vcpu_mut(v).ok_or(Errno::ENOENT)
}

/// A guest-virtual area of `len` bytes as one guest-physical range; 0 means
/// "unregister" (`None`). An area the vCPU cannot reach, or one whose pages are
/// not physically contiguous, is `-EFAULT`.
fn translate_area(guest: &mut dyn GuestAccess, gva: u64, len: u64) -> XenResult<Option<u64>> {
    if gva == 0 {
        return Ok(None);
    }
    let last = gva.checked_add(len - 1).ok_or(Errno::EFAULT)?;
    let start = guest.translate(gva).ok_or(Errno::EFAULT)?;
    let end = guest.translate(last).ok_or(Errno::EFAULT)?;
    if end.wrapping_sub(start) != len - 1 {
        return Err(Errno::EFAULT);
    }
    Ok(Some(start))
}

/// `map_vcpu_info()`: checks in Xen's order, then the move.
fn register_vcpu_info(
    ext: &XenExt,
    d: &mut Domain,
    v: u32,
    is_current: bool,
    info: &vcpu_register_vcpu_info,
) -> XenResult<()> {
    let size = core::mem::size_of::<vcpu_info>() as u64;
    if u64::from(info.offset) > PAGE_SIZE - size {
        return Err(Errno::EINVAL);
    }
    if d.evtchn.shared_info().registered_vcpu_info(v).is_some() {
        return Err(Errno::EINVAL);
    }
    // Run on yourself, or on a vCPU that is down.
    if !is_current && vcpu(d, v)?.online {
        return Err(Errno::EINVAL);
    }
    // `info.mfn` is a gfn for translated guests; it must be RAM the guest can write.
    let e = d.hvm.p2m.host_entry(info.mfn).ok_or(Errno::EINVAL)?;
    if e.mfn == d.shared_info_mfn {
        // Xen refuses pages it cannot take a writable type reference on.
        return Err(Errno::EINVAL);
    }
    let gpa = info
        .mfn
        .checked_mul(PAGE_SIZE)
        .and_then(|g| g.checked_add(u64::from(info.offset)))
        .ok_or(Errno::EINVAL)?;
    let mut ram = GuestRam {
        p2m: &d.hvm.p2m,
        machine: &*ext.machine,
    };
    d.evtchn
        .shared_info_mut()
        .register_vcpu_info(&mut ram, v, gpa)?;
    if let Some(c) = d.vcpu_mut(v) {
        c.upcall_raised = true;
        c.blocked = false;
    }
    Ok(())
}

/// The runstate record of `c` at `now` (time in the current state included).
pub fn runstate_info(c: &Vcpu, now: u64) -> vcpu_runstate_info {
    let mut r = vcpu_runstate_info::new_zeroed();
    let op = &c.op;
    r.state = op.runstate;
    r.state_entry_time = op.runstate_entry_ns;
    r.time = op.runstate_time;
    if let Some(t) = r.time.get_mut(op.runstate as usize) {
        *t = t.saturating_add(now.saturating_sub(op.runstate_entry_ns));
    }
    r
}

/// Copy vCPU `v`'s runstate into its registered area, if any.
fn write_runstate(
    d: &mut Domain,
    machine: &dyn super::guest_access::MachineMemory,
    v: u32,
    now: u64,
) {
    let Some(c) = d.vcpu(v) else { return };
    let Some(gpa) = c.op.runstate_area_gpa else {
        return;
    };
    let info = runstate_info(c, now);
    let mut ram = GuestRam {
        p2m: &d.hvm.p2m,
        machine,
    };
    // A page the guest gave away is its own problem (Xen ignores the failure too).
    let _ = ram.write_gpa(gpa, info.as_bytes());
}

/// The `RUNSTATE_*` a vCPU is in, from the scheduler's flags.
pub fn runstate_of(c: &Vcpu) -> i32 {
    if !c.online || c.paused_for_shutdown {
        RUNSTATE_offline
    } else if c.running {
        RUNSTATE_running
    } else if c.blocked {
        RUNSTATE_blocked
    } else {
        RUNSTATE_runnable
    }
}

/// `vcpu_runstate_change()`: account the time in the old state and publish the
/// new one to the guest's runstate area. The scheduler calls this whenever it
/// changes a vCPU's `running`/`blocked` flags.
pub fn runstate_change(
    d: &mut Domain,
    machine: &dyn super::guest_access::MachineMemory,
    v: u32,
    now: u64,
) {
    let Some(c) = d.vcpu_mut(v) else { return };
    let new = runstate_of(c);
    let op = &mut c.op;
    if new == op.runstate {
        return;
    }
    if let Some(t) = op.runstate_time.get_mut(op.runstate as usize) {
        *t = t.saturating_add(now.saturating_sub(op.runstate_entry_ns));
    }
    op.runstate = new;
    op.runstate_entry_ns = now;
    write_runstate(d, machine, v, now);
}

/// Fire every single-shot and periodic timer whose deadline is at or before
/// `now`: `VIRQ_TIMER` to that vCPU (which wakes it if the VIRQ is bound).
/// Returns the vCPUs that got a timer event.
pub fn fire_timers(ext: &mut XenExt, domains: &mut DomainTable, now: u64) -> Vec<(domid_t, u32)> {
    let mut due = Vec::new();
    let ids: Vec<domid_t> = domains.ids().collect();
    for id in ids {
        let Some(d) = domains.get_mut(id) else {
            continue;
        };
        if d.shutdown.is_shutting_down {
            continue;
        }
        for c in &mut d.vcpus {
            let op = &mut c.op;
            let mut fire = false;
            if op.singleshot_ns.is_some_and(|t| t <= now) {
                op.singleshot_ns = None;
                fire = true;
            }
            if op.periodic_period_ns != 0 && op.periodic_next_ns <= now {
                // Skip missed periods rather than firing a burst.
                let behind = (now - op.periodic_next_ns) / op.periodic_period_ns + 1;
                op.periodic_next_ns = op
                    .periodic_next_ns
                    .saturating_add(behind.saturating_mul(op.periodic_period_ns));
                fire = true;
            }
            if fire {
                due.push((id, c.vcpu_id));
            }
        }
    }
    for &(id, v) in &due {
        let mut env = ext.evtchn_env(domains, id);
        event_channel::send_virq(&mut env, DomId(id), v, VIRQ_TIMER);
    }
    due
}

/// The earliest armed vCPU timer, for the idle loop's wake-up.
pub fn next_deadline(domains: &DomainTable) -> Option<u64> {
    let mut best: Option<u64> = None;
    for id in domains.ids() {
        let Some(d) = domains.get(id) else { continue };
        if d.shutdown.is_shutting_down {
            continue;
        }
        for c in &d.vcpus {
            let a = c.op.singleshot_ns;
            let b = (c.op.periodic_period_ns != 0).then_some(c.op.periodic_next_ns);
            for t in [a, b].into_iter().flatten() {
                best = Some(best.map_or(t, |x| x.min(t)));
            }
        }
    }
    best
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::common::dispatch::ArchAction;
    use crate::common::domctl::create_vcpus;
    use crate::common::guest_access::fake::FakeMachine;
    use crate::common::guest_access::MachineMemory;
    use crate::common::hypercall::{do_hypercall, NoExt};
    use crate::common::memory::P2mAccess;
    use crate::common::test_support::*;
    use alloc::boxed::Box;
    use alloc::sync::Arc;
    use xen_public_abi::event_channel::{evtchn_bind_virq, EVTCHNOP_bind_virq};
    use xen_public_abi::xen::{__HYPERVISOR_event_channel_op, __HYPERVISOR_vcpu_op, shared_info};
    use zerocopy::Immutable;

    const ENOENT: i64 = -2;
    const EINVAL: i64 = -22;
    const EFAULT: i64 = -14;
    const ENOSYS: i64 = -38;
    const ETIME: i64 = -62;
    const SHINFO_GFN: u64 = 0x10;

    struct W {
        env: Env,
        ext: XenExt,
        machine: Arc<FakeMachine>,
        id: domid_t,
    }

    fn world(vcpus: u32) -> W {
        let machine = Arc::new(FakeMachine::default());
        let mut env = Env::new();
        let ext = XenExt::new(machine.clone(), Box::new(env.clock.clone()));
        let mut cfg = baseline();
        cfg.max_vcpus = vcpus;
        let (rc, id) = env.create(&cfg, 0);
        assert_eq!(rc, 0);
        let d = env.hv.domains.get_mut(id).unwrap();
        create_vcpus(d, &mut NoExt).unwrap();
        d.vcpus[0].online = true;
        for g in 0..0x20u64 {
            d.hvm
                .p2m
                .set_host_entry(g, 0x5000 + g, P2mAccess::RWX)
                .unwrap();
        }
        hook_shared_info(d, &*machine, SHINFO_GFN);
        W {
            env,
            ext,
            machine,
            id,
        }
    }

    impl W {
        fn op<T: IntoBytes + Immutable>(
            &mut self,
            vcpu: u32,
            cmd: u32,
            target: u64,
            arg: &T,
        ) -> i64 {
            self.env.put(ARG_GVA, arg);
            do_hypercall(
                &mut self.env.hv,
                &mut self.ext,
                Caller {
                    domid: self.id,
                    vcpu,
                },
                __HYPERVISOR_vcpu_op.into(),
                [cmd.into(), target, ARG_GVA, 0, 0],
                &mut self.env.mem,
            )
        }
        fn d(&mut self) -> &mut Domain {
            self.env.hv.domains.get_mut(self.id).unwrap()
        }
    }

    #[test]
    fn bad_vcpu_is_enoent_before_anything_else() {
        let mut w = world(2);
        assert_eq!(w.op(0, VCPUOP_is_up, 2, &0u64), ENOENT);
        assert_eq!(w.op(0, 999, 7, &0u64), ENOENT);
        assert_eq!(w.op(0, 999, 0, &0u64), ENOSYS);
        assert_eq!(
            w.op(0, VCPUOP_is_up, u64::from(u32::MAX) + 1, &0u64),
            1,
            "vcpuid is 32-bit"
        );
        assert_eq!(w.op(0, VCPUOP_is_up, 1, &0u64), 0);
    }

    #[test]
    fn singleshot_timer_sends_virq_timer_when_due() {
        let mut w = world(1);
        // Bind VIRQ_TIMER on vCPU 0.
        let bv = evtchn_bind_virq {
            virq: VIRQ_TIMER,
            vcpu: 0,
            port: 0,
        };
        w.env.put(ARG_GVA, &bv);
        let rc = do_hypercall(
            &mut w.env.hv,
            &mut w.ext,
            Caller {
                domid: w.id,
                vcpu: 0,
            },
            __HYPERVISOR_event_channel_op.into(),
            [EVTCHNOP_bind_virq.into(), ARG_GVA, 0, 0, 0],
            &mut w.env.mem,
        );
        assert_eq!(rc, 0);
        let port = w.env.get::<evtchn_bind_virq>(ARG_GVA).port;

        w.env.clock.advance_ms(10);
        let past = vcpu_set_singleshot_timer {
            timeout_abs_ns: 1_000_000,
            flags: VCPU_SSHOTTMR_future,
            _implicit0: [0; 4],
        };
        assert_eq!(w.op(0, VCPUOP_set_singleshot_timer, 0, &past), ETIME);
        let t = vcpu_set_singleshot_timer {
            timeout_abs_ns: 15_000_000,
            flags: VCPU_SSHOTTMR_future,
            _implicit0: [0; 4],
        };
        assert_eq!(w.op(0, VCPUOP_set_singleshot_timer, 0, &t), 0);
        w.d().vcpus[0].blocked = true;
        assert_eq!(next_deadline(&w.env.hv.domains), Some(15_000_000));
        assert!(fire_timers(&mut w.ext, &mut w.env.hv.domains, 14_000_000).is_empty());
        w.ext.actions.clear();
        let due = fire_timers(&mut w.ext, &mut w.env.hv.domains, 15_000_000);
        assert_eq!(due, [(w.id, 0)]);
        assert!(!w.d().vcpus[0].blocked, "the timer event wakes the vCPU");
        assert!(w.ext.actions.contains(&ArchAction::Upcall {
            domid: w.id,
            vcpu: 0
        }));
        let mut s = shared_info::new_zeroed();
        let mfn = w.d().shared_info_mfn;
        assert!(w.machine.read(mfn, 0, s.as_mut_bytes()));
        assert_ne!(s.evtchn_pending[0] & (1 << port), 0);
        // One shot only.
        assert!(fire_timers(&mut w.ext, &mut w.env.hv.domains, 99_000_000).is_empty());
        assert_eq!(next_deadline(&w.env.hv.domains), None);
    }

    #[test]
    fn timer_ops_on_another_vcpu_and_stop() {
        let mut w = world(2);
        let t = vcpu_set_singleshot_timer::new_zeroed();
        assert_eq!(w.op(0, VCPUOP_set_singleshot_timer, 1, &t), EINVAL);
        assert_eq!(w.op(0, VCPUOP_stop_singleshot_timer, 1, &t), EINVAL);
        assert_eq!(
            w.op(0, VCPUOP_set_singleshot_timer, 0, &t),
            0,
            "past, no future flag"
        );
        assert_eq!(w.op(0, VCPUOP_stop_singleshot_timer, 0, &t), 0);
        assert_eq!(w.d().vcpus[0].op.singleshot_ns, None);
        assert_eq!(w.op(0, VCPUOP_stop_periodic_timer, 1, &t), 0);
        let p = vcpu_set_periodic_timer { period_ns: 999_999 };
        assert_eq!(w.op(0, VCPUOP_set_periodic_timer, 0, &p), EINVAL);
        let p = vcpu_set_periodic_timer {
            period_ns: 1_000_000,
        };
        assert_eq!(w.op(0, VCPUOP_set_periodic_timer, 0, &p), 0);
        assert_eq!(
            fire_timers(&mut w.ext, &mut w.env.hv.domains, 3_500_000),
            [(w.id, 0)]
        );
        assert_eq!(w.d().vcpus[0].op.periodic_next_ns, 4_000_000);
        assert_eq!(w.op(0, VCPUOP_stop_periodic_timer, 0, &t), 0);
        assert!(fire_timers(&mut w.ext, &mut w.env.hv.domains, 9_000_000).is_empty());
        // Bad pointer.
        w.env.put(ARG_GVA, &0u64);
        let rc = do_hypercall(
            &mut w.env.hv,
            &mut w.ext,
            Caller {
                domid: w.id,
                vcpu: 0,
            },
            __HYPERVISOR_vcpu_op.into(),
            [VCPUOP_set_singleshot_timer.into(), 0, BAD_GVA, 0, 0],
            &mut w.env.mem,
        );
        assert_eq!(rc, EFAULT);
    }

    #[test]
    fn register_vcpu_info_moves_it_and_marks_everything_pending() {
        let mut w = world(2);
        // Something to carry over: the upcall mask byte in the shared_info slot.
        let mfn = w.d().shared_info_mfn;
        assert!(w.machine.write(mfn, 1, &[1]));
        let info = vcpu_register_vcpu_info {
            mfn: 3,
            offset: 0x40,
            rsvd: 0,
        };
        assert_eq!(w.op(0, VCPUOP_register_vcpu_info, 0, &info), 0);
        let mut v = [0u8; 64];
        assert!(w.machine.read(0x5003, 0x40, &mut v));
        assert_eq!(v[0], 1, "upcall pending");
        assert_eq!(v[1], 1, "mask carried over");
        assert_eq!(&v[8..16], &[0xff; 8], "every selector bit");
        assert!(w.ext.actions.contains(&ArchAction::Upcall {
            domid: w.id,
            vcpu: 0
        }));
        assert_eq!(
            w.op(0, VCPUOP_register_vcpu_info, 0, &info),
            EINVAL,
            "only once"
        );
        // Offsets that cross the page, pages that are not RAM, running vCPUs.
        let mut bad = info;
        bad.offset = 4096 - 63;
        assert_eq!(w.op(0, VCPUOP_register_vcpu_info, 1, &bad), EINVAL);
        bad.offset = 0;
        bad.mfn = 0x777;
        assert_eq!(w.op(0, VCPUOP_register_vcpu_info, 1, &bad), EINVAL);
        w.d().vcpus[1].online = true;
        bad.mfn = 4;
        assert_eq!(
            w.op(0, VCPUOP_register_vcpu_info, 1, &bad),
            EINVAL,
            "vCPU 1 runs"
        );
        assert_eq!(w.op(1, VCPUOP_register_vcpu_info, 1, &bad), 0, "itself may");
        // An upcall to vCPU 1 now lands in its new vcpu_info.
        assert!(w.machine.write(0x5004, 0, &[0]));
        let d = w.env.hv.domains.get_mut(w.id).unwrap();
        let ram = GuestRam {
            p2m: &d.hvm.p2m,
            machine: &*w.machine,
        };
        assert!(!d.evtchn.shared_info().upcall_pending(&ram, 1).unwrap());
        assert!(w.machine.write(0x5004, 0, &[1]));
        let ram = GuestRam {
            p2m: &d.hvm.p2m,
            machine: &*w.machine,
        };
        assert!(d.evtchn.shared_info().upcall_pending(&ram, 1).unwrap());
    }

    #[test]
    fn time_and_runstate_areas_register_by_virtual_address() {
        let mut w = world(1);
        let area = vcpu_register_time_memory_area { addr: 0x3000 };
        assert_eq!(w.op(0, VCPUOP_register_vcpu_time_memory_area, 0, &area), 0);
        assert_eq!(w.d().vcpus[0].op.time_area_gpa, Some(0x3000));
        let area = vcpu_register_time_memory_area { addr: HOLE_GVA };
        assert_eq!(
            w.op(0, VCPUOP_register_vcpu_time_memory_area, 0, &area),
            EFAULT
        );
        let area = vcpu_register_time_memory_area { addr: 0 };
        assert_eq!(w.op(0, VCPUOP_register_vcpu_time_memory_area, 0, &area), 0);
        assert_eq!(w.d().vcpus[0].op.time_area_gpa, None);

        w.env.clock.advance_ms(1);
        let ra = vcpu_register_runstate_memory_area { addr: 0x4000 };
        assert_eq!(w.op(0, VCPUOP_register_runstate_memory_area, 0, &ra), 0);
        let now = w.ext.clock.now_ns();
        let machine = w.machine.clone();
        let d = w.d();
        d.vcpus[0].running = true;
        runstate_change(d, &*machine, 0, now);
        // The fake GuestAccess maps GVA = GPA; the area is written through the
        // p2m (gfn 4 → mfn 0x5004).
        let mut raw = [0u8; 48];
        assert!(w.machine.read(0x5004, 0, &mut raw));
        assert_eq!(
            i32::from_le_bytes(raw[0..4].try_into().unwrap()),
            RUNSTATE_running
        );
        w.env.clock.advance_ms(2);
        let got = w.op(
            0,
            VCPUOP_get_runstate_info,
            0,
            &vcpu_runstate_info::new_zeroed(),
        );
        assert_eq!(got, 0);
        let r: vcpu_runstate_info = w.env.get(ARG_GVA);
        assert_eq!(r.state, RUNSTATE_running);
        assert_eq!(r.time[RUNSTATE_running as usize], 2_000_000);
    }
}
