//! The memory map a direct (PVH) boot hands over, normalised into what the
//! `bootloader` 0.11 path gives the kernel: RAM the kernel may use (`Usable`,
//! page-aligned inwards, never overlapping anything else), what the loader put in
//! RAM (`Loader`: the hypervisor image, the ramdisk, the start-info pages) and
//! firmware regions with their E820 type. Pure logic, no allocation (it runs
//! before the heap exists): host-tested in `tests/arch_parsers.rs`.
//!
//! Plays the part of Xen's `xen/arch/x86/e820.c` sanitising at a much smaller scale.

/// What a region holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// Free RAM.
    Usable,
    /// RAM the loader filled (kernel image, modules, boot data): not to be reused.
    Loader,
    /// Anything else, with its E820 type (2 reserved, 3 ACPI, 4 NVS, ...).
    Firmware(u32),
}

/// One region, `[start, end)`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Region {
    pub start: u64,
    pub end: u64,
    pub kind: Kind,
}

const PAGE: u64 = 4096;
/// E820 type of RAM.
const E820_RAM: u32 = 1;

/// Appends `r` to `out[..*n]`.
fn push(out: &mut [Region], n: &mut usize, r: Region) -> Result<(), &'static str> {
    let slot = out.get_mut(*n).ok_or("memory map too fragmented")?;
    *slot = r;
    *n += 1;
    Ok(())
}

/// Removes `[s, e)` from every usable region in `out[..*n]`; with `loader`, the
/// removed part becomes a `Loader` region.
fn carve(
    out: &mut [Region],
    n: &mut usize,
    s: u64,
    e: u64,
    loader: bool,
) -> Result<(), &'static str> {
    let mut i = 0;
    while i < *n {
        let r = out[i];
        if r.kind != Kind::Usable || r.end <= s || e <= r.start {
            i += 1;
            continue;
        }
        // Swap-remove `r` (index `i` now holds an unexamined region), then
        // append what is left of it; none of the pieces overlaps `[s, e)`.
        *n -= 1;
        out[i] = out[*n];
        if r.start < s {
            push(out, n, Region { end: s, ..r })?;
        }
        if e < r.end {
            push(out, n, Region { start: e, ..r })?;
        }
        if loader {
            let part = Region {
                start: r.start.max(s),
                end: r.end.min(e),
                kind: Kind::Loader,
            };
            push(out, n, part)?;
        }
    }
    Ok(())
}

/// Normalises `e820` (address, length, E820 type) into `out`, taking the
/// `loaded` ranges (start, end) out of the usable RAM, and returns how many
/// regions it wrote, sorted by start. Usable RAM shrinks to whole pages; where
/// the map lists RAM and a firmware region over the same bytes, the firmware
/// wins; `loaded` ranges grow to whole pages.
pub fn normalise(
    e820: impl Iterator<Item = (u64, u64, u32)>,
    loaded: &[(u64, u64)],
    out: &mut [Region],
) -> Result<usize, &'static str> {
    let mut n = 0;
    for (addr, len, ty) in e820 {
        if len == 0 {
            continue;
        }
        let end = addr.checked_add(len).ok_or("memory map entry wraps")?;
        let r = if ty == E820_RAM {
            let start = addr
                .checked_next_multiple_of(PAGE)
                .ok_or("memory map entry wraps")?;
            let end = end & !(PAGE - 1);
            if start >= end {
                continue;
            }
            Region {
                start,
                end,
                kind: Kind::Usable,
            }
        } else {
            Region {
                start: addr,
                end,
                kind: Kind::Firmware(ty),
            }
        };
        push(out, &mut n, r)?;
    }
    // Firmware regions win over RAM listed on the same bytes. They are moved to
    // the front first: `carve` only swap-removes usable regions (with ones from
    // the back), so the firmware regions stay at `..firmware` while it runs.
    let mut firmware = 0;
    for i in 0..n {
        if matches!(out[i].kind, Kind::Firmware(_)) {
            out.swap(firmware, i);
            firmware += 1;
        }
    }
    for i in 0..firmware {
        let r = out[i];
        carve(out, &mut n, r.start, r.end, false)?;
    }
    // ... then what the loader placed.
    for &(s, e) in loaded {
        if s < e {
            carve(
                out,
                &mut n,
                s & !(PAGE - 1),
                e.saturating_add(PAGE - 1) & !(PAGE - 1),
                true,
            )?;
        }
    }
    let regions = &mut out[..n];
    // Insertion sort: a few dozen entries, no allocation.
    for i in 1..regions.len() {
        let mut j = i;
        while j > 0 && regions[j - 1].start > regions[j].start {
            regions.swap(j - 1, j);
            j -= 1;
        }
    }
    Ok(n)
}
