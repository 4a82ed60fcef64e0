//! Server-side session storage (spec §6.3, restore path B): a session the live index no
//! longer knows is restored from a `SessionStorageProvider`, on the same server after its
//! live entry expired, or on another server sharing the provider. Every test has a hard
//! timeout; nothing asserts on timing.

mod support;

use connkit_jstp::storage::{
    MemoryStorage, SessionStorageProvider, StorageError, StorageFuture, StoredSession,
};
use connkit_jstp::{ClientConnection, ConnectionState, ServerEvent, Value};
use connkit_testkit::within;
use futures_util::StreamExt;
use std::time::Duration;
use support::{Fixture, Raw, Transport, tcp_addr};

fn v(s: &str) -> Value {
    s.parse().unwrap()
}

async fn connected(
    events: &mut connkit_core::events::EventStream<ServerEvent>,
) -> ClientConnection {
    loop {
        if let ServerEvent::Connect { client } = events.next().await.unwrap().unwrap() {
            return client;
        }
    }
}

async fn reconnected(
    events: &mut connkit_core::events::EventStream<ServerEvent>,
) -> ClientConnection {
    loop {
        if let ServerEvent::Reconnect { client } = events.next().await.unwrap().unwrap() {
            return client;
        }
    }
}

async fn wait_closed(c: &ClientConnection) {
    let mut st = c.state();
    st.wait_for(|s| *s == ConnectionState::Closed)
        .await
        .unwrap();
}

#[tokio::test]
async fn an_expired_session_is_restored_from_storage_on_a_new_connection() {
    within(30, async {
        let storage = MemoryStorage::new();
        let f = Fixture::start_with(|o| {
            o.client_expiration_time(Duration::from_millis(20))
                .session_storage(storage.clone())
        })
        .await;
        let mut events = f.server.events();
        let addr = tcp_addr(&f);
        let (a, sid) = Raw::start_session_with_two_server_events(addr).await;
        let first = connected(&mut events).await;
        drop(a);
        // The live entry expires (the connection closes for good); storage keeps it.
        wait_closed(&first).await;
        while !storage.is_inactive(&sid) {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        // Resume saying we received only -1: restored from storage (path B) on a new
        // connection; -2 comes again with its id; new ids go on downward.
        let mut b = Raw::connect(addr).await;
        b.send(&format!(
            "{{handshake:[0,'testApp','^1.0.0'],session:['{sid}',1]}}"
        ))
        .await;
        assert_eq!(b.frame().await, "{handshake:[0],ok:1}");
        assert_eq!(
            b.frame().await,
            "{event:[-2,'calculator'],tick:[2,'1.0.0']}"
        );
        let second = reconnected(&mut events).await;
        assert_ne!(second.id(), first.id());
        assert_eq!(second.session_id(), sid);
        assert!(!storage.is_inactive(&sid), "get clears the inactive stamp");
        b.expect_ids_continue_at_minus_three().await;
        // An unknown session: 11, then the server closes.
        Raw::expect_unknown_session_refused(addr).await;
    })
    .await;
}

#[tokio::test]
async fn a_second_server_sharing_the_storage_takes_the_session_over() {
    within(30, async {
        let storage = MemoryStorage::new();
        let one = Fixture::start_with(|o| o.session_storage(storage.clone())).await;
        let two = Fixture::start_with(|o| o.session_storage(storage.clone())).await;
        let mut two_events = two.server.events();
        let c = one
            .client_opts()
            .reconnect(support::fast_reconnect())
            .fallback_endpoints([two.endpoint(Transport::Tcp)])
            .connect(&one.endpoint(Transport::Tcp), "testApp@^1.0.0")
            .await
            .unwrap();
        let sid = c.session_id().to_owned();
        assert_eq!(
            c.call("calculator", "add", [v("1"), v("2")]).await.unwrap(),
            vec![v("3")]
        );
        // Server one stops (a graceful close saves its sessions as inactive).
        one.server.close().await;
        assert!(storage.is_inactive(&sid));
        // Made while no server is reachable, or while the client is moving over.
        let offline = {
            let c = c.clone();
            tokio::spawn(async move { c.call("calculator", "add", [v("10"), v("20")]).await })
        };
        assert_eq!(offline.await.unwrap().unwrap(), vec![v("30")]);
        let restored = reconnected(&mut two_events).await;
        assert_eq!(restored.session_id(), sid);
        assert_eq!(c.session_id(), sid);
        assert_eq!(
            c.call("calculator", "add", [v("3"), v("4")]).await.unwrap(),
            vec![v("7")]
        );
        // Server two's writer keeps the stored copy up to date.
        let mut stored = storage.get(&sid).await.unwrap().unwrap();
        while stored.received_count < 3 {
            tokio::time::sleep(Duration::from_millis(10)).await;
            stored = storage.get(&sid).await.unwrap().unwrap();
        }
        assert_eq!(stored.app_name, "testApp");
    })
    .await;
}

/// A provider that always fails.
struct Broken;

impl SessionStorageProvider for Broken {
    fn get<'a>(&'a self, _id: &'a str) -> StorageFuture<'a, Option<StoredSession>> {
        // Never answers: the lookup times out.
        Box::pin(std::future::pending())
    }
    fn set<'a>(&'a self, _id: &'a str, _s: &'a StoredSession) -> StorageFuture<'a, ()> {
        Box::pin(async { Err(StorageError::Backend("down".into())) })
    }
    fn set_inactive<'a>(&'a self, _id: &'a str) -> StorageFuture<'a, ()> {
        Box::pin(async { Err(StorageError::Backend("down".into())) })
    }
    fn remove<'a>(&'a self, _id: &'a str) -> StorageFuture<'a, ()> {
        Box::pin(async { Err(StorageError::Backend("down".into())) })
    }
}

