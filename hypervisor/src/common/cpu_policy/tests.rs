//! Host tests of the CPU policy: derivation (host × backend × request) for every
//! feature word and the leaves this hypervisor rewrites, serialisation, 4.17's
//! set_policy errnos, the CR4/EFER masks, and the property that a feature the
//! policy clears makes its CR4/EFER bit or MSR fault.

use alloc::vec::Vec;

use proptest::prelude::*;
use xen_public_abi::arch_x86::{xen_cpuid_leaf, xen_msr_entry, XEN_CPUID_NO_SUBLEAF};
use xen_public_abi::Errno;

use super::cpuid::{guest_cpuid, VcpuView};
use super::derive::{domain_policy, Backend, SystemPolicies};
use super::msr::{guest_rdmsr, guest_wrmsr, MsrAccess, UnknownMsrs, VcpuMsrs};
use super::*;

const BACKENDS: [Backend; 2] = [Backend::Svm, Backend::Vmx];

/// A host whose every feature word is `fill`, Intel or AMD, with leaves up to
/// 0xd and 0x80000021.
fn host(intel: bool, fill: u32) -> impl Fn(u32, u32) -> Leaf {
    move |leaf, subleaf| {
        let sig = if intel {
            [0x756e_6547, 0x6c65_746e, 0x4965_6e69]
        } else {
            [0x6874_7541, 0x444d_4163, 0x6974_6e65]
        };
        match (leaf, subleaf) {
            (0, _) => [0xd, sig[0], sig[1], sig[2]],
            (1, _) => [0x0080_0f10, 0x0001_0800, fill, fill],
            (4, 0) => [0x121, 0x01c0_003f, 0x3f, 0],
            (4, 1) => [0x163, 0x03c0_003f, 0xfff, 0],
            (7, 0) => [2, fill, fill, fill],
            (7, 1) => [fill, fill, fill, fill],
            (7, 2) => [0, 0, 0, fill],
            (0xb, 0) => [1, 2, 0x100, 3],
            (0xb, 1) => [4, 16, 0x201, 3],
            (0xd, 0) => [0x2e7, 0xa88, 0xa88, 0],
            (0xd, 1) => [fill & 0xf, 0, 0, 0],
            (0xd, s) if s >= 2 => [0x100, 0x240, 0, 0],
            (5 | 6 | 0xa, _) => [0xffff; 4],
            (0x8000_0000, _) => [0x8000_0021, sig[0], sig[1], sig[2]],
            (0x8000_0001, _) => [0x0080_0f10, 0, fill, fill],
            (0x8000_0007, _) => [0, 0, 0, fill],
            (0x8000_0008, _) => [0x3030, fill, 0x7007, 0],
            (0x8000_000a, _) => [1, 0x8000, 0, 0x1ff],
            (l, _) if l >= 0x8000_0009 => [0xabcd; 4],
            (l, _) => [l + 1, l + 2, l + 3, l + 4],
        }
    }
}

fn sys(backend: Backend, intel: bool, fill: u32) -> SystemPolicies {
    SystemPolicies::derive(backend, &host(intel, fill))
}

#[test]
fn max_is_host_and_backend_for_every_feature_word() {
    for b in BACKENDS {
        for intel in [true, false] {
            let all = sys(b, intel, u32::MAX);
            let none = sys(b, intel, 0);
            let mask = b.virtualisable();
            for (i, w) in FEATURE_WORDS.iter().enumerate() {
                let forced = match w.name {
                    "1c" => 1 << 21 | 1 << 31,
                    "1d" => 0,
                    _ => 0,
                };
                assert_eq!(
                    all.hvm_max.cpuid.word(i),
                    mask[i] | forced,
                    "{b:?} intel={intel} word {}: all-ones host",
                    w.name
                );
                assert_eq!(
                    none.hvm_max.cpuid.word(i),
                    forced,
                    "{b:?} intel={intel} word {}: empty host",
                    w.name
                );
                assert_eq!(all.hvm_default.cpuid.word(i), all.hvm_max.cpuid.word(i));
                // raw and host keep the hardware's bits.
                assert_eq!(all.raw.cpuid.word(i), all.host.cpuid.word(i));
            }
        }
    }
}

