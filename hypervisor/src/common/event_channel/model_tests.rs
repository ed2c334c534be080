//! Model-based test: random sequences of event-channel operations across
//! three domains (one FIFO-permitted, one not, one FIFO-permitted that keeps
//! resetting), each step checked against a small reference model of port
//! states and pending / masked / linked bits, with the guest consuming events
//! the way Linux does (2-level: selector then bitmaps; FIFO: `xchg(ready)`,
//! walk head/LINK, unlink with cmpxchg).
//!
//! The model is deliberately more abstract than the implementation: sets for
//! the 2-level bitmaps, and a `VecDeque` per FIFO queue instead of linked
//! event words.

use super::tests::*;
use super::*;
use alloc::collections::{BTreeSet, VecDeque};
use alloc::vec::Vec;

const NVCPU: u32 = 2;
const MAX_PORT: u32 = 200;
/// Guest frames: shared_info, control blocks (one per vCPU), event array.
const SHINFO_GFN: u64 = 1;
const CB_GFN: u64 = 2;
const ARRAY_GFN: u64 = 8;
const BAD_GFN: u64 = 1 << 30;
const DOMS: [u16; 3] = [1, 2, 3];
const VIRQS: [u32; 5] = [0, 1, 3, 5, 16];

struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum MState {
    Free,
    Reserved,
    Unbound(u16),
    Inter(u16, u32),
    Virq(u32),
    Ipi,
}

#[derive(Clone, Copy, Debug)]
struct MPort {
    st: MState,
    vcpu: u32,
    prio: u8,
    deferred: bool,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
struct MWord {
    p: bool,
    m: bool,
    l: bool,
}

struct MDom {
    fifo_ok: bool,
    ports: Vec<MPort>,
    virq: Vec<[u32; 24]>,
    pend2: BTreeSet<u32>,
    mask2: BTreeSet<u32>,
    sel: Vec<u64>,
    upcall: Vec<bool>,
    fifo: bool,
    cb: Vec<bool>,
    words: Vec<MWord>,
    queues: Vec<[VecDeque<u32>; 16]>,
    ready: Vec<u32>,
}

impl MDom {
    fn new(fifo_ok: bool) -> Self {
        let mut ports = vec![
            MPort {
                st: MState::Free,
                vcpu: 0,
                prio: 7,
                deferred: false
            };
            64
        ];
        ports[0].st = MState::Reserved;
        MDom {
            fifo_ok: fifo_ok && FIFO_BUILT_IN,
            ports,
            virq: vec![[0; 24]; NVCPU as usize],
            pend2: BTreeSet::new(),
            mask2: BTreeSet::new(),
            sel: vec![0; NVCPU as usize],
            upcall: vec![false; NVCPU as usize],
            fifo: false,
            cb: vec![false; NVCPU as usize],
            words: Vec::new(),
            queues: (0..NVCPU)
                .map(|_| core::array::from_fn(|_| VecDeque::new()))
                .collect(),
            ready: vec![0; NVCPU as usize],
        }
    }
    fn valid(&self) -> u32 {
        self.ports.len() as u32
    }
    fn usable(&self, p: u32) -> bool {
        !matches!(self.ports[p as usize].st, MState::Free | MState::Reserved)
    }
    fn word(&mut self, p: u32) -> Option<&mut MWord> {
        self.words.get_mut(p as usize)
    }
    fn alloc(&mut self) -> Result<u32, i64> {
        let maxev = if self.fifo { 131072 } else { 4096 };
        let mut p = 1;
        loop {
            if p > MAX_PORT || p >= maxev {
                return Err(ENOSPC);
            }
            if p >= self.valid() {
                let n = self.ports.len() + 64;
                self.ports.resize(
                    n,
                    MPort {
                        st: MState::Free,
                        vcpu: 0,
                        prio: 7,
                        deferred: false,
                    },
                );
                return Ok(p);
            }
            let busy = self.fifo && self.words.get(p as usize).is_some_and(|w| w.l);
            if self.ports[p as usize].st == MState::Free && !busy {
                return Ok(p);
            }
            p += 1;
        }
    }
    fn bind(&mut self, p: u32, st: MState, vcpu: u32) {
        let mp = &mut self.ports[p as usize];
        mp.st = st;
        mp.vcpu = vcpu;
        if self.fifo {
            mp.prio = 7;
        }
    }
}

struct Model {
    doms: Vec<MDom>,
    kicks: Vec<(u16, u32)>,
}

fn ix(d: u16) -> usize {
    d as usize - 1
}

impl Model {
    /// `evtchn_port_set_pending`: only bound ports get events.
    fn set_pending(&mut self, d: u16, v: u32, p: u32) {
        if self.doms[ix(d)].usable(p) {
            self.set_pending_raw(d, v, p);
        }
    }

