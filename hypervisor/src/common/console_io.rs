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

use xen_public_abi::xen::{__HYPERVISOR_console_io, CONSOLEIO_read, CONSOLEIO_write};
use xen_public_abi::{Errno, XenResult};

use super::guest_access::GuestAccess;
use super::hypercall::{Caller, Hypervisor};
use super::log_ratelimit::{self, Verdict};

/// `DOMAIN_PBUF_SIZE`: a non-privileged domain's partial-line buffer.
pub const DOMAIN_PBUF_SIZE: usize = 200;
/// `SERIAL_RX_SIZE`: the console input ring.
pub const SERIAL_RX_SIZE: usize = 128;
/// Xen copies guest output in chunks of `sizeof(kbuf) - 1` bytes.
const WRITE_CHUNK: usize = 127;
/// Chunks copied per hypercall entry before a `CONSOLEIO_write` is preempted
/// (the work budget: about 1 KiB).
pub const WRITE_CHUNKS_PER_ENTRY: usize = 8;
/// `printk_ratelimit_ms` and `printk_ratelimit_burst` (one bucket per domain,
/// shared with the domain's other log lines: `log_ratelimit`).
pub use super::log_ratelimit::{RATELIMIT_BURST, RATELIMIT_MS};

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

/// The hypervisor console: output sink, input ring, rate limiter.
pub struct Console {
    sink: Box<dyn ConsoleSink + Send>,
    rx: VecDeque<u8>,
    /// `guest_loglvl=all`: guest lines are not rate-limited.
    unlimited: bool,
}

