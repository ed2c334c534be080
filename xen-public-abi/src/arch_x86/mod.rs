//! `xen/include/public/arch-x86/xen.h` and `arch-x86/xen-x86_64.h`: the x86-64
//! halves of the core types (`xen_pfn_t`, `xen_ulong_t`, `arch_vcpu_info`,
//! `arch_shared_info`), the x86 domain configuration (`xen_arch_domainconfig`,
//! `XEN_X86_EMU_*`) and the PV vCPU context `XEN_DOMCTL_setvcpucontext` carries.
//!
//! Only the 64-bit layout is mirrored: every guest and tool of this project is
//! x86-64, where `unsigned long` and guest handles are 8 bytes.

pub mod cpuid;

use bitflags::bitflags;
use static_assertions::const_assert_eq;

/// `xen_pfn_t`: a guest frame number (`unsigned long`).
pub type xen_pfn_t = u64;
/// `xen_ulong_t`: `unsigned long` on x86-64.
pub type xen_ulong_t = u64;
/// `xen_callback_t`: a callback address (`unsigned long`).
pub type xen_callback_t = u64;
/// `tsc_timestamp_t`.
pub type tsc_timestamp_t = u64;

/// `XEN_LEGACY_MAX_VCPUS`: the `vcpu_info` slots in `shared_info`.
pub const XEN_LEGACY_MAX_VCPUS: u32 = 32;
/// `FIRST_RESERVED_GDT_PAGE`.
pub const FIRST_RESERVED_GDT_PAGE: u32 = 14;
/// `FIRST_RESERVED_GDT_BYTE`.
pub const FIRST_RESERVED_GDT_BYTE: u32 = FIRST_RESERVED_GDT_PAGE * 4096;
/// `FIRST_RESERVED_GDT_ENTRY`.
pub const FIRST_RESERVED_GDT_ENTRY: u32 = FIRST_RESERVED_GDT_BYTE / 8;
/// `XEN_HVM_DEBUGCONS_IOPORT`: the debug console port (0xe9) HVM guests may write.
pub const XEN_HVM_DEBUGCONS_IOPORT: u16 = 0xe9;
/// `XEN_CPUID_NO_SUBLEAF`: `xen_cpuid_leaf.subleaf` for leaves without sub-leaves.
pub const XEN_CPUID_NO_SUBLEAF: u32 = 0xffff_ffff;

abi_struct! {
    /// `struct arch_vcpu_info`: the x86 tail of `vcpu_info`.
    pub struct arch_vcpu_info [size 16, align 8] {
        /// Faulting address of the last PV page fault.
        0 => cr2: u64,
        /// Unused.
        8 => pad: u64,
    }
}

abi_struct! {
    /// `struct arch_shared_info`: the x86 tail of `shared_info`.
    pub struct arch_shared_info [size 48, align 8] {
        /// Highest pfn of the PV p2m list.
        0 => max_pfn: u64,
        /// Frame of the p2m frame-list-list (PV).
        8 => pfn_to_mfn_frame_list_list: xen_pfn_t,
        /// NMI reason bits (PV dom0).
        16 => nmi_reason: u64,
        /// Linear p2m: root page table (0 = none).
        24 => p2m_cr3: u64,
        /// Linear p2m: virtual address.
        32 => p2m_vaddr: u64,
        /// Linear p2m: change counter.
        40 => p2m_generation: u64,
    }
}

// ---- struct xen_arch_domainconfig ------------------------------------------------

/// `_XEN_X86_EMU_LAPIC`: bit of `XEN_X86_EMU_LAPIC`.
pub const _XEN_X86_EMU_LAPIC: u32 = 0;
/// `_XEN_X86_EMU_HPET`.
pub const _XEN_X86_EMU_HPET: u32 = 1;
/// `_XEN_X86_EMU_PM`.
pub const _XEN_X86_EMU_PM: u32 = 2;
/// `_XEN_X86_EMU_RTC`.
pub const _XEN_X86_EMU_RTC: u32 = 3;
/// `_XEN_X86_EMU_IOAPIC`.
pub const _XEN_X86_EMU_IOAPIC: u32 = 4;
/// `_XEN_X86_EMU_PIC`.
pub const _XEN_X86_EMU_PIC: u32 = 5;
/// `_XEN_X86_EMU_VGA`.
pub const _XEN_X86_EMU_VGA: u32 = 6;
/// `_XEN_X86_EMU_IOMMU`.
pub const _XEN_X86_EMU_IOMMU: u32 = 7;
/// `_XEN_X86_EMU_PIT`.
pub const _XEN_X86_EMU_PIT: u32 = 8;
/// `_XEN_X86_EMU_USE_PIRQ`.
pub const _XEN_X86_EMU_USE_PIRQ: u32 = 9;
/// `_XEN_X86_EMU_VPCI`.
pub const _XEN_X86_EMU_VPCI: u32 = 10;

