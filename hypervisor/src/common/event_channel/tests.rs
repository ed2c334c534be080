//! Conformance tests: every row of the Xen 4.17 oracle's section C, the FIFO
//! gating, and both delivery ABIs, through `do_event_channel_op` with a fake
//! domain table.

use super::*;
use crate::common::guest_access::fake::FakeMemory;
use alloc::collections::BTreeMap;
use alloc::vec::Vec;
use xen_public_abi::xen::{VIRQ_ARCH_0, VIRQ_DEBUG, VIRQ_DOM_EXC, VIRQ_TIMER};
use zerocopy::FromZeros;

pub(super) const EINVAL: i64 = -22;
pub(super) const ESRCH: i64 = -3;
pub(super) const ENOSPC: i64 = -28;
pub(super) const EEXIST: i64 = -17;
pub(super) const ENOENT: i64 = -2;
pub(super) const ENOSYS: i64 = -38;
pub(super) const EBUSY: i64 = -16;
pub(super) const EPERM: i64 = -1;
pub(super) const EFAULT: i64 = -14;
pub(super) const EACCES: i64 = -13;
pub(super) const EOPNOTSUPP: i64 = -95;
pub(super) const SELF: u16 = DOMID_SELF;
pub(super) const NONEXISTENT: u16 = 30000;
/// Where the fake guest puts hypercall arguments.
const ARG: u64 = 0x100;

pub(super) struct FakeDom {
    pub evtchn: EvtchnDomain,
    pub mem: FakeMemory,
    pub pause: u32,
    pub privileged: bool,
}

/// A fake domain table: the `EvtchnEnv` the integrator will write for real.
pub(super) struct FakeEnv {
    pub doms: BTreeMap<u16, FakeDom>,
    pub caller: u16,
    pub upcalls: Vec<(u16, u32)>,
    /// `wake_pollers` calls: (domain, port).
    pub pollers: Vec<(u16, u32)>,
    /// The caller's hypercall-argument memory (guest-virtual = flat).
    pub args: FakeMemory,
}

impl EvtchnEnv for FakeEnv {
    fn caller(&self) -> DomId {
        DomId(self.caller)
    }
    fn caller_is_privileged(&self) -> bool {
        self.doms.get(&self.caller).is_some_and(|d| d.privileged)
    }
    fn domain_exists(&self, id: DomId) -> bool {
        self.doms.contains_key(&id.0)
    }
    fn with_domain(
        &mut self,
        id: DomId,
        f: &mut dyn FnMut(&mut EvtchnDomain, &mut dyn GuestMemory),
    ) -> bool {
        match self.doms.get_mut(&id.0) {
            Some(d) => {
                f(&mut d.evtchn, &mut d.mem);
                true
            }
            None => false,
        }
    }
    fn controller_pause_count(&self, id: DomId) -> u32 {
        self.doms.get(&id.0).map_or(0, |d| d.pause)
    }
    fn raise_upcall(&mut self, id: DomId, vcpu: u32) {
        self.upcalls.push((id.0, vcpu));
    }
    fn wake_pollers(&mut self, id: DomId, port: u32) {
        self.pollers.push((id.0, port));
    }
}

impl FakeEnv {
    pub fn new() -> Self {
        FakeEnv {
            doms: BTreeMap::new(),
            caller: 0,
            upcalls: Vec::new(),
            pollers: Vec::new(),
            args: FakeMemory::new(4096),
        }
    }

    /// Add a domain: `mem_pages` of guest memory.
    pub fn add(
        &mut self,
        id: u16,
        max_port: u32,
        fifo: bool,
        vcpus: u32,
        mem_pages: usize,
    ) -> &mut Self {
        self.doms.insert(
            id,
            FakeDom {
                evtchn: EvtchnDomain::new(max_port, fifo, vcpus),
                mem: FakeMemory::new(mem_pages * 4096),
                pause: 0,
                privileged: id == 0,
            },
        );
        self
    }

    pub fn as_caller(&mut self, id: u16) -> &mut Self {
        self.caller = id;
        self
    }

    pub fn dom(&mut self, id: u16) -> &mut FakeDom {
        self.doms.get_mut(&id).expect("test domain exists")
    }

    /// Issue `EVTCHNOP cmd` with `arg` in the caller's memory; returns RAX
    /// and the argument as the guest sees it afterwards.
    pub fn op<T: FromBytes + IntoBytes + Immutable>(&mut self, cmd: u32, arg: T) -> (i64, T) {
        self.args.write_gpa(ARG, arg.as_bytes()).expect("arg fits");
        let mut args = core::mem::replace(&mut self.args, FakeMemory::new(0));
        let rc = do_event_channel_op(self, &mut args, cmd, ARG);
        self.args = args;
        let mut out = T::new_zeroed();
        self.args
            .read_gpa(ARG, out.as_mut_bytes())
            .expect("arg fits");
        (rc, out)
    }

    pub fn alloc_unbound(&mut self, dom: u16, remote_dom: u16) -> (i64, u32) {
        let (rc, a) = self.op(
            EVTCHNOP_alloc_unbound,
            evtchn_alloc_unbound {
                dom,
                remote_dom,
                port: 0,
            },
        );
        (rc, a.port)
    }

    pub fn bind_interdomain(&mut self, remote_dom: u16, remote_port: u32) -> (i64, u32) {
        let (rc, a) = self.op(
            EVTCHNOP_bind_interdomain,
            evtchn_bind_interdomain {
                remote_dom,
                _implicit0: [0; 2],
                remote_port,
                local_port: 0,
            },
        );
        (rc, a.local_port)
    }

    pub fn bind_virq(&mut self, virq: u32, vcpu: u32) -> (i64, u32) {
        let (rc, a) = self.op(
            EVTCHNOP_bind_virq,
            evtchn_bind_virq {
                virq,
                vcpu,
                port: 0,
            },
        );
        (rc, a.port)
    }

    pub fn bind_ipi(&mut self, vcpu: u32) -> (i64, u32) {
        let (rc, a) = self.op(EVTCHNOP_bind_ipi, evtchn_bind_ipi { vcpu, port: 0 });
        (rc, a.port)
    }

    pub fn close(&mut self, port: u32) -> i64 {
        self.op(EVTCHNOP_close, evtchn_close { port }).0
    }

    pub fn send(&mut self, port: u32) -> i64 {
        self.op(EVTCHNOP_send, evtchn_send { port }).0
    }

    pub fn status(&mut self, dom: u16, port: u32) -> (i64, evtchn_status) {
        let mut s = evtchn_status::new_zeroed();
        s.dom = dom;
        s.port = port;
        self.op(EVTCHNOP_status, s)
    }

    pub fn bind_vcpu(&mut self, port: u32, vcpu: u32) -> i64 {
        self.op(EVTCHNOP_bind_vcpu, evtchn_bind_vcpu { port, vcpu })
            .0
    }

    pub fn unmask(&mut self, port: u32) -> i64 {
        self.op(EVTCHNOP_unmask, evtchn_unmask { port }).0
    }

    pub fn reset(&mut self, dom: u16) -> i64 {
        self.op(EVTCHNOP_reset, evtchn_reset { dom }).0
    }

