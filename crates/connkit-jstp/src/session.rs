//! Sessions that survive reconnects (spec §6) and the client's reconnector (§9).
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

use crate::connection::{ConnectionEvent, ConnectionState};
use crate::error::{ERR_AUTH_FAILED, Error, Result};
use connkit_core::backoff::{Backoff, BackoffPolicy, Jitter};
use connkit_core::events::EventHub;
use std::future::Future;
use std::sync::{Arc, OnceLock};
use std::time::Duration;
use tracing::debug;

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

/// What the client's reconnector does when the server answers `error:[11]` to a resume: the
/// session is unknown or expired there (Node retries that forever, quirk 9).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
#[non_exhaustive]
pub enum UnknownSession {
    /// Handshake afresh at once (the [`ConnectPolicy`](crate::ConnectPolicy) is asked for
    /// credentials with no session) and carry on with a **new session id**. Everything of
    /// the old session is failed, never silently dropped: pending calls (sent or still
    /// buffered) fail with −1 (`CALLBACK_LOST`), and buffered events, pings and inspects
    /// are discarded and counted in [`ConnectionEvent::SessionReplaced`]. The default.
    #[default]
    NewSession,
    /// Give up: the connection closes and its pending calls fail with −1.
    Stop,
}

/// When the client's reconnector tries again (spec §9), and what it does when the session is
/// gone. The default is Node's schedule: wait 1 s, doubling after each failure up to 32 s,
/// plus a random 0–1 s, and never give up.
///
/// The delays come from connkit-core's [`Backoff`] (exponential, factor 2, every attempt
/// delayed, no jitter of its own); the jitter is added on top as Node does (uniform in
/// `[0, jitter]`), so a delay may exceed [`max_delay`](Self::max_delay) by up to the jitter.
/// [`backoff`](Self::backoff) takes any other [`BackoffPolicy`].
///
/// ```
/// use connkit_jstp::{Reconnect, UnknownSession};
/// use std::time::Duration;
///
/// let r = Reconnect::new()
///     .initial_delay(Duration::from_millis(100))
///     .max_delay(Duration::from_secs(5))
///     .jitter(Duration::from_millis(50))
///     .max_attempts(20)
///     .on_unknown_session(UnknownSession::Stop);
/// assert_eq!(r.unknown_session(), UnknownSession::Stop);
/// ```
#[derive(Debug, Clone)]
#[must_use]
pub struct Reconnect {
    initial: Duration,
    max: Duration,
    jitter: Duration,
    max_attempts: Option<u32>,
    policy: Option<Arc<dyn BackoffPolicy>>,
    unknown: UnknownSession,
}

impl Default for Reconnect {
    fn default() -> Self {
        Self::new()
    }
}

impl Reconnect {
    /// Node's schedule: 1 s doubling to 32 s, plus 0–1 s of jitter, forever; a new session
    /// when the old one is unknown.
    pub fn new() -> Self {
        Self {
            initial: Duration::from_secs(1),
            max: Duration::from_secs(32),
            jitter: Duration::from_secs(1),
            max_attempts: None,
            policy: None,
            unknown: UnknownSession::NewSession,
        }
    }

    /// The first wait (later waits double, up to [`max_delay`](Self::max_delay)).
    pub fn initial_delay(mut self, delay: Duration) -> Self {
        self.initial = delay;
        self
    }

    /// The longest wait before the jitter (raised to the initial delay if below it).
    pub fn max_delay(mut self, delay: Duration) -> Self {
        self.max = delay;
        self
    }

    /// A random extra wait in `[0, jitter]` added to each delay (zero: none).
    pub fn jitter(mut self, jitter: Duration) -> Self {
        self.jitter = jitter;
        self
    }

    /// Give up after this many failed attempts in one outage (the connection then closes;
    /// 0 never tries).
    pub fn max_attempts(mut self, attempts: u32) -> Self {
        self.max_attempts = Some(attempts);
        self
    }

    /// Take the delays from `policy` instead (for example a seeded
    /// [`Backoff`] or a fibonacci one); the initial/max delay and max attempts set here are
    /// then unused, the jitter is still added (set it to zero if the policy has its own).
    /// The policy's first delay is waited before the first attempt.
    pub fn backoff(mut self, policy: Arc<dyn BackoffPolicy>) -> Self {
        self.policy = Some(policy);
        self
    }

    /// What to do when the server does not know the session any more (`error:[11]`);
    /// default [`UnknownSession::NewSession`].
    pub fn on_unknown_session(mut self, what: UnknownSession) -> Self {
        self.unknown = what;
        self
    }

    /// What happens on `error:[11]`.
    #[must_use]
    pub fn unknown_session(&self) -> UnknownSession {
        self.unknown
    }

