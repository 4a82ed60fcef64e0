//! [`Options`]: connect timeout, backoff, keepalive and retry settings, built and validated
//! by [`OptionsBuilder`].

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use connkit_core::Error;
use connkit_core::backoff::{BackoffBuilder, BackoffError, BackoffPolicy, Jitter, Strategy};
use connkit_core::events::DEFAULT_EVENT_CAPACITY;

/// The retry predicate: given an error and the number of attempts made so far in this
/// outage, return `false` to stop retrying (the supervisor then gives up).
pub type RetryPredicate = Arc<dyn Fn(&Error, u32) -> bool + Send + Sync>;

/// An option that cannot work, reported by [`OptionsBuilder::build`] (never later).
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum OptionsError {
    /// The backoff settings are invalid (factor below 1, max delay below the initial delay,
    /// zero max attempts).
    #[error(transparent)]
    Backoff(#[from] BackoffError),
    /// A zero initial delay would make every retry immediate: a hot loop.
    #[error("the initial delay must be greater than zero")]
    ZeroInitialDelay,
    /// A zero connect timeout would fail every attempt. Use
    /// [`OptionsBuilder::no_connect_timeout`] to wait without limit.
    #[error("the connect timeout must be greater than zero (use no_connect_timeout for none)")]
    ZeroConnectTimeout,
    /// With keepalive on, a zero keepalive timeout would declare every connection dead.
    #[error("the keepalive timeout must be greater than zero")]
    ZeroKeepaliveTimeout,
}

/// Validated settings of a [`Supervisor`](crate::Supervisor). Cheap to clone.
///
/// The defaults are those of `@connback/core` where it has the setting:
///
/// | setting | default |
/// |---|---|
/// | [`keepalive`](OptionsBuilder::keepalive) | 60 s (zero disables) |
/// | [`keepalive_timeout`](OptionsBuilder::keepalive_timeout) | equal to `keepalive` |
/// | [`connect_timeout`](OptionsBuilder::connect_timeout) | 30 s |
/// | [`strategy`](OptionsBuilder::strategy) | fibonacci |
/// | [`jitter`](OptionsBuilder::jitter) | full |
/// | [`initial_delay`](OptionsBuilder::initial_delay) | 1 s |
/// | [`max_delay`](OptionsBuilder::max_delay) | 30 s |
/// | [`max_attempts`](OptionsBuilder::max_attempts) | unlimited |
/// | [`factor`](OptionsBuilder::factor) | 2 |
/// | [`delay_first_attempt`](OptionsBuilder::delay_first_attempt) | false |
/// | [`retry`](OptionsBuilder::retry) | none (retry every retryable error) |
/// | [`stable_for`](OptionsBuilder::stable_for) | 10 s |
#[derive(Clone)]
pub struct Options {
    pub(crate) keepalive: Duration,
    pub(crate) keepalive_timeout: Duration,
    pub(crate) connect_timeout: Option<Duration>,
    pub(crate) stable_for: Duration,
    pub(crate) backoff: Arc<dyn BackoffPolicy>,
    pub(crate) retry: Option<RetryPredicate>,
    pub(crate) event_capacity: usize,
}

impl fmt::Debug for Options {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Options")
            .field("keepalive", &self.keepalive)
            .field("keepalive_timeout", &self.keepalive_timeout)
            .field("connect_timeout", &self.connect_timeout)
            .field("stable_for", &self.stable_for)
            .field("backoff", &self.backoff)
            .field("retry", &self.retry.as_ref().map(|_| "<fn>"))
            .field("event_capacity", &self.event_capacity)
            .finish()
    }
}

impl Default for Options {
    /// The defaults listed on [`Options`].
    fn default() -> Self {
        let b = OptionsBuilder::new();
        Self {
            keepalive: b.keepalive,
            keepalive_timeout: b.keepalive,
            connect_timeout: b.connect_timeout,
            stable_for: b.stable_for,
            backoff: Arc::new(connkit_core::backoff::Backoff::default()),
            retry: None,
            event_capacity: b.event_capacity,
        }
    }
}

