//! Server-side session storage (spec §6.3, restore **path B**).
//!
//! A server keeps its sessions in a live index while their connections exist (path A). A
//! [`SessionStorageProvider`] keeps them beyond that: when the live entry has expired, when
//! the process restarted, or on **another** server process sharing the provider (failover).
//!
//! What the server writes, when sessions are on (the default) and a provider is set with
//! [`ServerOptions::session_storage`](crate::ServerOptions::session_storage):
//!
//! * when a session is created (or restored from the provider), then after its state changed
//!   (a message originated, received or confirmed), **coalesced**: at most one write in
//!   flight per session and at most one every
//!   [`session_write_interval`](crate::ServerOptions::session_write_interval) (100 ms by
//!   default), so a process killed abruptly leaves a recent state behind;
//! * when its transport is lost: `set` then `set_inactive`, and so again (coalesced) for
//!   what the server originates for it while it waits for its client;
//! * when the server closes (gracefully or by drop), or a session that waited for its client
//!   ends: `set` then `set_inactive`;
//! * when the server closes a live connection on purpose (protocol error, `close`): `remove`,
//!   so that a resume is answered 11 as it would be by the live index.
//!
//! A resume handshake (`session:['<id>',<receivedCount>]`) whose id the live index does not
//! know asks the provider (`get`). Found: the session continues on a new connection
//! ([`ServerEvent::Reconnect`](crate::ServerEvent::Reconnect)), the server answers
//! `{handshake:[0],ok:<receivedCount>}`, sends again what the client had not received, and
//! its ids continue strictly downward from the stored ones. Not found, or the provider
//! failed or timed out: `{handshake:[0],error:[11]}` and the connection closes.
//!
//! Writes are never awaited by the connection: a slow or failing provider costs freshness
//! of the stored copy, never throughput or a crash (failures are logged with `tracing`).

use crate::connection::Command;
use crate::message::Id;
use crate::session::SessionSnapshot;
use std::collections::HashMap;
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::{mpsc, oneshot};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::{debug, warn};

#[cfg(feature = "redis")]
mod redis;
#[cfg(feature = "redis")]
#[cfg_attr(docsrs, doc(cfg(feature = "redis")))]
pub use self::redis::{DEFAULT_KEY_PREFIX, RedisStorage};

/// How long an inactive session is kept by default (Node's `inactiveSessionLifetime`: 24 h).
pub const DEFAULT_INACTIVE_LIFETIME: Duration = Duration::from_secs(24 * 3600);
/// How often [`MemoryStorage`] purges by default (Node's `purgeInterval`: 1 h).
pub const DEFAULT_PURGE_INTERVAL: Duration = Duration::from_secs(3600);
/// How often a live session is written at most, by default.
pub const DEFAULT_WRITE_INTERVAL: Duration = Duration::from_millis(100);
/// How long one provider operation may take before the server gives up on it.
pub const DEFAULT_STORAGE_TIMEOUT: Duration = Duration::from_secs(2);

/// What a server needs to restore a session (serde; JSON in `RedisStorage`).
///
/// The id is a bearer credential: whoever knows it can take the session over.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
#[non_exhaustive]
pub struct StoredSession {
    /// The session id (a UUID v4).
    pub id: String,
    /// The login the session was authenticated as, if any.
    pub username: Option<String>,
    /// `receivedCount`: |id| of the last call, event, inspect or ping the server received.
    pub received_count: u64,
    /// The id the server's next originated message takes (negative: ids go down, so this is
    /// `min(last sent) − 1`).
    pub next_id: i64,
    /// The highest |id| of the server's the client is known to have received.
    pub delivered_count: u64,
    /// The messages the client has not confirmed, in order: id and frame text.
    pub buffer: Vec<(i64, String)>,
    /// The application the session was made with.
    pub app_name: String,
    /// Its version.
    pub app_version: String,
}

impl StoredSession {
    pub(crate) fn from_snapshot(s: SessionSnapshot, meta: &SessionMeta) -> Self {
        Self {
            id: s.id,
            username: meta.username.clone(),
            received_count: s.received,
            next_id: s.next_id,
            delivered_count: s.delivered,
            buffer: s.buffer,
            app_name: meta.app_name.clone(),
            app_version: meta.app_version.clone(),
        }
    }

