//! `xen/include/public/sched.h`: `__HYPERVISOR_sched_op`, its `SCHEDOP_*` commands,
//! their argument structs and the `SHUTDOWN_*` reasons.

use crate::xen::{domid_t, XEN_GUEST_HANDLE_64};

/// `SCHEDOP_yield`: give up the CPU voluntarily.
pub const SCHEDOP_yield: u32 = 0;
/// `SCHEDOP_block`: block until an event arrives.
pub const SCHEDOP_block: u32 = 1;
/// `SCHEDOP_shutdown`: stop the calling domain (`struct sched_shutdown`).
pub const SCHEDOP_shutdown: u32 = 2;
/// `SCHEDOP_poll`: block until one of a set of ports is pending (`struct sched_poll`).
pub const SCHEDOP_poll: u32 = 3;
/// `SCHEDOP_remote_shutdown`: stop another domain (`struct sched_remote_shutdown`).
pub const SCHEDOP_remote_shutdown: u32 = 4;
/// `SCHEDOP_shutdown_code`: record a shutdown reason without shutting down.
pub const SCHEDOP_shutdown_code: u32 = 5;
/// `SCHEDOP_watchdog`: set up or kick a domain watchdog (`struct sched_watchdog`).
pub const SCHEDOP_watchdog: u32 = 6;
/// `SCHEDOP_pin_override`: temporarily pin the vCPU (hardware domain only).
pub const SCHEDOP_pin_override: u32 = 7;

abi_struct! {
    /// `struct sched_shutdown`.
    pub struct sched_shutdown [size 4, align 4] {
        /// `SHUTDOWN_*`.
        0 => reason: u32,
    }
}

abi_struct! {
    /// `struct sched_poll`.
    pub struct sched_poll [size 24, align 8] {
        /// `XEN_GUEST_HANDLE(evtchn_port_t)`: the ports to poll.
        0 => ports: XEN_GUEST_HANDLE_64,
        8 => nr_ports: u32,
        12 => _implicit0: [u8; 4],
        /// Absolute system time (ns) to give up at; 0 for none.
        16 => timeout: u64,
    }
}

abi_struct! {
    /// `struct sched_remote_shutdown`.
    pub struct sched_remote_shutdown [size 8, align 4] {
        /// The domain to shut down.
        0 => domain_id: domid_t,
        2 => _implicit0: [u8; 2],
        /// `SHUTDOWN_*`.
        4 => reason: u32,
    }
}

abi_struct! {
    /// `struct sched_watchdog`.
    pub struct sched_watchdog [size 8, align 4] {
        0 => id: u32,
        4 => timeout: u32,
    }
}

abi_struct! {
    /// `struct sched_pin_override`.
    pub struct sched_pin_override [size 4, align 4] {
        0 => pcpu: i32,
    }
}

/// `SHUTDOWN_poweroff`: the domain exited normally.
pub const SHUTDOWN_poweroff: u32 = 0;
/// `SHUTDOWN_reboot`: clean up, kill, restart.
pub const SHUTDOWN_reboot: u32 = 1;
/// `SHUTDOWN_suspend`: clean up, save suspend info, kill.
pub const SHUTDOWN_suspend: u32 = 2;
/// `SHUTDOWN_crash`: the domain crashed.
pub const SHUTDOWN_crash: u32 = 3;
/// `SHUTDOWN_watchdog`: restart because the watchdog expired.
pub const SHUTDOWN_watchdog: u32 = 4;
/// `SHUTDOWN_soft_reset`: the domain asks for a soft reset.
pub const SHUTDOWN_soft_reset: u32 = 5;
/// `SHUTDOWN_MAX`: the highest valid reason.
pub const SHUTDOWN_MAX: u32 = 5;
