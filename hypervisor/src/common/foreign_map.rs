//! Foreign mapping: the control domain maps another domain's frames at gfns of
//! its own (`XENMEM_add_to_physmap_batch` with `XENMAPSPACE_gmfn_foreign`) and
//! unmaps them (`XENMEM_remove_from_physmap`), as Linux's privcmd does on a PVH
//! dom0 for the toolstack's domain builder and the console backend.
//!
//! Mirrors Xen 4.17's `xenmem_add_to_physmap_batch()` and
//! `XENMEM_remove_from_physmap` (`xen/common/memory.c`) and `p2m_add_foreign()`
//! (`xen/arch/x86/mm/p2m.c`):
//!
//! - the batch form only (plain `add_to_physmap` with `gmfn_foreign` is `-ENOSYS`,
//!   in `memory_op.rs`); `gmfn_range` in a batch is `-EOPNOTSUPP`;
//! - per entry, into `errs[]`: the mapping domain must be the hardware domain
//!   (`-EPERM`); the foreign domain must exist (`-ESRCH`), not be the caller
//!   (`-EPERM`) nor the mapping domain (`-EINVAL`); the foreign gfn must be a RAM
//!   page the foreign domain owns (`-EINVAL`); whatever the mapping domain had at
//!   the gfn is released first;
//! - **each mapping holds a reference on the frame**: a frame its owner frees, or
//!   whose owner is destroyed, stays allocated (and mapped) until the last
//!   mapping of it is removed; then it goes back to the allocator, never earlier
//!   and never later ([`ForeignRefs`]).
//!
//! - a foreign entry removed any other way drops its reference too:
//!   `decrease_reservation` and `add_to_physmap` over it release it
//!   (`guest_remove_page` on a foreign entry); `populate_physmap` over it crashes
//!   the mapping domain and fails, as `guest_physmap_add_entry` does;
//!   `XENMAPSPACE_gmfn` cannot move a foreign entry (`-EINVAL`: not the domain's
//!   page).
//!
//! Not here: long batches are not preempted (at most 65535 entries, the `u16`
//! size).

use alloc::collections::BTreeMap;
use alloc::vec::Vec;

use xen_public_abi::memory::{
    xen_add_to_physmap_batch, xen_remove_from_physmap, XENMAPSPACE_gmfn_foreign,
    XENMAPSPACE_gmfn_range,
};
use xen_public_abi::xen::domid_t;
use xen_public_abi::{Errno, XenResult};

use super::dispatch::ArchAction;
use super::domain::DomainTable;
use super::guest_access::{copy_from_guest, copy_to_guest, GuestAccess};
use super::hypercall::Caller;
use super::memory::P2mAccess;
use super::memory_op::{self, MemoryOpEnv};
use super::page_alloc::Mfn;

/// One frame's foreign references.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct FrameRef {
    count: u32,
    /// Its owner let go of it (freed or destroyed): free it with the last ref.
    orphaned: bool,
}

/// Every foreign mapping (mapping domain, gfn) → frame, and the references
/// they hold per frame.
#[derive(Debug, Default)]
pub struct ForeignRefs {
    entries: BTreeMap<(domid_t, u64), Mfn>,
    refs: BTreeMap<Mfn, FrameRef>,
}

impl ForeignRefs {
    /// The frame `mapper` maps at `gfn` through a foreign mapping, if any.
    pub fn entry(&self, mapper: domid_t, gfn: u64) -> Option<Mfn> {
        self.entries.get(&(mapper, gfn)).copied()
    }

    /// Foreign mappings of `mfn`.
    /// Whether `mapper` has a foreign mapping at any of `count` gfns from `gfn`.
    pub fn maps_any(&self, mapper: domid_t, gfn: u64, count: u64) -> bool {
        let end = gfn.saturating_add(count);
        self.entries
            .range((mapper, gfn)..(mapper, end))
            .next()
            .is_some()
    }

    pub fn refs(&self, mfn: Mfn) -> u32 {
        self.refs.get(&mfn).map_or(0, |r| r.count)
    }

    /// Frames kept alive only by foreign mappings (their owner let go).
    pub fn orphans(&self) -> usize {
        self.refs.values().filter(|r| r.orphaned).count()
    }

