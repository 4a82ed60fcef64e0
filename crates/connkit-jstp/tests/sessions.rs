//! Sessions that survive reconnects (spec §6), the reconnector and connect policies (§9),
//! the heartbeat and WebSocket pings (§7), and live application replacement (§8), Rust
//! client ↔ Rust server, with a fault-injecting TCP proxy cutting the link. Every test has a
//! hard timeout; nothing asserts on timing.

mod support;

use connkit_jstp::error::ERR_CALLBACK_LOST;
use connkit_jstp::policy::{ConnectPolicy, ConnectRequest, Credentials};
use connkit_jstp::{
    Applications, Client, ClientOptions, ConnectionEvent, ConnectionState, Error, ServerEvent,
    UnknownSession, Value,
};
use connkit_testkit::{FaultProxy, within};
use futures_util::StreamExt;
use std::time::Duration;
use support::{Fixture, Raw, Transport, fast_reconnect, tcp_addr};
use tokio::net::TcpStream;

fn v(s: &str) -> Value {
    s.parse().unwrap()
}

async fn proxied(f: &Fixture) -> (FaultProxy, connkit_core::Endpoint) {
    let proxy = FaultProxy::start(tcp_addr(f)).await.unwrap();
    let ep = format!("tcp://{}", proxy.addr()).parse().unwrap();
    (proxy, ep)
}

async fn wait_state(c: &Client, want: ConnectionState) {
    let mut st = c.state();
    st.wait_for(|s| *s == want).await.unwrap();
}

/// Cut the link and keep it down (new connections refused) until the client noticed.
async fn go_offline(proxy: &FaultProxy, c: &Client) {
    proxy.set_refuse(true);
    proxy.cut_all();
    wait_state(c, ConnectionState::Disconnected).await;
}

#[tokio::test]
async fn calls_and_events_made_offline_are_delivered_after_the_resume() {
    within(30, async {
        let f = Fixture::start().await;
        let (proxy, ep) = proxied(&f).await;
        let mut server_events = f.server.events();
        let c = f
            .client_opts()
            .reconnect(fast_reconnect())
            .connect(&ep, "testApp@^1.0.0")
            .await
            .unwrap();
        let mut conn_events = c.events();
        assert_eq!(
            c.call("calculator", "add", [v("1"), v("2")]).await.unwrap(),
            vec![v("3")]
        );
        go_offline(&proxy, &c).await;
        // Made while offline: buffered only.
        let call = {
            let c = c.clone();
            tokio::spawn(async move { c.call("calculator", "add", [v("10"), v("20")]).await })
        };
        c.emit("calculator", "hello", [v("'offline'")])
            .await
            .unwrap();
        tokio::task::yield_now().await;
        proxy.set_refuse(false);
        assert_eq!(call.await.unwrap().unwrap(), vec![v("30")]);
        wait_state(&c, ConnectionState::Connected).await;
        // The event arrived, on the same server-side connection (path A: `reconnect`).
        let mut saw_reconnect = false;
        loop {
            match server_events.next().await.unwrap().unwrap() {
                ServerEvent::Reconnect { .. } => saw_reconnect = true,
                ServerEvent::Event { event, .. } if event.event == "hello" => {
                    assert_eq!(event.args, vec![v("'offline'")]);
                    break;
                }
                _ => {}
            }
        }
        assert!(saw_reconnect);
        // The client saw the attempt and the restore.
        let mut restored = None;
        while restored.is_none() {
            if let ConnectionEvent::Restored { replayed, lost, .. } =
                conn_events.next().await.unwrap().unwrap()
            {
                restored = Some((replayed, lost));
            }
        }
        assert_eq!(restored, Some((2, 0)));
        // And it goes on working.
        assert_eq!(
            c.call("calculator", "add", [v("3"), v("4")]).await.unwrap(),
            vec![v("7")]
        );
        assert!(proxy.accepted() >= 2);
    })
    .await;
}

