//! One JSTP connection after its handshake: the task that owns it, the [`Outbox`] every
//! originated message passes through, and the cheap [`Connection`] handle.
//!
//! One task per connection owns the transport halves and all protocol state (the id
//! counter, the pending replies, the running handlers). Handles send it [`Command`]s over a
//! bounded channel. Incoming calls run **inside** the task, concurrently, in a
//! `FuturesUnordered`, so a slow method never blocks the others and no task is spawned per
//! call. Outgoing frames produced in one turn of the loop are handed to the transport's
//! writer together, which writes them with one syscall.

use crate::app::{Application, Dispatch, EventFuture, MethodFuture, run_caught};
use crate::error::{ERR_CALLBACK_LOST, ERR_INTERFACE_NOT_FOUND, Error, RemoteError, Result};
use crate::message::{self, Id, Message, MessageError, OkList};
use crate::value::{self, SerdeError, Value, from_value, to_value};
use bytes::{BufMut, Bytes, BytesMut};
use connkit_core::Scheme;
use connkit_core::events::{EventHub, EventStream, Lagged};
use connkit_core::transport::{MessageReceiver, MessageSender};
use futures_util::stream::FuturesUnordered;
use futures_util::{FutureExt, Stream, StreamExt};
use serde::Serialize;
use serde::de::DeserializeOwned;
use std::collections::{HashMap, VecDeque};
use std::fmt;
use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::task::{Context as TaskContext, Poll};
use std::time::Duration;
use tokio::sync::{broadcast, mpsc, oneshot, watch};
use tokio_stream::wrappers::BroadcastStream;
use tokio_stream::wrappers::errors::BroadcastStreamRecvError;
use tokio_util::sync::CancellationToken;
use tracing::{debug, trace, warn};

/// A small, fast hasher for maps keyed by our own ids and by names the application defines
/// (no map here is filled from peer-chosen keys, so hash flooding does not apply).
#[derive(Debug, Default, Clone, Copy)]
pub(crate) struct FastHash;

impl std::hash::BuildHasher for FastHash {
    type Hasher = FastHasher;

    fn build_hasher(&self) -> FastHasher {
        FastHasher(0)
    }
}

/// The rotate-xor-multiply hash of rustc's `FxHasher`.
#[derive(Debug)]
pub(crate) struct FastHasher(u64);

impl FastHasher {
    fn add(&mut self, word: u64) {
        self.0 = (self.0.rotate_left(5) ^ word).wrapping_mul(0x517c_c1b7_2722_0a95);
    }
}

impl std::hash::Hasher for FastHasher {
    fn write(&mut self, bytes: &[u8]) {
        let mut chunks = bytes.chunks_exact(8);
        for c in &mut chunks {
            let mut w = [0u8; 8];
            w.copy_from_slice(c);
            self.add(u64::from_le_bytes(w));
        }
        let rest = chunks.remainder();
        if !rest.is_empty() {
            let mut w = [0u8; 8];
            w[..rest.len()].copy_from_slice(rest);
            self.add(u64::from_le_bytes(w));
        }
    }

    fn write_u8(&mut self, i: u8) {
        self.add(u64::from(i));
    }

    fn write_u64(&mut self, i: u64) {
        self.add(i);
    }

    fn write_i64(&mut self, i: i64) {
        self.add(i as u64);
    }

    fn write_usize(&mut self, i: usize) {
        self.add(i as u64);
    }

    fn finish(&self) -> u64 {
        self.0
    }
}

/// Return `Pending` once, waking the task at once (unlike `tokio::task::yield_now`, whose
/// deferred wake-up a combinator such as `FuturesUnordered` does not see, so it would go on
/// polling its other futures instead of yielding).
async fn yield_once() {
    let mut yielded = false;
    std::future::poll_fn(|cx| {
        if yielded {
            Poll::Ready(())
        } else {
            yielded = true;
            cx.waker().wake_by_ref();
            Poll::Pending
        }
    })
    .await;
}

/// Process-unique connection ids (as Node's `Connection#id`).
static NEXT_CONNECTION_ID: AtomicU64 = AtomicU64::new(0);

pub(crate) fn next_connection_id() -> u64 {
    NEXT_CONNECTION_ID.fetch_add(1, Ordering::Relaxed)
}

/// How many commands or frames one turn of the loop takes at most.
const TURN_BATCH: usize = 256;
/// When this many frames wait for room in the transport queue, the task stops reading.
const OVERFLOW_LIMIT: usize = 4096;
/// Capacity of the command channel of a connection.
pub(crate) const COMMAND_CAPACITY: usize = 8192;
/// A sender finding this many commands (or a multiple) queued and not yet taken yields once
/// before queueing its own, so that a task issuing thousands of calls in one poll lets the
/// connection task send the first ones while it prepares the rest.
const YIELD_EVERY: usize = 512;
/// Capacity of the remote-event broadcast.
pub(crate) const REMOTE_EVENT_CAPACITY: usize = 1024;

/// Which side of the connection this is. Client ids count up from 0, server ids down.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Role {
    /// This side connected (its ids count up: 0, 1, 2, …).
    Client,
    /// This side accepted (its ids count down: 0, −1, −2, …).
    Server,
}

/// A connection's lifecycle.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ConnectionState {
    /// The handshake is done; messages flow.
    Connected,
    /// The transport is gone but the session lives on: originated messages are buffered
    /// (nothing is written) until the session is restored on a new transport.
    Disconnected,
    /// Closing: no new requests; running methods and pending replies get a grace period.
    Closing,
    /// Closed.
    Closed,
}

/// Things that happen on one connection.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub enum ConnectionEvent {
    /// An incoming message was ignored (an unknown kind, a reply with an unknown id, an
    /// event whose arguments are not an array, a malformed header).
    Rejected {
        /// Why.
        reason: String,
    },
    /// A method or event handler panicked (a method's caller got error 16).
    HandlerPanicked {
        /// `interface.method` or `interface.event`.
        handler: String,
        /// The panic message.
        message: String,
    },
    /// The transport was lost; the session waits for a restore (client: the reconnector
    /// runs; server: until the client expiration time).
    Disconnected,
    /// The client's reconnector is about to try (`attempt` counts from 1).
    ReconnectAttempt {
        /// Which attempt.
        attempt: u32,
    },
    /// A reconnect attempt failed.
    ReconnectFailed {
        /// Which attempt.
        attempt: u32,
        /// Why.
        error: Arc<Error>,
    },
    /// The server no longer knew the session (`error:[11]` to a resume) and the client
    /// started a new one ([`UnknownSession::NewSession`](crate::UnknownSession::NewSession)):
    /// the old session's pending calls failed with −1 and its other buffered messages were
    /// discarded. Comes instead of [`Restored`](Self::Restored).
    SessionReplaced {
        /// The old session id.
        old: String,
        /// The new session id.
        new: String,
        /// How many pending calls failed with −1.
        failed: usize,
        /// How many buffered events, pings and inspects were discarded.
        discarded: usize,
    },
    /// The session was restored on a new transport.
    Restored {
        /// The last id (absolute value) of ours the peer said it had received.
        peer_received: u64,
        /// How many buffered messages were sent again.
        replayed: usize,
        /// How many pending calls failed with −1 (executed, reply lost).
        lost: usize,
    },
    /// The connection closed; `error` says why when it was not a normal close.
    Closed {
        /// What ended it, if anything went wrong.
        error: Option<Arc<Error>>,
    },
}

/// An event received from the peer (`{event:[id,'interface'],name:[args]}`).
#[derive(Debug, Clone, PartialEq)]
pub struct RemoteEvent {
    /// The interface.
    pub interface: String,
    /// The event name.
    pub event: String,
    /// The arguments.
    pub args: Vec<Value>,
}

/// Told about connection-level happenings (the server uses it for its own events and its
/// registry).
pub(crate) trait Observer: Send + Sync + 'static {
    fn rejected(&self, _conn: &Connection, _reason: &str) {}
    fn panicked(&self, _conn: &Connection, _handler: &str, _message: &str) {}
    fn remote_event(&self, _conn: &Connection, _event: &RemoteEvent) {}
    fn closed(&self, _conn: &Connection, _error: Option<Arc<Error>>) {}
    fn detached(&self, _conn: &Connection) {}
    fn restored(&self, _conn: &Connection) {}
}

/// A new transport for a session (spec §6): the server hands it to the session's task on a
/// restore; the client's reconnector produces it.
pub(crate) struct Attach {
    pub(crate) tx: MessageSender,
    pub(crate) rx: MessageReceiver,
    /// The last id (absolute) of ours the peer received (`receivedCount` in its handshake).
    pub(crate) peer_received: u64,
    /// Server side: answer `{handshake:[0],ok:<our receivedCount>}` first.
    pub(crate) send_handshake_reply: bool,
}

