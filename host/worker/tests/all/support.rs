//! A worker per test: its own data dir, its own port, a token, and the hostile test tool.

use std::path::PathBuf;

use hearth::Config;
use hearth::config::ReadOnlyArea;
use hearth_client::Client;
use reqwest::Method;
use serde_json::Value;
use tempfile::TempDir;

pub const TOKEN: &str = "test-token-of-reasonable-length";

pub struct Worker {
    pub url: String,
    pub client: Client,
    pub data: TempDir,
    pub skills: TempDir,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
    done: Option<tokio::task::JoinHandle<std::io::Result<()>>>,
    app: std::sync::Arc<hearth::App>,
    _tools: TempDir,
}

impl Worker {
    pub async fn start() -> Self {
        Self::start_with(|_| {}).await
    }

    /// Starts a worker on 127.0.0.1:0 after `adjust` has seen its config.
    pub async fn start_with(adjust: impl FnOnce(&mut Config)) -> Self {
        let data = tempfile::tempdir().unwrap();
        let skills = tempfile::tempdir().unwrap();
        std::fs::write(skills.path().join("SKILL.md"), "# shared skill\n").unwrap();
        let tools = hearth_tests::tools_dir(&[(
            "hostile",
            hearth_tests::HOSTILE_WASM,
            Some("deadline_ms = 300\nmemory_mib = 32\n"),
        )]);
        let mut config = Config {
            listen: "127.0.0.1:0".parse().unwrap(),
            data_dir: data.path().to_path_buf(),
            token: Some(TOKEN.into()),
            tools_dir: Some(tools.path().to_path_buf()),
            cache_dir: Some(hearth_tests::shared_cache_dir()),
            read_only_areas: vec![ReadOnlyArea {
                path: "/workspace/skills".into(),
                source: skills.path().to_path_buf(),
            }],
            ..Config::default()
        };
        adjust(&mut config);
        Self::start_config(config, data, skills, tools).await
    }

    async fn start_config(config: Config, data: TempDir, skills: TempDir, tools: TempDir) -> Self {
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let running = hearth::start(config, async move {
            let _ = rx.await;
        })
        .await
        .unwrap();
        let url = format!("http://{}", running.addr);
        let client = Client::new(&url, Some(TOKEN.into()));
        Self {
            url,
            client,
            data,
            skills,
            shutdown: Some(tx),
            done: Some(running.done),
            app: running.app,
            _tools: tools,
        }
    }

    /// Stops the worker gracefully and starts a new one on the same data dir.
    pub async fn restart(self) -> Self {
        self.restart_with(|_| {}).await
    }

    /// Like `restart`, the new worker with the operator's token (installed tools load again).
    pub async fn restart_keeping_tools(self, operator_token: &str) -> Self {
        self.restart_with(|c| c.tools.operator_token = Some(operator_token.into()))
            .await
    }

    pub async fn restart_with(mut self, adjust: impl FnOnce(&mut Config)) -> Self {
        self.stop().await;
        let mut config = Config {
            listen: "127.0.0.1:0".parse().unwrap(),
            data_dir: self.data.path().to_path_buf(),
            token: Some(TOKEN.into()),
            cache_dir: Some(hearth_tests::shared_cache_dir()),
            read_only_areas: vec![ReadOnlyArea {
                path: "/workspace/skills".into(),
                source: self.skills.path().to_path_buf(),
            }],
            ..Config::default()
        };
        adjust(&mut config);
        let tools = tempfile::tempdir().unwrap();
        let data = std::mem::replace(&mut self.data, tempfile::tempdir().unwrap());
        let skills = std::mem::replace(&mut self.skills, tempfile::tempdir().unwrap());
        Self::start_config(config, data, skills, tools).await
    }

