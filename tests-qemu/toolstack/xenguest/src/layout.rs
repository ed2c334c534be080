//! The pure part of the PVH builder: the kernel's ELF (`PT_LOAD` segments, the
//! `XEN_ELFNOTE_PHYS32_ENTRY` note), where things go in the guest's physical
//! memory, the RAM extents, the E820, `hvm_start_info`, and the HVM save
//! records (HEADER, MTRR, CPU) `vcpu_hvm()` sends.
//!
//! Guest physical layout (as libxenguest for PVH): RAM from 0; the kernel's
//! segments at their ELF physical addresses; the ramdisk from the page after
//! the kernel; then one page with `hvm_start_info` (0x000), the module list
//! (0x040), the memory map (0x080) and the command line (0x200..0x1000); the
//! eight special pages at gfn 0xfeff8..0xfefff (store at 0xfeffc, console at
//! 0xfefff) reserved in the E820; the ACPI tables (`xen-pvh-build`, the same
//! bytes the hypervisor's boot-time builder gives a domain) in the last pages of
//! low RAM, marked ACPI in the E820, the RSDP in `rsdp_paddr` (libxl puts them
//! at 0xfc000000 instead: see docs/linux.md for the difference).

use alloc::string::{String, ToString};
use alloc::vec::Vec;

use xen_public_abi::elfnote::XEN_ELFNOTE_PHYS32_ENTRY;
use xen_public_abi::hvm::save::{
    hvm_hw_mtrr, hvm_save_descriptor, hvm_save_header, HVM_SAVE_CODE_CPU, HVM_SAVE_CODE_END,
    HVM_SAVE_CODE_HEADER, HVM_SAVE_CODE_MTRR,
};
use xen_public_abi::hvm::start_info::{
    hvm_memmap_table_entry, hvm_modlist_entry, hvm_start_info, XEN_HVM_MEMMAP_TYPE_ACPI,
    XEN_HVM_MEMMAP_TYPE_RAM, XEN_HVM_MEMMAP_TYPE_RESERVED, XEN_HVM_START_MAGIC_VALUE,
};
use zerocopy::{FromBytes, FromZeros, IntoBytes};

/// The eight special pages (libxenguest's `X86_HVM_NR_SPECIAL_PAGES`).
pub const SPECIAL_PFN_BASE: u64 = 0xfeff8;
pub const SPECIAL_PFNS: u64 = 8;
/// `HVM_PARAM_STORE_PFN` / `HVM_PARAM_CONSOLE_PFN` values.
pub const STORE_PFN: u64 = 0xfeffc;
pub const CONSOLE_PFN: u64 = 0xfefff;
/// RAM below 4 GiB ends here at the latest (the MMIO hole).
pub const MMIO_HOLE_START: u64 = 0xfc00_0000;
/// HVM save record codes.
pub const CODE_CPU: u16 = HVM_SAVE_CODE_CPU;
pub const CODE_MTRR: u16 = HVM_SAVE_CODE_MTRR;

const PT_LOAD: u32 = 1;
const PT_NOTE: u32 = 4;
const CMDLINE_OFF: usize = 0x200;

/// One `PT_LOAD` segment.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Segment {
    pub paddr: u64,
    pub offset: u64,
    pub filesz: u64,
    pub memsz: u64,
}

/// Where everything goes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Layout {
    pub entry: u64,
    pub segments: Vec<Segment>,
    /// RAM pages (below the hole, then from 4 GiB).
    pub ram_pages: u64,
    pub lowmem_pages: u64,
    pub ramdisk_pfn: u64,
    pub start_info_pfn: u64,
    /// First page of the ACPI tables (`lowmem_pages` when there are none).
    pub acpi_pfn: u64,
    /// `hvm_start_info.rsdp_paddr` (0: no tables).
    pub rsdp: u64,
}

