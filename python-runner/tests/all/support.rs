//! A session-shaped layout on disk and a runner over the real helper.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::OnceLock;
use std::time::Duration;

use hearth_python_runner::{Bind, ExecLimits, Job, Outcome, Runner};
use tempfile::TempDir;

pub const SECRET: &str = "host-secret-7f3a";

/// The shared runner (the interpreter is resolved once).
/// The real interpreter behind `python3`, as the worker runs it.
pub fn python_path() -> String {
    runner()
        .interpreter()
        .executable
        .to_string_lossy()
        .into_owned()
}

pub fn runner() -> &'static Runner {
    static RUNNER: OnceLock<Runner> = OnceLock::new();
    RUNNER.get_or_init(|| {
        let helper = PathBuf::from(env!("CARGO_BIN_EXE_hearth-jail"));
        Runner::new(helper.clone(), "python3")
            .or_else(|_| Runner::new(helper, "/usr/bin/python3"))
            .unwrap()
            .with_warm_jails(2)
    })
}

/// `<root>/{workspace,tmp,skills,state}` plus a secret beside them.
pub struct Sandbox {
    pub root: TempDir,
    pub workspace: PathBuf,
    pub tmp: PathBuf,
    pub skills: PathBuf,
    pub secret: PathBuf,
}

impl Sandbox {
    pub fn new() -> Self {
        let root = tempfile::tempdir().unwrap();
        let workspace = root.path().join("workspace");
        let tmp = root.path().join("tmp");
        let skills = root.path().join("skills");
        for dir in [&workspace, &tmp, &skills, &root.path().join("state")] {
            std::fs::create_dir_all(dir).unwrap();
        }
        std::fs::write(skills.join("SKILL.md"), "# skill\n").unwrap();
        let secret = root.path().join("secret.txt");
        std::fs::write(&secret, SECRET).unwrap();
        Self {
            root,
            workspace,
            tmp,
            skills,
            secret,
        }
    }

    pub fn put(&self, relative: &str, content: &str) {
        let path = self.workspace.join(relative);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, content).unwrap();
    }

    pub fn job(&self, argv: &[&str]) -> Job {
        Job {
            root_dir: self.root.path().join("state").join("root"),
            mounts: vec![
                Bind {
                    source: self.workspace.clone(),
                    target: "/workspace".into(),
                    writable: true,
                },
                Bind {
                    source: self.tmp.clone(),
                    target: "/tmp".into(),
                    writable: true,
                },
                Bind {
                    source: self.skills.clone(),
                    target: "/workspace/skills".into(),
                    writable: false,
                },
            ],
            cwd: "/workspace".into(),
            argv: argv.iter().map(|a| (*a).to_owned()).collect(),
            env: BTreeMap::new(),
            stdin: Vec::new(),
            keep_stdin_open: false,
            network: None,
            sockets: hearth_python_runner::SocketPolicy::UnixOnly,
            limits: ExecLimits {
                wall: Duration::from_secs(20),
                ..ExecLimits::default()
            },
        }
    }

    pub fn run(&self, argv: &[&str]) -> Outcome {
        runner().run(&self.job(argv)).unwrap()
    }

    /// Runs Python code; the interpreter is the real one, as the worker runs it.
    pub fn python(&self, code: &str) -> Outcome {
        let python = python_path();
        self.run(&[&python, "-E", "-s", "-B", "-c", code])
    }
}

pub fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}
