//! `just compare`: one run that measures Node↔Node, Rust↔Rust and both cross pairs for JSTP
//! (tcp, unix, ws) and socket-ipc, plus this machine's raw limit (a plain blocking socket echo),
//! and writes the table and an SVG plot into `docs/`.
//!
//! ```sh
//! cargo build --release -p connkit-cli
//! cargo run --release --example compare -- [--duration SECS] [--warmup SECS] [--no-write]
//! ```
//!
//! Servers run as their own processes (`connkit jstp serve --demo`, `connkit ipc serve --echo
//! --quiet`, and the Node peers in `tests/interop/node/`); clients are `connkit bench` and the
//! Node load generators with the same semantics (a window of P requests in flight per
//! connection, a warm-up, then a timed run). Sequential is P = 1, pipelined P = 64.

use connkit_testkit::{NodePeers, NodeProcess, workspace_root};
use serde_json::Value;
use std::fmt::Write as _;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const PIPELINE: usize = 64;

#[derive(Debug, Clone)]
struct Cell {
    protocol: &'static str,
    transport: &'static str,
    mode: &'static str,
    pair: &'static str,
    per_sec: f64,
    p50_us: Option<f64>,
    p99_us: Option<f64>,
}

struct Opts {
    duration: f64,
    warmup: f64,
    write: bool,
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let mut opts = Opts {
        duration: 3.0,
        warmup: 1.0,
        write: true,
    };
    while let Some(a) = args.next() {
        match a.as_str() {
            "--duration" => opts.duration = args.next().ok_or("--duration SECS")?.parse()?,
            "--warmup" => opts.warmup = args.next().ok_or("--warmup SECS")?.parse()?,
            "--no-write" => opts.write = false,
            other => return Err(format!("unknown argument {other}").into()),
        }
    }
    let root = workspace_root()?;
    let connkit = std::env::var_os("CONNKIT_BIN")
        .map_or_else(|| root.join("target/release/connkit"), PathBuf::from);
    if !connkit.exists() {
        return Err(format!(
            "{} not found: run `cargo build --release -p connkit-cli` first (just compare does)",
            connkit.display()
        )
        .into());
    }
    let node = NodePeers::ensure().map_err(|e| format!("Node peers unavailable: {e}"))?;
    let rt = tokio::runtime::Runtime::new()?;
    let dir = tempfile::Builder::new()
        .prefix("ckcmp")
        .tempdir_in("/tmp")?;
    let mut cells = Vec::new();

    eprintln!("== raw socket echo (this machine's limit)");
    cells.extend(raw_limit(&opts, dir.path())?);

    eprintln!("== JSTP");
    let node_unix = dir.path().join("node-jstp.sock");
    let (mut node_srv, node_eps) = rt.block_on(async {
        let mut p = node
            .spawn(
                "jstp_server.js",
                ["--unix", node_unix.to_str().unwrap_or_default()],
            )
            .map_err(|e| e.to_string())?;
        let ready = p
            .wait_ready(Duration::from_secs(20))
            .await
            .map_err(|e| e.to_string())?;
        let v: Value = serde_json::from_str(ready.trim()).map_err(|e| e.to_string())?;
        Ok::<_, String>((p, v))
    })?;
    let node_ep = |t: &str| match t {
        "tcp" => format!("tcp://127.0.0.1:{}", node_eps["tcp"]),
        "ws" => format!("ws://127.0.0.1:{}/", node_eps["ws"]),
        _ => format!("unix://{}", node_unix.display()),
    };
    let rust_unix = dir.path().join("rust-jstp.sock");
    let mut rust_srv = Command::new(&connkit)
        .env("CONNKIT_THREADS", "1")
        .args([
            "jstp",
            "serve",
            "--demo",
            "--listen",
            "tcp://127.0.0.1:0",
            "ws://127.0.0.1:0/",
        ])
        .arg(format!("unix://{}", rust_unix.display()))
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()?;
    let rust_eps = listening_lines(&mut rust_srv, 3)?;
    let rust_ep = |t: &str| {
        rust_eps
            .iter()
            .find(|e| e.starts_with(&format!("{t}://")))
            .cloned()
            .unwrap_or_default()
    };
    for transport in ["tcp", "unix", "ws"] {
        for (mode, p) in [("sequential", 1), ("pipelined", PIPELINE)] {
            for (pair, server_ep, node_client) in [
                ("Node↔Node", node_ep(transport), true),
                ("Rust↔Rust", rust_ep(transport), false),
                ("Node client → Rust server", rust_ep(transport), true),
                ("Rust client → Node server", node_ep(transport), false),
            ] {
                let out = if node_client {
                    run_node(&node, "jstp_bench.js", &[&server_ep], p, &opts)?
                } else {
                    run_connkit(&connkit, &["bench", "jstp", &server_ep], p, &opts)?
                };
                cells.push(cell("JSTP", transport, mode, pair, &out));
            }
        }
    }
    let _ = rust_srv.kill();
    rt.block_on(async { node_srv.kill().await.ok() });

