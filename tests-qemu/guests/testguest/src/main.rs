//! The issue-7 test guest: one PVH image, its role picked by `role=` on the
//! start-info command line (see each module). Results are `RESULT` lines.
#![no_std]
#![no_main]

use guest_rt::{println, Boot};

#[no_mangle]
fn guest_main(boot: &Boot) -> ! {
    println!("testguest: cmdline \"{}\"", boot.cmdline);
    guest_rt::xen::shutdown(xen_public_abi::sched::SHUTDOWN_poweroff)
}
