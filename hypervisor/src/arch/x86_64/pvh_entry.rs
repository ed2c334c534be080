//! The direct-boot entry: the hypervisor ELF as a PVH kernel, the way QEMU
//! (`-kernel hypervisor -initrd ramdisk.cpio`) and Xen's own PVH boot load one.
//!
//! The loader copies the `PT_LOAD` segments to their physical addresses (see
//! `hypervisor/link.ld`: the image is linked at [`KERNEL_VMA`] + 2 MiB and loaded
//! at 2 MiB) and enters `pvh_start32`, named by the `XEN_ELFNOTE_PHYS32_ENTRY`
//! note, in 32-bit protected mode with paging off and `EBX` = the physical address
//! of `hvm_start_info`. The 32-bit code builds page tables that reproduce what
//! `bootloader` 0.11 gives the kernel (the image at its virtual address, all of
//! the first 4 GiB at [`PHYS_OFFSET`], a 256 KiB stack), enters long mode and
//! calls [`pvh_main`], which turns the start info (memory map, RSDP, first module
//! = the ramdisk, command line) into the same `BootInfo` and calls
//! [`boot::start`]: the kernel proper does not know which way it came.
//!
//! Mirrors Xen's own `xen/arch/x86/boot/head.S` PVH entry and `pvh-boot.c`.

use core::mem::MaybeUninit;
use core::sync::atomic::{AtomicU64, Ordering};

use bootloader_api::info::{MemoryRegion, MemoryRegionKind, Optional};
use bootloader_api::BootInfo;
use spin::Once;
use xen_public_abi::elfnote::XEN_ELFNOTE_PHYS32_ENTRY;
use xen_public_abi::hvm::start_info::{
    hvm_memmap_table_entry, hvm_modlist_entry, hvm_start_info, XEN_HVM_START_MAGIC_VALUE,
};
use zerocopy::FromBytes;

use super::boot_memmap::{self, Kind, Region};
use super::{boot, ramdisk};

/// Where `link.ld` links the image: its physical address plus this.
pub const KERNEL_VMA: u64 = 0xFFFF_FFFF_8000_0000;
/// Where the boot page tables map physical memory (PML4 slot 256), like the
/// bootloader's `physical_memory_offset`.
pub const PHYS_OFFSET: u64 = 0xFFFF_8000_0000_0000;
/// The boot page tables map this much physical memory; the kernel's own tables
/// (`paging.rs`) then map all of RAM.
const BOOT_MAP_LIMIT: u64 = 4 << 30;
/// The ramdisk file that carries the hypervisor's own ELF (for symbolised
/// backtraces: a PVH loader loads the segments, not the symbol table).
pub const KERNEL_ELF_ENTRY: &str = "hypervisor.elf";
/// Most memory-map entries read (QEMU's PVH option ROM passes at most 128).
const MAX_E820: usize = 128;

