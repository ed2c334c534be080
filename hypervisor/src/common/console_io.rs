//! `__HYPERVISOR_console_io`: guests writing to (and dom0 reading from) the
//! hypervisor's console.
//!
//! Mirrors Xen 4.17's `do_console_io()` and `guest_console_write()`
//! (`xen/drivers/char/console.c`) and `__printk_ratelimit()`:
//! - a privileged domain's bytes go to the console as they are;
//! - any other domain's output is stripped of non-printable characters, buffered
//!   per domain until a newline (`pbuf`, 200 bytes), printed as one line prefixed
//!   `(dN) `, and rate-limited (burst of 10 lines, then one per 5 s, with a
//!   "messages suppressed" note), as Xen does for guest log lines;
//! - `CONSOLEIO_read` (privileged domains only) drains the 128-byte serial
//!   input ring that the arch code fills.
//!
//! Permission follows the dummy XSM policy with `CONFIG_VERBOSE_DEBUG`'s rule that
//! any domain may write: privileged domains may do everything, other domains
//! only `CONSOLEIO_write` (`-EPERM` for the rest, before the command is looked at).

// Xen's names (`XEN_DOMCTL_createdomain`, `__HYPERVISOR_domctl`, ...) in match patterns.
#![allow(non_upper_case_globals)]

use alloc::boxed::Box;
use alloc::collections::VecDeque;
use alloc::format;
use alloc::vec;

use xen_public_abi::xen::{CONSOLEIO_read, CONSOLEIO_write};
use xen_public_abi::{Errno, XenResult};

use super::guest_access::GuestAccess;
use super::hypercall::{Caller, Hypervisor};

/// `DOMAIN_PBUF_SIZE`: a non-privileged domain's partial-line buffer.
pub const DOMAIN_PBUF_SIZE: usize = 200;
/// `SERIAL_RX_SIZE`: the console input ring.
pub const SERIAL_RX_SIZE: usize = 128;
/// Xen copies guest output in chunks of `sizeof(kbuf) - 1` bytes.
const WRITE_CHUNK: usize = 127;
/// `printk_ratelimit_ms` and `printk_ratelimit_burst`.
pub const RATELIMIT_MS: u64 = 5000;
pub const RATELIMIT_BURST: u64 = 10;

/// Where console output goes (the serial port, in the arch code).
pub trait ConsoleSink {
    fn write(&mut self, bytes: &[u8]);
}

/// A non-privileged domain's partial console line (`pbuf`/`pbuf_idx`).
#[derive(Debug, Clone)]
pub struct GuestConsoleBuffer {
    buf: vec::Vec<u8>,
}

impl GuestConsoleBuffer {
    pub fn new() -> Self {
        GuestConsoleBuffer {
            buf: vec::Vec::new(),
        }
    }
    /// Bytes waiting for their newline.
    pub fn pending(&self) -> &[u8] {
        &self.buf
    }
}

impl Default for GuestConsoleBuffer {
    fn default() -> Self {
        Self::new()
    }
}

/// Xen's `__printk_ratelimit()` state: a token bucket in milliseconds.
struct RateLimit {
    toks: u64,
    last_ms: u64,
    missed: u64,
}

/// The hypervisor console: output sink, input ring, rate limiter.
pub struct Console {
    sink: Box<dyn ConsoleSink + Send>,
    rx: VecDeque<u8>,
    limit: RateLimit,
    /// `guest_loglvl=all/all`: guest lines are not rate-limited.
    unlimited: bool,
}

impl Console {
    pub fn new(sink: Box<dyn ConsoleSink + Send>) -> Self {
        Console {
            sink,
            rx: VecDeque::with_capacity(SERIAL_RX_SIZE),
            limit: RateLimit {
                toks: RATELIMIT_BURST * RATELIMIT_MS,
                last_ms: 0,
                missed: 0,
            },
            unlimited: false,
        }
    }

    /// Whether guest lines are rate-limited (the default, as Xen's
    /// `guest_loglvl`'s rate-limited level); `boot.cmd`'s `guest_loglvl=all`
    /// turns it off for debugging.
    pub fn set_guest_ratelimit(&mut self, enabled: bool) {
        self.unlimited = !enabled;
    }

