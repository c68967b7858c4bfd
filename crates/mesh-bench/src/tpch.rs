//! TPC-H data, generated in-process with `tpchgen`, and the mesh project
//! whose source-aligned products ingest it.

use std::fmt::Display;
use std::io::{BufWriter, Write};
use std::path::Path;

use anyhow::{Context, Result};
use tpchgen::csv::{
    CustomerCsv, LineItemCsv, NationCsv, OrderCsv, PartCsv, PartSuppCsv, RegionCsv, SupplierCsv,
};
use tpchgen::generators::{
    CustomerGenerator, LineItemGenerator, NationGenerator, OrderGenerator, PartGenerator,
    PartSuppGenerator, RegionGenerator, SupplierGenerator,
};

/// One TPC-H table as a data product.
pub struct Table {
    pub name: &'static str,
    /// `name type [key]` per column, in CSV order.
    pub columns: &'static [(&'static str, &'static str)],
    pub primary_key: &'static [&'static str],
    /// Quality checks beyond the implicit primary-key ones, as YAML flow maps.
    pub checks: &'static [&'static str],
}

const MONEY: &str = "decimal(15,2)";

pub const TABLES: &[Table] = &[
    Table {
        name: "region",
        columns: &[
            ("r_regionkey", "bigint"),
            ("r_name", "string"),
            ("r_comment", "string"),
        ],
        primary_key: &["r_regionkey"],
        checks: &["{check: row_count, min: 5, max: 5}"],
    },
    Table {
        name: "nation",
        columns: &[
            ("n_nationkey", "bigint"),
            ("n_name", "string"),
            ("n_regionkey", "bigint"),
            ("n_comment", "string"),
        ],
        primary_key: &["n_nationkey"],
        checks: &["{check: row_count, min: 25, max: 25}"],
    },
    Table {
        name: "part",
        columns: &[
            ("p_partkey", "bigint"),
            ("p_name", "string"),
            ("p_mfgr", "string"),
            ("p_brand", "string"),
            ("p_type", "string"),
            ("p_size", "int"),
            ("p_container", "string"),
            ("p_retailprice", MONEY),
            ("p_comment", "string"),
        ],
        primary_key: &["p_partkey"],
        checks: &["{check: range, column: p_size, min: 1, max: 50}"],
    },
    Table {
        name: "supplier",
        columns: &[
            ("s_suppkey", "bigint"),
            ("s_name", "string"),
            ("s_address", "string"),
            ("s_nationkey", "bigint"),
            ("s_phone", "string"),
            ("s_acctbal", MONEY),
            ("s_comment", "string"),
        ],
        primary_key: &["s_suppkey"],
        checks: &["{check: range, column: s_nationkey, min: 0, max: 24}"],
    },
    Table {
        name: "partsupp",
        columns: &[
            ("ps_partkey", "bigint"),
            ("ps_suppkey", "bigint"),
            ("ps_availqty", "int"),
            ("ps_supplycost", MONEY),
            ("ps_comment", "string"),
        ],
        primary_key: &["ps_partkey", "ps_suppkey"],
        checks: &["{check: range, column: ps_supplycost, min: 0}"],
    },
    Table {
        name: "customer",
        columns: &[
            ("c_custkey", "bigint"),
            ("c_name", "string"),
            ("c_address", "string"),
            ("c_nationkey", "bigint"),
            ("c_phone", "string"),
            ("c_acctbal", MONEY),
            ("c_mktsegment", "string"),
            ("c_comment", "string"),
        ],
        primary_key: &["c_custkey"],
        checks: &[
            "{check: accepted_values, column: c_mktsegment, values: [AUTOMOBILE, BUILDING, FURNITURE, HOUSEHOLD, MACHINERY]}",
        ],
    },
    Table {
        name: "orders",
        columns: &[
            ("o_orderkey", "bigint"),
            ("o_custkey", "bigint"),
            ("o_orderstatus", "string"),
            ("o_totalprice", MONEY),
            ("o_orderdate", "date"),
            ("o_orderpriority", "string"),
            ("o_clerk", "string"),
            ("o_shippriority", "int"),
            ("o_comment", "string"),
        ],
        primary_key: &["o_orderkey"],
        checks: &[
            "{check: accepted_values, column: o_orderstatus, values: [F, O, P]}",
            "{check: not_null, column: o_orderdate}",
        ],
    },
    Table {
        name: "lineitem",
        columns: &[
            ("l_orderkey", "bigint"),
            ("l_partkey", "bigint"),
            ("l_suppkey", "bigint"),
            ("l_linenumber", "int"),
            ("l_quantity", MONEY),
            ("l_extendedprice", MONEY),
            ("l_discount", MONEY),
            ("l_tax", MONEY),
            ("l_returnflag", "string"),
            ("l_linestatus", "string"),
            ("l_shipdate", "date"),
            ("l_commitdate", "date"),
            ("l_receiptdate", "date"),
            ("l_shipinstruct", "string"),
            ("l_shipmode", "string"),
            ("l_comment", "string"),
        ],
        primary_key: &["l_orderkey", "l_linenumber"],
        checks: &[
            "{check: row_count, min: 1}",
            "{check: range, column: l_discount, min: 0, max: 0.1}",
            "{check: range, column: l_quantity, min: 1, max: 50}",
            "{check: accepted_values, column: l_returnflag, values: [A, N, R]}",
            "{check: not_null, column: l_shipdate}",
        ],
    },
];

