//! `connkit bench …`: load generators for any JSTP or socket-ipc server (connkit's or the Node
//! references'). Each prints one JSON line on stdout:
//! `{"target":…,"connections":…,"pipeline":…,"payload":…,"seconds":…,"requests":…,
//!   "per_sec":…,"p50_us":…,"p99_us":…,"p999_us":…}`
//! and shows a progress bar on stderr when stderr is a terminal.

use crate::{Failure, print_json};
use clap::{Args, Subcommand};
use connkit::Endpoint;
use connkit::ipc::ClientOptions as IpcOptions;
use connkit::jstp::{Client, ClientOptions, Value};
use serde_json::json;
use std::collections::VecDeque;
use std::io::IsTerminal;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

#[derive(Debug, Args)]
pub(crate) struct Load {
    /// Concurrent connections.
    #[arg(long, default_value_t = 1)]
    connections: usize,
    /// Requests kept in flight per connection (1 = sequential).
    #[arg(long, default_value_t = 1)]
    pipeline: usize,
    /// Measured seconds.
    #[arg(long, default_value_t = 5.0)]
    duration: f64,
    /// Unmeasured seconds before the measurement.
    #[arg(long, default_value_t = 1.0)]
    warmup: f64,
    /// Payload bytes per request (a string of this length).
    #[arg(long, default_value_t = 16)]
    payload: usize,
}

#[derive(Debug, Subcommand)]
pub(crate) enum BenchCommand {
    /// Call a JSTP method in a loop: `calculator.add(i, 1)` by default, or
    /// `calculator.echo(<payload>)` with `--echo` (the `connkit jstp serve --demo` app).
    Jstp {
        /// tcp://, tls://, unix://, ws:// or wss:// endpoint.
        endpoint: String,
        /// Application name, optionally @range.
        #[arg(long, default_value = "calc")]
        app: String,
        /// Interface.
        #[arg(long, default_value = "calculator")]
        interface: String,
        /// Call `echo(<payload>)` instead of `add(i, 1)`.
        #[arg(long)]
        echo: bool,
        #[command(flatten)]
        load: Load,
    },
    /// Send `{seq, pad}` messages on topic `echo` to a socket-ipc echo server and count the
    /// echoes (`connkit ipc serve --echo`, or the Node library's server echoing).
    Ipc {
        /// The socket file.
        socket: PathBuf,
        /// Topic to send on (the server must echo on the same topic).
        #[arg(long, default_value = "echo")]
        topic: String,
        #[command(flatten)]
        load: Load,
    },
}

/// Latencies and counts shared by every worker.
struct Recorder {
    measuring: AtomicBool,
    stop: AtomicBool,
    count: AtomicU64,
    samples: std::sync::Mutex<Vec<u32>>,
}

impl Recorder {
    fn new() -> Arc<Self> {
        Arc::new(Self {
            measuring: AtomicBool::new(false),
            stop: AtomicBool::new(false),
            count: AtomicU64::new(0),
            samples: std::sync::Mutex::new(Vec::new()),
        })
    }

    fn stopped(&self) -> bool {
        self.stop.load(Ordering::Relaxed)
    }

    /// Record into a worker-local buffer; merged at the end.
    fn record(&self, local: &mut Vec<u32>, started: Instant) {
        if self.measuring.load(Ordering::Relaxed) {
            self.count.fetch_add(1, Ordering::Relaxed);
            local.push(u32::try_from(started.elapsed().as_micros()).unwrap_or(u32::MAX));
        }
    }

    fn merge(&self, local: Vec<u32>) {
        if let Ok(mut s) = self.samples.lock() {
            s.extend(local);
        }
    }
}

