//! Backoff policies: how long to wait before each connection attempt.
//!
//! A [`Backoff`] is a validated, cheap-to-clone policy. Each outage asks it for a fresh
//! [`Schedule`], an [`Iterator`] of the delays to wait **before each attempt** (the first
//! delay is zero unless [`BackoffBuilder::delay_first_attempt`] is set). `None` means give up.
//!
//! The base delays follow `@connback/core` (its `@jil/backoff` strategies), with
//! `d` = initial delay and `M` = max delay, for retry `k = 1, 2, 3, …`:
//!
//! | strategy | base delay `b_k` |
//! |---|---|
//! | [`Strategy::Exponential`] | `b_1 = min(d, M)`, `b_{k+1} = min(b_k × factor, M)`: d, 2d, 4d, … |
//! | [`Strategy::Fibonacci`] | d, d, 2d, 3d, 5d, 8d, … (uncapped sum, result capped at M; factor unused) |
//! | [`Strategy::Constant`] | d |
//!
//! The cap is applied **before** jitter, so a delay never exceeds `M`. [`Jitter::Full`] picks
//! uniformly in `[0, b_k]`, [`Jitter::Equal`] in `[b_k / 2, b_k]`.
//!
//! ```
//! use std::time::Duration;
//! use connkit_core::backoff::{Backoff, Jitter};
//!
//! let policy = Backoff::fibonacci()
//!     .initial_delay(Duration::from_secs(1))
//!     .max_delay(Duration::from_secs(30))
//!     .jitter(Jitter::None)
//!     .max_attempts(6)
//!     .build()?;
//! let delays: Vec<u64> = policy.schedule().map(|d| d.as_secs()).collect();
//! assert_eq!(delays, [0, 1, 1, 2, 3, 5]); // the first attempt is not delayed
//! # Ok::<(), connkit_core::backoff::BackoffError>(())
//! ```
//!
//! With the `backoff` cargo feature, a [`Schedule`] implements `backoff::backoff::Backoff`
//! and `BackoffCrate` drives connkit's loops with any `backoff::backoff::Backoff`. The
//! feature is off by default because the `backoff` crate is unmaintained (RUSTSEC-2025-0012).

use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// How base delays grow from one retry to the next.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
#[non_exhaustive]
pub enum Strategy {
    /// d, 2d, 4d, … (multiplied by the factor each time), capped.
    Exponential,
    /// d, d, 2d, 3d, 5d, … capped. The default, as in `@connback/core`.
    #[default]
    Fibonacci,
    /// d every time.
    Constant,
}

/// How randomness is mixed into each base delay.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
#[non_exhaustive]
pub enum Jitter {
    /// The base delay as it is.
    None,
    /// Uniform in `[0, base]`. The default, as in `@connback/core`.
    #[default]
    Full,
    /// `base / 2` plus uniform in `[0, base / 2]`.
    Equal,
}

/// A backoff option that cannot work, reported by [`BackoffBuilder::build`].
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum BackoffError {
    /// The factor must be a finite number of at least 1.
    #[error("backoff factor must be finite and at least 1, got {0}")]
    InvalidFactor(f64),
    /// The max delay is below the initial delay.
    #[error("backoff max delay {max:?} is below the initial delay {initial:?}")]
    MaxBelowInitial {
        /// The initial delay given.
        initial: Duration,
        /// The max delay given.
        max: Duration,
    },
    /// `max_attempts(0)` would never try at all; leave it unset for unlimited attempts.
    #[error("backoff max attempts must be at least 1 (leave it unset for unlimited)")]
    ZeroMaxAttempts,
}

/// The validated settings of a policy. Private: read them through [`Backoff`].
#[derive(Debug, Clone, Copy, PartialEq)]
struct Config {
    strategy: Strategy,
    initial: Duration,
    max: Duration,
    factor: f64,
    max_attempts: Option<u32>,
    jitter: Jitter,
    delay_first_attempt: bool,
}

/// Builds a [`Backoff`]. Defaults follow `@connback/core`: fibonacci, 1 s initial delay,
/// 30 s max delay, factor 2, unlimited attempts, full jitter, first attempt not delayed.
#[derive(Debug, Clone, PartialEq)]
#[must_use]
pub struct BackoffBuilder {
    config: Config,
    seed: Option<u64>,
}

