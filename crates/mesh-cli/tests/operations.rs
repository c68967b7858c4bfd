//! Operations end to end through the real binary: runs that skip what is
//! up to date, schedules (validated, fired by the scheduler), leases
//! between processes, and run observability.
#![allow(clippy::unwrap_used)]

mod common;

use std::path::Path;

use common::{edit, fails, init, json, ok};
use serde_json::Value;

/// A consumer of `example/greetings` in `example/counts`.
fn add_counts(dir: &Path, schedule: &str) {
    let consumer = dir.join("example/counts");
    std::fs::create_dir_all(&consumer).unwrap();
    std::fs::write(
        consumer.join("product.yaml"),
        format!(
            "apiVersion: meshwork/v1\nkind: DataProduct\ndomain: example\nname: counts\nversion: 1.0.0\nowner: t@x\n\
             inputs:\n  - {{name: g, product: example/greetings}}\n\
             transform: {{query: \"SELECT language, count(*) AS n FROM g GROUP BY language\"}}\n\
             outputs:\n  - name: counts\n    columns:\n      - {{name: language, type: string, description: Language}}\n      - {{name: n, type: bigint, nullable: false, description: Greetings}}\n\
             description: {{purpose: Greetings per language.}}\nslo: {{freshness: 1d}}\n{schedule}"
        ),
    )
    .unwrap();
}

