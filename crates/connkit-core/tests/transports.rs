//! Loopback tests for every transport: tcp, unix, tls, ws, wss.

use bytes::Bytes;
use connkit_core::tls::{TlsClientConfig, TlsServerConfig};
use connkit_core::transport::{Listener, TransportOptions, bind_socket_file, connect, listen};
use connkit_core::{Endpoint, ErrorKind};
use futures_util::{SinkExt, StreamExt};
use std::future::Future;
use std::os::unix::fs::{FileTypeExt, PermissionsExt};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::tungstenite::protocol::frame::Frame;
use tokio_tungstenite::tungstenite::protocol::frame::coding::{Data, OpCode};

/// Every network test runs under a hard limit.
async fn within<F: Future>(f: F) -> F::Output {
    tokio::time::timeout(Duration::from_secs(30), f)
        .await
        .expect("test timed out after 30 s")
}

/// Accept connections and echo every message back, until the listener is dropped.
fn spawn_echo(listener: Listener) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        while let Ok(incoming) = listener.accept().await {
            tokio::spawn(async move {
                let Ok(conn) = incoming.establish().await else {
                    return;
                };
                let (tx, mut rx) = conn.split();
                while let Some(Ok(msg)) = rx.recv().await {
                    if tx.send(msg).await.is_err() {
                        break;
                    }
                }
            });
        }
    })
}

/// Everything a raw TCP client of `ep` receives until the server closes.
async fn raw_bytes_until_closed(ep: &Endpoint) -> Vec<u8> {
    let mut raw = tokio::net::TcpStream::connect(ep.authority().unwrap())
        .await
        .unwrap();
    let mut got = Vec::new();
    raw.read_to_end(&mut got).await.unwrap();
    got
}

/// An echo server (see [`spawn_echo`]) listening on `url`; its endpoint.
async fn echo_server(url: &str, opts: &TransportOptions) -> Endpoint {
    let l = listen(&url.parse().unwrap(), opts).await.unwrap();
    let ep = l.local_endpoint().clone();
    spawn_echo(l);
    ep
}

async fn echo_round_trips(ep: &Endpoint, opts: &TransportOptions) {
    let (tx, mut rx) = connect(ep, opts).await.unwrap().split();
    let msgs: Vec<Bytes> = (0..200)
        .map(|i| Bytes::from(format!("{{\"n\":{i},\"s\":\"é€😀\"}}")))
        .collect();
    for m in &msgs {
        tx.send(m.clone()).await.unwrap();
    }
    for m in &msgs {
        assert_eq!(&rx.recv().await.unwrap().unwrap(), m);
    }
    let big = Bytes::from(vec![b'x'; 1 << 20]);
    tx.send(big.clone()).await.unwrap();
    assert_eq!(rx.recv().await.unwrap().unwrap(), big);
}

fn socket_dir() -> tempfile::TempDir {
    tempfile::Builder::new()
        .prefix("ck")
        .tempdir_in("/tmp")
        .unwrap()
}

/// A socket file left behind by a listener that died without cleaning up.
fn stale_socket(name: &str) -> (tempfile::TempDir, std::path::PathBuf) {
    let dir = socket_dir();
    let path = dir.path().join(name);
    drop(std::os::unix::net::UnixListener::bind(&path).unwrap());
    (dir, path)
}

struct Certs {
    server: TlsServerConfig,
    client: TlsClientConfig,
}

fn certs() -> Certs {
    let ck = rcgen::generate_simple_self_signed(vec!["localhost".to_owned()]).unwrap();
    let cert_pem = ck.cert.pem();
    let key_pem = ck.signing_key.serialize_pem();
    Certs {
        server: TlsServerConfig::from_pem(cert_pem.as_bytes(), key_pem.as_bytes()).unwrap(),
        client: TlsClientConfig::from_root_pem(cert_pem.as_bytes())
            .unwrap()
            .server_name("localhost"),
    }
}

