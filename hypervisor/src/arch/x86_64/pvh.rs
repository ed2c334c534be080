//! The PVH loader: an ELF image with a `XEN_ELFNOTE_PHYS32_ENTRY` note is loaded
//! at its physical addresses into a domain's RAM, with `struct hvm_start_info`,
//! the memory map and the command line beside it; the vCPU starts at the note's
//! entry in 32-bit protected mode, paging off, `EBX` = the start info.
//!
//! Mirrors what Xen 4.17 (`xen/arch/x86/hvm/dom0_build.c`: `pvh_load_kernel`,
//! `pvh_setup_cpus`; `libxc`'s `xc_dom_elfloader` + `xc_dom_x86.c` for domUs) and
//! QEMU (`hw/i386/x86.c` PVH boot) do, in the layout of `docs/domains.md`: the
//! start info in a page below 1 MiB that no segment uses (0x6000), the memory
//! map at 0x6040, the module list at 0x60a0, the command line at 0x6100 up to
//! 0x8000. Boot modules (an initrd) follow the kernel's highest address, each
//! page-aligned, as 4.17's domain builder allocates them
//! (`xc_dom_build_module` after the kernel segment). The ELF reader checks every
//! offset; a bad image is an error message, never a fault.

use alloc::format;
use alloc::string::String;

use xen_public_abi::elfnote::XEN_ELFNOTE_PHYS32_ENTRY;
use xen_public_abi::hvm::start_info::{
    hvm_memmap_table_entry, hvm_modlist_entry, hvm_start_info, XEN_HVM_MEMMAP_TYPE_ACPI,
    XEN_HVM_MEMMAP_TYPE_RAM, XEN_HVM_START_MAGIC_VALUE,
};
use zerocopy::{FromZeros, IntoBytes};

use crate::common::guest_access::GuestMemory;

/// Where the loader puts `hvm_start_info`, the memory map and the command line.
pub const START_INFO_GPA: u64 = 0x6000;
pub const MEMMAP_GPA: u64 = 0x6040;
pub const CMDLINE_GPA: u64 = 0x6100;
/// End of the loader's area (exclusive).
pub const LOADER_AREA_END: u64 = 0x8000;

const PT_LOAD: u32 = 1;
const PT_NOTE: u32 = 4;

/// What the loader did: where to start the vCPU.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Loaded {
    /// `XEN_ELFNOTE_PHYS32_ENTRY`.
    pub entry: u64,
    /// GPA of `hvm_start_info` (for EBX).
    pub start_info: u64,
    /// Lowest and highest (exclusive) GPA the segments occupy.
    pub image_start: u64,
    pub image_end: u64,
    /// The end of the RAM the image and the boot modules may use (below the
    /// ACPI tables).
    pub ram_end: u64,
}

/// One program header, class-independent.
struct Phdr {
    kind: u32,
    offset: u64,
    paddr: u64,
    filesz: u64,
    memsz: u64,
}

struct ElfFile<'a> {
    b: &'a [u8],
    is64: bool,
}

impl<'a> ElfFile<'a> {
    fn new(b: &'a [u8]) -> Result<Self, String> {
        if b.len() < 52 || b[..4] != *b"\x7fELF" {
            return Err("not an ELF file".into());
        }
        if b[5] != 1 {
            return Err("not a little-endian ELF file".into());
        }
        let is64 = match b[4] {
            1 => false,
            2 => true,
            c => return Err(format!("unknown ELF class {c}")),
        };
        Ok(ElfFile { b, is64 })
    }

    fn get<const N: usize>(&self, at: u64) -> Option<[u8; N]> {
        let s = usize::try_from(at).ok()?;
        self.b.get(s..s.checked_add(N)?)?.try_into().ok()
    }
    fn u16(&self, at: u64) -> Option<u16> {
        self.get(at).map(u16::from_le_bytes)
    }
    fn u32(&self, at: u64) -> Option<u32> {
        self.get(at).map(u32::from_le_bytes)
    }
    fn u64(&self, at: u64) -> Option<u64> {
        self.get(at).map(u64::from_le_bytes)
    }

    fn phdrs(&self) -> Result<alloc::vec::Vec<Phdr>, String> {
        let bad = || String::from("program headers outside the file");
        let (phoff, entsize, num) = if self.is64 {
            (
                self.u64(0x20).ok_or_else(bad)?,
                self.u16(0x36).ok_or_else(bad)?,
                self.u16(0x38).ok_or_else(bad)?,
            )
        } else {
            (
                u64::from(self.u32(0x1c).ok_or_else(bad)?),
                self.u16(0x2a).ok_or_else(bad)?,
                self.u16(0x2c).ok_or_else(bad)?,
            )
        };
        let mut out = alloc::vec::Vec::new();
        for i in 0..u64::from(num) {
            let ph = phoff.checked_add(i * u64::from(entsize)).ok_or_else(bad)?;
            let p = if self.is64 {
                Phdr {
                    kind: self.u32(ph).ok_or_else(bad)?,
                    offset: self.u64(ph + 8).ok_or_else(bad)?,
                    paddr: self.u64(ph + 24).ok_or_else(bad)?,
                    filesz: self.u64(ph + 32).ok_or_else(bad)?,
                    memsz: self.u64(ph + 40).ok_or_else(bad)?,
                }
            } else {
                Phdr {
                    kind: self.u32(ph).ok_or_else(bad)?,
                    offset: u64::from(self.u32(ph + 4).ok_or_else(bad)?),
                    paddr: u64::from(self.u32(ph + 12).ok_or_else(bad)?),
                    filesz: u64::from(self.u32(ph + 16).ok_or_else(bad)?),
                    memsz: u64::from(self.u32(ph + 20).ok_or_else(bad)?),
                }
            };
            out.push(p);
        }
        Ok(out)
    }

