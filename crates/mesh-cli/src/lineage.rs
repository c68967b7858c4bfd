//! `mesh lineage`: column lineage upstream and downstream of a product,
//! an output or a column, as a table, JSON or Graphviz DOT.

use clap::{Args, ValueEnum};
use mesh_service::lineage::view::{Direction, LineageView};
use mesh_service::{Caller, Mesh};

use crate::output::table;
use crate::remote::Remote;

#[derive(Clone, Copy, ValueEnum, PartialEq, Eq)]
pub enum LineageFormat {
    Table,
    Json,
    Dot,
}

#[derive(Args)]
pub struct LineageArgs {
    /// `<domain>/<product>[.<output>[.<column>]]`, or an output's SQL
    /// name `<domain>.<output>[.<column>]`.
    target: String,
    /// Only where the columns come from.
    #[arg(long, conflicts_with = "downstream")]
    upstream: bool,
    /// Only what reads them (what a change reaches).
    #[arg(long)]
    downstream: bool,
    /// At most this many steps from the target (default: all).
    #[arg(long)]
    depth: Option<usize>,
    #[arg(long, value_enum, default_value_t = LineageFormat::Table)]
    format: LineageFormat,
}

/// `mesh lineage` on the local project.
pub async fn local(mesh: &Mesh, caller: &Caller, args: LineageArgs) -> anyhow::Result<()> {
    let view = mesh
        .lineage(caller, &args.target, args.direction(), args.depth)
        .await?;
    print(&view, args.format)
}

/// `mesh lineage`, asking a server.
pub async fn remote(client: &Remote, args: LineageArgs) -> anyhow::Result<()> {
    let direction = match args.direction() {
        Direction::Upstream => "upstream",
        Direction::Downstream => "downstream",
        Direction::Both => "both",
    };
    let mut query = vec![
        ("target", args.target.clone()),
        ("direction", direction.to_string()),
    ];
    if let Some(d) = args.depth {
        query.push(("depth", d.to_string()));
    }
    let view = client.get_with("/api/v1/lineage", &query).await?;
    print(&view, args.format)
}

impl LineageArgs {
    fn direction(&self) -> Direction {
        match (self.upstream, self.downstream) {
            (true, false) => Direction::Upstream,
            (false, true) => Direction::Downstream,
            _ => Direction::Both,
        }
    }
}

/// Prints a lineage answer in the format asked for.
fn print(view: &LineageView, format: LineageFormat) -> anyhow::Result<()> {
    match format {
        LineageFormat::Json => println!("{}", serde_json::to_string_pretty(view)?),
        LineageFormat::Dot => print!("{}", dot(view)),
        LineageFormat::Table => {
            let nodes = view
                .nodes
                .iter()
                .map(|n| {
                    vec![
                        n.depth.to_string(),
                        if n.redacted {
                            format!("({}: a product you cannot see)", n.id)
                        } else {
                            n.id.clone()
                        },
                        n.product.clone().unwrap_or_default(),
                        n.classification.clone().unwrap_or_default(),
                    ]
                })
                .collect();
            println!("Lineage of {}", view.target);
            println!(
                "{}",
                table(
                    ["depth", "column", "product", "classification"]
                        .map(String::from)
                        .to_vec(),
                    nodes
                )
            );
            if view.edges.is_empty() {
                println!("No column flows into or out of it.");
                return Ok(());
            }
            let edges = view
                .edges
                .iter()
                .map(|e| {
                    let from = match &e.field {
                        Some(f) => format!("{}['{f}']", e.from),
                        None => e.from.clone(),
                    };
                    let how = if e.masking {
                        format!("{} (masking)", e.subtype)
                    } else {
                        e.subtype.clone()
                    };
                    vec![from, e.to.clone(), e.edge_type.clone(), how]
                })
                .collect();
            println!(
                "{}",
                table(
                    ["from", "to", "type", "subtype"].map(String::from).to_vec(),
                    edges
                )
            );
        }
    }
    Ok(())
}

/// Graphviz DOT: one node per column, DIRECT edges solid, INDIRECT
/// dashed, redacted nodes grey.
pub fn dot(view: &LineageView) -> String {
    let quote = |s: &str| format!("\"{}\"", s.replace('"', "\\\""));
    let mut out = String::from("digraph lineage {\n  rankdir=LR;\n  node [shape=box];\n");
    for n in &view.nodes {
        let label = match (&n.redacted, &n.classification) {
            (true, _) => "(hidden)".to_string(),
            (false, Some(k)) => format!("{}\\n[{k}]", n.id),
            (false, None) => n.id.clone(),
        };
        let style = if n.redacted {
            ", style=dashed, color=grey"
        } else if n.depth == 0 {
            ", style=bold"
        } else {
            ""
        };
        out.push_str(&format!(
            "  {} [label={}{style}];\n",
            quote(&n.id),
            quote(&label)
        ));
    }
    for e in &view.edges {
        let style = if e.edge_type == "INDIRECT" {
            ", style=dashed"
        } else {
            ""
        };
        out.push_str(&format!(
            "  {} -> {} [label={}{style}];\n",
            quote(&e.from),
            quote(&e.to),
            quote(&e.subtype)
        ));
    }
    out.push_str("}\n");
    out
}
