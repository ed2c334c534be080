//! Guest memory seams (like Xen's `copy_{from,to}_guest`): handlers never see raw
//! pointers; a bad address is `-EFAULT`, never a panic.
//!
//! - [`GuestAccess`]: the calling vCPU's view, for hypercall pointer arguments
//!   (guest-virtual addresses, translated through the guest's page tables by the backend).
//! - [`GuestMemory`]: one domain's guest-physical memory, for pages the hypervisor
//!   keeps mapped (shared_info, FIFO control blocks and event arrays).

use xen_public_abi::{Errno, XenResult};
use zerocopy::{FromBytes, Immutable, IntoBytes};

/// Hypercall argument access for the calling vCPU (guest-virtual addresses).
pub trait GuestAccess {
    fn copy_from_guest(&mut self, gva: u64, buf: &mut [u8]) -> XenResult<()>;
    fn copy_to_guest(&mut self, gva: u64, buf: &[u8]) -> XenResult<()>;
    /// The guest-physical address `gva` maps to now, for areas the guest
    /// registers by virtual address (`VCPUOP_register_vcpu_time_memory_area`,
    /// `VCPUOP_register_runstate_memory_area`). `None`: not mapped, or this
    /// access cannot tell.
    fn translate(&mut self, _gva: u64) -> Option<u64> {
        None
    }
}

/// One domain's guest-physical memory.
pub trait GuestMemory {
    fn read_gpa(&self, gpa: u64, buf: &mut [u8]) -> XenResult<()>;
    fn write_gpa(&mut self, gpa: u64, buf: &[u8]) -> XenResult<()>;
    /// Atomic compare-and-exchange of an aligned `u32` (FIFO event words, whose
    /// bits the guest changes concurrently). Returns the value found.
    fn cmpxchg_u32(&mut self, gpa: u64, old: u32, new: u32) -> XenResult<u32>;
}

/// Read a plain-data ABI struct from a guest-virtual address.
pub fn copy_from_guest<T: FromBytes + IntoBytes>(
    g: &mut dyn GuestAccess,
    gva: u64,
) -> XenResult<T> {
    let mut v = T::new_zeroed();
    g.copy_from_guest(gva, v.as_mut_bytes())?;
    Ok(v)
}

/// Write a plain-data ABI struct to a guest-virtual address.
pub fn copy_to_guest<T: IntoBytes + Immutable>(
    g: &mut dyn GuestAccess,
    gva: u64,
    v: &T,
) -> XenResult<()> {
    g.copy_to_guest(gva, v.as_bytes())
}

/// Read a plain-data struct from guest-physical memory.
pub fn read_gpa_obj<T: FromBytes + IntoBytes>(m: &dyn GuestMemory, gpa: u64) -> XenResult<T> {
    let mut v = T::new_zeroed();
    m.read_gpa(gpa, v.as_mut_bytes())?;
    Ok(v)
}

/// Machine memory by frame number: how `common/` reaches the contents of a frame
/// (the bare-metal side goes through the physical-memory map; host tests use
/// [`fake::FakeMachine`]). Shared by every domain, hence `&self` and `Sync`.
pub trait MachineMemory: Send + Sync {
    /// Copy out of frame `mfn` from byte `offset`; `false` if it is not RAM.
    fn read(&self, mfn: u64, offset: usize, buf: &mut [u8]) -> bool;
    /// Copy into frame `mfn` at byte `offset`; `false` if it is not RAM.
    fn write(&self, mfn: u64, offset: usize, buf: &[u8]) -> bool;
    /// Atomic compare-and-exchange of the aligned `u32` at `offset`; the value found.
    fn cmpxchg_u32(&self, mfn: u64, offset: usize, old: u32, new: u32) -> Option<u32>;
    /// Atomic AND of the aligned `u32` at `offset` with `mask`; the value found
    /// (grant entries' busy bits, which the guest changes concurrently). The
    /// default retries a compare-and-exchange; the bare-metal one is a `lock and`.
    fn fetch_and_u32(&self, mfn: u64, offset: usize, mask: u32) -> Option<u32> {
        let mut b = [0u8; 4];
        if !self.read(mfn, offset, &mut b) {
            return None;
        }
        let mut cur = u32::from_le_bytes(b);
        // Bounded: a guest rewriting the word forever cannot hold the CPU here.
        for _ in 0..1024 {
            match self.cmpxchg_u32(mfn, offset, cur, cur & mask)? {
                prev if prev == cur => return Some(prev),
                prev => cur = prev,
            }
        }
        None
    }
}

