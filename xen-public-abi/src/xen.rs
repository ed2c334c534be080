//! `xen/include/public/xen.h`: hypercall numbers, domain ids, VIRQs, the
//! `shared_info` page with its `vcpu_info` slots and time records, `start_info`
//! flags and the guest-handle convention (x86-64 layout).

pub use crate::arch_x86::{
    arch_shared_info, arch_vcpu_info, xen_callback_t, xen_pfn_t, xen_ulong_t, XEN_LEGACY_MAX_VCPUS,
};

/// `XEN_GUEST_HANDLE_64(T)` (and `XEN_GUEST_HANDLE(T)` on x86-64): a guest-virtual
/// pointer to `T`, passed as a plain 64-bit value; read it through the
/// hypervisor's `copy_from_guest`, never dereference it.
pub type XEN_GUEST_HANDLE_64 = u64;

// ---- hypercall numbers -----------------------------------------------------------

/// `__HYPERVISOR_set_trap_table`.
pub const __HYPERVISOR_set_trap_table: u32 = 0;
/// `__HYPERVISOR_mmu_update`.
pub const __HYPERVISOR_mmu_update: u32 = 1;
/// `__HYPERVISOR_set_gdt`.
pub const __HYPERVISOR_set_gdt: u32 = 2;
/// `__HYPERVISOR_stack_switch`.
pub const __HYPERVISOR_stack_switch: u32 = 3;
/// `__HYPERVISOR_set_callbacks`.
pub const __HYPERVISOR_set_callbacks: u32 = 4;
/// `__HYPERVISOR_fpu_taskswitch`.
pub const __HYPERVISOR_fpu_taskswitch: u32 = 5;
/// `__HYPERVISOR_sched_op_compat` (obsolete since 3.1).
pub const __HYPERVISOR_sched_op_compat: u32 = 6;
/// `__HYPERVISOR_platform_op`.
pub const __HYPERVISOR_platform_op: u32 = 7;
/// `__HYPERVISOR_set_debugreg`.
pub const __HYPERVISOR_set_debugreg: u32 = 8;
/// `__HYPERVISOR_get_debugreg`.
pub const __HYPERVISOR_get_debugreg: u32 = 9;
/// `__HYPERVISOR_update_descriptor`.
pub const __HYPERVISOR_update_descriptor: u32 = 10;
/// `__HYPERVISOR_memory_op`: `XENMEM_*`.
pub const __HYPERVISOR_memory_op: u32 = 12;
/// `__HYPERVISOR_multicall`.
pub const __HYPERVISOR_multicall: u32 = 13;
/// `__HYPERVISOR_update_va_mapping`.
pub const __HYPERVISOR_update_va_mapping: u32 = 14;
/// `__HYPERVISOR_set_timer_op`.
pub const __HYPERVISOR_set_timer_op: u32 = 15;
/// `__HYPERVISOR_event_channel_op_compat` (obsolete since 3.2.2).
pub const __HYPERVISOR_event_channel_op_compat: u32 = 16;
/// `__HYPERVISOR_xen_version`: `XENVER_*`.
pub const __HYPERVISOR_xen_version: u32 = 17;
/// `__HYPERVISOR_console_io`: `CONSOLEIO_*`.
pub const __HYPERVISOR_console_io: u32 = 18;
/// `__HYPERVISOR_physdev_op_compat` (obsolete since 3.2.2).
pub const __HYPERVISOR_physdev_op_compat: u32 = 19;
/// `__HYPERVISOR_grant_table_op`.
pub const __HYPERVISOR_grant_table_op: u32 = 20;
/// `__HYPERVISOR_vm_assist`.
pub const __HYPERVISOR_vm_assist: u32 = 21;
/// `__HYPERVISOR_update_va_mapping_otherdomain`.
pub const __HYPERVISOR_update_va_mapping_otherdomain: u32 = 22;
/// `__HYPERVISOR_iret` (x86 PV only).
pub const __HYPERVISOR_iret: u32 = 23;
/// `__HYPERVISOR_vcpu_op`: `VCPUOP_*`.
pub const __HYPERVISOR_vcpu_op: u32 = 24;
/// `__HYPERVISOR_set_segment_base` (x86-64 PV only).
pub const __HYPERVISOR_set_segment_base: u32 = 25;
/// `__HYPERVISOR_mmuext_op`.
pub const __HYPERVISOR_mmuext_op: u32 = 26;
/// `__HYPERVISOR_xsm_op`.
pub const __HYPERVISOR_xsm_op: u32 = 27;
/// `__HYPERVISOR_nmi_op`.
pub const __HYPERVISOR_nmi_op: u32 = 28;
/// `__HYPERVISOR_sched_op`: `SCHEDOP_*`.
pub const __HYPERVISOR_sched_op: u32 = 29;
/// `__HYPERVISOR_callback_op`.
pub const __HYPERVISOR_callback_op: u32 = 30;
/// `__HYPERVISOR_xenoprof_op`.
pub const __HYPERVISOR_xenoprof_op: u32 = 31;
/// `__HYPERVISOR_event_channel_op`: `EVTCHNOP_*`.
pub const __HYPERVISOR_event_channel_op: u32 = 32;
/// `__HYPERVISOR_physdev_op`.
pub const __HYPERVISOR_physdev_op: u32 = 33;
/// `__HYPERVISOR_hvm_op`: `HVMOP_*`.
pub const __HYPERVISOR_hvm_op: u32 = 34;
/// `__HYPERVISOR_sysctl`.
pub const __HYPERVISOR_sysctl: u32 = 35;
/// `__HYPERVISOR_domctl`: `XEN_DOMCTL_*`.
pub const __HYPERVISOR_domctl: u32 = 36;
/// `__HYPERVISOR_kexec_op`.
pub const __HYPERVISOR_kexec_op: u32 = 37;
/// `__HYPERVISOR_tmem_op`.
pub const __HYPERVISOR_tmem_op: u32 = 38;
/// `__HYPERVISOR_argo_op`.
pub const __HYPERVISOR_argo_op: u32 = 39;
/// `__HYPERVISOR_xenpmu_op`.
pub const __HYPERVISOR_xenpmu_op: u32 = 40;
/// `__HYPERVISOR_dm_op`.
pub const __HYPERVISOR_dm_op: u32 = 41;
/// `__HYPERVISOR_hypfs_op`.
pub const __HYPERVISOR_hypfs_op: u32 = 42;
/// `__HYPERVISOR_arch_0`: architecture-specific hypercalls 48..=55.
pub const __HYPERVISOR_arch_0: u32 = 48;
/// `__HYPERVISOR_arch_1` (x86: `mca`).
pub const __HYPERVISOR_arch_1: u32 = 49;
/// `__HYPERVISOR_arch_2`.
pub const __HYPERVISOR_arch_2: u32 = 50;
/// `__HYPERVISOR_arch_3`.
pub const __HYPERVISOR_arch_3: u32 = 51;
/// `__HYPERVISOR_arch_4`.
pub const __HYPERVISOR_arch_4: u32 = 52;
/// `__HYPERVISOR_arch_5`.
pub const __HYPERVISOR_arch_5: u32 = 53;
/// `__HYPERVISOR_arch_6`.
pub const __HYPERVISOR_arch_6: u32 = 54;
/// `__HYPERVISOR_arch_7`.
pub const __HYPERVISOR_arch_7: u32 = 55;

