//! PVH entry: the `XEN_ELFNOTE_PHYS32_ENTRY` note, the 32-bit entry point (paging
//! off, `EBX` = physical address of `hvm_start_info`), identity page tables for
//! the first 4 GiB, the switch to long mode, and the GDT/TSS used afterwards.
//!
//! Mirrors what Xen's and QEMU's PVH boot expect of a guest (`xen/include/public/
//! arch-x86/hvm/start_info.h`, `xen/include/public/elfnote.h`); the entry sequence
//! is the usual one of Linux's `arch/x86/platform/pvh/head.S`.

use core::arch::global_asm;

/// Selectors of the GDT below.
pub const KERNEL_CS: u16 = 0x08;
pub const KERNEL_DS: u16 = 0x10;
pub const USER_DS: u16 = 0x18 | 3;
pub const USER_CS: u16 = 0x20 | 3;
pub const TSS_SEL: u16 = 0x28;

// The ELF note (name "Xen", type 18 = XEN_ELFNOTE_PHYS32_ENTRY, 4-byte entry),
// then the 32-bit entry: zero .bss, build the page tables, enable PAE + LME +
// paging, load a 64-bit GDT, jump to 64-bit code, set the stack and call Rust.
// Page-table entries carry the U bit so the CPL3 test can run code anywhere.
global_asm!(
    r#"
    .section .note.Xen, "a", @note
    .balign 4
    .long 4
    .long 4
    .long 18
    .asciz "Xen"
    .balign 4
    .long pvh_start32
    .balign 4

    .section .text.pvh_boot, "ax"
    .code32
    .global pvh_start32
pvh_start32:
    cli
    cld
    mov esi, ebx

    mov edi, offset __bss_start
    mov ecx, offset __bss_end
    sub ecx, edi
    xor eax, eax
    rep stosb

    // PVH gives no stack (ESP is undefined): use ours before the first push.
    mov esp, offset boot_stack_top

    mov edi, offset boot_pd
    xor ecx, ecx
2:
    mov eax, ecx
    shl eax, 21
    or eax, 0x87
    mov [edi + ecx * 8], eax
    mov dword ptr [edi + ecx * 8 + 4], 0
    inc ecx
    cmp ecx, 2048
    jb 2b

    mov edi, offset boot_pdpt
    mov eax, offset boot_pd
    or eax, 0x7
    mov [edi], eax
    add eax, 4096
    mov [edi + 8], eax
    add eax, 4096
    mov [edi + 16], eax
    add eax, 4096
    mov [edi + 24], eax

    mov eax, offset boot_pdpt
    or eax, 0x7
    mov edi, offset boot_pml4
    mov [edi], eax

    mov eax, offset boot_pml4
    mov cr3, eax
    mov eax, cr4
    or eax, 0x20
    mov cr4, eax
    mov ecx, 0xC0000080
    rdmsr
    or eax, 0x100
    wrmsr
    mov eax, cr0
    or eax, 0x80000001
    and eax, 0x9FFFFFFF
    mov cr0, eax

    lgdt [boot_gdt_ptr]
    mov eax, offset pvh_start64
    push 0x08
    push eax
    retf

    .code64
pvh_start64:
    mov ax, 0x10
    mov ds, ax
    mov es, ax
    mov ss, ax
    xor eax, eax
    mov fs, ax
    mov gs, ax
    mov rsp, offset boot_stack_top
    mov edi, esi
    xor ebp, ebp
    call guest_rt_start
3:
    hlt
    jmp 3b

    .section .rodata.pvh_boot, "a"
    .balign 16
boot_gdt_ptr:
    .word boot_gdt_end - boot_gdt - 1
    .quad boot_gdt
    .balign 16
boot_gdt:
    .quad 0
    .quad 0x00af9a000000ffff
    .quad 0x00cf92000000ffff
boot_gdt_end:

    .section .bss.pvh_boot, "aw", @nobits
    .balign 4096
boot_pml4:
    .skip 4096
boot_pdpt:
    .skip 4096
boot_pd:
    .skip 4 * 4096
    .balign 16
boot_stack:
    .skip 65536
boot_stack_top:
"#
);

/// A 64-bit TSS (only `rsp0` matters: the stack for interrupts taken at CPL3).
#[repr(C, packed)]
struct Tss {
    _reserved0: u32,
    rsp: [u64; 3],
    _reserved1: u64,
    ist: [u64; 7],
    _reserved2: u64,
    _reserved3: u16,
    iomap_base: u16,
}

static mut TSS: Tss = Tss {
    _reserved0: 0,
    rsp: [0; 3],
    _reserved1: 0,
    ist: [0; 7],
    _reserved2: 0,
    _reserved3: 0,
    iomap_base: 104,
};

#[repr(C, align(16))]
struct Stack([u8; 16384]);
static mut RING0_STACK: Stack = Stack([0; 16384]);

/// Null, kernel code/data, user data/code (the order SYSRET would want), TSS (2 slots).
static mut GDT: [u64; 7] = [
    0,
    0x00af_9a00_0000_ffff,
    0x00cf_9200_0000_ffff,
    0x00cf_f200_0000_ffff,
    0x00af_fa00_0000_ffff,
    0,
    0,
];

#[repr(C, packed)]
struct DescPtr {
    limit: u16,
    base: u64,
}

/// Loads the full GDT (with user segments and the TSS) and the task register.
pub fn init_gdt() {
    // SAFETY: single-threaded early init; the statics are only touched here and
    // the addresses are identity-mapped physical addresses under 4 GiB.
    unsafe {
        let stack_top = (&raw mut RING0_STACK) as u64 + 16384;
        let tss = &raw mut TSS;
        (*tss).rsp[0] = stack_top;
        let base = tss as u64;
        let limit = (core::mem::size_of::<Tss>() - 1) as u64;
        let gdt = &raw mut GDT;
        (*gdt)[5] = (limit & 0xffff)
            | ((base & 0xff_ffff) << 16)
            | (0x89 << 40)
            | (((limit >> 16) & 0xf) << 48)
            | (((base >> 24) & 0xff) << 56);
        (*gdt)[6] = base >> 32;
        let ptr = DescPtr {
            limit: (core::mem::size_of::<[u64; 7]>() - 1) as u16,
            base: gdt as u64,
        };
        core::arch::asm!("lgdt [{}]", in(reg) &ptr, options(readonly, nostack));
        core::arch::asm!("ltr {0:x}", in(reg) TSS_SEL, options(nostack));
    }
}
