//! VMX capabilities read from the `IA32_VMX_*` MSRs, and the VM-execution, VM-exit and
//! VM-entry controls computed from them: every control word is "what we want, plus
//! what the CPU forces to 1, minus nothing the CPU cannot do" (SDM appendix A.3–A.5),
//! with the `IA32_VMX_TRUE_*` MSRs when `IA32_VMX_BASIC` bit 55 says they exist. A
//! control we *need* but the CPU lacks is an error naming it; nothing is hard-coded.
//!
//! Mirrors Xen's `vmx/vmcs.c` (`vmx_init_vmcs_config`, `adjust_vmx_controls`).

use spin::Once;
use x86_64::registers::model_specific::Msr;

pub const IA32_FEATURE_CONTROL: u32 = 0x3A;
pub const IA32_VMX_BASIC: u32 = 0x480;
const IA32_VMX_PINBASED_CTLS: u32 = 0x481;
const IA32_VMX_PROCBASED_CTLS: u32 = 0x482;
const IA32_VMX_EXIT_CTLS: u32 = 0x483;
const IA32_VMX_ENTRY_CTLS: u32 = 0x484;
const IA32_VMX_MISC: u32 = 0x485;
pub const IA32_VMX_CR0_FIXED0: u32 = 0x486;
pub const IA32_VMX_CR0_FIXED1: u32 = 0x487;
pub const IA32_VMX_CR4_FIXED0: u32 = 0x488;
pub const IA32_VMX_CR4_FIXED1: u32 = 0x489;
const IA32_VMX_PROCBASED_CTLS2: u32 = 0x48B;
const IA32_VMX_EPT_VPID_CAP: u32 = 0x48C;
const IA32_VMX_TRUE_PINBASED_CTLS: u32 = 0x48D;
const IA32_VMX_TRUE_PROCBASED_CTLS: u32 = 0x48E;
const IA32_VMX_TRUE_EXIT_CTLS: u32 = 0x48F;
const IA32_VMX_TRUE_ENTRY_CTLS: u32 = 0x490;
const IA32_VMX_VMFUNC: u32 = 0x491;

/// Pin-based controls (SDM table 25-5).
pub mod pin {
    pub const EXT_INTR_EXITING: u32 = 1 << 0;
    pub const NMI_EXITING: u32 = 1 << 3;
    pub const VIRTUAL_NMIS: u32 = 1 << 5;
    pub const PREEMPTION_TIMER: u32 = 1 << 6;
}

/// Primary processor-based controls (SDM table 25-6).
pub mod proc {
    pub const INTR_WINDOW_EXITING: u32 = 1 << 2;
    pub const HLT_EXITING: u32 = 1 << 7;
    pub const CR3_LOAD_EXITING: u32 = 1 << 15;
    pub const CR3_STORE_EXITING: u32 = 1 << 16;
    pub const MOV_DR_EXITING: u32 = 1 << 23;
    pub const UNCOND_IO_EXITING: u32 = 1 << 24;
    pub const USE_MSR_BITMAPS: u32 = 1 << 28;
    pub const SECONDARY_CONTROLS: u32 = 1 << 31;
}

/// Secondary processor-based controls (SDM table 25-7).
pub mod proc2 {
    pub const ENABLE_EPT: u32 = 1 << 1;
    pub const ENABLE_RDTSCP: u32 = 1 << 3;
    pub const ENABLE_VPID: u32 = 1 << 5;
    pub const UNRESTRICTED_GUEST: u32 = 1 << 7;
    pub const ENABLE_INVPCID: u32 = 1 << 12;
    pub const ENABLE_VM_FUNCTIONS: u32 = 1 << 13;
    pub const EPT_VIOLATION_VE: u32 = 1 << 18;
    pub const ENABLE_XSAVES: u32 = 1 << 20;
}

