//! Host tests for the bare-metal code that is pure parsing: the cpio "newc"
//! ramdisk reader, the `boot.cmd` parser, the kernel-ELF reader and the direct
//! boot's memory-map normaliser. `arch/` only
//! compiles for `target_os = "none"`, so these files are included by path.

extern crate alloc;

#[allow(dead_code)]
#[path = "../src/arch/x86_64/ramdisk.rs"]
mod ramdisk;

#[allow(dead_code)]
#[path = "../src/arch/x86_64/elf.rs"]
mod elf;

#[path = "../src/arch/x86_64/boot_memmap.rs"]
mod boot_memmap;

use ramdisk::{parse, parse_boot_cmd, TestAction};

/// Builds a newc archive the way `cpio -H newc` does.
fn newc(entries: &[(&str, u32, &[u8])]) -> Vec<u8> {
    let mut out = Vec::new();
    let mut push = |name: &str, mode: u32, data: &[u8]| {
        let fields = [
            0,
            mode,
            0,
            0,
            1,
            0,
            data.len() as u32,
            0,
            0,
            0,
            0,
            name.len() as u32 + 1,
            0,
        ];
        out.extend_from_slice(b"070701");
        for f in fields {
            out.extend_from_slice(format!("{f:08x}").as_bytes());
        }
        out.extend_from_slice(name.as_bytes());
        out.push(0);
        while out.len() % 4 != 0 {
            out.push(0);
        }
        out.extend_from_slice(data);
        while out.len() % 4 != 0 {
            out.push(0);
        }
    };
    for (name, mode, data) in entries {
        push(name, *mode, data);
    }
    push("TRAILER!!!", 0, b"");
    out
}

#[test]
fn lists_regular_files_and_skips_directories() {
    let a = newc(&[
        (".", 0o040755, b""),
        ("./boot.cmd", 0o100644, b"test=none\n"),
        ("dom0.elf", 0o100644, &[0x7f, b'E', b'L', b'F', 1, 2, 3]),
        ("empty", 0o100644, b""),
    ]);
    let entries = parse(&a).expect("well-formed archive");
    let names: Vec<_> = entries.iter().map(|e| (e.name, e.data.len())).collect();
    assert_eq!(names, [("boot.cmd", 10), ("dom0.elf", 7), ("empty", 0)]);
    assert_eq!(entries[0].data, b"test=none\n");
}

#[test]
fn every_truncation_is_an_error_not_a_panic() {
    let a = newc(&[
        ("guest.img", 0o100644, &[7u8; 1000]),
        ("boot.cmd", 0o100644, b"x=y"),
    ]);
    for len in 0..a.len() {
        // Cutting inside the trailer's padding still leaves a complete trailer.
        let r = parse(&a[..len]);
        if len < a.len() - 3 {
            assert!(r.is_err(), "truncated to {len} bytes was accepted");
        }
    }
    assert_eq!(parse(&a).unwrap().len(), 2);
}

#[test]
fn rejects_bad_magic_and_bad_hex() {
    let mut a = newc(&[("f", 0o100644, b"abc")]);
    let e = parse(b"070707 old portable format........").unwrap_err();
    assert_eq!(e.offset, 0);
    a[6 + 8 * 6] = b'g'; // filesize field
    assert!(parse(&a).is_err());
}

#[test]
fn huge_sizes_do_not_overflow() {
    let mut a = newc(&[("f", 0o100644, b"abc")]);
    a[6 + 8 * 6..6 + 8 * 7].copy_from_slice(b"ffffffff");
    assert!(parse(&a).is_err());
}

#[test]
fn boot_cmd_selects_the_test_action() {
    assert_eq!(parse_boot_cmd("").test, TestAction::None);
    assert_eq!(parse_boot_cmd("test=none").test, TestAction::None);
    assert_eq!(
        parse_boot_cmd("# comment\n  test = fault-pagefault  # trailing\n").test,
        TestAction::FaultPageFault
    );
    assert_eq!(parse_boot_cmd("test=fault-ud").test, TestAction::FaultUd);
    assert_eq!(parse_boot_cmd("test=panic\r\n").test, TestAction::Panic);
}

