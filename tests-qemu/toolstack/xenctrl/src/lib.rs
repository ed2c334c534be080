//! `xenctrl`: safe wrappers for the hypercalls the dom0 toolstack makes (what
//! libxenctrl does for xl), over a [`Hypercall`] issuer so that the wrappers
//! build and read Xen's structures in one place. Each wrapper fills the
//! structure on the stack, passes its address (dom0 is identity-mapped, so the
//! address is both virtual and physical) and turns a negative RAX into
//! [`Errno`]. `no_std`, no allocation.
#![cfg_attr(not(test), no_std)]

use xen_public_abi::domctl::*;
use xen_public_abi::event_channel::{
    evtchn_alloc_unbound, evtchn_bind_interdomain, evtchn_bind_virq, evtchn_close, evtchn_send,
    EVTCHNOP_alloc_unbound, EVTCHNOP_bind_interdomain, EVTCHNOP_bind_virq, EVTCHNOP_close,
    EVTCHNOP_send,
};
use xen_public_abi::hvm::hvm_op::{xen_hvm_param, HVMOP_get_param, HVMOP_set_param};
use xen_public_abi::memory::{
    xen_add_to_physmap_batch, xen_add_to_physmap_batch_extra, xen_foreign_memory_map,
    xen_memory_map, xen_memory_reservation, xen_remove_from_physmap, XENMAPSPACE_gmfn_foreign,
    XENMEM_add_to_physmap_batch, XENMEM_claim_pages, XENMEM_populate_physmap,
    XENMEM_remove_from_physmap, XENMEM_set_memory_map,
};
use xen_public_abi::sysctl::*;
use xen_public_abi::xen::{
    __HYPERVISOR_console_io, __HYPERVISOR_domctl, __HYPERVISOR_event_channel_op,
    __HYPERVISOR_hvm_op, __HYPERVISOR_memory_op, __HYPERVISOR_sysctl, domid_t, xen_domain_handle_t,
    CONSOLEIO_read, CONSOLEIO_write, DOMID_SELF,
};
use zerocopy::FromZeros;

/// A failed hypercall: the positive errno.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Errno(pub i64);

impl core::fmt::Display for Errno {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(f, "errno {}", self.0)
    }
}

pub type Result<T> = core::result::Result<T, Errno>;

mod gnttab;
pub use gnttab::GrantError;

/// Issues a hypercall: number and the five argument registers; returns RAX.
pub trait Hypercall {
    fn hypercall(&mut self, nr: u32, args: [u64; 5]) -> i64;
}

fn rc(v: i64) -> Result<i64> {
    if v < 0 {
        Err(Errno(-v))
    } else {
        Ok(v)
    }
}

/// The handle to the hypervisor (libxenctrl's `xc_interface`).
pub struct Xc<H: Hypercall> {
    pub h: H,
}

/// What `getdomaininfo` / `getdomaininfolist` tell about a domain.
pub type DomInfo = xen_domctl_getdomaininfo;

impl<H: Hypercall> Xc<H> {
    pub fn new(h: H) -> Self {
        Xc { h }
    }

    fn ptr<T>(v: &mut T) -> u64 {
        v as *mut T as u64
    }

    fn domctl(&mut self, op: &mut xen_domctl) -> Result<()> {
        op.interface_version = XEN_DOMCTL_INTERFACE_VERSION;
        rc(self
            .h
            .hypercall(__HYPERVISOR_domctl, [Self::ptr(op), 0, 0, 0, 0]))
        .map(|_| ())
    }

    fn domctl_op(cmd: u32, dom: domid_t) -> xen_domctl {
        let mut op = xen_domctl::new_zeroed();
        op.cmd = cmd;
        op.domain = dom;
        op
    }

    fn memop<T>(&mut self, cmd: u32, arg: &mut T) -> Result<i64> {
        rc(self.h.hypercall(
            __HYPERVISOR_memory_op,
            [u64::from(cmd), Self::ptr(arg), 0, 0, 0],
        ))
    }

    // ---- domctl ------------------------------------------------------------------

    /// `xc_domain_create`: returns the new domain's id.
    pub fn domain_create(&mut self, cfg: &xen_domctl_createdomain) -> Result<domid_t> {
        let mut op = Self::domctl_op(XEN_DOMCTL_createdomain, 0);
        op.u.set(cfg);
        self.domctl(&mut op)?;
        Ok(op.domain)
    }

