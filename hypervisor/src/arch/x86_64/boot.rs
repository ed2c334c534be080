//! The bootstrap processor's boot sequence, from the bootloader's hand-off to
//! `READY` (all CPUs online, before any guest), then the test action `boot.cmd`
//! asks for and the end of the run. Also the panic path.
//!
//! Mirrors Xen's `xen/arch/x86/setup.c` (`__start_xen`) in order: console, memory,
//! page tables, descriptor tables, CPU features, ACPI, APIC, SMP, boot modules.

use alloc::vec::Vec;
use core::sync::atomic::Ordering;

use bootloader_api::BootInfo;
use x86_64::registers::control::{Cr0, Cr0Flags};

use super::elf::Elf;
use super::ramdisk::{self, TestAction};
use super::shutdown::{exit, ExitCode};
use super::{
    acpi, apic, backtrace, console, frame, gdt, heap, idt, paging, percpu, smp, time, virt,
};

/// Ends the run with a failure, naming the boot step that failed.
fn fail(step: &str, why: &str) -> ! {
    log::error!("{step}: {why}");
    exit(ExitCode::Failure, step)
}

/// The BSP's entry from `main.rs`.
pub fn start(boot_info: &'static mut BootInfo) -> ! {
    let entry_tsc = time::rdtsc();
    console::init();
    time::calibrate();
    console::init_logger();
    // The bootloader leaves caching disabled (CD/NW) and NE clear; VMX needs NE.
    // SAFETY: enabling caching and native FPU error reporting changes no mapping.
    unsafe {
        Cr0::update(|f| {
            f.remove(Cr0Flags::CACHE_DISABLE | Cr0Flags::NOT_WRITE_THROUGH);
            f.insert(Cr0Flags::NUMERIC_ERROR | Cr0Flags::WRITE_PROTECT);
        })
    };
    let stack_bottom = boot_info.kernel_stack_bottom;
    let stack_top = stack_bottom + boot_info.kernel_stack_len;
    percpu::init_this_cpu(0, 0, stack_bottom, stack_top);
    gdt::init_bsp();
    idt::load();
    log::info!(
        "hypervisor {} starting (tsc {} MHz)",
        env!("CARGO_PKG_VERSION"),
        time::tsc_hz() / 1_000_000
    );
    // The direct (PVH) entry reports what it normalised; the hand-off is then
    // its first instruction.
    if let Err(why) = super::pvh_entry::report() {
        fail("boot", why);
    }
    let entry_tsc = super::pvh_entry::entry_tsc().unwrap_or(entry_tsc);

    let Some(phys_offset) = boot_info.physical_memory_offset.into_option() else {
        fail("memory", "the bootloader did not map physical memory");
    };
    paging::set_phys_offset(phys_offset);
    let regions: &[_] = &boot_info.memory_regions;
    // `max_page` (XENMEM_maximum_ram_page): one past the highest usable frame.
    let max_ram_page = regions
        .iter()
        .filter(|r| r.kind == bootloader_api::info::MemoryRegionKind::Usable)
        .map(|r| r.end.div_ceil(frame::FRAME_SIZE))
        .max()
        .unwrap_or(0);
    let stats = frame::init(regions).unwrap_or_else(|e| fail("memory", e));
    log::info!(
        "memory: {} MiB usable in {} regions ({} KiB frame bitmap)",
        stats.usable_bytes >> 20,
        stats.usable_regions,
        stats.bitmap_bytes.div_ceil(1024)
    );
    let h = heap::init(stats.usable_bytes).unwrap_or_else(|e| fail("heap", e));
    log::info!(
        "heap: {} KiB at 0x{:x} (phys 0x{:x})",
        h.size >> 10,
        h.virt,
        h.phys
    );

    // The kernel ELF file, for our page tables and for backtraces.
    // SAFETY: the bootloader left the whole kernel file at `kernel_addr` in
    // reserved memory; the physical map covers it and nothing writes it.
    let kernel_file = unsafe {
        core::slice::from_raw_parts(
            paging::phys_to_virt(boot_info.kernel_addr),
            boot_info.kernel_len as usize,
        )
    };
    let Some(kernel) = Elf::new(kernel_file) else {
        fail("paging", "kernel image is not an ELF64 file");
    };
    backtrace::init(kernel, boot_info.kernel_image_offset);

    let rsdp = boot_info.rsdp_addr.into_option();
    let ramdisk_len = boot_info.ramdisk_len;
    let ramdisk_va = boot_info.ramdisk_addr.into_option();
    let mut carry = Vec::new();
    carry.push(paging::CarryOver {
        start: stack_bottom,
        len: stack_top - stack_bottom,
        writable: true,
    });
    // A ramdisk the loader left inside the physical map (the direct entry's) is
    // mapped there by our tables too; only one elsewhere is carried over.
    let phys_map_end = regions
        .iter()
        .map(|r| r.end)
        .max()
        .unwrap_or(0)
        .max(1 << 32);
    let in_phys_map = |va: u64| {
        va.checked_sub(phys_offset)
            .is_some_and(|pa| pa.saturating_add(ramdisk_len) <= phys_map_end)
    };
    if let Some(va) = ramdisk_va.filter(|&va| !in_phys_map(va)) {
        carry.push(paging::CarryOver {
            start: va,
            len: ramdisk_len,
            writable: false,
        });
    }
    let cr3 = paging::init(regions, &kernel, boot_info.kernel_image_offset, &carry)
        .unwrap_or_else(|e| fail("paging", e));
    // `boot_info` is not mapped any more: only the copies above are used below.
    log::info!(
        "paging: own page tables loaded (cr3 0x{cr3:x}), {} free frames",
        frame::free_frames()
    );

    virt::detect();

    let Some(rsdp) = rsdp else {
        fail("acpi", "no RSDP from the bootloader");
    };
    let platform = acpi::parse(rsdp).unwrap_or_else(|e| fail("acpi", e));
    log::info!(
        "acpi: {} cpus, lapic 0x{:x}, ioapic 0x{:x}",
        platform.cpus.len(),
        platform.lapic_addr,
        platform.ioapics.first().copied().unwrap_or(0)
    );

    apic::set_base(platform.lapic_addr);
    apic::disable_pic();
    apic::init_local();
    let bsp_apic = apic::id();
    percpu::CPUS[0].apic_id.store(bsp_apic, Ordering::Relaxed);
    log::info!("cpu0 online (apic id {bsp_apic})");
    percpu::CPUS[0].online.store(true, Ordering::Release);

    if let Err(e) = smp::start_aps(&platform.cpus) {
        log::error!("smp: {e}");
    }

    let hz = apic::calibrate_timer();
    log::info!("apic timer: {hz} Hz calibrated");
    apic::start_periodic();
    x86_64::instructions::interrupts::enable();

    // Wait (at most 100 ms) until the periodic timer has fired twice.
    let deadline = time::rdtsc() + time::tsc_hz() / 10;
    while apic::ticks() < 2 && time::rdtsc() < deadline {
        x86_64::instructions::hlt();
    }
    let ticks = apic::ticks();
    if ticks == 0 {
        fail("apic timer", "no timer interrupt within 100 ms");
    }
    log::info!("apic timer: ticking ({ticks} ticks)");

    let mut test = TestAction::None;
    let mut images = Vec::new();
    match ramdisk_va {
        None => log::info!("ramdisk: 0 entries (no ramdisk)"),
        Some(va) => {
            // SAFETY: the ramdisk's pages were carried over into our tables at the
            // same virtual address, read-only; nothing else aliases them mutably.
            let bytes =
                unsafe { core::slice::from_raw_parts(va as *const u8, ramdisk_len as usize) };
            match ramdisk::parse(bytes) {
                Err(e) => log::error!("ramdisk: unreadable at byte {}: {}", e.offset, e.what),
                Ok(entries) => {
                    log::info!("ramdisk: {} entries", entries.len());
                    for e in &entries {
                        log::info!("ramdisk: {} ({} bytes)", e.name, e.data.len());
                    }
                    if let Some(cmd) = entries.iter().find(|e| e.name == "boot.cmd") {
                        match core::str::from_utf8(cmd.data) {
                            Ok(text) => test = ramdisk::parse_boot_cmd(text).test,
                            Err(_) => log::warn!("boot.cmd: not UTF-8 text, ignored"),
                        }
                    }
                    images = entries;
                }
            }
        }
    }
    if let Err(why) = virt::guests_allowed() {
        log::warn!("guests will not be started: {why}");
    }

    let now = time::rdtsc();
    log::info!(
        "READY: {}/{} cpus online, {} ms since reset ({} ms since the bootloader's hand-off)",
        percpu::online_count(),
        platform.cpus.len(),
        time::micros_since_reset() / 1000,
        (now - entry_tsc) * 1000 / time::tsc_hz()
    );

    if test == TestAction::None && images.iter().any(|e| e.name == "domains.cfg") {
        if let Err(why) = super::domain_build::boot(&images, max_ram_page) {
            log::error!("domains: not started: {why}");
        }
    }
    run_test(test)
}

