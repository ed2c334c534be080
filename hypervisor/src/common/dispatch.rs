//! The [`ExtHandlers`] the hypervisor runs with: event channels and HVM ops wired
//! into the dispatcher over the domain table (their [`EvtchnEnv`] and [`HvmEnv`]),
//! and what they ask of the backends collected as [`ArchAction`]s.
//!
//! Xen reaches `struct domain` directly from `event_channel.c` and `hvm.c`; here
//! those modules see only their small environment traits, implemented once below.

use alloc::boxed::Box;
use alloc::sync::Arc;
use alloc::vec::Vec;

use xen_public_abi::xen::domid_t;
use xen_public_abi::{DomId, XenResult};

use super::domain::{Domain, DomainTable};
use super::event_channel::{self, EvtchnDomain, EvtchnEnv};
use super::guest_access::{GuestAccess, GuestMemory, GuestRam, MachineMemory};
use super::hvm::{self, DomainRef, HvmEnv};
use super::hypercall::{Caller, Clock, ExtHandlers, HostFacts};
use super::memory::{NoStage2, P2mCommit};
use super::{domain_memory, foreign_map, grant_table, memory_op, sched_op, vcpu_op};
use xen_public_abi::memory::{
    XENMEM_acquire_resource, XENMEM_add_to_physmap_batch, XENMEM_claim_pages,
    XENMEM_remove_from_physmap, XENMEM_set_memory_map,
};

/// Something only the backend can do, queued by a handler for the vCPU loop.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ArchAction {
    /// Deliver the event-channel upcall to `vcpu` (callback or per-vCPU vector)
    /// and kick it if it runs elsewhere.
    Upcall { domid: domid_t, vcpu: u32 },
    /// The vCPU's p2m view changed: reload its stage-2 root before it next runs.
    P2mChanged { domid: domid_t, vcpu: u32 },
    /// #VE notification switched on (`Some(gfn)`) or off for the vCPU.
    VeChanged {
        domid: domid_t,
        vcpu: u32,
        gfn: Option<u64>,
    },
    /// Crash the domain (`domain_crash`).
    Crash { domid: domid_t },
    /// Flush the guest TLBs of every vCPU of the domain.
    FlushTlbs { domid: domid_t },
}

/// The wired [`ExtHandlers`].
pub struct XenExt {
    /// Machine memory, to reach guest frames through a domain's p2m.
    pub machine: Arc<dyn MachineMemory>,
    pub clock: Box<dyn Clock + Send>,
    /// Work for the backends, in the order it was asked for.
    pub actions: Vec<ArchAction>,
    /// `max_page` for `XENMEM_maximum_ram_page` (set by the boot code).
    pub max_ram_page: u64,
    /// Returns once no physical CPU runs a vCPU of the domain (Xen's
    /// `domain_pause` before `domain_kill`): its frames are freed right after, so a
    /// vCPU still in guest mode elsewhere must not keep using them. The run loop
    /// installs the real one; host tests run no vCPUs.
    pub quiesce: fn(domid_t),
    /// The machine's facts for `XEN_SYSCTL_physinfo` (installed by the boot code).
    pub facts: fn() -> HostFacts,
    /// Create the hardware half of a vCPU that `XEN_DOMCTL_max_vcpus` creates at
    /// run time (installed by the run loop; boot-time domains get theirs from
    /// the boot builder, before it is installed).
    pub vcpu_hw_create: fn(domid_t, u32) -> XenResult<()>,
    /// Commits p2m changes to the stage-2 tables and waits for the CPUs that may
    /// hold older translations ([`P2mCommit`]); run after every memory and HVM op,
    /// before the frames they unmapped are freed. The run loop installs the real
    /// one; host tests run no vCPUs ([`NoStage2`]) or record the order.
    pub p2m_commit: Box<dyn P2mCommit + Send>,
}

impl XenExt {
    pub fn new(machine: Arc<dyn MachineMemory>, clock: Box<dyn Clock + Send>) -> Self {
        XenExt {
            machine,
            clock,
            actions: Vec::new(),
            max_ram_page: 0,
            quiesce: |_| {},
            facts: HostFacts::default,
            vcpu_hw_create: |_, _| Ok(()),
            p2m_commit: Box::new(NoStage2),
        }
    }

