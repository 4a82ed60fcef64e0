//! `connkit bench …`: short runs against connkit's own servers; the output is one JSON line.

use connkit_testkit::net::unique_socket_path;
use connkit_testkit::within;
use serde_json::Value;
use std::process::Stdio;
use std::time::Duration;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::Command;

const BIN: &str = env!("CARGO_BIN_EXE_connkit");

fn check(out: &std::process::Output, pipeline: u64) -> Value {
    assert!(out.status.success(), "{out:?}");
    let v: Value = serde_json::from_slice(&out.stdout).expect("one JSON line");
    assert_eq!(v["pipeline"], pipeline);
    assert!(v["requests"].as_u64().unwrap() > 0, "{v}");
    assert!(v["per_sec"].as_f64().unwrap() > 0.0, "{v}");
    let (p50, p99, p999) = (
        v["p50_us"].as_u64().unwrap(),
        v["p99_us"].as_u64().unwrap(),
        v["p999_us"].as_u64().unwrap(),
    );
    assert!(p50 <= p99 && p99 <= p999, "{v}");
    v
}

#[tokio::test]
async fn bench_ipc_against_connkit_serve() {
    within(60, async {
        let (_dir, path) = unique_socket_path("bench-ipc");
        let p = path.to_str().unwrap();
        let _serve = Command::new(BIN)
            .args(["ipc", "serve", p, "--echo"])
            .stdout(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .unwrap();
        while !path.exists() {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        for pipeline in ["1", "8"] {
            let out = Command::new(BIN)
                .args([
                    "bench",
                    "ipc",
                    p,
                    "--duration",
                    "0.3",
                    "--warmup",
                    "0",
                    "--pipeline",
                    pipeline,
                    "--connections",
                    "2",
                ])
                .output()
                .await
                .unwrap();
            check(&out, pipeline.parse().unwrap());
        }
    })
    .await;
}

#[tokio::test]
async fn bench_jstp_against_connkit_serve_demo() {
    within(60, async {
        let mut serve = Command::new(BIN)
            .args(["jstp", "serve", "--listen", "tcp://127.0.0.1:0", "--demo"])
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .unwrap();
        let mut lines = BufReader::new(serve.stderr.take().unwrap()).lines();
        let endpoint = loop {
            let l = lines.next_line().await.unwrap().expect("serve exited");
            if let Some(ep) = l.strip_prefix("connkit: listening on ") {
                break ep.trim().to_owned();
            }
        };
        let out = Command::new(BIN)
            .args([
                "bench",
                "jstp",
                &endpoint,
                "--duration",
                "0.3",
                "--warmup",
                "0",
                "--pipeline",
                "4",
            ])
            .output()
            .await
            .unwrap();
        check(&out, 4);
        let out = Command::new(BIN)
            .args([
                "bench",
                "jstp",
                &endpoint,
                "--duration",
                "0.3",
                "--warmup",
                "0",
                "--echo",
                "--payload",
                "1000",
            ])
            .output()
            .await
            .unwrap();
        check(&out, 1);
        // A bad endpoint is a usage error.
        let out = Command::new(BIN)
            .args(["bench", "jstp", "tcp://nope"])
            .output()
            .await
            .unwrap();
        assert_eq!(out.status.code(), Some(2));
    })
    .await;
}
