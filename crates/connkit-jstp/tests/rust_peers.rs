//! Rust client ↔ Rust server on every transport (tcp, tls, unix, ws, wss): handshakes and
//! version choice, calls and errors, events, inspect, server → client calls, ping, the
//! client registry and broadcast, shutdown, and large messages.

mod support;

use connkit_jstp::error::{
    ERR_APP_NOT_FOUND, ERR_AUTH_FAILED, ERR_CALLBACK_LOST, ERR_INTERFACE_NOT_FOUND,
    ERR_INTERNAL_API_ERROR, ERR_INVALID_SIGNATURE, ERR_METHOD_NOT_FOUND,
};
use connkit_jstp::{
    AuthPolicy, AuthRequest, Client, ClientOptions, ConnectionState, Error, RemoteError,
    ServerEvent, Value,
};
use connkit_testkit::within;
use futures_util::StreamExt;
use std::time::Duration;
use support::{ALL, Fixture, Transport};

fn v(s: &str) -> Value {
    s.parse().unwrap()
}

fn code(r: Result<impl std::fmt::Debug, Error>) -> i64 {
    match r {
        Err(Error::Remote(e)) => e.code(),
        other => panic!("expected a remote error, got {other:?}"),
    }
}

#[tokio::test]
async fn calls_results_and_errors_on_every_transport() {
    within(60, async {
        let f = Fixture::start().await;
        for t in ALL {
            let c = f
                .client_opts()
                .connect(&f.endpoint(t), "testApp@^1.0.0")
                .await
                .unwrap_or_else(|e| panic!("{t:?}: {e}"));
            assert_eq!(c.session_id().len(), 36, "{t:?}");
            assert_eq!(
                c.call("calculator", "answer", []).await.unwrap(),
                vec![v("42")]
            );
            assert_eq!(
                c.call("calculator", "add", [v("2"), v("3")]).await.unwrap(),
                vec![v("5")]
            );
            assert_eq!(
                c.call("calculator", "add", [v("0.1"), v("0.2")])
                    .await
                    .unwrap(),
                vec![Value::from(0.1 + 0.2)]
            );
            let sum: f64 = c
                .call_typed("calculator", "add", &(-5, 1e21))
                .await
                .unwrap();
            assert_eq!(sum, 1e21);
            for x in [
                r#"'it\'s "q" \\ \n\t\u0001 ü € 😀 \u2028'"#,
                "{a:[1,null,true,false,'x'],'b-c':{d:[]}}",
                "[1,,3]",
                "[,1,,]",
                "null",
                "'2019-04-25T00:00:00.000Z'",
            ] {
                assert_eq!(
                    c.call("calculator", "echo", [v(x)]).await.unwrap(),
                    vec![v(x)],
                    "{t:?} echo {x}"
                );
            }
            // A trailing undefined argument counts (we write `[,]`, Node would write `[]`).
            assert_eq!(
                c.call("calculator", "echo", [Value::Undefined])
                    .await
                    .unwrap(),
                vec![Value::Undefined]
            );
            assert_eq!(
                c.call("calculator", "pair", [v("1"), v("'two'")])
                    .await
                    .unwrap(),
                vec![v("1"), v("'two'")]
            );
            assert_eq!(
                c.call("calculator", "version", []).await.unwrap(),
                vec![v("'1.0.0'")]
            );
            let e = c
                .call("calculator", "divide", [v("1"), v("0")])
                .await
                .unwrap_err();
            let r = e.remote().unwrap();
            assert_eq!(
                (r.code(), r.text_message().as_str(), r.get_info()),
                (100, "Division by zero", Some(&[v("'a'"), v("1")][..]))
            );
            assert_eq!(code(c.call("calculator", "fail", [v("14")]).await), 14);
            let e = c
                .call("calculator", "failText", [v("'nope'")])
                .await
                .unwrap_err();
            assert_eq!(e.remote(), Some(&RemoteError::text("nope")));
            assert_eq!(
                code(c.call("calculator", "add", [v("1")]).await),
                ERR_INVALID_SIGNATURE
            );
            assert_eq!(
                code(c.call("calculator", "add", [v("1"), v("2"), v("3")]).await),
                ERR_INVALID_SIGNATURE
            );
            assert_eq!(
                code(c.call("calculator", "add", [v("'1'"), v("2")]).await),
                ERR_INVALID_SIGNATURE
            );
            assert_eq!(
                code(c.call("calculator", "noSuchMethod", []).await),
                ERR_METHOD_NOT_FOUND
            );
            assert_eq!(
                code(c.call("noIface", "x", []).await),
                ERR_INTERFACE_NOT_FOUND
            );
            // A panicking method answers 16; the connection and the server carry on.
            assert_eq!(
                code(c.call("calculator", "panic", []).await),
                ERR_INTERNAL_API_ERROR
            );
            // A result that cannot be sent (NaN) answers 16 too.
            assert_eq!(
                code(c.call("calculator", "nan", []).await),
                ERR_INTERNAL_API_ERROR
            );
            assert_eq!(
                c.call("calculator", "answer", []).await.unwrap(),
                vec![v("42")]
            );
            // NaN arguments are refused locally; nothing is sent.
            assert!(matches!(
                c.call("calculator", "echo", [Value::from(f64::NAN)]).await,
                Err(Error::Serialize(_))
            ));
            c.ping().await.unwrap();
            c.close().await;
            assert_eq!(*c.state().borrow(), ConnectionState::Closed);
            assert!(matches!(
                c.call("calculator", "answer", []).await,
                Err(Error::Closed)
            ));
        }
        f.server.close().await;
    })
    .await;
}

