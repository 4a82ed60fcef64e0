//! The IPC client: connects to a socket file, reconnects on its own, and exchanges messages
//! by topic. Built on the connkit-reconnect supervisor.

use crate::conn::{self, AbortOnDrop, ConnOptions, FlushOnPending, FrameReader, Outbox, SendError};
use crate::error::{BoxError, Error, Result};
use crate::router::{HandlerGuard, Router, Slots, Subscription};
use crate::transcoder::{JsonTranscoder, Transcoder};
use crate::{Incoming, Payload, Replier, Topic};
use bytes::Bytes;
use connkit_core::ErrorKind;
use connkit_core::backoff::{Backoff, BackoffPolicy, Jitter};
use connkit_core::events::{DEFAULT_EVENT_CAPACITY, EventHub, EventStream};
use connkit_reconnect::{Attempt, ConnId, Connector, Event as SupEvent, Feed, Options, Supervisor};
use std::collections::VecDeque;
use std::fmt;
use std::future::Future;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;
use tracing::{Instrument, debug};

/// A delay: fixed, or drawn uniformly (whole milliseconds) from `[min, max]` each time.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Delay {
    /// Always this long.
    Fixed(Duration),
    /// Uniform in `[min, max]`, chosen afresh for each wait.
    Range {
        /// The shortest delay.
        min: Duration,
        /// The longest delay.
        max: Duration,
    },
}

impl Delay {
    /// A fixed delay in milliseconds.
    #[must_use]
    pub const fn millis(ms: u64) -> Self {
        Self::Fixed(Duration::from_millis(ms))
    }

    /// A random delay in `[min_ms, max_ms]` milliseconds.
    #[must_use]
    pub const fn range_millis(min_ms: u64, max_ms: u64) -> Self {
        Self::Range {
            min: Duration::from_millis(min_ms),
            max: Duration::from_millis(max_ms),
        }
    }

    fn bounds(self) -> (Duration, Duration) {
        match self {
            Self::Fixed(d) => (d, d),
            Self::Range { min, max } => (min, max),
        }
    }
}

impl From<Duration> for Delay {
    fn from(d: Duration) -> Self {
        Self::Fixed(d)
    }
}

/// socket-ipc's retry rule as a backoff policy: the first connect is immediate, a reconnect
/// after a disconnect waits `reconnect_delay`, and each failed attempt waits `retry_delay`.
#[derive(Debug)]
struct IpcDelays {
    retry: (Duration, Backoff),
    reconnect: (Duration, Backoff),
    schedules: AtomicU64,
}

impl IpcDelays {
    fn new(retry: Delay, reconnect: Delay) -> Result<Self> {
        Ok(Self {
            retry: spread(retry, "retry_delay")?,
            reconnect: spread(reconnect, "reconnect_delay")?,
            schedules: AtomicU64::new(0),
        })
    }
}

/// `min` plus a uniform draw in `[0, max - min]` from a constant full-jitter schedule.
fn spread(delay: Delay, name: &str) -> Result<(Duration, Backoff)> {
    let (min, max) = delay.bounds();
    if min > max {
        return Err(Error::InvalidOption(format!(
            "{name}: min {min:?} is above max {max:?}"
        )));
    }
    let width = Backoff::constant(max - min)
        .jitter(Jitter::Full)
        .delay_first_attempt(true)
        .build()
        .map_err(|e| Error::InvalidOption(format!("{name}: {e}")))?;
    Ok((min, width))
}

impl BackoffPolicy for IpcDelays {
    fn new_schedule(&self) -> Box<dyn Iterator<Item = Duration> + Send> {
        let first_outage = self.schedules.fetch_add(1, Ordering::Relaxed) == 0;
        let (rmin, rwidth) = (self.retry.0, self.retry.1.schedule());
        let (cmin, mut cwidth) = (self.reconnect.0, self.reconnect.1.schedule());
        let first = if first_outage {
            Duration::ZERO
        } else {
            cmin + cwidth.next().unwrap_or_default()
        };
        Box::new(std::iter::once(first).chain(rwidth.map(move |w| rmin + w)))
    }
}