    /// After a handler that may have changed p2ms: each domain with changes not in
    /// its stage-2 tables yet has them committed (tables edited, CPUs flushed), and
    /// only then are the frames those changes unmapped given back (the ordering
    /// rule of `docs/memory.md`, "p2m changes and shootdown"). A commit that fails
    /// (no frame for a table) crashes that domain.
    pub fn commit_p2m_changes(&mut self, domains: &mut DomainTable) {
        let ids: Vec<domid_t> = domains.ids().collect();
        for id in ids {
            let Some(d) = domains.get_mut(id) else {
                continue;
            };
            if !d.hvm.p2m.stage2_pending() {
                continue;
            }
            if let Err(e) = self.p2m_commit.commit(id, &mut d.hvm.p2m) {
                log::warn!("d{id}: cannot update the stage-2 tables: {e:?}");
                self.actions.push(ArchAction::Crash { domid: id });
            }
        }
        domains.release_deferred_frames();
    }

    /// The environment event channels run in, for `caller`.
    pub fn evtchn_env<'a>(
        &'a mut self,
        domains: &'a mut DomainTable,
        caller: domid_t,
    ) -> DomainsEnv<'a> {
        DomainsEnv {
            domains,
            machine: &*self.machine,
            caller,
            caller_vcpu: 0,
            actions: &mut self.actions,
            clock: &*self.clock,
        }
    }
}

/// The domain table as the environment of event channels and HVM ops.
pub struct DomainsEnv<'a> {
    pub domains: &'a mut DomainTable,
    pub machine: &'a dyn MachineMemory,
    pub caller: domid_t,
    pub caller_vcpu: u32,
    pub actions: &'a mut Vec<ArchAction>,
    pub clock: &'a dyn Clock,
}

/// `vcpu_mark_events_pending` → `hvm_assert_evtchn_irq`: record the upcall, wake a
/// blocked vCPU (`vcpu_kick`), and queue the injection for the backend.
fn mark_upcall(
    domains: &mut DomainTable,
    actions: &mut Vec<ArchAction>,
    domid: domid_t,
    vcpu: u32,
) {
    if let Some(v) = domains.get_mut(domid).and_then(|d| d.vcpu_mut(vcpu)) {
        v.upcall_raised = true;
        v.blocked = false;
        v.poll = None;
    }
    actions.push(ArchAction::Upcall { domid, vcpu });
}

impl EvtchnEnv for DomainsEnv<'_> {
    fn caller(&self) -> DomId {
        DomId(self.caller)
    }
    fn caller_is_privileged(&self) -> bool {
        self.domains
            .get(self.caller)
            .is_some_and(|d| d.is_privileged)
    }
    fn domain_exists(&self, id: DomId) -> bool {
        self.domains.get(id.0).is_some()
    }
    fn with_domain(
        &mut self,
        id: DomId,
        f: &mut dyn FnMut(&mut EvtchnDomain, &mut dyn GuestMemory),
    ) -> bool {
        let Some(d) = self.domains.get_mut(id.0) else {
            return false;
        };
        let mut ram = GuestRam {
            p2m: &d.hvm.p2m,
            machine: self.machine,
        };
        f(&mut d.evtchn, &mut ram);
        true
    }
    fn controller_pause_count(&self, id: DomId) -> u32 {
        self.domains
            .get(id.0)
            .map_or(0, |d| d.controller_pause_count)
    }
    fn raise_upcall(&mut self, id: DomId, vcpu: u32) {
        mark_upcall(self.domains, self.actions, id.0, vcpu);
    }
    fn wake_pollers(&mut self, id: DomId, port: u32) {
        if let Some(d) = self.domains.get_mut(id.0) {
            sched_op::check_pollers(d, port);
        }
    }
}

