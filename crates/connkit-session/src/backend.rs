//! [`SessionBackend`]: follow one backend's status, as `@jamsocket/client` does, without its
//! bugs.

use crate::dialect::{StreamDialect, parse_status_url};
use crate::error::{Error, Result};
use crate::stream::{self, HttpSource, Source};
use crate::types::{BackendState, BackendStatus, ConnectResponse};
use connkit_core::backoff::{Backoff, BackoffPolicy, Jitter};
use futures_util::Stream;
use std::collections::HashSet;
use std::fmt;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard, Weak};
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::sync::{broadcast, watch};
use tokio_util::sync::CancellationToken;
use tracing::{Instrument, debug};

/// How a [`SessionBackend`] stopped following its backend.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub enum Finished {
    /// The backend reached `terminated` (the final status).
    Terminated,
    /// [`SessionBackend::destroy`] was called or every handle was dropped.
    Destroyed,
    /// The status stream failed for good: a final error (HTTP 404 on the stream, a bad URL)
    /// or its backoff gave up.
    Failed(Error),
}

/// What a [`SessionBackend`] knows now; watch it with [`SessionBackend::state`].
#[derive(Debug, Clone, Default)]
#[non_exhaustive]
pub struct WatchState {
    /// The newest state delivered (statuses only move forward).
    pub latest: Option<BackendState>,
    /// Whether the backend is ready: set at `ready`, cleared at `terminated`
    /// (`terminating` does not clear it, as in `@jamsocket/client`; nor does the client
    /// finishing for another reason: it is the last known readiness).
    pub ready: bool,
    /// Set once the client stops following the backend; nothing changes after that.
    pub finished: Option<Finished>,
}

/// The defaults: 10 s request timeout, 500 ms before the second `status()` try, 60 s of
/// silence before the stream is re-opened, exponential backoff from 1 s to 30 s with equal
/// jitter and no limit on attempts, backoff reset after 10 s of stable stream.
#[derive(Clone)]
#[must_use]
pub struct SessionBackendOptions {
    pub(crate) dialect: Option<StreamDialect>,
    pub(crate) request_timeout: Duration,
    pub(crate) status_retry_delay: Duration,
    pub(crate) idle_timeout: Option<Duration>,
    pub(crate) backoff: Arc<dyn BackoffPolicy>,
    pub(crate) stable_for: Duration,
}

impl fmt::Debug for SessionBackendOptions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SessionBackendOptions")
            .field("dialect", &self.dialect)
            .field("request_timeout", &self.request_timeout)
            .field("status_retry_delay", &self.status_retry_delay)
            .field("idle_timeout", &self.idle_timeout)
            .field("backoff", &self.backoff)
            .field("stable_for", &self.stable_for)
            .finish()
    }
}

impl Default for SessionBackendOptions {
    fn default() -> Self {
        Self::new()
    }
}

pub(crate) fn default_backoff() -> Arc<dyn BackoffPolicy> {
    match Backoff::exponential()
        .initial_delay(Duration::from_secs(1))
        .max_delay(Duration::from_secs(30))
        .jitter(Jitter::Equal)
        .build()
    {
        Ok(b) => Arc::new(b),
        Err(_) => Arc::new(Backoff::default()),
    }
}

impl SessionBackendOptions {
    /// The defaults (see the type's docs).
    pub fn new() -> Self {
        Self {
            dialect: None,
            request_timeout: Duration::from_secs(10),
            status_retry_delay: Duration::from_millis(500),
            idle_timeout: Some(Duration::from_secs(60)),
            backoff: default_backoff(),
            stable_for: Duration::from_secs(10),
        }
    }

    /// Where the stream is: by default detected from the status URL
    /// ([`StreamDialect::detect`]).
    ///
    /// ```no_run
    /// # use connkit_session::{SessionBackendOptions, StreamDialect};
    /// let options = SessionBackendOptions::new().dialect(StreamDialect::Plane);
    /// ```
    pub fn dialect(mut self, dialect: StreamDialect) -> Self {
        self.dialect = Some(dialect);
        self
    }