pub fn table(name: &str) -> Option<&'static Table> {
    TABLES.iter().find(|t| t.name == name)
}

/// How many files a table is split into: big tables are generated in parallel.
fn parts_for(name: &str, threads: usize) -> usize {
    match name {
        "lineitem" | "orders" | "partsupp" | "part" | "customer" => threads.max(1),
        _ => 1,
    }
}

fn write_rows<R: Display>(path: &Path, header: &str, rows: impl Iterator<Item = R>) -> Result<()> {
    let file = std::fs::File::create(path).with_context(|| format!("create {}", path.display()))?;
    let mut out = BufWriter::with_capacity(1 << 20, file);
    writeln!(out, "{header}")?;
    for r in rows {
        writeln!(out, "{r}")?;
    }
    out.flush()?;
    Ok(())
}

/// Writes part `part` of `parts` of table `name` at scale `sf` as CSV.
fn generate_part(name: &str, sf: f64, part: i32, parts: i32, path: &Path) -> Result<()> {
    match name {
        "region" => write_rows(
            path,
            RegionCsv::header(),
            RegionGenerator::new(sf, part, parts)
                .iter()
                .map(RegionCsv::new),
        ),
        "nation" => write_rows(
            path,
            NationCsv::header(),
            NationGenerator::new(sf, part, parts)
                .iter()
                .map(NationCsv::new),
        ),
        "part" => write_rows(
            path,
            PartCsv::header(),
            PartGenerator::new(sf, part, parts).iter().map(PartCsv::new),
        ),
        "supplier" => write_rows(
            path,
            SupplierCsv::header(),
            SupplierGenerator::new(sf, part, parts)
                .iter()
                .map(SupplierCsv::new),
        ),
        "partsupp" => write_rows(
            path,
            PartSuppCsv::header(),
            PartSuppGenerator::new(sf, part, parts)
                .iter()
                .map(PartSuppCsv::new),
        ),
        "customer" => write_rows(
            path,
            CustomerCsv::header(),
            CustomerGenerator::new(sf, part, parts)
                .iter()
                .map(CustomerCsv::new),
        ),
        "orders" => write_rows(
            path,
            OrderCsv::header(),
            OrderGenerator::new(sf, part, parts)
                .iter()
                .map(OrderCsv::new),
        ),
        "lineitem" => write_rows(
            path,
            LineItemCsv::header(),
            LineItemGenerator::new(sf, part, parts)
                .iter()
                .map(LineItemCsv::new),
        ),
        other => anyhow::bail!("unknown TPC-H table `{other}`"),
    }
}