impl Options {
    /// A builder with the defaults.
    pub fn builder() -> OptionsBuilder {
        OptionsBuilder::new()
    }

    /// The keepalive interval (zero when disabled).
    #[must_use]
    pub fn keepalive(&self) -> Duration {
        self.keepalive
    }

    /// How long the peer has to answer after a keepalive interval of silence.
    #[must_use]
    pub fn keepalive_timeout(&self) -> Duration {
        self.keepalive_timeout
    }

    /// The time limit of each connect attempt, if any.
    #[must_use]
    pub fn connect_timeout(&self) -> Option<Duration> {
        self.connect_timeout
    }

    /// How long a connection must stay up before the attempt counter starts over.
    #[must_use]
    pub fn stable_for(&self) -> Duration {
        self.stable_for
    }

    /// The backoff policy.
    #[must_use]
    pub fn backoff(&self) -> &Arc<dyn BackoffPolicy> {
        &self.backoff
    }
}

/// Builds [`Options`]; see there for the defaults. Nothing is checked until
/// [`build`](Self::build), which reports every impossible setting as an [`OptionsError`].
///
/// ```
/// use std::time::Duration;
/// use connkit_reconnect::{Options, Strategy, Jitter};
///
/// let options = Options::builder()
///     .keepalive(Duration::from_secs(10))
///     .keepalive_timeout(Duration::from_secs(15))
///     .connect_timeout(Duration::from_secs(5))
///     .strategy(Strategy::Exponential)
///     .initial_delay(Duration::from_millis(200))
///     .max_delay(Duration::from_secs(10))
///     .jitter(Jitter::Equal)
///     .max_attempts(20)
///     .stable_for(Duration::from_secs(30))
///     .build()?;
/// assert_eq!(options.keepalive_timeout(), Duration::from_secs(15));
/// # Ok::<(), connkit_reconnect::OptionsError>(())
/// ```
#[derive(Clone)]
#[must_use]
pub struct OptionsBuilder {
    keepalive: Duration,
    keepalive_timeout: Option<Duration>,
    connect_timeout: Option<Duration>,
    strategy: Strategy,
    jitter: Jitter,
    initial_delay: Duration,
    max_delay: Duration,
    max_attempts: Option<u32>,
    factor: f64,
    delay_first_attempt: bool,
    seed: Option<u64>,
    policy: Option<Arc<dyn BackoffPolicy>>,
    stable_for: Duration,
    retry: Option<RetryPredicate>,
    event_capacity: usize,
}

impl fmt::Debug for OptionsBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OptionsBuilder")
            .field("keepalive", &self.keepalive)
            .field("keepalive_timeout", &self.keepalive_timeout)
            .field("connect_timeout", &self.connect_timeout)
            .field("strategy", &self.strategy)
            .field("jitter", &self.jitter)
            .field("initial_delay", &self.initial_delay)
            .field("max_delay", &self.max_delay)
            .field("max_attempts", &self.max_attempts)
            .field("factor", &self.factor)
            .field("delay_first_attempt", &self.delay_first_attempt)
            .field("seed", &self.seed)
            .field("policy", &self.policy)
            .field("stable_for", &self.stable_for)
            .field("retry", &self.retry.as_ref().map(|_| "<fn>"))
            .field("event_capacity", &self.event_capacity)
            .finish()
    }
}

impl Default for OptionsBuilder {
    fn default() -> Self {
        Self::new()
    }
}

