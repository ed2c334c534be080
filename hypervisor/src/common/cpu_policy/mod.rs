//! The per-domain CPU policy: the one description of the CPU a guest sees, behind
//! CPUID, the CR4/EFER bits a guest may set and the MSRs it may use.
//!
//! Mirrors Xen 4.17's `struct cpuid_policy` / `struct msr_policy`
//! (`xen/include/xen/lib/x86/{cpuid,msr}.h`), their serialisation to
//! `xen_cpuid_leaf` / `xen_msr_entry` arrays and the audit of a toolstack request
//! (`xen/lib/x86/{cpuid,msr,policy}.c`), the system policies
//! (`xen/arch/x86/cpuid.c`, `msr.c`: raw, host, HVM max, HVM default) and
//! `hvm_cr4_guest_valid_bits` / `hvm_efer_valid` (`xen/arch/x86/hvm/hvm.c`).
//!
//! A domain's policy is derived once, at creation: host CPUID ∩ what this
//! hypervisor virtualises on its backend ([`derive`]) = HVM max; the HVM default
//! with the domain's topology; then narrowed by `XEN_DOMCTL_set_cpu_policy` before
//! the domain first runs ([`CpuPolicy::update_from_toolstack`]). CPUID answers
//! ([`cpuid::guest_cpuid`]), the CR4/EFER masks and the MSR semantics ([`msr`])
//! all read the same object, so what CPUID advertises is what works.

pub mod buffer;
pub mod cpuid;
pub mod derive;
#[cfg(test)]
mod hypercall_tests;
pub mod msr;
#[cfg(test)]
mod tests;

use alloc::boxed::Box;

use xen_public_abi::arch_x86::{xen_cpuid_leaf, xen_msr_entry, XEN_CPUID_NO_SUBLEAF};
use xen_public_abi::Errno;

/// One CPUID leaf: EAX, EBX, ECX, EDX.
pub type Leaf = [u32; 4];

/// `CPUID_GUEST_NR_BASIC`: basic leaves 0..=0xd.
pub const NR_BASIC: usize = 0xd + 1;
/// `CPUID_GUEST_NR_CACHE`: leaf 4 subleaves.
pub const NR_CACHE: usize = 5 + 1;
/// `CPUID_GUEST_NR_FEAT`: leaf 7 subleaves.
pub const NR_FEAT: usize = 2 + 1;
/// `CPUID_GUEST_NR_TOPO`: leaf 0xb subleaves.
pub const NR_TOPO: usize = 1 + 1;
/// `CPUID_GUEST_NR_XSTATE`: leaf 0xd subleaves.
pub const NR_XSTATE: usize = 62 + 1;
/// `CPUID_GUEST_NR_EXTD`: extended leaves 0x80000000..=0x80000021.
pub const NR_EXTD: usize = 0x21 + 1;
/// `CPUID_MAX_SERIALISED_LEAVES`.
pub const CPUID_MAX_SERIALISED_LEAVES: u32 =
    (NR_BASIC + NR_FEAT - 1 + NR_CACHE - 1 + NR_TOPO - 1 + NR_XSTATE - 1 + NR_EXTD + 2) as u32;
/// `MSR_MAX_SERIALISED_ENTRIES`.
pub const MSR_MAX_SERIALISED_ENTRIES: u32 = 2;

/// `MSR_INTEL_PLATFORM_INFO`.
pub const MSR_INTEL_PLATFORM_INFO: u32 = 0xce;
/// `MSR_ARCH_CAPABILITIES`.
pub const MSR_ARCH_CAPABILITIES: u32 = 0x10a;
/// `platform_info.cpuid_faulting` (bit 31).
pub const PLATFORM_INFO_CPUID_FAULTING: u32 = 1 << 31;

const EAX: usize = 0;
const EBX: usize = 1;
const ECX: usize = 2;
const EDX: usize = 3;

/// The CPU vendor, from leaf 0's signature (`x86_vendor`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Vendor {
    Intel,
    Amd,
    Other,
}