pub(crate) async fn run(cmd: BenchCommand) -> Result<(), Failure> {
    match cmd {
        BenchCommand::Jstp {
            endpoint,
            app,
            interface,
            echo,
            load,
        } => {
            let ep: Endpoint = endpoint
                .parse()
                .map_err(|e| Failure::usage(format!("{e}")))?;
            let rec = Recorder::new();
            let mut workers = Vec::new();
            for _ in 0..load.connections.max(1) {
                let client: Client = ClientOptions::new()
                    .connect(&ep, app.as_str())
                    .await
                    .map_err(|e| Failure::runtime(format!("cannot connect to {ep}: {e}")))?;
                for _ in 0..load.pipeline.max(1) {
                    let (client, rec, iface) =
                        (client.clone(), Arc::clone(&rec), interface.clone());
                    let pad = Value::from("x".repeat(load.payload));
                    workers.push(tokio::spawn(async move {
                        let mut local = Vec::new();
                        let mut i = 0u64;
                        while !rec.stopped() {
                            let t = Instant::now();
                            let res = if echo {
                                client
                                    .connection()
                                    .call(&iface, "echo", [pad.clone()])
                                    .await
                            } else {
                                #[allow(clippy::cast_precision_loss, reason = "a loop counter")]
                                let args = [Value::from(i as f64), Value::from(1)];
                                client.connection().call(&iface, "add", args).await
                            };
                            if let Err(e) = res {
                                rec.merge(local);
                                return Err(e.to_string());
                            }
                            rec.record(&mut local, t);
                            i += 1;
                        }
                        rec.merge(local);
                        Ok(())
                    }));
                }
            }
            report(&format!("jstp {ep} {app}"), &load, rec, workers).await
        }
        BenchCommand::Ipc {
            socket,
            topic,
            load,
        } => {
            let rec = Recorder::new();
            let mut workers = Vec::new();
            for _ in 0..load.connections.max(1) {
                let client = IpcOptions::new(&socket).connect().await.map_err(|e| {
                    Failure::runtime(format!("cannot connect to {}: {e}", socket.display()))
                })?;
                let (rec, topic) = (Arc::clone(&rec), topic.clone());
                let pad = "x".repeat(load.payload);
                let window = load.pipeline.max(1);
                workers.push(tokio::spawn(async move {
                    let mut echoes = client.subscribe(Some(&topic));
                    let mut local = Vec::new();
                    let mut sent: VecDeque<Instant> = VecDeque::with_capacity(window);
                    let mut seq = 0u64;
                    for _ in 0..window {
                        client
                            .send(&topic, json!({"seq": seq, "pad": pad}))
                            .await
                            .map_err(|e| e.to_string())?;
                        sent.push_back(Instant::now());
                        seq += 1;
                    }
                    // The server echoes in order on one connection: the oldest send is answered first.
                    while !rec.stopped() {
                        if echoes.recv().await.is_none() {
                            return Err("the connection closed".to_owned());
                        }
                        if let Some(t) = sent.pop_front() {
                            rec.record(&mut local, t);
                        }
                        client
                            .send(&topic, json!({"seq": seq, "pad": pad}))
                            .await
                            .map_err(|e| e.to_string())?;
                        sent.push_back(Instant::now());
                        seq += 1;
                    }
                    rec.merge(local);
                    client.close().await;
                    Ok(())
                }));
            }
            report(&format!("ipc {}", socket.display()), &load, rec, workers).await
        }
    }
}

async fn report(
    target: &str,
    load: &Load,
    rec: Arc<Recorder>,
    workers: Vec<tokio::task::JoinHandle<Result<(), String>>>,
) -> Result<(), Failure> {
    let secs = |s: f64| {
        Duration::try_from_secs_f64(s.max(0.0)).map_err(|_| Failure::usage("bad duration"))
    };
    let (warmup, duration) = (secs(load.warmup)?, secs(load.duration)?);
    let bar = std::io::stderr().is_terminal().then(|| {
        let pb = indicatif::ProgressBar::new(duration.as_millis().try_into().unwrap_or(u64::MAX));
        pb.set_style(
            indicatif::ProgressStyle::with_template(
                "{spinner} {bar:30} {elapsed}/{duration} {msg}",
            )
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
        );
        pb
    });
    tokio::time::sleep(warmup).await;
    rec.measuring.store(true, Ordering::Relaxed);
    let start = Instant::now();
    while start.elapsed() < duration {
        tokio::time::sleep(Duration::from_millis(100).min(duration)).await;
        if let Some(pb) = &bar {
            let n = rec.count.load(Ordering::Relaxed);
            #[allow(clippy::cast_precision_loss, reason = "display only")]
            pb.set_message(format!(
                "{:.0} req/s",
                n as f64 / start.elapsed().as_secs_f64()
            ));
            pb.set_position(start.elapsed().as_millis().try_into().unwrap_or(u64::MAX));
        }
        if workers.iter().all(tokio::task::JoinHandle::is_finished) {
            break;
        }
    }
    rec.measuring.store(false, Ordering::Relaxed);
    let seconds = start.elapsed().as_secs_f64();
    rec.stop.store(true, Ordering::Relaxed);
    if let Some(pb) = bar {
        pb.finish_and_clear();
    }
    for w in workers {
        match tokio::time::timeout(Duration::from_secs(10), w).await {
            Ok(Ok(Ok(()))) | Err(_) => {}
            Ok(Ok(Err(e))) => return Err(Failure::runtime(format!("a worker failed: {e}"))),
            Ok(Err(e)) => return Err(Failure::runtime(format!("a worker panicked: {e}"))),
        }
    }
    let mut samples = rec
        .samples
        .lock()
        .map(|mut s| std::mem::take(&mut *s))
        .unwrap_or_default();
    samples.sort_unstable();
    let q = |p: f64| -> Option<u32> {
        #[allow(
            clippy::cast_possible_truncation,
            clippy::cast_sign_loss,
            clippy::cast_precision_loss,
            reason = "an index into the samples"
        )]
        let i = ((samples.len() as f64) * p) as usize;
        samples.get(i.min(samples.len().saturating_sub(1))).copied()
    };
    let requests = rec.count.load(Ordering::Relaxed);
    #[allow(clippy::cast_precision_loss, reason = "a rate")]
    let per_sec = requests as f64 / seconds;
    print_json(&json!({
        "target": target,
        "connections": load.connections,
        "pipeline": load.pipeline,
        "payload": load.payload,
        "seconds": seconds,
        "requests": requests,
        "per_sec": per_sec,
        "p50_us": q(0.5),
        "p99_us": q(0.99),
        "p999_us": q(0.999),
    }));
    Ok(())
}
