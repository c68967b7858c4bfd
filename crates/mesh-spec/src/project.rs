//! A mesh project on disk: `mesh.yaml` plus `<domain>/<product>/product.yaml`.

use std::path::{Path, PathBuf};

use crate::decode::Ctx;
use crate::descriptor::ProductDescriptor;
use crate::diagnostic::{Diagnostic, SourceFile};
use crate::product::{API_VERSION, parse_product};
use crate::yaml;

/// The project file's name.
pub const PROJECT_FILE: &str = "mesh.yaml";
/// The descriptor file's name inside a product folder.
pub const PRODUCT_FILE: &str = "product.yaml";
/// The default state directory, relative to the project.
pub const DEFAULT_STATE_DIR: &str = ".mesh";

/// Settings from `mesh.yaml`.
#[derive(Debug, Clone)]
pub struct ProjectConfig {
    pub name: String,
    /// Absolute state directory.
    pub state_dir: PathBuf,
    /// Table storage URL, such as `file:///…/.mesh/tables` or `s3://bucket/prefix`.
    pub storage: Option<String>,
    /// Catalog URL, such as `sqlite:///…/.mesh/catalog.db`.
    pub catalog: Option<String>,
    /// How the scheduler runs (`scheduler:` in mesh.yaml).
    pub scheduler: SchedulerConfig,
    /// Where notifications go (`webhooks:` in mesh.yaml).
    pub webhooks: Vec<Webhook>,
    /// Which old data versions stay readable, unless a product declares
    /// its own (`retention:` in mesh.yaml).
    pub retention: crate::descriptor::Retention,
    /// When runs compact their releases (`compaction:` in mesh.yaml).
    pub compaction: CompactionConfig,
    /// How to reach an S3-compatible storage root (`s3:` in mesh.yaml).
    pub s3: S3Config,
}

/// Where and how to reach the S3 server of an `s3://` storage root
/// (docs/deployment.md). Credentials are never here: they come from the
/// standard AWS environment.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct S3Config {
    /// The server, for one other than Amazon S3 (`http(s)://host:port`).
    pub endpoint: Option<String>,
    pub region: Option<String>,
    /// Path-style requests (`endpoint/bucket/key`).
    pub path_style: bool,
}

/// When a run compacts the release it published (docs/storage.md).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CompactionConfig {
    /// Compact after a run at all.
    pub auto: bool,
    /// How many small files (under half the target file size) a release
    /// must have before a run compacts it.
    pub min_small_files: usize,
}

impl Default for CompactionConfig {
    fn default() -> Self {
        CompactionConfig {
            auto: true,
            min_small_files: 50,
        }
    }
}

impl ProjectConfig {
    /// The URL (or path) naming `backend`, if set.
    pub fn backend_mut(&mut self, backend: crate::backends::Backend) -> &mut Option<String> {
        match backend {
            crate::backends::Backend::Catalog => &mut self.catalog,
            crate::backends::Backend::Storage => &mut self.storage,
        }
    }
}

/// A receiver of notifications: JSON POSTs signed with a shared secret.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Webhook {
    pub url: String,
    /// The environment variable holding the shared secret (secrets never
    /// live in mesh.yaml).
    pub secret_env: String,
    /// Only these domains' products (all when empty).
    pub domains: Vec<String>,
    /// Only these products, `<domain>/<name>` (all when empty).
    pub products: Vec<String>,
    /// Only these events (all when empty).
    pub events: Vec<String>,
}

/// Every event a webhook may receive.
pub const WEBHOOK_EVENTS: [&str; 3] = ["slo_breach", "recovery", "run_failed"];

/// The scheduler's settings; every field has a default.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SchedulerConfig {
    /// How often schedules, upstream changes and leases are looked at.
    pub tick: std::time::Duration,
    /// How many runs one scheduler process runs at once.
    pub concurrency: usize,
    /// Retries of a failed scheduled run, unless its product says otherwise.
    pub retries: u64,
    /// The wait before the first retry; doubled for each further one.
    pub backoff: std::time::Duration,
    /// How long an upstream must have been quiet before its
    /// `on_upstream_change` consumers run, so a burst of releases
    /// coalesces into one run.
    pub settle: std::time::Duration,
    /// How often health (freshness, quality) is evaluated and changes are
    /// announced.
    pub health: std::time::Duration,
    /// How often storage is maintained (compaction, then retention's
    /// vacuum), once across every scheduler on the catalog.
    pub maintenance: std::time::Duration,
}

