//! One VMX vCPU: its VMCS, VPID, the guest registers the VMCS does not hold, and the
//! [`Vcpu`] interface over them. The VMCS is only reachable while current on a CPU,
//! so after every exit the state the exit handlers read (RIP, RSP, RFLAGS, control
//! registers, EFER, CS/SS access rights, interruptibility) is copied out, and what
//! they change is written back before the next entry.
//!
//! With more than one CPU online the VMCS is cleared (`vmclear`) after every exit so
//! that the vCPU may run anywhere next; with one CPU it stays current and launched.
//!
//! Mirrors Xen's `vmx/vmcs.c` (`construct_vmcs`, `vmx_do_resume`), `vmx/vmx.c`
//! (`vmx_vmexit_handler`'s decoding, `vmx_cr_access`) and `vmx/intr.c`'s injection.

use core::arch::asm;
use core::sync::atomic::{AtomicU16, AtomicU64, Ordering};

use x86_64::registers::control::{Cr0, Cr3, Cr4};
use x86_64::registers::model_specific::Msr;

use super::caps::{self, entry, pin, proc, proc2, Controls, VmxCapabilities};
use super::entry::{enter, EntryResult, Gprs};
use super::exit::{self, reason, ExitInfo};
use super::vmcs::{self as v, VmFail};
use super::{ept, vmxon};
use crate::arch::x86_64::hvm::debugreg::GuestDebugRegs;
use crate::arch::x86_64::hvm::fpu::FpuState;
use crate::arch::x86_64::hvm::vcpu::{
    CpuMode, Event, InitialState, IoAccess, PagingState, Reg, Vcpu, VcpuError, VmExit,
};
use crate::arch::x86_64::{frame, paging, percpu};
use crate::common::memory::{EntryEncoder, Rights};

const IA32_EFER: u32 = 0xC000_0080;
const IA32_PAT: u32 = 0x277;
const IA32_FS_BASE: u32 = 0xC000_0100;
const IA32_GS_BASE: u32 = 0xC000_0101;
const IA32_SYSENTER_CS: u32 = 0x174;
const IA32_SYSENTER_ESP: u32 = 0x175;
const IA32_SYSENTER_EIP: u32 = 0x176;
/// The SYSCALL MSRs and `KERNEL_GS_BASE`: not in the VMCS. The hypervisor never
/// uses them, so the guest's values stay in the hardware; they are written
/// before an entry when another vCPU's were loaded on the CPU since (the guest's
/// accesses exit and go to the copies here).
const SYSCALL_MSRS: [u32; 5] = [
    0xC000_0081,
    0xC000_0082,
    0xC000_0083,
    0xC000_0084,
    0xC000_0102,
];

/// Whose SYSCALL MSRs each CPU holds (the VMCS address; 0: none).
static SYSCALL_MSR_OWNER: [AtomicU64; percpu::MAX_CPUS] =
    [const { AtomicU64::new(0) }; percpu::MAX_CPUS];
/// IA32_PAT's reset value.
const GUEST_PAT_RESET: u64 = 0x0007_0406_0007_0406;
const EFER_LME: u64 = 1 << 8;
const EFER_LMA: u64 = 1 << 10;
const RFLAGS_IF: u64 = 1 << 9;
const RFLAGS_VM: u64 = 1 << 17;
/// Interruptibility: blocking by STI, by MOV SS.
const BLOCKING_STI_MOVSS: u64 = 0b11;
/// Access-rights "unusable" bit.
const AR_UNUSABLE: u64 = 1 << 16;
/// Interruption-information valid bit.
const INTR_INFO_VALID: u32 = 1 << 31;
const INTR_INFO_ERROR_VALID: u32 = 1 << 11;
/// Interruption types.
const INTR_TYPE_EXT: u32 = 0;
const INTR_TYPE_NMI: u32 = 2;
const INTR_TYPE_HW_EXC: u32 = 3;
const INTR_TYPE_SW_EXC: u32 = 6;

/// Each CPU's current VMCS (0: none), so a vCPU that is already current skips
/// `vmptrld`.
static CURRENT_VMCS: [AtomicU64; percpu::MAX_CPUS] =
    [const { AtomicU64::new(0) }; percpu::MAX_CPUS];

/// Next VPID to hand out (0 is the host's). Wraps by skipping 0; VPIDs are only a
/// TLB tag, and a vCPU's VPID is flushed whenever it moves to another CPU.
static NEXT_VPID: AtomicU16 = AtomicU16::new(1);

fn alloc_vpid() -> u16 {
    loop {
        let v = NEXT_VPID.fetch_add(1, Ordering::Relaxed);
        if v != 0 {
            return v;
        }
    }
}

/// The MSR bitmap every vCPU shares (SDM 25.6.9): every MSR exits except those the
/// VMCS itself switches between guest and host (EFER, PAT when the PAT controls are
/// on, FS/GS base, SYSENTER), which the guest reads and writes directly.
static MSR_BITMAP: spin::Once<Option<u64>> = spin::Once::new();

fn msr_bitmap(ctl: &Controls) -> Option<u64> {
    *MSR_BITMAP.call_once(|| {
        let pa = frame::alloc_zeroed()?;
        let bytes = paging::phys_to_virt(pa);
        // SAFETY: a fresh frame of ours, 4 KiB.
        unsafe { core::ptr::write_bytes(bytes, 0xff, 4096) };
        let mut pass = alloc::vec![
            IA32_EFER,
            IA32_FS_BASE,
            IA32_GS_BASE,
            IA32_SYSENTER_CS,
            IA32_SYSENTER_ESP,
            IA32_SYSENTER_EIP,
        ];
        if ctl.entry & entry::LOAD_IA32_PAT != 0 && ctl.exit & caps::exit::SAVE_IA32_PAT != 0 {
            pass.push(IA32_PAT);
        }
        for msr in pass {
            // Read bitmap low/high at 0/1024, write bitmaps 2048 bytes later.
            let (base, bit) = match msr {
                0..=0x1FFF => (0, msr),
                0xC000_0000..=0xC000_1FFF => (1024, msr - 0xC000_0000),
                _ => continue,
            };
            for off in [base, base + 2048] {
                let byte = off + (bit / 8) as usize;
                // SAFETY: byte < 4096, inside the frame.
                unsafe { *bytes.add(byte) &= !(1u8 << (bit % 8)) };
            }
        }
        Some(pa)
    })
}

fn rdmsr(msr: u32) -> u64 {
    // SAFETY: only architectural MSRs every x86-64 VMX CPU has are read here.
    unsafe { Msr::new(msr).read() }
}

