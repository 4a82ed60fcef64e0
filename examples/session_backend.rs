//! A session backend from connect to terminated, with no Docker and no outside service.
//!
//! The example starts connkit's embedded dev server on a free loopback port, whose backend
//! command is this very program run as `session_backend echo-backend` (a tiny HTTP server on
//! `$PORT`). It then connects (Jamsocket v2 API), follows the backend's status with
//! `SessionBackend`, talks to the backend once it is ready, connects again with the same
//! key, terminates it and waits for `terminated`.
//!
//! ```text
//! cargo run --example session_backend
//! ```

use connkit::session::dev::{DevServerOptions, run_echo_backend_from_env};
use connkit::session::{ConnectRequest, SessionBackend};
use futures_util::StreamExt;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    // Run as a backend by the dev server.
    if std::env::args().nth(1).as_deref() == Some("echo-backend") {
        run_echo_backend_from_env().await?;
        return Ok(());
    }

    let me = std::env::current_exe()?.to_string_lossy().into_owned();
    let server = DevServerOptions::new()
        .listen("127.0.0.1:0".parse()?)
        .backend_command([me.as_str(), "echo-backend"])
        .start()
        .await?;
    println!("dev server on {}", server.base_url());

    let api = server.api()?;
    let response = api
        .connect(&ConnectRequest::new().key("example-doc"))
        .await?;
    println!(
        "connected: backend {} (spawned: {})",
        response.backend_id, response.spawned
    );

    let backend = SessionBackend::new(&response);
    let mut states = backend.statuses();
    let printer = tokio::spawn(async move {
        while let Some(state) = states.next().await {
            println!("  status: {state}");
        }
    });
    backend
        .on_ready(|| println!("  on_ready: the backend accepts connections"))
        .detach();
    backend
        .on_terminated(|last| println!("  on_terminated: {last}"))
        .detach();

    tokio::time::timeout(Duration::from_secs(30), backend.ready()).await??;
    println!("backend answers: {}", get(&response.url).await?.trim());

    let again = api
        .connect(&ConnectRequest::new().key("example-doc"))
        .await?;
    println!(
        "same key again: backend {} (spawned: {})",
        again.backend_id, again.spawned
    );

    api.terminate(&response.backend_id, false).await?;
    let last = tokio::time::timeout(Duration::from_secs(30), backend.terminated()).await??;
    printer.await?;
    println!(
        "terminated: reason {:?}, exit error {:?}",
        last.termination_reason.map(|r| r.to_string()),
        last.exit_error
    );
    server.shutdown().await;
    Ok(())
}

/// One plain HTTP GET (the echo backend closes the connection after answering).
async fn get(url: &str) -> std::io::Result<String> {
    let rest = url.trim_start_matches("http://");
    let (addr, path) = rest.split_once('/').unwrap_or((rest, ""));
    let mut sock = tokio::net::TcpStream::connect(addr).await?;
    let request = format!("GET /{path} HTTP/1.1\r\nhost: {addr}\r\nconnection: close\r\n\r\n");
    sock.write_all(request.as_bytes()).await?;
    let mut answer = String::new();
    sock.read_to_string(&mut answer).await?;
    Ok(answer
        .split_once("\r\n\r\n")
        .map(|(_, body)| body.to_owned())
        .unwrap_or(answer))
}
