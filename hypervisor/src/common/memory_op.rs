//! `__HYPERVISOR_memory_op`: the `XENMEM_*` operations an HVM/PVH guest and the
//! dom0 toolstack use on a translated (HAP) domain.
//!
//! Mirrors Xen 4.17's `do_memory_op()`, `populate_physmap()`,
//! `decrease_reservation()`, `increase_reservation()` and `xenmem_add_to_physmap()`
//! (`xen/common/memory.c`), x86's `xenmem_add_to_physmap_one()` and
//! `arch_memory_op()` (`xen/arch/x86/mm.c`), and the HVM filter
//! `hvm_memory_op()` (`xen/arch/x86/hvm/hypercall.c`). The command's low 6 bits
//! are the operation, the rest the continuation's start extent
//! (`MEMOP_CMD_MASK`, `MEMOP_EXTENT_SHIFT`).
//!
//! The reservation ops answer the number of extents done, even on failure
//! (a bad argument, unknown domain or refused permission is 0 extents done), as
//! Xen does. Frames are allocated one 4 KiB page at a time: an extent of order
//! `n` is `2^n` guest-contiguous pages, all or none of them.

// Xen's names in match patterns.
#![allow(non_upper_case_globals)]

use alloc::vec::Vec;

use log::debug;
use xen_public_abi::memory::{
    xen_add_to_physmap, xen_memory_map, xen_memory_reservation, XENMAPSPACE_gmfn,
    XENMAPSPACE_gmfn_foreign, XENMAPSPACE_gmfn_range, XENMAPSPACE_grant_table,
    XENMAPSPACE_shared_info, XENMEMF_populate_on_demand, XENMEMF_vnode, XENMEM_add_to_physmap,
    XENMEM_current_reservation, XENMEM_decrease_reservation, XENMEM_increase_reservation,
    XENMEM_machine_memory_map, XENMEM_machphys_mapping, XENMEM_maximum_gpfn,
    XENMEM_maximum_ram_page, XENMEM_maximum_reservation, XENMEM_memory_map,
    XENMEM_populate_physmap,
};
use xen_public_abi::xen::{__HYPERVISOR_memory_op, domid_t};
use xen_public_abi::{Errno, XenResult};
use zerocopy::{FromBytes, Immutable, IntoBytes, KnownLayout};

use super::dispatch::ArchAction;
use super::domain::{Domain, DomainTable};
use super::guest_access::{copy_from_guest, copy_to_guest, GuestAccess, GuestRam, MachineMemory};
use super::hypercall::Caller;
use super::memory::P2mAccess;

/// `MEMOP_EXTENT_SHIFT`: the start extent sits above the command.
pub const MEMOP_EXTENT_SHIFT: u32 = 6;
/// `MEMOP_CMD_MASK`.
pub const MEMOP_CMD_MASK: u64 = (1 << MEMOP_EXTENT_SHIFT) - 1;
/// Pages a reservation or physmap op handles per entry before it asks to be
/// continued (Xen checks `hypercall_preempt_check()` between extents; here a
/// fixed budget bounds the time under the lock). One extent is never split, so
/// an entry does at most this plus one extent (an order-18 extent of the
/// control domain is 2^18 pages in one go, as in Xen).
pub const MEMOP_PAGES_PER_ENTRY: u64 = 256;
/// `MAX_ORDER` on x86 (`CONFIG_PAGEALLOC_MAX_ORDER` is 18, the buddy limit 20).
const MAX_ORDER: u32 = 20;
/// `CONFIG_DOMU_MAX_ORDER`, `CONFIG_CTLDOM_MAX_ORDER`, `CONFIG_HWDOM_MAX_ORDER`.
const DOMU_MAX_ORDER: u32 = 9;
const CTLDOM_MAX_ORDER: u32 = 18;
const HWDOM_MAX_ORDER: u32 = 12;

/// One E820 entry as `XENMEM_memory_map` returns it (`struct e820entry`, packed,
/// 20 bytes).
#[derive(Clone, Copy, Debug, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout)]
#[repr(C, packed)]
pub struct E820Entry {
    pub addr: u64,
    pub size: u64,
    pub kind: u32,
}
const _: () = assert!(core::mem::size_of::<E820Entry>() == 20);

/// `E820_RAM`.
pub const E820_RAM: u32 = 1;

/// What a memory op needs beyond the domain table.
pub struct MemoryOpEnv<'a> {
    pub machine: &'a dyn MachineMemory,
    pub actions: &'a mut Vec<ArchAction>,
    /// `max_page`: one more than the highest machine frame number of RAM.
    pub max_ram_page: u64,
}

/// `__HYPERVISOR_memory_op(unsigned long cmd, void *arg)`.
pub fn do_memory_op(
    env: &mut MemoryOpEnv<'_>,
    domains: &mut DomainTable,
    caller: Caller,
    cmd: u64,
    arg: u64,
    guest: &mut dyn GuestAccess,
) -> i64 {
    let op = (cmd & MEMOP_CMD_MASK) as u32;
    let start_extent = cmd >> MEMOP_EXTENT_SHIFT;
    match op {
        XENMEM_increase_reservation | XENMEM_decrease_reservation | XENMEM_populate_physmap => {
            reservation(env, domains, caller, op, start_extent, arg, guest) as i64
        }
        // The HVM filter: PV-only views of machine memory.
        XENMEM_machine_memory_map | XENMEM_machphys_mapping => Errno::ENOSYS.as_ret(),
        XENMEM_maximum_ram_page => {
            if start_extent != 0 {
                return Errno::EINVAL.as_ret();
            }
            env.max_ram_page.min(i64::MAX as u64) as i64
        }
        XENMEM_current_reservation | XENMEM_maximum_reservation | XENMEM_maximum_gpfn => {
            match stat(domains, caller, op, start_extent, arg, guest) {
                Ok(v) => v,
                Err(e) => e.as_ret(),
            }
        }
        XENMEM_add_to_physmap => {
            match add_to_physmap(env, domains, caller, start_extent, arg, guest) {
                Ok(()) => 0,
                Err(e) => e.as_ret(),
            }
        }
        XENMEM_memory_map => match memory_map(domains, caller, arg, guest) {
            Ok(()) => 0,
            Err(e) => e.as_ret(),
        },
        _ => {
            debug!(
                "d{}v{}: memory_op {op} is not implemented by this hypervisor",
                caller.domid, caller.vcpu
            );
            Errno::ENOSYS.as_ret()
        }
    }
}

