//! Event channels: ports, their states and the `EVTCHNOP_*` hypercall
//! (mirrors Xen 4.17's `xen/common/event_channel.c`; the per-ABI delivery is in
//! [`two_level`] (`event_2l.c`) and [`fifo`] (`event_fifo.c`)).
//!
//! # Shape
//!
//! - [`EvtchnDomain`] holds all of one domain's event-channel state: the port
//!   table (in buckets of 64, as Xen: a port is *valid* only once its bucket
//!   exists), the VIRQ bindings, where `shared_info` is, and which ABI is active.
//! - The ABI is a [`PortOps`] trait object (Xen's `struct evtchn_port_ops`)
//!   chosen per domain: [`two_level::TwoLevel`] from creation and after
//!   `EVTCHNOP_reset`, [`fifo::Fifo`] after the first `EVTCHNOP_init_control`.
//!   The generic code never asks which one is active.
//! - [`EvtchnEnv`] is everything this module needs from the rest of the
//!   hypervisor (the domain table): who is calling, a domain's state and
//!   memory by id, its controller pause count, and the upcall sink.
//! - [`do_event_channel_op`] is `__HYPERVISOR_event_channel_op` (32); [`send_virq`],
//!   [`evtchn_port_poll`] and [`evtchn_destroy`] are the entry points for the
//!   rest of the hypervisor.
//!
//! # FIFO gating
//!
//! A domain created without `XEN_DOMCTL_CDF_evtchn_fifo` (`fifo_permitted ==
//! false`) gets `-ENOSYS` from `init_control`, `expand_array` and
//! `set_priority` before its argument is even read, which is what Xen before
//! 4.4 answered; Linux then stays on 2-level. With the `evtchn-fifo` Cargo
//! feature off the FIFO code is not built at all and the ops answer as Xen 4.21
//! with `CONFIG_EVTCHN_FIFO=n`: `-EOPNOTSUPP` from `init_control` and
//! `expand_array`, `-ENOSYS` from `set_priority` (after the port check). See
//! `docs/event_channels.md`.
//!
//! # Differences from Xen, on purpose
//!
//! - No Xen-consumer ports (ioreq, vm_event) and no physical IRQs: every domain
//!   has `nr_pirqs == 0`, so `EVTCHNOP_bind_pirq` is `-EINVAL` for every pirq.
//! - `EVTCHNOP_reset` is preempted every [`RESET_STRIDE`] ports whatever the
//!   load (Xen only when `hypercall_preempt_check()` says so); the result is the
//!   same, in more entries.
//! - XSM is the dummy policy: "target" checks allow the domain itself and a
//!   privileged caller (device-model domains are not modelled).
//! - A FIFO event deferred because its event-array page was missing is
//!   forgotten when the port is closed (Xen keeps the flag and would re-raise
//!   it on a free port).

#![allow(non_upper_case_globals)]

#[cfg(feature = "evtchn-fifo")]
pub mod fifo;
pub mod guest_bits;
#[cfg(test)]
mod model_tests;
#[cfg(test)]
mod tests;
pub mod two_level;

use crate::common::guest_access::{copy_from_guest, copy_to_guest, GuestAccess, GuestMemory};
#[cfg(feature = "evtchn-fifo")]
use alloc::boxed::Box;
use alloc::vec;
use alloc::vec::Vec;
use two_level::{SharedInfo, TwoLevel, EVTCHN_2L_NR_CHANNELS};
use xen_public_abi::domctl::{xen_domctl_createdomain, XEN_DOMCTL_CDF_evtchn_fifo};
use xen_public_abi::event_channel::*;
use xen_public_abi::xen::{
    domid_t, DOMID_SELF, NR_VIRQS, VIRQ_DEBUG, VIRQ_TIMER, VIRQ_XENOPROF, VIRQ_XENPMU,
};
use xen_public_abi::{DomId, Errno, XenResult};
use zerocopy::{FromBytes, Immutable, IntoBytes};

/// Ports per bucket (`EVTCHNS_PER_BUCKET`: a page of 64-byte `struct evtchn`).
pub const EVTCHNS_PER_BUCKET: u32 = 64;

/// Whether the FIFO ABI is built in (the `evtchn-fifo` Cargo feature).
pub const FIFO_BUILT_IN: bool = cfg!(feature = "evtchn-fifo");

/// A port's state (Xen's `ECS_*` plus the per-state union).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ChannelState {
    /// `ECS_FREE`.
    Free,
    /// `ECS_RESERVED`: port 0.
    Reserved,
    /// `ECS_UNBOUND`: waiting for `remote_dom` to bind.
    Unbound { remote_dom: DomId },
    /// `ECS_INTERDOMAIN`.
    Interdomain { remote_dom: DomId, remote_port: u32 },
    /// `ECS_PIRQ` (never reached: no domain has physical IRQs).
    Pirq { pirq: u32 },
    /// `ECS_VIRQ`.
    Virq { virq: u32 },
    /// `ECS_IPI`.
    Ipi,
}

/// One port (Xen's `struct evtchn`).
#[derive(Clone, Copy, Debug)]
pub struct Channel {
    pub state: ChannelState,
    /// `notify_vcpu_id`: the vCPU that gets this port's events.
    pub notify_vcpu: u32,
    /// FIFO priority (0 highest .. 15).
    pub priority: u8,
    /// FIFO: an event arrived while the port's event-array page was missing.
    pub fifo_pending: bool,
    /// FIFO: the queue (vCPU, priority) the port was last linked on.
    pub lastq_vcpu: u32,
    pub lastq_prio: u8,
}

impl Channel {
    const FREE: Channel = Channel {
        state: ChannelState::Free,
        notify_vcpu: 0,
        priority: EVTCHN_FIFO_PRIORITY_DEFAULT as u8,
        fifo_pending: false,
        lastq_vcpu: 0,
        lastq_prio: 0,
    };

