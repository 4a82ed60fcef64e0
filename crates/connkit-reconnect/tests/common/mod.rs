//! A scripted connector and an event recorder for deterministic supervisor tests.
//!
//! Everything runs under `#[tokio::test(start_paused = true)]`: the clock only moves when
//! every task waits, so each timestamp (milliseconds since the test's start) is exact.
#![allow(dead_code, unreachable_pub)]

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use connkit_reconnect::{
    Attempt, Connector, Error, ErrorKind, Event, Feed, Jitter, Options, OptionsBuilder,
    Subscription, Supervisor,
};
use tokio::time::{Instant, sleep};

pub fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

/// What the connector does on one `connect` call.
#[derive(Debug, Clone)]
pub enum Step {
    /// Connect after `after` ms (honouring cancellation).
    Ok { after: u64 },
    /// Connect after `after` ms; the transport reports a close `live` ms later.
    OkThenClose {
        after: u64,
        live: u64,
        had_error: bool,
    },
    /// Report a close of this very connection at `close_at` ms into the attempt, then
    /// return the connection at `after` ms (a reader that saw EOF before connect returned).
    ClosedBeforeReturn { close_at: u64, after: u64 },
    /// Fail after `after` ms with an error of `kind`.
    Fail { after: u64, kind: ErrorKind },
    /// Never finish on its own; return `Cancelled` when the token fires.
    Hang,
    /// Ignore the token and connect after `ok_after` ms anyway.
    IgnoreCancel { ok_after: u64 },
    /// Panic inside `connect`.
    Panic,
}

pub fn fail(after: u64) -> Step {
    Step::Fail {
        after,
        kind: ErrorKind::ConnectFailed,
    }
}

pub fn ok(after: u64) -> Step {
    Step::Ok { after }
}

/// What the supervisor asked of the connector.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Call {
    Connect {
        attempt: u32,
        id: u64,
    },
    /// The connector saw the attempt's token fire.
    Cancelled {
        id: u64,
    },
    Close {
        id: u64,
        force: bool,
    },
    Ping {
        id: u64,
    },
}

/// The connection type: the id of the attempt that made it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TestConn(pub u64);

#[derive(Debug)]
struct Script {
    t0: Instant,
    steps: Mutex<VecDeque<Step>>,
    calls: Mutex<Vec<(u64, Call)>>,
    feeds: Mutex<HashMap<u64, Feed>>,
    /// Answer each ping with a heartbeat after this many ms (None: never answer).
    pong_after: Mutex<Option<u64>>,
    /// Make `ping` fail with this kind.
    ping_error: Mutex<Option<ErrorKind>>,
}

/// A connector that follows a script and records every call with its time.
#[derive(Debug, Clone)]
pub struct Scripted {
    inner: Arc<Script>,
}

impl Scripted {
    pub fn new(t0: Instant, steps: Vec<Step>) -> Self {
        Self {
            inner: Arc::new(Script {
                t0,
                steps: Mutex::new(steps.into()),
                calls: Mutex::new(Vec::new()),
                feeds: Mutex::new(HashMap::new()),
                pong_after: Mutex::new(None),
                ping_error: Mutex::new(None),
            }),
        }
    }

    fn now(&self) -> u64 {
        elapsed(self.inner.t0)
    }

    fn record(&self, call: Call) {
        let t = self.now();
        self.inner.calls.lock().unwrap().push((t, call));
    }

    /// Every call so far, with its time in ms.
    pub fn calls(&self) -> Vec<(u64, Call)> {
        self.inner.calls.lock().unwrap().clone()
    }

    /// Only the calls matching `f`.
    pub fn calls_where(&self, f: impl Fn(&Call) -> bool) -> Vec<(u64, Call)> {
        self.calls().into_iter().filter(|(_, c)| f(c)).collect()
    }

    pub fn closes(&self) -> Vec<(u64, Call)> {
        self.calls_where(|c| matches!(c, Call::Close { .. }))
    }

    pub fn connects(&self) -> Vec<(u64, Call)> {
        self.calls_where(|c| matches!(c, Call::Connect { .. }))
    }

    pub fn pings(&self) -> Vec<u64> {
        self.calls_where(|c| matches!(c, Call::Ping { .. }))
            .into_iter()
            .map(|(t, _)| t)
            .collect()
    }

    pub fn push(&self, step: Step) {
        self.inner.steps.lock().unwrap().push_back(step);
    }

    pub fn answer_pings_after(&self, ms: Option<u64>) {
        *self.inner.pong_after.lock().unwrap() = ms;
    }

    pub fn fail_pings(&self, kind: Option<ErrorKind>) {
        *self.inner.ping_error.lock().unwrap() = kind;
    }

    /// The feed the supervisor handed to attempt `id`.
    pub fn feed(&self, id: u64) -> Feed {
        self.inner.feeds.lock().unwrap()[&id].clone()
    }

    /// Sleep `n` ms, or record the cancellation and return false.
    async fn wait(&self, attempt: &Attempt, n: u64) -> bool {
        tokio::select! {
            () = sleep(ms(n)) => true,
            () = attempt.cancel_token().cancelled() => {
                self.record(Call::Cancelled { id: attempt.id().get() });
                false
            }
        }
    }
}

fn cancelled() -> Error {
    Error::new(ErrorKind::Cancelled, "attempt cancelled")
}

impl Connector for Scripted {
    type Conn = TestConn;

