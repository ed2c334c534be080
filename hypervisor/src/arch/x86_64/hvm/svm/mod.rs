//! The AMD SVM backend of the vCPU interface: per-CPU enable (`EFER.SVME`, host
//! save area), the VMCB of each vCPU with its intercepts, I/O and MSR permission
//! maps, VMRUN with the host/guest VMSAVE/VMLOAD dance, exit decoding into
//! [`VmExit`], next-RIP without NRIP save, event injection and the interrupt
//! window, and the nested-paging root (`N_CR3`).
//!
//! Written for what QEMU 7.2 TCG offers (nested paging; no NRIP save, decode
//! assists, VMCB clean bits or flush-by-ASID): the next RIP comes from the exit
//! kind's known instruction length, no register number is read from EXITINFO1,
//! the clean bits are always 0 and the TLB is flushed whole (`TLB_CONTROL` = 1)
//! whenever a flush is needed. With NRIP save (Bochs `ryzen`, real CPUs) the
//! hardware next RIP is used. Mirrors Xen's `xen/arch/x86/hvm/svm/{svm.c,vmcb.c,
//! entry.S,asid.c}` and `nestedsvm` checks.

pub mod npt;
pub mod vmcb;

use alloc::boxed::Box;
use core::sync::atomic::{AtomicU64, Ordering};

use x86_64::registers::model_specific::Msr;

use super::debugreg::GuestDebugRegs;
use super::fpu::FpuState;
use super::vcpu::{
    CpuMode, Event, InitialState, IoAccess, PagingState, Reg, Segment, Vcpu, VcpuError, VmExit,
};
use crate::arch::x86_64::percpu::{self, MAX_CPUS};
use crate::arch::x86_64::virt::SvmCaps;
use crate::arch::x86_64::{frame, paging};
use crate::common::memory::Rights;
use vmcb::*;

const MSR_EFER: u32 = 0xC000_0080;
const MSR_VM_HSAVE_PA: u32 = 0xC001_0117;
const EFER_SVME: u64 = 1 << 12;
const RFLAGS_IF: u64 = 1 << 9;
const RFLAGS_VM: u64 = 1 << 17;

/// Per CPU: the host save area (`VM_HSAVE_PA`) and the page the host's
/// VMSAVE-state (FS/GS/TR/LDTR, syscall MSRs) is kept in across a VMRUN.
static HSAVE: [AtomicU64; MAX_CPUS] = [const { AtomicU64::new(0) }; MAX_CPUS];
static HOST_VMCB: [AtomicU64; MAX_CPUS] = [const { AtomicU64::new(0) }; MAX_CPUS];
/// Per CPU: the id of the vCPU that last ran there (TLB flush decisions).
static LAST_VCPU: [AtomicU64; MAX_CPUS] = [const { AtomicU64::new(0) }; MAX_CPUS];
/// vCPU ids (never 0) and ASIDs.
static NEXT_ID: AtomicU64 = AtomicU64::new(1);

/// Enable SVM on this CPU: `EFER.SVME` and a host save area in `VM_HSAVE_PA`
/// (Xen's `svm_cpu_up`). Idempotent.
pub fn cpu_enable() -> Result<(), VcpuError> {
    let cpu = percpu::cpu_index() as usize;
    if HSAVE[cpu].load(Ordering::Acquire) != 0 {
        return Ok(());
    }
    let hsave = frame::alloc_zeroed().ok_or(VcpuError::OutOfMemory)?;
    let host = frame::alloc_zeroed().ok_or(VcpuError::OutOfMemory)?;
    // SAFETY: SVM was detected and not disabled by firmware (virt::detect), so
    // setting EFER.SVME is allowed; VM_HSAVE_PA gets a page-aligned frame we own
    // for the life of the system.
    unsafe {
        let mut efer = Msr::new(MSR_EFER);
        let v = efer.read();
        efer.write(v | EFER_SVME);
        Msr::new(MSR_VM_HSAVE_PA).write(hsave);
    }
    // The guests' x87/SSE state is switched with FXSAVE/FXRSTOR, which covers the
    // XMM registers only with CR4.OSFXSR; the host itself never uses the FPU
    // (soft-float), so enabling it changes nothing for the host.
    // SAFETY: setting OSFXSR/OSXMMEXCPT and clearing EM/TS affects only FPU/SSE
    // instruction behaviour, which the host does not use.
    unsafe {
        use x86_64::registers::control::{Cr0, Cr0Flags, Cr4, Cr4Flags};
        Cr4::update(|f| f.insert(Cr4Flags::OSFXSR | Cr4Flags::OSXMMEXCPT_ENABLE));
        Cr0::update(|f| f.remove(Cr0Flags::EMULATE_COPROCESSOR | Cr0Flags::TASK_SWITCHED));
    }
    HOST_VMCB[cpu].store(host, Ordering::Release);
    HSAVE[cpu].store(hsave, Ordering::Release);
    log::info!("svm: enabled on cpu{cpu} (host save area {hsave:#x})");
    Ok(())
}

