//! The hypercall dispatcher: hypercall number + the 64-bit HVM argument registers
//! → handler → the value for RAX (a negative errno on failure).
//!
//! Mirrors Xen 4.17's `xen/arch/x86/hvm/hypercall.c` (`hvm_hypercall()`, 64-bit
//! calling convention: number in EAX, arguments in RDI, RSI, RDX, R10, R8) and the
//! `hvm64` column of `xen/include/hypercall-defs.c` (which hypercalls an HVM/PVH
//! guest may make: everything else is `-ENOSYS`).
//!
//! Handlers written elsewhere plug in through [`ExtHandlers`]: event channels
//! (`__HYPERVISOR_event_channel_op`), HVM ops (`__HYPERVISOR_hvm_op`), memory ops,
//! vCPU ops and the event-channel questions `SCHEDOP_poll` and `SCHEDOP_block` ask.
//! [`NoExt`] answers `-ENOSYS` for all of them until the integrator wires them.
//!
//! ## Continuations (preemptible hypercalls)
//!
//! Xen's `hypercall_create_continuation()` for HVM guests: a handler whose work
//! the guest controls (a console write of 2³² bytes, a batch of 2³² pages)
//! does a bounded amount per entry. When its budget is used it records, through
//! [`DomainTable::create_continuation`], the hypercall number and the argument
//! registers to re-enter with (a buffer pointer moved on, a count reduced, a
//! start index encoded in `cmd` as memory_op does, or progress kept in the
//! guest's own struct as `HVMOP_altp2m_set_mem_access_multi` does) and returns.
//! A handler whose progress is all in guest memory may instead return
//! `-ERESTART` (Xen's internal errno): that re-enters with the same number and
//! arguments, and never reaches the guest. [`hypercall_entry`] then answers [`HypercallOutcome::Continue`]; the exit path
//! ([`HypercallOutcome::apply`]) leaves RIP on the VMCALL/VMMCALL, sets RAX to
//! the number and the argument registers to the new values, and the guest
//! executes the instruction again. In between, the state lock is dropped,
//! pending events are injected (the guest's handler returns to the same
//! instruction), and the vCPU may be descheduled at its slice end: the other
//! vCPUs and domains run. The guest sees one call, whose RAX is the final
//! result. [`do_hypercall`] is the run-to-completion form (host tests, callers
//! with no guest to re-enter): it re-enters in a loop.

// Xen's names (`XEN_DOMCTL_createdomain`, `__HYPERVISOR_domctl`, ...) in match patterns.
#![allow(non_upper_case_globals)]

use alloc::boxed::Box;

use log::{debug, warn};
use xen_public_abi::xen::{
    __HYPERVISOR_arch_1, __HYPERVISOR_argo_op, __HYPERVISOR_console_io, __HYPERVISOR_dm_op,
    __HYPERVISOR_domctl, __HYPERVISOR_event_channel_op, __HYPERVISOR_grant_table_op,
    __HYPERVISOR_hvm_op, __HYPERVISOR_hypfs_op, __HYPERVISOR_memory_op, __HYPERVISOR_mmuext_op,
    __HYPERVISOR_multicall, __HYPERVISOR_physdev_op, __HYPERVISOR_platform_op,
    __HYPERVISOR_sched_op, __HYPERVISOR_set_timer_op, __HYPERVISOR_sysctl, __HYPERVISOR_vcpu_op,
    __HYPERVISOR_vm_assist, __HYPERVISOR_xen_version, __HYPERVISOR_xenpmu_op, __HYPERVISOR_xsm_op,
    domid_t,
};
use xen_public_abi::{Errno, XenResult};

use super::console_io::{self, Console};
use super::domain::{Domain, DomainTable};
use super::guest_access::GuestAccess;
use super::{domctl, sched_op, sysctl, xen_version};

/// Who is calling: the domain and the vCPU that executed VMCALL/VMMCALL.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Caller {
    pub domid: domid_t,
    pub vcpu: u32,
}

/// The five argument registers of the 64-bit HVM convention, in order:
/// RDI, RSI, RDX, R10, R8.
pub type HypercallArgs = [u64; 5];

/// A preempted hypercall: what the guest re-executes the hypercall instruction
/// with (RAX = `number`, RDI, RSI, RDX, R10, R8 = `args`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Continuation {
    pub number: u32,
    pub args: HypercallArgs,
}

/// What one entry into the dispatcher ended with.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HypercallOutcome {
    /// Finished: the value for RAX; RIP moves past the instruction.
    Done(i64),
    /// Work budget used: re-enter with these registers; RIP stays.
    Continue(Continuation),
}