    /// The time limit of each status request, and of opening the stream (default 10 s).
    ///
    /// ```no_run
    /// # use connkit_session::SessionBackendOptions; use std::time::Duration;
    /// let options = SessionBackendOptions::new().request_timeout(Duration::from_secs(5));
    /// ```
    pub fn request_timeout(mut self, timeout: Duration) -> Self {
        self.request_timeout = timeout.max(Duration::from_millis(1));
        self
    }

    /// How long [`SessionBackend::status`] waits before its one retry (default 500 ms, as in
    /// `@jamsocket/client`).
    ///
    /// ```no_run
    /// # use connkit_session::SessionBackendOptions; use std::time::Duration;
    /// let options = SessionBackendOptions::new().status_retry_delay(Duration::from_secs(1));
    /// ```
    pub fn status_retry_delay(mut self, delay: Duration) -> Self {
        self.status_retry_delay = delay;
        self
    }

    /// Re-open the stream when nothing (not even a keep-alive comment) has arrived for this
    /// long; `None` never does (default 60 s; Plane sends a keep-alive every 15 s).
    ///
    /// ```no_run
    /// # use connkit_session::SessionBackendOptions; use std::time::Duration;
    /// let options = SessionBackendOptions::new().idle_timeout(Some(Duration::from_secs(40)));
    /// ```
    pub fn idle_timeout(mut self, timeout: Option<Duration>) -> Self {
        self.idle_timeout = timeout.filter(|d| !d.is_zero());
        self
    }

    /// The reconnect backoff of the stream. With `max_attempts`, the client gives up (and
    /// [`SessionBackend::ready`] fails with [`Error::GaveUp`]) after that many failed
    /// attempts in a row.
    ///
    /// ```no_run
    /// # use connkit_session::SessionBackendOptions; use std::time::Duration;
    /// use connkit_core::backoff::Backoff;
    /// let backoff = Backoff::exponential().max_delay(Duration::from_secs(5)).build()?;
    /// let options = SessionBackendOptions::new().backoff(backoff);
    /// # Ok::<(), connkit_core::backoff::BackoffError>(())
    /// ```
    pub fn backoff(mut self, backoff: Backoff) -> Self {
        self.backoff = Arc::new(backoff);
        self
    }

    /// Any backoff policy (a fresh schedule per outage).
    ///
    /// ```no_run
    /// # use connkit_session::SessionBackendOptions; use std::sync::Arc;
    /// # use connkit_core::backoff::Backoff;
    /// let options = SessionBackendOptions::new().backoff_policy(Arc::new(Backoff::default()));
    /// ```
    pub fn backoff_policy(mut self, policy: Arc<dyn BackoffPolicy>) -> Self {
        self.backoff = policy;
        self
    }

    /// How long a stream must stay open before the backoff starts over (default 10 s).
    ///
    /// ```no_run
    /// # use connkit_session::SessionBackendOptions; use std::time::Duration;
    /// let options = SessionBackendOptions::new().stable_for(Duration::from_secs(30));
    /// ```
    pub fn stable_for(mut self, duration: Duration) -> Self {
        self.stable_for = duration;
        self
    }

    /// Follow the backend of a connect response.
    ///
    /// A bad `status_url` does not fail here: the client finishes at once with
    /// [`Finished::Failed`] and [`SessionBackend::ready`] returns the error.
    ///
    /// # Panics
    /// Outside a tokio runtime (like [`tokio::spawn`]).
    pub fn open(self, response: &ConnectResponse) -> SessionBackend {
        let status_url = parse_status_url(&response.status_url);
        let meta = Meta {
            url: Some(response.url.clone()),
            backend_id: Some(response.backend_id.clone()),
        };
        self.open_url(status_url, meta)
    }

    /// Follow the backend whose status is at `status_url`.
    ///
    /// # Errors
    /// [`Error::InvalidUrl`] when the URL is not an absolute `http`/`https` URL or does not
    /// fit the dialect.
    ///
    /// # Panics
    /// Outside a tokio runtime (like [`tokio::spawn`]).
    pub fn open_status_url(self, status_url: &str) -> Result<SessionBackend> {
        let url = parse_status_url(status_url)?;
        let dialect = self.dialect.unwrap_or_else(|| StreamDialect::detect(&url));
        dialect.stream_url(&url)?;
        Ok(self.open_url(Ok(url), Meta::default()))
    }