    pub(crate) fn to_snapshot(&self) -> SessionSnapshot {
        SessionSnapshot {
            id: self.id.clone(),
            received: self.received_count,
            delivered: self.delivered_count,
            // A server's ids go down; a corrupt entry must not make them go up again.
            next_id: self.next_id.min(-1),
            buffer: self.buffer.clone(),
        }
    }
}

/// Why a storage operation failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum StorageError {
    /// The backend failed (connection refused or lost, a command error).
    #[error("session storage backend failed: {0}")]
    Backend(String),
    /// A stored value does not decode as a [`StoredSession`].
    #[error("a stored session does not decode: {0}")]
    Decode(String),
    /// The operation took too long.
    #[error("session storage did not answer within {0:?}")]
    Timeout(Duration),
    /// The address given to a backend is not valid.
    #[error("invalid session storage address: {0}")]
    InvalidAddress(String),
}

impl StorageError {
    /// Whether trying again later may succeed (a backend failure or a timeout).
    #[must_use]
    pub fn is_retryable(&self) -> bool {
        matches!(self, Self::Backend(_) | Self::Timeout(_))
    }
}

/// The future a [`SessionStorageProvider`] returns.
pub type StorageFuture<'a, T> =
    Pin<Box<dyn Future<Output = std::result::Result<T, StorageError>> + Send + 'a>>;

/// Where a server keeps sessions beyond its live index (spec §6.3, path B): Node's session
/// storage provider. Object safe; share one between servers (processes, for a backend such
/// as `RedisStorage`, feature `redis`) for failover.
///
/// The server calls it from background tasks, one operation at a time per session, with a
/// time limit ([`ServerOptions::storage_timeout`](crate::ServerOptions::storage_timeout)).
/// A future past that limit is dropped, so implementations must be cancel safe: a dropped
/// `set` may or may not have stored the session, and must leave the previous value or the
/// new one, nothing in between.
///
/// ```
/// use connkit_jstp::storage::{SessionStorageProvider, StorageFuture, StoredSession};
/// use std::collections::HashMap;
/// use std::sync::Mutex;
///
/// #[derive(Default)]
/// struct Simple(Mutex<HashMap<String, StoredSession>>);
///
/// impl SessionStorageProvider for Simple {
///     fn get<'a>(&'a self, id: &'a str) -> StorageFuture<'a, Option<StoredSession>> {
///         Box::pin(async move { Ok(self.0.lock().unwrap().get(id).cloned()) })
///     }
///     fn set<'a>(&'a self, id: &'a str, session: &'a StoredSession) -> StorageFuture<'a, ()> {
///         Box::pin(async move {
///             self.0.lock().unwrap().insert(id.to_owned(), session.clone());
///             Ok(())
///         })
///     }
///     fn set_inactive<'a>(&'a self, _id: &'a str) -> StorageFuture<'a, ()> {
///         Box::pin(async { Ok(()) })
///     }
///     fn remove<'a>(&'a self, id: &'a str) -> StorageFuture<'a, ()> {
///         Box::pin(async move {
///             self.0.lock().unwrap().remove(id);
///             Ok(())
///         })
///     }
/// }
/// let opts = connkit_jstp::ServerOptions::new().session_storage(Simple::default());
/// # let _ = opts;
/// ```
pub trait SessionStorageProvider: Send + Sync + 'static {
    /// The session with this id, if stored. Marks it active again (it is being restored).
    ///
    /// # Errors
    /// The backend's failure; the server then answers the resume with 11.
    fn get<'a>(&'a self, id: &'a str) -> StorageFuture<'a, Option<StoredSession>>;

    /// Store (replace) the session, as active.
    ///
    /// # Errors
    /// The backend's failure; the server logs it and carries on.
    fn set<'a>(&'a self, id: &'a str, session: &'a StoredSession) -> StorageFuture<'a, ()>;

    /// Stamp the session inactive now: its client is away, and it may be deleted once
    /// inactive for the provider's lifetime.
    ///
    /// # Errors
    /// The backend's failure; the server logs it and carries on.
    fn set_inactive<'a>(&'a self, id: &'a str) -> StorageFuture<'a, ()>;

    /// Delete the session.
    ///
    /// # Errors
    /// The backend's failure; the server logs it and carries on.
    fn remove<'a>(&'a self, id: &'a str) -> StorageFuture<'a, ()>;
}

