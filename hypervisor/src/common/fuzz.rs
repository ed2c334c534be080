//! The host fuzzer: seeded random sequences of hypercalls from several kinds of
//! domains through the wired dispatcher (`hypercall::do_hypercall` with
//! `dispatch::XenExt`, the fakes of `test_support`), with the hypervisor's
//! invariants checked after every call.
//!
//! Domains: dom0 (privileged), a plain 2-level domU, a FIFO-permitted domU with
//! the per-vCPU upcall flag, and domUs in altp2m mixed and external modes; each
//! domU has two vCPUs, eight RAM pages and its shared_info mapped. A step picks
//! a caller, a hypercall number (mostly the HVM ones, sometimes any 64-bit
//! value), a sub-op and arguments, and fills the caller's argument area with
//! "interesting" values (domain ids, ports, RAM gfns, small numbers, random
//! words; the altp2m and domctl headers right half the time so the calls get
//! past their version checks).
//!
//! After every call:
//! - no panic (a panic is reported with the seed and the step);
//! - RAX is never `-ERESTART` (a continuation never leaks to the guest);
//! - a refused call (negative errno) changed nothing observable: the domain
//!   table's summary, every machine frame, the frame count and the caller's
//!   memory (except the calls Xen itself leaves half-done, listed in
//!   [`partial_on_error`]);
//! - event channels are consistent: both ends of an interdomain channel point at
//!   each other, an unbound port names an existing domain, VIRQ ports are
//!   bound on the vCPU they notify, FIFO queues reachable from each vCPU's
//!   control block are acyclic;
//! - an unprivileged caller wrote no other domain's RAM except where events are
//!   delivered (its shared_info, FIFO control blocks and event arrays);
//! - at the end, after every domU is destroyed, the frame count is back where it
//!   was before they were built (no frame leaked).
//!
//! `cargo test -p hypervisor fuzz` runs a fixed list of seeds and the corpus
//! (`fuzz_corpus.txt`: seeds that once failed) in a few seconds;
//! `cargo xtask fuzz --minutes N` runs the ignored [`fuzz_long`] test with random
//! seeds until the time is up and prints a failing seed, which goes into the
//! corpus once fixed.

// Xen's names in match patterns.
#![allow(non_upper_case_globals)]

use alloc::boxed::Box;
use alloc::collections::{BTreeMap, BTreeSet};
use alloc::format;
use alloc::string::String;
use alloc::sync::Arc;
use alloc::vec::Vec;

use xen_public_abi::domctl::{
    xen_domctl_max_mem, XEN_DOMCTL_CDF_evtchn_fifo, XEN_DOMCTL_CDF_evtchn_upcall,
    XEN_DOMCTL_destroydomain, XEN_DOMCTL_max_mem, XEN_DOMCTL_unpausedomain,
    XEN_DOMCTL_INTERFACE_VERSION,
};
use xen_public_abi::event_channel::{
    EVTCHNOP_expand_array, EVTCHNOP_init_control, EVTCHNOP_reset, EVTCHNOP_reset_cont,
};
use xen_public_abi::hvm::hvm_op::{xen_hvm_param, HVMOP_altp2m, HVMOP_set_param};
use xen_public_abi::hvm::params::HVM_PARAM_ALTP2M;
use xen_public_abi::xen::{
    __HYPERVISOR_console_io, __HYPERVISOR_domctl, __HYPERVISOR_event_channel_op,
    __HYPERVISOR_grant_table_op, __HYPERVISOR_hvm_op, __HYPERVISOR_memory_op, domid_t,
};
use xen_public_abi::Errno;
use zerocopy::{FromZeros, IntoBytes};

use super::dispatch::XenExt;
use super::domctl::create_vcpus;
use super::event_channel::ChannelState;
use super::guest_access::fake::{FakeMachine, FakeMemory};
use super::guest_access::{GuestMemory, GuestRam};
use super::hypercall::{do_hypercall, Caller, NoExt};
use super::memory::P2mAccess;
use super::test_support::*;