impl Default for BackoffBuilder {
    fn default() -> Self {
        Self::new(Strategy::Fibonacci)
    }
}

impl BackoffBuilder {
    /// A builder for `strategy` with the default settings.
    pub const fn new(strategy: Strategy) -> Self {
        Self {
            config: Config {
                strategy,
                initial: Duration::from_secs(1),
                max: Duration::from_secs(30),
                factor: 2.0,
                max_attempts: None,
                jitter: Jitter::Full,
                delay_first_attempt: false,
            },
            seed: None,
        }
    }

    /// The delay before the first retry (default 1 s).
    pub const fn initial_delay(mut self, delay: Duration) -> Self {
        self.config.initial = delay;
        self
    }

    /// The largest base delay (default 30 s). Jitter never goes above it.
    pub const fn max_delay(mut self, delay: Duration) -> Self {
        self.config.max = delay;
        self
    }

    /// The growth factor of [`Strategy::Exponential`] (default 2; other strategies ignore it).
    pub const fn factor(mut self, factor: f64) -> Self {
        self.config.factor = factor;
        self
    }

    /// Give up after this many attempts in one outage (default: never).
    pub const fn max_attempts(mut self, attempts: u32) -> Self {
        self.config.max_attempts = Some(attempts);
        self
    }

    /// Never give up (the default).
    pub const fn unlimited_attempts(mut self) -> Self {
        self.config.max_attempts = None;
        self
    }

    /// How randomness is applied (default [`Jitter::Full`]).
    pub const fn jitter(mut self, jitter: Jitter) -> Self {
        self.config.jitter = jitter;
        self
    }

    /// Wait a backoff delay before the first attempt too (default false: try at once).
    pub const fn delay_first_attempt(mut self, delay: bool) -> Self {
        self.config.delay_first_attempt = delay;
        self
    }

    /// Seed the jitter's random numbers, so that the delays are the same on every run.
    /// Without a seed, each policy is seeded from the process's random state.
    pub const fn seed(mut self, seed: u64) -> Self {
        self.seed = Some(seed);
        self
    }

    /// Check the settings and make the policy.
    ///
    /// # Errors
    /// [`BackoffError`] when the factor is not finite or below 1, the max delay is below the
    /// initial delay, or `max_attempts` is 0.
    pub fn build(self) -> Result<Backoff, BackoffError> {
        let c = self.config;
        if !c.factor.is_finite() || c.factor < 1.0 {
            return Err(BackoffError::InvalidFactor(c.factor));
        }
        if c.max < c.initial {
            return Err(BackoffError::MaxBelowInitial {
                initial: c.initial,
                max: c.max,
            });
        }
        if c.max_attempts == Some(0) {
            return Err(BackoffError::ZeroMaxAttempts);
        }
        let seed = self.seed.unwrap_or_else(random_seed);
        Ok(Backoff {
            config: c,
            seed,
            schedules: Arc::new(AtomicU64::new(0)),
        })
    }
}

/// A validated backoff policy. Cheap to clone; clones share the sequence of seeds, so a seeded
/// policy gives the same schedules in the same order on every run.
#[derive(Debug, Clone)]
pub struct Backoff {
    config: Config,
    seed: u64,
    schedules: Arc<AtomicU64>,
}

impl Default for Backoff {
    /// The `@connback/core` defaults (see [`BackoffBuilder`]).
    fn default() -> Self {
        let config = BackoffBuilder::default().config;
        Self {
            config,
            seed: random_seed(),
            schedules: Arc::new(AtomicU64::new(0)),
        }
    }
}

impl Backoff {
    /// A builder with the [`Strategy::Exponential`] strategy.
    pub const fn exponential() -> BackoffBuilder {
        BackoffBuilder::new(Strategy::Exponential)
    }

    /// A builder with the [`Strategy::Fibonacci`] strategy.
    pub const fn fibonacci() -> BackoffBuilder {
        BackoffBuilder::new(Strategy::Fibonacci)
    }

    /// A builder with the [`Strategy::Constant`] strategy and this delay (also the max delay).
    pub const fn constant(delay: Duration) -> BackoffBuilder {
        BackoffBuilder::new(Strategy::Constant)
            .initial_delay(delay)
            .max_delay(delay)
    }