/// The client's way to open a new transport: given the session to resume (id and our
/// `receivedCount`; `None` for a new session) and the attempt number, it dials, handshakes
/// with the credentials of the connect policy and returns the transport, the server's
/// `receivedCount`, and the new session id when the handshake started a new session.
pub(crate) type Redial = Arc<
    dyn Fn(
            Option<(String, u64)>,
            u32,
        ) -> Pin<Box<dyn Future<Output = Result<(Attach, Option<String>)>> + Send>>
        + Send
        + Sync,
>;

/// How a session outlives its transport.
pub(crate) enum Resume {
    /// It does not: the connection closes with its transport.
    Never,
    /// Client: reconnect with this schedule.
    Client {
        redial: Redial,
        schedule: crate::session::Reconnect,
    },
    /// Server: wait this long for the client to come back through `attach`.
    Server {
        attach: mpsc::Receiver<Attach>,
        expiration: Duration,
    },
}

/// Liveness settings of a connection (spec §7).
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Heartbeat {
    /// Send a ping this often.
    pub(crate) interval: Option<Duration>,
    /// Declare the peer dead when nothing arrived for this long (checked on each beat).
    pub(crate) timeout: Option<Duration>,
}

/// The application a connection serves, replaceable at run time (a server moving live
/// connections to a newer version, spec §8). The connection task keeps its own copy and
/// looks at the generation (one atomic load) before each dispatch.
pub(crate) struct AppSlot {
    app: std::sync::RwLock<Arc<Application>>,
    generation: AtomicU64,
}

impl From<Arc<Application>> for AppSlot {
    fn from(app: Arc<Application>) -> Self {
        Self {
            app: std::sync::RwLock::new(app),
            generation: AtomicU64::new(0),
        }
    }
}

impl AppSlot {
    /// The current application.
    pub(crate) fn get(&self) -> Arc<Application> {
        Arc::clone(
            &self
                .app
                .read()
                .unwrap_or_else(std::sync::PoisonError::into_inner),
        )
    }

    /// Swap in `app`; returns the previous one.
    pub(crate) fn replace(&self, app: Arc<Application>) -> Arc<Application> {
        let mut slot = self
            .app
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let old = std::mem::replace(&mut *slot, app);
        self.generation.fetch_add(1, Ordering::Release);
        old
    }

    fn generation(&self) -> u64 {
        self.generation.load(Ordering::Acquire)
    }
}

/// Where a connection's remote events go to [`Connection::remote_events`] subscribers. The
/// broadcast channel allocates its whole ring at once, so it is made on the first
/// subscription: an idle connection nobody listens to does not pay for it.
pub(crate) struct RemoteEventsTx {
    tx: std::sync::OnceLock<broadcast::Sender<RemoteEvent>>,
    capacity: usize,
}

impl RemoteEventsTx {
    pub(crate) fn new(capacity: usize) -> Self {
        Self {
            tx: std::sync::OnceLock::new(),
            capacity: capacity.max(1),
        }
    }

    /// The channel, when somebody has subscribed.
    fn get(&self) -> Option<&broadcast::Sender<RemoteEvent>> {
        self.tx.get().filter(|tx| tx.receiver_count() > 0)
    }

    fn subscribe(&self) -> broadcast::Receiver<RemoteEvent> {
        self.tx
            .get_or_init(|| broadcast::channel(self.capacity).0)
            .subscribe()
    }
}

/// What the handles and the task share; fixed once the handshake is done.
pub(crate) struct Shared {
    pub(crate) id: u64,
    pub(crate) role: Role,
    pub(crate) scheme: Scheme,
    pub(crate) peer: String,
    /// This side's application (the chosen one on a server, the client's own on a client);
    /// a server may move the connection to another version (spec §8).
    pub(crate) app: AppSlot,
    /// The other side's application as named in the handshake: the name and the version or
    /// range asked for.
    pub(crate) remote_app: (String, Option<String>),
    pub(crate) username: Option<String>,
    pub(crate) session_id: crate::session::SessionId,
    pub(crate) hub: EventHub<ConnectionState, ConnectionEvent>,
    pub(crate) remote_events: RemoteEventsTx,
    pub(crate) stop: CancellationToken,
    pub(crate) closing: AtomicBool,
    pub(crate) max_message_len: usize,
    /// The reply slots of pending calls.
    pub(crate) replies: crate::replies::ReplySlots,
}

/// The kinds of message a side originates; each takes an id from the [`Outbox`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    Call,
    Event,
    Inspect,
    Ping,
}

impl Kind {
    fn prefix(self) -> &'static [u8] {
        match self {
            Kind::Call => b"{call:[",
            Kind::Event => b"{event:[",
            Kind::Inspect => b"{inspect:[",
            Kind::Ping => b"{ping:[",
        }
    }
}

type Reply = crate::replies::ReplySlot;

/// A request from a handle to the connection task.
pub(crate) enum Command {
    /// Originate a message. `tail` is everything after the id (`,'iface'],verb:[…]}`),
    /// serialized by the caller so that a broadcast serializes once for every connection.
    Send {
        kind: Kind,
        tail: Tail,
        reply: Option<Reply>,
    },
    /// Close gracefully.
    Close,
    /// Report the session state (for export).
    Snapshot(oneshot::Sender<crate::session::SessionSnapshot>),
}

/// The part of an originated message after its id: one caller's own bytes (a call: no
/// reference count to allocate), or bytes shared by several (a broadcast, a resent call).
pub(crate) enum Tail {
    /// Written for this message only.
    Owned(Vec<u8>),
    /// Shared with other messages.
    Shared(Bytes),
}

impl std::ops::Deref for Tail {
    type Target = [u8];

    fn deref(&self) -> &[u8] {
        match self {
            Tail::Owned(v) => v,
            Tail::Shared(b) => b,
        }
    }
}

/// The one place every originated message (call, event, inspect, ping) passes through: it
/// takes the next id (client: 1, 2, 3, …; server: −1, −2, −3, …, strictly down), writes the
/// frame once, and is where a session buffer for replay will keep it.
#[derive(Debug)]
pub(crate) struct Outbox {
    next_id: Id,
    step: Id,
    arena: BytesMut,
    /// The next arena allocation: doubles while frames flow, back to the least on
    /// [`release`](Self::release).
    chunk: usize,
    /// The session buffer: every originated frame the peer has not confirmed, in order.
    pub(crate) buffer: VecDeque<(Id, Bytes)>,
    /// At most this many buffered frames; past it the oldest is dropped.
    pub(crate) max_buffered: usize,
    /// Frames dropped at the bound since the start.
    pub(crate) dropped: u64,
    /// `receivedCount`: |id| of the last call, event, inspect or ping received.
    pub(crate) received: u64,
    /// The highest |id| the peer is known to have received.
    pub(crate) delivered: u64,
}

/// The arena grows in chunks from `ARENA_FIRST` up to `ARENA_CHUNK` bytes.
const ARENA_CHUNK: usize = 64 * 1024;
const ARENA_FIRST: usize = 512;
/// A new chunk is taken when less than this is left.
const ARENA_LOW: usize = 256;

impl Outbox {
    /// After the handshake, which took id 0 on both sides.
    pub(crate) fn after_handshake(role: Role) -> Self {
        let step = match role {
            Role::Client => 1,
            Role::Server => -1,
        };
        Self {
            next_id: step,
            step,
            arena: BytesMut::new(),
            chunk: ARENA_FIRST,
            buffer: VecDeque::new(),
            max_buffered: 0,
            dropped: 0,
            received: 0,
            delivered: 0,
        }
    }

    /// Continue a session exported by [`SessionSnapshot`](crate::session::SessionSnapshot).
    pub(crate) fn restore(&mut self, s: &crate::session::SessionSnapshot) {
        self.next_id = s.next_id;
        self.received = s.received;
        self.delivered = s.delivered;
        self.buffer = s
            .buffer
            .iter()
            .map(|(id, f)| (*id, Bytes::from(f.clone().into_bytes())))
            .collect();
    }

    /// What a session writer watches for changes: (received, next id, delivered).
    pub(crate) fn mark(&self) -> (u64, Id, u64) {
        (self.received, self.next_id, self.delivered)
    }

    /// The peer confirmed everything up to `|id|` (a callback or pong for `id`, or the
    /// `receivedCount` of a resume): drop those frames from the buffer.
    pub(crate) fn confirmed(&mut self, id: Id) {
        let k = id.unsigned_abs();
        if k <= self.delivered {
            return;
        }
        // Only ids we have originated count (a peer may echo anything).
        let last = (self.next_id - self.step).unsigned_abs();
        let k = k.min(last);
        self.delivered = self.delivered.max(k);
        while let Some((front, _)) = self.buffer.front() {
            if front.unsigned_abs() <= k {
                self.buffer.pop_front();
            } else {
                break;
            }
        }
    }

