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

/// How the hypervisor is booted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Firmware {
    /// The `bootloader` BIOS disk image (SeaBIOS under QEMU, the Bochs BIOS).
    Bios,
    /// The `bootloader` UEFI disk image with OVMF (QEMU only).
    Uefi,
    /// No disk image: QEMU loads the hypervisor ELF as a PVH kernel (`-kernel`,
    /// the ramdisk as `-initrd`). QEMU's default; Bochs cannot do it.
    Pvh,
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
    /// Bochs CPU model (`tigerlake`, `ryzen`); QEMU always uses TCG's `max`.
    pub bochs_model: &'static str,
    pub test: TestMode,
    pub timeout: Duration,
    /// The longest stretch without new serial output before the emulator is
    /// killed: a kernel that hangs fails in seconds, not at `timeout`.
    pub silence: Duration,
    /// Each must match a line after the line the previous one matched.
    pub required: &'static [&'static str],
    /// Each must match some line, in any order (domU output interleaves).
    pub anywhere: &'static [&'static str],
    /// None may match any line.
    pub forbidden: &'static [&'static str],
    /// `tests-qemu/scenarios/<name>/domains.cfg` for the ramdisk (with the
    /// guest images), or none for a hypervisor-only boot.
    pub domains: Option<&'static str>,
    /// `Some(cmdline)`: no hypervisor: QEMU boots the test guest ELF itself
    /// (`-kernel testguest -append cmdline`, PVH), to check the guest runtime.
    pub guest_kernel: Option<&'static str>,
    /// Runs only when named (`cargo xtask qemu-test <name>`): the hypervisor
    /// side it needs has not landed on this branch yet.
    pub opt_in: bool,
    pub outcome: Outcome,
    pub about: &'static str,
}

/// Scenarios QEMU runs with one TCG thread for all vCPUs. QEMU 7.2's
/// multi-threaded TCG (Debian 12's) loses the host's translation after an SVM
/// #VMEXIT when two vCPUs take intercepted-MSR exits as fast as they can: the
/// first host fetch after VMRUN page-faults (error code 0x10, not present) while
/// the host page tables, dumped from the paused machine, are intact. Single-
/// threaded TCG still interleaves the two CPUs, so the SMP paths still run.
/// `docs/cpu-policy.md` has the evidence; `cpu-policy-smp2-mttcg` reproduces it.
pub const TCG_SINGLE_THREAD: &[&str] = &["cpu-policy-smp2"];

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
    "ramdisk: {entries} entries",
    "ramdisk: boot.cmd (* bytes)",
    "ramdisk: README (* bytes)",
    "READY: 1/1 cpus online, * ms since reset",
    "EXIT: success",
];

/// The direct (PVH) boot: the entry's report, then the normal boot report.
const QEMU_PVH_1CPU: &[&str] = &[
    "boot: PVH direct entry: * memory regions, ramdisk * bytes at 0x*, symbols from the ramdisk's hypervisor.elf",
    "memory: * MiB usable in * regions",
    "virt: SVM npt=1",
    "acpi: 1 cpus, lapic 0x",
    "cpu0 online (apic id 0)",
    "apic timer: ticking (* ticks)",
    "ramdisk: {entries} entries",
    "ramdisk: boot.cmd (* bytes)",
    "ramdisk: hypervisor.elf (* bytes)",
    "READY: 1/1 cpus online, * ms since reset",
    "EXIT: success",
];

const QEMU_PVH_2CPU: &[&str] = &[
    "boot: PVH direct entry: * memory regions",
    "acpi: 2 cpus, lapic 0x",
    "cpu1 online (apic id 1)",
    "READY: 2/2 cpus online, * ms since reset",
    "EXIT: success",
];

const QEMU_BOOT_2CPU: &[&str] = &[
    "memory: * MiB usable in * regions",
    "virt: SVM npt=1",
    "acpi: 2 cpus, lapic 0x",
    "cpu1 online (apic id 1)",
    "apic timer: * Hz calibrated",
    "apic timer: ticking (* ticks)",
    "ramdisk: {entries} entries",
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
    "ramdisk: {entries} entries",
    "ramdisk: boot.cmd (* bytes)",
    "READY: 1/1 cpus online",
    "EXIT: success",
];

