//! EPT: the VMX encoding of stage-2 entries for the shared builder
//! ([`common::memory::build_stage2`]), the EPT pointer, and the page-table frames the
//! builder fills. Only the entry format is VMX-specific; which gfn maps where with
//! which rights comes from the domain's p2m views.
//!
//! Mirrors Xen's `mm/p2m-ept.c` (`ept_set_entry`'s entry bits, `ept_p2m_type_to_flags`)
//! and `vmx.c`'s EPTP construction, written from the SDM (28.3, 25.6.11).

use crate::arch::x86_64::{frame, paging};
use crate::common::memory::{EntryEncoder, Rights, Stage2Frames};

use super::caps::{self, ept_cap};

/// Read / write / execute (supervisor) permission bits.
const EPT_R: u64 = 1 << 0;
const EPT_W: u64 = 1 << 1;
const EPT_X: u64 = 1 << 2;
/// Memory type write-back in a leaf (bits 5:3) and in the EPTP (bits 2:0).
const EPT_MT_WB: u64 = 6;
/// "Ignore PAT": the EPT memory type alone decides.
const EPT_IGNORE_PAT: u64 = 1 << 6;
/// Suppress #VE: an EPT violation through this entry exits instead of raising #VE.
pub const EPT_SUPPRESS_VE: u64 = 1 << 63;
/// Physical-address bits of an entry.
const ADDR_MASK: u64 = 0x000f_ffff_ffff_f000;

/// The EPT entry encoder. Write without read is a misconfiguration in EPT and
/// execute-only needs a CPU capability: such rights are narrowed (never widened) to
/// what EPT can express, and the fault path decides on the rest.
#[derive(Clone, Copy, Debug)]
pub struct EptEncoder {
    /// The CPU supports execute-only entries.
    pub execute_only: bool,
}

impl EptEncoder {
    pub fn new() -> Self {
        EptEncoder {
            execute_only: caps::get().ept_vpid & ept_cap::EXECUTE_ONLY != 0,
        }
    }
}

impl Default for EptEncoder {
    fn default() -> Self {
        Self::new()
    }
}

/// The EPT permission bits for `r`: write needs read; execute without read needs
/// the execute-only capability.
pub const fn ept_rights(r: Rights, execute_only: bool) -> u64 {
    let mut bits = 0;
    if r.read {
        bits |= EPT_R;
        if r.write {
            bits |= EPT_W;
        }
    }
    if r.exec && (r.read || execute_only) {
        bits |= EPT_X;
    }
    bits
}

/// A 4 KiB EPT leaf (SDM table 29-6): address, permissions, write-back memory type
/// with "ignore PAT" where the page is present, suppress-#VE in bit 63.
pub const fn leaf(mfn: u64, rights: Rights, suppress_ve: bool, execute_only: bool) -> u64 {
    let perms = ept_rights(rights, execute_only);
    let mut e = ((mfn << 12) & ADDR_MASK) | perms;
    if perms != 0 {
        e |= (EPT_MT_WB << 3) | EPT_IGNORE_PAT;
    }
    if suppress_ve {
        e |= EPT_SUPPRESS_VE;
    }
    e
}

const fn rights(read: bool, write: bool, exec: bool) -> Rights {
    Rights { read, write, exec }
}

// Compile-time checks of the encoding (the emulator notes' measured leaf for rwx
// write-back is `pa | 7 | 6 << 3`; we add "ignore PAT").
const _: () = {
    assert!(
        leaf(0x1234, rights(true, true, true), false, false) == 0x0123_4000 | 0x7 | 0x30 | 0x40
    );
    // Write without read cannot be expressed: narrowed to nothing, never widened.
    assert!(ept_rights(rights(false, true, false), false) == 0);
    assert!(ept_rights(rights(false, true, true), true) == EPT_X);
    // Execute-only only with the capability.
    assert!(ept_rights(rights(false, false, true), false) == 0);
    assert!(ept_rights(rights(false, false, true), true) == EPT_X);
    assert!(ept_rights(rights(true, false, true), false) == EPT_R | EPT_X);
    // A no-access leaf is not present: no memory type, suppress-#VE as asked.
    assert!(leaf(5, rights(false, false, false), true, false) == 0x5000 | EPT_SUPPRESS_VE);
    assert!(leaf(5, rights(true, false, false), false, false) == 0x5000 | 1 | 0x70);
    assert!(eptp(0x12_3456_7000) == 0x12_3456_7000 | 0x1e);
};

impl EntryEncoder for EptEncoder {
    fn table_entry(&self, table_pa: u64) -> u64 {
        (table_pa & ADDR_MASK) | EPT_R | EPT_W | EPT_X
    }

    fn leaf_entry(&self, mfn: u64, rights: Rights, suppress_ve: bool) -> u64 {
        leaf(mfn, rights, suppress_ve, self.execute_only)
    }

    /// Not present, suppress #VE: a gfn the view does not map exits to the
    /// hypervisor even where the guest enabled #VE.
    fn empty_entry(&self) -> u64 {
        EPT_SUPPRESS_VE
    }
}

/// The EPT pointer for a 4-level table rooted at `pml4`: write-back paging
/// structures, walk length 4 (encoded as 3). Accessed/dirty flags stay off: the p2m
/// keeps no use for them yet.
pub const fn eptp(pml4: u64) -> u64 {
    (pml4 & ADDR_MASK) | (3 << 3) | EPT_MT_WB
}

/// Whether the CPU can walk EPT the way [`eptp`] asks (4 levels, write-back).
pub fn supported() -> bool {
    let cap = caps::get().ept_vpid;
    cap & ept_cap::WALK_4 != 0 && cap & ept_cap::MEMTYPE_WB != 0
}

/// Real zeroed frames for the builder, reached through the physical map (the builder
/// fills new tables with [`EptEncoder`]'s empty entry). Frames handed out are
/// recorded so the caller can free them with the view.
#[derive(Default)]
pub struct EptFrames {
    pub frames: alloc::vec::Vec<u64>,
}

impl EptFrames {
    /// Returns every frame to the allocator.
    pub fn free_all(&mut self) {
        for pa in self.frames.drain(..) {
            frame::free_contiguous(pa, 1);
        }
    }
}

impl Stage2Frames for EptFrames {
    fn alloc_table(&mut self) -> Option<u64> {
        let pa = frame::alloc_zeroed()?;
        self.frames.push(pa);
        Some(pa)
    }

    fn read(&self, table_pa: u64, index: usize) -> u64 {
        // SAFETY: `table_pa` is one of the frames this allocator handed out (the
        // builder reads only its own tables); index < 512 keeps it in the frame.
        unsafe {
            (paging::phys_to_virt(table_pa) as *const u64)
                .add(index % 512)
                .read()
        }
    }

    fn write(&mut self, table_pa: u64, index: usize, value: u64) {
        // SAFETY: as for `read`.
        unsafe {
            (paging::phys_to_virt(table_pa) as *mut u64)
                .add(index % 512)
                .write(value)
        };
    }
}
