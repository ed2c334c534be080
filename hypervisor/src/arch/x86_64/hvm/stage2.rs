//! The stage-2 tables of every domain and view, built from the p2m by the one
//! stage-2 builder (`common::memory::build_stage2`) with the backend's entry
//! encoder, and rebuilt when the view's generation moves.
//!
//! The counterpart of Xen's per-p2m `ept`/`npt` table roots (`p2m->phys_table`,
//! one per altp2m view). A tree replaced while another vCPU may still run on it is
//! retired, not freed, until the domain goes away (no cross-CPU TLB shootdown
//! protocol exists yet to know when the last user left it).

use alloc::vec::Vec;

use spin::Mutex;
use xen_public_abi::xen::domid_t;
use xen_public_abi::XenResult;

use crate::arch::x86_64::{frame, paging};
use crate::common::memory::{build_stage2, EntryEncoder, P2m, Stage2Frames, ViewId};

struct Tree {
    domid: domid_t,
    view: ViewId,
    /// (view generation, host generation) the tree was built at.
    built_at: (u64, u64),
    root: u64,
    frames: KernelFrames,
}

struct Trees {
    live: Vec<Tree>,
    retired: Vec<(domid_t, KernelFrames)>,
}

static TREES: Mutex<Trees> = Mutex::new(Trees {
    live: Vec::new(),
    retired: Vec::new(),
});

/// The root of `view` of domain `domid`, built (or rebuilt, when the view or the
/// host view changed since) with `enc`. `-ENOMEM` when out of frames.
pub fn root_for(domid: domid_t, p2m: &P2m, view: ViewId, enc: &dyn EntryEncoder) -> XenResult<u64> {
    let now = (p2m.generation(view), p2m.generation(ViewId::Host));
    let mut t = TREES.lock();
    let pos = t
        .live
        .iter()
        .position(|x| x.domid == domid && x.view == view);
    if let Some(i) = pos {
        if t.live[i].built_at == now {
            return Ok(t.live[i].root);
        }
    }
    let mut frames = KernelFrames::default();
    let root = match build_stage2(p2m, view, enc, &mut frames) {
        Ok(r) => r,
        Err(e) => {
            frames.free_all();
            return Err(e);
        }
    };
    let tree = Tree {
        domid,
        view,
        built_at: now,
        root,
        frames,
    };
    match pos {
        Some(i) => {
            let old = core::mem::replace(&mut t.live[i], tree);
            t.retired.push((domid, old.frames));
        }
        None => t.live.push(tree),
    }
    log::debug!("d{domid}: stage-2 {view:?} built at generation {now:?}, root {root:#x}");
    Ok(root)
}

/// Free every tree of a destroyed domain.
pub fn domain_destroyed(domid: domid_t) {
    let mut t = TREES.lock();
    let Trees { live, retired } = &mut *t;
    live.retain_mut(|x| {
        if x.domid == domid {
            x.frames.free_all();
            false
        } else {
            true
        }
    });
    retired.retain_mut(|(d, f)| {
        if *d == domid {
            f.free_all();
            false
        } else {
            true
        }
    });
}

/// Table frames from the kernel's frame allocator, written through the physical
/// map. Remembers what it allocated so a whole table tree can be freed.
#[derive(Default)]
pub struct KernelFrames {
    pub allocated: Vec<u64>,
}

impl KernelFrames {
    /// Free every frame this tree used.
    pub fn free_all(&mut self) {
        for pa in self.allocated.drain(..) {
            frame::free_contiguous(pa, 1);
        }
    }
}

impl Stage2Frames for KernelFrames {
    fn alloc_table(&mut self) -> Option<u64> {
        let pa = frame::alloc_zeroed()?;
        self.allocated.push(pa);
        Some(pa)
    }

    fn read(&self, table_pa: u64, index: usize) -> u64 {
        // SAFETY: `table_pa` is one of our table frames (allocated above, never
        // freed while the tree lives) and `index` < 512 (the builder's table_index).
        unsafe {
            (paging::phys_to_virt(table_pa) as *const u64)
                .add(index & 511)
                .read_volatile()
        }
    }

    fn write(&mut self, table_pa: u64, index: usize, value: u64) {
        // SAFETY: as in `read`; the tables are ours alone until installed.
        unsafe {
            (paging::phys_to_virt(table_pa) as *mut u64)
                .add(index & 511)
                .write_volatile(value)
        }
    }
}
