//! Deriving the system policies (Xen's `calculate_{raw,host,hvm_max,hvm_def}_policy`)
//! and a new domain's policy (`init_domain_cpu_policy`).
//!
//! raw = what CPUID says on the boot CPU; host = raw (this hypervisor hides nothing
//! from itself); HVM max = host ∩ [`Backend::virtualisable`]: only the features
//! this hypervisor can give a guest correctly on this backend (no XSAVE state
//! switching, so no XSAVE/AVX; no vPMU, vMCE, MTRR or speculation-control MSRs;
//! no nested virtualisation); HVM default = HVM max. A domain starts from HVM
//! default with its topology filled in ([`domain_policy`]).

use super::{
    feature as f, CpuPolicy, CpuidPolicy, Leaf, MsrPolicy, Vendor, FEATURE_WORDS, NR_BASIC,
    NR_CACHE, NR_EXTD, NR_FEAT, NR_TOPO, PLATFORM_INFO_CPUID_FAULTING,
};

/// The hardware-virtualisation backend the policy is derived for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Backend {
    /// AMD SVM with NPT.
    Svm,
    /// Intel VMX with EPT.
    Vmx,
}

impl Backend {
    /// Per [`FEATURE_WORDS`] entry, the bits this hypervisor can offer a guest on
    /// this backend. Everything not listed is hidden; the reason for each group is
    /// in `docs/cpu-policy.md`.
    pub fn virtualisable(self) -> [u32; FEATURE_WORDS.len()] {
        let bits = |list: &[u32]| list.iter().fold(0u32, |a, b| a | 1 << b);
        [
            // 1d: FPU VME DE PSE TSC MSR PAE CX8 APIC SEP PGE CMOV PAT PSE36 CLFSH
            // MMX FXSR SSE SSE2 HTT. Not: MCE MTRR MCA (no vMCE/MTRRs), DS ACPI TM
            // PBE SS.
            bits(&[
                0, 1, 2, 3, 4, 5, 6, 8, 9, 11, 13, 15, 16, 17, 19, 23, 24, 25, 26, 28,
            ]),
            // 1c: SSE3 PCLMULQDQ SSSE3 CX16 PCID SSE4.1 SSE4.2 X2APIC MOVBE POPCNT
            // TSC-deadline AES RDRAND HYPERVISOR. Not: DTES64 MONITOR DS-CPL VMX
            // SMX EST TM2 CNXT-ID SDBG FMA xTPR PDCM DCA XSAVE OSXSAVE AVX F16C.
            bits(&[0, 1, 9, 13, 17, 19, 20, 21, 22, 23, 24, 25, 30, 31]),
            // e1d: SYSCALL NX MMXEXT PAGE1GB LM (and the AMD copies of 1d bits).
            // Not: FFXSR, RDTSCP (TSC_AUX is not switched), 3DNow.
            bits(&[
                0, 1, 2, 3, 4, 5, 6, 8, 9, 11, 13, 15, 16, 17, 20, 22, 23, 24, 26, 29,
            ]),
            // e1c: LAHF_LM CMP_LEGACY CR8_LEGACY ABM SSE4A MISALIGNSSE
            // 3DNOWPREFETCH. Not: SVM, EXTAPIC, OSVW, IBS, XOP, SKINIT, WDT, LWP,
            // FMA4, TBM, TOPOEXT, perf counters.
            bits(&[0, 1, 4, 5, 6, 7, 8]),
            // Da1: nothing (XSAVE hidden).
            0,
            // 7b0: FSGSBASE BMI1 FDP_EXCP_ONLY SMEP BMI2 ERMS NO_FPU_SEL RDSEED ADX
            // SMAP CLFLUSHOPT CLWB SHA. Not: TSC_ADJUST SGX HLE AVX2 INVPCID RTM
            // PQM MPX PQE AVX-512* PT.
            bits(&[0, 3, 6, 7, 8, 9, 13, 18, 19, 20, 23, 24, 29]),
            // 7c0: UMIP GFNI. Not: PKU/OSPKE (PKRU not switched), LA57, RDPID
            // (TSC_AUX), CET, VAES/VPCLMULQDQ/AVX-512*.
            bits(&[2, 8]),
            // 7d0: FSRM SERIALIZE. Not: the speculation controls (no SPEC_CTRL
            // virtualisation), ARCH_CAPS, CET-IBT, AMX, AVX-512*.
            bits(&[4, 14]),
            // 7a1: FSRS FSRCS (fast string ops). Not: AVX-VNNI, AVX512-BF16.
            bits(&[11, 12]),
            // e7d: nothing (no invariant-TSC promise across migration, no power
            // management).
            0,
            // e8b: CLZERO. Not: the speculation-control bits.
            bits(&[0]),
        ]
    }
}