impl Default for SchedulerConfig {
    fn default() -> Self {
        SchedulerConfig {
            tick: std::time::Duration::from_secs(1),
            concurrency: 4,
            retries: 2,
            backoff: std::time::Duration::from_secs(30),
            settle: std::time::Duration::from_secs(2),
            health: std::time::Duration::from_secs(5),
            maintenance: std::time::Duration::from_secs(3600),
        }
    }
}

/// A loaded project: its settings and every descriptor that parsed.
#[derive(Debug, Clone)]
pub struct Project {
    pub root: PathBuf,
    pub config: ProjectConfig,
    pub products: Vec<ProductDescriptor>,
}

/// Why a project could not be opened at all.
#[derive(Debug, thiserror::Error)]
pub enum ProjectError {
    #[error(
        "no {PROJECT_FILE} in {dir} or any parent directory; run `mesh init DIR` to create a project, or pass --project DIR"
    )]
    NotFound { dir: PathBuf },
    #[error("cannot read {path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

/// Finds the project root: `start` or the closest parent holding `mesh.yaml`.
pub fn find_root(start: &Path) -> Result<PathBuf, ProjectError> {
    let start = std::path::absolute(start).map_err(|source| ProjectError::Io {
        path: start.to_path_buf(),
        source,
    })?;
    let mut dir = Some(start.as_path());
    while let Some(d) = dir {
        if d.join(PROJECT_FILE).is_file() {
            return Ok(d.to_path_buf());
        }
        dir = d.parent();
    }
    Err(ProjectError::NotFound { dir: start })
}

fn read(path: &Path) -> Result<String, ProjectError> {
    std::fs::read_to_string(path).map_err(|source| ProjectError::Io {
        path: path.to_path_buf(),
        source,
    })
}

/// Loads `mesh.yaml` and every descriptor under `root`.
///
/// Problems in files become diagnostics; only unreadable directories are errors.
pub fn load(root: &Path) -> Result<(Project, Vec<Diagnostic>), ProjectError> {
    let mut diagnostics = Vec::new();
    let config_path = root.join(PROJECT_FILE);
    let config = load_config(root, &config_path, &read(&config_path)?, &mut diagnostics);
    let mut products = Vec::new();
    for path in descriptor_paths(root, &config.state_dir)? {
        let text = read(&path)?;
        let (product, diags) = parse_product(&path, &text);
        diagnostics.extend(diags);
        if let Some(p) = product {
            products.push(p);
        }
    }
    Ok((
        Project {
            root: root.to_path_buf(),
            config,
            products,
        },
        diagnostics,
    ))
}

/// Loads only `mesh.yaml`: what a command needs that does not read descriptors.
pub fn load_config_only(root: &Path) -> Result<(ProjectConfig, Vec<Diagnostic>), ProjectError> {
    let mut diagnostics = Vec::new();
    let path = root.join(PROJECT_FILE);
    let config = load_config(root, &path, &read(&path)?, &mut diagnostics);
    Ok((config, diagnostics))
}

/// `<root>/<domain>/<product>/product.yaml`, sorted, skipping hidden folders and the state dir.
pub fn descriptor_paths(root: &Path, state_dir: &Path) -> Result<Vec<PathBuf>, ProjectError> {
    let list = |dir: &Path| -> Result<Vec<PathBuf>, ProjectError> {
        let entries = std::fs::read_dir(dir).map_err(|source| ProjectError::Io {
            path: dir.to_path_buf(),
            source,
        })?;
        let mut dirs: Vec<PathBuf> = entries
            .filter_map(Result::ok)
            .map(|e| e.path())
            .filter(|p| p.is_dir() && p != state_dir)
            .filter(|p| {
                p.file_name()
                    .and_then(|n| n.to_str())
                    .is_some_and(|n| !n.starts_with('.') && !n.starts_with('_'))
            })
            .collect();
        dirs.sort();
        Ok(dirs)
    };
    let mut found = Vec::new();
    for domain in list(root)? {
        for product in list(&domain)? {
            let file = product.join(PRODUCT_FILE);
            if file.is_file() {
                found.push(file);
            }
        }
    }
    Ok(found)
}

