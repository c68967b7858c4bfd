//! What BI tools, notebooks and data frames do first, through the real
//! clients: SQLAlchemy 2 with psycopg 3 and psycopg2 reflecting the
//! catalog (schemas, tables, columns, autoload), pandas reading tables
//! and chunks, server-side cursors, savepoints and `search_path`
//! (tests/clients/bi.py).
#![allow(clippy::unwrap_used)]

mod common;

use common::clients::{packages, psql, psql_ok, python_client, python_client_with, split};
use common::serve::{Served, token};
use common::{USER, demo, ok};
use serde_json::{Value, json};

#[test]
fn sqlalchemy_pandas_and_cursors_work_with_both_drivers() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = demo(tmp.path(), 60);
    ok(&dir, &["principal", "add", "eve"]);
    // A private product: its key, columns and descriptions stay out of
    // the catalog tables of a caller who may not see it.
    let descriptor = dir.join("logistics/shipments/product.yaml");
    let text = std::fs::read_to_string(&descriptor).unwrap();
    std::fs::write(&descriptor, text + "access: {visibility: private}\n").unwrap();
    ok(&dir, &["deploy"]);
    let admin = token(&dir, USER);
    let eve = token(&dir, "eve");
    let served = Served::start(&dir, &[]);
    let (host, port) = split(served.pg.as_deref().unwrap());
    let result = python_client(
        "bi.py",
        &json!({
            "host": host,
            "port": port.parse::<u16>().unwrap(),
            "user": USER,
            "password": admin,
            "stranger": {"user": "eve", "password": eve},
        }),
    );
    for driver in ["psycopg", "psycopg2"] {
        let r = &result[driver];
        let ok_of = |step: &str| -> Value {
            r[step]
                .get("ok")
                .cloned()
                .unwrap_or_else(|| panic!("{driver} {step}: {}", r[step]))
        };
        assert_eq!(ok_of("connect"), 1);
        let schemas = ok_of("schemas");
        for s in ["customers", "logistics", "sales"] {
            assert!(schemas.as_array().unwrap().contains(&json!(s)), "{schemas}");
        }
        // Nothing lives in `public`, the default schema.
        assert_eq!(ok_of("default_tables"), json!([]));
        let sales = json!(["order_lines", "orders", "revenue_by_customer"]);
        assert_eq!(ok_of("sales_tables"), sales);
        assert_eq!(ok_of("has_table"), true);
        assert_eq!(ok_of("has_no_table"), false);
        assert_eq!(ok_of("foreign_keys"), json!([]));
        let n = ok_of("count").as_i64().unwrap();
        assert!(n > 10, "{n}");
        let columns = json!([
            ["order_id", "BIGINT", false],
            ["customer_id", "BIGINT", false],
            ["order_date", "DATE", false],
            ["status", "TEXT", false]
        ]);
        assert_eq!(ok_of("columns"), columns);
        // The contract's primary key, descriptions and decimal precision.
        assert_eq!(ok_of("pk")["constrained_columns"], json!(["order_id"]));
        assert_eq!(ok_of("pk")["name"], "orders_pkey");
        assert_eq!(
            ok_of("composite_pk")["constrained_columns"],
            json!(["carrier", "country"])
        );
        assert_eq!(
            ok_of("comments"),
            json!([
                "Order id",
                "Who ordered",
                "Day the order was placed",
                "confirmed or cancelled"
            ])
        );
        assert_eq!(
            ok_of("table_comment")["text"],
            "Every order placed in the web shop, one row per order."
        );
        assert_eq!(ok_of("decimal"), json!(["NUMERIC(12, 2)"]));
        // The primary key's index is not listed among the other indexes.
        assert_eq!(ok_of("indexes"), json!([]));
        assert_eq!(
            ok_of("autoload"),
            json!(["order_id", "customer_id", "order_date", "status"])
        );
        assert_eq!(ok_of("read_sql_table"), json!([n, 4]));
        let chunks = ok_of("read_sql_chunks");
        let chunks: Vec<i64> = chunks
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c.as_i64().unwrap())
            .collect();
        assert_eq!(chunks.iter().sum::<i64>(), n, "{chunks:?}");
        assert!(chunks.iter().all(|c| *c <= 7), "{chunks:?}");
        assert_eq!(ok_of("stream_results"), json!([5, n - 5, "int"]));
        assert_eq!(ok_of("search_path"), json!([n, "sales", "sales", sales]));
        assert_eq!(ok_of("named_cursor"), json!([3, n - 3, "int"]));
        assert_eq!(ok_of("declare_fetch_close"), json!([2, n - 2]));
        assert_eq!(ok_of("savepoints"), json!([true, n]));
        // A cursor is planned like any statement: a denial holds.
        let denied = &r["stranger_cursor"];
        assert_eq!(denied["sqlstate"], "42501", "{driver}: {denied}");
        assert!(
            denied["error"].as_str().unwrap().contains("access denied"),
            "{denied}"
        );
    }
    assert_eq!(
        result["psycopg"]["nested_transactions"]["ok"],
        result["psycopg"]["count"]["ok"]
    );

    // COPY … TO STDOUT in each format, under the caller's policy.
    let csv = "order_id,status,odd,nothing\n\
               1,confirmed,\"a,\"\"b\",\n\
               2,confirmed,\"a,\"\"b\",\n\
               3,confirmed,\"a,\"\"b\",\n";
    let copy = &result["psycopg"];
    assert_eq!(
        copy["copy_text"]["ok"],
        json!([
            "1\tconfirmed\ta,\"b\t\\N\n2\tconfirmed\ta,\"b\t\\N\n3\tconfirmed\ta,\"b\t\\N\n",
            3
        ]),
        "{copy}"
    );
    assert_eq!(copy["copy_csv"]["ok"], json!([csv, 3]), "{copy}");
    assert_eq!(
        copy["copy_binary"]["ok"],
        json!([
            [1, "confirmed", "a,\"b", null],
            [2, "confirmed", "a,\"b", null],
            [3, "confirmed", "a,\"b", null]
        ]),
        "{copy}"
    );
    assert_eq!(copy["copy_denied"]["sqlstate"], "42501", "{copy}");
    assert_eq!(result["psycopg2"]["copy_csv"]["ok"], csv, "{result}");

    // Session functions and settings psql, drivers and tools ask for.
    let pg = served.pg.as_deref().unwrap();
    let answers = psql_ok(
        pg,
        USER,
        &admin,
        &[
            "-c",
            "SELECT current_user",
            "-c",
            "SELECT current_user, session_user, user",
            "-c",
            "SELECT current_setting('search_path')",
            "-c",
            "SELECT set_config('search_path', 'sales', false)",
            "-c",
            "SELECT count(*) > 0 FROM orders",
            "-c",
            "SHOW client_encoding",
            "-c",
            "SELECT pg_size_pretty(123456789::bigint)",
        ],
    );
    assert_eq!(
        answers,
        format!("{USER}\n{USER}|{USER}|{USER}\n\"$user\", public\nsales\nt\nUTF8\n118 MB\n"),
        "{answers}"
    );
    // psql's \d shows the declared key and the decimal's precision.
    let described = psql_ok(
        pg,
        USER,
        &admin,
        &["-P", "tuples_only=off", "-c", "\\d sales.order_lines"],
    );
    assert!(described.contains("amount|numeric(12,2)|"), "{described}");
    assert!(
        described.contains("\"order_lines_pkey\" PRIMARY KEY, btree (line_id)"),
        "{described}"
    );
    // psql's describe commands answer, with the contract's descriptions.
    let meta = psql_ok(
        pg,
        USER,
        &admin,
        &[
            "-c",
            "\\dt+ sales.*",
            "-c",
            "\\d+ sales.orders",
            "-c",
            "\\dn+",
            "-c",
            "\\du",
            "-c",
            "\\df",
            "-c",
            "\\di",
        ],
    );
    for expected in [
        "sales|orders|table|",
        "|Every order placed in the web shop, one row per order.",
        "order_id|bigint||not null||plain|||Order id",
        "sales|postgres||",
        "sales|orders_pkey|index|postgres|orders",
    ] {
        assert!(meta.contains(expected), "{expected} missing from:\n{meta}");
    }
    let keys = "SELECT c.relname FROM pg_catalog.pg_constraint k \
                JOIN pg_catalog.pg_class c ON c.oid = k.conrelid \
                WHERE k.contype = 'p' ORDER BY 1";
    let described = "SELECT count(*) FROM pg_catalog.pg_description d \
                     JOIN pg_catalog.pg_class c ON c.oid = d.objoid \
                     WHERE c.relname = 'shipments'";
    let all = psql_ok(pg, USER, &admin, &["-c", keys, "-c", described]);
    assert!(all.contains("shipments\n"), "{all}");
    let seen = psql_ok(pg, "eve", &eve, &["-c", keys, "-c", described]);
    assert!(seen.contains("orders\n"), "{seen}");
    assert!(!seen.contains("shipments"), "{seen}");
    assert!(seen.ends_with("\n0\n"), "{seen}");

    // psql's \copy writes on the client; COPY FROM and server files are
    // refused.
    let file = tmp.path().join("orders.csv");
    let copied = psql_ok(
        pg,
        USER,
        &admin,
        &[
            "-c",
            &format!(
                "\\copy (SELECT order_id, status FROM sales.orders ORDER BY 1 LIMIT 2) TO '{}' WITH CSV HEADER",
                file.display()
            ),
        ],
    );
    assert_eq!(copied, "COPY 2\n");
    assert_eq!(
        std::fs::read_to_string(&file).unwrap(),
        "order_id,status\n1,confirmed\n2,confirmed\n"
    );
    for (sql, state) in [
        ("COPY sales.orders FROM STDIN", "25006"),
        ("COPY sales.orders TO '/tmp/x'", "42501"),
    ] {
        let refused = psql(pg, USER, &admin, &["-c", sql]);
        let stderr = String::from_utf8_lossy(&refused.stderr);
        assert!(stderr.contains(state), "{sql}: {stderr}");
    }

    let unknown = psql(pg, "eve", &eve, &["-c", "SELECT current_setting('nope')"]);
    assert!(!unknown.status.success());
    assert!(
        String::from_utf8_lossy(&unknown.stderr).contains("unrecognized configuration parameter"),
        "{unknown:?}"
    );
    served.stop();
}