/// Writes the host-state area for the CPU this runs on (SDM 25.5): control
/// registers, selectors, the bases of FS, GS, TR, GDTR, IDTR, SYSENTER and EFER/PAT.
fn write_host_state(ctl: &Controls) {
    let (cs, ss, ds, es, fs, gs, tr): (u16, u16, u16, u16, u16, u16, u16);
    let mut gdtr = [0u8; 10];
    let mut idtr = [0u8; 10];
    // SAFETY: reads of segment selectors and descriptor-table registers only.
    unsafe {
        asm!("mov {:x}, cs", out(reg) cs, options(nomem, nostack));
        asm!("mov {:x}, ss", out(reg) ss, options(nomem, nostack));
        asm!("mov {:x}, ds", out(reg) ds, options(nomem, nostack));
        asm!("mov {:x}, es", out(reg) es, options(nomem, nostack));
        asm!("mov {:x}, fs", out(reg) fs, options(nomem, nostack));
        asm!("mov {:x}, gs", out(reg) gs, options(nomem, nostack));
        asm!("str {:x}", out(reg) tr, options(nomem, nostack));
        asm!("sgdt [{}]", in(reg) gdtr.as_mut_ptr(), options(nostack));
        asm!("sidt [{}]", in(reg) idtr.as_mut_ptr(), options(nostack));
    }
    let gdt_base = u64::from_le_bytes([
        gdtr[2], gdtr[3], gdtr[4], gdtr[5], gdtr[6], gdtr[7], gdtr[8], gdtr[9],
    ]);
    let idt_base = u64::from_le_bytes([
        idtr[2], idtr[3], idtr[4], idtr[5], idtr[6], idtr[7], idtr[8], idtr[9],
    ]);
    // The TSS base from its 16-byte system descriptor in the GDT.
    let tr_base = if tr & !7 != 0 {
        let d = (gdt_base + (tr & !7) as u64) as *const u32;
        // SAFETY: TR names a TSS descriptor of the live GDT (gdt.rs), 16 bytes long.
        let (w0, w1, w2) = unsafe { (d.read(), d.add(1).read(), d.add(2).read()) };
        ((w0 >> 16) as u64)
            | (((w1 & 0xff) as u64) << 16)
            | (((w1 >> 24) as u64) << 24)
            | ((w2 as u64) << 32)
    } else {
        0
    };
    // Host selectors must have RPL 0 and TI 0 (SDM 26.2.3); FS/GS are only used
    // through their base MSRs by this hypervisor.
    let sel = |s: u16| (if s & 7 == 0 { s } else { 0 }) as u64;
    v::set(v::HOST_CS_SELECTOR, sel(cs));
    v::set(v::HOST_SS_SELECTOR, sel(ss));
    v::set(v::HOST_DS_SELECTOR, sel(ds));
    v::set(v::HOST_ES_SELECTOR, sel(es));
    v::set(v::HOST_FS_SELECTOR, sel(fs));
    v::set(v::HOST_GS_SELECTOR, sel(gs));
    v::set(v::HOST_TR_SELECTOR, sel(tr));
    v::set(v::HOST_CR0, Cr0::read_raw());
    v::set(v::HOST_CR3, Cr3::read_raw().0.start_address().as_u64());
    v::set(v::HOST_CR4, Cr4::read_raw());
    v::set(v::HOST_FS_BASE, rdmsr(IA32_FS_BASE));
    v::set(v::HOST_GS_BASE, rdmsr(IA32_GS_BASE));
    v::set(v::HOST_TR_BASE, tr_base);
    v::set(v::HOST_GDTR_BASE, gdt_base);
    v::set(v::HOST_IDTR_BASE, idt_base);
    v::set(v::HOST_IA32_SYSENTER_CS, rdmsr(IA32_SYSENTER_CS));
    v::set(v::HOST_IA32_SYSENTER_ESP, rdmsr(IA32_SYSENTER_ESP));
    v::set(v::HOST_IA32_SYSENTER_EIP, rdmsr(IA32_SYSENTER_EIP));
    v::set(v::HOST_IA32_EFER, rdmsr(IA32_EFER));
    if ctl.exit & caps::exit::LOAD_IA32_PAT != 0 {
        v::set(v::HOST_IA32_PAT, rdmsr(IA32_PAT));
    }
}

/// An event waiting for injection at the next entry.
#[derive(Clone, Copy, Debug)]
struct Pending {
    info: u32,
    error: u32,
    len: u32,
}

/// The VMX-only parts of altp2m: the EPTP list VMFUNC switches through and the #VE
/// information page.
#[derive(Default)]
struct Altp2mHw {
    /// The EPTP list page (512 EPTPs), 0 until first used.
    list_pa: u64,
    /// The list as last written (index → EPTP, 0 = no view).
    list: alloc::vec::Vec<u64>,
    /// Host-physical address of the #VE information area, 0: #VE off.
    ve_info: u64,
    /// The view last installed by the hypervisor (the EPTP-index field).
    index: u16,
    /// List address, #VE address or EPTP index changed since the last entry.
    vmcs_dirty: bool,
}

/// A VMX vCPU.
pub struct VmxVcpu {
    /// Physical address of the VMCS region.
    vmcs: u64,
    vpid: u16,
    launched: bool,
    /// CPU the VMCS was last used on.
    last_cpu: Option<u32>,
    caps: &'static VmxCapabilities,
    /// Controls as last written (dynamic bits included).
    ctl: Controls,
    written_ctl: Option<(u32, u32, u32)>,
    gprs: Gprs,
    rip: u64,
    rsp: u64,
    rflags: u64,
    /// Guest-visible CR0/CR4 (the read shadows for host-owned bits).
    cr0: u64,
    cr4: u64,
    /// `CR4_GUEST_HOST_MASK`: the VMX-fixed bits and every bit the CPU policy
    /// does not grant (a write changing one exits).
    cr4_mask: u64,
    /// DR0-DR3 (lazily) and DR6 (every entry/exit); DR7 is in the VMCS.
    debug: GuestDebugRegs,
    /// STAR, LSTAR, CSTAR, SFMASK, KERNEL_GS_BASE ([`SYSCALL_MSRS`] order).
    syscall_msrs: [u64; 5],
    cr3: u64,
    efer: u64,
    cs_ar: u64,
    ss_ar: u64,
    interruptibility: u64,
    /// RIP/RSP/RFLAGS/interruptibility changed since the exit.
    dirty: bool,
    pending: Option<Pending>,
    eptp: u64,
    eptp_dirty: bool,
    flush: bool,
    /// The last exit, decoded.
    last: ExitInfo,
    altp2m: Altp2mHw,
    /// Preemption-timer value for the next entry (None: timer off).
    preemption: Option<u32>,
    /// Guest IA32_PAT.
    pat: u64,
    /// Guest x87/SSE registers.
    fpu: alloc::boxed::Box<FpuState>,
    /// Guest CR2.
    cr2: u64,
}

