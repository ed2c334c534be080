//! `__HYPERVISOR_hvm_op` (34): HVM params, the per-vCPU event-channel upcall vector
//! and `HVMOP_altp2m`. Mirrors `do_hvm_op` in Xen 4.17's `xen/arch/x86/hvm/hvm.c`.
//!
//! The module is self-contained: each domain's HVM state is one [`HvmDomain`] (which
//! owns the domain's [`P2m`]), and everything it needs from the rest of the hypervisor
//! comes through the small [`HvmEnv`] trait, which the domain table implements and the
//! tests fake. Handlers never call back into the environment while they hold a domain:
//! they record [`HvmEffect`]s that [`do_hvm_op`] applies afterwards.

#![allow(non_upper_case_globals)]

pub mod altp2m;
#[cfg(test)]
mod altp2m_tests;
pub mod params;

use crate::common::guest_access::{copy_from_guest, copy_to_guest, GuestAccess};
use crate::common::memory::P2m;
use alloc::vec;
use alloc::vec::Vec;
use xen_public_abi::hvm::hvm_op::*;
use xen_public_abi::hvm::params::HVM_NR_PARAMS;
use xen_public_abi::xen::DOMID_SELF;
use xen_public_abi::{DomId, Errno, XenResult};

/// The domain has the emulated ACPI PM timer (`HVM_PARAM_ACPI_IOPORTS_LOCATION`).
pub use xen_public_abi::arch_x86::XEN_X86_EMU_PM;
/// This project's createdomain flag that lets a domain use
/// `HVMOP_set_evtchn_upcall_vector` (without it the op is `-ENOSYS`).
pub use xen_public_abi::domctl::XEN_DOMCTL_CDF_evtchn_upcall;

/// Per-vCPU HVM state.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct HvmVcpu {
    /// `v->arch.hvm.evtchn_upcall_vector` (0: none; use the domain's callback via).
    pub evtchn_upcall_vector: u8,
    /// gfn of the #VE information page (`HVMOP_altp2m_vcpu_enable_notify`).
    pub veinfo_gfn: Option<u64>,
}

/// One HVM domain's state for this module: params, altp2m, per-vCPU state, the p2m.
#[derive(Clone, Debug)]
pub struct HvmDomain {
    params: [u64; HVM_NR_PARAMS as usize],
    /// `d->arch.x87_fip_width`. Xen starts it at 0 when the CPU stores the FPU
    /// selectors, else 8; the integrator sets it from CPUID.
    pub x87_fip_width: u64,
    /// `d->arch.hvm.is_s3_suspended`.
    pub is_s3_suspended: bool,
    pub vcpus: Vec<HvmVcpu>,
    /// The domain's p2m: host view and altp2m views.
    pub p2m: P2m,
}

impl HvmDomain {
    /// Fresh state: every param 0 (unset), altp2m off, no upcall vectors.
    pub fn new(nr_vcpus: u32) -> Self {
        HvmDomain {
            params: [0; HVM_NR_PARAMS as usize],
            x87_fip_width: 0,
            is_s3_suspended: false,
            vcpus: vec![HvmVcpu::default(); nr_vcpus as usize],
            p2m: P2m::new(nr_vcpus),
        }
    }

    /// The stored value of param `index` (`None` out of range). For the backends and
    /// the toolstack paths (store/console pfns, callback via); guests go through
    /// `HVMOP_get_param`, which applies the access rules.
    pub fn param(&self, index: u32) -> Option<u64> {
        self.params.get(index as usize).copied()
    }

    /// Store param `index` without checks (domain builder).
    pub fn set_param_raw(&mut self, index: u32, value: u64) -> XenResult<()> {
        *self.params.get_mut(index as usize).ok_or(Errno::EINVAL)? = value;
        Ok(())
    }

    /// `HVM_PARAM_ALTP2M`: the altp2m mode (`XEN_ALTP2M_*`).
    pub fn altp2m_mode(&self) -> u64 {
        self.params[xen_public_abi::hvm::params::HVM_PARAM_ALTP2M as usize]
    }

    /// `HVM_PARAM_CALLBACK_IRQ` decoded: (type from bits 63:56, value bits 55:0).
    pub fn callback_via(&self) -> (u64, u64) {
        let v = self.params[xen_public_abi::hvm::params::HVM_PARAM_CALLBACK_IRQ as usize];
        (v >> 56, v & 0x00ff_ffff_ffff_ffff)
    }
}

