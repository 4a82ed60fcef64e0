//! Topic routing shared by the server and the client: reliable subscriptions and handlers.

use crate::channel;
use crate::error::{BoxError, Error, Result};
use crate::{Incoming, Topic};
use std::any::Any;
use std::fmt;
use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock, Weak};
use std::task::{Context, Poll, ready};

/// A handler, its future's type erased.
trait Handler: Send + Sync {
    /// Call the handler on `m` and put its future in `slot`: in the one already there (the
    /// future of this handler's previous message, done) or, the first time, in a new one.
    /// Handlers run one at a time per connection, so after the first message no allocation
    /// is made per call.
    fn start(&self, m: Incoming, slot: &mut Option<Box<dyn Running>>);
}

/// Where one handler's future runs on one connection.
trait Running: Send {
    /// Poll the future in place; once it is done it is dropped (the space is kept).
    fn poll_done(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), BoxError>>;

    fn as_any(&mut self) -> &mut dyn Any;
}

struct FnHandler<F>(F);

impl<F, Fut, E> Handler for FnHandler<F>
where
    F: Fn(Incoming) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<(), E>> + Send + 'static,
    E: Into<BoxError> + 'static,
{
    fn start(&self, m: Incoming, slot: &mut Option<Box<dyn Running>>) {
        let fut = (self.0)(m);
        match slot
            .as_mut()
            .and_then(|s| s.as_any().downcast_mut::<Slot<Fut>>())
        {
            Some(s) => s.0.as_mut().set(Some(fut)),
            None => *slot = Some(Box::new(Slot(Box::pin(Some(fut))))),
        }
    }
}

/// A handler's future, or nothing between messages.
struct Slot<Fut>(Pin<Box<Option<Fut>>>);

impl<Fut, E> Running for Slot<Fut>
where
    Fut: Future<Output = Result<(), E>> + Send + 'static,
    E: Into<BoxError> + 'static,
{
    fn poll_done(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        let Some(fut) = self.0.as_mut().as_pin_mut() else {
            return Poll::Ready(Ok(()));
        };
        let out = ready!(fut.poll(cx));
        self.0.as_mut().set(None);
        Poll::Ready(out.map_err(Into::into))
    }

    fn as_any(&mut self) -> &mut dyn Any {
        self
    }
}

/// The handlers' futures of one connection, kept from one message to the next (see
/// [`Handler::start`]), by handler id.
#[derive(Default)]
pub(crate) struct Slots(Vec<(u64, Option<Box<dyn Running>>)>);

impl Slots {
    fn get(&mut self, id: u64) -> &mut Option<Box<dyn Running>> {
        let at = match self.0.iter().position(|(i, _)| *i == id) {
            Some(at) => at,
            None => {
                self.0.push((id, None));
                self.0.len() - 1
            }
        };
        &mut self.0[at].1
    }

    /// Forget the slots of removed handlers.
    fn prune(&mut self, handlers: &[Route<Arc<dyn Handler>>]) {
        if self.0.len() > handlers.len() {
            self.0
                .retain(|(id, _)| handlers.iter().any(|r| r.id == *id));
        }
    }
}

#[derive(Clone)]
struct Route<T> {
    id: u64,
    topic: Option<String>,
    target: T,
}

impl<T> Route<T> {
    fn matches(&self, topic: &Topic) -> bool {
        self.topic.as_deref().is_none_or(|t| topic == t)
    }
}

#[derive(Default, Clone)]
struct Routes {
    subs: Vec<Route<channel::Sender<Incoming>>>,
    handlers: Vec<Route<Arc<dyn Handler>>>,
}

/// Subscriptions and handlers by topic. Dispatch takes a snapshot of the routes (an `Arc`
/// clone); changing them copies the lists if a dispatch still holds the old snapshot.
pub(crate) struct Router {
    routes: RwLock<Arc<Routes>>,
    next: AtomicU64,
    capacity: usize,
}

impl Router {
    pub(crate) fn new(capacity: usize) -> Self {
        Self {
            routes: RwLock::new(Arc::new(Routes::default())),
            next: AtomicU64::new(1),
            capacity: capacity.max(1),
        }
    }

