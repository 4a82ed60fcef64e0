//! Interop with the real `@crussell52/socket-ipc` 0.4.0, both directions:
//! Node client ↔ Rust server and Rust client ↔ Node server.
//!
//! The Node peer is `tests/interop/node/ipc_peer.js`; it prints one JSON object per event and
//! takes JSON commands on stdin.

use connkit_ipc::{Client, ClientEvent, ClientOptions, Error, Server, ServerEvent, ServerOptions};
use connkit_testkit::net::unique_socket_path;
use connkit_testkit::{NodePeers, NodeProcess, within};
use futures_util::StreamExt;
use serde_json::{Value, json};
use std::path::Path;
use std::time::Duration;

const T: Duration = Duration::from_secs(15);

struct Peer {
    proc: NodeProcess,
}

impl Peer {
    async fn start(node: &NodePeers, args: &[&str]) -> Self {
        let mut proc = node.spawn("ipc_peer.js", args).expect("spawn ipc_peer.js");
        proc.wait_ready(T).await.expect("ipc_peer.js ready");
        Self { proc }
    }

    async fn server(node: &NodePeers, path: &Path, echo: bool) -> Self {
        let p = path.to_str().unwrap();
        let args: &[&str] = if echo {
            &["server", p, "--echo"]
        } else {
            &["server", p]
        };
        Self::start(node, args).await
    }

    async fn client(node: &NodePeers, path: &Path) -> Self {
        Self::start(node, &["client", path.to_str().unwrap()]).await
    }

    async fn cmd(&mut self, cmd: Value) {
        self.proc
            .write_line(&cmd.to_string())
            .await
            .expect("write to the Node peer");
    }

    /// The next event line for which `pick` returns `Some`.
    async fn next<R>(&mut self, mut pick: impl FnMut(&Value) -> Option<R>) -> R {
        loop {
            let line = self
                .proc
                .next_line(T)
                .await
                .expect("read from the Node peer")
                .unwrap_or_else(|| panic!("the Node peer exited; stderr: {}", self.proc.stderr()));
            let v: Value = serde_json::from_str(&line).unwrap_or_else(|e| panic!("{e}: {line}"));
            if let Some(r) = pick(&v) {
                return r;
            }
        }
    }

    async fn event(&mut self, name: &str) -> Value {
        self.next(|v| (v["event"] == name).then(|| v.clone())).await
    }
}

async fn rust_echo_server(path: &Path) -> Server {
    let server = ServerOptions::new(path).listen().await.unwrap();
    server
        .on(None, |m| async move {
            m.reply(&m.topic, m.message.clone()).await
        })
        .detach();
    server
}

async fn rust_client(path: &Path) -> Client {
    ClientOptions::new(path)
        .retry_delay(Duration::from_millis(25))
        .reconnect_delay(Duration::from_millis(25))
        .connect()
        .await
        .unwrap()
}

/// What a value looks like after a trip over the wire (`-0` becomes `0`, as with JSON.stringify).
fn wired(v: &Value) -> Value {
    let mut out = Vec::new();
    connkit_ipc::wire::encode_value("x", Some(v), &mut out).unwrap();
    connkit_ipc::wire::decode(&out)
        .unwrap()
        .message
        .into_value()
        .unwrap()
}

fn tricky_values() -> Vec<Value> {
    vec![
        json!({"seq": 1, "pad": "xxxxxxxxxxxxxxxx"}),
        json!("é€😀\u{0}\"\\\n\t\u{1f}\u{7f}\u{2028}\u{2029}/"),
        json!([
            1.5,
            -0.0,
            1e21,
            0.1,
            1e-7,
            9007199254740991u64,
            true,
            null,
            {},
            []
        ]),
        json!({"z": 1, "a": {"nested": ["deep", {"k": "v"}]}, "": "empty key"}),
        Value::String("m".repeat(1 << 20)),
    ]
}

// ---------------------------------------------------------------- Node client → Rust server