/// `calculate_raw_policy`: read the leaves Xen's policy holds from `cpuid(leaf,
/// subleaf)` (the boot CPU, or a fake host in tests).
pub fn raw_policy(cpuid: &dyn Fn(u32, u32) -> Leaf) -> CpuidPolicy {
    let mut p = CpuidPolicy::default();
    p.basic[0] = cpuid(0, 0);
    let max = (p.max_leaf() as usize).min(NR_BASIC - 1);
    for leaf in 1..=max {
        match leaf {
            4 => {
                for s in 0..NR_CACHE {
                    p.cache[s] = cpuid(4, s as u32);
                    if p.cache[s][0] & 0x1f == 0 {
                        break;
                    }
                }
            }
            7 => {
                p.feat[0] = cpuid(7, 0);
                let m = (p.feat_max_subleaf() as usize).min(NR_FEAT - 1);
                for s in 1..=m {
                    p.feat[s] = cpuid(7, s as u32);
                }
            }
            0xb => {
                for s in 0..NR_TOPO {
                    p.topo[s] = cpuid(0xb, s as u32);
                    if (p.topo[s][2] >> 8) & 0xff == 0 {
                        break;
                    }
                }
            }
            0xd => {
                p.xstate[0] = cpuid(0xd, 0);
                p.xstate[1] = cpuid(0xd, 1);
                let xs = p.xstates();
                for s in 2..super::NR_XSTATE {
                    if xs & (1 << s) != 0 {
                        p.xstate[s] = cpuid(0xd, s as u32);
                    }
                }
            }
            _ => p.basic[leaf] = cpuid(leaf as u32, 0),
        }
    }
    p.extd[0] = cpuid(0x8000_0000, 0);
    let emax = p.extd_max_leaf();
    if emax & 0xffff_0000 == 0x8000_0000 {
        for i in 1..=((emax & 0xffff) as usize).min(NR_EXTD - 1) {
            p.extd[i] = cpuid(0x8000_0000 | i as u32, 0);
        }
    } else {
        p.extd[0] = [0; 4];
    }
    p
}

/// The bits this hypervisor always sets in a guest's view: the hypervisor bit
/// and x2APIC (the vLAPIC is x2APIC-capable on both backends).
pub fn force_synthetic(p: &mut CpuidPolicy) {
    if p.max_leaf() >= 1 {
        p.set(f::HYPERVISOR, true);
        p.set(f::X2APIC, true);
    }
}

/// Leaves that are not feature words, made consistent with what is offered:
/// no MONITOR leaf, no thermal/power, no performance monitoring, no XSAVE
/// leaves, no SVM leaf, no AMD topology/SEV/extended feature leaves; maxima
/// clamped to what Xen's arrays hold and to `max` (the HVM max policy).
pub fn sanitise_non_feature_leaves(p: &mut CpuidPolicy, max: &CpuidPolicy) {
    p.basic[0][0] = p.basic[0][0].min((NR_BASIC - 1) as u32).min(max.max_leaf());
    p.feat[0][0] = p.feat[0][0].min((NR_FEAT - 1) as u32);
    // Leaf 3 (serial number), 5 (MONITOR), 6 (thermal/power), 9 (DCA), 0xa (PMU).
    for l in [3, 5, 6, 9, 0xa] {
        p.basic[l] = [0; 4];
    }
    // XSAVE is hidden: no state components, no sizes.
    if !p.has(f::XSAVE) {
        p.xstate = [[0; 4]; super::NR_XSTATE];
    }
    if p.extd[0][0] & 0xffff_0000 == 0x8000_0000 {
        p.extd[0][0] = p.extd[0][0].min(0x8000_0000 + (NR_EXTD - 1) as u32);
    }
    // 0x8000000a (SVM) and everything above 0x80000008 (AMD topology, SEV,
    // extended features): not offered.
    for l in p.extd.iter_mut().skip(0xa) {
        *l = [0; 4];
    }
    // Leaf 7.0 EAX: max subleaf; 7.1 / 7.2 EBX..EDX hold nothing offered.
    for s in 1..NR_FEAT {
        p.feat[s][1] = 0;
        p.feat[s][2] = 0;
        p.feat[s][3] = 0;
        if s >= 2 {
            p.feat[s][0] = 0;
        }
    }
}

/// The system policies (`system_policies[]`), computed once at boot.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SystemPolicies {
    pub backend: Backend,
    pub raw: CpuPolicy,
    pub host: CpuPolicy,
    pub hvm_max: CpuPolicy,
    pub hvm_default: CpuPolicy,
}

