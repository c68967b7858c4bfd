//! The catalog store's behaviour, written once and run on every backend
//! (tests/support): a real SQLite file, and a real PostgreSQL database
//! when the test command provides a server.
#![allow(clippy::unwrap_used)]

mod support;

use std::collections::BTreeMap;

use chrono::{Duration, Utc};
use mesh_catalog::{
    CatalogStore, CheckResult, ColumnRecord, ContractOverride, OutputRecord, ProductRecord,
    Publication, QueuedRun, RunFilter, RunId, RunRecord, RunStatus, RunStore, SqlCatalog,
};
use mesh_spec::{DomainName, OutputName, ProductName, ProductRef};

fn product(domain: &str, name: &str, descriptor: &str) -> ProductRecord {
    let p = ProductRef::new(
        DomainName::parse(domain).unwrap(),
        ProductName::parse(name).unwrap(),
    );
    ProductRecord {
        product: p.clone(),
        version: "1.0.0".into(),
        status: "active".into(),
        owner: "team@example.org".into(),
        descriptor_path: format!("{domain}/{name}/product.yaml"),
        descriptor: descriptor.into(),
        sql_texts: BTreeMap::from([("transform.sql".into(), "SELECT 1".into())]),
        deployed_at: Utc::now(),
        deployed_by: "tester".into(),
        outputs: vec![OutputRecord {
            domain: p.domain.clone(),
            output: OutputName::parse(name).unwrap(),
            product: p,
            location: format!("/tables/{domain}/{name}/{name}"),
            columns: vec![ColumnRecord {
                name: "id".into(),
                ty: "bigint".into(),
                nullable: false,
            }],
        }],
        line_of: None,
        sunset: None,
    }
}

fn run(p: &ProductRecord, status: RunStatus, minutes_ago: i64) -> RunRecord {
    let started = Utc::now() - Duration::minutes(minutes_ago);
    let mut r = RunRecord::begin(p.product.clone(), p.version.clone(), "manual");
    r.status = status;
    r.started_at = started;
    r.finished_at = Some(started + Duration::seconds(1));
    r.duration_ms = Some(1000);
    r.rows_written = Some(3);
    r.checks_passed = 1;
    r.checks = vec![CheckResult {
        output: p.outputs[0].output.to_string(),
        name: "row_count".into(),
        kind: "row_count".into(),
        severity: "error".into(),
        passed: true,
        observed: "3 rows".into(),
        sample: vec![serde_json::json!({"id": 1})],
    }];
    r
}

fn published(r: &mut RunRecord, version: i64) {
    r.publications = vec![Publication {
        domain: r.product.domain.clone(),
        output: OutputName::parse(r.product.name.as_str()).unwrap(),
        table_version: version,
        product_version: r.version.clone(),
        run_id: r.id.clone(),
        row_count: 3,
        published_at: Utc::now(),
        files: Some(vec![format!("r-{}/part-0.parquet", r.id)]),
        columns: Some(vec![ColumnRecord {
            name: "id".into(),
            ty: "bigint".into(),
            nullable: false,
        }]),
        read_version: None,
    }];
}

