//! `mesh vacuum`: applies retention, removing the files only expired
//! data versions read (docs/storage.md).

use clap::Args;
use mesh_service::retention::OutputVacuum;

use crate::Format;
use crate::output::table;

#[derive(Args)]
pub struct VacuumArgs {
    /// Only this product (`<domain>/<name>`); every deployed one by default.
    pub product: Option<String>,
    /// Report what would be expired and removed; change nothing.
    #[arg(long)]
    pub dry_run: bool,
    #[arg(long, value_enum, default_value_t = Format::Table)]
    pub format: Format,
}

fn versions(v: &[i64]) -> String {
    if v.is_empty() {
        return "-".into();
    }
    v.iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join(", ")
}

/// Prints what vacuum did, or would do with `dry_run`.
pub fn print(report: &[OutputVacuum], dry_run: bool, format: Format) -> anyhow::Result<()> {
    if format == Format::Json {
        println!("{}", serde_json::to_string_pretty(report)?);
        return Ok(());
    }
    let rows = report
        .iter()
        .map(|o| {
            vec![
                o.output.clone(),
                o.retention.clone(),
                versions(&o.kept),
                versions(&o.expired),
                o.files_removed.to_string(),
                o.bytes_freed.to_string(),
                o.bytes_after.to_string(),
            ]
        })
        .collect();
    let removed = if dry_run {
        "would remove"
    } else {
        "files removed"
    };
    let freed = if dry_run {
        "bytes it would free"
    } else {
        "bytes freed"
    };
    println!(
        "{}",
        table(
            [
                "output",
                "retention",
                "kept versions",
                "expired versions",
                removed,
                freed,
                "bytes kept"
            ]
            .map(String::from)
            .to_vec(),
            rows
        )
    );
    let total: u64 = report.iter().map(|o| o.bytes_freed).sum();
    if dry_run {
        println!("Dry run: nothing changed; {total} bytes would be freed.");
    } else {
        println!("Freed {total} bytes.");
    }
    Ok(())
}
