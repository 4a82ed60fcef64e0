//! `connkit jstp …`: a JSTP server with a demo application, and one-shot client commands,
//! wire-compatible with `@metarhia/jstp` 2.3.0.
//!
//! Output contract:
//! - `call` prints the result list (the `ok` array) as one JSON line and exits 0. A remote
//!   error (including a refused handshake: 10 no such application or version, 11 bad
//!   credentials) is printed on stderr as `{"code":…,"message":…}` and exits 2.
//! - `inspect` prints the method names as one JSON array.
//! - `listen` prints one line per event: `{"interface":…,"event":…,"args":[…]}`.
//! - Every other failure of a client command (cannot connect, TLS, timeout, a bad argument,
//!   an invalid version range, the connection lost) is printed on stderr as
//!   `{"error":"<message>","kind":"usage|connect|timeout|closed|protocol"}` and exits 1.
//! - JSTP `undefined` is JSON `null` in all output (object members that are `undefined` are
//!   left out, as `JSON.stringify` does).
//! - `serve` prints `connkit: listening on <endpoint>` on stderr for each bound endpoint
//!   (with the real port when 0 was asked), then serves until SIGINT/SIGTERM and closes
//!   gracefully. With `--session-storage redis://…` it first connects to Redis (exit 1
//!   when that fails) and keeps sessions there, so that several processes can take each
//!   other's clients over.

use crate::{Failure, error_chain, print_json, shutdown_signal};
use clap::Subcommand;
use connkit::Endpoint;
use connkit::core::tls::{TlsClientConfig, TlsServerConfig};
use connkit::jstp::storage::{MemoryStorage, RedisStorage, StorageError};
use connkit::jstp::{
    Application, Client, ClientOptions, Context, Error, Interface, Logins, RemoteError, Server,
    ServerEvent, ServerOptions, Value,
};
use futures_util::StreamExt;
use serde_json::json;
use std::path::PathBuf;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

#[derive(Debug, Subcommand)]
pub(crate) enum JstpCommand {
    /// Serve JSTP on one or more endpoints until interrupted.
    ///
    /// Prints `connkit: listening on <endpoint>` on stderr for each endpoint once bound.
    Serve {
        /// Endpoints to listen on (tcp://, tls://, unix://, ws://, wss://); repeat the flag or
        /// give several. Port 0 picks a free port.
        #[arg(long, value_name = "ENDPOINT", num_args = 1.., required = true)]
        listen: Vec<String>,
        /// Serve the demo application `calc` 1.0.0 (interface `calculator`: answer(), add(a, b),
        /// echo(x), divide(a, b) with error 100 "Division by zero", ticks(n) emitting n `tick`
        /// events to every connected client).
        #[arg(long)]
        demo: bool,
        /// Accept the `login` strategy with this user (repeatable). Anonymous handshakes are
        /// always accepted.
        #[arg(long, value_name = "USER:PASSWORD")]
        login: Vec<String>,
        /// Certificate chain (PEM) for tls:// and wss:// endpoints.
        #[arg(long, value_name = "FILE", requires = "tls_key")]
        tls_cert: Option<PathBuf>,
        /// Private key (PEM) for tls:// and wss:// endpoints.
        #[arg(long, value_name = "FILE", requires = "tls_cert")]
        tls_key: Option<PathBuf>,
        /// Also print server events (connect, disconnect, handshake failures, client events)
        /// as JSON lines on stdout.
        #[arg(long)]
        events: bool,
        /// Keep sessions in this storage too, so that a client can resume its session after
        /// the live one expired, after a restart, or on another `serve` process sharing the
        /// storage (failover): `redis://HOST:PORT[/DB]`, or `memory` (this process only).
        #[arg(long, value_name = "URL")]
        session_storage: Option<String>,
    },
    /// Call a method and print its result list as one JSON line.
    Call {
        /// The server endpoint.
        endpoint: String,
        /// The application: NAME, or NAME@RANGE (split at the last `@`; a node-semver range).
        app: String,
        /// INTERFACE.METHOD (split at the last `.`).
        method: String,
        /// Arguments, each a JSON or JSTP literal: 2, 'text', "text", {a:1}, [1,,3], undefined.
        #[arg(allow_negative_numbers = true)]
        args: Vec<String>,
        #[command(flatten)]
        client: ClientArgs,
    },
    /// Print the method names of an interface as one JSON array.
    Inspect {
        /// The server endpoint.
        endpoint: String,
        /// The application: NAME or NAME@RANGE.
        app: String,
        /// The interface.
        interface: String,
        #[command(flatten)]
        client: ClientArgs,
    },
    /// Print the events of an interface as JSON lines `{"interface":…,"event":…,"args":[…]}`
    /// until interrupted (exit 0) or the connection closes (exit 1).
    ///
    /// Prints `connkit: connected to <endpoint>` on stderr once subscribed.
    Listen {
        /// The server endpoint.
        endpoint: String,
        /// The application: NAME or NAME@RANGE.
        app: String,
        /// The interface.
        interface: String,
        /// Only this event.
        event: Option<String>,
        #[command(flatten)]
        client: ClientArgs,
    },
}