impl HvmEnv for DomainsEnv<'_> {
    fn caller(&self) -> (DomId, u32) {
        (DomId(self.caller), self.caller_vcpu)
    }
    fn caller_is_privileged(&self) -> bool {
        self.domains
            .get(self.caller)
            .is_some_and(|d| d.is_privileged)
    }
    fn domain(&mut self, domid: DomId) -> Option<DomainRef<'_>> {
        let maxphysaddr = self.domains.caps().gpaddr_bits;
        let d = self.domains.get_mut(domid.0)?;
        Some(DomainRef {
            domid,
            is_hvm: d.is_hvm(),
            max_vcpus: d.max_vcpus(),
            cdf_flags: d.config.flags,
            emulation_flags: d.config.emulation_flags,
            maxphysaddr,
            hvm: &mut d.hvm,
        })
    }
    fn vcpu_p2m_changed(&mut self, domid: DomId, vcpu: u32) {
        self.actions.push(ArchAction::P2mChanged {
            domid: domid.0,
            vcpu,
        });
    }
    fn vcpu_ve_changed(&mut self, domid: DomId, vcpu: u32, gfn: Option<u64>) {
        self.actions.push(ArchAction::VeChanged {
            domid: domid.0,
            vcpu,
            gfn,
        });
    }
    fn assert_evtchn_upcall(&mut self, domid: DomId, vcpu: u32) {
        mark_upcall(self.domains, self.actions, domid.0, vcpu);
    }
    fn domain_crash(&mut self, domid: DomId) {
        self.actions.push(ArchAction::Crash { domid: domid.0 });
    }
    fn flush_guest_tlbs(&mut self, domid: DomId) {
        self.actions.push(ArchAction::FlushTlbs { domid: domid.0 });
    }
    fn system_time_ns(&self) -> u64 {
        self.clock.now_ns()
    }
}

impl ExtHandlers for XenExt {
    fn event_channel_op(
        &mut self,
        domains: &mut DomainTable,
        caller: Caller,
        cmd: u64,
        arg: u64,
        guest: &mut dyn GuestAccess,
    ) -> i64 {
        let mut env = self.evtchn_env(domains, caller.domid);
        env.caller_vcpu = caller.vcpu;
        // Xen's prototype takes `int cmd`.
        let rc = event_channel::do_event_channel_op(&mut env, guest, cmd as u32, arg);
        if rc == xen_public_abi::Errno::ERESTART.as_ret() {
            // Only a reset is preempted; it resumes as EVTCHNOP_reset_cont.
            domains.create_continuation(
                xen_public_abi::xen::__HYPERVISOR_event_channel_op,
                [
                    u64::from(xen_public_abi::event_channel::EVTCHNOP_reset_cont),
                    arg,
                    0,
                    0,
                    0,
                ],
            );
        }
        rc
    }

    fn hvm_op(
        &mut self,
        domains: &mut DomainTable,
        caller: Caller,
        op: u64,
        arg: u64,
        guest: &mut dyn GuestAccess,
    ) -> i64 {
        let mut env = self.evtchn_env(domains, caller.domid);
        env.caller_vcpu = caller.vcpu;
        let rc = hvm::do_hvm_op(&mut env, guest, op, arg);
        self.commit_p2m_changes(domains);
        rc
    }

    #[allow(non_upper_case_globals)]
    fn memory_op(
        &mut self,
        domains: &mut DomainTable,
        caller: Caller,
        cmd: u64,
        arg: u64,
        guest: &mut dyn GuestAccess,
    ) -> i64 {
        let free_pages = (self.facts)().free_pages;
        let mut env = memory_op::MemoryOpEnv {
            machine: &*self.machine,
            actions: &mut self.actions,
            max_ram_page: self.max_ram_page,
        };
        // The toolstack's ops on other domains live in their own modules.
        let op = (cmd & memory_op::MEMOP_CMD_MASK) as u32;
        let start = cmd >> memory_op::MEMOP_EXTENT_SHIFT;
        let rc = match op {
            XENMEM_add_to_physmap_batch => {
                foreign_map::add_to_physmap_batch(&mut env, domains, caller, start, arg, guest)
            }
            XENMEM_remove_from_physmap => {
                foreign_map::remove_from_physmap(&mut env, domains, caller, start, arg, guest)
            }
            XENMEM_claim_pages => {
                domain_memory::claim_pages(domains, caller, start, arg, guest, free_pages)
            }
            XENMEM_set_memory_map => domain_memory::set_memory_map(domains, caller, arg, guest),
            XENMEM_acquire_resource => grant_table::resource::acquire_resource(
                &mut env, domains, caller, start, arg, guest,
            ),
            _ => {
                let rc = memory_op::do_memory_op(&mut env, domains, caller, cmd, arg, guest);
                self.commit_p2m_changes(domains);
                return rc;
            }
        };
        let rc = match rc {
            Ok(()) => 0,
            Err(e) => e.as_ret(),
        };
        self.commit_p2m_changes(domains);
        rc
    }