/// What [`HvmEnv::domain`] gives for a domain id: facts copied out of the domain
/// table, and the domain's HVM state.
pub struct DomainRef<'a> {
    pub domid: DomId,
    /// `is_hvm_domain(d)`.
    pub is_hvm: bool,
    /// `d->max_vcpus`.
    pub max_vcpus: u32,
    /// The domain's createdomain `XEN_DOMCTL_CDF_*` flags.
    pub cdf_flags: u32,
    /// The domain's `arch.emulation_flags` (`XEN_X86_EMU_*`).
    pub emulation_flags: u32,
    /// Guest-physical address bits (CPUID 0x80000008 EAX[7:0] of the domain).
    pub maxphysaddr: u8,
    pub hvm: &'a mut HvmDomain,
}

/// What the HVM ops need from the rest of the hypervisor. Keep it small: the domain
/// table implements it; tests fake it.
pub trait HvmEnv {
    /// The calling domain and vCPU.
    fn caller(&self) -> (DomId, u32);
    /// Is the caller the control domain (`is_control_domain`)?
    fn caller_is_privileged(&self) -> bool;
    /// The domain the caller is the device model of (Xen's `current->domain->target`,
    /// set by `XEN_DOMCTL_set_target`); such a caller passes XSM_TARGET and
    /// XSM_DM_PRIV for that domain. None by default.
    fn caller_device_model_for(&self) -> Option<DomId> {
        None
    }
    /// Look a domain up by a real id (never `DOMID_SELF`: [`do_hvm_op`] resolves it).
    fn domain(&mut self, domid: DomId) -> Option<DomainRef<'_>>;
    /// The p2m view of `vcpu` of `domid` changed: the backend reloads its EPTP /
    /// nested CR3 before the vCPU next runs (or rebuilds the view's tables when
    /// [`P2m::generation`] moved).
    fn vcpu_p2m_changed(&mut self, domid: DomId, vcpu: u32);
    /// #VE notification was switched on (`Some(gfn)`) or off for `vcpu`: the backend
    /// programs (or clears) the virtualization-exception information address.
    fn vcpu_ve_changed(&mut self, domid: DomId, vcpu: u32, gfn: Option<u64>);
    /// Inject the event-channel upcall vector into `vcpu` now (`hvm_assert_evtchn_irq`).
    fn assert_evtchn_upcall(&mut self, domid: DomId, vcpu: u32);
    /// Crash `domid` (Xen's `domain_crash`), e.g. for a bad `VM86_TSS` set on itself.
    fn domain_crash(&mut self, domid: DomId);
    /// Flush the guest TLBs of every vCPU of `domid` (`HVMOP_flush_tlbs`).
    fn flush_guest_tlbs(&mut self, domid: DomId);
    /// Xen system time in ns (`NOW()`), for `HVMOP_get_time`.
    fn system_time_ns(&self) -> u64;
    /// `hvm_altp2m_supported()`. This hypervisor offers altp2m on both backends.
    fn altp2m_supported(&self) -> bool {
        true
    }
    /// `cpu_has_vmx_virt_exceptions`: can #VE be delivered? (In hardware on VMX; the
    /// SVM backend delivers it in software.)
    fn ve_supported(&self) -> bool {
        true
    }
    /// `lmce_support`: may `HVM_PARAM_MCA_CAP` enable LMCE?
    fn lmce_supported(&self) -> bool {
        false
    }
}

/// Something a handler asks the environment to do once it has let go of the domain.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HvmEffect {
    P2mChanged(u32),
    VeChanged(u32, Option<u64>),
    AssertUpcall(u32),
    Crash,
}

/// The caller, as the handlers see it.
#[derive(Clone, Copy, Debug)]
pub struct Caller {
    pub domid: DomId,
    pub vcpu: u32,
    pub privileged: bool,
    /// The domain the caller is device model for (Xen's `current->domain->target`).
    pub dm_target: Option<DomId>,
}

impl Caller {
    fn of(env: &dyn HvmEnv) -> Caller {
        let (domid, vcpu) = env.caller();
        Caller {
            domid,
            vcpu,
            privileged: env.caller_is_privileged(),
            dm_target: env.caller_device_model_for(),
        }
    }

