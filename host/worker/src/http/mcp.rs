//! MCP over streamable HTTP: `/v1/sessions/{id}/mcp` offers the session's tools to any MCP
//! client (rmcp's server, no macros: the tools are the registry's, found at run time).
//!
//! `tools/list` is the registry (`GET /v1/tools`) plus `execute` (a shell command or a
//! `module:function` call in the session's jail) and the git verbs an agent needs; `tools/call`
//! runs exactly what the HTTP routes run (same validation, limits, locks and quota answers). A
//! tool's refusal comes back as a tool error (`isError`, its code and message); a fault of the
//! worker as a protocol error. A 2026-07-28 client is served statelessly (any worker holding the
//! session can answer it); an older one gets an MCP session here, whose GET stream carries
//! `notifications/tools/list_changed` when the registry changes (`App::tools_changed`).
//! Authentication is the HTTP layer's: the session's token (or the worker's) opens this route as
//! it opens the session's others.

use std::sync::Arc;

use hearth_wire::exec::ExecRequest;
use hearth_wire::git::CommitRequest;
use rmcp::model::{
    CallToolRequestParams, CallToolResponse, CallToolResult, ContentBlock, Implementation,
    ListToolsResult, PaginatedRequestParams, ServerCapabilities, ServerConfig, Tool,
    ToolAnnotations,
};
use rmcp::service::NotificationContext;
use rmcp::service::RequestContext;
use rmcp::transport::streamable_http_server::session::local::LocalSessionManager;
use rmcp::transport::streamable_http_server::{StreamableHttpServerConfig, StreamableHttpService};
use rmcp::{ErrorData as McpError, RoleServer, ServerHandler};
use serde_json::{Value, json};

use super::error::ApiError;
use super::extract::{JsonBody, QueryParams, SessionParam};
use super::git;
use crate::app::App;
use crate::sessions::Session;
use axum::extract::State;

/// The MCP service every session's `/mcp` route is served by.
pub fn service(app: Arc<App>) -> StreamableHttpService<Server, LocalSessionManager> {
    let mut config = StreamableHttpServerConfig::default();
    // Clients of 2025-11-25 and before get a session, and with it the GET stream that carries
    // `notifications/tools/list_changed` (on this worker); 2026-07-28 is always stateless.
    config.legacy_session_mode = true;
    config.json_response = true;
    if !app.config.mcp.allowed_hosts.is_empty() {
        config.allowed_hosts = app.config.mcp.allowed_hosts.clone();
    }
    config.allowed_origins = app.config.mcp.allowed_origins.clone();
    let server = Server { app };
    StreamableHttpService::new(
        move || Ok(server.clone()),
        Arc::new(LocalSessionManager::default()),
        config,
    )
}

/// One session's tools, as an MCP server.
#[derive(Clone)]
pub struct Server {
    app: Arc<App>,
}

/// The tools MCP offers beside the registry's: the verbs of `exec` and git.
const EXECUTE: &str = "execute";
const GIT_STATUS: &str = "git_status";
const GIT_COMMIT: &str = "git_commit";
const GIT_LOG: &str = "git_log";
const GIT_DIFF: &str = "git_diff";
const GIT_PUSH: &str = "git_push";
const GIT_PULL: &str = "git_pull";

impl Server {
    /// The session the request's path names (`/v1/sessions/{id}/mcp`).
    fn session(&self, context: &RequestContext<RoleServer>) -> Result<Arc<Session>, McpError> {
        let parts = context
            .extensions
            .get::<http::request::Parts>()
            .ok_or_else(|| McpError::internal_error("no HTTP request behind this call", None))?;
        let id = parts
            .uri
            .path()
            .strip_prefix("/v1/sessions/")
            .and_then(|rest| rest.strip_suffix("/mcp"))
            .unwrap_or_default();
        self.app
            .sessions
            .get(id)
            .map_err(|e| McpError::resource_not_found(e.to_string(), None))
    }

