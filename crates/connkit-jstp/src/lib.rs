//! # connkit-jstp
//!
//! JSTP, the metarhia JavaScript Transfer Protocol, wire-compatible with
//! `@metarhia/jstp` 2.3.0.
//!
//! - [`ServerOptions`] → [`Server`]: serve [`Application`]s on any number of endpoints at
//!   once (`tcp://`, `tls://`, `unix://`, `ws://`, `wss://`), with anonymous, `login` and
//!   custom handshakes ([`AuthPolicy`]), version choice by node-semver ranges
//!   ([`Applications`], [`semver_range`]), events, broadcast, server → client calls, a
//!   registry of clients and a [`Stream`](futures_util::Stream) of [`ServerEvent`]s.
//! - [`ClientOptions`] → [`Client`]: connect to `'name'`, `'name@range'` or
//!   `(name, version)`; untyped and typed (`serde`) calls; events per interface; inspect
//!   ([`RemoteProxy`]); ping; a client-side [`Application`] the server can call.
//! - [`message`]: the typed [`Message`](message::Message) and its wire rules;
//!   [`RemoteError`] and the error codes of spec §5.
//! - [`value`]: the [`Value`] model (with `undefined` apart from `null`, ordered object keys,
//!   `f64` numbers), the parser for the mdsf text format that JSTP messages use, the
//!   serializer that writes the bytes Node writes, and `serde` conversions for your own
//!   types.
//!
//! `docs/jstp.md` is the guide, with what connkit does for each quirk of the Node library.
//!
//! # A server and a client
//!
//! ```no_run
//! use connkit_jstp::{Application, Client, Interface, RemoteError, ServerOptions, Value};
//!
//! # async fn demo() -> Result<(), connkit_jstp::Error> {
//! let calc = Application::new("calc", semver::Version::new(1, 0, 0)).interface(
//!     "calculator",
//!     Interface::new()
//!         .method("add", |_ctx, (a, b): (f64, f64)| async move { Ok(a + b) })
//!         .method("divide", |_ctx, (a, b): (f64, f64)| async move {
//!             if b == 0.0 {
//!                 return Err(RemoteError::new(100).message("Division by zero"));
//!             }
//!             Ok(a / b)
//!         }),
//! );
//! let server = ServerOptions::new()
//!     .application(calc)
//!     .listen(["tcp://127.0.0.1:0".parse()?, "ws://127.0.0.1:0".parse()?])
//!     .await?;
//!
//! let client = Client::connect(&server.endpoints()[0], "calc@^1.0.0").await?;
//! let sum: f64 = client.call_typed("calculator", "add", &(2, 3)).await?;
//! assert_eq!(sum, 5.0);
//! let err = client.call("calculator", "divide", [Value::from(1), Value::from(0)]).await;
//! assert_eq!(err.unwrap_err().remote().map(|e| e.code()), Some(100));
//! client.close().await;
//! server.close().await;
//! # Ok(()) }
//! ```
//!
//! # Values
//!
//! ```
//! use connkit_jstp::{Value, from_value, to_value, value};
//!
//! // One message, as it arrives between two NUL bytes on a TCP connection.
//! let message = value::parse(b"{call:[17,'calculator'],add:[2,3]}")?;
//! let object = message.as_object().expect("an object");
//! let (kind, header) = object.get_index(0).expect("a kind");
//! let (verb, args) = object.get_index(1).expect("a verb");
//! assert_eq!((kind, verb), ("call", "add"));
//! assert_eq!(header.at(1), Some(&Value::from("calculator")));
//!
//! // Arguments into your own types, and a result back into a message.
//! let (a, b): (f64, f64) = from_value(args.clone())?;
//! let reply: Value = [
//!     ("callback", Value::from(vec![header.at(0).cloned().unwrap_or_default()])),
//!     ("ok", to_value(&[a + b])?),
//! ]
//! .into_iter()
//! .collect::<connkit_jstp::Object>()
//! .into();
//!
//! let mut frame = Vec::new();
//! value::serialize_into(&reply, &mut frame)?;
//! frame.push(0);
//! assert_eq!(frame, b"{callback:[17],ok:[5]}\0");
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
#![deny(missing_docs)]
#![cfg_attr(docsrs, feature(doc_cfg))]
#![cfg_attr(
    not(test),
    deny(clippy::unwrap_used, clippy::expect_used, clippy::panic)
)]

mod app;
mod client;
mod connection;
pub mod error;
pub mod message;
pub mod policy;
mod replies;
pub mod semver_range;
mod server;
pub mod session;
pub mod storage;
pub mod value;

/// The `semver` crate, for [`Application`] versions.
pub use semver;

pub use app::{Application, Applications, Interface};
pub use client::{AppTarget, Client, ClientOptions};
pub use connection::{
    ClientConnection, Connection, ConnectionEvent, ConnectionState, Context, RemoteEvent,
    RemoteEvents, RemoteProxy, Role,
};
pub use error::{Error, RemoteError, Result};
pub use policy::{ConnectPolicy, Credentials};
pub use server::{
    AuthPolicy, AuthRequest, DEFAULT_HANDSHAKE_TIMEOUT, DEFAULT_MAX_MESSAGE_LEN, Logins, Server,
    ServerEvent, ServerOptions, ServerState, WS_SUBPROTOCOL,
};
pub use session::{Reconnect, SessionSnapshot, UnknownSession};
pub use value::{
    Object, ParseError, ParseOptions, SerdeError, SerializeError, Value, from_value, parse,
    serialize, to_value,
};