fn rd<const N: usize>(b: &[u8], at: usize) -> Option<[u8; N]> {
    b.get(at..at.checked_add(N)?)?.try_into().ok()
}
fn u16_at(b: &[u8], at: usize) -> Option<u16> {
    rd(b, at).map(u16::from_le_bytes)
}
fn u32_at(b: &[u8], at: usize) -> Option<u32> {
    rd(b, at).map(u32::from_le_bytes)
}
fn u64_at(b: &[u8], at: usize) -> Option<u64> {
    rd(b, at).map(u64::from_le_bytes)
}

/// The ELF64 little-endian x86-64 kernel's segments and PVH entry.
pub fn parse_elf(k: &[u8]) -> Result<(Vec<Segment>, u64), String> {
    if k.get(..4) != Some(b"\x7fELF") || k.get(4) != Some(&2) || k.get(5) != Some(&1) {
        return Err("not an ELF64 little-endian image".to_string());
    }
    if u16_at(k, 18) != Some(62) {
        return Err("not an x86-64 ELF".to_string());
    }
    let phoff = u64_at(k, 32).ok_or("truncated ELF header")? as usize;
    let phentsize = u16_at(k, 54).ok_or("truncated ELF header")? as usize;
    let phnum = u16_at(k, 56).ok_or("truncated ELF header")? as usize;
    if phentsize < 56 || phnum > 64 {
        return Err("bad program header table".to_string());
    }
    let mut segs = Vec::new();
    let mut entry = None;
    for i in 0..phnum {
        let ph = phoff + i * phentsize;
        let ty = u32_at(k, ph).ok_or("program header outside the file")?;
        let offset = u64_at(k, ph + 8).ok_or("program header outside the file")?;
        let paddr = u64_at(k, ph + 24).ok_or("program header outside the file")?;
        let filesz = u64_at(k, ph + 32).ok_or("program header outside the file")?;
        let memsz = u64_at(k, ph + 40).ok_or("program header outside the file")?;
        let in_file = offset
            .checked_add(filesz)
            .is_some_and(|e| e <= k.len() as u64);
        if !in_file || memsz < filesz {
            return Err(alloc::format!(
                "segment {i} runs past the file or memsz < filesz"
            ));
        }
        match ty {
            PT_LOAD if memsz != 0 => segs.push(Segment {
                paddr,
                offset,
                filesz,
                memsz,
            }),
            PT_NOTE => {
                let notes = &k[offset as usize..(offset + filesz) as usize];
                if let Some(e) = phys32_entry(notes) {
                    entry = Some(e);
                }
            }
            _ => {}
        }
    }
    let entry = entry.ok_or(
        "no XEN_ELFNOTE_PHYS32_ENTRY note: not a PVH kernel (a PVH entry point is required)",
    )?;
    if segs.is_empty() {
        return Err("no PT_LOAD segment".to_string());
    }
    Ok((segs, entry))
}

/// The `XEN_ELFNOTE_PHYS32_ENTRY` value in a note segment (4 or 8 bytes).
fn phys32_entry(mut n: &[u8]) -> Option<u64> {
    while n.len() >= 12 {
        let namesz = u32_at(n, 0)? as usize;
        let descsz = u32_at(n, 4)? as usize;
        let ty = u32_at(n, 8)?;
        let name_end = 12 + namesz.next_multiple_of(4);
        let desc_end = name_end.checked_add(descsz.next_multiple_of(4))?;
        let name = n.get(12..12 + namesz)?;
        let desc = n.get(name_end..name_end + descsz)?;
        if name.strip_suffix(b"\0").unwrap_or(name) == b"Xen" && ty == XEN_ELFNOTE_PHYS32_ENTRY {
            return match descsz {
                4 => Some(u64::from(u32_at(desc, 0)?)),
                8 => u64_at(desc, 0),
                _ => None,
            };
        }
        n = n.get(desc_end..)?;
    }
    None
}

