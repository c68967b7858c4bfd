//! `mesh contract`: products' contracts as Open Data Contract Standard
//! documents, out and in.

use std::path::PathBuf;

use anyhow::Context;
use clap::{Subcommand, ValueEnum};

#[derive(Subcommand)]
pub enum ContractCommand {
    /// Write a product's contract as an ODCS v3.1.0 YAML document.
    Export {
        product: String,
        #[arg(long, value_enum, default_value_t = ContractFormat::Odcs)]
        format: ContractFormat,
        /// Write to this file instead of stdout.
        #[arg(long, short)]
        out: Option<PathBuf>,
    },
    /// Create a product.yaml skeleton from an ODCS document.
    Import {
        file: PathBuf,
        /// Write to this file instead of stdout (refuses to overwrite).
        #[arg(long, short)]
        out: Option<PathBuf>,
    },
}

#[derive(Clone, Copy, ValueEnum, PartialEq, Eq)]
pub enum ContractFormat {
    Odcs,
}

/// Runs the command; an export opens the project, an import reads one
/// file.
pub async fn contract(project: &Option<PathBuf>, cmd: ContractCommand) -> anyhow::Result<()> {
    match cmd {
        ContractCommand::Export {
            product,
            format: ContractFormat::Odcs,
            out,
        } => {
            let mesh = crate::open(project, None).await?;
            let doc = mesh.contract_export(&product).await?;
            let text = mesh_contract::odcs::to_yaml(&doc);
            match out {
                Some(path) => {
                    std::fs::write(&path, text)
                        .with_context(|| format!("cannot write {}", path.display()))?;
                    eprintln!("Wrote {}", path.display());
                }
                None => print!("{text}"),
            }
        }
        ContractCommand::Import { file, out } => {
            let (text, notes) = mesh_service::contract::contract_import(&file)?;
            for n in &notes {
                eprintln!("note: {n}");
            }
            match out {
                Some(path) if path.exists() => {
                    anyhow::bail!("{} already exists; choose another --out", path.display())
                }
                Some(path) => {
                    std::fs::write(&path, text)
                        .with_context(|| format!("cannot write {}", path.display()))?;
                    eprintln!(
                        "Wrote {}; fill in its inputs and transform, then `mesh validate`",
                        path.display()
                    );
                }
                None => print!("{text}"),
            }
        }
    }
    Ok(())
}
