//! Just enough ELF64 reading for the kernel's own image (the whole ELF file the
//! bootloader left in memory): the program headers, to rebuild the kernel's
//! mappings, and `.symtab`/`.strtab`, to symbolise backtraces. Only reads; every
//! offset is bounds-checked, so a truncated image gives `None`, not a fault.

/// A loadable segment (`PT_LOAD`).
#[derive(Clone, Copy, Debug)]
pub struct Segment {
    pub vaddr: u64,
    pub memsz: u64,
    pub writable: bool,
    pub executable: bool,
}

/// The kernel's ELF file.
#[derive(Clone, Copy)]
pub struct Elf {
    bytes: &'static [u8],
}

const PT_LOAD: u32 = 1;
const SHT_SYMTAB: u32 = 2;
const STT_FUNC: u8 = 2;

impl Elf {
    /// Wraps the bytes if they start with the ELF64 little-endian magic.
    pub fn new(bytes: &'static [u8]) -> Option<Self> {
        (bytes.len() >= 64 && bytes[..4] == *b"\x7fELF" && bytes[4] == 2 && bytes[5] == 1)
            .then_some(Elf { bytes })
    }

    /// `N` bytes at `base + add`, `None` if outside the file (or overflowing).
    fn bytes_at<const N: usize>(&self, base: usize, add: usize) -> Option<[u8; N]> {
        let start = base.checked_add(add)?;
        self.bytes
            .get(start..start.checked_add(N)?)?
            .try_into()
            .ok()
    }
    fn u16_at(&self, base: usize, add: usize) -> Option<u16> {
        self.bytes_at(base, add).map(u16::from_le_bytes)
    }
    fn u32_at(&self, base: usize, add: usize) -> Option<u32> {
        self.bytes_at(base, add).map(u32::from_le_bytes)
    }
    fn u64_at(&self, base: usize, add: usize) -> Option<u64> {
        self.bytes_at(base, add).map(u64::from_le_bytes)
    }

    /// The `PT_LOAD` segments (at most 64 program headers are looked at).
    pub fn load_segments(&self) -> impl Iterator<Item = Segment> + '_ {
        let phoff = self.u64_at(0x20, 0).unwrap_or(0) as usize;
        let phentsize = self.u16_at(0x36, 0).unwrap_or(0) as usize;
        let phnum = self.u16_at(0x38, 0).unwrap_or(0) as usize;
        (0..phnum.min(64)).filter_map(move |i| {
            let ph = phoff.checked_add(i.checked_mul(phentsize)?)?;
            if self.u32_at(ph, 0)? != PT_LOAD {
                return None;
            }
            let flags = self.u32_at(ph, 4)?;
            Some(Segment {
                vaddr: self.u64_at(ph, 16)?,
                memsz: self.u64_at(ph, 40)?,
                writable: flags & 2 != 0,
                executable: flags & 1 != 0,
            })
        })
    }

    /// The function symbol containing link-time address `addr`: (mangled name,
    /// offset into it). Falls back to the nearest function below `addr`.
    pub fn symbolize(&self, addr: u64) -> Option<(&'static str, u64)> {
        let shoff = self.u64_at(0x28, 0)? as usize;
        let shentsize = self.u16_at(0x3A, 0)? as usize;
        let shnum = self.u16_at(0x3C, 0)? as usize;
        let sh = |i: usize| shoff.checked_add(i.checked_mul(shentsize)?);
        let symtab = (0..shnum).find_map(|i| {
            let s = sh(i)?;
            (self.u32_at(s, 4)? == SHT_SYMTAB).then_some(s)
        })?;
        let sym_off = self.u64_at(symtab, 24)? as usize;
        let sym_size = self.u64_at(symtab, 32)? as usize;
        let strtab = sh(self.u32_at(symtab, 40)? as usize)?;
        let str_off = self.u64_at(strtab, 24)? as usize;
        let str_size = self.u64_at(strtab, 32)? as usize;
        let strs = self.bytes.get(str_off..str_off.checked_add(str_size)?)?;
        let mut best: Option<(u64, u32)> = None; // (value, name offset)
        for i in 0..sym_size / 24 {
            let s = sym_off.checked_add(i * 24)?;
            let [info] = self.bytes_at::<1>(s, 4)?;
            if info & 0xF != STT_FUNC {
                continue;
            }
            let value = self.u64_at(s, 8)?;
            let size = self.u64_at(s, 16)?;
            if value > addr || value == 0 {
                continue;
            }
            if addr < value.saturating_add(size.max(1)) {
                best = Some((value, self.u32_at(s, 0)?));
                break;
            }
            if best.is_none_or(|(v, _)| value > v) {
                best = Some((value, self.u32_at(s, 0)?));
            }
        }
        let (value, name) = best?;
        let name = strs.get(name as usize..)?;
        let end = name.iter().position(|&b| b == 0)?;
        Some((core::str::from_utf8(&name[..end]).ok()?, addr - value))
    }
}
