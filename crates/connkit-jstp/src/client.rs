//! The JSTP client: connect to an application on any endpoint, handshake with the credentials
//! a [`ConnectPolicy`] decides (anonymous, `login`, a custom strategy, a session resume), then
//! call, listen and inspect through a [`Client`].

use crate::app::Application;
use crate::connection::{
    Attach, Connection, ConnectionState, Heartbeat, REMOTE_EVENT_CAPACITY, Redial, Resume, Role,
    Shared, Task, new_connection, next_connection_id,
};
use crate::error::{ERR_NO_HANDSHAKE_RESPONSE, ERR_NOT_A_SERVER, Error, RemoteError, Result};
use crate::message::{Message, MessageError};
use crate::policy::{
    Anonymous, ConnectPolicy, ConnectRequest, Credentials, CustomStrategy, Login, SessionRef,
};
use crate::semver_range::Range;
use crate::server::{DEFAULT_MAX_MESSAGE_LEN, WS_SUBPROTOCOL};
use crate::session::{DEFAULT_MAX_BUFFERED, Reconnect, SessionSnapshot};
use crate::value::{self, Value};
use connkit_core::Endpoint;
use connkit_core::events::{DEFAULT_EVENT_CAPACITY, EventHub};
use connkit_core::tls::TlsClientConfig;
use connkit_core::transport::{MessageReceiver, MessageSender, TransportOptions, connect};
use futures_util::StreamExt;
use std::fmt;
use std::sync::Arc;
use std::time::Duration;
use tracing::{Instrument, debug};

/// Which application to ask for: a name and optionally a version or node-semver range.
///
/// From `"name"`, `"name@range"` (split at the **last** `@`, so `"@scope/app@1.x"` works;
/// `"name@"` asks for no version), `(name, range)` or `(name, semver::Version)`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AppTarget {
    /// The application name.
    pub name: String,
    /// The version or range (`None`: the latest).
    pub version: Option<String>,
}

impl AppTarget {
    /// `name` with `version` (`None` for the latest).
    #[must_use]
    pub fn new(name: impl Into<String>, version: Option<String>) -> Self {
        Self {
            name: name.into(),
            version: version.filter(|v| !v.is_empty()),
        }
    }
}

impl From<&str> for AppTarget {
    fn from(s: &str) -> Self {
        match s.rsplit_once('@') {
            Some((name, version)) => Self::new(name, Some(version.to_owned())),
            None => Self::new(s, None),
        }
    }
}

impl From<String> for AppTarget {
    fn from(s: String) -> Self {
        Self::from(s.as_str())
    }
}

impl From<&String> for AppTarget {
    fn from(s: &String) -> Self {
        Self::from(s.as_str())
    }
}

impl From<(&str, &str)> for AppTarget {
    fn from((name, version): (&str, &str)) -> Self {
        Self::new(name, Some(version.to_owned()))
    }
}

impl From<(&str, semver::Version)> for AppTarget {
    fn from((name, version): (&str, semver::Version)) -> Self {
        Self::new(name, Some(version.to_string()))
    }
}

impl fmt::Display for AppTarget {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.version {
            Some(v) => write!(f, "{}@{v}", self.name),
            None => f.write_str(&self.name),
        }
    }
}

/// Options for a [`Client`]; [`connect`](Self::connect) opens one.
#[derive(Clone)]
#[must_use]
pub struct ClientOptions {
    application: Arc<Application>,
    policy: Arc<dyn ConnectPolicy>,
    tls: Option<TlsClientConfig>,
    connect_timeout: Duration,
    max_message_len: usize,
    queue: usize,
    close_grace: Duration,
    reconnect: Option<Reconnect>,
    fallbacks: Vec<Endpoint>,
    heartbeat: Heartbeat,
    max_buffered: usize,
    resume_from: Option<SessionSnapshot>,
}

