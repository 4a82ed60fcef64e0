//! Interop against the real `@metarhia/jstp` 2.3.0, both directions, on tcp, unix, ws, tls and
//! wss: Rust client → Node server (`tests/interop/node/jstp_server.js`) and Node client
//! (`jstp_client.js`) → Rust server. Skipped (with a note) when Node is not installed.

mod support;

use connkit_jstp::error::{
    ERR_APP_NOT_FOUND, ERR_AUTH_FAILED, ERR_INTERFACE_NOT_FOUND, ERR_INTERNAL_API_ERROR,
    ERR_INVALID_SIGNATURE, ERR_METHOD_NOT_FOUND,
};
use connkit_jstp::{ClientOptions, Error, RemoteError, ServerEvent, Value};
use connkit_testkit::{NodePeers, NodeProcess, within};
use futures_util::StreamExt;
use serde_json::json;
use std::collections::VecDeque;
use std::time::Duration;
use support::{Fixture, Transport};

const T: Duration = Duration::from_secs(20);

fn v(s: &str) -> Value {
    s.parse().unwrap()
}

fn code<X: std::fmt::Debug>(r: Result<X, Error>) -> i64 {
    match r {
        Err(Error::Remote(e)) => e.code(),
        other => panic!("expected a remote error, got {other:?}"),
    }
}

/// The Node server, with its endpoints.
struct NodeServer {
    proc: NodeProcess,
    ready: serde_json::Value,
    _dir: tempfile::TempDir,
    certs: support::Certs,
}

impl NodeServer {
    async fn start(node: &NodePeers) -> NodeServer {
        let dir = tempfile::Builder::new()
            .prefix("jstpn")
            .tempdir_in("/tmp")
            .unwrap();
        let certs = support::certs();
        let cert = dir.path().join("cert.pem");
        let key = dir.path().join("key.pem");
        std::fs::write(&cert, &certs.cert_pem).unwrap();
        std::fs::write(&key, &certs.key_pem).unwrap();
        let sock = dir.path().join("n.sock");
        let mut proc = node
            .spawn(
                "jstp_server.js",
                [
                    "--unix",
                    sock.to_str().unwrap(),
                    "--tls",
                    cert.to_str().unwrap(),
                    key.to_str().unwrap(),
                ],
            )
            .unwrap();
        let ready = proc.wait_ready(T).await.unwrap();
        NodeServer {
            proc,
            ready: serde_json::from_str(&ready).unwrap(),
            _dir: dir,
            certs,
        }
    }

    fn endpoint(&self, t: Transport) -> connkit_core::Endpoint {
        let port = |k: &str| self.ready[k].as_u64().unwrap();
        match t {
            Transport::Tcp => format!("tcp://127.0.0.1:{}", port("tcp")),
            Transport::Tls => format!("tls://127.0.0.1:{}", port("tls")),
            Transport::Unix => format!("unix://{}", self.ready["unix"].as_str().unwrap()),
            Transport::Ws => format!("ws://127.0.0.1:{}/", port("ws")),
            Transport::Wss => format!("wss://127.0.0.1:{}/", port("wss")),
        }
        .parse()
        .unwrap()
    }

    fn client_opts(&self) -> ClientOptions {
        ClientOptions::new()
            .tls(self.certs.client.clone())
            .application(support::client_app())
    }

    /// The next stdout line that answers `reply`.
    async fn command(&mut self, cmd: serde_json::Value) -> serde_json::Value {
        let want = cmd["cmd"].as_str().unwrap().to_owned();
        self.proc.write_line(&cmd.to_string()).await.unwrap();
        loop {
            let line = self
                .proc
                .next_line(T)
                .await
                .unwrap()
                .expect("node server exited");
            let v: serde_json::Value = serde_json::from_str(&line).unwrap();
            if v["reply"] == want.as_str() {
                return v;
            }
        }
    }
}

const TRANSPORTS: [Transport; 5] = support::ALL;

