//! # connkit-core
//!
//! What every connkit protocol stands on:
//!
//! - [`Endpoint`]: `tcp://`, `tls://`, `unix://`, `ws://` and `wss://` URLs.
//! - [`transport`]: connect and listen on any endpoint and get a connection of whole
//!   messages, with delimiter framing on stream sockets ([`framing`]) and one message per
//!   WebSocket message, a bounded outbound queue, and safe Unix socket-file handling.
//! - [`tls`]: rustls configuration helpers.
//! - [`backoff`]: exponential, fibonacci and constant schedules with jitter.
//! - [`events`]: a `watch` of state plus a non-blocking `Stream` of events.
//! - [`jsnum`]: numbers written as JavaScript writes them, for byte-equal wire output.
//! - [`Error`] with an [`ErrorKind`] that tells retryable from fatal.
//!
//! Most users reach these through the `connkit` facade crate.
#![deny(missing_docs)]
#![cfg_attr(docsrs, feature(doc_cfg))]
#![cfg_attr(
    not(test),
    deny(clippy::unwrap_used, clippy::expect_used, clippy::panic)
)]

pub mod backoff;
pub mod endpoint;
pub mod error;
pub mod events;
pub mod framing;
pub mod jsnum;
pub mod tls;
pub mod transport;

pub use endpoint::{Endpoint, EndpointError, Scheme};
pub use error::{BoxError, Error, ErrorKind, Result};