impl Layout {
    /// Plan a domain of `memory_mib` for `kernel` (+ a ramdisk of `ramdisk_len`
    /// bytes and `cmdline`).
    pub fn new(
        kernel: &[u8],
        ramdisk_len: Option<usize>,
        memory_mib: u64,
        cmdline: &str,
    ) -> Result<Layout, String> {
        let (segments, entry) = parse_elf(kernel)?;
        let ram_pages = memory_mib << 8;
        let lowmem_pages = ram_pages.min(MMIO_HOLE_START >> 12);
        let mut end = 0u64;
        for s in &segments {
            let e = s.paddr.checked_add(s.memsz).ok_or("segment wraps")?;
            if e > lowmem_pages << 12 {
                return Err(alloc::format!(
                    "segment at {:#x}..{e:#x} is outside the domain's {memory_mib} MiB",
                    s.paddr
                ));
            }
            end = end.max(e);
        }
        if entry >= lowmem_pages << 12 {
            return Err(alloc::format!("entry {entry:#x} is outside RAM"));
        }
        if cmdline.len() >= 0x1000 - CMDLINE_OFF {
            return Err("command line longer than 3583 bytes".to_string());
        }
        let ramdisk_pfn = end.div_ceil(4096);
        let rd_pages = ramdisk_len.unwrap_or(0).div_ceil(4096) as u64;
        let start_info_pfn = ramdisk_pfn + rd_pages;
        if start_info_pfn >= lowmem_pages {
            return Err("kernel, ramdisk and start info do not fit in RAM".to_string());
        }
        Ok(Layout {
            entry,
            segments,
            ram_pages,
            lowmem_pages,
            ramdisk_pfn,
            start_info_pfn,
            acpi_pfn: lowmem_pages,
            rsdp: 0,
        })
    }

    /// Place the ACPI tables for `vcpus` vCPUs (no I/O APIC: the toolstack's
    /// domains emulate the local APIC only) in the last pages of low RAM and
    /// return their bytes, to be written from `acpi_pfn`.
    pub fn place_acpi(&mut self, vcpus: u32) -> Result<Vec<u8>, String> {
        use xen_pvh_build::acpi::{build, Config};
        let mut cfg = Config {
            base: 0,
            vcpus,
            ioapic: false,
        };
        let size = build(&cfg)
            .map_err(|e| alloc::format!("ACPI tables: {e:?}"))?
            .bytes
            .len() as u64;
        let pfn = self
            .lowmem_pages
            .checked_sub(size.div_ceil(4096))
            .filter(|&p| p > self.start_info_pfn)
            .ok_or("no room for the ACPI tables above the start info")?;
        cfg.base = pfn << 12;
        let t = build(&cfg).map_err(|e| alloc::format!("ACPI tables: {e:?}"))?;
        self.acpi_pfn = pfn;
        self.rsdp = t.rsdp;
        Ok(t.bytes)
    }

    /// RAM ranges in pages: below the hole, then from 4 GiB.
    fn ram_ranges(&self) -> Vec<(u64, u64)> {
        let mut r = alloc::vec![(0, self.lowmem_pages)];
        let high = self.ram_pages - self.lowmem_pages;
        if high != 0 {
            r.push((1 << 20, high));
        }
        r
    }

    /// `meminit_hvm`'s extents: order 18 where 1 GiB-aligned with a whole GiB
    /// left, else order 9 where 2 MiB-aligned, else 4 KiB pages; grouped by
    /// order: (order, first gfn of each extent).
    pub fn extents_by_order(&self) -> Vec<(u32, Vec<u64>)> {
        let mut by: [(u32, Vec<u64>); 3] = [(18, Vec::new()), (9, Vec::new()), (0, Vec::new())];
        for (start, count) in self.ram_ranges() {
            let (mut pfn, end) = (start, start + count);
            while pfn < end {
                let left = end - pfn;
                let order = if pfn % (1 << 18) == 0 && left >= 1 << 18 {
                    18
                } else if pfn % (1 << 9) == 0 && left >= 1 << 9 {
                    9
                } else {
                    0
                };
                let slot = match order {
                    18 => 0,
                    9 => 1,
                    _ => 2,
                };
                by[slot].1.push(pfn);
                pfn += 1 << order;
            }
        }
        by.into_iter().filter(|(_, v)| !v.is_empty()).collect()
    }