    eprintln!("== socket-ipc");
    let node_sock = dir.path().join("node-ipc.sock");
    let mut node_ipc = rt.block_on(async {
        let mut p = node
            .spawn(
                "ipc_bench.js",
                ["server", node_sock.to_str().unwrap_or_default()],
            )
            .map_err(|e| e.to_string())?;
        p.wait_ready(Duration::from_secs(20))
            .await
            .map_err(|e| e.to_string())?;
        Ok::<NodeProcess, String>(p)
    })?;
    let rust_sock = dir.path().join("rust-ipc.sock");
    let mut rust_ipc = Command::new(&connkit)
        .env("CONNKIT_THREADS", "1")
        .args([
            "ipc",
            "serve",
            rust_sock.to_str().unwrap_or_default(),
            "--echo",
            "--quiet",
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()?;
    let start = Instant::now();
    while !rust_sock.exists() && start.elapsed() < Duration::from_secs(10) {
        std::thread::sleep(Duration::from_millis(20));
    }
    let (ns, rs) = (
        node_sock.display().to_string(),
        rust_sock.display().to_string(),
    );
    for (mode, p) in [("sequential", 1), ("pipelined", PIPELINE)] {
        for (pair, sock, node_client) in [
            ("Node↔Node", &ns, true),
            ("Rust↔Rust", &rs, false),
            ("Node client → Rust server", &rs, true),
            ("Rust client → Node server", &ns, false),
        ] {
            let out = if node_client {
                run_node(&node, "ipc_bench.js", &["client", sock], p, &opts)?
            } else {
                run_connkit(&connkit, &["bench", "ipc", sock], p, &opts)?
            };
            cells.push(cell("IPC", "unix", mode, pair, &out));
        }
    }
    let _ = rust_ipc.kill();
    rt.block_on(async { node_ipc.kill().await.ok() });

    let table = markdown(&cells, &opts);
    println!("{table}");
    if opts.write {
        let docs = root.join("docs");
        splice(&docs.join("benchmarks.md"), &table)?;
        std::fs::write(docs.join("benchmarks-throughput.svg"), svg(&cells))?;
        eprintln!("wrote docs/benchmarks.md and docs/benchmarks-throughput.svg");
    }
    Ok(())
}

/// Reads `connkit: listening on <endpoint>` lines from a server's stderr.
fn listening_lines(child: &mut Child, n: usize) -> Result<Vec<String>, Box<dyn std::error::Error>> {
    use std::io::BufRead;
    let stderr = child.stderr.take().ok_or("no stderr")?;
    let mut lines = std::io::BufReader::new(stderr).lines();
    let mut eps = Vec::new();
    while eps.len() < n {
        let line = lines.next().ok_or("the server exited before listening")??;
        if let Some(ep) = line.strip_prefix("connkit: listening on ") {
            eps.push(ep.trim().to_owned());
        }
    }
    // Keep draining so the server never blocks on a full pipe.
    std::thread::spawn(move || for _ in lines {});
    Ok(eps)
}

fn load_args(p: usize, opts: &Opts) -> Vec<String> {
    vec![
        "--pipeline".into(),
        p.to_string(),
        "--duration".into(),
        opts.duration.to_string(),
        "--warmup".into(),
        opts.warmup.to_string(),
    ]
}

fn parse_last_json(stdout: &[u8], what: &str) -> Result<Value, Box<dyn std::error::Error>> {
    let text = String::from_utf8_lossy(stdout);
    let line = text
        .lines()
        .rev()
        .find(|l| l.starts_with('{'))
        .ok_or_else(|| format!("{what}: no result"))?;
    Ok(serde_json::from_str(line)?)
}

fn run_node(
    node: &NodePeers,
    script: &str,
    args: &[&str],
    p: usize,
    opts: &Opts,
) -> Result<Value, Box<dyn std::error::Error>> {
    let out = Command::new(node.node_binary())
        .current_dir(node.scripts_dir())
        .env("NODE_PATH", node.node_modules())
        .arg(script)
        .args(args)
        .args(load_args(p, opts))
        .stderr(Stdio::null())
        .output()?;
    parse_last_json(&out.stdout, script)
}

fn run_connkit(
    bin: &Path,
    args: &[&str],
    p: usize,
    opts: &Opts,
) -> Result<Value, Box<dyn std::error::Error>> {
    let out = Command::new(bin)
        .env("CONNKIT_THREADS", "1")
        .args(args)
        .args(load_args(p, opts))
        .output()?;
    if !out.status.success() {
        return Err(format!("connkit {args:?}: {}", String::from_utf8_lossy(&out.stderr)).into());
    }
    parse_last_json(&out.stdout, "connkit bench")
}

fn cell(
    protocol: &'static str,
    transport: &'static str,
    mode: &'static str,
    pair: &'static str,
    v: &Value,
) -> Cell {
    let c = Cell {
        protocol,
        transport,
        mode,
        pair,
        per_sec: v["per_sec"]
            .as_f64()
            .or_else(|| v["msgs_per_sec"].as_f64())
            .unwrap_or(0.0),
        p50_us: v["p50_us"].as_f64(),
        p99_us: v["p99_us"].as_f64(),
    };
    eprintln!("  {protocol} {transport} {mode} {pair}: {:.0}/s", c.per_sec);
    c
}

/// A plain blocking echo (no framing work beyond a fixed 100-byte message), sequential and
/// pipelined, over TCP and a Unix socket: the ceiling any library here can reach.
fn raw_limit(opts: &Opts, dir: &Path) -> Result<Vec<Cell>, Box<dyn std::error::Error>> {
    fn echo<S: Read + Write>(mut s: S) {
        let mut buf = vec![0u8; 64 * 1024];
        while let Ok(n) = s.read(&mut buf) {
            if n == 0 || s.write_all(&buf[..n]).is_err() {
                break;
            }
        }
    }
    fn measure<S: Read + Write + Send + 'static>(
        mut a: S,
        b: S,
        mut writer: S,
        pipelined: bool,
        opts: &Opts,
    ) -> f64 {
        const MSG: usize = 100;
        let _ = b;
        let msg = [b'x'; MSG];
        let total = Duration::from_secs_f64(opts.duration);
        let mut got = [0u8; 64 * 1024];
        if !pipelined {
            let start = Instant::now();
            let mut n = 0u64;
            while start.elapsed() < total {
                if a.write_all(&msg).is_err() || a.read_exact(&mut got[..MSG]).is_err() {
                    break;
                }
                n += 1;
            }
            #[allow(clippy::cast_precision_loss)]
            return n as f64 / start.elapsed().as_secs_f64();
        }
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let s2 = stop.clone();
        let w = std::thread::spawn(move || {
            let batch = [b'x'; MSG * 256];
            while !s2.load(std::sync::atomic::Ordering::Relaxed) {
                if writer.write_all(&batch).is_err() {
                    break;
                }
            }
        });
        let start = Instant::now();
        let mut bytes = 0u64;
        while start.elapsed() < total {
            match a.read(&mut got) {
                Ok(0) | Err(_) => break,
                Ok(k) => bytes += k as u64,
            }
        }
        let secs = start.elapsed().as_secs_f64();
        stop.store(true, std::sync::atomic::Ordering::Relaxed);
        drop(a);
        let _ = w.join();
        #[allow(clippy::cast_precision_loss)]
        let msgs = bytes as f64 / MSG as f64;
        msgs / secs
    }
    let mut cells = Vec::new();
    for pipelined in [false, true] {
        let mode = if pipelined { "pipelined" } else { "sequential" };
        let l = std::net::TcpListener::bind("127.0.0.1:0")?;
        let addr = l.local_addr()?;
        std::thread::spawn(move || {
            if let Ok((s, _)) = l.accept() {
                let _ = s.set_nodelay(true);
                echo(s);
            }
        });
        let a = std::net::TcpStream::connect(addr)?;
        a.set_nodelay(true)?;
        let (b, w) = (a.try_clone()?, a.try_clone()?);
        let r = measure(a, b, w, pipelined, opts);
        eprintln!("  raw tcp {mode}: {r:.0}/s");
        cells.push(Cell {
            protocol: "raw",
            transport: "tcp",
            mode,
            pair: "raw",
            per_sec: r,
            p50_us: None,
            p99_us: None,
        });

        let path = dir.join(format!("raw-{mode}.sock"));
        let l = std::os::unix::net::UnixListener::bind(&path)?;
        std::thread::spawn(move || {
            if let Ok((s, _)) = l.accept() {
                echo(s);
            }
        });
        let a = std::os::unix::net::UnixStream::connect(&path)?;
        let (b, w) = (a.try_clone()?, a.try_clone()?);
        let r = measure(a, b, w, pipelined, opts);
        eprintln!("  raw unix {mode}: {r:.0}/s");
        cells.push(Cell {
            protocol: "raw",
            transport: "unix",
            mode,
            pair: "raw",
            per_sec: r,
            p50_us: None,
            p99_us: None,
        });
    }
    Ok(cells)
}

const PAIRS: [&str; 4] = [
    "Node↔Node",
    "Rust↔Rust",
    "Node client → Rust server",
    "Rust client → Node server",
];

fn find<'a>(
    cells: &'a [Cell],
    protocol: &str,
    transport: &str,
    mode: &str,
    pair: &str,
) -> Option<&'a Cell> {
    cells.iter().find(|c| {
        c.protocol == protocol && c.transport == transport && c.mode == mode && c.pair == pair
    })
}