/// The client's lifecycle.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ClientState {
    /// Trying to connect (first time, or again after a disconnect).
    Connecting,
    /// Connected to the server.
    Connected,
    /// Retrying stopped (only with a backoff that has `max_attempts`).
    GaveUp,
    /// Closed by [`Client::close`] (or by dropping every handle).
    Closed,
}

/// Client lifecycle and traffic, with socket-ipc's event names and order.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub enum ClientEvent {
    /// A connection was established (first time or again).
    Connect,
    /// Emitted right after [`Connect`](Self::Connect) when it was a reconnect.
    Reconnect,
    /// A connection attempt failed; another follows after the retry delay.
    ConnectError {
        /// Why the attempt failed.
        error: Arc<Error>,
    },
    /// The connection was lost without [`Client::close`]; reconnecting follows.
    Disconnect,
    /// A failure on an established connection (a bad frame from the server, a failing
    /// handler); the connection is dropped and re-established.
    Error {
        /// What went wrong.
        error: Arc<Error>,
    },
    /// A message arrived.
    Message {
        /// The topic.
        topic: Topic,
        /// The payload (shared with handlers and subscriptions; parsed on demand).
        message: Payload,
    },
    /// Retrying stopped after this many attempts (only with a capped backoff).
    GaveUp {
        /// Attempts made in the outage.
        attempts: u32,
    },
    /// The client is closed. Emitted exactly once, after [`Client::close`].
    Close,
}

/// Options for a [`Client`].
#[derive(Clone)]
#[must_use]
pub struct ClientOptions {
    path: PathBuf,
    transcoder: Arc<dyn Transcoder>,
    retry_delay: Delay,
    reconnect_delay: Delay,
    backoff: Option<Backoff>,
    offline_queue: usize,
    max_frame_len: usize,
    send_queue: usize,
    connect_timeout: Duration,
    event_capacity: usize,
    subscription_capacity: usize,
}

impl fmt::Debug for ClientOptions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ClientOptions")
            .field("path", &self.path)
            .field("transcoder", &self.transcoder)
            .field("retry_delay", &self.retry_delay)
            .field("reconnect_delay", &self.reconnect_delay)
            .field("backoff", &self.backoff)
            .field("offline_queue", &self.offline_queue)
            .finish_non_exhaustive()
    }
}

impl ClientOptions {
    /// Options for a client of the socket file `path`, with socket-ipc's documented
    /// defaults: retry every 1000 ms, reconnect 100 ms after a disconnect, retry forever, no
    /// queue while disconnected (sending then is [`Error::NoServer`]).
    pub fn new(path: impl Into<PathBuf>) -> Self {
        Self {
            path: path.into(),
            transcoder: Arc::new(JsonTranscoder),
            retry_delay: Delay::millis(1000),
            reconnect_delay: Delay::millis(100),
            backoff: None,
            offline_queue: 0,
            max_frame_len: crate::DEFAULT_MAX_FRAME_LEN,
            send_queue: 1024,
            connect_timeout: Duration::from_secs(10),
            event_capacity: DEFAULT_EVENT_CAPACITY,
            subscription_capacity: 1024,
        }
    }

    /// The codec (default [`JsonTranscoder`]).
    pub fn transcoder(mut self, transcoder: impl Transcoder) -> Self {
        self.transcoder = Arc::new(transcoder);
        self
    }

    /// The wait between failed connection attempts (default 1000 ms).
    pub fn retry_delay(mut self, delay: impl Into<Delay>) -> Self {
        self.retry_delay = delay.into();
        self
    }

    /// The wait before reconnecting after a disconnect (default 100 ms, as documented; the
    /// Node library really waits 1000 ms).
    pub fn reconnect_delay(mut self, delay: impl Into<Delay>) -> Self {
        self.reconnect_delay = delay.into();
        self
    }

    /// Use a full connkit backoff (growth, jitter, max attempts) instead of the two delays.
    pub fn backoff(mut self, backoff: Backoff) -> Self {
        self.backoff = Some(backoff);
        self
    }

