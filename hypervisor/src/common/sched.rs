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
//!
//! **Wake boost** (the role of credit1's `BOOST` priority / credit2's wake-up
//! preemption): a vCPU that gets an event while it is not on a CPU is
//! *boosted* ([`RunQueue::wake`]): the next pick on any CPU takes it before the
//! round-robin order, and the run loop preempts a CPU that runs an unboosted
//! vCPU for it. The boost lasts until the vCPU has taken its events (an exit
//! with none pending: [`RunQueue::unboost`], it goes on as an ordinary vCPU
//! in its slice) or [`BOOST_SLICE_NS`]. Boosted running is paid from a
//! per-vCPU token bucket (refilled at 1/[`BOOST_SHARE`] of elapsed time, at
//! most [`BOOST_CAP_NS`]); a boosted run lasts at most the tokens left, and a
//! vCPU with too few tokens is not boosted. So an event ping-pong can make a
//! vCPU run *sooner*, not *more*: vCPUs that keep waking each other (or leave
//! their events pending) gain at most that share of a CPU over others.

use alloc::collections::{BTreeMap, BTreeSet, VecDeque};
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

/// The round-robin quantum: a vCPU runs at most this long before the next one.
pub const SLICE_NS: u64 = 10_000_000;
/// The share of elapsed time a vCPU earns as boost tokens (1/`BOOST_SHARE`).
pub const BOOST_SHARE: u64 = 4;
/// At most this many boost tokens (ns of boosted running) are kept.
pub const BOOST_CAP_NS: u64 = 10_000_000;
/// A boosted run lasts at most this long (then the vCPU goes back to the
/// round-robin order): long enough to handle the event, short enough that a
/// vCPU that keeps running after it costs others little.
pub const BOOST_SLICE_NS: u64 = 1_000_000;
/// A vCPU with fewer tokens than this is not boosted.
pub const BOOST_MIN_NS: u64 = 200_000;

/// One vCPU's boost tokens.
#[derive(Clone, Copy, Debug)]
struct Tokens {
    ns: u64,
    /// When they were last refilled.
    at: u64,
}

/// The shared round-robin queue: a cursor (the order is the domain table's)
/// and the boosted vCPUs waiting, first woken first.
#[derive(Debug, Default)]
pub struct RunQueue {
    /// The vCPU picked last; the next pick starts after it.
    cursor: Option<VcpuRef>,
    /// Boosted vCPUs not yet picked, in wake order.
    boosted: VecDeque<VcpuRef>,
    /// Picked boosted and not yet put back: their run is paid from their tokens.
    running_boosted: BTreeSet<VcpuRef>,
    /// Boost tokens of every vCPU that was ever woken (until its domain goes).
    tokens: BTreeMap<VcpuRef, Tokens>,
}

/// A pick: the vCPU and how long it may run before it is preempted.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Pick {
    pub who: VcpuRef,
    /// `SLICE_NS`; for a boosted pick `BOOST_SLICE_NS` or the tokens left.
    pub slice_ns: u64,
    pub boosted: bool,
}

impl RunQueue {
    pub fn new() -> Self {
        RunQueue::default()
    }

    fn refill(&mut self, who: VcpuRef, now: u64) -> &mut Tokens {
        let t = self.tokens.entry(who).or_insert(Tokens {
            ns: BOOST_CAP_NS,
            at: now,
        });
        let earned = now.saturating_sub(t.at) / BOOST_SHARE;
        t.ns = t.ns.saturating_add(earned).min(BOOST_CAP_NS);
        t.at = now;
        t
    }

