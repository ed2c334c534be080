//! Conformance of the Rust mirror with the real Xen 4.17 C headers.
//!
//! Generates a C program that includes Debian's `libxen-dev` headers (compiled with
//! `-D__XEN_TOOLS__`, as the toolstack sees them; a few guest-reachable values that
//! only `__XEN__` sees come from a second, small program) and prints `sizeof`, `_Alignof`,
//! `offsetof`, member sizes and constant values for every item this crate mirrors,
//! runs it and compares each value with the Rust one. It fails on:
//! - any mismatch (other than the documented project extension, see `DOCUMENTED_DIFFS`),
//! - any value the C side has and the Rust side lacks (e.g. a new `XEN_E*`),
//! - any public item in `src/` this test does not cover (`coverage` below), so adding
//!   an item without checking it fails here,
//! - missing headers: it names the package and the command instead of skipping.
//!
//! Output (with `--nocapture`): `abi conformance: N items compared, 0 mismatches`.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::Command;

use xen_public_abi::arch_x86::cpuid::XEN_CPUID_LEAF;
use xen_public_abi::arch_x86::{xen_cr3_to_pfn, xen_pfn_to_cr3};
use xen_public_abi::domctl::{
    XEN_DOMCTL_CDF_evtchn_fifo, XEN_DOMCTL_CDF_evtchn_upcall, XEN_DOMCTL_GRANT_version,
    XEN_DOMCTL_CDF_MAX, XEN_DOMCTL_CDF_MAX_4_17,
};
use xen_public_abi::errno::{Errno, EDEADLOCK, EWOULDBLOCK};
use xen_public_abi::io::console::MASK_XENCONS_IDX;
use xen_public_abi::io::xs_wire::{MASK_XENSTORE_IDX, XSD_ERRORS};
use xen_public_abi::memory::{
    XENMEMF_address_bits, XENMEMF_get_address_bits, XENMEMF_get_node, XENMEMF_node,
};

/// One value to compare: `key` names it in both outputs, `c_expr` computes it in C.
struct Check {
    key: String,
    c_expr: String,
    rust: u64,
}

impl Check {
    fn new(key: impl Into<String>, c_expr: impl Into<String>, rust: u64) -> Self {
        Check {
            key: key.into(),
            c_expr: c_expr.into(),
            rust,
        }
    }
}

/// The project extension: the only values allowed to differ from the 4.17 headers,
/// each with the value the 4.17 headers must have.
const DOCUMENTED_DIFFS: &[(&str, u64, &str)] = &[(
    "const XEN_DOMCTL_CDF_MAX",
    XEN_DOMCTL_CDF_MAX_4_17 as u64,
    "4.17: vpmu (bit 7); ours: evtchn_upcall (bit 9), the extension's highest flag",
)];

/// Extension flags: must be absent from the 4.17 headers and above every 4.17 flag.
const EXTENSION_FLAGS: &[(&str, u32)] = &[
    ("XEN_DOMCTL_CDF_evtchn_fifo", XEN_DOMCTL_CDF_evtchn_fifo),
    ("XEN_DOMCTL_CDF_evtchn_upcall", XEN_DOMCTL_CDF_evtchn_upcall),
];

/// Public items with no C counterpart (typed helpers, the extension), with why.
const PROJECT_ONLY: &[(&str, &str)] = &[
    ("DomId", "typed helper for domid_t"),
    ("EvtchnPort", "typed helper for evtchn_port_t"),
    ("CdfFlags", "bitflags view of XEN_DOMCTL_CDF_*"),
    ("X86EmuFlags", "bitflags view of XEN_X86_EMU_*"),
    (
        "XenmemAccess",
        "typed enum of xenmem_access_t (its values are checked as consts)",
    ),
    ("XenResult", "Result alias for hypercall handlers"),
    (
        "XEN_DOMCTL_CDF_evtchn_fifo",
        "extension flag: checked absent from 4.17 and non-overlapping",
    ),
    (
        "XEN_DOMCTL_CDF_evtchn_upcall",
        "extension flag: checked absent from 4.17 and non-overlapping",
    ),
    (
        "hvm_param_callback_type",
        "helper decoding HVM_PARAM_CALLBACK_IRQ (no C macro)",
    ),
    (
        "XEN_ELFNOTE_NAME",
        "the note name string \"Xen\" (a byte string, not a C macro)",
    ),
];

/// Constants, compared with the C macro of the same name.
macro_rules! consts {
    ($v:ident, $($m:ident)::+: [$($n:ident),* $(,)?]) => {{
        use xen_public_abi::$($m)::+ as module;
        $( $v.push(Check::new(
            concat!("const ", stringify!($n)),
            stringify!($n),
            module::$n as u64,
        )); )*
    }};
}

/// Type aliases: `sizeof` of the C typedef (or the C type given).
macro_rules! types {
    ($v:ident, $($m:ident)::+: [$($t:ident $(= $c:literal)?),* $(,)?]) => {{
        use xen_public_abi::$($m)::+ as module;
        $( $v.push(Check::new(
            concat!("type ", stringify!($t)),
            format!("sizeof({})", c_type(stringify!($t), &[$($c),*], "")),
            core::mem::size_of::<module::$t>() as u64,
        )); )*
    }};
}

/// Structs and unions: size, alignment, and every field's offset and size.
/// The C type is `struct NAME` unless given.
macro_rules! structs {
    ($v:ident, $($m:ident)::+: [$($t:ident $(= $c:literal)?),* $(,)?]) => {{
        use xen_public_abi::$($m)::+ as module;
        $( {
            use module::$t as T;
            struct_checks(
                &mut $v,
                stringify!($t),
                &c_type(stringify!($t), &[$($c),*], "struct "),
                core::mem::size_of::<T>(),
                core::mem::align_of::<T>(),
                T::ABI_FIELDS,
            );
        } )*
    }};
}

/// Function-like macros, evaluated on the same arguments in C and Rust.
macro_rules! fns {
    ($v:ident: [$($f:ident($($a:expr),*)),* $(,)?]) => {
        $( $v.push(Check::new(
            concat!("fn ", stringify!($f($($a),*))),
            stringify!($f($($a),*)),
            $f($($a),*) as u64,
        )); )*
    };
}

fn c_type(name: &str, given: &[&str], prefix: &str) -> String {
    match given.first() {
        Some(c) => (*c).to_string(),
        None => format!("{prefix}{name}"),
    }
}

fn struct_checks(
    v: &mut Vec<Check>,
    name: &str,
    ctype: &str,
    size: usize,
    align: usize,
    fields: &[(&str, usize, usize)],
) {
    v.push(Check::new(
        format!("size {name}"),
        format!("sizeof({ctype})"),
        size as u64,
    ));
    v.push(Check::new(
        format!("align {name}"),
        format!("_Alignof({ctype})"),
        align as u64,
    ));
    for &(field, off, fsize) in fields {
        // Padding C inserts silently has no name in C.
        if field.starts_with("_implicit") {
            continue;
        }
        let field = field.trim_start_matches("r#");
        v.push(Check::new(
            format!("offset {name}.{field}"),
            format!("offsetof({ctype}, {field})"),
            off as u64,
        ));
        v.push(Check::new(
            format!("fsize {name}.{field}"),
            format!("sizeof((({ctype} *)0)->{field})"),
            fsize as u64,
        ));
    }
}

