//! `__HYPERVISOR_domctl`: the toolstack's domain-control operations.
//!
//! Mirrors Xen 4.17's `xen/common/domctl.c` (`do_domctl()`, `getdomaininfo()`) with
//! the dummy XSM policy (`xen/include/xsm/dummy.h`): every domctl but
//! getdomaininfo needs a privileged caller; getdomaininfo also admits a xenstore
//! domain. The order of Xen's checks is kept, because guests can see it:
//!
//! 1. copy the `xen_domctl` in (`-EFAULT`);
//! 2. `interface_version` must be 0x15 (`-EACCES`, for every command);
//! 3. the target domain is looked up by exact id (`DOMID_SELF` is *not* the caller
//!    here): missing → `-ESRCH`, except getdomaininfo, which returns the first
//!    domain at or above the id (4.17) and `-EINVAL` for reserved ids;
//! 4. privilege (`-EPERM`);
//! 5. the command (`-ENOSYS` if unknown);
//! 6. on success, createdomain and getdomaininfo copy the whole `xen_domctl` back.

// Xen's names (`XEN_DOMCTL_createdomain`, `__HYPERVISOR_domctl`, ...) in match patterns.
#![allow(non_upper_case_globals)]

use alloc::vec;
use alloc::vec::Vec;
use log::info;
use xen_public_abi::arch_x86::xen_arch_domainconfig;
use xen_public_abi::domctl::{
    xen_domctl, xen_domctl_cpu_policy, xen_domctl_createdomain, xen_domctl_getdomaininfo,
    xen_domctl_getvcpuinfo, xen_domctl_hvmcontext, xen_domctl_max_mem, xen_domctl_max_vcpus,
    xen_domctl_paging_mempool, xen_domctl_scheduler_op, xen_domctl_tsc_info,
    xen_domctl_vcpuaffinity, XEN_DOMCTL_SCHEDOP_getinfo, XEN_DOMCTL_SCHEDOP_getvcpuinfo,
    XEN_DOMCTL_SCHEDOP_putinfo, XEN_DOMCTL_SCHEDOP_putvcpuinfo, XEN_DOMCTL_createdomain,
    XEN_DOMCTL_destroydomain, XEN_DOMCTL_get_cpu_policy, XEN_DOMCTL_get_paging_mempool_size,
    XEN_DOMCTL_getdomaininfo, XEN_DOMCTL_gethvmcontext, XEN_DOMCTL_getvcpuaffinity,
    XEN_DOMCTL_getvcpuinfo, XEN_DOMCTL_max_mem, XEN_DOMCTL_max_vcpus, XEN_DOMCTL_pausedomain,
    XEN_DOMCTL_scheduler_op, XEN_DOMCTL_set_cpu_policy, XEN_DOMCTL_set_paging_mempool_size,
    XEN_DOMCTL_sethvmcontext, XEN_DOMCTL_settscinfo, XEN_DOMCTL_setvcpuaffinity,
    XEN_DOMCTL_unpausedomain, XEN_DOMINF_blocked, XEN_DOMINF_dying, XEN_DOMINF_hap,
    XEN_DOMINF_hvm_guest, XEN_DOMINF_paused, XEN_DOMINF_running, XEN_DOMINF_shutdown,
    XEN_DOMINF_shutdownshift, XEN_DOMINF_xs_domain, XEN_DOMCTL_INTERFACE_VERSION,
    XEN_INVALID_MAX_VCPU_ID, XEN_SCHEDULER_CREDIT2, XEN_VCPUAFFINITY_HARD, XEN_VCPUAFFINITY_SOFT,
};
use xen_public_abi::xen::xenctl_bitmap;
use xen_public_abi::xen::{__HYPERVISOR_domctl, domid_t, DOMID_FIRST_RESERVED};
use xen_public_abi::{Errno, XenResult};
use zerocopy::FromZeros;

use super::cpu_policy::buffer::{self, entries_to_guest};
use super::cpu_policy::{PolicyErrors, CPUID_MAX_SERIALISED_LEAVES, MSR_MAX_SERIALISED_ENTRIES};
use super::domain::{Domain, Vcpu};
use super::guest_access::{copy_from_guest, copy_to_guest, GuestAccess};
use super::hvm_save;
use super::hypercall::{Caller, ExtHandlers, Hypervisor};

/// `TSC_MODE_DEFAULT`, `TSC_MODE_ALWAYS_EMULATE`, `TSC_MODE_NEVER_EMULATE`
/// (`xen/include/asm-x86/time.h`): the modes `tsc_set_info()` accepts.
const TSC_MODE_MAX: u32 = 2;
/// Credit2's default weight (`CSCHED2_DEFAULT_WEIGHT`).
pub const CREDIT2_DEFAULT_WEIGHT: u16 = 256;
/// The HAP pool a new HVM domain starts with in 4.17 (`hap_enable()`: 256 pages).
const PAGING_POOL_DEFAULT: u64 = 256 << 12;
/// CPU masks are kept as 64-bit words: CPUs 0..63.
const MASK_CPUS: u32 = 64;

/// What the toolstack's domctls record for a domain.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DomctlState {
    /// `XEN_DOMCTL_settscinfo`: mode, guest kHz (0: the host's), incarnation
    /// (stored + 1, as Xen), elapsed ns.
    pub tsc_mode: u32,
    pub gtsc_khz: u32,
    pub incarnation: u32,
    pub tsc_elapsed_ns: u64,
    /// `XEN_DOMCTL_set_paging_mempool_size`, in bytes.
    pub paging_pool_bytes: u64,
    /// Credit2 parameters (`XEN_DOMCTL_scheduler_op`).
    pub weight: u16,
    pub cap: u16,
    /// Per vCPU hard and soft affinity (bit n = CPU n).
    pub hard_affinity: Vec<u64>,
    pub soft_affinity: Vec<u64>,
    /// `XENMEM_claim_pages`: the size claimed (0: no claim).
    pub claim_target: u64,
}

impl DomctlState {
    pub fn new(max_vcpus: u32) -> Self {
        let n = max_vcpus.min(128) as usize;
        DomctlState {
            tsc_mode: 0,
            gtsc_khz: 0,
            incarnation: 0,
            tsc_elapsed_ns: 0,
            paging_pool_bytes: PAGING_POOL_DEFAULT,
            weight: CREDIT2_DEFAULT_WEIGHT,
            cap: 0,
            hard_affinity: vec![u64::MAX; n],
            soft_affinity: vec![u64::MAX; n],
            claim_target: 0,
        }
    }

    /// Claimed pages not allocated yet (`d->outstanding_pages`).
    pub fn outstanding_pages(&self, tot_pages: u64) -> u64 {
        self.claim_target.saturating_sub(tot_pages)
    }
}

/// Xen's `getdomaininfo()`: the public view of one domain.
pub fn getdomaininfo(d: &Domain, gpaddr_bits: u8) -> xen_domctl_getdomaininfo {
    let mut info = xen_domctl_getdomaininfo::new_zeroed();
    info.domain = d.domain_id;
    info.max_vcpu_id = XEN_INVALID_MAX_VCPU_ID;

    // Blocked only if every online vCPU is; running if any is.
    let mut flags = XEN_DOMINF_blocked;
    let mut cpu_time = 0u64;
    for v in &d.vcpus {
        cpu_time = cpu_time.saturating_add(v.run_time_ns);
        info.max_vcpu_id = v.vcpu_id;
        if v.online {
            if !v.blocked {
                flags &= !XEN_DOMINF_blocked;
            }
            if v.running {
                flags |= XEN_DOMINF_running;
            }
            info.nr_online_vcpus += 1;
        }
    }
    info.cpu_time = cpu_time;

    let mut f = if info.nr_online_vcpus != 0 { flags } else { 0 };
    // XEN_DOMINF_dying: between the entries of a preempted destroydomain.
    if d.is_dying {
        f |= XEN_DOMINF_dying;
    }
    if d.shutdown.is_shut_down {
        f |= XEN_DOMINF_shutdown;
    }
    if d.controller_pause_count > 0 {
        f |= XEN_DOMINF_paused;
    }
    if d.is_xenstore() {
        f |= XEN_DOMINF_xs_domain;
    }
    if d.is_hvm() {
        f |= XEN_DOMINF_hvm_guest;
    }
    if d.hap() {
        f |= XEN_DOMINF_hap;
    }
    // The code is an unsigned int shifted as is: "none" (~0) fills bits 16..31.
    f |= d.shutdown.code.wrapping_shl(XEN_DOMINF_shutdownshift);
    info.flags = f;

    info.tot_pages = d.tot_pages();
    info.max_pages = d.max_pages;
    info.outstanding_pages = d.ctl.outstanding_pages(info.tot_pages);
    // shared and paged pages: none of these mechanisms exist here.
    info.shared_info_frame = d.shared_info_gfn;
    // ssidref: the dummy XSM policy reports 0 (the value given at creation is
    // ignored, as in 4.17 without XSM).
    info.ssidref = 0;
    info.handle = d.config.handle;
    info.cpupool = d.config.cpupool_id;
    info.gpaddr_bits = gpaddr_bits;
    info.arch_config = xen_arch_domainconfig {
        emulation_flags: d.config.emulation_flags,
        misc_flags: 0,
    };
    info
}

