//! A JSTP client that keeps its session through a server restart and a failover to a second
//! node (spec §6.3, restore path B: the servers share a session storage).
//!
//! ```text
//! cargo run --example jstp_resilient_client                            # in-memory storage
//! cargo run --example jstp_resilient_client -- --redis redis://127.0.0.1:6379
//! ```
//!
//! It starts its own servers in this process: node A, then (after A is restarted on the same
//! port) node B. Both share one storage: a `MemoryStorage` (clones share its sessions) or,
//! with `--redis`, Redis (as separate processes would, e.g. `connkit jstp serve --demo
//! --session-storage redis://…`). The client knows both endpoints
//! (`fallback_endpoints`) and reconnects on its own; calls made while no server is up are
//! buffered and answered after the resume, and the session id never changes.

use std::sync::Arc;
use std::time::Duration;

use connkit::core::Endpoint;
use connkit::jstp::storage::{MemoryStorage, RedisStorage, SessionStorageProvider};
use connkit::jstp::{
    Application, Client, ClientOptions, ConnectionEvent, Interface, Reconnect, Server, ServerEvent,
    ServerOptions, Value,
};
use futures_util::StreamExt;
use tokio::time::Instant;

type BoxError = Box<dyn std::error::Error + Send + Sync>;

fn app(node: &'static str) -> Application {
    Application::new("calc", connkit::jstp::semver::Version::new(1, 0, 0)).interface(
        "calculator",
        Interface::new()
            .method("add", |_ctx, (a, b): (f64, f64)| async move { Ok(a + b) })
            .method("node", move |_ctx, (): ()| async move { Ok(node) }),
    )
}

/// One storage for every node: clones of one `MemoryStorage`, or one Redis connection each.
enum Storage {
    Memory(MemoryStorage),
    Redis(String),
}

impl Storage {
    async fn options(&self, node: &'static str) -> Result<ServerOptions, BoxError> {
        let opts = ServerOptions::new().application(app(node));
        Ok(match self {
            Storage::Memory(m) => opts.session_storage(m.clone()),
            Storage::Redis(url) => opts.session_storage(RedisStorage::connect(url).await?),
        })
    }
}

async fn start(
    storage: &Storage,
    node: &'static str,
    endpoint: &Endpoint,
) -> Result<Server, BoxError> {
    let server = storage
        .options(node)
        .await?
        .listen([endpoint.clone()])
        .await?;
    let mut events = server.events();
    tokio::spawn(async move {
        while let Some(Ok(ev)) = events.next().await {
            match ev {
                ServerEvent::Connect { client } => {
                    println!("      [{node}] new session {}", client.session_id());
                }
                ServerEvent::Reconnect { client } => {
                    println!("      [{node}] session {} resumed", client.session_id());
                }
                _ => {}
            }
        }
    });
    Ok(server)
}

/// A free loopback port for a node that starts later.
fn free_endpoint() -> Result<Endpoint, BoxError> {
    let port = std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port();
    Ok(format!("tcp://127.0.0.1:{port}").parse()?)
}

async fn add(client: &Client, a: i32, b: i32) -> Result<Value, BoxError> {
    let r = client
        .call("calculator", "add", [Value::from(a), Value::from(b)])
        .await?;
    Ok(r.into_iter().next().unwrap_or(Value::Undefined))
}

async fn which_node(client: &Client) -> Result<String, BoxError> {
    let r = client.call("calculator", "node", [] as [Value; 0]).await?;
    Ok(r.first().and_then(Value::as_str).unwrap_or("?").to_owned())
}

/// Calls made while no server is up: they wait in the session buffer.
fn offline_calls(client: &Client) -> tokio::task::JoinHandle<Result<Vec<Value>, BoxError>> {
    let client = client.clone();
    tokio::spawn(async move {
        let mut out = Vec::new();
        for (a, b) in [(10, 20), (30, 40)] {
            let c = client.clone();
            out.push(tokio::spawn(async move { add(&c, a, b).await }));
        }
        let mut results = Vec::new();
        for h in out {
            results.push(h.await??);
        }
        Ok(results)
    })
}

