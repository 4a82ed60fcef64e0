//! Rust client ↔ Rust server: behaviour the reference gets wrong, and our guarantees.

use connkit_ipc::{
    Client, ClientEvent, ClientOptions, Delay, Error, Server, ServerEvent, ServerOptions,
    ServerState, SlowClient,
};
use connkit_testkit::net::unique_socket_path;
use connkit_testkit::within;
use futures_util::StreamExt;
use serde_json::{Value, json};
use std::path::Path;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::UnixStream;

async fn echo_server(path: &Path) -> Server {
    let server = ServerOptions::new(path).listen().await.unwrap();
    server
        .on(Some("echo"), |m| async move {
            m.reply("echo", m.message.clone()).await
        })
        .detach();
    server
}

async fn client(path: &Path) -> Client {
    ClientOptions::new(path)
        .retry_delay(Duration::from_millis(20))
        .reconnect_delay(Duration::from_millis(20))
        .connect()
        .await
        .unwrap()
}

/// Waits for the first server event that `pick` accepts.
async fn next_server_event<T>(
    events: &mut connkit_core::events::EventStream<ServerEvent>,
    mut pick: impl FnMut(ServerEvent) -> Option<T>,
) -> T {
    loop {
        let ev = events
            .next()
            .await
            .expect("server events ended")
            .expect("lagged");
        if let Some(t) = pick(ev) {
            return t;
        }
    }
}

#[tokio::test]
async fn echo_round_trip_with_events() {
    within(20, async {
        let (_dir, path) = unique_socket_path("echo");
        let server = echo_server(&path).await;
        let mut sev = server.events();
        let c = client(&path).await;
        let mut replies = c.subscribe(Some("echo"));
        c.send("echo", json!({"seq": 1, "s": "é😀\u{0}"}))
            .await
            .unwrap();
        let r = replies.recv().await.unwrap();
        assert_eq!(r.message, Some(json!({"seq": 1, "s": "é😀\u{0}"})));
        assert_eq!(r.client, None);
        let id = next_server_event(&mut sev, |e| match e {
            ServerEvent::Connection { client } => Some(client),
            _ => None,
        })
        .await;
        assert_eq!(id.as_uuid().get_version_num(), 4);
        let (topic, client_id) = next_server_event(&mut sev, |e| match e {
            ServerEvent::Message { topic, client, .. } => Some((topic, client)),
            _ => None,
        })
        .await;
        assert_eq!((topic.as_str(), client_id), ("echo", id));
        assert_eq!(server.clients(), vec![id]);
        // A message without payload stays without payload.
        c.send("echo", None).await.unwrap();
        assert_eq!(replies.recv().await.unwrap().message, None);
    })
    .await;
}

