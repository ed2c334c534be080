//! Rate limiting of guest-triggered log lines, one token bucket per domain.
//!
//! Mirrors Xen 4.17's `__printk_ratelimit()` (`xen/drivers/char/console.c`: a
//! bucket of `burst × interval` milliseconds of tokens, one `interval` per
//! line, "printk: N messages suppressed." when a line passes again) and its
//! `gprintk()` (`XENLOG_GUEST` lines, which a guest can provoke at will). Xen
//! has one bucket for all guests; here each domain has its own, so a noisy
//! guest cannot silence another guest's lines (or the hypervisor's: those are
//! not limited).
//!
//! Every line a guest can make the hypervisor print (an unknown hypercall, a
//! failing `EVTCHNOP`, an upcall vector set, a vLAPIC ICR write, an unknown MSR)
//! goes through [`gprintk!`] or [`check`]; its own console lines
//! (`CONSOLEIO_write`) through [`check_console`]. The two are separate buckets
//! ([`Stream`]), so diagnostics a guest provokes (a loop of failing binds while
//! it waits for its peer) cannot silence the lines it chose to print, and
//! neither stream is unbounded. The buckets live
//! in one small fixed table (no heap: [`SLOTS`] domains; the least recently
//! used slot is reused, which gives that domain a fresh burst; only the
//! privileged domain creates domains, so a guest cannot cycle them). Under host
//! tests the table is per thread, so tests do not share buckets.
//!
//! Time comes from the caller ([`check`]) or from the clock the arch code
//! installs with [`set_clock`] ([`gprintk!`]); without one it stands at 0
//! (tokens never come back after the burst).

use xen_public_abi::xen::domid_t;

/// `printk_ratelimit_ms`: one line per 5 s once the burst is spent.
pub const RATELIMIT_MS: u64 = 5000;
/// `printk_ratelimit_burst`: lines that may pass at once.
pub const RATELIMIT_BURST: u64 = 10;
/// Domains with a bucket at a time.
pub const SLOTS: usize = 64;

/// One token bucket (Xen's `__printk_ratelimit` state), in milliseconds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RateLimit {
    toks: u64,
    last_ms: u64,
    missed: u64,
}

/// What to do with one line.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// Print it, after a "`suppressed` messages suppressed" note if non-zero.
    Print { suppressed: u64 },
    /// Drop it (counted).
    Drop,
}

impl RateLimit {
    /// A full bucket (the burst is available) at time `now_ms`.
    pub const fn new(now_ms: u64) -> Self {
        RateLimit {
            toks: RATELIMIT_BURST * RATELIMIT_MS,
            last_ms: now_ms,
            missed: 0,
        }
    }

    /// May a line pass at `now_ms`?
    pub fn check(&mut self, now_ms: u64) -> Verdict {
        let max = RATELIMIT_BURST * RATELIMIT_MS;
        self.toks = self
            .toks
            .saturating_add(now_ms.saturating_sub(self.last_ms))
            .min(max);
        self.last_ms = self.last_ms.max(now_ms);
        if self.toks >= RATELIMIT_MS {
            self.toks -= RATELIMIT_MS;
            Verdict::Print {
                suppressed: core::mem::take(&mut self.missed),
            }
        } else {
            self.missed += 1;
            Verdict::Drop
        }
    }

    /// Lines dropped since the last one that passed.
    pub fn missed(&self) -> u64 {
        self.missed
    }
}

/// Which of a domain's two buckets a line draws on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Stream {
    /// Lines the hypervisor logs about what the guest did (`gprintk`).
    Diagnostics,
    /// The guest's own console output (`CONSOLEIO_write`).
    Console,
}

/// One slot of [`Limits`]: whose bucket, the bucket, when it was last used.
type Slot = Option<((domid_t, Stream), RateLimit, u64)>;

/// The per-domain buckets: a fixed table, least recently used slot reused.
#[derive(Clone, Debug)]
pub struct Limits {
    slots: [Slot; SLOTS],
    uses: u64,
}

