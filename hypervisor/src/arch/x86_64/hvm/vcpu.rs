//! The vCPU interface: the one surface a hardware-virtualization backend (SVM in
//! `hvm/svm/`, VMX in `hvm/vmx/`) offers to the rest of the hypervisor.
//!
//! Mirrors the role of Xen's `struct hvm_function_table` (`xen/arch/x86/include/
//! asm/hvm/hvm.h`) and Linux KVM's `struct kvm_x86_ops`: run until an exit, the exit
//! normalised into [`VmExit`], register access, event injection, the stage-2 root,
//! and the paging state a guest-virtual walker needs. Nothing above this file names
//! a vendor; the vendor-neutral exit handlers (`hvm/exit.rs`) take a
//! `&mut dyn Vcpu` and a [`VmExit`] and return an [`ExitOutcome`].

use crate::common::memory::{EntryEncoder, Rights};

/// A guest register reachable through [`Vcpu::reg`] / [`Vcpu::set_reg`].
///
/// The general-purpose registers are numbered as in instruction encodings
/// (`Rax` = 0 .. `R15` = 15), so a decoded ModRM register number converts with
/// [`Reg::gpr`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub enum Reg {
    Rax = 0,
    Rcx = 1,
    Rdx = 2,
    Rbx = 3,
    Rsp = 4,
    Rbp = 5,
    Rsi = 6,
    Rdi = 7,
    R8 = 8,
    R9 = 9,
    R10 = 10,
    R11 = 11,
    R12 = 12,
    R13 = 13,
    R14 = 14,
    R15 = 15,
    Rip = 16,
    Rflags = 17,
}

impl Reg {
    /// The general-purpose register with encoding `n` (0..16).
    pub fn gpr(n: u8) -> Option<Reg> {
        const GPRS: [Reg; 16] = [
            Reg::Rax,
            Reg::Rcx,
            Reg::Rdx,
            Reg::Rbx,
            Reg::Rsp,
            Reg::Rbp,
            Reg::Rsi,
            Reg::Rdi,
            Reg::R8,
            Reg::R9,
            Reg::R10,
            Reg::R11,
            Reg::R12,
            Reg::R13,
            Reg::R14,
            Reg::R15,
        ];
        GPRS.get(n as usize).copied()
    }
}

/// The guest's control state a page-table walker and the hypercall calling
/// convention need (Xen's `hvm_guest_x86_mode`, `guest_walk_tables`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PagingState {
    pub cr0: u64,
    pub cr3: u64,
    pub cr4: u64,
    pub efer: u64,
}

impl PagingState {
    pub const CR0_PE: u64 = 1 << 0;
    pub const CR0_PG: u64 = 1 << 31;
    pub const CR4_PAE: u64 = 1 << 5;
    pub const EFER_LMA: u64 = 1 << 10;

    /// Paging is on (CR0.PG).
    pub fn paging(&self) -> bool {
        self.cr0 & Self::CR0_PG != 0
    }
}

/// The execution mode of the guest (for the hypercall calling convention:
/// Xen's `hvm_guest_x86_mode()` returns 8 for 64-bit, 4 for 32-bit, 2 for 16-bit).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CpuMode {
    /// CR0.PE clear.
    Real,
    /// EFLAGS.VM set.
    Virtual8086,
    /// Protected mode or long-mode compatibility, 16-bit code segment.
    Protected16,
    /// Protected mode or long-mode compatibility, 32-bit code segment.
    Protected32,
    /// Long mode with CS.L set.
    Long64,
}

/// One segment register as the backends load it at vCPU set-up (PVH 32-bit entry:
/// flat 4 GiB code/data segments).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Segment {
    pub selector: u16,
    pub base: u64,
    pub limit: u32,
    /// Access rights in the VMX layout (`type | S<<4 | DPL<<5 | P<<7 | AVL<<12 |
    /// L<<13 | D/B<<14 | G<<15`); SVM packs them into its 12-bit form itself.
    pub attrib: u16,
}

