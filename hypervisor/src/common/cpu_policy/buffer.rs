//! Copying policies to and from the toolstack's `xen_cpuid_leaf` /
//! `xen_msr_entry` arrays (guest handles), as `x86_{cpuid,msr}_copy_to_buffer`
//! and `copy_from_buffer_offset` do.

use core::cell::RefCell;
use xen_public_abi::arch_x86::{xen_cpuid_leaf, xen_msr_entry};
use xen_public_abi::{Errno, XenResult};

use zerocopy::{Immutable, IntoBytes};

use super::{CpuPolicy, PolicyErrors};
use crate::common::guest_access::{copy_from_guest, copy_to_guest, GuestAccess};

/// Write `entries` to the array at `handle` of `*nr` slots: `-ENOBUFS` when it is
/// too short (the slots that fit are written), `-EFAULT` on a bad address; on
/// success `*nr` is the number written.
pub fn entries_to_guest<T: IntoBytes + Immutable>(
    g: &mut dyn GuestAccess,
    handle: u64,
    entries: &[T],
    nr: &mut u32,
) -> XenResult<()> {
    let size = core::mem::size_of::<T>() as u64;
    for (i, e) in entries.iter().enumerate() {
        if i as u32 >= *nr {
            return Err(Errno::ENOBUFS);
        }
        copy_to_guest(g, handle.wrapping_add(i as u64 * size), e)?;
    }
    *nr = entries.len() as u32;
    Ok(())
}

/// `update_domain_cpu_policy` with the arrays read from the toolstack's handles,
/// one entry at a time (the leaves first, then the MSRs, as Xen).
pub fn update_from_guest_arrays(
    policy: &mut CpuPolicy,
    max: &CpuPolicy,
    g: &mut dyn GuestAccess,
    (leaves, nr_leaves): (u64, u32),
    (msrs, nr_msrs): (u64, u32),
    err: &mut PolicyErrors,
) -> XenResult<()> {
    let g = RefCell::new(g);
    let mut leaf = |i: u32| -> XenResult<xen_cpuid_leaf> {
        let off = u64::from(i) * core::mem::size_of::<xen_cpuid_leaf>() as u64;
        copy_from_guest(&mut **g.borrow_mut(), leaves.wrapping_add(off))
    };
    let mut msr = |i: u32| -> XenResult<xen_msr_entry> {
        let off = u64::from(i) * core::mem::size_of::<xen_msr_entry>() as u64;
        copy_from_guest(&mut **g.borrow_mut(), msrs.wrapping_add(off))
    };
    policy.update_from_guest(max, nr_leaves, &mut leaf, nr_msrs, &mut msr, err)
}
