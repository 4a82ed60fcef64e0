//! `connkit session …`: session backends (Jamsocket v2, Plane) from the command line.

use crate::{Failure, error_chain, print_json, shutdown_signal};
use clap::{Args, Subcommand};
use connkit::session::dev::DevServerOptions;
use connkit::session::{ApiClient, ApiOptions, ConnectRequest, Finished, SessionBackend};
use futures_util::StreamExt;
use std::io::{IsTerminal, Write};
use std::net::SocketAddr;
use std::time::Duration;

#[derive(Debug, Subcommand)]
pub(crate) enum SessionCommand {
    /// Get or spawn a backend and print the ConnectResponse as JSON.
    Connect {
        #[command(flatten)]
        api: ApiArgs,
        /// Connecting again with the same key returns the same backend while it lives.
        #[arg(long)]
        key: Option<String>,
    },
    /// Print a backend's current state as JSON.
    Status {
        /// The backend's status URL (from the ConnectResponse).
        status_url: String,
        /// Give up after this many seconds.
        #[arg(long, value_name = "SECS", default_value_t = 30.0)]
        timeout: f64,
    },
    /// Print each new state as one JSON line; exit 0 after `terminated`.
    Watch {
        /// The backend's status URL (from the ConnectResponse).
        status_url: String,
    },
    /// Terminate a backend (gracefully, or at once with --hard).
    Terminate {
        /// The backend's id.
        backend_id: String,
        #[command(flatten)]
        api: ApiArgs,
        /// Kill it at once instead of asking it to stop.
        #[arg(long)]
        hard: bool,
    },
    /// Run a local dev server (Jamsocket v2 and Plane routes) that spawns each backend as a
    /// local process: no Docker.
    Dev {
        /// Where to listen.
        #[arg(long, value_name = "ADDR", default_value = "127.0.0.1:8080")]
        listen: SocketAddr,
        /// The command that runs one backend; it must listen on 127.0.0.1:$PORT
        /// (default: `connkit session echo-backend`). One argument with spaces runs
        /// through /bin/sh -c.
        #[arg(long, value_name = "CMD", num_args = 1.., allow_hyphen_values = true)]
        backend: Vec<String>,
        /// Terminate a backend after this many idle seconds (no connect, no open status
        /// stream) unless the connect request says otherwise.
        #[arg(long, value_name = "SECS", default_value_t = 300)]
        max_idle: u64,
    },
    /// A tiny backend for the dev server: answers every HTTP request on 127.0.0.1:$PORT
    /// with its id, method and path as JSON.
    EchoBackend,
}

/// Which API to talk to.
#[derive(Debug, Args)]
pub(crate) struct ApiArgs {
    /// A dev server on localhost:8080 (or on --api), with account, service and token `-`.
    #[arg(long)]
    dev: bool,
    /// The API's base URL (default https://api.jamsocket.com, or localhost:8080 with --dev).
    #[arg(long, value_name = "URL")]
    api: Option<String>,
    /// The account (default `JAMSOCKET_ACCOUNT`).
    #[arg(long)]
    account: Option<String>,
    /// The service (default `JAMSOCKET_SERVICE`).
    #[arg(long)]
    service: Option<String>,
    /// The API token (default `JAMSOCKET_TOKEN`).
    #[arg(long)]
    token: Option<String>,
    /// Give up after this many seconds.
    #[arg(long, value_name = "SECS", default_value_t = 30.0)]
    timeout: f64,
}

impl ApiArgs {
    fn client(&self) -> Result<ApiClient, Failure> {
        let timeout = seconds(self.timeout, "--timeout")?;
        let options = if self.dev {
            let o = ApiOptions::dev();
            match &self.api {
                Some(url) => o.api_url(url),
                None => o,
            }
        } else if self.api.is_some()
            || self.account.is_some()
            || self.service.is_some()
            || self.token.is_some()
        {
            let env = |name: &str| std::env::var(name).ok().filter(|v| !v.is_empty());
            let pick = |flag: &Option<String>, var: &str, what: &str| {
                flag.clone().or_else(|| env(var)).ok_or_else(|| {
                    Failure::usage(format!("--{what} (or {var}) is required without --dev"))
                })
            };
            let o = ApiOptions::jamsocket(
                pick(&self.account, "JAMSOCKET_ACCOUNT", "account")?,
                pick(&self.service, "JAMSOCKET_SERVICE", "service")?,
                pick(&self.token, "JAMSOCKET_TOKEN", "token")?,
            );
            match self.api.clone().or_else(|| env("JAMSOCKET_API_URL")) {
                Some(url) => o.api_url(url),
                None => o,
            }
        } else {
            ApiOptions::from_env().map_err(|e| {
                Failure::usage(format!(
                    "give --dev, or --api/--account/--service/--token: {e}"
                ))
            })?
        };
        options
            .timeout(timeout)
            .build()
            .map_err(|e| Failure::usage(e.to_string()))
    }
}