/// The registers a 64-bit HVM hypercall reads and writes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct HypercallRegs {
    pub rax: u64,
    /// RDI, RSI, RDX, R10, R8.
    pub args: HypercallArgs,
}

impl HypercallOutcome {
    /// Write the outcome into the guest's registers. Returns whether RIP
    /// advances past the hypercall instruction (`false`: the guest executes it
    /// again, Xen's `hcall_preempted`).
    pub fn apply(&self, regs: &mut HypercallRegs) -> bool {
        match *self {
            HypercallOutcome::Done(ret) => {
                regs.rax = ret as u64;
                true
            }
            HypercallOutcome::Continue(c) => {
                regs.rax = u64::from(c.number);
                regs.args = c.args;
                false
            }
        }
    }
}

/// Monotonic system time (`NOW()`), in nanoseconds since boot.
pub trait Clock {
    fn now_ns(&self) -> u64;
}

/// The arch-neutral hypervisor state the hypercall handlers work on.
pub struct Hypervisor {
    pub domains: DomainTable,
    pub console: Console,
    pub clock: Box<dyn Clock + Send>,
}

impl Hypervisor {
    pub fn new(domains: DomainTable, console: Console, clock: Box<dyn Clock + Send>) -> Self {
        Hypervisor {
            domains,
            console,
            clock,
        }
    }
}

// The integrator keeps the hypervisor state behind a lock shared by all CPUs.
const _: () = {
    const fn assert_send<T: Send>() {}
    assert_send::<Hypervisor>();
};

/// The seam for hypercalls and questions answered by modules outside this one
/// (event channels, HVM ops, memory ops, vCPU ops).
///
/// **Integration point.** Every method has a default that answers `-ENOSYS` (or
/// "nothing pending"), which is what a guest sees until the integrator implements
/// this trait for a type that calls `event_channel::do_event_channel_op(...)`,
/// `hvm::do_hvm_op(...)`, ... with the domain table. Arguments are passed raw
/// (full 64-bit registers); each handler truncates as its Xen prototype does.
pub trait ExtHandlers {
    /// `__HYPERVISOR_event_channel_op` (32): `(int cmd, void *arg)`.
    fn event_channel_op(
        &mut self,
        _domains: &mut DomainTable,
        _caller: Caller,
        _cmd: u64,
        _arg: u64,
        _guest: &mut dyn GuestAccess,
    ) -> i64 {
        debug!("event_channel_op: event channels are not wired into the dispatcher yet");
        Errno::ENOSYS.as_ret()
    }

    /// `__HYPERVISOR_hvm_op` (34): `(unsigned long op, void *arg)`.
    fn hvm_op(
        &mut self,
        _domains: &mut DomainTable,
        _caller: Caller,
        _op: u64,
        _arg: u64,
        _guest: &mut dyn GuestAccess,
    ) -> i64 {
        debug!("hvm_op: HVM ops are not wired into the dispatcher yet");
        Errno::ENOSYS.as_ret()
    }

    /// `__HYPERVISOR_memory_op` (12): `(unsigned long cmd, void *arg)`.
    fn memory_op(
        &mut self,
        _domains: &mut DomainTable,
        _caller: Caller,
        _cmd: u64,
        _arg: u64,
        _guest: &mut dyn GuestAccess,
    ) -> i64 {
        debug!("memory_op: memory ops are not wired into the dispatcher yet");
        Errno::ENOSYS.as_ret()
    }

    /// `__HYPERVISOR_grant_table_op` (20): `(unsigned int cmd, void *uop,
    /// unsigned int count)`.
    fn grant_table_op(
        &mut self,
        _domains: &mut DomainTable,
        _caller: Caller,
        _cmd: u64,
        _uop: u64,
        _count: u64,
        _guest: &mut dyn GuestAccess,
    ) -> i64 {
        debug!("grant_table_op: grant tables are not wired into the dispatcher");
        Errno::ENOSYS.as_ret()
    }

    /// `__HYPERVISOR_vcpu_op` (24): `(int cmd, unsigned int vcpuid, void *arg)`.
    fn vcpu_op(
        &mut self,
        _domains: &mut DomainTable,
        _caller: Caller,
        _cmd: u64,
        _vcpuid: u64,
        _arg: u64,
        _guest: &mut dyn GuestAccess,
    ) -> i64 {
        debug!("vcpu_op: vCPU ops are not wired into the dispatcher yet");
        Errno::ENOSYS.as_ret()
    }