    fn grant_table_op(
        &mut self,
        domains: &mut DomainTable,
        caller: Caller,
        cmd: u64,
        uop: u64,
        count: u64,
        guest: &mut dyn GuestAccess,
    ) -> i64 {
        let mut env = memory_op::MemoryOpEnv {
            machine: &*self.machine,
            actions: &mut self.actions,
            max_ram_page: self.max_ram_page,
        };
        // Xen's prototype: (unsigned int cmd, void *uop, unsigned int count).
        let rc = grant_table::do_grant_table_op(
            &mut env,
            domains,
            caller,
            cmd as u32,
            uop,
            count as u32,
            guest,
        );
        // Grant maps and unmaps edit the mapper's p2m: committed (tables, TLBs)
        // before any frame they unmapped is freed.
        self.commit_p2m_changes(domains);
        rc
    }

    fn vcpu_op(
        &mut self,
        domains: &mut DomainTable,
        caller: Caller,
        cmd: u64,
        vcpuid: u64,
        arg: u64,
        guest: &mut dyn GuestAccess,
    ) -> i64 {
        vcpu_op::do_vcpu_op(self, domains, caller, cmd, vcpuid, arg, guest)
    }

    fn evtchn_port_poll(&mut self, d: &mut Domain, port: u32) -> XenResult<bool> {
        let mut ram = GuestRam {
            p2m: &d.hvm.p2m,
            machine: &*self.machine,
        };
        d.evtchn.port_poll(&mut ram, port)
    }

    fn local_events_need_delivery(&mut self, d: &mut Domain, vcpu: u32) -> bool {
        let raised = d.vcpu(vcpu).is_some_and(|v| v.upcall_raised);
        let ram = GuestRam {
            p2m: &d.hvm.p2m,
            machine: &*self.machine,
        };
        raised
            || d.evtchn
                .shared_info()
                .upcall_pending(&ram, vcpu)
                .unwrap_or(false)
    }

    fn host_facts(&self) -> HostFacts {
        (self.facts)()
    }

    fn vcpu_create(&mut self, d: &mut Domain, vcpu: u32) -> XenResult<()> {
        (self.vcpu_hw_create)(d.domain_id, vcpu)
    }

    fn domain_pause(&mut self, _domains: &mut DomainTable, id: domid_t) {
        (self.quiesce)(id);
    }

    fn domain_destroy(&mut self, domains: &mut DomainTable, id: domid_t) {
        let mut env = self.evtchn_env(domains, id);
        if let Err(e) = event_channel::evtchn_destroy(&mut env, DomId(id)) {
            log::warn!("d{id}: closing event channels on destroy failed: {e:?}");
        }
        (self.quiesce)(id);
        // The grants it mapped are unpinned in their granters' tables.
        grant_table::release_mappings(&*self.machine, domains, id);
        super::log_ratelimit::forget(id);
    }

    fn domain_shutdown(&mut self, domains: &mut DomainTable, id: domid_t, _reason: u32) {
        // Xen tells the control domain through the global VIRQ_DOM_EXC.
        let mut env = self.evtchn_env(domains, id);
        event_channel::send_global_virq(&mut env, xen_public_abi::xen::VIRQ_DOM_EXC);
    }
}