// ---- virtual IRQs ----------------------------------------------------------------

/// `VIRQ_TIMER` (per vCPU): timer tick / timeout.
pub const VIRQ_TIMER: u32 = 0;
/// `VIRQ_DEBUG` (per vCPU): dump debug info.
pub const VIRQ_DEBUG: u32 = 1;
/// `VIRQ_CONSOLE` (global, dom0): emergency console input.
pub const VIRQ_CONSOLE: u32 = 2;
/// `VIRQ_DOM_EXC` (global, dom0): a domain needs attention (e.g. died).
pub const VIRQ_DOM_EXC: u32 = 3;
/// `VIRQ_TBUF` (global): trace buffer records.
pub const VIRQ_TBUF: u32 = 4;
/// `VIRQ_DEBUGGER` (global): a domain paused for debugging.
pub const VIRQ_DEBUGGER: u32 = 6;
/// `VIRQ_XENOPROF` (per vCPU).
pub const VIRQ_XENOPROF: u32 = 7;
/// `VIRQ_CON_RING` (global, dom0): console ring bytes.
pub const VIRQ_CON_RING: u32 = 8;
/// `VIRQ_PCPU_STATE` (global, dom0).
pub const VIRQ_PCPU_STATE: u32 = 9;
/// `VIRQ_MEM_EVENT` (global, dom0).
pub const VIRQ_MEM_EVENT: u32 = 10;
/// `VIRQ_ARGO` (global).
pub const VIRQ_ARGO: u32 = 11;
/// `VIRQ_ENOMEM` (global, dom0): Xen heap is low.
pub const VIRQ_ENOMEM: u32 = 12;
/// `VIRQ_XENPMU` (per vCPU).
pub const VIRQ_XENPMU: u32 = 13;
/// `VIRQ_ARCH_0`: architecture-specific VIRQs 16..=23.
pub const VIRQ_ARCH_0: u32 = 16;
/// `VIRQ_ARCH_1`.
pub const VIRQ_ARCH_1: u32 = 17;
/// `VIRQ_ARCH_2`.
pub const VIRQ_ARCH_2: u32 = 18;
/// `VIRQ_ARCH_3`.
pub const VIRQ_ARCH_3: u32 = 19;
/// `VIRQ_ARCH_4`.
pub const VIRQ_ARCH_4: u32 = 20;
/// `VIRQ_ARCH_5`.
pub const VIRQ_ARCH_5: u32 = 21;
/// `VIRQ_ARCH_6`.
pub const VIRQ_ARCH_6: u32 = 22;
/// `VIRQ_ARCH_7`.
pub const VIRQ_ARCH_7: u32 = 23;
/// `NR_VIRQS`: VIRQ numbers are below this.
pub const NR_VIRQS: u32 = 24;

