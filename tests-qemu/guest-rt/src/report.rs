//! Machine-readable results: `RESULT <scenario>.<check> PASS`,
//! `RESULT <scenario>.<check> FAIL <why>`, `MEASURE <name> <value> <unit>`,
//! `SCENARIO <name> DONE`. `qemu-test` requires the PASS lines and forbids FAIL.
//!
//! domUs run **quiet**: the hypervisor rate-limits all domU console output
//! together, as Xen's `printk_ratelimit` does (a burst of 10 lines, then one per
//! 5 s), so a domU collects its passed checks and prints one summary line
//! (`RESULT <scenario>.<domU> PASS <check> <check> ...`); failures are printed
//! as they happen and make the summary FAIL.

use core::fmt;
use core::sync::atomic::{AtomicBool, AtomicU32, AtomicUsize, Ordering};

static PASSED: AtomicU32 = AtomicU32::new(0);
static FAILED: AtomicU32 = AtomicU32::new(0);
static QUIET: AtomicBool = AtomicBool::new(false);

const NAMES_LEN: usize = 150;
static mut NAMES: [u8; NAMES_LEN] = [0; NAMES_LEN];
static NAMES_USED: AtomicUsize = AtomicUsize::new(0);

/// Quiet mode (domUs): PASS lines are collected for [`summary`], not printed.
pub fn set_quiet(on: bool) {
    QUIET.store(on, Ordering::SeqCst);
}

/// Is quiet mode on?
pub fn quiet() -> bool {
    QUIET.load(Ordering::SeqCst)
}

fn remember(name: &str) {
    let used = NAMES_USED.load(Ordering::SeqCst);
    let n = name.len() + 1;
    if used + n > NAMES_LEN {
        return;
    }
    // SAFETY: the guests run one vCPU and checks are not made from interrupt
    // handlers; `used..used + n` is within the buffer.
    unsafe {
        let buf = (&raw mut NAMES) as *mut u8;
        buf.add(used).write(b' ');
        core::ptr::copy_nonoverlapping(name.as_ptr(), buf.add(used + 1), name.len());
    }
    NAMES_USED.store(used + n, Ordering::SeqCst);
}

/// Reports one check.
pub fn check(scenario: &str, name: &str, ok: bool, why: fmt::Arguments) {
    if ok {
        PASSED.fetch_add(1, Ordering::SeqCst);
        if quiet() {
            remember(name);
        } else {
            crate::println!("RESULT {}.{} PASS", scenario, name);
        }
    } else {
        FAILED.fetch_add(1, Ordering::SeqCst);
        crate::println!("RESULT {}.{} FAIL {}", scenario, name, why);
    }
}

/// Reports that `got` equals `want` (a hypercall's return value, usually).
pub fn expect_eq(scenario: &str, name: &str, got: i64, want: i64) {
    check(
        scenario,
        name,
        got == want,
        format_args!("got {} want {}", got, want),
    );
}

/// Prints a measurement.
pub fn measure(name: &str, value: u64, unit: &str) {
    crate::println!("MEASURE {} {} {}", name, value, unit);
}

/// The quiet-mode summary: `RESULT <scenario>.<who> PASS <checks>` or `FAIL`.
pub fn summary(scenario: &str, who: &str) {
    let used = NAMES_USED.load(Ordering::SeqCst);
    // SAFETY: written only by `remember`, up to `used`.
    let bytes = unsafe { core::slice::from_raw_parts((&raw const NAMES) as *const u8, used) };
    let names = core::str::from_utf8(bytes).unwrap_or("");
    let failed = FAILED.load(Ordering::SeqCst);
    if failed == 0 {
        crate::println!("RESULT {}.{} PASS{}", scenario, who, names);
    } else {
        crate::println!(
            "RESULT {}.{} FAIL {} failed; passed:{}",
            scenario,
            who,
            failed,
            names
        );
    }
}

/// Prints the closing line with the tally.
pub fn done(scenario: &str) {
    crate::println!(
        "SCENARIO {} DONE ({} passed, {} failed)",
        scenario,
        PASSED.load(Ordering::SeqCst),
        FAILED.load(Ordering::SeqCst)
    );
}

/// How many checks failed so far.
pub fn failures() -> u32 {
    FAILED.load(Ordering::SeqCst)
}

/// A domU's end: its summary line, then `normal` as the shutdown code when
/// every check passed, `SHUTDOWN_crash` otherwise (dom0 checks the code).
pub fn domu_exit(scenario: &str, who: &str, normal: u32) -> ! {
    summary(scenario, who);
    let code = if failures() == 0 {
        normal
    } else {
        xen_public_abi::sched::SHUTDOWN_crash
    };
    crate::xen::shutdown(code)
}