    /// Keep up to `messages` sends made while disconnected and deliver them, in order, on the
    /// next connect (default 0: off, as in the reference; sending then fails with
    /// [`Error::NoServer`]). When the queue is full, `send` fails with [`Error::QueueFull`].
    pub fn offline_queue(mut self, messages: usize) -> Self {
        self.offline_queue = messages;
        self
    }

    /// The largest frame accepted from the server (default 16 MiB).
    pub fn max_frame_len(mut self, len: usize) -> Self {
        self.max_frame_len = len;
        self
    }

    /// How many messages may wait to be written (default 1024); `send` waits beyond that.
    pub fn send_queue(mut self, messages: usize) -> Self {
        self.send_queue = messages.max(1);
        self
    }

    /// The time limit of one connection attempt (default 10 s).
    pub fn connect_timeout(mut self, timeout: Duration) -> Self {
        self.connect_timeout = timeout;
        self
    }

    /// How many events a slow event subscriber may fall behind (default 256).
    pub fn event_capacity(mut self, capacity: usize) -> Self {
        self.event_capacity = capacity.max(1);
        self
    }

    /// How many messages a [`Subscription`] buffers before the connection waits (default 1024).
    pub fn subscription_capacity(mut self, capacity: usize) -> Self {
        self.subscription_capacity = capacity.max(1);
        self
    }

    /// A client that has not started connecting: subscribe to events and topics, then call
    /// [`Client::start`].
    ///
    /// # Errors
    /// [`Error::InvalidOption`] for a delay range whose min is above its max.
    ///
    /// # Panics
    /// Outside a tokio runtime.
    pub fn build(self) -> Result<Client> {
        let policy: Arc<dyn BackoffPolicy> = match &self.backoff {
            Some(b) => Arc::new(b.clone()),
            None => Arc::new(IpcDelays::new(self.retry_delay, self.reconnect_delay)?),
        };
        let options = Options::builder()
            .keepalive(Duration::ZERO)
            .connect_timeout(self.connect_timeout)
            .backoff_policy(policy)
            .event_capacity(self.event_capacity)
            .build()
            .map_err(|e| Error::InvalidOption(e.to_string()))?;
        let copts = ConnOptions::new(&*self.transcoder, self.max_frame_len, self.send_queue)
            .map_err(|e| Error::InvalidOption(e.to_string()))?;
        let shared = Arc::new(Shared {
            hub: EventHub::new(ClientState::Connecting, self.event_capacity),
            router: Arc::new(Router::new(self.subscription_capacity)),
            copts,
            link: Mutex::new(LinkState::default()),
            closing: AtomicBool::new(false),
            opts: self,
        });
        let supervisor = Supervisor::new(
            IpcConnector {
                shared: Arc::clone(&shared),
            },
            options,
        );
        let translator = Arc::clone(&shared);
        let mut ever_connected = false;
        let events = std::sync::Mutex::new(move |ev: &SupEvent| {
            translator.translate(ev, &mut ever_connected)
        });
        supervisor
            .on_event(move |ev| {
                if let Ok(mut f) = events.lock() {
                    (*f)(ev);
                }
            })
            .detach();
        Ok(Client {
            inner: Arc::new(ClientInner { shared, supervisor }),
        })
    }

    /// Build and start connecting in the background; returns at once (like socket-ipc's
    /// `connect()`). Use [`Client::connected`] to wait for the connection.
    ///
    /// # Errors
    /// As [`build`](Self::build).
    ///
    /// # Panics
    /// Outside a tokio runtime.
    pub fn start(self) -> Result<Client> {
        let client = self.build()?;
        client.start();
        Ok(client)
    }

    /// Build, start, and wait for the first connection.
    ///
    /// Cancel safe: dropping the future drops the client, which stops it.
    ///
    /// # Errors
    /// As [`Client::connected`].
    pub async fn connect(self) -> Result<Client> {
        let client = self.start()?;
        client.connected().await?;
        Ok(client)
    }
}

#[derive(Default)]
struct LinkState {
    /// The live connection, once any queued messages have been written to it.
    link: Option<Link>,
    /// Messages sent while disconnected (only with an offline queue).
    queue: VecDeque<Bytes>,
}

