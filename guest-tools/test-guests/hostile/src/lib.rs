//! A deliberately misbehaving tool, for the host's limit and containment tests only.
//!
//! It uses `std::fs` and `std::net` directly, without the SDK's path checks, so the tests see
//! exactly what the host itself allows. Raw failures come back as `{"ok": false, "error"}`.

use std::io::Write;

use hearth_tool_sdk::{ToolError, View, export_tool};
use serde::Deserialize;
use serde_json::{Value, json};

struct Hostile;

#[derive(Deserialize)]
#[serde(tag = "action", rename_all = "snake_case", deny_unknown_fields)]
enum Args {
    /// Never returns (deadline test).
    Spin,
    /// Allocates until allocation fails (memory-cap test).
    Hog,
    /// Panics (crash test).
    Panic,
    /// Reads a file by raw path.
    Read { path: String },
    /// Writes a file by raw path.
    Write { path: String, content: String },
    /// Lists a directory by raw path.
    List { path: String },
    /// Lists a directory through the host's `listing` import, by raw path.
    HostList { path: String },
    /// Opens a TCP connection.
    Connect { addr: String },
    /// Reports the environment and arguments it was given.
    Env,
    /// Prints `bytes` bytes to stdout and stderr, then succeeds.
    Print { bytes: u64 },
    /// Sleeps (blocked in the host, where epoch checks cannot reach it).
    Sleep { ms: u64 },
    /// Calls `exit` instead of returning.
    Exit,
}

impl hearth_tool_sdk::Tool for Hostile {
    const NAME: &'static str = "hostile";
    const DESCRIPTION: &'static str = "Test-only tool that tries to break out of its limits.";
    const READ_ONLY: bool = false;
    type Args = Args;

    fn input_schema() -> Value {
        json!({
            "type": "object",
            "properties": {
                "action": {
                    "type": "string",
                    "enum": ["spin", "hog", "panic", "read", "write", "list", "host_list", "connect", "env", "print", "sleep", "exit"]
                },
                "path": { "type": "string" },
                "content": { "type": "string" },
                "addr": { "type": "string" },
                "bytes": { "type": "integer", "minimum": 0 },
                "ms": { "type": "integer", "minimum": 0 }
            },
            "required": ["action"],
            "additionalProperties": false
        })
    }

    fn run(_view: &View, args: Args) -> Result<Value, ToolError> {
        Ok(match args {
            Args::Spin => {
                let mut n: u64 = 0;
                loop {
                    n = std::hint::black_box(n.wrapping_add(1));
                }
            }
            Args::Hog => {
                let mut hoard: Vec<Vec<u8>> = Vec::new();
                loop {
                    hoard.push(vec![1u8; 1024 * 1024]);
                    std::hint::black_box(&hoard);
                }
            }
            Args::Panic => panic!("hostile tool panicked on purpose"),
            Args::Read { path } => outcome(std::fs::read_to_string(&path).map(Value::String)),
            Args::Write { path, content } => {
                outcome(std::fs::write(&path, content).map(|()| Value::Null))
            }
            Args::List { path } => outcome(std::fs::read_dir(&path).map(|entries| {
                entries
                    .flatten()
                    .map(|e| Value::String(e.file_name().to_string_lossy().into_owned()))
                    .collect()
            })),
            Args::HostList { path } => {
                use hearth_tool_sdk::bindings::hearth::tool::listing;
                match listing::list_directory(&path, 1_000) {
                    Ok(found) => json!({
                        "ok": true,
                        "value": found.entries.iter().map(|e| e.name.as_str()).collect::<Vec<_>>(),
                    }),
                    Err(e) => json!({ "ok": false, "error": format!("{e:?}") }),
                }
            }
            Args::Connect { addr } => {
                outcome(std::net::TcpStream::connect(addr.as_str()).map(|_| Value::Null))
            }
            Args::Env => json!({
                "vars": std::env::vars().map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>(),
                "args": std::env::args().collect::<Vec<_>>(),
            }),
            Args::Exit => std::process::exit(0),
            Args::Sleep { ms } => {
                std::thread::sleep(std::time::Duration::from_millis(ms));
                json!({ "ok": true })
            }
            Args::Print { bytes } => {
                let line = [b'x'; 1024];
                let mut left = bytes as usize;
                while left > 0 {
                    let n = left.min(line.len());
                    let _ = std::io::stdout().write_all(&line[..n]);
                    let _ = std::io::stderr().write_all(&line[..n]);
                    left -= n;
                }
                json!({ "ok": true })
            }
        })
    }
}

fn outcome(result: std::io::Result<Value>) -> Value {
    match result {
        Ok(value) => json!({ "ok": true, "value": value }),
        Err(e) => json!({ "ok": false, "error": e.to_string(), "kind": format!("{:?}", e.kind()) }),
    }
}

export_tool!(Hostile);