    /// The ABI's `set_pending` itself (expand_array re-raises deferred
    /// events through it directly, bound or not, as Xen does).
    fn set_pending_raw(&mut self, d: u16, v: u32, p: u32) {
        let kicks = &mut self.kicks;
        let m = &mut self.doms[ix(d)];
        let mut kick = |m: &mut MDom| {
            if !m.upcall[v as usize] {
                m.upcall[v as usize] = true;
                kicks.push((d, v));
            }
        };
        if !m.fifo {
            if p >= 4096 || !m.pend2.insert(p) || m.mask2.contains(&p) {
                return;
            }
            let bit = 1u64 << (p / 64);
            if m.sel[v as usize] & bit == 0 {
                m.sel[v as usize] |= bit;
                kick(m);
            }
            return;
        }
        if p as usize >= m.words.len() {
            m.ports[p as usize].deferred = true;
            return;
        }
        if !m.cb[v as usize] {
            return;
        }
        let prio = m.ports[p as usize].prio as usize;
        let w = &mut m.words[p as usize];
        w.p = true;
        if !w.m && !w.l {
            w.l = true;
            let q = &mut m.queues[v as usize][prio];
            let was_empty = q.is_empty();
            q.push_back(p);
            if was_empty && m.ready[v as usize] & (1 << prio) == 0 {
                m.ready[v as usize] |= 1 << prio;
                kick(m);
            }
        }
    }

    fn unmask(&mut self, d: u16, p: u32) {
        let m = &mut self.doms[ix(d)];
        if !m.usable(p) {
            return;
        }
        let v = m.ports[p as usize].vcpu;
        if !m.fifo {
            if p < 4096 && m.mask2.remove(&p) && m.pend2.contains(&p) {
                let bit = 1u64 << (p / 64);
                if m.sel[v as usize] & bit == 0 {
                    m.sel[v as usize] |= bit;
                    if !m.upcall[v as usize] {
                        m.upcall[v as usize] = true;
                        self.kicks.push((d, v));
                    }
                }
            }
            return;
        }
        if let Some(w) = m.word(p) {
            w.m = false;
            if w.p {
                self.set_pending(d, v, p);
            }
        }
    }

    fn free(&mut self, d: u16, p: u32) {
        let m = &mut self.doms[ix(d)];
        if m.fifo {
            if let Some(w) = m.word(p) {
                w.p = false;
            }
        } else {
            m.pend2.remove(&p);
        }
        let mp = &mut m.ports[p as usize];
        mp.st = MState::Free;
        mp.vcpu = 0;
        mp.deferred = false;
    }

    fn close(&mut self, d: u16, p: u32) -> i64 {
        let m = &mut self.doms[ix(d)];
        if p >= m.valid() {
            return EINVAL;
        }
        let mp = m.ports[p as usize];
        match mp.st {
            MState::Free | MState::Reserved => return EINVAL,
            MState::Virq(virq) => {
                let v = if virq_is_global(virq) { 0 } else { mp.vcpu };
                m.virq[v as usize][virq as usize] = 0;
            }
            MState::Inter(rd, rp) => {
                self.free(d, p);
                self.doms[ix(rd)].ports[rp as usize].st = MState::Unbound(d);
                return 0;
            }
            _ => {}
        }
        self.free(d, p);
        0
    }

