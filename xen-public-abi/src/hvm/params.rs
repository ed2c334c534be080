//! `xen/include/public/hvm/params.h`: the `HVM_PARAM_*` indices of
//! `HVMOP_set_param`/`HVMOP_get_param`, the callback-via encodings of
//! `HVM_PARAM_CALLBACK_IRQ`, and the altp2m modes of `HVM_PARAM_ALTP2M`.

/// `HVM_PARAM_CALLBACK_IRQ`: how event upcalls reach the guest; the type sits
/// in bits 63:56 (`HVM_PARAM_CALLBACK_TYPE_*`), its argument below.
pub const HVM_PARAM_CALLBACK_IRQ: u32 = 0;
/// `HVM_PARAM_CALLBACK_IRQ_TYPE_MASK`.
pub const HVM_PARAM_CALLBACK_IRQ_TYPE_MASK: u64 = 0xFF00_0000_0000_0000;
/// `HVM_PARAM_CALLBACK_TYPE_GSI`: the argument is a GSI (0 = none).
pub const HVM_PARAM_CALLBACK_TYPE_GSI: u64 = 0;
/// `HVM_PARAM_CALLBACK_TYPE_PCI_INTX`: the argument is a PCI INTx line.
pub const HVM_PARAM_CALLBACK_TYPE_PCI_INTX: u64 = 1;
/// `HVM_PARAM_CALLBACK_TYPE_VECTOR`: the argument (bits 7:0) is an IDT vector.
pub const HVM_PARAM_CALLBACK_TYPE_VECTOR: u64 = 2;

/// The callback type of an `HVM_PARAM_CALLBACK_IRQ` value (bits 63:56).
pub const fn hvm_param_callback_type(value: u64) -> u64 {
    (value & HVM_PARAM_CALLBACK_IRQ_TYPE_MASK) >> 56
}

