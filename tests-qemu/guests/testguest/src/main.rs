//! The issue-7 test guest: one PVH image; its role comes from `role=` on the
//! start-info command line. dom0 roles orchestrate and print `SCENARIO ... DONE`;
//! domU roles check what they can see from inside and exit with a shutdown code.
//! Every check prints a `RESULT <scenario>.<check> PASS|FAIL` line.
#![no_std]
#![no_main]

mod altp2m;
mod dom0;
mod errors;
mod evtchn;
mod hello;
mod isolation;

use guest_rt::{println, xen, Boot};
use xen_public_abi::sched::{SHUTDOWN_crash, SHUTDOWN_poweroff};

#[no_mangle]
fn guest_main(boot: &Boot) -> ! {
    let role = boot.arg("role").unwrap_or("none");
    println!("testguest: role {} (cmdline \"{}\")", role, boot.cmdline);
    if role == "selftest" {
        // Plain-QEMU check of the runtime: ring 3 entry and the exception path
        // (VMMCALL at CPL3 without SVM is #UD, reported with the ring-3 RIP).
        // Without SVM/VMX the ring-3 VMMCALL/VMCALL is #UD: fake its result and
        // skip it, so the int 0x80 return path runs too.
        guest_rt::idt::set_handler(6, |f| {
            if f.cs & 3 == 3 {
                f.rax = 0x1234;
                f.rip += 3;
            }
        });
        let rc = guest_rt::user::hypercall_at_cpl3(17);
        println!("selftest: cpl3 round trip rc {:#x} (want 0x1234)", rc);
    }
    if boot.xen_base.is_none() && role != "none" {
        println!("testguest: not under Xen; nothing to test");
        xen::shutdown(SHUTDOWN_crash);
    }
    match role {
        "hello" => hello::dom0(boot),
        "hello-domu" => hello::domu(boot),
        "errors" => errors::dom0(boot),
        "errors-domu" => errors::domu(boot),
        "evtchn" => evtchn::dom0(boot),
        "evtchn-domu" => evtchn::domu(boot),
        "altp2m" => altp2m::dom0(boot),
        "altp2m-domu" => altp2m::domu(boot),
        "isolation" => isolation::dom0(boot),
        "triple-fault" => isolation::triple_fault(),
        "bad-gpa" => isolation::bad_gpa(boot),
        "none" => xen::shutdown(SHUTDOWN_poweroff),
        other => {
            println!("testguest: unknown role {}", other);
            xen::shutdown(SHUTDOWN_crash)
        }
    }
}