// SAFETY: a VmxVcpu owns its VMCS frame; the VMCS is only touched by the one CPU
// that runs the vCPU (the caller's contract for `run`), and it is cleared before
// another CPU may load it.
unsafe impl Send for VmxVcpu {}

impl VmxVcpu {
    /// A vCPU with a fresh VMCS holding the computed controls, this CPU's host state
    /// and the reset guest state. This CPU must be in VMX operation.
    pub fn new() -> Result<Self, VcpuError> {
        vmxon::cpu_up().map_err(VcpuError::Unsupported)?;
        let caps = caps::get();
        let ctl = caps::controls(caps).map_err(|m| {
            log::error!("vmx: {m}");
            VcpuError::Unsupported("VMX lacks a required control (see the log)")
        })?;
        let vmcs = vmxon::alloc_region().ok_or(VcpuError::OutOfMemory)?;
        let mut vcpu = VmxVcpu {
            vmcs,
            vpid: if ctl.proc2 & proc2::ENABLE_VPID != 0 {
                alloc_vpid()
            } else {
                0
            },
            launched: false,
            last_cpu: None,
            caps,
            ctl,
            written_ctl: None,
            gprs: Gprs::default(),
            rip: 0,
            rsp: 0,
            rflags: 2,
            cr0: 0x10,
            cr4: 0,
            cr4_mask: caps::cr4_host_owned(caps),
            debug: GuestDebugRegs::new(vmcs, true),
            syscall_msrs: [0; 5],
            cr3: 0,
            efer: 0,
            cs_ar: 0,
            ss_ar: 0,
            interruptibility: 0,
            dirty: false,
            pending: None,
            eptp: 0,
            eptp_dirty: false,
            flush: true,
            last: ExitInfo::default(),
            altp2m: Altp2mHw::default(),
            preemption: None,
            pat: GUEST_PAT_RESET,
            fpu: FpuState::reset(),
            cr2: 0,
        };
        if let Err(e) = v::clear(vmcs) {
            log::error!("vmx: vmclear of a new VMCS: {e}");
            frame::free_contiguous(vmcs, 1);
            return Err(VcpuError::Unsupported("vmclear failed"));
        }
        vcpu.with_vmcs(|me| me.write_constant_state())?;
        Ok(vcpu)
    }

    /// Makes the VMCS current on this CPU (loading the host state when it moved),
    /// runs `f`, and on a multi-CPU system clears it again.
    fn with_vmcs<R>(&mut self, f: impl FnOnce(&mut Self) -> R) -> Result<R, VcpuError> {
        self.load()?;
        let r = f(self);
        self.release();
        Ok(r)
    }

    fn load(&mut self) -> Result<(), VcpuError> {
        vmxon::cpu_up().map_err(VcpuError::Unsupported)?;
        let cpu = percpu::cpu_index();
        let slot = &CURRENT_VMCS[cpu as usize];
        if slot.load(Ordering::Relaxed) != self.vmcs {
            v::ptrld(self.vmcs).map_err(|e| {
                log::error!("vmx: vmptrld {:#x}: {e}", self.vmcs);
                VcpuError::Unsupported("vmptrld failed")
            })?;
            slot.store(self.vmcs, Ordering::Relaxed);
        }
        if self.last_cpu != Some(cpu) {
            write_host_state(&self.ctl);
            // Translations cached for this VPID/EPTP on this CPU may be stale.
            self.flush = true;
            self.last_cpu = Some(cpu);
        }
        Ok(())
    }

    fn release(&mut self) {
        if percpu::online_count() > 1 {
            if let Err(e) = v::clear(self.vmcs) {
                log::error!("vmx: vmclear {:#x}: {e}", self.vmcs);
            }
            CURRENT_VMCS[percpu::cpu_index() as usize].store(0, Ordering::Relaxed);
            self.launched = false;
            // The next CPU writes its own host state.
            self.last_cpu = None;
        }
    }

    /// Fields written once per VMCS.
    fn write_constant_state(&mut self) {
        v::set(v::PIN_BASED_VM_EXEC_CONTROL, self.ctl.pin as u64);
        v::set(v::VM_EXIT_CONTROLS, self.ctl.exit as u64);
        v::set(v::EXCEPTION_BITMAP, 0);
        v::set(v::PAGE_FAULT_ERROR_CODE_MASK, 0);
        v::set(v::PAGE_FAULT_ERROR_CODE_MATCH, 0);
        v::set(v::CR3_TARGET_COUNT, 0);
        v::set(v::VM_EXIT_MSR_STORE_COUNT, 0);
        v::set(v::VM_EXIT_MSR_LOAD_COUNT, 0);
        v::set(v::VM_ENTRY_MSR_LOAD_COUNT, 0);
        v::set(v::VM_ENTRY_INTR_INFO, 0);
        v::set(v::VMCS_LINK_POINTER, u64::MAX);
        if self.ctl.proc & proc::USE_MSR_BITMAPS != 0 {
            match msr_bitmap(&self.ctl) {
                Some(pa) => v::set(v::MSR_BITMAP, pa),
                // No frame for it: every MSR access exits instead.
                None => self.ctl.proc &= !proc::USE_MSR_BITMAPS,
            }
        }
        v::set(v::CR0_GUEST_HOST_MASK, caps::cr0_host_owned(self.caps));
        v::set(v::CR4_GUEST_HOST_MASK, self.cr4_mask);
        if self.vpid != 0 {
            v::set(v::VIRTUAL_PROCESSOR_ID, self.vpid as u64);
        }
        if self.ctl.entry & entry::LOAD_IA32_PAT != 0 {
            v::set(v::GUEST_IA32_PAT, GUEST_PAT_RESET);
        }
        v::set(v::GUEST_IA32_DEBUGCTL, 0);
        v::set(v::GUEST_DR7, 0x400);
        v::set(v::GUEST_PENDING_DBG_EXCEPTIONS, 0);
        v::set(v::GUEST_ACTIVITY_STATE, 0);
        v::set(v::GUEST_SYSENTER_CS, 0);
        v::set(v::GUEST_SYSENTER_ESP, 0);
        v::set(v::GUEST_SYSENTER_EIP, 0);
        self.write_guest_state(&InitialState::pvh(0, 0));
    }