/// `struct cpuid_policy`: the raw leaves, in Xen's arrays.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CpuidPolicy {
    /// Basic leaves (entries 4, 7, 0xb, 0xd are unused: see the sub-arrays).
    pub basic: [Leaf; NR_BASIC],
    pub cache: [Leaf; NR_CACHE],
    pub feat: [Leaf; NR_FEAT],
    pub topo: [Leaf; NR_TOPO],
    pub xstate: [Leaf; NR_XSTATE],
    /// Extended leaves, indexed by `leaf & 0xffff`.
    pub extd: [Leaf; NR_EXTD],
    /// Leaf 0x40000000 EAX as the toolstack gave it (0: the default, all Xen leaves).
    pub hv_limit: u32,
    /// Leaf 0x40000100 EAX (Viridian; kept and serialised, not used).
    pub hv2_limit: u32,
}

/// `struct msr_policy`: the MSRs shared by the domain's vCPUs.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct MsrPolicy {
    /// `MSR_INTEL_PLATFORM_INFO` (only bit 31, CPUID faulting, is meaningful).
    pub platform_info: u32,
    /// `MSR_ARCH_CAPABILITIES` (readable only when CPUID 7.0.EDX\[29\] is set).
    pub arch_caps: u32,
}

/// `struct cpu_policy`: CPUID and MSR policy of one domain (or a system policy).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CpuPolicy {
    pub cpuid: CpuidPolicy,
    pub msr: MsrPolicy,
}

/// `struct cpu_policy_errors`: what `XEN_DOMCTL_set_cpu_policy` reports in
/// `err_leaf`, `err_subleaf`, `err_msr` (all `~0` when not applicable).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PolicyErrors {
    pub leaf: u32,
    pub subleaf: u32,
    pub msr: u32,
}

impl PolicyErrors {
    /// `INIT_CPU_POLICY_ERRORS`.
    pub const NONE: PolicyErrors = PolicyErrors {
        leaf: u32::MAX,
        subleaf: u32::MAX,
        msr: u32::MAX,
    };
}

/// Where a bit of a feature word lives: leaf, subleaf, register.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FeatureWord {
    pub leaf: u32,
    pub subleaf: u32,
    pub reg: usize,
    pub name: &'static str,
}

/// Xen's featureset words that this hypervisor filters (`FEATURESET_*`).
pub const FEATURE_WORDS: [FeatureWord; 11] = [
    FeatureWord {
        leaf: 1,
        subleaf: 0,
        reg: EDX,
        name: "1d",
    },
    FeatureWord {
        leaf: 1,
        subleaf: 0,
        reg: ECX,
        name: "1c",
    },
    FeatureWord {
        leaf: 0x8000_0001,
        subleaf: 0,
        reg: EDX,
        name: "e1d",
    },
    FeatureWord {
        leaf: 0x8000_0001,
        subleaf: 0,
        reg: ECX,
        name: "e1c",
    },
    FeatureWord {
        leaf: 0xd,
        subleaf: 1,
        reg: EAX,
        name: "Da1",
    },
    FeatureWord {
        leaf: 7,
        subleaf: 0,
        reg: EBX,
        name: "7b0",
    },
    FeatureWord {
        leaf: 7,
        subleaf: 0,
        reg: ECX,
        name: "7c0",
    },
    FeatureWord {
        leaf: 7,
        subleaf: 0,
        reg: EDX,
        name: "7d0",
    },
    FeatureWord {
        leaf: 7,
        subleaf: 1,
        reg: EAX,
        name: "7a1",
    },
    FeatureWord {
        leaf: 0x8000_0007,
        subleaf: 0,
        reg: EDX,
        name: "e7d",
    },
    FeatureWord {
        leaf: 0x8000_0008,
        subleaf: 0,
        reg: EBX,
        name: "e8b",
    },
];

