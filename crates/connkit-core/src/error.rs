//! The error type shared by every transport, and the kinds that tell retryable from fatal.

use std::fmt;
use std::io;

/// A boxed error from a lower layer (I/O, TLS, WebSocket), kept as the error's `source()`.
pub type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// What went wrong, in a small `Copy` enum that callers can match on.
///
/// [`ErrorKind::is_retryable`] says whether trying again (a new connection, after a backoff
/// delay) can help. Reconnect loops stop at once on a fatal kind.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ErrorKind {
    /// The endpoint URL could not be parsed, or names something unsupported.
    InvalidEndpoint,
    /// An option is invalid or missing (for example a `tls://` endpoint without TLS config).
    InvalidConfig,
    /// The peer refused the connection, or it could not be reached.
    ConnectFailed,
    /// An operation did not finish within its time limit.
    TimedOut,
    /// An I/O error on an established connection.
    Io,
    /// The TLS handshake or TLS configuration failed (certificates, names).
    Tls,
    /// The WebSocket handshake was rejected (for example a missing subprotocol).
    Handshake,
    /// A WebSocket protocol error on an established connection.
    WebSocket,
    /// An inbound frame or message was longer than the configured maximum.
    FrameTooLong,
    /// The peer sent bytes that break the framing, or the stream ended inside a frame.
    Protocol,
    /// The message to send cannot be framed (it contains the delimiter, or is not UTF-8 on a
    /// text WebSocket).
    InvalidMessage,
    /// The connection is closed; nothing more can be sent.
    Closed,
    /// A bounded queue is full and the caller asked not to wait.
    QueueFull,
    /// The address is in use by a live server, or the path is a file that is not a socket.
    AddrInUse,
    /// The operation was cancelled.
    Cancelled,
}

impl ErrorKind {
    /// Whether a new attempt (after a delay) may succeed where this one failed.
    ///
    /// Fatal kinds: [`InvalidEndpoint`](Self::InvalidEndpoint),
    /// [`InvalidConfig`](Self::InvalidConfig), [`Tls`](Self::Tls),
    /// [`Handshake`](Self::Handshake), [`InvalidMessage`](Self::InvalidMessage),
    /// [`AddrInUse`](Self::AddrInUse) and [`Cancelled`](Self::Cancelled).
    #[must_use]
    pub const fn is_retryable(self) -> bool {
        matches!(
            self,
            Self::ConnectFailed
                | Self::TimedOut
                | Self::Io
                | Self::WebSocket
                | Self::FrameTooLong
                | Self::Protocol
                | Self::Closed
                | Self::QueueFull
        )
    }

    const fn as_str(self) -> &'static str {
        match self {
            Self::InvalidEndpoint => "invalid endpoint",
            Self::InvalidConfig => "invalid configuration",
            Self::ConnectFailed => "connect failed",
            Self::TimedOut => "timed out",
            Self::Io => "i/o error",
            Self::Tls => "tls error",
            Self::Handshake => "handshake rejected",
            Self::WebSocket => "websocket error",
            Self::FrameTooLong => "frame too long",
            Self::Protocol => "protocol error",
            Self::InvalidMessage => "invalid message",
            Self::Closed => "connection closed",
            Self::QueueFull => "queue full",
            Self::AddrInUse => "address in use",
            Self::Cancelled => "cancelled",
        }
    }
}

impl fmt::Display for ErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// An error from a connkit transport: a [`kind`](Error::kind), a message that says what was
/// being done, and the underlying cause as [`source`](std::error::Error::source).
#[derive(Debug, thiserror::Error)]
#[error("{kind}: {message}")]
pub struct Error {
    kind: ErrorKind,
    message: String,
    #[source]
    source: Option<BoxError>,
}

impl Error {
    /// A new error of `kind` with a message saying what went wrong.
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> Self {
        Self {
            kind,
            message: message.into(),
            source: None,
        }
    }