#[derive(Debug, clap::Args)]
pub(crate) struct ClientArgs {
    /// Use the `login` strategy.
    #[arg(long, value_name = "USER:PASSWORD")]
    login: Option<String>,
    /// Trust this CA certificate (PEM) for tls:// and wss:// endpoints.
    #[arg(long, value_name = "FILE")]
    ca: Option<PathBuf>,
    /// The TLS server name to verify (default: the endpoint's host).
    #[arg(long, value_name = "NAME")]
    server_name: Option<String>,
    /// Give up after this many seconds (connecting and the request; for `listen`, connecting).
    #[arg(long, value_name = "SECS", default_value_t = 30.0)]
    timeout: f64,
}

pub(crate) async fn run(cmd: JstpCommand) -> Result<(), Failure> {
    match cmd {
        JstpCommand::Serve {
            listen,
            demo,
            login,
            tls_cert,
            tls_key,
            events,
            session_storage,
        } => {
            serve(
                listen,
                demo,
                login,
                tls_cert.zip(tls_key),
                events,
                session_storage,
            )
            .await
        }
        JstpCommand::Call {
            endpoint,
            app,
            method,
            args,
            client,
        } => reported(call(endpoint, app, method, args, client).await),
        JstpCommand::Inspect {
            endpoint,
            app,
            interface,
            client,
        } => reported(inspect(endpoint, app, interface, client).await),
        JstpCommand::Listen {
            endpoint,
            app,
            interface,
            event,
            client,
        } => reported(listen(endpoint, app, interface, event, client).await),
    }
}

