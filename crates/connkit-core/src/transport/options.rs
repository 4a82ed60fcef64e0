//! [`TransportOptions`]: framing, limits, queues, TLS and WebSocket settings.

use crate::framing::{DEFAULT_MAX_FRAME_LEN, DelimiterCodec, FrameError};
use crate::tls::{TlsClientConfig, TlsServerConfig};
use bytes::Bytes;
use std::time::Duration;

/// Node's `websocket` library splits messages above 16 KiB into fragments; so do we.
pub const DEFAULT_WS_FRAGMENT_SIZE: usize = 16 * 1024;

/// The default bound of the outbound queue, in messages.
pub const DEFAULT_OUTBOUND_CAPACITY: usize = 1024;

/// How a transport frames, bounds and secures its messages. One value serves both
/// [`connect`](super::connect) and [`listen`](super::listen).
///
/// ```
/// use std::time::Duration;
/// use connkit_core::transport::TransportOptions;
///
/// // socket-ipc: two NUL bytes after each message, 16 MiB at most.
/// let ipc = TransportOptions::new()
///     .delimiter(b"\0\0")
///     .max_message_len(16 << 20)
///     .connect_timeout(Duration::from_secs(5));
/// // JSTP over WebSocket: the `metarhia-jstp` subprotocol, text messages.
/// let jstp_ws = TransportOptions::new().ws_subprotocol("metarhia-jstp");
/// ```
#[derive(Debug, Clone)]
#[must_use]
pub struct TransportOptions {
    pub(crate) delimiter: Bytes,
    pub(crate) max_message_len: usize,
    pub(crate) outbound_capacity: usize,
    pub(crate) connect_timeout: Option<Duration>,
    pub(crate) handshake_timeout: Duration,
    pub(crate) ws_subprotocol: Option<String>,
    pub(crate) ws_require_subprotocol: bool,
    pub(crate) ws_binary: bool,
    pub(crate) ws_fragment_size: Option<usize>,
    pub(crate) tls_client: Option<TlsClientConfig>,
    pub(crate) tls_server: Option<TlsServerConfig>,
    pub(crate) unix_mode: Option<u32>,
    pub(crate) nodelay: bool,
}

impl Default for TransportOptions {
    fn default() -> Self {
        Self::new()
    }
}

impl TransportOptions {
    /// The defaults: one NUL delimiter, 8 MiB messages, an outbound queue of 1024 messages,
    /// a 30 s connect timeout, a 10 s server-side TLS/WebSocket handshake timeout, text
    /// WebSocket messages fragmented above 16 KiB, `TCP_NODELAY` on.
    pub fn new() -> Self {
        Self {
            delimiter: Bytes::from_static(b"\0"),
            max_message_len: DEFAULT_MAX_FRAME_LEN,
            outbound_capacity: DEFAULT_OUTBOUND_CAPACITY,
            connect_timeout: Some(Duration::from_secs(30)),
            handshake_timeout: Duration::from_secs(10),
            ws_subprotocol: None,
            ws_require_subprotocol: false,
            ws_binary: false,
            ws_fragment_size: Some(DEFAULT_WS_FRAGMENT_SIZE),
            tls_client: None,
            tls_server: None,
            unix_mode: None,
            nodelay: true,
        }
    }

    /// The bytes that end each message on stream sockets (tcp, tls, unix). WebSocket
    /// endpoints carry one message per WebSocket message and ignore it. An empty delimiter
    /// is rejected by `connect`/`listen`.
    pub fn delimiter(mut self, delimiter: &[u8]) -> Self {
        self.delimiter = Bytes::copy_from_slice(delimiter);
        self
    }

    /// The largest message accepted or sent, in bytes (default 8 MiB). A longer inbound
    /// message ends that connection with [`ErrorKind::FrameTooLong`](crate::ErrorKind::FrameTooLong).
    pub fn max_message_len(mut self, len: usize) -> Self {
        self.max_message_len = len;
        self
    }

    /// How many messages may wait to be written (default 1024, at least 1). When the queue
    /// is full, [`MessageSender::send`](super::MessageSender::send) waits for room.
    pub fn outbound_capacity(mut self, capacity: usize) -> Self {
        self.outbound_capacity = capacity.max(1);
        self
    }

    /// The time limit for a client connect, including TLS and WebSocket handshakes
    /// (default 30 s; `None` for no limit).
    pub fn connect_timeout(mut self, timeout: impl Into<Option<Duration>>) -> Self {
        self.connect_timeout = timeout.into();
        self
    }

    /// The time limit for the server-side TLS and WebSocket handshakes of an accepted
    /// connection (default 10 s).
    pub fn handshake_timeout(mut self, timeout: Duration) -> Self {
        self.handshake_timeout = timeout;
        self
    }

    /// The WebSocket subprotocol a client offers and a server accepts.
    pub fn ws_subprotocol(mut self, protocol: impl Into<String>) -> Self {
        self.ws_subprotocol = Some(protocol.into());
        self
    }

    /// Servers only: answer `403 Forbidden` to WebSocket clients that do not offer the
    /// subprotocol (as the Node JSTP server does). Default false.
    pub fn ws_require_subprotocol(mut self, require: bool) -> Self {
        self.ws_require_subprotocol = require;
        self
    }

    /// Send binary WebSocket messages instead of text (default text; text messages must be
    /// UTF-8). Both kinds are accepted on receipt.
    pub fn ws_binary(mut self, binary: bool) -> Self {
        self.ws_binary = binary;
        self
    }

    /// Split outbound WebSocket messages longer than this into fragments (default 16 KiB,
    /// as Node's `websocket` library; `None` sends each message as one frame).
    pub fn ws_fragment_size(mut self, size: impl Into<Option<usize>>) -> Self {
        self.ws_fragment_size = size.into().map(|s| s.max(1));
        self
    }

    /// The TLS settings for `tls://` and `wss://` clients.
    pub fn tls_client(mut self, config: TlsClientConfig) -> Self {
        self.tls_client = Some(config);
        self
    }

    /// The TLS settings for `tls://` and `wss://` listeners.
    pub fn tls_server(mut self, config: TlsServerConfig) -> Self {
        self.tls_server = Some(config);
        self
    }

    /// The permission bits of a Unix socket file created by `listen` (for example `0o600`).
    /// By default the umask decides.
    pub fn unix_mode(mut self, mode: u32) -> Self {
        self.unix_mode = Some(mode);
        self
    }

    /// Set `TCP_NODELAY` on TCP sockets (default true).
    pub fn nodelay(mut self, nodelay: bool) -> Self {
        self.nodelay = nodelay;
        self
    }

    /// The message delimiter.
    #[must_use]
    pub fn get_delimiter(&self) -> &[u8] {
        &self.delimiter
    }

    /// The largest message, in bytes.
    #[must_use]
    pub fn get_max_message_len(&self) -> usize {
        self.max_message_len
    }

    pub(crate) fn codec(&self) -> Result<DelimiterCodec, FrameError> {
        DelimiterCodec::new(&self.delimiter, self.max_message_len)
    }
}
