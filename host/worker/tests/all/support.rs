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
            _tools: tools,
        }
    }

    /// Stops the worker gracefully and starts a new one on the same data dir.
    pub async fn restart(mut self) -> Self {
        self.stop().await;
        let config = Config {
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

    /// Host path of a session's workspace.
    pub fn workspace(&self, session: &str) -> PathBuf {
        self.data
            .path()
            .join("sessions")
            .join(session)
            .join("workspace")
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
