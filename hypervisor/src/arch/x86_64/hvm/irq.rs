//! Interrupt delivery to HVM vCPUs: the event-channel upcall and the minimal
//! local APIC the guests need.
//!
//! Two upcall routes, as Xen's `hvm_assert_evtchn_irq` (xen/arch/x86/hvm/irq.c):
//! - the per-vCPU vector (`HVMOP_set_evtchn_upcall_vector`, only with
//!   `XEN_DOMCTL_CDF_evtchn_upcall`): latched edge-style into the vLAPIC IRR when an
//!   upcall is raised; the guest EOIs it;
//! - the domain-wide `HVM_PARAM_CALLBACK_IRQ` vector (type 2): offered at every
//!   entry while `vcpu_info.evtchn_upcall_pending` is set (level-like,
//!   `hvm_vcpu_has_pending_irq`), no ISR bit, no EOI.
//!
//! When the guest cannot take an interrupt, an interrupt window is requested.
//! The vLAPIC is x2APIC-mode only (MSR interface, Xen's `vlapic.c` subset): ID,
//! version, TPR, EOI, SVR, ISR/IRR/TMR reads, LVT/timer registers stored but the
//! timer not run (issue 7: "timer can come later"). xAPIC MMIO is not emulated.

use xen_public_abi::hvm::params::HVM_PARAM_CALLBACK_TYPE_VECTOR;

use super::vcpu::{Event, Vcpu};
use crate::common::dispatch::XenExt;
use crate::common::domain::DomainTable;
use crate::common::guest_access::GuestRam;

/// `IA32_APIC_BASE`.
pub const MSR_APIC_BASE: u32 = 0x1B;
/// The x2APIC MSR range.
pub const MSR_X2APIC_FIRST: u32 = 0x800;
pub const MSR_X2APIC_LAST: u32 = 0x8FF;
const APIC_DEFAULT_BASE: u64 = 0xFEE0_0000;
const APIC_BASE_BSP: u64 = 1 << 8;
const APIC_BASE_EXTD: u64 = 1 << 10;
const APIC_BASE_EN: u64 = 1 << 11;

/// A minimal local APIC in x2APIC mode.
#[derive(Clone, Debug)]
pub struct VLapic {
    pub apic_base: u64,
    id: u32,
    irr: [u64; 4],
    isr: [u64; 4],
    /// Other registers, by x2APIC MSR index (0x800 + i), stored as written.
    regs: [u32; 64],
}

fn set_bit(map: &mut [u64; 4], v: u8) {
    map[(v / 64) as usize] |= 1 << (v % 64);
}

fn clear_bit(map: &mut [u64; 4], v: u8) {
    map[(v / 64) as usize] &= !(1 << (v % 64));
}

fn highest(map: &[u64; 4]) -> Option<u8> {
    (0..4)
        .rev()
        .find(|&i| map[i] != 0)
        .map(|i| (i * 64 + 63 - map[i].leading_zeros() as usize) as u8)
}

impl VLapic {
    pub fn new(vcpu_id: u32) -> VLapic {
        let mut regs = [0u32; 64];
        regs[0x0F] = 0xFF; // SVR: vector 0xFF, software-disabled
        for lvt in &mut regs[0x32..=0x37] {
            *lvt = 1 << 16; // masked
        }
        VLapic {
            apic_base: APIC_DEFAULT_BASE
                | APIC_BASE_EN
                | APIC_BASE_EXTD
                | if vcpu_id == 0 { APIC_BASE_BSP } else { 0 },
            id: vcpu_id,
            irr: [0; 4],
            isr: [0; 4],
            regs,
        }
    }

    /// Latch `vector` (edge) into the IRR.
    pub fn set_irr(&mut self, vector: u8) {
        set_bit(&mut self.irr, vector);
    }

    /// The vector to deliver: highest IRR above the highest ISR and the TPR class.
    pub fn pending(&self) -> Option<u8> {
        let v = highest(&self.irr)?;
        let isr = highest(&self.isr).map_or(0, |i| i >> 4);
        let tpr = (self.regs[0x08] >> 4) as u8 & 0xf;
        (v >> 4 > isr.max(tpr)).then_some(v)
    }

    /// The vector was injected: IRR → ISR.
    pub fn accept(&mut self, vector: u8) {
        clear_bit(&mut self.irr, vector);
        set_bit(&mut self.isr, vector);
    }

    /// EOI: clear the highest in-service vector.
    pub fn eoi(&mut self) {
        if let Some(v) = highest(&self.isr) {
            clear_bit(&mut self.isr, v);
        }
    }

