//! The per-CPU run loop: every physical CPU picks the next runnable vCPU from the
//! shared round-robin queue (`common::sched`), runs it through the vCPU
//! interface until its time slice ends (the APIC timer tick makes an exit) or
//! it blocks, yields or its domain stops, and halts when nothing is runnable.
//!
//! Mirrors Xen 4.17's `schedule()` / `context_switch()` / `idle_loop()`
//! (`xen/common/sched/core.c`, `xen/arch/x86/domain.c`) in one loop. The
//! hypervisor state (`Hypervisor` + `XenExt` + run queue + the vCPUs'
//! hardware halves) is one global behind a spin lock, taken per exit and never
//! held while a vCPU runs: a running vCPU's hardware state is moved out of the
//! table for the time it runs.
//!
//! End of run: when dom0 shuts down, `dom0 shutdown: <reason> (code <n>)` is
//! logged and the emulator run ends (poweroff → success, anything else →
//! failure).

// Xen's names (`SHUTDOWN_poweroff`, ...) in match patterns.
#![allow(non_upper_case_globals)]

use alloc::boxed::Box;
use alloc::collections::{BTreeMap, BTreeSet};
use alloc::vec::Vec;
use core::sync::atomic::{AtomicBool, AtomicU16, AtomicU64, Ordering};

use xen_public_abi::sched::{
    SHUTDOWN_crash, SHUTDOWN_poweroff, SHUTDOWN_reboot, SHUTDOWN_soft_reset, SHUTDOWN_suspend,
    SHUTDOWN_watchdog,
};
use xen_public_abi::xen::domid_t;

use super::domain_build::BuiltVcpu;
use super::guest_mem::VcpuGuestAccess;
use super::guest_mem::PHYS_MACHINE;
use super::hvm::exit::{self as hvm_exit, ExitEnv, HvmVcpuState};
use super::hvm::vcpu::{ExitOutcome, InitialState, Segment, Vcpu, VmExit};
use super::lock::{OrderedGuard, OrderedMutex};
use super::percpu::MAX_CPUS;
use super::shutdown::{exit, ExitCode};
use super::{apic, hvm, percpu, time};
use crate::common::dispatch::XenExt;
use crate::common::hypercall::{Clock, Hypervisor};
use crate::common::lock_order::LockClass;
use crate::common::memory::ViewId;
use crate::common::sched::{self as core_sched, Pick, RunQueue, VcpuRef};
use crate::common::time::{update_vcpu_time, update_wallclock, TimeScale};

/// System time: TSC ticks since reset scaled by the same [`TimeScale`] the
/// guests' pvclock uses, so both agree exactly.
pub struct TscClock {
    pub scale: TimeScale,
}

impl Clock for TscClock {
    fn now_ns(&self) -> u64 {
        self.scale.scale(time::rdtsc())
    }
}

/// The hardware half of one vCPU and its vendor-neutral exit state: `None`
/// while a CPU runs it.
struct Slot {
    hw: Option<(Box<dyn Vcpu>, HvmVcpuState)>,
}

/// Everything the CPUs share.
pub struct HvState {
    pub hv: Hypervisor,
    pub ext: XenExt,
    rq: RunQueue,
    slots: BTreeMap<VcpuRef, Slot>,
    scale: TimeScale,
    /// Wall time at system time 0 (ns since the epoch), for `shared_info`.
    boot_wall_ns: u64,
    /// Domains whose shutdown has been logged.
    reported: BTreeSet<domid_t>,
}

static STATE: OrderedMutex<Option<HvState>> = OrderedMutex::new(LockClass::State, None);

