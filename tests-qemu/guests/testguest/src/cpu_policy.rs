//! Scenario cpu-policy (issue 16): the CPU a domU sees is one coherent CPU.
//!
//! domU (`cpu-policy-domu`): walks CPUID, then for every CR4 bit, EFER bit and
//! MSR in a list checks that the write/read works exactly when CPUID advertises
//! the feature; a domU whose policy dom0 narrowed (`narrowed=1`) also checks
//! the narrowed bits are gone; then scans
//! 100,000 MSRs (timed); then debug registers: DR0-3 start at 0 (no other
//! domain's values), keep this domain's values across yields, and single-step
//! (#DB with DR6.BS, also across an emulated CPUID).
//!
//! dom0 (`cpu-policy`): reads the HVM max policy over `XEN_SYSCTL_get_cpu_policy`;
//! narrows the domU built paused (`narrowed=<domid>`, manifest `paused=1`) as a
//! toolstack does before the first unpause: `XEN_DOMCTL_get_cpu_policy`, SMEP and
//! PGE cleared, `XEN_DOMCTL_set_cpu_policy`, get again to see the narrowing,
//! `XEN_DOMCTL_unpausedomain`; then checks set_cpu_policy is -EEXIST once the
//! domain was unpaused and -EINVAL on dom0 itself, and waits for each domU's
//! verdict.

use core::arch::asm;
use core::sync::atomic::{AtomicU64, Ordering};

use guest_rt::report::{check, domu_exit, done, expect_eq, measure};
use guest_rt::xen::{self, cpuid, rdtsc};
use guest_rt::{idt, println, Boot};
use xen_public_abi::arch_x86::{xen_cpuid_leaf, xen_msr_entry};
use xen_public_abi::domctl::{
    xen_domctl, xen_domctl_cpu_policy, XEN_DOMCTL_get_cpu_policy, XEN_DOMCTL_set_cpu_policy,
    XEN_DOMINF_paused, XEN_DOMCTL_INTERFACE_VERSION,
};
use xen_public_abi::sched::{SHUTDOWN_crash, SHUTDOWN_poweroff};
use xen_public_abi::sysctl::{
    xen_sysctl, xen_sysctl_cpu_policy, XEN_SYSCTL_cpu_policy_hvm_max, XEN_SYSCTL_get_cpu_policy,
    XEN_SYSCTL_INTERFACE_VERSION,
};
use xen_public_abi::xen::{__HYPERVISOR_domctl, __HYPERVISOR_sysctl};
use zerocopy::FromZeros;

use crate::dom0;

const S: &str = "cpu-policy";

// ---- faults as values ------------------------------------------------------------

/// #GP taken by the last probe; the handler skips the probed instruction.
static GP: AtomicU64 = AtomicU64::new(0);
/// Length of the probed instruction (the #GP handler steps over it).
static PROBE_LEN: AtomicU64 = AtomicU64::new(0);

fn on_gp(f: &mut idt::TrapFrame) {
    GP.fetch_add(1, Ordering::SeqCst);
    f.rip += PROBE_LEN.load(Ordering::SeqCst);
}

fn probe<F: FnOnce()>(len: u64, f: F) -> bool {
    GP.store(0, Ordering::SeqCst);
    PROBE_LEN.store(len, Ordering::SeqCst);
    f();
    GP.load(Ordering::SeqCst) == 0
}

fn read_cr4() -> u64 {
    let v: u64;
    // SAFETY: reading CR4 at CPL0 has no side effects.
    unsafe { asm!("mov {}, cr4", out(reg) v, options(nomem, nostack)) };
    v
}

/// `mov cr4, rax` (3 bytes: 0f 22 e0): true when it did not #GP.
fn try_write_cr4(v: u64) -> bool {
    // SAFETY: the #GP handler skips the instruction on a refused value; the
    // bits probed are restored by the caller.
    probe(3, || unsafe {
        asm!("mov cr4, rax", in("rax") v, options(nostack))
    })
}

/// `rdmsr` (2 bytes): the value, or None on #GP.
fn try_rdmsr(msr: u32) -> Option<u64> {
    let (mut lo, mut hi) = (0u32, 0u32);
    // SAFETY: a refused MSR is #GP, skipped by the handler; reads change nothing.
    let ok = probe(2, || unsafe {
        asm!("rdmsr", in("ecx") msr, inout("eax") lo, inout("edx") hi, options(nostack))
    });
    ok.then_some((hi as u64) << 32 | lo as u64)
}

