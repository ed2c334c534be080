//! `HVMOP_set_param` / `HVMOP_get_param`: who may set or read which HVM param, and
//! the per-param value rules. Mirrors Xen 4.17's `hvmop_set_param`, `hvm_set_param`,
//! `hvm_allow_set_param`, `hvmop_get_param`, `hvm_get_param` and
//! `hvm_allow_get_param` (`xen/arch/x86/hvm/hvm.c`).
//!
//! Order of checks (the tests pin it): copy-in `-EFAULT`; index ≥ `HVM_NR_PARAMS`
//! `-EINVAL`; domain lookup `-ESRCH`; non-HVM `-EINVAL`; XSM_TARGET `-EPERM`;
//! deprecated index `-EINVAL`; a param the guest may not touch on itself `-EPERM`;
//! write-once (`-EEXIST`, 0 counts as unset); then the param's own value rule.

use super::{with_domain, Caller, DomainRef, HvmEffect, HvmEnv, XEN_X86_EMU_PM};
use crate::common::guest_access::{copy_from_guest, copy_to_guest, GuestAccess};
use alloc::vec::Vec;
use xen_public_abi::hvm::hvm_op::xen_hvm_param;
use xen_public_abi::hvm::params::*;
use xen_public_abi::{Errno, XenResult};

/// Xen's `VM86_TSS_UPDATED` (bit 63 of the stored `VM86_TSS_SIZED` value).
pub const VM86_TSS_UPDATED: u64 = 1 << 63;
/// `sizeof(struct tss32)`.
const TSS32_SIZE: u64 = 104;
/// `SHUTDOWN_MAX` (sched.h).
const SHUTDOWN_MAX: u64 = 5;

/// Params deprecated in 4.17: set and get give `-EINVAL` for everyone.
fn is_deprecated(index: u32) -> bool {
    matches!(
        index,
        HVM_PARAM_PAE_ENABLED
            | HVM_PARAM_DM_DOMAIN
            | HVM_PARAM_MEMORY_EVENT_CR0
            | HVM_PARAM_MEMORY_EVENT_CR3
            | HVM_PARAM_MEMORY_EVENT_CR4
            | HVM_PARAM_MEMORY_EVENT_INT3
            | HVM_PARAM_NESTEDHVM
            | HVM_PARAM_MEMORY_EVENT_SINGLE_STEP
            | HVM_PARAM_BUFIOREQ_EVTCHN
            | HVM_PARAM_MEMORY_EVENT_MSR
    )
}

/// Params a guest may set on itself.
fn guest_may_set(index: u32) -> bool {
    matches!(
        index,
        HVM_PARAM_CALLBACK_IRQ
            | HVM_PARAM_VM86_TSS
            | HVM_PARAM_VM86_TSS_SIZED
            | HVM_PARAM_ACPI_IOPORTS_LOCATION
            | HVM_PARAM_VM_GENERATION_ID_ADDR
            | HVM_PARAM_STORE_EVTCHN
            | HVM_PARAM_CONSOLE_EVTCHN
            | HVM_PARAM_X87_FIP_WIDTH
    )
}

/// Params a guest may read on itself.
fn guest_may_get(index: u32) -> bool {
    matches!(
        index,
        HVM_PARAM_CALLBACK_IRQ
            | HVM_PARAM_VM86_TSS
            | HVM_PARAM_VM86_TSS_SIZED
            | HVM_PARAM_ACPI_IOPORTS_LOCATION
            | HVM_PARAM_VM_GENERATION_ID_ADDR
            | HVM_PARAM_STORE_PFN
            | HVM_PARAM_STORE_EVTCHN
            | HVM_PARAM_CONSOLE_PFN
            | HVM_PARAM_CONSOLE_EVTCHN
            | HVM_PARAM_ALTP2M
            | HVM_PARAM_X87_FIP_WIDTH
    )
}