/// The guest general-purpose registers VMRUN does not switch, indexed by
/// instruction encoding (slots 0 = RAX and 4 = RSP are unused: those live in the
/// VMCB). The layout is what `svm_vmrun` below addresses.
#[derive(Clone, Copy, Debug, Default)]
#[repr(C)]
pub struct Gprs {
    pub r: [u64; 16],
}

core::arch::global_asm!(
    // svm_vmrun(gprs: *mut Gprs [rdi], vmcb_pa [rsi], host_vmcb_pa [rdx])
    // Entered and left with IF = 0; physical interrupts exit the guest (INTR
    // intercept) and are taken by the host once the caller re-enables them.
    ".global svm_vmrun",
    "svm_vmrun:",
    "push rbp",
    "push rbx",
    "push r12",
    "push r13",
    "push r14",
    "push r15",
    "push rdi",
    "push rdx",
    "push rsi",
    "clgi",
    "mov rax, rdx",
    "vmsave rax",
    "mov rax, rsi",
    "vmload rax",
    "mov rcx, [rdi + 8]",
    "mov rdx, [rdi + 16]",
    "mov rbx, [rdi + 24]",
    "mov rbp, [rdi + 40]",
    "mov rsi, [rdi + 48]",
    "mov r8, [rdi + 64]",
    "mov r9, [rdi + 72]",
    "mov r10, [rdi + 80]",
    "mov r11, [rdi + 88]",
    "mov r12, [rdi + 96]",
    "mov r13, [rdi + 104]",
    "mov r14, [rdi + 112]",
    "mov r15, [rdi + 120]",
    "mov rdi, [rdi + 56]",
    "sti",
    "vmrun rax",
    "cli",
    // rax = the guest VMCB again; every other GPR holds the guest's value.
    "push rdi",
    "mov rdi, [rsp + 24]",
    "mov [rdi + 8], rcx",
    "mov [rdi + 16], rdx",
    "mov [rdi + 24], rbx",
    "mov [rdi + 40], rbp",
    "mov [rdi + 48], rsi",
    "mov [rdi + 64], r8",
    "mov [rdi + 72], r9",
    "mov [rdi + 80], r10",
    "mov [rdi + 88], r11",
    "mov [rdi + 96], r12",
    "mov [rdi + 104], r13",
    "mov [rdi + 112], r14",
    "mov [rdi + 120], r15",
    "pop rcx",
    "mov [rdi + 56], rcx",
    "vmsave rax",
    "mov rax, [rsp + 8]",
    "vmload rax",
    "stgi",
    "add rsp, 24",
    "pop r15",
    "pop r14",
    "pop r13",
    "pop r12",
    "pop rbx",
    "pop rbp",
    "ret",
);

unsafe extern "C" {
    fn svm_vmrun(gprs: *mut Gprs, vmcb_pa: u64, host_vmcb_pa: u64);
}

/// Allocate `count` zeroed contiguous frames.
fn alloc_pages(count: usize) -> Result<u64, VcpuError> {
    let pa = frame::alloc_contiguous(count, 4096, u64::MAX).ok_or(VcpuError::OutOfMemory)?;
    // SAFETY: the frames are ours now and the physical map covers them.
    unsafe { core::ptr::write_bytes(paging::phys_to_virt(pa), 0, count * 4096) };
    Ok(pa)
}

