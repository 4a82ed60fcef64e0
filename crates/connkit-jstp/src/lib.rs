//! # connkit-jstp
//!
//! JSTP, the metarhia JavaScript Transfer Protocol, wire-compatible with
//! `@metarhia/jstp` 2.3.0.
//!
//! This first part is the data layer every other part builds on:
//!
//! - [`value`]: the [`Value`] model (with `undefined` apart from `null`, ordered object keys,
//!   `f64` numbers), the parser for the mdsf text format that JSTP messages use, the
//!   serializer that writes the bytes Node writes, and `serde` conversions for your own
//!   types.
//!
//! - [`message`]: the typed [`Message`](message::Message) of spec §4, read by Node's rules
//!   and written with the kind first and the verb second; [`RemoteError`] and the error
//!   codes of spec §5 ([`error`]).
//! - [`semver_range`]: node-semver ranges, for choosing application versions.
//!
//! Connections, the client and the server are built on top of these.
//!
//! # Example
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

pub mod error;
#[allow(dead_code)] // its hot-path writers serve the connection, which lands next
pub mod message;
pub mod semver_range;
pub mod value;

pub use error::{Error, RemoteError, Result};

pub use value::{
    Object, ParseError, ParseOptions, SerdeError, SerializeError, Value, from_value, parse,
    serialize, to_value,
};