/// The status of each product's run in `mesh run --format json` output.
fn statuses(runs: &Value) -> Vec<(String, String)> {
    runs.as_array()
        .unwrap()
        .iter()
        .map(|r| {
            (
                r["product"].as_str().unwrap().to_string(),
                r["status"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

fn run(dir: &Path, args: &[&str]) -> Vec<(String, String)> {
    let mut all = vec!["run", "--format", "json"];
    all.extend_from_slice(args);
    statuses(&json(dir, &all))
}

fn pair(p: &str, s: &str) -> (String, String) {
    (p.to_string(), s.to_string())
}

/// Data versions of an output, newest first.
fn versions(dir: &Path, product: &str) -> usize {
    json(dir, &["catalog", "history", product, "--format", "json"])
        .as_array()
        .unwrap()
        .len()
}

#[test]
fn unchanged_runs_are_up_to_date_and_any_change_runs() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = init(tmp.path());
    add_counts(&dir, "");
    ok(&dir, &["deploy"]);
    let built = [
        pair("example/greetings", "succeeded"),
        pair("example/counts", "succeeded"),
    ];
    assert_eq!(run(&dir, &[]), built);
    // Nothing changed: nothing is published, and the run says why.
    let unchanged = [
        pair("example/greetings", "up-to-date"),
        pair("example/counts", "up-to-date"),
    ];
    assert_eq!(run(&dir, &[]), unchanged);
    assert_eq!(versions(&dir, "example/greetings"), 1);
    assert_eq!(versions(&dir, "example/counts"), 1);
    let table = ok(&dir, &["runs", "--limit", "1"]);
    assert!(table.contains("nothing it reads changed"), "{table}");

    // A changed source file runs the product, and its new data version
    // runs the consumer.
    std::fs::write(
        dir.join("example/greetings/data/greetings.csv"),
        "id,language,text\n1,en,Hello\n2,fr,Salut\n",
    )
    .unwrap();
    assert_eq!(run(&dir, &[]), built);
    assert_eq!(versions(&dir, "example/greetings"), 2);

    // Changed SQL runs that product only.
    edit(
        &dir,
        "example/counts/product.yaml",
        "count(*) AS n",
        "count(id) AS n",
    );
    ok(&dir, &["deploy"]);
    assert_eq!(
        run(&dir, &[]),
        [
            pair("example/greetings", "up-to-date"),
            pair("example/counts", "succeeded"),
        ]
    );
    // `--force` publishes anyway; `--backfill` too, recorded as such.
    assert_eq!(
        run(&dir, &["--force", "example/greetings"]),
        [built[0].clone()]
    );
    let backfill = json(
        &dir,
        &["run", "--backfill", "example/greetings", "--format", "json"],
    );
    assert_eq!(backfill[0]["cause"], "backfill");
    assert_eq!(backfill[0]["status"], "succeeded");
    assert_eq!(versions(&dir, "example/greetings"), 4);

    // Filters and one run's timeline.
    let failed = json(
        &dir,
        &[
            "runs",
            "--status",
            "up-to-date",
            "--product",
            "example/counts",
            "--format",
            "json",
        ],
    );
    assert_eq!(failed.as_array().unwrap().len(), 1, "{failed}");
    let err = fails(&dir, &["runs", "--status", "sideways"]);
    assert!(err.contains("`sideways` is not a run status"), "{err}");
    let id = backfill[0]["id"].as_str().unwrap();
    let shown = ok(&dir, &["runs", "show", id]);
    for step in ["read", "transform", "checks", "commit"] {
        assert!(shown.contains(step), "{shown}");
    }
    assert!(shown.contains("cause     backfill (attempt 1)"), "{shown}");
    let err = fails(
        &dir,
        &["runs", "show", "01a00000-0000-7000-8000-000000000000"],
    );
    assert!(
        err.contains("run `01a00000-0000-7000-8000-000000000000` does not exist"),
        "{err}"
    );
}

#[test]
fn failed_runs_say_why_in_the_table() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = init(tmp.path());
    ok(&dir, &["deploy"]);
    std::fs::write(
        dir.join("example/greetings/data/greetings.csv"),
        "id,language,text\n1,xx,Hello\n",
    )
    .unwrap();
    common::mesh(&dir, &["run"]);
    let table = ok(&dir, &["runs", "--status", "failed"]);
    assert!(table.contains("blocking quality checks failed"), "{table}");
}

#[test]
fn cron_patterns_and_time_zones_are_validated_where_they_are_written() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = init(tmp.path());
    let file = "example/greetings/product.yaml";
    edit(
        &dir,
        file,
        "slo: {freshness: 7d}",
        "slo: {freshness: 7d}\nschedule:\n  cron: \"0 25 * * *\"\n  timezone: Mars/Olympus\n",
    );
    let err = fails(&dir, &["validate"]);
    assert!(err.contains("`0 25 * * *` is not a cron pattern"), "{err}");
    assert!(err.contains("product.yaml:38:9"), "{err}");
    assert!(err.contains("`Mars/Olympus` is not a time zone"), "{err}");
    assert!(err.contains("product.yaml:39:13"), "{err}");
    edit(&dir, file, "0 25 * * *", "30 2 * * *");
    edit(&dir, file, "Mars/Olympus", "Europe/Berlin");
    ok(&dir, &["validate"]);
}

/// A `mesh scheduler` process, stopped (SIGTERM) when dropped.
struct Scheduler {
    child: Option<std::process::Child>,
    stderr: Option<std::process::ChildStderr>,
}

impl Scheduler {
    fn start(dir: &Path, env: &[(&str, &str)]) -> Scheduler {
        use std::io::BufRead;
        let mut command = common::command(dir);
        command
            .arg("scheduler")
            .env("MESH_USER", common::USER)
            .env("NO_COLOR", "1")
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped());
        for (k, v) in env {
            command.env(k, v);
        }
        let mut child = command.spawn().unwrap();
        let stdout = child.stdout.take().unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let mut line = String::new();
            let _ = std::io::BufReader::new(stdout).read_line(&mut line);
            let _ = tx.send(line);
        });
        let line = rx.recv_timeout(std::time::Duration::from_secs(60)).unwrap();
        assert!(line.starts_with("scheduling "), "{line}");
        let stderr = child.stderr.take();
        Scheduler {
            child: Some(child),
            stderr,
        }
    }

    /// Waits (at most two minutes) until stderr says `marker`.
    fn wait_for_stderr(&mut self, marker: &str) {
        use std::io::Read;
        let stderr = self.stderr.as_mut().unwrap();
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(120);
        let mut seen = String::new();
        let mut buf = [0u8; 512];
        while !seen.contains(marker) && std::time::Instant::now() < deadline {
            match stderr.read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(n) => seen.push_str(&String::from_utf8_lossy(&buf[..n])),
            }
        }
        assert!(seen.contains(marker), "{seen}");
    }

    fn kill(mut self) {
        let mut child = self.child.take().unwrap();
        signal(&child, "-KILL");
        child.wait().unwrap();
    }
}

