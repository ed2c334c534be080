//! The hypervisor's own page tables, replacing the bootloader's:
//!
//! - all physical memory (at least the low 4 GiB, which holds the local and I/O
//!   APICs) at the bootloader's physical-memory offset, in 2 MiB pages, no-execute;
//!   2 MiB pages that hold no RAM from the memory map are uncached (MMIO);
//! - the kernel's `PT_LOAD` segments at their (relocated) addresses, on the frames
//!   the bootloader loaded them into, writable/executable as the ELF says;
//! - the boot stack and the ramdisk, carried over page by page;
//! - later, identity mappings of single low pages (the AP start-up trampoline).
//!
//! Mirrors the role of Xen's `xen/arch/x86/mm.c` boot-time mapping setup.

use core::sync::atomic::{AtomicU64, Ordering};

use bootloader_api::info::{MemoryRegion, MemoryRegionKind};
use x86_64::registers::control::{Cr3, Cr3Flags};
use x86_64::structures::paging::mapper::{MapToError, Translate};
use x86_64::structures::paging::{
    Mapper, OffsetPageTable, Page, PageTable, PageTableFlags as F, PhysFrame, Size4KiB,
};
use x86_64::{PhysAddr, VirtAddr};

use super::elf::Elf;
use super::frame;

static PHYS_OFFSET: AtomicU64 = AtomicU64::new(0);
/// Physical address of our PML4 (0 until [`init`] switched to it).
static PML4: AtomicU64 = AtomicU64::new(0);

/// Records where the bootloader mapped all physical memory.
pub fn set_phys_offset(offset: u64) {
    PHYS_OFFSET.store(offset, Ordering::Relaxed);
}

/// The physical-memory mapping's offset.
pub fn phys_offset() -> u64 {
    PHYS_OFFSET.load(Ordering::Relaxed)
}

/// The virtual address through which physical address `pa` is reached.
pub fn phys_to_virt(pa: u64) -> *mut u8 {
    (phys_offset() + pa) as *mut u8
}

/// Our PML4's physical address (for APs and, later, VMCS/VMCB host CR3).
pub fn kernel_cr3() -> u64 {
    PML4.load(Ordering::Relaxed)
}

/// A virtual range to carry over from the bootloader's tables.
pub struct CarryOver {
    pub start: u64,
    pub len: u64,
    pub writable: bool,
}

fn mapper_for(pml4_pa: u64) -> OffsetPageTable<'static> {
    // SAFETY: `pml4_pa` is a page-table root reached through the physical map; the
    // caller holds the only mapper for it at this time (boot is single-threaded
    // while page tables change, and `identity_map` runs on the BSP only).
    unsafe {
        OffsetPageTable::new(
            &mut *(phys_to_virt(pml4_pa) as *mut PageTable),
            VirtAddr::new(phys_offset()),
        )
    }
}

fn map_err<S: x86_64::structures::paging::PageSize>(e: MapToError<S>) -> &'static str {
    match e {
        MapToError::FrameAllocationFailed => "out of frames for page tables",
        MapToError::ParentEntryHugePage => "mapping collides with a huge page",
        MapToError::PageAlreadyMapped(_) => "page already mapped",
    }
}

/// Whether a memory-map region is RAM (mapped write-back) rather than a device
/// hole (mapped uncached): usable memory, the bootloader's, and the firmware's RAM
/// (E820 ACPI data/NVS; UEFI loader, boot/runtime services, ACPI, conventional).
fn is_ram(kind: MemoryRegionKind) -> bool {
    match kind {
        MemoryRegionKind::Usable | MemoryRegionKind::Bootloader => true,
        MemoryRegionKind::UnknownBios(t) => matches!(t, 1 | 3 | 4),
        MemoryRegionKind::UnknownUefi(t) => matches!(t, 1..=7 | 9 | 10),
        _ => false,
    }
}

/// The page directory (level 2) that covers `va` in the tables rooted at `root`,
/// creating the level-3/level-2 tables on the way as needed.
fn next_table(root: u64, va: VirtAddr) -> Result<&'static mut PageTable, &'static str> {
    let mut table_pa = root;
    for index in [va.p4_index(), va.p3_index()] {
        // SAFETY: `table_pa` is a page table of the new (not yet live) hierarchy,
        // reached through the physical map; nothing else references it now.
        let table = unsafe { &mut *(phys_to_virt(table_pa) as *mut PageTable) };
        let entry = &mut table[index];
        if entry.is_unused() {
            let frame = frame::alloc_contiguous(1, frame::FRAME_SIZE, 1 << 32)
                .ok_or("out of frames for page tables")?;
            frame::pin_host_table(frame);
            // SAFETY: a fresh frame of ours.
            unsafe { core::ptr::write_bytes(phys_to_virt(frame), 0, 4096) };
            entry.set_addr(PhysAddr::new(frame), F::PRESENT | F::WRITABLE);
        } else if entry.flags().contains(F::HUGE_PAGE) {
            return Err("mapping collides with a huge page");
        }
        table_pa = entry.addr().as_u64();
    }
    // SAFETY: as above, for the level-2 table just found or made.
    Ok(unsafe { &mut *(phys_to_virt(table_pa) as *mut PageTable) })
}