#[test]
fn max_never_offers_what_cannot_be_virtualised() {
    let never = [
        ("VMX", feature::VMX),
        ("SMX", feature::SMX),
        ("SVM", feature::SVM),
        ("DS", feature::DS),
        ("DTES64", feature::DTES64),
        ("DS-CPL", feature::DSCPL),
        ("MONITOR", feature::MONITOR),
        ("XSAVE", feature::XSAVE),
        ("OSXSAVE", feature::OSXSAVE),
        ("AVX", feature::AVX),
        ("PKU", feature::PKU),
        ("OSPKE", feature::OSPKE),
        ("LA57", feature::LA57),
        ("MCE", feature::MCE),
        ("MCA", feature::MCA),
        ("MTRR", feature::MTRR),
        ("PDCM", feature::PDCM),
        ("RDTSCP", feature::RDTSCP),
        ("RDPID", feature::RDPID),
        ("INVPCID", feature::INVPCID),
        ("MPX", feature::MPX),
        ("TSC_ADJUST", feature::TSC_ADJUST),
        ("IBRSB", feature::IBRSB),
        ("ARCH_CAPS", feature::ARCH_CAPS),
        ("FFXSR", feature::FFXSR),
    ];
    for b in BACKENDS {
        for intel in [true, false] {
            let s = sys(b, intel, u32::MAX);
            for (name, f) in never {
                assert!(s.host.cpuid.has(f), "{name}: the fake host has it");
                assert!(!s.hvm_max.cpuid.has(f), "{b:?}: {name} offered");
            }
            assert!(s.hvm_max.cpuid.has(feature::HYPERVISOR));
            assert!(s.hvm_max.cpuid.has(feature::X2APIC));
        }
    }
}

#[test]
fn non_feature_leaves_are_sanitised() {
    let s = sys(Backend::Svm, false, u32::MAX);
    let c = &s.hvm_max.cpuid;
    for l in [3u32, 5, 6, 9, 0xa] {
        assert_eq!(c.leaf(l, 0), [0; 4], "leaf {l:#x}");
    }
    for sub in 0..NR_XSTATE as u32 {
        assert_eq!(c.leaf(0xd, sub), [0; 4], "leaf 0xd/{sub}: XSAVE hidden");
    }
    for l in 0x8000_000au32..=0x8000_0021 {
        assert_eq!(c.leaf(l, 0), [0; 4], "leaf {l:#x}");
    }
    assert_eq!(c.feat_max_subleaf(), 2);
    assert_eq!(c.leaf(7, 2)[3], 0, "7.2 EDX (speculation) hidden");
    // Kept: vendor, family/model, brand and cache leaves.
    assert_eq!(c.vendor(), Vendor::Amd);
    assert_eq!(c.leaf(1, 0)[0], 0x0080_0f10);
    assert_eq!(c.leaf(0x8000_0002, 0), s.host.cpuid.leaf(0x8000_0002, 0));
    assert_eq!(c.leaf(0x8000_0000, 0)[0], 0x8000_0021);
    assert_eq!(s.hvm_max.msr.platform_info, PLATFORM_INFO_CPUID_FAULTING);
    assert_eq!(s.hvm_max.msr.arch_caps, 0);
}