#[tokio::test]
async fn rust_client_to_node_server_calls_and_errors() {
    let node = connkit_testkit::require_node!();
    within(
        120,
        Box::pin(async {
            let s = NodeServer::start(&node).await;
            for t in TRANSPORTS {
                let c = s
                    .client_opts()
                    .connect(&s.endpoint(t), "calc@^1.0.0")
                    .await
                    .unwrap_or_else(|e| panic!("{t:?}: {e}"));
                assert_eq!(c.session_id().len(), 36);
                assert_eq!(
                    c.call("calculator", "answer", []).await.unwrap(),
                    vec![v("42")]
                );
                let sum: f64 = c.call_typed("calculator", "add", &(2, 3)).await.unwrap();
                assert_eq!(sum, 5.0);
                assert_eq!(
                    c.call("calculator", "add", [v("0.1"), v("0.2")])
                        .await
                        .unwrap(),
                    vec![v("0.30000000000000004")]
                );
                for x in [
                    r#"'it\'s "q" \\ \n\t\u0001 ü € 😀 \u2028'"#,
                    "{a:[1,null,true,false,'x'],'b-c':{d:[]}}",
                    "[1,,3]",
                    "1e+21",
                    "-0.5",
                    "null",
                    "{'1':'numeric key',x:{}}",
                ] {
                    assert_eq!(
                        c.call("calculator", "echo", [v(x)]).await.unwrap(),
                        vec![v(x)],
                        "{t:?} echo {x}"
                    );
                }
                // Node drops a trailing undefined: `[1,,]` comes back as `[1,]`.
                assert_eq!(
                    c.call("calculator", "echo", [v("[1,,]")]).await.unwrap(),
                    vec![v("[1]")]
                );
                assert_eq!(
                    c.call("calculator", "pair", [v("1"), v("'two'")])
                        .await
                        .unwrap(),
                    vec![v("1"), v("'two'")]
                );
                let r: f64 = c
                    .call_typed("calculator", "asyncAdd", &(20, 22))
                    .await
                    .unwrap();
                assert_eq!(r, 42.0);
                let e = c
                    .call("calculator", "divide", [v("1"), v("0")])
                    .await
                    .unwrap_err();
                assert_eq!(
                    e.remote(),
                    Some(
                        &RemoteError::new(100)
                            .message("Division by zero")
                            .info(vec![v("'a'"), v("1")])
                    )
                );
                assert_eq!(code(c.call("calculator", "fail", [v("14")]).await), 14);
                assert_eq!(
                    c.call("calculator", "failText", [v("'nope'")])
                        .await
                        .unwrap_err()
                        .remote(),
                    Some(&RemoteError::text("nope"))
                );
                assert_eq!(
                    code(c.call("calculator", "add", [v("1")]).await),
                    ERR_INVALID_SIGNATURE
                );
                assert_eq!(
                    code(c.call("calculator", "throws", []).await),
                    ERR_INTERNAL_API_ERROR
                );
                assert_eq!(
                    code(c.call("calculator", "asyncFail", []).await),
                    ERR_INTERNAL_API_ERROR
                );
                assert_eq!(
                    code(c.call("calculator", "nope", []).await),
                    ERR_METHOD_NOT_FOUND
                );
                assert_eq!(code(c.call("nope", "x", []).await), ERR_INTERFACE_NOT_FOUND);
                // Still up after all of that.
                c.ping().await.unwrap();
                assert_eq!(
                    c.call("calculator", "version", []).await.unwrap(),
                    vec![v("'1.0.0'")]
                );
                c.close().await;
            }
        }),
    )
    .await;
}