/// Pages one `XEN_DOMCTL_destroydomain` entry gives back before it continues.
pub const DESTROY_PAGES_PER_CALL: usize = 512;

/// `__HYPERVISOR_domctl(xen_domctl_t *u_domctl)`.
pub fn do_domctl(
    hv: &mut Hypervisor,
    ext: &mut dyn ExtHandlers,
    caller: Caller,
    arg: u64,
    guest: &mut dyn GuestAccess,
) -> i64 {
    let mut op: xen_domctl = match copy_from_guest(guest, arg) {
        Ok(op) => op,
        Err(e) => return e.as_ret(),
    };
    match domctl(hv, ext, caller, &mut op, arg, guest) {
        Ok(Copyback::No) => 0,
        Ok(Copyback::Yes) => match copy_to_guest(guest, arg, &op) {
            Ok(()) => 0,
            Err(e) => e.as_ret(),
        },
        Ok(Copyback::Error(errno)) => match copy_to_guest(guest, arg, &op) {
            Ok(()) => errno.as_ret(),
            Err(e) => e.as_ret(),
        },
        Err(e) => e.as_ret(),
    }
}

/// Whether the (updated) `xen_domctl` goes back to the guest.
enum Copyback {
    No,
    Yes,
    /// The command failed with this errno but its OUT fields still go back
    /// (`XEN_DOMCTL_set_cpu_policy`'s `err_leaf`/`err_subleaf`/`err_msr`).
    Error(Errno),
}

fn caller_privileged(hv: &Hypervisor, caller: Caller) -> bool {
    hv.domains
        .get(caller.domid)
        .is_some_and(|d| d.is_privileged)
}

/// `do_domctl()` on a copied-in `xen_domctl`.
fn domctl(
    hv: &mut Hypervisor,
    ext: &mut dyn ExtHandlers,
    caller: Caller,
    op: &mut xen_domctl,
    op_gva: u64,
    guest: &mut dyn GuestAccess,
) -> XenResult<Copyback> {
    if op.interface_version != XEN_DOMCTL_INTERFACE_VERSION {
        return Err(Errno::EACCES);
    }

    if op.cmd == XEN_DOMCTL_getdomaininfo {
        return getdomaininfo_op(hv, caller, op);
    }

    // Every other command: the target must exist (by exact id), then privilege.
    let target = if op.cmd == XEN_DOMCTL_createdomain {
        None
    } else {
        hv.domains.get(op.domain).ok_or(Errno::ESRCH)?;
        Some(op.domain)
    };
    if !caller_privileged(hv, caller) {
        return Err(Errno::EPERM);
    }

    match (op.cmd, target) {
        (XEN_DOMCTL_createdomain, _) => {
            let config: xen_domctl_createdomain = op.u.get();
            let domid = hv.domains.create_domain(op.domain, &config)?;
            op.domain = domid;
            Ok(Copyback::Yes)
        }
        (XEN_DOMCTL_destroydomain, Some(id)) => {
            if id == caller.domid {
                return Err(Errno::EINVAL);
            }
            // Preemptible, as Xen's domain_kill: the first entry stops the
            // domain (ports closed, vCPUs out of guest mode), each entry gives
            // back a bounded number of pages, the last one removes it.
            if !target_mut(hv, id)?.is_dying {
                hv.domains.start_dying(id)?;
                ext.domain_destroy(&mut hv.domains, id);
            }
            if !hv.domains.relinquish_pages(id, DESTROY_PAGES_PER_CALL)? {
                hv.domains
                    .create_continuation(__HYPERVISOR_domctl, [op_gva, 0, 0, 0, 0]);
                return Ok(Copyback::No);
            }
            // Ports a privileged caller made for it while it was dying.
            ext.domain_destroy(&mut hv.domains, id);
            hv.domains.destroy_domain(id)?;
            Ok(Copyback::No)
        }
        (XEN_DOMCTL_pausedomain, Some(id)) => {
            if id == caller.domid {
                return Err(Errno::EINVAL);
            }
            target_mut(hv, id)?.pause_by_systemcontroller()?;
            // Synchronous, as Xen's domain_pause: no vCPU of it stays in guest mode.
            ext.domain_pause(&mut hv.domains, id);
            Ok(Copyback::No)
        }
        (XEN_DOMCTL_unpausedomain, Some(id)) => {
            target_mut(hv, id)?.unpause_by_systemcontroller()?;
            Ok(Copyback::No)
        }
        (XEN_DOMCTL_max_vcpus, Some(id)) => {
            let max = op.u.get::<xen_domctl_max_vcpus>().max;
            max_vcpus(hv, ext, caller, id, max)?;
            Ok(Copyback::No)
        }
        (XEN_DOMCTL_settscinfo, Some(id)) => {
            let t: xen_domctl_tsc_info = op.u.get();
            // Not on the caller itself (Xen pauses the target around it).
            if id == caller.domid {
                return Err(Errno::EINVAL);
            }
            let d = target_mut(hv, id)?;
            if t.tsc_mode > TSC_MODE_MAX {
                return Err(Errno::EINVAL);
            }
            d.ctl.tsc_mode = t.tsc_mode;
            d.ctl.gtsc_khz = t.gtsc_khz;
            d.ctl.tsc_elapsed_ns = t.elapsed_nsec;
            d.ctl.incarnation = t.incarnation.wrapping_add(1);
            Ok(Copyback::No)
        }
        (XEN_DOMCTL_set_paging_mempool_size | XEN_DOMCTL_get_paging_mempool_size, Some(id)) => {
            let d = target_mut(hv, id)?;
            if !d.is_hvm() {
                return Err(Errno::EOPNOTSUPP);
            }
            if op.cmd == XEN_DOMCTL_get_paging_mempool_size {
                op.u.set(&xen_domctl_paging_mempool {
                    size: d.ctl.paging_pool_bytes,
                });
                return Ok(Copyback::Yes);
            }
            let size = op.u.get::<xen_domctl_paging_mempool>().size;
            // Whole pages, and a page count that fits 32 bits.
            if size & 0xfff != 0 || (size >> 12) > u64::from(u32::MAX) {
                return Err(Errno::EINVAL);
            }
            d.ctl.paging_pool_bytes = size;
            Ok(Copyback::No)
        }
        (XEN_DOMCTL_setvcpuaffinity | XEN_DOMCTL_getvcpuaffinity, Some(id)) => {
            let mut a: xen_domctl_vcpuaffinity = op.u.get();
            let nr_cpus = ext.host_facts().nr_cpus.clamp(1, MASK_CPUS);
            let d = target_mut(hv, id)?;
            vcpu_affinity(d, op.cmd, &mut a, nr_cpus, guest)?;
            Ok(Copyback::No)
        }
        (XEN_DOMCTL_getvcpuinfo, Some(id)) => {
            let mut i: xen_domctl_getvcpuinfo = op.u.get();
            let d = target_mut(hv, id)?;
            if i.vcpu >= d.max_vcpus() {
                return Err(Errno::EINVAL);
            }
            let v = d.vcpu(i.vcpu).ok_or(Errno::ESRCH)?;
            i.online = u8::from(v.online);
            i.blocked = u8::from(v.blocked);
            i.running = u8::from(v.running);
            i.cpu_time = v.run_time_ns;
            // The physical CPU is not tracked per vCPU (the queue is shared).
            i.cpu = 0;
            op.u.set(&i);
            Ok(Copyback::Yes)
        }
        (XEN_DOMCTL_scheduler_op, Some(id)) => {
            let mut s: xen_domctl_scheduler_op = op.u.get();
            let d = target_mut(hv, id)?;
            let r = scheduler_op(d, &mut s);
            // Xen copies the whole domctl back whatever the result.
            op.u.set(&s);
            if r.is_err() {
                copy_back(guest, op_gva, op);
            }
            r.map(|()| Copyback::Yes)
        }
        (XEN_DOMCTL_gethvmcontext | XEN_DOMCTL_sethvmcontext, Some(id)) => {
            let mut c: xen_domctl_hvmcontext = op.u.get();
            let cpuid1 = ext.host_facts().cpuid1_eax;
            let gpaddr_bits = hv.domains.caps().gpaddr_bits;
            let d = target_mut(hv, id)?;
            if id == caller.domid || !d.is_hvm() {
                if op.cmd == XEN_DOMCTL_gethvmcontext {
                    copy_back(guest, op_gva, op);
                }
                return Err(Errno::EINVAL);
            }
            if op.cmd == XEN_DOMCTL_sethvmcontext {
                if c.size > hvm_save::MAX_CONTEXT_BYTES {
                    return Err(Errno::ENOMEM);
                }
                let mut buf = vec![0u8; c.size as usize];
                guest.copy_from_guest(c.buffer, &mut buf)?;
                hvm_save::load(d, &buf, gpaddr_bits)?;
                return Ok(Copyback::No);
            }
            // gethvmcontext: NULL buffer asks for the size; the domctl always
            // goes back (Xen's `copyback = true` at its out label).
            let need = hvm_save::save_size(d);
            let r = if c.buffer == 0 {
                c.size = need;
                Ok(())
            } else if c.size < need {
                Err(Errno::ENOSPC)
            } else {
                let data = hvm_save::save(d, cpuid1);
                c.size = data.len() as u32;
                guest.copy_to_guest(c.buffer, &data)
            };
            op.u.set(&c);
            match r {
                Ok(()) => Ok(Copyback::Yes),
                Err(e) => {
                    copy_back(guest, op_gva, op);
                    Err(e)
                }
            }
        }
        (XEN_DOMCTL_max_mem, Some(id)) => {
            let kb = op.u.get::<xen_domctl_max_mem>().max_memkb;
            // Pages of 4 KiB; Xen keeps max_pages in an unsigned int (saturating).
            target_mut(hv, id)?.max_pages = (kb >> 2).min(u64::from(u32::MAX));
            Ok(Copyback::No)
        }
        (XEN_DOMCTL_get_cpu_policy, Some(id)) => {
            let mut p: xen_domctl_cpu_policy = op.u.get();
            let d = target_mut(hv, id)?;
            if p.leaves == 0 {
                p.nr_leaves = CPUID_MAX_SERIALISED_LEAVES;
            } else {
                let leaves = d.cpu_policy.cpuid.serialise();
                entries_to_guest(guest, p.leaves, &leaves, &mut p.nr_leaves)?;
            }
            if p.msrs == 0 {
                p.nr_msrs = MSR_MAX_SERIALISED_ENTRIES;
            } else {
                let msrs = d.cpu_policy.msr.serialise();
                entries_to_guest(guest, p.msrs, &msrs, &mut p.nr_msrs)?;
            }
            op.u.set(&p);
            Ok(Copyback::Yes)
        }
        (XEN_DOMCTL_set_cpu_policy, Some(id)) => {
            if id == caller.domid {
                return Err(Errno::EINVAL);
            }
            let max = hv.domains.cpu_policies().hvm_max.clone();
            let d = target_mut(hv, id)?;
            // No changing once the domain has run.
            if d.creation_finished {
                return Err(Errno::EEXIST);
            }
            let mut p: xen_domctl_cpu_policy = op.u.get();
            let mut err = PolicyErrors::NONE;
            let r = buffer::update_from_guest_arrays(
                &mut d.cpu_policy,
                &max,
                guest,
                (p.leaves, p.nr_leaves),
                (p.msrs, p.nr_msrs),
                &mut err,
            );
            match r {
                Ok(()) => Ok(Copyback::No),
                Err(e) => {
                    p.err_leaf = err.leaf;
                    p.err_subleaf = err.subleaf;
                    p.err_msr = err.msr;
                    op.u.set(&p);
                    Ok(Copyback::Error(e))
                }
            }
        }
        (cmd, _) => {
            info!(
                "d{}: domctl {cmd} is not implemented by this hypervisor",
                caller.domid
            );
            Err(Errno::ENOSYS)
        }
    }
}

