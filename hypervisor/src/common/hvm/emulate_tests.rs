//! Host tests for the MMIO instruction emulator: each instruction form against
//! the register, device and flag results the architecture defines.

use alloc::collections::BTreeMap;
use alloc::vec::Vec;

use xen_public_abi::{Errno, XenResult};

use super::emulate::{emulate, Machine, Unhandled, MAX_REPS, RCX, RDI, RSI};

const RAX: usize = 0;
const RBX: usize = 3;
const CF: u64 = 1;
const PF: u64 = 4;
const AF: u64 = 0x10;
const ZF: u64 = 0x40;
const SF: u64 = 0x80;
const OF: u64 = 0x800;
const DEV: u64 = 0xfee0_0030;

#[derive(Default)]
struct Fake {
    gpr: [u64; 16],
    rip: u64,
    rflags: u64,
    /// Device bytes by address; absent bytes read as 0.
    dev: BTreeMap<u64, u8>,
    /// Device accesses (write?, gpa, size, value).
    log: Vec<(bool, u64, u8, u64)>,
    ram: BTreeMap<u64, u8>,
}

impl Machine for Fake {
    fn gpr(&self, n: usize) -> u64 {
        self.gpr[n]
    }
    fn set_gpr(&mut self, n: usize, v: u64) {
        self.gpr[n] = v;
    }
    fn rip(&self) -> u64 {
        self.rip
    }
    fn set_rip(&mut self, v: u64) {
        self.rip = v;
    }
    fn rflags(&self) -> u64 {
        self.rflags
    }
    fn set_rflags(&mut self, v: u64) {
        self.rflags = v;
    }
    fn mmio_read(&mut self, gpa: u64, size: u8) -> u64 {
        let mut v = 0u64;
        for i in 0..u64::from(size) {
            v |= u64::from(*self.dev.get(&(gpa + i)).unwrap_or(&0)) << (8 * i);
        }
        self.log.push((false, gpa, size, v));
        v
    }
    fn mmio_write(&mut self, gpa: u64, size: u8, value: u64) {
        for i in 0..u64::from(size) {
            self.dev.insert(gpa + i, (value >> (8 * i)) as u8);
        }
        self.log.push((true, gpa, size, value & mask(size)));
    }
    fn read_linear(&mut self, gla: u64, buf: &mut [u8]) -> XenResult<()> {
        if gla == 0xdead_0000 {
            return Err(Errno::EFAULT);
        }
        for (i, b) in buf.iter_mut().enumerate() {
            *b = *self.ram.get(&(gla + i as u64)).unwrap_or(&0);
        }
        Ok(())
    }
    fn write_linear(&mut self, gla: u64, buf: &[u8]) -> XenResult<()> {
        for (i, b) in buf.iter().enumerate() {
            self.ram.insert(gla + i as u64, *b);
        }
        Ok(())
    }
}

fn mask(size: u8) -> u64 {
    if size == 8 {
        u64::MAX
    } else {
        (1 << (size * 8)) - 1
    }
}

fn fake() -> Fake {
    let mut f = Fake {
        rip: 0x1000,
        rflags: 0x2,
        ..Fake::default()
    };
    f.gpr[RAX] = DEV;
    f
}

fn set_dev(f: &mut Fake, gpa: u64, v: u64, size: u8) {
    for i in 0..u64::from(size) {
        f.dev.insert(gpa + i, (v >> (8 * i)) as u8);
    }
}

fn dev(f: &Fake, gpa: u64, size: u8) -> u64 {
    (0..u64::from(size)).fold(0, |v, i| {
        v | u64::from(*f.dev.get(&(gpa + i)).unwrap_or(&0)) << (8 * i)
    })
}

/// Runs `bytes` in 64-bit mode with the device operand at DEV.
fn run(f: &mut Fake, bytes: &[u8], write: bool) -> Result<(), Unhandled> {
    emulate(f, bytes, 64, DEV, write).map(|_| ())
}