#[tokio::test]
async fn a_lost_reply_fails_with_minus_one_and_resend_calls_again() {
    within(30, async {
        let f = Fixture::start().await;
        let (proxy, ep) = proxied(&f).await;
        let c = f
            .client_opts()
            .reconnect(fast_reconnect())
            .connect(&ep, "testApp")
            .await
            .unwrap();
        for resend in [false, true] {
            let call = {
                let c = c.clone();
                tokio::spawn(async move {
                    if resend {
                        c.call_with_resend("calculator", "sleep", [v("300")]).await
                    } else {
                        c.call("calculator", "sleep", [v("300")]).await
                    }
                })
            };
            // The pong proves the server has the call (the stream is ordered).
            c.ping().await.unwrap();
            go_offline(&proxy, &c).await;
            // The method finishes while the client is away: its reply is lost.
            tokio::time::sleep(Duration::from_millis(400)).await;
            proxy.set_refuse(false);
            let r = call.await.unwrap();
            if resend {
                assert!(r.is_ok(), "{r:?}");
            } else {
                match r {
                    Err(Error::Remote(e)) => assert_eq!(e.code(), ERR_CALLBACK_LOST),
                    other => panic!("expected −1, got {other:?}"),
                }
            }
            wait_state(&c, ConnectionState::Connected).await;
        }
    })
    .await;
}

#[tokio::test]
async fn a_silent_server_is_declared_dead_and_the_session_moves_to_a_new_socket() {
    within(30, async {
        let f = Fixture::start().await;
        let (proxy, ep) = proxied(&f).await;
        let c = f
            .client_opts()
            .reconnect(fast_reconnect())
            .heartbeat_interval(Duration::from_millis(50))
            .heartbeat_timeout(Duration::from_millis(200))
            .connect_timeout(Duration::from_millis(500))
            // The proxy stays a black hole: attempts rotate to the direct endpoint.
            .fallback_endpoints([f.endpoint(Transport::Tcp)])
            .connect(&ep, "testApp")
            .await
            .unwrap();
        let mut events = c.events();
        // The link goes silent without closing: only the pong timeout can tell.
        proxy.pause();
        loop {
            if let ConnectionEvent::Restored { .. } = events.next().await.unwrap().unwrap() {
                break;
            }
        }
        // The server still held the old, silent socket: it was dropped for the new one.
        assert_eq!(
            c.call("calculator", "add", [v("1"), v("1")]).await.unwrap(),
            vec![v("2")]
        );
        // Later calls are still answered (the Node server bug of §9 does not exist here).
        tokio::time::sleep(Duration::from_millis(300)).await;
        assert_eq!(
            c.call("calculator", "add", [v("2"), v("2")]).await.unwrap(),
            vec![v("4")]
        );
        assert_eq!(f.server.clients().len(), 1);
    })
    .await;
}

#[tokio::test]
async fn an_unknown_session_starts_a_new_one_by_default() {
    within(30, async {
        let f = Fixture::start_with(|o| o.client_expiration_time(Duration::from_millis(50))).await;
        let (proxy, ep) = proxied(&f).await;
        let mut server_events = f.server.events();
        let c = f
            .client_opts()
            .login("user", "secret")
            .reconnect(fast_reconnect())
            .connect(&ep, "testApp")
            .await
            .unwrap();
        let old = c.session_id().to_owned();
        let mut events = c.events();
        go_offline(&proxy, &c).await;
        // Made while offline, for the old session.
        let pending = {
            let c = c.clone();
            tokio::spawn(async move { c.call("calculator", "answer", []).await })
        };
        c.emit("calculator", "hello", [v("'lost'")]).await.unwrap();
        tokio::task::yield_now().await;
        // The session expires on the server meanwhile.
        tokio::time::sleep(Duration::from_millis(300)).await;
        proxy.set_refuse(false);
        let (new, failed, discarded) = loop {
            match events.next().await.unwrap().unwrap() {
                ConnectionEvent::SessionReplaced {
                    old: o,
                    new,
                    failed,
                    discarded,
                } => {
                    assert_eq!(o, old);
                    break (new, failed, discarded);
                }
                ConnectionEvent::Restored { .. } | ConnectionEvent::Closed { .. } => {
                    panic!("expected a new session")
                }
                _ => {}
            }
        };
        assert_ne!(new, old);
        assert_eq!(c.session_id(), new);
        assert_eq!((failed, discarded), (1, 1));
        match pending.await.unwrap() {
            Err(Error::Remote(e)) => assert_eq!(e.code(), ERR_CALLBACK_LOST),
            other => panic!("expected −1, got {other:?}"),
        }
        // The new session logged in again (the connect policy), and works.
        assert_eq!(
            c.call("calculator", "whoami", []).await.unwrap(),
            vec![v("'user'")]
        );
        let mut strategies = Vec::new();
        while let Some(Some(Ok(e))) = futures_util::FutureExt::now_or_never(server_events.next()) {
            if let ServerEvent::HandshakeRequest { strategy, .. } = e {
                strategies.push(strategy);
            }
        }
        assert_eq!(strategies, ["login", "session", "login"]);
    })
    .await;
}

