//! The outbound queue of a stream socket: frames are written (with their delimiter) straight
//! into one shared byte buffer, and the writer task takes the whole buffer at once.
//!
//! Compared with a channel of messages this costs one uncontended lock and one copy per
//! message, with no per-message slot, no per-message wake-up of the writer (it is woken
//! once, when the buffer goes from empty to non-empty), and one `write` for everything that
//! was queued since the last one, however many messages that is. An idle connection holds
//! no buffer: the writer lets go of it once nothing more is queued.

use bytes::BytesMut;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll, Waker};
use tokio::sync::Notify;

/// A batch larger than this is not kept for reuse.
const KEEP_MAX: usize = 1 << 20;
/// The first allocation of an empty buffer is at least this large.
const MIN_ALLOC: usize = 256;

/// Why a message was not queued.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum QueueError {
    /// The queue holds its capacity of messages.
    Full,
    /// The writer stopped, or a close was queued.
    Closed,
}

#[derive(Debug, Default)]
struct State {
    buf: BytesMut,
    /// Messages in `buf`.
    queued: usize,
    /// A close was queued: nothing more is accepted; the writer stops after `buf`.
    close: bool,
    /// The writer has stopped.
    stopped: bool,
    /// A sender waits for room.
    room_wanted: bool,
    /// The writer waits for something to write.
    writer: Option<Waker>,
    /// The size of the last batch taken, the first allocation of the next one.
    hint: usize,
}

/// Shared by the senders and the writer task.
#[derive(Debug)]
pub(crate) struct StreamQueue {
    state: Mutex<State>,
    /// Wakes senders waiting for room and waiters of `closed`.
    notify: Notify,
    capacity: usize,
    senders: AtomicUsize,
}

/// What the writer takes.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Take {
    /// Bytes were swapped into the writer's buffer; `close` when nothing follows them.
    Bytes { close: bool },
    /// Nothing to write and nothing will come: a close was queued or every sender is gone.
    Done,
}