/// `wrmsr` (2 bytes): true when it did not #GP.
fn try_wrmsr(msr: u32, v: u64) -> bool {
    // SAFETY: as for try_rdmsr; the callers write back values they read or
    // bits they restore.
    probe(2, || unsafe {
        asm!("wrmsr", in("ecx") msr, in("eax") v as u32, in("edx") (v >> 32) as u32, options(nostack))
    })
}

fn bit(word: u32, b: u32) -> bool {
    word & (1 << b) != 0
}

// ---- the domU ------------------------------------------------------------------

pub fn domu(boot: &Boot) -> ! {
    idt::set_handler(13, on_gp);
    let narrowed = boot.arg("narrowed") == Some("1");
    let id = boot.arg("domid").and_then(guest_rt::parse_u64).unwrap_or(0);

    let [max, ..] = cpuid(0, 0);
    let l1 = cpuid(1, 0);
    let l7 = if max >= 7 { cpuid(7, 0) } else { [0; 4] };
    let [emax, ..] = cpuid(0x8000_0000, 0);
    let e1 = if emax >= 0x8000_0001 {
        cpuid(0x8000_0001, 0)
    } else {
        [0; 4]
    };
    let amd = xen::vendor_is_amd();

    // What must never be offered.
    check(
        S,
        "cpuid-hypervisor",
        bit(l1[2], 31),
        format_args!("1c {:#x}", l1[2]),
    );
    for (name, word, b) in [
        ("cpuid-no-vmx", l1[2], 5),
        ("cpuid-no-smx", l1[2], 6),
        ("cpuid-no-monitor", l1[2], 3),
        ("cpuid-no-xsave", l1[2], 26),
        ("cpuid-no-ds", l1[3], 21),
        ("cpuid-no-dtes64", l1[2], 2),
        ("cpuid-no-svm", e1[2], 2),
        ("cpuid-no-pku", l7[2], 3),
    ] {
        check(
            S,
            name,
            !bit(word, b),
            format_args!("bit {} of {:#x}", b, word),
        );
    }
    let xs = if max >= 0xd { cpuid(0xd, 0) } else { [0; 4] };
    check(
        S,
        "cpuid-no-xsave-leaf",
        xs == [0; 4],
        format_args!("0xd {:x?}", xs),
    );

    // CR4: each bit works exactly when its feature is advertised
    // (hvm_cr4_guest_valid_bits).
    let orig = read_cr4();
    // SMEP and SMAP are only probed where they must fail: this guest runs on
    // user-accessible pages, so actually setting them would fault its next
    // fetch or data access.
    let cr4_bits: [(&str, u32, bool); 19] = [
        ("cr4-vme", 0, bit(l1[3], 1)),
        ("cr4-pvi", 1, bit(l1[3], 1)),
        ("cr4-tsd", 2, bit(l1[3], 4)),
        ("cr4-de", 3, bit(l1[3], 2)),
        ("cr4-pse", 4, bit(l1[3], 3)),
        ("cr4-mce", 6, bit(l1[3], 7) || bit(l1[3], 14)),
        ("cr4-pge", 7, bit(l1[3], 13)),
        ("cr4-pce", 8, true),
        ("cr4-osfxsr", 9, bit(l1[3], 24)),
        ("cr4-umip", 11, bit(l7[2], 2)),
        ("cr4-la57", 12, false),
        ("cr4-vmxe", 13, false),
        ("cr4-smxe", 14, false),
        ("cr4-fsgsbase", 16, bit(l7[1], 0)),
        ("cr4-osxsave", 18, bit(l1[2], 26)),
        ("cr4-smep", 20, bit(l7[1], 7)),
        ("cr4-smap", 21, bit(l7[1], 20)),
        ("cr4-pke", 22, bit(l7[2], 3)),
        ("cr4-cet", 23, false),
    ];
    let mut cr4_checked = 0;
    for (name, b, advertised) in cr4_bits {
        if advertised && (b == 20 || b == 21) {
            continue;
        }
        cr4_checked += 1;
        let v = 1u64 << b;
        let worked = try_write_cr4(orig | v);
        let now = read_cr4();
        let _ = try_write_cr4(orig);
        check(
            S,
            name,
            worked == advertised && (!worked || now & v != 0),
            format_args!(
                "advertised {} write ok {} cr4 {:#x}",
                advertised, worked, now
            ),
        );
    }
    check(
        S,
        "cr4-restored",
        read_cr4() == orig,
        format_args!("{:#x}", read_cr4()),
    );

    // EFER (hvm_efer_valid).
    let efer = try_rdmsr(0xC000_0080).unwrap_or(0);
    for (name, b, advertised) in [
        ("efer-nxe", 11u32, bit(e1[3], 20)),
        ("efer-svme", 12, false),
        ("efer-lmsle", 13, false),
        ("efer-ffxse", 14, bit(e1[3], 25) && amd),
        ("efer-bit20", 20, false),
    ] {
        let v = 1u64 << b;
        let worked = try_wrmsr(0xC000_0080, efer | v);
        let _ = try_wrmsr(0xC000_0080, efer);
        check(
            S,
            name,
            worked == advertised,
            format_args!("advertised {} ok {}", advertised, worked),
        );
    }

    // MSRs gated by features: readable exactly when advertised.
    let l7d = l7[3];
    let e8 = if emax >= 0x8000_0008 {
        cpuid(0x8000_0008, 0)
    } else {
        [0; 4]
    };
    let mut msrs_checked = 0;
    for (name, msr, advertised) in [
        (
            "msr-tsc-aux",
            0xC000_0103u32,
            bit(e1[3], 27) || bit(l7[2], 22),
        ),
        ("msr-tsc-adjust", 0x3b, bit(l7[1], 1)),
        ("msr-spec-ctrl", 0x48, bit(l7d, 26) || bit(e8[1], 14)),
        ("msr-arch-caps", 0x10a, bit(l7d, 29)),
        ("msr-mtrrcap", 0xfe, bit(l1[3], 12)),
        ("msr-mcg-cap", 0x179, bit(l1[3], 7) || bit(l1[3], 14)),
        ("msr-xss", 0xda0, false),
        ("msr-bndcfgs", 0xd90, bit(l7[1], 14)),
        ("msr-pat", 0x277, bit(l1[3], 16)),
        ("msr-apic-base", 0x1b, true),
        ("msr-platform-info", 0xce, true),
        ("msr-misc-features", 0x140, true),
        ("msr-debugctl", 0x1d9, true),
        ("msr-feature-control", 0x3a, !amd),
        ("msr-hwcr", 0xC001_0015, amd),
    ] {
        let got = try_rdmsr(msr);
        msrs_checked += 1;
        check(
            S,
            name,
            got.is_some() == advertised,
            format_args!("advertised {} read {:?}", advertised, got),
        );
    }

    // The SYSCALL MSRs keep this vCPU's values (switched per vCPU) across
    // yields. (A non-canonical LSTAR is #GP on VMX here and on hardware; QEMU's
    // TCG accepts it for the SVM pass-through, so it is not checked.)
    let lstar = try_rdmsr(0xC000_0082).unwrap_or(0);
    let set = try_wrmsr(0xC000_0082, 0xffff_8000_1234_5000);
    for _ in 0..5 {
        xen::yield_now();
    }
    let back = try_rdmsr(0xC000_0082);
    let _ = try_wrmsr(0xC000_0082, lstar);
    check(
        S,
        "msr-lstar",
        set && back == Some(0xffff_8000_1234_5000),
        format_args!("set {} back {:?}", set, back),
    );

    if narrowed {
        // dom0 cleared SMEP (7b0 bit 7) and PGE (1d bit 13) before unpausing us.
        check(
            S,
            "narrowed-smep",
            !bit(l7[1], 7),
            format_args!("7b0 {:#x}", l7[1]),
        );
        check(
            S,
            "narrowed-pge",
            !bit(l1[3], 13),
            format_args!("1d {:#x}", l1[3]),
        );
        check(
            S,
            "narrowed-pge-gp",
            !try_write_cr4(orig | 1 << 7),
            format_args!("CR4.PGE accepted"),
        );
    }

    // 100,000 MSRs (reads only), timed.
    let t0 = rdtsc();
    let mut readable = 0u32;
    for msr in 0..100_000u32 {
        if try_rdmsr(msr).is_some() {
            readable += 1;
        }
        // One progress line (domU console lines are rate-limited: a burst of
        // 10 for all domUs, then one per 5 s) keeps the run from looking silent.
        if msr == 49_999 {
            println!("cpu-policy: d{} scanned 50000 MSRs", id);
        }
    }
    let cycles = rdtsc() - t0;
    measure("cpu-policy.msr_scan_100k_cycles", cycles, "cycles");
    check(
        S,
        "msr-scan",
        readable > 0 && readable < 1000,
        format_args!("{} readable", readable),
    );

    debug_registers(id);
    let who = if boot.arg("who") == Some("d2") {
        "d2"
    } else {
        "d1"
    };
    println!(
        "cpu-policy: {} checked CPUID, {} CR4 bits, 5 EFER bits, {} MSRs, LSTAR{}, a 100000-MSR scan, debug registers and single-step",
        who,
        cr4_checked,
        msrs_checked,
        if narrowed { ", the narrowing" } else { "" }
    );
    domu_exit(S, who, SHUTDOWN_poweroff)
}