#[tokio::test]
async fn deploy_creates_skips_unchanged_and_updates() {
    for backend in support::backends().await {
        eprintln!("on {}", backend.name);
        let catalog = backend.open().await;
        let a = product("sales", "orders", "v1");
        let b = product("customers", "profiles", "v1");
        let g0 = catalog.deployment_generation().await.unwrap();
        let first = catalog
            .deploy("alice", vec![a.clone(), b.clone()], vec![])
            .await
            .unwrap();
        assert_eq!(first.created.len(), 2);
        assert!(first.deployment.is_some());
        let g1 = catalog.deployment_generation().await.unwrap();
        assert!(g1 > g0, "a deploy moves the generation");

        let again = catalog
            .deploy("bob", vec![a.clone(), b.clone()], vec![])
            .await
            .unwrap();
        assert_eq!(again.unchanged.len(), 2);
        assert!(again.deployment.is_none(), "a no-op records no deployment");
        assert_eq!(catalog.deployment_generation().await.unwrap(), g1);

        let changed = product("sales", "orders", "v2");
        let third = catalog
            .deploy(
                "carol",
                vec![changed],
                vec![ContractOverride {
                    product: a.product.clone(),
                    from_version: "1.0.0".into(),
                    to_version: "1.1.0".into(),
                    by: "carol".into(),
                    at: Utc::now(),
                    changes: vec!["output `orders`: column `x` removed".into()],
                    consumers: vec!["finance/revenue:revenue".into()],
                }],
            )
            .await
            .unwrap();
        assert_eq!(third.updated, vec![a.product.clone()]);
        assert!(catalog.deployment_generation().await.unwrap() > g1);

        // Reopening the same file keeps everything (migrations are idempotent).
        drop(catalog);
        let catalog = backend.open().await;
        let stored = catalog.product(&a.product).await.unwrap().unwrap();
        assert_eq!(stored.descriptor, "v2");
        assert_eq!(stored.deployed_by, "carol");
        let overrides = catalog.overrides(&a.product).await.unwrap();
        assert_eq!(overrides.len(), 1);
        assert_eq!(overrides[0].by, "carol");
        assert_eq!(overrides[0].consumers, ["finance/revenue:revenue"]);
        assert_eq!(stored.sql_texts, a.sql_texts);
        let names: Vec<String> = catalog
            .products()
            .await
            .unwrap()
            .iter()
            .map(|p| p.product.to_string())
            .collect();
        assert_eq!(names, ["customers/profiles", "sales/orders"]);
        let domains = catalog.domains().await.unwrap();
        assert_eq!(domains.len(), 2);
        let sales = DomainName::parse("sales").unwrap();
        let outputs = catalog.domain_outputs(&sales).await.unwrap();
        assert_eq!(outputs.len(), 1);
        assert_eq!(outputs[0].columns[0].ty, "bigint");
        let orders = OutputName::parse("orders").unwrap();
        assert!(catalog.output(&sales, &orders).await.unwrap().is_some());
    }
}

#[tokio::test]
async fn runs_record_checks_publications_and_history() {
    for backend in support::backends().await {
        eprintln!("on {}", backend.name);
        let catalog = backend.open().await;
        let a = product("sales", "orders", "v1");
        let b = product("customers", "profiles", "v1");
        catalog
            .deploy("alice", vec![a.clone(), b.clone()], vec![])
            .await
            .unwrap();

        let mut old = run(&a, RunStatus::Succeeded, 10);
        published(&mut old, 1);
        let mut new = run(&a, RunStatus::Succeeded, 5);
        published(&mut new, 2);
        let mut failed = run(&b, RunStatus::Failed, 1);
        failed.error = Some("boom".into());
        let start = |r: &RunRecord| {
            let mut started = r.clone();
            started.status = RunStatus::Running;
            started
        };
        catalog
            .start_run(&start(&old), "me", i64::MAX)
            .await
            .unwrap();
        catalog
            .start_run(&start(&failed), "me", i64::MAX)
            .await
            .unwrap();
        assert_eq!(catalog.running_runs().await.unwrap().len(), 2);
        // One run per product at a time.
        let busy = catalog
            .start_run(&start(&new), "other", i64::MAX)
            .await
            .unwrap_err();
        assert!(
            matches!(&busy, mesh_catalog::CatalogError::RunBusy { holder, .. } if holder == "me"),
            "{busy}"
        );
        catalog.finish_run(&old).await.unwrap();
        catalog
            .start_run(&start(&new), "me", i64::MAX)
            .await
            .unwrap();
        for r in [&new, &failed] {
            catalog.finish_run(r).await.unwrap();
        }
        assert!(catalog.running_runs().await.unwrap().is_empty());
        assert!(
            catalog.leases().await.unwrap().is_empty(),
            "leases released"
        );

        let history = catalog.runs(&RunFilter::default(), 10).await.unwrap();
        let ids: Vec<&RunId> = history.iter().map(|r| &r.id).collect();
        assert_eq!(ids, [&failed.id, &new.id, &old.id], "newest first");
        assert_eq!(history[0].error.as_deref(), Some("boom"));
        assert_eq!(history[1].checks, new.checks);
        assert_eq!(history[1].publications[0].table_version, 2);

        let only_a = catalog
            .runs(
                &RunFilter {
                    product: Some(a.product.clone()),
                    status: None,
                    builds_only: false,
                },
                1,
            )
            .await
            .unwrap();
        assert_eq!(only_a.len(), 1);
        assert_eq!(only_a[0].id, new.id);

        let mut last: Vec<(String, RunId)> = catalog
            .last_runs()
            .await
            .unwrap()
            .into_iter()
            .map(|r| (r.product.to_string(), r.id))
            .collect();
        last.sort();
        assert_eq!(
            last,
            [
                ("customers/profiles".to_string(), failed.id.clone()),
                ("sales/orders".to_string(), new.id.clone())
            ]
        );

        let orders = OutputName::parse("orders").unwrap();
        let current = catalog
            .current_publication(&a.product.domain, &orders)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(current.table_version, 2);
        assert_eq!(
            current.files, new.publications[0].files,
            "file lists round-trip"
        );
        assert_eq!(current.columns, new.publications[0].columns);
        assert_eq!(current.run_id, new.id);
        let versions: Vec<i64> = catalog
            .publications(&a.product.domain, &orders)
            .await
            .unwrap()
            .iter()
            .map(|p| p.table_version)
            .collect();
        assert_eq!(versions, [2, 1]);

        // A product read alone carries its own outputs only.
        let read = catalog.product(&a.product).await.unwrap().unwrap();
        assert_eq!(read.outputs, a.outputs);
    }
}

