//! `boot.cmd` `test=svm-selftest`: a built-in 64-bit guest run on the vCPU
//! interface before the real PVH guests and scheduler exist. It exercises CPUID
//! (the Xen leaves), the hypercall-page MSR and page, VMMCALL directly, console_io,
//! an unknown hypercall, REP OUTSB to port 0xE9, HLT, `SCHEDOP_shutdown`, and
//! measures a null hypercall (`xen_version(XENVER_version)`) against a CPUID exit
//! round trip with `rdtsc` in the guest. A second domain (a domU) touches memory
//! outside its p2m and must be crashed alone.
//!
//! The run loop here is the minimal single-vCPU one the vCPU interface's users
//! follow: `prepare_entry` → `run` → `handle`.

use alloc::boxed::Box;
use alloc::format;
use alloc::string::String;
use alloc::sync::Arc;

use xen_public_abi::arch_x86::{
    xen_arch_domainconfig, XEN_X86_EMU_IOAPIC, XEN_X86_EMU_LAPIC, XEN_X86_EMU_VPCI,
};
use xen_public_abi::domctl::{xen_domctl_createdomain, XEN_DOMCTL_CDF_hap, XEN_DOMCTL_CDF_hvm};
use zerocopy::FromZeros;

use super::exit::{self, ExitEnv, HvmVcpuState};
use super::svm::npt;
use super::vcpu::{ExitOutcome, InitialState, PagingState, Segment, Vcpu};
use crate::arch::x86_64::{frame, paging, time};
use crate::common::console_io::{Console, ConsoleSink};
use crate::common::dispatch::XenExt;
use crate::common::domain::Domain;
use crate::common::domain::{DomainTable, HostCaps};
use crate::common::domctl::create_vcpus;
use crate::common::guest_access::{GuestAccess, GuestMemory, GuestRam, MachineMemory};
use crate::common::hypercall::{Clock, Hypervisor, NoExt};
use crate::common::memory::{P2mAccess, ViewId};
use crate::common::page_alloc::{Mfn, PageAllocator};
use xen_public_abi::hvm::hvm_op::{HVMOP_altp2m_switch_p2m, HVMOP_ALTP2M_INTERFACE_VERSION};
use xen_public_abi::hvm::params::{
    XEN_ALTP2M_mixed, HVM_PARAM_ALTP2M, HVM_PARAM_CALLBACK_IRQ, HVM_PARAM_CALLBACK_TYPE_VECTOR,
};
use xen_public_abi::memory::XENMEM_access_rwx;
use xen_public_abi::xen::DOMID_SELF;
use xen_public_abi::{Errno, XenResult};