/// Every value this test compares.
fn checks() -> Vec<Check> {
    let mut c = Vec::new();

    consts!(c, xen: [
        __HYPERVISOR_set_trap_table, __HYPERVISOR_mmu_update, __HYPERVISOR_set_gdt,
        __HYPERVISOR_stack_switch, __HYPERVISOR_set_callbacks, __HYPERVISOR_fpu_taskswitch,
        __HYPERVISOR_sched_op_compat, __HYPERVISOR_platform_op, __HYPERVISOR_set_debugreg,
        __HYPERVISOR_get_debugreg, __HYPERVISOR_update_descriptor, __HYPERVISOR_memory_op,
        __HYPERVISOR_multicall, __HYPERVISOR_update_va_mapping, __HYPERVISOR_set_timer_op,
        __HYPERVISOR_event_channel_op_compat, __HYPERVISOR_xen_version, __HYPERVISOR_console_io,
        __HYPERVISOR_physdev_op_compat, __HYPERVISOR_grant_table_op, __HYPERVISOR_vm_assist,
        __HYPERVISOR_update_va_mapping_otherdomain, __HYPERVISOR_iret, __HYPERVISOR_vcpu_op,
        __HYPERVISOR_set_segment_base, __HYPERVISOR_mmuext_op, __HYPERVISOR_xsm_op,
        __HYPERVISOR_nmi_op, __HYPERVISOR_sched_op, __HYPERVISOR_callback_op,
        __HYPERVISOR_xenoprof_op, __HYPERVISOR_event_channel_op, __HYPERVISOR_physdev_op,
        __HYPERVISOR_hvm_op, __HYPERVISOR_sysctl, __HYPERVISOR_domctl, __HYPERVISOR_kexec_op,
        __HYPERVISOR_tmem_op, __HYPERVISOR_argo_op, __HYPERVISOR_xenpmu_op, __HYPERVISOR_dm_op,
        __HYPERVISOR_hypfs_op, __HYPERVISOR_arch_0, __HYPERVISOR_arch_1, __HYPERVISOR_arch_2,
        __HYPERVISOR_arch_3, __HYPERVISOR_arch_4, __HYPERVISOR_arch_5, __HYPERVISOR_arch_6,
        __HYPERVISOR_arch_7, VIRQ_TIMER, VIRQ_DEBUG, VIRQ_CONSOLE, VIRQ_DOM_EXC, VIRQ_TBUF,
        VIRQ_DEBUGGER, VIRQ_XENOPROF, VIRQ_CON_RING, VIRQ_PCPU_STATE, VIRQ_MEM_EVENT, VIRQ_ARGO,
        VIRQ_ENOMEM, VIRQ_XENPMU, VIRQ_ARCH_0, VIRQ_ARCH_1, VIRQ_ARCH_2, VIRQ_ARCH_3,
        VIRQ_ARCH_4, VIRQ_ARCH_5, VIRQ_ARCH_6, VIRQ_ARCH_7, NR_VIRQS, CONSOLEIO_write,
        CONSOLEIO_read, VMASST_CMD_enable, VMASST_CMD_disable, VMASST_TYPE_4gb_segments,
        VMASST_TYPE_4gb_segments_notify, VMASST_TYPE_writable_pagetables,
        VMASST_TYPE_pae_extended_cr3, VMASST_TYPE_architectural_iopl,
        VMASST_TYPE_runstate_update_flag, VMASST_TYPE_m2p_strict, DOMID_FIRST_RESERVED,
        DOMID_SELF, DOMID_IO, DOMID_XEN, DOMID_COW, DOMID_INVALID, DOMID_IDLE, DOMID_MASK,
        XEN_PVCLOCK_TSC_STABLE_BIT, XEN_PVCLOCK_GUEST_STOPPED, SIF_PRIVILEGED, SIF_INITDOMAIN,
        SIF_MULTIBOOT_MOD, SIF_MOD_START_PFN, SIF_VIRT_P2M_4TOOLS, SIF_PM_MASK,
    ]);
    consts!(c, arch_x86: [
        XEN_LEGACY_MAX_VCPUS, FIRST_RESERVED_GDT_PAGE, FIRST_RESERVED_GDT_BYTE,
        FIRST_RESERVED_GDT_ENTRY, XEN_HVM_DEBUGCONS_IOPORT, XEN_CPUID_NO_SUBLEAF,
        _XEN_X86_EMU_LAPIC, _XEN_X86_EMU_HPET, _XEN_X86_EMU_PM, _XEN_X86_EMU_RTC,
        _XEN_X86_EMU_IOAPIC, _XEN_X86_EMU_PIC, _XEN_X86_EMU_VGA, _XEN_X86_EMU_IOMMU,
        _XEN_X86_EMU_PIT, _XEN_X86_EMU_USE_PIRQ, _XEN_X86_EMU_VPCI, XEN_X86_EMU_LAPIC,
        XEN_X86_EMU_HPET, XEN_X86_EMU_PM, XEN_X86_EMU_RTC, XEN_X86_EMU_IOAPIC, XEN_X86_EMU_PIC,
        XEN_X86_EMU_VGA, XEN_X86_EMU_IOMMU, XEN_X86_EMU_PIT, XEN_X86_EMU_USE_PIRQ,
        XEN_X86_EMU_VPCI, XEN_X86_EMU_ALL, XEN_X86_MSR_RELAXED, XEN_X86_MISC_FLAGS_MAX,
        _VGCF_i387_valid, VGCF_i387_valid, VGCF_I387_VALID, _VGCF_in_kernel, VGCF_in_kernel,
        VGCF_IN_KERNEL, _VGCF_failsafe_disables_events, VGCF_failsafe_disables_events,
        _VGCF_syscall_disables_events, VGCF_syscall_disables_events, _VGCF_online, VGCF_online,
        _VGCF_in_syscall, VGCF_in_syscall, VGCF_IN_SYSCALL,
    ]);
    consts!(c, arch_x86::cpuid: [
        XEN_CPUID_FIRST_LEAF, XEN_CPUID_SIGNATURE_EBX, XEN_CPUID_SIGNATURE_ECX,
        XEN_CPUID_SIGNATURE_EDX, _XEN_CPUID_FEAT1_MMU_PT_UPDATE_PRESERVE_AD,
        XEN_CPUID_FEAT1_MMU_PT_UPDATE_PRESERVE_AD, XEN_HVM_CPUID_APIC_ACCESS_VIRT,
        XEN_HVM_CPUID_X2APIC_VIRT, XEN_HVM_CPUID_IOMMU_MAPPINGS, XEN_HVM_CPUID_VCPU_ID_PRESENT,
        XEN_HVM_CPUID_DOMID_PRESENT, XEN_HVM_CPUID_EXT_DEST_ID, XEN_HVM_CPUID_UPCALL_VECTOR,
        XEN_CPUID_MACHINE_ADDRESS_WIDTH_MASK, XEN_CPUID_MAX_NUM_LEAVES,
    ]);
    consts!(c, domctl: [
        XEN_DOMCTL_INTERFACE_VERSION, _XEN_DOMCTL_CDF_hvm, _XEN_DOMCTL_CDF_hap,
        _XEN_DOMCTL_CDF_s3_integrity, _XEN_DOMCTL_CDF_oos_off, _XEN_DOMCTL_CDF_xs_domain,
        _XEN_DOMCTL_CDF_iommu, _XEN_DOMCTL_CDF_nested_virt, XEN_DOMCTL_CDF_hvm,
        XEN_DOMCTL_CDF_hap, XEN_DOMCTL_CDF_s3_integrity, XEN_DOMCTL_CDF_oos_off,
        XEN_DOMCTL_CDF_xs_domain, XEN_DOMCTL_CDF_iommu, XEN_DOMCTL_CDF_nested_virt,
        XEN_DOMCTL_CDF_vpmu, _XEN_DOMCTL_IOMMU_no_sharept, XEN_DOMCTL_IOMMU_no_sharept,
        XEN_DOMCTL_IOMMU_MAX, XEN_DOMCTL_GRANT_version_mask, _XEN_DOMINF_dying,
        _XEN_DOMINF_hvm_guest, _XEN_DOMINF_shutdown, _XEN_DOMINF_paused, _XEN_DOMINF_blocked,
        _XEN_DOMINF_running, _XEN_DOMINF_debugged, _XEN_DOMINF_xs_domain, _XEN_DOMINF_hap,
        XEN_DOMINF_dying, XEN_DOMINF_hvm_guest, XEN_DOMINF_shutdown, XEN_DOMINF_paused,
        XEN_DOMINF_blocked, XEN_DOMINF_running, XEN_DOMINF_debugged, XEN_DOMINF_xs_domain,
        XEN_DOMINF_hap, XEN_DOMINF_shutdownmask, XEN_DOMINF_shutdownshift,
        XEN_INVALID_MAX_VCPU_ID, XEN_DOMCTL_createdomain, XEN_DOMCTL_destroydomain,
        XEN_DOMCTL_pausedomain, XEN_DOMCTL_unpausedomain, XEN_DOMCTL_getdomaininfo,
        XEN_DOMCTL_setvcpuaffinity, XEN_DOMCTL_shadow_op, XEN_DOMCTL_max_mem,
        XEN_DOMCTL_setvcpucontext, XEN_DOMCTL_getvcpucontext, XEN_DOMCTL_getvcpuinfo,
        XEN_DOMCTL_max_vcpus, XEN_DOMCTL_scheduler_op, XEN_DOMCTL_setdomainhandle,
        XEN_DOMCTL_setdebugging, XEN_DOMCTL_irq_permission, XEN_DOMCTL_iomem_permission,
        XEN_DOMCTL_ioport_permission, XEN_DOMCTL_hypercall_init,
        XEN_DOMCTL_settimeoffset, XEN_DOMCTL_getvcpuaffinity, XEN_DOMCTL_real_mode_area,
        XEN_DOMCTL_resumedomain, XEN_DOMCTL_sendtrigger, XEN_DOMCTL_subscribe,
        XEN_DOMCTL_gethvmcontext, XEN_DOMCTL_sethvmcontext, XEN_DOMCTL_set_address_size,
        XEN_DOMCTL_get_address_size, XEN_DOMCTL_assign_device, XEN_DOMCTL_bind_pt_irq,
        XEN_DOMCTL_memory_mapping, XEN_DOMCTL_ioport_mapping, XEN_DOMCTL_set_ext_vcpucontext,
        XEN_DOMCTL_get_ext_vcpucontext, XEN_DOMCTL_set_opt_feature,
        XEN_DOMCTL_test_assign_device, XEN_DOMCTL_set_target, XEN_DOMCTL_deassign_device,
        XEN_DOMCTL_unbind_pt_irq, XEN_DOMCTL_get_device_group, XEN_DOMCTL_debug_op,
        XEN_DOMCTL_gethvmcontext_partial, XEN_DOMCTL_vm_event_op, XEN_DOMCTL_mem_sharing_op,
        XEN_DOMCTL_gettscinfo, XEN_DOMCTL_settscinfo, XEN_DOMCTL_getpageframeinfo3,
        XEN_DOMCTL_setvcpuextstate, XEN_DOMCTL_getvcpuextstate, XEN_DOMCTL_set_access_required,
        XEN_DOMCTL_audit_p2m, XEN_DOMCTL_set_virq_handler, XEN_DOMCTL_set_broken_page_p2m,
        XEN_DOMCTL_setnodeaffinity, XEN_DOMCTL_getnodeaffinity, XEN_DOMCTL_cacheflush,
        XEN_DOMCTL_get_vcpu_msrs, XEN_DOMCTL_set_vcpu_msrs, XEN_DOMCTL_setvnumainfo,
        XEN_DOMCTL_psr_cmt_op, XEN_DOMCTL_monitor_op, XEN_DOMCTL_psr_alloc,
        XEN_DOMCTL_soft_reset, XEN_DOMCTL_vuart_op, XEN_DOMCTL_get_cpu_policy,
        XEN_DOMCTL_set_cpu_policy, XEN_DOMCTL_vmtrace_op, XEN_DOMCTL_get_paging_mempool_size,
        XEN_DOMCTL_set_paging_mempool_size, XEN_DOMCTL_gdbsx_guestmemio,
        XEN_DOMCTL_gdbsx_pausevcpu, XEN_DOMCTL_gdbsx_unpausevcpu, XEN_DOMCTL_gdbsx_domstatus,
        _XEN_VCPUAFFINITY_HARD, XEN_VCPUAFFINITY_HARD, _XEN_VCPUAFFINITY_SOFT,
        XEN_VCPUAFFINITY_SOFT, _XEN_VCPUAFFINITY_FORCE, XEN_VCPUAFFINITY_FORCE,
        XEN_SCHEDULER_CREDIT, XEN_SCHEDULER_CREDIT2, XEN_SCHEDULER_ARINC653,
        XEN_SCHEDULER_RTDS, XEN_SCHEDULER_NULL, XEN_DOMCTL_SCHEDOP_putinfo,
        XEN_DOMCTL_SCHEDOP_getinfo, XEN_DOMCTL_SCHEDOP_putvcpuinfo,
        XEN_DOMCTL_SCHEDOP_getvcpuinfo,
    ]);
    consts!(c, hvm::save: [
        HVM_FILE_MAGIC, HVM_FILE_VERSION, _XEN_X86_FPU_INITIALISED, XEN_X86_FPU_INITIALISED,
        MTRR_VCNT, NUM_FIXED_MSR, HVM_SAVE_CODE_MAX,
    ]);
    for (key, c_expr, v) in [
        (
            "const HVM_SAVE_CODE_END",
            "HVM_SAVE_CODE(END)",
            xen_public_abi::hvm::save::HVM_SAVE_CODE_END,
        ),
        (
            "const HVM_SAVE_CODE_HEADER",
            "HVM_SAVE_CODE(HEADER)",
            xen_public_abi::hvm::save::HVM_SAVE_CODE_HEADER,
        ),
        (
            "const HVM_SAVE_CODE_CPU",
            "HVM_SAVE_CODE(CPU)",
            xen_public_abi::hvm::save::HVM_SAVE_CODE_CPU,
        ),
        (
            "const HVM_SAVE_CODE_MTRR",
            "HVM_SAVE_CODE(MTRR)",
            xen_public_abi::hvm::save::HVM_SAVE_CODE_MTRR,
        ),
    ] {
        c.push(Check::new(key, c_expr, u64::from(v)));
    }
    consts!(c, sysctl: [
        XEN_SYSCTL_INTERFACE_VERSION, XEN_SYSCTL_readconsole, XEN_SYSCTL_tbuf_op,
        XEN_SYSCTL_physinfo, XEN_SYSCTL_sched_id, XEN_SYSCTL_perfc_op,
        XEN_SYSCTL_getdomaininfolist, XEN_SYSCTL_debug_keys, XEN_SYSCTL_getcpuinfo,
        XEN_SYSCTL_availheap, XEN_SYSCTL_get_cpu_featureset, XEN_SYSCTL_get_cpu_policy,
        _XEN_SYSCTL_PHYSCAP_hvm, XEN_SYSCTL_PHYSCAP_hvm, _XEN_SYSCTL_PHYSCAP_pv,
        XEN_SYSCTL_PHYSCAP_pv, _XEN_SYSCTL_PHYSCAP_directio, XEN_SYSCTL_PHYSCAP_directio,
        _XEN_SYSCTL_PHYSCAP_hap, XEN_SYSCTL_PHYSCAP_hap, _XEN_SYSCTL_PHYSCAP_shadow,
        XEN_SYSCTL_PHYSCAP_shadow, _XEN_SYSCTL_PHYSCAP_iommu_hap_pt_share,
        XEN_SYSCTL_PHYSCAP_iommu_hap_pt_share, XEN_SYSCTL_PHYSCAP_vmtrace,
        XEN_SYSCTL_PHYSCAP_vpmu, XEN_SYSCTL_PHYSCAP_gnttab_v1, XEN_SYSCTL_PHYSCAP_gnttab_v2,
        XEN_SYSCTL_PHYSCAP_MAX,
    ]);
    consts!(c, event_channel: [
        EVTCHNOP_bind_interdomain, EVTCHNOP_bind_virq, EVTCHNOP_bind_pirq, EVTCHNOP_close,
        EVTCHNOP_send, EVTCHNOP_status, EVTCHNOP_alloc_unbound, EVTCHNOP_bind_ipi,
        EVTCHNOP_bind_vcpu, EVTCHNOP_unmask, EVTCHNOP_reset, EVTCHNOP_init_control,
        EVTCHNOP_expand_array, EVTCHNOP_set_priority, BIND_PIRQ__WILL_SHARE, EVTCHNSTAT_closed,
        EVTCHNSTAT_unbound, EVTCHNSTAT_interdomain, EVTCHNSTAT_pirq, EVTCHNSTAT_virq,
        EVTCHNSTAT_ipi, EVTCHN_2L_NR_CHANNELS, EVTCHN_FIFO_PRIORITY_MAX,
        EVTCHN_FIFO_PRIORITY_DEFAULT, EVTCHN_FIFO_PRIORITY_MIN, EVTCHN_FIFO_MAX_QUEUES,
        EVTCHN_FIFO_PENDING, EVTCHN_FIFO_MASKED, EVTCHN_FIFO_LINKED, EVTCHN_FIFO_BUSY,
        EVTCHN_FIFO_LINK_BITS, EVTCHN_FIFO_LINK_MASK, EVTCHN_FIFO_NR_CHANNELS,
    ]);
    consts!(c, hvm::hvm_op: [
        HVMOP_set_param, HVMOP_get_param, HVMOP_flush_tlbs, HVMOP_pagetable_dying,
        HVMOP_get_time, HVMOP_xentrace, HVMOP_set_mem_access, HVMOP_get_mem_access,
        HVMOP_get_mem_type, HVMOP_set_evtchn_upcall_vector, HVMOP_guest_request_vm_event,
        HVMOP_altp2m, HVM_IOREQSRV_BUFIOREQ_OFF, HVM_IOREQSRV_BUFIOREQ_LEGACY,
        HVM_IOREQSRV_BUFIOREQ_ATOMIC, HVMMEM_ram_rw, HVMMEM_ram_ro, HVMMEM_mmio_dm,
        HVMMEM_unused, HVMMEM_ioreq_server, HVMOP_ALTP2M_INTERFACE_VERSION,
        HVMOP_altp2m_get_domain_state, HVMOP_altp2m_set_domain_state,
        HVMOP_altp2m_vcpu_enable_notify, HVMOP_altp2m_create_p2m, HVMOP_altp2m_destroy_p2m,
        HVMOP_altp2m_switch_p2m, HVMOP_altp2m_set_mem_access, HVMOP_altp2m_change_gfn,
        HVMOP_altp2m_set_mem_access_multi, HVMOP_altp2m_set_suppress_ve,
        HVMOP_altp2m_get_suppress_ve, HVMOP_altp2m_get_mem_access,
        HVMOP_altp2m_vcpu_disable_notify, HVMOP_altp2m_get_p2m_idx,
        HVMOP_altp2m_set_suppress_ve_multi, HVMOP_altp2m_set_visibility,
    ]);
    consts!(c, hvm::params: [
        HVM_PARAM_CALLBACK_IRQ, HVM_PARAM_CALLBACK_IRQ_TYPE_MASK, HVM_PARAM_CALLBACK_TYPE_GSI,
        HVM_PARAM_CALLBACK_TYPE_PCI_INTX, HVM_PARAM_CALLBACK_TYPE_VECTOR, HVM_PARAM_STORE_PFN,
        HVM_PARAM_STORE_EVTCHN, HVM_PARAM_PAE_ENABLED, HVM_PARAM_IOREQ_PFN,
        HVM_PARAM_BUFIOREQ_PFN, HVM_PARAM_VIRIDIAN, HVM_PARAM_TIMER_MODE,
        HVM_PARAM_HPET_ENABLED, HVM_PARAM_IDENT_PT, HVM_PARAM_DM_DOMAIN, HVM_PARAM_ACPI_S_STATE,
        HVM_PARAM_VM86_TSS, HVM_PARAM_VPT_ALIGN, HVM_PARAM_CONSOLE_PFN,
        HVM_PARAM_CONSOLE_EVTCHN, HVM_PARAM_ACPI_IOPORTS_LOCATION, HVM_PARAM_MEMORY_EVENT_CR0,
        HVM_PARAM_MEMORY_EVENT_CR3, HVM_PARAM_MEMORY_EVENT_CR4, HVM_PARAM_MEMORY_EVENT_INT3,
        HVM_PARAM_NESTEDHVM, HVM_PARAM_MEMORY_EVENT_SINGLE_STEP, HVM_PARAM_BUFIOREQ_EVTCHN,
        HVM_PARAM_PAGING_RING_PFN, HVM_PARAM_MONITOR_RING_PFN, HVM_PARAM_SHARING_RING_PFN,
        HVM_PARAM_MEMORY_EVENT_MSR, HVM_PARAM_TRIPLE_FAULT_REASON, HVM_PARAM_IOREQ_SERVER_PFN,
        HVM_PARAM_NR_IOREQ_SERVER_PAGES, HVM_PARAM_VM_GENERATION_ID_ADDR, HVM_PARAM_ALTP2M,
        HVM_PARAM_X87_FIP_WIDTH, HVM_PARAM_VM86_TSS_SIZED, HVM_PARAM_MCA_CAP, HVM_NR_PARAMS,
        XEN_ALTP2M_disabled, XEN_ALTP2M_mixed, XEN_ALTP2M_external, XEN_ALTP2M_limited,
        HVMPTM_delay_for_missed_ticks, HVMPTM_no_delay_for_missed_ticks,
        HVMPTM_no_missed_ticks_pending, HVMPTM_one_missed_tick_pending, XEN_HVM_MCA_CAP_LMCE,
        XEN_HVM_MCA_CAP_MASK, _HVMPV_base_freq, HVMPV_base_freq, _HVMPV_no_freq, HVMPV_no_freq,
        _HVMPV_time_ref_count, HVMPV_time_ref_count, _HVMPV_reference_tsc, HVMPV_reference_tsc,
        _HVMPV_hcall_remote_tlb_flush, HVMPV_hcall_remote_tlb_flush, _HVMPV_apic_assist,
        HVMPV_apic_assist, _HVMPV_crash_ctl, HVMPV_crash_ctl, _HVMPV_synic, HVMPV_synic,
        _HVMPV_stimer, HVMPV_stimer, _HVMPV_hcall_ipi, HVMPV_hcall_ipi,
        _HVMPV_ex_processor_masks, HVMPV_ex_processor_masks, _HVMPV_no_vp_limit,
        HVMPV_no_vp_limit, _HVMPV_cpu_hotplug, HVMPV_cpu_hotplug, HVMPV_feature_mask,
    ]);
    consts!(c, hvm::start_info: [
        XEN_HVM_START_MAGIC_VALUE, XEN_HVM_MEMMAP_TYPE_RAM, XEN_HVM_MEMMAP_TYPE_RESERVED,
        XEN_HVM_MEMMAP_TYPE_ACPI, XEN_HVM_MEMMAP_TYPE_NVS, XEN_HVM_MEMMAP_TYPE_UNUSABLE,
        XEN_HVM_MEMMAP_TYPE_DISABLED, XEN_HVM_MEMMAP_TYPE_PMEM,
    ]);
    consts!(c, hvm::hvm_vcpu: [
        VCPU_HVM_MODE_32B, VCPU_HVM_MODE_64B,
    ]);
    consts!(c, memory: [
        XENMEM_increase_reservation, XENMEM_decrease_reservation, XENMEM_maximum_ram_page,
        XENMEM_current_reservation, XENMEM_maximum_reservation, XENMEM_machphys_mfn_list,
        XENMEM_populate_physmap, XENMEM_add_to_physmap, XENMEM_memory_map,
        XENMEM_machine_memory_map, XENMEM_exchange, XENMEM_machphys_mapping,
        XENMEM_set_memory_map, XENMEM_maximum_gpfn, XENMEM_remove_from_physmap,
        XENMEM_set_pod_target, XENMEM_get_pod_target, XENMEM_get_sharing_freed_pages,
        XENMEM_get_sharing_shared_pages, XENMEM_paging_op, XENMEM_access_op, XENMEM_sharing_op,
        XENMEM_add_to_physmap_batch, XENMEM_claim_pages, XENMEM_machphys_compat_mfn_list,
        XENMEM_get_vnumainfo, XENMEM_reserved_device_memory_map, XENMEM_acquire_resource,
        XENMEMF_populate_on_demand, XENMEMF_exact_node_request, XENMEMF_vnode,
        XENMAPSPACE_shared_info, XENMAPSPACE_grant_table, XENMAPSPACE_gmfn,
        XENMAPSPACE_gmfn_range, XENMAPSPACE_gmfn_foreign, XENMAPSPACE_dev_mmio,
        XENMAPIDX_grant_table_status, XENMEM_access_op_set_access, XENMEM_access_op_get_access,
        XENMEM_access_op_set_access_multi, XENMEM_access_n, XENMEM_access_r, XENMEM_access_w,
        XENMEM_access_rw, XENMEM_access_x, XENMEM_access_rx, XENMEM_access_wx,
        XENMEM_access_rwx, XENMEM_access_rx2rw, XENMEM_access_n2rwx, XENMEM_access_default,
        XENMEM_resource_ioreq_server, XENMEM_resource_grant_table, XENMEM_resource_vmtrace_buf,
        XENMEM_resource_grant_table_id_shared, XENMEM_resource_grant_table_id_status,
        XENMEM_resource_ioreq_server_frame_bufioreq,
    ]);
    consts!(c, sched: [
        SCHEDOP_yield, SCHEDOP_block, SCHEDOP_shutdown, SCHEDOP_poll, SCHEDOP_remote_shutdown,
        SCHEDOP_shutdown_code, SCHEDOP_watchdog, SCHEDOP_pin_override, SHUTDOWN_poweroff,
        SHUTDOWN_reboot, SHUTDOWN_suspend, SHUTDOWN_crash, SHUTDOWN_watchdog,
        SHUTDOWN_soft_reset, SHUTDOWN_MAX,
    ]);
    consts!(c, vcpu: [
        VCPUOP_initialise, VCPUOP_up, VCPUOP_down, VCPUOP_is_up, VCPUOP_get_runstate_info,
        VCPUOP_register_runstate_memory_area, VCPUOP_set_periodic_timer,
        VCPUOP_stop_periodic_timer, VCPUOP_set_singleshot_timer, VCPUOP_stop_singleshot_timer,
        VCPUOP_register_vcpu_info, VCPUOP_send_nmi, VCPUOP_get_physid,
        VCPUOP_register_vcpu_time_memory_area, RUNSTATE_running, RUNSTATE_runnable,
        RUNSTATE_blocked, RUNSTATE_offline, XEN_RUNSTATE_UPDATE, _VCPU_SSHOTTMR_future,
        VCPU_SSHOTTMR_future,
    ]);
    consts!(c, version: [
        XENVER_version, XENVER_extraversion, XENVER_compile_info, XENVER_capabilities,
        XENVER_changeset, XENVER_platform_parameters, XENVER_get_features, XENVER_pagesize,
        XENVER_guest_handle, XENVER_commandline, XENVER_build_id, XEN_EXTRAVERSION_LEN,
        XEN_CAPABILITIES_INFO_LEN, XEN_CHANGESET_INFO_LEN,
    ]);
    consts!(c, features: [
        XENFEAT_writable_page_tables, XENFEAT_writable_descriptor_tables,
        XENFEAT_auto_translated_physmap, XENFEAT_supervisor_mode_kernel,
        XENFEAT_pae_pgdir_above_4gb, XENFEAT_mmu_pt_update_preserve_ad, XENFEAT_highmem_assist,
        XENFEAT_gnttab_map_avail_bits, XENFEAT_hvm_callback_vector, XENFEAT_hvm_safe_pvclock,
        XENFEAT_hvm_pirqs, XENFEAT_dom0,
        XENFEAT_memory_op_vnode_supported, XENFEAT_ARM_SMCCC_supported,
        XENFEAT_linux_rsdp_unrestricted, XENFEAT_not_direct_mapped, XENFEAT_direct_mapped,
        XENFEAT_NR_SUBMAPS,
    ]);
    consts!(c, elfnote: [
        XEN_ELFNOTE_INFO, XEN_ELFNOTE_ENTRY, XEN_ELFNOTE_HYPERCALL_PAGE, XEN_ELFNOTE_VIRT_BASE,
        XEN_ELFNOTE_PADDR_OFFSET, XEN_ELFNOTE_XEN_VERSION, XEN_ELFNOTE_GUEST_OS,
        XEN_ELFNOTE_GUEST_VERSION, XEN_ELFNOTE_LOADER, XEN_ELFNOTE_PAE_MODE,
        XEN_ELFNOTE_FEATURES, XEN_ELFNOTE_BSD_SYMTAB, XEN_ELFNOTE_HV_START_LOW,
        XEN_ELFNOTE_L1_MFN_VALID, XEN_ELFNOTE_SUSPEND_CANCEL, XEN_ELFNOTE_INIT_P2M,
        XEN_ELFNOTE_MOD_START_PFN, XEN_ELFNOTE_SUPPORTED_FEATURES, XEN_ELFNOTE_PHYS32_ENTRY,
        XEN_ELFNOTE_MAX, XEN_ELFNOTE_CRASH_INFO, XEN_ELFNOTE_CRASH_REGS,
        XEN_ELFNOTE_DUMPCORE_NONE, XEN_ELFNOTE_DUMPCORE_HEADER,
        XEN_ELFNOTE_DUMPCORE_XEN_VERSION, XEN_ELFNOTE_DUMPCORE_FORMAT_VERSION,
    ]);

    // Documented difference: compared separately (see DOCUMENTED_DIFFS).
    c.push(Check::new(
        "const XEN_DOMCTL_CDF_MAX",
        "XEN_DOMCTL_CDF_MAX",
        XEN_DOMCTL_CDF_MAX as u64,
    ));
    // Our name for 4.17's XEN_DOMCTL_CDF_MAX must equal it exactly.
    c.push(Check::new(
        "const XEN_DOMCTL_CDF_MAX_4_17",
        "XEN_DOMCTL_CDF_MAX",
        XEN_DOMCTL_CDF_MAX_4_17 as u64,
    ));

    types!(c, xen: [
        XEN_GUEST_HANDLE_64 = "XEN_GUEST_HANDLE_64(void)", domid_t, xen_domain_handle_t,
    ]);
    types!(c, arch_x86: [xen_pfn_t, xen_ulong_t, xen_callback_t, tsc_timestamp_t]);
    types!(c, event_channel: [evtchn_port_t, event_word_t]);
    types!(c, hvm::hvm_op: [hvmmem_type_t]);
    types!(c, memory: [xenmem_access_t]);
    types!(c, version: [
        xen_extraversion_t, xen_capabilities_info_t, xen_changeset_info_t, xen_commandline_t,
    ]);
    types!(c, io::console: [XENCONS_RING_IDX]);
    types!(c, io::xs_wire: [XENSTORE_RING_IDX]);

    structs!(c, xen: [
        xen_uuid_t = "xen_uuid_t", mmu_update, multicall_entry, vcpu_time_info, vcpu_info,
        shared_info, xenctl_bitmap,
    ]);
    structs!(c, arch_x86: [
        arch_vcpu_info, arch_shared_info, xen_arch_domainconfig, xen_cpuid_leaf, xen_msr_entry,
        cpu_user_regs, trap_info, vcpu_guest_context,
    ]);
    structs!(c, domctl: [
        xen_domctl_createdomain, xen_domctl_getdomaininfo, xen_domctl_max_mem,
        xen_domctl_vcpucontext, xen_domctl_getvcpuinfo, xen_domctl_max_vcpus,
        xen_domctl_setdomainhandle, xen_domctl_cpu_policy, xen_domctl_vcpuaffinity, xen_domctl_sched_credit2,
        xen_domctl_scheduler_op_u = "__typeof__(((struct xen_domctl_scheduler_op *)0)->u)",
        xen_domctl_scheduler_op, xen_domctl_tsc_info, xen_domctl_hvmcontext,
        xen_domctl_paging_mempool,
        xen_domctl_u = "__typeof__(((struct xen_domctl *)0)->u)",
        xen_domctl,
    ]);
    consts!(c, sysctl: [
        XEN_SYSCTL_cpu_policy_raw,
        XEN_SYSCTL_cpu_policy_host, XEN_SYSCTL_cpu_policy_pv_max, XEN_SYSCTL_cpu_policy_hvm_max,
        XEN_SYSCTL_cpu_policy_pv_default, XEN_SYSCTL_cpu_policy_hvm_default,
    ]);
    structs!(c, event_channel: [
        evtchn_alloc_unbound, evtchn_bind_interdomain, evtchn_bind_virq, evtchn_bind_pirq,
        evtchn_bind_ipi, evtchn_close, evtchn_send,
        evtchn_status_unbound = "__typeof__(((struct evtchn_status *)0)->u.unbound)",
        evtchn_status_interdomain = "__typeof__(((struct evtchn_status *)0)->u.interdomain)",
        evtchn_status_u = "__typeof__(((struct evtchn_status *)0)->u)",
        evtchn_status, evtchn_bind_vcpu, evtchn_unmask, evtchn_reset, evtchn_init_control,
        evtchn_expand_array, evtchn_set_priority,
        evtchn_op_u = "__typeof__(((struct evtchn_op *)0)->u)",
        evtchn_op, evtchn_fifo_control_block,
    ]);
    structs!(c, hvm::hvm_op: [
        xen_hvm_param, xen_hvm_pagetable_dying, xen_hvm_get_time, xen_hvm_get_mem_type,
        xen_hvm_evtchn_upcall_vector, xen_hvm_altp2m_domain_state,
        xen_hvm_altp2m_vcpu_enable_notify, xen_hvm_altp2m_vcpu_disable_notify,
        xen_hvm_altp2m_view, xen_hvm_altp2m_mem_access, xen_hvm_altp2m_set_mem_access_multi,
        xen_hvm_altp2m_change_gfn, xen_hvm_altp2m_suppress_ve, xen_hvm_altp2m_suppress_ve_multi,
        xen_hvm_altp2m_get_vcpu_p2m_idx, xen_hvm_altp2m_set_visibility,
        xen_hvm_altp2m_op_u = "__typeof__(((struct xen_hvm_altp2m_op *)0)->u)",
        xen_hvm_altp2m_op,
    ]);
    structs!(c, hvm::save: [hvm_save_descriptor, hvm_save_header, hvm_hw_cpu, hvm_hw_mtrr]);
    structs!(c, sysctl: [
        xen_sysctl_physinfo, xen_sysctl_getdomaininfolist, xen_sysctl_cpu_policy,
        xen_sysctl_u = "__typeof__(((struct xen_sysctl *)0)->u)",
        xen_sysctl,
    ]);
    structs!(c, hvm::start_info: [hvm_start_info, hvm_modlist_entry, hvm_memmap_table_entry]);
    structs!(c, hvm::hvm_vcpu: [
        vcpu_hvm_x86_32, vcpu_hvm_x86_64,
        vcpu_hvm_context_regs = "__typeof__(((struct vcpu_hvm_context *)0)->cpu_regs)",
        vcpu_hvm_context,
    ]);
    structs!(c, memory: [
        xen_memory_reservation, xen_memory_exchange, xen_memory_domain, xen_machphys_mapping,
        xen_add_to_physmap,
        xen_add_to_physmap_batch_extra = "union xen_add_to_physmap_batch_extra",
        xen_add_to_physmap_batch, xen_remove_from_physmap, xen_memory_map,
        xen_foreign_memory_map, xen_pod_target, xen_mem_access_op, xen_mem_acquire_resource,
    ]);
    structs!(c, sched: [
        sched_shutdown, sched_poll, sched_remote_shutdown, sched_watchdog, sched_pin_override,
    ]);
    structs!(c, vcpu: [
        vcpu_runstate_info, vcpu_register_runstate_memory_area, vcpu_set_periodic_timer,
        vcpu_set_singleshot_timer, vcpu_register_vcpu_info, vcpu_get_physid,
        vcpu_register_time_memory_area,
    ]);
    structs!(c, version: [
        xen_compile_info, xen_platform_parameters, xen_feature_info, xen_build_id,
    ]);
    structs!(c, io::console: [xencons_interface]);
    types!(c, grant_table: [grant_ref_t, grant_handle_t, grant_status_t]);
    consts!(c, grant_table: [
        GNTTAB_NR_RESERVED_ENTRIES, GNTTAB_RESERVED_CONSOLE, GNTTAB_RESERVED_XENSTORE,
        GTF_invalid, GTF_permit_access, GTF_accept_transfer, GTF_transitive, GTF_type_mask,
        GTF_readonly, GTF_reading, GTF_writing, GTF_PWT, GTF_PCD, GTF_PAT, GTF_sub_page,
        GTF_transfer_committed, GTF_transfer_completed,
        GNTTABOP_map_grant_ref, GNTTABOP_unmap_grant_ref, GNTTABOP_setup_table,
        GNTTABOP_dump_table, GNTTABOP_transfer, GNTTABOP_copy, GNTTABOP_query_size,
        GNTTABOP_unmap_and_replace, GNTTABOP_set_version, GNTTABOP_get_status_frames,
        GNTTABOP_get_version, GNTTABOP_swap_grant_ref, GNTTABOP_cache_flush,
        GNTCOPY_source_gref, GNTCOPY_dest_gref,
        GNTTAB_CACHE_CLEAN, GNTTAB_CACHE_INVAL, GNTTAB_CACHE_SOURCE_GREF,
        GNTMAP_device_map, GNTMAP_host_map, GNTMAP_readonly, GNTMAP_application_map,
        GNTMAP_contains_pte, GNTMAP_guest_avail_mask,
        GNTST_okay, GNTST_general_error, GNTST_bad_domain, GNTST_bad_gntref,
        GNTST_bad_handle, GNTST_bad_virt_addr, GNTST_bad_dev_addr, GNTST_no_device_space,
        GNTST_permission_denied, GNTST_bad_page, GNTST_bad_copy_arg, GNTST_address_too_big,
        GNTST_eagain, GNTST_no_space,
    ]);
    structs!(c, grant_table: [
        grant_entry_v1, grant_entry_header,
        grant_entry_v2_full_page = "__typeof__(((union grant_entry_v2 *)0)->full_page)",
        grant_entry_v2_sub_page = "__typeof__(((union grant_entry_v2 *)0)->sub_page)",
        grant_entry_v2_transitive = "__typeof__(((union grant_entry_v2 *)0)->transitive)",
        grant_entry_v2 = "union grant_entry_v2",
        gnttab_map_grant_ref, gnttab_unmap_grant_ref, gnttab_setup_table, gnttab_dump_table,
        gnttab_transfer,
        gnttab_copy_ptr_u = "__typeof__(((struct gnttab_copy_ptr *)0)->u)",
        gnttab_copy_ptr, gnttab_copy, gnttab_query_size, gnttab_unmap_and_replace,
        gnttab_set_version, gnttab_get_status_frames, gnttab_get_version,
        gnttab_swap_grant_ref,
        gnttab_cache_flush_a = "__typeof__(((struct gnttab_cache_flush *)0)->a)",
        gnttab_cache_flush,
    ]);
    structs!(c, io::xs_wire: [xsd_sockmsg, xenstore_domain_interface]);
    consts!(c, io::xs_wire: [
        XS_CONTROL, XS_DEBUG, XS_DIRECTORY, XS_READ, XS_GET_PERMS, XS_WATCH, XS_UNWATCH,
        XS_TRANSACTION_START, XS_TRANSACTION_END, XS_INTRODUCE, XS_RELEASE,
        XS_GET_DOMAIN_PATH, XS_WRITE, XS_MKDIR, XS_RM, XS_SET_PERMS, XS_WATCH_EVENT, XS_ERROR,
        XS_IS_DOMAIN_INTRODUCED, XS_RESUME, XS_SET_TARGET, XS_RESET_WATCHES, XS_DIRECTORY_PART,
        XS_TYPE_COUNT, XS_INVALID, XS_WATCH_PATH, XS_WATCH_TOKEN, XENSTORE_RING_SIZE,
        XENSTORE_PAYLOAD_MAX, XENSTORE_ABS_PATH_MAX, XENSTORE_REL_PATH_MAX,
        XENSTORE_SERVER_FEATURE_RECONNECTION, XENSTORE_SERVER_FEATURE_ERROR, XENSTORE_CONNECTED,
        XENSTORE_RECONNECT, XENSTORE_ERROR_NONE, XENSTORE_ERROR_COMM, XENSTORE_ERROR_RINGIDX,
        XENSTORE_ERROR_PROTO,
    ]);
    // xsd_errors[]: its length, then each entry's value and name, in order.
    c.push(Check::new(
        "const XSD_ERRORS",
        "sizeof(xsd_errors) / sizeof(xsd_errors[0])",
        XSD_ERRORS.len() as u64,
    ));
    for (i, (errnum, name)) in XSD_ERRORS.iter().enumerate() {
        c.push(Check::new(
            format!("xsd_errors[{i}].errnum"),
            format!("xsd_errors[{i}].errnum"),
            *errnum as u64,
        ));
        c.push(Check::new(
            format!("xsd_errors[{i}].errstring is {name}"),
            format!("strcmp(xsd_errors[{i}].errstring, \"{name}\") == 0"),
            1,
        ));
    }

    fns!(c: [
        XEN_DOMCTL_GRANT_version(0x12),
        XEN_DOMCTL_GRANT_version(0xfff1),
        XEN_CPUID_LEAF(0),
        XEN_CPUID_LEAF(4),
        xen_pfn_to_cr3(0x1234),
        xen_cr3_to_pfn(0x12345fff),
        XENMEMF_address_bits(32),
        XENMEMF_get_address_bits(0x12345),
        XENMEMF_node(3),
        XENMEMF_get_node(0x400),
        XENMEMF_get_node(0),
    ]);
    for idx in [0u32, 1023, 1024, 3000, u32::MAX] {
        c.push(Check::new(
            format!("fn MASK_XENCONS_IDX({idx}, in)"),
            format!("MASK_XENCONS_IDX({idx}u, ((struct xencons_interface *)0)->in)"),
            MASK_XENCONS_IDX(idx, 1024) as u64,
        ));
        c.push(Check::new(
            format!("fn MASK_XENCONS_IDX({idx}, out)"),
            format!("MASK_XENCONS_IDX({idx}u, ((struct xencons_interface *)0)->out)"),
            MASK_XENCONS_IDX(idx, 2048) as u64,
        ));
        c.push(Check::new(
            format!("fn MASK_XENSTORE_IDX({idx})"),
            format!("MASK_XENSTORE_IDX({idx}u)"),
            MASK_XENSTORE_IDX(idx) as u64,
        ));
    }
    c
}