/// `HVM_PARAM_STORE_PFN`: xenstore ring frame.
pub const HVM_PARAM_STORE_PFN: u32 = 1;
/// `HVM_PARAM_STORE_EVTCHN`: xenstore event channel.
pub const HVM_PARAM_STORE_EVTCHN: u32 = 2;
/// `HVM_PARAM_PAE_ENABLED` (tools).
pub const HVM_PARAM_PAE_ENABLED: u32 = 4;
/// `HVM_PARAM_IOREQ_PFN`.
pub const HVM_PARAM_IOREQ_PFN: u32 = 5;
/// `HVM_PARAM_BUFIOREQ_PFN`.
pub const HVM_PARAM_BUFIOREQ_PFN: u32 = 6;
/// `HVM_PARAM_VIRIDIAN`: `HVMPV_*` Hyper-V enlightenments.
pub const HVM_PARAM_VIRIDIAN: u32 = 9;
/// `HVM_PARAM_TIMER_MODE`: `HVMPTM_*`.
pub const HVM_PARAM_TIMER_MODE: u32 = 10;
/// `HVM_PARAM_HPET_ENABLED`.
pub const HVM_PARAM_HPET_ENABLED: u32 = 11;
/// `HVM_PARAM_IDENT_PT`.
pub const HVM_PARAM_IDENT_PT: u32 = 12;
/// `HVM_PARAM_DM_DOMAIN` (tools).
pub const HVM_PARAM_DM_DOMAIN: u32 = 13;
/// `HVM_PARAM_ACPI_S_STATE`.
pub const HVM_PARAM_ACPI_S_STATE: u32 = 14;
/// `HVM_PARAM_VM86_TSS`.
pub const HVM_PARAM_VM86_TSS: u32 = 15;
/// `HVM_PARAM_VPT_ALIGN`.
pub const HVM_PARAM_VPT_ALIGN: u32 = 16;
/// `HVM_PARAM_CONSOLE_PFN`: PV console ring frame.
pub const HVM_PARAM_CONSOLE_PFN: u32 = 17;
/// `HVM_PARAM_CONSOLE_EVTCHN`: PV console event channel.
pub const HVM_PARAM_CONSOLE_EVTCHN: u32 = 18;
/// `HVM_PARAM_ACPI_IOPORTS_LOCATION`.
pub const HVM_PARAM_ACPI_IOPORTS_LOCATION: u32 = 19;
/// `HVM_PARAM_MEMORY_EVENT_CR0` (tools, obsolete).
pub const HVM_PARAM_MEMORY_EVENT_CR0: u32 = 20;
/// `HVM_PARAM_MEMORY_EVENT_CR3` (tools, obsolete).
pub const HVM_PARAM_MEMORY_EVENT_CR3: u32 = 21;
/// `HVM_PARAM_MEMORY_EVENT_CR4` (tools, obsolete).
pub const HVM_PARAM_MEMORY_EVENT_CR4: u32 = 22;
/// `HVM_PARAM_MEMORY_EVENT_INT3` (tools, obsolete).
pub const HVM_PARAM_MEMORY_EVENT_INT3: u32 = 23;
/// `HVM_PARAM_NESTEDHVM` (tools).
pub const HVM_PARAM_NESTEDHVM: u32 = 24;
/// `HVM_PARAM_MEMORY_EVENT_SINGLE_STEP` (tools, obsolete).
pub const HVM_PARAM_MEMORY_EVENT_SINGLE_STEP: u32 = 25;
/// `HVM_PARAM_BUFIOREQ_EVTCHN` (tools).
pub const HVM_PARAM_BUFIOREQ_EVTCHN: u32 = 26;
/// `HVM_PARAM_PAGING_RING_PFN`.
pub const HVM_PARAM_PAGING_RING_PFN: u32 = 27;
/// `HVM_PARAM_MONITOR_RING_PFN`.
pub const HVM_PARAM_MONITOR_RING_PFN: u32 = 28;
/// `HVM_PARAM_SHARING_RING_PFN`.
pub const HVM_PARAM_SHARING_RING_PFN: u32 = 29;
/// `HVM_PARAM_MEMORY_EVENT_MSR` (tools, obsolete).
pub const HVM_PARAM_MEMORY_EVENT_MSR: u32 = 30;
/// `HVM_PARAM_TRIPLE_FAULT_REASON`.
pub const HVM_PARAM_TRIPLE_FAULT_REASON: u32 = 31;
/// `HVM_PARAM_IOREQ_SERVER_PFN`.
pub const HVM_PARAM_IOREQ_SERVER_PFN: u32 = 32;
/// `HVM_PARAM_NR_IOREQ_SERVER_PAGES`.
pub const HVM_PARAM_NR_IOREQ_SERVER_PAGES: u32 = 33;
/// `HVM_PARAM_VM_GENERATION_ID_ADDR`.
pub const HVM_PARAM_VM_GENERATION_ID_ADDR: u32 = 34;
/// `HVM_PARAM_ALTP2M`: `XEN_ALTP2M_*`, the altp2m mode (set by the toolstack).
pub const HVM_PARAM_ALTP2M: u32 = 35;
/// `HVM_PARAM_X87_FIP_WIDTH`.
pub const HVM_PARAM_X87_FIP_WIDTH: u32 = 36;
/// `HVM_PARAM_VM86_TSS_SIZED`.
pub const HVM_PARAM_VM86_TSS_SIZED: u32 = 37;
/// `HVM_PARAM_MCA_CAP`: `XEN_HVM_MCA_CAP_*`.
pub const HVM_PARAM_MCA_CAP: u32 = 38;
/// `HVM_NR_PARAMS`: indices are below this.
pub const HVM_NR_PARAMS: u32 = 39;

/// `XEN_ALTP2M_disabled`: no altp2m.
pub const XEN_ALTP2M_disabled: u64 = 0;
/// `XEN_ALTP2M_mixed`: both the guest and an external agent may use altp2m.
pub const XEN_ALTP2M_mixed: u64 = 1;
/// `XEN_ALTP2M_external`: only an external (privileged) agent may.
pub const XEN_ALTP2M_external: u64 = 2;
/// `XEN_ALTP2M_limited`: external agent; the guest may only switch views and
/// use #VE-related sub-ops.
pub const XEN_ALTP2M_limited: u64 = 3;

/// `HVMPTM_delay_for_missed_ticks`.
pub const HVMPTM_delay_for_missed_ticks: u64 = 0;
/// `HVMPTM_no_delay_for_missed_ticks`.
pub const HVMPTM_no_delay_for_missed_ticks: u64 = 1;
/// `HVMPTM_no_missed_ticks_pending`.
pub const HVMPTM_no_missed_ticks_pending: u64 = 2;
/// `HVMPTM_one_missed_tick_pending`.
pub const HVMPTM_one_missed_tick_pending: u64 = 3;

/// `XEN_HVM_MCA_CAP_LMCE`.
pub const XEN_HVM_MCA_CAP_LMCE: u64 = 1 << 0;
/// `XEN_HVM_MCA_CAP_MASK`.
pub const XEN_HVM_MCA_CAP_MASK: u64 = XEN_HVM_MCA_CAP_LMCE;
assert_flags!(
    max = XEN_HVM_MCA_CAP_MASK,
    mask = XEN_HVM_MCA_CAP_MASK,
    [XEN_HVM_MCA_CAP_LMCE = 0]
);