    fn room(&mut self) -> &mut BytesMut {
        if self.arena.capacity() < ARENA_LOW {
            self.arena.reserve(self.chunk);
            self.chunk = (self.chunk * 2).min(ARENA_CHUNK);
        }
        &mut self.arena
    }

    /// Let go of the arena (the frames written from it keep their part): called on each
    /// heartbeat, so that a connection gone quiet does not keep a large chunk.
    pub(crate) fn release(&mut self) {
        self.arena = BytesMut::new();
        self.chunk = ARENA_FIRST;
    }

    /// A new message of `kind`; returns its id and its frame.
    pub(crate) fn originate(&mut self, kind: Kind, tail: &[u8]) -> (Id, Bytes) {
        let id = self.next_id;
        self.next_id += self.step;
        let buf = self.room();
        buf.put_slice(kind.prefix());
        message::write_id(buf, id);
        buf.put_slice(tail);
        let frame = self.arena.split().freeze();
        if self.max_buffered > 0 {
            if self.buffer.len() >= self.max_buffered {
                self.buffer.pop_front();
                self.dropped += 1;
            }
            self.buffer.push_back((id, frame.clone()));
        }
        (id, frame)
    }

    /// A reply frame (callback, pong): written here too, but it takes no id.
    pub(crate) fn reply(
        &mut self,
        write: impl FnOnce(&mut BytesMut) -> std::result::Result<(), value::SerializeError>,
    ) -> std::result::Result<Bytes, value::SerializeError> {
        let buf = self.room();
        let start = buf.len();
        match write(buf) {
            Ok(()) => Ok(self.arena.split().freeze()),
            Err(e) => {
                self.arena.truncate(start);
                Err(e)
            }
        }
    }
}

/// Frames on their way to the transport: collected during one turn, then queued together.
struct Out {
    tx: MessageSender,
    batch: Vec<Bytes>,
    overflow: VecDeque<Bytes>,
}

impl Out {
    fn push(&mut self, frame: Bytes) {
        self.batch.push(frame);
    }

    /// Queue the turn's frames; what does not fit waits in `overflow` (the task then stops
    /// taking commands, and past a limit stops reading, until the writer catches up).
    fn flush(&mut self) -> Result<()> {
        // Frames left over from earlier turns first, as many as fit now.
        while let Some(frame) = self.overflow.front() {
            match self.tx.try_send(frame.clone()) {
                Ok(()) => {}
                Err(e) => match e.kind() {
                    connkit_core::ErrorKind::QueueFull => break,
                    connkit_core::ErrorKind::Closed => return Err(Error::Transport(e)),
                    _ => warn!(error = %e, "dropping a frame the transport refused"),
                },
            }
            self.overflow.pop_front();
        }
        if !self.overflow.is_empty() {
            self.overflow.extend(self.batch.drain(..));
            return Ok(());
        }
        // The turn's frames in one go (a stream transport copies them into its buffer under
        // one lock); a refused frame is handled, and the rest tried again after it.
        let mut from = 0;
        while from < self.batch.len() {
            let (queued, result) = self.tx.try_send_many(&self.batch[from..]);
            from += queued;
            let Err(e) = result else { break };
            match e.kind() {
                connkit_core::ErrorKind::QueueFull => {
                    self.overflow.extend(self.batch.drain(from..));
                    break;
                }
                connkit_core::ErrorKind::Closed => {
                    self.batch.clear();
                    return Err(Error::Transport(e));
                }
                _ => {
                    warn!(error = %e, "dropping a frame the transport refused");
                    from += 1;
                }
            }
        }
        self.batch.clear();
        Ok(())
    }
}

/// What a finished handler future produced.
enum Done {
    Reply {
        id: Id,
        result: std::result::Result<OkList, RemoteError>,
    },
    Nothing,
    Panicked {
        id: Option<Id>,
        handler: String,
        message: String,
    },
}

type Running = FuturesUnordered<Pin<Box<dyn Future<Output = Done> + Send>>>;

/// Everything the task needs besides the transport halves.
pub(crate) struct TaskParts {
    pub(crate) shared: Arc<Shared>,
    pub(crate) cmd_rx: mpsc::Receiver<Command>,
    pub(crate) weak_tx: mpsc::WeakSender<Command>,
    pub(crate) observer: Option<Arc<dyn Observer>>,
    pub(crate) close_grace: Duration,
    pub(crate) resume: Resume,
    pub(crate) heartbeat: Heartbeat,
    /// Session buffer bound (0: no buffering).
    pub(crate) max_buffered: usize,
    /// An imported session to continue.
    pub(crate) restore_from: Option<crate::session::SessionSnapshot>,
    /// Server: the writer of this session to the session storage provider.
    pub(crate) persist: Option<crate::storage::Hook>,
}

/// Build the shared state and the handle of a connection whose handshake is done.
pub(crate) fn new_connection(
    shared: Shared,
    observer: Option<Arc<dyn Observer>>,
    close_grace: Duration,
) -> (Connection, TaskParts) {
    let shared = Arc::new(shared);
    let (tx, cmd_rx) = mpsc::channel(COMMAND_CAPACITY);
    let weak_tx = tx.downgrade();
    (
        Connection {
            tx,
            shared: Arc::clone(&shared),
        },
        TaskParts {
            shared,
            cmd_rx,
            weak_tx,
            observer,
            close_grace,
            resume: Resume::Never,
            heartbeat: Heartbeat::default(),
            max_buffered: 0,
            restore_from: None,
            persist: None,
        },
    )
}

/// The connection task.
pub(crate) struct Task {
    shared: Arc<Shared>,
    cmd_rx: mpsc::Receiver<Command>,
    weak_tx: mpsc::WeakSender<Command>,
    rx: Option<MessageReceiver>,
    out: Out,
    outbox: Outbox,
    pending: HashMap<Id, Reply, FastHash>,
    running: Running,
    observer: Option<Arc<dyn Observer>>,
    close_grace: Duration,
    /// A `Close` command was taken in this turn.
    close_requested: bool,
    resume: Resume,
    heartbeat: Heartbeat,
    /// When something last arrived from the peer.
    last_heard: tokio::time::Instant,
    /// A handle kept while a server session waits for its client (see `detached`).
    keep: Option<mpsc::Sender<Command>>,
    /// The application methods are dispatched to, and the [`AppSlot`] generation it is of.
    app: (u64, Arc<Application>),
    /// Server: the writer of this session to the session storage provider.
    persist: Option<crate::storage::Hook>,
}

/// How the loop ended.
enum End {
    /// Closed on purpose or by the peer: flush what is queued, then shut down.
    Graceful(Option<Error>),
    /// Stopped at once (server shutdown after its grace period, or the writer died).
    Abort(Option<Error>),
    /// The transport was lost (or the peer went silent) while nobody asked to close: the
    /// session may be restored.
    Lost(Option<Error>),
}

impl Task {
    pub(crate) fn new(parts: TaskParts, tx: MessageSender, rx: MessageReceiver) -> Self {
        let mut outbox = Outbox::after_handshake(parts.shared.role);
        outbox.max_buffered = parts.max_buffered;
        if let Some(s) = &parts.restore_from {
            outbox.restore(s);
        }
        let app = (parts.shared.app.generation(), parts.shared.app.get());
        Self {
            shared: parts.shared,
            cmd_rx: parts.cmd_rx,
            weak_tx: parts.weak_tx,
            rx: Some(rx),
            out: Out {
                tx,
                batch: Vec::new(),
                overflow: VecDeque::new(),
            },
            outbox,
            pending: HashMap::default(),
            running: FuturesUnordered::new(),
            observer: parts.observer,
            close_grace: parts.close_grace,
            close_requested: false,
            resume: parts.resume,
            heartbeat: parts.heartbeat,
            last_heard: tokio::time::Instant::now(),
            keep: None,
            app,
            persist: parts.persist,
        }
    }

    fn connection(&self) -> Connection {
        let tx = self.weak_tx.upgrade().unwrap_or_else(|| mpsc::channel(1).0);
        Connection {
            tx,
            shared: Arc::clone(&self.shared),
        }
    }

    fn context(&self) -> Context {
        Context {
            conn: self.connection(),
        }
    }

    fn reject(&self, reason: impl FnOnce() -> String) {
        let want_conn = self.shared.hub.subscriber_count() > 0;
        if !want_conn && self.observer.is_none() {
            return;
        }
        let reason = reason();
        trace!(%reason, "message rejected");
        if let Some(o) = &self.observer {
            o.rejected(&self.connection(), &reason);
        }
        if want_conn {
            self.shared.hub.emit(ConnectionEvent::Rejected { reason });
        }
    }