    /// The E820 / PVH memory map: (address, size, type).
    pub fn memmap(&self) -> Vec<(u64, u64, u32)> {
        let mut m = alloc::vec![(0, self.acpi_pfn << 12, XEN_HVM_MEMMAP_TYPE_RAM)];
        if self.acpi_pfn < self.lowmem_pages {
            m.push((
                self.acpi_pfn << 12,
                (self.lowmem_pages - self.acpi_pfn) << 12,
                XEN_HVM_MEMMAP_TYPE_ACPI,
            ));
        }
        m.push((
            SPECIAL_PFN_BASE << 12,
            SPECIAL_PFNS << 12,
            XEN_HVM_MEMMAP_TYPE_RESERVED,
        ));
        let high = self.ram_pages - self.lowmem_pages;
        if high != 0 {
            m.push((1 << 32, high << 12, XEN_HVM_MEMMAP_TYPE_RAM));
        }
        m
    }

    /// `XENMEM_set_memory_map`'s packed 20-byte E820 entries.
    pub fn e820_bytes(&self) -> Vec<u8> {
        let mut out = Vec::new();
        for (a, s, t) in self.memmap() {
            out.extend_from_slice(&a.to_le_bytes());
            out.extend_from_slice(&s.to_le_bytes());
            out.extend_from_slice(&t.to_le_bytes());
        }
        out
    }

    /// The kernel's file bytes split at page boundaries: (guest paddr, bytes).
    /// (The rest of each segment, its bss, is left as the fresh zeroed RAM.)
    pub fn kernel_chunks<'k>(&self, kernel: &'k [u8]) -> Vec<(u64, &'k [u8])> {
        let mut out = Vec::new();
        for s in &self.segments {
            let mut done = 0u64;
            while done < s.filesz {
                let pa = s.paddr + done;
                let n = (4096 - (pa & 0xfff)).min(s.filesz - done);
                let off = (s.offset + done) as usize;
                out.push((pa, &kernel[off..off + n as usize]));
                done += n;
            }
        }
        out
    }

    /// The start-info page: `hvm_start_info` v1, the ramdisk as module 0, the
    /// memory map and the command line.
    pub fn start_info_page(&self, cmdline: &str, ramdisk_len: Option<usize>) -> [u8; 4096] {
        let mut page = [0u8; 4096];
        let base = self.start_info_pfn << 12;
        let mut si = hvm_start_info::new_zeroed();
        si.magic = XEN_HVM_START_MAGIC_VALUE;
        si.version = 1;
        if let Some(len) = ramdisk_len {
            let m = hvm_modlist_entry {
                paddr: self.ramdisk_pfn << 12,
                size: len as u64,
                cmdline_paddr: 0,
                reserved: 0,
            };
            page[0x40..0x60].copy_from_slice(m.as_bytes());
            si.nr_modules = 1;
            si.modlist_paddr = base + 0x40;
        }
        let map = self.memmap();
        for (i, (addr, size, ty)) in map.iter().enumerate() {
            let e = hvm_memmap_table_entry {
                addr: *addr,
                size: *size,
                r#type: *ty,
                reserved: 0,
            };
            let at = 0x80 + i * 24;
            page[at..at + 24].copy_from_slice(e.as_bytes());
        }
        si.memmap_paddr = base + 0x80;
        si.rsdp_paddr = self.rsdp;
        si.memmap_entries = map.len() as u32;
        if !cmdline.is_empty() {
            page[CMDLINE_OFF..CMDLINE_OFF + cmdline.len()].copy_from_slice(cmdline.as_bytes());
            si.cmdline_paddr = base + CMDLINE_OFF as u64;
        }
        page[..56].copy_from_slice(si.as_bytes());
        page
    }
}