/// The MSRs the VMCB (VMRUN or VMLOAD/VMSAVE) switches, passed through to the
/// guest: FS/GS/kernel-GS base, the SYSCALL and SYSENTER MSRs.
const PASSTHROUGH_MSRS: [u32; 10] = [
    0xC000_0100,
    0xC000_0101,
    0xC000_0102,
    0xC000_0081,
    0xC000_0082,
    0xC000_0083,
    0xC000_0084,
    0x174,
    0x175,
    0x176,
];

/// Bit offset of `msr`'s read-intercept bit in the MSR permission map.
fn msrpm_bit(msr: u32) -> Option<usize> {
    let (base, first) = match msr {
        0..=0x1FFF => (0, 0),
        0xC000_0000..=0xC000_1FFF => (0x800 * 8, 0xC000_0000),
        0xC001_0000..=0xC001_1FFF => (0x1000 * 8, 0xC001_0000),
        _ => return None,
    };
    Some(base + (msr - first) as usize * 2)
}

/// One SVM vCPU.
pub struct SvmVcpu {
    vmcb_pa: u64,
    vmcb: *mut Vmcb,
    iopm_pa: u64,
    msrpm_pa: u64,
    gprs: Gprs,
    caps: SvmCaps,
    id: u64,
    /// The CPU this vCPU last ran on.
    last_cpu: Option<usize>,
    /// Flush the guest TLB at the next entry.
    flush: bool,
    /// RIP after the instruction of the last instruction-intercept exit.
    next_rip: Option<u64>,
    /// Exits taken (statistics).
    pub exits: u64,
    /// DR0-DR3, switched lazily (DR6/DR7 are in the VMCB).
    debug: GuestDebugRegs,
    /// The guest's x87/SSE registers while it does not run.
    fpu: Box<FpuState>,
}

// SAFETY: the VMCB pointer refers to a frame owned by this vCPU alone, reached
// through the physical map, which every CPU shares; a vCPU runs on one CPU at a time.
unsafe impl Send for SvmVcpu {}

impl Drop for SvmVcpu {
    fn drop(&mut self) {
        frame::free_contiguous(self.vmcb_pa, 1);
        frame::free_contiguous(self.iopm_pa, 3);
        frame::free_contiguous(self.msrpm_pa, 2);
    }
}

/// A new SVM vCPU.
pub fn new_vcpu(caps: SvmCaps) -> Result<Box<dyn Vcpu>, VcpuError> {
    Ok(Box::new(SvmVcpu::new(caps)?))
}

impl SvmVcpu {
    pub fn new(caps: SvmCaps) -> Result<SvmVcpu, VcpuError> {
        let vmcb_pa = alloc_pages(1)?;
        let iopm_pa = alloc_pages(3)?;
        let msrpm_pa = alloc_pages(2)?;
        // Intercept every port and every MSR but the pass-through ones.
        // SAFETY: both maps are frames we just allocated, reached through the
        // physical map, sizes 12 KiB and 8 KiB.
        unsafe {
            core::ptr::write_bytes(paging::phys_to_virt(iopm_pa), 0xff, 3 * 4096);
            let msrpm = paging::phys_to_virt(msrpm_pa);
            core::ptr::write_bytes(msrpm, 0xff, 2 * 4096);
            for msr in PASSTHROUGH_MSRS {
                if let Some(bit) = msrpm_bit(msr) {
                    // Both the read and the write bit (adjacent pair).
                    *msrpm.add(bit / 8) &= !(3u8 << (bit % 8));
                }
            }
        }
        let id = NEXT_ID.fetch_add(1, Ordering::Relaxed);
        let mut v = SvmVcpu {
            vmcb_pa,
            vmcb: paging::phys_to_virt(vmcb_pa) as *mut Vmcb,
            iopm_pa,
            msrpm_pa,
            gprs: Gprs::default(),
            caps,
            id,
            last_cpu: None,
            flush: true,
            next_rip: None,
            exits: 0,
            debug: GuestDebugRegs::new(vmcb_pa, false),
            fpu: FpuState::reset(),
        };
        v.init_control();
        v.set_initial_state(&InitialState::pvh(0, 0));
        Ok(v)
    }

