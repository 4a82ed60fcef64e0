//! Soak harness (not a test): many idle JSTP clients with heartbeats on one Rust server over
//! loopback, reporting the resident memory per idle connection and the CPU the heartbeats
//! cost.
//!
//! ```text
//! cargo run --release --example jstp_soak                       # 10,000 clients, 5 s beats
//! cargo run --release --example jstp_soak -- --connections 2000 --heartbeat-ms 1000 --duration-s 10
//! ```
//!
//! Options (or the environment variables in brackets): `--connections N`
//! (`CK_SOAK_CONNECTIONS`, default 10000), `--heartbeat-ms MS` (`CK_SOAK_HEARTBEAT_MS`,
//! default 5000; both sides ping at this interval), `--duration-s S` (`CK_SOAK_DURATION_S`,
//! how long the CPU is sampled once everyone is connected; default three heartbeat periods),
//! `--server-threads T` (`CK_SOAK_SERVER_THREADS`, default 1: a single-threaded server, as
//! Node's event loop).
//!
//! The server runs in a child process (this program started again with `--serve`), so that
//! its memory and CPU are its own: its `VmRSS` is read from `/proc/<pid>/status` before the
//! clients connect and once they are connected and idle, and its CPU time from
//! `/proc/<pid>/stat` over the sampling period. The clients all run in this process on one
//! single-threaded runtime; their memory is reported separately. Both processes need one
//! file descriptor per connection: the soft `RLIMIT_NOFILE` is raised to the hard limit
//! here (otherwise run `ulimit -n` with a larger value first). 10,000 connections to one
//! port from 127.0.0.1 fit in Linux's default ephemeral port range (28,232 ports).

use connkit::Endpoint;
use connkit::jstp::{Application, ClientOptions, Interface, ServerOptions};
use futures_util::StreamExt;
use std::io::{BufRead, BufReader, Read, Write};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

#[derive(Debug, Clone)]
struct Options {
    connections: usize,
    heartbeat: Duration,
    duration: Option<Duration>,
    server_threads: usize,
}

fn parse_options() -> Result<(Options, bool), String> {
    let env = |name: &str| std::env::var(name).ok();
    let mut raw: Vec<(String, Option<String>)> = vec![
        ("connections".into(), env("CK_SOAK_CONNECTIONS")),
        ("heartbeat-ms".into(), env("CK_SOAK_HEARTBEAT_MS")),
        ("duration-s".into(), env("CK_SOAK_DURATION_S")),
        ("server-threads".into(), env("CK_SOAK_SERVER_THREADS")),
    ];
    let mut serve = false;
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        if arg == "--serve" {
            serve = true;
            continue;
        }
        let name = arg
            .strip_prefix("--")
            .ok_or_else(|| format!("unexpected argument `{arg}`"))?;
        let slot = raw
            .iter_mut()
            .find(|(n, _)| n == name)
            .ok_or_else(|| format!("unknown option `{arg}`"))?;
        slot.1 = Some(args.next().ok_or_else(|| format!("{arg} needs a value"))?);
    }
    let num = |i: usize, default: u64| -> Result<u64, String> {
        match &raw[i].1 {
            Some(v) => v
                .parse()
                .map_err(|_| format!("--{} wants a whole number, not `{v}`", raw[i].0)),
            None => Ok(default),
        }
    };
    let opts = Options {
        connections: usize::try_from(num(0, 10_000)?).map_err(|e| e.to_string())?,
        heartbeat: Duration::from_millis(num(1, 5_000)?.max(1)),
        duration: raw[2]
            .1
            .as_ref()
            .map(|_| num(2, 0))
            .transpose()?
            .map(Duration::from_secs),
        server_threads: usize::try_from(num(3, 1)?.max(1)).map_err(|e| e.to_string())?,
    };
    Ok((opts, serve))
}

fn app() -> Application {
    Application::new("soak", connkit::jstp::semver::Version::new(1, 0, 0)).interface(
        "soak",
        Interface::new().method("echo", |_ctx, (x,): (f64,)| async move { Ok(x) }),
    )
}

/// Raise the soft limit of open files to the hard limit; returns the limit now in force.
fn raise_nofile() -> u64 {
    use rustix::process::{Resource, getrlimit, setrlimit};
    let mut lim = getrlimit(Resource::Nofile);
    if lim
        .maximum
        .is_none_or(|max| lim.current.is_some_and(|cur| cur < max))
    {
        let old = lim.current;
        lim.current = lim.maximum;
        if setrlimit(Resource::Nofile, lim).is_err() {
            lim.current = old;
        }
    }
    lim.current.unwrap_or(u64::MAX)
}

/// `VmRSS` of a process in KiB.
fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