core::arch::global_asm!(
    ".global svm_selftest_guest_start",
    ".global svm_selftest_guest_end",
    "svm_selftest_guest_start:",
    "mov r15, rbx",
    "cmp r15, 1",
    "je 8f",
    "cmp r15, 2",
    "je 9f",
    "cmp r15, 3",
    "je 27f",
    "cmp r15, 4",
    "je 31f",
    // The Xen CPUID leaves.
    "mov eax, 0x40000000",
    "xor ecx, ecx",
    "cpuid",
    "mov [0x5000], rax",
    "mov [0x5008], rbx",
    "mov [0x5010], rcx",
    "mov [0x5018], rdx",
    "mov eax, 0x40000001",
    "xor ecx, ecx",
    "cpuid",
    "mov [0x5020], rax",
    "mov eax, 0x40000002",
    "xor ecx, ecx",
    "cpuid",
    "mov [0x5080], rax",
    "mov [0x5088], rbx",
    "mov eax, 0x40000004",
    "xor ecx, ecx",
    "cpuid",
    "mov [0x5028], rax",
    "mov [0x5030], rbx",
    "mov [0x5038], rcx",
    // Hypercall page at 0x6000, then xen_version(XENVER_version) through it.
    "mov ecx, 0x40000000",
    "mov eax, 0x6000",
    "xor edx, edx",
    "wrmsr",
    "xor edi, edi",
    "xor esi, esi",
    "mov eax, 0x6000 + 17 * 32",
    "call rax",
    "mov [0x5040], rax",
    // The same with VMMCALL directly.
    "mov eax, 17",
    "xor edi, edi",
    "xor esi, esi",
    "vmmcall",
    "mov [0x5048], rax",
    // console_io(CONSOLEIO_write, len, msg).
    "mov eax, 18",
    "xor edi, edi",
    "lea rsi, [rip + 3f]",
    "lea rdx, [rip + 2f]",
    "sub rsi, rdx",
    "vmmcall",
    "mov [0x5050], rax",
    // An unassigned hypercall number.
    "mov eax, 60",
    "vmmcall",
    "mov [0x5058], rax",
    // REP OUTSB to port 0xE9.
    "lea rcx, [rip + 5f]",
    "lea rsi, [rip + 4f]",
    "sub rcx, rsi",
    "mov dx, 0xe9",
    "rep outsb",
    // 10 rounds of 100 null hypercalls then 100 CPUID exits, each batch timed
    // with rdtsc; the fastest batch of each kind is kept (the host is shared).
    "mov qword ptr [0x5060], -1",
    "mov qword ptr [0x5068], -1",
    "mov qword ptr [0x5070], 100",
    "mov r14, 10",
    "22:",
    "mov r12, 100",
    "lfence",
    "rdtsc",
    "shl rdx, 32",
    "or rax, rdx",
    "mov r13, rax",
    "23:",
    "mov eax, 17",
    "xor edi, edi",
    "xor esi, esi",
    "vmmcall",
    "dec r12",
    "jnz 23b",
    "lfence",
    "rdtsc",
    "shl rdx, 32",
    "or rax, rdx",
    "sub rax, r13",
    "cmp rax, [0x5060]",
    "jae 24f",
    "mov [0x5060], rax",
    "24:",
    "mov r12, 100",
    "lfence",
    "rdtsc",
    "shl rdx, 32",
    "or rax, rdx",
    "mov r13, rax",
    "25:",
    "xor eax, eax",
    "xor ecx, ecx",
    "cpuid",
    "dec r12",
    "jnz 25b",
    "lfence",
    "rdtsc",
    "shl rdx, 32",
    "or rax, rdx",
    "sub rax, r13",
    "cmp rax, [0x5068]",
    "jae 26f",
    "mov [0x5068], rax",
    "26:",
    "dec r14",
    "jnz 22b",
    // Descriptor tables the test wrote (GDT with ring-3 segments, IDT).
    "lgdt [0x7100]",
    "lidt [0x7110]",
    // The upcall (per-vCPU vector 0xF3, raised before the first entry) arrives
    // once interrupts are on: an interrupt-window exit, then the injection.
    "sti",
    "nop",
    "nop",
    "cli",
    // gfn 0xB is read-only in the altp2m view the vCPU runs on: #VE, whose handler
    // switches to view 0, and the write is retried there.
    "mov qword ptr [0xB000], 0x77",
    "mov rax, [0xB000]",
    "mov [0x50B8], rax",
    // A hypercall from CPL 3 gets -EPERM.
    "mov rax, rsp",
    "push 0x2b",
    "push rax",
    "pushfq",
    "push 0x23",
    "lea rax, [rip + svm_selftest_user_code]",
    "push rax",
    "iretq",
    "svm_selftest_after_user:",
    // The end: HLT with interrupts off. Xen's `hvm_hlt` takes the vCPU down
    // (`hvm_vcpu_down`) and the last vCPU down powers the domain off, the
    // outcome the "shutdown" check wants.
    "mov qword ptr [0x5078], 1",
    "cli",
    "hlt",
    "ud2",
    // The domU: write outside its memory (3 MiB; it has 2).
    "8:",
    "mov qword ptr [0x300000], 1",
    "ud2",
    // The other domU: no IDT, then an exception: triple fault.
    "9:",
    "lidt [0x7120]",
    "int3",
    "ud2",
    // The callback-via domU: interrupts on, CPUID exits until the callback
    // vector has run twice (it is offered again while evtchn_upcall_pending
    // stays set), then shutdown(poweroff).
    "27:",
    "lgdt [0x7100]",
    "lidt [0x7110]",
    "sti",
    "mov r12, 10000",
    "28:",
    "cmp qword ptr [0x50C8], 2",
    "jae 29f",
    "xor eax, eax",
    "xor ecx, ecx",
    "cpuid",
    "dec r12",
    "jnz 28b",
    "29:",
    "cli",
    "mov dword ptr [0x7000], 0",
    "mov eax, 29",
    "mov edi, 2",
    "mov esi, 0x7000",
    "vmmcall",
    "ud2",
    // HVM_PARAM_CALLBACK_IRQ vector: no EOI; the first run leaves
    // evtchn_upcall_pending (shared_info at 0xC000, vcpu_info[0] byte 0) set,
    // the second clears it.
    ".global svm_selftest_callback",
    "svm_selftest_callback:",
    "inc qword ptr [0x50C8]",
    "cmp qword ptr [0x50C8], 2",
    "jb 30f",
    "mov byte ptr [0xC000], 0",
    "30:",
    "iretq",
    // The execute-only domU: fetch from gfn 0xD, execute-only in its view.
    "31:",
    "mov eax, 0xD000",
    "call rax",
    "ud2",
    ".global svm_selftest_user_code",
    "svm_selftest_user_code:",
    "mov eax, 17",
    "xor edi, edi",
    "xor esi, esi",
    "vmmcall",
    "mov [0x50C0], rax",
    "int 0x80",
    // int 0x80 (DPL 3 gate): back to ring 0, drop the frame.
    ".global svm_selftest_int80",
    "svm_selftest_int80:",
    "add rsp, 40",
    "jmp svm_selftest_after_user",
    // #VE: record the information area, switch to view 0, free the area.
    ".global svm_selftest_ve",
    "svm_selftest_ve:",
    "mov qword ptr [0x5090], 1",
    "mov rax, [0xA018]",
    "mov [0x5098], rax",
    "mov eax, [0xA000]",
    "mov [0x50A0], rax",
    "mov eax, 34",
    "mov edi, 25",
    "mov esi, 0x7200",
    "vmmcall",
    "mov [0x50A8], rax",
    "mov dword ptr [0xA004], 0",
    "iretq",
    // The event-channel upcall (per-vCPU vector): record, EOI the x2APIC.
    ".global svm_selftest_upcall",
    "svm_selftest_upcall:",
    "mov qword ptr [0x50B0], 1",
    "mov ecx, 0x80b",
    "xor eax, eax",
    "xor edx, edx",
    "wrmsr",
    "iretq",
    "2:",
    ".ascii \"svm-selftest: console_io from the guest\\n\"",
    "3:",
    "4:",
    ".ascii \"svm-selftest: port 0xE9 from the guest\\n\"",
    "5:",
    "svm_selftest_guest_end:",
);

