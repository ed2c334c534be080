//! Scenario 2, errors: `-ENOSYS` for unknown hypercalls and sub-ops, `-EFAULT`
//! for bad argument pointers, `-EPERM` for domctl from a domU and for any
//! hypercall from CPL3 (xen-abi.md §7.5; oracle §E).

use guest_rt::report::{check, done, expect_eq};
use guest_rt::xen::{self, hypercall};
use guest_rt::{user, Boot};
use xen_public_abi::sched::{SHUTDOWN_poweroff, SHUTDOWN_reboot};
use xen_public_abi::version::{XENVER_extraversion, XENVER_version};
use xen_public_abi::xen::*;

use crate::dom0;

const S: &str = "errors";
const EPERM: i64 = -1;
const EFAULT: i64 = -14;
const ENOSYS: i64 = -38;
/// A guest-virtual address our page tables do not map (only the first 4 GiB are).
const UNMAPPED: u64 = 0x0000_7000_0000_0000;

pub fn dom0(boot: &Boot) -> ! {
    expect_eq(
        S,
        "hypercall-60-enosys",
        hypercall(60, 0, 0, 0, 0, 0),
        ENOSYS,
    );
    expect_eq(
        S,
        "hypercall-38-tmem-enosys",
        hypercall(38, 0, 0, 0, 0, 0),
        ENOSYS,
    );
    expect_eq(
        S,
        "set-trap-table-enosys",
        hypercall(__HYPERVISOR_set_trap_table, 0, 0, 0, 0, 0),
        ENOSYS,
    );
    expect_eq(S, "xen-version-99-enosys", xen::xen_version(99, 0), ENOSYS);
    expect_eq(
        S,
        "sched-op-999-enosys",
        hypercall(__HYPERVISOR_sched_op, 999, 0, 0, 0, 0),
        ENOSYS,
    );
    expect_eq(
        S,
        "memory-op-999-enosys",
        hypercall(__HYPERVISOR_memory_op, 999, 0, 0, 0, 0),
        ENOSYS,
    );
    expect_eq(
        S,
        "console-io-99-enosys",
        hypercall(__HYPERVISOR_console_io, 99, 0, 0, 0, 0),
        ENOSYS,
    );
    expect_eq(
        S,
        "xen-version-extraversion-efault",
        xen::xen_version(XENVER_extraversion, UNMAPPED),
        EFAULT,
    );
    expect_eq(
        S,
        "console-io-write-efault",
        hypercall(
            __HYPERVISOR_console_io,
            CONSOLEIO_write as u64,
            16,
            UNMAPPED,
            0,
            0,
        ),
        EFAULT,
    );
    expect_eq(
        S,
        "domctl-efault",
        hypercall(__HYPERVISOR_domctl, UNMAPPED, 0, 0, 0, 0),
        EFAULT,
    );
    expect_eq(
        S,
        "dom0-cpl3-hypercall-eperm",
        user::hypercall_at_cpl3(__HYPERVISOR_xen_version),
        EPERM,
    );
    // Still alive and well after the errors.
    expect_eq(
        S,
        "dom0-still-works",
        xen::xen_version(XENVER_version, 0),
        0x0004_0011,
    );

    if let Some(domu) = boot.arg("domu").and_then(guest_rt::parse_u64) {
        match dom0::wait_stopped(domu as u16, boot.arg_u64("wait", 200_000)) {
            Some(i) => expect_eq(S, "domu-exit-code", i.code() as i64, SHUTDOWN_reboot as i64),
            None => check(
                S,
                "domu-exit-code",
                false,
                format_args!("d{} never stopped", domu),
            ),
        }
    }
    done(S);
    xen::shutdown(SHUTDOWN_poweroff)
}

pub fn domu(boot: &Boot) -> ! {
    let rc = dom0::getdomaininfo(0).err().unwrap_or(0);
    expect_eq(S, "domu-domctl-eperm", rc, EPERM);
    expect_eq(
        S,
        "domu-cpl3-hypercall-eperm",
        user::hypercall_at_cpl3(__HYPERVISOR_console_io),
        EPERM,
    );
    expect_eq(
        S,
        "domu-unknown-hypercall-enosys",
        hypercall(60, 0, 0, 0, 0, 0),
        ENOSYS,
    );
    let who = crate::hello::cat_name("d", boot.arg_u64("domid", 1) as u16);
    guest_rt::report::domu_exit(S, &who, SHUTDOWN_reboot)
}