fn fmt_rate(r: f64) -> String {
    if r >= 1e6 {
        format!("{:.2}M", r / 1e6)
    } else if r >= 1e3 {
        format!("{:.1}k", r / 1e3)
    } else {
        format!("{r:.0}")
    }
}

fn markdown(cells: &[Cell], opts: &Opts) -> String {
    let mut s = String::new();
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|c| {
            c.lines()
                .find(|l| l.starts_with("model name"))
                .map(|l| l.split(':').nth(1).unwrap_or("").trim().to_owned())
        })
        .unwrap_or_default();
    let _ = writeln!(
        s,
        "Generated by `just compare` on {} ({} cores, {cpu}); {} s runs after {} s warm-up; \
        sequential = 1 request in flight, pipelined = {PIPELINE} in flight, one connection; requests per second \
        (round trips), p50/p99 latency in µs where measured. Servers and clients are separate processes on the \
        same 2 cores; the Rust processes run a single-threaded tokio runtime (`CONNKIT_THREADS=1`), as Node runs \
        one event loop.\n",
        chrono_like_now(),
        std::thread::available_parallelism().map_or(0, std::num::NonZeroUsize::get),
        opts.duration,
        opts.warmup
    );
    let _ = writeln!(
        s,
        "| protocol | transport | mode | Node↔Node | Rust↔Rust | Node client → Rust server | Rust client → Node server | Rust↔Rust ÷ Node↔Node | raw socket limit |"
    );
    let _ = writeln!(s, "|---|---|---|---|---|---|---|---|---|");
    for (protocol, transports) in [("JSTP", &["tcp", "unix", "ws"][..]), ("IPC", &["unix"][..])] {
        for &t in transports {
            for mode in ["sequential", "pipelined"] {
                let mut row = format!("| {protocol} | {t} | {mode} |");
                for pair in PAIRS {
                    match find(cells, protocol, t, mode, pair) {
                        Some(c) => {
                            let lat = match (c.p50_us, c.p99_us) {
                                (Some(a), Some(b)) => format!(" ({a:.0}/{b:.0} µs)"),
                                _ => String::new(),
                            };
                            let _ = write!(row, " {}{lat} |", fmt_rate(c.per_sec));
                        }
                        None => row.push_str(" – |"),
                    }
                }
                let ratio = match (
                    find(cells, protocol, t, mode, "Rust↔Rust"),
                    find(cells, protocol, t, mode, "Node↔Node"),
                ) {
                    (Some(r), Some(n)) if n.per_sec > 0.0 => {
                        format!("**{:.1}×**", r.per_sec / n.per_sec)
                    }
                    _ => "–".into(),
                };
                let raw_t = if t == "ws" { "tcp" } else { t };
                let raw = find(cells, "raw", raw_t, mode, "raw")
                    .map_or("–".into(), |c| fmt_rate(c.per_sec));
                let _ = writeln!(row, " {ratio} | {raw} |");
                s.push_str(&row);
            }
        }
    }
    s.push_str("\n![throughput per transport](benchmarks-throughput.svg)\n");
    s
}