/// Named feature bits the CR/MSR logic reads: (word index in [`FEATURE_WORDS`], bit).
pub mod feature {
    pub type Bit = (usize, u32);
    pub const FPU: Bit = (0, 0);
    pub const VME: Bit = (0, 1);
    pub const DE: Bit = (0, 2);
    pub const PSE: Bit = (0, 3);
    pub const TSC: Bit = (0, 4);
    pub const PAE: Bit = (0, 6);
    pub const MCE: Bit = (0, 7);
    pub const APIC: Bit = (0, 9);
    pub const MTRR: Bit = (0, 12);
    pub const PGE: Bit = (0, 13);
    pub const MCA: Bit = (0, 14);
    pub const DS: Bit = (0, 21);
    pub const FXSR: Bit = (0, 24);
    pub const SSE: Bit = (0, 25);
    pub const HTT: Bit = (0, 28);
    pub const MONITOR: Bit = (1, 3);
    pub const DTES64: Bit = (1, 2);
    pub const DSCPL: Bit = (1, 4);
    pub const VMX: Bit = (1, 5);
    pub const SMX: Bit = (1, 6);
    pub const PDCM: Bit = (1, 15);
    pub const PCID: Bit = (1, 17);
    pub const X2APIC: Bit = (1, 21);
    pub const XSAVE: Bit = (1, 26);
    pub const OSXSAVE: Bit = (1, 27);
    pub const AVX: Bit = (1, 28);
    pub const HYPERVISOR: Bit = (1, 31);
    pub const SYSCALL: Bit = (2, 11);
    pub const NX: Bit = (2, 20);
    pub const FFXSR: Bit = (2, 25);
    pub const RDTSCP: Bit = (2, 27);
    pub const LM: Bit = (2, 29);
    pub const SVM: Bit = (3, 2);
    pub const FSGSBASE: Bit = (5, 0);
    pub const TSC_ADJUST: Bit = (5, 1);
    pub const SMEP: Bit = (5, 7);
    pub const INVPCID: Bit = (5, 10);
    pub const MPX: Bit = (5, 14);
    pub const SMAP: Bit = (5, 20);
    pub const UMIP: Bit = (6, 2);
    pub const PKU: Bit = (6, 3);
    pub const OSPKE: Bit = (6, 4);
    pub const LA57: Bit = (6, 16);
    pub const RDPID: Bit = (6, 22);
    pub const CET_SS: Bit = (6, 7);
    pub const IBRSB: Bit = (7, 26);
    pub const CET_IBT: Bit = (7, 20);
    pub const ARCH_CAPS: Bit = (7, 29);
    pub const IBRS: Bit = (10, 14);
}

/// CR4 bits (`X86_CR4_*`).
pub mod cr4 {
    pub const VME: u64 = 1 << 0;
    pub const PVI: u64 = 1 << 1;
    pub const TSD: u64 = 1 << 2;
    pub const DE: u64 = 1 << 3;
    pub const PSE: u64 = 1 << 4;
    pub const PAE: u64 = 1 << 5;
    pub const MCE: u64 = 1 << 6;
    pub const PGE: u64 = 1 << 7;
    pub const PCE: u64 = 1 << 8;
    pub const OSFXSR: u64 = 1 << 9;
    pub const OSXMMEXCPT: u64 = 1 << 10;
    pub const UMIP: u64 = 1 << 11;
    pub const LA57: u64 = 1 << 12;
    pub const VMXE: u64 = 1 << 13;
    pub const SMXE: u64 = 1 << 14;
    pub const FSGSBASE: u64 = 1 << 16;
    pub const PCIDE: u64 = 1 << 17;
    pub const OSXSAVE: u64 = 1 << 18;
    pub const SMEP: u64 = 1 << 20;
    pub const SMAP: u64 = 1 << 21;
    pub const PKE: u64 = 1 << 22;
    pub const CET: u64 = 1 << 23;
}

/// EFER bits (`EFER_*`).
pub mod efer {
    pub const SCE: u64 = 1 << 0;
    pub const LME: u64 = 1 << 8;
    pub const LMA: u64 = 1 << 10;
    pub const NXE: u64 = 1 << 11;
    pub const SVME: u64 = 1 << 12;
    pub const LMSLE: u64 = 1 << 13;
    pub const FFXSE: u64 = 1 << 14;
    /// `EFER_KNOWN_MASK`.
    pub const KNOWN: u64 = SCE | LME | LMA | NXE | SVME | LMSLE | FFXSE;
}

