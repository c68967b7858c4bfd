//! The REST API. Every handler authenticates, then calls one service
//! function as the caller; nothing here plans, decides or audits.

use std::sync::Arc;

use axum::extract::{FromRequestParts, Path, Query, Request, State};
use axum::http::request::Parts;
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use mesh_service::{Caller, Mesh, Statement};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::problem::Problem;

mod lineage;
mod runs;

/// Default and largest page of a list endpoint.
const PAGE: usize = 50;
const MAX_PAGE: usize = 1000;
/// Default and largest row count of a JSON query answer.
const ROWS: usize = 10_000;
const MAX_ROWS: usize = 100_000;

#[derive(Clone)]
struct AppState {
    mesh: Arc<Mesh>,
    metrics: Arc<crate::metrics::Metrics>,
}

/// The routes: `/healthz`, `/readyz` and `/openapi.json` are open; every
/// `/api/v1` route and `/metrics` need a token.
pub fn router(mesh: Arc<Mesh>, metrics: Arc<crate::metrics::Metrics>) -> Router {
    let state = AppState { mesh, metrics };
    let api = Router::new()
        .route("/products", get(list_products))
        .route("/products/{domain}/{name}", get(show_product))
        .route("/products/{domain}/{name}/history", get(product_history))
        .route("/search", get(search))
        .route("/lineage", get(lineage::lineage))
        .route("/runs", get(runs::runs).post(runs::trigger_run))
        .route("/runs/{id}", get(runs::run_detail))
        .route("/status", get(runs::status))
        .route("/query", post(query))
        .route("/audit", get(audit))
        .route(
            "/access/requests",
            get(access_requests).post(request_access),
        )
        .route("/access/requests/{id}/approve", post(approve_request))
        .route("/access/requests/{id}/deny", post(deny_request))
        .route("/access/grants", get(grants))
        .route("/access/grants/{id}", axum::routing::delete(revoke_grant))
        .route_layer(middleware::from_fn_with_state(state.clone(), http_metrics));
    Router::new()
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/openapi.json", get(openapi))
        .route("/metrics", get(metrics_text))
        .route_layer(middleware::from_fn_with_state(state.clone(), http_metrics))
        .nest("/api/v1", api)
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .with_state(state)
        .layer(middleware::from_fn(request_id))
}

/// Tags each request with an id (the client's `x-request-id`, or a new
/// one), logs it, and returns it in the answer.
async fn request_id(req: Request, next: Next) -> Response {
    let id = crate::request_id(
        req.headers()
            .get("x-request-id")
            .and_then(|v| v.to_str().ok()),
    );
    let method = req.method().clone();
    let path = req.uri().path().to_string();
    let span = tracing::info_span!("request", request_id = %id, %method, %path);
    let started = std::time::Instant::now();
    // The handler runs in the span, so everything it logs carries the id.
    let mut res = tracing::Instrument::instrument(next.run(req), span.clone()).await;
    let _guard = span.enter();
    tracing::info!(
        status = res.status().as_u16(),
        ms = started.elapsed().as_secs_f64() * 1e3,
        "served"
    );
    if let Ok(v) = HeaderValue::from_str(&id) {
        res.headers_mut().insert("x-request-id", v);
    }
    res
}

/// Counts each routed request by its route template and status.
async fn http_metrics(State(s): State<AppState>, req: Request, next: Next) -> Response {
    let route = req
        .extensions()
        .get::<axum::extract::MatchedPath>()
        .map_or_else(|| req.uri().path().to_string(), |m| m.as_str().to_string());
    let started = std::time::Instant::now();
    let res = next.run(req).await;
    s.metrics
        .http_request(&route, res.status().as_u16(), started);
    res
}

