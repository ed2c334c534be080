//! `xen/include/public/arch-x86/cpuid.h`: the hypervisor CPUID leaves at
//! 0x40000000 (possibly offset by a multiple of 0x100 when Viridian leaves sit
//! first) through which guests find Xen, its version, the hypercall page MSR and
//! the HVM feature bits.
//!
//! Leaves, relative to the base: 0 = max leaf + "XenVMMXenVMM" signature;
//! 1 = version (EAX = major << 16 | minor); 2 = hypercall pages (EAX), hypercall
//! MSR base (EBX), features; 3 = TSC; 4 = HVM features (EAX), vCPU id (EBX),
//! domid (ECX); 5 = PV parameters.

/// `XEN_CPUID_FIRST_LEAF`.
pub const XEN_CPUID_FIRST_LEAF: u32 = 0x4000_0000;

/// `XEN_CPUID_LEAF(i)`: leaf `i` relative to the first Xen leaf.
pub const fn XEN_CPUID_LEAF(i: u32) -> u32 {
    XEN_CPUID_FIRST_LEAF + i
}

/// `XEN_CPUID_SIGNATURE_EBX`: "XenV".
pub const XEN_CPUID_SIGNATURE_EBX: u32 = 0x566e_6558;
/// `XEN_CPUID_SIGNATURE_ECX`: "MMXe".
pub const XEN_CPUID_SIGNATURE_ECX: u32 = 0x6558_4d4d;
/// `XEN_CPUID_SIGNATURE_EDX`: "nVMM".
pub const XEN_CPUID_SIGNATURE_EDX: u32 = 0x4d4d_566e;

/// `_XEN_CPUID_FEAT1_MMU_PT_UPDATE_PRESERVE_AD` (leaf 2, ECX).
pub const _XEN_CPUID_FEAT1_MMU_PT_UPDATE_PRESERVE_AD: u32 = 0;
/// `XEN_CPUID_FEAT1_MMU_PT_UPDATE_PRESERVE_AD`.
pub const XEN_CPUID_FEAT1_MMU_PT_UPDATE_PRESERVE_AD: u32 =
    1 << _XEN_CPUID_FEAT1_MMU_PT_UPDATE_PRESERVE_AD;

/// `XEN_HVM_CPUID_APIC_ACCESS_VIRT` (leaf 4, EAX): virtualised APIC registers.
pub const XEN_HVM_CPUID_APIC_ACCESS_VIRT: u32 = 1 << 0;
/// `XEN_HVM_CPUID_X2APIC_VIRT`: virtualised x2APIC accesses.
pub const XEN_HVM_CPUID_X2APIC_VIRT: u32 = 1 << 1;
/// `XEN_HVM_CPUID_IOMMU_MAPPINGS`: foreign mappings have IOMMU entries.
pub const XEN_HVM_CPUID_IOMMU_MAPPINGS: u32 = 1 << 2;
/// `XEN_HVM_CPUID_VCPU_ID_PRESENT`: EBX holds the vCPU id.
pub const XEN_HVM_CPUID_VCPU_ID_PRESENT: u32 = 1 << 3;
/// `XEN_HVM_CPUID_DOMID_PRESENT`: ECX holds the domain id.
pub const XEN_HVM_CPUID_DOMID_PRESENT: u32 = 1 << 4;
/// `XEN_HVM_CPUID_EXT_DEST_ID`: 15-bit destination ids in IO-APIC RTEs / MSIs.
pub const XEN_HVM_CPUID_EXT_DEST_ID: u32 = 1 << 5;
/// `XEN_HVM_CPUID_UPCALL_VECTOR`: per-vCPU upcall vectors work with PIRQs.
pub const XEN_HVM_CPUID_UPCALL_VECTOR: u32 = 1 << 6;

/// `XEN_CPUID_MACHINE_ADDRESS_WIDTH_MASK` (leaf 5, EBX).
pub const XEN_CPUID_MACHINE_ADDRESS_WIDTH_MASK: u32 = 0xff;
/// `XEN_CPUID_MAX_NUM_LEAVES`: the highest leaf index (relative) Xen defines.
pub const XEN_CPUID_MAX_NUM_LEAVES: u32 = 5;

assert_flags!([
    XEN_CPUID_FEAT1_MMU_PT_UPDATE_PRESERVE_AD = 0,
    XEN_HVM_CPUID_APIC_ACCESS_VIRT = 0,
    XEN_HVM_CPUID_X2APIC_VIRT = 1,
    XEN_HVM_CPUID_IOMMU_MAPPINGS = 2,
    XEN_HVM_CPUID_VCPU_ID_PRESENT = 3,
    XEN_HVM_CPUID_DOMID_PRESENT = 4,
    XEN_HVM_CPUID_EXT_DEST_ID = 5,
    XEN_HVM_CPUID_UPCALL_VECTOR = 6,
]);