/// The HEADER record's payload in a saved context (the first record).
pub fn header_of(ctx: &[u8]) -> Option<hvm_save_header> {
    let (d, rest) = hvm_save_descriptor::read_from_prefix(ctx).ok()?;
    if d.typecode != HVM_SAVE_CODE_HEADER
        || d.length as usize != core::mem::size_of::<hvm_save_header>()
    {
        return None;
    }
    hvm_save_header::read_from_prefix(rest).ok().map(|(h, _)| h)
}

fn push(out: &mut Vec<u8>, code: u16, instance: u16, bytes: &[u8]) {
    let d = hvm_save_descriptor {
        typecode: code,
        instance,
        length: bytes.len() as u32,
    };
    out.extend_from_slice(d.as_bytes());
    out.extend_from_slice(bytes);
}

/// A context to load: `header`, the records, END.
pub fn context(header: &hvm_save_header, records: &[(u16, u16, &[u8])]) -> Vec<u8> {
    let mut out = Vec::new();
    push(&mut out, HVM_SAVE_CODE_HEADER, 0, header.as_bytes());
    for (code, inst, bytes) in records {
        push(&mut out, *code, *inst, bytes);
    }
    push(&mut out, HVM_SAVE_CODE_END, 0, &[]);
    out
}

/// The MTRR record `vcpu_hvm()` sends: default type write-back, MTRRs enabled.
pub fn mtrr_wb() -> Vec<u8> {
    let mut m = hvm_hw_mtrr::new_zeroed();
    m.msr_pat_cr = 0x0007_0406_0007_0406;
    m.msr_mtrr_cap = 0x508;
    m.msr_mtrr_def_type = 6 | 1 << 11;
    m.as_bytes().to_vec()
}