/// Params that may be written once: a different value after a non-zero one is `-EEXIST`.
fn is_write_once(index: u32) -> bool {
    matches!(
        index,
        HVM_PARAM_VIRIDIAN
            | HVM_PARAM_IOREQ_PFN
            | HVM_PARAM_BUFIOREQ_PFN
            | HVM_PARAM_IOREQ_SERVER_PFN
            | HVM_PARAM_NR_IOREQ_SERVER_PAGES
            | HVM_PARAM_ALTP2M
            | HVM_PARAM_MCA_CAP
    )
}

/// `hvm_allow_set_param`.
fn allow_set(caller: &Caller, d: &DomainRef<'_>, index: u32, new: u64) -> XenResult<()> {
    caller.xsm_target(d.domid)?;
    if is_deprecated(index) {
        return Err(Errno::EINVAL);
    }
    if !guest_may_set(index) && d.domid == caller.domid {
        return Err(Errno::EPERM);
    }
    let old = d.hvm.param(index).ok_or(Errno::EINVAL)?;
    if is_write_once(index) && old != 0 && new != old {
        return Err(Errno::EEXIST);
    }
    Ok(())
}

/// `hvm_allow_get_param`.
fn allow_get(caller: &Caller, d: &DomainRef<'_>, index: u32) -> XenResult<()> {
    caller.xsm_target(d.domid)?;
    if is_deprecated(index) {
        return Err(Errno::EINVAL);
    }
    if !guest_may_get(index) && d.domid == caller.domid {
        return Err(Errno::EPERM);
    }
    Ok(())
}

/// `hvm_set_param`: the checks above, then the param's value rule, then store.
pub fn hvm_set_param(
    env_lmce: bool,
    caller: &Caller,
    d: &mut DomainRef<'_>,
    fx: &mut Vec<HvmEffect>,
    index: u32,
    value: u64,
) -> XenResult<()> {
    allow_set(caller, d, index, value)?;
    let is_self = d.domid == caller.domid;
    let mut index = index;
    let mut value = value;
    match index {
        HVM_PARAM_TIMER_MODE if value > HVMPTM_one_missed_tick_pending => {
            return Err(Errno::EINVAL)
        }
        HVM_PARAM_VIRIDIAN
            if value & !(HVMPV_feature_mask as u64) != 0 || value & HVMPV_base_freq as u64 == 0 =>
        {
            return Err(Errno::EINVAL)
        }
        HVM_PARAM_ACPI_S_STATE => match value {
            0 => d.hvm.is_s3_suspended = false,
            3 => {
                crate::gprintk!(
                    d.domid.0,
                    log::Level::Warn,
                    "{:?}: HVM_PARAM_ACPI_S_STATE=3 (S3 suspend) is not implemented yet",
                    d.domid
                );
                return Err(Errno::EOPNOTSUPP);
            }
            _ => return Err(Errno::EINVAL),
        },
        HVM_PARAM_ACPI_IOPORTS_LOCATION => {
            // pmtimer_change_ioport: only between layouts 0 and 1, only with a PM timer.
            if d.emulation_flags & XEN_X86_EMU_PM == 0 {
                return Err(Errno::ENODEV);
            }
            let old = d.hvm.param(index).ok_or(Errno::EINVAL)?;
            if value != old && (value ^ old) != 1 {
                return Err(Errno::EINVAL);
            }
        }
        HVM_PARAM_ALTP2M => {
            caller.xsm_priv()?;
            if value > XEN_ALTP2M_limited {
                return Err(Errno::EINVAL);
            }
        }
        HVM_PARAM_TRIPLE_FAULT_REASON if value > SHUTDOWN_MAX => return Err(Errno::EINVAL),
        HVM_PARAM_NR_IOREQ_SERVER_PAGES if value == 0 || value > 64 => return Err(Errno::EINVAL),
        HVM_PARAM_X87_FIP_WIDTH => {
            if value != 0 && value != 4 && value != 8 {
                return Err(Errno::EINVAL);
            }
            d.hvm.x87_fip_width = value;
        }
        HVM_PARAM_VM86_TSS => {
            // The hardware would truncate the high bits.
            if value != value as u32 as u64 {
                if is_self {
                    fx.push(HvmEffect::Crash);
                }
                return Err(Errno::EINVAL);
            }
            // Old hvmloaders assume 128 bytes.
            if value != 0 {
                value |= (128 << 32) | VM86_TSS_UPDATED;
            }
            index = HVM_PARAM_VM86_TSS_SIZED;
        }
        HVM_PARAM_VM86_TSS_SIZED => {
            if (value >> 32) < TSS32_SIZE {
                if is_self {
                    fx.push(HvmEffect::Crash);
                }
                return Err(Errno::EINVAL);
            }
            // Cap: base TSS + interrupt redirection map + I/O bitmap + 1.
            let max = TSS32_SIZE + 0x100 / 8 + 0x10000 / 8 + 1;
            if (value >> 32) > max {
                value = (value & 0xffff_ffff) | (max << 32);
            }
            value |= VM86_TSS_UPDATED;
        }
        HVM_PARAM_MCA_CAP => {
            // vmce_enable_mca_cap
            if value & !XEN_HVM_MCA_CAP_MASK != 0 {
                return Err(Errno::EINVAL);
            }
            if value & XEN_HVM_MCA_CAP_LMCE != 0 && !env_lmce {
                return Err(Errno::EINVAL);
            }
        }
        // CALLBACK_IRQ (not validated, as in 4.17), STORE_*/CONSOLE_*, IDENT_PT, the
        // ioreq pfns, ...: stored for the backends and the toolstack.
        _ => {}
    }
    d.hvm.set_param_raw(index, value)?;
    crate::gprintk!(
        d.domid.0,
        log::Level::Debug,
        "{:?}: set param {index} = {value:#x}",
        d.domid
    );
    Ok(())
}