impl<T: SessionStorageProvider + ?Sized> SessionStorageProvider for Arc<T> {
    fn get<'a>(&'a self, id: &'a str) -> StorageFuture<'a, Option<StoredSession>> {
        (**self).get(id)
    }
    fn set<'a>(&'a self, id: &'a str, session: &'a StoredSession) -> StorageFuture<'a, ()> {
        (**self).set(id, session)
    }
    fn set_inactive<'a>(&'a self, id: &'a str) -> StorageFuture<'a, ()> {
        (**self).set_inactive(id)
    }
    fn remove<'a>(&'a self, id: &'a str) -> StorageFuture<'a, ()> {
        (**self).remove(id)
    }
}

/// The default provider: sessions in this process's memory (Node's
/// `SimpleSessionStorageProvider`). Cheap to clone; clones share the sessions, so two
/// servers in one process given clones of one `MemoryStorage` can take each other's
/// sessions over.
///
/// [`set_inactive`](SessionStorageProvider::set_inactive) stamps a session with the current
/// time, [`get`](SessionStorageProvider::get) and [`set`](SessionStorageProvider::set)
/// clear the stamp. A purge deletes the sessions inactive for at least the
/// [`inactive_lifetime`](Self::inactive_lifetime); it runs on the first operation after
/// each [`purge_interval`](Self::purge_interval) (no background task), or when
/// [`purge`](Self::purge) is called. Times are tokio's clock.
///
/// ```
/// use connkit_jstp::storage::MemoryStorage;
/// use std::time::Duration;
/// let storage = MemoryStorage::new()
///     .inactive_lifetime(Duration::from_secs(600))
///     .purge_interval(Duration::from_secs(60));
/// assert!(storage.is_empty());
/// ```
#[derive(Clone)]
#[must_use]
pub struct MemoryStorage {
    inner: Arc<Mutex<MemoryState>>,
}

struct MemoryState {
    lifetime: Duration,
    purge_interval: Duration,
    last_purge: Instant,
    sessions: HashMap<String, MemoryEntry>,
}

struct MemoryEntry {
    session: StoredSession,
    inactive_since: Option<Instant>,
}

impl MemoryState {
    fn maybe_purge(&mut self) {
        let now = Instant::now();
        if now.duration_since(self.last_purge) >= self.purge_interval {
            self.purge(now);
        }
    }

    fn purge(&mut self, now: Instant) {
        self.last_purge = now;
        let lifetime = self.lifetime;
        let before = self.sessions.len();
        self.sessions.retain(|_, e| {
            e.inactive_since
                .is_none_or(|since| now.duration_since(since) < lifetime)
        });
        let purged = before - self.sessions.len();
        if purged > 0 {
            debug!(purged, "inactive sessions purged");
        }
    }
}

impl fmt::Debug for MemoryStorage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let s = self.state();
        f.debug_struct("MemoryStorage")
            .field("sessions", &s.sessions.len())
            .field("inactive_lifetime", &s.lifetime)
            .field("purge_interval", &s.purge_interval)
            .finish()
    }
}

impl Default for MemoryStorage {
    fn default() -> Self {
        Self::new()
    }
}

impl MemoryStorage {
    /// Empty; inactive sessions live 24 h; a purge at most every hour.
    pub fn new() -> Self {
        Self {
            inner: Arc::new(Mutex::new(MemoryState {
                lifetime: DEFAULT_INACTIVE_LIFETIME,
                purge_interval: DEFAULT_PURGE_INTERVAL,
                last_purge: Instant::now(),
                sessions: HashMap::new(),
            })),
        }
    }

    fn state(&self) -> std::sync::MutexGuard<'_, MemoryState> {
        self.inner
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Delete sessions inactive for at least this long (default 24 h).
    pub fn inactive_lifetime(self, lifetime: Duration) -> Self {
        self.state().lifetime = lifetime;
        self
    }

    /// Purge at most this often (default 1 h).
    pub fn purge_interval(self, interval: Duration) -> Self {
        self.state().purge_interval = interval;
        self
    }

    /// Purge now: delete the sessions inactive for at least the lifetime.
    pub fn purge(&self) {
        self.state().purge(Instant::now());
    }

    /// How many sessions are stored (after a purge, if one is due).
    #[must_use]
    pub fn len(&self) -> usize {
        let mut s = self.state();
        s.maybe_purge();
        s.sessions.len()
    }

