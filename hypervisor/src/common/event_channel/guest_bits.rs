//! Atomic bit operations on guest memory (like Xen's `guest_test_and_set_bit`
//! family in `asm/guest_atomics.h`).
//!
//! The guest changes its event bitmaps and FIFO event words concurrently with
//! us, so every read-modify-write goes through [`GuestMemory::cmpxchg_u32`] on
//! the aligned little-endian `u32` that contains the bit. Bit `n` of a bitmap at
//! `base` lives in the `u32` at `base + (n / 32) * 4`, bit `n % 32`: on x86 that
//! is the same bit as in the guest's `xen_ulong_t` (64-bit) view of the bitmap.
//!
//! A guest that keeps changing a word can make a compare-and-exchange loop
//! spin; the loop is bounded and then fails with `-EAGAIN`, which callers treat
//! like any other guest-memory failure (the guest only hurts itself).

use crate::common::guest_access::GuestMemory;
use xen_public_abi::{Errno, XenResult};

/// How often a compare-and-exchange is retried before giving up.
const CMPXCHG_RETRIES: u32 = 1024;

/// Address of the `u32` holding bit `bit` of the bitmap at `base`, and the mask.
fn word_of(base: u64, bit: u32) -> XenResult<(u64, u32)> {
    let gpa = base
        .checked_add(u64::from(bit / 32) * 4)
        .ok_or(Errno::EFAULT)?;
    Ok((gpa, 1u32 << (bit % 32)))
}

/// Read the aligned `u32` at `gpa`.
pub fn read_u32(mem: &dyn GuestMemory, gpa: u64) -> XenResult<u32> {
    let mut b = [0u8; 4];
    mem.read_gpa(gpa, &mut b)?;
    Ok(u32::from_le_bytes(b))
}

/// Atomically store `val` at the aligned `u32` at `gpa` (a single guest write
/// of the whole word, as Xen's `write_atomic`).
pub fn write_u32(mem: &mut dyn GuestMemory, gpa: u64, val: u32) -> XenResult<()> {
    let mut cur = read_u32(mem, gpa)?;
    for _ in 0..CMPXCHG_RETRIES {
        let seen = mem.cmpxchg_u32(gpa, cur, val)?;
        if seen == cur {
            return Ok(());
        }
        cur = seen;
    }
    Err(Errno::EAGAIN)
}

/// Atomically apply `f` to the `u32` at `gpa`; returns the old value.
pub fn update_u32(mem: &mut dyn GuestMemory, gpa: u64, f: impl Fn(u32) -> u32) -> XenResult<u32> {
    let mut cur = read_u32(mem, gpa)?;
    for _ in 0..CMPXCHG_RETRIES {
        let new = f(cur);
        if new == cur {
            return Ok(cur);
        }
        let seen = mem.cmpxchg_u32(gpa, cur, new)?;
        if seen == cur {
            return Ok(cur);
        }
        cur = seen;
    }
    Err(Errno::EAGAIN)
}

/// `test_bit`.
pub fn test_bit(mem: &dyn GuestMemory, base: u64, bit: u32) -> XenResult<bool> {
    let (gpa, m) = word_of(base, bit)?;
    Ok(read_u32(mem, gpa)? & m != 0)
}

/// `test_and_set_bit`: returns the old value of the bit.
pub fn test_and_set_bit(mem: &mut dyn GuestMemory, base: u64, bit: u32) -> XenResult<bool> {
    let (gpa, m) = word_of(base, bit)?;
    Ok(update_u32(mem, gpa, |w| w | m)? & m != 0)
}

/// `test_and_clear_bit`: returns the old value of the bit.
pub fn test_and_clear_bit(mem: &mut dyn GuestMemory, base: u64, bit: u32) -> XenResult<bool> {
    let (gpa, m) = word_of(base, bit)?;
    Ok(update_u32(mem, gpa, |w| w & !m)? & m != 0)
}

/// `set_bit`.
pub fn set_bit(mem: &mut dyn GuestMemory, base: u64, bit: u32) -> XenResult<()> {
    test_and_set_bit(mem, base, bit).map(|_| ())
}

/// `clear_bit`.
pub fn clear_bit(mem: &mut dyn GuestMemory, base: u64, bit: u32) -> XenResult<()> {
    test_and_clear_bit(mem, base, bit).map(|_| ())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::common::guest_access::fake::FakeMemory;

    #[test]
    fn bits_match_the_guests_u64_view() {
        let mut m = FakeMemory::new(4096);
        assert!(!test_and_set_bit(&mut m, 64, 70).unwrap());
        assert!(test_and_set_bit(&mut m, 64, 70).unwrap());
        // Bit 70 of a u64 bitmap: word 1, bit 6.
        let w = u64::from_le_bytes(m.bytes[72..80].try_into().unwrap());
        assert_eq!(w, 1 << 6);
        assert!(test_bit(&m, 64, 70).unwrap());
        assert!(test_and_clear_bit(&mut m, 64, 70).unwrap());
        assert!(!test_bit(&m, 64, 70).unwrap());
    }

    #[test]
    fn faults_are_errors_not_panics() {
        let mut m = FakeMemory::new(4096);
        assert_eq!(test_and_set_bit(&mut m, 4096, 0), Err(Errno::EFAULT));
        assert_eq!(test_bit(&m, u64::MAX - 2, 64), Err(Errno::EFAULT));
    }
}
