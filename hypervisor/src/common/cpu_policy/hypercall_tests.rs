//! `XEN_SYSCTL_get_cpu_policy`, `XEN_DOMCTL_get_cpu_policy` and
//! `XEN_DOMCTL_set_cpu_policy` through the hypercall dispatcher: errnos and
//! copy-back as 4.17's `arch_do_sysctl` / `arch_do_domctl`.

use alloc::vec::Vec;

use xen_public_abi::arch_x86::{xen_cpuid_leaf, xen_msr_entry, XEN_CPUID_NO_SUBLEAF};
use xen_public_abi::domctl::{
    xen_domctl_cpu_policy, XEN_DOMCTL_get_cpu_policy, XEN_DOMCTL_set_cpu_policy,
    XEN_DOMCTL_unpausedomain,
};
use xen_public_abi::sysctl::*;
use xen_public_abi::xen::{__HYPERVISOR_sysctl, domid_t};
use zerocopy::FromZeros;

use super::*;
use crate::common::test_support::*;

const LEAVES_GVA: u64 = 0x3000;
const MSRS_GVA: u64 = 0x6000;
const EINVAL: i64 = -22;
const EPERM: i64 = -1;
const EACCES: i64 = -13;
const EEXIST: i64 = -17;
const ENOBUFS: i64 = -105;
const EOPNOTSUPP: i64 = -95;
const EFAULT: i64 = -14;
const E2BIG: i64 = -7;
const ERANGE: i64 = -34;

fn sysctl(
    env: &mut Env,
    caller: domid_t,
    p: xen_sysctl_cpu_policy,
    version: u32,
) -> (i64, xen_sysctl) {
    let mut op = xen_sysctl::new_zeroed();
    op.cmd = XEN_SYSCTL_get_cpu_policy;
    op.interface_version = version;
    op.u.set(&p);
    env.put(ARG_GVA, &op);
    let rc = env.hypercall(caller, __HYPERVISOR_sysctl, [ARG_GVA, 0, 0, 0, 0]);
    (rc, env.get(ARG_GVA))
}

fn req(index: u32, nr_leaves: u32, nr_msrs: u32) -> xen_sysctl_cpu_policy {
    xen_sysctl_cpu_policy {
        index,
        nr_leaves,
        nr_msrs,
        _rsvd: 0,
        leaves: LEAVES_GVA,
        msrs: MSRS_GVA,
    }
}

fn read_leaves(env: &Env, n: u32) -> Vec<xen_cpuid_leaf> {
    (0..u64::from(n))
        .map(|i| env.get(LEAVES_GVA + i * 24))
        .collect()
}

