//! Glob patterns with deepagents 0.7 semantics, shared by `glob` and `grep`'s file filter.
//!
//! - A pattern without `/` matches the file *name* at any depth (`*.py` matches `src/app/main.py`).
//! - A pattern with `/` matches the path relative to the search root; a leading `/` anchors it
//!   there (`/*.py` is top-level files only); `**` spans zero or more directories.
//! - `*`, `?`, `[abc]`, `[a-z]`, `[!x]` within a segment; `{a,b}` alternatives anywhere.
//! - A name starting with `.` is matched only by a pattern segment that starts with `.`, and `**`
//!   never enters a dot-directory.

use crate::ToolError;

/// Brace expansion is exponential in the number of groups; this bounds the work one pattern can
/// ask for.
pub const MAX_BRACE_EXPANSIONS: usize = 1_000;

/// A compiled pattern.
#[derive(Debug, Clone)]
pub struct Glob {
    alternatives: Vec<Alternative>,
}

#[derive(Debug, Clone)]
enum Alternative {
    /// Matched against the last path segment only.
    Basename(Vec<char>),
    /// Matched segment by segment against the whole relative path.
    Path(Vec<Segment>),
}

#[derive(Debug, Clone)]
enum Segment {
    AnyDirs,
    Pattern(Vec<char>),
}

impl Glob {
    pub fn new(pattern: &str) -> Result<Self, ToolError> {
        if pattern.is_empty() {
            return Err(ToolError::InvalidInput("glob pattern is empty".into()));
        }
        let expanded = expand_braces(pattern)?;
        let mut alternatives = Vec::with_capacity(expanded.len());
        for alt in expanded {
            if alt.split('/').any(|s| s == "..") {
                return Err(ToolError::InvalidInput(format!(
                    "glob pattern `{pattern}` may not contain `..`"
                )));
            }
            alternatives.push(if alt.contains('/') {
                let segments = alt
                    .split('/')
                    .filter(|s| !s.is_empty() && *s != ".")
                    .map(|s| match s {
                        "**" => Segment::AnyDirs,
                        other => Segment::Pattern(other.chars().collect()),
                    })
                    .collect();
                Alternative::Path(segments)
            } else {
                Alternative::Basename(alt.chars().collect())
            });
        }
        Ok(Self { alternatives })
    }

    /// Whether `relative` (a `/`-separated path below the search root, no leading `/`) matches.
    pub fn matches(&self, relative: &str) -> bool {
        let name = relative.rsplit('/').find(|s| !s.is_empty());
        let mut segments: Option<Vec<&str>> = None;
        self.alternatives.iter().any(|alt| match alt {
            Alternative::Basename(p) => name.is_some_and(|name| segment_matches(p, name)),
            Alternative::Path(p) => {
                // A last pattern segment takes exactly the last path segment: most paths a walk
                // meets fail here, before any segment list is built.
                if let Some(Segment::Pattern(last)) = p.last()
                    && !name.is_some_and(|name| segment_matches(last, name))
                {
                    return false;
                }
                let segments = segments
                    .get_or_insert_with(|| relative.split('/').filter(|s| !s.is_empty()).collect());
                path_matches(p, segments)
            }
        })
    }
}

/// Segment-wise match with `**`, by dynamic programming over (pattern segment, path segment):
/// O(pattern × path) whatever the number of `**`, where naive backtracking is exponential.
fn path_matches(pattern: &[Segment], path: &[&str]) -> bool {
    // reachable[j]: the pattern prefix consumed so far can match the first j path segments.
    let mut reachable = vec![false; path.len() + 1];
    reachable[0] = true;
    for segment in pattern {
        let mut next = vec![false; path.len() + 1];
        match segment {
            Segment::AnyDirs => {
                // Zero or more further segments, none of them a dot-name.
                for j in 0..=path.len() {
                    next[j] =
                        reachable[j] || (j > 0 && next[j - 1] && !path[j - 1].starts_with('.'));
                }
            }
            Segment::Pattern(p) => {
                for j in 1..=path.len() {
                    next[j] = reachable[j - 1] && segment_matches(p, path[j - 1]);
                }
            }
        }
        reachable = next;
    }
    reachable[path.len()]
}

