//! Bare-metal entry point (target `x86_64-unknown-none`): the `bootloader` 0.11
//! hand-off (physical memory mapped, ramdisk passed) and the panic handler. All
//! the work is in `hypervisor::arch::x86_64::boot`.
#![cfg_attr(target_os = "none", no_std)]
#![cfg_attr(target_os = "none", no_main)]

#[cfg(not(target_os = "none"))]
fn main() {
    eprintln!("the hypervisor binary runs on bare metal: use `cargo xtask run`");
}

#[cfg(target_os = "none")]
mod bare_metal {
    use bootloader_api::config::{BootloaderConfig, Mapping};
    use bootloader_api::{entry_point, BootInfo};

    /// What we ask of the bootloader: all physical memory mapped (at an offset it
    /// picks), a 256 KiB boot stack. The ramdisk is mapped by default.
    pub static BOOTLOADER_CONFIG: BootloaderConfig = {
        let mut config = BootloaderConfig::new_default();
        config.mappings.physical_memory = Some(Mapping::Dynamic);
        config.kernel_stack_size = 256 * 1024;
        config
    };

    entry_point!(kernel_main, config = &BOOTLOADER_CONFIG);

    fn kernel_main(boot_info: &'static mut BootInfo) -> ! {
        hypervisor::arch::x86_64::boot::start(boot_info)
    }

    #[panic_handler]
    fn panic(info: &core::panic::PanicInfo) -> ! {
        hypervisor::arch::x86_64::boot::panic(info)
    }
}