/// XSM_TARGET (dummy policy): the caller acts on itself, or is privileged.
pub(super) fn xsm_target(domains: &DomainTable, caller: domid_t, target: domid_t) -> XenResult<()> {
    if caller == target || domains.get(caller).is_some_and(|d| d.is_privileged) {
        Ok(())
    } else {
        Err(Errno::EPERM)
    }
}

/// `max_order()` of the calling domain.
fn max_order(d: &Domain) -> u32 {
    let mut order = DOMU_MAX_ORDER;
    if d.is_privileged {
        order = order.max(CTLDOM_MAX_ORDER);
    }
    if d.is_hardware {
        order = order.max(HWDOM_MAX_ORDER);
    }
    order.min(MAX_ORDER)
}

/// increase/decrease_reservation and populate_physmap: returns extents done.
fn reservation(
    env: &mut MemoryOpEnv<'_>,
    domains: &mut DomainTable,
    caller: Caller,
    op: u32,
    start_extent: u64,
    arg: u64,
    guest: &mut dyn GuestAccess,
) -> u64 {
    let Ok(r) = copy_from_guest::<xen_memory_reservation>(guest, arg) else {
        return start_extent;
    };
    // Too large to encode a continuation.
    if r.nr_extents > u64::from(u32::MAX >> MEMOP_EXTENT_SHIFT) {
        return start_extent;
    }
    if start_extent >= r.nr_extents {
        return start_extent;
    }
    let target = DomainTable::resolve(caller.domid, r.domid);
    if domains.get(target).is_none() {
        return start_extent;
    }
    // No vNUMA here: a virtual node cannot be honoured.
    if r.mem_flags & XENMEMF_vnode != 0 {
        return start_extent;
    }
    if xsm_target(domains, caller.domid, target).is_err() {
        return start_extent;
    }
    let Some(curr) = domains.get(caller.domid) else {
        return start_extent;
    };
    let pod = op == XENMEM_populate_physmap && r.mem_flags & XENMEMF_populate_on_demand != 0;
    let limit = if pod { MAX_ORDER } else { max_order(curr) };
    if r.extent_order > limit {
        return start_extent;
    }
    if pod {
        debug!("d{}: populate-on-demand is not implemented", caller.domid);
        return start_extent;
    }
    let pages = 1u64 << r.extent_order;
    let mut done = start_extent;
    let mut work = 0u64;
    while done < r.nr_extents {
        // Preempted between extents: the guest re-enters with the start extent
        // in cmd's upper bits (`hypercall_create_continuation`, "lh").
        if work >= MEMOP_PAGES_PER_ENTRY {
            domains.create_continuation(
                __HYPERVISOR_memory_op,
                [u64::from(op) | done << MEMOP_EXTENT_SHIFT, arg, 0, 0, 0],
            );
            break;
        }
        work += pages;
        let Some(slot) = done
            .checked_mul(8)
            .and_then(|o| r.extent_start.checked_add(o))
        else {
            break;
        };
        let ok = match op {
            XENMEM_increase_reservation => increase_one(domains, target, pages),
            XENMEM_decrease_reservation => match copy_from_guest::<u64>(guest, slot) {
                Ok(gfn) => decrease_one(env, domains, target, gfn, pages),
                Err(_) => false,
            },
            _ => match copy_from_guest::<u64>(guest, slot) {
                Ok(gfn) if domains.foreign.maps_any(target, gfn, pages) => {
                    // `guest_physmap_add_entry`: replacing a foreign mapping
                    // this way is a guest bug Xen answers by crashing it.
                    crate::gprintk!(target, log::Level::Warn, "d{target}: populate_physmap over a foreign mapping at gfn {gfn:#x}: crashing it, as Xen does");
                    env.actions.push(ArchAction::Crash { domid: target });
                    false
                }
                Ok(gfn) => populate_one(domains, target, gfn, pages),
                Err(_) => false,
            },
        };
        if !ok {
            break;
        }
        done += 1;
    }
    if op == XENMEM_decrease_reservation || op == XENMEM_populate_physmap {
        env.actions.push(ArchAction::FlushTlbs { domid: target });
    }
    done
}

/// Allocate `pages` frames to `id` (all or none), checking `max_pages` first.
fn alloc_pages(domains: &mut DomainTable, id: domid_t, pages: u64) -> Option<Vec<u64>> {
    let d = domains.get(id)?;
    if d.tot_pages().checked_add(pages)? > d.max_pages {
        debug!(
            "d{id}: over-allocation ({} + {pages} > {})",
            d.tot_pages(),
            d.max_pages
        );
        return None;
    }
    let mut got = Vec::new();
    for _ in 0..pages {
        match domains.alloc_domheap_page(id) {
            Ok(m) => got.push(m),
            Err(_) => {
                for m in got {
                    let _ = domains.free_domheap_page(id, m);
                }
                return None;
            }
        }
    }
    Some(got)
}

