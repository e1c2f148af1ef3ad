//! Tools: the registry (list, look at, install, upgrade, remove) and calling a tool in a
//! session. Installing and removing need the operator's token (see `middleware`).

use std::sync::Arc;
use std::time::Instant;

use axum::Json;
use axum::body::Bytes;
use axum::extract::{FromRequest, Request, State};
use axum::http::{StatusCode, header};
use hearth_runtime::{InstallError, ToolSource};
use hearth_wire::ErrorCode;
use hearth_wire::tools::{
    ToolAnswer, ToolDetail, ToolInfo, ToolInstalled, ToolLimits, ToolRemoved,
};

use super::docs::{Binary, SessionId, ToolName};
use super::error::{ApiError, write_failure};
use super::extract::{Access, AnyJson, PathParams, SessionParam, blocking, with_session};
use crate::app::App;

/// The tools this worker runs, described by the components themselves.
#[utoipa::path(get, path = "/v1/tools", tag = "tools",
    responses((status = 200, description = "Every tool.", body = Vec<ToolInfo>)))]
pub(super) async fn list_tools(State(app): State<Arc<App>>) -> Json<Vec<ToolInfo>> {
    Json(app.runtime.tools().iter().map(tool_info).collect())
}

/// One tool, as the operator sees it: its version, origin, policy and limits.
#[utoipa::path(get, path = "/v1/tools/{name}", tag = "tools", params(ToolName),
    responses((status = 200, description = "The tool.", body = ToolDetail)),
    extensions(("x-errors" = json!([ErrorCode::UnknownTool]))))]
pub(super) async fn get_tool(
    State(app): State<Arc<App>>,
    PathParams(name): PathParams<String>,
) -> Result<Json<ToolDetail>, ApiError> {
    let tool = app.runtime.tool(&name).ok_or_else(|| unknown(&name))?;
    Ok(Json(tool_detail(&tool)))
}

/// Install a tool, or upgrade the one of that name (the operator's token only).
///
/// The body is the component (`application/wasm`), or a `multipart/form-data` form with a
/// `component` part and a `manifest` part (`tool.toml`). The tool is compiled, checked (the
/// `hearth:tool` world, its schema, its manifest against the operator's grant) and only then
/// swapped in: calls already running finish on the version they began with, and a refused
/// install leaves the old version serving. Installed tools are kept across restarts. In a
/// fleet, the tool is recorded in the shared store and every worker serves it within
/// `fleet.tools_sync_s`.
#[utoipa::path(put, path = "/v1/tools/{name}", tag = "tools", params(ToolName),
    request_body(
        content(
            (Binary = "application/wasm"),
            (Binary = "application/octet-stream"),
            (ToolUpload = "multipart/form-data")
        ),
        description = "The component; or a form with the component and its manifest."),
    responses(
        (status = 201, description = "A new tool.", body = ToolInstalled),
        (status = 200, description = "The tool was upgraded.", body = ToolInstalled)),
    extensions(("x-errors" = json!([
        ErrorCode::OperatorOnly, ErrorCode::InvalidTool, ErrorCode::ToolProtected,
        ErrorCode::InvalidBody, ErrorCode::StoreUnavailable
    ]))))]
pub(super) async fn install_tool(
    State(app): State<Arc<App>>,
    PathParams(name): PathParams<String>,
    request: Request,
) -> Result<(StatusCode, Json<ToolInstalled>), ApiError> {
    let (wasm, manifest) = component_and_manifest(request).await?;
    // In a fleet, no sync pass runs between the install here and its record in the store.
    let mut fleet_tools = match &app.fleet {
        Some(fleet) => Some((fleet, fleet.lock_tools().await)),
        None => None,
    };
    let replace_builtins = app.config.tools.replace_builtins;
    let runtime = app.runtime.clone();
    let (name2, wasm2, manifest2) = (name.clone(), wasm.clone(), manifest.clone());
    let installed =
        blocking(move || runtime.install(&name2, &wasm2, manifest2.as_deref(), replace_builtins))
            .await?
            .map_err(install_error)?;
    if let Some((fleet, guard)) = &mut fleet_tools
        && let Err(e) = fleet.record_installed(guard, &name, wasm, manifest).await
    {
        // A new tool is taken back at once; an upgrade is undone by the next sync pass, which
        // brings this worker back to the fleet's record.
        if installed.previous.is_none() {
            let runtime = app.runtime.clone();
            let name = name.clone();
            let _ = blocking(move || runtime.remove(&name)).await;
        }
        return Err(unrecorded(&name, e));
    }
    let previous_version = installed.previous.as_ref().map(|p| p.version.clone());
    tracing::info!(
        target: "audit",
        action = if previous_version.is_some() { "upgrade" } else { "install" },
        by = "operator",
        tool = %name,
        version = %installed.tool.version,
        previous = previous_version.as_deref().unwrap_or("-"),
        read_only = installed.tool.read_only,
        mounts = ?installed.tool.mounts,
        env = ?installed.tool.env,
        network = ?installed.tool.network,
        deadline_ms = installed.tool.limits.deadline.as_millis() as u64,
        memory_bytes = installed.tool.limits.memory_bytes,
        "tool installed"
    );
    let _ = app.tools_changed.send(());
    let status = match previous_version {
        Some(_) => StatusCode::OK,
        None => StatusCode::CREATED,
    };
    let answer = ToolInstalled {
        tool: tool_detail(&installed.tool),
        previous_version,
    };
    Ok((status, Json(answer)))
}

