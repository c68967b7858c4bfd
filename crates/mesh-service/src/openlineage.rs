//! OpenLineage run events (spec 2-0-2, docs/lineage.md): START when a
//! run begins, COMPLETE or FAIL when it ends, with the run's input and
//! output datasets, the schema, column-lineage and data-quality
//! assertions facets. Every event is appended to
//! `<state>/openlineage/events.jsonl`; with `OPENLINEAGE_URL` set it is
//! also POSTed to `<url>/api/v1/lineage` (`OPENLINEAGE_ENDPOINT`
//! overrides the path, `OPENLINEAGE_API_KEY` is sent as a bearer token)
//! by one task per process, in order, with bounded retries that never
//! block or fail a run.

use std::collections::HashMap;
use std::io::Write;
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use mesh_catalog::{RunRecord, RunStatus};
use mesh_pipeline::Observer;
use mesh_spec::{InputKind, ProductDescriptor};
use serde_json::{Value, json};

use crate::lineage::{ColumnId, Dataset, LineageGraph};

const SCHEMA_URL: &str = "https://openlineage.io/spec/2-0-2/OpenLineage.json#/$defs/RunEvent";
const FACETS: &str = "https://openlineage.io/spec/facets";
const PRODUCER: &str = concat!(
    "https://github.com/meshwork/meshwork/tree/v",
    env!("CARGO_PKG_VERSION")
);
/// Attempts per event before it is given up (it stays in the local file).
const ATTEMPTS: u32 = 5;

/// Where a mesh's run events go.
#[derive(Debug)]
pub struct Emitter {
    /// The mesh's namespace for its outputs: `mesh://<name>`.
    namespace: String,
    file: PathBuf,
    endpoint: Option<(String, Option<String>)>,
    queue: Mutex<Option<tokio::sync::mpsc::UnboundedSender<Value>>>,
    pending: Arc<AtomicUsize>,
    written: Mutex<()>,
}

impl Emitter {
    /// The emitter of a mesh named `name` with state in `state_dir`,
    /// sending where the environment says.
    pub fn new(name: &str, state_dir: &std::path::Path) -> Self {
        let endpoint = std::env::var("OPENLINEAGE_URL")
            .ok()
            .filter(|u| !u.trim().is_empty())
            .map(|url| {
                let path = std::env::var("OPENLINEAGE_ENDPOINT")
                    .unwrap_or_else(|_| "api/v1/lineage".to_string());
                let key = std::env::var("OPENLINEAGE_API_KEY").ok();
                (
                    format!(
                        "{}/{}",
                        url.trim_end_matches('/'),
                        path.trim_start_matches('/')
                    ),
                    key,
                )
            });
        Emitter {
            namespace: format!("mesh://{name}"),
            file: state_dir.join("openlineage").join("events.jsonl"),
            endpoint,
            queue: Mutex::new(None),
            pending: Arc::new(AtomicUsize::new(0)),
            written: Mutex::new(()),
        }
    }

    /// Stores `event` and queues it for the endpoint. Never fails: a
    /// store or send that does not work is logged.
    fn emit(&self, event: Value) {
        let line = format!("{event}\n");
        if let Ok(_guard) = self.written.lock() {
            let stored = std::fs::create_dir_all(self.file.parent().unwrap_or(&self.file))
                .and_then(|_| {
                    std::fs::OpenOptions::new()
                        .create(true)
                        .append(true)
                        .open(&self.file)
                })
                .and_then(|mut f| f.write_all(line.as_bytes()));
            if let Err(e) = stored {
                tracing::warn!(
                    "OpenLineage event not stored in {}: {e}",
                    self.file.display()
                );
            }
        }
        let Some((url, key)) = &self.endpoint else {
            return;
        };
        let Ok(mut queue) = self.queue.lock() else {
            return;
        };
        if queue.is_none() {
            let Ok(runtime) = tokio::runtime::Handle::try_current() else {
                return;
            };
            let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
            runtime.spawn(deliver(rx, url.clone(), key.clone(), self.pending.clone()));
            *queue = Some(tx);
        }
        self.pending.fetch_add(1, Ordering::SeqCst);
        if queue.as_ref().is_some_and(|q| q.send(event).is_err()) {
            self.pending.fetch_sub(1, Ordering::SeqCst);
        }
    }