impl Default for CpuidPolicy {
    fn default() -> Self {
        CpuidPolicy {
            basic: [[0; 4]; NR_BASIC],
            cache: [[0; 4]; NR_CACHE],
            feat: [[0; 4]; NR_FEAT],
            topo: [[0; 4]; NR_TOPO],
            xstate: [[0; 4]; NR_XSTATE],
            extd: [[0; 4]; NR_EXTD],
            hv_limit: 0,
            hv2_limit: 0,
        }
    }
}

impl CpuidPolicy {
    /// `basic.max_leaf`.
    pub fn max_leaf(&self) -> u32 {
        self.basic[0][EAX]
    }
    /// `feat.max_subleaf`.
    pub fn feat_max_subleaf(&self) -> u32 {
        self.feat[0][EAX]
    }
    /// `extd.max_leaf`.
    pub fn extd_max_leaf(&self) -> u32 {
        self.extd[0][EAX]
    }

    pub fn vendor(&self) -> Vendor {
        match (self.basic[0][EBX], self.basic[0][EDX], self.basic[0][ECX]) {
            (0x756e_6547, 0x4965_6e69, 0x6c65_746e) => Vendor::Intel,
            (0x6874_7541, 0x6974_6e65, 0x444d_4163) => Vendor::Amd,
            _ => Vendor::Other,
        }
    }

    /// The stored leaf for (`leaf`, `subleaf`), whether or not it is in range.
    pub fn slot(&self, leaf: u32, subleaf: u32) -> Option<&Leaf> {
        self.slot_index(leaf, subleaf).map(|s| self.at(s))
    }

    /// The leaf as the guest sees it before per-vCPU adjustment: zero outside the
    /// policy's ranges (`guest_cpuid`'s out-of-range rule).
    pub fn leaf(&self, leaf: u32, subleaf: u32) -> Leaf {
        let in_range = match leaf {
            0..=0x3fff_ffff => leaf <= self.max_leaf(),
            0x8000_0000..=0x8000_ffff => leaf <= self.extd_max_leaf(),
            _ => false,
        };
        if !in_range || (leaf == 7 && subleaf > self.feat_max_subleaf()) {
            return [0; 4];
        }
        let sub = match leaf {
            4 | 7 | 0xb | 0xd => subleaf,
            _ => 0,
        };
        self.slot(leaf, sub).copied().unwrap_or([0; 4])
    }

    fn slot_index(&self, leaf: u32, subleaf: u32) -> Option<Slot> {
        let s = subleaf as usize;
        Some(match leaf {
            4 if s < NR_CACHE => Slot::Cache(s),
            7 if s < NR_FEAT => Slot::Feat(s),
            0xb if s < NR_TOPO => Slot::Topo(s),
            0xd if s < NR_XSTATE => Slot::Xstate(s),
            4 | 7 | 0xb | 0xd => return None,
            l if (l as usize) < NR_BASIC => Slot::Basic(l as usize),
            l if (0x8000_0000..0x8000_0000 + NR_EXTD as u32).contains(&l) => {
                Slot::Extd((l & 0xffff) as usize)
            }
            _ => return None,
        })
    }

    fn at(&self, s: Slot) -> &Leaf {
        match s {
            Slot::Basic(i) => &self.basic[i],
            Slot::Cache(i) => &self.cache[i],
            Slot::Feat(i) => &self.feat[i],
            Slot::Topo(i) => &self.topo[i],
            Slot::Xstate(i) => &self.xstate[i],
            Slot::Extd(i) => &self.extd[i],
        }
    }

    fn at_mut(&mut self, s: Slot) -> &mut Leaf {
        match s {
            Slot::Basic(i) => &mut self.basic[i],
            Slot::Cache(i) => &mut self.cache[i],
            Slot::Feat(i) => &mut self.feat[i],
            Slot::Topo(i) => &mut self.topo[i],
            Slot::Xstate(i) => &mut self.xstate[i],
            Slot::Extd(i) => &mut self.extd[i],
        }
    }