/// Xen copies the domctl back even when some commands fail (its `copyback` is
/// set before the error); the error stays the answer.
fn copy_back(guest: &mut dyn GuestAccess, gva: u64, op: &xen_domctl) {
    let _ = copy_to_guest(guest, gva, op);
}

/// `sched_adjust()` with credit2's `csched2_dom_cntl()`: the scheduler id must be
/// credit2 (the only one here, as 4.17's default); per-vCPU commands are not
/// supported by credit2 (`-EINVAL`); a weight of 0 and a cap of 0 leave the
/// weight / remove the cap; a cap above 100 per vCPU is `-EINVAL`.
fn scheduler_op(d: &mut Domain, s: &mut xen_domctl_scheduler_op) -> XenResult<()> {
    if s.sched_id != XEN_SCHEDULER_CREDIT2 {
        return Err(Errno::EINVAL);
    }
    match s.cmd {
        XEN_DOMCTL_SCHEDOP_getinfo => {
            let c =
                s.u.member_mut::<xen_public_abi::domctl::xen_domctl_sched_credit2>();
            c.weight = d.ctl.weight;
            c.cap = d.ctl.cap;
            Ok(())
        }
        XEN_DOMCTL_SCHEDOP_putinfo => {
            let c =
                s.u.get::<xen_public_abi::domctl::xen_domctl_sched_credit2>();
            if c.weight != 0 {
                d.ctl.weight = c.weight;
            }
            if c.cap != 0 {
                if u32::from(c.cap) > 100 * d.vcpus.len() as u32 {
                    return Err(Errno::EINVAL);
                }
                d.ctl.cap = c.cap;
            } else {
                d.ctl.cap = 0;
            }
            Ok(())
        }
        XEN_DOMCTL_SCHEDOP_putvcpuinfo | XEN_DOMCTL_SCHEDOP_getvcpuinfo => Err(Errno::EINVAL),
        _ => Err(Errno::EINVAL),
    }
}

/// `xenctl_bitmap_to_bitmap()` for a CPU mask of `nr_cpus` bits.
fn read_cpumask(g: &mut dyn GuestAccess, b: &xenctl_bitmap, nr_cpus: u32) -> XenResult<u64> {
    let guest_bytes = b.nr_bits.div_ceil(8) as usize;
    let xen_bytes = nr_cpus.div_ceil(8) as usize;
    let copy = guest_bytes.min(xen_bytes);
    let mut bytes = [0u8; 8];
    if copy != 0 {
        g.copy_from_guest(b.bitmap, &mut bytes[..copy])?;
        if b.nr_bits & 7 != 0 && guest_bytes == copy {
            bytes[copy - 1] &= !(0xffu8 << (b.nr_bits & 7));
        }
    }
    let all = if nr_cpus >= 64 {
        u64::MAX
    } else {
        (1u64 << nr_cpus) - 1
    };
    Ok(u64::from_le_bytes(bytes) & all)
}

/// `bitmap_to_xenctl_bitmap()`: the mask, then zeros up to the guest's size.
fn write_cpumask(
    g: &mut dyn GuestAccess,
    b: &xenctl_bitmap,
    mask: u64,
    nr_cpus: u32,
) -> XenResult<()> {
    let guest_bytes = b.nr_bits.div_ceil(8) as usize;
    let xen_bytes = nr_cpus.div_ceil(8) as usize;
    let copy = guest_bytes.min(xen_bytes);
    if copy != 0 {
        g.copy_to_guest(b.bitmap, &mask.to_le_bytes()[..copy])?;
    }
    // Bounded: the rest of the guest's bitmap, in chunks.
    let mut at = copy;
    let zeros = [0u8; 64];
    while at < guest_bytes {
        let n = (guest_bytes - at).min(zeros.len());
        g.copy_to_guest(b.bitmap.wrapping_add(at as u64), &zeros[..n])?;
        at += n;
    }
    Ok(())
}

