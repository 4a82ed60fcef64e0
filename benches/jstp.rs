//! connkit-jstp: parsing and serializing JSTP (mdsf) values, on the hot path of every message.

use connkit_jstp::value;
use criterion::{Criterion, Throughput};
use std::hint::black_box;

/// The call from the spec (§4.3).
const CALL: &[u8] = b"{call:[17,'calculator'],add:[2,3]}";

/// A reply of about 1 KiB: an array of records with strings, integers, decimals, booleans,
/// `null`, a quoted key and an escape, as application payloads look.
fn reply_1k() -> Vec<u8> {
    let mut text = String::from("{callback:[42],ok:[[");
    let mut i = 0;
    while text.len() < 980 {
        if i > 0 {
            text.push(',');
        }
        text.push_str(&format!(
            "{{id:{i},name:'item {i}',price:{}.25,tags:['new','sale'],active:{},'on-hand':{},note:null}}",
            10 + i * 7,
            i % 2 == 0,
            i * 3 % 11,
        ));
        i += 1;
    }
    text.push_str("],'it\\'s done']}");
    text.into_bytes()
}

pub(crate) fn value(c: &mut Criterion) {
    let mut g = c.benchmark_group("jstp/value");
    let big = reply_1k();
    let parsed_call = value::parse(CALL).unwrap_or_else(|e| panic!("{e}"));
    let parsed_big = value::parse(&big).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        value::serialize(&parsed_big).unwrap_or_else(|e| panic!("{e}")),
        big,
        "the 1 KiB message is canonical"
    );

    g.throughput(Throughput::Bytes(CALL.len() as u64));
    g.bench_function("parse call (34 B)", |b| {
        b.iter(|| black_box(value::parse(black_box(CALL))))
    });
    g.bench_function("serialize call (34 B), reused buffer", |b| {
        let mut out = Vec::with_capacity(64);
        b.iter(|| {
            out.clear();
            value::serialize_into(black_box(&parsed_call), &mut out)
                .unwrap_or_else(|e| panic!("{e}"));
            black_box(out.len())
        })
    });

    g.throughput(Throughput::Bytes(big.len() as u64));
    g.bench_function(format!("parse reply ({} B)", big.len()), |b| {
        b.iter(|| black_box(value::parse(black_box(&big))))
    });
    g.bench_function(
        format!("serialize reply ({} B), reused buffer", big.len()),
        |b| {
            let mut out = Vec::with_capacity(2048);
            b.iter(|| {
                out.clear();
                value::serialize_into(black_box(&parsed_big), &mut out)
                    .unwrap_or_else(|e| panic!("{e}"));
                black_box(out.len())
            })
        },
    );

    // For scale: serde_json on the same data as JSON.
    let json = serde_json::to_vec(&serde_json::Value::from(parsed_big.clone()))
        .unwrap_or_else(|e| panic!("{e}"));
    g.throughput(Throughput::Bytes(json.len() as u64));
    g.bench_function(
        format!("serde_json parse of the same reply ({} B)", json.len()),
        |b| {
            b.iter(|| black_box(serde_json::from_slice::<serde_json::Value>(black_box(&json)).ok()))
        },
    );
    g.finish();
}

// ---------------------------------------------------------------------------------------------
// Call round trips: Rust client ↔ Rust server, `calculator.add`, as the Node baseline of
// spec §12 (sequential: each call waits for its callback; pipelined: a batch of 5000 calls
// issued back to back, then all the replies awaited).
// ---------------------------------------------------------------------------------------------

use connkit::jstp::{Application, Client, Interface, Server, ServerOptions};
use criterion::BenchmarkId;
use futures_util::StreamExt;
use futures_util::stream::FuturesUnordered;
use std::time::{Duration, Instant};

/// The pipelined batch (spec §12: 5000 calls, then all the replies).
pub(crate) const PIPELINE: u64 = 5000;

fn calc() -> Application {
    Application::new("calc", connkit::jstp::semver::Version::new(1, 0, 0)).interface(
        "calculator",
        Interface::new().method("add", |_ctx, (a, b): (f64, f64)| async move { Ok(a + b) }),
    )
}

fn endpoint(scheme: &str) -> (connkit::Endpoint, Option<std::path::PathBuf>) {
    match scheme {
        "unix" => {
            let dir = std::env::temp_dir().join(format!("ck-jstp-bench-{}", std::process::id()));
            let _ = std::fs::create_dir_all(&dir);
            (connkit::Endpoint::unix(dir.join("j.sock")), Some(dir))
        }
        "ws" => (
            "ws://127.0.0.1:0/"
                .parse()
                .unwrap_or_else(|e| panic!("{e}")),
            None,
        ),
        _ => (
            "tcp://127.0.0.1:0"
                .parse()
                .unwrap_or_else(|e| panic!("{e}")),
            None,
        ),
    }
}

