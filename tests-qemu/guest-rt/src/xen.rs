//! Xen detection and hypercalls.
//!
//! Detection scans CPUID 0x40000000..0x40010000 in 0x100 steps for the
//! "XenVMMXenVMM" signature, as Linux's `xen_cpuid_base()` does. Hypercalls use
//! the 64-bit HVM convention (`xen/arch/x86/hvm/hypercall.c`): number in RAX,
//! arguments in RDI, RSI, RDX, R10, R8, result in RAX. The instruction is
//! VMMCALL on AMD/Hygon and VMCALL otherwise (picked from the CPUID vendor, as
//! Linux's `xen_hypercall_hvm` does), or a call into the hypercall page.

use core::arch::asm;
use core::sync::atomic::{AtomicU32, AtomicU64, AtomicU8, Ordering};

use xen_public_abi::sched::{sched_shutdown, SCHEDOP_shutdown, SCHEDOP_yield};
use xen_public_abi::xen::*;

/// How hypercalls are issued.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub enum Method {
    /// Not under Xen: every hypercall fails with -ENOSYS without trapping.
    None = 0,
    Vmmcall = 1,
    Vmcall = 2,
    /// `call hypercall_page + nr * 32`.
    Page = 3,
}

static METHOD: AtomicU8 = AtomicU8::new(0);
static CPUID_BASE: AtomicU32 = AtomicU32::new(0);
static PAGE_ADDR: AtomicU64 = AtomicU64::new(0);

/// `-ENOSYS`, returned when not running under Xen.
pub const ENOSYS: i64 = -38;

/// Executes CPUID.
pub fn cpuid(leaf: u32, subleaf: u32) -> [u32; 4] {
    let (a, b, c, d): (u32, u32, u32, u32);
    // SAFETY: CPUID has no memory effects; RBX is saved by hand because LLVM reserves it.
    unsafe {
        asm!(
            "mov {tmp:r}, rbx",
            "cpuid",
            "xchg {tmp:r}, rbx",
            tmp = out(reg) b,
            inout("eax") leaf => a,
            inout("ecx") subleaf => c,
            out("edx") d,
            options(nomem, nostack, preserves_flags)
        );
    }
    [a, b, c, d]
}

/// Reads the TSC.
pub fn rdtsc() -> u64 {
    let (lo, hi): (u32, u32);
    // SAFETY: RDTSC only reads the time-stamp counter.
    unsafe { asm!("lfence", "rdtsc", out("eax") lo, out("edx") hi, options(nomem, nostack)) };
    ((hi as u64) << 32) | lo as u64
}

/// The Xen CPUID base leaf (0x40000000 + 0x100 * k), if the signature is there.
pub fn find_cpuid_base() -> Option<u32> {
    let mut base = 0x4000_0000u32;
    while base < 0x4001_0000 {
        let [max, b, c, d] = cpuid(base, 0);
        if b == 0x566e_6558 && c == 0x6558_4d4d && d == 0x4d4d_566e && max >= base + 2 {
            return Some(base);
        }
        base += 0x100;
    }
    None
}

/// Is the CPU vendor AMD or Hygon (VMMCALL) rather than Intel (VMCALL)?
pub fn vendor_is_amd() -> bool {
    let [_, b, c, d] = cpuid(0, 0);
    let amd = (b, d, c) == (0x6874_7541, 0x6974_6e65, 0x444d_4163); // AuthenticAMD
    let hygon = (b, d, c) == (0x6f67_7948, 0x6e65_476e, 0x656e_6975); // HygonGenuine
    amd || hygon
}

/// Detects Xen and picks the hypercall instruction. Returns the CPUID base.
pub fn init() -> Option<u32> {
    let base = find_cpuid_base()?;
    CPUID_BASE.store(base, Ordering::SeqCst);
    let m = if vendor_is_amd() {
        Method::Vmmcall
    } else {
        Method::Vmcall
    };
    METHOD.store(m as u8, Ordering::SeqCst);
    Some(base)
}

/// The Xen CPUID base found by [`init`] (0: not under Xen).
pub fn cpuid_base() -> u32 {
    CPUID_BASE.load(Ordering::SeqCst)
}

/// The hypercall method in use.
pub fn method() -> Method {
    match METHOD.load(Ordering::SeqCst) {
        1 => Method::Vmmcall,
        2 => Method::Vmcall,
        3 => Method::Page,
        _ => Method::None,
    }
}

/// Is the guest running under Xen (signature found)?
pub fn present() -> bool {
    method() != Method::None
}

#[repr(C, align(4096))]
struct Page([u8; 4096]);
static mut HYPERCALL_PAGE: Page = Page([0; 4096]);

/// Asks Xen to fill the hypercall page (WRMSR to the MSR from CPUID base+2 EBX)
/// and switches hypercalls to it. Returns the page's address; the caller checks
/// its contents.
pub fn install_hypercall_page() -> Option<u64> {
    let base = cpuid_base();
    if base == 0 {
        return None;
    }
    let msr = cpuid(base + 2, 0)[1];
    let addr = (&raw const HYPERCALL_PAGE) as u64;
    // SAFETY: the MSR is Xen's hypercall-page MSR; under Xen the write fills our page.
    unsafe {
        asm!("wrmsr", in("ecx") msr, in("eax") addr as u32, in("edx") (addr >> 32) as u32,
             options(nostack));
    }
    PAGE_ADDR.store(addr, Ordering::SeqCst);
    Some(addr)
}