/// `vcpu_affinity_domctl()` (4.17): vCPU id below `max_vcpus` (`-EINVAL`) and
/// created (`-ESRCH`); flags must ask for hard and/or soft with a non-NULL
/// bitmap (`-EINVAL`); a hard affinity with no online CPU is `-EINVAL`; the
/// effective masks are written back (hard ∩ online, soft ∩ hard ∩ online).
fn vcpu_affinity(
    d: &mut Domain,
    cmd: u32,
    a: &mut xen_domctl_vcpuaffinity,
    nr_cpus: u32,
    g: &mut dyn GuestAccess,
) -> XenResult<()> {
    if a.vcpu >= d.max_vcpus() {
        return Err(Errno::EINVAL);
    }
    if d.vcpu(a.vcpu).is_none() {
        return Err(Errno::ESRCH);
    }
    let hard = a.flags & XEN_VCPUAFFINITY_HARD != 0;
    let soft = a.flags & XEN_VCPUAFFINITY_SOFT != 0;
    if a.flags == 0 || (hard && a.cpumap_hard.bitmap == 0) || (soft && a.cpumap_soft.bitmap == 0) {
        return Err(Errno::EINVAL);
    }
    let online = if nr_cpus >= 64 {
        u64::MAX
    } else {
        (1u64 << nr_cpus) - 1
    };
    let i = a.vcpu as usize;
    if d.ctl.hard_affinity.len() <= i {
        d.ctl.hard_affinity.resize(i + 1, u64::MAX);
        d.ctl.soft_affinity.resize(i + 1, u64::MAX);
    }
    if cmd == XEN_DOMCTL_getvcpuaffinity {
        if hard {
            write_cpumask(g, &a.cpumap_hard, d.ctl.hard_affinity[i], nr_cpus)?;
        }
        if soft {
            write_cpumask(g, &a.cpumap_soft, d.ctl.soft_affinity[i], nr_cpus)?;
        }
        return Ok(());
    }
    let old_hard = d.ctl.hard_affinity[i];
    if hard {
        let m = read_cpumask(g, &a.cpumap_hard, nr_cpus)?;
        if m & online == 0 {
            return Err(Errno::EINVAL);
        }
        d.ctl.hard_affinity[i] = m;
        write_cpumask(g, &a.cpumap_hard, m & online, nr_cpus)?;
    }
    if soft {
        let m = match read_cpumask(g, &a.cpumap_soft, nr_cpus) {
            Ok(m) => m,
            Err(e) => {
                d.ctl.hard_affinity[i] = old_hard;
                return Err(e);
            }
        };
        d.ctl.soft_affinity[i] = m;
        write_cpumask(
            g,
            &a.cpumap_soft,
            m & online & d.ctl.hard_affinity[i],
            nr_cpus,
        )?;
    }
    Ok(())
}

fn target_mut(hv: &mut Hypervisor, id: domid_t) -> XenResult<&mut Domain> {
    hv.domains.get_mut(id).ok_or(Errno::ESRCH)
}

/// `XEN_DOMCTL_getdomaininfo` (4.17): the domain with that id, or else the first
/// one above it; reserved ids are `-EINVAL`; a privileged or xenstore caller only.
fn getdomaininfo_op(
    hv: &mut Hypervisor,
    caller: Caller,
    op: &mut xen_domctl,
) -> XenResult<Copyback> {
    if hv.domains.get(op.domain).is_none() && op.domain >= DOMID_FIRST_RESERVED {
        return Err(Errno::EINVAL);
    }
    let d = hv
        .domains
        .first_at_or_above(op.domain)
        .ok_or(Errno::ESRCH)?;
    let allowed = hv
        .domains
        .get(caller.domid)
        .is_some_and(|c| c.is_privileged || c.is_xenstore());
    if !allowed {
        return Err(Errno::EPERM);
    }
    let info = getdomaininfo(d, hv.domains.caps().gpaddr_bits);
    op.domain = info.domain;
    op.u.set(&info);
    Ok(Copyback::Yes)
}

/// `XEN_DOMCTL_max_vcpus`: the value is fixed at createdomain; this creates the
/// vCPU structures `0..max` (idempotent). Not on the caller itself.
fn max_vcpus(
    hv: &mut Hypervisor,
    ext: &mut dyn ExtHandlers,
    caller: Caller,
    id: domid_t,
    max: u32,
) -> XenResult<()> {
    let d = target_mut(hv, id)?;
    if id == caller.domid || max != d.max_vcpus() {
        return Err(Errno::EINVAL);
    }
    create_vcpus(d, ext)
}

