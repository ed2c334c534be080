//! Emulator command lines: QEMU (KVM with nested VMX where the host offers it,
//! else TCG with an AMD CPU model that has SVM + NPT) and Bochs (a VMX model,
//! under Xvfb). Both `run` and `qemu-test` build their command lines here.

use std::path::PathBuf;
use std::process::Command;

use anyhow::{bail, Context, Result};

/// Which emulator boots the image.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Emulator {
    Qemu,
    Bochs,
}

/// How QEMU executes the guest.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum AccelChoice {
    /// KVM with nested VMX when the host offers it, else TCG.
    Auto,
    /// QEMU + KVM, `-cpu host,+vmx` (fails if KVM is unusable).
    Kvm,
    /// QEMU TCG, `-cpu max` (emulated AMD-V with nested paging).
    Tcg,
}

/// The accelerator actually used, with the CPU model that goes with it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Accel {
    Kvm,
    Tcg,
}

/// TCG's CPU model: `max` is every feature TCG emulates, on an AMD vendor
/// string: SVM with NPT (CPUID 0x8000000A EDX bit 0). `qemu64,+svm` does not
/// advertise NPT; `EPYC` does too but makes QEMU warn about nine features TCG
/// lacks. TCG emulates no VMX at all.
pub const TCG_CPU: &str = "max";
/// KVM's CPU model: the host CPU, with VMX passed through (nested VMX).
pub const KVM_CPU: &str = "host,+vmx";

impl Accel {
    pub fn qemu_args(self) -> [&'static str; 4] {
        match self {
            Accel::Kvm => ["-accel", "kvm", "-cpu", KVM_CPU],
            Accel::Tcg => ["-accel", "tcg", "-cpu", TCG_CPU],
        }
    }
}

/// Decides between KVM and TCG from what the host shows: `/dev/kvm` can be
/// opened read-write, the CPU flags include `vmx`, and kvm_intel's `nested`
/// parameter is `Y` or `1`. Returns the verdict and why.
pub fn kvm_nested_verdict(
    dev_kvm: std::result::Result<(), String>,
    cpuinfo: &str,
    nested_param: Option<&str>,
) -> (Accel, String) {
    if let Err(why) = dev_kvm {
        return (Accel::Tcg, format!("/dev/kvm is not usable ({why})"));
    }
    let has_vmx = cpuinfo
        .lines()
        .filter(|l| l.starts_with("flags"))
        .any(|l| l.split_whitespace().any(|f| f == "vmx"));
    if !has_vmx {
        return (
            Accel::Tcg,
            "the host CPU does not expose vmx (no nested VMX to pass through)".into(),
        );
    }
    match nested_param.map(str::trim) {
        Some("Y") | Some("y") | Some("1") => (
            Accel::Kvm,
            "/dev/kvm is usable, the CPU has vmx and kvm_intel nested=Y".into(),
        ),
        Some(other) => (
            Accel::Tcg,
            format!("kvm_intel's nested parameter is {other:?}, not Y"),
        ),
        None => (
            Accel::Tcg,
            "kvm_intel is not loaded (/sys/module/kvm_intel/parameters/nested missing)".into(),
        ),
    }
}

/// Probes this host for `kvm_nested_verdict`.
pub fn detect_accel() -> (Accel, String) {
    let dev = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/kvm")
        .map(|_| ())
        .map_err(|e| e.to_string());
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let nested = std::fs::read_to_string("/sys/module/kvm_intel/parameters/nested").ok();
    kvm_nested_verdict(dev, &cpuinfo, nested.as_deref())
}

/// Resolves the user's choice to an accelerator, printing which and why.
pub fn choose_accel(choice: AccelChoice) -> Result<Accel> {
    let (detected, why) = detect_accel();
    match choice {
        AccelChoice::Auto => {
            match detected {
                Accel::Kvm => eprintln!("xtask: QEMU + KVM, -cpu {KVM_CPU}: {why}"),
                Accel::Tcg => {
                    eprintln!("xtask: QEMU TCG, -cpu {TCG_CPU} (AMD SVM + NPT emulated): {why}")
                }
            }
            Ok(detected)
        }
        AccelChoice::Kvm => {
            if detected != Accel::Kvm {
                bail!("--accel kvm asked for, but {why}");
            }
            Ok(Accel::Kvm)
        }
        AccelChoice::Tcg => {
            eprintln!("xtask: QEMU TCG, -cpu {TCG_CPU} (asked for)");
            Ok(Accel::Tcg)
        }
    }
}

/// The UEFI firmware: Debian's `ovmf` package.
pub const OVMF_CANDIDATES: &[&str] = &["/usr/share/ovmf/OVMF.fd", "/usr/share/OVMF/OVMF_CODE.fd"];