/// The state lock as the run loop holds it: while this CPU holds it, its log
/// lines (guest-triggered ones included) wait in memory and are written to
/// the UART after the lock is dropped (`console::defer_begin`/`defer_end`), so
/// no CPU waits for the serial port to take the lock.
struct StateGuard(Option<OrderedGuard<'static, Option<HvState>>>);

fn lock_state() -> StateGuard {
    let g = STATE.lock();
    super::console::defer_begin();
    StateGuard(Some(g))
}

impl core::ops::Deref for StateGuard {
    type Target = Option<HvState>;
    fn deref(&self) -> &Self::Target {
        // Some until drop.
        self.0.as_deref().unwrap_or(&None)
    }
}

impl core::ops::DerefMut for StateGuard {
    fn deref_mut(&mut self) -> &mut Self::Target {
        match self.0.as_deref_mut() {
            Some(s) => s,
            None => unreachable!("the guard holds the lock until it is dropped"),
        }
    }
}

impl Drop for StateGuard {
    fn drop(&mut self) {
        drop(self.0.take());
        super::console::defer_end();
    }
}

/// The domain whose vCPU each CPU is in guest mode for (`NO_GUEST`: none). Set
/// under the state lock before entry, cleared right after the exit (before the
/// lock is taken again), so [`quiesce`] — which runs under the lock — sees every
/// CPU that may be using a domain's memory.
static IN_GUEST: [AtomicU16; MAX_CPUS] = [const { AtomicU16::new(NO_GUEST) }; MAX_CPUS];
const NO_GUEST: u16 = u16::MAX;

/// `XenExt::quiesce`: no CPU runs a vCPU of `domid` when this returns, so its
/// frames can be freed ([`shootdown`]).
fn quiesce(domid: domid_t) {
    shootdown(domid);
}

/// The TLB shootdown of a p2m change (Xen's `flush_tlb_mask(d->dirty_cpumask)`):
/// send an IPI to each CPU in guest mode for `domid` — only those — and wait
/// until every one has left guest mode. A CPU that has left holds the domain's
/// old translations only in TLB entries tagged for its vCPUs, which each vCPU
/// flushes before its next entry (`P2m::tlb_generation`, checked by
/// `prepare_entry`). Called with the state lock held: CPUs only enter guest mode
/// under that lock, so the set can only shrink while we wait, and a kicked CPU
/// clears its mark before it waits for the lock, so this cannot deadlock.
pub fn shootdown(domid: domid_t) {
    let me = percpu::cpu_index() as usize;
    let busy = |i: usize, c: &AtomicU16| i != me && c.load(Ordering::Acquire) == domid;
    let mut sent = false;
    for (i, c) in IN_GUEST.iter().enumerate() {
        if busy(i, c) {
            let apic_id = percpu::CPUS[i].apic_id.load(Ordering::Relaxed);
            // The tick's vector: its handler only counts and EOIs; the exit is
            // what we want.
            apic::send_ipi(apic_id, apic::TIMER_VECTOR);
            sent = true;
        }
    }
    if !sent {
        return;
    }
    while IN_GUEST.iter().enumerate().any(|(i, c)| busy(i, c)) {
        core::hint::spin_loop();
    }
}
/// Hardware halves made by `XEN_DOMCTL_max_vcpus` for domains created at run
/// time, waiting to join the slots (taken under the state lock, then this one).
static NEW_HW: OrderedMutex<Vec<BuiltVcpu>> = OrderedMutex::new(LockClass::NewVcpus, Vec::new());

/// `XenExt::vcpu_hw_create`: a hardware vCPU for a domain the toolstack
/// creates (`-ENOMEM` if the backend cannot make one). It joins the run loop's
/// slots at the next housekeeping, before any CPU can pick it.
fn create_hw_vcpu(domid: domid_t, vcpu: u32) -> xen_public_abi::XenResult<()> {
    let hw = hvm::new_vcpu().map_err(|e| {
        log::warn!("d{domid}v{vcpu}: no hardware vCPU: {e:?}");
        xen_public_abi::Errno::ENOMEM
    })?;
    NEW_HW.lock().push(BuiltVcpu { domid, vcpu, hw });
    Ok(())
}

/// Move new hardware halves into the slots (replacing a stale one of a
/// destroyed domain whose id came back).
fn adopt_new_vcpus(st: &mut HvState) {
    for b in core::mem::take(&mut *NEW_HW.lock()) {
        st.slots.insert(
            (b.domid, b.vcpu),
            Slot {
                hw: Some((b.hw, HvmVcpuState::new(b.domid, b.vcpu))),
            },
        );
    }
}

/// A start state loaded by `XEN_DOMCTL_sethvmcontext`, as the backends load it.
fn initial_state(s: &crate::common::hvm_save::CpuStart) -> InitialState {
    let seg = |g: &crate::common::hvm_save::SegState| Segment {
        selector: g.selector,
        base: g.base,
        limit: g.limit,
        attrib: g.attrib,
    };
    InitialState {
        rip: s.rip,
        rsp: s.rsp,
        rbx: s.rbx,
        rflags: s.rflags,
        cr0: s.cr0,
        cr3: s.cr3,
        cr4: s.cr4,
        efer: s.efer,
        cs: seg(&s.cs),
        data: seg(&s.data),
    }
}

/// Set once the state is in place: the APs leave their idle loop.
static STARTED: AtomicBool = AtomicBool::new(false);

/// Install the built domains and start scheduling on this CPU (the BSP). The
/// APs join through [`ap_idle`].
pub fn start(hv: Hypervisor, mut ext: XenExt, vcpus: Vec<BuiltVcpu>, boot_wall_ns: u64) -> ! {
    let scale = TimeScale::from_hz(time::tsc_hz());
    let mut slots = BTreeMap::new();
    for b in vcpus {
        slots.insert(
            (b.domid, b.vcpu),
            Slot {
                hw: Some((b.hw, HvmVcpuState::new(b.domid, b.vcpu))),
            },
        );
    }
    ext.actions.clear();
    ext.quiesce = quiesce;
    ext.vcpu_hw_create = create_hw_vcpu;
    ext.p2m_commit = Box::new(hvm::stage2::ArchCommit);
    let mut st = HvState {
        hv,
        ext,
        rq: RunQueue::new(),
        slots,
        scale,
        boot_wall_ns,
        reported: BTreeSet::new(),
    };
    let ids: Vec<domid_t> = st.hv.domains.ids().collect();
    for id in ids {
        if let Some(d) = st.hv.domains.get_mut(id) {
            update_wallclock(d, &PHYS_MACHINE, boot_wall_ns);
        }
    }
    crate::common::log_ratelimit::set_clock(|| time::micros_since_reset() / 1000);
    *STATE.lock() = Some(st);
    STARTED.store(true, Ordering::Release);
    run_loop()
}

/// An AP's life after start-up: halt until [`start`] has run, then schedule.
pub fn ap_idle() -> ! {
    // No tick yet (the BSP calibrates the APIC timer after the APs are up), so
    // wait by spinning: this lasts from AP start-up to the end of domain building.
    while !STARTED.load(Ordering::Acquire) {
        core::hint::spin_loop();
    }
    // The tick wakes this CPU when idle and preempts its vCPUs.
    apic::start_periodic();
    run_loop()
}

/// What to do with the vCPU after an exit.
enum Next {
    Run,
    Deschedule,
}

fn run_loop() -> ! {
    let cpu = percpu::cpu_index();
    // cpu_index() < MAX_CPUS: it indexes percpu::CPUS.
    let in_guest = &IN_GUEST[cpu as usize];
    if let Err(e) = hvm::cpu_enable() {
        log::error!("cpu{cpu}: cannot run vCPUs: {e:?}");
        loop {
            x86_64::instructions::interrupts::enable_and_hlt();
        }
    }
    loop {
        let picked = {
            let mut guard = lock_state();
            let Some(st) = guard.as_mut() else {
                drop(guard);
                x86_64::instructions::interrupts::enable_and_hlt();
                continue;
            };
            housekeeping(st);
            let picked = pick(st);
            if let Some((p, _)) = &picked {
                in_guest.store(p.who.0, Ordering::Release);
                RUNNING_BOOSTED[cpu as usize].store(p.boosted, Ordering::Release);
            }
            picked
        };
        let Some((
            Pick {
                who,
                slice_ns,
                mut boosted,
            },
            (mut hw, mut vst),
        )) = picked
        else {
            // Nothing runnable: sleep until the next interrupt (the timer tick
            // runs the timers; events from other CPUs make vCPUs runnable).
            x86_64::instructions::interrupts::enable_and_hlt();
            continue;
        };
        let started = time::rdtsc();
        // The slice (a boosted pick: its boost tokens) ends at the first exit
        // after this.
        let ticks = |ns: u64| time::tsc_hz() * ns / 1_000_000_000;
        let mut slice_end = started + ticks(slice_ns);
        loop {
            super::lock::assert_none_held();
            x86_64::instructions::interrupts::disable();
            let exit = hw.run();
            in_guest.store(NO_GUEST, Ordering::Release);
            x86_64::instructions::interrupts::enable();
            let mut guard = lock_state();
            let Some(st) = guard.as_mut() else { break };
            let slice_over = time::rdtsc() >= slice_end;
            let mut next = after_exit(st, who, &mut *hw, &mut vst, exit, slice_over, boosted);
            if boosted && matches!(next, Next::Run) && !events_pending(st, who) {
                // Its events are taken: the boost ends, the slice goes on.
                let now = time::rdtsc();
                let ran = st.scale.scale(now.saturating_sub(started));
                st.rq.unboost(st.hv.clock.now_ns(), who, ran);
                boosted = false;
                RUNNING_BOOSTED[cpu as usize].store(false, Ordering::Release);
                slice_end = started + ticks(core_sched::SLICE_NS);
            }
            if matches!(next, Next::Run) {
                if let Err(o) = hvm_exit::prepare_entry(&mut *hw, &mut st.hv, &mut st.ext, &mut vst)
                {
                    log::debug!("d{}v{}: not entering: {o:?}", who.0, who.1);
                    next = Next::Deschedule;
                }
            }
            match next {
                Next::Run => {
                    in_guest.store(who.0, Ordering::Release);
                    drop(guard);
                }
                Next::Deschedule => {
                    ON_CPU[cpu as usize].store(NO_VCPU, Ordering::Release);
                    RUNNING_BOOSTED[cpu as usize].store(false, Ordering::Release);
                    let ran = st.scale.scale(time::rdtsc().saturating_sub(started));
                    st.rq.put(&mut st.hv, &st.ext, who, ran);
                    if let Some(s) = st.slots.get_mut(&who) {
                        s.hw = Some((hw, vst));
                    }
                    housekeeping(st);
                    break;
                }
            }
        }
    }
}

/// Timers, queued backend actions and the end-of-run rule.
fn housekeeping(st: &mut HvState) {
    core_sched::tick(&mut st.hv, &mut st.ext);
    console_input(st);
    let woken = hvm_exit::drain_actions(&mut st.hv, &mut st.ext);
    wake(st, &woken);
    reap_destroyed(st);
    adopt_new_vcpus(st);
    check_dom0(st);
}

/// Serial input to dom0 (`CONSOLEIO_read`, `VIRQ_CONSOLE`): Xen's serial
/// receive path, polled here.
fn console_input(st: &mut HvState) {
    let mut buf = [0u8; 16];
    let n = super::console::poll_rx(&mut buf);
    for &c in &buf[..n] {
        let mut env = st.ext.evtchn_env(&mut st.hv.domains, 0);
        crate::common::console_io::serial_rx(&mut st.hv.console, &mut env, c);
    }
}

/// Free the hardware halves and stage-2 trees of domains that were destroyed
/// (`XEN_DOMCTL_destroydomain`), once none of their vCPUs is on a CPU (a running
/// one is back within a tick: its domain is gone, so it is not entered again).
///
/// (The domain's frames were already freed by `destroydomain`, after [`quiesce`]
/// made sure none of its vCPUs was in guest mode.)
fn reap_destroyed(st: &mut HvState) {
    let gone: BTreeSet<domid_t> = st
        .slots
        .keys()
        .map(|(id, _)| *id)
        .filter(|id| st.hv.domains.get(*id).is_none())
        .collect();
    let mut doms = BTreeSet::new();
    for id in gone {
        let busy = st
            .slots
            .iter()
            .any(|((d, _), s)| *d == id && s.hw.is_none());
        if busy {
            continue;
        }
        st.slots.retain(|(d, _), _| *d != id);
        doms.insert(id);
    }
    for id in doms {
        hvm::stage2::domain_destroyed(id);
        st.rq.forget_domain(id);
        st.reported.remove(&id);
        log::debug!("d{id}: vCPUs and stage-2 tables freed");
    }
}

/// Which vCPU each CPU has picked (`on_cpu_pack`), or [`NO_VCPU`]: set when
/// [`pick`] hands it out, cleared when it is put back. With [`IN_GUEST`] this
/// tells [`kick`] where a vCPU is.
static ON_CPU: [AtomicU64; MAX_CPUS] = [const { AtomicU64::new(NO_VCPU) }; MAX_CPUS];
const NO_VCPU: u64 = u64::MAX;

fn on_cpu_pack((domid, vcpu): VcpuRef) -> u64 {
    (u64::from(domid) << 32) | u64::from(vcpu)
}

/// vCPUs got an event: make the right CPU look now rather than at its next tick
/// (`vcpu_kick`). A vCPU in guest mode on another CPU: IPI that CPU (the exit
/// delivers the event before re-entry). Picked but not in guest mode, or on
/// this CPU: nothing (the event is injected before its next entry). Not on any
/// CPU (runnable, waiting): IPI one idle CPU, which wakes and picks. Each CPU
/// is sent at most one IPI per call. (The tick's vector serves: its handler
/// only counts and EOIs.) A woken vCPU that got a boost ([`RunQueue::wake`])
/// and finds no idle CPU preempts one that runs an unboosted vCPU in guest
/// mode (a CPU in the hypervisor sees the boost at the end of its exit).
/// Called with the state lock held.
fn kick(woken: &[(domid_t, u32)], boosted: &[bool]) {
    if woken.is_empty() || percpu::online_count() < 2 {
        return;
    }
    let me = percpu::cpu_index() as usize;
    let online = |c: usize| percpu::CPUS[c].online.load(Ordering::Acquire);
    let mut targets = 0u64;
    for &who in woken {
        let key = on_cpu_pack(who);
        let cpu = ON_CPU.iter().position(|c| c.load(Ordering::Acquire) == key);
        match cpu {
            Some(c) if c != me && IN_GUEST[c].load(Ordering::Acquire) == who.0 => {
                targets |= 1 << c;
            }
            Some(_) => {}
            None => {
                let idle = (0..MAX_CPUS).find(|&c| {
                    c != me && online(c) && ON_CPU[c].load(Ordering::Acquire) == NO_VCPU
                });
                let preempt = || {
                    (0..MAX_CPUS).find(|&c| {
                        c != me
                            && targets & (1 << c) == 0
                            && IN_GUEST[c].load(Ordering::Acquire) != NO_GUEST
                            && !RUNNING_BOOSTED[c].load(Ordering::Acquire)
                    })
                };
                let was_boosted = woken
                    .iter()
                    .position(|w| *w == who)
                    .and_then(|i| boosted.get(i).copied())
                    .unwrap_or(false);
                if let Some(c) = idle.or_else(|| was_boosted.then(preempt).flatten()) {
                    targets |= 1 << c;
                }
            }
        }
    }
    for c in 0..MAX_CPUS {
        if targets & (1 << c) != 0 {
            let apic_id = percpu::CPUS[c].apic_id.load(Ordering::Relaxed);
            apic::send_ipi(apic_id, apic::TIMER_VECTOR);
        }
    }
}

/// A picked vCPU: the pick and its hardware half with the exit state.
type Picked = (Pick, (Box<dyn Vcpu>, HvmVcpuState));

/// Whether the vCPU each CPU runs was picked boosted (it is not preempted for
/// another boosted one).
static RUNNING_BOOSTED: [AtomicBool; MAX_CPUS] = [const { AtomicBool::new(false) }; MAX_CPUS];

/// vCPUs got events: boost those waiting to run ([`RunQueue::wake`]) and kick
/// the CPUs that should look.
fn wake(st: &mut HvState, woken: &[(domid_t, u32)]) {
    if woken.is_empty() {
        return;
    }
    let boosted: Vec<bool> = woken.iter().map(|&w| st.rq.wake(&st.hv, w)).collect();
    kick(woken, &boosted);
}

/// Pick a vCPU whose hardware half is free and make it ready to enter.
fn pick(st: &mut HvState) -> Option<Picked> {
    loop {
        let p = st.rq.pick_next(&mut st.hv, &st.ext)?;
        let who = p.who;
        let hw = st.slots.get_mut(&who).and_then(|s| s.hw.take());
        let Some((mut hw, mut vst)) = hw else {
            // No hardware half (never built): take it out of the rotation.
            log::error!("d{}v{}: no hardware vCPU, taken offline", who.0, who.1);
            if let Some(c) = st.hv.domains.get_mut(who.0).and_then(|d| d.vcpu_mut(who.1)) {
                c.online = false;
                c.running = false;
            }
            continue;
        };
        let now = st.hv.clock.now_ns();
        let tsc = time::rdtsc();
        // A CPU record loaded by the toolstack: the vCPU starts there.
        if let Some(s) = st
            .hv
            .domains
            .get_mut(who.0)
            .and_then(|d| d.hvm_save.take_start(who.1))
        {
            log::debug!("d{}v{}: starting at {:#x}", who.0, who.1, s.rip);
            hw.set_initial_state(&initial_state(&s));
        }
        if let Some(d) = st.hv.domains.get_mut(who.0) {
            update_vcpu_time(d, &PHYS_MACHINE, who.1, tsc, now, st.scale);
            // shared_info may have moved (add_to_physmap) since last time.
            update_wallclock(d, &PHYS_MACHINE, st.boot_wall_ns);
        }
        match hvm_exit::prepare_entry(&mut *hw, &mut st.hv, &mut st.ext, &mut vst) {
            Ok(()) => {
                ON_CPU[percpu::cpu_index() as usize].store(on_cpu_pack(who), Ordering::Release);
                return Some((p, (hw, vst)));
            }
            Err(o) => {
                log::debug!("d{}v{}: not entering: {o:?}", who.0, who.1);
                st.rq.put(&mut st.hv, &st.ext, who, 0);
                if let Some(s) = st.slots.get_mut(&who) {
                    s.hw = Some((hw, vst));
                }
                return None;
            }
        }
    }
}

/// The vCPU has an event it has not taken yet (Xen's
/// `local_events_need_delivery`).
fn events_pending(st: &mut HvState, who: VcpuRef) -> bool {
    use crate::common::hypercall::ExtHandlers;
    match st.hv.domains.get_mut(who.0) {
        Some(d) => st.ext.local_events_need_delivery(d, who.1),
        None => false,
    }
}

/// The exit handler's verdict turned into a scheduling decision.
fn after_exit(
    st: &mut HvState,
    who: VcpuRef,
    hw: &mut dyn Vcpu,
    vst: &mut HvmVcpuState,
    exit: VmExit,
    slice_over: bool,
    boosted: bool,
) -> Next {
    // A domain being destroyed (preempted destroydomain) gives its pages back
    // between entries: an exit that waited for the lock while it started dying
    // is not handled (its guest memory may already be gone).
    if st.hv.domains.get(who.0).is_some_and(|d| d.is_dying) {
        return Next::Deschedule;
    }
    let outcome = {
        // The vCPU's root may belong to tables a commit on another CPU replaced
        // (and freed) while this exit waited for the lock: walk the live ones.
        let root = match st.hv.domains.get(who.0) {
            Some(d) => {
                let view = hw
                    .altp2m_view()
                    .filter(|_| d.hvm.p2m.altp2m_active())
                    .map_or_else(|| d.hvm.p2m.current_view(who.1), ViewId::Alt);
                hvm::stage2::live_root(who.0, hw.stage2_root(), view)
            }
            None => 0,
        };
        let mut guest = VcpuGuestAccess::new(root, hw.paging_state());
        let mut env = ExitEnv {
            hv: &mut st.hv,
            ext: &mut st.ext,
            guest: &mut guest,
            state: vst,
        };
        hvm_exit::handle(hw, exit, &mut env)
    };
    let woken = hvm_exit::drain_actions(&mut st.hv, &mut st.ext);
    wake(st, &woken);
    // A boosted vCPU waits: an unboosted one makes room for it.
    let preempted = !boosted && st.rq.boost_waiting();
    let runnable = st
        .hv
        .domains
        .get(who.0)
        .and_then(|d| d.vcpu(who.1).map(|c| (d, c)))
        .is_some_and(|(d, c)| d.is_runnable() && c.online && !c.paused_for_shutdown);
    match outcome {
        ExitOutcome::Continue if runnable && !slice_over && !preempted => Next::Run,
        ExitOutcome::Continue | ExitOutcome::Yield => Next::Deschedule,
        ExitOutcome::Block => {
            core_sched::block(&mut st.hv, &mut st.ext, who);
            Next::Deschedule
        }
        ExitOutcome::Shutdown { .. } | ExitOutcome::Crashed => Next::Deschedule,
    }
}

fn reason_name(code: u32) -> &'static str {
    match code {
        SHUTDOWN_poweroff => "poweroff",
        SHUTDOWN_reboot => "reboot",
        SHUTDOWN_suspend => "suspend",
        SHUTDOWN_crash => "crash",
        SHUTDOWN_watchdog => "watchdog",
        SHUTDOWN_soft_reset => "soft_reset",
        _ => "unknown",
    }
}

