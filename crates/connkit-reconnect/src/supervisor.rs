//! [`Supervisor`]: the cheap `Clone` handle of the task that keeps a connection alive.

use std::fmt;
use std::sync::{Arc, Weak};
use std::time::Duration;

use connkit_core::events::{EventHub, EventStream};
use connkit_core::{Error, ErrorKind};
use tokio::sync::{mpsc, watch};
use tracing::Instrument;

use crate::actor::Actor;
use crate::callbacks::{Registry, Subscription};
use crate::connector::{Command, ConnId, Connector, Feed, FeedKind};
use crate::event::{Event, EventError, State};
use crate::options::Options;

/// Keeps one logical connection alive over many physical ones.
///
/// A `Supervisor` is a handle to one task that owns the state: it connects through a
/// [`Connector`], retries with backoff, runs the keepalive, and publishes [`Event`]s and the
/// [`State`]. Clones are cheap and share the task. Dropping the last clone ends the
/// supervisor as [`end(false)`](Self::end) would (the current connection is closed, `End`
/// is emitted).
///
/// Callbacks registered with `on_*` run on the supervisor task; a callback that holds a
/// clone of the supervisor keeps it alive until the callback is unsubscribed.
///
/// ```no_run
/// # use connkit_reconnect::{Attempt, Connector, Options, Supervisor};
/// # #[derive(Debug)] struct MyConnector;
/// # impl Connector for MyConnector {
/// #     type Conn = ();
/// #     async fn connect(&self, _: Attempt) -> Result<(), connkit_core::Error> { Ok(()) }
/// #     async fn close(&self, _: (), _: bool) {}
/// # }
/// # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
/// let supervisor = Supervisor::new(MyConnector, Options::builder().build()?);
/// let _guard = supervisor.on_connect(|id, _conn| println!("connected {id}"));
/// let mut events = supervisor.events();
/// supervisor.start(); // subscribe first, then start: no event is missed
/// let (id, conn) = supervisor.connected().await?;
/// // ... use conn; the connection's reader calls supervisor.feed(id).heartbeat() ...
/// supervisor.end(false).await;
/// # let _ = (id, conn, &mut events); Ok(()) }
/// ```
pub struct Supervisor<T> {
    inner: Arc<Inner<T>>,
}

struct Inner<T> {
    commands: mpsc::UnboundedSender<Command>,
    state: watch::Receiver<State>,
    current: watch::Receiver<Option<(ConnId, T)>>,
    hub: Weak<EventHub<State, Event>>,
    callbacks: Arc<Registry<T>>,
}

impl<T> Clone for Supervisor<T> {
    fn clone(&self) -> Self {
        Self {
            inner: Arc::clone(&self.inner),
        }
    }
}

impl<T> fmt::Debug for Supervisor<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Supervisor")
            .field("state", &*self.inner.state.borrow())
            .finish_non_exhaustive()
    }
}

