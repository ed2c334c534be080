//! `cargo xtask qemu-test`: boots every scenario (or the ones named), each with
//! its own disk image, timeout and log, and judges it from the serial log.
//!
//! Logs: `target/qemu-test/<scenario>.log` (the serial console) and
//! `target/qemu-test/<scenario>/` (images, emulator output, Bochs files).

use std::collections::hash_map::Entry;
use std::collections::HashMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};

use crate::build::{self, Firmwares, Images};
use crate::emulator::{self, Accel, BochsConfig, Emulator, QemuBoot, QemuConfig, Serial};
use crate::ramdisk::TestMode;
use crate::scenario::{self, End, Firmware, Scenario};
use crate::util::{self, target_dir, Ending};

/// Guest memory for every scenario.
const MEMORY_MIB: u32 = 256;
/// Machine memory for the Linux domU scenarios: the 55 MB ramdisk stays
/// loaded beside a 256 MiB domU and dom0.
const LINUX_MEMORY_MIB: u32 = 1024;

/// The emulated machine's memory for scenario `s`.
fn memory_mib(s: &Scenario) -> u32 {
    if s.domains.is_some_and(|d| d.starts_with("linux")) {
        LINUX_MEMORY_MIB
    } else {
        MEMORY_MIB
    }
}
/// How long an emulator may keep running after the kernel printed `EXIT:`.
const LINGER: Duration = Duration::from_secs(10);

#[derive(Debug, Default, Clone, Copy)]
pub struct Tally {
    pub passed: u32,
    pub failed: u32,
}

/// Prints the scenario table (opt-in ones marked).
pub fn list() {
    for s in scenario::all() {
        let mark = if s.opt_in { " (opt-in)" } else { "" };
        println!("{:<22} {}{}", s.name, s.about, mark);
    }
}

/// Picks the scenarios whose names are in `filter`; when it is empty, every
/// scenario that is not opt-in (opt-in ones run only when named).
pub fn select(filter: &[String]) -> Result<Vec<Scenario>> {
    let all = scenario::all();
    if filter.is_empty() {
        return Ok(all.into_iter().filter(|s| !s.opt_in).collect());
    }
    let mut picked = Vec::new();
    for name in filter {
        match all.iter().find(|s| s.name == name) {
            Some(s) => picked.push(s.clone()),
            None => {
                let names: Vec<_> = all.iter().map(|s| s.name).collect();
                bail!("no scenario `{name}`; there are: {}", names.join(", "));
            }
        }
    }
    Ok(picked)
}

