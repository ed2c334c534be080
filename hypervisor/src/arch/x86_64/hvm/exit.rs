//! Vendor-neutral exit handling: what each [`VmExit`] means for the guest, and
//! the work done before every entry (stage-2 root of the vCPU's current view,
//! event delivery).
//!
//! Mirrors Xen's `xen/arch/x86/hvm/hvm.c` (`hvm_hypercall` dispatch and CPL check,
//! `hvm_msr_read/write_intercept`, `hvm_hlt`, `hvm_hap_nested_page_fault`,
//! `hvm_triple_fault`), `init_hypercall_page`
//! (xen/arch/x86/domain.c) and the #VE emulation that upstream Xen does not have
//! on SVM (altp2m on NPT is new ground here: `altp2m::check_access` +
//! `altp2m::deliver_ve` + injecting vector 20).
//!
//! One run-loop step is: [`prepare_entry`] → `vcpu.run()` → [`handle`], whose
//! [`ExitOutcome`] tells the scheduler what to do with the vCPU.

use alloc::format;
use alloc::vec::Vec;

use xen_public_abi::domctl::XEN_DOMCTL_CDF_evtchn_upcall;
use xen_public_abi::sched::{SCHEDOP_yield, SHUTDOWN_crash};
use xen_public_abi::xen::{__HYPERVISOR_sched_op, domid_t};

use super::irq::{self, VLapic, MSR_APIC_BASE, MSR_X2APIC_FIRST, MSR_X2APIC_LAST};
use super::stage2;
use super::vcpu::{CpuMode, Event, ExitOutcome, IoAccess, PagingState, Reg, Vcpu, VmExit};
use crate::common::dispatch::{ArchAction, XenExt};
use crate::common::guest_access::{GuestAccess, GuestMemory, GuestRam};
use crate::common::hvm::altp2m::{self, AccessOutcome, X86_EXC_VE};
use crate::common::hypercall::{
    check_cpl, hypercall_entry, Caller, HypercallOutcome, HypercallRegs, Hypervisor,
};
use crate::common::memory::{P2mAccess, Rights};
use crate::common::perfc::ExitKind;

pub use crate::common::cpu_policy::cpuid::MSR_XEN_HYPERCALL_PAGE;
use crate::common::cpu_policy::cpuid::{guest_cpuid, VcpuView};
use crate::common::cpu_policy::cr4;
use crate::common::cpu_policy::msr::{self, MsrAccess, VcpuMsrs};
use crate::common::x86_emulate::decode_mov_to_cr;
use xen_public_abi::arch_x86::XEN_X86_MSR_RELAXED;

/// `MSR_EFER`.
const MSR_EFER: u32 = 0xC000_0080;
/// Port 0xE9: the "Bochs/Xen debug port" early console (dom0 only).
const PORT_E9: u16 = 0xE9;
/// COM1's registers (dom0 only).
const COM1: core::ops::RangeInclusive<u16> = 0x3F8..=0x3FF;

const X86_EXC_DB: u8 = 1;
const X86_EXC_UD: u8 = 6;
const RFLAGS_TF: u64 = 1 << 8;
const RFLAGS_IF: u64 = 1 << 9;
use super::debugreg::DR6_BS;
const X86_EXC_GP: u8 = 13;
const X86_EXC_MC: u8 = 18;

/// What the vendor-neutral code keeps per vCPU besides the backend's state.
pub struct HvmVcpuState {
    pub domid: domid_t,
    pub vcpu_id: u32,
    pub lapic: VLapic,
    /// A partial line written to port 0xE9 / COM1.
    port_line: Vec<u8>,
    /// TSC at the last entry (run-time accounting).
    pub entered_tsc: u64,
    /// The gpa of the last stage-2 fault the p2m allowed (a repeat means the
    /// tables cannot express the rights).
    last_allowed_fault: Option<u64>,
    /// The p2m's TLB generation this vCPU last flushed at
    /// (`P2m::tlb_generation`).
    pub flushed_tlb_gen: u64,
    /// Per-vCPU MSRs the CPU policy governs (`struct vcpu_msrs`).
    pub msrs: VcpuMsrs,
    /// The CR4 mask last given to [`Vcpu::set_cr4_valid`].
    cr4_valid: Option<u64>,
}

impl HvmVcpuState {
    pub fn new(domid: domid_t, vcpu_id: u32) -> HvmVcpuState {
        HvmVcpuState {
            domid,
            vcpu_id,
            lapic: VLapic::new(vcpu_id),
            port_line: Vec::new(),
            entered_tsc: 0,
            last_allowed_fault: None,
            flushed_tlb_gen: 0,
            msrs: VcpuMsrs::default(),
            cr4_valid: None,
        }
    }
}