unsafe extern "C" {
    static svm_selftest_guest_start: u8;
    static svm_selftest_guest_end: u8;
    static svm_selftest_ve: u8;
    static svm_selftest_upcall: u8;
    static svm_selftest_int80: u8;
    static svm_selftest_callback: u8;
}

/// Guest-physical address of a symbol of the guest blob.
fn guest_addr(sym: *const u8) -> u64 {
    let start = &raw const svm_selftest_guest_start;
    CODE_GPA + (sym as u64 - start as u64)
}

/// A 64-bit interrupt gate (type 0xE) to `target` in the 0x08 code segment.
fn idt_gate(target: u64, dpl: u64) -> [u64; 2] {
    let lo =
        (target & 0xffff) | 0x08 << 16 | (0x8E | dpl << 5) << 40 | ((target >> 16) & 0xffff) << 48;
    [lo, target >> 32]
}

const GUEST_FRAMES: u64 = 512;
const CODE_GPA: u64 = 0x10000;
const RESULTS_GPA: u64 = 0x5000;
const STACK_TOP: u64 = 0x80000;
/// Exits per timed batch (the fastest of 10 batches of each kind is kept).
const ITERATIONS: u64 = 100;
const UPCALL_VECTOR: u8 = 0xF3;
const CALLBACK_VECTOR: u8 = 0xF4;

/// Machine memory through the physical map (frames this test gave the domains).
struct PhysMap;

impl MachineMemory for PhysMap {
    fn read(&self, mfn: u64, offset: usize, buf: &mut [u8]) -> bool {
        if offset + buf.len() > 4096 {
            return false;
        }
        // SAFETY: `mfn` is a frame of the test's domains (p2m entries or the
        // shared_info frame from the frame allocator), inside the physical map.
        unsafe {
            core::ptr::copy_nonoverlapping(
                paging::phys_to_virt(mfn << 12).add(offset),
                buf.as_mut_ptr(),
                buf.len(),
            )
        };
        true
    }

    fn write(&self, mfn: u64, offset: usize, buf: &[u8]) -> bool {
        if offset + buf.len() > 4096 {
            return false;
        }
        // SAFETY: as in `read`.
        unsafe {
            core::ptr::copy_nonoverlapping(
                buf.as_ptr(),
                paging::phys_to_virt(mfn << 12).add(offset),
                buf.len(),
            )
        };
        true
    }

    fn cmpxchg_u32(&self, mfn: u64, offset: usize, old: u32, new: u32) -> Option<u32> {
        if !offset.is_multiple_of(4) || offset + 4 > 4096 {
            return None;
        }
        // SAFETY: as in `read`; the address is 4-byte aligned.
        let a = unsafe {
            &*(paging::phys_to_virt(mfn << 12).add(offset) as *const core::sync::atomic::AtomicU32)
        };
        Some(
            match a.compare_exchange(
                old,
                new,
                core::sync::atomic::Ordering::SeqCst,
                core::sync::atomic::Ordering::SeqCst,
            ) {
                Ok(v) | Err(v) => v,
            },
        )
    }
}

