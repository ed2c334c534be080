//! `cargo xtask`: build, disk images, run, qemu-test, ci, bench.
fn main() {
    eprintln!("xtask: not implemented yet");
    std::process::exit(1);
}