    pub fn set_priority(&mut self, port: u32, priority: u32) -> i64 {
        self.op(
            EVTCHNOP_set_priority,
            evtchn_set_priority { port, priority },
        )
        .0
    }

    pub fn init_control(&mut self, gfn: u64, offset: u32, vcpu: u32) -> (i64, evtchn_init_control) {
        self.op(
            EVTCHNOP_init_control,
            evtchn_init_control {
                control_gfn: gfn,
                offset,
                vcpu,
                link_bits: 0,
                _pad: [0; 7],
            },
        )
    }

    pub fn expand_array(&mut self, gfn: u64) -> i64 {
        self.op(
            EVTCHNOP_expand_array,
            evtchn_expand_array { array_gfn: gfn },
        )
        .0
    }
}

/// Status summary: (status, vcpu, u.dom, u.interdomain.port / u32 member).
fn st(s: &evtchn_status) -> (u32, u32, u16, u32) {
    let (dom, extra) = match s.status {
        EVTCHNSTAT_unbound => (s.u.get::<evtchn_status_unbound>().dom, 0),
        EVTCHNSTAT_interdomain => {
            let i = s.u.get::<evtchn_status_interdomain>();
            (i.dom, i.port)
        }
        EVTCHNSTAT_virq | EVTCHNSTAT_pirq => (0, s.u.get::<u32>()),
        _ => (0, 0),
    };
    (s.status, s.vcpu, dom, extra)
}

/// The oracle's setting: dom0 (privileged, 2 vCPUs) calls; domU 1 was created
/// with max_evtchn_port 1023 and 1 vCPU and is still paused.
fn oracle_env() -> FakeEnv {
    let mut env = FakeEnv::new();
    env.add(0, u32::MAX, true, 2, 16).add(1, 1023, true, 1, 16);
    env.dom(1).pause = 1;
    env
}

const DOMU: u16 = 1;

#[test]
fn c1_allocation_and_binding() {
    let mut env = oracle_env();
    assert_eq!(env.alloc_unbound(SELF, SELF), (0, 1));
    assert_eq!(env.alloc_unbound(SELF, 0), (0, 2));
    assert_eq!(env.alloc_unbound(0, DOMU), (0, 3));
    assert_eq!(env.alloc_unbound(DOMU, 0), (0, 1));
    assert_eq!(env.alloc_unbound(DOMU, SELF), (0, 2));
    // SELF means the caller, not the target.
    let (rc, s) = env.status(DOMU, 2);
    assert_eq!((rc, st(&s)), (0, (EVTCHNSTAT_unbound, 0, 0, 0)));
    assert_eq!(env.alloc_unbound(NONEXISTENT, SELF).0, ESRCH);
    // The remote domain is not checked.
    assert_eq!(env.alloc_unbound(SELF, NONEXISTENT), (0, 4));
    let (rc, s) = env.status(SELF, 4);
    assert_eq!((rc, st(&s)), (0, (EVTCHNSTAT_unbound, 0, NONEXISTENT, 0)));
    // (The oracle's probe cleaned up port 4 before the next row.)
    assert_eq!(env.close(4), 0);

    // bind_interdomain: loopback reuses the lowest free port.
    assert_eq!(env.bind_interdomain(SELF, 1), (0, 4));
    assert_eq!(env.bind_interdomain(SELF, 1).0, EINVAL);
    // #3 is unbound but reserved for the domU.
    assert_eq!(env.bind_interdomain(SELF, 3).0, EINVAL);
    assert_eq!(env.bind_interdomain(DOMU, 1), (0, 5));
    assert_eq!(env.bind_interdomain(DOMU, 999).0, EINVAL);
    assert_eq!(env.bind_interdomain(DOMU, 5000).0, EINVAL);
    assert_eq!(env.bind_interdomain(NONEXISTENT, 1).0, ESRCH);

    assert_eq!(env.bind_virq(VIRQ_TIMER, 0), (0, 6));
    assert_eq!(env.bind_virq(VIRQ_TIMER, 0).0, EEXIST);
    assert_eq!(env.bind_virq(VIRQ_TIMER, 1), (0, 7));
    assert_eq!(env.bind_virq(VIRQ_TIMER, 99).0, ENOENT);
    assert_eq!(env.bind_virq(24, 0).0, EINVAL);
    assert_eq!(env.bind_virq(0xffff_ffff, 0).0, EINVAL);
    assert_eq!(env.bind_virq(VIRQ_DOM_EXC, 1).0, EINVAL);
    assert_eq!(env.bind_virq(VIRQ_DOM_EXC, 0), (0, 8));
    assert_eq!(env.bind_virq(5, 0), (0, 9));
    assert_eq!(env.bind_virq(VIRQ_ARCH_0, 0), (0, 10));
    assert_eq!(env.bind_virq(VIRQ_ARCH_0 + 1, 0), (0, 11));
    assert_eq!(env.bind_virq(VIRQ_DEBUG, 0), (0, 12));

    assert_eq!(env.bind_ipi(0), (0, 13));
    assert_eq!(env.bind_ipi(0), (0, 14));
    assert_eq!(env.bind_ipi(1), (0, 15));
    assert_eq!(env.bind_ipi(99).0, ENOENT);

    // No domain here has physical IRQs (nr_pirqs = 0): every pirq is out of
    // range. (The oracle's dom0 was a hardware domain with 416 PIRQs.)
    let (rc, _) = env.op(
        EVTCHNOP_bind_pirq,
        evtchn_bind_pirq {
            pirq: 0xffff,
            flags: 0,
            port: 0,
        },
    );
    assert_eq!(rc, EINVAL);
    let (rc, _) = env.op(
        EVTCHNOP_bind_pirq,
        evtchn_bind_pirq {
            pirq: 1,
            flags: 0,
            port: 0,
        },
    );
    assert_eq!(rc, EINVAL);
}

#[test]
fn c1_max_evtchn_port_limits() {
    let mut env = oracle_env();
    env.add(2, 0, false, 1, 4).add(3, 1, false, 1, 4);
    assert_eq!(env.alloc_unbound(2, 0).0, ENOSPC);
    assert_eq!(env.alloc_unbound(3, 0), (0, 1));
    assert_eq!(env.alloc_unbound(3, 0).0, ENOSPC);
}

#[test]
fn full_domain_gives_enospc_on_every_bind() {
    let mut env = oracle_env();
    env.add(2, 1, false, 1, 4).add(3, 0, false, 1, 4);
    env.as_caller(0);
    let (_, p) = env.alloc_unbound(SELF, 2);
    env.as_caller(2);
    assert_eq!(env.bind_ipi(0), (0, 1));
    assert_eq!(env.bind_ipi(0).0, ENOSPC);
    assert_eq!(env.bind_virq(VIRQ_TIMER, 0).0, ENOSPC);
    assert_eq!(env.bind_interdomain(0, p).0, ENOSPC);
    assert_eq!(env.alloc_unbound(SELF, 0).0, ENOSPC);
    // The errors that come first still do.
    assert_eq!(env.bind_virq(VIRQ_TIMER, 1).0, ENOENT);
    assert_eq!(env.bind_interdomain(NONEXISTENT, p).0, ESRCH);
    // Allocation comes before the permission check.
    assert_eq!(env.alloc_unbound(3, 2).0, ENOSPC);
    assert_eq!(env.alloc_unbound(0, 2).0, EPERM);
}