#[tokio::test]
async fn handshake_chooses_versions_like_node() {
    within(60, async {
        let f = Fixture::start().await;
        for t in ALL {
            let ep = f.endpoint(t);
            let version = |app: &'static str| {
                let opts = f.client_opts();
                let ep = ep.clone();
                async move {
                    let c = opts.connect(&ep, app).await?;
                    let r = c.call("calculator", "version", []).await?;
                    c.close().await;
                    Ok::<_, Error>(r[0].as_str().unwrap().to_owned())
                }
            };
            assert_eq!(version("testApp").await.unwrap(), "2.0.0", "{t:?}");
            assert_eq!(version("testApp@^1.0.0").await.unwrap(), "1.0.0");
            assert_eq!(version("testApp@1").await.unwrap(), "1.0.0");
            assert_eq!(version("testApp@^2.0.0").await.unwrap(), "2.0.0");
            assert_eq!(version("testApp@1.0.0").await.unwrap(), "1.0.0");
            assert_eq!(
                version("testApp@>=1.0.0 <2.0.0 || 5.x").await.unwrap(),
                "1.0.0"
            );
            assert_eq!(version("testApp@*").await.unwrap(), "2.0.0");
            assert_eq!(code(version("testApp@^3.0.0").await), ERR_APP_NOT_FOUND);
            assert_eq!(code(version("testApp@v1.0.0").await), ERR_APP_NOT_FOUND);
            assert_eq!(code(version("nope").await), ERR_APP_NOT_FOUND);
            // An empty name would read as a handshake reply to Node: refused locally.
            assert!(matches!(
                version("@1.0.0").await,
                Err(Error::InvalidApplication(_))
            ));
            // An invalid range fails locally, before anything is sent.
            assert!(matches!(
                version("testApp@1.2.3.4").await,
                Err(Error::InvalidRange { range }) if range == "1.2.3.4"
            ));
        }
        f.server.close().await;
    })
    .await;
}

struct Tokens;

impl AuthPolicy for Tokens {
    async fn authenticate(&self, req: &AuthRequest) -> Result<String, RemoteError> {
        match (
            req.strategy.as_str(),
            req.credentials.at(0).and_then(Value::as_str),
        ) {
            ("token", Some("abc")) => Ok("token-user".into()),
            ("token", Some("empty")) => Ok(String::new()),
            ("token", Some("custom")) => Err(RemoteError::new(42).message("go away")),
            _ => Err(RemoteError::auth_failed().message("dropped on the wire")),
        }
    }
}