/// VM-exit controls (SDM table 25-13).
pub mod exit {
    pub const HOST_ADDR_SPACE_SIZE: u32 = 1 << 9;
    pub const SAVE_IA32_PAT: u32 = 1 << 18;
    pub const LOAD_IA32_PAT: u32 = 1 << 19;
    pub const SAVE_IA32_EFER: u32 = 1 << 20;
    pub const LOAD_IA32_EFER: u32 = 1 << 21;
    pub const SAVE_PREEMPTION_TIMER: u32 = 1 << 22;
}

/// VM-entry controls (SDM table 25-15).
pub mod entry {
    pub const IA32E_MODE_GUEST: u32 = 1 << 9;
    pub const LOAD_IA32_PAT: u32 = 1 << 14;
    pub const LOAD_IA32_EFER: u32 = 1 << 15;
}

/// `IA32_VMX_EPT_VPID_CAP` bits (SDM A.10).
pub mod ept_cap {
    pub const EXECUTE_ONLY: u64 = 1 << 0;
    pub const WALK_4: u64 = 1 << 6;
    pub const MEMTYPE_WB: u64 = 1 << 14;
    pub const INVEPT: u64 = 1 << 20;
    pub const INVEPT_SINGLE: u64 = 1 << 25;
    pub const INVEPT_ALL: u64 = 1 << 26;
    pub const INVVPID: u64 = 1 << 32;
    pub const INVVPID_SINGLE: u64 = 1 << 41;
    pub const INVVPID_ALL: u64 = 1 << 42;
}

/// The allowed settings of one control word: bits that must be 1 (allowed-0 settings,
/// the MSR's low half) and bits that may be 1 (allowed-1 settings, its high half).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Allowed {
    pub must_be_1: u32,
    pub may_be_1: u32,
}

impl Allowed {
    fn from_msr(v: u64) -> Self {
        Allowed {
            must_be_1: v as u32,
            may_be_1: (v >> 32) as u32,
        }
    }

    /// The control word for `required | optional`: the forced bits added, the
    /// optional ones the CPU cannot set dropped; `Err(bits)` names the required ones
    /// it cannot set.
    pub const fn adjust(self, required: u32, optional: u32) -> Result<u32, u32> {
        let missing = required & !self.may_be_1;
        if missing != 0 {
            return Err(missing);
        }
        Ok((required | optional | self.must_be_1) & self.may_be_1)
    }

    /// Whether `bits` may all be 1.
    pub const fn allows(self, bits: u32) -> bool {
        self.may_be_1 & bits == bits
    }
}

// Compile-time checks of the adjustment rule (SDM A.3.1): forced bits are added,
// optional bits the CPU cannot set are dropped, a required bit it cannot set is an
// error naming that bit. (Bochs tigerlake's real values are checked end to end by
// the bochs-vmx-selftest scenario.)
const _: () = {
    let a = Allowed {
        must_be_1: 0x0000_0016,
        may_be_1: 0x0000_00ff,
    };
    assert!(matches!(a.adjust(0x01, 0x100), Ok(0x17)));
    assert!(matches!(a.adjust(0x01, 0x80), Ok(0x97)));
    assert!(matches!(a.adjust(0x301, 0), Err(0x300)));
    assert!(a.allows(0x81) && !a.allows(0x101));
    // Nothing allowed at all: only the required bits fail.
    let none = Allowed {
        must_be_1: 0,
        may_be_1: 0,
    };
    assert!(matches!(none.adjust(0, 0xffff_ffff), Ok(0)));
};

/// Everything the backend needs from the capability MSRs.
#[derive(Clone, Copy, Debug)]
pub struct VmxCapabilities {
    /// VMCS revision identifier (`IA32_VMX_BASIC` bits 30:0).
    pub revision: u32,
    pub pin: Allowed,
    pub proc: Allowed,
    pub proc2: Allowed,
    pub exit: Allowed,
    pub entry: Allowed,
    pub ept_vpid: u64,
    /// `IA32_VMX_VMFUNC`: bit 0 = EPTP switching.
    pub vmfunc: u64,
    /// `IA32_VMX_MISC`: bits 4:0 = preemption-timer rate (TSC >> n).
    pub misc: u64,
    pub cr0_fixed0: u64,
    pub cr0_fixed1: u64,
    pub cr4_fixed0: u64,
    pub cr4_fixed1: u64,
}

