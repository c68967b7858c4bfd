//! Printing: tables, JSON, diagnostics and progress.

use std::io::IsTerminal;
use std::sync::Mutex;

use comfy_table::{Table, presets::UTF8_FULL_CONDENSED};
use indicatif::{ProgressBar, ProgressStyle};
use mesh_service::discover::{ProductSummary, Release, SearchResult};

use crate::Format;
use mesh_service::{Observer, ServiceError};
use mesh_spec::Diagnostic;
use mesh_spec::diagnostic::Rendered;
use serde_json::Value;

pub fn table(headers: Vec<String>, rows: Vec<Vec<String>>) -> Table {
    let mut t = Table::new();
    t.load_preset(UTF8_FULL_CONDENSED).set_header(headers);
    for r in rows {
        t.add_row(r);
    }
    t
}

fn colour() -> bool {
    std::io::stderr().is_terminal() && std::env::var_os("NO_COLOR").is_none()
}

/// Prints diagnostics rustc-style on stderr.
pub fn print_diagnostics(diagnostics: &[Diagnostic]) {
    let handler = if colour() {
        miette::GraphicalReportHandler::new()
    } else {
        miette::GraphicalReportHandler::new_themed(miette::GraphicalTheme::unicode_nocolor())
    };
    for d in diagnostics {
        let mut out = String::new();
        let rendered = Rendered::from(d.clone());
        if handler.render_report(&mut out, &rendered).is_ok() {
            eprintln!("{out}");
        } else {
            eprintln!("{d}");
        }
    }
}

/// Prints an error with its hint, or its diagnostics.
pub fn report_error(e: &anyhow::Error) {
    if let Some(ServiceError::Invalid { diagnostics }) = e.downcast_ref::<ServiceError>() {
        print_diagnostics(diagnostics);
    }
    eprintln!("error: {e}");
    let mut source = e.source();
    while let Some(s) = source {
        let text = s.to_string();
        if !e.to_string().contains(&text) {
            eprintln!("  caused by: {text}");
        }
        source = s.source();
    }
    let hint = e
        .downcast_ref::<ServiceError>()
        .and_then(ServiceError::hint)
        .or_else(|| {
            e.downcast_ref::<crate::remote::RemoteError>()
                .and_then(|r| r.hint.clone())
        });
    if let Some(hint) = hint {
        eprintln!("hint: {hint}");
    }
}

pub fn print_products<'a>(list: impl Iterator<Item = &'a ProductSummary>) {
    let rows = list
        .map(|p| {
            vec![
                format!("{}/{}", p.domain, p.name),
                p.version.clone(),
                p.status.clone(),
                p.owner.clone(),
                p.outputs.join(", "),
                p.last_run.clone().unwrap_or_else(|| "never".into()),
                p.description.clone().unwrap_or_default(),
            ]
        })
        .collect();
    let headers = [
        "product",
        "version",
        "status",
        "owner",
        "sql names",
        "last run",
        "purpose",
    ];
    println!(
        "{}",
        table(headers.iter().map(|s| s.to_string()).collect(), rows)
    );
}