/// SQLAlchemy 1.4 (psycopg2: its only psycopg dialect) and 2.1 (both
/// drivers) reflect the catalog as 2.0 does.
#[test]
fn sqlalchemy_1_4_and_2_1_reflect_the_catalog() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = demo(tmp.path(), 30);
    let admin = token(&dir, USER);
    let served = Served::start(&dir, &[]);
    let (host, port) = split(served.pg.as_deref().unwrap());
    for (version, drivers) in [
        ("1.4", vec!["psycopg2"]),
        ("2.1", vec!["psycopg", "psycopg2"]),
    ] {
        let result = python_client_with(
            "reflect.py",
            &json!({
                "host": host,
                "port": port.parse::<u16>().unwrap(),
                "user": USER,
                "password": admin,
                "drivers": drivers,
                // pandas 2.2 and later need SQLAlchemy 2.
                "pandas": version != "1.4",
            }),
            Some(&packages(&format!("sqlalchemy-{version}"))),
        );
        assert!(
            result["version"].as_str().unwrap().starts_with(version),
            "{result}"
        );
        for driver in drivers {
            let r = &result[driver];
            let ok_of = |step: &str| -> Value {
                r[step]
                    .get("ok")
                    .cloned()
                    .unwrap_or_else(|| panic!("{version} {driver} {step}: {}", r[step]))
            };
            assert_eq!(ok_of("connect"), 1);
            assert!(
                ok_of("schemas")
                    .as_array()
                    .unwrap()
                    .contains(&json!("sales"))
            );
            assert_eq!(ok_of("default_tables"), json!([]));
            assert_eq!(
                ok_of("sales_tables"),
                json!(["order_lines", "orders", "revenue_by_customer"])
            );
            assert_eq!(ok_of("has_table"), true);
            assert_eq!(
                ok_of("columns"),
                json!([
                    ["line_id", "BIGINT", false],
                    ["order_id", "BIGINT", false],
                    ["sku", "TEXT", true],
                    ["quantity", "BIGINT", true],
                    ["amount", "NUMERIC(12, 2)", true]
                ])
            );
            assert_eq!(ok_of("pk"), json!(["order_id"]));
            assert_eq!(ok_of("indexes"), json!([]));
            assert_eq!(ok_of("foreign_keys"), json!([]));
            assert_eq!(
                ok_of("table_comment"),
                "Every order placed in the web shop, one row per order."
            );
            assert_eq!(
                ok_of("autoload"),
                json!(["order_id", "customer_id", "order_date", "status"])
            );
            assert_eq!(ok_of("stream_results"), 5);
            if version != "1.4" {
                assert_eq!(ok_of("read_sql_table"), json!([30, 4]));
                assert_eq!(ok_of("read_sql_chunks"), 30);
            }
        }
    }
    served.stop();
}