struct Frames;

impl PageAllocator for Frames {
    fn alloc_frame(&mut self) -> Option<Mfn> {
        frame::alloc_zeroed().map(|pa| pa >> 12)
    }
    fn free_frame(&mut self, mfn: Mfn) {
        frame::free_contiguous(mfn << 12, 1);
    }
}

struct TscClock;

impl Clock for TscClock {
    fn now_ns(&self) -> u64 {
        (time::rdtsc() as u128 * 1_000_000_000 / time::tsc_hz().max(1) as u128) as u64
    }
}

struct LogSink;

impl ConsoleSink for LogSink {
    fn write(&mut self, bytes: &[u8]) {
        let s = String::from_utf8_lossy(bytes);
        let s = s.trim_end();
        if !s.is_empty() {
            log::info!("{s}");
        }
    }
}

/// The guest's memory through the stage-2 tables it runs on: guest-virtual =
/// guest-physical (the test guest identity-maps its memory).
struct IdentityAccess {
    root: u64,
}

impl IdentityAccess {
    fn each(
        &self,
        gva: u64,
        len: usize,
        mut f: impl FnMut(u64, core::ops::Range<usize>),
    ) -> XenResult<()> {
        let end = gva.checked_add(len as u64).ok_or(Errno::EFAULT)?;
        let mut cur = gva;
        while cur < end {
            let chunk_end = (((cur >> 12) + 1) << 12).min(end);
            let pa = npt::translate(self.root, cur).ok_or(Errno::EFAULT)?;
            f(pa, (cur - gva) as usize..(chunk_end - gva) as usize);
            cur = chunk_end;
        }
        Ok(())
    }
}

impl GuestAccess for IdentityAccess {
    fn copy_from_guest(&mut self, gva: u64, buf: &mut [u8]) -> XenResult<()> {
        self.each(gva, buf.len(), |pa, r| {
            let n = r.len();
            // SAFETY: `pa` came from the guest's stage-2 tables: one of its RAM
            // frames, in the physical map; the chunk stays inside that page.
            unsafe {
                core::ptr::copy_nonoverlapping(paging::phys_to_virt(pa), buf[r].as_mut_ptr(), n)
            }
        })
    }

    fn copy_to_guest(&mut self, gva: u64, buf: &[u8]) -> XenResult<()> {
        self.each(gva, buf.len(), |pa, r| {
            let n = r.len();
            // SAFETY: as in `copy_from_guest`.
            unsafe { core::ptr::copy_nonoverlapping(buf[r].as_ptr(), paging::phys_to_virt(pa), n) }
        })
    }
}

/// A PVH domain: dom0 with LAPIC|IOAPIC|VPCI, a domU with the LAPIC only.
fn config(dom0: bool) -> xen_domctl_createdomain {
    let mut c = xen_domctl_createdomain::new_zeroed();
    c.flags = XEN_DOMCTL_CDF_hvm | XEN_DOMCTL_CDF_hap;
    c.max_vcpus = 1;
    c.max_evtchn_port = 1023;
    c.max_grant_frames = -1;
    c.max_maptrack_frames = -1;
    c.grant_opts = 1;
    c.arch = xen_arch_domainconfig {
        emulation_flags: if dom0 {
            XEN_X86_EMU_LAPIC | XEN_X86_EMU_IOAPIC | XEN_X86_EMU_VPCI
        } else {
            XEN_X86_EMU_LAPIC
        },
        misc_flags: 0,
    };
    c
}