/// Create the vCPU structures `0..max_vcpus` that do not exist yet, each through
/// [`ExtHandlers::vcpu_create`] (a failure is `-ENOMEM`; the vCPUs created
/// before it stay). The vCPUs start down. `XEN_DOMCTL_max_vcpus` uses this, and
/// so does the boot code for the domains it builds.
pub fn create_vcpus(d: &mut Domain, ext: &mut dyn ExtHandlers) -> XenResult<()> {
    for i in d.vcpus.len() as u32..d.max_vcpus() {
        ext.vcpu_create(d, i).map_err(|_| Errno::ENOMEM)?;
        d.vcpus.push(Vcpu::new(i));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::common::domain::HostCaps;
    use crate::common::guest_access::fake::FakeMemory;
    use crate::common::guest_access::GuestMemory;
    use crate::common::hypercall::{do_hypercall, NoExt};
    use crate::common::test_support::*;
    use alloc::vec::Vec;
    use xen_public_abi::domctl::{XEN_DOMCTL_CDF_hvm, XEN_DOMCTL_CDF_xs_domain};
    use xen_public_abi::xen::{__HYPERVISOR_domctl, DOMID_SELF};
    use zerocopy::IntoBytes;

    const ESRCH: i64 = -3;
    const EPERM: i64 = -1;
    const EINVAL: i64 = -22;
    const EACCES: i64 = -13;
    const ENOSYS: i64 = -38;
    const EFAULT: i64 = -14;
    const NONEXISTENT: domid_t = 30000;

    fn info(env: &mut Env, caller: domid_t, dom: domid_t) -> (i64, xen_domctl_getdomaininfo) {
        let (rc, op) = env.domctl(caller, &domctl_op(XEN_DOMCTL_getdomaininfo, dom));
        (rc, op.u.get())
    }

    fn max_vcpus_op(dom: domid_t, max: u32) -> xen_domctl {
        let mut op = domctl_op(XEN_DOMCTL_max_vcpus, dom);
        op.u.set(&xen_domctl_max_vcpus { max });
        op
    }

    fn max_mem_op(dom: domid_t, kb: u64) -> xen_domctl {
        let mut op = domctl_op(XEN_DOMCTL_max_mem, dom);
        op.u.set(&xen_domctl_max_mem { max_memkb: kb });
        op
    }

    /// Oracle A.4: a wrong interface version is -EACCES for any command, and
    /// does not consume a domain id.
    #[test]
    fn interface_version() {
        let mut env = Env::new();
        for v in [0x14, 0x16, 0] {
            let mut op = createdomain_op(&baseline(), 0);
            op.interface_version = v;
            assert_eq!(env.domctl(0, &op).0, EACCES, "version {v:#x}");
            let mut op = domctl_op(XEN_DOMCTL_getdomaininfo, 0);
            op.interface_version = v;
            assert_eq!(env.domctl(0, &op).0, EACCES);
            // Even from an unprivileged caller or for a missing domain.
            let mut op = domctl_op(XEN_DOMCTL_pausedomain, NONEXISTENT);
            op.interface_version = v;
            assert_eq!(env.domctl(0, &op).0, EACCES);
        }
        assert_eq!(env.create(&baseline(), 0), (0, 1), "no id consumed");
    }

    /// Oracle A via the hypercall: accepted, refused, and the id copied back.
    #[test]
    fn createdomain_through_the_hypercall() {
        let mut env = Env::new();
        let frames = env.frames.outstanding();
        assert_eq!(env.create(&baseline(), 0), (0, 1));
        let mut bad = baseline();
        bad.flags |= 1 << 12;
        // A refused create leaves `domain` as it was (no copyback) and holds nothing.
        assert_eq!(env.create(&bad, 0), (EINVAL, 0));
        let mut nohap = baseline();
        nohap.flags = XEN_DOMCTL_CDF_hvm;
        assert_eq!(env.create(&nohap, 0).0, -95);
        let mut pool = baseline();
        pool.cpupool_id = 5;
        assert_eq!(env.create(&pool, 0).0, ESRCH);
        assert_eq!(env.frames.outstanding(), frames + 1);
        assert_eq!(env.hv.domains.len(), 2);
        // The three refusals consumed ids 2, 3, 4.
        assert_eq!(env.create(&baseline(), 0), (0, 5));
        assert_eq!(env.create(&baseline(), 5).0, -17);
    }

    /// A domU may not use domctl: -EPERM, after the lookup (4.17 order).
    #[test]
    fn privilege() {
        let mut env = Env::new();
        let (_, u) = env.create(&baseline(), 0);
        let (_, v) = env.create(&baseline(), 0);
        assert_eq!(env.domctl(u, &createdomain_op(&baseline(), 0)).0, EPERM);
        for cmd in [
            XEN_DOMCTL_pausedomain,
            XEN_DOMCTL_unpausedomain,
            XEN_DOMCTL_destroydomain,
            9999,
        ] {
            assert_eq!(env.simple(u, cmd, v), EPERM, "cmd {cmd}");
            assert_eq!(env.simple(u, cmd, 0), EPERM, "cmd {cmd} on dom0");
            assert_eq!(
                env.simple(u, cmd, NONEXISTENT),
                ESRCH,
                "cmd {cmd}: lookup first"
            );
        }
        assert_eq!(env.domctl(u, &max_vcpus_op(v, 1)).0, EPERM);
        assert_eq!(env.domctl(u, &max_mem_op(v, 1024)).0, EPERM);
        assert_eq!(info(&mut env, u, v).0, EPERM);
        assert_eq!(info(&mut env, u, NONEXISTENT).0, ESRCH);
        // Nothing changed, and the refused create consumed no id.
        assert_eq!(env.hv.domains.get(v).unwrap().controller_pause_count, 1);
        assert_eq!(env.create(&baseline(), 0), (0, 3));
    }

    /// getdomaininfo is also open to a xenstore domain (XSM_XS_PRIV).
    #[test]
    fn xenstore_domain_may_getdomaininfo() {
        let mut env = Env::new();
        let mut xs = baseline();
        xs.flags |= XEN_DOMCTL_CDF_xs_domain;
        let (_, x) = env.create(&xs, 0);
        let (rc, i) = info(&mut env, x, 0);
        assert_eq!((rc, i.domain), (0, 0));
        assert_eq!(env.simple(x, XEN_DOMCTL_pausedomain, 0), EPERM);
        assert_eq!(
            info(&mut env, 0, x).1.flags & XEN_DOMINF_xs_domain,
            XEN_DOMINF_xs_domain
        );
    }

    /// Oracle B, in order: create → getdomaininfo → pause ×2 → unpause ×4 →
    /// max_vcpus → max_mem → unknown commands → dom0 on itself → destroy →
    /// the id is free again.
    #[test]
    fn lifecycle() {
        let mut env = Env::new();
        let frames = env.frames.outstanding();
        let (rc, u) = env.create(&baseline(), 0);
        assert_eq!(rc, 0);

        let (rc, i) = info(&mut env, 0, u);
        assert_eq!(rc, 0);
        assert_eq!(i.domain, u);
        assert_eq!(i.flags, 0xffff_010a, "paused|hvm|hap, shutdown code none");
        assert_eq!((i.tot_pages, i.max_pages, i.nr_online_vcpus), (0, 0, 0));
        assert_eq!(i.max_vcpu_id, XEN_INVALID_MAX_VCPU_ID);
        assert_eq!(
            (i.cpupool, i.gpaddr_bits, i.arch_config.emulation_flags),
            (0, 40, 0x1)
        );

        assert_eq!(env.simple(0, XEN_DOMCTL_pausedomain, u), 0);
        assert_eq!(env.simple(0, XEN_DOMCTL_pausedomain, u), 0);
        assert_eq!(info(&mut env, 0, u).1.flags, 0xffff_010a);
        let unpauses: Vec<i64> = (0..4)
            .map(|_| env.simple(0, XEN_DOMCTL_unpausedomain, u))
            .collect();
        assert_eq!(unpauses, [0, 0, 0, EINVAL], "creation counts as one pause");
        assert_eq!(info(&mut env, 0, u).1.flags, 0xffff_0102);
        assert_eq!(env.simple(0, XEN_DOMCTL_pausedomain, u), 0);

        assert_eq!(env.domctl(0, &max_vcpus_op(u, 2)).0, EINVAL);
        assert_eq!(env.domctl(0, &max_vcpus_op(u, 0)).0, EINVAL);
        assert_eq!(env.domctl(0, &max_vcpus_op(u, 1)).0, 0);
        assert_eq!(env.domctl(0, &max_vcpus_op(u, 1)).0, 0);
        let (_, i) = info(&mut env, 0, u);
        assert_eq!((i.nr_online_vcpus, i.max_vcpu_id), (0, 0));

        assert_eq!(env.domctl(0, &max_mem_op(u, 262_144)).0, 0);
        assert_eq!(info(&mut env, 0, u).1.max_pages, 65536);
        assert_eq!(env.domctl(0, &max_mem_op(u, u64::MAX)).0, 0);
        assert_eq!(info(&mut env, 0, u).1.max_pages, 0xffff_ffff, "saturates");
        assert_eq!(env.domctl(0, &max_mem_op(u, 0)).0, 0);
        assert_eq!(info(&mut env, 0, u).1.max_pages, 0);

        assert_eq!(env.simple(0, 9999, u), ENOSYS);
        assert_eq!(env.simple(0, 0, u), ENOSYS);
        assert_eq!(env.simple(0, 9999, NONEXISTENT), ESRCH);

        assert_eq!(env.simple(0, XEN_DOMCTL_unpausedomain, 0), EINVAL);
        assert_eq!(env.simple(0, XEN_DOMCTL_pausedomain, 0), EINVAL);
        assert_eq!(env.simple(0, XEN_DOMCTL_destroydomain, 0), EINVAL);
        assert_eq!(
            env.domctl(0, &max_vcpus_op(0, 2)).0,
            EINVAL,
            "not on itself"
        );
        assert!(
            env.hv.domains.get(0).unwrap().is_runnable(),
            "dom0 keeps running"
        );
        assert_eq!(env.simple(0, XEN_DOMCTL_pausedomain, DOMID_SELF), ESRCH);
        assert_eq!(env.simple(0, XEN_DOMCTL_unpausedomain, DOMID_SELF), ESRCH);
        assert_eq!(info(&mut env, 0, DOMID_SELF).0, EINVAL);

        assert_eq!(env.simple(0, XEN_DOMCTL_destroydomain, u), 0);
        assert_eq!(info(&mut env, 0, u).0, ESRCH, "it was the highest domain");
        assert_eq!(env.simple(0, XEN_DOMCTL_destroydomain, u), ESRCH);
        assert_eq!(env.simple(0, XEN_DOMCTL_pausedomain, u), ESRCH);
        assert_eq!(env.frames.outstanding(), frames, "every frame returned");
        for cmd in [
            XEN_DOMCTL_pausedomain,
            XEN_DOMCTL_unpausedomain,
            XEN_DOMCTL_destroydomain,
        ] {
            assert_eq!(env.simple(0, cmd, NONEXISTENT), ESRCH);
        }
        assert_eq!(info(&mut env, 0, NONEXISTENT).0, ESRCH);
        assert_eq!(
            env.create(&baseline(), u),
            (0, u),
            "the id is reusable at once"
        );
    }

    #[test]
    fn getdomaininfo_views() {
        let mut env = Env::new();
        env.hv.domains.get_mut(0).unwrap().max_pages = u64::from(u32::MAX);
        let (_, i) = info(&mut env, 0, 0);
        assert_eq!(i.flags, 0xffff_0122, "dom0: running|hvm|hap");
        assert_eq!((i.nr_online_vcpus, i.max_vcpu_id), (1, 1));
        assert_eq!(i.arch_config.emulation_flags, 0x411);
        assert_eq!(i.max_pages, 0xffff_ffff);

        let mut pv = baseline();
        pv.flags = 0;
        pv.arch.emulation_flags = 0;
        let (_, p) = env.create(&pv, 0);
        let (_, i) = info(&mut env, 0, p);
        assert_eq!(
            (i.flags, i.gpaddr_bits),
            (0xffff_0008, 40),
            "PV: paused only"
        );

        // A missing id below an existing domain returns the next one (4.17).
        let (_, hi) = env.create(&baseline(), 7);
        let (rc, op) = env.domctl(0, &domctl_op(XEN_DOMCTL_getdomaininfo, 3));
        assert_eq!(
            (rc, op.domain, op.u.get::<xen_domctl_getdomaininfo>().domain),
            (0, hi, hi)
        );
        assert_eq!(info(&mut env, 0, hi + 1).0, ESRCH);
        assert_eq!(info(&mut env, 0, 0x7fef).0, ESRCH);

        // Handle and ssidref: the handle as given, ssidref 0 (no XSM).
        let mut h = baseline();
        h.handle = *b"0123456789abcdef";
        h.ssidref = 42;
        let (_, hd) = env.create(&h, 0);
        let (_, i) = info(&mut env, 0, hd);
        assert_eq!((i.handle, i.ssidref), (*b"0123456789abcdef", 0));
    }

    /// blocked only if every online vCPU is, running if any is, neither without
    /// online vCPUs; cpu_time sums the vCPUs; shutdown bit and code.
    #[test]
    fn getdomaininfo_vcpu_and_shutdown_flags() {
        let mut env = Env::new();
        let (_, u) = env.create(&baseline(), 0);
        let mut two = baseline();
        two.max_vcpus = 2;
        let (_, w) = env.create(&two, 0);
        assert_eq!(env.domctl(0, &max_vcpus_op(w, 2)).0, 0);
        {
            let d = env.hv.domains.get_mut(w).unwrap();
            d.unpause_by_systemcontroller().unwrap();
            d.vcpus[0].online = true;
            d.vcpus[0].blocked = true;
            d.vcpus[0].run_time_ns = 5;
            d.vcpus[1].run_time_ns = 7;
        }
        let (_, i) = info(&mut env, 0, w);
        assert_eq!(i.flags & 0xff, XEN_DOMINF_hvm_guest | XEN_DOMINF_blocked);
        assert_eq!((i.cpu_time, i.nr_online_vcpus, i.max_vcpu_id), (12, 1, 1));
        {
            let d = env.hv.domains.get_mut(w).unwrap();
            d.vcpus[1].online = true;
            d.vcpus[1].running = true;
        }
        let (_, i) = info(&mut env, 0, w);
        assert_eq!(i.flags & 0xff, XEN_DOMINF_hvm_guest | XEN_DOMINF_running);
        env.hv.domains.get_mut(u).unwrap().shutdown(3);
        let (_, i) = info(&mut env, 0, u);
        assert_eq!(
            i.flags,
            (3 << 16) | 0x10e,
            "shutdown|paused|hvm|hap, code 3"
        );
    }

    /// Every domctl takes a pointer: a bad one is -EFAULT and changes nothing.
    #[test]
    fn bad_pointers() {
        let mut env = Env::new();
        for gva in [BAD_GVA, HOLE_GVA, MEM_SIZE as u64 - 8, u64::MAX] {
            assert_eq!(
                env.hypercall(0, __HYPERVISOR_domctl, [gva, 0, 0, 0, 0]),
                EFAULT
            );
        }
        assert_eq!(env.hv.domains.len(), 1);
    }

    /// Guest memory that can be read but not written: the copyback fails.
    struct ReadOnly(FakeMemory);
    impl GuestAccess for ReadOnly {
        fn copy_from_guest(&mut self, gva: u64, buf: &mut [u8]) -> XenResult<()> {
            self.0.copy_from_guest(gva, buf)
        }
        fn copy_to_guest(&mut self, _gva: u64, _buf: &[u8]) -> XenResult<()> {
            Err(Errno::EFAULT)
        }
    }

    /// Xen writes the result back after doing the work: a failed copyback is
    /// -EFAULT, but the domain exists (the toolstack finds it by handle).
    #[test]
    fn failed_copyback() {
        let mut env = Env::new();
        env.put(ARG_GVA, &createdomain_op(&baseline(), 0));
        let mut ro = ReadOnly(core::mem::replace(&mut env.mem, FakeMemory::new(0)));
        let caller = Caller { domid: 0, vcpu: 0 };
        let rc = do_hypercall(
            &mut env.hv,
            &mut NoExt,
            caller,
            36,
            [ARG_GVA, 0, 0, 0, 0],
            &mut ro,
        );
        assert_eq!(rc, EFAULT);
        assert!(env.hv.domains.get(1).is_some());
        ro.0.write_gpa(ARG_GVA, domctl_op(XEN_DOMCTL_getdomaininfo, 1).as_bytes())
            .unwrap();
        let rc = do_hypercall(
            &mut env.hv,
            &mut NoExt,
            caller,
            36,
            [ARG_GVA, 0, 0, 0, 0],
            &mut ro,
        );
        assert_eq!(rc, EFAULT);
        // Commands without copyback do not write.
        ro.0.write_gpa(ARG_GVA, domctl_op(XEN_DOMCTL_unpausedomain, 1).as_bytes())
            .unwrap();
        let rc = do_hypercall(
            &mut env.hv,
            &mut NoExt,
            caller,
            36,
            [ARG_GVA, 0, 0, 0, 0],
            &mut ro,
        );
        assert_eq!(rc, 0);
    }

    /// The external hooks: destroy tells the other mechanisms first; a vCPU
    /// the backend cannot create is -ENOMEM.
    #[test]
    fn ext_hooks() {
        #[derive(Default)]
        struct Hooks {
            destroyed: Vec<domid_t>,
            fail_vcpu: Option<u32>,
        }
        impl ExtHandlers for Hooks {
            fn domain_destroy(
                &mut self,
                domains: &mut crate::common::domain::DomainTable,
                id: domid_t,
            ) {
                assert!(domains.get(id).is_some(), "still in the table");
                self.destroyed.push(id);
            }
            fn vcpu_create(&mut self, _d: &mut Domain, vcpu: u32) -> XenResult<()> {
                if Some(vcpu) == self.fail_vcpu {
                    Err(Errno::ENOMEM)
                } else {
                    Ok(())
                }
            }
        }
        let mut env = Env::new();
        let mut four = baseline();
        four.max_vcpus = 4;
        let (_, u) = env.create(&four, 0);
        let mut hooks = Hooks {
            fail_vcpu: Some(2),
            ..Hooks::default()
        };
        let caller = Caller { domid: 0, vcpu: 0 };
        env.put(ARG_GVA, &max_vcpus_op(u, 4));
        let rc = do_hypercall(
            &mut env.hv,
            &mut hooks,
            caller,
            36,
            [ARG_GVA, 0, 0, 0, 0],
            &mut env.mem,
        );
        assert_eq!(rc, -12);
        assert_eq!(
            env.hv.domains.get(u).unwrap().vcpus.len(),
            2,
            "vCPUs 0 and 1 stay"
        );
        hooks.fail_vcpu = None;
        let rc = do_hypercall(
            &mut env.hv,
            &mut hooks,
            caller,
            36,
            [ARG_GVA, 0, 0, 0, 0],
            &mut env.mem,
        );
        assert_eq!(rc, 0);
        assert_eq!(env.hv.domains.get(u).unwrap().vcpus.len(), 4);
        env.put(ARG_GVA, &domctl_op(XEN_DOMCTL_destroydomain, u));
        let rc = do_hypercall(
            &mut env.hv,
            &mut hooks,
            caller,
            36,
            [ARG_GVA, 0, 0, 0, 0],
            &mut env.mem,
        );
        // Once when it starts dying, once before it leaves the table (ports a
        // privileged caller made for it in between).
        assert_eq!((rc, hooks.destroyed.as_slice()), (0, [u, u].as_slice()));
    }

    #[test]
    fn caps_reach_getdomaininfo() {
        let mut caps = HostCaps::THIS_HYPERVISOR;
        caps.gpaddr_bits = 48;
        let mut env = Env::with_caps(caps);
        assert_eq!(info(&mut env, 0, 0).1.gpaddr_bits, 48);
    }

    // ---- the toolstack's build-time domctls (libxl__build_pre, vcpu_hvm) ----

    /// A domU with its vCPUs created (`max_vcpus`), as the builder has it.
    fn built(env: &mut Env, vcpus: u32) -> domid_t {
        let mut cfg = baseline();
        cfg.max_vcpus = vcpus;
        let (_, u) = env.create(&cfg, 0);
        assert_eq!(env.domctl(0, &max_vcpus_op(u, vcpus)).0, 0);
        u
    }

    /// Issue 14: `destroydomain` gives a big domain's pages back in bounded
    /// steps (Xen's `-ERESTART` from `domain_kill`); between the entries the
    /// domain is dying (getdomaininfo says so, it cannot run or get pages), and
    /// the caller sees one call that gives every frame back.
    #[test]
    fn destroy_is_preempted_and_gives_everything_back() {
        use crate::common::hypercall::{hypercall_entry, HypercallOutcome};
        let mut env = Env::new();
        let mark = env.frames.outstanding();
        let u = built(&mut env, 1);
        env.hv.domains.get_mut(u).unwrap().max_pages = 2000;
        for _ in 0..2000 {
            env.hv.domains.alloc_domheap_page(u).unwrap();
        }
        env.put(ARG_GVA, &domctl_op(XEN_DOMCTL_destroydomain, u));
        let caller = Caller { domid: 0, vcpu: 0 };
        let mut entries = 0;
        loop {
            entries += 1;
            let out = hypercall_entry(
                &mut env.hv,
                &mut NoExt,
                caller,
                __HYPERVISOR_domctl.into(),
                [ARG_GVA, 0, 0, 0, 0],
                &mut env.mem,
            );
            match out {
                HypercallOutcome::Done(rc) => {
                    assert_eq!(rc, 0);
                    break;
                }
                HypercallOutcome::Continue(c) => {
                    assert_eq!(c.number, __HYPERVISOR_domctl);
                    assert_eq!(c.args, [ARG_GVA, 0, 0, 0, 0], "re-entered as is");
                    let d = env.hv.domains.get(u).unwrap();
                    assert!(d.is_dying && !d.is_runnable());
                    let left = 2000 - entries * DESTROY_PAGES_PER_CALL;
                    assert_eq!(d.tot_pages(), left as u64, "bounded work per entry");
                    assert_eq!(
                        env.hv.domains.alloc_domheap_page(u),
                        Err(Errno::EINVAL),
                        "no pages for a dying domain"
                    );
                    let (rc, i) = info(&mut env, 0, u);
                    assert_eq!(rc, 0);
                    assert_ne!(i.flags & XEN_DOMINF_dying, 0);
                    // The toolstack's ops still answer between entries.
                    assert_eq!(env.simple(0, XEN_DOMCTL_pausedomain, u), 0);
                    env.put(ARG_GVA, &domctl_op(XEN_DOMCTL_destroydomain, u));
                }
            }
        }
        assert_eq!(entries, 4, "2000 pages at 512 per entry");
        assert!(env.hv.domains.get(u).is_none());
        assert_eq!(env.frames.outstanding(), mark, "every frame back");
        assert_eq!(env.simple(0, XEN_DOMCTL_destroydomain, u), ESRCH);
    }

    /// Issue 14: 1000 create/populate/destroy cycles leak no frame and no heap.
    #[test]
    fn thousand_create_destroy_cycles_leak_nothing() {
        use crate::test_alloc::live_bytes;
        let mut env = Env::new();
        // One cycle first: lazily built tables (domain ids, log buckets) exist.
        let cycle = |env: &mut Env| {
            let u = built(env, 2);
            env.hv.domains.get_mut(u).unwrap().max_pages = 600;
            for _ in 0..600 {
                env.hv.domains.alloc_domheap_page(u).unwrap();
            }
            assert_eq!(env.simple(0, XEN_DOMCTL_unpausedomain, u), 0);
            assert_eq!(env.simple(0, XEN_DOMCTL_destroydomain, u), 0);
            assert!(env.hv.domains.get(u).is_none());
        };
        cycle(&mut env);
        let frames = env.frames.outstanding();
        let heap = live_bytes();
        for _ in 0..1000 {
            cycle(&mut env);
        }
        assert_eq!(env.frames.outstanding(), frames, "frames leaked");
        assert_eq!(live_bytes(), heap, "heap leaked");
    }

    fn tsc_op(dom: domid_t, mode: u32, khz: u32) -> xen_domctl {
        let mut op = domctl_op(XEN_DOMCTL_settscinfo, dom);
        op.u.set(&xen_domctl_tsc_info {
            tsc_mode: mode,
            gtsc_khz: khz,
            incarnation: 7,
            pad: 0,
            elapsed_nsec: 0,
        });
        op
    }

    #[test]
    fn settscinfo() {
        let mut env = Env::new();
        let u = built(&mut env, 1);
        for mode in 0..=2 {
            assert_eq!(env.domctl(0, &tsc_op(u, mode, 0)).0, 0, "mode {mode}");
        }
        assert_eq!(
            env.domctl(0, &tsc_op(u, 3, 0)).0,
            EINVAL,
            "PVRDTSCP is gone"
        );
        assert_eq!(env.domctl(0, &tsc_op(u, 0, 1_000_000)).0, 0);
        let c = &env.hv.domains.get(u).unwrap().ctl;
        assert_eq!((c.tsc_mode, c.gtsc_khz, c.incarnation), (0, 1_000_000, 8));
        assert_eq!(env.domctl(0, &tsc_op(0, 0, 0)).0, EINVAL, "not on itself");
        assert_eq!(env.domctl(u, &tsc_op(u, 0, 0)).0, EPERM);
        assert_eq!(env.domctl(0, &tsc_op(NONEXISTENT, 0, 0)).0, ESRCH);
    }

    fn pool_op(cmd: u32, dom: domid_t, size: u64) -> xen_domctl {
        let mut op = domctl_op(cmd, dom);
        op.u.set(&xen_domctl_paging_mempool { size });
        op
    }

    #[test]
    fn paging_mempool_size() {
        let mut env = Env::new();
        let u = built(&mut env, 1);
        let get = |env: &mut Env| {
            let (rc, op) = env.domctl(0, &pool_op(XEN_DOMCTL_get_paging_mempool_size, u, 0));
            (rc, op.u.get::<xen_domctl_paging_mempool>().size)
        };
        assert_eq!(get(&mut env), (0, 1 << 20), "hap_enable's 256 pages");
        let set = XEN_DOMCTL_set_paging_mempool_size;
        assert_eq!(env.domctl(0, &pool_op(set, u, 4 << 20)).0, 0);
        assert_eq!(get(&mut env), (0, 4 << 20));
        assert_eq!(
            env.domctl(0, &pool_op(set, u, 4097)).0,
            EINVAL,
            "not whole pages"
        );
        assert_eq!(
            env.domctl(0, &pool_op(set, u, 1 << 44)).0,
            EINVAL,
            "page count > 32 bits"
        );
        assert_eq!(get(&mut env), (0, 4 << 20), "unchanged");
        let mut pv = baseline();
        pv.flags = 0;
        pv.arch.emulation_flags = 0;
        let (_, p) = env.create(&pv, 0);
        assert_eq!(
            env.domctl(0, &pool_op(set, p, 4096)).0,
            -95,
            "PV: -EOPNOTSUPP"
        );
    }

    fn sched_op(dom: domid_t, id: u32, cmd: u32, weight: u16, cap: u16) -> xen_domctl {
        let mut op = domctl_op(XEN_DOMCTL_scheduler_op, dom);
        let mut s = xen_domctl_scheduler_op::new_zeroed();
        s.sched_id = id;
        s.cmd = cmd;
        s.u.set(&xen_public_abi::domctl::xen_domctl_sched_credit2 { weight, cap });
        op.u.set(&s);
        op
    }

    /// What libxl does: get the credit2 defaults, put them back (with the
    /// config's weight/cap).
    #[test]
    fn scheduler_op_credit2() {
        use xen_public_abi::domctl::xen_domctl_sched_credit2 as C2;
        let mut env = Env::new();
        let u = built(&mut env, 2);
        let get = XEN_DOMCTL_SCHEDOP_getinfo;
        let put = XEN_DOMCTL_SCHEDOP_putinfo;
        let (rc, op) = env.domctl(0, &sched_op(u, XEN_SCHEDULER_CREDIT2, get, 0, 0));
        let c: C2 = op.u.get::<xen_domctl_scheduler_op>().u.get();
        assert_eq!((rc, c.weight, c.cap), (0, 256, 0));
        assert_eq!(
            env.domctl(0, &sched_op(u, XEN_SCHEDULER_CREDIT2, put, 512, 150))
                .0,
            0
        );
        let (_, op) = env.domctl(0, &sched_op(u, XEN_SCHEDULER_CREDIT2, get, 0, 0));
        let c: C2 = op.u.get::<xen_domctl_scheduler_op>().u.get();
        assert_eq!((c.weight, c.cap), (512, 150));
        // Weight 0 keeps the weight; cap 0 removes the cap; cap > 100/vCPU refused.
        assert_eq!(
            env.domctl(0, &sched_op(u, XEN_SCHEDULER_CREDIT2, put, 0, 0))
                .0,
            0
        );
        let c = &env.hv.domains.get(u).unwrap().ctl;
        assert_eq!((c.weight, c.cap), (512, 0));
        assert_eq!(
            env.domctl(0, &sched_op(u, XEN_SCHEDULER_CREDIT2, put, 0, 201))
                .0,
            EINVAL
        );
        assert_eq!(
            env.domctl(0, &sched_op(u, 5, get, 0, 0)).0,
            EINVAL,
            "credit1"
        );
        for cmd in [
            XEN_DOMCTL_SCHEDOP_putvcpuinfo,
            XEN_DOMCTL_SCHEDOP_getvcpuinfo,
            9,
        ] {
            assert_eq!(
                env.domctl(0, &sched_op(u, 6, cmd, 0, 0)).0,
                EINVAL,
                "cmd {cmd}"
            );
        }
    }

    #[test]
    fn getvcpuinfo() {
        let mut env = Env::new();
        let mut cfg = baseline();
        cfg.max_vcpus = 2;
        let (_, u) = env.create(&cfg, 0);
        let q = |env: &mut Env, v: u32| {
            let mut op = domctl_op(XEN_DOMCTL_getvcpuinfo, u);
            op.u.set(&xen_domctl_getvcpuinfo {
                vcpu: v,
                ..xen_domctl_getvcpuinfo::new_zeroed()
            });
            let (rc, op) = env.domctl(0, &op);
            (rc, op.u.get::<xen_domctl_getvcpuinfo>())
        };
        assert_eq!(q(&mut env, 0).0, ESRCH, "before max_vcpus");
        assert_eq!(q(&mut env, 2).0, EINVAL, ">= max_vcpus");
        assert_eq!(env.domctl(0, &max_vcpus_op(u, 2)).0, 0);
        {
            let d = env.hv.domains.get_mut(u).unwrap();
            d.vcpus[1].online = true;
            d.vcpus[1].blocked = true;
            d.vcpus[1].run_time_ns = 42;
        }
        let (rc, i) = q(&mut env, 0);
        assert_eq!((rc, i.online, i.blocked, i.running), (0, 0, 0, 0));
        let (_, i) = q(&mut env, 1);
        assert_eq!((i.vcpu, i.online, i.blocked, i.cpu_time), (1, 1, 1, 42));
    }

    const MAP_GVA: u64 = 0x3000;

    fn aff_op(dom: domid_t, cmd: u32, vcpu: u32, flags: u32, bits: u32) -> xen_domctl {
        let mut op = domctl_op(cmd, dom);
        let map = |at| xenctl_bitmap {
            bitmap: at,
            nr_bits: bits,
            _implicit0: [0; 4],
        };
        op.u.set(&xen_domctl_vcpuaffinity {
            vcpu,
            flags,
            cpumap_hard: map(MAP_GVA),
            cpumap_soft: map(MAP_GVA + 0x100),
        });
        op
    }

    #[test]
    fn vcpu_affinity() {
        let mut env = Env::new();
        let u = built(&mut env, 2);
        let (set, get) = (XEN_DOMCTL_setvcpuaffinity, XEN_DOMCTL_getvcpuaffinity);
        let both = XEN_VCPUAFFINITY_HARD | XEN_VCPUAFFINITY_SOFT;
        // libxl: all CPUs hard and soft (a 128-bit map of ones).
        env.put(MAP_GVA, &[0xffu8; 16]);
        env.put(MAP_GVA + 0x100, &[0xffu8; 16]);
        assert_eq!(env.domctl(0, &aff_op(u, set, 0, both, 128)).0, 0);
        // Written back: the effective masks (one CPU online with NoExt), zero-filled.
        assert_eq!(
            env.get::<[u8; 16]>(MAP_GVA),
            [1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]
        );
        assert_eq!(env.get::<[u8; 16]>(MAP_GVA + 0x100)[..2], [1, 0]);
        // No online CPU in the hard mask: -EINVAL.
        env.put(MAP_GVA, &[0xfeu8; 16]);
        assert_eq!(
            env.domctl(0, &aff_op(u, set, 0, XEN_VCPUAFFINITY_HARD, 128))
                .0,
            EINVAL
        );
        assert_eq!(
            env.domctl(0, &aff_op(u, set, 0, 0, 128)).0,
            EINVAL,
            "no flags"
        );
        let mut null = aff_op(u, set, 0, XEN_VCPUAFFINITY_HARD, 128);
        null.u
            .member_mut::<xen_domctl_vcpuaffinity>()
            .cpumap_hard
            .bitmap = 0;
        assert_eq!(env.domctl(0, &null).0, EINVAL, "NULL bitmap");
        assert_eq!(
            env.domctl(0, &aff_op(u, set, 2, both, 128)).0,
            EINVAL,
            "vCPU >= max"
        );
        let mut bad = aff_op(u, set, 0, XEN_VCPUAFFINITY_HARD, 128);
        bad.u
            .member_mut::<xen_domctl_vcpuaffinity>()
            .cpumap_hard
            .bitmap = HOLE_GVA;
        assert_eq!(env.domctl(0, &bad).0, EFAULT);
        // get: the stored hard mask.
        env.put(MAP_GVA, &[0xaau8; 4]);
        assert_eq!(
            env.domctl(0, &aff_op(u, get, 1, XEN_VCPUAFFINITY_HARD, 32))
                .0,
            0
        );
        assert_eq!(
            env.get::<[u8; 4]>(MAP_GVA),
            [0xff, 0, 0, 0],
            "default: all CPUs"
        );
        let mut cfg = baseline();
        cfg.max_vcpus = 2;
        let (_, w) = env.create(&cfg, 0);
        assert_eq!(
            env.domctl(0, &aff_op(w, get, 0, both, 32)).0,
            ESRCH,
            "no vCPUs yet"
        );
    }

    const CTX_GVA: u64 = 0x4000;

    fn ctx_op(cmd: u32, dom: domid_t, size: u32, buffer: u64) -> xen_domctl {
        let mut op = domctl_op(cmd, dom);
        op.u.set(&xen_domctl_hvmcontext {
            size,
            _implicit0: [0; 4],
            buffer,
        });
        op
    }

    fn set_ctx(env: &mut Env, dom: domid_t, ctx: &[u8]) -> i64 {
        env.mem.write_gpa(CTX_GVA, ctx).unwrap();
        env.domctl(
            0,
            &ctx_op(XEN_DOMCTL_sethvmcontext, dom, ctx.len() as u32, CTX_GVA),
        )
        .0
    }

    /// libxenguest's `vcpu_hvm()` over the hypercall: the size, the context (only
    /// its HEADER is reused), MTRR per vCPU, then CPU#0 → vCPU 0 is up at the
    /// record's state and unpause makes it runnable.
    #[test]
    fn hvm_context_the_builder_way() {
        use xen_public_abi::hvm::save::{hvm_hw_mtrr, HVM_SAVE_CODE_CPU, HVM_SAVE_CODE_MTRR};
        let mut env = Env::new();
        let u = built(&mut env, 2);
        let get = XEN_DOMCTL_gethvmcontext;
        let (rc, op) = env.domctl(0, &ctx_op(get, u, 0, 0));
        let need = op.u.get::<xen_domctl_hvmcontext>().size;
        assert_eq!((rc, need), (0, 32 + 2 * (1040 + 248) + 8));
        let (rc, op) = env.domctl(0, &ctx_op(get, u, need - 1, CTX_GVA));
        assert_eq!(rc, -28, "-ENOSPC");
        assert_eq!(
            op.u.get::<xen_domctl_hvmcontext>().size,
            need - 1,
            "copied back"
        );
        let (rc, op) = env.domctl(0, &ctx_op(get, u, need, CTX_GVA));
        assert_eq!(rc, 0);
        let got = op.u.get::<xen_domctl_hvmcontext>().size;
        assert_eq!(got, 32 + 2 * 248 + 8, "no CPU records for down vCPUs");
        assert_eq!(env.get::<u32>(CTX_GVA + 8), 0x5438_1286, "HEADER magic");

        let mut m = hvm_hw_mtrr::new_zeroed();
        m.msr_pat_cr = 0x0007_0406_0007_0406;
        m.msr_mtrr_cap = 0x508;
        m.msr_mtrr_def_type = 6 | 1 << 11;
        for v in 0..2 {
            let ctx = hvm_save::context(&[(HVM_SAVE_CODE_MTRR, v, m.as_bytes())]);
            assert_eq!(set_ctx(&mut env, u, &ctx), 0);
        }
        let cpu = hvm_save::pvh_cpu_record(0x10_0040, 0x6000);
        let ctx = hvm_save::context(&[(HVM_SAVE_CODE_CPU, 0, cpu.as_bytes())]);
        assert_eq!(set_ctx(&mut env, u, &ctx), 0);
        {
            let d = env.hv.domains.get(u).unwrap();
            assert!(d.vcpus[0].online && !d.vcpus[1].online);
            assert!(d.hvm_save.has_start(0));
            assert!(!d.is_runnable(), "still paused");
        }
        assert_eq!(env.simple(0, XEN_DOMCTL_unpausedomain, u), 0);
        let d = env.hv.domains.get_mut(u).unwrap();
        assert!(d.is_runnable());
        let s = d.hvm_save.take_start(0).unwrap();
        assert_eq!((s.rip, s.rbx), (0x10_0040, 0x6000));

        // A bad record changes nothing; the caller itself, PV, bad pointers.
        let mut badcpu = cpu;
        badcpu.tr_arbytes = 0;
        let ctx = hvm_save::context(&[(HVM_SAVE_CODE_CPU, 0, badcpu.as_bytes())]);
        assert_eq!(set_ctx(&mut env, u, &ctx), EINVAL);
        assert!(env.hv.domains.get(u).unwrap().vcpus[0].online, "not downed");
        assert_eq!(set_ctx(&mut env, 0, &ctx), EINVAL, "dom0 on itself");
        let set = XEN_DOMCTL_sethvmcontext;
        assert_eq!(env.domctl(0, &ctx_op(set, u, 100, HOLE_GVA)).0, EFAULT);
        assert_eq!(
            env.domctl(0, &ctx_op(set, u, 1 << 20, CTX_GVA)).0,
            -12,
            "too big"
        );
        assert_eq!(env.domctl(0, &ctx_op(get, u, need, HOLE_GVA)).0, EFAULT);
        let mut pv = baseline();
        pv.flags = 0;
        pv.arch.emulation_flags = 0;
        let (_, p) = env.create(&pv, 0);
        assert_eq!(env.domctl(0, &ctx_op(get, p, 0, 0)).0, EINVAL, "PV");
        assert_eq!(env.domctl(u, &ctx_op(get, 0, 0, 0)).0, EPERM);
    }
}