// ---- debug registers ---------------------------------------------------------

static DB_COUNT: AtomicU64 = AtomicU64::new(0);
static DB_DR6: AtomicU64 = AtomicU64::new(0);

fn on_db(_f: &mut idt::TrapFrame) {
    DB_COUNT.fetch_add(1, Ordering::SeqCst);
    let dr6: u64;
    // SAFETY: reading DR6 at CPL0.
    unsafe { asm!("mov {}, dr6", out(reg) dr6, options(nomem, nostack)) };
    DB_DR6.fetch_or(dr6, Ordering::SeqCst);
    // SAFETY: clearing DR6's sticky bits, as a #DB handler does.
    unsafe { asm!("mov dr6, {}", in(reg) 0xFFFF_0FF0u64, options(nomem, nostack)) };
}

fn read_drs() -> [u64; 4] {
    let (a, b, c, d): (u64, u64, u64, u64);
    // SAFETY: reading debug registers at CPL0.
    unsafe {
        asm!("mov {}, dr0", out(reg) a, options(nomem, nostack));
        asm!("mov {}, dr1", out(reg) b, options(nomem, nostack));
        asm!("mov {}, dr2", out(reg) c, options(nomem, nostack));
        asm!("mov {}, dr3", out(reg) d, options(nomem, nostack));
    }
    [a, b, c, d]
}

