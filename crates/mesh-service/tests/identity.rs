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
