//! A thin async client for the Hearth worker's HTTP API (v1; `docs/openapi.json`).
//!
//! It depends on nothing of the worker but the wire format, as every controller should.
//!
//! ```no_run
//! # async fn demo() -> Result<(), hearth_client::Error> {
//! let hearth = hearth_client::Client::new("http://127.0.0.1:8700", None);
//! let session = hearth.create_session(None).await?;
//! hearth
//!     .call_tool(&session.id, "write_file", serde_json::json!({
//!         "file_path": "/workspace/main.py",
//!         "content": "print('hi')\n",
//!     }))
//!     .await?;
//! # Ok(()) }
//! ```

use reqwest::{Method, RequestBuilder, Response, StatusCode};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

/// What can go wrong talking to a worker.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The worker answered with its JSON error.
    #[error("{status} {code}: {message}")]
    Api {
        status: u16,
        code: String,
        message: String,
        /// What the worker adds to act on the error (e.g. a merge conflict's files).
        details: Option<Value>,
    },
    /// The request did not complete (connection refused, timeout, …).
    #[error("request failed: {0}")]
    Transport(#[from] reqwest::Error),
    /// The worker answered something that is not the documented format.
    #[error("unexpected answer ({status}): {body}")]
    Unexpected { status: u16, body: String },
}

impl Error {
    /// The worker's error code, when it sent one.
    pub fn code(&self) -> Option<&str> {
        match self {
            Error::Api { code, .. } => Some(code),
            _ => None,
        }
    }

    /// The error's `details`, when the worker sent some.
    pub fn details(&self) -> Option<&Value> {
        match self {
            Error::Api { details, .. } => details.as_ref(),
            _ => None,
        }
    }

    /// The HTTP status, when there was an answer.
    pub fn status(&self) -> Option<u16> {
        match self {
            Error::Api { status, .. } | Error::Unexpected { status, .. } => Some(*status),
            Error::Transport(e) => e.status().map(|s| s.as_u16()),
        }
    }
}

/// A session as the worker describes it.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
pub struct Session {
    pub id: String,
    pub created_at: String,
    /// The session's view: `[{"path": "/workspace", "writable": true}, …]`.
    pub mounts: Vec<MountInfo>,
    /// Tool calls served so far.
    #[serde(default)]
    pub tool_calls: u64,
    /// What the session's files take and may take (workspace and /tmp together); `None` on a
    /// worker with quotas off.
    #[serde(default)]
    pub quota: Option<QuotaUsage>,
    /// The session's own token, which opens this session's routes and nothing else: in the
    /// create answer only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token: Option<String>,
}

/// A session's usage against its quota.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
pub struct QuotaUsage {
    pub bytes_used: u64,
    pub bytes_limit: u64,
    pub inodes_used: u64,
    pub inodes_limit: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
pub struct MountInfo {
    pub path: String,
    pub writable: bool,
}

/// A tool as `GET /v1/tools` lists it.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
pub struct Tool {
    pub name: String,
    pub description: String,
    pub input_schema: Value,
    pub read_only: bool,
}

/// One file's outcome in a bulk upload or download (deepagents' `FileUploadResponse` /
/// `FileDownloadResponse`): `error` is `file_not_found`, `permission_denied`, `is_directory`,
/// `invalid_path` or another code.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
pub struct FileResult {
    pub path: String,
    /// Base64 content (downloads only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub content: Option<String>,
    pub error: Option<String>,
}

/// A connection to one worker. Cheap to clone.
#[derive(Debug, Clone)]
pub struct Client {
    http: reqwest::Client,
    base: String,
    token: Option<String>,
}

impl Client {
    /// `base` is the worker's URL (`http://127.0.0.1:8700`); `token` its bearer token, if any.
    pub fn new(base: &str, token: Option<String>) -> Self {
        Self {
            http: reqwest::Client::new(),
            base: base.trim_end_matches('/').to_owned(),
            token,
        }
    }

    fn request(&self, method: Method, path: &str) -> RequestBuilder {
        let builder = self.http.request(method, format!("{}{path}", self.base));
        match &self.token {
            Some(token) => builder.bearer_auth(token),
            None => builder,
        }
    }

    /// `GET /v1/health` (no token needed).
    pub async fn health(&self) -> Result<Value, Error> {
        json_of(self.request(Method::GET, "/v1/health").send().await?).await
    }

    /// `GET /v1/tools`.
    pub async fn tools(&self) -> Result<Vec<Tool>, Error> {
        decode(json_of(self.request(Method::GET, "/v1/tools").send().await?).await?)
    }