    /// Run until the connection ends.
    pub(crate) async fn run(mut self) {
        loop {
            let end = self.main_loop().await;
            let end = match end {
                End::Lost(error) => {
                    if matches!(self.resume, Resume::Never) {
                        End::Abort(error)
                    } else {
                        match self.detached().await {
                            Some(attach) => {
                                self.attach(attach);
                                continue;
                            }
                            None => End::Abort(error),
                        }
                    }
                }
                other => other,
            };
            self.finish(end).await;
            return;
        }
    }

    /// Wait, with the transport gone, for a restore: buffer what handles originate, let
    /// running handlers finish (their replies are lost, as in Node), and either get a new
    /// transport or give up.
    async fn detached(&mut self) -> Option<(Attach, Option<String>)> {
        debug!("transport lost; the session waits for a restore");
        self.out.batch.clear();
        self.out.overflow.clear();
        // Let go of the old transport at once (a half-open socket must not linger).
        self.rx = None;
        let _ = tokio::time::timeout(Duration::from_millis(100), self.out.tx.close()).await;
        // A server session has no handle while its client is away (the registry drops it):
        // keep the command channel open so that the restored connection gets handles again.
        self.keep = match self.resume {
            Resume::Server { .. } => self.weak_tx.upgrade(),
            _ => None,
        };
        self.shared.hub.set_state(ConnectionState::Disconnected);
        self.shared.hub.emit(ConnectionEvent::Disconnected);
        if let Some(o) = &self.observer {
            o.detached(&self.connection());
        }
        if let Some(p) = &mut self.persist {
            p.detached();
        }
        let mut resume = std::mem::replace(&mut self.resume, Resume::Never);
        let session_id = self.shared.session_id.get().to_owned();
        let received = self.outbox.received;
        let hub = self.shared.hub.clone();
        let result = {
            let wait = async {
                match &mut resume {
                    Resume::Never => None,
                    Resume::Server { attach, expiration } => {
                        tokio::time::timeout(*expiration, attach.recv())
                            .await
                            .ok()
                            .flatten()
                            .map(|a| (a, None))
                    }
                    Resume::Client { redial, schedule } => {
                        let outcome =
                            crate::session::reconnect_loop(schedule, &hub, |resume, attempt| {
                                let session = resume.then(|| (session_id.clone(), received));
                                redial(session, attempt)
                            })
                            .await;
                        match outcome {
                            crate::session::Outcome::Attached(value) => Some(value),
                            crate::session::Outcome::GaveUp => None,
                        }
                    }
                }
            };
            tokio::pin!(wait);
            let mut cmds: Vec<Command> = Vec::with_capacity(TURN_BATCH);
            let mut accepting = true;
            loop {
                tokio::select! {
                    biased;
                    () = self.shared.stop.cancelled() => break None,
                    a = &mut wait => break a,
                    Some(_) = self.running.next(), if !self.running.is_empty() => {
                        // A reply produced now has no transport: lost, as in Node.
                    }
                    n = self.cmd_rx.recv_many(&mut cmds, TURN_BATCH), if accepting => {
                        if n == 0 {
                            accepting = false;
                            if self.running.is_empty() {
                                break None;
                            }
                        }
                        let mut close = false;
                        for cmd in cmds.drain(..) {
                            match cmd {
                                Command::Send { kind, tail, reply } => {
                                    let (id, _) = self.outbox.originate(kind, &tail);
                                    if let Some(reply) = reply {
                                        self.pending.insert(id, reply);
                                    }
                                }
                                Command::Close => close = true,
                            Command::Snapshot(reply) => {
                                let _ = reply.send(self.snapshot());
                            }
                            }
                        }
                        if let Some(p) = &mut self.persist {
                            p.turn(self.outbox.mark());
                        }
                        if close {
                            break None;
                        }
                    }
                }
            }
        };
        self.resume = resume;
        result
    }

    fn snapshot(&self) -> crate::session::SessionSnapshot {
        crate::session::SessionSnapshot {
            id: self.shared.session_id.get().to_owned(),
            received: self.outbox.received,
            delivered: self.outbox.delivered,
            next_id: self.outbox.next_id,
            buffer: self
                .outbox
                .buffer
                .iter()
                .map(|(id, f)| (*id, String::from_utf8_lossy(f).into_owned()))
                .collect(),
        }
    }

    /// Move the session onto a new transport (spec §6.2, §6.3): the old one is dropped
    /// entirely first, confirmed frames are pruned, pending calls the peer received fail
    /// with −1, and the rest of the buffer is sent again in order with the original ids.
    fn attach(&mut self, (attach, new_session): (Attach, Option<String>)) {
        if let Some(new) = new_session {
            self.new_session(attach, new);
            return;
        }
        let Attach {
            tx,
            rx,
            peer_received,
            send_handshake_reply,
        } = attach;
        // Dropping the old halves ends the old socket; nothing of it stays attached.
        self.rx = Some(rx);
        self.out.tx = tx;
        self.replay(peer_received, send_handshake_reply);
    }

    /// The client's reconnector started a new session (the old one was unknown to the
    /// server): fail every pending call of the old session with −1, discard its buffer, and
    /// go on with fresh ids on the new transport.
    fn new_session(&mut self, attach: Attach, new: String) {
        self.rx = Some(attach.rx);
        self.out.tx = attach.tx;
        self.out.batch.clear();
        self.out.overflow.clear();
        let discarded = self
            .outbox
            .buffer
            .iter()
            .filter(|(id, _)| !self.pending.contains_key(id))
            .count();
        let failed = self.pending.len();
        for (_, reply) in self.pending.drain() {
            reply.send(Err(Error::Remote(RemoteError::new(ERR_CALLBACK_LOST))));
        }
        let max_buffered = self.outbox.max_buffered;
        self.outbox = Outbox::after_handshake(self.shared.role);
        self.outbox.max_buffered = max_buffered;
        let old = self.shared.session_id.get().to_owned();
        self.shared.session_id.replace(new.clone());
        self.last_heard = tokio::time::Instant::now();
        debug!(%old, %new, failed, discarded, "the session was unknown; started a new one");
        self.shared.hub.set_state(ConnectionState::Connected);
        self.shared.hub.emit(ConnectionEvent::SessionReplaced {
            old,
            new,
            failed,
            discarded,
        });
    }

    /// The peer received our messages up to `peer_received`: prune, fail lost calls with
    /// −1, and queue the rest again (after our handshake reply on a server).
    pub(crate) fn replay(&mut self, peer_received: u64, send_handshake_reply: bool) {
        self.out.batch.clear();
        self.out.overflow.clear();
        self.outbox.confirmed(peer_received as Id);
        let delivered = self.outbox.delivered;
        let buffered: std::collections::HashSet<Id> =
            self.outbox.buffer.iter().map(|(id, _)| *id).collect();
        let lost_ids: Vec<Id> = self
            .pending
            .keys()
            .copied()
            // Received by the peer (its reply is gone), or dropped at the buffer's bound.
            .filter(|id| id.unsigned_abs() <= delivered || !buffered.contains(id))
            .collect();
        let lost = lost_ids.len();
        for id in lost_ids {
            if let Some(reply) = self.pending.remove(&id) {
                reply.send(Err(Error::Remote(RemoteError::new(ERR_CALLBACK_LOST))));
            }
        }
        if send_handshake_reply {
            let mut frame = BytesMut::from(&b"{handshake:[0],ok:"[..]);
            message::write_id(&mut frame, self.outbox.received as Id);
            frame.put_u8(b'}');
            self.out.push(frame.freeze());
        }
        let replayed = self.outbox.buffer.len();
        for (_, frame) in &self.outbox.buffer {
            self.out.batch.push(frame.clone());
        }
        self.last_heard = tokio::time::Instant::now();
        debug!(peer_received, replayed, lost, "session restored");
        if let Some(o) = &self.observer {
            o.restored(&self.connection());
        }
        if let Some(p) = &mut self.persist {
            p.restored();
        }
        self.keep = None;
        self.shared.hub.set_state(ConnectionState::Connected);
        self.shared.hub.emit(ConnectionEvent::Restored {
            peer_received,
            replayed,
            lost,
        });
    }