    /// A fresh schedule for one outage: the delay before each attempt, `None` to give up.
    pub fn schedule(&self) -> Schedule {
        let n = self.schedules.fetch_add(1, Ordering::Relaxed);
        Schedule::new(
            self.config,
            mix(self.seed ^ n.wrapping_mul(0x9E37_79B9_7F4A_7C15)),
        )
    }

    /// The un-jittered delays before retries 1, 2, 3, … (an endless iterator; it ignores
    /// `max_attempts` and `delay_first_attempt`).
    pub fn base_delays(&self) -> impl Iterator<Item = Duration> + Send + 'static {
        let mut growth = Growth::new(self.config);
        std::iter::from_fn(move || Some(growth.next_base()))
    }

    /// The strategy.
    #[must_use]
    pub fn strategy(&self) -> Strategy {
        self.config.strategy
    }

    /// The delay before the first retry.
    #[must_use]
    pub fn initial_delay(&self) -> Duration {
        self.config.initial
    }

    /// The largest delay.
    #[must_use]
    pub fn max_delay(&self) -> Duration {
        self.config.max
    }

    /// The growth factor (exponential only).
    #[must_use]
    pub fn factor(&self) -> f64 {
        self.config.factor
    }

    /// Attempts per outage before giving up; `None` for unlimited.
    #[must_use]
    pub fn max_attempts(&self) -> Option<u32> {
        self.config.max_attempts
    }

    /// The jitter.
    #[must_use]
    pub fn jitter(&self) -> Jitter {
        self.config.jitter
    }

    /// Whether the first attempt waits a delay too.
    #[must_use]
    pub fn delays_first_attempt(&self) -> bool {
        self.config.delay_first_attempt
    }
}

/// Something that makes a fresh schedule of delays for each outage. Reconnect loops take any
/// `Arc<dyn BackoffPolicy>`; [`Backoff`] is the usual one.
pub trait BackoffPolicy: Send + Sync + fmt::Debug + 'static {
    /// A fresh schedule: the delay before each attempt, `None` to give up.
    fn new_schedule(&self) -> Box<dyn Iterator<Item = Duration> + Send>;
}

impl BackoffPolicy for Backoff {
    fn new_schedule(&self) -> Box<dyn Iterator<Item = Duration> + Send> {
        Box::new(self.schedule())
    }
}

/// The growth of base delays, before jitter.
#[derive(Debug, Clone)]
struct Growth {
    config: Config,
    /// The last base delay handed out (exponential), or the previous Fibonacci term.
    prev: Duration,
    /// The next uncapped Fibonacci term.
    curr: Duration,
    retries: u32,
}

impl Growth {
    fn new(config: Config) -> Self {
        Self {
            config,
            prev: Duration::ZERO,
            curr: config.initial,
            retries: 0,
        }
    }

    fn next_base(&mut self) -> Duration {
        let c = &self.config;
        self.retries = self.retries.saturating_add(1);
        match c.strategy {
            Strategy::Constant => c.initial.min(c.max),
            Strategy::Exponential => {
                let next = if self.retries == 1 {
                    c.initial
                } else {
                    Duration::try_from_secs_f64(self.prev.as_secs_f64() * c.factor)
                        .unwrap_or(Duration::MAX)
                };
                self.prev = next.min(c.max);
                self.prev
            }
            Strategy::Fibonacci => {
                // Terms d, d, 2d, 3d, …: the running terms are not capped, the result is.
                let out = self.curr;
                let next = self.prev.saturating_add(self.curr);
                self.prev = self.curr;
                self.curr = next;
                out.min(c.max)
            }
        }
    }
}

/// The delays of one outage. Yields the delay to wait **before** each attempt; `None` once
/// the policy's `max_attempts` have all been handed out. Make a new one per outage with
/// [`Backoff::schedule`].
#[derive(Debug, Clone)]
pub struct Schedule {
    growth: Growth,
    attempts: u32,
    rng: SplitMix64,
}

impl Schedule {
    fn new(config: Config, seed: u64) -> Self {
        Self {
            growth: Growth::new(config),
            attempts: 0,
            rng: SplitMix64(seed),
        }
    }

    /// How many delays (attempts) this schedule has handed out.
    #[must_use]
    pub fn attempts(&self) -> u32 {
        self.attempts
    }

