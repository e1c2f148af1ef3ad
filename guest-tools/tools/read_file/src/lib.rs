//! `read_file`: a page of lines from a text file, or a whole small binary file as base64.

use std::fs::File;
use std::io::Read;

use base64::Engine as _;
use hearth_tool_sdk::{ToolError, View, export_tool};
use serde::Deserialize;
use serde_json::{Value, json};

/// deepagents' limit for binary previews (`MAX_BINARY_BYTES`); base64 grows it by a third.
const MAX_BINARY_BYTES: u64 = 512_000;
/// The largest page of text one call returns; a longer page ends early with `truncated`.
const MAX_PAGE_BYTES: usize = 512_000;
/// How much of the file decides whether it is text (no NUL byte, valid UTF-8).
const SNIFF_BYTES: usize = 8_192;
const DEFAULT_LIMIT: u64 = 2_000;
const MAX_LIMIT: u64 = 100_000;

struct ReadFile;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Args {
    file_path: String,
    #[serde(default)]
    offset: u64,
    #[serde(default = "default_limit")]
    limit: u64,
}

fn default_limit() -> u64 {
    DEFAULT_LIMIT
}

impl hearth_tool_sdk::Tool for ReadFile {
    const NAME: &'static str = "read_file";
    const DESCRIPTION: &'static str = "Read a file. Text comes back raw (no line numbers) as a page of \
        `limit` lines starting at line `offset` (0-based), with `start_line`/`end_line` (1-based), \
        `total_lines` and `next_offset` (null at the end of the file); use `next_offset` to read on. \
        Binary files (up to 512000 bytes) come back whole, base64-encoded, with `encoding: \"base64\"`.";
    const READ_ONLY: bool = true;
    type Args = Args;

    fn input_schema() -> Value {
        json!({
            "type": "object",
            "properties": {
                "file_path": {
                    "type": "string",
                    "description": "Absolute path of the file to read, e.g. /workspace/src/main.py."
                },
                "offset": {
                    "type": "integer",
                    "minimum": 0,
                    "description": "Line to start from, 0-based. Defaults to 0."
                },
                "limit": {
                    "type": "integer",
                    "minimum": 1,
                    "maximum": MAX_LIMIT,
                    "description": "Maximum number of lines to return. Defaults to 2000."
                }
            },
            "required": ["file_path"],
            "additionalProperties": false
        })
    }

    fn run(view: &View, args: Args) -> Result<Value, ToolError> {
        let (path, _) = view.resolve_file(&args.file_path)?;
        let metadata = ToolError::regular_file(&path, &args.file_path)?;
        let mut file = File::open(&path).map_err(ToolError::io(&args.file_path))?;
        let mut head = vec![0u8; SNIFF_BYTES];
        let n = read_full(&mut file, &mut head).map_err(ToolError::io(&args.file_path))?;
        head.truncate(n);
        if is_binary(&head) {
            return read_binary(&args.file_path, file, head, metadata.len());
        }
        let page = Page::collect(&head, file, args.offset, args.limit)
            .map_err(ToolError::io(&args.file_path))?;
        if page.total_lines > 0 && args.offset >= page.total_lines
            || page.total_lines == 0 && args.offset > 0
        {
            return Err(ToolError::InvalidInput(format!(
                "Line offset {} exceeds file length ({} lines)",
                args.offset, page.total_lines
            )));
        }
        let end_line = args.offset + page.lines;
        Ok(json!({
            "content": String::from_utf8_lossy(&page.content),
            "encoding": "utf-8",
            "start_line": if page.lines > 0 { args.offset + 1 } else { 0 },
            "end_line": end_line,
            "total_lines": page.total_lines,
            "next_offset": (end_line < page.total_lines).then_some(end_line),
            "truncated": page.truncated,
        }))
    }
}

