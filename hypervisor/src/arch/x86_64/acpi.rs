//! ACPI through the `acpi` crate (5.2, without its allocator-based platform
//! parser, which needs nightly): find the MADT and walk its entries for the CPUs
//! (local APIC / x2APIC entries), the local APIC address and the I/O APICs.
//!
//! Mirrors Xen's `xen/arch/x86/acpi/boot.c` (`acpi_parse_madt`, `acpi_parse_lapic`).

use alloc::vec::Vec;
use core::ptr::NonNull;

use ::acpi::madt::{Madt, MadtEntry};
use ::acpi::{AcpiHandler, AcpiTables, PhysicalMapping};

use super::paging;

/// Maps ACPI tables through the hypervisor's physical-memory mapping.
#[derive(Clone, Copy)]
struct PhysMapHandler;

impl AcpiHandler for PhysMapHandler {
    unsafe fn map_physical_region<T>(&self, pa: usize, size: usize) -> PhysicalMapping<Self, T> {
        let va = paging::phys_to_virt(pa as u64).cast::<T>();
        // SAFETY: the physical map covers all RAM and the low 4 GiB, where firmware
        // puts ACPI tables; the pointer is never null (the map is in the upper half).
        unsafe { PhysicalMapping::new(pa, NonNull::new_unchecked(va), size, size, PhysMapHandler) }
    }

    fn unmap_physical_region<T>(_region: &PhysicalMapping<Self, T>) {}
}

/// One processor from the MADT.
#[derive(Clone, Copy, Debug)]
pub struct Cpu {
    pub acpi_id: u32,
    pub apic_id: u32,
}

/// What the MADT says.
#[derive(Debug)]
pub struct Platform {
    /// Enabled processors, in MADT order.
    pub cpus: Vec<Cpu>,
    pub lapic_addr: u64,
    /// I/O APIC base addresses.
    pub ioapics: Vec<u64>,
}

/// Parses the MADT, starting from the RSDP at physical `rsdp`.
pub fn parse(rsdp: u64) -> Result<Platform, &'static str> {
    // SAFETY: the bootloader reported this RSDP address; the crate validates the
    // signature and checksum before trusting it.
    let tables = unsafe { AcpiTables::from_rsdp(PhysMapHandler, rsdp as usize) }
        .map_err(|_| "invalid RSDP / root table")?;
    let madt = tables.find_table::<Madt>().map_err(|_| "no MADT")?;
    let mut p = Platform {
        cpus: Vec::new(),
        lapic_addr: madt.get().local_apic_address as u64,
        ioapics: Vec::new(),
    };
    for entry in madt.get().entries() {
        match entry {
            MadtEntry::LocalApic(e) => {
                let flags = e.flags;
                if flags & 1 != 0 {
                    p.cpus.push(Cpu {
                        acpi_id: e.processor_id as u32,
                        apic_id: e.apic_id as u32,
                    });
                }
            }
            MadtEntry::LocalX2Apic(e) => {
                let (flags, id, uid) = (e.flags, e.x2apic_id, e.processor_uid);
                if flags & 1 != 0 && !p.cpus.iter().any(|c| c.apic_id == id) {
                    p.cpus.push(Cpu {
                        acpi_id: uid,
                        apic_id: id,
                    });
                }
            }
            MadtEntry::IoApic(e) => p.ioapics.push(e.io_apic_address as u64),
            MadtEntry::LocalApicAddressOverride(e) => p.lapic_addr = e.local_apic_address,
            _ => {}
        }
    }
    Ok(p)
}
