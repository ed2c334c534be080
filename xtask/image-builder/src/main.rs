//! `image-builder`: wraps the hypervisor ELF and its ramdisk into bootable disk
//! images with rust-osdev `bootloader` 0.11's `DiskImageBuilder`.
//!
//! Usage: `image-builder --kernel K [--ramdisk R] [--bios OUT] [--uefi OUT]`.
//!
//! This crate is deliberately outside the root workspace: `bootloader`'s build
//! script compiles its boot stages with `cargo install -Zbuild-std`, so this is
//! the one build that runs with `RUSTC_BOOTSTRAP=1` (set by `cargo xtask` for this
//! build only). Nothing here runs on the target; it only writes files.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{bail, Context, Result};
use bootloader::DiskImageBuilder;

/// The command line, parsed by hand (one flag per path; no parser crate so this
/// nightly-feature build stays as small as possible).
#[derive(Debug, Default, PartialEq)]
struct Args {
    kernel: Option<PathBuf>,
    ramdisk: Option<PathBuf>,
    bios: Option<PathBuf>,
    uefi: Option<PathBuf>,
}

const USAGE: &str =
    "usage: image-builder --kernel ELF [--ramdisk FILE] [--bios OUT.img] [--uefi OUT.img]";

fn parse_args(mut args: impl Iterator<Item = String>) -> Result<Args> {
    let mut parsed = Args::default();
    while let Some(flag) = args.next() {
        let slot = match flag.as_str() {
            "--kernel" => &mut parsed.kernel,
            "--ramdisk" => &mut parsed.ramdisk,
            "--bios" => &mut parsed.bios,
            "--uefi" => &mut parsed.uefi,
            "-h" | "--help" => bail!("{USAGE}"),
            other => bail!("unknown argument `{other}`\n{USAGE}"),
        };
        let value = args
            .next()
            .with_context(|| format!("`{flag}` needs a path\n{USAGE}"))?;
        *slot = Some(PathBuf::from(value));
    }
    if parsed.kernel.is_none() {
        bail!("--kernel is required\n{USAGE}");
    }
    if parsed.bios.is_none() && parsed.uefi.is_none() {
        bail!("nothing to do: give --bios and/or --uefi\n{USAGE}");
    }
    Ok(parsed)
}

fn run(args: Args) -> Result<()> {
    let kernel = args.kernel.context("--kernel is required")?;
    if !kernel.is_file() {
        bail!("kernel ELF {} does not exist", kernel.display());
    }
    let mut builder = DiskImageBuilder::new(kernel);
    if let Some(ramdisk) = args.ramdisk {
        if !ramdisk.is_file() {
            bail!("ramdisk {} does not exist", ramdisk.display());
        }
        builder.set_ramdisk(ramdisk);
    }
    if let Some(bios) = args.bios {
        builder
            .create_bios_image(&bios)
            .with_context(|| format!("creating BIOS image {}", bios.display()))?;
    }
    if let Some(uefi) = args.uefi {
        builder
            .create_uefi_image(&uefi)
            .with_context(|| format!("creating UEFI image {}", uefi.display()))?;
    }
    Ok(())
}

fn main() -> ExitCode {
    match parse_args(std::env::args().skip(1)).and_then(run) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("image-builder: {e:#}");
            ExitCode::FAILURE
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(list: &[&str]) -> Result<Args> {
        parse_args(list.iter().map(|s| s.to_string()))
    }

    #[test]
    fn parses_all_flags() {
        let a = args(&[
            "--kernel",
            "k",
            "--ramdisk",
            "r",
            "--bios",
            "b",
            "--uefi",
            "u",
        ])
        .unwrap();
        assert_eq!(a.kernel, Some(PathBuf::from("k")));
        assert_eq!(a.ramdisk, Some(PathBuf::from("r")));
        assert_eq!(a.bios, Some(PathBuf::from("b")));
        assert_eq!(a.uefi, Some(PathBuf::from("u")));
    }

    #[test]
    fn refuses_missing_kernel_output_or_value() {
        assert!(args(&["--bios", "b"]).is_err());
        assert!(args(&["--kernel", "k"]).is_err());
        assert!(args(&["--kernel"]).is_err());
        assert!(args(&["--kernel", "k", "--bogus", "x"]).is_err());
    }
}
