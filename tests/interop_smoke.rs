//! Smoke test of the interop setup: connkit-core's delimiter framing against
//! a Node echo server (`tests/interop/node/echo_server.js`, plain `net`).
//!
//! Skipped without Node, failing under `CI=true` (see `connkit_testkit::node_or_skip`).

use std::time::Duration;

use bytes::Bytes;
use connkit_core::Endpoint;
use connkit_core::transport::{MessageReceiver, MessageSender, TransportOptions, connect};
use connkit_testkit::{NodePeers, NodeProcess, node_or_skip, within};

const READY_TIMEOUT: Duration = Duration::from_secs(20);

/// Starts the echo server (`extra` is e.g. `["--delim=2"]`) and connects to
/// it with `delimiter`. The returned process must outlive the connection.
async fn echo_peer(
    node: &NodePeers,
    extra: &[&str],
    delimiter: &[u8],
) -> (NodeProcess, MessageSender, MessageReceiver) {
    let mut server = node
        .spawn("echo_server.js", extra)
        .expect("spawn echo_server.js");
    let port: u16 = server
        .wait_ready(READY_TIMEOUT)
        .await
        .expect("echo_server.js ready")
        .parse()
        .expect("READY carries the port");
    let ep: Endpoint = format!("tcp://127.0.0.1:{port}").parse().expect("endpoint");
    let conn = connect(&ep, &TransportOptions::new().delimiter(delimiter))
        .await
        .expect("connect to echo_server.js");
    let (tx, rx) = conn.split();
    (server, tx, rx)
}

async fn next(rx: &mut MessageReceiver) -> Bytes {
    rx.recv()
        .await
        .expect("echo stream ended early")
        .expect("echo stream failed")
}

#[tokio::test]
async fn many_frames_come_back_in_order() {
    let Some(node) = node_or_skip() else { return };
    within(60, async {
        let (_server, tx, mut rx) = echo_peer(&node, &[], b"\0").await;
        const N: usize = 5_000;
        // Send from another task so a full queue can't deadlock against
        // the echoes we have not read yet.
        let sender = tokio::spawn(async move {
            for i in 0..N {
                tx.send(Bytes::from(format!("frame-{i}")))
                    .await
                    .expect("send");
            }
            tx
        });
        for i in 0..N {
            assert_eq!(
                next(&mut rx).await,
                format!("frame-{i}").as_bytes(),
                "frame {i}"
            );
        }
        let _tx = sender.await.expect("sender task");
    })
    .await;
}

#[tokio::test]
async fn multi_byte_utf8_survives_the_round_trip() {
    let Some(node) = node_or_skip() else { return };
    within(60, async {
        let (_server, tx, mut rx) = echo_peer(&node, &[], b"\0").await;
        let text = "héllo wörld — 日本語 テキスト, emoji 🚀🦀, combining é, ✓";
        tx.send(Bytes::from(text)).await.expect("send");
        let echoed = next(&mut rx).await;
        assert_eq!(std::str::from_utf8(&echoed).expect("utf-8"), text);
        // An empty frame and a frame after it keep their boundaries.
        tx.send(Bytes::new()).await.expect("send empty");
        tx.send(Bytes::from_static(b"after")).await.expect("send");
        assert_eq!(next(&mut rx).await, Bytes::new());
        assert_eq!(next(&mut rx).await, Bytes::from_static(b"after"));
    })
    .await;
}

#[tokio::test]
async fn a_one_mebibyte_frame_round_trips() {
    let Some(node) = node_or_skip() else { return };
    within(60, async {
        let (_server, tx, mut rx) = echo_peer(&node, &[], b"\0").await;
        // Every byte value but NUL, in a pattern that catches reordering.
        let big: Bytes = (0..1024 * 1024)
            .map(|i: u32| (i % 255 + 1) as u8)
            .collect::<Vec<u8>>()
            .into();
        tx.send(big.clone()).await.expect("send 1 MiB");
        tx.send(Bytes::from_static(b"small")).await.expect("send");
        let echoed = next(&mut rx).await;
        assert_eq!(echoed.len(), big.len());
        assert!(echoed == big, "1 MiB frame came back altered");
        assert_eq!(next(&mut rx).await, Bytes::from_static(b"small"));
    })
    .await;
}

#[tokio::test]
async fn the_two_nul_delimiter_variant_round_trips() {
    let Some(node) = node_or_skip() else { return };
    within(60, async {
        let (_server, tx, mut rx) = echo_peer(&node, &["--delim=2"], b"\0\0").await;
        let frames: Vec<Bytes> = vec![
            Bytes::from_static(br#"{"topic":"hello","message":"world"}"#),
            Bytes::from("{\"topic\":\"u\",\"message\":\"é 🚀\"}"),
            // A single NUL inside a frame is data, not a delimiter.
            Bytes::from_static(b"one\0nul"),
        ];
        for f in &frames {
            tx.send(f.clone()).await.expect("send");
        }
        for f in &frames {
            assert_eq!(&next(&mut rx).await, f);
        }
    })
    .await;
}

#[tokio::test]
async fn the_stream_ends_when_the_peer_exits() {
    let Some(node) = node_or_skip() else { return };
    within(60, async {
        let (mut server, tx, mut rx) = echo_peer(&node, &[], b"\0").await;
        tx.send(Bytes::from_static(b"last")).await.expect("send");
        assert_eq!(next(&mut rx).await, Bytes::from_static(b"last"));
        // echo_server.js exits when its stdin ends.
        server.close_stdin();
        assert!(
            server
                .wait_exit(Duration::from_secs(10))
                .await
                .expect("exit")
                .success()
        );
        match rx.recv().await {
            None => {}
            Some(Err(e)) => panic!("expected a clean end of stream, got error {e}"),
            Some(Ok(m)) => panic!("expected end of stream, got {m:?}"),
        }
    })
    .await;
}
