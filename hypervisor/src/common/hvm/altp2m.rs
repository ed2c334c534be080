//! `HVMOP_altp2m` (interface version 1): every sub-op, gated by `HVM_PARAM_ALTP2M`, and
//! the access check the backends run on an NPF / EPT-violation exit.
//!
//! Mirrors Xen 4.17's `do_altp2m_op` (`xen/arch/x86/hvm/hvm.c`), the dummy XSM policy
//! `xsm_hvm_altp2mhvm_op` (`xen/include/xsm/dummy.h`), `altp2m_vcpu_enable_ve` /
//! `altp2m_vcpu_disable_ve` (`xen/arch/x86/mm/altp2m.c`) and `p2m_mem_access_check`
//! (`xen/arch/x86/mm/mem_access.c`). The views themselves live in
//! [`crate::common::memory::P2m`].
//!
//! Order of checks (the tests pin it): altp2m unsupported `-EOPNOTSUPP`; copy-in
//! `-EFAULT`; bad version or non-zero pad `-EINVAL`; unknown sub-op `-EOPNOTSUPP`;
//! domain lookup `-ESRCH`; non-HVM `-EOPNOTSUPP`; altp2m not active (all but
//! get/set_domain_state) `-EOPNOTSUPP`; mode disabled `-EINVAL`; the mode rule
//! ([`xsm_hvm_altp2mhvm_op`], `-EPERM`); then the sub-op's own checks.

use super::{with_domain, Caller, DomainRef, HvmDomain, HvmEffect, HvmEnv};
use crate::common::guest_access::{copy_from_guest, copy_to_guest, GuestAccess, GuestMemory};
use crate::common::memory::{P2mAccess, Rights, ViewId, INVALID_ALTP2M, INVALID_GFN};
use alloc::vec::Vec;
use xen_public_abi::hvm::hvm_op::*;
use xen_public_abi::hvm::params::*;
use xen_public_abi::{DomId, Errno, XenResult};

/// Entries of `HVMOP_altp2m_set_mem_access_multi` done per hypercall entry before
/// it is preempted (Xen's 0x3F mask: 64).
pub const SET_MEM_ACCESS_MULTI_STRIDE: u64 = 0x40;
/// Where `u.set_mem_access_multi.opaque` sits in the guest's `xen_hvm_altp2m_op`.
const OPAQUE_OFFSET: u64 = (core::mem::offset_of!(xen_hvm_altp2m_op, u)
    + core::mem::offset_of!(xen_hvm_altp2m_set_mem_access_multi, opaque))
    as u64;

/// Every sub-op number of interface version 1.
pub const ALTP2M_SUBOPS: [u32; 16] = [
    HVMOP_altp2m_get_domain_state,
    HVMOP_altp2m_set_domain_state,
    HVMOP_altp2m_vcpu_enable_notify,
    HVMOP_altp2m_create_p2m,
    HVMOP_altp2m_destroy_p2m,
    HVMOP_altp2m_switch_p2m,
    HVMOP_altp2m_set_mem_access,
    HVMOP_altp2m_change_gfn,
    HVMOP_altp2m_set_mem_access_multi,
    HVMOP_altp2m_set_suppress_ve,
    HVMOP_altp2m_get_suppress_ve,
    HVMOP_altp2m_get_mem_access,
    HVMOP_altp2m_vcpu_disable_notify,
    HVMOP_altp2m_get_p2m_idx,
    HVMOP_altp2m_set_suppress_ve_multi,
    HVMOP_altp2m_set_visibility,
];

/// The dummy XSM policy for altp2m: who may run sub-op `cmd` on domain `d` in `mode`.
///
/// | mode | who may call |
/// | --- | --- |
/// | mixed | the guest on itself, and the privileged domain: every sub-op |
/// | external | only the privileged domain (the guest on itself: `-EPERM`) |
/// | limited | the guest on itself only `vcpu_enable_notify`; the rest only the privileged domain |
/// | other | nobody (`-EPERM`) |
///
/// The domain's device model (if any) counts as privileged for it, as in Xen.
pub fn xsm_hvm_altp2mhvm_op(caller: &Caller, d: DomId, mode: u64, cmd: u32) -> XenResult<()> {
    match mode {
        XEN_ALTP2M_mixed => caller.xsm_target(d),
        XEN_ALTP2M_external => caller.xsm_dm_priv(d),
        XEN_ALTP2M_limited if cmd == HVMOP_altp2m_vcpu_enable_notify => caller.xsm_target(d),
        XEN_ALTP2M_limited => caller.xsm_dm_priv(d),
        _ => Err(Errno::EPERM),
    }
}