    fn change(&self, f: impl FnOnce(&mut Routes)) {
        let mut routes = self
            .routes
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        f(Arc::make_mut(&mut routes));
    }

    fn snapshot(&self) -> Arc<Routes> {
        Arc::clone(
            &self
                .routes
                .read()
                .unwrap_or_else(std::sync::PoisonError::into_inner),
        )
    }

    pub(crate) fn subscribe(self: &Arc<Self>, topic: Option<&str>) -> Subscription {
        let (tx, rx) = channel::channel(self.capacity);
        let id = self.next.fetch_add(1, Ordering::Relaxed);
        self.change(|r| {
            r.subs.push(Route {
                id,
                topic: topic.map(str::to_owned),
                target: tx,
            });
        });
        Subscription {
            rx,
            id,
            router: Arc::downgrade(self),
        }
    }

    pub(crate) fn on<F, Fut, E>(self: &Arc<Self>, topic: Option<&str>, handler: F) -> HandlerGuard
    where
        F: Fn(Incoming) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<(), E>> + Send + 'static,
        E: Into<BoxError> + 'static,
    {
        let f: Arc<dyn Handler> = Arc::new(FnHandler(handler));
        let id = self.next.fetch_add(1, Ordering::Relaxed);
        self.change(|r| {
            r.handlers.push(Route {
                id,
                topic: topic.map(str::to_owned),
                target: f,
            });
        });
        HandlerGuard {
            id: Some(id),
            router: Arc::downgrade(self),
        }
    }

    fn remove(&self, id: u64) {
        self.change(|routes| {
            routes.subs.retain(|r| r.id != id);
            routes.handlers.retain(|r| r.id != id);
        });
    }

    /// Deliver to every matching subscription (waiting for room: nothing is dropped), then run
    /// every matching handler in order, their futures in `slots`. The message is cloned for
    /// all targets but the last, which gets it. A failing or panicking handler is an
    /// [`Error::Handler`].
    pub(crate) async fn dispatch(&self, incoming: Incoming, slots: &mut Slots) -> Result<()> {
        let routes = self.snapshot();
        slots.prune(&routes.handlers);
        let topic = incoming.topic.clone();
        let mut left = routes.subs.iter().filter(|r| r.matches(&topic)).count()
            + routes.handlers.iter().filter(|r| r.matches(&topic)).count();
        let mut incoming = Some(incoming);
        let mut next = || {
            left -= 1;
            if left == 0 {
                incoming.take()
            } else {
                incoming.clone()
            }
        };
        for r in &routes.subs {
            if !r.matches(&topic) {
                continue;
            }
            let Some(m) = next() else { break };
            if r.target.send(m).await.is_err() {
                self.remove(r.id);
            }
        }
        for r in &routes.handlers {
            if !r.matches(&topic) {
                continue;
            }
            let Some(m) = next() else { break };
            let slot = slots.get(r.id);
            let started = std::panic::catch_unwind(AssertUnwindSafe(|| r.target.start(m, slot)));
            let done = match started {
                Ok(()) => {
                    std::future::poll_fn(|cx| {
                        std::panic::catch_unwind(AssertUnwindSafe(|| {
                            slot.as_mut()
                                .map_or(Poll::Ready(Ok(())), |s| s.poll_done(cx))
                        }))
                        .unwrap_or_else(|panic| {
                            // Dropped: a panicked future is not polled again.
                            *slot = None;
                            Poll::Ready(Err(panic_message(&*panic).into()))
                        })
                    })
                    .await
                }
                Err(panic) => Err(panic_message(&*panic).into()),
            };
            if let Err(source) = done {
                return Err(Error::Handler {
                    topic: topic.as_str().to_owned(),
                    source,
                });
            }
        }
        Ok(())
    }
}

fn panic_message(panic: &(dyn std::any::Any + Send)) -> String {
    if let Some(s) = panic.downcast_ref::<&str>() {
        format!("handler panicked: {s}")
    } else if let Some(s) = panic.downcast_ref::<String>() {
        format!("handler panicked: {s}")
    } else {
        "handler panicked".to_owned()
    }
}