#[tokio::test]
async fn node_client_echo_through_rust_server() {
    let node = connkit_testkit::require_node!();
    within(60, async {
        let (_dir, path) = unique_socket_path("n2r-echo");
        let server = rust_echo_server(&path).await;
        let mut all = server.subscribe(None);
        let mut peer = Peer::client(&node, &path).await;
        peer.event("connect").await;
        for v in tricky_values() {
            peer.cmd(json!({"cmd": "send", "topic": "echo", "message": v}))
                .await;
            let got = all.recv().await.unwrap();
            assert_eq!(got.message, Some(wired(&v)));
            let echoed = peer.event("message").await;
            assert_eq!(echoed["topic"], "echo");
            assert_eq!(echoed["message"], wired(&v));
        }
        // `send(topic)` with no message: absent in Rust, and absent again in the echo.
        peer.cmd(json!({"cmd": "send", "topic": "bare"})).await;
        assert_eq!(all.recv().await.unwrap().message, None);
        assert_eq!(peer.event("message").await["has_message"], false);
        // An empty topic stays empty (the docs' `none` is not what the library does).
        peer.cmd(json!({"cmd": "send", "topic": "", "message": 1}))
            .await;
        assert_eq!(all.recv().await.unwrap().topic, "");
    })
    .await;
}

