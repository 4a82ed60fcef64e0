//! The JSTP server: listens on any number of endpoints (tcp, tls, unix, ws, wss) under one
//! [`Server`] handle, runs the handshake (application choice, authentication), then serves
//! each client on its own connection task.

use crate::app::{Application, Applications};
use crate::connection::{
    Attach, ClientConnection, Command, Connection, ConnectionState, Heartbeat, Kind, Observer,
    REMOTE_EVENT_CAPACITY, RemoteEvent, Resume, Role, Shared, Tail, Task, new_connection,
    next_connection_id,
};
use crate::error::{ERR_APP_NOT_FOUND, ERR_AUTH_FAILED, Error, RemoteError, Result};
use crate::message::{self, Message, MessageError};
use crate::session::{DEFAULT_CLIENT_EXPIRATION, DEFAULT_MAX_BUFFERED};
use crate::storage::{
    DEFAULT_STORAGE_TIMEOUT, DEFAULT_WRITE_INTERVAL, Hook, SessionMeta, SessionStorageProvider,
    Storage, StoredSession,
};
use crate::value::{self, Value};
use bytes::BytesMut;
use connkit_core::events::{DEFAULT_EVENT_CAPACITY, EventHub, EventStream};
use connkit_core::tls::TlsServerConfig;
use connkit_core::transport::{
    Incoming, Listener, MessageReceiver, MessageSender, TransportOptions, listen,
};
use connkit_core::{Endpoint, Scheme};
use futures_util::StreamExt;
use serde::Serialize;
use std::collections::HashMap;
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;
use tokio::sync::{mpsc, watch};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::{Instrument, debug, info, warn};

/// The WebSocket subprotocol JSTP requires.
pub const WS_SUBPROTOCOL: &str = "metarhia-jstp";
/// The largest message, in bytes (Node: 8 MiB).
pub const DEFAULT_MAX_MESSAGE_LEN: usize = 8 * 1024 * 1024;
/// How long a new connection has to complete its handshake (Node: 3 s).
pub const DEFAULT_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(3);

/// A handshake's authentication request, for an [`AuthPolicy`].
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct AuthRequest {
    /// The application the handshake chose.
    pub application: Arc<Application>,
    /// The strategy: the handshake's second key (`login`, or a custom one).
    pub strategy: String,
    /// Its value: `['user','password']` for `login`.
    pub credentials: Value,
    /// The peer's address.
    pub peer: String,
    /// The transport.
    pub scheme: Scheme,
}

/// Decides handshakes that carry credentials (spec §4.2). It is never asked about
/// anonymous handshakes (no strategy key, or `anonymous`), which always succeed, nor about
/// `session` (answered 11 until sessions exist).
///
/// Return the user name, or the error to send: a [`RemoteError`] is sent as it is (use
/// [`RemoteError::auth_failed`] for a plain refusal); an empty user name is answered 11.
///
/// ```
/// use connkit_jstp::{AuthPolicy, AuthRequest, RemoteError};
///
/// struct Tokens;
///
/// impl AuthPolicy for Tokens {
///     async fn authenticate(&self, req: &AuthRequest) -> Result<String, RemoteError> {
///         match (req.strategy.as_str(), req.credentials.at(0).and_then(|v| v.as_str())) {
///             ("token", Some("abc")) => Ok("token-user".into()),
///             _ => Err(RemoteError::auth_failed()),
///         }
///     }
/// }
/// ```
pub trait AuthPolicy: Send + Sync + 'static {
    /// Check the credentials; runs inside the 3 s handshake time limit.
    fn authenticate(
        &self,
        request: &AuthRequest,
    ) -> impl Future<Output = std::result::Result<String, RemoteError>> + Send;
}

type AuthFuture<'a> =
    Pin<Box<dyn Future<Output = std::result::Result<String, RemoteError>> + Send + 'a>>;

/// The object-safe form of [`AuthPolicy`].
trait DynAuth: Send + Sync + 'static {
    fn authenticate_boxed<'a>(&'a self, request: &'a AuthRequest) -> AuthFuture<'a>;
}

impl<T: AuthPolicy> DynAuth for T {
    fn authenticate_boxed<'a>(&'a self, request: &'a AuthRequest) -> AuthFuture<'a> {
        Box::pin(self.authenticate(request))
    }
}

/// An [`AuthPolicy`] for the `login` strategy with a fixed table of users and passwords.
///
/// ```
/// use connkit_jstp::{Logins, ServerOptions};
/// let opts = ServerOptions::new().auth(Logins::new().user("user", "secret"));
/// # let _ = opts;
/// ```
#[derive(Clone, Default)]
pub struct Logins {
    users: HashMap<String, String>,
}

impl fmt::Debug for Logins {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Logins")
            .field("users", &self.users.keys().collect::<Vec<_>>())
            .finish()
    }
}

impl Logins {
    /// No users.
    #[must_use]
    pub fn new() -> Self {
        Self::default()
    }

    /// Accept `user` with `password`.
    #[must_use]
    pub fn user(mut self, user: impl Into<String>, password: impl Into<String>) -> Self {
        self.users.insert(user.into(), password.into());
        self
    }
}