#[tokio::test]
async fn current_versions_are_read_whole_or_since_a_publication() {
    for backend in support::backends().await {
        eprintln!("on {}", backend.name);
        let catalog = backend.open().await;
        let a = product("sales", "orders", "v1");
        let b = product("customers", "profiles", "v1");
        catalog
            .deploy("alice", vec![a.clone(), b.clone()], vec![])
            .await
            .unwrap();
        let publish = |p: &ProductRecord, version: i64| {
            let mut r = run(p, RunStatus::Succeeded, 0);
            published(&mut r, version);
            r
        };
        for r in [publish(&a, 1), publish(&b, 1), publish(&a, 2)] {
            let mut started = r.clone();
            started.status = RunStatus::Running;
            catalog.start_run(&started, "me", i64::MAX).await.unwrap();
            catalog.finish_run(&r).await.unwrap();
        }
        let all = catalog.current_versions(None).await.unwrap();
        let newest: Vec<(&str, i64)> = all.iter().map(|v| (v.output.as_str(), v.version)).collect();
        assert_eq!(newest, [("customers.profiles", 1), ("sales.orders", 2)]);
        let seq = all.iter().map(|v| v.seq).max().unwrap();
        assert!(all.iter().all(|v| v.cause == "manual" && v.seq > 0));
        assert!(
            catalog
                .current_versions(Some(seq))
                .await
                .unwrap()
                .is_empty(),
            "nothing newer"
        );

        // Two more releases of one output and one of the other: each output
        // once, at its newest version.
        for r in [publish(&b, 2), publish(&b, 3), publish(&a, 3)] {
            let mut started = r.clone();
            started.status = RunStatus::Running;
            catalog.start_run(&started, "me", i64::MAX).await.unwrap();
            catalog.finish_run(&r).await.unwrap();
        }
        let since = catalog.current_versions(Some(seq)).await.unwrap();
        let newer: Vec<(&str, i64)> = since
            .iter()
            .map(|v| (v.output.as_str(), v.version))
            .collect();
        assert_eq!(newer, [("customers.profiles", 3), ("sales.orders", 3)]);
        assert!(since.iter().all(|v| v.seq > seq));
        let later = since.iter().map(|v| v.seq).max().unwrap();
        assert!(
            catalog
                .current_versions(Some(later))
                .await
                .unwrap()
                .is_empty()
        );
    }
}