#[tokio::test]
async fn a_failing_provider_costs_restores_and_nothing_else() {
    within(30, async {
        let f = Fixture::start_with(|o| {
            o.session_storage(Broken)
                .storage_timeout(Duration::from_millis(200))
        })
        .await;
        let c = f
            .client_opts()
            .connect(&f.endpoint(Transport::Tcp), "testApp")
            .await
            .unwrap();
        for i in 0..20 {
            assert_eq!(
                c.call("calculator", "add", [v(&i.to_string()), v("1")])
                    .await
                    .unwrap(),
                vec![v(&(i + 1).to_string())]
            );
        }
        let mut raw = Raw::connect(tcp_addr(&f)).await;
        raw.send("{handshake:[0,'testApp'],session:['00000000-0000-4000-8000-000000000000',0]}")
            .await;
        assert_eq!(raw.frame().await, "{handshake:[0],error:[11]}");
        c.close().await;
        f.server.close().await;
    })
    .await;
}

/// The Node client (`tests/interop/node/jstp_client.js`), driven over stdin.
struct NodeClient {
    proc: connkit_testkit::NodeProcess,
    next: u64,
}

impl NodeClient {
    async fn cmd(&mut self, mut cmd: serde_json::Value) -> serde_json::Value {
        self.next += 1;
        cmd["id"] = serde_json::json!(self.next);
        self.proc.write_line(&cmd.to_string()).await.unwrap();
        loop {
            let line = self
                .proc
                .next_line(Duration::from_secs(20))
                .await
                .unwrap()
                .unwrap_or_else(|| panic!("node client exited: {}", self.proc.stderr()));
            let v: serde_json::Value = serde_json::from_str(&line).unwrap();
            if v["id"] == serde_json::json!(self.next) {
                assert!(v.get("error").is_none(), "{v}");
                return v["ok"].clone();
            }
        }
    }
}