#[cfg(test)]
mod tests {
    //! The wired dispatcher end to end: a dom0 toolstack creates domUs, wires an
    //! interdomain channel, delivers an event into a domU's real shared_info page,
    //! and the FIFO / upcall-vector / altp2m gates hold per domain.
    use super::*;
    use crate::common::domctl::create_vcpus;
    use crate::common::guest_access::fake::FakeMachine;
    use crate::common::hypercall::{do_hypercall, NoExt};
    use crate::common::memory::P2mAccess;
    use crate::common::test_support::*;
    use xen_public_abi::domctl::{XEN_DOMCTL_CDF_evtchn_fifo, XEN_DOMCTL_CDF_evtchn_upcall};
    use xen_public_abi::event_channel::*;
    use xen_public_abi::hvm::hvm_op::*;
    use xen_public_abi::hvm::params::HVM_PARAM_ALTP2M;
    use xen_public_abi::xen::{
        __HYPERVISOR_event_channel_op, __HYPERVISOR_hvm_op, shared_info, DOMID_SELF,
    };
    use zerocopy::{FromZeros, Immutable, IntoBytes};

    const ENOSYS: i64 = -38;
    const EPERM: i64 = -1;
    const EINVAL: i64 = -22;
    const SHINFO_GFN: u64 = 0x100;

    struct World {
        env: Env,
        ext: XenExt,
        machine: Arc<FakeMachine>,
    }

    impl World {
        fn new() -> World {
            let machine = Arc::new(FakeMachine::default());
            let env = Env::new();
            let ext = XenExt::new(machine.clone(), Box::new(env.clock.clone()));
            World { env, ext, machine }
        }

        fn call<T: IntoBytes + Immutable>(
            &mut self,
            domid: domid_t,
            nr: u32,
            a1: u64,
            arg: &T,
        ) -> i64 {
            self.env.put(ARG_GVA, arg);
            do_hypercall(
                &mut self.env.hv,
                &mut self.ext,
                Caller { domid, vcpu: 0 },
                u64::from(nr),
                [a1, ARG_GVA, 0, 0, 0],
                &mut self.env.mem,
            )
        }

        fn evtchn<T: IntoBytes + Immutable>(&mut self, domid: domid_t, cmd: u32, arg: &T) -> i64 {
            self.call(domid, __HYPERVISOR_event_channel_op, cmd.into(), arg)
        }

        fn hvm<T: IntoBytes + Immutable>(&mut self, domid: domid_t, op: u32, arg: &T) -> i64 {
            self.call(domid, __HYPERVISOR_hvm_op, op.into(), arg)
        }

        /// A running domU with one vCPU and its shared_info mapped at SHINFO_GFN
        /// (what XENMEM_add_to_physmap will do).
        fn domu(&mut self, extra_flags: u32) -> domid_t {
            let mut cfg = baseline();
            cfg.flags |= extra_flags;
            let (rc, id) = self.env.create(&cfg, 0);
            assert_eq!(rc, 0);
            let d = self.env.hv.domains.get_mut(id).unwrap();
            create_vcpus(d, &mut NoExt).unwrap();
            d.vcpus[0].online = true;
            hook_shared_info(d, &*self.machine, SHINFO_GFN);
            id
        }

        fn shared_info(&self, id: domid_t) -> shared_info {
            let mut s = shared_info::new_zeroed();
            let mfn = self.env.hv.domains.get(id).unwrap().shared_info_mfn;
            assert!(self.machine.read(mfn, 0, s.as_mut_bytes()));
            s
        }
    }

    #[test]
    fn interdomain_event_reaches_the_domus_shared_info() {
        let mut w = World::new();
        let a = w.domu(0);
        let mut au = evtchn_alloc_unbound::new_zeroed();
        au.dom = a;
        au.remote_dom = 0;
        assert_eq!(w.evtchn(0, EVTCHNOP_alloc_unbound, &au), 0);
        let pa = w.env.get::<evtchn_alloc_unbound>(ARG_GVA).port;
        assert_eq!(pa, 1);

        let mut bi = evtchn_bind_interdomain::new_zeroed();
        bi.remote_dom = a;
        bi.remote_port = pa;
        assert_eq!(w.evtchn(0, EVTCHNOP_bind_interdomain, &bi), 0);
        let p0 = w.env.get::<evtchn_bind_interdomain>(ARG_GVA).local_port;

        w.ext.actions.clear();
        let send = evtchn_send { port: p0 };
        assert_eq!(w.evtchn(0, EVTCHNOP_send, &send), 0);
        let s = w.shared_info(a);
        assert_eq!(
            s.evtchn_pending[0] & (1 << pa),
            1 << pa,
            "pending bit in the guest page"
        );
        assert_eq!(s.vcpu_info[0].evtchn_upcall_pending, 1);
        assert_eq!(w.ext.actions, [ArchAction::Upcall { domid: a, vcpu: 0 }]);
        assert!(w.env.hv.domains.get(a).unwrap().vcpus[0].upcall_raised);
        let d = w.env.hv.domains.get_mut(a).unwrap();
        assert!(w.ext.local_events_need_delivery(d, 0));
    }