    /// The `XEN_ELFNOTE_PHYS32_ENTRY` value from the `PT_NOTE` segments.
    fn phys32_entry(&self, phdrs: &[Phdr]) -> Option<u64> {
        for p in phdrs.iter().filter(|p| p.kind == PT_NOTE) {
            let mut at = p.offset;
            let end = p.offset.checked_add(p.filesz)?;
            while at.checked_add(12)? <= end {
                let namesz = u64::from(self.u32(at)?);
                let descsz = u64::from(self.u32(at + 4)?);
                let kind = self.u32(at + 8)?;
                let name_at = at + 12;
                let desc_at = name_at.checked_add(namesz.checked_add(3)? & !3)?;
                let next = desc_at.checked_add(descsz.checked_add(3)? & !3)?;
                let s = usize::try_from(name_at).ok()?;
                let name = self.b.get(s..s.checked_add(namesz as usize)?)?;
                if name == b"Xen\0" && kind == XEN_ELFNOTE_PHYS32_ENTRY {
                    return match descsz {
                        4 => self.u32(desc_at).map(u64::from),
                        8 => self.u64(desc_at),
                        _ => None,
                    };
                }
                at = next;
            }
        }
        None
    }
}

/// ACPI tables to hand the guest: copied to `base` (page-aligned, the top of
/// its RAM), which the memory map marks ACPI; `rsdp` goes to `rsdp_paddr`.
pub struct AcpiBlob<'a> {
    pub base: u64,
    pub bytes: &'a [u8],
    pub rsdp: u64,
}

/// Load `image` into `mem` (a domain with `ram_bytes` of RAM from GPA 0, already
/// populated and zeroed), write `hvm_start_info` (version 1, with the memory map,
/// `cmdline` and the ACPI tables' RSDP; boot modules are added by
/// [`load_modules`]) and return where to start. `flags` are the `SIF_*` for the start info.
pub fn load(
    mem: &mut dyn GuestMemory,
    ram_bytes: u64,
    image: &[u8],
    cmdline: &str,
    flags: u32,
    acpi: Option<&AcpiBlob<'_>>,
) -> Result<Loaded, String> {
    let total_ram = ram_bytes;
    // What the image and the modules may use: the RAM below the ACPI tables.
    let ram_bytes = match acpi {
        None => total_ram,
        Some(a) => {
            let end = a.base.checked_add(a.bytes.len() as u64);
            if a.base % 4096 != 0 || end.is_none_or(|e| e > total_ram) || a.base < LOADER_AREA_END {
                return Err(format!(
                    "ACPI tables at {:#x} (+{:#x}) do not fit the RAM",
                    a.base,
                    a.bytes.len()
                ));
            }
            a.base
        }
    };
    let elf = ElfFile::new(image)?;
    let phdrs = elf.phdrs()?;
    let entry = elf
        .phys32_entry(&phdrs)
        .ok_or_else(|| String::from("no XEN_ELFNOTE_PHYS32_ENTRY note: not a PVH image"))?;
    let mut lo = u64::MAX;
    let mut hi = 0;
    for p in phdrs.iter().filter(|p| p.kind == PT_LOAD && p.memsz > 0) {
        let end = p
            .paddr
            .checked_add(p.memsz)
            .ok_or_else(|| String::from("a segment wraps around"))?;
        if p.filesz > p.memsz {
            return Err(format!(
                "segment at {:#x}: file size > memory size",
                p.paddr
            ));
        }
        if end > ram_bytes {
            return Err(format!(
                "segment {:#x}..{end:#x} does not fit the domain's {} MiB",
                p.paddr,
                ram_bytes >> 20
            ));
        }
        if p.paddr < LOADER_AREA_END && end > START_INFO_GPA {
            return Err(format!(
                "segment {:#x}..{end:#x} overlaps the start-info area",
                p.paddr
            ));
        }
        let from = usize::try_from(p.offset).map_err(|_| String::from("bad offset"))?;
        let data = from
            .checked_add(p.filesz as usize)
            .and_then(|e| image.get(from..e))
            .ok_or_else(|| format!("segment at {:#x} outside the file", p.paddr))?;
        mem.write_gpa(p.paddr, data)
            .map_err(|_| format!("segment at {:#x}: guest RAM missing", p.paddr))?;
        // The rest (bss) is already zero: guest RAM comes zeroed.
        lo = lo.min(p.paddr);
        hi = hi.max(end);
    }
    if hi == 0 {
        return Err("no loadable segment".into());
    }
    if entry < lo || entry >= hi {
        return Err(format!(
            "entry {entry:#x} is outside the image {lo:#x}..{hi:#x}"
        ));
    }

    let cmd = cmdline.as_bytes();
    if cmd.len() as u64 + 1 > LOADER_AREA_END - CMDLINE_GPA {
        return Err(format!("command line too long ({} bytes)", cmd.len()));
    }
    let err = |_| String::from("the start-info area is not guest RAM");
    mem.write_gpa(CMDLINE_GPA, cmd).map_err(err)?;
    mem.write_gpa(CMDLINE_GPA + cmd.len() as u64, &[0])
        .map_err(err)?;
    let mut mm = hvm_memmap_table_entry::new_zeroed();
    mm.addr = 0;
    mm.size = ram_bytes;
    mm.r#type = XEN_HVM_MEMMAP_TYPE_RAM;
    mem.write_gpa(MEMMAP_GPA, mm.as_bytes()).map_err(err)?;
    let mut memmap_entries = 1;
    if let Some(a) = acpi {
        mem.write_gpa(a.base, a.bytes)
            .map_err(|_| String::from("the ACPI area is not guest RAM"))?;
        let mut t = hvm_memmap_table_entry::new_zeroed();
        t.addr = a.base;
        t.size = total_ram - a.base;
        t.r#type = XEN_HVM_MEMMAP_TYPE_ACPI;
        let at = MEMMAP_GPA + core::mem::size_of::<hvm_memmap_table_entry>() as u64;
        mem.write_gpa(at, t.as_bytes()).map_err(err)?;
        memmap_entries = 2;
    }
    let mut si = hvm_start_info::new_zeroed();
    si.magic = XEN_HVM_START_MAGIC_VALUE;
    si.version = 1;
    si.flags = flags;
    si.cmdline_paddr = CMDLINE_GPA;
    si.memmap_paddr = MEMMAP_GPA;
    si.memmap_entries = memmap_entries;
    si.rsdp_paddr = acpi.map_or(0, |a| a.rsdp);
    mem.write_gpa(START_INFO_GPA, si.as_bytes()).map_err(err)?;
    Ok(Loaded {
        entry,
        start_info: START_INFO_GPA,
        image_start: lo,
        image_end: hi,
        ram_end: ram_bytes,
    })
}