fn signal(child: &std::process::Child, which: &str) {
    let _ = std::process::Command::new("kill")
        .args([which, &child.id().to_string()])
        .status();
}

impl Drop for Scheduler {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            signal(&child, "-TERM");
            let _ = child.wait();
        }
    }
}

/// Polls `done` every 200 ms for at most `secs` seconds.
fn eventually(secs: u64, mut done: impl FnMut() -> bool) -> bool {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(secs);
    while std::time::Instant::now() < deadline {
        if done() {
            return true;
        }
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
    done()
}

/// Every run of `product`, oldest first.
fn runs_of(dir: &Path, product: &str) -> Vec<Value> {
    let mut runs = json(
        dir,
        &[
            "runs",
            "--product",
            product,
            "--limit",
            "1000",
            "--format",
            "json",
        ],
    )
    .as_array()
    .unwrap()
    .clone();
    runs.reverse();
    runs
}

/// Fast scheduler settings for tests.
fn fast_scheduler(dir: &Path, settle: &str) {
    let path = dir.join("mesh.yaml");
    let mut text = std::fs::read_to_string(&path).unwrap();
    text.push_str(&format!(
        "scheduler: {{tick: 100ms, settle: {settle}, backoff: 200ms, retries: 1}}\n"
    ));
    std::fs::write(path, text).unwrap();
}

/// `stats/summary`, in another domain, reading `example/counts`.
fn add_summary(dir: &Path) {
    let product = dir.join("stats/summary");
    std::fs::create_dir_all(&product).unwrap();
    std::fs::write(
        product.join("product.yaml"),
        "apiVersion: meshwork/v1\nkind: DataProduct\ndomain: stats\nname: summary\nversion: 1.0.0\nowner: t@x\n\
         inputs:\n  - {name: c, product: example/counts}\n\
         transform: {query: \"SELECT sum(n) AS total FROM c\"}\n\
         outputs:\n  - name: summary\n    columns:\n      - {name: total, type: bigint, description: Greetings}\n\
         description: {purpose: All greetings.}\nslo: {freshness: 1d}\n\
         schedule: {on_upstream_change: true}\n",
    )
    .unwrap();
}

fn causes(runs: &[Value]) -> Vec<(String, String)> {
    runs.iter()
        .map(|r| {
            (
                r["cause"].as_str().unwrap().to_string(),
                r["status"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

#[test]
fn a_release_refreshes_a_chain_across_domains_once_and_a_burst_coalesces() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = init(tmp.path());
    fast_scheduler(&dir, "3s");
    add_counts(&dir, "schedule: {on_upstream_change: true}\n");
    add_summary(&dir);
    ok(&dir, &["deploy"]);
    let _scheduler = Scheduler::start(&dir, &[]);
    // The source is published by hand (as a CI job would); its consumers
    // follow by themselves, in order, once each.
    assert_eq!(
        run(&dir, &["example/greetings"]),
        [pair("example/greetings", "succeeded")]
    );
    let finished = |product: &str, n: usize| {
        let runs = runs_of(&dir, product);
        runs.len() == n && runs[n - 1]["status"] != "running"
    };
    assert!(eventually(60, || finished("stats/summary", 1)));
    let counts = runs_of(&dir, "example/counts");
    let summary = runs_of(&dir, "stats/summary");
    assert_eq!(causes(&counts), [pair("upstream", "succeeded")]);
    assert_eq!(causes(&summary), [pair("upstream", "succeeded")]);
    assert!(
        summary[0]["started_at"].as_str() >= counts[0]["finished_at"].as_str(),
        "{summary:?} {counts:?}"
    );
    // Five releases in a burst (`mesh run` beside the scheduler): one run
    // of each consumer.
    for _ in 0..5 {
        run(&dir, &["--force", "example/greetings"]);
    }
    assert!(eventually(60, || finished("stats/summary", 2)));
    // Nothing more comes once the burst is followed.
    std::thread::sleep(std::time::Duration::from_secs(4));
    let counts = runs_of(&dir, "example/counts");
    assert_eq!(causes(&counts).len(), 2, "{counts:#?}");
    assert_eq!(runs_of(&dir, "stats/summary").len(), 2);
    // The consumer read the last release.
    let greetings = json(
        &dir,
        &[
            "catalog",
            "history",
            "example/greetings",
            "--format",
            "json",
        ],
    );
    let newest = greetings[0]["outputs"][0]["data_version"].clone();
    assert_eq!(
        counts[1]["inputs"]["upstream"]["g"]["version"], newest,
        "{counts:#?}"
    );
}

#[test]
fn two_schedulers_fire_each_cron_tick_once() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = init(tmp.path());
    fast_scheduler(&dir, "1s");
    edit(
        &dir,
        "example/greetings/product.yaml",
        "slo: {freshness: 7d}",
        "slo: {freshness: 7d}\nschedule: {cron: \"*/2 * * * * *\"}\n",
    );
    ok(&dir, &["deploy"]);
    let a = Scheduler::start(&dir, &[]);
    let b = Scheduler::start(&dir, &[]);
    assert!(eventually(60, || runs_of(&dir, "example/greetings").len() >= 4));
    drop((a, b));
    let runs = runs_of(&dir, "example/greetings");
    let ticks: Vec<&str> = runs.iter().map(|r| r["log"][0].as_str().unwrap()).collect();
    let distinct: std::collections::BTreeSet<&&str> = ticks.iter().collect();
    assert_eq!(distinct.len(), ticks.len(), "a tick ran twice: {ticks:#?}");
    assert!(
        ticks.iter().all(|t| t.starts_with("cron tick ")),
        "{ticks:#?}"
    );
    // The first tick builds; the next find nothing changed.
    let statuses: Vec<&str> = runs.iter().map(|r| r["status"].as_str().unwrap()).collect();
    assert_eq!(statuses[0], "succeeded");
    assert!(
        statuses[1..].iter().all(|s| *s == "up-to-date"),
        "{statuses:?}"
    );
}

#[test]
fn a_run_of_a_killed_scheduler_is_abandoned_and_retried_after_restart() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = init(tmp.path());
    fast_scheduler(&dir, "100ms");
    add_counts(&dir, "schedule: {on_upstream_change: true}\n");
    ok(&dir, &["deploy"]);
    ok(&dir, &["run", "example/greetings"]);
    let mut first = Scheduler::start(&dir, &[("MESH_FAILPOINT", "after-stage")]);
    first.wait_for_stderr("failpoint after-stage reached");
    first.kill();
    let running = runs_of(&dir, "example/counts");
    assert_eq!(causes(&running), [pair("upstream", "running")]);
    let table = table(&dir, "example/counts");
    let _second = Scheduler::start(&dir, &[]);
    assert!(eventually(60, || {
        let runs = runs_of(&dir, "example/counts");
        runs.len() == 2 && runs[1]["status"] != "running"
    }));
    let runs = runs_of(&dir, "example/counts");
    assert_eq!(
        causes(&runs),
        [pair("upstream", "abandoned"), pair("retry", "succeeded")]
    );
    assert_eq!(runs[1]["attempt"], 2);
    // The abandoned run's staged files are gone.
    assert!(
        common::run_dirs(&table).len() == 1,
        "{:?}",
        common::run_dirs(&table)
    );
}

/// The table folder of a product's only output.
fn table(dir: &Path, product: &str) -> std::path::PathBuf {
    let (domain, name) = product.split_once('/').unwrap();
    dir.join(".mesh/tables").join(domain).join(name).join(name)
}

/// The events received, in order, once each (a retried delivery counts
/// once), with their payloads.
fn events(got: &std::sync::Arc<std::sync::Mutex<Vec<common::receiver::Received>>>) -> Vec<Value> {
    let mut seen = std::collections::BTreeSet::new();
    got.lock()
        .unwrap()
        .iter()
        .filter(|r| seen.insert(r.headers["x-mesh-delivery"].clone()))
        .map(|r| serde_json::from_str(&r.body).unwrap())
        .collect()
}

#[test]
fn freshness_breaches_and_recoveries_are_noticed_without_runs_and_sent_signed() {
    use hmac::Mac;
    let tmp = tempfile::tempdir().unwrap();
    let dir = init(tmp.path());
    let (url, got) = common::receiver::receiver("/hook");
    let path = dir.join("mesh.yaml");
    let mut text = std::fs::read_to_string(&path).unwrap();
    text.push_str(&format!(
        "scheduler: {{tick: 100ms, health: 200ms}}\nwebhooks:\n  - {{url: \"{url}\", secret_env: HOOK_SECRET, domains: [example]}}\n"
    ));
    std::fs::write(&path, text).unwrap();
    edit(
        &dir,
        "example/greetings/product.yaml",
        "slo: {freshness: 7d}",
        "slo: {freshness: {warn: 3s, fail: 6s}}",
    );
    ok(&dir, &["deploy"]);
    ok(&dir, &["run"]);
    let status = json(&dir, &["status", "--format", "json"]);
    assert_eq!(status[0]["health"], "healthy", "{status}");
    let served = common::serve::Served::spawn(
        &dir,
        &["--http", "127.0.0.1:0", "--pg", "off", "--flight", "off"],
        &[("HOOK_SECRET", "s3cret")],
    );
    // Nothing runs; the data only ages.
    let kinds = |got: &_| -> Vec<(String, String)> {
        events(got)
            .iter()
            .map(|e| {
                (
                    e["event"].as_str().unwrap().to_string(),
                    e["health"].as_str().unwrap_or("").to_string(),
                )
            })
            .collect()
    };
    assert!(
        eventually(60, || kinds(&got).len() >= 2),
        "{:?}",
        kinds(&got)
    );
    assert_eq!(
        kinds(&got)[..2],
        [
            pair("slo_breach", "degraded"),
            pair("slo_breach", "failing")
        ]
    );
    let breach = events(&got)[1].clone();
    assert_eq!(breach["product"], "example/greetings");
    assert_eq!(breach["previous"], "degraded");
    assert!(
        breach["reasons"][0]
            .as_str()
            .unwrap()
            .starts_with("stale: its newest data is"),
        "{breach}"
    );
    // Status everywhere: CLI (exit 1 while failing), catalog, REST, metrics.
    let out = common::mesh(&dir, &["status"]);
    assert_eq!(out.status.code(), Some(1));
    let table = String::from_utf8_lossy(&out.stdout);
    assert!(
        table.contains("failing") && table.contains("stale"),
        "{table}"
    );
    let show = ok(&dir, &["catalog", "show", "example/greetings"]);
    assert!(show.contains("health:      failing"), "{show}");
    let token = common::serve::token(&dir, common::USER);
    let rest = common::serve::body_json(&common::serve::curl(
        &served.base,
        "/api/v1/status",
        Some(&token),
        None,
    ));
    assert_eq!(rest["items"][0]["health"], "failing", "{rest}");
    let (_, _, metrics) = common::serve::curl(&served.base, "/metrics", Some(&token), None);
    assert!(
        metrics.contains(
            "mesh_product_health{domain=\"example\",product=\"example/greetings\",health=\"failing\"} 1"
        ),
        "{metrics}"
    );
    assert!(
        metrics.contains(
            "mesh_product_release_age_seconds{domain=\"example\",product=\"example/greetings\"}"
        ),
        "{metrics}"
    );

    // A new release recovers it.
    ok(&dir, &["run", "--force"]);
    assert!(eventually(60, || kinds(&got).len() >= 3));
    assert_eq!(kinds(&got)[2], pair("recovery", "healthy"));
    // A failed run is announced too, without its error text.
    std::fs::write(
        dir.join("example/greetings/data/greetings.csv"),
        "id,language,text\n1,xx,Secret\n",
    )
    .unwrap();
    common::mesh(&dir, &["run"]);
    assert!(eventually(60, || events(&got)
        .iter()
        .any(|e| e["event"] == "run_failed")));
    let failed = events(&got)
        .into_iter()
        .find(|e| e["event"] == "run_failed")
        .unwrap();
    assert_eq!(failed["run"]["status"], "failed");
    assert!(!failed.to_string().contains("Secret"), "{failed}");

    // Every delivery is signed: HMAC-SHA256 of `<timestamp>.<body>`.
    let all = got.lock().unwrap().clone();
    for r in &all {
        let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(b"s3cret").unwrap();
        mac.update(format!("{}.{}", r.headers["x-mesh-timestamp"], r.body).as_bytes());
        let hex: String = mac
            .finalize()
            .into_bytes()
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        assert_eq!(r.headers["x-mesh-signature"], format!("sha256={hex}"));
    }
    // The first delivery was refused with a 500 and sent again.
    assert_eq!(
        all[0].headers["x-mesh-delivery"],
        all[1].headers["x-mesh-delivery"]
    );
    drop(served);
}

#[test]
fn a_failed_scheduled_run_is_retried_with_backoff_until_its_retries_are_spent() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = init(tmp.path());
    fast_scheduler(&dir, "100ms");
    // Its checks can never pass: every attempt fails.
    add_counts(&dir, "schedule: {on_upstream_change: true, retries: 2}\n");
    edit(
        &dir,
        "example/counts/product.yaml",
        "description: Greetings}\n",
        "description: Greetings}\n    quality:\n      - {check: row_count, min: 1000}\n",
    );
    ok(&dir, &["deploy"]);
    let _scheduler = Scheduler::start(&dir, &[]);
    ok(&dir, &["run", "example/greetings"]);
    let finished = |n: usize| {
        let runs = runs_of(&dir, "example/counts");
        runs.len() == n && runs[n - 1]["status"] != "running"
    };
    assert!(eventually(60, || finished(3)));
    // Backoff 200 ms, then 400 ms: nothing more comes.
    std::thread::sleep(std::time::Duration::from_secs(3));
    let runs = runs_of(&dir, "example/counts");
    assert_eq!(
        causes(&runs),
        [
            pair("upstream", "failed"),
            pair("retry", "failed"),
            pair("retry", "failed")
        ]
    );
    let attempts: Vec<i64> = runs
        .iter()
        .map(|r| r["attempt"].as_i64().unwrap())
        .collect();
    assert_eq!(attempts, [1, 2, 3]);
    let started: Vec<chrono::DateTime<chrono::Utc>> = runs
        .iter()
        .map(|r| r["started_at"].as_str().unwrap().parse().unwrap())
        .collect();
    let finished_at: Vec<chrono::DateTime<chrono::Utc>> = runs
        .iter()
        .map(|r| r["finished_at"].as_str().unwrap().parse().unwrap())
        .collect();
    assert!(started[1] - finished_at[0] >= chrono::Duration::milliseconds(200));
    assert!(started[2] - finished_at[1] >= chrono::Duration::milliseconds(400));
    assert!(
        runs[2]["log"][0]
            .as_str()
            .unwrap()
            .starts_with("retry: attempt 3")
    );
}
