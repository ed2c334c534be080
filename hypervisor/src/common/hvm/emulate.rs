//! x86 instruction emulation for MMIO: after a stage-2 fault in an emulated or
//! unbacked device range, the faulting instruction's bytes (fetched by the caller
//! through the guest's page tables from RIP) are decoded with `iced-x86` and the
//! memory-operand forms guests use on device registers are executed against a
//! [`Machine`]: `mov` to/from a register or an immediate, `movzx`/`movsx`/
//! `movsxd`, `and`/`or`/`xor`/`add`/`sub`/`cmp`/`test`, `xchg`, `bt`/`bts`/
//! `btr`/`btc`, `stos` and `movs` (with `rep`), with the architectural operand
//! sizes, arithmetic flags and RIP advance.
//!
//! Mirrors the subset of Xen 4.17's `x86_emulate` that `hvmemul_*` drives for
//! MMIO (`xen/arch/x86/hvm/emulate.c`). Everything else is [`Unhandled`]: the
//! caller crashes the domain with RIP and the bytes in the log, as Xen's
//! `hvm_dump_emulation_state` does for an unhandleable emulation.
//!
//! Simplifications, written down: the MMIO operand's address is the faulting
//! GPA (the hardware translated it); segment bases are taken as 0 (64-bit mode,
//! flat 32-bit guests); a `rep` string instruction does at most
//! [`MAX_REPS`] iterations per exit and is re-executed for the rest (RIP stays,
//! RCX counts down), as Xen's bounded repeats are.

use iced_x86::{Decoder, DecoderOptions, Instruction, Mnemonic, OpKind, Register};
use xen_public_abi::XenResult;

/// Iterations of a `rep` string instruction per emulation.
pub const MAX_REPS: u64 = 256;

/// Arithmetic flags the emulated instructions define (CF PF AF ZF SF OF).
const FLAG_CF: u64 = 1 << 0;
const FLAG_PF: u64 = 1 << 2;
const FLAG_AF: u64 = 1 << 4;
const FLAG_ZF: u64 = 1 << 6;
const FLAG_SF: u64 = 1 << 7;
const FLAG_DF: u64 = 1 << 10;
const FLAG_OF: u64 = 1 << 11;
const ARITH_FLAGS: u64 = FLAG_CF | FLAG_PF | FLAG_AF | FLAG_ZF | FLAG_SF | FLAG_OF;

/// General-purpose registers by number: 0 RAX, 1 RCX, 2 RDX, 3 RBX, 4 RSP,
/// 5 RBP, 6 RSI, 7 RDI, 8..15 R8..R15 (the encoding order).
pub const RCX: usize = 1;
pub const RSI: usize = 6;
pub const RDI: usize = 7;

/// What the emulator works on: a vCPU's registers, the device side of the
/// faulting access and the guest's linear memory (the RAM side of `movs`).
pub trait Machine {
    fn gpr(&self, n: usize) -> u64;
    fn set_gpr(&mut self, n: usize, value: u64);
    fn rip(&self) -> u64;
    fn set_rip(&mut self, rip: u64);
    fn rflags(&self) -> u64;
    fn set_rflags(&mut self, rflags: u64);
    /// A device read of `size` bytes (1, 2, 4, 8) at `gpa`.
    fn mmio_read(&mut self, gpa: u64, size: u8) -> u64;
    /// A device write of the low `size` bytes of `value` at `gpa`.
    fn mmio_write(&mut self, gpa: u64, size: u8, value: u64);
    /// Guest linear memory (RAM), for the other operand of `movs`.
    fn read_linear(&mut self, gla: u64, buf: &mut [u8]) -> XenResult<()>;
    fn write_linear(&mut self, gla: u64, buf: &[u8]) -> XenResult<()>;
}

/// Why an instruction was not emulated (the caller crashes the domain).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Unhandled {
    /// The bytes do not decode to a valid instruction.
    Invalid,
    /// A valid instruction this emulator does not do (or not in this form).
    Unsupported(Mnemonic),
    /// The RAM side of a `movs` could not be accessed.
    LinearFault(u64),
}

