//! The VMCS: field encodings (Intel SDM vol. 3, appendix B), each checked at compile
//! time against the encoding's own width and type bits, and the VMX instructions that
//! reach it (`vmptrld`, `vmclear`, `vmread`, `vmwrite`) with their failure reported as
//! the VM-instruction error number.
//!
//! Mirrors Xen's `xen/arch/x86/include/asm/hvm/vmx/vmcs.h` (`enum vmcs_field`) and the
//! `__vmread`/`__vmwrite` helpers of `vmx/vmx.h`, written from the SDM.

use core::arch::asm;

/// A field's width, bits 14:13 of its encoding.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Width {
    W16 = 0,
    W64 = 1,
    W32 = 2,
    Natural = 3,
}

/// A field's type, bits 11:10 of its encoding.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Kind {
    Control = 0,
    /// VM-exit information (read-only).
    ExitInfo = 1,
    Guest = 2,
    Host = 3,
}

/// One VMCS field encoding.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct Field(pub u32);

impl Field {
    /// The width bits of the encoding.
    pub const fn width(self) -> u32 {
        (self.0 >> 13) & 3
    }
    /// The type bits of the encoding.
    pub const fn kind(self) -> u32 {
        (self.0 >> 10) & 3
    }
    /// Whether the encoding is well formed and of the given width and type: bit 0
    /// (high half access) is 0, bit 12 and bits 31:15 are reserved 0.
    pub const fn is(self, w: Width, k: Kind) -> bool {
        self.0 & 1 == 0
            && self.0 & (1 << 12) == 0
            && self.0 >> 15 == 0
            && self.width() == w as u32
            && self.kind() == k as u32
    }
}

