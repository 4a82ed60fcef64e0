//! # connkit
//!
//! Keep connections alive. One dependency; pick the protocols with cargo features:
//!
//! | feature | module | what it is |
//! |---|---|---|
//! | (always) | [`core`] | endpoints, transports (tcp, tls, unix, ws, wss), framing, backoff, events |
//! | `reconnect` | `reconnect` | the keep-alive core: connector trait, backoff, keepalive, lifecycle events |
//! | `jstp` | `jstp` | JSTP RPC client and server, wire-compatible with `@metarhia/jstp` 2.3.0 |
//! | `jstp-redis` | `jstp::storage::RedisStorage` | JSTP server sessions in Redis: failover between processes |
//! | `ipc` | `ipc` | socket-file IPC, wire-compatible with `@crussell52/socket-ipc` 0.4.0 |
//! | `session` | `session` | session-backend client (Jamsocket v2 and Plane) and a local dev server |
//! | `full` | | every protocol |
//! | `backoff` | | interop with the unmaintained `backoff` crate (RUSTSEC-2025-0012); off by default |
//!
//! Protocol modules appear as their crates land; see the README for the road map.
//!
//! ```toml
//! [dependencies]
//! connkit = { version = "0.1", features = ["reconnect"] }
//! ```
//!
//! ```
//! use connkit::Endpoint;
//! let ep: Endpoint = "unix:///run/app.sock".parse()?;
//! assert_eq!(ep.scheme(), connkit::core::Scheme::Unix);
//! # Ok::<(), connkit::core::EndpointError>(())
//! ```
#![deny(missing_docs)]
#![cfg_attr(docsrs, feature(doc_cfg))]

/// Applies `#[cfg(feature = ...)]` and, on docs.rs, the matching `doc(cfg)` badge.
#[allow(unused_macros)]
macro_rules! cfg_feature {
    ($feature:literal, $($item:item)*) => {
        $(
            #[cfg(feature = $feature)]
            #[cfg_attr(docsrs, doc(cfg(feature = $feature)))]
            $item
        )*
    };
}

pub use connkit_core as core;
pub use connkit_core::{Endpoint, Error, ErrorKind};

cfg_feature! {
    "reconnect",
    /// The keep-alive core (`connkit-reconnect`): a [`Connector`](reconnect::Connector) trait
    /// and a [`Supervisor`](reconnect::Supervisor) that keeps one logical connection alive
    /// with backoff, keepalive and lifecycle events.
    pub use connkit_reconnect as reconnect;
}

cfg_feature! {
    "jstp",
    /// JSTP RPC (`connkit-jstp`): a [`Server`](jstp::Server) on any number of endpoints and a
    /// [`Client`](jstp::Client) with calls, events, inspect and server-to-client calls,
    /// wire-compatible with `@metarhia/jstp` 2.3.0.
    pub use connkit_jstp as jstp;
}

cfg_feature! {
    "ipc",
    /// Socket-file IPC (`connkit-ipc`): a [`Server`](ipc::Server) and auto-reconnecting
    /// [`Client`](ipc::Client)s exchanging `{topic, message}` messages, wire-compatible with
    /// `@crussell52/socket-ipc` 0.4.0.
    pub use connkit_ipc as ipc;
}

cfg_feature! {
    "session",
    /// Session backends (`connkit-session`): a [`SessionBackend`](session::SessionBackend)
    /// client that follows a backend's status like `@jamsocket/client`, an
    /// [`ApiClient`](session::ApiClient) for the Jamsocket v2 and Plane connect APIs, and a
    /// local [`DevServer`](session::dev::DevServer) that runs backends without Docker.
    pub use connkit_session as session;
}