    /// `POST /v1/sessions`, with a caller-chosen id or a generated one.
    pub async fn create_session(&self, id: Option<&str>) -> Result<Session, Error> {
        let body = match id {
            Some(id) => json!({ "id": id }),
            None => json!({}),
        };
        decode(
            json_of(
                self.request(Method::POST, "/v1/sessions")
                    .json(&body)
                    .send()
                    .await?,
            )
            .await?,
        )
    }

    /// `POST /v1/sessions` with a full request body (`{"id"?, "git"?: {"url", "branch"?}}`).
    pub async fn create_session_with(&self, request: Value) -> Result<Session, Error> {
        let response = self
            .request(Method::POST, "/v1/sessions")
            .json(&request)
            .send()
            .await?;
        decode(json_of(response).await?)
    }

    /// `POST /v1/sessions/{id}/git/{operation}` (`commit`, `push`, `pull`, `merge/continue`,
    /// `merge/abort`, `reset`, `remotes`).
    pub async fn git(
        &self,
        session: &str,
        operation: &str,
        request: Value,
    ) -> Result<Value, Error> {
        self.post_json(&format!("/v1/sessions/{session}/git/{operation}"), &request)
            .await
    }

    async fn post_json(&self, path: &str, body: &Value) -> Result<Value, Error> {
        json_of(self.request(Method::POST, path).json(body).send().await?).await
    }

    /// `GET /v1/sessions/{id}/git/{view}` (`status`, `log`, `diff`) with its query parameters.
    pub async fn git_view(
        &self,
        session: &str,
        view: &str,
        query: &[(&str, &str)],
    ) -> Result<Value, Error> {
        let path = format!("/v1/sessions/{session}/git/{view}");
        json_of(self.request(Method::GET, &path).query(query).send().await?).await
    }

    /// `GET /v1/sessions`.
    pub async fn list_sessions(&self) -> Result<Vec<Session>, Error> {
        let answer = json_of(self.request(Method::GET, "/v1/sessions").send().await?).await?;
        decode(answer.get("sessions").cloned().unwrap_or(Value::Null))
    }

    /// `GET /v1/sessions/{id}`.
    pub async fn session(&self, id: &str) -> Result<Session, Error> {
        decode(
            json_of(
                self.request(Method::GET, &format!("/v1/sessions/{id}"))
                    .send()
                    .await?,
            )
            .await?,
        )
    }

    /// `DELETE /v1/sessions/{id}`.
    pub async fn delete_session(&self, id: &str) -> Result<(), Error> {
        json_of(
            self.request(Method::DELETE, &format!("/v1/sessions/{id}"))
                .send()
                .await?,
        )
        .await?;
        Ok(())
    }

    /// `POST /v1/sessions/{id}/token` (the operator's token only): the session's new token;
    /// the old one stops working.
    pub async fn replace_token(&self, id: &str) -> Result<String, Error> {
        let answer = self
            .post_json(&format!("/v1/sessions/{id}/token"), &json!({}))
            .await?;
        decode(answer.get("token").cloned().unwrap_or(Value::Null))
    }

    /// `GET /v1/sessions/{id}/exports`: the exports stored for the session, oldest first.
    pub async fn list_exports(&self, id: &str) -> Result<Vec<Value>, Error> {
        let path = format!("/v1/sessions/{id}/exports");
        let answer = json_of(self.request(Method::GET, &path).send().await?).await?;
        decode(answer.get("exports").cloned().unwrap_or(Value::Null))
    }

    /// `GET /v1/sessions/{id}/exports/{name}`: a stored export's `.tar.zst`.
    pub async fn download_export(&self, id: &str, name: &str) -> Result<Vec<u8>, Error> {
        let path = format!("/v1/sessions/{id}/exports/{name}");
        let response = self.request(Method::GET, &path).send().await?;
        if response.status().is_success() {
            Ok(response.bytes().await?.to_vec())
        } else {
            Err(api_error(response).await)
        }
    }

    /// `POST /v1/sessions/{id}/tools/{name}`: the tool's `result`.
    pub async fn call_tool(&self, session: &str, tool: &str, args: Value) -> Result<Value, Error> {
        let path = format!("/v1/sessions/{session}/tools/{tool}");
        let mut answer =
            json_of(self.request(Method::POST, &path).json(&args).send().await?).await?;
        Ok(answer
            .get_mut("result")
            .map(Value::take)
            .unwrap_or(Value::Null))
    }

    /// `POST /v1/sessions/{id}/exec`: `request` is `{"command"}`, `{"argv"}`,
    /// `{"script", "args"}` or `{"call", "kwargs"}`, plus `timeout_s`, `stdin`, `env`.
    pub async fn exec(&self, session: &str, request: Value) -> Result<Value, Error> {
        self.post_json(&format!("/v1/sessions/{session}/exec"), &request)
            .await
    }

