//! Grant tables end to end (issue 13): a domU maps its grant-table frame
//! (`XENMAPSPACE_grant_table`), grants two of its pages to dom0, and dom0, as a
//! PVH backend does, maps the first at a gfn of its own
//! (`GNTTABOP_map_grant_ref` with `host_addr`), reads the domU's pattern,
//! writes a marker back, copies through the grant (`GNTTABOP_copy`, both
//! directions), and unmaps. The domU checks that it cannot revoke the grant
//! while it is mapped (the hypervisor's `GTF_reading`/`GTF_writing`), that it
//! can afterwards, and that dom0's copy arrived.

use core::sync::atomic::{compiler_fence, AtomicU16, AtomicU32, Ordering};

use guest_rt::report::{check, done, expect_eq};
use guest_rt::{xen, Boot};
use xen_public_abi::grant_table::*;
use xen_public_abi::memory::{xen_add_to_physmap, XENMAPSPACE_grant_table, XENMEM_add_to_physmap};
use xen_public_abi::sched::SHUTDOWN_poweroff;
use xen_public_abi::xen::{__HYPERVISOR_grant_table_op, __HYPERVISOR_memory_op, DOMID_SELF};
use zerocopy::FromZeros;

use crate::dom0;

const S: &str = "gnttab";
/// The grant refs the domU uses: a page dom0 maps, a page dom0 copies into.
const REF_MAP: u32 = 10;
const REF_COPY: u32 = 11;
/// Where the domU maps its grant-table frame (above its 16 MiB of RAM).
const GT_GFN: u64 = 0x2000;
/// Where dom0 maps the granted page (above its RAM).
const MAP_GFN: u64 = 0x9000;
/// dom0's marker in the last word of the mapped page.
const MAGIC: u32 = 0x6e74_6162;
/// The domU's acknowledgement (it saw the mapping) in the word before it.
const ACK: u32 = 0x0000_0acc;
/// What dom0 seeds in the domU's reserved entries, and its scratch gfn for it.
const SEED_CONSOLE_GFN: u64 = 0xfeff;
const SEED_XENSTORE_GFN: u64 = 0xfefe;
const SCRATCH_GFN: u64 = 0x9100;
/// What dom0 copies into the domU's second page, and where.
const COPY_OFF: usize = 128;
const COPY_LEN: usize = 256;

#[repr(C, align(4096))]
struct Page([u8; 4096]);

static mut PAGE_A: Page = Page([0; 4096]);
static mut PAGE_B: Page = Page([0; 4096]);

fn pattern(i: usize) -> u8 {
    (i.wrapping_mul(7) + 3) as u8
}

fn gnttab_op<T>(cmd: u32, op: &mut T, count: u32) -> i64 {
    xen::hypercall(
        __HYPERVISOR_grant_table_op,
        cmd.into(),
        op as *mut T as u64,
        count.into(),
        0,
        0,
    )
}

fn page_addr(p: *const Page) -> u64 {
    p as u64
}

// ---- dom0 ------------------------------------------------------------------------

