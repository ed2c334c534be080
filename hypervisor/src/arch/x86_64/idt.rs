//! The IDT and the interrupt entry stubs. `extern "x86-interrupt"` is nightly-only,
//! so the 256 entry stubs are assembly (`global_asm!`): each pushes a dummy error
//! code where the CPU pushes none, then its vector, and jumps to a common path that
//! saves the general registers into a [`TrapFrame`] and calls [`trap_dispatch`].
//!
//! Vectors 0–31 (exceptions) are fatal: they print the exception, error code, RIP
//! (and CR2 for #PF), a symbolised backtrace, and end the run with failure. The
//! local APIC timer and the spurious vector are handled; anything else is logged.
//!
//! Mirrors Xen's `xen/arch/x86/x86_64/entry.S` + `traps.c` (`fatal_trap`).

use core::sync::atomic::Ordering;

use spin::Once;
use x86_64::instructions::tables::lidt;
use x86_64::registers::control::Cr2;
use x86_64::structures::DescriptorTablePointer;
use x86_64::VirtAddr;

use super::{apic, backtrace, console, gdt, percpu, shutdown};

/// The register state the entry stub saved, lowest address first.
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

// Vectors whose exceptions push an error code: #DF, #TS, #NP, #SS, #GP, #PF, #AC,
// #CP, #VC, #SX. Each stub is 16-byte aligned, so stub N is at isr_stubs + 16*N.
core::arch::global_asm!(
    r#"
    .section .text.isr_stubs, "ax"
    .balign 16
    .global isr_stubs
isr_stubs:
    .set vec, 0
    .rept 256
    .balign 16
    .if (vec == 8) || (vec == 10) || (vec == 11) || (vec == 12) || (vec == 13) || (vec == 14) || (vec == 17) || (vec == 21) || (vec == 29) || (vec == 30)
    pushq $vec
    .else
    pushq $0
    pushq $vec
    .endif
    jmp isr_common
    .set vec, vec + 1
    .endr

isr_common:
    pushq %rax
    pushq %rbx
    pushq %rcx
    pushq %rdx
    pushq %rsi
    pushq %rdi
    pushq %rbp
    pushq %r8
    pushq %r9
    pushq %r10
    pushq %r11
    pushq %r12
    pushq %r13
    pushq %r14
    pushq %r15
    movq %rsp, %rdi
    cld
    call trap_dispatch
    popq %r15
    popq %r14
    popq %r13
    popq %r12
    popq %r11
    popq %r10
    popq %r9
    popq %r8
    popq %rbp
    popq %rdi
    popq %rsi
    popq %rdx
    popq %rcx
    popq %rbx
    popq %rax
    addq $16, %rsp
    iretq
    .text
"#,
    options(att_syntax)
);

extern "C" {
    static isr_stubs: u8;
}

/// An IDT gate (interrupt gate, DPL 0).
#[derive(Clone, Copy)]
#[repr(C)]
struct Gate {
    offset_low: u16,
    selector: u16,
    ist: u8,
    type_attr: u8,
    offset_mid: u16,
    offset_high: u32,
    reserved: u32,
}

#[repr(C, align(16))]
struct Idt([Gate; 256]);

static IDT: Once<Idt> = Once::new();

fn build() -> Idt {
    // SAFETY: only the address of the linker symbol is taken.
    let base = unsafe { &isr_stubs as *const u8 as u64 };
    let mut idt = Idt([Gate {
        offset_low: 0,
        selector: 0,
        ist: 0,
        type_attr: 0,
        offset_mid: 0,
        offset_high: 0,
        reserved: 0,
    }; 256]);
    for (v, gate) in idt.0.iter_mut().enumerate() {
        let addr = base + 16 * v as u64;
        *gate = Gate {
            offset_low: addr as u16,
            selector: gdt::KERNEL_CS,
            ist: match v {
                2 => gdt::IST_NMI,
                8 => gdt::IST_DOUBLE_FAULT,
                18 => gdt::IST_MACHINE_CHECK,
                _ => 0,
            },
            type_attr: 0x8E, // present, DPL 0, 64-bit interrupt gate
            offset_mid: (addr >> 16) as u16,
            offset_high: (addr >> 32) as u32,
            reserved: 0,
        };
    }
    idt
}

