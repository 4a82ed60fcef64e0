//! The [`Connector`] trait that protocol clients implement, the [`Attempt`] it is handed, and
//! the [`Feed`] through which a connection reports what happens to it.

use std::fmt;
use std::future::Future;

use connkit_core::Error;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

/// Identifies one physical connection (and the attempt that made it) within a
/// [`Supervisor`](crate::Supervisor).
///
/// Every attempt gets a fresh id, in increasing order from `#1`, so the connection made by
/// attempt `#3` has id `#3`. Feeds name the id they concern; a feed for any id other than the
/// current connection's is stale and ignored.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ConnId(u64);

impl ConnId {
    /// The id as a number.
    #[must_use]
    pub const fn get(self) -> u64 {
        self.0
    }

    pub(crate) const fn new(n: u64) -> Self {
        Self(n)
    }
}

impl fmt::Display for ConnId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "#{}", self.0)
    }
}

/// Opens, closes and pings connections for a [`Supervisor`](crate::Supervisor).
///
/// The supervisor owns the retry loop, the backoff, the keepalive and the events; a connector
/// only knows how to do one thing at a time.
///
/// Errors are [`connkit_core::Error`]s: [`Error::is_retryable`] decides whether another
/// attempt is made. Return a fatal kind (for example [`ErrorKind::InvalidConfig`] for bad
/// credentials or a bad address) to end the retry loop at once.
///
/// ```
/// use connkit_core::{Error, ErrorKind};
/// use connkit_reconnect::{Attempt, Connector};
///
/// #[derive(Debug)]
/// struct Flaky;
///
/// impl Connector for Flaky {
///     type Conn = u32;
///
///     async fn connect(&self, attempt: Attempt) -> Result<u32, Error> {
///         if attempt.number() < 3 {
///             Err(Error::new(ErrorKind::ConnectFailed, "not yet"))
///         } else {
///             Ok(attempt.number())
///         }
///     }
///
///     async fn close(&self, _conn: u32, _force: bool) {}
/// }
/// ```
///
/// [`ErrorKind::InvalidConfig`]: connkit_core::ErrorKind::InvalidConfig
pub trait Connector: Send + Sync + 'static {
    /// One connection, as the application uses it. It is cloned for the
    /// [`Supervisor::current`](crate::Supervisor::current) accessor and the `on_connect`
    /// callbacks, so make it a cheap handle (a sender, an `Arc`).
    type Conn: Clone + Send + Sync + 'static;

    /// Open one connection.
    ///
    /// `attempt` carries the attempt number, the id the connection will have, a
    /// [`CancellationToken`] and a [`Feed`] for the connection's reader to report heartbeats,
    /// errors and the close.
    ///
    /// Honour the token: when it fires (the connect timeout passed, or the supervisor is
    /// ending), abort and return an error. The supervisor waits up to the connect timeout
    /// (30 s when there is none) for the future to finish after cancelling it; a connection
    /// returned after the cancellation is handed to [`close`](Self::close) with
    /// `force = true`, never leaked. Errors returned after the cancellation are not reported.
    ///
    /// Cancel safety: the supervisor runs this future in its own task and does not drop it
    /// before it completes, except when it ignores the token for longer than that grace
    /// period (or when the runtime shuts down). A panic here counts as a failed attempt.
    fn connect(&self, attempt: Attempt) -> impl Future<Output = Result<Self::Conn, Error>> + Send;

    /// Close a connection. `force` asks for an abrupt close (the connection is considered
    /// dead: keepalive miss, fed error, end(true)); otherwise close gracefully.
    ///
    /// The supervisor calls it exactly once for every connection `connect` returned, and
    /// runs the future to completion (in its own task, or awaited by
    /// [`Supervisor::end`](crate::Supervisor::end)).
    fn close(&self, conn: Self::Conn, force: bool) -> impl Future<Output = ()> + Send;

    /// Elicit a heartbeat from the peer (send a ping message). Called by the keepalive after
    /// each quiet interval; the default does nothing, which leaves the keepalive as a pure
    /// watchdog ("something must arrive"). An error is treated as an error fed for this
    /// connection. The future runs to completion in its own task; a ping that never finishes
    /// does not delay the keepalive's deadline.
    fn ping(&self, conn: &Self::Conn) -> impl Future<Output = Result<(), Error>> + Send {
        let _ = conn;
        async { Ok(()) }
    }
}

