//! `mesh catalog`: discovering products, on the local project or a
//! server.

use anyhow::Context;
use clap::Subcommand;
use mesh_service::{Caller, Mesh};

use crate::Format;
use crate::output::{print_catalog_list, print_history, print_product, print_search, table};
use crate::remote::Remote;

#[derive(Subcommand)]
pub enum CatalogCommand {
    /// Every deployed product.
    List {
        #[arg(long, value_enum, default_value_t = Format::Table)]
        format: Format,
    },
    /// Releases of a product: when, which product version, and the exact
    /// data version and row count of each output.
    History {
        product: String,
        #[arg(long, value_enum, default_value_t = Format::Table)]
        format: Format,
    },
    /// Everything about one product.
    Show {
        product: String,
        /// Instead: which consumers read which of its columns.
        #[arg(long)]
        usage: bool,
        #[arg(long, value_enum, default_value_t = Format::Table)]
        format: Format,
    },
    /// Ranked full-text search.
    Search {
        words: Vec<String>,
        #[arg(long, value_enum, default_value_t = Format::Table)]
        format: Format,
    },
}

/// Answers from the local project.
pub async fn local(mesh: &Mesh, caller: &Caller, cmd: CatalogCommand) -> anyhow::Result<()> {
    match cmd {
        CatalogCommand::List { format } => {
            print_catalog_list(&mesh.catalog_list(caller).await?, format)
        }
        CatalogCommand::History { product, format } => {
            print_history(&mesh.catalog_history(caller, &product).await?, format)
        }
        CatalogCommand::Show {
            product,
            usage: true,
            format,
        } => print_usage(&mesh.column_readers(caller, &product).await?, format),
        CatalogCommand::Show {
            product,
            usage: false,
            format,
        } => print_product(&mesh.catalog_show(caller, &product).await?, format),
        CatalogCommand::Search { words, format } => {
            let hits = mesh
                .catalog_search(caller, &words.join(" "))
                .await
                .context("search failed")?;
            print_search(&hits, &words, format)
        }
    }
}

/// Asks a server's REST API.
pub async fn remote(client: &Remote, cmd: CatalogCommand) -> anyhow::Result<()> {
    match cmd {
        CatalogCommand::List { format } => print_catalog_list(
            &client.list("/api/v1/products", &[], usize::MAX).await?,
            format,
        ),
        CatalogCommand::History { product, format } => {
            let path = format!("/api/v1/products/{}/history", product_path(&product)?);
            print_history(&client.list(&path, &[], usize::MAX).await?, format)
        }
        CatalogCommand::Show { usage: true, .. } => anyhow::bail!(
            "`mesh catalog show --usage` reads deployed SQL and works on the local project only; drop --server"
        ),
        CatalogCommand::Show {
            product, format, ..
        } => {
            let path = format!("/api/v1/products/{}", product_path(&product)?);
            print_product(&client.get(&path).await?, format)
        }
        CatalogCommand::Search { words, format } => {
            let hits: Vec<mesh_service::discover::SearchResult> = client
                .list("/api/v1/search", &[("q", words.join(" "))], usize::MAX)
                .await?;
            print_search(&hits, &words, format)
        }
    }
}

/// `mesh catalog show --usage`: which consumers read which column.
fn print_usage(
    readers: &[mesh_service::plan::ColumnReaders],
    format: Format,
) -> anyhow::Result<()> {
    if format == Format::Json {
        println!("{}", serde_json::to_string_pretty(readers)?);
        return Ok(());
    }
    let rows = readers
        .iter()
        .map(|r| {
            vec![
                r.output.clone(),
                r.column.clone(),
                if r.read_by.is_empty() {
                    "(no consumer reads it)".into()
                } else {
                    r.read_by.join(", ")
                },
            ]
        })
        .collect();
    let headers = ["output", "column", "read by"].map(String::from).to_vec();
    println!("{}", table(headers, rows));
    Ok(())
}

/// `<domain>/<name>` as two URL path segments.
fn product_path(product: &str) -> anyhow::Result<String> {
    let (domain, name) = product
        .split_once('/')
        .filter(|(d, n)| !d.is_empty() && !n.is_empty() && !n.contains('/'))
        .ok_or_else(|| anyhow::anyhow!("`{product}` is not a product name such as sales/orders"))?;
    let ok = |s: &str| {
        s.chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
    };
    if !ok(domain) || !ok(name) {
        anyhow::bail!("`{product}` is not a product name such as sales/orders");
    }
    Ok(format!("{domain}/{name}"))
}
