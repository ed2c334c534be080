//! altp2m on backends that switch views in hardware (VMX: every visible view an
//! EPTP in the EPTP list, VMFUNC leaf 0 switching without an exit, EPT-violation
//! #VE delivered by the CPU). Vendor-neutral: it only uses the vCPU interface's
//! optional [`Vcpu::set_altp2m_views`], [`Vcpu::altp2m_view`] and
//! [`Vcpu::set_ve_info`]; where a backend declines them (SVM), nothing here
//! applies and the one-root path plus the #VE emulation in `exit.rs` do the work.
//!
//! Mirrors Xen's `vmx_vcpu_update_vmfunc_ve` / `vmx_vcpu_update_eptp` (which view
//! the hardware runs, which EPTPs the guest may reach, where #VE is written) and
//! `vmx_vmexit_handler`'s `p2m_altp2m_check`-style resync of the vCPU's view index
//! after the guest switched with VMFUNC.

use alloc::vec::Vec;

use xen_public_abi::xen::domid_t;
use xen_public_abi::XenResult;

use super::stage2;
use super::vcpu::Vcpu;
use crate::common::hvm::HvmDomain;
use crate::common::memory::{ViewId, MAX_ALTP2M};

/// Before an entry: hand the backend the #VE information area (the machine frame of
/// the vCPU's `vcpu_enable_notify` gfn) and, while altp2m is active, the EPTP list of
/// the visible views plus the current view. `Ok(true)` when the backend now runs
/// the vCPU's view itself (the caller then installs no single root).
pub fn install(
    vcpu: &mut dyn Vcpu,
    domid: domid_t,
    hvm: &mut HvmDomain,
    vcpu_id: u32,
) -> XenResult<bool> {
    let p2m = &mut hvm.p2m;
    let ve_hpa = hvm
        .vcpus
        .get(vcpu_id as usize)
        .and_then(|v| v.veinfo_gfn)
        .and_then(|gfn| p2m.host_entry(gfn))
        .map(|e| e.mfn << 12);
    // False: no hardware #VE; stage-2 fault exits emulate it (exit.rs).
    let _ = vcpu.set_ve_info(ve_hpa);
    let ViewId::Alt(current) = p2m.current_view(vcpu_id) else {
        // altp2m off: guest-side switching off too.
        let _ = vcpu.set_altp2m_views(&[], 0, 0);
        return Ok(false);
    };
    let enc = vcpu.stage2_encoder();
    let mut list = Vec::with_capacity(MAX_ALTP2M);
    for i in 0..MAX_ALTP2M as u16 {
        list.push(if p2m.view_visible(i) {
            Some(stage2::root_for(domid, p2m, ViewId::Alt(i), enc)?)
        } else {
            None
        });
    }
    let root = stage2::root_for(domid, p2m, ViewId::Alt(current), enc)?;
    Ok(vcpu.set_altp2m_views(&list, current, root))
}

/// After an exit: the guest may have switched views with VMFUNC; make the p2m's
/// idea of the vCPU's view follow the hardware.
pub fn sync_view(vcpu: &dyn Vcpu, hvm: &mut HvmDomain, vcpu_id: u32) {
    let Some(hw) = vcpu.altp2m_view() else {
        return;
    };
    let p2m = &mut hvm.p2m;
    if p2m.altp2m_active() && p2m.vcpu_altp2m_idx(vcpu_id) != hw {
        // Only a visible view can be in the EPTP list, so this succeeds.
        let _ = p2m.vmfunc_switch(vcpu_id, hw);
    }
}
