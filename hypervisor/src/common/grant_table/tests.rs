//! Grant tables through the wired dispatcher (`do_hypercall` with `XenExt`):
//! each op's results and errnos, the busy bits that stop a revoke, the frame
//! lifetime rule, continuations, and the toolstack's acquire_resource seeding.

use super::*;
use crate::common::dispatch::{ArchAction, XenExt};
use crate::common::guest_access::fake::FakeMachine;
use crate::common::hypercall::{do_hypercall, hypercall_entry, HypercallOutcome, HypercallRegs};
use crate::common::test_support::*;
use alloc::boxed::Box;
use alloc::sync::Arc;
use alloc::vec;
use alloc::vec::Vec;
use xen_public_abi::domctl::{
    xen_domctl_max_vcpus, XEN_DOMCTL_destroydomain, XEN_DOMCTL_max_vcpus,
};
use xen_public_abi::grant_table::*;
use xen_public_abi::memory::{
    xen_add_to_physmap, xen_mem_acquire_resource, xen_memory_reservation, xen_remove_from_physmap,
    XENMAPSPACE_grant_table, XENMEM_acquire_resource, XENMEM_add_to_physmap,
    XENMEM_decrease_reservation, XENMEM_populate_physmap, XENMEM_remove_from_physmap,
    XENMEM_resource_grant_table, XENMEM_resource_grant_table_id_shared,
    XENMEM_resource_grant_table_id_status,
};
use xen_public_abi::xen::{
    __HYPERVISOR_domctl, __HYPERVISOR_grant_table_op, __HYPERVISOR_memory_op, DOMID_SELF,
};
use zerocopy::{FromZeros, Immutable};

const EPERM: i64 = -1;
const ESRCH: i64 = -3;
const EFAULT: i64 = -14;
const EACCES: i64 = -13;
const EINVAL: i64 = -22;
const ENOSYS: i64 = -38;
const LIST: u64 = 0x3000;
/// Where dom0 maps grants (a gfn above its RAM).
const MAP_GFN: u64 = 0x8_0000;
/// The domU's granted page.
const PAGE_GFN: u64 = 0x10;

struct W {
    env: Env,
    ext: XenExt,
    machine: Arc<FakeMachine>,
    u: domid_t,
}

fn world() -> W {
    let machine = Arc::new(FakeMachine::default());
    let mut env = Env::new();
    let ext = XenExt::new(machine.clone(), Box::new(env.clock.clone()));
    let (rc, u) = env.create(&baseline(), 0);
    assert_eq!(rc, 0);
    let mut op = domctl_op(XEN_DOMCTL_max_vcpus, u);
    op.u.set(&xen_domctl_max_vcpus { max: 1 });
    assert_eq!(env.domctl(0, &op).0, 0);
    env.hv.domains.get_mut(u).unwrap().max_pages = 64;
    env.hv.domains.get_mut(0).unwrap().max_pages = 64;
    let mut w = W {
        env,
        ext,
        machine,
        u,
    };
    assert_eq!(w.populate(u, &[PAGE_GFN, PAGE_GFN + 1]), 2);
    w
}

impl W {
    fn call(&mut self, caller: domid_t, nr: u32, args: [u64; 5]) -> i64 {
        do_hypercall(
            &mut self.env.hv,
            &mut self.ext,
            Caller {
                domid: caller,
                vcpu: 0,
            },
            nr.into(),
            args,
            &mut self.env.mem,
        )
    }
    fn gnt<T: IntoBytes + Immutable>(&mut self, caller: domid_t, cmd: u32, ops: &[T]) -> i64 {
        for (i, o) in ops.iter().enumerate() {
            self.env
                .put(ARG_GVA + (i * core::mem::size_of::<T>()) as u64, o);
        }
        self.call(
            caller,
            __HYPERVISOR_grant_table_op,
            [cmd.into(), ARG_GVA, ops.len() as u64, 0, 0],
        )
    }
    fn memop<T: IntoBytes + Immutable>(&mut self, caller: domid_t, cmd: u32, arg: &T) -> i64 {
        self.env.put(ARG_GVA, arg);
        self.call(
            caller,
            __HYPERVISOR_memory_op,
            [cmd.into(), ARG_GVA, 0, 0, 0],
        )
    }
    fn populate(&mut self, dom: domid_t, gfns: &[u64]) -> i64 {
        for (i, g) in gfns.iter().enumerate() {
            self.env.put(LIST + 8 * i as u64, g);
        }
        let mut r = xen_memory_reservation::new_zeroed();
        r.extent_start = LIST;
        r.nr_extents = gfns.len() as u64;
        r.domid = dom;
        self.memop(0, XENMEM_populate_physmap, &r)
    }
    fn d(&self, id: domid_t) -> &crate::common::domain::Domain {
        self.env.hv.domains.get(id).unwrap()
    }
    fn mfn(&self, dom: domid_t, gfn: u64) -> Option<u64> {
        self.d(dom).hvm.p2m.host_entry(gfn).map(|e| e.mfn)
    }
    /// The granter writes entry `r` of its table (as the guest would).
    fn grant(&mut self, dom: domid_t, r: u32, to: domid_t, gfn: u32, flags: u16) {
        let (i, off) = entry::entry_location(r);
        grow(&mut self.env.hv.domains, dom, i as u32 + 1).unwrap();
        let mfn = self.d(dom).grant.frames[i].mfn;
        let e = grant_entry_v1 {
            flags,
            domid: to,
            frame: gfn,
        };
        assert!(self.machine.write(mfn, off, e.as_bytes()));
    }
    fn entry(&self, dom: domid_t, r: u32) -> grant_entry_v1 {
        self.d(dom).grant.read_entry(&*self.machine, r).unwrap()
    }
    /// The granter's revoke (Linux's `gnttab_end_foreign_access_ref`): clear the
    /// flags unless a busy bit is set.
    fn revoke(&self, dom: domid_t, r: u32) -> bool {
        let (i, off) = entry::entry_location(r);
        let mfn = self.d(dom).grant.frames[i].mfn;
        let e = self.entry(dom, r);
        if e.flags & (GTF_reading | GTF_writing) != 0 {
            return false;
        }
        let cur = u32::from(e.flags) | u32::from(e.domid) << 16;
        self.machine
            .cmpxchg_u32(mfn, off, cur, u32::from(e.domid) << 16)
            == Some(cur)
    }
    fn fill(&self, dom: domid_t, gfn: u64, byte: u8) {
        let mfn = self.mfn(dom, gfn).unwrap();
        assert!(self.machine.write(mfn, 0, &[byte; 4096]));
    }
    fn byte(&self, mfn: u64, off: usize) -> u8 {
        let mut b = [0u8];
        assert!(self.machine.read(mfn, off, &mut b));
        b[0]
    }
    fn map(
        &mut self,
        caller: domid_t,
        dom: domid_t,
        r: u32,
        gfn: u64,
        flags: u32,
    ) -> gnttab_map_grant_ref {
        let mut op = gnttab_map_grant_ref::new_zeroed();
        op.host_addr = gfn << 12;
        op.flags = flags;
        op.r#ref = r;
        op.dom = dom;
        op.handle = 0xdead;
        assert_eq!(self.gnt(caller, GNTTABOP_map_grant_ref, &[op]), 0);
        self.env.get(ARG_GVA)
    }
    fn unmap(&mut self, caller: domid_t, handle: u32, gfn: u64) -> i16 {
        let op = gnttab_unmap_grant_ref {
            host_addr: gfn << 12,
            dev_bus_addr: 0,
            handle,
            status: 0x55,
            _implicit0: [0; 2],
        };
        assert_eq!(self.gnt(caller, GNTTABOP_unmap_grant_ref, &[op]), 0);
        self.env.get::<gnttab_unmap_grant_ref>(ARG_GVA).status
    }
    fn destroy(&mut self, id: domid_t) {
        let op = domctl_op(XEN_DOMCTL_destroydomain, id);
        self.env.put(ARG_GVA, &op);
        assert_eq!(self.call(0, __HYPERVISOR_domctl, [ARG_GVA, 0, 0, 0, 0]), 0);
    }
}

