//! The subset of JSON Schema that tools declare their arguments in, and the validator the host
//! runs before any guest code sees a call.
//!
//! A tool's schema is parsed once, when the tool is loaded. Any keyword outside the subset makes
//! the load fail: a schema the host cannot enforce completely is worse than none, because agents
//! and operators would believe it is enforced.
//!
//! Supported: `type` (`object`, `string`, `integer`, `number`, `boolean`, `array`), `properties`,
//! `required`, `additionalProperties` (boolean), `enum`, `minimum`, `maximum`, `minLength`,
//! `maxLength`, `items`, `minItems`, `maxItems`, and the annotations `description`, `title`,
//! `default`, `examples`.

use std::collections::BTreeMap;

use serde_json::{Map, Value};

/// A schema the host refuses to load.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SchemaError {
    #[error("schema is not valid JSON: {0}")]
    NotJson(String),
    #[error("schema at `{pointer}` uses `{keyword}`, which the host cannot enforce")]
    UnsupportedKeyword { pointer: String, keyword: String },
    #[error("schema at `{pointer}` is malformed: {reason}")]
    Malformed { pointer: String, reason: String },
    #[error("the arguments schema must have `\"type\": \"object\"` at the top level")]
    RootNotObject,
}

/// Arguments that do not fit the schema. `pointer` is a JSON pointer to the offending value.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}: {message}", if pointer.is_empty() { "arguments" } else { pointer.as_str() })]
pub struct ValidationError {
    pub pointer: String,
    pub message: String,
}

/// A parsed, enforceable schema.
#[derive(Debug, Clone)]
pub struct Schema {
    root: Node,
}

#[derive(Debug, Clone)]
struct Node {
    kind: Kind,
    allowed: Option<Vec<Value>>,
}

#[derive(Debug, Clone)]
enum Kind {
    Any,
    Boolean,
    String {
        min_len: Option<u64>,
        max_len: Option<u64>,
    },
    Integer {
        min: Option<f64>,
        max: Option<f64>,
    },
    Number {
        min: Option<f64>,
        max: Option<f64>,
    },
    Array {
        items: Option<Box<Node>>,
        min_items: Option<u64>,
        max_items: Option<u64>,
    },
    Object {
        properties: BTreeMap<String, Node>,
        required: Vec<String>,
        additional: bool,
    },
}

const ANNOTATIONS: &[&str] = &["description", "title", "default", "examples"];

impl Schema {
    /// Parses a tool's `input-schema` text.
    pub fn parse(text: &str) -> Result<Self, SchemaError> {
        let value: Value =
            serde_json::from_str(text).map_err(|e| SchemaError::NotJson(e.to_string()))?;
        let root = parse_node(&value, "")?;
        if !matches!(root.kind, Kind::Object { .. }) {
            return Err(SchemaError::RootNotObject);
        }
        Ok(Self { root })
    }

    /// Checks `args` against the schema; the first violation is reported.
    pub fn validate(&self, args: &Value) -> Result<(), ValidationError> {
        validate_node(&self.root, args, &mut String::new())
    }
}

fn malformed(pointer: &str, reason: impl Into<String>) -> SchemaError {
    SchemaError::Malformed {
        pointer: pointer.to_owned(),
        reason: reason.into(),
    }
}

fn parse_node(value: &Value, pointer: &str) -> Result<Node, SchemaError> {
    let Value::Object(map) = value else {
        return Err(malformed(pointer, "expected a schema object"));
    };
    let kind_name = match map.get("type") {
        None => None,
        Some(Value::String(s)) => Some(s.as_str()),
        Some(_) => return Err(malformed(pointer, "`type` must be a single type name")),
    };
    let keywords: &[&str] = match kind_name {
        None => &["enum"],
        Some("boolean") => &["enum"],
        Some("string") => &["enum", "minLength", "maxLength"],
        Some("integer" | "number") => &["enum", "minimum", "maximum"],
        Some("array") => &["items", "minItems", "maxItems"],
        Some("object") => &["properties", "required", "additionalProperties"],
        Some(other) => {
            return Err(SchemaError::UnsupportedKeyword {
                pointer: pointer.to_owned(),
                keyword: format!("type: {other}"),
            });
        }
    };
    for key in map.keys() {
        if key != "type"
            && !keywords.contains(&key.as_str())
            && !ANNOTATIONS.contains(&key.as_str())
        {
            return Err(SchemaError::UnsupportedKeyword {
                pointer: pointer.to_owned(),
                keyword: key.clone(),
            });
        }
    }
    let kind = match kind_name {
        None => Kind::Any,
        Some("boolean") => Kind::Boolean,
        Some("string") => Kind::String {
            min_len: uint(map, "minLength", pointer)?,
            max_len: uint(map, "maxLength", pointer)?,
        },
        Some("integer") => Kind::Integer {
            min: num(map, "minimum", pointer)?,
            max: num(map, "maximum", pointer)?,
        },
        Some("number") => Kind::Number {
            min: num(map, "minimum", pointer)?,
            max: num(map, "maximum", pointer)?,
        },
        Some("array") => Kind::Array {
            items: match map.get("items") {
                Some(items) => Some(Box::new(parse_node(items, &format!("{pointer}/items"))?)),
                None => None,
            },
            min_items: uint(map, "minItems", pointer)?,
            max_items: uint(map, "maxItems", pointer)?,
        },
        _ => parse_object(map, pointer)?,
    };
    let allowed = match map.get("enum") {
        None => None,
        Some(Value::Array(values)) if !values.is_empty() => Some(values.clone()),
        Some(_) => return Err(malformed(pointer, "`enum` must be a non-empty array")),
    };
    Ok(Node { kind, allowed })
}

