//! Loopback TCP tests: a real `connkit_core` transport under the supervisor, real sockets on
//! ephemeral ports, each test under a hard timeout.
//!
//! - the server closes the connection → `Close`, `Offline`, `Reconnect`, `Connect`;
//! - a refused port is retried with the configured backoff, then connects once listening;
//! - a peer that stops answering (black-holed by the fault proxy) is detected by the
//!   keepalive and replaced;
//! - a connection reset is reconnected.

use std::time::{Duration, Instant};

use connkit_core::Endpoint;
use connkit_core::transport::{MessageSender, TransportOptions, connect, listen};
use connkit_reconnect::{
    Attempt, CancellationToken, ConnId, Connector, Error, ErrorKind, Event, EventStream, Jitter,
    Options, OptionsBuilder, State, Supervisor,
};
use connkit_testkit::{FaultProxy, within};
use futures_util::StreamExt;
use tokio::sync::mpsc;

/// One connection: its sender, and a token that stops its reader (which drops the
/// receiving half, closing the socket at once).
#[derive(Debug, Clone)]
struct TcpConn {
    tx: MessageSender,
    stop: CancellationToken,
}

/// Dials `endpoint`; every inbound message is a heartbeat, and messages other than the
/// echoed pings are forwarded to `inbound` with the connection's id.
#[derive(Debug)]
struct TcpConnector {
    endpoint: Endpoint,
    opts: TransportOptions,
    inbound: mpsc::UnboundedSender<(ConnId, String)>,
}

impl Connector for TcpConnector {
    type Conn = TcpConn;

    async fn connect(&self, attempt: Attempt) -> Result<TcpConn, Error> {
        let conn = tokio::select! {
            r = connect(&self.endpoint, &self.opts) => r?,
            () = attempt.cancel_token().cancelled() => {
                return Err(Error::new(ErrorKind::Cancelled, "connect cancelled"));
            }
        };
        let (tx, mut rx) = conn.split();
        let stop = CancellationToken::new();
        let feed = attempt.feed();
        let inbound = self.inbound.clone();
        let reader_stop = stop.clone();
        tokio::spawn(async move {
            loop {
                tokio::select! {
                    () = reader_stop.cancelled() => break,
                    msg = rx.recv() => match msg {
                        Some(Ok(msg)) => {
                            feed.heartbeat();
                            if msg != "ping" {
                                let text = String::from_utf8_lossy(&msg).into_owned();
                                let _ = inbound.send((feed.id(), text));
                            }
                        }
                        Some(Err(e)) => {
                            feed.error(e);
                            break;
                        }
                        None => {
                            feed.close(false);
                            break;
                        }
                    },
                }
            }
        });
        Ok(TcpConn { tx, stop })
    }

    async fn close(&self, conn: TcpConn, force: bool) {
        if !force {
            conn.tx.close().await;
            let _ = tokio::time::timeout(Duration::from_secs(1), conn.tx.closed()).await;
        }
        conn.stop.cancel();
    }

    async fn ping(&self, conn: &TcpConn) -> Result<(), Error> {
        conn.tx.send("ping").await
    }
}

/// Echoes every message; a `quit` message makes the server close that connection.
async fn echo_server() -> Endpoint {
    let listener = listen(&Endpoint::tcp("127.0.0.1", 0), &TransportOptions::new())
        .await
        .unwrap();
    let endpoint = listener.local_endpoint().clone();
    tokio::spawn(async move {
        while let Ok(incoming) = listener.accept().await {
            tokio::spawn(async move {
                let Ok(conn) = incoming.establish().await else {
                    return;
                };
                let (tx, mut rx) = conn.split();
                while let Some(Ok(msg)) = rx.recv().await {
                    if msg == "quit" || tx.send(msg).await.is_err() {
                        break;
                    }
                }
            });
        }
    });
    endpoint
}

struct Client {
    sup: Supervisor<TcpConn>,
    events: EventStream<Event>,
    inbound: mpsc::UnboundedReceiver<(ConnId, String)>,
}

fn client(endpoint: Endpoint, options: OptionsBuilder) -> Client {
    let (tx, inbound) = mpsc::unbounded_channel();
    let connector = TcpConnector {
        endpoint,
        opts: TransportOptions::new().connect_timeout(Duration::from_secs(5)),
        inbound: tx,
    };
    let sup = Supervisor::new(connector, options.build().unwrap());
    let events = sup.events();
    sup.start();
    Client {
        sup,
        events,
        inbound,
    }
}

