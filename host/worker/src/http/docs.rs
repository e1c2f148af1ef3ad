//! The OpenAPI document, generated: the routes' `#[utoipa::path]` attributes and the wire types
//! make it, and [`finish`] adds what every operation shares, so no answer is written twice.
//!
//! What an operation may fail with is its own `x-errors` (the codes only it answers) plus what
//! its shape implies: every authenticated route may answer `unauthorized`, `token_scope`,
//! `rate_limited`; a route under `/v1/sessions/{id}` may answer `session_not_found` and
//! `session_expired`; a JSON body may be `invalid_json` or `invalid_request`; a query,
//! `invalid_query`. Each status's answer lists its codes and constrains `error.code` to them,
//! so a fuzzer checking answers against the document catches an undocumented code.

use std::collections::{BTreeMap, BTreeSet};

use hearth_wire::ErrorCode;
use serde_json::{Value, json};
use utoipa::openapi::{ObjectBuilder, RefOr, Schema, Type};

/// A session's id, in a path.
#[derive(utoipa::IntoParams)]
#[into_params(parameter_in = Path)]
pub struct SessionId {
    /// The session's id.
    #[param(pattern = r"^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$")]
    #[expect(dead_code, reason = "read by the document only")]
    id: String,
}

/// A tool's name, in a path.
#[derive(utoipa::IntoParams)]
#[into_params(parameter_in = Path)]
pub struct ToolName {
    /// The tool's name (`GET /v1/tools` lists them).
    #[expect(dead_code, reason = "read by the document only")]
    name: String,
}

/// A view path without its leading `/`, in a path.
#[derive(utoipa::IntoParams)]
#[into_params(parameter_in = Path)]
pub struct FilePath {
    /// A view path without its leading `/` (`workspace/src/main.py`).
    #[expect(dead_code, reason = "read by the document only")]
    path: String,
}

/// A stored export's name, in a path.
#[derive(utoipa::IntoParams)]
#[into_params(parameter_in = Path)]
pub struct ExportName {
    /// The export's name (`GET …/exports` lists them).
    #[expect(dead_code, reason = "read by the document only")]
    name: String,
}

/// Raw bytes: a file, an archive.
pub struct Binary;

impl utoipa::PartialSchema for Binary {
    fn schema() -> RefOr<Schema> {
        ObjectBuilder::new()
            .schema_type(Type::String)
            .format(Some(utoipa::openapi::SchemaFormat::KnownFormat(
                utoipa::openapi::KnownFormat::Binary,
            )))
            .into()
    }
}

impl utoipa::ToSchema for Binary {}

/// What the document says of the API as a whole.
pub fn base() -> utoipa::openapi::OpenApi {
    use utoipa::openapi::security::{ApiKey, ApiKeyValue, HttpAuthScheme, HttpBuilder};
    use utoipa::openapi::security::{SecurityRequirement, SecurityScheme};
    let mut api = utoipa::openapi::OpenApiBuilder::new()
        .info(
            utoipa::openapi::InfoBuilder::new()
                .title("Hearth worker API")
                .version("1.0.0")
                .description(Some(DESCRIPTION))
                .build(),
        )
        .servers(Some([utoipa::openapi::Server::new(
            "http://127.0.0.1:8700",
        )]))
        .security(Some([
            SecurityRequirement::new("bearer", Vec::<String>::new()),
            SecurityRequirement::new("apiKey", Vec::<String>::new()),
        ]))
        .build();
    let components = api.components.get_or_insert_with(Default::default);
    components.add_security_scheme(
        "bearer",
        SecurityScheme::Http(
            HttpBuilder::new()
                .scheme(HttpAuthScheme::Bearer)
                .description(Some(
                    "The operator's token (`token` / HEARTH_TOKEN), which opens every route, \
                     or a session's own token (answered by its create), which opens that \
                     session's routes only.",
                ))
                .build(),
        ),
    );
    components.add_security_scheme(
        "apiKey",
        SecurityScheme::ApiKey(ApiKey::Header(ApiKeyValue::with_description(
            "X-API-Key",
            "The same token, for clients that cannot set Authorization.",
        ))),
    );
    api
}

const DESCRIPTION: &str = "The HTTP contract between a controller and a Hearth worker. Every \
    route except `GET /v1/health` needs the operator's token or a session's own token \
    (`Authorization: Bearer <token>` or `X-API-Key: <token>`). Every error is \
    `{\"error\": {\"code\", \"message\", \"details\"?}}`; each code has one status, and each \
    operation lists the codes it may answer. A route that does not exist answers 404 \
    `route_not_found`; a method a route does not take, 405 `method_not_allowed`. Paths in tool \
    arguments and file routes are view paths (`/workspace/...`, `/tmp/...`). Each session also \
    speaks MCP (streamable HTTP, JSON-RPC) at `/v1/sessions/{id}/mcp`, outside this document. \
    This document is generated from the worker's code (`hearth openapi`).";

/// The finished document: shared errors added to every operation, `x-errors` resolved,
/// `{*path}` written as OpenAPI writes it.
pub fn finish(api: utoipa::openapi::OpenApi) -> Value {
    let mut doc = serde_json::to_value(api).unwrap_or(Value::Null);
    let Some(paths) = doc.get_mut("paths").and_then(Value::as_object_mut) else {
        return doc;
    };
    let mut renamed = serde_json::Map::new();
    for (path, item) in std::mem::take(paths) {
        let mut item = item;
        if let Some(operations) = item.as_object_mut() {
            for operation in operations.values_mut() {
                document_errors(&path, operation);
            }
        }
        renamed.insert(path.replace("{*", "{"), item);
    }
    *paths = renamed;
    let schemas = doc
        .pointer("/components/schemas")
        .cloned()
        .unwrap_or(Value::Null);
    if let Some(paths) = doc.get_mut("paths").and_then(Value::as_object_mut) {
        for operation in paths.values_mut().filter_map(Value::as_object_mut) {
            for operation in operation.values_mut() {
                optional_when_empty_is_valid(operation, &schemas);
            }
        }
    }
    doc
}