/// What the handlers work on besides the vCPU.
pub struct ExitEnv<'a> {
    pub hv: &'a mut Hypervisor,
    pub ext: &'a mut XenExt,
    /// The calling vCPU's guest-virtual memory (hypercall arguments, string I/O).
    pub guest: &'a mut dyn GuestAccess,
    pub state: &'a mut HvmVcpuState,
}

/// `domain_crash()`: log why, shut the domain down with `SHUTDOWN_crash` (dom0 is
/// told through `VIRQ_DOM_EXC`); only this domain stops.
pub fn crash_domain(
    hv: &mut Hypervisor,
    ext: &mut XenExt,
    domid: domid_t,
    why: &str,
) -> ExitOutcome {
    log::warn!("d{domid} crashed: {why}");
    if let Some(d) = hv.domains.get_mut(domid) {
        if d.shutdown(SHUTDOWN_crash as u8) {
            let code = d.shutdown.code;
            use crate::common::hypercall::ExtHandlers;
            ext.domain_shutdown(&mut hv.domains, domid, code);
        }
    }
    ExitOutcome::Crashed
}

/// Work the hypercall handlers queued for the backends ([`XenExt::actions`]):
/// crashes are carried out here; the vCPUs whose upcall was raised are returned
/// for the scheduler to kick (they were already unblocked by the handler; one
/// running on another CPU needs an IPI or waits for its next timer exit). p2m
/// view changes, #VE notification changes and TLB flushes need nothing here:
/// [`prepare_entry`] re-reads the vCPU's view and the view generations before
/// every entry and installs (flushing) a rebuilt root.
pub fn drain_actions(hv: &mut Hypervisor, ext: &mut XenExt) -> Vec<(domid_t, u32)> {
    let mut kick = Vec::new();
    for a in core::mem::take(&mut ext.actions) {
        match a {
            ArchAction::Crash { domid } => {
                crash_domain(
                    hv,
                    ext,
                    domid,
                    "crashed by a hypercall handler (domain_crash)",
                );
            }
            ArchAction::Upcall { domid, vcpu } => kick.push((domid, vcpu)),
            ArchAction::P2mChanged { .. }
            | ArchAction::VeChanged { .. }
            | ArchAction::FlushTlbs { .. } => {}
        }
    }
    kick
}

/// Before each entry: the domain still runs, the vCPU sits on the stage-2 root of
/// its current view (rebuilt if the view changed), pending events are injected or
/// an interrupt window requested. `Err` is what the run loop should do instead of
/// entering.
pub fn prepare_entry(
    vcpu: &mut dyn Vcpu,
    hv: &mut Hypervisor,
    ext: &mut XenExt,
    st: &mut HvmVcpuState,
) -> Result<(), ExitOutcome> {
    let domid = st.domid;
    let Some(d) = hv.domains.get_mut(domid) else {
        return Err(ExitOutcome::Crashed);
    };
    if d.shutdown.is_shutting_down {
        return Err(ExitOutcome::Shutdown {
            reason: d.shutdown.code,
        });
    }
    // The CR4 bits the policy grants (the policy may change until first unpause).
    let valid = d.cpu_policy.cr4_valid_bits();
    if st.cr4_valid != Some(valid) {
        vcpu.set_cr4_valid(valid);
        st.cr4_valid = Some(valid);
    }
    let view = d.hvm.p2m.current_view(st.vcpu_id);
    // Changes made outside a hypercall (an access upgraded by the fault path)
    // are committed here; a hypercall's were committed when it returned.
    if d.hvm.p2m.stage2_pending() {
        if let Err(e) = stage2::commit(domid, &mut d.hvm.p2m) {
            let why = format!("cannot update the stage-2 tables: {e:?}");
            return Err(crash_domain(hv, ext, domid, &why));
        }
    }
    let hw_views = match super::altp2m_hw::install(vcpu, domid, &mut d.hvm, st.vcpu_id) {
        Ok(taken) => taken,
        Err(e) => {
            let why = format!("cannot build stage-2 tables for the altp2m views: {e:?}");
            return Err(crash_domain(hv, ext, domid, &why));
        }
    };
    // Every CPU dropped its translations of an older p2m (a commit's shootdown):
    // this vCPU's TLB entries (ASID / VPID / EPTP-tagged) go before it enters.
    let tlb_gen = d.hvm.p2m.tlb_generation();
    if st.flushed_tlb_gen != tlb_gen {
        vcpu.flush_guest_tlb();
        st.flushed_tlb_gen = tlb_gen;
    }
    match stage2::root_for(domid, &mut d.hvm.p2m, view, vcpu.stage2_encoder()) {
        Ok(_) if hw_views => {}
        Ok(root) if root != vcpu.stage2_root() => vcpu.set_stage2_root(root),
        Ok(_) => {}
        Err(e) => {
            let why = format!("cannot build stage-2 tables for {view:?}: {e:?}");
            return Err(crash_domain(hv, ext, domid, &why));
        }
    }
    irq::deliver(vcpu, &mut hv.domains, ext, domid, st.vcpu_id, &mut st.lapic);
    Ok(())
}

