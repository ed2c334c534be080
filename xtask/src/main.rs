//! `cargo xtask`: build, disk images, run, qemu-test, ci, deps, bench.
//!
//! The one entry point for everything that is not plain `cargo build`/`test`:
//! it builds the bare-metal hypervisor, wraps it with its ramdisk into BIOS and
//! UEFI disk images, boots them under QEMU or Bochs, and runs the CI pipeline.
//! `cargo xtask --help` lists the subcommands; docs/running.md and
//! docs/testing.md explain them.

mod bench;
mod build;
mod ci;
mod deps;
mod emulator;
mod qemu_test;
mod ramdisk;
mod run;
mod scenario;
mod util;

use std::process::ExitCode;

use anyhow::Result;
use clap::{Parser, Subcommand};

use crate::build::Firmwares;
use crate::ramdisk::TestMode;

#[derive(Debug, Parser)]
#[command(
    name = "cargo xtask",
    bin_name = "cargo xtask",
    about = "Build, image, run and test the hypervisor"
)]
struct Cli {
    #[command(subcommand)]
    command: Cmd,
}

#[derive(Debug, Subcommand)]
enum Cmd {
    /// Build the hypervisor (release, x86_64-unknown-none) and the guests.
    Build,
    /// Build the BIOS and UEFI disk images (target/image/{bios,uefi}.img).
    Image {
        /// The ramdisk's boot.cmd `test=` value.
        #[arg(long, value_enum, default_value_t = TestMode::None)]
        test: TestMode,
    },
    /// Boot the hypervisor with the serial console on this terminal.
    Run(run::RunArgs),
    /// Boot every scenario (or those named) and judge each from its serial log.
    QemuTest {
        /// Scenario names (default: all). See --list.
        scenarios: Vec<String>,
        /// List the scenarios and exit.
        #[arg(long)]
        list: bool,
        /// Override every scenario's timeout (seconds); also lifts the limit on
        /// silence on the serial console to the same value.
        #[arg(long)]
        timeout: Option<u64>,
    },
    /// Everything CI runs: deps, fmt, clippy, host tests, qemu-test.
    Ci {
        /// Do not install missing packages; report them and fail.
        #[arg(long)]
        check_only: bool,
    },
    /// Check the host packages the tests need; install them as root with apt-get.
    Deps {
        /// Only report what is missing (and the command that installs it).
        #[arg(long)]
        check_only: bool,
    },
    /// The host fuzzer of the hypercall dispatcher with random seeds for N
    /// minutes (`hypervisor/src/common/fuzz.rs`); prints a failing seed.
    Fuzz {
        /// How long to run.
        #[arg(long, default_value_t = 1)]
        minutes: u64,
        /// Start from this seed (reproduce a failure; then --minutes 0 runs it once).
        #[arg(long)]
        seed: Option<String>,
        /// Calls per seed.
        #[arg(long, default_value_t = 1000)]
        steps: u32,
    },
    /// Boot-to-READY times over N QEMU boots and the hypervisor's section sizes.
    Bench {
        /// Number of boots.
        #[arg(long, default_value_t = 5)]
        boots: u32,
    },
}

fn deps_mode(check_only: bool) -> deps::Mode {
    if check_only {
        deps::Mode::CheckOnly
    } else {
        deps::Mode::Install
    }
}

fn dispatch(cli: Cli) -> Result<i32> {
    match cli.command {
        Cmd::Build => {
            let elf = build::hypervisor()?;
            let guests = build::guests()?;
            eprintln!(
                "xtask: hypervisor {} ({} guests)",
                elf.display(),
                guests.len()
            );
            Ok(0)
        }
        Cmd::Image { test } => {
            let images = build::default_images(test, Firmwares::BOTH, None)?;
            for path in [Some(images.ramdisk), images.bios, images.uefi]
                .into_iter()
                .flatten()
            {
                println!("{}", path.display());
            }
            Ok(0)
        }
        Cmd::Run(args) => run::run(args),
        Cmd::QemuTest {
            scenarios,
            list,
            timeout,
        } => {
            if list {
                qemu_test::list();
                return Ok(0);
            }
            let mut selected = qemu_test::select(&scenarios)?;
            if let Some(secs) = timeout {
                for s in &mut selected {
                    s.timeout = std::time::Duration::from_secs(secs);
                    s.silence = s.timeout;
                }
            }
            let tally = qemu_test::run(&selected)?;
            println!("{} passed, {} failed", tally.passed, tally.failed);
            Ok(i32::from(tally.failed != 0))
        }
        Cmd::Ci { check_only } => Ok(ci::run(deps_mode(check_only))),
        Cmd::Deps { check_only } => {
            deps::ensure(deps_mode(check_only))?;
            Ok(0)
        }
        Cmd::Fuzz {
            minutes,
            seed,
            steps,
        } => fuzz(minutes, seed, steps),
        Cmd::Bench { boots } => {
            bench::run(boots)?;
            Ok(0)
        }
    }
}

/// `cargo xtask fuzz`: the ignored long-run test of the host fuzzer, in release
/// mode (debug assertions kept), its output streamed.
fn fuzz(minutes: u64, seed: Option<String>, steps: u32) -> Result<i32> {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let mut cmd = std::process::Command::new(cargo);
    cmd.args([
        "test",
        "-p",
        "hypervisor",
        "--lib",
        "--release",
        "--config",
        "profile.release.debug-assertions=true",
        "--config",
        "profile.release.overflow-checks=true",
        "fuzz::fuzz_long",
        "--",
        "--ignored",
        "--nocapture",
    ])
    .env("HYPERVISOR_FUZZ_MINUTES", minutes.to_string())
    .env("HYPERVISOR_FUZZ_STEPS", steps.to_string());
    if let Some(s) = seed {
        cmd.env("HYPERVISOR_FUZZ_SEED", s);
    }
    eprintln!("xtask: fuzzing for {minutes} min ({steps} calls per seed)");
    let status = cmd.status()?;
    Ok(i32::from(!status.success()))
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match dispatch(cli) {
        Ok(code) => ExitCode::from(u8::try_from(code).unwrap_or(1)),
        Err(e) => {
            eprintln!("xtask: error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
