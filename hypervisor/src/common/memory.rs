//! The p2m (guest-physical → machine) of one domain, with altp2m views, and the
//! stage-2 builder that turns a view into 4-level EPT/NPT tables.
//!
//! Mirrors the arch-neutral part of Xen 4.17's `xen/arch/x86/mm/p2m.c` (altp2m
//! functions), `xen/arch/x86/mm/altp2m.c` and `xen/arch/x86/mm/mem_access.c`:
//!
//! - the **host view** is the domain's real p2m (what `XENMEM_populate_physmap` fills);
//! - up to [`MAX_ALTP2M`] **alternate views**, each a sparse map gfn → ([`P2mEntry`]) that
//!   overrides the host view; a gfn an alternate view does not hold falls through to the
//!   host entry (Xen copies it lazily on the first fault; we build it in eagerly, which
//!   gives the same tables);
//! - the **per-vCPU current view** (Xen's `vcpu_altp2m(v).p2midx`).
//!
//! Alternate view 0 is the "default" altp2m view created when altp2m is switched on;
//! the `HVMOP_altp2m` sub-ops that take a view treat index 0 as the host p2m (mem-access,
//! suppress-#VE), except `change_gfn`, which edits alternate view 0 itself, as Xen does.
//!
//! The backends never keep a parallel model: [`build_stage2`] walks a view and emits the
//! tables through an [`EntryEncoder`] (one for VMX EPT, one for SVM NPT) into frames from
//! a [`Stage2Frames`]. Each view has a generation counter so a backend knows when to
//! rebuild.

use alloc::collections::{BTreeMap, BTreeSet};
use alloc::vec;
use alloc::vec::Vec;
use xen_public_abi::memory::*;
use xen_public_abi::xen::domid_t;
use xen_public_abi::{Errno, XenResult};

/// Xen's `MAX_ALTP2M`: alternate views per domain.
pub const MAX_ALTP2M: usize = 10;
/// Xen's `INVALID_ALTP2M`: the view index of a vCPU while altp2m is off.
pub const INVALID_ALTP2M: u16 = 0xffff;
/// `INVALID_GFN` (`~0UL`).
pub const INVALID_GFN: u64 = !0;
/// Guest frame numbers the 4-level stage-2 tables can map (48-bit guest-physical).
pub const GFN_LIMIT: u64 = 1 << 36;

/// Xen's `p2m_access_t`: the access rights of one entry.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum P2mAccess {
    N,
    R,
    W,
    RW,
    X,
    RX,
    WX,
    RWX,
    /// Read-execute; a write upgrades the entry to read-write (no event).
    RX2RW,
    /// No access; the first access upgrades the entry to rwx and sends one event.
    N2RWX,
}

impl P2mAccess {
    /// All values, in `xenmem_access_t` order.
    pub const ALL: [P2mAccess; 10] = [
        P2mAccess::N,
        P2mAccess::R,
        P2mAccess::W,
        P2mAccess::RW,
        P2mAccess::X,
        P2mAccess::RX,
        P2mAccess::WX,
        P2mAccess::RWX,
        P2mAccess::RX2RW,
        P2mAccess::N2RWX,
    ];

    /// The `xenmem_access_t` naming this access (`XENMEM_access_default` is not one).
    pub fn from_xenmem(x: xenmem_access_t) -> Option<P2mAccess> {
        P2mAccess::ALL.get(x as usize).copied()
    }

    /// The `xenmem_access_t` value for this access.
    pub fn to_xenmem(self) -> xenmem_access_t {
        match self {
            P2mAccess::N => XENMEM_access_n,
            P2mAccess::R => XENMEM_access_r,
            P2mAccess::W => XENMEM_access_w,
            P2mAccess::RW => XENMEM_access_rw,
            P2mAccess::X => XENMEM_access_x,
            P2mAccess::RX => XENMEM_access_rx,
            P2mAccess::WX => XENMEM_access_wx,
            P2mAccess::RWX => XENMEM_access_rwx,
            P2mAccess::RX2RW => XENMEM_access_rx2rw,
            P2mAccess::N2RWX => XENMEM_access_n2rwx,
        }
    }

    /// The hardware rights (read, write, execute) this access grants.
    pub fn rights(self) -> Rights {
        let (read, write, exec) = match self {
            P2mAccess::N | P2mAccess::N2RWX => (false, false, false),
            P2mAccess::R => (true, false, false),
            P2mAccess::W => (false, true, false),
            P2mAccess::RW => (true, true, false),
            P2mAccess::X => (false, false, true),
            P2mAccess::RX | P2mAccess::RX2RW => (true, false, true),
            P2mAccess::WX => (false, true, true),
            P2mAccess::RWX => (true, true, true),
        };
        Rights { read, write, exec }
    }
}

/// Read / write / execute permission bits, for an entry or for one access.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct Rights {
    pub read: bool,
    pub write: bool,
    pub exec: bool,
}

impl Rights {
    pub const READ: Rights = Rights {
        read: true,
        write: false,
        exec: false,
    };
    pub const WRITE: Rights = Rights {
        read: false,
        write: true,
        exec: false,
    };
    pub const EXEC: Rights = Rights {
        read: false,
        write: false,
        exec: true,
    };

    /// True if every right asked for in `kind` is granted by `self`.
    pub fn allows(self, kind: Rights) -> bool {
        (!kind.read || self.read) && (!kind.write || self.write) && (!kind.exec || self.exec)
    }
}

/// One mapping: machine frame, access rights and the #VE suppress bit.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct P2mEntry {
    pub mfn: u64,
    pub access: P2mAccess,
    /// EPT bit 63: an access violation on this gfn is never turned into a #VE.
    pub suppress_ve: bool,
}

/// Which view: the host p2m or alternate view `n`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum ViewId {
    Host,
    Alt(u16),
}

/// The gfns of one view changed since its stage-2 tables were last brought up to
/// date, or "rebuild": the view was created, reset or destroyed, or more than
/// [`CHANGE_LOG_LIMIT`] gfns changed (a bound on the log, not on correctness).
#[derive(Clone, Debug, Default)]
struct ChangeLog {
    gfns: BTreeSet<u64>,
    rebuild: bool,
}

/// Gfns a view's change log holds before it turns into "rebuild the view".
pub const CHANGE_LOG_LIMIT: usize = 4096;

/// What a view's stage-2 tables need to match the p2m again
/// ([`P2m::take_stage2_update`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Stage2Update {
    /// Up to date.
    Nothing,
    /// Rewrite these gfns' leaves (in place, O(1) each).
    Gfns(Vec<u64>),
    /// Build the view afresh (or drop its tables if the view no longer exists).
    Rebuild,
}

/// One alternate view (Xen: an entry of `d->arch.altp2m_p2m[]` whose EPTP is valid).
#[derive(Clone, Debug)]
struct AltView {
    /// The view's own entries (overrides of the host view).
    entries: BTreeMap<u64, P2mEntry>,
    default_access: P2mAccess,
    /// In the visible list (`altp2m_visible_eptp`): may be switched to.
    visible: bool,
    /// Lowest and highest gfn used as a `change_gfn` target (for host removals).
    min_remapped_gfn: u64,
    max_remapped_gfn: u64,
}

impl AltView {
    fn new(default_access: P2mAccess) -> Self {
        AltView {
            entries: BTreeMap::new(),
            default_access,
            visible: true,
            min_remapped_gfn: INVALID_GFN,
            max_remapped_gfn: 0,
        }
    }

    /// Xen's `p2m_reset_altp2m`: drop every entry (the view stays active).
    fn reset(&mut self) {
        self.entries.clear();
        self.min_remapped_gfn = INVALID_GFN;
        self.max_remapped_gfn = 0;
    }
}

/// A domain's p2m: host view, alternate views, per-vCPU current view.
#[derive(Clone, Debug)]
pub struct P2m {
    host: BTreeMap<u64, P2mEntry>,
    host_default_access: P2mAccess,
    altp2m: [Option<AltView>; MAX_ALTP2M],
    /// Xen's `d->arch.altp2m_active`.
    altp2m_active: bool,
    /// Per vCPU: index of its alternate view, or `INVALID_ALTP2M` while altp2m is off.
    vcpu_idx: Vec<u16>,
    /// Bumped on every change of the host view (index 0) or alternate view n (1 + n).
    generation: [u64; MAX_ALTP2M + 1],
    /// Per view (same indexing): what changed since its tables were last updated.
    changes: [ChangeLog; MAX_ALTP2M + 1],
    /// Bumped each time every CPU has dropped its translations of this p2m (after
    /// a change was committed to the tables): a vCPU that last flushed at an older
    /// value flushes its guest TLB before its next entry.
    tlb_generation: u64,
}

impl P2m {
    /// An empty p2m for a domain with `nr_vcpus` vCPUs; altp2m off.
    pub fn new(nr_vcpus: u32) -> Self {
        P2m {
            host: BTreeMap::new(),
            host_default_access: P2mAccess::RWX,
            altp2m: Default::default(),
            altp2m_active: false,
            vcpu_idx: vec![INVALID_ALTP2M; nr_vcpus as usize],
            generation: [0; MAX_ALTP2M + 1],
            changes: Default::default(),
            tlb_generation: 0,
        }
    }

