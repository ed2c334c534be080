//! HVM save/restore records for `XEN_DOMCTL_{get,set}hvmcontext`: what the PVH
//! domain builder sends to start a domain's vCPUs (HEADER, MTRR per vCPU, CPU
//! for vCPU 0, END) and what `gethvmcontext` gives back.
//!
//! Mirrors Xen 4.17's `hvm_load()` / `hvm_save()` (`xen/common/hvm/save.c`,
//! `xen/arch/x86/hvm/save.c`), `hvm_load_cpu_ctxt()` (`xen/arch/x86/hvm/hvm.c`)
//! and `hvm_load_mtrr_msr()` (`xen/arch/x86/hvm/mtrr.c`):
//!
//! - the HEADER must come first (`-ENODATA` otherwise), with the right magic and
//!   version (`-EINVAL`);
//! - loading downs every vCPU; a CPU record brings its vCPU up again at the
//!   record's state (here: stored as [`CpuStart`] for the backend, which loads it
//!   before the vCPU next enters the guest);
//! - a context that does not end with an END record is `-ENODATA`; an unknown
//!   record type, a record for a vCPU that does not exist, a bad length or a bad
//!   value is `-EINVAL`.
//!
//! Deliberate differences (docs/domctl.md): the whole context is checked before
//! anything is applied (Xen applies records one by one, so a bad record leaves
//! the earlier ones applied); a CPU record is checked against what VM entry
//! accepts (segment attributes, limits, reserved CR0/CR4/EFER/RFLAGS bits) so a
//! bad one is `-EINVAL` and never a failed VM entry; the backends load the state
//! a PVH start needs (RIP, RSP, RBX, RFLAGS, CR0/3/4, EFER, CS and one flat data
//! segment for DS/ES/SS/FS/GS): a valid record asking for more (other GPRs,
//! different data segments, FPU state, a pending event, real mode) is
//! `-EOPNOTSUPP`; record types Xen has but this hypervisor does not model (PIC,
//! LAPIC, ...) are `-EOPNOTSUPP`.

use alloc::boxed::Box;
use alloc::vec::Vec;

use xen_public_abi::hvm::save::{
    hvm_hw_cpu, hvm_hw_mtrr, hvm_save_descriptor, hvm_save_header, HVM_FILE_MAGIC,
    HVM_FILE_VERSION, HVM_SAVE_CODE_CPU, HVM_SAVE_CODE_END, HVM_SAVE_CODE_HEADER,
    HVM_SAVE_CODE_MAX, HVM_SAVE_CODE_MTRR, MTRR_VCNT, XEN_X86_FPU_INITIALISED,
};
use xen_public_abi::{Errno, XenResult};
use zerocopy::{FromBytes, FromZeros, IntoBytes};

use super::domain::Domain;

/// One segment register as the backends load it (VMX access-rights layout:
/// `type | S<<4 | DPL<<5 | P<<7 | AVL<<12 | L<<13 | D/B<<14 | G<<15`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SegState {
    pub selector: u16,
    pub base: u64,
    pub limit: u32,
    pub attrib: u16,
}

impl SegState {
    /// From Xen's 12-bit `segment_register` attributes (the `*_arbytes` fields).
    fn from_xen(sel: u32, base: u64, limit: u32, ar: u32) -> SegState {
        SegState {
            selector: sel as u16,
            base,
            limit,
            attrib: ((ar & 0xff) | ((ar & 0xf00) << 4)) as u16,
        }
    }
}

/// The state a vCPU starts at after a CPU record was loaded (what
/// `XEN_DOMCTL_unpausedomain` then runs).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CpuStart {
    pub rip: u64,
    pub rsp: u64,
    pub rbx: u64,
    pub rflags: u64,
    pub cr0: u64,
    pub cr3: u64,
    pub cr4: u64,
    pub efer: u64,
    pub cs: SegState,
    /// DS, ES, SS, FS, GS (one flat segment).
    pub data: SegState,
}

/// Per-domain save/restore state.
#[derive(Debug, Default)]
pub struct HvmSaveState {
    /// The last CPU record loaded per vCPU (what `gethvmcontext` returns).
    cpu: Vec<Option<Box<hvm_hw_cpu>>>,
    /// MTRR state per vCPU (`None`: the reset state).
    mtrr: Vec<Option<Box<hvm_hw_mtrr>>>,
    /// CPU states loaded and not yet taken by the backend, per vCPU.
    start: Vec<Option<CpuStart>>,
    /// The guest TSC frequency the last HEADER asked for (kHz, 0: the host's).
    pub gtsc_khz: u32,
}

impl HvmSaveState {
    /// The start state loaded for `vcpu`, taken (the backend calls this before
    /// the vCPU enters the guest).
    pub fn take_start(&mut self, vcpu: u32) -> Option<CpuStart> {
        self.start.get_mut(vcpu as usize).and_then(Option::take)
    }