/// Builds everything, runs `scenarios`, prints one line per scenario and
/// returns the tally (the caller prints the closing `N passed, N failed`).
pub fn run(scenarios: &[Scenario]) -> Result<Tally> {
    let kernel = build::hypervisor()?;
    // Guests only go into the ramdisks of scenarios with a domains.cfg: the
    // boot-only scenarios keep their two-entry ramdisk.
    let guests = if scenarios
        .iter()
        .any(|s| s.domains.is_some() || s.guest_kernel.is_some())
    {
        build::guests()?
    } else {
        Vec::new()
    };
    // The image builder (a long first build) only when some scenario boots a
    // disk image: direct (PVH) boots need none.
    let needs = |f: Firmware| scenarios.iter().any(|s| s.firmware == f);
    let disks = Firmwares {
        bios: needs(Firmware::Bios),
        uefi: needs(Firmware::Uefi),
    };
    let builder = match disks.bios || disks.uefi {
        true => Some(build::image_builder()?),
        false => None,
    };
    let root = target_dir().join("qemu-test");
    std::fs::create_dir_all(&root).with_context(|| format!("creating {}", root.display()))?;

    // One image set per (boot.cmd variant, domains.cfg), shared by the
    // scenarios that use it.
    let mut images: HashMap<(TestMode, Option<&str>), Images> = HashMap::new();
    for s in scenarios {
        if let Entry::Vacant(slot) = images.entry((s.test, s.domains)) {
            let (dir, entries) = match s.domains {
                None => (root.join("images").join(s.test.as_str()), Vec::new()),
                Some(cfg) => {
                    let mut entries = build::scenario_files(cfg)?;
                    // domains.cfg comes first.
                    let linux = crate::linux::ramdisk_entries(&entries[0].data)?;
                    entries.extend(guests.iter().cloned());
                    entries.extend(linux);
                    (
                        root.join("images")
                            .join(format!("{}-{}", s.test.as_str(), cfg)),
                        entries,
                    )
                }
            };
            // Disk images only of the kinds some scenario boots.
            let which = Firmwares {
                bios: disks.bios,
                uefi: disks.uefi,
            };
            slot.insert(build::images(
                builder.as_deref(),
                &kernel,
                s.test,
                entries,
                &dir,
                which,
            )?);
        }
    }

    // The test guest's ELF for the scenarios that boot it directly, written once.
    let guest_elf = match scenarios.iter().any(|s| s.guest_kernel.is_some()) {
        true => Some(guest_kernel_path(&guests, &root)?),
        false => None,
    };
    // Independent scenarios run `jobs` at a time; the long Bochs ones start
    // first so the short QEMU ones fill the gaps.
    let jobs = jobs().min(scenarios.len().max(1));
    PARALLEL.store(jobs > 1, Ordering::Relaxed);
    let mut order: Vec<&Scenario> = scenarios.iter().collect();
    if jobs > 1 {
        order.sort_by_key(|s| s.emulator != Emulator::Bochs);
    }
    let queue = Mutex::new(order.into_iter());
    let results = Mutex::new((Tally::default(), Vec::<(String, Duration)>::new()));
    std::thread::scope(|scope| {
        for _ in 0..jobs {
            scope.spawn(|| {
                while let Some(s) = queue.lock().map(|mut q| q.next()).ok().flatten() {
                    // Sharing the CPUs, an emulator runs up to `jobs` times slower:
                    // its limits on time and silence grow alike.
                    let mut scaled = s.clone();
                    let factor = u32::try_from(jobs).unwrap_or(1);
                    scaled.timeout *= factor;
                    scaled.silence *= factor;
                    let s = &scaled;
                    let mut tally = Tally::default();
                    let mut out = String::new();
                    let mut times = Vec::new();
                    let set = &images[&(s.test, s.domains)];
                    match boot_of(s, set, guest_elf.as_deref()) {
                        Ok(boot) => run_scenario(s, &boot, &root, &mut tally, &mut out, &mut times),
                        Err(e) => {
                            tally.failed += 1;
                            let _ = writeln!(out, "FAIL {}: could not run: {e:#}", s.name);
                        }
                    }
                    print!("{out}");
                    if let Ok(mut r) = results.lock() {
                        r.0.passed += tally.passed;
                        r.0.failed += tally.failed;
                        r.1.extend(times);
                    }
                }
            });
        }
    });
    let (tally, mut times) = results.into_inner().unwrap_or_default();
    times.sort_by_key(|t| std::cmp::Reverse(t.1));
    if times.len() > 1 {
        let slowest: Vec<String> = times
            .iter()
            .take(5)
            .map(|(n, t)| format!("{n} {:.1} s", t.as_secs_f64()))
            .collect();
        println!(
            "slowest scenarios ({jobs} at a time): {}",
            slowest.join(", ")
        );
    }
    Ok(tally)
}

/// How many scenarios run at once: `$XTASK_JOBS`, else the number of CPUs (at
/// most 4: every emulator is a busy process of its own).
fn jobs() -> usize {
    std::env::var("XTASK_JOBS")
        .ok()
        .and_then(|v| v.parse().ok())
        .filter(|&n: &usize| n >= 1)
        .unwrap_or_else(|| {
            std::thread::available_parallelism()
                .map_or(1, |n| n.get())
                .min(4)
        })
}

/// Set when scenarios run in parallel (Bochs launches are then spaced out).
static PARALLEL: AtomicBool = AtomicBool::new(false);
/// Held while a Bochs (`xvfb-run -a`) starts: two starting together can pick
/// the same X display number.
static BOCHS_START: Mutex<()> = Mutex::new(());

/// What `s` boots from its image set.
fn boot_of<'a>(s: &'a Scenario, set: &'a Images, guest_elf: Option<&'a Path>) -> Result<Boot<'a>> {
    Ok(match (s.guest_kernel, s.firmware) {
        (Some(cmdline), _) => Boot {
            what: BootWhat::Direct {
                kernel: guest_elf.context("no test guest ELF")?,
                initrd: None,
                cmdline: Some(cmdline),
            },
            ramdisk_entries: 0,
        },
        (None, Firmware::Pvh) => Boot {
            what: BootWhat::Direct {
                kernel: &set.kernel,
                initrd: Some(&set.pvh_ramdisk),
                cmdline: None,
            },
            ramdisk_entries: set.pvh_ramdisk_entries,
        },
        (None, Firmware::Bios | Firmware::Uefi) => Boot {
            what: BootWhat::Disk(
                match s.firmware {
                    Firmware::Uefi => set.uefi.as_ref(),
                    _ => set.bios.as_ref(),
                }
                .context("image set lacks the scenario's firmware")?,
            ),
            ramdisk_entries: set.ramdisk_entries,
        },
    })
}

