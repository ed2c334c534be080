//! Scenario 4, altp2m (`HVMOP_altp2m`, docs/altp2m.md):
//!
//! - mixed (d1): the guest turns altp2m on, enables #VE with its info page,
//!   creates a view where one of its pages is read-only (suppress-#VE cleared),
//!   switches to it and writes the page. The #VE handler (vector 20; emulated by
//!   the hypervisor on SVM) checks the information area (exit reason 48, GPA,
//!   view index), releases it (busy word = 0) and switches back to view 0; the
//!   write then completes.
//! - external (d2): every sub-op from the guest is `-EPERM`; dom0 turns altp2m on
//!   for it, creates a view and switches it there.
//! - limited (d3): the guest may only `vcpu_enable_notify` (after dom0 turned
//!   altp2m on); everything else is `-EPERM`.

use core::sync::atomic::{AtomicU64, Ordering};

use guest_rt::idt::{self, TrapFrame, VE_VECTOR};
use guest_rt::report::{check, done, expect_eq};
use guest_rt::xen::{self, hypercall_ptr};
use guest_rt::Boot;
use xen_public_abi::hvm::hvm_op::*;
use xen_public_abi::memory::{XENMEM_access_default, XENMEM_access_rx};
use xen_public_abi::sched::SHUTDOWN_poweroff;
use xen_public_abi::xen::{__HYPERVISOR_hvm_op, DOMID_SELF};
use zerocopy::FromZeros;

use crate::dom0;

const S: &str = "altp2m";
const EPERM: i64 = -1;
const EOPNOTSUPP: i64 = -95;

/// `HVMOP_altp2m` on `domain` with `cmd`; `fill` sets the sub-op payload.
/// Returns the result and the op as the hypervisor left it (OUT fields).
fn altp2m(
    domain: u16,
    cmd: u32,
    fill: impl FnOnce(&mut xen_hvm_altp2m_op),
) -> (i64, xen_hvm_altp2m_op) {
    let mut op = xen_hvm_altp2m_op::new_zeroed();
    op.version = HVMOP_ALTP2M_INTERFACE_VERSION;
    op.cmd = cmd;
    op.domain = domain;
    fill(&mut op);
    let rc = hypercall_ptr(__HYPERVISOR_hvm_op, HVMOP_altp2m as u64, &mut op);
    (rc, op)
}

fn set_state(domain: u16, on: bool) -> i64 {
    altp2m(domain, HVMOP_altp2m_set_domain_state, |op| {
        op.u.set(&xen_hvm_altp2m_domain_state { state: on as u8 })
    })
    .0
}

fn create_view(domain: u16) -> Result<u16, i64> {
    let (rc, op) = altp2m(domain, HVMOP_altp2m_create_p2m, |op| {
        op.u.set(&xen_hvm_altp2m_view {
            view: 0,
            hvmmem_default_access: XENMEM_access_default as u16,
        })
    });
    if rc == 0 {
        Ok(op.u.get::<xen_hvm_altp2m_view>().view)
    } else {
        Err(rc)
    }
}

fn switch_view(domain: u16, view: u16) -> i64 {
    altp2m(domain, HVMOP_altp2m_switch_p2m, |op| {
        op.u.set(&xen_hvm_altp2m_view {
            view,
            hvmmem_default_access: 0,
        })
    })
    .0
}

fn enable_notify(gfn: u64) -> i64 {
    altp2m(DOMID_SELF, HVMOP_altp2m_vcpu_enable_notify, |op| {
        op.u.set(&xen_hvm_altp2m_vcpu_enable_notify {
            vcpu_id: 0,
            pad: 0,
            gfn,
        })
    })
    .0
}

#[repr(C, align(4096))]
struct Page([u8; 4096]);
static mut VE_INFO: Page = Page([0; 4096]);
static mut TARGET: Page = Page([0; 4096]);

static VE_COUNT: AtomicU64 = AtomicU64::new(0);
static VE_REASON: AtomicU64 = AtomicU64::new(0);
static VE_GPA: AtomicU64 = AtomicU64::new(0);
static VE_VIEW: AtomicU64 = AtomicU64::new(0);

fn ve_handler(_frame: &mut TrapFrame) {
    let info = (&raw mut VE_INFO) as *mut u8;
    // SAFETY: the #VE information area (exit reason @0, busy @4, qualification @8,
    // GLA @16, GPA @24, view index @32), ours and registered with the hypervisor.
    unsafe {
        VE_REASON.store(
            (info as *const u32).read_volatile() as u64,
            Ordering::SeqCst,
        );
        VE_GPA.store(
            (info.add(24) as *const u64).read_volatile(),
            Ordering::SeqCst,
        );
        VE_VIEW.store(
            (info.add(32) as *const u16).read_volatile() as u64,
            Ordering::SeqCst,
        );
        (info.add(4) as *mut u32).write_volatile(0);
    }
    VE_COUNT.fetch_add(1, Ordering::SeqCst);
    // Leave the restricted view: the faulting write re-executes in view 0.
    switch_view(DOMID_SELF, 0);
}

