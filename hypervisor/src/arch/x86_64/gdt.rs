//! Per-CPU GDT and TSS. The bootloader's GDT has no TSS (TR = 0), but VMX host
//! state needs a non-zero TR, and #DF/NMI/#MC need known-good stacks (IST). Each CPU
//! gets its own GDT (null, kernel code 0x08, kernel data 0x10, TSS 0x18) and TSS.
//!
//! Mirrors Xen's per-CPU GDT/TSS set-up in `xen/arch/x86/cpu/common.c` (`load_system_tables`).

use alloc::boxed::Box;
use core::cell::UnsafeCell;

use spin::Once;
use x86_64::instructions::segmentation::{Segment, CS, DS, ES, SS};
use x86_64::instructions::tables::load_tss;
use x86_64::structures::gdt::{Descriptor, GlobalDescriptorTable, SegmentSelector};
use x86_64::structures::tss::TaskStateSegment;
use x86_64::VirtAddr;

/// Kernel code selector (the IDT's gates use it).
pub const KERNEL_CS: u16 = 0x08;

/// IST slot (1-based, as in the IDT gate) for #DF.
pub const IST_DOUBLE_FAULT: u8 = 1;
/// IST slot for NMI.
pub const IST_NMI: u8 = 2;
/// IST slot for #MC.
pub const IST_MACHINE_CHECK: u8 = 3;

/// Size of each IST stack.
const IST_STACK_SIZE: usize = 16 * 1024;

#[repr(C, align(16))]
struct Stack(UnsafeCell<[u8; IST_STACK_SIZE]>);
// SAFETY: only the address is used, by the CPU when it switches stacks.
unsafe impl Sync for Stack {}

/// The BSP's IST stacks (statics: the BSP loads its GDT before the heap exists).
static BSP_IST: [Stack; 3] = [const { Stack(UnsafeCell::new([0; IST_STACK_SIZE])) }; 3];

fn top_of(stack: &'static Stack) -> VirtAddr {
    VirtAddr::from_ptr(stack.0.get()) + IST_STACK_SIZE as u64
}

static BSP_TSS: Once<TaskStateSegment> = Once::new();
static BSP_GDT: Once<(GlobalDescriptorTable, SegmentSelector)> = Once::new();

fn build_gdt(tss: &'static TaskStateSegment) -> (GlobalDescriptorTable, SegmentSelector) {
    let mut gdt = GlobalDescriptorTable::new();
    let code = gdt.append(Descriptor::kernel_code_segment());
    let data = gdt.append(Descriptor::kernel_data_segment());
    let tss_sel = gdt.append(Descriptor::tss_segment(tss));
    debug_assert_eq!(code.0, KERNEL_CS);
    debug_assert_eq!(data.0, 0x10);
    (gdt, tss_sel)
}

fn load(gdt: &'static GlobalDescriptorTable, tss_sel: SegmentSelector) {
    gdt.load();
    // SAFETY: the selectors name the code/data/TSS descriptors of the GDT just
    // loaded; the TSS is 'static.
    unsafe {
        CS::set_reg(SegmentSelector(KERNEL_CS));
        SS::set_reg(SegmentSelector(0x10));
        DS::set_reg(SegmentSelector(0x10));
        ES::set_reg(SegmentSelector(0x10));
        load_tss(tss_sel);
    }
}

/// Loads the BSP's GDT and TSS. Needs no heap.
pub fn init_bsp() {
    let tss = BSP_TSS.call_once(|| {
        let mut tss = TaskStateSegment::new();
        tss.interrupt_stack_table[IST_DOUBLE_FAULT as usize - 1] = top_of(&BSP_IST[0]);
        tss.interrupt_stack_table[IST_NMI as usize - 1] = top_of(&BSP_IST[1]);
        tss.interrupt_stack_table[IST_MACHINE_CHECK as usize - 1] = top_of(&BSP_IST[2]);
        tss
    });
    let (gdt, sel) = BSP_GDT.call_once(|| build_gdt(tss));
    load(gdt, *sel);
}

/// Builds and loads a GDT, TSS and IST stacks for an application processor (heap).
pub fn init_ap() {
    let mut tss = TaskStateSegment::new();
    for slot in 0..3 {
        let stack: &'static mut [u8] =
            Box::leak(alloc::vec![0u8; IST_STACK_SIZE].into_boxed_slice());
        let top = VirtAddr::from_ptr(stack.as_ptr()) + IST_STACK_SIZE as u64;
        tss.interrupt_stack_table[slot] = top.align_down(16u64);
    }
    let tss: &'static TaskStateSegment = Box::leak(Box::new(tss));
    let (gdt, sel) = build_gdt(tss);
    let gdt: &'static GlobalDescriptorTable = Box::leak(Box::new(gdt));
    load(gdt, sel);
}