/// Handle one exit. After an instruction the handlers emulated and stepped
/// over, a guest single-stepping (RFLAGS.TF) gets its #DB with DR6.BS, as the
/// hardware would have delivered it (Xen's `__update_guest_eip`).
pub fn handle(vcpu: &mut dyn Vcpu, exit: VmExit, env: &mut ExitEnv<'_>) -> ExitOutcome {
    let emulated = matches!(
        exit,
        VmExit::Hypercall
            | VmExit::Cpuid
            | VmExit::MsrRead
            | VmExit::MsrWrite
            | VmExit::Io(_)
            | VmExit::Hlt
            | VmExit::Cr4Write { .. }
    );
    let rip = vcpu.reg(Reg::Rip);
    let out = handle_exit(vcpu, exit, env);
    if emulated
        && matches!(
            out,
            ExitOutcome::Continue | ExitOutcome::Block | ExitOutcome::Yield
        )
        && vcpu.reg(Reg::Rip) != rip
        && vcpu.reg(Reg::Rflags) & RFLAGS_TF != 0
    {
        vcpu.set_dr6_bits(DR6_BS);
        vcpu.inject(Event::Exception {
            vector: X86_EXC_DB,
            error_code: None,
        });
    }
    out
}

fn handle_exit(vcpu: &mut dyn Vcpu, exit: VmExit, env: &mut ExitEnv<'_>) -> ExitOutcome {
    let domid = env.state.domid;
    if let Some(d) = env.hv.domains.get_mut(domid) {
        super::altp2m_hw::sync_view(vcpu, &mut d.hvm, env.state.vcpu_id);
        let kind = match exit {
            VmExit::Hypercall => ExitKind::Hypercall,
            VmExit::Hlt => ExitKind::Hlt,
            VmExit::ExtInterrupt | VmExit::InterruptWindow => ExitKind::Interrupt,
            _ => ExitKind::Other,
        };
        if let Some(v) = d.vcpu_mut(env.state.vcpu_id) {
            v.perfc.note_exit(kind);
        }
    }
    if !matches!(exit, VmExit::Stage2Fault { .. }) {
        env.state.last_allowed_fault = None;
    }
    match exit {
        VmExit::Hypercall => hypercall(vcpu, env),
        VmExit::Cpuid => cpuid(vcpu, env),
        VmExit::MsrRead => msr_read(vcpu, env),
        VmExit::Cr4Write { value } => cr4_write(vcpu, env, value),
        VmExit::MsrWrite => msr_write(vcpu, env),
        VmExit::Io(io) => port_io(vcpu, env, io),
        VmExit::Hlt => {
            vcpu.advance_rip();
            // `hvm_hlt`: halting with interrupts off takes the vCPU down.
            if vcpu.reg(Reg::Rflags) & RFLAGS_IF == 0 {
                let vid = env.state.vcpu_id;
                return if crate::common::sched_op::hvm_vcpu_down(env.hv, env.ext, domid, vid) {
                    ExitOutcome::Shutdown {
                        reason: xen_public_abi::sched::SHUTDOWN_poweroff,
                    }
                } else {
                    ExitOutcome::Block
                };
            }
            let st = &mut *env.state;
            if irq::has_pending(
                &mut env.hv.domains,
                env.ext,
                domid,
                st.vcpu_id,
                &mut st.lapic,
            ) {
                return ExitOutcome::Continue;
            }
            if let Some(v) = env
                .hv
                .domains
                .get_mut(domid)
                .and_then(|d| d.vcpu_mut(st.vcpu_id))
            {
                v.blocked = true;
            }
            ExitOutcome::Block
        }
        VmExit::Stage2Fault {
            gpa,
            gla,
            access,
            present,
        } => stage2_fault(vcpu, env, gpa, gla, access, present),
        VmExit::Exception {
            vector: X86_EXC_MC, ..
        } => crash_domain(env.hv, env.ext, domid, "machine check while the guest ran"),
        VmExit::Exception { vector, error_code } => {
            // Reflect what we intercepted (#UD): the guest handles its own faults.
            vcpu.inject(Event::Exception { vector, error_code });
            ExitOutcome::Continue
        }
        VmExit::TripleFault => {
            let rip = vcpu.reg(Reg::Rip);
            let why = format!("triple fault (rip {rip:#x})");
            crash_domain(env.hv, env.ext, domid, &why)
        }
        VmExit::ExtInterrupt | VmExit::InterruptWindow => ExitOutcome::Continue,
        VmExit::Vmfunc => {
            vcpu.inject(Event::Exception {
                vector: X86_EXC_UD,
                error_code: None,
            });
            ExitOutcome::Continue
        }
        VmExit::EntryFailed { raw } => {
            let why = format!("the CPU refused to enter the guest (exit code {raw:#x})");
            crash_domain(env.hv, env.ext, domid, &why)
        }
        VmExit::Unknown { raw, info1, info2 } => {
            let why = format!("unhandled exit {raw:#x} (info {info1:#x} {info2:#x})");
            crash_domain(env.hv, env.ext, domid, &why)
        }
    }
}