/// Remove an installed tool (the operator's token only).
///
/// Calls already running finish; new ones answer `unknown_tool`. Built-in tools and the
/// operator's tools directory are not removed through the API.
#[utoipa::path(delete, path = "/v1/tools/{name}", tag = "tools", params(ToolName),
    responses((status = 200, description = "The tool is gone.", body = ToolRemoved)),
    extensions(("x-errors" = json!([
        ErrorCode::OperatorOnly, ErrorCode::UnknownTool, ErrorCode::ToolProtected,
        ErrorCode::StoreUnavailable
    ]))))]
pub(super) async fn remove_tool(
    State(app): State<Arc<App>>,
    PathParams(name): PathParams<String>,
) -> Result<Json<ToolRemoved>, ApiError> {
    let mut fleet_tools = match &app.fleet {
        Some(fleet) => Some((fleet, fleet.lock_tools().await)),
        None => None,
    };
    let runtime = app.runtime.clone();
    let name2 = name.clone();
    let removed = blocking(move || runtime.remove(&name2))
        .await?
        .map_err(install_error)?;
    if let Some((fleet, guard)) = &mut fleet_tools
        && let Err(e) = fleet.record_removed(guard, &name).await
    {
        // The next sync pass brings the tool back as the fleet's record has it.
        return Err(unrecorded(&name, e));
    }
    let _ = app.tools_changed.send(());
    tracing::info!(target: "audit", action = "remove", by = "operator", tool = %name, version = %removed.version, "tool removed");
    Ok(Json(ToolRemoved {
        name,
        version: removed.version,
    }))
}

/// `PUT /v1/tools/{name}` as a form.
#[derive(utoipa::ToSchema)]
#[expect(
    dead_code,
    reason = "read by the document only: the form is parsed part by part"
)]
struct ToolUpload {
    /// The component.
    #[schema(value_type = String, format = Binary)]
    component: Vec<u8>,
    /// Its manifest (`tool.toml`).
    manifest: Option<String>,
}

/// The component, and the manifest if one came: a raw body is the component alone.
async fn component_and_manifest(request: Request) -> Result<(Bytes, Option<String>), ApiError> {
    let is_form = request
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("multipart/form-data"));
    if !is_form {
        let bytes = Bytes::from_request(request, &())
            .await
            .map_err(|e| ApiError::new(ErrorCode::InvalidBody, e.body_text()))?;
        return Ok((bytes, None));
    }
    let bad = |why: String| ApiError::new(ErrorCode::InvalidBody, why);
    let mut form = axum::extract::Multipart::from_request(request, &())
        .await
        .map_err(|e| bad(e.body_text()))?;
    let (mut component, mut manifest) = (None, None);
    while let Some(field) = form.next_field().await.map_err(|e| bad(e.body_text()))? {
        match field.name() {
            Some("component") => {
                component = Some(field.bytes().await.map_err(|e| bad(e.body_text()))?)
            }
            Some("manifest") => {
                let text = field.text().await.map_err(|e| bad(e.body_text()))?;
                manifest = Some(text);
            }
            other => {
                return Err(bad(format!(
                    "unexpected form part {other:?}: the parts are `component` and `manifest`"
                )));
            }
        }
    }
    let component = component.ok_or_else(|| bad("the form has no `component` part".into()))?;
    Ok((component, manifest))
}

/// A change made on this worker that the fleet's store did not take: the change does not stand.
fn unrecorded(name: &str, e: hearth_snapshots::SnapshotError) -> ApiError {
    ApiError::new(
        ErrorCode::StoreUnavailable,
        format!(
            "the fleet's store did not record the change to `{name}` ({e}), so the fleet does \
             not serve it: this worker returns to the fleet's version of the tool within \
             `fleet.tools_sync_s`; repeat the request"
        ),
    )
}

fn install_error(e: InstallError) -> ApiError {
    let message = e.to_string();
    match e {
        InstallError::BadName(_) => ApiError::new(ErrorCode::InvalidPath, message),
        InstallError::Invalid(_) => ApiError::new(ErrorCode::InvalidTool, message),
        InstallError::Builtin(_) | InstallError::NotInstalled { .. } => {
            ApiError::new(ErrorCode::ToolProtected, message)
        }
        InstallError::NotFound(name) => unknown(&name),
        InstallError::Disabled | InstallError::Io(_) => ApiError::internal(message),
    }
}