    /// Writes a whole starting state into the current VMCS.
    fn write_guest_state(&mut self, s: &InitialState) {
        let segs = [
            (
                v::GUEST_ES_SELECTOR,
                v::GUEST_ES_BASE,
                v::GUEST_ES_LIMIT,
                v::GUEST_ES_AR_BYTES,
            ),
            (
                v::GUEST_SS_SELECTOR,
                v::GUEST_SS_BASE,
                v::GUEST_SS_LIMIT,
                v::GUEST_SS_AR_BYTES,
            ),
            (
                v::GUEST_DS_SELECTOR,
                v::GUEST_DS_BASE,
                v::GUEST_DS_LIMIT,
                v::GUEST_DS_AR_BYTES,
            ),
            (
                v::GUEST_FS_SELECTOR,
                v::GUEST_FS_BASE,
                v::GUEST_FS_LIMIT,
                v::GUEST_FS_AR_BYTES,
            ),
            (
                v::GUEST_GS_SELECTOR,
                v::GUEST_GS_BASE,
                v::GUEST_GS_LIMIT,
                v::GUEST_GS_AR_BYTES,
            ),
        ];
        for (sel, base, limit, ar) in segs {
            v::set(sel, s.data.selector as u64);
            v::set(base, s.data.base);
            v::set(limit, s.data.limit as u64);
            v::set(ar, s.data.attrib as u64);
        }
        v::set(v::GUEST_CS_SELECTOR, s.cs.selector as u64);
        v::set(v::GUEST_CS_BASE, s.cs.base);
        v::set(v::GUEST_CS_LIMIT, s.cs.limit as u64);
        v::set(v::GUEST_CS_AR_BYTES, s.cs.attrib as u64);
        let tss = crate::arch::x86_64::hvm::vcpu::Segment::tss32();
        v::set(v::GUEST_TR_SELECTOR, tss.selector as u64);
        v::set(v::GUEST_TR_BASE, tss.base);
        v::set(v::GUEST_TR_LIMIT, tss.limit as u64);
        v::set(v::GUEST_TR_AR_BYTES, tss.attrib as u64);
        v::set(v::GUEST_LDTR_SELECTOR, 0);
        v::set(v::GUEST_LDTR_BASE, 0);
        v::set(v::GUEST_LDTR_LIMIT, 0);
        v::set(v::GUEST_LDTR_AR_BYTES, AR_UNUSABLE);
        v::set(v::GUEST_GDTR_BASE, 0);
        v::set(v::GUEST_GDTR_LIMIT, 0);
        v::set(v::GUEST_IDTR_BASE, 0);
        v::set(v::GUEST_IDTR_LIMIT, 0);
        v::set(v::GUEST_CR3, s.cr3);
        v::set(v::GUEST_INTERRUPTIBILITY_INFO, 0);
        self.cs_ar = s.cs.attrib as u64;
        self.ss_ar = s.data.attrib as u64;
        self.cr3 = s.cr3;
        self.write_cr0(s.cr0);
        self.write_cr4(s.cr4);
        self.write_efer(s.efer);
        self.gprs = Gprs::default();
        self.gprs.0[Reg::Rbx as usize] = s.rbx;
        self.rip = s.rip;
        self.rsp = s.rsp;
        self.rflags = s.rflags | 2;
        self.interruptibility = 0;
        self.pending = None;
        self.dirty = true;
    }

    /// Guest CR0: the shadow holds the guest's value, the real register the value
    /// adjusted to the fixed bits.
    fn write_cr0(&mut self, value: u64) {
        self.cr0 = value;
        v::set(v::CR0_READ_SHADOW, value);
        v::set(v::GUEST_CR0, caps::fix_guest_cr0(self.caps, value));
    }

    fn write_cr4(&mut self, value: u64) {
        self.cr4 = value;
        v::set(v::CR4_READ_SHADOW, value);
        v::set(v::GUEST_CR4, caps::fix_cr4(self.caps, value));
    }

    /// Guest EFER; LMA follows LME && CR0.PG, and the IA-32e-mode-guest entry
    /// control follows LMA.
    fn write_efer(&mut self, value: u64) {
        let mut efer = value & !EFER_LMA;
        if efer & EFER_LME != 0 && self.cr0 & PagingState::CR0_PG != 0 {
            efer |= EFER_LMA;
        }
        self.efer = efer;
        v::set(v::GUEST_IA32_EFER, efer);
        if efer & EFER_LMA != 0 {
            self.ctl.entry |= entry::IA32E_MODE_GUEST;
        } else {
            self.ctl.entry &= !entry::IA32E_MODE_GUEST;
        }
    }

    /// Everything the run loop changed since the last exit, into the VMCS.
    fn write_back(&mut self) {
        if self.dirty {
            v::set(v::GUEST_RIP, self.rip);
            v::set(v::GUEST_RSP, self.rsp);
            v::set(v::GUEST_RFLAGS, self.rflags);
            v::set(v::GUEST_INTERRUPTIBILITY_INFO, self.interruptibility);
            self.dirty = false;
        }
        let want = (self.ctl.proc, self.ctl.proc2, self.ctl.entry);
        if self.written_ctl != Some(want) {
            v::set(v::CPU_BASED_VM_EXEC_CONTROL, want.0 as u64);
            v::set(v::SECONDARY_VM_EXEC_CONTROL, want.1 as u64);
            v::set(v::VM_ENTRY_CONTROLS, want.2 as u64);
            self.written_ctl = Some(want);
        }
        if self.eptp_dirty {
            v::set(v::EPT_POINTER, self.eptp);
            self.eptp_dirty = false;
        }
        self.write_altp2m();
        let pin = match self.preemption {
            Some(t) if self.caps.pin.allows(pin::PREEMPTION_TIMER) => {
                v::set(v::VMX_PREEMPTION_TIMER_VALUE, t as u64);
                self.ctl.pin | pin::PREEMPTION_TIMER
            }
            _ => self.ctl.pin & !pin::PREEMPTION_TIMER,
        };
        v::set(v::PIN_BASED_VM_EXEC_CONTROL, pin as u64);
        match self.pending {
            Some(p) => {
                v::set(v::VM_ENTRY_INTR_INFO, p.info as u64);
                if p.info & INTR_INFO_ERROR_VALID != 0 {
                    v::set(v::VM_ENTRY_EXCEPTION_ERROR_CODE, p.error as u64);
                }
                v::set(v::VM_ENTRY_INSTRUCTION_LEN, p.len as u64);
            }
            None => v::set(v::VM_ENTRY_INTR_INFO, 0),
        }
        if self.flush {
            self.flush_now();
            self.flush = false;
        }
    }