impl<T: Clone + Send + Sync + 'static> Supervisor<T> {
    /// Make a supervisor for `connector`, idle until [`start`](Self::start). Subscribe to
    /// events and register callbacks in between, so that none is missed.
    ///
    /// The supervisor task is spawned at once (it waits for `start`).
    ///
    /// # Panics
    /// Outside a tokio runtime (like [`tokio::spawn`]).
    pub fn new<C: Connector<Conn = T>>(connector: C, options: Options) -> Self {
        let hub = Arc::new(EventHub::new(State::Idle, options.event_capacity));
        let callbacks = Arc::new(Registry::new());
        let (current_tx, current_rx) = watch::channel(None);
        let (tx, rx) = mpsc::unbounded_channel();
        let inner = Inner {
            commands: tx.clone(),
            state: hub.state(),
            current: current_rx,
            hub: Arc::downgrade(&hub),
            callbacks: Arc::clone(&callbacks),
        };
        let actor = Actor::new(
            connector,
            options,
            hub,
            callbacks,
            current_tx,
            rx,
            tx.downgrade(),
        );
        tokio::spawn(
            actor
                .run()
                .instrument(tracing::info_span!("connkit.reconnect")),
        );
        Self {
            inner: Arc::new(inner),
        }
    }

    /// [`new`](Self::new) and [`start`](Self::start) in one call. Events emitted before the
    /// caller subscribes may be missed (the state watch is always current).
    ///
    /// # Panics
    /// Outside a tokio runtime.
    pub fn spawn<C: Connector<Conn = T>>(connector: C, options: Options) -> Self {
        let supervisor = Self::new(connector, options);
        supervisor.start();
        supervisor
    }

    fn send(&self, command: Command) {
        // Fails only when the task has ended; every command is moot then.
        let _ = self.inner.commands.send(command);
    }

    /// Start connecting (the first attempt is not delayed unless
    /// [`delay_first_attempt`](crate::OptionsBuilder::delay_first_attempt) is set).
    /// Idempotent.
    pub fn start(&self) {
        self.send(Command::Start);
    }

    /// Drop the current connection (closing it gracefully) and connect again with a fresh
    /// backoff schedule; or, while waiting between attempts or after giving up, make the
    /// next attempt now. Ignored while an attempt is running and after the end.
    pub fn reconnect(&self) {
        self.send(Command::Reconnect);
    }

    /// End the supervisor: cancel the running attempt, the backoff wait and the keepalive,
    /// close the current connection (`force` is passed to [`Connector::close`]) and emit
    /// `Close` (if connected) and `End`, the last event. Idempotent; returns once the
    /// supervisor has ended.
    ///
    /// Cancel safe: once called, the supervisor ends even if this future is dropped.
    pub async fn end(&self, force: bool) {
        self.send(Command::End { force });
        let mut state = self.inner.state.clone();
        // Err: the task is gone, which also means it ended.
        let _ = state.wait_for(|s| *s == State::Ended).await;
    }

    /// A receiver that always sees the latest [`State`].
    #[must_use]
    pub fn state(&self) -> watch::Receiver<State> {
        self.inner.state.clone()
    }

    /// The state now.
    #[must_use]
    pub fn current_state(&self) -> State {
        self.inner.state.borrow().clone()
    }

    /// Whether the supervisor has ended.
    #[must_use]
    pub fn is_ended(&self) -> bool {
        *self.inner.state.borrow() == State::Ended
    }

    /// The current connection, if one is up.
    #[must_use]
    pub fn current(&self) -> Option<T> {
        self.inner.current.borrow().as_ref().map(|(_, c)| c.clone())
    }

    /// The current connection and its id, if one is up.
    #[must_use]
    pub fn current_with_id(&self) -> Option<(ConnId, T)> {
        self.inner.current.borrow().clone()
    }

    /// Wait until a connection is up and return it with its id.
    ///
    /// Cancel safe.
    ///
    /// # Errors
    /// [`ErrorKind::Closed`] once the supervisor has ended, [`ErrorKind::ConnectFailed`]
    /// while it has given up (call [`reconnect`](Self::reconnect) to try again).
    pub async fn connected(&self) -> Result<(ConnId, T), Error> {
        let mut current = self.inner.current.clone();
        let mut state = self.inner.state.clone();
        loop {
            if let Some(c) = current.borrow_and_update().clone() {
                return Ok(c);
            }
            match &*state.borrow_and_update() {
                State::Ended => return Err(Error::new(ErrorKind::Closed, "the supervisor ended")),
                State::GaveUp => {
                    return Err(Error::new(
                        ErrorKind::ConnectFailed,
                        "the supervisor gave up connecting",
                    ));
                }
                _ => {}
            }
            tokio::select! {
                r = current.changed() => if r.is_err() {
                    return Err(Error::new(ErrorKind::Closed, "the supervisor ended"));
                },
                r = state.changed() => if r.is_err() {
                    return Err(Error::new(ErrorKind::Closed, "the supervisor ended"));
                },
            }
        }
    }

    /// A [`Feed`] for connection `id`, to hand to its reader task. It does not keep the
    /// supervisor alive.
    #[must_use]
    pub fn feed(&self, id: ConnId) -> Feed {
        Feed::new(id, self.inner.commands.downgrade())
    }

    fn feed_kind(&self, id: ConnId, kind: FeedKind) {
        self.send(Command::Feed { id, kind });
    }

    /// Connection `id` failed: emit `Error`, close it (`force = true`) and reconnect, or give
    /// up if the error is fatal. Ignored unless `id` is the current connection.
    pub fn feed_error(&self, id: ConnId, error: Error) {
        self.feed_kind(id, FeedKind::Error(error));
    }

    /// The transport closed connection `id`: emit `Close`, `Offline` and reconnect. Ignored
    /// unless `id` is the current connection.
    pub fn feed_close(&self, id: ConnId, had_error: bool) {
        self.feed_kind(id, FeedKind::Close { had_error });
    }

    /// Something arrived on connection `id`: it is alive (and the next ping is deferred).
    pub fn feed_heartbeat(&self, id: ConnId) {
        self.feed_kind(id, FeedKind::Heartbeat);
    }

    /// Something was sent on connection `id`: defer the next ping by one keepalive interval.
    /// The liveness deadline does not move.
    pub fn reschedule_ping(&self, id: ConnId) {
        self.feed_kind(id, FeedKind::ReschedulePing);
    }

    /// A stream of the events emitted from now on; it ends after `End`. A subscriber that
    /// falls more than [`event_capacity`](crate::OptionsBuilder::event_capacity) events behind
    /// gets a [`Lagged`](connkit_core::events::Lagged) item. Emitting never waits for it.
    #[must_use]
    pub fn events(&self) -> EventStream<Event> {
        match self.inner.hub.upgrade() {
            Some(hub) => hub.subscribe(),
            // Ended: a stream that is already over.
            None => EventHub::<State, Event>::new(State::Ended, 1).subscribe(),
        }
    }

    fn subscribe(&self, f: impl Fn(&Event, Option<&T>) + Send + Sync + 'static) -> Subscription {
        let id = self.inner.callbacks.add(Arc::new(f));
        Subscription::new(&self.inner.callbacks, id)
    }

    /// Call `f` for every event, on the supervisor task, in order, as it is emitted.
    pub fn on_event(&self, f: impl Fn(&Event) + Send + Sync + 'static) -> Subscription {
        self.subscribe(move |e, _| f(e))
    }

    /// Call `f` with each new connection and its id.
    pub fn on_connect(&self, f: impl Fn(ConnId, &T) + Send + Sync + 'static) -> Subscription {
        self.subscribe(move |e, conn| {
            if let (Event::Connect { id }, Some(conn)) = (e, conn) {
                f(*id, conn);
            }
        })
    }

    /// Call `f(attempt, delay)` whenever a retry is scheduled.
    pub fn on_reconnect(&self, f: impl Fn(u32, Duration) + Send + Sync + 'static) -> Subscription {
        self.subscribe(move |e, _| {
            if let Event::Reconnect { attempt, delay } = e {
                f(*attempt, *delay);
            }
        })
    }

    /// Call `f(id, had_error)` when an established connection is gone.
    pub fn on_close(&self, f: impl Fn(ConnId, bool) + Send + Sync + 'static) -> Subscription {
        self.subscribe(move |e, _| {
            if let Event::Close { id, had_error } = e {
                f(*id, *had_error);
            }
        })
    }

    /// Call `f` when the supervisor goes offline.
    pub fn on_offline(&self, f: impl Fn() + Send + Sync + 'static) -> Subscription {
        self.subscribe(move |e, _| {
            if matches!(e, Event::Offline) {
                f();
            }
        })
    }

    /// Call `f` with every error.
    pub fn on_error(&self, f: impl Fn(&EventError) + Send + Sync + 'static) -> Subscription {
        self.subscribe(move |e, _| {
            if let Event::Error(err) = e {
                f(err);
            }
        })
    }

    /// Call `f(attempts)` when the supervisor gives up.
    pub fn on_gave_up(&self, f: impl Fn(u32) + Send + Sync + 'static) -> Subscription {
        self.subscribe(move |e, _| {
            if let Event::GaveUp { attempts } = e {
                f(*attempts);
            }
        })
    }

    /// Call `f` when the supervisor ends.
    pub fn on_end(&self, f: impl Fn() + Send + Sync + 'static) -> Subscription {
        self.subscribe(move |e, _| {
            if matches!(e, Event::End) {
                f();
            }
        })
    }
}