pub fn dom0(boot: &Boot) -> ! {
    let domu = boot.arg_u64("domu", 1) as u16;
    let wait = boot.arg_u64("wait", 200_000);

    let mut q = gnttab_query_size::new_zeroed();
    q.dom = DOMID_SELF;
    let rc = gnttab_op(GNTTABOP_query_size, &mut q, 1);
    check(
        S,
        "query-size",
        rc == 0 && q.status == GNTST_okay && q.nr_frames == 1 && q.max_nr_frames == 64,
        format_args!(
            "rc {} status {} frames {}/{}",
            rc, q.status, q.nr_frames, q.max_nr_frames
        ),
    );
    // The toolstack's seeding (xc_dom_gnttab_seed): d1's entries 0 and 1 through
    // XENMEM_acquire_resource, before d1 has even mapped its table.
    let mut xc = xenctrl::Xc::new(crate::xl_role::GuestHc);
    let rc = xc.gnttab_seed(domu, SEED_CONSOLE_GFN, 0, SEED_XENSTORE_GFN, 0, SCRATCH_GFN);
    check(
        S,
        "seed-reserved-entries",
        rc.is_ok(),
        format_args!("{:?}", rc),
    );
    let mut v = gnttab_get_version::new_zeroed();
    v.dom = DOMID_SELF;
    let rc = gnttab_op(GNTTABOP_get_version, &mut v, 1);
    check(
        S,
        "get-version",
        rc == 0 && v.version == 1,
        format_args!("rc {} v{}", rc, v.version),
    );

    // Wait for the domU's grant: until then the entry is invalid (general error).
    let mut tries = 0;
    let map = loop {
        let mut map = gnttab_map_grant_ref::new_zeroed();
        map.host_addr = MAP_GFN << 12;
        map.flags = GNTMAP_host_map;
        map.r#ref = REF_MAP;
        map.dom = domu;
        let rc = gnttab_op(GNTTABOP_map_grant_ref, &mut map, 1);
        if rc != 0 || map.status != GNTST_general_error || tries >= wait {
            break map;
        }
        tries += 1;
        xen::yield_now();
    };
    check(
        S,
        "map-grant-ref",
        map.status == GNTST_okay,
        format_args!("status {} after {} tries", map.status, tries),
    );
    if map.status == GNTST_okay {
        // SAFETY: MAP_GFN is identity-mapped by guest-rt's page tables and now
        // holds the domU's granted page in our p2m.
        let mapped = unsafe { core::slice::from_raw_parts((MAP_GFN << 12) as *const u8, 4088) };
        let bad = (0..4088).filter(|&i| mapped[i] != pattern(i)).count();
        check(
            S,
            "read-pattern",
            bad == 0,
            format_args!("{} bytes differ", bad),
        );
        // Keep it mapped until the domU has seen that it cannot revoke it.
        let ack = wait_for(wait, || {
            // SAFETY: word 1022 of the mapped page, written by the domU.
            unsafe { ((MAP_GFN << 12) as *const u32).add(1022).read_volatile() == ACK }
        });
        check(
            S,
            "domu-saw-mapping",
            ack,
            format_args!("no acknowledgement"),
        );

        // Copy from the grant (pinned twice now: mapped and copying) into our page.
        let mut cp = gnttab_copy::new_zeroed();
        cp.source.u.set(&REF_MAP);
        cp.source.domid = domu;
        cp.dest.u.set(&(page_addr(&raw const PAGE_A) >> 12));
        cp.dest.domid = DOMID_SELF;
        cp.len = 4096;
        cp.flags = GNTCOPY_source_gref;
        let rc = gnttab_op(GNTTABOP_copy, &mut cp, 1);
        // SAFETY: our own static page, written by the hypervisor's copy.
        let got = unsafe { (&raw const PAGE_A).cast::<u8>().add(100).read_volatile() };
        check(
            S,
            "copy-from-gref",
            rc == 0 && cp.status == GNTST_okay && got == pattern(100),
            format_args!("rc {} status {} byte {:#x}", rc, cp.status, got),
        );

        // The marker through our writable mapping, then unmap.
        // SAFETY: as above; the last word of the mapped page.
        unsafe {
            ((MAP_GFN << 12) as *mut u32)
                .add(1023)
                .write_volatile(MAGIC)
        };
        let mut un = gnttab_unmap_grant_ref::new_zeroed();
        un.host_addr = MAP_GFN << 12;
        un.handle = map.handle;
        let rc = gnttab_op(GNTTABOP_unmap_grant_ref, &mut un, 1);
        check(
            S,
            "unmap-grant-ref",
            rc == 0 && un.status == GNTST_okay,
            format_args!("rc {} status {}", rc, un.status),
        );
        let rc = gnttab_op(GNTTABOP_unmap_grant_ref, &mut un, 1);
        check(
            S,
            "unmap-again-bad-handle",
            rc == 0 && un.status == GNTST_bad_handle,
            format_args!("rc {} status {}", rc, un.status),
        );
    }

    // Copy our data into the domU's second grant (it waits for it).
    let base = (&raw mut PAGE_B).cast::<u8>();
    for i in 0..4096 {
        // SAFETY: byte i of our own static page.
        unsafe { base.add(i).write_volatile(!pattern(i)) };
    }
    let mut cps = [gnttab_copy::new_zeroed(), gnttab_copy::new_zeroed()];
    cps[0].source.u.set(&(page_addr(&raw const PAGE_B) >> 12));
    cps[0].source.domid = DOMID_SELF;
    cps[0].source.offset = COPY_OFF as u16;
    cps[0].dest.u.set(&REF_COPY);
    cps[0].dest.domid = domu;
    cps[0].dest.offset = COPY_OFF as u16;
    cps[0].len = COPY_LEN as u16;
    cps[0].flags = GNTCOPY_dest_gref;
    // The same, past the page end: GNTST_bad_copy_arg.
    cps[1] = cps[0];
    cps[1].dest.offset = 4000;
    let rc = gnttab_op(GNTTABOP_copy, &mut cps, 2);
    check(
        S,
        "copy-to-gref",
        rc == 0 && cps[0].status == GNTST_okay && cps[1].status == GNTST_bad_copy_arg,
        format_args!("rc {} status {} {}", rc, cps[0].status, cps[1].status),
    );
    // Errors a backend may meet.
    let mut bad = gnttab_map_grant_ref::new_zeroed();
    bad.host_addr = (MAP_GFN + 1) << 12;
    bad.flags = GNTMAP_host_map;
    bad.r#ref = 4096;
    bad.dom = domu;
    gnttab_op(GNTTABOP_map_grant_ref, &mut bad, 1);
    expect_eq(S, "map-bad-ref", bad.status.into(), GNTST_bad_gntref.into());
    bad.r#ref = REF_MAP;
    bad.dom = 0x7000;
    gnttab_op(GNTTABOP_map_grant_ref, &mut bad, 1);
    expect_eq(
        S,
        "map-bad-domain",
        bad.status.into(),
        GNTST_bad_domain.into(),
    );

    match dom0::wait_stopped(domu, wait) {
        Some(i) => expect_eq(
            S,
            "domu-exit-code",
            i.code().into(),
            SHUTDOWN_poweroff.into(),
        ),
        None => check(
            S,
            "domu-exit-code",
            false,
            format_args!("d{} never stopped", domu),
        ),
    }
    done(S);
    xen::shutdown(SHUTDOWN_poweroff)
}

