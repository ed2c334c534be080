//! Grant tables from dom0 (libxengnttab's and libxenguest's jobs): map and
//! unmap another domain's grant at a gfn of dom0's own (a PVH dom0 maps grants
//! into its physmap: `GNTTABOP_map_grant_ref` with `host_addr` = that gfn's
//! address), copy through grants, and seed a new domain's reserved entries
//! (0 = console, 1 = xenstore) through `XENMEM_acquire_resource`, as
//! `xc_dom_gnttab_seed()` does. The hypervisor side: `docs/grant-tables.md`.

use xen_public_abi::grant_table::{
    gnttab_map_grant_ref, gnttab_unmap_grant_ref, grant_entry_v1, grant_handle_t, grant_ref_t,
    GNTMAP_host_map, GNTMAP_readonly, GNTST_okay, GNTTABOP_map_grant_ref, GNTTABOP_unmap_grant_ref,
    GTF_permit_access, GNTTAB_RESERVED_CONSOLE, GNTTAB_RESERVED_XENSTORE,
};
use xen_public_abi::memory::{
    xen_mem_acquire_resource, XENMEM_acquire_resource, XENMEM_resource_grant_table,
    XENMEM_resource_grant_table_id_shared,
};
use xen_public_abi::xen::{__HYPERVISOR_grant_table_op, domid_t};
use zerocopy::FromZeros;

use super::{rc, Errno, Hypercall, Result, Xc};

/// A failed grant operation: its `GNTST_*` status (negative).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum GrantError {
    /// The hypercall itself failed.
    Errno(Errno),
    /// The operation's status.
    Status(i16),
}

impl<H: Hypercall> Xc<H> {
    fn gnttab_op<T>(&mut self, cmd: u32, op: &mut T) -> Result<i64> {
        rc(self.h.hypercall(
            __HYPERVISOR_grant_table_op,
            [u64::from(cmd), Self::ptr(op), 1, 0, 0],
        ))
    }

    /// `xengnttab_map_grant_ref`: map grant `gref` of `dom` at dom0's `gfn`
    /// (read-only if asked); returns the handle for the unmap.
    pub fn gnttab_map(
        &mut self,
        dom: domid_t,
        gref: grant_ref_t,
        gfn: u64,
        readonly: bool,
    ) -> core::result::Result<grant_handle_t, GrantError> {
        let mut op = gnttab_map_grant_ref::new_zeroed();
        op.host_addr = gfn << 12;
        op.flags = GNTMAP_host_map | if readonly { GNTMAP_readonly } else { 0 };
        op.r#ref = gref;
        op.dom = dom;
        self.gnttab_op(GNTTABOP_map_grant_ref, &mut op)
            .map_err(GrantError::Errno)?;
        if op.status != GNTST_okay {
            return Err(GrantError::Status(op.status));
        }
        Ok(op.handle)
    }

    /// `xengnttab_unmap`: undo [`Xc::gnttab_map`] at `gfn`.
    pub fn gnttab_unmap(
        &mut self,
        handle: grant_handle_t,
        gfn: u64,
    ) -> core::result::Result<(), GrantError> {
        let mut op = gnttab_unmap_grant_ref::new_zeroed();
        op.host_addr = gfn << 12;
        op.handle = handle;
        self.gnttab_op(GNTTABOP_unmap_grant_ref, &mut op)
            .map_err(GrantError::Errno)?;
        if op.status != GNTST_okay {
            return Err(GrantError::Status(op.status));
        }
        Ok(())
    }

    /// `xenforeignmemory_map_resource` for `dom`'s grant-table frames
    /// `frame..frame + gfns.len()`, mapped at dom0's `gfns` (unmap each with
    /// [`Xc::unmap_foreign`]).
    pub fn map_grant_table_frames(
        &mut self,
        dom: domid_t,
        frame: u64,
        gfns: &mut [u64],
    ) -> Result<()> {
        let mut x = xen_mem_acquire_resource::new_zeroed();
        x.domid = dom;
        x.r#type = XENMEM_resource_grant_table;
        x.id = XENMEM_resource_grant_table_id_shared;
        x.nr_frames = gfns.len() as u32;
        x.frame = frame;
        x.frame_list = gfns.as_mut_ptr() as u64;
        self.memop(XENMEM_acquire_resource, &mut x).map(|_| ())
    }