/// The post-READY test action.
fn run_test(test: TestAction) -> ! {
    match test {
        TestAction::None => {}
        TestAction::FaultPageFault => {
            log::info!("test: touching an unmapped address");
            // An address in the lower half that our page tables never map.
            let p = 0x0000_5EAD_0000_0000u64 as *const u64;
            // SAFETY: deliberately not safe: this read must page-fault.
            let v = unsafe { p.read_volatile() };
            log::error!("test: read 0x{v:x} from an unmapped address without a fault");
        }
        TestAction::FaultUd => {
            log::info!("test: executing ud2");
            // SAFETY: deliberately raises #UD, which the IDT reports and ends the run.
            unsafe { core::arch::asm!("ud2") };
        }
        TestAction::Panic => {
            log::info!("test: explicit panic");
            panic!("test panic requested by boot.cmd");
        }
        TestAction::VmxSelftest => {
            let verdict = super::hvm::vmx::selftest::run();
            x86_64::instructions::interrupts::disable();
            apic::stop_timer();
            match verdict {
                Ok((_, 0)) => exit(ExitCode::Success, ""),
                Ok(_) => exit(ExitCode::Failure, "vmx-selftest failed"),
                Err(why) => {
                    log::error!("vmx-selftest: {why}");
                    exit(ExitCode::Failure, "vmx-selftest could not run")
                }
            }
        }
        TestAction::SvmSelftest => {
            let ok = super::hvm::selftest::run_selftest();
            x86_64::instructions::interrupts::disable();
            apic::stop_timer();
            if ok {
                exit(ExitCode::Success, "")
            }
            exit(ExitCode::Failure, "svm-selftest failed")
        }
    }
    x86_64::instructions::interrupts::disable();
    apic::stop_timer();
    if test == TestAction::None {
        exit(ExitCode::Success, "")
    }
    exit(ExitCode::Failure, "test action returned")
}

/// The panic path (called from `main.rs`'s `#[panic_handler]`): prints the cause
/// and a backtrace, ends the run with failure.
pub fn panic(info: &core::panic::PanicInfo) -> ! {
    x86_64::instructions::interrupts::disable();
    let cpu = percpu::current();
    if cpu.in_fatal.swap(true, Ordering::SeqCst) {
        exit(ExitCode::Failure, "panic while handling a fatal error");
    }
    console::force_unlock();
    match info.location() {
        Some(l) => log::error!("PANIC: {} at {}:{}", info.message(), l.file(), l.line()),
        None => log::error!("PANIC: {} at <unknown>:0", info.message()),
    }
    backtrace::print(None, backtrace::current_rbp());
    exit(ExitCode::Failure, "panic")
}