/// Runs one scenario (and, for the VMX self-test, its KVM twin), writing its
/// report lines to `out` and its wall time to `times`.
fn run_scenario(
    s: &Scenario,
    boot: &Boot<'_>,
    root: &Path,
    tally: &mut Tally,
    out: &mut String,
    times: &mut Vec<(String, Duration)>,
) {
    eprintln!("xtask: qemu-test {} ... ({})", s.name, s.about);
    run_and_count(s, s.name, boot, root, Accel::Tcg, tally, out, times);
    // The VMX self-test also runs under QEMU + KVM with nested VMX where the
    // host offers it (the users' deployment); elsewhere say why not.
    if s.test == TestMode::VmxSelftest && s.emulator == Emulator::Bochs && s.smp == 1 {
        match emulator::detect_accel() {
            (Accel::Kvm, why) => {
                let mut k = s.clone();
                k.emulator = Emulator::Qemu;
                eprintln!(
                    "xtask: qemu-test kvm-vmx-selftest ... (QEMU + KVM, -cpu host,+vmx: {why})"
                );
                run_and_count(
                    &k,
                    "kvm-vmx-selftest",
                    boot,
                    root,
                    Accel::Kvm,
                    tally,
                    out,
                    times,
                );
            }
            (Accel::Tcg, why) => {
                let _ = writeln!(
                    out,
                    "SKIP kvm-vmx-selftest: the QEMU + KVM nested-VMX path was not run: {why}"
                );
            }
        }
    }
}

/// What one scenario boots and how many files its ramdisk holds (for
/// `{entries}` patterns).
struct Boot<'a> {
    what: BootWhat<'a>,
    ramdisk_entries: usize,
}

/// A disk image, or a PVH ELF (the hypervisor or the test guest) loaded by QEMU.
#[derive(Clone, Copy)]
enum BootWhat<'a> {
    Disk(&'a Path),
    Direct {
        kernel: &'a Path,
        initrd: Option<&'a Path>,
        cmdline: Option<&'a str>,
    },
}

/// Runs one scenario (under `name`, with `accel` for QEMU) and counts its verdict.
#[allow(clippy::too_many_arguments)]
fn run_and_count(
    s: &Scenario,
    name: &str,
    boot: &Boot<'_>,
    root: &Path,
    accel: Accel,
    tally: &mut Tally,
    out: &mut String,
    times: &mut Vec<(String, Duration)>,
) {
    {
        let mut result = run_one(s, name, boot, root, accel);
        // A run whose serial log stayed empty never reached our kernel (the
        // firmware or the emulator stalled: seen a few times on a loaded 2-core
        // host). That says nothing about the hypervisor, so it gets one more try,
        // announced; a kernel that prints nothing fails both.
        if let Ok((verdict, log, _)) = &result {
            let empty = std::fs::metadata(log)
                .map(|m| m.len() == 0)
                .unwrap_or(false);
            if !verdict.passed() && empty {
                let _ = writeln!(out, "RETRY {name}: no serial output at all (the firmware never reached the kernel); running it once more");
                result = run_one(s, name, boot, root, accel);
            }
        }
        match result {
            Ok((verdict, log, took)) => {
                times.push((name.to_string(), took));
                if verdict.passed() {
                    tally.passed += 1;
                    let _ = writeln!(out, "PASS {} ({:.1} s)", name, took.as_secs_f64());
                } else {
                    tally.failed += 1;
                    let _ = writeln!(
                        out,
                        "FAIL {} ({:.1} s), log: {}",
                        name,
                        took.as_secs_f64(),
                        log.display()
                    );
                    for reason in &verdict.failures {
                        let _ = writeln!(out, "    - {reason}");
                    }
                    print_tail(&log, 25, out);
                }
            }
            Err(e) => {
                tally.failed += 1;
                let _ = writeln!(out, "FAIL {}: could not run: {e:#}", name);
            }
        }
    }
}

/// Writes the test guest ELF (the first guest entry) for direct `-kernel` boots.
fn guest_kernel_path(guests: &[crate::ramdisk::Entry], root: &Path) -> Result<PathBuf> {
    let guest = guests.first().context("no test guest was built")?;
    let path = root.join(format!("{}.elf", guest.name));
    std::fs::write(&path, &guest.data).with_context(|| format!("writing {}", path.display()))?;
    Ok(path)
}

