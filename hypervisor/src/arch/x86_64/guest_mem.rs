//! Guest memory on bare metal: machine frames through the physical-memory map
//! ([`PhysMachine`], the real [`MachineMemory`]), and a vCPU's guest-virtual view
//! ([`VcpuGuestAccess`], the real [`GuestAccess`]): a page-table walker for the
//! guest's own tables (4-level long mode, 3-level PAE, 2-level 32-bit with PSE,
//! paging off = physical), reading the tables through the stage-2 tables the
//! vCPU runs on ([`Stage2Ram`]).
//!
//! Mirrors Xen 4.17's `guest_walk_tables()` (`xen/arch/x86/mm/guest_walk.c`) and
//! `hvm_copy_{to,from}_guest_linear()` (`xen/arch/x86/hvm/hvm.c`) at the scale a
//! hypercall argument needs: present and (for writes) writable checks on every
//! level; accessed/dirty bits are not set. Vendor-neutral: the paging state comes
//! from the vCPU interface.

use core::sync::atomic::{AtomicU32, Ordering};

use xen_public_abi::{Errno, XenResult};

use super::guest_walk::translate;
use super::hvm::vcpu::PagingState;
use super::paging;
use crate::common::guest_access::{GuestAccess, GuestMemory, MachineMemory};

const PAGE_SIZE: u64 = 4096;

/// Machine memory through the bootloader's physical-memory map.
///
/// Every frame number `common/` hands in comes from the frame allocator (guest
/// RAM, `shared_info`) via a p2m entry, so it is RAM the map covers; offsets are
/// checked against the page.
pub struct PhysMachine;

fn in_page(offset: usize, len: usize) -> bool {
    offset
        .checked_add(len)
        .is_some_and(|e| e <= PAGE_SIZE as usize)
}

impl MachineMemory for PhysMachine {
    fn read(&self, mfn: u64, offset: usize, buf: &mut [u8]) -> bool {
        if !in_page(offset, buf.len()) {
            return false;
        }
        let src = paging::phys_to_virt((mfn << 12) + offset as u64);
        // SAFETY: `mfn` is a RAM frame (see the type's doc) mapped by the physical
        // map, and [offset, offset+len) stays inside it. The guest may write the
        // frame concurrently: we copy bytes, no reference to them is kept.
        unsafe { core::ptr::copy_nonoverlapping(src, buf.as_mut_ptr(), buf.len()) };
        true
    }

    fn write(&self, mfn: u64, offset: usize, buf: &[u8]) -> bool {
        if !in_page(offset, buf.len()) {
            return false;
        }
        let dst = paging::phys_to_virt((mfn << 12) + offset as u64);
        // SAFETY: as in `read`; the frame belongs to a guest, not to the hypervisor.
        unsafe { core::ptr::copy_nonoverlapping(buf.as_ptr(), dst, buf.len()) };
        true
    }

    fn cmpxchg_u32(&self, mfn: u64, offset: usize, old: u32, new: u32) -> Option<u32> {
        if !offset.is_multiple_of(4) || !in_page(offset, 4) {
            return None;
        }
        let p = paging::phys_to_virt((mfn << 12) + offset as u64) as *const AtomicU32;
        // SAFETY: the address is 4-byte aligned inside a mapped RAM frame (see
        // above); guests change these words concurrently, hence the atomic.
        let a = unsafe { &*p };
        Some(
            match a.compare_exchange(old, new, Ordering::SeqCst, Ordering::SeqCst) {
                Ok(v) | Err(v) => v,
            },
        )
    }

    fn fetch_and_u32(&self, mfn: u64, offset: usize, mask: u32) -> Option<u32> {
        if !offset.is_multiple_of(4) || !in_page(offset, 4) {
            return None;
        }
        let p = paging::phys_to_virt((mfn << 12) + offset as u64) as *const AtomicU32;
        // SAFETY: as in `cmpxchg_u32`: 4-byte aligned inside a mapped RAM frame
        // that guests change concurrently.
        let a = unsafe { &*p };
        Some(a.fetch_and(mask, Ordering::SeqCst))
    }
}

/// The shared instance.
pub static PHYS_MACHINE: PhysMachine = PhysMachine;

/// Guest-physical memory as the vCPU sees it now: through the stage-2 tables it
/// runs on (built by `common::memory::build_stage2`: 4 levels, 4 KiB leaves).
/// Vendor-neutral: an entry is present when any of bits 0..2 is set (NPT: P;
/// EPT: R/W/X) and its address is bits 12..51, true of both encoders.
pub struct Stage2Ram {
    pub root: u64,
}