    /// A start state is waiting for `vcpu`.
    pub fn has_start(&self, vcpu: u32) -> bool {
        self.start.get(vcpu as usize).is_some_and(Option::is_some)
    }

    fn slot<T>(v: &mut Vec<Option<T>>, i: u32) -> &mut Option<T> {
        let i = i as usize;
        if v.len() <= i {
            v.resize_with(i + 1, || None);
        }
        &mut v[i]
    }
}

/// Xen's `MTRR_CAP` for HVM guests: 8 variable ranges, fixed ranges, WC.
const MTRR_CAP_DEFAULT: u64 = 1 << 10 | 1 << 8 | MTRR_VCNT as u64;
/// The reset PAT (`MSR_IA32_CR_PAT_RESET`).
const PAT_RESET: u64 = 0x0007_0406_0007_0406;

const DESC: usize = core::mem::size_of::<hvm_save_descriptor>();
const HEADER_LEN: usize = core::mem::size_of::<hvm_save_header>();
const CPU_LEN: usize = core::mem::size_of::<hvm_hw_cpu>();
const MTRR_LEN: usize = core::mem::size_of::<hvm_hw_mtrr>();

/// Largest context `sethvmcontext` copies in (Xen allocates whatever size the
/// caller gives; this bounds the copy): `-ENOMEM` above it.
pub const MAX_CONTEXT_BYTES: u32 = 64 * 1024;

/// `hvm_save_size()`: room for HEADER, CPU and MTRR for every vCPU, and END.
pub fn save_size(d: &Domain) -> u32 {
    let per_vcpu = DESC + CPU_LEN + DESC + MTRR_LEN;
    (DESC + HEADER_LEN + d.max_vcpus() as usize * per_vcpu + DESC) as u32
}

fn push_record<T: IntoBytes + zerocopy::Immutable>(
    out: &mut Vec<u8>,
    code: u16,
    instance: u16,
    v: &T,
) {
    let bytes = v.as_bytes();
    let desc = hvm_save_descriptor {
        typecode: code,
        instance,
        length: bytes.len() as u32,
    };
    out.extend_from_slice(desc.as_bytes());
    out.extend_from_slice(bytes);
}

/// `hvm_save()`: HEADER, then per vCPU its CPU record (only for vCPUs that are
/// up, as Xen) and its MTRR record, then END. The CPU record is the last one
/// loaded (this hypervisor does not read the live registers back).
pub fn save(d: &Domain, host_cpuid1_eax: u32) -> Vec<u8> {
    let mut out = Vec::new();
    let hdr = hvm_save_header {
        magic: HVM_FILE_MAGIC,
        version: HVM_FILE_VERSION,
        changeset: 0,
        cpuid: host_cpuid1_eax,
        gtsc_khz: d.hvm_save.gtsc_khz,
    };
    push_record(&mut out, HVM_SAVE_CODE_HEADER, 0, &hdr);
    for v in &d.vcpus {
        let i = v.vcpu_id as usize;
        if v.online {
            if let Some(Some(c)) = d.hvm_save.cpu.get(i) {
                push_record(&mut out, HVM_SAVE_CODE_CPU, v.vcpu_id as u16, &**c);
            }
        }
    }
    for v in &d.vcpus {
        let i = v.vcpu_id as usize;
        let m = match d.hvm_save.mtrr.get(i) {
            Some(Some(m)) => **m,
            _ => reset_mtrr(),
        };
        push_record(&mut out, HVM_SAVE_CODE_MTRR, v.vcpu_id as u16, &m);
    }
    out.extend_from_slice(
        hvm_save_descriptor {
            typecode: HVM_SAVE_CODE_END,
            instance: 0,
            length: 0,
        }
        .as_bytes(),
    );
    out
}

fn reset_mtrr() -> hvm_hw_mtrr {
    let mut m = hvm_hw_mtrr::new_zeroed();
    m.msr_pat_cr = PAT_RESET;
    m.msr_mtrr_cap = MTRR_CAP_DEFAULT;
    m
}

/// A parsed, checked record.
enum Record {
    Cpu(u32, Box<hvm_hw_cpu>, CpuStart),
    Mtrr(u32, Box<hvm_hw_mtrr>),
}

/// Read a descriptor at `*cur` and its payload of at most `max` bytes
/// (`strict`: exactly `max`), zero-extended to `T` (Xen's `_hvm_check_entry` +
/// `hvm_load_entry{,_zeroextend}`).
fn read_entry<T: FromBytes + IntoBytes>(
    buf: &[u8],
    cur: &mut usize,
    strict: bool,
) -> Option<(hvm_save_descriptor, T)> {
    let rest = buf.get(*cur..)?;
    let (desc, _) = hvm_save_descriptor::read_from_prefix(rest).ok()?;
    let len = desc.length as usize;
    let max = core::mem::size_of::<T>();
    if len > rest.len() - DESC || len > max || (strict && len != max) {
        return None;
    }
    let mut v = T::new_zeroed();
    v.as_mut_bytes()[..len].copy_from_slice(&rest[DESC..DESC + len]);
    *cur += DESC + len;
    Some((desc, v))
}