    /// Waits until every queued event was delivered or given up, at most
    /// `limit` (a command that ran products calls it before it exits).
    pub async fn flush(&self, limit: Duration) {
        let deadline = tokio::time::Instant::now() + limit;
        while self.pending.load(Ordering::SeqCst) > 0 && tokio::time::Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

/// Sends events one at a time, in order, each retried with backoff.
async fn deliver(
    mut rx: tokio::sync::mpsc::UnboundedReceiver<Value>,
    url: String,
    key: Option<String>,
    pending: Arc<AtomicUsize>,
) {
    let client = match reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
    {
        Ok(c) => c,
        Err(e) => {
            tracing::warn!("OpenLineage events cannot be sent: {e}");
            return;
        }
    };
    while let Some(event) = rx.recv().await {
        let mut delay = Duration::from_millis(200);
        for attempt in 1..=ATTEMPTS {
            let mut request = client
                .post(&url)
                .header(reqwest::header::CONTENT_TYPE, "application/json")
                .body(event.to_string());
            if let Some(k) = &key {
                request = request.bearer_auth(k);
            }
            match request.send().await {
                Ok(r) if r.status().is_success() => break,
                outcome => {
                    let why = match outcome {
                        Ok(r) => format!("HTTP {}", r.status()),
                        Err(e) => e.to_string(),
                    };
                    if attempt == ATTEMPTS {
                        tracing::warn!(
                            "OpenLineage event not delivered to {url} after {ATTEMPTS} attempts ({why}); it is kept in the local events file"
                        );
                    } else {
                        tokio::time::sleep(delay).await;
                        delay *= 2;
                    }
                }
            }
        }
        pending.fetch_sub(1, Ordering::SeqCst);
    }
}

/// What the events of one product's runs are built from.
pub(crate) struct RunContext {
    pub descriptor: Arc<ProductDescriptor>,
    pub graph: Arc<LineageGraph>,
}

/// An observer that emits each run's events, then tells `inner`.
pub(crate) struct LineageObserver<'a> {
    pub inner: &'a dyn Observer,
    pub emitter: &'a Emitter,
    pub contexts: HashMap<String, RunContext>,
}

impl Observer for LineageObserver<'_> {
    fn started(&self, product: &str) {
        self.inner.started(product);
    }
    fn rows(&self, product: &str, rows: u64) {
        self.inner.rows(product, rows);
    }
    fn waiting(&self, product: &str, run_id: &str, holder: &str) {
        self.inner.waiting(product, run_id, holder);
    }
    fn run_started(&self, run: &RunRecord) {
        if let Some(cx) = self.contexts.get(&run.product.to_string()) {
            self.emitter
                .emit(run_event(&self.emitter.namespace, cx, run, "START"));
        }
        self.inner.run_started(run);
    }
    fn finished(&self, run: &RunRecord) {
        if let Some(cx) = self.contexts.get(&run.product.to_string()) {
            let kind = match run.status {
                RunStatus::Failed => "FAIL",
                RunStatus::Skipped => {
                    // Never started: its START and its end together.
                    self.emitter
                        .emit(run_event(&self.emitter.namespace, cx, run, "START"));
                    "ABORT"
                }
                _ => "COMPLETE",
            };
            self.emitter
                .emit(run_event(&self.emitter.namespace, cx, run, kind));
        }
        self.inner.finished(run);
    }
}

fn facet(schema: &str) -> Value {
    json!({"_producer": PRODUCER, "_schemaURL": format!("{FACETS}/{schema}")})
}

/// The OpenLineage name of a dataset: outputs by their SQL name in the
/// mesh's namespace; a source's files as a local path (`file`).
fn dataset_name(namespace: &str, d: &Dataset, p: &ProductDescriptor) -> (String, String) {
    match d {
        Dataset::Output { domain, output } => (namespace.to_string(), format!("{domain}.{output}")),
        Dataset::Source { input, .. } => {
            let path = p
                .inputs
                .iter()
                .find(|i| i.name.as_str() == input)
                .and_then(|i| match &i.kind {
                    InputKind::Source(s) => Some(p.dir.join(&s.path.value).display().to_string()),
                    InputKind::Product { .. } => None,
                })
                .unwrap_or_else(|| d.to_string());
            ("file".to_string(), path)
        }
    }
}