/// `hvm_get_param`.
pub fn hvm_get_param(caller: &Caller, d: &DomainRef<'_>, index: u32) -> XenResult<u64> {
    allow_get(caller, d, index)?;
    let p = &d.hvm.params;
    Ok(match index {
        HVM_PARAM_ACPI_S_STATE => {
            if d.hvm.is_s3_suspended {
                3
            } else {
                0
            }
        }
        HVM_PARAM_VM86_TSS => p[HVM_PARAM_VM86_TSS_SIZED as usize] & 0xffff_ffff,
        HVM_PARAM_VM86_TSS_SIZED => p[HVM_PARAM_VM86_TSS_SIZED as usize] & !VM86_TSS_UPDATED,
        HVM_PARAM_X87_FIP_WIDTH => d.hvm.x87_fip_width,
        _ => d.hvm.param(index).ok_or(Errno::EINVAL)?,
    })
}

/// `HVMOP_set_param`.
pub fn hvmop_set_param(
    env: &mut dyn HvmEnv,
    guest: &mut dyn GuestAccess,
    arg: u64,
) -> XenResult<i64> {
    let a: xen_hvm_param = copy_from_guest(guest, arg)?;
    if a.index >= HVM_NR_PARAMS {
        return Err(Errno::EINVAL);
    }
    let caller = Caller::of(env);
    let lmce = env.lmce_supported();
    with_domain(env, caller.resolve(a.domid), |d, fx| {
        if !d.is_hvm {
            return Err(Errno::EINVAL);
        }
        hvm_set_param(lmce, &caller, d, fx, a.index, a.value)?;
        Ok(0)
    })
}

/// `HVMOP_get_param`: the value goes back in the same struct.
pub fn hvmop_get_param(
    env: &mut dyn HvmEnv,
    guest: &mut dyn GuestAccess,
    arg: u64,
) -> XenResult<i64> {
    let mut a: xen_hvm_param = copy_from_guest(guest, arg)?;
    if a.index >= HVM_NR_PARAMS {
        return Err(Errno::EINVAL);
    }
    let caller = Caller::of(env);
    let value = with_domain(env, caller.resolve(a.domid), |d, _| {
        if !d.is_hvm {
            return Err(Errno::EINVAL);
        }
        hvm_get_param(&caller, d, a.index)
    })?;
    a.value = value;
    copy_to_guest(guest, arg, &a)?;
    Ok(0)
}

#[cfg(test)]
mod tests {
    use super::super::fake::*;
    use super::super::*;
    use super::*;
    use crate::common::guest_access::fake::FakeMemory;
    use xen_public_abi::xen::DOMID_SELF;

