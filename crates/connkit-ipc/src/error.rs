//! The IPC error type.

use crate::ClientId;
use crate::wire::{DecodeError, EncodeError};

/// A boxed error from user code (a failing message handler).
pub type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// Everything that can go wrong in connkit-ipc.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The message could not be encoded; nothing was sent.
    #[error("cannot encode the message for topic `{topic}`")]
    Encode {
        /// The topic of the message.
        topic: String,
        /// Why.
        #[source]
        source: EncodeError,
    },
    /// A frame could not be decoded; the connection that sent it was closed.
    #[error("bad frame from {from}")]
    Decode {
        /// Who sent it: a client id, or `server`.
        from: String,
        /// Why.
        #[source]
        source: DecodeError,
    },
    /// `send` or `broadcast` after `close`.
    #[error("cannot send on topic `{topic}`: closed")]
    SendAfterClose {
        /// The topic of the message.
        topic: String,
    },
    /// No connected client has this id (never had, or it has gone).
    #[error("no connected client with id {client}")]
    BadClient {
        /// The id given.
        client: ClientId,
    },
    /// The client has no live connection to a server right now.
    #[error("cannot send on topic `{topic}`: not connected to a server")]
    NoServer {
        /// The topic of the message.
        topic: String,
    },
    /// A client's outbound queue was full under [`SlowClient::Disconnect`](crate::SlowClient::Disconnect).
    #[error("client {client} does not read fast enough; disconnected")]
    SlowClient {
        /// The client.
        client: ClientId,
    },
    /// The queue of messages sent while disconnected is full.
    #[error("the offline queue is full (topic `{topic}`)")]
    QueueFull {
        /// The topic of the message.
        topic: String,
    },
    /// A message handler failed or panicked; that client was disconnected.
    #[error("the handler for topic `{topic}` failed")]
    Handler {
        /// The topic being handled.
        topic: String,
        /// What the handler returned (or the panic message).
        #[source]
        source: BoxError,
    },
    /// `listen` was called on a server that is already listening or closed.
    #[error("the server is already listening or closed")]
    AlreadyListening,
    /// An option is invalid.
    #[error("invalid option: {0}")]
    InvalidOption(String),
    /// A transport failure (bind, connect, socket I/O, oversize frame).
    #[error(transparent)]
    Transport(#[from] connkit_core::Error),
}

impl Error {
    /// Whether retrying later can help (a transport failure that is retryable, or no server).
    #[must_use]
    pub fn is_retryable(&self) -> bool {
        match self {
            Self::Transport(e) => e.is_retryable(),
            Self::NoServer { .. } | Self::QueueFull { .. } => true,
            _ => false,
        }
    }
}

/// A `Result` with [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;
