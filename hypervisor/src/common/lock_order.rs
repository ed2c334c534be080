//! The hypervisor's lock order and the per-CPU record that checks it.
//!
//! Every lock shared between CPUs belongs to one [`LockClass`]; a CPU may take a
//! lock only while every lock it already holds has a *lower* class (the order
//! of `docs/locking.md`). Taking a lock out of order (or a second lock of the
//! same class) is a latent deadlock: [`HeldLocks::acquire`] refuses it and the
//! arch wrapper (`arch/x86_64/lock.rs`) stops the hypervisor with both names,
//! the first time the path runs rather than the day two CPUs race on it.
//!
//! Xen checks its lock order with `CONFIG_DEBUG_LOCKS` (`check_lock()`: IRQ-safety
//! only) and documents the rest in comments; here the order is data, so the
//! check is exact. The record is one bitmask per CPU, so it costs an atomic
//! load and store per lock taken.

use core::sync::atomic::{AtomicU32, Ordering};

/// The classes of lock, in the order they may be taken (lowest first).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
#[repr(u8)]
pub enum LockClass {
    /// The hypervisor state: domain table, event channels, run queue, hardware
    /// vCPU slots (`arch/x86_64/sched.rs` `STATE`). Outermost.
    State = 0,
    /// Hardware vCPUs made by `XEN_DOMCTL_max_vcpus`, waiting to join the slots.
    NewVcpus = 1,
    /// The stage-2 (NPT/EPT) trees of every domain (`hvm/stage2.rs` `TREES`).
    Stage2Trees = 2,
    /// The machine frame allocator (`arch/x86_64/frame.rs` `FRAMES`).
    Frames = 3,
}

impl LockClass {
    /// Every class, in order.
    pub const ALL: [LockClass; 4] = [
        LockClass::State,
        LockClass::NewVcpus,
        LockClass::Stage2Trees,
        LockClass::Frames,
    ];

    fn bit(self) -> u32 {
        1 << (self as u8)
    }

    /// The class of the highest bit in `mask` (`None` for 0).
    fn highest(mask: u32) -> Option<LockClass> {
        LockClass::ALL
            .iter()
            .rev()
            .copied()
            .find(|c| mask & c.bit() != 0)
    }
}

/// A lock taken out of order: `wanted` while `held` (the highest class held).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct OrderViolation {
    pub held: LockClass,
    pub wanted: LockClass,
}

/// The classes one CPU holds (a bitmask). Only that CPU changes it; others may
/// read it (a debugger, a fatal-error dump).
#[derive(Debug, Default)]
pub struct HeldLocks(AtomicU32);

impl HeldLocks {
    pub const fn new() -> Self {
        HeldLocks(AtomicU32::new(0))
    }

    /// Record that this CPU takes a lock of `class`: refused if it holds one of
    /// the same or a later class.
    pub fn acquire(&self, class: LockClass) -> Result<(), OrderViolation> {
        let held = self.0.load(Ordering::Relaxed);
        // Same or later class: any bit at or above ours.
        let later = held & !(class.bit() - 1);
        if let Some(h) = LockClass::highest(later) {
            return Err(OrderViolation {
                held: h,
                wanted: class,
            });
        }
        self.0.store(held | class.bit(), Ordering::Relaxed);
        Ok(())
    }

    /// Record that this CPU dropped its lock of `class`.
    pub fn release(&self, class: LockClass) {
        let held = self.0.load(Ordering::Relaxed);
        self.0.store(held & !class.bit(), Ordering::Relaxed);
    }

    /// The highest class held, if any.
    pub fn highest_held(&self) -> Option<LockClass> {
        LockClass::highest(self.0.load(Ordering::Relaxed))
    }

    /// Whether a lock of `class` is held.
    pub fn holds(&self, class: LockClass) -> bool {
        self.0.load(Ordering::Relaxed) & class.bit() != 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_documented_order_is_accepted() {
        let h = HeldLocks::new();
        for c in LockClass::ALL {
            h.acquire(c).unwrap();
        }
        for c in LockClass::ALL.iter().rev() {
            h.release(*c);
        }
        assert!(!h.holds(LockClass::State));
        assert_eq!(h.highest_held(), None);
        // Skipping classes is fine.
        h.acquire(LockClass::State).unwrap();
        h.acquire(LockClass::Frames).unwrap();
        h.release(LockClass::Frames);
        h.acquire(LockClass::Stage2Trees).unwrap();
    }

    #[test]
    fn an_inversion_names_both_locks() {
        let h = HeldLocks::new();
        h.acquire(LockClass::Stage2Trees).unwrap();
        assert_eq!(
            h.acquire(LockClass::State),
            Err(OrderViolation {
                held: LockClass::Stage2Trees,
                wanted: LockClass::State
            })
        );
        h.acquire(LockClass::Frames).unwrap();
        assert_eq!(h.highest_held(), Some(LockClass::Frames));
        assert_eq!(
            h.acquire(LockClass::NewVcpus),
            Err(OrderViolation {
                held: LockClass::Frames,
                wanted: LockClass::NewVcpus
            }),
            "the highest class held is reported"
        );
        assert!(
            !h.holds(LockClass::NewVcpus),
            "a refused lock is not recorded"
        );
    }

    #[test]
    fn the_same_class_twice_is_refused() {
        let h = HeldLocks::new();
        h.acquire(LockClass::State).unwrap();
        assert!(h.acquire(LockClass::State).is_err());
        h.release(LockClass::State);
        h.acquire(LockClass::State).unwrap();
    }
}