    /// INVEPT for the current EPTP (and every view in the EPTP list) and INVVPID for
    /// this vCPU, with the narrowest kind the CPU supports.
    fn flush_now(&self) {
        use super::caps::ept_cap as c;
        let cap = self.caps.ept_vpid;
        if cap & c::INVEPT != 0 {
            let single = cap & c::INVEPT_SINGLE != 0;
            let mut eptps: alloc::vec::Vec<u64> = self
                .altp2m
                .list
                .iter()
                .copied()
                .filter(|e| *e != 0)
                .collect();
            if self.eptp != 0 {
                eptps.push(self.eptp);
            }
            if single {
                for e in eptps {
                    if let Err(err) = v::invept(1, e) {
                        log::warn!("vmx: invept single {e:#x}: {err}");
                    }
                }
            } else if cap & c::INVEPT_ALL != 0 {
                if let Err(err) = v::invept(2, 0) {
                    log::warn!("vmx: invept all: {err}");
                }
            }
        }
        if self.vpid != 0 && cap & c::INVVPID != 0 {
            let kind = if cap & c::INVVPID_SINGLE != 0 { 1 } else { 2 };
            if let Err(err) = v::invvpid(kind, self.vpid) {
                log::warn!("vmx: invvpid: {err}");
            }
        }
    }

    /// Copies what the exit handlers read out of the VMCS.
    fn read_back(&mut self) {
        self.rip = v::read(v::GUEST_RIP);
        self.rsp = v::read(v::GUEST_RSP);
        self.rflags = v::read(v::GUEST_RFLAGS);
        let mask0 = caps::cr0_host_owned(self.caps);
        let mask4 = self.cr4_mask;
        self.cr0 = (v::read(v::GUEST_CR0) & !mask0) | (v::read(v::CR0_READ_SHADOW) & mask0);
        self.cr4 = (v::read(v::GUEST_CR4) & !mask4) | (v::read(v::CR4_READ_SHADOW) & mask4);
        self.cr3 = v::read(v::GUEST_CR3);
        self.efer = v::read(v::GUEST_IA32_EFER);
        self.cs_ar = v::read(v::GUEST_CS_AR_BYTES);
        self.ss_ar = v::read(v::GUEST_SS_AR_BYTES);
        self.interruptibility = v::read(v::GUEST_INTERRUPTIBILITY_INFO);
        if self.ctl.exit & caps::exit::SAVE_IA32_PAT != 0 {
            self.pat = v::read(v::GUEST_IA32_PAT);
        }
        // The CPU stores EFER.LMA into the IA-32e-mode-guest entry control on exit.
        let entry_ctl = v::read(v::VM_ENTRY_CONTROLS) as u32;
        self.ctl.entry =
            (self.ctl.entry & !entry::IA32E_MODE_GUEST) | (entry_ctl & entry::IA32E_MODE_GUEST);
        self.written_ctl = Some((self.ctl.proc, self.ctl.proc2, self.ctl.entry));
        if self.ctl.proc2 & proc2::ENABLE_VM_FUNCTIONS != 0 {
            // VMFUNC may have switched the view without an exit.
            self.eptp = v::read(v::EPT_POINTER);
        }
    }

    /// A MOV to CR0/CR4 that changed a host-owned bit (exit reason 28): emulated by
    /// updating the shadow and the adjusted real value. Returns false for accesses
    /// this backend does not emulate (the domain is crashed).
    fn cr_access(&mut self, qual: u64) -> bool {
        let cr = qual & 0xf;
        let kind = (qual >> 4) & 3;
        let gpr = ((qual >> 8) & 0xf) as u8;
        if kind != 0 {
            // CLTS, LMSW, MOV from CR: not intercepted with our masks.
            return false;
        }
        let Some(r) = Reg::gpr(gpr) else { return false };
        let value = self.reg(r);
        match cr {
            0 => {
                self.write_cr0(value);
                // Paging switched on or off with LME: LMA and the entry control follow.
                let efer = self.efer;
                self.write_efer(efer);
            }
            4 => self.write_cr4(value),
            _ => return false,
        }
        self.rip += self.last.instr_len as u64;
        self.interruptibility &= !BLOCKING_STI_MOVSS;
        self.dirty = true;
        true
    }

    /// An event the exit interrupted (IDT-vectoring information) is delivered again
    /// at the next entry, unless something else is queued.
    fn requeue_vectoring(&mut self) {
        let info = self.last.idt_vectoring_info;
        if info & INTR_INFO_VALID == 0 || self.pending.is_some() {
            return;
        }
        let ty = (info >> 8) & 7;
        self.pending = Some(Pending {
            info: info & !(1 << 12),
            error: self.last.idt_vectoring_error,
            len: if matches!(ty, 4..=6) {
                self.last.instr_len
            } else {
                0
            },
        });
    }