    const ARG: u64 = 0x100;

    struct T {
        env: FakeEnv,
        mem: FakeMemory,
    }

    impl T {
        fn new() -> Self {
            T {
                env: FakeEnv::new(),
                mem: FakeMemory::new(0x2000),
            }
        }
        fn set(&mut self, domid: u16, index: u32, value: u64) -> i64 {
            let a = xen_hvm_param {
                domid,
                pad: 0,
                index,
                value,
            };
            copy_to_guest(&mut self.mem, ARG, &a).unwrap();
            do_hvm_op(&mut self.env, &mut self.mem, HVMOP_set_param as u64, ARG)
        }
        /// (rc, value written back).
        fn get(&mut self, domid: u16, index: u32) -> (i64, u64) {
            let a = xen_hvm_param {
                domid,
                pad: 0,
                index,
                value: 0xdead,
            };
            copy_to_guest(&mut self.mem, ARG, &a).unwrap();
            let rc = do_hvm_op(&mut self.env, &mut self.mem, HVMOP_get_param as u64, ARG);
            let b: xen_hvm_param = copy_from_guest(&mut self.mem, ARG).unwrap();
            (rc, b.value)
        }
        fn raw(&mut self, domid: u16, index: u32) -> u64 {
            self.env.d(domid).hvm.param(index).unwrap()
        }
    }

    const EPERM: i64 = Errno::EPERM.as_ret();
    const EINVAL: i64 = Errno::EINVAL.as_ret();
    const EEXIST: i64 = Errno::EEXIST.as_ret();
    const ESRCH: i64 = Errno::ESRCH.as_ret();

    // ---- oracle D.1, row by row -------------------------------------------------

    #[test]
    fn d1_get_altp2m_self_is_zero() {
        let mut t = T::new();
        assert_eq!(t.get(DOMID_SELF, HVM_PARAM_ALTP2M), (0, 0));
    }

    #[test]
    fn d1_set_altp2m_self_eperm() {
        let mut t = T::new();
        assert_eq!(t.set(DOMID_SELF, HVM_PARAM_ALTP2M, 0), EPERM);
        assert_eq!(t.set(DOMID_SELF, HVM_PARAM_ALTP2M, 1), EPERM);
        assert_eq!(t.raw(0, HVM_PARAM_ALTP2M), 0);
        // The guest on itself, not privileged: also -EPERM.
        t.env.call_as(1);
        assert_eq!(t.set(DOMID_SELF, HVM_PARAM_ALTP2M, 1), EPERM);
        assert_eq!(t.set(1, HVM_PARAM_ALTP2M, 1), EPERM);
        assert_eq!(t.raw(1, HVM_PARAM_ALTP2M), 0);
    }

    #[test]
    fn d1_altp2m_zero_counts_as_unset() {
        let mut t = T::new();
        assert_eq!(t.set(1, HVM_PARAM_ALTP2M, 0), 0);
        assert_eq!(t.set(1, HVM_PARAM_ALTP2M, 2), 0);
        assert_eq!(t.get(1, HVM_PARAM_ALTP2M), (0, 2));
    }

    #[test]
    fn d1_altp2m_modes_accepted_4_rejected() {
        for mode in 1..=3 {
            let mut t = T::new();
            assert_eq!(t.set(1, HVM_PARAM_ALTP2M, mode), 0);
            assert_eq!(t.get(1, HVM_PARAM_ALTP2M), (0, mode));
        }
        let mut t = T::new();
        assert_eq!(t.set(1, HVM_PARAM_ALTP2M, 4), EINVAL);
        assert_eq!(t.get(1, HVM_PARAM_ALTP2M), (0, 0));
    }

    #[test]
    fn d1_altp2m_write_once() {
        let mut t = T::new();
        assert_eq!(t.set(1, HVM_PARAM_ALTP2M, 1), 0);
        assert_eq!(t.set(1, HVM_PARAM_ALTP2M, 1), 0);
        assert_eq!(t.set(1, HVM_PARAM_ALTP2M, 2), EEXIST);
        assert_eq!(t.set(1, HVM_PARAM_ALTP2M, 0), EEXIST);
        assert_eq!(t.raw(1, HVM_PARAM_ALTP2M), 1);
    }

