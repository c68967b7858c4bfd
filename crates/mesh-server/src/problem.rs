//! One error format for the REST API: RFC 9457 problem details
//! (`application/problem+json`), with the service's hint when it has one.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use mesh_service::ServiceError;

/// An error answer: `{type, title, status, detail, hint}`.
#[derive(Debug, Clone)]
pub struct Problem {
    pub status: StatusCode,
    /// A stable, short name (`access-denied`); also the end of `type`.
    pub kind: &'static str,
    pub detail: String,
    pub hint: Option<String>,
}

impl Problem {
    pub fn new(status: StatusCode, kind: &'static str, detail: impl Into<String>) -> Self {
        Problem {
            status,
            kind,
            detail: detail.into(),
            hint: None,
        }
    }

    pub fn hint(mut self, hint: impl Into<String>) -> Self {
        self.hint = Some(hint.into());
        self
    }

    pub fn unauthenticated() -> Self {
        Problem::new(
            StatusCode::UNAUTHORIZED,
            "unauthenticated",
            "this endpoint needs a mesh token: `Authorization: Bearer mesh_…`",
        )
        .hint("create one with `mesh token create`")
    }
}

impl From<ServiceError> for Problem {
    fn from(e: ServiceError) -> Self {
        let codes = e.codes();
        let status = StatusCode::from_u16(codes.http).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let kind = codes.problem;
        let hint = e.hint();
        let detail = match &e {
            ServiceError::Query(q) => q.to_string(),
            other => other.to_string(),
        };
        Problem {
            status,
            kind,
            detail,
            hint,
        }
    }
}

impl Problem {
    /// The `application/problem+json` document.
    pub fn body(&self) -> serde_json::Value {
        let mut body = serde_json::json!({
            "type": format!("https://meshwork.dev/problems/{}", self.kind),
            "title": self.status.canonical_reason().unwrap_or("error"),
            "status": self.status.as_u16(),
            "detail": self.detail,
        });
        if let Some(h) = &self.hint {
            body["hint"] = serde_json::Value::String(h.clone());
        }
        body
    }
}

impl IntoResponse for Problem {
    fn into_response(self) -> Response {
        let mut res = (self.status, self.body().to_string()).into_response();
        res.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/problem+json"),
        );
        if self.status == StatusCode::UNAUTHORIZED {
            res.headers_mut()
                .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        res
    }
}
