//! One IPC connection over a Unix stream socket: a [`FrameReader`] owned by the connection's
//! task, and an [`Outbox`] shared by everything that sends to it.
//!
//! Sending encodes straight into the outbox's buffer (no allocation or channel per message)
//! and bounds it in messages. Who writes the buffer to the socket:
//! - the connection's own task, before it yields ([`FlushOnPending`]): replies written by
//!   handlers, which run on that task, go out in one `write` per batch of received frames,
//!   with no hop to another task;
//! - otherwise a flusher task, woken when a message is queued while nobody is writing; it
//!   also finishes any write the socket could not take at once.
//!
//! A graceful [`close`](Outbox::close) writes what is queued, then shuts the write side down;
//! [`abort`](Outbox::abort) drops what is queued.

use crate::channel::DeferWakes;
use crate::transcoder::Transcoder;
use crate::wire::EncodeError;
use bytes::{Bytes, BytesMut};
use connkit_core::framing::{DelimiterCodec, FrameError};
use connkit_core::{Error as CoreError, ErrorKind};
use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll};
use tokio::net::UnixStream;
use tokio::net::unix::{OwnedReadHalf, OwnedWriteHalf};
use tokio::sync::Notify;
use tokio_util::codec::Decoder;
use tokio_util::sync::CancellationToken;
use tracing::{Instrument, debug, trace};

/// Bytes asked of the kernel per read (more when a large frame is arriving).
const READ_CHUNK: usize = 64 * 1024;
/// A write buffer up to this size is kept for reuse for as long as the connection lives.
const WRITE_BUF_KEEP: usize = 1 << 20;
/// A larger write buffer (up to this size) is kept for reuse too, but only until the outbox
/// has been idle for [`LARGE_BUF_IDLE`]: writing a large frame into memory the process has
/// just touched is several times faster than into fresh pages (a 16 MiB echo: ~110 ms ->
/// ~35 ms), and an idle connection does not hold on to it.
const WRITE_BUF_KEEP_BRIEFLY: usize = 64 << 20;
/// How long an idle outbox keeps a write buffer larger than [`WRITE_BUF_KEEP`].
const LARGE_BUF_IDLE: std::time::Duration = std::time::Duration::from_secs(1);
/// How many times the connection's task writes in a row before leaving the rest to the
/// flusher.
const DIRECT_ROUNDS: usize = 4;

/// Framing and queue settings of a connection.
#[derive(Debug, Clone)]
pub(crate) struct ConnOptions {
    pub(crate) codec: DelimiterCodec,
    pub(crate) queue: usize,
    /// Search each outbound frame for the delimiter.
    pub(crate) check: bool,
}

impl ConnOptions {
    pub(crate) fn new(
        transcoder: &dyn Transcoder,
        max_frame_len: usize,
        queue: usize,
    ) -> Result<Self, CoreError> {
        let delimiter = transcoder.delimiter();
        let codec = DelimiterCodec::new(delimiter, max_frame_len)
            .map_err(|e| CoreError::with_source(ErrorKind::InvalidConfig, "frame delimiter", e))?;
        Ok(Self {
            codec,
            queue: queue.max(1),
            check: !transcoder.frames_exclude_delimiter(),
        })
    }
}

/// Split a connected socket into its reader and outbox; starts the outbox's flusher task.
pub(crate) fn split(stream: UnixStream, opts: &ConnOptions) -> (FrameReader, Arc<Outbox>) {
    let (read, write) = stream.into_split();
    let outbox = Arc::new(Outbox {
        st: Mutex::new(Out {
            sock: Some(Arc::new(write)),
            ..Out::default()
        }),
        flusher: Notify::new(),
        room: Notify::new(),
        done: Notify::new(),
        stop: CancellationToken::new(),
        codec: opts.codec.clone(),
        capacity: opts.queue,
        check: opts.check,
    });
    tokio::spawn(
        run_flusher(Arc::clone(&outbox)).instrument(tracing::debug_span!("connkit.ipc.flusher")),
    );
    let reader = FrameReader {
        read,
        buf: BytesMut::with_capacity(READ_CHUNK),
        codec: opts.codec.clone(),
        eof: false,
        done: false,
    };
    (reader, outbox)
}