    #[test]
    fn d1_altp2m_set_by_unprivileged_foreign_is_eperm() {
        // A second unprivileged domain setting domU 1's mode: XSM_TARGET fails first.
        let mut t = T::new();
        t.env.domains.insert(2, FakeDomain::hvm(1));
        t.env.call_as(2);
        assert_eq!(t.set(1, HVM_PARAM_ALTP2M, 1), EPERM);
        assert_eq!(t.get(1, HVM_PARAM_ALTP2M).0, EPERM);
    }

    #[test]
    fn xsm_target_and_device_model() {
        let mut t = T::new();
        t.env.domains.insert(2, FakeDomain::hvm(1));
        // An unprivileged domain may not touch another's params at all.
        t.env.call_as(2);
        assert_eq!(t.set(1, HVM_PARAM_CALLBACK_IRQ, 5), EPERM);
        assert_eq!(t.get(1, HVM_PARAM_CALLBACK_IRQ).0, EPERM);
        assert_eq!(t.raw(1, HVM_PARAM_CALLBACK_IRQ), 0);
        // Its device model may (XSM_TARGET), including params the guest may not set
        // on itself, but not the altp2m mode (XSM_PRIV).
        t.env.dm_target = Some(DomId(1));
        assert_eq!(t.set(1, HVM_PARAM_CALLBACK_IRQ, 5), 0);
        assert_eq!(t.set(1, HVM_PARAM_STORE_PFN, 0x77), 0);
        assert_eq!(t.get(1, HVM_PARAM_STORE_PFN), (0, 0x77));
        assert_eq!(t.set(1, HVM_PARAM_ALTP2M, 1), EPERM);
        assert_eq!(t.raw(1, HVM_PARAM_ALTP2M), 0);
        // ... and only for its target.
        t.env.domains.insert(3, FakeDomain::hvm(1));
        assert_eq!(t.set(3, HVM_PARAM_CALLBACK_IRQ, 5), EPERM);
    }

    #[test]
    fn d1_index_out_of_range() {
        let mut t = T::new();
        for dom in [DOMID_SELF, 1] {
            assert_eq!(t.get(dom, 39).0, EINVAL);
            assert_eq!(t.set(dom, 39, 0), EINVAL);
            assert_eq!(t.get(dom, 1000).0, EINVAL);
        }
        // The index is checked before the domain.
        assert_eq!(t.get(30000, 39).0, EINVAL);
    }

    #[test]
    fn d1_missing_domain_esrch() {
        let mut t = T::new();
        assert_eq!(t.get(30000, HVM_PARAM_ALTP2M).0, ESRCH);
        assert_eq!(t.set(30000, HVM_PARAM_CALLBACK_IRQ, 0), ESRCH);
    }

    #[test]
    fn d1_mca_cap_rules() {
        let mut t = T::new();
        assert_eq!(t.get(DOMID_SELF, HVM_PARAM_MCA_CAP).0, EPERM);
        assert_eq!(t.get(1, HVM_PARAM_MCA_CAP), (0, 0));
        assert_eq!(t.set(1, HVM_PARAM_MCA_CAP, 1), EINVAL); // no LMCE
        assert_eq!(t.set(1, HVM_PARAM_MCA_CAP, 0), 0);
        assert_eq!(t.set(1, HVM_PARAM_MCA_CAP, 2), EINVAL);
        // With LMCE: accepted, then write-once.
        t.env.lmce = true;
        assert_eq!(t.set(1, HVM_PARAM_MCA_CAP, 1), 0);
        assert_eq!(t.set(1, HVM_PARAM_MCA_CAP, 1), 0);
        assert_eq!(t.set(1, HVM_PARAM_MCA_CAP, 0), EEXIST);
        assert_eq!(t.get(1, HVM_PARAM_MCA_CAP), (0, 1));
    }

