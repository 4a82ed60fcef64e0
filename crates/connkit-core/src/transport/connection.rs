//! A connection of whole messages: a [`MessageSender`] with a bounded queue and a
//! [`MessageReceiver`].

use super::io::{BoxWrite, IoStream};
use super::options::TransportOptions;
use super::queue::{QueueError, StreamQueue, Take};
use super::reader::FrameReader;
use crate::endpoint::Scheme;
use crate::error::{Error, ErrorKind, Result};
use crate::framing::{DelimiterCodec, FrameError};
use bytes::{Bytes, BytesMut};
use futures_util::stream::{SplitSink, SplitStream};
use futures_util::{SinkExt, Stream, StreamExt};
use std::fmt;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use tokio::io::AsyncWriteExt;
use tokio::sync::mpsc;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::protocol::frame::Frame;
use tokio_tungstenite::tungstenite::protocol::frame::coding::{Data, OpCode};
use tokio_tungstenite::tungstenite::{self, Message, Utf8Bytes};
use tokio_util::sync::{CancellationToken, DropGuard};
use tracing::{Instrument, debug, trace};

/// How many queued messages the WebSocket writer takes per batch.
const WRITE_BATCH: usize = 128;
/// A stream writer idle this long lets go of its buffers.
const IDLE_RELEASE: std::time::Duration = std::time::Duration::from_secs(1);

/// What is known about a connection's other end.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConnectionInfo {
    pub(crate) scheme: Scheme,
    pub(crate) peer: String,
    pub(crate) ws_subprotocol: Option<String>,
}

impl ConnectionInfo {
    /// The transport.
    #[must_use]
    pub fn scheme(&self) -> Scheme {
        self.scheme
    }

    /// The peer's address as text (`127.0.0.1:5000`, or the socket path for Unix sockets).
    #[must_use]
    pub fn peer(&self) -> &str {
        &self.peer
    }

    /// The WebSocket subprotocol agreed in the handshake, if any.
    #[must_use]
    pub fn ws_subprotocol(&self) -> Option<&str> {
        self.ws_subprotocol.as_deref()
    }
}

/// One established connection. [`split`](Connection::split) it into a sender (cheap to
/// clone) and a receiver.
///
/// The connection closes when the receiver is dropped (at once; queued messages may be
/// lost), or gracefully when every sender is dropped or one calls
/// [`MessageSender::close`] (queued messages are written first).
#[derive(Debug)]
pub struct Connection {
    sender: MessageSender,
    receiver: MessageReceiver,
    info: ConnectionInfo,
}

impl Connection {
    /// What is known about the peer.
    #[must_use]
    pub fn info(&self) -> &ConnectionInfo {
        &self.info
    }

    /// The sending and receiving halves.
    #[must_use]
    pub fn split(self) -> (MessageSender, MessageReceiver) {
        (self.sender, self.receiver)
    }

    /// A connection over a byte stream with delimiter framing.
    pub(crate) fn from_stream(
        io: IoStream,
        info: ConnectionInfo,
        opts: &TransportOptions,
    ) -> Result<Self> {
        let codec = opts
            .codec()
            .map_err(|e| Error::with_source(ErrorKind::InvalidConfig, "frame delimiter", e))?;
        let (read, write) = io.into_split();
        let stop = CancellationToken::new();
        let queue = StreamQueue::new(opts.outbound_capacity);
        let span = tracing::debug_span!("connkit.writer", peer = %info.peer, scheme = %info.scheme);
        tokio::spawn(write_stream(Arc::clone(&queue), write, stop.clone()).instrument(span));
        let sender = MessageSender {
            tx: Tx::Stream(StreamTx(queue)),
            check: Arc::new(SendCheck::Delimited(codec.clone())),
        };
        let receiver = MessageReceiver {
            inner: Inbound::Stream(Box::new(FrameReader::new(read, codec))),
            done: false,
            _stop: stop.drop_guard(),
        };
        Ok(Self {
            sender,
            receiver,
            info,
        })
    }

