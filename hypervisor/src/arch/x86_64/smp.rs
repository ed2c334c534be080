//! Starting the application processors: INIT-SIPI-SIPI with a real-mode
//! trampoline copied to a free frame below 1 MiB. The trampoline goes 16 → 32 →
//! 64-bit on a temporary GDT of its own, loads the kernel's CR3 (our page tables,
//! which identity-map the trampoline page), takes the per-CPU stack the BSP wrote
//! into its data area and jumps to [`ap_entry`] (with a zero return address, so
//! backtraces end there). APs are started one at a time.
//!
//! Mirrors Xen's `xen/arch/x86/boot/trampoline.S` + `smpboot.c` (`do_boot_cpu`).

use core::sync::atomic::{AtomicBool, Ordering};

use super::{apic, frame, gdt, idt, paging, percpu, time};

core::arch::global_asm!(
    r#"
    .section .text.ap_trampoline, "ax"
    .global ap_tramp_start
    .global ap_tramp_end
    .global ap_tramp_gdtr
    .global ap_tramp_cr3
    .global ap_tramp_stack
    .global ap_tramp_entry
    .global ap_tramp_arg
    .code16
ap_tramp_start:
    cli
    cld
    xorl %eax, %eax
    movw %cs, %ax
    movw %ax, %ds
    movw %ax, %ss
    movw $0x1000, %sp
    shll $4, %eax
    movl %eax, %ebx
    lgdt (ap_tramp_gdtr - ap_tramp_start)
    movl %cr0, %eax
    orl $1, %eax
    movl %eax, %cr0
    movl $0x08, %eax
    pushl %eax
    leal (ap_tramp_pm - ap_tramp_start)(%ebx), %eax
    pushl %eax
    .byte 0x66, 0xcb
    .code32
ap_tramp_pm:
    movw $0x10, %ax
    movw %ax, %ds
    movw %ax, %es
    movw %ax, %ss
    leal 0x1000(%ebx), %esp
    movl %cr4, %eax
    orl $0x20, %eax
    movl %eax, %cr4
    movl (ap_tramp_cr3 - ap_tramp_start)(%ebx), %eax
    movl %eax, %cr3
    movl $0xC0000080, %ecx
    rdmsr
    orl $0x900, %eax
    wrmsr
    movl $0x80010033, %eax
    movl %eax, %cr0
    pushl $0x18
    leal (ap_tramp_lm - ap_tramp_start)(%ebx), %eax
    pushl %eax
    lret
    .code64
ap_tramp_lm:
    movl %ebx, %ebx
    movw $0x10, %ax
    movw %ax, %ds
    movw %ax, %es
    movw %ax, %ss
    xorl %eax, %eax
    movw %ax, %fs
    movw %ax, %gs
    movq (ap_tramp_stack - ap_tramp_start)(%rbx), %rsp
    movq (ap_tramp_arg - ap_tramp_start)(%rbx), %rdi
    movq (ap_tramp_entry - ap_tramp_start)(%rbx), %rax
    xorl %ebp, %ebp
    pushq $0
    jmpq *%rax
    .balign 8
ap_tramp_gdt:
    .quad 0
    .quad 0x00CF9A000000FFFF
    .quad 0x00CF92000000FFFF
    .quad 0x00AF9A000000FFFF
ap_tramp_gdtr:
    .word 31
    .long 0
    .balign 8
ap_tramp_cr3:
    .quad 0
ap_tramp_stack:
    .quad 0
ap_tramp_entry:
    .quad 0
ap_tramp_arg:
    .quad 0
ap_tramp_gdt_off:
    .long ap_tramp_gdt - ap_tramp_start
ap_tramp_end:
    .text
"#,
    options(att_syntax)
);

extern "C" {
    static ap_tramp_start: u8;
    static ap_tramp_end: u8;
    static ap_tramp_gdtr: u8;
    static ap_tramp_cr3: u8;
    static ap_tramp_stack: u8;
    static ap_tramp_entry: u8;
    static ap_tramp_arg: u8;
    static ap_tramp_gdt_off: u8;
}

/// Each AP's stack.
const AP_STACK_FRAMES: usize = 16;

/// Set by an AP once it logged itself online.
static AP_STARTED: AtomicBool = AtomicBool::new(false);

/// Offset of a trampoline symbol from its start.
fn off(sym: &u8) -> usize {
    // SAFETY: only addresses of linker symbols are compared.
    sym as *const u8 as usize - unsafe { &ap_tramp_start as *const u8 as usize }
}

