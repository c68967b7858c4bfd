//! `mesh status`: every product's health, by domain.

use std::process::ExitCode;

use clap::Args;
use mesh_service::health::{Health, ProductHealth};
use mesh_service::{Caller, Mesh};

use crate::Format;
use crate::output::table;
use crate::remote::Remote;

#[derive(Args)]
pub struct StatusArgs {
    /// Only this domain's products.
    #[arg(long)]
    domain: Option<String>,
    #[arg(long, value_enum, default_value_t = Format::Table)]
    format: Format,
}

/// `mesh status` on the local project.
pub async fn local(mesh: &Mesh, caller: &Caller, args: StatusArgs) -> anyhow::Result<ExitCode> {
    status_of(mesh.status(caller).await?, args)
}

/// `mesh status`, asking a server.
pub async fn remote(client: &Remote, args: StatusArgs) -> anyhow::Result<ExitCode> {
    status_of(client.list("/api/v1/status", &[], usize::MAX).await?, args)
}

/// Prints `mesh status`; failing products make it exit 1.
fn status_of(mut all: Vec<ProductHealth>, args: StatusArgs) -> anyhow::Result<ExitCode> {
    if let Some(d) = &args.domain {
        all.retain(|h| &h.domain == d);
    }
    print_status(&all, args.format == Format::Json)?;
    Ok(if all.iter().any(|h| h.health == Health::Failing) {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    })
}

fn age(secs: Option<i64>) -> String {
    secs.map_or_else(|| "never".into(), mesh_service::health::age)
}

/// Prints products' health, grouped by domain, with why each is not healthy.
pub fn print_status(all: &[ProductHealth], json: bool) -> anyhow::Result<()> {
    if json {
        println!("{}", serde_json::to_string_pretty(all)?);
        return Ok(());
    }
    let rows = all
        .iter()
        .map(|h| {
            vec![
                h.domain.clone(),
                h.product.clone(),
                h.health.as_str().to_string(),
                age(h.age_seconds),
                h.freshness_fail_seconds.map_or_else(String::new, |f| {
                    mesh_spec::format_duration(std::time::Duration::from_secs(f))
                }),
                h.last_run
                    .as_ref()
                    .map_or_else(|| "never".into(), |r| r.status.clone()),
                h.quality_pass_rate
                    .map_or_else(String::new, |r| format!("{:.1}%", r * 100.0)),
                h.reasons.join("; "),
            ]
        })
        .collect();
    let headers = [
        "domain",
        "product",
        "health",
        "data age",
        "freshness",
        "last run",
        "checks ok",
        "why",
    ];
    println!(
        "{}",
        table(headers.iter().map(|s| s.to_string()).collect(), rows)
    );
    let count = |h: &str| all.iter().filter(|p| p.health.as_str() == h).count();
    println!(
        "{} healthy, {} degraded, {} failing",
        count("healthy"),
        count("degraded"),
        count("failing")
    );
    Ok(())
}