#[test]
fn mov_register_and_immediate_to_device() {
    let mut f = fake();
    f.gpr[RBX] = 0x1122_3344_5566_7788;
    run(&mut f, &[0x89, 0x18], true).unwrap(); // mov [rax], ebx
    assert_eq!(f.log, [(true, DEV, 4, 0x5566_7788)]);
    assert_eq!(f.rip, 0x1002);
    run(&mut f, &[0x48, 0x89, 0x18], true).unwrap(); // mov [rax], rbx
    assert_eq!(f.log[1], (true, DEV, 8, 0x1122_3344_5566_7788));
    run(&mut f, &[0x66, 0x89, 0x18], true).unwrap(); // mov [rax], bx
    assert_eq!(f.log[2], (true, DEV, 2, 0x7788));
    run(&mut f, &[0x88, 0x38], true).unwrap(); // mov [rax], bh
    assert_eq!(f.log[3], (true, DEV, 1, 0x77));
    run(&mut f, &[0xc6, 0x00, 0x5a], true).unwrap(); // mov byte [rax], 0x5a
    assert_eq!(f.log[4], (true, DEV, 1, 0x5a));
    run(&mut f, &[0xc7, 0x00, 0x78, 0x56, 0x34, 0x12], true).unwrap(); // mov dword [rax], imm
    assert_eq!(f.log[5], (true, DEV, 4, 0x1234_5678));
    // mov qword [rax], imm32 sign-extended.
    run(&mut f, &[0x48, 0xc7, 0x00, 0xff, 0xff, 0xff, 0xff], true).unwrap();
    assert_eq!(f.log[6], (true, DEV, 8, u64::MAX));
    assert_eq!(f.rip, 0x1000 + 2 + 3 + 3 + 2 + 3 + 6 + 7);
    assert_eq!(f.rflags, 2, "mov leaves the flags");
}

#[test]
fn mov_from_device_to_register_by_size() {
    let mut f = fake();
    set_dev(&mut f, DEV, 0x8899_aabb_ccdd_eeff, 8);
    f.gpr[1] = 0xffff_ffff_ffff_ffff;
    run(&mut f, &[0x8b, 0x08], false).unwrap(); // mov ecx, [rax]: zero-extends
    assert_eq!(f.gpr[1], 0xccdd_eeff);
    f.gpr[1] = 0xffff_ffff_ffff_ffff;
    run(&mut f, &[0x66, 0x8b, 0x08], false).unwrap(); // mov cx, [rax]: keeps the rest
    assert_eq!(f.gpr[1], 0xffff_ffff_ffff_eeff);
    run(&mut f, &[0x8a, 0x28], false).unwrap(); // mov ch, [rax]
    assert_eq!(f.gpr[1], 0xffff_ffff_ffff_ffff);
    run(&mut f, &[0x48, 0x8b, 0x08], false).unwrap(); // mov rcx, [rax]
    assert_eq!(f.gpr[1], 0x8899_aabb_ccdd_eeff);
    assert_eq!(f.rip, 0x1000 + 2 + 3 + 2 + 3);
}

#[test]
fn movzx_movsx_movsxd() {
    let mut f = fake();
    f.gpr[RBX] = DEV;
    set_dev(&mut f, DEV, 0x8081, 2);
    run(&mut f, &[0x0f, 0xb7, 0x03], false).unwrap(); // movzx eax, word [rbx]
    assert_eq!(f.gpr[RAX], 0x8081);
    run(&mut f, &[0x48, 0x0f, 0xbe, 0x03], false).unwrap(); // movsx rax, byte [rbx]
    assert_eq!(f.gpr[RAX], 0xffff_ffff_ffff_ff81);
    run(&mut f, &[0x0f, 0xbf, 0x03], false).unwrap(); // movsx eax, word [rbx]
    assert_eq!(f.gpr[RAX], 0xffff_8081);
    set_dev(&mut f, DEV, 0x8000_0000, 4);
    run(&mut f, &[0x48, 0x63, 0x03], false).unwrap(); // movsxd rax, dword [rbx]
    assert_eq!(f.gpr[RAX], 0xffff_ffff_8000_0000);
}

#[test]
fn logic_ops_on_device_and_register_with_flags() {
    let mut f = fake();
    set_dev(&mut f, DEV, 0x1234_5678, 4);
    f.rflags = 2 | CF | OF | AF;
    run(&mut f, &[0x83, 0x20, 0xf0], true).unwrap(); // and dword [rax], -16
    assert_eq!(dev(&f, DEV, 4), 0x1234_5670);
    assert_eq!(
        f.rflags, 2,
        "CF OF cleared, result nonzero, odd parity, positive"
    );
    f.gpr[1] = 0x8000_0000;
    run(&mut f, &[0x09, 0x08], true).unwrap(); // or [rax], ecx
    assert_eq!(dev(&f, DEV, 4), 0x9234_5670);
    assert_eq!(f.rflags, 2 | SF);
    f.gpr[RBX] = DEV;
    f.gpr[RAX] = 0x9234_5670;
    run(&mut f, &[0x33, 0x03], false).unwrap(); // xor eax, [rbx]
    assert_eq!(f.gpr[RAX], 0);
    assert_eq!(f.rflags, 2 | ZF | PF);
    assert_eq!(
        dev(&f, DEV, 4),
        0x9234_5670,
        "register destination: device untouched"
    );
    f.gpr[RAX] = DEV;
    run(&mut f, &[0xf6, 0x00, 0x80], false).unwrap(); // test byte [rax], 0x80
    assert_eq!(f.rflags, 2 | ZF | PF, "0x70 & 0x80 = 0");
    assert_eq!(
        f.log.iter().filter(|l| l.0).count(),
        2,
        "test does not write"
    );
}