#[tokio::test]
async fn rust_server_broadcast_reaches_every_node_client() {
    let node = connkit_testkit::require_node!();
    within(60, async {
        let (_dir, path) = unique_socket_path("n2r-bcast");
        let server = rust_echo_server(&path).await;
        let mut peers = Vec::new();
        for _ in 0..3 {
            let mut p = Peer::client(&node, &path).await;
            p.event("connect").await;
            peers.push(p);
        }
        while server.clients().len() < 3 {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        assert_eq!(
            server.broadcast("news", json!({"n": "é"})).await.unwrap(),
            3
        );
        for p in &mut peers {
            let m = p.event("message").await;
            assert_eq!(
                (m["topic"].clone(), m["message"].clone()),
                (json!("news"), json!({"n": "é"}))
            );
        }
        // And one client by id.
        let id = server.clients()[0];
        server.send("direct", json!(7), id).await.unwrap();
    })
    .await;
}

#[tokio::test]
async fn node_frames_split_into_single_bytes_reach_the_rust_server() {
    let node = connkit_testkit::require_node!();
    within(60, async {
        let (_dir, path) = unique_socket_path("n2r-split");
        let server = rust_echo_server(&path).await;
        let mut all = server.subscribe(None);
        let mut peer = Peer::client(&node, &path).await;
        peer.event("connect").await;
        let data =
            "{\"topic\":\"a\",\"message\":\"é€😀\"}\0\0{\"message\":[1],\"topic\":\"b\"}\0\0";
        peer.cmd(json!({"cmd": "raw", "data": data, "chunk": 1}))
            .await;
        let a = all.recv().await.unwrap();
        assert_eq!(a.topic, "a");
        assert_eq!(a.message, Some(json!("é€😀")));
        let b = all.recv().await.unwrap();
        assert_eq!(b.topic, "b");
        assert_eq!(b.message, Some(json!([1])));
    })
    .await;
}

#[tokio::test]
async fn malformed_frame_from_a_node_peer_closes_only_that_connection() {
    let node = connkit_testkit::require_node!();
    within(60, async {
        let (_dir, path) = unique_socket_path("n2r-bad");
        let server = rust_echo_server(&path).await;
        let mut events = server.events();
        let mut bad = Peer::client(&node, &path).await;
        bad.event("connect").await;
        let mut good = Peer::client(&node, &path).await;
        good.event("connect").await;

        bad.cmd(json!({"cmd": "raw", "data": "{not json\u{0}\u{0}", "chunk": 0}))
            .await;
        loop {
            if let Some(Ok(ServerEvent::Error {
                client: Some(_),
                error,
            })) = events.next().await
            {
                assert!(matches!(&*error, Error::Decode { .. }), "{error:?}");
                break;
            }
        }
        // The bad peer was dropped (and reconnects by itself); the server is up.
        bad.event("disconnect").await;
        bad.event("reconnect").await;
        good.cmd(json!({"cmd": "send", "topic": "echo", "message": "fine"}))
            .await;
        assert_eq!(good.event("message").await["message"], "fine");
        bad.cmd(json!({"cmd": "send", "topic": "echo", "message": "me too"}))
            .await;
        assert_eq!(bad.event("message").await["message"], "me too");
    })
    .await;
}

#[tokio::test]
async fn node_client_reconnects_after_the_rust_server_restarts() {
    let node = connkit_testkit::require_node!();
    within(60, async {
        let (_dir, path) = unique_socket_path("n2r-restart");
        let server = rust_echo_server(&path).await;
        let mut peer = Peer::client(&node, &path).await;
        peer.event("connect").await;
        server.close().await;
        peer.event("disconnect").await;
        let server = rust_echo_server(&path).await;
        peer.event("connect").await;
        peer.event("reconnect").await;
        peer.cmd(json!({"cmd": "send", "topic": "echo", "message": "back"}))
            .await;
        assert_eq!(peer.event("message").await["message"], "back");
        drop(server);
    })
    .await;
}

// ---------------------------------------------------------------- Rust client → Node server

#[tokio::test]
async fn rust_client_echo_through_node_server() {
    let node = connkit_testkit::require_node!();
    within(60, async {
        let (_dir, path) = unique_socket_path("r2n-echo");
        let mut peer = Peer::server(&node, &path, true).await;
        let c = rust_client(&path).await;
        let mut replies = c.subscribe(None);
        for v in tricky_values() {
            c.send("echo", v.clone()).await.unwrap();
            let seen = peer.event("message").await;
            assert_eq!(seen["message"], wired(&v));
            assert_eq!(replies.recv().await.unwrap().message, Some(wired(&v)));
        }
        c.send("bare", None).await.unwrap();
        assert_eq!(peer.event("message").await["has_message"], false);
        assert_eq!(replies.recv().await.unwrap().message, None);
    })
    .await;
}

#[tokio::test]
async fn node_server_broadcast_and_split_frames_reach_rust_clients() {
    let node = connkit_testkit::require_node!();
    within(60, async {
        let (_dir, path) = unique_socket_path("r2n-bcast");
        let mut peer = Peer::server(&node, &path, false).await;
        let mut subs = Vec::new();
        let mut clients = Vec::new();
        let mut ids = Vec::new();
        for _ in 0..3 {
            let c = rust_client(&path).await;
            subs.push(c.subscribe(None));
            clients.push(c);
            ids.push(
                peer.event("connection").await["client"]
                    .as_str()
                    .unwrap()
                    .to_owned(),
            );
        }
        peer.cmd(json!({"cmd": "broadcast", "topic": "news", "message": {"k": [1, "é"]}}))
            .await;
        for s in &mut subs {
            let m = s.recv().await.unwrap();
            assert_eq!(m.topic, "news");
            assert_eq!(m.message, Some(json!({"k": [1, "é"]})));
        }
        // Raw bytes one at a time, including multi-byte characters, to one client.
        let data = "{\"topic\":\"s\",\"message\":\"é€😀\"}\0\0";
        peer.cmd(json!({"cmd": "raw", "client": ids[0], "data": data, "chunk": 1}))
            .await;
        let m = subs[0].recv().await.unwrap();
        assert_eq!(m.message, Some(json!("é€😀")));
    })
    .await;
}

#[tokio::test]
async fn rust_client_reconnects_after_the_node_server_restarts() {
    let node = connkit_testkit::require_node!();
    within(60, async {
        let (_dir, path) = unique_socket_path("r2n-restart");
        let mut peer = Peer::server(&node, &path, true).await;
        let c = rust_client(&path).await;
        let mut events = c.events();
        // Kill the Node server hard: its socket file stays behind, stale.
        peer.proc.kill().await.unwrap();
        loop {
            if let Some(Ok(ClientEvent::Disconnect)) = events.next().await {
                break;
            }
        }
        // A new Node server reclaims the stale file; the Rust client comes back.
        let _peer = Peer::server(&node, &path, true).await;
        let mut seen = Vec::new();
        while !matches!(seen.last(), Some(ClientEvent::Reconnect)) {
            let ev = events.next().await.unwrap().unwrap();
            if matches!(ev, ClientEvent::Connect | ClientEvent::Reconnect) {
                seen.push(ev);
            }
        }
        assert!(matches!(
            seen.as_slice(),
            [ClientEvent::Connect, ClientEvent::Reconnect]
        ));
        let mut replies = c.subscribe(None);
        c.send("echo", json!("again")).await.unwrap();
        assert_eq!(replies.recv().await.unwrap().message, Some(json!("again")));
    })
    .await;
}

// ---------------------------------------------------------------- bytes on the wire

/// A deterministic generator of JSON values with the awkward parts of JSON.stringify.
fn generated_values(n: usize) -> Vec<Value> {
    let mut seed: u64 = 0x5eed_1234_abcd_0001;
    let mut next = move || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed
    };
    const CHARS: &[&str] = &[
        "a", "Z", "0", " ", "\"", "\\", "/", "\n", "\r", "\t", "\u{8}", "\u{c}", "\u{0}", "\u{1}",
        "\u{1f}", "\u{7f}", "é", "€", "😀", "\u{2028}", "\u{2029}", "\u{fffd}", "'", "<",
        "\u{ffff}",
    ];
    fn value(next: &mut dyn FnMut() -> u64, depth: u32) -> Value {
        let pick = next() % if depth > 3 { 5 } else { 7 };
        match pick {
            0 => Value::Null,
            1 => Value::Bool(next().is_multiple_of(2)),
            2 => {
                let r = next();
                match r % 6 {
                    0 => json!((r >> 8) as i64 % 1_000_000 - 500_000),
                    1 => json!(f64::from_bits(r >> 2) % 1e6),
                    2 => json!(((r >> 8) % 1000) as f64 / 1000.0),
                    3 => json!(10f64.powi((r >> 8) as i32 % 60 - 30)),
                    4 => json!((r >> 11) as f64 * 1e-3),
                    _ => json!(-((r >> 12) as f64)),
                }
            }
            3 | 4 => {
                let len = next() % 12;
                Value::String(
                    (0..len)
                        .map(|_| CHARS[(next() % CHARS.len() as u64) as usize])
                        .collect(),
                )
            }
            5 => Value::Array((0..next() % 5).map(|_| value(next, depth + 1)).collect()),
            _ => Value::Object(
                (0..next() % 5)
                    .map(|i| {
                        (
                            format!("k{i}{}", CHARS[(next() % 4) as usize]),
                            value(next, depth + 1),
                        )
                    })
                    .collect(),
            ),
        }
    }
    (0..n)
        .map(|_| value(&mut next, 0))
        .filter(|v| !contains_non_finite(v))
        .collect()
}