    fn decode(&mut self) -> Option<VmExit> {
        let x = self.last;
        let q = x.qualification;
        Some(match x.basic_reason() {
            reason::EXCEPTION_NMI => {
                let info = x.intr_info;
                let vector = (info & 0xff) as u8;
                if (info >> 8) & 7 == INTR_TYPE_NMI {
                    // The host's NMI: nothing for the guest.
                    return Some(VmExit::ExtInterrupt);
                }
                VmExit::Exception {
                    vector,
                    error_code: (info & INTR_INFO_ERROR_VALID != 0).then_some(x.intr_error),
                }
            }
            reason::EXTERNAL_INTERRUPT | reason::PREEMPTION_TIMER => VmExit::ExtInterrupt,
            reason::TRIPLE_FAULT => VmExit::TripleFault,
            reason::INTERRUPT_WINDOW => VmExit::InterruptWindow,
            reason::CPUID => VmExit::Cpuid,
            reason::HLT => VmExit::Hlt,
            reason::VMCALL => VmExit::Hypercall,
            reason::RDMSR => VmExit::MsrRead,
            reason::WRMSR => VmExit::MsrWrite,
            reason::IO_INSTRUCTION => VmExit::Io(IoAccess {
                port: (q >> 16) as u16,
                size: ((q & 7) + 1) as u8,
                write: q & (1 << 3) == 0,
                string: q & (1 << 4) != 0,
                rep: q & (1 << 5) != 0,
            }),
            // MOV to CR4 with a bit outside the policy's mask: the common code
            // checks it (and steps over it with advance_rip).
            reason::CR_ACCESS if q & 0xf == 4 && (q >> 4) & 3 == 0 => {
                let value = Reg::gpr(((q >> 8) & 0xf) as u8).map(|r| self.reg(r));
                VmExit::Cr4Write { value }
            }
            // MOV DR: the vCPU takes the debug registers, the instruction runs
            // again without the intercept.
            reason::DR_ACCESS => {
                self.debug.take_ownership();
                self.ctl.proc &= !proc::MOV_DR_EXITING;
                return None;
            }
            reason::CR_ACCESS => {
                if self.cr_access(q) {
                    return None;
                }
                VmExit::Unknown {
                    raw: x.reason as u64,
                    info1: q,
                    info2: 0,
                }
            }
            reason::EPT_VIOLATION => VmExit::Stage2Fault {
                gpa: x.gpa,
                gla: (q & (1 << 7) != 0).then_some(x.gla),
                access: Rights {
                    read: q & 1 != 0,
                    write: q & 2 != 0,
                    exec: q & 4 != 0,
                },
                present: q & 0x38 != 0,
            },
            reason::VMFUNC => VmExit::Vmfunc,
            // The guest sees neither VMX (CPUID hides it) nor XSAVE (XCR0 and the
            // XSAVE state are not switched between vCPUs): #UD, as without them.
            reason::VMCLEAR..=reason::VMXON | reason::INVEPT | reason::INVVPID | reason::XSETBV => {
                self.inject(Event::Exception {
                    vector: 6,
                    error_code: None,
                });
                return None;
            }
            _ => VmExit::Unknown {
                raw: x.reason as u64,
                info1: q,
                info2: x.gpa,
            },
        })
    }

    /// One entry and exit. `None` when the exit was handled here (CR access).
    fn run_once(&mut self) -> Option<VmExit> {
        if let Err(e) = self.load() {
            log::error!("vmx: cannot load the VMCS: {e:?}");
            return Some(VmExit::EntryFailed { raw: u64::MAX });
        }
        self.write_back();
        let was_enabled = x86_64::instructions::interrupts::are_enabled();
        x86_64::instructions::interrupts::disable();
        // SAFETY: `load` made this vCPU's VMCS current on this CPU with this CPU's
        // host state; interrupts are off until the exit. The FX area is ours, 512
        // bytes, 16-byte aligned; `vmxon::cpu_up` set CR4.OSFXSR and cleared
        // CR0.EM/TS, and the soft-float host never uses the x87/SSE registers.
        // CR2 is not part of the VMCS: the guest's value is loaded here and saved
        // after the exit, so another vCPU's page faults never show through.
        let cpu = percpu::cpu_index() as usize;
        if SYSCALL_MSR_OWNER[cpu].load(Ordering::Relaxed) != self.vmcs {
            for (msr, v) in SYSCALL_MSRS.iter().zip(self.syscall_msrs) {
                // SAFETY: these MSRs only matter to SYSCALL/SWAPGS, which the
                // hypervisor never executes; the values were validated by set_msr.
                unsafe { Msr::new(*msr).write(v) };
            }
            SYSCALL_MSR_OWNER[cpu].store(self.vmcs, Ordering::Relaxed);
        }
        let r = unsafe {
            self.debug.before_entry();
            self.fpu.load();
            asm!("mov cr2, {}", in(reg) self.cr2, options(nostack, nomem));
            let r = enter(&mut self.gprs, self.launched);
            asm!("mov {}, cr2", out(reg) self.cr2, options(nostack, nomem));
            self.fpu.save();
            self.debug.after_exit();
            r
        };
        let out = match r {
            EntryResult::Exited => {
                self.launched = true;
                self.pending = None;
                self.last = ExitInfo::read();
                self.read_back();
                if self.last.entry_failed() {
                    exit::report_entry_failure(&self.last, None);
                    Some(VmExit::EntryFailed {
                        raw: self.last.reason as u64,
                    })
                } else {
                    self.requeue_vectoring();
                    self.decode()
                }
            }
            EntryResult::FailValid | EntryResult::FailInvalid => {
                let fail = if r == EntryResult::FailInvalid {
                    VmFail::Invalid
                } else {
                    VmFail::Valid(v::read(v::VM_INSTRUCTION_ERROR) as u32)
                };
                exit::report_entry_failure(&ExitInfo::default(), Some(fail));
                Some(VmExit::EntryFailed {
                    raw: match fail {
                        VmFail::Valid(n) => n as u64,
                        VmFail::Invalid => u64::MAX,
                    },
                })
            }
        };
        self.release();
        if was_enabled {
            x86_64::instructions::interrupts::enable();
        }
        out
    }

    // ---- VMX-only altp2m hardware -----------------------------------------------

    /// Installs the EPTP list VMFUNC leaf 0 switches through (`list[i]`: view `i`'s
    /// stage-2 root, None: VMFUNC to it exits) and puts the vCPU on view `current`
    /// with root `current_root` (which need not be in the list: a view hidden from
    /// the guest). An empty list switches VMFUNC off. False when the CPU cannot
    /// switch views itself (no VMFUNC EPTP switching) or no frame for the list.
    /// Cheap when nothing changed: the run loop calls it before every entry.
    pub fn set_views(&mut self, list: &[Option<u64>], current: u16, current_root: u64) -> bool {
        if !self.caps.eptp_switching() {
            return false;
        }
        if list.is_empty() {
            if self.ctl.proc2 & proc2::ENABLE_VM_FUNCTIONS != 0 || !self.altp2m.list.is_empty() {
                self.ctl.proc2 &= !proc2::ENABLE_VM_FUNCTIONS;
                self.altp2m.list.clear();
            }
            return true;
        }
        if self.altp2m.list_pa == 0 {
            match frame::alloc_zeroed() {
                Some(pa) => self.altp2m.list_pa = pa,
                None => return false,
            }
        }
        let eptps: alloc::vec::Vec<u64> = list
            .iter()
            .take(512)
            .map(|r| r.map_or(0, ept::eptp))
            .collect();
        if eptps != self.altp2m.list {
            let page = paging::phys_to_virt(self.altp2m.list_pa) as *mut u64;
            for i in 0..512 {
                // SAFETY: the list page is our frame; i < 512 entries of 8 bytes.
                unsafe { page.add(i).write(eptps.get(i).copied().unwrap_or(0)) };
            }
            self.altp2m.list = eptps;
            self.altp2m.vmcs_dirty = true;
            self.flush = true;
        }
        self.ctl.proc2 |= proc2::ENABLE_VM_FUNCTIONS;
        let eptp = ept::eptp(current_root);
        if eptp != self.eptp || self.altp2m.index != current {
            self.eptp = eptp;
            self.eptp_dirty = true;
            self.altp2m.index = current;
            self.altp2m.vmcs_dirty = true;
            self.flush = true;
        }
        true
    }

