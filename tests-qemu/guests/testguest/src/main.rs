//! The issue-7 test guest: one PVH image; its role comes from `role=` on the
//! start-info command line. dom0 roles orchestrate and print `SCENARIO ... DONE`;
//! domU roles check what they can see from inside and exit with a shutdown code.
//! Every check prints a `RESULT <scenario>.<check> PASS|FAIL` line.
#![no_std]
#![no_main]

extern crate alloc;

mod altp2m;
mod cpu_policy;
mod dom0;
mod errors;
mod evtchn;
mod hello;
mod hostile;
mod isolation;
mod xl_console;
mod xl_role;

use guest_rt::{println, xen, Boot};
use xen_public_abi::sched::{SHUTDOWN_crash, SHUTDOWN_poweroff};

#[no_mangle]
fn guest_main(boot: &Boot) -> ! {
    let role = boot.arg("role").unwrap_or("none");
    // domU console output is rate-limited: domUs print one summary line.
    guest_rt::report::set_quiet(role.ends_with("-domu"));
    guest_rt::info!("testguest: role {} (cmdline \"{}\")", role, boot.cmdline);
    if role == "selftest" {
        selftest();
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
        "cpu-policy" => cpu_policy::dom0(boot),
        "cpu-policy-domu" => cpu_policy::domu(boot),
        "hostile" => hostile::dom0(boot),
        "hostile-victim-domu" => hostile::victim(boot),
        "hostile-storm-domu" => hostile::storm(boot),
        "triple-fault" => isolation::triple_fault(),
        "bad-gpa" => isolation::bad_gpa(boot),
        "xl" => xl_role::dom0(boot),
        "xl-domu" => xl_role::domu(boot),
        "none" => xen::shutdown(SHUTDOWN_poweroff),
        other => {
            println!("testguest: unknown role {}", other);
            xen::shutdown(SHUTDOWN_crash)
        }
    }
}

/// Plain-QEMU check of the runtime (`qemu-system-x86_64 -kernel testguest
/// -append role=selftest`, the `guest-rt-selftest` scenario): the IDT (a
/// handled `int3`), ring 3 entry and the DPL-3 return gate. Without SVM/VMX the
/// ring-3 VMMCALL/VMCALL is #UD: the #UD handler fakes its result and skips it.
/// Ends QEMU through isa-debug-exit (0x10: success, 0x11: failure).
fn selftest() -> ! {
    use core::sync::atomic::{AtomicU32, Ordering};
    use guest_rt::report::{check, done, failures};
    static BREAKPOINTS: AtomicU32 = AtomicU32::new(0);
    guest_rt::idt::set_handler(3, |_| {
        BREAKPOINTS.fetch_add(1, Ordering::SeqCst);
    });
    // SAFETY: int3 goes to the handler just installed, which returns.
    unsafe { core::arch::asm!("int3") };
    let n = BREAKPOINTS.load(Ordering::SeqCst);
    check(
        "selftest",
        "idt-int3",
        n == 1,
        format_args!("{} breakpoints", n),
    );
    guest_rt::idt::set_handler(6, |f| {
        if f.cs & 3 == 3 {
            f.rax = 0x1234;
            f.rip += 3;
        }
    });
    let rc = guest_rt::user::hypercall_at_cpl3(17);
    check(
        "selftest",
        "cpl3-round-trip",
        rc == 0x1234,
        format_args!("rc {:#x}", rc),
    );
    done("selftest");
    let ok = failures() == 0;
    println!(
        "EXIT: {}",
        if ok { "success" } else { "failure (selftest)" }
    );
    let code: u8 = if ok { 0x10 } else { 0x11 };
    // SAFETY: QEMU's isa-debug-exit port (the scenario configures it).
    unsafe {
        core::arch::asm!("out dx, al", in("dx") 0xf4u16, in("al") code, options(nomem, nostack));
    }
    xen::shutdown(SHUTDOWN_crash)
}

/// The heap for the dom0 toolstack (`alloc`): a bump allocator over a static
/// arena; memory is never reused (enough for a scenario's script).
mod heap {
    use core::alloc::{GlobalAlloc, Layout};
    use core::sync::atomic::{AtomicUsize, Ordering};

    const SIZE: usize = 2 << 20;
    #[repr(C, align(4096))]
    struct Arena([u8; SIZE]);
    static mut ARENA: Arena = Arena([0; SIZE]);
    static NEXT: AtomicUsize = AtomicUsize::new(0);

    struct Bump;

    // SAFETY: hands out disjoint, aligned ranges of the arena (atomically
    // advanced); null when exhausted; dealloc never reuses memory.
    unsafe impl GlobalAlloc for Bump {
        unsafe fn alloc(&self, l: Layout) -> *mut u8 {
            let base = (&raw mut ARENA) as usize;
            let mut cur = NEXT.load(Ordering::Relaxed);
            loop {
                let start = (base + cur).next_multiple_of(l.align()) - base;
                let end = match start.checked_add(l.size()) {
                    Some(e) if e <= SIZE => e,
                    _ => return core::ptr::null_mut(),
                };
                match NEXT.compare_exchange(cur, end, Ordering::Relaxed, Ordering::Relaxed) {
                    Ok(_) => return (base + start) as *mut u8,
                    Err(now) => cur = now,
                }
            }
        }
        unsafe fn dealloc(&self, _p: *mut u8, _l: Layout) {}
    }

    #[global_allocator]
    static ALLOC: Bump = Bump;
}
