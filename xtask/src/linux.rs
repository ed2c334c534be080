//! Test inputs for the Linux domU scenarios, from Debian packages only.
//!
//! - The kernel: Debian 12's cloud kernel (`linux-image-6.1.0-57-cloud-amd64`, the
//!   version issue 12 was reported against; the `linux-image-cloud-amd64`
//!   metapackage's current kernel when that one is gone from the archive). Its
//!   `vmlinuz` is a bzImage; the PVH entry note is in the ELF inside it, so the
//!   ELF is extracted here: the setup header gives the compressed payload, which
//!   Debian's cloud config compresses with LZ4 (legacy frame format, as `lz4 -l`
//!   writes it); the decompressed `vmlinux.bin` is the stripped ELF followed by the
//!   relocation table, cut at the ELF's end.
//! - The initramfs: `busybox-static`'s `/bin/busybox` and an `/init` script, as a
//!   cpio "newc" archive (the format the kernel's initramfs unpacker reads).
//!
//! The packages are fetched with `apt-get download` and unpacked with
//! `dpkg-deb -x` into `target/linux/`: the ordinary Debian client, no root and no
//! change to the host (installing a kernel package would run its initramfs and
//! boot-loader hooks on the build machine for nothing).

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{bail, ensure, Context, Result};

use crate::util::{self, target_dir};

/// The kernel package the scenarios pin (the one issue 12 reports on).
pub const KERNEL_PACKAGE: &str = "linux-image-6.1.0-57-cloud-amd64";
/// Falls back to the kernel this metapackage depends on when the pinned one is
/// no longer in the archive.
pub const KERNEL_METAPACKAGE: &str = "linux-image-cloud-amd64";
/// A statically linked busybox (no libc needed in the initramfs).
pub const BUSYBOX_PACKAGE: &str = "busybox-static";

/// The LZ4 legacy frame magic (`lz4 -l`), little-endian.
const LZ4_LEGACY_MAGIC: u32 = 0x184c_2102;
/// Each LZ4 legacy block decompresses to at most 8 MiB.
const LZ4_LEGACY_BLOCK: usize = 8 << 20;

/// The `/init` of the test initramfs. It prints what the scenarios check (each
/// line from `/proc` or `/sys`, so they prove userspace ran), waits up to 60 s for
/// one command line on the console, runs it, and powers off, which the kernel
/// turns into `SCHEDOP_shutdown(SHUTDOWN_poweroff)`.
pub const INIT_SCRIPT: &str = r#"#!/bin/busybox sh
/bin/busybox --install -s /bin
export PATH=/bin
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev 2>/dev/null
echo "init: userspace up: $(cat /proc/version)"
echo "init: cpus online: $(cat /sys/devices/system/cpu/online)"
echo "init: processors: $(grep -c ^processor /proc/cpuinfo)"
echo "init: uptime: $(cat /proc/uptime)"
echo "init: console: $(cat /sys/class/tty/console/active 2>/dev/null)"
echo "init: waiting for a command on the console"
if read -t 60 -r cmd; then
    echo "init: command: $cmd"
    eval "$cmd"
    echo "init: command done"
else
    echo "init: no command within 60 s"
fi
echo "init: poweroff"
poweroff -f
"#;

/// Reads a little-endian u16/u32 at `off`, or an error naming `what`.
fn le32(data: &[u8], off: usize, what: &str) -> Result<u32> {
    let bytes = data
        .get(off..off + 4)
        .with_context(|| format!("bzImage too short for {what} at {off:#x}"))?;
    Ok(u32::from_le_bytes(bytes.try_into().expect("4 bytes")))
}