    fn add(&mut self, mapper: domid_t, gfn: u64, mfn: Mfn) {
        self.entries.insert((mapper, gfn), mfn);
        self.refs
            .entry(mfn)
            .or_insert(FrameRef {
                count: 0,
                orphaned: false,
            })
            .count += 1;
    }

    /// Drop the mapping at (`mapper`, `gfn`); returns the frame and whether it
    /// must now be freed (last reference of an orphan).
    fn remove(&mut self, mapper: domid_t, gfn: u64) -> Option<(Mfn, bool)> {
        let mfn = self.entries.remove(&(mapper, gfn))?;
        Some((mfn, self.put(mfn)))
    }

    fn put(&mut self, mfn: Mfn) -> bool {
        let Some(r) = self.refs.get_mut(&mfn) else {
            return false;
        };
        r.count -= 1;
        if r.count == 0 {
            let orphaned = r.orphaned;
            self.refs.remove(&mfn);
            return orphaned;
        }
        false
    }

    /// The frame's owner lets go of it: if mapped, keep it (return true) and
    /// free it with the last mapping.
    pub fn orphan_if_mapped(&mut self, mfn: Mfn) -> bool {
        match self.refs.get_mut(&mfn) {
            Some(r) => {
                r.orphaned = true;
                true
            }
            None => false,
        }
    }

    /// Domain `mapper` is destroyed: its mappings go; returns the frames to free.
    pub fn mapper_gone(&mut self, mapper: domid_t) -> Vec<Mfn> {
        let gfns: Vec<u64> = self
            .entries
            .range((mapper, 0)..=(mapper, u64::MAX))
            .map(|(&(_, g), _)| g)
            .collect();
        gfns.into_iter()
            .filter_map(|g| self.remove(mapper, g))
            .filter_map(|(mfn, free)| free.then_some(mfn))
            .collect()
    }
}

/// Remove a foreign mapping of `mapper` at `gfn` from its p2m and drop the
/// reference (freeing an orphan with its last one). `false`: none there.
pub(super) fn unmap_foreign(domains: &mut DomainTable, mapper: domid_t, gfn: u64) -> bool {
    let Some((mfn, free)) = domains.foreign.remove(mapper, gfn) else {
        return false;
    };
    if let Some(d) = domains.get_mut(mapper) {
        d.hvm.p2m.remove_host_entry(gfn);
    }
    if free {
        // Its owner let go of it before: nobody holds it now.
        domains.free_frame_deferred(mfn);
    }
    true
}

/// `p2m_add_foreign(tdom = mapper, fgfn, gpfn, foreign)`.
fn add_foreign(
    env: &mut MemoryOpEnv<'_>,
    domains: &mut DomainTable,
    caller: domid_t,
    mapper: domid_t,
    fgfn: u64,
    gpfn: u64,
    foreign: domid_t,
) -> XenResult<()> {
    let tdom = domains.get(mapper).ok_or(Errno::ESRCH)?;
    // Translated domains: the hardware domain only (`arch_acquire_resource_check`).
    if !tdom.is_hardware {
        return Err(Errno::EPERM);
    }
    // `rcu_lock_remote_domain_by_id`: exists, and is not the caller.
    let fdom = domains.get(foreign).ok_or(Errno::ESRCH)?;
    if foreign == caller {
        return Err(Errno::EPERM);
    }
    if foreign == mapper {
        return Err(Errno::EINVAL);
    }
    // XSM_TARGET (dummy): the mapping domain controls the foreign one.
    if !tdom.is_privileged {
        return Err(Errno::EPERM);
    }
    // A RAM page the foreign domain owns.
    let mfn = fdom
        .hvm
        .p2m
        .host_entry(fgfn)
        .map(|e| e.mfn)
        .filter(|&m| fdom.owns_page(m))
        .ok_or(Errno::EINVAL)?;
    // Release what the mapper had at gpfn.
    if !unmap_foreign(domains, mapper, gpfn) {
        let d = domains.get(mapper).ok_or(Errno::ESRCH)?;
        if d.hvm.p2m.host_entry(gpfn).is_some() {
            memory_op::remove_page(env, domains, mapper, gpfn)?;
        }
    }
    let d = domains.get_mut(mapper).ok_or(Errno::ESRCH)?;
    d.hvm.p2m.set_host_entry(gpfn, mfn, P2mAccess::RW)?;
    domains.foreign.add(mapper, gpfn, mfn);
    Ok(())
}

