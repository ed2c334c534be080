//! ACPI tables for a PVH domain: RSDP, XSDT, FADT, MADT and a minimal DSDT, laid
//! out in one blob to be copied to guest-physical `base`.
//!
//! Follows Xen 4.17's libxl/libacpi for PVH guests (`tools/libacpi/build.c`,
//! `tools/libs/light/libxl_x86_acpi.c`): ACPI revision 5 tables with the "Xen"
//! OEM fields, one MADT local APIC entry per vCPU with APIC ID `2 * vcpu`
//! (libxl's `acpi_lapic_id`) at the local APIC base 0xfee00000, no I/O APIC
//! unless asked for, `Processor` objects `\_SB.PRxx` in the DSDT, no VGA and no
//! CMOS RTC in the FADT's boot flags.
//!
//! Deliberate difference: the FADT is hardware-reduced (`HW_REDUCED_ACPI`, no
//! PM1 / PM timer / GPE blocks, no FACS). libacpi fills in the PM1 blocks of
//! HVM's emulated ACPI PM device, which a PVH domain does not have; a
//! hardware-reduced FADT tells the guest so instead of having it probe I/O ports
//! nothing answers (see docs/linux.md).
//!
//! The MADT uses an x2APIC entry for an APIC ID above 254 (libacpi stops at
//! 128 vCPUs, which never needs one).

use alloc::vec::Vec;

/// Where the local APIC is (`LAPIC_BASE_ADDRESS`).
pub const LAPIC_BASE: u32 = 0xfee0_0000;
/// The I/O APIC base Xen emulates (`IOAPIC_BASE_ADDRESS`).
pub const IOAPIC_BASE: u32 = 0xfec0_0000;

/// libacpi's OEM fields.
const OEM_ID: &[u8; 6] = b"Xen\0\0\0";
const OEM_TABLE_ID: &[u8; 8] = b"HVM\0\0\0\0\0";
const OEM_REVISION: u32 = 0;
const CREATOR_ID: &[u8; 4] = b"HVML";
const CREATOR_REVISION: u32 = 0;

/// Offsets inside the blob (each table 16-byte aligned, as libacpi allocates).
const RSDP_LEN: usize = 36;
const HEADER_LEN: usize = 36;
/// The ACPI 5.0 FADT (up to `sleep_status_reg`).
const FADT_LEN: usize = 268;

/// FADT `flags`: `WBINVD`, `PROC_C1`, `HW_REDUCED_ACPI`, `PWR_BUTTON`,
/// `SLP_BUTTON` (no fixed buttons, as libxl asks without `ACPI_HAS_BUTTONS`).
const FADT_WBINVD: u32 = 1 << 0;
const FADT_PROC_C1: u32 = 1 << 2;
const FADT_PWR_BUTTON: u32 = 1 << 4;
const FADT_SLP_BUTTON: u32 = 1 << 5;
const FADT_HW_REDUCED_ACPI: u32 = 1 << 20;
/// FADT `iapc_boot_arch`: no VGA, no CMOS RTC.
const BOOT_ARCH_NO_VGA: u16 = 1 << 2;
const BOOT_ARCH_NO_CMOS_RTC: u16 = 1 << 5;

/// MADT flag `PCAT_COMPAT`, which libacpi always sets.
const MADT_PCAT_COMPAT: u32 = 1;
/// MADT entry flag: the processor is enabled.
const LAPIC_ENABLED: u32 = 1;

/// What the guest's tables describe.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Config {
    /// Guest-physical address the blob is copied to (16-byte aligned).
    pub base: u64,
    /// vCPUs (`max_vcpus`); all are listed and enabled.
    pub vcpus: u32,
    /// Whether an I/O APIC is emulated (`XEN_X86_EMU_IOAPIC`).
    pub ioapic: bool,
}

/// The built tables.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Tables {
    /// Copy these bytes to `Config::base`.
    pub bytes: Vec<u8>,
    /// Guest-physical address of the RSDP (`hvm_start_info.rsdp_paddr`).
    pub rsdp: u64,
}

/// Why the tables cannot be built.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Error {
    /// No vCPU, or more than the DSDT's two-hex-digit names allow (255).
    BadVcpuCount(u32),
    /// `base` is not 16-byte aligned or the tables would cross 4 GiB.
    BadBase(u64),
}

/// The APIC ID of `vcpu`, as Xen's vlapic and libxl's `acpi_lapic_id` number them.
pub fn lapic_id(vcpu: u32) -> u32 {
    vcpu * 2
}