/// `XEN_DOMCTL_sethvmcontext` on a domain (the caller checked that it is HVM
/// and not the caller). Everything is checked first; then every vCPU goes
/// down, the MTRR states are stored and each CPU record's vCPU comes up with
/// its start state waiting for the backend.
pub fn load(d: &mut Domain, buf: &[u8], gpaddr_bits: u8) -> XenResult<()> {
    let mut cur = 0usize;
    let (_, hdr) = read_entry::<hvm_save_header>(buf, &mut cur, true).ok_or(Errno::ENODATA)?;
    // (a HEADER with another type code fails read's type check below too)
    if hvm_save_descriptor::read_from_prefix(buf)
        .map(|(d, _)| d.typecode)
        .ok()
        != Some(HVM_SAVE_CODE_HEADER)
    {
        return Err(Errno::ENODATA);
    }
    if hdr.magic != HVM_FILE_MAGIC || hdr.version != HVM_FILE_VERSION {
        log::debug!("d{}: HVM restore: bad magic or version", d.domain_id);
        return Err(Errno::EINVAL);
    }
    let mut records = Vec::new();
    loop {
        let Some(rest) = buf.get(cur..).filter(|r| r.len() >= DESC) else {
            log::debug!("d{}: HVM restore: no END record", d.domain_id);
            return Err(Errno::ENODATA);
        };
        let Ok((desc, _)) = hvm_save_descriptor::read_from_prefix(rest) else {
            return Err(Errno::ENODATA);
        };
        let vcpu = u32::from(desc.instance);
        let vcpu_exists = vcpu < d.max_vcpus() && d.vcpu(vcpu).is_some();
        match desc.typecode {
            HVM_SAVE_CODE_END => break,
            HVM_SAVE_CODE_CPU => {
                if !vcpu_exists {
                    return Err(Errno::EINVAL);
                }
                let (_, c) = read_entry::<hvm_hw_cpu>(buf, &mut cur, false).ok_or(Errno::EINVAL)?;
                let start = check_cpu(&c, gpaddr_bits)?;
                records.push(Record::Cpu(vcpu, Box::new(c), start));
            }
            HVM_SAVE_CODE_MTRR => {
                if !vcpu_exists {
                    return Err(Errno::EINVAL);
                }
                let (_, m) = read_entry::<hvm_hw_mtrr>(buf, &mut cur, true).ok_or(Errno::EINVAL)?;
                check_mtrr(&m)?;
                records.push(Record::Mtrr(vcpu, Box::new(m)));
            }
            code if code <= HVM_SAVE_CODE_MAX && code != HVM_SAVE_CODE_HEADER => {
                log::debug!(
                    "d{}: HVM restore: record type {code} is not supported here",
                    d.domain_id
                );
                return Err(Errno::EOPNOTSUPP);
            }
            _ => return Err(Errno::EINVAL),
        }
    }

    // Apply: down every vCPU; the CPU records bring theirs up.
    if hdr.gtsc_khz != 0 {
        d.hvm_save.gtsc_khz = hdr.gtsc_khz;
    }
    for v in &mut d.vcpus {
        v.online = false;
    }
    for r in records {
        match r {
            Record::Cpu(vcpu, c, start) => {
                *HvmSaveState::slot(&mut d.hvm_save.cpu, vcpu) = Some(c);
                *HvmSaveState::slot(&mut d.hvm_save.start, vcpu) = Some(start);
                if let Some(v) = d.vcpu_mut(vcpu) {
                    v.online = true;
                    v.blocked = false;
                }
            }
            Record::Mtrr(vcpu, m) => *HvmSaveState::slot(&mut d.hvm_save.mtrr, vcpu) = Some(m),
        }
    }
    Ok(())
}

// ---- the checks ----------------------------------------------------------------

const CR0_PE: u64 = 1 << 0;
const CR0_ET: u64 = 1 << 4;
const CR0_NW: u64 = 1 << 29;
const CR0_CD: u64 = 1 << 30;
const CR0_PG: u64 = 1 << 31;
/// PE MP EM TS ET NE WP AM NW CD PG: everything else is reserved
/// (`HVM_CR0_GUEST_RESERVED_BITS`).
const CR0_VALID: u64 = 0x1f | 1 << 5 | 1 << 16 | 1 << 18 | CR0_NW | CR0_CD | CR0_PG;
/// CR4 bits a guest may set here: VME PVI TSD DE PSE PAE MCE PGE PCE OSFXSR
/// OSXMMEXCPT (the guests' CPUID hides XSAVE, VMX/SVM and the rest).
const CR4_VALID: u64 = 0x7ff;
const CR4_PAE: u64 = 1 << 5;
const EFER_SCE: u64 = 1 << 0;
const EFER_LME: u64 = 1 << 8;
const EFER_LMA: u64 = 1 << 10;
const EFER_NX: u64 = 1 << 11;
/// RFLAGS bits that exist (CF PF AF ZF SF TF IF DF OF IOPL NT RF VM AC VIF VIP ID
/// and the always-one bit 1).
const RFLAGS_VALID: u64 = 0x003f_7fd7;
const RFLAGS_VM: u64 = 1 << 17;

