//! The physical frame allocator: a bitmap over the bootloader's memory map, one bit
//! per 4 KiB frame (1 = in use). Only regions the map calls `Usable` are ever handed
//! out; everything else (firmware, ACPI, the bootloader's own page tables, the
//! kernel and ramdisk images) stays reserved. Frame 0 is never handed out.
//!
//! Plays the part of Xen's boot allocator + `page_alloc.c` at a much smaller scale.

use bootloader_api::info::{MemoryRegion, MemoryRegionKind};
use spin::Mutex;
use x86_64::structures::paging::{FrameAllocator, PhysFrame, Size4KiB};
use x86_64::PhysAddr;

use super::paging;

/// Frame size.
pub const FRAME_SIZE: u64 = 4096;

/// The allocator state.
struct Bitmap {
    /// One bit per frame from physical 0 up to `frames * 4K`.
    bits: &'static mut [u64],
    frames: usize,
    free: usize,
    /// Where single-frame searches start.
    hint: usize,
}

impl Bitmap {
    fn is_used(&self, f: usize) -> bool {
        self.bits[f / 64] & (1 << (f % 64)) != 0
    }
    fn set_used(&mut self, f: usize) {
        if !self.is_used(f) {
            self.free -= 1;
        }
        self.bits[f / 64] |= 1 << (f % 64);
    }
    /// Marks `f` free; false when it already was (a double free).
    fn set_free(&mut self, f: usize) -> bool {
        let was_used = self.is_used(f);
        if was_used {
            self.free += 1;
        }
        self.bits[f / 64] &= !(1 << (f % 64));
        was_used
    }

    /// Finds `count` free frames starting at a multiple of `align` frames, all below
    /// frame `limit`, and marks them used.
    fn alloc_run(&mut self, count: usize, align: usize, limit: usize) -> Option<usize> {
        let limit = limit.min(self.frames);
        let align = align.max(1);
        let mut start = if count == 1 && align == 1 && self.hint < limit {
            self.hint
        } else {
            align
        };
        let mut wrapped = false;
        loop {
            if start + count > limit {
                if wrapped || start == align {
                    return None;
                }
                wrapped = true;
                start = align;
                continue;
            }
            // Skip fully used words quickly.
            if self.bits[start / 64] == u64::MAX && align == 1 {
                start = (start / 64 + 1) * 64;
                continue;
            }
            match (start..start + count).find(|&f| self.is_used(f)) {
                None => {
                    for f in start..start + count {
                        self.set_used(f);
                    }
                    if count == 1 && align == 1 {
                        self.hint = start + 1;
                    }
                    return Some(start);
                }
                Some(used) => start = (used + 1).div_ceil(align) * align,
            }
        }
    }
}

static FRAMES: Mutex<Option<Bitmap>> = Mutex::new(None);
/// Frames of usable RAM [`init`] found (for `XEN_SYSCTL_physinfo`'s total_pages).
static USABLE_FRAMES: core::sync::atomic::AtomicU64 = core::sync::atomic::AtomicU64::new(0);

/// Frames of usable RAM the allocator manages.
pub fn usable_frames() -> u64 {
    USABLE_FRAMES.load(core::sync::atomic::Ordering::Relaxed)
}

/// What [`init`] found.
pub struct MemoryStats {
    pub usable_bytes: u64,
    pub usable_regions: usize,
    pub bitmap_bytes: u64,
}

/// Builds the bitmap from the memory map. Must run before any allocation; the
/// physical-memory offset must be known ([`paging::set_phys_offset`]).
pub fn init(regions: &[MemoryRegion]) -> Result<MemoryStats, &'static str> {
    let usable = || {
        regions
            .iter()
            .filter(|r| r.kind == MemoryRegionKind::Usable)
    };
    let top = usable().map(|r| r.end).max().ok_or("no usable memory")?;
    let frames = top.div_ceil(FRAME_SIZE) as usize;
    let words = frames.div_ceil(64);
    let bitmap_bytes = (words * 8) as u64;
    let bitmap_frames = bitmap_bytes.div_ceil(FRAME_SIZE);
    // The bitmap lives in the first usable region above 1 MiB that is big enough.
    let home = usable()
        .filter(|r| r.start >= 0x10_0000)
        .map(|r| (r.start.next_multiple_of(FRAME_SIZE), r.end))
        .find(|(s, e)| e.saturating_sub(*s) >= bitmap_frames * FRAME_SIZE)
        .ok_or("no room for the frame bitmap")?;
    // SAFETY: `home` is a usable RAM region (nobody else owns it yet) reached through
    // the bootloader's physical-memory mapping; `words` u64s fit in it (checked above).
    let bits: &'static mut [u64] =
        unsafe { core::slice::from_raw_parts_mut(paging::phys_to_virt(home.0).cast(), words) };
    bits.fill(u64::MAX);
    let mut bm = Bitmap {
        bits,
        frames,
        free: 0,
        hint: 0,
    };
    let mut stats = MemoryStats {
        usable_bytes: 0,
        usable_regions: 0,
        bitmap_bytes,
    };
    for r in usable() {
        stats.usable_bytes += r.end - r.start;
        stats.usable_regions += 1;
        let first = r.start.div_ceil(FRAME_SIZE) as usize;
        let last = (r.end / FRAME_SIZE) as usize;
        for f in first..last {
            let _ = bm.set_free(f);
        }
    }
    let home_first = (home.0 / FRAME_SIZE) as usize;
    for f in home_first..home_first + bitmap_frames as usize {
        bm.set_used(f);
    }
    if bm.frames > 0 {
        bm.set_used(0);
    }
    bm.hint = 0x100; // start single-frame searches at 1 MiB; low memory is scarce
    *FRAMES.lock() = Some(bm);
    USABLE_FRAMES.store(
        stats.usable_bytes / FRAME_SIZE,
        core::sync::atomic::Ordering::Relaxed,
    );
    Ok(stats)
}