#[test]
fn domain_topology_follows_max_vcpus() {
    for (intel, n, shift) in [
        (true, 1u32, 0u32),
        (true, 3, 2),
        (false, 4, 2),
        (true, 8, 3),
    ] {
        let s = sys(Backend::Vmx, intel, u32::MAX);
        let p = domain_policy(&s, n);
        let c = &p.cpuid;
        assert_eq!((c.leaf(1, 0)[1] >> 16) & 0xff, 1 << shift);
        assert_eq!(c.has(feature::HTT), n > 1);
        assert_eq!(c.leaf(0xb, 0), [0, 1, 0x100, 0]);
        assert_eq!(c.leaf(0xb, 1), [shift, n, 0x201, 0]);
        if intel {
            assert_eq!(c.leaf(4, 0)[0] >> 26, (1 << shift) - 1);
        } else {
            assert_eq!(c.leaf(0x8000_0008, 0)[2], (n - 1) | shift << 12);
        }
        // Per vCPU: the APIC id in leaf 1 and the x2APIC id in leaf 0xb.
        for id in 0..n {
            let v = VcpuView {
                vcpu_id: id,
                apic_enabled: true,
                ..VcpuView::default()
            };
            assert_eq!(guest_cpuid(&p, &v, 1, 0)[1] >> 24, id);
            assert_eq!(guest_cpuid(&p, &v, 0xb, 0)[3], id);
            assert_eq!(guest_cpuid(&p, &v, 0xb, 1)[3], id);
            assert_eq!(guest_cpuid(&p, &v, 0xb, 2), [0, 0, 2, id]);
        }
    }
}

#[test]
fn guest_cpuid_dynamic_bits_and_ranges() {
    let s = sys(Backend::Svm, false, u32::MAX);
    let p = domain_policy(&s, 1);
    let mut v = VcpuView {
        apic_enabled: true,
        tsc_khz: 1000,
        domid: 3,
        ..VcpuView::default()
    };
    assert_ne!(guest_cpuid(&p, &v, 1, 0)[3] & 1 << 9, 0);
    assert_ne!(guest_cpuid(&p, &v, 0x8000_0001, 0)[3] & 1 << 9, 0);
    v.apic_enabled = false;
    assert_eq!(guest_cpuid(&p, &v, 1, 0)[3] & 1 << 9, 0);
    assert_eq!(guest_cpuid(&p, &v, 0x8000_0001, 0)[3] & 1 << 9, 0);
    // OSXSAVE stays clear even with CR4.OSXSAVE set: XSAVE is not offered.
    v.cr4 = cr4::OSXSAVE | cr4::PKE;
    assert_eq!(guest_cpuid(&p, &v, 1, 0)[2] & 1 << 27, 0);
    assert_eq!(guest_cpuid(&p, &v, 7, 0)[2] & 1 << 4, 0);
    // Beyond the maxima: zeros.
    assert_eq!(guest_cpuid(&p, &v, 0xe, 0), [0; 4]);
    assert_eq!(guest_cpuid(&p, &v, 0x8000_0022, 0), [0; 4]);
    assert_eq!(guest_cpuid(&p, &v, 7, 3), [0; 4]);
    assert_eq!(guest_cpuid(&p, &v, 0x2000_0000, 0), [0; 4]);
    // Xen leaves.
    let x = guest_cpuid(&p, &v, 0x4000_0000, 0);
    assert_eq!(x[0], 0x4000_0005);
    assert_eq!(guest_cpuid(&p, &v, 0x4000_0004, 0)[2], 3);
    assert_eq!(guest_cpuid(&p, &v, 0x4000_0006, 0), [0; 4]);
    assert_eq!(guest_cpuid(&p, &v, 0x4000_0100, 0), [0; 4]);
}

#[test]
fn hv_limit_clamps_the_xen_leaves() {
    let s = sys(Backend::Svm, false, u32::MAX);
    let mut p = domain_policy(&s, 1);
    p.cpuid.hv_limit = 1;
    let v = VcpuView::default();
    assert_eq!(guest_cpuid(&p, &v, 0x4000_0000, 0)[0], 0x4000_0002);
    assert_eq!(guest_cpuid(&p, &v, 0x4000_0003, 0), [0; 4]);
}