    fn simple(&mut self, cmd: u32, dom: domid_t) -> Result<()> {
        let mut op = Self::domctl_op(cmd, dom);
        self.domctl(&mut op)
    }

    pub fn domain_destroy(&mut self, dom: domid_t) -> Result<()> {
        self.simple(XEN_DOMCTL_destroydomain, dom)
    }
    pub fn domain_pause(&mut self, dom: domid_t) -> Result<()> {
        self.simple(XEN_DOMCTL_pausedomain, dom)
    }
    pub fn domain_unpause(&mut self, dom: domid_t) -> Result<()> {
        self.simple(XEN_DOMCTL_unpausedomain, dom)
    }

    /// `xc_domain_getinfo_single`: `Err(ESRCH)` unless that very domain exists
    /// (4.17 answers with the next one above a missing id).
    pub fn domain_getinfo(&mut self, dom: domid_t) -> Result<DomInfo> {
        let mut op = Self::domctl_op(XEN_DOMCTL_getdomaininfo, dom);
        self.domctl(&mut op)?;
        let i: DomInfo = op.u.get();
        if i.domain != dom {
            return Err(Errno(3));
        }
        Ok(i)
    }

    pub fn domain_max_vcpus(&mut self, dom: domid_t, max: u32) -> Result<()> {
        let mut op = Self::domctl_op(XEN_DOMCTL_max_vcpus, dom);
        op.u.set(&xen_domctl_max_vcpus { max });
        self.domctl(&mut op)
    }

    pub fn domain_setmaxmem(&mut self, dom: domid_t, max_memkb: u64) -> Result<()> {
        let mut op = Self::domctl_op(XEN_DOMCTL_max_mem, dom);
        op.u.set(&xen_domctl_max_mem { max_memkb });
        self.domctl(&mut op)
    }

    pub fn domain_set_tsc_info(&mut self, dom: domid_t, mode: u32, gtsc_khz: u32) -> Result<()> {
        let mut op = Self::domctl_op(XEN_DOMCTL_settscinfo, dom);
        op.u.set(&xen_domctl_tsc_info {
            tsc_mode: mode,
            gtsc_khz,
            incarnation: 0,
            pad: 0,
            elapsed_nsec: 0,
        });
        self.domctl(&mut op)
    }

    pub fn set_paging_mempool_size(&mut self, dom: domid_t, size: u64) -> Result<()> {
        let mut op = Self::domctl_op(XEN_DOMCTL_set_paging_mempool_size, dom);
        op.u.set(&xen_domctl_paging_mempool { size });
        self.domctl(&mut op)
    }

    /// `xc_sched_credit2_domain_get`: (weight, cap).
    pub fn sched_credit2_get(&mut self, dom: domid_t) -> Result<(u16, u16)> {
        let mut op = Self::domctl_op(XEN_DOMCTL_scheduler_op, dom);
        let mut s = xen_domctl_scheduler_op::new_zeroed();
        s.sched_id = XEN_SCHEDULER_CREDIT2;
        s.cmd = XEN_DOMCTL_SCHEDOP_getinfo;
        op.u.set(&s);
        self.domctl(&mut op)?;
        let c: xen_domctl_sched_credit2 = op.u.get::<xen_domctl_scheduler_op>().u.get();
        Ok((c.weight, c.cap))
    }

    pub fn sched_credit2_set(&mut self, dom: domid_t, weight: u16, cap: u16) -> Result<()> {
        let mut op = Self::domctl_op(XEN_DOMCTL_scheduler_op, dom);
        let mut s = xen_domctl_scheduler_op::new_zeroed();
        s.sched_id = XEN_SCHEDULER_CREDIT2;
        s.cmd = XEN_DOMCTL_SCHEDOP_putinfo;
        s.u.set(&xen_domctl_sched_credit2 { weight, cap });
        op.u.set(&s);
        self.domctl(&mut op)
    }

    /// `xc_domain_hvm_getcontext` with a NULL buffer: the size needed.
    pub fn hvm_context_size(&mut self, dom: domid_t) -> Result<u32> {
        let mut op = Self::domctl_op(XEN_DOMCTL_gethvmcontext, dom);
        op.u.set(&xen_domctl_hvmcontext::new_zeroed());
        self.domctl(&mut op)?;
        Ok(op.u.get::<xen_domctl_hvmcontext>().size)
    }