    /// `xc_dom_gnttab_seed()`: grant `dom`'s console page (`console_gfn`) to
    /// `console_domid` in entry 0 and its xenstore page (`xenstore_gfn`) to
    /// `xenstore_domid` in entry 1, writing its first grant-table frame through
    /// a temporary mapping at dom0's `scratch_gfn` (dom0 is identity-mapped:
    /// the gfn's address is where the frame appears).
    pub fn gnttab_seed(
        &mut self,
        dom: domid_t,
        console_gfn: u64,
        console_domid: domid_t,
        xenstore_gfn: u64,
        xenstore_domid: domid_t,
        scratch_gfn: u64,
    ) -> Result<()> {
        let mut gfns = [scratch_gfn];
        self.map_grant_table_frames(dom, 0, &mut gfns)?;
        let table = (scratch_gfn << 12) as *mut grant_entry_v1;
        let seed = [
            (GNTTAB_RESERVED_CONSOLE, console_gfn, console_domid),
            (GNTTAB_RESERVED_XENSTORE, xenstore_gfn, xenstore_domid),
        ];
        for (r, gfn, domid) in seed {
            let e = grant_entry_v1 {
                flags: GTF_permit_access,
                domid,
                frame: gfn as u32,
            };
            // SAFETY: the frame was just mapped at scratch_gfn, which dom0's
            // identity page tables map at this address; entries 0 and 1 are in it.
            unsafe { table.add(r as usize).write_volatile(e) };
        }
        self.unmap_foreign(scratch_gfn)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use xen_public_abi::grant_table::GNTST_bad_gntref;

    /// Answers grant ops with a status and records (cmd, count, struct bytes).
    struct Fake {
        status: i16,
        seen: Vec<(u64, u64, gnttab_map_grant_ref)>,
    }

    impl Hypercall for Fake {
        fn hypercall(&mut self, nr: u32, a: [u64; 5]) -> i64 {
            assert_eq!(nr, __HYPERVISOR_grant_table_op);
            if a[0] == u64::from(GNTTABOP_map_grant_ref) {
                // SAFETY: the wrapper passed a live `gnttab_map_grant_ref`.
                let op = unsafe { &mut *(a[1] as *mut gnttab_map_grant_ref) };
                self.seen.push((a[0], a[2], *op));
                op.status = self.status;
                op.handle = 42;
            } else {
                // SAFETY: a live `gnttab_unmap_grant_ref`.
                let op = unsafe { &mut *(a[1] as *mut gnttab_unmap_grant_ref) };
                assert_eq!((op.host_addr, op.handle), (0x9000 << 12, 42));
                op.status = self.status;
            }
            0
        }
    }

    #[test]
    fn map_and_unmap_fill_the_structs_and_read_the_status() {
        let mut xc = Xc::new(Fake {
            status: GNTST_okay,
            seen: Vec::new(),
        });
        assert_eq!(xc.gnttab_map(3, 10, 0x9000, true), Ok(42));
        let (cmd, count, op) = xc.h.seen[0];
        assert_eq!((cmd, count), (u64::from(GNTTABOP_map_grant_ref), 1));
        assert_eq!(
            (op.host_addr, op.flags, op.r#ref, op.dom),
            (0x9000 << 12, GNTMAP_host_map | GNTMAP_readonly, 10, 3)
        );
        assert_eq!(xc.gnttab_unmap(42, 0x9000), Ok(()));
        xc.h.status = GNTST_bad_gntref;
        assert_eq!(
            xc.gnttab_map(3, 10, 0x9000, false),
            Err(GrantError::Status(GNTST_bad_gntref))
        );
        assert_eq!(
            xc.gnttab_unmap(42, 0x9000),
            Err(GrantError::Status(GNTST_bad_gntref))
        );
    }
}