/// Copies the trampoline to a free frame below 1 MiB and identity-maps it.
/// Returns the frame's physical address.
fn install_trampoline() -> Result<u64, &'static str> {
    // SAFETY: the trampoline is a read-only byte range inside this image.
    let (code, gdt_off) = unsafe {
        let start = &ap_tramp_start as *const u8;
        let len = &ap_tramp_end as *const u8 as usize - start as usize;
        let gdt_off = (&ap_tramp_gdt_off as *const u8)
            .cast::<u32>()
            .read_unaligned();
        (core::slice::from_raw_parts(start, len), gdt_off)
    };
    if code.len() > 4096 {
        return Err("AP trampoline larger than a page");
    }
    let pa = frame::alloc_contiguous(1, frame::FRAME_SIZE, 0x10_0000)
        .ok_or("no free frame below 1 MiB for the AP trampoline")?;
    paging::identity_map(pa)?;
    let va = paging::phys_to_virt(pa);
    // SAFETY: `pa` is our frame below 1 MiB, mapped through the physical map.
    unsafe {
        core::ptr::copy_nonoverlapping(code.as_ptr(), va, code.len());
        // GDTR base = where the temporary GDT landed.
        // SAFETY (offsets): taken from symbols inside the copied range.
        let gdtr = va.add(off(&ap_tramp_gdtr));
        gdtr.add(2)
            .cast::<u32>()
            .write_unaligned(pa as u32 + gdt_off);
        va.add(off(&ap_tramp_cr3))
            .cast::<u64>()
            .write_unaligned(paging::kernel_cr3());
        va.add(off(&ap_tramp_entry))
            .cast::<u64>()
            .write_unaligned(ap_entry as extern "C" fn(u64) -> ! as usize as u64);
    }
    Ok(pa)
}

/// Starts every processor in `apic_ids` except this one. Returns how many came up.
pub fn start_aps(cpus: &[super::acpi::Cpu]) -> Result<usize, &'static str> {
    let bsp_apic = apic::id();
    if cpus.iter().all(|c| c.apic_id == bsp_apic) {
        return Ok(0);
    }
    let tramp = install_trampoline()?;
    let mut started = 0;
    let mut index = 1;
    for cpu in cpus.iter().filter(|c| c.apic_id != bsp_apic) {
        if index >= percpu::MAX_CPUS {
            log::warn!(
                "smp: more than {} cpus, apic id {} not started",
                percpu::MAX_CPUS,
                cpu.apic_id
            );
            continue;
        }
        let Some(stack) = frame::alloc_contiguous(AP_STACK_FRAMES, frame::FRAME_SIZE, u64::MAX)
        else {
            log::error!("smp: no memory for cpu{index}'s stack");
            break;
        };
        let bottom = paging::phys_to_virt(stack) as u64;
        let top = bottom + AP_STACK_FRAMES as u64 * frame::FRAME_SIZE;
        let slot = &percpu::CPUS[index];
        slot.stack_bottom.store(bottom, Ordering::Relaxed);
        slot.stack_top.store(top, Ordering::Relaxed);
        slot.apic_id.store(cpu.apic_id, Ordering::Relaxed);
        let va = paging::phys_to_virt(tramp);
        // SAFETY: the trampoline page is ours; no AP is running from it now (APs
        // start one at a time and we wait for each before reusing the page).
        unsafe {
            va.add(off(&ap_tramp_stack))
                .cast::<u64>()
                .write_unaligned(top);
            va.add(off(&ap_tramp_arg))
                .cast::<u64>()
                .write_unaligned(index as u64);
        }
        AP_STARTED.store(false, Ordering::SeqCst);
        if !apic::send_init(cpu.apic_id) {
            log::warn!("smp: INIT to apic id {} not delivered", cpu.apic_id);
        }
        time::delay_us(10_000);
        let vector = (tramp >> 12) as u8;
        let mut up = false;
        for attempt in 0..2 {
            if !apic::send_sipi(cpu.apic_id, vector) {
                log::warn!("smp: SIPI to apic id {} not delivered", cpu.apic_id);
            }
            // After the first SIPI wait 200 us, after the second up to 1 s.
            let wait = if attempt == 0 {
                time::tsc_hz() / 5000
            } else {
                time::tsc_hz()
            };
            let deadline = time::rdtsc() + wait;
            while time::rdtsc() < deadline && !AP_STARTED.load(Ordering::Acquire) {
                core::hint::spin_loop();
            }
            up = AP_STARTED.load(Ordering::Acquire);
            if up {
                break;
            }
        }
        if up {
            started += 1;
            index += 1;
        } else {
            log::error!("smp: apic id {} did not come up", cpu.apic_id);
            frame::free_contiguous(stack, AP_STACK_FRAMES);
        }
    }
    Ok(started)
}

/// Where each AP lands in Rust, on its own stack, with the kernel's page tables.
extern "C" fn ap_entry(index: u64) -> ! {
    let index = index as usize;
    let slot = &percpu::CPUS[index];
    percpu::init_this_cpu(
        index,
        slot.apic_id.load(Ordering::Relaxed),
        slot.stack_bottom.load(Ordering::Relaxed),
        slot.stack_top.load(Ordering::Relaxed),
    );
    gdt::init_ap();
    idt::load();
    apic::init_local();
    let id = apic::id();
    slot.apic_id.store(id, Ordering::Relaxed);
    log::info!("cpu{index} online (apic id {id})");
    slot.online.store(true, Ordering::Release);
    AP_STARTED.store(true, Ordering::Release);
    // Idle until the domains are built, then run vCPUs.
    super::sched::ap_idle()
}