impl Stage2Ram {
    fn hpa(&self, gpa: u64) -> Option<u64> {
        if self.root == 0 {
            return None;
        }
        const ADDR: u64 = 0x000f_ffff_ffff_f000;
        let mut table = self.root;
        for level in (1..=4u32).rev() {
            let idx = (gpa >> (12 + 9 * (level - 1))) & 0x1ff;
            let p = paging::phys_to_virt(table + idx * 8) as *const u64;
            // SAFETY: `table` is a frame of a stage-2 tree the builder made from
            // the kernel's frame allocator (the root, then addresses read from
            // present entries of that tree); idx < 512 keeps us in the frame.
            let e = unsafe { p.read_volatile() };
            if e & 0b111 == 0 {
                return None;
            }
            table = e & ADDR;
        }
        Some(table | (gpa & 0xfff))
    }

    fn each(
        &self,
        gpa: u64,
        len: usize,
        mut f: impl FnMut(u64, usize, core::ops::Range<usize>) -> bool,
    ) -> XenResult<()> {
        let end = gpa.checked_add(len as u64).ok_or(Errno::EFAULT)?;
        let mut cur = gpa;
        while cur < end {
            let chunk_end = ((cur & !(PAGE_SIZE - 1)) + PAGE_SIZE).min(end);
            let hpa = self.hpa(cur).ok_or(Errno::EFAULT)?;
            if !f(
                hpa >> 12,
                (hpa & 0xfff) as usize,
                (cur - gpa) as usize..(chunk_end - gpa) as usize,
            ) {
                return Err(Errno::EFAULT);
            }
            cur = chunk_end;
        }
        Ok(())
    }
}

impl GuestMemory for Stage2Ram {
    fn read_gpa(&self, gpa: u64, buf: &mut [u8]) -> XenResult<()> {
        self.each(gpa, buf.len(), |mfn, off, r| {
            PHYS_MACHINE.read(mfn, off, &mut buf[r])
        })
    }
    fn write_gpa(&mut self, gpa: u64, buf: &[u8]) -> XenResult<()> {
        self.each(gpa, buf.len(), |mfn, off, r| {
            PHYS_MACHINE.write(mfn, off, &buf[r])
        })
    }
    fn cmpxchg_u32(&mut self, gpa: u64, old: u32, new: u32) -> XenResult<u32> {
        let hpa = self.hpa(gpa).ok_or(Errno::EFAULT)?;
        PHYS_MACHINE
            .cmpxchg_u32(hpa >> 12, (hpa & 0xfff) as usize, old, new)
            .ok_or(Errno::EFAULT)
    }
}

/// The calling vCPU's memory for hypercall arguments: guest-virtual addresses
/// through its page tables, then its stage-2 tables. (The domain's p2m itself
/// is not borrowed, so the handlers may change the domain table meanwhile.)
pub struct VcpuGuestAccess {
    pub ram: Stage2Ram,
    pub paging: PagingState,
}

impl VcpuGuestAccess {
    pub fn new(stage2_root: u64, paging: PagingState) -> Self {
        VcpuGuestAccess {
            ram: Stage2Ram { root: stage2_root },
            paging,
        }
    }

    /// Visit `[gva, gva+len)` page by page as (gpa, range in the buffer).
    fn each_page(
        &mut self,
        gva: u64,
        len: usize,
        write: bool,
        mut f: impl FnMut(&mut Stage2Ram, u64, core::ops::Range<usize>) -> XenResult<()>,
    ) -> XenResult<()> {
        let end = gva.checked_add(len as u64).ok_or(Errno::EFAULT)?;
        let mut cur = gva;
        while cur < end {
            let chunk_end = ((cur & !(PAGE_SIZE - 1)) + PAGE_SIZE).min(end);
            let gpa = translate(&self.ram, &self.paging, cur, write).ok_or(Errno::EFAULT)?;
            f(
                &mut self.ram,
                gpa,
                (cur - gva) as usize..(chunk_end - gva) as usize,
            )?;
            cur = chunk_end;
        }
        Ok(())
    }
}

impl GuestAccess for VcpuGuestAccess {
    fn copy_from_guest(&mut self, gva: u64, buf: &mut [u8]) -> XenResult<()> {
        self.each_page(gva, buf.len(), false, |ram, gpa, r| {
            ram.read_gpa(gpa, &mut buf[r])
        })
    }

    fn copy_to_guest(&mut self, gva: u64, buf: &[u8]) -> XenResult<()> {
        self.each_page(gva, buf.len(), true, |ram, gpa, r| {
            ram.write_gpa(gpa, &buf[r])
        })
    }

    fn translate(&mut self, gva: u64) -> Option<u64> {
        translate(&self.ram, &self.paging, gva, false)
    }
}
