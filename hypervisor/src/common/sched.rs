//! The vCPU run queue: round-robin over every runnable vCPU of every domain,
//! shared by all physical CPUs, plus the timers that wake blocked vCPUs.
//!
//! A much smaller cousin of Xen 4.17's `xen/common/sched/core.c` with the
//! round-robin policy of `sched_rt`/`credit` stripped to its essence: a vCPU
//! runs until it exits to block, yields, or its time slice (the APIC timer
//! tick) ends; then the next runnable vCPU after it in (domain id, vCPU id)
//! order runs. A vCPU is runnable when its domain is unpaused and not shut
//! down, it is up, not blocked (`SCHEDOP_block`/`poll`, HLT) and not already
//! running on another CPU. Blocked vCPUs are woken by event delivery (the
//! event-channel code clears `blocked`) and by timers ([`tick`]).

use alloc::vec::Vec;

use xen_public_abi::xen::domid_t;

use super::dispatch::XenExt;
use super::domain::{Domain, DomainTable, Vcpu};
use super::hypercall::{ExtHandlers, Hypervisor};
use super::{sched_op, vcpu_op};

/// One vCPU, by domain and index.
pub type VcpuRef = (domid_t, u32);

/// The vCPU may be picked to run now.
pub fn is_runnable(d: &Domain, v: &Vcpu) -> bool {
    d.is_runnable() && v.online && !v.blocked && !v.paused_for_shutdown && !v.running
}

/// The shared round-robin queue: only a cursor, the order is the domain table's.
#[derive(Debug, Default)]
pub struct RunQueue {
    /// The vCPU picked last; the next pick starts after it.
    cursor: Option<VcpuRef>,
}

impl RunQueue {
    pub fn new() -> Self {
        RunQueue::default()
    }

    /// Pick the next runnable vCPU after the last one picked (wrapping), mark it
    /// running and account the runstate change. `None`: nothing to run.
    pub fn pick(&mut self, hv: &mut Hypervisor, ext: &XenExt) -> Option<VcpuRef> {
        let all: Vec<VcpuRef> = hv
            .domains
            .ids()
            .flat_map(|id| {
                let n = hv.domains.get(id).map_or(0, |d| d.vcpus.len() as u32);
                (0..n).map(move |v| (id, v))
            })
            .collect();
        if all.is_empty() {
            return None;
        }
        let start = match self.cursor {
            Some(c) => all.iter().position(|&x| x > c).unwrap_or(0),
            None => 0,
        };
        let now = hv.clock.now_ns();
        for i in 0..all.len() {
            let (id, v) = all[(start + i) % all.len()];
            let Some(d) = hv.domains.get_mut(id) else {
                continue;
            };
            if d.vcpu(v).is_some_and(|c| is_runnable(d, c)) {
                if let Some(c) = d.vcpu_mut(v) {
                    c.running = true;
                }
                vcpu_op::runstate_change(d, &*ext.machine, v, now);
                self.cursor = Some((id, v));
                return Some((id, v));
            }
        }
        None
    }

    /// The vCPU stopped running on this CPU (its time slice ended, it blocked,
    /// yielded, or its domain stopped). `ran_ns` is added to its run time.
    pub fn put(&mut self, hv: &mut Hypervisor, ext: &XenExt, who: VcpuRef, ran_ns: u64) {
        let now = hv.clock.now_ns();
        let Some(d) = hv.domains.get_mut(who.0) else {
            return;
        };
        if let Some(c) = d.vcpu_mut(who.1) {
            c.running = false;
            c.run_time_ns = c.run_time_ns.saturating_add(ran_ns);
        }
        vcpu_op::runstate_change(d, &*ext.machine, who.1, now);
    }
}

/// HLT or `SCHEDOP_block` left the vCPU wanting to sleep: block it unless an
/// event is already waiting (Xen's `vcpu_block()` re-checks
/// `local_events_need_delivery()` after setting the flag, so no wake-up is lost).
/// Returns whether the vCPU is now blocked.
pub fn block(hv: &mut Hypervisor, ext: &mut XenExt, who: VcpuRef) -> bool {
    let Some(d) = hv.domains.get_mut(who.0) else {
        return false;
    };
    let pending = ext.local_events_need_delivery(d, who.1);
    let Some(c) = d.vcpu_mut(who.1) else {
        return false;
    };
    c.blocked = !pending;
    if pending {
        c.poll = None;
    }
    c.blocked
}

/// Run every timer that is due: poll timeouts, domain watchdogs and the vCPU
/// single-shot/periodic timers (`VIRQ_TIMER`). Call it from the timer tick and
/// before picking a vCPU.
pub fn tick(hv: &mut Hypervisor, ext: &mut XenExt) {
    let now = hv.clock.now_ns();
    sched_op::fire_poll_timeouts(hv);
    sched_op::fire_watchdogs(hv, ext);
    vcpu_op::fire_timers(ext, &mut hv.domains, now);
}

/// When the next timer is due (absolute system time), for an idle CPU's wake-up.
pub fn next_wakeup(domains: &DomainTable) -> Option<u64> {
    let mut best = vcpu_op::next_deadline(domains);
    let mut consider = |t: u64| best = Some(best.map_or(t, |b: u64| b.min(t)));
    for id in domains.ids() {
        let Some(d) = domains.get(id) else { continue };
        for w in &d.watchdogs {
            if let Some(t) = w.deadline_ns {
                consider(t);
            }
        }
        for c in &d.vcpus {
            if let Some(p) = c.poll.as_ref().filter(|p| p.timeout != 0) {
                consider(p.timeout);
            }
        }
    }
    best
}