fn debug_registers(id: u64) {
    // Yield first, so that another domain may have used the registers.
    for _ in 0..20 {
        xen::yield_now();
    }
    let first = read_drs();
    check(
        S,
        "dr-start-zero",
        first == [0; 4],
        format_args!("{:#x?}", first),
    );
    let mine = [
        0x1000_0000 + id * 0x100,
        0x2000_0000 + id * 0x100,
        0x3000_0000 + id * 0x100,
        0x4000_0000 + id * 0x100,
    ];
    // SAFETY: DR0-3 hold addresses only; DR7 leaves every breakpoint disabled.
    unsafe {
        asm!("mov dr0, {}", in(reg) mine[0], options(nomem, nostack));
        asm!("mov dr1, {}", in(reg) mine[1], options(nomem, nostack));
        asm!("mov dr2, {}", in(reg) mine[2], options(nomem, nostack));
        asm!("mov dr3, {}", in(reg) mine[3], options(nomem, nostack));
    }
    let mut kept = true;
    for _ in 0..50 {
        xen::yield_now();
        kept &= read_drs() == mine;
    }
    check(
        S,
        "dr-kept-across-yields",
        kept,
        format_args!("{:#x?}", read_drs()),
    );

    // Single step: TF on for a few instructions, one of them an emulated CPUID.
    idt::set_handler(1, on_db);
    DB_COUNT.store(0, Ordering::SeqCst);
    DB_DR6.store(0, Ordering::SeqCst);
    // SAFETY: TF traps after each instruction into on_db, which returns; TF is
    // cleared by the popfq at the end (the trap after it is the last one).
    unsafe {
        asm!(
            "pushfq",
            "or qword ptr [rsp], 0x100",
            "popfq",
            "nop",
            "mov eax, 0",
            "cpuid",
            "nop",
            "pushfq",
            "and qword ptr [rsp], ~0x100",
            "popfq",
            out("eax") _, out("ecx") _, out("edx") _,
            options(nostack)
        );
    }
    let n = DB_COUNT.load(Ordering::SeqCst);
    let dr6 = DB_DR6.load(Ordering::SeqCst);
    check(
        S,
        "single-step",
        // 7 instructions stepped (the popfq clearing TF traps too); the trap
        // after the intercepted CPUID is the hypervisor's to deliver.
        n >= 7 && dr6 & (1 << 14) != 0,
        format_args!("{} #DB, DR6 bits {:#x}", n, dr6),
    );
    check(
        S,
        "dr-kept-after-step",
        read_drs() == mine,
        format_args!("{:#x?}", read_drs()),
    );
}