/// Build domain `domid` with 2 MiB of RAM, identity page tables and the guest code.
fn build(hv: &mut Hypervisor, machine: &PhysMap, domid: u16) -> Result<(), String> {
    let id = hv
        .domains
        .create_boot_domain(Some(domid), &config(domid == 0), domid == 0)
        .map_err(|e| format!("createdomain: {e:?}"))?;
    let d = hv.domains.get_mut(id).ok_or("domain vanished")?;
    create_vcpus(d, &mut NoExt).map_err(|e| format!("vcpus: {e:?}"))?;
    d.vcpus[0].online = true;
    d.unpause_by_systemcontroller()
        .map_err(|e| format!("unpause: {e:?}"))?;
    for gfn in 0..GUEST_FRAMES {
        let pa = frame::alloc_zeroed().ok_or("out of frames")?;
        d.hvm
            .p2m
            .set_host_entry(gfn, pa >> 12, P2mAccess::RWX)
            .map_err(|e| format!("p2m: {e:?}"))?;
    }
    let mut ram = GuestRam {
        p2m: &d.hvm.p2m,
        machine,
    };
    // PML4[0] → PDPT at 0x2000, PDPT[0] → PD at 0x3000, PD: 512 × 2 MiB identity.
    // User-accessible (U/S) so the CPL-3 step can run.
    ram.write_gpa(0x1000, &(0x2000u64 | 7).to_le_bytes())
        .map_err(|_| "pml4")?;
    ram.write_gpa(0x2000, &(0x3000u64 | 7).to_le_bytes())
        .map_err(|_| "pdpt")?;
    for i in 0..512u64 {
        let e = (i << 21) | 0x87; // P, RW, U/S, PS
        ram.write_gpa(0x3000 + i * 8, &e.to_le_bytes())
            .map_err(|_| "pd")?;
    }
    // SAFETY: the two symbols delimit the guest code blob in our .text.
    let code = unsafe {
        let start = &raw const svm_selftest_guest_start;
        let end = &raw const svm_selftest_guest_end;
        core::slice::from_raw_parts(start, end as usize - start as usize)
    };
    ram.write_gpa(CODE_GPA, code).map_err(|_| "code")?;
    // GDT at 0x9000: 0x08 code64, 0x10 code32, 0x18 data, 0x20 user code64,
    // 0x28 user data. IDT at 0x8000: #VE, int 0x80 (DPL 3), the upcall vector.
    let gdt: [u64; 6] = [
        0,
        0x00AF_9A00_0000_FFFF,
        0x00CF_9A00_0000_FFFF,
        0x00CF_9200_0000_FFFF,
        0x00AF_FA00_0000_FFFF,
        0x00CF_F200_0000_FFFF,
    ];
    for (i, e) in gdt.iter().enumerate() {
        ram.write_gpa(0x9000 + 8 * i as u64, &e.to_le_bytes())
            .map_err(|_| "gdt")?;
    }
    let (ve, upcall, int80, callback) = (
        guest_addr(&raw const svm_selftest_ve),
        guest_addr(&raw const svm_selftest_upcall),
        guest_addr(&raw const svm_selftest_int80),
        guest_addr(&raw const svm_selftest_callback),
    );
    for (vector, target, dpl) in [
        (20u64, ve, 0),
        (0x80, int80, 3),
        (UPCALL_VECTOR as u64, upcall, 0),
        (CALLBACK_VECTOR as u64, callback, 0),
    ] {
        let g = idt_gate(target, dpl);
        ram.write_gpa(0x8000 + vector * 16, &g[0].to_le_bytes())
            .map_err(|_| "idt")?;
        ram.write_gpa(0x8008 + vector * 16, &g[1].to_le_bytes())
            .map_err(|_| "idt")?;
    }
    // Pseudo-descriptors: GDTR at 0x7100, IDTR at 0x7110, an empty IDTR at 0x7120.
    let mut d = [0u8; 10];
    d[0..2].copy_from_slice(&(8 * gdt.len() as u16 - 1).to_le_bytes());
    d[2..10].copy_from_slice(&0x9000u64.to_le_bytes());
    ram.write_gpa(0x7100, &d).map_err(|_| "gdtr")?;
    d[0..2].copy_from_slice(&0x0fffu16.to_le_bytes());
    d[2..10].copy_from_slice(&0x8000u64.to_le_bytes());
    ram.write_gpa(0x7110, &d).map_err(|_| "idtr")?;
    // The TSS the initial TR points at is at gpa 0: RSP0 (offset 4) for int 0x80.
    ram.write_gpa(4, &0x70000u64.to_le_bytes())
        .map_err(|_| "tss")?;
    // HVMOP_altp2m { version 1, cmd switch_p2m, domain DOMID_SELF, view 0 }.
    let mut op = [0u8; 24];
    op[0..4].copy_from_slice(&HVMOP_ALTP2M_INTERFACE_VERSION.to_le_bytes());
    op[4..8].copy_from_slice(&HVMOP_altp2m_switch_p2m.to_le_bytes());
    op[8..10].copy_from_slice(&DOMID_SELF.to_le_bytes());
    ram.write_gpa(0x7200, &op).map_err(|_| "altp2m op")?;
    if domid == 0 {
        setup_events_and_altp2m(d_of(hv, domid)?)?;
    }
    if domid == 3 {
        setup_callback(d_of(hv, domid)?, machine)?;
    }
    if domid == 4 {
        setup_exec_only(d_of(hv, domid)?)?;
    }
    Ok(())
}

fn d_of(hv: &mut Hypervisor, domid: u16) -> Result<&mut Domain, String> {
    hv.domains
        .get_mut(domid)
        .ok_or_else(|| String::from("domain vanished"))
}