    /// RDMSR of an x2APIC register: `None` → #GP.
    pub fn read_msr(&self, msr: u32) -> Option<u64> {
        if self.apic_base & APIC_BASE_EXTD == 0 {
            return None;
        }
        let i = msr.checked_sub(MSR_X2APIC_FIRST)? as usize;
        Some(match i {
            0x02 => self.id as u64,
            0x03 => 0x0005_0014, // version 0x14, 6 LVT entries
            0x0B => return None, // EOI is write-only
            0x0D => (((self.id >> 4) << 16) | (1 << (self.id & 0xf))) as u64,
            0x10..=0x17 => (self.isr[(i - 0x10) / 2] >> (32 * ((i - 0x10) % 2))) as u32 as u64,
            0x18..=0x1F => 0,
            0x20..=0x27 => (self.irr[(i - 0x20) / 2] >> (32 * ((i - 0x20) % 2))) as u32 as u64,
            0x39 => 0, // current count: the timer does not run
            0x08 | 0x0F | 0x28 | 0x2F | 0x30 | 0x32..=0x38 | 0x3E => self.regs[i] as u64,
            _ => return None,
        })
    }

    /// WRMSR of an x2APIC register: false → #GP.
    pub fn write_msr(&mut self, msr: u32, value: u64) -> bool {
        if self.apic_base & APIC_BASE_EXTD == 0 {
            return false;
        }
        let Some(i) = msr.checked_sub(MSR_X2APIC_FIRST).map(|i| i as usize) else {
            return false;
        };
        match i {
            0x0B => self.eoi(),
            // ICR: no IPIs between vCPUs yet; ignored (the exit handler logs it,
            // rate-limited per domain).
            0x30 => {}
            0x3F => {
                // SELF IPI.
                self.set_irr(value as u8);
            }
            0x08 | 0x0F | 0x28 | 0x2F | 0x32..=0x38 | 0x3E => self.regs[i] = value as u32,
            _ => return false,
        }
        true
    }

    /// WRMSR `IA32_APIC_BASE`: EN/EXTD may change, the base stays where it is.
    pub fn write_apic_base(&mut self, value: u64) -> bool {
        let keep = APIC_DEFAULT_BASE | APIC_BASE_BSP;
        if value & !(APIC_BASE_EN | APIC_BASE_EXTD | keep) != 0 {
            return false;
        }
        self.apic_base = (self.apic_base & keep) | (value & (APIC_BASE_EN | APIC_BASE_EXTD));
        true
    }
}

/// What is waiting for a vCPU.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Source {
    /// The domain's callback-via vector (level-like, no ISR).
    Callback(u8),
    /// A vLAPIC vector.
    Lapic(u8),
}

/// Take a raised upcall into the vLAPIC and say what should be delivered now.
fn pending_source(
    domains: &mut DomainTable,
    ext: &XenExt,
    domid: u16,
    vcpu_id: u32,
    lapic: &mut VLapic,
) -> Option<Source> {
    let d = domains.get_mut(domid)?;
    let vector = d
        .hvm
        .vcpus
        .get(vcpu_id as usize)
        .map_or(0, |v| v.evtchn_upcall_vector);
    // Consumed on every route: the per-vCPU vector latches it into the IRR; the
    // callback-via vector is level-triggered by `evtchn_upcall_pending` itself
    // (left set, `local_events_need_delivery` would never let the vCPU block).
    let raised = d
        .vcpu_mut(vcpu_id)
        .is_some_and(|v| core::mem::take(&mut v.upcall_raised));
    if vector != 0 {
        if raised {
            lapic.set_irr(vector);
        }
    } else {
        let (ty, val) = d.hvm.callback_via();
        if ty == HVM_PARAM_CALLBACK_TYPE_VECTOR && val != 0 {
            let ram = GuestRam {
                p2m: &d.hvm.p2m,
                machine: &*ext.machine,
            };
            let pending = d
                .evtchn
                .shared_info()
                .upcall_pending(&ram, vcpu_id)
                .unwrap_or(false);
            if pending {
                return Some(Source::Callback(val as u8));
            }
        }
    }
    lapic.pending().map(Source::Lapic)
}

/// Whether anything is waiting for the vCPU (HLT wakes on it).
pub fn has_pending(
    domains: &mut DomainTable,
    ext: &XenExt,
    domid: u16,
    vcpu_id: u32,
    lapic: &mut VLapic,
) -> bool {
    pending_source(domains, ext, domid, vcpu_id, lapic).is_some()
}

/// Before entry: inject the upcall / vLAPIC vector if the guest can take it now,
/// otherwise ask for an interrupt window.
pub fn deliver(
    vcpu: &mut dyn Vcpu,
    domains: &mut DomainTable,
    ext: &XenExt,
    domid: u16,
    vcpu_id: u32,
    lapic: &mut VLapic,
) {
    let Some(src) = pending_source(domains, ext, domid, vcpu_id, lapic) else {
        vcpu.request_interrupt_window(false);
        return;
    };
    if !vcpu.interruptible() {
        vcpu.request_interrupt_window(true);
        return;
    }
    let vector = match src {
        Source::Callback(v) | Source::Lapic(v) => v,
    };
    if vcpu.inject(Event::Interrupt { vector }) {
        if let Source::Lapic(v) = src {
            lapic.accept(v);
        }
        if let Some(v) = domains.get_mut(domid).and_then(|d| d.vcpu_mut(vcpu_id)) {
            v.perfc.note_injection();
        }
        vcpu.request_interrupt_window(false);
    } else {
        vcpu.request_interrupt_window(true);
    }
}