/// The VMX backend's built-in self-test guest, check by check (`test=vmx-selftest`).
const VMX_SELFTEST: &[&str] = &[
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
    let mut table = vec![
        Scenario {
            name: "qemu-bios",
            emulator: Emulator::Qemu,
            firmware: Firmware::Bios,
            smp: 1,
            bochs_model: "",
            test: TestMode::None,
            timeout: secs(60),
            silence: secs(30),
            required: QEMU_BOOT_1CPU,
            anywhere: &[],
            forbidden: HEALTHY_FORBIDDEN,
            domains: None,
            guest_kernel: None,
            opt_in: false,
            outcome: Outcome::Success,
            about: "QEMU TCG (-cpu max: AMD SVM+NPT), SeaBIOS, 1 CPU: full boot report",
        },
        Scenario {
            name: "qemu-uefi",
            emulator: Emulator::Qemu,
            firmware: Firmware::Uefi,
            smp: 1,
            bochs_model: "",
            test: TestMode::None,
            timeout: secs(90),
            silence: secs(30),
            required: QEMU_BOOT_1CPU,
            anywhere: &[],
            forbidden: HEALTHY_FORBIDDEN,
            domains: None,
            guest_kernel: None,
            opt_in: false,
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
            silence: secs(30),
            required: QEMU_BOOT_2CPU,
            anywhere: &[],
            forbidden: HEALTHY_FORBIDDEN,
            domains: None,
            guest_kernel: None,
            opt_in: false,
            outcome: Outcome::Success,
            about: "QEMU TCG, SeaBIOS, 2 CPUs: the AP comes online",
        },
        Scenario {
            name: "qemu-pvh",
            emulator: Emulator::Qemu,
            firmware: Firmware::Pvh,
            smp: 1,
            bochs_model: "",
            test: TestMode::None,
            timeout: secs(60),
            silence: secs(30),
            required: QEMU_PVH_1CPU,
            anywhere: &[],
            forbidden: HEALTHY_FORBIDDEN,
            domains: None,
            guest_kernel: None,
            opt_in: false,
            outcome: Outcome::Success,
            about: "QEMU TCG, direct PVH boot (-kernel hypervisor -initrd ramdisk), 1 CPU: the start info normalised, full boot report",
        },
        Scenario {
            name: "qemu-pvh-smp2",
            emulator: Emulator::Qemu,
            firmware: Firmware::Pvh,
            smp: 2,
            bochs_model: "",
            test: TestMode::None,
            timeout: secs(60),
            silence: secs(30),
            required: QEMU_PVH_2CPU,
            anywhere: &[],
            forbidden: HEALTHY_FORBIDDEN,
            domains: None,
            guest_kernel: None,
            opt_in: false,
            outcome: Outcome::Success,
            about: "QEMU TCG, direct PVH boot, 2 CPUs: the AP comes online from the direct entry's page tables",
        },
        Scenario {
            name: "qemu-fault",
            emulator: Emulator::Qemu,
            firmware: Firmware::Pvh,
            smp: 1,
            bochs_model: "",
            test: TestMode::FaultPagefault,
            timeout: secs(60),
            silence: secs(30),
            required: &[
                "EXCEPTION: #PF (vector 14) error=0x* rip=0x* cr2=0x",
                "backtrace:",
                "#0 0x* hypervisor::arch::x86_64::boot::run_test+0x",
                "EXIT: failure (",
            ],
            anywhere: &[],
            forbidden: &["EXIT: success"],
            domains: None,
            guest_kernel: None,
            opt_in: false,
            outcome: Outcome::Failure,
            about:
                "boot.cmd test=fault-pagefault: the #PF is reported with a symbolised backtrace and QEMU ends with status 35",
        },
        Scenario {
            name: "qemu-fault-ud",
            emulator: Emulator::Qemu,
            firmware: Firmware::Pvh,
            smp: 1,
            bochs_model: "",
            test: TestMode::FaultUd,
            timeout: secs(60),
            silence: secs(30),
            required: &["EXCEPTION: #UD (vector 6)", "backtrace:", "EXIT: failure ("],
            anywhere: &[],
            forbidden: &["EXIT: success"],
            domains: None,
            guest_kernel: None,
            opt_in: false,
            outcome: Outcome::Failure,
            about: "boot.cmd test=fault-ud: the #UD is reported and QEMU ends with status 35",
        },
        Scenario {
            name: "qemu-panic",
            emulator: Emulator::Qemu,
            firmware: Firmware::Pvh,
            smp: 1,
            bochs_model: "",
            test: TestMode::Panic,
            timeout: secs(60),
            silence: secs(30),
            required: &["PANIC: ", "EXIT: failure ("],
            anywhere: &[],
            forbidden: &["EXIT: success"],
            domains: None,
            guest_kernel: None,
            opt_in: false,
            outcome: Outcome::Failure,
            about: "boot.cmd test=panic: the panic message is printed and QEMU ends with status 35",
        },
        Scenario {
            name: "qemu-svm-selftest",
            emulator: Emulator::Qemu,
            firmware: Firmware::Pvh,
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
            anywhere: &[],
            forbidden: &["EXCEPTION:", "PANIC", "EXIT: failure", "RESULT * FAIL"],
            domains: None,
            guest_kernel: None,
            opt_in: false,
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
            silence: secs(60),
            required: BOCHS_VMX_BOOT,
            anywhere: &[],
            forbidden: HEALTHY_FORBIDDEN,
            domains: None,
            guest_kernel: None,
            opt_in: false,
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
            required: VMX_SELFTEST,
            // The deliberately failed VM entry logs at ERROR level; anything else
            // that goes wrong shows up as a FAIL line or a missing PASS.
            anywhere: &[],
            forbidden: &["EXCEPTION:", "PANIC", "EXIT: failure", " FAIL"],
            domains: None,
            guest_kernel: None,
            opt_in: false,
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
            required: VMX_SELFTEST,
            // The deliberately failed VM entry logs at ERROR level; anything else
            // that goes wrong shows up as a FAIL line or a missing PASS.
            anywhere: &["READY: 2/2 cpus online"],
            forbidden: &["EXCEPTION:", "PANIC", "EXIT: failure", " FAIL"],
            domains: None,
            guest_kernel: None,
            opt_in: false,
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
            silence: secs(60),
            required: BOCHS_SVM_BOOT,
            anywhere: &[],
            forbidden: HEALTHY_FORBIDDEN,
            domains: None,
            guest_kernel: None,
            opt_in: false,
            outcome: Outcome::Success,
            about: "Bochs (ryzen: SVM+NPT, NRIPS), Bochs BIOS: a second SVM implementation",
        },
        Scenario {
            name: "guest-rt-selftest",
            emulator: Emulator::Qemu,
            firmware: Firmware::Pvh,
            smp: 1,
            bochs_model: "",
            test: TestMode::None,
            timeout: secs(60),
            silence: secs(20),
            required: &[
                "guest-rt: not under Xen",
                "testguest: role selftest",
                "RESULT selftest.idt-int3 PASS",
                "RESULT selftest.cpl3-round-trip PASS",
                "SCENARIO selftest DONE",
                "EXIT: success",
            ],
            anywhere: &[],
            forbidden: GUEST_FORBIDDEN,
            outcome: Outcome::Success,
            domains: None,
            guest_kernel: Some("role=selftest"),
            opt_in: false,
            about: "no hypervisor: QEMU boots the test guest itself (PVH -kernel): IDT, ring 3 and back",
        },
    ];
    for g in GUESTS {
        for smp in [1, 2] {
            let mut s = guest_scenario(g, smp);
            if s.name == "cpu-policy-smp2" {
                // The same with one host thread per vCPU: reproduces the QEMU
                // 7.2 multi-threaded TCG fault (see TCG_SINGLE_THREAD).
                table.push(Scenario {
                    name: "cpu-policy-smp2-mttcg",
                    opt_in: true,
                    about: "cpu-policy-smp2 under multi-threaded TCG: reproduces QEMU 7.2's lost host translation after #VMEXIT (docs/cpu-policy.md)",
                    ..s.clone()
                });
            }
            // The hypercall storm with real parallelism runs by default (issue
            // 14); its 1-CPU, Bochs and VMX variants stay opt-in (CI time).
            if g.name == "hostile" && smp == 2 {
                s.opt_in = false;
            }
            table.push(s);
        }
        table.push(guest_scenario_bochs(g));
        let mut vmx = guest_scenario_vmx(g);
        // The xenstore scenarios on Bochs take minutes: opt-in.
        if matches!(g.name, "xenstore" | "xsa175") {
            vmx.opt_in = true;
        }
        table.push(vmx);
    }
    table.extend(linux_scenarios());
    table
}