fn load_config(root: &Path, path: &Path, text: &str, out: &mut Vec<Diagnostic>) -> ProjectConfig {
    let mut config = ProjectConfig {
        name: root
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or("mesh")
            .to_string(),
        state_dir: root.join(DEFAULT_STATE_DIR),
        storage: None,
        catalog: None,
        scheduler: SchedulerConfig::default(),
        webhooks: Vec::new(),
        retention: crate::descriptor::Retention::DEFAULT,
        compaction: CompactionConfig::default(),
        s3: S3Config::default(),
    };
    let file = SourceFile::new(path, text);
    let mut ctx = Ctx::new(file);
    match yaml::parse(text) {
        Err(e) => {
            ctx.error(
                "yaml-syntax",
                e.span,
                format!("invalid YAML: {}", e.message),
            );
        }
        Ok(node) => {
            if let Some(f) = ctx.fields(
                &node,
                "mesh.yaml",
                &[
                    "apiVersion",
                    "kind",
                    "name",
                    "description",
                    "state_dir",
                    "storage",
                    "catalog",
                    "scheduler",
                    "webhooks",
                    "retention",
                    "compaction",
                    "s3",
                ],
            ) {
                if let Some(v) = f
                    .get("apiVersion")
                    .and_then(|n| ctx.string(n, "apiVersion"))
                    && v.value != API_VERSION
                {
                    ctx.error(
                        "api-version",
                        v.span,
                        format!("unsupported apiVersion `{}`", v.value),
                    )
                    .help = Some(format!("this build reads `apiVersion: {API_VERSION}`"));
                }
                if let Some(v) = f.get("kind").and_then(|n| ctx.string(n, "kind"))
                    && v.value != "Mesh"
                {
                    ctx.error(
                        "kind",
                        v.span,
                        format!("mesh.yaml has `kind: {}`; expected `Mesh`", v.value),
                    );
                }
                if let Some(v) = f.get("name").and_then(|n| ctx.string(n, "name")) {
                    config.name = v.value;
                }
                if let Some(v) = f.get("state_dir").and_then(|n| ctx.string(n, "state_dir")) {
                    config.state_dir = root.join(v.value);
                }
                for backend in crate::backends::Backend::ALL {
                    let key = backend.key();
                    let Some(v) = f.get(key).and_then(|n| ctx.string(n, key)) else {
                        continue;
                    };
                    match backend.written_problem(&v.value) {
                        Some(message) => {
                            ctx.error("backend-url", v.span, message);
                        }
                        None => *config.backend_mut(backend) = Some(v.value),
                    }
                }
                if let Some(n) = f.get("scheduler") {
                    scheduler(&mut ctx, n, &mut config.scheduler);
                }
                if let Some(r) = f
                    .get("retention")
                    .and_then(|n| crate::product::retention(&mut ctx, n, "retention"))
                {
                    config.retention = r.value;
                }
                if let Some(n) = f.get("compaction") {
                    compaction(&mut ctx, n, &mut config.compaction);
                }
                if let Some(n) = f.get("s3") {
                    s3(&mut ctx, n, &mut config.s3);
                }
                if let Some(n) = f.get("webhooks") {
                    for item in ctx.list(n, "webhooks") {
                        if let Some(w) = webhook(&mut ctx, item) {
                            config.webhooks.push(w);
                        }
                    }
                }
            }
        }
    }
    out.extend(ctx.diagnostics);
    config
}

fn scheduler(ctx: &mut Ctx, node: &crate::yaml::Node, into: &mut SchedulerConfig) {
    let Some(f) = ctx.fields(
        node,
        "scheduler",
        &[
            "tick",
            "concurrency",
            "retries",
            "backoff",
            "settle",
            "health",
            "maintenance",
        ],
    ) else {
        return;
    };
    let duration = |ctx: &mut Ctx, key: &str, into: &mut std::time::Duration| {
        let Some(n) = f.get(key) else { return };
        let Some(text) = ctx.scalar_text(n, &format!("scheduler.{key}")) else {
            return;
        };
        match crate::descriptor::parse_duration(&text.value) {
            Some(d) if !d.is_zero() => *into = d,
            _ => {
                ctx.error(
                    "invalid-duration",
                    text.span,
                    format!("`{}` is not a duration", text.value),
                )
                .help = Some(
                    "write a number and a unit: ms, s, m, h or d (for example `500ms`, `30s`)"
                        .into(),
                );
            }
        }
    };
    duration(ctx, "tick", &mut into.tick);
    duration(ctx, "backoff", &mut into.backoff);
    duration(ctx, "settle", &mut into.settle);
    duration(ctx, "health", &mut into.health);
    duration(ctx, "maintenance", &mut into.maintenance);
    if let Some(n) = f
        .get("concurrency")
        .and_then(|n| ctx.uint(n, "scheduler.concurrency"))
    {
        into.concurrency = usize::try_from(n).unwrap_or(usize::MAX).max(1);
    }
    if let Some(n) = f
        .get("retries")
        .and_then(|n| ctx.uint(n, "scheduler.retries"))
    {
        into.retries = n;
    }
}