    /// `evtchn_port_poll()` for `SCHEDOP_poll`: `Ok(true)` if `port` of domain `d`
    /// is pending, `Ok(false)` if not, `-EINVAL` for an invalid port. The default
    /// answers `-ENOSYS`: without event channels there is nothing to poll.
    fn evtchn_port_poll(&mut self, _d: &mut Domain, _port: u32) -> XenResult<bool> {
        Err(Errno::ENOSYS)
    }

    /// `local_events_need_delivery()`: the vCPU has an event upcall pending and
    /// unmasked (so `SCHEDOP_block`/`poll` return at once). Default: no.
    fn local_events_need_delivery(&mut self, _d: &mut Domain, _vcpu: u32) -> bool {
        false
    }

    /// A vCPU structure is being created by `XEN_DOMCTL_max_vcpus` (the backend may
    /// allocate its hardware state here; an error aborts the domctl).
    fn vcpu_create(&mut self, _d: &mut Domain, _vcpu: u32) -> XenResult<()> {
        Ok(())
    }

    /// The machine's facts (physinfo, CPU masks). Default: one CPU, nothing known.
    fn host_facts(&self) -> HostFacts {
        HostFacts::default()
    }

    /// Domain `id` was just paused by the toolstack (`XEN_DOMCTL_pausedomain`):
    /// return once none of its vCPUs is in guest mode (Xen's `domain_pause`
    /// waits for them to stop).
    fn domain_pause(&mut self, _domains: &mut DomainTable, _id: domid_t) {}

    /// Domain `id` is about to be destroyed (close its event channels, drop its
    /// p2m views, ...). It is still in the table while this runs.
    fn domain_destroy(&mut self, _domains: &mut DomainTable, _id: domid_t) {}

    /// Domain `id` has shut down (Xen sends `VIRQ_DOM_EXC` to dom0 here; for the
    /// hardware domain the machine should power off or reboot per `reason`).
    fn domain_shutdown(&mut self, _domains: &mut DomainTable, _id: domid_t, _reason: u32) {}
}

/// Facts about the machine the toolstack asks for (`XEN_SYSCTL_physinfo`, CPU
/// masks, the HVM save header). The boot code fills them in.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct HostFacts {
    /// CPUs online.
    pub nr_cpus: u32,
    pub cpu_khz: u32,
    /// Frames of RAM the hypervisor manages, and how many are free now.
    pub total_pages: u64,
    pub free_pages: u64,
    /// The highest machine frame number.
    pub max_mfn: u64,
    /// CPUID leaf 1 EAX of the boot CPU.
    pub cpuid1_eax: u32,
}

impl Default for HostFacts {
    fn default() -> Self {
        HostFacts {
            nr_cpus: 1,
            cpu_khz: 0,
            total_pages: 0,
            free_pages: 0,
            max_mfn: 0,
            cpuid1_eax: 0,
        }
    }
}

/// The [`ExtHandlers`] with nothing wired: every external hypercall is `-ENOSYS`.
pub struct NoExt;
impl ExtHandlers for NoExt {}

/// The backend's check before calling [`do_hypercall`]: a hypercall from CPL != 0
/// fails with `-EPERM` (Xen's `hvm_hypercall()`). Returns the RAX value to set
/// instead of dispatching, if any.
pub fn check_cpl(cpl: u8) -> Option<i64> {
    (cpl != 0).then_some(Errno::EPERM.as_ret())
}

/// Dispatch one hypercall made by `caller` in 64-bit mode and run it to
/// completion: a continuation is re-entered at once, in a loop, as a guest that
/// re-executes the instruction would (with nothing else running in between).
/// Returns the value for RAX. The exit path uses [`hypercall_entry`] instead.
pub fn do_hypercall(
    hv: &mut Hypervisor,
    ext: &mut dyn ExtHandlers,
    caller: Caller,
    number: u64,
    args: HypercallArgs,
    guest: &mut dyn GuestAccess,
) -> i64 {
    let mut regs = HypercallRegs { rax: number, args };
    loop {
        let outcome = hypercall_entry(hv, ext, caller, regs.rax, regs.args, guest);
        if outcome.apply(&mut regs) {
            return regs.rax as i64;
        }
    }
}

