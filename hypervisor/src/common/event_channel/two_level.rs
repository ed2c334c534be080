//! The 2-level event channel ABI (mirrors Xen 4.17's `xen/common/event_2l.c`),
//! and the `shared_info`/`vcpu_info` fields both ABIs use to raise an upcall.
//!
//! Pending and mask state live in two bitmaps in the domain's `shared_info`
//! (`evtchn_pending` at 2048, `evtchn_mask` at 2560); the selector word
//! `evtchn_pending_sel` (+8) and `evtchn_upcall_pending` (+0) live in the target
//! vCPU's `vcpu_info` (`shared_info.vcpu_info[v]`, 64 bytes each). 64-bit
//! guests only: 4096 ports (`BITS_PER_EVTCHN_WORD` = 64).
//!
//! # Where `shared_info` lives
//!
//! In Xen the page is Xen's own and the guest maps it. Here the domain registers
//! a guest frame ([`SharedInfo::map`], called by whoever implements
//! `XENMEM_add_to_physmap(XENMAPSPACE_shared_info)`). Until it does, and for
//! `vcpu_info` of vCPUs 32 and above (which have no slot in `shared_info`), the
//! same bytes are kept in a hypervisor-private shadow page, so events sent
//! before registration are not lost: registering copies the event fields from
//! the shadow into the guest frame (what the guest would have seen had the
//! page always been mapped), and unregistering copies them back.

use super::guest_bits::{self, test_and_set_bit, test_bit};
use super::{Notify, PortCx, PortOps};
use crate::common::guest_access::GuestMemory;
use alloc::vec;
use alloc::vec::Vec;
use core::mem::{offset_of, size_of};
use xen_public_abi::xen;
use xen_public_abi::{Errno, XenResult};

pub use xen_public_abi::event_channel::EVTCHN_2L_NR_CHANNELS;
/// `BITS_PER_EVTCHN_WORD` for 64-bit guests (`xen_ulong_t`).
pub const BITS_PER_EVTCHN_WORD: u32 = 64;
/// `XEN_LEGACY_MAX_VCPUS`: vCPUs with a `vcpu_info` slot in `shared_info`.
pub const XEN_LEGACY_MAX_VCPUS: u32 = xen::XEN_LEGACY_MAX_VCPUS;
/// Offset of `shared_info.evtchn_pending`.
pub const SHINFO_EVTCHN_PENDING: u64 = offset_of!(xen::shared_info, evtchn_pending) as u64;
/// Offset of `shared_info.evtchn_mask`.
pub const SHINFO_EVTCHN_MASK: u64 = offset_of!(xen::shared_info, evtchn_mask) as u64;
/// `sizeof(struct vcpu_info)`.
pub const VCPU_INFO_SIZE: u64 = size_of::<xen::vcpu_info>() as u64;
/// Offset of `vcpu_info.evtchn_upcall_pending` (a byte; bit 0 of the first `u32`).
pub const VCPUINFO_UPCALL_PENDING: u64 = offset_of!(xen::vcpu_info, evtchn_upcall_pending) as u64;
/// Offset of `vcpu_info.evtchn_pending_sel`.
pub const VCPUINFO_PENDING_SEL: u64 = offset_of!(xen::vcpu_info, evtchn_pending_sel) as u64;
// The byte-level code below relies on these (xen-abi.md §7.4).
const _: () = assert!(SHINFO_EVTCHN_PENDING == 2048 && SHINFO_EVTCHN_MASK == 2560);
const _: () =
    assert!(VCPU_INFO_SIZE == 64 && VCPUINFO_UPCALL_PENDING == 0 && VCPUINFO_PENDING_SEL == 8);
const PAGE_SIZE: u64 = 4096;

/// A flat private byte array that stands in for guest memory at GPA 0.
struct ShadowPage(Vec<u8>);

impl ShadowPage {
    fn range(&self, gpa: u64, len: usize) -> XenResult<core::ops::Range<usize>> {
        let start = usize::try_from(gpa).map_err(|_| Errno::EFAULT)?;
        let end = start.checked_add(len).ok_or(Errno::EFAULT)?;
        if end > self.0.len() {
            return Err(Errno::EFAULT);
        }
        Ok(start..end)
    }
}

