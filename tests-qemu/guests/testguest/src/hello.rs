//! Scenario 1, hello: the Xen CPUID leaves, the hypercall page, `xen_version`,
//! `console_io`, and shutdown codes (a domU's reboot code seen by dom0 through
//! getdomaininfo; dom0's own poweroff ends the run). Also measures a null
//! hypercall against a CPUID exit, both with `rdtsc` in this guest.

use guest_rt::report::{check, done, expect_eq, measure};
use guest_rt::xen::{self, cpuid, rdtsc};
use guest_rt::{println, Boot};
use xen_public_abi::sched::{SHUTDOWN_poweroff, SHUTDOWN_reboot};
use xen_public_abi::version::XENVER_version;

use crate::dom0;

const S: &str = "hello";
/// Xen 4.17 as `XENVER_version` and CPUID base+1 report it.
const XEN_4_17: i64 = 0x0004_0011;

/// The CPUID checks both dom0 and the domU run; `domid` is the expected id.
fn cpuid_checks(base: u32, who: &str, domid: u32) {
    let [max, ..] = cpuid(base, 0);
    check(
        S,
        &cat(who, "cpuid-max-leaf"),
        max >= base + 4,
        format_args!("max leaf {:#x}", max),
    );
    expect_eq(
        S,
        &cat(who, "cpuid-version"),
        cpuid(base + 1, 0)[0] as i64,
        XEN_4_17,
    );
    let [pages, msr, ..] = cpuid(base + 2, 0);
    check(
        S,
        &cat(who, "cpuid-hypercall-msr"),
        pages == 1 && msr == 0x4000_0000,
        format_args!("pages {} msr {:#x}", pages, msr),
    );
    let [flags, _vcpu, dom, _] = cpuid(base + 4, 0);
    check(
        S,
        &cat(who, "cpuid-domid"),
        flags & (1 << 4) != 0 && dom == domid,
        format_args!("leaf 4 flags {:#x} domid {}", flags, dom),
    );
}

/// `a-b` in a small fixed buffer (check names are short).
fn cat(a: &str, b: &str) -> Name {
    let mut n = Name {
        buf: [0; 48],
        len: 0,
    };
    for part in [a, "-", b] {
        for &c in part.as_bytes() {
            if n.len < n.buf.len() {
                n.buf[n.len] = c;
                n.len += 1;
            }
        }
    }
    n
}

/// `prefix` followed by a number, e.g. `ping-pong-d1`.
pub fn cat_name(prefix: &str, n: u16) -> Name {
    let mut digits = [0u8; 5];
    let mut len = 0;
    let mut v = n;
    loop {
        digits[len] = b'0' + (v % 10) as u8;
        len += 1;
        v /= 10;
        if v == 0 {
            break;
        }
    }
    let mut out = Name {
        buf: [0; 48],
        len: 0,
    };
    for &c in prefix.as_bytes().iter().chain(digits[..len].iter().rev()) {
        if out.len < out.buf.len() {
            out.buf[out.len] = c;
            out.len += 1;
        }
    }
    out
}

pub struct Name {
    buf: [u8; 48],
    len: usize,
}

impl core::ops::Deref for Name {
    type Target = str;
    fn deref(&self) -> &str {
        core::str::from_utf8(&self.buf[..self.len]).unwrap_or("?")
    }
}

fn hypercall_page_checks() {
    let Some(addr) = xen::install_hypercall_page() else {
        check(
            S,
            "hypercall-page",
            false,
            format_args!("no Xen CPUID base"),
        );
        return;
    };
    let page = xen::hypercall_page();
    let insn: [u8; 3] = if xen::vendor_is_amd() {
        [0x0f, 0x01, 0xd9]
    } else {
        [0x0f, 0x01, 0xc1]
    };
    let mut bad = None;
    for i in 0..128usize {
        let slot = &page[i * 32..i * 32 + 9];
        let ok = if i == 23 {
            slot[..2] == [0x0f, 0x0b]
        } else {
            slot[0] == 0xb8
                && slot[1..5] == (i as u32).to_le_bytes()
                && slot[5..8] == insn
                && slot[8] == 0xc3
        };
        if !ok && bad.is_none() {
            bad = Some(i);
        }
    }
    check(
        S,
        "hypercall-page",
        bad.is_none(),
        format_args!("page at {:#x}: slot {:?} wrong", addr, bad),
    );
    xen::use_hypercall_page(true);
    let v = xen::xen_version(XENVER_version, 0);
    xen::use_hypercall_page(false);
    expect_eq(S, "xen-version-via-page", v, XEN_4_17);
}

