//! Identities, tokens and the audit log, on every catalog backend
//! (tests/support).
#![allow(clippy::unwrap_used)]

mod support;

use chrono::{Duration, Utc};
use mesh_catalog::{AuditEntry, AuditFilter, AuditScope, CatalogError, IdentityStore, TokenRecord};

#[tokio::test]
async fn principals_teams_and_roles() {
    for backend in support::backends().await {
        eprintln!("on {}", backend.name);
        let c = backend.open().await;
        c.add_principal("ana", "user", "root").await.unwrap();
        c.add_principal("etl", "service", "root").await.unwrap();
        let dup = c.add_principal("ana", "user", "root").await.unwrap_err();
        assert!(matches!(dup, CatalogError::Conflict { .. }), "{dup}");
        c.add_team("sales-team", &["sales".into()], "root")
            .await
            .unwrap();
        c.add_member("sales-team", "ana").await.unwrap();
        c.add_member("sales-team", "ana").await.unwrap();
        c.grant_role("ana", "pii-reader").await.unwrap();
        let missing = c.add_member("nope", "ana").await.unwrap_err();
        assert_eq!(missing.to_string(), "team `nope` does not exist");
        let ghost = c.grant_role("ghost", "x").await.unwrap_err();
        assert_eq!(ghost.to_string(), "principal `ghost` does not exist");

        let ana = c.principal("ana").await.unwrap().unwrap();
        assert_eq!(ana.teams, ["sales-team"]);
        assert_eq!(ana.roles, ["pii-reader"]);
        assert_eq!(c.owner_teams("sales").await.unwrap(), ["sales-team"]);
        assert!(c.owner_teams("ops").await.unwrap().is_empty());
        let all = c.principals().await.unwrap();
        assert_eq!(all.len(), 2);
        assert_eq!(all[1].kind, "service");
        let teams = c.teams().await.unwrap();
        assert_eq!(teams[0].members, ["ana"]);
        assert_eq!(teams[0].domains, ["sales"]);
    }
}

#[tokio::test]
async fn tokens_are_stored_and_revoked_once() {
    for backend in support::backends().await {
        eprintln!("on {}", backend.name);
        let c = backend.open().await;
        c.add_principal("ana", "user", "root").await.unwrap();
        let t = TokenRecord {
            id: "abc123".into(),
            principal: "ana".into(),
            hash: "$argon2id$stub-for-storage-only".into(),
            created_at: Utc::now(),
            expires_at: Some(Utc::now() + Duration::days(30)),
            revoked_at: None,
        };
        c.add_token(&t).await.unwrap();
        let back = c.token("abc123").await.unwrap().unwrap();
        assert_eq!(back.hash, t.hash);
        assert!(back.revoked_at.is_none());
        assert!(c.revoke_token("abc123", Utc::now()).await.unwrap());
        assert!(!c.revoke_token("abc123", Utc::now()).await.unwrap());
        assert!(
            c.token("abc123")
                .await
                .unwrap()
                .unwrap()
                .revoked_at
                .is_some()
        );
        assert_eq!(c.tokens(Some("ana")).await.unwrap().len(), 1);
        let orphan = TokenRecord {
            principal: "ghost".into(),
            id: "x".into(),
            ..t
        };
        assert!(c.add_token(&orphan).await.is_err());
    }
}

fn entry(principal: &str, product: &str, decision: &str) -> AuditEntry {
    AuditEntry {
        seq: 0,
        at: Utc::now(),
        principal: principal.into(),
        action: "query".into(),
        product: Some(product.into()),
        columns: vec!["email".into()],
        decision: decision.into(),
        reason: "test".into(),
        detail: serde_json::json!({"sql": "SELECT 1"}),
    }
}

