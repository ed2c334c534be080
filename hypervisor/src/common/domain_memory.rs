//! Memory ops the toolstack issues on a domain it builds, beside the
//! reservations of `memory_op.rs`: `XENMEM_claim_pages` (stake a claim before
//! populating) and `XENMEM_set_memory_map` (the E820 the guest then reads with
//! `XENMEM_memory_map`).
//!
//! Mirrors Xen 4.17's `XENMEM_claim_pages` (`xen/common/memory.c`,
//! `domain_set_outstanding_pages()` in `page_alloc.c`) and `XENMEM_set_memory_map`
//! (`xen/arch/x86/mm.c`). A claim is recorded as the domain's target size: the
//! outstanding pages are the part not allocated yet (getdomaininfo
//! `outstanding_pages`). Deliberate difference: other domains' allocations do
//! not yet honour outstanding claims (the check at claim time against the free
//! frames is done).

use alloc::vec::Vec;

use xen_public_abi::memory::{xen_foreign_memory_map, xen_memory_reservation};
use xen_public_abi::{Errno, XenResult};
use zerocopy::FromBytes;

use super::domain::DomainTable;
use super::guest_access::{copy_from_guest, GuestAccess};
use super::hypercall::Caller;
use super::memory_op::E820Entry;

/// `E820MAX` (x86): the most entries `set_memory_map` takes.
pub const E820MAX: u32 = 1024;

/// `XENMEM_claim_pages` from `caller`; `free_pages` is the machine's free
/// frame count now.
pub fn claim_pages(
    domains: &mut DomainTable,
    caller: Caller,
    start_extent: u64,
    arg: u64,
    guest: &mut dyn GuestAccess,
    free_pages: u64,
) -> XenResult<()> {
    if start_extent != 0 {
        return Err(Errno::EINVAL);
    }
    let r: xen_memory_reservation = copy_from_guest(guest, arg)?;
    if r.extent_start != 0 || r.extent_order != 0 || r.mem_flags != 0 {
        return Err(Errno::EINVAL);
    }
    // By exact id (no DOMID_SELF): a missing domain is -EINVAL here.
    let outstanding_all: u64 = domains
        .ids()
        .filter_map(|id| domains.get(id))
        .map(|d| d.ctl.outstanding_pages(d.tot_pages()))
        .sum();
    if domains.get(r.domid).is_none() {
        return Err(Errno::EINVAL);
    }
    // XSM_PRIV.
    if !domains.get(caller.domid).is_some_and(|c| c.is_privileged) {
        return Err(Errno::EPERM);
    }
    let d = domains.get_mut(r.domid).ok_or(Errno::EINVAL)?;
    let pages = r.nr_extents;
    if pages == 0 {
        d.ctl.claim_target = 0;
        return Ok(());
    }
    let tot = d.tot_pages();
    if d.ctl.outstanding_pages(tot) != 0 || pages <= tot || pages > d.max_pages {
        return Err(Errno::EINVAL);
    }
    if pages - tot > free_pages.saturating_sub(outstanding_all) {
        return Err(Errno::ENOMEM);
    }
    d.ctl.claim_target = pages;
    Ok(())
}

/// `XENMEM_set_memory_map`: replace the domain's E820.
pub fn set_memory_map(
    domains: &mut DomainTable,
    caller: Caller,
    arg: u64,
    guest: &mut dyn GuestAccess,
) -> XenResult<()> {
    let f: xen_foreign_memory_map = copy_from_guest(guest, arg)?;
    if f.map.nr_entries > E820MAX {
        return Err(Errno::EINVAL);
    }
    let id = DomainTable::resolve(caller.domid, f.domid);
    domains.get(id).ok_or(Errno::ESRCH)?;
    if caller.domid != id && !domains.get(caller.domid).is_some_and(|c| c.is_privileged) {
        return Err(Errno::EPERM);
    }
    let n = f.map.nr_entries as usize;
    let mut raw = alloc::vec![0u8; n * core::mem::size_of::<E820Entry>()];
    guest.copy_from_guest(f.map.buffer, &mut raw)?;
    let map: Vec<E820Entry> = raw
        .chunks_exact(core::mem::size_of::<E820Entry>())
        .filter_map(|c| E820Entry::read_from_bytes(c).ok())
        .collect();
    domains.get_mut(id).ok_or(Errno::ESRCH)?.memmap = map;
    Ok(())
}