    /// `xc_domain_hvm_getcontext`: fills `buf`, returns the bytes used.
    pub fn hvm_getcontext(&mut self, dom: domid_t, buf: &mut [u8]) -> Result<u32> {
        let mut op = Self::domctl_op(XEN_DOMCTL_gethvmcontext, dom);
        op.u.set(&xen_domctl_hvmcontext {
            size: buf.len() as u32,
            _implicit0: [0; 4],
            buffer: buf.as_mut_ptr() as u64,
        });
        self.domctl(&mut op)?;
        Ok(op.u.get::<xen_domctl_hvmcontext>().size)
    }

    /// `xc_domain_hvm_setcontext`.
    pub fn hvm_setcontext(&mut self, dom: domid_t, ctx: &[u8]) -> Result<()> {
        let mut op = Self::domctl_op(XEN_DOMCTL_sethvmcontext, dom);
        op.u.set(&xen_domctl_hvmcontext {
            size: ctx.len() as u32,
            _implicit0: [0; 4],
            buffer: ctx.as_ptr() as u64,
        });
        self.domctl(&mut op)
    }

    // ---- sysctl ------------------------------------------------------------------

    fn sysctl(&mut self, op: &mut xen_sysctl) -> Result<()> {
        op.interface_version = XEN_SYSCTL_INTERFACE_VERSION;
        rc(self
            .h
            .hypercall(__HYPERVISOR_sysctl, [Self::ptr(op), 0, 0, 0, 0]))
        .map(|_| ())
    }

    /// `xc_physinfo`.
    pub fn physinfo(&mut self) -> Result<xen_sysctl_physinfo> {
        let mut op = xen_sysctl::new_zeroed();
        op.cmd = XEN_SYSCTL_physinfo;
        self.sysctl(&mut op)?;
        Ok(op.u.get())
    }

    /// `xc_domain_getinfolist`: fills `out` from `first`; returns how many.
    pub fn domain_getinfolist(&mut self, first: domid_t, out: &mut [DomInfo]) -> Result<usize> {
        let mut op = xen_sysctl::new_zeroed();
        op.cmd = XEN_SYSCTL_getdomaininfolist;
        op.u.set(&xen_sysctl_getdomaininfolist {
            first_domain: first,
            _implicit0: [0; 2],
            max_domains: out.len() as u32,
            buffer: out.as_mut_ptr() as u64,
            num_domains: 0,
            _implicit1: [0; 4],
        });
        self.sysctl(&mut op)?;
        Ok(op.u.get::<xen_sysctl_getdomaininfolist>().num_domains as usize)
    }

    // ---- memory ------------------------------------------------------------------

    /// `xc_domain_populate_physmap`: extents of `order` at `gfns` (the first gfn
    /// of each); returns how many extents were done.
    pub fn populate_physmap(&mut self, dom: domid_t, order: u32, gfns: &mut [u64]) -> Result<u64> {
        let mut r = xen_memory_reservation::new_zeroed();
        r.extent_start = gfns.as_mut_ptr() as u64;
        r.nr_extents = gfns.len() as u64;
        r.extent_order = order;
        r.domid = dom;
        self.memop(XENMEM_populate_physmap, &mut r)
            .map(|n| n as u64)
    }

    /// `xc_domain_claim_pages` (0 cancels).
    pub fn claim_pages(&mut self, dom: domid_t, pages: u64) -> Result<()> {
        let mut r = xen_memory_reservation::new_zeroed();
        r.nr_extents = pages;
        r.domid = dom;
        self.memop(XENMEM_claim_pages, &mut r).map(|_| ())
    }

    /// `xc_domain_set_memory_map`: `e820` is packed 20-byte entries.
    pub fn set_memory_map(&mut self, dom: domid_t, e820: &[u8]) -> Result<()> {
        let mut f = xen_foreign_memory_map::new_zeroed();
        f.domid = dom;
        f.map = xen_memory_map {
            nr_entries: (e820.len() / 20) as u32,
            _implicit0: [0; 4],
            buffer: e820.as_ptr() as u64,
        };
        self.memop(XENMEM_set_memory_map, &mut f).map(|_| ())
    }