pub fn ovmf() -> Result<PathBuf> {
    OVMF_CANDIDATES
        .iter()
        .map(PathBuf::from)
        .find(|p| p.is_file())
        .context("no OVMF firmware found (Debian package `ovmf`; `cargo xtask deps` installs it)")
}

/// Where QEMU's serial port goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Serial {
    /// The terminal, multiplexed with the QEMU monitor (Ctrl-A X quits).
    Terminal,
    /// A file (the scenario log).
    File(PathBuf),
    /// QEMU's standard output (no monitor): the bench reads lines as they come.
    Stdout,
}

/// What QEMU boots.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum QemuBoot {
    /// A `bootloader` disk image, through the firmware (SeaBIOS or OVMF).
    Disk(PathBuf),
    /// A PVH ELF loaded directly (`-kernel`, `-initrd`, `-append`): QEMU's
    /// option ROM enters it at its `XEN_ELFNOTE_PHYS32_ENTRY` point, no disk.
    Direct {
        kernel: PathBuf,
        initrd: Option<PathBuf>,
        cmdline: Option<String>,
    },
}

/// One QEMU boot.
#[derive(Debug, Clone)]
pub struct QemuConfig {
    pub boot: QemuBoot,
    /// `Some(firmware)` boots UEFI with that OVMF file; `None` boots SeaBIOS.
    pub uefi_firmware: Option<PathBuf>,
    pub smp: u32,
    pub memory_mib: u32,
    pub accel: Accel,
    pub serial: Serial,
    /// Start the gdbstub on 127.0.0.1:1234 and wait for the debugger.
    pub gdb: bool,
    /// TCG with one thread for all vCPUs (`-accel tcg,thread=single`) instead of
    /// one host thread per vCPU: see `scenario::TCG_SINGLE_THREAD` for why.
    pub tcg_single_thread: bool,
    pub extra: Vec<String>,
}

impl QemuConfig {
    pub fn args(&self) -> Vec<String> {
        let mut args: Vec<String> = Vec::new();
        let mut push = |items: &[&str]| args.extend(items.iter().map(|s| s.to_string()));
        if self.tcg_single_thread && self.accel == Accel::Tcg {
            push(&["-accel", "tcg,thread=single", "-cpu", TCG_CPU]);
        } else {
            push(&self.accel.qemu_args());
        }
        push(&["-m", &format!("{}M", self.memory_mib)]);
        push(&["-smp", &self.smp.to_string()]);
        match &self.boot {
            QemuBoot::Disk(image) => {
                push(&["-drive", &format!("format=raw,file={}", image.display())])
            }
            QemuBoot::Direct {
                kernel,
                initrd,
                cmdline,
            } => {
                push(&["-kernel", &kernel.display().to_string()]);
                if let Some(initrd) = initrd {
                    push(&["-initrd", &initrd.display().to_string()]);
                }
                if let Some(cmdline) = cmdline {
                    push(&["-append", cmdline]);
                }
            }
        }
        if let Some(fw) = &self.uefi_firmware {
            push(&["-bios", &fw.display().to_string()]);
        }
        // Our kernel ends QEMU by writing to port 0xf4: status = (value << 1) | 1.
        push(&["-device", "isa-debug-exit,iobase=0xf4,iosize=0x04"]);
        // A triple fault ends QEMU instead of rebooting into the same failure.
        push(&["-no-reboot", "-display", "none"]);
        match &self.serial {
            Serial::Terminal => push(&["-serial", "mon:stdio"]),
            Serial::File(path) => {
                push(&["-serial", &format!("file:{}", path.display())]);
                push(&["-monitor", "none"]);
            }
            Serial::Stdout => push(&["-serial", "stdio", "-monitor", "none"]),
        }
        if self.gdb {
            // Like `-s -S`, but listening on loopback only.
            push(&["-gdb", "tcp:127.0.0.1:1234", "-S"]);
        }
        args.extend(self.extra.iter().cloned());
        args
    }

    pub fn command(&self) -> Command {
        let mut cmd = Command::new("qemu-system-x86_64");
        cmd.args(self.args());
        cmd
    }
}

/// QEMU's isa-debug-exit status for the kernel's "success" (value 0x10).
pub const QEMU_EXIT_SUCCESS: i32 = 33;
/// QEMU's isa-debug-exit status for the kernel's "failure" (value 0x11).
pub const QEMU_EXIT_FAILURE: i32 = 35;

/// Bochs's CPU model with VMX (+EPT, unrestricted guest, MTF, VMFUNC...).
pub const BOCHS_VMX_MODEL: &str = "tigerlake";
/// Bochs's CPU model with SVM (+NPT, NRIPS, FlushByASID).
pub const BOCHS_SVM_MODEL: &str = "ryzen";

