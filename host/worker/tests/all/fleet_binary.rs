//! Three real `hearth` binaries on one S3 store (moto on loopback): sessions created and used
//! through random doors; one worker killed with SIGKILL, its sessions served by the others
//! from their last snapshots within a bound; the victim back on its old disk neither serving
//! nor publishing its stale copies (issue 17's exact sequence); writes through every door at
//! once; and a drained worker that loses nothing it acknowledged.

use std::time::{Duration, Instant};

use hearth_client::Client;
use reqwest::Method;
use tokio::process::Child;

use crate::binary::serve;
use crate::support::{DataDir, S3Server, TOKEN, read, write};

/// Lease lifetime of these workers: the bound of a takeover after a kill.
/// The operator's token of the fleet's workers.
const OPERATOR: &str = "operator-token-of-the-fleet";
const LEASE_TTL_S: f64 = 3.0;

struct Member {
    id: &'static str,
    data: DataDir,
    config: String,
    child: Option<Child>,
    url: String,
    client: Client,
}

impl Member {
    async fn start(id: &'static str, s3: &S3Server) -> Self {
        let data = DataDir::new();
        let mut config = hearth::Config::default();
        s3.configure(&mut config);
        let options: String = config
            .snapshots
            .store_options
            .iter()
            .map(|(k, v)| format!("{k} = \"{v}\"\n"))
            .collect();
        let path = data.path().join("fleet.toml");
        std::fs::write(
            &path,
            format!(
                "worker_id = \"{id}\"\ndrain_timeout_s = 30\n\
                 [tools]\noperator_token = \"{OPERATOR}\"\n\
                 [snapshots]\nstore_url = \"{}\"\nauto_delay_s = 0\nretry_timeout_s = 5\n\
                 [snapshots.store_options]\n{options}\
                 [fleet]\nadvertise_url = \"http://127.0.0.1:0\"\nlease_ttl_s = {LEASE_TTL_S}\n\
                 lease_renew_s = 0.5\ntools_sync_s = 0.5\n",
                config.snapshots.store_url.unwrap()
            ),
        )
        .unwrap();
        let config = path.display().to_string();
        let (child, url) = serve(data.path(), &["--config", &config]).await;
        Self {
            id,
            data,
            config,
            child: Some(child),
            client: Client::new(&url, Some(TOKEN.into())),
            url,
        }
    }

    /// Starts the worker again on its data dir.
    async fn restart(&mut self) {
        let (child, url) = serve(self.data.path(), &["--config", &self.config]).await;
        self.child = Some(child);
        self.client = Client::new(&url, Some(TOKEN.into()));
        self.url = url;
    }

    fn signal(&self, signal: &str) {
        let pid = self.child.as_ref().unwrap().id().unwrap();
        let sent = std::process::Command::new("kill")
            .args([signal, &pid.to_string()])
            .status()
            .unwrap();
        assert!(sent.success());
    }

    async fn wait(&mut self) -> std::process::ExitStatus {
        let child = self.child.as_mut().unwrap();
        let status = tokio::time::timeout(Duration::from_secs(40), child.wait())
            .await
            .unwrap()
            .unwrap();
        self.child = None;
        status
    }
}

/// A small deterministic stream of "random" door choices.
struct Doors(u64);

impl Doors {
    fn next(&mut self, n: usize) -> usize {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        ((self.0 >> 33) % n as u64) as usize
    }
}