/// `GET /metrics`: Prometheus metrics (OpenMetrics text). Needs a token
/// like every non-health route; scrape with a bearer credential.
/// `GET /metrics`: OpenMetrics, or Prometheus's classic text format for a
/// client whose `Accept` asks for `text/plain` and not OpenMetrics.
async fn metrics_text(
    State(s): State<AppState>,
    Authed(caller): Authed,
    headers: axum::http::HeaderMap,
) -> Result<Response, Problem> {
    let runs = s.mesh.run_counts().await?;
    let products = s.mesh.status(&caller).await?;
    let accept: Vec<&str> = headers
        .get_all(header::ACCEPT)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .collect();
    let asks = |what: &str| accept.iter().any(|v| v.contains(what));
    let text = s.metrics.render(&runs, &products);
    let (body, content_type) = if asks("text/plain") && !asks("application/openmetrics-text") {
        (
            crate::metrics::classic(&text),
            "text/plain; version=0.0.4; charset=utf-8",
        )
    } else {
        (
            text,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )
    };
    let mut res = body.into_response();
    res.headers_mut().insert(
        axum::http::header::CONTENT_TYPE,
        HeaderValue::from_static(content_type),
    );
    Ok(res)
}

/// A JSON request body whose rejections are problems like every other
/// error (axum's own are plain text). An empty body is `None`.
struct Body<T>(Option<T>);

impl<T: serde::de::DeserializeOwned, S: Send + Sync> axum::extract::FromRequest<S> for Body<T> {
    type Rejection = Problem;

    async fn from_request(req: Request, state: &S) -> Result<Self, Problem> {
        let bytes = bytes::Bytes::from_request(req, state).await.map_err(|e| {
            Problem::new(
                StatusCode::BAD_REQUEST,
                "bad-request",
                format!("cannot read the request body: {e}"),
            )
        })?;
        if bytes.iter().all(u8::is_ascii_whitespace) {
            return Ok(Body(None));
        }
        serde_json::from_slice(&bytes)
            .map(|v| Body(Some(v)))
            .map_err(|e| {
                Problem::new(
                    StatusCode::BAD_REQUEST,
                    "bad-request",
                    format!("the request body is not the JSON this endpoint takes: {e}"),
                )
                .hint("the API is described at /openapi.json")
            })
    }
}

impl<T> Body<T> {
    fn required(self) -> Result<T, Problem> {
        self.0.ok_or_else(|| {
            Problem::new(
                StatusCode::BAD_REQUEST,
                "bad-request",
                "this endpoint needs a JSON request body",
            )
            .hint("the API is described at /openapi.json")
        })
    }
}

/// The caller a request's bearer token names.
struct Authed(Caller);

impl FromRequestParts<AppState> for Authed {
    type Rejection = Problem;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Problem> {
        let token = parts
            .headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .map(str::trim)
            .ok_or_else(Problem::unauthenticated)?;
        let source = parts
            .extensions
            .get::<axum::extract::ConnectInfo<crate::gate::Peer>>()
            .map(|c| c.0.0.ip());
        let caller = state
            .mesh
            .authenticate_from(token, source)
            .await
            .map_err(Problem::from)?;
        Ok(Authed(caller))
    }
}

async fn healthz() -> Json<Value> {
    Json(serde_json::json!({"status": "ok"}))
}

/// Ready when the catalog answers.
async fn readyz(State(s): State<AppState>) -> Result<Json<Value>, Problem> {
    s.mesh.catalog.products().await.map_err(|e| {
        Problem::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "not-ready",
            format!("the catalog does not answer: {e}"),
        )
    })?;
    Ok(Json(serde_json::json!({"status": "ready"})))
}

async fn openapi() -> Json<Value> {
    Json(crate::openapi::document())
}

async fn not_found() -> Problem {
    Problem::new(StatusCode::NOT_FOUND, "not-found", "no such endpoint")
        .hint("the API is described at /openapi.json")
}

async fn method_not_allowed() -> Problem {
    Problem::new(
        StatusCode::METHOD_NOT_ALLOWED,
        "method-not-allowed",
        "this endpoint does not take that method",
    )
    .hint("the API is described at /openapi.json")
}

#[derive(Debug, Deserialize)]
struct PageParams {
    limit: Option<usize>,
    offset: Option<usize>,
}

/// One page of a list.
#[derive(Debug, Serialize)]
struct Page<T> {
    items: Vec<T>,
    total: usize,
    /// The `offset` of the next page; absent on the last one.
    #[serde(skip_serializing_if = "Option::is_none")]
    next_offset: Option<usize>,
}