/// One Bochs boot. Bochs reads its configuration from a file, so this writes
/// `bochsrc` (and the debugger's `-rc` script) into `dir`.
#[derive(Debug, Clone)]
pub struct BochsConfig {
    pub image: PathBuf,
    pub cpu_model: String,
    pub smp: u32,
    pub memory_mib: u32,
    /// The serial log (COM1 in file mode).
    pub serial_log: PathBuf,
    /// Directory for bochsrc, the rc script and bochs.log.
    pub dir: PathBuf,
}

/// Debian's Bochs ROMs (packages `bochsbios` and `vgabios`).
pub const BOCHS_BIOS: &str = "/usr/share/bochs/BIOS-bochs-latest";
pub const BOCHS_VGABIOS: &str = "/usr/share/bochs/VGABIOS-lgpl-latest";

impl BochsConfig {
    /// The bochsrc text. `clock: sync=none` lets emulated time run as fast as
    /// Bochs can (the BIOS's IDE time-outs cost no wall time); `display_library:
    /// x` because the bootloader needs a 24/32-bpp VESA framebuffer, which only
    /// the X display offers among Debian's builds (under Xvfb when headless).
    pub fn bochsrc(&self) -> String {
        let cpu = if self.smp > 1 {
            format!(
                "cpu: model={}, count=1:{}:1, ips=200000000, reset_on_triple_fault=0\n",
                self.cpu_model, self.smp
            )
        } else {
            format!(
                "cpu: model={}, count=1, ips=200000000, reset_on_triple_fault=0\n",
                self.cpu_model
            )
        };
        format!(
            "megs: {megs}\n\
             {cpu}\
             romimage: file={bios}\n\
             vgaromimage: file={vga}\n\
             vga: extension=vbe\n\
             ata0-master: type=disk, path=\"{image}\", mode=flat\n\
             boot: disk\n\
             com1: enabled=1, mode=file, dev=\"{serial}\"\n\
             display_library: x\n\
             log: \"{log}\"\n\
             clock: sync=none\n\
             speaker: enabled=0\n",
            megs = self.memory_mib,
            bios = BOCHS_BIOS,
            vga = BOCHS_VGABIOS,
            image = self.image.display(),
            serial = self.serial_log.display(),
            log = self.dir.join("bochs.log").display(),
        )
    }