#[test]
fn sysctl_get_cpu_policy() {
    let mut env = Env::new();
    let v = XEN_SYSCTL_INTERFACE_VERSION;
    // NULL handles: the maximum counts.
    let mut r = req(XEN_SYSCTL_cpu_policy_hvm_max, 0, 0);
    r.leaves = 0;
    r.msrs = 0;
    let (rc, op) = sysctl(&mut env, 0, r, v);
    let out: xen_sysctl_cpu_policy = op.u.get();
    assert_eq!(
        (rc, out.nr_leaves, out.nr_msrs),
        (0, CPUID_MAX_SERIALISED_LEAVES, 2)
    );
    // Every policy index that exists, in full.
    for (index, want) in [
        (
            XEN_SYSCTL_cpu_policy_raw,
            env.hv.domains.cpu_policies().raw.clone(),
        ),
        (
            XEN_SYSCTL_cpu_policy_host,
            env.hv.domains.cpu_policies().host.clone(),
        ),
        (
            XEN_SYSCTL_cpu_policy_hvm_max,
            env.hv.domains.cpu_policies().hvm_max.clone(),
        ),
        (
            XEN_SYSCTL_cpu_policy_hvm_default,
            env.hv.domains.cpu_policies().hvm_default.clone(),
        ),
    ] {
        let (rc, op) = sysctl(&mut env, 0, req(index, 120, 2), v);
        let out: xen_sysctl_cpu_policy = op.u.get();
        assert_eq!(rc, 0, "index {index}");
        let expect = want.cpuid.serialise();
        assert_eq!(out.nr_leaves as usize, expect.len());
        assert_eq!(flat(&read_leaves(&env, out.nr_leaves)), flat(&expect));
        let m: xen_msr_entry = env.get(MSRS_GVA);
        assert_eq!(
            (m.idx, m.val),
            (MSR_INTEL_PLATFORM_INFO, u64::from(want.msr.platform_info))
        );
    }
    // Too small a buffer; bad index; _rsvd; PV; privilege; version; bad handle.
    assert_eq!(
        sysctl(&mut env, 0, req(XEN_SYSCTL_cpu_policy_hvm_max, 3, 2), v).0,
        ENOBUFS
    );
    assert_eq!(
        sysctl(&mut env, 0, req(XEN_SYSCTL_cpu_policy_hvm_max, 120, 1), v).0,
        ENOBUFS
    );
    assert_eq!(sysctl(&mut env, 0, req(6, 120, 2), v).0, EINVAL);
    let mut r = req(XEN_SYSCTL_cpu_policy_hvm_max, 120, 2);
    r._rsvd = 1;
    assert_eq!(sysctl(&mut env, 0, r, v).0, EINVAL);
    for pv in [
        XEN_SYSCTL_cpu_policy_pv_max,
        XEN_SYSCTL_cpu_policy_pv_default,
    ] {
        assert_eq!(sysctl(&mut env, 0, req(pv, 120, 2), v).0, EOPNOTSUPP);
    }
    let (rc, u) = env.create(&baseline(), 0);
    assert_eq!(rc, 0);
    assert_eq!(
        sysctl(&mut env, u, req(XEN_SYSCTL_cpu_policy_hvm_max, 120, 2), v).0,
        EPERM
    );
    assert_eq!(
        sysctl(
            &mut env,
            0,
            req(XEN_SYSCTL_cpu_policy_hvm_max, 120, 2),
            0x14
        )
        .0,
        EACCES
    );
    let mut r = req(XEN_SYSCTL_cpu_policy_hvm_max, 120, 2);
    r.leaves = BAD_GVA;
    assert_eq!(sysctl(&mut env, 0, r, v).0, EFAULT);
}

fn domctl_policy(
    env: &mut Env,
    cmd: u32,
    dom: domid_t,
    p: xen_domctl_cpu_policy,
) -> (i64, xen_domctl_cpu_policy) {
    let mut op = domctl_op(cmd, dom);
    op.u.set(&p);
    let (rc, op) = env.domctl(0, &op);
    (rc, op.u.get())
}

fn pol(nr_leaves: u32, nr_msrs: u32) -> xen_domctl_cpu_policy {
    xen_domctl_cpu_policy {
        nr_leaves,
        nr_msrs,
        leaves: LEAVES_GVA,
        msrs: MSRS_GVA,
        err_leaf: 0,
        err_subleaf: 0,
        err_msr: 0,
        _implicit_pad: 0,
    }
}