/// A small seeded PRNG (SplitMix64): good enough to spread inputs, fully
/// reproducible from the seed.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        Rng(seed)
    }
    pub fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
    pub fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
    fn pick<T: Copy>(&mut self, xs: &[T]) -> T {
        xs[self.below(xs.len() as u64) as usize]
    }
    fn chance(&mut self, percent: u64) -> bool {
        self.below(100) < percent
    }
}

const SHINFO_GFN: u64 = 0x100;
const RAM_GFN: u64 = 0x10;
const RAM_PAGES: u64 = 8;
/// The caller's argument area and a list area (extent lists, pfn lists).
const ARG_LEN: usize = 0x200;
const LIST_GVA: u64 = 0x2000;
const LIST_LEN: usize = 0x1000;
/// The HVM hypercalls, weighted towards the ones with the most state.
const NUMBERS: [u32; 18] = [
    12, 12, 17, 18, 20, 20, 24, 29, 32, 32, 32, 32, 32, 32, 34, 34, 36, 36,
];

/// Calls that Xen itself may leave half-done when they fail (progress made
/// before the failing element stays): not subject to "refused means unchanged".
fn partial_on_error(nr: u32, cmd: u64) -> bool {
    match nr {
        // Console output is written chunk by chunk before a fault.
        __HYPERVISOR_console_io => true,
        // Batches: extents / pages done before the failing one stay done.
        __HYPERVISOR_memory_op => true,
        // set_mem_access_multi / set_suppress_ve_multi stop at the failing entry.
        __HYPERVISOR_hvm_op => cmd as u32 == HVMOP_altp2m,
        // A reset closes ports before it can fail (-EAGAIN); close of an
        // interdomain port reverts the peer first.
        __HYPERVISOR_event_channel_op => {
            cmd as u32 == EVTCHNOP_reset || cmd as u32 == EVTCHNOP_reset_cont
        }
        // getdomaininfo-style domctls copy out the domain after a partial
        // search; createdomain may pick and release an id (the rover moves).
        __HYPERVISOR_domctl => true,
        // Grant batches write each entry's status as they go; setup_table grows
        // the table before its copy-back can fault.
        __HYPERVISOR_grant_table_op => true,
        _ => false,
    }
}

/// FIFO pages a domain registered (control blocks per vCPU, event array pages).
#[derive(Default, Clone)]
struct FifoPages {
    control: BTreeMap<u32, u64>,
    array: Vec<u64>,
}

struct World {
    env: Env,
    ext: XenExt,
    machine: Arc<FakeMachine>,
    /// Each domain's own guest-virtual memory (its hypercall arguments).
    mems: BTreeMap<domid_t, FakeMemory>,
    fifo: BTreeMap<domid_t, FifoPages>,
    frames_before_domus: usize,
    dom0_pages_before: u64,
}

impl World {
    fn new() -> World {
        let machine = Arc::new(FakeMachine::default());
        let env = Env::new();
        let ext = XenExt::new(machine.clone(), Box::new(env.clock.clone()));
        let frames_before_domus = env.frames.outstanding();
        let dom0_pages_before = env.hv.domains.get(0).map_or(0, |d| d.tot_pages());
        let mut w = World {
            env,
            ext,
            machine,
            mems: BTreeMap::new(),
            fifo: BTreeMap::new(),
            frames_before_domus,
            dom0_pages_before,
        };
        w.mems.insert(0, FakeMemory::new(MEM_SIZE));
        let plain = w.domu(0);
        // (Without the evtchn-fifo feature createdomain refuses the flag.)
        let fifo_flag = if cfg!(feature = "evtchn-fifo") {
            XEN_DOMCTL_CDF_evtchn_fifo
        } else {
            0
        };
        let fifo = w.domu(fifo_flag | XEN_DOMCTL_CDF_evtchn_upcall);
        let mixed = w.domu(fifo_flag);
        let external = w.domu(0);
        let _ = (plain, fifo);
        for (d, mode) in [(mixed, 1), (external, 2)] {
            let mut p = xen_hvm_param::new_zeroed();
            p.domid = d;
            p.index = HVM_PARAM_ALTP2M;
            p.value = mode;
            let rc = w.call_raw(0, __HYPERVISOR_hvm_op, HVMOP_set_param.into(), p.as_bytes());
            assert_eq!(rc, 0, "set HVM_PARAM_ALTP2M");
        }
        w
    }