    /// Serial input (Xen's `__serial_rx` with input switched to dom0): the byte
    /// waits for `CONSOLEIO_read` and dom0's `VIRQ_CONSOLE` port goes pending,
    /// also when the ring is full (the byte is then dropped).
    #[test]
    fn serial_input_raises_virq_console_for_dom0() {
        use xen_public_abi::xen::{__HYPERVISOR_console_io, CONSOLEIO_read, VIRQ_CONSOLE};
        let mut w = World::new();
        let d = w.env.hv.domains.get_mut(0).unwrap();
        if d.vcpus.is_empty() {
            create_vcpus(d, &mut NoExt).unwrap();
        }
        d.vcpus[0].online = true;
        hook_shared_info(d, &*w.machine, SHINFO_GFN);
        let mut bv = evtchn_bind_virq::new_zeroed();
        bv.virq = VIRQ_CONSOLE;
        assert_eq!(w.evtchn(0, EVTCHNOP_bind_virq, &bv), 0);
        let port = w.env.get::<evtchn_bind_virq>(ARG_GVA).port;
        let pending = |w: &World| w.shared_info(0).evtchn_pending[0] & (1 << port) != 0;
        assert!(!pending(&w));
        for c in b"ls\n" {
            let mut env = w.ext.evtchn_env(&mut w.env.hv.domains, 0);
            assert!(crate::common::console_io::serial_rx(
                &mut w.env.hv.console,
                &mut env,
                *c
            ));
        }
        assert!(pending(&w), "VIRQ_CONSOLE raised");
        let rc = do_hypercall(
            &mut w.env.hv,
            &mut w.ext,
            Caller { domid: 0, vcpu: 0 },
            u64::from(__HYPERVISOR_console_io),
            [u64::from(CONSOLEIO_read), 16, ARG_GVA, 0, 0],
            &mut w.env.mem,
        );
        assert_eq!(rc, 3);
        assert_eq!(w.env.get::<[u8; 3]>(ARG_GVA), *b"ls\n");
        // A full ring drops the byte but still notifies.
        for i in 0..crate::common::console_io::SERIAL_RX_SIZE {
            assert!(w.env.hv.console.push_rx(i as u8));
        }
        let mut env = w.ext.evtchn_env(&mut w.env.hv.domains, 0);
        assert!(!crate::common::console_io::serial_rx(
            &mut w.env.hv.console,
            &mut env,
            b'x'
        ));
    }

    #[test]
    fn fifo_is_gated_per_domain() {
        let mut w = World::new();
        let plain = w.domu(0);
        let mut ic = evtchn_init_control::new_zeroed();
        ic.control_gfn = 0xf_ffff_ffff; // not backed
        let r_plain = w.evtchn(plain, EVTCHNOP_init_control, &ic);
        if cfg!(feature = "evtchn-fifo") {
            assert_eq!(r_plain, ENOSYS, "no permission: as Xen before 4.4");
            let fifo = w.domu(XEN_DOMCTL_CDF_evtchn_fifo);
            let r_fifo = w.evtchn(fifo, EVTCHNOP_init_control, &ic);
            assert_eq!(r_fifo, EINVAL, "permitted: the bad gfn is looked at");
        } else {
            assert_eq!(
                r_plain, -95,
                "compiled out: -EOPNOTSUPP (Xen 4.21 CONFIG_EVTCHN_FIFO=n)"
            );
            let mut cfg = baseline();
            cfg.flags |= XEN_DOMCTL_CDF_evtchn_fifo;
            assert_eq!(w.env.create(&cfg, 0).0, EINVAL, "the flag is refused");
        }
    }

