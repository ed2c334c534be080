//! `__HYPERVISOR_domctl`: the toolstack's domain-control operations.
//!
//! Mirrors Xen 4.17's `xen/common/domctl.c` (`do_domctl()`, `getdomaininfo()`) with
//! the dummy XSM policy (`xen/include/xsm/dummy.h`): every domctl but
//! getdomaininfo needs a privileged caller; getdomaininfo also admits a xenstore
//! domain. The order of Xen's checks is kept, because guests can see it:
//!
//! 1. copy the `xen_domctl` in (`-EFAULT`);
//! 2. `interface_version` must be 0x15 (`-EACCES`, for every command);
//! 3. the target domain is looked up by exact id (`DOMID_SELF` is *not* the caller
//!    here): missing → `-ESRCH`, except getdomaininfo, which returns the first
//!    domain at or above the id (4.17) and `-EINVAL` for reserved ids;
//! 4. privilege (`-EPERM`);
//! 5. the command (`-ENOSYS` if unknown);
//! 6. on success, createdomain and getdomaininfo copy the whole `xen_domctl` back.

// Xen's names (`XEN_DOMCTL_createdomain`, `__HYPERVISOR_domctl`, ...) in match patterns.
#![allow(non_upper_case_globals)]

use log::info;
use xen_public_abi::arch_x86::xen_arch_domainconfig;
use xen_public_abi::domctl::{
    xen_domctl, xen_domctl_createdomain, xen_domctl_getdomaininfo, xen_domctl_max_mem,
    xen_domctl_max_vcpus, XEN_DOMCTL_createdomain, XEN_DOMCTL_destroydomain,
    XEN_DOMCTL_getdomaininfo, XEN_DOMCTL_max_mem, XEN_DOMCTL_max_vcpus, XEN_DOMCTL_pausedomain,
    XEN_DOMCTL_unpausedomain, XEN_DOMINF_blocked, XEN_DOMINF_hap, XEN_DOMINF_hvm_guest,
    XEN_DOMINF_paused, XEN_DOMINF_running, XEN_DOMINF_shutdown, XEN_DOMINF_shutdownshift,
    XEN_DOMINF_xs_domain, XEN_DOMCTL_INTERFACE_VERSION, XEN_INVALID_MAX_VCPU_ID,
};
use xen_public_abi::xen::{domid_t, DOMID_FIRST_RESERVED};
use xen_public_abi::{Errno, XenResult};
use zerocopy::FromZeros;

use super::domain::{Domain, Vcpu};
use super::guest_access::{copy_from_guest, copy_to_guest, GuestAccess};
use super::hypercall::{Caller, ExtHandlers, Hypervisor};

/// Xen's `getdomaininfo()`: the public view of one domain.
pub fn getdomaininfo(d: &Domain, gpaddr_bits: u8) -> xen_domctl_getdomaininfo {
    let mut info = xen_domctl_getdomaininfo::new_zeroed();
    info.domain = d.domain_id;
    info.max_vcpu_id = XEN_INVALID_MAX_VCPU_ID;

    // Blocked only if every online vCPU is; running if any is.
    let mut flags = XEN_DOMINF_blocked;
    let mut cpu_time = 0u64;
    for v in &d.vcpus {
        cpu_time = cpu_time.saturating_add(v.run_time_ns);
        info.max_vcpu_id = v.vcpu_id;
        if v.online {
            if !v.blocked {
                flags &= !XEN_DOMINF_blocked;
            }
            if v.running {
                flags |= XEN_DOMINF_running;
            }
            info.nr_online_vcpus += 1;
        }
    }
    info.cpu_time = cpu_time;

    let mut f = if info.nr_online_vcpus != 0 { flags } else { 0 };
    // XEN_DOMINF_dying: a domain in the table is never dead here (destroy removes
    // it at once), so the bit stays clear.
    if d.shutdown.is_shut_down {
        f |= XEN_DOMINF_shutdown;
    }
    if d.controller_pause_count > 0 {
        f |= XEN_DOMINF_paused;
    }
    if d.is_xenstore() {
        f |= XEN_DOMINF_xs_domain;
    }
    if d.is_hvm() {
        f |= XEN_DOMINF_hvm_guest;
    }
    if d.hap() {
        f |= XEN_DOMINF_hap;
    }
    // The code is an unsigned int shifted as is: "none" (~0) fills bits 16..31.
    f |= d.shutdown.code.wrapping_shl(XEN_DOMINF_shutdownshift);
    info.flags = f;

    info.tot_pages = d.tot_pages();
    info.max_pages = d.max_pages;
    // outstanding, shared and paged pages: none of these mechanisms exist here.
    info.shared_info_frame = d.shared_info_gfn;
    // ssidref: the dummy XSM policy reports 0 (the value given at creation is
    // ignored, as in 4.17 without XSM).
    info.ssidref = 0;
    info.handle = d.config.handle;
    info.cpupool = d.config.cpupool_id;
    info.gpaddr_bits = gpaddr_bits;
    info.arch_config = xen_arch_domainconfig {
        emulation_flags: d.config.emulation_flags,
        misc_flags: 0,
    };
    info
}