impl StreamQueue {
    pub(crate) fn new(capacity: usize) -> Arc<Self> {
        Arc::new(Self {
            state: Mutex::new(State::default()),
            notify: Notify::new(),
            capacity: capacity.max(1),
            senders: AtomicUsize::new(1),
        })
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // No code panics while holding the lock; recover the state if one ever did.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Queue `msg` followed by `delimiter` if there is room now.
    pub(crate) fn try_push(&self, msg: &[u8], delimiter: &[u8]) -> Result<(), QueueError> {
        let mut st = self.lock();
        self.push_locked(&mut st, msg, delimiter)
    }

    /// Queue messages from the front of `msgs` under one lock, each after `check` accepts
    /// it, until one is refused: returns how many were queued, and why the next was not
    /// (`check`'s error, or the queue's).
    pub(crate) fn try_push_many<E>(
        &self,
        msgs: &[bytes::Bytes],
        delimiter: &[u8],
        check: impl Fn(&[u8]) -> Result<(), E>,
        queue_error: impl Fn(QueueError) -> E,
    ) -> (usize, Result<(), E>) {
        let mut st = self.lock();
        for (i, msg) in msgs.iter().enumerate() {
            if let Err(e) = check(msg) {
                return (i, Err(e));
            }
            if let Err(e) = self.push_locked(&mut st, msg, delimiter) {
                return (i, Err(queue_error(e)));
            }
        }
        (msgs.len(), Ok(()))
    }

    fn push_locked(&self, st: &mut State, msg: &[u8], delimiter: &[u8]) -> Result<(), QueueError> {
        if st.stopped || st.close {
            return Err(QueueError::Closed);
        }
        if st.queued >= self.capacity {
            return Err(QueueError::Full);
        }
        let need = msg.len() + delimiter.len();
        if st.buf.capacity() - st.buf.len() < need {
            let want = if st.buf.is_empty() {
                need.max(st.hint).max(MIN_ALLOC)
            } else {
                need
            };
            st.buf.reserve(want);
        }
        st.buf.extend_from_slice(msg);
        st.buf.extend_from_slice(delimiter);
        st.queued += 1;
        if let Some(w) = st.writer.take() {
            w.wake();
        }
        Ok(())
    }

    /// Queue `msg`, waiting for room. Cancel safe: when dropped, nothing was queued.
    pub(crate) async fn push(&self, msg: &[u8], delimiter: &[u8]) -> Result<(), QueueError> {
        loop {
            let notified = self.notify.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            {
                let mut st = self.lock();
                match self.push_locked(&mut st, msg, delimiter) {
                    Err(QueueError::Full) => st.room_wanted = true,
                    other => return other,
                }
            }
            notified.await;
        }
    }

    /// Queue a close: what is queued is written, then the writer stops. Idempotent.
    pub(crate) fn close(&self) {
        let mut st = self.lock();
        st.close = true;
        if let Some(w) = st.writer.take() {
            w.wake();
        }
    }

    /// Completes once the writer has stopped. Cancel safe.
    pub(crate) async fn closed(&self) {
        loop {
            let notified = self.notify.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            if self.lock().stopped {
                return;
            }
            notified.await;
        }
    }

    pub(crate) fn is_stopped(&self) -> bool {
        self.lock().stopped
    }

    /// How many more messages fit now.
    pub(crate) fn room(&self) -> usize {
        let st = self.lock();
        if st.stopped {
            0
        } else {
            self.capacity.saturating_sub(st.queued)
        }
    }

    /// For the writer: swap what is queued into `out` (which must be empty).
    pub(crate) fn poll_take(&self, cx: &mut Context<'_>, out: &mut BytesMut) -> Poll<Take> {
        let mut st = self.lock();
        if !st.buf.is_empty() {
            std::mem::swap(&mut st.buf, out);
            st.queued = 0;
            st.hint = out.len().min(KEEP_MAX);
            let close = st.close;
            let wake = std::mem::take(&mut st.room_wanted);
            drop(st);
            if wake {
                self.notify.notify_waiters();
            }
            return Poll::Ready(Take::Bytes { close });
        }
        if st.close || st.stopped || self.senders.load(Ordering::Acquire) == 0 {
            return Poll::Ready(Take::Done);
        }
        match &st.writer {
            Some(w) if w.will_wake(cx.waker()) => {}
            _ => st.writer = Some(cx.waker().clone()),
        }
        Poll::Pending
    }

    /// For the writer, after writing a batch: keep its buffer for the next one unless it
    /// grew very large.
    pub(crate) fn recycle(spent: &mut BytesMut) {
        spent.clear();
        if spent.capacity() > KEEP_MAX {
            *spent = BytesMut::new();
        }
    }

    /// For the writer, once the connection has been idle for a while: let go of the queue's
    /// buffer if it is empty (the writer drops its own).
    pub(crate) fn release_idle(&self) {
        let mut st = self.lock();
        if st.buf.is_empty() {
            st.buf = BytesMut::new();
        }
    }

    /// For the writer, when it stops: refuse everything from now on and wake every waiter.
    pub(crate) fn stop(&self) {
        {
            let mut st = self.lock();
            st.stopped = true;
            st.buf = BytesMut::new();
            st.queued = 0;
            st.writer = None;
        }
        self.notify.notify_waiters();
    }

    /// A sender handle was cloned.
    pub(crate) fn add_sender(&self) {
        self.senders.fetch_add(1, Ordering::Relaxed);
    }

    /// A sender handle was dropped; the last one wakes the writer so that it can finish.
    pub(crate) fn remove_sender(&self) {
        if self.senders.fetch_sub(1, Ordering::AcqRel) == 1 {
            let w = self.lock().writer.take();
            if let Some(w) = w {
                w.wake();
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn take(q: &StreamQueue, out: &mut BytesMut) -> Poll<Take> {
        q.poll_take(&mut Context::from_waker(Waker::noop()), out)
    }

    #[test]
    fn frames_are_batched_and_bounded() {
        let q = StreamQueue::new(2);
        q.try_push(b"a", b"\0").unwrap();
        q.try_push(b"bc", b"\0").unwrap();
        assert_eq!(q.try_push(b"d", b"\0"), Err(QueueError::Full));
        assert_eq!(q.room(), 0);
        let mut out = BytesMut::new();
        assert_eq!(
            take(&q, &mut out),
            Poll::Ready(Take::Bytes { close: false })
        );
        assert_eq!(&out[..], b"a\0bc\0");
        assert_eq!(q.room(), 2);
        StreamQueue::recycle(&mut out);
        assert!(out.is_empty());
        assert_eq!(take(&q, &mut out), Poll::Pending);
        q.release_idle();
        q.try_push(b"e", b"\0").unwrap();
        q.close();
        assert_eq!(q.try_push(b"f", b"\0"), Err(QueueError::Closed));
        assert_eq!(take(&q, &mut out), Poll::Ready(Take::Bytes { close: true }));
        assert_eq!(&out[..], b"e\0");
    }

    #[test]
    fn the_last_sender_gone_ends_the_writer() {
        let q = StreamQueue::new(4);
        q.add_sender();
        q.remove_sender();
        let mut out = BytesMut::new();
        assert_eq!(take(&q, &mut out), Poll::Pending);
        q.remove_sender();
        assert_eq!(take(&q, &mut out), Poll::Ready(Take::Done));
        q.stop();
        assert!(q.is_stopped());
        assert_eq!(q.try_push(b"x", b"\0"), Err(QueueError::Closed));
    }

    #[tokio::test]
    async fn a_full_queue_waits_for_the_writer() {
        let q = StreamQueue::new(1);
        q.try_push(b"a", b"\0").unwrap();
        let q2 = Arc::clone(&q);
        let waiter = tokio::spawn(async move { q2.push(b"b", b"\0").await });
        tokio::task::yield_now().await;
        assert!(!waiter.is_finished());
        let mut out = BytesMut::new();
        assert!(matches!(
            take(&q, &mut out),
            Poll::Ready(Take::Bytes { .. })
        ));
        assert_eq!(waiter.await.unwrap(), Ok(()));
        out.clear();
        assert!(matches!(
            take(&q, &mut out),
            Poll::Ready(Take::Bytes { .. })
        ));
        assert_eq!(&out[..], b"b\0");
        let q3 = Arc::clone(&q);
        let closed = tokio::spawn(async move { q3.closed().await });
        tokio::task::yield_now().await;
        q.stop();
        closed.await.unwrap();
    }
}
