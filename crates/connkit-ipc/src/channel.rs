//! The bounded channel behind a [`Subscription`](crate::Subscription), and deferred wakes.
//!
//! A connection's task delivers a whole batch of received messages before it yields. Waking
//! the subscriber for each one costs a thread wake-up per message when the subscriber runs
//! on another thread (it drains the channel, sleeps, and is woken again by the next message).
//! Instead, while a connection's task is being polled, the first wake is made at once (no
//! added latency for a lone message) and later ones are collected and made when the poll
//! ends (see [`DeferWakes`]).

use std::cell::RefCell;
use std::collections::VecDeque;
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll, Waker};
use tokio::sync::Notify;

thread_local! {
    /// Inside a [`DeferWakes`] scope: whether a wake was made at once yet, and the wakes
    /// held back since.
    static DEFERRED: RefCell<Option<(bool, Vec<Waker>)>> = const { RefCell::new(None) };
}

/// Wake `waker` now, or, if a wake was already made in the current [`DeferWakes`] scope,
/// when the scope ends.
fn wake(waker: Waker) {
    let now = DEFERRED.with(|d| match d.try_borrow_mut() {
        Ok(mut scope) => match scope.as_mut() {
            Some((true, held)) => {
                held.push(waker);
                None
            }
            Some((first, _)) => {
                *first = true;
                Some(waker)
            }
            None => Some(waker),
        },
        Err(_) => Some(waker),
    });
    if let Some(w) = now {
        w.wake();
    }
}

/// While alive, channel wakes on this thread after the first are held back; they are made
/// when it drops.
pub(crate) struct DeferWakes {
    outermost: bool,
}

impl DeferWakes {
    pub(crate) fn new() -> Self {
        let outermost = DEFERRED.with(|d| match d.try_borrow_mut() {
            Ok(mut list) if list.is_none() => {
                *list = Some((false, Vec::new()));
                true
            }
            _ => false,
        });
        Self { outermost }
    }
}

impl Drop for DeferWakes {
    fn drop(&mut self) {
        if !self.outermost {
            return;
        }
        let held = DEFERRED.with(|d| d.try_borrow_mut().ok().and_then(|mut l| l.take()));
        for w in held.into_iter().flat_map(|(_, held)| held) {
            w.wake();
        }
    }
}

struct Shared<T> {
    st: Mutex<State<T>>,
    room: Notify,
    capacity: usize,
}

struct State<T> {
    queue: VecDeque<T>,
    receiver: Option<Waker>,
    receiver_gone: bool,
    senders: usize,
    sender_waits: bool,
}