impl Default for Limits {
    fn default() -> Self {
        Self::new()
    }
}

impl Limits {
    pub const fn new() -> Self {
        Limits {
            slots: [None; SLOTS],
            uses: 0,
        }
    }

    /// May a diagnostic line about `domid` pass at `now_ms`?
    pub fn check(&mut self, domid: domid_t, now_ms: u64) -> Verdict {
        self.check_stream(domid, Stream::Diagnostics, now_ms)
    }

    /// May a line of `domid`'s `stream` pass at `now_ms`?
    pub fn check_stream(&mut self, domid: domid_t, stream: Stream, now_ms: u64) -> Verdict {
        let key = (domid, stream);
        self.uses += 1;
        let uses = self.uses;
        let i = match self
            .slots
            .iter()
            .position(|s| s.is_some_and(|(k, _, _)| k == key))
        {
            Some(i) => i,
            None => {
                // A free slot, else the least recently used one.
                let i = self
                    .slots
                    .iter()
                    .enumerate()
                    .min_by_key(|(_, s)| s.map_or(0, |(_, _, used)| used))
                    .map_or(0, |(i, _)| i);
                self.slots[i] = Some((key, RateLimit::new(now_ms), uses));
                i
            }
        };
        match &mut self.slots[i] {
            Some((_, limit, used)) => {
                *used = uses;
                limit.check(now_ms)
            }
            None => Verdict::Drop,
        }
    }

    /// The domain is gone: free its slots.
    pub fn forget(&mut self, domid: domid_t) {
        for s in self.slots.iter_mut() {
            if s.is_some_and(|((d, _), _, _)| d == domid) {
                *s = None;
            }
        }
    }
}

#[cfg(not(test))]
static LIMITS: spin::Mutex<Limits> = spin::Mutex::new(Limits::new());

#[cfg(test)]
std::thread_local! {
    static LIMITS: core::cell::RefCell<Limits> = const { core::cell::RefCell::new(Limits::new()) };
}

fn with_limits<R>(f: impl FnOnce(&mut Limits) -> R) -> R {
    #[cfg(not(test))]
    {
        f(&mut LIMITS.lock())
    }
    #[cfg(test)]
    {
        LIMITS.with(|l| f(&mut l.borrow_mut()))
    }
}

/// May a line of `domid` pass at `now_ms` (its domain's bucket)?
pub fn check(domid: domid_t, now_ms: u64) -> Verdict {
    with_limits(|l| l.check(domid, now_ms))
}

/// May a console line (`CONSOLEIO_write`) of `domid` pass at `now_ms`?
pub fn check_console(domid: domid_t, now_ms: u64) -> Verdict {
    with_limits(|l| l.check_stream(domid, Stream::Console, now_ms))
}

/// Forget a destroyed domain's buckets.
pub fn forget(domid: domid_t) {
    with_limits(|l| l.forget(domid))
}

/// The clock [`gprintk!`] uses: milliseconds since boot.
static CLOCK: spin::Once<fn() -> u64> = spin::Once::new();

/// Install the clock [`gprintk!`] reads (the arch code, once, at boot).
pub fn set_clock(now_ms: fn() -> u64) {
    CLOCK.call_once(|| now_ms);
}

/// Now, by the installed clock (0 until one is installed).
pub fn now_ms() -> u64 {
    CLOCK.get().map_or(0, |f| f())
}

