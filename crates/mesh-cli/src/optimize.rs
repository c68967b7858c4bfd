//! `mesh optimize`: compacts the small files of each output's current
//! release into target-sized ones, changing no data (docs/storage.md).

use clap::Args;
use mesh_service::optimize::Optimized;

use crate::Format;
use crate::output::table;

#[derive(Args)]
pub struct OptimizeArgs {
    /// Only this product (`<domain>/<name>`); every deployed one by default.
    pub product: Option<String>,
    #[arg(long, value_enum, default_value_t = Format::Table)]
    pub format: Format,
}

/// Prints what compaction did.
pub fn print(report: &[Optimized], format: Format) -> anyhow::Result<()> {
    if format == Format::Json {
        println!("{}", serde_json::to_string_pretty(report)?);
        return Ok(());
    }
    let rows: Vec<Vec<String>> = report
        .iter()
        .flat_map(|p| {
            p.outputs.iter().map(|o| {
                vec![
                    o.output.clone(),
                    o.release.to_string(),
                    format!("{} -> {}", o.files_before, o.files_after),
                    format!("{} ({} bytes)", o.files_rewritten, o.bytes_rewritten),
                    format!("{} ({} bytes)", o.files_written, o.bytes_written),
                    o.rows.to_string(),
                    p.run.as_ref().map_or(String::new(), |r| r.id.to_string()),
                ]
            })
        })
        .collect();
    if rows.is_empty() {
        println!("Nothing to compact: no current release has two or more small files.");
        return Ok(());
    }
    println!(
        "{}",
        table(
            [
                "output",
                "release",
                "files",
                "rewritten",
                "written",
                "rows",
                "run"
            ]
            .map(String::from)
            .to_vec(),
            rows
        )
    );
    println!(
        "Data unchanged; the replaced files stay readable by earlier readers until `mesh vacuum`."
    );
    Ok(())
}