#[tokio::test]
async fn rust_client_to_node_server_handshakes_events_and_more() {
    let node = connkit_testkit::require_node!();
    within(120, Box::pin(async {
        let mut s = NodeServer::start(&node).await;
        for t in TRANSPORTS {
            let ep = s.endpoint(t);
            // Version ranges, chosen by Node's semver.
            for (app, want) in [
                ("calc", Ok("2.0.0")),
                ("calc@1", Ok("1.0.0")),
                ("calc@^2.0.0", Ok("2.0.0")),
                ("calc@1.0.0", Ok("1.0.0")),
                ("calc@>=1.0.0 <2.0.0 || 9", Ok("1.0.0")),
                ("calc@~1.0", Ok("1.0.0")),
                ("calc@^3.0.0", Err(ERR_APP_NOT_FOUND)),
                ("calc@v1.0.0", Err(ERR_APP_NOT_FOUND)),
                ("other", Err(ERR_APP_NOT_FOUND)),
            ] {
                let got = async {
                    let c = s.client_opts().connect(&ep, app).await?;
                    let r = c.call("calculator", "version", []).await?;
                    c.close().await;
                    Ok::<_, Error>(r[0].as_str().unwrap().to_owned())
                }
                .await;
                match want {
                    Ok(version) => assert_eq!(got.unwrap(), version, "{t:?} {app}"),
                    Err(c) => assert_eq!(code(got), c, "{t:?} {app}"),
                }
            }
            // Login and a custom strategy against Node's authPolicy.
            let c = s
                .client_opts()
                .login("user", "secret")
                .connect(&ep, "calc")
                .await
                .unwrap();
            assert_eq!(c.call("calculator", "whoami", []).await.unwrap(), vec![v("'user'")]);
            c.close().await;
            let bad = s.client_opts().login("user", "wrong").connect(&ep, "calc").await;
            assert_eq!(code(bad), ERR_AUTH_FAILED);
            let c = s
                .client_opts()
                .strategy("token", v("['abc']"))
                .connect(&ep, "calc")
                .await
                .unwrap();
            assert_eq!(
                c.call("calculator", "whoami", []).await.unwrap(),
                vec![v("'token-user'")]
            );

            // Events emitted by a Node method arrive before its callback.
            let mut events = c.remote_events(Some("calculator"));
            assert_eq!(c.call("calculator", "ticks", [v("3")]).await.unwrap(), vec![v("3")]);
            for i in 1..=3 {
                let ev = events.next().await.unwrap().unwrap();
                assert_eq!((ev.event.as_str(), ev.args), ("tick", vec![Value::from(i)]));
            }
            c.emit("calculator", "hello", [v("'from rust'"), v("1")]).await.unwrap();
            let ev = events.next().await.unwrap().unwrap();
            assert_eq!(ev.event, "helloBack");
            assert_eq!(ev.args, vec![v("'from rust'"), v("1")]);
            // A broadcast from the Node server.
            s.command(json!({"cmd":"broadcast","interface":"calculator","event":"news","args":"['x',{y:1}]"}))
                .await;
            let ev = events.next().await.unwrap().unwrap();
            assert_eq!((ev.event.as_str(), ev.args), ("news", vec![v("'x'"), v("{y:1}")]));
            // Inspect.
            let p = c.inspect("calculator").await.unwrap();
            assert_eq!(
                p.methods(),
                [
                    "answer", "add", "echo", "divide", "ticks", "pair", "fail", "failText",
                    "throws", "asyncAdd", "asyncFail", "version", "callClient", "whoami"
                ]
            );
            assert_eq!(code(c.inspect("nope").await), ERR_INTERFACE_NOT_FOUND);
            // Server → client calls: from a Node method, and from the Node registry.
            assert_eq!(
                c.call("calculator", "callClient", [v("'srv'")]).await.unwrap(),
                vec![v("'hello srv from client'")]
            );
            let all = s
                .command(json!({"cmd":"callAll","interface":"clientSide","method":"greet","args":"['registry']"}))
                .await;
            assert_eq!(all["results"], json!([{"ok": "['hello registry from client']"}]));
            let all = s
                .command(json!({"cmd":"callAll","interface":"clientSide","method":"nope","args":"[]"}))
                .await;
            assert_eq!(all["results"][0]["error"]["code"], 14);
            // Ping, and a 2 MiB message each way (Node fragments WebSocket messages above 16 KiB).
            c.ping().await.unwrap();
            let big = "z".repeat(2 * 1024 * 1024);
            let r = c.call("calculator", "echo", [Value::from(big.as_str())]).await.unwrap();
            assert_eq!(r[0].as_str().map(str::len), Some(big.len()), "{t:?}");
            c.close().await;
        }
        // A raw peer sending garbage is dropped by Node; our client is unaffected.
        let c = s
            .client_opts()
            .connect(&s.endpoint(Transport::Tcp), "calc")
            .await
            .unwrap();
        let mut raw = tokio::net::TcpStream::connect(s.endpoint(Transport::Tcp).authority().unwrap())
            .await
            .unwrap();
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        raw.write_all(b"{handshake:[0,'calc']}\0").await.unwrap();
        let mut buf = [0u8; 256];
        let n = raw.read(&mut buf).await.unwrap();
        assert!(String::from_utf8_lossy(&buf[..n]).starts_with("{handshake:[0],ok:'"));
        raw.write_all(b"{call:[1,'calculator'],echo:[}}\0").await.unwrap();
        let mut sink = Vec::new();
        let _ = raw.read_to_end(&mut sink).await; // closed by Node, without a reply
        assert!(sink.is_empty(), "{}", String::from_utf8_lossy(&sink));
        assert_eq!(c.call("calculator", "answer", []).await.unwrap(), vec![v("42")]);
        c.close().await;
    }))
    .await;
}

/// The Node client, driven over stdin.
struct NodeClient {
    proc: NodeProcess,
    next: u64,
    events: VecDeque<serde_json::Value>,
}

impl NodeClient {
    /// A fault proxy in front of the fixture's TCP endpoint, and a Node client connected
    /// through it to `testApp@^1.0.0` with Node's reconnector on.
    async fn start_through_proxy(
        node: &NodePeers,
        f: &Fixture,
    ) -> (connkit_testkit::FaultProxy, NodeClient) {
        let proxy = connkit_testkit::FaultProxy::start(support::tcp_addr(f))
            .await
            .unwrap();
        let mut n = NodeClient::start(node).await;
        n.cmd(
            json!({"cmd":"connect","transport":"net","app":"testApp@^1.0.0",
            "port":proxy.addr().port(),"reconnect":true}),
        )
        .await
        .unwrap();
        (proxy, n)
    }

    async fn start(node: &NodePeers) -> NodeClient {
        let mut proc = node.spawn("jstp_client.js", Vec::<String>::new()).unwrap();
        proc.wait_ready(T).await.unwrap();
        NodeClient {
            proc,
            next: 0,
            events: VecDeque::new(),
        }
    }

    async fn line(&mut self) -> serde_json::Value {
        let line = self
            .proc
            .next_line(T)
            .await
            .unwrap()
            .unwrap_or_else(|| panic!("node client exited: {}", self.proc.stderr()));
        serde_json::from_str(&line).unwrap()
    }

    async fn cmd(
        &mut self,
        mut cmd: serde_json::Value,
    ) -> Result<serde_json::Value, serde_json::Value> {
        self.next += 1;
        cmd["id"] = json!(self.next);
        self.proc.write_line(&cmd.to_string()).await.unwrap();
        loop {
            let v = self.line().await;
            if v["id"] == json!(self.next) {
                return match v.get("error") {
                    Some(e) => Err(e.clone()),
                    None => Ok(v["ok"].clone()),
                };
            }
            self.events.push_back(v);
        }
    }