impl AuthPolicy for Logins {
    async fn authenticate(
        &self,
        request: &AuthRequest,
    ) -> std::result::Result<String, RemoteError> {
        if request.strategy != "login" {
            return Err(RemoteError::auth_failed());
        }
        match (
            request.credentials.at(0).and_then(Value::as_str),
            request.credentials.at(1).and_then(Value::as_str),
        ) {
            (Some(user), Some(password)) if self.users.get(user).is_some_and(|p| p == password) => {
                Ok(user.to_owned())
            }
            _ => Err(RemoteError::auth_failed()),
        }
    }
}

/// The server's lifecycle.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ServerState {
    /// Accepting clients.
    Listening,
    /// `close` was called: no new clients; existing ones are being closed.
    Closing,
    /// Closed.
    Closed,
}

/// What happens on a server, in order.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub enum ServerEvent {
    /// An endpoint is bound.
    Listening {
        /// The endpoint (with the real port when 0 was asked).
        endpoint: Endpoint,
    },
    /// A handshake request arrived (Node's `handshakeRequest`).
    HandshakeRequest {
        /// The peer's address.
        peer: String,
        /// The application asked for.
        app: String,
        /// The version or range asked for.
        version: Option<String>,
        /// The strategy (`anonymous` when there is none).
        strategy: String,
    },
    /// A client completed its handshake (Node's `connect`).
    Connect {
        /// The client's connection.
        client: ClientConnection,
    },
    /// A connection failed before or during its handshake (timeout, refused application or
    /// credentials, a message before the handshake, a TLS or WebSocket failure).
    HandshakeFailed {
        /// The peer's address.
        peer: String,
        /// Why.
        error: Arc<Error>,
    },
    /// A client's session was restored on a new transport (Node's `reconnect`). Path A of
    /// spec §6.3 (from the live index): the same connection, so the same id. Path B (from
    /// the [session storage](crate::storage)): a new connection, with a new id.
    Reconnect {
        /// The client's connection.
        client: ClientConnection,
    },
    /// A client is gone (Node's `disconnect`). With sessions, its session may still be
    /// restored until the client expiration time; then [`ServerEvent::Reconnect`] follows.
    Disconnect {
        /// The client's connection id.
        client: u64,
        /// Why, when something went wrong (a bad message, a broken transport).
        error: Option<Arc<Error>>,
    },
    /// A client sent an event.
    Event {
        /// The client's connection id.
        client: u64,
        /// The event.
        event: RemoteEvent,
    },
    /// A client's message was ignored.
    Rejected {
        /// The client's connection id.
        client: u64,
        /// Why.
        reason: String,
    },
    /// A method or event handler panicked; the caller got 16 and nothing else changed.
    HandlerPanicked {
        /// The client's connection id.
        client: u64,
        /// `interface.method`.
        handler: String,
        /// The panic message.
        message: String,
    },
    /// [`Server::set_applications`] moved a live client to another version of its
    /// application (the newest one matching the range its handshake asked for, spec §8).
    ApplicationMoved {
        /// The client's connection id.
        client: u64,
        /// The application name.
        name: String,
        /// The version it was served.
        from: semver::Version,
        /// The version it is served now.
        to: semver::Version,
    },
    /// An accept failed (the server carries on).
    Error {
        /// What failed.
        error: Arc<Error>,
    },
    /// The server has closed and every client is gone.
    Closed,
}

/// Options for a [`Server`]; [`listen`](Self::listen) starts it.
#[derive(Clone)]
#[must_use]
pub struct ServerOptions {
    apps: Vec<Arc<Application>>,
    auth: Option<Arc<dyn DynAuth>>,
    tls: Option<TlsServerConfig>,
    handshake_timeout: Duration,
    max_message_len: usize,
    client_queue: usize,
    close_grace: Duration,
    event_capacity: usize,
    unix_mode: Option<u32>,
    client_expiration: Duration,
    heartbeat: Heartbeat,
    max_buffered: usize,
    storage: Option<Storage>,
}

impl fmt::Debug for ServerOptions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ServerOptions")
            .field(
                "apps",
                &self.apps.iter().map(|a| a.to_string()).collect::<Vec<_>>(),
            )
            .field("auth", &self.auth.is_some())
            .field("tls", &self.tls.is_some())
            .field("handshake_timeout", &self.handshake_timeout)
            .field("max_message_len", &self.max_message_len)
            .field("close_grace", &self.close_grace)
            .field("storage", &self.storage)
            .finish_non_exhaustive()
    }
}

impl Default for ServerOptions {
    fn default() -> Self {
        Self::new()
    }
}

impl ServerOptions {
    /// No applications yet; no auth policy (only anonymous handshakes succeed); a 3 s
    /// handshake limit; 8 MiB messages; 1024 queued messages per client; a 5 s close grace.
    pub fn new() -> Self {
        Self {
            apps: Vec::new(),
            auth: None,
            tls: None,
            handshake_timeout: DEFAULT_HANDSHAKE_TIMEOUT,
            max_message_len: DEFAULT_MAX_MESSAGE_LEN,
            client_queue: 1024,
            close_grace: Duration::from_secs(5),
            event_capacity: DEFAULT_EVENT_CAPACITY,
            unix_mode: None,
            client_expiration: DEFAULT_CLIENT_EXPIRATION,
            heartbeat: Heartbeat::default(),
            max_buffered: DEFAULT_MAX_BUFFERED,
            storage: None,
        }
    }

