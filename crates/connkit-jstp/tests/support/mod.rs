//! Shared by the JSTP connection tests: the test applications, TLS certificates made at test
//! time, and one endpoint per transport.
#![allow(dead_code, unreachable_pub)]

use connkit_core::tls::{TlsClientConfig, TlsServerConfig};
use connkit_jstp::{
    Application, ClientOptions, Context, Interface, Logins, RemoteError, Server, ServerOptions,
    Value,
};
use semver::Version;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// The transports a test runs over.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transport {
    Tcp,
    Tls,
    Unix,
    Ws,
    Wss,
}

pub const ALL: [Transport; 5] = [
    Transport::Tcp,
    Transport::Tls,
    Transport::Unix,
    Transport::Ws,
    Transport::Wss,
];

pub struct Certs {
    pub server: TlsServerConfig,
    pub client: TlsClientConfig,
    pub cert_pem: String,
    pub key_pem: String,
}

pub fn certs() -> Certs {
    let ck = rcgen::generate_simple_self_signed(vec!["localhost".to_owned()]).unwrap();
    let cert_pem = ck.cert.pem();
    let key_pem = ck.signing_key.serialize_pem();
    Certs {
        server: TlsServerConfig::from_pem(cert_pem.as_bytes(), key_pem.as_bytes()).unwrap(),
        client: TlsClientConfig::from_root_pem(cert_pem.as_bytes())
            .unwrap()
            .server_name("localhost"),
        cert_pem,
        key_pem,
    }
}

/// The calculator of the spec's `testApp` (§11), at `version`.
pub fn test_app(version: &str) -> Application {
    let v = version.to_owned();
    let v2 = version.to_owned();
    Application::new("testApp", Version::parse(version).unwrap())
        .interface(
            "calculator",
            Interface::new()
                .method("answer", |_ctx, (): ()| async { Ok(42) })
                .method("add", |_ctx, (a, b): (f64, f64)| async move { Ok(a + b) })
                .method("echo", |_ctx, (x,): (Value,)| async move { Ok(x) })
                .method("divide", |_ctx, (a, b): (f64, f64)| async move {
                    if b == 0.0 {
                        return Err(RemoteError::new(100)
                            .message("Division by zero")
                            .info(vec!["a".into(), 1.into()]));
                    }
                    Ok(a / b)
                })
                .method("ticker", move |ctx: Context, (n,): (u32,)| {
                    let v = v.clone();
                    async move {
                        for i in 1..=n {
                            ctx.emit(
                                "calculator",
                                "tick",
                                [Value::from(i), Value::from(v.as_str())],
                            )
                            .await
                            .map_err(|e| RemoteError::text(e.to_string()))?;
                        }
                        Ok(n)
                    }
                })
                .raw_method("pair", |_ctx, args: Vec<Value>| async move { Ok(args) })
                .method("fail", |_ctx, (code,): (i64,)| async move {
                    Err::<(), _>(RemoteError::new(code))
                })
                .method("failText", |_ctx, (text,): (String,)| async move {
                    Err::<(), _>(RemoteError::text(text))
                })
                .method("version", move |_ctx, (): ()| {
                    let v = v2.clone();
                    async move { Ok(v) }
                })
                .method("callClient", |ctx: Context, (who,): (String,)| async move {
                    let r: String = ctx
                        .call_typed("clientSide", "greet", &(who,))
                        .await
                        .map_err(|e| match e {
                            connkit_jstp::Error::Remote(r) => r,
                            other => RemoteError::text(other.to_string()),
                        })?;
                    Ok(r)
                })
                .method("panic", |_ctx, (): ()| async move {
                    if true {
                        panic!("boom");
                    }
                    Ok(())
                })
                .method("nan", |_ctx, (): ()| async move { Ok(f64::NAN) })
                .method("sleep", |_ctx, (ms,): (u64,)| async move {
                    tokio::time::sleep(Duration::from_millis(ms)).await;
                    Ok(ms)
                })
                .method("whoami", |ctx: Context, (): ()| async move {
                    Ok(ctx.username().map(str::to_owned))
                }),
        )
        .on_event(
            "calculator",
            "hello",
            |ctx: Context, args: Vec<Value>| async move {
                let _ = ctx.emit("calculator", "helloBack", args).await;
            },
        )
}

/// The client-side application: `clientSide.greet(who)`.
pub fn client_app() -> Application {
    Application::new("client", Version::new(1, 0, 0)).interface(
        "clientSide",
        Interface::new().method("greet", |_ctx, (who,): (String,)| async move {
            Ok(format!("hello {who} from client"))
        }),
    )
}

/// Where to listen for `t` (port 0 / a unique socket path).
pub fn listen_endpoint(t: Transport, dir: &std::path::Path) -> connkit_core::Endpoint {
    match t {
        Transport::Tcp => "tcp://127.0.0.1:0".parse().unwrap(),
        Transport::Tls => "tls://127.0.0.1:0".parse().unwrap(),
        Transport::Unix => connkit_core::Endpoint::unix(dir.join("jstp.sock")),
        Transport::Ws => "ws://127.0.0.1:0/".parse().unwrap(),
        Transport::Wss => "wss://127.0.0.1:0/".parse().unwrap(),
    }
}

pub struct Fixture {
    pub server: Server,
    pub certs: Certs,
    pub dir: tempfile::TempDir,
}

