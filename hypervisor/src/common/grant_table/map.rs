//! `GNTTABOP_map_grant_ref` and `GNTTABOP_unmap_grant_ref` for a translated
//! (HVM/PVH) caller, and the maptrack that remembers each mapping by handle.
//!
//! Mirrors Xen 4.17's `map_grant_ref()`, `unmap_common()`,
//! `unmap_common_complete()` (`xen/common/grant_table.c`) with
//! `create_grant_p2m_mapping()` / `replace_grant_p2m_mapping()`
//! (`xen/arch/x86/hvm/grant_table.c`): `host_addr` is a guest-physical address
//! of the mapper; the granted frame goes into the mapper's host p2m there
//! (read-only with `GNTMAP_readonly`, never executable), the way Linux's PVH
//! backends map grants into ballooned-out gfns.
//!
//! **Lifetime.** Each mapping holds a reference on its frame
//! (`DomainTable::foreign`, the counter foreign mappings use): a granting domain
//! that frees the page or dies leaves the frame allocated and mapped until the
//! last mapping goes; it is then freed after the p2m change is committed (the
//! stage-2 tables edited and every CPU flushed), never before. While mapped,
//! the entry keeps `GTF_reading` (and `GTF_writing` for a writable mapping), so
//! the granter cannot revoke it (its compare-and-exchange sees the busy bits).
//!
//! Differences (`docs/grant-tables.md`): handles are handed out lowest-free
//! first from one list (Xen: per-vCPU free lists); an unmap whose granting
//! domain is already gone removes the mapping and drops the reference (Xen keeps
//! such a domain as a zombie until then).

use alloc::collections::{BTreeMap, BTreeSet};
use alloc::vec::Vec;

use xen_public_abi::grant_table::{
    gnttab_map_grant_ref, gnttab_unmap_grant_ref, grant_handle_t, grant_ref_t,
    GNTMAP_application_map, GNTMAP_contains_pte, GNTMAP_device_map, GNTMAP_host_map,
    GNTMAP_readonly, GNTST_bad_domain, GNTST_bad_gntref, GNTST_bad_handle, GNTST_general_error,
    GNTST_no_space, GNTST_okay, GTF_PAT, GTF_PCD, GTF_PWT,
};
use xen_public_abi::xen::domid_t;
use xen_public_abi::XenResult;

use super::entry::{PIN_HSTR, PIN_HSTW};
use super::{unpin, GNTTAB_OPS_PER_ENTRY, MAPTRACK_PER_FRAME};
use crate::common::dispatch::ArchAction;
use crate::common::domain::DomainTable;
use crate::common::guest_access::{copy_from_guest, copy_to_guest, GuestAccess, MachineMemory};
use crate::common::hypercall::Caller;
use crate::common::memory::P2mAccess;
use crate::common::memory_op::MemoryOpEnv;
use crate::common::page_alloc::Mfn;

/// `struct grant_mapping`: one live mapping of another domain's grant.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MapEntry {
    /// The granting domain and its table's instance (ids are reused).
    pub domid: domid_t,
    pub instance: u64,
    pub gref: grant_ref_t,
    /// `GNTMAP_*` still mapped (0: the handle is free).
    pub flags: u32,
    pub mfn: Mfn,
}

/// The maptrack: handle → mapping, the free handles, and which gfns of the
/// mapper hold a grant mapping (Xen's `p2m_grant_map_*` types).
#[derive(Debug, Default)]
pub struct Maptrack {
    entries: Vec<MapEntry>,
    free: BTreeSet<grant_handle_t>,
    /// gfn → handle of the mapping placed there.
    host_maps: BTreeMap<u64, grant_handle_t>,
}

