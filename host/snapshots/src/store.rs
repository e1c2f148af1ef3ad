//! Opening the object store a worker's snapshots go to.
//!
//! A local directory under the data dir is the default (no service needed). `s3://`, `gs://` and
//! `az://` URLs get the matching `object_store` client, configured only by what the operator
//! writes (`options`, the keys of `object_store`'s builders, e.g. `aws_endpoint`,
//! `aws_allow_http`, `aws_virtual_hosted_style_request`) and, only if asked
//! (`credentials_from_env`), by the standard environment variables. Requests retry with backoff
//! for a bounded time, so a store that is down fails a snapshot in seconds, not minutes.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use object_store::local::LocalFileSystem;
use object_store::prefix::PrefixStore;
use object_store::{BackoffConfig, ObjectStore, RetryConfig};

use crate::SnapshotError;

/// Where snapshots go, as the operator configures it.
#[derive(Debug, Clone, Default)]
pub struct StoreConfig {
    /// `file:///abs/dir`, `s3://bucket/prefix`, `gs://bucket/prefix`, `az://container/prefix`;
    /// none: `<data-dir>/store`.
    pub url: Option<String>,
    pub options: BTreeMap<String, String>,
    /// Let the client read `AWS_*` / `GOOGLE_*` / `AZURE_*` variables (and, for AWS without
    /// keys, the instance metadata service). Off unless asked for.
    pub credentials_from_env: bool,
    /// Retries of one request, and how long they may take in all.
    pub max_retries: usize,
    pub retry_timeout: Duration,
}

/// Opens the store; `data_dir` holds the default local one.
pub fn open(config: &StoreConfig, data_dir: &Path) -> Result<Arc<dyn ObjectStore>, SnapshotError> {
    let bad = |why: String| SnapshotError::Config(why);
    let Some(url) = &config.url else {
        let dir = data_dir.join("store");
        std::fs::create_dir_all(&dir).map_err(|e| bad(format!("{}: {e}", dir.display())))?;
        return local(&dir);
    };
    let parsed = url::Url::parse(url).map_err(|e| bad(format!("store URL `{url}`: {e}")))?;
    let retry = RetryConfig {
        backoff: BackoffConfig {
            init_backoff: Duration::from_millis(100),
            max_backoff: Duration::from_secs(2),
            base: 2.0,
        },
        max_retries: config.max_retries,
        retry_timeout: config.retry_timeout,
    };
    let prefix = parsed.path().trim_matches('/').to_owned();
    let option = |key: &String| bad(format!("store option `{key}` is not known"));
    // The three cloud builders share their shape but not a trait: configure each alike.
    macro_rules! cloud {
        ($builder:ty) => {{
            let mut builder = if config.credentials_from_env {
                <$builder>::from_env()
            } else {
                <$builder>::new()
            };
            builder = builder.with_url(url).with_retry(retry);
            for (key, value) in &config.options {
                builder = builder.with_config(key.parse().map_err(|_| option(key))?, value);
            }
            Arc::new(builder.build().map_err(|e| bad(e.to_string()))?)
        }};
    }
    let store: Arc<dyn ObjectStore> = match parsed.scheme() {
        "file" => {
            let dir = parsed
                .to_file_path()
                .map_err(|()| bad(format!("`{url}` is not a local directory")))?;
            std::fs::create_dir_all(&dir).map_err(|e| bad(format!("{}: {e}", dir.display())))?;
            return local(&dir);
        }
        "s3" | "s3a" => {
            check_options(config)?;
            cloud!(object_store::aws::AmazonS3Builder)
        }
        "gs" => cloud!(object_store::gcp::GoogleCloudStorageBuilder),
        "az" | "azure" | "abfs" | "abfss" => cloud!(object_store::azure::MicrosoftAzureBuilder),
        other => return Err(bad(format!("store scheme `{other}` is not supported"))),
    };
    Ok(if prefix.is_empty() {
        store
    } else {
        Arc::new(PrefixStore::new(store, prefix.as_str()))
    })
}

/// Proves the store works before the worker serves anything: writes, reads back and deletes a
/// small object under `hearth-probe/`. A store that is misconfigured (a wrong endpoint, keys, a
/// bucket that does not exist, `http://` without `aws_allow_http`) fails here, at start-up, with
/// the store's own words, not at the first snapshot.
pub async fn probe(store: &dyn ObjectStore) -> Result<(), SnapshotError> {
    use object_store::ObjectStoreExt;
    let path =
        object_store::path::Path::from(format!("hearth-probe/{}", uuid::Uuid::new_v4().simple()));
    let body = bytes::Bytes::from_static(b"hearth store probe");
    let failed = |step: &str, e: object_store::Error| {
        SnapshotError::Config(format!(
            "the store failed a probe ({step} of `{path}`): {e}"
        ))
    };
    store
        .put(&path, body.clone().into())
        .await
        .map_err(|e| failed("write", e))?;
    let read = store.get(&path).await.map_err(|e| failed("read", e))?;
    let read = read.bytes().await.map_err(|e| failed("read", e))?;
    let deleted = store.delete(&path).await.map_err(|e| failed("delete", e));
    if read != body {
        return Err(SnapshotError::Config(format!(
            "the store answered a probe's read of `{path}` with other bytes than were written"
        )));
    }
    deleted
}

/// What `open` checks before building a client: settings that build but cannot work.
fn check_options(config: &StoreConfig) -> Result<(), SnapshotError> {
    let endpoint = config
        .options
        .iter()
        .find(|(k, _)| matches!(k.as_str(), "aws_endpoint" | "endpoint" | "aws_endpoint_url"))
        .map(|(_, v)| v.as_str());
    let allow_http = config
        .options
        .iter()
        .find(|(k, _)| matches!(k.as_str(), "aws_allow_http" | "allow_http"))
        .is_some_and(|(_, v)| v.eq_ignore_ascii_case("true"));
    if endpoint.is_some_and(|e| e.starts_with("http://")) && !allow_http {
        return Err(SnapshotError::Config(
            "store_options: an `http://` endpoint needs `aws_allow_http = \"true\"` (or use \
             https://)"
                .into(),
        ));
    }
    Ok(())
}

fn local(dir: &Path) -> Result<Arc<dyn ObjectStore>, SnapshotError> {
    Ok(Arc::new(
        LocalFileSystem::new_with_prefix(dir).map_err(|e| SnapshotError::Config(e.to_string()))?,
    ))
}