/// The argument registers of the 64-bit convention, in order.
const HYPERCALL_ARG_REGS: [Reg; 5] = [Reg::Rdi, Reg::Rsi, Reg::Rdx, Reg::R10, Reg::R8];

/// VMMCALL / VMCALL: CPL check, then the common dispatcher (Xen's `hvm_hypercall`).
/// A preempted hypercall ([`HypercallOutcome::Continue`]) leaves RIP on the
/// instruction with RAX and the argument registers rewritten: the guest runs it
/// again after this exit (events injected first, other vCPUs run in between).
fn hypercall(vcpu: &mut dyn Vcpu, env: &mut ExitEnv<'_>) -> ExitOutcome {
    let domid = env.state.domid;
    let vcpu_id = env.state.vcpu_id;
    let mode = vcpu.mode();
    let mut yielded = false;
    let (rax, args) = vcpu.hypercall_regs();
    let is_sched_op = rax as u32 == __HYPERVISOR_sched_op;
    let mut regs = HypercallRegs { rax, args };
    let outcome = if mode == CpuMode::Virtual8086 {
        HypercallOutcome::Done(xen_public_abi::Errno::EPERM.as_ret())
    } else if let Some(r) = check_cpl(vcpu.cpl()) {
        HypercallOutcome::Done(r)
    } else if mode != CpuMode::Long64 {
        // The 32-bit (compat) structure layouts are not implemented.
        crate::gprintk!(
            domid,
            log::Level::Debug,
            "d{domid}v{vcpu_id}: hypercall from 16/32-bit mode: -ENOSYS (no compat ABI)"
        );
        HypercallOutcome::Done(xen_public_abi::Errno::ENOSYS.as_ret())
    } else {
        let caller = Caller {
            domid,
            vcpu: vcpu_id,
        };
        let (nr, args) = (regs.rax, regs.args);
        yielded = nr as u32 == __HYPERVISOR_sched_op && args[0] as u32 == SCHEDOP_yield;
        hypercall_entry(env.hv, env.ext, caller, nr, args, env.guest)
    };
    let before = regs;
    if outcome.apply(&mut regs) {
        vcpu.advance_rip();
    } else {
        for (i, r) in HYPERCALL_ARG_REGS.into_iter().enumerate() {
            if regs.args[i] != before.args[i] {
                vcpu.set_reg(r, regs.args[i]);
            }
        }
    }
    vcpu.set_reg(Reg::Rax, regs.rax);
    // Only sched_op blocks, yields or shuts down the caller inside the call.
    // A shutdown or crash reached any other way (another CPU's domctl, a crash
    // action) is seen before the next entry (`prepare_entry`), so the other
    // hypercalls skip this lookup: the null hypercall's path is the CPUID exit's.
    if !is_sched_op {
        return ExitOutcome::Continue;
    }
    let Some(d) = env.hv.domains.get(domid) else {
        return ExitOutcome::Crashed;
    };
    if d.shutdown.is_shutting_down {
        return ExitOutcome::Shutdown {
            reason: d.shutdown.code,
        };
    }
    if d.vcpu(vcpu_id).is_some_and(|v| v.blocked) {
        return ExitOutcome::Block;
    }
    if yielded {
        return ExitOutcome::Yield;
    }
    ExitOutcome::Continue
}

