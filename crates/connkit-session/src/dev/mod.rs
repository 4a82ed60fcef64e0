//! A local session-backend server for development and tests: no Docker, no database.
//!
//! [`DevServer`] speaks the Jamsocket v2 routes (what `@jamsocket/server` with `{dev: true}`
//! and [`ApiClient::dev`](crate::ApiClient::dev) call) and Plane's (`/ctrl/connect`,
//! `/pub/b/{id}/status`, `/pub/b/{id}/status-stream`) on one loopback port. Each spawn runs
//! the configured command as a local process with `PORT` in its environment, and walks it
//! through scheduled → loading → starting → waiting → ready (once its port accepts a
//! connection) → terminating / hard-terminating → terminated.
//!
//! | route | answer |
//! |---|---|
//! | `POST /v2/service/{account}/{service}/connect` | [`ConnectResponse`] (Jamsocket URLs, ISO times) |
//! | `GET /v2/backend/{id}/status`, `…/status/stream` | state JSON, SSE stream |
//! | `POST /v2/backend/{id}/terminate` `{"hard":bool}` | `null` |
//! | `POST /ctrl/connect` | Plane connect ([`PlaneConnectRequest`]) |
//! | `POST /ctrl/b/{id}/soft-terminate`, `/hard-terminate` | `null` |
//! | `GET /pub/b/{id}/status`, `/pub/b/{id}/status-stream` | Plane's forms (epoch-ms times) |
//! | `GET /pub/health` | `{"status":"ok"}` |
//!
//! Streams send `data: {json}` and `id: {status}` lines, replay the history (honouring
//! `Last-Event-ID`), send a `:` keep-alive every 15 s, and stay open after `terminated`, as
//! Plane's do. Errors are JSON `{id, kind, message}`, as Plane's are.
//!
//! Idle means: no connect request and no open status stream (there is no proxy to count
//! connections to the backend itself; one-off status requests do not count). After `max_idle_seconds` of that (from the
//! connect request, else the server default) the backend is swept: SIGTERM, then SIGKILL
//! after the grace period. A backend whose process exits by itself is recorded as
//! `terminated` with `exit_error` set from its exit status. Connecting again with a live
//! backend's key returns that backend (`spawned: false`).
//!
//! ```no_run
//! use connkit_session::dev::DevServerOptions;
//! use connkit_session::{ConnectRequest, SessionBackend};
//!
//! # async fn run() -> Result<(), connkit_session::Error> {
//! let server = DevServerOptions::new()
//!     .listen("127.0.0.1:0".parse().unwrap())
//!     .backend_command(["python3", "-m", "http.server"])
//!     .start()
//!     .await?;
//! let api = server.api()?;
//! let response = api.connect(&ConnectRequest::new().key("doc-1")).await?;
//! SessionBackend::new(&response).ready().await?;
//! server.shutdown().await;
//! # Ok(()) }
//! ```

mod echo;
mod process;

pub use echo::{run_echo_backend, run_echo_backend_from_env};

use crate::api::{ApiClient, ApiOptions};
use crate::error::{Error, Result};
use crate::types::{BackendState, ConnectRequest, ConnectResponse, PlaneConnectRequest};
use bytes::Bytes;
use http_body_util::{BodyExt, Full, StreamBody, combinators::UnsyncBoxBody};
use hyper::body::{Frame, Incoming};
use hyper::{Method, Request, Response, StatusCode};
use process::{Backend, Spec, StopRequest};
use serde::Serialize;
use std::collections::{BTreeMap, HashMap};
use std::convert::Infallible;
use std::fmt;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::{Instrument, debug, info, warn};
use url::Url;

/// The largest request body accepted (connect requests are small).
const MAX_BODY: usize = 1024 * 1024;
/// How often an idle status stream gets a keep-alive comment (Plane's interval).
const KEEPALIVE: Duration = Duration::from_secs(15);