/// One entry into the dispatcher for a hypercall made by `caller` in 64-bit
/// mode: the handler's result, or the continuation it asked for.
///
/// `number` is RAX (Xen reads only EAX), `args` are RDI, RSI, RDX, R10, R8, `guest`
/// reaches the caller's memory. Hypercalls not available to HVM/PVH guests in
/// Xen 4.17 (and numbers out of range) are `-ENOSYS`; so are available ones this
/// hypervisor does not implement (each is listed below with that note).
pub fn hypercall_entry(
    hv: &mut Hypervisor,
    ext: &mut dyn ExtHandlers,
    caller: Caller,
    number: u64,
    args: HypercallArgs,
    guest: &mut dyn GuestAccess,
) -> HypercallOutcome {
    // A continuation left by a handler that was not dispatched from here (a
    // bug) must not be applied to this call.
    let stale = hv.domains.take_continuation();
    debug_assert!(stale.is_none(), "continuation left behind: {stale:?}");
    let ret = dispatch(hv, ext, caller, number, args, guest);
    match hv.domains.take_continuation() {
        Some(c) => HypercallOutcome::Continue(c),
        // A handler that kept its progress where its arguments point (the guest's
        // struct) re-enters with the same registers: `-ERESTART` never reaches
        // the guest.
        None if ret == Errno::ERESTART.as_ret() => HypercallOutcome::Continue(Continuation {
            number: number as u32,
            args,
        }),
        None => HypercallOutcome::Done(ret),
    }
}