impl OptionsBuilder {
    /// A builder with the defaults listed on [`Options`].
    pub fn new() -> Self {
        Self {
            keepalive: Duration::from_secs(60),
            keepalive_timeout: None,
            connect_timeout: Some(Duration::from_secs(30)),
            strategy: Strategy::Fibonacci,
            jitter: Jitter::Full,
            initial_delay: Duration::from_secs(1),
            max_delay: Duration::from_secs(30),
            max_attempts: None,
            factor: 2.0,
            delay_first_attempt: false,
            seed: None,
            policy: None,
            stable_for: Duration::from_secs(10),
            retry: None,
            event_capacity: DEFAULT_EVENT_CAPACITY,
        }
    }

    /// The keepalive interval (default 60 s; `Duration::ZERO` disables keepalive).
    ///
    /// After this long without a heartbeat or outbound traffic the connector's
    /// [`ping`](crate::Connector::ping) is called; a connection from which nothing has been
    /// heard for `keepalive + keepalive_timeout` is closed (`force = true`) and replaced.
    pub fn keepalive(mut self, interval: Duration) -> Self {
        self.keepalive = interval;
        self
    }

    /// How long the peer has to answer once a keepalive interval has passed in silence
    /// (default: equal to [`keepalive`](Self::keepalive)).
    pub fn keepalive_timeout(mut self, timeout: Duration) -> Self {
        self.keepalive_timeout = Some(timeout);
        self
    }

    /// The time limit of each connect attempt (default 30 s). A timed-out attempt is
    /// cancelled and counts as a failed attempt with [`ErrorKind::TimedOut`].
    ///
    /// [`ErrorKind::TimedOut`]: connkit_core::ErrorKind::TimedOut
    pub fn connect_timeout(mut self, timeout: Duration) -> Self {
        self.connect_timeout = Some(timeout);
        self
    }

    /// Let every connect attempt take as long as the connector wants.
    pub fn no_connect_timeout(mut self) -> Self {
        self.connect_timeout = None;
        self
    }

    /// How retry delays grow (default [`Strategy::Fibonacci`]).
    pub fn strategy(mut self, strategy: Strategy) -> Self {
        self.strategy = strategy;
        self
    }

    /// How randomness is applied to each delay (default [`Jitter::Full`]).
    pub fn jitter(mut self, jitter: Jitter) -> Self {
        self.jitter = jitter;
        self
    }

    /// The delay before the first retry (default 1 s; must be greater than zero).
    pub fn initial_delay(mut self, delay: Duration) -> Self {
        self.initial_delay = delay;
        self
    }

    /// The largest delay between two attempts (default 30 s; at least the initial delay).
    pub fn max_delay(mut self, delay: Duration) -> Self {
        self.max_delay = delay;
        self
    }

    /// Give up after this many attempts in one outage, reported as
    /// [`Event::GaveUp`](crate::Event::GaveUp) (default: never). The first connect counts as
    /// attempt 1, and so do quick reconnects until a connection is
    /// [stable](Self::stable_for).
    #[doc(alias = "max_num_of_attempts")]
    #[doc(alias = "maxNumOfAttempts")]
    pub fn max_attempts(mut self, attempts: u32) -> Self {
        self.max_attempts = Some(attempts);
        self
    }

    /// Never give up on retryable errors (the default).
    pub fn unlimited_attempts(mut self) -> Self {
        self.max_attempts = None;
        self
    }

    /// The growth factor of [`Strategy::Exponential`] (default 2; at least 1).
    pub fn factor(mut self, factor: f64) -> Self {
        self.factor = factor;
        self
    }

    /// Wait a backoff delay before the first attempt of an outage too (default false).
    pub fn delay_first_attempt(mut self, delay: bool) -> Self {
        self.delay_first_attempt = delay;
        self
    }

    /// Seed the jitter, so that the delays are the same on every run (tests).
    pub fn seed(mut self, seed: u64) -> Self {
        self.seed = Some(seed);
        self
    }

    /// Use this policy instead of the strategy, jitter, delays, factor, attempts and seed
    /// settings (for example the `backoff` crate adapter of `connkit_core`).
    pub fn backoff_policy(mut self, policy: Arc<dyn BackoffPolicy>) -> Self {
        self.policy = Some(policy);
        self
    }