    fn vmcb(&self) -> &Vmcb {
        // SAFETY: `vmcb` points at our own VMCB frame for as long as `self` lives;
        // the hardware writes it only inside `run`, which holds `&mut self`.
        unsafe { &*self.vmcb }
    }

    fn vmcb_mut(&mut self) -> &mut Vmcb {
        // SAFETY: as in `vmcb`, and `&mut self` makes this the only reference.
        unsafe { &mut *self.vmcb }
    }

    fn init_control(&mut self) {
        let asids = self.caps.asids.max(2) as u64;
        // ASID 0 is the host's; any other value works because every switch of
        // vCPU on a CPU flushes (no flush-by-ASID to be smarter with).
        let asid = 1 + (self.id % (asids - 1)) as u32;
        let (iopm, msrpm) = (self.iopm_pa, self.msrpm_pa);
        let c = &mut self.vmcb_mut().control;
        c.intercept_exceptions = 1 << 6 | 1 << 18; // #UD, #MC
                                                   // Every CR4 write is checked against the policy (no write mask on SVM);
                                                   // MOV DR exits until the vCPU owns the debug registers.
        c.intercept_cr_write = 1 << 4;
        c.intercept_dr_read = 0xff;
        c.intercept_dr_write = 0xff;
        c.intercept_misc1 = INTERCEPT_INTR
            | INTERCEPT_NMI
            | INTERCEPT_CPUID
            | INTERCEPT_HLT
            | INTERCEPT_IOIO_PROT
            | INTERCEPT_MSR_PROT
            | INTERCEPT_SHUTDOWN;
        c.intercept_misc2 = INTERCEPT2_VMRUN
            | INTERCEPT2_VMMCALL
            | INTERCEPT2_VMLOAD
            | INTERCEPT2_VMSAVE
            | INTERCEPT2_STGI
            | INTERCEPT2_CLGI
            | INTERCEPT2_SKINIT
            | INTERCEPT2_XSETBV;
        c.iopm_base_pa = iopm;
        c.msrpm_base_pa = msrpm;
        c.guest_asid = asid;
        c.vintr = V_INTR_MASKING;
        c.np_enable = 1;
        c.clean_bits = 0;
    }

    /// Run once and decode; `None` for exits handled here (guest SVM instructions).
    fn run_once(&mut self) -> Option<VmExit> {
        let cpu = percpu::cpu_index() as usize;
        let host = HOST_VMCB[cpu].load(Ordering::Acquire);
        if host == 0 {
            return Some(VmExit::EntryFailed { raw: u64::MAX });
        }
        let prev = LAST_VCPU[cpu].swap(self.id, Ordering::Relaxed);
        let flush = self.flush || prev != self.id || self.last_cpu != Some(cpu);
        self.last_cpu = Some(cpu);
        self.flush = false;
        self.vmcb_mut().control.tlb_control = if flush {
            TLB_CONTROL_FLUSH_ALL
        } else {
            TLB_CONTROL_NONE
        };
        let if_was_set = x86_64::instructions::interrupts::are_enabled();
        x86_64::instructions::interrupts::disable();
        self.debug.before_entry();
        // SAFETY: SVM is enabled on this CPU (HOST_VMCB set by cpu_enable), the VMCB,
        // its permission maps and the NPT root are valid frames we own, and
        // `svm_vmrun` restores every callee-saved register and the host's
        // VMSAVE-state before it returns with IF = 0. The FX area is 16-byte
        // aligned and 512 bytes; cpu_enable set OSFXSR and cleared EM/TS.
        unsafe {
            self.fpu.load();
            svm_vmrun(&mut self.gprs, self.vmcb_pa, host);
            self.fpu.save();
        }
        self.debug.after_exit();
        if if_was_set {
            x86_64::instructions::interrupts::enable();
        }
        self.exits += 1;
        Some(self.decode()).flatten()
    }