/// Lines no Linux scenario may print: the guest scenarios' list plus a Linux
/// oops or panic.
const LINUX_FORBIDDEN: &[&str] = &[
    "RESULT * FAIL",
    "PANIC",
    "EXCEPTION",
    "EXIT: failure",
    "Kernel panic",
    "Oops:",
    "BUG:",
    "d1 crashed",
];

/// dom0's side of every Linux scenario: dom0's `xl` builds the domU from
/// linux.cfg, attaches to its console (xenconsoled relays it as `[d1 linux]`
/// lines), the runner types a command at `/init`'s prompt and sees its answer,
/// `poweroff -f` reaches dom0 as `SHUTDOWN_poweroff` and `on_poweroff` destroys
/// the domain.
const LINUX_DOM0: &[&str] = &[
    "xl: 4 modules",
    "xl: created linux as d1 *",
    "RESULT xl.1-create PASS",
    "[d1 linux] init: userspace up: Linux version 6.1*",
    "[d1 linux] init: waiting for a command on the console",
    "[d1 linux] console-input: 42",
    "[d1 linux] init: poweroff",
    "xl: linux (d1) shut down: poweroff",
    "xl: linux (d1) destroyed (on_poweroff=destroy)",
    "RESULT xl.2-console PASS",
    "RESULT xl.3-list PASS",
    "SCENARIO xl DONE",
    "dom0 shutdown: poweroff (code 0)",
    "EXIT: success",
];

/// The Linux domU scenarios (issue 12). Each needs `cargo xtask linux-inputs`
/// (run by `deps`) for the kernel and initramfs.
fn linux_scenarios() -> Vec<Scenario> {
    // QEMU loads the hypervisor and its 55 MB ramdisk directly (PVH boot, no
    // firmware): the fastest path. (OVMF also reads it in seconds; the BIOS
    // stage-2 loader needs minutes: it reads 16 KiB per 2 KiB FAT cluster.)
    let base = Scenario {
        name: "linux",
        emulator: Emulator::Qemu,
        firmware: Firmware::Pvh,
        smp: 1,
        bochs_model: "",
        test: TestMode::None,
        timeout: Duration::from_secs(600),
        silence: Duration::from_secs(120),
        required: LINUX_DOM0,
        anywhere: &[
            "*Linux version 6.1*",
            "*xen:events: Using FIFO-based ABI",
            "[d1 linux] init: cpus online: 0",
        ],
        forbidden: LINUX_FORBIDDEN,
        outcome: Outcome::Success,
        domains: Some("linux"),
        guest_kernel: None,
        opt_in: false,
        about: "Debian's cloud kernel as a PVH domU built by dom0's xl (FIFO event channels): hvc0 served by xenconsoled, a typed command answered, poweroff reaches dom0",
    };
    vec![
        base.clone(),
        Scenario {
            name: "linux-2l",
            domains: Some("linux-2l"),
            anywhere: &[
                "*Linux version 6.1*",
                "*xen:events: Using 2-level ABI",
                "[d1 linux] init: cpus online: 0",
            ],
            about: "the Linux domU without evtchn_fifo: the 2-level ABI",
            ..base.clone()
        },
        Scenario {
            name: "linux-smp2",
            smp: 2,
            domains: Some("linux-smp2"),
            anywhere: &["*Linux version 6.1*", "[d1 linux] init: cpus online: 0-1"],
            about: "the Linux domU with 2 vCPUs at -smp 2 (opt-in: needs the vlapic's INIT/SIPI, not there yet)",
            opt_in: true,
            ..base.clone()
        },
        Scenario {
            name: "linux-vmx",
            emulator: Emulator::Bochs,
            firmware: Firmware::Bios,
            bochs_model: BOCHS_VMX_MODEL,
            timeout: Duration::from_secs(1800),
            silence: Duration::from_secs(300),
            about:
                "the Linux domU on the VMX backend, Bochs tigerlake (opt-in: slow, and the runner types no console input into Bochs)",
            opt_in: true,
            ..base
        },
    ]
}