// ------------------------------------------------------------------------------- reading

/// Whole frames from the socket, in order.
#[derive(Debug)]
pub(crate) struct FrameReader {
    read: OwnedReadHalf,
    buf: BytesMut,
    codec: DelimiterCodec,
    eof: bool,
    done: bool,
}

fn frame_error(e: FrameError) -> CoreError {
    match e {
        FrameError::TooLong { .. } => {
            CoreError::with_source(ErrorKind::FrameTooLong, "inbound frame too long", e)
        }
        FrameError::Io(io) => CoreError::io("reading from the socket", io),
        other => CoreError::with_source(ErrorKind::Protocol, "inbound framing", other),
    }
}

impl FrameReader {
    /// The next frame (without its delimiter); `None` at the end of the stream. After an
    /// error, `None` from then on. Cancel safe.
    pub(crate) async fn next(&mut self) -> Option<Result<Bytes, CoreError>> {
        if self.done {
            return None;
        }
        loop {
            let decoded = if self.eof {
                self.codec.decode_eof(&mut self.buf)
            } else {
                self.codec.decode(&mut self.buf)
            };
            match decoded {
                Ok(Some(frame)) => return Some(Ok(frame)),
                Ok(None) if self.eof => {
                    self.done = true;
                    return None;
                }
                Ok(None) => {}
                Err(e) => {
                    self.done = true;
                    return Some(Err(frame_error(e)));
                }
            }
            if self.buf.capacity() - self.buf.len() < READ_CHUNK / 4 {
                // Doubling for a large frame, so it costs O(n) however it arrives.
                self.buf.reserve(READ_CHUNK.max(self.buf.len()));
            }
            match self.read.try_read_buf(&mut self.buf) {
                Ok(0) => self.eof = true,
                Ok(_) => tokio::task::consume_budget().await,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    if let Err(e) = self.read.readable().await {
                        self.done = true;
                        return Some(Err(CoreError::io("reading from the socket", e)));
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => {
                    self.done = true;
                    return Some(Err(CoreError::io("reading from the socket", e)));
                }
            }
        }
    }
}

// ------------------------------------------------------------------------------- writing

/// Why a message was not queued.
#[derive(Debug)]
pub(crate) enum SendError {
    /// The connection is closed or closing.
    Closed,
    /// The queue is full (only from [`Outbox::try_send`]).
    Full,
    /// The encoder failed.
    Encode(EncodeError),
    /// The frame holds the delimiter or is too long.
    Invalid(FrameError),
}

/// The sending side of a connection. See the module docs.
#[derive(Debug)]
pub(crate) struct Outbox {
    st: Mutex<Out>,
    /// Wakes the flusher task.
    flusher: Notify,
    /// Wakes senders waiting for room.
    room: Notify,
    /// Signalled once nothing more will be written.
    done: Notify,
    /// Stops the flusher at once (abort).
    stop: CancellationToken,
    codec: DelimiterCodec,
    capacity: usize,
    check: bool,
}

#[derive(Debug, Default)]
struct Out {
    /// Queued frames, each followed by the delimiter.
    buf: Vec<u8>,
    /// A written buffer kept for reuse.
    spare: Vec<u8>,
    /// Messages in `buf`.
    queued: usize,
    /// Messages taken by the current writer and not fully written yet.
    in_flight: usize,
    /// Someone is writing to the socket (the connection's task or the flusher).
    writing: bool,
    /// Data the connection's task could not finish writing, for the flusher.
    leftover: Option<(Vec<u8>, usize)>,
    /// A wake of the flusher is pending.
    flusher_woken: bool,
    /// The connection's task is running and writes the buffer before it yields.
    polling: bool,
    /// A sender waits for room.
    room_wanted: bool,
    /// Close requested: write what is queued, then shut the write side down.
    closing: bool,
    /// Nothing more is written.
    closed: bool,
    sock: Option<Arc<OwnedWriteHalf>>,
}

impl Out {
    fn has_room(&self, capacity: usize) -> bool {
        self.queued + self.in_flight < capacity
    }

