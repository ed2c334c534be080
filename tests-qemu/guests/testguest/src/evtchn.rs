//! Scenario 3, event channels across domains: dom0 ↔ domU ping-pong of N
//! events per domU; a domU without `evtchn_fifo` gets `-ENOSYS` from
//! `EVTCHNOP_init_control` and runs 2-level; one with it runs FIFO (priorities,
//! `expand_array`); the per-vCPU upcall vector works only where permitted
//! (`XEN_DOMCTL_CDF_evtchn_upcall`, CPUID base+4 `UPCALL_VECTOR`).
//!
//! Port protocol (no xenstore): dom0 allocates one unbound port per domU, in
//! the order of `domus=`; each domU is told dom0's port with `peer_port=` and
//! binds it, retrying until dom0 has allocated it.

use guest_rt::evtchn::{self, Abi, Upcall};
use guest_rt::report::{check, done, expect_eq, measure};
use guest_rt::xen::{self, cpuid, hypercall_ptr, rdtsc};
use guest_rt::{println, Boot};
use xen_public_abi::event_channel::EVTCHNSTAT_interdomain;
use xen_public_abi::hvm::hvm_op::{xen_hvm_evtchn_upcall_vector, HVMOP_set_evtchn_upcall_vector};
use xen_public_abi::sched::SHUTDOWN_poweroff;
use xen_public_abi::xen::{__HYPERVISOR_hvm_op, DOMID_SELF};

use crate::dom0;

const S: &str = "evtchn";
const ENOSYS: i64 = -38;

fn setup_or_fail(who: &str, how: Upcall, try_fifo: bool) -> (Abi, i64) {
    match evtchn::setup(how, try_fifo) {
        Ok(r) => {
            guest_rt::info!("evtchn: {} uses {:?} (init_control rc {})", who, r.0, r.1);
            r
        }
        Err((what, rc)) => {
            check(
                S,
                "setup",
                false,
                format_args!("{}: {} failed: {}", who, what, rc),
            );
            (Abi::TwoLevel, rc)
        }
    }
}

pub fn dom0(boot: &Boot) -> ! {
    let rounds = boot.arg_u64("rounds", 32) as u32;
    let wait = boot.arg_u64("wait", 200_000);
    let (abi, _) = setup_or_fail("dom0", Upcall::CallbackVector, true);
    let mut ports = [(0u16, 0u32); 4];
    let mut n = 0;
    for d in boot.arg("domus").unwrap_or("").split(',') {
        let Some(domid) = guest_rt::parse_u64(d) else {
            continue;
        };
        if n == ports.len() {
            break;
        }
        match evtchn::alloc_unbound(DOMID_SELF, domid as u16) {
            Ok(p) => {
                println!("evtchn: dom0 port {} for d{}", p, domid);
                evtchn::ensure_port(p);
                evtchn::unmask(p);
                ports[n] = (domid as u16, p);
                n += 1;
            }
            Err(rc) => check(
                S,
                "alloc-unbound",
                false,
                format_args!("d{}: {}", domid, rc),
            ),
        }
    }
    println!("evtchn: dom0 runs {:?}", abi);
    for &(domid, port) in &ports[..n] {
        // Bound, and the domU's "ready" event (sent once it has discarded the
        // notification its bind raised on its own port).
        let bound = evtchn::wait_until(
            || evtchn::status(port) == Ok(EVTCHNSTAT_interdomain) && evtchn::received(port) >= 1,
            wait,
        );
        let name = crate::hello::cat_name("bound-d", domid);
        check(
            S,
            &name,
            bound,
            format_args!("d{} never bound port {}", domid, port),
        );
        if !bound {
            continue;
        }
        // Strict alternation: one event in flight each way, so nothing coalesces.
        let base = evtchn::without_interrupts(|| evtchn::received(port));
        // Exit and injection counters from here (the bench divides the printed
        // ones by `rounds`).
        let keys = dom0::debug_keys(b"P");
        let t0 = rdtsc();
        let mut got = 0;
        for i in 1..=rounds {
            evtchn::send(port);
            if !evtchn::wait_until(|| evtchn::received(port) >= base + i, wait) {
                break;
            }
            got = i;
        }
        let cycles = (rdtsc() - t0) / rounds.max(1) as u64;
        let keys = keys.min(dom0::debug_keys(b"p"));
        println!(
            "evtchn: perfc above: d{} ping-pong, {} round trips",
            domid, got
        );
        expect_eq(S, &crate::hello::cat_name("debug-keys-d", domid), keys, 0);
        let name = crate::hello::cat_name("ping-pong-d", domid);
        check(
            S,
            &name,
            got == rounds,
            format_args!("{} of {} round trips with d{}", got, rounds, domid),
        );
        measure(
            &crate::hello::cat_name("round-trip-cycles-d", domid),
            cycles,
            "tsc-cycles",
        );
    }
    for &(domid, _) in &ports[..n] {
        let name = crate::hello::cat_name("clean-exit-d", domid);
        match dom0::wait_stopped(domid, wait) {
            Some(i) => expect_eq(S, &name, i.code() as i64, SHUTDOWN_poweroff as i64),
            None => check(S, &name, false, format_args!("d{} never stopped", domid)),
        }
    }
    done(S);
    xen::shutdown(SHUTDOWN_poweroff)
}