    /// `who` got an event: boost it if it waits to run (not on a CPU) and has
    /// the tokens. Returns whether it is now boosted (the caller then makes a
    /// CPU that runs an unboosted vCPU reschedule).
    pub fn wake(&mut self, hv: &Hypervisor, who: VcpuRef) -> bool {
        let runnable = hv
            .domains
            .get(who.0)
            .and_then(|d| d.vcpu(who.1).map(|v| is_runnable(d, v)))
            .unwrap_or(false);
        if !runnable {
            return false;
        }
        if self.boosted.contains(&who) {
            return true;
        }
        let now = hv.clock.now_ns();
        if self.refill(who, now).ns < BOOST_MIN_NS {
            return false;
        }
        self.boosted.push_back(who);
        true
    }

    /// A boosted vCPU took its events after `ran_ns` of its boosted run: pay
    /// for that time; it runs on as an ordinary vCPU.
    pub fn unboost(&mut self, now: u64, who: VcpuRef, ran_ns: u64) {
        if self.running_boosted.remove(&who) {
            let t = self.refill(who, now);
            t.ns = t.ns.saturating_sub(ran_ns);
        }
    }

    /// A boosted vCPU waits to run: a CPU running an unboosted one should
    /// reschedule at its next exit.
    pub fn boost_waiting(&self) -> bool {
        !self.boosted.is_empty()
    }

    /// Forget a destroyed domain's vCPUs.
    pub fn forget_domain(&mut self, domid: domid_t) {
        self.boosted.retain(|w| w.0 != domid);
        self.running_boosted.retain(|w| w.0 != domid);
        self.tokens.retain(|w, _| w.0 != domid);
    }

    /// Pick the next runnable vCPU after the last one picked (wrapping), mark it
    /// running and account the runstate change. `None`: nothing to run.
    pub fn pick(&mut self, hv: &mut Hypervisor, ext: &XenExt) -> Option<VcpuRef> {
        self.pick_next(hv, ext).map(|p| p.who)
    }

    /// [`RunQueue::pick`] with the boost: the first boosted vCPU still runnable
    /// comes before the round-robin order, with a slice of its tokens.
    pub fn pick_next(&mut self, hv: &mut Hypervisor, ext: &XenExt) -> Option<Pick> {
        let now = hv.clock.now_ns();
        while let Some(who) = self.boosted.pop_front() {
            let Some(d) = hv.domains.get_mut(who.0) else {
                continue;
            };
            if !d.vcpu(who.1).is_some_and(|c| is_runnable(d, c)) {
                continue;
            }
            if let Some(c) = d.vcpu_mut(who.1) {
                c.running = true;
            }
            vcpu_op::runstate_change(d, &*ext.machine, who.1, now);
            let slice_ns = self.refill(who, now).ns.min(BOOST_SLICE_NS);
            self.running_boosted.insert(who);
            return Some(Pick {
                who,
                slice_ns,
                boosted: true,
            });
        }
        self.pick_round_robin(hv, ext).map(|who| Pick {
            who,
            slice_ns: SLICE_NS,
            boosted: false,
        })
    }