    pub async fn stop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(done) = self.done.take() {
            done.await.unwrap().unwrap();
        }
    }

    /// A raw request, for inputs the client would never send. Returns (status, JSON body).
    pub async fn raw(
        &self,
        method: Method,
        path: &str,
        token: Option<&str>,
        body: Option<Vec<u8>>,
    ) -> (u16, Value) {
        let mut request = reqwest::Client::new().request(method, format!("{}{path}", self.url));
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        if let Some(body) = body {
            request = request.body(body);
        }
        let response = request.send().await.unwrap();
        let status = response.status().as_u16();
        let text = response.text().await.unwrap();
        (
            status,
            serde_json::from_str(&text).unwrap_or(Value::String(text)),
        )
    }

    /// Another worker, with a data dir of its own, on this one's snapshot store (the default
    /// one under this worker's data dir): where a session snapshotted here is restored.
    pub async fn sibling(&self) -> Worker {
        let url = format!("file://{}", self.data.path().join("store").display());
        Worker::start_with(|config| config.snapshots.store_url = Some(url)).await
    }

    /// The worker's state (for what no route does, such as draining it in place).
    pub fn app(&self) -> &std::sync::Arc<hearth::App> {
        &self.app
    }

    /// Host path of a session's workspace.
    pub fn workspace(&self, session: &str) -> PathBuf {
        self.session_base(session).join("workspace")
    }

    /// Host path of a session's scratch directory (its `/tmp`).
    pub fn scratch(&self, session: &str) -> PathBuf {
        self.session_base(session).join("tmp")
    }

    /// Host path of a session's git directory: on its volume, or (quotas off) in its state.
    pub fn git_dir(&self, session: &str) -> PathBuf {
        let dir = self.data.path().join("sessions").join(session);
        match dir.join("volume").is_dir() {
            true => dir.join("volume/git"),
            false => dir.join("state/git"),
        }
    }

    /// Where a session's workspace and scratch are: on its volume, or (quotas off) in its
    /// directory.
    fn session_base(&self, session: &str) -> PathBuf {
        let dir = self.data.path().join("sessions").join(session);
        if dir.join("volume").is_dir() {
            dir.join("volume")
        } else {
            dir
        }
    }
}

impl Drop for Worker {
    /// A worker that was not stopped leaves its sessions' volumes mounted in the data dir, and
    /// its pool would go on making volumes: closed first, then everything unmounted.
    fn drop(&mut self) {
        // A stopped worker released its volumes itself (and a restarted one on the same data
        // dir holds them now).
        if self.done.is_some() {
            self.app.sessions.release_volumes();
        }
        hearth_volume::unmount_all_under(self.data.path());
    }
}

/// A data dir for a worker process a test starts itself: what the process leaves mounted in
/// it (when killed) is unmounted before it is deleted.
pub struct DataDir(TempDir);

impl DataDir {
    pub fn new() -> Self {
        Self(tempfile::tempdir().unwrap())
    }

    pub fn path(&self) -> &std::path::Path {
        self.0.path()
    }
}

impl Drop for DataDir {
    fn drop(&mut self) {
        hearth_volume::unmount_all_under(self.0.path());
    }
}

/// Asserts a JSON error answer: status and code.
pub fn assert_error(answer: &(u16, Value), status: u16, code: &str) {
    assert_eq!(answer.0, status, "{answer:?}");
    assert_eq!(answer.1["error"]["code"], code, "{answer:?}");
    assert!(
        answer.1["error"]["message"]
            .as_str()
            .is_some_and(|m| !m.is_empty()),
        "{answer:?}"
    );
}

/// Asserts a client error: status and code.
pub fn assert_client_error<T: std::fmt::Debug>(
    result: Result<T, hearth_client::Error>,
    status: u16,
    code: &str,
) {
    match result {
        Err(e) => {
            assert_eq!(e.status(), Some(status), "{e}");
            assert_eq!(e.code(), Some(code), "{e}");
        }
        Ok(v) => panic!("expected {status} {code}, got {v:?}"),
    }
}

/// A real git server on loopback: `git daemon` with pushing enabled, serving bare repositories
/// from its own directory. Killed on drop.
pub struct GitServer {
    pub root: TempDir,
    pub port: u16,
    child: std::process::Child,
}

impl GitServer {
    pub fn start() -> Self {
        let root = tempfile::tempdir().unwrap();
        // A free port: bind, read it, release. git daemon takes it a moment later.
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        // `git daemon` would run `git-daemon` as a child of its own and leave it behind
        // when killed: start the daemon itself.
        let child = std::process::Command::new(git_daemon_binary())
            .arg("--reuseaddr")
            .arg("--export-all")
            .arg("--enable=receive-pack")
            .arg("--listen=127.0.0.1")
            .arg(format!("--port={port}"))
            .arg(format!("--base-path={}", root.path().display()))
            .arg(root.path())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        let started = std::time::Instant::now();
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(started.elapsed().as_secs() < 10, "git daemon did not start");
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        Self { root, port, child }
    }

    /// The URL prefix every repository of this server has; what a worker's config allows.
    pub fn prefix(&self) -> String {
        format!("git://127.0.0.1:{}/", self.port)
    }

    pub fn url(&self, repo: &str) -> String {
        format!("{}{repo}", self.prefix())
    }

