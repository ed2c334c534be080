//! XSA-shaped regression tests: the event-channel races and misuses that Xen
//! security advisories were about, replayed against this hypervisor at host
//! level. Where Xen's bug needed two CPUs, the interleaving is made with a
//! preempted hypercall (a continuation): another domain's calls run between two
//! entries of the first one, exactly where a second CPU could have run them.
//!
//! - XSA-342/343/344 shapes: `EVTCHNOP_reset` of a FIFO domain racing with
//!   sends from a peer (to ports already closed and not yet closed), with new
//!   bindings and with FIFO linking (`expand_array`, `set_priority`).
//! - XSA-188: `EVTCHNOP_init_control` misuse (a failing first call, a second
//!   call for the same vCPU, calls after a reset): no half-built FIFO state.
//! - XSA-317: port exhaustion (allocation up to `max_evtchn_port` and past it,
//!   from the domain and from dom0), then reuse and reset.
//!
//! After every step the same consistency check as the fuzzer's runs: both ends
//! of each interdomain channel point at each other.

// Two of the three tests need FIFO; without it their helpers go unused.
#![cfg_attr(not(feature = "evtchn-fifo"), allow(dead_code, unused_imports))]

use alloc::boxed::Box;
use alloc::sync::Arc;

use xen_public_abi::domctl::XEN_DOMCTL_CDF_evtchn_fifo;
use xen_public_abi::event_channel::*;
use xen_public_abi::xen::{__HYPERVISOR_event_channel_op, domid_t, DOMID_SELF};
use xen_public_abi::{DomId, Errno};
use zerocopy::{FromZeros, Immutable, IntoBytes};

use super::dispatch::XenExt;
use super::domctl::create_vcpus;
use super::event_channel::ChannelState;
use super::guest_access::fake::FakeMachine;
use super::hypercall::{do_hypercall, hypercall_entry, Caller, HypercallOutcome, HypercallRegs};
use super::memory::P2mAccess;
use super::test_support::*;

const SHINFO_GFN: u64 = 0x100;
/// RAM gfns of each domU (backed by fake machine frames 0x5000 + ...).
const RAM_GFN: u64 = 0x10;
const EINVAL: i64 = Errno::EINVAL.as_ret();
const ENOSPC: i64 = Errno::ENOSPC.as_ret();
const EBUSY: i64 = Errno::EBUSY.as_ret();

struct World {
    env: Env,
    ext: XenExt,
    machine: Arc<FakeMachine>,
}

impl World {
    fn new() -> World {
        let machine = Arc::new(FakeMachine::default());
        let env = Env::new();
        let ext = XenExt::new(machine.clone(), Box::new(env.clock.clone()));
        World { env, ext, machine }
    }

    /// A running domU, 2 vCPUs, `max_port`, shared_info mapped, 8 RAM pages.
    fn domu(&mut self, flags: u32, max_port: u32) -> domid_t {
        let mut cfg = baseline();
        cfg.flags |= flags;
        cfg.max_vcpus = 2;
        cfg.max_evtchn_port = max_port;
        let (rc, id) = self.env.create(&cfg, 0);
        assert_eq!(rc, 0);
        let d = self.env.hv.domains.get_mut(id).unwrap();
        create_vcpus(d, &mut super::hypercall::NoExt).unwrap();
        for v in d.vcpus.iter_mut() {
            v.online = true;
        }
        for g in 0..8 {
            let mfn = 0x5000 + u64::from(id) * 0x100 + g;
            d.hvm
                .p2m
                .set_host_entry(RAM_GFN + g, mfn, P2mAccess::RWX)
                .unwrap();
        }
        hook_shared_info(d, &*self.machine, SHINFO_GFN);
        id
    }