#[tokio::test]
async fn finishing_a_run_that_never_started_is_refused() {
    for backend in support::backends().await {
        eprintln!("on {}", backend.name);
        let catalog = backend.open().await;
        let a = product("sales", "orders", "v1");
        catalog
            .deploy("alice", vec![a.clone()], vec![])
            .await
            .unwrap();
        let mut r = run(&a, RunStatus::Succeeded, 0);
        published(&mut r, 1);
        let err = catalog.finish_run(&r).await.unwrap_err();
        assert!(err.to_string().contains("without being started"), "{err}");
        assert!(
            catalog
                .runs(&RunFilter::default(), 10)
                .await
                .unwrap()
                .is_empty()
        );
        let orders = OutputName::parse("orders").unwrap();
        assert!(
            catalog
                .current_publication(&a.product.domain, &orders)
                .await
                .unwrap()
                .is_none(),
            "nothing of the refused run was written"
        );
    }
}

#[tokio::test]
async fn an_unopenable_catalog_path_is_an_error_not_a_panic() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("not-a-dir");
    std::fs::write(&file, "x").unwrap();
    let err = SqlCatalog::open(&file.join("catalog.db"))
        .await
        .unwrap_err();
    assert!(err.to_string().contains("cannot open the catalog"), "{err}");
}

/// Paths recorded absolute by earlier versions become relative at the
/// first open under their roots, so the catalog follows the project when
/// it is moved; a location outside the roots is kept as written.
#[tokio::test]
async fn paths_under_the_project_follow_it_when_moved() {
    for backend in support::backends().await {
        eprintln!("on {}", backend.name);
        let catalog = backend.open().await;
        let mut a = product("sales", "orders", "v1");
        a.descriptor_path = "/srv/mesh_1/sales/orders/product.yaml".into();
        a.outputs[0].location = "/srv/mesh_1/.mesh/tables/sales/orders/orders".into();
        let mut b = product("customers", "profiles", "v1");
        b.outputs[0].location = "s3://elsewhere/customers/profiles".into();
        catalog
            .deploy("alice", vec![a.clone(), b], vec![])
            .await
            .unwrap();
        drop(catalog);

        let project = std::path::Path::new("/srv/mesh_1");
        let catalog = backend
            .open_under(project, "/srv/mesh_1/.mesh/tables")
            .await;
        let stored = catalog.product(&a.product).await.unwrap().unwrap();
        assert_eq!(stored.descriptor_path, a.descriptor_path);
        assert_eq!(stored.outputs[0].location, a.outputs[0].location);
        let again = catalog
            .deploy("alice", vec![a.clone()], vec![])
            .await
            .unwrap();
        assert_eq!(again.unchanged.len(), 1, "resolved paths compare equal");
        drop(catalog);

        let moved = std::path::Path::new("/data/mesh");
        let catalog = backend.open_under(moved, "/data/mesh/.mesh/tables").await;
        let stored = catalog.product(&a.product).await.unwrap().unwrap();
        assert_eq!(
            stored.descriptor_path,
            "/data/mesh/sales/orders/product.yaml"
        );
        assert_eq!(
            stored.outputs[0].location,
            "/data/mesh/.mesh/tables/sales/orders/orders"
        );
        let sales = DomainName::parse("customers").unwrap();
        let outputs = catalog.domain_outputs(&sales).await.unwrap();
        assert_eq!(outputs[0].location, "s3://elsewhere/customers/profiles");
    }
}