    /// Number of vCPUs this p2m tracks a current view for.
    pub fn nr_vcpus(&self) -> u32 {
        self.vcpu_idx.len() as u32
    }

    /// Change counter of a view (host or alternate): a backend rebuilds its stage-2
    /// tables for the view when this differs from the value it built them at.
    pub fn generation(&self, view: ViewId) -> u64 {
        match view {
            ViewId::Host => self.generation[0],
            ViewId::Alt(i) => self.generation.get(1 + i as usize).copied().unwrap_or(0),
        }
    }

    fn view_slot(view: ViewId) -> usize {
        match view {
            ViewId::Host => 0,
            ViewId::Alt(i) => 1 + i as usize,
        }
    }

    /// The whole view changed (created, reset, destroyed): its tables are rebuilt.
    fn bump(&mut self, view: ViewId) {
        let i = Self::view_slot(view);
        if let Some(g) = self.generation.get_mut(i) {
            *g = g.wrapping_add(1);
        }
        if let Some(c) = self.changes.get_mut(i) {
            c.gfns.clear();
            c.rebuild = true;
        }
    }

    /// One gfn of the view changed: its leaf is rewritten in place.
    fn touch(&mut self, view: ViewId, gfn: u64) {
        let i = Self::view_slot(view);
        if let Some(g) = self.generation.get_mut(i) {
            *g = g.wrapping_add(1);
        }
        if let Some(c) = self.changes.get_mut(i) {
            if !c.rebuild {
                c.gfns.insert(gfn);
                if c.gfns.len() > CHANGE_LOG_LIMIT {
                    c.gfns.clear();
                    c.rebuild = true;
                }
            }
        }
    }

    /// What `view`'s stage-2 tables need to catch up with the p2m; the log is
    /// emptied (the caller applies it or, having no tables for the view, drops it:
    /// a first build reads the whole view).
    pub fn take_stage2_update(&mut self, view: ViewId) -> Stage2Update {
        let Some(c) = self.changes.get_mut(Self::view_slot(view)) else {
            return Stage2Update::Nothing;
        };
        let c = core::mem::take(c);
        if c.rebuild {
            Stage2Update::Rebuild
        } else if c.gfns.is_empty() {
            Stage2Update::Nothing
        } else {
            Stage2Update::Gfns(c.gfns.into_iter().collect())
        }
    }

    /// Ask for `view`'s tables to be rebuilt (after a failed update).
    pub fn request_rebuild(&mut self, view: ViewId) {
        if let Some(c) = self.changes.get_mut(Self::view_slot(view)) {
            c.gfns.clear();
            c.rebuild = true;
        }
    }

    /// Some view changed since its tables were last brought up to date.
    pub fn stage2_pending(&self) -> bool {
        self.changes.iter().any(|c| c.rebuild || !c.gfns.is_empty())
    }

    /// Every view a stage-2 tree may exist for (host, then the alternate views).
    pub fn all_views() -> impl Iterator<Item = ViewId> {
        core::iter::once(ViewId::Host).chain((0..MAX_ALTP2M as u16).map(ViewId::Alt))
    }

    /// Does `view` exist (the host always does)?
    pub fn has_view(&self, view: ViewId) -> bool {
        match view {
            ViewId::Host => true,
            ViewId::Alt(i) => self.view_exists(i),
        }
    }

    /// See [`P2m::tlb_flushed`].
    pub fn tlb_generation(&self) -> u64 {
        self.tlb_generation
    }

    /// Every CPU has dropped its translations of this p2m: each vCPU flushes its
    /// guest TLB before its next entry ([`P2m::tlb_generation`] moved).
    pub fn tlb_flushed(&mut self) {
        self.tlb_generation = self.tlb_generation.wrapping_add(1);
    }

    // ---- host view -------------------------------------------------------------

    /// Map `gfn` → `mfn` in the host view with `access` (suppress-#VE set, as Xen's new
    /// EPT entries). Alternate views that hold the gfn get the new mfn and access
    /// (Xen's `p2m_altp2m_propagate_change`). Bad gfn → `-EINVAL`.
    pub fn set_host_entry(&mut self, gfn: u64, mfn: u64, access: P2mAccess) -> XenResult<()> {
        if gfn >= GFN_LIMIT {
            return Err(Errno::EINVAL);
        }
        let sve = self.host.get(&gfn).is_none_or(|e| e.suppress_ve);
        self.write_host(
            gfn,
            P2mEntry {
                mfn,
                access,
                suppress_ve: sve,
            },
        );
        Ok(())
    }

    /// Unmap `gfn` from the host view; alternate views drop it too, and a view whose
    /// `change_gfn` targets cover it is reset (two or more such views: all are reset).
    pub fn remove_host_entry(&mut self, gfn: u64) {
        let removed = self.host.remove(&gfn).is_some();
        if removed {
            self.touch(ViewId::Host, gfn);
        }
        if !self.altp2m_active {
            // (No view exists while altp2m is off; any that did falls through.)
            for i in 0..MAX_ALTP2M {
                if removed && self.altp2m[i].is_some() {
                    self.touch(ViewId::Alt(i as u16), gfn);
                }
            }
            return;
        }
        let mut resets = 0;
        for i in 0..MAX_ALTP2M {
            let Some(v) = self.altp2m[i].as_mut() else {
                continue;
            };
            if gfn >= v.min_remapped_gfn && gfn <= v.max_remapped_gfn {
                resets += 1;
                if resets == 1 {
                    v.reset();
                } else {
                    for w in self.altp2m.iter_mut().flatten() {
                        w.reset();
                    }
                    for j in 0..MAX_ALTP2M {
                        self.bump(ViewId::Alt(j as u16));
                    }
                    return;
                }
                self.bump(ViewId::Alt(i as u16));
            } else if v.entries.remove(&gfn).is_some() || removed {
                // Its own entry went, or the host entry it fell through to.
                self.touch(ViewId::Alt(i as u16), gfn);
            }
        }
    }

    /// The highest gfn the host view maps (`p2m->max_mapped_pfn`).
    pub fn max_host_gfn(&self) -> Option<u64> {
        self.host.last_key_value().map(|(g, _)| *g)
    }

    /// The host view's entry for `gfn`.
    pub fn host_entry(&self, gfn: u64) -> Option<P2mEntry> {
        self.host.get(&gfn).copied()
    }

    fn write_host(&mut self, gfn: u64, e: P2mEntry) {
        self.host.insert(gfn, e);
        self.touch(ViewId::Host, gfn);
        for i in 0..MAX_ALTP2M {
            if let Some(v) = self.altp2m[i].as_mut() {
                if let Some(a) = v.entries.get_mut(&gfn).filter(|_| self.altp2m_active) {
                    a.mfn = e.mfn;
                    a.access = e.access;
                }
                // Its own entry followed, or it falls through to the host's.
                self.touch(ViewId::Alt(i as u16), gfn);
            }
        }
    }

    // ---- altp2m state ----------------------------------------------------------

    /// Xen's `altp2m_active(d)`.
    pub fn altp2m_active(&self) -> bool {
        self.altp2m_active
    }

    /// Is alternate view `idx` active (Xen: its EPTP is valid)?
    pub fn view_exists(&self, idx: u16) -> bool {
        self.altp2m.get(idx as usize).is_some_and(|v| v.is_some())
    }

    /// Is alternate view `idx` in the visible list?
    pub fn view_visible(&self, idx: u16) -> bool {
        self.altp2m
            .get(idx as usize)
            .and_then(|v| v.as_ref())
            .is_some_and(|v| v.visible)
    }

    /// The current view index of `vcpu` (`INVALID_ALTP2M` when altp2m is off).
    pub fn vcpu_altp2m_idx(&self, vcpu: u32) -> u16 {
        self.vcpu_idx
            .get(vcpu as usize)
            .copied()
            .unwrap_or(INVALID_ALTP2M)
    }

    /// The view `vcpu` runs on: its alternate view while altp2m is on, else the host.
    pub fn current_view(&self, vcpu: u32) -> ViewId {
        match self.vcpu_altp2m_idx(vcpu) {
            INVALID_ALTP2M => ViewId::Host,
            i => ViewId::Alt(i),
        }
    }

    /// Number of vCPUs whose current view is alternate view `idx`.
    pub fn active_vcpus(&self, idx: u16) -> usize {
        self.vcpu_idx.iter().filter(|&&i| i == idx).count()
    }

