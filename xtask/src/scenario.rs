//! The `qemu-test` scenarios and the verdict on a finished boot.
//!
//! A scenario names an emulator, a firmware, a CPU count, the ramdisk's
//! `boot.cmd` test mode, a timeout, patterns that must appear in the serial log
//! in order, patterns that must not appear, and the expected outcome. Patterns
//! are matched against single log lines; `*` stands for any run of characters
//! and a pattern matches anywhere in the line.

use std::time::Duration;

use crate::emulator::{
    Emulator, BOCHS_SVM_MODEL, BOCHS_VMX_MODEL, QEMU_EXIT_FAILURE, QEMU_EXIT_SUCCESS,
};
use crate::ramdisk::TestMode;

/// Which firmware boots the disk image.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Firmware {
    Bios,
    Uefi,
}

/// What the kernel is expected to report at the end.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// `EXIT: success` (QEMU status 33).
    Success,
    /// `EXIT: failure (...)` (QEMU status 35): the scenario provokes a failure and
    /// passes when the failure is reported cleanly.
    Failure,
}

#[derive(Debug, Clone)]
pub struct Scenario {
    pub name: &'static str,
    pub emulator: Emulator,
    pub firmware: Firmware,
    pub smp: u32,
    /// Bochs CPU model (`tigerlake`, `ryzen`); QEMU always uses TCG's EPYC.
    pub bochs_model: &'static str,
    pub test: TestMode,
    pub timeout: Duration,
    /// The longest stretch without new serial output before the emulator is
    /// killed: a kernel that hangs fails in seconds, not at `timeout`.
    pub silence: Duration,
    /// Each must match a line after the line the previous one matched.
    pub required: &'static [&'static str],
    /// None may match any line.
    pub forbidden: &'static [&'static str],
    pub outcome: Outcome,
    pub about: &'static str,
}

/// Lines no healthy boot prints.
const HEALTHY_FORBIDDEN: &[&str] = &["EXCEPTION:", "PANIC", "EXIT: failure", "ERROR "];

/// A normal single-CPU boot under QEMU TCG (SVM + NPT): every subsystem the
/// kernel brings up reports, in boot order.
const QEMU_BOOT_1CPU: &[&str] = &[
    "memory: * MiB usable in * regions",
    "virt: SVM npt=1",
    "acpi: 1 cpus, lapic 0x",
    "cpu0 online (apic id 0)",
    "apic timer: * Hz calibrated",
    "apic timer: ticking (* ticks)",
    "ramdisk: 2 entries",
    "ramdisk: boot.cmd (* bytes)",
    "ramdisk: README (* bytes)",
    "READY: 1/1 cpus online, * ms since reset",
    "EXIT: success",
];

const QEMU_BOOT_2CPU: &[&str] = &[
    "memory: * MiB usable in * regions",
    "virt: SVM npt=1",
    "acpi: 2 cpus, lapic 0x",
    "cpu1 online (apic id 1)",
    "apic timer: * Hz calibrated",
    "apic timer: ticking (* ticks)",
    "ramdisk: 2 entries",
    "READY: 2/2 cpus online, * ms since reset",
    "EXIT: success",
];

const BOCHS_VMX_BOOT: &[&str] = &[
    "memory: * MiB usable in * regions",
    "virt: VMX ept=1",
    "acpi: 1 cpus, lapic 0x",
    "cpu0 online (apic id 0)",
    "apic timer: * Hz calibrated",
    "apic timer: ticking (* ticks)",
    "ramdisk: 2 entries",
    "ramdisk: boot.cmd (* bytes)",
    "READY: 1/1 cpus online",
    "EXIT: success",
];

const BOCHS_SVM_BOOT: &[&str] = &[
    "memory: * MiB usable in * regions",
    "virt: SVM npt=1",
    "cpu0 online (apic id 0)",
    "apic timer: ticking (* ticks)",
    "READY: 1/1 cpus online",
    "EXIT: success",
];

