//! The Intel VMX backend of the vCPU interface: VMX root operation per CPU
//! ([`vmxon`]), capability-derived controls ([`caps`]), the VMCS ([`vmcs`], [`vcpu`]),
//! EPT entries for the shared stage-2 builder ([`ept`]), the entry trampoline
//! ([`entry`]), exit decoding and failed-entry reports ([`exit`]), and the built-in
//! self-test guest ([`selftest`], `boot.cmd` `test=vmx-selftest`).
//!
//! VMX-only altp2m hardware (the EPTP list behind VMFUNC leaf 0, hardware #VE) is
//! offered by [`vcpu::VmxVcpu`]'s own methods; the policy (which views exist, who may
//! switch) stays above the vCPU interface.
//!
//! Mirrors Xen's `xen/arch/x86/hvm/vmx/` (`vmcs.c`, `vmx.c`, `entry.S`,
//! `mm/p2m-ept.c`), written from the Intel SDM volume 3.

pub mod caps;
pub mod entry;
pub mod ept;
pub mod exit;
pub mod probe;
pub mod selftest;
pub mod vcpu;
pub mod vmcs;
pub mod vmxon;

use alloc::boxed::Box;

use super::vcpu::{Vcpu, VcpuError};

/// Puts this CPU in VMX root operation (idempotent per CPU), after checking that the
/// controls the backend needs are available and that EPT can be walked as we build it.
pub fn cpu_enable() -> Result<(), VcpuError> {
    check_caps()?;
    vmxon::cpu_up().map_err(VcpuError::Unsupported)?;
    if caps::get().ve() && caps::get().eptp_switching() {
        // Once, before any guest runs: how far hardware #VE can be trusted.
        probe::eptp_index_loaded();
    }
    Ok(())
}

/// A new VMX vCPU in the reset state.
pub fn new_vcpu() -> Result<Box<dyn Vcpu>, VcpuError> {
    check_caps()?;
    Ok(Box::new(vcpu::VmxVcpu::new()?))
}

fn check_caps() -> Result<(), VcpuError> {
    let c = caps::get();
    if let Err(m) = caps::controls(c) {
        log::error!("vmx: {m}");
        return Err(VcpuError::Unsupported("VMX lacks a required control"));
    }
    if !ept::supported() {
        return Err(VcpuError::Unsupported(
            "EPT without 4-level walks or write-back paging structures",
        ));
    }
    Ok(())
}

/// Logs the VMX capabilities the backend will use (once, at boot).
pub fn log_caps() {
    let c = caps::get();
    match caps::controls(c) {
        Ok(ctl) => log::info!(
            "vmx: revision {:#x}, controls pin {:#x} proc {:#x} proc2 {:#x} exit {:#x} entry {:#x}; vmfunc eptp-switching={} #VE={} preemption-timer={} ept/vpid caps {:#x}",
            c.revision,
            ctl.pin,
            ctl.proc,
            ctl.proc2,
            ctl.exit,
            ctl.entry,
            c.eptp_switching() as u8,
            c.ve() as u8,
            c.pin.allows(caps::pin::PREEMPTION_TIMER) as u8,
            c.ept_vpid
        ),
        Err(m) => log::error!("vmx: {m}"),
    }
}
