//! A domain's console output as dom0 prints it: each line prefixed with the
//! domain (`[name] `), carriage returns dropped, other control characters
//! (escape sequences of a shell) shown as `.` except tab, so a guest cannot
//! drive dom0's terminal. A partial line (a shell prompt) is printed as it is
//! and continued without a new prefix, so a prompt shows before its newline.

use alloc::string::String;
use alloc::vec::Vec;

/// Per-domain output state.
#[derive(Debug, Clone)]
pub struct Relay {
    prefix: String,
    /// The last byte printed was not a newline: the next bytes continue it.
    mid_line: bool,
}

impl Relay {
    pub fn new(name: &str, domid: u16) -> Self {
        Relay {
            prefix: alloc::format!("[d{domid} {name}] "),
            mid_line: false,
        }
    }

    /// Text for dom0's console from raw guest bytes.
    pub fn feed(&mut self, bytes: &[u8]) -> Vec<u8> {
        let mut out = Vec::with_capacity(bytes.len() + 32);
        for &b in bytes {
            if b == b'\r' {
                continue;
            }
            if !self.mid_line {
                out.extend_from_slice(self.prefix.as_bytes());
                self.mid_line = true;
            }
            match b {
                b'\n' => {
                    out.push(b'\n');
                    self.mid_line = false;
                }
                b'\t' | 0x20..=0x7e => out.push(b),
                _ => out.push(b'.'),
            }
        }
        out
    }

    /// End a partial line (before dom0 prints something of its own).
    pub fn break_line(&mut self) -> &'static [u8] {
        if core::mem::take(&mut self.mid_line) {
            b"\n"
        } else {
            b""
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_are_prefixed_and_filtered() {
        let mut r = Relay::new("linux", 1);
        assert_eq!(
            r.feed(b"a\r\nb\x1b[0m\tc\n"),
            b"[d1 linux] a\n[d1 linux] b.[0m\tc\n"
        );
    }

    #[test]
    fn a_prompt_is_shown_and_continued() {
        let mut r = Relay::new("linux", 1);
        assert_eq!(r.feed(b"/ # "), b"[d1 linux] / # ");
        assert_eq!(r.feed(b"ls\n"), b"ls\n");
        assert_eq!(r.feed(b"x"), b"[d1 linux] x");
        assert_eq!(r.break_line(), b"\n");
        assert_eq!(r.break_line(), b"");
    }
}
