//! `cargo xtask run`: builds the images and boots one in QEMU (serial console on
//! this terminal) or Bochs (its COM1 file followed on this terminal).

use std::io::{Read, Seek, SeekFrom, Write};
use std::time::Duration;

use anyhow::{bail, Context, Result};

use crate::build::{self, Firmwares};
use crate::deps;
use crate::emulator::{
    self, AccelChoice, BochsConfig, Emulator, QemuBoot, QemuConfig, Serial, BOCHS_VMX_MODEL,
    QEMU_EXIT_FAILURE, QEMU_EXIT_SUCCESS,
};
use crate::ramdisk::TestMode;
use crate::util::{self, target_dir};

#[derive(Debug, clap::Args)]
pub struct RunArgs {
    /// The emulator: QEMU (KVM with nested VMX if available, else TCG with SVM) or
    /// Bochs (VMX model `tigerlake`).
    #[arg(long, value_enum, default_value_t = Emulator::Qemu)]
    pub emulator: Emulator,
    /// Boot the UEFI disk image with OVMF instead of the direct PVH boot (QEMU only).
    #[arg(long, conflicts_with = "bios")]
    pub uefi: bool,
    /// Boot the BIOS disk image with SeaBIOS instead of the direct PVH boot
    /// (QEMU; Bochs always boots the BIOS image).
    #[arg(long)]
    pub bios: bool,
    /// Number of CPUs.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..=64))]
    pub smp: u32,
    /// Guest RAM in MiB.
    #[arg(long, default_value_t = 512)]
    pub memory: u32,
    /// QEMU accelerator: auto picks KVM only where /dev/kvm offers nested VMX.
    #[arg(long, value_enum, default_value_t = AccelChoice::Auto)]
    pub accel: AccelChoice,
    /// Start QEMU's gdbstub on 127.0.0.1:1234 and wait for the debugger.
    #[arg(long)]
    pub gdb: bool,
    /// Bochs CPU model (`tigerlake` for VMX, `ryzen` for SVM).
    #[arg(long, default_value = BOCHS_VMX_MODEL)]
    pub bochs_cpu: String,
    /// The ramdisk's boot.cmd `test=` (fault-* and panic provoke a failure).
    #[arg(long, value_enum, default_value_t = TestMode::None)]
    pub test: TestMode,
    /// The domains to boot after READY: a scenario of `tests-qemu/scenarios/` (its
    /// `domains.cfg` and the test guest: `hello` is dom0 plus a demo domU), or
    /// `none` for the bare hypervisor.
    #[arg(long, default_value = "hello")]
    pub domains: String,
    /// Extra arguments passed to QEMU as they are (after `--`).
    #[arg(last = true)]
    pub qemu_args: Vec<String>,
}

pub fn run(args: RunArgs) -> Result<i32> {
    // QEMU boots the hypervisor ELF directly (PVH) unless a disk image is asked
    // for; Bochs only boots the BIOS disk image.
    let which = Firmwares {
        bios: args.bios || args.emulator == Emulator::Bochs,
        uefi: args.uefi,
    };
    match args.emulator {
        Emulator::Qemu => deps::ensure_packages(&deps::qemu_packages(args.uefi))?,
        Emulator::Bochs => deps::ensure_packages(deps::BOCHS_PACKAGES)?,
    }
    match args.emulator {
        Emulator::Qemu => {
            // Decide (and complain about --accel kvm) before building anything.
            let accel = emulator::choose_accel(args.accel)?;
            let images = build::default_images(args.test, which, domains(&args))?;
            run_qemu(&args, accel, images)
        }
        Emulator::Bochs => {
            let images = build::default_images(args.test, which, domains(&args))?;
            run_bochs(&args, images)
        }
    }
}

/// `--domains`: `none` boots no domains.
fn domains(args: &RunArgs) -> Option<&str> {
    (args.domains != "none").then_some(args.domains.as_str())
}

