//! Sessions that survive reconnects (spec §6) and the client's reconnect schedule (§9).
//!
//! Every originated `call`, `event`, `inspect` and `ping` is kept in the connection's
//! session buffer until the peer confirms it (a `callback` or `pong` for that id or a later
//! one, or the `receivedCount` of a resume handshake). When the transport is lost, the
//! connection does not close: it buffers what is originated meanwhile, and after a restore
//! it sends the unconfirmed frames again, in order, with their original ids. Pending calls
//! the peer had received (its reply was lost) fail with −1 (`CALLBACK_LOST`).
//!
//! **Bound.** The buffer holds at most [`DEFAULT_MAX_BUFFERED`] frames unless configured;
//! past the bound the **oldest** frame is dropped (it will not be replayed; a call among
//! them fails with −1 after the restore). So event-only traffic, which Node keeps forever,
//! uses bounded memory here.

use std::time::Duration;

/// A session exported by [`Connection::export_session`](crate::Connection::export_session),
/// to resume it in another process with [`ClientOptions::resume`](crate::ClientOptions::resume)
/// (serde: store it as JSON, for example). The id is a bearer credential: keep it secret.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[non_exhaustive]
pub struct SessionSnapshot {
    /// The session id the server gave.
    pub id: String,
    /// `receivedCount`: |id| of the last call, event, inspect or ping received.
    pub received: u64,
    /// The highest |id| of ours the peer is known to have received.
    pub delivered: u64,
    /// The id the next originated message takes.
    pub next_id: i64,
    /// The unconfirmed messages, in order: id and frame text.
    pub buffer: Vec<(i64, String)>,
}

/// Default bound of a session buffer, in messages.
pub const DEFAULT_MAX_BUFFERED: usize = 4096;

/// Default `client_expiration_time` of a server: how long a disconnected session waits for
/// its client (Node: 1 h).
pub const DEFAULT_CLIENT_EXPIRATION: Duration = Duration::from_secs(3600);

/// When the client's reconnector tries again (spec §9). The default is Node's: wait 1 s,
/// doubling after each failure up to 32 s, plus a random 0–1 s, and never give up.
///
/// A server answering `error:[11]` (the session is unknown or expired there) stops the
/// reconnector: the connection closes and its pending calls fail with −1.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[must_use]
pub struct Reconnect {
    initial: Duration,
    max: Duration,
    jitter: Duration,
    max_attempts: Option<u32>,
}

impl Default for Reconnect {
    fn default() -> Self {
        Self::new()
    }
}

impl Reconnect {
    /// Node's schedule: 1 s doubling to 32 s, plus 0–1 s of jitter, forever.
    pub fn new() -> Self {
        Self {
            initial: Duration::from_secs(1),
            max: Duration::from_secs(32),
            jitter: Duration::from_secs(1),
            max_attempts: None,
        }
    }

    /// The first wait (later waits double, up to [`max_delay`](Self::max_delay)).
    pub fn initial_delay(mut self, delay: Duration) -> Self {
        self.initial = delay;
        self
    }

    /// The longest wait before the jitter.
    pub fn max_delay(mut self, delay: Duration) -> Self {
        self.max = delay;
        self
    }

    /// A random extra wait in `[0, jitter]` added to each delay (zero: none).
    pub fn jitter(mut self, jitter: Duration) -> Self {
        self.jitter = jitter;
        self
    }

    /// Give up after this many failed attempts (the connection then closes).
    pub fn max_attempts(mut self, attempts: u32) -> Self {
        self.max_attempts = Some(attempts);
        self
    }

    /// The wait before attempt number `attempt + 1`, or `None` to give up.
    pub fn delay(&self, attempt: u32) -> Option<Duration> {
        if self.max_attempts.is_some_and(|m| attempt >= m) {
            return None;
        }
        let base = self
            .initial
            .checked_mul(1u32.checked_shl(attempt.min(31)).unwrap_or(u32::MAX))
            .unwrap_or(self.max)
            .min(self.max);
        let jitter_ms = u64::try_from(self.jitter.as_millis()).unwrap_or(u64::MAX);
        let extra = if jitter_ms == 0 {
            0
        } else {
            let r = uuid::Uuid::new_v4().as_u128();
            u64::try_from(r % u128::from(jitter_ms.saturating_add(1))).unwrap_or(0)
        };
        Some(base + Duration::from_millis(extra))
    }
}

/// The schedule the connection task follows.
pub(crate) type Backoff = Reconnect;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn node_schedule_doubles_to_32_s() {
        let r = Reconnect::new().jitter(Duration::ZERO);
        let secs: Vec<u64> = (0..8).map(|a| r.delay(a).unwrap().as_secs()).collect();
        assert_eq!(secs, [1, 2, 4, 8, 16, 32, 32, 32]);
        assert_eq!(r.delay(1000).unwrap().as_secs(), 32);
    }

    #[test]
    fn jitter_stays_within_a_second() {
        let r = Reconnect::new();
        for _ in 0..100 {
            let d = r.delay(0).unwrap();
            assert!(d >= Duration::from_secs(1) && d <= Duration::from_secs(2));
        }
    }

    #[test]
    fn the_buffer_is_bounded_pruned_by_confirmations_and_keeps_ids() {
        use crate::connection::{Kind, Outbox, Role};
        let mut o = Outbox::after_handshake(Role::Client);
        o.max_buffered = 3;
        for _ in 0..5 {
            o.originate(Kind::Event, b",'i'],e:[]}");
        }
        let ids: Vec<_> = o.buffer.iter().map(|(id, _)| *id).collect();
        assert_eq!(ids, [3, 4, 5]);
        assert_eq!(o.dropped, 2);
        assert_eq!(&o.buffer[0].1[..], b"{event:[3,'i'],e:[]}");
        o.confirmed(4);
        assert_eq!(o.buffer.len(), 1);
        assert_eq!(o.delivered, 4);
        // A peer cannot confirm ids we never sent.
        o.confirmed(100);
        assert!(o.buffer.is_empty());
        assert_eq!(o.delivered, 5);

        let mut s = Outbox::after_handshake(Role::Server);
        s.max_buffered = 10;
        s.originate(Kind::Ping, b"]}");
        s.originate(Kind::Call, b",'i'],m:[]}");
        s.confirmed(-1);
        let ids: Vec<_> = s.buffer.iter().map(|(id, _)| *id).collect();
        assert_eq!(ids, [-2]);
    }

    #[test]
    fn gives_up_after_max_attempts() {
        let r = Reconnect::new().max_attempts(2);
        assert!(r.delay(1).is_some());
        assert!(r.delay(2).is_none());
    }
}