#[tokio::test]
async fn the_queue_coalesces_claims_once_and_fires_each_tick_once() {
    for backend in support::backends().await {
        eprintln!("on {}", backend.name);
        let catalog = backend.open().await;
        let a = product("sales", "orders", "v1");
        catalog
            .deploy("alice", vec![a.clone()], vec![])
            .await
            .unwrap();
        let owed = |cause: &str, due_at: i64, attempt: i64| QueuedRun {
            product: a.product.clone(),
            cause: cause.into(),
            due_at,
            attempt,
            queued_at: 0,
        };
        // Five causes, one owed run: the latest due time wins.
        for due in [10, 50, 20, 40, 30] {
            catalog.enqueue(&owed("upstream", due, 1)).await.unwrap();
        }
        let queue = catalog.queue().await.unwrap();
        assert_eq!(queue.len(), 1);
        assert_eq!(queue[0].due_at, 50);

        // Two processes claim the entry they read: one wins.
        let run = RunRecord::begin(a.product.clone(), "1.0.0".into(), "upstream");
        let other = RunRecord::begin(a.product.clone(), "1.0.0".into(), "upstream");
        assert!(
            catalog
                .claim(&queue[0], &run, "p1", i64::MAX)
                .await
                .unwrap()
        );
        assert!(
            !catalog
                .claim(&queue[0], &other, "p2", i64::MAX)
                .await
                .unwrap()
        );
        assert!(catalog.queue().await.unwrap().is_empty());
        assert_eq!(catalog.running_runs().await.unwrap().len(), 1);

        // While it runs, a new entry cannot be claimed: the product is busy,
        // and the entry stays owed.
        catalog.enqueue(&owed("cron", 60, 1)).await.unwrap();
        let entry = catalog.queue().await.unwrap().remove(0);
        assert!(!catalog.claim(&entry, &other, "p2", i64::MAX).await.unwrap());
        assert_eq!(catalog.queue().await.unwrap(), vec![entry.clone()]);

        // A dead holder's lease is taken over once.
        assert!(catalog.take_lease(&run, Some("p1"), "p2", 5).await.unwrap());
        assert!(!catalog.take_lease(&run, Some("p1"), "p3", 5).await.unwrap());
        assert!(!catalog.extend_lease(&run.id, "p1", 9).await.unwrap());
        assert!(catalog.extend_lease(&run.id, "p2", 9).await.unwrap());
        let mut done = run.clone();
        done.status = RunStatus::Abandoned;
        catalog.finish_run(&done).await.unwrap();
        assert!(catalog.claim(&entry, &other, "p2", i64::MAX).await.unwrap());

        // Each tick fires once, whoever asks.
        let tick = owed("cron", 100, 1);
        assert!(catalog.fire_tick(&tick, 100, "p1").await.unwrap());
        assert!(!catalog.fire_tick(&tick, 100, "p2").await.unwrap());
        assert_eq!(catalog.last_tick(&a.product).await.unwrap(), Some(100));
        assert_eq!(catalog.queue().await.unwrap().len(), 1);
    }
}

/// Two processes (two pools) start runs of one product at the same
/// moment, again and again: each time exactly one holds the lease and the
/// other is told who does; every winner's publication is recorded once.
#[tokio::test]
async fn two_writers_race_for_one_lease() {
    for backend in support::backends().await {
        eprintln!("on {}", backend.name);
        let (one, two) = (backend.open().await, backend.open().await);
        let a = product("sales", "orders", "v1");
        one.deploy("alice", vec![a.clone()], vec![]).await.unwrap();
        let until = Utc::now().timestamp_millis() + 60_000;
        for round in 1..=20_i64 {
            let mut first = run(&a, RunStatus::Running, 0);
            let mut second = run(&a, RunStatus::Running, 0);
            first.finished_at = None;
            second.finished_at = None;
            let (x, y) = tokio::join!(
                one.start_run(&first, "one", until),
                two.start_run(&second, "two", until)
            );
            let (winner, store, mut won) = match (x, y) {
                (Ok(()), Err(e)) => {
                    assert!(
                        matches!(&e, mesh_catalog::CatalogError::RunBusy { holder, .. } if holder == "one"),
                        "{e}"
                    );
                    ("one", &one, first)
                }
                (Err(e), Ok(())) => {
                    assert!(
                        matches!(&e, mesh_catalog::CatalogError::RunBusy { holder, .. } if holder == "two"),
                        "{e}"
                    );
                    ("two", &two, second)
                }
                (x, y) => panic!("round {round}: exactly one run may start: {x:?} / {y:?}"),
            };
            let leases = one.leases().await.unwrap();
            assert_eq!(leases.len(), 1, "round {round}");
            assert_eq!(leases[0].holder, winner);
            won.status = RunStatus::Succeeded;
            won.finished_at = Some(Utc::now());
            published(&mut won, round);
            store.finish_run(&won).await.unwrap();
        }
        let orders = OutputName::parse("orders").unwrap();
        let versions: Vec<i64> = two
            .publications(&a.product.domain, &orders)
            .await
            .unwrap()
            .iter()
            .map(|p| p.table_version)
            .collect();
        assert_eq!(versions, (1..=20).rev().collect::<Vec<_>>());
        assert!(one.leases().await.unwrap().is_empty());
    }
}

