//! The VM entry/exit trampoline: host callee-saved registers on the stack, `HOST_RSP`
//! and `HOST_RIP` written just before `vmlaunch`/`vmresume`, the guest's general
//! registers loaded from and saved to a [`Gprs`] block. The guest's RSP, RIP and
//! RFLAGS live in the VMCS, not here.
//!
//! Mirrors Xen's `vmx/entry.S` (`vmx_asm_vmexit_handler`, `vmx_asm_do_vmentry`).

/// The guest's general-purpose registers, indexed by their instruction encoding
/// (`rax` = 0 .. `r15` = 15). Slot 4 (`rsp`) is unused: RSP is in the VMCS.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct Gprs(pub [u64; 16]);

// Offsets the assembly below uses.
const _: () = assert!(core::mem::size_of::<Gprs>() == 128);

core::arch::global_asm!(
    r#"
    .section .text.vmx_enter, "ax"
    .global vmx_enter
    // u64 vmx_enter(Gprs *gprs /* rdi */, u64 launched /* rsi */)
    // Returns 0 after a VM exit, 1 for VMfailInvalid, 2 for VMfailValid.
vmx_enter:
    push rbp
    push rbx
    push r12
    push r13
    push r14
    push r15
    push rdi
    mov rax, 0x6C14
    vmwrite rax, rsp
    jbe 3f
    lea rdx, [rip + 4f]
    mov rax, 0x6C16
    vmwrite rax, rdx
    jbe 3f
    cmp rsi, 0
    mov rax, [rdi + 0]
    mov rcx, [rdi + 8]
    mov rdx, [rdi + 16]
    mov rbx, [rdi + 24]
    mov rbp, [rdi + 40]
    mov rsi, [rdi + 48]
    mov r8, [rdi + 64]
    mov r9, [rdi + 72]
    mov r10, [rdi + 80]
    mov r11, [rdi + 88]
    mov r12, [rdi + 96]
    mov r13, [rdi + 104]
    mov r14, [rdi + 112]
    mov r15, [rdi + 120]
    mov rdi, [rdi + 56]
    jne 1f
    vmlaunch
    jmp 3f
1:
    vmresume
3:
    mov eax, 2
    jnc 5f
    mov eax, 1
5:
    add rsp, 8
    pop r15
    pop r14
    pop r13
    pop r12
    pop rbx
    pop rbp
    ret
4:
    push rdi
    mov rdi, [rsp + 8]
    mov [rdi + 0], rax
    mov [rdi + 8], rcx
    mov [rdi + 16], rdx
    mov [rdi + 24], rbx
    mov [rdi + 40], rbp
    mov [rdi + 48], rsi
    mov [rdi + 64], r8
    mov [rdi + 72], r9
    mov [rdi + 80], r10
    mov [rdi + 88], r11
    mov [rdi + 96], r12
    mov [rdi + 104], r13
    mov [rdi + 112], r14
    mov [rdi + 120], r15
    pop rax
    mov [rdi + 56], rax
    xor eax, eax
    jmp 5b
"#
);

unsafe extern "C" {
    fn vmx_enter(gprs: *mut Gprs, launched: u64) -> u64;
}

/// How an entry attempt ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EntryResult {
    /// The guest ran and exited (the exit reason is in the VMCS).
    Exited,
    /// `vmlaunch`/`vmresume` (or the `HOST_RSP`/`HOST_RIP` writes) failed with no
    /// current VMCS.
    FailInvalid,
    /// ... failed with the VM-instruction error in the VMCS.
    FailValid,
}

/// Enters the guest of the current VMCS with `gprs`, `launched` selecting
/// `vmresume` over `vmlaunch`. Interrupts must be disabled.
///
/// # Safety
/// The current VMCS must hold a complete host state of this CPU (its `HOST_CR3`, GDT,
/// IDT, TR, GS base), so that the VM exit returns into this function on this stack.
pub unsafe fn enter(gprs: &mut Gprs, launched: bool) -> EntryResult {
    // SAFETY: the caller guarantees the host state; the trampoline saves and
    // restores every callee-saved register and returns on the same stack.
    match unsafe { vmx_enter(gprs, launched as u64) } {
        0 => EntryResult::Exited,
        1 => EntryResult::FailInvalid,
        _ => EntryResult::FailValid,
    }
}
