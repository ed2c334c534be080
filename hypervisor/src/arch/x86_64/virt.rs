//! What hardware virtualization the CPU offers, from CPUID (`raw-cpuid`) and, for
//! VMX, the VMX capability MSRs. Intel: VMX and its EPT / VPID / unrestricted
//! guest / VMFUNC / EPT-violation #VE secondary controls. AMD: SVM and CPUID
//! 0x8000000A's nested paging, NRIP save, decode assists, flush-by-ASID, VMCB
//! clean bits and ASID count. Where neither is usable, guests are refused.
//!
//! Mirrors Xen's `start_vmx` / `start_svm` capability probing (`vmx/vmcs.c`
//! `vmx_init_vmcs_config`, `svm/svm.c` `svm_cpu_up`).

use core::fmt;

use raw_cpuid::CpuId;
use spin::Once;
use x86_64::registers::model_specific::Msr;

const IA32_FEATURE_CONTROL: u32 = 0x3A;
const IA32_VMX_BASIC: u32 = 0x480;
const IA32_VMX_PROCBASED_CTLS: u32 = 0x482;
const IA32_VMX_TRUE_PROCBASED_CTLS: u32 = 0x48E;
const IA32_VMX_PROCBASED_CTLS2: u32 = 0x48B;
const VM_CR: u32 = 0xC001_0114;

/// VMX capabilities (allowed-1 secondary processor-based controls).
#[derive(Clone, Copy, Debug, Default)]
pub struct VmxCaps {
    pub ept: bool,
    pub vpid: bool,
    pub unrestricted_guest: bool,
    pub vmfunc: bool,
    pub ept_violation_ve: bool,
}

/// SVM capabilities (CPUID 0x8000000A).
#[derive(Clone, Copy, Debug, Default)]
pub struct SvmCaps {
    pub npt: bool,
    pub nrip_save: bool,
    pub decode_assists: bool,
    pub flush_by_asid: bool,
    pub vmcb_clean: bool,
    pub asids: u32,
}

/// The virtualization the hypervisor can use on this CPU.
#[derive(Clone, Copy, Debug)]
pub enum VirtSupport {
    Vmx(VmxCaps),
    Svm(SvmCaps),
    /// None usable, and why.
    None(&'static str),
}

impl fmt::Display for VirtSupport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let b = |x: bool| x as u8;
        match self {
            VirtSupport::Vmx(c) => write!(
                f,
                "VMX ept={} vpid={} unrestricted={} vmfunc={} ve={}",
                b(c.ept),
                b(c.vpid),
                b(c.unrestricted_guest),
                b(c.vmfunc),
                b(c.ept_violation_ve)
            ),
            VirtSupport::Svm(c) => write!(
                f,
                "SVM npt={} nrips={} decode_assists={} flush_by_asid={} vmcb_clean={} asids={}",
                b(c.npt),
                b(c.nrip_save),
                b(c.decode_assists),
                b(c.flush_by_asid),
                b(c.vmcb_clean),
                c.asids
            ),
            VirtSupport::None(why) => write!(f, "none ({why}): guests will not be started"),
        }
    }
}

static DETECTED: Once<VirtSupport> = Once::new();

fn rdmsr(msr: u32) -> u64 {
    // SAFETY: only called for MSRs whose presence CPUID just established
    // (VMX capability MSRs when CPUID.1:ECX.VMX=1, VM_CR when SVM is advertised).
    unsafe { Msr::new(msr).read() }
}

fn detect_vmx() -> VirtSupport {
    let fc = rdmsr(IA32_FEATURE_CONTROL);
    if fc & 1 != 0 && fc & (1 << 2) == 0 {
        return VirtSupport::None("VMX disabled by firmware in IA32_FEATURE_CONTROL");
    }
    let basic = rdmsr(IA32_VMX_BASIC);
    let primary = if basic & (1 << 55) != 0 {
        rdmsr(IA32_VMX_TRUE_PROCBASED_CTLS)
    } else {
        rdmsr(IA32_VMX_PROCBASED_CTLS)
    };
    let mut caps = VmxCaps::default();
    if (primary >> 32) & (1 << 31) != 0 {
        let allowed1 = rdmsr(IA32_VMX_PROCBASED_CTLS2) >> 32;
        caps.ept = allowed1 & (1 << 1) != 0;
        caps.vpid = allowed1 & (1 << 5) != 0;
        caps.unrestricted_guest = allowed1 & (1 << 7) != 0;
        caps.vmfunc = allowed1 & (1 << 13) != 0;
        caps.ept_violation_ve = allowed1 & (1 << 18) != 0;
    }
    if !caps.ept {
        return VirtSupport::None("VMX without EPT");
    }
    VirtSupport::Vmx(caps)
}

fn detect_svm(cpuid: &CpuId<raw_cpuid::CpuIdReaderNative>) -> VirtSupport {
    if rdmsr(VM_CR) & (1 << 4) != 0 {
        return VirtSupport::None("SVM disabled by firmware (VM_CR.SVMDIS)");
    }
    let Some(svm) = cpuid.get_svm_info() else {
        return VirtSupport::None("SVM advertised without CPUID leaf 0x8000000A");
    };
    let caps = SvmCaps {
        npt: svm.has_nested_paging(),
        nrip_save: svm.has_nrip(),
        decode_assists: svm.has_decode_assists(),
        flush_by_asid: svm.has_flush_by_asid(),
        vmcb_clean: svm.has_vmcb_clean_bits(),
        asids: svm.supported_asids(),
    };
    if !caps.npt {
        return VirtSupport::None("SVM without nested paging");
    }
    VirtSupport::Svm(caps)
}

/// Probes the CPU once (BSP) and logs the vendor and the `virt:` line.
pub fn detect() -> &'static VirtSupport {
    DETECTED.call_once(|| {
        let cpuid = CpuId::new();
        let vendor = cpuid.get_vendor_info();
        let brand = cpuid.get_processor_brand_string();
        log::info!(
            "cpu: vendor {}, {}",
            vendor.as_ref().map_or("unknown", |v| v.as_str()),
            brand
                .as_ref()
                .map_or("no brand string", |b| b.as_str().trim())
        );
        let vmx = cpuid.get_feature_info().is_some_and(|f| f.has_vmx());
        let svm = cpuid
            .get_extended_processor_and_feature_identifiers()
            .is_some_and(|f| f.has_svm());
        let support = if vmx {
            detect_vmx()
        } else if svm {
            detect_svm(&cpuid)
        } else {
            VirtSupport::None("CPU offers neither VMX nor SVM")
        };
        log::info!("virt: {support}");
        support
    })
}

/// Whether guests may be started; the error says why not.
pub fn guests_allowed() -> Result<&'static VirtSupport, &'static str> {
    match DETECTED.get() {
        None => Err("virtualization support not probed yet"),
        Some(VirtSupport::None(why)) => Err(why),
        Some(s) => Ok(s),
    }
}