#[test]
fn boot_cmd_guest_loglvl_all_lifts_the_guest_rate_limit() {
    assert!(!parse_boot_cmd("").guest_log_unlimited);
    assert!(parse_boot_cmd("guest_loglvl=all\n").guest_log_unlimited);
    assert!(parse_boot_cmd("test=none\nguest_loglvl = all/all").guest_log_unlimited);
    assert!(!parse_boot_cmd("guest_loglvl=info").guest_log_unlimited);
    assert!(!parse_boot_cmd("guest_loglvl=all\nguest_loglvl=warning").guest_log_unlimited);
}

#[test]
fn boot_cmd_ignores_unknown_keys_values_and_junk() {
    let c = parse_boot_cmd("foo=bar\ntest=panic\ntest=bogus\njunk line\n=\n");
    // The unknown value leaves the previous setting in place.
    assert_eq!(c.test, TestAction::Panic);
}

#[test]
fn elf_reader_rejects_non_elf_and_survives_garbage() {
    assert!(
        elf::Elf::new(b"not an elf file at all, certainly not sixty-four bytes long ..").is_none()
    );
    // A valid header whose tables point far outside the file.
    let mut bytes = vec![0u8; 64];
    bytes[..6].copy_from_slice(b"\x7fELF\x02\x01");
    for b in &mut bytes[0x20..0x40] {
        *b = 0xff;
    }
    let bytes: &'static [u8] = Box::leak(bytes.into_boxed_slice());
    let e = elf::Elf::new(bytes).expect("header accepted");
    assert_eq!(e.load_segments().count(), 0);
    assert!(e.symbolize(0x1000).is_none());
}

#[test]
fn elf_reader_reads_this_test_binary() {
    // The test executable is an ELF64 with a symbol table and PT_LOAD segments.
    let exe = std::fs::read(std::env::current_exe().unwrap()).unwrap();
    let exe: &'static [u8] = Box::leak(exe.into_boxed_slice());
    let e = elf::Elf::new(exe).expect("test binary is ELF64 LE");
    let segs: Vec<_> = e.load_segments().collect();
    assert!(
        segs.iter().any(|s| s.executable),
        "no executable PT_LOAD segment"
    );
    // Find some function symbol by looking up the middle of the text segment,
    // then check a look-up inside that symbol returns the same start.
    let text = segs.iter().find(|s| s.executable).unwrap();
    let mid = text.vaddr + text.memsz / 2;
    let (name, off) = e
        .symbolize(mid)
        .expect("a function near the middle of .text");
    assert!(!name.is_empty());
    let start = mid - off;
    assert_eq!(e.symbolize(start), Some((name, 0)));
}

/// Deterministic xorshift, so a failure reproduces.
fn rng(state: &mut u64) -> u64 {
    *state ^= *state << 13;
    *state ^= *state >> 7;
    *state ^= *state << 17;
    *state
}

#[test]
fn mutated_archives_and_elves_never_panic() {
    let base = newc(&[
        ("boot.cmd", 0o100644, b"test=none\n"),
        ("g", 0o100644, &[1u8; 77]),
    ]);
    let exe = std::fs::read(std::env::current_exe().unwrap()).unwrap();
    let header: Vec<u8> = exe[..4096.min(exe.len())].to_vec();
    let mut seed = 0x9E37_79B9_7F4A_7C15u64;
    for _ in 0..3000 {
        let mut a = base.clone();
        for _ in 0..1 + rng(&mut seed) % 4 {
            let i = (rng(&mut seed) as usize) % a.len();
            a[i] = rng(&mut seed) as u8;
        }
        if let Ok(entries) = parse(&a) {
            for e in entries {
                assert!(e.data.len() <= a.len());
            }
        }
        let mut h = header.clone();
        for _ in 0..1 + rng(&mut seed) % 8 {
            let i = (rng(&mut seed) as usize) % 64.min(h.len());
            h[i] = rng(&mut seed) as u8;
        }
        let h: &'static [u8] = Box::leak(h.into_boxed_slice());
        if let Some(e) = elf::Elf::new(h) {
            let _ = e.load_segments().count();
            let _ = e.symbolize(rng(&mut seed));
        }
    }
}

