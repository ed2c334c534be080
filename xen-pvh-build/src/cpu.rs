//! The vCPU state a PVH domain starts in (`docs/misc/pvh.pandoc`), as the HVM
//! save CPU record libxenguest's `vcpu_hvm()` hands `XEN_DOMCTL_sethvmcontext`:
//! 32-bit protected mode with paging off, flat code and data segments, a busy
//! TSS, EIP at the entry point and EBX at `hvm_start_info`. One definition for
//! the dom0 builder and the hypervisor's tests of the record checks.

use xen_public_abi::hvm::save::hvm_hw_cpu;
use zerocopy::FromZeros;

/// CR0.PE and CR0.ET: protected mode, paging off.
const CR0_PE_ET: u64 = 1 | 1 << 4;
/// Flat 32-bit code, execute/read, accessed (the record's attribute encoding).
const CODE_AR: u32 = 0xc9b;
/// Flat 32-bit data, read/write, accessed.
const DATA_AR: u32 = 0xc93;
/// A busy 32-bit TSS.
const TSS_AR: u32 = 0x8b;

/// The CPU record for a PVH start at `entry` with `hvm_start_info` at
/// `start_info` (both physical, below 4 GiB).
pub fn pvh_cpu_record(entry: u32, start_info: u32) -> hvm_hw_cpu {
    let mut c = hvm_hw_cpu::new_zeroed();
    c.rip = u64::from(entry);
    c.rbx = u64::from(start_info);
    c.rflags = 2;
    c.cr0 = CR0_PE_ET;
    c.cs_limit = !0;
    c.cs_arbytes = CODE_AR;
    for (limit, ar) in [
        (&mut c.ds_limit, &mut c.ds_arbytes),
        (&mut c.es_limit, &mut c.es_arbytes),
        (&mut c.ss_limit, &mut c.ss_arbytes),
        (&mut c.fs_limit, &mut c.fs_arbytes),
        (&mut c.gs_limit, &mut c.gs_arbytes),
    ] {
        *limit = !0;
        *ar = DATA_AR;
    }
    c.tr_limit = 0x67;
    c.tr_arbytes = TSS_AR;
    c.dr6 = 0xffff_0ff0;
    c.dr7 = 0x400;
    c
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn starts_in_flat_protected_mode_at_the_entry() {
        let c = pvh_cpu_record(0x10_0000, 0x6000);
        assert_eq!((c.rip, c.rbx, c.rflags), (0x10_0000, 0x6000, 2));
        assert_eq!(c.cr0 & 1, 1, "protected mode");
        assert_eq!(c.cr0 & (1 << 31), 0, "paging off");
        assert_eq!(
            (c.cs_arbytes, c.ss_arbytes, c.tr_arbytes),
            (0xc9b, 0xc93, 0x8b)
        );
        assert_eq!((c.cs_limit, c.ds_limit, c.tr_limit), (!0, !0, 0x67));
    }
}