#[test]
fn table_limits_come_from_createdomain() {
    let mut w = world();
    let mut cfg = baseline();
    cfg.max_grant_frames = 4;
    cfg.max_maptrack_frames = 0;
    let (rc, v) = w.env.create(&cfg, 0);
    assert_eq!(rc, 0);
    let g = &w.d(v).grant;
    assert_eq!(
        (g.nr_frames(), g.max_grant_frames(), g.max_maptrack_frames()),
        (1, 4, 0)
    );
    assert_eq!(w.d(w.u).grant.max_grant_frames(), 64, "-1 is the default");
    // No maptrack frames: every map is out of handles.
    w.grant(w.u, 3, v, PAGE_GFN as u32, GTF_permit_access);
    let op = w.map(v, w.u, 3, MAP_GFN, GNTMAP_host_map);
    assert_eq!(op.status, GNTST_no_space);
    assert_eq!(w.entry(w.u, 3).flags, GTF_permit_access, "nothing pinned");
}

#[test]
fn query_size_setup_table_and_versions() {
    let mut w = world();
    let u = w.u;
    let mut q = gnttab_query_size::new_zeroed();
    q.dom = DOMID_SELF;
    assert_eq!(w.gnt(u, GNTTABOP_query_size, &[q]), 0);
    let back: gnttab_query_size = w.env.get(ARG_GVA);
    assert_eq!(
        (back.status, back.nr_frames, back.max_nr_frames),
        (GNTST_okay, 1, 64)
    );
    q.dom = 0;
    assert_eq!(w.gnt(u, GNTTABOP_query_size, &[q]), 0);
    assert_eq!(
        w.env.get::<gnttab_query_size>(ARG_GVA).status,
        GNTST_permission_denied
    );
    q.dom = 0x7000;
    assert_eq!(w.gnt(0, GNTTABOP_query_size, &[q]), 0);
    assert_eq!(
        w.env.get::<gnttab_query_size>(ARG_GVA).status,
        GNTST_bad_domain
    );
    assert_eq!(
        w.gnt(u, GNTTABOP_query_size, &[q, q]),
        EINVAL,
        "count must be 1"
    );

    // setup_table grows the table; unmapped frames read INVALID_GFN.
    let mut s = gnttab_setup_table::new_zeroed();
    s.dom = DOMID_SELF;
    s.nr_frames = 3;
    s.frame_list = LIST;
    assert_eq!(w.gnt(u, GNTTABOP_setup_table, &[s]), 0);
    assert_eq!(w.env.get::<gnttab_setup_table>(ARG_GVA).status, GNTST_okay);
    assert_eq!(w.d(u).grant.nr_frames(), 3);
    assert_eq!(w.env.get::<[u64; 3]>(LIST), [u64::MAX; 3]);
    s.nr_frames = 65;
    assert_eq!(w.gnt(u, GNTTABOP_setup_table, &[s]), 0);
    assert_eq!(
        w.env.get::<gnttab_setup_table>(ARG_GVA).status,
        GNTST_general_error
    );
    s.nr_frames = 1;
    s.frame_list = BAD_GVA;
    assert_eq!(w.gnt(u, GNTTABOP_setup_table, &[s]), 0);
    assert_eq!(
        w.env.get::<gnttab_setup_table>(ARG_GVA).status,
        GNTST_bad_virt_addr
    );
    s.dom = 0;
    assert_eq!(w.gnt(u, GNTTABOP_setup_table, &[s]), 0);
    assert_eq!(
        w.env.get::<gnttab_setup_table>(ARG_GVA).status,
        GNTST_permission_denied
    );
    assert_eq!(
        w.call(
            u,
            __HYPERVISOR_grant_table_op,
            [GNTTABOP_setup_table.into(), BAD_GVA, 1, 0, 0]
        ),
        EFAULT
    );

    // Versions: 1 is in effect; 2 is not implemented (-ENOSYS, as a 4.17
    // domain limited to v1 gets); the version is written back either way.
    for (v, rc) in [(1, 0), (2, ENOSYS), (3, EINVAL), (0, EINVAL)] {
        assert_eq!(
            w.gnt(
                u,
                GNTTABOP_set_version,
                &[gnttab_set_version { version: v }]
            ),
            rc
        );
        assert_eq!(w.env.get::<gnttab_set_version>(ARG_GVA).version, 1);
    }
    let gv = |dom| gnttab_get_version {
        dom,
        pad: 0,
        version: 0x55,
    };
    assert_eq!(w.gnt(u, GNTTABOP_get_version, &[gv(DOMID_SELF)]), 0);
    assert_eq!(w.env.get::<gnttab_get_version>(ARG_GVA).version, 1);
    assert_eq!(w.gnt(u, GNTTABOP_get_version, &[gv(0)]), EPERM);
    assert_eq!(w.gnt(0, GNTTABOP_get_version, &[gv(0x7000)]), ESRCH);
    assert_eq!(w.gnt(0, GNTTABOP_get_version, &[gv(u)]), 0);

    // The HVM filter: other commands (and cmd with continuation bits) -ENOSYS.
    for cmd in [3u32, 4, 7, 9, 12, 13, 0x1000 | GNTTABOP_query_size] {
        assert_eq!(w.gnt(u, cmd, &[q]), ENOSYS, "cmd {cmd:#x}");
    }
    assert_eq!(
        w.call(
            u,
            __HYPERVISOR_grant_table_op,
            [GNTTABOP_copy.into(), ARG_GVA, 0x8000_0000, 0, 0]
        ),
        EINVAL,
        "negative count"
    );
}

