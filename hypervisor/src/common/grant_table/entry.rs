//! The v1 shared entries as the hypervisor touches them: read an entry, pin it
//! (set `GTF_reading`/`GTF_writing` after checking type, grantee and
//! `GTF_readonly`, with a bounded compare-and-exchange loop because the granting
//! guest edits the same word concurrently), and drop the busy bits a pin no
//! longer needs.
//!
//! Mirrors Xen 4.17's `_set_status_v1()` and `reduce_status_for_pin()`
//! (`xen/common/grant_table.c`) and the pin counters of `struct
//! active_grant_entry` (only the host-CPU counters: a translated caller cannot
//! make device mappings).

use xen_public_abi::grant_table::{
    grant_entry_v1, grant_ref_t, GNTST_general_error, GNTST_okay, GTF_permit_access, GTF_reading,
    GTF_readonly, GTF_sub_page, GTF_type_mask, GTF_writing,
};
use xen_public_abi::xen::domid_t;
use zerocopy::{FromZeros, IntoBytes};

use crate::common::guest_access::MachineMemory;
use crate::common::page_alloc::Mfn;

/// v1 entries per 4 KiB frame.
pub const ENTRIES_PER_FRAME: u32 = 4096 / 8;

/// Width of one pin counter (`GNTPIN_cntr_width`).
const PIN_WIDTH: u32 = 8;
/// `GNTPIN_hstw_inc`: one writable host mapping (or writable copy).
pub const PIN_HSTW: u32 = 1;
/// `GNTPIN_hstr_inc`: one read-only host mapping (or read-only copy).
pub const PIN_HSTR: u32 = 1 << PIN_WIDTH;
/// `GNTPIN_hstw_mask`.
pub const PIN_HSTW_MASK: u32 = 0xff;

/// `GNTPIN_incr2oflow_mask()`: a counter that reached half its range refuses
/// another pin.
pub fn pin_would_overflow(pin: u32, incr: u32) -> bool {
    pin & (incr << (PIN_WIDTH - 1)) != 0
}

/// Where entry `r` lives: (frame index, byte offset in the frame).
pub fn entry_location(r: grant_ref_t) -> (usize, usize) {
    (
        (r / ENTRIES_PER_FRAME) as usize,
        ((r % ENTRIES_PER_FRAME) * 8) as usize,
    )
}

/// Read one v1 entry (a frame that is not RAM reads as an invalid entry).
pub fn read(m: &dyn MachineMemory, mfn: Mfn, off: usize) -> grant_entry_v1 {
    let mut e = grant_entry_v1::new_zeroed();
    if !m.read(mfn, off, e.as_mut_bytes()) {
        return grant_entry_v1::new_zeroed();
    }
    e
}

/// Write one v1 entry (the toolstack's seeding path and swap).
pub fn write(m: &dyn MachineMemory, mfn: Mfn, off: usize, e: &grant_entry_v1) {
    // A frame of the table is always RAM the hypervisor allocated.
    let _ = m.write(mfn, off, e.as_bytes());
}

/// `_set_status_v1()`: mark the entry at (`mfn`, `off`) busy for `ldomid`
/// (reading, and writing unless `readonly`). Unless the entry is already pinned,
/// it must be `GTF_permit_access` (and not `GTF_sub_page` when mapping) for
/// `ldomid`; a write pin of a `GTF_readonly` entry fails. The guest may change
/// the word between our read and our exchange: five tries, then
/// `GNTST_general_error` ("unstable"), as Xen.
pub fn set_status(
    m: &dyn MachineMemory,
    mfn: Mfn,
    off: usize,
    pinned: bool,
    readonly: bool,
    mapflag: bool,
    ldomid: domid_t,
) -> i16 {
    let mask = GTF_type_mask | if mapflag { GTF_sub_page } else { 0 };
    let mut head = [0u8; 4];
    if !m.read(mfn, off, &mut head) {
        return GNTST_general_error;
    }
    let mut cur = u32::from_le_bytes(head);
    for _ in 0..5 {
        let flags = cur as u16;
        let domid = (cur >> 16) as u16;
        if !pinned && (flags & mask != GTF_permit_access || domid != ldomid) {
            return GNTST_general_error;
        }
        let mut new_flags = flags | GTF_reading;
        if !readonly {
            if flags & GTF_readonly != 0 {
                return GNTST_general_error;
            }
            new_flags |= GTF_writing;
        }
        let new = (cur & 0xffff_0000) | u32::from(new_flags);
        match m.cmpxchg_u32(mfn, off, cur, new) {
            Some(prev) if prev == cur => return GNTST_okay,
            Some(prev) => cur = prev,
            None => return GNTST_general_error,
        }
    }
    GNTST_general_error
}

/// `reduce_status_for_pin()`: after a pin was dropped (or a pin attempt undone),
/// clear `GTF_reading` when nothing is pinned and `GTF_writing` when no writable
/// pin is left (for a writable request).
pub fn reduce_status_for_pin(
    m: &dyn MachineMemory,
    mfn: Mfn,
    off: usize,
    pin: u32,
    readonly: bool,
) {
    let mut clear = if pin == 0 { GTF_reading } else { 0 };
    if !readonly && pin & PIN_HSTW_MASK == 0 {
        clear |= GTF_writing;
    }
    if clear != 0 {
        // `gnttab_clear_flags()`: an atomic AND on the flags half only.
        let _ = m.fetch_and_u32(mfn, off, !u32::from(clear));
    }
}