/// Builds the tables for `cfg`.
pub fn build(cfg: &Config) -> Result<Tables, Error> {
    if cfg.vcpus == 0 || cfg.vcpus > 255 {
        return Err(Error::BadVcpuCount(cfg.vcpus));
    }
    if !cfg.base.is_multiple_of(16) {
        return Err(Error::BadBase(cfg.base));
    }
    let dsdt = dsdt(cfg.vcpus);
    let madt = madt(cfg);
    let xsdt_at = align16(RSDP_LEN);
    let xsdt_len = HEADER_LEN + 2 * 8;
    let fadt_at = align16(xsdt_at + xsdt_len);
    let madt_at = align16(fadt_at + FADT_LEN);
    let dsdt_at = align16(madt_at + madt.len());
    let total = dsdt_at + dsdt.len();
    if cfg
        .base
        .checked_add(total as u64)
        .is_none_or(|end| end > 1 << 32)
    {
        return Err(Error::BadBase(cfg.base));
    }
    let gpa = |off: usize| cfg.base + off as u64;

    let mut out = alloc::vec![0u8; total];
    // RSDP (ACPI 2.0+): no RSDT, the XSDT only.
    {
        let r = &mut out[..RSDP_LEN];
        r[..8].copy_from_slice(b"RSD PTR ");
        r[9..15].copy_from_slice(OEM_ID);
        r[15] = 2;
        r[20..24].copy_from_slice(&(RSDP_LEN as u32).to_le_bytes());
        r[24..32].copy_from_slice(&gpa(xsdt_at).to_le_bytes());
        r[8] = checksum(&r[..20]);
        r[32] = checksum(r);
    }
    // XSDT: FADT, MADT.
    {
        let t = &mut out[xsdt_at..xsdt_at + xsdt_len];
        header(t, b"XSDT", 1);
        t[36..44].copy_from_slice(&gpa(fadt_at).to_le_bytes());
        t[44..52].copy_from_slice(&gpa(madt_at).to_le_bytes());
        seal(t);
    }
    // FADT, revision 5, hardware-reduced.
    {
        let t = &mut out[fadt_at..fadt_at + FADT_LEN];
        header(t, b"FACP", 5);
        t[40..44].copy_from_slice(&(gpa(dsdt_at) as u32).to_le_bytes());
        t[96..98].copy_from_slice(&0x0fffu16.to_le_bytes()); // no C2
        t[98..100].copy_from_slice(&0x0fffu16.to_le_bytes()); // no C3
        t[109..111].copy_from_slice(&(BOOT_ARCH_NO_VGA | BOOT_ARCH_NO_CMOS_RTC).to_le_bytes());
        let flags =
            FADT_WBINVD | FADT_PROC_C1 | FADT_PWR_BUTTON | FADT_SLP_BUTTON | FADT_HW_REDUCED_ACPI;
        t[112..116].copy_from_slice(&flags.to_le_bytes());
        t[131] = 0; // FADT minor version (5.0)
        t[140..148].copy_from_slice(&gpa(dsdt_at).to_le_bytes());
        seal(t);
    }
    out[madt_at..madt_at + madt.len()].copy_from_slice(&madt);
    out[dsdt_at..].copy_from_slice(&dsdt);
    Ok(Tables {
        bytes: out,
        rsdp: cfg.base,
    })
}

fn align16(x: usize) -> usize {
    (x + 15) & !15
}

/// The byte that makes `bytes` sum to zero (with the checksum byte itself 0).
fn checksum(bytes: &[u8]) -> u8 {
    0u8.wrapping_sub(bytes.iter().fold(0u8, |a, &b| a.wrapping_add(b)))
}

/// Writes the standard header of a table spanning all of `t` (checksum 0).
fn header(t: &mut [u8], signature: &[u8; 4], revision: u8) {
    t[..4].copy_from_slice(signature);
    let len = t.len() as u32;
    t[4..8].copy_from_slice(&len.to_le_bytes());
    t[8] = revision;
    t[9] = 0;
    t[10..16].copy_from_slice(OEM_ID);
    t[16..24].copy_from_slice(OEM_TABLE_ID);
    t[24..28].copy_from_slice(&OEM_REVISION.to_le_bytes());
    t[28..32].copy_from_slice(CREATOR_ID);
    t[32..36].copy_from_slice(&CREATOR_REVISION.to_le_bytes());
}

/// Sets the header checksum of table `t`.
fn seal(t: &mut [u8]) {
    t[9] = 0;
    t[9] = checksum(t);
}

