//! `SessionBackend` against a scripted HTTP/SSE server on loopback: lines split across
//! chunks, garbage, streams dropped midway, 404 and 500 answers, a stream that never says
//! `terminated`, both URL shapes. Every test runs under a hard timeout.

use connkit_core::backoff::{Backoff, Jitter};
use connkit_session::{BackendStatus, Error, Finished, SessionBackend, SessionBackendOptions};
use connkit_testkit::within;
use futures_util::StreamExt;
use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// What the server does with one stream request.
#[derive(Clone)]
enum Reply {
    /// 200, these chunks (a pause between each), then close.
    Close(Vec<&'static str>),
    /// 200, these chunks, then keep the connection open until the client goes.
    Hang(Vec<&'static str>),
    /// This status with an empty body.
    Status(u16),
}

#[derive(Default)]
struct Log {
    /// (path, Last-Event-ID) of every request, in order.
    requests: Vec<(String, Option<String>)>,
    /// Set when a hanging stream saw the client close.
    client_closed: usize,
}

struct Server {
    base: String,
    log: Arc<Mutex<Log>>,
}

impl Server {
    async fn start(status: &'static str, streams: Vec<Reply>) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let log = Arc::new(Mutex::new(Log::default()));
        let streams = Arc::new(Mutex::new(VecDeque::from(streams)));
        let l = log.clone();
        tokio::spawn(async move {
            loop {
                let Ok((sock, _)) = listener.accept().await else {
                    return;
                };
                let (log, streams) = (l.clone(), streams.clone());
                tokio::spawn(serve(sock, status, log, streams));
            }
        });
        Self { base, log }
    }

    fn stream_requests(&self) -> Vec<(String, Option<String>)> {
        self.log
            .lock()
            .unwrap()
            .requests
            .iter()
            .filter(|(p, _)| p.contains("stream"))
            .cloned()
            .collect()
    }
}

async fn serve(
    mut sock: TcpStream,
    status: &'static str,
    log: Arc<Mutex<Log>>,
    streams: Arc<Mutex<VecDeque<Reply>>>,
) {
    let mut head = Vec::new();
    let mut buf = [0u8; 1024];
    while !head.windows(4).any(|w| w == b"\r\n\r\n") {
        match sock.read(&mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(n) => head.extend_from_slice(&buf[..n]),
        }
    }
    let head = String::from_utf8_lossy(&head).to_string();
    let path = head.split_whitespace().nth(1).unwrap_or("").to_owned();
    let last_id = head
        .lines()
        .find_map(|l| {
            l.strip_prefix("last-event-id: ")
                .or_else(|| l.strip_prefix("Last-Event-ID: "))
        })
        .map(|s| s.trim().to_owned());
    log.lock().unwrap().requests.push((path.clone(), last_id));
    if !path.contains("stream") {
        let resp = format!(
            "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{status}",
            status.len()
        );
        let _ = sock.write_all(resp.as_bytes()).await;
        return;
    }
    let reply = streams
        .lock()
        .unwrap()
        .pop_front()
        .unwrap_or(Reply::Status(503));
    let (chunks, hang) = match reply {
        Reply::Status(code) => {
            let resp = format!(
                "HTTP/1.1 {code} Scripted\r\ncontent-length: 0\r\nconnection: close\r\n\r\n"
            );
            let _ = sock.write_all(resp.as_bytes()).await;
            return;
        }
        Reply::Close(c) => (c, false),
        Reply::Hang(c) => (c, true),
    };
    let headers = "HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ncache-control: no-cache\r\nconnection: close\r\n\r\n";
    if sock.write_all(headers.as_bytes()).await.is_err() {
        return;
    }
    for chunk in chunks {
        tokio::time::sleep(Duration::from_millis(15)).await;
        if sock.write_all(chunk.as_bytes()).await.is_err() || sock.flush().await.is_err() {
            return;
        }
    }
    if hang {
        // Wait for the client to hang up (read returns 0 or fails).
        let mut b = [0u8; 64];
        loop {
            match sock.read(&mut b).await {
                Ok(0) | Err(_) => break,
                Ok(_) => {}
            }
        }
        log.lock().unwrap().client_closed += 1;
    }
}

fn fast_options() -> SessionBackendOptions {
    SessionBackendOptions::new().backoff(
        Backoff::exponential()
            .initial_delay(Duration::from_millis(100))
            .max_delay(Duration::from_millis(400))
            .jitter(Jitter::None)
            .build()
            .unwrap(),
    )
}

const SCHEDULED_STATUS: &str = r#"{"status":"scheduled","time":1795295454629}"#;

#[tokio::test]
async fn split_lines_garbage_and_a_dropped_stream_resume_with_last_event_id() {
    within(20, async {
        let server = Server::start(
            SCHEDULED_STATUS,
            vec![
                Reply::Close(vec![
                    "da",
                    "ta: {\"status\":\"sched",
                    "uled\",\"time\":1}\nid: sche",
                    "duled\n\n",
                    "data: this is not json\n\n",
                    "garbage line without colon\n:\n\n",
                    "data: {\"status\":\"loading\",\"time\":2}\r\nid: loading\r\n\r\n",
                    "data: {\"status\":\"starting\",", // dropped midway
                ]),
                Reply::Hang(vec![
                    // A Jamsocket-style replay (no ids, ISO time) with an old state late.
                    "data:{\"status\":\"scheduled\",\"time\":\"2024-11-04T12:00:00.000Z\"}\n\n",
                    "data:{\"status\":\"starting\",\"time\":\"2024-11-04T12:00:01.000Z\"}\n\n",
                    "data:{\"status\":\"loading\",\"time\":\"2024-11-04T12:00:00.500Z\"}\n\n",
                    "data: {\"status\":\"waiting\",\"time\":4}\nid: waiting\n\n",
                    "data: {\"status\":\"ready\",\"time\":5}\nid: ready\n\n",
                    ":\n\n",
                    "data: {\"status\":\"terminated\",\"time\":6,\"termination_reason\":null,\"exit_error\":false}\nid: terminated\n\n",
                ]),
            ],
        )
        .await;
        let url = format!("{}/v2/backend/abc/status", server.base);
        let backend = fast_options().open_status_url(&url).unwrap();
        let states: Vec<_> = backend.statuses().collect().await;
        let names: Vec<String> = states.iter().map(|s| s.status.to_string()).collect();
        assert_eq!(names, ["scheduled", "loading", "starting", "waiting", "ready", "terminated"]);
        assert!(backend.is_terminated());
        assert!(!backend.is_ready(), "terminated clears ready");
        let last = backend.terminated().await.unwrap();
        assert_eq!(last.exit_error, Some(false));
        let streams = server.stream_requests();
        assert_eq!(
            streams,
            [
                ("/v2/backend/abc/status/stream".to_string(), None),
                ("/v2/backend/abc/status/stream".to_string(), Some("loading".to_string())),
            ]
        );
        // The client hangs up after `terminated`, although the server keeps the stream open.
        let t0 = Instant::now();
        while server.log.lock().unwrap().client_closed == 0 {
            assert!(t0.elapsed() < Duration::from_secs(5), "the client kept the stream open");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await;
}

#[tokio::test]
async fn a_404_stream_fails_at_once_instead_of_looping() {
    within(10, async {
        let server = Server::start(
            SCHEDULED_STATUS,
            vec![Reply::Status(404), Reply::Status(404)],
        )
        .await;
        // A raw Plane status URL with the wrong dialect forced: the route does not exist.
        let url = format!("{}/pub/b/x/status", server.base);
        let backend = fast_options()
            .dialect(connkit_session::StreamDialect::Jamsocket)
            .open_status_url(&url)
            .unwrap();
        let err = backend.ready().await.unwrap_err();
        assert_eq!(err.http_status(), Some(404), "{err}");
        assert!(matches!(backend.finished().await, Finished::Failed(_)));
        tokio::time::sleep(Duration::from_millis(300)).await;
        assert_eq!(server.stream_requests().len(), 1, "no retry after a 404");
    })
    .await;
}

#[tokio::test]
async fn plane_urls_and_500s_are_retried_with_backoff() {
    within(10, async {
        let server = Server::start(
            SCHEDULED_STATUS,
            vec![
                Reply::Status(500),
                Reply::Status(500),
                Reply::Hang(vec![
                    "data: {\"status\":\"ready\",\"time\":5}\nid: ready\n\n",
                ]),
            ],
        )
        .await;
        let url = format!("{}/pub/b/gvhhb3t3oc371t/status", server.base);
        let t0 = Instant::now();
        let backend = fast_options().open_status_url(&url).unwrap();
        backend.ready().await.unwrap();
        // Backoff: attempt 1 at once, then 100 ms, then 200 ms.
        assert!(
            t0.elapsed() >= Duration::from_millis(300),
            "{:?}",
            t0.elapsed()
        );
        let streams = server.stream_requests();
        assert_eq!(streams.len(), 3);
        assert!(
            streams
                .iter()
                .all(|(p, _)| p == "/pub/b/gvhhb3t3oc371t/status-stream")
        );
        assert_eq!(backend.current().unwrap().status, BackendStatus::Ready);
        backend.destroy();
    })
    .await;
}

#[tokio::test]
async fn destroy_resolves_waiters_and_closes_a_stream_that_never_terminates() {
    within(10, async {
        let server = Server::start(
            SCHEDULED_STATUS,
            vec![Reply::Hang(vec![
                "data: {\"status\":\"loading\",\"time\":2}\n\n",
            ])],
        )
        .await;
        let url = format!("{}/v2/backend/abc/status", server.base);
        let backend = SessionBackend::from_status_url(&url).unwrap();
        let ready = tokio::spawn({
            let b = backend.clone();
            async move { b.ready().await }
        });
        let terminated = tokio::spawn({
            let b = backend.clone();
            async move { b.terminated().await }
        });
        let mut states = backend.statuses();
        // The status request said `scheduled`; the stream's `loading` supersedes it.
        assert_eq!(states.next().await.unwrap().status, BackendStatus::Loading);
        backend.destroy();
        assert!(matches!(ready.await.unwrap(), Err(Error::Destroyed)));
        assert!(matches!(terminated.await.unwrap(), Err(Error::Destroyed)));
        assert!(states.next().await.is_none(), "the stream ends");
        let t0 = Instant::now();
        while server.log.lock().unwrap().client_closed == 0 {
            assert!(
                t0.elapsed() < Duration::from_secs(5),
                "the stream was not closed"
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        assert!(matches!(backend.status().await, Err(Error::Destroyed)));
    })
    .await;
}

#[tokio::test]
async fn a_server_that_goes_away_ends_in_gave_up_not_silence() {
    within(10, async {
        // Bind and drop: connections to this port are refused.
        let port = TcpListener::bind("127.0.0.1:0")
            .await
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let url = format!("http://127.0.0.1:{port}/v2/backend/abc/status");
        let backend = SessionBackendOptions::new()
            .status_retry_delay(Duration::from_millis(10))
            .backoff(
                Backoff::constant(Duration::from_millis(50))
                    .max_attempts(3)
                    .jitter(Jitter::None)
                    .build()
                    .unwrap(),
            )
            .open_status_url(&url)
            .unwrap();
        match backend.ready().await {
            Err(Error::GaveUp {
                attempts: 3,
                last: Some(last),
            }) => {
                assert!(matches!(*last, Error::Request { .. }), "{last:?}");
            }
            other => panic!("{other:?}"),
        }
        // status() tries twice and reports the connection failure.
        let err = backend.status().await.unwrap_err();
        assert!(err.is_retryable(), "{err}");
    })
    .await;
}

#[tokio::test]
async fn a_bad_status_url_fails_without_panicking() {
    within(5, async {
        assert!(matches!(
            SessionBackend::from_status_url("ftp://x/y"),
            Err(Error::InvalidUrl { .. })
        ));
        let response: connkit_session::ConnectResponse =
            serde_json::from_value(serde_json::json!({
                "backend_id": "x", "spawned": true, "status": "scheduled", "token": "t",
                "url": "http://x/", "status_url": "not a url"
            }))
            .unwrap();
        let backend = SessionBackend::new(&response);
        assert!(matches!(
            backend.ready().await,
            Err(Error::InvalidUrl { .. })
        ));
        assert_eq!(backend.backend_id(), Some("x"));
    })
    .await;
}