    async fn main_loop(&mut self) -> End {
        // Grows on demand; released on each heartbeat with the other per-turn buffers.
        let mut cmds: Vec<Command> = Vec::new();
        let mut accepting = true;
        let mut reading = true;
        let mut deadline: Option<tokio::time::Instant> = None;
        let mut beat = self.heartbeat.interval.map(|every| {
            let mut i = tokio::time::interval_at(tokio::time::Instant::now() + every, every);
            i.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            i
        });
        let resumable = !matches!(self.resume, Resume::Never);
        // After a restore: the handshake reply and the replay go out now.
        if let Err(e) = self.out.flush() {
            return End::Lost(Some(e));
        }
        loop {
            if deadline.is_some()
                && self.running.is_empty()
                && (self.pending.is_empty() || !reading)
            {
                return End::Graceful(None);
            }
            let front = self.out.overflow.front().cloned();
            let can_read = reading && self.out.overflow.len() < OVERFLOW_LIMIT;
            let can_take = accepting && self.out.overflow.is_empty();
            tokio::select! {
                biased;
                () = self.shared.stop.cancelled() => return End::Abort(None),
                a = next_attach(&mut self.resume) => {
                    // A client resumed while we still held its old (half-open) transport:
                    // drop that one entirely and take the new one.
                    debug!("session restored over a live transport");
                    self.attach((a, None));
                }
                _ = tick(&mut beat), if beat.is_some() && deadline.is_none() => {
                    if let Some(limit) = self.heartbeat.timeout
                        && self.last_heard.elapsed() >= limit
                    {
                        debug!(?limit, "the peer is silent; declaring it dead");
                        return End::Lost(Some(Error::Protocol("the peer stopped answering".into())));
                    }
                    // Per-turn buffers are empty between turns: let a quiet connection
                    // hold none of them.
                    self.outbox.release();
                    self.out.batch = Vec::new();
                    cmds = Vec::new();
                    let (_, frame) = self.outbox.originate(Kind::Ping, b"]}");
                    self.out.push(frame);
                }
                () = sleep_until(deadline), if deadline.is_some() => {
                    debug!("close grace period over");
                    return End::Graceful(None);
                }
                Some(done) = self.running.next(), if !self.running.is_empty() => {
                    // Messages a handler queued before it returned go out before its reply.
                    if accepting {
                        self.drain_commands();
                    }
                    self.on_done(done);
                }
                res = send_front(&self.out.tx, front), if !self.out.overflow.is_empty() => {
                    if let Err(e) = res {
                        if resumable && deadline.is_none() {
                            return End::Lost(None);
                        }
                        return End::Abort(Some(Error::Transport(e)));
                    }
                    self.out.overflow.pop_front();
                }
                n = self.cmd_rx.recv_many(&mut cmds, TURN_BATCH), if can_take => {
                    if n == 0 {
                        // Every handle is gone: close.
                        accepting = false;
                        deadline.get_or_insert_with(|| self.grace_deadline());
                    }
                    for cmd in cmds.drain(..) {
                        if self.on_command(cmd) {
                            self.close_requested = true;
                        }
                    }
                }
                frame = next_frame(&mut self.rx), if can_read => {
                    let mut frame = frame;
                    let mut budget = TURN_BATCH;
                    loop {
                        match frame {
                            None => {
                                debug!("the peer closed the connection");
                                if resumable && deadline.is_none() && accepting {
                                    return End::Lost(None);
                                }
                                reading = false;
                                deadline.get_or_insert_with(|| self.grace_deadline());
                                break;
                            }
                            Some(Err(e)) => {
                                if resumable
                                    && deadline.is_none()
                                    && accepting
                                    && e.kind() == connkit_core::ErrorKind::Io
                                {
                                    debug!(error = %e, "connection lost");
                                    return End::Lost(None);
                                }
                                return if e.kind() == connkit_core::ErrorKind::Io {
                                    debug!(error = %e, "connection lost");
                                    End::Abort(None)
                                } else {
                                    End::Abort(Some(Error::Transport(e)))
                                };
                            }
                            Some(Ok(bytes)) => {
                                // Once per batch: reading the clock per frame shows up.
                                if budget == TURN_BATCH {
                                    self.last_heard = tokio::time::Instant::now();
                                }
                                if let Err(e) = self.on_frame(&bytes) {
                                    debug!(error = %e, "closing: protocol violation");
                                    self.out.flush().ok();
                                    return End::Graceful(Some(e));
                                }
                            }
                        }
                        budget -= 1;
                        if budget == 0 {
                            break;
                        }
                        // More frames already read? Take them in this turn.
                        match self.rx.as_mut().and_then(|r| r.next().now_or_never()) {
                            Some(f) => frame = f,
                            None => break,
                        }
                    }
                }
            }
            if std::mem::take(&mut self.close_requested) {
                deadline.get_or_insert_with(|| self.grace_deadline());
            }
            if let Err(e) = self.out.flush() {
                if resumable && deadline.is_none() {
                    return End::Lost(Some(e));
                }
                return End::Abort(Some(e));
            }
            if let Some(p) = &mut self.persist {
                p.turn(self.outbox.mark());
            }
        }
    }

    fn grace_deadline(&self) -> tokio::time::Instant {
        self.shared.closing.store(true, Ordering::Release);
        self.shared.hub.set_state(ConnectionState::Closing);
        tokio::time::Instant::now() + self.close_grace
    }

    /// Handle one command; returns true when it asks to close.
    fn on_command(&mut self, cmd: Command) -> bool {
        match cmd {
            Command::Send { kind, tail, reply } => {
                let (id, frame) = self.outbox.originate(kind, &tail);
                if let Some(reply) = reply {
                    self.pending.insert(id, reply);
                }
                self.out.push(frame);
                false
            }
            Command::Close => true,
            Command::Snapshot(reply) => {
                let _ = reply.send(self.snapshot());
                false
            }
        }
    }

    fn on_done(&mut self, done: Done) {
        match done {
            Done::Nothing => {}
            Done::Reply { id, result } => self.send_reply(id, result),
            Done::Panicked {
                id,
                handler,
                message,
            } => {
                warn!(%handler, %message, "handler panicked");
                if let Some(o) = &self.observer {
                    o.panicked(&self.connection(), &handler, &message);
                }
                self.shared
                    .hub
                    .emit(ConnectionEvent::HandlerPanicked { handler, message });
                if let Some(id) = id {
                    self.send_reply(id, Err(RemoteError::internal()));
                }
            }
        }
    }

    fn send_reply(&mut self, id: Id, result: std::result::Result<OkList, RemoteError>) {
        let max = self.shared.max_message_len;
        let frame = match &result {
            Ok(values) => self
                .outbox
                .reply(|b| message::write_callback_ok(b, id, values.as_slice())),
            Err(e) => self
                .outbox
                .reply(|b| message::write_callback_error(b, id, e)),
        };
        let frame = match frame {
            Ok(f) if f.len() <= max => f,
            other => {
                // NaN/Infinity in the result, or a reply too long to send: answer 16.
                debug!(id, ok = other.is_ok(), "reply cannot be sent; answering 16");
                match self
                    .outbox
                    .reply(|b| message::write_callback_error(b, id, &RemoteError::internal()))
                {
                    Ok(f) => f,
                    Err(_) => return,
                }
            }
        };
        self.out.push(frame);
    }

    /// Handle one incoming frame. An `Err` closes the connection.
    fn on_frame(&mut self, bytes: &[u8]) -> Result<()> {
        // The two messages of every call, in the exact form Node and we write them, skip the
        // general object reading (the arguments and results are still parsed in full).
        if bytes.get(1) == Some(&b'c') {
            if let Some((id, values)) = message::fast_callback(bytes) {
                self.outbox.confirmed(id);
                self.on_callback(id, Ok(values));
                return Ok(());
            }
            if let Some((id, interface, method, args)) = message::fast_call(bytes) {
                self.outbox.received = id.unsigned_abs();
                self.on_call(id, interface, method, args);
                return Ok(());
            }
        }
        let parsed = value::parse(bytes)
            .map_err(|e| Error::Protocol(format!("a message does not parse: {e}")))?;
        let msg = match Message::from_value(parsed) {
            Ok(m) => m,
            Err(MessageError::NotAnObject(t)) if self.shared.scheme.is_websocket() => {
                // Node's WebSocket transport ignores a message that is not an object.
                self.reject(|| format!("a message that is not an object ({t})"));
                return Ok(());
            }
            Err(e @ MessageError::NotAnObject(_)) => return Err(Error::Protocol(e.to_string())),
            Err(e) => {
                self.reject(|| e.to_string());
                return Ok(());
            }
        };
        match &msg {
            Message::Call { id, .. }
            | Message::Event { id, .. }
            | Message::Inspect { id, .. }
            | Message::Ping { id } => self.outbox.received = id.unsigned_abs(),
            Message::Callback { id, .. } | Message::Pong { id } => self.outbox.confirmed(*id),
            _ => {}
        }
        match msg {
            Message::Call {
                id,
                interface,
                method,
                args,
            } => self.on_call(id, &interface, &method, args),
            Message::Callback { id, result } => self.on_callback(id, result.map(OkList::Many)),
            Message::Event {
                interface,
                event,
                args,
                ..
            } => match args {
                Value::Array(args) => self.on_event(interface, event, args),
                other => self.reject(|| {
                    format!(
                        "event {interface}.{event} with arguments that are not an array ({})",
                        other.type_name()
                    )
                }),
            },
            Message::Inspect { id, interface } => {
                let result = match self.current_app().methods(&interface) {
                    Some(names) => Ok(OkList::Many(names.into_iter().map(Value::from).collect())),
                    None => Err(RemoteError::new(ERR_INTERFACE_NOT_FOUND)),
                };
                self.send_reply(id, result);
            }
            Message::Ping { id } => {
                if let Ok(f) = self.outbox.reply(|b| {
                    message::write_pong(b, id);
                    Ok(())
                }) {
                    self.out.push(f);
                }
            }
            Message::Pong { id } => match self.pending.remove(&id) {
                Some(reply) => {
                    reply.send(Ok(OkList::EMPTY));
                }
                // Heartbeat pings have no waiter.
                None if self.heartbeat.interval.is_some() => {}
                None => self.reject(|| format!("a pong with unknown id {id}")),
            },
            Message::HandshakeRequest { .. } | Message::HandshakeReply { .. } => {
                return Err(Error::Protocol("a handshake after the handshake".into()));
            }
            Message::Heartbeat => {}
            Message::Unknown { kind } => {
                self.reject(|| format!("a message of unknown kind `{kind}`"))
            }
        }
        Ok(())
    }