fn read_binary(
    file_path: &str,
    mut file: File,
    mut bytes: Vec<u8>,
    len: u64,
) -> Result<Value, ToolError> {
    if len > MAX_BINARY_BYTES {
        return Err(ToolError::TooLarge(format!(
            "Binary file exceeds maximum preview size of {MAX_BINARY_BYTES} bytes"
        )));
    }
    // Read at most one byte past the limit, in case the file grew since `metadata`.
    (&mut file)
        .take(MAX_BINARY_BYTES + 1 - bytes.len() as u64)
        .read_to_end(&mut bytes)
        .map_err(ToolError::io(file_path))?;
    if bytes.len() as u64 > MAX_BINARY_BYTES {
        return Err(ToolError::TooLarge(format!(
            "Binary file exceeds maximum preview size of {MAX_BINARY_BYTES} bytes"
        )));
    }
    Ok(json!({
        "content": base64::engine::general_purpose::STANDARD.encode(&bytes),
        "encoding": "base64",
        "size": bytes.len(),
    }))
}

/// Text is UTF-8 without NUL bytes; a multi-byte character cut by the end of the sample is fine.
fn is_binary(head: &[u8]) -> bool {
    if head.contains(&0) {
        return true;
    }
    match std::str::from_utf8(head) {
        Ok(_) => false,
        Err(e) => e.error_len().is_some(),
    }
}

/// The requested lines, gathered in one streaming pass that also counts every line of the file
/// (memory stays bounded by the page cap, whatever the file's size or line lengths).
struct Page {
    content: Vec<u8>,
    lines: u64,
    total_lines: u64,
    truncated: bool,
}

impl Page {
    fn collect(head: &[u8], mut file: File, offset: u64, limit: u64) -> std::io::Result<Self> {
        let mut page = Page {
            content: Vec::new(),
            lines: 0,
            total_lines: 0,
            truncated: false,
        };
        let mut line = Vec::new(); // the current in-range line, while it fits
        let mut line_overflowed = false;
        let mut current: u64 = 0; // 0-based index of the line being scanned
        let mut at_line_start = true;
        let mut chunk = head.to_vec();
        // A file shorter than the sniffed head is already whole: no buffer, no second read.
        let mut more = head.len() == SNIFF_BYTES;
        let mut buf = Vec::new();
        loop {
            for piece in chunk.split_inclusive(|&b| b == b'\n') {
                at_line_start = false;
                let in_range = current >= offset && current < offset.saturating_add(limit);
                if in_range && !page.truncated && !line_overflowed {
                    if page.content.len() + line.len() + piece.len() <= MAX_PAGE_BYTES {
                        line.extend_from_slice(piece);
                    } else {
                        line_overflowed = true;
                    }
                }
                if piece.last() == Some(&b'\n') {
                    page.finish_line(&mut line, &mut line_overflowed, in_range);
                    current += 1;
                    at_line_start = true;
                }
            }
            if !more {
                break;
            }
            buf.resize(64 * 1024, 0);
            let n = read_full(&mut file, &mut buf)?;
            more = n == buf.len();
            if n == 0 {
                break;
            }
            chunk.clear();
            chunk.extend_from_slice(&buf[..n]);
        }
        if !at_line_start {
            let in_range = current >= offset && current < offset.saturating_add(limit);
            page.finish_line(&mut line, &mut line_overflowed, in_range);
            current += 1;
        }
        page.total_lines = current;
        Ok(page)
    }

    fn finish_line(&mut self, line: &mut Vec<u8>, overflowed: &mut bool, in_range: bool) {
        if !in_range || self.truncated {
            return;
        }
        if *overflowed {
            self.truncated = true;
            // A single line longer than a whole page still yields its beginning, so the agent
            // sees something and can move past it with `next_offset`.
            if self.lines == 0 {
                line.truncate(complete_utf8_prefix(line));
                self.content.append(line);
                self.lines = 1;
            }
        } else {
            self.content.append(line);
            self.lines += 1;
        }
        line.clear();
        *overflowed = false;
    }
}

/// The length of `bytes` without a UTF-8 sequence cut off at its end (a cut line must not end
/// in half a character).
fn complete_utf8_prefix(bytes: &[u8]) -> usize {
    match std::str::from_utf8(bytes) {
        Err(e) if e.error_len().is_none() => e.valid_up_to(),
        _ => bytes.len(),
    }
}

fn read_full(file: &mut File, buf: &mut [u8]) -> std::io::Result<usize> {
    let mut filled = 0;
    while filled < buf.len() {
        match file.read(&mut buf[filled..])? {
            0 => break,
            n => filled += n,
        }
    }
    Ok(filled)
}

export_tool!(ReadFile);