/// `XEN_X86_EMU_LAPIC`: emulate the local APIC (the only one a PVH domU may have).
pub const XEN_X86_EMU_LAPIC: u32 = 1 << _XEN_X86_EMU_LAPIC;
/// `XEN_X86_EMU_HPET`.
pub const XEN_X86_EMU_HPET: u32 = 1 << _XEN_X86_EMU_HPET;
/// `XEN_X86_EMU_PM`: ACPI PM timer and PM1 registers.
pub const XEN_X86_EMU_PM: u32 = 1 << _XEN_X86_EMU_PM;
/// `XEN_X86_EMU_RTC`.
pub const XEN_X86_EMU_RTC: u32 = 1 << _XEN_X86_EMU_RTC;
/// `XEN_X86_EMU_IOAPIC`.
pub const XEN_X86_EMU_IOAPIC: u32 = 1 << _XEN_X86_EMU_IOAPIC;
/// `XEN_X86_EMU_PIC`.
pub const XEN_X86_EMU_PIC: u32 = 1 << _XEN_X86_EMU_PIC;
/// `XEN_X86_EMU_VGA`.
pub const XEN_X86_EMU_VGA: u32 = 1 << _XEN_X86_EMU_VGA;
/// `XEN_X86_EMU_IOMMU`.
pub const XEN_X86_EMU_IOMMU: u32 = 1 << _XEN_X86_EMU_IOMMU;
/// `XEN_X86_EMU_PIT`.
pub const XEN_X86_EMU_PIT: u32 = 1 << _XEN_X86_EMU_PIT;
/// `XEN_X86_EMU_USE_PIRQ`.
pub const XEN_X86_EMU_USE_PIRQ: u32 = 1 << _XEN_X86_EMU_USE_PIRQ;
/// `XEN_X86_EMU_VPCI`.
pub const XEN_X86_EMU_VPCI: u32 = 1 << _XEN_X86_EMU_VPCI;
/// `XEN_X86_EMU_ALL`: every emulation flag.
pub const XEN_X86_EMU_ALL: u32 = XEN_X86_EMU_LAPIC
    | XEN_X86_EMU_HPET
    | XEN_X86_EMU_PM
    | XEN_X86_EMU_RTC
    | XEN_X86_EMU_IOAPIC
    | XEN_X86_EMU_PIC
    | XEN_X86_EMU_VGA
    | XEN_X86_EMU_IOMMU
    | XEN_X86_EMU_PIT
    | XEN_X86_EMU_USE_PIRQ
    | XEN_X86_EMU_VPCI;

/// `XEN_X86_MSR_RELAXED` (`misc_flags`): relaxed MSR access semantics.
pub const XEN_X86_MSR_RELAXED: u32 = 1 << 0;
/// `XEN_X86_MISC_FLAGS_MAX`: the highest `misc_flags` bit (for validation).
pub const XEN_X86_MISC_FLAGS_MAX: u32 = XEN_X86_MSR_RELAXED;

assert_flags!(
    max = XEN_X86_EMU_VPCI,
    mask = XEN_X86_EMU_ALL,
    [
        XEN_X86_EMU_LAPIC = 0,
        XEN_X86_EMU_HPET = 1,
        XEN_X86_EMU_PM = 2,
        XEN_X86_EMU_RTC = 3,
        XEN_X86_EMU_IOAPIC = 4,
        XEN_X86_EMU_PIC = 5,
        XEN_X86_EMU_VGA = 6,
        XEN_X86_EMU_IOMMU = 7,
        XEN_X86_EMU_PIT = 8,
        XEN_X86_EMU_USE_PIRQ = 9,
        XEN_X86_EMU_VPCI = 10,
    ]
);
assert_flags!(max = XEN_X86_MISC_FLAGS_MAX, [XEN_X86_MSR_RELAXED = 0]);
const_assert_eq!(_XEN_X86_EMU_LAPIC, 0);
const_assert_eq!(_XEN_X86_EMU_VPCI, 10);
const_assert_eq!(XEN_X86_EMU_ALL, 0x7ff);

