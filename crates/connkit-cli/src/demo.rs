//! `connkit demo`: a guided tour of every protocol, on loopback only, with no set-up.
//!
//! Each step prints what it does and what it saw; the summary lists every step with its
//! outcome, and the exit code is 0 only if all of them worked.

use crate::Failure;
use connkit::Endpoint;
use connkit::ipc::{
    ClientEvent, ClientOptions as IpcClientOptions, ServerOptions as IpcServerOptions,
};
use connkit::jstp::storage::MemoryStorage;
use connkit::jstp::{ClientOptions, ConnectionState, Reconnect, Server, ServerOptions, Value};
use connkit::session::dev::DevServerOptions;
use connkit::session::{ConnectRequest, SessionBackend};
use futures_util::StreamExt;
use serde_json::json;
use std::future::Future;
use std::io::IsTerminal;
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

type StepResult = Result<String, String>;

struct Tour {
    results: Vec<(&'static str, StepResult, Duration)>,
    pretty: bool,
}

impl Tour {
    fn say(&self, line: &str) {
        if self.pretty {
            println!("    \x1b[2m{line}\x1b[0m");
        } else {
            println!("    {line}");
        }
    }

    async fn step<F: Future<Output = StepResult>>(&mut self, name: &'static str, f: F) {
        println!("▶ {name}");
        let started = Instant::now();
        let outcome = match tokio::time::timeout(Duration::from_secs(60), f).await {
            Ok(r) => r,
            Err(_) => Err("timed out after 60 s".into()),
        };
        let took = started.elapsed();
        match &outcome {
            Ok(detail) => println!(
                "  {} {name}: {detail} ({} ms)",
                self.mark(true),
                took.as_millis()
            ),
            Err(e) => println!("  {} {name}: {e}", self.mark(false)),
        }
        self.results.push((name, outcome, took));
    }

    fn mark(&self, ok: bool) -> &'static str {
        match (ok, self.pretty) {
            (true, true) => "\x1b[32m✔\x1b[0m",
            (false, true) => "\x1b[31m✘\x1b[0m",
            (true, false) => "ok",
            (false, false) => "FAILED",
        }
    }
}

fn err(e: impl std::fmt::Display) -> String {
    e.to_string()
}