/// dom0 of the test: the per-vCPU upcall vector with an upcall raised, and
/// altp2m (mixed) with view 1 making gfn 0xB read-only with #VE enabled to the
/// information page at gfn 0xA; vCPU 0 starts on view 1.
fn setup_events_and_altp2m(d: &mut Domain) -> Result<(), String> {
    fn e(what: &'static str) -> impl Fn(Errno) -> String {
        move |x| format!("{what}: {x:?}")
    }
    d.hvm.vcpus[0].evtchn_upcall_vector = UPCALL_VECTOR;
    d.vcpus[0].upcall_raised = true;
    d.hvm
        .set_param_raw(HVM_PARAM_ALTP2M, XEN_ALTP2M_mixed)
        .map_err(e("altp2m param"))?;
    d.hvm.p2m.enable_altp2m();
    let idx = d
        .hvm
        .p2m
        .init_next_altp2m(XENMEM_access_rwx)
        .map_err(e("altp2m view"))?;
    let view = ViewId::Alt(idx);
    d.hvm.p2m.set_mem_access_one(view, 0xB, P2mAccess::R);
    d.hvm
        .p2m
        .set_suppress_ve_one(view, 0xB, false)
        .map_err(e("suppress ve"))?;
    if !d.hvm.p2m.switch_vcpu_altp2m_by_id(0, idx) {
        return Err(String::from("switch to the view refused"));
    }
    d.hvm.vcpus[0].veinfo_gfn = Some(0xA);
    log::info!("svm-selftest: d0 on altp2m view {idx}, gfn 0xb read-only, #VE info at gfn 0xa");
    Ok(())
}

/// The callback-via domU: shared_info at gfn 0xC with vcpu_info[0]'s
/// `evtchn_upcall_pending` set, `HVM_PARAM_CALLBACK_IRQ` = vector type, 0xF4.
fn setup_callback(d: &mut Domain, machine: &PhysMap) -> Result<(), String> {
    let mut ram = GuestRam {
        p2m: &d.hvm.p2m,
        machine,
    };
    d.evtchn
        .map_shared_info(&mut ram, Some(0xC))
        .map_err(|e| format!("shared_info: {e:?}"))?;
    ram.write_gpa(0xC000, &[1]).map_err(|_| "upcall pending")?;
    d.hvm
        .set_param_raw(
            HVM_PARAM_CALLBACK_IRQ,
            HVM_PARAM_CALLBACK_TYPE_VECTOR << 56 | CALLBACK_VECTOR as u64,
        )
        .map_err(|e| format!("callback param: {e:?}"))?;
    Ok(())
}

/// The execute-only domU: altp2m view 1 maps gfn 0xD execute-only, which NPT
/// cannot express.
fn setup_exec_only(d: &mut Domain) -> Result<(), String> {
    d.hvm
        .set_param_raw(HVM_PARAM_ALTP2M, XEN_ALTP2M_mixed)
        .map_err(|e| format!("altp2m param: {e:?}"))?;
    d.hvm.p2m.enable_altp2m();
    let idx = d
        .hvm
        .p2m
        .init_next_altp2m(XENMEM_access_rwx)
        .map_err(|e| format!("altp2m view: {e:?}"))?;
    d.hvm
        .p2m
        .set_mem_access_one(ViewId::Alt(idx), 0xD, P2mAccess::X);
    if !d.hvm.p2m.switch_vcpu_altp2m_by_id(0, idx) {
        return Err(String::from("switch to the view refused"));
    }
    Ok(())
}

/// Run vCPU 0 of `domid` until its domain stops; returns the last outcome.
/// Build domU `domid`, give it a vCPU entering at `st` with RBX = its id (the
/// built-in guest's role), and run it to its outcome. `None`: it could not be built.
fn boot_and_run(
    hv: &mut Hypervisor,
    ext: &mut XenExt,
    machine: &PhysMap,
    st: &mut InitialState,
    domid: u16,
) -> Option<ExitOutcome> {
    if let Err(e) = build(hv, machine, domid) {
        log::error!("svm-selftest: building d{domid}: {e}");
        return None;
    }
    let mut vcpu = match super::new_vcpu() {
        Ok(v) => v,
        Err(e) => {
            log::error!("svm-selftest: no vCPU: {e:?}");
            return None;
        }
    };
    st.rbx = u64::from(domid);
    vcpu.set_initial_state(st);
    Some(run(hv, ext, &mut *vcpu, domid))
}