pub(crate) struct Shared {
    opts: ClientOptions,
    hub: EventHub<ClientState, ClientEvent>,
    router: Arc<Router>,
    copts: ConnOptions,
    link: Mutex<LinkState>,
    closing: AtomicBool,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

fn core_error(e: &connkit_core::Error) -> Error {
    Error::Transport(connkit_core::Error::new(e.kind(), e.to_string()))
}

impl Shared {
    /// Turn the supervisor's events into socket-ipc's, in its order.
    fn translate(&self, ev: &SupEvent, ever_connected: &mut bool) {
        match ev {
            SupEvent::Connect { .. } => {
                self.hub.set_state(ClientState::Connected);
                self.hub.emit(ClientEvent::Connect);
                if std::mem::replace(ever_connected, true) {
                    self.hub.emit(ClientEvent::Reconnect);
                }
            }
            SupEvent::Error(e) => {
                let error = Arc::new(core_error(e.error()));
                if self.hub.current_state() == ClientState::Connected {
                    self.hub.emit(ClientEvent::Error { error });
                } else {
                    self.hub.emit(ClientEvent::ConnectError { error });
                }
            }
            SupEvent::Close { .. } if !self.closing.load(Ordering::Acquire) => {
                self.hub.set_state(ClientState::Connecting);
                self.hub.emit(ClientEvent::Disconnect);
            }
            SupEvent::GaveUp { attempts } => {
                self.hub.set_state(ClientState::GaveUp);
                self.hub.emit(ClientEvent::GaveUp {
                    attempts: *attempts,
                });
            }
            SupEvent::End => {
                self.hub.set_state(ClientState::Closed);
                self.hub.emit(ClientEvent::Close);
            }
            _ => {}
        }
    }

    fn encode(&self, topic: &str, message: &Payload) -> Result<Bytes> {
        crate::encode_frame(&*self.opts.transcoder, topic, message)
    }

    async fn send(&self, topic: &str, message: &Payload) -> Result<()> {
        if self.closing.load(Ordering::Acquire) {
            return Err(Error::SendAfterClose {
                topic: topic.to_owned(),
            });
        }
        let transcoder = &*self.opts.transcoder;
        let encode = |buf: &mut Vec<u8>| transcoder.encode(topic, message, buf);
        let outbox = {
            let mut st = lock(&self.link);
            match &st.link {
                // Usually there is room: queue it now, encoded straight into the outbox.
                Some(link) if st.queue.is_empty() => match link.outbox.try_send(encode) {
                    Err(SendError::Full) => Arc::clone(&link.outbox),
                    res => return res.map_err(|e| send_error(topic, e)),
                },
                _ if self.opts.offline_queue == 0 => {
                    return Err(Error::NoServer {
                        topic: topic.to_owned(),
                    });
                }
                _ if st.queue.len() >= self.opts.offline_queue => {
                    return Err(Error::QueueFull {
                        topic: topic.to_owned(),
                    });
                }
                _ => {
                    let bytes = self.encode(topic, message)?;
                    st.queue.push_back(bytes);
                    return Ok(());
                }
            }
        };
        outbox.send(encode).await.map_err(|e| send_error(topic, e))
    }
}

fn send_error(topic: &str, e: SendError) -> Error {
    match e {
        SendError::Closed | SendError::Full => Error::NoServer {
            topic: topic.to_owned(),
        },
        SendError::Encode(source) => Error::Encode {
            topic: topic.to_owned(),
            source,
        },
        SendError::Invalid(e) => Error::Transport(connkit_core::Error::with_source(
            ErrorKind::InvalidMessage,
            "cannot frame the message",
            e,
        )),
    }
}

#[derive(Clone)]
struct Link {
    id: ConnId,
    outbox: Arc<Outbox>,
    stop: CancellationToken,
}

struct IpcConnector {
    shared: Arc<Shared>,
}

impl Connector for IpcConnector {
    type Conn = Link;

