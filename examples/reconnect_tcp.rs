//! A line-echo TCP client kept alive across server restarts by `connkit::reconnect`.
//!
//! ```text
//! cargo run --example reconnect_tcp                  # demo: restarts its own server twice
//! cargo run --example reconnect_tcp -- 127.0.0.1:7000  # any line-echo server; Ctrl-C ends
//! ```
//!
//! (`socat TCP-LISTEN:7000,reuseaddr,fork EXEC:cat` is such a server: stop and restart it
//! while the client runs.) Every lifecycle event is printed with the time it happened;
//! `RUST_LOG=connkit_reconnect=debug` shows the library's own traces as well.
//!
//! The connector dials with `connkit::core::transport` (one message per `\n`-terminated
//! line). Its reader task reports every inbound line as a heartbeat and the end of the
//! stream as a close; the keepalive pings with a `ping` line, which the echo server
//! returns.

use std::time::Duration;

use connkit::core::Endpoint;
use connkit::core::transport::{MessageSender, TransportOptions, connect, listen};
use connkit::reconnect::{
    Attempt, CancellationToken, Connector, Error, ErrorKind, Event, Jitter, Options, Supervisor,
};
use futures_util::StreamExt;
use tokio::task::JoinSet;
use tokio::time::{Instant, sleep};

/// One connection: the sending half, and a token that stops its reader.
#[derive(Debug, Clone)]
struct LineConn {
    tx: MessageSender,
    stop: CancellationToken,
}

#[derive(Debug)]
struct LineConnector {
    endpoint: Endpoint,
    transport: TransportOptions,
    started: Instant,
}

impl Connector for LineConnector {
    type Conn = LineConn;

    async fn connect(&self, attempt: Attempt) -> Result<LineConn, Error> {
        let conn = tokio::select! {
            r = connect(&self.endpoint, &self.transport) => r?,
            () = attempt.cancel_token().cancelled() => {
                return Err(Error::new(ErrorKind::Cancelled, "connect cancelled"));
            }
        };
        let (tx, mut rx) = conn.split();
        let stop = CancellationToken::new();
        let (feed, reader_stop, started) = (attempt.feed(), stop.clone(), self.started);
        tokio::spawn(async move {
            loop {
                tokio::select! {
                    () = reader_stop.cancelled() => break,
                    line = rx.recv() => match line {
                        Some(Ok(line)) => {
                            feed.heartbeat();
                            if line != "ping" {
                                let line = String::from_utf8_lossy(&line);
                                println!("{}   echo on {}: {line}", stamp(started), feed.id());
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
        Ok(LineConn { tx, stop })
    }

    async fn close(&self, conn: LineConn, force: bool) {
        if !force {
            conn.tx.close().await;
            let _ = tokio::time::timeout(Duration::from_secs(1), conn.tx.closed()).await;
        }
        conn.stop.cancel();
    }

    async fn ping(&self, conn: &LineConn) -> Result<(), Error> {
        conn.tx.send("ping").await
    }
}

fn stamp(started: Instant) -> String {
    format!("[{:>6.2}s]", started.elapsed().as_secs_f64())
}

fn line_transport() -> TransportOptions {
    TransportOptions::new()
        .delimiter(b"\n")
        .connect_timeout(Duration::from_secs(5))
}

/// An in-process line-echo server. Dropping the `JoinSet` stops it: the listener and every
/// connection close, as when the server process dies.
async fn echo_server(endpoint: &Endpoint) -> Result<JoinSet<()>, Error> {
    let listener = listen(endpoint, &line_transport()).await?;
    let mut tasks = JoinSet::new();
    tasks.spawn(async move {
        let mut conns = JoinSet::new();
        while let Ok(incoming) = listener.accept().await {
            conns.spawn(async move {
                let Ok(conn) = incoming.establish().await else {
                    return;
                };
                let (tx, mut rx) = conn.split();
                while let Some(Ok(line)) = rx.recv().await {
                    if tx.send(line).await.is_err() {
                        break;
                    }
                }
            });
        }
    });
    Ok(tasks)
}

/// Sends a numbered line every 400 ms for `period` on whatever connection is current.
async fn chat(sup: &Supervisor<LineConn>, period: Duration, n: &mut u32) {
    let until = Instant::now() + period;
    while Instant::now() < until {
        if let Some((id, conn)) = sup.current_with_id() {
            *n += 1;
            if conn.tx.send(format!("line {n}")).await.is_ok() {
                sup.reschedule_ping(id);
            }
        }
        sleep(Duration::from_millis(400)).await;
    }
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .init();
    let started = Instant::now();
    let external = std::env::args().nth(1);

    // In demo mode, a server on an ephemeral port that we can restart on the same port.
    let (endpoint, mut server) = match &external {
        Some(addr) => (format!("tcp://{addr}").parse::<Endpoint>()?, None),
        None => {
            let first = listen(&Endpoint::tcp("127.0.0.1", 0), &line_transport()).await?;
            let endpoint = first.local_endpoint().clone();
            first.close();
            let server = echo_server(&endpoint).await?;
            (endpoint, Some(server))
        }
    };
    println!("{} client for {endpoint}", stamp(started));

    let options = Options::builder()
        .keepalive(Duration::from_secs(2))
        .keepalive_timeout(Duration::from_secs(3))
        .connect_timeout(Duration::from_secs(5))
        .initial_delay(Duration::from_millis(250))
        .max_delay(Duration::from_secs(2))
        .jitter(Jitter::Equal)
        .stable_for(Duration::from_secs(1))
        .build()?;
    let connector = LineConnector {
        endpoint: endpoint.clone(),
        transport: line_transport(),
        started,
    };
    let sup = Supervisor::new(connector, options);
    let mut events = sup.events();
    let printer = tokio::spawn(async move {
        while let Some(event) = events.next().await {
            match event {
                Ok(Event::Error(e)) => match std::error::Error::source(e.error()) {
                    Some(cause) => println!("{} event: error: {e} ({cause})", stamp(started)),
                    None => println!("{} event: error: {e}", stamp(started)),
                },
                Ok(event) => println!("{} event: {event}", stamp(started)),
                Err(lagged) => println!("{} {lagged}", stamp(started)),
            }
        }
    });
    sup.start();
    let mut n = 0;

    if external.is_some() {
        println!(
            "{} sending a line every 400 ms; Ctrl-C ends",
            stamp(started)
        );
        tokio::select! {
            () = async { loop { chat(&sup, Duration::from_secs(3600), &mut n).await } } => {}
            r = tokio::signal::ctrl_c() => r?,
        }
    } else {
        sup.connected().await?;
        chat(&sup, Duration::from_millis(1500), &mut n).await;
        for restart in 1..=2 {
            println!("{} --- stopping the server ({restart}/2)", stamp(started));
            drop(server.take());
            chat(&sup, Duration::from_millis(1500), &mut n).await;
            println!("{} --- starting the server again", stamp(started));
            server = Some(echo_server(&endpoint).await?);
            let (id, _) = sup.connected().await?;
            println!("{} --- back on connection {id}", stamp(started));
            chat(&sup, Duration::from_millis(1200), &mut n).await;
        }
    }

    sup.end(false).await;
    printer.await?;
    println!("{} done", stamp(started));
    Ok(())
}
