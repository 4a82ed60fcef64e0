//! connkit-core: the delimiter codec and raw transport round trips.

use bytes::{Bytes, BytesMut};
use connkit::core::framing::DelimiterCodec;
use connkit::core::transport::{TransportOptions, connect, listen};
use criterion::{BenchmarkId, Criterion, Throughput};
use std::hint::black_box;
use tokio_util::codec::Decoder;

/// Decoding: many small frames per read, and one large frame in 64 KiB reads.
pub(crate) fn framing(c: &mut Criterion) {
    let mut g = c.benchmark_group("core/framing");
    let small: Vec<u8> = (0..1000)
        .flat_map(|i| format!("{{\"topic\":\"t\",\"message\":{i}}}\0\0").into_bytes())
        .collect();
    g.throughput(Throughput::Elements(1000));
    g.bench_function("decode 1000 small frames", |b| {
        b.iter(|| {
            let mut codec = DelimiterCodec::new(b"\0\0", 1 << 20).unwrap_or_else(|e| panic!("{e}"));
            let mut buf = BytesMut::from(&small[..]);
            let mut n = 0;
            while let Ok(Some(f)) = codec.decode(&mut buf) {
                n += f.len();
            }
            black_box(n)
        });
    });
    let big = vec![b'x'; 16 << 20];
    g.throughput(Throughput::Bytes(big.len() as u64));
    g.sample_size(10);
    g.bench_function("decode one 16 MiB frame in 64 KiB reads", |b| {
        b.iter(|| {
            let mut codec = DelimiterCodec::new(b"\0", 32 << 20).unwrap_or_else(|e| panic!("{e}"));
            let mut buf = BytesMut::new();
            for chunk in big.chunks(64 * 1024) {
                buf.extend_from_slice(chunk);
                assert!(matches!(codec.decode(&mut buf), Ok(None)));
            }
            buf.extend_from_slice(b"\0");
            black_box(codec.decode(&mut buf).ok().flatten().map(|f| f.len()))
        });
    });
    g.finish();
}

/// Echo round trips over each transport, sequential (one in flight).
pub(crate) fn transport(c: &mut Criterion) {
    let rt = tokio::runtime::Runtime::new().unwrap_or_else(|e| panic!("{e}"));
    let mut g = c.benchmark_group("core/transport echo");
    g.sample_size(10);
    g.throughput(Throughput::Elements(1));
    let dir = tempfile_dir();
    for url in [
        "tcp://127.0.0.1:0".to_owned(),
        format!("unix://{}/bench.sock", dir.display()),
        "ws://127.0.0.1:0/".to_owned(),
    ] {
        let opts = TransportOptions::new();
        let (tx, mut rx) = rt.block_on(async {
            let listener = listen(&url.parse().unwrap_or_else(|e| panic!("{e}")), &opts)
                .await
                .unwrap_or_else(|e| panic!("{e}"));
            let ep = listener.local_endpoint().clone();
            tokio::spawn(async move {
                while let Ok(incoming) = listener.accept().await {
                    tokio::spawn(async move {
                        let Ok(conn) = incoming.establish().await else {
                            return;
                        };
                        let (tx, mut rx) = conn.split();
                        while let Some(Ok(m)) = rx.recv().await {
                            if tx.send(m).await.is_err() {
                                break;
                            }
                        }
                    });
                }
            });
            connect(&ep, &opts)
                .await
                .unwrap_or_else(|e| panic!("{e}"))
                .split()
        });
        let scheme = url.split(':').next().unwrap_or("?").to_owned();
        let msg = Bytes::from(vec![b'a'; 100]);
        const BATCH: u64 = 10_000;
        g.throughput(Throughput::Elements(BATCH));
        g.bench_with_input(
            BenchmarkId::new("pipelined 100 B", &scheme),
            &msg,
            |b, msg| {
                b.iter_custom(|iters| {
                    rt.block_on(async {
                        let start = std::time::Instant::now();
                        for _ in 0..iters {
                            let tx = tx.clone();
                            let m = msg.clone();
                            let sender = tokio::spawn(async move {
                                for _ in 0..BATCH {
                                    tx.send(m.clone()).await.unwrap_or_else(|e| panic!("{e}"));
                                }
                            });
                            for _ in 0..BATCH {
                                black_box(rx.recv().await);
                            }
                            sender.await.unwrap_or_else(|e| panic!("{e}"));
                        }
                        start.elapsed()
                    })
                });
            },
        );
        g.throughput(Throughput::Elements(1));
        g.bench_with_input(BenchmarkId::new("100 B", scheme), &msg, |b, msg| {
            b.iter_custom(|iters| {
                rt.block_on(async {
                    let start = std::time::Instant::now();
                    for _ in 0..iters {
                        tx.send(msg.clone()).await.unwrap_or_else(|e| panic!("{e}"));
                        black_box(rx.recv().await);
                    }
                    start.elapsed()
                })
            });
        });
    }
    g.finish();
}

fn tempfile_dir() -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("connkit-bench-{}", std::process::id()));
    let _ = std::fs::create_dir_all(&dir);
    dir
}