    fn evtchn<T: IntoBytes + Immutable>(&mut self, domid: domid_t, cmd: u32, arg: &T) -> i64 {
        self.env.put(ARG_GVA, arg);
        do_hypercall(
            &mut self.env.hv,
            &mut self.ext,
            Caller { domid, vcpu: 0 },
            __HYPERVISOR_event_channel_op.into(),
            [cmd.into(), ARG_GVA, 0, 0, 0],
            &mut self.env.mem,
        )
    }

    /// An interdomain channel a ↔ b; returns (port in a, port in b).
    fn connect(&mut self, a: domid_t, b: domid_t) -> (u32, u32) {
        let mut au = evtchn_alloc_unbound::new_zeroed();
        au.dom = DOMID_SELF;
        au.remote_dom = b;
        assert_eq!(self.evtchn(a, EVTCHNOP_alloc_unbound, &au), 0);
        let pa = self.env.get::<evtchn_alloc_unbound>(ARG_GVA).port;
        let mut bi = evtchn_bind_interdomain::new_zeroed();
        bi.remote_dom = a;
        bi.remote_port = pa;
        assert_eq!(self.evtchn(b, EVTCHNOP_bind_interdomain, &bi), 0);
        (
            pa,
            self.env.get::<evtchn_bind_interdomain>(ARG_GVA).local_port,
        )
    }

    fn fifo_on(&mut self, d: domid_t) {
        for vcpu in 0..2 {
            let mut ic = evtchn_init_control::new_zeroed();
            ic.control_gfn = RAM_GFN + u64::from(vcpu);
            ic.vcpu = vcpu;
            assert_eq!(self.evtchn(d, EVTCHNOP_init_control, &ic), 0);
        }
        let ea = evtchn_expand_array {
            array_gfn: RAM_GFN + 2,
        };
        assert_eq!(self.evtchn(d, EVTCHNOP_expand_array, &ea), 0);
        assert!(self.env.hv.domains.get(d).unwrap().evtchn.is_fifo());
    }

    fn send(&mut self, d: domid_t, port: u32) -> i64 {
        self.evtchn(d, EVTCHNOP_send, &evtchn_send { port })
    }

    fn bound(&self, d: domid_t) -> usize {
        let e = &self.env.hv.domains.get(d).unwrap().evtchn;
        (1..e.valid_evtchns())
            .filter(|&p| e.channel(p).unwrap().usable())
            .count()
    }

    /// Both ends of every interdomain channel point at each other.
    fn consistent(&self) {
        for id in self.env.hv.domains.ids() {
            let e = &self.env.hv.domains.get(id).unwrap().evtchn;
            for p in 0..e.valid_evtchns() {
                if let ChannelState::Interdomain {
                    remote_dom,
                    remote_port,
                } = e.channel(p).unwrap().state
                {
                    let back = self
                        .env
                        .hv
                        .domains
                        .get(remote_dom.0)
                        .and_then(|r| r.evtchn.channel(remote_port))
                        .map(|c| c.state);
                    assert_eq!(
                        back,
                        Some(ChannelState::Interdomain {
                            remote_dom: DomId(id),
                            remote_port: p
                        }),
                        "d{id} p{p}"
                    );
                }
            }
        }
    }
}