    fn open_url(self, status_url: Result<url::Url>, meta: Meta) -> SessionBackend {
        let source = status_url.and_then(|url| {
            let dialect = self.dialect.unwrap_or_else(|| StreamDialect::detect(&url));
            let stream_url = dialect.stream_url(&url)?;
            HttpSource::new(url, stream_url, self.request_timeout)
        });
        match source {
            Ok(source) => {
                let status_url = Some(source.status_url().clone());
                self.start(Arc::new(source), status_url, meta)
            }
            Err(e) => {
                let backend = SessionBackend::idle(self, None, meta);
                backend.inner.shared.finish(Finished::Failed(e));
                backend
            }
        }
    }

    /// Start following with any source (the scripted sources of the tests).
    pub(crate) fn start(
        self,
        source: Arc<dyn Source>,
        status_url: Option<url::Url>,
        meta: Meta,
    ) -> SessionBackend {
        let backend = SessionBackend::idle(self.clone(), status_url, meta);
        backend.inner.source.lock_set(Some(Arc::clone(&source)));
        let shared = Arc::clone(&backend.inner.shared);
        let span = tracing::info_span!("connkit.session", status_url = ?backend.inner.status_url.as_ref().map(url::Url::as_str));
        tokio::spawn(stream::drive(shared, source, self).instrument(span));
        backend
    }
}

/// Follows one session backend: its status (through the status stream, reconnecting as
/// needed), readiness and termination.
///
/// ```no_run
/// use connkit_session::{ConnectResponse, SessionBackend};
/// # async fn demo(response: ConnectResponse) -> Result<(), connkit_session::Error> {
/// let backend = SessionBackend::new(&response);
/// let _guard = backend.on_status(|state| println!("now {state}"));
/// backend.ready().await?;
/// // … connect to response.url …
/// let last = backend.terminated().await?;
/// println!("ended: {last}");
/// # Ok(()) }
/// ```
///
/// Cheap to clone; clones share one task. Dropping the last clone is
/// [`destroy`](Self::destroy). Callbacks run on the client's task, in order: for a `ready`
/// state, the [`on_ready`](Self::on_ready) callbacks run before the
/// [`on_status`](Self::on_status) listeners (as in `@jamsocket/client`); a panicking callback
/// is logged and the others still run.
///
/// What is delivered: the answer of an initial status request, then each newer state from the
/// stream. A state whose status is not later (in [`BackendStatus`] order) than the last one
/// delivered is dropped, so replays after a reconnect and out-of-order states never move
/// the status back. Nothing is delivered after `terminated`.
#[derive(Clone)]
pub struct SessionBackend {
    inner: Arc<Handle>,
}

/// What a connect response tells besides the status URL.
#[derive(Debug, Default)]
pub(crate) struct Meta {
    url: Option<String>,
    backend_id: Option<String>,
}

struct Handle {
    shared: Arc<Shared>,
    status_url: Option<url::Url>,
    url: Option<String>,
    backend_id: Option<String>,
    source: SourceSlot,
    options: SessionBackendOptions,
}

impl Drop for Handle {
    fn drop(&mut self) {
        self.shared.destroy();
    }
}

#[derive(Default)]
struct SourceSlot(Mutex<Option<Arc<dyn Source>>>);

impl SourceSlot {
    fn lock_set(&self, source: Option<Arc<dyn Source>>) {
        *self
            .0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = source;
    }

    fn get(&self) -> Option<Arc<dyn Source>> {
        self.0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }
}

impl fmt::Debug for SessionBackend {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SessionBackend")
            .field(
                "status_url",
                &self.inner.status_url.as_ref().map(url::Url::as_str),
            )
            .field("state", &*self.inner.shared.state.borrow())
            .finish_non_exhaustive()
    }
}

impl SessionBackend {
    /// Follow the backend of a connect response with the default options; see
    /// [`SessionBackendOptions::open`].
    ///
    /// # Panics
    /// Outside a tokio runtime (like [`tokio::spawn`]).
    #[must_use]
    pub fn new(response: &ConnectResponse) -> Self {
        SessionBackendOptions::new().open(response)
    }

