//! `xen/include/public/hvm/params.h` (Xen 4.17): HVM parameter indices and values.

/// Number of HVM params in 4.17: valid indices are `0..HVM_NR_PARAMS`.
pub const HVM_NR_PARAMS: u32 = 39;

pub const HVM_PARAM_CALLBACK_IRQ: u32 = 0;
pub const HVM_PARAM_CALLBACK_IRQ_TYPE_MASK: u64 = 0xFF00_0000_0000_0000;
pub const HVM_PARAM_CALLBACK_TYPE_GSI: u64 = 0;
pub const HVM_PARAM_CALLBACK_TYPE_PCI_INTX: u64 = 1;
pub const HVM_PARAM_CALLBACK_TYPE_VECTOR: u64 = 2;
pub const HVM_PARAM_STORE_PFN: u32 = 1;
pub const HVM_PARAM_STORE_EVTCHN: u32 = 2;
/// Deprecated.
pub const HVM_PARAM_PAE_ENABLED: u32 = 4;
pub const HVM_PARAM_IOREQ_PFN: u32 = 5;
pub const HVM_PARAM_BUFIOREQ_PFN: u32 = 6;
pub const HVM_PARAM_VIRIDIAN: u32 = 9;
pub const HVM_PARAM_TIMER_MODE: u32 = 10;
pub const HVM_PARAM_HPET_ENABLED: u32 = 11;
pub const HVM_PARAM_IDENT_PT: u32 = 12;
/// Deprecated.
pub const HVM_PARAM_DM_DOMAIN: u32 = 13;
pub const HVM_PARAM_ACPI_S_STATE: u32 = 14;
pub const HVM_PARAM_VM86_TSS: u32 = 15;
pub const HVM_PARAM_VPT_ALIGN: u32 = 16;
pub const HVM_PARAM_CONSOLE_PFN: u32 = 17;
pub const HVM_PARAM_CONSOLE_EVTCHN: u32 = 18;
pub const HVM_PARAM_ACPI_IOPORTS_LOCATION: u32 = 19;
/// Deprecated (20..=26 and 30).
pub const HVM_PARAM_MEMORY_EVENT_CR0: u32 = 20;
pub const HVM_PARAM_MEMORY_EVENT_CR3: u32 = 21;
pub const HVM_PARAM_MEMORY_EVENT_CR4: u32 = 22;
pub const HVM_PARAM_MEMORY_EVENT_INT3: u32 = 23;
pub const HVM_PARAM_NESTEDHVM: u32 = 24;
pub const HVM_PARAM_MEMORY_EVENT_SINGLE_STEP: u32 = 25;
pub const HVM_PARAM_BUFIOREQ_EVTCHN: u32 = 26;
pub const HVM_PARAM_PAGING_RING_PFN: u32 = 27;
pub const HVM_PARAM_MONITOR_RING_PFN: u32 = 28;
pub const HVM_PARAM_SHARING_RING_PFN: u32 = 29;
pub const HVM_PARAM_MEMORY_EVENT_MSR: u32 = 30;
pub const HVM_PARAM_TRIPLE_FAULT_REASON: u32 = 31;
pub const HVM_PARAM_IOREQ_SERVER_PFN: u32 = 32;
pub const HVM_PARAM_NR_IOREQ_SERVER_PAGES: u32 = 33;
pub const HVM_PARAM_VM_GENERATION_ID_ADDR: u32 = 34;
pub const HVM_PARAM_ALTP2M: u32 = 35;
pub const HVM_PARAM_X87_FIP_WIDTH: u32 = 36;
pub const HVM_PARAM_VM86_TSS_SIZED: u32 = 37;
pub const HVM_PARAM_MCA_CAP: u32 = 38;

/// `HVM_PARAM_VIRIDIAN` feature bits.
pub const HVMPV_base_freq: u64 = 1 << 0;
pub const HVMPV_no_freq: u64 = 1 << 1;
pub const HVMPV_time_ref_count: u64 = 1 << 2;
pub const HVMPV_reference_tsc: u64 = 1 << 3;
pub const HVMPV_hcall_remote_tlb_flush: u64 = 1 << 4;
pub const HVMPV_apic_assist: u64 = 1 << 5;
pub const HVMPV_crash_ctl: u64 = 1 << 6;
pub const HVMPV_synic: u64 = 1 << 7;
pub const HVMPV_stimer: u64 = 1 << 8;
pub const HVMPV_hcall_ipi: u64 = 1 << 9;
pub const HVMPV_ex_processor_masks: u64 = 1 << 10;
pub const HVMPV_no_vp_limit: u64 = 1 << 11;
pub const HVMPV_cpu_hotplug: u64 = 1 << 12;
pub const HVMPV_feature_mask: u64 = HVMPV_base_freq
    | HVMPV_no_freq
    | HVMPV_time_ref_count
    | HVMPV_reference_tsc
    | HVMPV_hcall_remote_tlb_flush
    | HVMPV_apic_assist
    | HVMPV_crash_ctl
    | HVMPV_synic
    | HVMPV_stimer
    | HVMPV_hcall_ipi
    | HVMPV_ex_processor_masks
    | HVMPV_no_vp_limit
    | HVMPV_cpu_hotplug;

/// `HVM_PARAM_TIMER_MODE` values.
pub const HVMPTM_delay_for_missed_ticks: u64 = 0;
pub const HVMPTM_no_delay_for_missed_ticks: u64 = 1;
pub const HVMPTM_no_missed_ticks_pending: u64 = 2;
pub const HVMPTM_one_missed_tick_pending: u64 = 3;

/// `HVM_PARAM_ALTP2M` values.
pub const XEN_ALTP2M_disabled: u64 = 0;
pub const XEN_ALTP2M_mixed: u64 = 1;
pub const XEN_ALTP2M_external: u64 = 2;
pub const XEN_ALTP2M_limited: u64 = 3;

/// `HVM_PARAM_MCA_CAP` bits.
pub const XEN_HVM_MCA_CAP_LMCE: u64 = 1 << 0;
pub const XEN_HVM_MCA_CAP_MASK: u64 = XEN_HVM_MCA_CAP_LMCE;
