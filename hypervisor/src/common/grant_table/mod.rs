//! Grant tables (v1): how a domain lets another one map or copy its pages.
//!
//! Each domain has a table of grant entries in frames it shares with the
//! hypervisor ([`GrantTable`]); entry `ref` names a grantee domain, a gfn and
//! flags. A grantee maps the frame at a gfn of its own (`GNTTABOP_map_grant_ref`
//! with `GNTMAP_host_map`, as a PVH backend does) or copies through it
//! (`GNTTABOP_copy`). Mirrors Xen 4.17's `xen/common/grant_table.c`, with the HVM
//! filter of `xen/arch/x86/hvm/hypercall.c` (`hvm_grant_table_op`) and the HVM
//! mapping of `xen/arch/x86/hvm/grant_table.c`:
//!
//! - `mod.rs` (this file): the per-domain table (limits from createdomain), the
//!   hypercall's dispatch and continuations, `setup_table`, `query_size`,
//!   `set_version`/`get_version`, `swap_grant_ref`, the frames
//!   `XENMAPSPACE_grant_table` maps, and domain destruction;
//! - `entry.rs`: the shared v1 entries (busy bits set and cleared atomically);
//! - `map.rs`: `map_grant_ref`/`unmap_grant_ref` and the maptrack;
//! - `copy.rs`: `GNTTABOP_copy`;
//! - `resource.rs`: `XENMEM_acquire_resource` (the toolstack seeds entries 0 and 1).
//!
//! Only version 1 exists here: `set_version(2)` answers `-ENOSYS`, what 4.17
//! answers a domain created with grant version 1 (`docs/grant-tables.md`).

// Xen's names in match patterns.
#![allow(non_upper_case_globals)]

pub mod copy;
pub mod entry;
pub mod map;
pub mod resource;
#[cfg(test)]
mod tests;

use alloc::collections::BTreeMap;
use alloc::vec::Vec;
use core::sync::atomic::{AtomicU64, Ordering};

use xen_public_abi::grant_table::{
    gnttab_get_version, gnttab_query_size, gnttab_set_version, gnttab_setup_table,
    gnttab_swap_grant_ref, grant_entry_v1, grant_ref_t, GNTST_bad_domain, GNTST_bad_gntref,
    GNTST_bad_virt_addr, GNTST_eagain, GNTST_general_error, GNTST_okay, GNTST_permission_denied,
    GNTTABOP_copy, GNTTABOP_get_version, GNTTABOP_map_grant_ref, GNTTABOP_query_size,
    GNTTABOP_set_version, GNTTABOP_setup_table, GNTTABOP_swap_grant_ref, GNTTABOP_unmap_grant_ref,
};
use xen_public_abi::xen::{__HYPERVISOR_grant_table_op, domid_t};
use xen_public_abi::{Errno, XenResult};
use zerocopy::IntoBytes;

use super::domain::DomainTable;
use super::guest_access::{copy_from_guest, copy_to_guest, GuestAccess, MachineMemory};
use super::hypercall::Caller;
use super::memory::{P2m, INVALID_GFN};
use super::memory_op::MemoryOpEnv;
use super::page_alloc::Mfn;

pub use entry::ENTRIES_PER_FRAME;

/// Batch entries (map, unmap, copy, swap) handled per hypercall entry before
/// the call asks to be continued (Xen: `hypercall_preempt_check()` between
/// entries; unmap flushes every `GNTTAB_UNMAP_BATCH_SIZE` = 32).
pub const GNTTAB_OPS_PER_ENTRY: u32 = 32;

/// `MAPTRACK_PER_PAGE`: handles per maptrack frame (16-byte `grant_mapping`).
pub const MAPTRACK_PER_FRAME: u32 = 4096 / 16;

/// `GNTTABOP_CONTINUATION_ARG_SHIFT`: cmd bits above this are the opaque
/// continuation argument (only `GNTTABOP_cache_flush` uses it).
const CONTINUATION_ARG_SHIFT: u32 = 12;

/// Grant tables of different domains that had the same id tell apart by this.
static NEXT_INSTANCE: AtomicU64 = AtomicU64::new(1);

/// One frame of the shared table.
#[derive(Clone, Copy, Debug)]
struct SharedFrame {
    mfn: Mfn,
    /// Where the domain mapped it last (`XENMAPSPACE_grant_table`), if anywhere:
    /// checked against the p2m before use (Xen asks the M2P).
    gfn: u64,
}

