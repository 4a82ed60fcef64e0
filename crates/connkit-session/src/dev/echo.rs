//! A tiny backend for demos and tests: answers every HTTP request on `127.0.0.1:$PORT`.

use crate::error::{Error, Result};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

/// Serve the echo backend on `listener` until the process is stopped: every HTTP request
/// gets `200` and a one-line JSON body naming the backend (`SESSION_BACKEND_ID`), the
/// method and the path. Each connection is closed after one answer.
///
/// # Errors
/// Only when accepting fails for good; per-connection errors are ignored.
pub async fn run_echo_backend(listener: TcpListener) -> Result<()> {
    let id = std::env::var("SESSION_BACKEND_ID").unwrap_or_default();
    loop {
        let (mut sock, _) = listener
            .accept()
            .await
            .map_err(|e| Error::io("accepting a connection", e))?;
        let id = id.clone();
        tokio::spawn(async move {
            let mut head = Vec::new();
            let mut buf = [0u8; 2048];
            while !head.windows(4).any(|w| w == b"\r\n\r\n") && head.len() < 16 * 1024 {
                match sock.read(&mut buf).await {
                    Ok(0) | Err(_) => break,
                    Ok(n) => head.extend_from_slice(&buf[..n]),
                }
            }
            let text = String::from_utf8_lossy(&head);
            let mut words = text.split_whitespace();
            let method = words.next().unwrap_or("");
            let path = words.next().unwrap_or("");
            let body = serde_json::json!({"backend": id, "method": method, "path": path})
                .to_string()
                + "\n";
            let resp = format!(
                "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                body.len()
            );
            let _ = sock.write_all(resp.as_bytes()).await;
            let _ = sock.shutdown().await;
        });
    }
}

/// Bind `127.0.0.1:$PORT` and run [`run_echo_backend`] (what `connkit session echo-backend`
/// does).
///
/// # Errors
/// [`Error::InvalidConfig`] without a valid `PORT`, [`Error::Io`] when it cannot be bound.
pub async fn run_echo_backend_from_env() -> Result<()> {
    let port: u16 = std::env::var("PORT")
        .ok()
        .and_then(|p| p.trim().parse().ok())
        .ok_or_else(|| Error::InvalidConfig("PORT must be set to a port number".into()))?;
    let listener = TcpListener::bind(("127.0.0.1", port))
        .await
        .map_err(|e| Error::io(format!("cannot listen on 127.0.0.1:{port}"), e))?;
    run_echo_backend(listener).await
}