fn run_qemu(args: &RunArgs, accel: emulator::Accel, images: build::Images) -> Result<i32> {
    let (boot, uefi_firmware) = if args.uefi {
        (
            QemuBoot::Disk(images.uefi.context("no UEFI image")?),
            Some(emulator::ovmf()?),
        )
    } else if args.bios {
        (QemuBoot::Disk(images.bios.context("no BIOS image")?), None)
    } else {
        eprintln!("xtask: direct PVH boot (-kernel, -initrd); --bios or --uefi boot a disk image");
        (
            QemuBoot::Direct {
                kernel: images.kernel.clone(),
                initrd: Some(images.pvh_ramdisk.clone()),
                cmdline: None,
            },
            None,
        )
    };
    let cfg = QemuConfig {
        boot,
        uefi_firmware,
        smp: args.smp,
        memory_mib: args.memory,
        accel,
        serial: Serial::Terminal,
        gdb: args.gdb,
        tcg_single_thread: false,
        extra: args.qemu_args.clone(),
    };
    let mut cmd = cfg.command();
    if args.gdb {
        let elf = target_dir().join("x86_64-unknown-none/release/hypervisor");
        eprintln!("xtask: QEMU waits for gdb on 127.0.0.1:1234; in another terminal:");
        eprintln!(
            "    gdb {} -ex 'target remote 127.0.0.1:1234'",
            elf.display()
        );
    }
    eprintln!("xtask: serial console below; Ctrl-A X quits QEMU");
    eprintln!("$ {}", util::display_command(&cmd));
    let status = cmd
        .status()
        .context("cannot start qemu-system-x86_64 (`cargo xtask deps` installs it)")?;
    Ok(match status.code() {
        Some(QEMU_EXIT_SUCCESS) => {
            eprintln!("xtask: the hypervisor reported success (QEMU status 33)");
            0
        }
        Some(QEMU_EXIT_FAILURE) => {
            eprintln!("xtask: the hypervisor reported failure (QEMU status 35)");
            1
        }
        Some(code) => code,
        None => 1,
    })
}

fn run_bochs(args: &RunArgs, images: build::Images) -> Result<i32> {
    if args.uefi {
        bail!("--uefi: the Bochs BIOS boots the BIOS image only");
    }
    if !args.qemu_args.is_empty() {
        bail!("extra arguments after `--` are QEMU arguments; Bochs takes none");
    }
    let dir = target_dir().join("run-bochs");
    let serial_log = dir.join("serial.log");
    let cfg = BochsConfig {
        image: images.bios.context("no BIOS image")?,
        cpu_model: args.bochs_cpu.clone(),
        smp: args.smp,
        memory_mib: args.memory,
        serial_log: serial_log.clone(),
        dir: dir.clone(),
    };
    let mut cmd = cfg.prepare(true)?;
    // Bochs's own chatter (banner, debugger) goes to a file; the terminal shows
    // the serial console only.
    let out_path = dir.join("bochs.out");
    let out = std::fs::File::create(&out_path)
        .with_context(|| format!("creating {}", out_path.display()))?;
    cmd.stdout(out.try_clone()?).stderr(out);
    eprintln!(
        "xtask: Bochs, cpu model {}; serial console (COM1: {}) below; Bochs output: {}, log: {}",
        args.bochs_cpu,
        serial_log.display(),
        out_path.display(),
        dir.join("bochs.log").display()
    );
    eprintln!("$ {}", util::display_command(&cmd));
    let mut child = util::spawn_group(&mut cmd)?;
    // Follow the COM1 file until Bochs exits (it ends on the kernel's write of
    // "Shutdown" to port 0x8900; its exit status says nothing about the kernel).
    let mut file = std::fs::File::open(&serial_log).context("opening the serial log")?;
    let mut pos = 0u64;
    let mut stdout = std::io::stdout();
    let mut buf = Vec::new();
    loop {
        let done = child.try_wait()?.is_some();
        buf.clear();
        file.seek(SeekFrom::Start(pos))?;
        file.read_to_end(&mut buf)?;
        pos += buf.len() as u64;
        stdout.write_all(&buf)?;
        stdout.flush()?;
        if done {
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    util::kill_leftovers(&child);
    let log = std::fs::read_to_string(&serial_log).unwrap_or_default();
    Ok(if log.contains("EXIT: success") { 0 } else { 1 })
}
