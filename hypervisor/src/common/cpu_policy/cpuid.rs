//! `guest_cpuid` (xen/arch/x86/cpuid.c) and `cpuid_hypervisor_leaves`
//! (xen/arch/x86/traps.c): the answer to a guest's CPUID, from its domain's
//! policy plus the few per-vCPU values (APIC id, OSXSAVE/OSPKE from CR4, the APIC
//! enable bit). This is the only CPUID implementation; both backends' CPUID exits
//! come here.

use xen_public_abi::arch_x86::cpuid::*;

use super::{feature as f, CpuPolicy, Leaf};
use crate::common::xen_version::{XEN_MAJOR, XEN_MINOR};

/// The hypercall-page MSR (`CPUID(0x40000002).EBX`).
pub const MSR_XEN_HYPERCALL_PAGE: u32 = 0x4000_0000;

/// The per-vCPU and per-domain values CPUID reflects besides the policy.
#[derive(Clone, Copy, Debug, Default)]
pub struct VcpuView {
    pub domid: u16,
    pub vcpu_id: u32,
    /// The guest's CR4 (OSXSAVE and OSPKE mirror CR4.OSXSAVE / CR4.PKE).
    pub cr4: u64,
    /// `MSR_APIC_BASE.EN`: CPUID.1.EDX.APIC follows it.
    pub apic_enabled: bool,
    /// `XEN_DOMCTL_CDF_evtchn_upcall`: leaf 0x40000004 says so.
    pub evtchn_upcall: bool,
    /// The guest TSC frequency in kHz (leaf 0x40000003).
    pub tsc_khz: u32,
}

/// CPUID(`leaf`, `subleaf`) as the guest sees it.
pub fn guest_cpuid(p: &CpuPolicy, v: &VcpuView, leaf: u32, subleaf: u32) -> Leaf {
    match leaf {
        0x4000_0000..=0x4000_00ff => return xen_leaf(p, v, leaf, subleaf),
        // No Viridian or other hypervisor leaves.
        0x4000_0100..=0x4000_ffff => return [0; 4],
        _ => {}
    }
    let c = &p.cpuid;
    let mut r = c.leaf(leaf, subleaf);
    match leaf {
        1 if leaf <= c.max_leaf() => {
            r[1] = (r[1] & 0x00ff_ffff) | (v.vcpu_id.min(255) << 24);
            apply_dynamic_bit(
                &mut r[2],
                27,
                c.has(f::XSAVE) && v.cr4 & super::cr4::OSXSAVE != 0,
            );
            if !v.apic_enabled {
                r[3] &= !(1 << 9);
            }
        }
        7 if subleaf == 0 && leaf <= c.max_leaf() => {
            apply_dynamic_bit(&mut r[2], 4, c.has(f::PKU) && v.cr4 & super::cr4::PKE != 0);
        }
        0xb if leaf <= c.max_leaf() => {
            if subleaf as usize >= super::NR_TOPO {
                r = [0, 0, subleaf & 0xff, 0];
            }
            r[3] = v.vcpu_id;
        }
        0x8000_0001 if leaf <= c.extd_max_leaf() && !v.apic_enabled => {
            r[3] &= !(1 << 9);
        }
        _ => {}
    }
    r
}

fn apply_dynamic_bit(reg: &mut u32, bit: u32, on: bool) {
    if on {
        *reg |= 1 << bit;
    } else {
        *reg &= !(1 << bit);
    }
}

/// `cpuid_hypervisor_leaves`: the Xen leaves at 0x40000000, up to the policy's
/// `hv_limit` (0: all of them; otherwise clamped to 2..=MAX).
fn xen_leaf(p: &CpuPolicy, v: &VcpuView, leaf: u32, subleaf: u32) -> Leaf {
    let idx = leaf - XEN_CPUID_FIRST_LEAF;
    let limit = match p.cpuid.hv_limit {
        0 => XEN_CPUID_MAX_NUM_LEAVES,
        l => l.clamp(2, XEN_CPUID_MAX_NUM_LEAVES),
    };
    if idx > limit {
        return [0; 4];
    }
    match idx {
        0 => [
            XEN_CPUID_FIRST_LEAF + limit,
            XEN_CPUID_SIGNATURE_EBX,
            XEN_CPUID_SIGNATURE_ECX,
            XEN_CPUID_SIGNATURE_EDX,
        ],
        1 => [(XEN_MAJOR << 16) | XEN_MINOR, 0, 0, 0],
        // One hypercall page, MSR base; no PV feature bits for HVM.
        2 => [1, MSR_XEN_HYPERCALL_PAGE, 0, 0],
        3 => match subleaf {
            // vtsc flags 0, TSC_MODE_DEFAULT, guest TSC kHz, incarnation 0.
            0 => [0, 0, v.tsc_khz, 0],
            // Host kHz (`cpu_khz`) in ECX.
            2 => [0, 0, v.tsc_khz, 0],
            _ => [0; 4],
        },
        4 if subleaf == 0 => {
            let mut eax = XEN_HVM_CPUID_VCPU_ID_PRESENT | XEN_HVM_CPUID_DOMID_PRESENT;
            if v.evtchn_upcall {
                eax |= XEN_HVM_CPUID_UPCALL_VECTOR;
            }
            [eax, v.vcpu_id, u32::from(v.domid), 0]
        }
        _ => [0; 4],
    }
}