    /// The view the vCPU runs on as the hardware says (after a guest VMFUNC this is
    /// how the switch becomes known): the list index of the current EPTP, else the
    /// view last installed. None while no list is installed.
    pub fn view_index(&self) -> Option<u16> {
        if self.altp2m.list.is_empty() {
            return None;
        }
        let hit = self.altp2m.list.iter().position(|e| *e == self.eptp);
        Some(hit.map_or(self.altp2m.index, |i| i as u16))
    }

    /// Turns hardware #VE on with the information area at host-physical `info_pa`
    /// (the machine frame of the guest's #VE page), or off. False if the CPU lacks
    /// EPT-violation #VE (the caller then emulates it above the vCPU interface).
    /// Unlike the interface's `set_ve_info` this does not check that the CPU
    /// reports hypervisor-set view indices correctly (see [`super::probe`]).
    pub fn enable_hw_ve(&mut self, info_pa: Option<u64>) -> bool {
        if !self.caps.ve() {
            return false;
        }
        let pa = info_pa.unwrap_or(0);
        if pa != self.altp2m.ve_info {
            self.altp2m.ve_info = pa;
            self.altp2m.vmcs_dirty = true;
        }
        if pa != 0 {
            self.ctl.proc2 |= proc2::EPT_VIOLATION_VE;
        } else {
            self.ctl.proc2 &= !proc2::EPT_VIOLATION_VE;
        }
        true
    }

    /// The altp2m fields of the VMCS, written before an entry when they changed.
    fn write_altp2m(&mut self) {
        if !self.altp2m.vmcs_dirty {
            return;
        }
        if self.caps.eptp_switching() && self.altp2m.list_pa != 0 {
            v::set(v::VM_FUNCTION_CONTROLS, 1);
            v::set(v::EPTP_LIST_ADDRESS, self.altp2m.list_pa);
        }
        if self.caps.ve() {
            if self.altp2m.ve_info != 0 {
                v::set(v::VE_INFORMATION_ADDRESS, self.altp2m.ve_info);
            }
            v::set(v::EPTP_INDEX, self.altp2m.index as u64);
        }
        self.altp2m.vmcs_dirty = false;
    }

    /// Arms the VMX preemption timer for the next entries (`ticks` TSC ticks), or
    /// disarms it. False if the CPU has no preemption timer.
    pub fn set_preemption_timer(&mut self, ticks: Option<u64>) -> bool {
        if !self.caps.pin.allows(pin::PREEMPTION_TIMER) {
            return false;
        }
        let rate = self.caps.preemption_timer_rate();
        self.preemption = ticks.map(|t| (t >> rate).min(u32::MAX as u64) as u32);
        true
    }

    /// The last exit as the hardware reported it (for diagnostics and tests).
    pub fn last_exit(&self) -> &ExitInfo {
        &self.last
    }

    /// The guest's GDTR/IDTR, for the self-test guest set-up.
    pub fn set_descriptor_tables(&mut self, gdt: (u64, u32), idt: (u64, u32)) {
        let _ = self.with_vmcs(|_| {
            v::set(v::GUEST_GDTR_BASE, gdt.0);
            v::set(v::GUEST_GDTR_LIMIT, gdt.1 as u64);
            v::set(v::GUEST_IDTR_BASE, idt.0);
            v::set(v::GUEST_IDTR_LIMIT, idt.1 as u64);
        });
    }
}

impl Drop for VmxVcpu {
    fn drop(&mut self) {
        let cpu = percpu::cpu_index() as usize;
        if CURRENT_VMCS[cpu].load(Ordering::Relaxed) == self.vmcs {
            let _ = v::clear(self.vmcs);
            CURRENT_VMCS[cpu].store(0, Ordering::Relaxed);
        }
        frame::free_contiguous(self.vmcs, 1);
        if self.altp2m.list_pa != 0 {
            frame::free_contiguous(self.altp2m.list_pa, 1);
        }
    }
}

impl Vcpu for VmxVcpu {
    fn run(&mut self) -> VmExit {
        loop {
            if let Some(e) = self.run_once() {
                return e;
            }
        }
    }

    fn reg(&self, r: Reg) -> u64 {
        match r {
            Reg::Rip => self.rip,
            Reg::Rflags => self.rflags,
            Reg::Rsp => self.rsp,
            _ => self.gprs.0[r as usize],
        }
    }

    fn hypercall_regs(&self) -> (u64, [u64; 5]) {
        let r = |x: Reg| self.gprs.0[x as usize];
        (
            r(Reg::Rax),
            [
                r(Reg::Rdi),
                r(Reg::Rsi),
                r(Reg::Rdx),
                r(Reg::R10),
                r(Reg::R8),
            ],
        )
    }

    fn set_reg(&mut self, r: Reg, value: u64) {
        match r {
            Reg::Rip => {
                self.rip = value;
                self.dirty = true;
            }
            Reg::Rflags => {
                self.rflags = value | 2;
                self.dirty = true;
            }
            Reg::Rsp => {
                self.rsp = value;
                self.dirty = true;
            }
            _ => self.gprs.0[r as usize] = value,
        }
    }

    fn cpl(&self) -> u8 {
        ((self.ss_ar >> 5) & 3) as u8
    }

    fn mode(&self) -> CpuMode {
        if self.cr0 & PagingState::CR0_PE == 0 {
            CpuMode::Real
        } else if self.rflags & RFLAGS_VM != 0 {
            CpuMode::Virtual8086
        } else if self.efer & EFER_LMA != 0 && self.cs_ar & (1 << 13) != 0 {
            CpuMode::Long64
        } else if self.cs_ar & (1 << 14) != 0 {
            CpuMode::Protected32
        } else {
            CpuMode::Protected16
        }
    }

    fn paging_state(&self) -> PagingState {
        PagingState {
            cr0: self.cr0,
            cr3: self.cr3,
            cr4: self.cr4,
            efer: self.efer,
        }
    }