    /// A fresh schedule for one outage: the wait before each attempt (jitter included),
    /// `None` to give up.
    pub fn schedule(&self) -> Box<dyn Iterator<Item = Duration> + Send> {
        let base: Box<dyn Iterator<Item = Duration> + Send> = match &self.policy {
            Some(policy) => policy.new_schedule(),
            None if self.max_attempts == Some(0) => Box::new(std::iter::empty()),
            None => {
                let mut b = Backoff::exponential()
                    .initial_delay(self.initial)
                    .max_delay(self.max.max(self.initial))
                    .factor(2.0)
                    .jitter(Jitter::None)
                    .delay_first_attempt(true);
                if let Some(n) = self.max_attempts {
                    b = b.max_attempts(n);
                }
                match b.build() {
                    Ok(policy) => Box::new(policy.schedule()),
                    // Not reachable with the settings above; give up rather than panic.
                    Err(_) => Box::new(std::iter::empty()),
                }
            }
        };
        let jitter = self.jitter;
        Box::new(base.map(move |d| d + random_up_to(jitter)))
    }

    /// The wait before attempt number `attempt + 1` of an outage, or `None` to give up.
    pub fn delay(&self, attempt: u32) -> Option<Duration> {
        self.schedule().nth(usize::try_from(attempt).ok()?)
    }
}

/// Uniform in `[0, max]` at millisecond resolution (Node: a random integer of ms).
fn random_up_to(max: Duration) -> Duration {
    let ms = u64::try_from(max.as_millis()).unwrap_or(u64::MAX);
    if ms == 0 {
        return Duration::ZERO;
    }
    let r = uuid::Uuid::new_v4().as_u128();
    Duration::from_millis(u64::try_from(r % u128::from(ms.saturating_add(1))).unwrap_or(0))
}

/// How an outage ended for the reconnect loop.
pub(crate) enum Outcome<T> {
    /// Reconnected.
    Attached(T),
    /// Gave up (schedule exhausted, or the session is unknown and the policy is to stop).
    GaveUp,
}

/// The reconnect loop of one outage (spec §9): wait each delay of `schedule`, emit
/// `ReconnectAttempt`, try, emit `ReconnectFailed` on failure. `try_once(resume, attempt)`
/// resumes the session when `resume`, or handshakes afresh. An `error:[11]` to a resume
/// either stops or (default) is followed at once, without a delay, by a fresh attempt.
pub(crate) async fn reconnect_loop<T, F, Fut>(
    schedule: &Reconnect,
    hub: &EventHub<ConnectionState, ConnectionEvent>,
    mut try_once: F,
) -> Outcome<T>
where
    F: FnMut(bool, u32) -> Fut,
    Fut: Future<Output = Result<T>>,
{
    let mut delays = schedule.schedule();
    let mut attempt = 0u32;
    let mut resume = true;
    let mut skip_delay = false;
    loop {
        if !skip_delay {
            let Some(delay) = delays.next() else {
                return Outcome::GaveUp;
            };
            tokio::time::sleep(delay).await;
        }
        skip_delay = false;
        attempt = attempt.saturating_add(1);
        hub.emit(ConnectionEvent::ReconnectAttempt { attempt });
        match try_once(resume, attempt).await {
            Ok(value) => return Outcome::Attached(value),
            Err(e) => {
                debug!(attempt, error = %e, "reconnect failed");
                let unknown =
                    resume && matches!(&e, Error::Remote(r) if r.code() == ERR_AUTH_FAILED);
                hub.emit(ConnectionEvent::ReconnectFailed {
                    attempt,
                    error: Arc::new(e),
                });
                if unknown {
                    match schedule.unknown {
                        UnknownSession::Stop => return Outcome::GaveUp,
                        UnknownSession::NewSession => {
                            debug!("the session is unknown to the server; starting a new one");
                            resume = false;
                            skip_delay = true;
                        }
                    }
                }
            }
        }
    }
}

/// A connection's session id: fixed on a server, replaced on a client that had to start a
/// new session. Readers get a `&str` without a lock: each replacement is appended (a few
/// bytes per replacement, kept while the connection lives) and only the connection's task
/// appends.
#[derive(Debug)]
pub(crate) struct SessionId {
    id: String,
    next: OnceLock<Box<SessionId>>,
}

impl From<String> for SessionId {
    fn from(id: String) -> Self {
        Self {
            id,
            next: OnceLock::new(),
        }
    }
}

impl SessionId {
    fn last(&self) -> &SessionId {
        let mut cur = self;
        while let Some(next) = cur.next.get() {
            cur = next;
        }
        cur
    }

    /// The current id.
    pub(crate) fn get(&self) -> &str {
        &self.last().id
    }

