//! `/api/v1/runs`: run history, one run's timeline, and triggering runs;
//! `/api/v1/status`: the health of products.

use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Deserialize;

use super::{AppState, Authed, Body, Page, page};
use crate::problem::Problem;

#[derive(Debug, Deserialize)]
pub(super) struct RunsParams {
    /// Only this product's runs (`<domain>/<name>`).
    product: Option<String>,
    /// Only runs with this status (`failed`, `up-to-date`, …).
    status: Option<String>,
    limit: Option<usize>,
    offset: Option<usize>,
}

/// `GET /api/v1/runs`: the runs of the products the caller may see,
/// newest first; as `mesh runs --format json`.
pub(super) async fn runs(
    State(s): State<AppState>,
    Authed(caller): Authed,
    Query(p): Query<RunsParams>,
) -> Result<Json<Page<mesh_service::RunRecord>>, Problem> {
    let all = s
        .mesh
        .runs(&caller, p.product.as_deref(), p.status.as_deref(), i64::MAX)
        .await?;
    Ok(Json(page(all, p.limit, p.offset)?))
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RunBody {
    /// Products to run (`<domain>/<name>`) with their upstreams first;
    /// empty means every product (a mesh-admin's call).
    #[serde(default)]
    products: Vec<String>,
    /// Run and publish even what is up to date.
    #[serde(default)]
    force: bool,
}

/// `POST /api/v1/runs`: runs the named products as the caller (who must
/// own their domains, or be a mesh-admin) and answers when they finish,
/// with the runs as `mesh run --format json` prints them. A run that fails
/// its checks is a `200` whose run says `failed`: the request did its job.
pub(super) async fn trigger_run(
    State(s): State<AppState>,
    Authed(caller): Authed,
    body: Body<RunBody>,
) -> Result<Response, Problem> {
    let body = body.0.unwrap_or_default();
    let (runs, recovered) = s
        .mesh
        .run_as(
            &caller,
            &body.products,
            &mesh_service::RunOptions {
                force: body.force,
                cause: "manual".into(),
            },
            &mesh_service::Silent,
        )
        .await?;
    let ok = runs.iter().all(|r| {
        matches!(
            r.status,
            mesh_service::RunStatus::Succeeded | mesh_service::RunStatus::UpToDate
        )
    });
    Ok((
        StatusCode::OK,
        Json(serde_json::json!({"runs": runs, "recovered": recovered, "succeeded": ok})),
    )
        .into_response())
}

/// `GET /api/v1/runs/{id}`: one run with its timeline, checks and log,
/// as `mesh runs show ID --format json`; a run of a product the caller
/// may not see is a 404 like an unknown one.
pub(super) async fn run_detail(
    State(s): State<AppState>,
    Authed(caller): Authed,
    Path(id): Path<String>,
) -> Result<Json<mesh_service::RunRecord>, Problem> {
    Ok(Json(s.mesh.run_detail(&caller, &id).await?))
}

/// `GET /api/v1/status`: the health of the products the caller may see,
/// by domain and name; as `mesh status --format json`.
pub(super) async fn status(
    State(s): State<AppState>,
    Authed(caller): Authed,
    Query(p): Query<super::PageParams>,
) -> Result<Json<Page<mesh_service::health::ProductHealth>>, Problem> {
    let all = s.mesh.status(&caller).await?;
    Ok(Json(page(all, p.limit, p.offset)?))
}