/// Cycles per call of `a` and of `b`: 10 interleaved batches of `n / 10` calls
/// each, the fastest batch of each kind. Another vCPU's time slice (the domU runs
/// beside dom0 on one CPU) lands in some batches, never in both fastest ones.
fn fastest_batches(n: u64, mut a: impl FnMut(), mut b: impl FnMut()) -> (u64, u64) {
    let per = (n / 10).max(1);
    let batch = |f: &mut dyn FnMut()| {
        let t0 = rdtsc();
        for _ in 0..per {
            f();
        }
        (rdtsc() - t0) / per
    };
    a();
    b();
    let (mut best_a, mut best_b) = (u64::MAX, u64::MAX);
    for _ in 0..10 {
        best_a = best_a.min(batch(&mut a));
        best_b = best_b.min(batch(&mut b));
    }
    (best_a, best_b)
}

pub fn dom0(boot: &Boot) -> ! {
    let base = boot.xen_base.unwrap_or(0x4000_0000);
    check(
        S,
        "cpuid-signature",
        boot.xen_base.is_some(),
        format_args!("no XenVMMXenVMM"),
    );
    cpuid_checks(base, "dom0", 0);
    expect_eq(
        S,
        "xen-version-direct",
        xen::xen_version(XENVER_version, 0),
        XEN_4_17,
    );
    hypercall_page_checks();
    expect_eq(
        S,
        "console-io-write",
        xen::console_write(b"hello: a console_io write from dom0\n"),
        0,
    );

    let n = boot.arg_u64("iterations", 200);
    let (hc, cp) = fastest_batches(
        n,
        || {
            xen::xen_version(XENVER_version, 0);
        },
        || {
            cpuid(base + 1, 0);
        },
    );
    let amd = xen::vendor_is_amd();
    let (insn, _) = fastest_batches(
        n,
        || {
            xen::xen_version_insn(amd, XENVER_version);
        },
        || {},
    );
    measure("null-hypercall", hc, "tsc-cycles");
    measure("null-hypercall-insn", insn, "tsc-cycles");
    measure("cpuid-exit", cp, "tsc-cycles");
    measure(
        "null-hypercall-per-cpuid-exit",
        hc * 100 / cp.max(1),
        "percent",
    );

    if let Some(domu) = boot.arg("domu").and_then(guest_rt::parse_u64) {
        let info = dom0::wait_stopped(domu as u16, boot.arg_u64("wait", 200_000));
        match info {
            Some(i) => expect_eq(
                S,
                "domu-shutdown-code",
                i.code() as i64,
                SHUTDOWN_reboot as i64,
            ),
            None => check(
                S,
                "domu-shutdown-code",
                false,
                format_args!("d{} never stopped", domu),
            ),
        }
    }
    done(S);
    println!("hello: dom0 powers off");
    xen::shutdown(SHUTDOWN_poweroff)
}

pub fn domu(boot: &Boot) -> ! {
    let base = boot.xen_base.unwrap_or(0x4000_0000);
    let domid = boot.arg_u64("domid", 1) as u32;
    cpuid_checks(base, "domu", domid);
    expect_eq(
        S,
        "domu-xen-version",
        xen::xen_version(XENVER_version, 0),
        XEN_4_17,
    );
    guest_rt::report::domu_exit(S, &cat_name("d", domid as u16), SHUTDOWN_reboot)
}