    #[test]
    fn upcall_vector_and_altp2m_param_gates() {
        let mut w = World::new();
        let plain = w.domu(0);
        let up = w.domu(XEN_DOMCTL_CDF_evtchn_upcall);
        let uv = xen_hvm_evtchn_upcall_vector {
            vcpu: 0,
            vector: 0xf3,
            _implicit0: [0; 3],
        };
        assert_eq!(w.hvm(plain, HVMOP_set_evtchn_upcall_vector, &uv), ENOSYS);
        w.ext.actions.clear();
        assert_eq!(w.hvm(up, HVMOP_set_evtchn_upcall_vector, &uv), 0);
        assert!(w
            .ext
            .actions
            .contains(&ArchAction::Upcall { domid: up, vcpu: 0 }));

        let mut p = xen_hvm_param::new_zeroed();
        p.domid = DOMID_SELF;
        p.index = HVM_PARAM_ALTP2M;
        p.value = 1;
        assert_eq!(w.hvm(plain, HVMOP_set_param, &p), EPERM);
        p.domid = plain;
        assert_eq!(w.hvm(0, HVMOP_set_param, &p), 0);
        assert_eq!(
            w.env
                .hv
                .domains
                .get(plain)
                .unwrap()
                .hvm
                .param(HVM_PARAM_ALTP2M),
            Some(1)
        );
    }

    /// Issue 14 ("altp2m set_mem_access restrictions do not reach running
    /// vCPUs"): a mem-access restriction through `HVMOP_altp2m` is committed to
    /// the stage-2 tables, with the shootdown, before the hypercall returns.
    #[test]
    fn altp2m_restriction_is_committed_before_the_call_returns() {
        use crate::common::memory::P2m;
        struct Log(Arc<spin::Mutex<Vec<domid_t>>>);
        impl P2mCommit for Log {
            fn commit(&mut self, domid: domid_t, p2m: &mut P2m) -> XenResult<()> {
                NoStage2.commit(domid, p2m)?;
                self.0.lock().push(domid);
                Ok(())
            }
        }
        let mut w = World::new();
        let d = w.domu(0);
        let mut p = xen_hvm_param::new_zeroed();
        p.domid = d;
        p.index = HVM_PARAM_ALTP2M;
        p.value = 1; // mixed: the guest drives
        assert_eq!(w.hvm(0, HVMOP_set_param, &p), 0);
        let log = Arc::new(spin::Mutex::new(Vec::new()));
        w.ext.p2m_commit = Box::new(Log(log.clone()));
        let op = |cmd: u32, set: &dyn Fn(&mut xen_hvm_altp2m_op)| {
            let mut a = xen_hvm_altp2m_op::new_zeroed();
            a.version = HVMOP_ALTP2M_INTERFACE_VERSION;
            a.cmd = cmd;
            a.domain = d;
            set(&mut a);
            a
        };
        let on = op(HVMOP_altp2m_set_domain_state, &|a| {
            a.u.set(&xen_hvm_altp2m_domain_state { state: 1 })
        });
        assert_eq!(w.hvm(d, HVMOP_altp2m, &on), 0);
        log.lock().clear();
        let restrict = op(HVMOP_altp2m_set_mem_access, &|a| {
            a.u.set(&xen_hvm_altp2m_mem_access {
                view: 0,
                access: xen_public_abi::memory::XENMEM_access_r as u16,
                pad: 0,
                gfn: SHINFO_GFN,
            })
        });
        assert_eq!(w.hvm(d, HVMOP_altp2m, &restrict), 0);
        let p2m = &w.env.hv.domains.get(d).unwrap().hvm.p2m;
        assert_eq!(p2m.host_entry(SHINFO_GFN).unwrap().access, P2mAccess::R);
        assert_eq!(*log.lock(), [d], "committed once, for that domain");
        assert!(!p2m.stage2_pending());
    }