#[test]
fn add_to_physmap_grant_table_frames() {
    let mut w = world();
    let u = w.u;
    let x = |idx, gpfn| {
        let mut x = xen_add_to_physmap::new_zeroed();
        x.domid = DOMID_SELF;
        x.space = XENMAPSPACE_grant_table;
        x.idx = idx;
        x.gpfn = gpfn;
        x
    };
    assert_eq!(w.memop(u, XENMEM_add_to_physmap, &x(0, 0x100)), 0);
    assert_eq!(
        w.memop(u, XENMEM_add_to_physmap, &x(2, 0x102)),
        0,
        "grows to 3"
    );
    assert_eq!(w.d(u).grant.nr_frames(), 3);
    assert_eq!(
        w.memop(u, XENMEM_add_to_physmap, &x(64, 0x140)),
        EINVAL,
        "limit 64"
    );
    assert_eq!(
        w.memop(u, XENMEM_add_to_physmap, &x(1 << 31, 0x140)),
        EINVAL,
        "status idx"
    );
    let f0 = w.d(u).grant.frames[0].mfn;
    assert_eq!(w.mfn(u, 0x100), Some(f0));
    let mut s = gnttab_setup_table::new_zeroed();
    s.dom = DOMID_SELF;
    s.nr_frames = 3;
    s.frame_list = LIST;
    assert_eq!(w.gnt(u, GNTTABOP_setup_table, &[s]), 0);
    assert_eq!(w.env.get::<[u64; 3]>(LIST), [0x100, u64::MAX, 0x102]);
    // Mapping it elsewhere moves it.
    assert_eq!(w.memop(u, XENMEM_add_to_physmap, &x(0, 0x200)), 0);
    assert_eq!((w.mfn(u, 0x100), w.mfn(u, 0x200)), (None, Some(f0)));
    // The guest writes an entry through its mapping: the table sees it.
    let e = grant_entry_v1 {
        flags: GTF_permit_access,
        domid: 0,
        frame: 0x10,
    };
    assert!(w
        .machine
        .write(w.mfn(u, 0x200).unwrap(), 7 * 8, e.as_bytes()));
    assert_eq!(w.entry(u, 7).frame, 0x10);
}

