//! The Virtual Machine Control Block: one 4 KiB page, control area at 0x000 and
//! state-save area at 0x400 (AMD APM vol. 2, appendix B, tables B-1 and B-2).
//! The layout is pinned with `static_assertions` against the APM offsets.
//!
//! Mirrors Xen's `xen/arch/x86/hvm/svm/vmcb.h` (`struct vmcb_struct`).

use core::mem::{offset_of, size_of};
use static_assertions::const_assert_eq;

/// A segment register in the state-save area.
#[derive(Clone, Copy, Debug, Default)]
#[repr(C)]
pub struct VmcbSeg {
    pub selector: u16,
    /// 12-bit attributes: type/S/DPL/P in bits 0-7, AVL/L/D/G in bits 8-11.
    pub attrib: u16,
    pub limit: u32,
    pub base: u64,
}
const_assert_eq!(size_of::<VmcbSeg>(), 16);

impl VmcbSeg {
    /// From the vendor-neutral segment (VMX-style attributes, G at bit 15).
    pub fn from_segment(s: &crate::arch::x86_64::hvm::vcpu::Segment) -> VmcbSeg {
        VmcbSeg {
            selector: s.selector,
            attrib: (s.attrib & 0xff) | ((s.attrib >> 4) & 0xf00),
            limit: s.limit,
            base: s.base,
        }
    }
}

/// The control area (APM table B-1).
#[derive(Debug)]
#[repr(C)]
pub struct VmcbControl {
    pub intercept_cr_read: u16,
    pub intercept_cr_write: u16,
    pub intercept_dr_read: u16,
    pub intercept_dr_write: u16,
    pub intercept_exceptions: u32,
    /// Intercept vector 3 (`INTERCEPT_*` below).
    pub intercept_misc1: u32,
    /// Intercept vector 4 (`INTERCEPT2_*` below).
    pub intercept_misc2: u32,
    pub intercept_misc3: u32,
    _res0: [u8; 0x3C - 0x18],
    pub pause_filter_threshold: u16,
    pub pause_filter_count: u16,
    pub iopm_base_pa: u64,
    pub msrpm_base_pa: u64,
    pub tsc_offset: u64,
    pub guest_asid: u32,
    pub tlb_control: u8,
    _res1: [u8; 3],
    /// V_TPR, V_IRQ (bit 8), V_INTR_PRIO (16-19), V_IGN_TPR (20), V_INTR_MASKING
    /// (24), V_INTR_VECTOR (32-39).
    pub vintr: u64,
    /// Bit 0: the guest is in an interrupt shadow.
    pub interrupt_shadow: u64,
    pub exitcode: u64,
    pub exitinfo1: u64,
    pub exitinfo2: u64,
    pub exitintinfo: u64,
    /// Bit 0: nested paging.
    pub np_enable: u64,
    pub avic_apic_bar: u64,
    pub ghcb_pa: u64,
    pub eventinj: u64,
    pub n_cr3: u64,
    pub virt_ext: u64,
    pub clean_bits: u32,
    _res2: u32,
    /// Next RIP (with NRIP save).
    pub nrip: u64,
    pub insn_len: u8,
    pub insn_bytes: [u8; 15],
    _res3: [u8; 0x400 - 0xE0],
}
const_assert_eq!(size_of::<VmcbControl>(), 0x400);
const_assert_eq!(offset_of!(VmcbControl, intercept_exceptions), 0x08);
const_assert_eq!(offset_of!(VmcbControl, intercept_misc1), 0x0C);
const_assert_eq!(offset_of!(VmcbControl, intercept_misc2), 0x10);
const_assert_eq!(offset_of!(VmcbControl, pause_filter_threshold), 0x3C);
const_assert_eq!(offset_of!(VmcbControl, iopm_base_pa), 0x40);
const_assert_eq!(offset_of!(VmcbControl, msrpm_base_pa), 0x48);
const_assert_eq!(offset_of!(VmcbControl, tsc_offset), 0x50);
const_assert_eq!(offset_of!(VmcbControl, guest_asid), 0x58);
const_assert_eq!(offset_of!(VmcbControl, tlb_control), 0x5C);
const_assert_eq!(offset_of!(VmcbControl, vintr), 0x60);
const_assert_eq!(offset_of!(VmcbControl, interrupt_shadow), 0x68);
const_assert_eq!(offset_of!(VmcbControl, exitcode), 0x70);
const_assert_eq!(offset_of!(VmcbControl, exitinfo1), 0x78);
const_assert_eq!(offset_of!(VmcbControl, exitinfo2), 0x80);
const_assert_eq!(offset_of!(VmcbControl, exitintinfo), 0x88);
const_assert_eq!(offset_of!(VmcbControl, np_enable), 0x90);
const_assert_eq!(offset_of!(VmcbControl, eventinj), 0xA8);
const_assert_eq!(offset_of!(VmcbControl, n_cr3), 0xB0);
const_assert_eq!(offset_of!(VmcbControl, clean_bits), 0xC0);
const_assert_eq!(offset_of!(VmcbControl, nrip), 0xC8);
const_assert_eq!(offset_of!(VmcbControl, insn_len), 0xD0);