/// `struct active_grant_entry` (v1, host mappings and copies): an entry some
/// domain has pinned.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Active {
    /// `GNTPIN_*` counters (host write in bits 0-7, host read in 8-15).
    pub pin: u32,
    /// The domain the pins belong to (all pins of an entry are one domain's).
    pub domid: domid_t,
    /// The frame the entry resolved to when it was first pinned.
    pub mfn: Mfn,
}

/// A domain's grant table (`struct grant_table`): its shared frames, the
/// entries other domains have pinned, and the maptrack of the grants it maps.
#[derive(Debug)]
pub struct GrantTable {
    instance: u64,
    /// `XEN_DOMCTL_GRANT_version(grant_opts)` from createdomain.
    max_version: u32,
    /// `gt_version`: always 1 here.
    version: u32,
    max_grant_frames: u32,
    max_maptrack_frames: u32,
    frames: Vec<SharedFrame>,
    active: BTreeMap<grant_ref_t, Active>,
    /// The grants this domain maps (`map.rs`).
    pub maptrack: map::Maptrack,
}

impl GrantTable {
    /// `grant_table_init()` after createdomain's checks (the limits are already
    /// sanitised); the first frame comes with [`GrantTable::grow`].
    pub fn new(max_grant_frames: u32, max_maptrack_frames: u32, max_version: u32) -> Self {
        GrantTable {
            instance: NEXT_INSTANCE.fetch_add(1, Ordering::Relaxed),
            max_version,
            version: 1,
            max_grant_frames,
            max_maptrack_frames,
            frames: Vec::new(),
            active: BTreeMap::new(),
            maptrack: map::Maptrack::default(),
        }
    }

    pub fn instance(&self) -> u64 {
        self.instance
    }
    pub fn version(&self) -> u32 {
        self.version
    }
    pub fn max_version(&self) -> u32 {
        self.max_version
    }
    /// `nr_grant_frames()`: at least `INITIAL_NR_GRANT_FRAMES` (1), as from
    /// `grant_table_init()`. The first frame is allocated when first needed
    /// (setup_table, add_to_physmap, acquire_resource): until then the table
    /// reads as zeroed entries, as Xen's fresh frame does.
    pub fn nr_frames(&self) -> u32 {
        self.phys_frames()
            .max(super::domain::INITIAL_NR_GRANT_FRAMES)
    }
    /// Frames allocated so far.
    fn phys_frames(&self) -> u32 {
        self.frames.len() as u32
    }
    pub fn max_grant_frames(&self) -> u32 {
        self.max_grant_frames
    }
    pub fn max_maptrack_frames(&self) -> u32 {
        self.max_maptrack_frames
    }
    /// `nr_grant_entries()` (v1: 512 per frame).
    pub fn nr_entries(&self) -> u32 {
        self.nr_frames() * ENTRIES_PER_FRAME
    }
    /// The machine frames of the shared table.
    pub fn frame_mfns(&self) -> impl Iterator<Item = Mfn> + '_ {
        self.frames.iter().map(|f| f.mfn)
    }
    /// `mfn` is one of this table's shared frames.
    pub fn is_shared_frame(&self, mfn: Mfn) -> bool {
        self.frames.iter().any(|f| f.mfn == mfn)
    }
    /// The active (pinned) entry `r`, if any.
    pub fn active(&self, r: grant_ref_t) -> Option<Active> {
        self.active.get(&r).copied()
    }
    /// Frame and offset of entry `r` (it must be below [`Self::nr_entries`]).
    fn entry_at(&self, r: grant_ref_t) -> Option<(Mfn, usize)> {
        let (i, off) = entry::entry_location(r);
        self.frames.get(i).map(|f| (f.mfn, off))
    }
    /// The gfn frame `idx` is mapped at, or `None` (Xen: `INVALID_GFN`).
    pub fn frame_gfn(&self, p2m: &P2m, idx: usize) -> Option<u64> {
        let f = self.frames.get(idx)?;
        (f.gfn != INVALID_GFN && p2m.host_entry(f.gfn).is_some_and(|e| e.mfn == f.mfn))
            .then_some(f.gfn)
    }
    /// Frame `idx` is now mapped at `gfn` (`XENMAPSPACE_grant_table`).
    pub fn set_frame_gfn(&mut self, idx: usize, gfn: u64) {
        if let Some(f) = self.frames.get_mut(idx) {
            f.gfn = gfn;
        }
    }
    /// Read entry `r` of this table.
    pub fn read_entry(&self, m: &dyn MachineMemory, r: grant_ref_t) -> Option<grant_entry_v1> {
        let (mfn, off) = self.entry_at(r)?;
        Some(entry::read(m, mfn, off))
    }
}

