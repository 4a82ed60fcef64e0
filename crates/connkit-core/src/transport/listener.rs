//! Listening on an endpoint, with safe socket-file handling for Unix sockets.

use super::connection::{Connection, ConnectionInfo};
use super::io::IoStream;
use super::options::TransportOptions;
use super::socket_file::{self, SocketFile};
use super::{tls_io_error, ws};
use crate::endpoint::{Endpoint, Scheme};
use crate::error::{Error, ErrorKind, Result};
use std::fmt;
use std::path::Path;
use std::sync::Arc;
use tokio::net::{TcpListener, UnixListener};
use tracing::debug;

/// Bind `endpoint` and return a [`Listener`].
///
/// For `unix://` endpoints, a socket file left behind by a dead server is reclaimed: the path
/// is removed only when it **is a socket** and a probe connection is refused (the probe is
/// closed at once). A live server's socket, or any file that is not a socket, is left alone
/// and reported as [`ErrorKind::AddrInUse`]. The socket file is removed when the listener is
/// closed or dropped. [`bind_socket_file`](super::bind_socket_file) applies the same rules
/// for a server that wants the raw accepted streams.
///
/// # Errors
/// [`ErrorKind::AddrInUse`], [`ErrorKind::InvalidConfig`] (a `tls://`/`wss://` endpoint
/// without [`TransportOptions::tls_server`], or an empty delimiter), or the I/O error of
/// `bind`.
pub async fn listen(endpoint: &Endpoint, opts: &TransportOptions) -> Result<Listener> {
    opts.codec()
        .map_err(|e| Error::with_source(ErrorKind::InvalidConfig, "frame delimiter", e))?;
    if endpoint.scheme().is_tls() && opts.tls_server.is_none() {
        return Err(Error::new(
            ErrorKind::InvalidConfig,
            format!("listening on {endpoint} needs TransportOptions::tls_server"),
        ));
    }
    let (kind, local, socket_file) = match endpoint.scheme() {
        Scheme::Unix => {
            let path = endpoint.path().unwrap_or(Path::new(""));
            let (listener, guard) = socket_file::bind(path, opts.unix_mode).await?;
            (Kind::Unix(listener), endpoint.clone(), Some(guard))
        }
        _ => {
            let authority = endpoint.authority().unwrap_or_default();
            let listener = TcpListener::bind(authority.as_str())
                .await
                .map_err(|e| Error::io(format!("binding {endpoint}"), e))?;
            let port = listener
                .local_addr()
                .map_err(|e| Error::io("reading the bound address", e))?
                .port();
            (Kind::Tcp(listener), endpoint.with_port(port), None)
        }
    };
    debug!(endpoint = %local, "listening");
    Ok(Listener {
        kind,
        local,
        opts: Arc::new(opts.clone()),
        _socket_file: socket_file,
    })
}

enum Kind {
    Tcp(TcpListener),
    Unix(UnixListener),
}

/// A bound endpoint. [`accept`](Self::accept) takes the next raw connection; its TLS and
/// WebSocket handshakes run in [`Incoming::establish`], so a slow client never holds up the
/// accept loop.
pub struct Listener {
    kind: Kind,
    local: Endpoint,
    opts: Arc<TransportOptions>,
    _socket_file: Option<SocketFile>,
}

impl fmt::Debug for Listener {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Listener")
            .field("endpoint", &self.local)
            .finish_non_exhaustive()
    }
}

impl Listener {
    /// The endpoint actually bound (port 0 replaced by the real port).
    #[must_use]
    pub fn local_endpoint(&self) -> &Endpoint {
        &self.local
    }

    /// Wait for the next connection.
    ///
    /// Cancel safe. An error here (for example too many open files) concerns this one
    /// accept; the listener keeps working, so log it and call `accept` again.
    ///
    /// # Errors
    /// The I/O error of `accept`.
    pub async fn accept(&self) -> Result<Incoming> {
        let scheme = self.local.scheme();
        let (io, peer) = match &self.kind {
            Kind::Tcp(l) => {
                let (s, addr) = l
                    .accept()
                    .await
                    .map_err(|e| Error::io(format!("accepting on {}", self.local), e))?;
                if self.opts.nodelay {
                    let _ = s.set_nodelay(true);
                }
                (IoStream::Tcp(s), addr.to_string())
            }
            Kind::Unix(l) => {
                let (s, _) = l
                    .accept()
                    .await
                    .map_err(|e| Error::io(format!("accepting on {}", self.local), e))?;
                (IoStream::Unix(s), self.local.to_string())
            }
        };
        Ok(Incoming {
            io,
            scheme,
            peer,
            opts: Arc::clone(&self.opts),
        })
    }

    /// Stop listening. A Unix socket file is removed (dropping the listener does the same).
    pub fn close(self) {}
}

/// An accepted connection whose TLS and WebSocket handshakes have not run yet.
pub struct Incoming {
    io: IoStream,
    scheme: Scheme,
    peer: String,
    opts: Arc<TransportOptions>,
}

impl fmt::Debug for Incoming {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Incoming")
            .field("scheme", &self.scheme)
            .field("peer", &self.peer)
            .finish_non_exhaustive()
    }
}

impl Incoming {
    /// The peer's address as text.
    #[must_use]
    pub fn peer(&self) -> &str {
        &self.peer
    }

    /// Run the TLS and WebSocket handshakes (bounded by
    /// [`TransportOptions::handshake_timeout`]) and return the connection.
    ///
    /// # Errors
    /// [`ErrorKind::TimedOut`], [`ErrorKind::Tls`], [`ErrorKind::Handshake`] (for example a
    /// required subprotocol was not offered: the client got `403`).
    pub async fn establish(self) -> Result<Connection> {
        let limit = self.opts.handshake_timeout;
        let peer = self.peer.clone();
        tokio::time::timeout(limit, self.establish_inner())
            .await
            .map_err(|_| {
                Error::new(
                    ErrorKind::TimedOut,
                    format!("handshake with {peer} took longer than {limit:?}"),
                )
            })?
    }

    async fn establish_inner(self) -> Result<Connection> {
        let Self {
            io,
            scheme,
            peer,
            opts,
        } = self;
        let io = match (io, scheme.is_tls(), &opts.tls_server) {
            (IoStream::Tcp(tcp), true, Some(tls)) => IoStream::TlsServer(Box::new(
                tls.acceptor()
                    .accept(tcp)
                    .await
                    .map_err(|e| tls_io_error(&format!("TLS handshake with {peer}"), e))?,
            )),
            (io, _, _) => io,
        };
        if scheme.is_websocket() {
            let (ws, agreed) = ws::server(io, &opts, &peer).await?;
            let info = ConnectionInfo {
                scheme,
                peer,
                ws_subprotocol: agreed,
            };
            Ok(Connection::from_ws(ws, info, &opts))
        } else {
            let info = ConnectionInfo {
                scheme,
                peer,
                ws_subprotocol: None,
            };
            Connection::from_stream(io, info, &opts)
        }
    }
}
