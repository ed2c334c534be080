//! Time from the TSC, calibrated once against the legacy PIT (channel 2, the
//! speaker gate, which needs no interrupt). The TSC counts from machine reset, so
//! `rdtsc / frequency` is the time since reset that the console prints.
//!
//! Mirrors Xen's `xen/arch/x86/time.c` (`calibrate_tsc` / PIT calibration).

use core::sync::atomic::{AtomicU64, Ordering};

use x86_64::instructions::port::Port;

/// PIT input clock in Hz.
const PIT_HZ: u64 = 1_193_182;
/// Calibration window: 10 ms of PIT ticks.
const CALIBRATE_MS: u64 = 10;

/// TSC ticks per second; 0 until [`calibrate`] ran.
static TSC_HZ: AtomicU64 = AtomicU64::new(0);

/// Reads the time-stamp counter.
pub fn rdtsc() -> u64 {
    // SAFETY: RDTSC is unprivileged-safe and has no side effects.
    unsafe { core::arch::x86_64::_rdtsc() }
}

/// Measures the TSC frequency over a 10 ms PIT window. Call once on the BSP with
/// interrupts off.
pub fn calibrate() -> u64 {
    let count = PIT_HZ * CALIBRATE_MS / 1000;
    let mut gate = Port::<u8>::new(0x61);
    let mut cmd = Port::<u8>::new(0x43);
    let mut ch2 = Port::<u8>::new(0x42);
    // SAFETY: ports 0x61/0x42/0x43 are the PC's PIT and speaker gate; we only use
    // channel 2 with the speaker output off, which nothing else in the system uses.
    let hz = unsafe {
        let g = gate.read();
        // Gate high, speaker off.
        gate.write((g & !0x02) | 0x01);
        // Channel 2, lobyte/hibyte, mode 0 (interrupt on terminal count), binary.
        cmd.write(0b1011_0000);
        ch2.write((count & 0xFF) as u8);
        ch2.write((count >> 8) as u8);
        let start = rdtsc();
        // OUT2 (bit 5 of port 0x61) goes high when the count reaches zero.
        let mut spins: u64 = 0;
        while gate.read() & 0x20 == 0 {
            spins += 1;
            if spins > 1_000_000_000 {
                break;
            }
        }
        let end = rdtsc();
        gate.write(g);
        (end - start) * 1000 / CALIBRATE_MS
    };
    TSC_HZ.store(hz.max(1), Ordering::Relaxed);
    hz
}

/// TSC frequency in Hz (1 before calibration).
pub fn tsc_hz() -> u64 {
    TSC_HZ.load(Ordering::Relaxed).max(1)
}

/// Microseconds since machine reset; 0 before calibration.
pub fn micros_since_reset() -> u64 {
    let hz = TSC_HZ.load(Ordering::Relaxed);
    if hz == 0 {
        return 0;
    }
    (rdtsc() as u128 * 1_000_000 / hz as u128) as u64
}

/// Busy-waits `us` microseconds on the calibrated TSC.
pub fn delay_us(us: u64) {
    let end = rdtsc() + tsc_hz() * us / 1_000_000;
    while rdtsc() < end {
        core::hint::spin_loop();
    }
}