#[test]
fn add_sub_cmp_flags() {
    let mut f = fake();
    set_dev(&mut f, DEV, 0xffff_ffff, 4);
    run(&mut f, &[0x83, 0x00, 0x01], true).unwrap(); // add dword [rax], 1
    assert_eq!(dev(&f, DEV, 4), 0);
    assert_eq!(f.rflags, 2 | CF | ZF | PF | AF);
    set_dev(&mut f, DEV, 0x7f, 1);
    run(&mut f, &[0x80, 0x00, 0x01], true).unwrap(); // add byte [rax], 1
    assert_eq!(dev(&f, DEV, 1), 0x80);
    assert_eq!(f.rflags, 2 | OF | SF | AF);
    set_dev(&mut f, DEV, 5, 4);
    f.gpr[1] = 7;
    run(&mut f, &[0x29, 0x08], true).unwrap(); // sub [rax], ecx: 5 - 7
    assert_eq!(dev(&f, DEV, 4), 0xffff_fffe);
    assert_eq!(f.rflags, 2 | CF | SF | AF);
    let writes = f.log.iter().filter(|l| l.0).count();
    set_dev(&mut f, DEV, 5, 4);
    run(&mut f, &[0x83, 0x38, 0x05], false).unwrap(); // cmp dword [rax], 5
    assert_eq!(f.rflags, 2 | ZF | PF);
    assert_eq!(
        f.log.iter().filter(|l| l.0).count(),
        writes,
        "cmp does not write"
    );
    set_dev(&mut f, DEV, 0x8000_0000, 4);
    f.gpr[1] = 1;
    f.gpr[RBX] = DEV;
    // cmp ecx, [rbx]: 1 - 0x80000000 overflows.
    run(&mut f, &[0x3b, 0x0b], false).unwrap();
    assert_eq!(f.rflags & (CF | OF | SF | ZF), CF | OF | SF);
}

#[test]
fn xchg_swaps_register_and_device() {
    let mut f = fake();
    set_dev(&mut f, DEV, 0xaaaa_aaaa, 4);
    f.gpr[1] = 0xffff_ffff_1234_5678;
    run(&mut f, &[0x87, 0x08], true).unwrap(); // xchg [rax], ecx
    assert_eq!(dev(&f, DEV, 4), 0x1234_5678);
    assert_eq!(f.gpr[1], 0xaaaa_aaaa);
    assert_eq!(f.rip, 0x1002);
}

#[test]
fn bit_tests_set_cf_and_modify() {
    let mut f = fake();
    set_dev(&mut f, DEV, 0b1000, 4);
    run(&mut f, &[0x0f, 0xba, 0x20, 0x03], false).unwrap(); // bt dword [rax], 3
    assert_eq!(f.rflags & CF, CF);
    assert_eq!(f.log.iter().filter(|l| l.0).count(), 0);
    f.gpr[1] = 4;
    run(&mut f, &[0x0f, 0xab, 0x08], true).unwrap(); // bts [rax], ecx
    assert_eq!(dev(&f, DEV, 4), 0b11000);
    assert_eq!(f.rflags & CF, 0);
    run(&mut f, &[0x0f, 0xba, 0x30, 0x03], true).unwrap(); // btr dword [rax], 3
    assert_eq!(dev(&f, DEV, 4), 0b10000);
    assert_eq!(f.rflags & CF, CF);
    run(&mut f, &[0x0f, 0xba, 0x38, 0x24], true).unwrap(); // btc dword [rax], 36 (= 4)
    assert_eq!(dev(&f, DEV, 4), 0);
    // A register offset addresses the next dword: bts [rax], ecx with ecx = 33.
    f.gpr[1] = 33;
    run(&mut f, &[0x0f, 0xab, 0x08], true).unwrap();
    assert_eq!(dev(&f, DEV + 4, 4), 0b10);
    // ...and a negative one the previous.
    f.gpr[1] = (-1i32) as u32 as u64;
    run(&mut f, &[0x0f, 0xab, 0x08], true).unwrap();
    assert_eq!(dev(&f, DEV - 4, 4), 0x8000_0000);
}