/// Settings of a [`DevServer`].
///
/// Defaults: listen on `127.0.0.1:8080`, no backend command (set one), 300 s idle limit,
/// 30 s startup timeout, 10 s between SIGTERM and SIGKILL, port polled every 50 ms.
#[derive(Debug, Clone)]
#[must_use]
pub struct DevServerOptions {
    listen: SocketAddr,
    command: Vec<String>,
    env: BTreeMap<String, String>,
    max_idle: Duration,
    startup_timeout: Duration,
    grace: Duration,
    poll: Duration,
}

impl Default for DevServerOptions {
    fn default() -> Self {
        Self::new()
    }
}

impl DevServerOptions {
    /// The defaults.
    pub fn new() -> Self {
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], crate::api::DEV_PORT)),
            command: Vec::new(),
            env: BTreeMap::new(),
            max_idle: Duration::from_secs(300),
            startup_timeout: Duration::from_secs(30),
            grace: Duration::from_secs(10),
            poll: Duration::from_millis(50),
        }
    }

    /// Where to listen (default `127.0.0.1:8080`; port 0 picks a free one).
    ///
    /// ```no_run
    /// # use connkit_session::dev::DevServerOptions;
    /// let options = DevServerOptions::new().listen("127.0.0.1:0".parse().unwrap());
    /// ```
    pub fn listen(mut self, addr: SocketAddr) -> Self {
        self.listen = addr;
        self
    }

    /// The command that runs one backend: a program and its arguments, or a single string
    /// with spaces, run with `/bin/sh -c`. It must listen on `127.0.0.1:$PORT`; it also gets
    /// `SESSION_BACKEND_ID`, `SESSION_BACKEND_TOKEN`, `SESSION_BACKEND_KEY` (if any) and the
    /// connect request's `env`. Its stdout goes to the server's stderr.
    ///
    /// ```no_run
    /// # use connkit_session::dev::DevServerOptions;
    /// let options = DevServerOptions::new().backend_command(["connkit", "session", "echo-backend"]);
    /// ```
    pub fn backend_command<I, S>(mut self, command: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.command = command.into_iter().map(Into::into).collect();
        self
    }

    /// One more environment variable for every backend.
    ///
    /// ```no_run
    /// # use connkit_session::dev::DevServerOptions;
    /// let options = DevServerOptions::new().backend_env("RUST_LOG", "debug");
    /// ```
    pub fn backend_env(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.env.insert(name.into(), value.into());
        self
    }

    /// The idle limit when a connect request gives no `max_idle_seconds` (default 300 s).
    ///
    /// ```no_run
    /// # use connkit_session::dev::DevServerOptions; use std::time::Duration;
    /// let options = DevServerOptions::new().max_idle(Duration::from_secs(60));
    /// ```
    pub fn max_idle(mut self, idle: Duration) -> Self {
        self.max_idle = idle;
        self
    }

    /// How long a backend may take to accept connections before it is killed
    /// (`startuptimeout`; default 30 s).
    ///
    /// ```no_run
    /// # use connkit_session::dev::DevServerOptions; use std::time::Duration;
    /// let options = DevServerOptions::new().startup_timeout(Duration::from_secs(5));
    /// ```
    pub fn startup_timeout(mut self, timeout: Duration) -> Self {
        self.startup_timeout = timeout;
        self
    }

    /// How long a soft-terminated backend has between SIGTERM and SIGKILL (default 10 s).
    ///
    /// ```no_run
    /// # use connkit_session::dev::DevServerOptions; use std::time::Duration;
    /// let options = DevServerOptions::new().termination_grace(Duration::from_secs(2));
    /// ```
    pub fn termination_grace(mut self, grace: Duration) -> Self {
        self.grace = grace;
        self
    }

    /// Bind and start serving.
    ///
    /// # Errors
    /// [`Error::InvalidConfig`] without a backend command, [`Error::Io`] when the address
    /// cannot be bound.
    pub async fn start(self) -> Result<DevServer> {
        if self.command.is_empty() || self.command.iter().all(|s| s.trim().is_empty()) {
            return Err(Error::InvalidConfig(
                "the dev server needs a backend command".into(),
            ));
        }
        let listener = TcpListener::bind(self.listen)
            .await
            .map_err(|e| Error::io(format!("cannot listen on {}", self.listen), e))?;
        let addr = listener
            .local_addr()
            .map_err(|e| Error::io("reading the bound address", e))?;
        let host = if addr.ip().is_unspecified() {
            SocketAddr::from(([127, 0, 0, 1], addr.port()))
        } else {
            addr
        };
        let base = Url::parse(&format!("http://{host}"))
            .map_err(|e| Error::invalid_url(host.to_string(), e.to_string()))?;
        let cancel = CancellationToken::new();
        let tracker = TaskTracker::new();
        let shared = Arc::new(Shared {
            options: self,
            base: base.clone(),
            backends: Mutex::new(Registry::default()),
            cancel: cancel.clone(),
            tracker: tracker.clone(),
        });
        info!(%addr, "session dev server listening");
        tracker.spawn(
            accept_loop(listener, Arc::clone(&shared))
                .instrument(tracing::info_span!("connkit.session.dev", %addr)),
        );
        Ok(DevServer { addr, base, shared })
    }
}