impl fmt::Debug for ClientOptions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ClientOptions")
            .field("application", &self.application.to_string())
            .field("policy", &self.policy)
            .field("tls", &self.tls.is_some())
            .field("connect_timeout", &self.connect_timeout)
            .finish_non_exhaustive()
    }
}

impl Default for ClientOptions {
    fn default() -> Self {
        Self::new()
    }
}

impl ClientOptions {
    /// Anonymous; the empty client application `jstp` 1.0.0; a 30 s limit for connecting
    /// and handshaking; 8 MiB messages; 1024 queued messages; a 2 s close grace.
    pub fn new() -> Self {
        Self {
            application: Arc::new(Application::empty_client()),
            policy: Arc::new(Anonymous),
            tls: None,
            connect_timeout: Duration::from_secs(30),
            max_message_len: DEFAULT_MAX_MESSAGE_LEN,
            queue: 1024,
            close_grace: Duration::from_secs(2),
            reconnect: None,
            fallbacks: Vec::new(),
            heartbeat: Heartbeat::default(),
            max_buffered: DEFAULT_MAX_BUFFERED,
            resume_from: None,
        }
    }

    /// Resume an exported session (from
    /// [`Connection::export_session`](crate::Connection::export_session), possibly in
    /// another process) instead of starting a new one: the handshake uses the `session`
    /// strategy, and the unconfirmed messages of the snapshot are sent again. A server
    /// that does not know the session answers 11 ([`Error::Remote`]).
    pub fn resume(mut self, session: SessionSnapshot) -> Self {
        self.resume_from = Some(session);
        self
    }

    /// Keep the session across transport losses (spec §6, §9): when the transport closes
    /// without [`Connection::close`], the connection buffers what is originated, reconnects
    /// on `schedule` with the credentials of the [`ConnectPolicy`] (the built-ins resume the
    /// session), and replays what the server did not confirm. When the server no longer
    /// knows the session (`error:[11]`), [`Reconnect::on_unknown_session`] decides: a new
    /// session (default) or close. Off by default (a deliberate difference from Node, which
    /// always reconnects); [`Reconnect::new`] is Node's schedule.
    pub fn reconnect(mut self, schedule: Reconnect) -> Self {
        self.reconnect = Some(schedule);
        self
    }

    /// More endpoints of servers that share sessions: reconnect attempts rotate through the
    /// endpoint passed to [`connect`](Self::connect) and then these, in order.
    pub fn fallback_endpoints(mut self, endpoints: impl IntoIterator<Item = Endpoint>) -> Self {
        self.fallbacks = endpoints.into_iter().collect();
        self
    }

    /// Send `{ping:[id]}` this often (Node's `client.heartbeatInterval`; default off).
    pub fn heartbeat_interval(mut self, interval: Duration) -> Self {
        self.heartbeat.interval = Some(interval);
        self
    }

    /// With a heartbeat: declare the server dead when nothing arrived from it for this long
    /// (checked at each beat). Invisible on the wire; with [`reconnect`](Self::reconnect)
    /// the reconnector then starts, otherwise the connection closes. Default off.
    pub fn heartbeat_timeout(mut self, timeout: Duration) -> Self {
        self.heartbeat.timeout = Some(timeout);
        self
    }

    /// At most this many unconfirmed messages kept for replay (default
    /// [`DEFAULT_MAX_BUFFERED`]); past it the oldest is dropped.
    pub fn session_buffer(mut self, messages: usize) -> Self {
        self.max_buffered = messages.max(1);
        self
    }

    /// The client's own application: the methods the server may call and the event
    /// handlers.
    ///
    /// ```no_run
    /// # use connkit_jstp::{Application, ClientOptions, Interface};
    /// let app = Application::new("client", semver::Version::new(1, 0, 0)).interface(
    ///     "clientSide",
    ///     Interface::new().method("greet", |_ctx, (who,): (String,)| async move {
    ///         Ok(format!("hello {who}"))
    ///     }),
    /// );
    /// let opts = ClientOptions::new().application(app);
    /// ```
    pub fn application(mut self, app: Application) -> Self {
        self.application = Arc::new(app);
        self
    }