    /// Take `buf` for writing.
    fn take(&mut self) -> Option<(Vec<u8>, Arc<OwnedWriteHalf>)> {
        if self.writing || self.buf.is_empty() || self.closed {
            return None;
        }
        let sock = Arc::clone(self.sock.as_ref()?);
        let data = std::mem::replace(&mut self.buf, std::mem::take(&mut self.spare));
        self.writing = true;
        self.in_flight = self.queued;
        self.queued = 0;
        Some((data, sock))
    }

    /// A write finished: keep its buffer, free the room. Whether room waiters need a wake.
    fn finish(&mut self, mut data: Vec<u8>) -> bool {
        self.writing = false;
        self.in_flight = 0;
        data.clear();
        if data.capacity() <= WRITE_BUF_KEEP_BRIEFLY && self.spare.capacity() < data.capacity() {
            self.spare = data;
        }
        std::mem::take(&mut self.room_wanted)
    }

    /// Whether an empty buffer larger than [`WRITE_BUF_KEEP`] is kept.
    fn holds_large(&self) -> bool {
        self.spare.capacity() > WRITE_BUF_KEEP
            || (self.buf.is_empty() && self.buf.capacity() > WRITE_BUF_KEEP)
    }

    /// Let go of the empty buffers larger than [`WRITE_BUF_KEEP`].
    fn release_large(&mut self) {
        if self.spare.capacity() > WRITE_BUF_KEEP {
            self.spare = Vec::new();
        }
        if self.buf.is_empty() && self.buf.capacity() > WRITE_BUF_KEEP {
            self.buf = Vec::new();
        }
    }

