//! Column lineage from the logical plan: each fixture's edges, rendered
//! one per line as `column <- TYPE SUBTYPE input.column [masking]`.
#![allow(clippy::unwrap_used)]

use std::path::Path;

use datafusion::arrow::datatypes::{DataType, Field, Fields, Schema, SchemaRef};
use mesh_query::lineage::product_lineage;
use mesh_query::plan::UpstreamSchemas;
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
                Field::new(
                    "info",
                    DataType::Struct(Fields::from(vec![
                        Field::new("len", DataType::Int64, true),
                        Field::new("label", DataType::Utf8, true),
                    ])),
                    true,
                ),
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

/// The lineage of `sql` over `orders` and `customers`, one edge a line.
async fn lineage(sql: &str) -> String {
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
    let lineage = product_lineage(&p, &Upstream, None).await.unwrap();
    let mut lines = Vec::new();
    for (column, edges) in &lineage["report"] {
        if edges.is_empty() {
            lines.push(format!("{column} <- nothing"));
        }
        for e in edges {
            lines.push(format!(
                "{column} <- {} {} {}.{}{}",
                e.edge_type.as_str(),
                e.subtype.as_str(),
                e.input,
                e.column,
                if e.masking { " masking" } else { "" }
            ));
        }
    }
    lines.join("\n")
}

fn expect(actual: &str, expected: &str) {
    let expected: Vec<&str> = expected
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect();
    assert_eq!(
        actual.lines().collect::<Vec<_>>(),
        expected,
        "\nactual:\n{actual}\n"
    );
}

#[tokio::test]
async fn projection_and_rename() {
    expect(
        &lineage("SELECT order_id AS id, amount * 2 AS doubled, 'x' AS tag FROM orders").await,
        "
        doubled <- DIRECT TRANSFORMATION orders.amount
        id <- DIRECT IDENTITY orders.order_id
        tag <- nothing
        ",
    );
}

#[tokio::test]
async fn filters_and_sorts_reach_every_column() {
    expect(
        &lineage("SELECT order_id FROM orders WHERE status = 'paid' ORDER BY amount").await,
        "
        order_id <- DIRECT IDENTITY orders.order_id
        order_id <- INDIRECT FILTER orders.status
        order_id <- INDIRECT SORT orders.amount
        ",
    );
}

#[tokio::test]
async fn joins_across_inputs() {
    expect(
        &lineage(
            "SELECT o.order_id, c.country FROM orders o JOIN customers c \
             ON o.customer_id = c.customer_id AND o.amount > 0",
        )
        .await,
        "
        country <- DIRECT IDENTITY customers.country
        country <- INDIRECT JOIN customers.customer_id
        country <- INDIRECT JOIN orders.amount
        country <- INDIRECT JOIN orders.customer_id
        order_id <- DIRECT IDENTITY orders.order_id
        order_id <- INDIRECT JOIN customers.customer_id
        order_id <- INDIRECT JOIN orders.amount
        order_id <- INDIRECT JOIN orders.customer_id
        ",
    );
}

#[tokio::test]
async fn aggregates_and_group_by() {
    expect(
        &lineage(
            "SELECT status, sum(amount) AS total, count(order_id) AS n, \
             count(*) AS rows FROM orders GROUP BY status",
        )
        .await,
        "
        n <- DIRECT AGGREGATION orders.order_id masking
        n <- INDIRECT GROUP_BY orders.status
        rows <- INDIRECT GROUP_BY orders.status
        status <- DIRECT IDENTITY orders.status
        status <- INDIRECT GROUP_BY orders.status
        total <- DIRECT AGGREGATION orders.amount
        total <- INDIRECT GROUP_BY orders.status
        ",
    );
}

#[tokio::test]
async fn values_flow_through_min_concat_and_lower_but_not_tests_or_hashes() {
    expect(
        &lineage(
            "SELECT min(email) AS sample_contact, count(DISTINCT email) AS emails, \
             max(lower(concat(country, email))) AS mixed, \
             max(length(email)) AS longest, bool_or(email LIKE '%@x.org') AS any_x, \
             max(sha256(email)) AS hashed, string_agg(email, ',') AS listed \
             FROM customers",
        )
        .await,
        "
        any_x <- DIRECT AGGREGATION customers.email masking
        emails <- DIRECT AGGREGATION customers.email masking
        hashed <- DIRECT AGGREGATION customers.email masking
        listed <- DIRECT AGGREGATION customers.email
        longest <- DIRECT AGGREGATION customers.email masking
        mixed <- DIRECT AGGREGATION customers.country
        mixed <- DIRECT AGGREGATION customers.email
        sample_contact <- DIRECT AGGREGATION customers.email
        ",
    );
}

