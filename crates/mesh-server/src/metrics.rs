//! Prometheus metrics for every protocol (`GET /metrics`, OpenMetrics
//! text): queries by protocol and outcome, query latency, open sessions,
//! policy denials, HTTP requests by route, and runs by status (read from
//! the catalog when scraped).

use std::sync::Arc;
use std::time::Instant;

use mesh_service::{QueryError, ServiceError};
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct QueryLabels {
    protocol: &'static str,
    status: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ProtocolLabel {
    protocol: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct HttpLabels {
    route: String,
    status: u16,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RunLabels {
    status: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ProductLabels {
    domain: String,
    product: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct HealthLabels {
    domain: String,
    product: String,
    health: String,
}

type Histograms<L> = Family<L, Histogram, fn() -> Histogram>;

fn latency() -> Histogram {
    // 0.5 ms to about 33 s.
    Histogram::new(exponential_buckets(0.0005, 2.0, 17))
}

/// The server's metrics, shared by every protocol.
pub struct Metrics {
    registry: Registry,
    queries: Family<QueryLabels, Counter>,
    query_seconds: Histograms<ProtocolLabel>,
    sessions: Family<ProtocolLabel, Gauge>,
    denials: Family<ProtocolLabel, Counter>,
    http: Family<HttpLabels, Counter>,
    http_seconds: Histograms<ProtocolLabel>,
    runs: Family<RunLabels, Gauge>,
    release_age: Family<ProductLabels, Gauge>,
    health: Family<HealthLabels, Gauge>,
    /// One render at a time: product gauges are filled per caller.
    rendering: std::sync::Mutex<()>,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Metrics").finish()
    }
}

impl Default for Metrics {
    fn default() -> Self {
        let mut registry = Registry::with_prefix("mesh");
        let queries = Family::<QueryLabels, Counter>::default();
        registry.register(
            "queries",
            "Statements run, by protocol and outcome (ok, error, denied, cancelled)",
            queries.clone(),
        );
        let query_seconds: Histograms<ProtocolLabel> = Family::new_with_constructor(latency);
        registry.register(
            "query_duration_seconds",
            "Time from receiving a statement to its last row, by protocol",
            query_seconds.clone(),
        );
        let sessions = Family::<ProtocolLabel, Gauge>::default();
        registry.register(
            "active_sessions",
            "Open authenticated connections (postgres) and statements in flight (rest, flight)",
            sessions.clone(),
        );
        let denials = Family::<ProtocolLabel, Counter>::default();
        registry.register(
            "policy_denials",
            "Reads the access policy refused, by protocol",
            denials.clone(),
        );
        let http = Family::<HttpLabels, Counter>::default();
        registry.register(
            "http_requests",
            "HTTP requests by route template and status",
            http.clone(),
        );
        let http_seconds: Histograms<ProtocolLabel> = Family::new_with_constructor(latency);
        registry.register(
            "http_request_duration_seconds",
            "HTTP request latency",
            http_seconds.clone(),
        );
        let runs = Family::<RunLabels, Gauge>::default();
        registry.register(
            "runs",
            "Pipeline runs recorded in the catalog, by status",
            runs.clone(),
        );
        let release_age = Family::<ProductLabels, Gauge>::default();
        registry.register(
            "product_release_age_seconds",
            "Seconds since each product's data was last published or confirmed current (products the caller may see)",
            release_age.clone(),
        );
        let health = Family::<HealthLabels, Gauge>::default();
        registry.register(
            "product_health",
            "1 for each product's current health (healthy, degraded, failing), 0 for the others",
            health.clone(),
        );
        Metrics {
            registry,
            release_age,
            health,
            rendering: std::sync::Mutex::new(()),
            queries,
            query_seconds,
            sessions,
            denials,
            http,
            http_seconds,
            runs,
        }
    }
}

impl Metrics {
    /// Times one statement on `protocol`; the timer records its outcome.
    pub fn query(self: &Arc<Self>, protocol: &'static str) -> QueryTimer {
        self.sessions_of(protocol, 1, protocol != "postgres");
        QueryTimer {
            metrics: self.clone(),
            protocol,
            started: Instant::now(),
            done: false,
            span: tracing::Span::current(),
        }
    }

    fn sessions_of(&self, protocol: &'static str, delta: i64, counted: bool) {
        if counted {
            self.sessions
                .get_or_create(&ProtocolLabel { protocol })
                .inc_by(delta);
        }
    }

    /// A Postgres connection opened (`+1`) or closed (`-1`).
    pub fn postgres_session(&self, delta: i64) {
        self.sessions_of("postgres", delta, true);
    }

    /// One HTTP request answered.
    pub fn http_request(&self, route: &str, status: u16, started: Instant) {
        self.http
            .get_or_create(&HttpLabels {
                route: route.to_string(),
                status,
            })
            .inc();
        self.http_seconds
            .get_or_create(&ProtocolLabel { protocol: "http" })
            .observe(started.elapsed().as_secs_f64());
    }

    /// The metrics as OpenMetrics text; `runs` are the catalog's run
    /// counts by status, and `products` the health of the products the
    /// caller may see, read now.
    pub fn render(
        &self,
        runs: &[(String, u64)],
        products: &[mesh_service::health::ProductHealth],
    ) -> String {
        let _one = self.rendering.lock().unwrap_or_else(|e| e.into_inner());
        self.release_age.clear();
        self.health.clear();
        for p in products {
            if let Some(age) = p.age_seconds {
                self.release_age
                    .get_or_create(&ProductLabels {
                        domain: p.domain.clone(),
                        product: p.product.clone(),
                    })
                    .set(age);
            }
            for h in ["healthy", "degraded", "failing"] {
                self.health
                    .get_or_create(&HealthLabels {
                        domain: p.domain.clone(),
                        product: p.product.clone(),
                        health: h.to_string(),
                    })
                    .set(i64::from(p.health.as_str() == h));
            }
        }
        for (status, n) in runs {
            self.runs
                .get_or_create(&RunLabels {
                    status: status.clone(),
                })
                .set(i64::try_from(*n).unwrap_or(i64::MAX));
        }
        let mut out = String::new();
        if prometheus_client::encoding::text::encode(&mut out, &self.registry).is_err() {
            out.clear();
        }
        out
    }
}

/// Records a statement's outcome and latency once: explicitly with
/// [`QueryTimer::finish`], or as `cancelled` when dropped unfinished
/// (the client went away, or the statement was cancelled).
pub struct QueryTimer {
    metrics: Arc<Metrics>,
    protocol: &'static str,
    started: Instant,
    done: bool,
    /// The request's or session's span where the statement began; its
    /// outcome is logged there even when the last row leaves elsewhere.
    span: tracing::Span,
}

impl QueryTimer {
    pub fn finish(&mut self, outcome: Result<(), &ServiceError>) {
        let status = match outcome {
            Ok(()) => "ok",
            Err(
                ServiceError::Query(QueryError::AccessDenied { .. })
                | ServiceError::Forbidden { .. },
            ) => "denied",
            Err(_) => "error",
        };
        self.record(status);
    }

    /// Records an outcome by name: `ok`, `error`, `denied` or `cancelled`.
    pub fn finish_as(&mut self, status: &'static str) {
        self.record(status);
    }

    fn record(&mut self, status: &'static str) {
        if self.done {
            return;
        }
        self.done = true;
        let protocol = self.protocol;
        // Within the request's or session's span, so it carries its id.
        self.span.in_scope(|| {
            tracing::info!(
                protocol,
                status,
                ms = self.started.elapsed().as_secs_f64() * 1e3,
                "statement"
            );
        });
        self.metrics
            .queries
            .get_or_create(&QueryLabels { protocol, status })
            .inc();
        if status == "denied" {
            self.metrics
                .denials
                .get_or_create(&ProtocolLabel { protocol })
                .inc();
        }
        self.metrics
            .query_seconds
            .get_or_create(&ProtocolLabel { protocol })
            .observe(self.started.elapsed().as_secs_f64());
        self.metrics
            .sessions_of(protocol, -1, protocol != "postgres");
    }
}

impl Drop for QueryTimer {
    fn drop(&mut self) {
        self.record("cancelled");
    }
}

/// The OpenMetrics text as Prometheus's classic text format (0.0.4), for
/// clients that ask for `text/plain`: no `# EOF` or `# UNIT` lines, and a
/// counter's `# HELP` and `# TYPE` name its `_total` sample.
pub fn classic(openmetrics: &str) -> String {
    let counters: std::collections::BTreeSet<&str> = openmetrics
        .lines()
        .filter_map(|l| l.strip_prefix("# TYPE "))
        .filter_map(|l| l.strip_suffix(" counter"))
        .collect();
    let mut out = String::with_capacity(openmetrics.len());
    for line in openmetrics.lines() {
        if line == "# EOF" || line.starts_with("# UNIT ") {
            continue;
        }
        let renamed = ["# HELP ", "# TYPE "].iter().find_map(|prefix| {
            let rest = line.strip_prefix(prefix)?;
            let (name, tail) = rest.split_once(' ')?;
            counters
                .contains(name)
                .then(|| format!("{prefix}{name}_total {tail}"))
        });
        out.push_str(renamed.as_deref().unwrap_or(line));
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod classic_tests {
    #[test]
    fn counters_are_named_by_their_total_and_eof_is_dropped() {
        let open = "# HELP mesh_queries Statements run.\n# TYPE mesh_queries counter\n\
                    mesh_queries_total{protocol=\"rest\"} 1\n# TYPE mesh_sessions gauge\n\
                    mesh_sessions 2\n# EOF\n";
        assert_eq!(
            super::classic(open),
            "# HELP mesh_queries_total Statements run.\n# TYPE mesh_queries_total counter\n\
             mesh_queries_total{protocol=\"rest\"} 1\n# TYPE mesh_sessions gauge\n\
             mesh_sessions 2\n"
        );
    }
}
