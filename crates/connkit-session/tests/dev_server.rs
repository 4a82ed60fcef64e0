//! The dev server end to end: real backend processes (this test binary re-run as a backend,
//! see `backend_child`), both API dialects, the client following each backend from
//! `scheduled` to `terminated`. Every test runs under a hard timeout on ephemeral ports.

use connkit_session::dev::{DevServer, DevServerOptions};
use connkit_session::{
    ApiClient, BackendState, BackendStatus, ConnectRequest, Error, PlaneConnectRequest,
    PlaneKeyConfig, PlaneSpawnConfig, SessionBackend, SpawnConfig, TerminationKind,
    TerminationReason, Timestamp,
};
use connkit_testkit::within;
use futures_util::StreamExt;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Not a test: when `CONNKIT_TEST_BACKEND` is set, this process is a backend started by the
/// dev server (modes: `echo`, `echo-then-exit`, `never-listen`).
#[test]
fn backend_child() {
    let Ok(mode) = std::env::var("CONNKIT_TEST_BACKEND") else {
        return;
    };
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        match mode.as_str() {
            "echo" => {
                let _ = connkit_session::dev::run_echo_backend_from_env().await;
            }
            "echo-then-exit" => {
                tokio::spawn(connkit_session::dev::run_echo_backend_from_env());
                tokio::time::sleep(Duration::from_millis(700)).await;
                std::process::exit(3);
            }
            _ => tokio::time::sleep(Duration::from_secs(3600)).await,
        }
    });
}

async fn server(mode: &str, tune: impl FnOnce(DevServerOptions) -> DevServerOptions) -> DevServer {
    let exe = std::env::current_exe()
        .unwrap()
        .to_string_lossy()
        .into_owned();
    let options = DevServerOptions::new()
        .listen("127.0.0.1:0".parse().unwrap())
        .backend_command([
            exe.as_str(),
            "backend_child",
            "--exact",
            "--nocapture",
            "--test-threads=1",
        ])
        .backend_env("CONNKIT_TEST_BACKEND", mode)
        .termination_grace(Duration::from_secs(5));
    tune(options).start().await.unwrap()
}

fn names(states: &[BackendState]) -> Vec<String> {
    states.iter().map(|s| s.status.to_string()).collect()
}

async fn http_get(url: &str) -> String {
    let url = url::Url::parse(url).unwrap();
    let mut sock = TcpStream::connect((url.host_str().unwrap(), url.port().unwrap()))
        .await
        .unwrap();
    let req = format!(
        "GET {} HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n",
        url.path()
    );
    sock.write_all(req.as_bytes()).await.unwrap();
    let mut out = String::new();
    sock.read_to_string(&mut out).await.unwrap();
    out
}