    /// Switch altp2m on: activate alternate view 0 with the host's default access and
    /// put every vCPU on it. Returns the vCPUs whose view changed. Already on: no-op.
    /// (`HVMOP_altp2m_set_domain_state`, `p2m_init_altp2m_by_id(d, 0)`.)
    pub fn enable_altp2m(&mut self) -> Vec<u32> {
        if self.altp2m_active {
            return Vec::new();
        }
        // Views are all dropped while altp2m is off, so view 0 is free here (Xen's
        // p2m_init_altp2m_by_id(d, 0) cannot fail either).
        self.altp2m[0] = Some(AltView::new(self.host_default_access));
        self.bump(ViewId::Alt(0));
        self.altp2m_active = true;
        for i in self.vcpu_idx.iter_mut() {
            *i = 0;
        }
        (0..self.nr_vcpus()).collect()
    }

    /// Switch altp2m off: every vCPU back on the host view, every alternate view
    /// dropped (`p2m_flush_altp2m`). Returns the vCPUs whose view changed.
    pub fn disable_altp2m(&mut self) -> Vec<u32> {
        if !self.altp2m_active {
            return Vec::new();
        }
        self.altp2m_active = false;
        for i in self.vcpu_idx.iter_mut() {
            *i = INVALID_ALTP2M;
        }
        for j in 0..MAX_ALTP2M {
            self.altp2m[j] = None;
            self.bump(ViewId::Alt(j as u16));
        }
        (0..self.nr_vcpus()).collect()
    }

    /// Xen's `xenmem_access_to_p2m_access`: `default` is the host's default access.
    pub fn xenmem_to_p2m_access(&self, x: xenmem_access_t) -> Option<P2mAccess> {
        if x == XENMEM_access_default {
            Some(self.host_default_access)
        } else {
            P2mAccess::from_xenmem(x)
        }
    }

    /// `p2m_init_next_altp2m`: activate the lowest free alternate view with the given
    /// default access. Bad access or no free view → `-EINVAL`.
    pub fn init_next_altp2m(&mut self, default_access: xenmem_access_t) -> XenResult<u16> {
        let a = self
            .xenmem_to_p2m_access(default_access)
            .ok_or(Errno::EINVAL)?;
        let i = self
            .altp2m
            .iter()
            .position(|v| v.is_none())
            .ok_or(Errno::EINVAL)?;
        self.altp2m[i] = Some(AltView::new(a));
        self.bump(ViewId::Alt(i as u16));
        Ok(i as u16)
    }

    /// `p2m_destroy_altp2m_by_id`: view 0, an out-of-range or inactive view, or a view
    /// some vCPU is on → `-EBUSY`.
    pub fn destroy_altp2m_by_id(&mut self, idx: u16) -> XenResult<()> {
        if idx == 0 || idx as usize >= MAX_ALTP2M || !self.view_exists(idx) {
            return Err(Errno::EBUSY);
        }
        if self.active_vcpus(idx) != 0 {
            return Err(Errno::EBUSY);
        }
        self.altp2m[idx as usize] = None;
        self.bump(ViewId::Alt(idx));
        Ok(())
    }

    /// `p2m_switch_domain_altp2m_by_id`: every vCPU to view `idx`, which must be
    /// visible (else `-EINVAL`). Returns the vCPUs whose view changed.
    pub fn switch_domain_altp2m_by_id(&mut self, idx: u16) -> XenResult<Vec<u32>> {
        if idx as usize >= MAX_ALTP2M || !self.view_visible(idx) {
            return Err(Errno::EINVAL);
        }
        let mut changed = Vec::new();
        for (v, i) in self.vcpu_idx.iter_mut().enumerate() {
            if *i != idx {
                *i = idx;
                changed.push(v as u32);
            }
        }
        Ok(changed)
    }

    /// `p2m_switch_vcpu_altp2m_by_id`: one vCPU to view `idx` (the path of a
    /// vm_event response or an emulated VMFUNC). True if `idx` is an active view.
    pub fn switch_vcpu_altp2m_by_id(&mut self, vcpu: u32, idx: u16) -> bool {
        if !self.altp2m_active || idx as usize >= MAX_ALTP2M || !self.view_exists(idx) {
            return false;
        }
        match self.vcpu_idx.get_mut(vcpu as usize) {
            Some(i) => {
                *i = idx;
                true
            }
            None => false,
        }
    }

    /// VMFUNC leaf 0 (EPTP switching) as the hardware does it: only views in the
    /// visible list. True if the vCPU is now on `idx`.
    pub fn vmfunc_switch(&mut self, vcpu: u32, idx: u16) -> bool {
        self.view_visible(idx) && self.switch_vcpu_altp2m_by_id(vcpu, idx)
    }

    /// `p2m_set_altp2m_view_visibility`: bad or inactive view → `-EINVAL`.
    pub fn set_view_visibility(&mut self, idx: u16, visible: bool) -> XenResult<()> {
        match self.altp2m.get_mut(idx as usize).and_then(|v| v.as_mut()) {
            Some(v) => {
                v.visible = visible;
                Ok(())
            }
            None => Err(Errno::EINVAL),
        }
    }

    // ---- entries ---------------------------------------------------------------

    /// The entry a view gives `gfn`: its own entry, else (alternate views) the host's.
    /// This is what the stage-2 tables of the view map.
    pub fn effective_entry(&self, view: ViewId, gfn: u64) -> Option<P2mEntry> {
        match view {
            ViewId::Host => self.host.get(&gfn).copied(),
            ViewId::Alt(i) => {
                let v = self.altp2m.get(i as usize)?.as_ref()?;
                match v.entries.get(&gfn) {
                    Some(e) => Some(*e),
                    // Copied in from the host on first use: a new EPT entry, so
                    // suppress-#VE set.
                    None => self.host.get(&gfn).map(|h| P2mEntry {
                        suppress_ve: true,
                        ..*h
                    }),
                }
            }
        }
    }

    /// Every (gfn, entry) a view maps, in gfn order.
    pub fn view_entries(&self, view: ViewId) -> Vec<(u64, P2mEntry)> {
        match view {
            ViewId::Host => self.host.iter().map(|(g, e)| (*g, *e)).collect(),
            ViewId::Alt(i) => {
                let Some(v) = self.altp2m.get(i as usize).and_then(|v| v.as_ref()) else {
                    return Vec::new();
                };
                let mut m: BTreeMap<u64, P2mEntry> = self
                    .host
                    .iter()
                    .map(|(g, h)| {
                        (
                            *g,
                            P2mEntry {
                                suppress_ve: true,
                                ..*h
                            },
                        )
                    })
                    .collect();
                for (g, e) in &v.entries {
                    m.insert(*g, *e);
                }
                m.into_iter().collect()
            }
        }
    }

    /// The entry a view itself holds (Xen's `get_entry` on that p2m, no host fallback).
    fn own_entry(&self, view: ViewId, gfn: u64) -> Option<P2mEntry> {
        match view {
            ViewId::Host => self.host.get(&gfn).copied(),
            ViewId::Alt(i) => self
                .altp2m
                .get(i as usize)?
                .as_ref()?
                .entries
                .get(&gfn)
                .copied(),
        }
    }

    fn set_alt_entry(&mut self, idx: u16, gfn: u64, e: P2mEntry) {
        if let Some(v) = self.altp2m.get_mut(idx as usize).and_then(|v| v.as_mut()) {
            v.entries.insert(gfn, e);
            self.touch(ViewId::Alt(idx), gfn);
        }
    }

    /// The view a mem-access / suppress-#VE sub-op with index `idx` works on: 0 is the
    /// host p2m; otherwise the alternate view, which must be active (else `-EINVAL`).
    pub fn op_view(&self, idx: u16) -> XenResult<ViewId> {
        if idx == 0 {
            Ok(ViewId::Host)
        } else if self.view_exists(idx) {
            Ok(ViewId::Alt(idx))
        } else {
            Err(Errno::EINVAL)
        }
    }

    /// Set the host view's default access (`gfn == INVALID_GFN` in set_mem_access).
    pub fn set_host_default_access(&mut self, a: P2mAccess) {
        self.host_default_access = a;
    }

    /// A view's default access.
    pub fn default_access(&self, view: ViewId) -> Option<P2mAccess> {
        match view {
            ViewId::Host => Some(self.host_default_access),
            ViewId::Alt(i) => Some(self.altp2m.get(i as usize)?.as_ref()?.default_access),
        }
    }

    /// `set_mem_access` for one gfn in `view` (from [`P2m::op_view`]). On the host an
    /// unmapped gfn is left alone; on an alternate view the entry is copied from the
    /// host (keeping the view's suppress-#VE bit if it had the gfn), and a gfn the host
    /// does not map either is skipped (Xen ignores its `-ESRCH`).
    pub fn set_mem_access_one(&mut self, view: ViewId, gfn: u64, a: P2mAccess) {
        match view {
            ViewId::Host => {
                if let Some(e) = self.host.get(&gfn).copied() {
                    self.write_host(gfn, P2mEntry { access: a, ..e });
                }
            }
            ViewId::Alt(i) => {
                let own = self.own_entry(view, gfn);
                if let Some(e) = self.effective_entry(view, gfn) {
                    let sve = own.is_none_or(|o| o.suppress_ve);
                    self.set_alt_entry(
                        i,
                        gfn,
                        P2mEntry {
                            access: a,
                            suppress_ve: sve,
                            ..e
                        },
                    );
                }
            }
        }
    }