/// `HVMOP_altp2m`.
pub fn do_altp2m_op(env: &mut dyn HvmEnv, guest: &mut dyn GuestAccess, arg: u64) -> XenResult<i64> {
    if !env.altp2m_supported() {
        return Err(Errno::EOPNOTSUPP);
    }
    let a: xen_hvm_altp2m_op = copy_from_guest(guest, arg)?;
    if a.pad1 != 0 || a.pad2 != 0 || a.version != HVMOP_ALTP2M_INTERFACE_VERSION {
        return Err(Errno::EINVAL);
    }
    if !ALTP2M_SUBOPS.contains(&a.cmd) {
        return Err(Errno::EOPNOTSUPP);
    }
    let caller = Caller::of(env);
    let ve_supported = env.ve_supported();
    let domid = caller.resolve(a.domain);
    with_domain(env, domid, |d, fx| {
        if !d.is_hvm {
            return Err(Errno::EOPNOTSUPP);
        }
        if a.cmd != HVMOP_altp2m_get_domain_state
            && a.cmd != HVMOP_altp2m_set_domain_state
            && !d.hvm.p2m.altp2m_active()
        {
            return Err(Errno::EOPNOTSUPP);
        }
        let mode = d.hvm.altp2m_mode();
        if mode == XEN_ALTP2M_disabled {
            return Err(Errno::EINVAL);
        }
        xsm_hvm_altp2mhvm_op(&caller, domid, mode, a.cmd)?;
        let mut op = Op {
            caller: &caller,
            d,
            fx,
            guest,
            arg,
            a,
            ve_supported,
        };
        op.run()?;
        Ok(0)
    })
}

/// One `HVMOP_altp2m` call past the common checks.
struct Op<'a, 'b> {
    caller: &'a Caller,
    d: &'a mut DomainRef<'b>,
    fx: &'a mut Vec<HvmEffect>,
    guest: &'a mut dyn GuestAccess,
    arg: u64,
    a: xen_hvm_altp2m_op,
    ve_supported: bool,
}

impl Op<'_, '_> {
    /// Copy the whole (updated) op struct back to the caller.
    fn copy_back(&mut self) -> XenResult<()> {
        copy_to_guest(self.guest, self.arg, &self.a)
    }