    /// Whether no session is stored (after a purge, if one is due).
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Whether the session is stored and stamped inactive (after a purge, if one is due).
    #[must_use]
    pub fn is_inactive(&self, id: &str) -> bool {
        let mut s = self.state();
        s.maybe_purge();
        s.sessions
            .get(id)
            .is_some_and(|e| e.inactive_since.is_some())
    }
}

impl SessionStorageProvider for MemoryStorage {
    fn get<'a>(&'a self, id: &'a str) -> StorageFuture<'a, Option<StoredSession>> {
        let mut s = self.state();
        s.maybe_purge();
        let found = s.sessions.get_mut(id).map(|e| {
            e.inactive_since = None;
            e.session.clone()
        });
        Box::pin(std::future::ready(Ok(found)))
    }

    fn set<'a>(&'a self, id: &'a str, session: &'a StoredSession) -> StorageFuture<'a, ()> {
        let mut s = self.state();
        s.maybe_purge();
        s.sessions.insert(
            id.to_owned(),
            MemoryEntry {
                session: session.clone(),
                inactive_since: None,
            },
        );
        Box::pin(std::future::ready(Ok(())))
    }

    fn set_inactive<'a>(&'a self, id: &'a str) -> StorageFuture<'a, ()> {
        let mut s = self.state();
        s.maybe_purge();
        if let Some(e) = s.sessions.get_mut(id) {
            e.inactive_since = Some(Instant::now());
        }
        Box::pin(std::future::ready(Ok(())))
    }

    fn remove<'a>(&'a self, id: &'a str) -> StorageFuture<'a, ()> {
        let mut s = self.state();
        s.maybe_purge();
        s.sessions.remove(id);
        Box::pin(std::future::ready(Ok(())))
    }
}

/// A server's storage settings.
#[derive(Clone)]
pub(crate) struct Storage {
    pub(crate) provider: Arc<dyn SessionStorageProvider>,
    pub(crate) write_interval: Duration,
    pub(crate) timeout: Duration,
}

impl fmt::Debug for Storage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Storage")
            .field("write_interval", &self.write_interval)
            .field("timeout", &self.timeout)
            .finish_non_exhaustive()
    }
}

impl Storage {
    /// Path B: look a session up.
    pub(crate) async fn load(
        &self,
        id: &str,
    ) -> std::result::Result<Option<StoredSession>, StorageError> {
        let found = tokio::time::timeout(self.timeout, self.provider.get(id))
            .await
            .map_err(|_| StorageError::Timeout(self.timeout))??;
        // A provider must not hand a session over under another id.
        Ok(found.filter(|s| s.id == id))
    }
}

/// What the writer of one session stores besides the connection's state.
#[derive(Debug, Clone)]
pub(crate) struct SessionMeta {
    pub(crate) id: String,
    pub(crate) username: Option<String>,
    pub(crate) app_name: String,
    pub(crate) app_version: String,
}

/// What a session's writer does. Every write takes the connection's state **when it is
/// made** (asked of its task), so a later write never stores an older state, except
/// `Final`, which comes last.
enum Job {
    /// The state changed: write it (coalesced).
    Changed,
    /// The transport is gone: write the state, then stamp it inactive.
    Detached,
    /// The connection ended with this state: write it, then stamp it inactive.
    Final(SessionSnapshot),
    /// The connection ended: delete the session.
    Remove,
}

/// The connection task's side of a session's writer.
pub(crate) struct Hook {
    jobs: mpsc::UnboundedSender<Job>,
    signaled: Arc<AtomicBool>,
    /// The session waits for its client: writes are stamped inactive.
    inactive: Arc<AtomicBool>,
    mark: (u64, Id, u64),
    detached: bool,
    shutdown: CancellationToken,
}

impl Hook {
    /// Start the writer of a session (on the server's tracker, so that a graceful close
    /// waits for the last writes). It writes the session at once.
    pub(crate) fn spawn(
        storage: &Storage,
        meta: SessionMeta,
        commands: mpsc::WeakSender<Command>,
        tracker: &TaskTracker,
        shutdown: CancellationToken,
    ) -> Self {
        let (jobs, rx) = mpsc::unbounded_channel();
        let signaled = Arc::new(AtomicBool::new(true));
        let inactive = Arc::new(AtomicBool::new(false));
        let _ = jobs.send(Job::Changed);
        let span = tracing::debug_span!("connkit.jstp.storage", session = %meta.id);
        let flags = Flags {
            signaled: Arc::clone(&signaled),
            inactive: Arc::clone(&inactive),
        };
        tracker.spawn(tracing::Instrument::instrument(
            writer(storage.clone(), meta, rx, flags, commands),
            span,
        ));
        Self {
            jobs,
            signaled,
            inactive,
            mark: (0, 0, 0),
            detached: false,
            shutdown,
        }
    }

