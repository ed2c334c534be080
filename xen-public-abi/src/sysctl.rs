//! `xen/include/public/sysctl.h`: system-wide control operations of
//! `__HYPERVISOR_sysctl` (privileged). Mirrored: the `xen_sysctl` envelope and
//! `XEN_SYSCTL_get_cpu_policy` (`xen_sysctl_cpu_policy`); other payloads are added
//! next to it as they are implemented.

use crate::xen::XEN_GUEST_HANDLE_64;

/// `XEN_SYSCTL_INTERFACE_VERSION` (4.17).
pub const XEN_SYSCTL_INTERFACE_VERSION: u32 = 0x0000_0015;

/// `XEN_SYSCTL_get_cpu_policy`.
pub const XEN_SYSCTL_get_cpu_policy: u32 = 29;

/// `XEN_SYSCTL_cpu_policy_raw`: what the hardware reports.
pub const XEN_SYSCTL_cpu_policy_raw: u32 = 0;
/// `XEN_SYSCTL_cpu_policy_host`: what the hypervisor itself uses.
pub const XEN_SYSCTL_cpu_policy_host: u32 = 1;
/// `XEN_SYSCTL_cpu_policy_pv_max`.
pub const XEN_SYSCTL_cpu_policy_pv_max: u32 = 2;
/// `XEN_SYSCTL_cpu_policy_hvm_max`: the most an HVM guest may be given.
pub const XEN_SYSCTL_cpu_policy_hvm_max: u32 = 3;
/// `XEN_SYSCTL_cpu_policy_pv_default`.
pub const XEN_SYSCTL_cpu_policy_pv_default: u32 = 4;
/// `XEN_SYSCTL_cpu_policy_hvm_default`: what an HVM guest gets unless narrowed.
pub const XEN_SYSCTL_cpu_policy_hvm_default: u32 = 5;

abi_struct! {
    /// `struct xen_sysctl_cpu_policy` (`XEN_SYSCTL_get_cpu_policy`).
    pub struct xen_sysctl_cpu_policy [size 32, align 8] {
        /// IN: `XEN_SYSCTL_cpu_policy_*`.
        0 => index: u32,
        /// IN/OUT: entries in / written to `leaves` (the maximum when the
        /// handle is NULL).
        4 => nr_leaves: u32,
        /// IN/OUT: likewise for `msrs`.
        8 => nr_msrs: u32,
        /// Must be zero.
        12 => _rsvd: u32,
        /// `XEN_GUEST_HANDLE_64(xen_cpuid_leaf_t)`, OUT.
        16 => leaves: XEN_GUEST_HANDLE_64,
        /// `XEN_GUEST_HANDLE_64(xen_msr_entry_t)`, OUT.
        24 => msrs: XEN_GUEST_HANDLE_64,
    }
}

abi_union! {
    /// The 128-byte union `u` of `struct xen_sysctl` (`uint8_t pad[128]` plus the
    /// members this project mirrors).
    pub union xen_sysctl_u [size 128, align 8] as [u64; 16] {
        cpu_policy: xen_sysctl_cpu_policy,
    }
}

abi_struct! {
    /// `struct xen_sysctl`: the argument of `__HYPERVISOR_sysctl`.
    pub struct xen_sysctl [size 136, align 8] {
        /// `XEN_SYSCTL_*`.
        0 => cmd: u32,
        /// Must be `XEN_SYSCTL_INTERFACE_VERSION`.
        4 => interface_version: u32,
        /// The command's payload.
        8 => u: xen_sysctl_u,
    }
}
