//! The benchmark harness end to end at a tiny scale: every TPC-H query must
//! give the same rows through `mesh query` as through DataFusion alone (the
//! harness fails otherwise). Times are printed, never asserted.
#![allow(clippy::unwrap_used)]

use std::path::Path;

use assert_cmd::cargo::cargo_bin;

/// Runs `mesh-bench ARGS --work WORK --mesh MESH`, which must succeed, and
/// returns its report.
fn bench_ok(args: &[&str], work: &Path, mesh: &Path) -> String {
    let out = std::process::Command::new(cargo_bin("mesh-bench"))
        .args(args)
        .arg("--work")
        .arg(work)
        .arg("--mesh")
        .arg(mesh)
        .output()
        .unwrap();
    let report = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "{report}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    report
}

#[test]
fn harness_runs_and_mesh_agrees_with_datafusion() {
    let mesh = cargo_bin("mesh");
    assert!(
        mesh.exists(),
        "{} is missing: run `cargo build -p mesh-cli` (cargo test --workspace builds it)",
        mesh.display()
    );
    let work = tempfile::tempdir().unwrap();
    let report = bench_ok(
        &["run", "--scale", "0.01", "--repeat", "1", "--products", "5"],
        work.path(),
        &mesh,
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

/// `mesh-bench startup-order` end to end: Callgrind (Debian `valgrind`,
/// which the test command installs) runs the debug `mesh` on a small
/// start-up mesh, and the order written names functions of that binary,
/// each once, all of which `--check` then finds in it.
#[test]
fn startup_order_is_collected_from_the_binary_it_measures() {
    let mesh = cargo_bin("mesh");
    let work = tempfile::tempdir().unwrap();
    let order = work.path().join("startup.order");
    let out = order.to_str().unwrap();
    let report = bench_ok(
        &["startup-order", "--products", "3", "--out", out],
        work.path(),
        &mesh,
    );
    assert!(report.contains("\"SELECT 1\": "), "{report}");
    assert!(
        report.contains("FROM domain_00.product_000\": "),
        "{report}"
    );
    let text = std::fs::read_to_string(&order).unwrap();
    let names: Vec<&str> = text.lines().collect();
    assert!(
        names.len() > 100,
        "only {} functions: {report}",
        names.len()
    );
    assert!(names.contains(&"main"), "main missing from the order");
    let unique: std::collections::HashSet<&&str> = names.iter().collect();
    assert_eq!(unique.len(), names.len(), "a function is listed twice");
    let check = std::process::Command::new(cargo_bin("mesh-bench"))
        .args(["startup-order", "--check", "--mesh"])
        .arg(&mesh)
        .arg("--out")
        .arg(&order)
        .output()
        .unwrap();
    assert!(check.status.success());
    let n = names.len();
    assert!(
        String::from_utf8_lossy(&check.stdout).starts_with(&format!("{n} of {n} ordered symbols")),
        "{}",
        String::from_utf8_lossy(&check.stdout)
    );
}