#[test]
fn serialise_round_trips_in_xen_order() {
    for b in BACKENDS {
        for intel in [true, false] {
            let s = sys(b, intel, u32::MAX);
            let p = domain_policy(&s, 2);
            let leaves = p.cpuid.serialise();
            assert!(leaves.len() <= CPUID_MAX_SERIALISED_LEAVES as usize);
            assert_eq!(
                (leaves[0].leaf, leaves[0].subleaf),
                (0, XEN_CPUID_NO_SUBLEAF)
            );
            let hv = leaves.iter().position(|l| l.leaf == 0x4000_0000).unwrap();
            assert_eq!(leaves[hv + 1].leaf, 0x4000_0100);
            assert_eq!(leaves[hv + 2].leaf, 0x8000_0000);
            assert!(leaves.iter().any(|l| (l.leaf, l.subleaf) == (7, 2)));
            assert!(leaves.iter().any(|l| (l.leaf, l.subleaf) == (0xd, 1)));
            let mut q = CpuidPolicy::default();
            let mut err = PolicyErrors::NONE;
            q.merge(&leaves, &mut err).unwrap();
            assert_eq!(q, p.cpuid);
            let mut m = MsrPolicy::default();
            m.merge(&p.msr.serialise(), &mut err).unwrap();
            assert_eq!(m, p.msr);
        }
    }
}

fn leaf(l: u32, s: u32, r: Leaf) -> xen_cpuid_leaf {
    xen_cpuid_leaf {
        leaf: l,
        subleaf: s,
        a: r[0],
        b: r[1],
        c: r[2],
        d: r[3],
    }
}

fn msr(idx: u32, flags: u32, val: u64) -> xen_msr_entry {
    xen_msr_entry { idx, flags, val }
}

#[test]
fn set_policy_narrows_and_clamps_like_4_17() {
    let s = sys(Backend::Vmx, true, u32::MAX);
    let mut p = domain_policy(&s, 1);
    assert!(p.cpuid.has(feature::SMEP));
    let mut l7 = p.cpuid.leaf(7, 0);
    l7[1] &= !(1 << 7); // clear SMEP
    let mut l1 = p.cpuid.leaf(1, 0);
    l1[2] |= 1 << 5 | 1 << 26; // ask for VMX and XSAVE: clamped away, not refused
    let mut err = PolicyErrors::NONE;
    p.update_from_toolstack(
        &s.hvm_max,
        &[leaf(7, 0, l7), leaf(1, XEN_CPUID_NO_SUBLEAF, l1)],
        &[],
        &mut err,
    )
    .unwrap();
    assert!(!p.cpuid.has(feature::SMEP));
    assert!(!p.cpuid.has(feature::VMX));
    assert!(!p.cpuid.has(feature::XSAVE));
    assert_eq!(p.cr4_valid_bits() & cr4::SMEP, 0);
    assert_eq!(err, PolicyErrors::NONE);
}

