//! `__HYPERVISOR_sysctl`: system-wide control operations (privileged).
//!
//! Mirrors Xen 4.17's `do_sysctl()` (xen/common/sysctl.c) order of checks:
//! copy the `xen_sysctl` in (`-EFAULT`), `interface_version` must be 0x15
//! (`-EACCES`), the dummy XSM policy admits only a privileged caller (`-EPERM`),
//! then the command (`-ENOSYS` if unknown). Commands here:
//! `XEN_SYSCTL_get_cpu_policy` (xen/arch/x86/sysctl.c).

// Xen's names in match patterns.
#![allow(non_upper_case_globals)]

use xen_public_abi::sysctl::{
    xen_sysctl, xen_sysctl_cpu_policy, XEN_SYSCTL_cpu_policy_host,
    XEN_SYSCTL_cpu_policy_hvm_default, XEN_SYSCTL_cpu_policy_hvm_max, XEN_SYSCTL_cpu_policy_raw,
    XEN_SYSCTL_get_cpu_policy, XEN_SYSCTL_INTERFACE_VERSION,
};
use xen_public_abi::{Errno, XenResult};

use super::cpu_policy::buffer::entries_to_guest;
use super::cpu_policy::{CpuPolicy, CPUID_MAX_SERIALISED_LEAVES, MSR_MAX_SERIALISED_ENTRIES};
use super::guest_access::{copy_from_guest, copy_to_guest, GuestAccess};
use super::hypercall::{Caller, Hypervisor};

/// Offset of `u` in `struct xen_sysctl`.
const U_OFFSET: u64 = 8;

/// `__HYPERVISOR_sysctl(xen_sysctl_t *u_sysctl)`.
pub fn do_sysctl(
    hv: &mut Hypervisor,
    caller: Caller,
    arg: u64,
    guest: &mut dyn GuestAccess,
) -> i64 {
    let op: xen_sysctl = match copy_from_guest(guest, arg) {
        Ok(op) => op,
        Err(e) => return e.as_ret(),
    };
    match sysctl(hv, caller, arg, op, guest) {
        Ok(()) => 0,
        Err(e) => e.as_ret(),
    }
}

fn sysctl(
    hv: &mut Hypervisor,
    caller: Caller,
    arg: u64,
    op: xen_sysctl,
    guest: &mut dyn GuestAccess,
) -> XenResult<()> {
    if op.interface_version != XEN_SYSCTL_INTERFACE_VERSION {
        return Err(Errno::EACCES);
    }
    let privileged = hv
        .domains
        .get(caller.domid)
        .is_some_and(|d| d.is_privileged);
    if !privileged {
        return Err(Errno::EPERM);
    }
    match op.cmd {
        XEN_SYSCTL_get_cpu_policy => get_cpu_policy(hv, arg, op.u.get(), guest),
        cmd => {
            log::debug!(
                "d{}: sysctl {cmd} is not implemented by this hypervisor",
                caller.domid
            );
            Err(Errno::ENOSYS)
        }
    }
}

/// `XEN_SYSCTL_get_cpu_policy`: `_rsvd` must be 0 and the index valid
/// (`-EINVAL`); the PV policies are `-EOPNOTSUPP` (no PV guests run here, as
/// 4.17 built without `CONFIG_PV`). A NULL handle asks for the maximum count.
/// `nr_leaves` is copied back before the MSRs are processed, as in 4.17.
fn get_cpu_policy(
    hv: &Hypervisor,
    arg: u64,
    mut req: xen_sysctl_cpu_policy,
    guest: &mut dyn GuestAccess,
) -> XenResult<()> {
    if req._rsvd != 0 || req.index > XEN_SYSCTL_cpu_policy_hvm_default {
        return Err(Errno::EINVAL);
    }
    let sys = hv.domains.cpu_policies();
    let policy: &CpuPolicy = match req.index {
        XEN_SYSCTL_cpu_policy_raw => &sys.raw,
        XEN_SYSCTL_cpu_policy_host => &sys.host,
        XEN_SYSCTL_cpu_policy_hvm_max => &sys.hvm_max,
        XEN_SYSCTL_cpu_policy_hvm_default => &sys.hvm_default,
        _ => return Err(Errno::EOPNOTSUPP),
    };
    let base = arg + U_OFFSET;
    if req.leaves == 0 {
        req.nr_leaves = CPUID_MAX_SERIALISED_LEAVES;
    } else {
        entries_to_guest(
            guest,
            req.leaves,
            &policy.cpuid.serialise(),
            &mut req.nr_leaves,
        )?;
    }
    copy_to_guest(guest, base + 4, &req.nr_leaves)?;
    if req.msrs == 0 {
        req.nr_msrs = MSR_MAX_SERIALISED_ENTRIES;
    } else {
        entries_to_guest(guest, req.msrs, &policy.msr.serialise(), &mut req.nr_msrs)?;
    }
    copy_to_guest(guest, base + 8, &req.nr_msrs)
}