// ---- dom0 -----------------------------------------------------------------------

fn sysctl_get_policy(leaves: &mut [xen_cpuid_leaf], msrs: &mut [xen_msr_entry]) -> (i64, u32, u32) {
    let mut op = xen_sysctl::new_zeroed();
    op.cmd = XEN_SYSCTL_get_cpu_policy;
    op.interface_version = XEN_SYSCTL_INTERFACE_VERSION;
    op.u.set(&xen_sysctl_cpu_policy {
        index: XEN_SYSCTL_cpu_policy_hvm_max,
        nr_leaves: leaves.len() as u32,
        nr_msrs: msrs.len() as u32,
        _rsvd: 0,
        leaves: leaves.as_mut_ptr() as u64,
        msrs: msrs.as_mut_ptr() as u64,
    });
    let rc = xen::hypercall(
        __HYPERVISOR_sysctl,
        &mut op as *mut xen_sysctl as u64,
        0,
        0,
        0,
        0,
    );
    let p: xen_sysctl_cpu_policy = op.u.get();
    (rc, p.nr_leaves, p.nr_msrs)
}

fn domctl_policy(
    cmd: u32,
    domid: u16,
    leaves: &mut [xen_cpuid_leaf],
    nr: u32,
) -> (i64, xen_domctl_cpu_policy) {
    let mut op = xen_domctl::new_zeroed();
    op.cmd = cmd;
    op.interface_version = XEN_DOMCTL_INTERFACE_VERSION;
    op.domain = domid;
    op.u.set(&xen_domctl_cpu_policy {
        nr_leaves: nr,
        nr_msrs: 0,
        leaves: leaves.as_mut_ptr() as u64,
        msrs: 0,
        err_leaf: 0,
        err_subleaf: 0,
        err_msr: 0,
        _implicit_pad: 0,
    });
    let rc = xen::hypercall(
        __HYPERVISOR_domctl,
        &mut op as *mut xen_domctl as u64,
        0,
        0,
        0,
        0,
    );
    (rc, op.u.get())
}

/// Leaf `leaf` subleaf 0 (or the leaf without subleaves) in a serialised policy.
fn find_leaf(leaves: &mut [xen_cpuid_leaf], leaf: u32) -> Option<&mut xen_cpuid_leaf> {
    leaves
        .iter_mut()
        .find(|l| l.leaf == leaf && (l.subleaf == 0 || l.subleaf == u32::MAX))
}

/// SMEP (leaf 7.0 EBX bit 7) and PGE (leaf 1 EDX bit 13): the bits dom0 clears.
const SMEP: u32 = 1 << 7;
const PGE: u32 = 1 << 13;