/// Matches one path segment, applying the dot-name rule.
fn segment_matches(pattern: &[char], name: &str) -> bool {
    if name.starts_with('.') && pattern.first() != Some(&'.') {
        return false;
    }
    if !pattern.iter().any(|c| matches!(c, '*' | '?' | '[' | '\\')) {
        // A literal segment: the name itself, compared without collecting it.
        return name.chars().eq(pattern.iter().copied());
    }
    let name: Vec<char> = name.chars().collect();
    wildcard(pattern, &name)
}

/// `*`, `?`, `[...]` and `\` escapes over one segment, with the classic backtracking of the last
/// `*` (linear in practice, no exponential blow-up).
fn wildcard(pattern: &[char], name: &[char]) -> bool {
    let (mut p, mut n) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while n < name.len() {
        match pattern.get(p) {
            Some('*') => {
                star = Some((p, n));
                p += 1;
                continue;
            }
            Some('?') => {
                p += 1;
                n += 1;
                continue;
            }
            Some('[') => {
                if let Some((matched, next)) = class(pattern, p, name[n]) {
                    if matched {
                        p = next;
                        n += 1;
                        continue;
                    }
                } else if name[n] == '[' {
                    p += 1;
                    n += 1;
                    continue;
                }
            }
            Some('\\') if p + 1 < pattern.len() && pattern[p + 1] == name[n] => {
                p += 2;
                n += 1;
                continue;
            }
            Some('\\') if p + 1 < pattern.len() => {}
            Some(&c) if c == name[n] => {
                p += 1;
                n += 1;
                continue;
            }
            _ => {}
        }
        match star {
            Some((sp, sn)) => {
                p = sp + 1;
                n = sn + 1;
                star = Some((sp, sn + 1));
            }
            None => return false,
        }
    }
    pattern[p..].iter().all(|&c| c == '*')
}

/// Parses the character class starting at `pattern[start] == '['`; returns whether `c` is in it
/// and the index after the closing `]`, or `None` when the class is unterminated (then `[` is a
/// literal).
fn class(pattern: &[char], start: usize, c: char) -> Option<(bool, usize)> {
    let mut i = start + 1;
    let negated = matches!(pattern.get(i), Some('!' | '^'));
    if negated {
        i += 1;
    }
    let mut matched = false;
    let mut first = true;
    while let Some(&ch) = pattern.get(i) {
        if ch == ']' && !first {
            return Some((matched != negated, i + 1));
        }
        first = false;
        if pattern.get(i + 1) == Some(&'-') && pattern.get(i + 2).is_some_and(|&e| e != ']') {
            let end = pattern[i + 2];
            matched |= ch <= c && c <= end;
            i += 3;
        } else {
            matched |= ch == c;
            i += 1;
        }
    }
    None
}

/// Expands `{a,b}` groups (nested allowed) into plain patterns.
fn expand_braces(pattern: &str) -> Result<Vec<String>, ToolError> {
    let chars: Vec<char> = pattern.chars().collect();
    let Some((open, close)) = first_group(&chars) else {
        return Ok(vec![pattern.to_owned()]);
    };
    let prefix: String = chars[..open].iter().collect();
    let suffix: String = chars[close + 1..].iter().collect();
    let mut out = Vec::new();
    for option in split_top_level(&chars[open + 1..close]) {
        for rest in expand_braces(&format!("{prefix}{option}{suffix}"))? {
            out.push(rest);
            if out.len() > MAX_BRACE_EXPANSIONS {
                return Err(ToolError::InvalidInput(format!(
                    "glob pattern `{pattern}` expands to more than {MAX_BRACE_EXPANSIONS} alternatives"
                )));
            }
        }
    }
    Ok(out)
}