    /// A running domU: two vCPUs, RAM_PAGES of RAM at RAM_GFN, shared_info mapped.
    fn domu(&mut self, flags: u32) -> domid_t {
        let mut cfg = baseline();
        cfg.max_vcpus = 2;
        cfg.flags |= flags;
        let (rc, id) = self.env.create(&cfg, 0);
        assert_eq!(rc, 0, "createdomain");
        let mut op = domctl_op(XEN_DOMCTL_max_mem, id);
        op.u.set(&xen_domctl_max_mem {
            max_memkb: RAM_PAGES * 4 * 2,
        });
        assert_eq!(self.env.domctl(0, &op).0, 0);
        let mut mfns = Vec::new();
        for _ in 0..RAM_PAGES {
            mfns.push(self.env.hv.domains.alloc_domheap_page(id).expect("max_mem"));
        }
        let d = self.env.hv.domains.get_mut(id).expect("created");
        create_vcpus(d, &mut NoExt).expect("vcpus");
        for v in d.vcpus.iter_mut() {
            v.online = true;
        }
        for (i, mfn) in mfns.into_iter().enumerate() {
            d.hvm
                .p2m
                .set_host_entry(RAM_GFN + i as u64, mfn, P2mAccess::RWX)
                .expect("gfn");
        }
        crate::common::test_support::hook_shared_info(d, &*self.machine, SHINFO_GFN);
        assert_eq!(self.env.simple(0, XEN_DOMCTL_unpausedomain, id), 0);
        self.mems.insert(id, FakeMemory::new(MEM_SIZE));
        id
    }

    fn call_raw(&mut self, domid: domid_t, nr: u32, a1: u64, arg: &[u8]) -> i64 {
        let mem = self.mems.get_mut(&domid).expect("caller memory");
        mem.write_gpa(ARG_GVA, arg).expect("arg area");
        do_hypercall(
            &mut self.env.hv,
            &mut self.ext,
            Caller { domid, vcpu: 0 },
            u64::from(nr),
            [a1, ARG_GVA, 0, 0, 0],
            mem,
        )
    }

    fn ids(&self) -> Vec<domid_t> {
        self.env.hv.domains.ids().collect()
    }

    /// Everything a refused call must leave as it was.
    fn fingerprint(&self, caller: domid_t) -> String {
        let mut s = String::new();
        for id in self.ids() {
            let Some(d) = self.env.hv.domains.get(id) else {
                continue;
            };
            s += &format!(
                "d{id} {:?} pause {} tot {} max {} vcpus {:?}\n",
                d.shutdown,
                d.controller_pause_count,
                d.tot_pages(),
                d.max_pages,
                d.vcpus
            );
            for p in 0..d.evtchn.valid_evtchns() {
                if let Some(c) = d.evtchn.channel(p) {
                    if c.usable() {
                        s += &format!(" p{p} {c:?}\n");
                    }
                }
            }
            for g in (0..0x40).chain([SHINFO_GFN]) {
                if let Some(e) = d.hvm.p2m.host_entry(g) {
                    s += &format!(" g{g:#x} {e:?}\n");
                }
            }
            for idx in 0..40 {
                if let Some(v) = d.hvm.param(idx) {
                    s += &format!(" param{idx}={v:#x}");
                }
            }
            s += "\n";
        }
        s += &format!(
            "frames {} machine {:#x} ",
            self.env.frames.outstanding(),
            self.machine.digest()
        );
        if let Some(m) = self.mems.get(&caller) {
            s += &format!("caller mem {:#x}", digest(&m.bytes));
        }
        s
    }