fn unknown(name: &str) -> ApiError {
    ApiError::from(hearth_runtime::CallError::UnknownTool(name.to_owned()))
}

fn tool_info(tool: &hearth_runtime::ToolInfo) -> ToolInfo {
    ToolInfo {
        name: tool.name.clone(),
        description: tool.description.clone(),
        input_schema: tool.input_schema.clone(),
        read_only: tool.read_only,
    }
}

/// A loaded tool as `GET /v1/tools/{name}` answers it (and `hearth tool check` prints it).
pub fn tool_detail(tool: &hearth_runtime::ToolInfo) -> ToolDetail {
    let access = |a: &hearth_runtime::MountAccess| match a {
        hearth_runtime::MountAccess::ReadOnly => "read-only".to_owned(),
        hearth_runtime::MountAccess::ReadWrite => "read-write".to_owned(),
    };
    ToolDetail {
        tool: tool_info(tool),
        version: tool.version.clone(),
        source: match &tool.source {
            ToolSource::Directory(_) => "directory".to_owned(),
            other => other.to_string(),
        },
        limits: ToolLimits {
            deadline_ms: tool.limits.deadline.as_millis() as u64,
            memory_bytes: tool.limits.memory_bytes,
            result_bytes: tool.limits.result_bytes,
        },
        mounts: tool
            .mounts
            .as_ref()
            .map(|m| m.iter().map(|(p, a)| (p.clone(), access(a))).collect()),
        env: tool.env.clone(),
        network: tool.network.clone(),
        loaded_at_ms: tool.loaded_at_ms,
        load_ms: tool.load_ms,
    }
}

/// Call a tool.
///
/// The body is the tool's arguments, checked against its `input_schema` before it runs.
/// Read-only tools share the session; others hold it alone. A write that failed for space
/// answers `quota_exceeded`.
#[utoipa::path(post, path = "/v1/sessions/{id}/tools/{name}", tag = "tools",
    params(SessionId, ToolName),
    request_body(content = serde_json::Value, description = "The tool's arguments."),
    responses((status = 200, description = "What the tool returned.", body = ToolAnswer)),
    extensions(("x-errors" = json!([
        ErrorCode::UnknownTool, ErrorCode::InvalidArguments, ErrorCode::InvalidInput,
        ErrorCode::InvalidPath, ErrorCode::FileNotFound, ErrorCode::PermissionDenied,
        ErrorCode::IsDirectory, ErrorCode::Conflict, ErrorCode::TooLarge, ErrorCode::ToolError,
        ErrorCode::DeadlineExceeded, ErrorCode::MemoryExceeded, ErrorCode::ToolCrashed,
        ErrorCode::ResultTooLarge, ErrorCode::InvalidResult, ErrorCode::StorageFull,
        ErrorCode::QuotaExceeded
    ]))))]
pub(super) async fn call_tool(
    State(app): State<Arc<App>>,
    SessionParam(session): SessionParam,
    PathParams((_, name)): PathParams<(String, String)>,
    AnyJson(args): AnyJson,
) -> Result<Json<ToolAnswer>, ApiError> {
    let result = call_in_session(&app, &session, &name, args).await?;
    Ok(Json(ToolAnswer { result }))
}

/// Calls tool `name` in `session`: what `POST …/tools/{name}` and MCP's `tools/call` both do.
/// Read-only tools share the session; others hold it alone. A write that failed for space
/// answers `quota_exceeded`.
pub(super) async fn call_in_session(
    app: &Arc<App>,
    session: &Arc<crate::sessions::Session>,
    name: &str,
    args: serde_json::Value,
) -> Result<serde_json::Value, ApiError> {
    let read_only = app.runtime.read_only(name).ok_or_else(|| unknown(name))?;
    let started = Instant::now();
    let access = match read_only {
        true => Access::Shared,
        false => Access::Exclusive,
    };
    let runtime = app.runtime.clone();
    let tool = name.to_owned();
    let outcome = with_session(session, access, move |session| {
        #[cfg(feature = "bench-floor")]
        if crate::floor::enabled()
            && let Some(floor) = crate::floor::call(&session.view, &tool, &args)
        {
            return floor;
        }
        runtime.call(&session.view, &tool, &args)
    })
    .await?
    .map_err(|e| match read_only {
        true => ApiError::from(e),
        false => write_failure(e, session.usage()),
    });
    session.count_tool_call();
    let code = outcome.as_ref().err().map_or("ok", |e| e.code.as_str());
    app.metrics.record_tool_call(name, code, started.elapsed());
    outcome
}