/// Messages on one topic (or on all), delivered reliably: when this subscription's buffer is
/// full, the connection that received the message waits. Drop it to unsubscribe.
pub struct Subscription {
    rx: channel::Receiver<Incoming>,
    id: u64,
    router: Weak<Router>,
}

impl fmt::Debug for Subscription {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Subscription")
            .field("id", &self.id)
            .finish()
    }
}

impl Subscription {
    /// The next message; `None` once the server or client is gone. Cancel safe.
    pub async fn recv(&mut self) -> Option<Incoming> {
        std::future::poll_fn(|cx| self.rx.poll_recv(cx)).await
    }
}

impl futures_util::Stream for Subscription {
    type Item = Incoming;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Incoming>> {
        self.rx.poll_recv(cx)
    }
}

impl Drop for Subscription {
    fn drop(&mut self) {
        if let Some(router) = self.router.upgrade() {
            router.remove(self.id);
        }
    }
}

/// Keeps a handler installed; dropping it removes the handler.
#[must_use = "dropping the guard removes the handler at once; call .detach() to keep it"]
pub struct HandlerGuard {
    id: Option<u64>,
    router: Weak<Router>,
}

impl fmt::Debug for HandlerGuard {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HandlerGuard")
            .field("id", &self.id)
            .finish()
    }
}

impl HandlerGuard {
    /// Keep the handler for as long as its server or client lives.
    pub fn detach(mut self) {
        self.id = None;
    }
}

impl Drop for HandlerGuard {
    fn drop(&mut self) {
        if let (Some(id), Some(router)) = (self.id, self.router.upgrade()) {
            router.remove(id);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Payload, Replier};
    use std::sync::atomic::AtomicUsize;

    fn incoming(topic: &str) -> Incoming {
        Incoming {
            topic: topic.into(),
            message: Payload::absent(),
            client: None,
            replier: Replier::Client(Weak::new()),
        }
    }

    #[tokio::test]
    async fn handler_futures_reuse_their_slot_and_removed_handlers_lose_theirs() {
        let router = Arc::new(Router::new(8));
        let runs = Arc::new(AtomicUsize::new(0));
        let counter = |runs: &Arc<AtomicUsize>| {
            let runs = Arc::clone(runs);
            move |m: Incoming| {
                let runs = Arc::clone(&runs);
                async move {
                    // Not done on the first poll.
                    tokio::task::yield_now().await;
                    assert_eq!(m.topic, "t");
                    runs.fetch_add(1, Ordering::Relaxed);
                    Ok::<_, BoxError>(())
                }
            }
        };
        let a = router.on(Some("t"), counter(&runs));
        let b = router.on(None, counter(&runs));
        let mut slots = Slots::default();
        for _ in 0..3 {
            router.dispatch(incoming("t"), &mut slots).await.unwrap();
        }
        assert_eq!(runs.load(Ordering::Relaxed), 6);
        assert_eq!(slots.0.len(), 2);
        assert!(slots.0.iter().all(|(_, s)| s.is_some()), "kept for reuse");
        drop(a);
        router.dispatch(incoming("t"), &mut slots).await.unwrap();
        assert_eq!(runs.load(Ordering::Relaxed), 7);
        assert_eq!(slots.0.len(), 1, "the removed handler's slot is gone");
        drop(b);
    }

    #[tokio::test]
    async fn a_handler_that_panics_before_returning_its_future_is_a_handler_error() {
        let router = Arc::new(Router::new(8));
        router
            .on(Some("t"), |m: Incoming| {
                assert!(m.topic != "t", "no future for you");
                async { Ok::<_, BoxError>(()) }
            })
            .detach();
        let mut slots = Slots::default();
        for _ in 0..2 {
            let err = router
                .dispatch(incoming("t"), &mut slots)
                .await
                .unwrap_err();
            assert!(
                matches!(&err, Error::Handler { topic, source } if topic == "t" && source.to_string().contains("no future")),
                "{err:?}"
            );
        }
        router.dispatch(incoming("u"), &mut slots).await.unwrap();
    }
}
