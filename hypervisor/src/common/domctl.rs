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
    xen_domctl, xen_domctl_cpu_policy, xen_domctl_createdomain, xen_domctl_getdomaininfo,
    xen_domctl_max_mem, xen_domctl_max_vcpus, XEN_DOMCTL_createdomain, XEN_DOMCTL_destroydomain,
    XEN_DOMCTL_get_cpu_policy, XEN_DOMCTL_getdomaininfo, XEN_DOMCTL_max_mem, XEN_DOMCTL_max_vcpus,
    XEN_DOMCTL_pausedomain, XEN_DOMCTL_set_cpu_policy, XEN_DOMCTL_unpausedomain,
    XEN_DOMINF_blocked, XEN_DOMINF_hap, XEN_DOMINF_hvm_guest, XEN_DOMINF_paused,
    XEN_DOMINF_running, XEN_DOMINF_shutdown, XEN_DOMINF_shutdownshift, XEN_DOMINF_xs_domain,
    XEN_DOMCTL_INTERFACE_VERSION, XEN_INVALID_MAX_VCPU_ID,
};
use xen_public_abi::xen::{domid_t, DOMID_FIRST_RESERVED};
use xen_public_abi::{Errno, XenResult};
use zerocopy::FromZeros;

use super::cpu_policy::buffer::{self, entries_to_guest};
use super::cpu_policy::{PolicyErrors, CPUID_MAX_SERIALISED_LEAVES, MSR_MAX_SERIALISED_ENTRIES};
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
    match domctl(hv, ext, caller, &mut op, guest) {
        Ok(Copyback::No) => 0,
        Ok(Copyback::Yes) => match copy_to_guest(guest, arg, &op) {
            Ok(()) => 0,
            Err(e) => e.as_ret(),
        },
        Ok(Copyback::Error(errno)) => match copy_to_guest(guest, arg, &op) {
            Ok(()) => errno.as_ret(),
            Err(e) => e.as_ret(),
        },
        Err(e) => e.as_ret(),
    }
}

