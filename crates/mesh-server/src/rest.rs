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
use mesh_service::{Caller, Mesh};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::problem::Problem;

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
        .route("/runs", get(runs))
        .route("/query", post(query))
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
    let id = req
        .headers()
        .get("x-request-id")
        .and_then(|v| v.to_str().ok())
        .filter(|v| !v.is_empty() && v.len() <= 128)
        .map_or_else(|| uuid::Uuid::new_v4().to_string(), str::to_string);
    let method = req.method().clone();
    let path = req.uri().path().to_string();
    let span = tracing::info_span!("request", request_id = %id, %method, %path);
    let _guard = span.enter();
    let started = std::time::Instant::now();
    drop(_guard);
    let mut res = next.run(req).await;
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
async fn metrics_text(State(s): State<AppState>, Authed(_): Authed) -> Result<Response, Problem> {
    let runs = s.mesh.run_counts().await?;
    let mut res = s.metrics.render(&runs).into_response();
    res.headers_mut().insert(
        axum::http::header::CONTENT_TYPE,
        HeaderValue::from_static("application/openmetrics-text; version=1.0.0; charset=utf-8"),
    );
    Ok(res)
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
        let caller = state
            .mesh
            .authenticate(token)
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

fn page<T>(all: Vec<T>, p: &PageParams) -> Result<Page<T>, Problem> {
    let limit = p.limit.unwrap_or(PAGE);
    if limit == 0 || limit > MAX_PAGE {
        return Err(Problem::new(
            StatusCode::BAD_REQUEST,
            "bad-request",
            format!("limit must be between 1 and {MAX_PAGE}, not {limit}"),
        ));
    }
    let total = all.len();
    let offset = p.offset.unwrap_or(0).min(total);
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
    Ok(Json(page(all, &p)?))
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
    Ok(Json(page(all, &p)?))
}

#[derive(Debug, Deserialize)]
struct RunsParams {
    /// Only this product's runs (`<domain>/<name>`).
    product: Option<String>,
    limit: Option<usize>,
    offset: Option<usize>,
}

/// `GET /api/v1/runs`: the runs of the products the caller may see,
/// newest first; as `mesh runs --format json`.
async fn runs(
    State(s): State<AppState>,
    Authed(caller): Authed,
    Query(p): Query<RunsParams>,
) -> Result<Json<Page<mesh_service::RunRecord>>, Problem> {
    let all = s.mesh.runs(&caller, p.product.as_deref(), i64::MAX).await?;
    let paging = PageParams {
        limit: p.limit,
        offset: p.offset,
    };
    Ok(Json(page(all, &paging)?))
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
    Ok(Json(page(
        all,
        &PageParams {
            limit: p.limit,
            offset: p.offset,
        },
    )?))
}

#[derive(Debug, Deserialize)]
struct QueryBody {
    sql: String,
    /// Most rows to return (default 10,000, at most 100,000).
    limit: Option<usize>,
}

/// `POST /api/v1/query`: the rows as JSON objects, exactly as `mesh query
/// --format json` prints them, at most `limit` of them.
async fn query(
    State(s): State<AppState>,
    Authed(caller): Authed,
    Json(body): Json<QueryBody>,
) -> Result<Response, Problem> {
    let mut timer = s.metrics.query("rest");
    let answer = run_query(&s, &caller, body).await;
    match &answer {
        Ok(_) => timer.finish(Ok(())),
        Err(p) if matches!(p.kind, "access-denied" | "forbidden") => timer.finish_as("denied"),
        Err(_) => timer.finish_as("error"),
    }
    answer
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
        .map(|f| serde_json::json!({"name": f.name(), "type": f.data_type().to_string()}))
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