/// The PVH entry CPU record (`docs/misc/pvh.pandoc`, `xen-pvh-build`'s, the
/// same the hypervisor's tests check): 32-bit protected mode, paging off, flat
/// segments, EIP = entry, EBX = start info.
pub fn pvh_cpu(entry: u32, start_info: u32) -> Vec<u8> {
    xen_pvh_build::pvh_cpu_record(entry, start_info)
        .as_bytes()
        .to_vec()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A minimal ELF64: one PT_LOAD at `paddr` with `body`, optionally a PT_NOTE
    /// with the PVH entry.
    fn elf(paddr: u64, body: &[u8], bss: u64, note: Option<u32>) -> Vec<u8> {
        let mut k = alloc::vec![0u8; 0x200];
        k[..4].copy_from_slice(b"\x7fELF");
        k[4] = 2;
        k[5] = 1;
        k[18..20].copy_from_slice(&62u16.to_le_bytes());
        k[32..40].copy_from_slice(&64u64.to_le_bytes());
        k[54..56].copy_from_slice(&56u16.to_le_bytes());
        let phnum: u16 = if note.is_some() { 2 } else { 1 };
        k[56..58].copy_from_slice(&phnum.to_le_bytes());
        let body_off = 0x200u64;
        let ph = |k: &mut Vec<u8>, i: usize, ty: u32, off: u64, pa: u64, fs: u64, ms: u64| {
            let b = 64 + i * 56;
            k[b..b + 4].copy_from_slice(&ty.to_le_bytes());
            k[b + 8..b + 16].copy_from_slice(&off.to_le_bytes());
            k[b + 24..b + 32].copy_from_slice(&pa.to_le_bytes());
            k[b + 32..b + 40].copy_from_slice(&fs.to_le_bytes());
            k[b + 40..b + 48].copy_from_slice(&ms.to_le_bytes());
        };
        ph(
            &mut k,
            0,
            PT_LOAD,
            body_off,
            paddr,
            body.len() as u64,
            body.len() as u64 + bss,
        );
        k.extend_from_slice(body);
        if let Some(e) = note {
            let off = k.len() as u64;
            let mut n = Vec::new();
            n.extend_from_slice(&4u32.to_le_bytes());
            n.extend_from_slice(&4u32.to_le_bytes());
            n.extend_from_slice(&XEN_ELFNOTE_PHYS32_ENTRY.to_le_bytes());
            n.extend_from_slice(b"Xen\0");
            n.extend_from_slice(&e.to_le_bytes());
            ph(&mut k, 1, PT_NOTE, off, 0, n.len() as u64, n.len() as u64);
            k.extend_from_slice(&n);
        }
        k
    }

    #[test]
    fn pvh_note_is_required() {
        let k = elf(0x10_0000, &[0x90; 100], 0, None);
        let e = Layout::new(&k, None, 16, "").unwrap_err();
        assert!(e.contains("XEN_ELFNOTE_PHYS32_ENTRY"), "{e}");
        assert!(Layout::new(b"MZ not elf", None, 16, "")
            .unwrap_err()
            .contains("ELF"));
    }

    /// The ACPI tables sit in the last pages of low RAM, marked ACPI in the
    /// E820, the RSDP in the start info; no room above the start info is an
    /// error before anything is created.
    #[test]
    fn acpi_tables_at_the_top_of_low_ram() {
        let k = elf(0x10_0000, &[0x90; 100], 0, Some(0x10_0000));
        let mut l = Layout::new(&k, None, 16, "").unwrap();
        let bytes = l.place_acpi(2).unwrap();
        let pages = (bytes.len() as u64).div_ceil(4096);
        assert_eq!(l.acpi_pfn, 4096 - pages);
        assert_eq!(&bytes[..8], b"RSD PTR ");
        assert_eq!(l.rsdp, l.acpi_pfn << 12);
        assert_eq!(
            l.memmap(),
            [
                (0, l.acpi_pfn << 12, 1),
                (l.acpi_pfn << 12, pages << 12, 3),
                (0xfeff_8000, 0x8000, 2)
            ]
        );
        let p = l.start_info_page("", None);
        let si = hvm_start_info::read_from_prefix(&p[..]).unwrap().0;
        assert_eq!(si.rsdp_paddr, l.rsdp);
        // A kernel that fills RAM up to its start info leaves no room.
        let big = elf(
            0x10_0000,
            &[0x90; 100],
            (15 << 20) - 0x1000 - 100,
            Some(0x10_0000),
        );
        let mut l = Layout::new(&big, None, 16, "").unwrap();
        assert!(l.place_acpi(1).unwrap_err().contains("no room"));
    }

    #[test]
    fn layout_of_a_16_mib_domain() {
        let body: Vec<u8> = (0..5000u32).map(|i| i as u8).collect();
        let k = elf(0x10_0000, &body, 0x3000, Some(0x10_0040));
        let l = Layout::new(&k, Some(10_000), 16, "console=hvc0").unwrap();
        assert_eq!(l.entry, 0x10_0040);
        assert_eq!(l.ram_pages, 4096);
        // kernel ends at 0x100000 + 5000 + 0x3000 → ramdisk from the next page.
        assert_eq!(l.ramdisk_pfn, (0x10_0000 + 5000 + 0x3000u64).div_ceil(4096));
        assert_eq!(l.start_info_pfn, l.ramdisk_pfn + 3);
        // 16 MiB: eight 2 MiB extents, nothing else.
        assert_eq!(
            l.extents_by_order(),
            [(9, (0..8).map(|i| i * 512).collect::<Vec<_>>())]
        );
        // The kernel's file bytes, split at the page boundary.
        let chunks = l.kernel_chunks(&k);
        assert_eq!(chunks.len(), 2);
        assert_eq!((chunks[0].0, chunks[0].1.len()), (0x10_0000, 4096));
        assert_eq!((chunks[1].0, chunks[1].1.len()), (0x10_1000, 5000 - 4096));
        assert_eq!(chunks[1].1[0], body[4096]);
        // E820: RAM, the special pages reserved.
        assert_eq!(l.memmap(), [(0, 16 << 20, 1), (0xfeff_8000, 0x8000, 2)]);
        assert_eq!(l.e820_bytes().len(), 40);
        // Start info.
        let p = l.start_info_page("console=hvc0", Some(10_000));
        let si = hvm_start_info::read_from_prefix(&p[..]).unwrap().0;
        let base = l.start_info_pfn << 12;
        assert_eq!(
            (si.magic, si.version, si.nr_modules),
            (XEN_HVM_START_MAGIC_VALUE, 1, 1)
        );
        assert_eq!(
            (si.modlist_paddr, si.memmap_paddr, si.memmap_entries),
            (base + 0x40, base + 0x80, 2)
        );
        assert_eq!(si.cmdline_paddr, base + 0x200);
        assert_eq!(&p[0x200..0x20c], b"console=hvc0");
        let m = hvm_modlist_entry::read_from_prefix(&p[0x40..]).unwrap().0;
        assert_eq!((m.paddr, m.size), (l.ramdisk_pfn << 12, 10_000));
    }

    #[test]
    fn extents_use_large_pages_where_aligned() {
        let k = elf(0x10_0000, &[1; 16], 0, Some(0x10_0000));
        // 1 GiB + 2 MiB + 12 KiB worth of pages.
        let mut l = Layout::new(&k, None, 1026, "").unwrap();
        l.ram_pages += 3;
        l.lowmem_pages += 3;
        let e = l.extents_by_order();
        assert_eq!(e[0], (18, alloc::vec![0]));
        assert_eq!(e[1], (9, alloc::vec![0x40000]));
        assert_eq!(e[2], (0, alloc::vec![0x40200, 0x40201, 0x40202]));
        // Memory above the hole continues from 4 GiB.
        let l = Layout::new(&k, None, 4096 + 1024, "").unwrap();
        assert_eq!(l.lowmem_pages, 0xfc000);
        let m = l.memmap();
        assert_eq!(m[2], (1 << 32, (5120u64 << 20) - 0xfc00_0000, 1));
        let total: u64 = l
            .extents_by_order()
            .iter()
            .map(|(o, v)| (v.len() as u64) << o)
            .sum();
        assert_eq!(total, l.ram_pages);
    }

    #[test]
    fn refusals() {
        let k = elf(0x200_0000, &[1; 16], 0, Some(0x200_0000));
        assert!(Layout::new(&k, None, 16, "")
            .unwrap_err()
            .contains("outside"));
        let k = elf(0x10_0000, &[1; 16], 0, Some(0x10_0000));
        assert!(Layout::new(&k, None, 16, &"x".repeat(4000)).is_err());
        assert!(
            Layout::new(&k, Some(16 << 20), 16, "").is_err(),
            "ramdisk too big"
        );
    }

    #[test]
    fn save_records() {
        let mut hdr = hvm_save_header::new_zeroed();
        hdr.magic = 0x5438_1286;
        hdr.version = 1;
        let ctx = context(&hdr, &[(CODE_CPU, 0, &pvh_cpu(0x10_0000, 0x6000))]);
        assert_eq!(ctx.len(), 8 + 24 + 8 + 1032 + 8);
        assert_eq!(header_of(&ctx).unwrap().magic, 0x5438_1286);
        let cpu = xen_public_abi::hvm::save::hvm_hw_cpu::read_from_prefix(&ctx[40..])
            .unwrap()
            .0;
        assert_eq!(
            (cpu.rip, cpu.rbx, cpu.cs_arbytes, cpu.tr_arbytes),
            (0x10_0000, 0x6000, 0xc9b, 0x8b)
        );
        assert_eq!(mtrr_wb().len(), 240);
        assert!(header_of(&ctx[40..]).is_none());
    }
}