fn compaction(ctx: &mut Ctx, node: &crate::yaml::Node, into: &mut CompactionConfig) {
    let Some(f) = ctx.fields(node, "compaction", &["auto", "min_small_files"]) else {
        return;
    };
    if let Some(auto) = f.get("auto").and_then(|n| ctx.bool(n, "compaction.auto")) {
        into.auto = auto;
    }
    if let Some(n) = f.get("min_small_files") {
        match ctx.uint(n, "compaction.min_small_files") {
            Some(k) if k >= 2 => into.min_small_files = usize::try_from(k).unwrap_or(usize::MAX),
            Some(k) => {
                ctx.error(
                    "invalid-compaction",
                    n.span,
                    format!("`min_small_files: {k}` would rewrite a single file into itself"),
                )
                .help = Some(
                    "write 2 or more, or `auto: false` to compact only with `mesh optimize`".into(),
                );
            }
            None => {}
        }
    }
}

fn s3(ctx: &mut Ctx, node: &crate::yaml::Node, into: &mut S3Config) {
    let Some(f) = ctx.fields(node, "s3", &["endpoint", "region", "path_style"]) else {
        return;
    };
    if let Some(v) = f.get("endpoint").and_then(|n| ctx.string(n, "s3.endpoint")) {
        let rest = v
            .value
            .strip_prefix("http://")
            .or_else(|| v.value.strip_prefix("https://"));
        match rest {
            Some(host) if !host.is_empty() && !host.contains('@') => {
                into.endpoint = Some(v.value);
            }
            _ => {
                ctx.error(
                    "invalid-s3",
                    v.span,
                    format!(
                        "`{}` is not an http(s)://HOST:PORT endpoint without credentials",
                        v.value
                    ),
                );
            }
        }
    }
    if let Some(v) = f.get("region").and_then(|n| ctx.string(n, "s3.region")) {
        into.region = Some(v.value);
    }
    if let Some(b) = f
        .get("path_style")
        .and_then(|n| ctx.bool(n, "s3.path_style"))
    {
        into.path_style = b;
    }
}

fn webhook(ctx: &mut Ctx, node: &crate::yaml::Node) -> Option<Webhook> {
    let f = ctx.fields(
        node,
        "a webhook",
        &["url", "secret_env", "domains", "products", "events"],
    )?;
    let url = ctx
        .require(&f, "url", "a webhook")
        .and_then(|n| ctx.string(n, "webhooks.url"))?;
    if !(url.value.starts_with("http://") || url.value.starts_with("https://")) {
        ctx.error(
            "invalid-webhook",
            url.span,
            format!("`{}` is not an http:// or https:// URL", url.value),
        );
    }
    let secret_env = ctx
        .require(&f, "secret_env", "a webhook")
        .and_then(|n| ctx.string(n, "webhooks.secret_env"))?;
    let list = |ctx: &mut Ctx, key: &str| -> Vec<crate::Spanned<String>> {
        f.get(key)
            .map(|n| ctx.strings(n, &format!("webhooks.{key}")))
            .unwrap_or_default()
    };
    let events = list(ctx, "events");
    for e in &events {
        if !WEBHOOK_EVENTS.contains(&e.value.as_str()) {
            ctx.error(
                "invalid-webhook",
                e.span,
                format!("unknown event `{}`", e.value),
            )
            .help = Some(format!("events are {}", WEBHOOK_EVENTS.join(", ")));
        }
    }
    let values = |v: Vec<crate::Spanned<String>>| v.into_iter().map(|s| s.value).collect();
    Some(Webhook {
        url: url.value,
        secret_env: secret_env.value,
        domains: values(list(ctx, "domains")),
        products: values(list(ctx, "products")),
        events: values(events),
    })
}