/// User + system CPU time of a process, in seconds (`/proc/<pid>/stat`, 100 ticks a second).
fn cpu_secs(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let Some(rest) = stat.rfind(')').map(|i| &stat[i + 2..]) else {
        return 0.0;
    };
    let fields: Vec<&str> = rest.split(' ').collect();
    let ticks = |i: usize| {
        fields
            .get(i)
            .and_then(|v| v.parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    (ticks(11) + ticks(12)) / 100.0
}

fn runtime(threads: usize) -> std::io::Result<tokio::runtime::Runtime> {
    if threads <= 1 {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
    } else {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(threads)
            .enable_all()
            .build()
    }
}

/// The child: serve until stdin closes.
fn serve(opts: &Options) -> Result<(), Box<dyn std::error::Error>> {
    raise_nofile();
    let rt = runtime(opts.server_threads)?;
    rt.block_on(async {
        let server = ServerOptions::new()
            .application(app())
            .heartbeat_interval(opts.heartbeat)
            .listen(["tcp://127.0.0.1:0".parse::<Endpoint>()?])
            .await?;
        println!("{}", server.endpoints()[0]);
        std::io::stdout().flush()?;
        // The parent closes our stdin when it is done (or dies).
        tokio::task::spawn_blocking(|| {
            let mut sink = Vec::new();
            let _ = std::io::stdin().read_to_end(&mut sink);
        })
        .await?;
        server.close().await;
        Ok(())
    })
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let (opts, serve_mode) = parse_options()?;
    if serve_mode {
        return serve(&opts);
    }
    let limit = raise_nofile();
    let need = opts.connections as u64 + 64;
    if limit < need {
        return Err(format!(
            "{} connections need {need} open files, the limit is {limit}: run `ulimit -n {need}` first",
            opts.connections
        )
        .into());
    }
    let hb_ms = opts.heartbeat.as_millis().to_string();
    let mut child = Command::new(std::env::current_exe()?)
        .args([
            "--serve",
            "--heartbeat-ms",
            &hb_ms,
            "--server-threads",
            &opts.server_threads.to_string(),
        ])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()?;
    let pid = child.id();
    let mut line = String::new();
    BufReader::new(child.stdout.take().ok_or("no stdout")?).read_line(&mut line)?;
    let endpoint: Endpoint = line.trim().parse()?;
    let result = drive(&opts, pid, &endpoint);
    drop(child.stdin.take()); // the server exits
    let _ = child.wait();
    result
}

fn drive(opts: &Options, pid: u32, endpoint: &Endpoint) -> Result<(), Box<dyn std::error::Error>> {
    let me = std::process::id();
    let rt = runtime(1)?;
    println!(
        "jstp soak: {} connections to {endpoint}, heartbeat every {:?} on both sides, server on {} thread(s)",
        opts.connections, opts.heartbeat, opts.server_threads
    );
    std::thread::sleep(Duration::from_millis(300));
    let server_before = rss_kib(pid);
    let client_before = rss_kib(me);
    let client_opts = ClientOptions::new().heartbeat_interval(opts.heartbeat);
    let started = Instant::now();
    let clients = rt.block_on(async {
        let mut clients = Vec::with_capacity(opts.connections);
        let mut failures = 0usize;
        let mut connecting = futures_util::stream::iter(0..opts.connections)
            .map(|_| client_opts.connect(endpoint, "soak"))
            .buffer_unordered(128);
        while let Some(r) = connecting.next().await {
            match r {
                Ok(c) => clients.push(c),
                Err(e) => {
                    failures += 1;
                    if failures <= 3 {
                        eprintln!("connect failed: {e}");
                    }
                }
            }
        }
        if failures > 0 {
            eprintln!("{failures} connects failed");
        }
        // Every connection answers.
        for c in clients.iter().step_by((clients.len() / 100).max(1)) {
            c.call_typed::<_, f64>("soak", "echo", &(1.0,)).await?;
        }
        Ok::<_, connkit::jstp::Error>(clients)
    })?;
    let n = clients.len();
    println!(
        "connected {n} clients in {:.1} s",
        started.elapsed().as_secs_f64()
    );
    // Let the connections go idle: past two heartbeats and the writers' idle release (1 s).
    let settle = (opts.heartbeat * 2).max(Duration::from_secs(3));
    rt.block_on(async { tokio::time::sleep(settle).await });
    let server_after = rss_kib(pid);
    let client_after = rss_kib(me);
    let sample = opts.duration.unwrap_or(opts.heartbeat * 3);
    let (s0, c0, t0) = (cpu_secs(pid), cpu_secs(me), Instant::now());
    rt.block_on(async { tokio::time::sleep(sample).await });
    let wall = t0.elapsed().as_secs_f64();
    let (s1, c1) = (cpu_secs(pid), cpu_secs(me));
    let server_idle_end = rss_kib(pid);
    let alive = clients
        .iter()
        .filter(|c| !c.connection().is_closed())
        .count();
    let per = |before: u64, after: u64| (after.saturating_sub(before)) as f64 / n.max(1) as f64;
    let beats = wall / opts.heartbeat.as_secs_f64();
    println!("still open after {wall:.1} s: {alive} of {n}");
    println!(
        "server RSS: {server_before} KiB before, {server_after} KiB with {n} idle connections \
         ({server_idle_end} KiB at the end): {:.1} KiB per idle connection",
        per(server_before, server_after)
    );
    println!(
        "client process RSS: {client_before} KiB before, {client_after} KiB: {:.1} KiB per idle connection",
        per(client_before, client_after)
    );
    println!(
        "server CPU over {wall:.1} s ({beats:.1} heartbeat periods): {:.2} s = {:.2}% of one core \
         ({:.1} µs per connection per heartbeat period)",
        s1 - s0,
        (s1 - s0) / wall * 100.0,
        (s1 - s0) / beats.max(1e-9) / n.max(1) as f64 * 1e6
    );
    println!(
        "client process CPU: {:.2} s = {:.2}% of one core",
        c1 - c0,
        (c1 - c0) / wall * 100.0
    );
    rt.block_on(async {
        for c in &clients {
            c.connection().close().await;
        }
    });
    drop(clients);
    Ok(())
}