#[tokio::test]
async fn tcp_echo_keeps_order_and_whole_messages() {
    within(async {
        let opts = TransportOptions::new();
        let ep = echo_server("tcp://127.0.0.1:0", &opts).await;
        assert_ne!(ep.port(), Some(0));
        echo_round_trips(&ep, &opts).await;
    })
    .await;
}

#[tokio::test]
async fn tcp_frames_are_delimited_on_the_wire() {
    within(async {
        let opts = TransportOptions::new().delimiter(b"\0\0");
        let l = listen(&"tcp://127.0.0.1:0".parse().unwrap(), &opts)
            .await
            .unwrap();
        let ep = l.local_endpoint().clone();
        let server = tokio::spawn(async move {
            let (tx, _rx) = l.accept().await.unwrap().establish().await.unwrap().split();
            tx.send("a").await.unwrap();
            tx.send("bc").await.unwrap();
            tx.close().await;
            tx.closed().await;
        });
        assert_eq!(raw_bytes_until_closed(&ep).await, b"a\0\0bc\0\0");
        server.await.unwrap();
    })
    .await;
}

#[tokio::test]
async fn unix_echo_keeps_order_and_whole_messages() {
    within(async {
        let dir = socket_dir();
        let ep = Endpoint::unix(dir.path().join("echo.sock"));
        let opts = TransportOptions::new().delimiter(b"\0\0");
        spawn_echo(listen(&ep, &opts).await.unwrap());
        echo_round_trips(&ep, &opts).await;
    })
    .await;
}

#[tokio::test]
async fn tls_echo_with_a_certificate_made_at_test_time() {
    within(async {
        let c = certs();
        let server_opts = TransportOptions::new().tls_server(c.server);
        let ep = echo_server("tls://127.0.0.1:0", &server_opts).await;
        echo_round_trips(&ep, &TransportOptions::new().tls_client(c.client)).await;
    })
    .await;
}

#[tokio::test]
async fn tls_with_an_untrusted_certificate_is_a_fatal_tls_error() {
    within(async {
        let c = certs();
        let other = certs();
        let ep = echo_server(
            "tls://127.0.0.1:0",
            &TransportOptions::new().tls_server(c.server),
        )
        .await;
        let err = connect(&ep, &TransportOptions::new().tls_client(other.client))
            .await
            .unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Tls, "{err}");
        assert!(!err.is_retryable());
        let err = connect(&ep, &TransportOptions::new()).await.unwrap_err();
        assert_eq!(err.kind(), ErrorKind::InvalidConfig, "{err}");
    })
    .await;
}

#[tokio::test]
async fn wss_echo_with_subprotocol() {
    within(async {
        let c = certs();
        let server_opts = TransportOptions::new()
            .tls_server(c.server)
            .ws_subprotocol("metarhia-jstp")
            .ws_require_subprotocol(true);
        let ep = echo_server("wss://127.0.0.1:0/jstp", &server_opts).await;
        let opts = TransportOptions::new()
            .tls_client(c.client)
            .ws_subprotocol("metarhia-jstp");
        let conn = connect(&ep, &opts).await.unwrap();
        assert_eq!(conn.info().ws_subprotocol(), Some("metarhia-jstp"));
        drop(conn);
        echo_round_trips(&ep, &opts).await;
    })
    .await;
}

#[tokio::test]
async fn ws_missing_required_subprotocol_is_refused_with_403() {
    within(async {
        let opts = TransportOptions::new()
            .ws_subprotocol("metarhia-jstp")
            .ws_require_subprotocol(true);
        let ep = echo_server("ws://127.0.0.1:0", &opts).await;
        let err = connect(&ep, &TransportOptions::new()).await.unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Handshake, "{err}");
        assert!(err.to_string().contains("403"), "{err}");
        // With the subprotocol it works.
        let opts = TransportOptions::new().ws_subprotocol("metarhia-jstp");
        echo_round_trips(&ep, &opts).await;
    })
    .await;
}