#[test]
fn set_policy_errors_report_the_offender() {
    let s = sys(Backend::Svm, false, u32::MAX);
    let base = domain_policy(&s, 1);
    let na = XEN_CPUID_NO_SUBLEAF;
    type Case = (
        &'static str,
        Vec<xen_cpuid_leaf>,
        Vec<xen_msr_entry>,
        Errno,
        (u32, u32, u32),
    );
    let cases: Vec<Case> = alloc::vec![
        (
            "max leaf above host",
            alloc::vec![leaf(0, na, [0xe, 0, 0, 0])],
            alloc::vec![],
            Errno::EINVAL,
            (0, na, u32::MAX)
        ),
        (
            "leaf 7 subleaves above host",
            alloc::vec![leaf(7, 0, [3, 0, 0, 0])],
            alloc::vec![],
            Errno::EINVAL,
            (7, 0, u32::MAX)
        ),
        (
            "extd max above host",
            alloc::vec![leaf(0x8000_0000, na, [0x8000_0022, 0, 0, 0])],
            alloc::vec![],
            Errno::EINVAL,
            (0x8000_0000, na, u32::MAX)
        ),
        (
            "basic leaf with a subleaf",
            alloc::vec![leaf(2, 0, [0; 4])],
            alloc::vec![],
            Errno::ERANGE,
            (2, 0, u32::MAX)
        ),
        (
            "leaf 4 subleaf 6",
            alloc::vec![leaf(4, 6, [0; 4])],
            alloc::vec![],
            Errno::ERANGE,
            (4, 6, u32::MAX)
        ),
        (
            "leaf 0xe",
            alloc::vec![leaf(0xe, na, [0; 4])],
            alloc::vec![],
            Errno::ERANGE,
            (0xe, na, u32::MAX)
        ),
        (
            "leaf 0x80000022",
            alloc::vec![leaf(0x8000_0022, na, [0; 4])],
            alloc::vec![],
            Errno::ERANGE,
            (0x8000_0022, na, u32::MAX)
        ),
        (
            "Xen leaf with subleaf",
            alloc::vec![leaf(0x4000_0000, 0, [0; 4])],
            alloc::vec![],
            Errno::ERANGE,
            (0x4000_0000, 0, u32::MAX)
        ),
        (
            "MSR flags",
            alloc::vec![],
            alloc::vec![msr(MSR_INTEL_PLATFORM_INFO, 1, 0)],
            Errno::EINVAL,
            (u32::MAX, u32::MAX, MSR_INTEL_PLATFORM_INFO)
        ),
        (
            "MSR overflow",
            alloc::vec![],
            alloc::vec![msr(MSR_ARCH_CAPABILITIES, 0, 1 << 32)],
            Errno::EOVERFLOW,
            (u32::MAX, u32::MAX, MSR_ARCH_CAPABILITIES)
        ),
        (
            "unknown MSR",
            alloc::vec![],
            alloc::vec![msr(0x1b, 0, 0)],
            Errno::ERANGE,
            (u32::MAX, u32::MAX, 0x1b)
        ),
        (
            "platform_info above max",
            alloc::vec![],
            alloc::vec![msr(MSR_INTEL_PLATFORM_INFO, 0, 1)],
            Errno::EINVAL,
            (u32::MAX, u32::MAX, MSR_INTEL_PLATFORM_INFO)
        ),
    ];
    for (what, leaves, msrs, errno, (el, es, em)) in cases {
        let mut p = base.clone();
        let mut err = PolicyErrors::NONE;
        let r = p.update_from_toolstack(&s.hvm_max, &leaves, &msrs, &mut err);
        assert_eq!(r, Err(errno), "{what}");
        assert_eq!((err.leaf, err.subleaf, err.msr), (el, es, em), "{what}");
        assert_eq!(p, base, "{what}: the policy changed on error");
    }
    // Too many entries.
    let many = alloc::vec![leaf(1, na, [0; 4]); CPUID_MAX_SERIALISED_LEAVES as usize + 1];
    let mut p = base.clone();
    let mut err = PolicyErrors::NONE;
    assert_eq!(
        p.update_from_toolstack(&s.hvm_max, &many, &[], &mut err),
        Err(Errno::E2BIG)
    );
    let msrs = alloc::vec![msr(MSR_INTEL_PLATFORM_INFO, 0, 0); 3];
    assert_eq!(
        p.update_from_toolstack(&s.hvm_max, &[], &msrs, &mut err),
        Err(Errno::E2BIG)
    );
}

#[test]
fn extd_max_above_host_is_einval() {
    // A host whose extended maximum is 0x80000008: asking for 0x80000010 is an
    // audit failure reported on leaf 0x80000000.
    let s = SystemPolicies::synthetic();
    let mut p = domain_policy(&s, 1);
    let mut err = PolicyErrors::NONE;
    let r = p.update_from_toolstack(
        &s.hvm_max,
        &[leaf(
            0x8000_0000,
            XEN_CPUID_NO_SUBLEAF,
            [0x8000_0010, 0, 0, 0],
        )],
        &[],
        &mut err,
    );
    assert_eq!(r, Err(Errno::EINVAL));
    assert_eq!((err.leaf, err.subleaf), (0x8000_0000, XEN_CPUID_NO_SUBLEAF));
}