    /// Follow the backend whose status is at `status_url`, with the default options.
    ///
    /// # Errors
    /// [`Error::InvalidUrl`] for a URL that is not absolute `http`/`https`.
    ///
    /// # Panics
    /// Outside a tokio runtime.
    pub fn from_status_url(status_url: &str) -> Result<Self> {
        SessionBackendOptions::new().open_status_url(status_url)
    }

    fn idle(options: SessionBackendOptions, status_url: Option<url::Url>, meta: Meta) -> Self {
        Self {
            inner: Arc::new(Handle {
                shared: Arc::new(Shared::new()),
                status_url,
                url: meta.url,
                backend_id: meta.backend_id,
                source: SourceSlot::default(),
                options,
            }),
        }
    }

    /// The status URL followed (`None` if it was invalid).
    #[must_use]
    pub fn status_url(&self) -> Option<&url::Url> {
        self.inner.status_url.as_ref()
    }

    /// The backend's URL, when opened from a connect response.
    #[must_use]
    pub fn url(&self) -> Option<&str> {
        self.inner.url.as_deref()
    }

    /// The backend's id, when opened from a connect response.
    #[must_use]
    pub fn backend_id(&self) -> Option<&str> {
        self.inner.backend_id.as_deref()
    }

    /// Whether the backend is ready now (see [`WatchState::ready`]).
    #[must_use]
    pub fn is_ready(&self) -> bool {
        self.inner.shared.state.borrow().ready
    }

    /// Whether the backend has terminated.
    #[must_use]
    pub fn is_terminated(&self) -> bool {
        matches!(
            self.inner.shared.state.borrow().finished,
            Some(Finished::Terminated)
        )
    }

    /// The newest state delivered, if any.
    #[must_use]
    pub fn current(&self) -> Option<BackendState> {
        self.inner.shared.state.borrow().latest.clone()
    }

    /// A receiver that always sees the latest [`WatchState`].
    #[must_use]
    pub fn state(&self) -> watch::Receiver<WatchState> {
        self.inner.shared.state.subscribe()
    }

    /// Wait until the backend is ready (at once if it is).
    ///
    /// Cancel safe.
    ///
    /// # Errors
    /// [`Error::Terminated`] if the backend terminates first (or already has),
    /// [`Error::Destroyed`] after [`destroy`](Self::destroy), or the stream's final error
    /// ([`Error::GaveUp`], an HTTP 404, …): it never hangs once the client has stopped.
    pub async fn ready(&self) -> Result<()> {
        let mut rx = self.inner.shared.state.subscribe();
        let state = rx
            .wait_for(|w| w.ready || w.finished.is_some())
            .await
            .map_err(|_| Error::Destroyed)?;
        if state.ready {
            return Ok(());
        }
        Err(finished_error(&state))
    }

    /// Wait until the backend has terminated and return its last state.
    ///
    /// Cancel safe.
    ///
    /// # Errors
    /// [`Error::Destroyed`] after [`destroy`](Self::destroy), or the stream's final error.
    pub async fn terminated(&self) -> Result<BackendState> {
        let mut rx = self.inner.shared.state.subscribe();
        let state = rx
            .wait_for(|w| w.finished.is_some())
            .await
            .map_err(|_| Error::Destroyed)?;
        match (&state.finished, &state.latest) {
            (Some(Finished::Terminated), Some(latest)) => Ok(latest.clone()),
            _ => Err(finished_error(&state)),
        }
    }

    /// Wait until the client stops following the backend, and say why.
    ///
    /// Cancel safe.
    pub async fn finished(&self) -> Finished {
        let mut rx = self.inner.shared.state.subscribe();
        match rx.wait_for(|w| w.finished.is_some()).await {
            Ok(state) => state.finished.clone().unwrap_or(Finished::Destroyed),
            Err(_) => Finished::Destroyed,
        }
    }

