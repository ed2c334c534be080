//! `__HYPERVISOR_sysctl`: the toolstack's system-wide queries (`xl list`,
//! `xl info`).
//!
//! Mirrors Xen 4.17's `do_sysctl()` (`xen/common/sysctl.c`) with the dummy XSM
//! policy, in Xen's order: copy in (`-EFAULT`) → `interface_version` 0x15
//! (`-EACCES`) → a privileged caller (`-EPERM`, `XSM_PRIV`) → the command
//! (`-ENOSYS` if unknown) → the whole `xen_sysctl` copied back when the command
//! succeeded (`-EFAULT` if that fails).
//!
//! Commands: `XEN_SYSCTL_physinfo` (CPUs, frames; `free_pages` is the
//! hypervisor's free-frame count, which the `xl` scenario checks returns to its
//! value after domains are destroyed), `XEN_SYSCTL_getdomaininfolist` (the
//! `getdomaininfo` of each domain from `first_domain` up, at most
//! `max_domains`), `XEN_SYSCTL_sched_id` (credit2), `XEN_SYSCTL_get_cpu_policy`
//! (xen/arch/x86/sysctl.c), `XEN_SYSCTL_debug_keys` (keys 'p' / 'P': the per-vCPU
//! exit and injection counters of `perfc.rs` printed / reset; other keys are
//! ignored, as Xen ignores keys without a handler; more than
//! [`MAX_DEBUG_KEYS`] keys in one call is `-EINVAL`, where Xen has no limit).

// Xen's names in match patterns.
#![allow(non_upper_case_globals)]

use xen_public_abi::domctl::{xen_domctl_getdomaininfo, XEN_SCHEDULER_CREDIT2};
use xen_public_abi::sysctl::{
    xen_sysctl, xen_sysctl_cpu_policy, xen_sysctl_getdomaininfolist, xen_sysctl_physinfo,
    XEN_SYSCTL_PHYSCAP_gnttab_v1, XEN_SYSCTL_PHYSCAP_gnttab_v2, XEN_SYSCTL_PHYSCAP_hap,
    XEN_SYSCTL_PHYSCAP_hvm, XEN_SYSCTL_PHYSCAP_pv, XEN_SYSCTL_cpu_policy_host,
    XEN_SYSCTL_cpu_policy_hvm_default, XEN_SYSCTL_cpu_policy_hvm_max, XEN_SYSCTL_cpu_policy_raw,
    XEN_SYSCTL_debug_keys, XEN_SYSCTL_get_cpu_policy, XEN_SYSCTL_getdomaininfolist,
    XEN_SYSCTL_physinfo, XEN_SYSCTL_sched_id, XEN_SYSCTL_INTERFACE_VERSION,
};
use xen_public_abi::{Errno, XenResult};
use zerocopy::{FromZeros, IntoBytes};

use super::cpu_policy::buffer::entries_to_guest;
use super::cpu_policy::{CpuPolicy, CPUID_MAX_SERIALISED_LEAVES, MSR_MAX_SERIALISED_ENTRIES};
use super::domctl::getdomaininfo;
use super::guest_access::{copy_from_guest, copy_to_guest, GuestAccess};
use super::hypercall::{Caller, ExtHandlers, Hypervisor};

/// The most keys one `XEN_SYSCTL_debug_keys` handles (a bound on a
/// guest-controlled loop; Xen loops over any `nr_keys`).
pub const MAX_DEBUG_KEYS: u32 = 256;

/// Offset of `u` in `struct xen_sysctl`.
const U_OFFSET: u64 = 8;

/// `__HYPERVISOR_sysctl(xen_sysctl_t *u_sysctl)`.
pub fn do_sysctl(
    hv: &mut Hypervisor,
    ext: &mut dyn ExtHandlers,
    caller: Caller,
    arg: u64,
    guest: &mut dyn GuestAccess,
) -> i64 {
    let mut op: xen_sysctl = match copy_from_guest(guest, arg) {
        Ok(op) => op,
        Err(e) => return e.as_ret(),
    };
    match sysctl(hv, ext, caller, arg, &mut op, guest) {
        Ok(()) => match copy_to_guest(guest, arg, &op) {
            Ok(()) => 0,
            Err(e) => e.as_ret(),
        },
        Err(e) => e.as_ret(),
    }
}