    /// A new bare repository on `main`, holding `files` in one commit when there are any.
    pub fn repo(&self, name: &str, files: &[(&str, &str)]) -> String {
        let bare = self.root.path().join(name);
        git(
            self.root.path(),
            &["init", "-q", "--bare", "-b", "main", name],
        );
        if !files.is_empty() {
            let work = tempfile::tempdir().unwrap();
            git(work.path(), &["init", "-q", "-b", "main"]);
            for (path, content) in files {
                let file = work.path().join(path);
                std::fs::create_dir_all(file.parent().unwrap()).unwrap();
                std::fs::write(file, content).unwrap();
            }
            git(work.path(), &["add", "-A"]);
            git(work.path(), &["commit", "-q", "-m", "seed"]);
            git(
                work.path(),
                &["push", "-q", bare.to_str().unwrap(), "main:main"],
            );
        }
        self.url(name)
    }

    /// `git --git-dir <repo> args…` on the server side; its stdout.
    pub fn git(&self, repo: &str, args: &[&str]) -> String {
        let dir = self.root.path().join(repo);
        let mut all = vec!["--git-dir", dir.to_str().unwrap()];
        all.extend_from_slice(args);
        git(self.root.path(), &all)
    }
}

impl Drop for GitServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `git-daemon` itself, from git's exec path.
fn git_daemon_binary() -> std::path::PathBuf {
    let out = std::process::Command::new("git")
        .arg("--exec-path")
        .output()
        .unwrap();
    std::path::Path::new(String::from_utf8(out.stdout).unwrap().trim()).join("git-daemon")
}

