//! The stage-2 tables of every domain and view: built once by the one stage-2
//! builder (`common::memory::Stage2Tree`) with the backend's entry encoder, then
//! edited in place as the p2m changes, and the shootdown that makes a change
//! final ([`commit`]).
//!
//! The counterpart of Xen's per-p2m `ept`/`npt` table roots (`p2m->phys_table`,
//! one per altp2m view) with `ept_set_entry`'s in-place writes and the
//! `flush_tlb_mask(d->dirty_cpumask)` that follows a removal. The ordering rule
//! (`docs/memory.md`, "p2m changes and shootdown"): tables edited, then every CPU
//! in guest mode for the domain made to exit, then each vCPU flushes before its
//! next entry, and only then are unmapped guest frames and emptied table frames
//! freed.

use alloc::collections::BTreeMap;
use alloc::vec::Vec;

use xen_public_abi::xen::domid_t;
use xen_public_abi::XenResult;

use crate::arch::x86_64::lock::OrderedMutex;
use crate::arch::x86_64::{frame, paging};
use crate::common::lock_order::LockClass;
use crate::common::memory::{
    sync_stage2, EntryEncoder, P2m, P2mCommit, Stage2Frames, Stage2Tree, ViewId,
};

/// One view's tables and the encoder they were built with.
struct Tree {
    tree: Stage2Tree,
    enc: &'static dyn EntryEncoder,
}

static TREES: OrderedMutex<BTreeMap<(domid_t, ViewId), Tree>> =
    OrderedMutex::new(LockClass::Stage2Trees, BTreeMap::new());

/// Bring every built tree of `domid` up to date with its p2m (in place), make every
/// CPU in guest mode for the domain exit ([`crate::arch::x86_64::sched::shootdown`]),
/// mark the p2m flushed (each vCPU flushes before its next entry), then free the
/// table frames no tree uses any more. Views without tables just drop their log
/// (their first use builds them whole). Called under the state lock.
pub fn commit(domid: domid_t, p2m: &mut P2m) -> XenResult<()> {
    let mut retired = Vec::new();
    let mut res = Ok(());
    {
        let mut trees = TREES.lock();
        for view in P2m::all_views() {
            let Some(t) = trees.remove(&(domid, view)) else {
                let _ = p2m.take_stage2_update(view);
                continue;
            };
            let enc = t.enc;
            let mut slot = Some(t.tree);
            let r = sync_stage2(&mut slot, p2m, view, enc, &mut KernelFrames, &mut retired);
            if let Some(tree) = slot {
                trees.insert((domid, view), Tree { tree, enc });
            }
            if let Err(e) = r {
                log::warn!("d{domid}: stage-2 {view:?} update failed: {e:?}");
                if res.is_ok() {
                    res = Err(e);
                }
            }
        }
    }
    crate::arch::x86_64::sched::shootdown(domid);
    p2m.tlb_flushed();
    for pa in retired {
        frame::free_contiguous(pa, 1);
    }
    res
}

/// The [`P2mCommit`] the run loop installs.
pub struct ArchCommit;

impl P2mCommit for ArchCommit {
    fn commit(&mut self, domid: domid_t, p2m: &mut P2m) -> XenResult<()> {
        commit(domid, p2m)
    }
}

/// The root of `view` of domain `domid`: pending p2m changes are committed first
/// (in place, with the shootdown), a view used for the first time is built with
/// `enc`. `-ENOMEM` when out of frames.
pub fn root_for(
    domid: domid_t,
    p2m: &mut P2m,
    view: ViewId,
    enc: &'static dyn EntryEncoder,
) -> XenResult<u64> {
    if p2m.stage2_pending() {
        commit(domid, p2m)?;
    }
    let mut trees = TREES.lock();
    if let Some(t) = trees.get(&(domid, view)) {
        return Ok(t.tree.root());
    }
    let mut taken = Vec::new();
    match Stage2Tree::build(p2m, view, enc, &mut KernelFrames, &mut taken) {
        Ok(tree) => {
            let root = tree.root();
            log::debug!(
                "d{domid}: stage-2 {view:?} built ({} tables), root {root:#x}",
                tree.nr_tables()
            );
            trees.insert((domid, view), Tree { tree, enc });
            Ok(root)
        }
        Err(e) => {
            // Never installed: no CPU can have walked these.
            for pa in taken {
                frame::free_contiguous(pa, 1);
            }
            Err(e)
        }
    }
}

/// The root to walk guest memory of `domid` with: `installed` (the vCPU's) if a
/// live tree of the domain still has it, else the live root of `view`, else 0
/// (no tables: every access fails).
pub fn live_root(domid: domid_t, installed: u64, view: ViewId) -> u64 {
    let trees = TREES.lock();
    let mine = trees.range((domid, ViewId::Host)..=(domid, ViewId::Alt(u16::MAX)));
    let mut fallback = 0;
    for ((_, v), t) in mine {
        if t.tree.root() == installed {
            return installed;
        }
        if *v == view {
            fallback = t.tree.root();
        }
    }
    fallback
}

/// Free every tree of a destroyed domain (none of its vCPUs is on a CPU).
pub fn domain_destroyed(domid: domid_t) {
    let mut trees = TREES.lock();
    let keys: Vec<(domid_t, ViewId)> = trees.keys().filter(|k| k.0 == domid).copied().collect();
    let mut frames = Vec::new();
    for k in keys {
        if let Some(t) = trees.remove(&k) {
            t.tree.retire_all(&mut frames);
        }
    }
    drop(trees);
    for pa in frames {
        frame::free_contiguous(pa, 1);
    }
}

/// Table frames from the kernel's frame allocator, written through the physical
/// map. The trees remember their own frames.
pub struct KernelFrames;

impl Stage2Frames for KernelFrames {
    fn alloc_table(&mut self) -> Option<u64> {
        frame::alloc_zeroed()
    }

    fn read(&self, table_pa: u64, index: usize) -> u64 {
        // SAFETY: `table_pa` is a table frame of a live tree (allocated above,
        // freed only after it left the tree and the shootdown) and `index & 511`
        // stays inside the 4 KiB frame.
        unsafe {
            (paging::phys_to_virt(table_pa) as *const u64)
                .add(index & 511)
                .read_volatile()
        }
    }

    fn write(&mut self, table_pa: u64, index: usize, value: u64) {
        // SAFETY: as in `read`. Other CPUs' page walkers may read the entry at the
        // same time: an aligned 8-byte volatile store is seen whole or not at all.
        unsafe {
            (paging::phys_to_virt(table_pa) as *mut u64)
                .add(index & 511)
                .write_volatile(value)
        }
    }
}
