//! VM-exit information: the basic exit reasons the backend decodes (SDM appendix C),
//! the exit fields read after every exit, and the report of a failed VM entry (the
//! VM-instruction error for `VMfailValid`, the exit reason and qualification for an
//! entry that failed its guest-state checks) so that a bad VMCS says what is wrong
//! instead of hanging.
//!
//! Mirrors Xen's `vmx/vmx.c` (`vmx_vmexit_handler`, `vmx_failed_vmentry`) and the
//! `EXIT_REASON_*` list of `asm/hvm/vmx/vmx.h`.

use super::vmcs::{self as v, VmFail};

/// Basic exit reasons (bits 15:0 of the exit-reason field).
pub mod reason {
    pub const EXCEPTION_NMI: u16 = 0;
    pub const EXTERNAL_INTERRUPT: u16 = 1;
    pub const TRIPLE_FAULT: u16 = 2;
    pub const INTERRUPT_WINDOW: u16 = 7;
    pub const CPUID: u16 = 10;
    pub const HLT: u16 = 12;
    pub const VMCALL: u16 = 18;
    /// VMCLEAR .. VMXON (19..=27), INVEPT (50), INVVPID (53): VMX instructions.
    pub const VMCLEAR: u16 = 19;
    pub const VMXON: u16 = 27;
    pub const INVEPT: u16 = 50;
    pub const INVVPID: u16 = 53;
    pub const XSETBV: u16 = 55;
    pub const CR_ACCESS: u16 = 28;
    pub const DR_ACCESS: u16 = 29;
    pub const IO_INSTRUCTION: u16 = 30;
    pub const RDMSR: u16 = 31;
    pub const WRMSR: u16 = 32;
    pub const INVALID_GUEST_STATE: u16 = 33;
    pub const MSR_LOADING: u16 = 34;
    pub const MACHINE_CHECK: u16 = 41;
    pub const EPT_VIOLATION: u16 = 48;
    pub const EPT_MISCONFIG: u16 = 49;
    pub const PREEMPTION_TIMER: u16 = 52;
    pub const VMFUNC: u16 = 59;

    /// A short name for log lines.
    pub fn name(r: u16) -> &'static str {
        match r {
            EXCEPTION_NMI => "exception or NMI",
            EXTERNAL_INTERRUPT => "external interrupt",
            TRIPLE_FAULT => "triple fault",
            INTERRUPT_WINDOW => "interrupt window",
            CPUID => "CPUID",
            HLT => "HLT",
            VMCALL => "VMCALL",
            CR_ACCESS => "control-register access",
            IO_INSTRUCTION => "I/O instruction",
            RDMSR => "RDMSR",
            WRMSR => "WRMSR",
            INVALID_GUEST_STATE => "VM-entry failure: invalid guest state",
            MSR_LOADING => "VM-entry failure: MSR loading",
            MACHINE_CHECK => "VM-entry failure: machine check",
            EPT_VIOLATION => "EPT violation",
            EPT_MISCONFIG => "EPT misconfiguration",
            PREEMPTION_TIMER => "VMX-preemption timer expired",
            VMFUNC => "VMFUNC",
            _ => "other",
        }
    }
}

/// The exit fields read after every VM exit.
#[derive(Clone, Copy, Debug, Default)]
pub struct ExitInfo {
    /// The full exit-reason field (bit 31: VM-entry failure).
    pub reason: u32,
    pub qualification: u64,
    pub gpa: u64,
    pub gla: u64,
    pub instr_len: u32,
    pub intr_info: u32,
    pub intr_error: u32,
    pub idt_vectoring_info: u32,
    pub idt_vectoring_error: u32,
    pub rip: u64,
}

