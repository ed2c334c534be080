//! `xen/include/public/sched.h`: `__HYPERVISOR_sched_op` and its `SCHEDOP_*`
//! sub-ops (yield, block, shutdown, poll, ...) with the `SHUTDOWN_*` reasons.

use crate::xen::{domid_t, XEN_GUEST_HANDLE_64};

/// `SCHEDOP_yield`: give up the CPU, stay runnable.
pub const SCHEDOP_yield: u32 = 0;
/// `SCHEDOP_block`: sleep until an event is pending (and unmask events).
pub const SCHEDOP_block: u32 = 1;
/// `SCHEDOP_shutdown`: `sched_shutdown`.
pub const SCHEDOP_shutdown: u32 = 2;
/// `SCHEDOP_poll`: `sched_poll`, block until one of the ports is pending.
pub const SCHEDOP_poll: u32 = 3;
/// `SCHEDOP_remote_shutdown`: `sched_remote_shutdown` (privileged).
pub const SCHEDOP_remote_shutdown: u32 = 4;
/// `SCHEDOP_shutdown_code`: `sched_shutdown`, record the reason only.
pub const SCHEDOP_shutdown_code: u32 = 5;
/// `SCHEDOP_watchdog`: `sched_watchdog`.
pub const SCHEDOP_watchdog: u32 = 6;
/// `SCHEDOP_pin_override`: `sched_pin_override` (hardware domain).
pub const SCHEDOP_pin_override: u32 = 7;

/// `SHUTDOWN_poweroff`.
pub const SHUTDOWN_poweroff: u32 = 0;
/// `SHUTDOWN_reboot`.
pub const SHUTDOWN_reboot: u32 = 1;
/// `SHUTDOWN_suspend`.
pub const SHUTDOWN_suspend: u32 = 2;
/// `SHUTDOWN_crash`.
pub const SHUTDOWN_crash: u32 = 3;
/// `SHUTDOWN_watchdog`.
pub const SHUTDOWN_watchdog: u32 = 4;
/// `SHUTDOWN_soft_reset`.
pub const SHUTDOWN_soft_reset: u32 = 5;
/// `SHUTDOWN_MAX`: the highest reason.
pub const SHUTDOWN_MAX: u32 = 5;
static_assertions::const_assert_eq!(SHUTDOWN_MAX, SHUTDOWN_soft_reset);

abi_struct! {
    /// `struct sched_shutdown` (`SCHEDOP_shutdown`, `SCHEDOP_shutdown_code`).
    pub struct sched_shutdown [size 4, align 4] {
        /// `SHUTDOWN_*`.
        0 => reason: u32,
    }
}

abi_struct! {
    /// `struct sched_poll` (`SCHEDOP_poll`).
    pub struct sched_poll [size 24, align 8] {
        /// Guest handle of `evtchn_port_t[nr_ports]`.
        0 => ports: XEN_GUEST_HANDLE_64,
        8 => nr_ports: u32,
        12 => _implicit0: [u8; 4],
        /// Absolute system time (ns) to give up at; 0 = never.
        16 => timeout: u64,
    }
}

abi_struct! {
    /// `struct sched_remote_shutdown` (`SCHEDOP_remote_shutdown`).
    pub struct sched_remote_shutdown [size 8, align 4] {
        0 => domain_id: domid_t,
        2 => _implicit0: [u8; 2],
        /// `SHUTDOWN_*`.
        4 => reason: u32,
    }
}

abi_struct! {
    /// `struct sched_watchdog` (`SCHEDOP_watchdog`).
    pub struct sched_watchdog [size 8, align 4] {
        /// 0 = allocate a new watchdog; else the watchdog to kick/stop.
        0 => id: u32,
        /// Seconds; 0 = stop the watchdog.
        4 => timeout: u32,
    }
}

abi_struct! {
    /// `struct sched_pin_override` (`SCHEDOP_pin_override`).
    pub struct sched_pin_override [size 4, align 4] {
        /// Physical CPU, or < 0 to end the override.
        0 => pcpu: i32,
    }
}