    #[test]
    fn d1_ident_pt_self_eperm() {
        let mut t = T::new();
        assert_eq!(t.get(DOMID_SELF, HVM_PARAM_IDENT_PT).0, EPERM);
        assert_eq!(t.set(DOMID_SELF, HVM_PARAM_IDENT_PT, 0x1000), EPERM);
        assert_eq!(t.set(1, HVM_PARAM_IDENT_PT, 0x1000), 0);
        assert_eq!(t.get(1, HVM_PARAM_IDENT_PT), (0, 0x1000));
    }

    #[test]
    fn d1_pae_enabled_deprecated_einval() {
        let mut t = T::new();
        assert_eq!(t.set(DOMID_SELF, HVM_PARAM_PAE_ENABLED, 1), EINVAL);
        assert_eq!(t.set(1, HVM_PARAM_PAE_ENABLED, 1), EINVAL);
        assert_eq!(t.get(1, HVM_PARAM_PAE_ENABLED).0, EINVAL);
        for i in [13, 20, 21, 22, 23, 24, 25, 26, 30] {
            assert_eq!(t.set(1, i, 1), EINVAL, "set {i}");
            assert_eq!(t.get(1, i).0, EINVAL, "get {i}");
            assert_eq!(t.get(DOMID_SELF, i).0, EINVAL, "get self {i}");
        }
    }

    #[test]
    fn d1_viridian_write_once() {
        let mut t = T::new();
        assert_eq!(t.set(1, HVM_PARAM_VIRIDIAN, 1), 0);
        assert_eq!(t.set(1, HVM_PARAM_VIRIDIAN, 1), 0);
        assert_eq!(t.set(1, HVM_PARAM_VIRIDIAN, 3), EEXIST);
        assert_eq!(t.get(1, HVM_PARAM_VIRIDIAN), (0, 1));
    }

    #[test]
    fn viridian_value_rules() {
        let mut t = T::new();
        assert_eq!(t.set(1, HVM_PARAM_VIRIDIAN, 2), EINVAL); // no base_freq
        assert_eq!(t.set(1, HVM_PARAM_VIRIDIAN, 1 << 13 | 1), EINVAL); // unknown bit
        assert_eq!(t.set(1, HVM_PARAM_VIRIDIAN, HVMPV_feature_mask as u64), 0);
    }

    #[test]
    fn d1_callback_irq_unchecked() {
        let mut t = T::new();
        let v = (2 << 56) | 0xf3;
        assert_eq!(t.set(1, HVM_PARAM_CALLBACK_IRQ, v), 0);
        assert_eq!(t.get(1, HVM_PARAM_CALLBACK_IRQ), (0, 0x0200_0000_0000_00f3));
        assert_eq!(t.set(1, HVM_PARAM_CALLBACK_IRQ, (2 << 56) | 0x0f), 0);
        assert_eq!(t.set(1, HVM_PARAM_CALLBACK_IRQ, (7 << 56) | 0x20), 0);
        assert_eq!(t.env.d(1).hvm.callback_via(), (7, 0x20));
        assert_eq!(t.set(DOMID_SELF, HVM_PARAM_CALLBACK_IRQ, v), 0);
        assert_eq!(t.get(DOMID_SELF, HVM_PARAM_CALLBACK_IRQ), (0, v));
        assert_eq!(t.set(DOMID_SELF, HVM_PARAM_CALLBACK_IRQ, 0), 0);
        assert_eq!(t.get(DOMID_SELF, HVM_PARAM_CALLBACK_IRQ), (0, 0));
    }

    // ---- the rest of the 4.17 rules -----------------------------------------------