    /// `evtchn_usable`: bound to something (not FREE, not RESERVED).
    pub fn usable(&self) -> bool {
        !matches!(self.state, ChannelState::Free | ChannelState::Reserved)
    }
}

/// Per-vCPU and global VIRQs (`virq_is_global`): TIMER, DEBUG, XENOPROF and
/// XENPMU are per-vCPU; on x86 every other number (ARCH_* included) is global.
pub fn virq_is_global(virq: u32) -> bool {
    !matches!(virq, VIRQ_TIMER | VIRQ_DEBUG | VIRQ_XENOPROF | VIRQ_XENPMU)
}

/// Something that happened during an op that the rest of the hypervisor must
/// hear about, collected while the domain is borrowed and then flushed to the
/// [`EvtchnEnv`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Notify {
    /// Raise the upcall on this vCPU ([`EvtchnEnv::raise_upcall`]).
    Upcall(u32),
    /// This port just became pending: wake vCPUs polling it
    /// ([`EvtchnEnv::wake_pollers`], Xen's `evtchn_check_pollers`).
    Pollers(u32),
}

/// What the ABI-specific code gets to work on (split borrows of the domain).
pub struct PortCx<'a> {
    pub chans: &'a mut Vec<Channel>,
    pub shinfo: &'a mut SharedInfo,
    pub mem: &'a mut dyn GuestMemory,
    /// What to tell the rest of the hypervisor once the domain is released.
    pub kicks: &'a mut Vec<Notify>,
    /// The domain (for its rate-limited log lines).
    pub domid: domid_t,
}