    /// A mutable leaf (only slots that exist in Xen's arrays).
    pub fn slot_mut(&mut self, leaf: u32, subleaf: u32) -> Option<&mut Leaf> {
        self.slot_index(leaf, subleaf).map(|s| self.at_mut(s))
    }

    /// Feature word `i` of [`FEATURE_WORDS`].
    pub fn word(&self, i: usize) -> u32 {
        let w = FEATURE_WORDS[i];
        self.slot(w.leaf, w.subleaf).map_or(0, |l| l[w.reg])
    }

    pub fn set_word(&mut self, i: usize, value: u32) {
        let w = FEATURE_WORDS[i];
        if let Some(l) = self.slot_mut(w.leaf, w.subleaf) {
            l[w.reg] = value;
        }
    }

    /// Whether feature `f` is offered (its leaf within range and the bit set).
    pub fn has(&self, f: feature::Bit) -> bool {
        let w = FEATURE_WORDS[f.0];
        self.leaf(w.leaf, w.subleaf)[w.reg] & (1 << f.1) != 0
    }

    /// Set or clear feature `f`.
    pub fn set(&mut self, f: feature::Bit, on: bool) {
        let v = self.word(f.0);
        self.set_word(f.0, if on { v | 1 << f.1 } else { v & !(1 << f.1) });
    }

    /// The XSAVE components the policy offers (`cpuid_policy_xstates`).
    pub fn xstates(&self) -> u64 {
        let x0 = self.xstate[0];
        let x1 = self.xstate[1];
        (u64::from(x0[EAX]) | u64::from(x0[EDX]) << 32)
            | (u64::from(x1[ECX]) | u64::from(x1[EDX]) << 32)
    }

    /// `x86_cpuid_policy_clear_out_of_range_leaves`: zero every stored leaf above
    /// the maximum leaf / subleaf the policy declares.
    pub fn clear_out_of_range_leaves(&mut self) {
        let max = self.max_leaf() as usize;
        for (i, l) in self.basic.iter_mut().enumerate() {
            if i > max {
                *l = [0; 4];
            }
        }
        if max < 4 {
            self.cache = [[0; 4]; NR_CACHE];
        }
        if max < 7 {
            self.feat = [[0; 4]; NR_FEAT];
        } else {
            let fmax = self.feat_max_subleaf() as usize;
            for l in self.feat.iter_mut().skip(fmax + 1) {
                *l = [0; 4];
            }
        }
        if max < 0xb {
            self.topo = [[0; 4]; NR_TOPO];
        }
        if max < 0xd {
            self.xstate = [[0; 4]; NR_XSTATE];
        } else {
            let xs = self.xstates();
            for (i, l) in self.xstate.iter_mut().enumerate().skip(2) {
                if xs & (1 << i) == 0 {
                    *l = [0; 4];
                }
            }
        }
        let emax = self.extd_max_leaf();
        let ecount = if emax & 0xffff_0000 == 0x8000_0000 {
            (emax & 0xffff) as usize + 1
        } else {
            0
        };
        for l in self.extd.iter_mut().skip(ecount) {
            *l = [0; 4];
        }
    }

