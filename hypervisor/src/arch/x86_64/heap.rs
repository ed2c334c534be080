//! The kernel heap: one physically contiguous block from the frame allocator,
//! reached through the physical-memory mapping and managed by
//! `linked_list_allocator` (first fit). Like Xen's xmalloc pool, but fixed-size.

use core::alloc::{GlobalAlloc, Layout};
use core::ptr::NonNull;

use linked_list_allocator::Heap;
use spin::Mutex;

use super::{frame, paging};

/// Heap size: 16 MiB, or an eighth of usable memory if that is less.
const HEAP_MAX: u64 = 16 << 20;

struct LockedHeap(Mutex<Heap>);

// SAFETY: allocation and deallocation go through the lock; the heap hands out
// disjoint blocks of memory it owns.
unsafe impl GlobalAlloc for LockedHeap {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        self.0
            .lock()
            .allocate_first_fit(layout)
            .map_or(core::ptr::null_mut(), |p| p.as_ptr())
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        if let Some(p) = NonNull::new(ptr) {
            // SAFETY: the caller passes a block this allocator returned with `layout`.
            unsafe { self.0.lock().deallocate(p, layout) };
        }
    }
}

#[global_allocator]
static HEAP: LockedHeap = LockedHeap(Mutex::new(Heap::empty()));

/// Where the heap went.
pub struct HeapInfo {
    pub virt: u64,
    pub phys: u64,
    pub size: u64,
}

/// Takes the heap's frames and initialises the allocator.
pub fn init(usable_bytes: u64) -> Result<HeapInfo, &'static str> {
    let size = HEAP_MAX.min((usable_bytes / 8) & !(frame::FRAME_SIZE - 1));
    let frames = (size / frame::FRAME_SIZE) as usize;
    let phys = frame::alloc_contiguous(frames, 2 << 20, u64::MAX)
        .or_else(|| frame::alloc_contiguous(frames, frame::FRAME_SIZE, u64::MAX))
        .ok_or("no contiguous block for the heap")?;
    let virt = paging::phys_to_virt(phys);
    // SAFETY: the frames are ours (just allocated) and mapped through the physical
    // map, which stays in place (our own page tables keep the same offset).
    unsafe { HEAP.0.lock().init(virt, size as usize) };
    Ok(HeapInfo {
        virt: virt as u64,
        phys,
        size,
    })
}