/// One event-channel ABI (Xen's `struct evtchn_port_ops`). Ports passed in are
/// valid (inside an allocated bucket).
pub trait PortOps {
    /// Port bound (Xen's `init` hook).
    fn init(&mut self, _cx: &mut PortCx<'_>, _port: u32) {}
    /// Mark `port` pending for vCPU `v`, raising the upcall where the ABI says.
    fn set_pending(&mut self, cx: &mut PortCx<'_>, v: u32, port: u32);
    fn clear_pending(&mut self, cx: &mut PortCx<'_>, port: u32);
    /// `EVTCHNOP_unmask`.
    fn unmask(&mut self, cx: &mut PortCx<'_>, port: u32);
    fn is_pending(&self, cx: &PortCx<'_>, port: u32) -> bool;
    fn is_masked(&self, cx: &PortCx<'_>, port: u32) -> bool;
    /// Port closed but still unavailable (FIFO: still LINKED).
    fn is_busy(&self, _cx: &PortCx<'_>, _port: u32) -> bool {
        false
    }
    /// Whether the ABI has priorities (2-level has no `set_priority` hook).
    fn has_set_priority(&self) -> bool {
        false
    }
    fn set_priority(&mut self, _cx: &mut PortCx<'_>, _port: u32, _priority: u32) -> XenResult<()> {
        Err(Errno::ENOSYS)
    }
}

enum Abi {
    TwoLevel(TwoLevel),
    #[cfg(feature = "evtchn-fifo")]
    Fifo(Box<fifo::Fifo>),
}

/// All of one domain's event-channel state.
pub struct EvtchnDomain {
    /// `max_evtchn_port` from createdomain (capped at `INT_MAX`).
    max_evtchn_port: u32,
    /// Created with `XEN_DOMCTL_CDF_evtchn_fifo`.
    fifo_permitted: bool,
    nr_vcpus: u32,
    /// Set by [`evtchn_destroy`]: no more ports can be allocated.
    dying: bool,
    /// The port table; its length is `valid_evtchns` (a multiple of 64).
    chans: Vec<Channel>,
    /// All ports below this are not FREE (a search hint).
    free_hint: u32,
    /// `vcpu->virq_to_evtchn[]` (0 = unbound).
    virq_to_evtchn: Vec<[u32; NR_VIRQS as usize]>,
    shinfo: SharedInfo,
    abi: Abi,
    /// `next_evtchn`: where a preempted `EVTCHNOP_reset` resumes (0: no reset
    /// in progress).
    next_evtchn: u32,
    /// The owning domain, for its rate-limited log lines (set on every
    /// operation through the environment).
    domid: domid_t,
}

// The domain table lives behind a lock shared by all CPUs.
const _: () = {
    const fn assert_send<T: Send>() {}
    assert_send::<EvtchnDomain>();
};

impl EvtchnDomain {
    /// `evtchn_init`: 2-level ABI, first bucket allocated, port 0 reserved.
    /// `fifo_permitted` is the domain's `XEN_DOMCTL_CDF_evtchn_fifo`; it is
    /// ignored when FIFO is compiled out.
    pub fn new(max_evtchn_port: u32, fifo_permitted: bool, nr_vcpus: u32) -> Self {
        let nr_vcpus = nr_vcpus.max(1);
        let mut chans = vec![Channel::FREE; EVTCHNS_PER_BUCKET as usize];
        chans[0].state = ChannelState::Reserved;
        EvtchnDomain {
            max_evtchn_port: max_evtchn_port.min(i32::MAX as u32),
            fifo_permitted: fifo_permitted && FIFO_BUILT_IN,
            nr_vcpus,
            dying: false,
            chans,
            free_hint: 1,
            virq_to_evtchn: vec![[0; NR_VIRQS as usize]; nr_vcpus as usize],
            shinfo: SharedInfo::new(nr_vcpus),
            abi: Abi::TwoLevel(TwoLevel),
            next_evtchn: 0,
            domid: 0,
        }
    }

    /// `evtchn_init` for a domain created with `config` (already sanitised):
    /// its `max_evtchn_port`, `max_vcpus` and `XEN_DOMCTL_CDF_evtchn_fifo`.
    pub fn for_createdomain(config: &xen_domctl_createdomain) -> Self {
        Self::new(
            config.max_evtchn_port,
            config.flags & XEN_DOMCTL_CDF_evtchn_fifo != 0,
            config.max_vcpus,
        )
    }

    /// The domain gained vCPUs (`XEN_DOMCTL_max_vcpus`); never shrinks.
    pub fn set_nr_vcpus(&mut self, nr_vcpus: u32) {
        if nr_vcpus <= self.nr_vcpus {
            return;
        }
        self.nr_vcpus = nr_vcpus;
        self.virq_to_evtchn
            .resize(nr_vcpus as usize, [0; NR_VIRQS as usize]);
        self.shinfo.grow(nr_vcpus);
        #[cfg(feature = "evtchn-fifo")]
        if let Abi::Fifo(f) = &mut self.abi {
            f.grow(nr_vcpus);
        }
    }

    pub fn nr_vcpus(&self) -> u32 {
        self.nr_vcpus
    }

    pub fn fifo_permitted(&self) -> bool {
        self.fifo_permitted
    }

    /// True once `EVTCHNOP_init_control` switched the domain to FIFO.
    pub fn is_fifo(&self) -> bool {
        match self.abi {
            Abi::TwoLevel(_) => false,
            #[cfg(feature = "evtchn-fifo")]
            Abi::Fifo(_) => true,
        }
    }

    /// The FIFO state, when active.
    #[cfg(feature = "evtchn-fifo")]
    pub fn fifo(&self) -> Option<&fifo::Fifo> {
        match &self.abi {
            Abi::Fifo(f) => Some(f),
            _ => None,
        }
    }

    /// `max_evtchns`: 131072 in FIFO mode, 4096 in 2-level mode.
    pub fn max_evtchns(&self) -> u32 {
        if self.is_fifo() {
            EVTCHN_FIFO_NR_CHANNELS
        } else {
            EVTCHN_2L_NR_CHANNELS
        }
    }

    /// `valid_evtchns`: ports in allocated buckets.
    pub fn valid_evtchns(&self) -> u32 {
        self.chans.len() as u32
    }

    /// The port, if valid.
    pub fn channel(&self, port: u32) -> Option<&Channel> {
        self.chans.get(port as usize)
    }

    /// The port bound to `virq` on `vcpu` (0 = none).
    pub fn virq_port(&self, vcpu: u32, virq: u32) -> u32 {
        self.virq_to_evtchn
            .get(vcpu as usize)
            .and_then(|a| a.get(virq as usize))
            .copied()
            .unwrap_or(0)
    }

    /// Where `shared_info` is, and its event fields.
    pub fn shared_info(&self) -> &SharedInfo {
        &self.shinfo
    }

    pub fn shared_info_mut(&mut self) -> &mut SharedInfo {
        &mut self.shinfo
    }

    /// Register the guest frame holding `shared_info` (see [`two_level`]).
    pub fn map_shared_info(
        &mut self,
        mem: &mut dyn GuestMemory,
        gfn: Option<u64>,
    ) -> XenResult<()> {
        self.shinfo.map(mem, gfn, self.nr_vcpus)
    }

    /// Run `f` with this domain's active ABI.
    fn with_ops<R>(
        &mut self,
        mem: &mut dyn GuestMemory,
        kicks: &mut Vec<Notify>,
        f: impl FnOnce(&mut dyn PortOps, &mut PortCx<'_>) -> R,
    ) -> R {
        let mut cx = PortCx {
            chans: &mut self.chans,
            shinfo: &mut self.shinfo,
            mem,
            kicks,
            domid: self.domid,
        };
        match &mut self.abi {
            Abi::TwoLevel(t) => f(t, &mut cx),
            #[cfg(feature = "evtchn-fifo")]
            Abi::Fifo(ff) => f(&mut **ff, &mut cx),
        }
    }

    /// `evtchn_port_set_pending`: deliver an event on `port` to vCPU `v`.
    fn port_set_pending(
        &mut self,
        mem: &mut dyn GuestMemory,
        v: u32,
        port: u32,
        kicks: &mut Vec<Notify>,
    ) {
        if self.chans[port as usize].usable() {
            self.with_ops(mem, kicks, |o, cx| o.set_pending(cx, v, port));
        }
    }

    fn port_clear_pending(&mut self, mem: &mut dyn GuestMemory, port: u32) {
        if self.chans[port as usize].usable() {
            self.with_ops(mem, &mut Vec::new(), |o, cx| o.clear_pending(cx, port));
        }
    }

    fn port_init(&mut self, mem: &mut dyn GuestMemory, port: u32) {
        self.with_ops(mem, &mut Vec::new(), |o, cx| o.init(cx, port));
    }

    fn port_is_busy(&mut self, mem: &mut dyn GuestMemory, port: u32) -> bool {
        self.with_ops(mem, &mut Vec::new(), |o, cx| o.is_busy(cx, port))
    }

    /// `evtchn_is_pending` (false for ports that are not bound).
    pub fn is_pending(&mut self, mem: &mut dyn GuestMemory, port: u32) -> bool {
        match self.chans.get(port as usize) {
            Some(c) if c.usable() => {
                self.with_ops(mem, &mut Vec::new(), |o, cx| o.is_pending(cx, port))
            }
            _ => false,
        }
    }

    /// `evtchn_is_masked` (true for ports that are not bound).
    pub fn is_masked(&mut self, mem: &mut dyn GuestMemory, port: u32) -> bool {
        match self.chans.get(port as usize) {
            Some(c) if c.usable() => {
                self.with_ops(mem, &mut Vec::new(), |o, cx| o.is_masked(cx, port))
            }
            _ => true,
        }
    }

    /// `get_free_port`: the lowest free port, allocating buckets up to it.
    /// The port stays FREE until the caller binds it.
    fn get_free_port(&mut self, mem: &mut dyn GuestMemory) -> XenResult<u32> {
        if self.dying {
            return Err(Errno::EINVAL);
        }
        let limit = self.max_evtchns();
        let mut port = self.free_hint;
        loop {
            if port > self.max_evtchn_port || port >= limit {
                return Err(Errno::ENOSPC);
            }
            if port >= self.valid_evtchns() {
                // evtchn_allocate_port on an invalid port: add buckets up to it.
                while port >= self.valid_evtchns() {
                    let n = self.chans.len() + EVTCHNS_PER_BUCKET as usize;
                    self.chans.resize(n, Channel::FREE);
                }
                return Ok(port);
            }
            let free = self.chans[port as usize].state == ChannelState::Free;
            if free && !self.port_is_busy(mem, port) {
                return Ok(port);
            }
            if !free && port == self.free_hint {
                self.free_hint = port + 1;
            }
            port += 1;
        }
    }

    /// Bind a port obtained from `get_free_port`.
    fn bind_port(&mut self, mem: &mut dyn GuestMemory, port: u32, state: ChannelState, vcpu: u32) {
        let ch = &mut self.chans[port as usize];
        ch.state = state;
        ch.notify_vcpu = vcpu;
        self.port_init(mem, port);
    }

    /// `evtchn_free`.
    fn free_port(&mut self, mem: &mut dyn GuestMemory, port: u32) {
        self.port_clear_pending(mem, port);
        let ch = &mut self.chans[port as usize];
        ch.state = ChannelState::Free;
        ch.notify_vcpu = 0;
        ch.fifo_pending = false;
        self.free_hint = self.free_hint.min(port);
    }

    /// `evtchn_port_poll` (for `SCHEDOP_poll`): `-EINVAL` for an invalid or
    /// unbound port, else whether it is pending.
    pub fn port_poll(&mut self, mem: &mut dyn GuestMemory, port: u32) -> XenResult<bool> {
        match self.chans.get(port as usize) {
            Some(c) if c.usable() => Ok(self.is_pending(mem, port)),
            _ => Err(Errno::EINVAL),
        }
    }

    /// `EVTCHNOP_init_control` on this domain (after gating and copy-in).
    #[cfg(feature = "evtchn-fifo")]
    fn init_control(
        &mut self,
        mem: &mut dyn GuestMemory,
        vcpu: u32,
        gfn: u64,
        offset: u32,
    ) -> XenResult<()> {
        if vcpu >= self.nr_vcpus {
            return Err(Errno::ENOENT);
        }
        if offset > 4096 - fifo::control_block_size() {
            return Err(Errno::EINVAL);
        }
        if offset & 7 != 0 {
            return Err(Errno::EINVAL);
        }
        match &mut self.abi {
            Abi::Fifo(f) => f.map_control_block(mem, vcpu, gfn, offset),
            Abi::TwoLevel(_) => {
                let prev_evtchns = self.max_evtchns();
                let mut f = Box::new(fifo::Fifo::new(self.nr_vcpus));
                // On failure nothing changed: the domain stays 2-level.
                f.map_control_block(mem, vcpu, gfn, offset)?;
                self.abi = Abi::Fifo(f);
                // setup_ports: carry 2-level pending bits over, default priority.
                let last = prev_evtchns.min(self.valid_evtchns());
                for port in 1..last {
                    if self.shinfo.pending_bit(mem, port).unwrap_or(false) {
                        self.chans[port as usize].fifo_pending = true;
                    }
                    self.chans[port as usize].priority = EVTCHN_FIFO_PRIORITY_DEFAULT as u8;
                }
                crate::gprintk!(
                    self.domid,
                    log::Level::Info,
                    "d{}: evtchn: switched to the FIFO ABI",
                    self.domid
                );
                Ok(())
            }
        }
    }

    /// `EVTCHNOP_expand_array` on this domain (after gating and copy-in).
    #[cfg(feature = "evtchn-fifo")]
    fn expand_array(
        &mut self,
        mem: &mut dyn GuestMemory,
        gfn: u64,
        kicks: &mut Vec<Notify>,
    ) -> XenResult<()> {
        let EvtchnDomain {
            abi,
            chans,
            shinfo,
            domid,
            ..
        } = self;
        let Abi::Fifo(f) = abi else {
            return Err(Errno::EOPNOTSUPP);
        };
        let mut cx = PortCx {
            chans,
            shinfo,
            mem,
            kicks,
            domid: *domid,
        };
        f.add_page(&mut cx, gfn)
    }

    /// Back to 2-level (`evtchn_fifo_destroy` + `evtchn_2l_init`).
    fn leave_fifo(&mut self) {
        if self.is_fifo() {
            crate::gprintk!(
                self.domid,
                log::Level::Info,
                "d{}: evtchn: back on the 2-level ABI",
                self.domid
            );
        }
        self.abi = Abi::TwoLevel(TwoLevel);
    }
}

/// What event channels need from the rest of the hypervisor. The integrator
/// implements it on the domain table; tests implement it on a fake.
pub trait EvtchnEnv {
    /// The calling domain (never `DOMID_SELF`).
    fn caller(&self) -> DomId;
    /// The caller is the control domain (XSM dummy policy: may act on others).
    fn caller_is_privileged(&self) -> bool;
    /// Does a live domain with this real id exist?
    fn domain_exists(&self, id: DomId) -> bool;
    /// Run `f` on a live domain's event-channel state and guest memory (by real
    /// id); `false` if there is no such domain. (A callback rather than a returned
    /// borrow: the real guest memory is a view built over the domain's p2m.)
    fn with_domain(
        &mut self,
        id: DomId,
        f: &mut dyn FnMut(&mut EvtchnDomain, &mut dyn GuestMemory),
    ) -> bool;
    /// `controller_pause_count` of an existing domain.
    fn controller_pause_count(&self, id: DomId) -> u32;
    /// Raise the event-channel upcall on vCPU `vcpu` of domain `id` (the
    /// backend injects the callback vector).
    fn raise_upcall(&mut self, id: DomId, vcpu: u32);
    /// `port` of domain `id` just became pending: wake any of its vCPUs blocked
    /// in `SCHEDOP_poll` on it (or on any port). Events on masked ports raise
    /// no upcall, so this is the only wake-up such a poller gets.
    fn wake_pollers(&mut self, _id: DomId, _port: u32) {}
    /// The domain that receives global VIRQ `virq` (`XEN_DOMCTL_set_virq_handler`;
    /// by default the hardware domain).
    fn global_virq_handler(&self, _virq: u32) -> DomId {
        DomId(0)
    }
}

/// `rcu_lock_domain_by_any_id`'s id translation: `DOMID_SELF` is the caller.
fn resolve(env: &dyn EvtchnEnv, dom: domid_t) -> DomId {
    if dom == DOMID_SELF {
        env.caller()
    } else {
        DomId(dom)
    }
}

/// XSM_TARGET under the dummy policy: the domain itself or a privileged caller.
fn xsm_target(env: &dyn EvtchnEnv, d: DomId) -> XenResult<()> {
    if env.caller() == d || env.caller_is_privileged() {
        Ok(())
    } else {
        Err(Errno::EPERM)
    }
}

fn flush(env: &mut dyn EvtchnEnv, d: DomId, kicks: Vec<Notify>) {
    for n in kicks {
        match n {
            Notify::Upcall(v) => env.raise_upcall(d, v),
            Notify::Pollers(port) => env.wake_pollers(d, port),
        }
    }
}

/// Run `f` on domain `d`, then raise the upcalls it asked for.
fn on_domain<R>(
    env: &mut dyn EvtchnEnv,
    d: DomId,
    f: impl FnOnce(&mut EvtchnDomain, &mut dyn GuestMemory, &mut Vec<Notify>) -> XenResult<R>,
) -> XenResult<R> {
    let mut kicks = Vec::new();
    let mut f = Some(f);
    let mut r = Err(Errno::ESRCH);
    env.with_domain(d, &mut |e, mem| {
        e.domid = d.0;
        if let Some(f) = f.take() {
            r = f(e, mem, &mut kicks);
        }
    });
    flush(env, d, kicks);
    r
}

fn evtchn_alloc_unbound(env: &mut dyn EvtchnEnv, a: &mut evtchn_alloc_unbound) -> XenResult<()> {
    let d = resolve(env, a.dom);
    let target_ok = xsm_target(env, d);
    let remote = resolve(env, a.remote_dom);
    a.port = on_domain(env, d, |e, mem, _| {
        let port = e.get_free_port(mem)?;
        target_ok?;
        e.bind_port(mem, port, ChannelState::Unbound { remote_dom: remote }, 0);
        Ok(port)
    })?;
    Ok(())
}

fn evtchn_bind_interdomain(
    env: &mut dyn EvtchnEnv,
    b: &mut evtchn_bind_interdomain,
) -> XenResult<()> {
    let ld = env.caller();
    let rd = resolve(env, b.remote_dom);
    let rport = b.remote_port;
    if !env.domain_exists(rd) {
        return Err(Errno::ESRCH);
    }
    let lport = on_domain(env, ld, |e, mem, _| e.get_free_port(mem))?;
    on_domain(env, rd, |e, _, _| {
        let rch = e.chans.get_mut(rport as usize).ok_or(Errno::EINVAL)?;
        if rch.state != (ChannelState::Unbound { remote_dom: ld }) {
            return Err(Errno::EINVAL);
        }
        rch.state = ChannelState::Interdomain {
            remote_dom: ld,
            remote_port: lport,
        };
        Ok(())
    })?;
    on_domain(env, ld, |e, mem, kicks| {
        e.bind_port(
            mem,
            lport,
            ChannelState::Interdomain {
                remote_dom: rd,
                remote_port: rport,
            },
            0,
        );
        // Notifications sent while the remote end was unbound were dropped:
        // always flag the new local port.
        let v = e.chans[lport as usize].notify_vcpu;
        e.port_set_pending(mem, v, lport, kicks);
        Ok(())
    })?;
    b.local_port = lport;
    Ok(())
}

fn evtchn_bind_virq(env: &mut dyn EvtchnEnv, b: &mut evtchn_bind_virq) -> XenResult<()> {
    let (virq, vcpu) = (b.virq, b.vcpu);
    if virq >= NR_VIRQS {
        return Err(Errno::EINVAL);
    }
    if virq_is_global(virq) && vcpu != 0 {
        return Err(Errno::EINVAL);
    }
    let d = env.caller();
    b.port = on_domain(env, d, |e, mem, _| {
        if vcpu >= e.nr_vcpus {
            return Err(Errno::ENOENT);
        }
        if e.virq_to_evtchn[vcpu as usize][virq as usize] != 0 {
            return Err(Errno::EEXIST);
        }
        let port = e.get_free_port(mem)?;
        e.bind_port(mem, port, ChannelState::Virq { virq }, vcpu);
        e.virq_to_evtchn[vcpu as usize][virq as usize] = port;
        Ok(port)
    })?;
    Ok(())
}

fn evtchn_bind_ipi(env: &mut dyn EvtchnEnv, b: &mut evtchn_bind_ipi) -> XenResult<()> {
    let vcpu = b.vcpu;
    let d = env.caller();
    b.port = on_domain(env, d, |e, mem, _| {
        if vcpu >= e.nr_vcpus {
            return Err(Errno::ENOENT);
        }
        let port = e.get_free_port(mem)?;
        e.bind_port(mem, port, ChannelState::Ipi, vcpu);
        Ok(port)
    })?;
    Ok(())
}

/// `evtchn_close`: free `port` of domain `d`; an interdomain peer goes back
/// to unbound, waiting for `d` again.
pub fn evtchn_close(env: &mut dyn EvtchnEnv, d: DomId, port: u32) -> XenResult<()> {
    let peer = on_domain(env, d, |e, mem, _| {
        let ch = *e.chans.get(port as usize).ok_or(Errno::EINVAL)?;
        let peer = match ch.state {
            ChannelState::Free | ChannelState::Reserved => return Err(Errno::EINVAL),
            ChannelState::Unbound { .. } | ChannelState::Ipi | ChannelState::Pirq { .. } => None,
            ChannelState::Virq { virq } => {
                let v = if virq_is_global(virq) {
                    0
                } else {
                    ch.notify_vcpu
                };
                if let Some(slot) = e
                    .virq_to_evtchn
                    .get_mut(v as usize)
                    .and_then(|a| a.get_mut(virq as usize))
                {
                    *slot = 0;
                }
                None
            }
            ChannelState::Interdomain {
                remote_dom,
                remote_port,
            } => Some((remote_dom, remote_port)),
        };
        e.free_port(mem, port);
        Ok(peer)
    })?;
    if let Some((rd, rport)) = peer {
        // The peer exists while the channel does: evtchn_destroy closes every
        // port of a dying domain first.
        let _ = on_domain(env, rd, |e, _, _| {
            if let Some(rch) = e.chans.get_mut(rport as usize) {
                if rch.state
                    == (ChannelState::Interdomain {
                        remote_dom: d,
                        remote_port: port,
                    })
                {
                    rch.state = ChannelState::Unbound { remote_dom: d };
                }
            }
            Ok(())
        });
    }
    Ok(())
}

fn evtchn_send(env: &mut dyn EvtchnEnv, port: u32) -> XenResult<()> {
    let ld = env.caller();
    let state = on_domain(env, ld, |e, mem, kicks| {
        let ch = *e.chans.get(port as usize).ok_or(Errno::EINVAL)?;
        match ch.state {
            ChannelState::Ipi => {
                e.port_set_pending(mem, ch.notify_vcpu, port, kicks);
                Ok(None)
            }
            ChannelState::Unbound { .. } => Ok(None),
            ChannelState::Interdomain {
                remote_dom,
                remote_port,
            } => Ok(Some((remote_dom, remote_port))),
            _ => Err(Errno::EINVAL),
        }
    })?;
    if let Some((rd, rport)) = state {
        on_domain(env, rd, |e, mem, kicks| {
            let v = e.chans[rport as usize].notify_vcpu;
            e.port_set_pending(mem, v, rport, kicks);
            Ok(())
        })?;
    }
    Ok(())
}

fn evtchn_status(env: &mut dyn EvtchnEnv, s: &mut evtchn_status) -> XenResult<()> {
    let d = resolve(env, s.dom);
    let target_ok = xsm_target(env, d);
    let port = s.port;
    let ch = on_domain(env, d, |e, _, _| {
        e.chans.get(port as usize).copied().ok_or(Errno::EINVAL)
    })?;
    target_ok?;
    s.status = match ch.state {
        ChannelState::Free | ChannelState::Reserved => EVTCHNSTAT_closed,
        ChannelState::Unbound { remote_dom } => {
            s.u.set(&evtchn_status_unbound { dom: remote_dom.0 });
            EVTCHNSTAT_unbound
        }
        ChannelState::Interdomain {
            remote_dom,
            remote_port,
        } => {
            s.u.set(&evtchn_status_interdomain {
                dom: remote_dom.0,
                _implicit0: [0; 2],
                port: remote_port,
            });
            EVTCHNSTAT_interdomain
        }
        ChannelState::Pirq { pirq } => {
            s.u.set(&pirq);
            EVTCHNSTAT_pirq
        }
        ChannelState::Virq { virq } => {
            s.u.set(&virq);
            EVTCHNSTAT_virq
        }
        ChannelState::Ipi => EVTCHNSTAT_ipi,
    };
    s.vcpu = ch.notify_vcpu;
    Ok(())
}

fn evtchn_bind_vcpu(env: &mut dyn EvtchnEnv, port: u32, vcpu: u32) -> XenResult<()> {
    let d = env.caller();
    on_domain(env, d, |e, _, _| {
        if vcpu >= e.nr_vcpus {
            return Err(Errno::ENOENT);
        }
        let ch = e.chans.get_mut(port as usize).ok_or(Errno::EINVAL)?;
        match ch.state {
            ChannelState::Virq { virq } if virq_is_global(virq) => ch.notify_vcpu = vcpu,
            ChannelState::Unbound { .. }
            | ChannelState::Interdomain { .. }
            | ChannelState::Pirq { .. } => ch.notify_vcpu = vcpu,
            _ => return Err(Errno::EINVAL),
        }
        Ok(())
    })
}

fn evtchn_unmask(env: &mut dyn EvtchnEnv, port: u32) -> XenResult<()> {
    let d = env.caller();
    on_domain(env, d, |e, mem, kicks| {
        let ch = e.chans.get(port as usize).ok_or(Errno::EINVAL)?;
        if ch.usable() {
            e.with_ops(mem, kicks, |o, cx| o.unmask(cx, port));
        }
        Ok(())
    })
}

/// Ports `EVTCHNOP_reset` closes per hypercall entry before it is preempted
/// (Xen checks for preemption when the port number is a multiple of 64).
pub const RESET_STRIDE: u32 = 64;

/// `evtchn_reset` (after lookup and XSM): close every port, then leave FIFO.
/// Preemptible: every [`RESET_STRIDE`] ports it records where to resume in
/// `next_evtchn` and answers `-ERESTART`; the dispatcher re-enters it as
/// `EVTCHNOP_reset_cont`. A second reset while one is in progress, and a
/// `reset_cont` with none in progress, are `-EBUSY`.
fn evtchn_reset(env: &mut dyn EvtchnEnv, d: DomId, resuming: bool) -> XenResult<()> {
    if d != env.caller() && env.controller_pause_count(d) == 0 {
        return Err(Errno::EINVAL);
    }
    let start = on_domain(env, d, |e, _, _| {
        let i = if resuming {
            e.next_evtchn
        } else {
            u32::from(e.next_evtchn == 0)
        };
        e.next_evtchn = e.next_evtchn.max(i);
        Ok(i)
    })?;
    if start == 0 {
        return Err(Errno::EBUSY);
    }
    let mut port = start;
    // Re-read each time: another vCPU may add buckets between two entries.
    let valid = |env: &mut dyn EvtchnEnv| on_domain(env, d, |e, _, _| Ok(e.valid_evtchns()));
    while port < valid(env)? {
        let bound = on_domain(env, d, |e, _, _| Ok(e.chans[port as usize].usable()))?;
        if bound {
            let _ = evtchn_close(env, d, port);
        }
        port += 1;
        if port.is_multiple_of(RESET_STRIDE) && port < valid(env)? {
            on_domain(env, d, |e, _, _| {
                e.next_evtchn = port;
                Ok(())
            })?;
            return Err(Errno::ERESTART);
        }
    }
    on_domain(env, d, |e, _, _| {
        e.next_evtchn = 0;
        e.leave_fifo();
        Ok(())
    })
}

fn close_all(env: &mut dyn EvtchnEnv, d: DomId) -> XenResult<()> {
    let valid = on_domain(env, d, |e, _, _| Ok(e.valid_evtchns()))?;
    for port in 1..valid {
        let bound = on_domain(env, d, |e, _, _| Ok(e.chans[port as usize].usable()))?;
        if bound {
            let _ = evtchn_close(env, d, port);
        }
    }
    Ok(())
}

/// `evtchn_destroy`: the domain is dying. Close every port (peers go back to
/// unbound), leave FIFO, and refuse further allocations. Call before the
/// domain leaves the table.
pub fn evtchn_destroy(env: &mut dyn EvtchnEnv, d: DomId) -> XenResult<()> {
    on_domain(env, d, |e, _, _| {
        e.dying = true;
        Ok(())
    })?;
    close_all(env, d)?;
    on_domain(env, d, |e, _, _| {
        e.leave_fifo();
        Ok(())
    })
}

/// `evtchn_port_poll` for `SCHEDOP_poll`: is `port` of domain `d` pending?
pub fn evtchn_port_poll(env: &mut dyn EvtchnEnv, d: DomId, port: u32) -> XenResult<bool> {
    on_domain(env, d, |e, mem, _| e.port_poll(mem, port))
}

/// Raise VIRQ `virq` in domain `d`: per-vCPU VIRQs on `vcpu`
/// (`send_guest_vcpu_virq`), global ones through vCPU 0's binding to the
/// port's notify vCPU (`send_guest_global_virq`, `vcpu` ignored). Nothing
/// happens when the VIRQ is not bound. Returns whether an event was sent.
pub fn send_virq(env: &mut dyn EvtchnEnv, d: DomId, vcpu: u32, virq: u32) -> bool {
    if virq >= NR_VIRQS {
        return false;
    }
    let global = virq_is_global(virq);
    on_domain(env, d, |e, mem, kicks| {
        let v = if global { 0 } else { vcpu };
        let port = e.virq_port(v, virq);
        if port == 0 {
            return Ok(false);
        }
        let target = if global {
            e.chans[port as usize].notify_vcpu
        } else {
            v
        };
        e.port_set_pending(mem, target, port, kicks);
        Ok(true)
    })
    .unwrap_or(false)
}

/// `send_global_virq`: a global VIRQ to its handler domain (e.g. VIRQ_DOM_EXC
/// to dom0).
pub fn send_global_virq(env: &mut dyn EvtchnEnv, virq: u32) -> bool {
    let d = env.global_virq_handler(virq);
    virq_is_global(virq) && send_virq(env, d, 0, virq)
}

/// Is the caller's domain allowed FIFO? (The gate for ops 11–13.)
fn caller_fifo_permitted(env: &mut dyn EvtchnEnv) -> XenResult<bool> {
    let d = env.caller();
    on_domain(env, d, |e, _, _| Ok(e.fifo_permitted))
}

fn copy_in<T: FromBytes + IntoBytes>(guest: &mut dyn GuestAccess, arg: u64) -> XenResult<T> {
    copy_from_guest(guest, arg).map_err(|_| Errno::EFAULT)
}

fn copy_out<T: IntoBytes + Immutable>(
    guest: &mut dyn GuestAccess,
    arg: u64,
    v: &T,
) -> XenResult<()> {
    copy_to_guest(guest, arg, v).map_err(|_| Errno::EFAULT)
}

/// Copy in, run, copy back on success (OUT structs are written only then).
fn in_out<T: FromBytes + IntoBytes + Immutable>(
    env: &mut dyn EvtchnEnv,
    guest: &mut dyn GuestAccess,
    arg: u64,
    f: impl FnOnce(&mut dyn EvtchnEnv, &mut T) -> XenResult<()>,
) -> XenResult<()> {
    let mut a: T = copy_in(guest, arg)?;
    f(env, &mut a)?;
    copy_out(guest, arg, &a)
}

#[cfg(feature = "evtchn-fifo")]
fn op_init_control(
    env: &mut dyn EvtchnEnv,
    guest: &mut dyn GuestAccess,
    arg: u64,
) -> XenResult<()> {
    if !caller_fifo_permitted(env)? {
        return Err(Errno::ENOSYS);
    }
    in_out(env, guest, arg, |env, ic: &mut evtchn_init_control| {
        ic.link_bits = EVTCHN_FIFO_LINK_BITS as u8;
        let d = env.caller();
        on_domain(env, d, |e, mem, _| {
            e.init_control(mem, ic.vcpu, ic.control_gfn, ic.offset)
        })
    })
}

#[cfg(not(feature = "evtchn-fifo"))]
fn op_init_control(
    _env: &mut dyn EvtchnEnv,
    guest: &mut dyn GuestAccess,
    arg: u64,
) -> XenResult<()> {
    let _: evtchn_init_control = copy_in(guest, arg)?;
    Err(Errno::EOPNOTSUPP)
}

#[cfg(feature = "evtchn-fifo")]
fn op_expand_array(
    env: &mut dyn EvtchnEnv,
    guest: &mut dyn GuestAccess,
    arg: u64,
) -> XenResult<()> {
    if !caller_fifo_permitted(env)? {
        return Err(Errno::ENOSYS);
    }
    let ea: evtchn_expand_array = copy_in(guest, arg)?;
    let d = env.caller();
    on_domain(env, d, |e, mem, kicks| {
        e.expand_array(mem, ea.array_gfn, kicks)
    })
}

#[cfg(not(feature = "evtchn-fifo"))]
fn op_expand_array(
    _env: &mut dyn EvtchnEnv,
    guest: &mut dyn GuestAccess,
    arg: u64,
) -> XenResult<()> {
    let _: evtchn_expand_array = copy_in(guest, arg)?;
    Err(Errno::EOPNOTSUPP)
}

fn op_set_priority(
    env: &mut dyn EvtchnEnv,
    guest: &mut dyn GuestAccess,
    arg: u64,
) -> XenResult<()> {
    if FIFO_BUILT_IN && !caller_fifo_permitted(env)? {
        return Err(Errno::ENOSYS);
    }
    let sp: evtchn_set_priority = copy_in(guest, arg)?;
    let d = env.caller();
    on_domain(env, d, |e, mem, _| {
        let ch = e.chans.get(sp.port as usize).ok_or(Errno::EINVAL)?;
        let usable = ch.usable();
        e.with_ops(mem, &mut Vec::new(), |o, cx| {
            if !o.has_set_priority() {
                return Err(Errno::ENOSYS);
            }
            if !usable {
                return Err(Errno::EACCES);
            }
            o.set_priority(cx, sp.port, sp.priority)
        })
    })
}

/// `__HYPERVISOR_event_channel_op` (32): `cmd` is `EVTCHNOP_*` (Xen's
/// prototype takes `int cmd`: the dispatcher passes the low 32 bits of the
/// register), `arg` the guest-virtual address of its argument. Returns the
/// value for RAX.
pub fn do_event_channel_op(
    env: &mut dyn EvtchnEnv,
    guest: &mut dyn GuestAccess,
    cmd: u32,
    arg: u64,
) -> i64 {
    let r: XenResult<()> = match cmd {
        EVTCHNOP_alloc_unbound => in_out(env, guest, arg, evtchn_alloc_unbound),
        EVTCHNOP_bind_interdomain => in_out(env, guest, arg, evtchn_bind_interdomain),
        EVTCHNOP_bind_virq => in_out(env, guest, arg, evtchn_bind_virq),
        EVTCHNOP_bind_ipi => in_out(env, guest, arg, evtchn_bind_ipi),
        EVTCHNOP_bind_pirq => in_out(env, guest, arg, |_, _: &mut evtchn_bind_pirq| {
            // nr_pirqs is 0 for every domain: no pirq is in range.
            Err(Errno::EINVAL)
        }),
        EVTCHNOP_close => copy_in::<evtchn_close>(guest, arg).and_then(|c| {
            let d = env.caller();
            evtchn_close(env, d, c.port)
        }),
        EVTCHNOP_send => copy_in::<evtchn_send>(guest, arg).and_then(|s| evtchn_send(env, s.port)),
        EVTCHNOP_status => in_out(env, guest, arg, evtchn_status),
        EVTCHNOP_bind_vcpu => copy_in::<evtchn_bind_vcpu>(guest, arg)
            .and_then(|b| evtchn_bind_vcpu(env, b.port, b.vcpu)),
        EVTCHNOP_unmask => {
            copy_in::<evtchn_unmask>(guest, arg).and_then(|u| evtchn_unmask(env, u.port))
        }
        EVTCHNOP_reset | EVTCHNOP_reset_cont => copy_in::<evtchn_reset>(guest, arg).and_then(|r| {
            let d = resolve(env, r.dom);
            if !env.domain_exists(d) {
                return Err(Errno::ESRCH);
            }
            xsm_target(env, d)?;
            evtchn_reset(env, d, cmd == EVTCHNOP_reset_cont)
        }),
        EVTCHNOP_init_control => op_init_control(env, guest, arg),
        EVTCHNOP_expand_array => op_expand_array(env, guest, arg),
        EVTCHNOP_set_priority => op_set_priority(env, guest, arg),
        _ => Err(Errno::ENOSYS),
    };
    match r {
        Ok(()) => 0,
        Err(e) => {
            let d = env.caller().0;
            crate::gprintk!(d, log::Level::Debug, "d{d}: EVTCHNOP {cmd}: {e:?}");
            -i64::from(e as i32)
        }
    }
}