/// Values the headers show only to Xen itself (`__XEN__`) but that guests can reach.
/// They are compared by a second program built with `-D__XEN__` that includes only
/// the headers that allow it (the others need Xen's private headers).
fn xen_view_checks() -> Vec<Check> {
    let mut c = Vec::new();
    consts!(c, event_channel: [EVTCHNOP_reset_cont]);
    c
}

/// Rust's errno values under the keys the C program prints (`errno NAME`).
fn rust_errnos() -> Vec<(String, u64)> {
    let mut v: Vec<(String, u64)> = Errno::ALL
        .iter()
        .map(|e| (format!("errno {e:?}"), e.errno() as u64))
        .collect();
    v.push(("errno EWOULDBLOCK".into(), EWOULDBLOCK as u64));
    v.push(("errno EDEADLOCK".into(), EDEADLOCK as u64));
    v
}

/// The directory holding `xen/` (the libxen-dev headers).
fn include_dir() -> PathBuf {
    let dir = PathBuf::from(std::env::var("XEN_INCLUDE_DIR").unwrap_or("/usr/include".into()));
    let probe = dir.join("xen/domctl.h");
    assert!(
        probe.exists(),
        "Xen 4.17 public headers not found ({} is missing).\n\
         They come from Debian's libxen-dev package: install them with\n\
         \n    sudo apt-get install libxen-dev\n\n\
         (`cargo xtask test` does this; set XEN_INCLUDE_DIR for another location).",
        probe.display()
    );
    dir
}