/// Whether the (updated) `xen_domctl` goes back to the guest.
enum Copyback {
    No,
    Yes,
    /// The command failed with this errno but its OUT fields still go back
    /// (`XEN_DOMCTL_set_cpu_policy`'s `err_leaf`/`err_subleaf`/`err_msr`).
    Error(Errno),
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
    guest: &mut dyn GuestAccess,
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
        (XEN_DOMCTL_get_cpu_policy, Some(id)) => {
            let mut p: xen_domctl_cpu_policy = op.u.get();
            let d = target_mut(hv, id)?;
            if p.leaves == 0 {
                p.nr_leaves = CPUID_MAX_SERIALISED_LEAVES;
            } else {
                let leaves = d.cpu_policy.cpuid.serialise();
                entries_to_guest(guest, p.leaves, &leaves, &mut p.nr_leaves)?;
            }
            if p.msrs == 0 {
                p.nr_msrs = MSR_MAX_SERIALISED_ENTRIES;
            } else {
                let msrs = d.cpu_policy.msr.serialise();
                entries_to_guest(guest, p.msrs, &msrs, &mut p.nr_msrs)?;
            }
            op.u.set(&p);
            Ok(Copyback::Yes)
        }
        (XEN_DOMCTL_set_cpu_policy, Some(id)) => {
            if id == caller.domid {
                return Err(Errno::EINVAL);
            }
            let max = hv.domains.cpu_policies().hvm_max.clone();
            let d = target_mut(hv, id)?;
            // No changing once the domain has run.
            if d.creation_finished {
                return Err(Errno::EEXIST);
            }
            let mut p: xen_domctl_cpu_policy = op.u.get();
            let mut err = PolicyErrors::NONE;
            let r = buffer::update_from_guest_arrays(
                &mut d.cpu_policy,
                &max,
                guest,
                (p.leaves, p.nr_leaves),
                (p.msrs, p.nr_msrs),
                &mut err,
            );
            match r {
                Ok(()) => Ok(Copyback::No),
                Err(e) => {
                    p.err_leaf = err.leaf;
                    p.err_subleaf = err.subleaf;
                    p.err_msr = err.msr;
                    op.u.set(&p);
                    Ok(Copyback::Error(e))
                }
            }
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
    create_vcpus(d, ext)
}

/// Create the vCPU structures `0..max_vcpus` that do not exist yet, each through
/// [`ExtHandlers::vcpu_create`] (a failure is `-ENOMEM`; the vCPUs created
/// before it stay). The vCPUs start down. `XEN_DOMCTL_max_vcpus` uses this, and
/// so does the boot code for the domains it builds.
pub fn create_vcpus(d: &mut Domain, ext: &mut dyn ExtHandlers) -> XenResult<()> {
    for i in d.vcpus.len() as u32..d.max_vcpus() {
        ext.vcpu_create(d, i).map_err(|_| Errno::ENOMEM)?;
        d.vcpus.push(Vcpu::new(i));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::common::domain::HostCaps;
    use crate::common::guest_access::fake::FakeMemory;
    use crate::common::guest_access::GuestMemory;
    use crate::common::hypercall::{do_hypercall, NoExt};
    use crate::common::test_support::*;
    use alloc::vec::Vec;
    use xen_public_abi::domctl::{XEN_DOMCTL_CDF_hvm, XEN_DOMCTL_CDF_xs_domain};
    use xen_public_abi::xen::{__HYPERVISOR_domctl, DOMID_SELF};
    use zerocopy::IntoBytes;

    const ESRCH: i64 = -3;
    const EPERM: i64 = -1;
    const EINVAL: i64 = -22;
    const EACCES: i64 = -13;
    const ENOSYS: i64 = -38;
    const EFAULT: i64 = -14;
    const NONEXISTENT: domid_t = 30000;

    fn info(env: &mut Env, caller: domid_t, dom: domid_t) -> (i64, xen_domctl_getdomaininfo) {
        let (rc, op) = env.domctl(caller, &domctl_op(XEN_DOMCTL_getdomaininfo, dom));
        (rc, op.u.get())
    }

    fn max_vcpus_op(dom: domid_t, max: u32) -> xen_domctl {
        let mut op = domctl_op(XEN_DOMCTL_max_vcpus, dom);
        op.u.set(&xen_domctl_max_vcpus { max });
        op
    }

    fn max_mem_op(dom: domid_t, kb: u64) -> xen_domctl {
        let mut op = domctl_op(XEN_DOMCTL_max_mem, dom);
        op.u.set(&xen_domctl_max_mem { max_memkb: kb });
        op
    }

    /// Oracle A.4: a wrong interface version is -EACCES for any command, and
    /// does not consume a domain id.
    #[test]
    fn interface_version() {
        let mut env = Env::new();
        for v in [0x14, 0x16, 0] {
            let mut op = createdomain_op(&baseline(), 0);
            op.interface_version = v;
            assert_eq!(env.domctl(0, &op).0, EACCES, "version {v:#x}");
            let mut op = domctl_op(XEN_DOMCTL_getdomaininfo, 0);
            op.interface_version = v;
            assert_eq!(env.domctl(0, &op).0, EACCES);
            // Even from an unprivileged caller or for a missing domain.
            let mut op = domctl_op(XEN_DOMCTL_pausedomain, NONEXISTENT);
            op.interface_version = v;
            assert_eq!(env.domctl(0, &op).0, EACCES);
        }
        assert_eq!(env.create(&baseline(), 0), (0, 1), "no id consumed");
    }

    /// Oracle A via the hypercall: accepted, refused, and the id copied back.
    #[test]
    fn createdomain_through_the_hypercall() {
        let mut env = Env::new();
        let frames = env.frames.outstanding();
        assert_eq!(env.create(&baseline(), 0), (0, 1));
        let mut bad = baseline();
        bad.flags |= 1 << 12;
        // A refused create leaves `domain` as it was (no copyback) and holds nothing.
        assert_eq!(env.create(&bad, 0), (EINVAL, 0));
        let mut nohap = baseline();
        nohap.flags = XEN_DOMCTL_CDF_hvm;
        assert_eq!(env.create(&nohap, 0).0, -95);
        let mut pool = baseline();
        pool.cpupool_id = 5;
        assert_eq!(env.create(&pool, 0).0, ESRCH);
        assert_eq!(env.frames.outstanding(), frames + 1);
        assert_eq!(env.hv.domains.len(), 2);
        // The three refusals consumed ids 2, 3, 4.
        assert_eq!(env.create(&baseline(), 0), (0, 5));
        assert_eq!(env.create(&baseline(), 5).0, -17);
    }

    /// A domU may not use domctl: -EPERM, after the lookup (4.17 order).
    #[test]
    fn privilege() {
        let mut env = Env::new();
        let (_, u) = env.create(&baseline(), 0);
        let (_, v) = env.create(&baseline(), 0);
        assert_eq!(env.domctl(u, &createdomain_op(&baseline(), 0)).0, EPERM);
        for cmd in [
            XEN_DOMCTL_pausedomain,
            XEN_DOMCTL_unpausedomain,
            XEN_DOMCTL_destroydomain,
            9999,
        ] {
            assert_eq!(env.simple(u, cmd, v), EPERM, "cmd {cmd}");
            assert_eq!(env.simple(u, cmd, 0), EPERM, "cmd {cmd} on dom0");
            assert_eq!(
                env.simple(u, cmd, NONEXISTENT),
                ESRCH,
                "cmd {cmd}: lookup first"
            );
        }
        assert_eq!(env.domctl(u, &max_vcpus_op(v, 1)).0, EPERM);
        assert_eq!(env.domctl(u, &max_mem_op(v, 1024)).0, EPERM);
        assert_eq!(info(&mut env, u, v).0, EPERM);
        assert_eq!(info(&mut env, u, NONEXISTENT).0, ESRCH);
        // Nothing changed, and the refused create consumed no id.
        assert_eq!(env.hv.domains.get(v).unwrap().controller_pause_count, 1);
        assert_eq!(env.create(&baseline(), 0), (0, 3));
    }

    /// getdomaininfo is also open to a xenstore domain (XSM_XS_PRIV).
    #[test]
    fn xenstore_domain_may_getdomaininfo() {
        let mut env = Env::new();
        let mut xs = baseline();
        xs.flags |= XEN_DOMCTL_CDF_xs_domain;
        let (_, x) = env.create(&xs, 0);
        let (rc, i) = info(&mut env, x, 0);
        assert_eq!((rc, i.domain), (0, 0));
        assert_eq!(env.simple(x, XEN_DOMCTL_pausedomain, 0), EPERM);
        assert_eq!(
            info(&mut env, 0, x).1.flags & XEN_DOMINF_xs_domain,
            XEN_DOMINF_xs_domain
        );
    }

    /// Oracle B, in order: create → getdomaininfo → pause ×2 → unpause ×4 →
    /// max_vcpus → max_mem → unknown commands → dom0 on itself → destroy →
    /// the id is free again.
    #[test]
    fn lifecycle() {
        let mut env = Env::new();
        let frames = env.frames.outstanding();
        let (rc, u) = env.create(&baseline(), 0);
        assert_eq!(rc, 0);

        let (rc, i) = info(&mut env, 0, u);
        assert_eq!(rc, 0);
        assert_eq!(i.domain, u);
        assert_eq!(i.flags, 0xffff_010a, "paused|hvm|hap, shutdown code none");
        assert_eq!((i.tot_pages, i.max_pages, i.nr_online_vcpus), (0, 0, 0));
        assert_eq!(i.max_vcpu_id, XEN_INVALID_MAX_VCPU_ID);
        assert_eq!(
            (i.cpupool, i.gpaddr_bits, i.arch_config.emulation_flags),
            (0, 40, 0x1)
        );

        assert_eq!(env.simple(0, XEN_DOMCTL_pausedomain, u), 0);
        assert_eq!(env.simple(0, XEN_DOMCTL_pausedomain, u), 0);
        assert_eq!(info(&mut env, 0, u).1.flags, 0xffff_010a);
        let unpauses: Vec<i64> = (0..4)
            .map(|_| env.simple(0, XEN_DOMCTL_unpausedomain, u))
            .collect();
        assert_eq!(unpauses, [0, 0, 0, EINVAL], "creation counts as one pause");
        assert_eq!(info(&mut env, 0, u).1.flags, 0xffff_0102);
        assert_eq!(env.simple(0, XEN_DOMCTL_pausedomain, u), 0);

        assert_eq!(env.domctl(0, &max_vcpus_op(u, 2)).0, EINVAL);
        assert_eq!(env.domctl(0, &max_vcpus_op(u, 0)).0, EINVAL);
        assert_eq!(env.domctl(0, &max_vcpus_op(u, 1)).0, 0);
        assert_eq!(env.domctl(0, &max_vcpus_op(u, 1)).0, 0);
        let (_, i) = info(&mut env, 0, u);
        assert_eq!((i.nr_online_vcpus, i.max_vcpu_id), (0, 0));

        assert_eq!(env.domctl(0, &max_mem_op(u, 262_144)).0, 0);
        assert_eq!(info(&mut env, 0, u).1.max_pages, 65536);
        assert_eq!(env.domctl(0, &max_mem_op(u, u64::MAX)).0, 0);
        assert_eq!(info(&mut env, 0, u).1.max_pages, 0xffff_ffff, "saturates");
        assert_eq!(env.domctl(0, &max_mem_op(u, 0)).0, 0);
        assert_eq!(info(&mut env, 0, u).1.max_pages, 0);

        assert_eq!(env.simple(0, 9999, u), ENOSYS);
        assert_eq!(env.simple(0, 0, u), ENOSYS);
        assert_eq!(env.simple(0, 9999, NONEXISTENT), ESRCH);

        assert_eq!(env.simple(0, XEN_DOMCTL_unpausedomain, 0), EINVAL);
        assert_eq!(env.simple(0, XEN_DOMCTL_pausedomain, 0), EINVAL);
        assert_eq!(env.simple(0, XEN_DOMCTL_destroydomain, 0), EINVAL);
        assert_eq!(
            env.domctl(0, &max_vcpus_op(0, 2)).0,
            EINVAL,
            "not on itself"
        );
        assert!(
            env.hv.domains.get(0).unwrap().is_runnable(),
            "dom0 keeps running"
        );
        assert_eq!(env.simple(0, XEN_DOMCTL_pausedomain, DOMID_SELF), ESRCH);
        assert_eq!(env.simple(0, XEN_DOMCTL_unpausedomain, DOMID_SELF), ESRCH);
        assert_eq!(info(&mut env, 0, DOMID_SELF).0, EINVAL);

        assert_eq!(env.simple(0, XEN_DOMCTL_destroydomain, u), 0);
        assert_eq!(info(&mut env, 0, u).0, ESRCH, "it was the highest domain");
        assert_eq!(env.simple(0, XEN_DOMCTL_destroydomain, u), ESRCH);
        assert_eq!(env.simple(0, XEN_DOMCTL_pausedomain, u), ESRCH);
        assert_eq!(env.frames.outstanding(), frames, "every frame returned");
        for cmd in [
            XEN_DOMCTL_pausedomain,
            XEN_DOMCTL_unpausedomain,
            XEN_DOMCTL_destroydomain,
        ] {
            assert_eq!(env.simple(0, cmd, NONEXISTENT), ESRCH);
        }
        assert_eq!(info(&mut env, 0, NONEXISTENT).0, ESRCH);
        assert_eq!(
            env.create(&baseline(), u),
            (0, u),
            "the id is reusable at once"
        );
    }

    #[test]
    fn getdomaininfo_views() {
        let mut env = Env::new();
        env.hv.domains.get_mut(0).unwrap().max_pages = u64::from(u32::MAX);
        let (_, i) = info(&mut env, 0, 0);
        assert_eq!(i.flags, 0xffff_0122, "dom0: running|hvm|hap");
        assert_eq!((i.nr_online_vcpus, i.max_vcpu_id), (1, 1));
        assert_eq!(i.arch_config.emulation_flags, 0x411);
        assert_eq!(i.max_pages, 0xffff_ffff);

        let mut pv = baseline();
        pv.flags = 0;
        pv.arch.emulation_flags = 0;
        let (_, p) = env.create(&pv, 0);
        let (_, i) = info(&mut env, 0, p);
        assert_eq!(
            (i.flags, i.gpaddr_bits),
            (0xffff_0008, 40),
            "PV: paused only"
        );

        // A missing id below an existing domain returns the next one (4.17).
        let (_, hi) = env.create(&baseline(), 7);
        let (rc, op) = env.domctl(0, &domctl_op(XEN_DOMCTL_getdomaininfo, 3));
        assert_eq!(
            (rc, op.domain, op.u.get::<xen_domctl_getdomaininfo>().domain),
            (0, hi, hi)
        );
        assert_eq!(info(&mut env, 0, hi + 1).0, ESRCH);
        assert_eq!(info(&mut env, 0, 0x7fef).0, ESRCH);

        // Handle and ssidref: the handle as given, ssidref 0 (no XSM).
        let mut h = baseline();
        h.handle = *b"0123456789abcdef";
        h.ssidref = 42;
        let (_, hd) = env.create(&h, 0);
        let (_, i) = info(&mut env, 0, hd);
        assert_eq!((i.handle, i.ssidref), (*b"0123456789abcdef", 0));
    }

    /// blocked only if every online vCPU is, running if any is, neither without
    /// online vCPUs; cpu_time sums the vCPUs; shutdown bit and code.
    #[test]
    fn getdomaininfo_vcpu_and_shutdown_flags() {
        let mut env = Env::new();
        let (_, u) = env.create(&baseline(), 0);
        let mut two = baseline();
        two.max_vcpus = 2;
        let (_, w) = env.create(&two, 0);
        assert_eq!(env.domctl(0, &max_vcpus_op(w, 2)).0, 0);
        {
            let d = env.hv.domains.get_mut(w).unwrap();
            d.unpause_by_systemcontroller().unwrap();
            d.vcpus[0].online = true;
            d.vcpus[0].blocked = true;
            d.vcpus[0].run_time_ns = 5;
            d.vcpus[1].run_time_ns = 7;
        }
        let (_, i) = info(&mut env, 0, w);
        assert_eq!(i.flags & 0xff, XEN_DOMINF_hvm_guest | XEN_DOMINF_blocked);
        assert_eq!((i.cpu_time, i.nr_online_vcpus, i.max_vcpu_id), (12, 1, 1));
        {
            let d = env.hv.domains.get_mut(w).unwrap();
            d.vcpus[1].online = true;
            d.vcpus[1].running = true;
        }
        let (_, i) = info(&mut env, 0, w);
        assert_eq!(i.flags & 0xff, XEN_DOMINF_hvm_guest | XEN_DOMINF_running);
        env.hv.domains.get_mut(u).unwrap().shutdown(3);
        let (_, i) = info(&mut env, 0, u);
        assert_eq!(
            i.flags,
            (3 << 16) | 0x10e,
            "shutdown|paused|hvm|hap, code 3"
        );
    }

    /// Every domctl takes a pointer: a bad one is -EFAULT and changes nothing.
    #[test]
    fn bad_pointers() {
        let mut env = Env::new();
        for gva in [BAD_GVA, HOLE_GVA, MEM_SIZE as u64 - 8, u64::MAX] {
            assert_eq!(
                env.hypercall(0, __HYPERVISOR_domctl, [gva, 0, 0, 0, 0]),
                EFAULT
            );
        }
        assert_eq!(env.hv.domains.len(), 1);
    }

    /// Guest memory that can be read but not written: the copyback fails.
    struct ReadOnly(FakeMemory);
    impl GuestAccess for ReadOnly {
        fn copy_from_guest(&mut self, gva: u64, buf: &mut [u8]) -> XenResult<()> {
            self.0.copy_from_guest(gva, buf)
        }
        fn copy_to_guest(&mut self, _gva: u64, _buf: &[u8]) -> XenResult<()> {
            Err(Errno::EFAULT)
        }
    }

    /// Xen writes the result back after doing the work: a failed copyback is
    /// -EFAULT, but the domain exists (the toolstack finds it by handle).
    #[test]
    fn failed_copyback() {
        let mut env = Env::new();
        env.put(ARG_GVA, &createdomain_op(&baseline(), 0));
        let mut ro = ReadOnly(core::mem::replace(&mut env.mem, FakeMemory::new(0)));
        let caller = Caller { domid: 0, vcpu: 0 };
        let rc = do_hypercall(
            &mut env.hv,
            &mut NoExt,
            caller,
            36,
            [ARG_GVA, 0, 0, 0, 0],
            &mut ro,
        );
        assert_eq!(rc, EFAULT);
        assert!(env.hv.domains.get(1).is_some());
        ro.0.write_gpa(ARG_GVA, domctl_op(XEN_DOMCTL_getdomaininfo, 1).as_bytes())
            .unwrap();
        let rc = do_hypercall(
            &mut env.hv,
            &mut NoExt,
            caller,
            36,
            [ARG_GVA, 0, 0, 0, 0],
            &mut ro,
        );
        assert_eq!(rc, EFAULT);
        // Commands without copyback do not write.
        ro.0.write_gpa(ARG_GVA, domctl_op(XEN_DOMCTL_unpausedomain, 1).as_bytes())
            .unwrap();
        let rc = do_hypercall(
            &mut env.hv,
            &mut NoExt,
            caller,
            36,
            [ARG_GVA, 0, 0, 0, 0],
            &mut ro,
        );
        assert_eq!(rc, 0);
    }

    /// The external hooks: destroy tells the other mechanisms first; a vCPU
    /// the backend cannot create is -ENOMEM.
    #[test]
    fn ext_hooks() {
        #[derive(Default)]
        struct Hooks {
            destroyed: Vec<domid_t>,
            fail_vcpu: Option<u32>,
        }
        impl ExtHandlers for Hooks {
            fn domain_destroy(
                &mut self,
                domains: &mut crate::common::domain::DomainTable,
                id: domid_t,
            ) {
                assert!(domains.get(id).is_some(), "still in the table");
                self.destroyed.push(id);
            }
            fn vcpu_create(&mut self, _d: &mut Domain, vcpu: u32) -> XenResult<()> {
                if Some(vcpu) == self.fail_vcpu {
                    Err(Errno::ENOMEM)
                } else {
                    Ok(())
                }
            }
        }
        let mut env = Env::new();
        let mut four = baseline();
        four.max_vcpus = 4;
        let (_, u) = env.create(&four, 0);
        let mut hooks = Hooks {
            fail_vcpu: Some(2),
            ..Hooks::default()
        };
        let caller = Caller { domid: 0, vcpu: 0 };
        env.put(ARG_GVA, &max_vcpus_op(u, 4));
        let rc = do_hypercall(
            &mut env.hv,
            &mut hooks,
            caller,
            36,
            [ARG_GVA, 0, 0, 0, 0],
            &mut env.mem,
        );
        assert_eq!(rc, -12);
        assert_eq!(
            env.hv.domains.get(u).unwrap().vcpus.len(),
            2,
            "vCPUs 0 and 1 stay"
        );
        hooks.fail_vcpu = None;
        let rc = do_hypercall(
            &mut env.hv,
            &mut hooks,
            caller,
            36,
            [ARG_GVA, 0, 0, 0, 0],
            &mut env.mem,
        );
        assert_eq!(rc, 0);
        assert_eq!(env.hv.domains.get(u).unwrap().vcpus.len(), 4);
        env.put(ARG_GVA, &domctl_op(XEN_DOMCTL_destroydomain, u));
        let rc = do_hypercall(
            &mut env.hv,
            &mut hooks,
            caller,
            36,
            [ARG_GVA, 0, 0, 0, 0],
            &mut env.mem,
        );
        assert_eq!((rc, hooks.destroyed.as_slice()), (0, [u].as_slice()));
    }

    #[test]
    fn caps_reach_getdomaininfo() {
        let mut caps = HostCaps::THIS_HYPERVISOR;
        caps.gpaddr_bits = 48;
        let mut env = Env::with_caps(caps);
        assert_eq!(info(&mut env, 0, 0).1.gpaddr_bits, 48);
    }
}