/// What the runner types into the serial line of scenario `name` (QEMU only):
/// when a line matches the first pattern, the second string is written once.
/// The Linux scenarios answer `/init`'s prompt with a shell command whose
/// output (`console-input: 42`) proves the domU read it from its console.
pub fn typed_input(name: &str) -> Option<(&'static str, &'static str)> {
    name.starts_with("linux").then_some((
        "init: waiting for a command on the console",
        "echo console-input: $((6*7))\n",
    ))
}

/// Lines no guest scenario may print: a failed check, a guest or hypervisor
/// panic or exception, a failing end. (Not `ERROR `: the hypervisor logs a
/// crashed domU as an error in the isolation scenario.)
const GUEST_FORBIDDEN: &[&str] = &["RESULT * FAIL", "PANIC", "EXCEPTION", "EXIT: failure"];

/// One issue-7 guest scenario (run with `-smp 1` as `<name>` and `-smp 2` as
/// `<name>-smp2`): its domains.cfg directory, dom0's ordered lines and the
/// lines that may come in any order (domU output, hypervisor domU events).
struct GuestScenario {
    name: &'static str,
    dom0: &'static [&'static str],
    anywhere: &'static [&'static str],
    opt_in: bool,
    about: &'static str,
}

/// The issue-7 scenarios (they need the SVM backend, the PVH loader and the
/// scheduler: branches `svm` and `domains`, merged here). Set `opt_in` for a
/// scenario the merged hypervisor cannot run yet.
const GUESTS: &[GuestScenario] = &[
    GuestScenario {
        name: "hello",
        dom0: &[
            "RESULT hello.cpuid-signature PASS",
            "RESULT hello.dom0-cpuid-max-leaf PASS",
            "RESULT hello.dom0-cpuid-version PASS",
            "RESULT hello.dom0-cpuid-hypercall-msr PASS",
            "RESULT hello.dom0-cpuid-domid PASS",
            "RESULT hello.xen-version-direct PASS",
            "RESULT hello.hypercall-page PASS",
            "RESULT hello.xen-version-via-page PASS",
            "hello: a console_io write from dom0",
            "RESULT hello.console-io-write PASS",
            "MEASURE null-hypercall * tsc-cycles",
            "MEASURE cpuid-exit * tsc-cycles",
            "RESULT hello.domu-shutdown-code PASS",
            "SCENARIO hello DONE",
            "dom0 shutdown: poweroff (code 0)",
            "EXIT: success",
        ],
        anywhere: &[
            "RESULT hello.d1 PASS domu-cpuid-max-leaf domu-cpuid-version domu-cpuid-hypercall-msr domu-cpuid-domid domu-xen-version",
            "d1 shutdown: reboot",
        ],
        opt_in: false,
        about: "hello: CPUID leaves, hypercall page, xen_version, console_io, shutdown codes",
    },
    GuestScenario {
        name: "errors",
        dom0: &[
            "RESULT errors.hypercall-60-enosys PASS",
            "RESULT errors.hypercall-38-tmem-enosys PASS",
            "RESULT errors.set-trap-table-enosys PASS",
            "RESULT errors.xen-version-99-enosys PASS",
            "RESULT errors.sched-op-999-enosys PASS",
            "RESULT errors.memory-op-999-enosys PASS",
            "RESULT errors.console-io-99-enosys PASS",
            "RESULT errors.xen-version-extraversion-efault PASS",
            "RESULT errors.console-io-write-efault PASS",
            "RESULT errors.domctl-efault PASS",
            "RESULT errors.dom0-cpl3-hypercall-eperm PASS",
            "RESULT errors.dom0-still-works PASS",
            "RESULT errors.domu-exit-code PASS",
            "SCENARIO errors DONE",
            "EXIT: success",
        ],
        anywhere: &[
            "RESULT errors.d1 PASS domu-domctl-eperm domu-cpl3-hypercall-eperm domu-unknown-hypercall-enosys",
        ],
        opt_in: false,
        about: "errors: -ENOSYS, -EFAULT, -EPERM for domctl from a domU and for CPL3",
    },
    GuestScenario {
        name: "evtchn",
        dom0: &[
            "RESULT evtchn.bound-d1 PASS",
            "RESULT evtchn.debug-keys-d1 PASS",
            "RESULT evtchn.ping-pong-d1 PASS",
            "RESULT evtchn.bound-d2 PASS",
            "RESULT evtchn.debug-keys-d2 PASS",
            "RESULT evtchn.ping-pong-d2 PASS",
            "RESULT evtchn.bound-d3 PASS",
            "RESULT evtchn.debug-keys-d3 PASS",
            "RESULT evtchn.ping-pong-d3 PASS",
            "RESULT evtchn.clean-exit-d1 PASS",
            "RESULT evtchn.clean-exit-d2 PASS",
            "RESULT evtchn.clean-exit-d3 PASS",
            "SCENARIO evtchn DONE",
            "EXIT: success",
        ],
        anywhere: &[
            "RESULT evtchn.d1 PASS cpuid-flag vector-refused init-control-enosys fallback-2level priority-enosys pong",
            "RESULT evtchn.d2 PASS cpuid-flag vector-refused fifo fifo-priority expand-array pong",
            "RESULT evtchn.d3 PASS cpuid-flag fifo fifo-priority expand-array pong",
        ],
        opt_in: false,
        about: "event channels: dom0 ping-pong with a 2-level domU (FIFO -ENOSYS), a FIFO domU, a per-vCPU-vector domU",
    },
    GuestScenario {
        name: "altp2m",
        dom0: &[
            "RESULT altp2m.external-dom0-drives-views PASS",
            "RESULT altp2m.limited-dom0-activates PASS",
            "RESULT altp2m.clean-exit-d1 PASS",
            "RESULT altp2m.clean-exit-d2 PASS",
            "RESULT altp2m.clean-exit-d3 PASS",
            "SCENARIO altp2m DONE",
            "EXIT: success",
        ],
        anywhere: &[
            "RESULT altp2m.d1 PASS mixed-ve-delivered mixed-ve-info mixed-write-completed",
            "RESULT altp2m.d2 PASS external-guest-eperm",
            "RESULT altp2m.d3 PASS limited-enable-notify limited-other-ops-eperm",
        ],
        opt_in: false,
        about: "altp2m: mixed (#VE emulated on SVM), external (-EPERM, dom0 drives), limited",
    },
    GuestScenario {
        name: "isolation",
        dom0: &[
            "RESULT isolation.triple-fault PASS",
            "RESULT isolation.bad-gpa PASS",
            "RESULT isolation.destroy PASS",
            "RESULT isolation.dom0-goes-on PASS",
            "SCENARIO isolation DONE",
            "EXIT: success",
        ],
        anywhere: &["d1 crashed:", "d2 crashed:"],
        opt_in: false,
        about: "isolation: a triple-faulting domU and one touching memory outside its p2m are crashed alone",
    },
    GuestScenario {
        name: "gnttab",
        dom0: &[
            "RESULT gnttab.query-size PASS",
            "RESULT gnttab.seed-reserved-entries PASS",
            "RESULT gnttab.get-version PASS",
            "RESULT gnttab.map-grant-ref PASS",
            "RESULT gnttab.read-pattern PASS",
            "RESULT gnttab.domu-saw-mapping PASS",
            "RESULT gnttab.copy-from-gref PASS",
            "RESULT gnttab.unmap-grant-ref PASS",
            "RESULT gnttab.unmap-again-bad-handle PASS",
            "RESULT gnttab.copy-to-gref PASS",
            "RESULT gnttab.map-bad-ref PASS",
            "RESULT gnttab.map-bad-domain PASS",
            "RESULT gnttab.domu-exit-code PASS",
            "SCENARIO gnttab DONE",
            "EXIT: success",
        ],
        anywhere: &[
            "RESULT gnttab.d1 PASS table-frame seeded setup-table v2-enosys v1 mapped no-revoke-mapped unmapped revoke-unmapped copy-arrived revoke-copied",
        ],
        opt_in: false,
        about: "grant tables (issue 13): a domU grants pages to dom0, which maps one at its own gfn (map_grant_ref host_addr), reads it, copies through grants, unmaps; revoke refused while mapped",
    },
    GuestScenario {
        name: "cpu-policy",
        dom0: &[
            "RESULT cpu-policy.sysctl-hvm-max PASS",
            "RESULT cpu-policy.domu-built-paused PASS",
            "RESULT cpu-policy.domctl-get-default PASS",
            "RESULT cpu-policy.domctl-set-narrowed PASS",
            "RESULT cpu-policy.domctl-get-narrowed PASS",
            "cpu-policy: d2 narrowed by dom0: 7b0 * -> *, 1d * -> *",
            "RESULT cpu-policy.domctl-unpause-narrowed PASS",
            "RESULT cpu-policy.domctl-set-running-eexist PASS",
            "RESULT cpu-policy.domctl-set-self-einval PASS",
            "RESULT cpu-policy.domu-d1 PASS",
            "RESULT cpu-policy.domu-d2 PASS",
            "SCENARIO cpu-policy DONE",
            "EXIT: success",
        ],
        anywhere: &[
            "cpu-policy: d1 checked CPUID, * CR4 bits, 5 EFER bits, 15 MSRs, LSTAR, a 100000-MSR scan, debug registers and single-step",
            "cpu-policy: d2 checked CPUID, * CR4 bits, 5 EFER bits, 15 MSRs, LSTAR, the narrowing, a 100000-MSR scan, debug registers and single-step",
            "MEASURE cpu-policy.msr_scan_100k_cycles",
        ],
        opt_in: false,
        about: "cpu-policy: CPUID, CR4/EFER bits and MSRs work exactly when advertised (default policy, and one dom0 narrows with set_cpu_policy before unpausing), 100,000-MSR scan, per-domain debug registers and single-step",
    },
    GuestScenario {
        name: "hostile",
        dom0: &[
            "RESULT hostile.victim-bound PASS",
            "RESULT hostile.victim-pings PASS",
            "MEASURE hostile.ping-p50 * us",
            "MEASURE hostile.ping-p99 * us",
            "MEASURE hostile.ping-max * us",
            "hostile: ping p99 * us over 200 pings",
            "RESULT hostile.hypervisor-serving PASS",
            "RESULT hostile.victim-clean-exit PASS",
            "RESULT hostile.storm-stopped PASS",
            "RESULT hostile.hypervisor-still-serving PASS",
            "SCENARIO hostile DONE",
            "EXIT: success",
        ],
        anywhere: &[
            "RESULT hostile.d1 PASS pong checksums-held",
            "hostile: ping histogram <1ms * 1-10ms * 10-50ms * >=50ms *",
        ],
        opt_in: true,
        about: "issue 14: d2 storms seeded random hypercalls while dom0 pings the checksumming victim d1 (p50/p99/max round trip)",
    },
    GuestScenario {
        name: "xl",
        dom0: &[
            "xl: 4 modules",
            "RESULT xl.1-mark-free-pages PASS",
            "RESULT xl.2-info PASS",
            "xl: created web as d1 *",
            "xenstored: introduced d1 (web), * nodes in the store",
            "RESULT xl.3-create PASS",
            "[d1 web] xl-domu: running",
            "RESULT xl.4-wait-console PASS",
            "xl: created db as d2 *",
            "xenstored: introduced d2 (db), * nodes in the store",
            "RESULT xl.5-create PASS",
            "[d2 db] xl-domu: running",
            "RESULT xl.6-wait-console PASS",
            "Name * ID * Mem VCPUs*State*Time(s)",
            "Domain-0 * 0 *",
            "web * 1 * 16 * 1 *",
            "db * 2 * 8 * 1 *",
            "RESULT xl.7-list PASS",
            "RESULT xl.8-pause PASS",
            // (`r` may still show with -smp 2: the other CPU is out of guest
            // mode when pausedomain returns, but deschedules it just after.)
            "web * 1 * *p---*",
            "RESULT xl.9-list PASS",
            "RESULT xl.10-unpause PASS",
            "xenstored: released d1: devices [\"console/0\"] removed, 0 of its nodes left",
            "RESULT xl.11-destroy PASS",
            "xenstored: released d2: devices [\"console/0\"] removed, 0 of its nodes left",
            "RESULT xl.12-destroy PASS",
            "RESULT xl.13-check-free-pages PASS",
            "xl: created web as d3 *",
            "xenstored: introduced d3 (web), * nodes in the store",
            "RESULT xl.14-create PASS",
            "[d3 web] xl-domu: running",
            "RESULT xl.15-wait-console PASS",
            "RESULT xl.16-list PASS",
            "xenstored: released d3: devices [\"console/0\"] removed, 0 of its nodes left",
            "RESULT xl.17-destroy PASS",
            "RESULT xl.18-check-free-pages PASS",
            "SCENARIO xl DONE",
            "dom0 shutdown: poweroff (code 0)",
            "EXIT: success",
        ],
        anywhere: &["d1: xl-domu: running", "d2: xl-domu: running", "d3: xl-domu: running"],
        opt_in: false,
        about: "xl: dom0's toolstack builds PVH domUs from xl.cfg files over hypercalls, lists, pauses, destroys them; free frames come back",
    },
    GuestScenario {
        name: "xenstore",
        dom0: &[
            "xl: 4 modules",
            "RESULT xl.1-mark-free-pages PASS",
            "xenstored: introduced d1 (peer), * nodes in the store",
            "RESULT xl.2-create PASS",
            "RESULT xl.3-wait-console PASS",
            "xenstored: introduced d2 (guest), * nodes in the store",
            "RESULT xl.4-create PASS",
            "RESULT xl.5-wait-console PASS",
            "RESULT xl.6-list PASS",
            "xenstored: released d2: devices [\"console/0\"] removed, 0 of its nodes left",
            "xenstored: others' * nodes unchanged",
            "RESULT xl.7-destroy PASS",
            "xenstored: released d1: devices [\"console/0\"] removed, 0 of its nodes left",
            "RESULT xl.8-destroy PASS",
            "RESULT xl.9-check-free-pages PASS",
            "SCENARIO xl DONE",
            "dom0 shutdown: poweroff (code 0)",
            "EXIT: success",
        ],
        anywhere: &[
            "d2: RESULT xenstore.guest PASS name domid path console others dom0 libxl libxl-dir name-ro device-ro data watch watch-fires tx",
            "d2: xenstore: guest done",
        ],
        opt_in: false,
        about: "issue 13: xenstored in dom0; a domU's xenbus client reads its own nodes, is refused another domain's, dom0's and /libxl, writes ~/data, its watches fire, a transaction commits",
    },
    GuestScenario {
        name: "xsa175",
        dom0: &[
            "xl: 5 modules",
            "xenstored: introduced d1 (hostile), * nodes in the store",
            "RESULT xl.2-create PASS",
            "RESULT xl.3-wait-console PASS",
            "xenstored: introduced d2 (victim), * nodes in the store",
            "RESULT xl.4-create PASS",
            "RESULT xl.5-wait-console PASS",
            "xenstored: released d1: devices [\"console/0\"] removed, 0 of its nodes left",
            "xenstored: others' * nodes unchanged",
            "RESULT xl.6-destroy PASS",
            "xenstored: introduced d3 (after), * nodes in the store",
            "RESULT xl.7-create PASS",
            "RESULT xl.8-wait-console PASS",
            "RESULT xl.9-list PASS",
            "RESULT xl.10-destroy PASS",
            "RESULT xl.11-destroy PASS",
            "RESULT xl.12-check-free-pages PASS",
            "SCENARIO xl DONE",
            "dom0 shutdown: poweroff (code 0)",
            "EXIT: success",
        ],
        anywhere: &[
            "d1: RESULT xsa175.hostile PASS plant console-ro flood",
            "d1: xsa175: hostile domain planted its entries",
            "d3: RESULT xenstore.after PASS name domid path console others dom0 libxl libxl-dir name-ro device-ro data watch watch-fires tx",
            "d3: xenstore: after done",
        ],
        opt_in: false,
        about: "issue 13 / XSA-175: a hostile domU (old-guest ~/device workaround on) plants bogus devices pointing at the victim's and dom0's nodes; its teardown follows only /libxl/N/device, no other node changes, dom0 serves the next domain",
    },
];