    /// Keep sessions in `provider` too (spec §6.3, restore path B): a resume whose session
    /// the live index no longer knows (expired, another process, a restart) is restored
    /// from it. Share one provider between servers for failover. See [`crate::storage`]
    /// for what is written when. Default: none (only the live index).
    ///
    /// ```
    /// use connkit_jstp::{ServerOptions, storage::MemoryStorage};
    /// let storage = MemoryStorage::new();
    /// let a = ServerOptions::new().session_storage(storage.clone());
    /// let b = ServerOptions::new().session_storage(storage); // the same sessions
    /// # let _ = (a, b);
    /// ```
    pub fn session_storage(mut self, provider: impl SessionStorageProvider) -> Self {
        let (write_interval, timeout) = self
            .storage
            .as_ref()
            .map_or((DEFAULT_WRITE_INTERVAL, DEFAULT_STORAGE_TIMEOUT), |s| {
                (s.write_interval, s.timeout)
            });
        self.storage = Some(Storage {
            provider: Arc::new(provider),
            write_interval,
            timeout,
        });
        self
    }

    /// With a [`session_storage`](Self::session_storage): write a live session whose state
    /// changed at most this often (default 100 ms; one write in flight per session). A
    /// process killed abruptly leaves a state at most about this old behind.
    pub fn session_write_interval(mut self, interval: Duration) -> Self {
        if let Some(s) = &mut self.storage {
            s.write_interval = interval;
        }
        self
    }

    /// With a [`session_storage`](Self::session_storage): give up on one provider operation
    /// after this long (default 2 s; a lookup that times out is answered 11).
    pub fn storage_timeout(mut self, timeout: Duration) -> Self {
        if let Some(s) = &mut self.storage {
            s.timeout = timeout;
        }
        self
    }

    /// How long a disconnected client's session waits for a restore (Node's
    /// `clientExpirationTime`; default 1 h). Zero turns sessions off: a connection then
    /// closes with its transport and restores are answered 11.
    pub fn client_expiration_time(mut self, time: Duration) -> Self {
        self.client_expiration = time;
        self
    }

    /// Send `{ping:[id]}` to each client this often once its handshake is done (Node's
    /// `heartbeatInterval`; default off). Pongs also prune the session buffer.
    pub fn heartbeat_interval(mut self, interval: Duration) -> Self {
        self.heartbeat.interval = Some(interval);
        self
    }

    /// With a heartbeat: declare a client dead when nothing arrived from it for this long
    /// (checked at each beat; for example 2 × the interval). Invisible on the wire; the
    /// session then waits for a restore as after any transport loss. Default off, as in Node.
    pub fn heartbeat_timeout(mut self, timeout: Duration) -> Self {
        self.heartbeat.timeout = Some(timeout);
        self
    }

    /// At most this many unconfirmed messages per session (default
    /// [`DEFAULT_MAX_BUFFERED`]); past it the oldest is dropped and not replayed.
    pub fn session_buffer(mut self, messages: usize) -> Self {
        self.max_buffered = messages.max(1);
        self
    }

    /// Serve `app` (several versions of one name may be served; the handshake chooses).
    ///
    /// ```no_run
    /// # use connkit_jstp::{Application, ServerOptions};
    /// let opts = ServerOptions::new().application(Application::parse("calc@1.0.0")?);
    /// # Ok::<(), connkit_jstp::Error>(())
    /// ```
    pub fn application(mut self, app: Application) -> Self {
        self.apps.push(Arc::new(app));
        self
    }

    /// Serve every application of `apps`.
    pub fn applications(mut self, apps: &Applications) -> Self {
        self.apps.extend(apps.iter().cloned());
        self
    }

    /// Check credentials with `policy` (handshakes with a strategy other than anonymous).
    ///
    /// ```no_run
    /// # use connkit_jstp::{Logins, ServerOptions};
    /// let opts = ServerOptions::new().auth(Logins::new().user("user", "secret"));
    /// ```
    pub fn auth(mut self, policy: impl AuthPolicy) -> Self {
        self.auth = Some(Arc::new(policy));
        self
    }

    /// TLS for `tls://` and `wss://` endpoints.
    ///
    /// ```no_run
    /// # use connkit_jstp::ServerOptions;
    /// # use connkit_core::tls::TlsServerConfig;
    /// let opts = ServerOptions::new().tls(TlsServerConfig::from_pem_files("cert.pem", "key.pem")?);
    /// # Ok::<(), connkit_core::Error>(())
    /// ```
    pub fn tls(mut self, config: TlsServerConfig) -> Self {
        self.tls = Some(config);
        self
    }

