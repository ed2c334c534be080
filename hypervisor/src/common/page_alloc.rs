//! The machine-frame allocator seam (like Xen's `xen/common/page_alloc.c`
//! interface: `alloc_xenheap_pages`/`alloc_domheap_pages` and their `free_*`).
//!
//! `common/` never owns physical memory: the boot code hands the domain table an
//! allocator over the machine's free frames, and every frame a domain holds comes
//! from it and goes back to it when the domain is destroyed (or when its creation
//! is refused half-way). Host tests use [`fake::CountingFrames`], which counts the
//! frames outstanding so that "nothing leaked" is a testable property.

/// A machine frame number (physical address >> 12).
pub type Mfn = u64;

/// Hands out and takes back 4 KiB machine frames.
pub trait PageAllocator {
    /// One zeroed frame, or `None` when memory is exhausted (the caller turns that
    /// into `-ENOMEM`).
    fn alloc_frame(&mut self) -> Option<Mfn>;
    /// Return a frame obtained from [`PageAllocator::alloc_frame`].
    fn free_frame(&mut self, mfn: Mfn);
}

/// Test allocators.
#[cfg(test)]
pub mod fake {
    use super::*;
    use alloc::collections::BTreeSet;
    use alloc::sync::Arc;
    use spin::Mutex;

    struct Pool {
        capacity: usize,
        next: Mfn,
        free: BTreeSet<Mfn>,
        out: BTreeSet<Mfn>,
    }

    /// A pool of `capacity` frames (MFNs from `0x1001` up), tracking which are out.
    /// Clones share the pool, so a test keeps one handle to count with while the
    /// domain table owns another. Freeing a frame that is not out panics: that is
    /// a bug in the code under test.
    #[derive(Clone)]
    pub struct CountingFrames(Arc<Mutex<Pool>>);

    impl CountingFrames {
        pub fn new(capacity: usize) -> Self {
            CountingFrames(Arc::new(Mutex::new(Pool {
                capacity,
                next: 0x1000,
                free: BTreeSet::new(),
                out: BTreeSet::new(),
            })))
        }

        /// Frames currently allocated.
        pub fn outstanding(&self) -> usize {
            self.0.lock().out.len()
        }

        /// `mfn` is allocated now.
        pub fn is_allocated(&self, mfn: Mfn) -> bool {
            self.0.lock().out.contains(&mfn)
        }

        /// Change how many frames may be out at once (to provoke `-ENOMEM`).
        pub fn set_capacity(&self, capacity: usize) {
            self.0.lock().capacity = capacity;
        }
    }

    impl PageAllocator for CountingFrames {
        fn alloc_frame(&mut self) -> Option<Mfn> {
            let mut p = self.0.lock();
            if p.out.len() >= p.capacity {
                return None;
            }
            let mfn = match p.free.pop_first() {
                Some(m) => m,
                None => {
                    p.next += 1;
                    p.next
                }
            };
            p.out.insert(mfn);
            Some(mfn)
        }

        fn free_frame(&mut self, mfn: Mfn) {
            let mut p = self.0.lock();
            assert!(p.out.remove(&mfn), "double free of frame {mfn:#x}");
            p.free.insert(mfn);
        }
    }
}
