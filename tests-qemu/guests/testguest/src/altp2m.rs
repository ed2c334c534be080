//! Scenario 4, altp2m (placeholder until the next commit wires the checks).
use guest_rt::report::{check, done};
use guest_rt::Boot;
use xen_public_abi::sched::SHUTDOWN_poweroff;

pub fn dom0(_boot: &Boot) -> ! {
    check(
        "altp2m",
        "implemented",
        false,
        format_args!("altp2m guest not written yet"),
    );
    done("altp2m");
    guest_rt::xen::shutdown(SHUTDOWN_poweroff)
}

pub fn domu(boot: &Boot) -> ! {
    dom0(boot)
}
