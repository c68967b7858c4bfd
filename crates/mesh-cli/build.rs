//! Links `mesh` with packed relative relocations (`DT_RELR`) where the
//! system's C library can load them (glibc 2.36 and later).
//!
//! The binary holds about 360,000 relative relocations: as classic RELA
//! entries that is 8 MiB the loader reads at every start, most of the
//! page faults of a short command such as `mesh query "SELECT 1"`. As
//! RELR they take a few KiB. A binary linked this way does not start on
//! an older glibc, so the build only asks for it when the C library it
//! builds against (the one it will run against) supports it.

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

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    let linux_gnu = std::env::var("CARGO_CFG_TARGET_OS").as_deref() == Ok("linux")
        && std::env::var("CARGO_CFG_TARGET_ENV").as_deref() == Ok("gnu");
    let native = std::env::var("TARGET").ok() == std::env::var("HOST").ok();
    if linux_gnu && native && glibc_version().is_some_and(|v| v >= (2, 36)) {
        println!("cargo:rustc-link-arg-bins=-Wl,-z,pack-relative-relocs");
    }
}