/// Xen 12-bit attribute fields.
const AR_P: u32 = 1 << 7;
const AR_S: u32 = 1 << 4;
const AR_L: u32 = 1 << 9;
const AR_DB: u32 = 1 << 10;
const AR_G: u32 = 1 << 11;

fn ar_type(ar: u32) -> u32 {
    ar & 0xf
}
fn ar_dpl(ar: u32) -> u32 {
    (ar >> 5) & 3
}

/// Limit and granularity agree (the VM-entry rule): limit bits 11:0 not all
/// ones → G clear; limit bits 31:20 not all zero → G set.
fn limit_ok(limit: u32, ar: u32) -> bool {
    let g = ar & AR_G != 0;
    !((limit & 0xfff != 0xfff && g) || (limit >> 20 != 0 && !g))
}

fn canonical(a: u64) -> bool {
    let top = (a as i64) >> 47;
    top == 0 || top == -1
}

/// A data segment register (DS/ES/FS/GS/SS): unusable (not present), or present
/// with S set and a data or readable code type.
fn data_seg_ok(limit: u32, ar: u32, base: u64) -> bool {
    if ar & AR_P == 0 {
        return true;
    }
    let t = ar_type(ar);
    ar & AR_S != 0 && (t & 8 == 0 || t & 2 != 0) && limit_ok(limit, ar) && canonical(base)
}