    /// Replace the id (the connection task only).
    pub(crate) fn replace(&self, id: String) {
        let _ = self.last().next.set(Box::new(SessionId::from(id)));
    }
}

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

    /// Every event of an outage, without waiting.
    fn drain(events: &mut connkit_core::events::EventStream<ConnectionEvent>) -> Vec<String> {
        use futures_util::{FutureExt, StreamExt};
        let mut out = Vec::new();
        while let Some(Some(Ok(e))) = events.next().now_or_never() {
            out.push(match e {
                ConnectionEvent::ReconnectAttempt { attempt } => format!("attempt {attempt}"),
                ConnectionEvent::ReconnectFailed { attempt, error } => {
                    format!("failed {attempt}: {error}")
                }
                other => format!("{other:?}"),
            });
        }
        out
    }

    #[tokio::test(start_paused = true)]
    async fn the_default_schedule_emits_attempts_and_failures_in_order_at_node_delays() {
        let hub = EventHub::new(ConnectionState::Disconnected, 64);
        let mut events = hub.subscribe();
        let start = tokio::time::Instant::now();
        let tried = std::sync::Mutex::new(Vec::new());
        let r = Reconnect::new().jitter(Duration::ZERO);
        let outcome = reconnect_loop(&r, &hub, |resume, attempt| {
            assert!(resume);
            tried.lock().unwrap().push(start.elapsed().as_secs());
            async move {
                if attempt < 8 {
                    Err(Error::Protocol("refused".into()))
                } else {
                    Ok(attempt)
                }
            }
        })
        .await;
        assert!(matches!(outcome, Outcome::Attached(8)));
        // 1 s, then doubling to 32 s: attempts at 1, 3, 7, 15, 31, 63, 95, 127 s.
        assert_eq!(*tried.lock().unwrap(), [1, 3, 7, 15, 31, 63, 95, 127]);
        let mut want = Vec::new();
        for a in 1..8 {
            want.push(format!("attempt {a}"));
            want.push(format!("failed {a}: protocol error: refused"));
        }
        want.push("attempt 8".into());
        let got = drain(&mut events);
        assert_eq!(got.len(), want.len(), "{got:?}");
        for (g, w) in got.iter().zip(&want) {
            assert!(g.starts_with(w.split(':').next().unwrap()), "{g} vs {w}");
        }
    }

    #[tokio::test(start_paused = true)]
    async fn an_unknown_session_starts_a_new_one_at_once_or_stops() {
        use crate::error::RemoteError;
        let hub = EventHub::new(ConnectionState::Disconnected, 64);
        let mut events = hub.subscribe();
        let start = tokio::time::Instant::now();
        let tried = std::sync::Mutex::new(Vec::new());
        let r = Reconnect::new().jitter(Duration::ZERO);
        let outcome = reconnect_loop(&r, &hub, |resume, attempt| {
            tried
                .lock()
                .unwrap()
                .push((attempt, resume, start.elapsed().as_secs()));
            async move {
                match attempt {
                    1 => Err(Error::Protocol("refused".into())),
                    2 => Err(Error::Remote(RemoteError::new(ERR_AUTH_FAILED))),
                    _ => Ok(resume),
                }
            }
        })
        .await;
        assert!(matches!(outcome, Outcome::Attached(false)));
        // The fresh handshake follows the 11 without a delay.
        assert_eq!(
            *tried.lock().unwrap(),
            [(1, true, 1), (2, true, 3), (3, false, 3)]
        );
        let got = drain(&mut events);
        assert_eq!(got.len(), 5, "{got:?}");
        assert!(got[3].starts_with("failed 2"), "{got:?}");

        let stop = r.on_unknown_session(UnknownSession::Stop);
        let outcome = reconnect_loop(&stop, &hub, |_, _| async {
            Err::<(), _>(Error::Remote(RemoteError::new(ERR_AUTH_FAILED)))
        })
        .await;
        assert!(matches!(outcome, Outcome::GaveUp));
        assert_eq!(drain(&mut events).len(), 2);
    }

    #[test]
    fn a_custom_backoff_policy_gives_the_delays() {
        let policy = Backoff::constant(Duration::from_millis(250))
            .max_attempts(3)
            .jitter(Jitter::None)
            .delay_first_attempt(true)
            .build()
            .unwrap();
        let r = Reconnect::new()
            .jitter(Duration::ZERO)
            .backoff(Arc::new(policy));
        let ms: Vec<u128> = r.schedule().map(|d| d.as_millis()).collect();
        assert_eq!(ms, [250, 250, 250]);
        assert_eq!(Reconnect::new().max_attempts(0).delay(0), None);
    }

    #[test]
    fn a_replaced_session_id_is_read_without_a_lock() {
        let id = SessionId::from("a".to_owned());
        assert_eq!(id.get(), "a");
        id.replace("b".into());
        id.replace("c".into());
        assert_eq!(id.get(), "c");
    }

    #[test]
    fn gives_up_after_max_attempts() {
        let r = Reconnect::new().max_attempts(2);
        assert!(r.delay(1).is_some());
        assert!(r.delay(2).is_none());
    }
}