impl GuestMemory for ShadowPage {
    fn read_gpa(&self, gpa: u64, buf: &mut [u8]) -> XenResult<()> {
        let r = self.range(gpa, buf.len())?;
        buf.copy_from_slice(&self.0[r]);
        Ok(())
    }
    fn write_gpa(&mut self, gpa: u64, buf: &[u8]) -> XenResult<()> {
        let r = self.range(gpa, buf.len())?;
        self.0[r].copy_from_slice(buf);
        Ok(())
    }
    fn cmpxchg_u32(&mut self, gpa: u64, old: u32, new: u32) -> XenResult<u32> {
        let r = self.range(gpa, 4)?;
        let mut b = [0u8; 4];
        b.copy_from_slice(&self.0[r.clone()]);
        let cur = u32::from_le_bytes(b);
        if cur == old {
            self.0[r].copy_from_slice(&new.to_le_bytes());
        }
        Ok(cur)
    }
}

/// Where a domain's `shared_info` (and each vCPU's `vcpu_info`) is.
pub struct SharedInfo {
    /// Guest-physical address of the registered `shared_info` frame.
    gpa: Option<u64>,
    /// The private copy: a `shared_info` image (first page), then one
    /// `vcpu_info` per vCPU from 32 up.
    shadow: ShadowPage,
    /// Per vCPU: where `VCPUOP_register_vcpu_info` put its `vcpu_info` (a GPA),
    /// overriding the slot in `shared_info` or the shadow.
    registered: Vec<Option<u64>>,
}

impl SharedInfo {
    pub(super) fn new(nr_vcpus: u32) -> Self {
        let extra = u64::from(nr_vcpus.saturating_sub(XEN_LEGACY_MAX_VCPUS)) * VCPU_INFO_SIZE;
        SharedInfo {
            gpa: None,
            shadow: ShadowPage(vec![0; (PAGE_SIZE + extra) as usize]),
            registered: vec![None; nr_vcpus as usize],
        }
    }

    /// Make room in the shadow for `vcpu_info` of vCPUs up to `nr_vcpus`.
    pub(super) fn grow(&mut self, nr_vcpus: u32) {
        let extra = u64::from(nr_vcpus.saturating_sub(XEN_LEGACY_MAX_VCPUS)) * VCPU_INFO_SIZE;
        let want = (PAGE_SIZE + extra) as usize;
        if self.shadow.0.len() < want {
            self.shadow.0.resize(want, 0);
        }
        if self.registered.len() < nr_vcpus as usize {
            self.registered.resize(nr_vcpus as usize, None);
        }
    }

    /// The registered frame's address, if any.
    pub fn gpa(&self) -> Option<u64> {
        self.gpa
    }

