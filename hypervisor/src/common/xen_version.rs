//! `__HYPERVISOR_xen_version`: version, build strings and the feature bits a guest
//! sees.
//!
//! Mirrors Xen 4.17's `do_xen_version()` (`xen/common/kernel.c`), the x86
//! `arch_get_xen_caps()` (`xen/arch/x86/setup.c`) and the dummy XSM policy's
//! `xsm_xen_version()`: version, platform parameters and features are open to
//! everyone; extraversion, compile info, capabilities, changeset, page size and
//! guest handle to every guest by default; anything else is "denied" for
//! non-privileged domains (the strings read `<denied>`, build id is `-EPERM`).

// Xen's names (`XEN_DOMCTL_createdomain`, `__HYPERVISOR_domctl`, ...) in match patterns.
#![allow(non_upper_case_globals)]

use alloc::string::String;

use xen_public_abi::features::{
    XENFEAT_auto_translated_physmap, XENFEAT_direct_mapped, XENFEAT_dom0,
    XENFEAT_gnttab_map_avail_bits, XENFEAT_highmem_assist, XENFEAT_hvm_callback_vector,
    XENFEAT_hvm_pirqs, XENFEAT_hvm_safe_pvclock, XENFEAT_memory_op_vnode_supported,
    XENFEAT_mmu_pt_update_preserve_ad, XENFEAT_not_direct_mapped, XENFEAT_writable_page_tables,
};
use xen_public_abi::version::{
    xen_feature_info, xen_platform_parameters, XENVER_build_id, XENVER_capabilities,
    XENVER_changeset, XENVER_commandline, XENVER_compile_info, XENVER_extraversion,
    XENVER_get_features, XENVER_guest_handle, XENVER_pagesize, XENVER_platform_parameters,
    XENVER_version,
};
use xen_public_abi::{Errno, XenResult};

use super::domain::{Domain, HostCaps};
use super::guest_access::{copy_from_guest, copy_to_guest, GuestAccess};
use super::hypercall::{Caller, Hypervisor};

/// The Xen version this hypervisor reports: 4.17.
pub const XEN_MAJOR: u32 = 4;
pub const XEN_MINOR: u32 = 17;
/// `XENVER_extraversion`: ".0" plus a marker that this is not Xen's own build.
pub const XEN_EXTRAVERSION: &str = ".0-rs";
/// `xen_deny()`: what denied string queries read.
pub const XEN_DENY: &str = "<denied>";
/// `HYPERVISOR_VIRT_START` on x86-64 (`XENVER_platform_parameters`).
pub const HYPERVISOR_VIRT_START: u64 = 0xFFFF_8000_0000_0000;
pub const PAGE_SIZE: i64 = 4096;

const XEN_EXTRAVERSION_LEN: usize = 16;
const XEN_COMPILE_INFO_LEN: usize = 64 + 16 + 32 + 32;
const XEN_CAPABILITIES_LEN: usize = 1024;
const XEN_CHANGESET_LEN: usize = 64;
const XEN_COMMANDLINE_LEN: usize = 1024;

/// `XENVER_get_features` submap 0 for domain `d`, as 4.17 computes it.
///
/// An HVM/PVH domU gets writable_page_tables, auto_translated_physmap,
/// hvm_callback_vector, hvm_safe_pvclock, memory_op_vnode_supported and
/// not_direct_mapped (0x12305), plus hvm_pirqs with `XEN_X86_EMU_USE_PIRQ`;
/// domain 0 also gets XENFEAT_dom0 (0x12b05 for a PVH dom0).
pub fn features_submap0(d: &Domain) -> u32 {
    let mut map = 1 << XENFEAT_memory_op_vnode_supported;
    // VM_ASSIST(pae_extended_cr3) is a PV assist no domain here has enabled.
    let translated = d.is_hvm();
    if translated {
        map |= (1 << XENFEAT_writable_page_tables) | (1 << XENFEAT_auto_translated_physmap);
    }
    if d.is_hardware {
        map |= 1 << XENFEAT_dom0;
    }
    if d.is_hvm() {
        map |= (1 << XENFEAT_hvm_safe_pvclock) | (1 << XENFEAT_hvm_callback_vector);
        if d.has_pirq() {
            map |= 1 << XENFEAT_hvm_pirqs;
        }
    } else {
        map |= (1 << XENFEAT_mmu_pt_update_preserve_ad)
            | (1 << XENFEAT_highmem_assist)
            | (1 << XENFEAT_gnttab_map_avail_bits);
    }
    if translated {
        map |= 1 << XENFEAT_not_direct_mapped;
    } else {
        map |= 1 << XENFEAT_direct_mapped;
    }
    map
}

