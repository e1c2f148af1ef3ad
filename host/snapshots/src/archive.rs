//! A whole session as one archive: tar, zstd-compressed, symlinks kept as links.

use std::path::Path;

use crate::Source;

/// zstd's default level: fast, and most of what higher levels would save.
const ZSTD_LEVEL: i32 = 3;

/// Writes every source as a top-level directory of a `.tar.zst` into `out`.
pub fn export_archive(sources: &[Source], out: impl std::io::Write) -> std::io::Result<()> {
    let encoder = zstd::Encoder::new(out, ZSTD_LEVEL)?;
    let mut tar = tar::Builder::new(encoder);
    tar.follow_symlinks(false);
    for source in sources {
        if Path::new(&source.dir).is_dir() {
            tar.append_dir_all(&source.name, &source.dir)?;
        }
    }
    tar.into_inner()?.finish()?;
    Ok(())
}
