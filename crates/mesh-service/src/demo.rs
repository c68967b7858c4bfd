//! `mesh demo`: a realistic example mesh with deterministic generated data.
//!
//! Three domains, seven products: sources in CSV, Parquet and JSON, and
//! consumer-aligned products that join other domains' products.

use std::fmt::Write as _;
use std::path::Path;
use std::sync::Arc;

use datafusion::arrow::array::{Date32Array, Int64Array, StringArray};
use datafusion::arrow::datatypes::{DataType, Field, Schema};
use datafusion::arrow::record_batch::RecordBatch;
use datafusion::parquet::arrow::ArrowWriter;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use crate::error::{Result, ServiceError};

const COUNTRIES: &[&str] = &["DE", "FR", "ES", "IT", "NL", "PL", "SE", "US"];
const SKUS: &[(&str, i64)] = &[
    ("kettle", 3999),
    ("mug", 899),
    ("teapot", 2499),
    ("grinder", 5999),
    ("scale", 3199),
    ("filter", 499),
];
const CARRIERS: &[&str] = &["dhl", "ups", "postnl", "colissimo"];
const EPOCH_2025: i32 = 20089; // days from 1970-01-01 to 2025-01-01

fn io(path: &Path) -> impl Fn(std::io::Error) -> ServiceError + '_ {
    move |source| ServiceError::State {
        path: path.display().to_string(),
        source,
    }
}

fn write(path: &Path, text: &str) -> Result<()> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(io(dir))?;
    }
    std::fs::write(path, text).map_err(io(path))
}

fn date(days: i32) -> String {
    chrono::NaiveDate::from_num_days_from_ce_opt(days + 719_163)
        .map_or_else(String::new, |d| d.to_string())
}

/// Writes the demo project into `dir` with `orders` orders.
pub fn generate(dir: &Path, orders: usize) -> Result<()> {
    if dir.join("mesh.yaml").exists() {
        return Err(ServiceError::Exists {
            path: dir.join("mesh.yaml").display().to_string(),
        });
    }
    let mut rng = ChaCha8Rng::seed_from_u64(42);
    let customers = (orders / 10).max(10);
    write(
        &dir.join("mesh.yaml"),
        "apiVersion: meshwork/v1\nkind: Mesh\nname: acme-demo\n",
    )?;
    write(&dir.join(".gitignore"), ".mesh/\n")?;
    crate::init::write_policy_pack(dir)?;

    // customers/profiles: CSV
    let mut csv = String::from("customer_id,full_name,email,country,signup_date\n");
    for id in 1..=customers {
        let country = COUNTRIES[rng.random_range(0..COUNTRIES.len())];
        let signup = EPOCH_2025 - rng.random_range(0..730);
        let _ = writeln!(
            csv,
            "{id},Customer {id},customer{id}@example.com,{country},{}",
            date(signup)
        );
    }
    write(&dir.join("customers/profiles/data/customers.csv"), &csv)?;

    // sales/orders: Parquet
    let mut ids = Vec::with_capacity(orders);
    let mut cust = Vec::with_capacity(orders);
    let mut dates = Vec::with_capacity(orders);
    let mut statuses = Vec::with_capacity(orders);
    for id in 1..=orders {
        ids.push(id as i64);
        cust.push(rng.random_range(1..=customers) as i64);
        dates.push(EPOCH_2025 + rng.random_range(0..300));
        statuses.push(if rng.random_range(0..20) == 0 {
            "cancelled"
        } else {
            "confirmed"
        });
    }
    let schema = Arc::new(Schema::new(vec![
        Field::new("order_id", DataType::Int64, false),
        Field::new("customer_id", DataType::Int64, false),
        Field::new("order_date", DataType::Date32, false),
        Field::new("status", DataType::Utf8, false),
    ]));
    let batch = RecordBatch::try_new(
        schema.clone(),
        vec![
            Arc::new(Int64Array::from(ids)),
            Arc::new(Int64Array::from(cust.clone())),
            Arc::new(Date32Array::from(dates.clone())),
            Arc::new(StringArray::from(statuses.clone())),
        ],
    )
    .map_err(|e| ServiceError::Execution(e.to_string()))?;
    let pq = dir.join("sales/orders/data/orders.parquet");
    std::fs::create_dir_all(pq.parent().unwrap_or(dir)).map_err(io(dir))?;
    let file = std::fs::File::create(&pq).map_err(io(&pq))?;
    let mut writer = ArrowWriter::try_new(file, schema, None)
        .map_err(|e| ServiceError::Execution(e.to_string()))?;
    writer
        .write(&batch)
        .map_err(|e| ServiceError::Execution(e.to_string()))?;
    writer
        .close()
        .map_err(|e| ServiceError::Execution(e.to_string()))?;

    // sales/order_lines: JSON lines
    let mut json = String::new();
    let mut line_id = 0;
    for order in 1..=orders {
        for _ in 0..rng.random_range(1..=4) {
            line_id += 1;
            let (sku, price) = SKUS[rng.random_range(0..SKUS.len())];
            let qty = rng.random_range(1..=3);
            let _ = writeln!(
                json,
                r#"{{"line_id":{line_id},"order_id":{order},"sku":"{sku}","quantity":{qty},"unit_price_cents":{price}}}"#
            );
        }
    }
    write(&dir.join("sales/order_lines/data/lines.json"), &json)?;

    // logistics/shipments: CSV
    let mut ship = String::from("shipment_id,order_id,carrier,shipped_on,delivered_on\n");
    let mut sid = 0;
    for (i, status) in statuses.iter().enumerate() {
        if *status != "confirmed" {
            continue;
        }
        sid += 1;
        let shipped = dates[i] + rng.random_range(0..3);
        let delivered = shipped + rng.random_range(1..7);
        let carrier = CARRIERS[rng.random_range(0..CARRIERS.len())];
        let _ = writeln!(
            ship,
            "{sid},{},{carrier},{},{}",
            i + 1,
            date(shipped),
            date(delivered)
        );
    }
    write(&dir.join("logistics/shipments/data/shipments.csv"), &ship)?;

    for (path, text) in DESCRIPTORS {
        write(&dir.join(path), text)?;
    }
    Ok(())
}

