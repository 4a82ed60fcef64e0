//! connkit-reconnect: the backoff schedule and the supervisor's recovery path.

use connkit::reconnect::{
    Attempt, BackoffPolicy, ConnId, Connector, Error, Feed, Options, Supervisor,
};
use criterion::{Criterion, Throughput};
use std::hint::black_box;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// Computing delays: the default (fibonacci, full jitter) schedule, 1000 attempts (the
/// schedule is unlimited here so all 1000 are computed).
pub(crate) fn backoff(c: &mut Criterion) {
    let mut g = c.benchmark_group("reconnect/backoff");
    let options = Options::builder()
        .seed(7)
        .unlimited_attempts()
        .build()
        .unwrap_or_else(|e| panic!("{e}"));
    let policy = Arc::clone(options.backoff());
    g.throughput(Throughput::Elements(1000));
    g.bench_function("1000 delays, default schedule", |b| {
        b.iter(|| {
            let total: Duration = policy.new_schedule().take(1000).sum();
            black_box(total)
        });
    });
    g.finish();
}

/// A connector whose "connections" are numbers; it keeps the feed of the latest one so the
/// benchmark can report that connection closed.
#[derive(Clone, Default)]
struct Immediate {
    feed: Arc<Mutex<Option<Feed>>>,
}

impl Connector for Immediate {
    type Conn = u32;

    async fn connect(&self, attempt: Attempt) -> Result<u32, Error> {
        *self.feed.lock().unwrap_or_else(|e| e.into_inner()) = Some(attempt.feed());
        Ok(attempt.number())
    }

    async fn close(&self, _conn: u32, _force: bool) {}
}

/// Reconnect at once, forever: what is left is the supervisor's own work.
#[derive(Debug)]
struct NoWait;

impl BackoffPolicy for NoWait {
    fn new_schedule(&self) -> Box<dyn Iterator<Item = Duration> + Send> {
        Box::new(std::iter::repeat(Duration::ZERO))
    }
}

/// The supervisor's own overhead: a connection reports its close, the supervisor schedules
/// a reconnect with zero delay, connects again and publishes the new connection.
pub(crate) fn recovery(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap_or_else(|e| panic!("{e}"));
    let mut g = c.benchmark_group("reconnect/supervisor");
    g.throughput(Throughput::Elements(1));
    let connector = Immediate::default();
    let feed = Arc::clone(&connector.feed);
    let supervisor = rt.block_on(async {
        let options = Options::builder()
            .backoff_policy(Arc::new(NoWait))
            .stable_for(Duration::ZERO)
            .build()
            .unwrap_or_else(|e| panic!("{e}"));
        let supervisor = Supervisor::new(connector, options);
        supervisor.start();
        supervisor
            .connected()
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        supervisor
    });
    g.bench_function("close reported -> connected again", |b| {
        b.to_async(&rt).iter(|| async {
            let (before, _) = supervisor
                .current_with_id()
                .unwrap_or_else(|| panic!("not connected"));
            let f = feed
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .take()
                .unwrap_or_else(|| panic!("no feed"));
            f.close(false);
            loop {
                let (id, n): (ConnId, u32) = supervisor
                    .connected()
                    .await
                    .unwrap_or_else(|e| panic!("{e}"));
                if id != before {
                    break black_box(n);
                }
                tokio::task::yield_now().await;
            }
        });
    });
    g.finish();
    rt.block_on(supervisor.end(true));
}