fn s(v: &Value) -> String {
    match v {
        Value::Null => String::new(),
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// `mesh catalog list`.
pub fn print_catalog_list(list: &[ProductSummary], format: Format) -> anyhow::Result<()> {
    if format == Format::Json {
        println!("{}", serde_json::to_string_pretty(list)?);
    } else {
        print_products(list.iter());
    }
    Ok(())
}

/// `mesh catalog search`.
pub fn print_search(hits: &[SearchResult], words: &[String], format: Format) -> anyhow::Result<()> {
    if format == Format::Json {
        println!("{}", serde_json::to_string_pretty(hits)?);
    } else if hits.is_empty() {
        eprintln!("no product matches `{}`", words.join(" "));
    } else {
        print_products(hits.iter().map(|h| &h.summary));
    }
    Ok(())
}

/// `mesh catalog show`.
pub fn print_product(doc: &Value, format: Format) -> anyhow::Result<()> {
    if format == Format::Json {
        println!("{}", serde_json::to_string_pretty(doc)?);
    } else {
        print_show(doc);
    }
    Ok(())
}

/// `mesh catalog history`.
pub fn print_history(releases: &[Release], format: Format) -> anyhow::Result<()> {
    if format == Format::Json {
        println!("{}", serde_json::to_string_pretty(releases)?);
        return Ok(());
    }
    let rows = releases
        .iter()
        .map(|r| {
            vec![
                r.released_at.clone(),
                r.product_version.clone(),
                r.outputs
                    .iter()
                    .map(|o| format!("{}@{}", o.output, o.data_version))
                    .collect::<Vec<_>>()
                    .join(", "),
                r.outputs
                    .iter()
                    .map(|o| o.row_count.to_string())
                    .collect::<Vec<_>>()
                    .join(", "),
                r.run_id.clone(),
            ]
        })
        .collect();
    println!(
        "{}",
        table(
            ["released", "version", "data versions", "rows", "run"]
                .map(String::from)
                .to_vec(),
            rows
        )
    );
    Ok(())
}

pub fn print_show(doc: &Value) {
    println!(
        "{} {} ({})",
        s(&doc["product"]),
        s(&doc["version"]),
        s(&doc["status"])
    );
    println!("owner:       {}", s(&doc["owner"]));
    for k in ["purpose", "usage", "limitations"] {
        if !doc["description"][k].is_null() {
            println!("{k:<12} {}", s(&doc["description"][k]));
        }
    }
    if let Some(tags) = doc["tags"].as_array().filter(|t| !t.is_empty()) {
        println!(
            "tags:        {}",
            tags.iter().map(s).collect::<Vec<_>>().join(", ")
        );
    }
    println!(
        "deployed:    {} by {}",
        s(&doc["deployed_at"]),
        s(&doc["deployed_by"])
    );
    let health = &doc["health"];
    if !health.is_null() {
        println!("health:      {}", s(&health["health"]));
        for r in health["reasons"].as_array().into_iter().flatten() {
            println!("             - {}", s(r));
        }
    }
    if let Some(inputs) = doc["inputs"].as_array() {
        println!("inputs:");
        for i in inputs {
            let from = if i["product"].is_null() {
                format!("{} {}", s(&i["source"]["format"]), s(&i["source"]["path"]))
            } else {
                s(&i["product"])
            };
            println!("  {:<16} {from}", s(&i["name"]));
        }
    }
    let consumers = doc["consumers"]
        .as_array()
        .map(|c| c.iter().map(s).collect::<Vec<_>>().join(", "))
        .unwrap_or_default();
    println!(
        "consumers:   {}",
        if consumers.is_empty() {
            "none".into()
        } else {
            consumers
        }
    );
    if !doc["last_run"].is_null() {
        println!(
            "last run:    {} at {}",
            s(&doc["last_run"]["status"]),
            s(&doc["last_run"]["started_at"])
        );
    }
    if !doc["major_of"].is_null() {
        println!(
            "major of:    {} (an older major kept alive)",
            s(&doc["major_of"])
        );
    }
    for m in doc["older_majors"].as_array().into_iter().flatten() {
        let names: Vec<String> = m["sql_names"]
            .as_array()
            .into_iter()
            .flatten()
            .map(s)
            .collect();
        let readers: Vec<String> = m["consumers"]
            .as_array()
            .into_iter()
            .flatten()
            .map(s)
            .collect();
        println!(
            "older major: {} {} as {}; read by {}",
            s(&m["product"]),
            s(&m["version"]),
            names.join(", "),
            if readers.is_empty() {
                "nobody".to_string()
            } else {
                readers.join(", ")
            }
        );
    }
    for o in doc["contract_overrides"].as_array().into_iter().flatten() {
        println!(
            "override:    {} → {} deployed with --allow-breaking by {} at {}",
            s(&o["from_version"]),
            s(&o["to_version"]),
            s(&o["by"]),
            s(&o["at"])
        );
    }
    for o in doc["outputs"].as_array().into_iter().flatten() {
        println!("\noutput {}  ({})", s(&o["sql_name"]), s(&o["address"]));
        println!(
            "  data version {}, {} rows",
            if o["data_version"].is_null() {
                "none".into()
            } else {
                s(&o["data_version"])
            },
            s(&o["row_count"])
        );
        let st = &o["storage"];
        if st.is_object() {
            let versions = |v: &Value| {
                v.as_array()
                    .into_iter()
                    .flatten()
                    .map(s)
                    .collect::<Vec<_>>()
                    .join(", ")
            };
            println!(
                "  storage {} bytes in {} files (current version {} bytes); retention {} keeps versions [{}] of [{}]",
                s(&st["bytes"]),
                s(&st["files"]),
                s(&st["current_bytes"]),
                s(&st["retention"]),
                versions(&st["kept_by_retention"]),
                versions(&st["readable_versions"])
            );
        }
        let rows = o["columns"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|c| {
                vec![
                    s(&c["name"]),
                    s(&c["type"]),
                    if c["nullable"] == Value::Bool(false) {
                        "no".into()
                    } else {
                        "yes".into()
                    },
                    class_cell(c),
                    c["sources"]
                        .as_array()
                        .into_iter()
                        .flatten()
                        .filter(|x| x["type"] == "DIRECT")
                        .map(|x| s(&x["column"]))
                        .collect::<Vec<_>>()
                        .join(", "),
                    s(&c["description"]),
                ]
            })
            .collect();
        let headers = ["column", "type", "nullable", "class", "from", "description"];
        println!(
            "{}",
            table(headers.iter().map(|s| s.to_string()).collect(), rows)
        );
    }
}

/// A column's classification: declared, or derived from its lineage when
/// that is stricter, or declassified by its owner.
fn class_cell(c: &Value) -> String {
    let declared = s(&c["classification"]);
    let derived = s(&c["derived_classification"]);
    let mut cell = if !derived.is_empty() && derived != declared {
        format!("{derived} (lineage)")
    } else {
        declared
    };
    if c["declassify"].as_array().is_some_and(|d| !d.is_empty()) {
        cell.push_str(" declassified");
    }
    cell.trim().to_string()
}

/// Progress on a terminal; nothing otherwise.
pub struct Progress {
    bar: Option<ProgressBar>,
    count: Mutex<usize>,
}

impl Progress {
    pub fn new() -> Self {
        let bar = std::io::stderr().is_terminal().then(|| {
            let b = ProgressBar::new_spinner();
            b.set_style(
                ProgressStyle::with_template("{spinner} {msg} [{elapsed}]")
                    .unwrap_or_else(|_| ProgressStyle::default_spinner()),
            );
            b.enable_steady_tick(std::time::Duration::from_millis(120));
            b
        });
        Progress {
            bar,
            count: Mutex::new(0),
        }
    }

    pub fn done(&self) {
        if let Some(b) = &self.bar {
            b.finish_and_clear();
        }
    }
}

impl Observer for Progress {
    fn started(&self, product: &str) {
        if let Some(b) = &self.bar {
            let n = self.count.lock().map(|mut c| {
                *c += 1;
                *c
            });
            b.set_message(format!("building {product} (#{})", n.unwrap_or(0)));
        }
    }

    fn waiting(&self, product: &str, run_id: &str, holder: &str) {
        eprintln!("waiting: {product} is being run by {holder} (run {run_id})");
    }

    fn rows(&self, product: &str, rows: u64) {
        if let Some(b) = &self.bar {
            b.set_message(format!("checking {product}: {rows} rows staged"));
        }
    }
}

/// Prints a contract plan: each product, its graded changes, and whom the
/// breaking ones break. Coloured on a terminal.
pub fn print_plan(plans: &[mesh_service::plan::ProductPlan]) {
    use mesh_contract::Grade;
    use mesh_service::plan::PlanState;
    use owo_colors::OwoColorize;
    let colour = std::io::stdout().is_terminal() && std::env::var_os("NO_COLOR").is_none();
    let paint = |text: &str, grade: Grade| -> String {
        if !colour {
            return text.to_string();
        }
        match grade {
            Grade::Breaking => text.red().bold().to_string(),
            Grade::Compatible => text.green().to_string(),
            Grade::Cosmetic => text.dimmed().to_string(),
        }
    };
    let (mut new, mut changed, mut breaking, mut unchanged) = (0, 0, 0, 0);
    for p in plans {
        let versions = match &p.deployed_version {
            Some(old) if *old != p.version => format!("{old} → {}", p.version),
            _ => p.version.clone(),
        };
        let state = match p.state {
            PlanState::New => {
                new += 1;
                "new"
            }
            PlanState::Unchanged => {
                unchanged += 1;
                "unchanged"
            }
            PlanState::Changed => {
                changed += 1;
                "changed"
            }
        };
        if p.grade == Some(Grade::Breaking) {
            breaking += 1;
        }
        let grade = p
            .grade
            .map(|g| format!(" ({})", paint(g.as_str(), g)))
            .unwrap_or_default();
        println!("{}  {versions}  {state}{grade}", p.product);
        for c in &p.changes {
            let g = c.change.grade;
            println!("  {:<11} {}", paint(g.as_str(), g), c.change.message);
            for i in &c.breaks {
                let what = i
                    .column
                    .as_ref()
                    .map(|col| format!(" (reads `{col}` as input `{}`)", i.input))
                    .unwrap_or_else(|| format!(" (reads it as input `{}`)", i.input));
                println!(
                    "              breaks {}:{}{what}",
                    i.consumer, i.consumer_output
                );
            }
            if !c.reaches.is_empty() {
                println!("              reaches {}", c.reaches.join(", "));
            }
            for r in &c.requires {
                println!(
                    "              requires {}:{} to declare `{}` as `{}` (it declares `{}`)",
                    r.consumer, r.consumer_output, r.column, r.produced, r.declared
                );
            }
            if c.unused {
                println!("              read by no consumer");
            }
            if let Some(hint) = &c.change.hint {
                println!("              hint: {hint}");
            }
        }
        if let Some(line) = &p.keeps_alive {
            println!(
                "  keeps {} alive as {line} for consumers pinned to it",
                p.deployed_version
                    .as_deref()
                    .unwrap_or("the deployed version")
            );
        }
        if let Some(e) = &p.version_error {
            println!("  {} {e}", paint("refused:", Grade::Breaking));
        }
    }
    println!(
        "{} products: {new} new, {changed} changed ({breaking} breaking), {unchanged} unchanged",
        plans.len()
    );
}