fn c_program_xen_view(checks: &[Check]) -> String {
    let mut s = String::from(
        "#include <stdio.h>\n#include <stdint.h>\n#include <xen/event_channel.h>\n\n\
         #define P(k, v) printf(\"%s=%llu\\n\", k, (unsigned long long)(v))\n\n\
         int main(void)\n{\n",
    );
    for c in checks {
        writeln!(s, "    P(\"{}\", {});", c.key, c.c_expr).unwrap();
    }
    s.push_str("    return 0;\n}\n");
    s
}

fn c_program(checks: &[Check]) -> String {
    let mut s = String::from(
        "#include <stdio.h>\n#include <stddef.h>\n#include <stdint.h>\n\
         #include <xen/xen.h>\n#include <xen/domctl.h>\n#include <xen/sysctl.h>\n\
         #include <xen/hvm/save.h>\n#include <xen/event_channel.h>\n\
         #include <xen/hvm/hvm_op.h>\n#include <xen/hvm/params.h>\n\
         #include <xen/hvm/hvm_vcpu.h>\n#include <xen/arch-x86/hvm/start_info.h>\n\
         #include <xen/arch-x86/cpuid.h>\n#include <xen/memory.h>\n#include <xen/sched.h>\n\
         #include <xen/vcpu.h>\n#include <xen/version.h>\n#include <xen/features.h>\n\
         #include <xen/elfnote.h>\n#include <xen/io/console.h>\n\
         #include <xen/grant_table.h>\n\
         #include <errno.h>\n#include <string.h>\n#include <xen/io/xs_wire.h>\n\n\
         #define P(k, v) printf(\"%s=%llu\\n\", k, (unsigned long long)(v))\n\n\
         int main(void)\n{\n",
    );
    for c in checks {
        writeln!(s, "    P(\"{}\", {});", c.key, c.c_expr).unwrap();
    }
    for (name, _) in EXTENSION_FLAGS {
        writeln!(
            s,
            "#ifdef {name}\n    printf(\"defined {name}=1\\n\");\n#endif"
        )
        .unwrap();
    }
    // Every XEN_E* (EINTR is only listed for Xen itself, hence __XEN__).
    s.push_str(
        "#define XEN_ERRNO(name, value) P(\"errno \" #name, value);\n\
         #define __XEN__ 1\n#include <xen/errno.h>\n#undef __XEN__\n    return 0;\n}\n",
    );
    s
}

