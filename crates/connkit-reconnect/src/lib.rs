//! # connkit-reconnect
//!
//! The keep-alive core of connkit: everything `@connback/core` does, none of its bugs.
//!
//! A protocol client implements [`Connector`] (open one connection, close one, optionally
//! ping one) and hands it to a [`Supervisor`], which keeps one logical connection alive over
//! many physical ones:
//!
//! - retries failed attempts with a backoff schedule ([`connkit_core::backoff`]:
//!   fibonacci by default, full jitter, 1 s initial and 30 s max delay), stopping at once on
//!   a fatal error and reporting [`Event::GaveUp`] after the last allowed attempt;
//! - bounds every attempt with a connect timeout (a timed-out attempt is a failure, never a
//!   connection), and closes connections that arrive after their attempt was cancelled;
//! - detects dead peers with a keepalive whose ping interval and timeout are separate, and
//!   whose liveness deadline outbound traffic cannot postpone;
//! - backs off across flapping connections until one has been up for
//!   [`stable_for`](OptionsBuilder::stable_for);
//! - tags everything a connection reports with its [`ConnId`], so a late report from an
//!   old connection cannot tear down the new one;
//! - publishes [`Event`]s as an [`EventStream`] (a `futures` `Stream`) and as callbacks,
//!   and the [`State`] as a `watch`.
//!
//! The event order of every scenario and each deliberate difference from
//! `@connback/core` are in `docs/reconnect.md`.
//!
//! ## Example
//!
//! ```
//! use connkit_core::{Error, ErrorKind};
//! use connkit_reconnect::{Attempt, Connector, Event, Options, Supervisor};
//! use futures_util::StreamExt;
//! use std::time::Duration;
//!
//! /// Fails twice, then connects. Its "connection" is just the attempt number.
//! struct Flaky;
//!
//! impl Connector for Flaky {
//!     type Conn = u32;
//!
//!     async fn connect(&self, attempt: Attempt) -> Result<u32, Error> {
//!         if attempt.number() < 3 {
//!             Err(Error::new(ErrorKind::ConnectFailed, "refused"))
//!         } else {
//!             Ok(attempt.number())
//!         }
//!     }
//!
//!     async fn close(&self, _conn: u32, _force: bool) {}
//! }
//!
//! # #[tokio::main(flavor = "current_thread", start_paused = true)]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let options = Options::builder()
//!     .initial_delay(Duration::from_millis(100))
//!     .jitter(connkit_reconnect::Jitter::None)
//!     .build()?;
//! let supervisor = Supervisor::new(Flaky, options);
//! let mut events = supervisor.events();
//! supervisor.start();
//!
//! let (_id, conn) = supervisor.connected().await?;
//! assert_eq!(conn, 3);
//! supervisor.end(false).await;
//!
//! let mut seen = Vec::new();
//! while let Some(Ok(event)) = events.next().await {
//!     seen.push(event.to_string());
//! }
//! assert_eq!(
//!     seen,
//!     [
//!         "error: connect failed: refused",
//!         "offline",
//!         "reconnect attempt 2 in 100ms",
//!         "error: connect failed: refused",
//!         "reconnect attempt 3 in 100ms",
//!         "connect #3",
//!         "close #3",
//!         "end",
//!     ]
//! );
//! # Ok(()) }
//! ```
//!
//! ## Wiring a transport
//!
//! [`Connector::connect`] gets an [`Attempt`] whose [`feed`](Attempt::feed) reports for the
//! connection being made: the reader task it spawns calls [`Feed::heartbeat`] for each
//! inbound message and [`Feed::close`] when the stream ends. The `reconnect_tcp` example of
//! the workspace does this over a `connkit_core` TCP transport.
#![deny(missing_docs)]
#![cfg_attr(docsrs, feature(doc_cfg))]
#![cfg_attr(
    not(test),
    deny(clippy::unwrap_used, clippy::expect_used, clippy::panic)
)]
#![cfg_attr(not(test), warn(unused_crate_dependencies))]

mod actor;
mod callbacks;
mod connector;
mod event;
mod options;
mod supervisor;

pub use callbacks::Subscription;
pub use connector::{Attempt, ConnId, Connector, Feed};
pub use event::{Event, EventError, State};
pub use options::{Options, OptionsBuilder, OptionsError, RetryPredicate};
pub use supervisor::Supervisor;

pub use connkit_core::backoff::{BackoffPolicy, Jitter, Strategy};
pub use connkit_core::events::{EventStream, Lagged};
pub use connkit_core::{Error, ErrorKind};
pub use tokio_util::sync::CancellationToken;