/// The ELF inside a bzImage (`vmlinuz`): the setup header's payload, decompressed
/// and cut at the end of the ELF (the relocation table that follows is dropped).
pub fn extract_vmlinux(bzimage: &[u8]) -> Result<Vec<u8>> {
    ensure!(
        bzimage.get(0x202..0x206) == Some(b"HdrS".as_slice()),
        "not a bzImage: no `HdrS` setup header at 0x202"
    );
    let version = u16::from_le_bytes([bzimage[0x206], bzimage[0x207]]);
    ensure!(
        version >= 0x208,
        "boot protocol {version:#x} has no payload_offset (needs 2.08+)"
    );
    let setup_sects = match bzimage[0x1f1] {
        0 => 4,
        n => usize::from(n),
    };
    let payload_offset = le32(bzimage, 0x248, "payload_offset")? as usize;
    let payload_length = le32(bzimage, 0x24c, "payload_length")? as usize;
    let start = (setup_sects + 1) * 512 + payload_offset;
    let payload = bzimage
        .get(start..start + payload_length)
        .with_context(|| {
            format!(
                "payload {start:#x}+{payload_length:#x} is outside the {}-byte bzImage",
                bzimage.len()
            )
        })?;
    let raw = match payload {
        [0x02, 0x21, 0x4c, 0x18, ..] => lz4_legacy_decompress(payload)?,
        [0x1f, 0x8b, ..] => bail!("gzip-compressed kernel: not supported (Debian cloud uses LZ4)"),
        [0xfd, b'7', b'z', b'X', b'Z', ..] => {
            bail!("xz-compressed kernel: not supported (Debian cloud uses LZ4)")
        }
        [0x28, 0xb5, 0x2f, 0xfd, ..] => {
            bail!("zstd-compressed kernel: not supported (Debian cloud uses LZ4)")
        }
        _ => bail!(
            "unknown kernel compression (payload starts {:02x?})",
            &payload[..payload.len().min(6)]
        ),
    };
    elf_prefix(&raw).map(<[u8]>::to_vec)
}

/// Decompresses an LZ4 legacy frame as the kernel's build writes it: the magic,
/// blocks of (u32 compressed size, data), each at most 8 MiB decompressed, and the
/// decompressed size appended as a u32 (the kernel's `size_append`).
pub fn lz4_legacy_decompress(data: &[u8]) -> Result<Vec<u8>> {
    ensure!(
        data.len() >= 8 && le32(data, 0, "magic")? == LZ4_LEGACY_MAGIC,
        "no LZ4 legacy magic"
    );
    let expected = le32(data, data.len() - 4, "size trailer")? as usize;
    let end = data.len() - 4;
    let mut out = Vec::with_capacity(expected);
    let mut block = vec![0u8; LZ4_LEGACY_BLOCK];
    let mut pos = 4;
    while pos < end && out.len() < expected {
        let size = le32(data, pos, "LZ4 block size")?;
        pos += 4;
        if size == LZ4_LEGACY_MAGIC {
            continue; // concatenated frames
        }
        let size = size as usize;
        let input = data
            .get(pos..pos + size)
            .filter(|_| pos + size <= end)
            .with_context(|| format!("LZ4 block at {pos:#x} of {size} bytes is truncated"))?;
        let n = lz4_flex::block::decompress_into(input, &mut block)
            .with_context(|| format!("LZ4 block at {pos:#x}"))?;
        out.extend_from_slice(&block[..n]);
        pos += size;
    }
    ensure!(
        out.len() == expected,
        "LZ4 payload decompressed to {} bytes, its trailer says {expected}",
        out.len()
    );
    Ok(out)
}

/// The ELF64 file at the start of `data`, up to its section header table's end
/// (where `objcopy` puts it: the last thing in the file) or its program data's
/// end, whichever is later.
pub fn elf_prefix(data: &[u8]) -> Result<&[u8]> {
    ensure!(
        data.len() >= 64 && data[..4] == *b"\x7fELF" && data[4] == 2,
        "decompressed kernel is not an ELF64 file"
    );
    let u64_at = |off: usize| u64::from_le_bytes(data[off..off + 8].try_into().expect("8"));
    let u16_at = |off: usize| usize::from(u16::from_le_bytes([data[off], data[off + 1]]));
    let (phoff, shoff) = (u64_at(0x20) as usize, u64_at(0x28) as usize);
    let (phentsize, phnum) = (u16_at(0x36), u16_at(0x38));
    let (shentsize, shnum) = (u16_at(0x3a), u16_at(0x3c));
    let mut end = shoff
        .checked_add(shentsize * shnum)
        .context("section headers overflow")?;
    for i in 0..phnum {
        let ph = phoff + i * phentsize;
        ensure!(ph + 56 <= data.len(), "program header {i} is truncated");
        let off = u64_at(ph + 8) as usize;
        let filesz = u64_at(ph + 32) as usize;
        end = end.max(off.checked_add(filesz).context("segment overflows")?);
    }
    ensure!(
        end <= data.len(),
        "ELF needs {end} bytes, only {} decompressed",
        data.len()
    );
    Ok(&data[..end])
}

