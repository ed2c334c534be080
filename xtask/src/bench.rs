//! `cargo xtask bench`: every speed figure of the project in one markdown table
//! (min / median / max over N runs), also written as JSON and markdown under
//! `target/bench/`, and with `--write-docs` into `docs/benchmarks.md`.
//!
//! Rows:
//! - boot: QEMU start → `READY` → dom0's first console line, for the direct PVH
//!   boot and the BIOS disk image, each by the host's wall clock (time stamps of
//!   serial lines as they arrive on a pipe) and by the hypervisor's own TSC
//!   stamps (time since reset, which does not include QEMU's own start-up);
//! - null hypercall, CPUID exit and their ratio, as dom0 of the `hello` scenario
//!   measures them (QEMU: SVM; Bochs tigerlake: VMX), and the SVM self-test's;
//! - the interdomain event round trip of the `evtchn` scenario (2-level, FIFO);
//! - 2-level vs FIFO send at 64 / 4096 / 131072 ports (host, criterion);
//! - the hypervisor ELF's section sizes;
//! - rows that wait for other work say `not measured: <why>`.
//!
//! Speed targets are read from this table, never asserted by timed tests.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};

use crate::build::{self, Firmwares, Images};
use crate::emulator::{Accel, BochsConfig, QemuBoot, QemuConfig, Serial, BOCHS_VMX_MODEL};
use crate::ramdisk::TestMode;
use crate::util::{self, project_root, target_dir};

#[derive(Debug, clap::Args)]
pub struct BenchArgs {
    /// Runs per QEMU figure (Bochs figures: one run per three, at least one).
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u32).range(1..=50))]
    pub runs: u32,
    /// One run each, no Bochs, no host criterion bench (about half a minute).
    #[arg(long)]
    pub quick: bool,
    /// Also rewrite docs/benchmarks.md from the result.
    #[arg(long)]
    pub write_docs: bool,
    /// Boots of the Linux domU (the `linux` scenario's inputs, fetched from
    /// Debian's packages as `cargo xtask linux-inputs` does) and of the same
    /// kernel under plain QEMU, for the "Linux to /init" rows; 0 leaves them
    /// out (each boot takes 20-60 s under TCG).
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u32).range(0..=10))]
    pub linux: u32,
}

/// Guest memory for the bench boots (as qemu-test).
const MEMORY_MIB: u32 = 256;
/// The test guest's first console line as dom0 (the guest prints it first thing).
const DOM0_FIRST_LINE: &str = "d0: testguest: ";

/// One row of the table.
#[derive(Debug, Clone)]
struct Row {
    figure: String,
    place: String,
    unit: String,
    samples: Vec<f64>,
    /// Why there are no samples, or a remark.
    note: String,
}

impl Row {
    fn new(figure: &str, place: &str, unit: &str, samples: Vec<f64>) -> Row {
        Row {
            figure: figure.into(),
            place: place.into(),
            unit: unit.into(),
            samples,
            note: String::new(),
        }
    }
    fn not_measured(figure: &str, place: &str, why: &str) -> Row {
        Row {
            note: format!("not measured: {why}"),
            ..Row::new(figure, place, "", Vec::new())
        }
    }
    fn note(mut self, note: &str) -> Row {
        self.note = note.into();
        self
    }
    fn stats(&self) -> Option<(f64, f64, f64)> {
        let mut v = self.samples.clone();
        if v.is_empty() {
            return None;
        }
        v.sort_by(f64::total_cmp);
        Some((v[0], v[v.len() / 2], v[v.len() - 1]))
    }
}

/// What one boot's serial log says, with the host time each line arrived.
#[derive(Debug, Default)]
struct BootLog {
    /// (ms since the emulator was started, line).
    lines: Vec<(f64, String)>,
}