    fn on_callback(&mut self, id: Id, result: std::result::Result<OkList, RemoteError>) {
        match self.pending.remove(&id) {
            Some(reply) => {
                reply.send(result.map_err(Error::Remote));
            }
            None => self.reject(|| format!("a callback with unknown id {id}")),
        }
    }

    fn on_call(&mut self, id: Id, interface: &str, method: &str, args: Value) {
        let ctx = self.context();
        match self.current_app().dispatch(ctx, interface, method, args) {
            Dispatch::Now(result) => self.send_reply(id, result),
            Dispatch::Panicked(message) => self.on_done(Done::Panicked {
                id: Some(id),
                handler: format!("{interface}.{method}"),
                message,
            }),
            Dispatch::Later(mut fut) => {
                // Most methods finish at once: poll once here, and only a method that is not
                // done yet joins the running set (which polls it again with the task's waker,
                // so nothing registered during this poll is lost).
                let mut cx = TaskContext::from_waker(std::task::Waker::noop());
                match std::panic::catch_unwind(AssertUnwindSafe(|| fut.as_mut().poll(&mut cx))) {
                    Ok(Poll::Ready(result)) => {
                        // Messages the method queued before it returned go out first.
                        self.drain_commands();
                        self.send_reply(id, result);
                    }
                    Ok(Poll::Pending) => self.running.push(Box::pin(method_done(
                        id,
                        interface.to_owned(),
                        method.to_owned(),
                        fut,
                    ))),
                    Err(payload) => self.on_done(Done::Panicked {
                        id: Some(id),
                        handler: format!("{interface}.{method}"),
                        message: crate::app::panic_message(&*payload),
                    }),
                }
            }
        }
    }

    /// The application to dispatch to: the task's copy, refreshed when a server moved the
    /// connection to another version.
    fn current_app(&mut self) -> &Arc<Application> {
        let generation = self.shared.app.generation();
        if generation != self.app.0 {
            self.app = (generation, self.shared.app.get());
        }
        &self.app.1
    }

    /// Take the commands already queued (without waiting).
    fn drain_commands(&mut self) {
        while let Ok(cmd) = self.cmd_rx.try_recv() {
            if self.on_command(cmd) {
                self.close_requested = true;
            }
        }
    }

    fn on_event(&mut self, interface: String, event: String, args: Vec<Value>) {
        let app = Arc::clone(self.current_app());
        let has_handler = app.has_event_handler(&interface, &event);
        let handler = if has_handler {
            app.event_handler(self.context(), &interface, &event, args.clone())
        } else {
            Ok(None)
        };
        let ev = RemoteEvent {
            interface,
            event,
            args,
        };
        if let Some(o) = &self.observer {
            o.remote_event(&self.connection(), &ev);
        }
        match handler {
            Ok(Some(fut)) => {
                let name = format!("{}.{}", ev.interface, ev.event);
                self.running.push(Box::pin(event_done(name, fut)));
            }
            Ok(None) => {}
            Err(message) => self.on_done(Done::Panicked {
                id: None,
                handler: format!("{}.{}", ev.interface, ev.event),
                message,
            }),
        }
        if let Some(tx) = self.shared.remote_events.get() {
            let _ = tx.send(ev);
        }
    }

    async fn finish(mut self, end: End) {
        self.shared.closing.store(true, Ordering::Release);
        self.shared.hub.set_state(ConnectionState::Closing);
        let error = match end {
            End::Graceful(error) => {
                let grace = self.close_grace.max(Duration::from_millis(100));
                let tx = self.out.tx.clone();
                let overflow = std::mem::take(&mut self.out.overflow);
                let flushed = tokio::time::timeout(grace, async move {
                    for frame in overflow {
                        if tx.send(frame).await.is_err() {
                            break;
                        }
                    }
                    tx.close().await;
                    tx.closed().await;
                });
                tokio::select! {
                    _ = flushed => {}
                    () = self.shared.stop.cancelled() => {}
                }
                error
            }
            End::Abort(error) | End::Lost(error) => error,
        };
        for (_, reply) in self.pending.drain() {
            reply.send(Err(Error::Remote(RemoteError::new(ERR_CALLBACK_LOST))));
        }
        if let Some(p) = self.persist.take() {
            p.finished(self.snapshot());
        }
        // Dropping the receiver closes the socket now.
        drop(self.rx.take());
        self.cmd_rx.close();
        let error = error.map(Arc::new);
        if let Some(e) = &error {
            debug!(error = %e, "connection closed");
        } else {
            debug!("connection closed");
        }
        if let Some(o) = &self.observer {
            let conn = Connection {
                tx: mpsc::channel(1).0,
                shared: Arc::clone(&self.shared),
            };
            o.closed(&conn, error.clone());
        }
        self.shared.hub.set_state(ConnectionState::Closed);
        self.shared.hub.emit(ConnectionEvent::Closed { error });
    }
}

async fn send_front(
    tx: &MessageSender,
    front: Option<Bytes>,
) -> std::result::Result<(), connkit_core::Error> {
    match front {
        Some(f) => tx.send(f).await,
        None => std::future::pending().await,
    }
}

async fn next_attach(resume: &mut Resume) -> Attach {
    if let Resume::Server { attach, .. } = resume
        && let Some(a) = attach.recv().await
    {
        return a;
    }
    std::future::pending().await
}

async fn next_frame(
    rx: &mut Option<MessageReceiver>,
) -> Option<std::result::Result<Bytes, connkit_core::Error>> {
    match rx {
        Some(rx) => rx.next().await,
        None => std::future::pending().await,
    }
}

async fn tick(beat: &mut Option<tokio::time::Interval>) {
    match beat {
        Some(i) => {
            i.tick().await;
        }
        None => std::future::pending().await,
    }
}

async fn sleep_until(deadline: Option<tokio::time::Instant>) {
    match deadline {
        Some(d) => tokio::time::sleep_until(d).await,
        None => std::future::pending().await,
    }
}

async fn method_done(id: Id, interface: String, method: String, fut: MethodFuture) -> Done {
    match run_caught(fut).await {
        Ok(result) => Done::Reply { id, result },
        Err(message) => Done::Panicked {
            id: Some(id),
            handler: format!("{interface}.{method}"),
            message,
        },
    }
}

async fn event_done(handler: String, fut: EventFuture) -> Done {
    match run_caught(fut).await {
        Ok(()) => Done::Nothing,
        Err(message) => Done::Panicked {
            id: None,
            handler,
            message,
        },
    }
}

/// Arguments for a typed call or event: the value must serialize to an array (a tuple, an
/// array, a `Vec`); `()` means no arguments.
pub(crate) fn args_to_values<A: Serialize + ?Sized>(args: &A) -> Result<Vec<Value>> {
    match to_value(args)? {
        Value::Array(items) => Ok(items),
        Value::Null => Ok(Vec::new()),
        other => Err(Error::Convert(<SerdeError as serde::ser::Error>::custom(
            format!(
                "arguments must serialize to an array (a tuple, an array or a Vec), not {}",
                other.type_name()
            ),
        ))),
    }
}

/// A handle to one JSTP connection, on either side: the client's connection to a server, or
/// (on a server) one client's connection, also named [`ClientConnection`].
///
/// Cheap to [`Clone`]; every clone talks to the same connection task. Requests (calls,
/// events, inspects, pings) made through any handle take their ids from the connection's one
/// counter.
#[derive(Clone)]
pub struct Connection {
    tx: mpsc::Sender<Command>,
    shared: Arc<Shared>,
}

/// A server's handle to one connected client: a [`Connection`] whose [`role`](Connection::role)
/// is [`Role::Server`].
pub type ClientConnection = Connection;