async fn wait_terminated(api: &ApiClient, id: &str) -> BackendState {
    loop {
        let s = api.status(id).await.unwrap();
        if s.is_terminated() {
            return s;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn jamsocket_lifecycle_from_scheduled_to_terminated() {
    within(60, async {
        let server = server("echo", |o| o).await;
        let api = server.api().unwrap();
        let resp = api
            .connect(&ConnectRequest::new().key("doc-1"))
            .await
            .unwrap();
        assert!(resp.spawned);
        assert_eq!(resp.status, BackendStatus::Scheduled);
        assert!(
            resp.status_url
                .ends_with(&format!("/v2/backend/{}/status", resp.backend_id))
        );
        let backend = SessionBackend::new(&resp);
        let mut states = backend.statuses();
        backend.ready().await.unwrap();
        // The backend answers at its URL, and knows its id.
        let answer = http_get(&resp.url).await;
        assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
        assert!(answer.contains(&resp.backend_id), "{answer}");
        // Same key: same backend.
        let again = api
            .connect(&ConnectRequest::new().key("doc-1"))
            .await
            .unwrap();
        assert!(!again.spawned);
        assert_eq!(again.backend_id, resp.backend_id);
        assert_eq!(again.status, BackendStatus::Ready);
        // Jamsocket dialect: ISO times.
        let now = api.status(&resp.backend_id).await.unwrap();
        assert!(matches!(now.time, Timestamp::Text(_)), "{now:?}");
        api.terminate(&resp.backend_id, false).await.unwrap();
        let last = backend.terminated().await.unwrap();
        let mut seen = Vec::new();
        while let Some(s) = states.next().await {
            seen.push(s);
        }
        assert_eq!(
            names(&seen),
            [
                "scheduled",
                "loading",
                "starting",
                "waiting",
                "ready",
                "terminating",
                "terminated"
            ]
        );
        assert_eq!(last.termination_reason, Some(TerminationReason::External));
        assert_eq!(last.termination_kind, Some(TerminationKind::Soft));
        assert_eq!(last.exit_error, Some(false));
        // The key is free again: a new backend.
        let next = api
            .connect(&ConnectRequest::new().key("doc-1"))
            .await
            .unwrap();
        assert!(next.spawned);
        assert_ne!(next.backend_id, resp.backend_id);
        server.shutdown().await;
    })
    .await;
}

#[tokio::test]
async fn plane_dialect_and_idle_sweep() {
    within(60, async {
        let server = server("echo", |o| o).await;
        let plane = server.plane_api().unwrap();
        let req = PlaneConnectRequest::new()
            .key(PlaneKeyConfig::new("room"))
            .spawn_config(
                PlaneSpawnConfig::new(serde_json::json!({"image": "ignored"})).max_idle_seconds(1),
            );
        let resp = plane.connect_plane(&req).await.unwrap();
        assert!(
            resp.status_url
                .ends_with(&format!("/pub/b/{}/status", resp.backend_id))
        );
        assert_eq!(resp.drone.as_deref(), Some("connkit-dev"));
        // Polling the status does not count as activity; nobody streams: swept after 1 s.
        let first = plane.status(&resp.backend_id).await.unwrap();
        assert!(matches!(first.time, Timestamp::EpochMillis(_)), "{first:?}");
        let last = wait_terminated(&plane, &resp.backend_id).await;
        assert_eq!(last.termination_reason, Some(TerminationReason::Swept));
        assert_eq!(last.exit_error, Some(false));
        // The Plane stream replays the whole history, honouring Last-Event-ID.
        let backend = SessionBackend::from_status_url(&resp.status_url).unwrap();
        let states: Vec<_> = backend.statuses().collect().await;
        assert_eq!(
            names(&states),
            ["terminated"],
            "a late client sees the final state"
        );
        // Without spawn_config an unheld key is a 409, as in Plane.
        let e = plane
            .connect_plane(&PlaneConnectRequest::new().key(PlaneKeyConfig::new("other")))
            .await
            .unwrap_err();
        assert_eq!(e.http_status(), Some(409));
        server.shutdown().await;
    })
    .await;
}

#[tokio::test]
async fn a_backend_that_exits_by_itself_is_recorded_with_exit_error() {
    within(60, async {
        let server = server("echo-then-exit", |o| o).await;
        let api = server.api().unwrap();
        let resp = api.connect(&ConnectRequest::new().key("k")).await.unwrap();
        let backend = SessionBackend::new(&resp);
        let last = backend.terminated().await.unwrap();
        assert_eq!(last.exit_error, Some(true));
        assert_eq!(last.termination_reason, None);
        assert!(!backend.is_ready());
        let again = api.connect(&ConnectRequest::new().key("k")).await.unwrap();
        assert!(again.spawned, "a terminated backend frees its key");
        server.shutdown().await;
    })
    .await;
}

#[tokio::test]
async fn hard_terminate_startup_timeout_and_bad_commands() {
    within(60, async {
        // Hard terminate: hard-terminating, then terminated with exit_error (SIGKILL).
        let server1 = server("echo", |o| o).await;
        let api = server1.api().unwrap();
        let resp = api.connect(&ConnectRequest::new()).await.unwrap();
        let backend = SessionBackend::new(&resp);
        backend.ready().await.unwrap();
        let mut states = backend.statuses();
        api.terminate(&resp.backend_id, true).await.unwrap();
        let last = backend.terminated().await.unwrap();
        let seen: Vec<_> = states.by_ref().collect().await;
        assert_eq!(
            names(&seen),
            [
                "scheduled",
                "loading",
                "starting",
                "waiting",
                "ready",
                "hard-terminating",
                "terminated"
            ],
            "a late statuses() replays the history"
        );
        assert_eq!(last.termination_kind, Some(TerminationKind::Hard));
        assert_eq!(last.exit_error, Some(true));
        // Unknown backends are 404s; spawn: false on an unknown key is a 409.
        assert_eq!(
            api.status("nope").await.unwrap_err().http_status(),
            Some(404)
        );
        assert_eq!(
            api.terminate("nope", false)
                .await
                .unwrap_err()
                .http_status(),
            Some(404)
        );
        let e = api
            .connect(&ConnectRequest::new().key("x").spawn(false))
            .await
            .unwrap_err();
        assert_eq!(e.http_status(), Some(409));
        server1.shutdown().await;

        // A backend that never listens: startuptimeout.
        let server2 = server("never-listen", |o| {
            o.startup_timeout(Duration::from_millis(500))
        })
        .await;
        let api = server2.api().unwrap();
        let resp = api.connect(&ConnectRequest::new()).await.unwrap();
        let backend = SessionBackend::new(&resp);
        assert!(matches!(backend.ready().await, Err(Error::Terminated(_))));
        let last = backend.terminated().await.unwrap();
        assert_eq!(
            last.termination_reason,
            Some(TerminationReason::StartupTimeout)
        );
        server2.shutdown().await;

        // A command that cannot start: internalerror.
        let server3 = DevServerOptions::new()
            .listen("127.0.0.1:0".parse().unwrap())
            .backend_command(["/nonexistent/connkit-backend"])
            .start()
            .await
            .unwrap();
        let resp = server3
            .api()
            .unwrap()
            .connect(&ConnectRequest::new())
            .await
            .unwrap();
        let last = SessionBackend::new(&resp).terminated().await.unwrap();
        assert_eq!(
            last.termination_reason,
            Some(TerminationReason::InternalError)
        );
        assert_eq!(last.exit_error, Some(true));
        server3.shutdown().await;
        assert!(
            DevServerOptions::new().start().await.is_err(),
            "no command configured"
        );
    })
    .await;
}

#[tokio::test]
async fn streams_honour_last_event_id_and_shutdown_kills_backends() {
    within(60, async {
        let server = server("echo", |o| o).await;
        let api = server.api().unwrap();
        let resp = api
            .connect(&ConnectRequest::new().spawn_config(SpawnConfig::new().env("EXTRA", "1")))
            .await
            .unwrap();
        SessionBackend::new(&resp).ready().await.unwrap();
        // A raw stream request resuming after `waiting`: only `ready` (then keep-alives).
        let addr = server.local_addr();
        let mut sock = TcpStream::connect(addr).await.unwrap();
        let req = format!(
            "GET /pub/b/{}/status-stream HTTP/1.1\r\nhost: x\r\nlast-event-id: waiting\r\n\r\n",
            resp.backend_id
        );
        sock.write_all(req.as_bytes()).await.unwrap();
        let mut got = String::new();
        let mut buf = [0u8; 4096];
        while !got.contains("id: ready\n\n") {
            let n = sock.read(&mut buf).await.unwrap();
            assert!(n > 0, "{got}");
            got.push_str(&String::from_utf8_lossy(&buf[..n]));
        }
        assert!(got.contains("text/event-stream"), "{got}");
        assert!(!got.contains("\"status\":\"waiting\""), "{got}");
        assert!(
            got.contains("data: {\"status\":\"ready\",\"time\":"),
            "{got}"
        );
        let port = url::Url::parse(&resp.url).unwrap().port().unwrap();
        server.shutdown().await;
        assert!(
            TcpStream::connect(("127.0.0.1", port)).await.is_err(),
            "the backend is gone"
        );
    })
    .await;
}