impl BootLog {
    fn find(&self, pattern: &str) -> Option<&(f64, String)> {
        self.lines.iter().find(|(_, l)| l.contains(pattern))
    }
    /// The hypervisor's own time stamp `[  s.us]` of the first line with `pattern`, in ms.
    fn tsc_ms(&self, pattern: &str) -> Option<f64> {
        self.find(pattern).and_then(|(_, l)| stamp_ms(l))
    }
    fn wall_ms(&self, pattern: &str) -> Option<f64> {
        self.find(pattern).map(|(t, _)| *t)
    }
    /// The value of `MEASURE <name> <value> <unit>`.
    fn measure(&self, name: &str) -> Option<f64> {
        let key = format!("MEASURE {name} ");
        self.lines.iter().find_map(|(_, l)| {
            let rest = &l[l.find(&key)? + key.len()..];
            rest.split_whitespace().next()?.parse().ok()
        })
    }
    /// The per-vCPU counters dom0 had printed (debug key 'p') right after its
    /// ping-pong with `domid`, divided by the round trips: for vCPU 0 of dom0
    /// and of `domid`, `[exits, hypercall exits, injections]` per round trip.
    fn perfc_per_round(&self, domid: u16) -> Option<([f64; 3], [f64; 3])> {
        let mark = format!("evtchn: perfc above: d{domid} ping-pong, ");
        let at = self.lines.iter().position(|(_, l)| l.contains(&mark))?;
        let rounds: f64 = {
            let l = &self.lines[at].1;
            let rest = &l[l.find(&mark)? + mark.len()..];
            rest.split_whitespace().next()?.parse().ok()?
        };
        if rounds <= 0.0 {
            return None;
        }
        let head = self.lines[..at]
            .iter()
            .rposition(|(_, l)| l.contains("perfc: per-vCPU counters"))?;
        let counters = |d: u16| -> Option<[f64; 3]> {
            let key = format!("perfc d{d}v0: ");
            let l = self.lines[head..at]
                .iter()
                .find_map(|(_, l)| Some(&l[l.find(&key)? + key.len()..]))?;
            // "exits E hypercall H hlt L interrupt I injections J"
            let w: Vec<&str> = l.split_whitespace().collect();
            let get = |name: &str| -> Option<f64> {
                let i = w.iter().position(|x| *x == name)?;
                w.get(i + 1)?.parse::<f64>().ok()
            };
            Some([
                get("exits")? / rounds,
                get("hypercall")? / rounds,
                get("injections")? / rounds,
            ])
        };
        Some((counters(0)?, counters(domid)?))
    }
    /// Each `xl create <name>.cfg` … `xl destroy <name>` cycle of dom0's xl
    /// script, by the hypervisor's time stamps: (create ms: the command line to
    /// xl's "created <name> as dN"; destroy ms: the command line to the
    /// hypervisor's "dN: destroyed").
    fn xl_cycles(&self, name: &str) -> Vec<(f64, f64)> {
        let create = format!("xl> create {name}.cfg");
        let created = format!("xl: created {name} as d");
        let destroy = format!("xl> destroy {name}");
        let mut out = Vec::new();
        let mut i = 0;
        let stamp = |j: usize| stamp_ms(&self.lines[j].1);
        let next = |from: usize, pat: &str| {
            (from..self.lines.len()).find(|&j| self.lines[j].1.contains(pat))
        };
        while let Some(a) = next(i, &create) {
            let Some(b) = next(a, &created) else { break };
            let l = &self.lines[b].1;
            let domid: String = l[l.find(&created).unwrap_or(0) + created.len()..]
                .chars()
                .take_while(|c| c.is_ascii_digit())
                .collect();
            let Some(c) = next(b, &destroy) else { break };
            let Some(d) = next(c, &format!("d{domid}: destroyed")) else {
                break;
            };
            if let (Some(ta), Some(tb), Some(tc), Some(td)) =
                (stamp(a), stamp(b), stamp(c), stamp(d))
            {
                out.push((tb - ta, td - tc));
            }
            i = d;
        }
        out
    }
    fn tsc_mhz(&self) -> Option<f64> {
        let (_, l) = self.find("starting (tsc ")?;
        let rest = &l[l.find("(tsc ")? + 5..];
        rest.split_whitespace().next()?.parse().ok()
    }
}

/// `[    1.234567] ...` → 1234.567 ms.
pub fn stamp_ms(line: &str) -> Option<f64> {
    let rest = line.trim_start().strip_prefix('[')?;
    let secs: f64 = rest.split(']').next()?.trim().parse().ok()?;
    Some(secs * 1000.0)
}

/// Boots QEMU once with the serial console on a pipe; returns every line with
/// its arrival time. Ends at the `EXIT:` line (or after `timeout`).
fn qemu_boot(boot: QemuBoot, smp: u32, out_dir: &Path, timeout: Duration) -> Result<BootLog> {
    qemu_boot_until(boot, smp, MEMORY_MIB, "EXIT: ", out_dir, timeout)
}

/// [`qemu_boot`] with the machine's memory and the line that ends the run.
fn qemu_boot_until(
    boot: QemuBoot,
    smp: u32,
    memory_mib: u32,
    end: &str,
    out_dir: &Path,
    timeout: Duration,
) -> Result<BootLog> {
    let mut cmd = QemuConfig {
        boot,
        uefi_firmware: None,
        smp,
        memory_mib,
        accel: Accel::Tcg,
        serial: Serial::Stdout,
        gdb: false,
        tcg_single_thread: false,
        extra: Vec::new(),
    }
    .command();
    let err = std::fs::File::create(out_dir.join("emulator.err"))?;
    cmd.stdout(Stdio::piped()).stderr(err);
    let started = Instant::now();
    let mut child = util::spawn_group(&mut cmd)?;
    let stdout = child.stdout.take().context("no stdout pipe")?;
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            if tx.send((started.elapsed(), line)).is_err() {
                break;
            }
        }
    });
    let mut log = BootLog::default();
    loop {
        let left = timeout.saturating_sub(started.elapsed());
        match rx.recv_timeout(left) {
            Ok((t, line)) => {
                let last = line.contains(end);
                log.lines.push((t.as_secs_f64() * 1000.0, line));
                if last {
                    break;
                }
            }
            Err(_) => break,
        }
    }
    util::kill_group(&mut child);
    let text: String = log
        .lines
        .iter()
        .map(|(t, l)| format!("{t:9.1} {l}\n"))
        .collect();
    std::fs::write(out_dir.join("serial.log"), text)?;
    Ok(log)
}