    fn tools(&self) -> Vec<Tool> {
        let mut tools: Vec<Tool> = self
            .app
            .runtime
            .tools()
            .into_iter()
            .map(|t| {
                let schema = t.input_schema.as_object().cloned().unwrap_or_default();
                let mut tool = Tool::new(t.name, t.description, Arc::new(schema));
                tool.annotations = Some(ToolAnnotations::new().read_only(t.read_only));
                tool
            })
            .collect();
        let object = |value: Value| Arc::new(value.as_object().cloned().unwrap_or_default());
        tools.push(Tool::new(
            EXECUTE,
            "Run a program in the session's jail, with /workspace as working directory: a shell \
             `command`, or a Python `call` of `module:function` with JSON `kwargs` whose return \
             value comes back as `result`. Answers the exit code, stdout and stderr.",
            object(json!({
                "type": "object",
                "properties": {
                    "command": { "type": "string", "description": "A shell command line." },
                    "call": { "type": "string", "description": "`module.path:function`." },
                    "kwargs": { "type": "object", "description": "The call's keyword arguments." },
                    "timeout_s": { "type": "number", "minimum": 0 }
                },
                "additionalProperties": false
            })),
        ));
        tools.push(Tool::new(
            GIT_STATUS,
            "The session's git status: branch, HEAD, every changed path, conflicts, remotes.",
            object(json!({ "type": "object", "properties": {}, "additionalProperties": false })),
        ));
        tools.push(Tool::new(
            GIT_COMMIT,
            "Stage the whole workspace and commit it with `message` (nothing to commit is not an \
             error).",
            object(json!({
                "type": "object",
                "properties": { "message": { "type": "string" } },
                "required": ["message"],
                "additionalProperties": false
            })),
        ));
        tools.push(Tool::new(
            GIT_LOG,
            "History, newest first, a page at a time (`next_skip` is the next page's `skip`).",
            object(json!({
                "type": "object",
                "properties": {
                    "revision": { "type": "string" },
                    "skip": { "type": "integer", "minimum": 0 },
                    "limit": { "type": "integer", "minimum": 1, "maximum": 1000 }
                },
                "additionalProperties": false
            })),
        ));
        tools.push(Tool::new(
            GIT_DIFF,
            "The workspace against HEAD (or `from`), untracked files included; or `from` against              `to`. Answers the files and the patch.",
            object(json!({
                "type": "object",
                "properties": { "from": { "type": "string" }, "to": { "type": "string" } },
                "additionalProperties": false
            })),
        ));
        let exchange = object(json!({
            "type": "object",
            "properties": {
                "remote": { "type": "string", "description": "Default `origin`." },
                "branch": { "type": "string", "description": "Default: the current branch." }
            },
            "additionalProperties": false
        }));
        tools.push(Tool::new(
            GIT_PUSH,
            "Push the current branch; if the remote moved, its commits are merged first (a              conflict leaves markers to resolve: `merge_conflict`).",
            exchange.clone(),
        ));
        tools.push(Tool::new(
            GIT_PULL,
            "Fetch a remote branch and merge it (a conflict leaves markers to resolve:              `merge_conflict`).",
            exchange,
        ));
        tools
    }