/// CPUID: answered from the domain's CPU policy (`common::cpu_policy::cpuid`),
/// the one implementation both backends use. With CPUID faulting enabled
/// (`MSR_INTEL_MISC_FEATURES_ENABLES`), CPUID at CPL > 0 is #GP.
fn cpuid(vcpu: &mut dyn Vcpu, env: &mut ExitEnv<'_>) -> ExitOutcome {
    let leaf = vcpu.reg(Reg::Rax) as u32;
    let subleaf = vcpu.reg(Reg::Rcx) as u32;
    if env.state.msrs.cpuid_faulting() && vcpu.cpl() > 0 {
        return inject_gp(vcpu);
    }
    let Some(d) = env.hv.domains.get(env.state.domid) else {
        return ExitOutcome::Crashed;
    };
    let view = VcpuView {
        domid: env.state.domid,
        vcpu_id: env.state.vcpu_id,
        cr4: vcpu.paging_state().cr4,
        apic_enabled: env.state.lapic.apic_base & (1 << 11) != 0,
        evtchn_upcall: d.config.flags & XEN_DOMCTL_CDF_evtchn_upcall != 0,
        tsc_khz: (crate::arch::x86_64::time::tsc_hz() / 1000) as u32,
    };
    let r = guest_cpuid(&d.cpu_policy, &view, leaf, subleaf);
    vcpu.set_reg(Reg::Rax, r[0] as u64);
    vcpu.set_reg(Reg::Rbx, r[1] as u64);
    vcpu.set_reg(Reg::Rcx, r[2] as u64);
    vcpu.set_reg(Reg::Rdx, r[3] as u64);
    vcpu.advance_rip();
    ExitOutcome::Continue
}

/// MOV to CR4: the new value must stay within the policy's
/// `hvm_cr4_guest_valid_bits` and the architectural rules (`hvm_set_cr4`:
/// PAE cannot be cleared in long mode, PCIDE needs long mode and CR3\[11:0\] =
/// 0); otherwise #GP.
fn cr4_write(vcpu: &mut dyn Vcpu, env: &mut ExitEnv<'_>, value: Option<u64>) -> ExitOutcome {
    let domid = env.state.domid;
    let (value, len) = match value {
        Some(v) => (v, None),
        None => match decode_mov_to_cr4(vcpu, env) {
            Some((v, len)) => (v, Some(len)),
            None => {
                let rip = vcpu.reg(Reg::Rip);
                let why = format!("CR4 write at rip {rip:#x} that cannot be decoded");
                return crash_domain(env.hv, env.ext, domid, &why);
            }
        },
    };
    let Some(d) = env.hv.domains.get(domid) else {
        return ExitOutcome::Crashed;
    };
    let valid = d.cpu_policy.cr4_valid_bits();
    let ps = vcpu.paging_state();
    let long = ps.efer & PagingState::EFER_LMA != 0;
    let pcide = cr4::PCIDE;
    let bad = value & !valid != 0
        || (long && value & cr4::PAE == 0)
        || (value & pcide != 0 && ps.cr4 & pcide == 0 && (!long || ps.cr3 & 0xfff != 0));
    if bad {
        return inject_gp(vcpu);
    }
    vcpu.set_cr4(value);
    match len {
        Some(l) => {
            let rip = vcpu.reg(Reg::Rip);
            vcpu.set_reg(Reg::Rip, rip.wrapping_add(l));
        }
        None => vcpu.advance_rip(),
    }
    ExitOutcome::Continue
}

/// Decode `mov %reg, %cr4` at RIP ([`decode_mov_to_cr`]): the source value and
/// the instruction length.
fn decode_mov_to_cr4(vcpu: &mut dyn Vcpu, env: &mut ExitEnv<'_>) -> Option<(u64, u64)> {
    let rip = vcpu.reg(Reg::Rip);
    let mut b = [0u8; 15];
    // The instruction may end right before an unmapped page: then read only up
    // to the page's end.
    let n = if env.guest.copy_from_guest(rip, &mut b).is_ok() {
        b.len()
    } else {
        let n = (4096 - (rip & 0xfff) as usize).min(b.len());
        env.guest.copy_from_guest(rip, &mut b[..n]).ok()?;
        n
    };
    let long = vcpu.mode() == CpuMode::Long64;
    let m = decode_mov_to_cr(&b[..n], long)?;
    if m.cr != 4 {
        return None;
    }
    let mut v = vcpu.reg(Reg::gpr(m.gpr)?);
    if !long {
        v &= 0xffff_ffff;
    }
    Some((v, u64::from(m.len)))
}

fn inject_gp(vcpu: &mut dyn Vcpu) -> ExitOutcome {
    vcpu.inject(Event::Exception {
        vector: X86_EXC_GP,
        error_code: Some(0),
    });
    ExitOutcome::Continue
}

/// The vLAPIC's MSRs (`APIC_BASE`, the x2APIC range 0x800-0x8ff): the hook the
/// vLAPIC owns. `None`: not an APIC MSR; `Some(None)`: #GP.
fn apic_msr_read(st: &HvmVcpuState, msr: u32) -> Option<Option<u64>> {
    match msr {
        MSR_APIC_BASE => Some(Some(st.lapic.apic_base)),
        MSR_X2APIC_FIRST..=MSR_X2APIC_LAST => Some(st.lapic.read_msr(msr)),
        _ => None,
    }
}