    /// Ask for the current state once (`GET status_url`); after a failure wait
    /// [`status_retry_delay`](SessionBackendOptions::status_retry_delay) (500 ms) and try
    /// once more. The answer is returned, not delivered to listeners.
    ///
    /// Cancel safe (dropping it abandons the request); [`destroy`](Self::destroy) aborts it.
    ///
    /// # Errors
    /// The second attempt's error, or [`Error::Destroyed`].
    pub async fn status(&self) -> Result<BackendState> {
        let Some(source) = self.inner.source.get() else {
            return Err(match self.inner.shared.state.borrow().finished.clone() {
                Some(Finished::Failed(e)) => e,
                _ => Error::Destroyed,
            });
        };
        let cancel = self.inner.shared.cancel.clone();
        tokio::select! {
            r = stream::status_with_retry(&*source, self.inner.options.status_retry_delay) => r,
            () = cancel.cancelled() => Err(Error::Destroyed),
        }
    }

    /// Call `f` once when the backend is ready: at once (on this thread) if it already is,
    /// else on the client's task when `ready` arrives, before the status listeners. The
    /// callback is dropped uncalled if the client finishes first.
    pub fn on_ready(&self, f: impl FnOnce() + Send + 'static) -> Subscription {
        let shared = &self.inner.shared;
        let mut m = shared.lock();
        if shared.state.borrow().ready {
            drop(m);
            run_guarded("on_ready", f);
            return Subscription::none();
        }
        let id = m.next_id();
        m.ready.push((id, Box::new(f)));
        Subscription::new(shared, id)
    }

    /// Call `f` with the final state once the backend has terminated: at once if it already
    /// has. (Documented for `@jamsocket/client` but missing from it.) The callback is dropped
    /// uncalled if the client is destroyed or fails first.
    pub fn on_terminated(&self, f: impl FnOnce(&BackendState) + Send + 'static) -> Subscription {
        let shared = &self.inner.shared;
        let mut m = shared.lock();
        let state = shared.state.borrow().clone();
        if let (Some(Finished::Terminated), Some(latest)) = (&state.finished, &state.latest) {
            drop(m);
            run_guarded("on_terminated", || f(latest));
            return Subscription::none();
        }
        let id = m.next_id();
        m.terminated.push((id, Box::new(f)));
        Subscription::new(shared, id)
    }

    /// Call `f` with every new state, on the client's task, until the returned guard is
    /// dropped (or [`Subscription::unsubscribe`]d; [`Subscription::detach`] keeps it).
    pub fn on_status(&self, f: impl Fn(&BackendState) + Send + Sync + 'static) -> Subscription {
        let shared = &self.inner.shared;
        let mut m = shared.lock();
        let id = m.next_id();
        m.status.push((id, Arc::new(f)));
        Subscription::new(shared, id)
    }

    /// A stream of the states: every state delivered so far, then each new one (so it does
    /// not matter when it is called). It ends after `terminated` or when the client
    /// finishes. Never blocks the client; a stream
    /// that is not read falls behind and skips to newer states.
    #[must_use]
    pub fn statuses(&self) -> StatusStream {
        StatusStream::new(&self.inner.shared)
    }

    /// Stop following the backend (it is **not** terminated): abort the stream and any
    /// request in flight, drop every callback, and make pending
    /// [`ready`](Self::ready)/[`terminated`](Self::terminated) calls return
    /// [`Error::Destroyed`]. Idempotent. A client that has already finished keeps its
    /// reason ([`Finished::Terminated`] stays).
    pub fn destroy(&self) {
        self.inner.shared.destroy();
    }
}

/// Ask a status URL for the backend's current state once; after a failure wait 500 ms and
/// try once more (as [`SessionBackend::status`] does), each try bounded by `timeout`.
///
/// Cancel safe.
///
/// # Errors
/// [`Error::InvalidUrl`] for a URL that is not absolute `http`/`https`; otherwise the second
/// try's error.
pub async fn fetch_status(status_url: &str, timeout: Duration) -> Result<BackendState> {
    let url = parse_status_url(status_url)?;
    let http = crate::http::Http::new(timeout)?;
    match http.get_json(&url).await {
        Ok(state) => Ok(state),
        Err(e) => {
            debug!(error = %e, "status request failed; retrying once");
            tokio::time::sleep(Duration::from_millis(500)).await;
            http.get_json(&url).await
        }
    }
}