/// One extent of `increase_reservation`: frames for a translated domain are
/// allocated but not mapped (as Xen: the guest maps them some other way).
fn increase_one(domains: &mut DomainTable, id: domid_t, pages: u64) -> bool {
    alloc_pages(domains, id, pages).is_some()
}

/// One extent of `populate_physmap` at `gfn`: fresh frames mapped read/write/
/// execute. A gfn already mapped is replaced (its old frame stays with the
/// domain, as in Xen).
fn populate_one(domains: &mut DomainTable, id: domid_t, gfn: u64, pages: u64) -> bool {
    if gfn.checked_add(pages - 1).is_none() {
        return false;
    }
    let Some(mfns) = alloc_pages(domains, id, pages) else {
        return false;
    };
    let Some(d) = domains.get_mut(id) else {
        return false;
    };
    for (i, mfn) in mfns.iter().enumerate() {
        if d.hvm
            .p2m
            .set_host_entry(gfn + i as u64, *mfn, P2mAccess::RWX)
            .is_err()
        {
            // Beyond the guest-physical limit: give back what is not mapped.
            for m in &mfns[i..] {
                let _ = domains.free_domheap_page(id, *m);
            }
            return false;
        }
    }
    true
}

/// One extent of `decrease_reservation` (`guest_remove_page` per page): a gfn
/// that maps nothing ends the operation.
fn decrease_one(
    env: &mut MemoryOpEnv<'_>,
    domains: &mut DomainTable,
    id: domid_t,
    gfn: u64,
    pages: u64,
) -> bool {
    for i in 0..pages {
        let Some(g) = gfn.checked_add(i) else {
            return false;
        };
        if remove_page(env, domains, id, g).is_err() {
            return false;
        }
    }
    true
}

/// `guest_remove_page()`: unmap `gfn`; a domain frame goes back to the heap, the
/// `shared_info` frame is only unhooked. `-ENOENT` if nothing is mapped.
pub(super) fn remove_page(
    env: &mut MemoryOpEnv<'_>,
    domains: &mut DomainTable,
    id: domid_t,
    gfn: u64,
) -> XenResult<()> {
    // A foreign mapping drops its reference (freeing an orphaned frame).
    if super::foreign_map::unmap_foreign(domains, id, gfn) {
        return Ok(());
    }
    let d = domains.get_mut(id).ok_or(Errno::ESRCH)?;
    let e = d.hvm.p2m.host_entry(gfn).ok_or(Errno::ENOENT)?;
    if e.mfn == d.shared_info_mfn {
        unhook_shared_info(env, d);
        d.hvm.p2m.remove_host_entry(gfn);
        return Ok(());
    }
    d.hvm.p2m.remove_host_entry(gfn);
    // A frame the domain does not own (never the case today) is only unmapped.
    // Freed after the shootdown that ends the hypercall (`commit_p2m_changes`):
    // other vCPUs may still hold the translation.
    let _ = domains.free_domheap_page_deferred(id, e.mfn);
    Ok(())
}

/// `shared_info` is about to be unmapped (still mapped now): its event fields
/// move back to the private copy.
pub(super) fn unhook_shared_info(env: &mut MemoryOpEnv<'_>, d: &mut Domain) {
    d.shared_info_gfn = u64::MAX;
    let mut ram = GuestRam {
        p2m: &d.hvm.p2m,
        machine: env.machine,
    };
    if d.evtchn.map_shared_info(&mut ram, None).is_err() {
        debug!(
            "d{}: shared_info unreadable while unmapping it",
            d.domain_id
        );
    }
}

/// current/maximum_reservation and maximum_gpfn.
fn stat(
    domains: &DomainTable,
    caller: Caller,
    op: u32,
    start_extent: u64,
    arg: u64,
    guest: &mut dyn GuestAccess,
) -> XenResult<i64> {
    if start_extent != 0 {
        return Err(Errno::EINVAL);
    }
    let domid: domid_t = copy_from_guest(guest, arg)?;
    let id = DomainTable::resolve(caller.domid, domid);
    let d = domains.get(id).ok_or(Errno::ESRCH)?;
    xsm_target(domains, caller.domid, id)?;
    Ok(match op {
        XENMEM_current_reservation => d.tot_pages() as i64,
        XENMEM_maximum_reservation => d.max_pages as i64,
        // `domain_get_maximum_gpfn()`: the highest mapped gfn (0 if none).
        _ => d.hvm.p2m.max_host_gfn().unwrap_or(0) as i64,
    })
}

/// `XENMEM_add_to_physmap`.
fn add_to_physmap(
    env: &mut MemoryOpEnv<'_>,
    domains: &mut DomainTable,
    caller: Caller,
    start_extent: u64,
    arg: u64,
    guest: &mut dyn GuestAccess,
) -> XenResult<()> {
    // The continuation index must fit `xatp.size`.
    if start_extent > u64::from(u16::MAX) {
        return Err(Errno::EDOM);
    }
    let x: xen_add_to_physmap = copy_from_guest(guest, arg)?;
    // Foreign mappings only through add_to_physmap_batch.
    if x.space == XENMAPSPACE_gmfn_foreign {
        return Err(Errno::ENOSYS);
    }
    let id = DomainTable::resolve(caller.domid, x.domid);
    if domains.get(id).is_none() {
        return Err(Errno::ESRCH);
    }
    xsm_target(domains, caller.domid, id)?;
    if x.space == XENMAPSPACE_gmfn_range {
        let mut i = start_extent;
        while i < u64::from(x.size) {
            if i - start_extent >= MEMOP_PAGES_PER_ENTRY {
                domains.create_continuation(
                    __HYPERVISOR_memory_op,
                    [
                        u64::from(XENMEM_add_to_physmap) | i << MEMOP_EXTENT_SHIFT,
                        arg,
                        0,
                        0,
                        0,
                    ],
                );
                return Ok(());
            }
            let (Some(idx), Some(gpfn)) = (x.idx.checked_add(i), x.gpfn.checked_add(i)) else {
                return Err(Errno::EINVAL);
            };
            add_to_physmap_one(env, domains, id, XENMAPSPACE_gmfn, idx, gpfn)?;
            i += 1;
        }
        return Ok(());
    }
    add_to_physmap_one(env, domains, id, x.space, x.idx, x.gpfn)
}