impl Segment {
    /// Flat 32-bit ring-0 code segment (type 0xB execute/read accessed, S, P, D, G).
    pub const fn flat_code32(selector: u16) -> Segment {
        Segment {
            selector,
            base: 0,
            limit: 0xFFFF_FFFF,
            attrib: 0xB | 1 << 4 | 1 << 7 | 1 << 14 | 1 << 15,
        }
    }
    /// 64-bit ring-0 code segment (type 0xB, S, P, L, G).
    pub const fn code64(selector: u16) -> Segment {
        Segment {
            selector,
            base: 0,
            limit: 0xFFFF_FFFF,
            attrib: 0xB | 1 << 4 | 1 << 7 | 1 << 13 | 1 << 15,
        }
    }
    /// Flat 32-bit ring-0 data segment (type 3 read/write accessed, S, P, B, G).
    pub const fn flat_data32(selector: u16) -> Segment {
        Segment {
            selector,
            base: 0,
            limit: 0xFFFF_FFFF,
            attrib: 0x3 | 1 << 4 | 1 << 7 | 1 << 14 | 1 << 15,
        }
    }
    /// A 32-bit TSS the loader provides because VMX/SVM insist on a usable TR
    /// (type 0xB busy TSS, P).
    pub const fn tss32() -> Segment {
        Segment {
            selector: 0,
            base: 0,
            limit: 0x67,
            attrib: 0xB | 1 << 7,
        }
    }
}

/// The architectural state a vCPU starts in. For PVH (`XEN_ELFNOTE_PHYS32_ENTRY`):
/// 32-bit protected mode, paging off, flat CS/DS/ES/SS/FS/GS, `rbx` = the
/// `hvm_start_info` GPA, everything else zero (Xen's `arch_set_info_hvm_guest`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct InitialState {
    pub rip: u64,
    pub rsp: u64,
    pub rbx: u64,
    pub rflags: u64,
    pub cr0: u64,
    pub cr3: u64,
    pub cr4: u64,
    pub efer: u64,
    pub cs: Segment,
    /// DS, ES, SS, FS, GS.
    pub data: Segment,
}

impl InitialState {
    /// The PVH entry state: `entry` in 32-bit protected mode, `start_info` in EBX.
    pub fn pvh(entry: u64, start_info: u64) -> InitialState {
        InitialState {
            rip: entry,
            rsp: 0,
            rbx: start_info,
            rflags: 0x2,
            // PE | ET (bit 4, hard-wired on modern CPUs).
            cr0: PagingState::CR0_PE | 1 << 4,
            cr3: 0,
            cr4: 0,
            efer: 0,
            cs: Segment::flat_code32(0x10),
            data: Segment::flat_data32(0x18),
        }
    }
}

/// The kind of a port I/O access.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct IoAccess {
    pub port: u16,
    /// 1, 2 or 4 bytes.
    pub size: u8,
    /// OUT/OUTS (true) or IN/INS (false).
    pub write: bool,
    /// INS/OUTS: the handlers do not emulate these; the domain is crashed.
    pub string: bool,
    pub rep: bool,
}

/// An exception or interrupt to inject.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Event {
    /// A hardware exception (`vector` < 32), with its error code where the
    /// architecture pushes one.
    Exception { vector: u8, error_code: Option<u32> },
    /// An external (maskable) interrupt; only deliverable while
    /// [`Vcpu::interruptible`].
    Interrupt { vector: u8 },
    /// NMI (vector 2).
    Nmi,
}