    /// Start over from the first attempt (the random sequence continues).
    pub fn reset(&mut self) {
        self.growth = Growth::new(self.growth.config);
        self.attempts = 0;
    }

    fn exhausted(&self) -> bool {
        self.growth
            .config
            .max_attempts
            .is_some_and(|max| self.attempts >= max)
    }

    fn jittered(&mut self, base: Duration) -> Duration {
        match self.growth.config.jitter {
            Jitter::None => base,
            Jitter::Full => self.uniform_up_to(base),
            Jitter::Equal => {
                let half = base / 2;
                half + self.uniform_up_to(base - half)
            }
        }
    }

    /// Uniform in `[0, max]`, with nanosecond resolution.
    fn uniform_up_to(&mut self, max: Duration) -> Duration {
        let span = u64::try_from(max.as_nanos()).unwrap_or(u64::MAX);
        let r = u128::from(self.rng.next_u64());
        // Lemire's multiply-shift: r * (span + 1) / 2^64, in [0, span].
        let n = (r * (u128::from(span) + 1)) >> 64;
        Duration::from_nanos(u64::try_from(n).unwrap_or(span))
    }

    /// The next retry delay (skipping the first-attempt rule), for the `backoff` adapter.
    #[cfg(feature = "backoff")]
    fn next_retry_delay(&mut self) -> Option<Duration> {
        if self.exhausted() {
            return None;
        }
        self.attempts += 1;
        let base = self.growth.next_base();
        Some(self.jittered(base))
    }
}

impl Iterator for Schedule {
    type Item = Duration;

    fn next(&mut self) -> Option<Duration> {
        if self.exhausted() {
            return None;
        }
        let first = self.attempts == 0;
        self.attempts = self.attempts.saturating_add(1);
        if first && !self.growth.config.delay_first_attempt {
            return Some(Duration::ZERO);
        }
        let base = self.growth.next_base();
        Some(self.jittered(base))
    }
}

/// A tiny, seedable generator (SplitMix64): enough for jitter, no dependency.
#[derive(Debug, Clone)]
struct SplitMix64(u64);

impl SplitMix64 {
    fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        mix(self.0)
    }
}

fn mix(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

fn random_seed() -> u64 {
    use std::hash::{BuildHasher, RandomState};
    RandomState::new().hash_one(std::time::SystemTime::now())
}

#[cfg(feature = "backoff")]
mod interop {
    //! Interop with the `backoff` crate (feature `backoff`).
    use super::{BackoffPolicy, Schedule};
    use std::fmt;
    use std::time::Duration;

    impl backoff::backoff::Backoff for Schedule {
        /// The delay before the next **retry** (the zero delay of a first attempt is not
        /// part of the `backoff` crate's model), or `None` to give up.
        fn next_backoff(&mut self) -> Option<Duration> {
            self.next_retry_delay()
        }

        fn reset(&mut self) {
            Schedule::reset(self);
        }
    }

    /// Drives connkit's reconnect loops with any `backoff::backoff::Backoff`.
    ///
    /// `make` builds a fresh `backoff` value for each outage. The first attempt is made at once;
    /// each retry waits `next_backoff()`, and `None` gives up.
    ///
    /// ```
    /// use connkit_core::backoff::{BackoffCrate, BackoffPolicy};
    /// let policy = BackoffCrate::new(|| backoff::backoff::Constant::new(std::time::Duration::from_millis(5)));
    /// let mut schedule = policy.new_schedule();
    /// assert_eq!(schedule.next(), Some(std::time::Duration::ZERO));
    /// assert_eq!(schedule.next(), Some(std::time::Duration::from_millis(5)));
    /// ```
    pub struct BackoffCrate<F> {
        make: F,
    }

    impl<F> BackoffCrate<F> {
        /// Wrap a factory of `backoff::backoff::Backoff` values.
        pub fn new(make: F) -> Self {
            Self { make }
        }
    }

    impl<F> fmt::Debug for BackoffCrate<F> {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.debug_struct("BackoffCrate").finish_non_exhaustive()
        }
    }

    impl<F, B> BackoffPolicy for BackoffCrate<F>
    where
        F: Fn() -> B + Send + Sync + 'static,
        B: backoff::backoff::Backoff + Send + 'static,
    {
        fn new_schedule(&self) -> Box<dyn Iterator<Item = Duration> + Send> {
            let mut inner = (self.make)();
            let mut first = true;
            Box::new(std::iter::from_fn(move || {
                if std::mem::take(&mut first) {
                    Some(Duration::ZERO)
                } else {
                    inner.next_backoff()
                }
            }))
        }
    }
}