/// `gnttab_grow_table()`: give domain `id`'s table at least `nr` frames
/// (zeroed, from the heap; not counted in `tot_pages`, as Xen's xenheap pages).
/// `-EINVAL` above `max_grant_frames`, `-ENOMEM` when the machine has none.
pub fn grow(domains: &mut DomainTable, id: domid_t, nr: u32) -> XenResult<()> {
    let d = domains.get(id).ok_or(Errno::ESRCH)?;
    let nr = nr.max(super::domain::INITIAL_NR_GRANT_FRAMES);
    if nr > d.grant.max_grant_frames {
        return Err(Errno::EINVAL);
    }
    let have = d.grant.phys_frames();
    if nr > have {
        if have > 0 {
            crate::gprintk!(
                id,
                log::Level::Debug,
                "d{id}: expanding the grant table from {have} to {nr} frames"
            );
        }
        let mut got = Vec::new();
        for _ in have..nr {
            match domains.alloc_xen_frame() {
                Some(m) => got.push(m),
                None => {
                    for m in got {
                        domains.free_xen_frame(m);
                    }
                    return Err(Errno::ENOMEM);
                }
            }
        }
        let d = domains.get_mut(id).ok_or(Errno::ESRCH)?;
        d.grant
            .frames
            .extend(got.into_iter().map(|mfn| SharedFrame {
                mfn,
                gfn: INVALID_GFN,
            }));
    }
    Ok(())
}

/// `gnttab_map_frame()` for `XENMAPSPACE_grant_table`: the machine frame of
/// shared frame `idx`, growing the table up to it (`-EINVAL` beyond
/// `max_grant_frames`; `XENMAPIDX_grant_table_status` names no frame in v1).
pub fn frame_for_physmap(domains: &mut DomainTable, id: domid_t, idx: u64) -> XenResult<Mfn> {
    let d = domains.get(id).ok_or(Errno::ESRCH)?;
    if idx >= u64::from(d.grant.phys_frames()) {
        let nr = idx.checked_add(1).ok_or(Errno::EINVAL)?;
        let nr = u32::try_from(nr).map_err(|_| Errno::EINVAL)?;
        if nr <= d.grant.max_grant_frames {
            // A failed allocation leaves idx invalid, as in Xen.
            let _ = grow(domains, id, nr);
        }
    }
    let d = domains.get(id).ok_or(Errno::ESRCH)?;
    d.grant
        .frames
        .get(idx as usize)
        .map(|f| f.mfn)
        .ok_or(Errno::EINVAL)
}

/// XSM_TARGET (dummy policy): the caller acts on itself or is privileged.
fn xsm_target(domains: &DomainTable, caller: domid_t, target: domid_t) -> bool {
    caller == target || domains.get(caller).is_some_and(|d| d.is_privileged)
}