    /// Issue 14: `EVTCHNOP_reset` of a domain with hundreds of ports is done
    /// 64 ports per entry and continues as `EVTCHNOP_reset_cont` (Xen's
    /// continuation); while it is in progress a second reset is `-EBUSY`; the
    /// end result is every port closed, as one call would leave it.
    #[test]
    fn evtchn_reset_is_preempted_and_continued() {
        use crate::common::event_channel::RESET_STRIDE;
        use crate::common::hypercall::{hypercall_entry, HypercallOutcome, HypercallRegs};
        let mut w = World::new();
        let a = w.domu(0);
        const PORTS: u32 = 300;
        for _ in 0..PORTS {
            let mut au = evtchn_alloc_unbound::new_zeroed();
            au.dom = a;
            au.remote_dom = 0;
            assert_eq!(w.evtchn(0, EVTCHNOP_alloc_unbound, &au), 0);
        }
        let ports = |w: &World| {
            let e = &w.env.hv.domains.get(a).unwrap().evtchn;
            (1..e.valid_evtchns())
                .filter(|&p| e.channel(p).unwrap().usable())
                .count()
        };
        assert_eq!(ports(&w), PORTS as usize);
        w.env.put(ARG_GVA, &evtchn_reset { dom: DOMID_SELF });
        let mut regs = HypercallRegs {
            rax: __HYPERVISOR_event_channel_op.into(),
            args: [EVTCHNOP_reset.into(), ARG_GVA, 0, 0, 0],
        };
        let caller = Caller { domid: a, vcpu: 0 };
        let mut entries = 0;
        loop {
            entries += 1;
            let before = ports(&w);
            let out = hypercall_entry(
                &mut w.env.hv,
                &mut w.ext,
                caller,
                regs.rax,
                regs.args,
                &mut w.env.mem,
            );
            assert!(before - ports(&w) <= RESET_STRIDE as usize, "bounded");
            if let HypercallOutcome::Continue(c) = out {
                assert_eq!(c.number, __HYPERVISOR_event_channel_op);
                assert_eq!(c.args[..2], [EVTCHNOP_reset_cont.into(), ARG_GVA]);
                if entries == 1 {
                    // In progress: another reset is refused, nothing closed.
                    let r = evtchn_reset { dom: a };
                    assert_eq!(w.evtchn(0, EVTCHNOP_reset, &r), -16);
                    w.env.put(ARG_GVA, &evtchn_reset { dom: DOMID_SELF });
                }
            }
            if out.apply(&mut regs) {
                break;
            }
        }
        assert_eq!(regs.rax, 0);
        assert_eq!(entries, 5, "ports 1..320 in strides of 64");
        assert_eq!(ports(&w), 0);
        // No reset in progress any more: reset_cont is -EBUSY, reset works.
        let r = evtchn_reset { dom: DOMID_SELF };
        assert_eq!(w.evtchn(a, EVTCHNOP_reset_cont, &r), -16);
        assert_eq!(w.evtchn(a, EVTCHNOP_reset, &r), 0);
    }

    #[test]
    fn destroy_closes_the_remote_end() {
        let mut w = World::new();
        let a = w.domu(0);
        let mut au = evtchn_alloc_unbound::new_zeroed();
        au.dom = DOMID_SELF;
        au.remote_dom = a;
        assert_eq!(w.evtchn(0, EVTCHNOP_alloc_unbound, &au), 0);
        let p0 = w.env.get::<evtchn_alloc_unbound>(ARG_GVA).port;
        let mut bi = evtchn_bind_interdomain::new_zeroed();
        bi.remote_dom = 0;
        bi.remote_port = p0;
        assert_eq!(w.evtchn(a, EVTCHNOP_bind_interdomain, &bi), 0);
        let op = domctl_op(xen_public_abi::domctl::XEN_DOMCTL_destroydomain, a);
        w.env.put(ARG_GVA, &op);
        let rc = do_hypercall(
            &mut w.env.hv,
            &mut w.ext,
            Caller { domid: 0, vcpu: 0 },
            xen_public_abi::xen::__HYPERVISOR_domctl.into(),
            [ARG_GVA, 0, 0, 0, 0],
            &mut w.env.mem,
        );
        assert_eq!(rc, 0);
        let mut st = evtchn_status::new_zeroed();
        st.dom = DOMID_SELF;
        st.port = p0;
        assert_eq!(w.evtchn(0, EVTCHNOP_status, &st), 0);
        assert_eq!(
            w.env.get::<evtchn_status>(ARG_GVA).status,
            EVTCHNSTAT_unbound
        );
    }
}