#[test]
fn domctl_get_and_set_cpu_policy() {
    let mut env = Env::new();
    let (_, d) = env.create(&baseline(), 0);
    // Get: the domain's policy.
    let (rc, out) = domctl_policy(&mut env, XEN_DOMCTL_get_cpu_policy, d, pol(120, 2));
    assert_eq!(rc, 0);
    let leaves = read_leaves(&env, out.nr_leaves);
    assert_eq!(
        flat(&leaves),
        flat(&env.hv.domains.get(d).unwrap().cpu_policy.cpuid.serialise())
    );
    let mut null = pol(0, 0);
    null.leaves = 0;
    null.msrs = 0;
    let (rc, out) = domctl_policy(&mut env, XEN_DOMCTL_get_cpu_policy, d, null);
    assert_eq!(
        (rc, out.nr_leaves, out.nr_msrs),
        (0, CPUID_MAX_SERIALISED_LEAVES, 2)
    );
    assert_eq!(
        domctl_policy(&mut env, XEN_DOMCTL_get_cpu_policy, d, pol(2, 2)).0,
        ENOBUFS
    );

    // Set: clear SMEP (leaf 7.0 EBX bit 7) and write it back.
    let i7 = leaves
        .iter()
        .position(|l| (l.leaf, l.subleaf) == (7, 0))
        .unwrap();
    let mut l7 = leaves[i7];
    assert_ne!(l7.b & 1 << 7, 0);
    l7.b &= !(1 << 7);
    env.put(LEAVES_GVA, &l7);
    assert_eq!(
        domctl_policy(&mut env, XEN_DOMCTL_set_cpu_policy, d, pol(1, 0)).0,
        0
    );
    let p = &env.hv.domains.get(d).unwrap().cpu_policy;
    assert!(!p.cpuid.has(feature::SMEP));
    assert_eq!(p.cr4_valid_bits() & cr4::SMEP, 0);

    // A bad leaf: -ERANGE with err_leaf/err_subleaf copied back, nothing changed.
    let before = env.hv.domains.get(d).unwrap().cpu_policy.clone();
    env.put(
        LEAVES_GVA,
        &xen_cpuid_leaf {
            leaf: 0x2000_0000,
            subleaf: XEN_CPUID_NO_SUBLEAF,
            a: 0,
            b: 0,
            c: 0,
            d: 0,
        },
    );
    let (rc, out) = domctl_policy(&mut env, XEN_DOMCTL_set_cpu_policy, d, pol(1, 0));
    assert_eq!(
        (rc, out.err_leaf, out.err_subleaf, out.err_msr),
        (ERANGE, 0x2000_0000, XEN_CPUID_NO_SUBLEAF, u32::MAX)
    );
    // Max leaf above max: -EINVAL on leaf 0.
    env.put(
        LEAVES_GVA,
        &xen_cpuid_leaf {
            leaf: 0,
            subleaf: XEN_CPUID_NO_SUBLEAF,
            a: 0x20,
            b: 0,
            c: 0,
            d: 0,
        },
    );
    let (rc, out) = domctl_policy(&mut env, XEN_DOMCTL_set_cpu_policy, d, pol(1, 0));
    assert_eq!(
        (rc, out.err_leaf, out.err_subleaf),
        (EINVAL, 0, XEN_CPUID_NO_SUBLEAF)
    );
    // A bad MSR.
    env.put(
        MSRS_GVA,
        &xen_msr_entry {
            idx: 0x1b,
            flags: 0,
            val: 0,
        },
    );
    let (rc, out) = domctl_policy(&mut env, XEN_DOMCTL_set_cpu_policy, d, pol(0, 1));
    assert_eq!((rc, out.err_msr, out.err_leaf), (ERANGE, 0x1b, u32::MAX));
    assert_eq!(
        domctl_policy(&mut env, XEN_DOMCTL_set_cpu_policy, d, pol(121, 0)).0,
        E2BIG
    );
    let mut bad = pol(1, 0);
    bad.leaves = BAD_GVA;
    assert_eq!(
        domctl_policy(&mut env, XEN_DOMCTL_set_cpu_policy, d, bad).0,
        EFAULT
    );
    assert_eq!(env.hv.domains.get(d).unwrap().cpu_policy, before);

    // Not on the caller itself; not once the domain has run.
    assert_eq!(
        domctl_policy(&mut env, XEN_DOMCTL_set_cpu_policy, 0, pol(0, 0)).0,
        EINVAL
    );
    assert_eq!(env.simple(0, XEN_DOMCTL_unpausedomain, d), 0);
    assert_eq!(
        domctl_policy(&mut env, XEN_DOMCTL_set_cpu_policy, d, pol(0, 0)).0,
        EEXIST
    );
    // Get still works.
    assert_eq!(
        domctl_policy(&mut env, XEN_DOMCTL_get_cpu_policy, d, pol(120, 2)).0,
        0
    );
    // A domU may not.
    let (_, u) = env.create(&baseline(), 0);
    let mut op = domctl_op(XEN_DOMCTL_get_cpu_policy, d);
    op.u.set(&pol(120, 2));
    assert_eq!(env.domctl(u, &op).0, EPERM);
}

type Flat = (u32, u32, u32, u32, u32, u32);

fn flat(v: &[xen_cpuid_leaf]) -> Vec<Flat> {
    v.iter()
        .map(|l| (l.leaf, l.subleaf, l.a, l.b, l.c, l.d))
        .collect()
}
