//! Symbolised backtraces from frame pointers (the kernel is built with
//! `-C force-frame-pointers=yes`) and the kernel's own `.symtab`, read from the ELF
//! file the bootloader left in memory. Names are demangled with `rustc-demangle`.
//!
//! The walker only follows frame pointers that lie inside the current CPU's stack,
//! so a corrupt chain ends the backtrace instead of faulting. Mirrors Xen's
//! `show_trace`/`symbols.c`, but reads the ELF symbol table instead of a generated one.

use core::sync::atomic::Ordering;

use spin::Once;

use super::elf::Elf;
use super::percpu;

/// The kernel image for symbol look-ups and its load bias.
static KERNEL: Once<(Elf, u64)> = Once::new();

/// Most frames printed.
const MAX_FRAMES: usize = 32;

/// Registers the kernel ELF (reached through the physical map) and its load bias.
pub fn init(elf: Elf, image_offset: u64) {
    KERNEL.call_once(|| (elf, image_offset));
}

/// Prints `backtrace:` and one line per frame: first `rip` (if given), then the
/// return addresses found by walking the frame-pointer chain from `rbp`.
pub fn print(rip: Option<u64>, mut rbp: u64) {
    log::error!("backtrace:");
    let cpu = percpu::current();
    let lo = cpu.stack_bottom.load(Ordering::Relaxed);
    let hi = cpu.stack_top.load(Ordering::Relaxed);
    let mut i = 0;
    if let Some(rip) = rip {
        line(i, rip, rip);
        i += 1;
    }
    while i < MAX_FRAMES {
        if rbp == 0 || !rbp.is_multiple_of(8) || rbp < lo || rbp.saturating_add(16) > hi {
            break;
        }
        // SAFETY: [rbp, rbp+16) lies inside this CPU's stack, which is mapped.
        let (next, ret) = unsafe { (*(rbp as *const u64), *((rbp + 8) as *const u64)) };
        if ret == 0 {
            break;
        }
        // Symbolise the call instruction, not the return address (which may
        // already belong to the next function).
        line(i, ret, ret - 1);
        i += 1;
        if next <= rbp {
            break;
        }
        rbp = next;
    }
}

fn line(i: usize, addr: u64, lookup: u64) {
    match symbolize(lookup) {
        Some((name, start)) => log::error!(
            "  #{i} 0x{addr:x} {:#}+0x{:x}",
            rustc_demangle::demangle(name),
            addr - start
        ),
        None => log::error!("  #{i} 0x{addr:x} ?"),
    }
}

/// (mangled name, runtime start address) of the function containing `addr`.
pub fn symbolize(addr: u64) -> Option<(&'static str, u64)> {
    let (elf, bias) = KERNEL.get()?;
    let (name, off) = elf.symbolize(addr.checked_sub(*bias)?)?;
    Some((name, addr - off))
}

/// The current frame pointer.
#[inline(always)]
pub fn current_rbp() -> u64 {
    let rbp: u64;
    // SAFETY: reads a register.
    unsafe {
        core::arch::asm!("mov {}, rbp", out(reg) rbp, options(nomem, nostack, preserves_flags))
    };
    rbp
}
