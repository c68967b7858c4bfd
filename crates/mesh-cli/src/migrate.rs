//! `mesh migrate`: moves the mesh, with its whole history, to other
//! backends, verifies it, and points mesh.yaml at them
//! (docs/deployment.md).

use clap::Args;
use mesh_service::migrate::Migration;

use crate::Format;
use crate::output::table;

#[derive(Args)]
pub struct MigrateArgs {
    /// The catalog to move to: `postgres://USER@HOST:PORT/DATABASE` (its
    /// password from PGPASSWORD or ~/.pgpass) or `sqlite://PATH`.
    #[arg(long)]
    pub catalog: String,
    /// The storage root to move the tables to (`file:///PATH` or a path);
    /// the current one by default.
    #[arg(long)]
    pub storage: Option<String>,
    #[arg(long, value_enum, default_value_t = Format::Table)]
    pub format: Format,
}

/// Prints what the migration did.
pub fn print(m: &Migration, format: Format) -> anyhow::Result<()> {
    if format == Format::Json {
        println!("{}", serde_json::to_string_pretty(m)?);
        return Ok(());
    }
    let rows: Vec<Vec<String>> = m
        .catalog_copy
        .tables
        .iter()
        .filter(|t| t.rows > 0)
        .map(|t| vec![t.table.clone(), t.rows.to_string()])
        .collect();
    println!(
        "{}",
        table(vec!["table".into(), "rows (verified)".into()], rows)
    );
    let how = match m.catalog_copy.copied {
        true => "copied and verified",
        false => "already there; verified",
    };
    println!("catalog   {how}: {}", m.catalog);
    println!(
        "tables    {} files copied ({} bytes), {} already there: {}",
        m.files_copied, m.bytes_copied, m.files_present, m.storage
    );
    println!("mesh.yaml now names them; the old catalog and files are left as they were");
    Ok(())
}
