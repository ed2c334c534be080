//! A vCPU's x87/SSE state in the 512-byte FXSAVE layout. Neither VMRUN nor VM entry
//! switches it and the soft-float host never touches it, so both backends load a
//! vCPU's state right before entering the guest and save it right after the exit.

use alloc::boxed::Box;

#[repr(C, align(16))]
pub struct FpuState([u8; 512]);

impl FpuState {
    /// The architectural reset state: FCW 0x037F (all exceptions masked, extended
    /// precision), MXCSR 0x1F80, every register zero.
    pub fn reset() -> Box<FpuState> {
        let mut f = Box::new(FpuState([0; 512]));
        f.0[0..2].copy_from_slice(&0x037Fu16.to_le_bytes());
        f.0[24..28].copy_from_slice(&0x1F80u32.to_le_bytes());
        f
    }

    /// Load this state into the CPU (`fxrstor64`).
    ///
    /// # Safety
    /// CR4.OSFXSR must be set and CR0.EM/TS clear on this CPU (the backends'
    /// per-CPU enable does that), and nothing may use x87/SSE until [`Self::save`].
    #[inline(always)]
    pub unsafe fn load(&self) {
        // SAFETY: the area is 512 bytes and 16-byte aligned; the caller vouches for
        // the CPU state.
        unsafe { core::arch::asm!("fxrstor64 [{}]", in(reg) self.0.as_ptr(), options(nostack)) };
    }

    /// Save the CPU's x87/SSE state into this area (`fxsave64`).
    ///
    /// # Safety
    /// As for [`Self::load`].
    #[inline(always)]
    pub unsafe fn save(&mut self) {
        // SAFETY: as in `load`; fxsave64 writes exactly the 512-byte area.
        unsafe { core::arch::asm!("fxsave64 [{}]", in(reg) self.0.as_mut_ptr(), options(nostack)) };
    }
}