fn parse_object(map: &Map<String, Value>, pointer: &str) -> Result<Kind, SchemaError> {
    let mut properties = BTreeMap::new();
    match map.get("properties") {
        None => {}
        Some(Value::Object(props)) => {
            for (name, schema) in props {
                properties.insert(
                    name.clone(),
                    parse_node(schema, &format!("{pointer}/{name}"))?,
                );
            }
        }
        Some(_) => return Err(malformed(pointer, "`properties` must be an object")),
    }
    let required = match map.get("required") {
        None => Vec::new(),
        Some(Value::Array(names)) => names
            .iter()
            .map(|n| match n {
                Value::String(s) if properties.contains_key(s) => Ok(s.clone()),
                _ => Err(malformed(
                    pointer,
                    format!("`required` names unknown property {n}"),
                )),
            })
            .collect::<Result<_, _>>()?,
        Some(_) => return Err(malformed(pointer, "`required` must be an array")),
    };
    let additional = match map.get("additionalProperties") {
        None => true,
        Some(Value::Bool(b)) => *b,
        Some(_) => {
            return Err(SchemaError::UnsupportedKeyword {
                pointer: pointer.to_owned(),
                keyword: "additionalProperties (as a schema)".into(),
            });
        }
    };
    Ok(Kind::Object {
        properties,
        required,
        additional,
    })
}

fn uint(map: &Map<String, Value>, key: &str, pointer: &str) -> Result<Option<u64>, SchemaError> {
    match map.get(key) {
        None => Ok(None),
        Some(v) => v
            .as_u64()
            .map(Some)
            .ok_or_else(|| malformed(pointer, format!("`{key}` must be a non-negative integer"))),
    }
}

fn num(map: &Map<String, Value>, key: &str, pointer: &str) -> Result<Option<f64>, SchemaError> {
    match map.get(key) {
        None => Ok(None),
        Some(v) => v
            .as_f64()
            .map(Some)
            .ok_or_else(|| malformed(pointer, format!("`{key}` must be a number"))),
    }
}

fn fail(pointer: &str, message: String) -> Result<(), ValidationError> {
    Err(ValidationError {
        pointer: pointer.to_owned(),
        message,
    })
}