    /// The memory and base address of `shared_info`.
    fn shinfo<'a>(&'a mut self, mem: &'a mut dyn GuestMemory) -> (&'a mut dyn GuestMemory, u64) {
        match self.gpa {
            Some(g) => (mem, g),
            None => (&mut self.shadow, 0),
        }
    }

    fn shinfo_ref<'a>(&'a self, mem: &'a dyn GuestMemory) -> (&'a dyn GuestMemory, u64) {
        match self.gpa {
            Some(g) => (mem, g),
            None => (&self.shadow, 0),
        }
    }

    /// The memory and address of `vcpu_info` for vCPU `v`.
    fn vcpu_info<'a>(
        &'a mut self,
        mem: &'a mut dyn GuestMemory,
        v: u32,
    ) -> (&'a mut dyn GuestMemory, u64) {
        if let Some(Some(at)) = self.registered.get(v as usize) {
            return (mem, *at);
        }
        if v >= XEN_LEGACY_MAX_VCPUS {
            let off = PAGE_SIZE + u64::from(v - XEN_LEGACY_MAX_VCPUS) * VCPU_INFO_SIZE;
            return (&mut self.shadow, off);
        }
        let (m, base) = self.shinfo(mem);
        (m, base + u64::from(v) * VCPU_INFO_SIZE)
    }

    fn vcpu_info_ref<'a>(&'a self, mem: &'a dyn GuestMemory, v: u32) -> (&'a dyn GuestMemory, u64) {
        if let Some(Some(at)) = self.registered.get(v as usize) {
            return (mem, *at);
        }
        if v >= XEN_LEGACY_MAX_VCPUS {
            let off = PAGE_SIZE + u64::from(v - XEN_LEGACY_MAX_VCPUS) * VCPU_INFO_SIZE;
            return (&self.shadow, off);
        }
        let (m, base) = self.shinfo_ref(mem);
        (m, base + u64::from(v) * VCPU_INFO_SIZE)
    }

    /// Register (`Some(gfn)`) or drop (`None`) the guest frame that holds
    /// `shared_info`. The event fields (bitmaps, and per-vCPU upcall flag, upcall
    /// mask and selector) move from the old place to the new one. A frame the
    /// guest cannot access is refused with `-EFAULT` and nothing changes.
    pub fn map(
        &mut self,
        mem: &mut dyn GuestMemory,
        gfn: Option<u64>,
        nr_vcpus: u32,
    ) -> XenResult<()> {
        let new = match gfn {
            Some(g) => Some(g.checked_mul(PAGE_SIZE).ok_or(Errno::EFAULT)?),
            None => None,
        };
        // Read the event fields from where they are now.
        let mut bitmaps = [0u8; 1024];
        let mut vinfo = [[0u8; 16]; XEN_LEGACY_MAX_VCPUS as usize];
        let nv = nr_vcpus.min(XEN_LEGACY_MAX_VCPUS) as usize;
        {
            let (m, base) = self.shinfo_ref(mem);
            m.read_gpa(base + SHINFO_EVTCHN_PENDING, &mut bitmaps)?;
            for (v, buf) in vinfo.iter_mut().enumerate().take(nv) {
                m.read_gpa(base + v as u64 * VCPU_INFO_SIZE, buf)?;
            }
        }
        let old = self.gpa;
        self.gpa = new;
        let res = (|| {
            let (m, base) = self.shinfo(mem);
            m.write_gpa(base + SHINFO_EVTCHN_PENDING, &bitmaps)?;
            for (v, buf) in vinfo.iter().enumerate().take(nv) {
                m.write_gpa(base + v as u64 * VCPU_INFO_SIZE, buf)?;
            }
            Ok(())
        })();
        if res.is_err() {
            self.gpa = old;
        }
        res
    }

    /// Where `VCPUOP_register_vcpu_info` placed vCPU `v`'s `vcpu_info`, if it did.
    pub fn registered_vcpu_info(&self, v: u32) -> Option<u64> {
        self.registered.get(v as usize).copied().flatten()
    }

    /// `map_vcpu_info()`'s move: vCPU `v`'s `vcpu_info` now lives at guest
    /// physical `gpa` (which the caller has checked is in the domain's RAM and
    /// does not cross a page). The current contents move there, then every
    /// selector bit and `evtchn_upcall_pending` are set so that nothing is lost
    /// (the guest sees a spurious upcall, as on Xen); the caller raises it.
    /// `-EINVAL` if `v` already registered one or does not exist.
    pub fn register_vcpu_info(
        &mut self,
        mem: &mut dyn GuestMemory,
        v: u32,
        gpa: u64,
    ) -> XenResult<()> {
        match self.registered.get(v as usize) {
            Some(None) => {}
            _ => return Err(Errno::EINVAL),
        }
        let mut cur = [0u8; VCPU_INFO_SIZE as usize];
        {
            let (m, at) = self.vcpu_info_ref(mem, v);
            m.read_gpa(at, &mut cur)?;
        }
        mem.write_gpa(gpa, &cur).map_err(|_| Errno::EINVAL)?;
        self.registered[v as usize] = Some(gpa);
        let (m, at) = self.vcpu_info(mem, v);
        guest_bits::write_u32(m, at + VCPUINFO_PENDING_SEL, u32::MAX)?;
        guest_bits::write_u32(m, at + VCPUINFO_PENDING_SEL + 4, u32::MAX)?;
        test_and_set_bit(m, at + VCPUINFO_UPCALL_PENDING, 0)?;
        Ok(())
    }

    /// Write `bytes` at `offset` inside vCPU `v`'s `vcpu_info`, wherever it is
    /// (the pvclock record lives there).
    pub fn write_vcpu_info(
        &mut self,
        mem: &mut dyn GuestMemory,
        v: u32,
        offset: u64,
        bytes: &[u8],
    ) -> XenResult<()> {
        let (m, at) = self.vcpu_info(mem, v);
        m.write_gpa(at + offset, bytes)
    }

    /// Read `buf.len()` bytes at `offset` inside vCPU `v`'s `vcpu_info`.
    pub fn read_vcpu_info(
        &self,
        mem: &dyn GuestMemory,
        v: u32,
        offset: u64,
        buf: &mut [u8],
    ) -> XenResult<()> {
        let (m, at) = self.vcpu_info_ref(mem, v);
        m.read_gpa(at + offset, buf)
    }

    /// Write `bytes` at `offset` inside `shared_info` (wallclock fields).
    pub fn write_shared_info(
        &mut self,
        mem: &mut dyn GuestMemory,
        offset: u64,
        bytes: &[u8],
    ) -> XenResult<()> {
        let (m, base) = self.shinfo(mem);
        m.write_gpa(base + offset, bytes)
    }

    /// Read from `shared_info` at `offset`.
    pub fn read_shared_info(
        &self,
        mem: &dyn GuestMemory,
        offset: u64,
        buf: &mut [u8],
    ) -> XenResult<()> {
        let (m, base) = self.shinfo_ref(mem);
        m.read_gpa(base + offset, buf)
    }

    /// `vcpu_mark_events_pending`: set `evtchn_upcall_pending`; true when it
    /// was clear (the caller then raises the upcall).
    pub(super) fn mark_events_pending(
        &mut self,
        mem: &mut dyn GuestMemory,
        v: u32,
    ) -> XenResult<bool> {
        let (m, at) = self.vcpu_info(mem, v);
        Ok(!test_and_set_bit(m, at + VCPUINFO_UPCALL_PENDING, 0)?)
    }

    /// The `evtchn_pending` bit of `port`.
    pub fn pending_bit(&self, mem: &dyn GuestMemory, port: u32) -> XenResult<bool> {
        if port >= EVTCHN_2L_NR_CHANNELS {
            return Ok(false);
        }
        let (m, base) = self.shinfo_ref(mem);
        test_bit(m, base + SHINFO_EVTCHN_PENDING, port)
    }

    /// The `evtchn_mask` bit of `port`.
    pub fn mask_bit(&self, mem: &dyn GuestMemory, port: u32) -> XenResult<bool> {
        if port >= EVTCHN_2L_NR_CHANNELS {
            return Ok(true);
        }
        let (m, base) = self.shinfo_ref(mem);
        test_bit(m, base + SHINFO_EVTCHN_MASK, port)
    }

    /// Set or clear the `evtchn_mask` bit of `port` as the guest would.
    pub fn set_mask_bit(
        &mut self,
        mem: &mut dyn GuestMemory,
        port: u32,
        masked: bool,
    ) -> XenResult<()> {
        if port >= EVTCHN_2L_NR_CHANNELS {
            return Err(Errno::EINVAL);
        }
        let (m, base) = self.shinfo(mem);
        if masked {
            guest_bits::set_bit(m, base + SHINFO_EVTCHN_MASK, port)
        } else {
            guest_bits::clear_bit(m, base + SHINFO_EVTCHN_MASK, port)
        }
    }

    /// `vcpu_info[v].evtchn_pending_sel`.
    pub fn pending_sel(&self, mem: &dyn GuestMemory, v: u32) -> XenResult<u64> {
        let (m, at) = self.vcpu_info_ref(mem, v);
        let mut b = [0u8; 8];
        m.read_gpa(at + VCPUINFO_PENDING_SEL, &mut b)?;
        Ok(u64::from_le_bytes(b))
    }

    /// `vcpu_info[v].evtchn_upcall_pending`.
    pub fn upcall_pending(&self, mem: &dyn GuestMemory, v: u32) -> XenResult<bool> {
        let (m, at) = self.vcpu_info_ref(mem, v);
        let mut b = [0u8; 1];
        m.read_gpa(at + VCPUINFO_UPCALL_PENDING, &mut b)?;
        Ok(b[0] & 1 != 0)
    }

    /// Clear `evtchn_upcall_pending` as the guest does when it takes the upcall.
    pub fn clear_upcall_pending(&mut self, mem: &mut dyn GuestMemory, v: u32) -> XenResult<()> {
        let (m, at) = self.vcpu_info(mem, v);
        guest_bits::update_u32(m, at, |w| w & !0xff).map(|_| ())
    }
}