    /// Whether the flusher must be woken (and mark it woken).
    fn wake_flusher(&mut self) -> bool {
        let work =
            (!self.buf.is_empty() || self.closing || self.leftover.is_some()) && !self.closed;
        if work && !self.writing && !self.polling && !self.flusher_woken {
            self.flusher_woken = true;
            return true;
        }
        false
    }
}

/// Write as much of `data` as the socket takes now: `Ok(None)` when all of it was written,
/// `Ok(Some(offset))` when the socket is full at `offset`.
fn write_now(sock: &OwnedWriteHalf, data: &[u8], mut off: usize) -> io::Result<Option<usize>> {
    while off < data.len() {
        match sock.try_write(&data[off..]) {
            Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
            Ok(n) => off += n,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(Some(off)),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(None)
}

impl Outbox {
    fn lock(&self) -> MutexGuard<'_, Out> {
        self.st
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Append one frame produced by `encode` (nothing if it fails or panics).
    fn append(
        &self,
        st: &mut Out,
        encode: impl FnOnce(&mut Vec<u8>) -> Result<(), EncodeError>,
    ) -> Result<(), SendError> {
        if st.buf.is_empty() && st.spare.capacity() > st.buf.capacity() {
            // Write into the larger buffer, whose pages are already mapped.
            std::mem::swap(&mut st.buf, &mut st.spare);
        }
        // Takes the partial frame back out if `encode` fails or panics.
        struct Rollback<'a> {
            buf: &'a mut Vec<u8>,
            start: usize,
        }
        impl Drop for Rollback<'_> {
            fn drop(&mut self) {
                self.buf.truncate(self.start);
            }
        }
        let start = st.buf.len();
        let guard = Rollback {
            buf: &mut st.buf,
            start,
        };
        encode(guard.buf).map_err(SendError::Encode)?;
        let frame = &guard.buf[start..];
        if self.check {
            self.codec
                .check_message(frame)
                .map_err(SendError::Invalid)?;
        } else if frame.len() > self.codec.max_frame_len() {
            return Err(SendError::Invalid(FrameError::MessageTooLong {
                len: frame.len(),
                limit: self.codec.max_frame_len(),
            }));
        }
        std::mem::forget(guard);
        st.buf.extend_from_slice(self.codec.delimiter());
        st.queued += 1;
        Ok(())
    }

    /// Queue one frame if there is room now. The frame is encoded first, so an encode error
    /// is reported before a full queue.
    pub(crate) fn try_send(
        &self,
        encode: impl FnOnce(&mut Vec<u8>) -> Result<(), EncodeError>,
    ) -> Result<(), SendError> {
        let mut st = self.lock();
        if st.closed || st.closing {
            return Err(SendError::Closed);
        }
        let start = st.buf.len();
        self.append(&mut st, encode)?;
        if st.queued - 1 + st.in_flight >= self.capacity {
            st.buf.truncate(start);
            st.queued -= 1;
            return Err(SendError::Full);
        }
        let wake = st.wake_flusher();
        drop(st);
        if wake {
            self.flusher.notify_one();
        }
        Ok(())
    }

    /// Queue one frame, waiting for room. Cancel safe: if dropped while waiting, nothing
    /// was queued.
    pub(crate) async fn send(
        &self,
        encode: impl FnOnce(&mut Vec<u8>) -> Result<(), EncodeError>,
    ) -> Result<(), SendError> {
        let mut encode = Some(encode);
        loop {
            let room = self.room.notified();
            tokio::pin!(room);
            {
                let mut st = self.lock();
                if st.closed || st.closing {
                    return Err(SendError::Closed);
                }
                if st.has_room(self.capacity) {
                    let Some(encode) = encode.take() else {
                        return Err(SendError::Closed);
                    };
                    self.append(&mut st, encode)?;
                    let wake = st.wake_flusher();
                    drop(st);
                    if wake {
                        self.flusher.notify_one();
                    }
                    return Ok(());
                }
                // Registered under the lock: room freed from now on wakes this sender.
                st.room_wanted = true;
                room.as_mut().enable();
            }
            room.await;
        }
    }

    /// Whether nothing more will be written (closed, aborted, or the socket failed).
    pub(crate) fn is_closed(&self) -> bool {
        self.lock().closed
    }

    /// Close gracefully: what is queued is written, then the write side is shut down.
    /// Idempotent.
    pub(crate) fn close(&self) {
        let wake = {
            let mut st = self.lock();
            if st.closed || st.closing {
                return;
            }
            st.closing = true;
            st.wake_flusher()
        };
        if wake {
            self.flusher.notify_one();
        }
    }

    /// Completes once nothing more will be written. Cancel safe.
    pub(crate) async fn closed(&self) {
        loop {
            let done = self.done.notified();
            tokio::pin!(done);
            done.as_mut().enable();
            if self.is_closed() {
                return;
            }
            done.await;
        }
    }

    /// Stop at once: drop what is queued and shut the write side down.
    pub(crate) fn abort(&self) {
        let sock = {
            let mut st = self.lock();
            st.closed = true;
            st.buf = Vec::new();
            st.spare = Vec::new();
            st.queued = 0;
            st.leftover = None;
            st.sock.take()
        };
        drop(sock);
        self.stop.cancel();
        self.room.notify_waiters();
        self.done.notify_waiters();
    }

    /// Finish gracefully once the queue is written.
    fn finish_close(&self, st: &mut MutexGuard<'_, Out>) -> Option<Arc<OwnedWriteHalf>> {
        st.closed = true;
        st.sock.take()
    }

    /// The connection's task starts running.
    fn enter(&self) {
        self.lock().polling = true;
    }

    /// The connection's task is about to yield: write what is queued, unless someone else
    /// is writing; leave what the socket cannot take now to the flusher.
    fn leave(&self) {
        for _ in 0..DIRECT_ROUNDS {
            let Some((data, sock)) = self.lock().take() else {
                break;
            };
            match write_now(&sock, &data, 0) {
                Ok(None) => {
                    let (wake_room, large) = {
                        let mut st = self.lock();
                        let wake_room = st.finish(data);
                        (wake_room, st.holds_large())
                    };
                    if wake_room {
                        self.room.notify_waiters();
                    }
                    if large {
                        // The flusher's idle timer lets go of the large buffer.
                        self.flusher.notify_one();
                    }
                }
                Ok(Some(off)) => {
                    let mut st = self.lock();
                    st.leftover = Some((data, off));
                    // Still `writing`: the flusher takes over.
                    st.flusher_woken = true;
                    drop(st);
                    self.flusher.notify_one();
                    break;
                }
                Err(e) => {
                    debug!(error = %e, "write failed; closing");
                    self.abort();
                    return;
                }
            }
        }
        let wake = {
            let mut st = self.lock();
            st.polling = false;
            st.wake_flusher()
        };
        if wake {
            self.flusher.notify_one();
        }
    }
}

enum Job {
    Write(Vec<u8>, usize, Arc<OwnedWriteHalf>),
    /// Nothing to write; `true` when a large buffer is kept (released after an idle time).
    Wait(bool),
    Exit,
}

async fn run_flusher(o: Arc<Outbox>) {
    loop {
        let job = {
            let mut st = o.lock();
            if st.closed {
                Job::Exit
            } else if let Some((data, off)) = st.leftover.take() {
                match st.sock.clone() {
                    Some(sock) => Job::Write(data, off, sock),
                    None => Job::Exit,
                }
            } else if let Some((data, sock)) = st.take() {
                Job::Write(data, 0, sock)
            } else if st.closing && !st.writing {
                let sock = o.finish_close(&mut st);
                drop(st);
                drop(sock); // shuts the write side down
                o.room.notify_waiters();
                o.done.notify_waiters();
                trace!("outbox closed");
                Job::Exit
            } else {
                st.flusher_woken = false;
                Job::Wait(st.holds_large())
            }
        };
        match job {
            Job::Exit => return,
            Job::Wait(large) => {
                let idle = async {
                    if large {
                        tokio::time::sleep(LARGE_BUF_IDLE).await;
                    } else {
                        std::future::pending::<()>().await;
                    }
                };
                tokio::select! {
                    () = o.flusher.notified() => {}
                    () = o.stop.cancelled() => return,
                    () = idle => o.lock().release_large(),
                }
            }
            Job::Write(data, mut off, sock) => {
                let res = loop {
                    match write_now(&sock, &data, off) {
                        Ok(None) => break Ok(()),
                        Ok(Some(at)) => off = at,
                        Err(e) => break Err(e),
                    }
                    tokio::select! {
                        r = sock.writable() => if let Err(e) = r { break Err(e) },
                        () = o.stop.cancelled() => return,
                    }
                };
                drop(sock);
                match res {
                    Ok(()) => {
                        let wake_room = o.lock().finish(data);
                        if wake_room {
                            o.room.notify_waiters();
                        }
                    }
                    Err(e) => {
                        debug!(error = %e, "write failed; closing");
                        o.abort();
                        return;
                    }
                }
            }
        }
    }
}

/// Runs the connection's task and, each time it yields (or ends), writes what its handlers
/// queued: replies leave in one write per batch, with no hop to the flusher. Subscribers
/// that got messages during the poll are woken at its end.
pub(crate) struct FlushOnPending<F> {
    fut: Pin<Box<F>>,
    outbox: Arc<Outbox>,
}

impl<F: Future> FlushOnPending<F> {
    pub(crate) fn new(outbox: Arc<Outbox>, fut: F) -> Self {
        Self {
            fut: Box::pin(fut),
            outbox,
        }
    }
}

impl<F: Future> Future for FlushOnPending<F> {
    type Output = F::Output;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        // Subscribers are woken once per poll, after the writes, not once per message.
        let _defer = DeferWakes::new();
        self.outbox.enter();
        let out = self.fut.as_mut().poll(cx);
        self.outbox.leave();
        out
    }
}