#[test]
fn map_read_revoke_refused_unmap() {
    let mut w = world();
    let u = w.u;
    w.fill(u, PAGE_GFN, 0xa5);
    let page = w.mfn(u, PAGE_GFN).unwrap();
    w.grant(u, 5, 0, PAGE_GFN as u32, GTF_permit_access);
    let op = w.map(0, u, 5, MAP_GFN, GNTMAP_host_map);
    assert_eq!(op.status, GNTST_okay);
    assert_eq!(op.dev_bus_addr, page << 12);
    assert_eq!(w.mfn(0, MAP_GFN), Some(page), "dom0 sees the domU page");
    assert_eq!(
        w.d(0).hvm.p2m.host_entry(MAP_GFN).unwrap().access,
        crate::common::memory::P2mAccess::RW
    );
    assert_eq!(w.byte(w.mfn(0, MAP_GFN).unwrap(), 100), 0xa5);
    assert_eq!(
        w.entry(u, 5).flags,
        GTF_permit_access | GTF_reading | GTF_writing
    );
    assert!(!w.revoke(u, 5), "a mapped entry cannot be revoked");
    assert_eq!(w.d(u).grant.active(5).map(|a| a.pin), Some(entry::PIN_HSTW));
    // A second, read-only mapping of the same grant by the same domain.
    let ro = w.map(0, u, 5, MAP_GFN + 1, GNTMAP_host_map | GNTMAP_readonly);
    assert_eq!(ro.status, GNTST_okay);
    assert_ne!(ro.handle, op.handle);
    assert_eq!(
        w.d(0).hvm.p2m.host_entry(MAP_GFN + 1).unwrap().access,
        crate::common::memory::P2mAccess::R
    );
    // Unmap: wrong address, then right; the read-only one keeps GTF_reading only.
    assert_eq!(w.unmap(0, op.handle, MAP_GFN + 7), GNTST_general_error);
    assert_eq!(w.unmap(0, op.handle, MAP_GFN), GNTST_okay);
    assert_eq!(w.mfn(0, MAP_GFN), None);
    assert_eq!(w.entry(u, 5).flags, GTF_permit_access | GTF_reading);
    assert!(!w.revoke(u, 5));
    assert_eq!(
        w.unmap(0, op.handle, MAP_GFN),
        GNTST_bad_handle,
        "already unmapped"
    );
    assert_eq!(w.unmap(0, ro.handle, MAP_GFN + 1), GNTST_okay);
    assert_eq!(w.entry(u, 5).flags, GTF_permit_access);
    assert!(w.d(u).grant.active(5).is_none());
    assert!(w.revoke(u, 5), "unmapped: the granter takes it back");
    assert_eq!(w.env.hv.domains.foreign.refs(page), 0);
    assert_eq!(w.mfn(u, PAGE_GFN), Some(page), "the domU keeps its page");
    // host_addr 0: nothing unmapped, the handle stays.
    w.grant(u, 6, 0, PAGE_GFN as u32, GTF_permit_access);
    let op = w.map(0, u, 6, MAP_GFN, GNTMAP_host_map);
    assert_eq!(w.unmap(0, op.handle, 0), GNTST_okay);
    assert_eq!(w.mfn(0, MAP_GFN), Some(page));
    assert_eq!(w.unmap(0, op.handle, MAP_GFN), GNTST_okay);
}

#[test]
fn map_errors() {
    let mut w = world();
    let u = w.u;
    let (_, v) = w.env.create(&baseline(), 0);
    w.grant(u, 1, 0, PAGE_GFN as u32, GTF_permit_access);
    w.grant(u, 2, v, PAGE_GFN as u32, GTF_permit_access);
    w.grant(u, 3, 0, PAGE_GFN as u32, GTF_permit_access | GTF_readonly);
    w.grant(u, 4, 0, 0x3333, GTF_permit_access);
    w.grant(u, 5, 0, PAGE_GFN as u32, GTF_accept_transfer);
    let hm = GNTMAP_host_map;
    let cases: &[(domid_t, u32, u32, i16, &str)] = &[
        (u, 1, 0, GNTST_bad_gntref, "no device or host flag"),
        (
            u,
            1,
            hm | GNTMAP_device_map,
            GNTST_general_error,
            "device map",
        ),
        (u, 1, hm | GNTMAP_contains_pte, GNTST_general_error, "PTE"),
        (
            u,
            1,
            hm | GNTMAP_application_map,
            GNTST_general_error,
            "application",
        ),
        (0x7000, 1, hm, GNTST_bad_domain, "no such domain"),
        (
            DOMID_SELF,
            1,
            hm,
            GNTST_bad_domain,
            "DOMID_SELF is not looked up",
        ),
        (u, 512, hm, GNTST_bad_gntref, "past the one frame"),
        (u, 0, hm, GNTST_general_error, "invalid entry"),
        (u, 2, hm, GNTST_general_error, "granted to someone else"),
        (
            u,
            3,
            hm,
            GNTST_general_error,
            "writable map of a read-only grant",
        ),
        (u, 4, hm, GNTST_bad_page, "gfn not populated"),
        (u, 5, hm, GNTST_general_error, "transfer entry"),
        (u, 1, hm | 1 << 16, GNTST_general_error, "guest-avail bits"),
    ];
    for &(dom, r, flags, want, what) in cases {
        let op = w.map(0, dom, r, MAP_GFN, flags);
        assert_eq!(op.status, want, "{what}");
        assert_eq!(op.handle, 0xdead, "{what}: handle untouched");
    }
    for r in 0..6 {
        assert_eq!(
            w.entry(u, r).flags & (GTF_reading | GTF_writing),
            0,
            "ref {r} not left busy"
        );
    }
    assert_eq!(w.d(0).grant.maptrack.live(), 0);
    // Read-only map of the read-only grant works.
    assert_eq!(
        w.map(0, u, 3, MAP_GFN, hm | GNTMAP_readonly).status,
        GNTST_okay
    );
    // The grant pinned by dom0 cannot be mapped by v (the entry's grantee is dom0).
    w.grant(u, 2, 0, PAGE_GFN as u32, GTF_permit_access);
    assert_eq!(
        w.map(v, u, 3, 0x100, hm | GNTMAP_readonly).status,
        GNTST_general_error
    );
    // A map over a special page (the grant mapping at MAP_GFN): Xen crashes the mapper.
    assert_eq!(w.map(0, u, 2, MAP_GFN, hm).status, GNTST_general_error);
    assert!(w.ext.actions.contains(&ArchAction::Crash { domid: 0 }));
    assert_eq!(
        w.entry(u, 2).flags,
        GTF_permit_access,
        "the failed map undid its pin"
    );
    // Unknown handles.
    assert_eq!(w.unmap(0, 999, MAP_GFN), GNTST_bad_handle);
    // A grant mapped over the mapper's own shared_info: the event channels let
    // go of that gfn first (they would otherwise write into the granted page).
    let mut x = xen_add_to_physmap::new_zeroed();
    x.domid = DOMID_SELF;
    x.space = xen_public_abi::memory::XENMAPSPACE_shared_info;
    x.gpfn = 0x300;
    assert_eq!(w.memop(v, XENMEM_add_to_physmap, &x), 0);
    w.grant(u, 7, v, PAGE_GFN as u32, GTF_permit_access);
    assert_eq!(w.map(v, u, 7, 0x300, hm).status, GNTST_okay);
    assert_eq!(w.d(v).shared_info_gfn, u64::MAX);
    assert_eq!(w.d(v).evtchn.shared_info().gpa(), None);
}