    async fn connect(&self, attempt: Attempt) -> Result<Link, connkit_core::Error> {
        let s = &self.shared;
        let path = &s.opts.path;
        let stream = tokio::select! {
            () = attempt.cancel_token().cancelled() => {
                return Err(connkit_core::Error::new(ErrorKind::Cancelled, "connect cancelled"));
            }
            r = tokio::net::UnixStream::connect(path) => r.map_err(|e| {
                connkit_core::Error::io(format!("connecting to unix://{}", path.display()), e)
            })?,
        };
        let (rx, outbox) = conn::split(stream, &s.copts);
        let link = Link {
            id: attempt.id(),
            outbox,
            stop: CancellationToken::new(),
        };
        let span =
            tracing::debug_span!("connkit.ipc.client", path = %path.display(), conn = %link.id);
        let reader = read_loop(
            Arc::clone(s),
            rx,
            Arc::clone(&link.outbox),
            attempt.feed(),
            link.stop.clone(),
        );
        tokio::spawn(FlushOnPending::new(Arc::clone(&link.outbox), reader).instrument(span));
        // Deliver what was queued while offline, in order, before the link goes live.
        loop {
            let next = {
                let mut st = lock(&s.link);
                match st.queue.pop_front() {
                    Some(b) => b,
                    None => {
                        st.link = Some(link.clone());
                        break;
                    }
                }
            };
            let copy = |buf: &mut Vec<u8>| {
                buf.extend_from_slice(&next);
                Ok(())
            };
            if let Err(e) = link.outbox.send(copy).await {
                lock(&s.link).queue.push_front(next);
                link.stop.cancel();
                return Err(match e {
                    SendError::Invalid(e) => connkit_core::Error::with_source(
                        ErrorKind::InvalidMessage,
                        "cannot frame a queued message",
                        e,
                    ),
                    _ => connkit_core::Error::closed(),
                });
            }
        }
        Ok(link)
    }

    async fn close(&self, link: Link, force: bool) {
        {
            let mut st = lock(&self.shared.link);
            if st.link.as_ref().is_some_and(|l| l.id == link.id) {
                st.link = None;
            }
        }
        if !force {
            link.outbox.close();
            let _ = tokio::time::timeout(Duration::from_secs(2), link.outbox.closed()).await;
        }
        link.outbox.abort();
        link.stop.cancel();
    }
}

async fn read_loop(
    shared: Arc<Shared>,
    mut rx: FrameReader,
    outbox: Arc<Outbox>,
    feed: Feed,
    stop: CancellationToken,
) {
    // The connection ends with its reader.
    let _abort = AbortOnDrop(outbox);
    let mut decoder = shared.opts.transcoder.decoder();
    let mut slots = Slots::default();
    let stopped = stop.cancelled();
    tokio::pin!(stopped);
    let mut frames: u32 = 0;
    let failure: Option<Error> = loop {
        // Frames first; the stop token (a lock to poll) is checked every 32 frames while
        // frames keep coming.
        frames = frames.wrapping_add(1);
        if frames.is_multiple_of(32) && stop.is_cancelled() {
            return;
        }
        let frame = tokio::select! {
            biased;
            f = rx.next() => f,
            () = &mut stopped => return,
        };
        match frame {
            None => break None,
            Some(Err(e)) if e.kind() == ErrorKind::Io => break None,
            Some(Err(e)) => break Some(e.into()),
            Some(Ok(bytes)) => match decoder.decode(bytes) {
                Err(source) => {
                    break Some(Error::Decode {
                        from: "server".to_owned(),
                        source,
                    });
                }
                Ok(env) => {
                    if shared.hub.subscriber_count() > 0 {
                        shared.hub.emit(ClientEvent::Message {
                            topic: env.topic.clone(),
                            message: env.message.clone(),
                        });
                    }
                    let incoming = Incoming {
                        topic: env.topic,
                        message: env.message,
                        client: None,
                        replier: Replier::Client(Arc::downgrade(&shared)),
                    };
                    if let Err(e) = shared.router.dispatch(incoming, &mut slots).await {
                        break Some(e);
                    }
                }
            },
        }
    };
    match failure {
        None => {
            debug!("server closed the connection");
            feed.close(false);
        }
        Some(error) => {
            debug!(%error, "dropping the connection");
            shared.hub.emit(ClientEvent::Error {
                error: Arc::new(error),
            });
            feed.close(true);
        }
    }
}

pub(crate) async fn reply_from_client(
    shared: &Weak<Shared>,
    topic: &str,
    message: &Payload,
) -> Result<()> {
    match shared.upgrade() {
        Some(s) => s.send(topic, message).await,
        None => Err(Error::SendAfterClose {
            topic: topic.to_owned(),
        }),
    }
}

struct ClientInner {
    shared: Arc<Shared>,
    supervisor: Supervisor<Link>,
}

/// An IPC client. Cheap to clone; dropping the last clone stops it.
#[derive(Clone)]
pub struct Client {
    inner: Arc<ClientInner>,
}

impl fmt::Debug for Client {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Client")
            .field("path", &self.inner.shared.opts.path)
            .field("state", &self.inner.shared.hub.current_state())
            .finish_non_exhaustive()
    }
}