    /// `p2m_get_mem_access` on `view`: `INVALID_GFN` → the view's default access; a gfn
    /// the view itself does not hold → `-ESRCH`.
    pub fn get_mem_access(&self, view: ViewId, gfn: u64) -> XenResult<P2mAccess> {
        if gfn == INVALID_GFN {
            return self.default_access(view).ok_or(Errno::EINVAL);
        }
        self.own_entry(view, gfn)
            .map(|e| e.access)
            .ok_or(Errno::ESRCH)
    }

    /// Set the suppress-#VE bit of one gfn in `view`; `-ESRCH` when the gfn is mapped
    /// neither in an alternate view nor in the host. On the host an unmapped gfn is a
    /// silent no-op (Xen writes a non-present entry).
    pub fn set_suppress_ve_one(&mut self, view: ViewId, gfn: u64, sve: bool) -> XenResult<()> {
        match view {
            ViewId::Host => {
                if let Some(e) = self.host.get(&gfn).copied() {
                    self.write_host(
                        gfn,
                        P2mEntry {
                            suppress_ve: sve,
                            ..e
                        },
                    );
                }
                Ok(())
            }
            ViewId::Alt(i) => {
                let e = self.effective_entry(view, gfn).ok_or(Errno::ESRCH)?;
                self.set_alt_entry(
                    i,
                    gfn,
                    P2mEntry {
                        suppress_ve: sve,
                        ..e
                    },
                );
                Ok(())
            }
        }
    }

    /// Gfns in `first..=last` that `view` maps (its own or, for alternate views, the
    /// host's), in order: lets range sub-ops skip holes without walking them.
    pub fn mapped_gfns_in(&self, view: ViewId, first: u64, last: u64) -> Vec<u64> {
        if first > last {
            return Vec::new();
        }
        let mut out: Vec<u64> = self.host.range(first..=last).map(|(g, _)| *g).collect();
        if let ViewId::Alt(i) = view {
            if let Some(v) = self.altp2m.get(i as usize).and_then(|v| v.as_ref()) {
                out.extend(v.entries.range(first..=last).map(|(g, _)| *g));
                out.sort_unstable();
                out.dedup();
            }
        }
        out
    }

    /// `p2m_get_suppress_ve`: the bit of the entry `view` itself holds; none → `-ESRCH`.
    pub fn get_suppress_ve(&self, view: ViewId, gfn: u64) -> XenResult<bool> {
        self.own_entry(view, gfn)
            .map(|e| e.suppress_ve)
            .ok_or(Errno::ESRCH)
    }

    /// `p2m_change_altp2m_gfn`: in alternate view `idx` (0 included), make `old_gfn`
    /// map what `new_gfn` maps (with `new_gfn`'s access); `new_gfn == INVALID_GFN`
    /// drops the view's own entry for `old_gfn` (back to the host's). `suppress_ve` is
    /// the bit the new entry gets (Xen: set when a foreign domain made the change).
    pub fn change_altp2m_gfn(
        &mut self,
        idx: u16,
        old_gfn: u64,
        new_gfn: u64,
        suppress_ve: bool,
    ) -> XenResult<()> {
        if idx as usize >= MAX_ALTP2M || !self.view_exists(idx) {
            return Err(Errno::EINVAL);
        }
        let view = ViewId::Alt(idx);
        if new_gfn == INVALID_GFN {
            if let Some(v) = self.altp2m[idx as usize].as_mut() {
                if v.entries.remove(&old_gfn).is_some() {
                    self.touch(view, old_gfn);
                }
            }
            return Ok(());
        }
        self.effective_entry(view, old_gfn).ok_or(Errno::ESRCH)?;
        let n = self.effective_entry(view, new_gfn).ok_or(Errno::ESRCH)?;
        self.set_alt_entry(
            idx,
            old_gfn,
            P2mEntry {
                mfn: n.mfn,
                access: n.access,
                suppress_ve,
            },
        );
        if let Some(v) = self.altp2m[idx as usize].as_mut() {
            v.min_remapped_gfn = v.min_remapped_gfn.min(new_gfn);
            v.max_remapped_gfn = v.max_remapped_gfn.max(new_gfn);
        }
        Ok(())
    }

    /// Upgrade the access of one gfn in `view` after a fault (rx2rw → rw, n2rwx →
    /// rwx), as `p2m_mem_access_check` does. On an alternate view the gfn gets its
    /// own entry.
    pub fn upgrade_access(&mut self, view: ViewId, gfn: u64, a: P2mAccess) {
        match view {
            ViewId::Host => {
                if let Some(e) = self.host.get(&gfn).copied() {
                    self.write_host(gfn, P2mEntry { access: a, ..e });
                }
            }
            ViewId::Alt(i) => {
                if let Some(e) = self.effective_entry(view, gfn) {
                    self.set_alt_entry(i, gfn, P2mEntry { access: a, ..e });
                }
            }
        }
    }
}

// ---- committing changes: the shootdown seam ------------------------------------------

/// The arch's half of a p2m change (issue 14: "remote TLB shootdown").
///
/// [`P2mCommit::commit`] brings the stage-2 tables of every view of the domain up
/// to date with its p2m (in place, [`sync_stage2`]) and returns only once no CPU
/// can still use a translation older than the p2m: every CPU in guest mode for the
/// domain was made to exit, and each vCPU flushes its guest TLB before its next
/// entry ([`P2m::tlb_flushed`]). Only then may the caller free the frames the
/// change unmapped ([`super::domain::DomainTable::release_deferred_frames`]). An
/// error (out of frames for a table) still waits for the CPUs; the caller crashes
/// the domain.
pub trait P2mCommit {
    fn commit(&mut self, domid: domid_t, p2m: &mut P2m) -> XenResult<()>;
}

/// No vCPU runs (host tests, domain building): no table and no CPU to wait for.
pub struct NoStage2;

impl P2mCommit for NoStage2 {
    fn commit(&mut self, _domid: domid_t, p2m: &mut P2m) -> XenResult<()> {
        for view in P2m::all_views() {
            let _ = p2m.take_stage2_update(view);
        }
        p2m.tlb_flushed();
        Ok(())
    }
}

// ---- stage-2 builder ---------------------------------------------------------------

/// Encodes stage-2 entries for one kind of hardware table (VMX EPT, SVM NPT).
///
/// The encoder may grant *fewer* rights than asked (NPT cannot express write-only or
/// execute-only; it then maps the page not-present and the fault path decides) but
/// never more.
/// (`Sync`: the backends' encoders are stateless statics shared by every CPU.)
pub trait EntryEncoder: Sync {
    /// A non-leaf entry pointing at the next-level table at `table_pa`, granting every
    /// right (the leaf decides).
    fn table_entry(&self, table_pa: u64) -> u64;
    /// A 4 KiB leaf entry for `mfn` with `rights` and the #VE suppress bit.
    fn leaf_entry(&self, mfn: u64, rights: Rights, suppress_ve: bool) -> u64;
    /// The value of an entry that maps nothing. 0 for NPT; EPT sets the
    /// suppress-#VE bit (Xen's `ept_p2m_init` / `ept_set_middle_entry`) so that a
    /// guest with #VE enabled still takes an EPT-violation exit on a gfn its view
    /// does not map at all, instead of a #VE.
    fn empty_entry(&self) -> u64 {
        0
    }
}

/// Page-table frames for the builder: the backend gives real zeroed frames and writes
/// them through its direct map; host tests give fake ones.
pub trait Stage2Frames {
    /// A zeroed 4 KiB frame; its physical address, or `None` when out of memory.
    fn alloc_table(&mut self) -> Option<u64>;
    /// Entry `index` (0..512) of the table at `table_pa`.
    fn read(&self, table_pa: u64, index: usize) -> u64;
    /// Write entry `index` of the table at `table_pa`.
    fn write(&mut self, table_pa: u64, index: usize, value: u64);
}

/// Index of `gfn` at `level` (4 = PML4 .. 1 = PT).
fn table_index(gfn: u64, level: u32) -> usize {
    ((gfn >> (9 * (level - 1))) & 0x1ff) as usize
}

/// One table of a [`Stage2Tree`]: its frame and how many of its entries are in use.
#[derive(Clone, Copy, Debug)]
struct TableInfo {
    pa: u64,
    used: u16,
}

/// The stage-2 tables of one view, edited in place as the p2m changes (Xen's
/// `ept_set_entry` / `p2m_pt_set_entry` on a live `p2m->phys_table`).
///
/// Each table is known by (its level, the gfn prefix it covers) with a count of the
/// entries in use, so a change of one gfn is a walk of four levels: intermediate
/// tables are made on the way down and a table whose last entry goes is unlinked
/// from its parent on the way up. Unlinked frames are handed to the caller (the
/// `retired` list) and must not be reused before every CPU that may still walk
/// them has flushed (see `docs/memory.md`, "p2m changes and shootdown").
#[derive(Debug)]
pub struct Stage2Tree {
    root: u64,
    /// Tables below the root, by (level 3..=1, gfn >> 9 * level).
    tables: BTreeMap<(u32, u64), TableInfo>,
    root_used: u16,
}

