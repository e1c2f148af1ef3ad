//! Snapshot cost for 1,000 files of 10 KiB: a full snapshot, an incremental one after one
//! changed file (and how many objects it wrote), and a restore; on the local store and on a
//! loopback S3 (`moto`, started here: `pip install 'moto[s3]==5.2.5' flask flask-cors`).
//!
//! `cargo bench -p hearth-snapshots --bench snapshots` (`HEARTH_BENCH_DIR` chooses the disk,
//! `HEARTH_BENCH_ROUNDS` the rounds, default 5).

use std::io::Write;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use hearth_snapshots::{FileCache, Snapshots, Source, StoreConfig, Tuning};

const FILES: usize = 1_000;
const FILE_BYTES: usize = 10 * 1024;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let rounds: usize = std::env::var("HEARTH_BENCH_ROUNDS")
        .ok()
        .and_then(|r| r.parse().ok())
        .unwrap_or(5);
    let base = std::env::var_os("HEARTH_BENCH_DIR")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(std::env::temp_dir);
    let root = tempfile::tempdir_in(&base)?;
    let work = root.path().join("session");
    make_tree(&work)?;
    println!(
        "snapshots: {FILES} files of {} KiB, {rounds} rounds, medians (disk: {})",
        FILE_BYTES / 1024,
        base.display()
    );

    let local = StoreConfig {
        url: Some(format!("file://{}", root.path().join("store").display())),
        ..StoreConfig::default()
    };
    measure("local directory", &local, &work, root.path(), rounds).await?;

    let moto = Moto::start()?;
    let s3 = StoreConfig {
        url: Some(format!("s3://{}/bench", moto.bucket)),
        options: [
            ("aws_endpoint", format!("http://127.0.0.1:{}", moto.port)),
            ("aws_region", "us-east-1".into()),
            ("aws_access_key_id", "bench".into()),
            ("aws_secret_access_key", "bench".into()),
            ("aws_allow_http", "true".into()),
            ("aws_virtual_hosted_style_request", "false".into()),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v))
        .collect(),
        max_retries: 3,
        retry_timeout: Duration::from_secs(30),
        ..StoreConfig::default()
    };
    measure("S3 (moto, loopback)", &s3, &work, root.path(), rounds).await?;
    Ok(())
}

async fn measure(
    label: &str,
    config: &StoreConfig,
    work: &Path,
    scratch: &Path,
    rounds: usize,
) -> anyhow::Result<()> {
    let snapshots = Snapshots::new(hearth_snapshots::open(config, scratch)?, Tuning::default());
    let sources = vec![Source {
        name: "workspace".into(),
        dir: work.to_owned(),
    }];
    let (mut full, mut incremental, mut restore) = (Vec::new(), Vec::new(), Vec::new());
    let mut objects = 0;
    for round in 0..rounds {
        let session = format!("bench-{round}");
        let mut cache = FileCache::default();
        let started = Instant::now();
        snapshots.take(&session, &sources, &mut cache, None).await?;
        full.push(started.elapsed());

        std::fs::write(
            work.join("d07/f0007.txt"),
            format!("changed in round {round}\n"),
        )?;
        let started = Instant::now();
        let info = snapshots.take(&session, &sources, &mut cache, None).await?;
        incremental.push(started.elapsed());
        objects = info.objects_written;
        anyhow::ensure!(info.uploaded_blobs == 1, "incremental uploaded {info:?}");

        let target =
            scratch.join(format!("restore-{label}-{round}").replace([' ', '(', ')', ','], "_"));
        let started = Instant::now();
        let manifest = snapshots.resolve(&session).await?;
        snapshots
            .restore(
                &manifest,
                &[Source {
                    name: "workspace".into(),
                    dir: target.clone(),
                }],
            )
            .await?;
        restore.push(started.elapsed());
        std::fs::remove_dir_all(&target)?;
    }
    println!("  {label}");
    println!(
        "    full snapshot          {:>8.1} ms",
        median_ms(&mut full)
    );
    println!(
        "    incremental (1 file)   {:>8.1} ms   objects written: {objects} (1 blob + manifest + pointer)",
        median_ms(&mut incremental)
    );
    println!(
        "    restore                {:>8.1} ms",
        median_ms(&mut restore)
    );
    Ok(())
}

fn make_tree(dir: &Path) -> std::io::Result<()> {
    for i in 0..FILES {
        let sub = dir.join(format!("d{:02}", i % 20));
        std::fs::create_dir_all(&sub)?;
        let line = format!("file {i} of the benchmark tree\n");
        let content = line.repeat(FILE_BYTES / line.len() + 1);
        std::fs::write(sub.join(format!("f{i:04}.txt")), &content[..FILE_BYTES])?;
    }
    Ok(())
}

fn median_ms(samples: &mut [Duration]) -> f64 {
    samples.sort();
    samples[samples.len() / 2].as_secs_f64() * 1e3
}

/// moto's S3 server on a free loopback port, with one bucket; killed on drop.
struct Moto {
    child: Child,
    port: u16,
    bucket: String,
}

impl Moto {
    fn start() -> anyhow::Result<Self> {
        let port = std::net::TcpListener::bind("127.0.0.1:0")?
            .local_addr()?
            .port();
        let child = Command::new("python3")
            .args([
                "-m",
                "moto.server",
                "-H",
                "127.0.0.1",
                "-p",
                &port.to_string(),
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()?;
        let moto = Self {
            child,
            port,
            bucket: "hearth-bench".into(),
        };
        let started = Instant::now();
        let mut stream = loop {
            match std::net::TcpStream::connect(("127.0.0.1", port)) {
                Ok(stream) => break stream,
                Err(_) if started.elapsed() < Duration::from_secs(30) => {
                    std::thread::sleep(Duration::from_millis(50))
                }
                Err(e) => anyhow::bail!("moto did not start (pip install 'moto[s3]'): {e}"),
            }
        };
        write!(
            stream,
            "PUT /{} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
            moto.bucket
        )?;
        let mut answer = String::new();
        std::io::Read::read_to_string(&mut stream, &mut answer)?;
        anyhow::ensure!(
            answer.starts_with("HTTP/1.1 200"),
            "creating the bucket: {answer}"
        );
        Ok(moto)
    }
}

impl Drop for Moto {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
