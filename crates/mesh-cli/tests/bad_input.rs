//! Bad input at run time, through the real binary: every case fails with a
//! clear message and a non-zero exit, publishes nothing, leaves no staged
//! files, and keeps the last good version readable.
#![allow(clippy::unwrap_used)]

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use assert_cmd::cargo::cargo_bin;
use common::{fails, greetings, init, json, mesh, ok, run_dirs};

/// A project with one published version of `example/greetings` (4 rows).
fn published(tmp: &Path) -> PathBuf {
    let dir = init(tmp);
    ok(&dir, &["deploy"]);
    ok(&dir, &["run"]);
    assert_eq!(greetings(&dir), 4);
    dir
}

fn csv(dir: &Path) -> PathBuf {
    dir.join("example/greetings/data/greetings.csv")
}

fn table(dir: &Path) -> PathBuf {
    dir.join(".mesh/tables/example/greetings/greetings")
}

/// The last run failed, nothing new is visible, and no staged files remain.
fn assert_failed_cleanly(dir: &Path, table: &Path, needle: &str) {
    let runs = json(dir, &["runs", "--format", "json"]);
    assert_eq!(runs[0]["status"], "failed");
    let error = runs[0]["error"].as_str().unwrap();
    assert!(error.contains(needle), "{error}");
    assert!(runs[0]["publications"].as_array().unwrap().is_empty());
    assert_eq!(greetings(dir), 4, "the failed run must not be visible");
    assert_eq!(
        run_dirs(table).len(),
        1,
        "only the published run's files remain"
    );
}

#[test]
fn a_source_file_missing_at_run_time() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = published(tmp.path());
    std::fs::remove_file(csv(&dir)).unwrap();
    let err = fails(&dir, &["run"]);
    assert!(
        err.contains("input `raw_greetings`: no file matches"),
        "{err}"
    );
    assert!(err.contains("data/greetings.csv"), "{err}");
    assert_failed_cleanly(&dir, &table(&dir), "no file matches");
}

#[test]
fn a_source_file_that_cannot_be_decoded() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = published(tmp.path());
    std::fs::write(csv(&dir), b"id,language,text\n1,en,Hel\xff\xfelo\n").unwrap();
    let err = fails(&dir, &["run"]);
    assert!(err.contains("reading its inputs failed"), "{err}");
    assert!(err.contains("invalid UTF-8 data for line 2"), "{err}");
    assert_failed_cleanly(&dir, &table(&dir), "invalid UTF-8");
}

#[test]
fn a_csv_whose_columns_do_not_match() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = published(tmp.path());
    std::fs::write(csv(&dir), "id,lang,text\n1,en,Hi\n").unwrap();
    let err = fails(&dir, &["run"]);
    assert!(
        err.contains("has columns [id, lang, text], but the source declares [id, language, text]"),
        "{err}"
    );
    assert_failed_cleanly(&dir, &table(&dir), "but the source declares");
}

#[test]
fn sql_that_fails_at_run_time() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = published(tmp.path());
    // Plans fine (so validate and deploy accept it), fails on the data.
    std::fs::write(
        dir.join("example/greetings/transform.sql"),
        "SELECT id, language, CAST(CAST(text AS BIGINT) AS VARCHAR) AS text FROM raw_greetings",
    )
    .unwrap();
    ok(&dir, &["deploy"]);
    let err = fails(&dir, &["run"]);
    assert!(err.contains("failed at run time"), "{err}");
    assert!(err.contains("transform.sql"), "{err}");
    assert!(err.contains("Cannot cast string 'Hello'"), "{err}");
    assert_failed_cleanly(&dir, &table(&dir), "Cannot cast");
}

/// A tmpfs mounted for one test; unmounted when dropped.
struct Tmpfs(PathBuf);

impl Tmpfs {
    /// Mounts a tmpfs of `size` at `at`, or `None` where mounting is not permitted.
    fn mount(at: &Path, size: &str) -> Option<Tmpfs> {
        std::fs::create_dir_all(at).unwrap();
        let mounted = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(at)
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        mounted.then(|| Tmpfs(at.to_path_buf()))
    }

