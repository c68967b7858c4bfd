//! The benchmark harness end to end at a tiny scale: every TPC-H query must
//! give the same rows through `mesh query` as through DataFusion alone (the
//! harness fails otherwise). Times are printed, never asserted.
#![allow(clippy::unwrap_used)]

use assert_cmd::cargo::cargo_bin;

#[test]
fn harness_runs_and_mesh_agrees_with_datafusion() {
    let mesh = cargo_bin("mesh");
    assert!(
        mesh.exists(),
        "{} is missing: run `cargo build -p mesh-cli` (cargo test --workspace builds it)",
        mesh.display()
    );
    let work = tempfile::tempdir().unwrap();
    let out = std::process::Command::new(cargo_bin("mesh-bench"))
        .args(["run", "--scale", "0.01", "--repeat", "1", "--products", "5"])
        .arg("--work")
        .arg(work.path())
        .arg("--mesh")
        .arg(&mesh)
        .output()
        .unwrap();
    let report = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{report}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    for row in [
        "ingest lineitem",
        "Q1:",
        "Q3:",
        "Q5:",
        "Q6:",
        "Q10:",
        "start-up",
    ] {
        assert!(report.contains(row), "{row} missing from:\n{report}");
    }
    // The published lineitem holds every generated row: 60,175 at SF 0.01.
    let rows = std::process::Command::new(&mesh)
        .args([
            "query",
            "SELECT count(*) AS n FROM tpch.lineitem",
            "--format",
            "csv",
        ])
        .current_dir(work.path().join("tpch-sf0.01"))
        .output()
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&rows.stdout), "n\n60175\n");
}
