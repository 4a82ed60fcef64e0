//! The supervisor task: the only owner of the state, the current connection, the attempt in
//! flight, the backoff schedule and the keepalive clock.

use std::future::pending;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::Arc;
use std::time::Duration;

use connkit_core::events::EventHub;
use connkit_core::{Error, ErrorKind};
use tokio::sync::{mpsc, oneshot, watch};
use tokio::time::{Instant, sleep_until};
use tokio_util::sync::CancellationToken;
use tracing::{Instrument, debug, error, info, warn};

use crate::callbacks::Registry;
use crate::connector::{Attempt, Command, ConnId, Connector, Feed, FeedKind};
use crate::event::{Event, State};
use crate::options::Options;

/// How long a cancelled attempt may still take to finish when there is no connect timeout.
const DEFAULT_CANCEL_GRACE: Duration = Duration::from_secs(30);

/// Used instead of an `Instant` that would overflow (a delay of `Duration::MAX`).
const FAR_FUTURE: Duration = Duration::from_secs(60 * 60 * 24 * 365 * 30);

type AttemptResult<T> = Result<Result<T, Error>, oneshot::error::RecvError>;

/// An attempt in flight.
struct Pending<T> {
    attempt: u32,
    id: ConnId,
    token: CancellationToken,
    result: oneshot::Receiver<Result<T, Error>>,
    deadline: Option<Instant>,
    /// A close or error fed for this id before `connect` returned; applied once it has.
    early: Option<FeedKind>,
}

/// The connection that is up.
struct Live<T> {
    id: ConnId,
    conn: T,
    since: Instant,
    last_heard: Instant,
    next_ping: Instant,
}

enum Phase<T> {
    Idle,
    Connecting(Pending<T>),
    Connected(Live<T>),
    Backoff { attempt: u32, until: Instant },
    GaveUp,
}

/// Why an established connection is being replaced.
enum Outage {
    Closed { had_error: bool },
    Failed(Error),
    Manual,
}

enum Step<T> {
    Command(Option<Command>),
    Attempt(AttemptResult<T>),
    Timer,
}

pub(crate) struct Actor<C: Connector> {
    connector: Arc<C>,
    options: Options,
    hub: Arc<EventHub<State, Event>>,
    callbacks: Arc<Registry<C::Conn>>,
    current: watch::Sender<Option<(ConnId, C::Conn)>>,
    commands: mpsc::UnboundedReceiver<Command>,
    weak_tx: mpsc::WeakUnboundedSender<Command>,
    next_id: u64,
    schedule: Option<Box<dyn Iterator<Item = Duration> + Send>>,
    /// Attempts started in the current schedule.
    attempts: u32,
    /// Whether `Offline` was emitted for the current outage.
    offline: bool,
    phase: Phase<C::Conn>,
}

fn at(now: Instant, after: Duration) -> Instant {
    now.checked_add(after)
        .or_else(|| now.checked_add(FAR_FUTURE))
        .unwrap_or(now)
}

impl<C: Connector> Actor<C> {
    pub(crate) fn new(
        connector: C,
        options: Options,
        hub: Arc<EventHub<State, Event>>,
        callbacks: Arc<Registry<C::Conn>>,
        current: watch::Sender<Option<(ConnId, C::Conn)>>,
        commands: mpsc::UnboundedReceiver<Command>,
        weak_tx: mpsc::WeakUnboundedSender<Command>,
    ) -> Self {
        Self {
            connector: Arc::new(connector),
            options,
            hub,
            callbacks,
            current,
            commands,
            weak_tx,
            next_id: 0,
            schedule: None,
            attempts: 0,
            offline: false,
            phase: Phase::Idle,
        }
    }

    pub(crate) async fn run(mut self) {
        loop {
            let wake = self.wake_at();
            let step = {
                let commands = &mut self.commands;
                let phase = &mut self.phase;
                let attempt = async {
                    match phase {
                        Phase::Connecting(p) => (&mut p.result).await,
                        _ => pending().await,
                    }
                };
                let timer = async {
                    match wake {
                        Some(t) => sleep_until(t).await,
                        None => pending().await,
                    }
                };
                tokio::select! {
                    biased;
                    cmd = commands.recv() => Step::Command(cmd),
                    r = attempt => Step::Attempt(r),
                    () = timer => Step::Timer,
                }
            };
            match step {
                Step::Command(None) => {
                    debug!("every handle was dropped; ending");
                    self.end(false).await;
                    return;
                }
                Step::Command(Some(Command::End { force })) => {
                    self.end(force).await;
                    return;
                }
                Step::Command(Some(Command::Start)) => {
                    if matches!(self.phase, Phase::Idle) {
                        self.begin();
                    }
                }
                Step::Command(Some(Command::Reconnect)) => self.reconnect(),
                Step::Command(Some(Command::Feed { id, kind })) => self.feed(id, kind),
                Step::Attempt(r) => self.attempt_done(r),
                Step::Timer => self.timer(),
            }
        }
    }