    /// Map frame `fgfn` of `dom` at dom0's `gfn` (privcmd's `MMAPBATCH` on a PVH
    /// dom0: `add_to_physmap_batch(gmfn_foreign)`, one entry); the per-entry
    /// error is the result.
    pub fn map_foreign(&mut self, dom: domid_t, fgfn: u64, gfn: u64) -> Result<()> {
        let mut idx = fgfn;
        let mut gpfn = gfn;
        let mut err: i32 = 0;
        let mut u = xen_add_to_physmap_batch_extra::new_zeroed();
        u.raw = [dom];
        let mut b = xen_add_to_physmap_batch {
            domid: DOMID_SELF,
            space: XENMAPSPACE_gmfn_foreign as u16,
            size: 1,
            u,
            idxs: Self::ptr(&mut idx),
            gpfns: Self::ptr(&mut gpfn),
            errs: Self::ptr(&mut err),
        };
        self.memop(XENMEM_add_to_physmap_batch, &mut b)?;
        rc(i64::from(err)).map(|_| ())
    }

    /// Map frames `fgfns[i]` of `dom` at dom0's `gfns[i]` in one
    /// `add_to_physmap_batch(gmfn_foreign)` (privcmd's `MMAPBATCH_V2`): the
    /// per-entry errors go to `errs` (negative errno, 0 when mapped). The three
    /// slices have the same length (at most 65535 entries).
    pub fn map_foreign_batch(
        &mut self,
        dom: domid_t,
        fgfns: &[u64],
        gfns: &[u64],
        errs: &mut [i32],
    ) -> Result<()> {
        let n = fgfns.len();
        if gfns.len() != n || errs.len() != n || n > usize::from(u16::MAX) {
            return Err(Errno(22));
        }
        let mut u = xen_add_to_physmap_batch_extra::new_zeroed();
        u.raw = [dom];
        let mut b = xen_add_to_physmap_batch {
            domid: DOMID_SELF,
            space: XENMAPSPACE_gmfn_foreign as u16,
            size: n as u16,
            u,
            idxs: fgfns.as_ptr() as u64,
            gpfns: gfns.as_ptr() as u64,
            errs: errs.as_mut_ptr() as u64,
        };
        self.memop(XENMEM_add_to_physmap_batch, &mut b).map(|_| ())
    }

    /// Unmap dom0's `gfn` (`remove_from_physmap`).
    pub fn unmap_foreign(&mut self, gfn: u64) -> Result<()> {
        let mut x = xen_remove_from_physmap {
            domid: DOMID_SELF,
            _implicit0: [0; 6],
            gpfn: gfn,
        };
        self.memop(XENMEM_remove_from_physmap, &mut x).map(|_| ())
    }

    // ---- event channels, HVM params --------------------------------------------

    /// `xc_evtchn_alloc_unbound`: a port in `dom` that `remote` may bind.
    pub fn evtchn_alloc_unbound(&mut self, dom: domid_t, remote: domid_t) -> Result<u32> {
        let mut a = evtchn_alloc_unbound {
            dom,
            remote_dom: remote,
            port: 0,
        };
        rc(self.h.hypercall(
            __HYPERVISOR_event_channel_op,
            [
                u64::from(EVTCHNOP_alloc_unbound),
                Self::ptr(&mut a),
                0,
                0,
                0,
            ],
        ))?;
        Ok(a.port)
    }

    fn evtchn_op<T>(&mut self, cmd: u32, arg: &mut T) -> Result<i64> {
        rc(self.h.hypercall(
            __HYPERVISOR_event_channel_op,
            [u64::from(cmd), Self::ptr(arg), 0, 0, 0],
        ))
    }

    /// `xenevtchn_bind_interdomain`: bind `remote`'s unbound `port` (which
    /// names this domain as its remote end); returns the local port.
    pub fn evtchn_bind_interdomain(&mut self, remote: domid_t, port: u32) -> Result<u32> {
        let mut a = evtchn_bind_interdomain::new_zeroed();
        a.remote_dom = remote;
        a.remote_port = port;
        self.evtchn_op(EVTCHNOP_bind_interdomain, &mut a)?;
        Ok(a.local_port)
    }

    /// `xenevtchn_bind_virq` on vCPU 0; returns the port.
    pub fn evtchn_bind_virq(&mut self, virq: u32) -> Result<u32> {
        let mut a = evtchn_bind_virq {
            virq,
            vcpu: 0,
            port: 0,
        };
        self.evtchn_op(EVTCHNOP_bind_virq, &mut a)?;
        Ok(a.port)
    }

    /// `xenevtchn_notify`.
    pub fn evtchn_notify(&mut self, port: u32) -> Result<()> {
        let mut a = evtchn_send { port };
        self.evtchn_op(EVTCHNOP_send, &mut a).map(|_| ())
    }

    /// `xenevtchn_unbind`.
    pub fn evtchn_close(&mut self, port: u32) -> Result<()> {
        let mut a = evtchn_close { port };
        self.evtchn_op(EVTCHNOP_close, &mut a).map(|_| ())
    }