/// What a toolstack does before a new domain's first unpause: read its policy,
/// clear SMEP and PGE, set it, read it back; then unpause it. Afterwards the
/// policy is frozen (-EEXIST), and dom0 cannot change its own (-EINVAL).
fn narrow(d: u16, leaves: &mut [xen_cpuid_leaf; 128], max_7b0: u32) {
    let paused =
        dom0::getdomaininfo(d).is_ok_and(|i| i.domain == d && i.flags & XEN_DOMINF_paused != 0);
    check(S, "domu-built-paused", paused, format_args!("d{}", d));

    let (rc, p) = domctl_policy(XEN_DOMCTL_get_cpu_policy, d, leaves, 128);
    let n = (p.nr_leaves as usize).min(leaves.len());
    let before = (
        find_leaf(&mut leaves[..n], 7).map_or(0, |l| l.b),
        find_leaf(&mut leaves[..n], 1).map_or(0, |l| l.d),
    );
    check(
        S,
        "domctl-get-default",
        rc == 0 && n > 10 && before.1 & PGE != 0,
        format_args!(
            "rc {} leaves {} 7b0 {:#x} (max {:#x}) 1d {:#x}",
            rc, n, before.0, max_7b0, before.1
        ),
    );
    if let Some(l) = find_leaf(&mut leaves[..n], 7) {
        l.b &= !SMEP;
    }
    if let Some(l) = find_leaf(&mut leaves[..n], 1) {
        l.d &= !PGE;
    }
    let (rc, p) = domctl_policy(XEN_DOMCTL_set_cpu_policy, d, leaves, n as u32);
    check(
        S,
        "domctl-set-narrowed",
        rc == 0,
        format_args!(
            "rc {} err_leaf {:#x} err_subleaf {:#x} err_msr {:#x}",
            rc, p.err_leaf, p.err_subleaf, p.err_msr
        ),
    );

    let (rc, p) = domctl_policy(XEN_DOMCTL_get_cpu_policy, d, leaves, 128);
    let n = (p.nr_leaves as usize).min(leaves.len());
    let after = (
        find_leaf(&mut leaves[..n], 7).map_or(u32::MAX, |l| l.b),
        find_leaf(&mut leaves[..n], 1).map_or(u32::MAX, |l| l.d),
    );
    check(
        S,
        "domctl-get-narrowed",
        rc == 0 && after.0 & SMEP == 0 && after.1 & PGE == 0,
        format_args!(
            "rc {} 7b0 {:#x} -> {:#x}, 1d {:#x} -> {:#x}",
            rc, before.0, after.0, before.1, after.1
        ),
    );
    println!(
        "cpu-policy: d{} narrowed by dom0: 7b0 {:#x} -> {:#x}, 1d {:#x} -> {:#x}",
        d, before.0, after.0, before.1, after.1
    );

    expect_eq(S, "domctl-unpause-narrowed", dom0::unpausedomain(d), 0);
    // Unpaused: creation is finished, the policy can no longer change.
    let (rc, _) = domctl_policy(XEN_DOMCTL_set_cpu_policy, d, leaves, 0);
    expect_eq(S, "domctl-set-running-eexist", rc, -17);
    // On dom0 itself: -EINVAL.
    let (rc, _) = domctl_policy(XEN_DOMCTL_set_cpu_policy, 0, leaves, 0);
    expect_eq(S, "domctl-set-self-einval", rc, -22);
}

pub fn dom0(boot: &Boot) -> ! {
    let wait = boot.arg_u64("wait", 400_000);
    let mut leaves = [xen_cpuid_leaf::new_zeroed(); 128];
    let mut msrs = [xen_msr_entry::new_zeroed(); 2];
    let (rc, nl, nm) = sysctl_get_policy(&mut leaves, &mut msrs);
    check(
        S,
        "sysctl-hvm-max",
        rc == 0 && nl > 10 && nm == 2,
        format_args!("rc {} leaves {} msrs {}", rc, nl, nm),
    );
    let max_7b0 = leaves[..nl as usize]
        .iter()
        .find(|l| l.leaf == 7 && l.subleaf == 0)
        .map_or(0, |l| l.b);

    if let Some(d) = boot.arg("narrowed").and_then(guest_rt::parse_u64) {
        narrow(d as u16, &mut leaves, max_7b0);
    }

    for key in ["d1", "d2", "d3"] {
        let Some(domid) = boot.arg(key).and_then(guest_rt::parse_u64) else {
            continue;
        };
        let name = crate::hello::cat_name("domu-d", domid as u16);
        match dom0::wait_stopped(domid as u16, wait) {
            Some(i) => check(
                S,
                &name,
                i.code() == SHUTDOWN_poweroff,
                format_args!(
                    "d{} stopped with code {} (crash {})",
                    domid,
                    i.code(),
                    SHUTDOWN_crash
                ),
            ),
            None => check(S, &name, false, format_args!("d{} never finished", domid)),
        }
    }
    println!("cpu-policy: done");
    done(S);
    xen::shutdown(SHUTDOWN_poweroff)
}