    /// The (leaf, subleaf, data) entries of `x86_cpuid_copy_to_buffer`, in its order.
    pub fn serialise(&self) -> alloc::vec::Vec<xen_cpuid_leaf> {
        let mut out = alloc::vec::Vec::new();
        let mut push = |leaf: u32, subleaf: u32, l: &Leaf| {
            out.push(xen_cpuid_leaf {
                leaf,
                subleaf,
                a: l[EAX],
                b: l[EBX],
                c: l[ECX],
                d: l[EDX],
            })
        };
        let max = (self.max_leaf() as usize).min(NR_BASIC - 1);
        for leaf in 0..=max {
            match leaf {
                4 => {
                    for (s, l) in self.cache.iter().enumerate() {
                        push(4, s as u32, l);
                        if l[EAX] & 0x1f == 0 {
                            break;
                        }
                    }
                }
                7 => {
                    let m = (self.feat_max_subleaf() as usize).min(NR_FEAT - 1);
                    for (s, l) in self.feat.iter().enumerate().take(m + 1) {
                        push(7, s as u32, l);
                    }
                }
                0xb => {
                    for (s, l) in self.topo.iter().enumerate() {
                        push(0xb, s as u32, l);
                        if (l[ECX] >> 8) & 0xff == 0 {
                            break;
                        }
                    }
                }
                0xd => {
                    push(0xd, 0, &self.xstate[0]);
                    push(0xd, 1, &self.xstate[1]);
                    let mut xs = self.xstates() >> 2;
                    let mut s = 2;
                    while xs != 0 && s < NR_XSTATE {
                        push(0xd, s as u32, &self.xstate[s]);
                        xs >>= 1;
                        s += 1;
                    }
                }
                _ => push(leaf as u32, XEN_CPUID_NO_SUBLEAF, &self.basic[leaf]),
            }
        }
        push(0x4000_0000, XEN_CPUID_NO_SUBLEAF, &[self.hv_limit, 0, 0, 0]);
        push(
            0x4000_0100,
            XEN_CPUID_NO_SUBLEAF,
            &[self.hv2_limit, 0, 0, 0],
        );
        let emax = ((self.extd_max_leaf() & 0xffff) as usize).min(NR_EXTD - 1);
        for (i, l) in self.extd.iter().enumerate().take(emax + 1) {
            push(0x8000_0000 | i as u32, XEN_CPUID_NO_SUBLEAF, l);
        }
        out
    }

    /// `x86_cpuid_copy_from_buffer`: merge `leaves` into this policy. An entry Xen
    /// has no slot for is `-ERANGE` with that leaf/subleaf reported.
    pub fn merge(
        &mut self,
        leaves: &[xen_cpuid_leaf],
        err: &mut PolicyErrors,
    ) -> Result<(), Errno> {
        for e in leaves {
            let l = [e.a, e.b, e.c, e.d];
            let slot = match e.leaf {
                4 | 7 | 0xb | 0xd => self.slot_index(e.leaf, e.subleaf),
                0..=0xc if e.subleaf == XEN_CPUID_NO_SUBLEAF => self.slot_index(e.leaf, 0),
                0x8000_0000..=0x8000_ffff if e.subleaf == XEN_CPUID_NO_SUBLEAF => {
                    self.slot_index(e.leaf, 0)
                }
                0x4000_0000 if e.subleaf == XEN_CPUID_NO_SUBLEAF => {
                    self.hv_limit = e.a;
                    continue;
                }
                0x4000_0100 if e.subleaf == XEN_CPUID_NO_SUBLEAF => {
                    self.hv2_limit = e.a;
                    continue;
                }
                _ => None,
            };
            match slot {
                Some(s) => *self.at_mut(s) = l,
                None => {
                    err.leaf = e.leaf;
                    err.subleaf = e.subleaf;
                    return Err(Errno::ERANGE);
                }
            }
        }
        Ok(())
    }
}

#[derive(Clone, Copy)]
enum Slot {
    Basic(usize),
    Cache(usize),
    Feat(usize),
    Topo(usize),
    Xstate(usize),
    Extd(usize),
}

impl MsrPolicy {
    /// `x86_msr_copy_to_buffer`.
    pub fn serialise(&self) -> [xen_msr_entry; 2] {
        [
            xen_msr_entry {
                idx: MSR_INTEL_PLATFORM_INFO,
                flags: 0,
                val: u64::from(self.platform_info),
            },
            xen_msr_entry {
                idx: MSR_ARCH_CAPABILITIES,
                flags: 0,
                val: u64::from(self.arch_caps),
            },
        ]
    }

