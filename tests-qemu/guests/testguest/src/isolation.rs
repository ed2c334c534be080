//! Scenario 5, isolation: one domU triple-faults, another writes to a guest
//! physical address outside its p2m. Both must be crashed alone: dom0 sees
//! them stopped with `SHUTDOWN_crash` through getdomaininfo and goes on.

use guest_rt::report::{check, done, expect_eq};
use guest_rt::{idt, println, xen, Boot};
use xen_public_abi::sched::{SHUTDOWN_crash, SHUTDOWN_poweroff};
use xen_public_abi::version::XENVER_version;

use crate::dom0;

const S: &str = "isolation";

pub fn dom0(boot: &Boot) -> ! {
    let wait = boot.arg_u64("wait", 200_000);
    for (name, key) in [("triple-fault", "tf"), ("bad-gpa", "bad")] {
        let Some(domid) = boot.arg(key).and_then(guest_rt::parse_u64) else {
            continue;
        };
        match dom0::wait_stopped(domid as u16, wait) {
            Some(i) => {
                println!("isolation: d{} flags {:#x}", domid, i.flags);
                check(
                    S,
                    name,
                    i.code() == SHUTDOWN_crash,
                    format_args!(
                        "d{} stopped with code {} (flags {:#x})",
                        domid,
                        i.code(),
                        i.flags
                    ),
                );
            }
            None => check(S, name, false, format_args!("d{} was never crashed", domid)),
        }
    }
    // Destroying the crashed domains gives their memory back; the hypervisor first
    // makes sure no CPU still runs one of their vCPUs (with -smp 2 one may).
    let mut destroyed = true;
    for key in ["tf", "bad"] {
        if let Some(domid) = boot.arg(key).and_then(guest_rt::parse_u64) {
            let rc = dom0::destroydomain(domid as u16);
            let gone = dom0::getdomaininfo(domid as u16).map_or(true, |i| i.domain != domid as u16);
            if rc != 0 || !gone {
                println!(
                    "isolation: destroy d{domid}: rc {rc}, still listed: {}",
                    !gone
                );
                destroyed = false;
            }
        }
    }
    check(
        S,
        "destroy",
        destroyed,
        format_args!("destroydomain of the crashed domUs"),
    );
    expect_eq(
        S,
        "dom0-goes-on",
        xen::xen_version(XENVER_version, 0),
        0x0004_0011,
    );
    done(S);
    xen::shutdown(SHUTDOWN_poweroff)
}

/// Loads an empty IDT and executes `ud2`: #UD cannot be delivered, nor #DF: a
/// triple fault.
pub fn triple_fault() -> ! {
    println!("isolation: triple-faulting now");
    idt::load_empty();
    // SAFETY: deliberately faults with no IDT: the hypervisor must crash this domain.
    unsafe { core::arch::asm!("ud2", options(nomem, nostack, noreturn)) }
}

/// Writes a guest-physical address beyond the domain's memory (identity-mapped
/// by our page tables, absent from the p2m).
pub fn bad_gpa(boot: &Boot) -> ! {
    let gpa = boot.arg_u64("gpa", 0x4000_0000);
    println!("isolation: writing to gpa {:#x}, outside my memory", gpa);
    // SAFETY: deliberately touches memory outside the p2m; under the hypervisor
    // this must crash the domain. Identity-mapped below 4 GiB.
    unsafe { (gpa as *mut u64).write_volatile(0x0bad_0bad) };
    println!("isolation: the write to {:#x} came back", gpa);
    xen::shutdown(SHUTDOWN_poweroff)
}
