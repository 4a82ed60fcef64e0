//! `ApiClient` against a scripted HTTP server on loopback: request shape, typed errors
//! (409, 429), retries and timeouts.

use connkit_session::{ApiOptions, ConnectRequest, Error, PlaneConnectRequest, PlaneKeyConfig};
use connkit_testkit::within;
use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

/// Answers each request with the next scripted response (raw status line, headers, body);
/// `None` never answers. Records each request's head and body.
async fn server(replies: Vec<Option<&'static str>>) -> (String, Arc<Mutex<Vec<String>>>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let seen = Arc::new(Mutex::new(Vec::new()));
    let replies = Arc::new(Mutex::new(VecDeque::from(replies)));
    let s = seen.clone();
    tokio::spawn(async move {
        loop {
            let Ok((mut sock, _)) = listener.accept().await else {
                return;
            };
            let (seen, replies) = (s.clone(), replies.clone());
            tokio::spawn(async move {
                let mut req = Vec::new();
                let mut buf = [0u8; 4096];
                loop {
                    let n = match sock.read(&mut buf).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => n,
                    };
                    req.extend_from_slice(&buf[..n]);
                    let text = String::from_utf8_lossy(&req).to_string();
                    if let Some(end) = text.find("\r\n\r\n") {
                        let len = text
                            .lines()
                            .find_map(|l| {
                                l.to_ascii_lowercase()
                                    .strip_prefix("content-length: ")
                                    .map(str::to_owned)
                            })
                            .and_then(|v| v.trim().parse::<usize>().ok())
                            .unwrap_or(0);
                        if req.len() >= end + 4 + len {
                            break;
                        }
                    }
                }
                seen.lock()
                    .unwrap()
                    .push(String::from_utf8_lossy(&req).to_string());
                let reply = replies.lock().unwrap().pop_front().flatten();
                match reply {
                    Some(r) => {
                        let (head, body) = r.split_once("\n\n").unwrap_or((r, ""));
                        let resp = format!(
                            "{head}\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                            body.len()
                        );
                        let _ = sock.write_all(resp.as_bytes()).await;
                    }
                    None => std::future::pending::<()>().await,
                }
            });
        }
    });
    (base, seen)
}

const RESPONSE: &str = "HTTP/1.1 200 OK\ncontent-type: application/json\n\n{\"backend_id\":\"b1\",\"spawned\":true,\"status\":\"scheduled\",\"token\":\"t\",\"url\":\"http://127.0.0.1:9/\",\"status_url\":\"http://127.0.0.1:9/v2/backend/b1/status\",\"ready_url\":\"\"}";

#[tokio::test]
async fn jamsocket_connect_sends_the_bearer_token_and_body() {
    within(10, async {
        let (base, seen) = server(vec![Some(RESPONSE)]).await;
        let api = ApiOptions::jamsocket("acct", "svc", "sekrit")
            .api_url(&base)
            .build()
            .unwrap();
        let r = api
            .connect(&ConnectRequest::new().key("k1").spawn(true))
            .await
            .unwrap();
        assert_eq!(r.backend_id, "b1");
        let req = seen.lock().unwrap()[0].clone();
        assert!(
            req.starts_with("POST /v2/service/acct/svc/connect HTTP/1.1\r\n"),
            "{req}"
        );
        assert!(
            req.to_ascii_lowercase()
                .contains("authorization: bearer sekrit\r\n"),
            "{req}"
        );
        assert!(req.ends_with(r#"{"key":"k1","spawn":true}"#), "{req}");
    })
    .await;
}

#[tokio::test]
async fn typed_errors_carry_the_status() {
    within(10, async {
        let (base, _) = server(vec![
            Some("HTTP/1.1 409 Conflict\n\n{\"id\":\"x\",\"kind\":\"KeyUnheldNoSpawnConfig\",\"message\":\"no\"}"),
            Some("HTTP/1.1 429 Too Many Requests\nretry-after: 7\n\nslow down"),
            Some("HTTP/1.1 200 OK\n\nnot json"),
        ])
        .await;
        let api = ApiOptions::plane(&base).build().unwrap();
        let req = PlaneConnectRequest::new().key(PlaneKeyConfig::new("x"));
        let e = api.connect_plane(&req).await.unwrap_err();
        assert_eq!(e.http_status(), Some(409));
        assert!(!e.is_retryable());
        assert!(e.to_string().contains("KeyUnheldNoSpawnConfig"), "{e}");
        let e = api.connect_plane(&req).await.unwrap_err();
        match &e {
            Error::RateLimited { retry_after, .. } => assert_eq!(*retry_after, Some(Duration::from_secs(7))),
            other => panic!("{other:?}"),
        }
        assert!(e.to_string().contains("rate limited"));
        let e = api.connect_plane(&req).await.unwrap_err();
        assert!(matches!(e, Error::InvalidResponse { .. }), "{e:?}");
    })
    .await;
}

#[tokio::test]
async fn retries_on_5xx_then_succeeds() {
    within(10, async {
        let (base, seen) = server(vec![
            Some("HTTP/1.1 503 Unavailable\n\n"),
            Some("HTTP/1.1 502 Bad Gateway\n\n"),
            Some(RESPONSE),
        ])
        .await;
        let backoff = connkit_core::backoff::Backoff::constant(Duration::from_millis(20))
            .build()
            .unwrap();
        let api = ApiOptions::dev_port(1)
            .api_url(&base)
            .retries(2)
            .backoff_policy(Arc::new(backoff))
            .build()
            .unwrap();
        let r = api.connect(&ConnectRequest::new()).await.unwrap();
        assert_eq!(r.backend_id, "b1");
        assert_eq!(seen.lock().unwrap().len(), 3);
        let req = seen.lock().unwrap()[0].clone();
        assert!(req.starts_with("POST /v2/service/-/-/connect "), "{req}");
        assert!(
            req.to_ascii_lowercase()
                .contains("authorization: bearer -\r\n")
        );
    })
    .await;
}

#[tokio::test]
async fn a_silent_server_times_out() {
    within(10, async {
        let (base, _) = server(vec![None]).await;
        let api = ApiOptions::plane(&base)
            .timeout(Duration::from_millis(300))
            .build()
            .unwrap();
        let t0 = Instant::now();
        let e = api.status("b1").await.unwrap_err();
        assert!(matches!(e, Error::Timeout { .. }), "{e:?}");
        assert!(e.is_retryable());
        assert!(t0.elapsed() < Duration::from_secs(3));
    })
    .await;
}

#[tokio::test]
async fn terminate_accepts_null_and_empty_bodies() {
    within(10, async {
        let (base, seen) = server(vec![
            Some("HTTP/1.1 200 OK\n\nnull"),
            Some("HTTP/1.1 200 OK\n\n"),
        ])
        .await;
        let plane = ApiOptions::plane(&base).build().unwrap();
        plane.terminate("b1", true).await.unwrap();
        let jam = ApiOptions::jamsocket("a", "s", "t")
            .api_url(&base)
            .build()
            .unwrap();
        jam.terminate("b1", false).await.unwrap();
        let seen = seen.lock().unwrap().clone();
        assert!(
            seen[0].starts_with("POST /ctrl/b/b1/hard-terminate "),
            "{}",
            seen[0]
        );
        assert!(
            seen[1].starts_with("POST /v2/backend/b1/terminate "),
            "{}",
            seen[1]
        );
        assert!(seen[1].ends_with(r#"{"hard":false}"#));
    })
    .await;
}