    /// Resolve `DOMID_SELF` to the caller.
    pub fn resolve(&self, domid: u16) -> DomId {
        if domid == DOMID_SELF {
            self.domid
        } else {
            DomId(domid)
        }
    }

    /// The dummy XSM policy's `XSM_TARGET`: the domain itself, its device model, or
    /// the control domain.
    pub fn xsm_target(&self, d: DomId) -> XenResult<()> {
        if self.domid == d {
            Ok(())
        } else {
            self.xsm_dm_priv(d)
        }
    }

    /// `XSM_DM_PRIV`: the domain's device model or the control domain.
    pub fn xsm_dm_priv(&self, d: DomId) -> XenResult<()> {
        if self.dm_target == Some(d) {
            Ok(())
        } else {
            self.xsm_priv()
        }
    }

    /// `XSM_PRIV`: only the control domain.
    pub fn xsm_priv(&self) -> XenResult<()> {
        if self.privileged {
            Ok(())
        } else {
            Err(Errno::EPERM)
        }
    }
}

/// Run `f` on domain `domid` (already resolved), then apply the effects it recorded.
fn with_domain<R>(
    env: &mut dyn HvmEnv,
    domid: DomId,
    f: impl FnOnce(&mut DomainRef<'_>, &mut Vec<HvmEffect>) -> XenResult<R>,
) -> XenResult<R> {
    let mut effects = Vec::new();
    let r = {
        let mut d = env.domain(domid).ok_or(Errno::ESRCH)?;
        f(&mut d, &mut effects)
    };
    for e in effects {
        match e {
            HvmEffect::P2mChanged(v) => env.vcpu_p2m_changed(domid, v),
            HvmEffect::VeChanged(v, g) => env.vcpu_ve_changed(domid, v, g),
            HvmEffect::AssertUpcall(v) => env.assert_evtchn_upcall(domid, v),
            HvmEffect::Crash => env.domain_crash(domid),
        }
    }
    r
}

/// `__HYPERVISOR_hvm_op`: returns the value for RAX.
pub fn do_hvm_op(env: &mut dyn HvmEnv, guest: &mut dyn GuestAccess, op: u64, arg: u64) -> i64 {
    let r = match u32::try_from(op) {
        Ok(HVMOP_set_param) => params::hvmop_set_param(env, guest, arg),
        Ok(HVMOP_get_param) => params::hvmop_get_param(env, guest, arg),
        Ok(HVMOP_set_evtchn_upcall_vector) => hvmop_set_evtchn_upcall_vector(env, guest, arg),
        Ok(HVMOP_altp2m) => altp2m::do_altp2m_op(env, guest, arg),
        Ok(HVMOP_flush_tlbs) => hvmop_flush_tlb_all(env, arg),
        Ok(HVMOP_get_mem_type) => hvmop_get_mem_type(env, guest, arg),
        Ok(HVMOP_pagetable_dying) => hvmop_pagetable_dying(env, guest, arg),
        Ok(HVMOP_get_time) => {
            let t = xen_hvm_get_time {
                now: env.system_time_ns(),
            };
            copy_to_guest(guest, arg, &t).map(|_| 0)
        }
        Ok(HVMOP_xentrace) => hvmop_xentrace(guest, arg),
        Ok(HVMOP_guest_request_vm_event) => {
            // No vm_event monitor exists yet, so a request has nobody to go to (Xen
            // drops it too when the monitor did not ask for guest requests).
            if arg == 0 {
                Ok(0)
            } else {
                Err(Errno::EINVAL)
            }
        }
        _ => {
            let d = env.caller().0 .0;
            crate::gprintk!(d, log::Level::Debug, "d{d}: bad HVM op {op}");
            Err(Errno::ENOSYS)
        }
    };
    match r {
        Ok(v) => v,
        Err(e) => e.as_ret(),
    }
}

/// `HVMOP_flush_tlbs`: flush every vCPU's guest TLB. The argument must be NULL.
fn hvmop_flush_tlb_all(env: &mut dyn HvmEnv, arg: u64) -> XenResult<i64> {
    if arg != 0 {
        return Err(Errno::EINVAL);
    }
    let me = env.caller().0;
    let is_hvm = env.domain(me).is_some_and(|d| d.is_hvm);
    if !is_hvm {
        return Err(Errno::EINVAL);
    }
    env.flush_guest_tlbs(me);
    Ok(0)
}

/// `HVMOP_get_mem_type`: the p2m type of one gfn of a domain (host view).
fn hvmop_get_mem_type(
    env: &mut dyn HvmEnv,
    guest: &mut dyn GuestAccess,
    arg: u64,
) -> XenResult<i64> {
    let mut a: xen_hvm_get_mem_type = copy_from_guest(guest, arg)?;
    let caller = Caller::of(env);
    let t = with_domain(env, caller.resolve(a.domid), |d, _| {
        caller.xsm_target(d.domid)?;
        if !d.is_hvm {
            return Err(Errno::EINVAL);
        }
        // Every host entry is RAM; anything else reads as emulated MMIO, as Xen
        // reports an invalid entry.
        Ok(match d.hvm.p2m.host_entry(a.pfn) {
            Some(_) => HVMMEM_ram_rw,
            None => HVMMEM_mmio_dm,
        })
    })?;
    a.mem_type = t as u16;
    copy_to_guest(guest, arg, &a)?;
    Ok(0)
}

/// `HVMOP_pagetable_dying`: a shadow-paging hint. Only for the caller itself
/// (`-EOPNOTSUPP` otherwise), and with hardware paging (no shadow) `-EINVAL`.
fn hvmop_pagetable_dying(
    env: &mut dyn HvmEnv,
    guest: &mut dyn GuestAccess,
    arg: u64,
) -> XenResult<i64> {
    let a: xen_hvm_pagetable_dying = copy_from_guest(guest, arg)?;
    let caller = Caller::of(env);
    let target = caller.resolve(a.domid);
    env.domain(target).ok_or(Errno::ESRCH)?;
    if target != caller.domid {
        Err(Errno::EOPNOTSUPP)
    } else {
        Err(Errno::EINVAL)
    }
}

/// `TRACE_EXTRA_MAX * sizeof(uint32_t)`: bytes of extra data in `xen_hvm_xentrace`.
const XENTRACE_EXTRA: u16 = 7 * 4;
/// `TRC_SUBCLS_SHIFT`.
const TRC_SUBCLS_SHIFT: u32 = 12;

/// `HVMOP_xentrace`: a guest trace record. Checked like Xen; there are no trace
/// buffers, so a valid record is dropped (as Xen does with tracing off).
fn hvmop_xentrace(guest: &mut dyn GuestAccess, arg: u64) -> XenResult<i64> {
    // struct xen_hvm_xentrace { u16 event, extra_bytes; u8 extra[28]; }
    let mut tr = [0u8; 4 + XENTRACE_EXTRA as usize];
    guest.copy_from_guest(arg, &mut tr)?;
    let event = u16::from_le_bytes([tr[0], tr[1]]);
    let extra_bytes = u16::from_le_bytes([tr[2], tr[3]]);
    if extra_bytes > XENTRACE_EXTRA || u32::from(event) & !((1 << TRC_SUBCLS_SHIFT) - 1) != 0 {
        return Err(Errno::EINVAL);
    }
    Ok(0)
}

/// `HVMOP_set_evtchn_upcall_vector`: the caller's own vCPU `vcpu` gets `vector` for
/// event-channel upcalls, and the vector is asserted at once. Gated by
/// [`XEN_DOMCTL_CDF_evtchn_upcall`].
fn hvmop_set_evtchn_upcall_vector(
    env: &mut dyn HvmEnv,
    guest: &mut dyn GuestAccess,
    arg: u64,
) -> XenResult<i64> {
    let caller = Caller::of(env);
    with_domain(env, caller.domid, |d, fx| {
        if d.cdf_flags & XEN_DOMCTL_CDF_evtchn_upcall == 0 {
            return Err(Errno::ENOSYS);
        }
        if !d.is_hvm {
            return Err(Errno::EINVAL);
        }
        let op: xen_hvm_evtchn_upcall_vector = copy_from_guest(guest, arg)?;
        if op.vector < 0x10 {
            return Err(Errno::EINVAL);
        }
        let v = d
            .hvm
            .vcpus
            .get_mut(op.vcpu as usize)
            .filter(|_| op.vcpu < d.max_vcpus)
            .ok_or(Errno::ENOENT)?;
        crate::gprintk!(
            d.domid.0,
            log::Level::Info,
            "{:?}v{}: upcall vector {:02x}",
            d.domid,
            op.vcpu,
            op.vector
        );
        v.evtchn_upcall_vector = op.vector;
        fx.push(HvmEffect::AssertUpcall(op.vcpu));
        Ok(0)
    })
}

#[cfg(test)]
pub mod fake {
    //! A fake [`HvmEnv`]: a few domains, a settable caller, a log of hook calls.
    use super::*;
    use alloc::collections::BTreeMap;

    pub struct FakeDomain {
        pub is_hvm: bool,
        pub max_vcpus: u32,
        pub cdf_flags: u32,
        pub emulation_flags: u32,
        pub hvm: HvmDomain,
    }

    impl FakeDomain {
        pub fn hvm(nr_vcpus: u32) -> Self {
            FakeDomain {
                is_hvm: true,
                max_vcpus: nr_vcpus,
                cdf_flags: 0,
                emulation_flags: 1,
                hvm: HvmDomain::new(nr_vcpus),
            }
        }
    }

    #[derive(Clone, Debug, PartialEq, Eq)]
    pub enum Hook {
        P2m(DomId, u32),
        Ve(DomId, u32, Option<u64>),
        Upcall(DomId, u32),
        Crash(DomId),
        FlushTlbs(DomId),
    }

    pub struct FakeEnv {
        pub domains: BTreeMap<u16, FakeDomain>,
        pub caller: (DomId, u32),
        pub privileged: bool,
        pub dm_target: Option<DomId>,
        pub hooks: Vec<Hook>,
        pub altp2m: bool,
        pub ve: bool,
        pub lmce: bool,
    }

    impl Default for FakeEnv {
        fn default() -> Self {
            Self::new()
        }
    }

    impl FakeEnv {
        /// dom0 (privileged, HVM/PVH, 2 vCPUs) and domU 1 (HVM, 2 vCPUs); caller dom0.
        pub fn new() -> Self {
            let mut domains = BTreeMap::new();
            domains.insert(0, FakeDomain::hvm(2));
            domains.insert(1, FakeDomain::hvm(2));
            FakeEnv {
                domains,
                caller: (DomId(0), 0),
                privileged: true,
                dm_target: None,
                hooks: Vec::new(),
                altp2m: true,
                ve: true,
                lmce: false,
            }
        }

        /// Make `domid` the caller (privileged iff it is dom0).
        pub fn call_as(&mut self, domid: u16) {
            self.caller = (DomId(domid), 0);
            self.privileged = domid == 0;
            self.dm_target = None;
        }

        pub fn d(&mut self, domid: u16) -> &mut FakeDomain {
            self.domains.get_mut(&domid).expect("test domain exists")
        }
    }

    impl HvmEnv for FakeEnv {
        fn caller(&self) -> (DomId, u32) {
            self.caller
        }
        fn caller_is_privileged(&self) -> bool {
            self.privileged
        }
        fn caller_device_model_for(&self) -> Option<DomId> {
            self.dm_target
        }
        fn domain(&mut self, domid: DomId) -> Option<DomainRef<'_>> {
            let d = self.domains.get_mut(&domid.0)?;
            Some(DomainRef {
                domid,
                is_hvm: d.is_hvm,
                max_vcpus: d.max_vcpus,
                cdf_flags: d.cdf_flags,
                emulation_flags: d.emulation_flags,
                maxphysaddr: 48,
                hvm: &mut d.hvm,
            })
        }
        fn vcpu_p2m_changed(&mut self, domid: DomId, vcpu: u32) {
            self.hooks.push(Hook::P2m(domid, vcpu));
        }
        fn vcpu_ve_changed(&mut self, domid: DomId, vcpu: u32, gfn: Option<u64>) {
            self.hooks.push(Hook::Ve(domid, vcpu, gfn));
        }
        fn assert_evtchn_upcall(&mut self, domid: DomId, vcpu: u32) {
            self.hooks.push(Hook::Upcall(domid, vcpu));
        }
        fn domain_crash(&mut self, domid: DomId) {
            self.hooks.push(Hook::Crash(domid));
        }
        fn flush_guest_tlbs(&mut self, domid: DomId) {
            self.hooks.push(Hook::FlushTlbs(domid));
        }
        fn system_time_ns(&self) -> u64 {
            0x1234_5678_9abc
        }
        fn altp2m_supported(&self) -> bool {
            self.altp2m
        }
        fn ve_supported(&self) -> bool {
            self.ve
        }
        fn lmce_supported(&self) -> bool {
            self.lmce
        }
    }
}