impl Fixture {
    /// A server with testApp 1.0.0 and 2.0.0, the login user/secret, on every transport.
    pub async fn start() -> Fixture {
        Self::start_with(|o| o).await
    }

    pub async fn start_with(f: impl FnOnce(ServerOptions) -> ServerOptions) -> Fixture {
        let certs = certs();
        let dir = tempfile::Builder::new()
            .prefix("jstp")
            .tempdir_in("/tmp")
            .unwrap();
        let opts = ServerOptions::new()
            .application(test_app("1.0.0"))
            .application(test_app("2.0.0"))
            .auth(Logins::new().user("user", "secret"))
            .tls(certs.server.clone())
            .close_grace(Duration::from_secs(2));
        let server = f(opts)
            .listen(ALL.iter().map(|t| listen_endpoint(*t, dir.path())))
            .await
            .unwrap();
        Fixture { server, certs, dir }
    }

    pub fn endpoint(&self, t: Transport) -> connkit_core::Endpoint {
        let i = ALL.iter().position(|x| *x == t).unwrap();
        self.server.endpoints()[i].clone()
    }

    pub fn client_opts(&self) -> ClientOptions {
        ClientOptions::new()
            .tls(self.certs.client.clone())
            .application(client_app())
    }
}

/// The fixture's TCP address (for raw sockets and fault proxies).
pub fn tcp_addr(f: &Fixture) -> std::net::SocketAddr {
    std::net::SocketAddr::from(([127, 0, 0, 1], f.endpoint(Transport::Tcp).port().unwrap()))
}

/// Reads NUL-terminated frames from a raw socket.
pub struct Raw {
    s: tokio::net::TcpStream,
    buf: Vec<u8>,
}

impl Raw {
    pub async fn connect(addr: std::net::SocketAddr) -> Raw {
        Raw {
            s: tokio::net::TcpStream::connect(addr).await.unwrap(),
            buf: Vec::new(),
        }
    }

    pub async fn send(&mut self, text: &str) {
        self.s.write_all(text.as_bytes()).await.unwrap();
        self.s.write_all(b"\0").await.unwrap();
    }

    /// The next frame, or `None` when the server closed the connection.
    pub async fn next(&mut self) -> Option<String> {
        loop {
            if let Some(i) = self.buf.iter().position(|b| *b == 0) {
                let f: Vec<u8> = self.buf.drain(..=i).collect();
                return Some(String::from_utf8_lossy(&f[..i]).into_owned());
            }
            let mut chunk = [0u8; 4096];
            let n = self.s.read(&mut chunk).await.unwrap_or(0);
            if n == 0 {
                return None;
            }
            self.buf.extend_from_slice(&chunk[..n]);
        }
    }

    /// A new session on `testApp@^1.0.0` in which the server sends two events (ids −1 and
    /// −2, from `ticker(2)`, client id 1) and its reply; the socket and the session id.
    pub async fn start_session_with_two_server_events(addr: std::net::SocketAddr) -> (Raw, String) {
        let mut a = Raw::connect(addr).await;
        a.send("{handshake:[0,'testApp','^1.0.0']}").await;
        let reply = a.frame().await;
        let sid = reply
            .split('\'')
            .nth(1)
            .unwrap_or_else(|| panic!("{reply}"))
            .to_owned();
        a.send("{call:[1,'calculator'],ticker:[2]}").await;
        assert_eq!(
            a.frame().await,
            "{event:[-1,'calculator'],tick:[1,'1.0.0']}"
        );
        assert_eq!(
            a.frame().await,
            "{event:[-2,'calculator'],tick:[2,'1.0.0']}"
        );
        assert_eq!(a.frame().await, "{callback:[1],ok:[2]}");
        (a, sid)
    }

    /// After a restore whose last server id was −2: the call `ticker(1)` (client id 2) gets
    /// its event with id −3 (never a reused id) and its reply, and a ping (3) is answered.
    pub async fn expect_ids_continue_at_minus_three(&mut self) {
        self.send("{call:[2,'calculator'],ticker:[1]}").await;
        assert_eq!(
            self.frame().await,
            "{event:[-3,'calculator'],tick:[1,'1.0.0']}"
        );
        assert_eq!(self.frame().await, "{callback:[2],ok:[1]}");
        self.send("{ping:[3]}").await;
        assert_eq!(self.frame().await, "{pong:[3]}");
    }

    /// A resume with a session id the server does not know: error 11, then the server closes.
    pub async fn expect_unknown_session_refused(addr: std::net::SocketAddr) {
        let mut c = Raw::connect(addr).await;
        c.send("{handshake:[0,'testApp'],session:['00000000-0000-4000-8000-000000000000',0]}")
            .await;
        assert_eq!(c.frame().await, "{handshake:[0],error:[11]}");
        assert_eq!(c.next().await, None);
    }

    pub async fn frame(&mut self) -> String {
        self.next().await.expect("closed")
    }
}

/// A quick reconnect schedule for tests: 20 ms doubling to 100 ms, no jitter.
pub fn fast_reconnect() -> connkit_jstp::Reconnect {
    connkit_jstp::Reconnect::new()
        .initial_delay(Duration::from_millis(20))
        .max_delay(Duration::from_millis(100))
        .jitter(Duration::ZERO)
}