impl Client {
    /// Start connecting (idempotent). [`ClientOptions::start`] does this for you.
    pub fn start(&self) {
        self.inner.supervisor.start();
    }

    /// The socket file path.
    #[must_use]
    pub fn path(&self) -> &Path {
        &self.inner.shared.opts.path
    }

    /// Lifecycle and traffic events from now on.
    #[must_use]
    pub fn events(&self) -> EventStream<ClientEvent> {
        self.inner.shared.hub.subscribe()
    }

    /// The current state, kept up to date.
    #[must_use]
    pub fn state(&self) -> watch::Receiver<ClientState> {
        self.inner.shared.hub.state()
    }

    /// Whether a connection is up now.
    #[must_use]
    pub fn is_connected(&self) -> bool {
        self.inner.shared.hub.current_state() == ClientState::Connected
    }

    /// Wait until connected.
    ///
    /// Cancel safe.
    ///
    /// # Errors
    /// [`Error::SendAfterClose`] (topic empty) if the client closes or gives up first.
    pub async fn connected(&self) -> Result<()> {
        let mut state = self.state();
        match state
            .wait_for(|s| {
                matches!(
                    s,
                    ClientState::Connected | ClientState::Closed | ClientState::GaveUp
                )
            })
            .await
            .map(|s| *s)
        {
            Ok(ClientState::Connected) => Ok(()),
            Ok(ClientState::GaveUp) => Err(Error::NoServer {
                topic: String::new(),
            }),
            _ => Err(Error::SendAfterClose {
                topic: String::new(),
            }),
        }
    }

    /// Every message from the server on `topic` (or every topic with `None`), reliably.
    #[must_use]
    pub fn subscribe(&self, topic: Option<&str>) -> Subscription {
        self.inner.shared.router.subscribe(topic)
    }

    /// Run `handler` for each message on `topic` (or every topic with `None`), in order. If it
    /// fails or panics, the connection is dropped and re-established, as socket-ipc does.
    pub fn on<F, Fut, E>(&self, topic: Option<&str>, handler: F) -> HandlerGuard
    where
        F: Fn(Incoming) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<(), E>> + Send + 'static,
        E: Into<BoxError> + 'static,
    {
        self.inner.shared.router.on(topic, handler)
    }

    /// Send one message to the server.
    ///
    /// Cancel safe: if dropped before completing, the message was not queued.
    ///
    /// # Errors
    /// [`Error::SendAfterClose`] after [`close`](Self::close); [`Error::Encode`];
    /// [`Error::NoServer`] while disconnected (without an offline queue);
    /// [`Error::QueueFull`] when the offline queue is full.
    pub async fn send(&self, topic: &str, message: impl Into<Payload>) -> Result<()> {
        self.inner.shared.send(topic, &message.into()).await
    }

    /// Close for good: cancel any attempt or wait in progress, flush and end the connection,
    /// and emit [`ClientEvent::Close`] exactly once, whatever the state. Idempotent.
    ///
    /// Cancel safe: the close completes in the background if this future is dropped.
    pub async fn close(&self) {
        self.inner.shared.closing.store(true, Ordering::Release);
        let dropped = {
            let mut st = lock(&self.inner.shared.link);
            std::mem::take(&mut st.queue).len()
        };
        if dropped > 0 {
            tracing::warn!(dropped, "closing with unsent queued messages");
        }
        self.inner.supervisor.end(false).await;
    }
}