/// Declares VMCS fields with their SDM encodings and checks each encoding's width and
/// type bits against the declared ones at compile time.
macro_rules! fields {
    ($($(#[$doc:meta])* $name:ident = $enc:literal, $w:ident, $k:ident;)*) => {
        $(
            $(#[$doc])*
            pub const $name: Field = Field($enc);
            const _: () = assert!($name.is(Width::$w, Kind::$k), stringify!($name));
        )*
    };
}

fields! {
    // 16-bit control fields.
    VIRTUAL_PROCESSOR_ID = 0x0000, W16, Control;
    /// EPTP index (the current view, with EPT-violation #VE).
    EPTP_INDEX = 0x0004, W16, Control;
    // 16-bit guest state.
    GUEST_ES_SELECTOR = 0x0800, W16, Guest;
    GUEST_CS_SELECTOR = 0x0802, W16, Guest;
    GUEST_SS_SELECTOR = 0x0804, W16, Guest;
    GUEST_DS_SELECTOR = 0x0806, W16, Guest;
    GUEST_FS_SELECTOR = 0x0808, W16, Guest;
    GUEST_GS_SELECTOR = 0x080A, W16, Guest;
    GUEST_LDTR_SELECTOR = 0x080C, W16, Guest;
    GUEST_TR_SELECTOR = 0x080E, W16, Guest;
    // 16-bit host state.
    HOST_ES_SELECTOR = 0x0C00, W16, Host;
    HOST_CS_SELECTOR = 0x0C02, W16, Host;
    HOST_SS_SELECTOR = 0x0C04, W16, Host;
    HOST_DS_SELECTOR = 0x0C06, W16, Host;
    HOST_FS_SELECTOR = 0x0C08, W16, Host;
    HOST_GS_SELECTOR = 0x0C0A, W16, Host;
    HOST_TR_SELECTOR = 0x0C0C, W16, Host;
    // 64-bit control fields.
    IO_BITMAP_A = 0x2000, W64, Control;
    IO_BITMAP_B = 0x2002, W64, Control;
    MSR_BITMAP = 0x2004, W64, Control;
    VM_EXIT_MSR_STORE_ADDR = 0x2006, W64, Control;
    VM_EXIT_MSR_LOAD_ADDR = 0x2008, W64, Control;
    VM_ENTRY_MSR_LOAD_ADDR = 0x200A, W64, Control;
    TSC_OFFSET = 0x2010, W64, Control;
    VM_FUNCTION_CONTROLS = 0x2018, W64, Control;
    EPT_POINTER = 0x201A, W64, Control;
    EPTP_LIST_ADDRESS = 0x2024, W64, Control;
    /// Virtualization-exception information address (the #VE info page).
    VE_INFORMATION_ADDRESS = 0x202A, W64, Control;
    // 64-bit read-only data.
    GUEST_PHYSICAL_ADDRESS = 0x2400, W64, ExitInfo;
    // 64-bit guest state.
    VMCS_LINK_POINTER = 0x2800, W64, Guest;
    GUEST_IA32_DEBUGCTL = 0x2802, W64, Guest;
    GUEST_IA32_PAT = 0x2804, W64, Guest;
    GUEST_IA32_EFER = 0x2806, W64, Guest;
    GUEST_PDPTE0 = 0x280A, W64, Guest;
    GUEST_PDPTE1 = 0x280C, W64, Guest;
    GUEST_PDPTE2 = 0x280E, W64, Guest;
    GUEST_PDPTE3 = 0x2810, W64, Guest;
    // 64-bit host state.
    HOST_IA32_PAT = 0x2C00, W64, Host;
    HOST_IA32_EFER = 0x2C02, W64, Host;
    // 32-bit control fields.
    PIN_BASED_VM_EXEC_CONTROL = 0x4000, W32, Control;
    CPU_BASED_VM_EXEC_CONTROL = 0x4002, W32, Control;
    EXCEPTION_BITMAP = 0x4004, W32, Control;
    PAGE_FAULT_ERROR_CODE_MASK = 0x4006, W32, Control;
    PAGE_FAULT_ERROR_CODE_MATCH = 0x4008, W32, Control;
    CR3_TARGET_COUNT = 0x400A, W32, Control;
    VM_EXIT_CONTROLS = 0x400C, W32, Control;
    VM_EXIT_MSR_STORE_COUNT = 0x400E, W32, Control;
    VM_EXIT_MSR_LOAD_COUNT = 0x4010, W32, Control;
    VM_ENTRY_CONTROLS = 0x4012, W32, Control;
    VM_ENTRY_MSR_LOAD_COUNT = 0x4014, W32, Control;
    VM_ENTRY_INTR_INFO = 0x4016, W32, Control;
    VM_ENTRY_EXCEPTION_ERROR_CODE = 0x4018, W32, Control;
    VM_ENTRY_INSTRUCTION_LEN = 0x401A, W32, Control;
    SECONDARY_VM_EXEC_CONTROL = 0x401E, W32, Control;
    // 32-bit read-only data.
    VM_INSTRUCTION_ERROR = 0x4400, W32, ExitInfo;
    VM_EXIT_REASON = 0x4402, W32, ExitInfo;
    VM_EXIT_INTR_INFO = 0x4404, W32, ExitInfo;
    VM_EXIT_INTR_ERROR_CODE = 0x4406, W32, ExitInfo;
    IDT_VECTORING_INFO = 0x4408, W32, ExitInfo;
    IDT_VECTORING_ERROR_CODE = 0x440A, W32, ExitInfo;
    VM_EXIT_INSTRUCTION_LEN = 0x440C, W32, ExitInfo;
    VMX_INSTRUCTION_INFO = 0x440E, W32, ExitInfo;
    // 32-bit guest state.
    GUEST_ES_LIMIT = 0x4800, W32, Guest;
    GUEST_CS_LIMIT = 0x4802, W32, Guest;
    GUEST_SS_LIMIT = 0x4804, W32, Guest;
    GUEST_DS_LIMIT = 0x4806, W32, Guest;
    GUEST_FS_LIMIT = 0x4808, W32, Guest;
    GUEST_GS_LIMIT = 0x480A, W32, Guest;
    GUEST_LDTR_LIMIT = 0x480C, W32, Guest;
    GUEST_TR_LIMIT = 0x480E, W32, Guest;
    GUEST_GDTR_LIMIT = 0x4810, W32, Guest;
    GUEST_IDTR_LIMIT = 0x4812, W32, Guest;
    GUEST_ES_AR_BYTES = 0x4814, W32, Guest;
    GUEST_CS_AR_BYTES = 0x4816, W32, Guest;
    GUEST_SS_AR_BYTES = 0x4818, W32, Guest;
    GUEST_DS_AR_BYTES = 0x481A, W32, Guest;
    GUEST_FS_AR_BYTES = 0x481C, W32, Guest;
    GUEST_GS_AR_BYTES = 0x481E, W32, Guest;
    GUEST_LDTR_AR_BYTES = 0x4820, W32, Guest;
    GUEST_TR_AR_BYTES = 0x4822, W32, Guest;
    GUEST_INTERRUPTIBILITY_INFO = 0x4824, W32, Guest;
    GUEST_ACTIVITY_STATE = 0x4826, W32, Guest;
    GUEST_SYSENTER_CS = 0x482A, W32, Guest;
    VMX_PREEMPTION_TIMER_VALUE = 0x482E, W32, Guest;
    // 32-bit host state.
    HOST_IA32_SYSENTER_CS = 0x4C00, W32, Host;
    // Natural-width control fields.
    CR0_GUEST_HOST_MASK = 0x6000, Natural, Control;
    CR4_GUEST_HOST_MASK = 0x6002, Natural, Control;
    CR0_READ_SHADOW = 0x6004, Natural, Control;
    CR4_READ_SHADOW = 0x6006, Natural, Control;
    // Natural-width read-only data.
    EXIT_QUALIFICATION = 0x6400, Natural, ExitInfo;
    GUEST_LINEAR_ADDRESS = 0x640A, Natural, ExitInfo;
    // Natural-width guest state.
    GUEST_CR0 = 0x6800, Natural, Guest;
    GUEST_CR3 = 0x6802, Natural, Guest;
    GUEST_CR4 = 0x6804, Natural, Guest;
    GUEST_ES_BASE = 0x6806, Natural, Guest;
    GUEST_CS_BASE = 0x6808, Natural, Guest;
    GUEST_SS_BASE = 0x680A, Natural, Guest;
    GUEST_DS_BASE = 0x680C, Natural, Guest;
    GUEST_FS_BASE = 0x680E, Natural, Guest;
    GUEST_GS_BASE = 0x6810, Natural, Guest;
    GUEST_LDTR_BASE = 0x6812, Natural, Guest;
    GUEST_TR_BASE = 0x6814, Natural, Guest;
    GUEST_GDTR_BASE = 0x6816, Natural, Guest;
    GUEST_IDTR_BASE = 0x6818, Natural, Guest;
    GUEST_DR7 = 0x681A, Natural, Guest;
    GUEST_RSP = 0x681C, Natural, Guest;
    GUEST_RIP = 0x681E, Natural, Guest;
    GUEST_RFLAGS = 0x6820, Natural, Guest;
    GUEST_PENDING_DBG_EXCEPTIONS = 0x6822, Natural, Guest;
    GUEST_SYSENTER_ESP = 0x6824, Natural, Guest;
    GUEST_SYSENTER_EIP = 0x6826, Natural, Guest;
    // Natural-width host state.
    HOST_CR0 = 0x6C00, Natural, Host;
    HOST_CR3 = 0x6C02, Natural, Host;
    HOST_CR4 = 0x6C04, Natural, Host;
    HOST_FS_BASE = 0x6C06, Natural, Host;
    HOST_GS_BASE = 0x6C08, Natural, Host;
    HOST_TR_BASE = 0x6C0A, Natural, Host;
    HOST_GDTR_BASE = 0x6C0C, Natural, Host;
    HOST_IDTR_BASE = 0x6C0E, Natural, Host;
    HOST_IA32_SYSENTER_ESP = 0x6C10, Natural, Host;
    HOST_IA32_SYSENTER_EIP = 0x6C12, Natural, Host;
    HOST_RSP = 0x6C14, Natural, Host;
    HOST_RIP = 0x6C16, Natural, Host;
}

/// A VMX instruction failed: `VMfailInvalid` (no current VMCS) or `VMfailValid` with
/// the VM-instruction error number (SDM 31.4).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum VmFail {
    Invalid,
    Valid(u32),
}

impl core::fmt::Display for VmFail {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            VmFail::Invalid => write!(f, "VMfailInvalid (no current VMCS)"),
            VmFail::Valid(n) => write!(f, "VMfailValid, error {n} ({})", error_name(*n)),
        }
    }
}