#[test]
fn cr4_and_efer_masks_of_the_default_policy() {
    for b in BACKENDS {
        let s = sys(b, b == Backend::Vmx, u32::MAX);
        let p = domain_policy(&s, 1);
        let valid = p.cr4_valid_bits();
        for (name, bit) in [
            ("VMXE", cr4::VMXE),
            ("SMXE", cr4::SMXE),
            ("PKE", cr4::PKE),
            ("LA57", cr4::LA57),
            ("OSXSAVE", cr4::OSXSAVE),
            ("MCE", cr4::MCE),
            ("CET", cr4::CET),
        ] {
            assert_eq!(valid & bit, 0, "{b:?}: CR4.{name} granted");
        }
        for bit in [
            cr4::VME,
            cr4::PVI,
            cr4::TSD,
            cr4::DE,
            cr4::PSE,
            cr4::PAE,
            cr4::PGE,
            cr4::PCE,
            cr4::OSFXSR,
            cr4::OSXMMEXCPT,
            cr4::UMIP,
            cr4::FSGSBASE,
            cr4::PCIDE,
            cr4::SMEP,
            cr4::SMAP,
        ] {
            assert_ne!(valid & bit, 0, "{b:?}: CR4 bit {bit:#x} refused");
        }
        assert_eq!(
            p.efer_invalid(efer::SCE | efer::LME | efer::LMA | efer::NXE, true),
            None
        );
        assert!(p.efer_invalid(efer::SVME, false).is_some());
        assert!(p.efer_invalid(efer::FFXSE, false).is_some());
        assert!(p.efer_invalid(efer::LMSLE, false).is_some());
        assert!(p.efer_invalid(1 << 20, false).is_some());
        assert!(p.efer_invalid(efer::LMA | efer::LME, false).is_some());
    }
}

/// (feature, the CR4 bits that need it).
const CR4_NEEDS: [(feature::Bit, u64); 13] = [
    (feature::VME, cr4::VME | cr4::PVI),
    (feature::TSC, cr4::TSD),
    (feature::DE, cr4::DE),
    (feature::PSE, cr4::PSE),
    (feature::PAE, cr4::PAE),
    (feature::PGE, cr4::PGE),
    (feature::FXSR, cr4::OSFXSR),
    (feature::SSE, cr4::OSXMMEXCPT),
    (feature::UMIP, cr4::UMIP),
    (feature::FSGSBASE, cr4::FSGSBASE),
    (feature::PCID, cr4::PCIDE),
    (feature::SMEP, cr4::SMEP),
    (feature::SMAP, cr4::SMAP),
];

/// (feature, the EFER bit that needs it).
const EFER_NEEDS: [(feature::Bit, u64); 3] = [
    (feature::SYSCALL, efer::SCE),
    (feature::LM, efer::LME),
    (feature::NX, efer::NXE),
];