#[tokio::test]
async fn an_unknown_session_stops_the_reconnector_when_asked() {
    within(30, async {
        let f = Fixture::start_with(|o| o.client_expiration_time(Duration::from_millis(50))).await;
        let (proxy, ep) = proxied(&f).await;
        let c = ClientOptions::new()
            .reconnect(fast_reconnect().on_unknown_session(UnknownSession::Stop))
            .connect(&ep, "testApp")
            .await
            .unwrap();
        go_offline(&proxy, &c).await;
        // The session expires on the server meanwhile.
        tokio::time::sleep(Duration::from_millis(300)).await;
        proxy.set_refuse(false);
        c.closed().await;
        assert!(c.is_closed());
    })
    .await;
}

/// Records every handshake it is asked for; logs in first, then resumes.
#[derive(Debug, Default)]
struct Recording(std::sync::Mutex<Vec<(u32, bool)>>);

impl ConnectPolicy for Recording {
    fn credentials(&self, request: &ConnectRequest<'_>) -> Credentials {
        self.0
            .lock()
            .unwrap()
            .push((request.attempt, request.session.is_some()));
        match request.session {
            Some(s) => s.resume(),
            None => Credentials::login("user", "secret"),
        }
    }
}

#[tokio::test]
async fn the_connect_policy_decides_every_handshake() {
    within(30, async {
        let f = Fixture::start().await;
        let (proxy, ep) = proxied(&f).await;
        let policy = std::sync::Arc::new(Recording::default());
        let c = f
            .client_opts()
            .connect_policy(std::sync::Arc::clone(&policy))
            .reconnect(fast_reconnect())
            .connect(&ep, "testApp")
            .await
            .unwrap();
        assert_eq!(c.username(), Some("user"));
        proxy.set_refuse(true);
        proxy.cut_all();
        wait_state(&c, ConnectionState::Disconnected).await;
        tokio::time::sleep(Duration::from_millis(50)).await;
        proxy.set_refuse(false);
        wait_state(&c, ConnectionState::Connected).await;
        assert_eq!(
            c.call("calculator", "whoami", []).await.unwrap(),
            vec![v("'user'")]
        );
        let asked = policy.0.lock().unwrap().clone();
        assert_eq!(asked.first(), Some(&(0, false)));
        assert!(asked.len() >= 2, "{asked:?}");
        for (i, (attempt, session)) in asked.iter().enumerate().skip(1) {
            assert_eq!((*attempt as usize, *session), (i, true));
        }
        // Refused credentials fail the first connect with 11.
        refused_with_11(
            f.client_opts()
                .connect_policy(connkit_jstp::policy::Login::new("user", "wrong"))
                .connect(&f.endpoint(Transport::Tcp), "testApp")
                .await,
        );
    })
    .await;
}

#[tokio::test]
async fn endpoints_rotate_on_each_attempt() {
    within(30, async {
        let f = Fixture::start().await;
        let (a, ep_a) = proxied(&f).await;
        let (b, ep_b) = proxied(&f).await;
        let (c_proxy, ep_c) = proxied(&f).await;
        let c = ClientOptions::new()
            .reconnect(fast_reconnect())
            .fallback_endpoints([ep_b, ep_c])
            .connect(&ep_a, "testApp")
            .await
            .unwrap();
        // a and b refuse; the third attempt goes through c.
        let mut events = c.events();
        a.set_refuse(true);
        b.set_refuse(true);
        a.cut_all();
        loop {
            if let ConnectionEvent::Restored { .. } = events.next().await.unwrap().unwrap() {
                break;
            }
        }
        assert_eq!((a.accepted(), b.accepted(), c_proxy.accepted()), (2, 1, 1));
        assert_eq!(
            c.call("calculator", "answer", []).await.unwrap(),
            vec![v("42")]
        );
    })
    .await;
}

#[tokio::test]
async fn the_reconnector_gives_up_after_max_attempts() {
    within(30, async {
        let f = Fixture::start().await;
        let (proxy, ep) = proxied(&f).await;
        let c = ClientOptions::new()
            .reconnect(fast_reconnect().max_attempts(3))
            .connect(&ep, "testApp")
            .await
            .unwrap();
        let mut events = c.events();
        go_offline(&proxy, &c).await;
        let pending = {
            let c = c.clone();
            tokio::spawn(async move { c.call("calculator", "answer", []).await })
        };
        c.closed().await;
        let mut attempts = 0;
        while let Some(Ok(e)) = events.next().await {
            match e {
                ConnectionEvent::ReconnectAttempt { attempt } => attempts = attempt,
                ConnectionEvent::Closed { .. } => break,
                _ => {}
            }
        }
        assert_eq!(attempts, 3);
        match pending.await.unwrap() {
            Err(Error::Remote(e)) => assert_eq!(e.code(), ERR_CALLBACK_LOST),
            other => panic!("expected −1, got {other:?}"),
        }
    })
    .await;
}