    async fn call(&mut self, method: &str, args: &str) -> Result<Value, serde_json::Value> {
        self.cmd(json!({"cmd":"call","interface":"calculator","method":method,"args":args}))
            .await
            .map(|ok| v(ok.as_str().unwrap()))
    }

    /// The next event line (`{"event":{…}}`).
    async fn event(&mut self) -> serde_json::Value {
        loop {
            let v = match self.events.pop_front() {
                Some(v) => v,
                None => self.line().await,
            };
            if v.get("event").is_some() {
                return v["event"].clone();
            }
        }
    }

    fn connect_cmd(f: &Fixture, t: Transport, app: &str) -> serde_json::Value {
        let ep = f.endpoint(t);
        let transport = match t {
            Transport::Tcp | Transport::Unix => "net",
            Transport::Tls => "tls",
            Transport::Ws => "ws",
            Transport::Wss => "wss",
        };
        let mut c = json!({"cmd":"connect","transport":transport,"app":app,"ca":f.certs.cert_pem});
        match t {
            Transport::Unix => c["path"] = json!(ep.path().unwrap().to_str().unwrap()),
            _ => c["port"] = json!(ep.port().unwrap()),
        }
        c
    }
}

#[tokio::test]
async fn node_client_to_rust_server() {
    let node = connkit_testkit::require_node!();
    within(120, Box::pin(async {
        let f = Fixture::start().await;
        let mut server_events = f.server.events();
        for t in TRANSPORTS {
            let mut n = NodeClient::start(&node).await;
            // Version ranges in the handshake, validated by Node and chosen by us.
            for (app, want) in [
                ("testApp@^3.0.0", Some(ERR_APP_NOT_FOUND)),
                ("testApp@v1.0.0", Some(ERR_APP_NOT_FOUND)),
                ("nope", Some(ERR_APP_NOT_FOUND)),
            ] {
                let mut m = NodeClient::start(&node).await;
                let e = m.cmd(NodeClient::connect_cmd(&f, t, app)).await.unwrap_err();
                assert_eq!(e["code"].as_i64(), want, "{t:?} {app}: {e}");
            }
            let session = n
                .cmd(NodeClient::connect_cmd(&f, t, "testApp@^1.0.0"))
                .await
                .unwrap_or_else(|e| panic!("{t:?}: {e} {}", n.proc.stderr()));
            assert_eq!(session.as_str().unwrap().len(), 36);
            let sc = loop {
                if let Some(Ok(ServerEvent::Connect { client })) = server_events.next().await
                    && client.session_id() == session.as_str().unwrap()
                {
                    break client;
                }
            };
            assert_eq!(n.call("version", "[]").await.unwrap(), v("['1.0.0']"));
            assert_eq!(n.call("add", "[2,3]").await.unwrap(), v("[5]"));
            assert_eq!(n.call("answer", "[]").await.unwrap(), v("[42]"));
            for x in [
                r#"'it\'s "q" \\ \n\t\u0001 ü € 😀'"#,
                "{a:[1,null,true,false,'x'],'b-c':{d:[]}}",
                "[1,,3]",
            ] {
                assert_eq!(
                    n.call("echo", &format!("[{x}]")).await.unwrap(),
                    v(&format!("[{x}]")),
                    "{t:?} {x}"
                );
            }
            assert_eq!(n.call("pair", "[1,'two']").await.unwrap(), v("[1,'two']"));
            let e = n.call("divide", "[1,0]").await.unwrap_err();
            assert_eq!(e, json!({"code":100,"message":"Division by zero","info":"['a',1]"}));
            let e = n.call("add", "[1]").await.unwrap_err();
            assert_eq!((e["code"].as_i64(), e["message"].as_str()), (Some(17), Some("Invalid signature")));
            let e = n.call("panic", "[]").await.unwrap_err();
            assert_eq!(e["code"], 16);
            let e = n.call("failText", "['nope']").await.unwrap_err();
            assert_eq!((e["code"].as_i64(), e["message"].as_str()), (Some(1), Some("nope")));
            let e = n.call("nope", "[]").await.unwrap_err();
            assert_eq!(e["code"], 14);
            let e = n
                .cmd(json!({"cmd":"call","interface":"nope","method":"x","args":"[]"}))
                .await
                .unwrap_err();
            assert_eq!(e["code"], 12);
            // Events: a Rust method's events reach Node before its callback.
            assert_eq!(n.call("ticker", "[2]").await.unwrap(), v("[2]"));
            for i in 1..=2 {
                let ev = n.event().await;
                assert_eq!(ev["name"], "tick");
                assert_eq!(v(ev["args"].as_str().unwrap()), v(&format!("[{i},'1.0.0']")));
            }
            n.cmd(json!({"cmd":"emit","interface":"calculator","event":"hello","args":"['from node',1]"}))
                .await
                .unwrap();
            let ev = n.event().await;
            assert_eq!((ev["name"].as_str(), ev["args"].as_str()), (Some("helloBack"), Some("['from node',1]")));
            // Broadcast from the Rust server.
            f.server.broadcast("news", "flash", [v("'hi'")]).await.unwrap();
            let ev = n.event().await;
            assert_eq!((ev["interface"].as_str(), ev["name"].as_str()), (Some("news"), Some("flash")));
            // Inspect.
            let names = n
                .cmd(json!({"cmd":"inspect","interface":"calculator"}))
                .await
                .unwrap();
            assert_eq!(names[0], "answer");
            assert_eq!(names[3], "divide");
            let e = n.cmd(json!({"cmd":"inspect","interface":"nope"})).await.unwrap_err();
            assert_eq!(e["code"], 12);
            // Server → client: from a Rust method and from the registry.
            assert_eq!(
                n.call("callClient", "['srv']").await.unwrap(),
                v("['hello srv from node']")
            );
            let r: String = sc.call_typed("clientSide", "greet", &("registry",)).await.unwrap();
            assert_eq!(r, "hello registry from node");
            assert_eq!(code(sc.call("clientSide", "nope", []).await), ERR_METHOD_NOT_FOUND);
            let p = sc.inspect("clientSide").await.unwrap();
            assert_eq!(p.methods(), ["greet"]);
            sc.ping().await.unwrap();
            n.cmd(json!({"cmd":"ping"})).await.unwrap();
            // 2 MiB from Node (fragmented above 16 KiB on WebSocket) and back.
            let big = "q".repeat(2 * 1024 * 1024);
            let r = n.call("echo", &format!("['{big}']")).await.unwrap();
            assert_eq!(r.at(0).and_then(Value::as_str).map(str::len), Some(big.len()), "{t:?}");
            // A raw peer's garbage closes only its own connection.
            if t == Transport::Tcp {
                use tokio::io::{AsyncReadExt, AsyncWriteExt};
                let mut raw = tokio::net::TcpStream::connect(f.endpoint(t).authority().unwrap())
                    .await
                    .unwrap();
                raw.write_all(b"{handshake:[0,'testApp']}\0}}}\0").await.unwrap();
                let mut sink = Vec::new();
                let _ = raw.read_to_end(&mut sink).await;
                assert_eq!(n.call("answer", "[]").await.unwrap(), v("[42]"));
            }
            n.cmd(json!({"cmd":"close"})).await.unwrap();
            sc.closed().await;
        }
        // Login from Node.
        let mut n = NodeClient::start(&node).await;
        let mut c = NodeClient::connect_cmd(&f, Transport::Tcp, "testApp");
        c["login"] = json!(["user", "secret"]);
        n.cmd(c).await.unwrap();
        assert_eq!(n.call("whoami", "[]").await.unwrap(), v("['user']"));
        let mut m = NodeClient::start(&node).await;
        let mut c = NodeClient::connect_cmd(&f, Transport::Tcp, "testApp");
        c["login"] = json!(["user", "bad"]);
        assert_eq!(m.cmd(c).await.unwrap_err()["code"], 11);
        f.server.close().await;
    }))
    .await;
}