    async fn call(
        &self,
        session: Arc<Session>,
        name: &str,
        args: Value,
    ) -> Result<Value, ApiError> {
        fn typed<T: serde::de::DeserializeOwned>(args: Value) -> Result<T, ApiError> {
            serde_json::from_value(args)
                .map_err(|e| ApiError::new(hearth_wire::ErrorCode::InvalidArguments, e.to_string()))
        }
        let app = self.app.clone();
        match name {
            EXECUTE => {
                let request: ExecRequest = typed(args)?;
                let result = super::exec::run(&self.app, session, request).await?;
                Ok(serde_json::to_value(result).unwrap_or(Value::Null))
            }
            // The git verbs run their routes' handlers: the same checks and answers.
            GIT_STATUS => json_of(git::git_status(State(app), SessionParam(session)).await),
            GIT_COMMIT => {
                let request: CommitRequest = typed(args)?;
                let made = git::git_commit(State(app), SessionParam(session), JsonBody(request));
                json_of(made.await.map(|(_, answer)| answer))
            }
            GIT_LOG => {
                let query = QueryParams(typed(args)?);
                json_of(git::git_log(State(app), SessionParam(session), query).await)
            }
            GIT_DIFF => {
                let query = QueryParams(typed(args)?);
                json_of(git::git_diff(State(app), SessionParam(session), query).await)
            }
            GIT_PUSH => {
                let request = JsonBody(typed(args)?);
                json_of(git::git_push(State(app), SessionParam(session), request).await)
            }
            GIT_PULL => {
                let request = JsonBody(typed(args)?);
                json_of(git::git_pull(State(app), SessionParam(session), request).await)
            }
            tool => super::tools::call_in_session(&self.app, &session, tool, args).await,
        }
    }
}

/// A route's answer as the JSON MCP carries.
fn json_of<T: serde::Serialize>(
    answer: Result<axum::Json<T>, ApiError>,
) -> Result<Value, ApiError> {
    answer.map(|axum::Json(value)| serde_json::to_value(value).unwrap_or(Value::Null))
}

impl ServerHandler for Server {
    fn get_info(&self) -> ServerConfig {
        let capabilities = ServerCapabilities::builder()
            .enable_tools()
            .enable_tool_list_changed()
            .build();
        ServerConfig::new(capabilities)
            .with_server_info(Implementation::new("hearth", env!("CARGO_PKG_VERSION")))
            .with_instructions(
                "The tools of one Hearth session: files under /workspace and /tmp, programs run \
                 in its jail, its git repository.",
            )
    }

    /// A client with a session hears of every change to the registry until it goes away.
    async fn on_initialized(&self, context: NotificationContext<RoleServer>) {
        let mut changes = self.app.tools_changed.subscribe();
        let peer = context.peer;
        tokio::spawn(async move {
            loop {
                match changes.recv().await {
                    Ok(()) | Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => {}
                    Err(tokio::sync::broadcast::error::RecvError::Closed) => return,
                }
                if peer.is_transport_closed() || peer.notify_tool_list_changed().await.is_err() {
                    return;
                }
            }
        });
    }

    async fn list_tools(
        &self,
        _request: Option<PaginatedRequestParams>,
        _context: RequestContext<RoleServer>,
    ) -> Result<ListToolsResult, McpError> {
        Ok(ListToolsResult::with_all_items(self.tools()))
    }

    async fn call_tool(
        &self,
        request: CallToolRequestParams,
        context: RequestContext<RoleServer>,
    ) -> Result<CallToolResponse, McpError> {
        let session = self.session(&context)?;
        let args = Value::Object(request.arguments.unwrap_or_default());
        match self.call(session, &request.name, args).await {
            Ok(value) => {
                let text = value.to_string();
                let mut result = CallToolResult::success(vec![ContentBlock::text(text)]);
                if value.is_object() {
                    result.structured_content = Some(value);
                }
                Ok(result.into())
            }
            // The worker's fault: a protocol error, with no more said than over HTTP.
            Err(e) if e.code.status() >= 500 && e.code != hearth_wire::ErrorCode::QuotaExceeded => {
                Err(McpError::internal_error(e.message, None))
            }
            // The tool's (or the request's): an error the model reads and acts on.
            Err(e) => {
                // deepagents' wording where it has one: a missing file is "not found".
                let text = match e.code {
                    hearth_wire::ErrorCode::FileNotFound => {
                        format!("Error: file not found ({}): {}", e.code, e.message)
                    }
                    code => format!("Error ({code}): {}", e.message),
                };
                let mut result = CallToolResult::error(vec![ContentBlock::text(text)]);
                result.structured_content = Some(json!({
                    "error": { "code": e.code, "message": e.message, "details": e.details }
                }));
                Ok(result.into())
            }
        }
    }
}
