//! Guest time: the pvclock record (`struct vcpu_time_info` in each vCPU's
//! `vcpu_info`, and in the area `VCPUOP_register_vcpu_time_memory_area` names) and
//! the wallclock in `shared_info`.
//!
//! Mirrors Xen 4.17's `xen/arch/x86/time.c`: `set_time_scale()` (the TSC →
//! nanoseconds multiplier and shift), `__update_vcpu_system_time()` (the
//! version protocol: odd while the record changes, even when it is consistent)
//! and `update_domain_wallclock_time()` (`wc_version`, same protocol).
//!
//! A guest computes `system_time + (((tsc - tsc_timestamp) << shift) * mul) >> 32`
//! (a negative shift shifts right), which must agree with the hypervisor's
//! [`Clock`](super::hypercall::Clock): the arch passes both readings taken together.

use core::mem::offset_of;

use xen_public_abi::xen::{shared_info, vcpu_info, vcpu_time_info};
use xen_public_abi::XenResult;
use zerocopy::{FromZeros, IntoBytes};

use super::domain::Domain;
use super::guest_access::{GuestRam, MachineMemory};

const NS_PER_SEC: u64 = 1_000_000_000;

/// Offset of the pvclock record in `vcpu_info`.
pub const VCPU_INFO_TIME: u64 = offset_of!(vcpu_info, time) as u64;
const WC_VERSION: u64 = offset_of!(shared_info, wc_version) as u64;
const WC_SEC_HI: u64 = offset_of!(shared_info, wc_sec_hi) as u64;

/// TSC → ns conversion (Xen's `struct time_scale`):
/// `ns = ((ticks << shift) * mul_frac) >> 32`, shifting right for negative `shift`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TimeScale {
    pub shift: i8,
    pub mul_frac: u32,
}

impl TimeScale {
    /// The scale for a counter running at `hz` ticks per second (`set_time_scale`):
    /// bring `hz` into (0.5 s, 1 s]-worth of nanoseconds by powers of two, then
    /// the fraction 10^9 / hz' as a 32-bit binary fraction. `hz` 0 gives a scale
    /// that reads 0.
    pub fn from_hz(hz: u64) -> TimeScale {
        if hz == 0 {
            return TimeScale {
                shift: 0,
                mul_frac: 0,
            };
        }
        let mut shift: i8 = 0;
        let mut t = hz;
        while t > 2 * NS_PER_SEC {
            t >>= 1;
            shift -= 1;
        }
        while t <= NS_PER_SEC {
            t <<= 1;
            shift += 1;
        }
        // 10^9 / t < 1 here (t > 10^9), so the fraction fits 32 bits.
        let mul_frac = ((NS_PER_SEC << 32) / t) as u32;
        TimeScale { shift, mul_frac }
    }

    /// Scale `ticks` to nanoseconds exactly as a guest does.
    pub fn scale(&self, ticks: u64) -> u64 {
        let t = if self.shift >= 0 {
            ticks << self.shift
        } else {
            ticks >> (-self.shift)
        };
        ((u128::from(t) * u128::from(self.mul_frac)) >> 32) as u64
    }
}

/// Write `rec` into guest memory with the version protocol: bump `version` to odd,
/// write the body, bump it to even (`__update_vcpu_system_time`'s order).
/// `write(offset, bytes)` writes into the record; `version` is what the record
/// holds now.
fn publish(
    rec: &vcpu_time_info,
    version: u32,
    mut write: impl FnMut(u64, &[u8]) -> XenResult<()>,
) -> XenResult<()> {
    let odd = (version | 1).wrapping_add(if version & 1 == 0 { 0 } else { 2 });
    write(0, &odd.to_le_bytes())?;
    write(8, &rec.as_bytes()[8..])?;
    write(0, &odd.wrapping_add(1).to_le_bytes())
}

