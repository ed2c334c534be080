//! `guest_rdmsr` / `guest_wrmsr` (xen/arch/x86/msr.c) for the MSRs whose
//! existence the CPU policy decides, and the accounting of MSRs nobody handles.
//!
//! The exit handler asks, in this order: the APIC range hook (x2APIC MSRs
//! 0x800-0x8ff and `APIC_BASE`, owned by the vLAPIC), the Xen hypercall-page MSR,
//! then [`guest_rdmsr`]/[`guest_wrmsr`] here, then the backend's context MSRs
//! (EFER — validated by [`super::CpuPolicy::efer_invalid`] first — PAT, ...).
//! What none of them handles is "unknown": #GP, or read-as-zero with
//! `XEN_X86_MSR_RELAXED`; counted per domain and logged once per domain and MSR
//! ([`UnknownMsrs`]), never once per access, so a guest scanning MSR space costs
//! one exit per MSR and no console output.

use alloc::collections::BTreeSet;

use super::{feature as f, CpuPolicy, Vendor, MSR_ARCH_CAPABILITIES, MSR_INTEL_PLATFORM_INFO};

pub const MSR_IA32_TSC: u32 = 0x10;
pub const MSR_IA32_PLATFORM_ID: u32 = 0x17;
pub const MSR_IA32_FEATURE_CONTROL: u32 = 0x3a;
pub const MSR_IA32_TSC_ADJUST: u32 = 0x3b;
pub const MSR_SPEC_CTRL: u32 = 0x48;
pub const MSR_PRED_CMD: u32 = 0x49;
pub const MSR_IA32_UCODE_REV: u32 = 0x8b;
pub const MSR_INTEL_MISC_FEATURES_ENABLES: u32 = 0x140;
pub const MSR_IA32_MCG_CAP: u32 = 0x179;
pub const MSR_IA32_MCG_CTL: u32 = 0x17b;
pub const MSR_IA32_PERF_STATUS: u32 = 0x198;
pub const MSR_IA32_PERF_CTL: u32 = 0x199;
pub const MSR_IA32_THERM_STATUS: u32 = 0x19c;
pub const MSR_IA32_MISC_ENABLE: u32 = 0x1a0;
pub const MSR_IA32_DEBUGCTL: u32 = 0x1d9;
pub const MSR_MTRR_CAP: u32 = 0xfe;
pub const MSR_MTRR_DEF_TYPE: u32 = 0x2ff;
pub const MSR_IA32_XSS: u32 = 0xda0;
pub const MSR_IA32_BNDCFGS: u32 = 0xd90;
pub const MSR_TSC_AUX: u32 = 0xc000_0103;
pub const MSR_K8_HWCR: u32 = 0xc001_0015;
pub const MSR_AMD64_DE_CFG: u32 = 0xc001_1029;
pub const MSR_VIRT_SPEC_CTRL: u32 = 0xc001_011f;

/// `IA32_FEATURE_CONTROL_LOCK`.
const FEATURE_CONTROL_LOCK: u64 = 1;
/// `MSR_MISC_FEATURES_CPUID_FAULTING`.
pub const MISC_FEATURES_CPUID_FAULTING: u64 = 1;
/// `K8_HWCR_TSC_FREQ_SEL`.
const K8_HWCR_TSC_FREQ_SEL: u64 = 1 << 24;
/// `AMD64_DE_CFG_LFENCE_SERIALISE`.
const DE_CFG_LFENCE_SERIALISE: u64 = 1 << 1;
/// `MSR_IA32_MISC_ENABLE`: fast strings (0), BTS unavailable (11), PEBS
/// unavailable (12), as Xen reports with no vPMU.
const MISC_ENABLE_VALUE: u64 = 1 | 1 << 11 | 1 << 12;

/// Per-vCPU MSR state the policy governs (`struct vcpu_msrs`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct VcpuMsrs {
    /// `MSR_INTEL_MISC_FEATURES_ENABLES` (bit 0: CPUID faulting).
    pub misc_features_enables: u64,
}

impl VcpuMsrs {
    /// CPUID at CPL > 0 faults (#GP) when CPUID faulting is on.
    pub fn cpuid_faulting(&self) -> bool {
        self.misc_features_enables & MISC_FEATURES_CPUID_FAULTING != 0
    }
}

/// The outcome of an MSR access against the policy.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MsrAccess<T> {
    /// Done (the value read, or `()` for a write).
    Ok(T),
    /// #GP(0) into the guest.
    Gp,
    /// Not one of the policy's MSRs: ask the next handler.
    Unhandled,
}