/// The vLAPIC's MSR writes; `None`: not an APIC MSR, `Some(ok)`.
fn apic_msr_write(st: &mut HvmVcpuState, msr: u32, value: u64) -> Option<bool> {
    match msr {
        MSR_APIC_BASE => Some(st.lapic.write_apic_base(value)),
        MSR_X2APIC_FIRST..=MSR_X2APIC_LAST => Some(st.lapic.write_msr(msr, value)),
        _ => None,
    }
}

/// An MSR no handler knows: #GP, or read-as-zero with `XEN_X86_MSR_RELAXED`
/// (reads only). Counted per domain, logged once per MSR and direction.
fn unknown_msr(env: &mut ExitEnv<'_>, msr: u32, write: Option<u64>) -> Option<u64> {
    let (domid, vcpu_id) = (env.state.domid, env.state.vcpu_id);
    let d = env.hv.domains.get_mut(domid)?;
    let relaxed = d.config.misc_flags & XEN_X86_MSR_RELAXED != 0;
    let u = &mut d.unknown_msrs;
    if u.record(msr, write.is_some()) {
        match write {
            Some(v) => log::info!(
                "d{domid}v{vcpu_id}: wrmsr {msr:#x} <- {v:#x}: unknown MSR, #GP (logged once)"
            ),
            None => log::info!(
                "d{domid}v{vcpu_id}: rdmsr {msr:#x}: unknown MSR, {} (logged once)",
                if relaxed {
                    "reads as 0 (MSR_RELAXED)"
                } else {
                    "#GP"
                }
            ),
        }
    } else if u.limit_reached_now() {
        log::info!("d{domid}: further unknown MSRs are counted, not logged");
    }
    (relaxed && write.is_none()).then_some(0)
}

fn msr_read(vcpu: &mut dyn Vcpu, env: &mut ExitEnv<'_>) -> ExitOutcome {
    let msr = vcpu.reg(Reg::Rcx) as u32;
    let value = if let Some(v) = apic_msr_read(env.state, msr) {
        v
    } else if msr == MSR_XEN_HYPERCALL_PAGE {
        Some(0)
    } else if msr == msr::MSR_IA32_TSC {
        Some(crate::arch::x86_64::time::rdtsc())
    } else {
        let Some(d) = env.hv.domains.get(env.state.domid) else {
            return ExitOutcome::Crashed;
        };
        match msr::guest_rdmsr(&d.cpu_policy, &env.state.msrs, msr) {
            MsrAccess::Ok(v) => Some(v),
            MsrAccess::Gp => None,
            MsrAccess::Unhandled => match vcpu.msr(msr) {
                Some(v) => Some(v),
                None => unknown_msr(env, msr, None),
            },
        }
    };
    let Some(v) = value else {
        return inject_gp(vcpu);
    };
    vcpu.set_reg(Reg::Rax, v & 0xffff_ffff);
    vcpu.set_reg(Reg::Rdx, v >> 32);
    vcpu.advance_rip();
    ExitOutcome::Continue
}

fn msr_write(vcpu: &mut dyn Vcpu, env: &mut ExitEnv<'_>) -> ExitOutcome {
    let msr = vcpu.reg(Reg::Rcx) as u32;
    let value = (vcpu.reg(Reg::Rdx) << 32) | (vcpu.reg(Reg::Rax) & 0xffff_ffff);
    let ok = if let Some(ok) = apic_msr_write(env.state, msr, value) {
        ok
    } else if msr == MSR_XEN_HYPERCALL_PAGE {
        write_hypercall_page(vcpu, env, value)
    } else {
        let Some(d) = env.hv.domains.get(env.state.domid) else {
            return ExitOutcome::Crashed;
        };
        match msr::guest_wrmsr(&d.cpu_policy, &mut env.state.msrs, msr, value) {
            MsrAccess::Ok(()) => true,
            MsrAccess::Gp => false,
            MsrAccess::Unhandled if msr == MSR_EFER => {
                // `hvm_efer_valid` against the policy, then the backend.
                let pg = vcpu.paging_state().cr0 & PagingState::CR0_PG != 0;
                // (Rate-limited per domain: a guest could repeat this at will.)
                match d.cpu_policy.efer_invalid(value, pg) {
                    Some(why) => {
                        crate::gprintk!(
                            env.state.domid,
                            log::Level::Debug,
                            "d{}v{}: wrmsr EFER <- {value:#x}: {why}, #GP",
                            env.state.domid,
                            env.state.vcpu_id
                        );
                        false
                    }
                    None => vcpu.set_msr(msr, value).unwrap_or(false),
                }
            }
            MsrAccess::Unhandled => match vcpu.set_msr(msr, value) {
                Some(ok) => ok,
                None => {
                    unknown_msr(env, msr, Some(value));
                    false
                }
            },
        }
    };
    if !ok {
        return inject_gp(vcpu);
    }
    vcpu.advance_rip();
    ExitOutcome::Continue
}

