//! Host tests for the pure parts of guest boot in `arch/`: the PVH loader
//! (`pvh.rs`) and the guest page-table walker (`guest_walk.rs`). `arch/` only
//! compiles for `target_os = "none"`, so these files (and the vCPU interface's
//! types they name) are included by path, with `crate::common` pointing at the
//! library's `common`.

extern crate alloc;

/// What the included files call `crate::common`.
mod common {
    pub use hypervisor::common::*;
}

/// What `guest_walk.rs` calls `super::hvm::vcpu`.
mod hvm {
    pub use super::vcpu;
}

#[allow(dead_code)]
#[path = "../src/arch/x86_64/hvm/vcpu.rs"]
pub mod vcpu;

#[allow(dead_code)]
#[path = "../src/arch/x86_64/pvh.rs"]
mod pvh;

#[allow(dead_code)]
#[path = "../src/arch/x86_64/guest_walk.rs"]
mod guest_walk;

use hypervisor::common::guest_access::GuestMemory;
use vcpu::PagingState;
use xen_public_abi::hvm::start_info::{hvm_memmap_table_entry, hvm_start_info};
use xen_public_abi::{Errno, XenResult};
use zerocopy::FromBytes;

/// Flat guest RAM from GPA 0.
struct Ram(Vec<u8>);

impl GuestMemory for Ram {
    fn read_gpa(&self, gpa: u64, buf: &mut [u8]) -> XenResult<()> {
        let s = usize::try_from(gpa).map_err(|_| Errno::EFAULT)?;
        let src = self.0.get(s..s + buf.len()).ok_or(Errno::EFAULT)?;
        buf.copy_from_slice(src);
        Ok(())
    }
    fn write_gpa(&mut self, gpa: u64, buf: &[u8]) -> XenResult<()> {
        let s = usize::try_from(gpa).map_err(|_| Errno::EFAULT)?;
        let dst = self.0.get_mut(s..s + buf.len()).ok_or(Errno::EFAULT)?;
        dst.copy_from_slice(buf);
        Ok(())
    }
    fn cmpxchg_u32(&mut self, _gpa: u64, _old: u32, _new: u32) -> XenResult<u32> {
        Err(Errno::EFAULT)
    }
}

// ---- PVH loader ---------------------------------------------------------------------

/// An ELF64 with one PT_LOAD at `paddr` (`code`, `memsz`) and, if `entry` is
/// given, a PT_NOTE with the Xen PHYS32_ENTRY note (4-byte value).
fn elf64(paddr: u64, code: &[u8], memsz: u64, entry: Option<u32>) -> Vec<u8> {
    let mut note = Vec::new();
    if let Some(e) = entry {
        note.extend_from_slice(&4u32.to_le_bytes());
        note.extend_from_slice(&4u32.to_le_bytes());
        note.extend_from_slice(&18u32.to_le_bytes());
        note.extend_from_slice(b"Xen\0");
        note.extend_from_slice(&e.to_le_bytes());
    }
    let phoff = 64u64;
    let nph = 2u16;
    let code_off = phoff + u64::from(nph) * 56;
    let note_off = code_off + code.len() as u64;
    let mut f = Vec::new();
    f.extend_from_slice(b"\x7fELF\x02\x01\x01\0");
    f.extend_from_slice(&[0; 8]);
    f.extend_from_slice(&2u16.to_le_bytes()); // ET_EXEC
    f.extend_from_slice(&0x3eu16.to_le_bytes());
    f.extend_from_slice(&1u32.to_le_bytes());
    f.extend_from_slice(&paddr.to_le_bytes()); // e_entry (ignored)
    f.extend_from_slice(&phoff.to_le_bytes());
    f.extend_from_slice(&0u64.to_le_bytes());
    f.extend_from_slice(&0u32.to_le_bytes());
    for v in [64u16, 56, nph, 64, 0, 0] {
        f.extend_from_slice(&v.to_le_bytes());
    }
    let ph = |f: &mut Vec<u8>, kind: u32, off: u64, addr: u64, filesz: u64, memsz: u64| {
        f.extend_from_slice(&kind.to_le_bytes());
        f.extend_from_slice(&5u32.to_le_bytes());
        for v in [off, addr, addr, filesz, memsz, 0x1000] {
            f.extend_from_slice(&v.to_le_bytes());
        }
    };
    ph(&mut f, 1, code_off, paddr, code.len() as u64, memsz);
    ph(&mut f, 4, note_off, 0, note.len() as u64, note.len() as u64);
    f.extend_from_slice(code);
    f.extend_from_slice(&note);
    f
}

