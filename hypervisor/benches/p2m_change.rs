//! Host benchmark: the cost of a single-page p2m change against the domain's
//! size (issue 14: "flat from 16 MiB to 1 GiB"), through the real memory-op
//! handlers and the real commit path: the p2m, the domain's page index, and
//! stage-2 tables kept and edited in place (`Stage2Tree`, as the backends keep
//! them) with every change committed before the hypercall returns.
//!
//! - `add_to_physmap_same`: `XENMEM_add_to_physmap{gmfn, idx = gpfn}` on one of
//!   the domain's pages (the loop that used to leak a whole stage-2 tree per call);
//! - `decrease_then_populate`: `decrease_reservation` of one page and
//!   `populate_physmap` of it again (two changes, one frame freed and taken).
//!
//! - `old_full_rebuild`: for comparison, a whole build of the host view's tables,
//!   which is what every p2m change cost before the tables were edited in place.
//!
//! Then a leak check (printed, and asserted): 10^6 p2m changes on a 16 MiB domain
//! leave exactly the frames and stage-2 tables a fresh domain of that size holds.
//!
//! Run: `cargo bench -p hypervisor --bench p2m_change`.

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion};
use hypervisor::common::console_io::{Console, ConsoleSink};
use hypervisor::common::dispatch::XenExt;
use hypervisor::common::domain::{DomainTable, HostCaps};
use hypervisor::common::guest_access::{GuestAccess, MachineMemory};
use hypervisor::common::hypercall::{do_hypercall, Caller, Clock, Hypervisor};
use hypervisor::common::memory::{
    build_stage2, sync_stage2, EntryEncoder, P2m, P2mCommit, Rights, Stage2Frames, Stage2Tree,
    ViewId,
};
use hypervisor::common::page_alloc::PageAllocator;
use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use xen_public_abi::arch_x86::{xen_arch_domainconfig, XEN_X86_EMU_LAPIC};
use xen_public_abi::domctl::{xen_domctl_createdomain, XEN_DOMCTL_CDF_hap, XEN_DOMCTL_CDF_hvm};
use xen_public_abi::memory::{
    xen_add_to_physmap, xen_memory_reservation, XENMAPSPACE_gmfn, XENMEM_add_to_physmap,
    XENMEM_decrease_reservation, XENMEM_populate_physmap,
};
use xen_public_abi::xen::{__HYPERVISOR_memory_op, domid_t, DOMID_SELF};
use xen_public_abi::{Errno, XenResult};
use zerocopy::{FromZeros, Immutable, IntoBytes};

/// Guest frames: a counter and a free list.
#[derive(Clone, Default)]
struct Frames(Arc<Mutex<(u64, BTreeSet<u64>, usize)>>);

impl PageAllocator for Frames {
    fn alloc_frame(&mut self) -> Option<u64> {
        let mut p = self.0.lock().unwrap();
        p.2 += 1;
        match p.1.pop_first() {
            Some(m) => Some(m),
            None => {
                p.0 += 1;
                Some(p.0)
            }
        }
    }
    fn free_frame(&mut self, mfn: u64) {
        let mut p = self.0.lock().unwrap();
        assert!(p.1.insert(mfn), "double free");
        p.2 -= 1;
    }
}

impl Frames {
    fn outstanding(&self) -> usize {
        self.0.lock().unwrap().2
    }
}

/// Stage-2 table frames: each a boxed 512-entry array.
#[derive(Default)]
struct Tables {
    t: BTreeMap<u64, Box<[u64; 512]>>,
    next: u64,
}

impl Stage2Frames for Tables {
    fn alloc_table(&mut self) -> Option<u64> {
        self.next += 0x1000;
        self.t.insert(self.next, Box::new([0; 512]));
        Some(self.next)
    }
    fn read(&self, t: u64, i: usize) -> u64 {
        self.t.get(&t).map_or(0, |x| x[i & 511])
    }
    fn write(&mut self, t: u64, i: usize, v: u64) {
        if let Some(x) = self.t.get_mut(&t) {
            x[i & 511] = v;
        }
    }
}

/// EPT-like leaves.
struct Enc;

impl EntryEncoder for Enc {
    fn table_entry(&self, pa: u64) -> u64 {
        pa | 7
    }
    fn leaf_entry(&self, mfn: u64, r: Rights, _sve: bool) -> u64 {
        mfn << 12 | r.read as u64 | (r.write as u64) << 1 | (r.exec as u64) << 2
    }
}

