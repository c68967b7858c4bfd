//! Column usage through the optimizer: what a consumer's SQL really reads.
#![allow(clippy::unwrap_used)]

use std::collections::BTreeSet;
use std::path::Path;

use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use mesh_query::plan::UpstreamSchemas;
use mesh_query::usage::column_usage;
use mesh_spec::{ProductRef, parse_product};

struct Upstream;

impl UpstreamSchemas for Upstream {
    fn schema(
        &self,
        product: &ProductRef,
        _output: Option<&str>,
        _version: Option<&semver::VersionReq>,
    ) -> Option<SchemaRef> {
        let fields = match product.to_string().as_str() {
            "sales/orders" => vec![
                Field::new("order_id", DataType::Int64, false),
                Field::new("customer_id", DataType::Int64, false),
                Field::new("amount", DataType::Float64, true),
                Field::new("status", DataType::Utf8, true),
                Field::new("note", DataType::Utf8, true),
            ],
            "customers/profiles" => vec![
                Field::new("customer_id", DataType::Int64, false),
                Field::new("country", DataType::Utf8, true),
                Field::new("email", DataType::Utf8, true),
            ],
            _ => return None,
        };
        Some(std::sync::Arc::new(Schema::new(fields)))
    }
}

/// What `sql` reads from `orders` and `customers`, as sorted lists.
async fn reads(sql: &str) -> (Vec<String>, Vec<String>) {
    let text = format!(
        "apiVersion: meshwork/v1\nkind: DataProduct\ndomain: analytics\nname: report\n\
         version: 1.0.0\nowner: a@b.c\n\
         inputs:\n  - {{name: orders, product: sales/orders}}\n  - {{name: customers, product: customers/profiles}}\n\
         transform:\n  query: |\n{}\n\
         outputs:\n  - name: report\n    columns:\n      - {{name: x, type: bigint}}\n",
        sql.lines()
            .map(|l| format!("    {l}"))
            .collect::<Vec<_>>()
            .join("\n")
    );
    let (p, d) = parse_product(Path::new("analytics/report/product.yaml"), &text);
    let p = p.unwrap_or_else(|| panic!("{d:?}"));
    let usage = column_usage(&p, &Upstream, None).await.unwrap();
    let of = |input: &str| -> Vec<String> {
        usage["report"]
            .get(input)
            .cloned()
            .unwrap_or_default()
            .into_iter()
            .collect()
    };
    (of("orders"), of("customers"))
}

fn set(xs: &[&str]) -> Vec<String> {
    xs.iter()
        .map(|s| s.to_string())
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect()
}

#[tokio::test]
async fn plain_projection() {
    let (o, c) = reads("SELECT order_id, amount FROM orders").await;
    assert_eq!(o, set(&["order_id", "amount"]));
    assert!(c.is_empty());
}

#[tokio::test]
async fn star_reads_everything() {
    let (o, _) = reads("SELECT * FROM orders").await;
    assert_eq!(o.len(), 5);
}

#[tokio::test]
async fn joins_filters_and_aggregates_with_aliases() {
    let (o, c) = reads(
        "SELECT c.country, sum(o.amount) AS revenue
         FROM orders o JOIN customers c ON o.customer_id = c.customer_id
         WHERE o.status = 'shipped'
         GROUP BY c.country",
    )
    .await;
    assert_eq!(o, set(&["customer_id", "amount", "status"]));
    assert_eq!(c, set(&["customer_id", "country"]));
}

#[tokio::test]
async fn ctes_only_count_what_reaches_the_result() {
    // The CTE selects `note`, but nothing downstream of it uses it.
    let (o, _) = reads(
        "WITH recent AS (SELECT order_id, amount, note FROM orders)
         SELECT order_id, amount FROM recent WHERE amount > 10",
    )
    .await;
    assert_eq!(o, set(&["order_id", "amount"]));
}

#[tokio::test]
async fn subqueries_are_followed() {
    let (o, c) = reads(
        "SELECT order_id FROM orders
         WHERE customer_id IN (SELECT customer_id FROM customers WHERE country = 'FR')",
    )
    .await;
    assert_eq!(o, set(&["order_id", "customer_id"]));
    assert_eq!(c, set(&["customer_id", "country"]));
}

#[tokio::test]
async fn counting_rows_reads_no_column() {
    let (o, _) = reads("SELECT count(*) AS x FROM orders").await;
    assert!(o.is_empty(), "{o:?}");
}