    fn run(&mut self) -> XenResult<()> {
        match self.a.cmd {
            HVMOP_altp2m_get_domain_state => {
                let s = xen_hvm_altp2m_domain_state {
                    state: self.d.hvm.p2m.altp2m_active() as u8,
                };
                *self.a.u.member_mut() = s;
                self.copy_back()
            }
            HVMOP_altp2m_set_domain_state => {
                let s: xen_hvm_altp2m_domain_state = self.a.u.get();
                self.set_domain_state(s.state != 0)
            }
            HVMOP_altp2m_vcpu_enable_notify => self.vcpu_enable_notify(),
            HVMOP_altp2m_vcpu_disable_notify => self.vcpu_disable_notify(),
            HVMOP_altp2m_create_p2m => {
                let mut v: xen_hvm_altp2m_view = self.a.u.get();
                v.view = self
                    .d
                    .hvm
                    .p2m
                    .init_next_altp2m(v.hvmmem_default_access as u32)?;
                *self.a.u.member_mut() = v;
                self.copy_back()
            }
            HVMOP_altp2m_destroy_p2m => {
                let v: xen_hvm_altp2m_view = self.a.u.get();
                self.d.hvm.p2m.destroy_altp2m_by_id(v.view)
            }
            HVMOP_altp2m_switch_p2m => {
                let v: xen_hvm_altp2m_view = self.a.u.get();
                let changed = self.d.hvm.p2m.switch_domain_altp2m_by_id(v.view)?;
                self.fx
                    .extend(changed.into_iter().map(HvmEffect::P2mChanged));
                Ok(())
            }
            HVMOP_altp2m_set_mem_access => self.set_mem_access(),
            HVMOP_altp2m_set_mem_access_multi => self.set_mem_access_multi(),
            HVMOP_altp2m_get_mem_access => self.get_mem_access(),
            HVMOP_altp2m_change_gfn => {
                let c: xen_hvm_altp2m_change_gfn = self.a.u.get();
                if c.pad1 != 0 || c.pad2 != 0 {
                    return Err(Errno::EINVAL);
                }
                // The new entry suppresses #VE when a foreign domain made the change.
                let sve = self.caller.domid != self.d.domid;
                self.d
                    .hvm
                    .p2m
                    .change_altp2m_gfn(c.view, c.old_gfn, c.new_gfn, sve)
            }
            HVMOP_altp2m_set_suppress_ve => {
                let s: xen_hvm_altp2m_suppress_ve = self.a.u.get();
                if s.pad1 != 0 || s.pad2 != 0 {
                    return Err(Errno::EINVAL);
                }
                match self.suppress_ve_range(s.view, s.suppress_ve != 0, s.gfn, s.gfn)? {
                    Some((e, _)) => Err(e),
                    None => Ok(()),
                }
            }
            HVMOP_altp2m_set_suppress_ve_multi => self.set_suppress_ve_multi(),
            HVMOP_altp2m_get_suppress_ve => {
                let mut s: xen_hvm_altp2m_suppress_ve = self.a.u.get();
                if s.pad1 != 0 || s.pad2 != 0 {
                    return Err(Errno::EINVAL);
                }
                let view = self.d.hvm.p2m.op_view(s.view)?;
                s.suppress_ve = self.d.hvm.p2m.get_suppress_ve(view, s.gfn)? as u8;
                *self.a.u.member_mut() = s;
                self.copy_back()
            }
            HVMOP_altp2m_get_p2m_idx => {
                // Xen checks altp2m_active() again here; do_altp2m_op already did.
                let mut g: xen_hvm_altp2m_get_vcpu_p2m_idx = self.a.u.get();
                if g.vcpu_id >= self.d.max_vcpus {
                    return Err(Errno::EINVAL);
                }
                g.altp2m_idx = self.d.hvm.p2m.vcpu_altp2m_idx(g.vcpu_id);
                *self.a.u.member_mut() = g;
                self.copy_back()
            }
            HVMOP_altp2m_set_visibility => {
                let s: xen_hvm_altp2m_set_visibility = self.a.u.get();
                if s.pad != 0 {
                    return Err(Errno::EINVAL);
                }
                // Xen checks altp2m_active() again here; do_altp2m_op already did.
                self.d
                    .hvm
                    .p2m
                    .set_view_visibility(s.altp2m_idx, s.visible != 0)
            }
            // do_altp2m_op only lets ALTP2M_SUBOPS through.
            _ => Err(Errno::EOPNOTSUPP),
        }
    }

    fn set_domain_state(&mut self, on: bool) -> XenResult<()> {
        let hvm = &mut *self.d.hvm;
        if on == hvm.p2m.altp2m_active() {
            return Ok(());
        }
        let changed = if on {
            hvm.p2m.enable_altp2m()
        } else {
            // altp2m_vcpu_destroy: #VE notification goes with it.
            for (v, s) in hvm.vcpus.iter_mut().enumerate() {
                if s.veinfo_gfn.take().is_some() {
                    self.fx.push(HvmEffect::VeChanged(v as u32, None));
                }
            }
            hvm.p2m.disable_altp2m()
        };
        self.fx
            .extend(changed.into_iter().map(HvmEffect::P2mChanged));
        Ok(())
    }