/// The lifetime rule: a mapped frame outlives the granting domain and is freed
/// (after the commit) when the last mapping goes.
#[test]
fn granter_destroyed_while_mapped() {
    let mut w = world();
    let u = w.u;
    let page = w.mfn(u, PAGE_GFN).unwrap();
    w.fill(u, PAGE_GFN, 0x5a);
    w.grant(u, 9, 0, PAGE_GFN as u32, GTF_permit_access);
    let op = w.map(0, u, 9, MAP_GFN, GNTMAP_host_map);
    assert_eq!(op.status, GNTST_okay);
    // The domU gives the page back while mapped: the frame stays.
    w.env.put(LIST, &PAGE_GFN);
    let mut r = xen_memory_reservation::new_zeroed();
    r.extent_start = LIST;
    r.nr_extents = 1;
    r.domid = DOMID_SELF;
    assert_eq!(w.memop(u, XENMEM_decrease_reservation, &r), 1);
    assert!(w.env.frames.is_allocated(page), "held by dom0's mapping");
    let before = w.env.frames.outstanding();
    w.destroy(u);
    // The domU's other page, shared_info and grant frame went; the mapped one stays.
    assert_eq!(w.env.frames.outstanding(), before - 3);
    assert!(w.env.frames.is_allocated(page));
    assert_eq!(w.mfn(0, MAP_GFN), Some(page));
    assert_eq!(w.byte(page, 9), 0x5a, "dom0 still reads the data");
    // A new domain may take the same id: the unmap does not touch its table.
    let (_, n) = w.env.create(&baseline(), u);
    assert_eq!(n, u);
    assert_eq!(w.unmap(0, op.handle, MAP_GFN), GNTST_okay);
    assert!(
        !w.env.frames.is_allocated(page),
        "freed with the last mapping"
    );
    assert_eq!(w.mfn(0, MAP_GFN), None);
    assert!(w.env.hv.domains.deferred_frames().is_empty());
    assert!(
        w.d(u).grant.active(9).is_none(),
        "the new table is untouched"
    );
}

/// The mapper dies: its mappings' pins go from the granter's entries and their
/// references from the frames.
#[test]
fn mapper_destroyed_while_mapping() {
    let mut w = world();
    let u = w.u;
    let (_, v) = w.env.create(&baseline(), 0);
    w.env.hv.domains.get_mut(v).unwrap().max_pages = 4;
    let page = w.mfn(u, PAGE_GFN).unwrap();
    w.grant(u, 1, v, PAGE_GFN as u32, GTF_permit_access);
    assert_eq!(w.map(v, u, 1, 0x40, GNTMAP_host_map).status, GNTST_okay);
    assert_eq!(w.env.hv.domains.foreign.refs(page), 1);
    w.destroy(v);
    assert_eq!(w.env.hv.domains.foreign.refs(page), 0);
    assert_eq!(w.entry(u, 1).flags, GTF_permit_access, "busy bits cleared");
    assert!(w.d(u).grant.active(1).is_none());
    assert!(w.revoke(u, 1));
    assert!(w.env.frames.is_allocated(page), "still the domU's page");
}

#[test]
fn copy_gref_and_gmfn() {
    let mut w = world();
    let u = w.u;
    assert_eq!(w.populate(0, &[0x20]), 1);
    w.fill(u, PAGE_GFN, 0x11);
    w.fill(0, 0x20, 0x22);
    w.grant(u, 1, 0, PAGE_GFN as u32, GTF_permit_access | GTF_readonly);
    w.grant(u, 2, 0, PAGE_GFN as u32 + 1, GTF_permit_access);
    let ptr = |u64v: u64, domid, offset| {
        let mut p = gnttab_copy_ptr::new_zeroed();
        p.u.set(&u64v);
        p.domid = domid;
        p.offset = offset;
        p
    };
    let cp = |src, dst, len, flags| gnttab_copy {
        source: src,
        dest: dst,
        len,
        flags,
        status: 0x55,
        _implicit0: [0; 2],
    };
    // domU page (gref 1, read-only) → dom0's own gfn 0x20, at offsets.
    let ops = [
        cp(
            ptr(1, u, 0),
            ptr(0x20, DOMID_SELF, 100),
            50,
            GNTCOPY_source_gref,
        ),
        // dom0 page → domU's writable grant 2.
        cp(
            ptr(0x20, DOMID_SELF, 0),
            ptr(2, u, 4000),
            96,
            GNTCOPY_dest_gref,
        ),
        // Errors, in Xen's order.
        cp(ptr(0x20, u, 0), ptr(0x20, DOMID_SELF, 0), 8, 0),
        cp(
            ptr(1, 0x7000, 0),
            ptr(0x20, DOMID_SELF, 0),
            8,
            GNTCOPY_source_gref,
        ),
        cp(
            ptr(1, u, 0),
            ptr(1, u, 0),
            8,
            GNTCOPY_source_gref | GNTCOPY_dest_gref,
        ),
        cp(
            ptr(1, u, 4000),
            ptr(0x20, DOMID_SELF, 0),
            200,
            GNTCOPY_source_gref,
        ),
        cp(
            ptr(7, u, 4000),
            ptr(0x20, DOMID_SELF, 0),
            200,
            GNTCOPY_source_gref,
        ),
        cp(ptr(0x99, DOMID_SELF, 0), ptr(0x20, DOMID_SELF, 0), 8, 0),
    ];
    assert_eq!(w.gnt(0, GNTTABOP_copy, &ops), 0);
    let st: [gnttab_copy; 8] = w.env.get(ARG_GVA);
    let got: alloc::vec::Vec<i16> = st.iter().map(|c| c.status).collect();
    assert_eq!(
        got,
        vec![
            GNTST_okay,
            GNTST_okay,
            GNTST_permission_denied,
            GNTST_bad_domain,
            GNTST_general_error,
            GNTST_bad_copy_arg,
            GNTST_general_error,
            GNTST_bad_page,
        ]
    );
    let d0 = w.mfn(0, 0x20).unwrap();
    assert_eq!(
        (
            w.byte(d0, 99),
            w.byte(d0, 100),
            w.byte(d0, 149),
            w.byte(d0, 150)
        ),
        (0x22, 0x11, 0x11, 0x22)
    );
    let u1 = w.mfn(u, PAGE_GFN + 1).unwrap();
    assert_eq!(
        (w.byte(u1, 3999), w.byte(u1, 4000), w.byte(u1, 4095)),
        (0, 0x22, 0x22)
    );
    for r in [1, 2, 7] {
        assert_eq!(
            w.entry(u, r).flags & (GTF_reading | GTF_writing),
            0,
            "ref {r} released"
        );
        assert!(w.d(u).grant.active(r).is_none());
    }
}

