//! Ending the emulator run: QEMU's `isa-debug-exit` device (port 0xF4: 0x10 →
//! exit status 33 = success, 0x11 → 35 = failure) and Bochs' shutdown port 0x8900
//! (the bytes `Shutdown`; QEMU ignores them). The counterpart of Xen's
//! `machine_halt`/`machine_restart` for an emulated test machine.

use x86_64::instructions::port::Port;

/// How the run ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ExitCode {
    Success,
    Failure,
}

/// Logs the final `EXIT:` line, then ends the emulator and halts this CPU forever.
pub fn exit(code: ExitCode, reason: &str) -> ! {
    // Lines deferred under the state lock (the caller may hold it) come first.
    super::console::stop_deferring();
    match code {
        ExitCode::Success => log::info!("EXIT: success"),
        ExitCode::Failure => log::error!("EXIT: failure ({reason})"),
    }
    let value: u32 = match code {
        ExitCode::Success => 0x10,
        ExitCode::Failure => 0x11,
    };
    drain_com1();
    // SAFETY: port 0xF4 is the isa-debug-exit device the xtask configures; on a
    // machine without it the write is ignored. Port 0x8900 is Bochs' shutdown port,
    // likewise ignored elsewhere. We are ending the machine, so no state matters.
    unsafe {
        Port::<u32>::new(0xF4).write(value);
        let mut bochs = Port::<u8>::new(0x8900);
        for &b in b"Shutdown" {
            bochs.write(b);
        }
    }
    halt_forever()
}

/// Wait (bounded) until COM1's transmitter is empty, so that an emulator that
/// ends the moment we write its exit port (Bochs) has sent the last line.
fn drain_com1() {
    let mut lsr = Port::<u8>::new(0x3FD);
    for _ in 0..1_000_000 {
        // SAFETY: 0x3FD is COM1's line status register: reading it has no side effect.
        if unsafe { lsr.read() } & 0x40 != 0 {
            break;
        }
        core::hint::spin_loop();
    }
}

/// `cli; hlt` forever.
pub fn halt_forever() -> ! {
    loop {
        x86_64::instructions::interrupts::disable();
        x86_64::instructions::hlt();
    }
}
