//! What the content layer costs the files API: a 1 KiB read and a 1 KiB atomic write, the way
//! round 1 did them (`cap-std`: open the mount, `metadata`, `open`, read; temp file + rename)
//! and through `hearth-content` (`openat2` with no links, `O_NONBLOCK`, `fstat`, capped read;
//! no-follow parents, `O_EXCL` temp file, `fchmod`, rename), alternating in the same run.
//!
//! `cargo bench -p hearth-content --bench files` (`HEARTH_BENCH_DIR` chooses the disk, e.g.
//! `/dev/shm`; `HEARTH_BENCH_ITERS`, default 5,000).

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use cap_std::ambient_authority;
use cap_std::fs::{Dir, OpenOptions};
use hearth_content::Tree;

fn main() -> std::io::Result<()> {
    let iterations: usize = std::env::var("HEARTH_BENCH_ITERS")
        .ok()
        .and_then(|r| r.parse().ok())
        .unwrap_or(5_000);
    let base = std::env::var_os("HEARTH_BENCH_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(std::env::temp_dir);
    let root = tempfile::tempdir_in(&base)?;
    let mount = root.path();
    std::fs::create_dir_all(mount.join("src/pkg"))?;
    let body = vec![b'x'; 1024];
    std::fs::write(mount.join("src/pkg/file.py"), &body)?;
    let rel = "src/pkg/file.py";

    let (mut old_read, mut new_read, mut old_write, mut new_write) =
        (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    for i in 0..iterations {
        let started = Instant::now();
        let bytes = cap_std_read(mount, rel)?;
        old_read.push(started.elapsed());
        let started = Instant::now();
        let read = Tree::open(mount)
            .and_then(|tree| tree.read(Path::new(rel), 1 << 20))
            .map_err(std::io::Error::other)?;
        new_read.push(started.elapsed());
        assert_eq!(bytes, read);

        let name = format!("src/pkg/w{}.py", i % 16);
        let started = Instant::now();
        cap_std_write(mount, &name, &body)?;
        old_write.push(started.elapsed());
        let started = Instant::now();
        Tree::open(mount)
            .and_then(|tree| tree.write_file(Path::new(&name), &body, 0o644))
            .map_err(std::io::Error::other)?;
        new_write.push(started.elapsed());
    }
    println!(
        "{:<22} {:>12} {:>12} {:>8}",
        "1 KiB (p50)", "cap-std", "content", "ratio"
    );
    for (name, old, new) in [
        ("read (files API GET)", &mut old_read, &mut new_read),
        ("write (files API PUT)", &mut old_write, &mut new_write),
    ] {
        let (a, b) = (median(old), median(new));
        println!(
            "{name:<22} {:>9.1} µs {:>9.1} µs {:>7.2}x",
            us(a),
            us(b),
            b.as_secs_f64() / a.as_secs_f64()
        );
    }
    Ok(())
}

/// Round 1's `files::read`.
fn cap_std_read(mount: &Path, rel: &str) -> std::io::Result<Vec<u8>> {
    let dir = Dir::open_ambient_dir(mount, ambient_authority())?;
    let metadata = dir.metadata(rel)?;
    let file = dir.open(rel)?;
    let mut bytes = Vec::with_capacity(metadata.len() as usize);
    file.take(metadata.len() + 1).read_to_end(&mut bytes)?;
    Ok(bytes)
}

/// Round 1's `files::write`.
fn cap_std_write(mount: &Path, rel: &str, bytes: &[u8]) -> std::io::Result<()> {
    let dir = Dir::open_ambient_dir(mount, ambient_authority())?;
    let relative = Path::new(rel);
    let _ = dir.symlink_metadata(relative);
    if let Some(parent) = relative.parent() {
        dir.create_dir_all(parent)?;
    }
    let temp = relative.with_extension("hearth.tmp");
    let mut file = dir.open_with(&temp, OpenOptions::new().write(true).create_new(true))?;
    file.write_all(bytes)?;
    dir.rename(&temp, &dir, relative)
}

fn median(times: &mut [Duration]) -> Duration {
    times.sort();
    times[times.len() / 2]
}

fn us(d: Duration) -> f64 {
    d.as_secs_f64() * 1e6
}