/// Loads the (shared) IDT on this CPU. Call after [`gdt`] set CS to `KERNEL_CS`.
pub fn load() {
    let idt = IDT.call_once(build);
    let ptr = DescriptorTablePointer {
        limit: (core::mem::size_of::<Idt>() - 1) as u16,
        base: VirtAddr::from_ptr(idt as *const Idt),
    };
    // SAFETY: the IDT is 'static and every gate points at a stub in this image.
    unsafe { lidt(&ptr) };
}

/// Architectural exception mnemonics, by vector.
pub fn exception_name(vector: u64) -> &'static str {
    const NAMES: [&str; 32] = [
        "#DE", "#DB", "NMI", "#BP", "#OF", "#BR", "#UD", "#NM", "#DF", "#CSO", "#TS", "#NP", "#SS",
        "#GP", "#PF", "#RES15", "#MF", "#AC", "#MC", "#XM", "#VE", "#CP", "#RES22", "#RES23",
        "#RES24", "#RES25", "#RES26", "#RES27", "#HV", "#VC", "#SX", "#RES31",
    ];
    NAMES.get(vector as usize).copied().unwrap_or("#INTR")
}

/// Called by `isr_common` with the saved state.
#[no_mangle]
extern "C" fn trap_dispatch(frame: &mut TrapFrame) {
    match frame.vector {
        0..=31 => fatal_exception(frame),
        v if v == apic::TIMER_VECTOR as u64 => apic::timer_interrupt(),
        v if v == apic::SPURIOUS_VECTOR as u64 => {}
        v => {
            log::warn!("unexpected interrupt vector {v}");
            apic::eoi();
        }
    }
}

fn fatal_exception(frame: &TrapFrame) -> ! {
    let cpu = percpu::current();
    if cpu.in_fatal.swap(true, Ordering::SeqCst) {
        // A fault while reporting a fault: say so in as few steps as possible.
        shutdown::exit(
            shutdown::ExitCode::Failure,
            "fault while handling a fatal error",
        );
    }
    console::force_unlock();
    let name = exception_name(frame.vector);
    if frame.vector == 14 {
        let cr2 = Cr2::read_raw();
        log::error!(
            "EXCEPTION: {name} (vector {}) error=0x{:x} rip=0x{:x} cr2=0x{:x}",
            frame.vector,
            frame.error,
            frame.rip,
            cr2
        );
    } else {
        log::error!(
            "EXCEPTION: {name} (vector {}) error=0x{:x} rip=0x{:x}",
            frame.vector,
            frame.error,
            frame.rip
        );
    }
    log::error!(
        "  rax=0x{:x} rbx=0x{:x} rcx=0x{:x} rdx=0x{:x} rsi=0x{:x} rdi=0x{:x}",
        frame.rax,
        frame.rbx,
        frame.rcx,
        frame.rdx,
        frame.rsi,
        frame.rdi
    );
    log::error!(
        "  rsp=0x{:x} rbp=0x{:x} rflags=0x{:x} cs=0x{:x} ss=0x{:x}",
        frame.rsp,
        frame.rbp,
        frame.rflags,
        frame.cs,
        frame.ss
    );
    backtrace::print(Some(frame.rip), frame.rbp);
    let mut reason = heapless_reason();
    reason.push_str(name);
    shutdown::exit(shutdown::ExitCode::Failure, reason.as_str())
}

/// A tiny fixed buffer for the failure reason (no heap on the fatal path).
struct Reason {
    buf: [u8; 32],
    len: usize,
}

impl Reason {
    fn push_str(&mut self, s: &str) {
        for &b in s.as_bytes() {
            if self.len < self.buf.len() {
                self.buf[self.len] = b;
                self.len += 1;
            }
        }
    }
    fn as_str(&self) -> &str {
        core::str::from_utf8(&self.buf[..self.len]).unwrap_or("exception")
    }
}

fn heapless_reason() -> Reason {
    let mut r = Reason {
        buf: [0; 32],
        len: 0,
    };
    r.push_str("exception ");
    r
}