impl Maptrack {
    /// Live mappings.
    pub fn live(&self) -> usize {
        self.entries.iter().filter(|e| e.flags != 0).count()
    }
    /// The mapping behind `h`, if live.
    pub fn get(&self, h: grant_handle_t) -> Option<MapEntry> {
        self.entries
            .get(h as usize)
            .copied()
            .filter(|e| e.flags != 0)
    }
    /// `get_maptrack_handle()`: the lowest free handle, or a new one while
    /// `max_frames` frames of handles are not used up.
    fn alloc(&mut self, max_frames: u32) -> Option<grant_handle_t> {
        if let Some(h) = self.free.pop_first() {
            return Some(h);
        }
        let n = self.entries.len() as u64;
        if n >= u64::from(max_frames) * u64::from(MAPTRACK_PER_FRAME) {
            return None;
        }
        self.entries.push(MapEntry {
            domid: 0,
            instance: 0,
            gref: 0,
            flags: 0,
            mfn: 0,
        });
        Some(n as grant_handle_t)
    }
    fn put(&mut self, h: grant_handle_t) {
        if let Some(e) = self.entries.get_mut(h as usize) {
            e.flags = 0;
            self.free.insert(h);
        }
    }
    /// A grant mapping sits at `gfn` (and the p2m still maps its frame there).
    pub(super) fn grant_at(&self, gfn: u64, p2m_mfn: Option<Mfn>) -> bool {
        self.host_maps
            .get(&gfn)
            .and_then(|&h| self.get(h))
            .is_some_and(|e| Some(e.mfn) == p2m_mfn)
    }
    /// The domain is dying: every live mapping, for the caller to unpin; the
    /// entries stay (their frame references go with the domain).
    pub(super) fn release_all(&mut self) -> Vec<MapEntry> {
        self.entries
            .iter()
            .filter(|e| e.flags & GNTMAP_host_map != 0)
            .copied()
            .collect()
    }
    /// Frames the live mappings hold a reference on (one per mapping).
    pub fn held_frames(&self) -> impl Iterator<Item = Mfn> + '_ {
        self.entries
            .iter()
            .filter(|e| e.flags & GNTMAP_host_map != 0)
            .map(|e| e.mfn)
    }
}

/// The pin a mapping with these flags holds.
fn pin_incr(flags: u32) -> u32 {
    if flags & GNTMAP_readonly != 0 {
        PIN_HSTR
    } else {
        PIN_HSTW
    }
}

/// Unpin the granter's entry of mapping `e` if that table still exists.
pub(super) fn unpin_granter(m: &dyn MachineMemory, domains: &mut DomainTable, e: &MapEntry) {
    if let Some(rd) = domains.get_mut(e.domid) {
        if rd.grant.instance() == e.instance {
            unpin(
                m,
                &mut rd.grant,
                e.gref,
                pin_incr(e.flags),
                e.flags & GNTMAP_readonly != 0,
            );
        }
    }
}

/// `gnttab_map_grant_ref()`: up to [`GNTTAB_OPS_PER_ENTRY`] per entry; returns
/// how many were done (the dispatcher continues the rest).
pub fn map_grant_ref_batch(
    env: &mut MemoryOpEnv<'_>,
    domains: &mut DomainTable,
    caller: Caller,
    uop: u64,
    count: u32,
    guest: &mut dyn GuestAccess,
) -> XenResult<u32> {
    super::for_each_op::<gnttab_map_grant_ref>(uop, count, |at| {
        let mut op: gnttab_map_grant_ref = copy_from_guest(guest, at)?;
        map_grant_ref(env, domains, caller.domid, &mut op);
        copy_to_guest(guest, at, &op)
    })
}