/// Long batches are preempted every GNTTAB_OPS_PER_ENTRY entries and
/// continued with the guest handle and count moved on.
#[test]
fn batches_are_continued() {
    let mut w = world();
    let u = w.u;
    const N: u32 = 100;
    for r in 0..N {
        w.grant(u, r, 0, PAGE_GFN as u32, GTF_permit_access | GTF_readonly);
    }
    let mut ops = alloc::vec::Vec::new();
    for r in 0..N {
        let mut op = gnttab_map_grant_ref::new_zeroed();
        op.host_addr = (MAP_GFN + u64::from(r)) << 12;
        op.flags = GNTMAP_host_map | GNTMAP_readonly;
        op.r#ref = r;
        op.dom = u;
        ops.push(op);
    }
    for (i, o) in ops.iter().enumerate() {
        w.env.put(ARG_GVA + 32 * i as u64, o);
    }
    let mut regs = HypercallRegs {
        rax: __HYPERVISOR_grant_table_op.into(),
        args: [GNTTABOP_map_grant_ref.into(), ARG_GVA, N.into(), 0, 0],
    };
    let mut entries = 0;
    loop {
        entries += 1;
        assert!(entries < 10);
        let out = hypercall_entry(
            &mut w.env.hv,
            &mut w.ext,
            Caller { domid: 0, vcpu: 0 },
            regs.rax,
            regs.args,
            &mut w.env.mem,
        );
        if let HypercallOutcome::Continue(c) = &out {
            let done = u64::from(N) - c.args[2];
            assert_eq!(c.args[1], ARG_GVA + 32 * done);
            assert_eq!(done % u64::from(GNTTAB_OPS_PER_ENTRY), 0);
        }
        if out.apply(&mut regs) {
            break;
        }
    }
    assert_eq!((regs.rax, entries), (0, N.div_ceil(GNTTAB_OPS_PER_ENTRY)));
    let st: [gnttab_map_grant_ref; N as usize] = w.env.get(ARG_GVA);
    assert!(st.iter().all(|o| o.status == GNTST_okay));
    assert_eq!(w.d(0).grant.maptrack.live(), N as usize);
    assert_eq!(
        w.env.hv.domains.foreign.refs(w.mfn(u, PAGE_GFN).unwrap()),
        N
    );
}

#[test]
fn swap_grant_ref() {
    let mut w = world();
    let u = w.u;
    w.grant(u, 1, 0, 0x10, GTF_permit_access);
    w.grant(u, 2, 0, 0x11, GTF_permit_access | GTF_readonly);
    let sw = |a, b| gnttab_swap_grant_ref {
        ref_a: a,
        ref_b: b,
        status: 0x55,
        _implicit0: [0; 2],
    };
    assert_eq!(
        w.gnt(
            u,
            GNTTABOP_swap_grant_ref,
            &[sw(1, 2), sw(1, 512), sw(3, 3)]
        ),
        0
    );
    let st: [gnttab_swap_grant_ref; 3] = w.env.get(ARG_GVA);
    assert_eq!(
        [st[0].status, st[1].status, st[2].status],
        [GNTST_okay, GNTST_bad_gntref, GNTST_okay]
    );
    assert_eq!((w.entry(u, 1).frame, w.entry(u, 2).frame), (0x11, 0x10));
    assert_eq!(w.map(0, u, 2, MAP_GFN, GNTMAP_host_map).status, GNTST_okay);
    assert_eq!(w.gnt(u, GNTTABOP_swap_grant_ref, &[sw(1, 2)]), 0);
    assert_eq!(
        w.env.get::<gnttab_swap_grant_ref>(ARG_GVA).status,
        GNTST_eagain
    );
}

