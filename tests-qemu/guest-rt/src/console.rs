//! Console output: one `console_io(CONSOLEIO_write)` per line under Xen; under
//! plain QEMU (no Xen signature) COM1 and the 0xe9 debug port instead.

use core::fmt::{self, Write};

use crate::xen;

/// A line buffer flushed on newline or when full.
pub struct Line {
    buf: [u8; 200],
    len: usize,
}

impl Line {
    pub const fn new() -> Self {
        Line {
            buf: [0; 200],
            len: 0,
        }
    }

    /// Writes the buffered bytes out.
    pub fn flush(&mut self) {
        if self.len > 0 {
            write_raw(&self.buf[..self.len]);
            self.len = 0;
        }
    }
}

impl Default for Line {
    fn default() -> Self {
        Self::new()
    }
}

impl Write for Line {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        for &b in s.as_bytes() {
            if self.len == self.buf.len() {
                self.flush();
            }
            self.buf[self.len] = b;
            self.len += 1;
            if b == b'\n' {
                self.flush();
            }
        }
        Ok(())
    }
}

/// Writes bytes to the console as they are.
pub fn write_raw(bytes: &[u8]) {
    if xen::present() {
        xen::console_write(bytes);
        return;
    }
    for &b in bytes {
        // SAFETY: COM1 and port 0xe9 are harmless to write under QEMU.
        unsafe {
            core::arch::asm!("out dx, al", in("dx") 0x3f8u16, in("al") b, options(nomem, nostack));
            core::arch::asm!("out dx, al", in("dx") 0xe9u16, in("al") b, options(nomem, nostack));
        }
    }
}

/// Formats and writes, one console write per line.
pub fn print(args: fmt::Arguments) {
    let mut line = Line::new();
    let _ = line.write_fmt(args);
    line.flush();
}

/// `print!` for guests.
#[macro_export]
macro_rules! print {
    ($($arg:tt)*) => { $crate::console::print(format_args!($($arg)*)) };
}

/// `println!` for guests.
#[macro_export]
macro_rules! println {
    () => { $crate::console::print(format_args!("\n")) };
    ($($arg:tt)*) => { $crate::console::print(format_args!("{}\n", format_args!($($arg)*))) };
}

/// `println!` unless in quiet mode (domUs: their console lines are rate-limited).
#[macro_export]
macro_rules! info {
    ($($arg:tt)*) => {
        if !$crate::report::quiet() {
            $crate::println!($($arg)*);
        }
    };
}
