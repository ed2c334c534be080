//! Spin locks that check the lock order (`common::lock_order`, `docs/locking.md`).
//!
//! An [`OrderedMutex`] is a `spin::Mutex` with a [`LockClass`]: taking it records
//! the class in this CPU's [`HeldLocks`] first, and a lock taken while this CPU
//! holds one of the same or a later class stops the hypervisor with both names
//! (a hypervisor bug, never guest input: the set of paths is fixed). The check
//! is on in every build: it costs one GS-base read and two relaxed atomics per
//! lock, next to the thousands of cycles of the exit that takes it.
//!
//! Before a CPU has set its GS base it counts as CPU 0; only the BSP runs then.

use core::ops::{Deref, DerefMut};

use crate::common::lock_order::{HeldLocks, LockClass};

use super::percpu::{self, MAX_CPUS};

/// Which classes each CPU holds, by CPU number.
static HELD: [HeldLocks; MAX_CPUS] = [const { HeldLocks::new() }; MAX_CPUS];

/// A spin lock of one [`LockClass`].
pub struct OrderedMutex<T> {
    class: LockClass,
    inner: spin::Mutex<T>,
}

/// The guard: the lock and its record are dropped together.
pub struct OrderedGuard<'a, T> {
    held: &'static HeldLocks,
    class: LockClass,
    guard: spin::MutexGuard<'a, T>,
}

impl<T> OrderedMutex<T> {
    pub const fn new(class: LockClass, value: T) -> Self {
        OrderedMutex {
            class,
            inner: spin::Mutex::new(value),
        }
    }

    /// Take the lock, after checking the order (stops the hypervisor on a
    /// violation).
    pub fn lock(&self) -> OrderedGuard<'_, T> {
        let cpu = percpu::cpu_index() as usize;
        let held = &HELD[cpu.min(MAX_CPUS - 1)];
        if let Err(v) = held.acquire(self.class) {
            panic!(
                "cpu{cpu}: lock order violated: taking {:?} while holding {:?} (docs/locking.md)",
                v.wanted, v.held
            );
        }
        OrderedGuard {
            held,
            class: self.class,
            guard: self.inner.lock(),
        }
    }
}

impl<T> Deref for OrderedGuard<'_, T> {
    type Target = T;
    fn deref(&self) -> &T {
        &self.guard
    }
}

impl<T> DerefMut for OrderedGuard<'_, T> {
    fn deref_mut(&mut self) -> &mut T {
        &mut self.guard
    }
}

impl<T> Drop for OrderedGuard<'_, T> {
    fn drop(&mut self) {
        // The spin lock itself is released right after, when `guard` drops.
        self.held.release(self.class);
    }
}

/// Stop the hypervisor if this CPU holds a checked lock: called before each
/// guest entry (no lock is held while a vCPU runs, `docs/locking.md`).
pub fn assert_none_held() {
    let cpu = percpu::cpu_index() as usize;
    if let Some(c) = HELD[cpu.min(MAX_CPUS - 1)].highest_held() {
        panic!("cpu{cpu}: entering a guest while holding {c:?} (docs/locking.md)");
    }
}
