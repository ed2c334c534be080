//! Helpers for the dom0 orchestrator roles: domctl getdomaininfo and waiting
//! for a domU to stop.

use guest_rt::xen;
use xen_public_abi::domctl::*;
use xen_public_abi::xen::__HYPERVISOR_domctl;
use zerocopy::FromZeros;

/// What getdomaininfo said about a domain.
#[derive(Clone, Copy, Debug)]
pub struct Info {
    pub domain: u16,
    pub flags: u32,
}

impl Info {
    /// Shut down (`XEN_DOMINF_shutdown`) or dying.
    pub fn stopped(&self) -> bool {
        self.flags & (XEN_DOMINF_shutdown | XEN_DOMINF_dying) != 0
    }

    /// The shutdown code (`SHUTDOWN_*`), valid when [`Info::stopped`].
    pub fn code(&self) -> u32 {
        (self.flags >> XEN_DOMINF_shutdownshift) & XEN_DOMINF_shutdownmask
    }
}

/// `XEN_DOMCTL_getdomaininfo(domid)`; the returned domain must be `domid`
/// (4.17 answers with the next existing domain at or above it).
pub fn getdomaininfo(domid: u16) -> Result<Info, i64> {
    let mut op = xen_domctl::new_zeroed();
    op.cmd = XEN_DOMCTL_getdomaininfo;
    op.interface_version = XEN_DOMCTL_INTERFACE_VERSION;
    op.domain = domid;
    // domctl takes the struct pointer as its only argument.
    let rc = xen::hypercall(
        __HYPERVISOR_domctl,
        &mut op as *mut xen_domctl as u64,
        0,
        0,
        0,
        0,
    );
    if rc != 0 {
        return Err(rc);
    }
    let info: xen_domctl_getdomaininfo = op.u.get();
    Ok(Info {
        domain: info.domain,
        flags: info.flags,
    })
}

/// Yields until domain `domid` is shut down or dying; `None` after `rounds` yields.
pub fn wait_stopped(domid: u16, rounds: u64) -> Option<Info> {
    for _ in 0..rounds {
        if let Ok(info) = getdomaininfo(domid) {
            if info.domain == domid && info.stopped() {
                return Some(info);
            }
        }
        xen::yield_now();
    }
    None
}

/// `XEN_DOMCTL_unpausedomain(domid)`: RAX.
pub fn unpausedomain(domid: u16) -> i64 {
    let mut op = xen_domctl::new_zeroed();
    op.cmd = XEN_DOMCTL_unpausedomain;
    op.interface_version = XEN_DOMCTL_INTERFACE_VERSION;
    op.domain = domid;
    xen::hypercall(
        __HYPERVISOR_domctl,
        &mut op as *mut xen_domctl as u64,
        0,
        0,
        0,
        0,
    )
}

/// `XEN_DOMCTL_destroydomain(domid)`: RAX.
pub fn destroydomain(domid: u16) -> i64 {
    let mut op = xen_domctl::new_zeroed();
    op.cmd = XEN_DOMCTL_destroydomain;
    op.interface_version = XEN_DOMCTL_INTERFACE_VERSION;
    op.domain = domid;
    xen::hypercall(
        __HYPERVISOR_domctl,
        &mut op as *mut xen_domctl as u64,
        0,
        0,
        0,
        0,
    )
}

/// `XEN_SYSCTL_debug_keys`: press `keys` as if on the hypervisor's console
/// ('P' resets the per-vCPU exit/injection counters, 'p' prints them; the
/// bench reads the printed lines). Returns the hypercall's result.
pub fn debug_keys(keys: &[u8]) -> i64 {
    use xen_public_abi::sysctl::{xen_sysctl, XEN_SYSCTL_debug_keys, XEN_SYSCTL_INTERFACE_VERSION};
    let mut op = xen_sysctl::new_zeroed();
    op.cmd = XEN_SYSCTL_debug_keys;
    op.interface_version = XEN_SYSCTL_INTERFACE_VERSION;
    op.u.raw[0] = keys.as_ptr() as u64;
    op.u.raw[1] = keys.len() as u64;
    xen::hypercall(
        xen_public_abi::xen::__HYPERVISOR_sysctl,
        &mut op as *mut xen_sysctl as u64,
        0,
        0,
        0,
        0,
    )
}
