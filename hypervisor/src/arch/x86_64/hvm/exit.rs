//! Vendor-neutral exit handlers: what a [`VmExit`] means for the guest.
//! (Being written: see the branch history.)

use super::vcpu::{ExitOutcome, Vcpu, VmExit};

/// Placeholder until the handlers land: every exit crashes the domain.
pub fn handle_unimplemented(_vcpu: &mut dyn Vcpu, exit: VmExit) -> ExitOutcome {
    log::error!("exit {exit:?}: exit handlers not written yet");
    ExitOutcome::Crashed
}