/// `gprintk()`: log a line a guest made happen, through domain `domid`'s bucket
/// (time from [`set_clock`]). A dropped line is counted; the next line that
/// passes is preceded by `d<id>: N messages suppressed`.
///
/// ```ignore
/// gprintk!(domid, log::Level::Debug, "hypercall {nr} is not available");
/// ```
#[macro_export]
macro_rules! gprintk {
    ($domid:expr, $lvl:expr, $($arg:tt)+) => {{
        let domid: u16 = $domid;
        if let $crate::common::log_ratelimit::Verdict::Print { suppressed } =
            $crate::common::log_ratelimit::check(domid, $crate::common::log_ratelimit::now_ms())
        {
            if suppressed != 0 {
                log::log!($lvl, "d{domid}: {suppressed} messages suppressed");
            }
            log::log!($lvl, $($arg)+);
        }
    }};
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A burst of 10, then one line per 5 s; the dropped lines are counted and
    /// reported with the next line that passes; the bucket never holds more
    /// than the burst however long the quiet.
    #[test]
    fn token_bucket_with_a_fake_clock() {
        let mut l = RateLimit::new(0);
        for _ in 0..10 {
            assert_eq!(l.check(0), Verdict::Print { suppressed: 0 });
        }
        for _ in 0..7 {
            assert_eq!(l.check(1000), Verdict::Drop);
        }
        assert_eq!(l.missed(), 7);
        assert_eq!(l.check(4999), Verdict::Drop);
        assert_eq!(l.check(5000), Verdict::Print { suppressed: 8 });
        assert_eq!(l.check(5001), Verdict::Drop);
        // A day of quiet refills only the burst.
        let day = 86_400_000;
        for _ in 0..10 {
            assert!(matches!(l.check(day), Verdict::Print { .. }));
        }
        assert_eq!(l.check(day), Verdict::Drop);
        // Time going backwards (another CPU's clock read) gives nothing back.
        assert_eq!(l.check(day - 100_000), Verdict::Drop);
    }

    /// One bucket per domain: a flood from d1 does not silence d2.
    #[test]
    fn per_domain_buckets() {
        let mut t = Limits::new();
        for _ in 0..10 {
            assert!(matches!(t.check(1, 0), Verdict::Print { .. }));
        }
        for _ in 0..1000 {
            assert_eq!(t.check(1, 0), Verdict::Drop);
        }
        assert_eq!(t.check(2, 0), Verdict::Print { suppressed: 0 });
        assert_eq!(
            t.check(1, RATELIMIT_MS),
            Verdict::Print { suppressed: 1000 }
        );
        // More domains than slots: the least recently used slot is reused.
        for d in 10..10 + SLOTS as u16 {
            assert!(matches!(t.check(d, 0), Verdict::Print { .. }));
        }
        assert_eq!(t.check(1, RATELIMIT_MS), Verdict::Print { suppressed: 0 });
        // Forgetting a domain frees its slot.
        t.forget(1);
        assert!(t
            .slots
            .iter()
            .all(|s| !s.is_some_and(|((d, _), _, _)| d == 1)));
    }

    /// A domain's diagnostics and its console lines are separate buckets: a
    /// guest whose failing hypercalls spend the diagnostic burst still gets its
    /// console lines out (each stream bounded on its own).
    #[test]
    fn diagnostics_do_not_silence_the_console() {
        let mut t = Limits::new();
        for _ in 0..100 {
            t.check(1, 0);
        }
        assert_eq!(t.check(1, 0), Verdict::Drop);
        for _ in 0..10 {
            assert!(matches!(
                t.check_stream(1, Stream::Console, 0),
                Verdict::Print { .. }
            ));
        }
        assert_eq!(t.check_stream(1, Stream::Console, 0), Verdict::Drop);
        t.forget(1);
        assert!(t.slots.iter().all(|s| s.is_none()));
    }

    /// `gprintk!` goes through the thread's table: after the burst the lines
    /// are dropped (the clock stands still in host tests).
    #[test]
    fn gprintk_is_limited() {
        use crate::common::test_support::logcap;
        logcap::start();
        for i in 0..25 {
            crate::gprintk!(7, log::Level::Warn, "d7: line {i}");
        }
        let lines = logcap::lines();
        assert_eq!(lines.len(), 10, "{lines:?}");
        assert!(lines[9].ends_with("line 9"));
    }
}