#[tokio::test]
async fn server_ids_continue_strictly_downward_and_the_buffer_replays_on_the_wire() {
    within(30, async {
        let f = Fixture::start().await;
        let addr = tcp_addr(&f);
        let (a, sid) = Raw::start_session_with_two_server_events(addr).await;
        drop(a);
        // Resume saying we received only -1: the server answers with its receivedCount (1)
        // and sends -2 again, with its original id.
        let mut b = Raw::connect(addr).await;
        b.send(&format!(
            "{{handshake:[0,'testApp','^1.0.0'],session:['{sid}',1]}}"
        ))
        .await;
        assert_eq!(b.frame().await, "{handshake:[0],ok:1}");
        assert_eq!(
            b.frame().await,
            "{event:[-2,'calculator'],tick:[2,'1.0.0']}"
        );
        // New server messages go on downward: -3, never a reused id.
        b.expect_ids_continue_at_minus_three().await;
        Raw::expect_unknown_session_refused(addr).await;
    })
    .await;
}

#[tokio::test]
async fn the_server_heartbeat_declares_a_silent_client_dead_and_keeps_its_session() {
    within(30, async {
        let f = Fixture::start_with(|o| {
            o.heartbeat_interval(Duration::from_millis(50))
                .heartbeat_timeout(Duration::from_millis(200))
        })
        .await;
        let (proxy, ep) = proxied(&f).await;
        let mut server_events = f.server.events();
        let c = ClientOptions::new()
            .heartbeat_interval(Duration::from_millis(50))
            .connect(&ep, "testApp")
            .await
            .unwrap();
        // Pings both ways are answered: calls go on across several beats.
        for _ in 0..5 {
            tokio::time::sleep(Duration::from_millis(60)).await;
            assert_eq!(
                c.call("calculator", "answer", []).await.unwrap(),
                vec![v("42")]
            );
        }
        // The link goes silent: only the server's pong timeout notices.
        proxy.pause();
        loop {
            if let ServerEvent::Disconnect { .. } = server_events.next().await.unwrap().unwrap() {
                break;
            }
        }
        assert!(f.server.clients().is_empty());
    })
    .await;
}

#[tokio::test]
async fn an_exported_session_resumes_in_a_new_client_with_its_offline_messages() {
    within(30, async {
        let f = Fixture::start().await;
        let (proxy, ep) = proxied(&f).await;
        let mut server_events = f.server.events();
        let a = ClientOptions::new()
            .reconnect(fast_reconnect())
            .connect(&ep, "testApp")
            .await
            .unwrap();
        assert_eq!(
            a.call("calculator", "answer", []).await.unwrap(),
            vec![v("42")]
        );
        go_offline(&proxy, &a).await;
        a.emit("calculator", "hello", [v("'from the old process'")])
            .await
            .unwrap();
        let snapshot = a.export_session().await.unwrap();
        assert_eq!(snapshot.id, a.session_id());
        assert_eq!(snapshot.buffer.len(), 1);
        // Through JSON, as a process restart would store it.
        let json = serde_json::to_string(&snapshot).unwrap();
        drop(a);
        let b = ClientOptions::new()
            .resume(serde_json::from_str(&json).unwrap())
            .connect(&f.endpoint(Transport::Tcp), "testApp")
            .await
            .unwrap();
        assert_eq!(b.session_id(), snapshot.id);
        loop {
            match server_events.next().await.unwrap().unwrap() {
                ServerEvent::Event { event, .. } if event.event == "hello" => {
                    assert_eq!(event.args, vec![v("'from the old process'")]);
                    break;
                }
                _ => {}
            }
        }
        assert_eq!(
            b.call("calculator", "add", [v("1"), v("1")]).await.unwrap(),
            vec![v("2")]
        );
        // An unknown session is refused with 11.
        let mut bad = snapshot.clone();
        bad.id = "00000000-0000-4000-8000-000000000000".into();
        refused_with_11(
            ClientOptions::new()
                .resume(bad)
                .connect(&f.endpoint(Transport::Tcp), "testApp")
                .await,
        );
    })
    .await;
}

