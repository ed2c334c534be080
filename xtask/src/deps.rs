//! `cargo xtask deps`: checks the host tools the tests need and installs the
//! missing ones with apt-get (as root on Debian/Ubuntu), or says exactly which
//! command to run.
//!
//! The Rust side (toolchain 1.95.0, rust-src, llvm-tools, the x86_64-unknown-none
//! target) comes from rust-toolchain.toml through rustup; missing components are
//! added with `rustup component add`/`rustup target add`.

use std::path::Path;
use std::process::Command;

use anyhow::{bail, Result};

use crate::util::{self, find_in_path};

/// How to tell whether a requirement is met.
#[derive(Debug, Clone, Copy)]
pub enum Probe {
    /// An executable on `$PATH`.
    Program(&'static str),
    /// Any one of these files exists.
    AnyFile(&'static [&'static str]),
}

/// One host requirement and the Debian package that brings it.
#[derive(Debug, Clone, Copy)]
pub struct Requirement {
    pub what: &'static str,
    pub probe: Probe,
    pub package: &'static str,
}

/// Everything `ci` needs from the host, in Debian package terms.
pub const REQUIREMENTS: &[Requirement] = &[
    Requirement {
        what: "QEMU (qemu-system-x86_64)",
        probe: Probe::Program("qemu-system-x86_64"),
        package: "qemu-system-x86",
    },
    Requirement {
        what: "UEFI firmware for QEMU (OVMF)",
        probe: Probe::AnyFile(crate::emulator::OVMF_CANDIDATES),
        package: "ovmf",
    },
    Requirement {
        what: "Bochs",
        probe: Probe::Program("bochs"),
        package: "bochs",
    },
    Requirement {
        what: "Bochs BIOS ROM",
        probe: Probe::AnyFile(&[crate::emulator::BOCHS_BIOS]),
        package: "bochsbios",
    },
    Requirement {
        what: "Bochs VGA BIOS ROM",
        probe: Probe::AnyFile(&["/usr/share/vgabios/vgabios.bin"]),
        package: "vgabios",
    },
    Requirement {
        what: "Bochs X display plugin",
        probe: Probe::AnyFile(&[
            "/usr/lib/x86_64-linux-gnu/bochs/plugins/libbx_x_gui.so",
            "/usr/lib/x86_64-linux-gnu/bochs/plugins/libbx_x_gui.so.0",
            "/usr/lib/bochs/plugins/libbx_x_gui.so",
        ]),
        package: "bochs-x",
    },
    Requirement {
        what: "virtual X server (xvfb-run)",
        probe: Probe::Program("xvfb-run"),
        package: "xvfb",
    },
    Requirement {
        what: "xauth (for xvfb-run)",
        probe: Probe::Program("xauth"),
        package: "xauth",
    },
    Requirement {
        what: "Xen 4.17 public headers (ABI conformance test)",
        probe: Probe::AnyFile(&["/usr/include/xen/xen.h"]),
        package: "libxen-dev",
    },
    Requirement {
        what: "C compiler (ABI conformance test)",
        probe: Probe::Program("cc"),
        package: "gcc",
    },
];

impl Probe {
    pub fn present(self) -> bool {
        match self {
            Probe::Program(name) => find_in_path(name).is_some(),
            Probe::AnyFile(paths) => paths.iter().any(|p| Path::new(p).exists()),
        }
    }
}

/// The missing requirements, given a way to probe.
pub fn missing(reqs: &[Requirement], present: impl Fn(Probe) -> bool) -> Vec<Requirement> {
    reqs.iter().copied().filter(|r| !present(r.probe)).collect()
}

/// The Debian packages for `missing`, deduplicated, in table order.
pub fn packages(missing: &[Requirement]) -> Vec<&'static str> {
    let mut pkgs: Vec<&'static str> = Vec::new();
    for r in missing {
        if !pkgs.contains(&r.package) {
            pkgs.push(r.package);
        }
    }
    pkgs
}