/// True while some vCPU could run (for the idle loop: nothing runnable → halt).
pub fn any_runnable(domains: &DomainTable) -> bool {
    domains.ids().any(|id| {
        domains
            .get(id)
            .is_some_and(|d| d.vcpus.iter().any(|c| is_runnable(d, c)))
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::common::domctl::create_vcpus;
    use crate::common::guest_access::fake::FakeMachine;
    use crate::common::hypercall::NoExt;
    use crate::common::test_support::*;
    use alloc::boxed::Box;
    use alloc::sync::Arc;
    use xen_public_abi::vcpu::{RUNSTATE_runnable, RUNSTATE_running};

    fn world() -> (Env, XenExt, domid_t, domid_t) {
        let machine = Arc::new(FakeMachine::default());
        let mut env = Env::new();
        let ext = XenExt::new(machine, Box::new(env.clock.clone()));
        // dom0 from Env is "running" as a fixture; make it an ordinary vCPU.
        env.hv.domains.get_mut(0).unwrap().vcpus[0].running = false;
        let mut ids = [0; 2];
        for (i, id) in ids.iter_mut().enumerate() {
            let mut cfg = baseline();
            cfg.max_vcpus = 2;
            let (rc, d) = env.create(&cfg, 0);
            assert_eq!(rc, 0);
            let dom = env.hv.domains.get_mut(d).unwrap();
            create_vcpus(dom, &mut NoExt).unwrap();
            dom.vcpus[0].online = true;
            if i == 0 {
                dom.vcpus[1].online = true;
            }
            dom.unpause_by_systemcontroller().unwrap();
            *id = d;
        }
        (env, ext, ids[0], ids[1])
    }

    #[test]
    fn round_robin_over_all_domains() {
        let (mut env, ext, a, b) = world();
        let mut rq = RunQueue::new();
        let mut order = Vec::new();
        for _ in 0..8 {
            let who = rq.pick(&mut env.hv, &ext).unwrap();
            order.push(who);
            rq.put(&mut env.hv, &ext, who, 10);
        }
        let round = [(0, 0), (a, 0), (a, 1), (b, 0)];
        assert_eq!(&order[..4], &round);
        assert_eq!(&order[4..], &round);
        assert_eq!(env.hv.domains.get(a).unwrap().vcpus[1].run_time_ns, 20);
    }

    #[test]
    fn running_blocked_paused_and_down_vcpus_are_skipped() {
        let (mut env, ext, a, b) = world();
        let mut rq = RunQueue::new();
        // Two CPUs: each takes a different vCPU.
        let x = rq.pick(&mut env.hv, &ext).unwrap();
        let y = rq.pick(&mut env.hv, &ext).unwrap();
        assert_ne!(x, y);
        assert_eq!(
            env.hv.domains.get(x.0).unwrap().vcpus[x.1 as usize]
                .op
                .runstate,
            RUNSTATE_running
        );
        rq.put(&mut env.hv, &ext, x, 0);
        rq.put(&mut env.hv, &ext, y, 0);
        env.hv.domains.get_mut(0).unwrap().vcpus[0].blocked = true;
        env.hv
            .domains
            .get_mut(a)
            .unwrap()
            .pause_by_systemcontroller()
            .unwrap();
        let mut seen = Vec::new();
        for _ in 0..3 {
            let w = rq.pick(&mut env.hv, &ext).unwrap();
            seen.push(w);
            rq.put(&mut env.hv, &ext, w, 0);
        }
        assert_eq!(seen, [(b, 0), (b, 0), (b, 0)]);
        assert_eq!(
            env.hv.domains.get(0).unwrap().vcpus[0].op.runstate,
            RUNSTATE_runnable,
            "blocked after its last put: the runstate catches up at the next change"
        );
        env.hv.domains.get_mut(b).unwrap().shutdown(0);
        assert_eq!(rq.pick(&mut env.hv, &ext), None);
        assert!(!any_runnable(&env.hv.domains));
    }

    #[test]
    fn block_does_not_lose_a_pending_upcall() {
        let (mut env, mut ext, a, _) = world();
        assert!(block(&mut env.hv, &mut ext, (a, 0)));
        assert!(env.hv.domains.get(a).unwrap().vcpus[0].blocked);
        let d = env.hv.domains.get_mut(a).unwrap();
        d.vcpus[0].blocked = false;
        d.vcpus[0].upcall_raised = true;
        assert!(
            !block(&mut env.hv, &mut ext, (a, 0)),
            "event waiting: stays runnable"
        );
    }

    #[test]
    fn next_wakeup_is_the_earliest_timer() {
        let (mut env, mut ext, a, b) = world();
        assert_eq!(next_wakeup(&env.hv.domains), None);
        env.hv.domains.get_mut(a).unwrap().vcpus[1].op.singleshot_ns = Some(500);
        env.hv.domains.get_mut(b).unwrap().vcpus[0].poll = Some(sched_op::PollState {
            ports: alloc::vec![1],
            timeout: 300,
        });
        assert_eq!(next_wakeup(&env.hv.domains), Some(300));
        env.hv.domains.get_mut(b).unwrap().vcpus[0].blocked = true;
        env.clock
            .0
            .store(400, core::sync::atomic::Ordering::Relaxed);
        tick(&mut env.hv, &mut ext);
        let v = &env.hv.domains.get(b).unwrap().vcpus[0];
        assert!(!v.blocked && v.poll.is_none(), "poll timed out");
        assert_eq!(next_wakeup(&env.hv.domains), Some(500));
    }
}