#[cfg(feature = "backoff")]
pub use interop::BackoffCrate;

#[cfg(test)]
mod tests {
    use super::Strategy;
    use super::*;
    use proptest::prelude::{Just, any, prop_assert, prop_assert_eq, prop_oneof, proptest};

    fn ms(v: &[u64]) -> Vec<Duration> {
        v.iter().map(|&m| Duration::from_millis(m)).collect()
    }

    #[test]
    fn exponential_matches_connback() {
        let p = Backoff::exponential().jitter(Jitter::None).build().unwrap();
        let got: Vec<_> = p.base_delays().take(8).collect();
        assert_eq!(
            got,
            ms(&[1000, 2000, 4000, 8000, 16000, 30000, 30000, 30000])
        );
    }

    #[test]
    fn fibonacci_matches_connback() {
        let p = Backoff::fibonacci().jitter(Jitter::None).build().unwrap();
        let got: Vec<_> = p.base_delays().take(11).collect();
        assert_eq!(
            got,
            ms(&[
                1000, 1000, 2000, 3000, 5000, 8000, 13000, 21000, 30000, 30000, 30000
            ])
        );
    }

    #[test]
    fn first_attempt_is_immediate_unless_asked() {
        let p = Backoff::constant(Duration::from_millis(7))
            .jitter(Jitter::None)
            .max_attempts(3)
            .build()
            .unwrap();
        assert_eq!(p.schedule().collect::<Vec<_>>(), ms(&[0, 7, 7]));
        let p = Backoff::constant(Duration::from_millis(7))
            .jitter(Jitter::None)
            .max_attempts(3)
            .delay_first_attempt(true)
            .build()
            .unwrap();
        assert_eq!(p.schedule().collect::<Vec<_>>(), ms(&[7, 7, 7]));
    }

    #[test]
    fn invalid_options_are_typed_errors() {
        assert_eq!(
            Backoff::exponential().factor(0.5).build().unwrap_err(),
            BackoffError::InvalidFactor(0.5)
        );
        assert!(matches!(
            Backoff::exponential().factor(f64::NAN).build(),
            Err(BackoffError::InvalidFactor(_))
        ));
        assert!(matches!(
            Backoff::fibonacci()
                .initial_delay(Duration::from_secs(5))
                .max_delay(Duration::from_secs(1))
                .build(),
            Err(BackoffError::MaxBelowInitial { .. })
        ));
        assert_eq!(
            Backoff::fibonacci().max_attempts(0).build().unwrap_err(),
            BackoffError::ZeroMaxAttempts
        );
    }

    #[test]
    fn huge_delays_saturate_instead_of_panicking() {
        let p = Backoff::exponential()
            .initial_delay(Duration::from_secs(u64::MAX / 4))
            .max_delay(Duration::MAX)
            .factor(1e300)
            .jitter(Jitter::Full)
            .build()
            .unwrap();
        let got: Vec<_> = p.schedule().take(6).collect();
        assert_eq!(got.len(), 6);
        let base: Vec<_> = p.base_delays().take(3).collect();
        assert_eq!(base[2], Duration::MAX);
    }

    #[test]
    fn seeded_policies_repeat() {
        let make = || {
            Backoff::exponential()
                .seed(42)
                .max_attempts(10)
                .build()
                .unwrap()
        };
        let (a, b) = (make(), make());
        let first: Vec<_> = a.schedule().collect();
        assert_eq!(first, b.schedule().collect::<Vec<_>>());
        // The next schedule of a policy has other random numbers, also repeatable.
        assert_eq!(
            a.schedule().collect::<Vec<_>>(),
            b.schedule().collect::<Vec<_>>()
        );
    }

    fn any_strategy() -> impl proptest::strategy::Strategy<Value = Strategy> {
        prop_oneof![
            Just(Strategy::Exponential),
            Just(Strategy::Fibonacci),
            Just(Strategy::Constant)
        ]
    }