#[tokio::test]
async fn the_audit_log_is_append_only_and_filterable() {
    for backend in support::backends().await {
        eprintln!("on {}", backend.name);
        let c = backend.open().await;
        c.append_audit(&[
            entry("ana", "sales/orders", "allow"),
            entry("bob", "sales/orders", "deny"),
            entry("ana", "ops/tickets", "allow"),
        ])
        .await
        .unwrap();
        let all = c.audit(&AuditFilter::default()).await.unwrap();
        assert_eq!(all.len(), 3);
        assert!(all[0].seq < all[1].seq && all[1].seq < all[2].seq);
        assert_eq!(all[1].columns, ["email"]);
        assert_eq!(all[1].detail["sql"], "SELECT 1");
        let ana = c
            .audit(&AuditFilter {
                principal: Some("ana".into()),
                ..Default::default()
            })
            .await
            .unwrap();
        assert_eq!(ana.len(), 2);
        let orders = c
            .audit(&AuditFilter {
                product: Some("sales/orders".into()),
                limit: Some(1),
                ..Default::default()
            })
            .await
            .unwrap();
        assert_eq!(orders.len(), 1);
        assert_eq!(orders[0].principal, "bob", "the limit keeps the newest");
        let later = c
            .audit(&AuditFilter {
                since: Some(Utc::now() + Duration::hours(1)),
                ..Default::default()
            })
            .await
            .unwrap();
        assert!(later.is_empty());

        // A scope: what bob made, and what is about the domains he owns.
        let scoped = |domains: &[&str]| AuditFilter {
            scope: Some(AuditScope {
                principal: "bob".into(),
                domains: domains.iter().map(|d| d.to_string()).collect(),
            }),
            ..Default::default()
        };
        let who = |entries: Vec<AuditEntry>| -> Vec<(String, Option<String>)> {
            entries
                .into_iter()
                .map(|e| (e.principal, e.product))
                .collect()
        };
        assert_eq!(
            who(c.audit(&scoped(&[])).await.unwrap()),
            [("bob".to_string(), Some("sales/orders".to_string()))]
        );
        assert_eq!(c.audit_count(&scoped(&[])).await.unwrap(), 1);
        let ops = c.audit(&scoped(&["ops"])).await.unwrap();
        assert_eq!(ops.len(), 2, "{ops:?}");
        assert_eq!(ops[1].product.as_deref(), Some("ops/tickets"));
        // A domain is matched whole, not as a prefix of another.
        assert_eq!(c.audit_count(&scoped(&["op"])).await.unwrap(), 1);
        assert_eq!(c.audit_count(&scoped(&["sales", "ops"])).await.unwrap(), 3);

        // Pages from the newest: the offset skips the newest entries, the
        // count ignores limit and offset.
        let page = |offset: i64| AuditFilter {
            limit: Some(1),
            offset: Some(offset),
            ..Default::default()
        };
        assert_eq!(
            who(c.audit(&page(0)).await.unwrap()),
            [("ana".to_string(), Some("ops/tickets".to_string()))]
        );
        assert_eq!(
            who(c.audit(&page(2)).await.unwrap()),
            [("ana".to_string(), Some("sales/orders".to_string()))]
        );
        assert!(c.audit(&page(3)).await.unwrap().is_empty());
        assert_eq!(c.audit_count(&page(2)).await.unwrap(), 3);

        // Updates and deletes are refused by the database itself, not only by the API.
        let mut raw = backend.raw().await;
        let e = sqlx::query("DELETE FROM audit_log")
            .execute(&mut raw)
            .await
            .unwrap_err();
        assert!(e.to_string().contains("append-only"), "{e}");
        let e = sqlx::query("UPDATE audit_log SET decision = 'allow'")
            .execute(&mut raw)
            .await
            .unwrap_err();
        assert!(e.to_string().contains("append-only"), "{e}");
        if backend.name == "postgres" {
            // TRUNCATE skips row triggers; a statement trigger refuses it.
            let e = sqlx::query("TRUNCATE audit_log")
                .execute(&mut raw)
                .await
                .unwrap_err();
            assert!(e.to_string().contains("append-only"), "{e}");
        }
        assert_eq!(c.audit_count(&AuditFilter::default()).await.unwrap(), 3);
    }
}