/// One node of the initramfs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Node {
    Dir,
    File { mode: u32, data: Vec<u8> },
    CharDev { major: u32, minor: u32 },
}

/// The test initramfs: `/bin/busybox`, `/init`, the mount points and
/// `/dev/console` (the kernel opens it for `/init`'s stdin/stdout before any
/// devtmpfs exists).
pub fn initramfs(busybox: &[u8]) -> Result<Vec<u8>> {
    let nodes = vec![
        ("bin", Node::Dir),
        ("dev", Node::Dir),
        ("proc", Node::Dir),
        ("sys", Node::Dir),
        ("dev/console", Node::CharDev { major: 5, minor: 1 }),
        (
            "bin/busybox",
            Node::File {
                mode: 0o755,
                data: busybox.to_vec(),
            },
        ),
        (
            "init",
            Node::File {
                mode: 0o755,
                data: INIT_SCRIPT.as_bytes().to_vec(),
            },
        ),
    ];
    write_cpio(&nodes)
}

/// Writes `nodes` as a newc archive (uid/gid 0, mtime 0: reproducible).
pub fn write_cpio(nodes: &[(&str, Node)]) -> Result<Vec<u8>> {
    use std::io::Write;
    let mut out = Vec::new();
    for (index, (name, node)) in nodes.iter().enumerate() {
        let ino = u32::try_from(index + 1)?;
        let builder = cpio::newc::Builder::new(name).ino(ino).nlink(1);
        let (builder, data): (_, &[u8]) = match node {
            Node::Dir => (builder.mode(0o040755).nlink(2), &[]),
            Node::File { mode, data } => (builder.mode(0o100000 | mode), data),
            Node::CharDev { major, minor } => (
                builder.mode(0o020600).rdev_major(*major).rdev_minor(*minor),
                &[],
            ),
        };
        let size = u32::try_from(data.len()).context("initramfs file over 4 GiB")?;
        let mut writer = builder.write(&mut out, size);
        writer.write_all(data)?;
        writer.finish()?;
    }
    cpio::newc::trailer(&mut out)?;
    Ok(out)
}

/// Where the packages are unpacked.
fn deps_dir() -> PathBuf {
    target_dir().join("linux")
}

/// `apt-get download`s and unpacks `package` into `dir/root` unless a file
/// `probe` (relative to the root) is there already.
fn fetch_package(dir: &Path, package: &str, probe: &str) -> Result<bool> {
    let root = dir.join("root");
    if root.join(probe).exists() {
        return Ok(true);
    }
    std::fs::create_dir_all(&root)?;
    let status = Command::new("apt-get")
        .current_dir(dir)
        .args(["download", package])
        .status()
        .context("running apt-get download")?;
    if !status.success() {
        return Ok(false);
    }
    let deb = std::fs::read_dir(dir)?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .find(|p| {
            p.extension().is_some_and(|x| x == "deb")
                && p.file_name()
                    .and_then(|n| n.to_str())
                    .is_some_and(|n| n.starts_with(&format!("{package}_")))
        })
        .with_context(|| format!("apt-get download {package} left no .deb"))?;
    util::run(Command::new("dpkg-deb").arg("-x").arg(&deb).arg(&root))?;
    Ok(root.join(probe).exists())
}

/// The kernel package the metapackage depends on now.
fn current_cloud_kernel() -> Result<String> {
    let out = Command::new("apt-cache")
        .args(["depends", KERNEL_METAPACKAGE])
        .output()
        .context("running apt-cache depends")?;
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| l.trim().strip_prefix("Depends: "))
        .find(|d| d.starts_with("linux-image-") && d.ends_with("-cloud-amd64"))
        .map(str::to_string)
        .with_context(|| format!("apt-cache depends {KERNEL_METAPACKAGE} names no kernel"))
}

