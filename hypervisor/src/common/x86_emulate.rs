//! The small part of Xen's `x86_emulate` this hypervisor needs: decoding
//! `mov %reg, %crN` (`0f 22 /r`) for backends that report a CR write without
//! the source register (SVM without decode assists, as under QEMU TCG).

/// A decoded `mov %reg, %crN`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MovToCr {
    /// The control register (ModRM.reg, extended by REX.R).
    pub cr: u8,
    /// The source general-purpose register (ModRM.rm, extended by REX.B).
    pub gpr: u8,
    /// The instruction's length in bytes.
    pub len: u8,
}

/// Decode `bytes` (from RIP on) as `mov %reg, %crN`: legacy prefixes, a REX
/// prefix in 64-bit mode (`long`), `0f 22`, ModRM (any `mod`: the operand is
/// always a register). `None` for anything else.
pub fn decode_mov_to_cr(bytes: &[u8], long: bool) -> Option<MovToCr> {
    let mut i = 0;
    while i < bytes.len().min(14)
        && matches!(
            bytes[i],
            0x26 | 0x2e | 0x36 | 0x3e | 0x64 | 0x65 | 0x66 | 0x67 | 0xf2 | 0xf3
        )
    {
        i += 1;
    }
    let mut rex = 0u8;
    if long && bytes.get(i).is_some_and(|b| b & 0xf0 == 0x40) {
        rex = bytes[i];
        i += 1;
    }
    if bytes.get(i..i + 2)? != [0x0f, 0x22] {
        return None;
    }
    let modrm = *bytes.get(i + 2)?;
    let len = i + 3;
    if len > 15 {
        return None;
    }
    Some(MovToCr {
        cr: ((modrm >> 3) & 7) | ((rex & 4) << 1),
        gpr: (modrm & 7) | ((rex & 1) << 3),
        len: len as u8,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mov_to_cr4_forms() {
        let m = |cr, gpr, len| Some(MovToCr { cr, gpr, len });
        // mov %rax, %cr4 / mov %eax, %cr4 (same bytes in both modes).
        assert_eq!(decode_mov_to_cr(&[0x0f, 0x22, 0xe0], true), m(4, 0, 3));
        assert_eq!(decode_mov_to_cr(&[0x0f, 0x22, 0xe0], false), m(4, 0, 3));
        // mov %rcx, %cr4; mov %rdi, %cr4.
        assert_eq!(decode_mov_to_cr(&[0x0f, 0x22, 0xe1], true), m(4, 1, 3));
        assert_eq!(decode_mov_to_cr(&[0x0f, 0x22, 0xe7], true), m(4, 7, 3));
        // mov %r9, %cr4 (REX.B); mov %rax, %cr8 (REX.R); mod != 3 still a register.
        assert_eq!(
            decode_mov_to_cr(&[0x41, 0x0f, 0x22, 0xe1], true),
            m(4, 9, 4)
        );
        assert_eq!(
            decode_mov_to_cr(&[0x44, 0x0f, 0x22, 0xc0], true),
            m(8, 0, 4)
        );
        assert_eq!(decode_mov_to_cr(&[0x0f, 0x22, 0x20], true), m(4, 0, 3));
        // A REX byte is `inc`/`dec` outside 64-bit mode: not this instruction.
        assert_eq!(decode_mov_to_cr(&[0x41, 0x0f, 0x22, 0xe1], false), None);
        // Prefixes are skipped and counted.
        assert_eq!(
            decode_mov_to_cr(&[0x66, 0x0f, 0x22, 0xe0], true),
            m(4, 0, 4)
        );
        // Other instructions, truncated bytes, endless prefixes.
        assert_eq!(decode_mov_to_cr(&[0x0f, 0x20, 0xe0], true), None);
        assert_eq!(decode_mov_to_cr(&[0x0f, 0x22], true), None);
        assert_eq!(decode_mov_to_cr(&[], true), None);
        assert_eq!(decode_mov_to_cr(&[0x66; 15], true), None);
    }
}