/// The toolstack's path: dom0 maps the domU's grant frames with
/// acquire_resource and seeds entries 0 and 1 as `xc_dom_gnttab_seed` does.
#[test]
fn acquire_resource_seeds_the_reserved_entries() {
    let mut w = world();
    let u = w.u;
    let xmar = |domid, id, nr, frame, list| {
        let mut x = xen_mem_acquire_resource::new_zeroed();
        x.domid = domid;
        x.r#type = XENMEM_resource_grant_table;
        x.id = id;
        x.nr_frames = nr;
        x.frame = frame;
        x.frame_list = list;
        x
    };
    let shared = XENMEM_resource_grant_table_id_shared;
    // Size query.
    assert_eq!(
        w.memop(0, XENMEM_acquire_resource, &xmar(u, shared, 0, 0, 0)),
        0
    );
    assert_eq!(w.env.get::<xen_mem_acquire_resource>(ARG_GVA).nr_frames, 64);
    let status = XENMEM_resource_grant_table_id_status;
    assert_eq!(
        w.memop(0, XENMEM_acquire_resource, &xmar(u, status, 0, 0, 0)),
        0
    );
    assert_eq!(w.env.get::<xen_mem_acquire_resource>(ARG_GVA).nr_frames, 8);
    let mut bogus = xmar(u, 0, 0, 0, 0);
    bogus.r#type = 7;
    assert_eq!(w.memop(0, XENMEM_acquire_resource, &bogus), 0);
    assert_eq!(
        w.env.get::<xen_mem_acquire_resource>(ARG_GVA).nr_frames,
        (-95i32) as u32,
        "4.17 quirk"
    );
    // Errors.
    w.env.put(LIST, &[MAP_GFN, MAP_GFN + 1]);
    assert_eq!(
        w.memop(u, XENMEM_acquire_resource, &xmar(0, shared, 1, 0, LIST)),
        EACCES
    );
    assert_eq!(
        w.memop(0, XENMEM_acquire_resource, &xmar(0, shared, 1, 0, LIST)),
        EPERM
    );
    assert_eq!(
        w.memop(
            0,
            XENMEM_acquire_resource,
            &xmar(0x7000, shared, 1, 0, LIST)
        ),
        ESRCH
    );
    let mut p = xmar(u, shared, 1, 0, LIST);
    p.pad = 1;
    assert_eq!(w.memop(0, XENMEM_acquire_resource, &p), EINVAL);
    assert_eq!(
        w.memop(
            0,
            XENMEM_acquire_resource,
            &xmar(u, shared, 1, 1 << 32, LIST)
        ),
        EINVAL
    );
    assert_eq!(
        w.memop(0, XENMEM_acquire_resource, &xmar(u, shared, 1, 64, LIST)),
        EINVAL,
        "past max"
    );
    assert_eq!(
        w.memop(0, XENMEM_acquire_resource, &xmar(u, status, 1, 0, LIST)),
        EINVAL,
        "v1"
    );
    assert_eq!(
        w.memop(0, XENMEM_acquire_resource, &xmar(u, 9, 1, 0, LIST)),
        EINVAL
    );
    // Map frames 0 and 1 (the second one grows the table).
    assert_eq!(
        w.memop(0, XENMEM_acquire_resource, &xmar(u, shared, 2, 0, LIST)),
        0
    );
    let f: alloc::vec::Vec<u64> = w.d(u).grant.frame_mfns().collect();
    assert_eq!(f.len(), 2);
    assert_eq!(
        (w.mfn(0, MAP_GFN), w.mfn(0, MAP_GFN + 1)),
        (Some(f[0]), Some(f[1]))
    );
    // dom0 seeds the console and xenstore entries through its mapping.
    let seed = |gfn| grant_entry_v1 {
        flags: GTF_permit_access,
        domid: 0,
        frame: gfn,
    };
    let d0 = w.mfn(0, MAP_GFN).unwrap();
    assert!(w.machine.write(d0, 0, seed(0x11).as_bytes()));
    assert!(w.machine.write(d0, 8, seed(0x10).as_bytes()));
    assert_eq!(w.entry(u, GNTTAB_RESERVED_CONSOLE).frame, 0x11);
    assert_eq!(w.entry(u, GNTTAB_RESERVED_XENSTORE).frame, 0x10);
    // ... and dom0 can map the xenstore page with that grant.
    assert_eq!(
        w.map(0, u, GNTTAB_RESERVED_XENSTORE, MAP_GFN + 8, GNTMAP_host_map)
            .status,
        GNTST_okay
    );
    // The grant frames outlive the domU while dom0 maps them; unmapping frees them.
    let before = w.env.frames.outstanding();
    w.destroy(u);
    assert!(w.env.frames.is_allocated(f[0]) && w.env.frames.is_allocated(f[1]));
    assert!(w.env.frames.outstanding() < before);
    for g in [MAP_GFN, MAP_GFN + 1] {
        let x = xen_remove_from_physmap {
            domid: DOMID_SELF,
            _implicit0: [0; 6],
            gpfn: g,
        };
        assert_eq!(w.memop(0, XENMEM_remove_from_physmap, &x), 0);
    }
    assert!(!w.env.frames.is_allocated(f[0]) && !w.env.frames.is_allocated(f[1]));
}

