//! Compiled components on disk, so a restarted worker does not compile its tools again.
//!
//! Compiling a tool costs ~100 ms in a release host (over a second in a debug one); loading the
//! compiled artifact costs well under a millisecond. An artifact is keyed by the SHA-256 of the
//! component *and* by the engine's compatibility hash (wasmtime version, compiler settings, CPU
//! features), so a changed tool or an upgraded host never loads stale code: it compiles anew.

use std::hash::Hasher;
use std::io::Write;
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};
use wasmtime::Engine;
use wasmtime::component::Component;

/// A directory of compiled artifacts, or none (compile in memory every time).
#[derive(Debug, Clone)]
pub struct CompileCache {
    dir: Option<PathBuf>,
    engine_key: String,
}

/// Whether a load was served from the cache.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CacheOutcome {
    Hit,
    Compiled,
}

impl CompileCache {
    /// A cache in `dir` (created if missing), or no cache for `None`.
    ///
    /// The directory must be writable only by the worker: an artifact in it is native code that
    /// the host maps and runs without checking it again.
    pub fn new(engine: &Engine, dir: Option<PathBuf>) -> std::io::Result<Self> {
        if let Some(dir) = &dir {
            std::fs::create_dir_all(dir)?;
        }
        let mut hasher = Sha256Hasher::default();
        std::hash::Hash::hash(&engine.precompile_compatibility_hash(), &mut hasher);
        let engine_key = hex(&hasher.0.finalize()[..8]);
        Ok(Self { dir, engine_key })
    }

    /// The compiled component for `wasm`, from the cache when possible.
    pub fn load(
        &self,
        engine: &Engine,
        wasm: &[u8],
    ) -> wasmtime::Result<(Component, CacheOutcome)> {
        let Some(dir) = &self.dir else {
            return Ok((Component::new(engine, wasm)?, CacheOutcome::Compiled));
        };
        let path = dir.join(format!(
            "{}-{}.cwasm",
            hex(&Sha256::digest(wasm)),
            self.engine_key
        ));
        if path.is_file() {
            match deserialize(engine, &path) {
                Ok(component) => return Ok((component, CacheOutcome::Hit)),
                Err(e) => {
                    tracing::warn!(path = %path.display(), error = %e, "discarding unreadable compiled artifact")
                }
            }
        }
        let component = Component::new(engine, wasm)?;
        if let Err(e) = store_atomically(&path, &component.serialize()?) {
            // The cache is an optimisation: a read-only or full disk costs start-up time, not
            // correctness.
            tracing::warn!(path = %path.display(), error = %e, "could not store compiled artifact");
        }
        Ok((component, CacheOutcome::Compiled))
    }
}

#[expect(
    unsafe_code,
    reason = "wasmtime's deserialisation of trusted precompiled code is unsafe by contract"
)]
fn deserialize(engine: &Engine, path: &Path) -> wasmtime::Result<Component> {
    // SAFETY: the file was produced by `Component::serialize` of an engine with the same
    // compatibility hash (it is part of the file name), was written through a temporary file and
    // an atomic rename (never seen half-written), and lives in a directory only the worker may
    // write (documented on `CompileCache::new`). wasmtime itself also checks the header and the
    // engine configuration before using it.
    unsafe { Component::deserialize_file(engine, path) }
}

fn store_atomically(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let temp = path.with_extension(format!("tmp{}", std::process::id()));
    let mut file = std::fs::File::create(&temp)?;
    file.write_all(bytes)?;
    file.sync_all()?;
    std::fs::rename(&temp, path)
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Feeds `Hash` output into SHA-256, so the key is stable across processes (unlike std's
/// randomly seeded hashers).
#[derive(Default)]
struct Sha256Hasher(Sha256);

impl Hasher for Sha256Hasher {
    fn finish(&self) -> u64 {
        let digest = self.0.clone().finalize();
        u64::from_le_bytes([
            digest[0], digest[1], digest[2], digest[3], digest[4], digest[5], digest[6], digest[7],
        ])
    }

    fn write(&mut self, bytes: &[u8]) {
        self.0.update(bytes);
    }
}