fn seconds(secs: f64, flag: &str) -> Result<Duration, Failure> {
    Duration::try_from_secs_f64(secs)
        .ok()
        .filter(|d| !d.is_zero())
        .ok_or_else(|| Failure::usage(format!("{flag} must be a positive number of seconds")))
}

pub(crate) async fn run(cmd: SessionCommand) -> Result<(), Failure> {
    match cmd {
        SessionCommand::Connect { api, key } => {
            let client = api.client()?;
            let mut request = ConnectRequest::new();
            if let Some(key) = key {
                request = request.key(key);
            }
            let response = client
                .connect(&request)
                .await
                .map_err(|e| Failure::runtime(error_chain(&e)))?;
            print_json(&to_json(serde_json::to_value(&response)));
            Ok(())
        }
        SessionCommand::Status {
            status_url,
            timeout,
        } => {
            let timeout = seconds(timeout, "--timeout")?;
            let state = connkit::session::fetch_status(&status_url, timeout)
                .await
                .map_err(|e| match e {
                    connkit::session::Error::InvalidUrl { .. } => Failure::usage(e.to_string()),
                    e => Failure::runtime(error_chain(&e)),
                })?;
            print_json(&to_json(serde_json::to_value(&state)));
            Ok(())
        }
        SessionCommand::Watch { status_url } => watch(&status_url).await,
        SessionCommand::Terminate {
            backend_id,
            api,
            hard,
        } => {
            let client = api.client()?;
            client
                .terminate(&backend_id, hard)
                .await
                .map_err(|e| Failure::runtime(error_chain(&e)))
        }
        SessionCommand::Dev {
            listen,
            backend,
            max_idle,
        } => dev(listen, backend, max_idle).await,
        SessionCommand::EchoBackend => connkit::session::dev::run_echo_backend_from_env()
            .await
            .map_err(|e| Failure::runtime(error_chain(&e))),
    }
}

fn to_json(value: Result<serde_json::Value, serde_json::Error>) -> serde_json::Value {
    value.unwrap_or(serde_json::Value::Null)
}

async fn watch(status_url: &str) -> Result<(), Failure> {
    let backend =
        SessionBackend::from_status_url(status_url).map_err(|e| Failure::usage(e.to_string()))?;
    let mut states = backend.statuses();
    let mut spinner = Spinner::new();
    let mut tick = tokio::time::interval(Duration::from_millis(100));
    let printer = async {
        loop {
            tokio::select! {
                next = states.next() => match next {
                    Some(state) => {
                        spinner.clear();
                        print_json(&to_json(serde_json::to_value(&state)));
                        spinner.status = state.status.to_string();
                    }
                    None => break,
                },
                _ = tick.tick(), if spinner.enabled => spinner.draw(),
            }
        }
    };
    tokio::select! {
        () = printer => {}
        () = shutdown_signal() => {
            spinner.clear();
            backend.destroy();
            return Ok(());
        }
    }
    spinner.clear();
    match backend.finished().await {
        Finished::Terminated => Ok(()),
        Finished::Failed(e) => Err(Failure::runtime(error_chain(&e))),
        _ => Err(Failure::runtime("stopped following the backend")),
    }
}

/// A one-line spinner on stderr, only when stderr is a terminal.
struct Spinner {
    enabled: bool,
    frame: usize,
    status: String,
    drawn: bool,
}

impl Spinner {
    fn new() -> Self {
        Self {
            enabled: std::io::stderr().is_terminal(),
            frame: 0,
            status: "connecting".into(),
            drawn: false,
        }
    }

    fn draw(&mut self) {
        const FRAMES: [char; 10] = ['⠋', '⠙', '⠹', '⠸', '⠼', '⠴', '⠦', '⠧', '⠇', '⠏'];
        self.frame = (self.frame + 1) % FRAMES.len();
        let mut err = std::io::stderr().lock();
        let _ = write!(err, "\r\x1b[2K{} {}", FRAMES[self.frame], self.status);
        let _ = err.flush();
        self.drawn = true;
    }

    fn clear(&mut self) {
        if self.drawn {
            let mut err = std::io::stderr().lock();
            let _ = write!(err, "\r\x1b[2K");
            let _ = err.flush();
            self.drawn = false;
        }
    }
}

async fn dev(listen: SocketAddr, backend: Vec<String>, max_idle: u64) -> Result<(), Failure> {
    let command = if backend.is_empty() {
        let exe = std::env::current_exe()
            .map_err(|e| Failure::runtime(format!("cannot find the connkit binary: {e}")))?;
        vec![
            exe.to_string_lossy().into_owned(),
            "session".into(),
            "echo-backend".into(),
        ]
    } else {
        backend
    };
    let server = DevServerOptions::new()
        .listen(listen)
        .backend_command(command)
        .max_idle(Duration::from_secs(max_idle))
        .start()
        .await
        .map_err(|e| Failure::runtime(error_chain(&e)))?;
    eprintln!(
        "connkit: session dev server on {}",
        server.base_url().as_str().trim_end_matches('/')
    );
    shutdown_signal().await;
    server.shutdown().await;
    Ok(())
}
