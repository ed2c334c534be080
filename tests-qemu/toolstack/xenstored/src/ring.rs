//! The store page (`struct xenstore_domain_interface`): a 1 KiB request ring
//! the guest produces into and a 1 KiB response ring xenstored produces into,
//! each with free-running 32-bit indices. The page is shared with the guest,
//! so every index is read once and checked: a ring claiming more than 1 KiB of
//! data (or of used space) is corrupt, and the connection is closed.

use core::mem::offset_of;
use xen_public_abi::io::xs_wire::{xenstore_domain_interface, XENSTORE_RING_SIZE};

/// Access to one domain's store page (volatile for a real shared page).
pub trait RingMem {
    /// Read the u32 at byte offset `off` of the page.
    fn load(&self, off: usize) -> u32;
    /// Write the u32 at `off`.
    fn store(&mut self, off: usize, v: u32);
    /// Copy bytes from the page at `off` into `dst`.
    fn read(&self, off: usize, dst: &mut [u8]);
    /// Copy `src` into the page at `off`.
    fn write(&mut self, off: usize, src: &[u8]);
    /// Order the accesses before and after (a full fence on a real page).
    fn fence(&self) {}
}

pub const REQ: usize = offset_of!(xenstore_domain_interface, req);
pub const RSP: usize = offset_of!(xenstore_domain_interface, rsp);
pub const REQ_CONS: usize = offset_of!(xenstore_domain_interface, req_cons);
pub const REQ_PROD: usize = offset_of!(xenstore_domain_interface, req_prod);
pub const RSP_CONS: usize = offset_of!(xenstore_domain_interface, rsp_cons);
pub const RSP_PROD: usize = offset_of!(xenstore_domain_interface, rsp_prod);
pub const SERVER_FEATURES: usize = offset_of!(xenstore_domain_interface, server_features);
pub const CONNECTION: usize = offset_of!(xenstore_domain_interface, connection);
pub const ERROR: usize = offset_of!(xenstore_domain_interface, error);

/// The indices say more than a ring's worth (`XENSTORE_ERROR_RINGIDX`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BadIndex;

/// Copy `dst.len()` bytes out of the ring at `ring` from free-running `idx`.
fn copy_out(m: &dyn RingMem, ring: usize, idx: u32, dst: &mut [u8]) {
    let start = idx as usize % XENSTORE_RING_SIZE;
    let first = dst.len().min(XENSTORE_RING_SIZE - start);
    m.read(ring + start, &mut dst[..first]);
    if first < dst.len() {
        m.read(ring, &mut dst[first..]);
    }
}

fn copy_in(m: &mut dyn RingMem, ring: usize, idx: u32, src: &[u8]) {
    let start = idx as usize % XENSTORE_RING_SIZE;
    let first = src.len().min(XENSTORE_RING_SIZE - start);
    m.write(ring + start, &src[..first]);
    if first < src.len() {
        m.write(ring, &src[first..]);
    }
}

/// Take up to `dst.len()` request bytes; returns how many.
pub fn read_requests(m: &mut dyn RingMem, dst: &mut [u8]) -> Result<usize, BadIndex> {
    let cons = m.load(REQ_CONS);
    let prod = m.load(REQ_PROD);
    m.fence();
    let avail = prod.wrapping_sub(cons) as usize;
    if avail > XENSTORE_RING_SIZE {
        return Err(BadIndex);
    }
    let n = avail.min(dst.len());
    copy_out(m, REQ, cons, &mut dst[..n]);
    m.fence();
    m.store(REQ_CONS, cons.wrapping_add(n as u32));
    Ok(n)
}

/// Put as much of `src` into the response ring as fits; returns how many.
pub fn write_responses(m: &mut dyn RingMem, src: &[u8]) -> Result<usize, BadIndex> {
    let cons = m.load(RSP_CONS);
    let prod = m.load(RSP_PROD);
    m.fence();
    let used = prod.wrapping_sub(cons) as usize;
    if used > XENSTORE_RING_SIZE {
        return Err(BadIndex);
    }
    let n = (XENSTORE_RING_SIZE - used).min(src.len());
    copy_in(m, RSP, prod, &src[..n]);
    m.fence();
    m.store(RSP_PROD, prod.wrapping_add(n as u32));
    Ok(n)
}

/// Guest side: put request bytes (the testguest's xenbus client and tests).
pub fn client_write(m: &mut dyn RingMem, src: &[u8]) -> Result<usize, BadIndex> {
    let cons = m.load(REQ_CONS);
    let prod = m.load(REQ_PROD);
    m.fence();
    let used = prod.wrapping_sub(cons) as usize;
    if used > XENSTORE_RING_SIZE {
        return Err(BadIndex);
    }
    let n = (XENSTORE_RING_SIZE - used).min(src.len());
    copy_in(m, REQ, prod, &src[..n]);
    m.fence();
    m.store(REQ_PROD, prod.wrapping_add(n as u32));
    Ok(n)
}

/// Guest side: take response bytes.
pub fn client_read(m: &mut dyn RingMem, dst: &mut [u8]) -> Result<usize, BadIndex> {
    let cons = m.load(RSP_CONS);
    let prod = m.load(RSP_PROD);
    m.fence();
    let avail = prod.wrapping_sub(cons) as usize;
    if avail > XENSTORE_RING_SIZE {
        return Err(BadIndex);
    }
    let n = avail.min(dst.len());
    copy_out(m, RSP, cons, &mut dst[..n]);
    m.fence();
    m.store(RSP_CONS, cons.wrapping_add(n as u32));
    Ok(n)
}

/// A store page in ordinary memory (host tests; a guest's own page).
pub struct PageBuf(pub alloc::boxed::Box<[u8; 4096]>);

impl Default for PageBuf {
    fn default() -> Self {
        PageBuf(alloc::boxed::Box::new([0; 4096]))
    }
}

impl RingMem for PageBuf {
    fn load(&self, off: usize) -> u32 {
        u32::from_le_bytes(self.0[off..off + 4].try_into().expect("4 bytes"))
    }
    fn store(&mut self, off: usize, v: u32) {
        self.0[off..off + 4].copy_from_slice(&v.to_le_bytes());
    }
    fn read(&self, off: usize, dst: &mut [u8]) {
        dst.copy_from_slice(&self.0[off..off + dst.len()]);
    }
    fn write(&mut self, off: usize, src: &[u8]) {
        self.0[off..off + src.len()].copy_from_slice(src);
    }
}