/// Makes hypercalls go through the page installed by [`install_hypercall_page`]
/// (`on = true`) or the direct instruction again (`false`).
pub fn use_hypercall_page(on: bool) {
    let m = if on && PAGE_ADDR.load(Ordering::SeqCst) != 0 {
        Method::Page
    } else if vendor_is_amd() {
        Method::Vmmcall
    } else {
        Method::Vmcall
    };
    if present() {
        METHOD.store(m as u8, Ordering::SeqCst);
    }
}

/// The hypercall page bytes (valid after [`install_hypercall_page`]).
pub fn hypercall_page() -> &'static [u8; 4096] {
    // SAFETY: the page is only written by the hypervisor (on WRMSR), never by us.
    unsafe { &*((&raw const HYPERCALL_PAGE) as *const [u8; 4096]) }
}

/// Issues hypercall `nr` with up to five arguments; returns RAX.
pub fn hypercall(nr: u32, a1: u64, a2: u64, a3: u64, a4: u64, a5: u64) -> i64 {
    let ret: u64;
    // SAFETY: the hypercall ABI: arguments in registers, the hypervisor may read
    // and write guest memory named by them (hence no `nomem`); argument registers
    // are clobbered by debug Xen builds, so all of them are outputs.
    unsafe {
        match method() {
            Method::None => return ENOSYS,
            Method::Vmmcall => asm!("vmmcall",
                inlateout("rax") nr as u64 => ret,
                inlateout("rdi") a1 => _, inlateout("rsi") a2 => _, inlateout("rdx") a3 => _,
                inlateout("r10") a4 => _, inlateout("r8") a5 => _, options(nostack)),
            Method::Vmcall => asm!("vmcall",
                inlateout("rax") nr as u64 => ret,
                inlateout("rdi") a1 => _, inlateout("rsi") a2 => _, inlateout("rdx") a3 => _,
                inlateout("r10") a4 => _, inlateout("r8") a5 => _, options(nostack)),
            Method::Page => {
                let target = PAGE_ADDR.load(Ordering::SeqCst) + nr as u64 * 32;
                asm!("call {t}", t = in(reg) target,
                    inlateout("rax") nr as u64 => ret,
                    inlateout("rdi") a1 => _, inlateout("rsi") a2 => _, inlateout("rdx") a3 => _,
                    inlateout("r10") a4 => _, inlateout("r8") a5 => _,
                    out("rcx") _, out("r9") _, out("r11") _)
            }
        }
    }
    ret as i64
}

/// `xen_version(cmd, 0)` issued with the instruction itself (VMMCALL when
/// `amd`, else VMCALL), not through the hypercall page: the bench compares the
/// two to tell the guest's share of a null hypercall from the hypervisor's.
pub fn xen_version_insn(amd: bool, cmd: u32) -> i64 {
    let ret: u64;
    // SAFETY: as in `hypercall`; XENVER_* commands with a null argument write no
    // guest memory.
    unsafe {
        if amd {
            asm!("vmmcall", inlateout("rax") __HYPERVISOR_xen_version as u64 => ret,
                inlateout("rdi") cmd as u64 => _, inlateout("rsi") 0u64 => _,
                options(nostack));
        } else {
            asm!("vmcall", inlateout("rax") __HYPERVISOR_xen_version as u64 => ret,
                inlateout("rdi") cmd as u64 => _, inlateout("rsi") 0u64 => _,
                options(nostack));
        }
    }
    ret as i64
}

/// Hypercall with a pointer to `arg` as the second argument (`op(cmd, &arg)`).
pub fn hypercall_ptr<T>(nr: u32, cmd: u64, arg: &mut T) -> i64 {
    hypercall(nr, cmd, arg as *mut T as u64, 0, 0, 0)
}

/// `console_io(CONSOLEIO_write, len, buf)`.
pub fn console_write(bytes: &[u8]) -> i64 {
    hypercall(
        __HYPERVISOR_console_io,
        CONSOLEIO_write as u64,
        bytes.len() as u64,
        bytes.as_ptr() as u64,
        0,
        0,
    )
}

/// `xen_version(cmd, arg)`.
pub fn xen_version(cmd: u32, arg: u64) -> i64 {
    hypercall(__HYPERVISOR_xen_version, cmd as u64, arg, 0, 0, 0)
}

/// `sched_op(SCHEDOP_yield)`.
pub fn yield_now() -> i64 {
    hypercall(__HYPERVISOR_sched_op, SCHEDOP_yield as u64, 0, 0, 0, 0)
}

/// `sched_op(SCHEDOP_shutdown, reason)`; does not return. Not under Xen, it
/// writes the reason to QEMU's isa-debug-exit port 0xf4 and halts.
pub fn shutdown(reason: u32) -> ! {
    let mut arg = sched_shutdown { reason };
    if present() {
        hypercall_ptr(__HYPERVISOR_sched_op, SCHEDOP_shutdown as u64, &mut arg);
    }
    // SAFETY: port 0xf4 is QEMU's isa-debug-exit (when configured); otherwise the
    // write is ignored and we halt forever.
    unsafe {
        asm!("out dx, al", in("dx") 0xf4u16, in("al") reason as u8, options(nomem, nostack));
        loop {
            asm!("cli", "hlt", options(nomem, nostack));
        }
    }
}