/// Seeded random sequences of grants, revokes, maps (read-only or not, at
/// clashing gfns), unmaps (right and wrong addresses, stale handles), copies and
/// page give-backs, with the bookkeeping checked after every step: each entry's
/// pin equals dom0's live mappings of it, its busy bits follow the pin, every
/// frame's reference count equals the live mappings of it; at the end every
/// mapping goes and every frame comes back.
#[test]
fn random_sequences_keep_pins_refs_and_busy_bits_consistent() {
    use crate::common::fuzz::Rng;
    for seed in [1u64, 2, 3, 0x9e37, 0xdead] {
        let mut rng = Rng::new(seed);
        let mut w = world();
        let u = w.u;
        let base_frames = w.env.frames.outstanding();
        grow(&mut w.env.hv.domains, u, 1).unwrap();
        // (handle, gfn, lost): an unmap at another mapping's gfn of the same
        // frame removes that mapping (Xen checks the gfn, not the handle's
        // address), leaving that handle unmappable.
        let mut handles: Vec<(u32, u64, bool)> = Vec::new();
        for step in 0..400 {
            let r = rng.below(6) as u32;
            match rng.below(7) {
                0 => {
                    // (Re)grant r if not busy, as a guest does.
                    if w.revoke(u, r) || w.entry(u, r).flags == 0 {
                        let flags = [
                            GTF_permit_access,
                            GTF_permit_access | GTF_readonly,
                            GTF_accept_transfer,
                        ][rng.below(3) as usize];
                        let gfn = [PAGE_GFN, PAGE_GFN + 1, 0x3333][rng.below(3) as usize];
                        w.grant(u, r, [0, 9][rng.below(2) as usize], gfn as u32, flags);
                    }
                }
                1 => {
                    let _ = w.revoke(u, r);
                }
                2 | 3 => {
                    let gfn = MAP_GFN + rng.below(8);
                    let ro = if rng.below(100) < 50 {
                        GNTMAP_readonly
                    } else {
                        0
                    };
                    let op = w.map(0, u, r, gfn, GNTMAP_host_map | ro);
                    if op.status == GNTST_okay {
                        handles.push((op.handle, gfn, false));
                    }
                    w.ext.actions.clear();
                }
                4 => {
                    if !handles.is_empty() {
                        let i = rng.below(handles.len() as u64) as usize;
                        let (h, gfn, _) = handles[i];
                        let at = if rng.below(100) < 80 {
                            gfn
                        } else {
                            MAP_GFN + rng.below(8)
                        };
                        if w.unmap(0, h, at) == GNTST_okay {
                            handles.swap_remove(i);
                            for x in handles.iter_mut().filter(|x| x.1 == at) {
                                x.2 = true;
                            }
                        }
                    }
                }
                5 => {
                    let mut c = gnttab_copy::new_zeroed();
                    c.source.u.set(&r);
                    c.source.domid = u;
                    c.dest.u.set(&(PAGE_GFN + 1));
                    c.dest.domid = u;
                    c.len = rng.below(5000) as u16;
                    c.flags = GNTCOPY_source_gref;
                    let _ = w.gnt(0, GNTTABOP_copy, &[c]);
                }
                _ => {
                    // The domU gives a page back and takes a fresh one.
                    let g = PAGE_GFN + rng.below(2);
                    w.env.put(LIST, &g);
                    let mut rs = xen_memory_reservation::new_zeroed();
                    rs.extent_start = LIST;
                    rs.nr_extents = 1;
                    rs.domid = DOMID_SELF;
                    let _ = w.memop(u, XENMEM_decrease_reservation, &rs);
                    let _ = w.populate(u, &[g]);
                }
            }
            // Bookkeeping.
            let live: Vec<map::MapEntry> = (0..64)
                .filter_map(|h| w.d(0).grant.maptrack.get(h))
                .collect();
            assert_eq!(live.len(), handles.len(), "seed {seed} step {step}");
            for r in 0..6u32 {
                let want: u32 = live
                    .iter()
                    .filter(|e| e.gref == r)
                    .map(|e| {
                        if e.flags & GNTMAP_readonly != 0 {
                            entry::PIN_HSTR
                        } else {
                            entry::PIN_HSTW
                        }
                    })
                    .sum();
                let pin = w.d(u).grant.active(r).map_or(0, |a| a.pin);
                assert_eq!(pin, want, "seed {seed} step {step} ref {r}");
                let f = w.entry(u, r).flags;
                assert_eq!(
                    f & GTF_reading != 0,
                    pin != 0,
                    "seed {seed} step {step} ref {r} flags {f:#x}"
                );
                assert_eq!(
                    f & GTF_writing != 0,
                    pin & entry::PIN_HSTW_MASK != 0,
                    "seed {seed} step {step} ref {r}"
                );
            }
            for e in &live {
                let n = live.iter().filter(|x| x.mfn == e.mfn).count() as u32;
                assert_eq!(
                    w.env.hv.domains.foreign.refs(e.mfn),
                    n,
                    "seed {seed} step {step}"
                );
                assert!(w.env.frames.is_allocated(e.mfn));
            }
        }
        // Unmap everything: a handle whose mapping another unmap took fails.
        let mut lost = 0;
        while let Some((h, gfn, was_lost)) = handles.pop() {
            match w.unmap(0, h, gfn) {
                GNTST_okay => {
                    for x in handles.iter_mut().filter(|x| x.1 == gfn) {
                        x.2 = true;
                    }
                }
                rc => {
                    assert!(was_lost, "seed {seed}: handle {h} at {gfn:#x}: {rc}");
                    assert_eq!(rc, GNTST_general_error);
                    lost += 1;
                }
            }
        }
        assert_eq!(w.d(0).grant.maptrack.live(), lost);
        w.destroy(u);
        if lost == 0 {
            assert_eq!(w.env.hv.domains.foreign.orphans(), 0);
            assert_eq!(
                w.env.frames.outstanding(),
                base_frames - 3,
                "seed {seed}: the domU's frames came back"
            );
        }
    }
}

/// A domU's bad grant ops are logged through its rate limiter: a storm of them
/// (the `hostile-smp2` stormer made ~10,000) prints at most the burst, so they
/// cannot fill the deferred log buffer and push out other domains' lines.
#[test]
fn a_storm_of_bad_grant_ops_logs_at_most_the_burst() {
    let mut w = world();
    let u = w.u;
    logcap::start();
    for i in 0..200u64 {
        // No host/device flag: GNTST_bad_gntref with a diagnostic line.
        let st = w.map(u, 0, 1, PAGE_GFN + 0x100 + i, 0);
        assert_eq!(st.status, GNTST_bad_gntref);
        // A handle it does not hold: GNTST_bad_handle with a diagnostic line.
        assert_eq!(w.unmap(u, 0x4000 + i as u32, 0), GNTST_bad_handle);
    }
    let lines = logcap::lines();
    let mine = lines
        .iter()
        .filter(|l| l.contains(&alloc::format!("d{u}:")))
        .count();
    assert!(
        mine as u64 <= crate::common::log_ratelimit::RATELIMIT_BURST + 1,
        "{mine} lines logged for 400 bad ops: {lines:?}"
    );
}
