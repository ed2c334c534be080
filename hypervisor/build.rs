//! Links the bare-metal hypervisor binary with `link.ld` (a static image in the top
//! 2 GiB, loadable both by `bootloader` 0.11 and by a PVH loader). Host builds
//! (tests, benches) are untouched.
fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    println!("cargo:rerun-if-changed=link.ld");
    if std::env::var("CARGO_CFG_TARGET_OS").as_deref() == Ok("none") {
        let dir = std::env::var("CARGO_MANIFEST_DIR").expect("cargo sets CARGO_MANIFEST_DIR");
        let script = std::path::Path::new(&dir).join("link.ld");
        println!("cargo:rustc-link-arg-bins=-T{}", script.display());
    }
}
