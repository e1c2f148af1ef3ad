//! Atomic file replacement: readers see the old file or the new one, never half of either.

use std::fs;
use std::hash::{BuildHasher, RandomState};
use std::io::{self, Write};

use crate::view;

/// Writes `bytes` to the view path `path` through a temporary file in the same directory and a
/// rename over the target, creating missing parent directories first.
///
/// The temporary name is unpredictable (seeded from WASI's random source) so two concurrent
/// writers never share one, and it is removed when anything fails.
pub fn write_atomic(path: &str, bytes: &[u8]) -> io::Result<()> {
    let parent = view::parent_of(path);
    fs::create_dir_all(parent)?;
    let name = path.rsplit('/').next().unwrap_or("file");
    let nonce = RandomState::new().hash_one(path);
    let temp = view::join(parent, &format!(".{name}.hearth-{nonce:016x}.tmp"));
    let result = fs::File::create_new(&temp)
        .and_then(|mut file| file.write_all(bytes))
        .and_then(|()| fs::rename(&temp, path));
    if result.is_err() {
        let _ = fs::remove_file(&temp);
    }
    result
}
