//! The hypervisor console: COM1 (a 16550 UART, through `uart_16550`) and, where
//! present, Bochs' debug port 0xE9, behind the `log` crate.
//!
//! Every record is one line:
//! `[    1.234567] INFO  cpu0: <message>` — seconds.micros since machine reset
//! (from the calibrated TSC, see [`super::time`]), the level padded to 5, the number
//! of the CPU that logged it. Plays the part of Xen's `drivers/char/console.c`.

use core::fmt::{self, Write};
use core::sync::atomic::{AtomicBool, Ordering};

use spin::Mutex;
use uart_16550::backend::PioBackend;
use uart_16550::{BaudRate, Config, Uart16550};
use x86_64::instructions::port::Port;

use super::{percpu, time};

/// I/O port of the first serial port.
const COM1: u16 = 0x3F8;
/// Bochs' (and QEMU's `-debugcon`) debug console port.
const DEBUG_PORT: u16 = 0xE9;
/// Reading the debug port returns this value when the port exists.
const DEBUG_PORT_MAGIC: u8 = 0xE9;

/// The output sinks, behind one lock so lines from different CPUs never interleave.
struct Console {
    com1: Option<Uart16550<PioBackend>>,
    debug_port: bool,
}

impl Write for Console {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        for &b in s.as_bytes() {
            if b == b'\n' {
                self.put(b'\r');
            }
            self.put(b);
        }
        Ok(())
    }
}

impl Console {
    fn put(&mut self, b: u8) {
        if let Some(uart) = self.com1.as_mut() {
            uart.send_bytes_exact(&[b]);
        }
        if self.debug_port {
            let mut port = Port::<u8>::new(DEBUG_PORT);
            // SAFETY: port 0xE9 is the emulator's debug console; we only write to it
            // after reading back its magic value, so it is not some other device.
            unsafe { port.write(b) };
        }
    }
}

static CONSOLE: Mutex<Console> = Mutex::new(Console {
    com1: None,
    debug_port: false,
});

/// Set once a fatal path has taken the console over (see [`force_unlock`]).
static FATAL: AtomicBool = AtomicBool::new(false);

/// Initialises COM1 (115200 8N1, FIFO on) and probes port 0xE9. Call once, first thing.
pub fn init() {
    // SAFETY: 0x3F8..0x3FF is COM1 on every PC; nothing else in the hypervisor
    // touches these ports.
    let uart = unsafe { Uart16550::new_port(COM1) }.ok();
    let com1 = uart.and_then(|mut u| {
        let config = Config {
            baud_rate: BaudRate::Baud115200,
            ..Config::DEFAULT
        };
        u.init(config).ok().map(|()| u)
    });
    let mut port = Port::<u8>::new(DEBUG_PORT);
    // SAFETY: reading port 0xE9 has no side effect on PC hardware; Bochs and QEMU's
    // debugcon answer 0xE9, an absent port reads as 0xFF.
    let debug_port = unsafe { port.read() } == DEBUG_PORT_MAGIC;
    let mut console = CONSOLE.lock();
    console.com1 = com1;
    console.debug_port = debug_port;
}

/// The `log` backend.
struct Logger;

static LOGGER: Logger = Logger;

impl log::Log for Logger {
    fn enabled(&self, _metadata: &log::Metadata) -> bool {
        true
    }

    fn log(&self, record: &log::Record) {
        let us = time::micros_since_reset();
        let cpu = percpu::cpu_index();
        if DEFERRING
            .get(cpu as usize)
            .is_some_and(|d| d.load(Ordering::Relaxed))
        {
            x86_64::instructions::interrupts::without_interrupts(|| {
                let mut d = DEFERRED.lock();
                DEFERRED_ANY.store(true, Ordering::Release);
                d.push_line(format_args!(
                    "[{:5}.{:06}] {:<5} cpu{}: {}\n",
                    us / 1_000_000,
                    us % 1_000_000,
                    record.level(),
                    cpu,
                    record.args()
                ));
            });
            return;
        }
        // Interrupts off while the lock is held, so an interrupt handler that logs
        // cannot deadlock against the line it interrupted.
        x86_64::instructions::interrupts::without_interrupts(|| {
            let mut console = CONSOLE.lock();
            // Writing to the console cannot fail (`write_str` always returns Ok).
            let _ = writeln!(
                console,
                "[{:5}.{:06}] {:<5} cpu{}: {}",
                us / 1_000_000,
                us % 1_000_000,
                record.level(),
                cpu,
                record.args()
            );
        });
    }

    fn flush(&self) {}
}

/// Bytes of log lines a CPU holding the hypervisor state lock may leave for
/// after the lock is dropped; a line that does not fit is dropped and counted.
const DEFER_BYTES: usize = 16 * 1024;

/// Per CPU: it holds the hypervisor state lock, so its lines are deferred.
static DEFERRING: [AtomicBool; percpu::MAX_CPUS] =
    [const { AtomicBool::new(false) }; percpu::MAX_CPUS];

/// Lines logged under the state lock, oldest first.
struct Deferred {
    buf: [u8; DEFER_BYTES],
    len: usize,
    dropped: u64,
}

impl Deferred {
    /// Append one formatted line, or drop (and count) it whole if it does not fit.
    fn push_line(&mut self, args: fmt::Arguments<'_>) {
        let start = self.len;
        if self.write_fmt(args).is_err() {
            self.len = start;
            self.dropped += 1;
        }
    }
}