#[test]
fn stos_and_rep_stos() {
    let mut f = fake();
    f.gpr[RAX] = 0xdead_beef;
    f.gpr[RDI] = 0x7000;
    run(&mut f, &[0xab], true).unwrap(); // stosd
    assert_eq!(f.log, [(true, DEV, 4, 0xdead_beef)]);
    assert_eq!((f.gpr[RDI], f.rip), (0x7004, 0x1001));
    f.log.clear();
    f.gpr[RCX] = 3;
    run(&mut f, &[0xf3, 0xab], true).unwrap(); // rep stosd
    let addrs: Vec<u64> = f.log.iter().map(|l| l.1).collect();
    assert_eq!(addrs, [DEV, DEV + 4, DEV + 8]);
    assert_eq!((f.gpr[RCX], f.gpr[RDI], f.rip), (0, 0x7010, 0x1003));
    // Direction flag: downwards.
    f.log.clear();
    f.rflags |= 0x400;
    f.gpr[RCX] = 2;
    run(&mut f, &[0xf3, 0xaa], true).unwrap(); // rep stosb
    let addrs: Vec<u64> = f.log.iter().map(|l| l.1).collect();
    assert_eq!(addrs, [DEV, DEV - 1]);
    assert_eq!(f.gpr[RDI], 0x700e);
    // A long rep stops after MAX_REPS with RIP kept for the rest.
    f.rflags = 2;
    f.gpr[RCX] = MAX_REPS + 5;
    let rip = f.rip;
    run(&mut f, &[0xf3, 0xab], true).unwrap();
    assert_eq!((f.gpr[RCX], f.rip), (5, rip));
    run(&mut f, &[0xf3, 0xab], true).unwrap();
    assert_eq!((f.gpr[RCX], f.rip), (0, rip + 2));
}

#[test]
fn movs_between_ram_and_device() {
    let mut f = fake();
    f.gpr[RSI] = 0x5000;
    f.gpr[RDI] = 0x6000;
    for (i, b) in [1u8, 2, 3, 4].iter().enumerate() {
        f.ram.insert(0x5000 + i as u64, *b);
    }
    run(&mut f, &[0xa5], true).unwrap(); // movsd, device destination
    assert_eq!(f.log, [(true, DEV, 4, 0x0403_0201)]);
    assert_eq!((f.gpr[RSI], f.gpr[RDI]), (0x5004, 0x6004));
    set_dev(&mut f, DEV, 0xa1b2, 2);
    run(&mut f, &[0x66, 0xa5], false).unwrap(); // movsw, device source
    assert_eq!(f.ram.get(&0x6004), Some(&0xb2));
    assert_eq!(f.ram.get(&0x6005), Some(&0xa1));
    // The RAM side unreachable: unhandled, registers untouched.
    f.gpr[RSI] = 0xdead_0000;
    let before = (f.gpr, f.rip);
    assert_eq!(
        run(&mut f, &[0xa5], true),
        Err(Unhandled::LinearFault(0xdead_0000))
    );
    assert_eq!((f.gpr, f.rip), before);
}

#[test]
fn thirty_two_bit_guests_decode_in_their_mode() {
    let mut f = fake();
    f.gpr[RBX] = 0xffff_ffff_0000_0001;
    // 32-bit mode: 0x89 0x18 is mov [eax], ebx; RIP advances by 2.
    emulate(&mut f, &[0x89, 0x18], 32, DEV, true).unwrap();
    assert_eq!(f.log, [(true, DEV, 4, 1)]);
    // In 32-bit mode 0x48 is `dec eax`, not REX.W: not a memory access.
    assert!(matches!(
        emulate(&mut f, &[0x48, 0x89, 0x18], 32, DEV, true),
        Err(Unhandled::Unsupported(_))
    ));
}

#[test]
fn unhandled_forms_change_nothing() {
    for bytes in [
        &[0xf7, 0x30][..],         // div dword [rax]
        &[0x0f, 0x0b],             // ud2
        &[0xff, 0x10],             // call [rax]
        &[0xf0, 0x0f, 0xc1, 0x08], // lock xadd [rax], ecx
        &[0x0f, 0x01, 0x08],       // sidt [rax]
        &[0xf2, 0x0f, 0x10, 0x00], // movsd xmm0, [rax]
        &[],
        &[0x0f],
    ] {
        let mut f = fake();
        set_dev(&mut f, DEV, 7, 4);
        let before = (f.gpr, f.rip, f.rflags);
        let r = run(&mut f, bytes, false);
        assert!(r.is_err(), "{bytes:x?} was emulated");
        assert_eq!((f.gpr, f.rip, f.rflags), before, "{bytes:x?}");
        assert!(f.log.iter().all(|l| !l.0), "{bytes:x?} wrote");
    }
}
