//! Guest memory seams (like Xen's `copy_{from,to}_guest`): handlers never see raw
//! pointers; a bad address is `-EFAULT`, never a panic.
//!
//! - [`GuestAccess`]: the calling vCPU's view, for hypercall pointer arguments
//!   (guest-virtual addresses, translated through the guest's page tables by the backend).
//! - [`GuestMemory`]: one domain's guest-physical memory, for pages the hypervisor
//!   keeps mapped (shared_info, FIFO control blocks and event arrays).

use xen_public_abi::XenResult;
use zerocopy::{FromBytes, Immutable, IntoBytes};

/// Hypercall argument access for the calling vCPU (guest-virtual addresses).
pub trait GuestAccess {
    fn copy_from_guest(&mut self, gva: u64, buf: &mut [u8]) -> XenResult<()>;
    fn copy_to_guest(&mut self, gva: u64, buf: &[u8]) -> XenResult<()>;
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
}
