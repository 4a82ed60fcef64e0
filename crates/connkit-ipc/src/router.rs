//! Topic routing shared by the server and the client: reliable subscriptions and handlers.

use crate::Incoming;
use crate::channel;
use crate::error::{BoxError, Error, Result};
use futures_util::FutureExt;
use futures_util::future::BoxFuture;
use std::fmt;
use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock, Weak};
use std::task::{Context, Poll};

type HandlerFn = Arc<dyn Fn(Incoming) -> BoxFuture<'static, Result<(), BoxError>> + Send + Sync>;

#[derive(Clone)]
struct Route<T> {
    id: u64,
    topic: Option<String>,
    target: T,
}

impl<T> Route<T> {
    fn matches(&self, topic: &str) -> bool {
        self.topic.as_deref().is_none_or(|t| t == topic)
    }
}

#[derive(Default, Clone)]
struct Routes {
    subs: Vec<Route<channel::Sender<Incoming>>>,
    handlers: Vec<Route<HandlerFn>>,
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
        let f: HandlerFn = Arc::new(move |m| {
            let fut = handler(m);
            Box::pin(async move { fut.await.map_err(Into::into) })
        });
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
    /// every matching handler in order. The message is cloned for all targets but the last,
    /// which gets it. A failing or panicking handler is an [`Error::Handler`].
    pub(crate) async fn dispatch(&self, incoming: Incoming) -> Result<()> {
        let routes = self.snapshot();
        let topic = incoming.topic.as_str();
        let mut left = routes.subs.iter().filter(|r| r.matches(topic)).count()
            + routes.handlers.iter().filter(|r| r.matches(topic)).count();
        let mut incoming = Some(incoming);
        for r in &routes.subs {
            let Some(cur) = incoming.as_ref() else { break };
            if !r.matches(&cur.topic) {
                continue;
            }
            left -= 1;
            let m = if left == 0 {
                incoming.take()
            } else {
                incoming.clone()
            };
            if let Some(m) = m
                && r.target.send(m).await.is_err()
            {
                self.remove(r.id);
            }
        }
        for r in &routes.handlers {
            let Some(cur) = incoming.as_ref() else { break };
            if !r.matches(&cur.topic) {
                continue;
            }
            left -= 1;
            // For the error report of a catch-all handler that takes the message itself
            // (kept without an allocation when short: this runs for every message).
            let topic = (left == 0 && r.topic.is_none()).then(|| SavedTopic::new(&cur.topic));
            let m = if left == 0 {
                incoming.take()
            } else {
                incoming.clone()
            };
            let Some(m) = m else { break };
            let source: BoxError = match AssertUnwindSafe((r.target)(m)).catch_unwind().await {
                Ok(Ok(())) => continue,
                Ok(Err(e)) => e,
                Err(panic) => panic_message(&*panic).into(),
            };
            let topic = topic
                .map(SavedTopic::into_string)
                .or_else(|| r.topic.clone())
                .or_else(|| incoming.as_ref().map(|m| m.topic.clone()))
                .unwrap_or_default();
            return Err(Error::Handler { topic, source });
        }
        Ok(())
    }
}

/// A copy of a topic, on the stack when it is short.
enum SavedTopic {
    Short(usize, [u8; 32]),
    Long(String),
}

impl SavedTopic {
    fn new(topic: &str) -> Self {
        let mut buf = [0u8; 32];
        match buf.get_mut(..topic.len()) {
            Some(short) => {
                short.copy_from_slice(topic.as_bytes());
                Self::Short(topic.len(), buf)
            }
            None => Self::Long(topic.to_owned()),
        }
    }

    fn into_string(self) -> String {
        match self {
            // A whole `str` was copied, so this is valid UTF-8.
            Self::Short(len, buf) => String::from_utf8_lossy(&buf[..len]).into_owned(),
            Self::Long(s) => s,
        }
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
    use super::SavedTopic;

    #[test]
    fn saved_topics_come_back_unchanged() {
        for t in [
            "",
            "echo",
            "é😀",
            &"x".repeat(32),
            &"y".repeat(33),
            &"é".repeat(40),
        ] {
            assert_eq!(SavedTopic::new(t).into_string(), t);
        }
        assert!(matches!(
            SavedTopic::new(&"x".repeat(32)),
            SavedTopic::Short(32, _)
        ));
        assert!(matches!(
            SavedTopic::new(&"x".repeat(33)),
            SavedTopic::Long(_)
        ));
    }
}