/// `_HVMPV_base_freq`.
pub const _HVMPV_base_freq: u32 = 0;
/// `HVMPV_base_freq`.
pub const HVMPV_base_freq: u32 = 1 << _HVMPV_base_freq;
/// `_HVMPV_no_freq`.
pub const _HVMPV_no_freq: u32 = 1;
/// `HVMPV_no_freq`.
pub const HVMPV_no_freq: u32 = 1 << _HVMPV_no_freq;
/// `_HVMPV_time_ref_count`.
pub const _HVMPV_time_ref_count: u32 = 2;
/// `HVMPV_time_ref_count`.
pub const HVMPV_time_ref_count: u32 = 1 << _HVMPV_time_ref_count;
/// `_HVMPV_reference_tsc`.
pub const _HVMPV_reference_tsc: u32 = 3;
/// `HVMPV_reference_tsc`.
pub const HVMPV_reference_tsc: u32 = 1 << _HVMPV_reference_tsc;
/// `_HVMPV_hcall_remote_tlb_flush`.
pub const _HVMPV_hcall_remote_tlb_flush: u32 = 4;
/// `HVMPV_hcall_remote_tlb_flush`.
pub const HVMPV_hcall_remote_tlb_flush: u32 = 1 << _HVMPV_hcall_remote_tlb_flush;
/// `_HVMPV_apic_assist`.
pub const _HVMPV_apic_assist: u32 = 5;
/// `HVMPV_apic_assist`.
pub const HVMPV_apic_assist: u32 = 1 << _HVMPV_apic_assist;
/// `_HVMPV_crash_ctl`.
pub const _HVMPV_crash_ctl: u32 = 6;
/// `HVMPV_crash_ctl`.
pub const HVMPV_crash_ctl: u32 = 1 << _HVMPV_crash_ctl;
/// `_HVMPV_synic`.
pub const _HVMPV_synic: u32 = 7;
/// `HVMPV_synic`.
pub const HVMPV_synic: u32 = 1 << _HVMPV_synic;
/// `_HVMPV_stimer`.
pub const _HVMPV_stimer: u32 = 8;
/// `HVMPV_stimer`.
pub const HVMPV_stimer: u32 = 1 << _HVMPV_stimer;
/// `_HVMPV_hcall_ipi`.
pub const _HVMPV_hcall_ipi: u32 = 9;
/// `HVMPV_hcall_ipi`.
pub const HVMPV_hcall_ipi: u32 = 1 << _HVMPV_hcall_ipi;
/// `_HVMPV_ex_processor_masks`.
pub const _HVMPV_ex_processor_masks: u32 = 10;
/// `HVMPV_ex_processor_masks`.
pub const HVMPV_ex_processor_masks: u32 = 1 << _HVMPV_ex_processor_masks;
/// `_HVMPV_no_vp_limit`.
pub const _HVMPV_no_vp_limit: u32 = 11;
/// `HVMPV_no_vp_limit`.
pub const HVMPV_no_vp_limit: u32 = 1 << _HVMPV_no_vp_limit;
/// `_HVMPV_cpu_hotplug`.
pub const _HVMPV_cpu_hotplug: u32 = 12;
/// `HVMPV_cpu_hotplug`.
pub const HVMPV_cpu_hotplug: u32 = 1 << _HVMPV_cpu_hotplug;
/// `HVMPV_feature_mask`: every `HVMPV_*` flag.
pub const HVMPV_feature_mask: u32 = HVMPV_base_freq
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

assert_flags!(
    max = HVMPV_cpu_hotplug,
    mask = HVMPV_feature_mask,
    [
        HVMPV_base_freq = 0,
        HVMPV_no_freq = 1,
        HVMPV_time_ref_count = 2,
        HVMPV_reference_tsc = 3,
        HVMPV_hcall_remote_tlb_flush = 4,
        HVMPV_apic_assist = 5,
        HVMPV_crash_ctl = 6,
        HVMPV_synic = 7,
        HVMPV_stimer = 8,
        HVMPV_hcall_ipi = 9,
        HVMPV_ex_processor_masks = 10,
        HVMPV_no_vp_limit = 11,
        HVMPV_cpu_hotplug = 12,
    ]
);
static_assertions::const_assert_eq!(HVM_PARAM_MCA_CAP + 1, HVM_NR_PARAMS);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn callback_type_decoding() {
        let via = (HVM_PARAM_CALLBACK_TYPE_VECTOR << 56) | 0xf3;
        assert_eq!(hvm_param_callback_type(via), HVM_PARAM_CALLBACK_TYPE_VECTOR);
        assert_eq!(hvm_param_callback_type(5), HVM_PARAM_CALLBACK_TYPE_GSI);
    }
}