/// A domain's guest-physical memory as the hypervisor sees it: its host p2m
/// over machine memory (Xen's `get_page_from_gfn` on the host p2m: altp2m access
/// restrictions bind the guest, not the hypervisor). Unmapped gfns are `-EFAULT`.
pub struct GuestRam<'a> {
    pub p2m: &'a crate::common::memory::P2m,
    pub machine: &'a dyn MachineMemory,
}

impl GuestRam<'_> {
    /// Split `[gpa, gpa + len)` at page boundaries: (mfn, offset, range in buf).
    fn for_each_page(
        &self,
        gpa: u64,
        len: usize,
        mut f: impl FnMut(u64, usize, core::ops::Range<usize>) -> bool,
    ) -> XenResult<()> {
        let end = gpa.checked_add(len as u64).ok_or(Errno::EFAULT)?;
        let mut cur = gpa;
        while cur < end {
            let page_end = ((cur >> 12) + 1) << 12;
            let chunk_end = page_end.min(end);
            let e = self.p2m.host_entry(cur >> 12).ok_or(Errno::EFAULT)?;
            let range = (cur - gpa) as usize..(chunk_end - gpa) as usize;
            if !f(e.mfn, (cur & 0xfff) as usize, range) {
                return Err(Errno::EFAULT);
            }
            cur = chunk_end;
        }
        Ok(())
    }
}

impl GuestMemory for GuestRam<'_> {
    fn read_gpa(&self, gpa: u64, buf: &mut [u8]) -> XenResult<()> {
        let machine = self.machine;
        self.for_each_page(gpa, buf.len(), |mfn, off, r| {
            machine.read(mfn, off, &mut buf[r])
        })
    }

    fn write_gpa(&mut self, gpa: u64, buf: &[u8]) -> XenResult<()> {
        let machine = self.machine;
        self.for_each_page(gpa, buf.len(), |mfn, off, r| {
            machine.write(mfn, off, &buf[r])
        })
    }

    fn cmpxchg_u32(&mut self, gpa: u64, old: u32, new: u32) -> XenResult<u32> {
        if !gpa.is_multiple_of(4) {
            return Err(Errno::EFAULT);
        }
        let e = self.p2m.host_entry(gpa >> 12).ok_or(Errno::EFAULT)?;
        self.machine
            .cmpxchg_u32(e.mfn, (gpa & 0xfff) as usize, old, new)
            .ok_or(Errno::EFAULT)
    }
}

/// Fake guest memory for host tests: a flat byte array starting at GPA/GVA 0,
/// optionally with holes; anything outside is `-EFAULT`.
#[cfg(test)]
pub mod fake {
    use super::*;
    use alloc::vec;
    use alloc::vec::Vec;
    use xen_public_abi::Errno;

    pub struct FakeMemory {
        pub bytes: Vec<u8>,
        /// Page numbers that fault (unmapped holes).
        pub holes: Vec<u64>,
    }

    impl FakeMemory {
        pub fn new(size: usize) -> Self {
            FakeMemory {
                bytes: vec![0; size],
                holes: Vec::new(),
            }
        }

        fn range(&self, addr: u64, len: usize) -> XenResult<core::ops::Range<usize>> {
            let end = addr.checked_add(len as u64).ok_or(Errno::EFAULT)?;
            if end > self.bytes.len() as u64 {
                return Err(Errno::EFAULT);
            }
            if len > 0
                && self
                    .holes
                    .iter()
                    .any(|&p| p >= addr >> 12 && p <= (end - 1) >> 12)
            {
                return Err(Errno::EFAULT);
            }
            Ok(addr as usize..end as usize)
        }
    }

