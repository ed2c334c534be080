//! Host tests for the bare-metal code that is pure parsing: the cpio "newc"
//! ramdisk reader, the `boot.cmd` parser and the kernel-ELF reader. `arch/` only
//! compiles for `target_os = "none"`, so these files are included by path.

extern crate alloc;

#[allow(dead_code)]
#[path = "../src/arch/x86_64/ramdisk.rs"]
mod ramdisk;

#[allow(dead_code)]
#[path = "../src/arch/x86_64/elf.rs"]
mod elf;

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
