//! Host-test fixtures for the core: a booted hypervisor (PVH dom0 as in the
//! oracle's setup), fake guest memory, and helpers that issue hypercalls the way
//! a guest does (structs written to guest memory, pointer in a register).

use alloc::boxed::Box;

use xen_public_abi::arch_x86::{
    xen_arch_domainconfig, XEN_X86_EMU_IOAPIC, XEN_X86_EMU_LAPIC, XEN_X86_EMU_VPCI,
};
use xen_public_abi::domctl::{
    xen_domctl, xen_domctl_createdomain, XEN_DOMCTL_CDF_hap, XEN_DOMCTL_CDF_hvm,
    XEN_DOMCTL_createdomain, XEN_DOMCTL_INTERFACE_VERSION,
};
use xen_public_abi::xen::{__HYPERVISOR_domctl, domid_t};
use zerocopy::{FromBytes, FromZeros, Immutable, IntoBytes};

use super::console_io::fake::RecordingSink;
use super::console_io::Console;
use super::domain::{Domain, DomainTable, HostCaps};
use super::domctl::create_vcpus;
use super::guest_access::fake::FakeMemory;
use super::guest_access::{GuestMemory, GuestRam, MachineMemory};
use super::hypercall::{do_hypercall, Caller, Clock, Hypervisor, NoExt};
use super::page_alloc::fake::CountingFrames;

/// Fake guest memory size, and where helpers put argument structs.
pub const MEM_SIZE: usize = 0x10000;
pub const ARG_GVA: u64 = 0x1000;
/// A page the fake memory leaves unmapped (every access faults).
pub const HOLE_GVA: u64 = 0x8000;
/// An address past the end of guest memory.
pub const BAD_GVA: u64 = 0xdead_0000_0000;

/// The oracle's baseline createdomain configuration: HVM+HAP, 1 vCPU, LAPIC only,
/// 1023 event-channel ports, default grant limits, grant v1.
/// Map `d`'s shared_info frame at `gfn` and point its event channels there, as
/// a guest's `add_to_physmap(XENMAPSPACE_shared_info)` would: the fixture the
/// hypercall-level tests start from.
pub fn hook_shared_info(d: &mut Domain, machine: &dyn MachineMemory, gfn: u64) {
    let shinfo = d.shared_info_mfn;
    d.hvm
        .p2m
        .set_host_entry(gfn, shinfo, super::memory::P2mAccess::RWX)
        .expect("shared_info gfn");
    let mut ram = GuestRam {
        p2m: &d.hvm.p2m,
        machine,
    };
    d.evtchn
        .map_shared_info(&mut ram, Some(gfn))
        .expect("shared_info");
}

pub fn baseline() -> xen_domctl_createdomain {
    let mut c = xen_domctl_createdomain::new_zeroed();
    c.flags = XEN_DOMCTL_CDF_hvm | XEN_DOMCTL_CDF_hap;
    c.max_vcpus = 1;
    c.max_evtchn_port = 1023;
    c.max_grant_frames = -1;
    c.max_maptrack_frames = -1;
    c.grant_opts = 1;
    c.arch = xen_arch_domainconfig {
        emulation_flags: XEN_X86_EMU_LAPIC,
        misc_flags: 0,
    };
    c
}

/// The PVH dom0 configuration (2 vCPUs, LAPIC|IOAPIC|VPCI).
pub fn dom0_config() -> xen_domctl_createdomain {
    let mut c = baseline();
    c.max_vcpus = 2;
    c.arch.emulation_flags = XEN_X86_EMU_LAPIC | XEN_X86_EMU_IOAPIC | XEN_X86_EMU_VPCI;
    c
}

/// A `xen_domctl` with the right interface version.
pub fn domctl_op(cmd: u32, domain: domid_t) -> xen_domctl {
    let mut op = xen_domctl::new_zeroed();
    op.cmd = cmd;
    op.interface_version = XEN_DOMCTL_INTERFACE_VERSION;
    op.domain = domain;
    op
}

/// `XEN_DOMCTL_createdomain` for `cfg` asking for id `domain` (0 = pick).
pub fn createdomain_op(cfg: &xen_domctl_createdomain, domain: domid_t) -> xen_domctl {
    let mut op = domctl_op(XEN_DOMCTL_createdomain, domain);
    op.u.set(cfg);
    op
}

/// A clock the test moves by hand; clones share the time.
#[derive(Clone, Default)]
pub struct ManualClock(pub alloc::sync::Arc<core::sync::atomic::AtomicU64>);

impl ManualClock {
    pub fn advance_ms(&self, ms: u64) {
        self.0
            .fetch_add(ms * 1_000_000, core::sync::atomic::Ordering::Relaxed);
    }
}

impl Clock for ManualClock {
    fn now_ns(&self) -> u64 {
        self.0.load(core::sync::atomic::Ordering::Relaxed)
    }
}

/// A booted hypervisor and the test's handles on its fakes.
pub struct Env {
    pub hv: Hypervisor,
    pub frames: CountingFrames,
    pub sink: RecordingSink,
    pub clock: ManualClock,
    pub mem: FakeMemory,
}

impl Default for Env {
    fn default() -> Self {
        Env::new()
    }
}

