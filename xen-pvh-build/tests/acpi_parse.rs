//! The PVH ACPI tables parsed back with the `acpi` crate (5.2, the parser the
//! hypervisor itself uses on the machine's tables): the RSDP and every table's
//! checksum are validated by the crate, and the MADT and DSDT say what was asked.

use std::ptr::NonNull;

use acpi::fadt::Fadt;
use acpi::madt::{Madt, MadtEntry};
use acpi::{AcpiHandler, AcpiTables, PhysicalMapping};
use xen_pvh_build::acpi::{build, lapic_id, Config, LAPIC_BASE};

/// "Guest memory": the blob at its base address.
#[derive(Clone)]
struct Blob {
    base: usize,
    bytes: &'static [u8],
}

impl AcpiHandler for Blob {
    unsafe fn map_physical_region<T>(&self, pa: usize, size: usize) -> PhysicalMapping<Self, T> {
        assert!(
            pa >= self.base && pa + size <= self.base + self.bytes.len(),
            "the parser read {pa:#x}+{size:#x} outside the tables"
        );
        let ptr = self.bytes[pa - self.base..].as_ptr() as *mut T;
        // SAFETY: inside the leaked, live blob (checked above).
        unsafe { PhysicalMapping::new(pa, NonNull::new(ptr).unwrap(), size, size, self.clone()) }
    }
    fn unmap_physical_region<T>(_region: &PhysicalMapping<Self, T>) {}
}

fn parse(cfg: &Config) -> (AcpiTables<Blob>, &'static [u8]) {
    let t = build(cfg).unwrap();
    assert_eq!(t.rsdp, cfg.base);
    let bytes: &'static [u8] = Box::leak(t.bytes.into_boxed_slice());
    let blob = Blob {
        base: cfg.base as usize,
        bytes,
    };
    // SAFETY: the handler only hands out pointers into the blob.
    let tables = unsafe { AcpiTables::from_rsdp(blob, t.rsdp as usize) }.expect("RSDP/XSDT");
    (tables, bytes)
}

fn sum(bytes: &[u8]) -> u8 {
    bytes.iter().fold(0u8, |a, &b| a.wrapping_add(b))
}

#[test]
fn every_table_parses_with_valid_checksums() {
    for vcpus in [1, 2, 4, 64, 128] {
        let cfg = Config {
            base: 0x0ff0_0000,
            vcpus,
            ioapic: false,
        };
        let (tables, bytes) = parse(&cfg);
        assert_eq!(tables.revision(), 2);
        // RSDP: both checksums.
        assert_eq!(sum(&bytes[..20]), 0);
        assert_eq!(sum(&bytes[..36]), 0);
        let sigs: Vec<String> = tables
            .headers()
            .map(|h| h.signature.as_str().to_string())
            .collect();
        assert_eq!(sigs, ["FACP", "APIC"]);
        // find_table validates each table's checksum.
        let fadt = tables.find_table::<Fadt>().expect("FADT");
        let flags = fadt.get().flags;
        assert!(flags.system_is_hw_reduced_acpi());
        let boot_arch = fadt.get().iapc_boot_arch;
        assert!(boot_arch.dont_probe_vga());
        assert!(boot_arch.use_time_and_alarm_namespace_for_rtc());
        assert!(!boot_arch.legacy_devices_are_accessible());
        assert!(!boot_arch.motherboard_implements_8042());
        let madt = tables.find_table::<Madt>().expect("MADT");
        let lapic_address = madt.get().local_apic_address;
        assert_eq!(lapic_address, LAPIC_BASE);
        let mut ids = Vec::new();
        for e in madt.get().entries() {
            match e {
                MadtEntry::LocalApic(l) => {
                    let flags = l.flags;
                    assert_eq!(flags & 1, 1);
                    assert_eq!(u32::from(l.apic_id), lapic_id(u32::from(l.processor_id)));
                    ids.push(u32::from(l.apic_id));
                }
                other => panic!("unexpected MADT entry {other:?}"),
            }
        }
        let want: Vec<u32> = (0..vcpus).map(lapic_id).collect();
        assert_eq!(ids, want);
        // The DSDT: its checksum, and one processor object per vCPU.
        let dsdt = tables.dsdt().expect("DSDT");
        let start = dsdt.address - 36 - cfg.base as usize;
        let len = dsdt.length as usize + 36;
        let table = &bytes[start..start + len];
        assert_eq!(&table[..4], b"DSDT");
        assert_eq!(sum(table), 0);
        for v in 0..vcpus {
            let name = format!("PR{v:02X}");
            let at = table
                .windows(4)
                .position(|w| w == name.as_bytes())
                .unwrap_or_else(|| panic!("{name} missing"));
            assert_eq!(
                &table[at - 3..at - 1],
                &[0x5b, 0x83],
                "{name} is a Processor"
            );
            assert_eq!(u32::from(table[at + 4]), v, "{name}'s processor id");
        }
        let next = format!("PR{vcpus:02X}");
        assert!(!table.windows(4).any(|w| w == next.as_bytes()));
    }
}

#[test]
fn io_apic_only_when_emulated() {
    let cfg = Config {
        base: 0x1000,
        vcpus: 2,
        ioapic: true,
    };
    let (tables, _) = parse(&cfg);
    let madt = tables.find_table::<Madt>().expect("MADT");
    let mut ioapics = 0;
    let mut overrides = 0;
    for e in madt.get().entries() {
        match e {
            MadtEntry::IoApic(io) => {
                ioapics += 1;
                let address = io.io_apic_address;
                assert_eq!(address, 0xfec0_0000);
            }
            MadtEntry::InterruptSourceOverride(o) => {
                overrides += 1;
                let (irq, gsi) = (o.irq, o.global_system_interrupt);
                assert_eq!((irq, gsi), (0, 2));
            }
            MadtEntry::LocalApic(_) => {}
            other => panic!("unexpected MADT entry {other:?}"),
        }
    }
    assert_eq!((ioapics, overrides), (1, 1));
}

/// A corrupted byte anywhere in a table makes the parser refuse it.
#[test]
fn a_flipped_byte_fails_the_checksum() {
    let cfg = Config {
        base: 0x2000,
        vcpus: 2,
        ioapic: false,
    };
    let t = build(&cfg).unwrap();
    let madt_at = t.bytes.windows(4).position(|w| w == b"APIC").unwrap();
    let mut bad = t.bytes.clone();
    bad[madt_at + 40] ^= 0x10;
    let bytes: &'static [u8] = Box::leak(bad.into_boxed_slice());
    let blob = Blob {
        base: 0x2000,
        bytes,
    };
    let tables = unsafe { AcpiTables::from_rsdp(blob, 0x2000) }.unwrap();
    assert!(tables.find_table::<Madt>().is_err());
}
