//! Release links of `mesh` get two start-up measures from the linker.
//!
//! **Packed relative relocations** (`DT_RELR`), where the system's C
//! library can load them (glibc 2.36 and later). The binary holds about
//! 360,000 relative relocations: as classic RELA entries that is 8 MiB
//! the loader reads at every start, most of the page faults of a short
//! command such as `mesh query "SELECT 1"`. As RELR they take a few KiB.
//! A binary linked this way does not start on an older glibc, so the
//! build only asks for it when the C library it builds against (the one
//! it will run against) supports it.
//!
//! **A start-up function order** (`startup.order`, one symbol per line),
//! in release builds linked by the toolchain's own lld. The functions a
//! short command runs are otherwise scattered over about 480 of the
//! binary's 64 KiB fault-around windows; listed first, they fit in about
//! 60. Symbols the file names but the binary lacks are skipped, so an
//! order made from an older build still places every function it names
//! that kept its symbol. `docs/startup-order.md` says how to regenerate
//! the file. Set `MESH_LINK_ORDER=0` to link without it.

use std::process::Command;

fn glibc_version() -> Option<(u32, u32)> {
    let out = Command::new("getconf")
        .arg("GNU_LIBC_VERSION")
        .output()
        .ok()?;
    let text = String::from_utf8(out.stdout).ok()?;
    let version = text.trim().strip_prefix("glibc ")?;
    let (major, minor) = version.split_once('.')?;
    Some((major.parse().ok()?, minor.split('.').next()?.parse().ok()?))
}

/// Whether the link uses the toolchain's default linker, which on
/// x86_64 Linux is its bundled lld (the only linker here known to take
/// `--symbol-ordering-file`). Any configured linker or linker flag opts
/// out rather than risk a linker that rejects the option.
fn default_lld_linker() -> bool {
    let env = |name: &str| std::env::var(name).unwrap_or_default();
    let target = env("TARGET");
    let rustflags = env("CARGO_ENCODED_RUSTFLAGS");
    target == "x86_64-unknown-linux-gnu"
        && std::env::var_os("RUSTC_LINKER").is_none()
        && !rustflags.contains("link")
}

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    println!("cargo:rerun-if-changed=startup.order");
    println!("cargo:rerun-if-env-changed=MESH_LINK_ORDER");
    let linux_gnu = std::env::var("CARGO_CFG_TARGET_OS").as_deref() == Ok("linux")
        && std::env::var("CARGO_CFG_TARGET_ENV").as_deref() == Ok("gnu");
    let native = std::env::var("TARGET").ok() == std::env::var("HOST").ok();
    if linux_gnu && native && glibc_version().is_some_and(|v| v >= (2, 36)) {
        println!("cargo:rustc-link-arg-bins=-Wl,-z,pack-relative-relocs");
    }
    let release = std::env::var("PROFILE").as_deref() == Ok("release");
    let wanted = std::env::var("MESH_LINK_ORDER").as_deref() != Ok("0");
    if release && wanted && default_lld_linker() {
        let dir = std::env::var("CARGO_MANIFEST_DIR").expect("cargo sets CARGO_MANIFEST_DIR");
        let order = std::path::Path::new(&dir).join("startup.order");
        if order.to_string_lossy().contains(',') {
            // `-Wl,` splits its argument at commas.
            return;
        }
        println!(
            "cargo:rustc-link-arg-bin=mesh=-Wl,--symbol-ordering-file={}",
            order.display()
        );
        println!("cargo:rustc-link-arg-bin=mesh=-Wl,--no-warn-symbol-ordering");
    }
}