/// Reads `path` through `client` until it answers, within `bound`; the content.
async fn read_within(client: &Client, session: &str, path: &str, bound: Duration) -> String {
    let started = Instant::now();
    loop {
        match client.get_file(session, path).await {
            Ok(bytes) => return String::from_utf8(bytes).unwrap(),
            Err(e) => assert!(started.elapsed() < bound, "{session}: {e}"),
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn owner_of(client: &Client, session: &str) -> (String, u64) {
    let info = client.session(session).await.unwrap();
    (info.owner.worker, info.owner.epoch)
}

#[tokio::test]
async fn three_workers_on_s3_keep_every_acknowledged_change_through_kill_and_drain() {
    let s3 = S3Server::start().await;
    let mut fleet = [
        Member::start("w0", &s3).await,
        Member::start("w1", &s3).await,
        Member::start("w2", &s3).await,
    ];
    let mut doors = Doors(17);
    // A tool installed through one door, for every worker to serve (checked at the end, after
    // a kill, a restart and a drain).
    let hostile = std::fs::read(hearth_tests::HOSTILE_WASM).unwrap();
    let version = Client::new(&fleet[2].url, Some(OPERATOR.into()))
        .install_tool("hostile", hostile, None)
        .await
        .unwrap()
        .tool
        .version;

    // 30 sessions through random doors, then a mixed load through others; each ends with a
    // snapshot (what a crash keeps).
    let ids: Vec<String> = (0..30).map(|i| format!("f{i}")).collect();
    for id in &ids {
        let door = &fleet[doors.next(3)].client;
        door.create_session(Some(id)).await.unwrap();
    }
    for (i, id) in ids.iter().enumerate() {
        let door = &fleet[doors.next(3)].client;
        write(door, id, "/workspace/state.txt", &format!("{id} v1\n")).await;
        let door = &fleet[doors.next(3)].client;
        assert_eq!(
            read(door, id, "workspace/state.txt").await,
            format!("{id} v1\n")
        );
        if i % 5 == 0 {
            let door = &fleet[doors.next(3)].client;
            let ran = door
                .exec(
                    id,
                    &hearth_client::wire::exec::ExecRequest::command("cat state.txt"),
                )
                .await
                .unwrap();
            assert_eq!(ran.stdout, format!("{id} v1\n"));
        }
        fleet[doors.next(3)].client.take_snapshot(id).await.unwrap();
    }
    let mut owners = std::collections::HashMap::new();
    for id in &ids {
        owners.insert(id.clone(), owner_of(&fleet[doors.next(3)].client, id).await);
    }
    let victims: Vec<&String> = ids.iter().filter(|id| owners[*id].0 == "w1").collect();
    assert!(!victims.is_empty(), "{owners:?}");

    // Kill w1: its sessions answer through the other doors within the lease's lifetime and a
    // takeover, with their last snapshot.
    fleet[1].signal("-KILL");
    fleet[1].wait().await;
    let killed = Instant::now();
    let bound = Duration::from_secs_f64(LEASE_TTL_S) + Duration::from_secs(20);
    for id in &victims {
        let door = &fleet[[0, 2][doors.next(2)]].client;
        assert_eq!(
            read_within(door, id, "workspace/state.txt", bound).await,
            format!("{id} v1\n")
        );
    }
    assert!(killed.elapsed() < bound, "{:?}", killed.elapsed());
    for id in &victims {
        let (worker, epoch) = owner_of(&fleet[0].client, id).await;
        assert_ne!(worker, "w1");
        assert!(epoch > owners[*id].1, "{id}: {epoch}");
    }
    // More work on the new owners, published.
    let moved = victims[0].clone();
    write(
        &fleet[0].client,
        &moved,
        "/workspace/state.txt",
        "after the takeover\n",
    )
    .await;
    fleet[2].client.take_snapshot(&moved).await.unwrap();

    // The victim comes back on its old disk: it serves nothing stale — its door forwards to the
    // new owner — and a `DELETE ?snapshot=true` through it snapshots the new owner's state.
    fleet[1].restart().await;
    assert_eq!(
        read(&fleet[1].client, &moved, "workspace/state.txt").await,
        "after the takeover\n"
    );
    let parked = std::fs::read_dir(fleet[1].data.path().join("sessions"))
        .unwrap()
        .filter(|e| {
            e.as_ref()
                .unwrap()
                .file_name()
                .to_string_lossy()
                .contains(".parked-")
        })
        .count();
    assert_eq!(parked, victims.len());
    let deleted = reqwest::Client::new()
        .request(
            Method::DELETE,
            format!("{}/v1/sessions/{moved}", fleet[1].url),
        )
        .bearer_auth(TOKEN)
        .query(&[("snapshot", "true")])
        .send()
        .await
        .unwrap();
    assert_eq!(deleted.status(), 200);
    let back = fleet[0]
        .client
        .create_session_with(&hearth_client::wire::sessions::CreateSession {
            id: Some(moved.clone()),
            from_snapshot: Some(moved.clone()),
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(back.owner.worker, "w0");
    assert_eq!(
        read(&fleet[0].client, &moved, "workspace/state.txt").await,
        "after the takeover\n"
    );

    // Writes through every door at once land on the one owner; each file as acknowledged.
    let shared = &ids[1];
    let writes = fleet.iter().enumerate().map(|(i, m)| {
        let client = m.client.clone();
        let shared = shared.clone();
        async move {
            for n in 0..10 {
                write(
                    &client,
                    &shared,
                    &format!("/workspace/door{i}.txt"),
                    &format!("{n}\n"),
                )
                .await;
            }
        }
    });
    futures_util::future::join_all(writes).await;
    for i in 0..3 {
        let door = &fleet[doors.next(3)].client;
        assert_eq!(
            read(door, shared, &format!("workspace/door{i}.txt")).await,
            "9\n"
        );
    }

    // Drain the owner of the shared session with unsnapshotted changes: nothing is lost, and
    // the others take its sessions over at once (its lease is released, not left to lapse).
    let (owner, _) = owner_of(&fleet[0].client, shared).await;
    let index = fleet.iter().position(|m| m.id == owner).unwrap();
    let other = (index + 1) % 3;
    fleet[index].signal("-TERM");
    assert!(fleet[index].wait().await.success());
    let drained = Instant::now();
    for i in 0..3 {
        assert_eq!(
            read_within(
                &fleet[other].client,
                shared,
                &format!("workspace/door{i}.txt"),
                bound
            )
            .await,
            "9\n"
        );
    }
    assert!(
        drained.elapsed() < Duration::from_secs_f64(LEASE_TTL_S),
        "{:?}",
        drained.elapsed()
    );
    // The tool installed through w2 at the start is served by every worker still up, the
    // restarted victim included.
    for member in fleet.iter().filter(|m| m.child.is_some()) {
        let tool = member.client.tool("hostile").await.unwrap();
        assert_eq!(tool.version, version, "{}", member.id);
        assert_eq!(tool.source, "installed");
    }
}