/// A list endpoint's `limit`: [`PAGE`] by default, at most [`MAX_PAGE`].
fn page_limit(limit: Option<usize>) -> Result<usize, Problem> {
    let limit = limit.unwrap_or(PAGE);
    if limit == 0 || limit > MAX_PAGE {
        return Err(Problem::new(
            StatusCode::BAD_REQUEST,
            "bad-request",
            format!("limit must be between 1 and {MAX_PAGE}, not {limit}"),
        ));
    }
    Ok(limit)
}

fn page<T>(all: Vec<T>, limit: Option<usize>, offset: Option<usize>) -> Result<Page<T>, Problem> {
    let limit = page_limit(limit)?;
    let total = all.len();
    let offset = offset.unwrap_or(0).min(total);
    let items: Vec<T> = all.into_iter().skip(offset).take(limit).collect();
    let next = offset + items.len();
    Ok(Page {
        items,
        total,
        next_offset: (next < total).then_some(next),
    })
}

async fn list_products(
    State(s): State<AppState>,
    Authed(caller): Authed,
    Query(p): Query<PageParams>,
) -> Result<Json<Page<mesh_service::discover::ProductSummary>>, Problem> {
    let all = s.mesh.catalog_list(&caller).await?;
    Ok(Json(page(all, p.limit, p.offset)?))
}

async fn show_product(
    State(s): State<AppState>,
    Authed(caller): Authed,
    Path((domain, name)): Path<(String, String)>,
) -> Result<Json<Value>, Problem> {
    Ok(Json(
        s.mesh
            .catalog_show(&caller, &format!("{domain}/{name}"))
            .await?,
    ))
}

async fn product_history(
    State(s): State<AppState>,
    Authed(caller): Authed,
    Path((domain, name)): Path<(String, String)>,
    Query(p): Query<PageParams>,
) -> Result<Json<Page<mesh_service::discover::Release>>, Problem> {
    let all = s
        .mesh
        .catalog_history(&caller, &format!("{domain}/{name}"))
        .await?;
    Ok(Json(page(all, p.limit, p.offset)?))
}

#[derive(Debug, Deserialize)]
struct AuditParams {
    product: Option<String>,
    principal: Option<String>,
    action: Option<String>,
    /// `YYYY-MM-DD` or an RFC 3339 time.
    since: Option<String>,
    limit: Option<usize>,
    offset: Option<usize>,
}

/// `GET /api/v1/audit`: the audit entries the caller may read (all of
/// them for a mesh-admin; otherwise its own and those about products its
/// teams own), newest first.
async fn audit(
    State(s): State<AppState>,
    Authed(caller): Authed,
    Query(p): Query<AuditParams>,
) -> Result<Json<Page<mesh_service::AuditEntry>>, Problem> {
    let since = match &p.since {
        Some(text) => Some(mesh_service::identity::parse_since(text).ok_or_else(|| {
            Problem::new(
                StatusCode::BAD_REQUEST,
                "bad-request",
                format!("since `{text}` is not a date (YYYY-MM-DD) or an RFC 3339 time"),
            )
        })?),
        None => None,
    };
    let limit = page_limit(p.limit)?;
    let offset = p.offset.unwrap_or(0);
    let wide = |n: usize| i64::try_from(n).unwrap_or(i64::MAX);
    let (items, total) = s
        .mesh
        .audit_for(
            &caller,
            &mesh_service::AuditFilter {
                product: p.product,
                principal: p.principal,
                since,
                action: p.action,
                limit: Some(wide(limit)),
                offset: Some(wide(offset)),
                scope: None,
            },
        )
        .await?;
    let total = usize::try_from(total).unwrap_or(usize::MAX);
    let next = offset.saturating_add(items.len());
    Ok(Json(Page {
        next_offset: (!items.is_empty() && next < total).then_some(next),
        items,
        total,
    }))
}