/// The state-save area (APM table B-2), offsets relative to 0x400.
#[derive(Debug)]
#[repr(C)]
pub struct VmcbSave {
    pub es: VmcbSeg,
    pub cs: VmcbSeg,
    pub ss: VmcbSeg,
    pub ds: VmcbSeg,
    pub fs: VmcbSeg,
    pub gs: VmcbSeg,
    pub gdtr: VmcbSeg,
    pub ldtr: VmcbSeg,
    pub idtr: VmcbSeg,
    pub tr: VmcbSeg,
    _res0: [u8; 0xCB - 0xA0],
    pub cpl: u8,
    _res1: u32,
    pub efer: u64,
    _res2: [u8; 0x148 - 0xD8],
    pub cr4: u64,
    pub cr3: u64,
    pub cr0: u64,
    pub dr7: u64,
    pub dr6: u64,
    pub rflags: u64,
    pub rip: u64,
    _res3: [u8; 0x1D8 - 0x180],
    pub rsp: u64,
    pub s_cet: u64,
    pub ssp: u64,
    pub isst_addr: u64,
    pub rax: u64,
    pub star: u64,
    pub lstar: u64,
    pub cstar: u64,
    pub sfmask: u64,
    pub kernel_gs_base: u64,
    pub sysenter_cs: u64,
    pub sysenter_esp: u64,
    pub sysenter_eip: u64,
    pub cr2: u64,
    _res4: [u8; 0x268 - 0x248],
    pub g_pat: u64,
    pub dbgctl: u64,
    pub br_from: u64,
    pub br_to: u64,
    pub last_excp_from: u64,
    pub last_excp_to: u64,
    _res5: [u8; 0xC00 - 0x298],
}
const_assert_eq!(size_of::<VmcbSave>(), 0xC00);
const_assert_eq!(offset_of!(VmcbSave, tr), 0x90);
const_assert_eq!(offset_of!(VmcbSave, cpl), 0xCB);
const_assert_eq!(offset_of!(VmcbSave, efer), 0xD0);
const_assert_eq!(offset_of!(VmcbSave, cr4), 0x148);
const_assert_eq!(offset_of!(VmcbSave, cr3), 0x150);
const_assert_eq!(offset_of!(VmcbSave, cr0), 0x158);
const_assert_eq!(offset_of!(VmcbSave, dr7), 0x160);
const_assert_eq!(offset_of!(VmcbSave, dr6), 0x168);
const_assert_eq!(offset_of!(VmcbSave, rflags), 0x170);
const_assert_eq!(offset_of!(VmcbSave, rip), 0x178);
const_assert_eq!(offset_of!(VmcbSave, rsp), 0x1D8);
const_assert_eq!(offset_of!(VmcbSave, rax), 0x1F8);
const_assert_eq!(offset_of!(VmcbSave, star), 0x200);
const_assert_eq!(offset_of!(VmcbSave, kernel_gs_base), 0x220);
const_assert_eq!(offset_of!(VmcbSave, cr2), 0x240);
const_assert_eq!(offset_of!(VmcbSave, g_pat), 0x268);