#[test]
fn reset_cont_checks_in_xens_order() {
    let mut env = oracle_env();
    let cont = |env: &mut FakeEnv, dom| env.op(EVTCHNOP_reset_cont, evtchn_reset { dom }).0;
    assert_eq!(cont(&mut env, NONEXISTENT), ESRCH);
    assert_eq!(cont(&mut env, DOMU), EBUSY, "paused: no reset in progress");
    env.dom(DOMU).pause = 0;
    assert_eq!(cont(&mut env, DOMU), EINVAL);
    env.as_caller(DOMU);
    assert_eq!(cont(&mut env, 0), EPERM);
    assert_eq!(cont(&mut env, SELF), EBUSY);
}

#[test]
fn created_from_createdomain_config() {
    use xen_public_abi::domctl::{xen_domctl_createdomain, XEN_DOMCTL_CDF_evtchn_fifo};
    let mut c = xen_domctl_createdomain::new_zeroed();
    c.max_evtchn_port = 1023;
    c.max_vcpus = 3;
    let d = EvtchnDomain::for_createdomain(&c);
    assert!(!d.fifo_permitted());
    assert_eq!(d.nr_vcpus(), 3);
    c.flags = XEN_DOMCTL_CDF_evtchn_fifo;
    assert_eq!(
        EvtchnDomain::for_createdomain(&c).fifo_permitted(),
        FIFO_BUILT_IN
    );
}

#[test]
fn c1_lowest_free_port_and_reset_reuse() {
    let mut env = oracle_env();
    for p in 1..=3 {
        assert_eq!(env.alloc_unbound(SELF, 0), (0, p));
    }
    assert_eq!(env.close(2), 0);
    assert_eq!(env.alloc_unbound(SELF, 0), (0, 2));
    assert_eq!(env.reset(SELF), 0);
    for p in 1..=3 {
        assert_eq!(env.alloc_unbound(SELF, 0), (0, p));
    }
}

#[test]
fn c1_2level_port_limit_is_4096() {
    let mut env = FakeEnv::new();
    env.add(0, u32::MAX, true, 1, 4);
    for p in 1..4096 {
        assert_eq!(env.alloc_unbound(SELF, 0), (0, p));
    }
    assert_eq!(env.alloc_unbound(SELF, 0).0, ENOSPC);
    assert_eq!(env.dom(0).evtchn.valid_evtchns(), 4096);
}

/// Dom0 with the oracle's C.1 bindings, for the C.2/C.3 rows.
fn bound_env() -> FakeEnv {
    let mut env = oracle_env();
    assert_eq!(env.alloc_unbound(SELF, SELF).1, 1);
    assert_eq!(env.alloc_unbound(SELF, 0).1, 2);
    assert_eq!(env.alloc_unbound(0, DOMU).1, 3);
    assert_eq!(env.alloc_unbound(DOMU, 0).1, 1);
    assert_eq!(env.bind_interdomain(SELF, 1).1, 4);
    assert_eq!(env.bind_interdomain(DOMU, 1).1, 5);
    assert_eq!(env.bind_virq(VIRQ_TIMER, 0).1, 6);
    assert_eq!(env.bind_virq(VIRQ_DOM_EXC, 0).1, 7);
    assert_eq!(env.bind_ipi(0).1, 8);
    env
}

#[test]
fn c2_status() {
    let mut env = bound_env();
    let s = |env: &mut FakeEnv, d, p| {
        let (rc, s) = env.status(d, p);
        (rc, st(&s))
    };
    assert_eq!(s(&mut env, SELF, 0), (0, (EVTCHNSTAT_closed, 0, 0, 0)));
    assert_eq!(s(&mut env, SELF, 1), (0, (EVTCHNSTAT_interdomain, 0, 0, 4)));
    assert_eq!(s(&mut env, SELF, 4), (0, (EVTCHNSTAT_interdomain, 0, 0, 1)));
    assert_eq!(s(&mut env, SELF, 2), (0, (EVTCHNSTAT_unbound, 0, 0, 0)));
    assert_eq!(s(&mut env, DOMU, 1), (0, (EVTCHNSTAT_interdomain, 0, 0, 5)));
    assert_eq!(
        s(&mut env, SELF, 5),
        (0, (EVTCHNSTAT_interdomain, 0, DOMU, 1))
    );
    assert_eq!(s(&mut env, SELF, 8), (0, (EVTCHNSTAT_ipi, 0, 0, 0)));
    assert_eq!(
        s(&mut env, SELF, 6),
        (0, (EVTCHNSTAT_virq, 0, 0, VIRQ_TIMER))
    );
    assert_eq!(s(&mut env, SELF, 63), (0, (EVTCHNSTAT_closed, 0, 0, 0)));
    assert_eq!(s(&mut env, DOMU, 63), (0, (EVTCHNSTAT_closed, 0, 0, 0)));
    for p in [64, 1000, 4095, 4096, 100_000, 0xffff_ffff] {
        assert_eq!(env.status(SELF, p).0, EINVAL, "port {p}");
    }
    assert_eq!(env.status(DOMU, 64).0, EINVAL);
    assert_eq!(env.status(DOMU, 1023).0, EINVAL);
    assert_eq!(env.status(DOMU, 1024).0, EINVAL);
    assert_eq!(env.status(NONEXISTENT, 1).0, ESRCH);
}

#[test]
fn c3_send_close() {
    let mut env = bound_env();
    assert_eq!(env.send(2), 0, "unbound: dropped");
    assert_eq!(env.send(1), 0, "loopback");
    assert_eq!(env.send(8), 0, "ipi");
    assert_eq!(env.send(6), EINVAL, "virq");
    for p in [1000, 0, 100_000] {
        assert_eq!(env.send(p), EINVAL);
    }
    assert_eq!(env.close(2), 0);
    assert_eq!(env.close(2), EINVAL);
    assert_eq!(st(&env.status(SELF, 2).1).0, EVTCHNSTAT_closed);
    assert_eq!(env.send(2), EINVAL);
    assert_eq!(env.close(0), EINVAL);
    assert_eq!(env.close(100_000), EINVAL);
    // Closing one end of the loopback pair: the other end waits for us again.
    assert_eq!(env.close(4), 0);
    assert_eq!(st(&env.status(SELF, 1).1), (EVTCHNSTAT_unbound, 0, 0, 0));
    assert_eq!(env.send(1), 0);
    // And it can be bound again.
    assert_eq!(env.bind_interdomain(SELF, 1), (0, 2));
}

#[test]
fn c3_bind_vcpu() {
    let mut env = bound_env();
    assert_eq!(env.bind_vcpu(5, 1), 0, "interdomain");
    assert_eq!(env.bind_vcpu(2, 1), 0, "unbound");
    assert_eq!(st(&env.status(SELF, 2).1).1, 1);
    assert_eq!(env.bind_vcpu(6, 1), EINVAL, "per-vCPU VIRQ");
    assert_eq!(env.bind_vcpu(7, 1), 0, "global VIRQ");
    assert_eq!(env.bind_vcpu(8, 1), EINVAL, "IPI");
    assert_eq!(env.bind_vcpu(2, 99), ENOENT);
    for p in [1000, 100_000, 0] {
        assert_eq!(env.bind_vcpu(p, 1), EINVAL);
    }
    // The vCPU check comes first.
    assert_eq!(env.bind_vcpu(100_000, 99), ENOENT);
}