/// XSA-342/343/344 shape: a FIFO domain resets its event channels while a peer
/// keeps sending, binds and the domain links events. The reset is preempted
/// (a continuation) and the peer's calls run between its entries.
#[test]
#[cfg(feature = "evtchn-fifo")]
fn reset_racing_with_send_bind_and_fifo_link() {
    let mut w = World::new();
    let a = w.domu(XEN_DOMCTL_CDF_evtchn_fifo, 1023);
    let b = w.domu(0, 1023);
    w.fifo_on(a);
    // 150 channels a ↔ b, spread over three buckets of a.
    let mut pairs = alloc::vec::Vec::new();
    for _ in 0..150 {
        pairs.push(w.connect(a, b));
    }
    // Some events linked on a's queues before the reset.
    for &(_, pb) in pairs.iter().take(20) {
        assert_eq!(w.send(b, pb), 0);
    }
    w.env.put(ARG_GVA, &evtchn_reset { dom: DOMID_SELF });
    let mut regs = HypercallRegs {
        rax: __HYPERVISOR_event_channel_op.into(),
        args: [EVTCHNOP_reset.into(), ARG_GVA, 0, 0, 0],
    };
    let mut entries = 0;
    loop {
        entries += 1;
        let out = hypercall_entry(
            &mut w.env.hv,
            &mut w.ext,
            Caller { domid: a, vcpu: 0 },
            regs.rax,
            regs.args,
            &mut w.env.mem,
        );
        if out.apply(&mut regs) {
            break;
        }
        assert!(matches!(out, HypercallOutcome::Continue(_)));
        // Between two entries: b sends on every channel (some of a's ends are
        // closed already: b's end is unbound then and the send is dropped), a
        // and b make new channels, a links events and sets priorities, a second
        // reset is refused.
        for &(pa, pb) in &pairs {
            let rc = w.send(b, pb);
            assert!(rc == 0 || rc == EINVAL, "send d{b}p{pb}: {rc}");
            let sp = evtchn_set_priority {
                port: pa,
                priority: 3,
            };
            let rc = w.evtchn(a, EVTCHNOP_set_priority, &sp);
            assert!(rc <= 0);
        }
        let (pa, pb) = w.connect(a, b);
        assert_eq!(w.send(b, pb), 0);
        assert_eq!(w.send(a, pa), 0);
        let ea = evtchn_expand_array {
            array_gfn: RAM_GFN + 3,
        };
        let rc = w.evtchn(a, EVTCHNOP_expand_array, &ea);
        assert!(rc <= 0);
        let r = evtchn_reset { dom: DOMID_SELF };
        assert_eq!(w.evtchn(a, EVTCHNOP_reset, &r), EBUSY);
        w.env.put(ARG_GVA, &evtchn_reset { dom: DOMID_SELF });
        w.consistent();
    }
    assert_eq!(regs.rax, 0);
    assert!(entries > 1, "the reset was preempted");
    // a is back on 2-level; every channel of a that existed at the end is
    // consistent with b; sends still work on fresh channels.
    assert!(!w.env.hv.domains.get(a).unwrap().evtchn.is_fifo());
    w.consistent();
    let (pa, pb) = w.connect(a, b);
    assert_eq!(w.send(b, pb), 0);
    assert_eq!(w.send(a, pa), 0);
    // A second reset leaves nothing bound.
    let r = evtchn_reset { dom: DOMID_SELF };
    assert_eq!(w.evtchn(a, EVTCHNOP_reset, &r), 0);
    assert_eq!(w.bound(a), 0);
    w.consistent();
}