    fn reset(&mut self, d: u16) {
        let valid = self.doms[ix(d)].valid();
        for p in 1..valid {
            if self.doms[ix(d)].usable(p) {
                self.close(d, p);
            }
        }
        let m = &mut self.doms[ix(d)];
        m.fifo = false;
        m.cb = vec![false; NVCPU as usize];
        m.words.clear();
        m.queues
            .iter_mut()
            .for_each(|qs| qs.iter_mut().for_each(|q| q.clear()));
        m.ready = vec![0; NVCPU as usize];
    }
}

/// The guest's 2-level upcall handler: clear `evtchn_upcall_pending`, take the
/// selector, handle (clear) pending unmasked ports word by word.
fn guest_2l_consume(fd: &mut FakeDom, v: u32) -> Vec<u32> {
    let base = SHINFO_GFN * 4096;
    let vi = base + u64::from(v) * 64;
    fd.evtchn
        .shared_info_mut()
        .clear_upcall_pending(&mut fd.mem, v)
        .unwrap();
    let lo = guest_bits::update_u32(&mut fd.mem, vi + 8, |_| 0).unwrap();
    let hi = guest_bits::update_u32(&mut fd.mem, vi + 12, |_| 0).unwrap();
    let sel = u64::from(lo) | (u64::from(hi) << 32);
    let mut handled = Vec::new();
    for w in 0..64u32 {
        if sel & (1 << w) == 0 {
            continue;
        }
        for p in w * 64..w * 64 + 64 {
            if !guest_bits::test_bit(&fd.mem, base + 2560, p).unwrap()
                && guest_bits::test_and_clear_bit(&mut fd.mem, base + 2048, p).unwrap()
            {
                handled.push(p);
            }
        }
    }
    handled
}

fn model_consume(m: &mut Model, d: u16, v: u32) -> Vec<u32> {
    let md = &mut m.doms[ix(d)];
    md.upcall[v as usize] = false;
    let mut handled = Vec::new();
    if md.fifo {
        for q in 0..16 {
            while let Some(p) = md.queues[v as usize][q].pop_front() {
                let w = &mut md.words[p as usize];
                w.l = false;
                if w.p && !w.m {
                    w.p = false;
                    handled.push(p);
                }
            }
        }
        md.ready[v as usize] = 0;
    } else {
        let sel = core::mem::take(&mut md.sel[v as usize]);
        for w in 0..64u32 {
            if sel & (1 << w) == 0 {
                continue;
            }
            for p in w * 64..w * 64 + 64 {
                if !md.mask2.contains(&p) && md.pend2.remove(&p) {
                    handled.push(p);
                }
            }
        }
    }
    handled
}

struct World {
    env: FakeEnv,
    model: Model,
    guests: Vec<GuestFifo>,
    rng: Rng,
    log: Vec<alloc::string::String>,
}

impl World {
    fn new(seed: u64) -> Self {
        let mut env = FakeEnv::new();
        env.add(1, MAX_PORT, true, NVCPU, 16)
            .add(2, MAX_PORT, false, NVCPU, 16)
            .add(3, MAX_PORT, true, NVCPU, 16);
        for d in DOMS {
            let fd = env.dom(d);
            fd.privileged = false;
            fd.evtchn
                .map_shared_info(&mut fd.mem, Some(SHINFO_GFN))
                .unwrap();
        }
        World {
            env,
            model: Model {
                doms: vec![MDom::new(true), MDom::new(false), MDom::new(true)],
                kicks: Vec::new(),
            },
            guests: (0..3).map(|_| GuestFifo::new(NVCPU as usize)).collect(),
            rng: Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1),
            log: Vec::new(),
        }
    }

    fn pick_port(&mut self, d: u16) -> u32 {
        let valid = self.model.doms[ix(d)].valid();
        match self.rng.below(10) {
            0 => self.rng.below(u64::from(valid) + 70) as u32,
            1 => [0, 4096, 100_000, u32::MAX][self.rng.below(4) as usize],
            _ => {
                // Mostly a bound port, if there is one.
                let bound: Vec<u32> = (1..valid)
                    .filter(|&p| self.model.doms[ix(d)].usable(p))
                    .collect();
                if bound.is_empty() {
                    1
                } else {
                    bound[self.rng.below(bound.len() as u64) as usize]
                }
            }
        }
    }