core::arch::global_asm!(
    r#"
    .section .note.Xen, "a", @note
    .balign 4
    .long 4
    .long 8
    .long {note_type}
    .asciz "Xen"
    .balign 4
    .quad pvh_start32 + {adj}
    .balign 4

    .section .text.pvh_entry, "ax"
    .code32
    .global pvh_start32
pvh_start32:
    cli
    cld
    mov esi, ebx
    rdtsc
    mov ebx, eax
    mov ebp, edx

    mov edi, offset __bss_start + {adj}
    mov ecx, offset __bss_end + {adj}
    sub ecx, edi
    xor eax, eax
    rep stosb
    mov dword ptr [PVH_ENTRY_TSC + {adj}], ebx
    mov dword ptr [PVH_ENTRY_TSC + {adj} + 4], ebp

    mov esp, offset pvh_stack_top + {adj}

    mov edi, offset pvh_pd + {adj}
    xor ecx, ecx
2:
    mov eax, ecx
    shl eax, 21
    or eax, 0x83
    mov dword ptr [edi + ecx * 8], eax
    inc ecx
    cmp ecx, 2048
    jb 2b

    mov edi, offset pvh_pdpt_lo + {adj}
    mov eax, offset pvh_pd + {adj} + 3
    mov dword ptr [edi], eax
    add eax, 4096
    mov dword ptr [edi + 8], eax
    add eax, 4096
    mov dword ptr [edi + 16], eax
    add eax, 4096
    mov dword ptr [edi + 24], eax

    mov edi, offset pvh_pdpt_hi + {adj}
    mov eax, offset pvh_pd + {adj} + 3
    mov dword ptr [edi + 510 * 8], eax

    mov edi, offset pvh_pml4 + {adj}
    mov eax, offset pvh_pdpt_lo + {adj} + 3
    mov dword ptr [edi], eax
    mov dword ptr [edi + 256 * 8], eax
    mov eax, offset pvh_pdpt_hi + {adj} + 3
    mov dword ptr [edi + 511 * 8], eax
    mov cr3, edi

    mov eax, cr4
    or eax, 0x20
    mov cr4, eax
    mov ecx, 0xC0000080
    rdmsr
    or eax, 0x900
    wrmsr
    mov eax, cr0
    or eax, 0x80000001
    mov cr0, eax

    lgdt [pvh_gdt_ptr + {adj}]
    mov eax, offset pvh_start64 + {adj}
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
    movabs rax, offset pvh_high
    jmp rax
pvh_high:
    lea rsp, [rip + pvh_stack_top]
    mov edi, esi
    xor ebp, ebp
    call pvh_main
3:
    hlt
    jmp 3b

    .section .rodata.pvh_entry, "a"
    .balign 16
pvh_gdt_ptr:
    .word pvh_gdt_end - pvh_gdt - 1
    .quad pvh_gdt + {adj}
    .balign 16
pvh_gdt:
    .quad 0
    .quad 0x00af9a000000ffff
    .quad 0x00cf92000000ffff
pvh_gdt_end:

    .section .bss.pvh_entry, "aw", @nobits
    .balign 4096
pvh_pml4:
    .skip 4096
pvh_pdpt_lo:
    .skip 4096
pvh_pdpt_hi:
    .skip 4096
pvh_pd:
    .skip 4 * 4096
    .global pvh_stack
pvh_stack:
    .skip {stack}
    .global pvh_stack_top
pvh_stack_top:
"#,
    note_type = const XEN_ELFNOTE_PHYS32_ENTRY,
    adj = const KERNEL_VMA.wrapping_neg(),
    stack = const STACK_SIZE,
);

/// The boot stack's size (as the bootloader path's `kernel_stack_size`).
const STACK_SIZE: usize = 256 * 1024;

/// The TSC at `pvh_start32`'s first instructions (written by the 32-bit code).
#[no_mangle]
static PVH_ENTRY_TSC: AtomicU64 = AtomicU64::new(0);

extern "C" {
    static pvh_stack: u8;
    static pvh_stack_top: u8;
    static __kernel_start: u8;
    static __kernel_end: u8;
}

/// What the entry found, logged by [`report`] once the console logs.
struct Summary {
    result: Result<(), &'static str>,
    regions: usize,
    ramdisk: Option<(u64, u64)>,
    symbols: bool,
    cmdline: [u8; 128],
    cmdline_len: usize,
}

static SUMMARY: Once<Summary> = Once::new();

/// The physical address of a kernel-image symbol.
fn phys_of(sym: *const u8) -> u64 {
    (sym as u64).wrapping_sub(KERNEL_VMA)
}

/// `len` bytes of physical memory at `pa` through the boot page tables' physical
/// map (which covers the first 4 GiB).
fn phys_bytes(pa: u64, len: u64) -> Result<&'static [u8], &'static str> {
    match pa.checked_add(len) {
        Some(end) if end <= BOOT_MAP_LIMIT => {}
        _ => return Err("start info points above 4 GiB"),
    }
    // SAFETY: the boot page tables map physical 0..4 GiB at PHYS_OFFSET (checked
    // above); the loader's data there is only read.
    Ok(unsafe { core::slice::from_raw_parts((PHYS_OFFSET + pa) as *const u8, len as usize) })
}