impl Console {
    pub fn new(sink: Box<dyn ConsoleSink + Send>) -> Self {
        Console {
            sink,
            rx: VecDeque::with_capacity(SERIAL_RX_SIZE),
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

    /// `printk_ratelimit()` with the domain's bucket: may another line of
    /// `domid` be printed at `now_ns`?
    fn ratelimit(&mut self, domid: u16, now_ns: u64) -> bool {
        if self.unlimited {
            return true;
        }
        match log_ratelimit::check_console(domid, now_ns / 1_000_000) {
            Verdict::Print { suppressed } => {
                if suppressed != 0 {
                    let note = format!("(XEN) printk: {suppressed} messages suppressed.\n");
                    self.sink.write(note.as_bytes());
                }
                true
            }
            Verdict::Drop => false,
        }
    }

    /// Print one complete guest line, prefixed and rate-limited.
    fn guest_line(&mut self, domid: u16, line: &[u8], now_ns: u64) {
        if self.ratelimit(domid, now_ns) {
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
        CONSOLEIO_write => match console_write(hv, caller, privileged, count, buffer, guest) {
            Ok(Some((left, at))) => {
                hv.domains.create_continuation(
                    __HYPERVISOR_console_io,
                    [u64::from(CONSOLEIO_write), u64::from(left), at, 0, 0],
                );
                Ok(0)
            }
            Ok(None) => Ok(0),
            Err(e) => Err(e),
        },
        CONSOLEIO_read => console_read(hv, count, buffer, guest),
        _ => Err(Errno::ENOSYS),
    };
    match r {
        Ok(v) => v,
        Err(e) => e.as_ret(),
    }
}

/// `guest_console_write()`: chunk by chunk; a bad buffer is `-EFAULT` (chunks
/// before it have been written, as in Xen). At most [`WRITE_CHUNKS_PER_ENTRY`]
/// chunks per hypercall entry: with bytes left, returns the count left and
/// where they start, for the continuation (Xen's `"iih"` continuation with the
/// buffer moved on and the count reduced).
fn console_write(
    hv: &mut Hypervisor,
    caller: Caller,
    privileged: bool,
    count: u32,
    buffer: u64,
    guest: &mut dyn GuestAccess,
) -> XenResult<Option<(u32, u64)>> {
    let mut left = count;
    let mut addr = buffer;
    let mut kbuf = [0u8; WRITE_CHUNK];
    let mut chunks = 0;
    while left > 0 {
        if chunks == WRITE_CHUNKS_PER_ENTRY {
            return Ok(Some((left, addr)));
        }
        chunks += 1;
        let n = (left as usize).min(WRITE_CHUNK);
        guest.copy_from_guest(addr, &mut kbuf[..n])?;
        if privileged {
            hv.console.sink.write(&kbuf[..n]);
        } else {
            guest_chunk(hv, caller.domid, &kbuf[..n]);
        }
        addr = addr.wrapping_add(n as u64);
        // n <= left.
        left -= n as u32;
    }
    Ok(None)
}

/// One chunk of a non-privileged domain's output, line by line.
fn guest_chunk(hv: &mut Hypervisor, domid: u16, mut chunk: &[u8]) {
    while !chunk.is_empty() {
        let consumed = guest_line_part(hv, domid, chunk);
        chunk = &chunk[consumed..];
    }
}

/// Filter up to and including the first newline of `chunk`, then either buffer
/// the text or print the completed line. Returns how many input bytes were
/// consumed.
fn guest_line_part(hv: &mut Hypervisor, domid: u16, chunk: &[u8]) -> usize {
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

/// `__serial_rx()` with serial input switched to the hardware domain (where
/// Xen 4.17 switches it at the end of boot, `console_endboot()`): the byte is
/// kept for `CONSOLEIO_read` unless the 128-byte ring is full, and dom0 is
/// always notified through the global `VIRQ_CONSOLE` (so a full ring cannot
/// stall the reader). Returns whether the byte was kept.
///
/// Xen's CTRL-a ×3 switch that hands input to the hypervisor's own key
/// handlers (`handle_keypress`) is not implemented: there are no debug keys,
/// so input always goes to dom0.
pub fn serial_rx(
    console: &mut Console,
    evtchn: &mut dyn super::event_channel::EvtchnEnv,
    c: u8,
) -> bool {
    let kept = console.push_rx(c);
    super::event_channel::send_global_virq(evtchn, xen_public_abi::xen::VIRQ_CONSOLE);
    kept
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
    use crate::common::guest_access::GuestAccess;
    use crate::common::test_support::*;
    use xen_public_abi::xen::{__HYPERVISOR_console_io as CIO, CONSOLEIO_read, CONSOLEIO_write};
    use xen_public_abi::{Errno, XenResult};

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

    /// One page of text aliased over the whole address space (the hostile
    /// guest's trick: a count of 2³² costs it one page); counts the bytes read.
    struct Aliased {
        page: [u8; 4096],
        read: u64,
    }
    impl GuestAccess for Aliased {
        fn copy_from_guest(&mut self, gva: u64, buf: &mut [u8]) -> XenResult<()> {
            for (i, b) in buf.iter_mut().enumerate() {
                *b = self.page[(gva.wrapping_add(i as u64) & 0xfff) as usize];
            }
            self.read += buf.len() as u64;
            Ok(())
        }
        fn copy_to_guest(&mut self, _: u64, _: &[u8]) -> XenResult<()> {
            Err(Errno::EFAULT)
        }
    }

    /// Defect 3 of issue 14: a huge `CONSOLEIO_write` is done in bounded entries
    /// (about 1 KiB each), each continuing with the buffer moved on and the count
    /// reduced; re-entered as a guest would, it writes the same as one call.
    #[test]
    fn huge_write_is_preempted_and_continued() {
        use super::WRITE_CHUNKS_PER_ENTRY;
        use crate::common::hypercall::{
            hypercall_entry, Caller, HypercallOutcome, HypercallRegs, NoExt,
        };
        let mut env = Env::new();
        let mut page = [b'a'; 4096];
        for (i, b) in page.iter_mut().enumerate() {
            *b = b'a' + (i % 26) as u8;
        }
        let mut g = Aliased { page, read: 0 };
        let count: u64 = 300_007;
        let start = 0xffff_ffff_ffff_0123;
        let mut regs = HypercallRegs {
            rax: u64::from(CIO),
            args: [u64::from(CONSOLEIO_write), count, start, 0, 0],
        };
        let caller = Caller { domid: 0, vcpu: 0 };
        let mut entries = 0u64;
        loop {
            entries += 1;
            let before = g.read;
            let out = hypercall_entry(&mut env.hv, &mut NoExt, caller, regs.rax, regs.args, &mut g);
            assert!(g.read - before <= (WRITE_CHUNKS_PER_ENTRY * 127) as u64);
            if let HypercallOutcome::Continue(c) = out {
                assert_eq!(c.number, CIO);
                assert_eq!(c.args[0], u64::from(CONSOLEIO_write));
                assert_eq!(c.args[1], count - (g.read), "count reduced");
                assert_eq!(c.args[2], start.wrapping_add(g.read), "buffer moved on");
            }
            if out.apply(&mut regs) {
                break;
            }
        }
        assert_eq!(regs.rax, 0);
        let per_entry = (WRITE_CHUNKS_PER_ENTRY * 127) as u64;
        assert_eq!(entries, count.div_ceil(per_entry));
        let text = env.sink.text();
        assert_eq!(text.len() as u64, count);
        let want: alloc::vec::Vec<u8> = (0..count)
            .map(|i| g.page[(start.wrapping_add(i) & 0xfff) as usize])
            .collect();
        assert!(text.as_bytes() == want.as_slice(), "same bytes as one call");
        // The run-to-completion form gives the same result.
        let mut env2 = Env::new();
        let rc = env2.hypercall_with(
            0,
            CIO,
            [u64::from(CONSOLEIO_write), count, start, 0, 0],
            &mut g,
        );
        assert_eq!((rc, env2.sink.text()), (0, text));
    }

    /// A domU's newline flood (4 GiB of `\n` from one page) costs bounded work per
    /// entry; the lines are rate-limited and counted.
    #[test]
    fn domu_newline_flood_is_bounded() {
        use crate::common::hypercall::{hypercall_entry, Caller, HypercallRegs, NoExt};
        let mut env = Env::new();
        let (_, u) = env.create(&baseline(), 0);
        let mut g = Aliased {
            page: [b'\n'; 4096],
            read: 0,
        };
        let mut regs = HypercallRegs {
            rax: u64::from(CIO),
            args: [u64::from(CONSOLEIO_write), u64::from(u32::MAX), 0, 0, 0],
        };
        // The first 50 entries: each reads at most its budget, and re-enters.
        for _ in 0..50 {
            let before = g.read;
            let out = hypercall_entry(
                &mut env.hv,
                &mut NoExt,
                Caller { domid: u, vcpu: 0 },
                regs.rax,
                regs.args,
                &mut g,
            );
            assert!(g.read - before <= 8 * 127);
            assert!(!out.apply(&mut regs), "not done yet");
        }
        assert_eq!(regs.args[1], u64::from(u32::MAX) - g.read);
        assert_eq!(env.sink.text().lines().count(), 10, "burst of 10 lines");
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