/// `xenmem_add_to_physmap_one()` for a translated domain.
pub(super) fn add_to_physmap_one(
    env: &mut MemoryOpEnv<'_>,
    domains: &mut DomainTable,
    id: domid_t,
    space: u32,
    idx: u64,
    gpfn: u64,
) -> XenResult<()> {
    // `gnttab_map_frame()`: grows the table up to idx.
    let grant_mfn = if space == XENMAPSPACE_grant_table {
        Some(super::grant_table::frame_for_physmap(domains, id, idx)?)
    } else {
        None
    };
    let d = domains.get_mut(id).ok_or(Errno::ESRCH)?;
    let mfn = match space {
        XENMAPSPACE_shared_info if idx == 0 => Some(d.shared_info_mfn),
        // `get_page_from_mfn(mfn, d)`: only a frame the domain owns moves (its
        // RAM, and shared_info, which Xen shares with it; a foreign mapping's
        // frame does not: -EINVAL).
        XENMAPSPACE_gmfn => d
            .hvm
            .p2m
            .host_entry(idx)
            .map(|e| e.mfn)
            .filter(|&m| d.owns_page(m) || m == d.shared_info_mfn),
        XENMAPSPACE_grant_table => grant_mfn,
        // Other spaces have nothing to map here.
        _ => None,
    };
    let mfn = mfn.ok_or(Errno::EINVAL)?;
    // Whatever was at gpfn: the shared_info frame is unhooked, a domain frame is
    // freed (so it does not leak).
    if let Some(prev) = d.hvm.p2m.host_entry(gpfn) {
        if prev.mfn != mfn {
            remove_page(env, domains, id, gpfn)?;
        }
    }
    let d = domains.get_mut(id).ok_or(Errno::ESRCH)?;
    let old = if space == XENMAPSPACE_shared_info {
        (d.shared_info_gfn != u64::MAX).then_some(d.shared_info_gfn)
    } else if space == XENMAPSPACE_grant_table {
        d.grant.frame_gfn(&d.hvm.p2m, idx as usize)
    } else {
        Some(idx)
    };
    d.hvm.p2m.set_host_entry(gpfn, mfn, P2mAccess::RWX)?;
    if space == XENMAPSPACE_grant_table {
        d.grant.set_frame_gfn(idx as usize, gpfn);
    }
    // Xen reaches shared_info by its frame; here the event channels reach it
    // through its gfn, so a move by XENMAPSPACE_gmfn must carry that along too
    // (issue 14 defect 9: it used to keep pointing at the old gfn).
    if space == XENMAPSPACE_shared_info || mfn == d.shared_info_mfn {
        // Both places map the same frame until the old one goes below.
        let mut ram = GuestRam {
            p2m: &d.hvm.p2m,
            machine: env.machine,
        };
        d.evtchn.map_shared_info(&mut ram, Some(gpfn))?;
        d.shared_info_gfn = gpfn;
    }
    // Unmap from the old location, if any.
    if let Some(old) = old.filter(|&o| o != gpfn) {
        d.hvm.p2m.remove_host_entry(old);
    }
    env.actions.push(ArchAction::FlushTlbs { domid: id });
    Ok(())
}

/// `XENMEM_memory_map`: the caller's E820 (`-ENOSYS` if it has none).
fn memory_map(
    domains: &DomainTable,
    caller: Caller,
    arg: u64,
    guest: &mut dyn GuestAccess,
) -> XenResult<()> {
    let mut map: xen_memory_map = copy_from_guest(guest, arg)?;
    let d = domains.get(caller.domid).ok_or(Errno::ESRCH)?;
    if d.memmap.is_empty() {
        return Err(Errno::ENOSYS);
    }
    let n = (map.nr_entries as usize).min(d.memmap.len());
    map.nr_entries = n as u32;
    guest.copy_to_guest(map.buffer, d.memmap[..n].as_bytes())?;
    copy_to_guest(guest, arg, &map)
}