/// The git CLI with a fixed identity and no user or system config; its stdout.
pub fn git(dir: &std::path::Path, args: &[&str]) -> String {
    let out = std::process::Command::new("git")
        .current_dir(dir)
        .env("GIT_CONFIG_GLOBAL", "/dev/null")
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .args([
            "-c",
            "user.name=Server Side",
            "-c",
            "user.email=server@example.invalid",
        ])
        .args(args)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "git {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// A real S3-compatible server on loopback (`moto`, from PyPI), reached through a proxy the
/// test can take down and bring back. Every server gets its own bucket. Killed on drop.
pub struct S3Server {
    pub bucket: String,
    moto_port: u16,
    proxy: Arc<StdMutex<Option<tokio::task::JoinHandle<()>>>>,
    pub port: u16,
    child: std::process::Child,
}

use std::sync::{Arc, Mutex as StdMutex};

impl S3Server {
    pub async fn start() -> Self {
        let moto_port = free_port();
        let child = std::process::Command::new("python3")
            .args(["-m", "moto.server", "-H", "127.0.0.1", "-p"])
            .arg(moto_port.to_string())
            // Small multipart parts, so a test can upload a few MiB in several.
            .env("S3_UPLOAD_PART_MIN_SIZE", "1")
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        let started = std::time::Instant::now();
        while std::net::TcpStream::connect(("127.0.0.1", moto_port)).is_err() {
            assert!(
                started.elapsed().as_secs() < 30,
                "moto did not start (pip install 'moto[s3]')"
            );
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
        let bucket = format!("hearth-{}", uuid::Uuid::new_v4().simple());
        let created = reqwest::Client::new()
            .put(format!("http://127.0.0.1:{moto_port}/{bucket}"))
            .send()
            .await
            .unwrap();
        assert!(created.status().is_success(), "{created:?}");
        let mut server = Self {
            bucket,
            moto_port,
            proxy: Arc::default(),
            port: free_port(),
            child,
        };
        server.up().await;
        server
    }

    /// The worker config of this store: explicit endpoint and dummy keys, never the
    /// environment's.
    pub fn configure(&self, config: &mut hearth::Config) {
        config.snapshots.store_url = Some(format!("s3://{}/snapshots", self.bucket));
        config.snapshots.store_options = [
            ("aws_endpoint", format!("http://127.0.0.1:{}", self.port)),
            ("aws_region", "us-east-1".into()),
            ("aws_access_key_id", "test".into()),
            ("aws_secret_access_key", "test".into()),
            ("aws_allow_http", "true".into()),
            ("aws_virtual_hosted_style_request", "false".into()),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v))
        .collect();
        config.snapshots.retry_timeout_s = 2.0;
        config.snapshots.max_retries = 2;
    }

    /// Like `configure`, straight to the server: `down` does not cut this worker off.
    pub fn configure_direct(&self, config: &mut hearth::Config) {
        self.configure(config);
        config.snapshots.store_options.insert(
            "aws_endpoint".into(),
            format!("http://127.0.0.1:{}", self.moto_port),
        );
    }

    /// Takes the store off the network: connections to it are refused.
    pub async fn down(&mut self) {
        if let Some(proxy) = self.proxy.lock().unwrap().take() {
            proxy.abort();
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }

    /// Brings it back on the same port.
    pub async fn up(&mut self) {
        let listener = loop {
            match tokio::net::TcpListener::bind(("127.0.0.1", self.port)).await {
                Ok(listener) => break listener,
                Err(_) => tokio::time::sleep(std::time::Duration::from_millis(20)).await,
            }
        };
        let target = self.moto_port;
        let proxy = tokio::spawn(async move {
            // Dropped with this task: taking the store down also cuts pooled connections.
            let mut connections = tokio::task::JoinSet::new();
            while let Ok((mut inbound, _)) = listener.accept().await {
                connections.spawn(async move {
                    if let Ok(mut outbound) =
                        tokio::net::TcpStream::connect(("127.0.0.1", target)).await
                    {
                        let _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
                    }
                });
            }
        });
        *self.proxy.lock().unwrap() = Some(proxy);
    }
}

impl Drop for S3Server {
    fn drop(&mut self) {
        if let Some(proxy) = self.proxy.lock().unwrap().take() {
            proxy.abort();
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Writes a file through the `write_file` tool.
pub async fn write(c: &Client, s: &str, path: &str, content: &str) {
    c.call_tool(
        s,
        "write_file",
        serde_json::json!({ "file_path": path, "content": content }),
    )
    .await
    .unwrap();
}

/// Reads a file through the files API (`path` without its leading `/`).
pub async fn read(c: &Client, s: &str, path: &str) -> String {
    String::from_utf8(c.get_file(s, path).await.unwrap()).unwrap()
}

/// The client's typed calls with JSON in and out, for tests that read the wire format itself.
/// Each request goes through the wire type and each answer comes back through it, so a test
/// also proves that the types carry exactly what the worker says.
pub trait JsonCalls {
    async fn exec_json(&self, session: &str, request: Value)
    -> Result<Value, hearth_client::Error>;
    /// `operation`: `commit`, `push`, `pull`, `merge/continue`, `merge/abort`, `reset`,
    /// `remotes`.
    async fn git(
        &self,
        session: &str,
        operation: &str,
        request: Value,
    ) -> Result<Value, hearth_client::Error>;
    /// `view`: `status`, `log` or `diff`, with its query.
    async fn git_view(
        &self,
        session: &str,
        view: &str,
        query: &[(&str, &str)],
    ) -> Result<Value, hearth_client::Error>;
    async fn create_session_json(
        &self,
        request: Value,
    ) -> Result<hearth_client::wire::sessions::CreatedSession, hearth_client::Error>;
}

fn typed<T: serde::de::DeserializeOwned>(request: Value) -> T {
    serde_json::from_value(request).unwrap()
}

fn json<T: serde::Serialize>(
    answer: Result<T, hearth_client::Error>,
) -> Result<Value, hearth_client::Error> {
    answer.map(|a| serde_json::to_value(a).unwrap())
}

impl JsonCalls for Client {
    async fn exec_json(
        &self,
        session: &str,
        request: Value,
    ) -> Result<Value, hearth_client::Error> {
        json(self.exec(session, &typed(request)).await)
    }

    async fn git(
        &self,
        session: &str,
        operation: &str,
        request: Value,
    ) -> Result<Value, hearth_client::Error> {
        match operation {
            "commit" => json(self.git_commit(session, &typed(request)).await),
            "push" => json(self.git_push(session, &typed(request)).await),
            "pull" => json(self.git_pull(session, &typed(request)).await),
            "merge/continue" => json(self.git_merge_continue(session, &typed(request)).await),
            "merge/abort" => json(self.git_merge_abort(session).await),
            "reset" => json(self.git_reset(session, &typed(request)).await),
            "remotes" => json(self.git_set_remote(session, &typed(request)).await),
            other => panic!("no git operation `{other}`"),
        }
    }

    async fn git_view(
        &self,
        session: &str,
        view: &str,
        query: &[(&str, &str)],
    ) -> Result<Value, hearth_client::Error> {
        let get = |key: &str| query.iter().find(|(k, _)| *k == key).map(|(_, v)| *v);

        match view {
            "status" => json(self.git_status(session).await),
            "log" => {
                let query = hearth_client::wire::git::LogQuery {
                    revision: get("revision").map(str::to_owned),
                    skip: get("skip").map(|v| v.parse().unwrap()),
                    limit: get("limit").map(|v| v.parse().unwrap()),
                };
                json(self.git_log(session, &query).await)
            }
            "diff" => {
                let query = hearth_client::wire::git::DiffQuery {
                    from: get("from").map(str::to_owned),
                    to: get("to").map(str::to_owned),
                };
                json(self.git_diff(session, &query).await)
            }
            other => panic!("no git view `{other}`"),
        }
    }

    async fn create_session_json(
        &self,
        request: Value,
    ) -> Result<hearth_client::wire::sessions::CreatedSession, hearth_client::Error> {
        self.create_session_with(&typed(request)).await
    }
}