impl VmxCapabilities {
    /// Whether the guest may switch EPT views itself with VMFUNC leaf 0.
    pub fn eptp_switching(&self) -> bool {
        self.proc2.allows(proc2::ENABLE_VM_FUNCTIONS) && self.vmfunc & 1 != 0
    }
    /// Whether EPT violations can become a #VE in the guest.
    pub fn ve(&self) -> bool {
        self.proc2.allows(proc2::EPT_VIOLATION_VE)
    }
    /// The preemption timer counts down every 2^rate TSC ticks.
    pub fn preemption_timer_rate(&self) -> u32 {
        (self.misc & 0x1f) as u32
    }
}

fn rdmsr(msr: u32) -> u64 {
    // SAFETY: only called after `virt::detect` found VMX (CPUID.1:ECX.VMX), so the
    // capability MSRs exist; the TRUE ones are read only when VMX_BASIC bit 55 says so,
    // the secondary/EPT/VMFUNC ones only when the controls that gate them are allowed.
    unsafe { Msr::new(msr).read() }
}

static CAPS: Once<VmxCapabilities> = Once::new();

/// Reads the capability MSRs once (they are the same on every CPU of a machine).
pub fn get() -> &'static VmxCapabilities {
    CAPS.call_once(|| {
        let basic = rdmsr(IA32_VMX_BASIC);
        let true_ctls = basic & (1 << 55) != 0;
        let pick = |plain, tru| rdmsr(if true_ctls { tru } else { plain });
        let proc = Allowed::from_msr(pick(IA32_VMX_PROCBASED_CTLS, IA32_VMX_TRUE_PROCBASED_CTLS));
        let proc2 = if proc.allows(proc::SECONDARY_CONTROLS) {
            Allowed::from_msr(rdmsr(IA32_VMX_PROCBASED_CTLS2))
        } else {
            Allowed::default()
        };
        let ept_vpid = if proc2.allows(proc2::ENABLE_EPT) || proc2.allows(proc2::ENABLE_VPID) {
            rdmsr(IA32_VMX_EPT_VPID_CAP)
        } else {
            0
        };
        let vmfunc = if proc2.allows(proc2::ENABLE_VM_FUNCTIONS) {
            rdmsr(IA32_VMX_VMFUNC)
        } else {
            0
        };
        VmxCapabilities {
            revision: (basic & 0x7fff_ffff) as u32,
            pin: Allowed::from_msr(pick(IA32_VMX_PINBASED_CTLS, IA32_VMX_TRUE_PINBASED_CTLS)),
            proc,
            proc2,
            exit: Allowed::from_msr(pick(IA32_VMX_EXIT_CTLS, IA32_VMX_TRUE_EXIT_CTLS)),
            entry: Allowed::from_msr(pick(IA32_VMX_ENTRY_CTLS, IA32_VMX_TRUE_ENTRY_CTLS)),
            ept_vpid,
            vmfunc,
            misc: rdmsr(IA32_VMX_MISC),
            cr0_fixed0: rdmsr(IA32_VMX_CR0_FIXED0),
            cr0_fixed1: rdmsr(IA32_VMX_CR0_FIXED1),
            cr4_fixed0: rdmsr(IA32_VMX_CR4_FIXED0),
            cr4_fixed1: rdmsr(IA32_VMX_CR4_FIXED1),
        }
    })
}

/// The control words every vCPU starts from (dynamic bits such as interrupt-window
/// exiting and the IA-32e-mode entry control are switched per vCPU later).
#[derive(Clone, Copy, Debug)]
pub struct Controls {
    pub pin: u32,
    pub proc: u32,
    pub proc2: u32,
    pub exit: u32,
    pub entry: u32,
}