    fn pick_round_robin(&mut self, hv: &mut Hypervisor, ext: &XenExt) -> Option<VcpuRef> {
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
        if self.running_boosted.remove(&who) {
            let t = self.refill(who, now);
            t.ns = t.ns.saturating_sub(ran_ns);
        }
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

    fn set_clock(env: &Env, ns: u64) {
        env.clock.0.store(ns, core::sync::atomic::Ordering::Relaxed);
    }

    #[test]
    fn a_woken_vcpu_is_picked_first_with_a_slice_of_its_tokens() {
        let (mut env, ext, a, b) = world();
        let mut rq = RunQueue::new();
        // Two CPUs busy with dom0 and a's vCPU 0; b waits its turn after a.1.
        let x = rq.pick_next(&mut env.hv, &ext).unwrap();
        let y = rq.pick_next(&mut env.hv, &ext).unwrap();
        assert_eq!((x.who, y.who), ((0, 0), (a, 0)));
        assert!(!x.boosted && x.slice_ns == SLICE_NS);
        assert!(!rq.boost_waiting());
        assert!(!rq.wake(&env.hv, (a, 0)), "on a CPU: nothing to boost");
        assert!(rq.wake(&env.hv, (b, 0)));
        assert!(rq.boost_waiting());
        assert!(rq.wake(&env.hv, (b, 0)), "woken twice, queued once");
        rq.put(&mut env.hv, &ext, x.who, 0);
        let p = rq.pick_next(&mut env.hv, &ext).unwrap();
        assert_eq!(
            p,
            Pick {
                who: (b, 0),
                slice_ns: BOOST_SLICE_NS,
                boosted: true
            },
            "before a.1, next in round-robin order"
        );
        assert!(!rq.boost_waiting());
        // The boosted run is paid from its tokens.
        rq.put(&mut env.hv, &ext, p.who, BOOST_CAP_NS - 300_000);
        // (A vCPU that overran its boosted slice pays what it ran.)
        let next = rq.pick_next(&mut env.hv, &ext).unwrap();
        assert_eq!(next.who, (a, 1), "round-robin order goes on");
        rq.put(&mut env.hv, &ext, next.who, 0);
        assert!(rq.wake(&env.hv, (b, 0)));
        let p = rq.pick_next(&mut env.hv, &ext).unwrap();
        assert_eq!((p.who, p.slice_ns), ((b, 0), 300_000));
        rq.put(&mut env.hv, &ext, p.who, 300_000);
        assert!(
            !rq.wake(&env.hv, (b, 0)),
            "no tokens left: an event ping-pong gains no more CPU"
        );
        // Tokens come back at 1/BOOST_SHARE of the time that passes.
        set_clock(&env, BOOST_MIN_NS * BOOST_SHARE);
        assert!(rq.wake(&env.hv, (b, 0)));
        let p = rq.pick_next(&mut env.hv, &ext).unwrap();
        assert_eq!((p.who, p.slice_ns), ((b, 0), BOOST_MIN_NS));
    }

    #[test]
    fn a_boost_that_ends_early_pays_only_for_its_time() {
        let (mut env, ext, _, b) = world();
        let mut rq = RunQueue::new();
        assert!(rq.wake(&env.hv, (b, 0)));
        let p = rq.pick_next(&mut env.hv, &ext).unwrap();
        assert!(p.boosted);
        rq.unboost(0, p.who, 100_000);
        // Put back after a long ordinary run: only the boosted part was paid.
        rq.put(&mut env.hv, &ext, p.who, SLICE_NS);
        assert_eq!(rq.tokens[&(b, 0)].ns, BOOST_CAP_NS - 100_000);
        rq.unboost(0, p.who, 5_000);
        assert_eq!(rq.tokens[&(b, 0)].ns, BOOST_CAP_NS - 100_000, "not boosted");
    }

    #[test]
    fn stopped_vcpus_are_not_boosted_and_destroyed_domains_are_forgotten() {
        let (mut env, ext, a, b) = world();
        let mut rq = RunQueue::new();
        env.hv.domains.get_mut(a).unwrap().vcpus[1].blocked = true;
        assert!(!rq.wake(&env.hv, (a, 1)), "still blocked");
        assert!(!rq.wake(&env.hv, (b, 1)), "offline");
        assert!(!rq.wake(&env.hv, (9, 0)), "no such domain");
        assert!(rq.wake(&env.hv, (b, 0)));
        // Paused after the wake: the boosted entry is skipped.
        env.hv
            .domains
            .get_mut(b)
            .unwrap()
            .pause_by_systemcontroller()
            .unwrap();
        let p = rq.pick_next(&mut env.hv, &ext).unwrap();
        assert!(!p.boosted && p.who.0 != b);
        rq.put(&mut env.hv, &ext, p.who, 0);
        assert!(rq.wake(&env.hv, (a, 0)));
        rq.forget_domain(a);
        assert!(!rq.boost_waiting());
        assert!(rq.tokens.keys().all(|w| w.0 != a));
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