fn contains_non_finite(v: &Value) -> bool {
    match v {
        Value::Number(n) => n.as_f64().is_none_or(|f| !f.is_finite()),
        Value::Array(a) => a.iter().any(contains_non_finite),
        Value::Object(o) => o.values().any(contains_non_finite),
        _ => false,
    }
}

fn unhex(s: &str) -> Vec<u8> {
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
        .collect()
}

#[tokio::test]
async fn encoder_bytes_equal_the_node_library_for_generated_values() {
    let node = connkit_testkit::require_node!();
    within(120, async {
        let mut peer = Peer::start(&node, &["encode"]).await;
        let values = generated_values(2000);
        assert!(values.len() > 1500);
        for (i, v) in values.iter().enumerate() {
            let topic = format!("t{i}");
            peer.cmd(json!({"topic": topic, "message": v})).await;
            let node_bytes = peer.next(|l| l["hex"].as_str().map(unhex)).await;
            let mut ours = Vec::new();
            connkit_ipc::wire::encode_value(&topic, Some(v), &mut ours).unwrap();
            ours.extend_from_slice(connkit_ipc::wire::DELIMITER);
            assert_eq!(
                String::from_utf8_lossy(&ours),
                String::from_utf8_lossy(&node_bytes),
                "value #{i}: {v}"
            );
            // The same through a payload built from the value.
            let mut via_payload = Vec::new();
            connkit_ipc::wire::encode(&topic, &v.into(), &mut via_payload).unwrap();
            assert_eq!(via_payload, &ours[..ours.len() - 2], "value #{i}: {v}");
            // What Node wrote decodes back to the same value, on the fast path, and sending
            // the received payload again gives Node's bytes.
            let body = bytes::Bytes::copy_from_slice(&node_bytes[..node_bytes.len() - 2]);
            let env = connkit_ipc::wire::decode_compact(&body).expect("compact");
            assert_eq!(env, connkit_ipc::wire::decode_general(&body).unwrap());
            assert_eq!(env.topic, topic);
            assert_eq!(env.message, wired(v));
            let mut again = Vec::new();
            connkit_ipc::wire::encode(&env.topic, &env.message, &mut again).unwrap();
            assert_eq!(again, body, "value #{i}: {v}");
        }
        // A missing message leaves the key out, on both sides.
        peer.cmd(json!({"topic": ""})).await;
        let node_bytes = peer.next(|l| l["hex"].as_str().map(unhex)).await;
        assert_eq!(node_bytes, b"{\"topic\":\"\"}\0\0");
        let mut ours = Vec::new();
        connkit_ipc::wire::encode("", &connkit_ipc::Payload::absent(), &mut ours).unwrap();
        assert_eq!(&ours[..], &node_bytes[..node_bytes.len() - 2]);
    })
    .await;
}
