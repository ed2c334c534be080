//! `XENMEM_acquire_resource`: the toolstack maps a domain's resource frames
//! into its own physmap. The grant table's shared frames are the resource this
//! hypervisor has (`XENMEM_resource_grant_table`,
//! `XENMEM_resource_grant_table_id_shared`): dom0 maps them and seeds entries 0
//! (console) and 1 (xenstore) before the guest runs, as libxenguest's
//! `xc_dom_gnttab_seed()` does.
//!
//! Mirrors Xen 4.17's `acquire_resource()`, `resource_max_frames()` and
//! `_acquire_resource()` (`xen/common/memory.c`), `gnttab_resource_max_frames()`
//! and `gnttab_acquire_resource()` (`xen/common/grant_table.c`),
//! `arch_acquire_resource_check()` and `set_foreign_p2m_entry()`
//! (`xen/arch/x86/mm/p2m.c`), in the same order of checks:
//!
//! 1. a translated caller must be the hardware domain (`-EACCES`);
//! 2. `pad` non-zero, `frame` or `frame + nr_frames` beyond 32 bits (`-EINVAL`);
//! 3. the domain exists (`-ESRCH`) and is not the caller (`-EPERM`), XSM_DM_PRIV
//!    (`-EPERM`);
//! 4. the resource's size: 0 is `-EINVAL`; a NULL `frame_list` with
//!    `nr_frames` 0 asks for the size (written back); a resource type Xen does
//!    not know gives `(unsigned)-EOPNOTSUPP` there, as 4.17 does;
//! 5. the frames, 32 per step, each mapped at the caller's gfn as a foreign
//!    mapping holding a reference (`-EIO` when a later frame of a step fails);
//!    longer lists continue with the start extent in `cmd`.
//!
//! No ioreq servers exist here: `XENMEM_resource_ioreq_server` answers as 4.17
//! does for a domain without one (`-ENOENT`). Status frames exist only in v2:
//! `-EINVAL` with a frame list.

use alloc::vec::Vec;

use xen_public_abi::memory::{
    xen_mem_acquire_resource, XENMEM_acquire_resource, XENMEM_resource_grant_table,
    XENMEM_resource_grant_table_id_shared, XENMEM_resource_grant_table_id_status,
    XENMEM_resource_ioreq_server, XENMEM_resource_vmtrace_buf,
};
use xen_public_abi::xen::{__HYPERVISOR_memory_op, domid_t};
use xen_public_abi::{Errno, XenResult};
use zerocopy::IntoBytes;

use super::frame_for_physmap;
use crate::common::dispatch::ArchAction;
use crate::common::domain::DomainTable;
use crate::common::guest_access::{copy_from_guest, GuestAccess};
use crate::common::hypercall::Caller;
use crate::common::memory::P2mAccess;
use crate::common::memory_op::{MemoryOpEnv, MEMOP_EXTENT_SHIFT};
use crate::common::page_alloc::Mfn;

/// Frames per step (`mfn_list[32]` in Xen).
const STEP: u32 = 32;
/// `sizeof(struct ioreq)`.
const IOREQ_SIZE: u32 = 32;

/// `resource_max_frames()`; 0 means `-EINVAL`.
fn max_frames(domains: &DomainTable, d: domid_t, ty: u16, id: u32) -> u32 {
    let Some(dom) = domains.get(d) else {
        return 0;
    };
    match ty {
        XENMEM_resource_grant_table => match id {
            XENMEM_resource_grant_table_id_shared => dom.grant.max_grant_frames(),
            // `grant_to_status_frames()`: 2-byte status words, 16-byte v2 entries.
            XENMEM_resource_grant_table_id_status => {
                (dom.grant.max_grant_frames() * 256).div_ceil(2048)
            }
            _ => 0,
        },
        XENMEM_resource_ioreq_server if dom.is_hvm() => {
            1 + (dom.max_vcpus() * IOREQ_SIZE).div_ceil(4096)
        }
        XENMEM_resource_ioreq_server => 0,
        // vmtrace_size is always 0 (createdomain refuses it without Intel PT).
        XENMEM_resource_vmtrace_buf => 0,
        // 4.17 returns -EOPNOTSUPP through an unsigned int.
        _ => Errno::EOPNOTSUPP.as_ret() as u32,
    }
}

/// `_acquire_resource()`: the machine frames `frame..frame + n`.
fn frames(
    domains: &mut DomainTable,
    d: domid_t,
    ty: u16,
    id: u32,
    frame: u32,
    n: u32,
) -> XenResult<Vec<Mfn>> {
    match ty {
        XENMEM_resource_grant_table => {
            if id != XENMEM_resource_grant_table_id_shared {
                // Status frames: only with grant table v2.
                return Err(Errno::EINVAL);
            }
            if n == 0 {
                return Err(Errno::EINVAL);
            }
            // Grows the table up to the last frame (`-EINVAL` beyond the limit).
            let last = u64::from(frame) + u64::from(n) - 1;
            frame_for_physmap(domains, d, last)?;
            (frame..frame + n)
                .map(|i| frame_for_physmap(domains, d, u64::from(i)))
                .collect()
        }
        XENMEM_resource_ioreq_server => {
            if id > u32::from(u16::MAX) {
                return Err(Errno::EINVAL);
            }
            // No ioreq server exists.
            Err(Errno::ENOENT)
        }
        XENMEM_resource_vmtrace_buf => Err(Errno::EINVAL),
        _ => Err(Errno::EOPNOTSUPP),
    }
}