    fn vcpu_enable_notify(&mut self) -> XenResult<()> {
        let n: xen_hvm_altp2m_vcpu_enable_notify = self.a.u.get();
        if n.pad != 0 || n.vcpu_id >= self.d.max_vcpus {
            return Err(Errno::EINVAL);
        }
        if !self.ve_supported {
            return Err(Errno::EOPNOTSUPP);
        }
        let hvm = &mut *self.d.hvm;
        let v = hvm.vcpus.get_mut(n.vcpu_id as usize).ok_or(Errno::EINVAL)?;
        if v.veinfo_gfn.is_some() {
            return Err(Errno::EEXIST);
        }
        // check_get_page_from_gfn: the page must be guest RAM.
        if n.gfn >= crate::common::memory::GFN_LIMIT || hvm.p2m.host_entry(n.gfn).is_none() {
            return Err(Errno::EINVAL);
        }
        v.veinfo_gfn = Some(n.gfn);
        self.fx.push(HvmEffect::VeChanged(n.vcpu_id, Some(n.gfn)));
        Ok(())
    }

    fn vcpu_disable_notify(&mut self) -> XenResult<()> {
        let n: xen_hvm_altp2m_vcpu_disable_notify = self.a.u.get();
        if n.vcpu_id >= self.d.max_vcpus {
            return Err(Errno::EINVAL);
        }
        if !self.ve_supported {
            return Err(Errno::EOPNOTSUPP);
        }
        if let Some(v) = self.d.hvm.vcpus.get_mut(n.vcpu_id as usize) {
            if v.veinfo_gfn.take().is_some() {
                self.fx.push(HvmEffect::VeChanged(n.vcpu_id, None));
            }
        }
        Ok(())
    }

    fn set_mem_access(&mut self) -> XenResult<()> {
        let m: xen_hvm_altp2m_mem_access = self.a.u.get();
        if m.pad != 0 {
            return Err(Errno::EINVAL);
        }
        let p2m = &mut self.d.hvm.p2m;
        let view = p2m.op_view(m.view)?;
        let a = p2m
            .xenmem_to_p2m_access(m.access as u32)
            .ok_or(Errno::EINVAL)?;
        if m.gfn == INVALID_GFN {
            // Xen sets the host p2m's default whatever the view.
            p2m.set_host_default_access(a);
        } else {
            p2m.set_mem_access_one(view, m.gfn, a);
        }
        Ok(())
    }

    fn set_mem_access_multi(&mut self) -> XenResult<()> {
        let m: xen_hvm_altp2m_set_mem_access_multi = self.a.u.get();
        if m.pad != 0 || m.opaque > m.nr as u64 {
            return Err(Errno::EINVAL);
        }
        let view = self.d.hvm.p2m.op_view(m.view)?;
        let nr = u64::from(m.nr);
        let mut i = m.opaque;
        while i < nr {
            let pfn_at = i
                .checked_mul(8)
                .and_then(|o| m.pfn_list.checked_add(o))
                .ok_or(Errno::EFAULT)?;
            let acc_at = m.access_list.checked_add(i).ok_or(Errno::EFAULT)?;
            let gfn: u64 = copy_from_guest(self.guest, pfn_at)?;
            let mut acc = [0u8; 1];
            self.guest.copy_from_guest(acc_at, &mut acc)?;
            let a = self
                .d
                .hvm
                .p2m
                .xenmem_to_p2m_access(acc[0] as u32)
                .ok_or(Errno::EINVAL)?;
            self.d.hvm.p2m.set_mem_access_one(view, gfn, a);
            i += 1;
            // Preempt every SET_MEM_ACCESS_MULTI_STRIDE entries (not after the
            // last): the progress goes back to the guest's `opaque` and the
            // hypercall is re-entered with the same arguments (Xen's mask 0x3F and
            // `-ERESTART`; here the stride is the whole work budget).
            if i < nr && i.is_multiple_of(SET_MEM_ACCESS_MULTI_STRIDE) {
                let at = self.arg.checked_add(OPAQUE_OFFSET).ok_or(Errno::EFAULT)?;
                copy_to_guest(self.guest, at, &i)?;
                return Err(Errno::ERESTART);
            }
        }
        Ok(())
    }