    /// A digest of `id`'s RAM frames that no other domain may write: all but
    /// its shared_info and registered FIFO pages.
    fn private_ram(&self, id: domid_t) -> u64 {
        let Some(d) = self.env.hv.domains.get(id) else {
            return 0;
        };
        let fifo = self.fifo.get(&id).cloned().unwrap_or_default();
        let shared: BTreeSet<u64> = fifo
            .control
            .values()
            .map(|gpa| gpa >> 12)
            .chain(fifo.array.iter().copied())
            .chain([SHINFO_GFN])
            .collect();
        let ram = GuestRam {
            p2m: &d.hvm.p2m,
            machine: &*self.machine,
        };
        let mut h = 0u64;
        for g in RAM_GFN..RAM_GFN + RAM_PAGES {
            if shared.contains(&g) {
                continue;
            }
            let mut page = [0u8; 4096];
            if ram.read_gpa(g << 12, &mut page).is_ok() {
                h = h.rotate_left(7) ^ digest(&page) ^ g;
            }
        }
        h
    }

    /// Event-channel consistency across domains; FIFO queues acyclic.
    fn check_evtchn(&self) -> Result<(), String> {
        for id in self.ids() {
            let d = self.env.hv.domains.get(id).ok_or("gone")?;
            for p in 0..d.evtchn.valid_evtchns() {
                let Some(c) = d.evtchn.channel(p) else {
                    continue;
                };
                // (An unbound port may name a domain that is gone: Xen checks
                // only when someone binds.)
                if let ChannelState::Interdomain {
                    remote_dom,
                    remote_port,
                } = c.state
                {
                    let r = self
                        .env
                        .hv
                        .domains
                        .get(remote_dom.0)
                        .ok_or(format!("d{id} p{p}: peer d{} gone", remote_dom.0))?;
                    let back = r.evtchn.channel(remote_port).map(|c| c.state);
                    let want = ChannelState::Interdomain {
                        remote_dom: xen_public_abi::DomId(id),
                        remote_port: p,
                    };
                    if back != Some(want) {
                        return Err(format!(
                            "d{id} p{p} -> d{}p{remote_port}, which is {back:?}",
                            remote_dom.0
                        ));
                    }
                }
                if c.usable() && c.notify_vcpu >= d.vcpus.len().max(1) as u32 {
                    return Err(format!(
                        "d{id} p{p} notifies vCPU {} of {}",
                        c.notify_vcpu,
                        d.vcpus.len()
                    ));
                }
            }
            self.check_fifo_acyclic(id)?;
        }
        Ok(())
    }

    fn check_fifo_acyclic(&self, id: domid_t) -> Result<(), String> {
        let (Some(f), Some(d)) = (self.fifo.get(&id), self.env.hv.domains.get(id)) else {
            return Ok(());
        };
        if f.array.is_empty() {
            return Ok(());
        }
        let ram = GuestRam {
            p2m: &d.hvm.p2m,
            machine: &*self.machine,
        };
        let word = |p: u32| -> Option<u32> {
            let page = *f.array.get((p / 1024) as usize)?;
            let mut b = [0u8; 4];
            ram.read_gpa((page << 12) + u64::from(p % 1024) * 4, &mut b)
                .ok()?;
            Some(u32::from_le_bytes(b))
        };
        for (&v, &cb) in &f.control {
            for q in 0..16u64 {
                let mut b = [0u8; 4];
                if ram.read_gpa(cb + 8 + q * 4, &mut b).is_err() {
                    continue;
                }
                let mut p = u32::from_le_bytes(b) & 0x1_ffff;
                let mut seen = BTreeSet::new();
                while p != 0 {
                    if !seen.insert(p) {
                        return Err(format!("d{id} v{v} queue {q}: cycle through port {p}"));
                    }
                    match word(p) {
                        Some(w) => p = w & 0x1_ffff,
                        None => break,
                    }
                }
            }
        }
        Ok(())
    }