impl fmt::Debug for Connection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Connection")
            .field("id", &self.shared.id)
            .field("role", &self.shared.role)
            .field("peer", &self.shared.peer)
            .field("app", &self.shared.remote_app)
            .field("state", &self.shared.hub.current_state())
            .finish()
    }
}

impl Connection {
    /// The process-unique id of this connection.
    #[must_use]
    pub fn id(&self) -> u64 {
        self.shared.id
    }

    /// Which side this is.
    #[must_use]
    pub fn role(&self) -> Role {
        self.shared.role
    }

    /// The transport.
    #[must_use]
    pub fn scheme(&self) -> Scheme {
        self.shared.scheme
    }

    /// The peer's address as text.
    #[must_use]
    pub fn peer(&self) -> &str {
        &self.shared.peer
    }

    /// This side's application: on a server, the application (and version) the client's
    /// handshake chose, or the one [`Server::set_applications`](crate::Server::set_applications)
    /// moved it to; on a client, the client's own application.
    #[must_use]
    pub fn application(&self) -> Arc<Application> {
        self.shared.app.get()
    }

    /// Serve `app` from now on (the next call, event or inspect is dispatched to it; the
    /// ones running finish on the old one). Returns the previous application.
    pub(crate) fn move_to(&self, app: Arc<Application>) -> Arc<Application> {
        self.shared.app.replace(app)
    }

    /// The application named in the handshake and the version or range asked for (`None`:
    /// the latest).
    #[must_use]
    pub fn requested_application(&self) -> (&str, Option<&str>) {
        (
            &self.shared.remote_app.0,
            self.shared.remote_app.1.as_deref(),
        )
    }

    /// The user name the handshake authenticated (`None` for anonymous).
    #[must_use]
    pub fn username(&self) -> Option<&str> {
        self.shared.username.as_deref()
    }

    /// The session id the server gave in its handshake reply (a UUID v4 from our server).
    /// A client whose reconnector had to start a new session
    /// ([`ConnectionEvent::SessionReplaced`]) has the new one.
    #[must_use]
    pub fn session_id(&self) -> &str {
        self.shared.session_id.get()
    }

    pub(crate) fn command_sender(&self) -> &mpsc::Sender<Command> {
        &self.tx
    }

    fn check_open(&self) -> Result<()> {
        if self.shared.closing.load(Ordering::Acquire) || self.tx.is_closed() {
            Err(Error::Closed)
        } else {
            Ok(())
        }
    }

    fn check_len(&self, len: usize) -> Result<()> {
        // The id and the kind add at most 31 bytes.
        if len + 32 > self.shared.max_message_len {
            return Err(Error::Transport(connkit_core::Error::new(
                connkit_core::ErrorKind::InvalidMessage,
                format!(
                    "the message is longer than the {} bytes allowed",
                    self.shared.max_message_len
                ),
            )));
        }
        Ok(())
    }

    pub(crate) async fn send_tail(
        &self,
        kind: Kind,
        tail: Tail,
        want_reply: bool,
    ) -> Result<Option<crate::replies::ReplyWait>> {
        self.check_open()?;
        self.check_len(tail.len())?;
        // Every `YIELD_EVERY` commands the connection task has not taken yet, yield once
        // (before queueing, so a future dropped here has queued nothing): a task issuing
        // thousands of calls in one poll lets the first ones go out while it issues the rest.
        let queued = self.tx.max_capacity() - self.tx.capacity();
        if queued != 0 && queued.is_multiple_of(YIELD_EVERY) {
            yield_once().await;
        }
        let (reply, rx) = if want_reply {
            let (tx, rx) = self.shared.replies.take();
            (Some(tx), Some(rx))
        } else {
            (None, None)
        };
        // `try_send` first: no semaphore wait and no cooperative-budget charge on the common
        // path (the budget would make calls issued together yield every 128, each re-polled).
        match self.tx.try_send(Command::Send { kind, tail, reply }) {
            Ok(()) => {}
            // Rare (8192 commands waiting): boxed, so that every call's future stays small
            // (the benchmark's 5000 futures are moved into their tasks).
            Err(mpsc::error::TrySendError::Full(cmd)) => {
                Box::pin(self.tx.send(cmd))
                    .await
                    .map_err(|_| Error::Closed)?;
            }
            Err(mpsc::error::TrySendError::Closed(_)) => return Err(Error::Closed),
        }
        Ok(rx)
    }

    async fn request(&self, kind: Kind, tail: Tail) -> Result<OkList> {
        let rx = self.send_tail(kind, tail, true).await?;
        match rx {
            // A reply is never ready when first awaited (it needs a round trip), so this await
            // always yields once; exempting it from tokio's cooperative budget only stops a
            // batch of ready replies from being re-polled over and over.
            Some(rx) => tokio::task::unconstrained(rx).await,
            None => Ok(OkList::EMPTY),
        }
    }

    /// Call `interface.method(args…)` on the peer and return the `ok` list (a Node method's
    /// `callback(null, a, b)` gives `[a, b]`; an async one's result gives `[result]`).
    ///
    /// There is no time limit (as in Node); wrap the future in `tokio::time::timeout` for
    /// one. Cancel safe in the sense that dropping the future never corrupts the connection:
    /// if it was dropped after the call was queued, the call still goes out and its reply is
    /// discarded.
    ///
    /// # Errors
    /// [`Error::Remote`] with the peer's error (12, 14, 16, 17, or a method's own), or −1
    /// when the connection closed before the reply; [`Error::Serialize`] when an argument is
    /// NaN or ±Infinity (nothing is sent); [`Error::Closed`] when the connection is closed
    /// or closing.
    pub async fn call(
        &self,
        interface: &str,
        method: &str,
        args: impl AsRef<[Value]>,
    ) -> Result<Vec<Value>> {
        let mut tail = Vec::with_capacity(32 + interface.len() + method.len());
        message::write_target_tail(&mut tail, interface, method, args.as_ref())?;
        self.request(Kind::Call, Tail::Owned(tail))
            .await
            .map(OkList::into_vec)
    }

    /// A snapshot of this connection's session (id, counters, unconfirmed messages), to
    /// resume it from another process with [`ClientOptions::resume`](crate::ClientOptions::resume).
    /// Pending calls are not part of it: their replies can only reach this process.
    ///
    /// Cancel safe.
    ///
    /// # Errors
    /// [`Error::Closed`] when the connection is closed.
    pub async fn export_session(&self) -> Result<crate::session::SessionSnapshot> {
        let (tx, rx) = oneshot::channel();
        self.tx
            .send(Command::Snapshot(tx))
            .await
            .map_err(|_| Error::Closed)?;
        rx.await.map_err(|_| Error::Closed)
    }

    /// Like [`call`](Self::call), but a call the server executed while its reply was lost in
    /// a disconnect (error −1, `CALLBACK_LOST`) is made again after the session is restored:
    /// at-least-once delivery (Node's `callMethodWithResend`). Only for idempotent methods.
    ///
    /// Cancel safe in the same way as [`call`](Self::call).
    ///
    /// # Errors
    /// As [`call`](Self::call), except −1.
    pub async fn call_with_resend(
        &self,
        interface: &str,
        method: &str,
        args: impl AsRef<[Value]>,
    ) -> Result<Vec<Value>> {
        let mut tail = BytesMut::with_capacity(32 + interface.len() + method.len());
        message::write_target_tail(&mut tail, interface, method, args.as_ref())?;
        let tail = tail.freeze();
        loop {
            match self
                .request(Kind::Call, Tail::Shared(tail.clone()))
                .await
                .map(OkList::into_vec)
            {
                Err(Error::Remote(e)) if e.code() == ERR_CALLBACK_LOST && !self.is_closed() => {
                    debug!(interface, method, "reply lost; calling again");
                }
                other => return other,
            }
        }
    }

    /// [`call`](Self::call) with `serde` types: `args` must serialize to an array (a tuple
    /// such as `(2, 3)`, an array, a `Vec`; `()` for none), and the first value of the `ok`
    /// list is read into `R` (`()` accepts an empty list).
    ///
    /// Cancel safe as [`call`](Self::call).
    ///
    /// # Errors
    /// As [`call`](Self::call), and [`Error::Convert`] when the arguments or the result do
    /// not convert.
    pub async fn call_typed<A, R>(&self, interface: &str, method: &str, args: &A) -> Result<R>
    where
        A: Serialize + ?Sized,
        R: DeserializeOwned,
    {
        let mut tail = Vec::with_capacity(32 + interface.len() + method.len());
        if !message::write_typed_target_tail(&mut tail, interface, method, args) {
            let args = args_to_values(args)?;
            tail.clear();
            message::write_target_tail(&mut tail, interface, method, &args)?;
        }
        let ok = self.request(Kind::Call, Tail::Owned(tail)).await?;
        Ok(from_value(ok.into_first())?)
    }

