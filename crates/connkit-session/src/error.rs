//! The session error type.

use crate::types::BackendState;
use std::sync::Arc;
use std::time::Duration;

/// The underlying cause of an error, shared so that [`Error`] is cheap to clone (one error
/// may be handed to every pending [`ready`](crate::SessionBackend::ready) future).
pub type Cause = Arc<dyn std::error::Error + Send + Sync + 'static>;

/// Everything that can go wrong in connkit-session.
///
/// [`is_retryable`](Self::is_retryable) tells transient failures (network, timeouts, 5xx,
/// rate limits) from final ones; [`http_status`](Self::http_status) gives the HTTP status
/// when there was one.
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The server answered with an error status (other than 429).
    #[error("{url}: HTTP {status}{}", body_suffix(body))]
    Http {
        /// The URL requested.
        url: String,
        /// The HTTP status code.
        status: u16,
        /// The start of the response body (at most 1 KiB), for the message.
        body: String,
    },
    /// The server answered 429 Too Many Requests.
    #[error("{url}: rate limited (HTTP 429){}", retry_after.map(|d| format!(", retry after {} s", d.as_secs())).unwrap_or_default())]
    RateLimited {
        /// The URL requested.
        url: String,
        /// The server's `Retry-After`, when it sent one in seconds.
        retry_after: Option<Duration>,
    },
    /// The request could not be made or the connection failed (refused, reset, DNS).
    #[error("{url}: {message}")]
    Request {
        /// The URL requested.
        url: String,
        /// What failed.
        message: String,
        /// The lower-level error.
        #[source]
        source: Option<Cause>,
    },
    /// No answer in time.
    #[error("{url}: no answer within {after:?}")]
    Timeout {
        /// The URL requested.
        url: String,
        /// The time limit.
        after: Duration,
    },
    /// The answer could not be understood (not JSON, missing fields).
    #[error("{url}: unexpected response: {message}")]
    InvalidResponse {
        /// The URL requested.
        url: String,
        /// What was wrong.
        message: String,
    },
    /// A URL is malformed or has no usable shape.
    #[error("invalid URL {url:?}: {reason}")]
    InvalidUrl {
        /// The URL given.
        url: String,
        /// Why it cannot be used.
        reason: String,
    },
    /// A setting is invalid or missing (for example a missing `JAMSOCKET_*` variable).
    #[error("invalid configuration: {0}")]
    InvalidConfig(String),
    /// [`SessionBackend::destroy`](crate::SessionBackend::destroy) was called (or every
    /// handle was dropped) before this could complete.
    #[error("the session backend client was destroyed")]
    Destroyed,
    /// The backend terminated before this could complete (for example while waiting for
    /// it to be ready).
    #[error("the backend terminated: {0}")]
    Terminated(Box<BackendState>),
    /// The status stream stopped retrying (its backoff allows no more attempts).
    #[error("the status stream gave up after {attempts} attempts")]
    GaveUp {
        /// Attempts made in the last outage.
        attempts: u32,
        /// The last failure.
        #[source]
        last: Option<Box<Error>>,
    },
    /// A local I/O failure (dev server: binding, spawning a backend).
    #[error("{what}: {source}")]
    Io {
        /// What was being done.
        what: String,
        /// The I/O error.
        #[source]
        source: Arc<std::io::Error>,
    },
}

fn body_suffix(body: &str) -> String {
    let body = body.trim();
    if body.is_empty() {
        String::new()
    } else {
        format!(": {body}")
    }
}

impl Error {
    /// The HTTP status the server answered with, if that is what failed.
    #[must_use]
    pub fn http_status(&self) -> Option<u16> {
        match self {
            Self::Http { status, .. } => Some(*status),
            Self::RateLimited { .. } => Some(429),
            Self::GaveUp { last: Some(e), .. } => e.http_status(),
            _ => None,
        }
    }

    /// Whether the server said we are rate limited (HTTP 429).
    #[must_use]
    pub fn is_rate_limited(&self) -> bool {
        matches!(self, Self::RateLimited { .. })
    }

    /// Whether trying again later may succeed: network failures, timeouts, HTTP 5xx, 408 and
    /// 429. Client errors (4xx), bad URLs, bad configuration and the final states are not.
    #[must_use]
    pub fn is_retryable(&self) -> bool {
        match self {
            Self::Http { status, .. } => *status >= 500 || *status == 408,
            Self::RateLimited { .. }
            | Self::Request { .. }
            | Self::Timeout { .. }
            | Self::InvalidResponse { .. } => true,
            _ => false,
        }
    }

    pub(crate) fn io(what: impl Into<String>, source: std::io::Error) -> Self {
        Self::Io {
            what: what.into(),
            source: Arc::new(source),
        }
    }

    pub(crate) fn invalid_url(url: impl Into<String>, reason: impl Into<String>) -> Self {
        Self::InvalidUrl {
            url: url.into(),
            reason: reason.into(),
        }
    }
}

/// A `Result` with [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_and_retryability() {
        let e = Error::Http {
            url: "http://x/".into(),
            status: 404,
            body: "{\"kind\":\"NotFound\"}".into(),
        };
        assert_eq!(e.http_status(), Some(404));
        assert!(!e.is_retryable());
        assert_eq!(
            e.to_string(),
            "http://x/: HTTP 404: {\"kind\":\"NotFound\"}"
        );
        let r = Error::RateLimited {
            url: "u".into(),
            retry_after: Some(Duration::from_secs(3)),
        };
        assert!(r.is_rate_limited() && r.is_retryable());
        assert_eq!(r.http_status(), Some(429));
        assert!(r.to_string().contains("rate limited"));
        assert!(!Error::Destroyed.is_retryable());
        let g = Error::GaveUp {
            attempts: 3,
            last: Some(Box::new(r)),
        };
        assert_eq!(g.http_status(), Some(429));
    }
}
