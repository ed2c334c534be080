//! Building things: the hypervisor ELF, the guests, the image builder, and the
//! disk images that put them together.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{bail, Context, Result};

use crate::ramdisk::{self, Entry, TestMode};
use crate::util::{self, project_root, target_dir};

/// The bare-metal target everything on the machine side is built for.
pub const KERNEL_TARGET: &str = "x86_64-unknown-none";

/// Environment variable naming a prebuilt kernel ELF to use instead of building
/// the hypervisor (for trying the tooling against another branch's build).
pub const KERNEL_OVERRIDE: &str = "XTASK_KERNEL";

/// `cargo build -p hypervisor --target x86_64-unknown-none --release`; returns the
/// ELF path (`target/x86_64-unknown-none/release/hypervisor`), or the ELF named
/// by `$XTASK_KERNEL` without building anything.
pub fn hypervisor() -> Result<PathBuf> {
    if let Some(elf) = std::env::var_os(KERNEL_OVERRIDE) {
        let elf = PathBuf::from(elf);
        eprintln!(
            "xtask: using the kernel ELF from ${KERNEL_OVERRIDE}: {}",
            elf.display()
        );
        if !elf.is_file() {
            bail!(
                "${KERNEL_OVERRIDE} names {}, which does not exist",
                elf.display()
            );
        }
        return Ok(elf);
    }
    util::run(util::cargo().args([
        "build",
        "-p",
        "hypervisor",
        "--target",
        KERNEL_TARGET,
        "--release",
    ]))?;
    let elf = target_dir()
        .join(KERNEL_TARGET)
        .join("release")
        .join("hypervisor");
    if !elf.is_file() {
        bail!(
            "cargo built the hypervisor but {} is missing",
            elf.display()
        );
    }
    Ok(elf)
}

/// The guest ELF files built from `tests-qemu/` (ramdisk entry name = binary name).
pub const GUEST_BINARIES: &[&str] = &["testguest"];

/// Builds the test guests (`tests-qemu/`, its own workspace: `no_std` PVH images
/// for `x86_64-unknown-none` with a static relocation model, see
/// `tests-qemu/.cargo/config.toml`) into `target/guests/` and returns them as
/// ramdisk entries (name, ELF bytes).
///
/// Cargo runs with `tests-qemu/` as its working directory so that directory's
/// `.cargo/config.toml` applies.
pub fn guests() -> Result<Vec<Entry>> {
    let dir = project_root().join("tests-qemu");
    let target = target_dir().join("guests");
    let mut cmd = util::cargo();
    cmd.current_dir(&dir)
        .args(["build", "--release", "--quiet", "--target", KERNEL_TARGET])
        .arg("--manifest-path")
        .arg(dir.join("Cargo.toml"))
        .arg("--target-dir")
        .arg(&target);
    util::run(&mut cmd)?;
    let mut entries = Vec::new();
    for name in GUEST_BINARIES {
        let elf = target.join(KERNEL_TARGET).join("release").join(name);
        let data =
            std::fs::read(&elf).with_context(|| format!("reading guest {}", elf.display()))?;
        entries.push(Entry::new(*name, data));
    }
    Ok(entries)
}

/// The `domains.cfg` of scenario `name` (`tests-qemu/scenarios/<name>/domains.cfg`)
/// as a ramdisk entry.
pub fn domains_cfg(name: &str) -> Result<Entry> {
    let path = project_root()
        .join("tests-qemu/scenarios")
        .join(name)
        .join("domains.cfg");
    let text = std::fs::read(&path).with_context(|| format!("reading {}", path.display()))?;
    Ok(Entry::new("domains.cfg", text))
}

/// Every file of scenario `name`'s directory as a ramdisk entry: `domains.cfg`
/// first, then the others by name (xl.cfg files, `xl` scripts: modules dom0
/// gets through its start info).
pub fn scenario_files(name: &str) -> Result<Vec<Entry>> {
    let dir = project_root().join("tests-qemu/scenarios").join(name);
    let mut entries = vec![domains_cfg(name)?];
    let mut others = Vec::new();
    for e in std::fs::read_dir(&dir).with_context(|| format!("reading {}", dir.display()))? {
        let path = e?.path();
        let file = path
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or("")
            .to_string();
        if path.is_file() && file != "domains.cfg" {
            others.push((file, path));
        }
    }
    others.sort();
    for (file, path) in others {
        let data = std::fs::read(&path).with_context(|| format!("reading {}", path.display()))?;
        entries.push(Entry::new(&file, data));
    }
    Ok(entries)
}

/// Builds `xtask/image-builder` (outside the workspace, own target dir) and
/// returns its binary.
///
/// `RUSTC_BOOTSTRAP=1` is set for this one cargo invocation only: `bootloader`
/// 0.11's build script compiles its boot stages with `cargo install -Zbuild-std`
/// (see docs/toolchain.md). Cargo's fingerprints make the second build a no-op.
pub fn image_builder() -> Result<PathBuf> {
    let manifest = project_root().join("xtask/image-builder/Cargo.toml");
    let dir = target_dir().join("image-builder");
    let binary = dir.join("release").join("image-builder");
    if !binary.is_file() {
        eprintln!("xtask: building the disk-image builder (first time: about 1.5 min on 2 cores)");
    }
    let mut cmd = util::cargo();
    cmd.env("RUSTC_BOOTSTRAP", "1")
        .arg("build")
        .arg("--quiet")
        .arg("--release")
        .arg("--locked")
        .arg("--manifest-path")
        .arg(&manifest)
        .arg("--target-dir")
        .arg(&dir);
    util::run(&mut cmd)?;
    if !binary.is_file() {
        bail!(
            "cargo built the image builder but {} is missing",
            binary.display()
        );
    }
    Ok(binary)
}