/// Boots Bochs (tigerlake, BIOS image) once; the serial file is polled every
/// 20 ms, so wall times are ±20 ms.
fn bochs_boot(image: &Path, dir: &Path, timeout: Duration) -> Result<BootLog> {
    let serial = dir.join("serial.raw");
    let disk = dir.join("bios.img");
    std::fs::copy(image, &disk)?;
    let mut cmd = BochsConfig {
        image: disk,
        cpu_model: BOCHS_VMX_MODEL.into(),
        smp: 1,
        memory_mib: MEMORY_MIB,
        serial_log: serial.clone(),
        dir: dir.to_path_buf(),
    }
    .prepare(false)?;
    let out = std::fs::File::create(dir.join("emulator.out"))?;
    cmd.stdout(out.try_clone()?).stderr(out);
    let started = Instant::now();
    let mut child = util::spawn_group(&mut cmd)?;
    let mut log = BootLog::default();
    let mut seen = 0usize;
    let mut pending = String::new();
    let mut done = false;
    while !done && started.elapsed() < timeout {
        let bytes = std::fs::read(&serial).unwrap_or_default();
        if bytes.len() > seen {
            pending.push_str(&String::from_utf8_lossy(&bytes[seen..]));
            seen = bytes.len();
            let now = started.elapsed().as_secs_f64() * 1000.0;
            while let Some(i) = pending.find('\n') {
                let line: String = pending.drain(..=i).collect();
                done |= line.contains("EXIT: ");
                log.lines.push((now, line.trim_end().to_string()));
            }
        }
        if child.try_wait()?.is_some() && bytes.len() == seen {
            break;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    util::kill_group(&mut child);
    Ok(log)
}

/// The images of one `domains.cfg` scenario (or none), with the disks `which` asks for.
fn scenario_images(
    name: Option<&str>,
    test: TestMode,
    which: Firmwares,
    guests: &[crate::ramdisk::Entry],
) -> Result<Images> {
    let kernel = build::hypervisor()?;
    let mut entries = Vec::new();
    if let Some(name) = name {
        // domains.cfg and the scenario's other files (xl scripts and configs).
        entries.extend(build::scenario_files(name)?);
        // The Linux kernel and initramfs, if domains.cfg names them.
        let linux = crate::linux::ramdisk_entries(&entries[0].data)?;
        entries.extend(guests.iter().cloned());
        entries.extend(linux);
    }
    let builder = match which.bios || which.uefi {
        true => Some(build::image_builder()?),
        false => None,
    };
    let dir = target_dir().join("bench/images").join(format!(
        "{}-{}",
        test.as_str(),
        name.unwrap_or("none")
    ));
    build::images(builder.as_deref(), &kernel, test, entries, &dir, which)
}

fn direct(images: &Images) -> QemuBoot {
    QemuBoot::Direct {
        kernel: images.kernel.clone(),
        initrd: Some(images.pvh_ramdisk.clone()),
        cmdline: None,
    }
}

/// Runs `f` `n` times, keeping the `Some` results.
fn collect<T>(n: u32, mut f: impl FnMut(u32) -> Result<T>) -> Result<Vec<T>> {
    (0..n).map(&mut f).collect()
}

fn boot_rows(rows: &mut Vec<Row>, place: &str, logs: &[BootLog]) {
    let pick = |f: &dyn Fn(&BootLog) -> Option<f64>| logs.iter().filter_map(f).collect();
    rows.push(Row::new(
        "QEMU start → READY (host wall clock)",
        place,
        "ms",
        pick(&|l| l.wall_ms("READY: ")),
    ));
    rows.push(Row::new(
        "QEMU start → dom0's first console line (host wall clock)",
        place,
        "ms",
        pick(&|l| l.wall_ms(DOM0_FIRST_LINE)),
    ));
    rows.push(Row::new(
        "reset → READY (hypervisor TSC)",
        place,
        "ms",
        pick(&|l| l.tsc_ms("READY: ")),
    ));
    rows.push(Row::new(
        "reset → dom0's first console line (hypervisor TSC)",
        place,
        "ms",
        pick(&|l| l.tsc_ms(DOM0_FIRST_LINE)),
    ));
    rows.push(Row::new(
        "hypervisor entry → READY (hypervisor TSC)",
        place,
        "ms",
        pick(&|l| {
            let (_, line) = l.find("since the bootloader's hand-off")?;
            let i = line.rfind(" ms since the bootloader's hand-off")?;
            line[..i].rsplit('(').next()?.trim().parse().ok()
        }),
    ));
}

fn hypercall_rows(rows: &mut Vec<Row>, place: &str, logs: &[BootLog], prefix: &str) {
    let (null, cpuid, ratio) = match prefix {
        "svm." => (
            "svm.null_hypercall",
            "svm.cpuid_exit",
            "svm.null_hypercall_per_cpuid_exit",
        ),
        _ => (
            "null-hypercall",
            "cpuid-exit",
            "null-hypercall-per-cpuid-exit",
        ),
    };
    let pick = |name: &str| {
        logs.iter()
            .filter_map(|l| l.measure(name))
            .collect::<Vec<_>>()
    };
    rows.push(Row::new(
        "null hypercall (xen_version)",
        place,
        "TSC cycles",
        pick(null),
    ));
    rows.push(Row::new("CPUID exit", place, "TSC cycles", pick(cpuid)));
    let mut r = pick(ratio);
    if prefix.is_empty() {
        r.iter_mut().for_each(|p| *p /= 100.0);
    }
    rows.push(Row::new("null hypercall / CPUID exit", place, "ratio", r).note("target ≤ 1.04"));
}

/// Runs the host criterion bench `bench` and turns each `<group>/<id>/<param>`
/// result into a row named by `figure(id, param)`: (low, estimate, high) in ns.
fn criterion_bench(
    rows: &mut Vec<Row>,
    bench: &str,
    figure: impl Fn(&str, &str) -> String,
) -> Result<()> {
    let mut cmd = util::cargo();
    cmd.args([
        "bench",
        "-p",
        "hypervisor",
        "--bench",
        bench,
        "--",
        "--noplot",
    ]);
    cmd.stdout(Stdio::piped());
    eprintln!("$ {}", util::display_command(&cmd));
    let out = cmd.output().context("running cargo bench")?;
    if !out.status.success() {
        bail!("cargo bench --bench {bench} failed: {}", out.status);
    }
    let text = String::from_utf8_lossy(&out.stdout);
    std::fs::write(
        target_dir().join(format!("bench/{bench}.out")),
        text.as_bytes(),
    )?;
    let before = rows.len();
    for (name, nums) in parse_criterion(&text) {
        let mut parts = name.splitn(3, '/').skip(1);
        let (id, param) = (parts.next().unwrap_or(""), parts.next().unwrap_or(""));
        rows.push(
            Row::new(&figure(id, param), "host (criterion)", "ns", nums.to_vec())
                .note("min/median/max = criterion's 95% interval low / estimate / high"),
        );
    }
    if rows.len() == before {
        bail!("no criterion results in the output of --bench {bench}");
    }
    Ok(())
}

/// Criterion's report: `<group>/<id>/<param>` then (same or next line)
/// `time:   [1.2 ns 1.3 ns 1.4 ns]` → (name, [low, estimate, high] in ns).
fn parse_criterion(text: &str) -> Vec<(String, [f64; 3])> {
    let mut out = Vec::new();
    let mut name: Option<String> = None;
    for line in text.lines() {
        let first = line.split_whitespace().next().unwrap_or("");
        if !line.starts_with(char::is_whitespace) && first.matches('/').count() == 2 {
            name = Some(first.to_string());
        }
        let (Some(n), Some(i)) = (&name, line.find("time:")) else {
            continue;
        };
        let words: Vec<&str> = line[i + 5..]
            .split(['[', ']', ' '])
            .filter(|w| !w.is_empty())
            .collect();
        let nums: Vec<f64> = words
            .chunks(2)
            .filter_map(|c| {
                let v: f64 = c.first()?.parse().ok()?;
                let scale = match *c.get(1)? {
                    "ps" => 0.001,
                    "ns" => 1.0,
                    "µs" | "us" => 1e3,
                    "ms" => 1e6,
                    "s" => 1e9,
                    _ => return None,
                };
                Some(v * scale)
            })
            .collect();
        if let [lo, est, hi] = nums[..] {
            out.push((n.clone(), [lo, est, hi]));
        }
        name = None;
    }
    out
}

/// The host benches: event sends (2-level vs FIFO) and, where the branch has it,
/// the p2m change bench.
fn criterion_rows(rows: &mut Vec<Row>) -> Result<()> {
    criterion_bench(rows, "evtchn_send", |abi, ports| {
        format!("event send → pending + ack, {abi}, {ports} ports")
    })?;
    // 2-level has no 131072-port space.
    rows.push(Row::not_measured(
        "event send → pending + ack, 2-level, 131072 ports",
        "host (criterion)",
        "the 2-level ABI stops at 4096 ports",
    ));
    if project_root()
        .join("hypervisor/benches/p2m_change.rs")
        .is_file()
    {
        criterion_bench(rows, "p2m_change", |id, param| {
            format!("p2m change ({id}), {param}")
        })?;
    }
    Ok(())
}

/// The Linux kernel's own banner → "Run /init as init process", in ms: under
/// the hypervisor from the hypervisor's time stamps of the domU's two console
/// lines (the kernel's early clock is the pvclock, not zero-based); under plain
/// QEMU from the kernel's printk time stamp of the /init line (its clock starts
/// at the banner).
fn linux_to_init_ms(log: &BootLog, domu: &str) -> Option<f64> {
    let banner = log
        .lines
        .iter()
        .find(|(_, l)| l.contains(domu) && l.contains("Linux version"))?;
    let init = log
        .lines
        .iter()
        .find(|(_, l)| l.contains(domu) && l.contains("Run /init as init process"))?;
    if domu.is_empty() {
        // "[    5.123456] Run /init as init process"
        return stamp_ms(&init.1);
    }
    Some(stamp_ms(&init.1)? - stamp_ms(&banner.1)?)
}

fn linux_rows(
    rows: &mut Vec<Row>,
    boots: u32,
    guests: &[crate::ramdisk::Entry],
    dir: &Path,
) -> Result<()> {
    let figure = "Linux (Debian cloud 6.1) banner → Run /init";
    if boots == 0 {
        for place in ["QEMU TCG (SVM), PVH domU", "plain QEMU TCG -kernel vmlinux"] {
            rows.push(Row::not_measured(
                figure,
                place,
                "pass --linux N (needs cargo xtask linux-inputs)",
            ));
        }
        return Ok(());
    }
    eprintln!("xtask bench: {boots} × linux (a Linux PVH domU beside dom0)");
    let images = scenario_images(
        Some("linux"),
        TestMode::None,
        Firmwares {
            bios: false,
            uefi: false,
        },
        guests,
    )?;
    let timeout = Duration::from_secs(600);
    let mut ours = Vec::new();
    for i in 0..boots {
        let d = dir.join(format!("linux-{i}"));
        std::fs::create_dir_all(&d)?;
        // The domU's /init line is enough; dom0 ends the run later.
        let log = qemu_boot_until(direct(&images), 1, 1024, "Run /init as init", &d, timeout)?;
        ours.extend(linux_to_init_ms(&log, "d1: "));
    }
    rows.push(
        Row::new(
            figure,
            "QEMU TCG (SVM), PVH domU, 256 MiB, 1 vCPU",
            "ms",
            ours,
        )
        .note("hypervisor time stamps of the domU's banner and /init console lines"),
    );
    eprintln!("xtask bench: {boots} × the same kernel under plain QEMU");
    let inputs = crate::linux::inputs()?;
    let mut plain = Vec::new();
    for i in 0..boots {
        let d = dir.join(format!("linux-plain-{i}"));
        std::fs::create_dir_all(&d)?;
        let boot = QemuBoot::Direct {
            kernel: inputs.vmlinux.clone(),
            initrd: Some(inputs.initramfs.clone()),
            // The domU's log level, so both print the same lines.
            cmdline: Some("console=ttyS0 loglevel=7 rdinit=/init".into()),
        };
        let log = qemu_boot_until(boot, 1, 512, "Run /init as init", &d, timeout)?;
        plain.extend(linux_to_init_ms(&log, ""));
    }
    rows.push(
        Row::new(
            figure,
            "plain QEMU TCG -kernel vmlinux -initrd, 512 MiB",
            "ms",
            plain,
        )
        .note("the kernel's printk time stamp (from its banner)"),
    );
    Ok(())
}

fn size_rows(rows: &mut Vec<Row>, elf: &Path) -> Result<()> {
    let bytes = std::fs::read(elf).with_context(|| format!("reading {}", elf.display()))?;
    for (name, size) in elf_sections(&bytes)? {
        if [".text", ".rodata", ".data", ".bss"].contains(&name.as_str()) {
            rows.push(Row::new(
                &format!("hypervisor ELF {name}"),
                "size",
                "bytes",
                vec![size as f64],
            ));
        }
    }
    rows.push(Row::new(
        "hypervisor ELF file (with .symtab)",
        "size",
        "bytes",
        vec![bytes.len() as f64],
    ));
    Ok(())
}

pub fn run(args: BenchArgs) -> Result<()> {
    let runs = if args.quick { 1 } else { args.runs };
    let bochs_runs = runs.div_ceil(3);
    let started = Instant::now();
    let dir = target_dir().join("bench");
    std::fs::create_dir_all(&dir)?;
    let guests = build::guests()?;
    let qemu_timeout = Duration::from_secs(120);
    let mut rows = Vec::new();

    // Boot and hypercall figures: the `hello` scenario (dom0 + one domU).
    let hello = scenario_images(
        Some("hello"),
        TestMode::None,
        Firmwares {
            bios: true,
            uefi: false,
        },
        &guests,
    )?;
    let run_dir = |name: &str, i: u32| -> Result<PathBuf> {
        let d = dir.join(format!("{name}-{i}"));
        std::fs::create_dir_all(&d)?;
        Ok(d)
    };
    eprintln!("xtask bench: {runs} × hello, direct PVH boot");
    let pvh = collect(runs, |i| {
        qemu_boot(direct(&hello), 1, &run_dir("hello-pvh", i)?, qemu_timeout)
    })?;
    eprintln!("xtask bench: {runs} × hello, BIOS disk image");
    let bios_image = hello.bios.clone().context("no BIOS image")?;
    let bios = collect(runs, |i| {
        let d = run_dir("hello-bios", i)?;
        let disk = d.join("bios.img");
        std::fs::copy(&bios_image, &disk)?;
        qemu_boot(QemuBoot::Disk(disk), 1, &d, qemu_timeout)
    })?;
    boot_rows(&mut rows, "QEMU TCG, direct PVH boot", &pvh);
    boot_rows(
        &mut rows,
        "QEMU TCG, SeaBIOS + bootloader BIOS image",
        &bios,
    );
    let mut both = pvh;
    both.extend(bios);
    hypercall_rows(&mut rows, "QEMU TCG (SVM), hello dom0", &both, "");

    eprintln!("xtask bench: {runs} × the SVM self-test");
    let selftest = scenario_images(
        None,
        TestMode::SvmSelftest,
        Firmwares {
            bios: false,
            uefi: false,
        },
        &guests,
    )?;
    let st = collect(runs, |i| {
        qemu_boot(
            direct(&selftest),
            1,
            &run_dir("svm-selftest", i)?,
            qemu_timeout,
        )
    })?;
    hypercall_rows(
        &mut rows,
        "QEMU TCG (SVM), built-in self-test guest",
        &st,
        "svm.",
    );

    eprintln!("xtask bench: {runs} × evtchn");
    let evtchn = scenario_images(
        Some("evtchn"),
        TestMode::None,
        Firmwares {
            bios: false,
            uefi: false,
        },
        &guests,
    )?;
    let ev = collect(runs, |i| {
        qemu_boot(direct(&evtchn), 1, &run_dir("evtchn", i)?, qemu_timeout)
    })?;
    for (d, abi) in [("d1", "2-level domU"), ("d2", "FIFO domU")] {
        let us: Vec<f64> = ev
            .iter()
            .filter_map(|l| Some(l.measure(&format!("round-trip-cycles-{d}"))? / l.tsc_mhz()?))
            .collect();
        rows.push(Row::new(
            &format!("interdomain event round trip, dom0 ↔ {abi}"),
            "QEMU TCG (SVM), 1 CPU",
            "µs",
            us,
        ));
    }
    // Counted by the hypervisor (perfc, debug keys 'P' / 'p' from dom0 around
    // the ping-pong): per round trip, each side's vCPU.
    for (d, abi) in [(1u16, "2-level domU"), (2, "FIFO domU")] {
        let per: Vec<_> = ev.iter().filter_map(|l| l.perfc_per_round(d)).collect();
        for (side, pick) in [("dom0", 0usize), ("domU", 1)] {
            let of = |i: usize| -> Vec<f64> {
                per.iter()
                    .map(|p| if pick == 0 { p.0[i] } else { p.1[i] })
                    .collect()
            };
            rows.push(
                Row::new(
                    &format!("VM exits per event round trip, {side} side (dom0 ↔ {abi})"),
                    "QEMU TCG (SVM), 1 CPU",
                    "exits",
                    of(0),
                )
                .note(&format!(
                    "hypercall exits among them (median): {}; target 1",
                    Row::new("", "", "", of(1))
                        .stats()
                        .map_or("—".into(), |(_, m, _)| fmt_num(m))
                )),
            );
            rows.push(
                Row::new(
                    &format!("injections per event round trip, {side} side (dom0 ↔ {abi})"),
                    "QEMU TCG (SVM), 1 CPU",
                    "injections",
                    of(2),
                )
                .note("target 1"),
            );
        }
    }

    if args.quick {
        rows.push(Row::not_measured(
            "null hypercall, CPUID exit, boot",
            "Bochs tigerlake (VMX)",
            "--quick skips Bochs",
        ));
        rows.push(Row::not_measured(
            "event send, 2-level vs FIFO",
            "host (criterion)",
            "--quick skips the host bench",
        ));
    } else {
        eprintln!("xtask bench: {bochs_runs} × hello under Bochs tigerlake (VMX)");
        let vmx = collect(bochs_runs, |i| {
            bochs_boot(
                &bios_image,
                &run_dir("hello-vmx", i)?,
                Duration::from_secs(600),
            )
        })?;
        let place = "Bochs tigerlake (VMX), hello dom0";
        rows.push(
            Row::new(
                "Bochs start → READY (host wall clock)",
                place,
                "ms",
                vmx.iter().filter_map(|l| l.wall_ms("READY: ")).collect(),
            )
            .note("includes xvfb-run; serial polled every 20 ms"),
        );
        rows.push(Row::new(
            "Bochs start → dom0's first console line (host wall clock)",
            place,
            "ms",
            vmx.iter()
                .filter_map(|l| l.wall_ms(DOM0_FIRST_LINE))
                .collect(),
        ));
        hypercall_rows(&mut rows, place, &vmx, "");
        if let Some(r) = rows.iter_mut().rev().take(3).last() {
            r.note = "Bochs's TSC counts instructions, not time".into();
        }
        criterion_rows(&mut rows)?;
    }
    eprintln!("xtask bench: {runs} × xl (dom0's toolstack creates and destroys domUs)");
    let xl_images = scenario_images(
        Some("xl"),
        TestMode::None,
        Firmwares {
            bios: false,
            uefi: false,
        },
        &guests,
    )?;
    let xl = collect(runs, |i| {
        qemu_boot(direct(&xl_images), 1, &run_dir("xl", i)?, qemu_timeout)
    })?;
    let cycles: Vec<(f64, f64)> = xl.iter().flat_map(|l| l.xl_cycles("web")).collect();
    let place = "QEMU TCG (SVM), 1 CPU, xl scenario";
    rows.push(
        Row::new(
            "domain create + destroy from dom0 (xl, web.cfg: PVH, 16 MiB, 1 vCPU)",
            place,
            "ms",
            cycles.iter().map(|(c, d)| c + d).collect(),
        )
        .note("hypervisor time stamps; xl's create includes loading the kernel and its log lines at serial speed"),
    );
    rows.push(Row::new(
        "of which create (xl create → \"created\")",
        place,
        "ms",
        cycles.iter().map(|(c, _)| *c).collect(),
    ));
    rows.push(Row::new(
        "of which destroy (xl destroy → the hypervisor's \"destroyed\")",
        place,
        "ms",
        cycles.iter().map(|(_, d)| *d).collect(),
    ));
    linux_rows(&mut rows, args.linux, &guests, &dir)?;
    size_rows(&mut rows, &hello.kernel)?;

    let table = markdown(&rows, runs, bochs_runs);
    println!("{table}");
    std::fs::write(dir.join("bench.md"), &table)?;
    std::fs::write(dir.join("bench.json"), json(&rows))?;
    eprintln!(
        "xtask bench: {:.0} s; wrote {} and {}",
        started.elapsed().as_secs_f64(),
        dir.join("bench.md").display(),
        dir.join("bench.json").display()
    );
    if args.write_docs {
        let doc = docs_page(&table)?;
        let path = project_root().join("docs/benchmarks.md");
        std::fs::write(&path, doc)?;
        eprintln!("xtask bench: rewrote {}", path.display());
    }
    Ok(())
}

fn fmt_num(v: f64) -> String {
    if v.abs() >= 100.0 || v.fract() == 0.0 {
        format!("{v:.0}")
    } else {
        format!("{v:.2}")
    }
}

fn markdown(rows: &[Row], runs: u32, bochs_runs: u32) -> String {
    let mut s = format!(
        "QEMU figures over {runs} run(s), Bochs figures over {bochs_runs}; min / median / max.\n\n\
         | figure | where | unit | min | median | max | runs | note |\n\
         | --- | --- | --- | ---: | ---: | ---: | ---: | --- |\n"
    );
    for r in rows {
        let (min, med, max) = match r.stats() {
            Some((a, b, c)) => (fmt_num(a), fmt_num(b), fmt_num(c)),
            None => ("—".into(), "—".into(), "—".into()),
        };
        let note = if r.samples.is_empty() && r.note.is_empty() {
            "not measured: no sample (see target/bench/)".to_string()
        } else {
            r.note.clone()
        };
        s.push_str(&format!(
            "| {} | {} | {} | {} | {} | {} | {} | {} |\n",
            r.figure,
            r.place,
            r.unit,
            min,
            med,
            max,
            r.samples.len(),
            note
        ));
    }
    s
}

fn json_str(s: &str) -> String {
    let mut out = String::from("\"");
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if (c as u32) < 0x20 => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

fn json(rows: &[Row]) -> String {
    let mut s = String::from("[\n");
    for (i, r) in rows.iter().enumerate() {
        let stats = match r.stats() {
            Some((a, b, c)) => format!("\"min\": {a}, \"median\": {b}, \"max\": {c}"),
            None => "\"min\": null, \"median\": null, \"max\": null".into(),
        };
        let samples: Vec<String> = r.samples.iter().map(|v| v.to_string()).collect();
        s.push_str(&format!(
            "  {{\"figure\": {}, \"where\": {}, \"unit\": {}, {stats}, \"samples\": [{}], \"note\": {}}}{}\n",
            json_str(&r.figure),
            json_str(&r.place),
            json_str(&r.unit),
            samples.join(", "),
            json_str(&r.note),
            if i + 1 < rows.len() { "," } else { "" }
        ));
    }
    s.push_str("]\n");
    s
}

/// The machine, for the docs page: CPU model, cores, QEMU and Bochs versions.
fn machine() -> String {
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let model = cpuinfo
        .lines()
        .find_map(|l| l.strip_prefix("model name"))
        .map(|l| l.trim_start_matches([' ', '\t', ':']).to_string())
        .unwrap_or_else(|| "unknown CPU".into());
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    let version = |prog: &str, arg: &str| {
        std::process::Command::new(prog)
            .arg(arg)
            .stdin(Stdio::null())
            .output()
            .ok()
            .and_then(|o| {
                String::from_utf8_lossy(&o.stdout)
                    .lines()
                    .find(|l| !l.trim().is_empty())
                    .map(|l| l.trim().to_string())
            })
            .unwrap_or_else(|| format!("{prog}: not found"))
    };
    let load = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    format!(
        "{cores} cores ({model}); {}; Bochs from Debian's `bochs` package; load average at the end: {}",
        version("qemu-system-x86_64", "--version"),
        load.split_whitespace().take(3).collect::<Vec<_>>().join(" ")
    )
}

fn docs_page(table: &str) -> Result<String> {
    let date = std::process::Command::new("date")
        .args(["-u", "+%Y-%m-%d %H:%M UTC"])
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .unwrap_or_default();
    let notes_path = project_root().join("docs/benchmarks-notes.md");
    let notes = std::fs::read_to_string(&notes_path).unwrap_or_default();
    Ok(format!(
        "# Measured numbers\n\n\
         Generated by `cargo xtask bench --write-docs` on {date}, on {machine}. \
         Speed targets are checked here, never by timed tests. Raw samples: \
         `target/bench/bench.json`.\n\n\
         The notes below the table (`docs/benchmarks-notes.md`, kept by hand) say where the time goes.\n\n\
         {table}\n{notes}",
        machine = machine()
    ))
}

/// Section sizes of an ELF64 little-endian file: (name, size) for each section.
pub fn elf_sections(elf: &[u8]) -> Result<Vec<(String, u64)>> {
    let u16_at = |o: usize| -> Result<u16> {
        Ok(u16::from_le_bytes(
            elf.get(o..o + 2).context("ELF truncated")?.try_into()?,
        ))
    };
    let u32_at = |o: usize| -> Result<u32> {
        Ok(u32::from_le_bytes(
            elf.get(o..o + 4).context("ELF truncated")?.try_into()?,
        ))
    };
    let u64_at = |o: usize| -> Result<u64> {
        Ok(u64::from_le_bytes(
            elf.get(o..o + 8).context("ELF truncated")?.try_into()?,
        ))
    };
    if elf.get(..4) != Some(b"\x7fELF") || elf.get(4) != Some(&2) || elf.get(5) != Some(&1) {
        bail!("not a little-endian ELF64 file");
    }
    let shoff = usize::try_from(u64_at(0x28)?)?;
    let shentsize = usize::from(u16_at(0x3a)?);
    let shnum = usize::from(u16_at(0x3c)?);
    let shstrndx = usize::from(u16_at(0x3e)?);
    let section = |i: usize| shoff + i * shentsize;
    let strtab = usize::try_from(u64_at(section(shstrndx) + 0x18)?)?;
    let mut out = Vec::with_capacity(shnum);
    for i in 0..shnum {
        let base = section(i);
        let name_off = strtab + usize::try_from(u32_at(base)?)?;
        let name_bytes = elf.get(name_off..).context("section name out of range")?;
        let end = name_bytes
            .iter()
            .position(|&b| b == 0)
            .unwrap_or(name_bytes.len());
        let name = String::from_utf8_lossy(&name_bytes[..end]).into_owned();
        out.push((name, u64_at(base + 0x20)?));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_stamps_measures_and_the_tsc_rate() {
        let log = BootLog {
            lines: vec![
                (
                    5.0,
                    "[    0.322491] INFO  cpu0: hypervisor 0.1.0 starting (tsc 2615 MHz)".into(),
                ),
                (
                    9.0,
                    "[    0.941415] INFO  cpu0: d0: MEASURE null-hypercall 126154 tsc-cycles"
                        .into(),
                ),
            ],
        };
        assert_eq!(stamp_ms("[    1.250000] INFO x"), Some(1250.0));
        assert_eq!(stamp_ms("no stamp"), None);
        assert_eq!(log.measure("null-hypercall"), Some(126154.0));
        assert_eq!(log.measure("cpuid-exit"), None);
        assert_eq!(log.tsc_mhz(), Some(2615.0));
        assert_eq!(log.wall_ms("MEASURE"), Some(9.0));
    }

    #[test]
    fn reads_linux_banner_to_init() {
        let ours = "[   19.983951] INFO  cpu0: d1: [    0.000000] Linux version 6.1.0
[   48.486618] INFO  cpu0: d1: [   43.522974] Run /init as init process";
        let plain = "[    0.000000] Linux version 6.1.0
[    5.250000] Run /init as init process";
        let log = |t: &str| BootLog {
            lines: t.lines().map(|l| (0.0, l.to_string())).collect(),
        };
        let ms = linux_to_init_ms(&log(ours), "d1: ").unwrap();
        assert!((ms - 28502.667).abs() < 1e-3, "{ms}");
        assert_eq!(linux_to_init_ms(&log(plain), ""), Some(5250.0));
        assert_eq!(linux_to_init_ms(&log(plain), "d1: "), None);
    }

    #[test]
    fn reads_xl_create_destroy_cycles() {
        let text = "[    0.904000] INFO  cpu0: d0: xl> create web.cfg
[    0.932000] INFO  cpu0: d1: created (flags 0x3, 1 vCPUs max)
[    1.291000] INFO  cpu0: d0: xl: created web as d1 (entry 0x100000)
[    1.900000] INFO  cpu0: d0: xl> destroy web
[    1.907000] INFO  cpu0: d1: destroyed
[    1.939000] INFO  cpu0: d0: xl> create web.cfg
[    2.165000] INFO  cpu0: d0: xl: created web as d3 (entry 0x100000)
[    2.304000] INFO  cpu0: d0: xl> destroy web
[    2.314000] INFO  cpu0: d3: destroyed";
        let log = BootLog {
            lines: text.lines().map(|l| (0.0, l.to_string())).collect(),
        };
        let c = log.xl_cycles("web");
        assert_eq!(c.len(), 2);
        assert!((c[0].0 - 387.0).abs() < 1e-6 && (c[0].1 - 7.0).abs() < 1e-6);
        assert!((c[1].0 - 226.0).abs() < 1e-6 && (c[1].1 - 10.0).abs() < 1e-6);
        assert!(log.xl_cycles("db").is_empty());
    }

    #[test]
    fn reads_the_perf_counters_per_round_trip() {
        let text =
            "[    1.0] INFO  cpu0: perfc: per-vCPU counters since the last reset (debug key 'P')
[    1.1] INFO  cpu0: perfc d0v0: exits 65 hypercall 64 hlt 0 interrupt 1 injections 32
[    1.2] INFO  cpu0: perfc d1v0: exits 96 hypercall 64 hlt 0 interrupt 0 injections 32
[    1.3] INFO  cpu0: d0: evtchn: perfc above: d1 ping-pong, 32 round trips";
        let log = BootLog {
            lines: text.lines().map(|l| (0.0, l.to_string())).collect(),
        };
        let (d0, du) = log.perfc_per_round(1).unwrap();
        assert_eq!(d0, [65.0 / 32.0, 2.0, 1.0]);
        assert_eq!(du, [3.0, 2.0, 1.0]);
        assert_eq!(log.perfc_per_round(2), None);
    }

    #[test]
    fn table_and_json_say_not_measured_and_give_min_median_max() {
        let rows = vec![
            Row::new("a", "here", "ms", vec![3.0, 1.0, 2.0]),
            Row::not_measured("b", "there", "waits for issue 11"),
        ];
        let t = markdown(&rows, 3, 1);
        assert!(t.contains("| a | here | ms | 1 | 2 | 3 | 3 |"), "{t}");
        assert!(
            t.contains("| b | there |  | — | — | — | 0 | not measured: waits for issue 11 |"),
            "{t}"
        );
        let j = json(&rows);
        assert!(j.contains("\"min\": 1, \"median\": 2, \"max\": 3"), "{j}");
        assert!(j.contains("\"min\": null"), "{j}");
    }

    #[test]
    fn reads_criterion_results_on_one_or_two_lines() {
        let text = "\
evtchn_send_to_pending/2-level/64
                        time:   [75.100 ns 76.200 ns 77.500 ns]
                        change: [-1.0% +0.5% +2.0%] (p = 0.50 > 0.05)
evtchn_send_to_pending/FIFO/131072 time:   [1.2000 µs 1.5000 µs 1.8000 µs]
Found 3 outliers among 50 measurements (6.00%)
";
        let r = parse_criterion(text);
        assert_eq!(r.len(), 2, "{r:?}");
        assert_eq!(r[0].0, "evtchn_send_to_pending/2-level/64");
        assert_eq!(r[0].1, [75.1, 76.2, 77.5]);
        assert_eq!(r[1].0, "evtchn_send_to_pending/FIFO/131072");
        assert_eq!(r[1].1, [1200.0, 1500.0, 1800.0]);
    }

    #[test]
    fn reads_section_sizes_of_this_test_binary() {
        // The running test binary is an ELF64 with a .text section.
        let exe = std::fs::read(std::env::current_exe().unwrap()).unwrap();
        let sections = elf_sections(&exe).unwrap();
        let text = sections.iter().find(|(n, _)| n == ".text").unwrap();
        assert!(text.1 > 0);
        assert!(elf_sections(b"not an elf").is_err());
    }
}