/// What a [`Connector::connect`] call is told about its attempt.
#[derive(Debug, Clone)]
pub struct Attempt {
    number: u32,
    id: ConnId,
    token: CancellationToken,
    feed: Feed,
}

impl Attempt {
    pub(crate) fn new(number: u32, id: ConnId, token: CancellationToken, feed: Feed) -> Self {
        Self {
            number,
            id,
            token,
            feed,
        }
    }

    /// The attempt number in the current outage, from 1. It grows across quick reconnects
    /// until a connection has stayed up for the
    /// [`stable_for`](crate::OptionsBuilder::stable_for) duration.
    #[must_use]
    pub fn number(&self) -> u32 {
        self.number
    }

    /// The id the connection will have if this attempt succeeds.
    #[must_use]
    pub fn id(&self) -> ConnId {
        self.id
    }

    /// Cancelled when the attempt is abandoned (connect timeout, `end`, dropped supervisor).
    #[must_use]
    pub fn cancel_token(&self) -> &CancellationToken {
        &self.token
    }

    /// Whether the attempt has been abandoned.
    #[must_use]
    pub fn is_cancelled(&self) -> bool {
        self.token.is_cancelled()
    }

    /// A feed bound to this attempt's connection id, for the connection's reader task.
    #[must_use]
    pub fn feed(&self) -> Feed {
        self.feed.clone()
    }
}

/// What a connection reports to its supervisor.
#[derive(Debug)]
pub(crate) enum FeedKind {
    Error(Error),
    Close { had_error: bool },
    Heartbeat,
    ReschedulePing,
}

/// A message to the supervisor task.
#[derive(Debug)]
pub(crate) enum Command {
    Start,
    Reconnect,
    End { force: bool },
    Feed { id: ConnId, kind: FeedKind },
}

/// Reports what happens to one connection, tagged with its [`ConnId`].
///
/// Cheap to clone. It holds only a weak reference to the supervisor, so a reader task that
/// keeps a `Feed` does not keep the supervisor alive; once the supervisor has ended, feeding
/// does nothing. Feeds for a connection that is no longer the current one are ignored.
///
/// None of the methods block.
#[derive(Clone)]
pub struct Feed {
    id: ConnId,
    tx: mpsc::WeakUnboundedSender<Command>,
}

impl fmt::Debug for Feed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Feed").field("id", &self.id).finish()
    }
}

impl Feed {
    pub(crate) fn new(id: ConnId, tx: mpsc::WeakUnboundedSender<Command>) -> Self {
        Self { id, tx }
    }

    /// The connection this feed reports for.
    #[must_use]
    pub fn id(&self) -> ConnId {
        self.id
    }

    fn send(&self, kind: FeedKind) {
        if let Some(tx) = self.tx.upgrade() {
            let _ = tx.send(Command::Feed { id: self.id, kind });
        }
    }

    /// The connection failed with `error`: the supervisor emits `Error`, closes it with
    /// `force = true` and reconnects (or gives up if the error is fatal).
    pub fn error(&self, error: Error) {
        self.send(FeedKind::Error(error));
    }

    /// The transport reported that the connection closed.
    pub fn close(&self, had_error: bool) {
        self.send(FeedKind::Close { had_error });
    }

    /// Something arrived from the peer: the connection is alive. Also defers the next ping.
    pub fn heartbeat(&self) {
        self.send(FeedKind::Heartbeat);
    }

    /// Something was sent to the peer: defer the next ping by one keepalive interval. This
    /// never moves the liveness deadline, which only heartbeats do.
    pub fn reschedule_ping(&self) {
        self.send(FeedKind::ReschedulePing);
    }
}
