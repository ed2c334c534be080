//! xenstored in dom0's `xl` role: the daemon of `toolstack/xenstored` with a
//! [`Platform`] over hypercalls — each domain's store page foreign-mapped at a
//! dom0 gfn of its own (`RING_GFN + domid`, inside the identity-mapped window
//! at 2 GiB, clear of the builder's slots), its store event channel bound with
//! `EVTCHNOP_bind_interdomain`. xl calls [`Store::created`] after a build
//! (libxl's nodes, then `XS_INTRODUCE`), [`Store::poll`] while it waits, and
//! [`Store::destroying`] before `destroydomain` (teardown from
//! `/libxl/N/device`, `XS_RELEASE`, unmap).

use alloc::collections::BTreeMap;
use alloc::string::String;
use alloc::vec::Vec;

use guest_rt::{evtchn, println};
use xen_public_abi::xen::domid_t;
use xenctrl::Xc;
use xenstored::layout::{self, DomainLayout};
use xenstored::ring::RingMem;
use xenstored::{ConnId, Platform, Xenstored, XsErr};

use crate::xl_role::GuestHc;

/// dom0 gfn of domain N's store page: `RING_GFN + N`, in the `xl` role's
/// foreign window below the console slots (0xbf000 + N, `xl_console.rs`) and
/// the builder's special-page slots (0xbeff8..0xbefff); the builder's own slots
/// (the domU gfn modulo 1 GiB) only reach it for a domU of more than 976 MiB.
const RING_GFN: u64 = 0xb_d000;

/// A foreign-mapped store page (identity-mapped dom0 gfn).
pub struct Page(pub *mut u8);

impl RingMem for Page {
    fn load(&self, off: usize) -> u32 {
        // SAFETY: `off` is a field offset inside the 4 KiB page this maps
        // (ring.rs's constants); volatile: the guest writes concurrently.
        unsafe { core::ptr::read_volatile(self.0.add(off) as *const u32) }
    }
    fn store(&mut self, off: usize, v: u32) {
        // SAFETY: as `load`.
        unsafe { core::ptr::write_volatile(self.0.add(off) as *mut u32, v) }
    }
    fn read(&self, off: usize, dst: &mut [u8]) {
        for (i, b) in dst.iter_mut().enumerate() {
            // SAFETY: off + i is inside one of the two 1 KiB rings (ring.rs
            // splits copies at the ring's end).
            *b = unsafe { core::ptr::read_volatile(self.0.add(off + i)) };
        }
    }
    fn write(&mut self, off: usize, src: &[u8]) {
        for (i, b) in src.iter().enumerate() {
            // SAFETY: as `read`.
            unsafe { core::ptr::write_volatile(self.0.add(off + i), *b) };
        }
    }
    fn fence(&self) {
        core::sync::atomic::fence(core::sync::atomic::Ordering::SeqCst);
    }
}

/// Hypercalls and the mapped pages.
pub struct Dom0 {
    xc: Xc<GuestHc>,
    pages: BTreeMap<u16, Page>,
    logged: u32,
}

impl Platform for Dom0 {
    fn map_ring(&mut self, domid: u16, gfn: u64) -> Result<(), XsErr> {
        let slot = RING_GFN + u64::from(domid);
        if domid >= 0xfff {
            return Err(XsErr::EINVAL);
        }
        self.xc
            .map_foreign(domid, gfn, slot)
            .map_err(|_| XsErr::EINVAL)?;
        self.pages.insert(domid, Page((slot << 12) as *mut u8));
        Ok(())
    }
    fn unmap_ring(&mut self, domid: u16) {
        if self.pages.remove(&domid).is_some() {
            let _ = self.xc.unmap_foreign(RING_GFN + u64::from(domid));
        }
    }
    fn ring(&mut self, domid: u16) -> Option<&mut dyn RingMem> {
        self.pages.get_mut(&domid).map(|p| p as &mut dyn RingMem)
    }
    fn bind(&mut self, domid: u16, port: u32) -> Result<u32, XsErr> {
        evtchn::bind_interdomain(domid, port).map_err(|_| XsErr::EINVAL)
    }
    fn unbind(&mut self, local: u32) {
        evtchn::close(local);
    }
    fn notify(&mut self, local: u32) {
        evtchn::send(local);
    }
    fn log(&mut self, line: &str) {
        // Rate limit: the daemon logs once per connection event; cap the total.
        if self.logged < 64 {
            self.logged += 1;
            println!("{line}");
        }
    }
}