/// Compile (with `define`, `__XEN_TOOLS__` or `__XEN__`) and run a C program; its
/// output as key -> value.
fn run_c(name: &str, define: &str, program: &str) -> BTreeMap<String, u64> {
    let include = include_dir();
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR"));
    let src = dir.join(format!("{name}.c"));
    let exe = dir.join(name);
    std::fs::write(&src, program).expect("write the C program");
    let cc = std::env::var("CC").unwrap_or("cc".into());
    let out = Command::new(&cc)
        .args(["-std=gnu11", "-Wall", &format!("-D{define}"), "-I"])
        .arg(&include)
        .arg("-o")
        .arg(&exe)
        .arg(&src)
        .output()
        .unwrap_or_else(|e| panic!("cannot run the C compiler `{cc}` ({e}): apt-get install gcc"));
    assert!(
        out.status.success(),
        "the C program ({}) does not compile against {}:\n{}",
        src.display(),
        include.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    let run = Command::new(&exe).output().expect("run the C program");
    assert!(run.status.success(), "the C program failed");
    let mut map = BTreeMap::new();
    for line in String::from_utf8(run.stdout).expect("utf-8 output").lines() {
        let (k, v) = line.rsplit_once('=').expect("KEY=VALUE line");
        let v: u64 = v.parse().expect("decimal value");
        assert!(
            map.insert(k.to_string(), v).is_none(),
            "C printed {k} twice"
        );
    }
    map
}

#[test]
fn rust_mirror_matches_xen_4_17_headers() {
    let mut checks = checks();
    let mut c = run_c("abi_conformance", "__XEN_TOOLS__", &c_program(&checks));
    let xen_view = xen_view_checks();
    for (k, v) in run_c(
        "abi_conformance_xen",
        "__XEN__",
        &c_program_xen_view(&xen_view),
    ) {
        assert!(c.insert(k.clone(), v).is_none(), "C printed {k} twice");
    }
    checks.extend(xen_view);

    let mut rust = BTreeMap::new();
    for ch in &checks {
        assert!(
            rust.insert(ch.key.clone(), ch.rust).is_none(),
            "duplicate check {}",
            ch.key
        );
    }
    for (k, v) in rust_errnos() {
        assert!(rust.insert(k.clone(), v).is_none(), "duplicate check {k}");
    }

    let mut mismatches = Vec::new();
    let mut documented = Vec::new();
    for (key, &r) in &rust {
        match c.get(key) {
            None => mismatches.push(format!("{key}: Rust {r:#x}, absent from the C headers")),
            Some(&cv) if cv == r => {}
            Some(&cv) => match DOCUMENTED_DIFFS.iter().find(|d| d.0 == key) {
                Some(&(_, want_c, why)) if cv == want_c => {
                    documented.push(format!("{key}: Rust {r:#x}, C {cv:#x} ({why})"))
                }
                _ => mismatches.push(format!("{key}: Rust {r:#x} ({r}), C {cv:#x} ({cv})")),
            },
        }
    }
    for (key, cv) in &c {
        if key.starts_with("defined ") {
            mismatches.push(format!("{key}: the 4.17 headers define an extension flag"));
        } else if !rust.contains_key(key) {
            mismatches.push(format!("{key}: C {cv:#x}, not mirrored in Rust"));
        }
    }
    // The extension flags must lie above every flag 4.17 defines.
    let cdf_4_17_mask = (c["const XEN_DOMCTL_CDF_MAX"] << 1) - 1;
    for &(name, bit) in EXTENSION_FLAGS {
        if bit as u64 & cdf_4_17_mask != 0 {
            mismatches.push(format!("{name} ({bit:#x}) overlaps a Xen 4.17 flag"));
        }
    }

    for d in &documented {
        println!("documented difference: {d}");
    }
    for m in &mismatches {
        println!("MISMATCH {m}");
    }
    println!(
        "abi conformance: {} items compared, {} mismatches ({} documented differences)",
        rust.len(),
        mismatches.len(),
        documented.len()
    );
    assert!(
        mismatches.is_empty(),
        "{} mismatches:\n{}",
        mismatches.len(),
        mismatches.join("\n")
    );
    assert_eq!(
        documented.len(),
        DOCUMENTED_DIFFS.len(),
        "a documented difference disappeared"
    );
}

/// A public item of `src/`, found by reading the source.
#[derive(Debug)]
struct Item {
    kind: &'static str,
    name: String,
    file: PathBuf,
}

/// Top-level `pub const`, `pub const fn`, `pub type` (column 0) and every
/// `pub struct/union/enum` (including those inside `abi_struct!`/`bitflags!`) of
/// the crate, skipping macro definitions (lines with `$`).
fn public_items() -> Vec<Item> {
    fn walk(dir: &Path, out: &mut Vec<PathBuf>) {
        for e in std::fs::read_dir(dir).expect("read src/") {
            let p = e.expect("dir entry").path();
            if p.is_dir() {
                walk(&p, out);
            } else if p.extension().is_some_and(|x| x == "rs") {
                out.push(p);
            }
        }
    }
    let mut files = Vec::new();
    walk(
        &Path::new(env!("CARGO_MANIFEST_DIR")).join("src"),
        &mut files,
    );
    files.sort();
    let ident = |s: &str| -> String {
        s.chars()
            .take_while(|c| c.is_alphanumeric() || *c == '_')
            .collect()
    };
    let mut items = Vec::new();
    for file in files {
        let text = std::fs::read_to_string(&file).expect("read source");
        for line in text.lines().filter(|l| !l.contains('$')) {
            let t = line.trim_start();
            let found = if let Some(r) = line.strip_prefix("pub const fn ") {
                Some(("fn", ident(r)))
            } else if let Some(r) = line.strip_prefix("pub const ") {
                Some(("const", ident(r)))
            } else if let Some(r) = line.strip_prefix("pub type ") {
                Some(("type", ident(r)))
            } else {
                ["pub struct ", "pub union ", "pub enum "]
                    .iter()
                    .find_map(|p| t.strip_prefix(p))
                    .map(|r| ("struct", ident(r)))
            };
            if let Some((kind, name)) = found {
                items.push(Item {
                    kind,
                    name,
                    file: file.clone(),
                });
            }
        }
    }
    items
}

#[test]
fn every_public_item_is_covered() {
    let mut checks = checks();
    checks.extend(xen_view_checks());
    let keys: Vec<&str> = checks.iter().map(|c| c.key.as_str()).collect();
    let errnos = rust_errnos();
    let items = public_items();
    assert!(
        items.len() > 500,
        "the source scan found only {} items",
        items.len()
    );

    let covered = |it: &Item| -> bool {
        if PROJECT_ONLY.iter().any(|p| p.0 == it.name) {
            return true;
        }
        match it.kind {
            "const" => {
                keys.contains(&format!("const {}", it.name).as_str())
                    || errnos.iter().any(|e| e.0 == format!("errno {}", it.name))
            }
            // stringify! may put a space between a macro's name and its arguments.
            "fn" => keys.iter().any(|k| {
                k.strip_prefix("fn ")
                    .and_then(|r| r.strip_prefix(it.name.as_str()))
                    .is_some_and(|r| r.starts_with('(') || r.starts_with(" ("))
            }),
            "type" => keys.contains(&format!("type {}", it.name).as_str()),
            _ => keys.contains(&format!("size {}", it.name).as_str()),
        }
    };
    let missing: Vec<String> = items
        .iter()
        .filter(|it| !covered(it))
        .map(|it| format!("{} {} ({})", it.kind, it.name, it.file.display()))
        .collect();
    assert!(
        missing.is_empty(),
        "public items not checked against the C headers (add them to tests/c_headers.rs, \
         or to PROJECT_ONLY with a reason):\n{}",
        missing.join("\n")
    );
    let stale: Vec<&str> = PROJECT_ONLY
        .iter()
        .filter(|p| !items.iter().any(|it| it.name == p.0))
        .map(|p| p.0)
        .collect();
    assert!(
        stale.is_empty(),
        "PROJECT_ONLY names items that no longer exist: {stale:?}"
    );
    println!("abi coverage: {} public items, all covered", items.len());
}