    async fn connect(&self, attempt: Attempt) -> Result<TestConn, Error> {
        let id = attempt.id().get();
        self.record(Call::Connect {
            attempt: attempt.number(),
            id,
        });
        self.inner.feeds.lock().unwrap().insert(id, attempt.feed());
        let step = self
            .inner
            .steps
            .lock()
            .unwrap()
            .pop_front()
            .unwrap_or(Step::Ok { after: 0 });
        match step {
            Step::Ok { after } => {
                if self.wait(&attempt, after).await {
                    Ok(TestConn(id))
                } else {
                    Err(cancelled())
                }
            }
            Step::OkThenClose {
                after,
                live,
                had_error,
            } => {
                if !self.wait(&attempt, after).await {
                    return Err(cancelled());
                }
                let feed = attempt.feed();
                tokio::spawn(async move {
                    sleep(ms(live)).await;
                    feed.close(had_error);
                });
                Ok(TestConn(id))
            }
            Step::ClosedBeforeReturn { close_at, after } => {
                let feed = attempt.feed();
                tokio::spawn(async move {
                    sleep(ms(close_at)).await;
                    feed.close(false);
                });
                if self.wait(&attempt, after).await {
                    Ok(TestConn(id))
                } else {
                    Err(cancelled())
                }
            }
            Step::Fail { after, kind } => {
                if self.wait(&attempt, after).await {
                    Err(Error::new(kind, format!("scripted failure of #{id}")))
                } else {
                    Err(cancelled())
                }
            }
            Step::Hang => {
                attempt.cancel_token().cancelled().await;
                self.record(Call::Cancelled { id });
                Err(cancelled())
            }
            Step::Panic => panic!("scripted connector panic"),
            Step::IgnoreCancel { ok_after } => {
                let me = self.clone();
                let token = attempt.cancel_token().clone();
                tokio::spawn(async move {
                    token.cancelled().await;
                    me.record(Call::Cancelled { id });
                });
                sleep(ms(ok_after)).await;
                Ok(TestConn(id))
            }
        }
    }

    async fn close(&self, conn: TestConn, force: bool) {
        self.record(Call::Close { id: conn.0, force });
    }

    async fn ping(&self, conn: &TestConn) -> Result<(), Error> {
        self.record(Call::Ping { id: conn.0 });
        if let Some(kind) = *self.inner.ping_error.lock().unwrap() {
            return Err(Error::new(kind, "scripted ping failure"));
        }
        let pong = *self.inner.pong_after.lock().unwrap();
        if let Some(after) = pong {
            let feed = self.feed(conn.0);
            if after == 0 {
                feed.heartbeat();
            } else {
                tokio::spawn(async move {
                    sleep(ms(after)).await;
                    feed.heartbeat();
                });
            }
        }
        Ok(())
    }
}

pub fn elapsed(t0: Instant) -> u64 {
    u64::try_from(t0.elapsed().as_millis()).unwrap()
}

/// Records every event (via a callback, so in emission order) with its time in ms.
#[derive(Debug)]
pub struct Recorder {
    log: Arc<Mutex<Vec<(u64, String)>>>,
    raw: Arc<Mutex<Vec<Event>>>,
    _sub: Subscription,
}

impl Recorder {
    pub fn new(sup: &Supervisor<TestConn>, t0: Instant) -> Self {
        let log = Arc::new(Mutex::new(Vec::new()));
        let raw = Arc::new(Mutex::new(Vec::new()));
        let (l, r) = (Arc::clone(&log), Arc::clone(&raw));
        let sub = sup.on_event(move |e| {
            l.lock().unwrap().push((elapsed(t0), e.to_string()));
            r.lock().unwrap().push(e.clone());
        });
        Self {
            log,
            raw,
            _sub: sub,
        }
    }

    /// `(ms, event as text)` so far.
    pub fn log(&self) -> Vec<(u64, String)> {
        self.log.lock().unwrap().clone()
    }

    /// The events so far.
    pub fn events(&self) -> Vec<Event> {
        self.raw.lock().unwrap().clone()
    }
}

/// `[(10, "connect #1"), ...]` as owned strings, for comparing with [`Recorder::log`].
pub fn expect(v: &[(u64, &str)]) -> Vec<(u64, String)> {
    v.iter().map(|(t, s)| (*t, (*s).to_owned())).collect()
}

/// Options like the connback traces of the spec: 100 ms initial delay, 1 s max, no
/// jitter, fibonacci; keepalive off and `stable_for` zero unless a test says otherwise.
pub fn opts() -> OptionsBuilder {
    Options::builder()
        .initial_delay(ms(100))
        .max_delay(ms(1000))
        .jitter(Jitter::None)
        .keepalive(Duration::ZERO)
        .stable_for(Duration::ZERO)
}

/// A started supervisor over a scripted connector, with a recorder attached first.
pub struct Harness {
    pub t0: Instant,
    pub sup: Supervisor<TestConn>,
    pub conn: Scripted,
    pub rec: Recorder,
}

impl Harness {
    pub fn start(steps: Vec<Step>, options: OptionsBuilder) -> Self {
        let t0 = Instant::now();
        let conn = Scripted::new(t0, steps);
        let sup = Supervisor::new(conn.clone(), options.build().unwrap());
        let rec = Recorder::new(&sup, t0);
        sup.start();
        Self { t0, sup, conn, rec }
    }

    /// Sleep until `t` ms after the start.
    pub async fn until(&self, t: u64) {
        tokio::time::sleep_until(self.t0 + ms(t)).await;
    }

    pub fn log(&self) -> Vec<(u64, String)> {
        self.rec.log()
    }

    pub fn id(&self, n: u64) -> connkit_reconnect::ConnId {
        match self.sup.current_with_id() {
            Some((id, _)) if id.get() == n => id,
            _ => {
                // Ids are not constructible outside the crate; fish one out of the events.
                self.rec
                    .events()
                    .iter()
                    .find_map(|e| match e {
                        Event::Connect { id } if id.get() == n => Some(*id),
                        _ => None,
                    })
                    .unwrap_or_else(|| panic!("no connection #{n} was made"))
            }
        }
    }
}