fn quick() -> OptionsBuilder {
    Options::builder()
        .initial_delay(Duration::from_millis(50))
        .max_delay(Duration::from_millis(400))
        .jitter(Jitter::None)
        .keepalive(Duration::ZERO)
        .connect_timeout(Duration::from_secs(5))
}

impl Client {
    async fn next(&mut self) -> Event {
        self.events.next().await.unwrap().unwrap()
    }

    /// Events up to and including the first that matches `done`.
    async fn until(&mut self, done: impl Fn(&Event) -> bool) -> Vec<Event> {
        let mut seen = Vec::new();
        loop {
            let e = self.next().await;
            let stop = done(&e);
            seen.push(e);
            if stop {
                return seen;
            }
        }
    }

    /// Send `text` on the current connection and wait for its echo.
    async fn round_trip(&mut self, text: &str) -> ConnId {
        let (id, conn) = self.sup.connected().await.unwrap();
        conn.tx.send(text.to_owned()).await.unwrap();
        let (from, echoed) = self.inbound.recv().await.unwrap();
        assert_eq!((from, echoed.as_str()), (id, text));
        id
    }
}

fn is_connect(e: &Event) -> bool {
    matches!(e, Event::Connect { .. })
}

fn names(events: &[Event]) -> Vec<String> {
    events.iter().map(ToString::to_string).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn server_close_is_reconnected() {
    within(20, async {
        let mut c = client(echo_server().await, quick().stable_for(Duration::ZERO));
        assert_eq!(c.next().await.to_string(), "connect #1");
        let first = c.round_trip("hello").await;
        // The server closes the connection.
        c.sup.current().unwrap().tx.send("quit").await.unwrap();
        let events = c.until(is_connect).await;
        assert_eq!(
            names(&events),
            [
                "close #1",
                "offline",
                "reconnect attempt 1 in 0ns",
                "connect #2"
            ]
        );
        let second = c.round_trip("again").await;
        assert_ne!(first, second);
        c.sup.end(false).await;
        assert_eq!(
            names(&c.until(|e| *e == Event::End).await),
            ["close #2", "end"]
        );
    })
    .await;
}

#[tokio::test]
async fn refused_port_is_retried_with_backoff() {
    within(20, async {
        let server = echo_server().await;
        let upstream = format!("127.0.0.1:{}", server.port().unwrap())
            .parse()
            .unwrap();
        let proxy = FaultProxy::start(upstream).await.unwrap();
        proxy.stop_listening().await;
        let endpoint = Endpoint::tcp("127.0.0.1", proxy.addr().port());
        let started = Instant::now();
        let mut c = client(endpoint, quick());
        // Four refused attempts, 50, 50 and 100 ms apart (fibonacci, no jitter).
        let mut events = Vec::new();
        while events
            .iter()
            .filter(|e| matches!(e, Event::Error(_)))
            .count()
            < 4
        {
            events.push(c.next().await);
        }
        assert!(started.elapsed() >= Duration::from_millis(200));
        proxy.start_listening().await.unwrap();
        events.extend(c.until(is_connect).await);
        let errors: Vec<ErrorKind> = events
            .iter()
            .filter_map(|e| match e {
                Event::Error(e) => Some(e.kind()),
                _ => None,
            })
            .collect();
        assert!(errors.len() >= 4);
        assert!(
            errors.iter().all(|k| *k == ErrorKind::ConnectFailed),
            "{errors:?}"
        );
        let reconnects: Vec<(u32, Duration)> = events
            .iter()
            .filter_map(|e| match e {
                Event::Reconnect { attempt, delay } => Some((*attempt, *delay)),
                _ => None,
            })
            .collect();
        let ms = Duration::from_millis;
        let expected = [
            (2, ms(50)),
            (3, ms(50)),
            (4, ms(100)),
            (5, ms(150)),
            (6, ms(250)),
            (7, ms(400)),
            (8, ms(400)),
        ];
        assert_eq!(reconnects[..], expected[..reconnects.len()]);
        assert!(matches!(events[0], Event::Error(_)), "{events:?}");
        assert_eq!(events[1], Event::Offline);
        c.round_trip("through the proxy").await;
    })
    .await;
}

#[tokio::test]
async fn refused_port_gives_up_after_max_attempts() {
    within(20, async {
        let unused = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = unused.local_addr().unwrap().port();
        drop(unused);
        let mut c = client(Endpoint::tcp("127.0.0.1", port), quick().max_attempts(3));
        let events = c.until(|e| matches!(e, Event::GaveUp { .. })).await;
        assert_eq!(
            events
                .iter()
                .map(|e| match e {
                    Event::Error(e) => format!("error {:?}", e.kind()),
                    other => other.to_string(),
                })
                .collect::<Vec<_>>(),
            [
                "error ConnectFailed",
                "offline",
                "reconnect attempt 2 in 50ms",
                "error ConnectFailed",
                "reconnect attempt 3 in 50ms",
                "error ConnectFailed",
                "gave up after 3 attempts",
            ]
        );
        assert_eq!(c.sup.current_state(), State::GaveUp);
    })
    .await;
}

#[tokio::test]
async fn keepalive_detects_a_server_that_stops_answering() {
    within(20, async {
        let server = echo_server().await;
        let upstream = format!("127.0.0.1:{}", server.port().unwrap())
            .parse()
            .unwrap();
        let proxy = FaultProxy::start(upstream).await.unwrap();
        let endpoint = Endpoint::tcp("127.0.0.1", proxy.addr().port());
        let options = quick()
            .keepalive(Duration::from_millis(200))
            .keepalive_timeout(Duration::from_millis(300))
            .stable_for(Duration::ZERO);
        let mut c = client(endpoint, options);
        assert_eq!(c.next().await.to_string(), "connect #1");
        // Pings are answered: the connection survives several keepalive periods.
        tokio::time::sleep(Duration::from_millis(800)).await;
        c.round_trip("alive").await;
        assert_eq!(
            c.sup.current_state(),
            State::Connected {
                id: c.sup.current_with_id().unwrap().0
            }
        );
        // Black hole: the socket stays open, nothing comes back.
        proxy.pause();
        let paused_at = Instant::now();
        let events = c.until(|e| matches!(e, Event::Close { .. })).await;
        let waited = paused_at.elapsed();
        proxy.resume();
        let Event::Error(e) = &events[0] else {
            panic!("expected the keepalive error first: {events:?}");
        };
        assert_eq!(e.kind(), ErrorKind::TimedOut);
        assert!(e.to_string().contains("keepalive"), "{e}");
        assert_eq!(events[1].to_string(), "close #1 with error");
        // Nothing heard for keepalive + timeout = 500 ms (counted from the last message,
        // which came before the pause).
        assert!(
            waited >= Duration::from_millis(400) && waited <= Duration::from_secs(2),
            "{waited:?}"
        );
        let events = c.until(is_connect).await;
        assert_eq!(
            names(&events),
            ["offline", "reconnect attempt 1 in 0ns", "connect #2"]
        );
        c.round_trip("replaced").await;
        assert!(proxy.accepted() >= 2);
        c.sup.end(true).await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connection_reset_is_reconnected() {
    within(20, async {
        let server = echo_server().await;
        let upstream = format!("127.0.0.1:{}", server.port().unwrap())
            .parse()
            .unwrap();
        let proxy = FaultProxy::start(upstream).await.unwrap();
        let endpoint = Endpoint::tcp("127.0.0.1", proxy.addr().port());
        let mut c = client(endpoint, quick().stable_for(Duration::ZERO));
        c.round_trip("before").await;
        assert_eq!(c.next().await.to_string(), "connect #1");
        proxy.cut_all();
        let events = c.until(is_connect).await;
        // A reset surfaces as a read error or as end of stream, depending on timing.
        let close = events
            .iter()
            .find(|e| matches!(e, Event::Close { .. }))
            .unwrap();
        assert!(matches!(close, Event::Close { id, .. } if id.get() == 1));
        assert_eq!(events.last().unwrap().to_string(), "connect #2");
        c.round_trip("after").await;
        // Nothing was left open: the proxy sees just the new connection.
        tokio::time::sleep(Duration::from_millis(100)).await;
        assert_eq!(proxy.connections(), 1);
    })
    .await;
}