#[tokio::test]
async fn login_and_custom_strategies() {
    within(60, async {
        let f = Fixture::start().await;
        let g = Fixture::start_with(|o| o.auth(Tokens)).await;
        for t in ALL {
            let c = f
                .client_opts()
                .login("user", "secret")
                .connect(&f.endpoint(t), "testApp")
                .await
                .unwrap();
            assert_eq!(c.username(), Some("user"));
            assert_eq!(
                c.call("calculator", "whoami", []).await.unwrap(),
                vec![v("'user'")]
            );
            c.close().await;
            let bad = f
                .client_opts()
                .login("user", "wrong")
                .connect(&f.endpoint(t), "testApp")
                .await;
            assert_eq!(code(bad), ERR_AUTH_FAILED);
            // `Logins` knows only `login`.
            let other = f
                .client_opts()
                .strategy("token", v("['abc']"))
                .connect(&f.endpoint(t), "testApp")
                .await;
            assert_eq!(code(other), ERR_AUTH_FAILED);
            // Anonymous always works.
            f.client_opts()
                .connect(&f.endpoint(t), "testApp@1")
                .await
                .unwrap()
                .close()
                .await;

            let token = |cred: &'static str| {
                let opts = g.client_opts().strategy("token", Value::from(vec![cred]));
                let ep = g.endpoint(t);
                async move { opts.connect(&ep, "testApp").await }
            };
            let c = token("abc").await.unwrap();
            assert_eq!(
                c.call("calculator", "whoami", []).await.unwrap(),
                vec![v("'token-user'")]
            );
            c.close().await;
            assert_eq!(code(token("empty").await), ERR_AUTH_FAILED);
            let e = token("custom").await.unwrap_err();
            let r = e.remote().unwrap();
            assert_eq!((r.code(), r.text_message().as_str()), (42, "go away"));
            let e = token("nope").await.unwrap_err();
            // A predefined code loses its message on the wire.
            assert_eq!(e.remote().unwrap().text_message(), "Authentication failed");
        }
        // No policy at all: every strategy but anonymous gets 11.
        let h = connkit_jstp::ServerOptions::new()
            .application(support::test_app("1.0.0"))
            .listen(["tcp://127.0.0.1:0".parse().unwrap()])
            .await
            .unwrap();
        let r = ClientOptions::new()
            .login("user", "secret")
            .connect(&h.endpoints()[0], "testApp")
            .await;
        assert_eq!(code(r), ERR_AUTH_FAILED);
        let c = Client::connect(&h.endpoints()[0], "testApp").await.unwrap();
        assert_eq!(c.username(), None);
        c.close().await;
        for s in [f.server, g.server, h] {
            s.close().await;
        }
    })
    .await;
}

#[tokio::test]
async fn events_inspect_server_to_client_calls_and_ping() {
    within(60, async {
        let f = Fixture::start().await;
        for t in ALL {
            let c = f
                .client_opts()
                .connect(&f.endpoint(t), "testApp@1.0.0")
                .await
                .unwrap();
            // Events emitted by a method arrive before its reply.
            let mut all = c.remote_events(None);
            let mut calc = c.remote_events(Some("calculator"));
            let n = c.call("calculator", "ticker", [v("3")]).await.unwrap();
            assert_eq!(n, vec![v("3")]);
            for i in 1..=3 {
                let ev = calc.next().await.unwrap().unwrap();
                assert_eq!(
                    (ev.interface.as_str(), ev.event.as_str(), ev.args.clone()),
                    ("calculator", "tick", vec![Value::from(i), v("'1.0.0'")])
                );
                assert_eq!(all.next().await.unwrap().unwrap(), ev);
            }
            // A client event reaches the server's handler, which answers with an event.
            c.emit("calculator", "hello", [v("'from client'"), v("1")])
                .await
                .unwrap();
            let back = calc.next().await.unwrap().unwrap();
            assert_eq!(back.event, "helloBack");
            assert_eq!(back.args, vec![v("'from client'"), v("1")]);
            // Inspect.
            let proxy = c.inspect("calculator").await.unwrap();
            assert_eq!(&proxy.methods()[..4], ["answer", "add", "echo", "divide"]);
            assert!(proxy.has_method("callClient"));
            assert_eq!(
                proxy.call("add", [v("1"), v("2")]).await.unwrap(),
                vec![v("3")]
            );
            let r: f64 = proxy.call_typed("add", &(2, 2)).await.unwrap();
            assert_eq!(r, 4.0);
            assert_eq!(code(c.inspect("nope").await), ERR_INTERFACE_NOT_FOUND);
            // Server → client call, from inside a server method.
            assert_eq!(
                c.call("calculator", "callClient", [v("'srv'")])
                    .await
                    .unwrap(),
                vec![v("'hello srv from client'")]
            );
            // …and from the server's registry.
            let sc = f
                .server
                .clients()
                .into_iter()
                .find(|s| s.session_id() == c.session_id())
                .unwrap();
            assert_eq!(sc.role(), connkit_jstp::Role::Server);
            let r: String = sc
                .call_typed("clientSide", "greet", &("registry",))
                .await
                .unwrap();
            assert_eq!(r, "hello registry from client");
            assert_eq!(
                code(sc.call("nope", "x", []).await),
                ERR_INTERFACE_NOT_FOUND
            );
            let cp = sc.inspect("clientSide").await.unwrap();
            assert_eq!(cp.methods(), ["greet"]);
            sc.ping().await.unwrap();
            c.ping().await.unwrap();
            // Events from the server's handle.
            sc.emit("calculator", "direct", [v("7")]).await.unwrap();
            assert_eq!(calc.next().await.unwrap().unwrap().event, "direct");
            c.close().await;
        }
        f.server.close().await;
    })
    .await;
}