fn finished_error(state: &WatchState) -> Error {
    match &state.finished {
        Some(Finished::Terminated) => match &state.latest {
            Some(latest) => Error::Terminated(Box::new(latest.clone())),
            None => Error::Destroyed,
        },
        Some(Finished::Failed(e)) => e.clone(),
        Some(Finished::Destroyed) | None => Error::Destroyed,
    }
}

fn run_guarded(what: &str, f: impl FnOnce()) {
    if catch_unwind(AssertUnwindSafe(f)).is_err() {
        tracing::error!(callback = what, "a session callback panicked");
    }
}

/// Keeps decisions about which states are new: statuses only move forward.
#[derive(Debug, Default)]
pub(crate) struct Tracker {
    rank: Option<u8>,
    unknown: HashSet<String>,
    terminated: bool,
}

impl Tracker {
    /// Whether a state with this status is new (and remember it).
    pub(crate) fn accept(&mut self, status: &BackendStatus) -> bool {
        if self.terminated {
            return false;
        }
        match status.rank() {
            Some(r) => {
                if self.rank.is_some_and(|cur| r <= cur) {
                    return false;
                }
                self.rank = Some(r);
                self.terminated = status.is_terminated();
                true
            }
            None => self.unknown.insert(status.as_str().to_owned()),
        }
    }
}

/// How many delivered states [`SessionBackend::statuses`] replays at most.
const MAX_HISTORY: usize = 64;

type ReadyFn = Box<dyn FnOnce() + Send>;
type TerminatedFn = Box<dyn FnOnce(&BackendState) + Send>;
type StatusFn = Arc<dyn Fn(&BackendState) + Send + Sync>;

#[derive(Default)]
struct Callbacks {
    next: u64,
    tracker: Tracker,
    /// Every state delivered, in order (at most 8 known statuses plus a few unknown ones).
    history: Vec<BackendState>,
    ready: Vec<(u64, ReadyFn)>,
    terminated: Vec<(u64, TerminatedFn)>,
    status: Vec<(u64, StatusFn)>,
}

impl Callbacks {
    fn next_id(&mut self) -> u64 {
        self.next += 1;
        self.next
    }
}

/// What the client's task and the handles share.
pub(crate) struct Shared {
    pub(crate) cancel: CancellationToken,
    state: watch::Sender<WatchState>,
    statuses: broadcast::Sender<BackendState>,
    callbacks: Mutex<Callbacks>,
}

impl Shared {
    fn new() -> Self {
        Self {
            cancel: CancellationToken::new(),
            state: watch::Sender::new(WatchState::default()),
            statuses: broadcast::channel(64).0,
            callbacks: Mutex::new(Callbacks::default()),
        }
    }

    fn lock(&self) -> MutexGuard<'_, Callbacks> {
        self.callbacks
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Deliver a state if it is new. Returns whether the backend is now terminated.
    pub(crate) fn apply(&self, state: BackendState) -> bool {
        let (ready, terminated, listeners) = {
            let mut m = self.lock();
            if self.state.borrow().finished.is_some() || !m.tracker.accept(&state.status) {
                debug!(status = %state.status, "ignoring a state that is not new");
                return m.tracker.terminated;
            }
            let is_ready = state.status == BackendStatus::Ready;
            let is_terminated = state.is_terminated();
            if m.history.len() < MAX_HISTORY {
                m.history.push(state.clone());
            }
            // Into the stream before `finished` can be observed: a stream that sees the end
            // must find the terminal state already buffered.
            let _ = self.statuses.send(state.clone());
            self.state.send_modify(|w| {
                w.latest = Some(state.clone());
                if is_ready {
                    w.ready = true;
                }
                if is_terminated {
                    w.ready = false;
                    w.finished = Some(Finished::Terminated);
                }
            });
            let ready = if is_ready {
                std::mem::take(&mut m.ready)
            } else {
                Vec::new()
            };
            let terminated = if is_terminated {
                std::mem::take(&mut m.terminated)
            } else {
                Vec::new()
            };
            let listeners: Vec<StatusFn> = m.status.iter().map(|(_, f)| Arc::clone(f)).collect();
            if is_terminated {
                m.ready.clear();
                m.status.clear();
            }
            (ready, terminated, listeners)
        };
        debug!(status = %state.status, "new state");
        for (_, f) in ready {
            run_guarded("on_ready", f);
        }
        for (_, f) in terminated {
            run_guarded("on_terminated", || f(&state));
        }
        for f in listeners {
            run_guarded("on_status", || f(&state));
        }
        state.is_terminated()
    }