    /// Fill the caller's argument and list areas.
    fn fill_args(&mut self, rng: &mut Rng, caller: domid_t, nr: u32, cmd: u64) {
        let ids = self.ids();
        let mut arg = [0u8; ARG_LEN];
        for lane in arg.chunks_exact_mut(4) {
            let v: u32 = match rng.below(10) {
                0 | 1 => 0,
                2 => 1,
                3 => rng.below(8) as u32,
                4 => u32::from(rng.pick(&ids)),
                5 if rng.chance(50) => 0x7ff0, // DOMID_SELF
                5 => u32::from(rng.pick(&ids)) | u32::from(rng.pick(&ids)) << 16,
                6 => (RAM_GFN + rng.below(RAM_PAGES + 2)) as u32,
                7 => rng.below(80) as u32,
                8 => (LIST_GVA + rng.below(64)) as u32,
                _ => rng.next() as u32,
            };
            lane.copy_from_slice(&v.to_le_bytes());
        }
        if nr == __HYPERVISOR_hvm_op && cmd as u32 == HVMOP_altp2m && rng.chance(70) {
            // version 1, a sub-op, a domain, zero pads.
            arg[0..4].copy_from_slice(&1u32.to_le_bytes());
            arg[4..8].copy_from_slice(&(1 + rng.below(16) as u32).to_le_bytes());
            arg[8..10].copy_from_slice(&rng.pick(&ids).to_le_bytes());
            arg[10..16].fill(0);
        }
        if nr == __HYPERVISOR_domctl && rng.chance(80) {
            arg[0..4].copy_from_slice(&(rng.below(90) as u32).to_le_bytes());
            arg[4..8].copy_from_slice(&XEN_DOMCTL_INTERFACE_VERSION.to_le_bytes());
            arg[8..10].copy_from_slice(&rng.pick(&ids).to_le_bytes());
        }
        if nr == __HYPERVISOR_event_channel_op && rng.chance(60) {
            // The op's own struct with plausible values (a port that may be
            // bound, a domain that exists, a RAM gfn), so calls get deep.
            let port = 1 + rng_port(rng);
            let d1 = if rng.chance(50) {
                0x7ff0
            } else {
                rng.pick(&ids)
            };
            let d2 = rng.pick(&ids);
            let w: [u32; 4] = match cmd as u32 {
                // alloc_unbound: dom, remote_dom | port.
                6 => [u32::from(d1) | u32::from(d2) << 16, 0, 0, 0],
                // bind_interdomain: remote_dom, remote_port.
                0 => [u32::from(d2), port, 0, 0],
                // bind_virq: virq, vcpu.
                1 => [rng.below(25) as u32, rng.below(3) as u32, 0, 0],
                // bind_ipi: vcpu.
                7 => [rng.below(3) as u32, 0, 0, 0],
                // close, send, unmask: port; status: dom | port.
                3 | 4 | 8 => [port, 0, 0, 0],
                5 => [u32::from(d1), port, 0, 0],
                // bind_vcpu: port, vcpu; set_priority: port, priority.
                9 => [port, rng.below(3) as u32, 0, 0],
                13 => [port, rng.below(17) as u32, 0, 0],
                // init_control: control_gfn (u64), offset, vcpu.
                11 => [
                    (RAM_GFN + rng.below(RAM_PAGES)) as u32,
                    0,
                    rng.pick(&[0u32, 64, 4032, 4090]),
                    rng.below(3) as u32,
                ],
                // expand_array: array_gfn (u64).
                12 => [(RAM_GFN + rng.below(RAM_PAGES)) as u32, 0, 0, 0],
                // reset / reset_cont: dom.
                10 | 14 => [u32::from(d1), 0, 0, 0],
                _ => [rng.next() as u32; 4],
            };
            for (i, v) in w.iter().enumerate() {
                arg[i * 4..i * 4 + 4].copy_from_slice(&v.to_le_bytes());
            }
        }
        if nr == __HYPERVISOR_grant_table_op && rng.chance(60) {
            // map_grant_ref's shape (host_addr, flags, ref, dom) in each of the
            // first entries, so maps and unmaps of small refs and handles get deep;
            // copy and the others read the same words their own way.
            for e in arg.chunks_exact_mut(32).take(4) {
                let gfn = if rng.chance(50) {
                    RAM_GFN + rng.below(RAM_PAGES)
                } else {
                    0x40 + rng.below(8)
                };
                e[0..8].copy_from_slice(&(gfn << 12).to_le_bytes());
                let flags = rng.pick(&[2u32, 6, 1, 0, 0x12]);
                e[8..12].copy_from_slice(&flags.to_le_bytes());
                e[12..16].copy_from_slice(&(rng.below(10) as u32).to_le_bytes());
                e[16..18].copy_from_slice(&rng.pick(&ids).to_le_bytes());
            }
        }
        let mut list = [0u8; LIST_LEN];
        for lane in list.chunks_exact_mut(8) {
            let v: u64 = match rng.below(4) {
                0 => RAM_GFN + rng.below(RAM_PAGES),
                1 => rng.below(8),
                2 => rng.below(0x200),
                _ => rng.next(),
            };
            lane.copy_from_slice(&v.to_le_bytes());
        }
        let mem = self.mems.get_mut(&caller).expect("caller memory");
        mem.write_gpa(ARG_GVA, &arg).expect("arg area");
        mem.write_gpa(LIST_GVA, &list).expect("list area");
    }