/// Why the vCPU stopped running, in vendor-neutral terms. The backend decodes its
/// exit code (SVM `EXITCODE` + `EXITINFO1/2`, VMX basic exit reason +
/// qualification) into one of these and remembers the instruction length so that
/// [`Vcpu::advance_rip`] works for the instruction-intercept exits.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum VmExit {
    /// VMMCALL (SVM) / VMCALL (VMX).
    Hypercall,
    /// CPUID with the leaf in EAX and subleaf in ECX.
    Cpuid,
    /// RDMSR of ECX.
    MsrRead,
    /// WRMSR of ECX with EDX:EAX.
    MsrWrite,
    /// IN/OUT (string or not). The value is in/for AL/AX/EAX.
    Io(IoAccess),
    /// HLT.
    Hlt,
    /// MOV to CR4 that the policy check must see (bits outside the mask given to
    /// [`Vcpu::set_cr4_valid`], or every CR4 write where the backend cannot
    /// filter): `value` when the backend decoded the source register (then
    /// [`Vcpu::advance_rip`] steps over it), `None` when the caller decodes the
    /// instruction at RIP itself.
    Cr4Write { value: Option<u64> },
    /// Nested-page fault / EPT violation: the guest-physical access was refused
    /// by stage 2 (`present`: the entry existed but lacked the right).
    Stage2Fault {
        gpa: u64,
        /// The linear address, where the hardware reports one.
        gla: Option<u64>,
        /// The access attempted.
        access: Rights,
        present: bool,
    },
    /// An intercepted exception (e.g. #UD), with the error code where it has one.
    Exception { vector: u8, error_code: Option<u32> },
    /// SVM shutdown / VMX triple fault: the guest is beyond saving.
    TripleFault,
    /// A physical interrupt arrived while the guest ran (the host handles it once
    /// interrupts are enabled again); nothing to do for the guest.
    ExtInterrupt,
    /// The guest can take an interrupt now (requested with
    /// [`Vcpu::request_interrupt_window`]).
    InterruptWindow,
    /// VMFUNC leaf 0 (EPTP switching) not handled by hardware, or the guest-side
    /// view switch on hardware without VMFUNC: `index` in ECX.
    Vmfunc,
    /// The backend could not enter the guest (VMRUN `VMEXIT_INVALID`, VM-entry
    /// failure): the vCPU state is inconsistent; the domain is crashed.
    EntryFailed { raw: u64 },
    /// Anything else the backend intercepts but does not decode.
    Unknown { raw: u64, info1: u64, info2: u64 },
}

/// What the exit handler asks the run loop to do next.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ExitOutcome {
    /// Enter the guest again.
    Continue,
    /// The vCPU blocked (HLT, `SCHEDOP_block`, `SCHEDOP_poll`): don't run it until
    /// an event or timer wakes it.
    Block,
    /// Give the physical CPU to another vCPU (`SCHEDOP_yield`), then continue.
    Yield,
    /// The domain shut down with `SHUTDOWN_*` `reason` (already recorded in the
    /// domain by `SCHEDOP_shutdown`).
    Shutdown { reason: u32 },
    /// The domain was crashed (`domain_crash`): it runs no more. The reason has
    /// been logged as `d<id> crashed: <why>`.
    Crashed,
}

/// Errors of vCPU creation and configuration.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum VcpuError {
    /// No frame for the control block / host save area / bitmaps.
    OutOfMemory,
    /// The CPU cannot virtualize (no SVM/VMX, or it is disabled), and why.
    Unsupported(&'static str),
}

/// One virtual CPU of a hardware-virtualization backend.
///
/// A `Vcpu` is run by one physical CPU at a time; the caller ensures the
/// per-CPU virtualization enable (`EFER.SVME` + `VM_HSAVE_PA`, VMXON) has been done
/// on the CPU that calls [`Vcpu::run`] (see [`super::cpu_enable`]).
pub trait Vcpu: Send {
    /// Enter the guest and run until the next exit; returns the decoded reason.
    /// Pending injections and the stage-2 root set before are applied on entry.
    fn run(&mut self) -> VmExit;

    /// Read a register.
    fn reg(&self, r: Reg) -> u64;
    /// Write a register.
    fn set_reg(&mut self, r: Reg, value: u64);

    /// RAX and the five argument registers of the 64-bit hypercall convention
    /// (RDI, RSI, RDX, R10, R8), read at once: a null hypercall's exit path
    /// is short enough that six separate [`Vcpu::reg`] calls show
    /// (docs/benchmarks-notes.md).
    fn hypercall_regs(&self) -> (u64, [u64; 5]) {
        (
            self.reg(Reg::Rax),
            [Reg::Rdi, Reg::Rsi, Reg::Rdx, Reg::R10, Reg::R8].map(|r| self.reg(r)),
        )
    }

    /// The current privilege level (from the SS DPL, as Xen's
    /// `hvm_get_cpl` does on both vendors).
    fn cpl(&self) -> u8;
    /// Execution mode (for the hypercall convention and the page walker).
    fn mode(&self) -> CpuMode;
    /// CR0/CR3/CR4/EFER, for the guest-virtual page walker.
    fn paging_state(&self) -> PagingState;

    /// Load the whole starting state (vCPU initialisation, `VCPUOP_initialise`).
    fn set_initial_state(&mut self, s: &InitialState);