/// A raw tungstenite client: sends a 100 KiB text message as fragments, and accepts frames
/// of at most 16 KiB, so it only gets the echo if our side fragments it too.
#[tokio::test]
async fn ws_fragmented_100k_message_is_reassembled_and_echoed_in_fragments() {
    within(async {
        let ep = echo_server("ws://127.0.0.1:0/", &TransportOptions::new()).await;
        let tcp = tokio::net::TcpStream::connect(ep.authority().unwrap())
            .await
            .unwrap();
        let cfg = WebSocketConfig::default().max_frame_size(Some(16 * 1024));
        let (mut ws, _) =
            tokio_tungstenite::client_async_with_config(ep.to_string(), tcp, Some(cfg))
                .await
                .unwrap();
        let payload: String = (0..100 * 1024)
            .map(|i| char::from(b'a' + (i % 26) as u8))
            .collect();
        let bytes = Bytes::from(payload.clone());
        let chunks: Vec<Bytes> = (0..bytes.len())
            .step_by(7000)
            .map(|i| bytes.slice(i..(i + 7000).min(bytes.len())))
            .collect();
        let last = chunks.len() - 1;
        for (i, chunk) in chunks.into_iter().enumerate() {
            let op = if i == 0 {
                OpCode::Data(Data::Text)
            } else {
                OpCode::Data(Data::Continue)
            };
            ws.feed(Message::Frame(Frame::message(chunk, op, i == last)))
                .await
                .unwrap();
        }
        ws.flush().await.unwrap();
        match ws.next().await.unwrap().unwrap() {
            Message::Text(t) => assert_eq!(t.as_str(), payload),
            other => panic!("unexpected {other:?}"),
        }
    })
    .await;
}

#[tokio::test]
async fn ws_pings_are_answered_while_reading() {
    within(async {
        let ep = echo_server("ws://127.0.0.1:0/", &TransportOptions::new()).await;
        let tcp = tokio::net::TcpStream::connect(ep.authority().unwrap())
            .await
            .unwrap();
        let (mut ws, _) = tokio_tungstenite::client_async(ep.to_string(), tcp)
            .await
            .unwrap();
        ws.send(Message::Ping(Bytes::from_static(b"are you there")))
            .await
            .unwrap();
        match ws.next().await.unwrap().unwrap() {
            Message::Pong(p) => assert_eq!(&p[..], b"are you there"),
            other => panic!("expected a pong, got {other:?}"),
        }
        // Binary messages are accepted and echoed (as text: our default).
        ws.send(Message::Binary(Bytes::from_static(b"bin")))
            .await
            .unwrap();
        assert_eq!(
            ws.next().await.unwrap().unwrap(),
            Message::Text("bin".into())
        );
    })
    .await;
}

#[tokio::test]
async fn oversize_frame_closes_only_that_connection() {
    within(async {
        let opts = TransportOptions::new().max_message_len(1024);
        let l = listen(&"tcp://127.0.0.1:0".parse().unwrap(), &opts)
            .await
            .unwrap();
        let ep = l.local_endpoint().clone();
        let (err_tx, mut err_rx) = tokio::sync::mpsc::unbounded_channel();
        tokio::spawn(async move {
            while let Ok(incoming) = l.accept().await {
                let err_tx = err_tx.clone();
                tokio::spawn(async move {
                    let (tx, mut rx) = incoming.establish().await.unwrap().split();
                    while let Some(msg) = rx.recv().await {
                        match msg {
                            Ok(m) => tx.send(m).await.unwrap(),
                            Err(e) => {
                                let _ = err_tx.send(e.kind());
                            }
                        }
                    }
                });
            }
        });
        let (good_tx, mut good_rx) = connect(&ep, &opts).await.unwrap().split();
        good_tx.send("before").await.unwrap();
        assert_eq!(good_rx.recv().await.unwrap().unwrap(), "before");

        // A raw peer that never sends a delimiter.
        let mut bad = tokio::net::TcpStream::connect(ep.authority().unwrap())
            .await
            .unwrap();
        bad.write_all(&vec![b'z'; 4096]).await.unwrap();
        assert_eq!(err_rx.recv().await, Some(ErrorKind::FrameTooLong));
        let mut rest = Vec::new();
        let _ = bad.read_to_end(&mut rest).await; // the server closed it
        assert!(rest.is_empty());

        good_tx.send("after").await.unwrap();
        assert_eq!(good_rx.recv().await.unwrap().unwrap(), "after");
        // And new connections are still accepted.
        let (tx, mut rx) = connect(&ep, &opts).await.unwrap().split();
        tx.send("new").await.unwrap();
        assert_eq!(rx.recv().await.unwrap().unwrap(), "new");
    })
    .await;
}