/// Allocates `count` contiguous frames aligned to `align` bytes, below `limit`
/// (physical). Returns the physical address of the first. The frames are not zeroed.
pub fn alloc_contiguous(count: usize, align: u64, limit: u64) -> Option<u64> {
    let mut guard = FRAMES.lock();
    let bm = guard.as_mut()?;
    let f = bm.alloc_run(
        count,
        (align / FRAME_SIZE) as usize,
        (limit / FRAME_SIZE) as usize,
    )?;
    Some(f as u64 * FRAME_SIZE)
}

/// Allocates one zeroed frame anywhere.
pub fn alloc_zeroed() -> Option<u64> {
    let pa = alloc_contiguous(1, FRAME_SIZE, u64::MAX)?;
    // SAFETY: the frame was free RAM and is now ours; the physical map covers it.
    unsafe { core::ptr::write_bytes(paging::phys_to_virt(pa), 0, FRAME_SIZE as usize) };
    Some(pa)
}

/// Returns frames to the allocator. Freeing one of the hypervisor's own page
/// tables is a hypervisor bug that would let the frame be reused under live
/// mappings: it stops the machine instead. A double free is logged with a
/// backtrace and ignored.
pub fn free_contiguous(pa: u64, count: usize) {
    let first = (pa / FRAME_SIZE) as usize;
    if let Some(f) = (first..first + count).find(|&f| is_host_table(f as u64 * FRAME_SIZE)) {
        panic!(
            "freeing the hypervisor's page-table frame {:#x}",
            f as u64 * FRAME_SIZE
        );
    }
    let mut double = None;
    {
        let mut guard = FRAMES.lock();
        if let Some(bm) = guard.as_mut() {
            for f in first..(first + count).min(bm.frames) {
                if !bm.set_free(f) && double.is_none() {
                    double = Some(f as u64 * FRAME_SIZE);
                }
            }
        }
    }
    if let Some(d) = double {
        log::error!("frame: {d:#x} freed twice (free of {pa:#x}, {count} frames)");
        super::backtrace::print(None, super::backtrace::current_rbp());
    }
}

/// Frames holding the hypervisor's own page tables (recorded as they are made).
static HOST_TABLES: Mutex<([u64; 64], usize)> = Mutex::new(([0; 64], 0));

/// Records `pa` as one of the hypervisor's page-table frames: never to be freed.
pub fn pin_host_table(pa: u64) {
    let mut t = HOST_TABLES.lock();
    let n = t.1;
    if n < t.0.len() {
        t.0[n] = pa;
        t.1 = n + 1;
    } else {
        log::warn!(
            "frame: more than {} host page-table frames, {pa:#x} not recorded",
            t.0.len()
        );
    }
}

/// Whether `pa` is one of the recorded host page-table frames.
pub fn is_host_table(pa: u64) -> bool {
    let t = HOST_TABLES.lock();
    t.0[..t.1].contains(&(pa & !(FRAME_SIZE - 1)))
}

/// Free frames left.
pub fn free_frames() -> usize {
    FRAMES.lock().as_ref().map_or(0, |b| b.free)
}

/// Adapter for the `x86_64` crate's mapper building the hypervisor's own page
/// tables: hands out frames below `limit` and pins them ([`pin_host_table`]).
pub struct Allocator {
    pub limit: u64,
}

// SAFETY: every frame returned is unused RAM, now owned by the caller.
unsafe impl FrameAllocator<Size4KiB> for Allocator {
    fn allocate_frame(&mut self) -> Option<PhysFrame<Size4KiB>> {
        let pa = alloc_contiguous(1, FRAME_SIZE, self.limit)?;
        pin_host_table(pa);
        Some(PhysFrame::containing_address(PhysAddr::new(pa)))
    }
}
