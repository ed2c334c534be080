//! The `xencons_interface` ring arithmetic, backend side.

use alloc::vec::Vec;
use core::mem::offset_of;

use xen_public_abi::io::console::{xencons_interface, MASK_XENCONS_IDX};

/// `sizeof(intf->in)`: guest input ring.
pub const IN_SIZE: usize = 1024;
/// `sizeof(intf->out)`: guest output ring.
pub const OUT_SIZE: usize = 2048;

const OFF_IN: usize = offset_of!(xencons_interface, r#in);
const OFF_OUT: usize = offset_of!(xencons_interface, out);
const OFF_IN_CONS: usize = offset_of!(xencons_interface, in_cons);
const OFF_IN_PROD: usize = offset_of!(xencons_interface, in_prod);
const OFF_OUT_CONS: usize = offset_of!(xencons_interface, out_cons);
const OFF_OUT_PROD: usize = offset_of!(xencons_interface, out_prod);

/// Access to a console page that the guest may change at any time: each call
/// is one (volatile) access; the offsets are within the page's 3088 bytes.
pub trait ConsolePage {
    fn read_u8(&self, off: usize) -> u8;
    fn write_u8(&mut self, off: usize, v: u8);
    fn read_u32(&self, off: usize) -> u32;
    fn write_u32(&mut self, off: usize, v: u32);
    /// A full memory barrier (`xen_mb()`), between index and data accesses.
    fn barrier(&self);
}

/// The guest's indices say more is in the ring than the ring holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RingError {
    pub prod: u32,
    pub cons: u32,
}

/// `buffer_append()`: take what the guest produced in `out` (at most one
/// ring's worth), append it to `to`, and advance `out_cons`. Returns the
/// number of bytes taken; the caller notifies the guest when it is not 0
/// (room was freed). A bogus `out_prod - out_cons` (more than the ring) takes
/// nothing and changes nothing.
pub fn read_output(page: &mut dyn ConsolePage, to: &mut Vec<u8>) -> Result<usize, RingError> {
    let mut cons = page.read_u32(OFF_OUT_CONS);
    let prod = page.read_u32(OFF_OUT_PROD);
    page.barrier();
    let size = prod.wrapping_sub(cons) as usize;
    if size > OUT_SIZE {
        return Err(RingError { prod, cons });
    }
    to.reserve(size);
    for _ in 0..size {
        to.push(page.read_u8(OFF_OUT + MASK_XENCONS_IDX(cons, OUT_SIZE)));
        cons = cons.wrapping_add(1);
    }
    page.barrier();
    page.write_u32(OFF_OUT_CONS, cons);
    Ok(size)
}

/// `ring_free_bytes()` and the write half of `handle_tty_read()`: put as much
/// of `bytes` as fits into `in`, then advance `in_prod`. Returns how many were
/// written (the caller notifies the guest when it is not 0). A bogus
/// `in_prod - in_cons` writes nothing.
pub fn write_input(page: &mut dyn ConsolePage, bytes: &[u8]) -> Result<usize, RingError> {
    let cons = page.read_u32(OFF_IN_CONS);
    let mut prod = page.read_u32(OFF_IN_PROD);
    page.barrier();
    let used = prod.wrapping_sub(cons) as usize;
    if used > IN_SIZE {
        return Err(RingError { prod, cons });
    }
    let n = bytes.len().min(IN_SIZE - used);
    for &b in &bytes[..n] {
        page.write_u8(OFF_IN + MASK_XENCONS_IDX(prod, IN_SIZE), b);
        prod = prod.wrapping_add(1);
    }
    page.barrier();
    page.write_u32(OFF_IN_PROD, prod);
    Ok(n)
}

/// The guest side, for tests and for guests written in this repository: write
/// `bytes` into `out` (as much as fits). Returns how many were written.
pub fn guest_write_output(page: &mut dyn ConsolePage, bytes: &[u8]) -> usize {
    let cons = page.read_u32(OFF_OUT_CONS);
    let mut prod = page.read_u32(OFF_OUT_PROD);
    page.barrier();
    let used = (prod.wrapping_sub(cons) as usize).min(OUT_SIZE);
    let n = bytes.len().min(OUT_SIZE - used);
    for &b in &bytes[..n] {
        page.write_u8(OFF_OUT + MASK_XENCONS_IDX(prod, OUT_SIZE), b);
        prod = prod.wrapping_add(1);
    }
    page.barrier();
    page.write_u32(OFF_OUT_PROD, prod);
    n
}