    /// How long a connection must stay up before the attempt counter starts over
    /// (default 10 s; zero resets on every connection, as `@connback/core` does).
    ///
    /// A connection that drops sooner continues the current backoff schedule, so a server
    /// that accepts and drops at once is retried with growing delays, not in a hot loop.
    pub fn stable_for(mut self, duration: Duration) -> Self {
        self.stable_for = duration;
        self
    }

    /// An extra retry predicate, asked after every retryable error (failed attempt or fed
    /// error) with the number of attempts made so far in the outage. Returning `false` stops
    /// retrying: the supervisor gives up, reporting [`Event::GaveUp`](crate::Event::GaveUp).
    /// It cannot make a fatal error retryable, and it does not replace any of the
    /// supervisor's own bookkeeping.
    pub fn retry(
        mut self,
        predicate: impl Fn(&Error, u32) -> bool + Send + Sync + 'static,
    ) -> Self {
        self.retry = Some(Arc::new(predicate));
        self
    }

    /// How many events an event-stream subscriber may fall behind before it lags (default
    /// 256, at least 1).
    pub fn event_capacity(mut self, capacity: usize) -> Self {
        self.event_capacity = capacity.max(1);
        self
    }

    /// Check the settings and make the [`Options`].
    ///
    /// # Errors
    /// [`OptionsError`] for a zero initial delay, connect timeout or keepalive timeout, and
    /// for backoff settings that [`BackoffBuilder::build`] rejects.
    pub fn build(self) -> Result<Options, OptionsError> {
        let backoff: Arc<dyn BackoffPolicy> = match self.policy {
            Some(policy) => policy,
            None => {
                if self.initial_delay.is_zero() {
                    return Err(OptionsError::ZeroInitialDelay);
                }
                let mut b = BackoffBuilder::new(self.strategy)
                    .initial_delay(self.initial_delay)
                    .max_delay(self.max_delay)
                    .factor(self.factor)
                    .jitter(self.jitter)
                    .delay_first_attempt(self.delay_first_attempt);
                if let Some(n) = self.max_attempts {
                    b = b.max_attempts(n);
                }
                if let Some(seed) = self.seed {
                    b = b.seed(seed);
                }
                Arc::new(b.build()?)
            }
        };
        if self.connect_timeout.is_some_and(|t| t.is_zero()) {
            return Err(OptionsError::ZeroConnectTimeout);
        }
        let keepalive_timeout = self.keepalive_timeout.unwrap_or(self.keepalive);
        if !self.keepalive.is_zero() && keepalive_timeout.is_zero() {
            return Err(OptionsError::ZeroKeepaliveTimeout);
        }
        Ok(Options {
            keepalive: self.keepalive,
            keepalive_timeout,
            connect_timeout: self.connect_timeout,
            stable_for: self.stable_for,
            backoff,
            retry: self.retry,
            event_capacity: self.event_capacity,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_connbacks() {
        let o = Options::builder().build().unwrap();
        assert_eq!(o.keepalive(), Duration::from_secs(60));
        assert_eq!(o.keepalive_timeout(), Duration::from_secs(60));
        assert_eq!(o.connect_timeout(), Some(Duration::from_secs(30)));
        assert_eq!(o.stable_for(), Duration::from_secs(10));
        let d = Options::default();
        assert_eq!(d.keepalive(), o.keepalive());
        assert_eq!(d.connect_timeout(), o.connect_timeout());
    }

    #[test]
    fn keepalive_timeout_follows_the_interval_unless_set() {
        let o = Options::builder()
            .keepalive(Duration::from_secs(5))
            .build()
            .unwrap();
        assert_eq!(o.keepalive_timeout(), Duration::from_secs(5));
        let o = Options::builder()
            .keepalive(Duration::ZERO)
            .build()
            .unwrap();
        assert_eq!(o.keepalive(), Duration::ZERO);
    }
}