/// The whole VMCB page.
#[derive(Debug)]
#[repr(C, align(4096))]
pub struct Vmcb {
    pub control: VmcbControl,
    pub save: VmcbSave,
}
const_assert_eq!(size_of::<Vmcb>(), 4096);
const_assert_eq!(offset_of!(Vmcb, save), 0x400);

// Intercept vector 3 (control offset 0x0C).
pub const INTERCEPT_INTR: u32 = 1 << 0;
pub const INTERCEPT_NMI: u32 = 1 << 1;
pub const INTERCEPT_VINTR: u32 = 1 << 4;
pub const INTERCEPT_CPUID: u32 = 1 << 18;
pub const INTERCEPT_HLT: u32 = 1 << 24;
pub const INTERCEPT_IOIO_PROT: u32 = 1 << 27;
pub const INTERCEPT_MSR_PROT: u32 = 1 << 28;
pub const INTERCEPT_SHUTDOWN: u32 = 1 << 31;
// Intercept vector 4 (control offset 0x10).
pub const INTERCEPT2_VMRUN: u32 = 1 << 0;
pub const INTERCEPT2_VMMCALL: u32 = 1 << 1;
pub const INTERCEPT2_VMLOAD: u32 = 1 << 2;
pub const INTERCEPT2_VMSAVE: u32 = 1 << 3;
pub const INTERCEPT2_STGI: u32 = 1 << 4;
pub const INTERCEPT2_CLGI: u32 = 1 << 5;
pub const INTERCEPT2_SKINIT: u32 = 1 << 6;
pub const INTERCEPT2_XSETBV: u32 = 1 << 13;

// V_INTR bits.
pub const V_IRQ: u64 = 1 << 8;
pub const V_INTR_PRIO_SHIFT: u32 = 16;
pub const V_IGN_TPR: u64 = 1 << 20;
pub const V_INTR_MASKING: u64 = 1 << 24;

// TLB_CONTROL values.
pub const TLB_CONTROL_NONE: u8 = 0;
pub const TLB_CONTROL_FLUSH_ALL: u8 = 1;

// EVENTINJ / EXITINTINFO fields.
pub const EVENT_VALID: u64 = 1 << 31;
pub const EVENT_ERROR_VALID: u64 = 1 << 11;
pub const EVENT_TYPE_INTR: u64 = 0 << 8;
pub const EVENT_TYPE_NMI: u64 = 2 << 8;
pub const EVENT_TYPE_EXCEPTION: u64 = 3 << 8;

// Exit codes (APM appendix C).
pub const VMEXIT_CR4_WRITE: u64 = 0x14;
pub const VMEXIT_DR0_READ: u64 = 0x20;
pub const VMEXIT_DR15_WRITE: u64 = 0x3F;
pub const VMEXIT_EXCP_BASE: u64 = 0x40;
pub const VMEXIT_INTR: u64 = 0x60;
pub const VMEXIT_NMI: u64 = 0x61;
pub const VMEXIT_VINTR: u64 = 0x64;
pub const VMEXIT_CPUID: u64 = 0x72;
pub const VMEXIT_HLT: u64 = 0x78;
pub const VMEXIT_IOIO: u64 = 0x7B;
pub const VMEXIT_MSR: u64 = 0x7C;
pub const VMEXIT_SHUTDOWN: u64 = 0x7F;
pub const VMEXIT_VMRUN: u64 = 0x80;
pub const VMEXIT_VMMCALL: u64 = 0x81;
pub const VMEXIT_XSETBV: u64 = 0x8D;
pub const VMEXIT_NPF: u64 = 0x400;
pub const VMEXIT_INVALID: u64 = u64::MAX;