// ---- console_io, vm_assist -------------------------------------------------------

/// `CONSOLEIO_write`.
pub const CONSOLEIO_write: u32 = 0;
/// `CONSOLEIO_read`.
pub const CONSOLEIO_read: u32 = 1;

/// `VMASST_CMD_enable`.
pub const VMASST_CMD_enable: u32 = 0;
/// `VMASST_CMD_disable`.
pub const VMASST_CMD_disable: u32 = 1;
/// `VMASST_TYPE_4gb_segments`.
pub const VMASST_TYPE_4gb_segments: u32 = 0;
/// `VMASST_TYPE_4gb_segments_notify`.
pub const VMASST_TYPE_4gb_segments_notify: u32 = 1;
/// `VMASST_TYPE_writable_pagetables`.
pub const VMASST_TYPE_writable_pagetables: u32 = 2;
/// `VMASST_TYPE_pae_extended_cr3`.
pub const VMASST_TYPE_pae_extended_cr3: u32 = 3;
/// `VMASST_TYPE_architectural_iopl`.
pub const VMASST_TYPE_architectural_iopl: u32 = 4;
/// `VMASST_TYPE_runstate_update_flag`.
pub const VMASST_TYPE_runstate_update_flag: u32 = 5;
/// `VMASST_TYPE_m2p_strict`.
pub const VMASST_TYPE_m2p_strict: u32 = 32;

// ---- domain ids ------------------------------------------------------------------

/// `domid_t`.
pub type domid_t = u16;

/// `DOMID_FIRST_RESERVED`: ids from here up are not real domains.
pub const DOMID_FIRST_RESERVED: domid_t = 0x7FF0;
/// `DOMID_SELF`: the calling domain.
pub const DOMID_SELF: domid_t = 0x7FF0;
/// `DOMID_IO`: owner of I/O memory.
pub const DOMID_IO: domid_t = 0x7FF1;
/// `DOMID_XEN`: owner of Xen's own pages.
pub const DOMID_XEN: domid_t = 0x7FF2;
/// `DOMID_COW`: owner of shared (copy-on-write) pages.
pub const DOMID_COW: domid_t = 0x7FF3;
/// `DOMID_INVALID`.
pub const DOMID_INVALID: domid_t = 0x7FF4;
/// `DOMID_IDLE`: the idle domain.
pub const DOMID_IDLE: domid_t = 0x7FFF;
/// `DOMID_MASK`.
pub const DOMID_MASK: domid_t = 0x7FFF;

/// A domain id, typed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct DomId(pub domid_t);

impl DomId {
    /// `DOMID_SELF`.
    pub const SELF: DomId = DomId(DOMID_SELF);
    /// `DOMID_INVALID`.
    pub const INVALID: DomId = DomId(DOMID_INVALID);

    /// True for ids a real domain can have (below `DOMID_FIRST_RESERVED`).
    pub const fn is_normal(self) -> bool {
        self.0 < DOMID_FIRST_RESERVED
    }
}

impl From<domid_t> for DomId {
    fn from(v: domid_t) -> Self {
        DomId(v)
    }
}

impl From<DomId> for domid_t {
    fn from(d: DomId) -> Self {
        d.0
    }
}

/// `xen_domain_handle_t`: the toolstack's 16-byte UUID for a domain.
pub type xen_domain_handle_t = [u8; 16];

abi_struct! {
    /// `xen_uuid_t`.
    pub struct xen_uuid_t [size 16, align 1] {
        0 => a: [u8; 16],
    }
}

abi_struct! {
    /// `struct mmu_update`: one `__HYPERVISOR_mmu_update` request (PV).
    pub struct mmu_update [size 16, align 8] {
        0 => ptr: u64,
        8 => val: u64,
    }
}

abi_struct! {
    /// `struct multicall_entry`: one call of a `__HYPERVISOR_multicall` batch.
    pub struct multicall_entry [size 64, align 8] {
        0 => op: xen_ulong_t,
        8 => result: xen_ulong_t,
        16 => args: [xen_ulong_t; 6],
    }
}

