//! The FIFO event channel ABI (mirrors Xen 4.17's `xen/common/event_fifo.c`).
//!
//! Each port has a 32-bit event word in guest pages the guest hands over with
//! `EVTCHNOP_expand_array` (1024 words a page, up to 128 pages = 131072 ports):
//! PENDING (31), MASKED (30), LINKED (29), BUSY (28) and a 17-bit LINK to the
//! next port in its queue. Each vCPU has 16 priority queues: the head of each
//! is in the vCPU's control block in guest memory (`EVTCHNOP_init_control`),
//! the tail is ours. `ready` in the control block has one bit per non-empty
//! queue.
//!
//! The guest consumes events concurrently with us (it clears LINKED and LINK
//! when it takes a port off a queue, and MASKED to unmask), so every change to
//! a word is a compare-and-exchange on guest memory. Appending to a queue sets
//! the tail word's LINK only while that word is still LINKED; after a failed
//! attempt the word is marked BUSY (the guest does not unmask a BUSY word) and
//! retried a few times, as Xen does. A port stays unavailable for reuse while
//! its word is LINKED ([`Fifo::is_busy`]).
//!
//! A guest that unmaps or scribbles over these pages only loses its own
//! events: guest-memory failures are logged and the event is dropped.

use super::guest_bits::{self, read_u32, test_and_set_bit, test_bit};
use super::{Notify, PortCx, PortOps};
use crate::common::guest_access::GuestMemory;
use alloc::vec;
use alloc::vec::Vec;
use xen_public_abi::event_channel::*;
use xen_public_abi::{Errno, XenResult};

const PAGE_SIZE: u64 = 4096;
/// `EVTCHN_FIFO_EVENT_WORDS_PER_PAGE`.
pub const EVENT_WORDS_PER_PAGE: u32 = (PAGE_SIZE / 4) as u32;
/// `EVTCHN_FIFO_MAX_EVENT_ARRAY_PAGES`.
pub const MAX_EVENT_ARRAY_PAGES: usize = (EVTCHN_FIFO_NR_CHANNELS / EVENT_WORDS_PER_PAGE) as usize;
/// `sizeof(evtchn_fifo_control_block)`.
const CONTROL_BLOCK_SIZE: u32 = 72;
const CB_HEAD: u64 = 8;

/// One vCPU's FIFO state: where its control block is, and the queue tails.
#[derive(Clone, Debug, Default)]
pub struct FifoVcpu {
    /// Guest-physical address of the control block, once mapped.
    pub control_block: Option<u64>,
    /// `queue[q].tail` (0 = none).
    pub tail: [u32; EVTCHN_FIFO_MAX_QUEUES as usize],
}

/// A domain's FIFO state (Xen's `struct evtchn_fifo_domain` plus the per-vCPU
/// `struct evtchn_fifo_vcpu`s).
pub struct Fifo {
    /// Base GPA of each event-array page, in port order.
    event_array: Vec<u64>,
    pub vcpus: Vec<FifoVcpu>,
}

/// Probe that a guest page exists and is writable (Xen: `map_guest_page`
/// getting a writable page reference), `-EINVAL` otherwise.
fn probe_page(mem: &mut dyn GuestMemory, gfn: u64) -> XenResult<u64> {
    let gpa = gfn.checked_mul(PAGE_SIZE).ok_or(Errno::EINVAL)?;
    let mut page = [0u8; PAGE_SIZE as usize];
    mem.read_gpa(gpa, &mut page).map_err(|_| Errno::EINVAL)?;
    let w = u32::from_le_bytes([page[0], page[1], page[2], page[3]]);
    // A compare-and-exchange that changes nothing: proves the page is writable
    // without disturbing the guest.
    mem.cmpxchg_u32(gpa, w, w).map_err(|_| Errno::EINVAL)?;
    Ok(gpa)
}

impl Fifo {
    pub(super) fn new(nr_vcpus: u32) -> Self {
        Fifo {
            event_array: Vec::new(),
            vcpus: vec![FifoVcpu::default(); nr_vcpus as usize],
        }
    }

    pub(super) fn grow(&mut self, nr_vcpus: u32) {
        if self.vcpus.len() < nr_vcpus as usize {
            self.vcpus.resize(nr_vcpus as usize, FifoVcpu::default());
        }
    }

    /// Ports covered by the event array so far (`num_evtchns`).
    pub fn num_evtchns(&self) -> u32 {
        self.event_array.len() as u32 * EVENT_WORDS_PER_PAGE
    }