/// Waits for the calls made while offline and shows where the session continued.
async fn report_resumed(
    client: &Client,
    pending: tokio::task::JoinHandle<Result<Vec<Value>, BoxError>>,
    session: &str,
    stamp: &dyn Fn() -> String,
) -> Result<(), BoxError> {
    let results = pending.await??;
    println!(
        "{} offline calls answered: 10 + 20 = {}, 30 + 40 = {}",
        stamp(),
        results[0],
        results[1]
    );
    println!(
        "{} now on node {}, session {}",
        stamp(),
        which_node(client).await?,
        client.session_id()
    );
    assert_eq!(client.session_id(), session, "the same session");
    Ok(())
}

#[tokio::main]
async fn main() -> Result<(), BoxError> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let storage = match args.as_slice() {
        [] => Storage::Memory(MemoryStorage::new()),
        [flag, url] if flag == "--redis" => {
            // Fail early, with a clear message, when Redis is not there.
            let probe = RedisStorage::connect(url).await?;
            probe.get("probe").await?;
            Storage::Redis(url.clone())
        }
        _ => return Err("usage: jstp_resilient_client [--redis redis://HOST:PORT]".into()),
    };
    let t0 = Instant::now();
    let stamp = move || format!("{:>5} ms", t0.elapsed().as_millis());

    let a_endpoint: Endpoint = "tcp://127.0.0.1:0".parse()?;
    let a = start(&storage, "A", &a_endpoint).await?;
    let a_endpoint = a.endpoints()[0].clone();
    let b_endpoint = free_endpoint()?;
    println!(
        "{} node A on {a_endpoint}; node B will be on {b_endpoint}",
        stamp()
    );

    let client = ClientOptions::new()
        .reconnect(
            Reconnect::new()
                .initial_delay(Duration::from_millis(100))
                .max_delay(Duration::from_millis(400))
                .jitter(Duration::ZERO),
        )
        .fallback_endpoints([b_endpoint.clone()])
        .connect(&a_endpoint, "calc")
        .await?;
    let session = client.session_id().to_owned();
    println!("{} client connected, session {session}", stamp());
    let mut events = client.events();
    let stamp2 = Arc::new(stamp);
    let s = Arc::clone(&stamp2);
    tokio::spawn(async move {
        while let Some(Ok(ev)) = events.next().await {
            match ev {
                ConnectionEvent::Disconnected => println!("{} client: disconnected", s()),
                ConnectionEvent::ReconnectAttempt { attempt } => {
                    println!("{} client: reconnect attempt {attempt}", s());
                }
                ConnectionEvent::Restored { replayed, .. } => {
                    println!(
                        "{} client: session restored, {replayed} message(s) replayed",
                        s()
                    );
                }
                _ => {}
            }
        }
    });
    let stamp = stamp2;

    println!(
        "{} 1 + 2 = {} (on node {})",
        stamp(),
        add(&client, 1, 2).await?,
        which_node(&client).await?
    );

    // 1. Node A restarts: stopped (its sessions saved), calls made meanwhile, started again
    //    on the same port with the same storage.
    println!("{} --- node A stops", stamp());
    a.close().await;
    let pending = offline_calls(&client);
    tokio::time::sleep(Duration::from_millis(300)).await;
    println!("{} --- node A starts again", stamp());
    let a = start(&storage, "A", &a_endpoint).await?;
    report_resumed(&client, pending, &session, &*stamp).await?;

    // 2. Failover: node B comes up, node A goes away for good (dropped at once).
    println!("{} --- node B starts; node A goes away", stamp());
    let b = start(&storage, "B", &b_endpoint).await?;
    drop(a);
    let pending = offline_calls(&client);
    report_resumed(&client, pending, &session, &*stamp).await?;
    println!("{} 3 + 4 = {}", stamp(), add(&client, 3, 4).await?);

    client.close().await;
    b.close().await;
    println!(
        "{} done: one session through a restart and a failover",
        stamp()
    );
    Ok(())
}