#[cfg(test)]
mod tests {
    use super::fake::*;
    use super::*;
    use crate::common::guest_access::fake::FakeMemory;

    const ARG: u64 = 0x1000;

    fn upcall(env: &mut FakeEnv, mem: &mut FakeMemory, vcpu: u32, vector: u8) -> i64 {
        let op = xen_hvm_evtchn_upcall_vector {
            vcpu,
            vector,
            _implicit0: [0; 3],
        };
        copy_to_guest(mem, ARG, &op).unwrap();
        do_hvm_op(env, mem, HVMOP_set_evtchn_upcall_vector as u64, ARG)
    }

    #[test]
    fn upcall_vector_needs_the_cdf_flag() {
        let mut env = FakeEnv::new();
        let mut mem = FakeMemory::new(0x4000);
        assert_eq!(upcall(&mut env, &mut mem, 0, 0xf3), Errno::ENOSYS.as_ret());
        assert!(env.hooks.is_empty());
        assert_eq!(env.d(0).hvm.vcpus[0].evtchn_upcall_vector, 0);
    }

    #[test]
    fn upcall_vector_rows() {
        let mut env = FakeEnv::new();
        env.d(0).cdf_flags |= XEN_DOMCTL_CDF_evtchn_upcall;
        let mut mem = FakeMemory::new(0x4000);
        assert_eq!(upcall(&mut env, &mut mem, 0, 0x0f), Errno::EINVAL.as_ret());
        assert!(env.hooks.is_empty());
        assert_eq!(upcall(&mut env, &mut mem, 0, 0x10), 0);
        assert_eq!(env.d(0).hvm.vcpus[0].evtchn_upcall_vector, 0x10);
        assert_eq!(upcall(&mut env, &mut mem, 0, 0xf3), 0);
        assert_eq!(upcall(&mut env, &mut mem, 1, 0xf3), 0);
        assert_eq!(env.d(0).hvm.vcpus[1].evtchn_upcall_vector, 0xf3);
        assert_eq!(upcall(&mut env, &mut mem, 99, 0xf3), Errno::ENOENT.as_ret());
        assert_eq!(
            env.hooks,
            vec![
                Hook::Upcall(DomId(0), 0),
                Hook::Upcall(DomId(0), 0),
                Hook::Upcall(DomId(0), 1)
            ]
        );
        // Bad pointer: -EFAULT.
        assert_eq!(
            do_hvm_op(
                &mut env,
                &mut mem,
                HVMOP_set_evtchn_upcall_vector as u64,
                0x10_0000
            ),
            Errno::EFAULT.as_ret()
        );
        // Non-HVM caller: -EINVAL.
        env.d(0).is_hvm = false;
        assert_eq!(upcall(&mut env, &mut mem, 0, 0x20), Errno::EINVAL.as_ret());
    }