/// The command line that installs `packages` (prefixed with `sudo` for a user).
pub fn install_line(packages: &[&str], as_root: bool) -> String {
    let sudo = if as_root { "" } else { "sudo " };
    format!(
        "{sudo}apt-get update && {sudo}apt-get install -y --no-install-recommends {}",
        packages.join(" ")
    )
}

/// Is this process's effective user root? (From /proc, without libc.)
pub fn is_root() -> bool {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|status| {
            status
                .lines()
                .find(|l| l.starts_with("Uid:"))
                .and_then(|l| l.split_whitespace().nth(2).map(|euid| euid == "0"))
        })
        .unwrap_or(false)
}

/// What `deps` may do about a missing package.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Install when root with apt-get, else print the command and fail.
    Install,
    /// Only report (and fail if something is missing).
    CheckOnly,
}

/// Checks (and installs) the host packages, then the Rust components.
pub fn ensure(mode: Mode) -> Result<()> {
    host_packages(mode, REQUIREMENTS)?;
    rust_components(mode)?;
    linux_inputs(mode);
    Ok(())
}

/// The Linux domU scenarios' kernel and busybox, fetched from Debian's archive
/// into `target/linux/` (see `linux.rs`). Not fatal here: only the Linux
/// scenarios need them, and they fetch (and fail with the reason) themselves.
fn linux_inputs(mode: Mode) {
    if mode == Mode::CheckOnly {
        return;
    }
    match crate::linux::inputs() {
        Ok(inputs) => eprintln!(
            "xtask deps: Linux test inputs {} and {}",
            inputs.vmlinux.display(),
            inputs.initramfs.display()
        ),
        Err(e) => eprintln!("xtask deps: Linux test inputs not available: {e:#}"),
    }
}

/// Checks (and installs) only the host requirements that come from `packages`
/// (e.g. `run` needs QEMU but not Bochs or the Xen headers).
pub fn ensure_packages(packages: &[&str]) -> Result<()> {
    let wanted: Vec<Requirement> = REQUIREMENTS
        .iter()
        .copied()
        .filter(|r| packages.contains(&r.package))
        .collect();
    host_packages(Mode::Install, &wanted)
}

/// What QEMU boots need; `uefi` adds OVMF.
pub fn qemu_packages(uefi: bool) -> Vec<&'static str> {
    let mut pkgs = vec!["qemu-system-x86"];
    if uefi {
        pkgs.push("ovmf");
    }
    pkgs
}

/// What Bochs boots need.
pub const BOCHS_PACKAGES: &[&str] = &["bochs", "bochsbios", "vgabios", "bochs-x", "xvfb", "xauth"];

fn host_packages(mode: Mode, reqs: &[Requirement]) -> Result<()> {
    let absent = missing(reqs, Probe::present);
    if absent.is_empty() {
        eprintln!("xtask deps: all {} host requirements present", reqs.len());
        return Ok(());
    }
    for r in &absent {
        eprintln!(
            "xtask deps: missing {} (Debian package `{}`)",
            r.what, r.package
        );
    }
    let pkgs = packages(&absent);
    let root = is_root();
    let has_apt = find_in_path("apt-get").is_some();
    if mode == Mode::CheckOnly || !root || !has_apt {
        let why = match (mode, has_apt, root) {
            (Mode::CheckOnly, _, _) => "--check-only: not installing",
            (_, false, _) => "no apt-get here (not Debian/Ubuntu): install the equivalents of",
            (_, true, false) => "not root: run this, then try again",
            (_, true, true) => unreachable!("handled above: root with apt-get installs"),
        };
        eprintln!("xtask deps: {why}");
        eprintln!("    {}", install_line(&pkgs, root));
        bail!("missing host packages: {}", pkgs.join(" "));
    }
    util::run(Command::new("apt-get").arg("update"))?;
    util::run(
        Command::new("apt-get")
            .env("DEBIAN_FRONTEND", "noninteractive")
            .args(["install", "-y", "--no-install-recommends"])
            .args(&pkgs),
    )?;
    let still = missing(reqs, Probe::present);
    if !still.is_empty() {
        let names: Vec<_> = still.iter().map(|r| r.what).collect();
        bail!(
            "installed {} but still missing: {}",
            pkgs.join(" "),
            names.join(", ")
        );
    }
    eprintln!("xtask deps: installed {}", pkgs.join(" "));
    Ok(())
}