#[tokio::test]
async fn registry_broadcast_and_server_events() {
    within(60, async {
        let f = Fixture::start().await;
        let mut events = f.server.events();
        let mut clients = Vec::new();
        for t in ALL {
            clients.push(
                f.client_opts()
                    .connect(&f.endpoint(t), "testApp")
                    .await
                    .unwrap(),
            );
        }
        let mut ids = Vec::new();
        while ids.len() < ALL.len() {
            if let Ok(ServerEvent::Connect { client }) = events.next().await.unwrap() {
                ids.push(client.id());
            }
        }
        assert_eq!(f.server.clients().len(), ALL.len());
        let mut streams: Vec<_> = clients
            .iter()
            .map(|c| c.remote_events(Some("news")))
            .collect();
        let sent = f
            .server
            .broadcast("news", "flash", [v("'hi'"), v("{n:1}")])
            .await
            .unwrap();
        assert_eq!(sent, ALL.len());
        for s in &mut streams {
            let ev = s.next().await.unwrap().unwrap();
            assert_eq!(
                (ev.event.as_str(), ev.args.clone()),
                ("flash", vec![v("'hi'"), v("{n:1}")])
            );
        }
        let sent = f
            .server
            .broadcast_typed("news", "n", &(1, "two"))
            .await
            .unwrap();
        assert_eq!(sent, ALL.len());
        // Client → server events show up as server events.
        clients[0]
            .emit("calculator", "anything", [v("1")])
            .await
            .unwrap();
        loop {
            if let Ok(ServerEvent::Event { client, event }) = events.next().await.unwrap() {
                assert!(ids.contains(&client));
                assert_eq!(event.event, "anything");
                break;
            }
        }
        // A panic is a server event; nothing else changes.
        let _ = clients[1].call("calculator", "panic", []).await;
        loop {
            if let Ok(ServerEvent::HandlerPanicked {
                handler, message, ..
            }) = events.next().await.unwrap()
            {
                assert_eq!(
                    (handler.as_str(), message.as_str()),
                    ("calculator.panic", "boom")
                );
                break;
            }
        }
        let closing = clients.remove(0);
        closing.close().await;
        loop {
            if let Ok(ServerEvent::Disconnect { client, error }) = events.next().await.unwrap() {
                assert!(error.is_none());
                assert!(ids.contains(&client));
                break;
            }
        }
        assert_eq!(f.server.clients().len(), ALL.len() - 1);
        // Graceful shutdown: every client sees its connection close.
        f.server.close().await;
        for c in &clients {
            c.closed().await;
        }
        assert!(f.server.clients().is_empty());
        assert!(matches!(events.next().await, Some(Ok(_))));
    })
    .await;
}

#[tokio::test]
async fn pending_calls_fail_with_callback_lost_when_the_server_goes() {
    within(60, async {
        for t in ALL {
            let f = Fixture::start_with(|o| o.close_grace(Duration::from_millis(100))).await;
            let c = f
                .client_opts()
                .connect(&f.endpoint(t), "testApp")
                .await
                .unwrap();
            let slow = {
                let c = c.clone();
                tokio::spawn(async move { c.call("calculator", "sleep", [v("60000")]).await })
            };
            // Make sure the call is in flight.
            c.ping().await.unwrap();
            f.server.close().await;
            assert_eq!(code(slow.await.unwrap()), ERR_CALLBACK_LOST, "{t:?}");
            c.closed().await;
        }
    })
    .await;
}

