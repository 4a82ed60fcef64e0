//! `connkit`: drive connkit's protocols from the command line.
//!
//! Output is JSON on stdout; diagnostics go to stderr (set `RUST_LOG` for tracing output).

use clap::Parser;
use std::process::ExitCode;

mod bench;
mod demo;
mod ipc;
mod jstp;
mod session;

/// Keep connections alive: JSTP RPC, socket-file IPC and session backends from the command line.
#[derive(Debug, Parser)]
#[command(name = "connkit", version, about, long_about = None)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Debug, clap::Subcommand)]
enum Command {
    /// JSTP RPC, wire-compatible with @metarhia/jstp 2.3.0: serve, call, inspect, listen.
    #[command(subcommand)]
    Jstp(jstp::JstpCommand),
    /// Load generators for any JSTP or socket-ipc server; print throughput and latency
    /// percentiles as one JSON line.
    #[command(subcommand)]
    Bench(bench::BenchCommand),
    /// A guided tour of every protocol on loopback; exits 0 only if every step worked.
    Demo,
    /// Socket-file IPC, wire-compatible with @crussell52/socket-ipc 0.4.0.
    #[command(subcommand)]
    Ipc(ipc::IpcCommand),
    /// Session backends: connect (Jamsocket v2), status, watch, and a local dev server.
    #[command(subcommand)]
    Session(session::SessionCommand),
    /// Parse an endpoint URL and print it as JSON (scheme, host, port, path).
    Endpoint {
        /// tcp://host:port, tls://host:port, unix:///path, ws://host:port/path or wss://…
        url: String,
    },
}

/// Why a command failed, and the exit code that says so: 1 for a runtime failure (no
/// server, timeout), 2 for bad arguments.
#[derive(Debug)]
pub(crate) struct Failure {
    code: u8,
    message: String,
}

impl Failure {
    pub(crate) fn runtime(message: impl Into<String>) -> Self {
        Self {
            code: 1,
            message: message.into(),
        }
    }

    pub(crate) fn usage(message: impl Into<String>) -> Self {
        Self {
            code: 2,
            message: message.into(),
        }
    }

    /// Exit with `code`; the command has already printed why.
    pub(crate) fn reported(code: u8) -> Self {
        Self {
            code,
            message: String::new(),
        }
    }
}

pub(crate) use connkit::core::error::display_chain as error_chain;

/// Print one JSON value as one line on stdout.
pub(crate) fn print_json(v: &serde_json::Value) {
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{v}");
    let _ = out.flush();
}

/// Completes on Ctrl-C or SIGTERM.
pub(crate) async fn shutdown_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    let term = async {
        match signal(SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        () = term => {}
    }
}

/// The async runtime: multi-threaded with one worker per core, or single-threaded when
/// `CONNKIT_THREADS=1` (lower latency for one busy connection on a small machine).
fn runtime() -> Result<tokio::runtime::Runtime, Failure> {
    let threads = std::env::var("CONNKIT_THREADS")
        .ok()
        .and_then(|v| v.parse::<usize>().ok());
    let mut builder = match threads {
        Some(1) => tokio::runtime::Builder::new_current_thread(),
        Some(n) => {
            let mut b = tokio::runtime::Builder::new_multi_thread();
            b.worker_threads(n.max(1));
            b
        }
        None => tokio::runtime::Builder::new_multi_thread(),
    };
    builder
        .enable_all()
        .build()
        .map_err(|e| Failure::runtime(format!("cannot start the async runtime: {e}")))
}

fn finish(result: Result<(), Failure>) -> ExitCode {
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(f) => {
            if !f.message.is_empty() {
                eprintln!("connkit: {}", f.message);
            }
            ExitCode::from(f.code)
        }
    }
}

fn init_tracing() {
    use std::io::IsTerminal;
    // The commands print their own errors; library logs only with RUST_LOG set.
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("off"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .try_init();
}

fn main() -> ExitCode {
    init_tracing();
    let cli = Cli::parse();
    match cli.command {
        None => {
            use clap::CommandFactory;
            let _ = Cli::command().print_help();
            ExitCode::SUCCESS
        }
        Some(Command::Jstp(cmd)) => finish(runtime().and_then(|rt| rt.block_on(jstp::run(cmd)))),
        Some(Command::Demo) => finish(runtime().and_then(|rt| rt.block_on(demo::run()))),
        Some(Command::Bench(cmd)) => finish(runtime().and_then(|rt| rt.block_on(bench::run(cmd)))),
        Some(Command::Ipc(cmd)) => finish(runtime().and_then(|rt| rt.block_on(ipc::run(cmd)))),
        Some(Command::Session(cmd)) => {
            finish(runtime().and_then(|rt| rt.block_on(session::run(cmd))))
        }
        Some(Command::Endpoint { url }) => match url.parse::<connkit::Endpoint>() {
            Ok(ep) => {
                let out = serde_json::json!({
                    "scheme": ep.scheme().as_str(),
                    "host": ep.host(),
                    "port": ep.port(),
                    "path": ep.path().map(|p| p.display().to_string()).or_else(|| ep.ws_path().map(str::to_owned)),
                    "url": ep.to_string(),
                });
                println!("{out}");
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("connkit: {e}");
                ExitCode::from(2)
            }
        },
    }
}