/// The Bochs `ryzen` variant (`<name>-bochs`, 1 CPU): a second SVM
/// implementation, with NRIP save. Always opt-in (slow: minutes per run).
fn guest_scenario_bochs(g: &GuestScenario) -> Scenario {
    Scenario {
        name: Box::leak(format!("{}-bochs", g.name).into_boxed_str()),
        emulator: Emulator::Bochs,
        firmware: Firmware::Bios,
        bochs_model: BOCHS_SVM_MODEL,
        timeout: Duration::from_secs(600),
        silence: Duration::from_secs(120),
        opt_in: true,
        ..guest_scenario(g, 1)
    }
}

/// The Bochs `tigerlake` variant (`<name>-vmx`, 1 CPU): the same guests on the VMX
/// backend (EPT, VMFUNC, #VE). In the default list: this is how every run exercises
/// VMX, since these machines have no VT-x.
fn guest_scenario_vmx(g: &GuestScenario) -> Scenario {
    Scenario {
        name: Box::leak(format!("{}-vmx", g.name).into_boxed_str()),
        emulator: Emulator::Bochs,
        firmware: Firmware::Bios,
        bochs_model: BOCHS_VMX_MODEL,
        timeout: Duration::from_secs(600),
        silence: Duration::from_secs(120),
        ..guest_scenario(g, 1)
    }
}

