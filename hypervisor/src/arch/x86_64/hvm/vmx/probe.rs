//! Probes for CPU behaviour the capability MSRs do not describe, run once at the
//! first per-CPU enable.
//!
//! The one probe today: does VM entry load the EPTP-index VMCS field that a
//! hardware #VE reports? The SDM says it does, and real CPUs do; Bochs 2.7 does not
//! (its #VE reports the index of the last VMFUNC on that CPU, so a view switched by
//! the hypervisor, e.g. `HVMOP_altp2m_switch_p2m`, would be misreported). Where the
//! field is not loaded, hardware #VE is declined and the vendor-neutral emulation
//! delivers #VE with the right view index; VMFUNC view switching stays in hardware.

use spin::Once;

use super::ept::{EptEncoder, EptFrames};
use super::vcpu::VmxVcpu;
use crate::arch::x86_64::hvm::vcpu::{InitialState, Vcpu, VmExit};
use crate::arch::x86_64::{frame, paging};
use crate::common::memory::{build_stage2, P2m, P2mAccess, ViewId};

static EPTP_INDEX_LOADED: Once<bool> = Once::new();

/// Whether hardware #VE reports the EPTP index the hypervisor set (probed once;
/// false also when the probe cannot run).
pub fn eptp_index_loaded() -> bool {
    *EPTP_INDEX_LOADED.call_once(|| match probe() {
        Ok(true) => {
            log::info!("vmx: #VE reports the EPTP index set by VM entry: hardware #VE in use");
            true
        }
        Ok(false) => {
            log::warn!(
                "vmx: this CPU does not load the EPTP-index field on VM entry (Bochs 2.7): #VE is emulated, VMFUNC stays in hardware"
            );
            false
        }
        Err(why) => {
            log::warn!("vmx: EPTP-index probe could not run ({why}): #VE is emulated");
            false
        }
    })
}

/// A guest whose view 2 (installed by the hypervisor, no VMFUNC) maps gfn 2
/// read-only with suppress-#VE clear writes gfn 2; the CPU writes the #VE
/// information area (gfn 1) before delivering the #VE (which then triple-faults:
/// the guest has no IDT). The index found there says whether the field was loaded.
fn probe() -> Result<bool, &'static str> {
    // mov dword ptr [0x2000], 1 ; hlt
    const CODE: [u8; 11] = [
        0xC7, 0x05, 0x00, 0x20, 0x00, 0x00, 0x01, 0x00, 0x00, 0x00, 0xF4,
    ];
    let mut frames = [0u64; 3];
    for f in frames.iter_mut() {
        *f = frame::alloc_zeroed().ok_or("out of frames")?;
    }
    // SAFETY: frames[0] is ours; CODE fits in it.
    unsafe {
        core::ptr::copy_nonoverlapping(CODE.as_ptr(), paging::phys_to_virt(frames[0]), CODE.len())
    };
    let result = (|| {
        let mut p2m = P2m::new(1);
        for (gfn, pa) in frames.iter().enumerate() {
            p2m.set_host_entry(gfn as u64, pa >> 12, P2mAccess::RWX)
                .map_err(|_| "p2m")?;
        }
        p2m.enable_altp2m();
        let default = xen_public_abi::memory::XENMEM_access_default;
        let _one = p2m.init_next_altp2m(default).map_err(|_| "view 1")?;
        let two = p2m.init_next_altp2m(default).map_err(|_| "view 2")?;
        p2m.set_mem_access_one(ViewId::Alt(two), 2, P2mAccess::R);
        p2m.set_suppress_ve_one(ViewId::Alt(two), 2, false)
            .map_err(|_| "suppress-#VE")?;
        let enc = EptEncoder::new();
        let mut tables = EptFrames::default();
        let built = (|| {
            let r0 = build_stage2(&p2m, ViewId::Alt(0), &enc, &mut tables).ok()?;
            let r2 = build_stage2(&p2m, ViewId::Alt(two), &enc, &mut tables).ok()?;
            Some((r0, r2))
        })();
        let out = match built {
            None => Err("EPT"),
            Some((r0, r2)) => {
                let mut vcpu = VmxVcpu::new().map_err(|_| "vCPU")?;
                vcpu.set_initial_state(&InitialState::pvh(0, 0));
                if !vcpu.set_views(&[Some(r0), None, Some(r2)], two, r2)
                    || !vcpu.enable_hw_ve(Some(frames[1]))
                {
                    Err("no VMFUNC/#VE")
                } else {
                    let mut exit = vcpu.run();
                    let mut spins = 0;
                    while exit == VmExit::ExtInterrupt && spins < 1000 {
                        exit = vcpu.run();
                        spins += 1;
                    }
                    // SAFETY: frames[1] is ours; the #VE area is 40 bytes.
                    let (reason, index) = unsafe {
                        let info = paging::phys_to_virt(frames[1]);
                        (
                            (info as *const u32).read_volatile(),
                            (info.add(32) as *const u16).read_volatile(),
                        )
                    };
                    log::debug!(
                        "vmx: EPTP-index probe: {exit:?}, #VE reason {reason} index {index}"
                    );
                    if reason != 48 {
                        Err("no #VE was delivered")
                    } else {
                        Ok(index == two)
                    }
                }
            }
        };
        tables.free_all();
        out
    })();
    for f in frames {
        frame::free_contiguous(f, 1);
    }
    result
}