fn per_vcpu_vector_rc() -> i64 {
    let mut v = xen_hvm_evtchn_upcall_vector {
        vcpu: 0,
        vector: guest_rt::idt::UPCALL_VECTOR,
        _implicit0: [0; 3],
    };
    hypercall_ptr(
        __HYPERVISOR_hvm_op,
        HVMOP_set_evtchn_upcall_vector as u64,
        &mut v,
    )
}

/// FIFO priorities: two IPI ports, the low-priority one raised first; the
/// high-priority one must be handled first.
fn fifo_priorities() {
    let (Ok(low), Ok(high)) = (evtchn::bind_ipi(0), evtchn::bind_ipi(0)) else {
        check(S, "fifo-priority", false, format_args!("bind_ipi failed"));
        return;
    };
    evtchn::ensure_port(low.max(high));
    let rl = evtchn::set_priority(low, 15);
    let rh = evtchn::set_priority(high, 0);
    evtchn::unmask(low);
    evtchn::unmask(high);
    let mut order = [0u32; 64];
    let n = evtchn::without_interrupts(|| {
        evtchn::clear_order();
        evtchn::send(low);
        evtchn::send(high);
        evtchn::handle_events();
        evtchn::order(&mut order)
    });
    check(
        S,
        "fifo-priority",
        rl == 0 && rh == 0 && n >= 2 && order[0] == high && order[1] == low,
        format_args!(
            "set_priority {} {}, handled {:?} (low {}, high {})",
            rl,
            rh,
            &order[..n.min(4)],
            low,
            high
        ),
    );
    let rc = evtchn::expand_array();
    check(
        S,
        "expand-array",
        rc == 0 && evtchn::array_pages() == 2,
        format_args!("expand_array {} pages {}", rc, evtchn::array_pages()),
    );
}

pub fn domu(boot: &Boot) -> ! {
    let domid = boot.arg_u64("domid", 1) as u16;
    let rounds = boot.arg_u64("rounds", 32) as u32;
    let wait = boot.arg_u64("wait", 200_000);
    let peer = boot.arg_u64("peer_port", 1) as u32;
    let want_fifo = boot.arg("expect") == Some("fifo");
    let per_vcpu = boot.arg("upcall") == Some("pervcpu");
    let who = crate::hello::cat_name("d", domid);

    let base = boot.xen_base.unwrap_or(0x4000_0000);
    let flag = cpuid(base + 4, 0)[0] & (1 << 6) != 0;
    check(
        S,
        "cpuid-flag",
        flag == per_vcpu,
        format_args!("UPCALL_VECTOR flag {} (permitted: {})", flag, per_vcpu),
    );
    if !per_vcpu {
        expect_eq(S, "vector-refused", per_vcpu_vector_rc(), ENOSYS);
    }
    let how = if per_vcpu {
        Upcall::PerVcpu
    } else {
        Upcall::CallbackVector
    };
    let (abi, init_rc) = setup_or_fail("domU", how, true);
    if want_fifo {
        check(
            S,
            "fifo",
            abi == Abi::Fifo,
            format_args!("init_control {}", init_rc),
        );
        if abi == Abi::Fifo {
            fifo_priorities();
        }
    } else {
        expect_eq(S, "init-control-enosys", init_rc, ENOSYS);
        check(
            S,
            "fallback-2level",
            abi == Abi::TwoLevel,
            format_args!("{:?}", abi),
        );
    }

    let local = bind_dom0_port(S, &who, peer, wait);
    if !want_fifo {
        expect_eq(S, "priority-enosys", evtchn::set_priority(local, 7), ENOSYS);
    }
    evtchn::ensure_port(local);
    evtchn::unmask(local);
    guest_rt::info!(
        "evtchn: d{} bound local port {} to dom0 port {}",
        domid,
        local,
        peer
    );
    // Xen raises the local port of a fresh interdomain binding: discard that
    // notification, then tell dom0 we are ready (its first event from us).
    let base = evtchn::without_interrupts(|| {
        evtchn::clear_pending(local);
        evtchn::received(local)
    });
    evtchn::send(local);
    let mut got = 0;
    for i in 1..=rounds {
        if !evtchn::wait_until(|| evtchn::received(local) >= base + i, wait) {
            break;
        }
        got = i;
        evtchn::send(local);
    }
    check(
        S,
        "pong",
        got == rounds,
        format_args!("{} of {} events received", got, rounds),
    );
    guest_rt::info!(
        "evtchn: d{} done after {} upcalls",
        domid,
        evtchn::upcalls()
    );
    guest_rt::report::domu_exit(S, &who, SHUTDOWN_poweroff)
}

/// A domU binds dom0's `peer` port, yielding between tries (up to `wait`)
/// while dom0 has not allocated it yet; one that never gets it reports the
/// failure under scenario `s` and exits.
pub fn bind_dom0_port(s: &str, who: &str, peer: u32, wait: u64) -> u32 {
    for _ in 0..wait {
        if let Ok(p) = evtchn::bind_interdomain(0, peer) {
            return p;
        }
        xen::yield_now();
    }
    check(
        s,
        "bind",
        false,
        format_args!("dom0 port {} never bindable", peer),
    );
    guest_rt::report::domu_exit(s, who, SHUTDOWN_poweroff)
}