#[test]
fn c3_unmask_and_set_priority_in_2level() {
    let mut env = bound_env();
    for p in [100_000, 4096, 1000] {
        assert_eq!(env.unmask(p), EINVAL);
    }
    assert_eq!(env.unmask(2), 0);
    assert_eq!(env.unmask(0), 0);
    // dom0 is FIFO-permitted but still 2-level.
    assert_eq!(env.set_priority(2, 7), ENOSYS);
    assert_eq!(env.set_priority(2, 16), ENOSYS);
    assert_eq!(env.set_priority(100_000, 7), EINVAL);
}

#[test]
fn c4_fifo_setup_errors() {
    let mut env = oracle_env();
    if FIFO_BUILT_IN {
        assert_eq!(env.expand_array(1), EOPNOTSUPP);
        assert_eq!(env.init_control(0xf_ffff_ffff, 0, 0).0, EINVAL);
        assert!(!env.dom(0).evtchn.is_fifo());
        assert_eq!(env.init_control(1, 4, 0).0, EINVAL);
        assert_eq!(env.init_control(1, 4025, 0).0, EINVAL);
        assert_eq!(env.init_control(0xf_ffff_ffff, 4024, 0).0, EINVAL);
        assert_eq!(env.init_control(1, 4096, 0).0, EINVAL);
        assert_eq!(env.init_control(1, 0, 99).0, ENOENT);
        assert_eq!(env.init_control(1, 4, 99).0, ENOENT);
        assert!(!env.dom(0).evtchn.is_fifo());
    } else {
        assert_eq!(env.expand_array(1), EOPNOTSUPP);
        assert_eq!(env.init_control(1, 0, 0).0, EOPNOTSUPP);
        assert_eq!(env.init_control(1, 4, 99).0, EOPNOTSUPP);
    }
}

#[test]
fn c4_unknown_ops_and_reset_cont() {
    let mut env = oracle_env();
    assert_eq!(env.op(15, [0u8; 32]).0, ENOSYS);
    assert_eq!(env.op(100, [0u8; 32]).0, ENOSYS);
    assert_eq!(
        env.op(EVTCHNOP_reset_cont, evtchn_reset { dom: SELF }).0,
        EBUSY
    );
    // Unknown ops do not read their argument.
    let mut args = core::mem::replace(&mut env.args, FakeMemory::new(0));
    assert_eq!(
        do_event_channel_op(&mut env, &mut args, 15, 1 << 40),
        ENOSYS
    );
}

#[test]
fn c4_reset() {
    let mut env = bound_env();
    // domU still paused since creation: its port closes, our end waits for it.
    assert_eq!(env.reset(DOMU), 0);
    assert_eq!(st(&env.status(DOMU, 1).1).0, EVTCHNSTAT_closed);
    assert_eq!(st(&env.status(SELF, 5).1), (EVTCHNSTAT_unbound, 0, DOMU, 0));
    env.dom(DOMU).pause = 0;
    assert_eq!(env.reset(DOMU), EINVAL);
    assert_eq!(env.reset(NONEXISTENT), ESRCH);
    assert_eq!(env.reset(SELF), 0);
    for p in 1..64 {
        assert_eq!(st(&env.status(SELF, p).1).0, EVTCHNSTAT_closed, "port {p}");
    }
    assert_eq!(env.dom(0).evtchn.virq_port(0, VIRQ_TIMER), 0);
    assert_eq!(env.reset(0), 0);
    // A VIRQ can be bound again after reset.
    assert_eq!(env.bind_virq(VIRQ_TIMER, 0), (0, 1));
}

#[test]
fn cross_domain_access_needs_privilege() {
    let mut env = bound_env();
    env.add(2, 1023, false, 1, 4);
    env.dom(2).pause = 1;
    env.as_caller(2);
    assert_eq!(env.alloc_unbound(0, 2).0, EPERM);
    assert_eq!(env.alloc_unbound(NONEXISTENT, 2).0, ESRCH);
    assert_eq!(env.status(0, 1).0, EPERM);
    // The port check comes before the permission check.
    assert_eq!(env.status(0, 64).0, EINVAL);
    assert_eq!(env.reset(0), EPERM);
    assert_eq!(env.reset(DOMU), EPERM);
    // Its own ports are fine, and an unbound port reserved for it is bindable.
    assert_eq!(env.alloc_unbound(SELF, 0), (0, 1));
    assert_eq!(env.status(2, 1).0, 0);
    env.as_caller(0);
    let (_, p) = env.alloc_unbound(SELF, 2);
    env.as_caller(2);
    assert_eq!(env.bind_interdomain(0, p), (0, 2));
    // Reset on itself needs no pause.
    assert_eq!(env.reset(SELF), 0);
    env.as_caller(0);
    assert_eq!(st(&env.status(SELF, p).1), (EVTCHNSTAT_unbound, 0, 2, 0));
}

#[test]
fn bad_argument_pointers_are_efault() {
    let mut env = oracle_env();
    let mut args = core::mem::replace(&mut env.args, FakeMemory::new(0));
    for cmd in [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14] {
        let rc = do_event_channel_op(&mut env, &mut args, cmd, 1 << 40);
        assert_eq!(rc, EFAULT, "cmd {cmd}");
    }
    // Copy-back failure after success is -EFAULT too (the port stays allocated).
    let mut tiny = FakeMemory::new(4096);
    tiny.holes.push(1);
    let a = evtchn_alloc_unbound {
        dom: SELF,
        remote_dom: 0,
        port: 0,
    };
    tiny.write_gpa(4096 - 4, &a.as_bytes()[..4]).unwrap();
    assert_eq!(
        do_event_channel_op(&mut env, &mut tiny, EVTCHNOP_alloc_unbound, 4096 - 4),
        EFAULT
    );
}

#[test]
fn global_virq_to_handler() {
    let mut env = oracle_env();
    let (_, p) = env.bind_virq(VIRQ_DOM_EXC, 0);
    assert_eq!(env.bind_vcpu(p, 1), 0);
    assert!(send_global_virq(&mut env, VIRQ_DOM_EXC));
    // Delivered on the vCPU the port was moved to.
    assert_eq!(env.upcalls, [(0, 1)]);
    assert!(
        !send_global_virq(&mut env, VIRQ_TIMER),
        "per-vCPU VIRQs are not global"
    );
    let (_, t) = env.bind_virq(VIRQ_TIMER, 1);
    assert!(send_virq(&mut env, DomId(0), 1, VIRQ_TIMER));
    assert!(
        !send_virq(&mut env, DomId(0), 0, VIRQ_TIMER),
        "not bound on vCPU 0"
    );
    assert_eq!(evtchn_port_poll(&mut env, DomId(0), t), Ok(true));
    assert_eq!(evtchn_port_poll(&mut env, DomId(0), 63), Err(Errno::EINVAL));
    assert_eq!(evtchn_port_poll(&mut env, DomId(0), 64), Err(Errno::EINVAL));
}