/// The scenario table, in the order `qemu-test` runs it.
pub fn all() -> Vec<Scenario> {
    let secs = Duration::from_secs;
    vec![
        Scenario {
            name: "qemu-bios",
            emulator: Emulator::Qemu,
            firmware: Firmware::Bios,
            smp: 1,
            bochs_model: "",
            test: TestMode::None,
            timeout: secs(60),
            silence: secs(20),
            required: QEMU_BOOT_1CPU,
            forbidden: HEALTHY_FORBIDDEN,
            outcome: Outcome::Success,
            about: "QEMU TCG (EPYC: SVM+NPT), SeaBIOS, 1 CPU: full boot report",
        },
        Scenario {
            name: "qemu-uefi",
            emulator: Emulator::Qemu,
            firmware: Firmware::Uefi,
            smp: 1,
            bochs_model: "",
            test: TestMode::None,
            timeout: secs(90),
            silence: secs(20),
            required: QEMU_BOOT_1CPU,
            forbidden: HEALTHY_FORBIDDEN,
            outcome: Outcome::Success,
            about: "QEMU TCG, OVMF (UEFI), 1 CPU: full boot report",
        },
        Scenario {
            name: "qemu-bios-smp2",
            emulator: Emulator::Qemu,
            firmware: Firmware::Bios,
            smp: 2,
            bochs_model: "",
            test: TestMode::None,
            timeout: secs(60),
            silence: secs(20),
            required: QEMU_BOOT_2CPU,
            forbidden: HEALTHY_FORBIDDEN,
            outcome: Outcome::Success,
            about: "QEMU TCG, SeaBIOS, 2 CPUs: the AP comes online",
        },
        Scenario {
            name: "qemu-fault",
            emulator: Emulator::Qemu,
            firmware: Firmware::Bios,
            smp: 1,
            bochs_model: "",
            test: TestMode::FaultPagefault,
            timeout: secs(60),
            silence: secs(20),
            required: &[
                "EXCEPTION: #PF (vector 14) error=0x* rip=0x* cr2=0x",
                "backtrace:",
                "EXIT: failure (",
            ],
            forbidden: &["EXIT: success"],
            outcome: Outcome::Failure,
            about:
                "boot.cmd test=fault-pagefault: the #PF is reported and QEMU ends with status 35",
        },
        Scenario {
            name: "qemu-fault-ud",
            emulator: Emulator::Qemu,
            firmware: Firmware::Bios,
            smp: 1,
            bochs_model: "",
            test: TestMode::FaultUd,
            timeout: secs(60),
            silence: secs(20),
            required: &["EXCEPTION: #UD (vector 6)", "backtrace:", "EXIT: failure ("],
            forbidden: &["EXIT: success"],
            outcome: Outcome::Failure,
            about: "boot.cmd test=fault-ud: the #UD is reported and QEMU ends with status 35",
        },
        Scenario {
            name: "qemu-panic",
            emulator: Emulator::Qemu,
            firmware: Firmware::Bios,
            smp: 1,
            bochs_model: "",
            test: TestMode::Panic,
            timeout: secs(60),
            silence: secs(20),
            required: &["PANIC: ", "EXIT: failure ("],
            forbidden: &["EXIT: success"],
            outcome: Outcome::Failure,
            about: "boot.cmd test=panic: the panic message is printed and QEMU ends with status 35",
        },
        Scenario {
            name: "qemu-svm-selftest",
            emulator: Emulator::Qemu,
            firmware: Firmware::Bios,
            smp: 1,
            bochs_model: "",
            test: TestMode::SvmSelftest,
            timeout: secs(90),
            silence: secs(30),
            required: &[
                "virt: SVM npt=1",
                "READY: 1/1 cpus online",
                "svm: enabled on cpu0",
                "svm-selftest: console_io from the guest",
                "d0: svm-selftest: port 0xE9 from the guest",
                "RESULT svm-selftest.shutdown PASS",
                "RESULT svm-selftest.upcall-vector PASS",
                "RESULT svm-selftest.altp2m-ve PASS",
                "RESULT svm-selftest.cpl3-eperm PASS",
                "MEASURE svm.null_hypercall * cycles",
                "MEASURE svm.cpuid_exit * cycles",
                "d1 crashed: write access to gpa 0x300000 outside its memory",
                "RESULT svm-selftest.npf-crash PASS",
                "d2 crashed: triple fault",
                "RESULT svm-selftest.callback-vector-level PASS",
                "svm-selftest: PASS",
                "EXIT: success",
            ],
            forbidden: &["EXCEPTION:", "PANIC", "EXIT: failure", "RESULT * FAIL"],
            outcome: Outcome::Success,
            about: "boot.cmd test=svm-selftest: built-in 64-bit guests on the SVM backend: CPUID, hypercall page, VMMCALL, CPL3 -EPERM, I/O, HLT, upcall vector, level-like callback vector, altp2m #VE, NPF and triple-fault crashes, null hypercall vs CPUID cost",
        },
        Scenario {
            name: "bochs-bios",
            emulator: Emulator::Bochs,
            firmware: Firmware::Bios,
            smp: 1,
            bochs_model: BOCHS_VMX_MODEL,
            test: TestMode::None,
            timeout: secs(180),
            silence: secs(40),
            required: BOCHS_VMX_BOOT,
            forbidden: HEALTHY_FORBIDDEN,
            outcome: Outcome::Success,
            about: "Bochs (tigerlake: VMX+EPT), Bochs BIOS, 1 CPU: full boot report",
        },
        Scenario {
            name: "bochs-vmx-selftest",
            emulator: Emulator::Bochs,
            firmware: Firmware::Bios,
            smp: 1,
            bochs_model: BOCHS_VMX_MODEL,
            test: TestMode::VmxSelftest,
            timeout: secs(180),
            silence: secs(40),
            required: &[
                "vmx: cpu0 in VMX root operation",
                "vmx-selftest: altp2m-hw-setup PASS",
                "vmx-selftest: cpuid-exit PASS",
                "vmx-selftest: vmcall-exit PASS",
                "vmx-selftest: io-exit PASS",
                "vmx-selftest: vmfunc-switch-without-exit PASS",
                "vmx-selftest: hardware-ve PASS",
                "vmx-selftest: write-completed-in-view-0 PASS",
                "vmx-selftest: hlt-exit PASS",
                "vmx-selftest: ept-violation-exit PASS",
                "vmx-selftest: triple-fault-exit PASS",
                "vmx: VM entry failed: exit reason 0x80000021",
                "vmx-selftest: failed-entry-reported PASS",
                "vmx-selftest: DONE * passed, 0 failed",
                "EXIT: success",
            ],
            // The deliberately failed VM entry logs at ERROR level; anything else
            // that goes wrong shows up as a FAIL line or a missing PASS.
            forbidden: &["EXCEPTION:", "PANIC", "EXIT: failure", " FAIL"],
            outcome: Outcome::Success,
            about: "Bochs tigerlake, boot.cmd test=vmx-selftest: the VMX backend's built-in guest (CPUID/VMCALL/I/O/HLT exits, unrestricted guest, VMFUNC view switch and hardware #VE, EPT violation, triple fault, failed-entry report)",
        },
        Scenario {
            name: "bochs-vmx-selftest-smp2",
            emulator: Emulator::Bochs,
            firmware: Firmware::Bios,
            smp: 2,
            bochs_model: BOCHS_VMX_MODEL,
            test: TestMode::VmxSelftest,
            timeout: secs(180),
            silence: secs(40),
            required: &[
                "READY: 2/2 cpus online",
                "vmx: cpu0 in VMX root operation",
                "vmx-selftest: altp2m-hw-setup PASS",
                "vmx-selftest: cpuid-exit PASS",
                "vmx-selftest: vmcall-exit PASS",
                "vmx-selftest: io-exit PASS",
                "vmx-selftest: vmfunc-switch-without-exit PASS",
                "vmx-selftest: hardware-ve PASS",
                "vmx-selftest: write-completed-in-view-0 PASS",
                "vmx-selftest: hlt-exit PASS",
                "vmx-selftest: ept-violation-exit PASS",
                "vmx-selftest: triple-fault-exit PASS",
                "vmx: VM entry failed: exit reason 0x80000021",
                "vmx-selftest: failed-entry-reported PASS",
                "vmx-selftest: DONE * passed, 0 failed",
                "EXIT: success",
            ],
            // The deliberately failed VM entry logs at ERROR level; anything else
            // that goes wrong shows up as a FAIL line or a missing PASS.
            forbidden: &["EXCEPTION:", "PANIC", "EXIT: failure", " FAIL"],
            outcome: Outcome::Success,
            about: "the same with 2 CPUs online: the VMCS is cleared after every exit and relaunched (the path a vCPU that moves between CPUs takes); the VMX backend's built-in guest (CPUID/VMCALL/I/O/HLT exits, unrestricted guest, VMFUNC view switch and hardware #VE, EPT violation, triple fault, failed-entry report)",
        },
        Scenario {
            name: "bochs-ryzen",
            emulator: Emulator::Bochs,
            firmware: Firmware::Bios,
            smp: 1,
            bochs_model: BOCHS_SVM_MODEL,
            test: TestMode::None,
            timeout: secs(180),
            silence: secs(40),
            required: BOCHS_SVM_BOOT,
            forbidden: HEALTHY_FORBIDDEN,
            outcome: Outcome::Success,
            about: "Bochs (ryzen: SVM+NPT, NRIPS), Bochs BIOS: a second SVM implementation",
        },
    ]
}