impl SystemPolicies {
    /// Derive all of them from the boot CPU's CPUID and the backend.
    pub fn derive(backend: Backend, cpuid: &dyn Fn(u32, u32) -> Leaf) -> SystemPolicies {
        let raw = CpuPolicy {
            cpuid: raw_policy(cpuid),
            msr: MsrPolicy::default(),
        };
        let host = raw.clone();
        let mut max = host.clone();
        let mask = backend.virtualisable();
        for (i, m) in mask.iter().enumerate() {
            let v = max.cpuid.word(i) & m;
            max.cpuid.set_word(i, v);
        }
        force_synthetic(&mut max.cpuid);
        let host_cpuid = host.cpuid.clone();
        sanitise_non_feature_leaves(&mut max.cpuid, &host_cpuid);
        // 0x80000008 ECX: the core count is the domain's (filled by domain_policy).
        max.cpuid.extd[8][2] = 0;
        // CPUID faulting is emulated (every CPUID exits), so always offered.
        max.msr.platform_info = PLATFORM_INFO_CPUID_FAULTING;
        max.msr.arch_caps = 0;
        max.cpuid.clear_out_of_range_leaves();
        let hvm_default = max.clone();
        SystemPolicies {
            backend,
            raw,
            host,
            hvm_max: max,
            hvm_default,
        }
    }

    /// A fixed policy for builds without a CPU to ask (host tests of code that
    /// only needs *a* policy): an Intel-like CPU with the common features.
    pub fn synthetic() -> SystemPolicies {
        SystemPolicies::derive(Backend::Vmx, &synthetic_cpu)
    }
}

/// The CPU of [`SystemPolicies::synthetic`]: "GenuineIntel", family 6, basic
/// leaves to 0xd and extended to 0x80000008, every feature bit set.
pub fn synthetic_cpu(leaf: u32, subleaf: u32) -> Leaf {
    match (leaf, subleaf) {
        (0, _) => [0xd, 0x756e_6547, 0x6c65_746e, 0x4965_6e69],
        (1, _) => [0x0006_06a6, 0x0001_0800, u32::MAX, u32::MAX],
        (4, 0) => [0x0000_0121, 0x01c0_003f, 0x3f, 0],
        (7, 0) => [1, u32::MAX, u32::MAX, u32::MAX],
        (7, 1) => [u32::MAX, 0, 0, 0],
        (0xb, 0) => [1, 2, 0x100, 0],
        (0xb, 1) => [4, 8, 0x201, 0],
        (0xd, 0) => [0x7, 0x340, 0x340, 0],
        (0xd, 1) => [0xf, 0, 0, 0],
        (0xd, 2) => [0x100, 0x240, 0, 0],
        (0x8000_0000, _) => [0x8000_0008, 0, 0, 0],
        (0x8000_0001, _) => [0, 0, u32::MAX, u32::MAX],
        (0x8000_0008, _) => [0x3027, u32::MAX, 0, 0],
        (l, _) if l < 0xd => [l, l, l, l],
        _ => [0; 4],
    }
}

/// `init_domain_cpu_policy` + the topology of `recalculate_cpuid_policy`: the
/// HVM default with `max_vcpus` single-threaded cores in one package. The x2APIC
/// id of vCPU `n` is `n` (filled in per vCPU by [`super::cpuid::guest_cpuid`]).
pub fn domain_policy(sys: &SystemPolicies, max_vcpus: u32) -> CpuPolicy {
    let mut p = sys.hvm_default.clone();
    let n = max_vcpus.max(1);
    let shift = 32 - (n - 1).leading_zeros(); // ceil(log2(n))
    let c = &mut p.cpuid;
    if c.max_leaf() >= 1 {
        // Leaf 1 EBX[23:16]: addressable logical processors; HTT when above one.
        c.basic[1][1] = (c.basic[1][1] & 0xff00_ffff) | ((1u32 << shift).min(255) << 16);
        c.set(f::HTT, n > 1);
    }
    if c.max_leaf() >= 4 && c.vendor() == Vendor::Intel {
        for l in c.cache.iter_mut() {
            if l[0] & 0x1f == 0 {
                break;
            }
            // EAX[31:26] cores per package - 1, EAX[25:14] threads sharing - 1 (0:
            // each cache is private to its core; shared ones say all cores).
            let level = (l[0] >> 5) & 7;
            let sharing = if level >= 3 { (1u32 << shift) - 1 } else { 0 };
            l[0] = (l[0] & 0x3fff) | ((1u32 << shift) - 1).min(63) << 26 | (sharing & 0xfff) << 14;
        }
    }
    if c.max_leaf() >= 0xb {
        // SMT level: one thread; core level: n cores.
        c.topo[0] = [0, 1, 1 << 8, 0];
        c.topo[1] = [shift, n, 2 << 8 | 1, 0];
    }
    if c.extd_max_leaf() >= 0x8000_0008 && c.vendor() == Vendor::Amd {
        c.extd[8][2] = (n - 1) & 0xff | (shift & 0xf) << 12;
    }
    p
}
