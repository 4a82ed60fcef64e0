//! `connkit`: drive connkit's protocols from the command line.
//!
//! Output is JSON on stdout; diagnostics go to stderr (set `RUST_LOG` for tracing output).

use clap::Parser;
use std::process::ExitCode;

/// Keep connections alive: JSTP RPC, socket-file IPC and session backends from the command line.
#[derive(Debug, Parser)]
#[command(name = "connkit", version, about, long_about = None)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Debug, clap::Subcommand)]
enum Command {
    /// Parse an endpoint URL and print it as JSON (scheme, host, port, path).
    Endpoint {
        /// tcp://host:port, tls://host:port, unix:///path, ws://host:port/path or wss://…
        url: String,
    },
}

fn init_tracing() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
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