/// The 2-level port operations (Xen's `evtchn_port_ops_2l`).
pub struct TwoLevel;

impl TwoLevel {
    fn try_set_pending(cx: &mut PortCx<'_>, v: u32, port: u32) -> XenResult<()> {
        let (m, base) = cx.shinfo.shinfo(cx.mem);
        if test_and_set_bit(m, base + SHINFO_EVTCHN_PENDING, port)? {
            return Ok(());
        }
        if !test_bit(m, base + SHINFO_EVTCHN_MASK, port)? {
            raise_selector(cx, v, port)?;
        }
        cx.kicks.push(Notify::Pollers(port));
        Ok(())
    }
}

/// Set the selector bit for `port` on vCPU `v` and, on its 0→1 transition,
/// mark events pending (and on that transition, the upcall).
fn raise_selector(cx: &mut PortCx<'_>, v: u32, port: u32) -> XenResult<()> {
    let (m, at) = cx.shinfo.vcpu_info(cx.mem, v);
    if !test_and_set_bit(m, at + VCPUINFO_PENDING_SEL, port / BITS_PER_EVTCHN_WORD)?
        && cx.shinfo.mark_events_pending(cx.mem, v)?
    {
        cx.kicks.push(Notify::Upcall(v));
    }
    Ok(())
}

