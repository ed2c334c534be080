//! `boot.cmd` `test=vmx-selftest`: a built-in mini guest that exercises the VMX
//! backend end to end through the vCPU interface, without the domain machinery.
//!
//! The guest is 32-bit protected-mode code with paging off (the PVH entry mode, so
//! unrestricted guest is in use) on EPT built by the shared stage-2 builder from a
//! real [`P2m`] with two altp2m views. It takes, in order: a CPUID exit, a VMCALL
//! exit, an OUT to port 0xE9, a VMFUNC leaf 0 switch to view 1 *without an exit*, a
//! write to a page view 1 maps read-only with suppress-#VE clear, which the CPU turns
//! into a #VE *inside the guest* (its handler reads the #VE information area,
//! switches back to view 0 with VMFUNC and returns; the write then completes), a
//! VMCALL reporting what the handler saw, a HLT exit, an EPT-violation exit on a gfn
//! outside its p2m, and a triple fault. A second vCPU with an invalid guest state
//! checks that a failed VM entry is reported with its exit reason and qualification.
//!
//! Each check prints `vmx-selftest: <check> PASS` or `... FAIL <why>`; the run ends
//! with `vmx-selftest: DONE <n> passed, <m> failed`.

use alloc::vec::Vec;

use super::ept::{EptEncoder, EptFrames};
use super::vcpu::VmxVcpu;
use crate::arch::x86_64::hvm::vcpu::{InitialState, Reg, Vcpu, VmExit};
use crate::arch::x86_64::{frame, paging};
use crate::common::memory::{build_stage2, P2m, P2mAccess, ViewId};

// The guest, assembled as 32-bit code and copied to GPA 0x1000.
core::arch::global_asm!(
    r#"
    .section .rodata.vmx_selftest, "a"
    .code32
    .global vmx_selftest_guest
    .global vmx_selftest_ve_handler
    .global vmx_selftest_ud2
    .global vmx_selftest_guest_end
vmx_selftest_guest:
    mov eax, 0x40000000
    cpuid
    mov ebx, eax
    mov eax, 0x1234
    vmcall
    mov al, 0x56
    out 0xE9, al
    xor eax, eax
    mov ecx, 1
    .byte 0x0f, 0x01, 0xd4
    mov dword ptr [0x6000], 0xABCD1234
    mov eax, 2
    mov ebx, dword ptr [0x6000]
    mov ecx, dword ptr [0x7000]
    mov edx, dword ptr [0x7004]
    mov esi, dword ptr [0x7008]
    mov edi, dword ptr [0x700C]
    vmcall
    hlt
    mov dword ptr [0x800000], 1
vmx_selftest_ud2:
    ud2
vmx_selftest_ve_handler:
    push eax
    push ecx
    inc dword ptr [0x7000]
    mov eax, dword ptr [0x5018]
    mov dword ptr [0x7004], eax
    mov eax, dword ptr [0x5000]
    mov dword ptr [0x7008], eax
    movzx eax, word ptr [0x5020]
    mov dword ptr [0x700C], eax
    xor eax, eax
    xor ecx, ecx
    .byte 0x0f, 0x01, 0xd4
    mov dword ptr [0x5004], 0
    pop ecx
    pop eax
    .byte 0xcf
vmx_selftest_guest_end:
    .code64
"#
);

unsafe extern "C" {
    static vmx_selftest_guest: u8;
    static vmx_selftest_ve_handler: u8;
    static vmx_selftest_ud2: u8;
    static vmx_selftest_guest_end: u8;
}

/// Guest-physical layout.
const CODE: u64 = 0x1000;
const GDT: u64 = 0x3000;
const IDT: u64 = 0x4000;
const VE_INFO_GFN: u64 = 5;
const PROTECTED_GFN: u64 = 6;
const STACK_TOP: u64 = 0x10000;
const GUEST_PAGES: u64 = 16;
const UNMAPPED_GPA: u64 = 0x80_0000;
const VE_VECTOR: usize = 20;

struct Tally {
    passed: u32,
    failed: u32,
}

impl Tally {
    fn check(&mut self, name: &str, ok: bool, why: core::fmt::Arguments) {
        if ok {
            self.passed += 1;
            log::info!("vmx-selftest: {name} PASS");
        } else {
            self.failed += 1;
            log::warn!("vmx-selftest: {name} FAIL {why}");
        }
    }
}

/// The guest's memory: one frame per gfn, freed at the end.
struct GuestFrames(Vec<u64>);