/// The family from leaf 1 EAX.
fn family(p: &CpuPolicy) -> u32 {
    let eax = p.cpuid.basic[1][0];
    let fam = (eax >> 8) & 0xf;
    if fam == 0xf {
        fam + ((eax >> 20) & 0xff)
    } else {
        fam
    }
}

/// `guest_rdmsr` for the policy's MSRs.
pub fn guest_rdmsr(p: &CpuPolicy, m: &VcpuMsrs, msr: u32) -> MsrAccess<u64> {
    use MsrAccess::*;
    let vendor = p.cpuid.vendor();
    let intel = vendor == Vendor::Intel;
    let amd = vendor == Vendor::Amd;
    match msr {
        // Write-only, or not offered to guests.
        MSR_PRED_CMD | 0x79 /* UCODE_WRITE */ | 0x10b /* FLUSH_CMD */ => Gp,
        MSR_IA32_FEATURE_CONTROL if intel => Ok(FEATURE_CONTROL_LOCK),
        MSR_IA32_FEATURE_CONTROL => Gp,
        // The host's platform id is not forwarded (see docs/cpu-policy.md).
        MSR_IA32_PLATFORM_ID => Gp,
        // Microcode revision: no update was loaded by this hypervisor.
        MSR_IA32_UCODE_REV if intel || amd => Ok(0),
        MSR_IA32_UCODE_REV => Gp,
        MSR_SPEC_CTRL if p.cpuid.has(f::IBRSB) || p.cpuid.has(f::IBRS) => Ok(0),
        MSR_SPEC_CTRL => Gp,
        MSR_INTEL_PLATFORM_INFO => Ok(u64::from(p.msr.platform_info)),
        MSR_ARCH_CAPABILITIES if p.cpuid.has(f::ARCH_CAPS) => Ok(u64::from(p.msr.arch_caps)),
        MSR_ARCH_CAPABILITIES => Gp,
        MSR_INTEL_MISC_FEATURES_ENABLES => Ok(m.misc_features_enables),
        // Machine check: no vMCE, MCE/MCA hidden.
        MSR_IA32_MCG_CAP..=MSR_IA32_MCG_CTL | 0x280..=0x29f | 0x400..=0x47f | 0x4d0 | 0..=1 => Gp,
        MSR_IA32_PERF_STATUS | MSR_IA32_PERF_CTL if intel => Ok(0),
        MSR_IA32_PERF_STATUS | MSR_IA32_PERF_CTL => Gp,
        MSR_IA32_THERM_STATUS if intel => Ok(0),
        MSR_IA32_THERM_STATUS => Gp,
        MSR_IA32_MISC_ENABLE if intel => Ok(MISC_ENABLE_VALUE),
        MSR_IA32_MISC_ENABLE => Gp,
        // Debug control: no LBR or BTF offered (reads 0).
        MSR_IA32_DEBUGCTL => Ok(0),
        // MTRRs hidden.
        MSR_MTRR_CAP | MSR_MTRR_DEF_TYPE | 0x200..=0x21f | 0x250 | 0x258 | 0x259 | 0x268..=0x26f => Gp,
        MSR_IA32_TSC_ADJUST if p.cpuid.has(f::TSC_ADJUST) => Ok(0),
        MSR_IA32_TSC_ADJUST => Gp,
        MSR_IA32_BNDCFGS | MSR_IA32_XSS => Gp,
        MSR_TSC_AUX if p.cpuid.has(f::RDTSCP) || p.cpuid.has(f::RDPID) => Ok(0),
        MSR_TSC_AUX => Gp,
        MSR_K8_HWCR if amd => Ok(if family(p) >= 0x10 { K8_HWCR_TSC_FREQ_SEL } else { 0 }),
        MSR_K8_HWCR => Gp,
        MSR_AMD64_DE_CFG if amd => Ok(DE_CFG_LFENCE_SERIALISE),
        MSR_AMD64_DE_CFG => Gp,
        MSR_VIRT_SPEC_CTRL => Gp,
        // Performance counters (no vPMU): the architectural and AMD ranges.
        0xc1..=0xc8 | 0x186..=0x18d | 0x309..=0x30b | 0x38d..=0x392 => Gp,
        0xc001_0000..=0xc001_0007 | 0xc001_0200..=0xc001_020b => Gp,
        _ => Unhandled,
    }
}