    /// A new error of `kind` caused by `source`.
    pub fn with_source(
        kind: ErrorKind,
        message: impl Into<String>,
        source: impl Into<BoxError>,
    ) -> Self {
        Self {
            kind,
            message: message.into(),
            source: Some(source.into()),
        }
    }

    /// What went wrong.
    #[must_use]
    pub fn kind(&self) -> ErrorKind {
        self.kind
    }

    /// Whether a new attempt may succeed; see [`ErrorKind::is_retryable`].
    #[must_use]
    pub fn is_retryable(&self) -> bool {
        self.kind.is_retryable()
    }

    /// The message, without the kind or the source.
    #[must_use]
    pub fn message(&self) -> &str {
        &self.message
    }

    /// An error for an I/O failure while doing `what`, with the kind chosen from the
    /// [`io::ErrorKind`] (refused and unreachable are [`ErrorKind::ConnectFailed`]).
    pub fn io(what: impl Into<String>, err: io::Error) -> Self {
        let kind = match err.kind() {
            io::ErrorKind::ConnectionRefused
            | io::ErrorKind::NotFound
            | io::ErrorKind::AddrNotAvailable
            | io::ErrorKind::HostUnreachable
            | io::ErrorKind::NetworkUnreachable => ErrorKind::ConnectFailed,
            io::ErrorKind::TimedOut => ErrorKind::TimedOut,
            io::ErrorKind::AddrInUse => ErrorKind::AddrInUse,
            io::ErrorKind::InvalidData => ErrorKind::Protocol,
            _ => ErrorKind::Io,
        };
        Self::with_source(kind, what, err)
    }

    /// The connection is closed.
    pub fn closed() -> Self {
        Self::new(ErrorKind::Closed, "the connection is closed")
    }
}

impl From<crate::endpoint::EndpointError> for Error {
    fn from(e: crate::endpoint::EndpointError) -> Self {
        Self::with_source(ErrorKind::InvalidEndpoint, "parsing an endpoint", e)
    }
}

/// A `Result` with [`Error`] as the error type.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// An error and its chain of sources as one line, `outer: cause: root cause`; a cause whose
/// text the line already holds is not repeated (many errors print their source themselves).
///
/// ```
/// let e = connkit_core::Error::io(
///     "connect tcp://127.0.0.1:1",
///     std::io::Error::other("refused"),
/// );
/// let line = connkit_core::error::display_chain(&e);
/// assert!(line.ends_with(": refused"), "{line}");
/// ```
#[must_use]
pub fn display_chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut out = e.to_string();
    let mut cur = e.source();
    while let Some(s) = cur {
        let text = s.to_string();
        if !out.contains(&text) {
            out.push_str(": ");
            out.push_str(&text);
        }
        cur = s.source();
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refused_is_retryable_and_config_is_fatal() {
        let refused = Error::io(
            "connect tcp://127.0.0.1:1",
            io::Error::from(io::ErrorKind::ConnectionRefused),
        );
        assert_eq!(refused.kind(), ErrorKind::ConnectFailed);
        assert!(refused.is_retryable());
        let cfg = Error::new(ErrorKind::InvalidConfig, "no tls config");
        assert!(!cfg.is_retryable());
        assert_eq!(cfg.to_string(), "invalid configuration: no tls config");
        assert!(std::error::Error::source(&refused).is_some());
    }

    #[test]
    fn a_chain_names_each_cause_once() {
        let root = io::Error::other("root cause");
        let mid = Error::with_source(ErrorKind::Protocol, "middle", root);
        let line = display_chain(&mid);
        assert_eq!(line.matches("root cause").count(), 1, "{line}");
        assert!(line.starts_with(&mid.to_string()), "{line}");
        #[derive(Debug)]
        struct Outer(Error);
        impl std::fmt::Display for Outer {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("outer")
            }
        }
        impl std::error::Error for Outer {
            fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
                Some(&self.0)
            }
        }
        let line = display_chain(&Outer(mid));
        assert!(line.starts_with("outer: "), "{line}");
        assert!(line.ends_with("root cause"), "{line}");
    }
}
