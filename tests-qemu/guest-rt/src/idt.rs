//! The IDT: entry stubs for every vector, a common save/restore path, and the
//! Rust dispatcher. Exceptions print and crash the domain (`SHUTDOWN_crash`);
//! the event-channel upcall vector, #VE (vector 20) and the CPL3-return vector
//! go to the handlers registered with [`set_handler`].

use core::arch::global_asm;
use core::sync::atomic::{AtomicUsize, Ordering};

use crate::boot::KERNEL_CS;

/// The vector Linux uses for Xen's event-channel callback (`HYPERVISOR_CALLBACK_VECTOR`).
pub const UPCALL_VECTOR: u8 = 0xf3;
/// #VE, the virtualization exception.
pub const VE_VECTOR: u8 = 20;
/// The software interrupt ring-3 code uses to come back (DPL 3 gate).
pub const USER_RETURN_VECTOR: u8 = 0x80;

/// The registers saved on entry, lowest address first.
#[repr(C)]
#[derive(Debug)]
pub struct TrapFrame {
    pub r15: u64,
    pub r14: u64,
    pub r13: u64,
    pub r12: u64,
    pub r11: u64,
    pub r10: u64,
    pub r9: u64,
    pub r8: u64,
    pub rbp: u64,
    pub rdi: u64,
    pub rsi: u64,
    pub rdx: u64,
    pub rcx: u64,
    pub rbx: u64,
    pub rax: u64,
    pub vector: u64,
    pub error: u64,
    pub rip: u64,
    pub cs: u64,
    pub rflags: u64,
    pub rsp: u64,
    pub ss: u64,
}

/// A handler for one vector.
pub type Handler = fn(&mut TrapFrame);

#[allow(clippy::declare_interior_mutable_const)] // array initialiser only
const NONE: AtomicUsize = AtomicUsize::new(0);
static HANDLERS: [AtomicUsize; 256] = [NONE; 256];

/// Routes `vector` to `handler` (instead of "print and crash").
pub fn set_handler(vector: u8, handler: Handler) {
    HANDLERS[vector as usize].store(handler as usize, Ordering::SeqCst);
}

// One 16-byte stub per vector: push a zero error code where the CPU pushes none,
// push the vector, jump to the common path. Vectors with a CPU error code:
// 8, 10-14, 17, 21, 29, 30.
global_asm!(
    r#"
    .section .text.idt, "ax"
    .code64
    .balign 16
    .global guest_rt_isr_stubs
guest_rt_isr_stubs:
    .irp n, 0,1,2,3,4,5,6,7,8,9,10,11,12,13,14,15,16,17,18,19,20,21,22,23,24,25,26,27,28,29,30,31
    .balign 16
    .if (\n == 8) || (\n == 10) || (\n == 11) || (\n == 12) || (\n == 13) || (\n == 14) || (\n == 17) || (\n == 21) || (\n == 29) || (\n == 30)
    .else
    push 0
    .endif
    push \n
    jmp guest_rt_isr_common
    .endr
    .irp n, 32,33,34,35,36,37,38,39,40,41,42,43,44,45,46,47,48,49,50,51,52,53,54,55,56,57,58,59,60,61,62,63
    .balign 16
    push 0
    push \n
    jmp guest_rt_isr_common
    .endr
    .irp hi, 64,96,128,160,192,224
    .irp lo, 0,1,2,3,4,5,6,7,8,9,10,11,12,13,14,15,16,17,18,19,20,21,22,23,24,25,26,27,28,29,30,31
    .balign 16
    push 0
    push (\hi + \lo)
    jmp guest_rt_isr_common
    .endr
    .endr

guest_rt_isr_common:
    push rax
    push rbx
    push rcx
    push rdx
    push rsi
    push rdi
    push rbp
    push r8
    push r9
    push r10
    push r11
    push r12
    push r13
    push r14
    push r15
    mov rdi, rsp
    cld
    call guest_rt_trap
    pop r15
    pop r14
    pop r13
    pop r12
    pop r11
    pop r10
    pop r9
    pop r8
    pop rbp
    pop rdi
    pop rsi
    pop rdx
    pop rcx
    pop rbx
    pop rax
    add rsp, 16
    iretq
"#
);

extern "C" {
    static guest_rt_isr_stubs: [u8; 256 * 16];
}

#[repr(C, align(16))]
struct Idt([u64; 512]);
static mut IDT: Idt = Idt([0; 512]);

#[repr(C, packed)]
struct DescPtr {
    limit: u16,
    base: u64,
}

/// Fills and loads the IDT: every vector an interrupt gate to its stub, DPL 0
/// except [`USER_RETURN_VECTOR`] (DPL 3).
pub fn init() {
    // SAFETY: single-threaded early init; the stubs are 16 bytes apart (.balign 16,
    // each stub is at most 2+2+5 bytes) and IDT is only written here.
    unsafe {
        let stubs = (&raw const guest_rt_isr_stubs) as u64;
        let idt = &raw mut IDT;
        for v in 0..256u64 {
            let addr = stubs + v * 16;
            let dpl: u64 = if v == USER_RETURN_VECTOR as u64 { 3 } else { 0 };
            let low = (addr & 0xffff)
                | ((KERNEL_CS as u64) << 16)
                | ((0x8e | (dpl << 5)) << 40)
                | (((addr >> 16) & 0xffff) << 48);
            (*idt).0[(v * 2) as usize] = low;
            (*idt).0[(v * 2 + 1) as usize] = addr >> 32;
        }
        let ptr = DescPtr {
            limit: (512 * 8 - 1) as u16,
            base: idt as u64,
        };
        core::arch::asm!("lidt [{}]", in(reg) &ptr, options(readonly, nostack));
    }
}

/// Loads an empty IDT: the next exception triple-faults (the isolation test).
pub fn load_empty() {
    let ptr = DescPtr { limit: 0, base: 0 };
    // SAFETY: deliberately breaks exception delivery; the caller wants a triple fault.
    unsafe { core::arch::asm!("lidt [{}]", in(reg) &ptr, options(readonly, nostack)) };
}

const NAMES: [&str; 32] = [
    "#DE", "#DB", "NMI", "#BP", "#OF", "#BR", "#UD", "#NM", "#DF", "CSO", "#TS", "#NP", "#SS",
    "#GP", "#PF", "15", "#MF", "#AC", "#MC", "#XM", "#VE", "#CP", "22", "23", "24", "25", "26",
    "27", "28", "#HV", "#VC", "#SX",
];

#[no_mangle]
extern "C" fn guest_rt_trap(frame: &mut TrapFrame) {
    let vector = (frame.vector & 0xff) as usize;
    let h = HANDLERS[vector].load(Ordering::SeqCst);
    if h != 0 {
        // SAFETY: only `set_handler` stores non-zero values, each a `Handler`.
        let handler: Handler = unsafe { core::mem::transmute::<usize, Handler>(h) };
        handler(frame);
        return;
    }
    let cr2: u64;
    // SAFETY: reading CR2 has no side effects.
    unsafe { core::arch::asm!("mov {}, cr2", out(reg) cr2, options(nomem, nostack)) };
    let name = NAMES.get(vector).copied().unwrap_or("interrupt");
    crate::println!(
        "guest EXCEPTION {} (vector {}) error={:#x} rip={:#x} cr2={:#x} rsp={:#x}",
        name,
        vector,
        frame.error,
        frame.rip,
        cr2,
        frame.rsp
    );
    crate::xen::shutdown(xen_public_abi::sched::SHUTDOWN_crash);
}