    fn remount(&self, mode: &str) {
        let status = Command::new("mount")
            .args(["-o", &format!("remount,{mode}")])
            .arg(&self.0)
            .status()
            .unwrap();
        assert!(status.success());
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.0).status();
    }
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| o.stdout.starts_with(b"0\n"))
}

#[test]
fn a_state_directory_that_cannot_be_written() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = init(tmp.path());
    let state = dir.join(".mesh");
    // Root ignores permission bits, so as root the state directory is a
    // tmpfs remounted read-only; otherwise it loses its write bit.
    let tmpfs = Tmpfs::mount(&state, "16m");
    if tmpfs.is_none() && is_root() {
        eprintln!("skipped: running as root without permission to mount a tmpfs");
        return;
    }
    // The mount hides the catalog `mesh init` made: register the admin again.
    ok(
        &dir,
        &["principal", "add", common::USER, "--role", "mesh-admin"],
    );
    ok(&dir, &["deploy"]);
    ok(&dir, &["run"]);
    let protect = |read_only: bool| match &tmpfs {
        Some(t) => t.remount(if read_only { "ro" } else { "rw" }),
        None => {
            use std::os::unix::fs::PermissionsExt;
            let mode = if read_only { 0o555 } else { 0o755 };
            std::fs::set_permissions(&state, std::fs::Permissions::from_mode(mode)).unwrap();
        }
    };
    protect(true);
    std::fs::write(csv(&dir), "id,language,text\n1,en,Hi\n").unwrap();
    for args in [&["run"][..], &["deploy"], &["query", "SELECT 1"]] {
        let err = fails(&dir, args);
        assert!(err.contains("cannot use the state directory"), "{err}");
        assert!(
            err.contains("Read-only file system") || err.contains("Permission denied"),
            "{err}"
        );
        assert!(err.contains("hint: check the permissions"), "{err}");
        assert!(!err.contains("panicked"), "{err}");
    }
    protect(false);
    assert_eq!(greetings(&dir), 4);
    let runs = json(&dir, &["runs", "--format", "json"]);
    assert_eq!(
        runs.as_array().unwrap().len(),
        1,
        "the refused run left no trace"
    );
    ok(&dir, &["run"]);
    assert_eq!(greetings(&dir), 1);
}

/// A CSV large enough that its Parquet output does not fit in 512 KiB.
fn big_csv(path: &Path) {
    use std::fmt::Write;
    let mut text = String::from("id,language,text\n");
    let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
    for i in 0..120_000 {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        writeln!(text, "{i},en,{x:016x}").unwrap();
    }
    std::fs::write(path, text).unwrap();
}

#[test]
fn a_full_disk_under_the_tables() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = init(tmp.path());
    let tables = dir.join("tables");
    let tmpfs = Tmpfs::mount(&tables, "512k");
    let config = dir.join("mesh.yaml");
    let text = std::fs::read_to_string(&config).unwrap();
    std::fs::write(&config, format!("{text}storage: tables\n")).unwrap();
    ok(&dir, &["deploy"]);
    ok(&dir, &["run"]);
    let table = tables.join("example/greetings/greetings");
    big_csv(&csv(&dir));
    // Without a tmpfs (not root), the kernel's file-size limit refuses the
    // write the same way a full disk does.
    let out = match &tmpfs {
        Some(_) => mesh(&dir, &["run"]),
        None => Command::new("bash")
            .args(["-c", "trap '' XFSZ; ulimit -f 512; exec \"$0\" run"])
            .arg(cargo_bin("mesh"))
            .current_dir(&dir)
            .output()
            .unwrap(),
    };
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("No space left on device") || err.contains("File too large"),
        "{err}"
    );
    assert!(!err.contains("panicked"), "{err}");
    assert_failed_cleanly(&dir, &table, "os error");
    std::fs::write(csv(&dir), "id,language,text\n1,en,Hi\n").unwrap();
    ok(&dir, &["run"]);
    assert_eq!(greetings(&dir), 1);
}

