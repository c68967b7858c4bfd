//! SQL behaviour of `mesh query`, in sqllogictest files under `tests/slt/`.
//!
//! One fixture mesh is built for all files: a `shop` domain with two
//! source-aligned products read from CSV, a consumer-aligned product that
//! joins them, and a second run so time travel has two versions to read.
#![allow(clippy::unwrap_used)]

use std::path::{Path, PathBuf};

use async_trait::async_trait;
use mesh_pipeline::Silent;
use mesh_service::{Caller, Mesh, ServiceError};
use sqllogictest::{DBOutput, DefaultColumnType};

fn write(path: &Path, text: &str) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, text).unwrap();
}

const CUSTOMERS: &str = r#"apiVersion: meshwork/v1
kind: DataProduct
domain: shop
name: customers
version: 1.0.0
owner: shop-team@example.org
description:
  purpose: One row per customer.
inputs:
  - name: raw
    source:
      format: csv
      path: data/customers.csv
      columns:
        - {name: id, type: bigint, nullable: false}
        - {name: name, type: string}
        - {name: country, type: string}
transform:
  query: SELECT id, name, country FROM raw
outputs:
  - name: customers
    primary_key: [id]
    columns:
      - {name: id, type: bigint, nullable: false, description: The id}
      - {name: name, type: string, classification: pii, description: The name}
      - {name: country, type: string, description: The country}
    quality:
      - {check: row_count, min: 1}
      - {check: accepted_values, column: country, values: [FR, GB], severity: warn}
slo: {freshness: 1d}
"#;

const ORDERS: &str = r#"apiVersion: meshwork/v1
kind: DataProduct
domain: shop
name: orders
version: 1.0.0
owner: shop-team@example.org
description:
  purpose: One row per order.
inputs:
  - name: raw
    source:
      format: csv
      path: data/orders.csv
      columns:
        - {name: id, type: bigint, nullable: false}
        - {name: customer_id, type: bigint}
        - {name: amount, type: double}
transform:
  query: SELECT id, customer_id, amount FROM raw
outputs:
  - name: orders
    primary_key: [id]
    columns:
      - {name: id, type: bigint, nullable: false, description: The id}
      - {name: customer_id, type: bigint, description: The customer id}
      - {name: amount, type: double, description: The amount}
    quality:
      - {check: range, column: amount, min: 0}
slo: {freshness: 1d}
"#;

const REVENUE: &str = r#"apiVersion: meshwork/v1
kind: DataProduct
domain: finance
name: revenue
version: 1.0.0
owner: finance-team@example.org
description:
  purpose: Revenue per country.
inputs:
  - {name: orders, product: shop/orders}
  - {name: customers, product: shop/customers}
transform:
  query: |
    SELECT c.country, count(*) AS orders, sum(o.amount) AS revenue
    FROM orders o JOIN customers c ON o.customer_id = c.id
    GROUP BY c.country
outputs:
  - name: revenue_by_country
    primary_key: [country]
    columns:
      - {name: country, type: string, description: The country}
      - {name: orders, type: bigint, nullable: false, description: The orders}
      - {name: revenue, type: double, description: The revenue}
slo: {freshness: 1d}
"#;

/// A private product: it exists only for its owners and admins.
const PAYROLL: &str = r#"apiVersion: meshwork/v1
kind: DataProduct
domain: finance
name: payroll
version: 1.0.0
owner: finance-team@example.org
description:
  purpose: Salaries, for the finance team only.
access: {visibility: private}
inputs:
  - name: raw
    source:
      format: csv
      path: data/payroll.csv
      columns:
        - {name: employee, type: string}
        - {name: salary, type: bigint}
transform:
  query: SELECT employee, salary FROM raw
outputs:
  - name: payroll
    columns:
      - {name: employee, type: string, classification: pii, description: Who}
      - {name: salary, type: bigint, description: Yearly salary}
"#;

/// `viewer` reads shop customers through a row filter that hides the US.
const SHOP_POLICY: &str = r#"package mesh.domain.shop

import rego.v1

row_filters contains "country <> 'US'" if {
	input.principal.name == "viewer"
	input.output == "customers"
}
"#;

