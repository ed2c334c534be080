//! `cargo xtask ci`: everything a clean Debian/Ubuntu machine needs, in order:
//! host dependencies, fmt, clippy (host and bare-metal), host tests (including
//! the ABI crate's C-header conformance test), the FIFO-less hypervisor build's
//! tests, then `qemu-test`. Output streams as it comes; the first failing step
//! stops the run; the run always ends with one line `N passed, N failed`.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result};

use crate::build::KERNEL_TARGET;
use crate::deps;
use crate::qemu_test;
use crate::util;

/// One `test result:` line of cargo test's libtest output.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct TestCounts {
    pub passed: u32,
    pub failed: u32,
}

/// Parses `test result: ok. 12 passed; 0 failed; 1 ignored; ...` (or `FAILED.`).
pub fn parse_test_result(line: &str) -> Option<TestCounts> {
    let rest = line.trim().strip_prefix("test result: ")?;
    let (_, counts) = rest.split_once(". ")?;
    let mut out = TestCounts::default();
    let mut seen = 0;
    for field in counts.split(';') {
        let mut words = field.split_whitespace();
        let (Some(n), Some(what)) = (words.next(), words.next()) else {
            continue;
        };
        let Ok(n) = n.parse::<u32>() else { continue };
        match what {
            "passed" => {
                out.passed = n;
                seen += 1;
            }
            "failed" => {
                out.failed = n;
                seen += 1;
            }
            _ => {}
        }
    }
    (seen == 2).then_some(out)
}

/// What kind of step, and so how its result counts.
enum Kind {
    /// Check/install host packages.
    Deps,
    /// A cargo command that passes or fails as a whole (counts 1 if it fails).
    Check(Command),
    /// `cargo test ...`: its per-binary results are summed.
    Test(Command),
    /// The emulator scenarios.
    QemuTest,
}

struct Step {
    name: &'static str,
    kind: Kind,
}

/// `cargo <args>` at the workspace root.
fn cargo(args: &[&str]) -> Command {
    let mut cmd = util::cargo();
    cmd.args(args);
    cmd
}

/// The image builder's own unit tests: same RUSTC_BOOTSTRAP confinement, same
/// target dir and release profile as `build::image_builder`, so the
/// `bootloader` dependency built for the images is reused.
fn image_builder_tests() -> Command {
    let mut cmd = image_builder_cargo(&["test", "--release", "--locked"]);
    cmd.env("RUSTC_BOOTSTRAP", "1")
        .arg("--target-dir")
        .arg(util::target_dir().join("image-builder"));
    cmd
}

/// `cargo <args> --manifest-path tests-qemu/Cargo.toml`, run in `tests-qemu/`
/// (its `.cargo/config.toml` sets the guests' target and relocation model), with
/// the target dir `build::guests` uses.
fn guests_cargo(args: &[&str]) -> Command {
    let dir = util::project_root().join("tests-qemu");
    let mut cmd = cargo(args);
    cmd.current_dir(&dir)
        .arg("--manifest-path")
        .arg(dir.join("Cargo.toml"));
    cmd
}

/// `cargo <args> --manifest-path xtask/image-builder/Cargo.toml`.
fn image_builder_cargo(args: &[&str]) -> Command {
    let mut cmd = cargo(args);
    cmd.arg("--manifest-path")
        .arg(util::project_root().join("xtask/image-builder/Cargo.toml"));
    cmd
}

fn steps() -> Vec<Step> {
    vec![
        Step {
            name: "deps",
            kind: Kind::Deps,
        },
        Step {
            name: "fmt",
            kind: Kind::Check(cargo(&["fmt", "--all", "--check"])),
        },
        Step {
            name: "fmt (image builder)",
            kind: Kind::Check(image_builder_cargo(&["fmt", "--check"])),
        },
        Step {
            name: "fmt (test guests)",
            kind: Kind::Check(guests_cargo(&["fmt", "--all", "--check"])),
        },
        Step {
            name: "clippy (host)",
            kind: Kind::Check(cargo(&[
                "clippy",
                "--workspace",
                "--all-targets",
                "--",
                "-D",
                "warnings",
            ])),
        },
        Step {
            name: "clippy (x86_64-unknown-none)",
            kind: Kind::Check(cargo(&[
                "clippy",
                "-p",
                "hypervisor",
                "--target",
                KERNEL_TARGET,
                "--",
                "-D",
                "warnings",
            ])),
        },
        Step {
            name: "clippy (test guests, x86_64-unknown-none)",
            kind: Kind::Check({
                let mut cmd = guests_cargo(&["clippy", "--release", "--target", KERNEL_TARGET]);
                cmd.arg("--target-dir")
                    .arg(util::target_dir().join("guests"))
                    .args(["--", "-D", "warnings"]);
                cmd
            }),
        },
        Step {
            name: "test (workspace, incl. ABI conformance)",
            kind: Kind::Test(cargo(&["test", "--workspace"])),
        },
        Step {
            name: "test (hypervisor, evtchn-fifo compiled out)",
            kind: Kind::Test(cargo(&[
                "test",
                "-p",
                "hypervisor",
                "--no-default-features",
            ])),
        },
        Step {
            name: "test (dom0 toolstack crates in tests-qemu, host)",
            kind: Kind::Test({
                let mut cmd = guests_cargo(&[
                    "test",
                    "--target",
                    "x86_64-unknown-linux-gnu",
                    "-p",
                    "xenctrl",
                    "-p",
                    "xenguest",
                    "-p",
                    "xl",
                    "-p",
                    "xenstored",
                    "-p",
                    "xenconsoled",
                ]);
                cmd.arg("--target-dir")
                    .arg(util::target_dir().join("toolstack-host"));
                cmd
            }),
        },
        Step {
            name: "test (image builder)",
            kind: Kind::Test(image_builder_tests()),
        },
        Step {
            name: "qemu-test",
            kind: Kind::QemuTest,
        },
    ]
}

