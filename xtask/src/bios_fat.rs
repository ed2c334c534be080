//! Works around a bug in `bootloader` 0.11.15's BIOS second stage that made BIOS
//! images with a large ramdisk never boot (issue 12, item 1).
//!
//! The BIOS image's boot partition is FAT, formatted by `fatfs` with its default
//! type for the size: FAT16 from 16 MiB of files on. Once that volume has more
//! than 65535 sectors (32 MiB), its BPB keeps the sector count in the 32-bit
//! field and `BPB_TotSec16` is 0. Stage 2 (`bios/stage-2/src/fat.rs`,
//! `Bpb::parse`) takes "`TotSec16` is 0" to mean FAT32 and reads the FAT32
//! `BPB_FATSz32` at byte 36, which on FAT12/16 is the drive number, a reserved
//! byte, the extended boot signature and the volume serial's first byte. The
//! FAT size it gets is nonsense, the cluster count underflows and stage 2
//! panics (`attempt to subtract with overflow`, fat.rs:95) on the screen, before
//! anything reaches the serial line: the boot hangs silently.
//!
//! The fix here patches the BIOS image after the image builder wrote it: bytes
//! 36..40 of the FAT16 boot sector get `BPB_FATSz16` as a little-endian u32, so
//! stage 2's misreading yields the right FAT size. For every other FAT reader
//! the volume stays valid FAT16: drive number 0x00 (instead of 0x80; unused),
//! extended boot signature 0 (the serial, label and type fields after it are
//! then simply not claimed). The UEFI image is not touched (the firmware's own
//! FAT driver reads it).

use std::fs::OpenOptions;
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::Path;

use anyhow::{Context, Result};

/// What was done to the image.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Patch {
    /// A FAT12/16 partition with `TotSec16` = 0 got its FAT size at byte 36.
    Patched { lba: u32, fat_sectors: u16 },
    /// Nothing to patch (small FAT16 volume or FAT32).
    NotNeeded,
}

/// Patches the boot sector `bs` of one FAT volume if stage 2 would misread it.
pub fn patch_boot_sector(bs: &mut [u8; 512]) -> bool {
    let tot16 = u16::from_le_bytes([bs[19], bs[20]]);
    let fatsz16 = u16::from_le_bytes([bs[22], bs[23]]);
    let tot32 = u32::from_le_bytes(bs[32..36].try_into().expect("4 bytes"));
    // FAT12/16 (FATSz16 set) with the 32-bit sector count: stage 2 reads it as
    // FAT32. A FAT32 volume has FATSz16 = 0 and is read right.
    if tot16 != 0 || tot32 == 0 || fatsz16 == 0 || bs[510..512] != [0x55, 0xaa] {
        return false;
    }
    bs[36..40].copy_from_slice(&u32::from(fatsz16).to_le_bytes());
    true
}