    #[test]
    fn unknown_ops_are_enosys() {
        let mut env = FakeEnv::new();
        let mut mem = FakeMemory::new(0x4000);
        // Oracle D.2: 6 and 100. Also the legacy (< 4.9 interface) and tools-only
        // mem-access ops, and an op number with high bits.
        for op in [6u64, 100, 2, 3, 4, 12, 13, 1 << 32 | 5] {
            assert_eq!(do_hvm_op(&mut env, &mut mem, op, 0), Errno::ENOSYS.as_ret());
        }
    }

    #[test]
    fn flush_tlbs() {
        let mut env = FakeEnv::new();
        let mut mem = FakeMemory::new(0x4000);
        let op = HVMOP_flush_tlbs as u64;
        assert_eq!(do_hvm_op(&mut env, &mut mem, op, 8), Errno::EINVAL.as_ret());
        assert!(env.hooks.is_empty());
        assert_eq!(do_hvm_op(&mut env, &mut mem, op, 0), 0);
        assert_eq!(env.hooks, vec![Hook::FlushTlbs(DomId(0))]);
        env.d(0).is_hvm = false;
        assert_eq!(do_hvm_op(&mut env, &mut mem, op, 0), Errno::EINVAL.as_ret());
    }

    #[test]
    fn get_time() {
        let mut env = FakeEnv::new();
        let mut mem = FakeMemory::new(0x4000);
        let op = HVMOP_get_time as u64;
        assert_eq!(do_hvm_op(&mut env, &mut mem, op, ARG), 0);
        let t: xen_hvm_get_time = copy_from_guest(&mut mem, ARG).unwrap();
        assert_eq!(t.now, 0x1234_5678_9abc);
        assert_eq!(
            do_hvm_op(&mut env, &mut mem, op, 0x3ffc),
            Errno::EFAULT.as_ret()
        );
    }