/// Each backend's migrations produce the same tables and columns, with
/// the same nullability.
#[tokio::test]
async fn both_migration_sets_build_the_same_schema() {
    let backends = support::backends().await;
    let mut schemas = Vec::new();
    for backend in &backends {
        let _migrated = backend.open().await;
        let mut raw = backend.raw().await;
        let sql = match backend.name {
            "sqlite" => {
                "SELECT m.name, p.name, CASE WHEN p.\"notnull\" = 1 OR p.pk > 0 THEN 1 ELSE 0 END \
                 FROM sqlite_master m JOIN pragma_table_info(m.name) p \
                 WHERE m.type = 'table' AND m.name NOT LIKE 'sqlite_%' AND m.name <> '_sqlx_migrations' \
                 ORDER BY 1, 2"
            }
            _ => {
                "SELECT CAST(table_name AS text), CAST(column_name AS text), \
                 CASE WHEN is_nullable = 'NO' THEN 1 ELSE 0 END \
                 FROM information_schema.columns WHERE table_schema = 'public' \
                 AND table_name <> '_sqlx_migrations' ORDER BY 1, 2"
            }
        };
        let rows: Vec<(String, String, i64)> =
            sqlx::query_as(sql).fetch_all(&mut raw).await.unwrap();
        schemas.push((backend.name, rows));
    }
    assert!(schemas[0].1.len() > 50, "{:?}", schemas[0]);
    for (name, rows) in &schemas[1..] {
        assert_eq!(rows, &schemas[0].1, "{name} differs from sqlite");
    }
    // And each migration has its twin, by name.
    let names = |dir: &str| -> Vec<String> {
        let mut v: Vec<String> = std::fs::read_dir(
            std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("migrations")
                .join(dir),
        )
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
        v.sort();
        v
    };
    assert_eq!(names("sqlite"), names("postgres"));
}

/// PostgreSQL only: every pooled connection dropped (a restart, a network
/// failure) is replaced at the next statement, which succeeds.
#[tokio::test]
async fn a_lost_connection_is_replaced_not_fatal() {
    let Some(server) = support::postgres_server() else {
        return;
    };
    let url = support::postgres_database(&server).await;
    let host_port = url.split_once('@').unwrap().1.split('/').next().unwrap();
    let upstream = tokio::net::lookup_host(host_port)
        .await
        .unwrap()
        .next()
        .unwrap();
    let proxy = support::Proxy::start(upstream);
    let through = url.replace(host_port, &proxy.addr.to_string());
    let catalog = SqlCatalog::connect(&through).await.unwrap();
    let a = product("sales", "orders", "v1");
    catalog
        .deploy("alice", vec![a.clone()], vec![])
        .await
        .unwrap();
    for round in 0..3 {
        proxy.cut();
        // Reads and writes after the cut both succeed.
        assert_eq!(catalog.products().await.unwrap().len(), 1, "round {round}");
        let mut r = run(&a, RunStatus::Running, 0);
        r.finished_at = None;
        catalog.start_run(&r, "me", i64::MAX).await.unwrap();
        proxy.cut();
        r.status = RunStatus::Succeeded;
        r.finished_at = Some(Utc::now());
        published(&mut r, round + 1);
        catalog.finish_run(&r).await.unwrap();
    }
    assert_eq!(
        catalog.runs(&RunFilter::default(), 10).await.unwrap().len(),
        3
    );
}