    fn get_mem_access(&mut self) -> XenResult<()> {
        let mut m: xen_hvm_altp2m_mem_access = self.a.u.get();
        if m.pad != 0 {
            return Err(Errno::EINVAL);
        }
        let view = self.d.hvm.p2m.op_view(m.view)?;
        m.access = self.d.hvm.p2m.get_mem_access(view, m.gfn)?.to_xenmem() as u16;
        *self.a.u.member_mut() = m;
        self.copy_back()
    }

    /// `p2m_set_suppress_ve_multi` over `first..=last` of view index `view`: sets the
    /// bit on every gfn the view resolves; returns the first error and its gfn.
    fn suppress_ve_range(
        &mut self,
        view: u16,
        sve: bool,
        first: u64,
        last: u64,
    ) -> XenResult<Option<(Errno, u64)>> {
        let p2m = &mut self.d.hvm.p2m;
        let view = p2m.op_view(view)?;
        let mapped = p2m.mapped_gfns_in(view, first, last);
        // On an alternate view the first hole (a gfn neither the view nor the host
        // maps) is the first error (-ESRCH); on the host a hole is a silent no-op.
        let mut err = None;
        if let ViewId::Alt(_) = view {
            let mut expect = first;
            for &g in &mapped {
                if g > expect {
                    break;
                }
                // Mapped gfns are below GFN_LIMIT: no overflow.
                expect = g + 1;
            }
            if expect <= last {
                err = Some((Errno::ESRCH, expect));
            }
        }
        for g in mapped {
            p2m.set_suppress_ve_one(view, g, sve)?;
        }
        Ok(err)
    }

    fn set_suppress_ve_multi(&mut self) -> XenResult<()> {
        let mut s: xen_hvm_altp2m_suppress_ve_multi = self.a.u.get();
        let max_gfn = 1u64
            .checked_shl(self.d.maxphysaddr as u32)
            .map_or(u64::MAX, |v| v - 1);
        s.last_gfn = s.last_gfn.min(max_gfn);
        if s.pad1 != 0 || s.first_gfn > s.last_gfn {
            return Err(Errno::EINVAL);
        }
        let err = self.suppress_ve_range(s.view, s.suppress_ve != 0, s.first_gfn, s.last_gfn)?;
        if let (Some((e, gfn)), 0) = (err, s.first_error) {
            s.first_error = -e.errno();
            s.first_error_gfn = gfn;
        }
        // Past the end: the whole range was done in this call.
        s.first_gfn = s.last_gfn.wrapping_add(1);
        *self.a.u.member_mut() = s;
        self.copy_back()
    }
}

// ---- access violations (NPF / EPT-violation exits) -------------------------------------

/// Basic exit reason of an EPT violation; the first word of the #VE information area.
pub const EXIT_REASON_EPT_VIOLATION: u32 = 48;
/// `#VE` vector.
pub const X86_EXC_VE: u8 = 20;

/// A memory-access event for the privileged domain (Xen's `vm_event` mem_access
/// request).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MemAccessEvent {
    pub vcpu: u32,
    pub gfn: u64,
    /// Offset within the page.
    pub offset: u64,
    pub gla: Option<u64>,
    /// The access that faulted.
    pub access: Rights,
    /// The view the vCPU was on (`INVALID_ALTP2M` while altp2m is off).
    pub altp2m_idx: u16,
    /// Pause the vCPU until the privileged domain answers (false for `n2rwx`, whose
    /// event is only a notification).
    pub sync: bool,
}

/// The contents of the #VE information area (Intel SDM "Virtualization Exceptions"),
/// and where it lives.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct VeInfo {
    /// Guest-physical address of the information area (the page from
    /// `vcpu_enable_notify`).
    pub info_gpa: u64,
    pub exit_reason: u32,
    pub exit_qualification: u64,
    pub gla: u64,
    pub gpa: u64,
    pub eptp_index: u16,
}