    /// A connection over an established WebSocket.
    pub(crate) fn from_ws(
        ws: WebSocketStream<IoStream>,
        info: ConnectionInfo,
        opts: &TransportOptions,
    ) -> Self {
        let (sink, stream) = ws.split();
        let stop = CancellationToken::new();
        let (tx, rx) = mpsc::channel(opts.outbound_capacity);
        let span = tracing::debug_span!("connkit.writer", peer = %info.peer, scheme = %info.scheme);
        tokio::spawn(write_ws(rx, sink, opts.ws_fragment_size, stop.clone()).instrument(span));
        let check = if opts.ws_binary {
            SendCheck::WsBinary(opts.max_message_len)
        } else {
            SendCheck::WsText(opts.max_message_len)
        };
        Self {
            sender: MessageSender {
                tx: Tx::Ws(tx),
                check: Arc::new(check),
            },
            receiver: MessageReceiver {
                inner: Inbound::Ws(stream),
                done: false,
                _stop: stop.drop_guard(),
            },
            info,
        }
    }
}

enum Outgoing {
    Raw(Bytes),
    Text(Utf8Bytes),
    Close,
}

#[derive(Debug)]
#[allow(
    clippy::large_enum_variant,
    reason = "one per connection, behind an Arc"
)]
enum SendCheck {
    Delimited(DelimiterCodec),
    WsText(usize),
    WsBinary(usize),
}

/// The sending half: cheap to [`Clone`], shared by every task that writes to this connection.
///
/// Messages go through a bounded queue to one writer task, which writes whatever is queued
/// with one write (stream sockets: the queue is one byte buffer the frames are copied into).
/// When the queue is full, [`send`](Self::send) waits, so memory stays bounded however fast
/// callers produce.
#[derive(Clone)]
pub struct MessageSender {
    tx: Tx,
    check: Arc<SendCheck>,
}

#[derive(Clone)]
enum Tx {
    Stream(StreamTx),
    Ws(mpsc::Sender<Outgoing>),
}

/// A counted handle on a stream queue: the writer finishes once the last one is dropped.
struct StreamTx(Arc<StreamQueue>);

impl Clone for StreamTx {
    fn clone(&self) -> Self {
        self.0.add_sender();
        Self(Arc::clone(&self.0))
    }
}

impl Drop for StreamTx {
    fn drop(&mut self) {
        self.0.remove_sender();
    }
}

fn cannot_frame(e: FrameError) -> Error {
    Error::with_source(ErrorKind::InvalidMessage, "cannot frame the message", e)
}

fn not_a_stream() -> Error {
    Error::new(ErrorKind::InvalidMessage, "not a stream connection")
}

fn queue_error(e: QueueError) -> Error {
    match e {
        QueueError::Full => Error::new(ErrorKind::QueueFull, "the outbound queue is full"),
        QueueError::Closed => Error::closed(),
    }
}

impl fmt::Debug for MessageSender {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MessageSender")
            .field("closed", &self.is_closed())
            .field("queue_room", &self.queue_room())
            .finish()
    }
}

impl MessageSender {
    /// The delimiter of a stream connection after checking that `msg` can be framed.
    fn check_stream(&self, msg: &[u8]) -> Result<&[u8]> {
        match &*self.check {
            SendCheck::Delimited(codec) => {
                codec.check_message(msg).map_err(cannot_frame)?;
                Ok(codec.delimiter())
            }
            SendCheck::WsText(_) | SendCheck::WsBinary(_) => Err(not_a_stream()),
        }
    }

    fn prepare(&self, msg: Bytes) -> Result<Outgoing> {
        let invalid = cannot_frame;
        match &*self.check {
            SendCheck::Delimited(codec) => {
                codec.check_message(&msg).map_err(invalid)?;
                Ok(Outgoing::Raw(msg))
            }
            SendCheck::WsBinary(max) => {
                check_len(msg.len(), *max).map_err(invalid)?;
                Ok(Outgoing::Raw(msg))
            }
            SendCheck::WsText(max) => {
                check_len(msg.len(), *max).map_err(invalid)?;
                Utf8Bytes::try_from(msg).map(Outgoing::Text).map_err(|e| {
                    Error::with_source(
                        ErrorKind::InvalidMessage,
                        "a text WebSocket message must be UTF-8",
                        e,
                    )
                })
            }
        }
    }