#[tokio::test]
async fn truncated_frame_at_end_of_stream_is_a_protocol_error() {
    within(async {
        let opts = TransportOptions::new();
        let l = listen(&"tcp://127.0.0.1:0".parse().unwrap(), &opts)
            .await
            .unwrap();
        let ep = l.local_endpoint().clone();
        let mut raw = tokio::net::TcpStream::connect(ep.authority().unwrap())
            .await
            .unwrap();
        let (_tx, mut rx) = l.accept().await.unwrap().establish().await.unwrap().split();
        raw.write_all(b"whole\0half").await.unwrap();
        raw.shutdown().await.unwrap();
        assert_eq!(rx.recv().await.unwrap().unwrap(), "whole");
        assert_eq!(
            rx.recv().await.unwrap().unwrap_err().kind(),
            ErrorKind::Protocol
        );
        assert!(rx.recv().await.is_none());
    })
    .await;
}

#[tokio::test]
async fn messages_that_cannot_be_framed_are_refused_before_queueing() {
    within(async {
        let opts = TransportOptions::new()
            .delimiter(b"\0\0")
            .max_message_len(8);
        let ep = echo_server("tcp://127.0.0.1:0", &opts).await;
        let (tx, mut rx) = connect(&ep, &opts).await.unwrap().split();
        assert_eq!(
            tx.send("a\0\0b").await.unwrap_err().kind(),
            ErrorKind::InvalidMessage
        );
        assert_eq!(
            tx.send("123456789").await.unwrap_err().kind(),
            ErrorKind::InvalidMessage
        );
        tx.send("a\0b").await.unwrap(); // a single NUL is fine with a two-NUL delimiter
        assert_eq!(rx.recv().await.unwrap().unwrap(), "a\0b");
    })
    .await;
}

/// `try_send_many` queues in order and stops at the first message it cannot queue, saying
/// how many went in. The test's single-threaded runtime does not run the writer between the
/// calls, so the queue's bound (4 messages) is met deterministically.
#[tokio::test]
async fn try_send_many_queues_in_order_and_stops_at_the_first_refusal() {
    within(async {
        let opts = TransportOptions::new()
            .delimiter(b"\0\0")
            .max_message_len(8)
            .outbound_capacity(4);
        let l = listen(&"tcp://127.0.0.1:0".parse().unwrap(), &opts)
            .await
            .unwrap();
        let ep = l.local_endpoint().clone();
        let server = tokio::spawn(async move {
            let (tx, _rx) = l.accept().await.unwrap().establish().await.unwrap().split();
            let b = |s: &'static str| Bytes::from_static(s.as_bytes());
            // A message with the delimiter inside is refused; the one before it is queued.
            let (n, r) = tx.try_send_many(&[b("a"), b("b\0\0c"), b("d")]);
            assert_eq!((n, r.unwrap_err().kind()), (1, ErrorKind::InvalidMessage));
            let (n, r) = tx.try_send_many(&[b("d")]);
            assert_eq!(n, 1);
            r.unwrap();
            // Two queued; room for two more of three.
            let (n, r) = tx.try_send_many(&[b("e"), b("f"), b("g")]);
            assert_eq!((n, r.unwrap_err().kind()), (2, ErrorKind::QueueFull));
            let (n, r) = tx.try_send_many(&[]);
            assert_eq!(n, 0);
            r.unwrap();
            tx.close().await;
            let (n, r) = tx.try_send_many(&[b("x")]);
            assert_eq!((n, r.unwrap_err().kind()), (0, ErrorKind::Closed));
            tx.closed().await;
        });
        assert_eq!(raw_bytes_until_closed(&ep).await, b"a\0\0d\0\0e\0\0f\0\0");
        server.await.unwrap();

        // On WebSocket the messages go one by one, with the same result.
        let ep = echo_server("ws://127.0.0.1:0/", &TransportOptions::new()).await;
        let (tx, mut rx) = connect(&ep, &TransportOptions::new())
            .await
            .unwrap()
            .split();
        let (n, r) = tx.try_send_many(&[Bytes::from_static(b"one"), Bytes::from_static(b"two")]);
        assert_eq!(n, 2);
        r.unwrap();
        assert_eq!(rx.recv().await.unwrap().unwrap(), "one");
        assert_eq!(rx.recv().await.unwrap().unwrap(), "two");
    })
    .await;
}