async fn fixture(dir: &Path) -> Mesh {
    write(
        &dir.join("mesh.yaml"),
        "apiVersion: meshwork/v1\nkind: Mesh\nname: slt\n",
    );
    write(&dir.join("shop/customers/product.yaml"), CUSTOMERS);
    write(
        &dir.join("shop/customers/data/customers.csv"),
        "id,name,country\n1,Ada,FR\n2,Grace,US\n3,Alan,GB\n",
    );
    write(&dir.join("shop/orders/product.yaml"), ORDERS);
    write(
        &dir.join("shop/orders/data/orders.csv"),
        "id,customer_id,amount\n10,1,5.5\n11,1,4.5\n12,2,20\n",
    );
    write(&dir.join("finance/revenue/product.yaml"), REVENUE);
    write(&dir.join("finance/payroll/product.yaml"), PAYROLL);
    write(
        &dir.join("finance/payroll/data/payroll.csv"),
        "employee,salary\nDana,91000\nEli,87000\n",
    );
    write(&dir.join("shop/policies/viewer.rego"), SHOP_POLICY);
    mesh_service::init::write_policy_pack(dir).unwrap();
    let mesh = Mesh::open(dir).await.unwrap();
    // Principals the files under `slt/as/<principal>/` run as.
    assert!(mesh.bootstrap_admin("slt").await.unwrap());
    mesh.catalog.grant_role("slt", "pii-reader").await.unwrap();
    let admin = Caller::new("slt");
    mesh.add_principal(&admin, "shopper", "user", &[], &[])
        .await
        .unwrap();
    mesh.add_principal(&admin, "stranger", "user", &[], &[])
        .await
        .unwrap();
    mesh.add_principal(
        &admin,
        "auditor",
        "user",
        &[],
        &["mesh-admin".into(), "pii-reader".into()],
    )
    .await
    .unwrap();
    mesh.add_principal(&admin, "viewer", "user", &[], &[])
        .await
        .unwrap();
    mesh.add_team(
        &admin,
        "shop-team",
        &["shop".into()],
        &["shopper".into(), "viewer".into()],
    )
    .await
    .unwrap();
    mesh.deploy("slt", false).await.unwrap();
    let (runs, _) = mesh.run(&[], &Default::default(), &Silent).await.unwrap();
    assert!(runs.iter().all(|r| r.error.is_none()), "{runs:?}");
    // A second release of shop/orders: version 2 has one more order.
    write(
        &dir.join("shop/orders/data/orders.csv"),
        "id,customer_id,amount\n10,1,5.5\n11,1,4.5\n12,2,20\n13,3,7\n",
    );
    let (runs, _) = mesh
        .run(&["shop/orders".into()], &Default::default(), &Silent)
        .await
        .unwrap();
    assert!(runs.iter().all(|r| r.error.is_none()), "{runs:?}");
    // Product version 1.1.0 (a compatible change), released as data version 3.
    write(
        &dir.join("shop/orders/product.yaml"),
        &ORDERS
            .replace("version: 1.0.0", "version: 1.1.0")
            .replace("One row per order.", "One row per order, all channels."),
    );
    write(
        &dir.join("shop/orders/data/orders.csv"),
        "id,customer_id,amount\n10,1,5.5\n11,1,4.5\n12,2,20\n13,3,7\n14,3,1\n",
    );
    mesh.deploy("slt", false).await.unwrap();
    let (runs, _) = mesh
        .run(&["shop/orders".into()], &Default::default(), &Silent)
        .await
        .unwrap();
    assert!(runs.iter().all(|r| r.error.is_none()), "{runs:?}");
    mesh
}

struct MeshDb(Mesh, Caller);

#[derive(Debug)]
struct SqlError(String);

impl std::fmt::Display for SqlError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for SqlError {}

impl From<ServiceError> for SqlError {
    fn from(e: ServiceError) -> Self {
        // What the CLI prints: the message, then the hint.
        match e.hint() {
            Some(hint) => SqlError(format!("{e}\nhint: {hint}")),
            None => SqlError(e.to_string()),
        }
    }
}

#[async_trait]
impl sqllogictest::AsyncDB for MeshDb {
    type Error = SqlError;
    type ColumnType = DefaultColumnType;