    /// Stop for `why` (the first reason wins) and drop every callback.
    pub(crate) fn finish(&self, why: Finished) {
        let dropped = {
            let mut m = self.lock();
            let changed = self.state.send_if_modified(|w| {
                if w.finished.is_some() {
                    return false;
                }
                w.finished = Some(why);
                true
            });
            if changed {
                debug!(finished = ?self.state.borrow().finished, "no longer following the backend");
            }
            (
                std::mem::take(&mut m.ready),
                std::mem::take(&mut m.terminated),
                std::mem::take(&mut m.status),
            )
        };
        drop(dropped); // user closures are dropped outside the lock
    }

    fn destroy(&self) {
        self.cancel.cancel();
        self.finish(Finished::Destroyed);
    }

    fn remove(&self, id: u64) {
        let removed = {
            let mut m = self.lock();
            let r = m
                .ready
                .iter()
                .position(|(i, _)| *i == id)
                .map(|p| m.ready.remove(p));
            let t = m
                .terminated
                .iter()
                .position(|(i, _)| *i == id)
                .map(|p| m.terminated.remove(p));
            let s = m
                .status
                .iter()
                .position(|(i, _)| *i == id)
                .map(|p| m.status.remove(p));
            (r, t, s)
        };
        drop(removed);
    }
}

/// Keeps a callback registered; dropping it unsubscribes.
///
/// Returned by [`SessionBackend::on_status`], [`on_ready`](SessionBackend::on_ready) and
/// [`on_terminated`](SessionBackend::on_terminated). Call [`detach`](Self::detach) to keep
/// the callback for the client's whole life.
#[must_use = "dropping the Subscription unsubscribes the callback at once"]
pub struct Subscription {
    id: u64,
    shared: Option<Weak<Shared>>,
}

impl Subscription {
    fn new(shared: &Arc<Shared>, id: u64) -> Self {
        Self {
            id,
            shared: Some(Arc::downgrade(shared)),
        }
    }

    fn none() -> Self {
        Self {
            id: 0,
            shared: None,
        }
    }

    /// Unsubscribe now (the same as dropping it).
    pub fn unsubscribe(self) {}

    /// Keep the callback registered as long as the client follows the backend.
    pub fn detach(mut self) {
        self.shared = None;
    }
}

impl fmt::Debug for Subscription {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Subscription")
            .field("id", &self.id)
            .field("detached", &self.shared.is_none())
            .finish()
    }
}

impl Drop for Subscription {
    fn drop(&mut self) {
        if let Some(shared) = self.shared.take().and_then(|w| w.upgrade()) {
            shared.remove(self.id);
        }
    }
}

/// The states of a backend as a [`Stream`]; see [`SessionBackend::statuses`].
pub struct StatusStream {
    inner: Pin<Box<dyn Stream<Item = BackendState> + Send>>,
}

impl fmt::Debug for StatusStream {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StatusStream").finish_non_exhaustive()
    }
}

struct StreamState {
    first: std::collections::VecDeque<BackendState>,
    rx: broadcast::Receiver<BackendState>,
    watch: watch::Receiver<WatchState>,
    skip_up_to: Option<BackendState>,
    done: bool,
    draining: bool,
}

fn not_newer(state: &BackendState, than: &BackendState) -> bool {
    state == than
        || matches!((state.status.rank(), than.status.rank()), (Some(a), Some(b)) if a <= b)
}