fn check_cpu(c: &hvm_hw_cpu, gpaddr_bits: u8) -> XenResult<CpuStart> {
    let bad = |why: &str| {
        log::debug!("HVM restore: bad CPU record: {why}");
        Err(Errno::EINVAL)
    };
    if c.pad0 != 0 {
        return bad("pad0");
    }
    // CR0 (hvm_load_cpu_ctxt's checks, and NW without CD as hvm_set_cr0).
    if c.cr0 & !CR0_VALID != 0 || c.cr0 & CR0_ET == 0 || c.cr0 & (CR0_PE | CR0_PG) == CR0_PG {
        return bad("CR0");
    }
    if c.cr0 & CR0_NW != 0 && c.cr0 & CR0_CD == 0 {
        return bad("CR0.NW without CR0.CD");
    }
    let pg = c.cr0 & CR0_PG != 0;
    // EFER (hvm_efer_valid): known bits only; LMA exactly when LME and paging.
    if c.msr_efer & !(EFER_SCE | EFER_LME | EFER_LMA | EFER_NX) != 0 {
        return bad("EFER bits");
    }
    let lma = c.msr_efer & EFER_LMA != 0;
    if lma != (pg && c.msr_efer & EFER_LME != 0) {
        return bad("EFER.LMA / LME / CR0.PG");
    }
    if c.cr4 & !CR4_VALID != 0 || (lma && c.cr4 & CR4_PAE == 0) {
        return bad("CR4");
    }
    if pg && gpaddr_bits < 64 && c.cr3 >> gpaddr_bits != 0 {
        return bad("CR3 above the guest's physical address width");
    }
    if c.rflags & !RFLAGS_VALID != 0 {
        return bad("RFLAGS reserved bits");
    }
    if c.dr6 >> 32 != 0 || c.dr7 >> 32 != 0 {
        return bad("DR6/DR7");
    }
    if (lma && !canonical(c.rip)) || (!lma && c.rip >> 32 != 0) {
        return bad("RIP");
    }
    // CS: present code segment, limit/G agree, no L with D, L only in long mode.
    let cs = c.cs_arbytes;
    if c.cr0 & CR0_PE != 0 {
        if cs & AR_P == 0 || cs & AR_S == 0 || ar_type(cs) & 8 == 0 || !limit_ok(c.cs_limit, cs) {
            return bad("CS attributes");
        }
        if cs & AR_L != 0 && (!lma || cs & AR_DB != 0) {
            return bad("CS.L");
        }
        // SS: usable writable data with CS's privilege level (non-conforming CS).
        let ss = c.ss_arbytes;
        if ss & AR_P != 0 {
            if ss & AR_S == 0 || ar_type(ss) & 0xa != 2 || !limit_ok(c.ss_limit, ss) {
                return bad("SS attributes");
            }
            if ar_type(cs) & 4 == 0 && ar_dpl(ss) != ar_dpl(cs) {
                return bad("SS.DPL != CS.DPL");
            }
        } else if !lma {
            return bad("SS unusable outside long mode");
        }
        for (limit, ar, base) in [
            (c.ds_limit, c.ds_arbytes, c.ds_base),
            (c.es_limit, c.es_arbytes, c.es_base),
            (c.fs_limit, c.fs_arbytes, c.fs_base),
            (c.gs_limit, c.gs_arbytes, c.gs_base),
        ] {
            if !data_seg_ok(limit, ar, base) {
                return bad("data segment attributes");
            }
        }
        // TR: a present busy TSS (16-bit only outside long mode), S clear.
        let tr = c.tr_arbytes;
        let tr_type_ok = ar_type(tr) == 11 || (!lma && ar_type(tr) == 3);
        if tr & AR_P == 0 || tr & AR_S != 0 || !tr_type_ok || !limit_ok(c.tr_limit, tr) {
            return bad("TR attributes");
        }
        // LDTR: unusable, or a present LDT descriptor.
        let ldtr = c.ldtr_arbytes;
        if ldtr & AR_P != 0
            && (ldtr & AR_S != 0 || ar_type(ldtr) != 2 || !limit_ok(c.ldtr_limit, ldtr))
        {
            return bad("LDTR attributes");
        }
    }

    // Valid. Now what the backends can load.
    let unsupported = |why: &str| {
        log::debug!("HVM restore: CPU record not supported here: {why}");
        Err(Errno::EOPNOTSUPP)
    };
    if c.cr0 & CR0_PE == 0 {
        return unsupported("real mode");
    }
    if c.rflags & RFLAGS_VM != 0 {
        return unsupported("virtual-8086 mode");
    }
    let others = [
        c.rax,
        c.rcx,
        c.rdx,
        c.rbp,
        c.rsi,
        c.rdi,
        c.r8,
        c.r9,
        c.r10,
        c.r11,
        c.r12,
        c.r13,
        c.r14,
        c.r15,
        c.cr2,
        c.dr0,
        c.dr1,
        c.dr2,
        c.dr3,
        c.sysenter_cs,
        c.sysenter_esp,
        c.sysenter_eip,
        c.shadow_gs,
        c.msr_lstar,
        c.msr_star,
        c.msr_cstar,
        c.msr_syscall_mask,
        c.msr_tsc_aux,
    ];
    if others.iter().any(|&r| r != 0) {
        return unsupported("registers other than RIP, RSP, RBX");
    }
    if c.pending_event & (1 << 31) != 0 || c.flags & XEN_X86_FPU_INITIALISED != 0 {
        return unsupported("pending event or FPU state");
    }
    let data = |sel, base, limit, ar| SegState::from_xen(sel, base, limit, ar);
    let ds = data(c.ds_sel, c.ds_base, c.ds_limit, c.ds_arbytes);
    let same = [
        data(c.es_sel, c.es_base, c.es_limit, c.es_arbytes),
        data(c.ss_sel, c.ss_base, c.ss_limit, c.ss_arbytes),
        data(c.fs_sel, c.fs_base, c.fs_limit, c.fs_arbytes),
        data(c.gs_sel, c.gs_base, c.gs_limit, c.gs_arbytes),
    ];
    if same.iter().any(|s| *s != ds) {
        return unsupported("DS, ES, SS, FS, GS not one segment");
    }
    Ok(CpuStart {
        rip: c.rip,
        rsp: c.rsp,
        rbx: c.rbx,
        rflags: c.rflags | 2,
        cr0: c.cr0,
        cr3: c.cr3,
        cr4: c.cr4,
        efer: c.msr_efer,
        cs: SegState::from_xen(c.cs_sel, c.cs_base, c.cs_limit, c.cs_arbytes),
        data: ds,
    })
}

/// A memory type MTRRs accept: UC WC WT WP WB.
fn mtrr_type_ok(t: u64) -> bool {
    matches!(t, 0 | 1 | 4 | 5 | 6)
}

/// `hvm_load_mtrr_msr()`'s checks: variable-range count, default type, PAT,
/// fixed and variable ranges.
fn check_mtrr(m: &hvm_hw_mtrr) -> XenResult<()> {
    if m.msr_mtrr_cap & 0xff > u64::from(MTRR_VCNT) {
        return Err(Errno::EINVAL);
    }
    // def_type: type in bits 7:0, FE bit 10, E bit 11, nothing else.
    let def = m.msr_mtrr_def_type;
    if def & !0xcff != 0 || !mtrr_type_ok(def & 0xff) {
        return Err(Errno::EINVAL);
    }
    // PAT: each byte UC WC WT WP WB UC-.
    if (0..8).any(|i| !matches!((m.msr_pat_cr >> (i * 8)) & 0xff, 0 | 1 | 4 | 5 | 6 | 7)) {
        return Err(Errno::EINVAL);
    }
    if m.msr_mtrr_fixed
        .iter()
        .any(|f| (0..8).any(|i| !mtrr_type_ok((f >> (i * 8)) & 0xff)))
    {
        return Err(Errno::EINVAL);
    }
    for pair in m.msr_mtrr_var.chunks(2) {
        let (base, mask) = (pair[0], pair[1]);
        // An enabled range (mask bit 11) needs a valid type in its base.
        if mask & (1 << 11) != 0 && !mtrr_type_ok(base & 0xff) {
            return Err(Errno::EINVAL);
        }
    }
    Ok(())
}