    /// Record FIFO pages from a successful init_control / expand_array, forget
    /// them when the domain leaves FIFO.
    fn note_fifo(&mut self, caller: domid_t, nr: u32, cmd: u64, rc: i64) {
        if nr != __HYPERVISOR_event_channel_op || rc != 0 {
            return;
        }
        let mem = &self.mems[&caller];
        let rd = |off: u64| -> u64 {
            let mut b = [0u8; 8];
            let _ = mem.read_gpa(ARG_GVA + off, &mut b);
            u64::from_le_bytes(b)
        };
        match cmd as u32 {
            EVTCHNOP_init_control => {
                // control_gfn (u64), offset (u32), vcpu (u32).
                let gfn = rd(0);
                let offset = rd(8) as u32;
                let vcpu = rd(12) as u32;
                let f = self.fifo.entry(caller).or_default();
                f.control.insert(vcpu, (gfn << 12) + u64::from(offset));
            }
            EVTCHNOP_expand_array => {
                let gfn = rd(0);
                self.fifo.entry(caller).or_default().array.push(gfn);
            }
            EVTCHNOP_reset | EVTCHNOP_reset_cont => {
                self.fifo.remove(&caller);
            }
            _ => {}
        }
    }

    /// One random call, checked.
    fn step(&mut self, rng: &mut Rng) -> Result<(), String> {
        let ids = self.ids();
        let caller = if rng.chance(30) { 0 } else { rng.pick(&ids) };
        self.mems
            .entry(caller)
            .or_insert_with(|| FakeMemory::new(MEM_SIZE));
        let nr = if rng.chance(90) {
            rng.pick(&NUMBERS)
        } else {
            rng.next() as u32 % 64
        };
        let cmd = match nr {
            __HYPERVISOR_domctl => ARG_GVA,
            __HYPERVISOR_hvm_op if rng.chance(50) => HVMOP_altp2m.into(),
            _ if rng.chance(5) => rng.next(),
            // Each hypercall's sub-op range, a little past its last one.
            __HYPERVISOR_event_channel_op => rng.below(17),
            __HYPERVISOR_hvm_op => rng.below(26),
            __HYPERVISOR_memory_op => rng.below(30),
            __HYPERVISOR_console_io => rng.below(3),
            __HYPERVISOR_grant_table_op => rng.below(13),
            _ => rng.below(16),
        };
        let ptr = match rng.below(20) {
            0 => HOLE_GVA,
            1 => BAD_GVA,
            2 => rng.next(),
            _ => ARG_GVA,
        };
        let a3 = if rng.chance(50) {
            ptr
        } else {
            rng.below(0x2000)
        };
        let args = [cmd, ptr, a3, rng.below(4), rng.below(4)];
        let args = if nr == __HYPERVISOR_domctl {
            [ptr, 0, 0, 0, 0]
        } else {
            args
        };
        self.fill_args(rng, caller, nr, cmd);
        let before = self.fingerprint(caller);
        let privileged = self
            .env
            .hv
            .domains
            .get(caller)
            .is_some_and(|d| d.is_privileged);
        let others: Vec<(domid_t, u64)> = ids
            .iter()
            .filter(|&&d| d != caller)
            .map(|&d| (d, self.private_ram(d)))
            .collect();
        let mem = self.mems.get_mut(&caller).expect("caller memory");
        let rc = do_hypercall(
            &mut self.env.hv,
            &mut self.ext,
            Caller {
                domid: caller,
                vcpu: rng.below(2) as u32,
            },
            u64::from(nr),
            args,
            mem,
        );
        self.ext.actions.clear();
        let call = format!("d{caller} hypercall {nr} args {args:x?} -> {rc}");
        if std::env::var("HYPERVISOR_FUZZ_TRACE").is_ok() {
            std::println!("{call}");
        }
        if rc == Errno::ERESTART.as_ret() {
            return Err(format!("{call}: -ERESTART reached the guest"));
        }
        if (-4095..0).contains(&rc) && !partial_on_error(nr, cmd) {
            let after = self.fingerprint(caller);
            if before != after {
                return Err(format!(
                    "{call}: refused but changed state\nbefore:\n{before}\nafter:\n{after}"
                ));
            }
        }
        self.note_fifo(caller, nr, cmd, rc);
        if !privileged {
            for (d, h) in others {
                if self.env.hv.domains.get(d).is_some() && self.private_ram(d) != h {
                    return Err(format!("{call}: wrote d{d}'s private RAM"));
                }
            }
        }
        self.check_evtchn().map_err(|e| format!("{call}: {e}"))
    }