/// A running dev server. Dropping it stops the server and kills its backends; prefer
/// [`shutdown`](Self::shutdown), which waits for them to exit.
pub struct DevServer {
    addr: SocketAddr,
    base: Url,
    shared: Arc<Shared>,
}

impl fmt::Debug for DevServer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DevServer")
            .field("addr", &self.addr)
            .finish_non_exhaustive()
    }
}

impl DevServer {
    /// The address bound.
    #[must_use]
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// The base URL (`http://127.0.0.1:{port}`).
    #[must_use]
    pub fn base_url(&self) -> &Url {
        &self.base
    }

    /// A Jamsocket-dialect client for this server (account, service and token `-`).
    ///
    /// # Errors
    /// When the HTTP client cannot be made.
    pub fn api(&self) -> Result<ApiClient> {
        ApiOptions::jamsocket("-", "-", "-")
            .api_url(self.base.as_str())
            .build()
    }

    /// A Plane-dialect client for this server.
    ///
    /// # Errors
    /// When the HTTP client cannot be made.
    pub fn plane_api(&self) -> Result<ApiClient> {
        ApiOptions::plane(self.base.as_str()).build()
    }

    /// Stop accepting requests, hard-terminate every live backend and wait until all have
    /// exited (and every connection has closed).
    ///
    /// Cancel safe: the shutdown goes on if this future is dropped.
    pub async fn shutdown(self) {
        self.shared.cancel.cancel();
        self.shared.tracker.close();
        self.shared.tracker.wait().await;
    }

    /// Complete when the server has been shut down (for a CLI that also waits for a signal).
    ///
    /// Cancel safe.
    pub async fn stopped(&self) {
        self.shared.cancel.cancelled().await;
    }
}

impl Drop for DevServer {
    fn drop(&mut self) {
        self.shared.cancel.cancel();
    }
}

#[derive(Default)]
struct Registry {
    by_id: HashMap<String, Arc<Backend>>,
    by_key: HashMap<String, String>,
}

struct Shared {
    options: DevServerOptions,
    base: Url,
    backends: Mutex<Registry>,
    cancel: CancellationToken,
    tracker: TaskTracker,
}

impl Shared {
    fn registry(&self) -> std::sync::MutexGuard<'_, Registry> {
        self.backends
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn backend(&self, id: &str) -> Option<Arc<Backend>> {
        self.registry().by_id.get(id).cloned()
    }
}

