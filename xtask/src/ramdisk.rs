//! The hypervisor's ramdisk: a cpio "newc" archive (the format Linux initramfs
//! uses) holding `boot.cmd`, a README and, later, the guest images.
//!
//! `boot.cmd` is text, one `key=value` per line. The only key today is
//! `test=none|fault-pagefault|fault-ud|panic`: a test-only command that makes the
//! kernel fault on purpose, so `qemu-test` can prove the failure path is clean.

use std::io::Write;

use anyhow::{Context, Result};

/// What the kernel should do after it booted (`test=` in `boot.cmd`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, clap::ValueEnum)]
pub enum TestMode {
    /// Boot normally and exit with success.
    None,
    /// Touch an unmapped address: a #PF the kernel must report and survive long
    /// enough to exit with failure.
    FaultPagefault,
    /// Execute `ud2`: a #UD.
    FaultUd,
    /// Call `panic!`.
    Panic,
    /// The VMX backend's built-in self-test guest (Bochs `tigerlake`).
    VmxSelftest,
    /// Run the hypervisor's built-in SVM test guest.
    SvmSelftest,
}

impl TestMode {
    /// The value as it appears in `boot.cmd`.
    pub fn as_str(self) -> &'static str {
        match self {
            TestMode::None => "none",
            TestMode::FaultPagefault => "fault-pagefault",
            TestMode::FaultUd => "fault-ud",
            TestMode::Panic => "panic",
            TestMode::VmxSelftest => "vmx-selftest",
            TestMode::SvmSelftest => "svm-selftest",
        }
    }
}

/// The text of `boot.cmd`.
pub fn boot_cmd(test: TestMode) -> String {
    format!("test={}\n", test.as_str())
}

/// A small text entry so that the "ramdisk entries listed" check has more than
/// `boot.cmd` to list before guest images exist.
pub const README: &str = "Ramdisk of the Xen-compatible hypervisor.\n\
boot.cmd: boot options, one key=value per line.\n\
Guest images (PVH ELF) sit beside it once tests-qemu builds them.\n";

/// One file in the archive.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    pub name: String,
    pub data: Vec<u8>,
}

impl Entry {
    pub fn new(name: impl Into<String>, data: impl Into<Vec<u8>>) -> Self {
        Entry {
            name: name.into(),
            data: data.into(),
        }
    }
}

/// The standard entries: `boot.cmd`, `README`, then `guests` (name, ELF bytes).
///
/// A ramdisk carrying a Linux domU (`vmlinux`) also gets `guest_loglvl=all` in
/// boot.cmd: its boot log is what the Linux scenarios judge, so the guest
/// console rate limit is lifted (as Xen's option does).
pub fn standard_entries(test: TestMode, guests: Vec<Entry>) -> Vec<Entry> {
    let mut cmd = boot_cmd(test);
    if guests.iter().any(|g| g.name == crate::linux::VMLINUX_ENTRY) {
        cmd.push_str("guest_loglvl=all\n");
    }
    let mut entries = vec![Entry::new("boot.cmd", cmd), Entry::new("README", README)];
    entries.extend(guests);
    entries
}

/// Writes `entries` as a newc archive (regular files, mode 0644, inode numbers
/// from 1, mtime 0 so the archive is reproducible) followed by the trailer.
pub fn write_newc(entries: &[Entry], out: impl Write) -> Result<()> {
    let mut out = out;
    for (index, entry) in entries.iter().enumerate() {
        let size = u32::try_from(entry.data.len())
            .with_context(|| format!("ramdisk entry {} is larger than 4 GiB", entry.name))?;
        let ino = u32::try_from(index + 1).context("too many ramdisk entries")?;
        let mut writer = cpio::newc::Builder::new(&entry.name)
            .ino(ino)
            .mode(0o100644)
            .nlink(1)
            .write(out, size);
        writer
            .write_all(&entry.data)
            .with_context(|| format!("writing ramdisk entry {}", entry.name))?;
        out = writer.finish()?;
    }
    cpio::newc::trailer(out)?;
    Ok(())
}

/// The archive as bytes.
pub fn archive(entries: &[Entry]) -> Result<Vec<u8>> {
    let mut bytes = Vec::new();
    write_newc(entries, &mut bytes)?;
    Ok(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;

    /// Reads an archive back with the `cpio` crate's reader.
    fn read_back(mut bytes: &[u8]) -> Vec<(String, Vec<u8>)> {
        let mut out = Vec::new();
        loop {
            let mut reader = cpio::newc::Reader::new(bytes).unwrap();
            if reader.entry().is_trailer() {
                break;
            }
            let name = reader.entry().name().to_string();
            let mut data = Vec::new();
            reader.read_to_end(&mut data).unwrap();
            out.push((name, data));
            bytes = reader.finish().unwrap();
        }
        out
    }

    #[test]
    fn round_trips_names_and_contents() {
        let entries = standard_entries(
            TestMode::FaultPagefault,
            vec![Entry::new(
                "dom0.elf",
                vec![0x7f, b'E', b'L', b'F', 1, 2, 3],
            )],
        );
        let bytes = archive(&entries).unwrap();
        let back = read_back(&bytes);
        let names: Vec<&str> = back.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(names, ["boot.cmd", "README", "dom0.elf"]);
        assert_eq!(back[0].1, b"test=fault-pagefault\n");
        assert_eq!(back[2].1, entries[2].data);
    }

    #[test]
    fn headers_are_newc_and_four_byte_aligned() {
        let entries = vec![Entry::new("a", "xyz"), Entry::new("bc", "12345")];
        let bytes = archive(&entries).unwrap();
        // First header: magic, then the name "a\0" at offset 110.
        assert_eq!(&bytes[..6], b"070701");
        assert_eq!(&bytes[110..112], b"a\0");
        // Header + name (112) is padded to 112, data "xyz" to 116: next header.
        assert_eq!(&bytes[116..122], b"070701");
        // The archive ends with the TRAILER!!! entry, padded to 4 bytes.
        let text = String::from_utf8_lossy(&bytes);
        assert!(text.contains("TRAILER!!!"));
        assert_eq!(bytes.len() % 4, 0);
        // filesize field of the second entry (offset 54 within its header).
        assert_eq!(&bytes[116 + 54..116 + 62], b"00000005");
    }

    #[test]
    fn linux_ramdisks_lift_the_guest_log_rate_limit() {
        let plain = standard_entries(TestMode::None, vec![Entry::new("testguest", "x")]);
        assert_eq!(plain[0].data, b"test=none\n");
        let linux = standard_entries(TestMode::None, vec![Entry::new("vmlinux", "x")]);
        assert_eq!(linux[0].data, b"test=none\nguest_loglvl=all\n");
    }

    #[test]
    fn boot_cmd_names_every_test_mode() {
        assert_eq!(boot_cmd(TestMode::None), "test=none\n");
        assert_eq!(boot_cmd(TestMode::FaultUd), "test=fault-ud\n");
        assert_eq!(boot_cmd(TestMode::Panic), "test=panic\n");
    }
}