    /// When the timer branch must fire next.
    fn wake_at(&self) -> Option<Instant> {
        match &self.phase {
            Phase::Connecting(p) => p.deadline,
            Phase::Backoff { until, .. } => Some(*until),
            Phase::Connected(live) if self.keepalive_on() => {
                Some(live.next_ping.min(self.dead_at(live)))
            }
            _ => None,
        }
    }

    fn keepalive_on(&self) -> bool {
        !self.options.keepalive.is_zero()
    }

    /// The liveness deadline: nothing heard for keepalive + keepalive timeout.
    fn dead_at(&self, live: &Live<C::Conn>) -> Instant {
        at(
            live.last_heard,
            self.options
                .keepalive
                .saturating_add(self.options.keepalive_timeout),
        )
    }

    fn take_phase(&mut self) -> Phase<C::Conn> {
        std::mem::replace(&mut self.phase, Phase::Idle)
    }

    fn set_phase(&mut self, phase: Phase<C::Conn>) {
        let state = match &phase {
            Phase::Idle => State::Idle,
            Phase::Connecting(p) => State::Connecting { attempt: p.attempt },
            Phase::Connected(live) => State::Connected { id: live.id },
            Phase::Backoff { attempt, until } => State::Backoff {
                attempt: *attempt,
                until: *until,
            },
            Phase::GaveUp => State::GaveUp,
        };
        self.phase = phase;
        self.hub.set_state(state);
    }

    fn emit(&self, event: Event, conn: Option<&C::Conn>) {
        self.hub.emit(event.clone());
        self.callbacks.dispatch(&event, conn);
    }

    fn fresh_schedule(&mut self) {
        self.schedule = Some(self.options.backoff.new_schedule());
        self.attempts = 0;
    }

    /// The first attempt after `start`.
    fn begin(&mut self) {
        info!("starting");
        self.fresh_schedule();
        self.next_attempt(false);
    }

    /// Take the next delay of the schedule and start (or wait for) the next attempt; give up
    /// when the schedule is exhausted.
    fn next_attempt(&mut self, announce: bool) {
        let Some(delay) = self.schedule.as_mut().and_then(Iterator::next) else {
            self.give_up();
            return;
        };
        self.attempts = self.attempts.saturating_add(1);
        let attempt = self.attempts;
        if announce {
            debug!(attempt, delay_ms = delay.as_millis(), "reconnecting");
            self.emit(Event::Reconnect { attempt, delay }, None);
        }
        if delay.is_zero() {
            self.start_attempt(attempt);
        } else {
            let until = at(Instant::now(), delay);
            self.set_phase(Phase::Backoff { attempt, until });
        }
    }

    fn start_attempt(&mut self, attempt: u32) {
        self.next_id += 1;
        let id = ConnId::new(self.next_id);
        let token = CancellationToken::new();
        let (tx, rx) = oneshot::channel();
        let ctx = Attempt::new(
            attempt,
            id,
            token.clone(),
            Feed::new(id, self.weak_tx.clone()),
        );
        let grace = self.options.connect_timeout.unwrap_or(DEFAULT_CANCEL_GRACE);
        let span = tracing::debug_span!("connkit.reconnect.attempt", attempt, id = %id);
        tokio::spawn(run_attempt(Arc::clone(&self.connector), ctx, tx, grace).instrument(span));
        let deadline = self.options.connect_timeout.map(|t| at(Instant::now(), t));
        self.set_phase(Phase::Connecting(Pending {
            attempt,
            id,
            token,
            result: rx,
            deadline,
            early: None,
        }));
    }

    /// Cancel an attempt in flight. A connection it already produced is closed here; one it
    /// produces later is closed by its task.
    fn abandon(&self, pending: Pending<C::Conn>) {
        pending.token.cancel();
        let mut result = pending.result;
        result.close();
        if let Ok(Ok(conn)) = result.try_recv() {
            debug!(id = %pending.id, "closing a connection that arrived after its attempt was abandoned");
            self.spawn_close(conn, true);
        }
    }