/// A Node client resumes its session on the Rust server (restore path A) after a fault
/// proxy cut the link: a call and an event made while offline are delivered after the
/// resume, on the same server-side connection.
#[tokio::test]
async fn node_client_resumes_on_the_rust_server_after_a_cut() {
    let node = connkit_testkit::require_node!();
    within(
        60,
        Box::pin(async {
            let f = Fixture::start().await;
            let mut server_events = f.server.events();
            let (proxy, mut n) = NodeClient::start_through_proxy(&node, &f).await;
            assert_eq!(n.call("add", "[1,2]").await.unwrap(), v("[3]"));
            proxy.cut_all();
            // Buffered by the Node client while offline, replayed after its resume.
            n.cmd(
                json!({"cmd":"emit","interface":"calculator","event":"hello","args":"['offline']"}),
            )
            .await
            .unwrap();
            assert_eq!(n.call("add", "[10,20]").await.unwrap(), v("[30]"));
            let mut saw_reconnect = false;
            let mut saw_event = false;
            while !(saw_reconnect && saw_event) {
                match server_events.next().await.unwrap().unwrap() {
                    ServerEvent::Reconnect { .. } => saw_reconnect = true,
                    ServerEvent::Event { event, .. } if event.event == "hello" => {
                        assert_eq!(event.args, vec![v("'offline'")]);
                        saw_event = true;
                    }
                    _ => {}
                }
            }
            assert!(proxy.accepted() >= 2);
            assert_eq!(n.call("add", "[3,4]").await.unwrap(), v("[7]"));
        }),
    )
    .await;
}

