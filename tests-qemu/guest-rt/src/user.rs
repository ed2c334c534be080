//! Running a hypercall at CPL3: the CPL≠0 check (`-EPERM`) of HVM hypercalls.
//!
//! [`hypercall_at_cpl3`] saves the kernel stack, IRETs to a ring-3 snippet that
//! issues the hypercall instruction and then `int 0x80`; the DPL-3 gate brings
//! the CPU back to ring 0, where the handler rewrites the frame to resume the
//! kernel continuation with the result in RAX.

use core::arch::global_asm;
use core::sync::atomic::{AtomicU64, Ordering};

use crate::idt::{self, TrapFrame, USER_RETURN_VECTOR};

static SAVED_RSP: AtomicU64 = AtomicU64::new(0);

#[repr(C, align(16))]
struct Stack([u8; 8192]);
static mut USER_STACK: Stack = Stack([0; 8192]);

global_asm!(
    r#"
    .section .text.user, "ax"
    .code64
    // rdi = hypercall number, rsi = user rsp, rdx = 1 for VMMCALL else VMCALL
    .global guest_rt_enter_user
guest_rt_enter_user:
    push rbx
    push rbp
    push r12
    push r13
    push r14
    push r15
    mov [rip + {saved}], rsp
    mov rax, rdi
    push 0x1b
    push rsi
    push 0x2
    push 0x23
    lea rcx, [rip + guest_rt_user_vmmcall]
    lea r8, [rip + guest_rt_user_vmcall]
    cmp rdx, 1
    cmovne rcx, r8
    push rcx
    xor edi, edi
    xor esi, esi
    xor edx, edx
    iretq
guest_rt_user_vmmcall:
    vmmcall
    int 0x80
    ud2
guest_rt_user_vmcall:
    vmcall
    int 0x80
    ud2
    .global guest_rt_user_return
guest_rt_user_return:
    pop r15
    pop r14
    pop r13
    pop r12
    pop rbp
    pop rbx
    ret
"#,
    saved = sym SAVED_RSP,
);

extern "C" {
    fn guest_rt_enter_user(nr: u64, user_rsp: u64, amd: u64) -> i64;
    fn guest_rt_user_return();
}

fn user_return(frame: &mut TrapFrame) {
    if frame.cs & 3 != 3 {
        crate::println!("guest-rt: int 0x80 from ring 0 (ignored)");
        return;
    }
    frame.rip = guest_rt_user_return as *const () as u64;
    frame.cs = crate::boot::KERNEL_CS as u64;
    frame.ss = crate::boot::KERNEL_DS as u64;
    frame.rsp = SAVED_RSP.load(Ordering::SeqCst);
    frame.rflags = 0x2;
}

/// Issues hypercall `nr` (no arguments) from CPL3 and returns RAX as the
/// ring-3 code saw it.
pub fn hypercall_at_cpl3(nr: u32) -> i64 {
    idt::set_handler(USER_RETURN_VECTOR, user_return);
    let amd = crate::xen::vendor_is_amd() as u64;
    // SAFETY: the ring-3 snippet only runs the hypercall instruction and int 0x80;
    // its stack is a static; `user_return` resumes at `guest_rt_user_return`
    // with the stack pointer saved on entry, which pops what entry pushed.
    unsafe {
        let top = (&raw mut USER_STACK) as u64 + 8192;
        guest_rt_enter_user(nr as u64, top, amd)
    }
}