fn madt(cfg: &Config) -> Vec<u8> {
    let mut t = alloc::vec![0u8; HEADER_LEN + 8];
    t[36..40].copy_from_slice(&LAPIC_BASE.to_le_bytes());
    t[40..44].copy_from_slice(&MADT_PCAT_COMPAT.to_le_bytes());
    if cfg.ioapic {
        // I/O APIC (type 1): id 1, GSI base 0, and ISA IRQ 0 -> GSI 2 as
        // libacpi's interrupt source override.
        let mut e = [0u8; 12];
        e[0] = 1;
        e[1] = 12;
        e[2] = 1;
        e[4..8].copy_from_slice(&IOAPIC_BASE.to_le_bytes());
        t.extend_from_slice(&e);
        let mut o = [0u8; 10];
        o[0] = 2;
        o[1] = 10;
        o[3] = 0; // ISA IRQ 0
        o[4..8].copy_from_slice(&2u32.to_le_bytes()); // GSI 2
        t.extend_from_slice(&o);
    }
    for v in 0..cfg.vcpus {
        let id = lapic_id(v);
        if id < 255 {
            // Processor local APIC (type 0).
            let mut e = [0u8; 8];
            e[0] = 0;
            e[1] = 8;
            e[2] = v as u8;
            e[3] = id as u8;
            e[4..8].copy_from_slice(&LAPIC_ENABLED.to_le_bytes());
            t.extend_from_slice(&e);
        } else {
            // Processor local x2APIC (type 9).
            let mut e = [0u8; 16];
            e[0] = 9;
            e[1] = 16;
            e[4..8].copy_from_slice(&id.to_le_bytes());
            e[8..12].copy_from_slice(&LAPIC_ENABLED.to_le_bytes());
            e[12..16].copy_from_slice(&v.to_le_bytes());
            t.extend_from_slice(&e);
        }
    }
    let len = t.len();
    header(&mut t[..len], b"APIC", 3);
    seal(&mut t);
    t
}

/// AML `PkgLength` for a package whose contents (after the PkgLength) are
/// `body` bytes long.
fn pkg_length(body: usize) -> Vec<u8> {
    // The encoded length counts its own bytes.
    if body + 1 < 0x40 {
        return alloc::vec![(body + 1) as u8];
    }
    let mut n = 2;
    while n < 4 && body + n >= 1 << (4 + 8 * (n - 1)) {
        n += 1;
    }
    let len = body + n;
    let mut out = alloc::vec![(((n - 1) << 6) as u8) | (len & 0xf) as u8];
    for i in 1..n {
        out.push((len >> (4 + 8 * (i - 1))) as u8);
    }
    out
}

fn hex_digit(n: u32) -> u8 {
    b"0123456789ABCDEF"[(n & 0xf) as usize]
}

/// The DSDT: `Scope (\_SB) { Processor (PRxx, xx, 0, 0) ... }`, one per vCPU,
/// with the MADT's processor IDs.
fn dsdt(vcpus: u32) -> Vec<u8> {
    let mut procs = Vec::new();
    for v in 0..vcpus {
        // ProcessorOp: ExtOpPrefix 0x5b 0x83, PkgLength, NameSeg, ProcID,
        // PblkAddr (DWord), PblkLen.
        let mut body = alloc::vec![b'P', b'R', hex_digit(v >> 4), hex_digit(v)];
        body.push(v as u8);
        body.extend_from_slice(&0u32.to_le_bytes());
        body.push(0);
        procs.extend_from_slice(&[0x5b, 0x83]);
        procs.extend_from_slice(&pkg_length(body.len()));
        procs.extend_from_slice(&body);
    }
    // ScopeOp 0x10, PkgLength, NameString `\_SB_`.
    let mut scope_body = alloc::vec![b'\\', b'_', b'S', b'B', b'_'];
    scope_body.extend_from_slice(&procs);
    let mut t = alloc::vec![0u8; HEADER_LEN];
    t.push(0x10);
    t.extend_from_slice(&pkg_length(scope_body.len()));
    t.extend_from_slice(&scope_body);
    let len = t.len();
    // Revision 2: 64-bit AML integers.
    header(&mut t[..len], b"DSDT", 2);
    seal(&mut t);
    t
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pkg_length_encodings() {
        assert_eq!(pkg_length(0), [1]);
        assert_eq!(pkg_length(0x3e), [0x3f]);
        // 0x3f + 2 = 0x41: two bytes, low nibble 1, then 0x04.
        assert_eq!(pkg_length(0x3f), [0x41, 0x04]);
        // 4093 + 2 = 4095 = 0xfff still fits two bytes; 4094 + 3 needs three.
        assert_eq!(pkg_length(4093), [0x4f, 0xff]);
        assert_eq!(pkg_length(4094), [0x80 | 0x1, 0x00, 0x01]);
    }

    #[test]
    fn checksums_sum_to_zero() {
        let data = [1u8, 2, 3, 250];
        let c = checksum(&data);
        let sum = data.iter().fold(c, |a, &b| a.wrapping_add(b));
        assert_eq!(sum, 0);
    }

    #[test]
    fn refuses_bad_configs() {
        let cfg = |base, vcpus| Config {
            base,
            vcpus,
            ioapic: false,
        };
        assert_eq!(build(&cfg(0x1000, 0)), Err(Error::BadVcpuCount(0)));
        assert_eq!(build(&cfg(0x1000, 256)), Err(Error::BadVcpuCount(256)));
        assert_eq!(build(&cfg(0x1008, 1)), Err(Error::BadBase(0x1008)));
        assert_eq!(
            build(&cfg(0xffff_ff00, 1)),
            Err(Error::BadBase(0xffff_ff00))
        );
    }
}
