//! `connkit session …`: the command-line contract, against `connkit session dev` on an
//! ephemeral port with `connkit session echo-backend` backends.

use connkit_testkit::within;
use serde_json::Value;
use std::process::Stdio;
use std::time::Duration;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

const BIN: &str = env!("CARGO_BIN_EXE_connkit");

/// Run connkit with no JAMSOCKET_* variables from the environment.
fn command(args: &[&str]) -> Command {
    let mut c = Command::new(BIN);
    c.args(args);
    for (k, _) in std::env::vars() {
        if k.starts_with("JAMSOCKET_") {
            c.env_remove(k);
        }
    }
    c
}

async fn run(args: &[&str]) -> std::process::Output {
    command(args).output().await.expect("run connkit")
}

fn stdout_json(out: &std::process::Output) -> Value {
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "{e}: stdout {:?}, stderr {:?}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
    })
}

/// `connkit session dev` on an ephemeral port; returns the child and its base URL.
async fn dev_server(extra: &[&str]) -> (Child, String) {
    let mut args = vec!["session", "dev", "--listen", "127.0.0.1:0"];
    args.extend_from_slice(extra);
    let mut child = command(&args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("spawn connkit session dev");
    let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
    let line = lines
        .next_line()
        .await
        .unwrap()
        .expect("the dev server's address line");
    let base = line
        .strip_prefix("connkit: session dev server on ")
        .unwrap_or_else(|| panic!("unexpected first line {line:?}"))
        .to_owned();
    // Keep draining stderr so the child never blocks on it.
    tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
    (child, base)
}

async fn sigterm(child: &mut Child) -> std::process::ExitStatus {
    let pid = child.id().unwrap().to_string();
    Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .await
        .unwrap();
    tokio::time::timeout(Duration::from_secs(15), child.wait())
        .await
        .unwrap()
        .unwrap()
}

#[tokio::test]
async fn connect_watch_status_and_terminate_against_the_dev_server() {
    within(60, async {
        let (mut dev, base) = dev_server(&[]).await;
        let out = run(&[
            "session", "connect", "--dev", "--api", &base, "--key", "doc-1",
        ])
        .await;
        assert!(out.status.success(), "{out:?}");
        let resp = stdout_json(&out);
        assert_eq!(resp["spawned"], true);
        assert_eq!(resp["status"], "scheduled");
        let id = resp["backend_id"].as_str().unwrap().to_owned();
        let status_url = resp["status_url"].as_str().unwrap().to_owned();
        assert_eq!(status_url, format!("{base}/v2/backend/{id}/status"));

        let mut watch = command(&["session", "watch", &status_url])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .unwrap();
        let mut lines = BufReader::new(watch.stdout.take().unwrap()).lines();
        let mut seen = Vec::new();
        while seen.last().map(String::as_str) != Some("ready") {
            let line = lines.next_line().await.unwrap().expect("a state line");
            let state: Value = serde_json::from_str(&line).unwrap();
            assert!(
                state["time"].is_string(),
                "Jamsocket dialect: ISO time: {line}"
            );
            seen.push(state["status"].as_str().unwrap().to_owned());
        }

        // status prints the current state; the same key returns the same backend.
        let out = run(&["session", "status", &status_url]).await;
        assert!(out.status.success(), "{out:?}");
        assert_eq!(stdout_json(&out)["status"], "ready");
        let out = run(&[
            "session", "connect", "--dev", "--api", &base, "--key", "doc-1",
        ])
        .await;
        let again = stdout_json(&out);
        assert_eq!(again["backend_id"], id.as_str());
        assert_eq!(again["spawned"], false);

        let out = run(&["session", "terminate", &id, "--dev", "--api", &base]).await;
        assert!(out.status.success(), "{out:?}");
        while let Some(line) = lines.next_line().await.unwrap() {
            let state: Value = serde_json::from_str(&line).unwrap();
            seen.push(state["status"].as_str().unwrap().to_owned());
            if state["status"] == "terminated" {
                assert_eq!(state["termination_reason"], "external");
                assert_eq!(state["exit_error"], false);
            }
        }
        assert_eq!(
            seen,
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
        let status = watch.wait().await.unwrap();
        assert!(
            status.success(),
            "watch exits 0 after terminated: {status:?}"
        );
        let mut err = String::new();
        use tokio::io::AsyncReadExt;
        watch
            .stderr
            .take()
            .unwrap()
            .read_to_string(&mut err)
            .await
            .unwrap();
        assert!(
            err.is_empty(),
            "no spinner when stderr is not a terminal: {err:?}"
        );

        assert!(sigterm(&mut dev).await.success());
    })
    .await;
}

#[tokio::test]
async fn a_shell_backend_command_and_shutdown_kills_backends() {
    within(60, async {
        let backend = format!("{BIN} session echo-backend");
        let (mut dev, base) = dev_server(&["--backend", &backend]).await;
        let out = run(&["session", "connect", "--dev", "--api", &base]).await;
        let resp = stdout_json(&out);
        let url = resp["url"].as_str().unwrap().to_owned();
        let port: u16 = url
            .trim_end_matches('/')
            .rsplit(':')
            .next()
            .and_then(|p| p.parse().ok())
            .unwrap();
        // Wait for ready through `status`.
        let status_url = resp["status_url"].as_str().unwrap().to_owned();
        loop {
            let out = run(&["session", "status", &status_url]).await;
            if stdout_json(&out)["status"] == "ready" {
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        assert!(
            tokio::net::TcpStream::connect(("127.0.0.1", port))
                .await
                .is_ok()
        );
        assert!(sigterm(&mut dev).await.success());
        assert!(
            tokio::net::TcpStream::connect(("127.0.0.1", port))
                .await
                .is_err(),
            "the backend went down with the dev server"
        );
    })
    .await;
}

#[tokio::test]
async fn errors_have_exit_codes() {
    within(60, async {
        let (mut dev, base) = dev_server(&[]).await;
        // Unknown backend: a runtime failure (1) naming the HTTP status.
        let out = run(&[
            "session",
            "status",
            &format!("{base}/v2/backend/nope/status"),
        ])
        .await;
        assert_eq!(out.status.code(), Some(1), "{out:?}");
        assert!(
            String::from_utf8_lossy(&out.stderr).contains("404"),
            "{out:?}"
        );
        // watch on an unknown backend: the stream is a 404, exit 1 (not a hot loop).
        let out = run(&[
            "session",
            "watch",
            &format!("{base}/v2/backend/nope/status"),
        ])
        .await;
        assert_eq!(out.status.code(), Some(1), "{out:?}");
        // spawn: false semantics are not reachable from the CLI; a bad URL is a usage error.
        let out = run(&["session", "status", "not-a-url"]).await;
        assert_eq!(out.status.code(), Some(2), "{out:?}");
        let out = run(&["session", "watch", "ftp://x/y"]).await;
        assert_eq!(out.status.code(), Some(2), "{out:?}");
        // No API configured at all.
        let out = run(&["session", "connect"]).await;
        assert_eq!(out.status.code(), Some(2), "{out:?}");
        assert!(
            String::from_utf8_lossy(&out.stderr).contains("JAMSOCKET_ACCOUNT"),
            "{out:?}"
        );
        // Nobody listening: exit 1.
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let out = run(&[
            "session",
            "connect",
            "--api",
            &format!("http://127.0.0.1:{port}"),
            "--account",
            "a",
            "--service",
            "s",
            "--token",
            "t",
            "--timeout",
            "5",
        ])
        .await;
        assert_eq!(out.status.code(), Some(1), "{out:?}");
        assert!(sigterm(&mut dev).await.success());
    })
    .await;
}
