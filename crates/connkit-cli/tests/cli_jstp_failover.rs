//! Failover between two `connkit jstp serve` processes sharing sessions in Redis (spec §6.3,
//! restore path B): the first is killed with SIGKILL, the client moves to the second and
//! resumes its session there, with the calls made while offline answered and the server's
//! ids going on downward. Needs `redis-server` (skipped without it, except under CI=true).

use connkit::jstp::storage::{RedisStorage, SessionStorageProvider};
use connkit::jstp::{ClientOptions, ConnectionEvent, ConnectionState, Reconnect, Value};
use connkit_testkit::within;
use futures_util::StreamExt;
use std::process::Stdio;
use std::time::Duration;
use tokio::io::{AsyncBufReadExt, BufReader, Lines};
use tokio::process::{Child, ChildStderr, Command};

const BIN: &str = env!("CARGO_BIN_EXE_connkit");
const T: Duration = Duration::from_secs(20);

fn v(s: &str) -> Value {
    s.parse().unwrap()
}

/// Whether `redis-server` can run here; without it the test fails under CI=true and is
/// skipped otherwise.
fn have_redis() -> bool {
    let found = std::process::Command::new("redis-server")
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !found {
        assert!(
            !connkit_testkit::is_ci(),
            "install redis-server (apt-get install redis-server)"
        );
        // Past the test harness's capture, as `require_node!` does.
        use std::io::Write;
        let _ = writeln!(
            std::io::stderr(),
            "SKIPPED: redis-server not found (apt-get install redis-server)"
        );
    }
    found
}

/// A `redis-server` on a free loopback port, without persistence, in a temporary directory.
struct Redis {
    _child: Child,
    _dir: tempfile::TempDir,
    url: String,
}