impl PortOps for TwoLevel {
    fn set_pending(&mut self, cx: &mut PortCx<'_>, v: u32, port: u32) {
        if port >= EVTCHN_2L_NR_CHANNELS {
            return;
        }
        if let Err(e) = Self::try_set_pending(cx, v, port) {
            crate::gprintk!(
                cx.domid,
                log::Level::Warn,
                "d{}: evtchn 2l: port {port}: shared_info not accessible ({e:?}), event lost",
                cx.domid
            );
        }
    }

    fn clear_pending(&mut self, cx: &mut PortCx<'_>, port: u32) {
        if port >= EVTCHN_2L_NR_CHANNELS {
            return;
        }
        let (m, base) = cx.shinfo.shinfo(cx.mem);
        if let Err(e) = guest_bits::clear_bit(m, base + SHINFO_EVTCHN_PENDING, port) {
            crate::gprintk!(
                cx.domid,
                log::Level::Warn,
                "d{}: evtchn 2l: port {port}: cannot clear pending ({e:?})",
                cx.domid
            );
        }
    }

    fn unmask(&mut self, cx: &mut PortCx<'_>, port: u32) {
        if port >= EVTCHN_2L_NR_CHANNELS {
            return;
        }
        let v = cx.chans[port as usize].notify_vcpu;
        let r = (|| {
            let (m, base) = cx.shinfo.shinfo(cx.mem);
            if guest_bits::test_and_clear_bit(m, base + SHINFO_EVTCHN_MASK, port)?
                && test_bit(m, base + SHINFO_EVTCHN_PENDING, port)?
            {
                raise_selector(cx, v, port)?;
            }
            Ok::<(), Errno>(())
        })();
        if let Err(e) = r {
            crate::gprintk!(
                cx.domid,
                log::Level::Warn,
                "d{}: evtchn 2l: port {port}: unmask failed ({e:?})",
                cx.domid
            );
        }
    }

    fn is_pending(&self, cx: &PortCx<'_>, port: u32) -> bool {
        cx.shinfo.pending_bit(cx.mem, port).unwrap_or(false)
    }

    fn is_masked(&self, cx: &PortCx<'_>, port: u32) -> bool {
        cx.shinfo.mask_bit(cx.mem, port).unwrap_or(true)
    }
}