#[tokio::test]
async fn set_applications_moves_live_clients_to_the_newest_matching_version() {
    within(30, async {
        let f = Fixture::start().await;
        let ep = f.endpoint(Transport::Tcp);
        let mut server_events = f.server.events();
        let ranged = Client::connect(&ep, "testApp@^1.0.0").await.unwrap();
        let exact = Client::connect(&ep, "testApp@1.0.0").await.unwrap();
        let latest = Client::connect(&ep, "testApp").await.unwrap();
        let version = |c: &Client| {
            let c = c.clone();
            async move { c.call("calculator", "version", []).await.unwrap() }
        };
        assert_eq!(version(&ranged).await, vec![v("'1.0.0'")]);
        assert_eq!(version(&latest).await, vec![v("'2.0.0'")]);
        let apps: Applications = ["1.0.0", "1.5.0", "2.0.0", "2.3.0", "3.0.0"]
            .into_iter()
            .map(support::test_app)
            .collect();
        f.server.set_applications(apps).unwrap();
        // A range is matched again; no version keeps the major it got; exact stays.
        assert_eq!(version(&ranged).await, vec![v("'1.5.0'")]);
        assert_eq!(version(&exact).await, vec![v("'1.0.0'")]);
        assert_eq!(version(&latest).await, vec![v("'2.3.0'")]);
        let mut moved = Vec::new();
        while moved.len() < 2 {
            if let ServerEvent::ApplicationMoved { from, to, name, .. } =
                server_events.next().await.unwrap().unwrap()
            {
                assert_eq!(name, "testApp");
                moved.push((from.to_string(), to.to_string()));
            }
        }
        moved.sort();
        assert_eq!(
            moved,
            [
                ("1.0.0".to_owned(), "1.5.0".to_owned()),
                ("2.0.0".to_owned(), "2.3.0".to_owned())
            ]
        );
        // Nothing matches any more: the client keeps what it has.
        let only_three: Applications = std::iter::once(support::test_app("3.0.0")).collect();
        f.server.set_applications(only_three).unwrap();
        assert_eq!(version(&ranged).await, vec![v("'1.5.0'")]);
        // New handshakes see the new index.
        let three = Client::connect(&ep, "testApp").await.unwrap();
        assert_eq!(version(&three).await, vec![v("'3.0.0'")]);
    })
    .await;
}

#[tokio::test]
async fn websocket_pings_are_answered_on_a_jstp_connection() {
    use futures_util::SinkExt;
    use tokio_tungstenite::tungstenite::Message as Ws;
    use tokio_tungstenite::tungstenite::client::IntoClientRequest;
    within(30, async {
        let f = Fixture::start().await;
        let ep = f.endpoint(Transport::Ws);
        let port = ep.port().unwrap();
        let tcp = TcpStream::connect(("127.0.0.1", port)).await.unwrap();
        let mut req = format!("ws://127.0.0.1:{port}/")
            .into_client_request()
            .unwrap();
        req.headers_mut().insert(
            "Sec-WebSocket-Protocol",
            connkit_jstp::WS_SUBPROTOCOL.parse().unwrap(),
        );
        let (mut ws, _) = tokio_tungstenite::client_async(req, tcp).await.unwrap();
        ws.send(Ws::text("{handshake:[0,'testApp']}"))
            .await
            .unwrap();
        match ws.next().await.unwrap().unwrap() {
            Ws::Text(t) => assert!(t.starts_with("{handshake:[0],ok:'"), "{t}"),
            other => panic!("{other:?}"),
        }
        ws.send(Ws::Ping(b"are you there".to_vec().into()))
            .await
            .unwrap();
        loop {
            match ws.next().await.unwrap().unwrap() {
                Ws::Pong(p) => {
                    assert_eq!(&p[..], b"are you there");
                    break;
                }
                Ws::Ping(_) => {}
                other => panic!("{other:?}"),
            }
        }
        // The JSTP session goes on after the ping.
        ws.send(Ws::text("{call:[1,'calculator'],answer:[]}"))
            .await
            .unwrap();
        match ws.next().await.unwrap().unwrap() {
            Ws::Text(t) => assert_eq!(t.as_str(), "{callback:[1],ok:[42]}"),
            other => panic!("{other:?}"),
        }
    })
    .await;
}

/// A connect the server refused with error 11 (auth failed, or an unknown session).
fn refused_with_11<T: std::fmt::Debug>(r: Result<T, Error>) {
    match r {
        Err(Error::Remote(e)) => assert_eq!(e.code(), connkit_jstp::error::ERR_AUTH_FAILED),
        other => panic!("expected 11, got {other:?}"),
    }
}