    /// `x86_msr_copy_from_buffer`: `flags` must be 0 (`-EINVAL`), the value must fit
    /// the 32-bit field (`-EOVERFLOW`), the MSR must be one of the two
    /// (`-ERANGE`); the offending MSR goes to `err.msr`.
    pub fn merge(&mut self, msrs: &[xen_msr_entry], err: &mut PolicyErrors) -> Result<(), Errno> {
        for e in msrs {
            let r = if e.flags != 0 {
                Err(Errno::EINVAL)
            } else {
                match (e.idx, u32::try_from(e.val)) {
                    (MSR_INTEL_PLATFORM_INFO | MSR_ARCH_CAPABILITIES, Err(_)) => {
                        Err(Errno::EOVERFLOW)
                    }
                    (MSR_INTEL_PLATFORM_INFO, Ok(v)) => {
                        self.platform_info = v;
                        Ok(())
                    }
                    (MSR_ARCH_CAPABILITIES, Ok(v)) => {
                        self.arch_caps = v;
                        Ok(())
                    }
                    _ => Err(Errno::ERANGE),
                }
            };
            if let Err(code) = r {
                err.msr = e.idx;
                return Err(code);
            }
        }
        Ok(())
    }
}

impl CpuPolicy {
    /// `hvm_cr4_guest_valid_bits`: the CR4 bits a guest with this policy may set
    /// (no nested virtualisation here, so never VMXE; never SMXE, LA57).
    pub fn cr4_valid_bits(&self) -> u64 {
        use feature as f;
        let p = &self.cpuid;
        let b = |feat: f::Bit, bits: u64| if p.has(feat) { bits } else { 0 };
        b(f::VME, cr4::VME | cr4::PVI)
            | b(f::TSC, cr4::TSD)
            | b(f::DE, cr4::DE)
            | b(f::PSE, cr4::PSE)
            | b(f::PAE, cr4::PAE)
            | if p.has(f::MCE) || p.has(f::MCA) {
                cr4::MCE
            } else {
                0
            }
            | b(f::PGE, cr4::PGE)
            | cr4::PCE
            | b(f::FXSR, cr4::OSFXSR)
            | b(f::SSE, cr4::OSXMMEXCPT)
            | b(f::UMIP, cr4::UMIP)
            | b(f::FSGSBASE, cr4::FSGSBASE)
            | b(f::PCID, cr4::PCIDE)
            | b(f::XSAVE, cr4::OSXSAVE)
            | b(f::SMEP, cr4::SMEP)
            | b(f::SMAP, cr4::SMAP)
            | b(f::PKU, cr4::PKE)
            | if p.has(f::CET_SS) || p.has(f::CET_IBT) {
                cr4::CET
            } else {
                0
            }
    }