fn read<T: FromBytes>(pa: u64) -> Result<T, &'static str> {
    let bytes = phys_bytes(pa, core::mem::size_of::<T>() as u64)?;
    T::read_from_bytes(bytes).map_err(|_| "start info structure unreadable")
}

/// The 64-bit entry from `pvh_start32`: normalises the start info into a
/// `BootInfo` and starts the kernel.
#[no_mangle]
extern "C" fn pvh_main(start_info_pa: u64) -> ! {
    static mut REGIONS: [MemoryRegion; 2 * MAX_E820] = [MemoryRegion::empty(); 2 * MAX_E820];
    static mut BOOT_INFO: MaybeUninit<BootInfo> = MaybeUninit::uninit();
    let regions_ptr: *mut [MemoryRegion; 2 * MAX_E820] = &raw mut REGIONS;
    let slot_ptr: *mut MaybeUninit<BootInfo> = &raw mut BOOT_INFO;
    // SAFETY: runs once, on the BSP, before anything else exists: these are the
    // only references to the two statics, handed to the kernel for good.
    let (regions, slot) = unsafe { (&mut *regions_ptr, &mut *slot_ptr) };
    let mut summary = Summary {
        result: Ok(()),
        regions: 0,
        ramdisk: None,
        symbols: false,
        cmdline: [0; 128],
        cmdline_len: 0,
    };
    let info = match normalise(start_info_pa, &mut regions[..], &mut summary) {
        Ok((n, mut info)) => {
            info.memory_regions = (&mut regions[..n]).into();
            info
        }
        Err(why) => {
            // `report` ends the boot with this reason once the console works.
            summary.result = Err(why);
            BootInfo::new((&mut regions[..0]).into())
        }
    };
    SUMMARY.call_once(|| summary);
    boot::start(slot.write(info))
}

