//! The status stream: where states come from ([`Source`]), and the task that follows them
//! with the connkit-reconnect supervisor (backoff, idle watchdog, stable-reset).
//!
//! The timing lives here and in the supervisor, behind the [`Source`] trait, so the tests
//! run it on paused tokio time with scripted sources; the HTTP source is tested on real
//! sockets separately.

use crate::backend::{Finished, SessionBackendOptions, Shared};
use crate::error::{Error, Result};
use crate::http::{ByteStream, Http};
use crate::sse::SseParser;
use crate::types::BackendState;
use connkit_core::ErrorKind;
use connkit_reconnect::{Attempt, Connector, Options, State as SupState, Supervisor};
use futures_util::StreamExt;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};
use url::Url;

pub(crate) type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// Where a backend's states come from.
pub(crate) trait Source: Send + Sync + 'static {
    /// One status request.
    fn status(&self) -> BoxFuture<'_, Result<BackendState>>;
    /// Open the stream, resuming after `last_event_id`; the body is checked for an error
    /// status before it is returned.
    fn open(&self, last_event_id: Option<String>) -> BoxFuture<'_, Result<ByteStream>>;
}

/// The HTTP source: `GET status_url` and `GET stream_url`.
#[derive(Debug)]
pub(crate) struct HttpSource {
    http: Http,
    status_url: Url,
    stream_url: Url,
}

impl HttpSource {
    pub(crate) fn new(status_url: Url, stream_url: Url, timeout: Duration) -> Result<Self> {
        Ok(Self {
            http: Http::new(timeout)?,
            status_url,
            stream_url,
        })
    }

    pub(crate) fn status_url(&self) -> &Url {
        &self.status_url
    }
}

impl Source for HttpSource {
    fn status(&self) -> BoxFuture<'_, Result<BackendState>> {
        Box::pin(self.http.get_json(&self.status_url))
    }

    fn open(&self, last_event_id: Option<String>) -> BoxFuture<'_, Result<ByteStream>> {
        Box::pin(async move {
            self.http
                .open_stream(&self.stream_url, last_event_id.as_deref())
                .await
        })
    }
}

/// One status request, and after a failure one more after `delay`.
pub(crate) async fn status_with_retry(
    source: &dyn Source,
    delay: Duration,
) -> Result<BackendState> {
    match source.status().await {
        Ok(s) => Ok(s),
        Err(e) => {
            debug!(error = %e, ?delay, "status request failed; retrying once");
            tokio::time::sleep(delay).await;
            source.status().await
        }
    }
}