/// A whole SQLite catalog copied to each backend: every table's rows
/// arrive, the stores read the same products, runs, checks, publications
/// and audit entries, new audit entries follow the copied ones, copying
/// again only verifies, and a target holding another mesh is refused.
#[tokio::test]
async fn a_catalog_is_copied_whole_and_verified() {
    use mesh_catalog::{AuditFilter, IdentityStore};
    let source_dir = tempfile::tempdir().unwrap();
    let source = SqlCatalog::open(&source_dir.path().join("catalog.db"))
        .await
        .unwrap();
    let a = product("sales", "orders", "v1");
    source
        .deploy(
            "alice",
            vec![a.clone(), product("hr", "staff", "v1")],
            vec![],
        )
        .await
        .unwrap();
    for (i, status) in [
        RunStatus::Succeeded,
        RunStatus::Failed,
        RunStatus::Succeeded,
    ]
    .into_iter()
    .enumerate()
    {
        let mut r = run(&a, status, 10 - i as i64);
        if status == RunStatus::Succeeded {
            published(&mut r, i as i64 + 1);
        }
        source.start_run(&r, "me", 0).await.unwrap();
        source.finish_run(&r).await.unwrap();
    }
    source.add_principal("ana", "user", "root").await.unwrap();
    let mut audit = mesh_catalog::AuditEntry::new(
        "ana",
        "query",
        "allow",
        "test",
        serde_json::json!({"sql": "SELECT 1"}),
    );
    audit.product = Some("sales/orders".into());
    source
        .append_audit(&[audit.clone(), audit.clone()])
        .await
        .unwrap();

    for backend in support::backends().await {
        eprintln!("on {}", backend.name);
        let target = backend.open().await;
        let report = source.copy_to(&target, None).await.unwrap();
        assert!(report.copied);
        let rows = |t: &str| report.tables.iter().find(|c| c.table == t).unwrap().rows;
        assert_eq!(
            (rows("products"), rows("runs"), rows("audit_log")),
            (2, 3, 2)
        );
        assert_eq!(rows("check_results"), 3);
        assert_eq!(rows("publications"), 2);
        assert_eq!(
            source.products().await.unwrap(),
            target.products().await.unwrap()
        );
        assert_eq!(
            source.runs(&RunFilter::default(), 10).await.unwrap(),
            target.runs(&RunFilter::default(), 10).await.unwrap()
        );
        let orders = OutputName::parse("orders").unwrap();
        assert_eq!(
            source
                .publications(&a.product.domain, &orders)
                .await
                .unwrap(),
            target
                .publications(&a.product.domain, &orders)
                .await
                .unwrap()
        );
        let copied = target.audit(&AuditFilter::default()).await.unwrap();
        assert_eq!(copied.len(), 2);
        target.append_audit(&[audit.clone()]).await.unwrap();
        let after = target.audit(&AuditFilter::default()).await.unwrap();
        assert!(
            after[2].seq > copied[1].seq,
            "new entries follow the copied ones"
        );
        // The extra entry makes the target a different mesh.
        let again = source.copy_to(&target, None).await.unwrap_err();
        assert!(
            again.to_string().contains("already holds a different mesh"),
            "{again}"
        );
    }
    // Into a fresh target twice, recording the copy: the second copy only
    // verifies (the record is the copy's own, not a difference).
    let fresh = support::backends().await.pop().unwrap();
    let target = fresh.open().await;
    let mut record = audit.clone();
    record.action = "mesh.migrate".into();
    assert!(source.copy_to(&target, Some(&record)).await.unwrap().copied);
    assert!(!source.copy_to(&target, Some(&record)).await.unwrap().copied);
    let migrated = AuditFilter {
        action: Some("mesh.migrate".into()),
        ..AuditFilter::default()
    };
    assert_eq!(target.audit(&migrated).await.unwrap().len(), 1);
}