    /// Use the `login` strategy: `{handshake:[0,'app'],login:['user','password']}`
    /// (shorthand for [`connect_policy`](Self::connect_policy) with [`Login`]).
    ///
    /// ```no_run
    /// # use connkit_jstp::ClientOptions;
    /// let opts = ClientOptions::new().login("user", "secret");
    /// ```
    pub fn login(mut self, user: impl Into<String>, password: impl Into<String>) -> Self {
        self.policy = Arc::new(Login::new(user, password));
        self
    }

    /// Use a custom strategy: `{handshake:[0,'app'],<name>:<credentials>}`, decided by the
    /// server's auth policy (shorthand for [`connect_policy`](Self::connect_policy) with
    /// [`CustomStrategy`]).
    ///
    /// ```no_run
    /// # use connkit_jstp::{ClientOptions, Value};
    /// let opts = ClientOptions::new().strategy("token", Value::from(vec!["abc"]));
    /// ```
    pub fn strategy(mut self, name: impl Into<String>, credentials: Value) -> Self {
        self.policy = Arc::new(CustomStrategy::new(name, credentials));
        self
    }

    /// Decide the credentials of every handshake, the first one and each reconnect (Node's
    /// `client.connectPolicy`; default [`Anonymous`]). See [`crate::policy`].
    pub fn connect_policy(mut self, policy: impl ConnectPolicy) -> Self {
        self.policy = Arc::new(policy);
        self
    }

    /// TLS for `tls://` and `wss://` endpoints.
    ///
    /// ```no_run
    /// # use connkit_jstp::ClientOptions;
    /// # use connkit_core::tls::TlsClientConfig;
    /// let tls = TlsClientConfig::from_root_pem_file("ca.pem")?.server_name("localhost");
    /// let opts = ClientOptions::new().tls(tls);
    /// # Ok::<(), connkit_core::Error>(())
    /// ```
    pub fn tls(mut self, config: TlsClientConfig) -> Self {
        self.tls = Some(config);
        self
    }

    /// The time limit for connecting and handshaking together (default 30 s).
    ///
    /// ```no_run
    /// # use connkit_jstp::ClientOptions;
    /// let opts = ClientOptions::new().connect_timeout(std::time::Duration::from_secs(5));
    /// ```
    pub fn connect_timeout(mut self, timeout: Duration) -> Self {
        self.connect_timeout = timeout;
        self
    }

    /// The largest message accepted or sent (default 8 MiB).
    ///
    /// ```no_run
    /// # use connkit_jstp::ClientOptions;
    /// let opts = ClientOptions::new().max_message_len(1 << 20);
    /// ```
    pub fn max_message_len(mut self, len: usize) -> Self {
        self.max_message_len = len;
        self
    }

    /// How many messages may wait to be written (default 1024).
    ///
    /// ```no_run
    /// # use connkit_jstp::ClientOptions;
    /// let opts = ClientOptions::new().queue(4096);
    /// ```
    pub fn queue(mut self, messages: usize) -> Self {
        self.queue = messages.max(1);
        self
    }

    /// How long [`Connection::close`] waits for running methods and owed replies (default
    /// 2 s).
    ///
    /// ```no_run
    /// # use connkit_jstp::ClientOptions;
    /// let opts = ClientOptions::new().close_grace(std::time::Duration::from_millis(500));
    /// ```
    pub fn close_grace(mut self, grace: Duration) -> Self {
        self.close_grace = grace;
        self
    }