#[test]
fn destroy_closes_peers() {
    let mut env = bound_env();
    evtchn_destroy(&mut env, DomId(DOMU)).unwrap();
    assert_eq!(st(&env.status(SELF, 5).1), (EVTCHNSTAT_unbound, 0, DOMU, 0));
    // A dying domain allocates nothing.
    assert_eq!(env.alloc_unbound(DOMU, 0).0, EINVAL);
}

// ---- 2-level delivery -------------------------------------------------------

mod two_level_delivery {
    use super::*;

    fn shared(env: &mut FakeEnv, d: u16) -> (&SharedInfo, &FakeMemory) {
        let fd = env.dom(d);
        (fd.evtchn.shared_info(), &fd.mem)
    }

    #[test]
    fn send_sets_bits_and_raises_upcall_once() {
        let mut env = oracle_env();
        let (_, p) = env.bind_ipi(1);
        assert_eq!(env.send(p), 0);
        {
            let (si, m) = shared(&mut env, 0);
            assert!(si.pending_bit(m, p).unwrap());
            assert_eq!(si.pending_sel(m, 1).unwrap(), 1);
            assert!(si.upcall_pending(m, 1).unwrap());
            assert!(!si.upcall_pending(m, 0).unwrap());
        }
        assert_eq!(env.upcalls, [(0, 1)]);
        // Already pending: nothing new.
        assert_eq!(env.send(p), 0);
        assert_eq!(env.upcalls.len(), 1);
    }

    #[test]
    fn selector_and_upcall_transitions() {
        let mut env = oracle_env();
        let fd = env.dom(0);
        fd.evtchn.map_shared_info(&mut fd.mem, Some(1)).unwrap();
        let ports: Vec<u32> = (0..70).map(|_| env.bind_ipi(0).1).collect();
        // Ports 1 and 2: same selector word: one upcall.
        env.send(ports[0]);
        env.send(ports[1]);
        assert_eq!(env.upcalls.len(), 1);
        // Port 65: another selector bit, but upcall_pending is still set.
        env.send(ports[64]);
        assert_eq!(env.upcalls.len(), 1);
        let (si, m) = shared(&mut env, 0);
        assert_eq!(si.pending_sel(m, 0).unwrap(), 0b11);
        // The guest takes the upcall: clears upcall_pending, the selector and
        // the pending bits it handled.
        let fd = env.dom(0);
        fd.mem.bytes[4096] = 0;
        fd.mem.bytes[4096 + 8..4096 + 16].fill(0);
        fd.mem.bytes[4096 + 2048..4096 + 2064].fill(0);
        // A port already pending raises nothing; a new one raises both again.
        env.send(ports[2]);
        assert_eq!(env.upcalls.len(), 2);
        let (si, m) = shared(&mut env, 0);
        assert_eq!(si.pending_sel(m, 0).unwrap(), 1);
        assert!(si.upcall_pending(m, 0).unwrap());
    }

    #[test]
    fn masked_port_pends_without_upcall_until_unmask() {
        let mut env = oracle_env();
        let (_, p) = env.bind_ipi(0);
        {
            let fd = env.dom(0);
            fd.evtchn
                .shared_info_mut()
                .set_mask_bit(&mut fd.mem, p, true)
                .unwrap();
        }
        env.send(p);
        let (si, m) = shared(&mut env, 0);
        assert!(si.pending_bit(m, p).unwrap());
        assert_eq!(si.pending_sel(m, 0).unwrap(), 0);
        assert!(env.upcalls.is_empty());
        assert_eq!(env.unmask(p), 0);
        let (si, m) = shared(&mut env, 0);
        assert!(!si.mask_bit(m, p).unwrap());
        assert_eq!(si.pending_sel(m, 0).unwrap(), 1);
        assert_eq!(env.upcalls, [(0, 0)]);
        // Unmasking an unmasked port raises nothing.
        env.unmask(p);
        assert_eq!(env.upcalls.len(), 1);
    }

    #[test]
    fn pollers_hear_of_newly_pending_ports_even_masked() {
        let mut env = oracle_env();
        let (_, p) = env.bind_ipi(0);
        let (_, q) = env.bind_ipi(0);
        let fd = env.dom(0);
        fd.evtchn
            .shared_info_mut()
            .set_mask_bit(&mut fd.mem, p, true)
            .unwrap();
        env.send(p);
        env.send(p);
        env.send(q);
        assert_eq!(env.pollers, [(0, p), (0, q)]);
        assert_eq!(
            env.upcalls,
            [(0, 0)],
            "only the unmasked port raised the upcall"
        );
        assert_eq!(evtchn_port_poll(&mut env, DomId(0), p), Ok(true));
    }

    #[test]
    fn shared_info_registration_carries_state_into_guest_page() {
        let mut env = oracle_env();
        let (_, p) = env.bind_ipi(1);
        env.send(p);
        let fd = env.dom(0);
        fd.evtchn.map_shared_info(&mut fd.mem, Some(3)).unwrap();
        let base = 3 * 4096;
        let pend = u64::from_le_bytes(fd.mem.bytes[base + 2048..base + 2056].try_into().unwrap());
        assert_eq!(pend, 1 << p);
        let sel = u64::from_le_bytes(
            fd.mem.bytes[base + 64 + 8..base + 64 + 16]
                .try_into()
                .unwrap(),
        );
        assert_eq!(sel, 1);
        assert_eq!(
            fd.mem.bytes[base + 64],
            1,
            "vcpu_info[1].evtchn_upcall_pending"
        );
        // The guest clears its bits; the next send lands in its page.
        fd.mem.bytes[base + 2048..base + 2056].fill(0);
        fd.mem.bytes[base + 64..base + 80].fill(0);
        env.send(p);
        let fd = env.dom(0);
        assert_eq!(fd.mem.bytes[base + 2048], 1 << p);
        assert_eq!(fd.mem.bytes[base + 64], 1);
        assert_eq!(env.upcalls, [(0, 1), (0, 1)]);
        // A frame outside guest memory is refused and nothing moves.
        let fd = env.dom(0);
        assert_eq!(
            fd.evtchn.map_shared_info(&mut fd.mem, Some(1 << 30)),
            Err(Errno::EFAULT)
        );
        assert_eq!(fd.evtchn.shared_info().gpa(), Some(base as u64));
    }

    #[test]
    fn interdomain_send_targets_remote_notify_vcpu() {
        let mut env = oracle_env();
        env.dom(1).evtchn.set_nr_vcpus(2);
        env.as_caller(1);
        let (_, rp) = env.alloc_unbound(SELF, 0);
        assert_eq!(env.bind_vcpu(rp, 1), 0);
        env.as_caller(0);
        let (_, lp) = env.bind_interdomain(1, rp);
        // Binding flags the local port (lost notifications).
        assert_eq!(env.upcalls, [(0, 0)]);
        assert_eq!(env.send(lp), 0);
        assert_eq!(env.upcalls, [(0, 0), (1, 1)]);
        let fd = env.dom(1);
        assert!(fd.evtchn.shared_info().pending_bit(&fd.mem, rp).unwrap());
        // Closing clears the closed port's pending bit.
        env.as_caller(1);
        assert_eq!(env.close(rp), 0);
        let fd = env.dom(1);
        assert!(!fd.evtchn.shared_info().pending_bit(&fd.mem, rp).unwrap());
        env.as_caller(0);
        assert_eq!(st(&env.status(SELF, lp).1), (EVTCHNSTAT_unbound, 0, 1, 0));
    }