#[tokio::test]
async fn outbound_queue_is_bounded_when_the_peer_does_not_read() {
    within(async {
        let opts = TransportOptions::new()
            .outbound_capacity(4)
            .max_message_len(2 << 20);
        let l = listen(&"tcp://127.0.0.1:0".parse().unwrap(), &opts)
            .await
            .unwrap();
        let ep = l.local_endpoint().clone();
        // The server accepts and never reads.
        let _hold = tokio::spawn(async move {
            let conn = l.accept().await.unwrap().establish().await.unwrap();
            tokio::time::sleep(Duration::from_secs(60)).await;
            drop(conn);
        });
        let (tx, _rx) = connect(&ep, &opts).await.unwrap().split();
        let msg = Bytes::from(vec![b'm'; 1 << 20]);
        let mut blocked = false;
        for _ in 0..256 {
            if tokio::time::timeout(Duration::from_millis(300), tx.send(msg.clone()))
                .await
                .is_err()
            {
                blocked = true;
                break;
            }
        }
        assert!(
            blocked,
            "256 MiB were accepted without the queue filling up"
        );
        assert_eq!(tx.queue_room(), 0);
    })
    .await;
}

#[tokio::test]
async fn connect_refused_is_retryable() {
    within(async {
        // Bind then drop to get a port with nothing on it.
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let err = connect(&Endpoint::tcp("127.0.0.1", port), &TransportOptions::new())
            .await
            .unwrap_err();
        assert_eq!(err.kind(), ErrorKind::ConnectFailed, "{err}");
        assert!(err.is_retryable());
        let dir = socket_dir();
        let err = connect(
            &Endpoint::unix(dir.path().join("none.sock")),
            &TransportOptions::new(),
        )
        .await
        .unwrap_err();
        assert_eq!(err.kind(), ErrorKind::ConnectFailed, "{err}");
    })
    .await;
}

#[tokio::test]
async fn stale_socket_file_is_reclaimed() {
    within(async {
        let (_dir, path) = stale_socket("stale.sock");
        assert!(
            std::fs::symlink_metadata(&path)
                .unwrap()
                .file_type()
                .is_socket()
        );
        let ep = Endpoint::unix(&path);
        let opts = TransportOptions::new();
        spawn_echo(listen(&ep, &opts).await.unwrap());
        let (tx, mut rx) = connect(&ep, &opts).await.unwrap().split();
        tx.send("reclaimed").await.unwrap();
        assert_eq!(rx.recv().await.unwrap().unwrap(), "reclaimed");
    })
    .await;
}

#[tokio::test]
async fn live_socket_is_not_stolen_and_the_probe_is_closed() {
    within(async {
        let dir = socket_dir();
        let ep = Endpoint::unix(dir.path().join("live.sock"));
        let opts = TransportOptions::new();
        let first = listen(&ep, &opts).await.unwrap();
        let err = listen(&ep, &opts).await.unwrap_err();
        assert_eq!(err.kind(), ErrorKind::AddrInUse, "{err}");
        // The probe reached the live server and was closed at once (no phantom client).
        let (_tx, mut rx) = first
            .accept()
            .await
            .unwrap()
            .establish()
            .await
            .unwrap()
            .split();
        assert!(rx.recv().await.is_none());
        // The first server still owns the path.
        spawn_echo(first);
        let (tx, mut rx) = connect(&ep, &opts).await.unwrap().split();
        tx.send("still mine").await.unwrap();
        assert_eq!(rx.recv().await.unwrap().unwrap(), "still mine");
    })
    .await;
}