/// `XENMEM_add_to_physmap_batch`. Returns the hypercall's result.
pub fn add_to_physmap_batch(
    env: &mut MemoryOpEnv<'_>,
    domains: &mut DomainTable,
    caller: Caller,
    start_extent: u64,
    arg: u64,
    guest: &mut dyn GuestAccess,
) -> XenResult<()> {
    if start_extent > u64::from(u16::MAX) {
        return Err(Errno::EDOM);
    }
    let b: xen_add_to_physmap_batch = copy_from_guest(guest, arg)?;
    if u32::from(b.space) == XENMAPSPACE_gmfn_range {
        return Err(Errno::EOPNOTSUPP);
    }
    let id = DomainTable::resolve(caller.domid, b.domid);
    let d = domains.get(id).ok_or(Errno::ESRCH)?;
    // `xatp_permission_check`: translated target, XSM_TARGET.
    if !d.is_hvm() {
        return Err(Errno::EACCES);
    }
    super::memory_op::xsm_target(domains, caller.domid, id)?;
    let size = u64::from(b.size);
    if size < start_extent {
        return Err(Errno::EILSEQ);
    }
    let foreign = b.u.get::<u16>();
    // Bounded by the u16 size.
    for i in start_extent..size {
        let idx: u64 = copy_from_guest(guest, b.idxs.wrapping_add(i * 8))?;
        let gpfn: u64 = copy_from_guest(guest, b.gpfns.wrapping_add(i * 8))?;
        let rc = if u32::from(b.space) == XENMAPSPACE_gmfn_foreign {
            add_foreign(env, domains, caller.domid, id, idx, gpfn, foreign)
        } else {
            memory_op::add_to_physmap_one(env, domains, id, u32::from(b.space), idx, gpfn)
        };
        let rc: i32 = match rc {
            Ok(()) => 0,
            Err(e) => e.as_ret() as i32,
        };
        copy_to_guest(guest, b.errs.wrapping_add(i * 4), &rc)?;
    }
    env.actions.push(ArchAction::FlushTlbs { domid: id });
    Ok(())
}