impl Env {
    /// dom0 built through the boot path, its vCPU 0 online and running, unpaused.
    pub fn new() -> Env {
        Env::with_caps(HostCaps::THIS_HYPERVISOR)
    }

    pub fn with_caps(caps: HostCaps) -> Env {
        let frames = CountingFrames::new(1 << 20);
        let sink = RecordingSink::default();
        let clock = ManualClock::default();
        let mut domains = DomainTable::new(caps, Box::new(frames.clone()));
        let id = domains
            .create_boot_domain(Some(0), &dom0_config(), true)
            .expect("dom0 config is valid");
        let d0 = domains.get_mut(id).expect("just created");
        create_vcpus(d0, &mut NoExt).expect("NoExt creates every vCPU");
        d0.vcpus[0].online = true;
        d0.vcpus[0].running = true;
        d0.unpause_by_systemcontroller().expect("created paused");
        let console = Console::new(Box::new(sink.clone()));
        let mut mem = FakeMemory::new(MEM_SIZE);
        mem.holes.push(HOLE_GVA >> 12);
        Env {
            hv: Hypervisor::new(domains, console, Box::new(clock.clone())),
            frames,
            sink,
            clock,
            mem,
        }
    }

    /// A hypercall from vCPU 0 of `domid`, with no external handlers wired.
    pub fn hypercall(&mut self, domid: domid_t, nr: u32, args: [u64; 5]) -> i64 {
        let caller = Caller { domid, vcpu: 0 };
        do_hypercall(
            &mut self.hv,
            &mut NoExt,
            caller,
            u64::from(nr),
            args,
            &mut self.mem,
        )
    }

    /// A hypercall from vCPU 0 of `domid` with its own guest memory view.
    pub fn hypercall_with(
        &mut self,
        domid: domid_t,
        nr: u32,
        args: [u64; 5],
        guest: &mut dyn crate::common::guest_access::GuestAccess,
    ) -> i64 {
        let caller = Caller { domid, vcpu: 0 };
        do_hypercall(&mut self.hv, &mut NoExt, caller, u64::from(nr), args, guest)
    }

    /// Put `v` in guest memory at `gva`.
    pub fn put<T: IntoBytes + Immutable>(&mut self, gva: u64, v: &T) {
        self.mem.write_gpa(gva, v.as_bytes()).expect("test address");
    }

    /// Read a `T` from guest memory at `gva`.
    pub fn get<T: FromBytes + IntoBytes>(&self, gva: u64) -> T {
        let mut v = T::new_zeroed();
        self.mem
            .read_gpa(gva, v.as_mut_bytes())
            .expect("test address");
        v
    }

    /// Issue `op` as a domctl from `caller`; returns RAX and the struct as the
    /// guest sees it afterwards.
    pub fn domctl(&mut self, caller: domid_t, op: &xen_domctl) -> (i64, xen_domctl) {
        self.put(ARG_GVA, op);
        let rc = self.hypercall(caller, __HYPERVISOR_domctl, [ARG_GVA, 0, 0, 0, 0]);
        (rc, self.get(ARG_GVA))
    }

    /// createdomain from dom0; returns RAX and the domain id written back.
    pub fn create(&mut self, cfg: &xen_domctl_createdomain, domain: domid_t) -> (i64, domid_t) {
        let (rc, op) = self.domctl(0, &createdomain_op(cfg, domain));
        (rc, op.domain)
    }

    /// A plain domctl (no payload) from `caller` on `domain`; returns RAX.
    pub fn simple(&mut self, caller: domid_t, cmd: u32, domain: domid_t) -> i64 {
        self.domctl(caller, &domctl_op(cmd, domain)).0
    }
}

/// Captures `log` records per test thread, so a test can check that a refusal
/// says why.
pub mod logcap {
    use alloc::format;
    use alloc::string::String;
    use alloc::vec::Vec;
    use core::cell::RefCell;

    struct Capture;

    std::thread_local! {
        static LINES: RefCell<Vec<String>> = const { RefCell::new(Vec::new()) };
        /// Only threads that called [`start`] capture (others must not allocate
        /// here: tests count heap bytes).
        static CAPTURING: core::cell::Cell<bool> = const { core::cell::Cell::new(false) };
    }

    impl log::Log for Capture {
        fn enabled(&self, _: &log::Metadata) -> bool {
            true
        }
        fn log(&self, record: &log::Record) {
            if !CAPTURING.with(|c| c.get()) {
                return;
            }
            LINES.with(|l| {
                l.borrow_mut()
                    .push(format!("{} {}", record.level(), record.args()))
            });
        }
        fn flush(&self) {}
    }

    static CAPTURE: Capture = Capture;

    /// Install the capturing logger (once per process) and clear this thread's lines.
    pub fn start() {
        let _ = log::set_logger(&CAPTURE);
        log::set_max_level(log::LevelFilter::Trace);
        LINES.with(|l| l.borrow_mut().clear());
        CAPTURING.with(|c| c.set(true));
    }

    /// The lines this thread logged since [`start`].
    pub fn lines() -> Vec<String> {
        LINES.with(|l| l.borrow().clone())
    }
}