/// Follow the backend until it terminates, the client is destroyed, or the stream fails for
/// good.
pub(crate) async fn drive(
    shared: Arc<Shared>,
    source: Arc<dyn Source>,
    options: SessionBackendOptions,
) {
    let cancel = shared.cancel.clone();
    // 1. The current state, as @jamsocket/client does first. A failure is not final: the
    //    stream decides.
    let initial = tokio::select! {
        r = status_with_retry(&*source, options.status_retry_delay) => r,
        () = cancel.cancelled() => return,
    };
    // A terminated backend ends it here. Any other state is held back: the stream replays
    // the whole history (so listeners see every status in order), and the held state is
    // delivered only if the stream has not reached it soon after opening, or fails.
    let pending = Arc::new(Mutex::new(None));
    match initial {
        Ok(state) if state.is_terminated() => {
            shared.apply(state);
            info!("the backend has terminated");
            return;
        }
        Ok(state) => *lock(&pending) = Some(state),
        Err(e) => debug!(error = %e, "no initial status; opening the stream anyway"),
    }

    // 2. The stream, kept open by a supervisor.
    let done = CancellationToken::new();
    let connector = StreamConnector {
        source,
        shared: Arc::clone(&shared),
        last_id: Arc::new(Mutex::new(None)),
        done: done.clone(),
        pending: Arc::clone(&pending),
    };
    let mut builder = Options::builder()
        .backoff_policy(Arc::clone(&options.backoff))
        .stable_for(options.stable_for)
        .connect_timeout(options.request_timeout + Duration::from_secs(1));
    builder = match options.idle_timeout {
        Some(idle) => {
            let half = (idle / 2).max(Duration::from_millis(1));
            builder
                .keepalive(half)
                .keepalive_timeout(idle - half + Duration::from_millis(1))
        }
        None => builder.keepalive(Duration::ZERO),
    };
    let sup_options = match builder.build() {
        Ok(o) => o,
        Err(e) => {
            shared.finish(Finished::Failed(Error::InvalidConfig(e.to_string())));
            return;
        }
    };
    let supervisor = Supervisor::new(connector, sup_options);
    let last_error: Arc<Mutex<Option<Error>>> = Arc::new(Mutex::new(None));
    let attempts = Arc::new(Mutex::new(0u32));
    let _on_error = {
        let last_error = Arc::clone(&last_error);
        supervisor.on_error(move |e| {
            let err = from_core(e.error());
            warn!(error = %err, "status stream");
            *lock(&last_error) = Some(err);
        })
    };
    let _on_gave_up = {
        let attempts = Arc::clone(&attempts);
        supervisor.on_gave_up(move |n| *lock(&attempts) = n)
    };
    let mut state = supervisor.state();
    supervisor.start();
    let why = tokio::select! {
        () = cancel.cancelled() => None,
        () = done.cancelled() => None,
        _ = state.wait_for(|s| matches!(s, SupState::GaveUp | SupState::Ended)) => {
            let last = lock(&last_error).take();
            let attempts = *lock(&attempts);
            Some(match last {
                // A final error (404 on the stream, a bad URL) is reported as itself.
                Some(e) if !e.is_retryable() => e,
                last => Error::GaveUp { attempts, last: last.map(Box::new) },
            })
        }
    };
    supervisor.end(true).await;
    if let Some(e) = why {
        deliver_pending(&shared, &pending);
        warn!(error = %e, "giving up on the status stream");
        shared.finish(Finished::Failed(e));
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// Our error as a supervisor error: the kind decides whether the supervisor retries.
fn to_core(e: Error) -> connkit_core::Error {
    let kind = match &e {
        _ if e.is_retryable() => ErrorKind::ConnectFailed,
        Error::InvalidUrl { .. } => ErrorKind::InvalidEndpoint,
        Error::Destroyed => ErrorKind::Cancelled,
        Error::Http { .. } => ErrorKind::Handshake,
        _ => ErrorKind::InvalidConfig,
    };
    connkit_core::Error::with_source(kind, "status stream", e)
}

/// Back from a supervisor error to ours.
fn from_core(e: &connkit_core::Error) -> Error {
    if let Some(ours) = std::error::Error::source(e).and_then(|s| s.downcast_ref::<Error>()) {
        return ours.clone();
    }
    let message = e.to_string();
    match e.kind() {
        ErrorKind::TimedOut => Error::Request {
            url: String::new(),
            message: format!("the stream went quiet: {message}"),
            source: None,
        },
        _ => Error::Request {
            url: String::new(),
            message,
            source: None,
        },
    }
}

/// How long after a stream opens its replay may take to reach the initial state.
const REPLAY_GRACE: Duration = Duration::from_millis(250);

/// Deliver the held-back initial state (a no-op if the stream already went past it).
fn deliver_pending(shared: &Shared, pending: &Mutex<Option<BackendState>>) -> bool {
    match lock(pending).take() {
        Some(state) => shared.apply(state),
        None => false,
    }
}

struct StreamConnector {
    source: Arc<dyn Source>,
    shared: Arc<Shared>,
    last_id: Arc<Mutex<Option<String>>>,
    done: CancellationToken,
    pending: Arc<Mutex<Option<BackendState>>>,
}

impl Connector for StreamConnector {
    type Conn = CancellationToken;

    /// Cancel safety: the supervisor never drops this future early except after its grace
    /// period; the request is abandoned when the attempt's token fires.
    async fn connect(&self, attempt: Attempt) -> Result<CancellationToken, connkit_core::Error> {
        let last_id = lock(&self.last_id).clone();
        debug!(
            attempt = attempt.number(),
            ?last_id,
            "opening the status stream"
        );
        let body = tokio::select! {
            r = self.source.open(last_id.clone()) => r.map_err(|e| {
                // The stream is not there: say what the status request said.
                deliver_pending(&self.shared, &self.pending);
                to_core(e)
            })?,
            () = attempt.cancel_token().cancelled() => {
                return Err(connkit_core::Error::new(ErrorKind::Cancelled, "attempt abandoned"));
            }
        };
        let token = self.shared.cancel.child_token();
        let reader = Reader {
            body,
            parser: SseParser::new().with_last_event_id(last_id),
            token: token.clone(),
            feed: attempt.feed(),
            shared: Arc::clone(&self.shared),
            last_id: Arc::clone(&self.last_id),
            done: self.done.clone(),
            pending: Arc::clone(&self.pending),
        };
        tokio::spawn(reader.run().in_current_span());
        Ok(token)
    }

    async fn close(&self, conn: CancellationToken, _force: bool) {
        conn.cancel();
    }
}

use tracing::Instrument as _;

struct Reader {
    body: ByteStream,
    parser: SseParser,
    token: CancellationToken,
    feed: connkit_reconnect::Feed,
    shared: Arc<Shared>,
    last_id: Arc<Mutex<Option<String>>>,
    done: CancellationToken,
    pending: Arc<Mutex<Option<BackendState>>>,
}

impl Reader {
    async fn run(mut self) {
        let grace = tokio::time::sleep(REPLAY_GRACE);
        tokio::pin!(grace);
        let mut graced = false;
        loop {
            let chunk = tokio::select! {
                c = self.body.next() => c,
                () = self.token.cancelled() => return,
                () = &mut grace, if !graced => {
                    graced = true;
                    if deliver_pending(&self.shared, &self.pending) {
                        self.done.cancel();
                        return;
                    }
                    continue;
                }
            };
            match chunk {
                Some(Ok(bytes)) => {
                    self.feed.heartbeat();
                    for event in self.parser.feed(&bytes) {
                        if let Some(id) = &event.id {
                            *lock(&self.last_id) = Some(id.clone());
                        }
                        if event.data.trim().is_empty() {
                            continue;
                        }
                        match serde_json::from_str::<BackendState>(&event.data) {
                            Ok(state) => {
                                let reached = {
                                    let p = lock(&self.pending);
                                    p.as_ref().is_some_and(|p| {
                                        matches!((state.status.rank(), p.status.rank()), (Some(a), Some(b)) if a >= b)
                                    })
                                };
                                if reached {
                                    lock(&self.pending).take();
                                }
                                if self.shared.apply(state) {
                                    info!("the backend has terminated");
                                    self.done.cancel();
                                    return;
                                }
                            }
                            Err(e) => {
                                warn!(error = %e, data = %event.data, "ignoring an event that is not a backend state")
                            }
                        }
                    }
                }
                Some(Err(e)) => {
                    self.feed.error(to_core(e));
                    return;
                }
                None => {
                    self.parser.finish();
                    debug!("the status stream ended; reconnecting");
                    self.feed.close(false);
                    return;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    //! The timing and the delivery rules, on paused time with scripted sources.

    use super::*;
    use crate::backend::SessionBackendOptions;
    use crate::types::BackendStatus;
    use bytes::Bytes;
    use connkit_core::backoff::{Backoff, Jitter};
    use std::collections::VecDeque;
    use tokio::time::Instant;

    /// One scripted answer to `open`.
    enum Open {
        /// Deliver these chunks, then end the body (EOF).
        Chunks(Vec<&'static str>),
        /// Deliver these chunks, then stay open forever.
        Hang(Vec<&'static str>),
        /// Fail with this HTTP status.
        Status(u16),
    }

    struct Scripted {
        statuses: Mutex<VecDeque<Result<&'static str>>>,
        opens: Mutex<VecDeque<Open>>,
        log: Mutex<Vec<(Duration, String)>>,
        t0: Instant,
    }

    impl Scripted {
        fn new(statuses: Vec<Result<&'static str>>, opens: Vec<Open>) -> Arc<Self> {
            Arc::new(Self {
                statuses: Mutex::new(statuses.into()),
                opens: Mutex::new(opens.into()),
                log: Mutex::new(Vec::new()),
                t0: Instant::now(),
            })
        }

        fn log(&self, what: String) {
            lock(&self.log).push((self.t0.elapsed(), what));
        }

        fn calls(&self) -> Vec<(Duration, String)> {
            lock(&self.log).clone()
        }
    }

    fn http(status: u16) -> Error {
        Error::Http {
            url: "scripted".into(),
            status,
            body: String::new(),
        }
    }

    impl Source for Scripted {
        fn status(&self) -> BoxFuture<'_, Result<BackendState>> {
            Box::pin(async move {
                self.log("status".into());
                match lock(&self.statuses).pop_front() {
                    Some(Ok(json)) => {
                        serde_json::from_str(json).map_err(|e| Error::InvalidResponse {
                            url: "scripted".into(),
                            message: e.to_string(),
                        })
                    }
                    Some(Err(e)) => Err(e),
                    None => Err(http(503)),
                }
            })
        }

        fn open(&self, last_event_id: Option<String>) -> BoxFuture<'_, Result<ByteStream>> {
            Box::pin(async move {
                self.log(format!("open {}", last_event_id.as_deref().unwrap_or("-")));
                let next = lock(&self.opens).pop_front();
                let to_stream = |chunks: Vec<&'static str>| {
                    futures_util::stream::iter(
                        chunks
                            .into_iter()
                            .map(|c| Ok(Bytes::from_static(c.as_bytes()))),
                    )
                };
                match next {
                    Some(Open::Chunks(c)) => Ok(Box::pin(to_stream(c)) as ByteStream),
                    Some(Open::Hang(c)) => Ok(Box::pin(
                        to_stream(c).chain(futures_util::stream::pending()),
                    ) as ByteStream),
                    Some(Open::Status(s)) => Err(http(s)),
                    None => Err(http(503)),
                }
            })
        }
    }

    fn options() -> SessionBackendOptions {
        SessionBackendOptions::new().backoff(
            Backoff::exponential()
                .initial_delay(Duration::from_secs(1))
                .max_delay(Duration::from_secs(8))
                .jitter(Jitter::None)
                .build()
                .unwrap(),
        )
    }

    fn start(source: &Arc<Scripted>, options: SessionBackendOptions) -> crate::SessionBackend {
        let source: Arc<dyn Source> = source.clone();
        options.start(source, None, crate::backend::Meta::default())
    }

    const SCHEDULED: &str = "data: {\"status\":\"scheduled\",\"time\":1}\nid: scheduled\n\n";
    const LOADING: &str = "data: {\"status\":\"loading\",\"time\":2}\nid: loading\n\n";
    const READY: &str = "data: {\"status\":\"ready\",\"time\":3}\nid: ready\n\n";
    const TERMINATED: &str = "data: {\"status\":\"terminated\",\"time\":4,\"termination_reason\":\"external\"}\nid: terminated\n\n";

    fn statuses(states: &[BackendState]) -> Vec<String> {
        states.iter().map(|s| s.status.to_string()).collect()
    }

    #[tokio::test(start_paused = true)]
    async fn status_retries_once_after_500ms() {
        let src = Scripted::new(
            vec![Err(http(500)), Ok(r#"{"status":"ready","time":1}"#)],
            vec![Open::Hang(vec![])],
        );
        let backend = start(&src, options().idle_timeout(None));
        backend.ready().await.unwrap();
        let calls = src.calls();
        assert_eq!(calls[0], (Duration::ZERO, "status".into()));
        assert_eq!(calls[1], (Duration::from_millis(500), "status".into()));
        // A one-shot status() has the same rule, and gives the second error.
        let src2 = Scripted::new(vec![Err(http(500)), Err(http(502))], vec![]);
        let t0 = Instant::now();
        let err = status_with_retry(&*src2, Duration::from_millis(500))
            .await
            .unwrap_err();
        assert_eq!(err.http_status(), Some(502));
        assert_eq!(t0.elapsed(), Duration::from_millis(500));
    }

    #[tokio::test(start_paused = true)]
    async fn reconnects_with_backoff_and_last_event_id_and_never_goes_back() {
        let src = Scripted::new(
            vec![Ok(r#"{"status":"scheduled","time":1}"#)],
            vec![
                // Drops after two events, a garbage line and half a line.
                Open::Chunks(vec![
                    SCHEDULED,
                    "data: not json\n\n",
                    LOADING,
                    "data: {\"sta",
                ]),
                // Refuses twice (500), then 404s would be final, so answer 200 with a
                // replay (duplicates and an old state out of order) and ready.
                Open::Status(500),
                Open::Chunks(vec![]),
                Open::Hang(vec![
                    SCHEDULED,
                    LOADING,
                    "data: {\"status\":\"starting\",\"ti",
                    "me\":5}\n\n",
                    READY,
                    SCHEDULED,
                ]),
            ],
        );
        let backend = start(&src, options().idle_timeout(None));
        let mut seen = backend.statuses();
        backend.ready().await.unwrap();
        let mut got = Vec::new();
        for _ in 0..4 {
            got.push(seen.next().await.unwrap());
        }
        assert_eq!(
            statuses(&got),
            ["scheduled", "loading", "starting", "ready"]
        );
        let calls = src.calls();
        let opens: Vec<_> = calls
            .iter()
            .filter(|(_, c)| c.starts_with("open"))
            .cloned()
            .collect();
        // The first stream was not stable (open < stable_for), so its schedule goes on:
        // EOF → 1 s; 500 → 2 s more; EOF of an empty 200 → 4 s more.
        assert_eq!(
            opens,
            [
                (Duration::ZERO, "open -".to_string()),
                (Duration::from_secs(1), "open loading".to_string()),
                (Duration::from_secs(3), "open loading".to_string()),
                (Duration::from_secs(7), "open loading".to_string()),
            ]
        );
        assert!(backend.is_ready());
        backend.destroy();
    }

    #[tokio::test(start_paused = true)]
    async fn a_404_stream_is_final_not_a_hot_loop() {
        let src = Scripted::new(
            vec![Ok(r#"{"status":"scheduled","time":1}"#)],
            vec![Open::Status(404), Open::Status(404)],
        );
        let backend = start(&src, options());
        let err = backend.ready().await.unwrap_err();
        assert_eq!(err.http_status(), Some(404));
        assert!(matches!(backend.finished().await, Finished::Failed(_)));
        assert_eq!(
            src.calls()
                .iter()
                .filter(|(_, c)| c.starts_with("open"))
                .count(),
            1
        );
    }

    #[tokio::test(start_paused = true)]
    async fn gives_up_after_max_attempts_with_the_last_error() {
        let src = Scripted::new(
            vec![],
            vec![Open::Status(500), Open::Status(503), Open::Status(502)],
        );
        let options = options().backoff(
            Backoff::constant(Duration::from_secs(2))
                .max_attempts(3)
                .jitter(Jitter::None)
                .build()
                .unwrap(),
        );
        let backend = start(&src, options);
        let t0 = Instant::now();
        let err = backend.terminated().await.unwrap_err();
        match &err {
            Error::GaveUp {
                attempts: 3,
                last: Some(last),
            } => assert_eq!(last.http_status(), Some(502)),
            other => panic!("{other:?}"),
        }
        // status (fails), 500 ms, status (fails), then attempts at 0, 2 s, 4 s.
        assert_eq!(t0.elapsed(), Duration::from_millis(4500));
    }

    #[tokio::test(start_paused = true)]
    async fn a_silent_stream_is_reopened_after_the_idle_timeout() {
        let src = Scripted::new(
            vec![Ok(r#"{"status":"ready","time":1}"#)],
            vec![Open::Hang(vec![READY]), Open::Hang(vec![READY, TERMINATED])],
        );
        let backend = start(&src, options().idle_timeout(Some(Duration::from_secs(60))));
        let last = backend.terminated().await.unwrap();
        assert_eq!(
            last.termination_reason.map(|r| r.to_string()).as_deref(),
            Some("external")
        );
        let opens: Vec<_> = src
            .calls()
            .into_iter()
            .filter(|(_, c)| c.starts_with("open"))
            .collect();
        assert_eq!(opens.len(), 2);
        let gap = opens[1].0 - opens[0].0;
        assert!(
            gap >= Duration::from_secs(60) && gap < Duration::from_secs(62),
            "{gap:?}"
        );
        assert_eq!(opens[1].1, "open ready");
    }

    #[tokio::test(start_paused = true)]
    async fn terminated_initial_status_skips_the_stream() {
        let src = Scripted::new(
            vec![Ok(
                r#"{"status":"terminated","time":"2024-01-01T00:00:00Z","exit_error":null}"#,
            )],
            vec![],
        );
        let backend = start(&src, options());
        let got = std::sync::Arc::new(Mutex::new(None));
        let g = got.clone();
        let last = backend.terminated().await.unwrap();
        backend
            .on_terminated(move |s| *lock(&g) = Some(s.status.clone()))
            .detach();
        assert_eq!(
            *lock(&got),
            Some(BackendStatus::Terminated),
            "runs at once when already terminated"
        );
        assert!(last.is_terminated());
        assert!(backend.is_terminated() && !backend.is_ready());
        assert!(matches!(backend.ready().await, Err(Error::Terminated(_))));
        assert!(src.calls().iter().all(|(_, c)| c == "status"));
    }

    #[tokio::test(start_paused = true)]
    async fn callbacks_order_and_unsubscribe() {
        let src = Scripted::new(
            vec![Ok(r#"{"status":"scheduled","time":1}"#)],
            vec![Open::Hang(vec![LOADING])],
        );
        let backend = start(&src, options().idle_timeout(None));
        let log = Arc::new(Mutex::new(Vec::<String>::new()));
        let l = log.clone();
        let status_guard =
            backend.on_status(move |s| lock(&l).push(format!("status {}", s.status)));
        let l = log.clone();
        backend
            .on_ready(move || lock(&l).push("ready cb".into()))
            .detach();
        let l = log.clone();
        let dropped = backend.on_status(move |s| lock(&l).push(format!("dropped {}", s.status)));
        drop(dropped);
        tokio::time::sleep(Duration::from_secs(1)).await;
        // Feed ready and terminated through a second connection.
        lock(&src.opens).push_back(Open::Hang(vec![READY, TERMINATED]));
        drop(status_guard);
        let l = log.clone();
        let _g = backend.on_status(move |s| lock(&l).push(format!("late {}", s.status)));
        backend.destroy();
        // Destroyed: nothing more, pending futures resolve.
        assert!(matches!(backend.ready().await, Err(Error::Destroyed)));
        assert!(matches!(backend.terminated().await, Err(Error::Destroyed)));
        let log = lock(&log).clone();
        // The initial `scheduled` was held back and made obsolete by the stream's `loading`.
        assert_eq!(log, ["status loading"]);
    }

    #[tokio::test(start_paused = true)]
    async fn on_ready_runs_before_status_listeners_and_at_once_when_ready() {
        let src = Scripted::new(
            vec![Ok(r#"{"status":"waiting","time":1}"#)],
            vec![Open::Hang(vec![READY])],
        );
        let backend = start(&src, options().idle_timeout(None));
        let log = Arc::new(Mutex::new(Vec::<String>::new()));
        let l = log.clone();
        let _s = backend.on_status(move |s| lock(&l).push(format!("status {}", s.status)));
        let l = log.clone();
        let _r = backend.on_ready(move || lock(&l).push("ready cb".into()));
        backend.ready().await.unwrap();
        let l = log.clone();
        let _now = backend.on_ready(move || lock(&l).push("immediate".into()));
        assert_eq!(*lock(&log), ["ready cb", "status ready", "immediate"]);
        // A late statuses() replays what was delivered (here only `ready`).
        let mut s = backend.statuses();
        assert_eq!(s.next().await.unwrap().status, BackendStatus::Ready);
        backend.destroy();
        assert!(s.next().await.is_none());
    }

    #[tokio::test(start_paused = true)]
    async fn the_initial_state_is_delivered_when_the_stream_does_not_replay_it() {
        let src = Scripted::new(
            vec![Ok(r#"{"status":"waiting","time":1}"#)],
            vec![Open::Hang(vec![":\n\n"])],
        );
        let backend = start(&src, options().idle_timeout(None));
        let mut states = backend.statuses();
        let t0 = Instant::now();
        assert_eq!(states.next().await.unwrap().status, BackendStatus::Waiting);
        assert_eq!(t0.elapsed(), REPLAY_GRACE);
        // And when the stream cannot be opened at all, at once.
        let src = Scripted::new(
            vec![Ok(r#"{"status":"ready","time":1}"#)],
            vec![Open::Status(404)],
        );
        let backend = start(&src, options());
        let t0 = Instant::now();
        backend.ready().await.unwrap();
        assert_eq!(t0.elapsed(), Duration::ZERO);
        assert!(matches!(backend.finished().await, Finished::Failed(_)));
        assert!(backend.is_ready() || backend.current().is_some());
    }

    #[tokio::test(start_paused = true)]
    async fn destroy_aborts_a_request_in_flight() {
        struct Slow;
        impl Source for Slow {
            fn status(&self) -> BoxFuture<'_, Result<BackendState>> {
                Box::pin(std::future::pending())
            }
            fn open(&self, _: Option<String>) -> BoxFuture<'_, Result<ByteStream>> {
                Box::pin(std::future::pending())
            }
        }
        let backend = options().start(Arc::new(Slow), None, crate::backend::Meta::default());
        let b = backend.clone();
        let status = tokio::spawn(async move { b.status().await });
        let waiter = {
            let b = backend.clone();
            tokio::spawn(async move { b.ready().await })
        };
        tokio::time::sleep(Duration::from_secs(3600)).await;
        backend.destroy();
        assert!(matches!(status.await.unwrap(), Err(Error::Destroyed)));
        assert!(matches!(waiter.await.unwrap(), Err(Error::Destroyed)));
    }
}