/// Builds the hypervisor's page tables and switches CR3 to them. `kernel` is the
/// kernel's ELF file, `image_offset` its load bias.
pub fn init(
    regions: &[MemoryRegion],
    kernel: &Elf,
    image_offset: u64,
    carry: &[CarryOver],
) -> Result<u64, &'static str> {
    let offset = phys_offset();
    if !offset.is_multiple_of(2 << 20) {
        return Err("physical-memory offset is not 2 MiB aligned");
    }
    let (old_root, _) = Cr3::read();
    let old = mapper_for(old_root.start_address().as_u64());
    // Page tables below 4 GiB: APs load CR3 in 32-bit mode.
    let mut alloc = frame::Allocator { limit: 1 << 32 };
    let root = frame::alloc_contiguous(1, frame::FRAME_SIZE, 1 << 32).ok_or("no frame for PML4")?;
    frame::pin_host_table(root);
    // SAFETY: a fresh frame of ours, reached through the physical map.
    unsafe { core::ptr::write_bytes(phys_to_virt(root), 0, 4096) };
    let table_flags = F::PRESENT | F::WRITABLE;

    // 1. Physical memory: everything up to the end of the last RAM region, and at
    // least 4 GiB (the APICs and other MMIO live just below 4 GiB).
    let top = regions
        .iter()
        .filter(|r| is_ram(r.kind))
        .map(|r| r.end)
        .max()
        .unwrap_or(0)
        .max(1 << 32);
    let any_ram = |start: u64, end: u64| {
        regions
            .iter()
            .any(|r| r.start < end && start < r.end && is_ram(r.kind))
    };
    // Written straight into the tables (not through `map_to`): a few thousand
    // entries, and page-by-page mapping costs ~150 ms under QEMU TCG.
    let mut pd: Option<&mut PageTable> = None;
    let mut pa = 0u64;
    while pa < top {
        let va = VirtAddr::new(offset + pa);
        if pd.is_none() || u16::from(va.p2_index()) == 0 {
            pd = Some(next_table(root, va)?);
        }
        let mut flags = F::PRESENT | F::WRITABLE | F::NO_EXECUTE | F::HUGE_PAGE | F::GLOBAL;
        if pa >= 0x10_0000 && !any_ram(pa, pa + (2 << 20)) {
            flags |= F::NO_CACHE | F::WRITE_THROUGH;
        }
        if let Some(pd) = pd.as_deref_mut() {
            pd[va.p2_index()].set_addr(PhysAddr::new(pa), flags);
        }
        pa += 2 << 20;
    }

    // 2. The kernel image, segment by segment, on the bootloader's frames.
    let mut new = mapper_for(root);
    let mut map_carry = |start: u64, len: u64, flags: F| -> Result<(), &'static str> {
        let first = start & !0xFFF;
        let end = (start + len).next_multiple_of(4096);
        let mut va = first;
        while va < end {
            if let Some(pa) = old.translate_addr(VirtAddr::new(va)) {
                let page = Page::<Size4KiB>::containing_address(VirtAddr::new(va));
                let frame = PhysFrame::containing_address(pa);
                // SAFETY: the same frame the bootloader mapped at this address.
                match unsafe {
                    new.map_to_with_table_flags(page, frame, flags, table_flags, &mut alloc)
                } {
                    Ok(f) => f.ignore(),
                    // Two segments sharing a page: keep the first, widen nothing.
                    Err(MapToError::PageAlreadyMapped(_)) => {}
                    Err(e) => return Err(map_err(e)),
                }
            }
            va += 4096;
        }
        Ok(())
    };
    let mut segments = 0;
    for seg in kernel.load_segments() {
        let mut flags = F::PRESENT | F::GLOBAL;
        if seg.writable {
            flags |= F::WRITABLE;
        }
        if !seg.executable {
            flags |= F::NO_EXECUTE;
        }
        map_carry(seg.vaddr + image_offset, seg.memsz, flags)?;
        segments += 1;
    }
    if segments == 0 {
        return Err("kernel ELF has no PT_LOAD segments");
    }
    // 3. Stack, ramdisk, ...
    for c in carry {
        let mut flags = F::PRESENT | F::NO_EXECUTE | F::GLOBAL;
        if c.writable {
            flags |= F::WRITABLE;
        }
        map_carry(c.start, c.len, flags)?;
    }

    // SAFETY: the new tables map everything the kernel touches from here on: its
    // image, its stack, the physical map (frame bitmap, heap, ACPI tables).
    unsafe {
        Cr3::write(
            PhysFrame::containing_address(PhysAddr::new(root)),
            Cr3Flags::empty(),
        )
    };
    PML4.store(root, Ordering::Relaxed);
    Ok(root)
}

/// Identity-maps the 4 KiB page at physical `pa` (< 4 GiB), executable and
/// writable: the AP trampoline runs there while it turns paging on.
pub fn identity_map(pa: u64) -> Result<(), &'static str> {
    let root = kernel_cr3();
    if root == 0 {
        return Err("own page tables not loaded yet");
    }
    let mut table = mapper_for(root);
    let mut alloc = frame::Allocator { limit: 1 << 32 };
    let page = Page::<Size4KiB>::containing_address(VirtAddr::new(pa));
    let frame = PhysFrame::containing_address(PhysAddr::new(pa));
    // SAFETY: maps a low page we own at its own address; the low half holds nothing else.
    match unsafe {
        table.map_to_with_table_flags(
            page,
            frame,
            F::PRESENT | F::WRITABLE,
            F::PRESENT | F::WRITABLE,
            &mut alloc,
        )
    } {
        Ok(f) => {
            f.flush();
            Ok(())
        }
        Err(MapToError::PageAlreadyMapped(_)) => Ok(()),
        Err(e) => Err(map_err(e)),
    }
}
