//! Synchronous event callbacks and their unsubscribe guard, [`Subscription`].

use std::fmt;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, Weak};

use crate::event::Event;

type Callback<T> = Arc<dyn Fn(&Event, Option<&T>) + Send + Sync>;

/// The callbacks of one supervisor. The supervisor task calls them in registration order,
/// synchronously, as it emits each event.
pub(crate) struct Registry<T> {
    next: AtomicU64,
    entries: Mutex<Vec<(u64, Callback<T>)>>,
}

impl<T> Registry<T> {
    pub(crate) fn new() -> Self {
        Self {
            next: AtomicU64::new(0),
            entries: Mutex::new(Vec::new()),
        }
    }

    fn entries(&self) -> MutexGuard<'_, Vec<(u64, Callback<T>)>> {
        self.entries
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    pub(crate) fn add(&self, callback: Callback<T>) -> u64 {
        let id = self.next.fetch_add(1, Ordering::Relaxed);
        self.entries().push((id, callback));
        id
    }

    /// Calls every callback with `event`. A snapshot is taken first, so callbacks may
    /// subscribe and unsubscribe; a panicking callback is logged and the others still run.
    pub(crate) fn dispatch(&self, event: &Event, conn: Option<&T>) {
        let snapshot: Vec<Callback<T>> = self.entries().iter().map(|(_, c)| c.clone()).collect();
        for callback in snapshot {
            if catch_unwind(AssertUnwindSafe(|| callback(event, conn))).is_err() {
                tracing::error!(%event, "an event callback panicked");
            }
        }
    }
}

/// Type-erased removal, so that [`Subscription`] is not generic.
trait Unsubscribe: Send + Sync {
    fn remove(&self, id: u64);
}

impl<T: Send + Sync> Unsubscribe for Registry<T> {
    fn remove(&self, id: u64) {
        self.entries().retain(|(i, _)| *i != id);
    }
}

/// Keeps an event callback registered; dropping it unsubscribes.
///
/// Returned by [`Supervisor::on_connect`](crate::Supervisor::on_connect) and its siblings.
/// Call [`detach`](Self::detach) to keep the callback for the supervisor's whole life.
#[must_use = "dropping the Subscription unsubscribes the callback at once"]
pub struct Subscription {
    id: u64,
    registry: Option<Weak<dyn Unsubscribe>>,
}

impl Subscription {
    pub(crate) fn new<T: Send + Sync + 'static>(registry: &Arc<Registry<T>>, id: u64) -> Self {
        let erased: Arc<dyn Unsubscribe> = registry.clone();
        Self {
            id,
            registry: Some(Arc::downgrade(&erased)),
        }
    }

    /// Unsubscribe now (the same as dropping it).
    pub fn unsubscribe(self) {}

    /// Keep the callback registered until the supervisor ends.
    pub fn detach(mut self) {
        self.registry = None;
    }
}

impl fmt::Debug for Subscription {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Subscription")
            .field("id", &self.id)
            .field("detached", &self.registry.is_none())
            .finish()
    }
}

impl Drop for Subscription {
    fn drop(&mut self) {
        if let Some(registry) = self.registry.take().and_then(|w| w.upgrade()) {
            registry.remove(self.id);
        }
    }
}