impl Redis {
    async fn start() -> Redis {
        let dir = tempfile::tempdir().unwrap();
        let port = connkit_testkit::net::free_tcp_port().unwrap();
        let child = Command::new("redis-server")
            .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
            .args(["--save", "", "--appendonly", "no"])
            .arg("--dir")
            .arg(dir.path())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .expect("spawn redis-server");
        let url = format!("redis://127.0.0.1:{port}");
        // Ready when it answers.
        loop {
            if let Ok(s) = RedisStorage::connect(&url).await
                && s.get("ping").await.is_ok()
            {
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        Redis {
            _child: child,
            _dir: dir,
            url,
        }
    }
}

/// `connkit jstp serve --demo` on a free tcp port, with its sessions in Redis.
struct Serve {
    child: Child,
    endpoint: connkit::Endpoint,
    _stderr: Lines<BufReader<ChildStderr>>,
}

impl Serve {
    async fn start(redis: &Redis) -> Serve {
        let mut child = Command::new(BIN)
            .args(["jstp", "serve", "--demo", "--listen", "tcp://127.0.0.1:0"])
            .args(["--session-storage", &redis.url])
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .expect("spawn connkit");
        let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
        let l = tokio::time::timeout(T, lines.next_line())
            .await
            .expect("serve printed its endpoint")
            .unwrap()
            .expect("serve exited early");
        let ep = l
            .strip_prefix("connkit: listening on ")
            .unwrap_or_else(|| panic!("unexpected line {l:?}"));
        Serve {
            child,
            endpoint: ep.parse().unwrap(),
            _stderr: lines,
        }
    }
}

#[tokio::test]
async fn a_client_resumes_its_session_on_a_second_process_after_a_sigkill() {
    if !have_redis() {
        return;
    }
    within(60, async {
        let redis = Redis::start().await;
        let storage = RedisStorage::connect(&redis.url).await.unwrap();
        let mut one = Serve::start(&redis).await;
        let two = Serve::start(&redis).await;
        let c = ClientOptions::new()
            .reconnect(
                Reconnect::new()
                    .initial_delay(Duration::from_millis(50))
                    .max_delay(Duration::from_millis(200))
                    .jitter(Duration::ZERO),
            )
            .fallback_endpoints([two.endpoint.clone()])
            .connect(&one.endpoint, "calc")
            .await
            .unwrap();
        let sid = c.session_id().to_owned();
        let mut events = c.events();
        let mut ticks = c.remote_events(Some("calculator"));
        assert_eq!(
            c.call("calculator", "add", [v("1"), v("2")]).await.unwrap(),
            vec![v("3")]
        );
        // One server event: id -1.
        assert_eq!(
            c.call("calculator", "ticks", [v("1")]).await.unwrap(),
            vec![v("1")]
        );
        assert_eq!(ticks.next().await.unwrap().unwrap().args, vec![v("1")]);
        // Server one's writer has stored that state (it writes within ~100 ms).
        loop {
            let s = storage.get(&sid).await.unwrap();
            if s.as_ref()
                .is_some_and(|s| s.received_count == 2 && s.next_id == -2)
            {
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        // Killed without a chance to save anything.
        one.child.start_kill().unwrap();
        one.child.wait().await.unwrap();
        let mut st = c.state();
        st.wait_for(|s| *s != ConnectionState::Connected)
            .await
            .unwrap();
        // Made while offline: buffered, replayed on server two.
        let offline = {
            let c = c.clone();
            tokio::spawn(async move { c.call("calculator", "add", [v("10"), v("20")]).await })
        };
        assert_eq!(offline.await.unwrap().unwrap(), vec![v("30")]);
        assert_eq!(c.session_id(), sid, "the same session");
        // The server's ids go on downward from server one's: the next event is -2.
        assert_eq!(
            c.call("calculator", "ticks", [v("1")]).await.unwrap(),
            vec![v("1")]
        );
        assert_eq!(ticks.next().await.unwrap().unwrap().args, vec![v("1")]);
        let snap = c.export_session().await.unwrap();
        assert_eq!(snap.id, sid);
        assert_eq!(snap.received, 2, "server event ids continued at -2");
        assert_eq!(snap.next_id, 5, "client ids continued");
        // No attempt was refused with 11 (the session was known on server two).
        while let Some(ev) = events.next().await {
            match ev {
                Ok(ConnectionEvent::ReconnectFailed { error, .. }) => {
                    assert!(
                        !matches!(&*error, connkit::jstp::Error::Remote(r) if r.code() == 11),
                        "error 11: {error}"
                    );
                }
                Ok(ConnectionEvent::Restored { .. }) => break,
                _ => {}
            }
        }
        drop(two);
    })
    .await;
}

/// `RedisStorage` on its own: JSON values under a prefix, replace, remove, and the time to
/// live that `set` and `set_inactive` give.
#[tokio::test]
async fn redis_storage_keeps_sessions_under_its_prefix_with_a_time_to_live() {
    if !have_redis() {
        return;
    }
    within(60, async {
        let redis = Redis::start().await;
        let a = RedisStorage::connect(&redis.url)
            .await
            .unwrap()
            .key_prefix("a:");
        let b = RedisStorage::connect(&redis.url)
            .await
            .unwrap()
            .key_prefix("b:")
            .inactive_lifetime(Duration::from_secs(1));
        let session: connkit::jstp::storage::StoredSession =
            serde_json::from_value(serde_json::json!({
                "id": "s1", "username": null, "receivedCount": 4, "nextId": -3,
                "deliveredCount": 1, "buffer": [[-2, "{event:[-2,'i'],e:[]}"]],
                "appName": "calc", "appVersion": "1.0.0"
            }))
            .unwrap();
        a.set("s1", &session).await.unwrap();
        assert_eq!(a.get("s1").await.unwrap(), Some(session.clone()));
        assert_eq!(b.get("s1").await.unwrap(), None, "another prefix");
        a.remove("s1").await.unwrap();
        assert_eq!(a.get("s1").await.unwrap(), None);
        // A one-second lifetime: gone once it has passed.
        b.set("s1", &session).await.unwrap();
        b.set_inactive("s1").await.unwrap();
        assert!(b.get("s1").await.unwrap().is_some());
        tokio::time::sleep(Duration::from_millis(2100)).await;
        assert_eq!(b.get("s1").await.unwrap(), None);
    })
    .await;
}

/// `--session-storage` that cannot work: a usage error (2) for a bad value, a runtime
/// failure (1) for a Redis that does not answer. Needs no Redis.
#[tokio::test]
async fn serve_refuses_a_session_storage_it_cannot_use() {
    within(60, async {
        let serve = |storage: &str| {
            Command::new(BIN)
                .args(["jstp", "serve", "--demo", "--listen", "tcp://127.0.0.1:0"])
                .args(["--session-storage", storage])
                .output()
        };
        let out = serve("foo").await.unwrap();
        assert_eq!(out.status.code(), Some(2));
        assert!(String::from_utf8_lossy(&out.stderr).contains("--session-storage must be"));
        let port = connkit_testkit::net::free_tcp_port().unwrap();
        let out = serve(&format!("redis://127.0.0.1:{port}")).await.unwrap();
        assert_eq!(out.status.code(), Some(1));
        assert!(
            String::from_utf8_lossy(&out.stderr).contains("cannot use the session storage"),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    })
    .await;
}