/// The SDM's name for a VM-instruction error number (table 31-1).
pub fn error_name(n: u32) -> &'static str {
    match n {
        1 => "VMCALL executed in VMX root operation",
        2 => "VMCLEAR with invalid physical address",
        3 => "VMCLEAR with VMXON pointer",
        4 => "VMLAUNCH with non-clear VMCS",
        5 => "VMRESUME with non-launched VMCS",
        6 => "VMRESUME after VMXOFF",
        7 => "VM entry with invalid control field(s)",
        8 => "VM entry with invalid host-state field(s)",
        9 => "VMPTRLD with invalid physical address",
        10 => "VMPTRLD with VMXON pointer",
        11 => "VMPTRLD with incorrect VMCS revision identifier",
        12 => "VMREAD/VMWRITE from/to unsupported VMCS component",
        13 => "VMWRITE to read-only VMCS component",
        15 => "VMXON executed in VMX root operation",
        16 => "VM entry with invalid executive-VMCS pointer",
        17 => "VM entry with non-launched executive VMCS",
        18 => "VM entry with executive-VMCS pointer not VMXON pointer",
        19 => "VMCALL with non-clear VMCS",
        20 => "VMCALL with invalid VM-exit control fields",
        22 => "VMCALL with incorrect MSEG revision identifier",
        23 => "VMXOFF under dual-monitor treatment",
        24 => "VMCALL with invalid SMM-monitor features",
        25 => "VM entry with invalid VM-execution control fields in executive VMCS",
        26 => "VM entry with events blocked by MOV SS",
        28 => "invalid operand to INVEPT/INVVPID",
        _ => "unknown",
    }
}