    /// Writes the configuration files and returns the command: Bochs under
    /// `xvfb-run` (unless `use_display` and an X display is there), quick start,
    /// the debugger told to `c`ontinue at once.
    pub fn prepare(&self, use_display: bool) -> Result<Command> {
        std::fs::create_dir_all(&self.dir)
            .with_context(|| format!("creating {}", self.dir.display()))?;
        let rc = self.dir.join("bochsrc");
        std::fs::write(&rc, self.bochsrc()).with_context(|| format!("writing {}", rc.display()))?;
        let cont = self.dir.join("cont.rc");
        std::fs::write(&cont, "c\n").with_context(|| format!("writing {}", cont.display()))?;
        // Bochs locks its disk with `<image>.lock` and refuses (PANIC) to open a
        // locked one; a killed Bochs leaves the lock behind.
        let mut lock = self.image.clone().into_os_string();
        lock.push(".lock");
        let _ = std::fs::remove_file(lock);
        // Start from an empty serial log so a reader never sees an old boot.
        std::fs::write(&self.serial_log, b"")
            .with_context(|| format!("writing {}", self.serial_log.display()))?;
        let mut cmd = if use_display && std::env::var_os("DISPLAY").is_some() {
            Command::new("bochs")
        } else {
            let mut c = Command::new("xvfb-run");
            c.args(["-a", "-s", "-screen 0 1600x1200x24", "bochs"]);
            c
        };
        cmd.arg("-q").arg("-f").arg(&rc).arg("-rc").arg(&cont);
        Ok(cmd)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const VMX_CPUINFO: &str = "processor\t: 0\nflags\t\t: fpu vme vmx sse2\n";
    const PLAIN_CPUINFO: &str = "processor\t: 0\nflags\t\t: fpu vme sse2 hypervisor\n";

    #[test]
    fn kvm_only_with_device_vmx_and_nested() {
        assert_eq!(
            kvm_nested_verdict(Ok(()), VMX_CPUINFO, Some("Y\n")).0,
            Accel::Kvm
        );
        assert_eq!(
            kvm_nested_verdict(Ok(()), VMX_CPUINFO, Some("1")).0,
            Accel::Kvm
        );
        let (accel, why) =
            kvm_nested_verdict(Err("Permission denied".into()), VMX_CPUINFO, Some("Y"));
        assert_eq!(accel, Accel::Tcg);
        assert!(why.contains("/dev/kvm"), "{why}");
        let (accel, why) = kvm_nested_verdict(Ok(()), PLAIN_CPUINFO, Some("Y"));
        assert_eq!(accel, Accel::Tcg);
        assert!(why.contains("vmx"), "{why}");
        assert_eq!(
            kvm_nested_verdict(Ok(()), VMX_CPUINFO, Some("N")).0,
            Accel::Tcg
        );
        assert_eq!(kvm_nested_verdict(Ok(()), VMX_CPUINFO, None).0, Accel::Tcg);
    }

    fn base(accel: Accel) -> QemuConfig {
        QemuConfig {
            boot: QemuBoot::Disk("/t/bios.img".into()),
            uefi_firmware: None,
            smp: 2,
            memory_mib: 512,
            accel,
            serial: Serial::File("/t/s.log".into()),
            gdb: false,
            tcg_single_thread: false,
            extra: vec!["-d".into(), "int".into()],
        }
    }

    #[test]
    fn single_thread_tcg_only_changes_the_accelerator() {
        let mut cfg = base(Accel::Tcg);
        cfg.tcg_single_thread = true;
        let args = cfg.args().join(" ");
        assert!(
            args.starts_with("-accel tcg,thread=single -cpu max -m 512M -smp 2 "),
            "{args}"
        );
        // KVM has no TCG threads to choose.
        let mut cfg = base(Accel::Kvm);
        cfg.tcg_single_thread = true;
        assert!(cfg.args().join(" ").starts_with("-accel kvm "));
    }

    #[test]
    fn qemu_tcg_command_line() {
        let args = base(Accel::Tcg).args().join(" ");
        assert!(
            args.starts_with("-accel tcg -cpu max -m 512M -smp 2 "),
            "{args}"
        );
        assert!(
            args.contains("-drive format=raw,file=/t/bios.img"),
            "{args}"
        );
        assert!(
            args.contains("-device isa-debug-exit,iobase=0xf4,iosize=0x04"),
            "{args}"
        );
        assert!(
            args.contains("-serial file:/t/s.log -monitor none"),
            "{args}"
        );
        assert!(!args.contains("-bios"), "{args}");
        assert!(!args.contains(" -S"), "{args}");
        assert!(args.ends_with("-d int"), "extra args go last: {args}");
    }

    #[test]
    fn qemu_direct_boot_has_kernel_initrd_and_no_disk() {
        let mut cfg = base(Accel::Tcg);
        cfg.boot = QemuBoot::Direct {
            kernel: "/t/hypervisor".into(),
            initrd: Some("/t/ramdisk.cpio".into()),
            cmdline: None,
        };
        let args = cfg.args().join(" ");
        assert!(
            args.contains("-kernel /t/hypervisor -initrd /t/ramdisk.cpio"),
            "{args}"
        );
        assert!(!args.contains("-drive"), "{args}");
        assert!(!args.contains("-append"), "{args}");
    }

    #[test]
    fn qemu_kvm_uefi_gdb_command_line() {
        let mut cfg = base(Accel::Kvm);
        cfg.uefi_firmware = Some("/usr/share/ovmf/OVMF.fd".into());
        cfg.gdb = true;
        cfg.serial = Serial::Terminal;
        let args = cfg.args().join(" ");
        assert!(args.starts_with("-accel kvm -cpu host,+vmx "), "{args}");
        assert!(args.contains("-bios /usr/share/ovmf/OVMF.fd"), "{args}");
        assert!(args.contains("-serial mon:stdio"), "{args}");
        assert!(args.contains("-gdb tcp:127.0.0.1:1234 -S"), "{args}");
    }

    #[test]
    fn bochsrc_has_model_serial_and_sync_none() {
        let cfg = BochsConfig {
            image: "/t/bios.img".into(),
            cpu_model: BOCHS_VMX_MODEL.into(),
            smp: 1,
            memory_mib: 256,
            serial_log: "/t/serial.log".into(),
            dir: "/t/bochs".into(),
        };
        let rc = cfg.bochsrc();
        assert!(rc.contains("cpu: model=tigerlake, count=1,"), "{rc}");
        assert!(
            rc.contains("com1: enabled=1, mode=file, dev=\"/t/serial.log\""),
            "{rc}"
        );
        assert!(rc.contains("clock: sync=none"), "{rc}");
        assert!(rc.contains("display_library: x"), "{rc}");
        assert!(rc.contains("megs: 256"), "{rc}");
        let smp = BochsConfig { smp: 2, ..cfg }.bochsrc();
        assert!(smp.contains("count=1:2:1"), "{smp}");
    }
}