/// The E820 of a PVH domain with `pages` of RAM from GPA 0: one RAM range.
pub fn pvh_memmap(pages: u64) -> Vec<E820Entry> {
    alloc::vec![E820Entry {
        addr: 0,
        size: pages << 12,
        kind: E820_RAM,
    }]
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::common::dispatch::XenExt;
    use crate::common::domctl::create_vcpus;
    use crate::common::guest_access::fake::FakeMachine;
    use crate::common::guest_access::MachineMemory;
    use crate::common::hypercall::{do_hypercall, NoExt};
    use crate::common::test_support::*;
    use alloc::boxed::Box;
    use alloc::sync::Arc;
    use xen_public_abi::xen::{__HYPERVISOR_memory_op, shared_info, DOMID_SELF};
    use zerocopy::FromZeros;

    const ENOSYS: i64 = -38;
    const EINVAL: i64 = -22;
    const EFAULT: i64 = -14;
    const ESRCH: i64 = -3;
    const EPERM: i64 = -1;
    const LIST: u64 = 0x3000;
    const OUT: u64 = 0x4000;

    struct W {
        env: Env,
        ext: XenExt,
        machine: Arc<FakeMachine>,
        a: domid_t,
        b: domid_t,
    }

    fn world() -> W {
        let machine = Arc::new(FakeMachine::default());
        let mut env = Env::new();
        let mut ext = XenExt::new(machine.clone(), Box::new(env.clock.clone()));
        ext.max_ram_page = 0x7ffe0;
        let mut ids = [0; 2];
        for id in &mut ids {
            let (rc, i) = env.create(&baseline(), 0);
            assert_eq!(rc, 0);
            let d = env.hv.domains.get_mut(i).unwrap();
            create_vcpus(d, &mut NoExt).unwrap();
            d.max_pages = 64;
            *id = i;
        }
        W {
            env,
            ext,
            machine,
            a: ids[0],
            b: ids[1],
        }
    }

    impl W {
        fn memop<T: IntoBytes + Immutable>(&mut self, caller: domid_t, cmd: u64, arg: &T) -> i64 {
            self.env.put(ARG_GVA, arg);
            self.raw(caller, cmd, ARG_GVA)
        }
        fn raw(&mut self, caller: domid_t, cmd: u64, arg: u64) -> i64 {
            do_hypercall(
                &mut self.env.hv,
                &mut self.ext,
                Caller {
                    domid: caller,
                    vcpu: 0,
                },
                __HYPERVISOR_memory_op.into(),
                [cmd, arg, 0, 0, 0],
                &mut self.env.mem,
            )
        }
        fn d(&self, id: domid_t) -> &Domain {
            self.env.hv.domains.get(id).unwrap()
        }
    }

    fn resv(domid: domid_t, n: u64, order: u32) -> xen_memory_reservation {
        let mut r = xen_memory_reservation::new_zeroed();
        r.extent_start = LIST;
        r.nr_extents = n;
        r.extent_order = order;
        r.domid = domid;
        r
    }

    #[test]
    fn unknown_and_pv_only_ops() {
        let mut w = world();
        assert_eq!(w.raw(w.a, 999, ARG_GVA), ENOSYS, "oracle: cmd 999");
        assert_eq!(w.raw(w.a, XENMEM_machphys_mapping.into(), ARG_GVA), ENOSYS);
        assert_eq!(
            w.raw(w.a, XENMEM_machine_memory_map.into(), ARG_GVA),
            ENOSYS
        );
        assert_eq!(
            w.raw(0, XENMEM_maximum_ram_page.into(), 0),
            0x7ffe0,
            "oracle"
        );
        assert_eq!(
            w.raw(0, u64::from(XENMEM_maximum_ram_page) | 1 << 6, 0),
            EINVAL
        );
    }

    #[test]
    fn populate_maps_fresh_frames_and_respects_max_pages() {
        let mut w = world();
        w.env.put(LIST, &[0x100u64, 0x200, 0x300]);
        // Two order-4 extents (16 pages each) fit in 64; the third ... also fits (48).
        let rc = w.memop(w.a, XENMEM_populate_physmap.into(), &resv(DOMID_SELF, 3, 4));
        assert_eq!(rc, 3);
        assert_eq!(w.d(w.a).tot_pages(), 48);
        for g in [0x100u64, 0x10f, 0x200, 0x30f] {
            assert!(w.d(w.a).hvm.p2m.host_entry(g).is_some(), "{g:#x}");
        }
        assert!(w.d(w.a).hvm.p2m.host_entry(0x110).is_none());
        // 48 + 32 > 64: the first extent fails whole, nothing half-done.
        let rc = w.memop(w.a, XENMEM_populate_physmap.into(), &resv(DOMID_SELF, 1, 5));
        assert_eq!(rc, 0);
        assert_eq!(w.d(w.a).tot_pages(), 48);
        // Order above the domU limit (9): nothing.
        let rc = w.memop(
            w.a,
            XENMEM_populate_physmap.into(),
            &resv(DOMID_SELF, 1, 10),
        );
        assert_eq!(rc, 0);
        // A continuation's start extent is counted in the result.
        w.env.put(LIST, &[0x500u64, 0x600, 0x700]);
        let cmd = u64::from(XENMEM_populate_physmap) | 2 << MEMOP_EXTENT_SHIFT;
        assert_eq!(w.memop(w.a, cmd, &resv(DOMID_SELF, 3, 0)), 3);
        assert!(w.d(w.a).hvm.p2m.host_entry(0x700).is_some());
        assert!(w.d(w.a).hvm.p2m.host_entry(0x500).is_none());
        // Start beyond the end: returned as is.
        let cmd = u64::from(XENMEM_populate_physmap) | 9 << MEMOP_EXTENT_SHIFT;
        assert_eq!(w.memop(w.a, cmd, &resv(DOMID_SELF, 3, 0)), 9);
    }

    #[test]
    fn reservation_refusals_are_zero_extents() {
        let mut w = world();
        w.env.put(LIST, &[0x100u64]);
        let op = XENMEM_populate_physmap.into();
        assert_eq!(
            w.memop(w.b, op, &resv(w.a, 1, 0)),
            0,
            "domU on another domU"
        );
        assert_eq!(w.memop(w.a, op, &resv(0x7000, 1, 0)), 0, "no such domain");
        assert_eq!(w.raw(w.a, op, BAD_GVA), 0, "bad pointer");
        let mut r = resv(DOMID_SELF, 1, 0);
        r.extent_start = BAD_GVA;
        assert_eq!(w.memop(w.a, op, &r), 0, "bad list");
        assert_eq!(w.d(w.a).tot_pages(), 0);
        // dom0 may populate a domU (the toolstack's path).
        assert_eq!(w.memop(0, op, &resv(w.a, 1, 0)), 1);
        assert_eq!(w.d(w.a).tot_pages(), 1);
    }

    #[test]
    fn decrease_gives_frames_back_and_stops_at_holes() {
        let mut w = world();
        w.env.put(LIST, &[0x100u64, 0x101, 0x102]);
        assert_eq!(
            w.memop(w.a, XENMEM_populate_physmap.into(), &resv(DOMID_SELF, 3, 0)),
            3
        );
        let outstanding = w.env.frames.outstanding();
        w.env.put(LIST, &[0x101u64, 0x555, 0x100]);
        let rc = w.memop(
            w.a,
            XENMEM_decrease_reservation.into(),
            &resv(DOMID_SELF, 3, 0),
        );
        assert_eq!(rc, 1, "0x555 is not mapped: stop there");
        assert_eq!(w.env.frames.outstanding(), outstanding - 1);
        assert!(w.d(w.a).hvm.p2m.host_entry(0x101).is_none());
        assert_eq!(w.d(w.a).tot_pages(), 2);
    }

    #[test]
    fn increase_reservation_counts_frames_without_mapping() {
        let mut w = world();
        assert_eq!(
            w.memop(
                w.a,
                XENMEM_increase_reservation.into(),
                &resv(DOMID_SELF, 2, 1)
            ),
            2
        );
        assert_eq!(w.d(w.a).tot_pages(), 4);
        assert_eq!(w.d(w.a).hvm.p2m.max_host_gfn(), None);
    }

    #[test]
    fn reservation_stats() {
        let mut w = world();
        w.env.put(LIST, &[0x100u64, 0x2345]);
        w.memop(w.a, XENMEM_populate_physmap.into(), &resv(DOMID_SELF, 2, 0));
        let id: domid_t = DOMID_SELF;
        assert_eq!(w.memop(w.a, XENMEM_current_reservation.into(), &id), 2);
        assert_eq!(w.memop(w.a, XENMEM_maximum_reservation.into(), &id), 64);
        assert_eq!(w.memop(w.a, XENMEM_maximum_gpfn.into(), &id), 0x2345);
        assert_eq!(
            w.memop(w.b, XENMEM_current_reservation.into(), &w.a.clone()),
            EPERM
        );
        assert_eq!(
            w.memop(0, XENMEM_current_reservation.into(), &w.a.clone()),
            2
        );
        assert_eq!(
            w.memop(0, XENMEM_current_reservation.into(), &0x7000u16),
            ESRCH
        );
        assert_eq!(w.raw(0, XENMEM_current_reservation.into(), BAD_GVA), EFAULT);
        let cmd = u64::from(XENMEM_current_reservation) | 1 << 6;
        assert_eq!(w.memop(0, cmd, &id), EINVAL);
    }

    fn xatp(domid: domid_t, space: u32, idx: u64, gpfn: u64) -> xen_add_to_physmap {
        let mut x = xen_add_to_physmap::new_zeroed();
        x.domid = domid;
        x.space = space;
        x.idx = idx;
        x.gpfn = gpfn;
        x
    }

    #[test]
    fn shared_info_mapping_moves_the_event_fields_and_frees_the_ram_under_it() {
        let mut w = world();
        w.env.put(LIST, &[0x80u64]);
        w.memop(w.a, XENMEM_populate_physmap.into(), &resv(DOMID_SELF, 1, 0));
        assert_eq!(w.d(w.a).tot_pages(), 1);
        let op = XENMEM_add_to_physmap.into();
        assert_eq!(
            w.memop(w.a, op, &xatp(DOMID_SELF, XENMAPSPACE_shared_info, 1, 0x80)),
            EINVAL
        );
        assert_eq!(w.memop(w.a, op, &xatp(DOMID_SELF, 99, 0, 0x80)), EINVAL);
        assert_eq!(
            w.memop(
                w.a,
                op,
                &xatp(DOMID_SELF, XENMAPSPACE_gmfn_foreign, 0, 0x80)
            ),
            ENOSYS
        );
        assert_eq!(
            w.memop(w.a, op, &xatp(0x7000, XENMAPSPACE_shared_info, 0, 0x80)),
            ESRCH
        );
        assert_eq!(
            w.memop(w.b, op, &xatp(w.a, XENMAPSPACE_shared_info, 0, 0x80)),
            EPERM
        );
        assert_eq!(w.raw(w.a, op, BAD_GVA), EFAULT);

        assert_eq!(
            w.memop(w.a, op, &xatp(DOMID_SELF, XENMAPSPACE_shared_info, 0, 0x80)),
            0
        );
        let d = w.d(w.a);
        assert_eq!(d.tot_pages(), 0, "the RAM page under it went back");
        assert_eq!(d.hvm.p2m.host_entry(0x80).unwrap().mfn, d.shared_info_mfn);
        assert_eq!(d.shared_info_gfn, 0x80);
        assert_eq!(d.evtchn.shared_info().gpa(), Some(0x80 << 12));
        // Move it: the old gfn is unmapped.
        assert_eq!(
            w.memop(w.a, op, &xatp(DOMID_SELF, XENMAPSPACE_shared_info, 0, 0x90)),
            0
        );
        let d = w.d(w.a);
        assert!(d.hvm.p2m.host_entry(0x80).is_none());
        assert_eq!(d.evtchn.shared_info().gpa(), Some(0x90 << 12));
        let mut s = shared_info::new_zeroed();
        assert!(w.machine.read(d.shared_info_mfn, 0, s.as_mut_bytes()));
        assert!(w
            .ext
            .actions
            .contains(&ArchAction::FlushTlbs { domid: w.a }));
    }

    /// Issue 14 defect 9: shared_info moved with XENMAPSPACE_gmfn (not
    /// XENMAPSPACE_shared_info) is found at its new gfn.
    #[test]
    fn gmfn_move_of_shared_info_follows_it() {
        let mut w = world();
        let op = XENMEM_add_to_physmap.into();
        assert_eq!(
            w.memop(w.a, op, &xatp(DOMID_SELF, XENMAPSPACE_shared_info, 0, 0x80)),
            0
        );
        assert_eq!(
            w.memop(w.a, op, &xatp(DOMID_SELF, XENMAPSPACE_gmfn, 0x80, 0x90)),
            0
        );
        let d = w.d(w.a);
        assert!(d.hvm.p2m.host_entry(0x80).is_none());
        assert_eq!(d.hvm.p2m.host_entry(0x90).unwrap().mfn, d.shared_info_mfn);
        assert_eq!(d.shared_info_gfn, 0x90);
        assert_eq!(d.evtchn.shared_info().gpa(), Some(0x90 << 12));
        // Unmapping it at the new place unhooks it.
        w.env.put(LIST, &[0x90u64]);
        let rc = w.memop(
            w.a,
            XENMEM_decrease_reservation.into(),
            &resv(DOMID_SELF, 1, 0),
        );
        assert_eq!(rc, 1);
        let d = w.d(w.a);
        assert_eq!(d.shared_info_gfn, u64::MAX);
        assert_eq!(d.evtchn.shared_info().gpa(), None);
    }

    #[test]
    fn gmfn_moves_a_page() {
        let mut w = world();
        w.env.put(LIST, &[0x10u64]);
        w.memop(w.a, XENMEM_populate_physmap.into(), &resv(DOMID_SELF, 1, 0));
        let mfn = w.d(w.a).hvm.p2m.host_entry(0x10).unwrap().mfn;
        let op = XENMEM_add_to_physmap.into();
        assert_eq!(
            w.memop(w.a, op, &xatp(DOMID_SELF, XENMAPSPACE_gmfn, 0x10, 0x20)),
            0
        );
        assert!(w.d(w.a).hvm.p2m.host_entry(0x10).is_none());
        assert_eq!(w.d(w.a).hvm.p2m.host_entry(0x20).unwrap().mfn, mfn);
        assert_eq!(
            w.memop(w.a, op, &xatp(DOMID_SELF, XENMAPSPACE_gmfn, 0x10, 0x30)),
            EINVAL
        );
    }

    /// A [`P2mCommit`] that records, per commit, the domain and how many frames
    /// were out at that moment.
    struct RecordingCommit {
        frames: crate::common::page_alloc::fake::CountingFrames,
        log: Arc<spin::Mutex<Vec<(domid_t, usize)>>>,
    }

    impl crate::common::memory::P2mCommit for RecordingCommit {
        fn commit(
            &mut self,
            domid: domid_t,
            p2m: &mut crate::common::memory::P2m,
        ) -> XenResult<()> {
            use crate::common::memory::NoStage2;
            NoStage2.commit(domid, p2m)?;
            self.log.lock().push((domid, self.frames.outstanding()));
            Ok(())
        }
    }

    fn recording(w: &mut W) -> Arc<spin::Mutex<Vec<(domid_t, usize)>>> {
        let log = Arc::new(spin::Mutex::new(Vec::new()));
        w.ext.p2m_commit = Box::new(RecordingCommit {
            frames: w.env.frames.clone(),
            log: log.clone(),
        });
        log
    }

    /// Issue 14 defect 1: a frame unmapped by decrease_reservation or by
    /// add_to_physmap onto a populated gfn goes back to the allocator only after
    /// the p2m change was committed (tables edited, CPUs flushed), never before.
    #[test]
    fn unmapped_frames_are_freed_only_after_the_shootdown() {
        let mut w = world();
        let log = recording(&mut w);
        w.env.put(LIST, &[0x100u64, 0x101, 0x102]);
        assert_eq!(
            w.memop(w.a, XENMEM_populate_physmap.into(), &resv(DOMID_SELF, 3, 0)),
            3
        );
        let held = w.env.frames.outstanding();
        assert_eq!(log.lock().last(), Some(&(w.a, held)), "populate committed");
        w.env.put(LIST, &[0x101u64, 0x102]);
        let rc = w.memop(
            w.a,
            XENMEM_decrease_reservation.into(),
            &resv(DOMID_SELF, 2, 0),
        );
        assert_eq!(rc, 2);
        assert_eq!(
            log.lock().last(),
            Some(&(w.a, held)),
            "both frames still out when the shootdown ran"
        );
        assert_eq!(w.env.frames.outstanding(), held - 2, "freed after it");
        assert!(w.env.hv.domains.deferred_frames().is_empty());
        // add_to_physmap of gfn 0x100's frame onto a populated gfn: the frame
        // under it is freed after the commit too.
        w.env.put(LIST, &[0x200u64]);
        w.memop(w.a, XENMEM_populate_physmap.into(), &resv(DOMID_SELF, 1, 0));
        let held = w.env.frames.outstanding();
        let n = log.lock().len();
        assert_eq!(
            w.memop(
                w.a,
                XENMEM_add_to_physmap.into(),
                &xatp(DOMID_SELF, XENMAPSPACE_gmfn, 0x100, 0x200)
            ),
            0
        );
        assert_eq!(log.lock().len(), n + 1);
        assert_eq!(log.lock().last(), Some(&(w.a, held)));
        assert_eq!(w.env.frames.outstanding(), held - 1);
        // dom0 decreasing a domU's memory: the domU's p2m is the one committed.
        w.env.put(LIST, &[0x200u64]);
        let rc = w.memop(0, XENMEM_decrease_reservation.into(), &resv(w.a, 1, 0));
        assert_eq!(rc, 1);
        assert_eq!(log.lock().last().map(|e| e.0), Some(w.a));
    }

    /// Enter memory_op once per guest re-execution until done; returns RAX and
    /// the number of entries, checking each entry's work against the budget.
    fn entries_until_done(w: &mut W, cmd: u64) -> (i64, u64) {
        use crate::common::hypercall::{hypercall_entry, HypercallOutcome, HypercallRegs};
        let mut regs = HypercallRegs {
            rax: __HYPERVISOR_memory_op.into(),
            args: [cmd, ARG_GVA, 0, 0, 0],
        };
        let caller = Caller {
            domid: w.a,
            vcpu: 0,
        };
        let mut entries = 0;
        loop {
            entries += 1;
            assert!(entries < 1000, "no progress");
            let out = hypercall_entry(
                &mut w.env.hv,
                &mut w.ext,
                caller,
                regs.rax,
                regs.args,
                &mut w.env.mem,
            );
            if let HypercallOutcome::Continue(c) = &out {
                assert_eq!(u64::from(c.number), u64::from(__HYPERVISOR_memory_op));
                assert_eq!(c.args[0] & MEMOP_CMD_MASK, cmd & MEMOP_CMD_MASK);
                assert_eq!(c.args[1], ARG_GVA);
            }
            if out.apply(&mut regs) {
                return (regs.rax as i64, entries);
            }
        }
    }

    /// Memory-op continuations (issue 14): populate / decrease / increase
    /// reservation and add_to_physmap(gmfn_range) do at most
    /// MEMOP_PAGES_PER_ENTRY pages per entry and continue with the start extent
    /// in cmd's upper bits; the guest sees one call with the one-call result.
    #[test]
    fn reservation_and_range_ops_are_preempted_and_continued() {
        let mut w = world();
        const N: u64 = 1000;
        w.env.hv.domains.get_mut(w.a).unwrap().max_pages = 2 * N;
        let mut list = [0u64; N as usize];
        for (i, g) in list.iter_mut().enumerate() {
            *g = 0x1000 + i as u64;
        }
        w.env.put(LIST, &list);
        let per = MEMOP_PAGES_PER_ENTRY;
        w.env.put(ARG_GVA, &resv(DOMID_SELF, N, 0));
        let (rc, entries) = entries_until_done(&mut w, XENMEM_populate_physmap.into());
        assert_eq!((rc, entries), (N as i64, N.div_ceil(per)));
        assert_eq!(w.d(w.a).tot_pages(), N);
        // Order-2 extents: whole extents per entry, the budget reached after 64.
        w.env.put(ARG_GVA, &resv(DOMID_SELF, 200, 2));
        let (rc, entries) = entries_until_done(&mut w, XENMEM_increase_reservation.into());
        assert_eq!((rc, entries), (200, (200 * 4u64).div_ceil(per)));
        assert_eq!(w.d(w.a).tot_pages(), N + 800);
        // Move 600 pages with one gmfn_range call.
        let mut x = xatp(DOMID_SELF, XENMAPSPACE_gmfn_range, 0x1000, 0x10000);
        x.size = 600;
        w.env.put(ARG_GVA, &x);
        let (rc, entries) = entries_until_done(&mut w, XENMEM_add_to_physmap.into());
        assert_eq!((rc, entries), (0, 600u64.div_ceil(per)));
        let p2m = &w.d(w.a).hvm.p2m;
        assert!(p2m.host_entry(0x1000 + 599).is_none());
        assert!(p2m.host_entry(0x10000 + 599).is_some());
        assert!(p2m.host_entry(0x1000 + 600).is_some());
        // Give the 400 left back.
        let held = w.env.frames.outstanding();
        w.env.put(LIST, &list);
        let mut r = resv(DOMID_SELF, N - 600, 0);
        r.extent_start = LIST + 600 * 8;
        w.env.put(ARG_GVA, &r);
        let (rc, entries) = entries_until_done(&mut w, XENMEM_decrease_reservation.into());
        assert_eq!((rc, entries), (400, 400u64.div_ceil(per)));
        assert_eq!(w.env.frames.outstanding(), held - 400);
    }

    #[test]
    fn memory_map_is_the_domains_e820() {
        let mut w = world();
        let mut m = xen_memory_map::new_zeroed();
        m.nr_entries = 8;
        m.buffer = OUT;
        assert_eq!(
            w.memop(w.a, XENMEM_memory_map.into(), &m),
            ENOSYS,
            "none set"
        );
        w.env.hv.domains.get_mut(w.a).unwrap().memmap = pvh_memmap(256);
        assert_eq!(w.memop(w.a, XENMEM_memory_map.into(), &m), 0);
        let back: xen_memory_map = w.env.get(ARG_GVA);
        assert_eq!(back.nr_entries, 1);
        let e: E820Entry = w.env.get(OUT);
        assert_eq!({ e.addr }, 0);
        assert_eq!({ e.size }, 1 << 20);
        assert_eq!({ e.kind }, E820_RAM);
        m.buffer = BAD_GVA;
        assert_eq!(w.memop(w.a, XENMEM_memory_map.into(), &m), EFAULT);
        m.nr_entries = 0;
        m.buffer = OUT;
        assert_eq!(w.memop(w.a, XENMEM_memory_map.into(), &m), 0);
        assert_eq!(w.env.get::<xen_memory_map>(ARG_GVA).nr_entries, 0);
    }
}