/// `map_grant_ref()` for translated caller `ld`.
fn map_grant_ref(
    env: &mut MemoryOpEnv<'_>,
    domains: &mut DomainTable,
    ld: domid_t,
    op: &mut gnttab_map_grant_ref,
) {
    if op.flags & (GNTMAP_device_map | GNTMAP_host_map) == 0 {
        crate::gprintk!(
            ld,
            log::Level::Debug,
            "d{ld}: bad flags in grant map op: {:#x}",
            op.flags
        );
        op.status = GNTST_bad_gntref;
        return;
    }
    // A translated caller has no device or PTE mappings.
    if op.flags & (GNTMAP_device_map | GNTMAP_application_map | GNTMAP_contains_pte) != 0 {
        op.status = GNTST_general_error;
        return;
    }
    // `rcu_lock_domain_by_id()`: no DOMID_SELF here.
    let rd = op.dom;
    let Some(instance) = domains.get(rd).map(|d| d.grant.instance()) else {
        op.status = GNTST_bad_domain;
        return;
    };
    let Some(lmax) = domains.get(ld).map(|d| d.grant.max_maptrack_frames()) else {
        op.status = GNTST_general_error;
        return;
    };
    let Some(handle) = domains
        .get_mut(ld)
        .and_then(|d| d.grant.maptrack.alloc(lmax))
    else {
        op.status = GNTST_no_space;
        return;
    };
    let readonly = op.flags & GNTMAP_readonly != 0;
    let incr = pin_incr(op.flags);
    let m = env.machine;
    let mfn = match super::pin_entry(m, domains, rd, op.r#ref, ld, readonly, true) {
        Ok(mfn) => mfn,
        Err(rc) => {
            put_handle(domains, ld, handle);
            op.status = rc;
            return;
        }
    };
    let cache_flags = domains
        .get(rd)
        .and_then(|d| d.grant.read_entry(m, op.r#ref))
        .map_or(0, |e| e.flags & (GTF_PAT | GTF_PWT | GTF_PCD));
    let rc = create_grant_p2m_mapping(env, domains, ld, op.host_addr, mfn, op.flags, cache_flags);
    if rc != GNTST_okay {
        if let Some(d) = domains.get_mut(rd) {
            unpin(m, &mut d.grant, op.r#ref, incr, readonly);
        }
        put_handle(domains, ld, handle);
        op.status = rc;
        return;
    }
    domains.foreign.hold(mfn);
    if let Some(d) = domains.get_mut(ld) {
        let gfn = op.host_addr >> 12;
        d.grant.maptrack.entries[handle as usize] = MapEntry {
            domid: rd,
            instance,
            gref: op.r#ref,
            flags: op.flags,
            mfn,
        };
        d.grant.maptrack.host_maps.insert(gfn, handle);
    }
    op.dev_bus_addr = mfn << 12;
    op.handle = handle;
    op.status = GNTST_okay;
}

fn put_handle(domains: &mut DomainTable, ld: domid_t, h: grant_handle_t) {
    if let Some(d) = domains.get_mut(ld) {
        d.grant.maptrack.put(h);
    }
}

/// `create_grant_p2m_mapping()` → `p2m_add_page(..., p2m_grant_map_r{w,o})`.
fn create_grant_p2m_mapping(
    env: &mut MemoryOpEnv<'_>,
    domains: &mut DomainTable,
    ld: domid_t,
    addr: u64,
    mfn: Mfn,
    flags: u32,
    cache_flags: u16,
) -> i16 {
    if cache_flags != 0 || flags & !GNTMAP_readonly != GNTMAP_host_map {
        return GNTST_general_error;
    }
    let gfn = addr >> 12;
    let foreign_there = domains.foreign.entry(ld, gfn).is_some();
    let Some(d) = domains.get_mut(ld) else {
        return GNTST_general_error;
    };
    let there = d.hvm.p2m.host_entry(gfn).map(|e| e.mfn);
    // A grant or foreign mapping is not replaced this way: Xen crashes the domain.
    if foreign_there || d.grant.maptrack.grant_at(gfn, there) {
        crate::gprintk!(
            ld,
            log::Level::Warn,
            "d{ld}: grant mapping over the special page at gfn {gfn:#x}: crashing it"
        );
        env.actions.push(ArchAction::Crash { domid: ld });
        return GNTST_general_error;
    }
    let access = if flags & GNTMAP_readonly != 0 {
        P2mAccess::R
    } else {
        P2mAccess::RW
    };
    // RAM of the mapper there stays its own (unmapped), as in Xen; its
    // shared_info is unhooked first (the event channels reach it by gfn).
    if there.is_some() && there == Some(d.shared_info_mfn) {
        crate::common::memory_op::unhook_shared_info(env, d);
    }
    match d.hvm.p2m.set_host_entry(gfn, mfn, access) {
        Ok(()) => {
            env.actions.push(ArchAction::FlushTlbs { domid: ld });
            GNTST_okay
        }
        Err(_) => GNTST_general_error,
    }
}

/// What `unmap_common()` did, for `unmap_common_complete()`.
struct Done {
    entry: MapEntry,
}

/// `gnttab_unmap_grant_ref()`: up to [`GNTTAB_OPS_PER_ENTRY`] per entry.
pub fn unmap_grant_ref_batch(
    env: &mut MemoryOpEnv<'_>,
    domains: &mut DomainTable,
    caller: Caller,
    uop: u64,
    count: u32,
    guest: &mut dyn GuestAccess,
) -> XenResult<u32> {
    let mut done = Vec::new();
    let mut result = Ok(count.min(GNTTAB_OPS_PER_ENTRY));
    for i in 0..count.min(GNTTAB_OPS_PER_ENTRY) {
        let at = uop.wrapping_add(u64::from(i) * 24);
        let op: gnttab_unmap_grant_ref = match copy_from_guest(guest, at) {
            Ok(op) => op,
            Err(e) => {
                result = Err(e);
                break;
            }
        };
        let (status, d) = unmap_common(domains, caller.domid, &op);
        if d.is_some() {
            env.actions.push(ArchAction::FlushTlbs {
                domid: caller.domid,
            });
        }
        done.extend(d);
        if let Err(e) = guest.copy_to_guest(at.wrapping_add(20), &status.to_le_bytes()) {
            result = Err(e);
            break;
        }
    }
    // The p2m entries are gone; the pins and references go now, and a frame
    // whose last reference this was is freed after the commit (shootdown).
    for d in done {
        unmap_common_complete(env.machine, domains, &d);
    }
    result
}

/// `unmap_common()` + `replace_grant_p2m_mapping()`.
fn unmap_common(
    domains: &mut DomainTable,
    ld: domid_t,
    op: &gnttab_unmap_grant_ref,
) -> (i16, Option<Done>) {
    let Some(l) = domains.get(ld) else {
        return (GNTST_bad_handle, None);
    };
    let Some(map) = l.grant.maptrack.get(op.handle) else {
        crate::gprintk!(
            ld,
            log::Level::Debug,
            "d{ld}: bad grant handle {:#x}",
            op.handle
        );
        return (GNTST_bad_handle, None);
    };
    // The granting table, if it still exists (same id may be a new domain).
    let granter_alive = domains
        .get(map.domid)
        .is_some_and(|d| d.grant.instance() == map.instance);
    if granter_alive
        && domains
            .get(map.domid)
            .is_some_and(|d| map.gref >= d.grant.nr_entries())
    {
        return (GNTST_bad_handle, None);
    }
    let mut done = None;
    if op.host_addr != 0 && map.flags & GNTMAP_host_map != 0 {
        let gfn = op.host_addr >> 12;
        let Some(l) = domains.get_mut(ld) else {
            return (GNTST_general_error, None);
        };
        let there = l.hvm.p2m.host_entry(gfn).map(|e| e.mfn);
        if !l.grant.maptrack.grant_at(gfn, there) || there != Some(map.mfn) {
            crate::gprintk!(
                ld,
                log::Level::Debug,
                "d{ld}: grant unmap at gfn {gfn:#x}: no such grant mapping"
            );
            return (GNTST_general_error, None);
        }
        l.hvm.p2m.remove_host_entry(gfn);
        l.grant.maptrack.host_maps.remove(&gfn);
        l.grant.maptrack.put(op.handle);
        done = Some(Done { entry: map });
    }
    (GNTST_okay, done)
}

/// `unmap_common_complete()`: drop the pin and the frame reference.
fn unmap_common_complete(m: &dyn MachineMemory, domains: &mut DomainTable, d: &Done) {
    unpin_granter(m, domains, &d.entry);
    if domains.foreign.release(d.entry.mfn) {
        domains.free_frame_deferred(d.entry.mfn);
    }
}
