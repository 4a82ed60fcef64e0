//! # connkit-ipc
//!
//! Socket-file IPC: a server and auto-reconnecting clients exchanging `{topic, message}`
//! messages, wire-compatible with the Node library `@crussell52/socket-ipc` 0.4.0 — a Node
//! client talks to a Rust server and the other way round — without its crashes, leaks and
//! unbounded buffers.
//!
//! ```no_run
//! use connkit_ipc::{ServerOptions, ServerEvent};
//! use futures_util::StreamExt;
//! use serde_json::json;
//!
//! # async fn run() -> Result<(), connkit_ipc::Error> {
//! let server = ServerOptions::new("/tmp/app.sock").mode(0o600).listen().await?;
//! // Echo every message on topic "ping" back to its sender as "pong".
//! // The payload is sent back as received: its bytes are copied, not parsed and re-written.
//! server.on(Some("ping"), |m| async move { m.reply("pong", &m.message).await }).detach();
//! server.broadcast("hello", json!({"from": "server"})).await?;
//! let mut events = server.events();
//! while let Some(Ok(ev)) = events.next().await {
//!     if let ServerEvent::Message { topic, message, client } = ev {
//!         // Parsed on demand (and kept): `message.value()`, or `message.deserialize::<T>()`.
//!         println!("{client}: {topic} {:?}", message.value());
//!     }
//! }
//! # Ok(()) }
//! ```
//!
//! Every per-connection failure stays inside that connection: a malformed frame, an oversize
//! frame or a failing handler closes that one client and is reported as an event; the server
//! and the other clients carry on.
//!
//! `docs/ipc.md` in the repository is the guide (server, client, topics, subscriptions and
//! handlers, slow clients, offline queue, reconnecting, custom transcoders, errors, CLI) and
//! lists every deliberate difference from the Node library under "Compatibility with
//! socket-ipc 0.4.0". Its examples are compiled as doctests of this crate.
#![deny(missing_docs)]
#![cfg_attr(docsrs, feature(doc_cfg))]
#![cfg_attr(
    not(test),
    deny(clippy::unwrap_used, clippy::expect_used, clippy::panic)
)]

mod channel;
mod client;
mod conn;
mod error;
mod payload;
mod router;
mod server;
mod topic;
pub mod transcoder;
pub mod wire;

pub use client::{Client, ClientEvent, ClientOptions, ClientState, Delay};
pub use error::{BoxError, Error, Result};
pub use payload::Payload;
pub use router::{HandlerGuard, Subscription};
pub use server::{Server, ServerEvent, ServerOptions, ServerState, SlowClient};
pub use topic::Topic;
pub use transcoder::{JsonTranscoder, Transcoder};
pub use wire::Envelope;

/// The examples of `docs/ipc.md`, compiled as doctests so the guide stays true.
#[cfg(doctest)]
#[doc = include_str!("../../../docs/ipc.md")]
struct Guide;

use bytes::Bytes;
use std::cell::RefCell;
use std::fmt;
use std::str::FromStr;
use std::sync::{Arc, Weak};

/// The default largest frame: 16 MiB.
pub const DEFAULT_MAX_FRAME_LEN: usize = 16 * 1024 * 1024;

/// A client's id on a server: a random (v4) UUID, written lowercase with hyphens.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize,
)]
#[serde(transparent)]
pub struct ClientId(uuid::Uuid);

impl ClientId {
    pub(crate) fn new() -> Self {
        Self(uuid::Uuid::new_v4())
    }

    /// The UUID.
    #[must_use]
    pub fn as_uuid(&self) -> uuid::Uuid {
        self.0
    }
}

impl fmt::Display for ClientId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.0.hyphenated(), f)
    }
}

impl FromStr for ClientId {
    type Err = uuid::Error;

    fn from_str(s: &str) -> Result<Self, uuid::Error> {
        uuid::Uuid::parse_str(s).map(Self)
    }
}

impl From<uuid::Uuid> for ClientId {
    fn from(u: uuid::Uuid) -> Self {
        Self(u)
    }
}

/// A received message, with a way to answer its sender.
#[derive(Clone)]
pub struct Incoming {
    /// The topic.
    pub topic: Topic,
    /// The payload: JSON text checked on receipt, parsed on demand
    /// ([`Payload::value`], [`Payload::deserialize`]); absent when the sender left it out.
    pub message: Payload,
    /// The sender, on a server; `None` on a client (the sender is the server).
    pub client: Option<ClientId>,
    replier: Replier,
}

#[derive(Clone)]
enum Replier {
    Server(Arc<server::ClientEntry>),
    Client(Weak<client::Shared>),
}

impl fmt::Debug for Incoming {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Incoming")
            .field("topic", &self.topic)
            .field("message", &self.message)
            .field("client", &self.client)
            .finish_non_exhaustive()
    }
}

impl Incoming {
    /// Send a message back to whoever sent this one. `reply(topic, &m.message)` sends the
    /// received payload back byte for byte.
    ///
    /// Cancel safe: if dropped before completing, nothing was queued.
    ///
    /// # Errors
    /// As `Server::send` (or `Client::send` on a client); [`Error::SendAfterClose`] when the
    /// server or client is gone.
    pub async fn reply(&self, topic: &str, message: impl Into<Payload>) -> Result<()> {
        match &self.replier {
            Replier::Server(entry) => {
                let shared = entry
                    .server
                    .upgrade()
                    .ok_or_else(|| Error::SendAfterClose {
                        topic: topic.to_owned(),
                    })?;
                shared.send_to(entry, topic, &message.into()).await
            }
            Replier::Client(shared) => {
                client::reply_from_client(shared, topic, &message.into()).await
            }
        }
    }
}

/// Frames and payload texts up to this size are written in a reused per-thread buffer, then
/// copied into an allocation of exactly their size.
const SCRATCH_LIMIT: usize = 64 * 1024;

thread_local! {
    static SCRATCH: RefCell<Vec<u8>> = const { RefCell::new(Vec::new()) };
}

/// Write with `write` into a reused per-thread buffer and return the bytes in an allocation
/// of exactly their size (one allocation); a large result keeps the buffer itself.
pub(crate) fn write_bytes<E>(
    write: impl FnOnce(&mut Vec<u8>) -> Result<(), E>,
) -> Result<Bytes, E> {
    let mut write = Some(write);
    let pooled = SCRATCH.with(|cell| {
        let mut buf = cell.try_borrow_mut().ok()?;
        let write = write.take()?;
        buf.clear();
        let res = write(&mut buf).map(|()| {
            if buf.len() > SCRATCH_LIMIT {
                Bytes::from(std::mem::take(&mut *buf))
            } else {
                Bytes::copy_from_slice(&buf)
            }
        });
        if buf.capacity() > SCRATCH_LIMIT {
            *buf = Vec::new();
        }
        Some(res)
    });
    match (pooled, write) {
        (Some(res), _) => res,
        // The buffer is in use further up this thread's stack.
        (None, Some(write)) => {
            let mut out = Vec::new();
            write(&mut out).map(|()| Bytes::from(out))
        }
        (None, None) => Ok(Bytes::new()),
    }
}

/// Encode one frame body with `transcoder`.
pub(crate) fn encode_frame(
    transcoder: &dyn transcoder::Transcoder,
    topic: &str,
    message: &Payload,
) -> Result<Bytes> {
    write_bytes(|buf| transcoder.encode(topic, message, buf)).map_err(|source| Error::Encode {
        topic: topic.to_owned(),
        source,
    })
}