    /// After a turn of the connection task (also while it waits for its client): `mark` is
    /// (received, next id, delivered).
    #[inline]
    pub(crate) fn turn(&mut self, mark: (u64, Id, u64)) {
        if mark != self.mark {
            self.mark = mark;
            if !self.signaled.swap(true, Ordering::AcqRel) {
                let _ = self.jobs.send(Job::Changed);
            }
        }
    }

    /// The transport is gone; the session waits for its client.
    pub(crate) fn detached(&mut self) {
        self.detached = true;
        self.inactive.store(true, Ordering::Release);
        let _ = self.jobs.send(Job::Detached);
    }

    /// The session is on a transport again.
    pub(crate) fn restored(&mut self) {
        self.inactive.store(false, Ordering::Release);
        if std::mem::take(&mut self.detached) {
            // Stored as inactive: store it as active again now, with the current state.
            self.mark = (u64::MAX, 0, 0);
            if !self.signaled.swap(true, Ordering::AcqRel) {
                let _ = self.jobs.send(Job::Changed);
            }
        }
    }

    /// The connection ended. A session that waited for its client, or any on a server that
    /// is closing, stays stored (inactive); a live one the server closed on purpose goes.
    pub(crate) fn finished(self, snapshot: SessionSnapshot) {
        if self.detached || self.shutdown.is_cancelled() {
            let _ = self.jobs.send(Job::Final(snapshot));
        } else {
            let _ = self.jobs.send(Job::Remove);
        }
    }
}

/// What the connection task tells its writer besides the jobs.
struct Flags {
    /// A `Changed` job is queued or being handled.
    signaled: Arc<AtomicBool>,
    /// The session waits for its client.
    inactive: Arc<AtomicBool>,
}

async fn writer(
    storage: Storage,
    meta: SessionMeta,
    mut jobs: mpsc::UnboundedReceiver<Job>,
    flags: Flags,
    commands: mpsc::WeakSender<Command>,
) {
    let id = meta.id.as_str();
    let limit = storage.timeout;
    let provider = &storage.provider;
    let mut last_write: Option<Instant> = None;
    while let Some(job) = jobs.recv().await {
        match job {
            Job::Changed => {
                if let Some(t) = last_write {
                    tokio::time::sleep_until(t + storage.write_interval).await;
                }
                // Changes from now on ask for another write.
                flags.signaled.store(false, Ordering::Release);
                let Some(snapshot) = ask_snapshot(&commands, limit).await else {
                    continue;
                };
                let session = StoredSession::from_snapshot(snapshot, &meta);
                last_write = Some(Instant::now());
                let set = bounded(limit, provider.set(id, &session)).await;
                let ok = set.is_ok();
                report("set", id, set);
                if ok && flags.inactive.load(Ordering::Acquire) {
                    let stamp = bounded(limit, provider.set_inactive(id)).await;
                    report("set_inactive", id, stamp);
                }
            }
            Job::Detached | Job::Final(_) => {
                let final_state = matches!(job, Job::Final(_));
                let snapshot = match job {
                    Job::Final(s) => s,
                    // A task that is gone already sends its final state next.
                    _ => match ask_snapshot(&commands, limit).await {
                        Some(s) => s,
                        None => continue,
                    },
                };
                let session = StoredSession::from_snapshot(snapshot, &meta);
                last_write = Some(Instant::now());
                let set = bounded(limit, provider.set(id, &session)).await;
                let ok = set.is_ok();
                report("set", id, set);
                // A session restored meanwhile is not stamped (a final state always is).
                if ok && (final_state || flags.inactive.load(Ordering::Acquire)) {
                    report(
                        "set_inactive",
                        id,
                        bounded(limit, provider.set_inactive(id)).await,
                    );
                }
            }
            Job::Remove => report("remove", id, bounded(limit, provider.remove(id)).await),
        }
    }
}