impl Stage2Tree {
    /// A tree with an empty root; `-ENOMEM` when no frame.
    pub fn new(enc: &dyn EntryEncoder, frames: &mut dyn Stage2Frames) -> XenResult<Self> {
        let root = new_table(enc, frames)?;
        Ok(Stage2Tree {
            root,
            tables: BTreeMap::new(),
            root_used: 0,
        })
    }

    /// A tree mapping exactly `view` of `p2m`. On `-ENOMEM` every frame taken is
    /// in `retired` (none was ever installed).
    pub fn build(
        p2m: &P2m,
        view: ViewId,
        enc: &dyn EntryEncoder,
        frames: &mut dyn Stage2Frames,
        retired: &mut Vec<u64>,
    ) -> XenResult<Self> {
        let mut t = Stage2Tree::new(enc, frames)?;
        for (gfn, e) in p2m.view_entries(view) {
            if let Err(err) = t.set(gfn, Some(e), enc, frames, retired) {
                t.retire_all(retired);
                return Err(err);
            }
        }
        Ok(t)
    }

    /// The root (PML4) frame.
    pub fn root(&self) -> u64 {
        self.root
    }

    /// Table frames in use, the root included.
    pub fn nr_tables(&self) -> usize {
        1 + self.tables.len()
    }

    /// Give up the whole tree: every frame goes to `retired`.
    pub fn retire_all(self, retired: &mut Vec<u64>) {
        retired.push(self.root);
        retired.extend(self.tables.values().map(|t| t.pa));
    }

    fn info_mut(&mut self, level: u32, gfn: u64) -> Option<&mut TableInfo> {
        self.tables.get_mut(&(level, gfn >> (9 * level)))
    }

    /// Make `gfn` map `entry` (None: nothing). Out of frames for an intermediate
    /// table → `-ENOMEM`, the tree unchanged for this gfn. A removal never fails.
    pub fn set(
        &mut self,
        gfn: u64,
        entry: Option<P2mEntry>,
        enc: &dyn EntryEncoder,
        frames: &mut dyn Stage2Frames,
        retired: &mut Vec<u64>,
    ) -> XenResult<()> {
        if gfn >= GFN_LIMIT {
            log::warn!("stage-2: gfn {gfn:#x} beyond 48-bit guest-physical, not mapped");
            return Ok(());
        }
        let empty = enc.empty_entry();
        let Some(e) = entry else {
            self.clear(gfn, empty, frames, retired);
            return Ok(());
        };
        // Down the levels, making missing tables.
        let mut table = self.root;
        for level in (2..=4u32).rev() {
            let child = level - 1;
            let next = match self.info_mut(child, gfn) {
                Some(t) => t.pa,
                None => {
                    let pa = match new_table(enc, frames) {
                        Ok(pa) => pa,
                        Err(err) => {
                            // Tables made on the way down hold nothing yet.
                            self.prune(gfn, empty, frames, retired);
                            return Err(err);
                        }
                    };
                    frames.write(table, table_index(gfn, level), enc.table_entry(pa));
                    self.tables
                        .insert((child, gfn >> (9 * child)), TableInfo { pa, used: 0 });
                    self.adjust_used(level, gfn, 1);
                    pa
                }
            };
            table = next;
        }
        let i = table_index(gfn, 1);
        let was = frames.read(table, i) != empty;
        let new = enc.leaf_entry(e.mfn, e.access.rights(), e.suppress_ve);
        frames.write(table, i, new);
        match (was, new != empty) {
            (false, true) => self.adjust_used(1, gfn, 1),
            (true, false) => self.adjust_used(1, gfn, -1),
            _ => {}
        }
        // An encoder may express a mapping as the empty entry (NPT, no rights): a
        // table left with nothing in use goes as if the gfn had been removed.
        self.prune(gfn, empty, frames, retired);
        Ok(())
    }

    /// The count of entries in use of the table at `level` holding `gfn`'s entry.
    fn adjust_used(&mut self, level: u32, gfn: u64, by: i32) {
        let used = if level == 4 {
            &mut self.root_used
        } else {
            match self.info_mut(level, gfn) {
                Some(t) => &mut t.used,
                None => return,
            }
        };
        *used = (*used as i32 + by).clamp(0, 512) as u16;
    }

    fn clear(
        &mut self,
        gfn: u64,
        empty: u64,
        frames: &mut dyn Stage2Frames,
        retired: &mut Vec<u64>,
    ) {
        let Some(pt) = self.info_mut(1, gfn).map(|t| t.pa) else {
            return;
        };
        let i = table_index(gfn, 1);
        if frames.read(pt, i) != empty {
            frames.write(pt, i, empty);
            self.adjust_used(1, gfn, -1);
        }
        self.prune(gfn, empty, frames, retired);
    }

    /// Unlink the tables on `gfn`'s path that have no entry in use, bottom up.
    fn prune(
        &mut self,
        gfn: u64,
        empty: u64,
        frames: &mut dyn Stage2Frames,
        retired: &mut Vec<u64>,
    ) {
        for level in 1..=3u32 {
            let key = (level, gfn >> (9 * level));
            match self.tables.get(&key) {
                // Not made (a failed walk down stops short): look higher.
                None => continue,
                Some(t) if t.used == 0 => {
                    let pa = t.pa;
                    self.tables.remove(&key);
                    let parent = if level == 3 {
                        self.root
                    } else {
                        match self.info_mut(level + 1, gfn) {
                            Some(p) => p.pa,
                            None => return,
                        }
                    };
                    frames.write(parent, table_index(gfn, level + 1), empty);
                    self.adjust_used(level + 1, gfn, -1);
                    retired.push(pa);
                }
                _ => return,
            }
        }
    }

    /// Bring the tree up to date with `view` for the gfns in `gfns`. Every gfn is
    /// tried; the first error is returned (the caller rebuilds or gives up).
    pub fn apply(
        &mut self,
        p2m: &P2m,
        view: ViewId,
        gfns: &[u64],
        enc: &dyn EntryEncoder,
        frames: &mut dyn Stage2Frames,
        retired: &mut Vec<u64>,
    ) -> XenResult<()> {
        let mut res = Ok(());
        for &g in gfns {
            let r = self.set(g, p2m.effective_entry(view, g), enc, frames, retired);
            if res.is_ok() {
                res = r;
            }
        }
        res
    }
}

/// Bring the tree of `view` (`tree`; None: not built yet) up to date with the p2m:
/// the first use builds it whole, a view's change log is applied in place, a
/// "rebuild" (view created, reset, log overflowed) builds a new tree and retires
/// the old, a view that no longer exists loses its tree. Frames no longer used go
/// to `retired` (free them only after the shootdown). Returns the root (None: no
/// view). On `-ENOMEM` the view is marked for a rebuild again.
pub fn sync_stage2(
    tree: &mut Option<Stage2Tree>,
    p2m: &mut P2m,
    view: ViewId,
    enc: &dyn EntryEncoder,
    frames: &mut dyn Stage2Frames,
    retired: &mut Vec<u64>,
) -> XenResult<Option<u64>> {
    let update = p2m.take_stage2_update(view);
    if !p2m.has_view(view) {
        if let Some(t) = tree.take() {
            t.retire_all(retired);
        }
        return Ok(None);
    }
    let rebuild = match (&mut *tree, update) {
        (None, _) | (Some(_), Stage2Update::Rebuild) => true,
        (Some(_), Stage2Update::Nothing) => false,
        (Some(t), Stage2Update::Gfns(gfns)) => {
            if let Err(e) = t.apply(p2m, view, &gfns, enc, frames, retired) {
                p2m.request_rebuild(view);
                return Err(e);
            }
            false
        }
    };
    if rebuild {
        match Stage2Tree::build(p2m, view, enc, frames, retired) {
            Ok(new) => {
                if let Some(old) = tree.replace(new) {
                    old.retire_all(retired);
                }
            }
            Err(e) => {
                // The old tables may map what the p2m no longer does: they go too
                // (the domain is crashed; a later entry tries a build again).
                if let Some(old) = tree.take() {
                    old.retire_all(retired);
                }
                p2m.request_rebuild(view);
                return Err(e);
            }
        }
    }
    Ok(tree.as_ref().map(|t| t.root()))
}

fn new_table(enc: &dyn EntryEncoder, frames: &mut dyn Stage2Frames) -> XenResult<u64> {
    let t = frames.alloc_table().ok_or(Errno::ENOMEM)?;
    let empty = enc.empty_entry();
    if empty != 0 {
        for i in 0..512 {
            frames.write(t, i, empty);
        }
    }
    Ok(t)
}