fn run(hv: &mut Hypervisor, ext: &mut XenExt, vcpu: &mut dyn Vcpu, domid: u16) -> ExitOutcome {
    let mut st = HvmVcpuState::new(domid, 0);
    let mut blocks = 0;
    for _ in 0..1_000_000 {
        if let Err(o) = exit::prepare_entry(vcpu, hv, ext, &mut st) {
            return o;
        }
        let e = vcpu.run();
        let mut guest = IdentityAccess {
            root: vcpu.stage2_root(),
        };
        let mut env = ExitEnv {
            hv,
            ext,
            guest: &mut guest,
            state: &mut st,
        };
        match exit::handle(vcpu, e, &mut env) {
            ExitOutcome::Continue | ExitOutcome::Yield => {}
            ExitOutcome::Block => {
                blocks += 1;
                log::info!("svm-selftest: d{domid} blocked (HLT); nothing else to run, waking it");
                if let Some(v) = hv.domains.get_mut(domid).and_then(|d| d.vcpu_mut(0)) {
                    v.blocked = false;
                }
                if blocks > 10 {
                    return exit::crash_domain(hv, ext, domid, "selftest: blocked again and again");
                }
            }
            o @ (ExitOutcome::Shutdown { .. } | ExitOutcome::Crashed) => return o,
        }
        exit::drain_actions(hv, ext);
    }
    exit::crash_domain(hv, ext, domid, "selftest: did not finish within 1e6 exits")
}

