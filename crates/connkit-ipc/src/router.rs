//! Topic routing shared by the server and the client: reliable subscriptions and handlers.

use crate::Incoming;
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
use tokio::sync::mpsc;

type HandlerFn = Arc<dyn Fn(Incoming) -> BoxFuture<'static, Result<(), BoxError>> + Send + Sync>;

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

#[derive(Default)]
struct Routes {
    subs: Vec<Route<mpsc::Sender<Incoming>>>,
    handlers: Vec<Route<HandlerFn>>,
}

/// Subscriptions and handlers by topic.
pub(crate) struct Router {
    routes: RwLock<Routes>,
    next: AtomicU64,
    capacity: usize,
}

impl Router {
    pub(crate) fn new(capacity: usize) -> Self {
        Self {
            routes: RwLock::new(Routes::default()),
            next: AtomicU64::new(1),
            capacity: capacity.max(1),
        }
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, Routes> {
        self.routes
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    pub(crate) fn subscribe(self: &Arc<Self>, topic: Option<&str>) -> Subscription {
        let (tx, rx) = mpsc::channel(self.capacity);
        let id = self.next.fetch_add(1, Ordering::Relaxed);
        self.write().subs.push(Route {
            id,
            topic: topic.map(str::to_owned),
            target: tx,
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
        self.write().handlers.push(Route {
            id,
            topic: topic.map(str::to_owned),
            target: f,
        });
        HandlerGuard {
            id: Some(id),
            router: Arc::downgrade(self),
        }
    }

    fn remove(&self, id: u64) {
        let mut routes = self.write();
        routes.subs.retain(|r| r.id != id);
        routes.handlers.retain(|r| r.id != id);
    }

    /// Deliver to every matching subscription (waiting for room: nothing is dropped), then run
    /// every matching handler in order. A failing or panicking handler is an
    /// [`Error::Handler`].
    pub(crate) async fn dispatch(&self, incoming: &Incoming) -> Result<()> {
        let (subs, handlers): (Vec<(u64, mpsc::Sender<Incoming>)>, Vec<HandlerFn>) = {
            let routes = self
                .routes
                .read()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            (
                routes
                    .subs
                    .iter()
                    .filter(|r| r.matches(&incoming.topic))
                    .map(|r| (r.id, r.target.clone()))
                    .collect(),
                routes
                    .handlers
                    .iter()
                    .filter(|r| r.matches(&incoming.topic))
                    .map(|r| Arc::clone(&r.target))
                    .collect(),
            )
        };
        for (id, tx) in subs {
            if tx.send(incoming.clone()).await.is_err() {
                self.remove(id);
            }
        }
        for h in handlers {
            let source: BoxError = match AssertUnwindSafe(h(incoming.clone())).catch_unwind().await
            {
                Ok(Ok(())) => continue,
                Ok(Err(e)) => e,
                Err(panic) => panic_message(&*panic).into(),
            };
            return Err(Error::Handler {
                topic: incoming.topic.clone(),
                source,
            });
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
    rx: mpsc::Receiver<Incoming>,
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
        self.rx.recv().await
    }
}

impl futures_util::Stream for Subscription {
    type Item = Incoming;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Incoming>> {
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