pub(crate) async fn run() -> Result<(), Failure> {
    let dir = tempdir().map_err(|e| Failure::runtime(format!("cannot make a temp dir: {e}")))?;
    let mut tour = Tour {
        results: Vec::new(),
        pretty: std::io::stdout().is_terminal(),
    };
    println!("connkit demo — every protocol on loopback\n");

    let jstp_server = Arc::new(OnceLock::new());
    let unix = dir.join("jstp.sock");
    tour.step("JSTP server on tcp + ws + unix", {
        let slot = Arc::clone(&jstp_server);
        let unix = unix.clone();
        async move {
            let eps = vec![
                "tcp://127.0.0.1:0".parse::<Endpoint>().map_err(err)?,
                "ws://127.0.0.1:0/".parse::<Endpoint>().map_err(err)?,
                Endpoint::unix(&unix),
            ];
            let server = ServerOptions::new()
                .application(crate::jstp::demo_app(Arc::clone(&slot)))
                .listen(eps)
                .await
                .map_err(err)?;
            let bound: Vec<String> = server.endpoints().iter().map(ToString::to_string).collect();
            let _ = slot.set(server);
            Ok(format!("app calc 1.0.0 on {}", bound.join(", ")))
        }
    })
    .await;

    let endpoints: Vec<Endpoint> = jstp_server
        .get()
        .map(|s| s.endpoints().to_vec())
        .unwrap_or_default();
    for ep in endpoints {
        let name: &'static str = match ep.scheme().as_str() {
            "tcp" => "JSTP client over tcp: calls, an error, events, inspect",
            "ws" => "JSTP client over ws: calls, an error, events, inspect",
            _ => "JSTP client over unix: calls, an error, events, inspect",
        };
        let says = std::sync::Mutex::new(Vec::new());
        tour.step(name, async {
            let client = ClientOptions::new()
                .connect(&ep, "calc@^1.0.0")
                .await
                .map_err(err)?;
            let conn = client.connection();
            let sum = conn
                .call("calculator", "add", [Value::from(2), Value::from(3)])
                .await
                .map_err(err)?;
            let div = conn
                .call("calculator", "divide", [Value::from(1), Value::from(0)])
                .await;
            let remote = match &div {
                Err(e) => match e.remote() {
                    Some(r) => format!("{} {}", r.code(), r.text_message()),
                    None => return Err(format!("divide by zero failed locally: {e}")),
                },
                Ok(v) => return Err(format!("divide by zero gave {v:?}")),
            };
            let mut ticks = conn.remote_events(Some("calculator"));
            let n = conn
                .call("calculator", "ticks", [Value::from(3)])
                .await
                .map_err(err)?;
            let mut got = Vec::new();
            while got.len() < 3 {
                match ticks.next().await {
                    Some(Ok(ev)) => {
                        got.push(ev.args.first().cloned().unwrap_or_default().to_string())
                    }
                    Some(Err(lag)) => return Err(lag.to_string()),
                    None => return Err("the event stream ended".into()),
                }
            }
            let proxy = conn.inspect("calculator").await.map_err(err)?;
            if let Ok(mut s) = says.lock() {
                s.push(format!("add(2, 3) → {}", Value::Array(sum)));
                s.push(format!("divide(1, 0) → remote error {remote}"));
                s.push(format!(
                    "ticks(3) → {} with events tick {}",
                    Value::Array(n),
                    got.join(", ")
                ));
                s.push(format!(
                    "inspect calculator → {}",
                    proxy.methods().join(", ")
                ));
            }
            client.connection().close().await;
            Ok(format!("session {}", conn.session_id()))
        })
        .await;
        for line in says.lock().map(|s| s.clone()).unwrap_or_default() {
            tour.say(&line);
        }
    }
    if let Some(s) = jstp_server.get() {
        s.close().await;
    }
    jstp_restart(&mut tour).await;

    // IPC: a server, two clients, a broadcast, a restart, the clients reconnecting.
    let sock = dir.join("ipc.sock");
    let says = std::sync::Mutex::new(Vec::new());
    tour.step(
        "IPC: server, two clients, broadcast, restart, reconnect",
        async {
            let server = IpcServerOptions::new(&sock).listen().await.map_err(err)?;
            let mut clients = Vec::new();
            for _ in 0..2 {
                let c = IpcClientOptions::new(&sock)
                    .reconnect_delay(Duration::from_millis(50))
                    .retry_delay(Duration::from_millis(50))
                    .connect()
                    .await
                    .map_err(err)?;
                let news = c.subscribe(Some("news"));
                let events = c.events();
                clients.push((c, news, events));
            }
            while server.clients().len() < 2 {
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
            let n = server
                .broadcast("news", json!({"headline": "hello, both"}))
                .await
                .map_err(err)?;
            for (_, news, _) in &mut clients {
                let m = news.recv().await.ok_or("no broadcast")?;
                if let Ok(mut s) = says.lock() {
                    s.push(format!(
                        "client got news {}",
                        m.message.json().unwrap_or_default()
                    ));
                }
            }
            server.close().await;
            if let Ok(mut s) = says.lock() {
                s.push(format!("broadcast reached {n} clients; server closed"));
            }
            let server = IpcServerOptions::new(&sock).listen().await.map_err(err)?;
            for (_, _, events) in &mut clients {
                loop {
                    match events.next().await {
                        Some(Ok(ClientEvent::Reconnect)) => break,
                        Some(_) => {}
                        None => return Err("client events ended".into()),
                    }
                }
            }
            if let Ok(mut s) = says.lock() {
                s.push("server restarted; both clients reconnected".into());
            }
            while server.clients().len() < 2 {
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
            server
                .broadcast("news", json!({"headline": "welcome back"}))
                .await
                .map_err(err)?;
            for (c, news, _) in &mut clients {
                news.recv().await.ok_or("no broadcast after the restart")?;
                c.close().await;
            }
            server.close().await;
            Ok("2 clients, 2 broadcasts, 1 restart".into())
        },
    )
    .await;
    for line in says.lock().map(|s| s.clone()).unwrap_or_default() {
        tour.say(&line);
    }

    // Session backend: the embedded dev server spawns a backend; a client watches it.
    let says = std::sync::Mutex::new(Vec::new());
    tour.step(
        "Session backend: dev server spawns a backend, watched to ready and terminated",
        async {
            let me = std::env::current_exe()
                .map_err(err)?
                .to_string_lossy()
                .into_owned();
            let server = DevServerOptions::new()
                .listen("127.0.0.1:0".parse().map_err(err)?)
                .backend_command([me.as_str(), "session", "echo-backend"])
                .start()
                .await
                .map_err(err)?;
            let api = server.api().map_err(err)?;
            let response = api
                .connect(&ConnectRequest::new().key("demo"))
                .await
                .map_err(err)?;
            let backend = SessionBackend::new(&response);
            let mut statuses = backend.statuses();
            backend.ready().await.map_err(err)?;
            api.terminate(&response.backend_id, false)
                .await
                .map_err(err)?;
            backend.terminated().await.map_err(err)?;
            let mut seen = Vec::new();
            while let Some(s) = statuses.next().await {
                seen.push(s.status.to_string());
            }
            server.shutdown().await;
            if let Ok(mut s) = says.lock() {
                s.push(format!(
                    "backend {} at {}",
                    response.backend_id, response.url
                ));
                s.push(format!("statuses: {}", seen.join(" → ")));
            }
            if seen.first().map(String::as_str) != Some("scheduled")
                || seen.last().map(String::as_str) != Some("terminated")
            {
                return Err(format!("unexpected status sequence {seen:?}"));
            }
            Ok(format!("{} statuses", seen.len()))
        },
    )
    .await;
    for line in says.lock().map(|s| s.clone()).unwrap_or_default() {
        tour.say(&line);
    }

    let _ = std::fs::remove_dir_all(&dir);
    println!("\nSummary");
    let failed = tour.results.iter().filter(|(_, r, _)| r.is_err()).count();
    for (name, r, took) in &tour.results {
        println!(
            "  {} {name} ({} ms)",
            tour.mark(r.is_ok()),
            took.as_millis()
        );
    }
    println!(
        "\n{} of {} steps worked",
        tour.results.len() - failed,
        tour.results.len()
    );
    if failed == 0 {
        Ok(())
    } else {
        Err(Failure::runtime(format!("{failed} demo step(s) failed")))
    }
}

/// A JSTP server on `ep` serving the demo app, its sessions kept in `storage`.
async fn jstp_demo_server(ep: Endpoint, storage: &MemoryStorage) -> Result<Server, String> {
    let slot = Arc::new(OnceLock::new());
    let server = ServerOptions::new()
        .application(crate::jstp::demo_app(Arc::clone(&slot)))
        .session_storage(storage.clone())
        .listen([ep])
        .await
        .map_err(err)?;
    let _ = slot.set(server.clone());
    Ok(server)
}

/// Restore path B: the server stops, the client calls while offline, a new server on the
/// same endpoint sharing the session storage takes the session over.
async fn jstp_restart(tour: &mut Tour) {
    let says = std::sync::Mutex::new(Vec::new());
    let say = |line: String| {
        if let Ok(mut s) = says.lock() {
            s.push(line);
        }
    };
    tour.step(
        "JSTP server stopped and restarted, client resumes its session with the calls made while offline delivered",
        async {
            let storage = MemoryStorage::new();
            let first = jstp_demo_server("tcp://127.0.0.1:0".parse().map_err(err)?, &storage).await?;
            let ep = first.endpoints()[0].clone();
            let client = ClientOptions::new()
                .reconnect(
                    Reconnect::new()
                        .initial_delay(Duration::from_millis(50))
                        .max_delay(Duration::from_millis(200))
                        .jitter(Duration::ZERO),
                )
                .connect(&ep, "calc@^1.0.0")
                .await
                .map_err(err)?;
            let conn = client.connection().clone();
            let session = conn.session_id().to_owned();
            let sum = conn
                .call("calculator", "add", [Value::from(1), Value::from(2)])
                .await
                .map_err(err)?;
            say(format!("add(1, 2) → {} in session {session}", Value::Array(sum)));
            first.close().await;
            let mut state = conn.state();
            let _ = state.wait_for(|s| *s != ConnectionState::Connected).await;
            say("server stopped (its sessions saved); add(10, 20) and add(30, 40) called while offline".into());
            let offline: Vec<_> = [(10, 20), (30, 40)]
                .into_iter()
                .map(|(a, b)| {
                    let conn = conn.clone();
                    tokio::spawn(async move {
                        conn.call("calculator", "add", [Value::from(a), Value::from(b)])
                            .await
                    })
                })
                .collect();
            tokio::time::sleep(Duration::from_millis(100)).await;
            let second = jstp_demo_server(ep.clone(), &storage).await?;
            say(format!("a new server on {ep}, sharing the session storage"));
            let mut answers = Vec::new();
            for call in offline {
                let r = call.await.map_err(err)?.map_err(err)?;
                answers.push(Value::Array(r).to_string());
            }
            if conn.session_id() != session {
                return Err(format!("a new session {} instead of {session}", conn.session_id()));
            }
            say(format!(
                "resumed session {session} (same id); offline calls → {}",
                answers.join(", ")
            ));
            conn.close().await;
            second.close().await;
            Ok(format!("session {session} resumed on the restarted server"))
        },
    )
    .await;
    for line in says.lock().map(|s| s.clone()).unwrap_or_default() {
        tour.say(&line);
    }
}

fn tempdir() -> std::io::Result<std::path::PathBuf> {
    let dir = std::env::temp_dir().join(format!("connkit-demo-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    Ok(dir)
}