    /// Send the event `interface.event(args…)` to the peer. Returns once the event is queued
    /// on the connection (events have no reply).
    ///
    /// Cancel safe: if the future is dropped before it completes, the event was not queued.
    ///
    /// # Errors
    /// [`Error::Serialize`] for NaN or ±Infinity; [`Error::Closed`].
    pub async fn emit(
        &self,
        interface: &str,
        event: &str,
        args: impl AsRef<[Value]>,
    ) -> Result<()> {
        let mut tail = Vec::with_capacity(32 + interface.len() + event.len());
        message::write_target_tail(&mut tail, interface, event, args.as_ref())?;
        self.send_tail(Kind::Event, Tail::Owned(tail), false)
            .await?;
        Ok(())
    }

    /// [`emit`](Self::emit) with arguments from a `serde` value that serializes to an array.
    ///
    /// Cancel safe as [`emit`](Self::emit).
    ///
    /// # Errors
    /// As [`emit`](Self::emit), and [`Error::Convert`].
    pub async fn emit_typed<A: Serialize + ?Sized>(
        &self,
        interface: &str,
        event: &str,
        args: &A,
    ) -> Result<()> {
        self.emit(interface, event, args_to_values(args)?).await
    }

    /// Ask the peer for the methods of `interface` and get a [`RemoteProxy`] for it.
    ///
    /// Cancel safe as [`call`](Self::call).
    ///
    /// # Errors
    /// [`Error::Remote`] with 12 when the peer has no such interface, or −1; [`Error::Closed`].
    pub async fn inspect(&self, interface: &str) -> Result<RemoteProxy> {
        let mut tail = Vec::with_capacity(8 + interface.len());
        message::write_inspect_tail(&mut tail, interface);
        let names = self
            .request(Kind::Inspect, Tail::Owned(tail))
            .await?
            .into_vec();
        let methods = names
            .into_iter()
            .map(|v| match v {
                Value::String(s) => s,
                other => other.to_string(),
            })
            .collect();
        Ok(RemoteProxy {
            conn: self.clone(),
            interface: interface.into(),
            methods: Arc::new(methods),
        })
    }

    /// Send a ping and wait for the pong.
    ///
    /// Cancel safe as [`call`](Self::call).
    ///
    /// # Errors
    /// [`Error::Remote`] with −1 when the connection closed first; [`Error::Closed`].
    pub async fn ping(&self) -> Result<()> {
        self.request(Kind::Ping, Tail::Shared(Bytes::from_static(b"]}")))
            .await?;
        Ok(())
    }

    /// Events the peer sends from now on: those of `interface`, or all with `None`. A
    /// subscriber that falls more than 1024 events behind gets `Err(Lagged)`.
    #[must_use]
    pub fn remote_events(&self, interface: Option<&str>) -> RemoteEvents {
        let mut state = self.shared.hub.state();
        RemoteEvents {
            inner: BroadcastStream::new(self.shared.remote_events.subscribe()),
            interface: interface.map(str::to_owned),
            closed: Some(Box::pin(async move {
                let _ = state.wait_for(|s| *s == ConnectionState::Closed).await;
            })),
        }
    }

    /// The current state, kept up to date.
    #[must_use]
    pub fn state(&self) -> watch::Receiver<ConnectionState> {
        self.shared.hub.state()
    }

    /// Connection events from now on.
    #[must_use]
    pub fn events(&self) -> EventStream<ConnectionEvent> {
        self.shared.hub.subscribe()
    }

    /// Whether the connection is closing or closed.
    #[must_use]
    pub fn is_closed(&self) -> bool {
        self.shared.closing.load(Ordering::Acquire) || self.tx.is_closed()
    }

    /// Close gracefully and wait until closed: no new requests; running methods and replies
    /// still owed get the close grace period; then queued messages are written and the
    /// transport is shut down. Requests still waiting then fail with −1. Idempotent.
    ///
    /// Cancel safe: the close goes on in the background if this future is dropped.
    pub async fn close(&self) {
        let _ = self.tx.send(Command::Close).await;
        self.closed().await;
    }

    /// Completes when the connection is closed. Cancel safe.
    ///
    /// On a server, a client whose transport is gone counts as closed too
    /// ([`ConnectionState::Disconnected`]), even though its session may still be restored
    /// (then [`ServerEvent::Reconnect`](crate::ServerEvent::Reconnect) follows). On a client
    /// with a reconnector, this waits for the final close.
    pub async fn closed(&self) {
        let server = self.shared.role == Role::Server;
        let mut state = self.shared.hub.state();
        let _ = state
            .wait_for(|s| {
                *s == ConnectionState::Closed || (server && *s == ConnectionState::Disconnected)
            })
            .await;
    }
}

/// The context a method or event handler runs in: the [`Connection`] that called (derefs to
/// it), so a handler can emit events to its caller or call the caller's methods.
#[derive(Clone, Debug)]
pub struct Context {
    conn: Connection,
}

impl Context {
    /// The connection the call or event came from.
    #[must_use]
    pub fn connection(&self) -> &Connection {
        &self.conn
    }
}

impl std::ops::Deref for Context {
    type Target = Connection;

    fn deref(&self) -> &Connection {
        &self.conn
    }
}

/// A peer's interface as an `inspect` reply described it: its method names, and calls and
/// events on it (Node's `RemoteProxy`).
#[derive(Clone, Debug)]
pub struct RemoteProxy {
    conn: Connection,
    interface: String,
    methods: Arc<Vec<String>>,
}

impl RemoteProxy {
    /// The interface name.
    #[must_use]
    pub fn interface(&self) -> &str {
        &self.interface
    }

    /// The method names, in the peer's order.
    #[must_use]
    pub fn methods(&self) -> &[String] {
        &self.methods
    }

    /// Whether the peer listed `method`.
    #[must_use]
    pub fn has_method(&self, method: &str) -> bool {
        self.methods.iter().any(|m| m == method)
    }

    /// Call a method of this interface; see [`Connection::call`] (cancel safe likewise).
    /// Methods the inspect reply did not list are called anyway (the peer answers 14).
    ///
    /// # Errors
    /// As [`Connection::call`].
    pub async fn call(&self, method: &str, args: impl AsRef<[Value]>) -> Result<Vec<Value>> {
        self.conn.call(&self.interface, method, args).await
    }

    /// Call with `serde` types; see [`Connection::call_typed`] (cancel safe likewise).
    ///
    /// # Errors
    /// As [`Connection::call_typed`].
    pub async fn call_typed<A, R>(&self, method: &str, args: &A) -> Result<R>
    where
        A: Serialize + ?Sized,
        R: DeserializeOwned,
    {
        self.conn.call_typed(&self.interface, method, args).await
    }

    /// Send an event on this interface; see [`Connection::emit`] (cancel safe likewise).
    ///
    /// # Errors
    /// As [`Connection::emit`].
    pub async fn emit(&self, event: &str, args: impl AsRef<[Value]>) -> Result<()> {
        self.conn.emit(&self.interface, event, args).await
    }

    /// The peer's events on this interface from now on.
    #[must_use]
    pub fn events(&self) -> RemoteEvents {
        self.conn.remote_events(Some(&self.interface))
    }

    /// The connection.
    #[must_use]
    pub fn connection(&self) -> &Connection {
        &self.conn
    }
}

/// A [`Stream`] of [`RemoteEvent`]s, optionally of one interface; `Err(Lagged)` when this
/// subscriber fell behind. Ends when the connection closes (after the events received
/// before).
pub struct RemoteEvents {
    inner: BroadcastStream<RemoteEvent>,
    interface: Option<String>,
    closed: Option<Pin<Box<dyn Future<Output = ()> + Send>>>,
}

impl fmt::Debug for RemoteEvents {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RemoteEvents")
            .field("interface", &self.interface)
            .finish_non_exhaustive()
    }
}

impl Stream for RemoteEvents {
    type Item = std::result::Result<RemoteEvent, Lagged>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut TaskContext<'_>) -> Poll<Option<Self::Item>> {
        loop {
            match Pin::new(&mut self.inner).poll_next(cx) {
                Poll::Pending => {
                    let Some(closed) = self.closed.as_mut() else {
                        return Poll::Ready(None);
                    };
                    return match closed.as_mut().poll(cx) {
                        Poll::Pending => Poll::Pending,
                        Poll::Ready(()) => {
                            self.closed = None;
                            Poll::Ready(None)
                        }
                    };
                }
                Poll::Ready(None) => return Poll::Ready(None),
                Poll::Ready(Some(Err(BroadcastStreamRecvError::Lagged(missed)))) => {
                    return Poll::Ready(Some(Err(Lagged { missed })));
                }
                Poll::Ready(Some(Ok(ev))) => {
                    if self.interface.as_deref().is_none_or(|i| i == ev.interface) {
                        return Poll::Ready(Some(Ok(ev)));
                    }
                }
            }
        }
    }
}