/// pgjdbc (Debian's driver) reads the catalog as BI tools and IDEs do:
/// schemas, tables and columns with the contract's descriptions, decimal
/// precision and scale, primary keys, index info, imported keys; prepared
/// statements; decimals, lists and structs in results
/// (tests/clients/Jdbc.java).
#[test]
fn pgjdbc_reads_metadata_and_rows() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = demo(tmp.path(), 30);
    let admin = token(&dir, USER);
    let served = Served::start(&dir, &[]);
    let (host, port) = split(served.pg.as_deref().unwrap());
    let program = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/clients/Jdbc.java");
    let mut child = std::process::Command::new("java")
        .args(["-cp", "/usr/share/java/postgresql.jar"])
        .arg(&program)
        .args([host, port, USER, &admin])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("java is installed (scripts/test installs default-jdk-headless)");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(300);
    while child.try_wait().unwrap().is_none() {
        assert!(
            std::time::Instant::now() < deadline,
            "Jdbc.java did not finish"
        );
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    let out = child.wait_with_output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let steps: std::collections::BTreeMap<&str, (&str, &str)> = stdout
        .lines()
        .filter_map(|l| {
            let mut parts = l.splitn(3, '\t');
            Some((parts.next()?, (parts.next()?, parts.next()?)))
        })
        .collect();
    let ok = |step: &str| -> &str {
        match steps.get(step) {
            Some(("ok", value)) => value,
            other => panic!("{step}: {other:?}\n{stdout}"),
        }
    };
    assert_eq!(ok("product"), "PostgreSQL 16");
    assert!(ok("schemas").split(';').any(|s| s == "sales"), "{stdout}");
    assert_eq!(
        ok("tables"),
        "order_lines|One row per order line, with quantity and amount.;\
         orders|Every order placed in the web shop, one row per order.;\
         revenue_by_customer|Confirmed revenue per customer and country."
    );
    let columns: Vec<&str> = ok("columns").split(';').collect();
    assert_eq!(columns[0], "line_id|int8|19|0|NO|Line id");
    assert_eq!(
        columns[4],
        "amount|numeric|12|2|YES|quantity × unit price, in EUR"
    );
    assert_eq!(
        ok("primary_keys"),
        "carrier|1|carrier_performance_pkey;country|2|carrier_performance_pkey"
    );
    assert_eq!(ok("index_info"), "orders_pkey|false|order_id");
    // Contracts declare no foreign keys.
    assert_eq!(ok("imported_keys"), "");
    assert_eq!(ok("prepared"), "true");
    assert_eq!(ok("decimal"), "numeric|2");
    assert_eq!(ok("nested"), "3|(1,x)");
    served.stop();
}