    async fn run(&mut self, sql: &str) -> Result<DBOutput<DefaultColumnType>, SqlError> {
        use datafusion::arrow::datatypes::DataType;
        let result = self.0.query(&self.1, sql).await?;
        let types = result
            .schema
            .fields()
            .iter()
            .map(|f| match f.data_type() {
                DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View => {
                    DefaultColumnType::Text
                }
                t if t.is_integer() => DefaultColumnType::Integer,
                t if t.is_floating() || matches!(t, DataType::Decimal128(..)) => {
                    DefaultColumnType::FloatingPoint
                }
                _ => DefaultColumnType::Any,
            })
            .collect();
        let (_, rows) = result.to_strings()?;
        Ok(DBOutput::Rows { types, rows })
    }

    async fn shutdown(&mut self) {}

    fn engine_name(&self) -> &str {
        "mesh"
    }
}

/// `.slt` files with the principal each runs as: files in `slt/` run as
/// the admin `slt`, files in `slt/as/<principal>/` as that principal.
fn slt_files() -> Vec<(PathBuf, String)> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/slt");
    let slt = |dir: &Path| -> Vec<PathBuf> {
        let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| p.extension().is_some_and(|e| e == "slt"))
            .collect();
        files.sort();
        files
    };
    let mut out: Vec<(PathBuf, String)> = slt(&root)
        .into_iter()
        .map(|f| (f, "slt".to_string()))
        .collect();
    let mut principals: Vec<PathBuf> = std::fs::read_dir(root.join("as"))
        .map(|d| d.map(|e| e.unwrap().path()).collect())
        .unwrap_or_default();
    principals.sort();
    for dir in principals {
        let who = dir.file_name().unwrap().to_string_lossy().into_owned();
        out.extend(slt(&dir).into_iter().map(|f| (f, who.clone())));
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqllogictest_files() {
    let tmp = tempfile::tempdir().unwrap();
    let mesh = fixture(tmp.path()).await;
    let files = slt_files();
    assert!(!files.is_empty(), "no .slt files found");
    let mut failures = Vec::new();
    for (file, who) in &files {
        let mesh = mesh.clone();
        let who = who.clone();
        let mut runner = sqllogictest::Runner::new(move || {
            let mesh = mesh.clone();
            let caller = Caller::new(who.clone());
            async move { Ok::<_, SqlError>(MeshDb(mesh, caller)) }
        });
        if let Err(e) = runner.run_file_async(file).await {
            failures.push(format!("{}: {}", file.display(), e.display(false)));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}

/// Rows bound for Arrow IPC (`Statement::for_arrow_ipc`) read strings in
/// the classic layout they travel in, with the same values, masks
/// included, as the default view layout gives once sent.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rows_for_arrow_ipc_read_classic_strings_with_the_same_values() {
    use datafusion::arrow::datatypes::DataType;
    use datafusion::arrow::record_batch::RecordBatch;
    use mesh_service::Statement;

    let tmp = tempfile::tempdir().unwrap();
    let mesh = fixture(tmp.path()).await;
    let sql = "SELECT id, name, country FROM shop.customers ORDER BY id";
    for who in ["slt", "shopper"] {
        let caller = Caller::new(who);
        let mut rows = Vec::new();
        for statement in [Statement::sql(sql), Statement::sql(sql).for_arrow_ipc()] {
            let planned = mesh.prepare(&caller, statement).await.unwrap();
            let types: Vec<DataType> = planned
                .schema()
                .fields()
                .iter()
                .map(|f| f.data_type().clone())
                .collect();
            let mut stream = mesh.execute(planned, None).await.unwrap();
            let wire = mesh_service::wire_schema(&stream.schema);
            let mut batches = Vec::new();
            while let Some(b) = stream.next().await {
                batches.push(mesh_service::to_wire(&b.unwrap(), &wire).unwrap());
            }
            let all: RecordBatch =
                datafusion::arrow::compute::concat_batches(&wire, &batches).unwrap();
            rows.push((types, all));
        }
        let (views, classic) = (&rows[0], &rows[1]);
        assert_eq!(views.0[1], DataType::Utf8View, "{who}: {:?}", views.0);
        assert_eq!(classic.0[1], DataType::Utf8, "{who}: {:?}", classic.0);
        assert_eq!(classic.0[2], DataType::Utf8, "{who}: {:?}", classic.0);
        assert_eq!(views.1, classic.1, "{who}: the layouts disagree");
        assert_eq!(classic.1.num_rows(), 3);
        let names = datafusion::arrow::util::display::array_value_to_string;
        let first = names(classic.1.column(1), 0).unwrap();
        if who == "shopper" {
            assert_ne!(first, "Ada", "the pii column is not masked");
        } else {
            assert_eq!(first, "Ada");
        }
    }
}

/// No form of EXPLAIN shows what lies below the barrier to a caller
/// whose read is filtered and masked: no row count, statistic, value or
/// policy predicate of the stored table. An unrestricted reader's plan
/// still shows the scan.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn explain_shows_nothing_below_the_barrier() {
    let tmp = tempfile::tempdir().unwrap();
    let mesh = fixture(tmp.path()).await;
    let viewer = Caller::new("viewer");
    let text = |r: mesh_service::QueryResult| {
        let (_, rows) = r.to_strings().unwrap();
        rows.into_iter()
            .map(|r| r.join(" | "))
            .collect::<Vec<_>>()
            .join("\n")
    };
    for sql in [
        "EXPLAIN SELECT count(*) FROM shop.customers WHERE id > 0",
        "EXPLAIN VERBOSE SELECT count(*) FROM shop.customers WHERE id > 0",
        "EXPLAIN ANALYZE SELECT count(*) FROM shop.customers WHERE id > 0",
        "EXPLAIN ANALYZE VERBOSE SELECT name, country FROM shop.customers",
        "EXPLAIN FORMAT TREE SELECT count(*) FROM shop.customers",
    ] {
        let plan = text(mesh.query(&viewer, sql).await.unwrap());
        assert!(plan.contains("PolicyBarrierExec"), "{sql}:\n{plan}");
        for secret in [
            "US",
            "Grace",
            "Ada",
            "country <>",
            "Exact(3)",
            "(2/3)",
            "customers.csv",
            ".parquet",
            "DataSourceExec",
        ] {
            assert!(!plan.contains(secret), "{sql} shows `{secret}`:\n{plan}");
        }
    }
    // The counts it does show are those of the rows the caller receives.
    let analyzed = text(
        mesh.query(
            &viewer,
            "EXPLAIN ANALYZE SELECT id FROM shop.customers WHERE id > 1",
        )
        .await
        .unwrap(),
    );
    assert!(analyzed.contains("selectivity=50% (1/2)"), "{analyzed}");
    let admin = text(
        mesh.query(&Caller::new("slt"), "EXPLAIN SELECT * FROM shop.customers")
            .await
            .unwrap(),
    );
    assert!(admin.contains("DataSourceExec"), "{admin}");
}

/// A check's sample rows are data: each caller sees them as its queries
/// would show them, and a stranger who may see the product sees none.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn run_samples_are_shown_as_the_reader_may_read_them() {
    let tmp = tempfile::tempdir().unwrap();
    let mesh = fixture(tmp.path()).await;
    let sample = |who: &'static str| {
        let mesh = mesh.clone();
        async move {
            let runs = mesh
                .runs(&Caller::new(who), Some("shop/customers"), None, 1)
                .await
                .unwrap();
            let check = runs[0]
                .checks
                .iter()
                .find(|c| c.kind == "accepted_values")
                .unwrap()
                .clone();
            (check.sample, check.observed)
        }
    };
    let (rows, observed) = sample("slt").await;
    assert_eq!(
        rows,
        [serde_json::json!({"id": 2, "name": "Grace", "country": "US"})]
    );
    assert_eq!(observed, "1 of 3 rows violate");
    // The owner team, with `name` masked.
    let (rows, observed) = sample("shopper").await;
    assert_eq!(
        rows,
        [serde_json::json!({"id": 2, "name": "***", "country": "US"})]
    );
    assert_eq!(observed, "1 of 3 rows violate");
    // A row filter hides the US: no row, and no count of hidden rows.
    let (rows, observed) = sample("viewer").await;
    assert!(rows.is_empty(), "{rows:?}");
    assert!(observed.starts_with("withheld"), "{observed}");
    // Someone who may see the product but not read it.
    let (rows, observed) = sample("stranger").await;
    assert!(rows.is_empty(), "{rows:?}");
    assert!(observed.starts_with("withheld"), "{observed}");
}