/// rust-src and llvm-tools (the image builder) and the bare-metal target.
fn rust_components(mode: Mode) -> Result<()> {
    // The rustc beside the cargo that runs us (the pinned toolchain's).
    let rustc = std::env::var_os("CARGO")
        .map(std::path::PathBuf::from)
        .and_then(|cargo| cargo.parent().map(|dir| dir.join("rustc")))
        .filter(|rustc| rustc.is_file())
        .unwrap_or_else(|| "rustc".into());
    let sysroot = Command::new(rustc)
        .args(["--print", "sysroot"])
        .current_dir(util::project_root())
        .output()?;
    let sysroot = String::from_utf8_lossy(&sysroot.stdout).trim().to_string();
    let root = Path::new(&sysroot).join("lib/rustlib");
    let checks: [(&str, &str, bool); 3] = [
        (
            "rust-src",
            "component",
            root.join("src/rust/library/Cargo.lock").is_file(),
        ),
        (
            "llvm-tools-preview",
            "component",
            root.join("x86_64-unknown-linux-gnu/bin/llvm-objcopy")
                .is_file(),
        ),
        (
            "x86_64-unknown-none",
            "target",
            root.join("x86_64-unknown-none/lib").is_dir(),
        ),
    ];
    for (name, kind, present) in checks {
        if present {
            continue;
        }
        let mut cmd = Command::new("rustup");
        cmd.current_dir(util::project_root())
            .args([kind, "add", name]);
        if mode == Mode::CheckOnly {
            bail!(
                "missing rustup {kind} {name}: run `{}`",
                util::display_command(&cmd)
            );
        }
        util::run(&mut cmd)?;
    }
    eprintln!("xtask deps: toolchain {sysroot} has rust-src, llvm-tools and x86_64-unknown-none");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn missing_programs_map_to_their_packages() {
        // Pretend Bochs and its ROMs are gone.
        let absent = missing(REQUIREMENTS, |p| match p {
            Probe::Program(name) => name != "bochs",
            Probe::AnyFile(files) => !files.iter().any(|f| f.contains("bochs")),
        });
        assert_eq!(packages(&absent), ["bochs", "bochsbios", "bochs-x"]);
    }

    #[test]
    fn nothing_missing_means_no_packages() {
        assert!(packages(&missing(REQUIREMENTS, |_| true)).is_empty());
    }

    #[test]
    fn every_ci_package_is_covered() {
        let all = packages(&missing(REQUIREMENTS, |_| false));
        for pkg in [
            "qemu-system-x86",
            "ovmf",
            "bochs",
            "bochsbios",
            "vgabios",
            "bochs-x",
            "xvfb",
            "xauth",
            "libxen-dev",
        ] {
            assert!(all.contains(&pkg), "{pkg} not in {all:?}");
        }
    }

    #[test]
    fn run_subsets_name_known_packages() {
        let all = packages(&missing(REQUIREMENTS, |_| false));
        for pkg in qemu_packages(true).iter().chain(BOCHS_PACKAGES) {
            assert!(all.contains(pkg), "{pkg} is not a requirement");
        }
        assert_eq!(qemu_packages(false), ["qemu-system-x86"]);
    }

    #[test]
    fn install_line_for_user_and_root() {
        assert_eq!(
            install_line(&["ovmf", "xvfb"], false),
            "sudo apt-get update && sudo apt-get install -y --no-install-recommends ovmf xvfb"
        );
        assert_eq!(
            install_line(&["ovmf"], true),
            "apt-get update && apt-get install -y --no-install-recommends ovmf"
        );
    }
}