fn guest_scenario(g: &GuestScenario, smp: u32) -> Scenario {
    let name: &'static str = if smp == 1 {
        g.name
    } else {
        Box::leak(format!("{}-smp{smp}", g.name).into_boxed_str())
    };
    Scenario {
        name,
        emulator: Emulator::Qemu,
        firmware: Firmware::Pvh,
        smp,
        bochs_model: "",
        test: TestMode::None,
        timeout: Duration::from_secs(240),
        silence: Duration::from_secs(60),
        required: g.dom0,
        anywhere: g.anywhere,
        forbidden: GUEST_FORBIDDEN,
        outcome: Outcome::Success,
        domains: Some(g.name),
        guest_kernel: None,
        opt_in: g.opt_in,
        about: g.about,
    }
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

/// Fills in a pattern's placeholders: `{entries}` is the number of files in
/// the ramdisk the scenario booted (boot.cmd, README and the guests).
pub fn expand(pattern: &str, ramdisk_entries: usize) -> String {
    pattern.replace("{entries}", &ramdisk_entries.to_string())
}

/// Judges one finished boot from its serial log and how the emulator ended.
pub fn judge(scenario: &Scenario, log: &str, end: End, ramdisk_entries: usize) -> Verdict {
    let mut failures = Vec::new();
    let lines: Vec<&str> = log.lines().collect();

    let mut next = 0;
    for pattern in scenario.required {
        let pattern = &expand(pattern, ramdisk_entries);
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
    for pattern in scenario.anywhere {
        if !lines.iter().any(|l| line_matches(l, pattern)) {
            failures.push(format!("`{pattern}` not found"));
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
            "no serial output for {} s (3 × that before the first line; emulator killed)",
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
    fn single_thread_tcg_scenarios_exist_and_run_by_default() {
        let all = all();
        for name in TCG_SINGLE_THREAD {
            let s = all.iter().find(|s| s.name == *name).expect(name);
            assert!(!s.opt_in, "{name} should run by default");
            assert_eq!(s.emulator, Emulator::Qemu, "{name}");
        }
        let mt = all
            .iter()
            .find(|s| s.name == "cpu-policy-smp2-mttcg")
            .expect("reproducer");
        assert!(mt.opt_in && mt.smp == 2);
    }

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
        let v = judge(&scenario("qemu-bios"), GOOD_BOOT, End::Exited(Some(33)), 2);
        assert!(v.passed(), "{:?}", v.failures);
    }

    #[test]
    fn wrong_exit_status_timeout_and_missing_lines_fail() {
        let s = scenario("qemu-bios");
        let v = judge(&s, GOOD_BOOT, End::Exited(Some(35)), 2);
        assert_eq!(v.failures, ["QEMU exit status 35, expected 33"]);
        let v = judge(&s, GOOD_BOOT, End::TimedOut, 2);
        assert!(v.failures[0].starts_with("timed out"), "{:?}", v.failures);
        let truncated: String = GOOD_BOOT
            .lines()
            .take(5)
            .map(|l| format!("{l}\n"))
            .collect();
        let v = judge(&s, &truncated, End::Exited(Some(33)), 2);
        assert!(
            v.failures.iter().any(|f| f.contains("READY")),
            "{:?}",
            v.failures
        );
    }

    #[test]
    fn the_ramdisk_entry_count_follows_the_guests() {
        let s = scenario("qemu-bios");
        assert!(judge(&s, GOOD_BOOT, End::Exited(Some(33)), 2).passed());
        let v = judge(&s, GOOD_BOOT, End::Exited(Some(33)), 3);
        assert_eq!(v.failures, ["`ramdisk: 3 entries` not found"]);
    }

    #[test]
    fn order_and_forbidden_lines_count() {
        let s = scenario("qemu-bios");
        let swapped = GOOD_BOOT
            .replace("virt: SVM", "XX")
            .replace("EXIT: success", "EXIT: success\nvirt: SVM npt=1");
        let v = judge(&s, &swapped, End::Exited(Some(33)), 2);
        assert!(
            v.failures.iter().any(|f| f.contains("out of order")),
            "{:?}",
            v.failures
        );
        let faulty = format!("{GOOD_BOOT}[ 1.0] ERROR cpu0: EXCEPTION: #GP (vector 13)\n");
        let v = judge(&s, &faulty, End::Exited(Some(33)), 2);
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
[    0.1] ERROR cpu0:   #0 0xffffffff80201234 hypervisor::arch::x86_64::boot::run_test+0xa8
[    0.1] ERROR cpu0: EXIT: failure (exception)
";
        assert!(judge(&s, log, End::Exited(Some(35)), 2).passed());
        assert!(!judge(&s, log, End::Exited(Some(33)), 2).passed());
        assert!(!judge(&s, "", End::Exited(Some(35)), 2).passed());
    }

    #[test]
    fn bochs_is_judged_from_the_log_alone() {
        let s = scenario("bochs-bios");
        let log = GOOD_BOOT.replace("virt: SVM npt=1", "virt: VMX ept=1 vpid=1");
        assert!(judge(&s, &log, End::Exited(Some(1)), 2).passed());
        assert!(judge(&s, &log, End::Lingered, 2).passed());
        assert!(!judge(&s, &log, End::TimedOut, 2).passed());
        assert!(!judge(&s, &log, End::Silent, 2).passed());
        assert!(!judge(&s, GOOD_BOOT, End::Exited(Some(0)), 2).passed());
    }

    #[test]
    fn names_are_unique() {
        let mut names: Vec<_> = all().iter().map(|s| s.name).collect();
        names.sort();
        names.dedup();
        assert_eq!(names.len(), all().len());
    }

    #[test]
    fn guest_scenarios_have_a_domains_cfg_with_dom0_first() {
        let mut seen = 0;
        for s in all().iter().filter(|s| s.domains.is_some()) {
            let dir = s.domains.unwrap();
            let path = crate::util::project_root()
                .join("tests-qemu/scenarios")
                .join(dir)
                .join("domains.cfg");
            let text = std::fs::read_to_string(&path).unwrap();
            let lines: Vec<&str> = text
                .lines()
                .map(str::trim)
                .filter(|l| !l.is_empty() && !l.starts_with('#'))
                .collect();
            // `xl` builds its domUs from dom0 (its manifest has dom0 only).
            let min = if text.contains("role=xl") { 1 } else { 2 };
            assert!(
                lines.len() >= min,
                "{}: dom0 and at least one domU",
                path.display()
            );
            assert!(lines[0].contains("privileged=1") && lines[0].contains("domid=0"));
            for l in &lines[1..] {
                assert!(l.contains("privileged=0"), "{l}");
                assert!(
                    l.contains("image=testguest") || l.contains("image=vmlinux"),
                    "{l}"
                );
            }
            assert!(s.required.last() == Some(&"EXIT: success"), "{}", s.name);
            seen += 1;
        }
        // (+1: the multi-threaded TCG reproducer of cpu-policy-smp2.)
        assert_eq!(seen, 4 * GUESTS.len() + linux_scenarios().len() + 1);
    }

    #[test]
    fn anywhere_patterns_count_regardless_of_order_and_fail_lines_are_forbidden() {
        let s = scenario("isolation");
        let log = "\
[ 1.0] INFO  cpu0: d2 crashed: NPF at 0x40000000
[ 1.1] INFO  cpu0: RESULT isolation.triple-fault PASS
[ 1.2] INFO  cpu0: d1 crashed: triple fault
[ 1.3] INFO  cpu0: RESULT isolation.bad-gpa PASS
[ 1.35] INFO  cpu0: RESULT isolation.destroy PASS
[ 1.4] INFO  cpu0: RESULT isolation.dom0-goes-on PASS
[ 1.5] INFO  cpu0: SCENARIO isolation DONE (3 passed, 0 failed)
[ 1.6] INFO  cpu0: EXIT: success
";
        assert!(judge(&s, log, End::Exited(Some(33)), 0).passed());
        let without = log.replace("d1 crashed", "d1 stopped");
        let v = judge(&s, &without, End::Exited(Some(33)), 0);
        assert_eq!(v.failures, ["`d1 crashed:` not found"]);
        let failing = format!("{log}[ 1.7] INFO  cpu0: d1: RESULT isolation.x FAIL got -1\n");
        assert!(!judge(&s, &failing, End::Exited(Some(33)), 0).passed());
    }

    #[test]
    fn opt_in_scenarios_run_only_when_named() {
        let default = crate::qemu_test::select(&[]).unwrap();
        assert!(default.iter().all(|s| !s.opt_in));
        let named = crate::qemu_test::select(&["hello-smp2".to_string()]).unwrap();
        assert_eq!(named.len(), 1);
        assert_eq!(named[0].smp, 2);
    }
}