    fn set_initial_state(&mut self, s: &InitialState) {
        let s = *s;
        // A reset vCPU gives the debug registers back: MOV DR exits again.
        self.debug.reset();
        self.syscall_msrs = [0; 5];
        let cpu = percpu::cpu_index() as usize;
        let _ = SYSCALL_MSR_OWNER[cpu].compare_exchange(
            self.vmcs,
            0,
            Ordering::Relaxed,
            Ordering::Relaxed,
        );
        if let Ok(c) = caps::controls(self.caps) {
            self.ctl.proc |= c.proc & proc::MOV_DR_EXITING;
        }
        if let Err(e) = self.with_vmcs(|me| me.write_guest_state(&s)) {
            log::error!("vmx: set_initial_state: {e:?}");
        }
    }

    fn advance_rip(&mut self) {
        self.rip += self.last.instr_len as u64;
        self.interruptibility &= !BLOCKING_STI_MOVSS;
        self.dirty = true;
    }

    fn inject(&mut self, ev: Event) -> bool {
        if self.pending.is_some() {
            return false;
        }
        let (info, error, len) = match ev {
            Event::Exception { vector, error_code } => {
                let ty = if vector == 3 || vector == 4 {
                    INTR_TYPE_SW_EXC
                } else {
                    INTR_TYPE_HW_EXC
                };
                let mut info = vector as u32 | ty << 8 | INTR_INFO_VALID;
                if error_code.is_some() {
                    info |= INTR_INFO_ERROR_VALID;
                }
                let len = if ty == INTR_TYPE_SW_EXC {
                    self.last.instr_len
                } else {
                    0
                };
                (info, error_code.unwrap_or(0), len)
            }
            Event::Interrupt { vector } => {
                (vector as u32 | INTR_TYPE_EXT << 8 | INTR_INFO_VALID, 0, 0)
            }
            Event::Nmi => (2 | INTR_TYPE_NMI << 8 | INTR_INFO_VALID, 0, 0),
        };
        self.pending = Some(Pending { info, error, len });
        true
    }

    fn interruptible(&self) -> bool {
        self.rflags & RFLAGS_IF != 0
            && self.interruptibility & BLOCKING_STI_MOVSS == 0
            && self.pending.is_none()
    }

    fn request_interrupt_window(&mut self, on: bool) {
        if on {
            self.ctl.proc |= proc::INTR_WINDOW_EXITING;
        } else {
            self.ctl.proc &= !proc::INTR_WINDOW_EXITING;
        }
    }

    fn set_stage2_root(&mut self, root_pa: u64) {
        self.eptp = ept::eptp(root_pa);
        self.eptp_dirty = true;
        self.flush = true;
    }

    fn stage2_encoder(&self) -> &'static dyn EntryEncoder {
        static EPT: spin::Once<ept::EptEncoder> = spin::Once::new();
        EPT.call_once(ept::EptEncoder::new)
    }

    fn stage2_root(&self) -> u64 {
        if self.eptp == 0 {
            0
        } else {
            self.eptp & 0x000f_ffff_ffff_f000
        }
    }

    fn flush_guest_tlb(&mut self) {
        self.flush = true;
    }

    fn msr(&self, msr: u32) -> Option<u64> {
        match msr {
            IA32_EFER => Some(self.efer),
            IA32_PAT => Some(self.pat),
            m => SYSCALL_MSRS
                .iter()
                .position(|&x| x == m)
                .map(|i| self.syscall_msrs[i]),
        }
    }

    fn set_msr(&mut self, msr: u32, value: u64) -> Option<bool> {
        match msr {
            IA32_EFER => {
                // SCE, LME, LMA (ignored: it follows LME and CR0.PG), NXE.
                if value & !(1 | EFER_LME | EFER_LMA | (1 << 11)) != 0 {
                    return Some(false);
                }
                Some(self.with_vmcs(|me| me.write_efer(value)).is_ok())
            }
            IA32_PAT => {
                let valid = value
                    .to_le_bytes()
                    .iter()
                    .all(|b| matches!(b, 0 | 1 | 4..=7));
                if !valid {
                    return Some(false);
                }
                self.pat = value;
                Some(self.with_vmcs(|_| v::set(v::GUEST_IA32_PAT, value)).is_ok())
            }
            m => {
                let i = SYSCALL_MSRS.iter().position(|&x| x == m)?;
                // LSTAR, CSTAR, KERNEL_GS_BASE hold addresses: canonical only.
                // SFMASK: the upper half is reserved.
                let canonical = ((value as i64) << 16 >> 16) as u64 == value;
                let ok = match m {
                    0xC000_0084 => value >> 32 == 0,
                    0xC000_0081 => true,
                    _ => canonical,
                };
                if ok {
                    self.syscall_msrs[i] = value;
                    let cpu = percpu::cpu_index() as usize;
                    let _ = SYSCALL_MSR_OWNER[cpu].compare_exchange(
                        self.vmcs,
                        0,
                        Ordering::Relaxed,
                        Ordering::Relaxed,
                    );
                }
                Some(ok)
            }
        }
    }

    fn set_altp2m_views(&mut self, list: &[Option<u64>], current: u16, root: u64) -> bool {
        self.set_views(list, current, root)
    }

    fn altp2m_view(&self) -> Option<u16> {
        self.view_index()
    }

    fn set_ve_info(&mut self, info_hpa: Option<u64>) -> bool {
        if info_hpa.is_some() && !super::probe::eptp_index_loaded() {
            self.enable_hw_ve(None);
            return false;
        }
        self.enable_hw_ve(info_hpa)
    }

    fn set_cr4_valid(&mut self, valid: u64) {
        let mask = caps::cr4_host_owned(self.caps) | !valid;
        if mask == self.cr4_mask {
            return;
        }
        self.cr4_mask = mask;
        let cr4 = self.cr4;
        if let Err(e) = self.with_vmcs(|_| {
            v::set(v::CR4_GUEST_HOST_MASK, mask);
            v::set(v::CR4_READ_SHADOW, cr4);
        }) {
            log::error!("vmx: set_cr4_valid: {e:?}");
        }
    }

    fn set_cr4(&mut self, value: u64) {
        if let Err(e) = self.with_vmcs(|me| me.write_cr4(value)) {
            log::error!("vmx: set_cr4: {e:?}");
        }
        self.flush = true;
    }

    fn set_dr6_bits(&mut self, bits: u64) {
        self.debug.dr6_or(bits);
    }

    fn hypercall_insn(&self) -> [u8; 3] {
        // VMCALL.
        [0x0f, 0x01, 0xc1]
    }
}
