//! Nested page tables: the SVM encoding of stage-2 entries for the one stage-2
//! builder in `common/memory.rs`, and the frames it builds them in.
//!
//! NPT entries are ordinary AMD64 long-mode page-table entries (APM vol. 2
//! §15.25.5): every guest access is treated as a user access, so U/S is set at
//! every level; write is R/W, no-execute is bit 63 (honoured because the host runs
//! with `EFER.NXE`). NPT cannot express "not readable but writable/executable":
//! such rights map the page not-present and the fault path decides (the encoder
//! grants fewer rights, never more). Mirrors Xen's `p2m-pt.c` entry flags.

use crate::arch::x86_64::paging;
use crate::common::memory::{EntryEncoder, Rights};

const P: u64 = 1 << 0;
const RW: u64 = 1 << 1;
const US: u64 = 1 << 2;
const NX: u64 = 1 << 63;
const ADDR_MASK: u64 = 0x000f_ffff_ffff_f000;

/// The NPT [`EntryEncoder`].
pub struct NptEncoder;

impl EntryEncoder for NptEncoder {
    fn table_entry(&self, table_pa: u64) -> u64 {
        (table_pa & ADDR_MASK) | P | RW | US
    }

    fn leaf_entry(&self, mfn: u64, rights: Rights, _suppress_ve: bool) -> u64 {
        // No hardware #VE on SVM: suppress-#VE is applied by the software #VE
        // path (`altp2m::check_access`), not encoded.
        if !rights.read {
            return 0;
        }
        let mut e = ((mfn << 12) & ADDR_MASK) | P | US;
        if rights.write {
            e |= RW;
        }
        if !rights.exec {
            e |= NX;
        }
        e
    }
}

/// Translate `gpa` through the NPT rooted at `root` (for guest-memory access
/// through the tables the guest runs on). `None` if not mapped readable.
pub fn translate(root: u64, gpa: u64) -> Option<u64> {
    let mut table = root;
    for level in (1..=4u32).rev() {
        let idx = ((gpa >> (12 + 9 * (level - 1))) & 0x1ff) as usize;
        // SAFETY: `table` is a frame of an NPT tree we built; idx < 512.
        let e = unsafe {
            (paging::phys_to_virt(table) as *const u64)
                .add(idx)
                .read_volatile()
        };
        if e & P == 0 {
            return None;
        }
        table = e & ADDR_MASK;
    }
    Some(table | (gpa & 0xfff))
}