    impl GuestAccess for FakeMemory {
        fn copy_from_guest(&mut self, gva: u64, buf: &mut [u8]) -> XenResult<()> {
            self.read_gpa(gva, buf)
        }
        fn copy_to_guest(&mut self, gva: u64, buf: &[u8]) -> XenResult<()> {
            self.write_gpa(gva, buf)
        }
        fn translate(&mut self, gva: u64) -> Option<u64> {
            self.range(gva, 1).ok().map(|_| gva)
        }
    }

    impl GuestMemory for FakeMemory {
        fn read_gpa(&self, gpa: u64, buf: &mut [u8]) -> XenResult<()> {
            let r = self.range(gpa, buf.len())?;
            buf.copy_from_slice(&self.bytes[r]);
            Ok(())
        }
        fn write_gpa(&mut self, gpa: u64, buf: &[u8]) -> XenResult<()> {
            let r = self.range(gpa, buf.len())?;
            self.bytes[r].copy_from_slice(buf);
            Ok(())
        }
        fn cmpxchg_u32(&mut self, gpa: u64, old: u32, new: u32) -> XenResult<u32> {
            if !gpa.is_multiple_of(4) {
                return Err(Errno::EFAULT);
            }
            let r = self.range(gpa, 4)?;
            let cur = u32::from_le_bytes(
                self.bytes[r.clone()]
                    .try_into()
                    .map_err(|_| Errno::EFAULT)?,
            );
            if cur == old {
                self.bytes[r].copy_from_slice(&new.to_le_bytes());
            }
            Ok(cur)
        }
    }

    /// Machine memory for host tests: frames spring into existence (zeroed) on
    /// first use; frames listed in `absent` are not RAM.
    #[derive(Default)]
    pub struct FakeMachine {
        frames: spin::Mutex<alloc::collections::BTreeMap<u64, Vec<u8>>>,
        pub absent: Vec<u64>,
    }

    impl FakeMachine {
        /// A digest of every frame's contents (a frame never touched reads as
        /// zeros and counts as such), for "nothing changed" checks.
        pub fn digest(&self) -> u64 {
            let frames = self.frames.lock();
            let mut h: u64 = 0xcbf2_9ce4_8422_2325;
            for (mfn, fr) in frames.iter() {
                if fr.iter().all(|&b| b == 0) {
                    continue;
                }
                for &b in mfn.to_le_bytes().iter().chain(fr.iter()) {
                    h = (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3);
                }
            }
            h
        }

        fn with_frame<R>(&self, mfn: u64, f: impl FnOnce(&mut Vec<u8>) -> R) -> Option<R> {
            if self.absent.contains(&mfn) {
                return None;
            }
            let mut frames = self.frames.lock();
            Some(f(frames.entry(mfn).or_insert_with(|| vec![0; 4096])))
        }
    }

    impl MachineMemory for FakeMachine {
        fn read(&self, mfn: u64, offset: usize, buf: &mut [u8]) -> bool {
            self.with_frame(mfn, |fr| match fr.get(offset..offset + buf.len()) {
                Some(src) => {
                    buf.copy_from_slice(src);
                    true
                }
                None => false,
            })
            .unwrap_or(false)
        }
        fn write(&self, mfn: u64, offset: usize, buf: &[u8]) -> bool {
            self.with_frame(mfn, |fr| match fr.get_mut(offset..offset + buf.len()) {
                Some(dst) => {
                    dst.copy_from_slice(buf);
                    true
                }
                None => false,
            })
            .unwrap_or(false)
        }
        fn cmpxchg_u32(&self, mfn: u64, offset: usize, old: u32, new: u32) -> Option<u32> {
            self.with_frame(mfn, |fr| {
                let w = fr.get_mut(offset..offset + 4)?;
                let cur = u32::from_le_bytes([w[0], w[1], w[2], w[3]]);
                if cur == old {
                    w.copy_from_slice(&new.to_le_bytes());
                }
                Some(cur)
            })
            .flatten()
        }
    }
}