    /// GPA of `port`'s event word, if its page has been added.
    pub fn word_gpa(&self, port: u32) -> Option<u64> {
        let page = self
            .event_array
            .get((port / EVENT_WORDS_PER_PAGE) as usize)?;
        Some(page + u64::from(port % EVENT_WORDS_PER_PAGE) * 4)
    }

    /// `map_control_block` for vCPU `v` (the caller checked `v` and `offset`).
    pub(super) fn map_control_block(
        &mut self,
        mem: &mut dyn GuestMemory,
        v: u32,
        gfn: u64,
        offset: u32,
    ) -> XenResult<()> {
        let vc = self.vcpus.get_mut(v as usize).ok_or(Errno::ENOENT)?;
        if vc.control_block.is_some() {
            return Err(Errno::EINVAL);
        }
        let gpa = probe_page(mem, gfn)?;
        vc.control_block = Some(gpa + u64::from(offset));
        Ok(())
    }

    /// `add_page_to_event_array`: map the next page, then re-raise ports in
    /// its range whose events arrived while it was missing.
    pub(super) fn add_page(&mut self, cx: &mut PortCx<'_>, gfn: u64) -> XenResult<()> {
        if self.event_array.len() >= MAX_EVENT_ARRAY_PAGES {
            return Err(Errno::ENOSPC);
        }
        let gpa = probe_page(cx.mem, gfn)?;
        let first = self.num_evtchns();
        self.event_array.push(gpa);
        let last = self.num_evtchns().min(cx.chans.len() as u32);
        for port in first..last {
            let ch = &mut cx.chans[port as usize];
            if ch.fifo_pending {
                ch.fifo_pending = false;
                let v = ch.notify_vcpu;
                self.set_pending(cx, v, port);
            }
        }
        Ok(())
    }

    /// `evtchn_fifo_set_link`: make the tail word's LINK point at `link` while
    /// it is still LINKED. Returns whether the event got linked after the tail.
    fn set_link(mem: &mut dyn GuestMemory, word: u64, link: u32, domid: u16) -> XenResult<bool> {
        const LINKED: u32 = 1 << EVTCHN_FIFO_LINKED;
        const BUSY: u32 = 1 << EVTCHN_FIFO_BUSY;
        // One attempt: Ok(Some(linked?)) or Ok(None) if the guest raced us.
        let try_set = |mem: &mut dyn GuestMemory, w: &mut u32| -> XenResult<Option<bool>> {
            if *w & LINKED == 0 {
                return Ok(Some(false));
            }
            let old = *w;
            let new = (old & !(BUSY | EVTCHN_FIFO_LINK_MASK)) | link;
            *w = mem.cmpxchg_u32(word, old, new)?;
            Ok(if *w == old { Some(true) } else { None })
        };
        let mut w = read_u32(mem, word)?;
        if let Some(linked) = try_set(mem, &mut w)? {
            return Ok(linked);
        }
        // Lock the word against the guest unmasking it, then retry.
        guest_bits::set_bit(mem, word, EVTCHN_FIFO_BUSY)?;
        w = read_u32(mem, word)?;
        for _ in 0..4 {
            if let Some(linked) = try_set(mem, &mut w)? {
                if !linked {
                    guest_bits::clear_bit(mem, word, EVTCHN_FIFO_BUSY)?;
                }
                return Ok(linked);
            }
        }
        crate::gprintk!(
            domid,
            log::Level::Warn,
            "d{domid}: evtchn fifo: port {link} not linked (guest keeps changing the tail)"
        );
        guest_bits::clear_bit(mem, word, EVTCHN_FIFO_BUSY)?;
        Ok(true)
    }