/// Decodes `bytes` (the code at RIP; at most 15 are looked at) for a guest in
/// `bitness` (16, 32 or 64) mode, and executes it with its device operand at
/// `gpa`; `write` says whether the fault was a write (tells `movs` which side is
/// the device). On success RIP is advanced (or, for a `rep` with iterations
/// left, kept).
pub fn emulate(
    m: &mut dyn Machine,
    bytes: &[u8],
    bitness: u32,
    gpa: u64,
    write: bool,
) -> Result<Instruction, Unhandled> {
    let bytes = &bytes[..bytes.len().min(15)];
    let mut decoder = Decoder::with_ip(bitness, bytes, m.rip(), DecoderOptions::NONE);
    let insn = decoder.decode();
    if insn.is_invalid() {
        return Err(Unhandled::Invalid);
    }
    execute(m, &insn, gpa, write)?;
    Ok(insn)
}

fn mask(size: u8) -> u64 {
    if size >= 8 {
        u64::MAX
    } else {
        (1u64 << (size * 8)) - 1
    }
}

fn sign_bit(size: u8) -> u64 {
    1u64 << (size * 8 - 1)
}

/// A register operand: (gpr number, byte shift, size in bytes).
fn reg_parts(r: Register) -> Option<(usize, u32, u8)> {
    let shift = match r {
        Register::AH | Register::CH | Register::DH | Register::BH => 8,
        _ => 0,
    };
    let full = r.full_register();
    if !full.is_gpr64() {
        return None;
    }
    let n = full as usize - Register::RAX as usize;
    Some((n, shift, r.size() as u8))
}

fn read_reg(m: &dyn Machine, r: Register) -> Option<u64> {
    let (n, shift, size) = reg_parts(r)?;
    Some((m.gpr(n) >> shift) & mask(size))
}

/// Writes a register with x86's rules: 8/16-bit writes keep the rest, 32-bit
/// writes zero the upper half.
fn write_reg(m: &mut dyn Machine, r: Register, value: u64) -> Option<()> {
    let (n, shift, size) = reg_parts(r)?;
    let old = m.gpr(n);
    let new = match size {
        4 => value & 0xffff_ffff,
        8 => value,
        _ => (old & !(mask(size) << shift)) | ((value & mask(size)) << shift),
    };
    m.set_gpr(n, new);
    Some(())
}

/// The value of a non-memory source operand, masked to `size`.
fn source(m: &dyn Machine, insn: &Instruction, op: u32, size: u8) -> Option<u64> {
    match insn.op_kind(op) {
        OpKind::Register => read_reg(m, insn.op_register(op)),
        OpKind::Immediate8
        | OpKind::Immediate16
        | OpKind::Immediate32
        | OpKind::Immediate64
        | OpKind::Immediate8to16
        | OpKind::Immediate8to32
        | OpKind::Immediate8to64
        | OpKind::Immediate32to64 => Some(insn.immediate(op) & mask(size)),
        _ => None,
    }
}

fn parity(v: u64) -> bool {
    (v as u8).count_ones().is_multiple_of(2)
}

/// The arithmetic flags of `res` (masked to `size`) for a logic operation.
fn logic_flags(res: u64, size: u8) -> u64 {
    let mut f = 0;
    if res & mask(size) == 0 {
        f |= FLAG_ZF;
    }
    if res & sign_bit(size) != 0 {
        f |= FLAG_SF;
    }
    if parity(res) {
        f |= FLAG_PF;
    }
    f
}

/// `a op b` for the ALU mnemonics: (result, flags).
fn alu(op: Mnemonic, a: u64, b: u64, size: u8) -> (u64, u64) {
    let mk = mask(size);
    let (a, b) = (a & mk, b & mk);
    match op {
        Mnemonic::And | Mnemonic::Test => (a & b, logic_flags(a & b, size)),
        Mnemonic::Or => (a | b, logic_flags(a | b, size)),
        Mnemonic::Xor => (a ^ b, logic_flags(a ^ b, size)),
        Mnemonic::Add => {
            let res = a.wrapping_add(b) & mk;
            let mut f = logic_flags(res, size);
            if res < a {
                f |= FLAG_CF;
            }
            if (a ^ res) & (b ^ res) & sign_bit(size) != 0 {
                f |= FLAG_OF;
            }
            if (a ^ b ^ res) & 0x10 != 0 {
                f |= FLAG_AF;
            }
            (res, f)
        }
        _ => {
            // Sub, Cmp.
            let res = a.wrapping_sub(b) & mk;
            let mut f = logic_flags(res, size);
            if a < b {
                f |= FLAG_CF;
            }
            if (a ^ b) & (a ^ res) & sign_bit(size) != 0 {
                f |= FLAG_OF;
            }
            if (a ^ b ^ res) & 0x10 != 0 {
                f |= FLAG_AF;
            }
            (res, f)
        }
    }
}