/// The Rust client resumes its session on the Node server (whose ids are reused after a
/// restore, spec §6.4: tolerated) after a fault proxy cut the link.
#[tokio::test]
async fn rust_client_resumes_on_the_node_server_after_a_cut() {
    let node = connkit_testkit::require_node!();
    within(
        60,
        Box::pin(async {
            let s = NodeServer::start(&node).await;
            let (proxy, ep) = s.proxied().await;
            let c = ClientOptions::new()
                .reconnect(support::fast_reconnect())
                .connect(&ep, "calc@^1.0.0")
                .await
                .unwrap();
            assert_eq!(
                c.call("calculator", "add", [v("1"), v("2")]).await.unwrap(),
                vec![v("3")]
            );
            proxy.set_refuse(true);
            proxy.cut_all();
            c.state()
                .wait_for(|s| *s == connkit_jstp::ConnectionState::Disconnected)
                .await
                .unwrap();
            let offline = {
                let c = c.clone();
                tokio::spawn(async move { c.call("calculator", "add", [v("10"), v("20")]).await })
            };
            tokio::task::yield_now().await;
            proxy.set_refuse(false);
            assert_eq!(offline.await.unwrap().unwrap(), vec![v("30")]);
            // Events after the resume carry reused ids; they are still delivered.
            let mut events = c.remote_events(Some("calculator"));
            c.emit("calculator", "hello", [v("'back'")]).await.unwrap();
            let ev = events.next().await.unwrap().unwrap();
            assert_eq!(
                (ev.event.as_str(), ev.args),
                ("helloBack", vec![v("'back'")])
            );
            assert_eq!(
                c.call("calculator", "add", [v("3"), v("4")]).await.unwrap(),
                vec![v("7")]
            );
        }),
    )
    .await;
}

impl NodeServer {
    /// A fault proxy in front of the Node server's TCP endpoint, and the endpoint to dial.
    async fn proxied(&self) -> (connkit_testkit::FaultProxy, connkit_core::Endpoint) {
        let port = self.endpoint(Transport::Tcp).port().unwrap();
        let proxy = connkit_testkit::FaultProxy::start(([127, 0, 0, 1], port).into())
            .await
            .unwrap();
        let ep = format!("tcp://{}", proxy.addr()).parse().unwrap();
        (proxy, ep)
    }

    /// Pings and pongs the Node server received from clients so far.
    async fn heartbeats(&mut self) -> (u64, u64) {
        let r = self.command(json!({"cmd":"heartbeats"})).await;
        (r["pings"].as_u64().unwrap(), r["pongs"].as_u64().unwrap())
    }
}

/// Every connection event already emitted, without waiting.
fn drain_events(
    events: &mut connkit_core::events::EventStream<connkit_jstp::ConnectionEvent>,
) -> Vec<connkit_jstp::ConnectionEvent> {
    let mut out = Vec::new();
    while let Some(Some(Ok(e))) = futures_util::FutureExt::now_or_never(events.next()) {
        out.push(e);
    }
    out
}

/// Heartbeat (spec §7) between a Node server pinging every 30 ms (`heartbeatInterval`) and a
/// Rust client pinging every 30 ms with a pong timeout: each side answers the other's pings,
/// and the Rust client's timeout never declares the Node server dead.
#[tokio::test]
async fn heartbeat_pings_both_ways_between_a_node_server_and_the_rust_client() {
    let node = connkit_testkit::require_node!();
    within(
        60,
        Box::pin(async {
            let dir = tempfile::Builder::new()
                .prefix("jstpn")
                .tempdir_in("/tmp")
                .unwrap();
            let sock = dir.path().join("n.sock");
            let mut proc = node
                .spawn(
                    "jstp_server.js",
                    ["--unix", sock.to_str().unwrap(), "--heartbeat", "30"],
                )
                .unwrap();
            let ready = proc.wait_ready(T).await.unwrap();
            let mut s = NodeServer {
                proc,
                ready: serde_json::from_str(&ready).unwrap(),
                _dir: dir,
                certs: support::certs(),
            };
            for t in [Transport::Tcp, Transport::Ws] {
                let c = ClientOptions::new()
                    .heartbeat_interval(Duration::from_millis(30))
                    .heartbeat_timeout(Duration::from_millis(600))
                    .connect(&s.endpoint(t), "calc")
                    .await
                    .unwrap();
                let mut events = c.events();
                let (pings0, pongs0) = s.heartbeats().await;
                // The Node server counts the Rust client's pings and its pongs.
                loop {
                    let (pings, pongs) = s.heartbeats().await;
                    if pings >= pings0 + 3 && pongs >= pongs0 + 3 {
                        break;
                    }
                    tokio::time::sleep(Duration::from_millis(30)).await;
                }
                assert_eq!(
                    c.call("calculator", "answer", []).await.unwrap(),
                    vec![v("42")],
                    "{t:?}"
                );
                let seen = drain_events(&mut events);
                assert!(
                    !seen.iter().any(|e| matches!(
                        e,
                        connkit_jstp::ConnectionEvent::Disconnected
                            | connkit_jstp::ConnectionEvent::Closed { .. }
                    )),
                    "{t:?}: {seen:?}"
                );
                c.close().await;
            }
        }),
    )
    .await;
}