/// Which control word a missing required bit belongs to, for the error message.
#[derive(Clone, Copy, Debug)]
pub struct MissingControl {
    pub word: &'static str,
    pub bits: u32,
}

impl core::fmt::Display for MissingControl {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(
            f,
            "the CPU cannot set required {} control bits {:#x}",
            self.word, self.bits
        )
    }
}

/// Computes the controls from the capability MSRs. Required: external-interrupt
/// exiting, HLT and unconditional I/O exiting, secondary controls with EPT and
/// unrestricted guest (the PVH entry runs with paging off), a 64-bit host, EFER saved
/// and loaded. Optional where the CPU offers them: VPID, VMFUNC, EPT-violation #VE,
/// RDTSCP/INVPCID/XSAVES pass-through, the preemption timer, NMI exiting.
pub fn controls(c: &VmxCapabilities) -> Result<Controls, MissingControl> {
    let miss = |word| move |bits| MissingControl { word, bits };
    let pin = c
        .pin
        .adjust(pin::EXT_INTR_EXITING, pin::NMI_EXITING)
        .map_err(miss("pin-based"))?;
    // CR3 load/store exiting are not wanted: `adjust` keeps them only where the CPU
    // forces them (old CPUs without the TRUE MSRs), which EPT makes harmless.
    let proc = c
        .proc
        .adjust(
            proc::HLT_EXITING | proc::UNCOND_IO_EXITING | proc::SECONDARY_CONTROLS,
            proc::USE_MSR_BITMAPS | proc::MOV_DR_EXITING,
        )
        .map_err(miss("primary processor-based"))?;
    let proc2 = c
        .proc2
        .adjust(
            proc2::ENABLE_EPT | proc2::UNRESTRICTED_GUEST,
            // Not RDTSCP or INVPCID: the CPU policy does not offer them, and
            // without these controls the instructions are #UD, as CPUID says.
            proc2::ENABLE_VPID | proc2::ENABLE_XSAVES,
        )
        .map_err(miss("secondary processor-based"))?;
    let exit = c
        .exit
        .adjust(
            exit::HOST_ADDR_SPACE_SIZE | exit::SAVE_IA32_EFER | exit::LOAD_IA32_EFER,
            exit::SAVE_IA32_PAT | exit::LOAD_IA32_PAT,
        )
        .map_err(miss("VM-exit"))?;
    let entry = c
        .entry
        .adjust(entry::LOAD_IA32_EFER, entry::LOAD_IA32_PAT)
        .map_err(miss("VM-entry"))?;
    // The IA-32e-mode-guest entry control follows the guest's EFER.LMA, not a default.
    let entry = entry & !entry::IA32E_MODE_GUEST;
    Ok(Controls {
        pin,
        proc,
        proc2,
        exit,
        entry,
    })
}

/// Adjusts a CR0 value to the fixed bits; PE and PG are exempt under unrestricted
/// guest (SDM 26.3.1.1).
pub fn fix_guest_cr0(c: &VmxCapabilities, cr0: u64) -> u64 {
    let exempt = 1 | (1 << 31);
    (cr0 | (c.cr0_fixed0 & !exempt)) & (c.cr0_fixed1 | exempt)
}

/// Adjusts a CR4 value to the fixed bits.
pub fn fix_cr4(c: &VmxCapabilities, cr4: u64) -> u64 {
    (cr4 | c.cr4_fixed0) & c.cr4_fixed1
}

/// The CR0 bits the host owns in a guest: those the CPU forces to 1 beyond PE and PG
/// (NE, in practice), so a guest that clears them sees its own value in the shadow.
pub fn cr0_host_owned(c: &VmxCapabilities) -> u64 {
    c.cr0_fixed0 & !(1 | (1 << 31))
}

/// The CR4 bits the host owns (VMXE, in practice).
pub fn cr4_host_owned(c: &VmxCapabilities) -> u64 {
    c.cr4_fixed0
}