    fn try_set_pending(&mut self, cx: &mut PortCx<'_>, v: u32, port: u32) -> XenResult<()> {
        let Some(word) = self.word_gpa(port) else {
            // The page is not there yet: remember, `add_page` re-raises it.
            cx.chans[port as usize].fifo_pending = true;
            return Ok(());
        };
        let (prio, old_v, old_p) = {
            let ch = &cx.chans[port as usize];
            (ch.priority, ch.lastq_vcpu, ch.lastq_prio)
        };
        let Some(cb) = self.vcpus.get(v as usize).and_then(|vc| vc.control_block) else {
            crate::gprintk!(
                cx.domid,
                log::Level::Warn,
                "d{}: evtchn fifo: vCPU {v} has no control block, port {port} dropped",
                cx.domid
            );
            return Ok(());
        };
        let domid = cx.domid;
        let mem = &mut *cx.mem;
        let newly_pending = !test_and_set_bit(mem, word, EVTCHN_FIFO_PENDING)?;
        let mut linked = true;
        if !test_bit(mem, word, EVTCHN_FIFO_MASKED)?
            && !test_and_set_bit(mem, word, EVTCHN_FIFO_LINKED)?
        {
            // If this port was the tail of its old queue, that queue is empty now.
            if let Some(t) = self
                .vcpus
                .get_mut(old_v as usize)
                .and_then(|vc| vc.tail.get_mut(old_p as usize))
            {
                if *t == port {
                    *t = 0;
                }
            }
            if (old_v, old_p) != (v, prio) {
                let ch = &mut cx.chans[port as usize];
                ch.lastq_vcpu = v;
                ch.lastq_prio = prio;
            }
            linked = false;
            let tail = self.vcpus[v as usize].tail[prio as usize];
            if tail != 0 {
                if let Some(tw) = self.word_gpa(tail) {
                    linked = Self::set_link(mem, tw, port, domid)?;
                }
            }
            if !linked {
                guest_bits::write_u32(mem, cb + CB_HEAD + u64::from(prio) * 4, port)?;
            }
            self.vcpus[v as usize].tail[prio as usize] = port;
        }
        if !linked
            && !test_and_set_bit(mem, cb, u32::from(prio))?
            && cx.shinfo.mark_events_pending(cx.mem, v)?
        {
            cx.kicks.push(Notify::Upcall(v));
        }
        if newly_pending {
            cx.kicks.push(Notify::Pollers(port));
        }
        Ok(())
    }
}

impl PortOps for Fifo {
    fn set_pending(&mut self, cx: &mut PortCx<'_>, v: u32, port: u32) {
        if let Err(e) = self.try_set_pending(cx, v, port) {
            crate::gprintk!(
                cx.domid,
                log::Level::Warn,
                "d{}: evtchn fifo: port {port}: guest memory not accessible ({e:?}), event lost",
                cx.domid
            );
        }
    }

    fn clear_pending(&mut self, cx: &mut PortCx<'_>, port: u32) {
        if let Some(w) = self.word_gpa(port) {
            if let Err(e) = guest_bits::clear_bit(cx.mem, w, EVTCHN_FIFO_PENDING) {
                crate::gprintk!(
                    cx.domid,
                    log::Level::Warn,
                    "d{}: evtchn fifo: port {port}: cannot clear pending ({e:?})",
                    cx.domid
                );
            }
        }
    }

    fn unmask(&mut self, cx: &mut PortCx<'_>, port: u32) {
        let Some(w) = self.word_gpa(port) else {
            return;
        };
        let v = cx.chans[port as usize].notify_vcpu;
        let r = guest_bits::clear_bit(cx.mem, w, EVTCHN_FIFO_MASKED)
            .and_then(|_| test_bit(cx.mem, w, EVTCHN_FIFO_PENDING));
        match r {
            Ok(true) => self.set_pending(cx, v, port),
            Ok(false) => {}
            Err(e) => crate::gprintk!(
                cx.domid,
                log::Level::Warn,
                "d{}: evtchn fifo: port {port}: unmask failed ({e:?})",
                cx.domid
            ),
        }
    }

    fn is_pending(&self, cx: &PortCx<'_>, port: u32) -> bool {
        self.word_gpa(port)
            .is_some_and(|w| test_bit(&*cx.mem, w, EVTCHN_FIFO_PENDING).unwrap_or(false))
    }

    fn is_masked(&self, cx: &PortCx<'_>, port: u32) -> bool {
        self.word_gpa(port)
            .is_none_or(|w| test_bit(&*cx.mem, w, EVTCHN_FIFO_MASKED).unwrap_or(true))
    }

    fn is_busy(&self, cx: &PortCx<'_>, port: u32) -> bool {
        self.word_gpa(port)
            .is_some_and(|w| test_bit(&*cx.mem, w, EVTCHN_FIFO_LINKED).unwrap_or(false))
    }

    fn has_set_priority(&self) -> bool {
        true
    }

