//! Lifecycle publishing shared by every connkit crate: a [`watch`] of the current state and a
//! broadcast [`Stream`] of events.
//!
//! Emitting never blocks and never waits for subscribers: the I/O task calls
//! [`EventHub::emit`] and moves on. Each subscriber has a bounded buffer; one that falls behind
//! gets [`Lagged`] with the number of events it missed, then carries on with the newest ones.
//!
//! ```
//! use connkit_core::events::EventHub;
//! use futures_util::StreamExt;
//!
//! # #[tokio::main(flavor = "current_thread")] async fn main() {
//! #[derive(Debug, Clone, PartialEq)]
//! enum State { Connecting, Connected }
//! #[derive(Debug, Clone, PartialEq)]
//! enum Event { Connect }
//!
//! let hub = EventHub::new(State::Connecting, 64);
//! let mut events = hub.subscribe();
//! let state = hub.state();
//! hub.emit(Event::Connect);
//! hub.set_state(State::Connected);
//! assert_eq!(events.next().await, Some(Ok(Event::Connect)));
//! assert_eq!(*state.borrow(), State::Connected);
//! # }
//! ```

use futures_util::Stream;
use std::fmt;
use std::pin::Pin;
use std::sync::{Arc, OnceLock};
use std::task::{Context, Poll};
use tokio::sync::{broadcast, watch};
use tokio_stream::wrappers::BroadcastStream;
use tokio_stream::wrappers::errors::BroadcastStreamRecvError;

/// The default number of events a subscriber may fall behind before it lags.
pub const DEFAULT_EVENT_CAPACITY: usize = 256;

/// A subscriber fell behind and missed this many events.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, thiserror::Error)]
#[error("the event subscriber lagged and missed {missed} events")]
pub struct Lagged {
    /// How many events were dropped for this subscriber.
    pub missed: u64,
}

/// The publishing side: owned by the task that drives a connection or server.
pub struct EventHub<S, E> {
    state: watch::Sender<S>,
    /// Made on the first subscription: a broadcast channel allocates its whole ring at once,
    /// which an idle connection nobody watches should not pay for.
    events: Arc<OnceLock<broadcast::Sender<E>>>,
    capacity: usize,
}

impl<S, E> fmt::Debug for EventHub<S, E>
where
    S: fmt::Debug,
{
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EventHub")
            .field("state", &*self.state.borrow())
            .field(
                "subscribers",
                &self
                    .events
                    .get()
                    .map_or(0, broadcast::Sender::receiver_count),
            )
            .finish()
    }
}

impl<S, E> Clone for EventHub<S, E> {
    fn clone(&self) -> Self {
        Self {
            state: self.state.clone(),
            events: Arc::clone(&self.events),
            capacity: self.capacity,
        }
    }
}

impl<S, E> EventHub<S, E>
where
    S: Clone + Send + Sync + 'static,
    E: Clone + Send + 'static,
{
    /// A hub starting in `initial` whose subscribers may fall `capacity` events behind
    /// (at least 1).
    #[must_use]
    pub fn new(initial: S, capacity: usize) -> Self {
        Self {
            state: watch::Sender::new(initial),
            events: Arc::new(OnceLock::new()),
            capacity: capacity.max(1),
        }
    }

    /// Publish an event to every current subscriber. Never blocks; with no subscriber the
    /// event is dropped.
    pub fn emit(&self, event: E) {
        if let Some(tx) = self.events.get() {
            let _ = tx.send(event);
        }
    }

    /// Replace the state and wake every watcher.
    pub fn set_state(&self, state: S) {
        self.state.send_replace(state);
    }

    /// Change the state in place; watchers are woken only when `f` returns `true`.
    pub fn modify_state(&self, f: impl FnOnce(&mut S) -> bool) -> bool {
        self.state.send_if_modified(f)
    }

    /// A copy of the current state.
    #[must_use]
    pub fn current_state(&self) -> S {
        self.state.borrow().clone()
    }

    /// A receiver that always sees the latest state.
    #[must_use]
    pub fn state(&self) -> watch::Receiver<S> {
        self.state.subscribe()
    }

    /// A stream of the events emitted from now on.
    #[must_use]
    pub fn subscribe(&self) -> EventStream<E> {
        EventStream {
            inner: BroadcastStream::new(
                self.events
                    .get_or_init(|| broadcast::channel(self.capacity).0)
                    .subscribe(),
            ),
        }
    }

    /// How many event subscribers there are now.
    #[must_use]
    pub fn subscriber_count(&self) -> usize {
        self.events
            .get()
            .map_or(0, broadcast::Sender::receiver_count)
    }
}

/// A [`Stream`] of events: `Ok(event)`, or `Err(Lagged)` when this subscriber missed some.
/// It ends when every [`EventHub`] clone has been dropped.
pub struct EventStream<E> {
    inner: BroadcastStream<E>,
}

impl<E> fmt::Debug for EventStream<E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EventStream").finish_non_exhaustive()
    }
}

impl<E: Clone + Send + 'static> Stream for EventStream<E> {
    type Item = Result<E, Lagged>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        Pin::new(&mut self.inner).poll_next(cx).map(|item| {
            item.map(|r| r.map_err(|BroadcastStreamRecvError::Lagged(missed)| Lagged { missed }))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures_util::StreamExt;

    #[tokio::test]
    async fn slow_subscriber_is_told_how_many_it_missed() {
        let hub: EventHub<u8, u32> = EventHub::new(0, 4);
        let mut slow = hub.subscribe();
        for i in 0..10 {
            hub.emit(i); // never blocks, though nobody reads
        }
        assert_eq!(slow.next().await, Some(Err(Lagged { missed: 6 })));
        for want in 6..10 {
            assert_eq!(slow.next().await, Some(Ok(want)));
        }
        drop(hub);
        assert_eq!(slow.next().await, None);
    }

    #[tokio::test]
    async fn state_watchers_see_the_latest_value() {
        let hub: EventHub<&'static str, ()> = EventHub::new("a", 1);
        let mut rx = hub.state();
        hub.set_state("b");
        rx.changed().await.unwrap();
        assert_eq!(*rx.borrow_and_update(), "b");
        assert!(!hub.modify_state(|_| false));
        assert!(!rx.has_changed().unwrap());
        assert!(hub.modify_state(|s| {
            *s = "c";
            true
        }));
        assert_eq!(hub.current_state(), "c");
    }
}
