//! `xen/include/public/vcpu.h`: `__HYPERVISOR_vcpu_op` and its `VCPUOP_*`
//! sub-ops: bring vCPUs up and down, runstate, timers, and moving `vcpu_info`
//! out of `shared_info` (`VCPUOP_register_vcpu_info`).

/// `VCPUOP_initialise`: set up a vCPU's initial state (HVM: `vcpu_hvm_context`).
pub const VCPUOP_initialise: u32 = 0;
/// `VCPUOP_up`.
pub const VCPUOP_up: u32 = 1;
/// `VCPUOP_down`.
pub const VCPUOP_down: u32 = 2;
/// `VCPUOP_is_up`.
pub const VCPUOP_is_up: u32 = 3;
/// `VCPUOP_get_runstate_info`: `vcpu_runstate_info`.
pub const VCPUOP_get_runstate_info: u32 = 4;
/// `VCPUOP_register_runstate_memory_area`: `vcpu_register_runstate_memory_area`.
pub const VCPUOP_register_runstate_memory_area: u32 = 5;
/// `VCPUOP_set_periodic_timer`: `vcpu_set_periodic_timer`.
pub const VCPUOP_set_periodic_timer: u32 = 6;
/// `VCPUOP_stop_periodic_timer`.
pub const VCPUOP_stop_periodic_timer: u32 = 7;
/// `VCPUOP_set_singleshot_timer`: `vcpu_set_singleshot_timer`.
pub const VCPUOP_set_singleshot_timer: u32 = 8;
/// `VCPUOP_stop_singleshot_timer`.
pub const VCPUOP_stop_singleshot_timer: u32 = 9;
/// `VCPUOP_register_vcpu_info`: `vcpu_register_vcpu_info`.
pub const VCPUOP_register_vcpu_info: u32 = 10;
/// `VCPUOP_send_nmi`.
pub const VCPUOP_send_nmi: u32 = 11;
/// `VCPUOP_get_physid`: `vcpu_get_physid`.
pub const VCPUOP_get_physid: u32 = 12;
/// `VCPUOP_register_vcpu_time_memory_area`: `vcpu_register_time_memory_area`.
pub const VCPUOP_register_vcpu_time_memory_area: u32 = 13;

/// `RUNSTATE_running`.
pub const RUNSTATE_running: i32 = 0;
/// `RUNSTATE_runnable`.
pub const RUNSTATE_runnable: i32 = 1;
/// `RUNSTATE_blocked`.
pub const RUNSTATE_blocked: i32 = 2;
/// `RUNSTATE_offline`.
pub const RUNSTATE_offline: i32 = 3;
/// `XEN_RUNSTATE_UPDATE`: set in `state_entry_time` while Xen updates the record.
pub const XEN_RUNSTATE_UPDATE: u64 = 1 << 63;

abi_struct! {
    /// `struct vcpu_runstate_info`.
    pub struct vcpu_runstate_info [size 48, align 8] {
        /// `RUNSTATE_*`.
        0 => state: i32,
        4 => _implicit0: [u8; 4],
        /// System time of the last state change (+ `XEN_RUNSTATE_UPDATE`).
        8 => state_entry_time: u64,
        /// Time (ns) spent in each state.
        16 => time: [u64; 4],
    }
}

abi_struct! {
    /// `struct vcpu_register_runstate_memory_area`.
    pub struct vcpu_register_runstate_memory_area [size 8, align 8] {
        /// Guest-virtual address (C: a union of handle, pointer and `u64 p`).
        0 => addr: u64,
    }
}

abi_struct! {
    /// `struct vcpu_set_periodic_timer`.
    pub struct vcpu_set_periodic_timer [size 8, align 8] {
        0 => period_ns: u64,
    }
}

/// `_VCPU_SSHOTTMR_future`.
pub const _VCPU_SSHOTTMR_future: u32 = 0;
/// `VCPU_SSHOTTMR_future`: fail with `-ETIME` if the timeout is in the past.
pub const VCPU_SSHOTTMR_future: u32 = 1 << _VCPU_SSHOTTMR_future;
assert_flags!([VCPU_SSHOTTMR_future = 0]);

abi_struct! {
    /// `struct vcpu_set_singleshot_timer`.
    pub struct vcpu_set_singleshot_timer [size 16, align 8] {
        /// Absolute system time (ns).
        0 => timeout_abs_ns: u64,
        /// `VCPU_SSHOTTMR_*`.
        8 => flags: u32,
        12 => _implicit0: [u8; 4],
    }
}

abi_struct! {
    /// `struct vcpu_register_vcpu_info`: place this vCPU's `vcpu_info` at
    /// `mfn`:`offset` (it must not cross the page).
    pub struct vcpu_register_vcpu_info [size 16, align 8] {
        0 => mfn: u64,
        8 => offset: u32,
        12 => rsvd: u32,
    }
}

abi_struct! {
    /// `struct vcpu_get_physid`.
    pub struct vcpu_get_physid [size 8, align 8] {
        /// APIC id (bits 31:0), ACPI id (bits 63:32).
        0 => phys_id: u64,
    }
}

abi_struct! {
    /// `struct vcpu_register_time_memory_area`.
    pub struct vcpu_register_time_memory_area [size 8, align 8] {
        /// Guest-virtual address of a `vcpu_time_info` (C: a union).
        0 => addr: u64,
    }
}