/// The hypercall page, as `init_hypercall_page` fills it: 0xCC everywhere, then
/// per 32-byte slot `i`: `mov $i, %eax; <hypercall insn>; ret`; slot 23
/// (`__HYPERVISOR_iret`) is `ud2` for HVM guests.
pub fn hypercall_page(insn: [u8; 3]) -> [u8; 4096] {
    let mut page = [0xCCu8; 4096];
    for i in 0..128usize {
        let s = &mut page[i * 32..i * 32 + 32];
        if i == 23 {
            s[0] = 0x0f;
            s[1] = 0x0b;
            continue;
        }
        s[0] = 0xb8;
        s[1..5].copy_from_slice(&(i as u32).to_le_bytes());
        s[5..8].copy_from_slice(&insn);
        s[8] = 0xc3;
    }
    page
}

/// WRMSR of the hypercall-page MSR: page index (bits 11:0) 0, a RAM gfn of the
/// domain; anything else is #GP.
fn write_hypercall_page(vcpu: &mut dyn Vcpu, env: &mut ExitEnv<'_>, value: u64) -> bool {
    if value & 0xfff != 0 {
        return false;
    }
    let Some(d) = env.hv.domains.get(env.state.domid) else {
        return false;
    };
    let page = hypercall_page(vcpu.hypercall_insn());
    let mut ram = GuestRam {
        p2m: &d.hvm.p2m,
        machine: &*env.ext.machine,
    };
    let ok = ram.write_gpa(value, &page).is_ok();
    crate::gprintk!(
        env.state.domid,
        log::Level::Debug,
        "d{}v{}: hypercall page at {value:#x}: {}",
        env.state.domid,
        env.state.vcpu_id,
        if ok { "written" } else { "not RAM, #GP" }
    );
    ok
}

/// Port I/O: port 0xE9 and COM1 for dom0 (its console), reads of anything else
/// all-ones and writes dropped, as Xen does for unclaimed ports.
fn port_io(vcpu: &mut dyn Vcpu, env: &mut ExitEnv<'_>, io: IoAccess) -> ExitOutcome {
    let domid = env.state.domid;
    let is_dom0 = env.hv.domains.get(domid).is_some_and(|d| d.is_privileged);
    let console = is_dom0 && (io.port == PORT_E9 || io.port == *COM1.start());
    if io.string {
        if !(io.write && console && io.size == 1) {
            let why = format!("string port I/O on port {:#x} is not emulated", io.port);
            return crash_domain(env.hv, env.ext, domid, &why);
        }
        // OUTSB to the console: RCX bytes (or one) from RSI, flat DS, DF = 0.
        let long = vcpu.mode() == CpuMode::Long64;
        let mask = if long { u64::MAX } else { 0xffff_ffff };
        let count = if io.rep { vcpu.reg(Reg::Rcx) & mask } else { 1 };
        let src = vcpu.reg(Reg::Rsi) & mask;
        let n = count.min(4096) as usize;
        let mut buf = alloc::vec![0u8; n];
        if env.guest.copy_from_guest(src, &mut buf).is_err() {
            let why = format!("outsb from unreadable address {src:#x}");
            return crash_domain(env.hv, env.ext, domid, &why);
        }
        for b in buf {
            console_byte(env.state, b);
        }
        vcpu.set_reg(Reg::Rsi, src.wrapping_add(n as u64) & mask);
        if io.rep {
            vcpu.set_reg(Reg::Rcx, (count - n as u64) & mask);
            if count > n as u64 {
                // Continue the REP next time (RIP not advanced).
                return ExitOutcome::Continue;
            }
        }
        vcpu.advance_rip();
        return ExitOutcome::Continue;
    }
    let size_mask = match io.size {
        1 => 0xff,
        2 => 0xffff,
        _ => 0xffff_ffff,
    };
    if io.write {
        if console {
            console_byte(env.state, vcpu.reg(Reg::Rax) as u8);
        }
    } else {
        let v: u64 = if is_dom0 && io.port == 0x3FD {
            0x60 // COM1 LSR: transmitter empty
        } else if is_dom0 && COM1.contains(&io.port) {
            0
        } else {
            size_mask
        };
        let rax = vcpu.reg(Reg::Rax);
        vcpu.set_reg(Reg::Rax, (rax & !size_mask) | (v & size_mask));
    }
    vcpu.advance_rip();
    ExitOutcome::Continue
}