/// dom0 shut down: end the emulator run; other domains' shutdowns are logged
/// once (`d<id> shutdown: <reason>`), and only they stop.
fn check_dom0(st: &mut HvState) {
    let down: Vec<(domid_t, u32)> = st
        .hv
        .domains
        .ids()
        .filter(|&id| id != 0 && !st.reported.contains(&id))
        .filter_map(|id| st.hv.domains.get(id))
        // A crash was logged as `d<id> crashed: <why>` when it happened.
        .filter(|d| d.shutdown.is_shutting_down && d.shutdown.code != SHUTDOWN_crash)
        .map(|d| (d.domain_id, d.shutdown.code))
        .collect();
    for (id, code) in down {
        log::info!("d{id} shutdown: {} (code {code})", reason_name(code));
        st.reported.insert(id);
    }
    let Some(d0) = st.hv.domains.get(0) else {
        return;
    };
    if !d0.shutdown.is_shutting_down {
        return;
    }
    let code = d0.shutdown.code;
    let name = reason_name(code);
    log::info!("dom0 shutdown: {name} (code {code})");
    if code == SHUTDOWN_poweroff {
        exit(ExitCode::Success, "")
    }
    let why = alloc::format!("dom0 {name}");
    exit(ExitCode::Failure, &why)
}
