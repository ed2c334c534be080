//! `GNTTABOP_copy`: the hypervisor copies up to a page between two frames, each
//! named by a grant reference of a (possibly other) domain or, for the caller
//! only, by one of its own gfns.
//!
//! Mirrors Xen 4.17's `gnttab_copy()`, `gnttab_copy_one()`,
//! `gnttab_copy_lock_domain()`, `gnttab_copy_claim_buf()`,
//! `acquire_grant_for_copy()` / `release_grant_for_copy()` and
//! `gnttab_copy_buf()` (`xen/common/grant_table.c`), in the same order of
//! checks: domains (a gmfn end must be `DOMID_SELF`: `GNTST_permission_denied`;
//! unknown: `GNTST_bad_domain`), then the source and the destination are claimed
//! (a grant is pinned for the copy: reading for the source, writing for the
//! destination), and only then are the offsets checked (`GNTST_bad_copy_arg`
//! past the page end). Each copy claims and releases its own buffers (Xen keeps
//! them across consecutive copies with the same ends; the result is the same).

use xen_public_abi::grant_table::{
    gnttab_copy, gnttab_copy_ptr, GNTCOPY_dest_gref, GNTCOPY_source_gref, GNTST_bad_copy_arg,
    GNTST_bad_domain, GNTST_okay, GNTST_permission_denied,
};
use xen_public_abi::xen::{domid_t, DOMID_SELF};
use xen_public_abi::XenResult;

use super::entry::{PIN_HSTR, PIN_HSTW};
use super::{get_paged_frame, pin_entry, unpin};
use crate::common::domain::DomainTable;
use crate::common::guest_access::{copy_from_guest, GuestAccess, MachineMemory};
use crate::common::hypercall::Caller;
use crate::common::memory_op::MemoryOpEnv;
use crate::common::page_alloc::Mfn;

const PAGE_SIZE: u32 = 4096;

/// One claimed end of a copy.
struct Buf {
    domain: domid_t,
    mfn: Mfn,
    /// A grant pinned for this copy (ref, read-only).
    grant: Option<(u32, bool)>,
}

/// `gnttab_copy()`: up to [`super::GNTTAB_OPS_PER_ENTRY`] copies per entry.
pub fn copy_batch(
    env: &mut MemoryOpEnv<'_>,
    domains: &mut DomainTable,
    caller: Caller,
    uop: u64,
    count: u32,
    guest: &mut dyn GuestAccess,
) -> XenResult<u32> {
    super::for_each_op::<gnttab_copy>(uop, count, |at| {
        let op: gnttab_copy = copy_from_guest(guest, at)?;
        let status = copy_one(env.machine, domains, caller.domid, &op);
        guest.copy_to_guest(at.wrapping_add(36), &status.to_le_bytes())
    })
}

/// `gnttab_copy_lock_domain()`.
fn lock_domain(
    domains: &DomainTable,
    caller: domid_t,
    p: &gnttab_copy_ptr,
    is_gref: bool,
) -> Result<domid_t, i16> {
    if p.domid != DOMID_SELF && !is_gref {
        return Err(GNTST_permission_denied);
    }
    let id = DomainTable::resolve(caller, p.domid);
    domains.get(id).map(|_| id).ok_or(GNTST_bad_domain)
}

/// `gnttab_copy_claim_buf()`.
fn claim(
    m: &dyn MachineMemory,
    domains: &mut DomainTable,
    caller: domid_t,
    domain: domid_t,
    p: &gnttab_copy_ptr,
    is_gref: bool,
    readonly: bool,
) -> Result<Buf, i16> {
    if is_gref {
        let r = p.u.get::<u32>();
        let mfn = pin_entry(m, domains, domain, r, caller, readonly, false)?;
        Ok(Buf {
            domain,
            mfn,
            grant: Some((r, readonly)),
        })
    } else {
        let mfn = get_paged_frame(domains, domain, p.u.get::<u64>())?;
        Ok(Buf {
            domain,
            mfn,
            grant: None,
        })
    }
}

/// `gnttab_copy_release_buf()`.
fn release(m: &dyn MachineMemory, domains: &mut DomainTable, b: &Buf) {
    if let Some((r, readonly)) = b.grant {
        if let Some(d) = domains.get_mut(b.domain) {
            let incr = if readonly { PIN_HSTR } else { PIN_HSTW };
            unpin(m, &mut d.grant, r, incr, readonly);
        }
    }
}

/// `gnttab_copy_one()`: the status of one copy.
fn copy_one(
    m: &dyn MachineMemory,
    domains: &mut DomainTable,
    caller: domid_t,
    op: &gnttab_copy,
) -> i16 {
    let src_gref = op.flags & GNTCOPY_source_gref != 0;
    let dst_gref = op.flags & GNTCOPY_dest_gref != 0;
    let sd = match lock_domain(domains, caller, &op.source, src_gref) {
        Ok(d) => d,
        Err(rc) => return rc,
    };
    let dd = match lock_domain(domains, caller, &op.dest, dst_gref) {
        Ok(d) => d,
        Err(rc) => return rc,
    };
    let src = match claim(m, domains, caller, sd, &op.source, src_gref, true) {
        Ok(b) => b,
        Err(rc) => return rc,
    };
    let dst = match claim(m, domains, caller, dd, &op.dest, dst_gref, false) {
        Ok(b) => b,
        Err(rc) => {
            release(m, domains, &src);
            return rc;
        }
    };
    let rc = copy_buf(m, op, &src, &dst);
    release(m, domains, &dst);
    release(m, domains, &src);
    rc
}

/// `gnttab_copy_buf()`: v1 grants cover the whole page, so only the page bounds
/// can fail.
fn copy_buf(m: &dyn MachineMemory, op: &gnttab_copy, src: &Buf, dst: &Buf) -> i16 {
    let len = u32::from(op.len);
    if u32::from(op.source.offset) + len > PAGE_SIZE || u32::from(op.dest.offset) + len > PAGE_SIZE
    {
        return GNTST_bad_copy_arg;
    }
    // In small pieces: the hypervisor's stacks are small.
    let mut chunk = [0u8; 256];
    let mut done = 0usize;
    while done < usize::from(op.len) {
        let n = (usize::from(op.len) - done).min(chunk.len());
        let b = &mut chunk[..n];
        // Both frames are RAM the hypervisor hands out; a failed access would be
        // a hypervisor bug, reported as a general error rather than a panic.
        if !m.read(src.mfn, usize::from(op.source.offset) + done, b)
            || !m.write(dst.mfn, usize::from(op.dest.offset) + done, b)
        {
            return xen_public_abi::grant_table::GNTST_general_error;
        }
        done += n;
    }
    GNTST_okay
}
