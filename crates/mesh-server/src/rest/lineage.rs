//! `/api/v1/lineage`: column lineage as the caller may see it; the same
//! answer as `mesh lineage --format json`.

use axum::Json;
use axum::extract::{Query, State};
use mesh_service::ServiceError;
use mesh_service::lineage::view::{Direction, LineageView};
use serde::Deserialize;

use super::{AppState, Authed};
use crate::problem::Problem;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct LineageParams {
    /// `<domain>/<product>[.<output>[.<column>]]` or `<domain>.<output>[.<column>]`.
    target: String,
    /// `upstream`, `downstream` or `both` (the default).
    direction: Option<String>,
    /// At most this many steps from the target.
    depth: Option<usize>,
}

/// `GET /api/v1/lineage?target=…`: the columns upstream and downstream
/// of the target; products the caller may not see are redacted nodes.
pub(super) async fn lineage(
    State(s): State<AppState>,
    Authed(caller): Authed,
    Query(p): Query<LineageParams>,
) -> Result<Json<LineageView>, Problem> {
    let direction = match p.direction.as_deref() {
        None | Some("both") => Direction::Both,
        Some("upstream") => Direction::Upstream,
        Some("downstream") => Direction::Downstream,
        Some(other) => {
            return Err(ServiceError::Usage(format!(
                "direction `{other}` is not one of upstream, downstream, both"
            ))
            .into());
        }
    };
    Ok(Json(
        s.mesh
            .lineage(&caller, &p.target, direction, p.depth)
            .await?,
    ))
}