/// The dispatch table proper (one handler entry).
fn dispatch(
    hv: &mut Hypervisor,
    ext: &mut dyn ExtHandlers,
    caller: Caller,
    number: u64,
    args: HypercallArgs,
    guest: &mut dyn GuestAccess,
) -> i64 {
    let number = number as u32;
    if hv.domains.get(caller.domid).is_none() {
        warn!(
            "hypercall {number} from d{} which is not in the domain table",
            caller.domid
        );
        return Errno::ESRCH.as_ret();
    }
    let [a1, a2, a3, _a4, _a5] = args;
    match number {
        __HYPERVISOR_xen_version => xen_version::do_xen_version(hv, caller, a1 as i32, a2, guest),
        __HYPERVISOR_console_io => console_io::do_console_io(hv, caller, a1 as u32, a2 as u32, a3, guest),
        __HYPERVISOR_sched_op => sched_op::do_sched_op(hv, ext, caller, a1 as i32, a2, guest),
        __HYPERVISOR_domctl => domctl::do_domctl(hv, ext, caller, a1, guest),
        __HYPERVISOR_event_channel_op => ext.event_channel_op(&mut hv.domains, caller, a1, a2, guest),
        __HYPERVISOR_hvm_op => ext.hvm_op(&mut hv.domains, caller, a1, a2, guest),
        __HYPERVISOR_memory_op => ext.memory_op(&mut hv.domains, caller, a1, a2, guest),
        __HYPERVISOR_vcpu_op => ext.vcpu_op(&mut hv.domains, caller, a1, a2, a3, guest),
        __HYPERVISOR_grant_table_op => ext.grant_table_op(&mut hv.domains, caller, a1, a2, a3, guest),
        __HYPERVISOR_sysctl => sysctl::do_sysctl(hv, ext, caller, a1, guest),
        // Available to HVM guests in 4.17, not implemented here.
        __HYPERVISOR_platform_op
        | __HYPERVISOR_multicall
        | __HYPERVISOR_set_timer_op
        | __HYPERVISOR_vm_assist
        | __HYPERVISOR_mmuext_op
        | __HYPERVISOR_xsm_op
        | __HYPERVISOR_physdev_op
        | __HYPERVISOR_argo_op
        | __HYPERVISOR_xenpmu_op
        | __HYPERVISOR_dm_op
        | __HYPERVISOR_hypfs_op
        // __HYPERVISOR_paging_domctl_cont
        | __HYPERVISOR_arch_1 => {
            crate::gprintk!(
                caller.domid,
                log::Level::Debug,
                "d{}v{}: hypercall {number} is not implemented by this hypervisor",
                caller.domid,
                caller.vcpu
            );
            Errno::ENOSYS.as_ret()
        }
        _ => {
            crate::gprintk!(
                caller.domid,
                log::Level::Debug,
                "d{}v{}: hypercall {number} is not available to HVM guests",
                caller.domid,
                caller.vcpu
            );
            Errno::ENOSYS.as_ret()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::common::test_support::*;
    use xen_public_abi::sched::{sched_poll, sched_shutdown, SCHEDOP_poll, SCHEDOP_shutdown};
    use xen_public_abi::version::{xen_feature_info, XENVER_get_features};
    use xen_public_abi::xen::CONSOLEIO_write;

    const ENOSYS: i64 = -38;
    const EFAULT: i64 = -14;

    /// The hvm64 column of 4.17's hypercall-defs.c: the numbers an HVM guest may
    /// call. Everything else is -ENOSYS.
    const HVM_ALLOWED: [u32; 22] = [
        7, 12, 13, 15, 17, 18, 20, 21, 24, 26, 27, 29, 32, 33, 34, 35, 36, 39, 40, 41, 42, 49,
    ];

    /// Oracle E: unassigned and PV-only numbers, removed and not-built-in ones.
    #[test]
    fn not_for_hvm_is_enosys() {
        let mut env = Env::new();
        for nr in [
            0,
            1,
            2,
            3,
            4,
            5,
            6,
            8,
            9,
            10,
            11,
            14,
            16,
            19,
            22,
            23,
            25,
            28,
            30,
            31,
            37,
            38,
            39,
            43,
            48,
            50,
            55,
            60,
            63,
            64,
            1000,
            u32::MAX,
        ] {
            assert_eq!(env.hypercall(0, nr, [ARG_GVA; 5]), ENOSYS, "hypercall {nr}");
        }
        // Xen reads only EAX: the upper half of RAX is ignored.
        let caller = Caller { domid: 0, vcpu: 0 };
        let rc = do_hypercall(
            &mut env.hv,
            &mut NoExt,
            caller,
            (1 << 32) | 17,
            [0; 5],
            &mut env.mem,
        );
        assert_eq!(rc, 0x40011);
    }

    /// Everything HVM guests may call reaches a handler or the seam; the ones
    /// not implemented here (and the seams with nothing wired) answer -ENOSYS.
    #[test]
    fn hvm_allowed_numbers() {
        let mut env = Env::new();
        for nr in HVM_ALLOWED {
            let rc = env.hypercall(0, nr, [0x7fff_ffff, 0, 0, 0, 0]);
            match nr {
                // xen_version(0x7fffffff): unknown command. sched_op: unknown command.
                // console_io cmd 0x7fffffff: unknown. sysctl, domctl: bad pointer.
                17 | 18 | 29 => assert_eq!(rc, ENOSYS, "{nr}"),
                35 | 36 => assert_eq!(rc, EFAULT, "{nr}"),
                _ => assert_eq!(rc, ENOSYS, "{nr}"),
            }
        }
        assert_eq!(
            env.hypercall(0, 17, [0; 5]),
            0x40011,
            "xen_version is served"
        );
    }

    /// The seam: an ExtHandlers implementation receives 32, 34, 12 and 24 with
    /// the raw registers.
    #[test]
    fn ext_seam_routes() {
        #[derive(Default)]
        struct Rec(alloc::vec::Vec<(&'static str, u64, u64)>);
        impl ExtHandlers for Rec {
            fn event_channel_op(
                &mut self,
                _: &mut DomainTable,
                c: Caller,
                cmd: u64,
                arg: u64,
                _: &mut dyn GuestAccess,
            ) -> i64 {
                self.0.push(("evtchn", cmd, arg));
                i64::from(c.domid) + 100
            }
            fn hvm_op(
                &mut self,
                _: &mut DomainTable,
                _: Caller,
                op: u64,
                arg: u64,
                _: &mut dyn GuestAccess,
            ) -> i64 {
                self.0.push(("hvm", op, arg));
                1
            }
            fn memory_op(
                &mut self,
                _: &mut DomainTable,
                _: Caller,
                cmd: u64,
                arg: u64,
                _: &mut dyn GuestAccess,
            ) -> i64 {
                self.0.push(("memory", cmd, arg));
                2
            }
            fn vcpu_op(
                &mut self,
                _: &mut DomainTable,
                _: Caller,
                cmd: u64,
                id: u64,
                arg: u64,
                _: &mut dyn GuestAccess,
            ) -> i64 {
                self.0.push(("vcpu", cmd, id + arg));
                3
            }
        }
        let mut env = Env::new();
        let mut rec = Rec::default();
        let caller = Caller { domid: 0, vcpu: 0 };
        let mut call = |nr: u32, args| {
            do_hypercall(
                &mut env.hv,
                &mut rec,
                caller,
                u64::from(nr),
                args,
                &mut env.mem,
            )
        };
        assert_eq!(call(32, [1 << 40 | 6, 0x1000, 9, 9, 9]), 100);
        assert_eq!(call(34, [25, 0x2000, 0, 0, 0]), 1);
        assert_eq!(call(12, [7, 0x3000, 0, 0, 0]), 2);
        assert_eq!(call(24, [10, 1, 0x4000, 0, 0]), 3);
        assert_eq!(
            rec.0,
            [
                ("evtchn", 1 << 40 | 6, 0x1000),
                ("hvm", 25, 0x2000),
                ("memory", 7, 0x3000),
                ("vcpu", 10, 0x4001)
            ]
        );
        // With nothing wired, the seams answer -ENOSYS.
        for nr in [32, 34, 12, 24] {
            assert_eq!(env.hypercall(0, nr, [0; 5]), ENOSYS);
        }
    }

    /// Every hypercall that takes a pointer: a bad pointer is -EFAULT.
    #[test]
    fn bad_pointers_give_efault() {
        let mut env = Env::new();
        let d0 = 0;
        let (_, u) = env.create(&baseline(), 0);
        env.hv
            .domains
            .get_mut(u)
            .unwrap()
            .vcpus
            .push(crate::common::domain::Vcpu::new(0));
        for bad in [BAD_GVA, HOLE_GVA, u64::MAX - 2] {
            // domctl
            assert_eq!(env.hypercall(d0, 36, [bad, 0, 0, 0, 0]), EFAULT);
            // xen_version: every command that reads or writes its argument.
            for cmd in [1, 2, 3, 4, 5, 6, 8, 9] {
                assert_eq!(
                    env.hypercall(d0, 17, [cmd, bad, 0, 0, 0]),
                    EFAULT,
                    "xen_version {cmd}"
                );
                assert_eq!(
                    env.hypercall(u, 17, [cmd, bad, 0, 0, 0]),
                    EFAULT,
                    "domU xen_version {cmd}"
                );
            }
            assert_eq!(
                env.hypercall(d0, 17, [10, bad, 0, 0, 0]),
                EFAULT,
                "build_id"
            );
            // console_io write (privileged and not) and read (with input waiting).
            assert_eq!(env.hypercall(d0, 18, [0, 5, bad, 0, 0]), EFAULT);
            assert_eq!(env.hypercall(u, 18, [0, 5, bad, 0, 0]), EFAULT);
            env.hv.console.push_rx(b'x');
            assert_eq!(env.hypercall(d0, 18, [1, 5, bad, 0, 0]), EFAULT);
            // sched_op: shutdown, shutdown_code, poll, remote_shutdown, and the
            // port array of a poll.
            for cmd in [2, 5, 3, 4, 6] {
                assert_eq!(
                    env.hypercall(u, 29, [cmd, bad, 0, 0, 0]),
                    EFAULT,
                    "sched_op {cmd}"
                );
            }
            env.put(
                ARG_GVA,
                &sched_poll {
                    ports: bad,
                    nr_ports: 1,
                    _implicit0: [0; 4],
                    timeout: 0,
                },
            );
            assert_eq!(
                env.hypercall(u, 29, [u64::from(SCHEDOP_poll), ARG_GVA, 0, 0, 0]),
                EFAULT
            );
        }
        // Nothing happened to the domain on the way.
        let d = env.hv.domains.get(u).unwrap();
        assert!(!d.shutdown.is_shutting_down && d.vcpus[0].poll.is_none());
        assert_eq!(
            d.shutdown.code,
            crate::common::domain::SHUTDOWN_CODE_INVALID
        );
        // And the good pointers work.
        env.put(
            ARG_GVA,
            &xen_feature_info {
                submap_idx: 0,
                submap: 0,
            },
        );
        assert_eq!(
            env.hypercall(u, 17, [u64::from(XENVER_get_features), ARG_GVA, 0, 0, 0]),
            0
        );
        env.put(ARG_GVA, b"ok\n");
        assert_eq!(
            env.hypercall(u, 18, [u64::from(CONSOLEIO_write), 3, ARG_GVA, 0, 0]),
            0
        );
        env.put(ARG_GVA, &sched_shutdown { reason: 0 });
        assert_eq!(
            env.hypercall(u, 29, [u64::from(SCHEDOP_shutdown), ARG_GVA, 0, 0, 0]),
            0
        );
    }

    /// A toolstack's day, through hypercalls only: dom0 builds a domU, the domU
    /// boots, talks, shuts down; dom0 sees it and destroys it; every frame
    /// comes back.
    #[test]
    fn toolstack_scenario() {
        use xen_public_abi::domctl::{
            xen_domctl_getdomaininfo, xen_domctl_max_mem, xen_domctl_max_vcpus,
            XEN_DOMCTL_CDF_evtchn_upcall, XEN_DOMCTL_destroydomain, XEN_DOMCTL_getdomaininfo,
            XEN_DOMCTL_max_mem, XEN_DOMCTL_max_vcpus, XEN_DOMCTL_unpausedomain,
        };
        let mut env = Env::new();
        let frames = env.frames.outstanding();
        let mut cfg = baseline();
        cfg.max_vcpus = 2;
        cfg.flags |= XEN_DOMCTL_CDF_evtchn_upcall;
        let (rc, u) = env.create(&cfg, 0);
        assert_eq!((rc, u), (0, 1));
        assert!(env.hv.domains.get(u).unwrap().evtchn_upcall_allowed());

        let mut op = domctl_op(XEN_DOMCTL_max_vcpus, u);
        op.u.set(&xen_domctl_max_vcpus { max: 2 });
        assert_eq!(env.domctl(0, &op).0, 0);
        let mut op = domctl_op(XEN_DOMCTL_max_mem, u);
        op.u.set(&xen_domctl_max_mem { max_memkb: 64 });
        assert_eq!(env.domctl(0, &op).0, 0);
        // (memory_op's populate_physmap, wired elsewhere, takes frames like this)
        for _ in 0..16 {
            env.hv.domains.alloc_domheap_page(u).unwrap();
        }
        assert_eq!(env.hv.domains.alloc_domheap_page(u), Err(Errno::E2BIG));
        assert_eq!(env.simple(0, XEN_DOMCTL_unpausedomain, u), 0);
        // The backend brings vCPU 0 up and runs it.
        env.hv.domains.get_mut(u).unwrap().vcpus[0].online = true;

        assert_eq!(env.hypercall(u, __HYPERVISOR_xen_version, [0; 5]), 0x40011);
        env.put(
            ARG_GVA,
            &xen_feature_info {
                submap_idx: 0,
                submap: 0,
            },
        );
        let rc = env.hypercall(
            u,
            __HYPERVISOR_xen_version,
            [u64::from(XENVER_get_features), ARG_GVA, 0, 0, 0],
        );
        assert_eq!(
            (rc, env.get::<xen_feature_info>(ARG_GVA).submap),
            (0, 0x12305)
        );
        env.put(ARG_GVA, b"booted\n");
        assert_eq!(
            env.hypercall(
                u,
                __HYPERVISOR_console_io,
                [u64::from(CONSOLEIO_write), 7, ARG_GVA, 0, 0]
            ),
            0
        );
        assert_eq!(env.sink.text(), "(d1) booted\n");
        assert_eq!(
            env.simple(u, XEN_DOMCTL_destroydomain, 0),
            -1,
            "a domU has no domctl"
        );
        env.put(ARG_GVA, &sched_shutdown { reason: 0 });
        assert_eq!(
            env.hypercall(
                u,
                __HYPERVISOR_sched_op,
                [u64::from(SCHEDOP_shutdown), ARG_GVA, 0, 0, 0]
            ),
            0
        );

        let (rc, op) = env.domctl(0, &domctl_op(XEN_DOMCTL_getdomaininfo, u));
        let info: xen_domctl_getdomaininfo = op.u.get();
        assert_eq!(rc, 0);
        assert_eq!(
            info.flags,
            0x4 | 0x2 | 0x100,
            "shutdown (poweroff = code 0), hvm, hap; vCPU paused"
        );
        assert_eq!(
            (info.tot_pages, info.max_pages, info.max_vcpu_id),
            (16, 16, 1)
        );
        assert_eq!(env.simple(0, XEN_DOMCTL_destroydomain, u), 0);
        assert_eq!(env.frames.outstanding(), frames);
        assert_eq!(env.domctl(0, &domctl_op(XEN_DOMCTL_getdomaininfo, u)).0, -3);
    }

    /// A handler with a work budget: `memory_op(cmd = n | done << 32, arg)` adds
    /// `n` units into a counter, at most `BUDGET` per entry, and continues with
    /// its progress encoded in `cmd` (as Xen's memory_op encodes its start extent).
    struct Counting {
        total: u64,
        entries: u32,
    }
    const BUDGET: u64 = 10;
    impl ExtHandlers for Counting {
        fn memory_op(
            &mut self,
            domains: &mut DomainTable,
            _: Caller,
            cmd: u64,
            arg: u64,
            _: &mut dyn GuestAccess,
        ) -> i64 {
            self.entries += 1;
            let (n, mut done) = (cmd & 0xffff_ffff, cmd >> 32);
            while done < n {
                if done > 0 && done % BUDGET == 0 && (cmd >> 32) != done {
                    domains.create_continuation(
                        __HYPERVISOR_memory_op,
                        [n | done << 32, arg, 0, 0, 0],
                    );
                    return 0x5151; // ignored: the continuation wins
                }
                self.total += 1;
                done += 1;
            }
            n as i64 + arg as i64
        }
    }

    /// One entry does one budget's work and asks to be re-entered; applying the
    /// outcome keeps RIP, sets RAX to the number and the argument registers.
    #[test]
    fn continuation_outcome_and_registers() {
        let mut env = Env::new();
        let mut ext = Counting {
            total: 0,
            entries: 0,
        };
        let caller = Caller { domid: 0, vcpu: 0 };
        let out = hypercall_entry(
            &mut env.hv,
            &mut ext,
            caller,
            u64::from(__HYPERVISOR_memory_op),
            [25, 7, 0xaa, 0xbb, 0xcc],
            &mut env.mem,
        );
        let want = Continuation {
            number: __HYPERVISOR_memory_op,
            args: [25 | 10 << 32, 7, 0, 0, 0],
        };
        assert_eq!(out, HypercallOutcome::Continue(want));
        assert_eq!(ext.total, 10);
        let mut regs = HypercallRegs {
            rax: 0xdead,
            args: [1; 5],
        };
        assert!(!out.apply(&mut regs), "RIP stays on the instruction");
        assert_eq!(regs.rax, u64::from(__HYPERVISOR_memory_op));
        assert_eq!(regs.args, want.args);
        assert!(env.hv.domains.take_continuation().is_none(), "consumed");
        // Done: RIP advances, RAX is the result, the arguments are untouched.
        let mut regs = HypercallRegs {
            rax: 12,
            args: [3; 5],
        };
        assert!(HypercallOutcome::Done(-22).apply(&mut regs));
        assert_eq!((regs.rax as i64, regs.args), (-22, [3; 5]));
    }

    /// A guest that re-executes the instruction until RIP moves sees one call
    /// with the same result as the run-to-completion form; the work was done in
    /// bounded entries; a call under budget does not continue.
    #[test]
    fn guest_sees_one_call() {
        let mut env = Env::new();
        let caller = Caller { domid: 0, vcpu: 0 };
        let mut ext = Counting {
            total: 0,
            entries: 0,
        };
        let mut regs = HypercallRegs {
            rax: u64::from(__HYPERVISOR_memory_op),
            args: [1005, 3, 0, 0, 0],
        };
        let mut entries = 0;
        loop {
            entries += 1;
            let before = ext.total;
            let out = hypercall_entry(
                &mut env.hv,
                &mut ext,
                caller,
                regs.rax,
                regs.args,
                &mut env.mem,
            );
            assert!(ext.total - before <= BUDGET, "bounded work per entry");
            if out.apply(&mut regs) {
                break;
            }
        }
        assert_eq!((regs.rax, ext.total, entries), (1008, 1005, 101));

        let mut ext2 = Counting {
            total: 0,
            entries: 0,
        };
        let rc = do_hypercall(
            &mut env.hv,
            &mut ext2,
            caller,
            u64::from(__HYPERVISOR_memory_op),
            [1005, 3, 0, 0, 0],
            &mut env.mem,
        );
        assert_eq!((rc, ext2.total, ext2.entries), (1008, 1005, 101));

        let mut ext3 = Counting {
            total: 0,
            entries: 0,
        };
        let out = hypercall_entry(
            &mut env.hv,
            &mut ext3,
            caller,
            u64::from(__HYPERVISOR_memory_op),
            [4, 1, 0, 0, 0],
            &mut env.mem,
        );
        assert_eq!(out, HypercallOutcome::Done(5));
    }

    /// Defect 5 of issue 14: a domU calling unknown hypercalls in a loop gets a
    /// burst of 10 log lines, then nothing (counted); another domain's lines
    /// still pass.
    #[test]
    fn unknown_hypercall_lines_are_rate_limited() {
        use crate::common::test_support::logcap;
        let mut env = Env::new();
        let (_, u) = env.create(&baseline(), 0);
        logcap::start();
        for _ in 0..1000 {
            assert_eq!(env.hypercall(u, 60, [0; 5]), ENOSYS);
        }
        let mine = |lines: &[alloc::string::String], d: &str| {
            lines.iter().filter(|l| l.contains(d)).count()
        };
        let lines = logcap::lines();
        assert_eq!(mine(&lines, &alloc::format!("d{u}v0: hypercall 60")), 10);
        assert_eq!(env.hypercall(0, 60, [0; 5]), ENOSYS);
        assert_eq!(mine(&logcap::lines(), "d0v0: hypercall 60"), 1);
    }

    #[test]
    fn caller_must_exist() {
        let mut env = Env::new();
        assert_eq!(env.hypercall(77, 17, [0; 5]), -3);
    }

    #[test]
    fn cpl_check() {
        assert_eq!(check_cpl(0), None);
        assert_eq!(check_cpl(3), Some(-1));
        assert_eq!(check_cpl(1), Some(-1));
    }
}
