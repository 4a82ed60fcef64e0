//! # connkit-session
//!
//! Session backends — one process per document, game or user, started on demand — as
//! Jamsocket and Plane run them:
//!
//! - [`SessionBackend`] follows a backend's status like `@jamsocket/client` 1.1.6 (same
//!   methods: `is_ready`, `ready`, `on_ready`, `is_terminated`, `terminated`,
//!   `on_terminated`, `status`, `on_status`, `destroy`), over a status stream that survives
//!   dropped connections: SSE lines buffered across chunks, `Last-Event-ID` on reconnect,
//!   backoff from `connkit-core` (never a hot loop), statuses that never go back, a final
//!   error instead of silence. Both URL shapes work: Jamsocket's `{status_url}/stream` and
//!   Plane's `/pub/b/{id}/status-stream` ([`StreamDialect`]).
//! - [`ApiClient`] makes the connect call: Jamsocket v2 (`POST
//!   /v2/service/{account}/{service}/connect` with a bearer token, `dev` mode on
//!   `localhost:8080`, `JAMSOCKET_*` variables) or Plane (`POST /ctrl/connect`), plus
//!   status and terminate, with time limits and typed HTTP errors.
//! - [`dev::DevServer`] serves both APIs on loopback and runs each backend as a local
//!   process — no Docker — walking it through scheduled → loading → starting → waiting →
//!   ready → terminated.
//! - [`types`]: the wire types, lenient where the servers differ (`time` as ISO text or
//!   epoch milliseconds, `null` or absent optional fields, unknown statuses).
//!
//! ```no_run
//! use connkit_session::{ApiClient, ConnectRequest, SessionBackend};
//!
//! # async fn run() -> Result<(), connkit_session::Error> {
//! let api = ApiClient::dev()?; // a dev server on localhost:8080
//! let response = api.connect(&ConnectRequest::new().key("doc-42")).await?;
//! let backend = SessionBackend::new(&response);
//! backend.ready().await?;
//! println!("ready at {}", response.url);
//! let last = backend.terminated().await?;
//! println!("terminated: {last}");
//! # Ok(()) }
//! ```
//!
//! See `docs/session.md` for the differences from `@jamsocket/client`.
#![deny(missing_docs)]
#![cfg_attr(docsrs, feature(doc_cfg))]
#![cfg_attr(
    not(test),
    deny(clippy::unwrap_used, clippy::expect_used, clippy::panic)
)]
#![cfg_attr(not(test), warn(unused_crate_dependencies))]

mod api;
mod backend;
pub mod dev;
mod dialect;
mod error;
mod http;
pub mod sse;
mod stream;
mod time;
pub mod types;

pub use api::{ApiClient, ApiOptions, DEV_PORT, JAMSOCKET_API_URL};
pub use backend::{
    Finished, SessionBackend, SessionBackendOptions, StatusStream, Subscription, WatchState,
    fetch_status,
};
pub use dialect::StreamDialect;
pub use error::{Cause, Error, Result};
pub use time::Timestamp;
pub use types::{
    BackendState, BackendStatus, ConnectRequest, ConnectResponse, ExecutableConfig, Mount,
    PlaneConnectRequest, PlaneKeyConfig, PlaneSpawnConfig, ResourceLimits, Spawn, SpawnConfig,
    TerminationKind, TerminationReason,
};