    /// Queue one message, waiting for room in the queue.
    ///
    /// Cancel safe: if the future is dropped before it completes, the message was not queued.
    ///
    /// # Errors
    /// [`ErrorKind::InvalidMessage`] when the message cannot be framed (it contains the
    /// delimiter, is too long, or is not UTF-8 on a text WebSocket);
    /// [`ErrorKind::Closed`] when the connection is closed.
    pub async fn send(&self, msg: impl Into<Bytes>) -> Result<()> {
        let msg = msg.into();
        match &self.tx {
            Tx::Stream(q) => {
                let delimiter = self.check_stream(&msg)?;
                q.0.push(&msg, delimiter).await.map_err(queue_error)
            }
            Tx::Ws(tx) => {
                let out = self.prepare(msg)?;
                tx.send(out).await.map_err(|_| Error::closed())
            }
        }
    }

    /// Queue one message if there is room now.
    ///
    /// # Errors
    /// As [`send`](Self::send), and [`ErrorKind::QueueFull`] when there is no room (nothing
    /// was queued).
    pub fn try_send(&self, msg: impl Into<Bytes>) -> Result<()> {
        let msg = msg.into();
        match &self.tx {
            Tx::Stream(q) => {
                let delimiter = self.check_stream(&msg)?;
                q.0.try_push(&msg, delimiter).map_err(queue_error)
            }
            Tx::Ws(tx) => {
                let out = self.prepare(msg)?;
                tx.try_send(out).map_err(|e| match e {
                    mpsc::error::TrySendError::Full(_) => {
                        Error::new(ErrorKind::QueueFull, "the outbound queue is full")
                    }
                    mpsc::error::TrySendError::Closed(_) => Error::closed(),
                })
            }
        }
    }

    /// Queue messages from the front of `msgs`, in order, while there is room now; on a
    /// stream socket under one lock of the queue for all of them. Returns how many were
    /// queued, and `Ok(())` when that is all of them, or else the error of `msgs[queued]`
    /// (as [`try_send`](Self::try_send) would give it: [`ErrorKind::QueueFull`],
    /// [`ErrorKind::Closed`], or [`ErrorKind::InvalidMessage`] for a message that cannot be
    /// framed); the messages after it were not tried.
    ///
    /// ```
    /// # async fn demo(tx: connkit_core::transport::MessageSender) {
    /// use bytes::Bytes;
    /// let batch = [Bytes::from_static(b"one"), Bytes::from_static(b"two")];
    /// let (queued, result) = tx.try_send_many(&batch);
    /// if let Err(e) = result {
    ///     eprintln!("queued {queued} of {}, then: {e}", batch.len());
    /// }
    /// # }
    /// ```
    pub fn try_send_many(&self, msgs: &[Bytes]) -> (usize, Result<()>) {
        match &self.tx {
            Tx::Stream(q) => match &*self.check {
                SendCheck::Delimited(codec) => q.0.try_push_many(
                    msgs,
                    codec.delimiter(),
                    |msg| codec.check_message(msg).map_err(cannot_frame),
                    queue_error,
                ),
                SendCheck::WsText(_) | SendCheck::WsBinary(_) => (0, Err(not_a_stream())),
            },
            Tx::Ws(_) => {
                for (i, msg) in msgs.iter().enumerate() {
                    if let Err(e) = self.try_send(msg.clone()) {
                        return (i, Err(e));
                    }
                }
                (msgs.len(), Ok(()))
            }
        }
    }

    /// Close gracefully: messages queued before this call are written, then the write side is
    /// shut down (stream sockets) or a close frame is sent (WebSocket). Idempotent. Messages
    /// sent after it are not written (on stream sockets they fail with
    /// [`ErrorKind::Closed`]).
    ///
    /// Cancel safe. Returns once the close is queued, not once it is written; await
    /// [`closed`](Self::closed) for that.
    pub async fn close(&self) {
        match &self.tx {
            Tx::Stream(q) => q.0.close(),
            Tx::Ws(tx) => {
                let _ = tx.send(Outgoing::Close).await;
            }
        }
    }