    fn decode(&mut self) -> Option<VmExit> {
        let c = &self.vmcb().control;
        let (code, info1, info2, intinfo) = (c.exitcode, c.exitinfo1, c.exitinfo2, c.exitintinfo);
        let rip = self.vmcb().save.rip;
        let nrips = self.caps.nrip_save;
        let hw_nrip = c.nrip;
        // An event the exit interrupted is delivered again at the next entry.
        self.vmcb_mut().control.eventinj = if intinfo & EVENT_VALID != 0 {
            intinfo
        } else {
            0
        };
        let mut next = |len: u64| {
            self.next_rip = Some(if nrips && hw_nrip != 0 {
                hw_nrip
            } else {
                rip.wrapping_add(len)
            });
        };
        let exit = match code {
            VMEXIT_CPUID => {
                next(2);
                VmExit::Cpuid
            }
            VMEXIT_VMMCALL => {
                next(3);
                VmExit::Hypercall
            }
            VMEXIT_MSR => {
                next(2);
                if info1 & 1 == 0 {
                    VmExit::MsrRead
                } else {
                    VmExit::MsrWrite
                }
            }
            VMEXIT_HLT => {
                next(1);
                VmExit::Hlt
            }
            // MOV to CR4: the caller decodes the instruction (no decode assists
            // under QEMU TCG) and steps over it itself.
            VMEXIT_CR4_WRITE => VmExit::Cr4Write { value: None },
            // MOV DR: the vCPU takes the debug registers; the instruction runs
            // again without the intercept.
            VMEXIT_DR0_READ..=VMEXIT_DR15_WRITE => {
                self.debug.take_ownership();
                let c = &mut self.vmcb_mut().control;
                c.intercept_dr_read = 0;
                c.intercept_dr_write = 0;
                return None;
            }
            VMEXIT_IOIO => {
                // EXITINFO2 holds the next RIP with or without NRIP save.
                self.next_rip = Some(info2);
                VmExit::Io(IoAccess {
                    port: (info1 >> 16) as u16,
                    size: if info1 & (1 << 4) != 0 {
                        1
                    } else if info1 & (1 << 5) != 0 {
                        2
                    } else {
                        4
                    },
                    write: info1 & 1 == 0,
                    string: info1 & (1 << 2) != 0,
                    rep: info1 & (1 << 3) != 0,
                })
            }
            VMEXIT_NPF => VmExit::Stage2Fault {
                gpa: info2,
                gla: None,
                access: Rights {
                    read: info1 & (1 << 1) == 0 && info1 & (1 << 4) == 0,
                    write: info1 & (1 << 1) != 0,
                    exec: info1 & (1 << 4) != 0,
                },
                present: info1 & 1 != 0,
            },
            VMEXIT_INTR | VMEXIT_NMI => VmExit::ExtInterrupt,
            VMEXIT_VINTR => {
                self.request_interrupt_window(false);
                VmExit::InterruptWindow
            }
            VMEXIT_SHUTDOWN => VmExit::TripleFault,
            VMEXIT_INVALID => VmExit::EntryFailed { raw: code },
            c if (VMEXIT_EXCP_BASE..VMEXIT_EXCP_BASE + 32).contains(&c) => {
                let vector = (c - VMEXIT_EXCP_BASE) as u8;
                let has_ec = matches!(vector, 8 | 10..=14 | 17 | 21 | 29 | 30);
                VmExit::Exception {
                    vector,
                    error_code: has_ec.then_some(info1 as u32),
                }
            }
            // SVM instructions: the guest sees no SVM (CPUID hides it), so #UD, as
            // Xen does without nested virtualization. XSETBV likewise: CPUID
            // hides XSAVE (XCR0 is not switched between vCPUs).
            VMEXIT_VMRUN..=0x86 | VMEXIT_XSETBV => {
                self.inject(Event::Exception {
                    vector: 6,
                    error_code: None,
                });
                return None;
            }
            raw => VmExit::Unknown { raw, info1, info2 },
        };
        Some(exit)
    }
}