fn set_arith_flags(m: &mut dyn Machine, f: u64) {
    let rf = m.rflags();
    m.set_rflags((rf & !ARITH_FLAGS) | f);
}

fn unsupported(insn: &Instruction) -> Unhandled {
    Unhandled::Unsupported(insn.mnemonic())
}

fn execute(
    m: &mut dyn Machine,
    insn: &Instruction,
    gpa: u64,
    write: bool,
) -> Result<(), Unhandled> {
    let bad = || unsupported(insn);
    let size = insn.memory_size().size() as u8;
    let mem_op = (0..insn.op_count()).find(|&i| insn.op_kind(i) == OpKind::Memory);
    let next = m.rip().wrapping_add(insn.len() as u64);
    match insn.mnemonic() {
        Mnemonic::Stosb | Mnemonic::Stosw | Mnemonic::Stosd | Mnemonic::Stosq => {
            return string_op(m, insn, gpa, write, next)
        }
        Mnemonic::Movsb | Mnemonic::Movsw | Mnemonic::Movsd | Mnemonic::Movsq
            if insn.op_count() == 2 && insn.op0_kind() != OpKind::Register =>
        {
            return string_op(m, insn, gpa, write, next)
        }
        _ => {}
    }
    let mem = mem_op.ok_or_else(bad)?;
    if !(1..=8).contains(&size) || insn.has_lock_prefix() && mem != 0 {
        return Err(bad());
    }
    match insn.mnemonic() {
        Mnemonic::Mov => {
            if mem == 0 {
                let v = source(m, insn, 1, size).ok_or_else(bad)?;
                m.mmio_write(gpa, size, v);
            } else {
                let v = m.mmio_read(gpa, size);
                write_reg(m, insn.op0_register(), v).ok_or_else(bad)?;
            }
        }
        Mnemonic::Movzx | Mnemonic::Movsx | Mnemonic::Movsxd if mem == 1 => {
            let mut v = m.mmio_read(gpa, size);
            if insn.mnemonic() != Mnemonic::Movzx && v & sign_bit(size) != 0 {
                v |= !mask(size);
            }
            write_reg(m, insn.op0_register(), v).ok_or_else(bad)?;
        }
        op @ (Mnemonic::And
        | Mnemonic::Or
        | Mnemonic::Xor
        | Mnemonic::Add
        | Mnemonic::Sub
        | Mnemonic::Cmp
        | Mnemonic::Test) => {
            let stores = !matches!(op, Mnemonic::Cmp | Mnemonic::Test);
            let memval = m.mmio_read(gpa, size);
            if mem == 0 {
                let b = source(m, insn, 1, size).ok_or_else(bad)?;
                let (res, f) = alu(op, memval, b, size);
                if stores {
                    m.mmio_write(gpa, size, res);
                }
                set_arith_flags(m, f);
            } else {
                let a = read_reg(m, insn.op0_register()).ok_or_else(bad)?;
                let (res, f) = alu(op, a, memval, size);
                if stores {
                    write_reg(m, insn.op0_register(), res).ok_or_else(bad)?;
                }
                set_arith_flags(m, f);
            }
        }
        Mnemonic::Xchg => {
            let r = insn.op_register(1 - mem);
            let regval = read_reg(m, r).ok_or_else(bad)?;
            let memval = m.mmio_read(gpa, size);
            m.mmio_write(gpa, size, regval);
            write_reg(m, r, memval).ok_or_else(bad)?;
        }
        op @ (Mnemonic::Bt | Mnemonic::Bts | Mnemonic::Btr | Mnemonic::Btc) if mem == 0 => {
            let bits = u64::from(size) * 8;
            let (addr, bit) = match insn.op1_kind() {
                OpKind::Register => {
                    // A register offset is signed and may address other units.
                    let raw = read_reg(m, insn.op1_register()).ok_or_else(bad)?;
                    let shift = 64 - bits as u32;
                    let off = ((raw << shift) as i64) >> shift;
                    let unit = off.div_euclid(bits as i64);
                    (
                        gpa.wrapping_add((unit * i64::from(size)) as u64),
                        off.rem_euclid(bits as i64) as u64,
                    )
                }
                _ => (gpa, insn.immediate(1) & (bits - 1)),
            };
            let v = m.mmio_read(addr, size);
            let was = v >> bit & 1;
            let new = match op {
                Mnemonic::Bts => Some(v | 1 << bit),
                Mnemonic::Btr => Some(v & !(1 << bit)),
                Mnemonic::Btc => Some(v ^ 1 << bit),
                _ => None,
            };
            if let Some(n) = new {
                m.mmio_write(addr, size, n);
            }
            let rf = m.rflags();
            m.set_rflags((rf & !FLAG_CF) | was);
        }
        _ => return Err(bad()),
    }
    m.set_rip(next);
    Ok(())
}