    /// How long a connection has to complete its handshake, counted after its TLS and
    /// WebSocket handshakes (default 3 s, as Node).
    ///
    /// ```no_run
    /// # use connkit_jstp::ServerOptions;
    /// let opts = ServerOptions::new().handshake_timeout(std::time::Duration::from_secs(1));
    /// ```
    pub fn handshake_timeout(mut self, timeout: Duration) -> Self {
        self.handshake_timeout = timeout;
        self
    }

    /// The largest message accepted or sent (default 8 MiB, as Node).
    ///
    /// ```no_run
    /// # use connkit_jstp::ServerOptions;
    /// let opts = ServerOptions::new().max_message_len(1 << 20);
    /// ```
    pub fn max_message_len(mut self, len: usize) -> Self {
        self.max_message_len = len;
        self
    }

    /// How many messages may wait to be written to one client (default 1024).
    ///
    /// ```no_run
    /// # use connkit_jstp::ServerOptions;
    /// let opts = ServerOptions::new().client_queue(4096);
    /// ```
    pub fn client_queue(mut self, messages: usize) -> Self {
        self.client_queue = messages.max(1);
        self
    }

    /// How long [`Server::close`] (and a connection's own close) lets running methods finish
    /// before dropping connections (default 5 s).
    ///
    /// ```no_run
    /// # use connkit_jstp::ServerOptions;
    /// let opts = ServerOptions::new().close_grace(std::time::Duration::from_secs(1));
    /// ```
    pub fn close_grace(mut self, grace: Duration) -> Self {
        self.close_grace = grace;
        self
    }

    /// How many server events a slow subscriber may fall behind (default 256).
    ///
    /// ```no_run
    /// # use connkit_jstp::ServerOptions;
    /// let opts = ServerOptions::new().event_capacity(4096);
    /// ```
    pub fn event_capacity(mut self, capacity: usize) -> Self {
        self.event_capacity = capacity.max(1);
        self
    }

    /// The permission bits of Unix socket files (default: the umask decides).
    ///
    /// ```no_run
    /// # use connkit_jstp::ServerOptions;
    /// let opts = ServerOptions::new().unix_mode(0o600);
    /// ```
    pub fn unix_mode(mut self, mode: u32) -> Self {
        self.unix_mode = Some(mode);
        self
    }

    /// Bind every endpoint and start serving. Use port 0 for an ephemeral port; the bound
    /// endpoints are in [`Server::endpoints`].
    ///
    /// Cancel safe: if dropped, the endpoints bound so far are released.
    ///
    /// # Errors
    /// [`Error::DuplicateApplication`]; [`Error::InvalidOption`] with no endpoint;
    /// [`Error::Transport`] when an endpoint cannot be bound (nothing is left listening).
    pub async fn listen(self, endpoints: impl IntoIterator<Item = Endpoint>) -> Result<Server> {
        let mut index = Applications::new();
        for app in &self.apps {
            index.add_shared(Arc::clone(app))?;
        }
        let mut topts = TransportOptions::new()
            .ws_subprotocol(WS_SUBPROTOCOL)
            .ws_require_subprotocol(true)
            .max_message_len(self.max_message_len)
            .outbound_capacity(self.client_queue);
        if let Some(tls) = &self.tls {
            topts = topts.tls_server(tls.clone());
        }
        if let Some(mode) = self.unix_mode {
            topts = topts.unix_mode(mode);
        }
        let mut listeners = Vec::new();
        for ep in endpoints {
            listeners.push(listen(&ep, &topts).await?);
        }
        if listeners.is_empty() {
            return Err(Error::InvalidOption("no endpoint to listen on".into()));
        }
        let bound: Vec<Endpoint> = listeners
            .iter()
            .map(|l| l.local_endpoint().clone())
            .collect();
        let hub = EventHub::new(ServerState::Listening, self.event_capacity);
        let shared = Arc::new(ServerShared {
            apps: RwLock::new(Arc::new(index)),
            auth: self.auth.clone(),
            handshake_timeout: self.handshake_timeout,
            max_message_len: self.max_message_len,
            close_grace: self.close_grace,
            hub,
            clients: Mutex::new(HashMap::new()),
            stop_accept: CancellationToken::new(),
            stop_clients: CancellationToken::new(),
            tasks: TaskTracker::new(),
            endpoints: bound.clone(),
            sessions: Mutex::new(HashMap::new()),
            client_expiration: self.client_expiration,
            heartbeat: self.heartbeat,
            max_buffered: self.max_buffered,
            storage: self.storage.clone(),
        });
        for listener in listeners {
            let endpoint = listener.local_endpoint().clone();
            info!(%endpoint, "jstp server listening");
            shared.hub.emit(ServerEvent::Listening {
                endpoint: endpoint.clone(),
            });
            let span = tracing::info_span!("connkit.jstp.server", %endpoint);
            shared
                .tasks
                .spawn(accept_loop(Arc::clone(&shared), listener).instrument(span));
        }
        Ok(Server {
            handle: Arc::new(Handle { shared }),
        })
    }
}

