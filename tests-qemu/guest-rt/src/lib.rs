//! `guest-rt`: the runtime of the `no_std` PVH test guests.
//!
//! - [`boot`]: the `XEN_ELFNOTE_PHYS32_ENTRY` note and the 32-bit entry that builds
//!   page tables and enters long mode, then calls [`Boot`]-taking `guest_main`;
//! - [`idt`]: exception/interrupt stubs, handlers that print and crash the domain;
//! - [`xen`]: Xen detection (CPUID 0x40000000..), hypercalls (VMMCALL/VMCALL from the
//!   CPUID vendor, or the hypercall page), console, shutdown;
//! - [`evtchn`]: event channels, 2-level and FIFO, as Linux drives them;
//! - [`user`]: running a snippet at CPL3 (for the CPL≠0 hypercall check);
//! - [`report`]: `RESULT`/`MEASURE`/`SCENARIO` lines.
//!
//! A guest binary defines `#[no_mangle] fn guest_main(boot: &guest_rt::Boot) -> !`.
//! Under plain QEMU (`qemu-system-x86_64 -kernel guest.elf`) the runtime says
//! "not under Xen" and writes to COM1.
#![no_std]

pub mod boot;
pub mod console;
pub mod evtchn;
pub mod idt;
pub mod report;
pub mod user;
pub mod xen;

use xen_public_abi::hvm::start_info::{hvm_start_info, XEN_HVM_START_MAGIC_VALUE};

/// What the guest learned at boot.
pub struct Boot {
    /// Physical address of `hvm_start_info` (from EBX).
    pub start_info_paddr: u64,
    /// The start info, if the magic matched.
    pub start_info: Option<&'static hvm_start_info>,
    /// The command line from the start info ("" when none).
    pub cmdline: &'static str,
    /// The Xen CPUID base, if under Xen.
    pub xen_base: Option<u32>,
}

impl Boot {
    /// The value of `key=value` on the command line.
    pub fn arg(&self, key: &str) -> Option<&'static str> {
        self.cmdline.split_whitespace().find_map(|tok| {
            let (k, v) = tok.split_once('=')?;
            (k == key).then_some(v)
        })
    }

    /// A numeric `key=value` (decimal or 0x-hex), or `default`.
    pub fn arg_u64(&self, key: &str, default: u64) -> u64 {
        self.arg(key).and_then(parse_u64).unwrap_or(default)
    }
}

/// Parses decimal or `0x` hex.
pub fn parse_u64(s: &str) -> Option<u64> {
    match s.strip_prefix("0x") {
        Some(hex) => u64::from_str_radix(hex, 16).ok(),
        None => s.parse().ok(),
    }
}

/// Reads the NUL-terminated command line at `paddr` (identity-mapped).
fn cmdline_at(paddr: u64) -> &'static str {
    if paddr == 0 {
        return "";
    }
    let p = paddr as *const u8;
    let mut len = 0;
    // SAFETY: the loader put a NUL-terminated string there; the first 4 GiB are
    // identity-mapped. The scan is capped at 1 KiB.
    unsafe {
        while len < 1024 && *p.add(len) != 0 {
            len += 1;
        }
        core::str::from_utf8(core::slice::from_raw_parts(p, len)).unwrap_or("")
    }
}

extern "Rust" {
    fn guest_main(boot: &Boot) -> !;
}

#[no_mangle]
extern "C" fn guest_rt_start(start_info_paddr: u32) -> ! {
    boot::init_gdt();
    idt::init();
    let xen_base = xen::init();
    let paddr = start_info_paddr as u64;
    // SAFETY: EBX pointed at the start info (identity-mapped); checked by magic.
    let si = unsafe { &*(paddr as *const hvm_start_info) };
    let start_info = (paddr != 0 && si.magic == XEN_HVM_START_MAGIC_VALUE).then_some(si);
    let cmdline = start_info.map_or("", |si| cmdline_at(si.cmdline_paddr));
    if xen_base.is_none() {
        println!("guest-rt: not under Xen (no XenVMMXenVMM CPUID signature); hypercalls fail with -ENOSYS");
    }
    let boot = Boot {
        start_info_paddr: paddr,
        start_info,
        cmdline,
        xen_base,
    };
    // SAFETY: the guest binary defines `guest_main` with this signature.
    unsafe { guest_main(&boot) }
}

#[panic_handler]
fn panic(info: &core::panic::PanicInfo) -> ! {
    println!("guest PANIC: {}", info);
    xen::shutdown(xen_public_abi::sched::SHUTDOWN_crash)
}