/// Build the 4-level tables of `view`: every gfn the view maps gets a leaf from
/// `enc` with the view's rights and suppress-#VE bit; nothing else is mapped. Returns
/// the root (PML4) frame. Out of frames → `-ENOMEM` (frames already taken are the
/// caller's to free). The one-shot form of [`Stage2Tree::build`] (self-tests, probes).
pub fn build_stage2(
    p2m: &P2m,
    view: ViewId,
    enc: &dyn EntryEncoder,
    frames: &mut dyn Stage2Frames,
) -> XenResult<u64> {
    let mut taken = Vec::new();
    Stage2Tree::build(p2m, view, enc, frames, &mut taken).map(|t| t.root())
}

#[cfg(test)]
pub mod test_encoder {
    //! An EPT-like encoding for host tests: bits 0-2 r/w/x, bits 12-51 address,
    //! bit 63 suppress-#VE; a table entry grants rwx.
    use super::*;
    use alloc::collections::BTreeMap;

    pub const ADDR_MASK: u64 = 0x000f_ffff_ffff_f000;

    pub struct TestEncoder;

    impl EntryEncoder for TestEncoder {
        fn table_entry(&self, table_pa: u64) -> u64 {
            table_pa | 0b111
        }
        fn leaf_entry(&self, mfn: u64, r: Rights, sve: bool) -> u64 {
            (mfn << 12) & ADDR_MASK
                | r.read as u64
                | (r.write as u64) << 1
                | (r.exec as u64) << 2
                | (sve as u64) << 63
        }
    }

    /// Fake frames: a map from frame address to 512 entries.
    #[derive(Default)]
    pub struct FakeFrames {
        pub tables: BTreeMap<u64, [u64; 512]>,
        pub next: u64,
        /// Fail allocation after this many frames.
        pub limit: Option<usize>,
    }

    impl Stage2Frames for FakeFrames {
        fn alloc_table(&mut self) -> Option<u64> {
            if self.limit.is_some_and(|l| self.tables.len() >= l) {
                return None;
            }
            self.next += 0x1000;
            self.tables.insert(0x100_0000 + self.next, [0; 512]);
            Some(0x100_0000 + self.next)
        }
        fn read(&self, t: u64, i: usize) -> u64 {
            self.tables.get(&t).map(|x| x[i]).unwrap_or(0)
        }
        fn write(&mut self, t: u64, i: usize, v: u64) {
            if let Some(x) = self.tables.get_mut(&t) {
                x[i] = v;
            }
        }
    }

    impl FakeFrames {
        /// Give a table frame back; freeing one that is not out panics.
        pub fn free(&mut self, t: u64) {
            assert!(self.tables.remove(&t).is_some(), "double free of {t:#x}");
        }
    }

    /// Walk tables built with [`TestEncoder`]: every leaf as gfn → (mfn, rights, sve).
    /// A leaf with no rights still counts (it is a mapped, inaccessible page).
    pub fn walk(frames: &FakeFrames, root: u64) -> BTreeMap<u64, (u64, Rights, bool)> {
        walk_with(frames, root, 0)
    }

    /// [`walk`] for an encoder whose empty entry is `empty`.
    pub fn walk_with(
        frames: &FakeFrames,
        root: u64,
        empty: u64,
    ) -> BTreeMap<u64, (u64, Rights, bool)> {
        let mut out = BTreeMap::new();
        fn rec(
            f: &FakeFrames,
            t: u64,
            level: u32,
            prefix: u64,
            empty: u64,
            out: &mut BTreeMap<u64, (u64, Rights, bool)>,
        ) {
            for i in 0..512 {
                let e = f.read(t, i);
                if e == empty {
                    continue;
                }
                let p = (prefix << 9) | i as u64;
                if level == 1 {
                    let r = Rights {
                        read: e & 1 != 0,
                        write: e & 2 != 0,
                        exec: e & 4 != 0,
                    };
                    out.insert(p, ((e & ADDR_MASK) >> 12, r, e >> 63 != 0));
                } else {
                    assert_eq!(e & 0b111, 0b111, "table entry grants rwx");
                    assert!(
                        f.tables.contains_key(&(e & ADDR_MASK)),
                        "link to a freed table"
                    );
                    rec(f, e & ADDR_MASK, level - 1, p, empty, out);
                }
            }
        }
        rec(frames, root, 4, 0, empty, &mut out);
        out
    }
}

#[cfg(test)]
mod tests {
    use super::test_encoder::*;
    use super::*;

    fn p2m_with_host(gfns: &[(u64, u64)]) -> P2m {
        let mut p = P2m::new(2);
        for &(g, m) in gfns {
            p.set_host_entry(g, m, P2mAccess::RWX).unwrap();
        }
        p
    }

    #[test]
    fn access_rights_table() {
        assert_eq!(P2mAccess::RX2RW.rights(), P2mAccess::RX.rights());
        assert_eq!(P2mAccess::N2RWX.rights(), Rights::default());
        for (i, a) in P2mAccess::ALL.iter().enumerate() {
            assert_eq!(a.to_xenmem(), i as u32);
            assert_eq!(P2mAccess::from_xenmem(i as u32), Some(*a));
        }
        assert_eq!(P2mAccess::from_xenmem(XENMEM_access_default), None);
        assert!(P2mAccess::RW.rights().allows(Rights::WRITE));
        assert!(!P2mAccess::RW.rights().allows(Rights::EXEC));
    }

    #[test]
    fn host_entry_bounds() {
        let mut p = P2m::new(1);
        assert_eq!(
            p.set_host_entry(GFN_LIMIT, 1, P2mAccess::RWX),
            Err(Errno::EINVAL)
        );
        p.set_host_entry(GFN_LIMIT - 1, 1, P2mAccess::RWX).unwrap();
        assert!(p.host_entry(GFN_LIMIT - 1).unwrap().suppress_ve);
    }

    #[test]
    fn builder_maps_exactly_the_host_view() {
        let p = p2m_with_host(&[(0, 100), (1, 101), (0x200, 7), (0xf_ffff_ffff, 9)]);
        let mut f = FakeFrames::default();
        let root = build_stage2(&p, ViewId::Host, &TestEncoder, &mut f).unwrap();
        let m = walk(&f, root);
        let want: BTreeMap<u64, (u64, Rights, bool)> = p
            .view_entries(ViewId::Host)
            .into_iter()
            .map(|(g, e)| (g, (e.mfn, e.access.rights(), e.suppress_ve)))
            .collect();
        assert_eq!(m, want);
        assert_eq!(m.len(), 4);
        // gfn 0 and 1 share all tables; 0x200 shares the PDPT and PD.
        // Tables: root + (PDPT, PD, PT) for low gfns + one PT for 0x200 + 3 for the top.
        assert_eq!(f.tables.len(), 1 + 3 + 1 + 3);
    }

    #[test]
    fn builder_alt_view_overrides_host() {
        let mut p = p2m_with_host(&[(1, 101), (2, 102), (3, 103)]);
        p.enable_altp2m();
        let v = p.init_next_altp2m(XENMEM_access_default).unwrap();
        assert_eq!(v, 1);
        p.set_mem_access_one(ViewId::Alt(1), 2, P2mAccess::R);
        p.change_altp2m_gfn(1, 3, 1, false).unwrap();
        let mut f = FakeFrames::default();
        let root = build_stage2(&p, ViewId::Alt(1), &TestEncoder, &mut f).unwrap();
        let m = walk(&f, root);
        assert_eq!(m[&1], (101, P2mAccess::RWX.rights(), true));
        assert_eq!(m[&2], (102, Rights::READ, true));
        assert_eq!(m[&3], (101, P2mAccess::RWX.rights(), false));
        assert_eq!(m.len(), 3);
        // The host tables are unaffected.
        let mut f2 = FakeFrames::default();
        let r2 = build_stage2(&p, ViewId::Host, &TestEncoder, &mut f2).unwrap();
        assert_eq!(walk(&f2, r2)[&3].0, 103);
    }