/// The pvclock record at `(tsc, now_ns)`, taken together.
pub fn vcpu_time_record(tsc: u64, now_ns: u64, scale: TimeScale) -> vcpu_time_info {
    let mut t = vcpu_time_info::new_zeroed();
    t.tsc_timestamp = tsc;
    t.system_time = now_ns;
    t.tsc_to_system_mul = scale.mul_frac;
    t.tsc_shift = scale.shift;
    t
}

/// Refresh vCPU `v`'s pvclock (in its `vcpu_info`, and in the registered time
/// area if it has one). Guest memory that has gone away is skipped: the guest
/// only hurts its own clock.
pub fn update_vcpu_time(
    d: &mut Domain,
    machine: &dyn MachineMemory,
    v: u32,
    tsc: u64,
    now_ns: u64,
    scale: TimeScale,
) {
    let rec = vcpu_time_record(tsc, now_ns, scale);
    let area = d.vcpu(v).and_then(|c| c.op.time_area_gpa);
    let mut ram = GuestRam {
        p2m: &d.hvm.p2m,
        machine,
    };
    let sh = d.evtchn.shared_info_mut();
    let mut ver = [0u8; 4];
    if sh.read_vcpu_info(&ram, v, VCPU_INFO_TIME, &mut ver).is_ok() {
        let _ = publish(&rec, u32::from_le_bytes(ver), |off, b| {
            sh.write_vcpu_info(&mut ram, v, VCPU_INFO_TIME + off, b)
        });
    }
    if let Some(gpa) = area {
        use super::guest_access::GuestMemory;
        if ram.read_gpa(gpa, &mut ver).is_ok() {
            let _ = publish(&rec, u32::from_le_bytes(ver), |off, b| {
                ram.write_gpa(gpa + off, b)
            });
        }
    }
}