    /// Destroy every domU; the frames must all come back.
    fn teardown(&mut self) -> Result<(), String> {
        for id in self.ids() {
            if id == 0 {
                continue;
            }
            let rc = self.env.simple(0, XEN_DOMCTL_destroydomain, id);
            let op = domctl_op(XEN_DOMCTL_destroydomain, id);
            let rc2 = self.call_raw(0, __HYPERVISOR_domctl, ARG_GVA, op.as_bytes());
            if self.env.hv.domains.get(id).is_some() {
                return Err(format!("d{id} not destroyed ({rc}, {rc2})"));
            }
        }
        // dom0 stays, and may have grown (populate / increase_reservation on
        // itself): its pages are accounted for, the rest must be back.
        let dom0_pages = self.env.hv.domains.get(0).map_or(0, |d| d.tot_pages());
        let grown = dom0_pages as i64 - self.dom0_pages_before as i64;
        // Frames dom0 still maps (foreign, grant, acquire_resource) whose owner
        // is gone stay until dom0 unmaps them: held, not leaked.
        let held = self.env.hv.domains.foreign.orphans() as i64;
        let now = self.env.frames.outstanding();
        if now as i64 != self.frames_before_domus as i64 + grown + held {
            return Err(format!(
                "frames leaked: {now} outstanding, {} before the domUs, dom0 grew by {grown}",
                self.frames_before_domus
            ));
        }
        Ok(())
    }
}

/// A port number that is often bound: small, sometimes past the first bucket.
fn rng_port(rng: &mut Rng) -> u32 {
    if rng.chance(90) {
        rng.below(12) as u32
    } else {
        rng.below(200) as u32
    }
}

fn digest(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325u64, |h, &b| {
        (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3)
    })
}