/// The guest side: take what the backend put in `in` (at most one ring's
/// worth; bogus indices take nothing) and advance `in_cons`.
pub fn guest_read_input(page: &mut dyn ConsolePage, to: &mut Vec<u8>) -> usize {
    let mut cons = page.read_u32(OFF_IN_CONS);
    let prod = page.read_u32(OFF_IN_PROD);
    page.barrier();
    let size = prod.wrapping_sub(cons) as usize;
    if size > IN_SIZE {
        return 0;
    }
    for _ in 0..size {
        to.push(page.read_u8(OFF_IN + MASK_XENCONS_IDX(cons, IN_SIZE)));
        cons = cons.wrapping_add(1);
    }
    page.barrier();
    page.write_u32(OFF_IN_CONS, cons);
    size
}

/// A console page in ordinary memory (host tests, or a copy).
pub struct ArrayPage(pub alloc::boxed::Box<[u8; 4096]>);

impl ArrayPage {
    pub fn new() -> Self {
        ArrayPage(alloc::boxed::Box::new([0; 4096]))
    }
}

impl Default for ArrayPage {
    fn default() -> Self {
        Self::new()
    }
}

impl ConsolePage for ArrayPage {
    fn read_u8(&self, off: usize) -> u8 {
        self.0[off]
    }
    fn write_u8(&mut self, off: usize, v: u8) {
        self.0[off] = v;
    }
    fn read_u32(&self, off: usize) -> u32 {
        let mut b = [0; 4];
        b.copy_from_slice(&self.0[off..off + 4]);
        u32::from_le_bytes(b)
    }
    fn write_u32(&mut self, off: usize, v: u32) {
        self.0[off..off + 4].copy_from_slice(&v.to_le_bytes());
    }
    fn barrier(&self) {
        core::sync::atomic::fence(core::sync::atomic::Ordering::SeqCst);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn set(p: &mut ArrayPage, off: usize, v: u32) {
        p.write_u32(off, v);
    }

    #[test]
    fn output_is_read_and_consumed() {
        let mut p = ArrayPage::new();
        assert_eq!(guest_write_output(&mut p, b"hello\n"), 6);
        let mut got = Vec::new();
        assert_eq!(read_output(&mut p, &mut got), Ok(6));
        assert_eq!(got, b"hello\n");
        assert_eq!(p.read_u32(OFF_OUT_CONS), 6);
        assert_eq!(read_output(&mut p, &mut got), Ok(0), "nothing new");
    }

    #[test]
    fn output_wraps_around_the_ring_and_the_u32_indices() {
        let mut p = ArrayPage::new();
        // Indices just below 2^32 and just before the ring's end.
        let start = u32::MAX - 2;
        set(&mut p, OFF_OUT_CONS, start);
        set(&mut p, OFF_OUT_PROD, start);
        let msg: Vec<u8> = (0..100u8).collect();
        assert_eq!(guest_write_output(&mut p, &msg), 100);
        assert_eq!(p.read_u32(OFF_OUT_PROD), start.wrapping_add(100));
        let mut got = Vec::new();
        assert_eq!(read_output(&mut p, &mut got), Ok(100));
        assert_eq!(got, msg);
        assert_eq!(p.read_u32(OFF_OUT_CONS), start.wrapping_add(100));
    }

    #[test]
    fn a_full_output_ring_is_taken_whole() {
        let mut p = ArrayPage::new();
        let msg: Vec<u8> = (0..3000).map(|i| (i % 251) as u8).collect();
        assert_eq!(guest_write_output(&mut p, &msg), OUT_SIZE, "ring full");
        assert_eq!(guest_write_output(&mut p, b"x"), 0);
        let mut got = Vec::new();
        assert_eq!(read_output(&mut p, &mut got), Ok(OUT_SIZE));
        assert_eq!(got, msg[..OUT_SIZE]);
        assert_eq!(guest_write_output(&mut p, b"x"), 1, "room again");
    }

    #[test]
    fn bogus_output_indices_take_nothing() {
        for (cons, prod) in [
            (0, OUT_SIZE as u32 + 1),
            (10, 9),
            (0, u32::MAX),
            (0x8000_0000, 0),
        ] {
            let mut p = ArrayPage::new();
            set(&mut p, OFF_OUT_CONS, cons);
            set(&mut p, OFF_OUT_PROD, prod);
            let mut got = Vec::new();
            assert_eq!(
                read_output(&mut p, &mut got),
                Err(RingError { prod, cons }),
                "cons {cons:#x} prod {prod:#x}"
            );
            assert!(got.is_empty());
            assert_eq!(p.read_u32(OFF_OUT_CONS), cons, "indices untouched");
        }
        // Exactly one ring's worth is fine.
        let mut p = ArrayPage::new();
        set(&mut p, OFF_OUT_CONS, 5);
        set(&mut p, OFF_OUT_PROD, 5 + OUT_SIZE as u32);
        let mut got = Vec::new();
        assert_eq!(read_output(&mut p, &mut got), Ok(OUT_SIZE));
    }

    #[test]
    fn input_fills_up_to_the_free_space_and_wraps() {
        let mut p = ArrayPage::new();
        set(&mut p, OFF_IN_CONS, 1000);
        set(&mut p, OFF_IN_PROD, 1000);
        let line = b"echo hi\n";
        assert_eq!(write_input(&mut p, line), Ok(line.len()));
        assert_eq!(p.read_u32(OFF_IN_PROD), 1008);
        // Wrapped: bytes at 1000..1023 then 0..
        assert_eq!(p.0[OFF_IN + 1000..OFF_IN + 1008], line[..]);
        let big = [b'a'; 2000];
        assert_eq!(write_input(&mut p, &big), Ok(IN_SIZE - line.len()));
        assert_eq!(write_input(&mut p, b"x"), Ok(0), "full");
        assert_eq!(p.read_u32(OFF_IN_PROD), 1000 + IN_SIZE as u32);
    }

    #[test]
    fn input_reaches_the_guest_side() {
        let mut p = ArrayPage::new();
        assert_eq!(write_input(&mut p, b"ls\r"), Ok(3));
        let mut got = Vec::new();
        assert_eq!(guest_read_input(&mut p, &mut got), 3);
        assert_eq!(got, b"ls\r");
        assert_eq!(guest_read_input(&mut p, &mut got), 0);
        assert_eq!(
            write_input(&mut p, &[b'y'; IN_SIZE]),
            Ok(IN_SIZE),
            "all free again"
        );
    }

    #[test]
    fn bogus_input_indices_write_nothing() {
        for (cons, prod) in [(0, IN_SIZE as u32 + 1), (7, 6), (0, u32::MAX)] {
            let mut p = ArrayPage::new();
            set(&mut p, OFF_IN_CONS, cons);
            set(&mut p, OFF_IN_PROD, prod);
            assert_eq!(write_input(&mut p, b"abc"), Err(RingError { prod, cons }));
            assert_eq!(p.read_u32(OFF_IN_PROD), prod);
            assert!(p.0[OFF_IN..OFF_IN + IN_SIZE].iter().all(|&b| b == 0));
        }
    }

    /// Changing indices under the backend's feet (another CPU of the guest)
    /// never makes it loop or read past the ring: every access stays inside
    /// the page and the work is bounded by the ring's size.
    #[test]
    fn hostile_indices_stay_bounded() {
        struct Hostile {
            page: ArrayPage,
            reads: core::cell::Cell<u32>,
        }
        impl ConsolePage for Hostile {
            fn read_u8(&self, off: usize) -> u8 {
                assert!(off < 3088);
                self.page.read_u8(off)
            }
            fn write_u8(&mut self, off: usize, v: u8) {
                assert!(off < 3088);
                self.page.write_u8(off, v)
            }
            fn read_u32(&self, off: usize) -> u32 {
                // Each index read returns something different.
                let n = self.reads.get().wrapping_mul(0x9e37_79b9).wrapping_add(1);
                self.reads.set(n);
                let _ = off;
                n
            }
            fn write_u32(&mut self, off: usize, v: u32) {
                self.page.write_u32(off, v)
            }
            fn barrier(&self) {}
        }
        let mut h = Hostile {
            page: ArrayPage::new(),
            reads: core::cell::Cell::new(0),
        };
        for _ in 0..1000 {
            let mut got = Vec::new();
            if let Ok(n) = read_output(&mut h, &mut got) {
                assert!(n <= OUT_SIZE && got.len() == n);
            }
            if let Ok(n) = write_input(&mut h, &[b'z'; 3000]) {
                assert!(n <= IN_SIZE);
            }
        }
    }
}
