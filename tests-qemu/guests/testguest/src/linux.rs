//! dom0 of the Linux domU scenarios (issue 12): the domU is an unmodified Debian
//! kernel with a busybox initramfs; dom0 only waits for it to stop and checks
//! that its `poweroff -f` arrived as `SHUTDOWN_poweroff`.

use guest_rt::report::{check, done, expect_eq};
use guest_rt::{println, xen, Boot};
use xen_public_abi::sched::SHUTDOWN_poweroff;

use crate::dom0;

const S: &str = "linux";

pub fn dom0(boot: &Boot) -> ! {
    let domu = boot.arg_u64("domu", 1) as u16;
    match dom0::wait_stopped(domu, boot.arg_u64("wait", 5_000_000)) {
        Some(i) => expect_eq(
            S,
            "domu-poweroff",
            i.code() as i64,
            SHUTDOWN_poweroff as i64,
        ),
        None => check(
            S,
            "domu-poweroff",
            false,
            format_args!("d{} never stopped", domu),
        ),
    }
    done(S);
    println!("linux: dom0 powers off");
    xen::shutdown(SHUTDOWN_poweroff)
}