pub(crate) struct ServerShared {
    apps: RwLock<Arc<Applications>>,
    auth: Option<Arc<dyn DynAuth>>,
    handshake_timeout: Duration,
    max_message_len: usize,
    close_grace: Duration,
    hub: EventHub<ServerState, ServerEvent>,
    clients: Mutex<HashMap<u64, ClientConnection>>,
    stop_accept: CancellationToken,
    stop_clients: CancellationToken,
    tasks: TaskTracker,
    endpoints: Vec<Endpoint>,
    /// Live and disconnected sessions by id (restore path A).
    sessions: Mutex<HashMap<String, mpsc::Sender<Attach>>>,
    client_expiration: Duration,
    heartbeat: Heartbeat,
    max_buffered: usize,
    storage: Option<Storage>,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

impl Observer for ServerShared {
    fn rejected(&self, conn: &Connection, reason: &str) {
        if self.hub.subscriber_count() > 0 {
            self.hub.emit(ServerEvent::Rejected {
                client: conn.id(),
                reason: reason.to_owned(),
            });
        }
    }

    fn panicked(&self, conn: &Connection, handler: &str, message: &str) {
        self.hub.emit(ServerEvent::HandlerPanicked {
            client: conn.id(),
            handler: handler.to_owned(),
            message: message.to_owned(),
        });
    }

    fn remote_event(&self, conn: &Connection, event: &RemoteEvent) {
        if self.hub.subscriber_count() > 0 {
            self.hub.emit(ServerEvent::Event {
                client: conn.id(),
                event: event.clone(),
            });
        }
    }

    fn closed(&self, conn: &Connection, error: Option<Arc<Error>>) {
        lock(&self.sessions).remove(conn.session_id());
        if lock(&self.clients).remove(&conn.id()).is_some() {
            self.hub.emit(ServerEvent::Disconnect {
                client: conn.id(),
                error,
            });
        }
    }

    fn detached(&self, conn: &Connection) {
        lock(&self.clients).remove(&conn.id());
        self.hub.emit(ServerEvent::Disconnect {
            client: conn.id(),
            error: None,
        });
    }

    fn restored(&self, conn: &Connection) {
        lock(&self.clients).insert(conn.id(), conn.clone());
        self.hub.emit(ServerEvent::Reconnect {
            client: conn.clone(),
        });
    }
}

/// Dropping the last [`Server`] clone stops the server at once.
struct Handle {
    shared: Arc<ServerShared>,
}

impl Drop for Handle {
    fn drop(&mut self) {
        self.shared.stop_accept.cancel();
        self.shared.stop_clients.cancel();
    }
}

/// A running JSTP server. Cheap to clone; dropping the last clone stops it at once (use
/// [`close`](Self::close) for a graceful stop).
#[derive(Clone)]
pub struct Server {
    handle: Arc<Handle>,
}

impl fmt::Debug for Server {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let s = &self.handle.shared;
        f.debug_struct("Server")
            .field("endpoints", &s.endpoints)
            .field("state", &s.hub.current_state())
            .field("clients", &lock(&s.clients).len())
            .finish()
    }
}

impl Server {
    fn shared(&self) -> &Arc<ServerShared> {
        &self.handle.shared
    }

    /// The bound endpoints, in the order given (port 0 replaced by the real port).
    #[must_use]
    pub fn endpoints(&self) -> &[Endpoint] {
        &self.shared().endpoints
    }

    /// The connected clients (handshake done).
    #[must_use]
    pub fn clients(&self) -> Vec<ClientConnection> {
        lock(&self.shared().clients).values().cloned().collect()
    }

    /// A connected client by connection id.
    #[must_use]
    pub fn client(&self, id: u64) -> Option<ClientConnection> {
        lock(&self.shared().clients).get(&id).cloned()
    }

    /// Replace the applications offered to new handshakes (Node's `updateApplications`),
    /// and move each connected client to the newest version matching what its handshake
    /// asked for (Node's `updateConnectionsApi`, spec §8): a range is matched again; no
    /// version means the major of the version it got (`'2'` for 2.1.0); an exact version
    /// stays where it is. A client keeps its application when nothing matches, or when the
    /// match is the same version of the same object. Each move emits
    /// [`ServerEvent::ApplicationMoved`]; calls already running finish on the old version,
    /// the next call, event or inspect uses the new one. Clients that are disconnected
    /// (waiting for a session restore) keep theirs.
    ///
    /// # Errors
    /// Never fails today; returns `Result` for the validation a future index may do.
    pub fn set_applications(&self, apps: Applications) -> Result<()> {
        let apps = Arc::new(apps);
        *self
            .shared()
            .apps
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = Arc::clone(&apps);
        for client in self.clients() {
            let current = client.application();
            let (name, requested) = client.requested_application();
            let range = match requested {
                Some(v) if crate::semver_range::is_exact(v) => continue,
                Some(v) => v.to_owned(),
                None => current.version().major.to_string(),
            };
            let Some(next) = apps.select(name, Some(&range)) else {
                continue;
            };
            if Arc::ptr_eq(&next, &current) {
                continue;
            }
            let (from, to) = (current.version().clone(), next.version().clone());
            let name = name.to_owned();
            client.move_to(next);
            debug!(client = client.id(), %name, %from, %to, "client moved to another version");
            self.shared().hub.emit(ServerEvent::ApplicationMoved {
                client: client.id(),
                name,
                from,
                to,
            });
        }
        Ok(())
    }