abi_struct! {
    /// `struct xen_arch_domainconfig`: the x86 part of `xen_domctl_createdomain`.
    pub struct xen_arch_domainconfig [size 8, align 4] {
        /// `XEN_X86_EMU_*`: which devices Xen emulates for the domain.
        0 => emulation_flags: u32,
        /// `XEN_X86_MSR_RELAXED`.
        4 => misc_flags: u32,
    }
}

bitflags! {
    /// `XEN_X86_EMU_*` as a typed set (for `xen_arch_domainconfig.emulation_flags`).
    #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
    pub struct X86EmuFlags: u32 {
        const LAPIC = XEN_X86_EMU_LAPIC;
        const HPET = XEN_X86_EMU_HPET;
        const PM = XEN_X86_EMU_PM;
        const RTC = XEN_X86_EMU_RTC;
        const IOAPIC = XEN_X86_EMU_IOAPIC;
        const PIC = XEN_X86_EMU_PIC;
        const VGA = XEN_X86_EMU_VGA;
        const IOMMU = XEN_X86_EMU_IOMMU;
        const PIT = XEN_X86_EMU_PIT;
        const USE_PIRQ = XEN_X86_EMU_USE_PIRQ;
        const VPCI = XEN_X86_EMU_VPCI;
    }
}
const_assert_eq!(X86EmuFlags::all().bits(), XEN_X86_EMU_ALL);

abi_struct! {
    /// `struct xen_cpuid_leaf` (`xen_cpuid_leaf_t`): one CPUID policy entry.
    pub struct xen_cpuid_leaf [size 24, align 4] {
        0 => leaf: u32,
        /// `XEN_CPUID_NO_SUBLEAF` when the leaf has none.
        4 => subleaf: u32,
        8 => a: u32,
        12 => b: u32,
        16 => c: u32,
        20 => d: u32,
    }
}

abi_struct! {
    /// `struct xen_msr_entry` (`xen_msr_entry_t`): one MSR policy entry.
    pub struct xen_msr_entry [size 16, align 8] {
        0 => idx: u32,
        /// Reserved, must be zero.
        4 => flags: u32,
        8 => val: u64,
    }
}

// ---- PV vCPU context (XEN_DOMCTL_setvcpucontext / VCPUOP_initialise for PV) -------

abi_struct! {
    /// `struct cpu_user_regs` (x86-64): the general registers. C declares most of
    /// them as unions of their 64/32/16-bit names; the 64-bit name is mirrored.
    pub struct cpu_user_regs [size 200, align 8] {
        0 => r15: u64,
        8 => r14: u64,
        16 => r13: u64,
        24 => r12: u64,
        32 => rbp: u64,
        40 => rbx: u64,
        48 => r11: u64,
        56 => r10: u64,
        64 => r9: u64,
        72 => r8: u64,
        80 => rax: u64,
        88 => rcx: u64,
        96 => rdx: u64,
        104 => rsi: u64,
        112 => rdi: u64,
        /// Private to Xen.
        120 => error_code: u32,
        /// Private to Xen.
        124 => entry_vector: u32,
        128 => rip: u64,
        136 => cs: u16,
        138 => _pad0: [u16; 1],
        /// PV: the event mask saved on upcall.
        140 => saved_upcall_mask: u8,
        141 => _pad1: [u8; 3],
        144 => rflags: u64,
        152 => rsp: u64,
        160 => ss: u16,
        162 => _pad2: [u16; 3],
        168 => es: u16,
        170 => _pad3: [u16; 3],
        176 => ds: u16,
        178 => _pad4: [u16; 3],
        184 => fs: u16,
        186 => _pad5: [u16; 3],
        192 => gs: u16,
        194 => _pad6: [u16; 3],
    }
}

