//! `xen/include/public/hvm/hvm_vcpu.h`: `struct vcpu_hvm_context`, the initial
//! register state `VCPUOP_initialise` takes for an HVM/PVH vCPU.

/// `VCPU_HVM_MODE_32B`: start in 32-bit protected mode (`cpu_regs.x86_32`).
pub const VCPU_HVM_MODE_32B: u32 = 0;
/// `VCPU_HVM_MODE_64B`: start in 64-bit long mode (`cpu_regs.x86_64`).
pub const VCPU_HVM_MODE_64B: u32 = 1;

abi_struct! {
    /// `struct vcpu_hvm_x86_32` (`xen_vcpu_hvm_x86_32_t`).
    pub struct vcpu_hvm_x86_32 [size 120, align 8] {
        0 => eax: u32,
        4 => ecx: u32,
        8 => edx: u32,
        12 => ebx: u32,
        16 => esp: u32,
        20 => ebp: u32,
        24 => esi: u32,
        28 => edi: u32,
        32 => eip: u32,
        36 => eflags: u32,
        40 => cr0: u32,
        44 => cr3: u32,
        48 => cr4: u32,
        52 => pad1: u32,
        56 => efer: u64,
        64 => cs_base: u32,
        68 => ds_base: u32,
        72 => ss_base: u32,
        76 => es_base: u32,
        80 => tr_base: u32,
        84 => cs_limit: u32,
        88 => ds_limit: u32,
        92 => ss_limit: u32,
        96 => es_limit: u32,
        100 => tr_limit: u32,
        104 => cs_ar: u16,
        106 => ds_ar: u16,
        108 => ss_ar: u16,
        110 => es_ar: u16,
        112 => tr_ar: u16,
        114 => pad2: [u16; 3],
    }
}

abi_struct! {
    /// `struct vcpu_hvm_x86_64` (`xen_vcpu_hvm_x86_64_t`): flat segments implied.
    pub struct vcpu_hvm_x86_64 [size 112, align 8] {
        0 => rax: u64,
        8 => rcx: u64,
        16 => rdx: u64,
        24 => rbx: u64,
        32 => rsp: u64,
        40 => rbp: u64,
        48 => rsi: u64,
        56 => rdi: u64,
        64 => rip: u64,
        72 => rflags: u64,
        80 => cr0: u64,
        88 => cr3: u64,
        96 => cr4: u64,
        104 => efer: u64,
    }
}

abi_union! {
    /// `vcpu_hvm_context.cpu_regs` (anonymous in C).
    pub union vcpu_hvm_context_regs [size 120, align 8] as [u64; 15] {
        x86_32: vcpu_hvm_x86_32,
        x86_64: vcpu_hvm_x86_64,
    }
}

abi_struct! {
    /// `struct vcpu_hvm_context`.
    pub struct vcpu_hvm_context [size 128, align 8] {
        /// `VCPU_HVM_MODE_*`.
        0 => mode: u32,
        4 => pad: u32,
        8 => cpu_regs: vcpu_hvm_context_regs,
    }
}