/// `XENMEM_remove_from_physmap`: unmap `gpfn` of a translated domain. A foreign
/// mapping drops its reference; the domain's own page stays allocated to it
/// (only unmapped, as Xen's `guest_physmap_remove_page`); nothing there is
/// `-ENOENT`.
pub fn remove_from_physmap(
    env: &mut MemoryOpEnv<'_>,
    domains: &mut DomainTable,
    caller: Caller,
    start_extent: u64,
    arg: u64,
    guest: &mut dyn GuestAccess,
) -> XenResult<()> {
    if start_extent != 0 {
        return Err(Errno::EINVAL);
    }
    let x: xen_remove_from_physmap = copy_from_guest(guest, arg)?;
    let id = DomainTable::resolve(caller.domid, x.domid);
    let d = domains.get(id).ok_or(Errno::ESRCH)?;
    if !d.is_hvm() {
        return Err(Errno::EACCES);
    }
    super::memory_op::xsm_target(domains, caller.domid, id)?;
    if !unmap_foreign(domains, id, x.gpfn) {
        let d = domains.get_mut(id).ok_or(Errno::ESRCH)?;
        let e = d.hvm.p2m.host_entry(x.gpfn).ok_or(Errno::ENOENT)?;
        if e.mfn == d.shared_info_mfn {
            memory_op::unhook_shared_info(env, d);
        }
        d.hvm.p2m.remove_host_entry(x.gpfn);
    }
    env.actions.push(ArchAction::FlushTlbs { domid: id });
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::common::dispatch::XenExt;
    use crate::common::guest_access::fake::FakeMachine;
    use crate::common::guest_access::GuestMemory;
    use crate::common::hypercall::do_hypercall;
    use crate::common::memory_op::MEMOP_EXTENT_SHIFT;
    use crate::common::test_support::*;
    use alloc::boxed::Box;
    use alloc::sync::Arc;
    use xen_public_abi::domctl::{XEN_DOMCTL_destroydomain, XEN_DOMCTL_max_vcpus};
    use xen_public_abi::memory::{
        xen_add_to_physmap, xen_add_to_physmap_batch_extra, xen_foreign_memory_map, xen_memory_map,
        xen_memory_reservation, XENMAPSPACE_gmfn, XENMEM_add_to_physmap,
        XENMEM_add_to_physmap_batch, XENMEM_claim_pages, XENMEM_decrease_reservation,
        XENMEM_memory_map, XENMEM_populate_physmap, XENMEM_remove_from_physmap,
        XENMEM_set_memory_map,
    };
    use xen_public_abi::xen::{__HYPERVISOR_memory_op, DOMID_SELF};
    use zerocopy::{FromZeros, Immutable, IntoBytes};

    const EPERM: i64 = -1;
    const ENOENT: i64 = -2;
    const ESRCH: i64 = -3;
    const EFAULT: i64 = -14;
    const EINVAL: i64 = -22;
    const ENOSYS: i64 = -38;
    const EOPNOTSUPP: i64 = -95;
    const IDXS: u64 = 0x3000;
    const GPFNS: u64 = 0x3800;
    const ERRS: u64 = 0x4000;
    const LIST: u64 = 0x5000;
    /// Where dom0 maps foreign frames.
    const MAP_GFN: u64 = 0x8_0000;

    struct W {
        env: Env,
        ext: XenExt,
        u: domid_t,
    }

    fn world() -> W {
        let mut env = Env::new();
        let ext = XenExt::new(
            Arc::new(FakeMachine::default()),
            Box::new(env.clock.clone()),
        );
        let (_, u) = env.create(&baseline(), 0);
        let mut op = domctl_op(XEN_DOMCTL_max_vcpus, u);
        op.u.set(&xen_public_abi::domctl::xen_domctl_max_vcpus { max: 1 });
        assert_eq!(env.domctl(0, &op).0, 0);
        env.hv.domains.get_mut(u).unwrap().max_pages = 1 << 19;
        W { env, ext, u }
    }

    impl W {
        fn memop<T: IntoBytes + Immutable>(&mut self, caller: domid_t, cmd: u64, arg: &T) -> i64 {
            self.env.put(ARG_GVA, arg);
            do_hypercall(
                &mut self.env.hv,
                &mut self.ext,
                Caller {
                    domid: caller,
                    vcpu: 0,
                },
                __HYPERVISOR_memory_op.into(),
                [cmd, ARG_GVA, 0, 0, 0],
                &mut self.env.mem,
            )
        }

        /// populate_physmap of `n` extents of `order` at `gfns` in `dom`, by dom0.
        fn populate(&mut self, dom: domid_t, order: u32, gfns: &[u64]) -> i64 {
            for (i, g) in gfns.iter().enumerate() {
                self.env.put(LIST + 8 * i as u64, g);
            }
            let mut r = xen_memory_reservation::new_zeroed();
            r.extent_start = LIST;
            r.nr_extents = gfns.len() as u64;
            r.extent_order = order;
            r.domid = dom;
            self.memop(0, XENMEM_populate_physmap.into(), &r)
        }

        /// add_to_physmap_batch(gmfn_foreign) from `caller` into `into`.
        fn map(
            &mut self,
            caller: domid_t,
            into: domid_t,
            foreign: domid_t,
            pairs: &[(u64, u64)],
        ) -> (i64, Vec<i32>) {
            for (i, (idx, gpfn)) in pairs.iter().enumerate() {
                self.env.put(IDXS + 8 * i as u64, idx);
                self.env.put(GPFNS + 8 * i as u64, gpfn);
                self.env.put(ERRS + 4 * i as u64, &0x5555_5555u32);
            }
            let mut u = xen_add_to_physmap_batch_extra::new_zeroed();
            u.raw = [foreign];
            let b = xen_add_to_physmap_batch {
                domid: into,
                space: XENMAPSPACE_gmfn_foreign as u16,
                size: pairs.len() as u16,
                u,
                idxs: IDXS,
                gpfns: GPFNS,
                errs: ERRS,
            };
            let rc = self.memop(caller, XENMEM_add_to_physmap_batch.into(), &b);
            let errs = (0..pairs.len())
                .map(|i| self.env.get::<i32>(ERRS + 4 * i as u64))
                .collect();
            (rc, errs)
        }

        fn unmap(&mut self, caller: domid_t, dom: domid_t, gpfn: u64) -> i64 {
            let x = xen_remove_from_physmap {
                domid: dom,
                _implicit0: [0; 6],
                gpfn,
            };
            self.memop(caller, XENMEM_remove_from_physmap.into(), &x)
        }

        fn mfn(&self, dom: domid_t, gfn: u64) -> Option<u64> {
            self.env
                .hv
                .domains
                .get(dom)?
                .hvm
                .p2m
                .host_entry(gfn)
                .map(|e| e.mfn)
        }
    }

    /// A privileged caller populates another domain with orders 0, 9 and 18.
    #[test]
    fn populate_another_domain_with_large_extents() {
        let mut w = world();
        let u = w.u;
        assert_eq!(w.populate(u, 0, &[0, 1]), 2);
        assert_eq!(w.populate(u, 9, &[0x200, 0x400]), 2);
        assert_eq!(w.populate(u, 18, &[0x40000]), 1);
        let d = w.env.hv.domains.get(u).unwrap();
        assert_eq!(d.tot_pages(), 2 + 1024 + 262_144);
        assert!(d.hvm.p2m.host_entry(0x40000 + 262_143).is_some());
        // A domU may not populate dom0 (XSM_TARGET): 0 extents.
        let mut r = xen_memory_reservation::new_zeroed();
        r.extent_start = LIST;
        r.nr_extents = 1;
        r.domid = 0;
        assert_eq!(w.memop(u, XENMEM_populate_physmap.into(), &r), 0);
    }

    #[test]
    fn dom0_maps_a_domu_frame_and_unmaps_it() {
        let mut w = world();
        let u = w.u;
        assert_eq!(w.populate(u, 0, &[0x10, 0x11]), 2);
        let frames = w.env.frames.outstanding();
        let (rc, errs) = w.map(0, DOMID_SELF, u, &[(0x10, MAP_GFN), (0x11, MAP_GFN + 1)]);
        assert_eq!((rc, errs.as_slice()), (0, [0, 0].as_slice()));
        let m = w.mfn(u, 0x10).unwrap();
        assert_eq!(w.mfn(0, MAP_GFN), Some(m), "dom0 sees the domU frame");
        assert_eq!(w.env.hv.domains.foreign.refs(m), 1);
        assert_eq!(w.env.frames.outstanding(), frames, "no frame allocated");
        // Mapped twice: two references.
        let (_, errs) = w.map(0, 0, u, &[(0x10, MAP_GFN + 2)]);
        assert_eq!(errs, [0]);
        assert_eq!(w.env.hv.domains.foreign.refs(m), 2);
        assert_eq!(w.unmap(0, DOMID_SELF, MAP_GFN + 2), 0);
        assert_eq!(w.unmap(0, 0, MAP_GFN), 0);
        assert_eq!(w.unmap(0, 0, MAP_GFN + 1), 0);
        assert_eq!(w.env.hv.domains.foreign.refs(m), 0);
        assert_eq!(w.mfn(0, MAP_GFN), None);
        assert_eq!(w.mfn(u, 0x10), Some(m), "the domU keeps its page");
        assert_eq!(w.unmap(0, 0, MAP_GFN), ENOENT, "nothing mapped there");
        assert_eq!(w.env.frames.outstanding(), frames);
    }

    /// Per-entry errors go to errs[]; the call itself succeeds.
    #[test]
    fn per_entry_errors() {
        let mut w = world();
        let u = w.u;
        assert_eq!(w.populate(u, 0, &[0x10]), 1);
        let (_, v) = w.env.create(&baseline(), 0);
        let (rc, errs) = w.map(
            0,
            0,
            u,
            &[(0x10, MAP_GFN), (0x99, MAP_GFN + 1), (0x10, MAP_GFN + 2)],
        );
        assert_eq!(
            (rc, errs.as_slice()),
            (0, [0, EINVAL as i32, 0].as_slice()),
            "0x99 is not populated"
        );
        assert_eq!(w.map(0, 0, 30000, &[(0x10, MAP_GFN)]).1, [ESRCH as i32]);
        assert_eq!(
            w.map(0, 0, 0, &[(0x10, MAP_GFN)]).1,
            [EPERM as i32],
            "the caller itself"
        );
        // Into another domain's p2m: only the hardware domain may hold foreign maps.
        assert_eq!(w.map(0, v, u, &[(0x10, 0x20)]).1, [EPERM as i32]);
        // A domU mapping another domU (or dom0) into itself: -EPERM per entry.
        assert_eq!(w.map(u, DOMID_SELF, v, &[(0x10, 0x20)]).1, [EPERM as i32]);
        assert_eq!(w.map(u, DOMID_SELF, 0, &[(0x10, 0x20)]).1, [EPERM as i32]);
        // A domU asking for dom0's p2m: XSM_TARGET refuses the whole call.
        assert_eq!(w.map(u, 0, v, &[(0x10, 0x20)]).0, EPERM);
        // The shared_info frame is not a RAM page the domain owns.
        let mut x = xen_add_to_physmap::new_zeroed();
        x.domid = DOMID_SELF;
        x.space = 0;
        x.gpfn = 0x50;
        assert_eq!(w.memop(u, XENMEM_add_to_physmap.into(), &x), 0);
        assert_eq!(w.map(0, 0, u, &[(0x50, MAP_GFN + 5)]).1, [EINVAL as i32]);
        // The plain form with gmfn_foreign: -ENOSYS (4.17); gmfn_range in a batch.
        x.space = XENMAPSPACE_gmfn_foreign;
        assert_eq!(w.memop(0, XENMEM_add_to_physmap.into(), &x), ENOSYS);
        let mut b = xen_add_to_physmap_batch::new_zeroed();
        b.space = XENMAPSPACE_gmfn_range as u16;
        assert_eq!(
            w.memop(0, XENMEM_add_to_physmap_batch.into(), &b),
            EOPNOTSUPP
        );
        // Bad list pointers: -EFAULT.
        b.space = XENMAPSPACE_gmfn_foreign as u16;
        b.size = 1;
        b.idxs = HOLE_GVA;
        assert_eq!(w.memop(0, XENMEM_add_to_physmap_batch.into(), &b), EFAULT);
        // A continuation index past the size.
        let cmd = u64::from(XENMEM_add_to_physmap_batch) | 5 << MEMOP_EXTENT_SHIFT;
        assert_eq!(w.memop(0, cmd, &b), -84, "-EILSEQ");
        // gmfn in a batch works as add_to_physmap does.
        w.env.hv.domains.get_mut(0).unwrap().max_pages = 16;
        assert_eq!(w.populate(0, 0, &[0x7000]), 1);
        for (i, (idx, gpfn)) in [(0x7000u64, 0x7001u64)].iter().enumerate() {
            w.env.put(IDXS + 8 * i as u64, idx);
            w.env.put(GPFNS + 8 * i as u64, gpfn);
        }
        let mut g = xen_add_to_physmap_batch::new_zeroed();
        g.domid = DOMID_SELF;
        g.space = XENMAPSPACE_gmfn as u16;
        g.size = 1;
        g.idxs = IDXS;
        g.gpfns = GPFNS;
        g.errs = ERRS;
        assert_eq!(w.memop(0, XENMEM_add_to_physmap_batch.into(), &g), 0);
        assert_eq!(w.env.get::<i32>(ERRS), 0);
        assert!(w.mfn(0, 0x7001).is_some() && w.mfn(0, 0x7000).is_none());
    }

    /// A mapping holds the frame: destroying the domU (or the domU freeing the
    /// page) keeps the frame until dom0 unmaps it, then it goes back at once.
    #[test]
    fn mapping_holds_the_frame_until_unmapped() {
        let mut w = world();
        let u = w.u;
        let base = w.env.frames.outstanding();
        assert_eq!(w.populate(u, 0, &[0x10, 0x11, 0x12]), 3);
        assert_eq!(w.env.frames.outstanding(), base + 3);
        let (_, errs) = w.map(0, 0, u, &[(0x10, MAP_GFN), (0x11, MAP_GFN + 1)]);
        assert_eq!(errs, [0, 0]);
        let m0 = w.mfn(u, 0x10).unwrap();
        // The domU gives 0x10 back: still held by dom0's mapping.
        w.env.put(LIST, &0x10u64);
        let mut r = xen_memory_reservation::new_zeroed();
        r.extent_start = LIST;
        r.nr_extents = 1;
        r.domid = DOMID_SELF;
        assert_eq!(w.memop(u, XENMEM_decrease_reservation.into(), &r), 1);
        assert_eq!(w.env.frames.outstanding(), base + 3, "kept for dom0");
        assert_eq!(w.env.hv.domains.foreign.orphans(), 1);
        // Destroy the domU: its shared_info and unmapped page go; the mapped one stays.
        assert_eq!(w.env.simple(0, XEN_DOMCTL_destroydomain, u), 0);
        assert_eq!(
            w.env.frames.outstanding(),
            base - 1 + 2,
            "shared_info and 0x12 freed"
        );
        assert_eq!(w.mfn(0, MAP_GFN), Some(m0), "dom0 still maps it");
        assert_eq!(w.env.hv.domains.foreign.orphans(), 2);
        assert_eq!(w.unmap(0, 0, MAP_GFN), 0);
        assert_eq!(w.env.frames.outstanding(), base - 1 + 1);
        assert_eq!(w.unmap(0, 0, MAP_GFN + 1), 0);
        assert_eq!(w.env.frames.outstanding(), base - 1, "every frame back");
        assert_eq!(w.env.hv.domains.foreign.orphans(), 0);
    }

    /// A foreign entry removed by other memory ops drops its reference: the
    /// frame of a dead domU goes back exactly then (issue 11's leak).
    #[test]
    fn other_memory_ops_over_a_foreign_entry_release_it() {
        let mut w = world();
        let u = w.u;
        assert_eq!(w.populate(u, 0, &[0x10, 0x11, 0x12]), 3);
        let (_, errs) = w.map(
            0,
            0,
            u,
            &[(0x10, MAP_GFN), (0x11, MAP_GFN + 1), (0x12, MAP_GFN + 2)],
        );
        assert_eq!(errs, [0, 0, 0]);
        // The domU dies: its three frames are held by dom0's mappings.
        assert_eq!(w.env.simple(0, XEN_DOMCTL_destroydomain, u), 0);
        let held = w.env.frames.outstanding();
        assert_eq!(w.env.hv.domains.foreign.orphans(), 3);
        // decrease_reservation over MAP_GFN: the reference goes, the frame too.
        w.env.put(LIST, &MAP_GFN);
        let mut r = xen_memory_reservation::new_zeroed();
        r.extent_start = LIST;
        r.nr_extents = 1;
        r.domid = DOMID_SELF;
        assert_eq!(w.memop(0, XENMEM_decrease_reservation.into(), &r), 1);
        assert_eq!(w.mfn(0, MAP_GFN), None);
        assert_eq!(w.env.frames.outstanding(), held - 1);
        // XENMAPSPACE_gmfn cannot move a foreign entry: not dom0's page.
        let mut x = xen_add_to_physmap::new_zeroed();
        x.domid = DOMID_SELF;
        x.space = XENMAPSPACE_gmfn;
        x.idx = MAP_GFN + 1;
        x.gpfn = MAP_GFN + 0x100;
        assert_eq!(w.memop(0, XENMEM_add_to_physmap.into(), &x), EINVAL);
        assert!(w.mfn(0, MAP_GFN + 1).is_some());
        // add_to_physmap of one of dom0's pages over the entry releases it.
        w.env.hv.domains.get_mut(0).unwrap().max_pages = 1 << 19;
        assert_eq!(w.populate(0, 0, &[MAP_GFN + 0x200]), 1);
        x.idx = MAP_GFN + 0x200;
        x.gpfn = MAP_GFN + 1;
        assert_eq!(w.memop(0, XENMEM_add_to_physmap.into(), &x), 0);
        assert_eq!(
            w.env.frames.outstanding(),
            held - 2 + 1,
            "one foreign frame back, one dom0 page in"
        );
        assert_eq!(w.env.hv.domains.foreign.orphans(), 1);
        // populate_physmap over the last one: refused and the mapper crashed, as
        // Xen's guest_physmap_add_entry does; the entry and its reference stay
        // until the crashed domain's mappings go.
        assert_eq!(w.populate(0, 0, &[MAP_GFN + 2]), 0);
        assert!(w
            .ext
            .actions
            .iter()
            .any(|a| matches!(a, ArchAction::Crash { domid: 0 })));
        assert!(w.mfn(0, MAP_GFN + 2).is_some());
    }

    #[test]
    fn remove_from_physmap_rules() {
        let mut w = world();
        let u = w.u;
        assert_eq!(w.populate(u, 0, &[0x10]), 1);
        let frames = w.env.frames.outstanding();
        assert_eq!(w.unmap(u, 0, 0x10), EPERM, "a domU on dom0");
        assert_eq!(w.unmap(0, 30000, 0x10), ESRCH);
        let x = xen_remove_from_physmap {
            domid: u,
            _implicit0: [0; 6],
            gpfn: 0x10,
        };
        let cmd = u64::from(XENMEM_remove_from_physmap) | 1 << MEMOP_EXTENT_SHIFT;
        assert_eq!(w.memop(0, cmd, &x), EINVAL, "start extent");
        // The domain's own page: unmapped, still allocated to it (as Xen).
        assert_eq!(w.unmap(u, DOMID_SELF, 0x10), 0);
        assert_eq!(w.mfn(u, 0x10), None);
        assert_eq!(w.env.frames.outstanding(), frames);
        assert_eq!(w.env.hv.domains.get(u).unwrap().tot_pages(), 1);
    }

    #[test]
    fn claim_pages() {
        let mut w = world();
        let u = w.u;
        w.ext.facts = || crate::common::hypercall::HostFacts {
            free_pages: 1000,
            ..Default::default()
        };
        let claim = |w: &mut W, caller, dom, n, order| {
            let mut r = xen_memory_reservation::new_zeroed();
            r.nr_extents = n;
            r.extent_order = order;
            r.domid = dom;
            w.memop(caller, XENMEM_claim_pages.into(), &r)
        };
        w.env.hv.domains.get_mut(u).unwrap().max_pages = 2000;
        assert_eq!(claim(&mut w, 0, u, 1001, 0), -12, "more than free");
        assert_eq!(claim(&mut w, 0, u, 2001, 0), EINVAL, "above max_pages");
        assert_eq!(claim(&mut w, 0, u, 10, 1), EINVAL, "order");
        assert_eq!(claim(&mut w, u, u, 10, 0), EPERM, "XSM_PRIV");
        assert_eq!(claim(&mut w, 0, 30000, 10, 0), EINVAL, "no such domain");
        assert_eq!(claim(&mut w, 0, u, 100, 0), 0);
        assert_eq!(claim(&mut w, 0, u, 50, 0), EINVAL, "already claimed");
        assert_eq!(w.populate(u, 0, &[0, 1, 2, 3]), 4);
        let d = w.env.hv.domains.get(u).unwrap();
        assert_eq!(d.ctl.outstanding_pages(d.tot_pages()), 96);
        assert_eq!(claim(&mut w, 0, u, 0, 0), 0, "cancel");
        let d = w.env.hv.domains.get(u).unwrap();
        assert_eq!(d.ctl.outstanding_pages(d.tot_pages()), 0);
        assert_eq!(claim(&mut w, 0, u, 3, 0), EINVAL, "not above tot_pages");
    }

    #[test]
    fn set_memory_map() {
        let mut w = world();
        let u = w.u;
        let e820 = [
            memory_op::E820Entry {
                addr: 0,
                size: 0x100_0000,
                kind: 1,
            },
            memory_op::E820Entry {
                addr: 0xfeff_8000,
                size: 0x8000,
                kind: 2,
            },
        ];
        w.env.mem.write_gpa(LIST, e820.as_bytes()).unwrap();
        let mut f = xen_foreign_memory_map::new_zeroed();
        f.domid = u;
        f.map = xen_memory_map {
            nr_entries: 2,
            _implicit0: [0; 4],
            buffer: LIST,
        };
        assert_eq!(w.memop(u, XENMEM_set_memory_map.into(), &f), 0, "on itself");
        f.domid = 0;
        assert_eq!(w.memop(u, XENMEM_set_memory_map.into(), &f), EPERM);
        f.domid = u;
        f.map.nr_entries = 1025;
        assert_eq!(w.memop(0, XENMEM_set_memory_map.into(), &f), EINVAL);
        f.map.nr_entries = 2;
        f.map.buffer = HOLE_GVA;
        assert_eq!(w.memop(0, XENMEM_set_memory_map.into(), &f), EFAULT);
        assert_eq!(
            w.env.hv.domains.get(u).unwrap().memmap.as_slice(),
            e820.as_slice()
        );
        // The guest reads it back.
        let m = xen_memory_map {
            nr_entries: 8,
            _implicit0: [0; 4],
            buffer: 0x6000,
        };
        assert_eq!(w.memop(u, XENMEM_memory_map.into(), &m), 0);
        assert_eq!(
            w.env.get::<[u8; 40]>(0x6000),
            <[u8; 40]>::try_from(e820.as_bytes()).unwrap()
        );
    }
}