    fn pick_vcpu(&mut self) -> u32 {
        [0, 1, 0, 1, 7][self.rng.below(5) as usize]
    }

    fn pick_dom(&mut self) -> u16 {
        match self.rng.below(8) {
            0 => NONEXISTENT,
            1 => SELF,
            n => DOMS[(n % 3) as usize],
        }
    }

    fn resolve(c: u16, d: u16) -> u16 {
        if d == SELF {
            c
        } else {
            d
        }
    }

    /// One random operation, checked against the model.
    fn step(&mut self) {
        let c = DOMS[self.rng.below(3) as usize];
        self.env.as_caller(c);
        let op = self.rng.below(100);
        let (what, rc, want): (alloc::string::String, i64, i64) = match op {
            0..=11 => {
                let d = if self.rng.below(4) == 0 {
                    self.pick_dom()
                } else {
                    SELF
                };
                let r = self.pick_dom();
                let (rc, port) = self.env.alloc_unbound(d, r);
                let dd = Self::resolve(c, d);
                let want = if !DOMS.contains(&dd) {
                    ESRCH
                } else {
                    match self.model.doms[ix(dd)].alloc() {
                        Err(e) => e,
                        Ok(_) if dd != c => EPERM,
                        Ok(p) => {
                            assert_eq!(port, p, "alloc_unbound port");
                            self.model.doms[ix(dd)].bind(
                                p,
                                MState::Unbound(Self::resolve(c, r)),
                                0,
                            );
                            0
                        }
                    }
                };
                (alloc::format!("alloc_unbound({d},{r})"), rc, want)
            }
            12..=21 => {
                let rd = self.pick_dom();
                let rdd = Self::resolve(c, rd);
                let rport = if DOMS.contains(&rdd) {
                    self.pick_port(rdd)
                } else {
                    1
                };
                let (rc, lport) = self.env.bind_interdomain(rd, rport);
                let want = if !DOMS.contains(&rdd) {
                    ESRCH
                } else {
                    match self.model.doms[ix(c)].alloc() {
                        Err(e) => e,
                        Ok(lp) => {
                            let r = &self.model.doms[ix(rdd)];
                            if rport >= r.valid()
                                || r.ports[rport as usize].st != MState::Unbound(c)
                            {
                                EINVAL
                            } else {
                                assert_eq!(lport, lp, "bind_interdomain port");
                                self.model.doms[ix(rdd)].ports[rport as usize].st =
                                    MState::Inter(c, lp);
                                self.model.doms[ix(c)].bind(lp, MState::Inter(rdd, rport), 0);
                                self.model.set_pending(c, 0, lp);
                                0
                            }
                        }
                    }
                };
                (alloc::format!("bind_interdomain({rd},{rport})"), rc, want)
            }
            22..=27 => {
                let virq = if self.rng.below(10) == 0 {
                    24
                } else {
                    VIRQS[self.rng.below(5) as usize]
                };
                let v = self.pick_vcpu();
                let (rc, port) = self.env.bind_virq(virq, v);
                let m = &mut self.model.doms[ix(c)];
                let want = if virq >= 24 || (virq_is_global(virq) && v != 0) {
                    EINVAL
                } else if v >= NVCPU {
                    ENOENT
                } else if m.virq[v as usize][virq as usize] != 0 {
                    EEXIST
                } else {
                    match m.alloc() {
                        Err(e) => e,
                        Ok(p) => {
                            assert_eq!(port, p);
                            m.bind(p, MState::Virq(virq), v);
                            m.virq[v as usize][virq as usize] = p;
                            0
                        }
                    }
                };
                (alloc::format!("bind_virq({virq},{v})"), rc, want)
            }
            28..=33 => {
                let v = self.pick_vcpu();
                let (rc, port) = self.env.bind_ipi(v);
                let m = &mut self.model.doms[ix(c)];
                let want = if v >= NVCPU {
                    ENOENT
                } else {
                    match m.alloc() {
                        Err(e) => e,
                        Ok(p) => {
                            assert_eq!(port, p);
                            m.bind(p, MState::Ipi, v);
                            0
                        }
                    }
                };
                (alloc::format!("bind_ipi({v})"), rc, want)
            }
            34..=41 => {
                let p = self.pick_port(c);
                let rc = self.env.close(p);
                (alloc::format!("close({p})"), rc, self.model.close(c, p))
            }
            42..=55 => {
                let p = self.pick_port(c);
                let rc = self.env.send(p);
                let m = &self.model.doms[ix(c)];
                let want = if p >= m.valid() {
                    EINVAL
                } else {
                    let mp = m.ports[p as usize];
                    match mp.st {
                        MState::Ipi => {
                            self.model.set_pending(c, mp.vcpu, p);
                            0
                        }
                        MState::Unbound(_) => 0,
                        MState::Inter(rd, rp) => {
                            let v = self.model.doms[ix(rd)].ports[rp as usize].vcpu;
                            self.model.set_pending(rd, v, rp);
                            0
                        }
                        _ => EINVAL,
                    }
                };
                (alloc::format!("send({p})"), rc, want)
            }
            56..=60 => {
                let p = self.pick_port(c);
                let v = self.pick_vcpu();
                let rc = self.env.bind_vcpu(p, v);
                let m = &mut self.model.doms[ix(c)];
                let want = if v >= NVCPU {
                    ENOENT
                } else if p >= m.valid() {
                    EINVAL
                } else {
                    let mp = &mut m.ports[p as usize];
                    match mp.st {
                        MState::Virq(virq) if virq_is_global(virq) => {
                            mp.vcpu = v;
                            0
                        }
                        MState::Unbound(_) | MState::Inter(..) => {
                            mp.vcpu = v;
                            0
                        }
                        _ => EINVAL,
                    }
                };
                (alloc::format!("bind_vcpu({p},{v})"), rc, want)
            }
            61..=68 => {
                // Guest-side unmask, as Linux does it for the active ABI.
                let p = self.pick_port(c);
                let fifo = self.model.doms[ix(c)].fifo;
                let (rc, want) = if fifo {
                    if (p as usize) < self.model.doms[ix(c)].words.len() {
                        let g = &self.guests[ix(c)];
                        let need = g.guest_unmask(&mut self.env.dom(c).mem, p);
                        let w = &mut self.model.doms[ix(c)].words[p as usize];
                        w.m = false;
                        if need {
                            let rc = self.env.unmask(p);
                            self.model.unmask(c, p);
                            (rc, 0)
                        } else {
                            (0, 0)
                        }
                    } else {
                        let rc = self.env.unmask(p);
                        let want = if p >= self.model.doms[ix(c)].valid() {
                            EINVAL
                        } else {
                            0
                        };
                        (rc, want)
                    }
                } else if p < 4096 {
                    let pending = self.model.doms[ix(c)].pend2.contains(&p);
                    if pending {
                        let rc = self.env.unmask(p);
                        let want = if p >= self.model.doms[ix(c)].valid() {
                            EINVAL
                        } else {
                            self.model.unmask(c, p);
                            0
                        };
                        (rc, want)
                    } else {
                        let fd = self.env.dom(c);
                        fd.evtchn
                            .shared_info_mut()
                            .set_mask_bit(&mut fd.mem, p, false)
                            .unwrap();
                        self.model.doms[ix(c)].mask2.remove(&p);
                        (0, 0)
                    }
                } else {
                    (self.env.unmask(p), EINVAL)
                };
                (alloc::format!("unmask({p})"), rc, want)
            }
            69..=72 => {
                // Guest-side mask.
                let p = self.pick_port(c);
                let m = &mut self.model.doms[ix(c)];
                if m.fifo {
                    if let Some(w) = m.words.get_mut(p as usize) {
                        w.m = true;
                        self.guests[ix(c)].guest_mask(&mut self.env.dom(c).mem, p);
                    }
                } else if p < 4096 {
                    m.mask2.insert(p);
                    let fd = self.env.dom(c);
                    fd.evtchn
                        .shared_info_mut()
                        .set_mask_bit(&mut fd.mem, p, true)
                        .unwrap();
                }
                (alloc::format!("mask({p})"), 0, 0)
            }
            73..=79 => {
                // The guest takes its upcall on a vCPU.
                let v = self.rng.below(u64::from(NVCPU)) as u32;
                let fifo = self.model.doms[ix(c)].fifo;
                // A FIFO guest without a control block on this vCPU has no
                // FIFO upcall handler there.
                let skip = fifo && !self.model.doms[ix(c)].cb[v as usize];
                let want = if skip {
                    Vec::new()
                } else {
                    model_consume(&mut self.model, c, v)
                };
                let got = if skip {
                    Vec::new()
                } else if fifo {
                    let fd = self.env.doms.get_mut(&c).unwrap();
                    self.guests[ix(c)].consume(fd.evtchn.shared_info_mut(), &mut fd.mem, v)
                } else {
                    guest_2l_consume(self.env.dom(c), v)
                };
                assert_eq!(got, want, "consume on d{c} v{v}: {:?}", self.log);
                (alloc::format!("consume(v{v})"), 0, 0)
            }
            80..=83 => {
                let p = self.pick_port(c);
                let prio = [3, 7, 0, 15, 16][self.rng.below(5) as usize];
                let rc = self.env.set_priority(p, prio);
                let m = &mut self.model.doms[ix(c)];
                let want = if FIFO_BUILT_IN && !m.fifo_ok {
                    ENOSYS
                } else if p >= m.valid() {
                    EINVAL
                } else if !m.fifo {
                    ENOSYS
                } else if !m.usable(p) {
                    EACCES
                } else if prio > 15 {
                    EINVAL
                } else {
                    m.ports[p as usize].prio = prio as u8;
                    0
                };
                (alloc::format!("set_priority({p},{prio})"), rc, want)
            }
            84..=88 => {
                // Linux's FIFO start-up, one vCPU at a time: a zeroed control block.
                let v = self.pick_vcpu();
                let bad = self.rng.below(6) == 0;
                let gfn = if bad { BAD_GFN } else { CB_GFN + u64::from(v) };
                if !bad && v < NVCPU && !self.model.doms[ix(c)].cb[v as usize] {
                    let off = (gfn * 4096) as usize;
                    self.env.dom(c).mem.bytes[off..off + 4096].fill(0);
                    self.guests[ix(c)].local_head[v as usize] = [0; 16];
                }
                let (rc, _) = self.env.init_control(gfn, 0, v);
                let m = &mut self.model.doms[ix(c)];
                let want = if !FIFO_BUILT_IN {
                    EOPNOTSUPP
                } else if !m.fifo_ok {
                    ENOSYS
                } else if v >= NVCPU {
                    ENOENT
                } else if (m.fifo && m.cb[v as usize]) || bad {
                    EINVAL
                } else {
                    if !m.fifo {
                        m.fifo = true;
                        let last = m.valid().min(4096);
                        for p in 1..last {
                            if m.pend2.contains(&p) {
                                m.ports[p as usize].deferred = true;
                            }
                            m.ports[p as usize].prio = 7;
                        }
                        self.guests[ix(c)].cb =
                            (0..NVCPU).map(|v| (CB_GFN + u64::from(v)) * 4096).collect();
                        self.guests[ix(c)].pages.clear();
                    }
                    m.cb[v as usize] = true;
                    0
                };
                (alloc::format!("init_control(v{v},bad={bad})"), rc, want)
            }
            89..=93 => {
                // expand_array with a page pre-set to MASKED, as Linux does.
                let m = &self.model.doms[ix(c)];
                let npages = m.words.len() as u64 / 1024;
                let bad = self.rng.below(6) == 0 || npages >= 3;
                let gfn = if bad { BAD_GFN } else { ARRAY_GFN + npages };
                if !bad {
                    let mem = &mut self.env.dom(c).mem;
                    for i in 0..1024u64 {
                        mem.write_gpa(
                            gfn * 4096 + i * 4,
                            &(1u32 << EVTCHN_FIFO_MASKED).to_le_bytes(),
                        )
                        .unwrap();
                    }
                }
                let rc = self.env.expand_array(gfn);
                let m = &mut self.model.doms[ix(c)];
                let want = if !FIFO_BUILT_IN {
                    EOPNOTSUPP
                } else if !m.fifo_ok {
                    ENOSYS
                } else if !m.fifo {
                    EOPNOTSUPP
                } else if bad {
                    EINVAL
                } else {
                    let first = m.words.len() as u32;
                    m.words.resize(
                        m.words.len() + 1024,
                        MWord {
                            p: false,
                            m: true,
                            l: false,
                        },
                    );
                    self.guests[ix(c)].pages.push(gfn * 4096);
                    let last = (first + 1024).min(m.valid());
                    for p in first..last {
                        let mp = &mut self.model.doms[ix(c)].ports[p as usize];
                        if mp.deferred {
                            mp.deferred = false;
                            let v = mp.vcpu;
                            self.model.set_pending_raw(c, v, p);
                        }
                    }
                    0
                };
                (alloc::format!("expand_array(bad={bad})"), rc, want)
            }
            94..=96 => {
                // Domain 3 is the one that resets (the hibernation resume path);
                // the others sometimes try to reset somebody else.
                let d = if c == 3 { SELF } else { self.pick_dom() };
                let rc = self.env.reset(d);
                let dd = Self::resolve(c, d);
                let want = if !DOMS.contains(&dd) {
                    ESRCH
                } else if dd != c {
                    EPERM
                } else {
                    self.model.reset(c);
                    0
                };
                (alloc::format!("reset({d})"), rc, want)
            }
            _ => {
                // The hypervisor raises a VIRQ.
                let virq = VIRQS[self.rng.below(5) as usize];
                let v = self.rng.below(u64::from(NVCPU)) as u32;
                send_virq(&mut self.env, DomId(c), v, virq);
                let m = &self.model.doms[ix(c)];
                let global = virq_is_global(virq);
                let slot = if global { 0 } else { v };
                let p = m.virq[slot as usize][virq as usize];
                if p != 0 {
                    let target = if global { m.ports[p as usize].vcpu } else { v };
                    self.model.set_pending(c, target, p);
                }
                (alloc::format!("send_virq({v},{virq})"), 0, 0)
            }
        };
        self.log.push(alloc::format!("d{c}: {what} = {rc}"));
        assert_eq!(rc, want, "d{c}: {what}; history: {:#?}", self.log);
        let kicks = core::mem::take(&mut self.env.upcalls);
        let want_kicks = core::mem::take(&mut self.model.kicks);
        assert_eq!(
            kicks, want_kicks,
            "upcalls after d{c}: {what}; history: {:#?}",
            self.log
        );
        self.check();
    }

