//! The ramdisk: a cpio "newc" archive (the format of Linux initramfs, written by
//! `cpio -H newc`) of a boot manifest, `boot.cmd`, and guest images.
//!
//! The reader is a small careful parser rather than a crate: the one `no_std` crate
//! (`cpio_reader` 0.1.2) is unmaintained since 2021 and ends iteration silently on a
//! malformed entry, and we want a precise error. Every length is checked against
//! the archive's end; a malformed archive yields [`Error`], never a fault.
//!
//! `boot.cmd` is text: `key=value` lines, `#` comments. Known now: `test=`.

use alloc::vec::Vec;

/// One archive member (regular files only; directories are skipped).
#[derive(Clone, Copy, Debug)]
pub struct Entry<'a> {
    pub name: &'a str,
    pub data: &'a [u8],
}

/// Why the archive could not be read.
#[derive(Clone, Copy, Debug)]
pub struct Error {
    pub offset: usize,
    pub what: &'static str,
}

const HEADER_LEN: usize = 110;
const S_IFMT: u32 = 0o170000;
const S_IFREG: u32 = 0o100000;

fn hex8(b: &[u8]) -> Option<u32> {
    let s = core::str::from_utf8(b).ok()?;
    u32::from_str_radix(s, 16).ok()
}

/// Parses the whole archive up to its `TRAILER!!!` entry.
pub fn parse(archive: &[u8]) -> Result<Vec<Entry<'_>>, Error> {
    let mut out = Vec::new();
    walk(archive, |e| {
        out.push(e);
        true
    })?;
    Ok(out)
}

/// The data of the regular file `name`, if the archive holds it (read without
/// allocating: the direct-boot entry looks for the kernel's own ELF before the
/// heap exists). A malformed archive gives `None`.
pub fn find<'a>(archive: &'a [u8], name: &str) -> Option<&'a [u8]> {
    let mut found = None;
    walk(archive, |e| {
        if e.name == name {
            found = Some(e.data);
        }
        found.is_none()
    })
    .ok()?;
    found
}

/// Calls `each` for every regular file until it returns `false` or the archive
/// ends at its `TRAILER!!!` entry.
fn walk<'a>(archive: &'a [u8], mut each: impl FnMut(Entry<'a>) -> bool) -> Result<(), Error> {
    let mut pos = 0usize;
    loop {
        let err = |what| Error { offset: pos, what };
        let hdr = archive
            .get(pos..pos + HEADER_LEN)
            .ok_or(err("truncated header (no TRAILER!!!)"))?;
        if &hdr[..6] != b"070701" && &hdr[..6] != b"070702" {
            return Err(err("bad magic (not a cpio newc archive)"));
        }
        let field = |i: usize| hex8(&hdr[6 + 8 * i..14 + 8 * i]).ok_or(err("bad hex field"));
        let mode = field(1)?;
        let filesize = field(6)? as usize;
        let namesize = field(11)? as usize;
        if namesize == 0 {
            return Err(err("empty name"));
        }
        let name_start = pos + HEADER_LEN;
        let name_bytes = archive
            .get(name_start..name_start + namesize)
            .ok_or(err("truncated name"))?;
        if name_bytes[namesize - 1] != 0 {
            return Err(err("name not NUL-terminated"));
        }
        let name =
            core::str::from_utf8(&name_bytes[..namesize - 1]).map_err(|_| err("name not UTF-8"))?;
        let data_start = (name_start + namesize).next_multiple_of(4);
        let data = archive
            .get(
                data_start
                    ..data_start
                        .checked_add(filesize)
                        .ok_or(err("size overflow"))?,
            )
            .ok_or(err("truncated file data"))?;
        if name == "TRAILER!!!" {
            return Ok(());
        }
        if mode & S_IFMT == S_IFREG {
            let entry = Entry {
                name: name.trim_start_matches("./"),
                data,
            };
            if !each(entry) {
                return Ok(());
            }
        }
        pos = (data_start + filesize).next_multiple_of(4);
    }
}

/// The test action `boot.cmd` selects, run after READY.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TestAction {
    /// Clean shutdown (default).
    None,
    /// Touch an unmapped address.
    FaultPageFault,
    /// Execute `ud2`.
    FaultUd,
    /// Explicit panic.
    Panic,
    /// The VMX backend's built-in self-test guest (`hvm::vmx::selftest`).
    VmxSelftest,
    /// Run the built-in SVM test guest (`hvm::selftest`).
    SvmSelftest,
}

/// What `boot.cmd` asked for.
#[derive(Clone, Copy, Debug)]
pub struct BootCmd {
    pub test: TestAction,
    /// `guest_loglvl=all` or `all/all`: guest console lines are not
    /// rate-limited. (Xen needs the `/all` for that; `all` alone only widens
    /// what is printed there. Here both lift the limit: the levels themselves
    /// are not modelled.)
    pub guest_log_unlimited: bool,
}

/// Parses `boot.cmd`; unknown keys and values are logged as warnings and ignored.
pub fn parse_boot_cmd(text: &str) -> BootCmd {
    let mut cmd = BootCmd {
        test: TestAction::None,
        guest_log_unlimited: false,
    };
    for (n, raw) in text.lines().enumerate() {
        let line = raw.split('#').next().unwrap_or("").trim();
        if line.is_empty() {
            continue;
        }
        let Some((key, value)) = line.split_once('=') else {
            log::warn!("boot.cmd:{}: not key=value, ignored: {line}", n + 1);
            continue;
        };
        let (key, value) = (key.trim(), value.trim());
        match key {
            "test" => {
                cmd.test = match value {
                    "none" => TestAction::None,
                    "fault-pagefault" => TestAction::FaultPageFault,
                    "fault-ud" => TestAction::FaultUd,
                    "panic" => TestAction::Panic,
                    "vmx-selftest" => TestAction::VmxSelftest,
                    "svm-selftest" => TestAction::SvmSelftest,
                    other => {
                        log::warn!("boot.cmd:{}: unknown value test={other}, ignored", n + 1);
                        cmd.test
                    }
                }
            }
            "guest_loglvl" => {
                cmd.guest_log_unlimited = matches!(value, "all" | "all/all");
            }
            other => log::warn!("boot.cmd:{}: unknown key {other}={value}, ignored", n + 1),
        }
    }
    cmd
}