impl ExitInfo {
    /// Reads the exit fields of the current VMCS.
    pub fn read() -> Self {
        let reason = v::read(v::VM_EXIT_REASON) as u32;
        let basic = reason as u16;
        let ept = basic == reason::EPT_VIOLATION || basic == reason::EPT_MISCONFIG;
        ExitInfo {
            reason,
            qualification: v::read(v::EXIT_QUALIFICATION),
            gpa: if ept {
                v::read(v::GUEST_PHYSICAL_ADDRESS)
            } else {
                0
            },
            gla: if basic == reason::EPT_VIOLATION {
                v::read(v::GUEST_LINEAR_ADDRESS)
            } else {
                0
            },
            instr_len: v::read(v::VM_EXIT_INSTRUCTION_LEN) as u32,
            intr_info: v::read(v::VM_EXIT_INTR_INFO) as u32,
            intr_error: v::read(v::VM_EXIT_INTR_ERROR_CODE) as u32,
            idt_vectoring_info: v::read(v::IDT_VECTORING_INFO) as u32,
            idt_vectoring_error: v::read(v::IDT_VECTORING_ERROR_CODE) as u32,
            rip: v::read(v::GUEST_RIP),
        }
    }

    /// The basic exit reason.
    pub fn basic_reason(&self) -> u16 {
        self.reason as u16
    }

    /// Bit 31: the VM entry failed (reasons 33, 34, 41).
    pub fn entry_failed(&self) -> bool {
        self.reason & (1 << 31) != 0
    }
}

/// What an invalid-guest-state exit's qualification means (SDM 27.8).
fn guest_state_qualification(q: u64) -> &'static str {
    match q {
        0 => "guest-state check failed (no detail)",
        2 => "failure loading the PDPTEs",
        3 => "failure on NMI injection (blocked by STI/MOV SS)",
        4 => "invalid VMCS link pointer",
        _ => "unknown",
    }
}

/// Logs a failed VM entry: `fail` for a VMLAUNCH/VMRESUME that failed its control or
/// host-state checks (VMfailValid with the VM-instruction error), `info` for an entry
/// that failed the guest-state checks (exit reason with bit 31, exit qualification).
pub fn report_entry_failure(info: &ExitInfo, fail: Option<VmFail>) {
    match fail {
        Some(f) => log::error!(
            "vmx: VM entry failed: {f} (VM-instruction error {}, exit qualification {:#x})",
            v::read(v::VM_INSTRUCTION_ERROR),
            v::read(v::EXIT_QUALIFICATION)
        ),
        None => log::error!(
            "vmx: VM entry failed: exit reason {:#x} ({}), exit qualification {:#x} ({}), VM-instruction error {}, guest rip {:#x}",
            info.reason,
            reason::name(info.basic_reason()),
            info.qualification,
            if info.basic_reason() == reason::INVALID_GUEST_STATE {
                guest_state_qualification(info.qualification)
            } else {
                "MSR entry index / machine check"
            },
            v::read(v::VM_INSTRUCTION_ERROR),
            info.rip
        ),
    }
    dump_guest_state();
}

/// The guest-state fields most VM-entry checks look at.
fn dump_guest_state() {
    log::error!(
        "vmx: guest cr0 {:#x} cr3 {:#x} cr4 {:#x} efer {:#x} rip {:#x} rsp {:#x} rflags {:#x} entry-ctl {:#x}",
        v::read(v::GUEST_CR0),
        v::read(v::GUEST_CR3),
        v::read(v::GUEST_CR4),
        v::read(v::GUEST_IA32_EFER),
        v::read(v::GUEST_RIP),
        v::read(v::GUEST_RSP),
        v::read(v::GUEST_RFLAGS),
        v::read(v::VM_ENTRY_CONTROLS)
    );
    log::error!(
        "vmx: guest cs {:#x}/{:#x} ss {:#x}/{:#x} tr {:#x}/{:#x} ldtr ar {:#x}; pin {:#x} proc {:#x} proc2 {:#x} exit {:#x}",
        v::read(v::GUEST_CS_SELECTOR),
        v::read(v::GUEST_CS_AR_BYTES),
        v::read(v::GUEST_SS_SELECTOR),
        v::read(v::GUEST_SS_AR_BYTES),
        v::read(v::GUEST_TR_SELECTOR),
        v::read(v::GUEST_TR_AR_BYTES),
        v::read(v::GUEST_LDTR_AR_BYTES),
        v::read(v::PIN_BASED_VM_EXEC_CONTROL),
        v::read(v::CPU_BASED_VM_EXEC_CONTROL),
        v::read(v::SECONDARY_VM_EXEC_CONTROL),
        v::read(v::VM_EXIT_CONTROLS)
    );
}