fn chrono_like_now() -> String {
    let out = Command::new("date")
        .args(["-u", "+%Y-%m-%d %H:%M UTC"])
        .output();
    out.map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
        .unwrap_or_default()
}

const BEGIN: &str = "<!-- compare:begin -->";
const END: &str = "<!-- compare:end -->";

/// Replace the text between the markers in `path` (append a section if they are missing).
fn splice(path: &Path, table: &str) -> std::io::Result<()> {
    let old = std::fs::read_to_string(path).unwrap_or_default();
    let block = format!("{BEGIN}\n{table}{END}");
    let new = match (old.find(BEGIN), old.find(END)) {
        (Some(a), Some(b)) if a < b => format!("{}{block}{}", &old[..a], &old[b + END.len()..]),
        _ => format!("{old}\n## Node vs Rust, side by side (`just compare`)\n\n{block}\n"),
    };
    std::fs::write(path, new)
}

/// Grouped bars: pipelined throughput per transport, one bar per pair (log-free, labelled).
fn svg(cells: &[Cell]) -> String {
    let groups: [(&str, &str, &str); 4] = [
        ("JSTP", "tcp", "JSTP tcp"),
        ("JSTP", "unix", "JSTP unix"),
        ("JSTP", "ws", "JSTP ws"),
        ("IPC", "unix", "IPC unix"),
    ];
    let colors = ["#8c8c8c", "#d9480f", "#1971c2", "#2f9e44"];
    let max = cells
        .iter()
        .filter(|c| c.mode == "pipelined" && c.protocol != "raw")
        .map(|c| c.per_sec)
        .fold(1.0, f64::max);
    let (w, h, top, left, bottom) = (760.0, 360.0, 40.0, 60.0, 60.0);
    let plot_h = h - top - bottom;
    let gw = (w - left - 20.0) / 4.0;
    let bw = gw / 5.5;
    let mut s = format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{w}\" height=\"{h}\" font-family=\"sans-serif\" font-size=\"11\">\n"
    );
    let _ = writeln!(
        s,
        "<text x=\"{left}\" y=\"20\" font-size=\"14\">Pipelined throughput ({PIPELINE} in flight), requests/s</text>"
    );
    for (gi, (p, t, label)) in groups.iter().enumerate() {
        #[allow(clippy::cast_precision_loss)]
        let gx = left + gi as f64 * gw;
        for (pi, pair) in PAIRS.iter().enumerate() {
            let v = find(cells, p, t, "pipelined", pair).map_or(0.0, |c| c.per_sec);
            let bh = plot_h * v / max;
            #[allow(clippy::cast_precision_loss)]
            let x = gx + bw * (0.5 + pi as f64);
            let y = top + plot_h - bh;
            let _ = writeln!(
                s,
                "<rect x=\"{x:.1}\" y=\"{y:.1}\" width=\"{:.1}\" height=\"{bh:.1}\" fill=\"{}\"/>",
                bw * 0.9,
                colors[pi]
            );
            let _ = writeln!(
                s,
                "<text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"middle\" font-size=\"9\">{}</text>",
                x + bw * 0.45,
                y - 3.0,
                fmt_rate(v)
            );
        }
        let _ = writeln!(
            s,
            "<text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"middle\">{label}</text>",
            gx + gw / 2.0 - bw * 0.5,
            top + plot_h + 16.0
        );
    }
    for (pi, pair) in PAIRS.iter().enumerate() {
        #[allow(clippy::cast_precision_loss)]
        let x = left + pi as f64 * 170.0;
        let _ = writeln!(
            s,
            "<rect x=\"{x}\" y=\"{}\" width=\"10\" height=\"10\" fill=\"{}\"/><text x=\"{}\" y=\"{}\">{pair}</text>",
            h - 22.0,
            colors[pi],
            x + 14.0,
            h - 13.0
        );
    }
    s.push_str("</svg>\n");
    s
}