/// A Node client (`@metarhia/jstp` 2.3.0, its own reconnector) resumes on the Rust server
/// after the live entry of its session expired: restored from storage (path B) on a new
/// connection, with an event and a call made while offline delivered.
#[tokio::test]
async fn a_node_client_resumes_through_path_b() {
    let node = connkit_testkit::require_node!();
    within(
        60,
        Box::pin(async {
            let storage = MemoryStorage::new();
            let f = Fixture::start_with(|o| {
                o.client_expiration_time(Duration::from_millis(50))
                    .session_storage(storage.clone())
            })
            .await;
            let mut events = f.server.events();
            let proxy = connkit_testkit::FaultProxy::start(tcp_addr(&f))
                .await
                .unwrap();
            let mut proc = node.spawn("jstp_client.js", Vec::<String>::new()).unwrap();
            proc.wait_ready(Duration::from_secs(20)).await.unwrap();
            let mut n = NodeClient { proc, next: 0 };
            let sid = n
                .cmd(serde_json::json!({"cmd":"connect","transport":"net",
                    "app":"testApp@^1.0.0","port":proxy.addr().port(),"reconnect":true}))
                .await;
            let first = connected(&mut events).await;
            assert_eq!(sid, serde_json::json!(first.session_id()));
            let add = serde_json::json!({"cmd":"call","interface":"calculator",
                "method":"add","args":"[1,2]"});
            assert_eq!(n.cmd(add).await, serde_json::json!("[3]"));
            proxy.set_refuse(true);
            proxy.cut_all();
            // The live entry expires.
            wait_closed(&first).await;
            proxy.set_refuse(false);
            n.cmd(
                serde_json::json!({"cmd":"emit","interface":"calculator","event":"hello",
                "args":"['offline']"}),
            )
            .await;
            let add = serde_json::json!({"cmd":"call","interface":"calculator",
                "method":"add","args":"[10,20]"});
            assert_eq!(n.cmd(add).await, serde_json::json!("[30]"));
            let mut restored = None;
            let mut hello = false;
            while restored.is_none() || !hello {
                match events.next().await.unwrap().unwrap() {
                    ServerEvent::Reconnect { client } => restored = Some(client),
                    ServerEvent::Event { event, .. } if event.event == "hello" => {
                        assert_eq!(event.args, vec![v("'offline'")]);
                        hello = true;
                    }
                    _ => {}
                }
            }
            let restored = restored.unwrap();
            assert_ne!(restored.id(), first.id(), "a new connection (path B)");
            assert_eq!(restored.session_id(), first.session_id());
        }),
    )
    .await;
}

/// A stored copy older than what the client saw (its server was killed between two writes):
/// the server answers with the stored `receivedCount`, and its ids continue below both the
/// stored next id and the last id the client received.
#[tokio::test]
async fn a_stale_stored_copy_still_gives_ids_below_what_the_client_saw() {
    within(30, async {
        let storage = MemoryStorage::new();
        let sid = "6f1c3f7e-5a7b-4f0e-9d55-3c1a2b4d5e6f";
        let stale: StoredSession = serde_json::from_value(serde_json::json!({
            "id": sid, "username": null, "receivedCount": 2, "nextId": -2,
            "deliveredCount": 0, "buffer": [[-1, "{event:[-1,'calculator'],tick:[1,'1.0.0']}"]],
            "appName": "testApp", "appVersion": "1.0.0"
        }))
        .unwrap();
        storage.set(sid, &stale).await.unwrap();
        let f = Fixture::start_with(|o| o.session_storage(storage.clone())).await;
        let mut raw = Raw::connect(tcp_addr(&f)).await;
        // The client had received the server's messages up to -5.
        raw.send(&format!(
            "{{handshake:[0,'testApp','^1.0.0'],session:['{sid}',5]}}"
        ))
        .await;
        assert_eq!(raw.frame().await, "{handshake:[0],ok:2}");
        // -1 is not sent again (the client has it); the next id is -6.
        raw.send("{call:[3,'calculator'],ticker:[1]}").await;
        assert_eq!(
            raw.frame().await,
            "{event:[-6,'calculator'],tick:[1,'1.0.0']}"
        );
        assert_eq!(raw.frame().await, "{callback:[3],ok:[1]}");
    })
    .await;
}

/// Counts writes and how many are in flight at once; each write takes a while.
#[derive(Clone, Default)]
struct Counting {
    inner: MemoryStorage,
    in_flight: std::sync::Arc<std::sync::atomic::AtomicUsize>,
    max_in_flight: std::sync::Arc<std::sync::atomic::AtomicUsize>,
    writes: std::sync::Arc<std::sync::atomic::AtomicUsize>,
}

impl SessionStorageProvider for Counting {
    fn get<'a>(&'a self, id: &'a str) -> StorageFuture<'a, Option<StoredSession>> {
        self.inner.get(id)
    }
    fn set<'a>(&'a self, id: &'a str, s: &'a StoredSession) -> StorageFuture<'a, ()> {
        use std::sync::atomic::Ordering::SeqCst;
        Box::pin(async move {
            let now = self.in_flight.fetch_add(1, SeqCst) + 1;
            self.max_in_flight.fetch_max(now, SeqCst);
            self.writes.fetch_add(1, SeqCst);
            tokio::time::sleep(Duration::from_millis(5)).await;
            let r = self.inner.set(id, s).await;
            self.in_flight.fetch_sub(1, SeqCst);
            r
        })
    }
    fn set_inactive<'a>(&'a self, id: &'a str) -> StorageFuture<'a, ()> {
        self.inner.set_inactive(id)
    }
    fn remove<'a>(&'a self, id: &'a str) -> StorageFuture<'a, ()> {
        self.inner.remove(id)
    }
}