    // ---- the hypervisor console ------------------------------------------------

    /// `CONSOLEIO_write`: bytes to the hypervisor's console (as they are, for a
    /// privileged caller).
    pub fn console_write(&mut self, bytes: &[u8]) -> Result<()> {
        rc(self.h.hypercall(
            __HYPERVISOR_console_io,
            [
                u64::from(CONSOLEIO_write),
                bytes.len() as u64,
                bytes.as_ptr() as u64,
                0,
                0,
            ],
        ))
        .map(|_| ())
    }

    /// `CONSOLEIO_read`: serial input waiting for dom0; returns how many bytes
    /// were put in `buf`.
    pub fn console_read(&mut self, buf: &mut [u8]) -> Result<usize> {
        let n = rc(self.h.hypercall(
            __HYPERVISOR_console_io,
            [
                u64::from(CONSOLEIO_read),
                buf.len() as u64,
                buf.as_mut_ptr() as u64,
                0,
                0,
            ],
        ))?;
        Ok(n as usize)
    }

    /// `xc_hvm_param_set`.
    pub fn hvm_param_set(&mut self, dom: domid_t, index: u32, value: u64) -> Result<()> {
        let mut p = xen_hvm_param {
            domid: dom,
            pad: 0,
            index,
            value,
        };
        rc(self.h.hypercall(
            __HYPERVISOR_hvm_op,
            [u64::from(HVMOP_set_param), Self::ptr(&mut p), 0, 0, 0],
        ))
        .map(|_| ())
    }

    /// `xc_hvm_param_get`.
    pub fn hvm_param_get(&mut self, dom: domid_t, index: u32) -> Result<u64> {
        let mut p = xen_hvm_param {
            domid: dom,
            pad: 0,
            index,
            value: 0,
        };
        rc(self.h.hypercall(
            __HYPERVISOR_hvm_op,
            [u64::from(HVMOP_get_param), Self::ptr(&mut p), 0, 0, 0],
        ))?;
        Ok(p.value)
    }
}

/// A UUID-like handle from a name (the toolstack's `handle`).
pub fn handle_from_name(name: &str) -> xen_domain_handle_t {
    let mut h = [0u8; 16];
    for (i, b) in name.bytes().enumerate() {
        h[i % 16] ^= b.wrapping_add(i as u8);
    }
    h
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Records the calls and answers from a script; reads the argument structs
    /// through the pointers (host tests share the address space).
    struct Fake {
        calls: Vec<(u32, u64)>,
        answer: i64,
    }

    impl Hypercall for Fake {
        fn hypercall(&mut self, nr: u32, args: [u64; 5]) -> i64 {
            self.calls.push((nr, args[0]));
            if nr == __HYPERVISOR_domctl {
                // SAFETY: the wrapper passed a pointer to a live `xen_domctl`.
                let op = unsafe { &mut *(args[0] as *mut xen_domctl) };
                assert_eq!(op.interface_version, XEN_DOMCTL_INTERFACE_VERSION);
                if op.cmd == XEN_DOMCTL_createdomain {
                    op.domain = 7;
                }
            }
            if nr == __HYPERVISOR_memory_op && args[0] == u64::from(XENMEM_add_to_physmap_batch) {
                // SAFETY: as above, a `xen_add_to_physmap_batch` with one entry.
                let b = unsafe { &*(args[1] as *const xen_add_to_physmap_batch) };
                assert_eq!((b.size, b.u.raw[0]), (1, 9));
                // SAFETY: `errs` points at the wrapper's i32.
                unsafe { *(b.errs as *mut i32) = -22 };
            }
            self.answer
        }
    }

    #[test]
    fn wrappers_fill_and_read_the_structs() {
        let mut xc = Xc::new(Fake {
            calls: Vec::new(),
            answer: 0,
        });
        let cfg = xen_domctl_createdomain::new_zeroed();
        assert_eq!(xc.domain_create(&cfg), Ok(7));
        assert_eq!(
            xc.map_foreign(9, 0x10, 0x8000),
            Err(Errno(22)),
            "per-entry error"
        );
        xc.h.answer = -1;
        assert_eq!(xc.domain_pause(7), Err(Errno(1)));
        assert_eq!(xc.h.calls.len(), 3);
    }

    #[test]
    fn handles_differ_by_name() {
        assert_ne!(handle_from_name("a"), handle_from_name("b"));
    }
}