/// The backends' commit, on host frames: host-view tree edited in place,
/// retired tables freed (the shootdown has no other CPU to wait for here).
#[derive(Clone, Default)]
struct Commit(Arc<Mutex<(Option<Stage2Tree>, Tables)>>);

impl P2mCommit for Commit {
    fn commit(&mut self, _domid: domid_t, p2m: &mut P2m) -> XenResult<()> {
        let mut g = self.0.lock().unwrap();
        let (tree, tables) = &mut *g;
        let mut retired = Vec::new();
        let r = sync_stage2(tree, p2m, ViewId::Host, &Enc, tables, &mut retired);
        for v in P2m::all_views().skip(1) {
            let _ = p2m.take_stage2_update(v);
        }
        p2m.tlb_flushed();
        for pa in retired {
            assert!(tables.t.remove(&pa).is_some());
        }
        r.map(|_| ())
    }
}

struct NoMachine;
impl MachineMemory for NoMachine {
    fn read(&self, _: u64, _: usize, _: &mut [u8]) -> bool {
        false
    }
    fn write(&self, _: u64, _: usize, _: &[u8]) -> bool {
        false
    }
    fn cmpxchg_u32(&self, _: u64, _: usize, _: u32, _: u32) -> Option<u32> {
        None
    }
}

struct Sink;
impl ConsoleSink for Sink {
    fn write(&mut self, _: &[u8]) {}
}

struct ZeroClock;
impl Clock for ZeroClock {
    fn now_ns(&self) -> u64 {
        0
    }
}

/// The caller's memory: hypercall arguments at 0, the extent list at 0x1000.
struct Args(Vec<u8>);
impl GuestAccess for Args {
    fn copy_from_guest(&mut self, gva: u64, buf: &mut [u8]) -> XenResult<()> {
        let s = gva as usize;
        let src = self.0.get(s..s + buf.len()).ok_or(Errno::EFAULT)?;
        buf.copy_from_slice(src);
        Ok(())
    }
    fn copy_to_guest(&mut self, gva: u64, buf: &[u8]) -> XenResult<()> {
        let s = gva as usize;
        self.0
            .get_mut(s..s + buf.len())
            .ok_or(Errno::EFAULT)?
            .copy_from_slice(buf);
        Ok(())
    }
}

const LIST: u64 = 0x1000;

struct World {
    hv: Hypervisor,
    ext: XenExt,
    args: Args,
    frames: Frames,
    commit: Commit,
    domid: domid_t,
}

impl World {
    /// A domain with `pages` pages populated at gfn 0.. and its host tree built.
    fn new(pages: u64) -> World {
        let frames = Frames::default();
        let domains = DomainTable::new(HostCaps::THIS_HYPERVISOR, Box::new(frames.clone()));
        let mut hv = Hypervisor::new(domains, Console::new(Box::new(Sink)), Box::new(ZeroClock));
        let mut ext = XenExt::new(Arc::new(NoMachine), Box::new(ZeroClock));
        let commit = Commit::default();
        ext.p2m_commit = Box::new(commit.clone());
        let mut c = xen_domctl_createdomain::new_zeroed();
        c.flags = XEN_DOMCTL_CDF_hvm | XEN_DOMCTL_CDF_hap;
        c.max_vcpus = 1;
        c.max_evtchn_port = 1023;
        c.max_grant_frames = -1;
        c.max_maptrack_frames = -1;
        c.grant_opts = 1;
        c.arch = xen_arch_domainconfig {
            emulation_flags: XEN_X86_EMU_LAPIC,
            misc_flags: 0,
        };
        let domid = hv.domains.create_domain(1, &c).expect("createdomain");
        hv.domains.get_mut(domid).unwrap().max_pages = pages;
        let mut w = World {
            hv,
            ext,
            args: Args(vec![0; 0x2000]),
            frames,
            commit,
            domid,
        };
        // Populate in order-9 extents (dom0-style builder), 512 at a time.
        let mut g = 0;
        while g < pages {
            let n = ((pages - g) / 512).clamp(1, 64);
            let list: Vec<u64> = (0..n).map(|i| g + i * 512).collect();
            let order = if pages - g >= 512 { 9 } else { 0 };
            let done = w.reservation(XENMEM_populate_physmap, &list, order);
            assert_eq!(done, n as i64);
            g += n << order;
        }
        w
    }

    fn memop<T: IntoBytes + Immutable>(&mut self, cmd: u32, arg: &T) -> i64 {
        self.args.copy_to_guest(0, arg.as_bytes()).unwrap();
        do_hypercall(
            &mut self.hv,
            &mut self.ext,
            Caller {
                domid: self.domid,
                vcpu: 0,
            },
            __HYPERVISOR_memory_op.into(),
            [cmd.into(), 0, 0, 0, 0],
            &mut self.args,
        )
    }