/// One RunEvent of `run`.
pub(crate) fn run_event(namespace: &str, cx: &RunContext, run: &RunRecord, kind: &str) -> Value {
    let p = cx.descriptor.as_ref();
    let product = run.product.to_string();
    let time = match kind {
        "START" => run.started_at,
        _ => run.finished_at.unwrap_or(run.started_at),
    };
    let inputs: Vec<Value> = cx
        .graph
        .inputs_of(&product)
        .map(|d| {
            let (ns, name) = dataset_name(namespace, d, p);
            json!({"namespace": ns, "name": name})
        })
        .collect();
    let outputs: Vec<Value> = p
        .outputs
        .iter()
        .map(|o| {
            let dataset = Dataset::output(p.domain.as_str(), o.name.as_str());
            let (ns, name) = dataset_name(namespace, &dataset, p);
            let mut schema = facet("1-2-0/SchemaDatasetFacet.json#/$defs/SchemaDatasetFacet");
            schema["fields"] = o
                .columns
                .iter()
                .map(|c| {
                    let mut f = json!({"name": c.name.as_str(), "type": c.ty.to_string()});
                    if let Some(d) = &c.description {
                        f["description"] = json!(d);
                    }
                    f
                })
                .collect();
            let mut fields = serde_json::Map::new();
            for c in &o.columns {
                let id = ColumnId {
                    dataset: dataset.clone(),
                    column: c.name.to_string(),
                };
                let input_fields: Vec<Value> = cx
                    .graph
                    .upstream_of(&id)
                    .iter()
                    .map(|l| {
                        let (ns, name) = dataset_name(namespace, &l.from.dataset, p);
                        let field = match &l.field {
                            Some(f) => format!("{}.{f}", l.from.column),
                            None => l.from.column.clone(),
                        };
                        json!({
                            "namespace": ns,
                            "name": name,
                            "field": field,
                            "transformations": [{
                                "type": l.edge_type.as_str(),
                                "subtype": l.subtype.as_str(),
                                "masking": l.masking,
                            }],
                        })
                    })
                    .collect();
                fields.insert(c.name.to_string(), json!({"inputFields": input_fields}));
            }
            let mut lineage = facet(
                "1-2-0/ColumnLineageDatasetFacet.json#/$defs/ColumnLineageDatasetFacet",
            );
            lineage["fields"] = Value::Object(fields);
            let mut out = json!({
                "namespace": ns,
                "name": name,
                "facets": {"schema": schema, "columnLineage": lineage},
            });
            if kind != "START" {
                let mut assertions = facet(
                    "1-1-0/DataQualityAssertionsDatasetFacet.json#/$defs/DataQualityAssertionsDatasetFacet",
                );
                assertions["assertions"] = run
                    .checks
                    .iter()
                    .filter(|c| c.output == o.name.as_str())
                    .map(|c| {
                        json!({
                            "assertion": c.kind,
                            "name": c.name,
                            "success": c.passed,
                            "severity": c.severity,
                            "actual": c.observed,
                        })
                    })
                    .collect();
                out["outputFacets"] = json!({"dataQualityAssertions": assertions});
            }
            out
        })
        .collect();
    let mut run_facets = serde_json::Map::new();
    if kind == "FAIL" {
        let mut error = facet("1-0-1/ErrorMessageRunFacet.json#/$defs/ErrorMessageRunFacet");
        // A run's error may quote rows; the lineage backend is told where
        // to read it, as the mesh's own access rules allow.
        error["message"] = json!(format!(
            "run {} of {product} failed; `mesh runs show {}` has the error",
            run.id, run.id
        ));
        error["programmingLanguage"] = json!("SQL");
        run_facets.insert("errorMessage".into(), error);
    }
    json!({
        "eventType": kind,
        "eventTime": time.to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
        "producer": PRODUCER,
        "schemaURL": SCHEMA_URL,
        "run": {"runId": run.id.0, "facets": Value::Object(run_facets)},
        "job": {"namespace": namespace, "name": product},
        "inputs": inputs,
        "outputs": outputs,
    })
}