/// `stos` / `movs`, with or without `rep`: the device side at `gpa` (moving
/// with the index register), the RAM side of `movs` through linear memory.
fn string_op(
    m: &mut dyn Machine,
    insn: &Instruction,
    gpa: u64,
    write: bool,
    next: u64,
) -> Result<(), Unhandled> {
    let size = insn.memory_size().size() as u8;
    if !(1..=8).contains(&size) {
        return Err(unsupported(insn));
    }
    // The address size, from the destination operand's form.
    let addr_mask = match insn.op0_kind() {
        OpKind::MemoryESEDI => 0xffff_ffffu64,
        OpKind::MemoryESDI => 0xffff,
        OpKind::MemoryESRDI => u64::MAX,
        _ => return Err(unsupported(insn)),
    };
    let rep = insn.has_rep_prefix() || insn.has_repe_prefix();
    let is_movs = matches!(
        insn.mnemonic(),
        Mnemonic::Movsb | Mnemonic::Movsw | Mnemonic::Movsd | Mnemonic::Movsq
    );
    if is_movs && insn.has_repne_prefix() {
        return Err(unsupported(insn));
    }
    let step = if m.rflags() & FLAG_DF != 0 {
        (size as u64).wrapping_neg()
    } else {
        size as u64
    };
    let count = if rep { m.gpr(RCX) & addr_mask } else { 1 };
    let n = count.min(MAX_REPS);
    let mut dev = gpa;
    for _ in 0..n {
        let rdi = m.gpr(RDI);
        let rsi = m.gpr(RSI);
        if is_movs {
            let mut buf = [0u8; 8];
            let b = &mut buf[..size as usize];
            if write {
                // RAM [rsi] -> device [rdi].
                m.read_linear(rsi & addr_mask, b)
                    .map_err(|_| Unhandled::LinearFault(rsi))?;
                m.mmio_write(dev, size, u64::from_le_bytes(buf));
            } else {
                // Device [rsi] -> RAM [rdi].
                let v = m.mmio_read(dev, size).to_le_bytes();
                m.write_linear(rdi & addr_mask, &v[..size as usize])
                    .map_err(|_| Unhandled::LinearFault(rdi))?;
            }
            m.set_gpr(RSI, step_index(rsi, step, addr_mask));
        } else {
            let v = m.gpr(0) & mask(size);
            m.mmio_write(dev, size, v);
        }
        m.set_gpr(RDI, step_index(rdi, step, addr_mask));
        dev = dev.wrapping_add(step);
    }
    if rep {
        let left = count - n;
        let rcx = m.gpr(RCX);
        m.set_gpr(RCX, (rcx & !addr_mask) | left);
        if left != 0 {
            return Ok(()); // RIP stays: the rest at the next exit
        }
    }
    m.set_rip(next);
    Ok(())
}

fn step_index(v: u64, step: u64, addr_mask: u64) -> u64 {
    (v & !addr_mask) | (v.wrapping_add(step) & addr_mask)
}