/// What one kernel and one ramdisk boot from: the ramdisk for the disk images,
/// the direct (PVH) boot's ramdisk, and the disk images asked for.
#[derive(Debug, Clone, Default)]
pub struct Images {
    pub ramdisk: PathBuf,
    /// How many files the ramdisk holds (the kernel lists them at boot).
    pub ramdisk_entries: usize,
    /// The hypervisor ELF itself (QEMU `-kernel`).
    pub kernel: PathBuf,
    /// The direct boot's ramdisk (QEMU `-initrd`): the same files plus
    /// `hypervisor.elf`, the kernel's own ELF, whose symbol table a PVH loader
    /// does not load (the kernel reads it for symbolised backtraces).
    pub pvh_ramdisk: PathBuf,
    pub pvh_ramdisk_entries: usize,
    pub bios: Option<PathBuf>,
    pub uefi: Option<PathBuf>,
}

/// The ramdisk entry that carries the kernel's ELF on a direct boot (the
/// hypervisor's `pvh_entry::KERNEL_ELF_ENTRY`).
pub const KERNEL_ELF_ENTRY: &str = "hypervisor.elf";

/// Which images to make.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Firmwares {
    pub bios: bool,
    pub uefi: bool,
}

impl Firmwares {
    pub const BOTH: Firmwares = Firmwares {
        bios: true,
        uefi: true,
    };
}

/// Writes `out_dir/ramdisk.cpio` (boot.cmd with `test`, README, guests), the
/// direct boot's `out_dir/ramdisk-pvh.cpio` (the same and `hypervisor.elf`) and
/// the requested disk images `out_dir/bios.img` / `out_dir/uefi.img` (which need
/// `image_builder`; a direct boot needs none).
pub fn images(
    image_builder: Option<&Path>,
    kernel: &Path,
    test: TestMode,
    guests: Vec<Entry>,
    out_dir: &Path,
    which: Firmwares,
) -> Result<Images> {
    std::fs::create_dir_all(out_dir).with_context(|| format!("creating {}", out_dir.display()))?;
    let ramdisk_path = out_dir.join("ramdisk.cpio");
    let mut entries = ramdisk::standard_entries(test, guests);
    let archive = ramdisk::archive(&entries)?;
    std::fs::write(&ramdisk_path, archive)
        .with_context(|| format!("writing {}", ramdisk_path.display()))?;
    let disk_entries = entries.len();
    let elf = std::fs::read(kernel).with_context(|| format!("reading {}", kernel.display()))?;
    entries.push(Entry::new(KERNEL_ELF_ENTRY, elf));
    let pvh_ramdisk = out_dir.join("ramdisk-pvh.cpio");
    std::fs::write(&pvh_ramdisk, ramdisk::archive(&entries)?)
        .with_context(|| format!("writing {}", pvh_ramdisk.display()))?;

    let mut images = Images {
        ramdisk: ramdisk_path.clone(),
        ramdisk_entries: disk_entries,
        kernel: kernel.to_path_buf(),
        pvh_ramdisk,
        pvh_ramdisk_entries: entries.len(),
        ..Images::default()
    };
    if !which.bios && !which.uefi {
        return Ok(images);
    }
    let image_builder = image_builder.context("disk images need the image builder")?;
    let mut cmd = Command::new(image_builder);
    cmd.arg("--kernel")
        .arg(kernel)
        .arg("--ramdisk")
        .arg(&ramdisk_path);
    if which.bios {
        let path = out_dir.join("bios.img");
        cmd.arg("--bios").arg(&path);
        images.bios = Some(path);
    }
    if which.uefi {
        let path = out_dir.join("uefi.img");
        cmd.arg("--uefi").arg(&path);
        images.uefi = Some(path);
    }
    util::run(&mut cmd)?;
    if let Some(bios) = &images.bios {
        // bootloader 0.11.15's BIOS stage 2 misreads FAT16 volumes over 32 MiB.
        crate::bios_fat::patch_bios_image(bios)?;
    }
    Ok(images)
}

/// Everything `cargo xtask image` does: hypervisor, guests, ramdisks, and (when
/// `which` asks for any) the image builder and disk images, under `target/image/`.
pub fn default_images(test: TestMode, which: Firmwares, domains: Option<&str>) -> Result<Images> {
    let kernel = hypervisor()?;
    let mut entries = Vec::new();
    if let Some(name) = domains {
        entries.extend(scenario_files(name)?);
    }
    entries.extend(guests()?);
    let builder = match which.bios || which.uefi {
        true => Some(image_builder()?),
        false => None,
    };
    images(
        builder.as_deref(),
        &kernel,
        test,
        entries,
        &target_dir().join("image"),
        which,
    )
}