/// The CPU record `vcpu_hvm()` (libxenguest) sends for a PVH start, shared with
/// the dom0 builder (`xen-pvh-build`); the tests use it.
pub use xen_pvh_build::pvh_cpu_record;

/// Build a context from records (HEADER first, END appended).
pub fn context(records: &[(u16, u16, &[u8])]) -> Vec<u8> {
    let mut out = Vec::new();
    let hdr = hvm_save_header {
        magic: HVM_FILE_MAGIC,
        version: HVM_FILE_VERSION,
        changeset: 0,
        cpuid: 0,
        gtsc_khz: 0,
    };
    push_record(&mut out, HVM_SAVE_CODE_HEADER, 0, &hdr);
    for &(code, instance, bytes) in records {
        let desc = hvm_save_descriptor {
            typecode: code,
            instance,
            length: bytes.len() as u32,
        };
        out.extend_from_slice(desc.as_bytes());
        out.extend_from_slice(bytes);
    }
    out.extend_from_slice(
        hvm_save_descriptor {
            typecode: HVM_SAVE_CODE_END,
            instance: 0,
            length: 0,
        }
        .as_bytes(),
    );
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::common::domain::{DomainTable, HostCaps};
    use crate::common::hypercall::NoExt;
    use crate::common::page_alloc::fake::CountingFrames;
    use crate::common::test_support::baseline;
    use alloc::boxed::Box;

    fn domain(vcpus: u32) -> (DomainTable, u16) {
        let mut t = DomainTable::new(HostCaps::THIS_HYPERVISOR, Box::new(CountingFrames::new(64)));
        let mut cfg = baseline();
        cfg.max_vcpus = vcpus;
        let id = t.create_domain(0, &cfg).unwrap();
        crate::common::domctl::create_vcpus(t.get_mut(id).unwrap(), &mut NoExt).unwrap();
        (t, id)
    }

    fn cpu_bytes(c: &hvm_hw_cpu) -> &[u8] {
        c.as_bytes()
    }

    #[test]
    fn pvh_record_loads_and_brings_vcpu0_up() {
        let (mut t, id) = domain(2);
        let d = t.get_mut(id).unwrap();
        let mtrr = reset_mtrr();
        // libxenguest: per vCPU {HEADER, MTRR, END}, then {HEADER, CPU#0, END}.
        for v in 0..2u16 {
            let ctx = context(&[(HVM_SAVE_CODE_MTRR, v, mtrr.as_bytes())]);
            assert_eq!(load(d, &ctx, 40), Ok(()));
        }
        assert!(
            d.vcpus.iter().all(|v| !v.online),
            "MTRR-only loads down vCPUs"
        );
        let cpu = pvh_cpu_record(0x10_0000, 0x6000);
        let ctx = context(&[(HVM_SAVE_CODE_CPU, 0, cpu_bytes(&cpu))]);
        assert_eq!(load(d, &ctx, 40), Ok(()));
        assert!(d.vcpus[0].online && !d.vcpus[1].online);
        let s = d.hvm_save.take_start(0).unwrap();
        assert_eq!((s.rip, s.rbx, s.cr0, s.efer), (0x10_0000, 0x6000, 0x11, 0));
        assert_eq!(s.cs.attrib, 0xc09b, "VMX layout: G D P S type 0xb");
        assert_eq!((s.data.attrib, s.data.limit), (0xc093, 0xffff_ffff));
        assert_eq!(d.hvm_save.take_start(0), None, "taken once");
        // gethvmcontext gives the CPU record back.
        let saved = save(d, 0);
        assert!(saved.len() <= save_size(d) as usize);
        let mut cur = 0;
        let (h, hdr) = read_entry::<hvm_save_header>(&saved, &mut cur, true).unwrap();
        assert_eq!(
            (h.typecode, hdr.magic),
            (HVM_SAVE_CODE_HEADER, HVM_FILE_MAGIC)
        );
        let (c, rec) = read_entry::<hvm_hw_cpu>(&saved, &mut cur, true).unwrap();
        assert_eq!(
            (c.typecode, c.instance, rec.rip),
            (HVM_SAVE_CODE_CPU, 0, 0x10_0000)
        );
    }

    #[test]
    fn framing_errors() {
        let (mut t, id) = domain(1);
        let d = t.get_mut(id).unwrap();
        assert_eq!(load(d, &[], 40), Err(Errno::ENODATA), "no header");
        let ctx = context(&[]);
        assert_eq!(
            load(d, &ctx[..ctx.len() - 8], 40),
            Err(Errno::ENODATA),
            "no END"
        );
        // MTRR first instead of HEADER.
        let m = reset_mtrr();
        let ctx = context(&[(HVM_SAVE_CODE_MTRR, 0, m.as_bytes())]);
        assert_eq!(load(d, &ctx[32..], 40), Err(Errno::ENODATA));
        let mut bad = context(&[]);
        bad[8] ^= 1; // magic
        assert_eq!(load(d, &bad, 40), Err(Errno::EINVAL));
        // Unknown type, known-but-unmodelled type, vCPU that does not exist.
        assert_eq!(load(d, &context(&[(99, 0, &[])]), 40), Err(Errno::EINVAL));
        assert_eq!(
            load(d, &context(&[(5, 0, &[0; 8])]), 40),
            Err(Errno::EOPNOTSUPP)
        );
        assert_eq!(
            load(d, &context(&[(HVM_SAVE_CODE_MTRR, 1, m.as_bytes())]), 40),
            Err(Errno::EINVAL)
        );
        // MTRR is strict on length; CPU may be short (zero-extended) but not long.
        assert_eq!(
            load(
                d,
                &context(&[(HVM_SAVE_CODE_MTRR, 0, &m.as_bytes()[..8])]),
                40
            ),
            Err(Errno::EINVAL)
        );
        let cpu = pvh_cpu_record(0x1000, 0);
        let mut long = cpu.as_bytes().to_vec();
        long.push(0);
        assert_eq!(
            load(d, &context(&[(HVM_SAVE_CODE_CPU, 0, &long)]), 40),
            Err(Errno::EINVAL)
        );
        // A length running past the buffer.
        let mut ctx = context(&[(HVM_SAVE_CODE_CPU, 0, cpu.as_bytes())]);
        let n = ctx.len();
        ctx.truncate(n - 100);
        assert_eq!(load(d, &ctx, 40), Err(Errno::EINVAL));
        assert!(d.hvm_save.take_start(0).is_none(), "nothing applied");
    }

    /// Each inconsistency alone is -EINVAL (never a failed VM entry).
    #[test]
    fn inconsistent_cpu_records() {
        type Edit = fn(&mut hvm_hw_cpu);
        let rows: &[(&str, Edit)] = &[
            ("pad0", |c| c.pad0 = 1),
            ("CR0 without ET", |c| c.cr0 &= !CR0_ET),
            ("CR0 reserved bit 6", |c| c.cr0 |= 1 << 6),
            ("CR0 bit 32", |c| c.cr0 |= 1 << 32),
            ("CR0.PG without PE", |c| c.cr0 = CR0_PG | CR0_ET),
            ("CR0.NW without CD", |c| c.cr0 |= CR0_NW),
            ("CR4.VMXE", |c| c.cr4 |= 1 << 13),
            ("CR4.OSXSAVE", |c| c.cr4 |= 1 << 18),
            ("EFER.SVME", |c| c.msr_efer |= 1 << 12),
            ("EFER.LMA without paging", |c| {
                c.msr_efer |= EFER_LMA | EFER_LME
            }),
            ("long mode without PAE", |c| {
                c.cr0 |= CR0_PG;
                c.msr_efer = EFER_LME | EFER_LMA;
            }),
            ("paging, LME without LMA", |c| {
                c.cr0 |= CR0_PG;
                c.cr4 |= CR4_PAE;
                c.msr_efer = EFER_LME;
            }),
            ("CR3 above 40 bits", |c| {
                c.cr0 |= CR0_PG;
                c.cr3 = 1 << 45;
            }),
            ("RFLAGS bit 3", |c| c.rflags |= 1 << 3),
            ("RFLAGS bit 22", |c| c.rflags |= 1 << 22),
            ("DR7 bit 32", |c| c.dr7 |= 1 << 32),
            ("RIP above 4 GiB outside long mode", |c| c.rip = 1 << 32),
            ("CS not present", |c| c.cs_arbytes &= !AR_P),
            ("CS a data segment", |c| c.cs_arbytes = 0xc93),
            ("CS system segment", |c| c.cs_arbytes &= !AR_S),
            ("CS limit/G mismatch", |c| c.cs_limit = 0xfff0_0000),
            ("CS limit not a multiple of 4 KiB with G", |c| {
                c.cs_limit = 0xfffe
            }),
            ("CS.L outside long mode", |c| c.cs_arbytes = 0xa9b),
            ("SS read-only", |c| c.ss_arbytes = 0xc91),
            ("SS DPL 3 with CS DPL 0", |c| c.ss_arbytes = 0xcf3),
            ("SS unusable in 32-bit mode", |c| c.ss_arbytes = 0),
            ("DS system type", |c| c.ds_arbytes = 0xc83),
            ("DS execute-only code", |c| c.ds_arbytes = 0xc99),
            ("ES limit/G mismatch", |c| c.es_limit = 0x1000),
            ("TR not present", |c| c.tr_arbytes = 0x0b),
            ("TR available (not busy) TSS", |c| c.tr_arbytes = 0x89),
            ("TR code type", |c| c.tr_arbytes = 0x9b),
            ("LDTR present with TSS type", |c| c.ldtr_arbytes = 0x8b),
        ];
        let (mut t, id) = domain(1);
        let d = t.get_mut(id).unwrap();
        let good = pvh_cpu_record(0x10_0000, 0x6000);
        assert_eq!(check_cpu(&good, 40).map(|_| ()), Ok(()));
        for (what, edit) in rows {
            let mut c = good;
            edit(&mut c);
            let ctx = context(&[(HVM_SAVE_CODE_CPU, 0, c.as_bytes())]);
            assert_eq!(load(d, &ctx, 40), Err(Errno::EINVAL), "{what}");
        }
        assert!(d.hvm_save.take_start(0).is_none());
    }

    /// Valid states the backends cannot load are -EOPNOTSUPP; a 64-bit start is
    /// accepted.
    #[test]
    fn valid_but_unsupported_and_long_mode() {
        let (mut t, id) = domain(1);
        let d = t.get_mut(id).unwrap();
        let good = pvh_cpu_record(0x10_0000, 0x6000);
        type Edit = fn(&mut hvm_hw_cpu);
        let rows: &[(&str, Edit)] = &[
            ("real mode", |c| c.cr0 = CR0_ET),
            ("RAX set", |c| c.rax = 1),
            ("FPU state", |c| c.flags = XEN_X86_FPU_INITIALISED),
            ("different FS", |c| c.fs_base = 0x1000),
            ("pending event", |c| c.pending_event = 1 << 31 | 14),
        ];
        for (what, edit) in rows {
            let mut c = good;
            edit(&mut c);
            let ctx = context(&[(HVM_SAVE_CODE_CPU, 0, c.as_bytes())]);
            assert_eq!(load(d, &ctx, 40), Err(Errno::EOPNOTSUPP), "{what}");
        }
        let mut c = good;
        c.cr0 |= CR0_PG;
        c.cr4 = CR4_PAE;
        c.cr3 = 0x1000;
        c.msr_efer = EFER_LME | EFER_LMA;
        c.cs_arbytes = 0xa9b;
        c.rip = 0xffff_ffff_8000_0000;
        let ctx = context(&[(HVM_SAVE_CODE_CPU, 0, c.as_bytes())]);
        assert_eq!(load(d, &ctx, 40), Ok(()));
        assert_eq!(d.hvm_save.take_start(0).unwrap().cs.attrib, 0xa09b);
        c.rip = 0x0000_8000_0000_0000;
        let ctx = context(&[(HVM_SAVE_CODE_CPU, 0, c.as_bytes())]);
        assert_eq!(load(d, &ctx, 40), Err(Errno::EINVAL), "non-canonical RIP");
    }

    #[test]
    fn mtrr_checks() {
        let (mut t, id) = domain(1);
        let d = t.get_mut(id).unwrap();
        type Edit = fn(&mut hvm_hw_mtrr);
        let rows: &[(&str, Edit)] = &[
            ("9 variable ranges", |m| m.msr_mtrr_cap = 9),
            ("def type 2", |m| m.msr_mtrr_def_type = 2),
            ("def type reserved bit", |m| {
                m.msr_mtrr_def_type = 1 << 12 | 6
            }),
            ("PAT type 2", |m| m.msr_pat_cr = 2),
            ("fixed type 3", |m| m.msr_mtrr_fixed[4] = 3 << 16),
            ("enabled var range type 7", |m| {
                m.msr_mtrr_var[0] = 7;
                m.msr_mtrr_var[1] = 1 << 11;
            }),
        ];
        for (what, edit) in rows {
            let mut m = reset_mtrr();
            edit(&mut m);
            let ctx = context(&[(HVM_SAVE_CODE_MTRR, 0, m.as_bytes())]);
            assert_eq!(load(d, &ctx, 40), Err(Errno::EINVAL), "{what}");
        }
        // libxenguest's: write-back default, enabled.
        let mut m = reset_mtrr();
        m.msr_mtrr_def_type = 6 | 1 << 11;
        let ctx = context(&[(HVM_SAVE_CODE_MTRR, 0, m.as_bytes())]);
        assert_eq!(load(d, &ctx, 40), Ok(()));
    }
}