// ---- domU ------------------------------------------------------------------------

/// The domU's view of entry `r` through its mapping of the table frame.
fn entry_ptr(r: u32) -> *mut u32 {
    ((GT_GFN << 12) + u64::from(r) * 8) as *mut u32
}

fn entry_flags(r: u32) -> u16 {
    // SAFETY: the grant-table frame is mapped at GT_GFN (identity-mapped); the
    // flags half-word is changed by the hypervisor concurrently: atomic access.
    unsafe { (*(entry_ptr(r) as *const AtomicU16)).load(Ordering::SeqCst) }
}

/// `gnttab_grant_foreign_access_ref()`: domid and frame first, then the flags.
fn grant(r: u32, domid: u16, gfn: u64, flags: u16) {
    let p = entry_ptr(r);
    // SAFETY: entry r of our mapped grant-table frame.
    unsafe {
        p.add(1).write_volatile(gfn as u32);
        (p as *mut u16).add(1).write_volatile(domid);
        compiler_fence(Ordering::SeqCst);
        (*(p as *const AtomicU16)).store(flags, Ordering::SeqCst);
    }
}

/// `gnttab_end_foreign_access_ref()` (v1): clear the flags unless the entry is
/// in use; true if it was revoked.
fn revoke(r: u32) -> bool {
    // SAFETY: as in `entry_flags`; the first word is flags | domid << 16.
    let w = unsafe { &*(entry_ptr(r) as *const AtomicU32) };
    let cur = w.load(Ordering::SeqCst);
    if cur as u16 & (GTF_reading | GTF_writing) != 0 {
        return false;
    }
    w.compare_exchange(cur, cur & 0xffff_0000, Ordering::SeqCst, Ordering::SeqCst)
        .is_ok()
}

/// Yield until `f()` or `rounds` yields; whether it became true.
fn wait_for(rounds: u64, mut f: impl FnMut() -> bool) -> bool {
    for _ in 0..rounds {
        if f() {
            return true;
        }
        xen::yield_now();
    }
    f()
}