/// Does `pattern` (with `*` wildcards) occur somewhere in `line`?
pub fn line_matches(line: &str, pattern: &str) -> bool {
    let mut parts = pattern.split('*');
    // The first part may sit anywhere; each later part anywhere after it.
    let first = parts.next().unwrap_or("");
    let Some(mut pos) = line.find(first).map(|i| i + first.len()) else {
        return false;
    };
    for part in parts {
        match line[pos..].find(part) {
            Some(i) => pos += i + part.len(),
            None => return false,
        }
    }
    true
}

/// How the emulator ended, as far as the verdict cares.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum End {
    /// Exited with this status (`None`: killed by a signal).
    Exited(Option<i32>),
    /// We killed it when the timeout ran out.
    TimedOut,
    /// We killed it after `silence` without new serial output.
    Silent,
    /// We killed it because it had printed its `EXIT:` line but did not end.
    Lingered,
}

/// The verdict: pass, or every reason it failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verdict {
    pub failures: Vec<String>,
}

impl Verdict {
    pub fn passed(&self) -> bool {
        self.failures.is_empty()
    }
}

/// Judges one finished boot from its serial log and how the emulator ended.
pub fn judge(scenario: &Scenario, log: &str, end: End) -> Verdict {
    let mut failures = Vec::new();
    let lines: Vec<&str> = log.lines().collect();

    let mut next = 0;
    for pattern in scenario.required {
        match lines[next..].iter().position(|l| line_matches(l, pattern)) {
            Some(i) => next += i + 1,
            None => {
                let anywhere = lines.iter().any(|l| line_matches(l, pattern));
                failures.push(if anywhere {
                    format!("`{pattern}` appears, but out of order")
                } else {
                    format!("`{pattern}` not found")
                });
            }
        }
    }
    for pattern in scenario.forbidden {
        if let Some(line) = lines.iter().find(|l| line_matches(l, pattern)) {
            failures.push(format!("forbidden `{pattern}` found: {}", line.trim()));
        }
    }

    match (scenario.emulator, end) {
        (_, End::TimedOut) => failures.push(format!(
            "timed out after {} s (emulator killed)",
            scenario.timeout.as_secs()
        )),
        (_, End::Silent) => failures.push(format!(
            "no serial output for {} s (emulator killed)",
            scenario.silence.as_secs()
        )),
        (Emulator::Qemu, End::Lingered) => {
            failures.push("QEMU printed EXIT: but did not exit (killed)".into())
        }
        (Emulator::Qemu, End::Exited(code)) => {
            let want = match scenario.outcome {
                Outcome::Success => QEMU_EXIT_SUCCESS,
                Outcome::Failure => QEMU_EXIT_FAILURE,
            };
            if code != Some(want) {
                let got = code.map_or("a signal".to_string(), |c| c.to_string());
                failures.push(format!("QEMU exit status {got}, expected {want}"));
            }
        }
        // Bochs's exit status says nothing (the shutdown port ends it with 1):
        // the log alone decides. Killing it after its EXIT line is fine.
        (Emulator::Bochs, End::Exited(_) | End::Lingered) => {}
    }
    Verdict { failures }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scenario(name: &str) -> Scenario {
        all().into_iter().find(|s| s.name == name).unwrap()
    }

    const GOOD_BOOT: &str = "\
INFO: bootloader line without timestamp
[    0.000100] INFO  cpu0: memory: 500 MiB usable in 4 regions
[    0.000200] INFO  cpu0: virt: SVM npt=1 nrips=0 asids=16
[    0.000300] INFO  cpu0: acpi: 1 cpus, lapic 0xfee00000, ioapic 0xfec00000
[    0.000400] INFO  cpu0: cpu0 online (apic id 0)
[    0.010000] INFO  cpu0: apic timer: 1000000000 Hz calibrated
[    0.020000] INFO  cpu0: apic timer: ticking (10 ticks)
[    0.020100] INFO  cpu0: ramdisk: 2 entries
[    0.020200] INFO  cpu0: ramdisk: boot.cmd (10 bytes)
[    0.020300] INFO  cpu0: ramdisk: README (140 bytes)
[    0.020400] INFO  cpu0: READY: 1/1 cpus online, 1234 ms since reset
[    0.020500] INFO  cpu0: EXIT: success
";

    #[test]
    fn wildcards_match_within_a_line() {
        assert!(line_matches(
            "a memory: 12 MiB usable in 3 regions",
            "memory: * MiB usable in * regions"
        ));
        assert!(!line_matches(
            "memory: 12 KiB usable in 3 regions",
            "memory: * MiB usable in * regions"
        ));
        assert!(line_matches("xyz", ""));
        assert!(line_matches("ticking (5 ticks)", "ticking (* ticks)"));
        assert!(!line_matches("ticks) ticking (", "ticking (* ticks)"));
    }

    #[test]
    fn a_good_boot_passes() {
        let v = judge(&scenario("qemu-bios"), GOOD_BOOT, End::Exited(Some(33)));
        assert!(v.passed(), "{:?}", v.failures);
    }

    #[test]
    fn wrong_exit_status_timeout_and_missing_lines_fail() {
        let s = scenario("qemu-bios");
        let v = judge(&s, GOOD_BOOT, End::Exited(Some(35)));
        assert_eq!(v.failures, ["QEMU exit status 35, expected 33"]);
        let v = judge(&s, GOOD_BOOT, End::TimedOut);
        assert!(v.failures[0].starts_with("timed out"), "{:?}", v.failures);
        let truncated: String = GOOD_BOOT
            .lines()
            .take(5)
            .map(|l| format!("{l}\n"))
            .collect();
        let v = judge(&s, &truncated, End::Exited(Some(33)));
        assert!(
            v.failures.iter().any(|f| f.contains("READY")),
            "{:?}",
            v.failures
        );
    }

    #[test]
    fn order_and_forbidden_lines_count() {
        let s = scenario("qemu-bios");
        let swapped = GOOD_BOOT
            .replace("virt: SVM", "XX")
            .replace("EXIT: success", "EXIT: success\nvirt: SVM npt=1");
        let v = judge(&s, &swapped, End::Exited(Some(33)));
        assert!(
            v.failures.iter().any(|f| f.contains("out of order")),
            "{:?}",
            v.failures
        );
        let faulty = format!("{GOOD_BOOT}[ 1.0] ERROR cpu0: EXCEPTION: #GP (vector 13)\n");
        let v = judge(&s, &faulty, End::Exited(Some(33)));
        assert!(
            v.failures
                .iter()
                .any(|f| f.contains("forbidden `EXCEPTION:`")),
            "{:?}",
            v.failures
        );
    }

    #[test]
    fn an_expected_clean_fault_passes_and_a_silent_one_does_not() {
        let s = scenario("qemu-fault");
        let log = "\
[    0.1] ERROR cpu0: EXCEPTION: #PF (vector 14) error=0x2 rip=0xffff800000001234 cr2=0xdead0000
[    0.1] ERROR cpu0: backtrace:
[    0.1] ERROR cpu0:   0xffff800000001234
[    0.1] ERROR cpu0: EXIT: failure (exception)
";
        assert!(judge(&s, log, End::Exited(Some(35))).passed());
        assert!(!judge(&s, log, End::Exited(Some(33))).passed());
        assert!(!judge(&s, "", End::Exited(Some(35))).passed());
    }

    #[test]
    fn bochs_is_judged_from_the_log_alone() {
        let s = scenario("bochs-bios");
        let log = GOOD_BOOT.replace("virt: SVM npt=1", "virt: VMX ept=1 vpid=1");
        assert!(judge(&s, &log, End::Exited(Some(1))).passed());
        assert!(judge(&s, &log, End::Lingered).passed());
        assert!(!judge(&s, &log, End::TimedOut).passed());
        assert!(!judge(&s, &log, End::Silent).passed());
        assert!(!judge(&s, GOOD_BOOT, End::Exited(Some(0))).passed());
    }

    #[test]
    fn names_are_unique() {
        let mut names: Vec<_> = all().iter().map(|s| s.name).collect();
        names.sort();
        names.dedup();
        assert_eq!(names.len(), all().len());
    }
}