    #[test]
    fn get_mem_type() {
        let mut env = FakeEnv::new();
        let mut mem = FakeMemory::new(0x4000);
        env.d(1)
            .hvm
            .p2m
            .set_host_entry(5, 0x99, crate::common::memory::P2mAccess::RWX)
            .unwrap();
        let mut ask = |env: &mut FakeEnv, domid: u16, pfn: u64| {
            let a = xen_hvm_get_mem_type {
                domid,
                mem_type: 0xee,
                pad: [0; 2],
                pfn,
            };
            copy_to_guest(&mut mem, ARG, &a).unwrap();
            let rc = do_hvm_op(env, &mut mem, HVMOP_get_mem_type as u64, ARG);
            let b: xen_hvm_get_mem_type = copy_from_guest(&mut mem, ARG).unwrap();
            (rc, b.mem_type as u32)
        };
        assert_eq!(ask(&mut env, 1, 5), (0, HVMMEM_ram_rw));
        assert_eq!(ask(&mut env, 1, 6), (0, HVMMEM_mmio_dm));
        assert_eq!(ask(&mut env, 30000, 5).0, Errno::ESRCH.as_ret());
        env.call_as(2);
        env.domains.insert(2, FakeDomain::hvm(1));
        assert_eq!(ask(&mut env, 1, 5).0, Errno::EPERM.as_ret());
        env.call_as(1);
        assert_eq!(ask(&mut env, DOMID_SELF, 5), (0, HVMMEM_ram_rw));
        env.d(1).is_hvm = false;
        assert_eq!(ask(&mut env, DOMID_SELF, 5).0, Errno::EINVAL.as_ret());
    }