    fn spawn_close(&self, conn: C::Conn, force: bool) {
        let connector = Arc::clone(&self.connector);
        tokio::spawn(async move { connector.close(conn, force).await }.in_current_span());
    }

    fn may_retry(&self, error: &Error) -> bool {
        if !error.is_retryable() {
            return false;
        }
        match &self.options.retry {
            None => true,
            Some(predicate) => {
                let attempts = self.attempts;
                catch_unwind(AssertUnwindSafe(|| predicate(error, attempts))).unwrap_or_else(|_| {
                    error!("the retry predicate panicked; not retrying");
                    false
                })
            }
        }
    }

    fn attempt_done(&mut self, result: AttemptResult<C::Conn>) {
        let Phase::Connecting(pending) = self.take_phase() else {
            return;
        };
        match result {
            Ok(Ok(conn)) => self.connected(pending, conn),
            Ok(Err(e)) => self.attempt_failed(pending.attempt, e),
            Err(_) => self.attempt_failed(
                pending.attempt,
                Error::new(
                    ErrorKind::ConnectFailed,
                    "the connect task ended without a result (did the connector panic?)",
                ),
            ),
        }
    }

    fn connected(&mut self, pending: Pending<C::Conn>, conn: C::Conn) {
        let now = Instant::now();
        let id = pending.id;
        info!(%id, attempt = pending.attempt, "connected");
        self.current.send_replace(Some((id, conn.clone())));
        self.offline = false;
        self.set_phase(Phase::Connected(Live {
            id,
            conn: conn.clone(),
            since: now,
            last_heard: now,
            next_ping: at(now, self.options.keepalive),
        }));
        self.emit(Event::Connect { id }, Some(&conn));
        if let Some(early) = pending.early {
            self.feed(id, early);
        }
    }

    fn attempt_failed(&mut self, attempt: u32, e: Error) {
        warn!(attempt, error = %e, "connect attempt failed");
        let retry = self.may_retry(&e);
        self.emit(Event::Error(e.into()), None);
        if !self.offline {
            self.offline = true;
            self.emit(Event::Offline, None);
        }
        if retry {
            self.next_attempt(true);
        } else {
            self.give_up();
        }
    }

    fn give_up(&mut self) {
        let attempts = self.attempts;
        error!(attempts, "giving up");
        self.schedule = None;
        self.set_phase(Phase::GaveUp);
        self.emit(Event::GaveUp { attempts }, None);
    }

    /// Replace the established connection.
    fn outage(&mut self, cause: Outage) {
        let Phase::Connected(live) = self.take_phase() else {
            return;
        };
        let now = Instant::now();
        let (error, had_error, force, manual) = match cause {
            Outage::Closed { had_error } => (None, had_error, false, false),
            Outage::Failed(e) => (Some(e), true, true, false),
            Outage::Manual => (None, false, false, true),
        };
        let stable = now.saturating_duration_since(live.since) >= self.options.stable_for;
        if manual || stable || self.schedule.is_none() {
            self.fresh_schedule();
        }
        let retry = error.as_ref().is_none_or(|e| self.may_retry(e));
        info!(id = %live.id, had_error, stable, "connection lost");
        if let Some(e) = error {
            warn!(id = %live.id, error = %e, "connection failed");
            self.emit(Event::Error(e.into()), None);
        }
        self.current.send_replace(None);
        self.spawn_close(live.conn, force);
        self.emit(
            Event::Close {
                id: live.id,
                had_error,
            },
            None,
        );
        self.offline = true;
        self.emit(Event::Offline, None);
        if retry {
            self.next_attempt(true);
        } else {
            self.give_up();
        }
    }

    fn feed(&mut self, id: ConnId, kind: FeedKind) {
        let now = Instant::now();
        let keepalive = self.options.keepalive;
        match &mut self.phase {
            Phase::Connected(live) if live.id == id => match kind {
                FeedKind::Heartbeat => {
                    live.last_heard = now;
                    live.next_ping = at(now, keepalive);
                }
                FeedKind::ReschedulePing => live.next_ping = at(now, keepalive),
                FeedKind::Close { had_error } => self.outage(Outage::Closed { had_error }),
                FeedKind::Error(e) => self.outage(Outage::Failed(e)),
            },
            Phase::Connecting(p) if p.id == id => {
                if matches!(kind, FeedKind::Close { .. } | FeedKind::Error(_)) && p.early.is_none()
                {
                    debug!(%id, "connection ended before connect returned");
                    p.early = Some(kind);
                }
            }
            _ => debug!(%id, "ignoring a feed for a connection that is not the current one"),
        }
    }