impl Vcpu for SvmVcpu {
    fn run(&mut self) -> VmExit {
        loop {
            self.next_rip = None;
            if let Some(e) = self.run_once() {
                return e;
            }
        }
    }

    fn reg(&self, r: Reg) -> u64 {
        let s = &self.vmcb().save;
        match r {
            Reg::Rax => s.rax,
            Reg::Rsp => s.rsp,
            Reg::Rip => s.rip,
            Reg::Rflags => s.rflags,
            other => self.gprs.r[other as usize],
        }
    }

    fn set_reg(&mut self, r: Reg, value: u64) {
        match r {
            Reg::Rax => self.vmcb_mut().save.rax = value,
            Reg::Rsp => self.vmcb_mut().save.rsp = value,
            Reg::Rip => self.vmcb_mut().save.rip = value,
            Reg::Rflags => self.vmcb_mut().save.rflags = value | 2,
            other => self.gprs.r[other as usize] = value,
        }
    }

    fn hypercall_regs(&self) -> (u64, [u64; 5]) {
        let g = &self.gprs.r;
        let r = |x: Reg| g[x as usize];
        (
            self.vmcb().save.rax,
            [
                r(Reg::Rdi),
                r(Reg::Rsi),
                r(Reg::Rdx),
                r(Reg::R10),
                r(Reg::R8),
            ],
        )
    }

    fn cpl(&self) -> u8 {
        self.vmcb().save.cpl & 3
    }

    fn mode(&self) -> CpuMode {
        let s = &self.vmcb().save;
        if s.cr0 & PagingState::CR0_PE == 0 {
            CpuMode::Real
        } else if s.rflags & RFLAGS_VM != 0 {
            CpuMode::Virtual8086
        } else if s.efer & PagingState::EFER_LMA != 0 && s.cs.attrib & (1 << 9) != 0 {
            CpuMode::Long64
        } else if s.cs.attrib & (1 << 10) != 0 {
            CpuMode::Protected32
        } else {
            CpuMode::Protected16
        }
    }

    fn paging_state(&self) -> PagingState {
        let s = &self.vmcb().save;
        PagingState {
            cr0: s.cr0,
            cr3: s.cr3,
            cr4: s.cr4,
            efer: s.efer & !EFER_SVME,
        }
    }

    fn set_initial_state(&mut self, st: &InitialState) {
        self.gprs = Gprs::default();
        self.gprs.r[Reg::Rbx as usize] = st.rbx;
        let s = &mut self.vmcb_mut().save;
        let data = VmcbSeg::from_segment(&st.data);
        s.cs = VmcbSeg::from_segment(&st.cs);
        s.ds = data;
        s.es = data;
        s.ss = data;
        s.fs = data;
        s.gs = data;
        s.tr = VmcbSeg::from_segment(&Segment::tss32());
        // An unusable LDT (present bit clear) and empty descriptor tables.
        s.ldtr = VmcbSeg {
            selector: 0,
            attrib: 0x2,
            limit: 0xffff,
            base: 0,
        };
        s.gdtr = VmcbSeg {
            limit: 0xffff,
            ..VmcbSeg::default()
        };
        s.idtr = VmcbSeg {
            limit: 0xffff,
            ..VmcbSeg::default()
        };
        s.cpl = 0;
        // SVM requires EFER.SVME in the guest's EFER (the guest never sees it).
        s.efer = st.efer | EFER_SVME;
        s.cr0 = st.cr0;
        s.cr3 = st.cr3;
        s.cr4 = st.cr4;
        s.cr2 = 0;
        s.dr6 = 0xFFFF_0FF0;
        s.dr7 = 0x400;
        s.rflags = st.rflags | 2;
        s.rip = st.rip;
        s.rsp = st.rsp;
        s.rax = 0;
        s.g_pat = 0x0007_0406_0007_0406;
        self.vmcb_mut().control.eventinj = 0;
        self.vmcb_mut().control.interrupt_shadow = 0;
        // A reset vCPU gives the debug registers back: MOV DR exits again.
        self.debug.reset();
        let c = &mut self.vmcb_mut().control;
        c.intercept_dr_read = 0xff;
        c.intercept_dr_write = 0xff;
    }

