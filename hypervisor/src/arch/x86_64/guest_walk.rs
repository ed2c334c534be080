//! The guest page-table walker: a guest-virtual address to guest-physical with
//! a vCPU's CR0/CR3/CR4/EFER, reading the guest's tables through any
//! [`GuestMemory`]: 4-level long mode (1 GiB and 2 MiB pages), 3-level PAE
//! (2 MiB pages), 2-level 32-bit (4 MiB pages with CR4.PSE, PSE-36), paging off
//! = physical. Present and (for writes with CR0.WP) writable on every level;
//! accessed/dirty bits are not set. Pure code, host-tested in
//! `tests/guest_walk.rs`.
//!
//! Mirrors Xen 4.17's `guest_walk_tables()` (`xen/arch/x86/mm/guest_walk.c`) at
//! the scale hypercall arguments need.

use super::hvm::vcpu::PagingState;
use crate::common::guest_access::GuestMemory;

/// Page-table entry bits the walker looks at.
const PTE_P: u64 = 1 << 0;
const PTE_RW: u64 = 1 << 1;
const PTE_PS: u64 = 1 << 7;
const CR4_PSE: u64 = 1 << 4;
const CR0_WP: u64 = 1 << 16;

/// Translate guest-virtual `gva` to guest-physical with the vCPU's paging state,
/// reading its page tables from `mem`. `write`: the access writes (needs RW on
/// every level when CR0.WP is set, as for supervisor writes). `None`: the walk
/// faults.
pub fn translate(mem: &dyn GuestMemory, ps: &PagingState, gva: u64, write: bool) -> Option<u64> {
    if !ps.paging() {
        // Paging off: linear = physical (32-bit wrap outside long mode).
        return Some(if ps.efer & PagingState::EFER_LMA != 0 {
            gva
        } else {
            gva & 0xffff_ffff
        });
    }
    let check_w = write && ps.cr0 & CR0_WP != 0;
    let read64 = |gpa: u64| -> Option<u64> {
        let mut b = [0u8; 8];
        mem.read_gpa(gpa, &mut b).ok()?;
        Some(u64::from_le_bytes(b))
    };
    let ok = |e: u64| e & PTE_P != 0 && (!check_w || e & PTE_RW != 0);
    const ADDR: u64 = 0x000f_ffff_ffff_f000;

    if ps.efer & PagingState::EFER_LMA != 0 {
        // 4-level: PML4 → PDPT (1 GiB pages) → PD (2 MiB pages) → PT.
        let mut table = ps.cr3 & ADDR;
        for level in (1..=4u32).rev() {
            let shift = 12 + 9 * (level - 1);
            let idx = (gva >> shift) & 0x1ff;
            let e = read64(table + idx * 8)?;
            if !ok(e) {
                return None;
            }
            if level == 1 || ((level == 2 || level == 3) && e & PTE_PS != 0) {
                let page_mask = (1u64 << shift) - 1;
                return Some((e & ADDR & !page_mask) | (gva & page_mask));
            }
            table = e & ADDR;
        }
        return None;
    }
    let gva = gva & 0xffff_ffff;
    if ps.cr4 & PagingState::CR4_PAE != 0 {
        // PAE: 4 PDPTEs at CR3 (32-byte aligned) → PD (2 MiB pages) → PT.
        let pdpte = read64((ps.cr3 & 0xffff_ffe0) + ((gva >> 30) & 3) * 8)?;
        if pdpte & PTE_P == 0 {
            return None;
        }
        let pde = read64((pdpte & ADDR) + ((gva >> 21) & 0x1ff) * 8)?;
        if !ok(pde) {
            return None;
        }
        if pde & PTE_PS != 0 {
            return Some((pde & ADDR & !0x1f_ffff) | (gva & 0x1f_ffff));
        }
        let pte = read64((pde & ADDR) + ((gva >> 12) & 0x1ff) * 8)?;
        if !ok(pte) {
            return None;
        }
        return Some((pte & ADDR) | (gva & 0xfff));
    }
    // 2-level 32-bit: PD → PT, 4 MiB pages with CR4.PSE (PSE-36 high bits).
    let read32 = |gpa: u64| -> Option<u64> {
        let mut b = [0u8; 4];
        mem.read_gpa(gpa, &mut b).ok()?;
        Some(u64::from(u32::from_le_bytes(b)))
    };
    let pde = read32((ps.cr3 & 0xffff_f000) + ((gva >> 22) & 0x3ff) * 4)?;
    if !ok(pde) {
        return None;
    }
    if pde & PTE_PS != 0 && ps.cr4 & CR4_PSE != 0 {
        let base = (pde & 0xffc0_0000) | ((pde >> 13) & 0xff) << 32;
        return Some(base | (gva & 0x3f_ffff));
    }
    let pte = read32((pde & 0xffff_f000) + ((gva >> 12) & 0x3ff) * 4)?;
    if !ok(pte) {
        return None;
    }
    Some((pte & 0xffff_f000) | (gva & 0xfff))
}