    /// Step RIP over the instruction that caused the last instruction-intercept
    /// exit (CPUID, VMMCALL/VMCALL, RDMSR/WRMSR, IN/OUT, HLT). Backends without
    /// hardware next-RIP compute it from the exit kind.
    fn advance_rip(&mut self);

    /// Queue an event for injection at the next entry. Returns false if an event
    /// is already queued (the caller retries after the next exit).
    fn inject(&mut self, ev: Event) -> bool;
    /// The guest can take an external interrupt now: RFLAGS.IF set, no interrupt
    /// shadow (STI/MOV SS), nothing queued for injection.
    fn interruptible(&self) -> bool;
    /// Ask for (or stop asking for) an [`VmExit::InterruptWindow`] exit as soon as
    /// the guest becomes interruptible.
    fn request_interrupt_window(&mut self, on: bool);

    /// Install the stage-2 root (NPT `N_CR3` / `EPTP`) the vCPU runs on. Switching
    /// altp2m views is installing another root. The backend flushes the guest TLB
    /// as the new root requires.
    fn set_stage2_root(&mut self, root_pa: u64);
    /// The encoder of this backend's stage-2 entries (NPT / EPT), for the one
    /// stage-2 builder in `common/memory.rs`.
    fn stage2_encoder(&self) -> &'static dyn EntryEncoder;
    /// The stage-2 root currently installed (0: none yet).
    fn stage2_root(&self) -> u64;
    /// Flush this vCPU's guest TLB entries before the next entry (after a change
    /// to its stage-2 tables).
    fn flush_guest_tlb(&mut self);

    /// MSRs the backend keeps in its control block (EFER without `SVME`, PAT, ...):
    /// the value, or `None` if `msr` is not one of them.
    fn msr(&self, msr: u32) -> Option<u64>;
    /// Write such an MSR: `Some(true)` done, `Some(false)` invalid value (the
    /// caller injects #GP), `None` not one of the backend's MSRs.
    fn set_msr(&mut self, msr: u32, value: u64) -> Option<bool>;

    /// Hardware altp2m view switching (VMX: the EPTP list behind VMFUNC leaf 0):
    /// install `list` (`list[i]`: the stage-2 root of view `i` where the guest may
    /// switch to it itself, None where not) and run on view `current` with stage-2
    /// root `root`. An empty list turns guest-side switching off. False (the
    /// default, SVM) when the backend cannot: the caller then installs the current
    /// view's root with [`Vcpu::set_stage2_root`] and guest switches are emulated.
    /// Called before every entry, so cheap when nothing changed.
    fn set_altp2m_views(&mut self, _list: &[Option<u64>], _current: u16, _root: u64) -> bool {
        false
    }
    /// The altp2m view the hardware runs the vCPU on (it changes without an exit
    /// when the guest switches with VMFUNC), or None where the backend does not
    /// switch views itself.
    fn altp2m_view(&self) -> Option<u16> {
        None
    }
    /// Hardware #VE (VMX EPT-violation #VE): deliver convertible EPT violations
    /// into the guest with the #VE information area at host-physical `info_hpa`,
    /// or stop (None). False (the default, SVM) when the backend cannot: the
    /// caller emulates #VE on stage-2 fault exits.
    fn set_ve_info(&mut self, _info_hpa: Option<u64>) -> bool {
        false
    }

    /// Make every guest write to CR4 that sets a bit outside `valid` (the
    /// policy's `hvm_cr4_guest_valid_bits`) exit as [`VmExit::Cr4Write`]. Backends
    /// may exit on more writes than that (SVM: every CR4 write).
    fn set_cr4_valid(&mut self, valid: u64);
    /// Set the guest's CR4 (after the caller's checks), flushing the guest TLB.
    fn set_cr4(&mut self, value: u64);
    /// OR `bits` into the guest's DR6 (the single-step #DB after an emulated
    /// instruction sets `DR6.BS`).
    fn set_dr6_bits(&mut self, bits: u64);

    /// The 3-byte hypercall instruction (VMMCALL `0f 01 d9` / VMCALL `0f 01 c1`)
    /// the hypercall page is filled with.
    fn hypercall_insn(&self) -> [u8; 3];
}
