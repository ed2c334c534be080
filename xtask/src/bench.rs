//! `cargo xtask bench`: boot-time and size figures.
//!
//! - boot to READY: N QEMU TCG BIOS boots of the normal image; for each, the
//!   kernel's own `READY: ... <T> ms since reset` figure and the host's wall time
//!   from starting QEMU to QEMU's exit.
//! - the hypervisor ELF's section sizes (`.text`, `.rodata`, `.data`, `.bss`).
//! - host benches: `p2m_change` (single-page p2m change vs domain size, and the
//!   frames/tables left after 10^6 changes).
//!
//! Hypercall and event-channel rates come later, with the guests.

use std::path::Path;
use std::time::Instant;

use anyhow::{bail, Context, Result};

use crate::build::{self, Firmwares};
use crate::emulator::{Accel, QemuConfig, Serial, QEMU_EXIT_SUCCESS};
use crate::ramdisk::TestMode;
use crate::util::{self, target_dir, Ending};

/// Reads `<T>` from a log's `READY: <N>/<M> cpus online, <T> ms since reset`.
pub fn ready_ms(log: &str) -> Option<f64> {
    log.lines().find_map(|line| {
        let rest = &line[line.find("READY: ")?..];
        let before = rest.split(" ms since reset").next()?;
        before.rsplit(", ").next()?.trim().parse().ok()
    })
}

/// Section sizes of an ELF64 little-endian file: (name, size) for each section.
pub fn elf_sections(elf: &[u8]) -> Result<Vec<(String, u64)>> {
    let u16_at = |o: usize| -> Result<u16> {
        Ok(u16::from_le_bytes(
            elf.get(o..o + 2).context("ELF truncated")?.try_into()?,
        ))
    };
    let u32_at = |o: usize| -> Result<u32> {
        Ok(u32::from_le_bytes(
            elf.get(o..o + 4).context("ELF truncated")?.try_into()?,
        ))
    };
    let u64_at = |o: usize| -> Result<u64> {
        Ok(u64::from_le_bytes(
            elf.get(o..o + 8).context("ELF truncated")?.try_into()?,
        ))
    };
    if elf.get(..4) != Some(b"\x7fELF") || elf.get(4) != Some(&2) || elf.get(5) != Some(&1) {
        bail!("not a little-endian ELF64 file");
    }
    let shoff = usize::try_from(u64_at(0x28)?)?;
    let shentsize = usize::from(u16_at(0x3a)?);
    let shnum = usize::from(u16_at(0x3c)?);
    let shstrndx = usize::from(u16_at(0x3e)?);
    let section = |i: usize| shoff + i * shentsize;
    let strtab = usize::try_from(u64_at(section(shstrndx) + 0x18)?)?;
    let mut out = Vec::with_capacity(shnum);
    for i in 0..shnum {
        let base = section(i);
        let name_off = strtab + usize::try_from(u32_at(base)?)?;
        let name_bytes = elf.get(name_off..).context("section name out of range")?;
        let end = name_bytes
            .iter()
            .position(|&b| b == 0)
            .unwrap_or(name_bytes.len());
        let name = String::from_utf8_lossy(&name_bytes[..end]).into_owned();
        out.push((name, u64_at(base + 0x20)?));
    }
    Ok(out)
}

pub fn run(boots: u32) -> Result<()> {
    let images = build::default_images(
        TestMode::None,
        Firmwares {
            bios: true,
            uefi: false,
        },
        None,
    )?;
    let image = images.bios.context("no BIOS image")?;
    let elf = target_dir().join("x86_64-unknown-none/release/hypervisor");
    let dir = target_dir().join("bench");
    std::fs::create_dir_all(&dir)?;

    let mut ready = Vec::new();
    let mut wall = Vec::new();
    for i in 0..boots {
        let log = dir.join(format!("boot-{i}.log"));
        let _ = std::fs::remove_file(&log);
        let mut cmd = QemuConfig {
            image: image.clone(),
            uefi_firmware: None,
            smp: 1,
            memory_mib: 256,
            accel: Accel::Tcg,
            serial: Serial::File(log.clone()),
            gdb: false,
            extra: Vec::new(),
        }
        .command();
        let out = std::fs::File::create(dir.join(format!("boot-{i}.emulator.out")))?;
        cmd.stdout(out.try_clone()?).stderr(out);
        let started = Instant::now();
        let mut child = util::spawn_group(&mut cmd)?;
        let ending = util::wait_or_kill(
            &mut child,
            started,
            std::time::Duration::from_secs(60),
            || false,
        )?;
        let took = started.elapsed().as_secs_f64() * 1000.0;
        match ending {
            Ending::Exited(s) if s.code() == Some(QEMU_EXIT_SUCCESS) => {}
            other => bail!(
                "boot {i} did not end with success ({other:?}); log: {}",
                log.display()
            ),
        }
        let text = std::fs::read_to_string(&log)?;
        let ms = ready_ms(&text).with_context(|| format!("no READY line in {}", log.display()))?;
        ready.push(ms);
        wall.push(took);
    }
    println!("boot to READY, QEMU TCG BIOS, {boots} boots (min / median / max):");
    println!("  kernel's READY figure: {}", stats(&mut ready));
    println!("  host wall time to QEMU exit: {}", stats(&mut wall));
    print_sizes(&elf)?;
    host_benches()
}

/// Host benches whose figures are issue targets: the cost of a single-page p2m
/// change vs domain size, and the 10^6-change leak check (the bench asserts 0).
fn host_benches() -> Result<()> {
    println!(
        "host bench: p2m change vs domain size (cargo bench -p hypervisor --bench p2m_change)"
    );
    util::run(util::cargo().args(["bench", "-p", "hypervisor", "--bench", "p2m_change"]))
}

fn stats(values: &mut [f64]) -> String {
    if values.is_empty() {
        return "no samples".into();
    }
    values.sort_by(f64::total_cmp);
    format!(
        "{:.0} / {:.0} / {:.0} ms",
        values[0],
        values[values.len() / 2],
        values[values.len() - 1]
    )
}

fn print_sizes(elf: &Path) -> Result<()> {
    let bytes = std::fs::read(elf).with_context(|| format!("reading {}", elf.display()))?;
    println!(
        "hypervisor ELF {} ({} bytes on disk):",
        elf.display(),
        bytes.len()
    );
    for (name, size) in elf_sections(&bytes)? {
        if [".text", ".rodata", ".data", ".bss"].contains(&name.as_str()) {
            println!("  {name:<8} {size:>9} bytes");
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_ready_figure() {
        let log = "[    0.1] INFO  cpu0: x\n[    1.2] INFO  cpu0: READY: 2/2 cpus online, 1234 ms since reset\n";
        assert_eq!(ready_ms(log), Some(1234.0));
        assert_eq!(
            ready_ms("READY: 1/1 cpus online, 7.5 ms since reset"),
            Some(7.5)
        );
        assert_eq!(ready_ms("no ready here"), None);
    }

    #[test]
    fn reads_section_sizes_of_this_test_binary() {
        // The running test binary is an ELF64 with a .text section.
        let exe = std::fs::read(std::env::current_exe().unwrap()).unwrap();
        let sections = elf_sections(&exe).unwrap();
        let text = sections.iter().find(|(n, _)| n == ".text").unwrap();
        assert!(text.1 > 0);
        assert!(elf_sections(b"not an elf").is_err());
    }
}