/// A JSON body may be left out when `{}` is valid: no body is `{}` (see `extract::JsonBody`).
/// A file's raw body may be left out: it is an empty file.
fn optional_when_empty_is_valid(operation: &mut Value, schemas: &Value) {
    let Some(body) = operation.get_mut("requestBody") else {
        return;
    };
    let only_raw = body["content"]
        .as_object()
        .is_some_and(|c| c.len() == 1 && c.contains_key("application/octet-stream"));
    if only_raw {
        body["required"] = Value::Bool(false);
        return;
    }
    let Some(schema) = body.pointer("/content/application~1json/schema") else {
        return;
    };
    // A body of any JSON (a tool's arguments) is checked by its receiver: `{}` may do.
    let required = match schema
        .get("$ref")
        .and_then(Value::as_str)
        .and_then(|r| r.strip_prefix("#/components/schemas/"))
    {
        Some(name) => schemas[name]["required"]
            .as_array()
            .is_some_and(|r| !r.is_empty()),
        None => false,
    };
    body["required"] = Value::Bool(required);
}

/// Adds to `operation` (at `path`) an answer per error status it may have.
fn document_errors(path: &str, operation: &mut Value) {
    let mut codes: BTreeSet<ErrorCode> = BTreeSet::new();
    let extensions = operation.as_object_mut().and_then(|o| o.remove("x-errors"));
    let mut own = Vec::new();
    flatten(extensions.as_ref(), &mut own);
    codes.extend(own);
    codes.insert(ErrorCode::InternalError);
    // A draining worker refuses everything but health, readiness and metrics.
    if !crate::drain::allowed_while_draining(path) {
        codes.insert(ErrorCode::Draining);
    }
    // Every body is read whole before a handler runs.
    codes.insert(ErrorCode::BodyTooLarge);
    let authenticated = operation
        .get("security")
        .and_then(Value::as_array)
        .is_none_or(|s| {
            !s.iter()
                .all(|r| r.as_object().is_some_and(|r| r.is_empty()))
        });
    if authenticated {
        codes.extend([
            ErrorCode::Unauthorized,
            ErrorCode::TokenScope,
            ErrorCode::RateLimited,
        ]);
    }
    if path.contains('{') {
        codes.insert(ErrorCode::InvalidPath);
    }
    if path.starts_with("/v1/sessions/{id}") {
        codes.extend([
            ErrorCode::SessionNotFound,
            ErrorCode::SessionExpired,
            ErrorCode::SessionMoved,
        ]);
        // In a fleet, any worker is a door: the owner may be unreachable, and a worker
        // whose lease is in doubt refuses rather than answer for a session it may have lost.
        codes.extend([ErrorCode::OwnerUnreachable, ErrorCode::StoreUnavailable]);
    }
    let body_type = operation
        .pointer("/requestBody/content")
        .and_then(Value::as_object)
        .and_then(|c| c.keys().next().cloned());
    if body_type.as_deref() == Some("application/json") {
        codes.extend([
            ErrorCode::InvalidJson,
            ErrorCode::InvalidRequest,
            ErrorCode::InvalidBody,
        ]);
    }
    let has_query = operation
        .get("parameters")
        .and_then(Value::as_array)
        .is_some_and(|ps| ps.iter().any(|p| p["in"] == "query"));
    if has_query {
        codes.insert(ErrorCode::InvalidQuery);
    }
    let mut by_status: BTreeMap<u16, Vec<ErrorCode>> = BTreeMap::new();
    for code in codes {
        by_status.entry(code.status()).or_default().push(code);
    }
    let Some(responses) = operation
        .get_mut("responses")
        .and_then(Value::as_object_mut)
    else {
        return;
    };
    for (status, codes) in by_status {
        responses.insert(status.to_string(), error_response(&codes));
    }
}

/// `x-errors` holds codes, or arrays of them (a shared list beside a route's own).
fn flatten(value: Option<&Value>, into: &mut Vec<ErrorCode>) {
    match value {
        Some(Value::Array(items)) => items.iter().for_each(|v| flatten(Some(v), into)),
        Some(code) => into.extend(serde_json::from_value::<ErrorCode>(code.clone()).ok()),
        None => {}
    }
}

/// The answer of one error status: its codes and what each means, and a schema that allows
/// only those codes.
fn error_response(codes: &[ErrorCode]) -> Value {
    let description = codes
        .iter()
        .map(|c| format!("`{c}`: {}", c.meaning()))
        .collect::<Vec<_>>()
        .join("\n\n");
    let names: Vec<&str> = codes.iter().map(|c| c.as_str()).collect();
    json!({
        "description": description,
        "content": { "application/json": { "schema": {
            "type": "object",
            "required": ["error"],
            "properties": { "error": {
                "type": "object",
                "required": ["code", "message"],
                "properties": {
                    "code": { "type": "string", "enum": names },
                    "message": { "type": "string" },
                    "details": {}
                }
            }}
        }}}
    })
}