const DESCRIPTORS: &[(&str, &str)] = &[
    (
        "customers/profiles/product.yaml",
        r#"apiVersion: meshwork/v1
kind: DataProduct
domain: customers
name: profiles
version: 1.0.0
owner: crm-team@acme.example
description:
  purpose: One row per registered customer, with contact details.
  usage: Join on customer_id for anything customer-related.
  limitations: Email is PII; it is masked for consumers without a grant.
tags: [customers, crm, pii]
inputs:
  - name: raw_customers
    source:
      format: csv
      path: data/*.csv
      columns:
        - {name: customer_id, type: bigint, nullable: false}
        - {name: full_name, type: string}
        - {name: email, type: string}
        - {name: country, type: string}
        - {name: signup_date, type: date}
transform:
  sql: transform.sql
outputs:
  - name: profiles
    description: Customer master data.
    primary_key: [customer_id]
    columns:
      - {name: customer_id, type: bigint, nullable: false, description: Customer id}
      - {name: full_name, type: string, description: Display name, classification: pii}
      - {name: email, type: string, description: Contact email, classification: pii}
      - {name: country, type: string, description: ISO 3166 country code}
      - {name: signup_date, type: date, description: Day the account was created}
    quality:
      - {check: row_count, min: 1}
      - {check: not_null, column: email}
      - {check: accepted_values, column: country, values: [DE, FR, ES, IT, NL, PL, SE, US]}
slo: {freshness: 24h}
"#,
    ),
    (
        "customers/profiles/transform.sql",
        "SELECT customer_id, full_name, lower(email) AS email, country, signup_date\nFROM raw_customers\n",
    ),
    (
        "sales/orders/product.yaml",
        r#"apiVersion: meshwork/v1
kind: DataProduct
domain: sales
name: orders
version: 1.0.0
owner: sales-data@acme.example
description:
  purpose: Every order placed in the web shop, one row per order.
  usage: Order counts, conversion, joins to order lines.
tags: [orders, sales]
inputs:
  - name: raw_orders
    source: {format: parquet, path: data/orders.parquet}
transform:
  sql: transform.sql
outputs:
  - name: orders
    primary_key: [order_id]
    columns:
      - {name: order_id, type: bigint, nullable: false, description: Order id}
      - {name: customer_id, type: bigint, nullable: false, description: Who ordered}
      - {name: order_date, type: date, nullable: false, description: Day the order was placed}
      - {name: status, type: string, nullable: false, description: confirmed or cancelled}
    quality:
      - {check: row_count, min: 1}
      - {check: accepted_values, column: status, values: [confirmed, cancelled]}
      - {check: sql, name: no_future_orders, severity: warn, query: "SELECT count(*) FROM orders WHERE order_date > current_date", must_be: 0}
slo: {freshness: 6h}
"#,
    ),
    (
        "sales/orders/transform.sql",
        "SELECT order_id, customer_id, order_date, status FROM raw_orders\n",
    ),
    (
        "sales/order_lines/product.yaml",
        r#"apiVersion: meshwork/v1
kind: DataProduct
domain: sales
name: order_lines
version: 1.0.0
owner: sales-data@acme.example
description:
  purpose: One row per order line, with quantity and amount.
tags: [orders, revenue]
inputs:
  - name: raw_lines
    source:
      format: json
      path: data/*.json
      columns:
        - {name: line_id, type: bigint, nullable: false}
        - {name: order_id, type: bigint, nullable: false}
        - {name: sku, type: string}
        - {name: quantity, type: bigint}
        - {name: unit_price_cents, type: bigint}
transform:
  sql: transform.sql
outputs:
  - name: order_lines
    primary_key: [line_id]
    columns:
      - {name: line_id, type: bigint, nullable: false, description: Line id}
      - {name: order_id, type: bigint, nullable: false, description: Order the line belongs to}
      - {name: sku, type: string, description: Product sold}
      - {name: quantity, type: bigint, description: Units}
      - {name: amount, type: "decimal(12,2)", description: "quantity × unit price, in EUR"}
    quality:
      - {check: row_count, min: 1}
      - {check: range, column: quantity, min: 1, max: 100}
      - {check: range, column: amount, min: 0}
slo: {freshness: 6h}
"#,
    ),
    (
        "sales/order_lines/transform.sql",
        "SELECT line_id, order_id, sku, quantity,\n       CAST(quantity * unit_price_cents / 100.0 AS DECIMAL(12,2)) AS amount\nFROM raw_lines\n",
    ),
    (
        "logistics/shipments/product.yaml",
        r#"apiVersion: meshwork/v1
kind: DataProduct
domain: logistics
name: shipments
version: 1.0.0
owner: logistics-data@acme.example
description:
  purpose: One row per shipment handed to a carrier.
tags: [shipping, carriers]
inputs:
  - name: raw_shipments
    source:
      format: csv
      path: data/shipments.csv
      columns:
        - {name: shipment_id, type: bigint, nullable: false}
        - {name: order_id, type: bigint, nullable: false}
        - {name: carrier, type: string}
        - {name: shipped_on, type: date}
        - {name: delivered_on, type: date}
transform:
  sql: transform.sql
outputs:
  - name: shipments
    primary_key: [shipment_id]
    columns:
      - {name: shipment_id, type: bigint, nullable: false, description: Shipment id}
      - {name: order_id, type: bigint, nullable: false, description: Order shipped}
      - {name: carrier, type: string, description: "Carrier code: dhl, ups, postnl or colissimo"}
      - {name: shipped_on, type: date, description: Day handed to the carrier}
      - {name: delivered_on, type: date, description: Day delivered; null while in transit}
      - {name: transit_days, type: int, description: Days from shipping to delivery}
    quality:
      - {check: accepted_values, column: carrier, values: [dhl, ups, postnl, colissimo]}
      - {check: range, column: transit_days, min: 0, max: 30}
slo: {freshness: 12h}
"#,
    ),
    (
        "logistics/shipments/transform.sql",
        "SELECT shipment_id, order_id, carrier, shipped_on, delivered_on,\n       CAST(delivered_on - shipped_on AS INT) AS transit_days\nFROM raw_shipments\n",
    ),
    (
        "sales/revenue_by_customer/product.yaml",
        r#"apiVersion: meshwork/v1
kind: DataProduct
domain: sales
name: revenue_by_customer
version: 1.0.0
owner: sales-analytics@acme.example
description:
  purpose: Confirmed revenue per customer and country.
  usage: Revenue reporting and segmentation.
  limitations: Cancelled orders are excluded.
tags: [revenue, customers]
inputs:
  - {name: orders, product: sales/orders}
  - {name: lines, product: sales/order_lines}
  - {name: customers, product: customers/profiles}
transform:
  sql: transform.sql
outputs:
  - name: revenue_by_customer
    primary_key: [customer_id]
    columns:
      - {name: customer_id, type: bigint, nullable: false, description: Customer id}
      - {name: country, type: string, description: Customer's ISO 3166 country code}
      - {name: orders, type: bigint, nullable: false, description: Confirmed orders}
      - {name: revenue, type: "decimal(22,2)", description: Confirmed revenue in EUR}
    quality:
      - {check: row_count, min: 1}
      - {check: range, column: revenue, min: 0}
slo: {freshness: 24h}
"#,
    ),
    (
        "sales/revenue_by_customer/transform.sql",
        "SELECT c.customer_id, c.country, count(DISTINCT o.order_id) AS orders, sum(l.amount) AS revenue\nFROM orders o\nJOIN lines l ON l.order_id = o.order_id\nJOIN customers c ON c.customer_id = o.customer_id\nWHERE o.status = 'confirmed'\nGROUP BY c.customer_id, c.country\n",
    ),
    (
        "logistics/carrier_performance/product.yaml",
        r#"apiVersion: meshwork/v1
kind: DataProduct
domain: logistics
name: carrier_performance
version: 1.0.0
owner: logistics-data@acme.example
description:
  purpose: Delivery performance per carrier and destination country.
tags: [shipping, carriers, sla]
inputs:
  - {name: shipments, product: logistics/shipments}
  - {name: orders, product: sales/orders}
  - {name: customers, product: customers/profiles}
transform:
  sql: transform.sql
outputs:
  - name: carrier_performance
    primary_key: [carrier, country]
    columns:
      - {name: carrier, type: string, description: Carrier code}
      - {name: country, type: string, description: Destination ISO 3166 country code}
      - {name: shipments, type: bigint, nullable: false, description: Shipments delivered}
      - {name: avg_transit_days, type: double, description: Mean days from shipping to delivery}
      - {name: on_time_ratio, type: double, description: Share delivered within 3 days}
    quality:
      - {check: row_count, min: 1}
      - {check: range, column: on_time_ratio, min: 0, max: 1}
slo: {freshness: 24h}
"#,
    ),
    (
        "logistics/carrier_performance/transform.sql",
        "SELECT s.carrier AS carrier, c.country AS country, count(*) AS shipments,\n       avg(s.transit_days) AS avg_transit_days,\n       avg(CASE WHEN s.transit_days <= 3 THEN 1.0 ELSE 0.0 END) AS on_time_ratio\nFROM shipments s\nJOIN orders o ON o.order_id = s.order_id\nJOIN customers c ON c.customer_id = o.customer_id\nWHERE s.carrier IS NOT NULL AND c.country IS NOT NULL\nGROUP BY s.carrier, c.country\n",
    ),
    (
        "customers/customer_360/product.yaml",
        r#"apiVersion: meshwork/v1
kind: DataProduct
domain: customers
name: customer_360
version: 1.0.0
owner: crm-team@acme.example
description:
  purpose: One row per customer with revenue and delivery experience.
  usage: Churn models, service prioritisation.
tags: [customers, revenue, shipping]
inputs:
  - {name: customers, product: customers/profiles}
  - {name: revenue, product: sales/revenue_by_customer}
  - {name: shipments, product: logistics/shipments}
  - {name: orders, product: sales/orders}
transform:
  sql: transform.sql
outputs:
  - name: customer_360
    primary_key: [customer_id]
    columns:
      - {name: customer_id, type: bigint, nullable: false, description: Customer id}
      - {name: email, type: string, classification: pii, description: Contact email}
      - {name: country, type: string, description: ISO 3166 country code}
      - {name: orders, type: bigint, description: Confirmed orders; null without any}
      - {name: revenue, type: "decimal(22,2)", description: Confirmed revenue in EUR}
      - {name: avg_transit_days, type: double, description: Mean delivery time of their shipments}
    quality:
      - {check: row_count, min: 1}
      - {check: not_null, column: email, severity: warn}
slo: {freshness: 24h}
"#,
    ),
    (
        "customers/customer_360/transform.sql",
        "WITH transit AS (\n  SELECT o.customer_id, avg(s.transit_days) AS avg_transit_days\n  FROM shipments s JOIN orders o ON o.order_id = s.order_id\n  GROUP BY o.customer_id\n)\nSELECT c.customer_id, c.email, c.country, r.orders, r.revenue, t.avg_transit_days\nFROM customers c\nLEFT JOIN revenue r ON r.customer_id = c.customer_id\nLEFT JOIN transit t ON t.customer_id = c.customer_id\n",
    ),
];