/// Run `steps` calls from `seed`; `Err` says what broke, with the seed.
pub fn run_seed(seed: u64, steps: u32) -> Result<(), String> {
    let r = std::panic::catch_unwind(|| {
        let heap = crate::test_alloc::live_bytes();
        let mut rng = Rng::new(seed);
        let mut w = World::new();
        for i in 0..steps {
            w.step(&mut rng)
                .map_err(|e| format!("seed {seed:#x} step {i}: {e}"))?;
        }
        w.teardown().map_err(|e| format!("seed {seed:#x}: {e}"))?;
        drop(w);
        // The limiter table and logging may keep a little; the world's heap must
        // be gone.
        let left = crate::test_alloc::live_bytes() - heap;
        if left > 4096 {
            return Err(format!(
                "seed {seed:#x}: {left} heap bytes kept after teardown"
            ));
        }
        Ok(())
    });
    match r {
        Ok(r) => r,
        Err(p) => {
            let msg = p
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| p.downcast_ref::<&str>().map(|s| String::from(*s)))
                .unwrap_or_default();
            Err(format!("seed {seed:#x}: panic: {msg}"))
        }
    }
}

/// Steps per seed in `cargo test`.
const CI_STEPS: u32 = 250;
/// Fixed seeds run in `cargo test`.
const CI_SEEDS: [u64; 4] = [1, 0x5eed, 0xdead_beef, 7777];

/// Seeds (and their step counts) that once failed, one `seed steps` per line.
const CORPUS: &str = include_str!("fuzz_corpus.txt");

#[test]
fn fuzz_fixed_seeds() {
    for seed in CI_SEEDS {
        if let Err(e) = run_seed(seed, CI_STEPS) {
            panic!("{e}");
        }
    }
}

#[test]
fn fuzz_corpus() {
    for line in CORPUS.lines() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let mut it = line.split_whitespace();
        let seed = it.next().and_then(parse_u64).expect("corpus seed");
        let steps = it.next().and_then(|s| s.parse().ok()).unwrap_or(CI_STEPS);
        if let Err(e) = run_seed(seed, steps) {
            panic!("corpus: {e}");
        }
    }
}

fn parse_u64(s: &str) -> Option<u64> {
    match s.strip_prefix("0x") {
        Some(h) => u64::from_str_radix(h, 16).ok(),
        None => s.parse().ok(),
    }
}

/// `cargo xtask fuzz --minutes N`: random seeds until `HYPERVISOR_FUZZ_MINUTES`
/// have passed (a seed in `HYPERVISOR_FUZZ_SEED` first, if given).
#[test]
#[ignore = "long run: cargo xtask fuzz --minutes N"]
fn fuzz_long() {
    let minutes: u64 = std::env::var("HYPERVISOR_FUZZ_MINUTES")
        .ok()
        .and_then(|m| m.parse().ok())
        .unwrap_or(1);
    let steps: u32 = std::env::var("HYPERVISOR_FUZZ_STEPS")
        .ok()
        .and_then(|m| m.parse().ok())
        .unwrap_or(1000);
    let start = std::time::Instant::now();
    let mut seed = std::env::var("HYPERVISOR_FUZZ_SEED")
        .ok()
        .and_then(|s| parse_u64(&s))
        .unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(1, |d| d.as_nanos() as u64)
        });
    let mut runs = 0u64;
    // At least one seed (`--minutes 0 --seed S` reproduces S).
    while runs == 0 || start.elapsed().as_secs() < minutes * 60 {
        if let Err(e) = run_seed(seed, steps) {
            std::println!("FUZZ FAILED after {runs} seeds: {e}");
            std::println!("reproduce: HYPERVISOR_FUZZ_SEED={seed:#x} HYPERVISOR_FUZZ_STEPS={steps} cargo xtask fuzz --minutes 0");
            panic!("fuzz failure, seed {seed:#x}");
        }
        runs += 1;
        seed = Rng::new(seed).next();
    }
    std::println!("fuzz: {runs} seeds x {steps} steps, no failure");
}