fn sysctl(
    hv: &mut Hypervisor,
    ext: &mut dyn ExtHandlers,
    caller: Caller,
    arg: u64,
    op: &mut xen_sysctl,
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
        XEN_SYSCTL_get_cpu_policy => {
            let mut req: xen_sysctl_cpu_policy = op.u.get();
            get_cpu_policy(hv, arg, &mut req, guest)?;
            op.u.set(&req);
            Ok(())
        }
        XEN_SYSCTL_physinfo => {
            op.u.set(&physinfo(hv, ext));
            Ok(())
        }
        XEN_SYSCTL_getdomaininfolist => {
            let mut l: xen_sysctl_getdomaininfolist = op.u.get();
            let bits = hv.domains.caps().gpaddr_bits;
            let size = core::mem::size_of::<xen_domctl_getdomaininfo>() as u64;
            let mut n = 0u32;
            let ids: alloc::vec::Vec<_> = hv
                .domains
                .ids()
                .filter(|&id| id >= l.first_domain)
                .collect();
            // Bounded by the number of domains.
            for id in ids {
                if n == l.max_domains {
                    break;
                }
                let Some(d) = hv.domains.get(id) else {
                    continue;
                };
                let info = getdomaininfo(d, bits);
                let at = l.buffer.wrapping_add(u64::from(n) * size);
                guest.copy_to_guest(at, info.as_bytes())?;
                n += 1;
            }
            l.num_domains = n;
            op.u.set(&l);
            Ok(())
        }
        XEN_SYSCTL_debug_keys => {
            // `struct xen_sysctl_debug_keys { XEN_GUEST_HANDLE_64(const_char)
            // keys; uint32_t nr_keys; }`.
            let (keys, nr) = (op.u.raw[0], op.u.raw[1] as u32);
            if nr > MAX_DEBUG_KEYS {
                return Err(Errno::EINVAL);
            }
            for i in 0..u64::from(nr) {
                let mut c = [0u8; 1];
                guest.copy_from_guest(keys.wrapping_add(i), &mut c)?;
                match c[0] {
                    b'p' => super::perfc::print_all(&hv.domains),
                    b'P' => super::perfc::reset_all(&mut hv.domains),
                    _ => {}
                }
            }
            Ok(())
        }
        XEN_SYSCTL_sched_id => {
            // `struct xen_sysctl_sched_id { uint32_t sched_id; }`.
            op.u.raw[0] = u64::from(XEN_SCHEDULER_CREDIT2);
            Ok(())
        }
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
    req: &mut xen_sysctl_cpu_policy,
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

/// `XEN_SYSCTL_physinfo`'s answer.
fn physinfo(hv: &Hypervisor, ext: &dyn ExtHandlers) -> xen_sysctl_physinfo {
    let f = ext.host_facts();
    let mut p = xen_sysctl_physinfo::new_zeroed();
    p.threads_per_core = 1;
    p.cores_per_socket = f.nr_cpus.max(1);
    p.nr_cpus = f.nr_cpus.max(1);
    p.max_cpu_id = p.nr_cpus - 1;
    p.nr_nodes = 1;
    p.max_node_id = 0;
    p.cpu_khz = f.cpu_khz;
    p.total_pages = f.total_pages;
    p.free_pages = f.free_pages;
    p.max_mfn = f.max_mfn;
    let caps = hv.domains.caps();
    let mut c = XEN_SYSCTL_PHYSCAP_gnttab_v1 | XEN_SYSCTL_PHYSCAP_gnttab_v2;
    if caps.hvm {
        c |= XEN_SYSCTL_PHYSCAP_hvm;
    }
    if caps.pv {
        c |= XEN_SYSCTL_PHYSCAP_pv;
    }
    if caps.hap {
        c |= XEN_SYSCTL_PHYSCAP_hap;
    }
    p.capabilities = c;
    p
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::common::hypercall::{do_hypercall, HostFacts};
    use crate::common::test_support::*;
    use xen_public_abi::domctl::XEN_DOMCTL_destroydomain;
    use xen_public_abi::xen::{__HYPERVISOR_sysctl, domid_t};

    const EPERM: i64 = -1;
    const EACCES: i64 = -13;
    const EFAULT: i64 = -14;
    const ENOSYS: i64 = -38;
    const BUF: u64 = 0x3000;

    struct Facts(HostFacts);
    impl ExtHandlers for Facts {
        fn host_facts(&self) -> HostFacts {
            self.0
        }
    }

    fn facts() -> Facts {
        Facts(HostFacts {
            nr_cpus: 2,
            cpu_khz: 3_000_000,
            total_pages: 0x8000,
            free_pages: 0x6000,
            max_mfn: 0x7fff,
            cpuid1_eax: 0,
        })
    }

    fn op(cmd: u32) -> xen_sysctl {
        let mut o = xen_sysctl::new_zeroed();
        o.cmd = cmd;
        o.interface_version = XEN_SYSCTL_INTERFACE_VERSION;
        o
    }

    fn call(env: &mut Env, caller: domid_t, o: &xen_sysctl) -> (i64, xen_sysctl) {
        env.put(ARG_GVA, o);
        let rc = do_hypercall(
            &mut env.hv,
            &mut facts(),
            Caller {
                domid: caller,
                vcpu: 0,
            },
            u64::from(__HYPERVISOR_sysctl),
            [ARG_GVA, 0, 0, 0, 0],
            &mut env.mem,
        );
        (rc, env.get(ARG_GVA))
    }

    fn list(first: domid_t, max: u32, buffer: u64) -> xen_sysctl {
        let mut o = op(XEN_SYSCTL_getdomaininfolist);
        o.u.set(&xen_sysctl_getdomaininfolist {
            first_domain: first,
            _implicit0: [0; 2],
            max_domains: max,
            buffer,
            num_domains: 0xdead,
            _implicit1: [0; 4],
        });
        o
    }

    #[test]
    fn checks_in_xen_order() {
        let mut env = Env::new();
        let (_, u) = env.create(&baseline(), 0);
        let mut bad = op(XEN_SYSCTL_physinfo);
        bad.interface_version = 0x14;
        assert_eq!(call(&mut env, 0, &bad).0, EACCES);
        assert_eq!(
            call(&mut env, u, &bad).0,
            EACCES,
            "version before privilege"
        );
        assert_eq!(call(&mut env, u, &op(XEN_SYSCTL_physinfo)).0, EPERM);
        assert_eq!(call(&mut env, 0, &op(999)).0, ENOSYS);
        assert_eq!(
            env.hypercall(0, __HYPERVISOR_sysctl, [BAD_GVA, 0, 0, 0, 0]),
            EFAULT
        );
    }

    fn debug_keys(keys: u64, nr: u32) -> xen_sysctl {
        let mut o = op(XEN_SYSCTL_debug_keys);
        o.u.raw[0] = keys;
        o.u.raw[1] = u64::from(nr);
        o
    }

    #[test]
    fn debug_keys_reset_the_perf_counters() {
        let mut env = Env::new();
        let (_, u) = env.create(&baseline(), 0);
        let exits = |env: &Env, d: domid_t| env.hv.domains.get(d).unwrap().vcpus[0].perfc.exits;
        for d in [0, u] {
            let dom = env.hv.domains.get_mut(d).unwrap();
            if dom.vcpus.is_empty() {
                dom.vcpus.push(crate::common::domain::Vcpu::new(0));
            }
            let v = &mut dom.vcpus[0];
            v.perfc.note_exit(crate::common::perfc::ExitKind::Hypercall);
        }
        env.put(BUF, b"xpq");
        assert_eq!(call(&mut env, 0, &debug_keys(BUF, 3)).0, 0, "p prints");
        assert_eq!((exits(&env, 0), exits(&env, u)), (1, 1));
        assert_eq!(call(&mut env, u, &debug_keys(BUF, 3)).0, EPERM);
        env.put(BUF, b"P");
        assert_eq!(call(&mut env, 0, &debug_keys(BUF, 1)).0, 0);
        assert_eq!((exits(&env, 0), exits(&env, u)), (0, 0), "P resets");
        assert_eq!(call(&mut env, 0, &debug_keys(BAD_GVA, 1)).0, EFAULT);
        assert_eq!(call(&mut env, 0, &debug_keys(BUF, 0)).0, 0);
        assert_eq!(
            call(&mut env, 0, &debug_keys(BUF, MAX_DEBUG_KEYS + 1)).0,
            -22,
            "-EINVAL past the bound"
        );
    }

    #[test]
    fn physinfo_reports_the_machine() {
        let mut env = Env::new();
        let (rc, o) = call(&mut env, 0, &op(XEN_SYSCTL_physinfo));
        assert_eq!(rc, 0);
        let p: xen_sysctl_physinfo = o.u.get();
        assert_eq!((p.nr_cpus, p.max_cpu_id, p.cpu_khz), (2, 1, 3_000_000));
        assert_eq!(
            (p.total_pages, p.free_pages, p.max_mfn),
            (0x8000, 0x6000, 0x7fff)
        );
        assert_eq!(p.capabilities, 0x30b, "hvm|pv|hap|gnttab_v1|gnttab_v2");
        let (rc, o) = call(&mut env, 0, &op(XEN_SYSCTL_sched_id));
        assert_eq!((rc, o.u.raw[0] as u32), (0, XEN_SCHEDULER_CREDIT2));
    }

    #[test]
    fn getdomaininfolist() {
        let mut env = Env::new();
        let (_, a) = env.create(&baseline(), 0);
        let (_, b) = env.create(&baseline(), 5);
        let size = core::mem::size_of::<xen_domctl_getdomaininfo>() as u64;
        let (rc, o) = call(&mut env, 0, &list(0, 10, BUF));
        assert_eq!(rc, 0);
        assert_eq!(o.u.get::<xen_sysctl_getdomaininfolist>().num_domains, 3);
        let ids: alloc::vec::Vec<domid_t> = (0..3)
            .map(|i| env.get::<xen_domctl_getdomaininfo>(BUF + i * size).domain)
            .collect();
        assert_eq!(ids, [0, a, b]);
        let second: xen_domctl_getdomaininfo = env.get(BUF + size);
        assert_eq!(second.flags, 0xffff_010a, "the getdomaininfo view");
        // first_domain skips lower ids; max_domains bounds.
        let (_, o) = call(&mut env, 0, &list(2, 10, BUF));
        assert_eq!(o.u.get::<xen_sysctl_getdomaininfolist>().num_domains, 1);
        assert_eq!(env.get::<xen_domctl_getdomaininfo>(BUF).domain, b);
        let (_, o) = call(&mut env, 0, &list(0, 2, BUF));
        assert_eq!(o.u.get::<xen_sysctl_getdomaininfolist>().num_domains, 2);
        let (rc, o) = call(&mut env, 0, &list(0, 0, BAD_GVA));
        assert_eq!(
            (rc, o.u.get::<xen_sysctl_getdomaininfolist>().num_domains),
            (0, 0)
        );
        // A bad buffer: -EFAULT, and no copyback (num_domains as sent).
        let (rc, o) = call(&mut env, 0, &list(0, 10, HOLE_GVA - size));
        assert_eq!(
            (rc, o.u.get::<xen_sysctl_getdomaininfolist>().num_domains),
            (EFAULT, 0xdead)
        );
        // A destroyed domain leaves the list.
        assert_eq!(env.simple(0, XEN_DOMCTL_destroydomain, a), 0);
        let (_, o) = call(&mut env, 0, &list(0, 10, BUF));
        assert_eq!(o.u.get::<xen_sysctl_getdomaininfolist>().num_domains, 2);
    }
}