    #[test]
    fn guest_self_set_and_get_lists() {
        let mut t = T::new();
        t.env.call_as(1);
        for i in 0..HVM_NR_PARAMS {
            let want_get = if is_deprecated(i) {
                EINVAL
            } else if guest_may_get(i) {
                0
            } else {
                EPERM
            };
            assert_eq!(t.get(DOMID_SELF, i).0, want_get, "get {i}");
            if !is_deprecated(i) && !guest_may_set(i) {
                assert_eq!(t.set(DOMID_SELF, i, 0), EPERM, "set {i}");
            }
        }
        // Settable ones with a value each accepts.
        for (i, v) in [
            (HVM_PARAM_CALLBACK_IRQ, 5),
            (HVM_PARAM_VM_GENERATION_ID_ADDR, 0x1234),
            (HVM_PARAM_STORE_EVTCHN, 3),
            (HVM_PARAM_CONSOLE_EVTCHN, 4),
            (HVM_PARAM_X87_FIP_WIDTH, 8),
            (HVM_PARAM_VM86_TSS, 0x9000),
            (HVM_PARAM_VM86_TSS_SIZED, (200 << 32) | 0x8000),
        ] {
            assert_eq!(t.set(DOMID_SELF, i, v), 0, "set {i}");
        }
        assert_eq!(t.get(DOMID_SELF, HVM_PARAM_CONSOLE_EVTCHN), (0, 4));
        // Store/console pfns are read-only for the guest, readable.
        assert_eq!(t.set(DOMID_SELF, HVM_PARAM_STORE_PFN, 9), EPERM);
        t.env.call_as(0);
        assert_eq!(t.set(1, HVM_PARAM_STORE_PFN, 0xfeffe), 0);
        assert_eq!(t.set(1, HVM_PARAM_CONSOLE_PFN, 0xfefff), 0);
        t.env.call_as(1);
        assert_eq!(t.get(DOMID_SELF, HVM_PARAM_STORE_PFN), (0, 0xfeffe));
        assert_eq!(t.get(DOMID_SELF, HVM_PARAM_CONSOLE_PFN), (0, 0xfefff));
    }

    #[test]
    fn unset_params_read_zero() {
        let mut t = T::new();
        for i in 0..HVM_NR_PARAMS {
            if !is_deprecated(i) {
                assert_eq!(t.get(1, i), (0, 0), "param {i}");
            }
        }
    }

    #[test]
    fn non_hvm_target_einval() {
        let mut t = T::new();
        t.env.d(1).is_hvm = false;
        assert_eq!(t.set(1, HVM_PARAM_CALLBACK_IRQ, 1), EINVAL);
        assert_eq!(t.get(1, HVM_PARAM_CALLBACK_IRQ).0, EINVAL);
    }

    #[test]
    fn bad_pointer_efault() {
        let mut t = T::new();
        let e = Errno::EFAULT.as_ret();
        assert_eq!(do_hvm_op(&mut t.env, &mut t.mem, 0, 0x1ff8), e);
        assert_eq!(do_hvm_op(&mut t.env, &mut t.mem, 1, 0x1ff8), e);
    }

    #[test]
    fn write_once_family() {
        for i in [
            HVM_PARAM_IOREQ_PFN,
            HVM_PARAM_BUFIOREQ_PFN,
            HVM_PARAM_IOREQ_SERVER_PFN,
            HVM_PARAM_NR_IOREQ_SERVER_PAGES,
        ] {
            let mut t = T::new();
            assert_eq!(t.set(1, i, 4), 0, "{i}");
            assert_eq!(t.set(1, i, 4), 0, "{i}");
            assert_eq!(t.set(1, i, 5), EEXIST, "{i}");
        }
        // Not write-once: STORE_PFN may change.
        let mut t = T::new();
        assert_eq!(t.set(1, HVM_PARAM_STORE_PFN, 4), 0);
        assert_eq!(t.set(1, HVM_PARAM_STORE_PFN, 5), 0);
    }

