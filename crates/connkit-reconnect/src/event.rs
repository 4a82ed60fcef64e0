//! Lifecycle [`Event`]s and the supervisor [`State`].

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use connkit_core::{Error, ErrorKind};
use tokio::time::Instant;

use crate::connector::ConnId;

/// What the supervisor is doing now; watch it with
/// [`Supervisor::state`](crate::Supervisor::state).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum State {
    /// Created with [`Supervisor::new`](crate::Supervisor::new) and not started yet.
    Idle,
    /// Attempt `attempt` of the current outage is running.
    Connecting {
        /// The attempt number, from 1.
        attempt: u32,
    },
    /// Connection `id` is up.
    Connected {
        /// The connection's id.
        id: ConnId,
    },
    /// Waiting until `until` before attempt `attempt`.
    Backoff {
        /// The number of the attempt that will start at `until`.
        attempt: u32,
        /// When the attempt starts.
        until: Instant,
    },
    /// Retrying stopped: attempts exhausted, a fatal error, or the retry predicate said no.
    /// [`Supervisor::reconnect`](crate::Supervisor::reconnect) starts over.
    GaveUp,
    /// Ended by [`Supervisor::end`](crate::Supervisor::end) or by dropping every handle.
    /// Final.
    Ended,
}

impl fmt::Display for State {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Idle => f.write_str("idle"),
            Self::Connecting { attempt } => write!(f, "connecting (attempt {attempt})"),
            Self::Connected { id } => write!(f, "connected {id}"),
            Self::Backoff { attempt, until } => write!(
                f,
                "waiting {:?} before attempt {attempt}",
                until.saturating_duration_since(Instant::now())
            ),
            Self::GaveUp => f.write_str("gave up"),
            Self::Ended => f.write_str("ended"),
        }
    }
}

/// An error carried by [`Event::Error`]: cheap to clone, comparable by kind and text.
#[derive(Debug, Clone)]
pub struct EventError(Arc<Error>);

impl EventError {
    /// The kind of error.
    #[must_use]
    pub fn kind(&self) -> ErrorKind {
        self.0.kind()
    }

    /// Whether another attempt may help.
    #[must_use]
    pub fn is_retryable(&self) -> bool {
        self.0.is_retryable()
    }

    /// The error itself.
    #[must_use]
    pub fn error(&self) -> &Error {
        &self.0
    }
}

impl From<Error> for EventError {
    fn from(e: Error) -> Self {
        Self(Arc::new(e))
    }
}

impl PartialEq for EventError {
    fn eq(&self, other: &Self) -> bool {
        Arc::ptr_eq(&self.0, &other.0)
            || (self.0.kind() == other.0.kind() && self.0.message() == other.0.message())
    }
}

impl fmt::Display for EventError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.0, f)
    }
}

impl std::error::Error for EventError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(&*self.0)
    }
}

/// A lifecycle event. For one outage the order is `Close` → `Offline` → `Reconnect` …, and
/// nothing is emitted after `End`. See `docs/reconnect.md` for the order in every scenario.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum Event {
    /// A connection was established.
    Connect {
        /// Its id; feeds for it must name this id.
        id: ConnId,
    },
    /// Attempt `attempt` will start after `delay` (emitted when the retry is scheduled).
    Reconnect {
        /// The attempt number in this outage, from 1.
        attempt: u32,
        /// How long until the attempt starts.
        delay: Duration,
    },
    /// An established connection is gone (emitted once per connection).
    Close {
        /// The connection.
        id: ConnId,
        /// Whether it ended because of an error (fed error, keepalive miss, or the transport
        /// said so).
        had_error: bool,
    },
    /// The supervisor went offline: the first connect failed or a connection was lost.
    /// Once per outage.
    Offline,
    /// An attempt failed, a connection reported an error, or the keepalive missed.
    Error(EventError),
    /// Retrying stopped after `attempts` attempts in this outage.
    GaveUp {
        /// Attempts made in the outage.
        attempts: u32,
    },
    /// The supervisor ended. The last event.
    End,
}

impl fmt::Display for Event {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Connect { id } => write!(f, "connect {id}"),
            Self::Reconnect { attempt, delay } => {
                write!(f, "reconnect attempt {attempt} in {delay:?}")
            }
            Self::Close { id, had_error } => {
                if *had_error {
                    write!(f, "close {id} with error")
                } else {
                    write!(f, "close {id}")
                }
            }
            Self::Offline => f.write_str("offline"),
            Self::Error(e) => write!(f, "error: {e}"),
            Self::GaveUp { attempts: 1 } => f.write_str("gave up after 1 attempt"),
            Self::GaveUp { attempts } => write!(f, "gave up after {attempts} attempts"),
            Self::End => f.write_str("end"),
        }
    }
}