    /// Send the event `interface.event(args…)` to every connected client. The arguments are
    /// serialized once; each client's message takes that connection's next id. Returns how
    /// many clients it was queued for.
    ///
    /// Cancel safe: dropping the future stops queueing to the clients not reached yet.
    ///
    /// # Errors
    /// [`Error::Serialize`] for NaN or ±Infinity (nothing is sent).
    pub async fn broadcast(
        &self,
        interface: &str,
        event: &str,
        args: impl AsRef<[Value]>,
    ) -> Result<usize> {
        let mut tail = BytesMut::with_capacity(32);
        message::write_target_tail(&mut tail, interface, event, args.as_ref())?;
        let tail = tail.freeze();
        let mut sent = 0;
        for client in self.clients() {
            if client
                .send_tail(Kind::Event, Tail::Shared(tail.clone()), false)
                .await
                .is_ok()
            {
                sent += 1;
            }
        }
        Ok(sent)
    }

    /// [`broadcast`](Self::broadcast) with arguments from a `serde` value that serializes
    /// to an array.
    ///
    /// Cancel safe as [`broadcast`](Self::broadcast).
    ///
    /// # Errors
    /// As [`broadcast`](Self::broadcast), and [`Error::Convert`].
    pub async fn broadcast_typed<A: Serialize + ?Sized>(
        &self,
        interface: &str,
        event: &str,
        args: &A,
    ) -> Result<usize> {
        let args = crate::connection::args_to_values(args)?;
        self.broadcast(interface, event, args).await
    }

    /// Server events from now on.
    #[must_use]
    pub fn events(&self) -> EventStream<ServerEvent> {
        self.shared().hub.subscribe()
    }

    /// The current state, kept up to date.
    #[must_use]
    pub fn state(&self) -> watch::Receiver<ServerState> {
        self.shared().hub.state()
    }

    /// Close gracefully: stop accepting (Unix socket files are removed at once), close each
    /// client (running methods get the close grace period, queued messages are written),
    /// then drop what is left. Emits [`ServerEvent::Closed`] once. Idempotent.
    ///
    /// Cancel safe: the close goes on in the background if this future is dropped.
    pub async fn close(&self) {
        let shared = Arc::clone(self.shared());
        let mut state = shared.hub.state();
        let first = shared.hub.modify_state(|s| {
            if *s == ServerState::Listening {
                *s = ServerState::Closing;
                true
            } else {
                false
            }
        });
        if first {
            tokio::spawn(async move { shared.close_gracefully().await });
        }
        let _ = state.wait_for(|s| *s == ServerState::Closed).await;
    }
}

impl ServerShared {
    async fn close_gracefully(self: Arc<Self>) {
        self.stop_accept.cancel();
        // Sessions waiting for a restore end now (their attach channels close).
        lock(&self.sessions).clear();
        let clients: Vec<ClientConnection> = lock(&self.clients).values().cloned().collect();
        for c in &clients {
            c.request_close();
        }
        drop(clients);
        self.tasks.close();
        let limit = self.close_grace + Duration::from_millis(500);
        if tokio::time::timeout(limit, self.tasks.wait())
            .await
            .is_err()
        {
            debug!("close grace period over; dropping the remaining clients");
            self.stop_clients.cancel();
            self.tasks.wait().await;
        }
        self.hub.set_state(ServerState::Closed);
        self.hub.emit(ServerEvent::Closed);
        info!("jstp server closed");
    }

    fn failed(&self, peer: &str, error: Error) {
        debug!(%peer, error = %error, "handshake failed");
        self.hub.emit(ServerEvent::HandshakeFailed {
            peer: peer.to_owned(),
            error: Arc::new(error),
        });
    }
}

impl Connection {
    /// Ask the task to close, without waiting (for the server's shutdown).
    fn request_close(&self) {
        let _ = self.command_sender().try_send(Command::Close);
    }
}