/// `__HYPERVISOR_grant_table_op(unsigned int cmd, void *uop, unsigned int count)`
/// for an HVM/PVH caller. Returns RAX; a long batch asks for a continuation.
pub fn do_grant_table_op(
    env: &mut MemoryOpEnv<'_>,
    domains: &mut DomainTable,
    caller: Caller,
    cmd: u32,
    uop: u64,
    count: u32,
    guest: &mut dyn GuestAccess,
) -> i64 {
    // `hvm_grant_table_op()`: the commands an HVM guest may use (compared with
    // the whole cmd, so continuation bits make any of them -ENOSYS here).
    match cmd {
        GNTTABOP_query_size
        | GNTTABOP_setup_table
        | GNTTABOP_set_version
        | GNTTABOP_get_version
        | GNTTABOP_copy
        | GNTTABOP_map_grant_ref
        | GNTTABOP_unmap_grant_ref
        | GNTTABOP_swap_grant_ref => {}
        _ => return Errno::ENOSYS.as_ret(),
    }
    if (count as i32) < 0 {
        return Errno::EINVAL.as_ret();
    }
    debug_assert!(cmd >> CONTINUATION_ARG_SHIFT == 0);
    let r = match cmd {
        GNTTABOP_setup_table => setup_table(domains, caller, uop, count, guest).map(|()| 0),
        GNTTABOP_query_size => query_size(domains, caller, uop, count, guest).map(|()| 0),
        GNTTABOP_set_version => set_version(domains, caller, uop, guest).map(|()| 0),
        GNTTABOP_get_version => get_version(domains, caller, uop, guest).map(|()| 0),
        GNTTABOP_map_grant_ref => map::map_grant_ref_batch(env, domains, caller, uop, count, guest),
        GNTTABOP_unmap_grant_ref => {
            map::unmap_grant_ref_batch(env, domains, caller, uop, count, guest)
        }
        GNTTABOP_copy => copy::copy_batch(env, domains, caller, uop, count, guest),
        _ => swap_batch(env, domains, caller, uop, count, guest),
    };
    match r {
        // Entries done before the budget ran out: continue after them.
        Ok(done) if done > 0 && done < count => {
            let size = match cmd {
                GNTTABOP_map_grant_ref => 32,
                GNTTABOP_unmap_grant_ref => 24,
                GNTTABOP_copy => 40,
                _ => 12,
            };
            domains.create_continuation(
                __HYPERVISOR_grant_table_op,
                [
                    u64::from(cmd),
                    uop.wrapping_add(u64::from(done) * size),
                    u64::from(count - done),
                    0,
                    0,
                ],
            );
            0
        }
        Ok(_) => 0,
        Err(e) => e.as_ret(),
    }
}

/// `gnttab_setup_table()`: grow the table to `nr_frames` and write the frames'
/// gfns (`INVALID_GFN` for a frame not mapped yet: a translated guest maps them
/// with `XENMAPSPACE_grant_table`).
fn setup_table(
    domains: &mut DomainTable,
    caller: Caller,
    uop: u64,
    count: u32,
    guest: &mut dyn GuestAccess,
) -> XenResult<()> {
    if count != 1 {
        return Err(Errno::EINVAL);
    }
    let mut op: gnttab_setup_table = copy_from_guest(guest, uop)?;
    let id = DomainTable::resolve(caller.domid, op.dom);
    op.status = if domains.get(id).is_none() {
        GNTST_bad_domain
    } else if !xsm_target(domains, caller.domid, id) {
        GNTST_permission_denied
    } else {
        setup_frames(domains, id, &op, guest)
    };
    write_status(guest, uop, 8, op.status)
}

fn setup_frames(
    domains: &mut DomainTable,
    id: domid_t,
    op: &gnttab_setup_table,
    guest: &mut dyn GuestAccess,
) -> i16 {
    let Some(d) = domains.get(id) else {
        return GNTST_bad_domain;
    };
    if op.nr_frames > d.grant.max_grant_frames {
        crate::gprintk!(
            id,
            log::Level::Debug,
            "d{id} is limited to {} grant-table frames",
            d.grant.max_grant_frames
        );
        return GNTST_general_error;
    }
    if op.nr_frames > d.grant.phys_frames() && grow(domains, id, op.nr_frames).is_err() {
        return GNTST_general_error;
    }
    let Some(d) = domains.get(id) else {
        return GNTST_bad_domain;
    };
    let mut status = GNTST_okay;
    // Bounded by max_grant_frames (at most 64 by createdomain).
    for i in 0..op.nr_frames as usize {
        let gfn = d.grant.frame_gfn(&d.hvm.p2m, i).unwrap_or(INVALID_GFN);
        let at = op.frame_list.wrapping_add(8 * i as u64);
        if copy_to_guest(guest, at, &gfn).is_err() {
            status = GNTST_bad_virt_addr;
        }
    }
    status
}

/// `__copy_field_to_guest(uop, &op, status)`.
fn write_status(guest: &mut dyn GuestAccess, uop: u64, off: u64, status: i16) -> XenResult<()> {
    guest.copy_to_guest(uop.wrapping_add(off), status.as_bytes())
}

/// `gnttab_query_size()`.
fn query_size(
    domains: &DomainTable,
    caller: Caller,
    uop: u64,
    count: u32,
    guest: &mut dyn GuestAccess,
) -> XenResult<()> {
    if count != 1 {
        return Err(Errno::EINVAL);
    }
    let mut op: gnttab_query_size = copy_from_guest(guest, uop)?;
    let id = DomainTable::resolve(caller.domid, op.dom);
    match domains.get(id) {
        None => op.status = GNTST_bad_domain,
        Some(_) if !xsm_target(domains, caller.domid, id) => op.status = GNTST_permission_denied,
        Some(d) => {
            op.nr_frames = d.grant.nr_frames();
            op.max_nr_frames = d.grant.max_grant_frames;
            op.status = GNTST_okay;
        }
    }
    copy_to_guest(guest, uop, &op)
}