    /// A byte arrived on the console input (`__serial_rx`): kept for
    /// `CONSOLEIO_read`, dropped when the ring is full. Returns whether it was kept.
    pub fn push_rx(&mut self, c: u8) -> bool {
        if self.rx.len() >= SERIAL_RX_SIZE {
            return false;
        }
        self.rx.push_back(c);
        true
    }

    /// Write hypervisor-originated bytes as they are.
    pub fn write_raw(&mut self, bytes: &[u8]) {
        self.sink.write(bytes);
    }

    /// `printk_ratelimit()`: may another guest line be printed at `now_ns`?
    fn ratelimit(&mut self, now_ns: u64) -> bool {
        if self.unlimited {
            return true;
        }
        let ms = now_ns / 1_000_000;
        let l = &mut self.limit;
        l.toks = l.toks.saturating_add(ms.saturating_sub(l.last_ms));
        l.last_ms = ms;
        l.toks = l.toks.min(RATELIMIT_BURST * RATELIMIT_MS);
        if l.toks >= RATELIMIT_MS {
            l.toks -= RATELIMIT_MS;
            let lost = core::mem::take(&mut l.missed);
            if lost != 0 {
                let note = format!("(XEN) printk: {lost} messages suppressed.\n");
                self.sink.write(note.as_bytes());
            }
            true
        } else {
            l.missed += 1;
            false
        }
    }

    /// Print one complete guest line, prefixed and rate-limited.
    fn guest_line(&mut self, domid: u16, line: &[u8], now_ns: u64) {
        if self.ratelimit(now_ns) {
            self.sink.write(format!("(d{domid}) ").as_bytes());
            self.sink.write(line);
            self.sink.write(b"\n");
        }
    }
}

/// `isprint(c) || c == '\t'`, as Xen filters guest output.
fn keep_char(c: u8) -> bool {
    (0x20..0x7f).contains(&c) || c == b'\t'
}

/// `__HYPERVISOR_console_io(unsigned int cmd, unsigned int count, char *buffer)`.
pub fn do_console_io(
    hv: &mut Hypervisor,
    caller: Caller,
    cmd: u32,
    count: u32,
    buffer: u64,
    guest: &mut dyn GuestAccess,
) -> i64 {
    let privileged = match hv.domains.get(caller.domid) {
        Some(d) => d.is_privileged,
        None => return Errno::ESRCH.as_ret(),
    };
    if !privileged && cmd != CONSOLEIO_write {
        return Errno::EPERM.as_ret();
    }
    let r = match cmd {
        CONSOLEIO_write => console_write(hv, caller, privileged, count, buffer, guest).map(|()| 0),
        CONSOLEIO_read => console_read(hv, count, buffer, guest),
        _ => Err(Errno::ENOSYS),
    };
    match r {
        Ok(v) => v,
        Err(e) => e.as_ret(),
    }
}

/// `guest_console_write()`: chunk by chunk; a bad buffer is `-EFAULT` (chunks
/// before it have been written, as in Xen).
fn console_write(
    hv: &mut Hypervisor,
    caller: Caller,
    privileged: bool,
    count: u32,
    buffer: u64,
    guest: &mut dyn GuestAccess,
) -> XenResult<()> {
    let mut left = count as usize;
    let mut addr = buffer;
    let mut kbuf = [0u8; WRITE_CHUNK];
    while left > 0 {
        let n = left.min(WRITE_CHUNK);
        guest.copy_from_guest(addr, &mut kbuf[..n])?;
        let consumed = if privileged {
            hv.console.sink.write(&kbuf[..n]);
            n
        } else {
            guest_chunk(hv, caller.domid, &kbuf[..n])
        };
        addr = addr.wrapping_add(consumed as u64);
        left -= consumed;
    }
    Ok(())
}