    /// Compare every domain against the model.
    fn check(&mut self) {
        for d in DOMS {
            let m = &self.model.doms[ix(d)];
            let fd = self.env.doms.get_mut(&d).unwrap();
            let e = &fd.evtchn;
            let ctx = || alloc::format!("d{d}: {:#?}", self.log);
            assert_eq!(e.valid_evtchns(), m.valid(), "valid ports {}", ctx());
            assert_eq!(e.is_fifo(), m.fifo, "ABI {}", ctx());
            for p in 0..m.valid() {
                let ch = e.channel(p).unwrap();
                let mp = m.ports[p as usize];
                let st = match ch.state {
                    ChannelState::Free => MState::Free,
                    ChannelState::Reserved => MState::Reserved,
                    ChannelState::Unbound { remote_dom } => MState::Unbound(remote_dom.0),
                    ChannelState::Interdomain {
                        remote_dom,
                        remote_port,
                    } => MState::Inter(remote_dom.0, remote_port),
                    ChannelState::Virq { virq } => MState::Virq(virq),
                    ChannelState::Ipi => MState::Ipi,
                    ChannelState::Pirq { .. } => panic!("no pirqs"),
                };
                assert_eq!((st, ch.notify_vcpu), (mp.st, mp.vcpu), "port {p} {}", ctx());
                if m.fifo {
                    assert_eq!(ch.fifo_pending, mp.deferred, "deferred {p} {}", ctx());
                    if mp.st != MState::Free {
                        assert_eq!(ch.priority, mp.prio, "priority {p} {}", ctx());
                    }
                }
            }
            let si = e.shared_info();
            for v in 0..NVCPU {
                assert_eq!(
                    si.upcall_pending(&fd.mem, v).unwrap(),
                    m.upcall[v as usize],
                    "upcall v{v} {}",
                    ctx()
                );
                if !m.fifo {
                    assert_eq!(
                        si.pending_sel(&fd.mem, v).unwrap(),
                        m.sel[v as usize],
                        "sel v{v} {}",
                        ctx()
                    );
                }
            }
            for p in 0..256 {
                assert_eq!(
                    si.pending_bit(&fd.mem, p).unwrap(),
                    m.pend2.contains(&p),
                    "2l pending {p} {}",
                    ctx()
                );
                assert_eq!(
                    si.mask_bit(&fd.mem, p).unwrap(),
                    m.mask2.contains(&p),
                    "2l mask {p} {}",
                    ctx()
                );
            }
            if m.fifo {
                let g = &self.guests[ix(d)];
                for p in 0..m.words.len().min(256) as u32 {
                    let w = g.word_val(&fd.mem, p);
                    let mw = m.words[p as usize];
                    let got = MWord {
                        p: w & (1 << EVTCHN_FIFO_PENDING) != 0,
                        m: w & (1 << EVTCHN_FIFO_MASKED) != 0,
                        l: w & (1 << EVTCHN_FIFO_LINKED) != 0,
                    };
                    assert_eq!(got, mw, "fifo word {p} {}", ctx());
                }
                for v in 0..NVCPU {
                    if !m.cb[v as usize] {
                        continue;
                    }
                    let cb = g.cb[v as usize];
                    assert_eq!(
                        GuestFifo::read(&fd.mem, cb),
                        m.ready[v as usize],
                        "ready v{v} {}",
                        ctx()
                    );
                    for q in 0..16u64 {
                        let want: Vec<u32> =
                            m.queues[v as usize][q as usize].iter().copied().collect();
                        if want.is_empty() {
                            continue;
                        }
                        let mut got = Vec::new();
                        let mut p = GuestFifo::read(&fd.mem, cb + 8 + q * 4);
                        while p != 0 && got.len() <= want.len() {
                            got.push(p);
                            p = g.word_val(&fd.mem, p) & EVTCHN_FIFO_LINK_MASK;
                        }
                        assert_eq!(got, want, "queue v{v} q{q} {}", ctx());
                    }
                }
            }
        }
    }
}

