//! Tables on S3-compatible object stores (`s3://bucket/prefix`,
//! docs/deployment.md).
//!
//! Delta commits go through the default log store, which writes each
//! commit file with `PutMode::Create`: on S3 that is a conditional PUT
//! (`If-None-Match: *`), so two writers of one version cannot both
//! succeed; the server must enforce it (Amazon S3, MinIO and s3s-fs do).
//! Credentials come from the standard AWS environment (`AWS_ACCESS_KEY_ID`,
//! `AWS_SECRET_ACCESS_KEY`, `AWS_SESSION_TOKEN`), else the shared files'
//! profile ([`crate::aws_files`]), else web identity, the container or
//! instance metadata; the endpoint, region and addressing style from the
//! mesh's [`S3Settings`] over the `AWS_*` environment over the profile.

use std::sync::{Arc, Once, OnceLock, RwLock};

use deltalake::DeltaResult;
use deltalake::logstore::{
    LogStore, LogStoreFactory, ObjectStoreFactory, ObjectStoreRef, StorageConfig, default_logstore,
    logstore_factories, object_store_factories,
};
use object_store::aws::{AmazonS3Builder, AmazonS3ConfigKey, S3ConditionalPut};
use object_store::path::Path as ObjectPath;
use url::Url;

use crate::error::{Result, StorageError};

/// Where and how to reach the S3 server (`s3:` in mesh.yaml).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct S3Settings {
    /// The server's URL, for a server other than Amazon S3.
    pub endpoint: Option<String>,
    pub region: Option<String>,
    /// Path-style requests (`endpoint/bucket/key`), as most servers other
    /// than Amazon S3 want.
    pub path_style: bool,
    /// Allows an `http://` endpoint (a server on loopback or a private
    /// network).
    pub allow_http: bool,
}

static SETTINGS: RwLock<Option<S3Settings>> = RwLock::new(None);

/// Sets how this process reaches S3 and makes `s3://` locations usable.
pub fn configure(settings: S3Settings) {
    if let Ok(mut s) = SETTINGS.write() {
        *s = Some(settings);
    }
    register();
}

/// Makes `s3://` table locations usable by the Delta layer (once).
pub fn register() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        let scheme = Url::parse("s3://").unwrap_or_else(|_| unreachable!("a valid URL"));
        object_store_factories().insert(scheme.clone(), Arc::new(S3Factory));
        logstore_factories().insert(scheme, Arc::new(S3LogStores));
    });
}

/// The store at the root of `url`'s bucket, and the path `url` names in it.
pub fn store(url: &Url, options: &[(String, String)]) -> Result<(ObjectStoreRef, ObjectPath)> {
    let invalid = |detail: String| StorageError::InvalidLocation {
        location: url.to_string(),
        detail,
    };
    let mut builder = AmazonS3Builder::from_env().with_url(url.as_str());
    if let Some(profile) = shared_profile()? {
        if let (Some(id), Some(secret)) = (&profile.access_key_id, &profile.secret_access_key) {
            builder = builder
                .with_access_key_id(id)
                .with_secret_access_key(secret);
            if let Some(token) = &profile.session_token {
                builder = builder.with_token(token);
            }
        }
        let region_in_env = ["AWS_REGION", "AWS_DEFAULT_REGION"]
            .iter()
            .any(|k| std::env::var_os(k).is_some());
        if let (Some(region), false) = (&profile.region, region_in_env) {
            builder = builder.with_region(region);
        }
    }
    let settings = SETTINGS
        .read()
        .ok()
        .and_then(|s| s.clone())
        .unwrap_or_default();
    if let Some(endpoint) = &settings.endpoint {
        builder = builder.with_endpoint(endpoint);
    }
    if let Some(region) = &settings.region {
        builder = builder.with_region(region);
    }
    if settings.path_style {
        builder = builder.with_virtual_hosted_style_request(false);
    }
    if settings.allow_http {
        builder = builder.with_allow_http(true);
    }
    for (key, value) in options {
        if let Ok(key) = key.to_ascii_lowercase().parse::<AmazonS3ConfigKey>() {
            builder = builder.with_config(key, value);
        }
    }
    let s3 = builder
        .with_conditional_put(S3ConditionalPut::ETagMatch)
        .build()
        .map_err(|e| invalid(e.to_string()))?;
    let path = ObjectPath::from_url_path(url.path()).map_err(|e| invalid(e.to_string()))?;
    Ok((Arc::new(s3), path))
}

/// The shared files' profile, read once per process.
fn shared_profile() -> Result<Option<crate::aws_files::Profile>> {
    static PROFILE: OnceLock<std::result::Result<Option<crate::aws_files::Profile>, String>> =
        OnceLock::new();
    PROFILE
        .get_or_init(|| {
            crate::aws_files::profile(|k| std::env::var(k).ok()).map_err(|e| match e {
                StorageError::Credentials { detail } => detail,
                other => other.to_string(),
            })
        })
        .clone()
        .map_err(|detail| StorageError::Credentials { detail })
}

struct S3Factory;

impl ObjectStoreFactory for S3Factory {
    fn parse_url_opts(
        &self,
        url: &Url,
        config: &StorageConfig,
    ) -> DeltaResult<(ObjectStoreRef, ObjectPath)> {
        let options: Vec<(String, String)> = config
            .raw
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        store(url, &options).map_err(|e| deltalake::DeltaTableError::Generic(e.to_string()))
    }
}

struct S3LogStores;

impl LogStoreFactory for S3LogStores {
    fn with_options(
        &self,
        prefixed_store: ObjectStoreRef,
        root_store: ObjectStoreRef,
        location: &Url,
        options: &StorageConfig,
    ) -> DeltaResult<Arc<dyn LogStore>> {
        Ok(default_logstore(
            prefixed_store,
            root_store,
            location,
            options,
        ))
    }
}

/// Makes `location`'s bucket readable by DataFusion in `runtime` when it
/// is on S3 (once per bucket); other locations need nothing.
pub fn register_store(
    runtime: &datafusion::execution::runtime_env::RuntimeEnv,
    location: &Url,
) -> Result<()> {
    if location.scheme() != "s3" {
        return Ok(());
    }
    let bucket = datafusion::execution::object_store::ObjectStoreUrl::parse(
        &location[..url::Position::BeforePath],
    )
    .map_err(|e| StorageError::InvalidLocation {
        location: location.to_string(),
        detail: e.to_string(),
    })?;
    if runtime.object_store(&bucket).is_err() {
        let (store, _) = store(location, &[])?;
        runtime.register_object_store(bucket.as_ref(), store);
    }
    Ok(())
}