    fn any_jitter() -> impl proptest::strategy::Strategy<Value = Jitter> {
        prop_oneof![Just(Jitter::None), Just(Jitter::Full), Just(Jitter::Equal)]
    }

    proptest! {
        #[test]
        fn base_delays_are_monotone_until_the_cap_and_bounded(
            strategy in any_strategy(),
            initial_ms in 0u64..10_000,
            extra_ms in 0u64..100_000,
            factor in 1.0f64..10.0,
        ) {
            let max = Duration::from_millis(initial_ms + extra_ms);
            let p = BackoffBuilder::new(strategy)
                .initial_delay(Duration::from_millis(initial_ms))
                .max_delay(max)
                .factor(factor)
                .build()
                .unwrap();
            let base: Vec<_> = p.base_delays().take(40).collect();
            for w in base.windows(2) {
                prop_assert!(w[0] <= w[1], "not monotone: {:?}", base);
            }
            for b in &base {
                prop_assert!(*b <= max);
            }
            prop_assert_eq!(base[0], Duration::from_millis(initial_ms).min(max));
        }

        #[test]
        fn jitter_stays_within_zero_and_base(
            strategy in any_strategy(),
            jitter in any_jitter(),
            initial_ms in 0u64..10_000,
            extra_ms in 0u64..100_000,
            seed in any::<u64>(),
        ) {
            let p = BackoffBuilder::new(strategy)
                .initial_delay(Duration::from_millis(initial_ms))
                .max_delay(Duration::from_millis(initial_ms + extra_ms))
                .jitter(jitter)
                .delay_first_attempt(true)
                .seed(seed)
                .build()
                .unwrap();
            let base: Vec<_> = p.base_delays().take(30).collect();
            let got: Vec<_> = p.schedule().take(30).collect();
            for (d, b) in got.iter().zip(&base) {
                prop_assert!(d <= b, "{:?} > base {:?}", d, b);
                match jitter {
                    Jitter::None => prop_assert_eq!(d, b),
                    Jitter::Equal => prop_assert!(*d >= *b / 2),
                    _ => {}
                }
            }
        }

        #[test]
        fn a_new_schedule_starts_over(
            strategy in any_strategy(),
            attempts in 1u32..20,
            used in 0usize..20,
        ) {
            let p = BackoffBuilder::new(strategy)
                .jitter(Jitter::None)
                .max_attempts(attempts)
                .build()
                .unwrap();
            let mut first = p.schedule();
            for _ in 0..used { first.next(); }
            let fresh: Vec<_> = p.schedule().collect();
            prop_assert_eq!(fresh.len(), attempts as usize);
            prop_assert_eq!(fresh[0], Duration::ZERO);
            let mut expected = vec![Duration::ZERO];
            expected.extend(p.base_delays().take(attempts as usize - 1));
            prop_assert_eq!(fresh, expected.clone());
            let mut reset = first;
            reset.reset();
            prop_assert_eq!(reset.collect::<Vec<_>>(), expected);
        }
    }

    #[cfg(feature = "backoff")]
    #[test]
    fn schedule_is_a_backoff_crate_backoff() {
        use backoff::backoff::Backoff as _;
        let p = Backoff::constant(Duration::from_millis(3))
            .jitter(Jitter::None)
            .max_attempts(2)
            .build()
            .unwrap();
        let mut s = p.schedule();
        assert_eq!(s.next_backoff(), Some(Duration::from_millis(3)));
        assert_eq!(s.next_backoff(), Some(Duration::from_millis(3)));
        assert_eq!(s.next_backoff(), None);
        s.reset();
        assert_eq!(s.next_backoff(), Some(Duration::from_millis(3)));
    }

    #[cfg(feature = "backoff")]
    #[test]
    fn backoff_crate_values_drive_our_loops() {
        let policy = BackoffCrate::new(|| {
            let mut b = backoff::ExponentialBackoff {
                initial_interval: Duration::from_millis(10),
                randomization_factor: 0.0,
                multiplier: 2.0,
                max_interval: Duration::from_millis(40),
                max_elapsed_time: None,
                ..Default::default()
            };
            backoff::backoff::Backoff::reset(&mut b);
            b
        });
        let got: Vec<_> = policy.new_schedule().take(5).collect();
        assert_eq!(got, ms(&[0, 10, 20, 40, 40]));
    }
}