    #[test]
    fn guest_memory_faults_only_hurt_the_guest() {
        let mut env = oracle_env();
        let (_, p) = env.bind_ipi(0);
        let fd = env.dom(0);
        fd.evtchn.map_shared_info(&mut fd.mem, Some(2)).unwrap();
        fd.mem.holes.push(2);
        assert_eq!(env.send(p), 0);
        assert!(env.upcalls.is_empty());
        assert_eq!(env.unmask(p), 0);
        assert_eq!(env.close(p), 0);
    }
}

// ---- FIFO -------------------------------------------------------------------

/// The guest side of the FIFO ABI, as Linux's `events_fifo.c` does it: the
/// control block and event-array pages are guest frames it owns.
pub(super) struct GuestFifo {
    /// Control block GPA per vCPU.
    pub cb: Vec<u64>,
    /// Event-array page GPAs.
    pub pages: Vec<u64>,
    /// Per-vCPU local copy of the queue heads (Linux's per-CPU `q->head`).
    pub local_head: Vec<[u32; 16]>,
}

impl GuestFifo {
    pub fn new(nr_vcpus: usize) -> Self {
        GuestFifo {
            cb: Vec::new(),
            pages: Vec::new(),
            local_head: vec![[0; 16]; nr_vcpus],
        }
    }

    pub fn word(&self, port: u32) -> u64 {
        self.pages[(port / 1024) as usize] + u64::from(port % 1024) * 4
    }

    pub fn read(mem: &FakeMemory, gpa: u64) -> u32 {
        guest_bits::read_u32(mem, gpa).unwrap()
    }

    pub fn word_val(&self, mem: &FakeMemory, port: u32) -> u32 {
        Self::read(mem, self.word(port))
    }

    /// Guest-side unmask (Linux `evtchn_fifo_unmask`): clear MASKED while not
    /// BUSY; if PENDING, ask Xen. Returns true when the hypercall is needed.
    pub fn guest_unmask(&self, mem: &mut FakeMemory, port: u32) -> bool {
        let w = self.word(port);
        let old = guest_bits::update_u32(mem, w, |v| {
            if v & (1 << EVTCHN_FIFO_BUSY) != 0 {
                v
            } else {
                v & !(1 << EVTCHN_FIFO_MASKED)
            }
        })
        .unwrap();
        old & (1 << EVTCHN_FIFO_BUSY) != 0 || Self::read(mem, w) & (1 << EVTCHN_FIFO_PENDING) != 0
    }

    /// Guest-side mask.
    pub fn guest_mask(&self, mem: &mut FakeMemory, port: u32) {
        guest_bits::set_bit(mem, self.word(port), EVTCHN_FIFO_MASKED).unwrap();
    }

    /// The upcall handler (Linux `__xen_evtchn_do_upcall` + `consume_one_event`):
    /// clear `evtchn_upcall_pending`, `xchg(ready, 0)`, walk the queues from
    /// priority 0, unlink each port (cmpxchg clearing LINKED and LINK), and
    /// handle (ack = clear PENDING) ports that are pending and unmasked.
    /// Returns the handled ports in order.
    pub fn consume(&mut self, si: &mut SharedInfo, mem: &mut FakeMemory, v: u32) -> Vec<u32> {
        let mut handled = Vec::new();
        si.clear_upcall_pending(mem, v).unwrap();
        let cb = self.cb[v as usize];
        let mut ready = guest_bits::update_u32(mem, cb, |_| 0).unwrap();
        while ready != 0 {
            let q = ready.trailing_zeros();
            let mut head = self.local_head[v as usize][q as usize];
            if head == 0 {
                head = Self::read(mem, cb + 8 + u64::from(q) * 4);
            }
            let port = head;
            let w = self.word(port);
            let old = guest_bits::update_u32(mem, w, |x| {
                x & !((1 << EVTCHN_FIFO_LINKED) | EVTCHN_FIFO_LINK_MASK)
            })
            .unwrap();
            let next = old & EVTCHN_FIFO_LINK_MASK;
            if next == 0 {
                ready &= !(1 << q);
            }
            let now = Self::read(mem, w);
            if now & (1 << EVTCHN_FIFO_PENDING) != 0 && now & (1 << EVTCHN_FIFO_MASKED) == 0 {
                guest_bits::clear_bit(mem, w, EVTCHN_FIFO_PENDING).unwrap();
                handled.push(port);
            }
            self.local_head[v as usize][q as usize] = next;
            if ready == 0 {
                ready = guest_bits::update_u32(mem, cb, |_| 0).unwrap();
            }
        }
        handled
    }
}

#[cfg(feature = "evtchn-fifo")]
mod fifo_abi {
    use super::*;
    const P: u32 = 1 << EVTCHN_FIFO_PENDING;
    const M: u32 = 1 << EVTCHN_FIFO_MASKED;
    const L: u32 = 1 << EVTCHN_FIFO_LINKED;

    /// Dom 0 (2 vCPUs, 300 pages) switched to FIFO: control blocks in frames
    /// 1 and 2, one event-array page (frame 3) with every word MASKED as Linux
    /// pre-sets it.
    fn fifo_env() -> (FakeEnv, GuestFifo) {
        let mut env = FakeEnv::new();
        env.add(0, u32::MAX, true, 2, 300)
            .add(1, 1023, false, 1, 16);
        let mut g = GuestFifo::new(2);
        let (rc, ic) = env.init_control(1, 0, 0);
        assert_eq!((rc, ic.link_bits), (0, 17));
        assert!(env.dom(0).evtchn.is_fifo());
        assert_eq!(env.init_control(2, 0, 1).0, 0);
        g.cb = vec![4096, 8192];
        add_page(&mut env, &mut g, 3);
        (env, g)
    }

    fn add_page(env: &mut FakeEnv, g: &mut GuestFifo, gfn: u64) {
        let mem = &mut env.dom(0).mem;
        for i in 0..1024u64 {
            mem.write_gpa(gfn * 4096 + i * 4, &M.to_le_bytes()).unwrap();
        }
        assert_eq!(env.expand_array(gfn), 0);
        g.pages.push(gfn * 4096);
    }

    fn unmask(env: &mut FakeEnv, g: &GuestFifo, port: u32) {
        if g.guest_unmask(&mut env.dom(0).mem, port) {
            assert_eq!(env.unmask(port), 0);
        }
    }

    fn consume(env: &mut FakeEnv, g: &mut GuestFifo, v: u32) -> Vec<u32> {
        let fd = env.dom(0);
        g.consume(fd.evtchn.shared_info_mut(), &mut fd.mem, v)
    }