/// Generates every table's CSV files into `<project>/tpch/<table>/data/`.
pub fn generate(project: &Path, sf: f64, threads: usize) -> Result<()> {
    for t in TABLES {
        let data = project.join("tpch").join(t.name).join("data");
        std::fs::create_dir_all(&data)?;
        let parts = parts_for(t.name, threads);
        std::thread::scope(|s| {
            let handles: Vec<_> = (1..=parts)
                .map(|part| {
                    let path = data.join(format!("part-{part}.csv"));
                    s.spawn(move || generate_part(t.name, sf, part as i32, parts as i32, &path))
                })
                .collect();
            handles
                .into_iter()
                .map(|h| {
                    h.join()
                        .map_err(|_| anyhow::anyhow!("generator thread panicked"))?
                })
                .collect::<Result<Vec<()>>>()
        })?;
    }
    Ok(())
}

/// The layout a benchmark's TPC-H products declare.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Layout {
    /// No `cluster_by`: the writer's defaults.
    Default,
    /// `cluster_by` on the date the queries filter by: lineitem on
    /// `l_shipdate`, orders on `o_orderdate`.
    Clustered,
}

impl Layout {
    fn cluster_by(self, table: &str) -> Option<&'static str> {
        match (self, table) {
            (Layout::Clustered, "lineitem") => Some("l_shipdate"),
            (Layout::Clustered, "orders") => Some("o_orderdate"),
            _ => None,
        }
    }
}

/// Writes `mesh.yaml` and one source-aligned product per table.
pub fn write_project(project: &Path) -> Result<()> {
    write_project_laid_out(project, Layout::Default)
}

/// Writes `mesh.yaml` and one source-aligned product per table, laid out
/// as `layout` says.
pub fn write_project_laid_out(project: &Path, layout: Layout) -> Result<()> {
    std::fs::create_dir_all(project)?;
    std::fs::write(
        project.join("mesh.yaml"),
        "apiVersion: meshwork/v1\nkind: Mesh\nname: tpch-bench\n",
    )?;
    for t in TABLES {
        let dir = project.join("tpch").join(t.name);
        std::fs::create_dir_all(&dir)?;
        std::fs::write(
            dir.join("product.yaml"),
            descriptor(t, layout.cluster_by(t.name)),
        )?;
    }
    Ok(())
}

fn descriptor(t: &Table, cluster_by: Option<&str>) -> String {
    let column = |(name, ty): &(&str, &str)| {
        let key = t.primary_key.contains(name);
        format!("{{name: {name}, type: \"{ty}\", nullable: {}}}", !key)
    };
    // Output columns are described, and contact details classified: the
    // default deploy rules require both.
    let output_column = |c: &(&str, &str)| {
        let name = c.0;
        let classification = match name {
            "c_phone" | "c_address" => ", classification: pii",
            "s_phone" | "s_address" => ", classification: internal",
            _ => "",
        };
        let plain = column(c);
        format!(
            "{}, description: TPC-H {name}{classification}}}",
            &plain[..plain.len() - 1]
        )
    };
    let source_columns: String = t
        .columns
        .iter()
        .map(|c| format!("        - {}\n", column(c)))
        .collect();
    let output_columns: String = t
        .columns
        .iter()
        .map(|c| format!("      - {}\n", output_column(c)))
        .collect();
    let checks: String = t.checks.iter().map(|c| format!("      - {c}\n")).collect();
    let names: Vec<&str> = t.columns.iter().map(|c| c.0).collect();
    format!(
        "apiVersion: meshwork/v1\n\
         kind: DataProduct\n\
         domain: tpch\n\
         name: {name}\n\
         version: 1.0.0\n\
         owner: bench@meshwork.dev\n\
         description:\n  purpose: TPC-H {name}, ingested from CSV.\n\
         tags: [tpch, benchmark]\n\
         inputs:\n  - name: raw\n    source:\n      format: csv\n      path: data/*.csv\n      columns:\n{source_columns}\
         transform:\n  query: SELECT {select} FROM raw\n\
         outputs:\n  - name: {name}\n{cluster}    primary_key: [{pk}]\n    columns:\n{output_columns}    quality:\n{checks}\
         slo: {{freshness: 1d}}\n",
        name = t.name,
        select = names.join(", "),
        pk = t.primary_key.join(", "),
        cluster = cluster_by.map_or(String::new(), |c| format!("    cluster_by: [{c}]\n")),
    )
}