#[tokio::test]
async fn case_tests_are_conditional() {
    expect(
        &lineage("SELECT CASE WHEN amount > 100 THEN status ELSE 'small' END AS size FROM orders")
            .await,
        "
        size <- DIRECT TRANSFORMATION orders.status
        size <- INDIRECT CONDITIONAL orders.amount
        ",
    );
}

#[tokio::test]
async fn window_functions() {
    expect(
        &lineage(
            "SELECT order_id, sum(amount) OVER (PARTITION BY customer_id ORDER BY order_id) AS running, \
             row_number() OVER (ORDER BY amount) AS n, lag(status) OVER (ORDER BY order_id) AS before \
             FROM orders",
        )
        .await,
        "
        before <- DIRECT TRANSFORMATION orders.status
        before <- INDIRECT WINDOW orders.order_id
        n <- INDIRECT WINDOW orders.amount
        order_id <- DIRECT IDENTITY orders.order_id
        running <- DIRECT AGGREGATION orders.amount
        running <- INDIRECT WINDOW orders.customer_id
        running <- INDIRECT WINDOW orders.order_id
        ",
    );
}

#[tokio::test]
async fn ctes_subqueries_and_star() {
    expect(
        &lineage(
            "WITH paid AS (SELECT * FROM orders WHERE status = 'paid') \
             SELECT p.order_id, (SELECT max(country) FROM customers c WHERE c.customer_id = p.customer_id) AS country \
             FROM (SELECT * FROM paid) p",
        )
        .await,
        "
        country <- DIRECT AGGREGATION customers.country
        country <- INDIRECT FILTER customers.customer_id
        country <- INDIRECT FILTER orders.customer_id
        country <- INDIRECT FILTER orders.status
        order_id <- DIRECT IDENTITY orders.order_id
        order_id <- INDIRECT FILTER orders.status
        ",
    );
}

#[tokio::test]
async fn unions_merge_their_branches() {
    expect(
        &lineage(
            "SELECT customer_id AS id FROM orders UNION ALL SELECT customer_id FROM customers WHERE country = 'NL'",
        )
        .await,
        "
        id <- DIRECT IDENTITY customers.customer_id
        id <- DIRECT IDENTITY orders.customer_id
        id <- INDIRECT FILTER customers.country
        ",
    );
}

#[tokio::test]
async fn nested_fields_and_in_subqueries() {
    expect(
        &lineage(
            "SELECT info['len'] AS len, upper(info['label']) AS label FROM orders \
             WHERE customer_id IN (SELECT customer_id FROM customers WHERE country = 'NL')",
        )
        .await,
        "
        label <- DIRECT TRANSFORMATION orders.info.label
        label <- INDIRECT FILTER customers.country
        label <- INDIRECT FILTER customers.customer_id
        label <- INDIRECT FILTER orders.customer_id
        len <- DIRECT IDENTITY orders.info.len
        len <- INDIRECT FILTER customers.country
        len <- INDIRECT FILTER customers.customer_id
        len <- INDIRECT FILTER orders.customer_id
        ",
    );
}

#[tokio::test]
async fn correlated_exists_filters_on_both_sides() {
    expect(
        &lineage(
            "SELECT order_id FROM orders o WHERE EXISTS \
             (SELECT 1 FROM customers c WHERE c.customer_id = o.customer_id AND c.country = 'NL')",
        )
        .await,
        "
        order_id <- DIRECT IDENTITY orders.order_id
        order_id <- INDIRECT FILTER customers.country
        order_id <- INDIRECT FILTER customers.customer_id
        order_id <- INDIRECT FILTER orders.customer_id
        ",
    );
}

#[tokio::test]
async fn distinct_and_star_over_a_join() {
    expect(
        &lineage(
            "SELECT DISTINCT * FROM (SELECT o.order_id, c.email FROM orders o \
             LEFT JOIN customers c USING (customer_id))",
        )
        .await,
        "
        email <- DIRECT IDENTITY customers.email
        email <- INDIRECT JOIN customers.customer_id
        email <- INDIRECT JOIN orders.customer_id
        email <- INDIRECT GROUP_BY customers.email
        email <- INDIRECT GROUP_BY orders.order_id
        order_id <- DIRECT IDENTITY orders.order_id
        order_id <- INDIRECT JOIN customers.customer_id
        order_id <- INDIRECT JOIN orders.customer_id
        order_id <- INDIRECT GROUP_BY customers.email
        order_id <- INDIRECT GROUP_BY orders.order_id
        ",
    );
}