#[tokio::test]
async fn regular_file_is_never_deleted() {
    within(async {
        let dir = socket_dir();
        let path = dir.path().join("data.txt");
        std::fs::write(&path, b"precious").unwrap();
        let err = listen(&Endpoint::unix(&path), &TransportOptions::new())
            .await
            .unwrap_err();
        assert_eq!(err.kind(), ErrorKind::AddrInUse, "{err}");
        assert!(err.to_string().contains("not a socket"), "{err}");
        assert_eq!(std::fs::read(&path).unwrap(), b"precious");
    })
    .await;
}

#[tokio::test]
async fn socket_file_is_removed_on_close_and_on_drop_and_gets_its_mode() {
    within(async {
        let dir = socket_dir();
        let path = dir.path().join("mode.sock");
        let ep = Endpoint::unix(&path);
        let l = listen(&ep, &TransportOptions::new().unix_mode(0o600))
            .await
            .unwrap();
        let meta = std::fs::metadata(&path).unwrap();
        assert!(meta.file_type().is_socket());
        assert_eq!(meta.permissions().mode() & 0o777, 0o600);
        l.close();
        assert!(!path.exists(), "close removes the socket file");
        {
            let _l = listen(&ep, &TransportOptions::new()).await.unwrap();
            assert!(path.exists());
        }
        assert!(!path.exists(), "drop removes the socket file");
    })
    .await;
}

#[tokio::test]
async fn bind_socket_file_gives_a_raw_listener_and_removes_only_its_own_file() {
    within(async {
        // A stale socket file is reclaimed, as by `listen`.
        let (_dir, path) = stale_socket("raw.sock");
        let (std_listener, file) = bind_socket_file(&path, Some(0o600)).await.unwrap();
        assert_eq!(file.path(), path);
        let meta = std::fs::metadata(&path).unwrap();
        assert!(meta.file_type().is_socket());
        assert_eq!(meta.permissions().mode() & 0o777, 0o600);
        let listener = tokio::net::UnixListener::from_std(std_listener).unwrap();
        let mut client = tokio::net::UnixStream::connect(&path).await.unwrap();
        let (mut served, _) = listener.accept().await.unwrap();
        client.write_all(b"raw").await.unwrap();
        let mut buf = [0u8; 3];
        served.read_exact(&mut buf).await.unwrap();
        assert_eq!(&buf, b"raw");
        // A second bind on a live socket fails and leaves it alone.
        let err = bind_socket_file(&path, None).await.unwrap_err();
        assert_eq!(err.kind(), ErrorKind::AddrInUse, "{err}");
        // Someone else's socket now sits at the path: dropping ours must not remove it.
        drop(listener);
        std::fs::remove_file(&path).unwrap();
        let _other = std::os::unix::net::UnixListener::bind(&path).unwrap();
        drop(file);
        assert!(
            path.exists(),
            "a socket file that is not ours is left alone"
        );
    })
    .await;
}

#[tokio::test]
async fn dropping_the_receiver_closes_the_connection() {
    within(async {
        let opts = TransportOptions::new();
        let l = listen(&"tcp://127.0.0.1:0".parse().unwrap(), &opts)
            .await
            .unwrap();
        let ep = l.local_endpoint().clone();
        let (tx, rx) = connect(&ep, &opts).await.unwrap().split();
        let (_stx, mut srx) = l.accept().await.unwrap().establish().await.unwrap().split();
        drop(rx);
        tx.closed().await;
        assert_eq!(tx.send("late").await.unwrap_err().kind(), ErrorKind::Closed);
        assert!(srx.recv().await.is_none(), "the peer sees the close");
    })
    .await;
}