    #[test]
    fn fifo_port_limits() {
        // max_evtchn_port above 4095 is honoured once FIFO is on.
        let mut env = FakeEnv::new();
        env.add(0, 5000, true, 1, 16);
        for p in 1..4096 {
            assert_eq!(env.bind_ipi(0), (0, p));
        }
        assert_eq!(env.bind_ipi(0).0, ENOSPC, "2-level: 4096 ports");
        assert_eq!(env.init_control(1, 0, 0).0, 0);
        for p in 4096..=5000 {
            assert_eq!(env.bind_ipi(0), (0, p));
        }
        assert_eq!(env.bind_ipi(0).0, ENOSPC, "max_evtchn_port");
        // And the whole FIFO space is 131072 ports.
        let mut env = FakeEnv::new();
        env.add(0, u32::MAX, true, 1, 16);
        assert_eq!(env.init_control(1, 0, 0).0, 0);
        for p in 1..131_072 {
            assert_eq!(env.alloc_unbound(SELF, 0), (0, p));
        }
        assert_eq!(env.alloc_unbound(SELF, 0).0, ENOSPC);
        assert_eq!(env.dom(0).evtchn.valid_evtchns(), 131_072);
    }

    #[test]
    fn init_control_once_per_vcpu() {
        let (mut env, _) = fifo_env();
        assert_eq!(
            env.init_control(5, 0, 0).0,
            EINVAL,
            "vCPU 0 already has one"
        );
        assert_eq!(env.init_control(5, 0, 2).0, ENOENT);
        // Ports above 4096 are now allocatable.
        assert_eq!(env.dom(0).evtchn.max_evtchns(), 131072);
    }

    #[test]
    fn send_links_and_raises_once() {
        let (mut env, mut g) = fifo_env();
        let (_, a) = env.bind_ipi(0);
        let (_, b) = env.bind_ipi(0);
        unmask(&mut env, &g, a);
        unmask(&mut env, &g, b);
        assert_eq!(env.send(a), 0);
        let mem = &env.dom(0).mem;
        assert_eq!(g.word_val(mem, a), P | L);
        assert_eq!(GuestFifo::read(mem, 4096 + 8 + 7 * 4), a, "head[7]");
        assert_eq!(GuestFifo::read(mem, 4096), 1 << 7, "ready");
        assert_eq!(env.upcalls, [(0, 0)]);
        assert_eq!(env.send(b), 0);
        let mem = &env.dom(0).mem;
        assert_eq!(g.word_val(mem, a), P | L | b, "tail links to b");
        assert_eq!(env.upcalls.len(), 1, "appended to a non-empty queue");
        assert_eq!(consume(&mut env, &mut g, 0), [a, b]);
        let mem = &env.dom(0).mem;
        assert_eq!(g.word_val(mem, a), 0);
        assert_eq!(g.word_val(mem, b), 0);
        // Queue empty, the stale tail is not LINKED: the next event is the head again.
        env.send(b);
        let mem = &env.dom(0).mem;
        assert_eq!(GuestFifo::read(mem, 4096 + 8 + 7 * 4), b);
        assert_eq!(env.upcalls, [(0, 0), (0, 0)]);
    }

    #[test]
    fn masked_event_pends_until_unmask() {
        let (mut env, mut g) = fifo_env();
        let (_, a) = env.bind_ipi(1);
        env.send(a);
        assert_eq!(g.word_val(&env.dom(0).mem, a), P | M);
        assert!(env.upcalls.is_empty());
        assert_eq!(env.pollers, [(0, a)], "a masked event still wakes pollers");
        unmask(&mut env, &g, a);
        assert_eq!(g.word_val(&env.dom(0).mem, a), P | L);
        assert_eq!(env.upcalls, [(0, 1)]);
        assert_eq!(consume(&mut env, &mut g, 1), [a]);
        // Masked again by the guest: the next event only pends.
        g.guest_mask(&mut env.dom(0).mem, a);
        env.send(a);
        assert_eq!(g.word_val(&env.dom(0).mem, a), P | M);
        assert_eq!(env.upcalls.len(), 1);
    }

    #[test]
    fn port_reuse_blocked_while_linked() {
        let (mut env, mut g) = fifo_env();
        let (_, a) = env.bind_ipi(0);
        unmask(&mut env, &g, a);
        env.send(a);
        assert_eq!(env.close(a), 0);
        // Pending cleared, still LINKED: not handed out again.
        assert_eq!(g.word_val(&env.dom(0).mem, a), L);
        assert_eq!(env.alloc_unbound(SELF, 0), (0, a + 1));
        // The guest unlinks it (and ignores it: not pending).
        assert_eq!(consume(&mut env, &mut g, 0), []);
        assert_eq!(env.alloc_unbound(SELF, 0), (0, a));
    }

    #[test]
    fn priorities() {
        let (mut env, mut g) = fifo_env();
        let (_, a) = env.bind_ipi(0);
        let (_, b) = env.bind_ipi(0);
        unmask(&mut env, &g, a);
        unmask(&mut env, &g, b);
        assert_eq!(env.set_priority(100_000, 3), EINVAL);
        assert_eq!(env.set_priority(63, 3), EACCES, "free port");
        assert_eq!(env.set_priority(0, 3), EACCES, "reserved port");
        assert_eq!(env.set_priority(b, 16), EINVAL);
        assert_eq!(env.set_priority(b, 3), 0);
        env.send(a);
        env.send(b);
        let mem = &env.dom(0).mem;
        assert_eq!(GuestFifo::read(mem, 4096), (1 << 7) | (1 << 3));
        assert_eq!(GuestFifo::read(mem, 4096 + 8 + 3 * 4), b);
        // A new ready bit, but upcall_pending was still set: no second upcall.
        assert_eq!(env.upcalls.len(), 1);
        // Higher priority (lower number) first.
        assert_eq!(consume(&mut env, &mut g, 0), [b, a]);
    }

    #[test]
    fn event_to_vcpu_without_control_block_is_dropped() {
        let mut env = FakeEnv::new();
        env.add(0, u32::MAX, true, 2, 16);
        assert_eq!(env.init_control(1, 0, 0).0, 0);
        let (_, a) = env.bind_ipi(1);
        let mut g = GuestFifo::new(2);
        g.cb = vec![4096];
        assert_eq!(env.expand_array(3), 0);
        g.pages.push(3 * 4096);
        env.send(a);
        assert_eq!(g.word_val(&env.dom(0).mem, a), 0);
        assert!(env.upcalls.is_empty());
    }

    #[test]
    fn events_wait_for_their_event_array_page() {
        let (mut env, mut g) = fifo_env();
        // Ports 1..=1024: port 1024 is on the second page, not added yet.
        let ports: Vec<u32> = (0..1024).map(|_| env.bind_ipi(0).1).collect();
        let last = *ports.last().unwrap();
        assert_eq!(last, 1024);
        env.send(last);
        assert!(env.dom(0).evtchn.channel(last).unwrap().fifo_pending);
        // The new page is unmasked (zeroed) here: the event is linked on expand.
        assert_eq!(env.expand_array(4), 0);
        g.pages.push(4 * 4096);
        assert_eq!(g.word_val(&env.dom(0).mem, last), P | L);
        assert_eq!(env.upcalls, [(0, 0)]);
        assert_eq!(consume(&mut env, &mut g, 0), [last]);
    }