proptest! {
    /// Any subset of the offered features, cleared by the toolstack: each
    /// cleared feature's CR4/EFER bits become invalid, each kept one stays
    /// valid, and the MSRs gated by features fault exactly when cleared.
    #[test]
    fn cleared_feature_makes_its_cr_and_msr_writes_fail(clear in proptest::collection::vec(any::<bool>(), 16), svm in any::<bool>()) {
        let b = if svm { Backend::Svm } else { Backend::Vmx };
        let s = sys(b, !svm, u32::MAX);
        let mut p = domain_policy(&s, 1);
        let mut l1 = p.cpuid.leaf(1, 0);
        let mut l7 = p.cpuid.leaf(7, 0);
        let mut e1 = p.cpuid.leaf(0x8000_0001, 0);
        let all: Vec<feature::Bit> = CR4_NEEDS.iter().map(|c| c.0).chain(EFER_NEEDS.iter().map(|e| e.0)).collect();
        let mut cleared = Vec::new();
        for (i, f) in all.iter().enumerate() {
            if !clear[i] {
                continue;
            }
            cleared.push(*f);
            let w = FEATURE_WORDS[f.0];
            let target = match w.leaf { 1 => &mut l1, 7 => &mut l7, _ => &mut e1 };
            target[w.reg] &= !(1 << f.1);
        }
        let mut err = PolicyErrors::NONE;
        p.update_from_toolstack(&s.hvm_max, &[
            leaf(1, XEN_CPUID_NO_SUBLEAF, l1), leaf(7, 0, l7), leaf(0x8000_0001, XEN_CPUID_NO_SUBLEAF, e1),
        ], &[], &mut err).unwrap();
        let valid = p.cr4_valid_bits();
        for (f, bits) in CR4_NEEDS {
            let gone = cleared.contains(&f);
            prop_assert_eq!(valid & bits == 0, gone, "CR4 {:#x}", bits);
            prop_assert_eq!(valid & bits == bits, !gone);
        }
        for (f, bit) in EFER_NEEDS {
            let gone = cleared.contains(&f);
            prop_assert_eq!(p.efer_invalid(bit, false).is_some(), gone, "EFER {:#x}", bit);
        }
        // Features never offered keep their MSRs faulting whatever was cleared.
        let mut m = VcpuMsrs::default();
        for msr in [msr::MSR_TSC_AUX, msr::MSR_IA32_TSC_ADJUST, msr::MSR_SPEC_CTRL, MSR_ARCH_CAPABILITIES, msr::MSR_IA32_XSS, msr::MSR_IA32_BNDCFGS] {
            prop_assert_eq!(guest_rdmsr(&p, &m, msr), MsrAccess::Gp);
            prop_assert_eq!(guest_wrmsr(&p, &mut m, msr, 0), MsrAccess::Gp);
        }
    }
}

#[test]
fn feature_gated_msrs_follow_the_policy() {
    // A policy that does offer RDTSCP, TSC_ADJUST, IBRSB and ARCH_CAPS (by hand,
    // beyond what max allows) makes those MSRs work: the gate is the policy bit.
    let s = sys(Backend::Vmx, true, u32::MAX);
    let mut p = domain_policy(&s, 1);
    let m0 = VcpuMsrs::default();
    for (f, m) in [
        (feature::RDTSCP, msr::MSR_TSC_AUX),
        (feature::TSC_ADJUST, msr::MSR_IA32_TSC_ADJUST),
        (feature::IBRSB, msr::MSR_SPEC_CTRL),
        (feature::ARCH_CAPS, MSR_ARCH_CAPABILITIES),
    ] {
        assert_eq!(guest_rdmsr(&p, &m0, m), MsrAccess::Gp, "{m:#x}");
        p.cpuid.set(f, true);
        assert!(
            matches!(guest_rdmsr(&p, &m0, m), MsrAccess::Ok(_)),
            "{m:#x}"
        );
        p.cpuid.set(f, false);
    }
}