    /// Connect to `endpoint` and handshake for `app` (`"name"`, `"name@range"`,
    /// `("name", "range")`, …).
    ///
    /// The range is checked locally first (node-semver syntax); an invalid one fails with
    /// [`Error::InvalidRange`] and nothing is sent.
    ///
    /// Cancel safe: if dropped, the half-open connection is dropped with it.
    ///
    /// # Errors
    /// [`Error::InvalidApplication`] for an empty name; [`Error::InvalidRange`];
    /// [`Error::Transport`] (refused, TLS, WebSocket upgrade
    /// refused…); [`Error::Remote`] when the server refuses (10: no such application or
    /// version, 11: credentials refused) or with −2 when it closes before replying;
    /// [`Error::HandshakeTimeout`] past the connect timeout; [`Error::Protocol`].
    pub async fn connect(&self, endpoint: &Endpoint, app: impl Into<AppTarget>) -> Result<Client> {
        let target: AppTarget = app.into();
        if target.name.is_empty() {
            // Node reads a handshake whose app name is empty as a reply (quirk 15).
            return Err(Error::InvalidApplication(target.to_string()));
        }
        if let Some(range) = &target.version
            && Range::parse(range).is_err()
        {
            return Err(Error::InvalidRange {
                range: range.clone(),
            });
        }
        let span = tracing::debug_span!("connkit.jstp.client", %endpoint, app = %target);
        tokio::time::timeout(self.connect_timeout, self.connect_inner(endpoint, target))
            .instrument(span)
            .await
            .map_err(|_| Error::HandshakeTimeout(self.connect_timeout))?
    }

    /// Open a transport to `endpoint` and handshake with `credentials`: returns the
    /// transport and the reply (`ok`: the session id, or the server's `receivedCount` for a
    /// resume).
    async fn handshake_on(
        &self,
        endpoint: &Endpoint,
        target: &AppTarget,
        credentials: &Credentials,
    ) -> Result<(
        MessageSender,
        MessageReceiver,
        connkit_core::Scheme,
        String,
        String,
    )> {
        let (tx, mut rx, scheme, peer) = self.open(endpoint).await?;
        let request = Message::HandshakeRequest {
            id: 0,
            app: target.name.clone(),
            version: target.version.clone(),
            strategy: credentials.to_strategy(),
        };
        tx.send(request.to_bytes()?).await?;
        let reply = handshake_reply(&tx, &mut rx, scheme.is_websocket()).await?;
        Ok((tx, rx, scheme, peer, reply))
    }

    async fn open(
        &self,
        endpoint: &Endpoint,
    ) -> Result<(MessageSender, MessageReceiver, connkit_core::Scheme, String)> {
        let mut topts = TransportOptions::new()
            .ws_subprotocol(WS_SUBPROTOCOL)
            .max_message_len(self.max_message_len)
            .outbound_capacity(self.queue)
            .connect_timeout(None);
        if let Some(tls) = &self.tls {
            topts = topts.tls_client(tls.clone());
        }
        let conn = connect(endpoint, &topts).await?;
        let scheme = conn.info().scheme();
        let peer = conn.info().peer().to_owned();
        let (tx, rx) = conn.split();
        Ok((tx, rx, scheme, peer))
    }

    fn redial(&self, endpoint: &Endpoint, target: &AppTarget) -> Redial {
        let opts = self.clone();
        let target = target.clone();
        let endpoints: Arc<[Endpoint]> = std::iter::once(endpoint.clone())
            .chain(self.fallbacks.iter().cloned())
            .collect();
        let turn = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        Arc::new(move |session: Option<(String, u64)>, attempt: u32| {
            let n = turn.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            let endpoint = endpoints[n % endpoints.len()].clone();
            let opts = opts.clone();
            let target = target.clone();
            Box::pin(async move {
                let credentials = opts.policy.credentials(&ConnectRequest {
                    app: &target,
                    endpoint: &endpoint,
                    attempt,
                    session: session.as_ref().map(|(id, received)| SessionRef {
                        id,
                        received: *received,
                    }),
                });
                let resume = matches!(credentials, Credentials::Session { .. });
                debug!(%endpoint, attempt, resume, "reconnecting");
                let (tx, rx, _, _, reply) = tokio::time::timeout(
                    opts.connect_timeout,
                    opts.handshake_on(&endpoint, &target, &credentials),
                )
                .await
                .map_err(|_| Error::HandshakeTimeout(opts.connect_timeout))??;
                let (peer_received, new_session) = if resume {
                    (parse_received(&reply), None)
                } else {
                    (0, Some(reply))
                };
                Ok((
                    Attach {
                        tx,
                        rx,
                        peer_received,
                        send_handshake_reply: false,
                    },
                    new_session,
                ))
            })
        })
    }