// ---- time ------------------------------------------------------------------------

abi_struct! {
    /// `struct vcpu_time_info`: a vCPU's pvclock record. `version` is odd while
    /// Xen updates the record (a seqlock).
    pub struct vcpu_time_info [size 32, align 8] {
        0 => version: u32,
        4 => pad0: u32,
        /// TSC at the last update.
        8 => tsc_timestamp: u64,
        /// Nanoseconds since boot at `tsc_timestamp`.
        16 => system_time: u64,
        /// ns = ((tsc - tsc_timestamp) << tsc_shift) * tsc_to_system_mul >> 32.
        24 => tsc_to_system_mul: u32,
        28 => tsc_shift: i8,
        /// `XEN_PVCLOCK_*`.
        29 => flags: u8,
        30 => pad1: [u8; 2],
    }
}

/// `XEN_PVCLOCK_TSC_STABLE_BIT`: the TSC is stable across vCPUs.
pub const XEN_PVCLOCK_TSC_STABLE_BIT: u8 = 1 << 0;
/// `XEN_PVCLOCK_GUEST_STOPPED`: the guest was paused.
pub const XEN_PVCLOCK_GUEST_STOPPED: u8 = 1 << 1;
assert_flags!([
    XEN_PVCLOCK_TSC_STABLE_BIT = 0,
    XEN_PVCLOCK_GUEST_STOPPED = 1
]);

// ---- shared_info -----------------------------------------------------------------

abi_struct! {
    /// `struct vcpu_info`: one vCPU's event and time state, in `shared_info` (the
    /// first 32) or wherever `VCPUOP_register_vcpu_info` put it.
    pub struct vcpu_info [size 64, align 8] {
        /// Set non-zero by Xen when an event is pending for this vCPU.
        0 => evtchn_upcall_pending: u8,
        /// PV: non-zero masks upcalls (HVM guests use the interrupt flag).
        1 => evtchn_upcall_mask: u8,
        2 => _implicit0: [u8; 6],
        /// 2-level ABI: one bit per word of `shared_info.evtchn_pending`.
        8 => evtchn_pending_sel: xen_ulong_t,
        16 => arch: arch_vcpu_info,
        32 => time: vcpu_time_info,
    }
}

abi_struct! {
    /// `struct shared_info`: the page every domain shares with Xen.
    pub struct shared_info [size 3136, align 8] {
        0 => vcpu_info: [vcpu_info; 32],
        /// 2-level ABI: one pending bit per port (4096 ports).
        2048 => evtchn_pending: [xen_ulong_t; 64],
        /// 2-level ABI: one mask bit per port.
        2560 => evtchn_mask: [xen_ulong_t; 64],
        /// Wall-clock version (seqlock, as `vcpu_time_info.version`).
        3072 => wc_version: u32,
        3076 => wc_sec: u32,
        3080 => wc_nsec: u32,
        3084 => wc_sec_hi: u32,
        3088 => arch: arch_shared_info,
    }
}

static_assertions::const_assert_eq!(XEN_LEGACY_MAX_VCPUS, 32);

abi_struct! {
    /// `struct xenctl_bitmap`: a bitmap passed by the toolstack.
    pub struct xenctl_bitmap [size 16, align 8] {
        0 => bitmap: XEN_GUEST_HANDLE_64,
        8 => nr_bits: u32,
        12 => _implicit0: [u8; 4],
    }
}

// ---- start_info flags ------------------------------------------------------------

/// `SIF_PRIVILEGED`: the domain is privileged.
pub const SIF_PRIVILEGED: u32 = 1 << 0;
/// `SIF_INITDOMAIN`: the domain is the initial control domain.
pub const SIF_INITDOMAIN: u32 = 1 << 1;
/// `SIF_MULTIBOOT_MOD`: `mod_start` is a multiboot module list.
pub const SIF_MULTIBOOT_MOD: u32 = 1 << 2;
/// `SIF_MOD_START_PFN`: `mod_start` is a pfn.
pub const SIF_MOD_START_PFN: u32 = 1 << 3;
/// `SIF_VIRT_P2M_4TOOLS`: tools understand a virtually mapped p2m.
pub const SIF_VIRT_P2M_4TOOLS: u32 = 1 << 4;
/// `SIF_PM_MASK`: power-management bits.
pub const SIF_PM_MASK: u32 = 0xFF << 8;
assert_flags!([
    SIF_PRIVILEGED = 0,
    SIF_INITDOMAIN = 1,
    SIF_MULTIBOOT_MOD = 2,
    SIF_MOD_START_PFN = 3,
    SIF_VIRT_P2M_4TOOLS = 4,
]);