    /// Completes when the writer has stopped (after a close, a write error, or the receiver
    /// being dropped). Cancel safe.
    pub async fn closed(&self) {
        match &self.tx {
            Tx::Stream(q) => q.0.closed().await,
            Tx::Ws(tx) => tx.closed().await,
        }
    }

    /// Whether the writer has stopped.
    #[must_use]
    pub fn is_closed(&self) -> bool {
        match &self.tx {
            Tx::Stream(q) => q.0.is_stopped(),
            Tx::Ws(tx) => tx.is_closed(),
        }
    }

    /// How many more messages fit in the queue now.
    #[must_use]
    pub fn queue_room(&self) -> usize {
        match &self.tx {
            Tx::Stream(q) => q.0.room(),
            Tx::Ws(tx) => tx.capacity(),
        }
    }
}

fn check_len(len: usize, limit: usize) -> std::result::Result<(), FrameError> {
    if len > limit {
        Err(FrameError::MessageTooLong { len, limit })
    } else {
        Ok(())
    }
}

/// Boxed: the codec's searcher makes the reader a few hundred bytes, and receivers are
/// moved around (and queued, for a session restore) by value.
enum Inbound {
    Stream(Box<FrameReader>),
    Ws(SplitStream<WebSocketStream<IoStream>>),
}

/// The receiving half: whole messages, in order. Also a [`Stream`].
///
/// After an error (an oversize or truncated frame, a broken socket) it yields `None`.
/// Dropping it closes the connection.
pub struct MessageReceiver {
    inner: Inbound,
    done: bool,
    _stop: DropGuard,
}

impl fmt::Debug for MessageReceiver {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MessageReceiver")
            .field("done", &self.done)
            .finish_non_exhaustive()
    }
}

impl MessageReceiver {
    /// The next message; `None` when the peer closed the connection or after an error.
    ///
    /// Cancel safe: if the future is dropped, no message is lost.
    pub async fn recv(&mut self) -> Option<Result<Bytes>> {
        self.next().await
    }
}

fn frame_error(e: FrameError) -> Error {
    match e {
        FrameError::TooLong { .. } => {
            Error::with_source(ErrorKind::FrameTooLong, "inbound frame too long", e)
        }
        FrameError::Io(io) => Error::io("reading from the socket", io),
        other => Error::with_source(ErrorKind::Protocol, "inbound framing", other),
    }
}

pub(crate) fn ws_error(what: &str, e: tungstenite::Error) -> Error {
    match e {
        tungstenite::Error::Io(io) => Error::io(what.to_owned(), io),
        tungstenite::Error::Capacity(c) => Error::with_source(
            ErrorKind::FrameTooLong,
            format!("{what}: message too long"),
            c,
        ),
        tungstenite::Error::ConnectionClosed | tungstenite::Error::AlreadyClosed => Error::closed(),
        other => Error::with_source(ErrorKind::WebSocket, what.to_owned(), other),
    }
}

impl Stream for MessageReceiver {
    type Item = Result<Bytes>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        if self.done {
            return Poll::Ready(None);
        }
        let this = &mut *self;
        let item = match &mut this.inner {
            Inbound::Stream(reader) => match reader.poll_frame(cx) {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(item) => item.map(|r| r.map_err(frame_error)),
            },
            Inbound::Ws(ws) => loop {
                match Pin::new(&mut *ws).poll_next(cx) {
                    Poll::Pending => return Poll::Pending,
                    Poll::Ready(None) => break None,
                    Poll::Ready(Some(Err(e))) => {
                        break Some(Err(ws_error("reading a WebSocket message", e)));
                    }
                    Poll::Ready(Some(Ok(msg))) => match msg {
                        Message::Text(t) => break Some(Ok(Bytes::from(t))),
                        Message::Binary(b) => break Some(Ok(b)),
                        Message::Close(frame) => {
                            trace!(?frame, "websocket close received");
                            break None;
                        }
                        // Pings are answered by tungstenite as we read; pongs need nothing.
                        Message::Ping(_) | Message::Pong(_) | Message::Frame(_) => {}
                    },
                }
            },
        };
        match &item {
            None | Some(Err(_)) => this.done = true,
            Some(Ok(_)) => {}
        }
        Poll::Ready(item)
    }
}

