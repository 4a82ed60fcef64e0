//! A chat over a socket file: one server and three clients in one process.
//!
//! The server keeps a nickname per client (`join`), re-broadcasts what anyone says (`say`)
//! to everyone as `said`, and answers `who` with the list of nicknames. Clients print what
//! they receive; server events are printed as they happen. Everything ends by itself.
//!
//! ```sh
//! cargo run --example ipc_chat
//! ```
//!
//! The same server talks to Node's `@crussell52/socket-ipc` 0.4.0 clients: the wire format is
//! the library's (`{"topic":…,"message":…}` then two NUL bytes).

use connkit::ipc::{ClientEvent, ClientId, ClientOptions, Payload, ServerEvent, ServerOptions};
use futures_util::StreamExt;
use serde_json::{Value, json};
use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::Duration;

type Nicknames = Arc<Mutex<BTreeMap<ClientId, String>>>;

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let dir = std::env::temp_dir().join(format!("connkit-ipc-chat-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let path = dir.join("chat.sock");

    // ------------------------------------------------------------------ the server
    let server = ServerOptions::new(&path).mode(0o600).build();
    let mut server_events = server.events();
    let names: Nicknames = Arc::default();

    // `join`: remember the sender's nickname, tell everyone.
    let (s, n) = (server.clone(), Arc::clone(&names));
    server
        .on(Some("join"), move |m| {
            let (s, n) = (s.clone(), Arc::clone(&n));
            async move {
                let nick: String = m.message.deserialize()?;
                if let Some(id) = m.client {
                    n.lock()
                        .unwrap_or_else(|e| e.into_inner())
                        .insert(id, nick.clone());
                }
                s.broadcast("joined", json!(nick)).await?;
                Ok::<_, Box<dyn std::error::Error + Send + Sync>>(())
            }
        })
        .detach();

    // `say`: broadcast `{from, text}` to every client. The text is checked to be a string
    // (typed read, no Value in between), then written out once for all clients.
    let (s, n) = (server.clone(), Arc::clone(&names));
    server
        .on(Some("say"), move |m| {
            let (s, n) = (s.clone(), Arc::clone(&n));
            async move {
                let text: String = m.message.deserialize()?;
                let from = m
                    .client
                    .and_then(|id| {
                        n.lock()
                            .unwrap_or_else(|e| e.into_inner())
                            .get(&id)
                            .cloned()
                    })
                    .unwrap_or_else(|| "someone".to_owned());
                let said = Payload::serialize(&HashMap::from([("from", from), ("text", text)]))?;
                s.broadcast("said", said).await?;
                Ok::<_, Box<dyn std::error::Error + Send + Sync>>(())
            }
        })
        .detach();

    // `who`: reply to the sender only.
    let n = Arc::clone(&names);
    server
        .on(Some("who"), move |m| {
            let n = Arc::clone(&n);
            async move {
                let list: Vec<String> = n
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .values()
                    .cloned()
                    .collect();
                m.reply("who", json!(list)).await
            }
        })
        .detach();

    server.listen().await?;
    let printer = tokio::spawn(async move {
        while let Some(Ok(ev)) = server_events.next().await {
            match ev {
                ServerEvent::Listening { path } => {
                    println!("[server] listening on {}", path.display())
                }
                ServerEvent::Connection { client } => {
                    println!("[server] {} connected", short(client))
                }
                ServerEvent::Message {
                    topic,
                    message,
                    client,
                } => println!(
                    "[server] {} sent {topic}: {}",
                    short(client),
                    message.json().as_deref().unwrap_or("(no message)")
                ),
                ServerEvent::Disconnect { client } => println!("[server] {} left", short(client)),
                ServerEvent::Error { client, error } => {
                    println!("[server] error ({:?}): {error}", client.map(short));
                }
                ServerEvent::Close => {
                    println!("[server] closed");
                    break;
                }
                _ => {}
            }
        }
    });

    // ------------------------------------------------------------------ three clients
    let nicks = ["alice", "bob", "carol"];
    let mut clients = Vec::new();
    let mut readers = Vec::new();
    for nick in nicks {
        let client = ClientOptions::new(&path).connect().await?;
        let mut said = client.subscribe(Some("said"));
        let mut joined = client.subscribe(Some("joined"));
        let mut who = client.subscribe(Some("who"));
        let mut events = client.events();
        let (read_all, read_all_rx) = tokio::sync::oneshot::channel::<()>();
        client.send("join", json!(nick)).await?;
        // Each client expects every line said by anyone: two per client.
        let expected = nicks.len() * 2;
        readers.push(tokio::spawn(async move {
            let mut lines = 0;
            loop {
                tokio::select! {
                    Some(m) = said.recv() => {
                        let line: HashMap<String, String> = m.message.deserialize().unwrap_or_default();
                        println!("  <{nick}> sees {}: {}", line["from"], line["text"]);
                        lines += 1;
                        if lines == expected {
                            break;
                        }
                    }
                    Some(m) = joined.recv() => {
                        println!("  <{nick}> sees {} join", m.message.value().and_then(Value::as_str).unwrap_or("?"));
                    }
                    Some(m) = who.recv() => {
                        println!("  <{nick}> online: {}", m.message.json().as_deref().unwrap_or("[]"));
                    }
                }
            }
            let _ = read_all.send(());
            // Then wait for our own close.
            while let Some(Ok(ev)) = events.next().await {
                if matches!(ev, ClientEvent::Close) {
                    println!("  <{nick}> closed");
                    break;
                }
            }
        }));
        clients.push((nick, client, read_all_rx));
    }

    // Wait until the server knows every nickname, then chat.
    while names.lock().unwrap_or_else(|e| e.into_inner()).len() < nicks.len() {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    clients[0].1.send("who", None).await?;
    for (nick, client, _) in &clients {
        client
            .send("say", json!(format!("hi, I am {nick}")))
            .await?;
    }
    for (nick, client, _) in &clients {
        client
            .send("say", json!(format!("{nick} says bye")))
            .await?;
    }

    // ------------------------------------------------------------------ shut down
    // Once each client has read every line, close it (it emits `Close` exactly once).
    for (_, client, read_all) in clients {
        tokio::time::timeout(Duration::from_secs(5), read_all).await??;
        client.close().await;
    }
    for r in readers {
        tokio::time::timeout(Duration::from_secs(5), r).await??;
    }
    server.close().await;
    printer.await?;
    let _ = std::fs::remove_dir_all(&dir);
    Ok(())
}

/// The first 8 hex digits of a client id, for display.
fn short(id: ClientId) -> String {
    id.to_string()[..8].to_owned()
}
