//! The PVH start-of-day structures: `struct hvm_start_info` (its physical address
//! is in EBX at the 32-bit `XEN_ELFNOTE_PHYS32_ENTRY`), the module list and the
//! memory map. Upstream calls the header `hvm/start_info.h`; Xen 4.17 installs it
//! as `xen/include/public/arch-x86/hvm/start_info.h`.
//!
//! Version 0 has the fields up to `rsdp_paddr`; version 1 adds the memory map.
//! An address of 0 means "not present".

/// `XEN_HVM_START_MAGIC_VALUE`: `hvm_start_info.magic`.
pub const XEN_HVM_START_MAGIC_VALUE: u32 = 0x336e_c578;

/// `XEN_HVM_MEMMAP_TYPE_RAM` (E820 types).
pub const XEN_HVM_MEMMAP_TYPE_RAM: u32 = 1;
/// `XEN_HVM_MEMMAP_TYPE_RESERVED`.
pub const XEN_HVM_MEMMAP_TYPE_RESERVED: u32 = 2;
/// `XEN_HVM_MEMMAP_TYPE_ACPI`.
pub const XEN_HVM_MEMMAP_TYPE_ACPI: u32 = 3;
/// `XEN_HVM_MEMMAP_TYPE_NVS`.
pub const XEN_HVM_MEMMAP_TYPE_NVS: u32 = 4;
/// `XEN_HVM_MEMMAP_TYPE_UNUSABLE`.
pub const XEN_HVM_MEMMAP_TYPE_UNUSABLE: u32 = 5;
/// `XEN_HVM_MEMMAP_TYPE_DISABLED`.
pub const XEN_HVM_MEMMAP_TYPE_DISABLED: u32 = 6;
/// `XEN_HVM_MEMMAP_TYPE_PMEM`.
pub const XEN_HVM_MEMMAP_TYPE_PMEM: u32 = 7;

abi_struct! {
    /// `struct hvm_start_info`.
    pub struct hvm_start_info [size 56, align 8] {
        /// `XEN_HVM_START_MAGIC_VALUE`.
        0 => magic: u32,
        /// 0 or 1 (1: `memmap_*` valid).
        4 => version: u32,
        /// `SIF_*` (from `xen.h`).
        8 => flags: u32,
        /// Entries in the module list.
        12 => nr_modules: u32,
        /// Physical address of `hvm_modlist_entry[nr_modules]`.
        16 => modlist_paddr: u64,
        /// Physical address of the NUL-terminated command line.
        24 => cmdline_paddr: u64,
        /// Physical address of the ACPI RSDP.
        32 => rsdp_paddr: u64,
        /// Version 1: physical address of `hvm_memmap_table_entry[memmap_entries]`.
        40 => memmap_paddr: u64,
        /// Version 1.
        48 => memmap_entries: u32,
        52 => reserved: u32,
    }
}

abi_struct! {
    /// `struct hvm_modlist_entry`: one boot module.
    pub struct hvm_modlist_entry [size 32, align 8] {
        0 => paddr: u64,
        8 => size: u64,
        /// Physical address of the module's command line (0 = none).
        16 => cmdline_paddr: u64,
        24 => reserved: u64,
    }
}

abi_struct! {
    /// `struct hvm_memmap_table_entry`: one E820-style memory range.
    pub struct hvm_memmap_table_entry [size 24, align 8] {
        0 => addr: u64,
        8 => size: u64,
        /// `XEN_HVM_MEMMAP_TYPE_*`.
        16 => r#type: u32,
        20 => reserved: u32,
    }
}