/// A published version whose data files are gone is an error naming the
/// product, version and file, on the CLI and over REST; never an empty
/// table. Once a run publishes anew, the product reads again.
#[test]
fn a_version_whose_files_are_gone_is_an_error_not_an_empty_table() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = published(tmp.path());
    let table = table(&dir);
    for run in run_dirs(&table) {
        std::fs::remove_dir_all(table.join(run)).unwrap();
    }
    for sql in [
        "SELECT count(*) FROM example.greetings",
        "SELECT * FROM example.greetings",
        "SELECT * FROM example.\"greetings@1\"",
    ] {
        let err = fails(&dir, &["query", sql]);
        assert!(
            err.contains("`example.greetings` (product `example/greetings`), published version 1"),
            "{err}"
        );
        assert!(err.contains(".parquet` is missing"), "{err}");
    }
    let admin = common::serve::token(&dir, common::USER);
    let served = common::serve::Served::start(&dir, &[]);
    let body = r#"{"sql": "SELECT count(*) AS n FROM example.greetings"}"#;
    let (status, ctype, text) =
        common::serve::curl(&served.base, "/api/v1/query", Some(&admin), Some(body));
    assert_eq!(
        (status, ctype.as_str()),
        (500, "application/problem+json"),
        "{text}"
    );
    assert!(
        text.contains("data-missing") && text.contains("is missing"),
        "{text}"
    );
    drop(served);
    ok(&dir, &["run"]);
    assert_eq!(greetings(&dir), 4);
}

/// A project copied or moved to another folder is self-contained: its
/// catalog names tables relative to the storage root, so the copy reads
/// and writes its own tables and never the original's.
#[test]
fn a_copied_or_moved_project_uses_its_own_tables() {
    let tmp = tempfile::tempdir().unwrap();
    let original = published(tmp.path());
    let copy = tmp.path().join("copy");
    let cp = std::process::Command::new("cp")
        .args(["-a", original.to_str().unwrap(), copy.to_str().unwrap()])
        .status()
        .unwrap();
    assert!(cp.success());
    let before = run_dirs(&table(&original));
    std::fs::write(
        csv(&copy),
        "id,language,text\n1,en,Hi\n2,fr,Salut\n3,de,Hallo\n4,es,Hola\n5,en,Hey\n",
    )
    .unwrap();
    ok(&copy, &["run"]);
    assert_eq!(greetings(&copy), 5);
    assert_eq!(greetings(&original), 4);
    assert_eq!(
        run_dirs(&table(&original)),
        before,
        "the copy wrote into the original"
    );
    assert_eq!(run_dirs(&table(&copy)).len(), before.len() + 1);
    let shown = ok(
        &copy,
        &["catalog", "show", "example/greetings", "--format", "json"],
    );
    assert!(shown.contains(copy.to_str().unwrap()), "{shown}");
    assert!(
        !shown.contains(&format!("{}/", original.display())),
        "{shown}"
    );

    // Moved: the original folder is gone, and the project still answers,
    // at its newest version and in time travel.
    let moved = tmp.path().join("moved");
    std::fs::rename(&original, &moved).unwrap();
    assert_eq!(greetings(&moved), 4);
    let first = json(
        &moved,
        &[
            "query",
            "SELECT count(*) AS n FROM example.\"greetings@1\"",
            "--format",
            "json",
        ],
    );
    assert_eq!(first[0]["n"], 4);
    ok(&moved, &["run"]);
    assert_eq!(greetings(&moved), 4);
    assert!(!original.exists());
}

/// A null in a source column declared `nullable: false` names the input,
/// its file and the row that holds it; nothing is published.
#[test]
fn a_null_in_a_non_null_source_column_names_the_file_and_row() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = published(tmp.path());
    std::fs::write(
        csv(&dir),
        "id,language,text\n1,en,Hi\n,fr,Salut\n3,de,Hallo\n",
    )
    .unwrap();
    let err = fails(&dir, &["run"]);
    assert!(
        err.contains(
            "input `raw_greetings` (data/greetings.csv) holds a null `id` in data row 2 (line 3), but declares the column `nullable: false`"
        ),
        "{err}"
    );
    assert_eq!(greetings(&dir), 4);
}