/// XSA-188 shape: `init_control` misuse leaves no half-built FIFO state: a
/// failing first call keeps the domain on 2-level (and sends work), a second
/// call for the same vCPU is refused, a call after a reset starts afresh.
#[test]
#[cfg(feature = "evtchn-fifo")]
fn init_control_misuse() {
    let mut w = World::new();
    let a = w.domu(XEN_DOMCTL_CDF_evtchn_fifo, 1023);
    let b = w.domu(0, 1023);
    let (_, pb) = w.connect(a, b);
    for (gfn, offset, vcpu) in [
        (0xdead_0000, 0, 0),    // no such page
        (RAM_GFN, 4095, 0),     // control block past the page end
        (RAM_GFN, 3, 0),        // misaligned
        (RAM_GFN, 0, 7),        // no such vCPU
        (RAM_GFN, 0, u32::MAX), // no such vCPU
    ] {
        let mut ic = evtchn_init_control::new_zeroed();
        ic.control_gfn = gfn;
        ic.offset = offset;
        ic.vcpu = vcpu;
        let rc = w.evtchn(a, EVTCHNOP_init_control, &ic);
        assert!(rc < 0, "{gfn:#x}/{offset}/{vcpu}: {rc}");
        assert!(!w.env.hv.domains.get(a).unwrap().evtchn.is_fifo());
        assert_eq!(w.send(b, pb), 0, "2-level delivery still works");
    }
    let mut ic = evtchn_init_control::new_zeroed();
    ic.control_gfn = RAM_GFN;
    assert_eq!(w.evtchn(a, EVTCHNOP_init_control, &ic), 0);
    assert!(w.env.hv.domains.get(a).unwrap().evtchn.is_fifo());
    // Again for the same vCPU (even with another page): refused, state kept.
    ic.control_gfn = RAM_GFN + 1;
    assert_eq!(w.evtchn(a, EVTCHNOP_init_control, &ic), EINVAL);
    assert!(w.env.hv.domains.get(a).unwrap().evtchn.is_fifo());
    // The event array, a send, then a reset and init_control again.
    let ea = evtchn_expand_array {
        array_gfn: RAM_GFN + 2,
    };
    assert_eq!(w.evtchn(a, EVTCHNOP_expand_array, &ea), 0);
    assert_eq!(w.send(b, pb), 0);
    let r = evtchn_reset { dom: DOMID_SELF };
    assert_eq!(w.evtchn(a, EVTCHNOP_reset, &r), 0);
    assert!(!w.env.hv.domains.get(a).unwrap().evtchn.is_fifo());
    ic.control_gfn = RAM_GFN + 4;
    assert_eq!(w.evtchn(a, EVTCHNOP_init_control, &ic), 0);
    w.consistent();
}

/// XSA-317 shape: ports up to `max_evtchn_port`, then `-ENOSPC` (from the
/// domain and from dom0 allocating in it), nothing half-allocated, ports reused
/// after close, a reset frees all.
#[test]
fn port_exhaustion() {
    let mut w = World::new();
    let max = 130; // three buckets, the last one partly usable
    let a = w.domu(0, max);
    let frames = w.env.frames.outstanding();
    let mut n = 0;
    loop {
        let rc = w.evtchn(a, EVTCHNOP_bind_ipi, &evtchn_bind_ipi { vcpu: 0, port: 0 });
        if rc != 0 {
            assert_eq!(rc, ENOSPC);
            break;
        }
        n += 1;
        assert!(n <= max, "more ports than max_evtchn_port");
    }
    assert_eq!(n, max, "ports 1..=max");
    let e = &w.env.hv.domains.get(a).unwrap().evtchn;
    assert!(e.channel(max + 1).is_none_or(|c| !c.usable()));
    // dom0 allocating in the full domain, and the domain's other binds.
    let mut au = evtchn_alloc_unbound::new_zeroed();
    au.dom = a;
    au.remote_dom = 0;
    assert_eq!(w.evtchn(0, EVTCHNOP_alloc_unbound, &au), ENOSPC);
    let bv = evtchn_bind_virq {
        virq: 1,
        vcpu: 0,
        port: 0,
    };
    assert_eq!(w.evtchn(a, EVTCHNOP_bind_virq, &bv), ENOSPC);
    // The refused calls bound nothing.
    assert_eq!(w.bound(a), max as usize);
    // A closed port is reused.
    assert_eq!(w.evtchn(a, EVTCHNOP_close, &evtchn_close { port: 77 }), 0);
    assert_eq!(
        w.evtchn(a, EVTCHNOP_bind_ipi, &evtchn_bind_ipi { vcpu: 0, port: 0 }),
        0
    );
    assert_eq!(w.env.get::<evtchn_bind_ipi>(ARG_GVA).port, 77);
    let r = evtchn_reset { dom: DOMID_SELF };
    assert_eq!(w.evtchn(a, EVTCHNOP_reset, &r), 0);
    assert_eq!(w.bound(a), 0);
    assert_eq!(w.env.frames.outstanding(), frames, "no frame kept");
}