    /// splitmix64, for the randomised tests.
    fn next(seed: &mut u64) -> u64 {
        *seed = seed.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = *seed;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// Random host views and alternate views: the built tables map exactly the
    /// view's gfns, with its mfns, rights and suppress-#VE bits, for every view.
    #[test]
    fn builder_matches_random_views() {
        for round in 0..24u64 {
            let mut seed = round;
            let mut p = P2m::new(1);
            let n = next(&mut seed) % 300;
            for _ in 0..n {
                // Clustered and scattered gfns, up to the top of the 48-bit space.
                let g = match next(&mut seed) % 3 {
                    0 => next(&mut seed) % 1024,
                    1 => next(&mut seed) % GFN_LIMIT,
                    _ => GFN_LIMIT - 1 - next(&mut seed) % 600,
                };
                let a = P2mAccess::ALL[(next(&mut seed) % 10) as usize];
                p.set_host_entry(g, next(&mut seed) & 0xff_ffff_ffff, a)
                    .unwrap();
            }
            p.enable_altp2m();
            let v = p.init_next_altp2m(XENMEM_access_default).unwrap();
            let host: Vec<u64> = p.view_entries(ViewId::Host).iter().map(|e| e.0).collect();
            for _ in 0..(n / 3) {
                if host.is_empty() {
                    break;
                }
                let g = host[(next(&mut seed) % host.len() as u64) as usize];
                let g2 = host[(next(&mut seed) % host.len() as u64) as usize];
                match next(&mut seed) % 3 {
                    0 => p.set_mem_access_one(
                        ViewId::Alt(v),
                        g,
                        P2mAccess::ALL[(next(&mut seed) % 10) as usize],
                    ),
                    1 => p.set_suppress_ve_one(ViewId::Alt(v), g, false).unwrap(),
                    _ => p.change_altp2m_gfn(v, g, g2, false).unwrap(),
                }
            }
            for view in [ViewId::Host, ViewId::Alt(0), ViewId::Alt(v)] {
                let mut f = FakeFrames::default();
                let root = build_stage2(&p, view, &TestEncoder, &mut f).unwrap();
                let want: BTreeMap<u64, (u64, Rights, bool)> = p
                    .view_entries(view)
                    .into_iter()
                    .map(|(g, e)| (g, (e.mfn, e.access.rights(), e.suppress_ve)))
                    .collect();
                assert_eq!(walk(&f, root), want, "round {round} {view:?}");
                for (g, e) in &want {
                    let x = p.effective_entry(view, *g).unwrap();
                    assert_eq!((x.mfn, x.access.rights(), x.suppress_ve), *e);
                }
            }
        }
    }

    #[test]
    fn builder_out_of_frames_is_enomem() {
        let p = p2m_with_host(&[(5, 5)]);
        let mut f = FakeFrames {
            limit: Some(3),
            ..Default::default()
        };
        assert_eq!(
            build_stage2(&p, ViewId::Host, &TestEncoder, &mut f),
            Err(Errno::ENOMEM)
        );
        let mut f0 = FakeFrames {
            limit: Some(0),
            ..Default::default()
        };
        assert_eq!(
            build_stage2(&p, ViewId::Host, &TestEncoder, &mut f0),
            Err(Errno::ENOMEM)
        );
    }

    #[test]
    fn host_changes_propagate_to_views_holding_the_gfn() {
        let mut p = p2m_with_host(&[(1, 101), (2, 102)]);
        p.enable_altp2m();
        let v = p.init_next_altp2m(XENMEM_access_r).unwrap();
        p.set_mem_access_one(ViewId::Alt(v), 1, P2mAccess::X);
        p.set_suppress_ve_one(ViewId::Alt(v), 1, false).unwrap();
        let g = p.generation(ViewId::Alt(v));
        p.set_host_entry(1, 555, P2mAccess::RW).unwrap();
        assert!(p.generation(ViewId::Alt(v)) > g);
        let e = p.effective_entry(ViewId::Alt(v), 1).unwrap();
        assert_eq!(
            (e.mfn, e.access, e.suppress_ve),
            (555, P2mAccess::RW, false)
        );
        // gfn 2 was not in the view: still falls through to the host.
        p.set_host_entry(2, 666, P2mAccess::R).unwrap();
        assert_eq!(p.get_suppress_ve(ViewId::Alt(v), 2), Err(Errno::ESRCH));
        assert_eq!(p.effective_entry(ViewId::Alt(v), 2).unwrap().mfn, 666);
        p.remove_host_entry(1);
        assert_eq!(p.effective_entry(ViewId::Alt(v), 1), None);
    }

    #[test]
    fn host_removal_resets_views_remapping_it() {
        let mut p = p2m_with_host(&[(1, 101), (2, 102), (3, 103)]);
        p.enable_altp2m();
        let a = p.init_next_altp2m(XENMEM_access_default).unwrap();
        let b = p.init_next_altp2m(XENMEM_access_default).unwrap();
        p.change_altp2m_gfn(a, 1, 2, true).unwrap();
        p.set_mem_access_one(ViewId::Alt(b), 3, P2mAccess::R);
        // One view remaps gfn 2: only it is reset.
        p.remove_host_entry(2);
        assert_eq!(p.get_mem_access(ViewId::Alt(a), 1), Err(Errno::ESRCH));
        assert_eq!(p.get_mem_access(ViewId::Alt(b), 3), Ok(P2mAccess::R));
        // Two views remap gfn 3: all are reset.
        p.change_altp2m_gfn(a, 1, 3, true).unwrap();
        p.change_altp2m_gfn(b, 1, 3, true).unwrap();
        p.remove_host_entry(3);
        assert_eq!(p.get_mem_access(ViewId::Alt(b), 3), Err(Errno::ESRCH));
        assert_eq!(p.get_mem_access(ViewId::Alt(a), 1), Err(Errno::ESRCH));
        assert!(p.view_exists(a) && p.view_exists(b));
    }

    /// An encoder whose empty entry is not 0 (EPT's suppress-#VE bit).
    struct SveEmptyEncoder;

    impl EntryEncoder for SveEmptyEncoder {
        fn table_entry(&self, table_pa: u64) -> u64 {
            TestEncoder.table_entry(table_pa)
        }
        fn leaf_entry(&self, mfn: u64, r: Rights, sve: bool) -> u64 {
            TestEncoder.leaf_entry(mfn, r, sve)
        }
        fn empty_entry(&self) -> u64 {
            1 << 63
        }
    }

    #[test]
    fn unmapped_entries_hold_the_encoders_empty_value() {
        let p = p2m_with_host(&[(1, 101), (0x200, 102)]);
        let mut f = FakeFrames::default();
        let root = build_stage2(&p, ViewId::Host, &SveEmptyEncoder, &mut f).unwrap();
        // The same leaves as with a zero empty entry: follow gfn 1 and gfn 0x200.
        let follow = |gfn: u64| {
            let mut t = root;
            for level in (2..=4).rev() {
                let e = f.tables[&t][table_index(gfn, level)];
                assert_eq!(e & 0b111, 0b111, "table link at level {level}");
                t = e & test_encoder::ADDR_MASK;
            }
            f.tables[&t][table_index(gfn, 1)]
        };
        assert_eq!((follow(1) & test_encoder::ADDR_MASK) >> 12, 101);
        assert_eq!((follow(0x200) & test_encoder::ADDR_MASK) >> 12, 102);
        // Every other entry of every table is "empty" (bit 63 only), none is 0.
        let mut empties = 0;
        for table in f.tables.values() {
            for e in table.iter() {
                assert_ne!(*e, 0);
                if *e == 1 << 63 {
                    empties += 1;
                }
            }
        }
        // 5 tables (PML4, PDPT, PD, two PTs) x 512, minus 2 leaves and 4 table links.
        assert_eq!(f.tables.len(), 5);
        assert_eq!(empties, 5 * 512 - 2 - 4);
        // A zero empty entry writes nothing extra.
        let mut z = FakeFrames::default();
        let r = build_stage2(&p, ViewId::Host, &TestEncoder, &mut z).unwrap();
        let nonzero: usize = z
            .tables
            .values()
            .map(|t| t.iter().filter(|e| **e != 0).count())
            .sum();
        assert_eq!(nonzero, 2 + 4);
        assert_eq!(walk(&z, r).len(), 2);
    }

    #[test]
    fn view_lifecycle() {
        let mut p = P2m::new(2);
        assert_eq!(p.current_view(0), ViewId::Host);
        assert_eq!(p.enable_altp2m(), vec![0, 1]);
        assert_eq!(p.current_view(1), ViewId::Alt(0));
        for want in 1..MAX_ALTP2M as u16 {
            assert_eq!(p.init_next_altp2m(XENMEM_access_rwx), Ok(want));
        }
        assert_eq!(p.init_next_altp2m(XENMEM_access_rwx), Err(Errno::EINVAL));
        assert_eq!(p.switch_domain_altp2m_by_id(3).unwrap(), vec![0, 1]);
        assert_eq!(p.destroy_altp2m_by_id(3), Err(Errno::EBUSY));
        assert!(p.switch_vcpu_altp2m_by_id(1, 4));
        assert_eq!(p.current_view(1), ViewId::Alt(4));
        p.set_view_visibility(5, false).unwrap();
        assert!(!p.vmfunc_switch(0, 5));
        assert!(p.vmfunc_switch(0, 4));
        assert_eq!(p.destroy_altp2m_by_id(3), Ok(()));
        assert_eq!(p.init_next_altp2m(XENMEM_access_rwx), Ok(3));
        assert_eq!(p.disable_altp2m(), vec![0, 1]);
        assert_eq!(p.current_view(0), ViewId::Host);
        assert!(!p.view_exists(0));
        assert!(!p.switch_vcpu_altp2m_by_id(0, 0));
    }

    /// An NPT-like encoder: a leaf without read rights is not present (the empty
    /// entry), as NPT cannot express write- or execute-only pages.
    struct NptLikeEncoder;

    impl EntryEncoder for NptLikeEncoder {
        fn table_entry(&self, table_pa: u64) -> u64 {
            TestEncoder.table_entry(table_pa)
        }
        fn leaf_entry(&self, mfn: u64, r: Rights, sve: bool) -> u64 {
            if r.read {
                TestEncoder.leaf_entry(mfn, r, sve)
            } else {
                0
            }
        }
    }

    /// The trees of every view of one p2m, kept as the backends keep them.
    struct Trees {
        trees: BTreeMap<ViewId, Stage2Tree>,
        frames: FakeFrames,
    }

    impl Trees {
        fn new() -> Self {
            Trees {
                trees: BTreeMap::new(),
                frames: FakeFrames::default(),
            }
        }

        /// Sync every view (built ones in place, new ones whole), free what was
        /// retired (the shootdown is instantaneous here).
        fn sync(&mut self, p: &mut P2m, enc: &dyn EntryEncoder) {
            let mut retired = Vec::new();
            for view in P2m::all_views() {
                let mut t = self.trees.remove(&view);
                if t.is_none() && !p.has_view(view) {
                    let _ = p.take_stage2_update(view);
                    continue;
                }
                sync_stage2(&mut t, p, view, enc, &mut self.frames, &mut retired).unwrap();
                if let Some(t) = t {
                    self.trees.insert(view, t);
                }
            }
            assert!(!p.stage2_pending());
            for pa in retired {
                self.frames.free(pa);
            }
        }

        /// Every built tree maps what a fresh build maps; with an encoder whose
        /// leaves are never empty it has exactly the fresh build's tables; no frame
        /// is held that no tree uses.
        fn check(&self, p: &P2m, enc: &dyn EntryEncoder, exact_tables: bool, what: &str) {
            let empty = enc.empty_entry();
            let mut held = 0;
            for (view, t) in &self.trees {
                let mut fresh = FakeFrames::default();
                let root = build_stage2(p, *view, enc, &mut fresh).unwrap();
                assert_eq!(
                    walk_with(&self.frames, t.root(), empty),
                    walk_with(&fresh, root, empty),
                    "{what}: {view:?}"
                );
                if exact_tables {
                    assert_eq!(t.nr_tables(), fresh.tables.len(), "{what}: {view:?} tables");
                } else {
                    assert!(t.nr_tables() <= fresh.tables.len(), "{what}: {view:?}");
                }
                held += t.nr_tables();
            }
            assert_eq!(self.frames.tables.len(), held, "{what}: frames leaked");
        }
    }

    /// One random p2m change: host set/remove, mem-access (host and views),
    /// suppress-#VE, change_gfn, view create/destroy, altp2m on/off.
    fn random_change(p: &mut P2m, seed: &mut u64, span: u64) {
        let g = match next(seed) % 4 {
            0 => GFN_LIMIT - 1 - next(seed) % 64,
            _ => next(seed) % span,
        };
        let a = P2mAccess::ALL[(next(seed) % 10) as usize];
        let view = if p.altp2m_active() && next(seed).is_multiple_of(2) {
            let i = (next(seed) % MAX_ALTP2M as u64) as u16;
            if p.view_exists(i) {
                ViewId::Alt(i)
            } else {
                ViewId::Host
            }
        } else {
            ViewId::Host
        };
        match next(seed) % 100 {
            0..=34 => p.set_host_entry(g, 1 + next(seed) % 0xff_ffff, a).unwrap(),
            35..=64 => p.remove_host_entry(g),
            65..=74 => p.set_mem_access_one(view, g, a),
            75..=79 => {
                let _ = p.set_suppress_ve_one(view, g, next(seed).is_multiple_of(2));
            }
            80..=84 => {
                if let ViewId::Alt(i) = view {
                    let new = if next(seed).is_multiple_of(4) {
                        INVALID_GFN
                    } else {
                        next(seed) % span
                    };
                    let _ = p.change_altp2m_gfn(i, g, new, false);
                }
            }
            85..=89 => p.upgrade_access(view, g, P2mAccess::RWX),
            90..=93 => {
                let _ = p.init_next_altp2m(XENMEM_access_default);
            }
            94..=96 => {
                if let ViewId::Alt(i) = view {
                    let _ = p.destroy_altp2m_by_id(i);
                }
            }
            97 => {
                p.enable_altp2m();
            }
            _ => {
                if next(seed).is_multiple_of(4) {
                    p.disable_altp2m();
                }
            }
        }
    }

    /// Stage-2 edited in place (issue 14): random sequences of p2m changes applied
    /// to live trees give exactly the tables a fresh build gives, for every view,
    /// with three encoders (zero empty entry, EPT's suppress-#VE empty entry, and
    /// NPT-like leaves that may be empty), and no table frame is leaked.
    #[test]
    fn in_place_updates_match_a_fresh_build() {
        let encs: [(&dyn EntryEncoder, bool); 3] = [
            (&TestEncoder, true),
            (&SveEmptyEncoder, true),
            (&NptLikeEncoder, false),
        ];
        for (k, (enc, exact)) in encs.into_iter().enumerate() {
            for round in 0..3u64 {
                let mut seed = round * 31 + k as u64;
                let mut p = P2m::new(2);
                p.enable_altp2m();
                let mut trees = Trees::new();
                trees.sync(&mut p, enc);
                for step in 0..40 {
                    for _ in 0..(1 + next(&mut seed) % 20) {
                        random_change(&mut p, &mut seed, 3000);
                    }
                    trees.sync(&mut p, enc);
                    if step % 5 == 4 {
                        let what = alloc::format!("enc {k} round {round} step {step}");
                        trees.check(&p, enc, exact, &what);
                    }
                }
            }
        }
    }

    /// A change touches O(1) tables: one gfn set or removed in a big host view
    /// writes at most the leaf and three links and retires at most three tables.
    #[test]
    fn one_change_is_not_a_rebuild() {
        let mut p = P2m::new(1);
        for g in 0..20_000 {
            p.set_host_entry(g, g + 1, P2mAccess::RWX).unwrap();
        }
        let mut trees = Trees::new();
        trees.sync(&mut p, &TestEncoder);
        let root = trees.trees[&ViewId::Host].root();
        let before = trees.frames.next;
        p.remove_host_entry(5);
        p.set_host_entry(1 << 30, 7, P2mAccess::R).unwrap();
        assert_eq!(
            p.clone().take_stage2_update(ViewId::Host),
            Stage2Update::Gfns(alloc::vec![5, 1 << 30])
        );
        trees.sync(&mut p, &TestEncoder);
        assert_eq!(trees.trees[&ViewId::Host].root(), root, "same tree");
        assert_eq!(
            trees.frames.next - before,
            3 * 0x1000,
            "three new tables only"
        );
        trees.check(&p, &TestEncoder, true, "big view");
        // Over the log's bound: one rebuild instead.
        for g in 0..(CHANGE_LOG_LIMIT as u64 + 2) {
            p.remove_host_entry(g);
        }
        assert_eq!(p.take_stage2_update(ViewId::Host), Stage2Update::Rebuild);
    }

    /// Frames balance after many changes (the 10^6 figure is in the `p2m_change`
    /// bench): set and remove cycles over a sparse gfn range, then everything
    /// removed leaves the root alone.
    #[test]
    fn many_changes_leak_no_table() {
        let mut p = P2m::new(1);
        let mut trees = Trees::new();
        let mut seed = 7;
        let mut mapped = BTreeSet::new();
        for i in 0..100_000u64 {
            let g = next(&mut seed) % (1 << 24);
            if next(&mut seed).is_multiple_of(2) {
                p.set_host_entry(g, 1 + g, P2mAccess::RWX).unwrap();
                mapped.insert(g);
            } else if let Some(&m) = mapped.iter().next() {
                p.remove_host_entry(m);
                mapped.remove(&m);
            }
            if i.is_multiple_of(64) {
                trees.sync(&mut p, &TestEncoder);
            }
        }
        trees.sync(&mut p, &TestEncoder);
        trees.check(&p, &TestEncoder, true, "after 10^5 changes");
        for g in core::mem::take(&mut mapped) {
            p.remove_host_entry(g);
        }
        trees.sync(&mut p, &TestEncoder);
        assert_eq!(trees.frames.tables.len(), 1, "only the root is left");
    }

    #[test]
    fn out_of_frames_during_an_update_asks_for_a_rebuild() {
        let mut p = p2m_with_host(&[(1, 1)]);
        let mut trees = Trees::new();
        trees.sync(&mut p, &TestEncoder);
        trees.frames.limit = Some(trees.frames.tables.len() + 1);
        p.set_host_entry(1 << 30, 2, P2mAccess::RWX).unwrap();
        let mut t = trees.trees.remove(&ViewId::Host);
        let mut retired = Vec::new();
        assert_eq!(
            sync_stage2(
                &mut t,
                &mut p,
                ViewId::Host,
                &TestEncoder,
                &mut trees.frames,
                &mut retired
            ),
            Err(Errno::ENOMEM)
        );
        assert_eq!(retired.len(), 1, "the one table made on the way down");
        assert!(p.stage2_pending());
        assert_eq!(p.take_stage2_update(ViewId::Host), Stage2Update::Rebuild);
    }
}