/// Put `modules` (name, bytes) in the domain's RAM after the image, each
/// page-aligned, then the module list and the names (each module's command line
/// is its name), and point the start info at them (`nr_modules`,
/// `modlist_paddr`). Call after [`load`].
pub fn load_modules(
    mem: &mut dyn GuestMemory,
    ram_bytes: u64,
    loaded: &Loaded,
    modules: &[(&str, &[u8])],
) -> Result<(), String> {
    if modules.is_empty() {
        return Ok(());
    }
    let ram_bytes = ram_bytes.min(loaded.ram_end);
    let page = |a: u64| a.div_ceil(0x1000) * 0x1000;
    let mut at = page(loaded.image_end);
    let mut list = alloc::vec::Vec::new();
    for (name, data) in modules {
        let end = at
            .checked_add(data.len() as u64)
            .filter(|&e| e <= ram_bytes)
            .ok_or_else(|| format!("module `{name}` does not fit the domain's RAM"))?;
        mem.write_gpa(at, data)
            .map_err(|_| format!("module `{name}`: guest RAM missing"))?;
        list.push((at, data.len() as u64, *name));
        at = page(end);
    }
    let list_gpa = at;
    let mut names_gpa = list_gpa + (list.len() * core::mem::size_of::<hvm_modlist_entry>()) as u64;
    let names_len: u64 = list.iter().map(|(_, _, n)| n.len() as u64 + 1).sum();
    if names_gpa + names_len > ram_bytes {
        return Err("the module list does not fit the domain's RAM".into());
    }
    let err = |_| String::from("module list: guest RAM missing");
    for (i, (paddr, size, name)) in list.iter().enumerate() {
        let e = hvm_modlist_entry {
            paddr: *paddr,
            size: *size,
            cmdline_paddr: names_gpa,
            reserved: 0,
        };
        let slot = list_gpa + (i * core::mem::size_of::<hvm_modlist_entry>()) as u64;
        mem.write_gpa(slot, e.as_bytes()).map_err(err)?;
        mem.write_gpa(names_gpa, name.as_bytes()).map_err(err)?;
        mem.write_gpa(names_gpa + name.len() as u64, &[0])
            .map_err(err)?;
        names_gpa += name.len() as u64 + 1;
    }
    // nr_modules (offset 12) and modlist_paddr (offset 16) of the start info.
    mem.write_gpa(loaded.start_info + 12, &(list.len() as u32).to_le_bytes())
        .map_err(err)?;
    mem.write_gpa(loaded.start_info + 16, &list_gpa.to_le_bytes())
        .map_err(err)?;
    Ok(())
}