fn type_name(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(n) if n.is_f64() => "a number",
        Value::Number(_) => "an integer",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

fn validate_node(node: &Node, value: &Value, pointer: &mut String) -> Result<(), ValidationError> {
    match (&node.kind, value) {
        (Kind::Any, _) | (Kind::Boolean, Value::Bool(_)) => {}
        (Kind::String { min_len, max_len }, Value::String(s)) => {
            let len = s.chars().count() as u64;
            if min_len.is_some_and(|min| len < min) {
                return fail(
                    pointer,
                    format!("must be at least {} characters long", min_len.unwrap_or(0)),
                );
            }
            if let Some(max) = max_len.filter(|&max| len > max) {
                return fail(pointer, format!("must be at most {max} characters long"));
            }
        }
        (Kind::Integer { min, max }, Value::Number(n)) if !n.is_f64() => {
            check_bounds(n.as_f64().unwrap_or(f64::NAN), *min, *max, pointer)?;
        }
        (Kind::Number { min, max }, Value::Number(n)) => {
            check_bounds(n.as_f64().unwrap_or(f64::NAN), *min, *max, pointer)?;
        }
        (
            Kind::Array {
                items,
                min_items,
                max_items,
            },
            Value::Array(values),
        ) => {
            let len = values.len() as u64;
            if let Some(min) = min_items.filter(|&min| len < min) {
                return fail(pointer, format!("must have at least {min} items"));
            }
            if let Some(max) = max_items.filter(|&max| len > max) {
                return fail(pointer, format!("must have at most {max} items"));
            }
            if let Some(items) = items {
                for (i, item) in values.iter().enumerate() {
                    let len = pointer.len();
                    pointer.push_str(&format!("/{i}"));
                    validate_node(items, item, pointer)?;
                    pointer.truncate(len);
                }
            }
        }
        (
            Kind::Object {
                properties,
                required,
                additional,
            },
            Value::Object(map),
        ) => {
            for name in required {
                if !map.contains_key(name) {
                    return fail(pointer, format!("missing required property `{name}`"));
                }
            }
            for (name, item) in map {
                let len = pointer.len();
                pointer.push('/');
                pointer.push_str(name);
                match properties.get(name) {
                    Some(schema) => validate_node(schema, item, pointer)?,
                    None if !additional => {
                        let known: Vec<&str> = properties.keys().map(String::as_str).collect();
                        return fail(
                            pointer,
                            format!(
                                "unknown property `{name}` (expected one of: {})",
                                known.join(", ")
                            ),
                        );
                    }
                    None => {}
                }
                pointer.truncate(len);
            }
        }
        (kind, other) => {
            let expected = match kind {
                Kind::Boolean => "a boolean",
                Kind::String { .. } => "a string",
                Kind::Integer { .. } => "an integer",
                Kind::Number { .. } => "a number",
                Kind::Array { .. } => "an array",
                Kind::Object { .. } => "an object",
                Kind::Any => "any value",
            };
            return fail(
                pointer,
                format!("expected {expected}, got {}", type_name(other)),
            );
        }
    }
    if let Some(allowed) = &node.allowed
        && !allowed.contains(value)
    {
        let options: Vec<String> = allowed.iter().map(Value::to_string).collect();
        return fail(
            pointer,
            format!("must be one of {}, got {value}", options.join(", ")),
        );
    }
    Ok(())
}

fn check_bounds(
    n: f64,
    min: Option<f64>,
    max: Option<f64>,
    pointer: &str,
) -> Result<(), ValidationError> {
    if let Some(min) = min.filter(|&min| n < min) {
        return fail(pointer, format!("must be at least {min}, got {n}"));
    }
    if let Some(max) = max.filter(|&max| n > max) {
        return fail(pointer, format!("must be at most {max}, got {n}"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn schema() -> Schema {
        Schema::parse(
            &json!({
                "type": "object",
                "properties": {
                    "file_path": { "type": "string", "minLength": 1, "description": "x" },
                    "offset": { "type": "integer", "minimum": 0 },
                    "mode": { "type": "string", "enum": ["a", "b"] },
                    "tags": { "type": "array", "items": { "type": "string" }, "maxItems": 2 }
                },
                "required": ["file_path"],
                "additionalProperties": false
            })
            .to_string(),
        )
        .unwrap()
    }

    fn err(args: Value) -> String {
        schema().validate(&args).unwrap_err().to_string()
    }

    #[test]
    fn accepts_fitting_arguments() {
        schema()
            .validate(&json!({ "file_path": "/w", "offset": 3, "mode": "a", "tags": ["x"] }))
            .unwrap();
    }

    #[test]
    fn reports_each_violation_with_its_pointer() {
        assert_eq!(
            err(json!({})),
            "arguments: missing required property `file_path`"
        );
        assert_eq!(
            err(json!({ "file_path": 3 })),
            "/file_path: expected a string, got an integer"
        );
        assert_eq!(
            err(json!({ "file_path": "" })),
            "/file_path: must be at least 1 characters long"
        );
        assert_eq!(
            err(json!({ "file_path": "/w", "offset": -1 })),
            "/offset: must be at least 0, got -1"
        );
        assert_eq!(
            err(json!({ "file_path": "/w", "offset": 1.5 })),
            "/offset: expected an integer, got a number"
        );
        assert_eq!(
            err(json!({ "file_path": "/w", "mode": "c" })),
            "/mode: must be one of \"a\", \"b\", got \"c\""
        );
        assert_eq!(
            err(json!({ "file_path": "/w", "tags": [1] })),
            "/tags/0: expected a string, got an integer"
        );
        assert_eq!(
            err(json!({ "file_path": "/w", "tags": ["a", "b", "c"] })),
            "/tags: must have at most 2 items"
        );
        assert!(
            err(json!({ "file_path": "/w", "nope": 1 }))
                .starts_with("/nope: unknown property `nope`")
        );
        assert_eq!(
            err(json!([])),
            "arguments: expected an object, got an array"
        );
    }

    #[test]
    fn refuses_schemas_it_cannot_enforce() {
        let parse = |v: Value| Schema::parse(&v.to_string());
        assert!(matches!(
            parse(json!({ "type": "object", "properties": { "p": { "type": "string", "pattern": "^a" } } })),
            Err(SchemaError::UnsupportedKeyword { keyword, .. }) if keyword == "pattern"
        ));
        assert!(matches!(
            parse(json!({ "type": "string" })),
            Err(SchemaError::RootNotObject)
        ));
        assert!(matches!(
            parse(json!({ "type": "object", "oneOf": [] })),
            Err(SchemaError::UnsupportedKeyword { .. })
        ));
        assert!(matches!(
            parse(json!({ "type": "object", "properties": {}, "required": ["x"] })),
            Err(SchemaError::Malformed { .. })
        ));
        assert!(matches!(Schema::parse("{"), Err(SchemaError::NotJson(_))));
    }
}