/// `GET /api/v1/access/requests`: the caller's inbox, as `mesh access
/// list`: pending requests it may decide, then its own.
async fn access_requests(
    State(s): State<AppState>,
    Authed(caller): Authed,
    Query(p): Query<PageParams>,
) -> Result<Json<Page<mesh_service::grants::InboxItem>>, Problem> {
    Ok(Json(page(
        s.mesh.access_list(&caller).await?,
        p.limit,
        p.offset,
    )?))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct AccessBody {
    product: String,
    purpose: String,
    /// `30d`, `12h`, `2w` (default 30d; capped by the product).
    duration: Option<String>,
    #[serde(default)]
    pii: bool,
}

/// `POST /api/v1/access/requests`: files a request as the caller.
async fn request_access(
    State(s): State<AppState>,
    Authed(caller): Authed,
    body: Body<AccessBody>,
) -> Result<Response, Problem> {
    let body = body.required()?;
    let text = body.duration.as_deref().unwrap_or("30d");
    let duration = mesh_service::identity::parse_ttl(text).ok_or_else(|| {
        Problem::new(
            StatusCode::BAD_REQUEST,
            "bad-request",
            format!("duration `{text}` is not a duration such as 30d, 12h or 2w"),
        )
    })?;
    let r = s
        .mesh
        .access_request(&caller, &body.product, &body.purpose, duration, body.pii)
        .await?;
    Ok((StatusCode::CREATED, Json(r)).into_response())
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct DecisionBody {
    reason: Option<String>,
}

/// `POST /api/v1/access/requests/{id}/approve`: answers the grant.
async fn approve_request(
    State(s): State<AppState>,
    Authed(caller): Authed,
    Path(id): Path<String>,
    body: Body<DecisionBody>,
) -> Result<Json<Value>, Problem> {
    decide(&s, &caller, &id, true, body.0.unwrap_or_default()).await
}

/// `POST /api/v1/access/requests/{id}/deny`.
async fn deny_request(
    State(s): State<AppState>,
    Authed(caller): Authed,
    Path(id): Path<String>,
    body: Body<DecisionBody>,
) -> Result<Json<Value>, Problem> {
    decide(&s, &caller, &id, false, body.0.unwrap_or_default()).await
}

async fn decide(
    s: &AppState,
    caller: &Caller,
    id: &str,
    approve: bool,
    body: DecisionBody,
) -> Result<Json<Value>, Problem> {
    let grant = s
        .mesh
        .access_decide(caller, id, approve, body.reason.as_deref())
        .await?;
    Ok(Json(serde_json::json!({
        "request": id,
        "status": if approve { "approved" } else { "denied" },
        "grant": grant,
    })))
}

#[derive(Debug, Deserialize)]
struct GrantsParams {
    /// Everyone's grants (a mesh-admin's call).
    #[serde(default)]
    all: bool,
    limit: Option<usize>,
    offset: Option<usize>,
}

/// `GET /api/v1/access/grants`: the caller's grants, or everyone's.
async fn grants(
    State(s): State<AppState>,
    Authed(caller): Authed,
    Query(p): Query<GrantsParams>,
) -> Result<Json<Page<mesh_service::Grant>>, Problem> {
    let all = s.mesh.access_grants(&caller, p.all).await?;
    Ok(Json(page(all, p.limit, p.offset)?))
}

/// `DELETE /api/v1/access/grants/{id}`: ends a grant before it expires.
async fn revoke_grant(
    State(s): State<AppState>,
    Authed(caller): Authed,
    Path(id): Path<String>,
) -> Result<Json<mesh_service::Grant>, Problem> {
    Ok(Json(s.mesh.access_revoke(&caller, &id).await?))
}

#[derive(Debug, Deserialize)]
struct SearchParams {
    q: String,
    limit: Option<usize>,
    offset: Option<usize>,
}

async fn search(
    State(s): State<AppState>,
    Authed(caller): Authed,
    Query(p): Query<SearchParams>,
) -> Result<Json<Page<mesh_service::discover::SearchResult>>, Problem> {
    let all = s.mesh.catalog_search(&caller, &p.q).await?;
    Ok(Json(page(all, p.limit, p.offset)?))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct QueryBody {
    sql: String,
    /// Most rows to return (default 10,000, at most 100,000).
    limit: Option<usize>,
}

/// `POST /api/v1/query`: the rows as JSON objects, exactly as `mesh query
/// --format json` prints them, at most `limit` of them.
///
/// With `Accept: application/vnd.apache.arrow.stream` the answer is an
/// Arrow IPC stream instead, written batch by batch as the query computes
/// them (never collected), with no row limit unless one is given.
async fn query(
    State(s): State<AppState>,
    Authed(caller): Authed,
    headers: axum::http::HeaderMap,
    body: Body<QueryBody>,
) -> Result<Response, Problem> {
    let body = body.required()?;
    let mut timer = s.metrics.query("rest");
    let arrow = headers
        .get_all(header::ACCEPT)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .any(|v| v.contains(ARROW_STREAM));
    if arrow {
        return match stream_arrow(&s, &caller, body).await {
            Ok(stream) => Ok(arrow_response(stream, timer)),
            Err(p) => {
                timer.finish_as(outcome(&p));
                Err(p)
            }
        };
    }
    let answer = run_query(&s, &caller, body).await;
    match &answer {
        Ok(_) => timer.finish(Ok(())),
        Err(p) => timer.finish_as(outcome(p)),
    }
    answer
}

/// The Arrow IPC stream media type.
const ARROW_STREAM: &str = "application/vnd.apache.arrow.stream";

/// The metrics status of a failed query.
fn outcome(p: &Problem) -> &'static str {
    if matches!(p.kind, "access-denied" | "forbidden") {
        "denied"
    } else {
        "error"
    }
}

/// A query planned for streaming, with its row limit.
struct ArrowQuery {
    stream: mesh_service::QueryStream,
    limit: Option<usize>,
}

fn body_limit(limit: Option<usize>) -> Result<Option<usize>, Problem> {
    match limit {
        Some(0) => Err(Problem::new(
            StatusCode::BAD_REQUEST,
            "bad-request",
            "limit must be at least 1",
        )),
        other => Ok(other),
    }
}

async fn stream_arrow(
    s: &AppState,
    caller: &Caller,
    body: QueryBody,
) -> Result<ArrowQuery, Problem> {
    let limit = body_limit(body.limit)?;
    let planned = s
        .mesh
        .prepare(caller, Statement::sql(&body.sql).for_arrow_ipc())
        .await?;
    let stream = s.mesh.execute(planned, None).await?;
    Ok(ArrowQuery { stream, limit })
}

/// Encodes the batches as one Arrow IPC stream, one chunk per batch. An
/// error after the first byte can only cut the stream short: the client
/// sees a stream without its end marker, never a wrong answer.
fn arrow_response(q: ArrowQuery, mut timer: crate::metrics::QueryTimer) -> Response {
    use futures::StreamExt;
    use mesh_service::arrow::ipc::writer::StreamWriter;
    let schema = mesh_service::wire_schema(&q.stream.schema);
    let warnings = q.stream.warnings.clone();
    let mut left = q.limit.unwrap_or(usize::MAX);
    let batches = q.stream.into_batches();
    let body = async_stream(move |mut tx| async move {
        use futures::SinkExt;
        let mut writer = match StreamWriter::try_new(Vec::new(), &schema) {
            Ok(w) => w,
            Err(e) => {
                timer.finish_as("error");
                let _ = tx.send(Err(std::io::Error::other(e.to_string()))).await;
                return;
            }
        };
        let mut batches = std::pin::pin!(batches);
        let mut failed = None;
        while left > 0 {
            let Some(batch) = batches.next().await else {
                break;
            };
            let batch = match batch {
                Ok(b) => b,
                Err(e) => {
                    failed = Some(e.to_string());
                    break;
                }
            };
            let batch = if batch.num_rows() > left {
                batch.slice(0, left)
            } else {
                batch
            };
            let batch = match mesh_service::to_wire(&batch, &schema) {
                Ok(b) => b,
                Err(e) => {
                    failed = Some(e.to_string());
                    break;
                }
            };
            left -= batch.num_rows();
            if let Err(e) = writer.write(&batch) {
                failed = Some(e.to_string());
                break;
            }
            let chunk = std::mem::take(writer.get_mut());
            if tx.send(Ok(bytes::Bytes::from(chunk))).await.is_err() {
                return; // the client left; the timer records a cancel
            }
        }
        if let Some(e) = failed {
            tracing::warn!(error = %e, "arrow stream cut short");
            timer.finish_as("error");
            let _ = tx.send(Err(std::io::Error::other(e))).await;
            return;
        }
        match writer.finish() {
            Ok(()) => {
                timer.finish(Ok(()));
                let chunk = std::mem::take(writer.get_mut());
                let _ = tx.send(Ok(bytes::Bytes::from(chunk))).await;
            }
            Err(e) => {
                timer.finish_as("error");
                let _ = tx.send(Err(std::io::Error::other(e.to_string()))).await;
            }
        }
    });
    let mut res = Response::new(axum::body::Body::from_stream(body));
    res.headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(ARROW_STREAM));
    // One header per warning (`mesh query --server` prints them); a
    // header carries visible ASCII only.
    for w in &warnings {
        let ascii: String = w
            .chars()
            .map(|c| {
                if c == ' ' || c.is_ascii_graphic() {
                    c
                } else {
                    '?'
                }
            })
            .collect();
        if let Ok(v) = HeaderValue::from_str(&ascii) {
            res.headers_mut().append("x-mesh-warning", v);
        }
    }
    res
}

/// A body stream fed by a task through a small channel, so a slow client
/// holds back the query instead of buffering its answer.
fn async_stream<F, Fut>(produce: F) -> futures::channel::mpsc::Receiver<Chunk>
where
    F: FnOnce(futures::channel::mpsc::Sender<Chunk>) -> Fut,
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    let (tx, rx) = futures::channel::mpsc::channel(2);
    tokio::spawn(tracing::Instrument::instrument(
        produce(tx),
        tracing::Span::current(),
    ));
    rx
}