/// One chunk of a non-privileged domain's output: filter up to and including the
/// first newline, then either buffer the text or print the completed line.
/// Returns how many input bytes were consumed.
fn guest_chunk(hv: &mut Hypervisor, domid: u16, chunk: &[u8]) -> usize {
    let (text, consumed, newline) = match chunk.iter().position(|&c| c == b'\n') {
        Some(i) => (&chunk[..i], i + 1, true),
        None => (chunk, chunk.len(), false),
    };
    let Some(d) = hv.domains.get_mut(domid) else {
        return consumed;
    };
    let pbuf = &mut d.console.buf;
    let kept = text.iter().copied().filter(|&c| keep_char(c));
    let kept_len = text.iter().filter(|&&c| keep_char(c)).count();
    if !newline && pbuf.len() + kept_len < DOMAIN_PBUF_SIZE - 1 {
        pbuf.extend(kept);
        return consumed;
    }
    let mut line = core::mem::take(pbuf);
    line.extend(kept);
    let now = hv.clock.now_ns();
    hv.console.guest_line(domid, &line, now);
    consumed
}

/// `CONSOLEIO_read`: up to `count` bytes from the input ring; returns how many.
fn console_read(
    hv: &mut Hypervisor,
    count: u32,
    buffer: u64,
    guest: &mut dyn GuestAccess,
) -> XenResult<i64> {
    if count > i32::MAX as u32 {
        return Err(Errno::E2BIG);
    }
    let n = hv.console.rx.len().min(count as usize);
    if n == 0 {
        return Ok(0);
    }
    let bytes: vec::Vec<u8> = hv.console.rx.iter().take(n).copied().collect();
    guest.copy_to_guest(buffer, &bytes)?;
    hv.console.rx.drain(..n);
    Ok(n as i64)
}

/// Test double: a sink that records.
#[cfg(test)]
pub mod fake {
    use super::*;
    use alloc::sync::Arc;
    use alloc::vec::Vec;
    use spin::Mutex;

    /// Records everything written; clones share the record.
    #[derive(Clone, Default)]
    pub struct RecordingSink(pub Arc<Mutex<Vec<u8>>>);
    impl RecordingSink {
        pub fn text(&self) -> alloc::string::String {
            alloc::string::String::from_utf8_lossy(&self.0.lock()).into_owned()
        }
    }
    impl ConsoleSink for RecordingSink {
        fn write(&mut self, bytes: &[u8]) {
            self.0.lock().extend_from_slice(bytes);
        }
    }
}

#[cfg(test)]
mod tests {
    use crate::common::test_support::*;
    use xen_public_abi::xen::{__HYPERVISOR_console_io as CIO, CONSOLEIO_read, CONSOLEIO_write};

    fn write(env: &mut Env, dom: u16, bytes: &[u8]) -> i64 {
        env.mem.bytes[ARG_GVA as usize..ARG_GVA as usize + bytes.len()].copy_from_slice(bytes);
        env.hypercall(
            dom,
            CIO,
            [
                u64::from(CONSOLEIO_write),
                bytes.len() as u64,
                ARG_GVA,
                0,
                0,
            ],
        )
    }

    #[test]
    fn dom0_writes_raw() {
        let mut env = Env::new();
        assert_eq!(write(&mut env, 0, b"raw\x07bytes\nno newline"), 0);
        assert_eq!(env.sink.text(), "raw\x07bytes\nno newline");
        // count 0 writes nothing; count larger than one chunk arrives whole.
        assert_eq!(write(&mut env, 0, b""), 0);
        let long = [b'a'; 300];
        assert_eq!(write(&mut env, 0, &long), 0);
        assert_eq!(
            env.sink.text().len(),
            "raw\x07bytes\nno newline".len() + 300
        );
    }

    #[test]
    fn domu_lines_are_filtered_buffered_and_prefixed() {
        let mut env = Env::new();
        let (_, u) = env.create(&baseline(), 0);
        assert_eq!(write(&mut env, u, b"hel"), 0);
        assert_eq!(env.sink.text(), "", "held until the newline");
        assert_eq!(write(&mut env, u, b"lo\x1b[0m\tworld\nsecond\nthi"), 0);
        assert_eq!(env.sink.text(), "(d1) hello[0m\tworld\n(d1) second\n");
        assert_eq!(env.hv.domains.get(u).unwrap().console.pending(), b"thi");
        // A line that would overflow the 200-byte buffer is printed at once.
        let long = [b'x'; 250];
        env.sink.0.lock().clear();
        assert_eq!(write(&mut env, u, &long), 0);
        let text = env.sink.text();
        assert!(text.starts_with("(d1) thixxx"), "{text}");
        assert!(env.hv.domains.get(u).unwrap().console.pending().len() < 200);
    }