#[test]
fn msr_table_semantics() {
    let intel = domain_policy(&sys(Backend::Vmx, true, u32::MAX), 1);
    let amd = domain_policy(&sys(Backend::Svm, false, u32::MAX), 1);
    let mut m = VcpuMsrs::default();
    use msr::*;
    assert_eq!(
        guest_rdmsr(&intel, &m, MSR_IA32_FEATURE_CONTROL),
        MsrAccess::Ok(1)
    );
    assert_eq!(
        guest_rdmsr(&amd, &m, MSR_IA32_FEATURE_CONTROL),
        MsrAccess::Gp
    );
    assert_eq!(
        guest_wrmsr(&intel, &mut m, MSR_IA32_FEATURE_CONTROL, 1),
        MsrAccess::Gp
    );
    assert_eq!(
        guest_rdmsr(&intel, &m, MSR_INTEL_PLATFORM_INFO),
        MsrAccess::Ok(u64::from(PLATFORM_INFO_CPUID_FAULTING))
    );
    assert_eq!(
        guest_wrmsr(&intel, &mut m, MSR_IA32_UCODE_REV, 0),
        MsrAccess::Ok(())
    );
    assert_eq!(
        guest_wrmsr(&intel, &mut m, MSR_IA32_UCODE_REV, 1),
        MsrAccess::Gp
    );
    assert_eq!(
        guest_wrmsr(&amd, &mut m, MSR_IA32_UCODE_REV, 0),
        MsrAccess::Gp
    );
    // CPUID faulting: settable while PLATFORM_INFO offers it.
    assert_eq!(
        guest_wrmsr(&intel, &mut m, MSR_INTEL_MISC_FEATURES_ENABLES, 1),
        MsrAccess::Ok(())
    );
    assert!(m.cpuid_faulting());
    assert_eq!(
        guest_wrmsr(&intel, &mut m, MSR_INTEL_MISC_FEATURES_ENABLES, 2),
        MsrAccess::Gp
    );
    let mut no_fault = intel.clone();
    no_fault.msr.platform_info = 0;
    assert_eq!(
        guest_wrmsr(&no_fault, &mut m, MSR_INTEL_MISC_FEATURES_ENABLES, 1),
        MsrAccess::Gp
    );
    // Machine check and MTRRs hidden; DEBUGCTL 0 only.
    for r in [
        MSR_IA32_MCG_CAP,
        0x400,
        MSR_MTRR_CAP,
        MSR_MTRR_DEF_TYPE,
        0x200,
    ] {
        assert_eq!(guest_rdmsr(&intel, &m, r), MsrAccess::Gp, "{r:#x}");
    }
    assert_eq!(guest_rdmsr(&amd, &m, MSR_IA32_DEBUGCTL), MsrAccess::Ok(0));
    assert_eq!(
        guest_wrmsr(&amd, &mut m, MSR_IA32_DEBUGCTL, 0),
        MsrAccess::Ok(())
    );
    assert_eq!(
        guest_wrmsr(&amd, &mut m, MSR_IA32_DEBUGCTL, 1),
        MsrAccess::Gp
    );
    // AMD-only MSRs.
    assert_eq!(guest_rdmsr(&amd, &m, MSR_K8_HWCR), MsrAccess::Ok(1 << 24));
    assert_eq!(guest_rdmsr(&intel, &m, MSR_K8_HWCR), MsrAccess::Gp);
    assert_eq!(guest_rdmsr(&amd, &m, MSR_AMD64_DE_CFG), MsrAccess::Ok(2));
    assert_eq!(
        guest_wrmsr(&amd, &mut m, MSR_AMD64_DE_CFG, 0),
        MsrAccess::Ok(())
    );
    // Not the policy's: the next handler decides.
    assert_eq!(guest_rdmsr(&intel, &m, 0xc000_0080), MsrAccess::Unhandled);
    assert_eq!(guest_rdmsr(&intel, &m, 0x1b), MsrAccess::Unhandled);
    assert_eq!(guest_rdmsr(&intel, &m, 0x4000_0000), MsrAccess::Unhandled);
}

#[test]
fn unknown_msrs_are_logged_once_each_and_bounded() {
    let mut u = UnknownMsrs::default();
    assert!(u.record(0x1234, false));
    assert!(!u.record(0x1234, false));
    assert!(u.record(0x1234, true));
    for i in 0..100_000u32 {
        u.record(0x2000_0000 + i, false);
    }
    assert_eq!(u.logged(), msr::UNKNOWN_MSR_LOG_LIMIT);
    assert_eq!(u.count, 100_003);
    assert!(u.limit_reached_now());
    assert!(!u.limit_reached_now());
}