abi_struct! {
    /// `struct trap_info`: one PV virtual IDT entry.
    pub struct trap_info [size 16, align 8] {
        0 => vector: u8,
        /// Bits 0-1: DPL; bit 2: clear event mask on entry.
        1 => flags: u8,
        2 => cs: u16,
        4 => _implicit0: [u8; 4],
        8 => address: u64,
    }
}

/// `_VGCF_i387_valid`.
pub const _VGCF_i387_valid: u32 = 0;
/// `VGCF_i387_valid`: `fpu_ctxt` holds valid state.
pub const VGCF_i387_valid: u32 = 1 << _VGCF_i387_valid;
/// `VGCF_I387_VALID` (old spelling).
pub const VGCF_I387_VALID: u32 = 1 << 0;
/// `_VGCF_in_kernel`.
pub const _VGCF_in_kernel: u32 = 2;
/// `VGCF_in_kernel`.
pub const VGCF_in_kernel: u32 = 1 << _VGCF_in_kernel;
/// `VGCF_IN_KERNEL` (old spelling).
pub const VGCF_IN_KERNEL: u32 = 1 << 2;
/// `_VGCF_failsafe_disables_events`.
pub const _VGCF_failsafe_disables_events: u32 = 3;
/// `VGCF_failsafe_disables_events`.
pub const VGCF_failsafe_disables_events: u32 = 1 << _VGCF_failsafe_disables_events;
/// `_VGCF_syscall_disables_events`.
pub const _VGCF_syscall_disables_events: u32 = 4;
/// `VGCF_syscall_disables_events`.
pub const VGCF_syscall_disables_events: u32 = 1 << _VGCF_syscall_disables_events;
/// `_VGCF_online`.
pub const _VGCF_online: u32 = 5;
/// `VGCF_online`: the vCPU is brought up online.
pub const VGCF_online: u32 = 1 << _VGCF_online;
/// `_VGCF_in_syscall` (x86-64).
pub const _VGCF_in_syscall: u32 = 8;
/// `VGCF_in_syscall` (x86-64).
pub const VGCF_in_syscall: u32 = 1 << _VGCF_in_syscall;
/// `VGCF_IN_SYSCALL` (x86-64, old spelling).
pub const VGCF_IN_SYSCALL: u32 = VGCF_in_syscall;

assert_flags!([
    VGCF_i387_valid = 0,
    VGCF_in_kernel = 2,
    VGCF_failsafe_disables_events = 3,
    VGCF_syscall_disables_events = 4,
    VGCF_online = 5,
    VGCF_in_syscall = 8,
]);

abi_struct! {
    /// `struct vcpu_guest_context` (x86-64, as tools see it): the vCPU state
    /// `XEN_DOMCTL_setvcpucontext` loads.
    pub struct vcpu_guest_context [size 5168, align 8] {
        /// FXSAVE image (C: `struct { char x[512]; }`).
        0 => fpu_ctxt: [u8; 512],
        /// `VGCF_*`.
        512 => flags: u64,
        520 => user_regs: cpu_user_regs,
        720 => trap_ctxt: [trap_info; 256],
        4816 => ldt_base: u64,
        4824 => ldt_ents: u64,
        4832 => gdt_frames: [u64; 16],
        4960 => gdt_ents: u64,
        4968 => kernel_ss: u64,
        4976 => kernel_sp: u64,
        /// CR0..CR7 (CR3 as `xen_pfn_to_cr3`).
        4984 => ctrlreg: [u64; 8],
        5048 => debugreg: [u64; 8],
        5112 => event_callback_eip: u64,
        5120 => failsafe_callback_eip: u64,
        5128 => syscall_callback_eip: u64,
        5136 => vm_assist: u64,
        5144 => fs_base: u64,
        5152 => gs_base_kernel: u64,
        5160 => gs_base_user: u64,
    }
}

/// `xen_pfn_to_cr3`: a frame number as a CR3 value.
pub const fn xen_pfn_to_cr3(pfn: xen_pfn_t) -> u64 {
    pfn << 12
}

/// `xen_cr3_to_pfn`: the frame number a CR3 value points at.
pub const fn xen_cr3_to_pfn(cr3: u64) -> xen_pfn_t {
    cr3 >> 12
}