    #[test]
    fn value_rules() {
        let mut t = T::new();
        assert_eq!(t.set(1, HVM_PARAM_TIMER_MODE, 3), 0);
        assert_eq!(t.set(1, HVM_PARAM_TIMER_MODE, 4), EINVAL);
        assert_eq!(t.set(1, HVM_PARAM_TRIPLE_FAULT_REASON, 5), 0);
        assert_eq!(t.set(1, HVM_PARAM_TRIPLE_FAULT_REASON, 6), EINVAL);
        assert_eq!(t.set(1, HVM_PARAM_NR_IOREQ_SERVER_PAGES, 0), EINVAL);
        assert_eq!(t.set(1, HVM_PARAM_NR_IOREQ_SERVER_PAGES, 65), EINVAL);
        assert_eq!(t.set(1, HVM_PARAM_NR_IOREQ_SERVER_PAGES, 64), 0);
        assert_eq!(t.set(1, HVM_PARAM_X87_FIP_WIDTH, 2), EINVAL);
        assert_eq!(t.set(1, HVM_PARAM_X87_FIP_WIDTH, 4), 0);
        assert_eq!(t.get(1, HVM_PARAM_X87_FIP_WIDTH), (0, 4));
        t.env.d(1).hvm.x87_fip_width = 8;
        assert_eq!(t.get(1, HVM_PARAM_X87_FIP_WIDTH), (0, 8));
        // ACPI S-state: 0 fine, 3 not implemented, others -EINVAL.
        assert_eq!(t.set(1, HVM_PARAM_ACPI_S_STATE, 0), 0);
        assert_eq!(
            t.set(1, HVM_PARAM_ACPI_S_STATE, 3),
            Errno::EOPNOTSUPP.as_ret()
        );
        assert_eq!(t.set(1, HVM_PARAM_ACPI_S_STATE, 1), EINVAL);
        assert_eq!(t.get(1, HVM_PARAM_ACPI_S_STATE), (0, 0));
        t.env.d(1).hvm.is_s3_suspended = true;
        assert_eq!(t.get(1, HVM_PARAM_ACPI_S_STATE), (0, 3));
    }

    #[test]
    fn acpi_ioports_location() {
        let mut t = T::new();
        // The baseline domU has no PM timer.
        assert_eq!(
            t.set(1, HVM_PARAM_ACPI_IOPORTS_LOCATION, 1),
            Errno::ENODEV.as_ret()
        );
        t.env.d(1).emulation_flags |= XEN_X86_EMU_PM;
        assert_eq!(t.set(1, HVM_PARAM_ACPI_IOPORTS_LOCATION, 0), 0);
        assert_eq!(t.set(1, HVM_PARAM_ACPI_IOPORTS_LOCATION, 1), 0);
        assert_eq!(t.set(1, HVM_PARAM_ACPI_IOPORTS_LOCATION, 3), EINVAL);
        assert_eq!(t.set(1, HVM_PARAM_ACPI_IOPORTS_LOCATION, 0), 0);
        assert_eq!(t.get(1, HVM_PARAM_ACPI_IOPORTS_LOCATION), (0, 0));
    }

    #[test]
    fn vm86_tss() {
        let mut t = T::new();
        assert_eq!(t.set(1, HVM_PARAM_VM86_TSS, 0x9000), 0);
        assert_eq!(t.get(1, HVM_PARAM_VM86_TSS), (0, 0x9000));
        assert_eq!(
            t.get(1, HVM_PARAM_VM86_TSS_SIZED),
            (0, (128 << 32) | 0x9000)
        );
        assert_eq!(
            t.raw(1, HVM_PARAM_VM86_TSS_SIZED),
            VM86_TSS_UPDATED | (128 << 32) | 0x9000
        );
        assert_eq!(t.raw(1, HVM_PARAM_VM86_TSS), 0);
        // Too big from a foreign domain: -EINVAL, no crash.
        assert_eq!(t.set(1, HVM_PARAM_VM86_TSS, 1 << 32), EINVAL);
        assert!(t.env.hooks.is_empty());
        // Sized: too small, capped.
        assert_eq!(t.set(1, HVM_PARAM_VM86_TSS_SIZED, (103 << 32) | 1), EINVAL);
        assert_eq!(t.set(1, HVM_PARAM_VM86_TSS_SIZED, (1 << 46) | 0x5000), 0);
        assert_eq!(
            t.get(1, HVM_PARAM_VM86_TSS_SIZED),
            (0, (8329 << 32) | 0x5000)
        );
        // From the guest itself: the domain is crashed as well.
        t.env.call_as(1);
        assert_eq!(t.set(DOMID_SELF, HVM_PARAM_VM86_TSS, 1 << 32), EINVAL);
        assert_eq!(t.set(DOMID_SELF, HVM_PARAM_VM86_TSS_SIZED, 5), EINVAL);
        assert_eq!(
            t.env.hooks,
            vec![Hook::Crash(DomId(1)), Hook::Crash(DomId(1))]
        );
    }
}