    async fn connect_inner(&self, endpoint: &Endpoint, target: AppTarget) -> Result<Client> {
        let redial = self
            .reconnect
            .clone()
            .map(|r| (r, self.redial(endpoint, &target)));
        let credentials = match &self.resume_from {
            Some(snap) => Credentials::Session {
                id: snap.id.clone(),
                received: snap.received,
            },
            None => self.policy.credentials(&ConnectRequest {
                app: &target,
                endpoint,
                attempt: 0,
                session: None,
            }),
        };
        let (tx, rx, scheme, peer, reply) =
            self.handshake_on(endpoint, &target, &credentials).await?;
        let (session_id, peer_received, resumed) = match &credentials {
            Credentials::Session { id, .. } => (id.clone(), parse_received(&reply), true),
            _ => (reply, 0, false),
        };
        let username = match &credentials {
            Credentials::Login { user, .. } => Some(user.clone()),
            _ => None,
        };
        debug!(%session_id, "connected");
        let remote_events = crate::connection::RemoteEventsTx::new(REMOTE_EVENT_CAPACITY);
        let state = Shared {
            id: next_connection_id(),
            role: Role::Client,
            scheme,
            peer,
            app: Arc::clone(&self.application).into(),
            remote_app: (target.name, target.version),
            username,
            session_id: session_id.into(),
            hub: EventHub::new(ConnectionState::Connected, DEFAULT_EVENT_CAPACITY),
            remote_events,
            stop: Default::default(),
            closing: Default::default(),
            max_message_len: self.max_message_len,
            replies: Default::default(),
        };
        let (conn, mut parts) = new_connection(state, None, self.close_grace);
        parts.heartbeat = self.heartbeat;
        if let Some((schedule, redial)) = redial {
            parts.resume = Resume::Client { redial, schedule };
            parts.max_buffered = self.max_buffered;
        }
        let span = tracing::debug_span!("connkit.jstp.conn", id = conn.id(), role = "client");
        parts.restore_from = self.resume_from.clone();
        if resumed && parts.max_buffered == 0 {
            parts.max_buffered = self.max_buffered;
        }
        let mut task = Task::new(parts, tx, rx);
        if resumed {
            task.replay(peer_received, false);
        }
        tokio::spawn(task.run().instrument(span));
        Ok(Client { conn })
    }
}

/// The server's `receivedCount` in a resume reply (`ok:<n>`); 0 when it is not a number.
fn parse_received(reply: &str) -> u64 {
    reply
        .parse::<f64>()
        .ok()
        .filter(|n| n.is_finite() && *n >= 0.0)
        .map_or(0, |n| n as u64)
}