/// Write the wallclock (`wc_sec`, `wc_nsec`, `wc_sec_hi`: the wall time at system
/// time 0, `boot_wall_ns` nanoseconds since the Unix epoch) into the domain's
/// `shared_info`, with `wc_version` odd while it changes.
pub fn update_wallclock(d: &mut Domain, machine: &dyn MachineMemory, boot_wall_ns: u64) {
    let mut ram = GuestRam {
        p2m: &d.hvm.p2m,
        machine,
    };
    let sh = d.evtchn.shared_info_mut();
    let secs = boot_wall_ns / NS_PER_SEC;
    let nsec = (boot_wall_ns % NS_PER_SEC) as u32;
    let mut ver = [0u8; 4];
    if sh.read_shared_info(&ram, WC_VERSION, &mut ver).is_err() {
        return;
    }
    let v = u32::from_le_bytes(ver);
    let odd = if v & 1 == 0 {
        v.wrapping_add(1)
    } else {
        v.wrapping_add(2)
    };
    let mut body = [0u8; 12];
    body[0..4].copy_from_slice(&(secs as u32).to_le_bytes());
    body[4..8].copy_from_slice(&nsec.to_le_bytes());
    body[8..12].copy_from_slice(&((secs >> 32) as u32).to_le_bytes());
    let _ = (|| {
        sh.write_shared_info(&mut ram, WC_VERSION, &odd.to_le_bytes())?;
        sh.write_shared_info(&mut ram, WC_VERSION + 4, &body)?;
        sh.write_shared_info(&mut ram, WC_VERSION, &odd.wrapping_add(1).to_le_bytes())
    })();
    debug_assert_eq!(WC_SEC_HI, WC_VERSION + 12);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::common::domctl::create_vcpus;
    use crate::common::guest_access::fake::FakeMachine;
    use crate::common::guest_access::MachineMemory;
    use crate::common::hypercall::NoExt;
    use crate::common::memory::P2mAccess;
    use crate::common::test_support::*;
    use zerocopy::FromBytes;

    #[test]
    fn scale_converts_common_frequencies_to_ns() {
        for hz in [
            1_000_000u64,
            999_999_999,
            1_000_000_000,
            1_000_000_001,
            2_000_000_000,
            2_100_000_000,
            3_600_000_000,
            5_000_000_000,
        ] {
            let s = TimeScale::from_hz(hz);
            // One second of ticks reads one second, within 1 ppm.
            let ns = s.scale(hz);
            assert!(ns.abs_diff(NS_PER_SEC) <= 1_000, "{hz} Hz: {ns} ns ({s:?})");
            // And ten minutes, within 1 ppm.
            let ns = s.scale(hz * 600);
            assert!(ns.abs_diff(600 * NS_PER_SEC) <= 600_000, "{hz} Hz: {ns}");
        }
        assert_eq!(TimeScale::from_hz(0).scale(12345), 0);
    }

    fn domain_with_shinfo() -> (Env, FakeMachine, u16) {
        let mut env = Env::new();
        let machine = FakeMachine::default();
        let (rc, id) = env.create(&baseline(), 0);
        assert_eq!(rc, 0);
        let d = env.hv.domains.get_mut(id).unwrap();
        create_vcpus(d, &mut NoExt).unwrap();
        d.hvm
            .p2m
            .set_host_entry(0x80, d.shared_info_mfn, P2mAccess::RWX)
            .unwrap();
        let mut ram = GuestRam {
            p2m: &d.hvm.p2m,
            machine: &machine,
        };
        d.evtchn.map_shared_info(&mut ram, Some(0x80)).unwrap();
        (env, machine, id)
    }

    fn shinfo(env: &Env, m: &FakeMachine, id: u16) -> shared_info {
        let mut s = shared_info::new_zeroed();
        let mfn = env.hv.domains.get(id).unwrap().shared_info_mfn;
        assert!(m.read(mfn, 0, s.as_mut_bytes()));
        s
    }

    #[test]
    fn pvclock_record_is_even_and_reads_the_clock() {
        let (mut env, m, id) = domain_with_shinfo();
        let scale = TimeScale::from_hz(2_500_000_000);
        let d = env.hv.domains.get_mut(id).unwrap();
        update_vcpu_time(d, &m, 0, 10_000, 4_000, scale);
        let s = shinfo(&env, &m, id);
        let t = s.vcpu_info[0].time;
        assert_eq!(t.version, 2, "odd then even");
        assert_eq!(t.tsc_timestamp, 10_000);
        assert_eq!(t.system_time, 4_000);
        // The guest's formula 2.5e9 ticks later: one more second.
        let later = t.system_time + scale.scale(2_500_000_000);
        assert!(later.abs_diff(4_000 + NS_PER_SEC) < 1_000);
        let d = env.hv.domains.get_mut(id).unwrap();
        update_vcpu_time(d, &m, 0, 20_000, 8_000, scale);
        assert_eq!(shinfo(&env, &m, id).vcpu_info[0].time.version, 4);
    }

    #[test]
    fn pvclock_also_goes_to_the_registered_time_area() {
        let (mut env, m, id) = domain_with_shinfo();
        let d = env.hv.domains.get_mut(id).unwrap();
        d.hvm
            .p2m
            .set_host_entry(0x90, 0x9999, P2mAccess::RWX)
            .unwrap();
        d.vcpus[0].op.time_area_gpa = Some(0x90 * 4096 + 0x40);
        update_vcpu_time(d, &m, 0, 1, 2, TimeScale::from_hz(1_000_000_000));
        let mut raw = [0u8; 32];
        assert!(m.read(0x9999, 0x40, &mut raw));
        let t = vcpu_time_info::read_from_bytes(&raw).unwrap();
        assert_eq!((t.version, t.tsc_timestamp, t.system_time), (2, 1, 2));
    }

    #[test]
    fn wallclock_fields_and_version() {
        let (mut env, m, id) = domain_with_shinfo();
        let wall = 0x1_2345_6789 * NS_PER_SEC + 250;
        update_wallclock(env.hv.domains.get_mut(id).unwrap(), &m, wall);
        let s = shinfo(&env, &m, id);
        assert_eq!(s.wc_version, 2);
        assert_eq!(s.wc_sec, 0x2345_6789);
        assert_eq!(s.wc_sec_hi, 1);
        assert_eq!(s.wc_nsec, 250);
    }
}