    #[test]
    fn pagetable_dying() {
        let mut env = FakeEnv::new();
        let mut mem = FakeMemory::new(0x4000);
        let mut call = |env: &mut FakeEnv, domid: u16| {
            let a = xen_hvm_pagetable_dying {
                domid,
                pad: [0; 3],
                gpa: 0x1000,
            };
            copy_to_guest(&mut mem, ARG, &a).unwrap();
            do_hvm_op(env, &mut mem, HVMOP_pagetable_dying as u64, ARG)
        };
        assert_eq!(call(&mut env, 30000), Errno::ESRCH.as_ret());
        assert_eq!(call(&mut env, 1), Errno::EOPNOTSUPP.as_ret());
        // On itself: no shadow paging here, so -EINVAL.
        assert_eq!(call(&mut env, DOMID_SELF), Errno::EINVAL.as_ret());
        assert_eq!(call(&mut env, 0), Errno::EINVAL.as_ret());
    }

    #[test]
    fn xentrace() {
        let mut env = FakeEnv::new();
        let mut mem = FakeMemory::new(0x4000);
        let mut call = |env: &mut FakeEnv, event: u16, extra: u16| {
            let mut b = [0u8; 32];
            b[0..2].copy_from_slice(&event.to_le_bytes());
            b[2..4].copy_from_slice(&extra.to_le_bytes());
            mem.bytes[ARG as usize..ARG as usize + 32].copy_from_slice(&b);
            do_hvm_op(env, &mut mem, HVMOP_xentrace as u64, ARG)
        };
        assert_eq!(call(&mut env, 0xfff, 28), 0);
        assert_eq!(call(&mut env, 0xfff, 29), Errno::EINVAL.as_ret());
        assert_eq!(call(&mut env, 0x1000, 0), Errno::EINVAL.as_ret());
        assert_eq!(
            do_hvm_op(&mut env, &mut mem, HVMOP_xentrace as u64, 0x4000 - 16),
            Errno::EFAULT.as_ret()
        );
    }

    #[test]
    fn guest_request_vm_event() {
        let mut env = FakeEnv::new();
        let mut mem = FakeMemory::new(0x4000);
        let op = HVMOP_guest_request_vm_event as u64;
        assert_eq!(do_hvm_op(&mut env, &mut mem, op, 0), 0);
        assert_eq!(
            do_hvm_op(&mut env, &mut mem, op, ARG),
            Errno::EINVAL.as_ret()
        );
    }
}
