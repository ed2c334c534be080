//! Host benchmark: `EVTCHNOP_send` on an IPI port until the event is pending
//! in guest memory, for the 2-level and FIFO ABIs, with 64, 4096 and 131072
//! ports bound (2-level stops at 4096: that is its whole port space, and port 0
//! is reserved, so "4096" binds 4095 ports). Each iteration is one send through
//! `do_event_channel_op` plus the guest acknowledging the event (a few stores),
//! so every send takes the full "newly pending" path with an upcall.
//!
//! Run: `cargo bench -p hypervisor --bench evtchn_send`.

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion};
use hypervisor::common::event_channel::{
    do_event_channel_op, EvtchnDomain, EvtchnEnv, FIFO_BUILT_IN,
};
use hypervisor::common::guest_access::{GuestAccess, GuestMemory};
use std::time::Duration;
use xen_public_abi::event_channel::*;
use xen_public_abi::{DomId, Errno, XenResult};
use zerocopy::IntoBytes;

/// Flat guest memory from GPA 0 (and the hypercall-argument view).
struct Flat(Vec<u8>);

impl Flat {
    fn range(&self, a: u64, len: usize) -> XenResult<std::ops::Range<usize>> {
        let s = a as usize;
        let e = s.checked_add(len).ok_or(Errno::EFAULT)?;
        if e > self.0.len() {
            return Err(Errno::EFAULT);
        }
        Ok(s..e)
    }
}

impl GuestMemory for Flat {
    fn read_gpa(&self, gpa: u64, buf: &mut [u8]) -> XenResult<()> {
        let r = self.range(gpa, buf.len())?;
        buf.copy_from_slice(&self.0[r]);
        Ok(())
    }
    fn write_gpa(&mut self, gpa: u64, buf: &[u8]) -> XenResult<()> {
        let r = self.range(gpa, buf.len())?;
        self.0[r].copy_from_slice(buf);
        Ok(())
    }
    fn cmpxchg_u32(&mut self, gpa: u64, old: u32, new: u32) -> XenResult<u32> {
        let r = self.range(gpa, 4)?;
        let cur = u32::from_le_bytes(self.0[r.clone()].try_into().map_err(|_| Errno::EFAULT)?);
        if cur == old {
            self.0[r].copy_from_slice(&new.to_le_bytes());
        }
        Ok(cur)
    }
}

impl GuestAccess for Flat {
    fn copy_from_guest(&mut self, gva: u64, buf: &mut [u8]) -> XenResult<()> {
        self.read_gpa(gva, buf)
    }
    fn copy_to_guest(&mut self, gva: u64, buf: &[u8]) -> XenResult<()> {
        self.write_gpa(gva, buf)
    }
}

struct Env {
    evtchn: EvtchnDomain,
    mem: Flat,
    upcalls: u64,
}

impl EvtchnEnv for Env {
    fn caller(&self) -> DomId {
        DomId(1)
    }
    fn caller_is_privileged(&self) -> bool {
        false
    }
    fn domain_exists(&self, id: DomId) -> bool {
        id == DomId(1)
    }
    fn with_domain(
        &mut self,
        id: DomId,
        f: &mut dyn FnMut(&mut EvtchnDomain, &mut dyn GuestMemory),
    ) -> bool {
        if id != DomId(1) {
            return false;
        }
        f(&mut self.evtchn, &mut self.mem);
        true
    }
    fn controller_pause_count(&self, _: DomId) -> u32 {
        0
    }
    fn raise_upcall(&mut self, _: DomId, _: u32) {
        self.upcalls += 1;
    }
}

const SHINFO_GFN: u64 = 1;
const CB_GFN: u64 = 2;
const ARRAY_GFN: u64 = 4;
const ARG: u64 = 0x100;

fn op<T: IntoBytes + zerocopy::Immutable>(env: &mut Env, args: &mut Flat, cmd: u32, a: &T) -> i64 {
    args.write_gpa(ARG, a.as_bytes()).unwrap();
    do_event_channel_op(env, args, cmd, ARG)
}