/// `gnttab_set_version()` on the caller's own table: 1 is a no-op (it is the
/// version in effect); 2 is `-ENOSYS` (v2 is not implemented: what 4.17 answers
/// a domain whose `max_version` is 1); anything else `-EINVAL`. The version in
/// effect is written back in every case.
fn set_version(
    domains: &DomainTable,
    caller: Caller,
    uop: u64,
    guest: &mut dyn GuestAccess,
) -> XenResult<()> {
    let mut op: gnttab_set_version = copy_from_guest(guest, uop)?;
    let d = domains.get(caller.domid).ok_or(Errno::ESRCH)?;
    let res = match op.version {
        1 => Ok(()),
        2 => {
            crate::gprintk!(
                caller.domid,
                log::Level::Debug,
                "d{}: grant table v2 requested (max {}); not implemented",
                caller.domid,
                d.grant.max_version
            );
            Err(Errno::ENOSYS)
        }
        _ => Err(Errno::EINVAL),
    };
    op.version = d.grant.version;
    copy_to_guest(guest, uop, &op)?;
    res
}

/// `gnttab_get_version()`: `-ESRCH` for an unknown domain, `-EPERM` for another
/// domain unless privileged; only `version` is written.
fn get_version(
    domains: &DomainTable,
    caller: Caller,
    uop: u64,
    guest: &mut dyn GuestAccess,
) -> XenResult<()> {
    let op: gnttab_get_version = copy_from_guest(guest, uop)?;
    let id = DomainTable::resolve(caller.domid, op.dom);
    let d = domains.get(id).ok_or(Errno::ESRCH)?;
    if !xsm_target(domains, caller.domid, id) {
        return Err(Errno::EPERM);
    }
    copy_to_guest(guest, uop.wrapping_add(4), &d.grant.version)
}

/// `gnttab_swap_grant_ref()`: swap two entries of the caller's own table;
/// `GNTST_eagain` if either is pinned.
fn swap_batch(
    env: &mut MemoryOpEnv<'_>,
    domains: &mut DomainTable,
    caller: Caller,
    uop: u64,
    count: u32,
    guest: &mut dyn GuestAccess,
) -> XenResult<u32> {
    for_each_op::<gnttab_swap_grant_ref>(uop, count, |at| {
        let mut op: gnttab_swap_grant_ref = copy_from_guest(guest, at)?;
        op.status = swap_one(env.machine, domains, caller.domid, op.ref_a, op.ref_b);
        write_status(guest, at, 8, op.status)
    })
}

/// The frame every batched op shares: op `i` of `count` is the `T` at
/// `uop + i * size_of::<T>()`; at most [`GNTTAB_OPS_PER_ENTRY`] are done per
/// hypercall entry (the dispatcher continues the rest). Returns how many were.
pub(super) fn for_each_op<T>(
    uop: u64,
    count: u32,
    mut one: impl FnMut(u64) -> XenResult<()>,
) -> XenResult<u32> {
    let size = core::mem::size_of::<T>() as u64;
    for i in 0..count {
        if i >= GNTTAB_OPS_PER_ENTRY {
            return Ok(i);
        }
        one(uop.wrapping_add(u64::from(i) * size))?;
    }
    Ok(count)
}

fn swap_one(
    m: &dyn MachineMemory,
    domains: &DomainTable,
    id: domid_t,
    a: grant_ref_t,
    b: grant_ref_t,
) -> i16 {
    let Some(d) = domains.get(id) else {
        return GNTST_general_error;
    };
    let gt = &d.grant;
    if a >= gt.nr_entries() || b >= gt.nr_entries() {
        return GNTST_bad_gntref;
    }
    if a == b {
        return GNTST_okay;
    }
    if gt.active.contains_key(&a) || gt.active.contains_key(&b) {
        return GNTST_eagain;
    }
    // Entries of a frame not allocated yet are zero: nothing to swap.
    let (Some((ma, oa)), Some((mb, ob))) = (gt.entry_at(a), gt.entry_at(b)) else {
        return GNTST_okay;
    };
    let ea = entry::read(m, ma, oa);
    let eb = entry::read(m, mb, ob);
    entry::write(m, ma, oa, &eb);
    entry::write(m, mb, ob, &ea);
    GNTST_okay
}

