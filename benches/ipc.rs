//! connkit-ipc: codec, Rust↔Rust round trips (sequential and pipelined), one 16 MiB frame.

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
        wire::encode("echo", Some(&msg), &mut frame).unwrap_or_else(|e| panic!("{e}"));
        g.throughput(Throughput::Elements(1));
        g.bench_with_input(BenchmarkId::new("encode", size), &msg, |b, msg| {
            let mut out = Vec::with_capacity(2048);
            b.iter(|| {
                out.clear();
                wire::encode("echo", Some(msg), &mut out).unwrap_or_else(|e| panic!("{e}"));
                black_box(out.len())
            });
        });
        g.bench_with_input(BenchmarkId::new("decode", size), &frame, |b, frame| {
            b.iter(|| black_box(wire::decode(frame).unwrap_or_else(|e| panic!("{e}"))));
        });
    }
    g.finish();
}

struct Pair {
    _dir: std::path::PathBuf,
    _server: Server,
    client: Client,
}

async fn pair(tag: &str) -> Pair {
    let dir = std::env::temp_dir().join(format!("ck-bench-{tag}-{}", std::process::id()));
    let _ = std::fs::create_dir_all(&dir);
    let path = dir.join("s.sock");
    let server = ServerOptions::new(&path)
        .max_frame_len(64 << 20)
        .listen()
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    server
        .on(None, |m| async move {
            m.reply(&m.topic, m.message.clone()).await
        })
        .detach();
    let client = ClientOptions::new(&path)
        .max_frame_len(64 << 20)
        .connect()
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    Pair {
        _dir: dir,
        _server: server,
        client,
    }
}

/// Echo round trips over a Unix socket: sequential (one in flight), pipelined (a batch of
/// sends, then all the echoes), and one 16 MiB frame.
pub(crate) fn round_trips(c: &mut Criterion) {
    let rt = if std::env::var_os("CK_BENCH_CT").is_some() {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
    } else {
        tokio::runtime::Runtime::new()
    }
    .unwrap_or_else(|e| panic!("{e}"));
    let p = rt.block_on(pair("rt"));
    let mut g = c.benchmark_group("ipc/round trip");
    g.sample_size(10);
    g.measurement_time(Duration::from_secs(5));
    for size in [16usize, 1024] {
        let msg = payload(size);
        g.throughput(Throughput::Elements(1));
        g.bench_with_input(BenchmarkId::new("sequential", size), &msg, |b, msg| {
            let mut sub = p.client.subscribe(Some("echo"));
            b.iter_custom(|iters| {
                rt.block_on(async {
                    let start = Instant::now();
                    for _ in 0..iters {
                        p.client
                            .send("echo", msg.clone())
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
            let mut sub = p.client.subscribe(Some("echo"));
            b.iter_custom(|iters| {
                rt.block_on(async {
                    let start = Instant::now();
                    for _ in 0..iters {
                        let client = p.client.clone();
                        let m = msg.clone();
                        let sender = tokio::spawn(async move {
                            for _ in 0..BATCH {
                                client
                                    .send("echo", m.clone())
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
    let big = Value::String("b".repeat(16 << 20));
    g.throughput(Throughput::Bytes(16 << 20));
    g.bench_function("one 16 MiB frame", |b| {
        let mut sub = p.client.subscribe(Some("big"));
        b.iter_custom(|iters| {
            rt.block_on(async {
                let start = Instant::now();
                for _ in 0..iters {
                    p.client
                        .send("big", big.clone())
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