async fn serve(ep: connkit::Endpoint) -> Server {
    ServerOptions::new()
        .application(calc())
        .listen([ep])
        .await
        .unwrap_or_else(|e| panic!("{e}"))
}

/// Where the server runs: on its own thread with its own single-threaded runtime (the
/// default, like the two Node processes of spec §12), or on the client's runtime.
pub(crate) enum ServerPlace {
    OwnThread(std::sync::mpsc::Sender<()>),
    Shared(Server),
}

/// A server and a connected client on `scheme` (tcp, unix or ws). With `own_thread`, the
/// server runs on a thread of its own.
pub(crate) async fn call_pair(
    scheme: &str,
    own_thread: bool,
) -> (ServerPlace, Client, Option<std::path::PathBuf>) {
    let (ep, dir) = endpoint(scheme);
    let (place, target) = if own_thread {
        let (ready_tx, ready_rx) = std::sync::mpsc::channel();
        let (stop_tx, stop_rx) = std::sync::mpsc::channel::<()>();
        std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap_or_else(|e| panic!("{e}"));
            rt.block_on(async move {
                let server = serve(ep).await;
                let _ = ready_tx.send(server.endpoints()[0].clone());
                let _ = tokio::task::spawn_blocking(move || stop_rx.recv()).await;
                server.close().await;
            });
        });
        let target = ready_rx.recv().unwrap_or_else(|e| panic!("{e}"));
        (ServerPlace::OwnThread(stop_tx), target)
    } else {
        let server = serve(ep).await;
        let target = server.endpoints()[0].clone();
        (ServerPlace::Shared(server), target)
    };
    let client = Client::connect(&target, "calc@^1.0.0")
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    (place, client, dir)
}

/// One call, as a user writes it: typed arguments and result.
pub(crate) async fn add(client: &Client, i: u64) -> f64 {
    client
        .call_typed::<_, f64>("calculator", "add", &(i, 1))
        .await
        .unwrap_or_else(|e| panic!("{e}"))
}

/// `n` calls issued back to back, then every reply awaited.
pub(crate) async fn pipelined(client: &Client, n: u64) {
    let mut calls: FuturesUnordered<_> = (0..n).map(|i| add(client, i)).collect();
    while let Some(r) = calls.next().await {
        black_box(r);
    }
}

/// `CK_BENCH_RT=one`: client and server on one single-threaded runtime; `mt`: one
/// multi-threaded runtime; default (`two`): each on its own single-threaded runtime and
/// thread, as the Node client and server processes of the baseline.
pub(crate) fn call_round_trips(c: &mut Criterion) {
    let mode = std::env::var("CK_BENCH_RT").unwrap_or_else(|_| "two".into());
    let rt = if mode == "mt" {
        tokio::runtime::Runtime::new()
    } else {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
    }
    .unwrap_or_else(|e| panic!("{e}"));
    let mut g = c.benchmark_group(format!("jstp/call round trip ({mode})"));
    g.sample_size(10);
    g.measurement_time(Duration::from_secs(5));
    for scheme in ["tcp", "unix", "ws"] {
        let (place, client, dir) = rt.block_on(call_pair(scheme, mode == "two"));
        g.throughput(Throughput::Elements(1));
        g.bench_function(BenchmarkId::new("sequential", scheme), |b| {
            b.iter_custom(|iters| {
                rt.block_on(async {
                    let start = Instant::now();
                    for i in 0..iters {
                        black_box(add(&client, i).await);
                    }
                    start.elapsed()
                })
            });
        });
        g.throughput(Throughput::Elements(PIPELINE));
        g.bench_function(BenchmarkId::new("pipelined 5000", scheme), |b| {
            b.iter_custom(|iters| {
                rt.block_on(async {
                    let start = Instant::now();
                    for _ in 0..iters {
                        pipelined(&client, PIPELINE).await;
                    }
                    start.elapsed()
                })
            });
        });
        rt.block_on(async {
            client.close().await;
            match place {
                ServerPlace::Shared(server) => server.close().await,
                ServerPlace::OwnThread(stop) => {
                    let _ = stop.send(());
                }
            }
        });
        if let Some(d) = dir {
            let _ = std::fs::remove_dir_all(d);
        }
    }
    g.finish();
}