/// `set_foreign_p2m_entry(currd, d, gfn, mfn)`: a foreign entry of the caller;
/// replacing another special entry (foreign or grant mapping) crashes it.
fn set_foreign_entry(
    env: &mut MemoryOpEnv<'_>,
    domains: &mut DomainTable,
    caller: domid_t,
    gfn: u64,
    mfn: Mfn,
) -> XenResult<()> {
    let foreign = domains.foreign.entry(caller, gfn);
    let d = domains.get_mut(caller).ok_or(Errno::ESRCH)?;
    let there = d.hvm.p2m.host_entry(gfn).map(|e| e.mfn);
    if foreign == Some(mfn) && there == Some(mfn) {
        return Ok(());
    }
    if foreign.is_some() || d.grant.maptrack.grant_at(gfn, there) {
        crate::gprintk!(
            caller,
            log::Level::Warn,
            "d{caller}: resource mapping over the special page at gfn {gfn:#x}: crashing it"
        );
        env.actions.push(ArchAction::Crash { domid: caller });
        return Err(Errno::EPERM);
    }
    if there.is_some() && there == Some(d.shared_info_mfn) {
        crate::common::memory_op::unhook_shared_info(env, d);
    }
    d.hvm.p2m.set_host_entry(gfn, mfn, P2mAccess::RW)?;
    domains.foreign.add_entry(caller, gfn, mfn);
    Ok(())
}

/// `XENMEM_acquire_resource`.
pub fn acquire_resource(
    env: &mut MemoryOpEnv<'_>,
    domains: &mut DomainTable,
    caller: Caller,
    start_extent: u64,
    arg: u64,
    guest: &mut dyn GuestAccess,
) -> XenResult<()> {
    let currd = domains.get(caller.domid).ok_or(Errno::ESRCH)?;
    // Every caller is translated here: only the hardware domain.
    if !currd.is_hardware {
        return Err(Errno::EACCES);
    }
    let mut x: xen_mem_acquire_resource = copy_from_guest(guest, arg)?;
    if x.pad != 0 {
        return Err(Errno::EINVAL);
    }
    if x.frame >> 32 != 0 || (x.frame + u64::from(x.nr_frames)) >> 32 != 0 {
        return Err(Errno::EINVAL);
    }
    // `rcu_lock_remote_domain_by_id()`.
    if domains.get(x.domid).is_none() {
        return Err(Errno::ESRCH);
    }
    if x.domid == caller.domid {
        return Err(Errno::EPERM);
    }
    // XSM_DM_PRIV (dummy): the control domain.
    if !currd.is_privileged {
        return Err(Errno::EPERM);
    }
    let max = max_frames(domains, x.domid, x.r#type, x.id);
    if max == 0 {
        return Err(Errno::EINVAL);
    }
    if x.frame_list == 0 {
        if x.nr_frames != 0 || start_extent != 0 {
            return Err(Errno::EINVAL);
        }
        x.nr_frames = max;
        return guest.copy_to_guest(arg.wrapping_add(8), x.nr_frames.as_bytes());
    }
    if start_extent >= u64::from(x.nr_frames) || x.nr_frames > u32::MAX >> MEMOP_EXTENT_SHIFT {
        return Err(Errno::EINVAL);
    }
    let mut done_total = start_extent as u32;
    let mut left = x.nr_frames - done_total;
    let mut frame = x.frame as u32 + done_total;
    let mut list = x.frame_list.wrapping_add(u64::from(done_total) * 8);
    let mut steps = 0;
    while left > 0 {
        if steps == 1 {
            // One step per entry: continue with the start extent in cmd.
            domains.create_continuation(
                __HYPERVISOR_memory_op,
                [
                    u64::from(XENMEM_acquire_resource)
                        | u64::from(done_total) << MEMOP_EXTENT_SHIFT,
                    arg,
                    0,
                    0,
                    0,
                ],
            );
            return Ok(());
        }
        steps += 1;
        let todo = left.min(STEP);
        let mfns = frames(domains, x.domid, x.r#type, x.id, frame, todo)?;
        let mut gfns = Vec::with_capacity(todo as usize);
        for i in 0..u64::from(todo) {
            gfns.push(copy_from_guest::<u64>(guest, list.wrapping_add(i * 8))?);
        }
        for (i, (&gfn, &mfn)) in gfns.iter().zip(mfns.iter()).enumerate() {
            if let Err(e) = set_foreign_entry(env, domains, caller.domid, gfn, mfn) {
                return Err(if i > 0 { Errno::EIO } else { e });
            }
        }
        env.actions.push(ArchAction::FlushTlbs {
            domid: caller.domid,
        });
        left -= todo;
        frame += todo;
        list = list.wrapping_add(u64::from(todo) * 8);
        done_total += todo;
    }
    Ok(())
}