/// Finds the FAT partitions of the MBR of the disk image at `path` and patches
/// each one stage 2 would misread.
pub fn patch_bios_image(path: &Path) -> Result<Patch> {
    let mut f = OpenOptions::new()
        .read(true)
        .write(true)
        .open(path)
        .with_context(|| format!("opening {}", path.display()))?;
    let mut mbr = [0u8; 512];
    f.read_exact(&mut mbr)?;
    if mbr[510..512] != [0x55, 0xaa] {
        anyhow::bail!("{} has no MBR", path.display());
    }
    let mut result = Patch::NotNeeded;
    for i in 0..4 {
        let e = &mbr[0x1be + 16 * i..0x1be + 16 * (i + 1)];
        // FAT12, FAT16 (<32M, >=32M, LBA), FAT32 (CHS, LBA) partition types.
        if ![0x01, 0x04, 0x06, 0x0b, 0x0c, 0x0e].contains(&e[4]) {
            continue;
        }
        let lba = u32::from_le_bytes(e[8..12].try_into().expect("4 bytes"));
        let at = u64::from(lba) * 512;
        let mut bs = [0u8; 512];
        f.seek(SeekFrom::Start(at))?;
        f.read_exact(&mut bs)?;
        if patch_boot_sector(&mut bs) {
            f.seek(SeekFrom::Start(at))?;
            f.write_all(&bs)?;
            result = Patch::Patched {
                lba,
                fat_sectors: u16::from_le_bytes([bs[22], bs[23]]),
            };
        }
    }
    Ok(result)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A FAT16 boot sector as fatfs writes it for a volume of `sectors`.
    fn fat16(sectors: u32, fat_size: u16) -> [u8; 512] {
        let mut bs = [0u8; 512];
        bs[11..13].copy_from_slice(&512u16.to_le_bytes());
        bs[13] = 4;
        bs[14..16].copy_from_slice(&4u16.to_le_bytes());
        bs[16] = 2;
        bs[17..19].copy_from_slice(&512u16.to_le_bytes());
        if sectors > 0xffff {
            bs[32..36].copy_from_slice(&sectors.to_le_bytes());
        } else {
            bs[19..21].copy_from_slice(&(sectors as u16).to_le_bytes());
        }
        bs[22..24].copy_from_slice(&fat_size.to_le_bytes());
        bs[36] = 0x80;
        bs[38] = 0x29;
        bs[39..43].copy_from_slice(&[0x78, 0x29, 0x00, 0x80]);
        bs[54..62].copy_from_slice(b"FAT16   ");
        bs[510] = 0x55;
        bs[511] = 0xaa;
        bs
    }

    /// Stage 2's reading of the FAT size (`Bpb::parse` + `fat_size_in_sectors`
    /// in release builds), to show the patch makes it right.
    fn stage2_fat_size(bs: &[u8; 512]) -> u32 {
        let tot16 = u16::from_le_bytes([bs[19], bs[20]]);
        let fatsz16 = u16::from_le_bytes([bs[22], bs[23]]);
        let fatsz32 = if tot16 == 0 {
            u32::from_le_bytes(bs[36..40].try_into().unwrap())
        } else {
            0
        };
        if fatsz16 != 0 && fatsz32 == 0 {
            u32::from(fatsz16)
        } else {
            fatsz32
        }
    }

    #[test]
    fn large_fat16_gets_its_fat_size_where_stage2_reads_it() {
        // The 64 MiB ramdisk's volume (135168 sectors, FAT of 132 sectors).
        let mut bs = fat16(135_168, 132);
        assert_eq!(stage2_fat_size(&bs), 0x7829_0080, "the bug as seen");
        assert!(patch_boot_sector(&mut bs));
        assert_eq!(stage2_fat_size(&bs), 132);
        // Still FAT16 to everyone else: the FAT16 fields are untouched.
        assert_eq!(&bs[22..24], &132u16.to_le_bytes());
        assert_eq!(&bs[32..36], &135_168u32.to_le_bytes());
        assert_eq!(bs[38], 0, "no extended boot signature claimed");
    }

    #[test]
    fn small_fat16_and_fat32_are_left_alone() {
        let mut small = fat16(60_000, 60);
        let before = small;
        assert!(!patch_boot_sector(&mut small));
        assert_eq!(small, before);
        let mut fat32 = fat16(2_000_000, 0);
        fat32[36..40].copy_from_slice(&2000u32.to_le_bytes());
        let before = fat32;
        assert!(!patch_boot_sector(&mut fat32));
        assert_eq!(fat32, before);
    }

    #[test]
    fn patches_the_fat_partition_of_a_disk_image() {
        let dir = std::env::temp_dir().join(format!("bios-fat-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("bios.img");
        let mut img = vec![0u8; 12 * 512];
        img[510] = 0x55;
        img[511] = 0xaa;
        // Partition 0: stage 2 (type 0x20) at LBA 1; partition 1: FAT at LBA 8.
        img[0x1be + 4] = 0x20;
        img[0x1be + 8..0x1be + 12].copy_from_slice(&1u32.to_le_bytes());
        img[0x1ce + 4] = 0x0c;
        img[0x1ce + 8..0x1ce + 12].copy_from_slice(&8u32.to_le_bytes());
        img[8 * 512..9 * 512].copy_from_slice(&fat16(135_168, 132));
        std::fs::write(&path, &img).unwrap();
        assert_eq!(
            patch_bios_image(&path).unwrap(),
            Patch::Patched {
                lba: 8,
                fat_sectors: 132
            }
        );
        let after = std::fs::read(&path).unwrap();
        assert_eq!(&after[8 * 512 + 36..8 * 512 + 40], &132u32.to_le_bytes());
        // Idempotent: a second run writes the same bytes.
        patch_bios_image(&path).unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), after);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
