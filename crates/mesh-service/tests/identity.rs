//! Token authentication against a real catalog: the seam servers use.
#![allow(clippy::unwrap_used)]

use chrono::Duration;
use mesh_service::{AuditFilter, Caller, Mesh, ServiceError};

async fn mesh(dir: &std::path::Path) -> Mesh {
    mesh_service::init::init(dir).unwrap();
    let mesh = Mesh::open(dir).await.unwrap();
    assert!(mesh.bootstrap_admin("root").await.unwrap());
    assert!(!mesh.bootstrap_admin("someone-else").await.unwrap());
    mesh.add_principal(&Caller::new("root"), "ana", "user", &[], &[])
        .await
        .unwrap();
    mesh
}

#[tokio::test]
async fn live_tokens_authenticate_and_dead_ones_do_not() {
    let tmp = tempfile::tempdir().unwrap();
    let mesh = mesh(tmp.path()).await;
    let ana = Caller::new("ana");
    let (record, token) = mesh
        .create_token(&ana, "ana", Some(Duration::days(1)))
        .await
        .unwrap();
    assert_eq!(mesh.authenticate(&token).await.unwrap(), ana);

    // A wrong secret, an unknown id and garbage are all refused alike.
    let wrong = format!("mesh_{}_{}", record.id, "0".repeat(48));
    for bad in [wrong.as_str(), "mesh_ffffffffffff_00", "Bearer x"] {
        let e = mesh.authenticate(bad).await.unwrap_err();
        assert!(matches!(e, ServiceError::Unauthenticated), "{e}");
    }

    // Expired.
    let (_, expired) = mesh
        .create_token(&ana, "ana", Some(Duration::seconds(-1)))
        .await
        .unwrap();
    assert!(matches!(
        mesh.authenticate(&expired).await,
        Err(ServiceError::Unauthenticated)
    ));

    // Revoked.
    mesh.revoke_token(&ana, &record.id).await.unwrap();
    let e = mesh.authenticate(&token).await.unwrap_err();
    assert_eq!(
        e.to_string(),
        "authentication failed: the token is unknown, wrong, revoked or expired"
    );

    // The audit log says why each use was refused, and never holds a token.
    let uses: Vec<String> = mesh
        .audit(&AuditFilter::default())
        .await
        .unwrap()
        .into_iter()
        .filter(|e| e.action == "token.use")
        .map(|e| e.reason)
        .collect();
    assert_eq!(uses.len(), 3, "{uses:?}");
    assert!(uses[0].ends_with("wrong secret"), "{uses:?}");
    assert!(uses[1].ends_with("expired"), "{uses:?}");
    assert!(uses[2].ends_with("revoked"), "{uses:?}");
    let all = serde_json::to_string(&mesh.audit(&AuditFilter::default()).await.unwrap()).unwrap();
    let secret = token.rsplit('_').next().unwrap();
    assert!(!all.contains(secret));
}

#[tokio::test]
async fn an_expired_grant_stops_working_by_itself() {
    use mesh_catalog::{AccessRequest, Grant};
    let tmp = tempfile::tempdir().unwrap();
    let mesh = mesh(tmp.path()).await;
    mesh.deploy("root", false).await.unwrap();
    let (runs, _) = mesh
        .run(&[], &Default::default(), &mesh_pipeline::Silent)
        .await
        .unwrap();
    assert!(runs.iter().all(|r| r.error.is_none()));
    let ana = Caller::new("ana");
    let sql = "SELECT count(*) FROM example.greetings";
    assert!(mesh.query(&ana, sql).await.is_err());

    // A grant that ended a minute ago, recorded as an owner would.
    let request = mesh
        .access_request(&ana, "example/greetings", "study", Duration::days(1), false)
        .await
        .unwrap();
    let now = chrono::Utc::now();
    let expired = Grant {
        id: "grant-old".into(),
        request_id: Some(request.id.clone()),
        product: "example/greetings".into(),
        principal: "ana".into(),
        purpose: "study".into(),
        allows_pii: false,
        granted_by: "root".into(),
        granted_at: now - Duration::days(2),
        expires_at: now - Duration::minutes(1),
        revoked_at: None,
        revoked_by: None,
    };
    assert!(
        mesh.catalog
            .decide_request(&request.id, "approved", "root", None, Some(&expired))
            .await
            .unwrap()
    );
    let e = mesh.query(&ana, sql).await.unwrap_err();
    assert!(e.to_string().contains("access denied"), "{e}");
    // The same grant an hour longer is in force.
    let live: AccessRequest = mesh
        .access_request(&ana, "example/greetings", "study", Duration::days(1), false)
        .await
        .unwrap();
    let grant = mesh
        .access_decide(&Caller::new("root"), &live.id, true, None)
        .await
        .unwrap()
        .unwrap();
    assert!(grant.expires_at > now + Duration::hours(23));
    assert!(mesh.query(&ana, sql).await.is_ok());
}

#[tokio::test]
async fn a_policy_change_takes_effect_on_the_next_query_of_an_open_mesh() {
    let tmp = tempfile::tempdir().unwrap();
    let mesh = mesh(tmp.path()).await;
    mesh.deploy("root", false).await.unwrap();
    mesh.run(&[], &Default::default(), &mesh_pipeline::Silent)
        .await
        .unwrap();
    let root = Caller::new("root");
    let sql = "SELECT text FROM example.greetings WHERE id = 1";
    let first = mesh.policies().unwrap();
    let (_, rows) = mesh.query(&root, sql).await.unwrap().to_strings().unwrap();
    assert_eq!(rows, vec![vec!["Hello".to_string()]]);
    // Unchanged files: the parsed set is reused.
    assert!(std::sync::Arc::ptr_eq(&first, &mesh.policies().unwrap()));

    // The same open mesh (as a server holds it) sees a new domain policy.
    let dir = tmp.path().join("example/policies");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(
        dir.join("mask.rego"),
        "package mesh.domain.example\n\nimport rego.v1\n\nmasks[\"text\"] := \"null\" if true\n",
    )
    .unwrap();
    let (_, rows) = mesh.query(&root, sql).await.unwrap().to_strings().unwrap();
    assert_eq!(rows, vec![vec!["NULL".to_string()]]);
    assert!(!std::sync::Arc::ptr_eq(&first, &mesh.policies().unwrap()));
}
