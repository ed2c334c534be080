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
mod gnttab;
mod hello;
mod hostile;
mod isolation;
mod xenbus;
mod xl_console;
mod xl_role;
mod xs_dom0;

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
        "gnttab" => gnttab::dom0(boot),
        "gnttab-domu" => gnttab::domu(boot),
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

/// The heap (`alloc`) of the dom0 toolstack and the domUs: a first-fit free-list
/// allocator (`linked_list_allocator`, as the hypervisor's) over a static
/// arena, behind a spin flag. Freed memory is reused: dom0's xenstored
/// allocates for every request a domU makes, so a bump allocator would let one
/// domU exhaust dom0 (the `xsa175` scenario's request flood).
mod heap {
    use core::alloc::{GlobalAlloc, Layout};
    use core::cell::UnsafeCell;
    use core::ptr::NonNull;
    use core::sync::atomic::{AtomicBool, Ordering};
    use linked_list_allocator::Heap;

    const SIZE: usize = 2 << 20;
    #[repr(C, align(4096))]
    struct Arena([u8; SIZE]);
    static mut ARENA: Arena = Arena([0; SIZE]);

    struct Locked {
        busy: AtomicBool,
        ready: UnsafeCell<bool>,
        heap: UnsafeCell<Heap>,
    }

    // SAFETY: `heap` and `ready` are only touched with `busy` held.
    unsafe impl Sync for Locked {}

    impl Locked {
        fn with<R>(&self, f: impl FnOnce(&mut Heap) -> R) -> R {
            while self
                .busy
                .compare_exchange(false, true, Ordering::Acquire, Ordering::Relaxed)
                .is_err()
            {
                core::hint::spin_loop();
            }
            // SAFETY: `busy` is held: no other reference to `heap`/`ready` exists.
            let r = unsafe {
                let heap = &mut *self.heap.get();
                if !*self.ready.get() {
                    heap.init((&raw mut ARENA) as *mut u8, SIZE);
                    *self.ready.get() = true;
                }
                f(heap)
            };
            self.busy.store(false, Ordering::Release);
            r
        }
    }

    // SAFETY: hands out blocks of the arena from the free list (disjoint until
    // freed), null when none fits; `dealloc` gets back exactly what `alloc` gave.
    unsafe impl GlobalAlloc for Locked {
        unsafe fn alloc(&self, l: Layout) -> *mut u8 {
            self.with(|h| {
                h.allocate_first_fit(l)
                    .map_or(core::ptr::null_mut(), |p| p.as_ptr())
            })
        }
        unsafe fn dealloc(&self, p: *mut u8, l: Layout) {
            if let Some(p) = NonNull::new(p) {
                // SAFETY: `p` came from `alloc` with the same layout.
                self.with(|h| unsafe { h.deallocate(p, l) });
            }
        }
    }

    #[global_allocator]
    static ALLOC: Locked = Locked {
        busy: AtomicBool::new(false),
        ready: UnsafeCell::new(false),
        heap: UnsafeCell::new(Heap::empty()),
    };
}