    fn set_priority(&mut self, cx: &mut PortCx<'_>, port: u32, priority: u32) -> XenResult<()> {
        if priority > EVTCHN_FIFO_PRIORITY_MIN {
            return Err(Errno::EINVAL);
        }
        // Applies to future events; one already queued stays where it is.
        cx.chans[port as usize].priority = priority as u8;
        Ok(())
    }

    fn init(&mut self, cx: &mut PortCx<'_>, port: u32) {
        cx.chans[port as usize].priority = EVTCHN_FIFO_PRIORITY_DEFAULT as u8;
        if self.is_busy(cx, port) {
            crate::gprintk!(
                cx.domid,
                log::Level::Warn,
                "d{}: evtchn fifo: port {port} bound while still on a queue",
                cx.domid
            );
        }
    }
}

/// `CONTROL_BLOCK_SIZE` for the offset check in `init_control`.
pub const fn control_block_size() -> u32 {
    CONTROL_BLOCK_SIZE
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::common::guest_access::fake::FakeMemory;

    const LINKED: u32 = 1 << EVTCHN_FIFO_LINKED;
    const BUSY: u32 = 1 << EVTCHN_FIFO_BUSY;
    const MASKED: u32 = 1 << EVTCHN_FIFO_MASKED;

    /// Guest memory where the guest changes a word (XOR `mask`) right before
    /// each of our next `times` compare-and-exchanges on it.
    struct Racy {
        mem: FakeMemory,
        gpa: u64,
        mask: u32,
        times: u32,
    }

    impl GuestMemory for Racy {
        fn read_gpa(&self, gpa: u64, buf: &mut [u8]) -> XenResult<()> {
            self.mem.read_gpa(gpa, buf)
        }
        fn write_gpa(&mut self, gpa: u64, buf: &[u8]) -> XenResult<()> {
            self.mem.write_gpa(gpa, buf)
        }
        fn cmpxchg_u32(&mut self, gpa: u64, old: u32, new: u32) -> XenResult<u32> {
            if gpa == self.gpa && self.times > 0 {
                self.times -= 1;
                let w = read_u32(&self.mem, gpa)? ^ self.mask;
                self.mem.write_gpa(gpa, &w.to_le_bytes())?;
            }
            self.mem.cmpxchg_u32(gpa, old, new)
        }
    }

    fn racy(word: u32, mask: u32, times: u32) -> Racy {
        let mut mem = FakeMemory::new(4096);
        mem.write_gpa(0, &word.to_le_bytes()).unwrap();
        Racy {
            mem,
            gpa: 0,
            mask,
            times,
        }
    }

    #[test]
    fn set_link_without_race() {
        let mut m = racy(LINKED | 5, 0, 0);
        assert_eq!(Fifo::set_link(&mut m, 0, 9, 1), Ok(true));
        assert_eq!(read_u32(&m, 0).unwrap(), LINKED | 9);
        let mut m = racy(0, 0, 0);
        assert_eq!(
            Fifo::set_link(&mut m, 0, 9, 1),
            Ok(false),
            "tail not linked"
        );
        assert_eq!(read_u32(&m, 0).unwrap(), 0);
    }

    #[test]
    fn guest_unlinks_the_tail_meanwhile() {
        // The guest clears LINKED during our first attempt: we mark the word
        // BUSY, see it unlinked, clear BUSY and report "not linked" (the
        // caller then writes the queue head).
        let mut m = racy(LINKED | 5, LINKED | 5, 1);
        assert_eq!(Fifo::set_link(&mut m, 0, 9, 1), Ok(false));
        assert_eq!(read_u32(&m, 0).unwrap(), 0);
    }

    #[test]
    fn guest_changes_another_bit_meanwhile() {
        // The guest masks the tail during our first attempt: the retry links
        // it and drops BUSY in the same store.
        let mut m = racy(LINKED | 5, MASKED, 1);
        assert_eq!(Fifo::set_link(&mut m, 0, 9, 1), Ok(true));
        assert_eq!(read_u32(&m, 0).unwrap(), LINKED | MASKED | 9);
    }

    #[test]
    fn guest_that_never_stops_loses_only_its_own_event() {
        // Every attempt races: after the retries we give up, clear BUSY and
        // report the event as linked (Xen's behaviour: the event is lost).
        let mut m = racy(LINKED | 5, MASKED, 100);
        assert_eq!(Fifo::set_link(&mut m, 0, 9, 1), Ok(true));
        assert_eq!(read_u32(&m, 0).unwrap() & BUSY, 0);
    }
}