/// Heartbeat (spec §7) between the Rust server pinging every 30 ms with a pong timeout and a
/// Node client pinging every 30 ms (`client.heartbeatInterval`): each side answers, and the
/// Rust server never declares the Node client dead.
#[tokio::test]
async fn heartbeat_pings_both_ways_between_the_rust_server_and_a_node_client() {
    let node = connkit_testkit::require_node!();
    within(
        60,
        Box::pin(async {
            let f = Fixture::start_with(|o| {
                o.heartbeat_interval(Duration::from_millis(30))
                    .heartbeat_timeout(Duration::from_millis(600))
            })
            .await;
            let mut server_events = f.server.events();
            for t in [Transport::Tcp, Transport::Ws] {
                let mut n = NodeClient::start(&node).await;
                let mut connect = NodeClient::connect_cmd(&f, t, "testApp");
                connect["heartbeat"] = json!(30);
                n.cmd(connect).await.unwrap();
                loop {
                    let hb = n.cmd(json!({"cmd":"heartbeats"})).await.unwrap();
                    // Pings from the Rust server, pongs to the Node client's pings.
                    if hb["pings"].as_u64().unwrap() >= 3 && hb["pongs"].as_u64().unwrap() >= 3 {
                        break;
                    }
                    tokio::time::sleep(Duration::from_millis(30)).await;
                }
                assert_eq!(n.call("answer", "[]").await.unwrap(), v("[42]"), "{t:?}");
                while let Some(Some(Ok(e))) =
                    futures_util::FutureExt::now_or_never(server_events.next())
                {
                    assert!(!matches!(e, ServerEvent::Disconnect { .. }), "{t:?}: {e:?}");
                }
                n.cmd(json!({"cmd":"close"})).await.unwrap();
                loop {
                    if let ServerEvent::Disconnect { .. } =
                        server_events.next().await.unwrap().unwrap()
                    {
                        break;
                    }
                }
            }
        }),
    )
    .await;
}

/// The Rust client on the Node server through a fault proxy: a call whose reply is lost in
/// the cut fails with −1 after the resume, `call_with_resend` calls again and succeeds, an
/// event emitted offline is delivered after the resume (Node answers it), and the client's
/// events come in order.
#[tokio::test]
async fn rust_client_on_the_node_server_lost_replies_resend_and_offline_events() {
    let node = connkit_testkit::require_node!();
    within(
        60,
        Box::pin(async {
            let s = NodeServer::start(&node).await;
            let (proxy, ep) = s.proxied().await;
            let c = ClientOptions::new()
                .reconnect(support::fast_reconnect())
                .connect(&ep, "calc@^1.0.0")
                .await
                .unwrap();
            let mut events = c.events();
            let mut remote = c.remote_events(Some("calculator"));
            for resend in [false, true] {
                let call = {
                    let c = c.clone();
                    tokio::spawn(async move {
                        if resend {
                            c.call_with_resend("slow", "sleep", [v("300")]).await
                        } else {
                            c.call("slow", "sleep", [v("300")]).await
                        }
                    })
                };
                // The pong proves the Node server has the call (the stream is ordered).
                c.ping().await.unwrap();
                proxy.set_refuse(true);
                proxy.cut_all();
                c.state()
                    .wait_for(|s| *s == connkit_jstp::ConnectionState::Disconnected)
                    .await
                    .unwrap();
                if !resend {
                    c.emit("calculator", "hello", [v("'offline'")])
                        .await
                        .unwrap();
                }
                // The method finishes while the client is away: its reply is lost.
                tokio::time::sleep(Duration::from_millis(400)).await;
                proxy.set_refuse(false);
                let r = call.await.unwrap();
                if resend {
                    assert_eq!(r.unwrap(), vec![v("300")]);
                } else {
                    assert_eq!(code(r), connkit_jstp::error::ERR_CALLBACK_LOST);
                    // The offline event reached Node, which answered it.
                    let ev = remote.next().await.unwrap().unwrap();
                    assert_eq!(
                        (ev.event.as_str(), ev.args),
                        ("helloBack", vec![v("'offline'")])
                    );
                }
                c.state()
                    .wait_for(|s| *s == connkit_jstp::ConnectionState::Connected)
                    .await
                    .unwrap();
            }
            // Each outage: Disconnected, then attempts (failures while refused), then one
            // Restored; the first lost one call.
            let mut restored = Vec::new();
            let mut last_attempt = 0;
            let mut disconnected = 0;
            for e in drain_events(&mut events) {
                match e {
                    connkit_jstp::ConnectionEvent::Disconnected => {
                        assert_eq!(disconnected, restored.len());
                        disconnected += 1;
                        last_attempt = 0;
                    }
                    connkit_jstp::ConnectionEvent::ReconnectAttempt { attempt } => {
                        assert_eq!(attempt, last_attempt + 1);
                        last_attempt = attempt;
                    }
                    connkit_jstp::ConnectionEvent::ReconnectFailed { attempt, .. } => {
                        assert_eq!(attempt, last_attempt);
                    }
                    connkit_jstp::ConnectionEvent::Restored { lost, .. } => {
                        assert!(last_attempt >= 1);
                        restored.push(lost);
                    }
                    other => panic!("unexpected {other:?}"),
                }
            }
            assert_eq!(disconnected, 2);
            assert_eq!(restored, [1, 1]);
            assert_eq!(
                c.call("calculator", "add", [v("3"), v("4")]).await.unwrap(),
                vec![v("7")]
            );
        }),
    )
    .await;
}

