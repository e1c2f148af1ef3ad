//! A thin async client for the Hearth worker's HTTP API (v1; `docs/openapi.json`).
//!
//! It depends on nothing of the worker but the wire format (`hearth-wire`, the contract's types,
//! re-exported as [`wire`]), as every controller should. Answers come back as those types; a
//! tool's result is the tool's own JSON.
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

use reqwest::{Method, RequestBuilder, Response};
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::Value;

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

pub use hearth_wire as wire;

mod processes;
use hearth_wire::exec::{ExecRequest, ExecResult, RunEnd, StreamLine};
use hearth_wire::files::{DownloadOutcome, Downloaded, FileWritten, UploadOutcome, Uploaded};
use hearth_wire::git::{
    CommitOutcome, CommitRequest, ContinueRequest, Diff, DiffQuery, HeadMoved, LogPage, LogQuery,
    MergeContinued, MergeOutcome, PushOutcome, RemoteRequest, Remotes, ResetRequest,
    SetRemoteRequest, Status,
};
use hearth_wire::health::Health;
use hearth_wire::sessions::{
    CreateSession, CreatedSession, Deleted, SessionInfo, SessionList, SessionToken,
};
use hearth_wire::snapshots::{
    ExportInfo, ExportList, ExportStored, GcReport, GcRequest, SnapshotInfo, SnapshotList,
};
use hearth_wire::tools::{ToolAnswer, ToolDetail, ToolInfo, ToolInstalled, ToolRemoved};

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

    async fn get<T: DeserializeOwned>(&self, path: &str) -> Result<T, Error> {
        answer(self.request(Method::GET, path).send().await?).await
    }

    async fn post<T: DeserializeOwned>(
        &self,
        path: &str,
        body: &impl Serialize,
    ) -> Result<T, Error> {
        answer(self.request(Method::POST, path).json(body).send().await?).await
    }

    async fn bytes(&self, path: &str) -> Result<Vec<u8>, Error> {
        let response = self.request(Method::GET, path).send().await?;
        if !response.status().is_success() {
            return Err(api_error(response).await);
        }
        Ok(response.bytes().await?.to_vec())
    }

    /// `GET /v1/health` (no token needed).
    pub async fn health(&self) -> Result<Health, Error> {
        self.get("/v1/health").await
    }

    /// `GET /v1/ready` (no token needed): an error `draining` (503) once the worker stops.
    pub async fn ready(&self) -> Result<hearth_wire::health::Ready, Error> {
        self.get("/v1/ready").await
    }

    /// `GET /v1/tools`.
    pub async fn tools(&self) -> Result<Vec<ToolInfo>, Error> {
        self.get("/v1/tools").await
    }

    /// `GET /v1/tools/{name}`: a tool's version, origin, policy and limits.
    pub async fn tool(&self, name: &str) -> Result<ToolDetail, Error> {
        self.get(&format!("/v1/tools/{name}")).await
    }

    /// `PUT /v1/tools/{name}` (the operator's token): installs `component` as tool `name`, or
    /// upgrades it, with `manifest` (`tool.toml`'s text) when given.
    pub async fn install_tool(
        &self,
        name: &str,
        component: Vec<u8>,
        manifest: Option<String>,
    ) -> Result<ToolInstalled, Error> {
        let request = self.request(Method::PUT, &format!("/v1/tools/{name}"));
        let request = match manifest {
            None => request
                .header(reqwest::header::CONTENT_TYPE, "application/wasm")
                .body(component),
            Some(manifest) => {
                let component =
                    reqwest::multipart::Part::bytes(component).mime_str("application/wasm")?;
                let form = reqwest::multipart::Form::new()
                    .part("component", component)
                    .text("manifest", manifest);
                request.multipart(form)
            }
        };
        answer(request.send().await?).await
    }

    /// `DELETE /v1/tools/{name}` (the operator's token): removes an installed tool.
    pub async fn remove_tool(&self, name: &str) -> Result<ToolRemoved, Error> {
        let path = format!("/v1/tools/{name}");
        answer(self.request(Method::DELETE, &path).send().await?).await
    }

    /// `POST /v1/sessions`, with a caller-chosen id or a generated one. The answer holds the
    /// session's own token, said once.
    pub async fn create_session(&self, id: Option<&str>) -> Result<CreatedSession, Error> {
        let request = CreateSession {
            id: id.map(str::to_owned),
            ..CreateSession::default()
        };
        self.create_session_with(&request).await
    }

    /// `POST /v1/sessions` with a full request (a clone, a restore, a quota).
    pub async fn create_session_with(
        &self,
        request: &CreateSession,
    ) -> Result<CreatedSession, Error> {
        self.post("/v1/sessions", request).await
    }

    /// `GET /v1/sessions`.
    pub async fn list_sessions(&self) -> Result<Vec<SessionInfo>, Error> {
        let list: SessionList = self.get("/v1/sessions").await?;
        Ok(list.sessions)
    }

    /// `GET /v1/sessions/{id}`.
    pub async fn session(&self, id: &str) -> Result<SessionInfo, Error> {
        self.get(&format!("/v1/sessions/{id}")).await
    }

    /// `DELETE /v1/sessions/{id}`.
    pub async fn delete_session(&self, id: &str) -> Result<Deleted, Error> {
        let path = format!("/v1/sessions/{id}");
        answer(self.request(Method::DELETE, &path).send().await?).await
    }

    /// `POST /v1/sessions/{id}/token` (the operator's token only): the session's new token;
    /// the old one stops working.
    pub async fn replace_token(&self, id: &str) -> Result<String, Error> {
        let path = format!("/v1/sessions/{id}/token");
        let answer: SessionToken = self.post(&path, &serde_json::json!({})).await?;
        Ok(answer.token)
    }

    /// `POST /v1/sessions/{id}/tools/{name}`: the tool's `result`.
    pub async fn call_tool(&self, session: &str, tool: &str, args: Value) -> Result<Value, Error> {
        let path = format!("/v1/sessions/{session}/tools/{tool}");
        let answer: ToolAnswer = self.post(&path, &args).await?;
        Ok(answer.result)
    }

    /// `POST /v1/sessions/{id}/exec`.
    pub async fn exec(&self, session: &str, request: &ExecRequest) -> Result<ExecResult, Error> {
        self.post(&format!("/v1/sessions/{session}/exec"), request)
            .await
    }

    /// `POST /v1/sessions/{id}/exec/stream`: calls `on_line` with each NDJSON line as it
    /// arrives; returns the last line (the run's result, or why there is none).
    pub async fn exec_stream(
        &self,
        session: &str,
        request: &ExecRequest,
        mut on_line: impl FnMut(&StreamLine),
    ) -> Result<RunEnd, Error> {
        let path = format!("/v1/sessions/{session}/exec/stream");
        let mut response = self
            .request(Method::POST, &path)
            .json(request)
            .send()
            .await?;
        if !response.status().is_success() {
            return Err(api_error(response).await);
        }
        let mut buffer = Vec::new();
        let mut last = None;
        while let Some(chunk) = response.chunk().await? {
            buffer.extend_from_slice(&chunk);
            while let Some(end) = buffer.iter().position(|&b| b == b'\n') {
                let line: Vec<u8> = buffer.drain(..=end).collect();
                let unexpected = || Error::Unexpected {
                    status: 200,
                    body: String::from_utf8_lossy(&line).into_owned(),
                };
                let value: StreamLine = serde_json::from_slice(&line).map_err(|_| unexpected())?;
                on_line(&value);
                last = Some(value);
            }
        }
        match last {
            Some(StreamLine::End(end)) => Ok(end),
            _ => Err(Error::Unexpected {
                status: 200,
                body: "the stream ended without its last line".to_owned(),
            }),
        }
    }

    /// `PUT /v1/sessions/{id}/files/{path}`: `view_path` is absolute (`/workspace/data.bin`).
    pub async fn put_file(
        &self,
        session: &str,
        view_path: &str,
        bytes: Vec<u8>,
    ) -> Result<FileWritten, Error> {
        let path = format!(
            "/v1/sessions/{session}/files/{}",
            view_path.trim_start_matches('/')
        );
        answer(self.request(Method::PUT, &path).body(bytes).send().await?).await
    }

    /// `GET /v1/sessions/{id}/files/{path}`: the raw bytes.
    pub async fn get_file(&self, session: &str, view_path: &str) -> Result<Vec<u8>, Error> {
        let view_path = view_path.trim_start_matches('/');
        self.bytes(&format!("/v1/sessions/{session}/files/{view_path}"))
            .await
    }

    /// `POST /v1/sessions/{id}/upload`: `(view path, base64 content)` pairs.
    pub async fn upload(
        &self,
        session: &str,
        files: &[(&str, String)],
    ) -> Result<Vec<UploadOutcome>, Error> {
        let files = files
            .iter()
            .map(|(path, content)| hearth_wire::files::UploadFile {
                path: (*path).to_owned(),
                content: content.clone(),
            })
            .collect();
        let request = hearth_wire::files::UploadRequest { files };
        let path = format!("/v1/sessions/{session}/upload");
        let answer: Uploaded = self.post(&path, &request).await?;
        Ok(answer.files)
    }

    /// `POST /v1/sessions/{id}/download`: base64 contents, in the order asked.
    pub async fn download(
        &self,
        session: &str,
        paths: &[&str],
    ) -> Result<Vec<DownloadOutcome>, Error> {
        let request = hearth_wire::files::DownloadRequest {
            paths: paths.iter().map(|p| (*p).to_owned()).collect(),
        };
        let path = format!("/v1/sessions/{session}/download");
        let answer: Downloaded = self.post(&path, &request).await?;
        Ok(answer.files)
    }

    // -----------------------------------------------------------------------------------------
    // git

    fn git_path(session: &str, operation: &str) -> String {
        format!("/v1/sessions/{session}/git/{operation}")
    }

    /// `GET …/git/status`.
    pub async fn git_status(&self, session: &str) -> Result<Status, Error> {
        self.get(&Self::git_path(session, "status")).await
    }

    /// `GET …/git/log`, a page at a time.
    pub async fn git_log(&self, session: &str, query: &LogQuery) -> Result<LogPage, Error> {
        let path = Self::git_path(session, "log");
        answer(self.request(Method::GET, &path).query(query).send().await?).await
    }

    /// `GET …/git/diff`.
    pub async fn git_diff(&self, session: &str, query: &DiffQuery) -> Result<Diff, Error> {
        let path = Self::git_path(session, "diff");
        answer(self.request(Method::GET, &path).query(query).send().await?).await
    }

    /// `POST …/git/commit`.
    pub async fn git_commit(
        &self,
        session: &str,
        request: &CommitRequest,
    ) -> Result<CommitOutcome, Error> {
        self.post(&Self::git_path(session, "commit"), request).await
    }

    /// `POST …/git/push` (a conflict is `Error::Api` `merge_conflict`).
    pub async fn git_push(
        &self,
        session: &str,
        request: &RemoteRequest,
    ) -> Result<PushOutcome, Error> {
        self.post(&Self::git_path(session, "push"), request).await
    }

    /// `POST …/git/pull` (a conflict is `Error::Api` `merge_conflict`).
    pub async fn git_pull(
        &self,
        session: &str,
        request: &RemoteRequest,
    ) -> Result<MergeOutcome, Error> {
        self.post(&Self::git_path(session, "pull"), request).await
    }

    /// `POST …/git/merge/continue`.
    pub async fn git_merge_continue(
        &self,
        session: &str,
        request: &ContinueRequest,
    ) -> Result<MergeContinued, Error> {
        let path = Self::git_path(session, "merge/continue");
        self.post(&path, request).await
    }

    /// `POST …/git/merge/abort`.
    pub async fn git_merge_abort(&self, session: &str) -> Result<HeadMoved, Error> {
        let path = Self::git_path(session, "merge/abort");
        self.post(&path, &serde_json::json!({})).await
    }

    /// `POST …/git/reset`.
    pub async fn git_reset(
        &self,
        session: &str,
        request: &ResetRequest,
    ) -> Result<HeadMoved, Error> {
        self.post(&Self::git_path(session, "reset"), request).await
    }

    /// `POST …/git/remotes`.
    pub async fn git_set_remote(
        &self,
        session: &str,
        request: &SetRemoteRequest,
    ) -> Result<Remotes, Error> {
        self.post(&Self::git_path(session, "remotes"), request)
            .await
    }

    // -----------------------------------------------------------------------------------------
    // Snapshots and exports

    /// `POST /v1/sessions/{id}/snapshots`: answers once the snapshot is durable.
    pub async fn take_snapshot(&self, session: &str) -> Result<SnapshotInfo, Error> {
        let path = format!("/v1/sessions/{session}/snapshots");
        self.post(&path, &serde_json::json!({})).await
    }

    /// `GET /v1/sessions/{id}/snapshots`.
    pub async fn list_snapshots(&self, session: &str) -> Result<Vec<SnapshotInfo>, Error> {
        let list: SnapshotList = self
            .get(&format!("/v1/sessions/{session}/snapshots"))
            .await?;
        Ok(list.snapshots)
    }

    /// `GET /v1/sessions/{id}/export`: the whole session as a `.tar.zst`.
    pub async fn export(&self, session: &str) -> Result<Vec<u8>, Error> {
        self.bytes(&format!("/v1/sessions/{session}/export")).await
    }

    /// `POST /v1/sessions/{id}/export`: the same archive, into the store.
    pub async fn export_to_store(&self, session: &str) -> Result<ExportStored, Error> {
        let path = format!("/v1/sessions/{session}/export");
        self.post(&path, &serde_json::json!({})).await
    }

    /// `GET /v1/sessions/{id}/exports`: the exports stored for the session, oldest first.
    pub async fn list_exports(&self, id: &str) -> Result<Vec<ExportInfo>, Error> {
        let list: ExportList = self.get(&format!("/v1/sessions/{id}/exports")).await?;
        Ok(list.exports)
    }

    /// `GET /v1/sessions/{id}/exports/{name}`: a stored export's `.tar.zst`.
    pub async fn download_export(&self, id: &str, name: &str) -> Result<Vec<u8>, Error> {
        self.bytes(&format!("/v1/sessions/{id}/exports/{name}"))
            .await
    }

    /// `POST /v1/snapshots/gc` (the operator's token).
    pub async fn collect_garbage(&self, request: &GcRequest) -> Result<GcReport, Error> {
        self.post("/v1/snapshots/gc", request).await
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

/// The answer as `T`, or the worker's error.
async fn answer<T: DeserializeOwned>(response: Response) -> Result<T, Error> {
    if !response.status().is_success() {
        return Err(api_error(response).await);
    }
    let status = response.status().as_u16();
    let body = response.text().await?;
    serde_json::from_str(&body).map_err(|_| Error::Unexpected { status, body })
}

async fn api_error(response: Response) -> Error {
    let status = response.status().as_u16();
    let body = response.text().await.unwrap_or_default();
    // Read loosely: a newer worker may answer a code this client does not know.
    #[derive(serde::Deserialize)]
    struct Envelope {
        error: Detail,
    }
    #[derive(serde::Deserialize)]
    struct Detail {
        code: String,
        message: String,
        details: Option<Value>,
    }
    match serde_json::from_str::<Envelope>(&body) {
        Ok(e) => Error::Api {
            status,
            code: e.error.code,
            message: e.error.message,
            details: e.error.details,
        },
        Err(_) => Error::Unexpected { status, body },
    }
}