impl GuestFrames {
    fn write(&self, gpa: u64, bytes: &[u8]) {
        let mfn_pa = self.0[(gpa >> 12) as usize];
        let off = (gpa & 0xfff) as usize;
        assert!(
            off + bytes.len() <= 4096,
            "selftest layout: write crosses a page"
        );
        // SAFETY: the frame is ours (allocated below) and the range stays inside it.
        unsafe {
            core::ptr::copy_nonoverlapping(
                bytes.as_ptr(),
                paging::phys_to_virt(mfn_pa).add(off),
                bytes.len(),
            )
        };
    }
}

impl Drop for GuestFrames {
    fn drop(&mut self) {
        for pa in self.0.drain(..) {
            frame::free_contiguous(pa, 1);
        }
    }
}

/// Runs the self-test; Err only when it could not be set up.
pub fn run() -> Result<(u32, u32), &'static str> {
    super::log_caps();
    super::cpu_enable().map_err(|_| "VMX cannot be enabled on this CPU")?;
    let mut t = Tally {
        passed: 0,
        failed: 0,
    };

    // Guest memory and its p2m: host view rwx, view 1 maps the protected gfn r--
    // with suppress-#VE clear.
    let mut mem = GuestFrames(Vec::new());
    for _ in 0..GUEST_PAGES {
        mem.0.push(frame::alloc_zeroed().ok_or("out of frames")?);
    }
    let mut p2m = P2m::new(1);
    for gfn in 0..GUEST_PAGES {
        p2m.set_host_entry(gfn, mem.0[gfn as usize] >> 12, P2mAccess::RWX)
            .map_err(|_| "p2m refused a gfn")?;
    }
    p2m.enable_altp2m();
    let view1 = p2m
        .init_next_altp2m(xen_public_abi::memory::XENMEM_access_default)
        .map_err(|_| "no altp2m view")?;
    p2m.set_mem_access_one(ViewId::Alt(view1), PROTECTED_GFN, P2mAccess::R);
    p2m.set_suppress_ve_one(ViewId::Alt(view1), PROTECTED_GFN, false)
        .map_err(|_| "suppress-#VE refused")?;
    let enc = EptEncoder::new();
    let mut tables = EptFrames::default();
    let root0 = build_stage2(&p2m, ViewId::Alt(0), &enc, &mut tables).map_err(|_| "EPT view 0")?;
    let root1 =
        build_stage2(&p2m, ViewId::Alt(view1), &enc, &mut tables).map_err(|_| "EPT view 1")?;

    // Code, GDT (0x10 code, 0x18 data as in the PVH entry state), IDT (#VE gate).
    // The four symbols are labels of the assembly above, in one section.
    let (start, ve, ud2, end) = (
        &raw const vmx_selftest_guest as usize,
        &raw const vmx_selftest_ve_handler as usize,
        &raw const vmx_selftest_ud2 as usize,
        &raw const vmx_selftest_guest_end as usize,
    );
    // SAFETY: [start, end) is the assembled guest in the kernel image's rodata.
    let code = unsafe { core::slice::from_raw_parts(start as *const u8, end - start) };
    mem.write(CODE, code);
    let gdt: [u64; 4] = [0, 0, 0x00CF_9B00_0000_FFFF, 0x00CF_9300_0000_FFFF];
    mem.write(GDT, &gdt.map(u64::to_le_bytes).concat());
    let handler = (CODE + (ve - start) as u64) as u32;
    let gate = (0x10u64 << 16)
        | (handler as u64 & 0xffff)
        | ((handler as u64 & 0xffff_0000) | 0x8E00) << 32;
    mem.write(IDT + (VE_VECTOR * 8) as u64, &gate.to_le_bytes());

    let mut vcpu = VmxVcpu::new().map_err(|_| "cannot create a VMX vCPU")?;
    vcpu.set_initial_state(&InitialState::pvh(CODE, 0));
    vcpu.set_reg(Reg::Rsp, STACK_TOP);
    vcpu.set_descriptor_tables((GDT, 31), (IDT, 32 * 8 - 1));
    let lists = vcpu.set_views(&[Some(root0), Some(root1)], 0, root0);
    let ve_on = vcpu.enable_hw_ve(Some(mem.0[VE_INFO_GFN as usize]));
    t.check(
        "altp2m-hw-setup",
        lists && ve_on,
        format_args!("eptp list {lists}, #VE {ve_on}"),
    );

    let mut step = 0;
    let mut ext_interrupts = 0u32;
    let start_tsc = crate::arch::x86_64::time::rdtsc();
    loop {
        let exit = vcpu.run();
        if exit == VmExit::ExtInterrupt {
            ext_interrupts += 1;
            if ext_interrupts > 10_000 {
                t.check("progress", false, format_args!("only external interrupts"));
                break;
            }
            continue;
        }
        let rax = vcpu.reg(Reg::Rax);
        step += 1;
        match (step, exit) {
            (1, VmExit::Cpuid) => {
                t.check(
                    "cpuid-exit",
                    rax == 0x4000_0000,
                    format_args!("eax {rax:#x}"),
                );
                vcpu.set_reg(Reg::Rax, 0x1122_3344);
                vcpu.advance_rip();
            }
            (2, VmExit::Hypercall) => {
                let rbx = vcpu.reg(Reg::Rbx);
                t.check(
                    "vmcall-exit",
                    rax == 0x1234 && rbx == 0x1122_3344,
                    format_args!("eax {rax:#x} ebx {rbx:#x}"),
                );
                vcpu.advance_rip();
            }
            (3, VmExit::Io(io)) => {
                t.check(
                    "io-exit",
                    io.port == 0xE9 && io.size == 1 && io.write && rax & 0xff == 0x56,
                    format_args!("{io:?} al {:#x}", rax & 0xff),
                );
                vcpu.advance_rip();
            }
            (4, VmExit::Hypercall) => {
                let r = |x| vcpu.reg(x);
                let (value, count, gpa, reason, index) = (
                    r(Reg::Rbx),
                    r(Reg::Rcx),
                    r(Reg::Rdx),
                    r(Reg::Rsi),
                    r(Reg::Rdi),
                );
                t.check(
                    "vmfunc-switch-without-exit",
                    index == view1 as u64,
                    format_args!("#VE reported EPTP index {index}"),
                );
                t.check(
                    "hardware-ve",
                    count == 1 && gpa == PROTECTED_GFN << 12 && reason == 48,
                    format_args!("#VE count {count}, gpa {gpa:#x}, reason {reason}"),
                );
                t.check(
                    "write-completed-in-view-0",
                    value == 0xABCD_1234 && vcpu.view_index() == Some(0),
                    format_args!("value {value:#x}, view {:?}", vcpu.view_index()),
                );
                vcpu.advance_rip();
            }
            (5, VmExit::Hlt) => {
                t.check("hlt-exit", true, format_args!(""));
                vcpu.advance_rip();
            }
            (
                6,
                VmExit::Stage2Fault {
                    gpa,
                    access,
                    present,
                    ..
                },
            ) => {
                t.check(
                    "ept-violation-exit",
                    gpa == UNMAPPED_GPA && access.write && !present,
                    format_args!("gpa {gpa:#x} {access:?} present {present}"),
                );
                vcpu.set_reg(Reg::Rip, CODE + (ud2 - start) as u64);
            }
            (7, VmExit::TripleFault) => {
                t.check("triple-fault-exit", true, format_args!(""));
                break;
            }
            (n, e) => {
                t.check(
                    "exit-sequence",
                    false,
                    format_args!(
                        "step {n}: unexpected {e:?} at rip {:#x}",
                        vcpu.reg(Reg::Rip)
                    ),
                );
                break;
            }
        }
    }
    let cycles = crate::arch::x86_64::time::rdtsc() - start_tsc;
    log::info!(
        "vmx-selftest: guest ran {step} exits (+{ext_interrupts} external interrupts) in {cycles} tsc cycles"
    );
    drop(vcpu);

    // A failed VM entry must be reported, not hang: CR0.PG without PE.
    let mut bad = VmxVcpu::new().map_err(|_| "cannot create a VMX vCPU")?;
    let mut s = InitialState::pvh(CODE, 0);
    s.cr0 = (1 << 31) | (1 << 4);
    bad.set_initial_state(&s);
    bad.set_stage2_root(root0);
    let e = bad.run();
    t.check(
        "failed-entry-reported",
        matches!(e, VmExit::EntryFailed { raw } if raw == 0x8000_0021),
        format_args!("{e:?}"),
    );
    drop(bad);
    tables.free_all();

    log::info!(
        "vmx-selftest: DONE {} passed, {} failed",
        t.passed,
        t.failed
    );
    Ok((t.passed, t.failed))
}