/// A Node client on the Rust server through a fault proxy: a call the server executed while
/// its reply was lost in the cut fails with −1 on the Node side after Node's reconnector
/// resumed the session (restore path A).
#[tokio::test]
async fn node_client_on_the_rust_server_gets_minus_one_for_a_lost_reply() {
    let node = connkit_testkit::require_node!();
    within(
        60,
        Box::pin(async {
            let f = Fixture::start().await;
            let mut server_events = f.server.events();
            let (proxy, mut n) = NodeClient::start_through_proxy(&node, &f).await;
            // Not awaited: its reply will be lost.
            n.proc
                .write_line(
                    &json!({"id":1000,"cmd":"call","interface":"calculator","method":"sleep",
                        "args":"[300]"})
                    .to_string(),
                )
                .await
                .unwrap();
            // The event that follows it proves the Rust server has the call (the stream is
            // ordered). Not a ping: Node prunes its buffer on the pong, and then never fires
            // −1 for the call (its resume only looks above the last confirmed id).
            n.cmd(json!({"cmd":"emit","interface":"calculator","event":"hello","args":"['x']"}))
                .await
                .unwrap();
            loop {
                if let ServerEvent::Event { event, .. } =
                    server_events.next().await.unwrap().unwrap()
                    && event.event == "hello"
                {
                    break;
                }
            }
            proxy.set_refuse(true);
            proxy.cut_all();
            tokio::time::sleep(Duration::from_millis(400)).await;
            proxy.set_refuse(false);
            let reply = loop {
                let line = n.line().await;
                if line["id"] == json!(1000) {
                    break line;
                }
            };
            // Node calls back with the bare number −1 (ERR_CALLBACK_LOST).
            assert_eq!(reply["error"]["message"], json!("-1"), "{reply}");
            let mut saw_reconnect = false;
            while let Some(Some(Ok(e))) =
                futures_util::FutureExt::now_or_never(server_events.next())
            {
                saw_reconnect |= matches!(e, ServerEvent::Reconnect { .. });
            }
            assert!(saw_reconnect);
            assert_eq!(n.call("add", "[3,4]").await.unwrap(), v("[7]"));
        }),
    )
    .await;
}

/// A Node server that does not know the session answers the resume with 11; the Rust client
/// then starts a new session there (the default `UnknownSession::NewSession`): the old
/// session's pending call fails with −1, and the new session works.
#[tokio::test]
async fn rust_client_starts_a_new_session_when_a_node_server_answers_11() {
    let node = connkit_testkit::require_node!();
    within(
        60,
        Box::pin(async {
            let a = NodeServer::start(&node).await;
            let b = NodeServer::start(&node).await;
            let (proxy, ep) = a.proxied().await;
            let c = ClientOptions::new()
                .login("user", "secret")
                .reconnect(support::fast_reconnect())
                // Server b shares nothing with a: it answers the resume with 11.
                .fallback_endpoints([b.endpoint(Transport::Tcp)])
                .connect(&ep, "calc@^1.0.0")
                .await
                .unwrap();
            let old = c.session_id().to_owned();
            let mut events = c.events();
            proxy.set_refuse(true);
            proxy.cut_all();
            c.state()
                .wait_for(|s| *s == connkit_jstp::ConnectionState::Disconnected)
                .await
                .unwrap();
            let offline = {
                let c = c.clone();
                tokio::spawn(async move { c.call("calculator", "answer", []).await })
            };
            let (new, saw_11) = {
                let mut saw_11 = false;
                loop {
                    match events.next().await.unwrap().unwrap() {
                        connkit_jstp::ConnectionEvent::ReconnectFailed { error, .. } => {
                            saw_11 |=
                                matches!(&*error, Error::Remote(e) if e.code() == ERR_AUTH_FAILED);
                        }
                        connkit_jstp::ConnectionEvent::SessionReplaced { old: o, new, .. } => {
                            assert_eq!(o, old);
                            break (new, saw_11);
                        }
                        connkit_jstp::ConnectionEvent::Restored { .. }
                        | connkit_jstp::ConnectionEvent::Closed { .. } => {
                            panic!("expected a new session")
                        }
                        _ => {}
                    }
                }
            };
            assert!(saw_11);
            assert_ne!(new, old);
            assert_eq!(c.session_id(), new);
            assert_eq!(
                code(offline.await.unwrap()),
                connkit_jstp::error::ERR_CALLBACK_LOST
            );
            // Logged in again on b.
            assert_eq!(
                c.call("calculator", "whoami", []).await.unwrap(),
                vec![v("'user'")]
            );
        }),
    )
    .await;
}