type Chunk = Result<bytes::Bytes, std::io::Error>;

/// A result column's type in the contracts' vocabulary (`string`,
/// `decimal(15,2)`, `list<bigint>`), or Arrow's name for a type contracts
/// cannot declare (intervals, durations).
fn column_type(dt: &mesh_service::arrow::datatypes::DataType) -> String {
    mesh_service::contract_type(dt).map_or_else(|| dt.to_string(), |t| t.to_string())
}

async fn run_query(s: &AppState, caller: &Caller, body: QueryBody) -> Result<Response, Problem> {
    let limit = body.limit.unwrap_or(ROWS);
    if limit == 0 || limit > MAX_ROWS {
        return Err(Problem::new(
            StatusCode::BAD_REQUEST,
            "bad-request",
            format!("limit must be between 1 and {MAX_ROWS}, not {limit}"),
        ));
    }
    let mut stream = s.mesh.query_stream(caller, &body.sql).await?;
    let columns: Vec<Value> = stream
        .schema
        .fields()
        .iter()
        .map(|f| serde_json::json!({"name": f.name(), "type": column_type(f.data_type())}))
        .collect();
    let mut out = Vec::new();
    let mut rows = 0usize;
    let mut truncated = false;
    {
        let mut writer = mesh_service::arrow::json::ArrayWriter::new(&mut out);
        while let Some(batch) = stream.next().await {
            let batch = batch?;
            let room = limit - rows;
            if batch.num_rows() > room {
                writer.write(&batch.slice(0, room)).map_err(internal)?;
                rows += room;
                truncated = true;
                break;
            }
            rows += batch.num_rows();
            writer.write(&batch).map_err(internal)?;
            if rows == limit {
                // Another row may follow; only the next batch tells.
                truncated = stream.next().await.is_some();
                break;
            }
        }
        writer.finish().map_err(internal)?;
    }
    let rows_json: Value = if out.is_empty() {
        Value::Array(Vec::new())
    } else {
        serde_json::from_slice(&out).map_err(internal)?
    };
    let body = serde_json::json!({
        "columns": columns,
        "rows": rows_json,
        "row_count": rows,
        "truncated": truncated,
        "warnings": stream.warnings,
    });
    Ok(Json(body).into_response())
}

fn internal(e: impl std::fmt::Display) -> Problem {
    Problem::new(
        StatusCode::INTERNAL_SERVER_ERROR,
        "internal",
        format!("cannot encode the answer: {e}"),
    )
}