/// Why a client command failed, printed on stderr as JSON.
enum Outcome {
    Remote(RemoteError),
    Other { kind: &'static str, message: String },
}

impl Outcome {
    fn usage(message: impl Into<String>) -> Self {
        Self::Other {
            kind: "usage",
            message: message.into(),
        }
    }
}

impl From<Error> for Outcome {
    fn from(e: Error) -> Self {
        let kind = match &e {
            Error::Remote(r) => return Self::Remote(r.clone()),
            Error::InvalidRange { .. }
            | Error::InvalidApplication(_)
            | Error::InvalidOption(_)
            | Error::Serialize(_)
            | Error::Convert(_) => "usage",
            Error::HandshakeTimeout(_) => "timeout",
            Error::Closed => "closed",
            Error::Protocol(_) => "protocol",
            Error::Transport(t) if t.kind() == connkit::ErrorKind::InvalidEndpoint => "usage",
            Error::Transport(t) if t.kind() == connkit::ErrorKind::TimedOut => "timeout",
            _ => "connect",
        };
        Self::Other {
            kind,
            message: error_chain(&e),
        }
    }
}

fn reported(r: Result<(), Outcome>) -> Result<(), Failure> {
    match r {
        Ok(()) => Ok(()),
        Err(Outcome::Remote(e)) => {
            eprintln!("{}", json!({"code": e.code(), "message": e.text_message()}));
            Err(Failure::reported(2))
        }
        Err(Outcome::Other { kind, message }) => {
            eprintln!("{}", json!({"error": message, "kind": kind}));
            Err(Failure::reported(1))
        }
    }
}

fn parse_endpoint(s: &str) -> Result<Endpoint, Outcome> {
    s.parse()
        .map_err(|e| Outcome::usage(format!("invalid endpoint `{s}`: {e}")))
}

fn split_login(s: &str) -> Option<(&str, &str)> {
    s.split_once(':').filter(|(u, _)| !u.is_empty())
}

/// One argument: JSON first, then a JSTP (mdsf) literal.
fn parse_arg(s: &str) -> Result<Value, Outcome> {
    if let Ok(json) = serde_json::from_str::<serde_json::Value>(s) {
        return Ok(Value::from(json));
    }
    s.parse::<Value>().map_err(|e| {
        Outcome::usage(format!(
            "argument `{s}` is neither JSON nor a JSTP literal: {e}"
        ))
    })
}

fn to_json(v: Value) -> serde_json::Value {
    serde_json::Value::from(v)
}

fn timeout_of(secs: f64) -> Result<Duration, Outcome> {
    Duration::try_from_secs_f64(secs)
        .ok()
        .filter(|d| !d.is_zero())
        .ok_or_else(|| Outcome::usage("--timeout must be a positive number of seconds"))
}

async fn connect(endpoint: &str, app: &str, args: &ClientArgs) -> Result<Client, Outcome> {
    let ep = parse_endpoint(endpoint)?;
    let limit = timeout_of(args.timeout)?;
    let mut opts = ClientOptions::new().connect_timeout(limit);
    if let Some(login) = &args.login {
        let (user, password) =
            split_login(login).ok_or_else(|| Outcome::usage("--login must be USER:PASSWORD"))?;
        opts = opts.login(user, password);
    }
    if ep.scheme().is_tls() {
        let mut tls = match &args.ca {
            Some(path) => TlsClientConfig::from_root_pem_file(path),
            None => {
                return Err(Outcome::usage(format!(
                    "{ep} needs --ca <FILE> (the certificate authority to trust)"
                )));
            }
        }
        .map_err(|e| Outcome::usage(error_chain(&e)))?;
        if let Some(name) = &args.server_name {
            tls = tls.server_name(name);
        }
        opts = opts.tls(tls);
    }
    Ok(opts.connect(&ep, app).await?)
}

async fn call(
    endpoint: String,
    app: String,
    method: String,
    args: Vec<String>,
    client: ClientArgs,
) -> Result<(), Outcome> {
    let (interface, method) = method
        .rsplit_once('.')
        .filter(|(i, m)| !i.is_empty() && !m.is_empty())
        .ok_or_else(|| Outcome::usage(format!("`{method}` is not INTERFACE.METHOD")))?;
    let values = args
        .iter()
        .map(|a| parse_arg(a))
        .collect::<Result<Vec<_>, _>>()?;
    let limit = timeout_of(client.timeout)?;
    let work = async {
        let c = connect(&endpoint, &app, &client).await?;
        let result = c.call(interface, method, values).await;
        c.close().await;
        Ok::<_, Outcome>(result?)
    };
    let result = tokio::time::timeout(limit, work)
        .await
        .map_err(|_| Outcome::Other {
            kind: "timeout",
            message: format!("no answer within {} s", client.timeout),
        })??;
    print_json(&serde_json::Value::Array(
        result.into_iter().map(to_json).collect(),
    ));
    Ok(())
}

async fn inspect(
    endpoint: String,
    app: String,
    interface: String,
    client: ClientArgs,
) -> Result<(), Outcome> {
    let limit = timeout_of(client.timeout)?;
    let work = async {
        let c = connect(&endpoint, &app, &client).await?;
        let proxy = c.inspect(&interface).await;
        c.close().await;
        Ok::<_, Outcome>(proxy?)
    };
    let proxy = tokio::time::timeout(limit, work)
        .await
        .map_err(|_| Outcome::Other {
            kind: "timeout",
            message: format!("no answer within {} s", client.timeout),
        })??;
    print_json(&json!(proxy.methods()));
    Ok(())
}

async fn listen(
    endpoint: String,
    app: String,
    interface: String,
    event: Option<String>,
    client: ClientArgs,
) -> Result<(), Outcome> {
    let c = connect(&endpoint, &app, &client).await?;
    let mut events = c.remote_events(Some(&interface));
    eprintln!("connkit: connected to {endpoint}");
    let printer = async {
        while let Some(ev) = events.next().await {
            match ev {
                Ok(ev) => {
                    if event.as_deref().is_some_and(|e| e != ev.event) {
                        continue;
                    }
                    print_json(&json!({
                        "interface": ev.interface,
                        "event": ev.event,
                        "args": ev.args.into_iter().map(to_json).collect::<Vec<_>>(),
                    }));
                }
                Err(lag) => eprintln!("connkit: {lag}"),
            }
        }
    };
    tokio::select! {
        () = printer => Err(Outcome::Other {
            kind: "closed",
            message: "the connection closed".into(),
        }),
        () = shutdown_signal() => {
            c.close().await;
            Ok(())
        }
    }
}

/// The demo application `calc` 1.0.0. `ticks` emits to every client of the server (so
/// `connkit jstp listen` sees them), the caller first, before its reply.
pub(crate) fn demo_app(server: Arc<OnceLock<Server>>) -> Application {
    Application::new("calc", semver_1_0_0()).interface(
        "calculator",
        Interface::new()
            .method("answer", |_ctx, (): ()| async { Ok(42) })
            .method("add", |_ctx, (a, b): (f64, f64)| async move { Ok(a + b) })
            .method("echo", |_ctx, (x,): (Value,)| async move { Ok(x) })
            .method("divide", |_ctx, (a, b): (f64, f64)| async move {
                if b == 0.0 {
                    return Err(RemoteError::new(100).message("Division by zero"));
                }
                Ok(a / b)
            })
            .method("ticks", move |ctx: Context, (n,): (u32,)| {
                let server = Arc::clone(&server);
                async move {
                    let mut targets = vec![ctx.connection().clone()];
                    if let Some(s) = server.get() {
                        targets.extend(s.clients().into_iter().filter(|c| c.id() != ctx.id()));
                    }
                    for i in 1..=n {
                        for t in &targets {
                            let _ = t.emit("calculator", "tick", [Value::from(i)]).await;
                        }
                    }
                    Ok(n)
                }
            }),
    )
}

fn semver_1_0_0() -> connkit::jstp::semver::Version {
    connkit::jstp::semver::Version::new(1, 0, 0)
}

async fn serve(
    listen: Vec<String>,
    demo: bool,
    logins: Vec<String>,
    tls: Option<(PathBuf, PathBuf)>,
    print_events: bool,
    session_storage: Option<String>,
) -> Result<(), Failure> {
    if !demo {
        return Err(Failure::usage(
            "nothing to serve: pass --demo (the calc application)",
        ));
    }
    let endpoints = listen
        .iter()
        .map(|s| {
            s.parse::<Endpoint>()
                .map_err(|e| Failure::usage(format!("invalid endpoint `{s}`: {e}")))
        })
        .collect::<Result<Vec<_>, _>>()?;
    let slot = Arc::new(OnceLock::new());
    let mut opts = ServerOptions::new().application(demo_app(Arc::clone(&slot)));
    if !logins.is_empty() {
        let mut users = Logins::new();
        for l in &logins {
            let (u, p) =
                split_login(l).ok_or_else(|| Failure::usage("--login must be USER:PASSWORD"))?;
            users = users.user(u, p);
        }
        opts = opts.auth(users);
    }
    if let Some((cert, key)) = tls {
        let cfg = TlsServerConfig::from_pem_files(&cert, &key)
            .map_err(|e| Failure::usage(error_chain(&e)))?;
        opts = opts.tls(cfg);
    }
    match session_storage.as_deref() {
        None => {}
        Some("memory") => opts = opts.session_storage(MemoryStorage::new()),
        Some(url) if url.starts_with("redis://") || url.starts_with("redis+unix://") => {
            let storage = RedisStorage::connect(url).await.map_err(|e| match e {
                StorageError::InvalidAddress(_) => Failure::usage(error_chain(&e)),
                _ => Failure::runtime(format!(
                    "cannot use the session storage: {}",
                    error_chain(&e)
                )),
            })?;
            opts = opts.session_storage(storage);
        }
        Some(other) => {
            return Err(Failure::usage(format!(
                "--session-storage must be redis://HOST:PORT or memory, not `{other}`"
            )));
        }
    }
    let server = opts
        .listen(endpoints)
        .await
        .map_err(|e| Failure::runtime(format!("cannot serve: {}", error_chain(&e))))?;
    let _ = slot.set(server.clone());
    let mut events = server.events();
    for ep in server.endpoints() {
        eprintln!("connkit: listening on {ep}");
    }
    let printer = async {
        while let Some(ev) = events.next().await {
            if !print_events {
                continue;
            }
            let line = match ev {
                Ok(ServerEvent::Connect { client }) => json!({
                    "event": "connect",
                    "client": client.id(),
                    "peer": client.peer(),
                    "app": client.application().to_string(),
                    "username": client.username(),
                }),
                Ok(ServerEvent::Disconnect { client, error }) => json!({
                    "event": "disconnect",
                    "client": client,
                    "error": error.map(|e| error_chain(&*e)),
                }),
                Ok(ServerEvent::HandshakeFailed { peer, error }) => json!({
                    "event": "handshakeFailed",
                    "peer": peer,
                    "error": error_chain(&*error),
                }),
                Ok(ServerEvent::Event { client, event }) => json!({
                    "event": "event",
                    "client": client,
                    "interface": event.interface,
                    "name": event.event,
                    "args": event.args.into_iter().map(to_json).collect::<Vec<_>>(),
                }),
                Ok(ServerEvent::HandlerPanicked {
                    client,
                    handler,
                    message,
                }) => json!({
                    "event": "handlerPanicked",
                    "client": client,
                    "handler": handler,
                    "message": message,
                }),
                _ => continue,
            };
            print_json(&line);
        }
    };
    tokio::select! {
        () = printer => {}
        () = shutdown_signal() => {}
    }
    server.close().await;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn arguments_are_json_then_jstp() {
        let ok = |s: &str| parse_arg(s).ok().map(|v| v.to_string());
        assert_eq!(ok("2").as_deref(), Some("2"));
        assert_eq!(ok("\"hi\"").as_deref(), Some("'hi'"));
        assert_eq!(ok("'hi'").as_deref(), Some("'hi'"));
        assert_eq!(ok("{a:1}").as_deref(), Some("{a:1}"));
        assert_eq!(ok(r#"{"a":[1,null]}"#).as_deref(), Some("{a:[1,null]}"));
        assert_eq!(ok("[1,,3]").as_deref(), Some("[1,,3]"));
        assert_eq!(ok("undefined").as_deref(), Some("undefined"));
        assert!(parse_arg("hello").is_err());
    }
}