/// A byte of dom0's port console: lines are logged as `d<id>: <text>`.
fn console_byte(st: &mut HvmVcpuState, b: u8) {
    if b == b'\n' || st.port_line.len() >= 256 {
        let line = core::mem::take(&mut st.port_line);
        log::info!(
            "d{}: {}",
            st.domid,
            alloc::string::String::from_utf8_lossy(&line)
        );
        if b == b'\n' {
            return;
        }
    }
    if b != b'\r' {
        st.port_line.push(b);
    }
}

/// NPF / EPT violation: an altp2m access check first (#VE emulation, mem_access
/// relaxation), otherwise an access outside the domain's memory crashes it.
fn stage2_fault(
    vcpu: &mut dyn Vcpu,
    env: &mut ExitEnv<'_>,
    gpa: u64,
    gla: Option<u64>,
    access: Rights,
    present: bool,
) -> ExitOutcome {
    let domid = env.state.domid;
    let vcpu_id = env.state.vcpu_id;
    let Some(d) = env.hv.domains.get_mut(domid) else {
        return ExitOutcome::Crashed;
    };
    let prev_allowed = env.state.last_allowed_fault.take();
    let outcome = altp2m::check_access(&mut d.hvm, vcpu_id, gpa, gla, access);
    match outcome {
        AccessOutcome::Allowed => {
            // The tables are older than the p2m (rebuilt at the next entry) or a
            // stale translation: flush and retry. The same fault again right after
            // that is rights the stage-2 format cannot express (NPT has no write-
            // or execute-only pages: the encoder maps them not-present); say so
            // instead of faulting forever.
            if prev_allowed == Some(gpa) {
                let view = d.hvm.p2m.current_view(vcpu_id);
                let a = d.hvm.p2m.effective_entry(view, gpa >> 12).map(|e| e.access);
                let why = format!(
                    "gpa {gpa:#x} keeps faulting with access {a:?} in {view:?}, which this CPU's stage-2 tables cannot express"
                );
                return crash_domain(env.hv, env.ext, domid, &why);
            }
            env.state.last_allowed_fault = Some(gpa);
            vcpu.flush_guest_tlb();
            ExitOutcome::Continue
        }
        AccessOutcome::Retry => ExitOutcome::Continue,
        AccessOutcome::NotMapped => {
            let rip = vcpu.reg(Reg::Rip);
            let why = format!(
                "{} access to gpa {gpa:#x} outside its memory (rip {rip:#x}, {})",
                rights_str(access),
                if present { "present" } else { "not present" }
            );
            crash_domain(env.hv, env.ext, domid, &why)
        }
        AccessOutcome::VirtualizationException(ve) => {
            let mut ram = GuestRam {
                p2m: &d.hvm.p2m,
                machine: &*env.ext.machine,
            };
            if altp2m::deliver_ve(&mut ram, &ve) {
                crate::gprintk!(
                    domid,
                    log::Level::Debug,
                    "d{domid}v{vcpu_id}: #VE for gpa {gpa:#x} (view {})",
                    ve.eptp_index
                );
                vcpu.inject(Event::Exception {
                    vector: X86_EXC_VE,
                    error_code: None,
                });
                return ExitOutcome::Continue;
            }
            // #VE information area busy: an ordinary violation.
            relax(env, domid, vcpu_id, gpa, access, ve.eptp_index)
        }
        AccessOutcome::Report(ev) => relax(env, domid, vcpu_id, gpa, access, ev.altp2m_idx),
    }
}

/// A mem_access violation with no vm_event listener (there is no ring yet): log
/// it for dom0 and relax the entry to rwx, as Xen's `p2m_mem_access_check` does
/// when no listener requires access checks.
fn relax(
    env: &mut ExitEnv<'_>,
    domid: domid_t,
    vcpu_id: u32,
    gpa: u64,
    access: Rights,
    idx: u16,
) -> ExitOutcome {
    crate::gprintk!(
        domid,
        log::Level::Warn,
        "d{domid}v{vcpu_id}: mem_access violation: {} at gpa {gpa:#x} (altp2m view {idx}), no listener: access relaxed to rwx",
        rights_str(access)
    );
    if let Some(d) = env.hv.domains.get_mut(domid) {
        let view = d.hvm.p2m.current_view(vcpu_id);
        d.hvm.p2m.upgrade_access(view, gpa >> 12, P2mAccess::RWX);
    }
    ExitOutcome::Continue
}

fn rights_str(r: Rights) -> &'static str {
    match (r.read, r.write, r.exec) {
        (_, true, _) => "write",
        (_, _, true) => "execute",
        _ => "read",
    }
}