async fn accept_loop(shared: Arc<ServerShared>, listener: Listener) {
    loop {
        let accepted = tokio::select! {
            biased;
            () = shared.stop_accept.cancelled() => break,
            r = listener.accept() => r,
        };
        match accepted {
            Ok(incoming) => {
                let s = Arc::clone(&shared);
                let span = tracing::debug_span!("connkit.jstp.conn", peer = %incoming.peer());
                shared.tasks.spawn(serve(s, incoming).instrument(span));
            }
            Err(e) => {
                warn!(error = %e, "accept failed");
                shared.hub.emit(ServerEvent::Error {
                    error: Arc::new(e.into()),
                });
                // Do not spin on a persistent error such as EMFILE.
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    }
    drop(listener); // removes a Unix socket file
}

/// Why a handshake failed, and the reply to send before closing, if any.
struct Failure {
    error: Error,
    reply: Option<RemoteError>,
}

impl Failure {
    fn silent(error: Error) -> Self {
        Self { error, reply: None }
    }

    fn answer(reply: RemoteError) -> Self {
        Self {
            error: Error::Remote(reply.clone()),
            reply: Some(reply),
        }
    }
}

struct Accepted {
    app: Arc<Application>,
    requested: (String, Option<String>),
    username: Option<String>,
    session_id: String,
    /// A restore: the session's task and the client's `receivedCount`.
    restore: Option<(mpsc::Sender<Attach>, u64)>,
    /// A restore from the session storage (path B) and the client's `receivedCount`.
    stored: Option<(StoredSession, u64)>,
}

async fn serve(shared: Arc<ServerShared>, incoming: Incoming) {
    let peer = incoming.peer().to_owned();
    let stop = shared.stop_clients.child_token();
    let conn = tokio::select! {
        () = stop.cancelled() => return,
        c = incoming.establish() => c,
    };
    let conn = match conn {
        Ok(c) => c,
        Err(e) => return shared.failed(&peer, e.into()),
    };
    let scheme = conn.info().scheme();
    let (tx, mut rx) = conn.split();
    let outcome = tokio::select! {
        () = stop.cancelled() => return,
        r = tokio::time::timeout(shared.handshake_timeout, handshake(&shared, &tx, &mut rx, &peer, scheme)) => r,
    };
    let accepted = match outcome {
        Err(_) => {
            debug!("handshake timeout");
            tx.close().await;
            let _ = tokio::time::timeout(Duration::from_secs(1), tx.closed()).await;
            return shared.failed(&peer, Error::HandshakeTimeout(shared.handshake_timeout));
        }
        Ok(Err(failure)) => {
            if let Some(reply) = &failure.reply {
                let mut frame = b"{handshake:[0],error:".to_vec();
                if value::serialize_into(&reply.to_value(), &mut frame).is_ok() {
                    frame.push(b'}');
                    let _ = tx.send(frame).await;
                }
            }
            tx.close().await;
            let _ = tokio::time::timeout(Duration::from_secs(1), tx.closed()).await;
            return shared.failed(&peer, failure.error);
        }
        Ok(Ok(a)) => a,
    };
    if let Some((attach, peer_received)) = accepted.restore {
        // Path A: the session's task takes the new transport (dropping the old one first)
        // and answers the handshake itself, so that the reply precedes the replay.
        let sent = attach
            .send(Attach {
                tx: tx.clone(),
                rx,
                peer_received,
                send_handshake_reply: true,
            })
            .await;
        if sent.is_err() {
            let _ = tx
                .send(format!("{{handshake:[0],error:[{ERR_AUTH_FAILED}]}}"))
                .await;
            tx.close().await;
            let _ = tokio::time::timeout(Duration::from_secs(1), tx.closed()).await;
            return shared.failed(&peer, Error::Remote(RemoteError::new(ERR_AUTH_FAILED)));
        }
        return;
    }
    let remote_events = crate::connection::RemoteEventsTx::new(REMOTE_EVENT_CAPACITY);
    let state = Shared {
        id: next_connection_id(),
        role: Role::Server,
        scheme,
        peer,
        app: accepted.app.into(),
        remote_app: accepted.requested,
        username: accepted.username,
        session_id: accepted.session_id.into(),
        hub: EventHub::new(ConnectionState::Connected, DEFAULT_EVENT_CAPACITY),
        remote_events,
        stop,
        closing: Default::default(),
        max_message_len: shared.max_message_len,
        replies: Default::default(),
    };
    let observer: Arc<dyn Observer> = Arc::clone(&shared) as Arc<dyn Observer>;
    let (client, mut parts) = new_connection(state, Some(observer), shared.close_grace);
    parts.heartbeat = shared.heartbeat;
    if !shared.client_expiration.is_zero() {
        let (attach_tx, attach_rx) = mpsc::channel(1);
        lock(&shared.sessions).insert(client.session_id().to_owned(), attach_tx);
        parts.resume = Resume::Server {
            attach: attach_rx,
            expiration: shared.client_expiration,
        };
        parts.max_buffered = shared.max_buffered;
        if let Some(storage) = &shared.storage {
            let app = client.application();
            let meta = SessionMeta {
                id: client.session_id().to_owned(),
                username: client.username().map(str::to_owned),
                app_name: app.name().to_owned(),
                app_version: app.version().to_string(),
            };
            parts.persist = Some(Hook::spawn(
                storage,
                meta,
                parts.weak_tx.clone(),
                &shared.tasks,
                shared.stop_accept.clone(),
            ));
        }
    }
    if let Some((stored, peer_received)) = accepted.stored {
        // Path B: a new connection continues the stored session; the task answers the
        // handshake and replays, and the observer announces it as a reconnect.
        debug!(id = client.id(), session = %client.session_id(), "session restored from storage");
        let mut snapshot = stored.to_snapshot();
        // A stored copy may be older than what the client saw (its server died between
        // two writes): continue below the last id the client received, too.
        let seen = i64::try_from(peer_received).unwrap_or(i64::MAX);
        snapshot.next_id = snapshot
            .next_id
            .min(seen.saturating_neg().saturating_sub(1));
        parts.restore_from = Some(snapshot);
        if parts.max_buffered == 0 {
            parts.max_buffered = shared.max_buffered;
        }
        let mut task = Task::new(parts, tx, rx);
        task.replay(peer_received, true);
        drop(client);
        return task.run().await;
    }
    lock(&shared.clients).insert(client.id(), client.clone());
    debug!(id = client.id(), app = %client.application(), "client connected");
    shared.hub.emit(ServerEvent::Connect {
        client: client.clone(),
    });
    drop(client);
    Task::new(parts, tx, rx).run().await;
}

/// The server side of the handshake (spec §4.2).
async fn handshake(
    shared: &ServerShared,
    tx: &MessageSender,
    rx: &mut MessageReceiver,
    peer: &str,
    scheme: Scheme,
) -> std::result::Result<Accepted, Failure> {
    let (app_name, version, strategy) = loop {
        let frame = match rx.next().await {
            None => {
                return Err(Failure::silent(Error::Protocol(
                    "the connection closed before the handshake".into(),
                )));
            }
            Some(Err(e)) => return Err(Failure::silent(e.into())),
            Some(Ok(f)) => f,
        };
        let parsed = value::parse(&frame).map_err(|e| {
            Failure::silent(Error::Protocol(format!("a message does not parse: {e}")))
        })?;
        match Message::from_value(parsed) {
            Ok(Message::Heartbeat) => {}
            Err(MessageError::NotAnObject(_)) if scheme.is_websocket() => {}
            Ok(Message::HandshakeRequest {
                app,
                version,
                strategy,
                ..
            }) => break (app, version, strategy),
            Ok(other) => {
                return Err(Failure::silent(Error::Protocol(format!(
                    "a `{}` message before the handshake",
                    other.kind()
                ))));
            }
            Err(e) => return Err(Failure::silent(Error::Protocol(e.to_string()))),
        }
    };
    let strategy_name = strategy
        .as_ref()
        .map_or_else(|| "anonymous".to_owned(), |(s, _)| s.clone());
    if shared.hub.subscriber_count() > 0 {
        shared.hub.emit(ServerEvent::HandshakeRequest {
            peer: peer.to_owned(),
            app: app_name.clone(),
            version: version.clone(),
            strategy: strategy_name.clone(),
        });
    }
    let apps = Arc::clone(
        &shared
            .apps
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner),
    );
    let app = apps
        .select(&app_name, version.as_deref())
        .ok_or_else(|| Failure::answer(RemoteError::new(ERR_APP_NOT_FOUND)))?;
    let username = match strategy {
        None => None,
        Some((name, _)) if name == "anonymous" => None,
        // Resume (spec §6.3, path A): `session:['<id>',<receivedCount>]`.
        Some((name, credentials)) if name == "session" => {
            let unknown = || Failure::answer(RemoteError::new(ERR_AUTH_FAILED));
            let id = credentials
                .at(0)
                .and_then(Value::as_str)
                .ok_or_else(unknown)?;
            let received = credentials
                .at(1)
                .and_then(Value::as_f64)
                .filter(|n| n.is_finite() && *n >= 0.0)
                .map_or(0, |n| n as u64);
            let attach = lock(&shared.sessions).get(id).cloned();
            let Some(attach) = attach else {
                // Path B: the session storage.
                let Some(storage) = shared
                    .storage
                    .as_ref()
                    .filter(|_| !shared.client_expiration.is_zero())
                else {
                    return Err(unknown());
                };
                let stored = match storage.load(id).await {
                    Ok(Some(s)) => s,
                    Ok(None) => return Err(unknown()),
                    Err(e) => {
                        warn!(error = %e, "session storage lookup failed; answering 11");
                        return Err(unknown());
                    }
                };
                return Ok(Accepted {
                    app,
                    requested: (app_name, version),
                    username: stored.username.clone(),
                    session_id: id.to_owned(),
                    restore: None,
                    stored: Some((stored, received)),
                });
            };
            return Ok(Accepted {
                app,
                requested: (app_name, version),
                username: None,
                session_id: id.to_owned(),
                restore: Some((attach, received)),
                stored: None,
            });
        }
        Some((name, credentials)) => {
            let Some(auth) = &shared.auth else {
                return Err(Failure::answer(RemoteError::new(ERR_AUTH_FAILED)));
            };
            let request = AuthRequest {
                application: Arc::clone(&app),
                strategy: name,
                credentials,
                peer: peer.to_owned(),
                scheme,
            };
            match crate::app::run_caught(auth.authenticate_boxed(&request)).await {
                Ok(Ok(user)) if !user.is_empty() => Some(user),
                Ok(Ok(_)) => return Err(Failure::answer(RemoteError::auth_failed())),
                Ok(Err(e)) => return Err(Failure::answer(e)),
                Err(panic) => {
                    warn!(%panic, "the auth policy panicked");
                    return Err(Failure::answer(RemoteError::auth_failed()));
                }
            }
        }
    };
    let session_id = uuid::Uuid::new_v4().hyphenated().to_string();
    let mut frame = b"{handshake:[0],ok:".to_vec();
    message::write_str(&mut frame, &session_id);
    frame.push(b'}');
    tx.send(frame)
        .await
        .map_err(|e| Failure::silent(e.into()))?;
    Ok(Accepted {
        app,
        requested: (app_name, version),
        username,
        session_id,
        restore: None,
        stored: None,
    })
}