pub fn domu(boot: &Boot) -> ! {
    let who = "d1";
    let wait = boot.arg_u64("wait", 200_000);
    // The table frame into our physmap, as Linux's PVH gnttab_setup does.
    let mut x = xen_add_to_physmap::new_zeroed();
    x.domid = DOMID_SELF;
    x.space = XENMAPSPACE_grant_table;
    x.idx = 0;
    x.gpfn = GT_GFN;
    let rc = xen::hypercall_ptr(__HYPERVISOR_memory_op, XENMEM_add_to_physmap.into(), &mut x);
    expect_eq(S, "table-frame", rc, 0);
    let mut list = [0u64; 1];
    let mut st = gnttab_setup_table::new_zeroed();
    st.dom = DOMID_SELF;
    st.nr_frames = 1;
    st.frame_list = list.as_mut_ptr() as u64;
    let rc = gnttab_op(GNTTABOP_setup_table, &mut st, 1);
    let seeded = |r: u32, gfn: u64| {
        // SAFETY: entry r of our mapped grant-table frame.
        let e = unsafe { (entry_ptr(r) as *const grant_entry_v1).read_volatile() };
        e.flags == GTF_permit_access && e.domid == 0 && u64::from(e.frame) == gfn
    };
    // dom0 seeds them before it starts mapping: wait for that.
    let seed_ok = wait_for(wait, || {
        seeded(GNTTAB_RESERVED_CONSOLE, SEED_CONSOLE_GFN)
            && seeded(GNTTAB_RESERVED_XENSTORE, SEED_XENSTORE_GFN)
    });
    check(S, "seeded", seed_ok, format_args!("entries 0/1 not seeded"));
    check(
        S,
        "setup-table",
        rc == 0 && st.status == GNTST_okay && list[0] == GT_GFN,
        format_args!("rc {} status {} gfn {:#x}", rc, st.status, list[0]),
    );
    let mut sv = gnttab_set_version { version: 2 };
    let rc = gnttab_op(GNTTABOP_set_version, &mut sv, 1);
    check(
        S,
        "v2-enosys",
        rc == -38 && sv.version == 1,
        format_args!("rc {} version {}", rc, sv.version),
    );
    sv.version = 1;
    let rc = gnttab_op(GNTTABOP_set_version, &mut sv, 1);
    check(
        S,
        "v1",
        rc == 0 && sv.version == 1,
        format_args!("rc {}", rc),
    );

    let base = (&raw mut PAGE_A).cast::<u8>();
    for i in 0..4096 {
        // SAFETY: byte i of our own static page.
        unsafe { base.add(i).write_volatile(pattern(i)) };
    }
    grant(
        REF_MAP,
        0,
        page_addr(&raw const PAGE_A) >> 12,
        GTF_permit_access,
    );
    grant(
        REF_COPY,
        0,
        page_addr(&raw const PAGE_B) >> 12,
        GTF_permit_access,
    );

    // dom0 maps it: the busy bits appear and a revoke must fail.
    let mapped = wait_for(wait, || entry_flags(REF_MAP) & GTF_reading != 0);
    check(
        S,
        "mapped",
        mapped,
        format_args!("flags {:#x}", entry_flags(REF_MAP)),
    );
    if mapped {
        let busy = entry_flags(REF_MAP);
        check(
            S,
            "no-revoke-mapped",
            busy & GTF_writing != 0 && !revoke(REF_MAP),
            format_args!("flags {:#x}", busy),
        );
    }
    // Tell dom0 (it keeps the mapping until then).
    // SAFETY: word 1022 of our own static page.
    unsafe {
        (&raw mut PAGE_A)
            .cast::<u32>()
            .add(1022)
            .write_volatile(ACK)
    };
    // dom0 writes its marker and unmaps: the busy bits go, the revoke works.
    let unmapped = wait_for(wait, || {
        // SAFETY: our own static page, written by dom0 through its mapping.
        let m = unsafe { core::ptr::read_volatile((&raw const PAGE_A).cast::<u32>().add(1023)) };
        m == MAGIC && entry_flags(REF_MAP) & (GTF_reading | GTF_writing) == 0
    });
    check(
        S,
        "unmapped",
        unmapped,
        format_args!("flags {:#x}", entry_flags(REF_MAP)),
    );
    check(
        S,
        "revoke-unmapped",
        revoke(REF_MAP),
        format_args!("flags {:#x}", entry_flags(REF_MAP)),
    );

    // dom0's copy into the second page.
    let copied = wait_for(wait, || {
        let base = (&raw const PAGE_B).cast::<u8>();
        // SAFETY: bytes of our own static page, written by the hypervisor's copy.
        let at = |i: usize| unsafe { core::ptr::read_volatile(base.add(i)) };
        (COPY_OFF..COPY_OFF + COPY_LEN).all(|i| at(i) == !pattern(i))
            && at(COPY_OFF - 1) == 0
            && at(COPY_OFF + COPY_LEN) == 0
    });
    check(
        S,
        "copy-arrived",
        copied,
        format_args!("page B not written"),
    );
    check(
        S,
        "revoke-copied",
        revoke(REF_COPY),
        format_args!("flags {:#x}", entry_flags(REF_COPY)),
    );
    guest_rt::report::domu_exit(S, who, SHUTDOWN_poweroff)
}