#[tokio::test]
async fn large_messages_and_many_in_flight() {
    within(120, async {
        let f = Fixture::start().await;
        for t in ALL {
            let c = f
                .client_opts()
                .connect(&f.endpoint(t), "testApp")
                .await
                .unwrap();
            // 2 MiB each way (fragmented into 16 KiB frames on WebSocket).
            let big = "x".repeat(2 * 1024 * 1024);
            let r = c
                .call("calculator", "echo", [Value::from(big.as_str())])
                .await
                .unwrap();
            assert_eq!(r[0].as_str().map(str::len), Some(big.len()), "{t:?}");
            // Too big to send: refused locally.
            let huge = "y".repeat(9 * 1024 * 1024);
            assert!(matches!(
                c.call("calculator", "echo", [Value::from(huge)]).await,
                Err(Error::Transport(_))
            ));
            // Many calls in flight at once, answered in any order, each to its caller.
            let calls = (0..2000).map(|i| {
                let c = c.clone();
                async move {
                    let r: f64 = c.call_typed("calculator", "add", &(i, 1)).await.unwrap();
                    assert_eq!(r, f64::from(i + 1));
                }
            });
            futures_util::future::join_all(calls).await;
            c.close().await;
        }
        f.server.close().await;
    })
    .await;
}

#[tokio::test]
async fn dropping_the_last_handle_closes_the_connection() {
    within(30, async {
        let f = Fixture::start().await;
        let mut events = f.server.events();
        let c = ClientOptions::new()
            .connect(&f.endpoint(Transport::Tcp), "testApp")
            .await
            .unwrap();
        let state = c.state();
        drop(c);
        loop {
            if let Ok(ServerEvent::Disconnect { .. }) = events.next().await.unwrap() {
                break;
            }
        }
        let mut state = state;
        state
            .wait_for(|s| *s == ConnectionState::Closed)
            .await
            .unwrap();
        f.server.close().await;
    })
    .await;
}

/// A task issuing thousands of calls in one poll does not queue them all before any goes
/// out: every 512 queued and not yet taken, a sender yields once, and the connection task
/// sends what is queued. Seen from the server: a call made (by another future) while the
/// batch is paused after its first poll arrives right after the first 512, not after all
/// 2000. Needs the current-thread runtime of `#[tokio::test]`: on a multi-threaded one the
/// connection task may drain the queue concurrently and no sender ever finds 512 waiting.
#[tokio::test]
async fn a_large_batch_of_calls_goes_out_while_it_is_issued() {
    use connkit_jstp::{Application, Interface, ServerOptions};
    use futures_util::FutureExt;
    use futures_util::stream::FuturesUnordered;
    use std::sync::{Arc, Mutex};
    within(30, async {
        let log = Arc::new(Mutex::new(Vec::<i64>::new()));
        let seen = Arc::clone(&log);
        let app = Application::new("order", connkit_jstp::semver::Version::new(1, 0, 0)).interface(
            "log",
            Interface::new().method("record", move |_ctx, (i,): (i64,)| {
                seen.lock().unwrap().push(i);
                async { Ok(()) }
            }),
        );
        let server = ServerOptions::new()
            .application(app)
            .listen(["tcp://127.0.0.1:0"
                .parse::<connkit_core::Endpoint>()
                .unwrap()])
            .await
            .unwrap();
        let c = Client::connect(&server.endpoints()[0], "order")
            .await
            .unwrap();
        let mut batch: FuturesUnordered<_> = (0..2000i64)
            .map(|i| {
                let c = c.clone();
                async move { c.call_typed::<_, ()>("log", "record", &(i,)).await }
            })
            .collect();
        // One pass over the batch: it stops after queueing 512 calls.
        assert!(batch.next().now_or_never().is_none());
        c.call_typed::<_, ()>("log", "record", &(-1,))
            .await
            .unwrap();
        let mut done = 0;
        while let Some(r) = batch.next().await {
            r.unwrap();
            done += 1;
        }
        assert_eq!(done, 2000);
        let log = log.lock().unwrap().clone();
        assert_eq!(log.len(), 2001);
        assert_eq!(
            log.iter().position(|&i| i == -1),
            Some(512),
            "the marker's place"
        );
        let mut batch_order: Vec<i64> = log.into_iter().filter(|&i| i >= 0).collect();
        batch_order.sort_unstable();
        assert_eq!(batch_order, (0..2000).collect::<Vec<_>>());
        c.close().await;
        server.close().await;
    })
    .await;
}
