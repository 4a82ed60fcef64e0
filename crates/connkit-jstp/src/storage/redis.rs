//! [`RedisStorage`]: sessions in Redis, shared by every server that connects to it.

use super::{
    DEFAULT_INACTIVE_LIFETIME, SessionStorageProvider, StorageError, StorageFuture, StoredSession,
};
use redis::aio::MultiplexedConnection;
use std::fmt;
use std::time::Duration;
use tokio::sync::Mutex;

/// The default key prefix: a session is stored under `connkit:jstp:session:<id>`.
pub const DEFAULT_KEY_PREFIX: &str = "connkit:jstp:session:";

/// A [`SessionStorageProvider`] in Redis (cargo feature `redis`): one JSON string per
/// session under `<prefix><id>`. Servers in several processes given the same Redis take
/// each other's sessions over (failover).
///
/// Every write (`SET … EX`) and [`set_inactive`](SessionStorageProvider::set_inactive)
/// (`EXPIRE`) gives the key the inactive lifetime (default 24 h) as its time to live, so
/// the sessions of a process that died without saying so expire too; a live session is
/// written again whenever its state changes. [`get`](SessionStorageProvider::get) does not
/// touch the time to live: the server that restores the session writes it at once.
///
/// One multiplexed connection is shared by all operations; after a failure it is dropped
/// and the next operation connects again. Every operation is cancel safe: each is a single
/// Redis command, which a dropped future either sent whole or not at all.
///
/// ```no_run
/// # async fn f() -> Result<(), Box<dyn std::error::Error>> {
/// use connkit_jstp::{ServerOptions, storage::RedisStorage};
/// let storage = RedisStorage::connect("redis://127.0.0.1:6379").await?.key_prefix("myapp:");
/// let opts = ServerOptions::new().session_storage(storage);
/// # let _ = opts;
/// # Ok(())
/// # }
/// ```
#[must_use]
pub struct RedisStorage {
    client: redis::Client,
    conn: Mutex<Option<MultiplexedConnection>>,
    prefix: String,
    lifetime: Duration,
}

impl fmt::Debug for RedisStorage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisStorage")
            .field("prefix", &self.prefix)
            .field("inactive_lifetime", &self.lifetime)
            .finish_non_exhaustive()
    }
}

fn backend(e: &redis::RedisError) -> StorageError {
    StorageError::Backend(e.to_string())
}

impl RedisStorage {
    /// Connect to the Redis at `url` (`redis://[user:password@]host:port[/db]`, or
    /// `redis+unix:///path`).
    ///
    /// Cancel safe: dropping the future drops the connection being made.
    ///
    /// # Errors
    /// [`StorageError::InvalidAddress`] for a URL Redis does not accept;
    /// [`StorageError::Backend`] when the connection fails.
    pub async fn connect(url: &str) -> Result<Self, StorageError> {
        let client =
            redis::Client::open(url).map_err(|e| StorageError::InvalidAddress(e.to_string()))?;
        let conn = client
            .get_multiplexed_async_connection()
            .await
            .map_err(|e| backend(&e))?;
        Ok(Self {
            client,
            conn: Mutex::new(Some(conn)),
            prefix: DEFAULT_KEY_PREFIX.to_owned(),
            lifetime: DEFAULT_INACTIVE_LIFETIME,
        })
    }

    /// Store sessions under `<prefix><id>` (default [`DEFAULT_KEY_PREFIX`]).
    pub fn key_prefix(mut self, prefix: impl Into<String>) -> Self {
        self.prefix = prefix.into();
        self
    }

    /// The time to live of a stored session (default 24 h; at least one second).
    pub fn inactive_lifetime(mut self, lifetime: Duration) -> Self {
        self.lifetime = lifetime.max(Duration::from_secs(1));
        self
    }

    fn key(&self, id: &str) -> String {
        format!("{}{id}", self.prefix)
    }

    fn ttl_secs(&self) -> u64 {
        self.lifetime.as_secs().max(1)
    }

    async fn connection(&self) -> Result<MultiplexedConnection, StorageError> {
        let mut slot = self.conn.lock().await;
        if let Some(c) = slot.as_ref() {
            return Ok(c.clone());
        }
        let c = self
            .client
            .get_multiplexed_async_connection()
            .await
            .map_err(|e| backend(&e))?;
        *slot = Some(c.clone());
        Ok(c)
    }

    async fn run<T: redis::FromRedisValue>(&self, cmd: redis::Cmd) -> Result<T, StorageError> {
        let mut conn = self.connection().await?;
        match cmd.query_async::<T>(&mut conn).await {
            Ok(v) => Ok(v),
            Err(e) => {
                if e.is_io_error() || e.is_connection_dropped() || e.is_connection_refusal() {
                    // Connect again next time.
                    *self.conn.lock().await = None;
                }
                Err(backend(&e))
            }
        }
    }
}

impl SessionStorageProvider for RedisStorage {
    fn get<'a>(&'a self, id: &'a str) -> StorageFuture<'a, Option<StoredSession>> {
        Box::pin(async move {
            let mut cmd = redis::cmd("GET");
            cmd.arg(self.key(id));
            let Some(json) = self.run::<Option<String>>(cmd).await? else {
                return Ok(None);
            };
            serde_json::from_str(&json)
                .map(Some)
                .map_err(|e| StorageError::Decode(e.to_string()))
        })
    }

    fn set<'a>(&'a self, id: &'a str, session: &'a StoredSession) -> StorageFuture<'a, ()> {
        Box::pin(async move {
            let json =
                serde_json::to_string(session).map_err(|e| StorageError::Decode(e.to_string()))?;
            let mut cmd = redis::cmd("SET");
            cmd.arg(self.key(id))
                .arg(json)
                .arg("EX")
                .arg(self.ttl_secs());
            self.run::<()>(cmd).await
        })
    }

    fn set_inactive<'a>(&'a self, id: &'a str) -> StorageFuture<'a, ()> {
        Box::pin(async move {
            let mut cmd = redis::cmd("EXPIRE");
            cmd.arg(self.key(id)).arg(self.ttl_secs());
            self.run::<i64>(cmd).await.map(drop)
        })
    }

    fn remove<'a>(&'a self, id: &'a str) -> StorageFuture<'a, ()> {
        Box::pin(async move {
            let mut cmd = redis::cmd("DEL");
            cmd.arg(self.key(id));
            self.run::<i64>(cmd).await.map(drop)
        })
    }
}