/// Boots one scenario; returns its verdict, its serial log path and how long it
/// took.
fn run_one(
    s: &Scenario,
    name: &str,
    boot: &Boot<'_>,
    root: &Path,
    accel: Accel,
) -> Result<(scenario::Verdict, PathBuf, Duration)> {
    let ramdisk_entries = boot.ramdisk_entries;
    let dir = root.join(name);
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    let serial_log = root.join(format!("{name}.log"));
    let _ = std::fs::remove_file(&serial_log);
    // A disk is copied per scenario: QEMU and Bochs lock or write it. Direct
    // boots read their files only.
    let qemu_boot = match boot.what {
        BootWhat::Disk(image) => {
            let disk = dir.join(image.file_name().context("image has no file name")?);
            std::fs::copy(image, &disk).with_context(|| format!("copying {}", image.display()))?;
            QemuBoot::Disk(disk)
        }
        BootWhat::Direct {
            kernel,
            initrd,
            cmdline,
        } => QemuBoot::Direct {
            kernel: kernel.to_path_buf(),
            initrd: initrd.map(Path::to_path_buf),
            cmdline: cmdline.map(str::to_string),
        },
    };

    let mut cmd = match s.emulator {
        Emulator::Qemu => QemuConfig {
            boot: qemu_boot,
            uefi_firmware: match s.firmware {
                Firmware::Uefi => Some(emulator::ovmf()?),
                Firmware::Bios | Firmware::Pvh => None,
            },
            smp: s.smp,
            memory_mib: memory_mib(s),
            accel,
            serial: Serial::File(serial_log.clone()),
            gdb: false,
            tcg_single_thread: scenario::TCG_SINGLE_THREAD.contains(&s.name),
            extra: Vec::new(),
        }
        .command(),
        Emulator::Bochs => {
            let QemuBoot::Disk(disk) = qemu_boot else {
                bail!("Bochs scenarios boot the BIOS disk image only");
            };
            if s.firmware != Firmware::Bios {
                bail!("Bochs scenarios boot BIOS images only");
            }
            BochsConfig {
                image: disk,
                cpu_model: s.bochs_model.to_string(),
                smp: s.smp,
                memory_mib: memory_mib(s),
                serial_log: serial_log.clone(),
                dir: dir.clone(),
            }
            .prepare(false)?
        }
    };
    let out_path = dir.join("emulator.out");
    let out = std::fs::File::create(&out_path)
        .with_context(|| format!("creating {}", out_path.display()))?;
    cmd.stdout(out.try_clone()?).stderr(out);
    std::fs::write(dir.join("command.txt"), util::display_command(&cmd) + "\n")?;

    let started = Instant::now();
    let mut child = if s.emulator == Emulator::Bochs && PARALLEL.load(Ordering::Relaxed) {
        let _one_at_a_time = BOCHS_START.lock();
        let child = util::spawn_group(&mut cmd)?;
        // Give xvfb-run time to claim its display before the next one looks.
        std::thread::sleep(Duration::from_millis(1500));
        child
    } else {
        util::spawn_group(&mut cmd)?
    };
    let mut exit_seen: Option<Instant> = None;
    let mut last_len = 0u64;
    let mut last_growth = Instant::now();
    let mut silent = false;
    let ending = util::wait_or_kill(&mut child, started, s.timeout, || {
        let len = std::fs::metadata(&serial_log).map(|m| m.len()).unwrap_or(0);
        if len != last_len {
            last_len = len;
            last_growth = Instant::now();
            if exit_seen.is_none() {
                let log = std::fs::read_to_string(&serial_log).unwrap_or_default();
                if log.lines().any(|l| scenario::line_matches(l, "EXIT: ")) {
                    exit_seen = Some(Instant::now());
                }
            }
        }
        if exit_seen.is_some_and(|t| t.elapsed() >= LINGER) {
            return true;
        }
        // Until the first byte the firmware (and, on disk boots, the bootloader's
        // stages) runs: under Bochs on a loaded host that alone can outlast
        // `silence`, so it gets three times as long.
        let limit = if last_len == 0 {
            s.silence * 3
        } else {
            s.silence
        };
        silent = exit_seen.is_none() && last_growth.elapsed() >= limit;
        silent
    })?;
    let took = started.elapsed();
    if s.emulator == Emulator::Bochs {
        util::kill_leftovers(&child);
    }
    let end = match ending {
        Ending::Exited(status) => End::Exited(status.code()),
        Ending::Killed(_) if exit_seen.is_some() => End::Lingered,
        Ending::Killed(_) if silent => End::Silent,
        Ending::Killed(_) => End::TimedOut,
    };
    let log_bytes = std::fs::read(&serial_log).unwrap_or_default();
    let log = String::from_utf8_lossy(&log_bytes);
    let mut verdict = scenario::judge(s, &log, end, ramdisk_entries);
    if log_bytes.is_empty() {
        verdict.failures.push(format!(
            "the serial log is empty; emulator output: {}",
            out_path.display()
        ));
    }
    Ok((verdict, serial_log, took))
}

/// Writes the last `n` lines of a log, indented, so a CI log shows the failure.
fn print_tail(path: &Path, n: usize, out: &mut String) {
    let Ok(bytes) = std::fs::read(path) else {
        return;
    };
    let text = String::from_utf8_lossy(&bytes);
    let lines: Vec<&str> = text.lines().collect();
    let start = lines.len().saturating_sub(n);
    let _ = writeln!(
        out,
        "    --- last {} lines of {} ---",
        lines.len() - start,
        path.display()
    );
    for line in &lines[start..] {
        let _ = writeln!(out, "    | {line}");
    }
}