/// The daemon and dom0's own (privileged, in-process) connection.
pub struct Store {
    pub xs: Xenstored<Dom0>,
    pub conn: ConnId,
}

impl Store {
    pub fn new() -> Store {
        let platform = Dom0 {
            xc: Xc::new(GuestHc),
            pages: BTreeMap::new(),
            logged: 0,
        };
        let mut xs = Xenstored::new(platform, xenstored::quota::Quota::default());
        let conn = xs.connect_local();
        // xen-init-dom0's part: dom0's own directory.
        let mut c = layout::Client {
            xs: &mut xs,
            conn,
            tx: 0,
        };
        let _ = c.write("/local/domain/0/name", "Domain-0");
        let _ = c.write("/local/domain/0/domid", "0");
        Store { xs, conn }
    }

    /// libxl's nodes for a new domain, then `XS_INTRODUCE`.
    pub fn created(&mut self, l: &DomainLayout) -> Result<(), String> {
        layout::create(&mut self.xs, self.conn, l)
            .map_err(|e| alloc::format!("xenstore for d{}: {e}", l.domid))?;
        println!(
            "xenstored: introduced d{} ({}), {} nodes in the store",
            l.domid,
            l.name,
            self.xs.store.paths().count()
        );
        Ok(())
    }

    /// Serve every domain's ring once.
    pub fn poll(&mut self) -> usize {
        self.xs.poll(32)
    }

    /// Teardown from the device records, `XS_RELEASE`, unmap.
    pub fn destroying(&mut self, domid: domid_t) -> Result<(), String> {
        let vm = layout::Client {
            xs: &mut self.xs,
            conn: self.conn,
            tx: 0,
        }
        .read(&alloc::format!("/local/domain/{domid}/vm"))
        .unwrap_or_default();
        let before = self.others(domid, &vm);
        let removed = layout::destroy(&mut self.xs, self.conn, domid)
            .map_err(|e| alloc::format!("xenstore teardown of d{domid}: {e}"))?;
        let left = self
            .xs
            .store
            .paths()
            .filter(|p| {
                let mine = |root: String| *p == root || p.starts_with(&alloc::format!("{root}/"));
                mine(alloc::format!("/local/domain/{domid}"))
                    || mine(alloc::format!("/libxl/{domid}"))
            })
            .count();
        println!(
            "xenstored: released d{domid}: devices {:?} removed, {left} of its nodes left",
            removed
        );
        if left != 0 {
            return Err(alloc::format!("d{domid}: {left} nodes left after teardown"));
        }
        let after = self.others(domid, &vm);
        if before != after {
            return Err(alloc::format!("d{domid}'s teardown changed other nodes"));
        }
        println!("xenstored: others' {} nodes unchanged", after.len());
        Ok(())
    }

    /// Every node that is not domain `domid`'s (its home, `/libxl/N`, its
    /// `/vm/UUID`, its backend directories): path, value, permissions.
    fn others(&self, domid: domid_t, vm: &str) -> Vec<(String, Vec<u8>, Vec<String>)> {
        let under = |p: &str, root: &str| p == root || p.starts_with(&alloc::format!("{root}/"));
        let home = alloc::format!("/local/domain/{domid}");
        let libxl = alloc::format!("/libxl/{domid}");
        let backend_of = |p: &str| {
            let v: Vec<&str> = p.split('/').collect();
            v.len() >= 7 && v[4] == "backend" && v[6] == alloc::format!("{domid}")
        };
        self.xs
            .store
            .paths()
            .filter(|p| {
                let mine =
                    under(p, &home) || under(p, &libxl) || (vm.starts_with("/vm/") && under(p, vm));
                !mine
            })
            .filter(|p| !backend_of(p))
            .filter_map(|p| {
                let n = self.xs.store.get(p)?;
                Some((String::from(p), n.value.clone(), n.perms.to_strings()))
            })
            .collect()
    }
}