/// Aborts the outbox when dropped: the connection ends with its reader.
pub(crate) struct AbortOnDrop(pub(crate) Arc<Outbox>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::AsyncReadExt;

    /// Frames are searched for the delimiter, as with a custom transcoder.
    #[derive(Debug)]
    struct Checked;

    impl Transcoder for Checked {
        fn encode(&self, _: &str, _: &crate::Payload, _: &mut Vec<u8>) -> Result<(), EncodeError> {
            Ok(())
        }

        fn decoder(&self) -> Box<dyn crate::transcoder::Decoder> {
            crate::JsonTranscoder.decoder()
        }
    }

    fn opts(queue: usize) -> ConnOptions {
        ConnOptions::new(&Checked, 1024, queue).unwrap()
    }

    fn text(s: &'static str) -> impl FnOnce(&mut Vec<u8>) -> Result<(), EncodeError> {
        move |buf| {
            buf.extend_from_slice(s.as_bytes());
            Ok(())
        }
    }

    #[tokio::test]
    async fn frames_round_trip_and_graceful_close_writes_the_queue_first() {
        let (a, b) = UnixStream::pair().unwrap();
        let (_ra, out) = split(a, &opts(16));
        let (mut rb, _outb) = split(b, &opts(16));
        out.try_send(text("one")).unwrap();
        out.send(text("two")).await.unwrap();
        out.close();
        assert!(matches!(out.try_send(text("late")), Err(SendError::Closed)));
        assert_eq!(&rb.next().await.unwrap().unwrap()[..], b"one");
        assert_eq!(&rb.next().await.unwrap().unwrap()[..], b"two");
        assert!(rb.next().await.is_none(), "end of stream after the queue");
        out.closed().await;
        assert!(out.is_closed());
    }

    #[tokio::test]
    async fn bad_frames_are_refused_and_nothing_is_left_behind() {
        let (a, mut b) = UnixStream::pair().unwrap();
        let (_ra, out) = split(a, &opts(16));
        assert!(matches!(
            out.try_send(text("a\0\0b")),
            Err(SendError::Invalid(FrameError::DelimiterInMessage { .. }))
        ));
        assert!(matches!(
            out.try_send(|_: &mut Vec<u8>| Err(EncodeError::new("no"))),
            Err(SendError::Encode(_))
        ));
        let panicked = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            let _ = out.try_send(|buf: &mut Vec<u8>| {
                buf.extend_from_slice(b"partial");
                panic!("encoder bug")
            });
        }));
        assert!(panicked.is_err());
        out.try_send(text("ok")).unwrap();
        out.close();
        let mut got = Vec::new();
        b.read_to_end(&mut got).await.unwrap();
        assert_eq!(got, b"ok\0\0");
    }

    #[tokio::test(start_paused = true)]
    async fn a_large_write_buffer_is_reused_then_released_when_idle() {
        let (a, b) = UnixStream::pair().unwrap();
        let big = ConnOptions::new(&Checked, 8 << 20, 16).unwrap();
        let (_ra, out) = split(a, &big);
        let (mut rb, _outb) = split(b, &big);
        let frame = |len: usize| {
            move |buf: &mut Vec<u8>| {
                buf.resize(buf.len() + len, b'x');
                Ok(())
            }
        };
        out.send(frame(4 << 20)).await.unwrap();
        assert_eq!(rb.next().await.unwrap().unwrap().len(), 4 << 20);
        let kept = |out: &Outbox| {
            let st = out.lock();
            st.buf.capacity().max(st.spare.capacity())
        };
        // Written: the buffer is kept, and the next large frame goes into it.
        tokio::task::yield_now().await;
        assert!(kept(&out) >= 4 << 20);
        out.send(frame(4 << 20)).await.unwrap();
        assert_eq!(rb.next().await.unwrap().unwrap().len(), 4 << 20);
        // Idle for a while: let go of it.
        tokio::time::sleep(LARGE_BUF_IDLE * 2).await;
        assert!(kept(&out) <= WRITE_BUF_KEEP, "{}", kept(&out));
        // Still works afterwards.
        out.send(text("small")).await.unwrap();
        assert_eq!(&rb.next().await.unwrap().unwrap()[..], b"small");
    }

    #[tokio::test]
    async fn the_queue_is_bounded_in_messages() {
        let (a, _b) = UnixStream::pair().unwrap();
        let (_ra, out) = split(a, &opts(2));
        // The peer never reads: the socket fills, then the queue.
        let big = "x".repeat(1000);
        let mut full = false;
        for _ in 0..100_000 {
            let s = big.clone();
            match out.try_send(move |buf: &mut Vec<u8>| {
                buf.extend_from_slice(s.as_bytes());
                Ok(())
            }) {
                Ok(()) => tokio::task::yield_now().await,
                Err(SendError::Full) => {
                    full = true;
                    break;
                }
                Err(e) => panic!("{e:?}"),
            }
        }
        assert!(full);
        // A waiting send is cancel safe and ends with the outbox.
        let waiting = out.send(text("wait"));
        assert!(
            tokio::time::timeout(Duration::from_millis(50), waiting)
                .await
                .is_err()
        );
        out.abort();
        assert!(matches!(
            out.send(text("after")).await,
            Err(SendError::Closed)
        ));
        out.closed().await;
    }

    use std::time::Duration;
}