fn mixed() {
    idt::set_handler(VE_VECTOR, ve_handler);
    let ve_gfn = ((&raw const VE_INFO) as u64) >> 12;
    let target = (&raw mut TARGET) as u64;
    let on = set_state(DOMID_SELF, true);
    let notify = enable_notify(ve_gfn);
    let view = create_view(DOMID_SELF);
    let view_id = view.unwrap_or(0);
    let (acc, _) = altp2m(DOMID_SELF, HVMOP_altp2m_set_mem_access, |op| {
        op.u.set(&xen_hvm_altp2m_mem_access {
            view: view_id,
            access: XENMEM_access_rx as u16,
            pad: 0,
            gfn: target >> 12,
        })
    });
    let (sve, _) = altp2m(DOMID_SELF, HVMOP_altp2m_set_suppress_ve, |op| {
        op.u.set(&xen_hvm_altp2m_suppress_ve {
            view: view_id,
            suppress_ve: 0,
            pad1: 0,
            pad2: 0,
            gfn: target >> 12,
        })
    });
    let sw = switch_view(DOMID_SELF, view_id);
    guest_rt::info!(
        "altp2m: mixed setup: state {} notify {} view {:?} access {} suppress_ve {} switch {}",
        on,
        notify,
        view,
        acc,
        sve,
        sw
    );
    // SAFETY: our own page; in the view it is read-only, so this write takes a #VE first.
    unsafe { (target as *mut u64).write_volatile(0x5a5a_5a5a) };
    let count = VE_COUNT.load(Ordering::SeqCst);
    check(
        S,
        "mixed-ve-delivered",
        count == 1,
        format_args!(
            "{} #VE (setup rcs {} {} {:?} {} {} {})",
            count, on, notify, view, acc, sve, sw
        ),
    );
    let (reason, gpa, v) = (
        VE_REASON.load(Ordering::SeqCst),
        VE_GPA.load(Ordering::SeqCst),
        VE_VIEW.load(Ordering::SeqCst),
    );
    check(
        S,
        "mixed-ve-info",
        reason == 48 && gpa & !0xfff == target && v == view_id as u64,
        format_args!(
            "reason {} gpa {:#x} (want {:#x}) view {} (want {})",
            reason, gpa, target, v, view_id
        ),
    );
    // SAFETY: our own page, readable in every view.
    let value = unsafe { (target as *const u64).read_volatile() };
    expect_eq(S, "mixed-write-completed", value as i64, 0x5a5a_5a5a);
}

/// The guest's own domain-state calls (exempt from the "altp2m active" check,
/// so the answer does not depend on whether dom0 got there first).
fn external() {
    let a = set_state(DOMID_SELF, true);
    let (b, _) = altp2m(DOMID_SELF, HVMOP_altp2m_get_domain_state, |_| {});
    check(
        S,
        "external-guest-eperm",
        a == EPERM && b == EPERM,
        format_args!("set_domain_state {} get_domain_state {}", a, b),
    );
}

fn limited(wait: u64) {
    let gfn = ((&raw const VE_INFO) as u64) >> 12;
    // Until dom0 turned altp2m on for us, the op is -EOPNOTSUPP.
    let mut rc = EOPNOTSUPP;
    for _ in 0..wait {
        rc = enable_notify(gfn);
        if rc != EOPNOTSUPP {
            break;
        }
        xen::yield_now();
    }
    expect_eq(S, "limited-enable-notify", rc, 0);
    let a = set_state(DOMID_SELF, false);
    let b = create_view(DOMID_SELF).err().unwrap_or(0);
    check(
        S,
        "limited-other-ops-eperm",
        a == EPERM && b == EPERM,
        format_args!("set_domain_state {} create_p2m {}", a, b),
    );
}

pub fn domu(boot: &Boot) -> ! {
    match boot.arg("mode") {
        Some("mixed") => mixed(),
        Some("external") => external(),
        Some("limited") => limited(boot.arg_u64("wait", 200_000)),
        other => check(S, "mode", false, format_args!("unknown mode {:?}", other)),
    }
    let who = crate::hello::cat_name("d", boot.arg_u64("domid", 1) as u16);
    guest_rt::report::domu_exit(S, &who, SHUTDOWN_poweroff)
}

pub fn dom0(boot: &Boot) -> ! {
    let wait = boot.arg_u64("wait", 200_000);
    let ext = boot.arg("external").and_then(guest_rt::parse_u64);
    let lim = boot.arg("limited").and_then(guest_rt::parse_u64);
    if let Some(d) = ext {
        let d = d as u16;
        let on = set_state(d, true);
        let view = create_view(d);
        let sw = switch_view(d, view.unwrap_or(0));
        let (idx_rc, op) = altp2m(d, HVMOP_altp2m_get_p2m_idx, |op| {
            op.u.set(&xen_hvm_altp2m_get_vcpu_p2m_idx {
                vcpu_id: 0,
                altp2m_idx: 0,
                _implicit0: [0; 2],
            })
        });
        let idx = op.u.get::<xen_hvm_altp2m_get_vcpu_p2m_idx>().altp2m_idx;
        check(
            S,
            "external-dom0-drives-views",
            on == 0 && view.is_ok() && sw == 0 && idx_rc == 0 && Ok(idx) == view,
            format_args!(
                "set_domain_state {} create {:?} switch {} get_p2m_idx {} -> {}",
                on, view, sw, idx_rc, idx
            ),
        );
        switch_view(d, 0);
    }
    if let Some(d) = lim {
        expect_eq(S, "limited-dom0-activates", set_state(d as u16, true), 0);
    }
    for key in ["mixed", "external", "limited"] {
        if let Some(d) = boot.arg(key).and_then(guest_rt::parse_u64) {
            let name = crate::hello::cat_name("clean-exit-d", d as u16);
            match dom0::wait_stopped(d as u16, wait) {
                Some(i) => expect_eq(S, &name, i.code() as i64, SHUTDOWN_poweroff as i64),
                None => check(S, &name, false, format_args!("d{} never stopped", d)),
            }
        }
    }
    done(S);
    xen::shutdown(SHUTDOWN_poweroff)
}