impl StatusStream {
    fn new(shared: &Shared) -> Self {
        // Under the lock, so that no state falls between the history and the subscription
        // (one delivered in between is in both, and skipped from the subscription).
        let (history, rx) = {
            let m = shared.lock();
            (m.history.clone(), shared.statuses.subscribe())
        };
        let watch = shared.state.subscribe();
        let done = history.last().is_some_and(BackendState::is_terminated);
        let st = StreamState {
            skip_up_to: history.last().cloned(),
            first: history.into(),
            rx,
            watch,
            done,
            draining: false,
        };
        let inner = futures_util::stream::unfold(st, |mut st| async move {
            if let Some(first) = st.first.pop_front() {
                return Some((first, st));
            }
            loop {
                if st.done {
                    return None;
                }
                let next = if st.draining {
                    // Finished: hand out everything still buffered, then end.
                    match st.rx.try_recv() {
                        Ok(s) => Ok(s),
                        Err(broadcast::error::TryRecvError::Lagged(n)) => {
                            Err(broadcast::error::RecvError::Lagged(n))
                        }
                        Err(_) => return None,
                    }
                } else {
                    tokio::select! {
                        biased;
                        r = st.rx.recv() => r,
                        _ = st.watch.wait_for(|w| w.finished.is_some()) => {
                            st.draining = true;
                            continue;
                        }
                    }
                };
                match next {
                    Ok(s) => {
                        if st.skip_up_to.as_ref().is_some_and(|k| not_newer(&s, k)) {
                            continue;
                        }
                        st.skip_up_to = None;
                        st.done = s.is_terminated();
                        return Some((s, st));
                    }
                    Err(broadcast::error::RecvError::Lagged(n)) => {
                        debug!(missed = n, "a status stream fell behind");
                    }
                    Err(broadcast::error::RecvError::Closed) => return None,
                }
            }
        });
        Self {
            inner: Box::pin(inner),
        }
    }
}

impl Stream for StatusStream {
    type Item = BackendState;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<BackendState>> {
        self.inner.as_mut().poll_next(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn state(status: &str) -> BackendState {
        serde_json::from_value(serde_json::json!({"status": status, "time": 1})).unwrap()
    }

    /// Regression: the terminal state must be in the stream before `finished` can be seen,
    /// or a stream that notices the end first stops without handing it out.
    #[tokio::test]
    async fn the_terminal_state_is_buffered_before_the_end_is_visible() {
        use futures_util::StreamExt;
        let shared = Shared::new();
        let mut stream = StatusStream::new(&shared);
        // on_terminated runs once `finished` is set: the terminal state must be queued by then.
        let probe = std::sync::Mutex::new(shared.statuses.subscribe());
        let queued_at_end = Arc::new(std::sync::Mutex::new(Vec::new()));
        let out = Arc::clone(&queued_at_end);
        shared.lock().terminated.push((
            0,
            Box::new(move |_: &BackendState| {
                let mut rx = probe.lock().unwrap();
                let mut got = out.lock().unwrap();
                while let Ok(s) = rx.try_recv() {
                    got.push(s.status.to_string());
                }
            }),
        ));
        shared.apply(state("ready"));
        shared.apply(state("terminating"));
        shared.apply(state("terminated"));
        assert!(shared.state.borrow().finished.is_some());
        assert_eq!(
            *queued_at_end.lock().unwrap(),
            ["ready", "terminating", "terminated"]
        );
        let seen: Vec<String> = stream
            .by_ref()
            .map(|s| s.status.to_string())
            .collect()
            .await;
        assert_eq!(seen, ["ready", "terminating", "terminated"]);
    }

    #[test]
    fn tracker_never_goes_back_and_stops_after_terminated() {
        let mut t = Tracker::default();
        let s = |x: &str| BackendStatus::from_wire(x);
        assert!(t.accept(&s("loading")));
        assert!(!t.accept(&s("scheduled")), "backwards");
        assert!(!t.accept(&s("loading")), "duplicate");
        assert!(t.accept(&s("ready")), "skips are fine");
        assert!(t.accept(&s("draining")), "unknown, first time");
        assert!(!t.accept(&s("draining")), "unknown, again");
        assert!(t.accept(&s("hard-terminating")));
        assert!(!t.accept(&s("terminating")));
        assert!(t.accept(&s("terminated")));
        assert!(!t.accept(&s("other")), "nothing after terminated");
    }
}