/// `gnttab_release_mappings()`: domain `id` is being destroyed; the entries it
/// pinned in other domains' tables are unpinned (their busy bits cleared). The
/// frame references its mappings hold are dropped with the domain
/// (`DomainTable::destroy_domain`).
pub fn release_mappings(m: &dyn MachineMemory, domains: &mut DomainTable, id: domid_t) {
    let Some(d) = domains.get_mut(id) else {
        return;
    };
    let released = d.grant.maptrack.release_all();
    for e in released {
        map::unpin_granter(m, domains, &e);
    }
}

/// Undo a pin of `incr` on entry `r` of `gt` (an unmap, a finished copy, a
/// failed map): drop the counter and the busy bits it no longer needs.
fn unpin(m: &dyn MachineMemory, gt: &mut GrantTable, r: grant_ref_t, incr: u32, readonly: bool) {
    let Some((mfn, off)) = gt.entry_at(r) else {
        return;
    };
    let pin = match gt.active.get_mut(&r) {
        Some(a) => {
            a.pin = a.pin.saturating_sub(incr);
            a.pin
        }
        None => 0,
    };
    if pin == 0 {
        gt.active.remove(&r);
    }
    entry::reduce_status_for_pin(m, mfn, off, pin, readonly);
}

/// A frame is "the granting domain's RAM at `gfn`" (`get_paged_frame()`): mapped
/// in its host p2m and owned by it (a foreign or grant mapping is not).
fn get_paged_frame(domains: &DomainTable, rd: domid_t, gfn: u64) -> Result<Mfn, i16> {
    let d = domains
        .get(rd)
        .ok_or(xen_public_abi::grant_table::GNTST_bad_page)?;
    d.hvm
        .p2m
        .host_entry(gfn)
        .map(|e| e.mfn)
        .filter(|&m| d.owns_page(m))
        .ok_or(xen_public_abi::grant_table::GNTST_bad_page)
}

/// Pin entry `r` of domain `rd` for `ldom` (`acquire_grant_for_copy()` and the
/// first half of `map_grant_ref()`): one host pin, read-only or writable;
/// returns the frame. `mapflag`: a mapping (sub-page grants refused).
fn pin_entry(
    m: &dyn MachineMemory,
    domains: &mut DomainTable,
    rd: domid_t,
    r: grant_ref_t,
    ldom: domid_t,
    readonly: bool,
    mapflag: bool,
) -> Result<Mfn, i16> {
    let incr = if readonly {
        entry::PIN_HSTR
    } else {
        entry::PIN_HSTW
    };
    let d = domains.get(rd).ok_or(GNTST_bad_domain)?;
    if r >= d.grant.nr_entries() {
        return Err(GNTST_bad_gntref);
    }
    // A frame not allocated yet holds only invalid (zero) entries.
    let (fmfn, off) = d.grant.entry_at(r).ok_or(GNTST_general_error)?;
    let act = d.grant.active.get(&r).copied();
    if let Some(a) = act {
        if a.domid != ldom || entry::pin_would_overflow(a.pin, incr) {
            return Err(GNTST_general_error);
        }
    }
    let pinned = act.is_some();
    let has_write_pin = act.is_some_and(|a| a.pin & entry::PIN_HSTW_MASK != 0);
    let mut mfn = act.map(|a| a.mfn);
    if !pinned || (!readonly && !has_write_pin) {
        let rc = entry::set_status(m, fmfn, off, pinned, readonly, mapflag, ldom);
        if rc != GNTST_okay {
            return Err(rc);
        }
        if !pinned {
            let gfn = u64::from(entry::read(m, fmfn, off).frame);
            match get_paged_frame(domains, rd, gfn) {
                Ok(f) => mfn = Some(f),
                Err(rc) => {
                    entry::reduce_status_for_pin(m, fmfn, off, 0, readonly);
                    return Err(rc);
                }
            }
        }
    }
    let mfn = mfn.ok_or(GNTST_general_error)?;
    let d = domains.get_mut(rd).ok_or(GNTST_bad_domain)?;
    let a = d.grant.active.entry(r).or_insert(Active {
        pin: 0,
        domid: ldom,
        mfn,
    });
    a.pin += incr;
    Ok(a.mfn)
}