#[test]
fn find_returns_one_file_without_allocating_a_listing() {
    let archive = newc(&[
        ("boot.cmd", 0o100644, b"test=none\n"),
        ("hypervisor.elf", 0o100644, b"\x7fELF..."),
    ]);
    assert_eq!(
        ramdisk::find(&archive, "hypervisor.elf"),
        Some(&b"\x7fELF..."[..])
    );
    assert_eq!(
        ramdisk::find(&archive, "boot.cmd"),
        Some(&b"test=none\n"[..])
    );
    assert_eq!(ramdisk::find(&archive, "missing"), None);
    for cut in 0..archive.len() {
        let _ = ramdisk::find(&archive[..cut], "hypervisor.elf");
    }
    assert_eq!(ramdisk::find(b"garbage", "boot.cmd"), None);
}

use boot_memmap::{normalise, Kind, Region};

fn memmap(e820: &[(u64, u64, u32)], loaded: &[(u64, u64)]) -> Vec<Region> {
    let mut out = [Region {
        start: 0,
        end: 0,
        kind: Kind::Loader,
    }; 64];
    let n = normalise(e820.iter().copied(), loaded, &mut out).unwrap();
    out[..n].to_vec()
}

/// SeaBIOS's E820 map for 256 MiB as QEMU's PVH option ROM passes it, with the
/// hypervisor at 2 MiB and a ramdisk near the top of RAM.
#[test]
fn memmap_carves_the_image_and_ramdisk_out_of_ram() {
    let r = memmap(
        &[
            (0, 0x9fc00, 1),
            (0x9fc00, 0x400, 2),
            (0xf0000, 0x10000, 2),
            (0x100000, 0xfee0000, 1),
            (0xffe0000, 0x20000, 2),
            (0xfffc0000, 0x40000, 2),
        ],
        &[(0x200000, 0x2d6000), (0xff3b100, 0xffd7000), (0, 0)],
    );
    let u = |start, end| Region {
        start,
        end,
        kind: Kind::Usable,
    };
    let l = |start, end| Region {
        start,
        end,
        kind: Kind::Loader,
    };
    let f = |start, end, t| Region {
        start,
        end,
        kind: Kind::Firmware(t),
    };
    assert_eq!(
        r,
        [
            u(0, 0x9f000),
            f(0x9fc00, 0xa0000, 2),
            f(0xf0000, 0x100000, 2),
            u(0x100000, 0x200000),
            l(0x200000, 0x2d6000),
            u(0x2d6000, 0xff3b000),
            l(0xff3b000, 0xffd7000),
            u(0xffd7000, 0xffe0000),
            f(0xffe0000, 0x10000000, 2),
            f(0xfffc0000, 0x100000000, 2),
        ]
    );
}

#[test]
fn memmap_lets_firmware_win_over_overlapping_ram_and_drops_slivers() {
    let r = memmap(
        &[
            (0x1000, 0x10_0000, 1),
            (0x8000, 0x1000, 3),
            (0x200800, 0x400, 1),
        ],
        &[],
    );
    assert_eq!(
        r,
        [
            Region {
                start: 0x1000,
                end: 0x8000,
                kind: Kind::Usable
            },
            Region {
                start: 0x8000,
                end: 0x9000,
                kind: Kind::Firmware(3)
            },
            Region {
                start: 0x9000,
                end: 0x101000,
                kind: Kind::Usable
            },
        ]
    );
}

#[test]
fn memmap_rejects_wrapping_entries_and_overflowing_output() {
    let mut out = [Region {
        start: 0,
        end: 0,
        kind: Kind::Loader,
    }; 2];
    assert!(normalise([(u64::MAX - 10, 100, 1)].into_iter(), &[], &mut out).is_err());
    let many = (0..3u64).map(|i| (i << 20, 0x1000, 1));
    assert!(normalise(many, &[], &mut out).is_err());
    // A loaded range splitting RAM needs room for three pieces.
    assert!(normalise([(0, 0x10000, 1)].into_iter(), &[(0x4000, 0x5000)], &mut out).is_err());
}