/// Reads the start info at `pa` into `out` (the memory map) and a `BootInfo`.
/// The regions go into `out`; the `BootInfo` returned gets them from the caller.
fn normalise(
    pa: u64,
    out: &mut [MemoryRegion],
    summary: &mut Summary,
) -> Result<(usize, BootInfo), &'static str> {
    let si: hvm_start_info = read(pa)?;
    if si.magic != XEN_HVM_START_MAGIC_VALUE {
        return Err("EBX does not point at an hvm_start_info (bad magic)");
    }
    if si.version < 1 || si.memmap_paddr == 0 || si.memmap_entries == 0 {
        return Err("the start info has no memory map (version 0): the loader must pass one");
    }
    let entries = (si.memmap_entries as usize).min(MAX_E820);
    let mut e820 = [(0u64, 0u64, 0u32); MAX_E820];
    for (i, slot) in e820.iter_mut().enumerate().take(entries) {
        let e: hvm_memmap_table_entry = read(si.memmap_paddr + 24 * i as u64)?;
        *slot = (e.addr, e.size, e.r#type);
    }

    let kernel_start = phys_of(&raw const __kernel_start);
    let kernel_end = phys_of(&raw const __kernel_end);
    let mut ramdisk = None;
    if si.nr_modules > 0 {
        let m: hvm_modlist_entry = read(si.modlist_paddr)?;
        phys_bytes(m.paddr, m.size).map_err(|_| "the ramdisk lies above 4 GiB")?;
        ramdisk = Some((m.paddr, m.size));
    }
    let mut cmdline_end = si.cmdline_paddr;
    if si.cmdline_paddr != 0 {
        let bytes = phys_bytes(si.cmdline_paddr, 1)?;
        let max = (BOOT_MAP_LIMIT - si.cmdline_paddr).min(4096);
        let all = phys_bytes(si.cmdline_paddr, max).unwrap_or(bytes);
        let len = all.iter().position(|&b| b == 0).unwrap_or(all.len());
        cmdline_end = si.cmdline_paddr + len as u64 + 1;
        let shown = len.min(summary.cmdline.len());
        summary.cmdline[..shown].copy_from_slice(&all[..shown]);
        summary.cmdline_len = shown;
    }
    let modules_len = 32 * u64::from(si.nr_modules);
    let loaded = [
        (kernel_start, kernel_end),
        ramdisk.map_or((0, 0), |(p, s)| (p, p + s)),
        (pa, pa + core::mem::size_of::<hvm_start_info>() as u64),
        (si.modlist_paddr, si.modlist_paddr + modules_len),
        (si.memmap_paddr, si.memmap_paddr + 24 * entries as u64),
        (si.cmdline_paddr, cmdline_end),
    ];
    let mut normal = [Region {
        start: 0,
        end: 0,
        kind: Kind::Loader,
    }; 2 * MAX_E820];
    let n = boot_memmap::normalise(e820[..entries].iter().copied(), &loaded, &mut normal)?;
    for (slot, r) in out.iter_mut().zip(&normal[..n]) {
        *slot = MemoryRegion {
            start: r.start,
            end: r.end,
            kind: match r.kind {
                Kind::Usable => MemoryRegionKind::Usable,
                Kind::Loader => MemoryRegionKind::Bootloader,
                Kind::Firmware(t) => MemoryRegionKind::UnknownBios(t),
            },
        };
    }
    summary.regions = n;
    summary.ramdisk = ramdisk;

    let no_regions: &'static mut [MemoryRegion] = &mut [];
    let mut info = BootInfo::new(no_regions.into());
    info.physical_memory_offset = Optional::Some(PHYS_OFFSET);
    if si.rsdp_paddr != 0 {
        info.rsdp_addr = Optional::Some(si.rsdp_paddr);
    }
    if let Some((p, s)) = ramdisk {
        info.ramdisk_addr = Optional::Some(PHYS_OFFSET + p);
        info.ramdisk_len = s;
    }
    // The kernel's program headers are loaded (link.ld puts them in the first
    // segment); the ramdisk may carry the whole ELF for the symbol table.
    let headers = phys_bytes(kernel_start, 64)?;
    let u64_at = |o: usize| u64::from_le_bytes(headers[o..o + 8].try_into().unwrap_or([0; 8]));
    let u16_at = |o: usize| u16::from_le_bytes([headers[o], headers[o + 1]]);
    let headers_len = u64_at(0x20) + u64::from(u16_at(0x36)) * u64::from(u16_at(0x38));
    let in_memory = phys_bytes(kernel_start, headers_len)?;
    info.kernel_addr = kernel_start;
    info.kernel_len = headers_len;
    if let Some((p, s)) = ramdisk {
        let archive = phys_bytes(p, s)?;
        if let Some(elf) = ramdisk::find(archive, KERNEL_ELF_ENTRY) {
            // Only this very build: its headers must be the ones loaded.
            if elf.get(..in_memory.len()) == Some(in_memory) {
                info.kernel_addr = elf.as_ptr() as u64 - PHYS_OFFSET;
                info.kernel_len = elf.len() as u64;
                summary.symbols = true;
            }
        }
    }
    let (bottom, top) = (&raw const pvh_stack as u64, &raw const pvh_stack_top as u64);
    info.kernel_stack_bottom = bottom;
    info.kernel_stack_len = top - bottom;
    Ok((n, info))
}

/// Called by `boot::start` once the logger works: on a direct boot, logs what
/// the entry found, or returns why the start info was unusable. Does nothing on
/// the bootloader path.
pub fn report() -> Result<(), &'static str> {
    let Some(s) = SUMMARY.get() else {
        return Ok(());
    };
    s.result?;
    let cmdline = core::str::from_utf8(&s.cmdline[..s.cmdline_len]).unwrap_or("<not UTF-8>");
    let (ramdisk_pa, ramdisk_len) = s.ramdisk.unwrap_or((0, 0));
    log::info!(
        "boot: PVH direct entry: {} memory regions, ramdisk {} bytes at 0x{:x}, symbols {}, command line \"{}\"",
        s.regions,
        ramdisk_len,
        ramdisk_pa,
        if s.symbols {
            "from the ramdisk's hypervisor.elf"
        } else {
            "not available"
        },
        cmdline
    );
    Ok(())
}

/// The TSC at the PVH entry's first instruction (`None` on the bootloader path).
pub fn entry_tsc() -> Option<u64> {
    SUMMARY.get()?;
    Some(PVH_ENTRY_TSC.load(Ordering::Relaxed))
}
