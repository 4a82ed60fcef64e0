//! `connkit ipc …`: socket-file IPC from the command line.

use crate::{Failure, error_chain, print_json, shutdown_signal};
use clap::Subcommand;
use connkit::core::backoff::Backoff;
use connkit::ipc::{ClientOptions, Payload, ServerEvent, ServerOptions};
use futures_util::StreamExt;
use serde_json::{Value, json};
use std::path::PathBuf;
use std::time::Duration;

#[derive(Debug, Subcommand)]
pub(crate) enum IpcCommand {
    /// Serve on a socket file; print each received message as one JSON line
    /// `{"client":…,"topic":…,"message":…}` until interrupted.
    Serve {
        /// The socket file.
        socket: PathBuf,
        /// Also send each message back to its sender, on the same topic.
        #[arg(long)]
        echo: bool,
        /// Do not print messages (for load tests); errors still go to stderr.
        #[arg(long)]
        quiet: bool,
    },
    /// Send one message; with --wait, print the first message received on a topic as one
    /// JSON line `{"topic":…,"message":…}`.
    Send {
        /// The socket file.
        socket: PathBuf,
        /// The topic.
        topic: String,
        /// The message, as JSON.
        json: String,
        /// Wait for the first message on this topic and print it.
        #[arg(long, value_name = "TOPIC")]
        wait: Option<String>,
        /// Give up after this many seconds (connecting, sending and waiting).
        #[arg(long, value_name = "SECS", default_value_t = 10.0)]
        timeout: f64,
    },
    /// Print messages from the server as JSON lines `{"topic":…,"message":…}` until
    /// interrupted (reconnecting as needed).
    Listen {
        /// The socket file.
        socket: PathBuf,
        /// Only this topic (default: every topic).
        topic: Option<String>,
    },
}

pub(crate) async fn run(cmd: IpcCommand) -> Result<(), Failure> {
    match cmd {
        IpcCommand::Serve {
            socket,
            echo,
            quiet,
        } => serve(socket, echo, quiet).await,
        IpcCommand::Send {
            socket,
            topic,
            json,
            wait,
            timeout,
        } => {
            let message: Value = serde_json::from_str(&json)
                .map_err(|e| Failure::usage(format!("<JSON> is not valid JSON: {e}")))?;
            let limit = Duration::try_from_secs_f64(timeout)
                .map_err(|_| Failure::usage("--timeout must be a positive number of seconds"))?;
            tokio::time::timeout(limit, send(socket, topic, message, wait))
                .await
                .map_err(|_| Failure::runtime(format!("timed out after {timeout} s")))?
        }
        IpcCommand::Listen { socket, topic } => listen(socket, topic).await,
    }
}

/// `{"topic":…,"message":…}`; an absent message is `null`.
fn line(topic: &str, message: &Payload) -> Value {
    json!({"topic": topic, "message": message})
}

async fn serve(socket: PathBuf, echo: bool, quiet: bool) -> Result<(), Failure> {
    let server = ServerOptions::new(&socket).build();
    let mut events = server.events();
    // Messages come from a reliable subscription (never dropped under load), errors from the
    // event stream.
    let mut messages = (!quiet).then(|| server.subscribe(None));
    if echo {
        server
            .on(None, |m| async move { m.reply(&m.topic, &m.message).await })
            .detach();
    }
    server
        .listen()
        .await
        .map_err(|e| Failure::runtime(format!("cannot serve on {}: {e}", socket.display())))?;
    eprintln!("connkit: serving on {}", socket.display());
    let printer = async {
        if let Some(sub) = messages.as_mut() {
            while let Some(m) = sub.recv().await {
                print_json(&json!({"client": m.client, "topic": m.topic, "message": m.message}));
            }
        }
    };
    let errors = async {
        while let Some(ev) = events.next().await {
            match ev {
                Ok(ServerEvent::Error { client, error }) => {
                    let who = client
                        .map(|c| c.to_string())
                        .unwrap_or_else(|| "server".into());
                    eprintln!("connkit: {who}: {}", error_chain(&*error));
                }
                Ok(_) => {}
                // Lag here only means skipped message events; messages are printed from the
                // reliable subscription above.
                Err(_) => {}
            }
        }
    };
    tokio::select! {
        () = async { tokio::join!(printer, errors); } => {}
        () = shutdown_signal() => {}
    }
    server.close().await;
    Ok(())
}

async fn send(
    socket: PathBuf,
    topic: String,
    message: Value,
    wait: Option<String>,
) -> Result<(), Failure> {
    let client = ClientOptions::new(&socket)
        .backoff(
            Backoff::constant(Duration::from_millis(100))
                .max_attempts(1)
                .build()
                .map_err(|e| Failure::runtime(e.to_string()))?,
        )
        .build()
        .map_err(|e| Failure::runtime(e.to_string()))?;
    let mut reply = wait.as_deref().map(|t| client.subscribe(Some(t)));
    client.start();
    client
        .connected()
        .await
        .map_err(|_| Failure::runtime(format!("no server is listening on {}", socket.display())))?;
    client
        .send(&topic, message)
        .await
        .map_err(|e| Failure::runtime(error_chain(&e)))?;
    if let Some(sub) = reply.as_mut() {
        let m = sub
            .recv()
            .await
            .ok_or_else(|| Failure::runtime("the connection closed before a reply arrived"))?;
        print_json(&line(&m.topic, &m.message));
    }
    client.close().await;
    Ok(())
}

async fn listen(socket: PathBuf, topic: Option<String>) -> Result<(), Failure> {
    let client = ClientOptions::new(&socket)
        .build()
        .map_err(|e| Failure::runtime(e.to_string()))?;
    let mut sub = client.subscribe(topic.as_deref());
    client.start();
    let printer = async {
        while let Some(m) = sub.recv().await {
            print_json(&line(&m.topic, &m.message));
        }
    };
    tokio::select! {
        () = printer => {}
        () = shutdown_signal() => {}
    }
    client.close().await;
    Ok(())
}