/// Wait for the server's handshake reply; returns the session id.
async fn handshake_reply(tx: &MessageSender, rx: &mut MessageReceiver, ws: bool) -> Result<String> {
    let no_reply = || Error::Remote(RemoteError::new(ERR_NO_HANDSHAKE_RESPONSE));
    loop {
        let frame = match rx.next().await {
            None => return Err(no_reply()),
            Some(Err(e)) if e.kind() == connkit_core::ErrorKind::Io => return Err(no_reply()),
            Some(Err(e)) => return Err(e.into()),
            Some(Ok(f)) => f,
        };
        let parsed = value::parse(&frame)
            .map_err(|e| Error::Protocol(format!("the handshake reply does not parse: {e}")))?;
        match Message::from_value(parsed) {
            Ok(Message::HandshakeReply { result, .. }) => {
                return match result {
                    Ok(Value::String(s)) => Ok(s),
                    Ok(other) => Ok(other.to_string()),
                    Err(e) => Err(Error::Remote(e)),
                };
            }
            Ok(Message::HandshakeRequest { .. }) => {
                let _ = tx
                    .send(format!("{{handshake:[0],error:[{ERR_NOT_A_SERVER}]}}"))
                    .await;
                tx.close().await;
                let _ = tokio::time::timeout(Duration::from_secs(1), tx.closed()).await;
                return Err(Error::Protocol(
                    "the server sent a handshake request".into(),
                ));
            }
            Ok(Message::Heartbeat) => {}
            Err(MessageError::NotAnObject(_)) if ws => {}
            Ok(other) => {
                return Err(Error::Protocol(format!(
                    "a `{}` message before the handshake reply",
                    other.kind()
                )));
            }
            Err(e) => return Err(Error::Protocol(e.to_string())),
        }
    }
}

/// A connection to a JSTP server, made by [`ClientOptions::connect`] or
/// [`Client::connect`]. Derefs to [`Connection`] for calls, events, inspect and ping.
///
/// Cheap to clone; dropping the last clone closes the connection gracefully.
///
/// ```no_run
/// use connkit_jstp::{Client, Value};
/// use futures_util::StreamExt;
///
/// # async fn demo() -> Result<(), connkit_jstp::Error> {
/// let client = Client::connect(&"tcp://127.0.0.1:3000".parse()?, "calc@^1.0.0").await?;
/// let sum: f64 = client.call_typed("calculator", "add", &(2, 3)).await?;
/// assert_eq!(sum, 5.0);
/// let mut ticks = client.remote_events(Some("calculator"));
/// let n = client.call("calculator", "ticks", [Value::from(3)]).await?;
/// while let Some(Ok(ev)) = ticks.next().await {
///     println!("{} {:?}", ev.event, ev.args);
/// #   break;
/// }
/// let proxy = client.inspect("calculator").await?;
/// println!("{:?} {n:?}", proxy.methods());
/// client.close().await;
/// # Ok(()) }
/// ```
#[derive(Clone, Debug)]
pub struct Client {
    conn: Connection,
}

impl Client {
    /// Connect with the default [`ClientOptions`] (anonymous).
    ///
    /// Cancel safe as [`ClientOptions::connect`].
    ///
    /// # Errors
    /// As [`ClientOptions::connect`].
    pub async fn connect(endpoint: &Endpoint, app: impl Into<AppTarget>) -> Result<Client> {
        ClientOptions::new().connect(endpoint, app).await
    }

    /// The connection.
    #[must_use]
    pub fn connection(&self) -> &Connection {
        &self.conn
    }

    /// The connection, by value.
    #[must_use]
    pub fn into_connection(self) -> Connection {
        self.conn
    }
}

impl std::ops::Deref for Client {
    type Target = Connection;

    fn deref(&self) -> &Connection {
        &self.conn
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn targets_split_at_the_last_at() {
        assert_eq!(AppTarget::from("calc"), AppTarget::new("calc", None));
        assert_eq!(
            AppTarget::from("calc@^1.0.0"),
            AppTarget::new("calc", Some("^1.0.0".into()))
        );
        assert_eq!(
            AppTarget::from("@scope/app@1.x"),
            AppTarget::new("@scope/app", Some("1.x".into()))
        );
        assert_eq!(AppTarget::from("calc@"), AppTarget::new("calc", None));
        assert_eq!(
            AppTarget::from(("calc", semver::Version::new(1, 2, 3))).to_string(),
            "calc@1.2.3"
        );
    }
}
