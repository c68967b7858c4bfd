//! Names the encoding of what the catalog keeps per deployment
//! generation (`deployment_caches`): a hash of the sources that define the
//! encoded types and how the lineage graph is built and classified. A
//! build whose types or rules differ reads other rows and derives its
//! own, so an entry is never decoded into types it was not written from.

use std::path::Path;

/// Sources whose change changes what a cached entry means.
const SOURCES: &[&str] = &[
    "../mesh-spec/src/descriptor.rs",
    "../mesh-spec/src/yaml.rs",
    "../mesh-spec/src/name.rs",
    "../mesh-spec/src/column_type.rs",
    "../mesh-query/src/lineage/mod.rs",
    "../mesh-query/src/lineage/expr.rs",
    "../mesh-query/src/lineage/plan.rs",
    "../mesh-catalog/src/classes.rs",
    "src/deployed.rs",
    "src/lineage/mod.rs",
    "src/lineage/graph.rs",
    "src/lineage/stored.rs",
];

/// FNV-1a, 64 bits: stable across builds and toolchains.
fn fnv(hash: u64, bytes: &[u8]) -> u64 {
    bytes.iter().fold(hash, |h, b| {
        (h ^ u64::from(*b)).wrapping_mul(0x0000_0100_0000_01b3)
    })
}

fn main() {
    let dir = std::env::var("CARGO_MANIFEST_DIR").unwrap_or_default();
    let mut hash = 0xcbf2_9ce4_8422_2325;
    for source in SOURCES {
        let path = Path::new(&dir).join(source);
        println!("cargo:rerun-if-changed={}", path.display());
        hash = fnv(hash, source.as_bytes());
        // A source missing here (a packaged crate) counts as its name only.
        hash = fnv(hash, &std::fs::read(&path).unwrap_or_default());
    }
    hash = fnv(
        hash,
        std::env::var("CARGO_PKG_VERSION")
            .unwrap_or_default()
            .as_bytes(),
    );
    println!("cargo:rustc-env=MESH_CACHE_FORMAT=postcard.1 {hash:016x}");
}