/// `__HYPERVISOR_domctl(xen_domctl_t *u_domctl)`.
pub fn do_domctl(
    hv: &mut Hypervisor,
    ext: &mut dyn ExtHandlers,
    caller: Caller,
    arg: u64,
    guest: &mut dyn GuestAccess,
) -> i64 {
    let mut op: xen_domctl = match copy_from_guest(guest, arg) {
        Ok(op) => op,
        Err(e) => return e.as_ret(),
    };
    match domctl(hv, ext, caller, &mut op) {
        Ok(Copyback::No) => 0,
        Ok(Copyback::Yes) => match copy_to_guest(guest, arg, &op) {
            Ok(()) => 0,
            Err(e) => e.as_ret(),
        },
        Err(e) => e.as_ret(),
    }
}

/// Whether the (updated) `xen_domctl` goes back to the guest.
enum Copyback {
    No,
    Yes,
}

fn caller_privileged(hv: &Hypervisor, caller: Caller) -> bool {
    hv.domains
        .get(caller.domid)
        .is_some_and(|d| d.is_privileged)
}

/// `do_domctl()` on a copied-in `xen_domctl`.
fn domctl(
    hv: &mut Hypervisor,
    ext: &mut dyn ExtHandlers,
    caller: Caller,
    op: &mut xen_domctl,
) -> XenResult<Copyback> {
    if op.interface_version != XEN_DOMCTL_INTERFACE_VERSION {
        return Err(Errno::EACCES);
    }

    if op.cmd == XEN_DOMCTL_getdomaininfo {
        return getdomaininfo_op(hv, caller, op);
    }

    // Every other command: the target must exist (by exact id), then privilege.
    let target = if op.cmd == XEN_DOMCTL_createdomain {
        None
    } else {
        hv.domains.get(op.domain).ok_or(Errno::ESRCH)?;
        Some(op.domain)
    };
    if !caller_privileged(hv, caller) {
        return Err(Errno::EPERM);
    }

    match (op.cmd, target) {
        (XEN_DOMCTL_createdomain, _) => {
            let config: xen_domctl_createdomain = op.u.get();
            let domid = hv.domains.create_domain(op.domain, &config)?;
            op.domain = domid;
            Ok(Copyback::Yes)
        }
        (XEN_DOMCTL_destroydomain, Some(id)) => {
            if id == caller.domid {
                return Err(Errno::EINVAL);
            }
            ext.domain_destroy(&mut hv.domains, id);
            hv.domains.destroy_domain(id)?;
            Ok(Copyback::No)
        }
        (XEN_DOMCTL_pausedomain, Some(id)) => {
            if id == caller.domid {
                return Err(Errno::EINVAL);
            }
            target_mut(hv, id)?.pause_by_systemcontroller()?;
            Ok(Copyback::No)
        }
        (XEN_DOMCTL_unpausedomain, Some(id)) => {
            target_mut(hv, id)?.unpause_by_systemcontroller()?;
            Ok(Copyback::No)
        }
        (XEN_DOMCTL_max_vcpus, Some(id)) => {
            let max = op.u.get::<xen_domctl_max_vcpus>().max;
            max_vcpus(hv, ext, caller, id, max)?;
            Ok(Copyback::No)
        }
        (XEN_DOMCTL_max_mem, Some(id)) => {
            let kb = op.u.get::<xen_domctl_max_mem>().max_memkb;
            // Pages of 4 KiB; Xen keeps max_pages in an unsigned int (saturating).
            target_mut(hv, id)?.max_pages = (kb >> 2).min(u64::from(u32::MAX));
            Ok(Copyback::No)
        }
        (cmd, _) => {
            info!(
                "d{}: domctl {cmd} is not implemented by this hypervisor",
                caller.domid
            );
            Err(Errno::ENOSYS)
        }
    }
}

fn target_mut(hv: &mut Hypervisor, id: domid_t) -> XenResult<&mut Domain> {
    hv.domains.get_mut(id).ok_or(Errno::ESRCH)
}

/// `XEN_DOMCTL_getdomaininfo` (4.17): the domain with that id, or else the first
/// one above it; reserved ids are `-EINVAL`; a privileged or xenstore caller only.
fn getdomaininfo_op(
    hv: &mut Hypervisor,
    caller: Caller,
    op: &mut xen_domctl,
) -> XenResult<Copyback> {
    if hv.domains.get(op.domain).is_none() && op.domain >= DOMID_FIRST_RESERVED {
        return Err(Errno::EINVAL);
    }
    let d = hv
        .domains
        .first_at_or_above(op.domain)
        .ok_or(Errno::ESRCH)?;
    let allowed = hv
        .domains
        .get(caller.domid)
        .is_some_and(|c| c.is_privileged || c.is_xenstore());
    if !allowed {
        return Err(Errno::EPERM);
    }
    let info = getdomaininfo(d, hv.domains.caps().gpaddr_bits);
    op.domain = info.domain;
    op.u.set(&info);
    Ok(Copyback::Yes)
}

/// `XEN_DOMCTL_max_vcpus`: the value is fixed at createdomain; this creates the
/// vCPU structures `0..max` (idempotent). Not on the caller itself.
fn max_vcpus(
    hv: &mut Hypervisor,
    ext: &mut dyn ExtHandlers,
    caller: Caller,
    id: domid_t,
    max: u32,
) -> XenResult<()> {
    let d = target_mut(hv, id)?;
    if id == caller.domid || max != d.max_vcpus() {
        return Err(Errno::EINVAL);
    }
    for i in d.vcpus.len() as u32..max {
        ext.vcpu_create(d, i).map_err(|_| Errno::ENOMEM)?;
        d.vcpus.push(Vcpu::new(i));
    }
    Ok(())
}
