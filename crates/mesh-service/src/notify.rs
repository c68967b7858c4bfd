//! Notifications: SLO breaches, recoveries and failed runs, POSTed as JSON
//! to the webhooks `mesh.yaml` names (docs/operations.md).
//!
//! Each delivery is signed: `X-Mesh-Signature: sha256=<hex>` is the
//! HMAC-SHA256, with the webhook's shared secret, of
//! `<X-Mesh-Timestamp>.<body>`, so a receiver can check both who sent it
//! and that it is recent. A delivery that fails (no answer, or not 2xx)
//! is retried up to five times, 0.5 s, 1 s, 2 s, 4 s apart, in a task of
//! its own: notifying never holds up scheduling.
//!
//! Payloads hold metadata only (product, health, reasons, run id and
//! status), never a run's error text or check samples, which may quote
//! data a receiver may not read.

use std::time::Duration;

use hmac::{Hmac, Mac};
use mesh_spec::project::Webhook;
use serde_json::{Value, json};
use sha2::Sha256;

/// Attempts per delivery.
const ATTEMPTS: u32 = 5;

/// The signature header's value for `body` sent at `timestamp`.
pub fn signature(secret: &[u8], timestamp: i64, body: &[u8]) -> String {
    let mut mac = match Hmac::<Sha256>::new_from_slice(secret) {
        Ok(m) => m,
        // HMAC takes keys of any length.
        Err(_) => return String::new(),
    };
    mac.update(timestamp.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    let hex: String = mac
        .finalize()
        .into_bytes()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    format!("sha256={hex}")
}

/// An event to announce.
#[derive(Debug, Clone)]
pub struct Event {
    /// `slo_breach`, `recovery` or `run_failed`.
    pub kind: &'static str,
    pub product: mesh_spec::ProductRef,
    /// The rest of the payload.
    pub detail: Value,
}

impl Event {
    fn wanted_by(&self, hook: &Webhook) -> bool {
        (hook.events.is_empty() || hook.events.iter().any(|e| e == self.kind))
            && (hook.domains.is_empty()
                || hook
                    .domains
                    .iter()
                    .any(|d| d == self.product.domain.as_str()))
            && (hook.products.is_empty()
                || hook.products.iter().any(|p| *p == self.product.to_string()))
    }
}

/// Sends events to the webhooks that want them.
#[derive(Debug, Clone)]
pub struct Notifier {
    hooks: Vec<Webhook>,
    mesh: String,
    client: reqwest::Client,
}

impl Notifier {
    pub fn new(hooks: Vec<Webhook>, mesh: String) -> Self {
        let client = reqwest::Client::builder()
            .timeout(Duration::from_secs(10))
            .build()
            .unwrap_or_default();
        for h in &hooks {
            if std::env::var_os(&h.secret_env).is_none() {
                tracing::error!(url = %h.url, variable = %h.secret_env, "the webhook's secret variable is not set; nothing is sent to it");
            }
        }
        Notifier {
            hooks,
            mesh,
            client,
        }
    }

    pub fn is_empty(&self) -> bool {
        self.hooks.is_empty()
    }

    /// Starts delivering `event` to every webhook that wants it.
    pub fn send(&self, event: Event) {
        let id = uuid::Uuid::now_v7().to_string();
        let mut payload = json!({
            "id": id,
            "event": event.kind,
            "at": chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
            "mesh": self.mesh,
            "product": event.product.to_string(),
            "domain": event.product.domain.to_string(),
        });
        if let (Some(p), Some(d)) = (payload.as_object_mut(), event.detail.as_object()) {
            for (k, v) in d {
                p.insert(k.clone(), v.clone());
            }
        }
        let body = payload.to_string();
        for hook in self.hooks.iter().filter(|h| event.wanted_by(h)) {
            let Some(secret) = std::env::var_os(&hook.secret_env) else {
                continue;
            };
            let client = self.client.clone();
            let url = hook.url.clone();
            let body = body.clone();
            let id = id.clone();
            let kind = event.kind;
            tokio::spawn(async move {
                deliver(client, &url, secret.as_encoded_bytes(), kind, &id, body).await;
            });
        }
    }
}

async fn deliver(
    client: reqwest::Client,
    url: &str,
    secret: &[u8],
    kind: &str,
    id: &str,
    body: String,
) {
    let mut wait = Duration::from_millis(500);
    for attempt in 1..=ATTEMPTS {
        let timestamp = chrono::Utc::now().timestamp();
        let sent = client
            .post(url)
            .header("content-type", "application/json")
            .header("x-mesh-event", kind)
            .header("x-mesh-delivery", id)
            .header("x-mesh-timestamp", timestamp.to_string())
            .header(
                "x-mesh-signature",
                signature(secret, timestamp, body.as_bytes()),
            )
            .body(body.clone())
            .send()
            .await;
        match sent {
            Ok(r) if r.status().is_success() => {
                tracing::info!(
                    url,
                    event = kind,
                    delivery = id,
                    attempt,
                    "notification delivered"
                );
                return;
            }
            Ok(r) => {
                tracing::warn!(url, event = kind, delivery = id, attempt, status = %r.status(), "notification refused")
            }
            Err(e) => {
                tracing::warn!(url, event = kind, delivery = id, attempt, error = %e, "notification not delivered")
            }
        }
        if attempt < ATTEMPTS {
            tokio::time::sleep(wait).await;
            wait *= 2;
        }
    }
    tracing::error!(
        url,
        event = kind,
        delivery = id,
        "notification dropped after {ATTEMPTS} attempts"
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_signature_is_hmac_sha256_of_timestamp_and_body() {
        // Computed independently:
        // `printf '1700000000.{}' | openssl dgst -sha256 -hmac secret`.
        assert_eq!(
            signature(b"secret", 1_700_000_000, b"{}"),
            "sha256=b8569b78799ff9e3cbff0fc2d63a33a2b57f3282abd07c37ae5e8e7d79a5f163"
        );
    }
}