/// `arch_get_xen_caps()`: the ABIs guests may use ("xen-3.0-x86_64" for 64-bit PV,
/// "hvm-3.0-*" for HVM), space-separated with a trailing space.
pub fn capabilities(caps: &HostCaps) -> String {
    let mut s = String::new();
    if caps.pv {
        s.push_str("xen-3.0-x86_64 ");
    }
    if caps.hvm {
        s.push_str("hvm-3.0-x86_32 hvm-3.0-x86_32p hvm-3.0-x86_64 ");
    }
    s
}

/// A fixed-size, NUL-padded char array holding `s` (truncated to leave a NUL),
/// as Xen's `safe_strcpy` into a zeroed buffer.
fn c_string<const N: usize>(s: &str) -> [u8; N] {
    let mut out = [0u8; N];
    let n = s.len().min(N - 1);
    out[..n].copy_from_slice(&s.as_bytes()[..n]);
    out
}

/// `__HYPERVISOR_xen_version(int cmd, void *arg)`.
pub fn do_xen_version(
    hv: &mut Hypervisor,
    caller: Caller,
    cmd: i32,
    arg: u64,
    guest: &mut dyn GuestAccess,
) -> i64 {
    match xen_version(hv, caller, cmd, arg, guest) {
        Ok(v) => v,
        Err(e) => e.as_ret(),
    }
}