/// The connection's current state, asked of its task (which may be gone).
async fn ask_snapshot(
    commands: &mpsc::WeakSender<Command>,
    limit: Duration,
) -> Option<SessionSnapshot> {
    let tx = commands.upgrade()?;
    let (reply, rx) = oneshot::channel();
    let asked = tokio::time::timeout(limit, tx.send(Command::Snapshot(reply))).await;
    drop(tx);
    if !matches!(asked, Ok(Ok(()))) {
        return None;
    }
    tokio::time::timeout(limit, rx).await.ok()?.ok()
}

async fn bounded<T>(
    limit: Duration,
    op: StorageFuture<'_, T>,
) -> std::result::Result<T, StorageError> {
    tokio::time::timeout(limit, op)
        .await
        .map_err(|_| StorageError::Timeout(limit))?
}

fn report(op: &str, id: &str, result: std::result::Result<(), StorageError>) {
    match result {
        Ok(()) => tracing::trace!(op, session = id, "session stored"),
        Err(e) => warn!(op, session = id, error = %e, "session storage failed"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn session(id: &str) -> StoredSession {
        StoredSession {
            id: id.to_owned(),
            username: None,
            received_count: 3,
            next_id: -4,
            delivered_count: 1,
            buffer: vec![(-2, "{event:[-2,'i'],e:[]}".into())],
            app_name: "app".into(),
            app_version: "1.0.0".into(),
        }
    }

    const HOUR: Duration = Duration::from_secs(3600);

    #[tokio::test(start_paused = true)]
    async fn inactive_sessions_are_purged_after_their_lifetime() {
        let m = MemoryStorage::new();
        m.set("a", &session("a")).await.unwrap();
        m.set("b", &session("b")).await.unwrap();
        m.set_inactive("a").await.unwrap();
        assert!(m.is_inactive("a") && !m.is_inactive("b"));
        tokio::time::advance(23 * HOUR).await;
        assert_eq!(m.len(), 2);
        tokio::time::advance(HOUR).await;
        // 24 h inactive: gone at the next purge; the active one stays.
        assert_eq!(m.len(), 1);
        assert_eq!(m.get("a").await.unwrap(), None);
        assert_eq!(m.get("b").await.unwrap(), Some(session("b")));
    }

    #[tokio::test(start_paused = true)]
    async fn get_and_set_clear_the_inactive_stamp() {
        let m = MemoryStorage::new()
            .inactive_lifetime(Duration::from_secs(10))
            .purge_interval(Duration::from_secs(1));
        m.set("a", &session("a")).await.unwrap();
        m.set_inactive("a").await.unwrap();
        tokio::time::advance(Duration::from_secs(9)).await;
        assert_eq!(m.get("a").await.unwrap(), Some(session("a")));
        assert!(!m.is_inactive("a"));
        tokio::time::advance(Duration::from_secs(60)).await;
        assert_eq!(m.len(), 1, "an active session is never purged");
        m.set_inactive("a").await.unwrap();
        m.set("a", &session("a")).await.unwrap();
        tokio::time::advance(Duration::from_secs(60)).await;
        assert_eq!(m.len(), 1);
        m.remove("a").await.unwrap();
        assert!(m.is_empty());
    }

    #[tokio::test(start_paused = true)]
    async fn purges_run_at_most_once_per_interval() {
        let m = MemoryStorage::new()
            .inactive_lifetime(Duration::from_secs(10))
            .purge_interval(Duration::from_secs(100));
        m.set("a", &session("a")).await.unwrap();
        m.set_inactive("a").await.unwrap();
        tokio::time::advance(Duration::from_secs(50)).await;
        // Inactive for 50 s > 10 s, but the next purge is due at 100 s.
        assert_eq!(m.len(), 1);
        tokio::time::advance(Duration::from_secs(50)).await;
        assert_eq!(m.len(), 0);
        // An explicit purge runs at once.
        m.set("b", &session("b")).await.unwrap();
        m.set_inactive("b").await.unwrap();
        tokio::time::advance(Duration::from_secs(10)).await;
        m.purge();
        assert!(m.is_empty());
    }

    #[test]
    fn stored_sessions_are_camel_case_json_and_ids_stay_negative() {
        let json = serde_json::to_value(session("a")).unwrap();
        assert_eq!(json["receivedCount"], 3);
        assert_eq!(json["nextId"], -4);
        assert_eq!(json["buffer"][0][1], "{event:[-2,'i'],e:[]}");
        let mut s = session("a");
        s.next_id = 5;
        assert_eq!(s.to_snapshot().next_id, -1);
    }
}