/// A domain with `ports` IPI ports bound (ports 1..=ports), FIFO or 2-level.
fn setup(fifo: bool, ports: u32) -> (Env, Flat, u32) {
    let pages = ARRAY_GFN as usize + 130;
    let mut env = Env {
        evtchn: EvtchnDomain::new(u32::MAX, true, 1),
        mem: Flat(vec![0; pages * 4096]),
        upcalls: 0,
    };
    let mut args = Flat(vec![0; 4096]);
    env.evtchn
        .map_shared_info(&mut env.mem, Some(SHINFO_GFN))
        .unwrap();
    if fifo {
        let ic = evtchn_init_control {
            control_gfn: CB_GFN,
            offset: 0,
            vcpu: 0,
            link_bits: 0,
            _pad: [0; 7],
        };
        assert_eq!(op(&mut env, &mut args, EVTCHNOP_init_control, &ic), 0);
        let npages = ports.div_ceil(1024).max(1);
        for i in 0..u64::from(npages) {
            let ea = evtchn_expand_array {
                array_gfn: ARRAY_GFN + i,
            };
            assert_eq!(op(&mut env, &mut args, EVTCHNOP_expand_array, &ea), 0);
        }
    }
    let mut last = 0;
    for _ in 0..ports {
        args.write_gpa(ARG, evtchn_bind_ipi { vcpu: 0, port: 0 }.as_bytes())
            .unwrap();
        assert_eq!(
            do_event_channel_op(&mut env, &mut args, EVTCHNOP_bind_ipi, ARG),
            0
        );
        let mut b = [0u8; 8];
        args.read_gpa(ARG, &mut b).unwrap();
        last = u32::from_le_bytes(b[4..8].try_into().unwrap());
    }
    assert_eq!(last, ports);
    args.write_gpa(ARG, evtchn_send { port: last }.as_bytes())
        .unwrap();
    (env, args, last)
}

/// The guest acknowledges the event (what its upcall handler would clear).
fn ack(env: &mut Env, fifo: bool, port: u32) {
    let m = &mut env.mem.0;
    m[(SHINFO_GFN * 4096) as usize] = 0; // vcpu_info[0].evtchn_upcall_pending
    if fifo {
        let w = (ARRAY_GFN * 4096) as usize + port as usize * 4;
        m[w..w + 4].fill(0);
        let cb = (CB_GFN * 4096) as usize;
        m[cb..cb + 4].fill(0); // ready
    } else {
        let si = (SHINFO_GFN * 4096) as usize;
        m[si + 8..si + 16].fill(0); // evtchn_pending_sel
        let byte = si + 2048 + port as usize / 8;
        m[byte] &= !(1 << (port % 8));
    }
}

fn bench_send(c: &mut Criterion) {
    let mut g = c.benchmark_group("evtchn_send_to_pending");
    g.sample_size(50)
        .warm_up_time(Duration::from_millis(300))
        .measurement_time(Duration::from_secs(2));
    // (ABI, label, ports bound): "4096" and "131072" are whole port spaces,
    // so they bind all but the reserved port 0.
    let cases: &[(&str, bool, u32, u32)] = &[
        ("2-level", false, 64, 64),
        ("2-level", false, 4096, 4095),
        ("FIFO", true, 64, 64),
        ("FIFO", true, 4096, 4095),
        ("FIFO", true, 131_072, 131_071),
    ];
    for &(abi, fifo, label, ports) in cases {
        if fifo && !FIFO_BUILT_IN {
            continue;
        }
        let (mut env, mut args, port) = setup(fifo, ports);
        g.bench_with_input(BenchmarkId::new(abi, label), &port, |b, &port| {
            b.iter(|| {
                let rc = do_event_channel_op(&mut env, &mut args, EVTCHNOP_send, ARG);
                debug_assert_eq!(rc, 0);
                ack(&mut env, fifo, port);
                rc
            })
        });
        assert!(env.upcalls > 0, "sends reached the guest");
    }
    g.finish();
}

criterion_group!(benches, bench_send);
criterion_main!(benches);