async fn write_stream(queue: Arc<StreamQueue>, mut w: BoxWrite, stop: CancellationToken) {
    let mut buf = BytesMut::new();
    let mut graceful = true;
    // Buffers are kept while there is traffic and released after `IDLE_RELEASE` without
    // any, so that an idle connection holds no write buffer.
    let mut holding = false;
    loop {
        let take = tokio::select! {
            biased;
            () = stop.cancelled() => { graceful = false; break; }
            t = std::future::poll_fn(|cx| queue.poll_take(cx, &mut buf)) => t,
            () = tokio::time::sleep(IDLE_RELEASE), if holding => {
                buf = BytesMut::new();
                queue.release_idle();
                holding = false;
                continue;
            }
        };
        let close = match take {
            Take::Done => break, // closed, or every sender is gone
            Take::Bytes { close } => close,
        };
        let res = tokio::select! {
            biased;
            () = stop.cancelled() => { graceful = false; break; }
            res = w.write_all(&buf) => res,
        };
        if let Err(e) = res {
            debug!(error = %e, "write failed; closing");
            graceful = false;
            break;
        }
        StreamQueue::recycle(&mut buf);
        holding = true;
        if close {
            break;
        }
    }
    queue.stop();
    drop(buf);
    if graceful {
        let _ = tokio::time::timeout(std::time::Duration::from_secs(5), w.shutdown()).await;
    }
    trace!(graceful, "writer stopped");
}

async fn write_ws(
    mut rx: mpsc::Receiver<Outgoing>,
    mut sink: SplitSink<WebSocketStream<IoStream>, Message>,
    fragment: Option<usize>,
    stop: CancellationToken,
) {
    let mut batch = Vec::with_capacity(WRITE_BATCH);
    let mut graceful = true;
    'run: loop {
        let n = tokio::select! {
            biased;
            () = stop.cancelled() => { graceful = false; break 'run; }
            n = rx.recv_many(&mut batch, WRITE_BATCH) => n,
        };
        if n == 0 {
            break;
        }
        let mut close = false;
        let res: std::result::Result<(), tungstenite::Error> = async {
            for out in batch.drain(..) {
                match out {
                    Outgoing::Raw(b) => match fragment {
                        Some(size) if b.len() > size => {
                            feed_fragments(&mut sink, b, Data::Binary, size).await?;
                        }
                        _ => sink.feed(Message::Binary(b)).await?,
                    },
                    Outgoing::Text(t) => match fragment {
                        Some(size) if t.len() > size => {
                            feed_fragments(&mut sink, Bytes::from(t), Data::Text, size).await?;
                        }
                        _ => sink.feed(Message::Text(t)).await?,
                    },
                    Outgoing::Close => {
                        close = true;
                        break;
                    }
                }
            }
            sink.flush().await
        }
        .await;
        batch.clear();
        if let Err(e) = res {
            debug!(error = %e, "websocket write failed; closing");
            graceful = false;
            break;
        }
        if close || stop.is_cancelled() {
            graceful = !stop.is_cancelled();
            break;
        }
    }
    rx.close();
    if graceful {
        let _ = tokio::time::timeout(std::time::Duration::from_secs(5), sink.close()).await;
    }
    trace!(graceful, "websocket writer stopped");
}

async fn feed_fragments(
    sink: &mut SplitSink<WebSocketStream<IoStream>, Message>,
    data: Bytes,
    op: Data,
    size: usize,
) -> std::result::Result<(), tungstenite::Error> {
    let total = data.len();
    let mut at = 0;
    while at < total {
        let end = (at + size).min(total);
        let opcode = if at == 0 {
            OpCode::Data(op)
        } else {
            OpCode::Data(Data::Continue)
        };
        sink.feed(Message::Frame(Frame::message(
            data.slice(at..end),
            opcode,
            end == total,
        )))
        .await?;
        at = end;
    }
    Ok(())
}
