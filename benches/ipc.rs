//! connkit-ipc: codec, Rust↔Rust round trips (sequential and pipelined), one 16 MiB frame.

use bytes::Bytes;
use connkit::ipc::{Client, ClientOptions, Server, ServerOptions, wire};
use criterion::{BenchmarkId, Criterion, Throughput};
use serde_json::{Value, json};
use std::hint::black_box;
use std::time::{Duration, Instant};

fn payload(size: usize) -> Value {
    // `{seq, pad}` as in the Node baseline (socket-ipc.md §8): 16 B or 1 KiB of padding.
    json!({"seq": 0, "pad": "x".repeat(size)})
}

/// Encode and decode one frame.
pub(crate) fn codec(c: &mut Criterion) {
    let mut g = c.benchmark_group("ipc/codec");
    for size in [16usize, 1024] {
        let msg = payload(size);
        let mut frame = Vec::new();
        wire::encode_value("echo", Some(&msg), &mut frame).unwrap_or_else(|e| panic!("{e}"));
        let frame = Bytes::from(frame);
        g.throughput(Throughput::Elements(1));
        // Writing a value out (what `send(topic, &value)` does).
        g.bench_with_input(BenchmarkId::new("encode", size), &msg, |b, msg| {
            let mut out = Vec::with_capacity(2048);
            b.iter(|| {
                out.clear();
                wire::encode_value("echo", Some(msg), &mut out).unwrap_or_else(|e| panic!("{e}"));
                black_box(out.len())
            });
        });
        // Sending a received payload again (an echo or a forward): a copy.
        let received = wire::decode_bytes(frame.clone()).unwrap_or_else(|e| panic!("{e}"));
        g.bench_with_input(
            BenchmarkId::new("re-encode received", size),
            &received.message,
            |b, payload| {
                let mut out = Vec::with_capacity(2048);
                b.iter(|| {
                    out.clear();
                    wire::encode("echo", payload, &mut out).unwrap_or_else(|e| panic!("{e}"));
                    black_box(out.len())
                });
            },
        );
        // Receiving: topic plus a checked, unparsed payload (what the server does per frame).
        g.bench_with_input(BenchmarkId::new("decode", size), &frame, |b, frame| {
            b.iter(|| {
                black_box(wire::decode_bytes(frame.clone()).unwrap_or_else(|e| panic!("{e}")))
            });
        });
        // Receiving and then reading the payload as a `serde_json::Value`.
        g.bench_with_input(
            BenchmarkId::new("decode + value()", size),
            &frame,
            |b, frame| {
                b.iter(|| {
                    let env = wire::decode_bytes(frame.clone()).unwrap_or_else(|e| panic!("{e}"));
                    black_box(env.message.value().is_some())
                });
            },
        );
    }
    g.finish();
}

struct Pair {
    _server: Server,
    client: Client,
    /// Dropped last: the directory goes once the server has removed its socket file.
    _dir: tempfile::TempDir,
}

async fn pair(tag: &str) -> Pair {
    let dir = tempfile::Builder::new()
        .prefix(&format!("ck-bench-{tag}-"))
        .tempdir_in("/tmp")
        .unwrap_or_else(|e| panic!("{e}"));
    let path = dir.path().join("s.sock");
    let server = ServerOptions::new(&path)
        .max_frame_len(64 << 20)
        .listen()
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    server
        // Echo: the received payload goes back byte for byte.
        .on(None, |m| async move { m.reply(&m.topic, &m.message).await })
        .detach();
    let client = ClientOptions::new(&path)
        .max_frame_len(64 << 20)
        .connect()
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    Pair {
        _server: server,
        client,
        _dir: dir,
    }
}

/// Run one measured loop: on the thread that calls `block_on`, or, with `CK_BENCH_TASK` set,
/// in a task spawned on the runtime (where an application's code usually runs: on the
/// multi-threaded runtime it can then share a worker with the connection tasks).
fn measure<F>(rt: &tokio::runtime::Runtime, in_task: bool, f: F) -> Duration
where
    F: std::future::Future<Output = Duration> + Send + 'static,
{
    if in_task {
        rt.block_on(rt.spawn(f)).unwrap_or_else(|e| panic!("{e}"))
    } else {
        rt.block_on(f)
    }
}

/// Echo round trips over a Unix socket: sequential (one in flight), pipelined (a batch of
/// sends, then all the echoes), and one 16 MiB frame.
///
/// Placement: `CK_BENCH_CT` set, one single-threaded runtime; unset, the multi-threaded
/// runtime (2 workers here). `CK_BENCH_TASK` set: the client's loop runs in a spawned task
/// instead of on the `block_on` thread.
pub(crate) fn round_trips(c: &mut Criterion) {
    let rt = if std::env::var_os("CK_BENCH_CT").is_some() {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
    } else {
        tokio::runtime::Runtime::new()
    }
    .unwrap_or_else(|e| panic!("{e}"));
    let in_task = std::env::var_os("CK_BENCH_TASK").is_some();
    let p = rt.block_on(pair("rt"));
    let mut g = c.benchmark_group("ipc/round trip");
    g.sample_size(10);
    g.measurement_time(Duration::from_secs(5));
    for size in [16usize, 1024] {
        let msg = payload(size);
        g.throughput(Throughput::Elements(1));
        g.bench_with_input(BenchmarkId::new("sequential", size), &msg, |b, msg| {
            b.iter_custom(|iters| {
                let (client, msg) = (p.client.clone(), msg.clone());
                measure(&rt, in_task, async move {
                    let mut sub = client.subscribe(Some("echo"));
                    let start = Instant::now();
                    for _ in 0..iters {
                        // `&Value`: written out on each send, as JSON.stringify does in Node.
                        client
                            .send("echo", &msg)
                            .await
                            .unwrap_or_else(|e| panic!("{e}"));
                        black_box(sub.recv().await);
                    }
                    start.elapsed()
                })
            });
        });
        const BATCH: u64 = 10_000;
        g.throughput(Throughput::Elements(BATCH));
        g.bench_with_input(BenchmarkId::new("pipelined", size), &msg, |b, msg| {
            b.iter_custom(|iters| {
                let (client, msg) = (p.client.clone(), msg.clone());
                measure(&rt, in_task, async move {
                    let mut sub = client.subscribe(Some("echo"));
                    let start = Instant::now();
                    for _ in 0..iters {
                        let (client, m) = (client.clone(), msg.clone());
                        let sender = tokio::spawn(async move {
                            for _ in 0..BATCH {
                                client
                                    .send("echo", &m)
                                    .await
                                    .unwrap_or_else(|e| panic!("{e}"));
                            }
                        });
                        for _ in 0..BATCH {
                            black_box(sub.recv().await);
                        }
                        sender.await.unwrap_or_else(|e| panic!("{e}"));
                    }
                    start.elapsed()
                })
            });
        });
    }
    let big = std::sync::Arc::new(Value::String("b".repeat(16 << 20)));
    g.throughput(Throughput::Bytes(16 << 20));
    g.bench_function("one 16 MiB frame", |b| {
        b.iter_custom(|iters| {
            let (client, big) = (p.client.clone(), std::sync::Arc::clone(&big));
            measure(&rt, in_task, async move {
                let mut sub = client.subscribe(Some("big"));
                let start = Instant::now();
                for _ in 0..iters {
                    client
                        .send("big", &*big)
                        .await
                        .unwrap_or_else(|e| panic!("{e}"));
                    black_box(sub.recv().await);
                }
                start.elapsed()
            })
        });
    });
    g.finish();
}