#[test]
fn random_op_sequences_match_the_model() {
    for seed in 1..=50u64 {
        let mut w = World::new(seed);
        for _ in 0..400 {
            w.step();
        }
    }
}

#[test]
fn the_model_exercises_every_path() {
    // Guard against a model that silently tests nothing: over a few seeds the
    // run must switch to FIFO, deliver FIFO and 2-level events, and reset.
    let mut saw_fifo = false;
    let mut fifo_links = 0;
    let mut resets_from_fifo = 0;
    for seed in 1..=8u64 {
        let mut w = World::new(seed);
        for _ in 0..400 {
            let was_fifo = w.model.doms[2].fifo;
            w.step();
            saw_fifo |= w.model.doms.iter().any(|m| m.fifo);
            fifo_links += w
                .model
                .doms
                .iter()
                .map(|m| m.queues.iter().flatten().map(|q| q.len()).sum::<usize>())
                .sum::<usize>();
            if was_fifo && !w.model.doms[2].fifo {
                resets_from_fifo += 1;
            }
        }
        assert!(!w.model.doms[1].fifo, "domain 2 is never FIFO");
    }
    assert_eq!(saw_fifo, FIFO_BUILT_IN);
    if FIFO_BUILT_IN {
        assert!(fifo_links > 0, "no FIFO event was ever linked");
        assert!(resets_from_fifo > 0, "domain 3 never left FIFO");
    }
}