/// Runs a cargo test command, streaming its stdout while summing the
/// `test result:` lines. Returns the counts and whether cargo succeeded.
fn cargo_test(mut cmd: Command) -> Result<(TestCounts, bool)> {
    cmd.stdout(Stdio::piped());
    eprintln!("$ {}", util::display_command(&cmd));
    let mut child = cmd.spawn().context("cannot start cargo")?;
    let stdout = child.stdout.take().context("no stdout pipe")?;
    let mut total = TestCounts::default();
    for line in BufReader::new(stdout).lines() {
        let line = line?;
        println!("{line}");
        if let Some(counts) = parse_test_result(&line) {
            total.passed += counts.passed;
            total.failed += counts.failed;
        }
    }
    let status = child.wait()?;
    Ok((total, status.success()))
}

fn cargo_check(mut cmd: Command) -> bool {
    util::run(&mut cmd)
        .map_err(|e| eprintln!("xtask ci: {e:#}"))
        .is_ok()
}

/// Runs the whole pipeline. Returns the process exit code (0 only if all passed).
pub fn run(deps_mode: deps::Mode) -> i32 {
    let started = Instant::now();
    let mut passed = 0u32;
    let mut failed = 0u32;
    let mut report: Vec<(String, &'static str, Duration)> = Vec::new();
    let mut stopped = false;

    for step in steps() {
        let Step { name, kind } = step;
        eprintln!("\n==== xtask ci: {name} ====");
        let t = Instant::now();
        let ok = match kind {
            Kind::Deps => match deps::ensure(deps_mode) {
                Ok(()) => true,
                Err(e) => {
                    eprintln!("xtask ci: {e:#}");
                    failed += 1;
                    false
                }
            },
            Kind::Check(args) => {
                let ok = cargo_check(args);
                if !ok {
                    failed += 1;
                }
                ok
            }
            Kind::Test(args) => match cargo_test(args) {
                Ok((counts, cargo_ok)) => {
                    passed += counts.passed;
                    failed += counts.failed;
                    // A build failure has no `test result:` line: count the step.
                    if !cargo_ok && counts.failed == 0 {
                        failed += 1;
                    }
                    cargo_ok
                }
                Err(e) => {
                    eprintln!("xtask ci: {e:#}");
                    failed += 1;
                    false
                }
            },
            Kind::QemuTest => match qemu_test::run(&qemu_test::select(&[]).unwrap_or_default()) {
                Ok(tally) => {
                    passed += tally.passed;
                    failed += tally.failed;
                    tally.failed == 0
                }
                Err(e) => {
                    eprintln!("xtask ci: qemu-test could not run: {e:#}");
                    failed += 1;
                    false
                }
            },
        };
        report.push((
            step.name.to_string(),
            if ok { "ok" } else { "FAILED" },
            t.elapsed(),
        ));
        if !ok {
            stopped = true;
            break;
        }
    }

    println!();
    println!(
        "xtask ci summary ({:.0} s):",
        started.elapsed().as_secs_f64()
    );
    for (name, status, took) in &report {
        println!("  {status:<6} {name} ({:.0} s)", took.as_secs_f64());
    }
    if stopped {
        println!("  (stopped at the first failing step)");
    }
    println!("{passed} passed, {failed} failed");
    if failed == 0 && !stopped {
        0
    } else {
        1
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_ok_and_failed_results() {
        assert_eq!(
            parse_test_result("test result: ok. 12 passed; 0 failed; 1 ignored; 0 measured; 0 filtered out; finished in 0.01s"),
            Some(TestCounts { passed: 12, failed: 0 })
        );
        assert_eq!(
            parse_test_result(
                "test result: FAILED. 3 passed; 2 failed; 0 ignored; 0 measured; 0 filtered out"
            ),
            Some(TestCounts {
                passed: 3,
                failed: 2
            })
        );
    }

    #[test]
    fn ignores_other_lines() {
        assert_eq!(parse_test_result("running 3 tests"), None);
        assert_eq!(parse_test_result("test foo ... ok"), None);
        assert_eq!(parse_test_result("test result: garbage"), None);
        assert_eq!(parse_test_result("3 passed, 0 failed"), None);
    }

    #[test]
    fn steps_run_in_the_documented_order() {
        let names: Vec<_> = steps().iter().map(|s| s.name).collect();
        assert_eq!(names[0], "deps");
        assert_eq!(names[1], "fmt");
        assert_eq!(*names.last().unwrap(), "qemu-test");
    }
}