    /// `hvm_efer_valid`: why `value` is not a valid EFER for this policy (with
    /// CR0.PG `cr0_pg`), or `None` if it is. No nested virtualisation: SVME never.
    pub fn efer_invalid(&self, value: u64, cr0_pg: bool) -> Option<&'static str> {
        use feature as f;
        let p = &self.cpuid;
        if value & !efer::KNOWN != 0 {
            return Some("unknown bits set");
        }
        if value & efer::SCE != 0 && !p.has(f::SYSCALL) {
            return Some("SCE without feature");
        }
        if value & (efer::LME | efer::LMA) != 0 && !p.has(f::LM) {
            return Some("LME/LMA without feature");
        }
        if value & efer::LMA != 0 && (value & efer::LME == 0 || !cr0_pg) {
            return Some("LMA/LME/CR0.PG inconsistency");
        }
        if value & efer::NXE != 0 && !p.has(f::NX) {
            return Some("NXE without feature");
        }
        if value & efer::SVME != 0 {
            return Some("SVME without nested virt");
        }
        if value & efer::FFXSE != 0 && !p.has(f::FFXSR) {
            return Some("FFXSE without feature");
        }
        if value & efer::LMSLE != 0 {
            return Some("LMSLE not supported");
        }
        None
    }

    /// `update_domain_cpu_policy` on slices (see [`Self::update_from_guest`]).
    pub fn update_from_toolstack(
        &mut self,
        max: &CpuPolicy,
        leaves: &[xen_cpuid_leaf],
        msrs: &[xen_msr_entry],
        err: &mut PolicyErrors,
    ) -> Result<(), Errno> {
        self.update_from_guest(
            max,
            leaves.len() as u32,
            &mut |i| Ok(leaves[i as usize]),
            msrs.len() as u32,
            &mut |i| Ok(msrs[i as usize]),
            err,
        )
    }

    /// `update_domain_cpu_policy`: merge the toolstack's leaves and MSRs (read one
    /// at a time through `leaf(i)` / `msr(i)`, as `copy_from_buffer_offset` does:
    /// a fault is `-EFAULT` at that entry) into a copy of this policy, trim stale
    /// leaves, audit against `max` (`x86_cpu_policies_are_compatible`), then
    /// clamp every feature word to `max` (`recalculate_cpuid_policy`). On error
    /// nothing changes and `err` says which leaf/subleaf/MSR was refused.
    pub fn update_from_guest(
        &mut self,
        max: &CpuPolicy,
        nr_leaves: u32,
        leaf: &mut dyn FnMut(u32) -> Result<xen_cpuid_leaf, Errno>,
        nr_msrs: u32,
        msr: &mut dyn FnMut(u32) -> Result<xen_msr_entry, Errno>,
        err: &mut PolicyErrors,
    ) -> Result<(), Errno> {
        *err = PolicyErrors::NONE;
        if nr_leaves > CPUID_MAX_SERIALISED_LEAVES {
            return Err(Errno::E2BIG);
        }
        let mut new = Box::new(self.clone());
        for i in 0..nr_leaves {
            let e = leaf(i)?;
            new.cpuid.merge(core::slice::from_ref(&e), err)?;
        }
        if nr_msrs > MSR_MAX_SERIALISED_ENTRIES {
            return Err(Errno::E2BIG);
        }
        for i in 0..nr_msrs {
            let e = msr(i)?;
            new.msr.merge(core::slice::from_ref(&e), err)?;
        }
        new.cpuid.clear_out_of_range_leaves();
        compatible(max, &new, err)?;
        new.recalculate(max);
        *self = *new;
        Ok(())
    }

    /// `recalculate_cpuid_policy`: feature words clamped to `max`, the bits this
    /// hypervisor always synthesises forced, leaves beyond the limits trimmed.
    pub fn recalculate(&mut self, max: &CpuPolicy) {
        for i in 0..FEATURE_WORDS.len() {
            let v = self.cpuid.word(i) & max.cpuid.word(i);
            self.cpuid.set_word(i, v);
        }
        derive::force_synthetic(&mut self.cpuid);
        derive::sanitise_non_feature_leaves(&mut self.cpuid, &max.cpuid);
        self.msr.platform_info &= max.msr.platform_info;
        self.msr.arch_caps &= max.msr.arch_caps;
        self.cpuid.clear_out_of_range_leaves();
    }
}

/// `x86_cpu_policies_are_compatible` (4.17 audits the maximum leaves and
/// PLATFORM_INFO only; feature bits beyond max are clamped, not refused).
pub fn compatible(
    host: &CpuPolicy,
    guest: &CpuPolicy,
    err: &mut PolicyErrors,
) -> Result<(), Errno> {
    let (h, g) = (&host.cpuid, &guest.cpuid);
    let fail = |err: &mut PolicyErrors, leaf: u32, subleaf: u32| {
        err.leaf = leaf;
        err.subleaf = subleaf;
        Err(Errno::EINVAL)
    };
    if g.max_leaf() > h.max_leaf() {
        return fail(err, 0, XEN_CPUID_NO_SUBLEAF);
    }
    if g.feat_max_subleaf() > h.feat_max_subleaf() {
        return fail(err, 7, 0);
    }
    if g.extd_max_leaf() > h.extd_max_leaf() {
        return fail(err, 0x8000_0000, XEN_CPUID_NO_SUBLEAF);
    }
    if !host.msr.platform_info & guest.msr.platform_info != 0 {
        err.msr = MSR_INTEL_PLATFORM_INFO;
        return Err(Errno::EINVAL);
    }
    Ok(())
}
