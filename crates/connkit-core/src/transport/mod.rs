//! Transports: turn an [`Endpoint`] into a connection of whole messages.
//!
//! [`connect`] dials any endpoint; [`listen`] binds one and [`Listener::accept`] takes
//! connections. Either way the result is a [`Connection`]: a [`MessageSender`] with a bounded
//! queue and a [`MessageReceiver`]. Stream sockets (`tcp`, `tls`, `unix`) use delimiter
//! framing; WebSockets (`ws`, `wss`) carry one message per WebSocket message, reassemble
//! fragmented ones, answer pings, and fragment large outbound messages like Node does.
//! [`bind_socket_file`] binds a Unix socket file by the same rules as [`listen`] (stale-file
//! reclaim, mode, removal on drop) for servers that frame the raw streams themselves.
//!
//! ```no_run
//! use connkit_core::Endpoint;
//! use connkit_core::transport::{TransportOptions, connect, listen};
//!
//! # async fn demo() -> Result<(), connkit_core::Error> {
//! let opts = TransportOptions::new(); // one NUL after each message, 8 MiB max
//! let listener = listen(&"tcp://127.0.0.1:0".parse()?, &opts).await?;
//! let addr = listener.local_endpoint().clone();
//! tokio::spawn(async move {
//!     while let Ok(incoming) = listener.accept().await {
//!         tokio::spawn(async move {
//!             let (tx, mut rx) = incoming.establish().await?.split();
//!             while let Some(msg) = rx.recv().await {
//!                 tx.send(msg?).await?; // echo
//!             }
//!             Ok::<_, connkit_core::Error>(())
//!         });
//!     }
//! });
//! let (tx, mut rx) = connect(&addr, &opts).await?.split();
//! tx.send("hello").await?;
//! assert_eq!(rx.recv().await.unwrap()?, "hello");
//! # Ok(()) }
//! ```

mod connection;
mod io;
mod listener;
mod options;
mod queue;
mod reader;
mod socket_file;
mod ws;

pub use connection::{Connection, ConnectionInfo, MessageReceiver, MessageSender};
pub use listener::{Incoming, Listener, listen};
pub use options::{DEFAULT_OUTBOUND_CAPACITY, DEFAULT_WS_FRAGMENT_SIZE, TransportOptions};
pub use socket_file::{SocketFile, bind_socket_file};

use crate::endpoint::{Endpoint, Scheme};
use crate::error::{Error, ErrorKind, Result};
use io::IoStream;
use tokio::net::{TcpStream, UnixStream};
use tracing::{Instrument, debug};

/// Connect to `endpoint` and return a connection of whole messages.
///
/// The whole connect (TCP, TLS, WebSocket upgrade) is bounded by
/// [`TransportOptions::connect_timeout`]. Cancel safe: dropping the future drops any
/// half-open socket.
///
/// # Errors
/// [`ErrorKind::ConnectFailed`] (refused, unreachable, no such socket file),
/// [`ErrorKind::TimedOut`], [`ErrorKind::Tls`], [`ErrorKind::Handshake`] (WebSocket upgrade
/// refused), [`ErrorKind::InvalidConfig`] (a `tls://` or `wss://` endpoint without
/// [`TransportOptions::tls_client`], or an empty delimiter).
pub async fn connect(endpoint: &Endpoint, opts: &TransportOptions) -> Result<Connection> {
    let span = tracing::debug_span!("connkit.connect", %endpoint);
    let fut = connect_inner(endpoint, opts).instrument(span);
    match opts.connect_timeout {
        Some(limit) => tokio::time::timeout(limit, fut).await.map_err(|_| {
            Error::new(
                ErrorKind::TimedOut,
                format!("connecting to {endpoint} took longer than {limit:?}"),
            )
        })?,
        None => fut.await,
    }
}

async fn connect_inner(endpoint: &Endpoint, opts: &TransportOptions) -> Result<Connection> {
    let scheme = endpoint.scheme();
    let io = match scheme {
        Scheme::Unix => {
            let path = endpoint.path().unwrap_or(std::path::Path::new(""));
            IoStream::Unix(
                UnixStream::connect(path)
                    .await
                    .map_err(|e| Error::io(format!("connecting to {endpoint}"), e))?,
            )
        }
        _ => {
            let authority = endpoint.authority().unwrap_or_default();
            let tcp = TcpStream::connect(authority.as_str())
                .await
                .map_err(|e| Error::io(format!("connecting to {endpoint}"), e))?;
            if opts.nodelay {
                let _ = tcp.set_nodelay(true);
            }
            if scheme.is_tls() {
                let tls = opts.tls_client.as_ref().ok_or_else(|| {
                    Error::new(
                        ErrorKind::InvalidConfig,
                        format!("{endpoint} needs TransportOptions::tls_client"),
                    )
                })?;
                let host = endpoint.host().unwrap_or_default();
                let stream = tls
                    .connector()
                    .connect(tls.name_for(host)?, tcp)
                    .await
                    .map_err(|e| tls_io_error(&format!("TLS handshake with {endpoint}"), e))?;
                IoStream::TlsClient(Box::new(stream))
            } else {
                IoStream::Tcp(tcp)
            }
        }
    };
    let peer = endpoint.to_string();
    let conn = if scheme.is_websocket() {
        let (ws, agreed) = ws::client(endpoint, io, opts).await?;
        Connection::from_ws(
            ws,
            ConnectionInfo {
                scheme,
                peer,
                ws_subprotocol: agreed,
            },
            opts,
        )
    } else {
        Connection::from_stream(
            io,
            ConnectionInfo {
                scheme,
                peer,
                ws_subprotocol: None,
            },
            opts,
        )?
    };
    debug!("connected");
    Ok(conn)
}

/// A TLS handshake failure: certificate problems are fatal ([`ErrorKind::Tls`]); a socket
/// that broke during the handshake is an ordinary I/O error.
fn tls_io_error(what: &str, e: std::io::Error) -> Error {
    if e.get_ref().is_some_and(|inner| inner.is::<rustls::Error>()) {
        Error::with_source(ErrorKind::Tls, what.to_owned(), e)
    } else {
        Error::io(what.to_owned(), e)
    }
}