    /// `POST /v1/sessions/{id}/exec/stream`: calls `on_line` with each NDJSON line as it
    /// arrives; returns the final `{"event": "exit", …}` line.
    pub async fn exec_stream(
        &self,
        session: &str,
        request: Value,
        mut on_line: impl FnMut(&Value),
    ) -> Result<Value, Error> {
        let path = format!("/v1/sessions/{session}/exec/stream");
        let mut response = self
            .request(Method::POST, &path)
            .json(&request)
            .send()
            .await?;
        if !response.status().is_success() {
            return Err(api_error(response).await);
        }
        let mut buffer = Vec::new();
        let mut last = Value::Null;
        while let Some(chunk) = response.chunk().await? {
            buffer.extend_from_slice(&chunk);
            while let Some(end) = buffer.iter().position(|&b| b == b'\n') {
                let line: Vec<u8> = buffer.drain(..=end).collect();
                let value: Value =
                    serde_json::from_slice(&line).map_err(|_| Error::Unexpected {
                        status: 200,
                        body: String::from_utf8_lossy(&line).into_owned(),
                    })?;
                on_line(&value);
                last = value;
            }
        }
        Ok(last)
    }

    /// `PUT /v1/sessions/{id}/files/{path}`: `view_path` is absolute (`/workspace/data.bin`).
    pub async fn put_file(
        &self,
        session: &str,
        view_path: &str,
        bytes: Vec<u8>,
    ) -> Result<Value, Error> {
        let path = format!(
            "/v1/sessions/{session}/files/{}",
            view_path.trim_start_matches('/')
        );
        json_of(self.request(Method::PUT, &path).body(bytes).send().await?).await
    }

    /// `GET /v1/sessions/{id}/files/{path}`: the raw bytes.
    pub async fn get_file(&self, session: &str, view_path: &str) -> Result<Vec<u8>, Error> {
        let path = format!(
            "/v1/sessions/{session}/files/{}",
            view_path.trim_start_matches('/')
        );
        let response = self.request(Method::GET, &path).send().await?;
        if response.status().is_success() {
            Ok(response.bytes().await?.to_vec())
        } else {
            Err(api_error(response).await)
        }
    }

    /// `POST /v1/sessions/{id}/upload`: `(view path, base64 content)` pairs.
    pub async fn upload(
        &self,
        session: &str,
        files: &[(&str, String)],
    ) -> Result<Vec<FileResult>, Error> {
        let files: Vec<Value> = files
            .iter()
            .map(|(p, c)| json!({ "path": p, "content": c }))
            .collect();
        let path = format!("/v1/sessions/{session}/upload");
        let answer = json_of(
            self.request(Method::POST, &path)
                .json(&json!({ "files": files }))
                .send()
                .await?,
        )
        .await?;
        decode(answer.get("files").cloned().unwrap_or(Value::Null))
    }

    /// `POST /v1/sessions/{id}/download`: base64 contents, in the order asked.
    pub async fn download(&self, session: &str, paths: &[&str]) -> Result<Vec<FileResult>, Error> {
        let path = format!("/v1/sessions/{session}/download");
        let answer = json_of(
            self.request(Method::POST, &path)
                .json(&json!({ "paths": paths }))
                .send()
                .await?,
        )
        .await?;
        decode(answer.get("files").cloned().unwrap_or(Value::Null))
    }

    /// `GET /metrics` (Prometheus text).
    pub async fn metrics(&self) -> Result<String, Error> {
        let response = self.request(Method::GET, "/metrics").send().await?;
        if response.status().is_success() {
            Ok(response.text().await?)
        } else {
            Err(api_error(response).await)
        }
    }
}

async fn json_of(response: Response) -> Result<Value, Error> {
    if !response.status().is_success() {
        return Err(api_error(response).await);
    }
    let status = response.status().as_u16();
    let body = response.text().await?;
    serde_json::from_str(&body).map_err(|_| Error::Unexpected { status, body })
}

async fn api_error(response: Response) -> Error {
    let status = response.status();
    let body = response.text().await.unwrap_or_default();
    #[derive(Deserialize)]
    struct Envelope {
        error: Detail,
    }
    #[derive(Deserialize)]
    struct Detail {
        code: String,
        message: String,
        details: Option<Value>,
    }
    match serde_json::from_str::<Envelope>(&body) {
        Ok(e) => Error::Api {
            status: status.as_u16(),
            code: e.error.code,
            message: e.error.message,
            details: e.error.details,
        },
        Err(_) => Error::Unexpected {
            status: status.as_u16(),
            body,
        },
    }
}

fn decode<T: for<'de> Deserialize<'de>>(value: Value) -> Result<T, Error> {
    let body = value.to_string();
    serde_json::from_value(value).map_err(|_| Error::Unexpected {
        status: StatusCode::OK.as_u16(),
        body,
    })
}