/// Turns the flags a VMX instruction left (CF: VMfailInvalid, ZF: VMfailValid) into a
/// result; on VMfailValid the error number is read from the current VMCS.
fn check(rflags: u64) -> Result<(), VmFail> {
    if rflags & 1 != 0 {
        Err(VmFail::Invalid)
    } else if rflags & (1 << 6) != 0 {
        Err(VmFail::Valid(read(VM_INSTRUCTION_ERROR) as u32))
    } else {
        Ok(())
    }
}

/// `vmread`: the field of the current VMCS (0 when it cannot be read: callers only
/// read fields that exist on every VMX CPU with a current VMCS).
pub fn read(field: Field) -> u64 {
    let value: u64;
    // SAFETY: VMREAD has no effect besides writing `value` and the flags; in VMX
    // root operation without a current VMCS it fails and leaves `value` unchanged.
    unsafe {
        asm!("xor {v:e}, {v:e}", "vmread {v}, {f}", f = in(reg) field.0 as u64, v = out(reg) value, options(nostack));
    }
    value
}

/// `vmwrite` of the current VMCS.
pub fn write(field: Field, value: u64) -> Result<(), VmFail> {
    let rflags: u64;
    // SAFETY: VMWRITE only changes the current VMCS (the caller's, by contract of
    // every function that loaded it) and the flags.
    unsafe {
        asm!("vmwrite {f}, {v}", "pushfq", "pop {r}", f = in(reg) field.0 as u64, v = in(reg) value, r = out(reg) rflags);
    }
    check(rflags)
}

/// `vmwrite` where a failure is a hypervisor bug (a field every VMX CPU has, on a
/// VMCS this CPU loaded): logged, not fatal, so the following VM entry reports it.
pub fn set(field: Field, value: u64) {
    if let Err(e) = write(field, value) {
        log::error!("vmx: vmwrite {:#06x} = {value:#x}: {e}", field.0);
    }
}

/// `vmptrld`: makes the VMCS at `pa` current on this CPU.
pub fn ptrld(pa: u64) -> Result<(), VmFail> {
    let rflags: u64;
    // SAFETY: `pa` is a VMCS region the caller allocated and initialised with the
    // revision id; VMPTRLD reads only that memory operand's 8 bytes here.
    unsafe {
        asm!("vmptrld [{p}]", "pushfq", "pop {r}", p = in(reg) &pa, r = out(reg) rflags);
    }
    check(rflags)
}

/// `vmclear`: flushes the VMCS at `pa` to memory and makes it clear (not current, not
/// launched).
pub fn clear(pa: u64) -> Result<(), VmFail> {
    let rflags: u64;
    // SAFETY: as for `ptrld`.
    unsafe {
        asm!("vmclear [{p}]", "pushfq", "pop {r}", p = in(reg) &pa, r = out(reg) rflags);
    }
    check(rflags)
}

/// `invept` of `kind` (1 single context, 2 all contexts) for `eptp`.
pub fn invept(kind: u64, eptp: u64) -> Result<(), VmFail> {
    let desc: [u64; 2] = [eptp, 0];
    let rflags: u64;
    // SAFETY: INVEPT only invalidates cached translations; the descriptor is ours.
    unsafe {
        asm!("invept {k}, [{d}]", "pushfq", "pop {r}", k = in(reg) kind, d = in(reg) &desc, r = out(reg) rflags);
    }
    check(rflags)
}

/// `invvpid` of `kind` (1 single context, 2 all contexts) for `vpid`.
pub fn invvpid(kind: u64, vpid: u16) -> Result<(), VmFail> {
    let desc: [u64; 2] = [vpid as u64, 0];
    let rflags: u64;
    // SAFETY: INVVPID only invalidates cached translations; the descriptor is ours.
    unsafe {
        asm!("invvpid {k}, [{d}]", "pushfq", "pop {r}", k = in(reg) kind, d = in(reg) &desc, r = out(reg) rflags);
    }
    check(rflags)
}