#[tokio::test]
async fn broadcast_reaches_every_client() {
    within(20, async {
        let (_dir, path) = unique_socket_path("bcast");
        let server = echo_server(&path).await;
        let mut subs = Vec::new();
        let mut clients = Vec::new();
        for _ in 0..3 {
            let c = client(&path).await;
            subs.push(c.subscribe(Some("news")));
            clients.push(c);
        }
        // Wait until the server has registered all three.
        while server.clients().len() < 3 {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        assert_eq!(server.broadcast("news", json!([1, 2, 3])).await.unwrap(), 3);
        for s in &mut subs {
            assert_eq!(s.recv().await.unwrap().message, Some(json!([1, 2, 3])));
        }
    })
    .await;
}

#[tokio::test]
async fn malformed_frame_closes_only_that_client_and_earlier_frames_are_delivered() {
    within(20, async {
        let (_dir, path) = unique_socket_path("bad");
        let server = echo_server(&path).await;
        let mut all = server.subscribe(None);
        let mut sev = server.events();
        let good = client(&path).await;
        let mut replies = good.subscribe(Some("echo"));

        let mut raw = UnixStream::connect(&path).await.unwrap();
        raw.write_all(
            b"{\"topic\":\"before\",\"message\":1}\0\0{not json\0\0{\"topic\":\"after\"}\0\0",
        )
        .await
        .unwrap();
        let first = all.recv().await.unwrap();
        assert_eq!(first.topic, "before");
        assert_eq!(first.message, Some(json!(1)));
        let err = next_server_event(&mut sev, |e| match e {
            ServerEvent::Error {
                client: Some(c),
                error,
            } => Some((c, error)),
            _ => None,
        })
        .await;
        assert!(matches!(&*err.1, Error::Decode { .. }), "{:?}", err.1);
        let mut rest = Vec::new();
        raw.read_to_end(&mut rest).await.unwrap(); // the server closed that connection
        assert!(rest.is_empty());

        good.send("echo", json!("still here")).await.unwrap();
        assert_eq!(
            replies.recv().await.unwrap().message,
            Some(json!("still here"))
        );
        assert_eq!(*server.state().borrow(), ServerState::Listening);
    })
    .await;
}

#[tokio::test]
async fn failing_or_panicking_handler_disconnects_only_that_client() {
    within(20, async {
        let (_dir, path) = unique_socket_path("handler");
        let server = echo_server(&path).await;
        server
            .on(Some("fail"), |_m| async { Err::<(), _>("no thanks") })
            .detach();
        server
            .on(Some("panic"), |_m| async {
                panic!("boom") as Result<(), Error>
            })
            .detach();
        let mut sev = server.events();
        for topic in ["fail", "panic"] {
            let victim = client(&path).await;
            let mut vev = victim.events();
            victim.send(topic, None).await.unwrap();
            let err = next_server_event(&mut sev, |e| match e {
                ServerEvent::Error { error, .. } => Some(error),
                _ => None,
            })
            .await;
            assert!(
                matches!(&*err, Error::Handler { topic: t, .. } if t == topic),
                "{err:?}"
            );
            // The victim sees a disconnect (then reconnects on its own).
            loop {
                if let Some(Ok(ClientEvent::Disconnect)) = vev.next().await {
                    break;
                }
            }
        }
        let other = client(&path).await;
        let mut replies = other.subscribe(Some("echo"));
        other.send("echo", json!(1)).await.unwrap();
        assert_eq!(replies.recv().await.unwrap().message, Some(json!(1)));
    })
    .await;
}

#[tokio::test]
async fn send_errors_follow_the_reference_order() {
    within(20, async {
        let (_dir, path) = unique_socket_path("senderr");
        let server = echo_server(&path).await;
        let stranger = "0b8f4a4e-4d4e-4a8e-9f7e-4f3c2b1a0d9e".parse().unwrap();
        assert!(matches!(
            server.send("t", json!(1), stranger).await,
            Err(Error::BadClient { client }) if client == stranger
        ));
        server.close().await;
        assert!(matches!(
            server.send("t", json!(1), stranger).await,
            Err(Error::SendAfterClose { .. })
        ));
        assert!(matches!(
            server.broadcast("t", json!(1)).await,
            Err(Error::SendAfterClose { .. })
        ));
        assert!(matches!(
            server.listen().await,
            Err(Error::AlreadyListening)
        ));
    })
    .await;
}

#[tokio::test]
async fn socket_file_is_reclaimed_when_stale_and_never_taken_otherwise() {
    use std::os::unix::fs::PermissionsExt;
    within(20, async {
        let (_dir, path) = unique_socket_path("sockfile");
        let addr_in_use = |r: Result<(), Error>| match r {
            Err(Error::Transport(e)) => e.kind() == connkit_core::ErrorKind::AddrInUse,
            _ => false,
        };
        // A regular file is never removed.
        std::fs::write(&path, b"precious").unwrap();
        let server = ServerOptions::new(&path).build();
        assert!(addr_in_use(server.listen().await));
        assert_eq!(std::fs::read(&path).unwrap(), b"precious");
        std::fs::remove_file(&path).unwrap();
        // A stale socket file (its server died) is reclaimed, and the mode applied.
        drop(std::os::unix::net::UnixListener::bind(&path).unwrap());
        let server = ServerOptions::new(&path).mode(0o600).build();
        server.listen().await.unwrap();
        let mode = std::fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        // A live server's socket is not taken.
        let second = ServerOptions::new(&path).build();
        assert!(addr_in_use(second.listen().await));
        server.close().await;
        assert!(!path.exists(), "close removes the socket file");
    })
    .await;
}

#[tokio::test]
async fn client_reconnects_after_server_restart_with_the_reference_event_order() {
    within(20, async {
        let (_dir, path) = unique_socket_path("restart");
        let server = echo_server(&path).await;
        let c = ClientOptions::new(&path)
            .retry_delay(Duration::from_millis(20))
            .reconnect_delay(Duration::from_millis(20))
            .build()
            .unwrap();
        let mut events = c.events();
        c.start();
        c.connected().await.unwrap();
        server.close().await;
        assert!(!path.exists(), "close removes the socket file");
        let server = echo_server(&path).await;
        let mut seen = Vec::new();
        while seen.last() != Some(&"reconnect") {
            let ev = events.next().await.unwrap().unwrap();
            seen.push(match ev {
                ClientEvent::Connect => "connect",
                ClientEvent::Reconnect => "reconnect",
                ClientEvent::Disconnect => "disconnect",
                ClientEvent::ConnectError { .. } => "connect_error",
                other => panic!("unexpected {other:?}"),
            });
        }
        seen.dedup();
        assert_eq!(seen.first(), Some(&"connect"));
        assert_eq!(seen[1], "disconnect");
        assert_eq!(&seen[seen.len() - 2..], ["connect", "reconnect"]);
        let mut replies = c.subscribe(Some("echo"));
        c.send("echo", json!("again")).await.unwrap();
        assert_eq!(replies.recv().await.unwrap().message, Some(json!("again")));
        drop(server);
    })
    .await;
}

#[tokio::test]
async fn close_while_retrying_emits_close_once_and_stops_retrying() {
    within(20, async {
        let (_dir, path) = unique_socket_path("noserver");
        let c = ClientOptions::new(&path)
            .retry_delay(Duration::from_millis(10))
            .build()
            .unwrap();
        let mut events = c.events();
        c.start();
        // Let a few attempts fail.
        let mut errors = 0;
        while errors < 3 {
            if let Some(Ok(ClientEvent::ConnectError { error })) = events.next().await {
                assert!(error.is_retryable(), "{error}");
                errors += 1;
            }
        }
        assert!(matches!(
            c.send("t", None).await,
            Err(Error::NoServer { .. })
        ));
        c.close().await;
        c.close().await; // idempotent
        let mut closes = 0;
        // Drain: after Close, nothing more comes (the stream ends when the client is dropped).
        drop(c);
        while let Some(ev) = events.next().await {
            match ev.unwrap() {
                ClientEvent::Close => closes += 1,
                ClientEvent::ConnectError { .. } => assert_eq!(closes, 0, "retry after close"),
                other => panic!("unexpected {other:?}"),
            }
        }
        assert_eq!(closes, 1);
        // A server appearing later gets no connection from the closed client.
        let server = ServerOptions::new(&path).listen().await.unwrap();
        tokio::time::sleep(Duration::from_millis(100)).await;
        assert!(server.clients().is_empty());
    })
    .await;
}

#[tokio::test]
async fn offline_queue_delivers_in_order_after_connect() {
    within(20, async {
        let (_dir, path) = unique_socket_path("queue");
        let c = ClientOptions::new(&path)
            .retry_delay(Delay::range_millis(5, 15))
            .offline_queue(3)
            .start()
            .unwrap();
        for i in 0..3 {
            c.send("q", json!(i)).await.unwrap();
        }
        assert!(matches!(
            c.send("q", json!(3)).await,
            Err(Error::QueueFull { .. })
        ));
        let server = ServerOptions::new(&path).build();
        let mut got = server.subscribe(Some("q"));
        server.listen().await.unwrap();
        for i in 0..3 {
            assert_eq!(got.recv().await.unwrap().message, Some(json!(i)));
        }
        c.send("q", json!("live")).await.unwrap();
        assert_eq!(got.recv().await.unwrap().message, Some(json!("live")));
    })
    .await;
}

#[tokio::test]
async fn slow_reader_is_disconnected_under_the_disconnect_policy() {
    within(30, async {
        let (_dir, path) = unique_socket_path("slow");
        let server = ServerOptions::new(&path)
            .client_queue(2)
            .slow_client(SlowClient::Disconnect)
            .listen()
            .await
            .unwrap();
        let mut sev = server.events();
        let _raw = UnixStream::connect(&path).await.unwrap(); // never reads
        let id = next_server_event(&mut sev, |e| match e {
            ServerEvent::Connection { client } => Some(client),
            _ => None,
        })
        .await;
        let big = Value::String("x".repeat(1 << 20));
        let mut outcome = None;
        for _ in 0..512 {
            if let Err(e) = server.send("big", big.clone(), id).await {
                outcome = Some(e);
                break;
            }
            tokio::task::yield_now().await;
        }
        assert!(
            matches!(outcome, Some(Error::SlowClient { client }) if client == id),
            "{outcome:?}"
        );
        next_server_event(&mut sev, |e| match e {
            ServerEvent::Disconnect { client } if client == id => Some(()),
            _ => None,
        })
        .await;
    })
    .await;
}

#[tokio::test]
async fn oversize_frame_closes_that_client() {
    within(20, async {
        let (_dir, path) = unique_socket_path("oversize");
        let server = ServerOptions::new(&path).max_frame_len(1024).listen().await.unwrap();
        let mut sev = server.events();
        let mut raw = UnixStream::connect(&path).await.unwrap();
        raw.write_all(&vec![b'a'; 4096]).await.unwrap();
        let err = next_server_event(&mut sev, |e| match e {
            ServerEvent::Error { error, .. } => Some(error),
            _ => None,
        })
        .await;
        assert!(
            matches!(&*err, Error::Transport(e) if e.kind() == connkit_core::ErrorKind::FrameTooLong),
            "{err:?}"
        );
    })
    .await;
}

#[tokio::test]
async fn server_close_is_graceful_and_emits_close_once() {
    within(20, async {
        let (_dir, path) = unique_socket_path("close");
        let server = echo_server(&path).await;
        let mut sev = server.events();
        let c = client(&path).await;
        let mut cev = c.events();
        server.close().await;
        server.close().await;
        let mut closes = 0;
        while let Ok(Some(Ok(ev))) =
            tokio::time::timeout(Duration::from_millis(200), sev.next()).await
        {
            if matches!(ev, ServerEvent::Close) {
                closes += 1;
            }
        }
        assert_eq!(closes, 1);
        assert_eq!(*server.state().borrow(), ServerState::Closed);
        loop {
            if let Some(Ok(ClientEvent::Disconnect)) = cev.next().await {
                break;
            }
        }
    })
    .await;
}