/// `guest_wrmsr` for the policy's MSRs.
pub fn guest_wrmsr(p: &CpuPolicy, m: &mut VcpuMsrs, msr: u32, val: u64) -> MsrAccess<()> {
    use MsrAccess::*;
    let vendor = p.cpuid.vendor();
    let intel = vendor == Vendor::Intel;
    let amd = vendor == Vendor::Amd;
    match msr {
        // Read-only or not offered.
        MSR_IA32_PLATFORM_ID | MSR_INTEL_PLATFORM_INFO | MSR_ARCH_CAPABILITIES
        | MSR_IA32_FEATURE_CONTROL | MSR_IA32_THERM_STATUS | MSR_IA32_PERF_STATUS
        | MSR_MTRR_CAP | MSR_K8_HWCR => Gp,
        // Intel: the "write 0, CPUID, read" microcode-revision dance is allowed.
        MSR_IA32_UCODE_REV if intel && val == 0 => Ok(()),
        MSR_IA32_UCODE_REV => Gp,
        0x79 /* UCODE_WRITE */ | 0x10b /* FLUSH_CMD */ => Gp,
        MSR_SPEC_CTRL | MSR_PRED_CMD if p.cpuid.has(f::IBRSB) || p.cpuid.has(f::IBRS) => {
            if val & !0x7 != 0 { Gp } else { Ok(()) }
        }
        MSR_SPEC_CTRL | MSR_PRED_CMD => Gp,
        MSR_INTEL_MISC_FEATURES_ENABLES => {
            let faulting_ok = p.msr.platform_info & super::PLATFORM_INFO_CPUID_FAULTING != 0;
            let allowed = if faulting_ok { MISC_FEATURES_CPUID_FAULTING } else { 0 };
            if val & !allowed != 0 {
                return Gp;
            }
            m.misc_features_enables = val;
            Ok(())
        }
        MSR_IA32_MCG_CAP..=MSR_IA32_MCG_CTL | 0x280..=0x29f | 0x400..=0x47f | 0x4d0 | 0..=1 => Gp,
        // Intel: P-state requests from a guest are dropped.
        MSR_IA32_PERF_CTL if intel => Ok(()),
        MSR_IA32_PERF_CTL => Gp,
        // Only the value Xen reports may be written back.
        MSR_IA32_MISC_ENABLE if intel && val == MISC_ENABLE_VALUE => Ok(()),
        MSR_IA32_MISC_ENABLE => Gp,
        // No LBR or BTF offered: only 0 is accepted.
        MSR_IA32_DEBUGCTL if val == 0 => Ok(()),
        MSR_IA32_DEBUGCTL => Gp,
        MSR_MTRR_DEF_TYPE | 0x200..=0x21f | 0x250 | 0x258 | 0x259 | 0x268..=0x26f => Gp,
        MSR_IA32_TSC_ADJUST | MSR_IA32_BNDCFGS | MSR_IA32_XSS | MSR_TSC_AUX => Gp,
        // AMD: DE_CFG writes are ignored (as Xen does for guests).
        MSR_AMD64_DE_CFG if amd => Ok(()),
        MSR_AMD64_DE_CFG | MSR_VIRT_SPEC_CTRL => Gp,
        0xc1..=0xc8 | 0x186..=0x18d | 0x309..=0x30b | 0x38d..=0x392 => Gp,
        0xc001_0000..=0xc001_0007 | 0xc001_0200..=0xc001_020b => Gp,
        _ => Unhandled,
    }
}

/// How many distinct unknown MSRs are logged per domain; later ones are only
/// counted (one line says so).
pub const UNKNOWN_MSR_LOG_LIMIT: usize = 32;

/// Accesses to MSRs no handler knows, per domain: counted, each (MSR, direction)
/// logged once, at most [`UNKNOWN_MSR_LOG_LIMIT`] of them.
#[derive(Clone, Debug, Default)]
pub struct UnknownMsrs {
    /// Accesses to unknown MSRs so far.
    pub count: u64,
    logged: BTreeSet<(u32, bool)>,
    overflow_said: bool,
}

impl UnknownMsrs {
    /// Record an access; true when the caller should log it (first time for this
    /// MSR and direction, below the limit).
    pub fn record(&mut self, msr: u32, write: bool) -> bool {
        self.count = self.count.saturating_add(1);
        if self.logged.contains(&(msr, write)) {
            return false;
        }
        if self.logged.len() >= UNKNOWN_MSR_LOG_LIMIT {
            return false;
        }
        self.logged.insert((msr, write));
        true
    }

    /// True once, when the log limit is first reached (the caller says "further
    /// unknown MSRs are counted, not logged").
    pub fn limit_reached_now(&mut self) -> bool {
        if self.logged.len() >= UNKNOWN_MSR_LOG_LIMIT && !self.overflow_said {
            self.overflow_said = true;
            return true;
        }
        false
    }

    /// Distinct (MSR, direction) pairs logged.
    pub fn logged(&self) -> usize {
        self.logged.len()
    }
}