    fn advance_rip(&mut self) {
        if let Some(n) = self.next_rip.take() {
            self.vmcb_mut().save.rip = n;
            self.vmcb_mut().control.interrupt_shadow = 0;
        }
    }

    fn inject(&mut self, ev: Event) -> bool {
        if self.vmcb().control.eventinj & EVENT_VALID != 0 {
            return false;
        }
        let v = match ev {
            Event::Exception { vector, error_code } => {
                let mut v = vector as u64 | EVENT_TYPE_EXCEPTION | EVENT_VALID;
                if let Some(ec) = error_code {
                    v |= EVENT_ERROR_VALID | (ec as u64) << 32;
                }
                v
            }
            Event::Interrupt { vector } => vector as u64 | EVENT_TYPE_INTR | EVENT_VALID,
            Event::Nmi => 2 | EVENT_TYPE_NMI | EVENT_VALID,
        };
        self.vmcb_mut().control.eventinj = v;
        true
    }

    fn interruptible(&self) -> bool {
        let v = self.vmcb();
        v.save.rflags & RFLAGS_IF != 0
            && v.control.interrupt_shadow & 1 == 0
            && v.control.eventinj & EVENT_VALID == 0
    }

    fn request_interrupt_window(&mut self, on: bool) {
        let c = &mut self.vmcb_mut().control;
        if on {
            c.vintr |= V_IRQ | V_IGN_TPR | 0xf << V_INTR_PRIO_SHIFT;
            c.intercept_misc1 |= INTERCEPT_VINTR;
        } else {
            c.vintr &= !(V_IRQ | V_IGN_TPR | 0xf << V_INTR_PRIO_SHIFT);
            c.intercept_misc1 &= !INTERCEPT_VINTR;
        }
    }

    fn set_stage2_root(&mut self, root_pa: u64) {
        self.vmcb_mut().control.n_cr3 = root_pa;
        self.flush = true;
    }

    fn stage2_encoder(&self) -> &'static dyn crate::common::memory::EntryEncoder {
        &npt::NptEncoder
    }

    fn stage2_root(&self) -> u64 {
        self.vmcb().control.n_cr3
    }

    fn flush_guest_tlb(&mut self) {
        self.flush = true;
    }

    fn set_cr4_valid(&mut self, _valid: u64) {
        // Every CR4 write exits already (init_control).
    }

    fn set_cr4(&mut self, value: u64) {
        self.vmcb_mut().save.cr4 = value;
        self.flush = true;
    }

    fn set_dr6_bits(&mut self, bits: u64) {
        self.vmcb_mut().save.dr6 |= bits;
    }

    fn hypercall_insn(&self) -> [u8; 3] {
        // VMMCALL.
        [0x0f, 0x01, 0xd9]
    }

    fn msr(&self, msr: u32) -> Option<u64> {
        let s = &self.vmcb().save;
        Some(match msr {
            MSR_EFER => s.efer & !EFER_SVME,
            0x277 => s.g_pat,
            _ => return None,
        })
    }

    fn set_msr(&mut self, msr: u32, value: u64) -> Option<bool> {
        let s = &mut self.vmcb_mut().save;
        match msr {
            MSR_EFER => {
                // SCE, LME, LMA, NXE are all the guest may set (no SVME, LMSLE, FFXSR).
                if value & !(1 | 1 << 8 | 1 << 10 | 1 << 11) != 0 {
                    return Some(false);
                }
                // LMA is the processor's to set (CR0.PG with LME): writes keep it.
                let lma = PagingState::EFER_LMA;
                s.efer = (value & !lma) | (s.efer & lma) | EFER_SVME;
                Some(true)
            }
            0x277 => {
                // Every byte a valid memory type (0, 1, 4, 5, 6, 7).
                let ok = (0..8).all(|i| matches!((value >> (8 * i)) & 0xff, 0 | 1 | 4..=7));
                if ok {
                    s.g_pat = value;
                }
                Some(ok)
            }
            _ => None,
        }
    }
}
