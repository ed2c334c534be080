//! `xen/include/public/hvm/save.h` and `arch-x86/hvm/save.h`: the HVM save
//! records `XEN_DOMCTL_{get,set}hvmcontext` carry. A context is a sequence of
//! records, each a [`hvm_save_descriptor`] followed by `length` bytes, starting
//! with HEADER and ending with END. Only the records the PVH domain builder
//! sends are mirrored: HEADER, CPU, MTRR, END.

/// `HVM_FILE_MAGIC`: [`hvm_save_header::magic`].
pub const HVM_FILE_MAGIC: u32 = 0x5438_1286;
/// `HVM_FILE_VERSION`: [`hvm_save_header::version`].
pub const HVM_FILE_VERSION: u32 = 0x0000_0001;

abi_struct! {
    /// `struct hvm_save_descriptor`: the header of every record.
    pub struct hvm_save_descriptor [size 8, align 4] {
        /// `HVM_SAVE_CODE(type)`.
        0 => typecode: u16,
        /// The vCPU (per-vCPU records) or the instance.
        2 => instance: u16,
        /// Bytes that follow, *not* counting this descriptor.
        4 => length: u32,
    }
}

abi_struct! {
    /// `struct hvm_save_header` (record HEADER, code 1): must come first.
    pub struct hvm_save_header [size 24, align 8] {
        /// Must be [`HVM_FILE_MAGIC`].
        0 => magic: u32,
        /// Must be [`HVM_FILE_VERSION`].
        4 => version: u32,
        /// Version of Xen that saved it.
        8 => changeset: u64,
        /// CPUID leaf 1 EAX of the saving machine.
        16 => cpuid: u32,
        /// Guest TSC frequency, kHz.
        20 => gtsc_khz: u32,
    }
}

/// `_XEN_X86_FPU_INITIALISED`.
pub const _XEN_X86_FPU_INITIALISED: u32 = 0;
/// `XEN_X86_FPU_INITIALISED`: [`hvm_hw_cpu::flags`]: `fpu_regs` holds a state.
pub const XEN_X86_FPU_INITIALISED: u32 = 1 << _XEN_X86_FPU_INITIALISED;

abi_struct! {
    /// `struct hvm_hw_cpu` (record CPU, code 2, instance = vCPU): the
    /// architectural state of one vCPU. Segment `*_arbytes` use Xen's 12-bit
    /// `segment_register` attribute layout (type, S, DPL, P, AVL, L, D/B, G).
    pub struct hvm_hw_cpu [size 1032, align 8] {
        0 => fpu_regs: [u8; 512],
        512 => rax: u64,
        520 => rbx: u64,
        528 => rcx: u64,
        536 => rdx: u64,
        544 => rbp: u64,
        552 => rsi: u64,
        560 => rdi: u64,
        568 => rsp: u64,
        576 => r8: u64,
        584 => r9: u64,
        592 => r10: u64,
        600 => r11: u64,
        608 => r12: u64,
        616 => r13: u64,
        624 => r14: u64,
        632 => r15: u64,
        640 => rip: u64,
        648 => rflags: u64,
        656 => cr0: u64,
        664 => cr2: u64,
        672 => cr3: u64,
        680 => cr4: u64,
        688 => dr0: u64,
        696 => dr1: u64,
        704 => dr2: u64,
        712 => dr3: u64,
        720 => dr6: u64,
        728 => dr7: u64,
        736 => cs_sel: u32,
        740 => ds_sel: u32,
        744 => es_sel: u32,
        748 => fs_sel: u32,
        752 => gs_sel: u32,
        756 => ss_sel: u32,
        760 => tr_sel: u32,
        764 => ldtr_sel: u32,
        768 => cs_limit: u32,
        772 => ds_limit: u32,
        776 => es_limit: u32,
        780 => fs_limit: u32,
        784 => gs_limit: u32,
        788 => ss_limit: u32,
        792 => tr_limit: u32,
        796 => ldtr_limit: u32,
        800 => idtr_limit: u32,
        804 => gdtr_limit: u32,
        808 => cs_base: u64,
        816 => ds_base: u64,
        824 => es_base: u64,
        832 => fs_base: u64,
        840 => gs_base: u64,
        848 => ss_base: u64,
        856 => tr_base: u64,
        864 => ldtr_base: u64,
        872 => idtr_base: u64,
        880 => gdtr_base: u64,
        888 => cs_arbytes: u32,
        892 => ds_arbytes: u32,
        896 => es_arbytes: u32,
        900 => fs_arbytes: u32,
        904 => gs_arbytes: u32,
        908 => ss_arbytes: u32,
        912 => tr_arbytes: u32,
        916 => ldtr_arbytes: u32,
        920 => sysenter_cs: u64,
        928 => sysenter_esp: u64,
        936 => sysenter_eip: u64,
        944 => shadow_gs: u64,
        /// Obsolete, ignored.
        952 => msr_flags: u64,
        960 => msr_lstar: u64,
        968 => msr_star: u64,
        976 => msr_cstar: u64,
        984 => msr_syscall_mask: u64,
        992 => msr_efer: u64,
        1000 => msr_tsc_aux: u64,
        1008 => tsc: u64,
        /// The anonymous union: vector 0..7, type 8..10, error valid 11, valid 31.
        1016 => pending_event: u32,
        1020 => error_code: u32,
        /// `XEN_X86_FPU_INITIALISED`.
        1024 => flags: u32,
        /// Must be 0.
        1028 => pad0: u32,
    }
}

/// `MTRR_VCNT`: variable-range MTRR pairs in [`hvm_hw_mtrr`].
pub const MTRR_VCNT: u32 = 8;
/// `NUM_FIXED_MSR`: fixed-range MTRR MSRs in [`hvm_hw_mtrr`].
pub const NUM_FIXED_MSR: u32 = 11;

abi_struct! {
    /// `struct hvm_hw_mtrr` (record MTRR, code 14, instance = vCPU).
    pub struct hvm_hw_mtrr [size 240, align 8] {
        0 => msr_pat_cr: u64,
        /// Base/mask pairs.
        8 => msr_mtrr_var: [u64; 16],
        136 => msr_mtrr_fixed: [u64; 11],
        224 => msr_mtrr_cap: u64,
        232 => msr_mtrr_def_type: u64,
    }
}

/// `HVM_SAVE_CODE(END)`: the record that ends a context (length 0).
pub const HVM_SAVE_CODE_END: u16 = 0;
/// `HVM_SAVE_CODE(HEADER)`.
pub const HVM_SAVE_CODE_HEADER: u16 = 1;
/// `HVM_SAVE_CODE(CPU)`.
pub const HVM_SAVE_CODE_CPU: u16 = 2;
/// `HVM_SAVE_CODE(MTRR)`.
pub const HVM_SAVE_CODE_MTRR: u16 = 14;
/// `HVM_SAVE_CODE_MAX`: the highest record type code in 4.17.
pub const HVM_SAVE_CODE_MAX: u16 = 20;