/// The first balanced `{...}` group that contains a top-level comma.
fn first_group(chars: &[char]) -> Option<(usize, usize)> {
    let mut i = 0;
    while i < chars.len() {
        match chars[i] {
            '\\' => i += 1,
            '{' => {
                let mut depth = 0;
                let mut has_comma = false;
                let mut j = i;
                while j < chars.len() {
                    match chars[j] {
                        '\\' => j += 1,
                        '{' => depth += 1,
                        '}' => {
                            depth -= 1;
                            if depth == 0 {
                                break;
                            }
                        }
                        ',' if depth == 1 => has_comma = true,
                        _ => {}
                    }
                    j += 1;
                }
                if j < chars.len() && has_comma {
                    return Some((i, j));
                }
            }
            _ => {}
        }
        i += 1;
    }
    None
}

fn split_top_level(chars: &[char]) -> Vec<String> {
    let mut parts = vec![String::new()];
    let mut depth = 0;
    let mut escaped = false;
    for &c in chars {
        if escaped {
            escaped = false;
        } else {
            match c {
                '\\' => escaped = true,
                '{' => depth += 1,
                '}' => depth -= 1,
                ',' if depth == 0 => {
                    parts.push(String::new());
                    continue;
                }
                _ => {}
            }
        }
        if let Some(last) = parts.last_mut() {
            last.push(c);
        }
    }
    parts
}

#[cfg(test)]
mod tests {
    use super::*;

    fn m(pattern: &str, path: &str) -> bool {
        Glob::new(pattern).unwrap().matches(path)
    }

    #[test]
    fn basename_patterns_match_at_any_depth() {
        assert!(m("*.py", "main.py"));
        assert!(m("*.py", "src/app/main.py"));
        assert!(!m("*.py", "src/app/main.pyc"));
        assert!(m("*.yml", ".github/workflows/ci.yml"));
    }

    #[test]
    fn path_patterns_are_anchored_and_globstar_spans_dirs() {
        assert!(m("/*.py", "main.py"));
        assert!(!m("/*.py", "src/main.py"));
        assert!(m("src/*.py", "src/main.py"));
        assert!(!m("src/*.py", "src/a/main.py"));
        assert!(m("**/*.py", "main.py"));
        assert!(m("**/*.py", "a/b/c/main.py"));
        assert!(m("src/**/test_*.py", "src/x/y/test_a.py"));
        assert!(m("src/**", "src/x/y"));
    }

    #[test]
    fn dot_names_need_an_explicit_dot() {
        assert!(!m("*", ".env"));
        assert!(m(".*", ".env"));
        assert!(!m("**/*.yml", ".github/workflows/ci.yml"));
        assert!(m(".github/**/*.yml", ".github/workflows/ci.yml"));
    }

    #[test]
    fn braces_classes_and_escapes() {
        assert!(m("*.{rs,toml}", "Cargo.toml"));
        assert!(m("*.{rs,toml}", "src/lib.rs"));
        assert!(!m("*.{rs,toml}", "README.md"));
        assert!(m("{src,tests}/**/*.rs", "tests/all/main.rs"));
        assert!(m("file[0-9].txt", "file7.txt"));
        assert!(!m("file[!0-9].txt", "file7.txt"));
        assert!(m("a?c", "abc"));
        assert!(m(r"a\*c", "a*c"));
        assert!(!m(r"a\*c", "abc"));
        assert!(m("{a}", "{a}"), "a group without a comma is literal");
    }

    #[test]
    fn many_globstars_stay_fast() {
        let pattern = format!("{}zz", "**/".repeat(16));
        let deep = format!("{}nope", "d/".repeat(20));
        let started = std::time::Instant::now();
        assert!(!m(&pattern, &deep));
        assert!(m(&pattern, "a/b/zz"));
        assert!(
            started.elapsed() < std::time::Duration::from_secs(1),
            "matching is polynomial"
        );
    }

    #[test]
    fn refuses_traversal_and_runaway_braces() {
        assert!(Glob::new("../*.py").is_err());
        assert!(Glob::new("").is_err());
        assert!(Glob::new(&"{a,b}".repeat(12)).is_err());
    }
}