    /// Guest lines are rate-limited like Xen's printk: a burst of 10, then one
    /// per 5 s, and the count of suppressed lines is reported.
    #[test]
    fn domu_output_is_rate_limited() {
        let mut env = Env::new();
        let (_, u) = env.create(&baseline(), 0);
        for i in 0..15 {
            assert_eq!(
                write(&mut env, u, alloc::format!("line {i}\n").as_bytes()),
                0
            );
        }
        let text = env.sink.text();
        assert_eq!(text.lines().count(), 10, "{text}");
        assert!(text.contains("line 9") && !text.contains("line 10"));
        env.clock.advance_ms(5000);
        assert_eq!(write(&mut env, u, b"later\n"), 0);
        let text = env.sink.text();
        assert!(
            text.ends_with("(XEN) printk: 5 messages suppressed.\n(d1) later\n"),
            "{text}"
        );
        // Dom0's output is never limited.
        for _ in 0..20 {
            write(&mut env, 0, b"x\n");
        }
        assert_eq!(env.sink.text().matches("x\n").count(), 20);
    }

    /// `guest_loglvl=all` (boot.cmd) lifts the limit: every line is printed.
    #[test]
    fn domu_output_unlimited_with_guest_loglvl_all() {
        let mut env = Env::new();
        let (_, u) = env.create(&baseline(), 0);
        env.hv.console.set_guest_ratelimit(false);
        for i in 0..50 {
            write(&mut env, u, alloc::format!("line {i}\n").as_bytes());
        }
        let text = env.sink.text();
        assert_eq!(text.lines().count(), 50, "{text}");
        assert!(!text.contains("suppressed"));
        // And back on.
        env.hv.console.set_guest_ratelimit(true);
        for i in 0..20 {
            write(&mut env, u, alloc::format!("again {i}\n").as_bytes());
        }
        assert!(env.sink.text().matches("again").count() < 20);
    }

    #[test]
    fn read_for_dom0_only() {
        let mut env = Env::new();
        let (_, u) = env.create(&baseline(), 0);
        for c in b"abc" {
            assert!(env.hv.console.push_rx(*c));
        }
        let read = |env: &mut Env, dom, count: u64| {
            env.hypercall(dom, CIO, [u64::from(CONSOLEIO_read), count, ARG_GVA, 0, 0])
        };
        assert_eq!(read(&mut env, u, 3), -1, "domU: -EPERM");
        assert_eq!(read(&mut env, 0, 2), 2);
        assert_eq!(
            &env.mem.bytes[ARG_GVA as usize..ARG_GVA as usize + 2],
            b"ab"
        );
        assert_eq!(
            read(&mut env, 0, 0x8000_0000),
            -7,
            "count > INT_MAX: -E2BIG"
        );
        assert_eq!(read(&mut env, 0, 10), 1);
        assert_eq!(read(&mut env, 0, 10), 0);
        // The ring holds 128 bytes and drops the rest.
        for i in 0..200u32 {
            assert_eq!(env.hv.console.push_rx(i as u8), i < 128);
        }
        assert_eq!(read(&mut env, 0, 1000), 128);
    }

    /// Oracle E: an unknown command is -ENOSYS for dom0; for a domU the
    /// permission check comes first (-EPERM).
    #[test]
    fn unknown_command() {
        let mut env = Env::new();
        let (_, u) = env.create(&baseline(), 0);
        assert_eq!(env.hypercall(0, CIO, [99, 0, 0, 0, 0]), -38);
        assert_eq!(env.hypercall(u, CIO, [99, 0, 0, 0, 0]), -1);
    }

    /// A fault part-way: the chunks before it are written, then -EFAULT.
    #[test]
    fn fault_after_first_chunk() {
        let mut env = Env::new();
        let start = HOLE_GVA - 127;
        env.mem.bytes[start as usize..HOLE_GVA as usize].fill(b'z');
        let rc = env.hypercall(0, CIO, [u64::from(CONSOLEIO_write), 200, start, 0, 0]);
        assert_eq!(rc, -14);
        assert_eq!(env.sink.text(), "z".repeat(127));
    }
}