#[test]
fn pvh_image_loads_at_its_physical_address_with_start_info() {
    let mut ram = Ram(vec![0; 4 << 20]);
    let code = [0xf4, 0xeb, 0xfd];
    let img = elf64(0x10_0000, &code, 0x3000, Some(0x10_0000));
    let l = pvh::load(&mut ram, 4 << 20, &img, "role=hello n=1", 3, None).unwrap();
    assert_eq!(l.entry, 0x10_0000);
    assert_eq!(l.start_info, 0x6000);
    assert_eq!((l.image_start, l.image_end), (0x10_0000, 0x10_3000));
    assert_eq!(&ram.0[0x10_0000..0x10_0003], &code);
    let si = hvm_start_info::read_from_bytes(&ram.0[0x6000..0x6000 + 56]).unwrap();
    assert_eq!(si.magic, 0x336e_c578);
    assert_eq!(si.version, 1);
    assert_eq!(si.flags, 3);
    assert_eq!(si.nr_modules, 0);
    assert_eq!(si.memmap_entries, 1);
    let mm = hvm_memmap_table_entry::read_from_bytes(
        &ram.0[si.memmap_paddr as usize..si.memmap_paddr as usize + 24],
    )
    .unwrap();
    assert_eq!((mm.addr, mm.size, mm.r#type), (0, 4 << 20, 1));
    let c = si.cmdline_paddr as usize;
    assert_eq!(&ram.0[c..c + 15], b"role=hello n=1\0");
}

/// Modules after the image, page-aligned, listed in the start info with their
/// names as command lines; too big for RAM is an error.
#[test]
fn pvh_modules_follow_the_image() {
    use xen_public_abi::hvm::start_info::hvm_modlist_entry;
    let mut ram = Ram(vec![0; 4 << 20]);
    let img = elf64(0x10_0000, &[0xf4], 0x1800, Some(0x10_0000));
    let l = pvh::load(&mut ram, 4 << 20, &img, "", 0, None).unwrap();
    let mods: [(&str, &[u8]); 2] = [("a.cfg", b"name='a'"), ("kernel", &[7u8; 5000])];
    pvh::load_modules(&mut ram, 4 << 20, &l, &mods).unwrap();
    let si = hvm_start_info::read_from_bytes(&ram.0[0x6000..0x6000 + 56]).unwrap();
    assert_eq!(si.nr_modules, 2);
    let at = |i: usize| si.modlist_paddr as usize + i * 32;
    let m0 = hvm_modlist_entry::read_from_bytes(&ram.0[at(0)..at(0) + 32]).unwrap();
    let m1 = hvm_modlist_entry::read_from_bytes(&ram.0[at(1)..at(1) + 32]).unwrap();
    assert_eq!((m0.paddr, m0.size), (0x10_2000, 8));
    assert_eq!((m1.paddr, m1.size), (0x10_3000, 5000));
    assert_eq!(&ram.0[0x10_2000..0x10_2008], b"name='a'");
    assert_eq!(ram.0[0x10_3000 + 4999], 7);
    let n = m1.cmdline_paddr as usize;
    assert_eq!(&ram.0[n..n + 7], b"kernel\0");
    assert!(si.modlist_paddr >= 0x10_5000, "after the modules");
    let big = vec![0u8; 4 << 20];
    let e = pvh::load_modules(&mut ram, 4 << 20, &l, &[("big", &big)]).unwrap_err();
    assert!(e.contains("big"), "{e}");
}

/// ACPI tables go to the top of RAM: the memory map splits RAM / ACPI there,
/// `rsdp_paddr` points at the RSDP, and modules must stay below them.
#[test]
fn pvh_acpi_tables_at_the_top_of_ram() {
    let ram_size = 4u64 << 20;
    let mut ram = Ram(vec![0; ram_size as usize]);
    let img = elf64(0x10_0000, &[0xf4], 0x1000, Some(0x10_0000));
    let tables = xen_pvh_build::acpi::build(&xen_pvh_build::acpi::Config {
        base: ram_size - 0x1000,
        vcpus: 2,
        ioapic: false,
    })
    .unwrap();
    let blob = pvh::AcpiBlob {
        base: ram_size - 0x1000,
        bytes: &tables.bytes,
        rsdp: tables.rsdp,
    };
    let l = pvh::load(&mut ram, ram_size, &img, "", 0, Some(&blob)).unwrap();
    let si = hvm_start_info::read_from_bytes(&ram.0[0x6000..0x6000 + 56]).unwrap();
    assert_eq!(si.rsdp_paddr, ram_size - 0x1000);
    assert_eq!(&ram.0[si.rsdp_paddr as usize..][..8], b"RSD PTR ");
    assert_eq!(si.memmap_entries, 2);
    let entry = |i: usize| {
        let at = si.memmap_paddr as usize + 24 * i;
        let e = hvm_memmap_table_entry::read_from_bytes(&ram.0[at..at + 24]).unwrap();
        (e.addr, e.size, e.r#type)
    };
    assert_eq!(entry(0), (0, ram_size - 0x1000, 1));
    assert_eq!(entry(1), (ram_size - 0x1000, 0x1000, 3));
    // Modules (and their list) stay below the tables.
    let fits = vec![0u8; (ram_size - 0x2000 - 0x10_1000) as usize];
    pvh::load_modules(&mut ram, ram_size, &l, &[("m", &fits)]).unwrap();
    let big = vec![0u8; (ram_size - 0x1000 - 0x10_1000) as usize + 1];
    let e = pvh::load_modules(&mut ram, ram_size, &l, &[("m", &big)]).unwrap_err();
    assert!(e.contains("does not fit"), "{e}");
    // Tables that are not page-aligned or past the RAM are refused.
    for base in [ram_size - 0x800, ram_size] {
        let bad = pvh::AcpiBlob { base, ..blob };
        let e = pvh::load(&mut ram, ram_size, &img, "", 0, Some(&bad)).unwrap_err();
        assert!(e.contains("ACPI"), "{e}");
    }
}

#[test]
fn pvh_refusals_are_messages() {
    let ram_size = 2u64 << 20;
    let cases: Vec<(Vec<u8>, &str)> = vec![
        (
            b"not an elf at all, not at all, not at all, not at all, ok".to_vec(),
            "not an ELF",
        ),
        (
            elf64(0x10_0000, &[0x90], 0x10, None),
            "XEN_ELFNOTE_PHYS32_ENTRY",
        ),
        (
            elf64(0x1f_f000, &[0x90], 0x2000, Some(0x1f_f000)),
            "does not fit",
        ),
        (
            elf64(0x5000, &[0x90], 0x2000, Some(0x5000)),
            "start-info area",
        ),
        (
            elf64(0x10_0000, &[0x90], 0x10, Some(0x20_0000)),
            "outside the image",
        ),
    ];
    for (img, want) in cases {
        let mut ram = Ram(vec![0; ram_size as usize]);
        let e = pvh::load(&mut ram, ram_size, &img, "", 0, None).unwrap_err();
        assert!(e.contains(want), "{e:?} should mention {want:?}");
    }
    // A command line that does not fit the loader's area.
    let mut ram = Ram(vec![0; ram_size as usize]);
    let img = elf64(0x10_0000, &[0x90], 0x10, Some(0x10_0000));
    let long = "x".repeat(0x2000);
    assert!(pvh::load(&mut ram, ram_size, &img, &long, 0, None)
        .unwrap_err()
        .contains("too long"));
}

#[test]
fn pvh_never_panics_on_truncated_or_garbled_images() {
    let img = elf64(0x10_0000, &[0x90; 64], 0x100, Some(0x10_0000));
    for cut in 0..img.len() {
        let mut ram = Ram(vec![0; 2 << 20]);
        let _ = pvh::load(&mut ram, 2 << 20, &img[..cut], "", 0, None);
    }
    for i in 0..img.len() {
        let mut bad = img.clone();
        bad[i] ^= 0xff;
        let mut ram = Ram(vec![0; 2 << 20]);
        let _ = pvh::load(&mut ram, 2 << 20, &bad, "", 0, None);
    }
}

// ---- page-table walker --------------------------------------------------------------

const P: u64 = 1;
const RW: u64 = 2;
const PS: u64 = 1 << 7;

fn put64(ram: &mut Ram, at: u64, v: u64) {
    ram.write_gpa(at, &v.to_le_bytes()).unwrap();
}
fn put32(ram: &mut Ram, at: u64, v: u32) {
    ram.write_gpa(at, &v.to_le_bytes()).unwrap();
}

fn long_mode(cr3: u64) -> PagingState {
    PagingState {
        cr0: PagingState::CR0_PE | PagingState::CR0_PG | 1 << 16,
        cr3,
        cr4: PagingState::CR4_PAE,
        efer: PagingState::EFER_LMA | 1 << 8,
    }
}

#[test]
fn paging_off_is_physical() {
    let ram = Ram(vec![0; 0x1000]);
    let ps = PagingState {
        cr0: PagingState::CR0_PE,
        ..PagingState::default()
    };
    assert_eq!(
        guest_walk::translate(&ram, &ps, 0x1_2345_6789, false),
        Some(0x2345_6789),
        "32-bit wrap"
    );
}

#[test]
fn four_level_4k_2m_1g_pages_and_permissions() {
    let mut ram = Ram(vec![0; 0x10_0000]);
    // PML4 at 0x1000, PDPT at 0x2000, PD at 0x3000, PT at 0x4000.
    let gva: u64 = 0xffff_8000_4060_1234; // PML4 256, PDPT 1, PD 3, PT 1
    put64(&mut ram, 0x1000 + 256 * 8, 0x2000 | P | RW);
    put64(&mut ram, 0x2000 + 8, 0x3000 | P | RW);
    put64(&mut ram, 0x3000 + 3 * 8, 0x4000 | P | RW);
    put64(&mut ram, 0x4000 + 8, 0x7_7000 | P); // read-only leaf
    let ps = long_mode(0x1000);
    assert_eq!(guest_walk::translate(&ram, &ps, gva, false), Some(0x7_7234));
    assert_eq!(
        guest_walk::translate(&ram, &ps, gva, true),
        None,
        "WP: RO leaf"
    );
    let mut no_wp = ps;
    no_wp.cr0 &= !(1 << 16);
    assert_eq!(
        guest_walk::translate(&ram, &no_wp, gva, true),
        Some(0x7_7234)
    );
    // Not present.
    assert_eq!(guest_walk::translate(&ram, &ps, gva + 0x1000, false), None);
    // 2 MiB page at PD index 4.
    put64(&mut ram, 0x3000 + 4 * 8, 0x4000_0000 | P | RW | PS);
    let big = 0xffff_8000_4080_0000u64 + 0x1_2345;
    assert_eq!(
        guest_walk::translate(&ram, &ps, big, true),
        Some(0x4001_2345)
    );
    // 1 GiB page at PDPT index 2.
    put64(&mut ram, 0x2000 + 2 * 8, 0x8000_0000 | P | PS);
    let huge = 0xffff_8000_8000_0000u64 + 0x3456_789a;
    assert_eq!(
        guest_walk::translate(&ram, &ps, huge, false),
        Some(0xb456_789a)
    );
    // Tables outside guest RAM fault, not panic.
    let far = long_mode(0xdead_0000);
    assert_eq!(guest_walk::translate(&ram, &far, gva, false), None);
}

#[test]
fn pae_and_two_level() {
    let mut ram = Ram(vec![0; 0x10_0000]);
    // PAE: PDPT at 0x1020 (32-byte aligned), PD at 0x2000, PT at 0x3000.
    let gva = 0x4060_1234u64; // PDPT 1, PD 3, PT 1
    put64(&mut ram, 0x1020 + 8, 0x2000 | P);
    put64(&mut ram, 0x2000 + 3 * 8, 0x3000 | P | RW);
    put64(&mut ram, 0x3000 + 8, 0x5_5000 | P | RW);
    let pae = PagingState {
        cr0: PagingState::CR0_PE | PagingState::CR0_PG,
        cr3: 0x1020,
        cr4: PagingState::CR4_PAE,
        efer: 0,
    };
    assert_eq!(guest_walk::translate(&ram, &pae, gva, true), Some(0x5_5234));
    put64(&mut ram, 0x2000 + 4 * 8, 0x60_0000 | P | PS);
    assert_eq!(
        guest_walk::translate(&ram, &pae, 0x4080_0042, false),
        Some(0x60_0042)
    );

    // 2-level: PD at 0x8000, PT at 0x9000; a 4 MiB page with PSE.
    let gva = 0x0040_2abc; // PD 1, PT 2
    put32(&mut ram, 0x8000 + 4, 0x9000 | P as u32 | RW as u32);
    put32(&mut ram, 0x9000 + 2 * 4, 0x6_6000 | P as u32);
    let two = PagingState {
        cr0: PagingState::CR0_PE | PagingState::CR0_PG,
        cr3: 0x8000,
        cr4: 0,
        efer: 0,
    };
    assert_eq!(
        guest_walk::translate(&ram, &two, gva, false),
        Some(0x6_6abc)
    );
    put32(&mut ram, 0x8000 + 3 * 4, 0x0080_0000 | P as u32 | PS as u32);
    let gva4m = 0x00c1_2345; // PD 3
    assert_eq!(
        guest_walk::translate(&ram, &two, gva4m, false),
        None,
        "no PSE"
    );
    let pse = PagingState { cr4: 1 << 4, ..two };
    assert_eq!(
        guest_walk::translate(&ram, &pse, gva4m, false),
        Some(0x0081_2345)
    );
}