/// `test=svm-selftest`: returns whether every check passed.
pub fn run_selftest() -> bool {
    if let Err(e) = super::cpu_enable() {
        log::error!("svm-selftest: cannot enable virtualization: {e:?}");
        return false;
    }
    let machine = Arc::new(PhysMap);
    let mut domains = DomainTable::new(HostCaps::THIS_HYPERVISOR, Box::new(Frames));
    domains.set_cpu_policies(super::system_cpu_policies());
    let mut hv = Hypervisor::new(domains, Console::new(Box::new(LogSink)), Box::new(TscClock));
    let mut ext = XenExt::new(machine.clone(), Box::new(TscClock));
    let mut ok = true;
    let mut check = |name: &str, pass: bool, why: String| {
        if pass {
            log::info!("RESULT svm-selftest.{name} PASS");
        } else {
            log::error!("RESULT svm-selftest.{name} FAIL {why}");
            ok = false;
        }
    };

    // dom0: everything, then shutdown(poweroff).
    if let Err(e) = build(&mut hv, &machine, 0) {
        log::error!("svm-selftest: building d0: {e}");
        return false;
    }
    let mut vcpu = match super::new_vcpu() {
        Ok(v) => v,
        Err(e) => {
            log::error!("svm-selftest: no vCPU: {e:?}");
            return false;
        }
    };
    let mut st = InitialState::pvh(CODE_GPA, 0);
    st.rsp = STACK_TOP;
    st.cr0 = PagingState::CR0_PE | PagingState::CR0_PG | 1 << 4 | 1 << 16;
    st.cr3 = 0x1000;
    st.cr4 = PagingState::CR4_PAE;
    st.efer = 1 << 8 | PagingState::EFER_LMA;
    st.cs = Segment::code64(0x08);
    vcpu.set_initial_state(&st);
    let t0 = time::rdtsc();
    let outcome = run(&mut hv, &mut ext, &mut *vcpu, 0);
    let ms = (time::rdtsc() - t0) * 1000 / time::tsc_hz().max(1);
    log::info!("svm-selftest: d0 ended {outcome:?} after {ms} ms");
    check(
        "shutdown",
        outcome == ExitOutcome::Shutdown { reason: 0 },
        format!("{outcome:?}"),
    );

    let mut r = [0u64; 25];
    if let Some(d) = hv.domains.get(0) {
        let ram = GuestRam {
            p2m: &d.hvm.p2m,
            machine: &*machine,
        };
        for (i, slot) in r.iter_mut().enumerate() {
            let mut b = [0u8; 8];
            if ram.read_gpa(RESULTS_GPA + 8 * i as u64, &mut b).is_ok() {
                *slot = u64::from_le_bytes(b);
            }
        }
    }
    let ver = (4u64 << 16) | 17;
    check(
        "cpuid-signature",
        r[0] == 0x4000_0005 && r[1] == 0x566e_6558 && r[2] == 0x6558_4d4d && r[3] == 0x4d4d_566e,
        format!("{:x} {:x} {:x} {:x}", r[0], r[1], r[2], r[3]),
    );
    check("cpuid-version", r[4] == ver, format!("{:#x}", r[4]));
    check(
        "cpuid-msr-leaf",
        r[16] == 1 && r[17] == 0x4000_0000,
        format!("{:#x} {:#x}", r[16], r[17]),
    );
    check(
        "cpuid-hvm-leaf",
        r[5] & 0x18 == 0x18 && r[5] & 0x40 == 0 && r[6] == 0 && r[7] == 0,
        format!("{:#x} {:#x} {:#x}", r[5], r[6], r[7]),
    );
    check("hypercall-page", r[8] == ver, format!("{:#x}", r[8]));
    check("vmmcall", r[9] == ver, format!("{:#x}", r[9]));
    check("console_io", r[10] == 0, format!("{}", r[10] as i64));
    check("enosys", r[11] as i64 == -38, format!("{}", r[11] as i64));
    // Reached the final HLT (with IF = 0), which powered the domain off: the
    // "shutdown" check above.
    check("hlt", r[15] == 1, format!("{}", r[15]));
    check("upcall-vector", r[22] == 1, format!("{}", r[22]));
    check(
        "altp2m-ve",
        r[18] == 1 && r[19] == 0xB000 && r[20] == 48 && r[21] == 0 && r[23] == 0x77,
        format!(
            "taken {} gpa {:#x} reason {} switch {} value {:#x}",
            r[18], r[19], r[20], r[21] as i64, r[23]
        ),
    );
    check(
        "cpl3-eperm",
        r[24] as i64 == -1,
        format!("{}", r[24] as i64),
    );
    let n = r[14].max(1);
    check("iterations", r[14] == ITERATIONS, format!("{}", r[14]));
    let (hc, cp) = (r[12] / n, r[13] / n);
    log::info!("MEASURE svm.null_hypercall {hc} cycles");
    log::info!("MEASURE svm.cpuid_exit {cp} cycles");
    if let Some(pct) = (hc * 100).checked_div(cp) {
        log::info!(
            "MEASURE svm.null_hypercall_per_cpuid_exit {}.{:02} ratio",
            pct / 100,
            pct % 100
        );
    }
    let tsc_mhz = time::tsc_hz() / 1_000_000;
    if let (Some(h), Some(c)) = (
        (hc * 1000).checked_div(tsc_mhz),
        (cp * 1000).checked_div(tsc_mhz),
    ) {
        log::info!("MEASURE svm.null_hypercall_ns {h} ns");
        log::info!("MEASURE svm.cpuid_exit_ns {c} ns");
    }
    drop(vcpu);

    // A domU that writes outside its memory is crashed; the hypervisor goes on.
    let Some(outcome) = boot_and_run(&mut hv, &mut ext, &machine, &mut st, 1) else {
        return false;
    };
    let crashed = hv
        .domains
        .get(1)
        .is_some_and(|d| d.shutdown.code == xen_public_abi::sched::SHUTDOWN_crash);
    check(
        "npf-crash",
        outcome == ExitOutcome::Crashed && crashed,
        format!("{outcome:?}"),
    );

    // A domU that triple-faults is crashed alone.
    let Some(outcome) = boot_and_run(&mut hv, &mut ext, &machine, &mut st, 2) else {
        return false;
    };
    check(
        "triple-fault-crash",
        outcome == ExitOutcome::Crashed,
        format!("{outcome:?}"),
    );

    // A domU with the HVM_PARAM_CALLBACK_IRQ vector: level-like, no EOI.
    let Some(outcome) = boot_and_run(&mut hv, &mut ext, &machine, &mut st, 3) else {
        return false;
    };
    let mut count = [0u8; 8];
    if let Some(d) = hv.domains.get(3) {
        let ram = GuestRam {
            p2m: &d.hvm.p2m,
            machine: &*machine,
        };
        let _ = ram.read_gpa(0x50C8, &mut count);
    }
    let count = u64::from_le_bytes(count);
    check(
        "callback-vector-level",
        outcome == ExitOutcome::Shutdown { reason: 0 } && count == 2,
        format!("{outcome:?}, handler ran {count} times"),
    );

    // A domU whose view has an execute-only page NPT cannot express: crashed
    // with a reason instead of faulting forever.
    let Some(outcome) = boot_and_run(&mut hv, &mut ext, &machine, &mut st, 4) else {
        return false;
    };
    check(
        "inexpressible-rights-crash",
        outcome == ExitOutcome::Crashed,
        format!("{outcome:?}"),
    );
    let d0_intact = hv.domains.get(0).is_some_and(|d| d.shutdown.code == 0)
        && hv.domains.get(1).is_some_and(|d| d.shutdown.is_shut_down);
    check("isolation", d0_intact, String::from("d0 state changed"));
    log::info!("svm-selftest: {}", if ok { "PASS" } else { "FAIL" });
    ok
}