    fn reservation(&mut self, op: u32, gfns: &[u64], order: u32) -> i64 {
        self.args.copy_to_guest(LIST, gfns.as_bytes()).unwrap();
        let mut r = xen_memory_reservation::new_zeroed();
        r.extent_start = LIST;
        r.nr_extents = gfns.len() as u64;
        r.extent_order = order;
        r.domid = DOMID_SELF;
        self.memop(op, &r)
    }

    fn add_to_physmap_same(&mut self, gfn: u64) {
        let mut x = xen_add_to_physmap::new_zeroed();
        x.domid = DOMID_SELF;
        x.space = XENMAPSPACE_gmfn;
        x.idx = gfn;
        x.gpfn = gfn;
        assert_eq!(self.memop(XENMEM_add_to_physmap, &x), 0);
    }

    fn decrease_then_populate(&mut self, gfn: u64) {
        assert_eq!(self.reservation(XENMEM_decrease_reservation, &[gfn], 0), 1);
        assert_eq!(self.reservation(XENMEM_populate_physmap, &[gfn], 0), 1);
    }

    fn tables(&self) -> usize {
        self.commit.0.lock().unwrap().1.t.len()
    }
}

const SIZES_MIB: [u64; 4] = [16, 64, 256, 1024];

fn bench_change(c: &mut Criterion) {
    let mut g = c.benchmark_group("p2m_change");
    g.sample_size(30)
        .warm_up_time(Duration::from_millis(300))
        .measurement_time(Duration::from_secs(2));
    for mib in SIZES_MIB {
        let pages = mib << 8;
        let mut w = World::new(pages);
        let mut gfn = 0u64;
        g.bench_with_input(
            BenchmarkId::new("add_to_physmap_same", mib),
            &mib,
            |b, _| {
                b.iter(|| {
                    gfn = (gfn + 4099) % pages;
                    w.add_to_physmap_same(gfn);
                })
            },
        );
        g.bench_with_input(
            BenchmarkId::new("decrease_then_populate", mib),
            &mib,
            |b, _| {
                b.iter(|| {
                    gfn = (gfn + 4099) % pages;
                    w.decrease_then_populate(gfn);
                })
            },
        );
        // What every change cost before (issue 14 defect 2): a whole-tree build.
        let p2m = w.hv.domains.get(w.domid).unwrap().hvm.p2m.clone();
        g.bench_with_input(BenchmarkId::new("old_full_rebuild", mib), &mib, |b, _| {
            b.iter(|| {
                let mut t = Tables::default();
                build_stage2(&p2m, ViewId::Host, &Enc, &mut t).unwrap();
                t.t.len()
            })
        });
    }
    g.finish();
    leak_check();
}

/// 10^6 p2m changes on a 16 MiB domain: every frame and stage-2 table accounted.
fn leak_check() {
    let pages = 16 << 8;
    let mut w = World::new(pages);
    let frames0 = w.frames.outstanding();
    let tables0 = w.tables();
    let started = Instant::now();
    let mut gfn = 0u64;
    let mut changes = 0u64;
    while changes < 1_000_000 {
        gfn = (gfn + 4099) % pages;
        if changes.is_multiple_of(3) {
            w.add_to_physmap_same(gfn);
            changes += 1;
        } else {
            w.decrease_then_populate(gfn);
            changes += 2;
        }
    }
    let took = started.elapsed();
    let frames1 = w.frames.outstanding();
    let tables1 = w.tables();
    // What a fresh build of the same view holds.
    let p2m = &w.hv.domains.get(w.domid).unwrap().hvm.p2m;
    let mut fresh = Tables::default();
    build_stage2(p2m, ViewId::Host, &Enc, &mut fresh).unwrap();
    println!(
        "p2m_change leak check: {changes} changes on a 16 MiB domain in {:.2} s: \
         guest+shared_info frames {frames0} -> {frames1} (leaked {}), stage-2 tables \
         {tables0} -> {tables1} (fresh build {}, leaked {})",
        took.as_secs_f64(),
        frames1 as i64 - frames0 as i64,
        fresh.t.len(),
        tables1 as i64 - fresh.t.len() as i64,
    );
    assert_eq!(frames1, frames0, "guest frames leaked");
    assert_eq!(tables1, fresh.t.len(), "stage-2 tables leaked");
}

criterion_group!(benches, bench_change);
criterion_main!(benches);
