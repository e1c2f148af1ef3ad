//! A whole session as one archive: tar, zstd-compressed, symlinks kept as links.
//!
//! The tree is the agent's: it is walked through `hearth-content` (no link followed, FIFOs,
//! sockets and devices left out without being opened, a bounded depth), each file is read up
//! to the size its header promised, and modes are made safe (no setuid, setgid, sticky or
//! world-write bits reach whoever unpacks the archive).

use std::io::Read;
use std::path::Path;

use hearth_content::walk::Walk;
use hearth_content::{ContentError, Kind, Tree, safe_mode};

use crate::{SnapshotError, Source};

/// zstd's default level: fast, and most of what higher levels would save.
const ZSTD_LEVEL: i32 = 3;

/// Writes every source as a top-level directory of a `.tar.zst` into `out`, at most
/// `max_depth` directories deep.
pub fn export_archive(
    sources: &[Source],
    max_depth: usize,
    out: impl std::io::Write,
) -> Result<(), SnapshotError> {
    let encoder = zstd::Encoder::new(out, ZSTD_LEVEL)?;
    let mut tar = tar::Builder::new(encoder);
    for source in sources {
        let root = match Tree::open(&source.dir) {
            Ok(root) => root,
            Err(ContentError::NotFound) => continue,
            Err(e) => return Err(e.into()),
        };
        let mut header = new_header(tar::EntryType::Directory, 0o755, 0);
        tar.append_data(&mut header, &source.name, std::io::empty())?;
        Walk::new(max_depth).run(&root, |visit| {
            let path = Path::new(&source.name).join(visit.path);
            match visit.kind {
                Kind::Dir => {
                    let stat = visit.dir.stat_entry(visit.name)?;
                    let mut header = new_header(tar::EntryType::Directory, stat.st_mode, 0);
                    tar.append_data(&mut header, &path, std::io::empty())?;
                }
                Kind::Symlink => {
                    let target = visit.dir.read_link(Path::new(visit.name), 4096)?;
                    let mut header = new_header(tar::EntryType::Symlink, 0o777, 0);
                    tar.append_link(&mut header, &path, &target)?;
                }
                Kind::File => {
                    let (file, stat) = match visit.dir.open_listed_file(Path::new(visit.name))? {
                        Some(opened) => opened,
                        // Replaced or removed since the listing: not content any more.
                        None => return Ok(()),
                    };
                    let size = u64::try_from(stat.st_size).unwrap_or(0);
                    let mut header = new_header(tar::EntryType::Regular, stat.st_mode, size);
                    header.set_mtime(u64::try_from(stat.st_mtime).unwrap_or(0));
                    // Exactly the promised size: a file that shrank meanwhile is padded with
                    // zeros, one that grew is cut, so the archive stays well-formed.
                    let body = file.take(size).chain(std::io::repeat(0)).take(size);
                    tar.append_data(&mut header, &path, body)?;
                }
                Kind::Special(_) => {}
            }
            Ok::<(), SnapshotError>(())
        })?;
    }
    tar.into_inner()?.finish()?;
    Ok(())
}

/// A header for an entry of `kind`, owned by root, with a safe mode.
fn new_header(kind: tar::EntryType, mode: u32, size: u64) -> tar::Header {
    let mut header = tar::Header::new_gnu();
    header.set_entry_type(kind);
    header.set_mode(if kind == tar::EntryType::Symlink {
        0o777
    } else {
        safe_mode(mode)
    });
    header.set_size(size);
    header.set_uid(0);
    header.set_gid(0);
    header
}
