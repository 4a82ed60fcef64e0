//! `connkit ipc …`: the command-line contract, against Rust and real Node peers.

use connkit_testkit::net::unique_socket_path;
use connkit_testkit::within;
use serde_json::{Value, json};
use std::path::Path;
use std::process::Stdio;
use std::time::Duration;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

const BIN: &str = env!("CARGO_BIN_EXE_connkit");

async fn run(args: &[&str]) -> std::process::Output {
    Command::new(BIN)
        .args(args)
        .output()
        .await
        .expect("run connkit")
}

fn spawn(args: &[&str]) -> Child {
    Command::new(BIN)
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("spawn connkit")
}

async fn wait_for_socket(path: &Path) {
    while !path.exists() {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
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

#[tokio::test]
async fn serve_echo_and_send_wait() {
    within(30, async {
        let (_dir, path) = unique_socket_path("cli-echo");
        let p = path.to_str().unwrap();
        let mut serve = spawn(&["ipc", "serve", p, "--echo"]);
        wait_for_socket(&path).await;
        let out = run(&[
            "ipc",
            "send",
            p,
            "greet",
            r#"{"hi":"é","n":1.0}"#,
            "--wait",
            "greet",
        ])
        .await;
        assert!(out.status.success(), "{out:?}");
        assert_eq!(
            stdout_json(&out),
            json!({"topic": "greet", "message": {"hi": "é", "n": 1}})
        );
        // serve printed the message with the sender's id.
        let mut lines = BufReader::new(serve.stdout.take().unwrap()).lines();
        let line: Value = serde_json::from_str(&lines.next_line().await.unwrap().unwrap()).unwrap();
        assert_eq!(line["topic"], "greet");
        assert_eq!(line["message"], json!({"hi": "é", "n": 1}));
        assert_eq!(line["client"].as_str().unwrap().len(), 36);
        // SIGTERM: graceful close, exit 0, socket file removed.
        let pid = serve.id().unwrap().to_string();
        Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .await
            .unwrap();
        assert!(serve.wait().await.unwrap().success());
        assert!(!path.exists());
    })
    .await;
}

#[tokio::test]
async fn send_failures_have_clear_errors_and_exit_codes() {
    within(30, async {
        let (_dir, path) = unique_socket_path("cli-fail");
        let p = path.to_str().unwrap();
        let out = run(&["ipc", "send", p, "t", "1"]).await;
        assert_eq!(out.status.code(), Some(1));
        assert!(
            String::from_utf8_lossy(&out.stderr).contains("no server is listening"),
            "{out:?}"
        );
        let out = run(&["ipc", "send", p, "t", "not json"]).await;
        assert_eq!(out.status.code(), Some(2));
        assert!(String::from_utf8_lossy(&out.stderr).contains("not valid JSON"));
        let _serve = spawn(&["ipc", "serve", p]);
        wait_for_socket(&path).await;
        let out = run(&[
            "ipc",
            "send",
            p,
            "t",
            "1",
            "--wait",
            "never",
            "--timeout",
            "0.3",
        ])
        .await;
        assert_eq!(out.status.code(), Some(1));
        assert!(
            String::from_utf8_lossy(&out.stderr).contains("timed out"),
            "{out:?}"
        );
        assert!(out.stdout.is_empty());
    })
    .await;
}

/// The next event line named `name` from a Node peer.
async fn next_event(peer: &mut connkit_testkit::NodeProcess, name: &str) -> Value {
    loop {
        let l = peer
            .next_line(Duration::from_secs(10))
            .await
            .unwrap()
            .expect("peer exited");
        let v: Value = serde_json::from_str(&l).unwrap();
        if v["event"] == name {
            return v;
        }
    }
}

#[tokio::test]
async fn cli_against_node_peers() {
    let node = connkit_testkit::require_node!();
    within(60, async {
        // connkit ipc send → Node server (echo).
        let (_dir, path) = unique_socket_path("cli-node");
        let p = path.to_str().unwrap();
        let mut server = node.spawn("ipc_peer.js", ["server", p, "--echo"]).unwrap();
        server.wait_ready(Duration::from_secs(10)).await.unwrap();
        let out = run(&[
            "ipc",
            "send",
            p,
            "echo",
            r#"["x",{"y":null}]"#,
            "--wait",
            "echo",
        ])
        .await;
        assert!(out.status.success(), "{out:?}");
        assert_eq!(
            stdout_json(&out),
            json!({"topic": "echo", "message": ["x", {"y": null}]})
        );

        // connkit ipc listen ← Node server broadcast.
        let mut listen = spawn(&["ipc", "listen", p, "news"]);
        let mut lines = BufReader::new(listen.stdout.take().unwrap()).lines();
        // The Node server saw send's connection; wait for listen's.
        next_event(&mut server, "connection").await;
        next_event(&mut server, "connection").await;
        server
            .write_line(r#"{"cmd":"broadcast","topic":"other","message":0}"#)
            .await
            .unwrap();
        server
            .write_line(r#"{"cmd":"broadcast","topic":"news","message":{"n":1}}"#)
            .await
            .unwrap();
        let l = lines.next_line().await.unwrap().unwrap();
        assert_eq!(
            serde_json::from_str::<Value>(&l).unwrap(),
            json!({"topic": "news", "message": {"n": 1}})
        );
        drop(listen);

        // Node client → connkit ipc serve --echo.
        let (_dir2, path2) = unique_socket_path("cli-node2");
        let p2 = path2.to_str().unwrap();
        let mut serve = spawn(&["ipc", "serve", p2, "--echo"]);
        wait_for_socket(&path2).await;
        let mut served = BufReader::new(serve.stdout.take().unwrap()).lines();
        let mut client = node.spawn("ipc_peer.js", ["client", p2]).unwrap();
        client.wait_ready(Duration::from_secs(10)).await.unwrap();
        next_event(&mut client, "connect").await;
        client
            .write_line(r#"{"cmd":"send","topic":"hi","message":"é😀"}"#)
            .await
            .unwrap();
        let l = served.next_line().await.unwrap().unwrap();
        let v: Value = serde_json::from_str(&l).unwrap();
        assert_eq!(
            (v["topic"].clone(), v["message"].clone()),
            (json!("hi"), json!("é😀"))
        );
        assert_eq!(next_event(&mut client, "message").await["message"], "é😀");
    })
    .await;
}