/// What an access to guest-physical memory becomes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AccessOutcome {
    /// The current view allows it (the fault had another cause, or a stale TLB).
    Allowed,
    /// No view maps the gfn: not an access violation (MMIO emulation or a bad access,
    /// the backend's ordinary fault path).
    NotMapped,
    /// `rx2rw` written: the entry is now `rw`; rebuild the view and retry.
    Retry,
    /// A violation for the privileged domain (its vm_event listener).
    Report(MemAccessEvent),
    /// A violation the guest handles itself: write [`VeInfo`] with [`deliver_ve`] and
    /// inject `#VE`.
    VirtualizationException(VeInfo),
}

/// Check an access by `vcpu` to `gpa` (`kind` = the access made, `gla` the linear
/// address if known) against the vCPU's current view. The backends call this on an
/// NPF / EPT-violation exit; it may upgrade `rx2rw` / `n2rwx` entries, as Xen's
/// `p2m_mem_access_check` does.
pub fn check_access(
    hvm: &mut HvmDomain,
    vcpu: u32,
    gpa: u64,
    gla: Option<u64>,
    kind: Rights,
) -> AccessOutcome {
    let gfn = gpa >> 12;
    let view = hvm.p2m.current_view(vcpu);
    let Some(e) = hvm.p2m.effective_entry(view, gfn) else {
        return AccessOutcome::NotMapped;
    };
    let rights = e.access.rights();
    if rights.allows(kind) {
        return AccessOutcome::Allowed;
    }
    let idx = hvm.p2m.vcpu_altp2m_idx(vcpu);
    let veinfo = hvm.vcpus.get(vcpu as usize).and_then(|v| v.veinfo_gfn);
    if let (Some(info_gfn), false, true) = (veinfo, e.suppress_ve, idx != INVALID_ALTP2M) {
        let q = (kind.read as u64)
            | (kind.write as u64) << 1
            | (kind.exec as u64) << 2
            | (rights.read as u64) << 3
            | (rights.write as u64) << 4
            | (rights.exec as u64) << 5
            | if gla.is_some() { 1 << 7 | 1 << 8 } else { 0 };
        return AccessOutcome::VirtualizationException(VeInfo {
            info_gpa: info_gfn << 12,
            exit_reason: EXIT_REASON_EPT_VIOLATION,
            exit_qualification: q,
            gla: gla.unwrap_or(0),
            gpa,
            eptp_index: idx,
        });
    }
    let mut sync = true;
    match e.access {
        P2mAccess::RX2RW if kind.write => {
            hvm.p2m.upgrade_access(view, gfn, P2mAccess::RW);
            return AccessOutcome::Retry;
        }
        P2mAccess::N2RWX => {
            hvm.p2m.upgrade_access(view, gfn, P2mAccess::RWX);
            sync = false;
        }
        _ => {}
    }
    AccessOutcome::Report(MemAccessEvent {
        vcpu,
        gfn,
        offset: gpa & 0xfff,
        gla,
        access: kind,
        altp2m_idx: idx,
        sync,
    })
}

/// Write the #VE information area as the processor does, if it is free: the word at
/// offset 4 must be 0 and becomes `0xFFFFFFFF` (the guest clears it when done). True:
/// inject `#VE` ([`X86_EXC_VE`]); false (busy or unwritable): treat the violation as an
/// ordinary one and report it.
pub fn deliver_ve(mem: &mut dyn GuestMemory, ve: &VeInfo) -> bool {
    let Some(busy_at) = ve.info_gpa.checked_add(4) else {
        return false;
    };
    match mem.cmpxchg_u32(busy_at, 0, 0xFFFF_FFFF) {
        Ok(0) => {}
        _ => return false,
    }
    let mut buf = [0u8; 34];
    buf[0..4].copy_from_slice(&ve.exit_reason.to_le_bytes());
    buf[4..8].copy_from_slice(&0xFFFF_FFFFu32.to_le_bytes());
    buf[8..16].copy_from_slice(&ve.exit_qualification.to_le_bytes());
    buf[16..24].copy_from_slice(&ve.gla.to_le_bytes());
    buf[24..32].copy_from_slice(&ve.gpa.to_le_bytes());
    buf[32..34].copy_from_slice(&ve.eptp_index.to_le_bytes());
    mem.write_gpa(ve.info_gpa, &buf).is_ok()
}