impl<T> Shared<T> {
    fn lock(&self) -> MutexGuard<'_, State<T>> {
        self.st
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

/// A bounded channel of `capacity` items (at least 1).
pub(crate) fn channel<T>(capacity: usize) -> (Sender<T>, Receiver<T>) {
    let shared = Arc::new(Shared {
        st: Mutex::new(State {
            queue: VecDeque::new(),
            receiver: None,
            receiver_gone: false,
            senders: 1,
            sender_waits: false,
        }),
        room: Notify::new(),
        capacity: capacity.max(1),
    });
    (Sender(Arc::clone(&shared)), Receiver(shared))
}

/// The sending side; cloning it counts another sender.
pub(crate) struct Sender<T>(Arc<Shared<T>>);

impl<T> Clone for Sender<T> {
    fn clone(&self) -> Self {
        self.0.lock().senders += 1;
        Self(Arc::clone(&self.0))
    }
}

impl<T> Drop for Sender<T> {
    fn drop(&mut self) {
        let waker = {
            let mut st = self.0.lock();
            st.senders -= 1;
            if st.senders == 0 {
                st.receiver.take()
            } else {
                None
            }
        };
        if let Some(w) = waker {
            w.wake();
        }
    }
}

impl<T> Sender<T> {
    /// Queue `value`, waiting for room. `Err(value)` when the receiver is gone. Cancel safe.
    pub(crate) async fn send(&self, value: T) -> Result<(), T> {
        loop {
            let room = self.0.room.notified();
            tokio::pin!(room);
            {
                let mut st = self.0.lock();
                if st.receiver_gone {
                    return Err(value);
                }
                if st.queue.len() < self.0.capacity {
                    st.queue.push_back(value);
                    let waker = st.receiver.take();
                    drop(st);
                    if let Some(w) = waker {
                        wake(w);
                    }
                    return Ok(());
                }
                // Registered under the lock: room made from now on wakes this sender.
                st.sender_waits = true;
                room.as_mut().enable();
            }
            room.await;
        }
    }
}

/// The receiving side.
pub(crate) struct Receiver<T>(Arc<Shared<T>>);

impl<T> Receiver<T> {
    /// The next item; `None` once every sender is gone and the queue is empty.
    pub(crate) fn poll_recv(&self, cx: &mut Context<'_>) -> Poll<Option<T>> {
        let mut st = self.0.lock();
        if let Some(v) = st.queue.pop_front() {
            let notify = std::mem::take(&mut st.sender_waits);
            drop(st);
            if notify {
                self.0.room.notify_waiters();
            }
            return Poll::Ready(Some(v));
        }
        if st.senders == 0 {
            return Poll::Ready(None);
        }
        if !st
            .receiver
            .as_ref()
            .is_some_and(|w| w.will_wake(cx.waker()))
        {
            st.receiver = Some(cx.waker().clone());
        }
        Poll::Pending
    }
}

impl<T> Drop for Receiver<T> {
    fn drop(&mut self) {
        let items = {
            let mut st = self.0.lock();
            st.receiver_gone = true;
            st.receiver = None;
            std::mem::take(&mut st.queue)
        };
        drop(items);
        self.0.room.notify_waiters();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::future::poll_fn;

    #[tokio::test]
    async fn bounded_ordered_and_ends_with_the_senders() {
        let (tx, rx) = channel::<u32>(2);
        tx.send(1).await.unwrap();
        tx.send(2).await.unwrap();
        let tx2 = tx.clone();
        let third = tokio::spawn(async move { tx2.send(3).await });
        tokio::task::yield_now().await;
        assert!(!third.is_finished(), "waits for room");
        assert_eq!(poll_fn(|cx| rx.poll_recv(cx)).await, Some(1));
        third.await.unwrap().unwrap();
        assert_eq!(poll_fn(|cx| rx.poll_recv(cx)).await, Some(2));
        assert_eq!(poll_fn(|cx| rx.poll_recv(cx)).await, Some(3));
        drop(tx);
        assert_eq!(poll_fn(|cx| rx.poll_recv(cx)).await, None);
    }

    #[tokio::test]
    async fn a_gone_receiver_fails_sends_and_frees_waiting_senders() {
        let (tx, rx) = channel::<u32>(1);
        tx.send(1).await.unwrap();
        let tx2 = tx.clone();
        let waiting = tokio::spawn(async move { tx2.send(2).await });
        tokio::task::yield_now().await;
        drop(rx);
        assert_eq!(waiting.await.unwrap(), Err(2));
        assert_eq!(tx.send(3).await, Err(3));
    }

    #[tokio::test]
    async fn in_a_defer_scope_the_first_wake_is_made_and_the_rest_when_it_ends() {
        let (tx1, rx1) = channel::<u32>(8);
        let (tx2, rx2) = channel::<u32>(8);
        let got1 = tokio::spawn(async move { poll_fn(|cx| rx1.poll_recv(cx)).await });
        let got2 = tokio::spawn(async move { poll_fn(|cx| rx2.poll_recv(cx)).await });
        tokio::task::yield_now().await;
        {
            let _defer = DeferWakes::new();
            tx1.send(7).await.unwrap();
            assert!(DEFERRED.with(|d| d.borrow().as_ref().is_some_and(|s| s.0 && s.1.is_empty())));
            tx2.send(8).await.unwrap();
            assert!(DEFERRED.with(|d| d.borrow().as_ref().is_some_and(|s| s.1.len() == 1)));
        }
        assert!(DEFERRED.with(|d| d.borrow().is_none()));
        assert_eq!(got1.await.unwrap(), Some(7));
        assert_eq!(got2.await.unwrap(), Some(8));
    }
}
