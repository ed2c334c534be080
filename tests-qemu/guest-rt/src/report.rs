//! Machine-readable results: `RESULT <scenario>.<check> PASS`,
//! `RESULT <scenario>.<check> FAIL <why>`, `MEASURE <name> <value> <unit>`,
//! `SCENARIO <name> DONE`. `qemu-test` requires the PASS lines and forbids FAIL.

use core::fmt;
use core::sync::atomic::{AtomicU32, Ordering};

static PASSED: AtomicU32 = AtomicU32::new(0);
static FAILED: AtomicU32 = AtomicU32::new(0);

/// Reports one check.
pub fn check(scenario: &str, name: &str, ok: bool, why: fmt::Arguments) {
    if ok {
        PASSED.fetch_add(1, Ordering::SeqCst);
        crate::println!("RESULT {}.{} PASS", scenario, name);
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