    #[test]
    fn expand_array_limits() {
        let (mut env, _) = fifo_env();
        assert_eq!(env.expand_array(1 << 40), EINVAL);
        assert_eq!(env.expand_array(u64::MAX), EINVAL);
        for gfn in 4..131 {
            assert_eq!(env.expand_array(gfn), 0, "page {gfn}");
        }
        assert_eq!(env.expand_array(200), ENOSPC);
        assert_eq!(env.dom(0).evtchn.fifo().unwrap().num_evtchns(), 131072);
    }

    #[test]
    fn two_level_pending_carries_over() {
        let mut env = FakeEnv::new();
        env.add(0, u32::MAX, true, 1, 16);
        let (_, a) = env.bind_ipi(0);
        let (_, b) = env.bind_ipi(0);
        env.send(b);
        assert_eq!(env.upcalls.len(), 1);
        assert_eq!(env.init_control(1, 0, 0).0, 0);
        let mut g = GuestFifo::new(1);
        g.cb = vec![4096];
        // A zeroed (unmasked) first page: b's carried-over event is linked.
        assert_eq!(env.expand_array(2), 0);
        g.pages.push(2 * 4096);
        let mem = &env.dom(0).mem;
        assert_eq!(g.word_val(mem, a), 0);
        assert_eq!(g.word_val(mem, b), P | L);
        // upcall_pending was still set from the 2-level event: no new upcall.
        assert_eq!(env.upcalls.len(), 1);
        assert_eq!(consume(&mut env, &mut g, 0), [b]);
    }

    #[test]
    fn guest_races_on_the_tail_word() {
        let (mut env, g) = fifo_env();
        let (_, a) = env.bind_ipi(0);
        let (_, b) = env.bind_ipi(0);
        unmask(&mut env, &g, a);
        unmask(&mut env, &g, b);
        env.send(a);
        // The guest unlinks a (without consuming the ready bit) before b arrives:
        // b must become the new head, not a link from a dead tail.
        let w = g.word(a);
        guest_bits::update_u32(&mut env.dom(0).mem, w, |x| x & !(L | EVTCHN_FIFO_LINK_MASK))
            .unwrap();
        env.send(b);
        let mem = &env.dom(0).mem;
        assert_eq!(GuestFifo::read(mem, 4096 + 8 + 7 * 4), b);
        assert_eq!(g.word_val(mem, a), P);
    }

    #[test]
    fn unmapped_pages_only_hurt_the_guest() {
        let (mut env, _) = fifo_env();
        let (_, a) = env.bind_ipi(0);
        env.dom(0).mem.holes.extend([1, 3]);
        assert_eq!(env.send(a), 0);
        assert_eq!(env.unmask(a), 0);
        assert_eq!(env.close(a), 0);
        assert!(env.upcalls.is_empty());
    }

    /// The seed's hibernation story: the boot kernel of a FIFO-permitted
    /// domain switches to FIFO; EVTCHNOP_reset returns it to 2-level for the
    /// resumed kernel; a domain without the flag never leaves 2-level.
    #[test]
    fn hibernation_story() {
        let (mut env, _) = fifo_env();
        let (_, a) = env.bind_ipi(0);
        assert!(env.dom(0).evtchn.is_fifo());
        // The resume kernel (2-level) resets event channels first.
        assert_eq!(env.reset(SELF), 0);
        assert!(!env.dom(0).evtchn.is_fifo());
        assert_eq!(env.dom(0).evtchn.max_evtchns(), 4096);
        assert_eq!(env.set_priority(a, 3), ENOSYS, "2-level again");
        assert_eq!(env.expand_array(9), EOPNOTSUPP);
        // 2-level delivery works again.
        let (_, p) = env.bind_ipi(0);
        assert_eq!(p, 1);
        env.send(p);
        let fd = env.dom(0);
        assert!(fd.evtchn.shared_info().pending_bit(&fd.mem, p).unwrap());
        // And the domain may switch to FIFO again later.
        assert_eq!(env.init_control(1, 0, 0).0, 0);

        // Domain 1 was created without XEN_DOMCTL_CDF_evtchn_fifo.
        env.as_caller(1);
        assert_eq!(env.init_control(1, 0, 0).0, ENOSYS);
        assert_eq!(env.expand_array(1), ENOSYS);
        assert_eq!(env.set_priority(1, 7), ENOSYS);
        assert_eq!(env.set_priority(100_000, 99), ENOSYS);
        assert!(!env.dom(1).evtchn.is_fifo());
        let (_, p) = env.bind_ipi(0);
        env.send(p);
        let fd = env.dom(1);
        assert!(fd.evtchn.shared_info().pending_bit(&fd.mem, p).unwrap());
        assert_eq!(env.reset(SELF), 0);
        assert_eq!(env.init_control(1, 0, 0).0, ENOSYS);
    }

    #[test]
    fn gate_comes_before_the_argument() {
        let mut env = FakeEnv::new();
        env.add(1, 1023, false, 1, 16).as_caller(1);
        let mut args = core::mem::replace(&mut env.args, FakeMemory::new(0));
        for cmd in [
            EVTCHNOP_init_control,
            EVTCHNOP_expand_array,
            EVTCHNOP_set_priority,
        ] {
            assert_eq!(
                do_event_channel_op(&mut env, &mut args, cmd, 1 << 40),
                ENOSYS
            );
        }
        // A permitted domain reads its argument first.
        env.add(2, 1023, true, 1, 16).as_caller(2);
        for cmd in [
            EVTCHNOP_init_control,
            EVTCHNOP_expand_array,
            EVTCHNOP_set_priority,
        ] {
            assert_eq!(
                do_event_channel_op(&mut env, &mut args, cmd, 1 << 40),
                EFAULT
            );
        }
    }
}

#[cfg(not(feature = "evtchn-fifo"))]
mod fifo_compiled_out {
    use super::*;

    #[test]
    fn ops_answer_like_xen_421_without_config_evtchn_fifo() {
        let mut env = FakeEnv::new();
        // Even a domain asking for FIFO gets none.
        env.add(0, u32::MAX, true, 1, 16);
        assert!(!env.dom(0).evtchn.fifo_permitted());
        assert_eq!(env.init_control(1, 0, 0).0, EOPNOTSUPP);
        assert_eq!(env.init_control(1, 4, 99).0, EOPNOTSUPP);
        assert_eq!(env.expand_array(1), EOPNOTSUPP);
        let (_, p) = env.bind_ipi(0);
        assert_eq!(env.set_priority(100_000, 7), EINVAL);
        assert_eq!(env.set_priority(p, 7), ENOSYS);
        assert_eq!(env.set_priority(63, 7), ENOSYS);
        let _ = EACCES;
        // The argument is still read first.
        let mut args = core::mem::replace(&mut env.args, FakeMemory::new(0));
        for cmd in [
            EVTCHNOP_init_control,
            EVTCHNOP_expand_array,
            EVTCHNOP_set_priority,
        ] {
            assert_eq!(
                do_event_channel_op(&mut env, &mut args, cmd, 1 << 40),
                EFAULT
            );
        }
        assert!(!env.dom(0).evtchn.is_fifo());
    }
}