/// The Linux test inputs on disk.
#[derive(Debug, Clone)]
pub struct Inputs {
    pub vmlinux: PathBuf,
    pub initramfs: PathBuf,
}

/// Fetches the packages if needed (`cargo xtask deps` calls this too) and writes
/// `target/linux/vmlinux` and `target/linux/initramfs.cpio`.
pub fn inputs() -> Result<Inputs> {
    let dir = deps_dir();
    std::fs::create_dir_all(&dir)?;
    let busybox = "bin/busybox";
    if !fetch_package(&dir, BUSYBOX_PACKAGE, busybox)? {
        bail!("could not fetch Debian package {BUSYBOX_PACKAGE} (apt-get update first?)");
    }
    let pinned_vmlinuz = format!("boot/vmlinuz-{}", &KERNEL_PACKAGE["linux-image-".len()..]);
    let vmlinuz = if fetch_package(&dir, KERNEL_PACKAGE, &pinned_vmlinuz)? {
        pinned_vmlinuz
    } else {
        let current = current_cloud_kernel()?;
        eprintln!("xtask linux: {KERNEL_PACKAGE} is not available, using {current}");
        let path = format!("boot/vmlinuz-{}", &current["linux-image-".len()..]);
        if !fetch_package(&dir, &current, &path)? {
            bail!("could not fetch Debian package {current}");
        }
        path
    };
    let root = dir.join("root");
    let vmlinux = dir.join("vmlinux");
    let bz = std::fs::read(root.join(&vmlinuz)).with_context(|| format!("reading {vmlinuz}"))?;
    std::fs::write(
        &vmlinux,
        extract_vmlinux(&bz).with_context(|| format!("extracting the ELF from {vmlinuz}"))?,
    )?;
    let initramfs = dir.join("initramfs.cpio");
    let bb = std::fs::read(root.join(busybox))?;
    std::fs::write(&initramfs, self::initramfs(&bb)?)?;
    Ok(Inputs { vmlinux, initramfs })
}

/// Ramdisk entry names a `domains.cfg` uses for the Linux inputs.
pub const VMLINUX_ENTRY: &str = "vmlinux";
pub const INITRAMFS_ENTRY: &str = "initramfs.cpio";

/// Which of the Linux inputs `domains.cfg` names (`image=vmlinux`,
/// `ramdisk=initramfs.cpio`).
pub fn wanted(domains_cfg: &[u8]) -> (bool, bool) {
    let text = String::from_utf8_lossy(domains_cfg);
    let words = || {
        text.lines()
            .map(|l| l.split('#').next().unwrap_or(""))
            .flat_map(str::split_whitespace)
    };
    // dom0's `modules=a,b,...` (the xl role builds the domU from them).
    let module = |name: &str| {
        words().any(|w| {
            w.strip_prefix("modules=")
                .is_some_and(|l| l.split(',').any(|m| m == name))
        })
    };
    (
        words().any(|w| w == format!("image={VMLINUX_ENTRY}")) || module(VMLINUX_ENTRY),
        words().any(|w| w == format!("ramdisk={INITRAMFS_ENTRY}")) || module(INITRAMFS_ENTRY),
    )
}