impl Write for Deferred {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        let end = self.len.checked_add(s.len()).ok_or(fmt::Error)?;
        let dst = self.buf.get_mut(self.len..end).ok_or(fmt::Error)?;
        dst.copy_from_slice(s.as_bytes());
        self.len = end;
        Ok(())
    }
}

static DEFERRED: Mutex<Deferred> = Mutex::new(Deferred {
    buf: [0; DEFER_BYTES],
    len: 0,
    dropped: 0,
});
/// [`DEFERRED`] may hold a line or a drop count: set under its lock by every
/// deferral, cleared under it when a drain finds it empty. Lets the drain after
/// every exit (`defer_end`) return without touching the buffer or its lock.
static DEFERRED_ANY: AtomicBool = AtomicBool::new(false);
/// One CPU at a time drains [`DEFERRED`] to the UART.
static FLUSHING: AtomicBool = AtomicBool::new(false);

/// This CPU takes the hypervisor state lock: from now on its log lines wait
/// in memory instead of being written at serial speed under the lock that the
/// other CPUs need (guest-triggered lines included).
pub fn defer_begin() {
    if let Some(d) = DEFERRING.get(percpu::cpu_index() as usize) {
        d.store(true, Ordering::Relaxed);
    }
}

/// This CPU has dropped the state lock: write what it (or another CPU)
/// deferred.
pub fn defer_end() {
    if let Some(d) = DEFERRING.get(percpu::cpu_index() as usize) {
        d.store(false, Ordering::Relaxed);
    }
    flush_deferred();
}

/// The machine is ending (`shutdown::exit`): from now on every line goes
/// straight to the console, and what was deferred is written first.
pub fn stop_deferring() {
    for d in &DEFERRING {
        d.store(false, Ordering::Relaxed);
    }
    // Another CPU may be draining; give it a bounded time, then drain ourselves.
    for _ in 0..10_000_000u32 {
        if !FLUSHING.load(Ordering::Acquire) {
            break;
        }
        core::hint::spin_loop();
    }
    flush_deferred();
}

/// Drain the deferred lines to the console, a bounded piece at a time (the
/// deferring CPUs only ever wait for one piece's copy).
fn flush_deferred() {
    if !DEFERRED_ANY.load(Ordering::Acquire) {
        return; // nothing was deferred (the common case: once per VM exit)
    }
    if FLUSHING.swap(true, Ordering::Acquire) {
        return; // another CPU is draining; it takes ours too
    }
    loop {
        let mut piece = [0u8; 512];
        let (n, dropped) = x86_64::instructions::interrupts::without_interrupts(|| {
            let mut d = DEFERRED.lock();
            let n = d.len.min(piece.len());
            piece[..n].copy_from_slice(&d.buf[..n]);
            let len = d.len;
            d.buf.copy_within(n..len, 0);
            d.len -= n;
            let dropped = core::mem::take(&mut d.dropped);
            if n == 0 && dropped == 0 {
                DEFERRED_ANY.store(false, Ordering::Release);
            }
            (n, dropped)
        });
        if n == 0 && dropped == 0 {
            break;
        }
        x86_64::instructions::interrupts::without_interrupts(|| {
            let mut console = CONSOLE.lock();
            if dropped != 0 {
                let _ = writeln!(
                    console,
                    "({dropped} log lines dropped: deferred buffer full)"
                );
            }
            for &b in &piece[..n] {
                if b == b'\n' {
                    console.put(b'\r');
                }
                console.put(b);
            }
        });
    }
    FLUSHING.store(false, Ordering::Release);
}

/// Installs the logger (all levels). Call after [`init`] and [`time::calibrate`].
pub fn init_logger() {
    // `set_logger` only fails if a logger is already installed: then keep that one.
    let _ = log::set_logger(&LOGGER);
    log::set_max_level(log::LevelFilter::Trace);
}

/// Bytes waiting in COM1's receiver (typed on the serial line), up to
/// `buf.len()`; 0 when none, when there is no COM1, or when another CPU holds
/// the console (the next poll gets them: the UART's FIFO keeps 16 bytes).
/// Polled from the scheduler's housekeeping rather than taken by interrupt:
/// the hypervisor routes no legacy IRQs.
pub fn poll_rx(buf: &mut [u8]) -> usize {
    let Some(mut c) = CONSOLE.try_lock() else {
        return 0;
    };
    match c.com1.as_mut() {
        Some(uart) => uart.receive_bytes(buf),
        None => 0,
    }
}

/// Makes the console usable from a fatal path (panic, exception) even if the lock
/// was held when the fault hit: waits a bounded time for another CPU to finish its
/// line, then breaks the lock. Only the first fatal path does this.
pub fn force_unlock() {
    // From here on every line goes straight out (a fatal report must not wait
    // for a lock release that will not come).
    for d in &DEFERRING {
        d.store(false, Ordering::Relaxed);
    }
    if FATAL.swap(true, Ordering::SeqCst) {
        return;
    }
    let mut free = false;
    for _ in 0..10_000_000u32 {
        if !CONSOLE.is_locked() {
            free = true;
            break;
        }
        core::hint::spin_loop();
    }
    if !free {
        // SAFETY: we are on a fatal path and the holder did not release the lock
        // in ~10M spins (it is this CPU, interrupted mid-line, or a stuck CPU); a
        // garbled line is better than a silent hang.
        unsafe { CONSOLE.force_unlock() };
    }
    // What was deferred before the fault, if no one is in the middle of it.
    if !DEFERRED.is_locked() && !FLUSHING.load(Ordering::Acquire) {
        flush_deferred();
    }
}