    fn reconnect(&mut self) {
        match &self.phase {
            Phase::Idle => self.begin(),
            Phase::Connecting(_) => debug!("reconnect requested while an attempt runs; ignored"),
            Phase::Connected(_) => self.outage(Outage::Manual),
            Phase::Backoff { .. } | Phase::GaveUp => {
                info!("reconnect requested; starting over");
                self.fresh_schedule();
                if !self.offline {
                    self.offline = true;
                    self.emit(Event::Offline, None);
                }
                self.next_attempt(true);
            }
        }
    }

    fn timer(&mut self) {
        let now = Instant::now();
        match &mut self.phase {
            Phase::Connecting(p) if p.deadline.is_some_and(|d| now >= d) => {
                let Phase::Connecting(pending) = self.take_phase() else {
                    return;
                };
                let attempt = pending.attempt;
                let limit = self.options.connect_timeout.unwrap_or_default();
                self.abandon(pending);
                self.attempt_failed(
                    attempt,
                    Error::new(
                        ErrorKind::TimedOut,
                        format!("connect attempt {attempt} took longer than {limit:?}"),
                    ),
                );
            }
            Phase::Backoff { attempt, until } if now >= *until => {
                let attempt = *attempt;
                self.start_attempt(attempt);
            }
            Phase::Connected(live) if !self.options.keepalive.is_zero() => {
                let silence = self
                    .options
                    .keepalive
                    .saturating_add(self.options.keepalive_timeout);
                if now >= at(live.last_heard, silence) {
                    let id = live.id;
                    self.outage(Outage::Failed(Error::new(
                        ErrorKind::TimedOut,
                        format!("keepalive: nothing heard from connection {id} for {silence:?}"),
                    )));
                } else if now >= live.next_ping {
                    live.next_ping = at(now, self.options.keepalive);
                    let connector = Arc::clone(&self.connector);
                    let conn = live.conn.clone();
                    let feed = Feed::new(live.id, self.weak_tx.clone());
                    debug!(id = %live.id, "keepalive ping");
                    tokio::spawn(
                        async move {
                            if let Err(e) = connector.ping(&conn).await {
                                feed.error(e);
                            }
                        }
                        .in_current_span(),
                    );
                }
            }
            _ => {}
        }
    }

    async fn end(&mut self, force: bool) {
        info!(force, "ending");
        match self.take_phase() {
            Phase::Connecting(pending) => self.abandon(pending),
            Phase::Connected(live) => {
                self.current.send_replace(None);
                self.connector.close(live.conn, force).await;
                self.emit(
                    Event::Close {
                        id: live.id,
                        had_error: false,
                    },
                    None,
                );
            }
            Phase::Idle | Phase::Backoff { .. } | Phase::GaveUp => {}
        }
        self.schedule = None;
        self.emit(Event::End, None);
        self.hub.set_state(State::Ended);
    }
}

/// One connect attempt, in its own task so that the supervisor never waits on a connector.
///
/// After the token is cancelled the connector gets `grace` to finish; a connection it still
/// returns is closed (`force = true`). A connection whose result nobody receives any more
/// is closed too.
async fn run_attempt<C: Connector>(
    connector: Arc<C>,
    attempt: Attempt,
    tx: oneshot::Sender<Result<C::Conn, Error>>,
    grace: Duration,
) {
    let token = attempt.cancel_token().clone();
    let connect = connector.connect(attempt);
    tokio::pin!(connect);
    let result = tokio::select! {
        biased;
        r = &mut connect => r,
        () = token.cancelled() => match tokio::time::timeout(grace, &mut connect).await {
            Ok(r) => r,
            Err(_) => {
                warn!("the connector ignored the cancellation; dropping its future");
                return;
            }
        },
    };
    match result {
        Ok(conn) if token.is_cancelled() => {
            debug!("closing a connection that arrived after its attempt was cancelled");
            connector.close(conn, true).await;
        }
        Ok(conn) => {
            if let Err(Ok(conn)) = tx.send(Ok(conn)) {
                debug!("closing a connection nobody waits for any more");
                connector.close(conn, true).await;
            }
        }
        Err(e) => {
            if !token.is_cancelled() {
                let _ = tx.send(Err(e));
            }
        }
    }
}