/// The ramdisk entries a scenario's `domains.cfg` needs from the Linux inputs
/// (fetched and built on first use), or none.
pub fn ramdisk_entries(domains_cfg: &[u8]) -> Result<Vec<crate::ramdisk::Entry>> {
    let (kernel, initrd) = wanted(domains_cfg);
    if !kernel && !initrd {
        return Ok(Vec::new());
    }
    let inputs = inputs()?;
    let mut out = Vec::new();
    if kernel {
        out.push(crate::ramdisk::Entry::new(
            VMLINUX_ENTRY,
            std::fs::read(&inputs.vmlinux)?,
        ));
    }
    if initrd {
        out.push(crate::ramdisk::Entry::new(
            INITRAMFS_ENTRY,
            std::fs::read(&inputs.initramfs)?,
        ));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_the_linux_inputs_a_manifest_names() {
        assert_eq!(
            wanted(b"name=a image=testguest memory_mib=1"),
            (false, false)
        );
        assert_eq!(
            wanted(b"name=l image=vmlinux ramdisk=initramfs.cpio memory_mib=256\n"),
            (true, true)
        );
        assert_eq!(
            wanted(b"# image=vmlinux\nname=a image=vmlinux2"),
            (false, false)
        );
        assert_eq!(
            wanted(b"name=dom0 role=xl modules=xl-script,linux.cfg,vmlinux,initramfs.cpio"),
            (true, true)
        );
        assert_eq!(wanted(b"name=dom0 modules=vmlinux2,x"), (false, false));
        for dir in ["linux", "linux-2l", "linux-smp2"] {
            let path = crate::util::project_root()
                .join("tests-qemu/scenarios")
                .join(dir)
                .join("domains.cfg");
            assert_eq!(wanted(&std::fs::read(path).unwrap()), (true, true), "{dir}");
        }
    }

    /// A minimal ELF64 header + one program header + `body`, section headers at
    /// the end, as objcopy lays a file out.
    fn tiny_elf(body: &[u8]) -> Vec<u8> {
        let mut elf = vec![0u8; 64 + 56];
        elf[..4].copy_from_slice(b"\x7fELF");
        elf[4] = 2;
        elf[0x20..0x28].copy_from_slice(&64u64.to_le_bytes()); // phoff
        elf[0x36..0x38].copy_from_slice(&56u16.to_le_bytes());
        elf[0x38..0x3a].copy_from_slice(&1u16.to_le_bytes());
        elf[64 + 8..64 + 16].copy_from_slice(&120u64.to_le_bytes()); // p_offset
        elf[64 + 32..64 + 40].copy_from_slice(&(body.len() as u64).to_le_bytes());
        elf.extend_from_slice(body);
        let shoff = elf.len() as u64;
        elf[0x28..0x30].copy_from_slice(&shoff.to_le_bytes());
        elf[0x3a..0x3c].copy_from_slice(&64u16.to_le_bytes());
        elf[0x3c..0x3e].copy_from_slice(&2u16.to_le_bytes());
        elf.extend_from_slice(&[0xee; 128]);
        elf
    }

    /// `data` as `lz4 -l` + size_append would write it, in blocks of `block`.
    fn lz4_legacy(data: &[u8], block: usize) -> Vec<u8> {
        let mut out = LZ4_LEGACY_MAGIC.to_le_bytes().to_vec();
        for chunk in data.chunks(block) {
            let c = lz4_flex::block::compress(chunk);
            out.extend_from_slice(&(c.len() as u32).to_le_bytes());
            out.extend_from_slice(&c);
        }
        out.extend_from_slice(&(data.len() as u32).to_le_bytes());
        out
    }

    fn bzimage(payload: &[u8]) -> Vec<u8> {
        let setup_sects = 3u8;
        let mut bz = vec![0u8; (usize::from(setup_sects) + 1) * 512 + 0x40];
        bz[0x1f1] = setup_sects;
        bz[0x202..0x206].copy_from_slice(b"HdrS");
        bz[0x206..0x208].copy_from_slice(&0x20fu16.to_le_bytes());
        bz[0x248..0x24c].copy_from_slice(&0x40u32.to_le_bytes());
        bz[0x24c..0x250].copy_from_slice(&(payload.len() as u32).to_le_bytes());
        bz.extend_from_slice(payload);
        bz.extend_from_slice(b"tail after the payload");
        bz
    }

    fn body(len: usize) -> Vec<u8> {
        (0..len).map(|i| (i * 7 % 251) as u8).collect()
    }

    #[test]
    fn extracts_the_elf_and_drops_the_relocations() {
        let elf = tiny_elf(&body(5000));
        let mut raw = elf.clone();
        raw.extend_from_slice(&[0x55; 300]); // the relocation table
        let out = extract_vmlinux(&bzimage(&lz4_legacy(&raw, LZ4_LEGACY_BLOCK))).unwrap();
        assert_eq!(out, elf);
    }

    #[test]
    fn decompresses_many_blocks() {
        let data = body(LZ4_LEGACY_BLOCK * 2 + 12345);
        let out = lz4_legacy_decompress(&lz4_legacy(&data, LZ4_LEGACY_BLOCK)).unwrap();
        assert_eq!(out, data);
    }

    #[test]
    fn refuses_bad_inputs() {
        let data = body(10_000);
        let good = lz4_legacy(&data, 4096);
        // Wrong size trailer, truncated block, no magic, other compressors.
        let mut wrong_size = good.clone();
        let n = wrong_size.len();
        wrong_size[n - 4..].copy_from_slice(&9999u32.to_le_bytes());
        assert!(lz4_legacy_decompress(&wrong_size).is_err());
        let mut truncated = good[..good.len() / 2].to_vec();
        truncated.extend_from_slice(&(data.len() as u32).to_le_bytes());
        assert!(lz4_legacy_decompress(&truncated).is_err());
        assert!(lz4_legacy_decompress(&good[4..]).is_err());
        for magic in [&[0x1f, 0x8b, 8, 0][..], b"\xfd7zXZ\0", b"\x28\xb5\x2f\xfd"] {
            let err = extract_vmlinux(&bzimage(magic)).unwrap_err().to_string();
            assert!(err.contains("not supported"), "{err}");
        }
        assert!(extract_vmlinux(&[0u8; 1024]).is_err());
        // A payload that is not an ELF.
        assert!(extract_vmlinux(&bzimage(&lz4_legacy(&data, 4096))).is_err());
        // An ELF whose section headers lie past the decompressed data.
        let mut elf = tiny_elf(&body(100));
        elf.truncate(elf.len() - 10);
        assert!(extract_vmlinux(&bzimage(&lz4_legacy(&elf, 4096))).is_err());
    }

    /// One archive member: name, mode, (rdev major, minor), data.
    type Member = (String, u32, (u32, u32), Vec<u8>);

    /// Reads the members back with the `cpio` crate's reader.
    fn read_back(mut bytes: &[u8]) -> Vec<Member> {
        use std::io::Read;
        let mut out = Vec::new();
        loop {
            let mut reader = cpio::newc::Reader::new(bytes).unwrap();
            if reader.entry().is_trailer() {
                break;
            }
            let e = reader.entry();
            let item = (
                e.name().to_string(),
                e.mode(),
                (e.rdev_major(), e.rdev_minor()),
            );
            let mut data = Vec::new();
            reader.read_to_end(&mut data).unwrap();
            out.push((item.0, item.1, item.2, data));
            bytes = reader.finish().unwrap();
        }
        out
    }

    #[test]
    fn initramfs_has_init_busybox_and_console() {
        let archive = initramfs(b"\x7fELF busybox").unwrap();
        let back = read_back(&archive);
        let find = |name: &str| back.iter().find(|e| e.0 == name).unwrap().clone();
        let init = find("init");
        assert_eq!(init.1, 0o100755);
        assert!(init.3.starts_with(b"#!/bin/busybox sh\n"));
        assert_eq!(find("bin/busybox").3, b"\x7fELF busybox");
        assert_eq!(find("bin/busybox").1, 0o100755);
        let console = find("dev/console");
        assert_eq!((console.1, console.2), (0o020600, (5, 1)));
        for dir in ["bin", "dev", "proc", "sys"] {
            assert_eq!(find(dir).1, 0o040755, "{dir}");
        }
        // Directories come before what they hold (the unpacker needs that).
        let pos = |n: &str| back.iter().position(|e| e.0 == n).unwrap();
        assert!(pos("bin") < pos("bin/busybox") && pos("dev") < pos("dev/console"));
    }

    #[test]
    fn init_prints_from_proc_reads_a_command_and_powers_off() {
        for needed in [
            "/proc/version",
            "/sys/devices/system/cpu/online",
            "read -t 60 -r cmd",
            "eval \"$cmd\"",
            "poweroff -f",
        ] {
            assert!(INIT_SCRIPT.contains(needed), "{needed}");
        }
    }
}