fn xen_version(
    hv: &mut Hypervisor,
    caller: Caller,
    cmd: i32,
    arg: u64,
    guest: &mut dyn GuestAccess,
) -> XenResult<i64> {
    let Ok(cmd) = u32::try_from(cmd) else {
        return Err(Errno::ENOSYS);
    };
    // The null hypercall the bench times: it needs nothing of the caller's
    // domain (the dispatcher already checked that it exists), so it is
    // answered before the domain lookup.
    if cmd == XENVER_version {
        return Ok(i64::from((XEN_MAJOR << 16) | XEN_MINOR));
    }
    let d = hv.domains.get(caller.domid).ok_or(Errno::ESRCH)?;
    // xsm_xen_version(): the "default" group is denied to non-privileged domains.
    let deny = match cmd {
        XENVER_version
        | XENVER_platform_parameters
        | XENVER_get_features
        | XENVER_extraversion
        | XENVER_compile_info
        | XENVER_capabilities
        | XENVER_changeset
        | XENVER_pagesize
        | XENVER_guest_handle => false,
        _ => !d.is_privileged,
    };
    match cmd {
        XENVER_version => Ok(i64::from((XEN_MAJOR << 16) | XEN_MINOR)),
        XENVER_extraversion => {
            let s: [u8; XEN_EXTRAVERSION_LEN] = c_string(XEN_EXTRAVERSION);
            guest.copy_to_guest(arg, &s)?;
            Ok(0)
        }
        XENVER_compile_info => {
            // compiler[64], compile_by[16], compile_domain[32], compile_date[32].
            let mut info = [0u8; XEN_COMPILE_INFO_LEN];
            info[..64].copy_from_slice(&c_string::<64>("rustc"));
            info[64..80].copy_from_slice(&c_string::<16>("xen-rs"));
            info[80..112].copy_from_slice(&c_string::<32>(""));
            info[112..144].copy_from_slice(&c_string::<32>(""));
            guest.copy_to_guest(arg, &info)?;
            Ok(0)
        }
        XENVER_capabilities => {
            let s: [u8; XEN_CAPABILITIES_LEN] = c_string(&capabilities(hv.domains.caps()));
            guest.copy_to_guest(arg, &s)?;
            Ok(0)
        }
        XENVER_changeset => {
            let s: [u8; XEN_CHANGESET_LEN] = c_string("unavailable");
            guest.copy_to_guest(arg, &s)?;
            Ok(0)
        }
        XENVER_platform_parameters => {
            let p = xen_platform_parameters {
                virt_start: HYPERVISOR_VIRT_START,
            };
            copy_to_guest(guest, arg, &p)?;
            Ok(0)
        }
        XENVER_get_features => {
            let mut fi: xen_feature_info = copy_from_guest(guest, arg)?;
            if fi.submap_idx != 0 {
                return Err(Errno::EINVAL);
            }
            fi.submap = features_submap0(d);
            copy_to_guest(guest, arg, &fi)?;
            Ok(0)
        }
        // A non-NULL argument is -EINVAL (the call takes none).
        XENVER_pagesize => {
            if arg != 0 {
                Err(Errno::EINVAL)
            } else {
                Ok(PAGE_SIZE)
            }
        }
        XENVER_guest_handle => {
            let handle = d.config.handle;
            guest.copy_to_guest(arg, &handle)?;
            Ok(0)
        }
        XENVER_commandline => {
            // No hypervisor command line is kept here: an empty string.
            if deny {
                let s: [u8; 9] = c_string(XEN_DENY);
                guest.copy_to_guest(arg, &s)?;
            } else {
                guest.copy_to_guest(arg, &[0u8; XEN_COMMANDLINE_LEN])?;
            }
            Ok(0)
        }
        XENVER_build_id => {
            if deny {
                return Err(Errno::EPERM);
            }
            // xen_build_id_t starts with `uint32_t len`; 0 is refused.
            if arg != 0 && copy_from_guest::<u32>(guest, arg)? == 0 {
                return Err(Errno::EINVAL);
            }
            // Xen answers -ENODATA when the image carries no build id, as here.
            Err(Errno::ENODATA)
        }
        _ => Err(Errno::ENOSYS),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::common::test_support::*;
    use xen_public_abi::arch_x86::{XEN_X86_EMU_LAPIC, XEN_X86_EMU_USE_PIRQ};
    use xen_public_abi::xen::__HYPERVISOR_xen_version as XV;

    fn call(env: &mut Env, dom: u16, cmd: u32, arg: u64) -> i64 {
        env.hypercall(dom, XV, [u64::from(cmd), arg, 0, 0, 0])
    }

    /// RAX and (submap_idx, submap) as the guest sees them afterwards.
    fn features(env: &mut Env, dom: u16, idx: u32) -> (i64, (u32, u32)) {
        env.put(
            ARG_GVA,
            &xen_feature_info {
                submap_idx: idx,
                submap: 0xdead,
            },
        );
        let rc = call(env, dom, XENVER_get_features, ARG_GVA);
        let fi: xen_feature_info = env.get(ARG_GVA);
        (rc, (fi.submap_idx, fi.submap))
    }

    fn string(env: &Env, len: usize) -> String {
        let mut b = alloc::vec![0u8; len];
        use crate::common::guest_access::GuestMemory;
        env.mem.read_gpa(ARG_GVA, &mut b).unwrap();
        let end = b.iter().position(|&c| c == 0).expect("NUL-terminated");
        String::from_utf8(b[..end].to_vec()).unwrap()
    }

    /// Oracle E: version 4.17, dom0's submap 0x12b05, submap 1/100 -EINVAL (left
    /// unwritten), unknown command -ENOSYS.
    #[test]
    fn oracle_rows() {
        let mut env = Env::new();
        assert_eq!(call(&mut env, 0, XENVER_version, 0), 0x40011);
        assert_eq!(features(&mut env, 0, 0), (0, (0, 0x12b05)));
        for idx in [1, 100] {
            assert_eq!(features(&mut env, 0, idx), (-22, (idx, 0xdead)));
        }
        assert_eq!(call(&mut env, 0, 99, 0), -38);
        assert_eq!(call(&mut env, 0, 11, 0), -38);
        assert_eq!(
            env.hypercall(0, XV, [u64::from(u32::MAX), 0, 0, 0, 0]),
            -38,
            "cmd -1"
        );
    }

    /// An HVM/PVH domU: dom0's bits minus XENFEAT_dom0; PIRQ emulation adds
    /// hvm_pirqs; a PV domain gets the PV set.
    #[test]
    fn domu_features() {
        let mut env = Env::new();
        let (_, pvh) = env.create(&baseline(), 0);
        assert_eq!(features(&mut env, pvh, 0).1 .1, 0x12305);
        let mut hvm = baseline();
        hvm.arch.emulation_flags = 0x3ff;
        let (_, h) = env.create(&hvm, 0);
        assert_eq!(features(&mut env, h, 0).1 .1, 0x12305 | 1 << 10);
        assert_eq!(0x3ff & XEN_X86_EMU_USE_PIRQ, XEN_X86_EMU_USE_PIRQ);
        let mut pv = baseline();
        pv.flags = 0;
        pv.arch.emulation_flags = 0;
        let (_, p) = env.create(&pv, 0);
        // memory_op_vnode, mmu_pt_update_preserve_ad, highmem_assist,
        // gnttab_map_avail_bits, direct_mapped.
        assert_eq!(
            features(&mut env, p, 0).1 .1,
            (1 << 13) | (1 << 5) | (1 << 6) | (1 << 7) | (1 << 17)
        );
        let _ = XEN_X86_EMU_LAPIC;
    }

    #[test]
    fn strings_and_pagesize() {
        let mut env = Env::new();
        let (_, u) = env.create(&baseline(), 0);
        assert_eq!(call(&mut env, u, XENVER_extraversion, ARG_GVA), 0);
        assert_eq!(string(&env, 16), XEN_EXTRAVERSION);
        assert_eq!(call(&mut env, u, XENVER_capabilities, ARG_GVA), 0);
        assert_eq!(
            string(&env, 1024),
            "xen-3.0-x86_64 hvm-3.0-x86_32 hvm-3.0-x86_32p hvm-3.0-x86_64 "
        );
        assert_eq!(call(&mut env, u, XENVER_changeset, ARG_GVA), 0);
        assert_eq!(string(&env, 64), "unavailable");
        assert_eq!(call(&mut env, u, XENVER_compile_info, ARG_GVA), 0);
        assert_eq!(string(&env, 64), "rustc");
        assert_eq!(call(&mut env, u, XENVER_pagesize, 0), 4096);
        assert_eq!(call(&mut env, u, XENVER_pagesize, ARG_GVA), -22);
        assert_eq!(call(&mut env, u, XENVER_platform_parameters, ARG_GVA), 0);
        assert_eq!(env.get::<u64>(ARG_GVA), HYPERVISOR_VIRT_START);
        // Denied to a domU: the command line reads "<denied>", build id -EPERM.
        assert_eq!(call(&mut env, u, XENVER_commandline, ARG_GVA), 0);
        assert_eq!(string(&env, 1024), XEN_DENY);
        assert_eq!(call(&mut env, u, XENVER_build_id, 0), -1);
        assert_eq!(call(&mut env, 0, XENVER_commandline, ARG_GVA), 0);
        assert_eq!(string(&env, 1024), "");
        assert_eq!(call(&mut env, 0, XENVER_build_id, 0), -61, "no build id");
        env.put(ARG_GVA, &0u32);
        assert_eq!(call(&mut env, 0, XENVER_build_id, ARG_GVA), -22, "len 0");
    }

    #[test]
    fn guest_handle() {
        let mut env = Env::new();
        let mut c = baseline();
        c.handle = [0xab; 16];
        let (_, u) = env.create(&c, 0);
        assert_eq!(call(&mut env, u, XENVER_guest_handle, ARG_GVA), 0);
        assert_eq!(env.get::<[u8; 16]>(ARG_GVA), [0xab; 16]);
    }

    #[test]
    fn capabilities_follow_caps() {
        let mut k = HostCaps::THIS_HYPERVISOR;
        k.pv = false;
        assert_eq!(
            capabilities(&k),
            "hvm-3.0-x86_32 hvm-3.0-x86_32p hvm-3.0-x86_64 "
        );
    }
}