async fn accept_loop(listener: TcpListener, shared: Arc<Shared>) {
    loop {
        let (stream, peer) = tokio::select! {
            r = listener.accept() => match r {
                Ok(x) => x,
                Err(e) => {
                    warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            () = shared.cancel.cancelled() => return,
        };
        let shared2 = Arc::clone(&shared);
        let cancel = shared.cancel.clone();
        shared.tracker.spawn(async move {
            let service = hyper::service::service_fn(move |req| {
                let shared = Arc::clone(&shared2);
                async move { Ok::<_, Infallible>(route(&shared, req).await) }
            });
            let conn = hyper::server::conn::http1::Builder::new()
                .serve_connection(hyper_util::rt::TokioIo::new(stream), service);
            tokio::pin!(conn);
            tokio::select! {
                r = conn.as_mut() => if let Err(e) = r { debug!(%peer, error = %e, "connection error") },
                () = cancel.cancelled() => conn.as_mut().graceful_shutdown(),
            }
        });
    }
}

type Body = UnsyncBoxBody<Bytes, Infallible>;

fn json<T: Serialize>(status: StatusCode, value: &T) -> Response<Body> {
    let body = serde_json::to_vec(value).unwrap_or_else(|_| b"null".to_vec());
    let mut resp = Response::new(Full::new(Bytes::from(body)).boxed_unsync());
    *resp.status_mut() = status;
    let h = resp.headers_mut();
    h.insert(
        "content-type",
        hyper::header::HeaderValue::from_static("application/json"),
    );
    h.insert(
        "access-control-allow-origin",
        hyper::header::HeaderValue::from_static("*"),
    );
    resp
}

fn error(status: StatusCode, kind: &str, message: impl Into<String>) -> Response<Body> {
    json(
        status,
        &serde_json::json!({
            "id": uuid::Uuid::new_v4().simple().to_string(),
            "kind": kind,
            "message": message.into(),
        }),
    )
}

#[allow(clippy::result_large_err)] // the error is the answer to send
async fn read_body(req: Request<Incoming>) -> std::result::Result<Bytes, Response<Body>> {
    let limited = http_body_util::Limited::new(req.into_body(), MAX_BODY);
    match limited.collect().await {
        Ok(c) => Ok(c.to_bytes()),
        Err(_) => Err(error(
            StatusCode::PAYLOAD_TOO_LARGE,
            "BadRequest",
            "the body is too large or broken",
        )),
    }
}

#[allow(clippy::result_large_err)] // the error is the answer to send
fn parse_json<T: serde::de::DeserializeOwned + Default>(
    body: &[u8],
) -> std::result::Result<T, Response<Body>> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(T::default());
    }
    serde_json::from_slice(body).map_err(|e| {
        error(
            StatusCode::BAD_REQUEST,
            "BadRequest",
            format!("invalid request body: {e}"),
        )
    })
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Dialect {
    Jamsocket,
    Plane,
}

async fn route(shared: &Arc<Shared>, req: Request<Incoming>) -> Response<Body> {
    let method = req.method().clone();
    let path = req.uri().path().to_owned();
    let segments: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
    debug!(%method, %path, "request");
    match (&method, segments.as_slice()) {
        (&Method::POST, ["v2", "service", _account, _service, "connect"]) => {
            let body = match read_body(req).await {
                Ok(b) => b,
                Err(r) => return r,
            };
            match parse_json::<ConnectRequest>(&body) {
                Ok(r) => connect(shared, Dialect::Jamsocket, r),
                Err(resp) => resp,
            }
        }
        (&Method::POST, ["ctrl", "connect"]) => {
            let body = match read_body(req).await {
                Ok(b) => b,
                Err(r) => return r,
            };
            match parse_json::<PlaneConnectRequest>(&body) {
                Ok(r) => connect(shared, Dialect::Plane, plane_to_jamsocket(r)),
                Err(resp) => resp,
            }
        }
        (&Method::GET, ["v2", "backend", id, "status"]) => status(shared, Dialect::Jamsocket, id),
        (&Method::GET, ["pub", "b", id, "status"]) => status(shared, Dialect::Plane, id),
        (&Method::GET, ["v2", "backend", id, "status", "stream"]) => {
            stream(shared, Dialect::Jamsocket, id, &req)
        }
        (&Method::GET, ["pub", "b", id, "status-stream"]) => {
            stream(shared, Dialect::Plane, id, &req)
        }
        (&Method::POST, ["v2", "backend", id, "terminate"]) => {
            let id = (*id).to_owned();
            let body = match read_body(req).await {
                Ok(b) => b,
                Err(r) => return r,
            };
            #[derive(serde::Deserialize, Default)]
            struct Terminate {
                #[serde(default)]
                hard: bool,
            }
            match parse_json::<Terminate>(&body) {
                Ok(t) => terminate(shared, &id, t.hard),
                Err(resp) => resp,
            }
        }
        (&Method::POST, ["ctrl", "b", id, "soft-terminate"]) => terminate(shared, id, false),
        (&Method::POST, ["ctrl", "b", id, "hard-terminate"]) => terminate(shared, id, true),
        (&Method::GET, ["pub", "health"]) => {
            json(StatusCode::OK, &serde_json::json!({"status": "ok"}))
        }
        (&Method::GET, ["ctrl", "status"]) => json(
            StatusCode::OK,
            &serde_json::json!({"status": "ok", "version": env!("CARGO_PKG_VERSION"), "hash": "connkit-dev"}),
        ),
        (&Method::OPTIONS, _) => {
            let mut resp = json(StatusCode::OK, &serde_json::Value::Null);
            let h = resp.headers_mut();
            h.insert(
                "access-control-allow-methods",
                hyper::header::HeaderValue::from_static("GET, POST"),
            );
            h.insert(
                "access-control-allow-headers",
                hyper::header::HeaderValue::from_static(
                    "content-type, authorization, last-event-id",
                ),
            );
            resp
        }
        _ => error(
            StatusCode::NOT_FOUND,
            "NotFound",
            format!("no route for {method} {path}"),
        ),
    }
}

/// Plane's request in the Jamsocket shape the registry works with (the executable is not
/// used: every backend runs the configured command).
fn plane_to_jamsocket(r: PlaneConnectRequest) -> ConnectRequest {
    let mut out = ConnectRequest::new();
    out.key = r.key.map(|k| {
        if k.namespace.is_empty() {
            k.name
        } else {
            format!("{}/{}", k.namespace, k.name)
        }
    });
    out.user = r.user;
    out.auth = r.auth;
    out.spawn = Some(match r.spawn_config {
        None => crate::types::Spawn::Enabled(false),
        Some(sc) => {
            let mut config = crate::types::SpawnConfig::new();
            config.max_idle_seconds = sc.max_idle_seconds;
            config.lifetime_limit_seconds = sc.lifetime_limit_seconds;
            if let Some(env) = sc.executable.get("env").and_then(|e| e.as_object()) {
                for (k, v) in env {
                    if let Some(v) = v.as_str() {
                        config = config.env(k, v);
                    }
                }
            }
            crate::types::Spawn::Config(Box::new(config))
        }
    });
    out
}

fn random_id() -> String {
    // 14 lowercase alphanumerics, like Plane's backend ids.
    const ALPHABET: &[u8] = b"abcdefghijklmnopqrstuvwxyz0123456789";
    uuid::Uuid::new_v4()
        .as_bytes()
        .iter()
        .take(14)
        .map(|b| char::from(ALPHABET[usize::from(*b) % ALPHABET.len()]))
        .collect()
}

fn random_token() -> String {
    let a = uuid::Uuid::new_v4().simple().to_string();
    let b = uuid::Uuid::new_v4().simple().to_string();
    format!("{a}{}", &b[..11])
}

fn free_port() -> std::io::Result<u16> {
    let l = std::net::TcpListener::bind(("127.0.0.1", 0))?;
    Ok(l.local_addr()?.port())
}

fn connect(shared: &Arc<Shared>, dialect: Dialect, request: ConnectRequest) -> Response<Body> {
    let token = random_token();
    let existing = {
        let reg = shared.registry();
        request
            .key
            .as_ref()
            .and_then(|k| reg.by_key.get(k))
            .and_then(|id| reg.by_id.get(id))
            .filter(|b| !b.is_terminated())
            .cloned()
    };
    if let Some(backend) = existing {
        backend.touch();
        return json(
            StatusCode::OK,
            &response(shared, dialect, &backend, false, token),
        );
    }
    if !request.may_spawn() {
        return error(
            StatusCode::CONFLICT,
            "KeyUnheldNoSpawnConfig",
            "no live backend holds this key and spawning is off",
        );
    }
    let port = match free_port() {
        Ok(p) => p,
        Err(e) => {
            return error(
                StatusCode::INTERNAL_SERVER_ERROR,
                "NoDroneAvailable",
                format!("no free port: {e}"),
            );
        }
    };
    let config = request.config();
    let opts = &shared.options;
    let mut env = opts.env.clone();
    if let Some(extra) = config
        .and_then(|c| c.executable.as_ref())
        .and_then(|e| e.env.as_ref())
    {
        env.extend(extra.iter().map(|(k, v)| (k.clone(), v.clone())));
    }
    env.insert("SESSION_BACKEND_TOKEN".into(), token.clone());
    let spec = Spec {
        command: opts.command.clone(),
        env,
        max_idle: config
            .and_then(|c| c.max_idle_seconds)
            .map_or(opts.max_idle, Duration::from_secs),
        lifetime: config
            .and_then(|c| c.lifetime_limit_seconds)
            .map(Duration::from_secs),
        startup_timeout: opts.startup_timeout,
        grace: opts.grace,
        poll: opts.poll,
    };
    let backend = Arc::new(Backend::new(random_id(), request.key.clone(), port));
    {
        let mut reg = shared.registry();
        // Another connect with this key may have won the race.
        let live = request
            .key
            .as_ref()
            .and_then(|k| reg.by_key.get(k))
            .and_then(|id| reg.by_id.get(id))
            .filter(|b| !b.is_terminated())
            .cloned();
        if let Some(b) = live {
            drop(reg);
            return json(StatusCode::OK, &response(shared, dialect, &b, false, token));
        }
        reg.by_id.insert(backend.id.clone(), Arc::clone(&backend));
        if let Some(k) = &request.key {
            reg.by_key.insert(k.clone(), backend.id.clone());
        }
    }
    // `scheduled` is recorded before the answer, so that the answer and any status request
    // made right after it agree.
    backend.schedule();
    let b = Arc::clone(&backend);
    let cancel = shared.cancel.clone();
    let span = tracing::info_span!("backend", id = %backend.id);
    shared
        .tracker
        .spawn(process::lifecycle(b, spec, cancel).instrument(span));
    json(
        StatusCode::OK,
        &response(shared, dialect, &backend, true, token),
    )
}

fn response(
    shared: &Shared,
    dialect: Dialect,
    backend: &Backend,
    spawned: bool,
    token: String,
) -> ConnectResponse {
    let status_url = match dialect {
        Dialect::Jamsocket => format!("{}v2/backend/{}/status", shared.base, backend.id),
        Dialect::Plane => format!("{}pub/b/{}/status", shared.base, backend.id),
    };
    let mut r = ConnectResponse::new(
        backend.id.clone(),
        spawned,
        backend
            .status()
            .unwrap_or(crate::types::BackendStatus::Scheduled),
        token,
        format!("http://127.0.0.1:{}/", backend.port),
        status_url,
    );
    if dialect == Dialect::Plane {
        r.drone = spawned.then(|| "connkit-dev".to_owned());
    }
    r
}

fn shaped(state: &BackendState, dialect: Dialect) -> BackendState {
    let mut s = state.clone();
    s.time = match dialect {
        Dialect::Jamsocket => s.time.to_iso(),
        Dialect::Plane => s.time.to_epoch_millis(),
    };
    s
}

fn status(shared: &Shared, dialect: Dialect, id: &str) -> Response<Body> {
    match shared.backend(id) {
        Some(b) => match b.current() {
            Some(s) => json(StatusCode::OK, &shaped(&s, dialect)),
            None => json(
                StatusCode::OK,
                &BackendState::new(
                    crate::types::BackendStatus::Scheduled,
                    crate::Timestamp::now_millis(),
                ),
            ),
        },
        None => error(StatusCode::NOT_FOUND, "NotFound", "Backend does not exist"),
    }
}

fn terminate(shared: &Shared, id: &str, hard: bool) -> Response<Body> {
    match shared.backend(id) {
        Some(b) => {
            b.request_stop(if hard {
                StopRequest::Hard
            } else {
                StopRequest::Soft
            });
            json(StatusCode::OK, &serde_json::Value::Null)
        }
        None => error(StatusCode::NOT_FOUND, "NotFound", "Backend does not exist"),
    }
}

fn stream(
    shared: &Arc<Shared>,
    dialect: Dialect,
    id: &str,
    req: &Request<Incoming>,
) -> Response<Body> {
    let Some(backend) = shared.backend(id) else {
        return error(StatusCode::NOT_FOUND, "NotFound", "Backend does not exist");
    };
    let after = req
        .headers()
        .get("last-event-id")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| crate::types::BackendStatus::from_wire(v.trim()).rank());
    struct St {
        rx: tokio::sync::watch::Receiver<Vec<BackendState>>,
        sent: usize,
        after: Option<u8>,
        cancel: CancellationToken,
        _guard: process::StreamGuard,
    }
    let st = St {
        rx: backend.history.subscribe(),
        sent: 0,
        after,
        cancel: shared.cancel.clone(),
        _guard: backend.stream_guard(),
    };
    let body = futures_util::stream::unfold(st, move |mut st| async move {
        loop {
            let chunk = {
                let history = st.rx.borrow_and_update();
                let mut out = String::new();
                for s in history.iter().skip(st.sent) {
                    let rank = s.status.rank();
                    if st.after.is_some_and(|a| rank.is_some_and(|r| r <= a)) {
                        continue;
                    }
                    let json = serde_json::to_string(&shaped(s, dialect)).unwrap_or_default();
                    out.push_str(&format!("data: {json}\nid: {}\n\n", s.status));
                }
                st.sent = history.len();
                out
            };
            if !chunk.is_empty() {
                return Some((Ok::<_, Infallible>(Frame::data(Bytes::from(chunk))), st));
            }
            tokio::select! {
                r = st.rx.changed() => if r.is_err() { return None },
                () = tokio::time::sleep(KEEPALIVE) => {
                    return Some((Ok(Frame::data(Bytes::from_static(b":\n\n"))), st));
                }
                () = st.cancel.cancelled() => return None,
            }
        }
    });
    let mut resp = Response::new(BodyExt::boxed_unsync(StreamBody::new(body)));
    let h = resp.headers_mut();
    h.insert(
        "content-type",
        hyper::header::HeaderValue::from_static("text/event-stream"),
    );
    h.insert(
        "cache-control",
        hyper::header::HeaderValue::from_static("no-cache"),
    );
    h.insert(
        "access-control-allow-origin",
        hyper::header::HeaderValue::from_static("*"),
    );
    resp
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_and_tokens_look_like_planes() {
        let id = random_id();
        assert_eq!(id.len(), 14);
        assert!(
            id.bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
        );
        assert_eq!(random_token().len(), 43);
        assert_ne!(random_id(), random_id());
    }
}