#[tokio::test]
async fn live_writes_are_coalesced_and_a_deliberate_close_removes_the_session() {
    use std::sync::atomic::Ordering::SeqCst;
    within(30, async {
        let storage = Counting::default();
        let f = Fixture::start_with(|o| {
            o.session_storage(storage.clone())
                .session_write_interval(Duration::from_millis(20))
        })
        .await;
        let mut events = f.server.events();
        let c = f
            .client_opts()
            .connect(&f.endpoint(Transport::Tcp), "testApp@^1.0.0")
            .await
            .unwrap();
        let on_server = connected(&mut events).await;
        let sid = c.session_id().to_owned();
        // A burst of calls from several tasks.
        let mut calls = Vec::new();
        for i in 0..200 {
            let c = c.clone();
            calls.push(tokio::spawn(async move {
                c.call("calculator", "add", [v(&i.to_string()), v("1")])
                    .await
            }));
        }
        for call in calls {
            call.await.unwrap().unwrap();
        }
        // The stored copy catches up with the last call.
        loop {
            let s = storage.inner.get(&sid).await.unwrap();
            if s.is_some_and(|s| s.received_count == 200) {
                break;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        assert_eq!(storage.max_in_flight.load(SeqCst), 1, "one write at a time");
        assert!(storage.writes.load(SeqCst) <= 200);
        // The server closes the live connection on purpose: the session is over.
        on_server.close().await;
        while !storage.inner.is_empty() {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await;
}

/// What a server sends to a session that waits for its client is stored too (still
/// inactive), so another server replays it.
#[tokio::test]
async fn messages_for_a_waiting_session_are_stored_and_replayed_elsewhere() {
    within(30, async {
        let storage = MemoryStorage::new();
        let one = Fixture::start_with(|o| o.session_storage(storage.clone())).await;
        let two = Fixture::start_with(|o| o.session_storage(storage.clone())).await;
        let mut events = one.server.events();
        let mut a = Raw::connect(tcp_addr(&one)).await;
        a.send("{handshake:[0,'testApp','^1.0.0']}").await;
        let reply = a.frame().await;
        let sid = reply.split('\'').nth(1).unwrap().to_owned();
        let on_server = connected(&mut events).await;
        drop(a);
        let mut st = on_server.state();
        st.wait_for(|s| *s == ConnectionState::Disconnected)
            .await
            .unwrap();
        on_server
            .emit("calculator", "news", [v("'while away'")])
            .await
            .unwrap();
        // Stored with the event, still inactive (`get` would clear the stamp: look last).
        while !storage.is_inactive(&sid)
            || storage
                .clone()
                .get(&sid)
                .await
                .unwrap()
                .unwrap()
                .buffer
                .is_empty()
        {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        // The client comes back on server two (as after server one died).
        let mut b = Raw::connect(tcp_addr(&two)).await;
        b.send(&format!(
            "{{handshake:[0,'testApp','^1.0.0'],session:['{sid}',0]}}"
        ))
        .await;
        assert_eq!(b.frame().await, "{handshake:[0],ok:0}");
        assert_eq!(
            b.frame().await,
            "{event:[-1,'calculator'],news:['while away']}"
        );
    })
    .await;
}

/// A session restored from the live index (path A) is stored as active again at once, even
/// if nothing else happens on it.
#[tokio::test]
async fn a_path_a_restore_marks_the_stored_session_active_again() {
    within(30, async {
        let storage = MemoryStorage::new();
        let f = Fixture::start_with(|o| o.session_storage(storage.clone())).await;
        let mut a = Raw::connect(tcp_addr(&f)).await;
        a.send("{handshake:[0,'testApp','^1.0.0']}").await;
        let reply = a.frame().await;
        let sid = reply.split('\'').nth(1).unwrap().to_owned();
        drop(a);
        while !storage.is_inactive(&sid) {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        let mut b = Raw::connect(tcp_addr(&f)).await;
        b.send(&format!(
            "{{handshake:[0,'testApp','^1.0.0'],session:['{sid}',0]}}"
        ))
        .await;
        assert_eq!(b.frame().await, "{handshake:[0],ok:0}");
        while storage.is_inactive(&sid) {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        assert_eq!(storage.len(), 1);
    })
    .await;
}
