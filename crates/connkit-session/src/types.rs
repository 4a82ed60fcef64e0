//! The wire types of session backends: statuses, states, connect requests and responses,
//! as `@jamsocket/types` 1.1.6 and Plane 0.5 write them.
//!
//! Parsing is lenient where the servers differ or may grow: `time` is an ISO string or epoch
//! milliseconds, optional fields may be absent or `null`, unknown fields are ignored, and
//! unknown statuses, reasons and kinds are kept in an `Unknown` arm instead of failing.

use crate::time::Timestamp;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::Value;
use std::cmp::Ordering;
use std::collections::BTreeMap;
use std::fmt;

macro_rules! string_enum {
    (
        $(#[$meta:meta])*
        pub enum $name:ident { $( $(#[$vmeta:meta])* $variant:ident = $wire:literal, )* }
    ) => {
        $(#[$meta])*
        #[derive(Debug, Clone, PartialEq, Eq, Hash)]
        #[non_exhaustive]
        pub enum $name {
            $( $(#[$vmeta])* $variant, )*
            /// A value this version does not know, kept as received.
            Unknown(String),
        }

        impl $name {
            /// The wire name.
            #[must_use]
            pub fn as_str(&self) -> &str {
                match self {
                    $( Self::$variant => $wire, )*
                    Self::Unknown(s) => s,
                }
            }

            /// The value for a wire name (unknown names give `Unknown`).
            #[must_use]
            pub fn from_wire(s: &str) -> Self {
                match s {
                    $( $wire => Self::$variant, )*
                    other => Self::Unknown(other.to_owned()),
                }
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl std::str::FromStr for $name {
            type Err = std::convert::Infallible;
            fn from_str(s: &str) -> Result<Self, Self::Err> {
                Ok(Self::from_wire(s))
            }
        }

        impl Serialize for $name {
            fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.serialize_str(self.as_str())
            }
        }

        impl<'de> Deserialize<'de> for $name {
            fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let s = std::borrow::Cow::<'de, str>::deserialize(d)?;
                Ok(Self::from_wire(&s))
            }
        }
    };
}

string_enum! {
    /// Where a backend is in its life. Ordered by Plane's ranks: scheduled (10) < loading (20)
    /// < starting (30) < waiting (40) < ready (50) < terminating (60) < hard-terminating (65)
    /// < terminated (70). Statuses may be skipped but never go back.
    ///
    /// An [`Unknown`](Self::Unknown) status has no rank; it sorts after every known status
    /// (and by name among unknown ones), which is arbitrary: use [`rank`](Self::rank) to
    /// compare progress.
    pub enum BackendStatus {
        /// Accepted, waiting for a drone.
        Scheduled = "scheduled",
        /// The image is being loaded.
        Loading = "loading",
        /// The process is starting.
        Starting = "starting",
        /// Started; waiting for it to accept connections.
        Waiting = "waiting",
        /// Accepting connections.
        Ready = "ready",
        /// Asked to stop gracefully.
        Terminating = "terminating",
        /// Being killed.
        HardTerminating = "hard-terminating",
        /// Gone. The final status.
        Terminated = "terminated",
    }
}

impl BackendStatus {
    /// Plane's integer rank, `None` for an unknown status.
    #[must_use]
    pub fn rank(&self) -> Option<u8> {
        Some(match self {
            Self::Scheduled => 10,
            Self::Loading => 20,
            Self::Starting => 30,
            Self::Waiting => 40,
            Self::Ready => 50,
            Self::Terminating => 60,
            Self::HardTerminating => 65,
            Self::Terminated => 70,
            Self::Unknown(_) => return None,
        })
    }

    /// Whether this is [`Terminated`](Self::Terminated), the final status.
    #[must_use]
    pub fn is_terminated(&self) -> bool {
        *self == Self::Terminated
    }

    /// Every known status, in order.
    pub const ALL: [Self; 8] = [
        Self::Scheduled,
        Self::Loading,
        Self::Starting,
        Self::Waiting,
        Self::Ready,
        Self::Terminating,
        Self::HardTerminating,
        Self::Terminated,
    ];
}

impl PartialOrd for BackendStatus {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for BackendStatus {
    fn cmp(&self, other: &Self) -> Ordering {
        match (self.rank(), other.rank()) {
            (Some(a), Some(b)) => a.cmp(&b),
            (Some(_), None) => Ordering::Less,
            (None, Some(_)) => Ordering::Greater,
            (None, None) => self.as_str().cmp(other.as_str()),
        }
    }
}

string_enum! {
    /// Why a backend is being or was terminated. Written without underscores
    /// (`keyexpired`), as Plane serialises it.
    pub enum TerminationReason {
        /// Idle for longer than its `max_idle_seconds`.
        Swept = "swept",
        /// Terminated through the API.
        External = "external",
        /// Its key expired.
        KeyExpired = "keyexpired",
        /// Its drone was lost.
        Lost = "lost",
        /// It did not become ready in time.
        StartupTimeout = "startuptimeout",
        /// The platform failed.
        InternalError = "internalerror",
    }
}

string_enum! {
    /// How a backend is being or was terminated.
    pub enum TerminationKind {
        /// Asked to stop (SIGTERM).
        Soft = "soft",
        /// Killed (SIGKILL).
        Hard = "hard",
    }
}

/// One state of a backend: its status, when it was entered, and for the terminating and
/// terminated statuses why and how.
///
/// On the wire it is a JSON object tagged by `status`:
/// `{"status":"terminated","time":…,"termination_reason":"external","termination_kind":"soft","exit_error":false}`.
/// `time` may be an ISO string or epoch milliseconds ([`Timestamp`]); optional fields may be
/// absent or `null` and are omitted when written; unknown fields are ignored.
/// `@jamsocket/types` requires `termination_reason` on `terminating` and
/// `hard-terminating`; it is accepted when missing.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[non_exhaustive]
pub struct BackendState {
    /// The status.
    pub status: BackendStatus,
    /// When the status was entered.
    pub time: Timestamp,
    /// Why it is terminating or terminated.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub termination_reason: Option<TerminationReason>,
    /// Soft or hard (Plane also sets it on `terminating` and `hard-terminating`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub termination_kind: Option<TerminationKind>,
    /// On `terminated`: whether the process exited with an error (non-zero code).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exit_error: Option<bool>,
}

impl BackendState {
    /// A state with only a status and a time.
    #[must_use]
    pub fn new(status: BackendStatus, time: Timestamp) -> Self {
        Self {
            status,
            time,
            termination_reason: None,
            termination_kind: None,
            exit_error: None,
        }
    }

    /// With a termination reason.
    #[must_use]
    pub fn with_reason(mut self, reason: TerminationReason) -> Self {
        self.termination_reason = Some(reason);
        self
    }

    /// With a termination kind.
    #[must_use]
    pub fn with_kind(mut self, kind: TerminationKind) -> Self {
        self.termination_kind = Some(kind);
        self
    }

    /// With the exit-error flag.
    #[must_use]
    pub fn with_exit_error(mut self, exit_error: bool) -> Self {
        self.exit_error = Some(exit_error);
        self
    }

    /// Whether the status is `terminated`.
    #[must_use]
    pub fn is_terminated(&self) -> bool {
        self.status.is_terminated()
    }
}

impl fmt::Display for BackendState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.status)?;
        if let Some(r) = &self.termination_reason {
            write!(f, " ({r}")?;
            if let Some(k) = &self.termination_kind {
                write!(f, ", {k}")?;
            }
            f.write_str(")")?;
        }
        if self.exit_error == Some(true) {
            f.write_str(" with exit error")?;
        }
        Ok(())
    }
}

/// The answer to a connect call: which backend, how to reach it, where to watch its status.
///
/// The same type covers the Jamsocket v2 API (which has `ready_url`) and Plane's
/// `/ctrl/connect` (which has `subdomain` and `drone` but no `ready_url`). Unknown fields are
/// ignored; absent optional fields are omitted when written.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct ConnectResponse {
    /// The backend's id.
    pub backend_id: String,
    /// Whether this call started the backend (false: an existing one was returned).
    pub spawned: bool,
    /// The status when the response was made.
    pub status: BackendStatus,
    /// A token that grants access to the backend through the proxy.
    pub token: String,
    /// Where to connect to the backend.
    pub url: String,
    /// A secret token for the backend to check, when the platform issues one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret_token: Option<String>,
    /// Where to read the backend's current state (JSON); the status stream is derived from
    /// it (see [`StreamDialect`](crate::StreamDialect)).
    pub status_url: String,
    /// A browser-friendly URL that answers once the backend is ready (Jamsocket only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ready_url: Option<String>,
    /// The backend's subdomain (Plane only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subdomain: Option<String>,
    /// The drone that runs the backend, when this call spawned it (Plane only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub drone: Option<String>,
}

impl ConnectResponse {
    /// A response with the required fields; the optional ones are `None`.
    #[must_use]
    pub fn new(
        backend_id: impl Into<String>,
        spawned: bool,
        status: BackendStatus,
        token: impl Into<String>,
        url: impl Into<String>,
        status_url: impl Into<String>,
    ) -> Self {
        Self {
            backend_id: backend_id.into(),
            spawned,
            status,
            token: token.into(),
            url: url.into(),
            secret_token: None,
            status_url: status_url.into(),
            ready_url: None,
            subdomain: None,
            drone: None,
        }
    }
}

/// The body of a Jamsocket v2 connect call. Every field is optional; `{}` spawns a new
/// backend with the service's defaults.
///
/// ```
/// use connkit_session::{ConnectRequest, SpawnConfig};
/// let req = ConnectRequest::new()
///     .key("doc-42")
///     .spawn_config(SpawnConfig::new().max_idle_seconds(60));
/// assert_eq!(
///     serde_json::to_string(&req)?,
///     r#"{"key":"doc-42","spawn":{"max_idle_seconds":60}}"#
/// );
/// # Ok::<(), serde_json::Error>(())
/// ```
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
#[must_use]
pub struct ConnectRequest {
    /// Connecting again with the same key returns the same backend while it lives.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key: Option<String>,
    /// `false` to only return an existing backend, `true` or a config to spawn one if needed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub spawn: Option<Spawn>,
    /// A user name, forwarded to the backend (`x-verified-username`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
    /// Arbitrary data, forwarded to the backend (`x-verified-user-data`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub auth: Option<Value>,
}

impl ConnectRequest {
    /// An empty request (`{}`).
    pub fn new() -> Self {
        Self::default()
    }

    /// Set the key.
    pub fn key(mut self, key: impl Into<String>) -> Self {
        self.key = Some(key.into());
        self
    }

    /// Allow or forbid spawning.
    pub fn spawn(mut self, spawn: bool) -> Self {
        self.spawn = Some(Spawn::Enabled(spawn));
        self
    }

    /// Spawn with this configuration if needed.
    pub fn spawn_config(mut self, config: SpawnConfig) -> Self {
        self.spawn = Some(Spawn::Config(Box::new(config)));
        self
    }

    /// Set the user.
    pub fn user(mut self, user: impl Into<String>) -> Self {
        self.user = Some(user.into());
        self
    }

    /// Set the auth data.
    pub fn auth(mut self, auth: Value) -> Self {
        self.auth = Some(auth);
        self
    }

    /// The spawn configuration, if one was given.
    #[must_use]
    pub fn config(&self) -> Option<&SpawnConfig> {
        match &self.spawn {
            Some(Spawn::Config(c)) => Some(c),
            _ => None,
        }
    }

    /// Whether spawning is allowed (everything but `spawn: false`).
    #[must_use]
    pub fn may_spawn(&self) -> bool {
        !matches!(self.spawn, Some(Spawn::Enabled(false)))
    }
}

/// `spawn` in a [`ConnectRequest`]: a flag or a configuration.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
#[non_exhaustive]
pub enum Spawn {
    /// `true` or `false`.
    Enabled(bool),
    /// Spawn with this configuration.
    Config(Box<SpawnConfig>),
}

/// How to spawn a backend (Jamsocket v2).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
#[must_use]
pub struct SpawnConfig {
    /// The image tag.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tag: Option<String>,
    /// The cluster.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cluster: Option<String>,
    /// Terminate after this many seconds whatever happens.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lifetime_limit_seconds: Option<u64>,
    /// Terminate after this many idle seconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_idle_seconds: Option<u64>,
    /// Process settings.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub executable: Option<ExecutableConfig>,
}

impl SpawnConfig {
    /// An empty configuration.
    pub fn new() -> Self {
        Self::default()
    }

    /// Set `max_idle_seconds`.
    pub fn max_idle_seconds(mut self, secs: u64) -> Self {
        self.max_idle_seconds = Some(secs);
        self
    }

    /// Set `lifetime_limit_seconds`.
    pub fn lifetime_limit_seconds(mut self, secs: u64) -> Self {
        self.lifetime_limit_seconds = Some(secs);
        self
    }

    /// Set the tag.
    pub fn tag(mut self, tag: impl Into<String>) -> Self {
        self.tag = Some(tag.into());
        self
    }

    /// Set an environment variable for the backend.
    pub fn env(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.executable
            .get_or_insert_with(ExecutableConfig::default)
            .env
            .get_or_insert_with(BTreeMap::new)
            .insert(name.into(), value.into());
        self
    }
}

/// Process settings of a [`SpawnConfig`].
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct ExecutableConfig {
    /// Mount a volume: `true` for the default one, or a path.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mount: Option<Mount>,
    /// Environment variables.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub env: Option<BTreeMap<String, String>>,
    /// Resource limits.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resource_limits: Option<ResourceLimits>,
}

/// `mount` of an [`ExecutableConfig`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
#[non_exhaustive]
pub enum Mount {
    /// Mount the default volume or not.
    Enabled(bool),
    /// Mount this path.
    Path(String),
}

/// Resource limits of a backend process (Jamsocket and Plane use the same names).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct ResourceLimits {
    /// The CPU period in microseconds (default 100000).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cpu_period: Option<u64>,
    /// The share of each period the backend may use, 0–100.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cpu_period_percent: Option<u8>,
    /// Total CPU time, in seconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cpu_time_limit: Option<u64>,
    /// Memory, in bytes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub memory_limit_bytes: Option<u64>,
    /// Disk, in bytes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub disk_limit_bytes: Option<u64>,
}

/// The body of Plane's `POST /ctrl/connect`.
///
/// ```
/// use connkit_session::{PlaneConnectRequest, PlaneKeyConfig, PlaneSpawnConfig};
/// let req = PlaneConnectRequest::new()
///     .key(PlaneKeyConfig::new("doc-42"))
///     .spawn_config(PlaneSpawnConfig::new(serde_json::json!({"image": "app:latest"})));
/// assert_eq!(
///     serde_json::to_string(&req)?,
///     r#"{"key":{"name":"doc-42"},"spawn_config":{"executable":{"image":"app:latest"}}}"#
/// );
/// # Ok::<(), serde_json::Error>(())
/// ```
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
#[must_use]
pub struct PlaneConnectRequest {
    /// The key: a live backend holding it is returned instead of spawning.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key: Option<PlaneKeyConfig>,
    /// How to spawn; without it only an existing backend can be returned.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub spawn_config: Option<PlaneSpawnConfig>,
    /// A user name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
    /// Arbitrary auth data.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub auth: Option<Value>,
}

impl PlaneConnectRequest {
    /// An empty request.
    pub fn new() -> Self {
        Self::default()
    }

    /// Set the key.
    pub fn key(mut self, key: PlaneKeyConfig) -> Self {
        self.key = Some(key);
        self
    }

    /// Set the spawn configuration.
    pub fn spawn_config(mut self, config: PlaneSpawnConfig) -> Self {
        self.spawn_config = Some(config);
        self
    }
}

/// A Plane key: a name within a namespace, and a tag that must match to reuse the backend.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct PlaneKeyConfig {
    /// The key's name.
    pub name: String,
    /// The namespace (Plane's default is `""`).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub namespace: String,
    /// The tag (Plane's default is `""`).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub tag: String,
}

impl PlaneKeyConfig {
    /// A key with this name in the default namespace, with no tag.
    #[must_use]
    pub fn new(name: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            ..Self::default()
        }
    }
}

/// How Plane should spawn a backend.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
#[must_use]
pub struct PlaneSpawnConfig {
    /// A backend id to use instead of a random one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    /// The cluster (Plane's default cluster when absent).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cluster: Option<String>,
    /// The drone pool.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub pool: String,
    /// The executor's configuration (for the Docker executor: `image`, `env`, …), passed
    /// through as JSON.
    pub executable: Value,
    /// Terminate after this many seconds whatever happens.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lifetime_limit_seconds: Option<u64>,
    /// Terminate after this many idle seconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_idle_seconds: Option<u64>,
    /// Use a static connection token.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub use_static_token: bool,
    /// A subdomain for the backend.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subdomain: Option<String>,
}

impl PlaneSpawnConfig {
    /// A configuration with this executable.
    pub fn new(executable: Value) -> Self {
        Self {
            executable,
            ..Self::default()
        }
    }

    /// Set `max_idle_seconds`.
    pub fn max_idle_seconds(mut self, secs: u64) -> Self {
        self.max_idle_seconds = Some(secs);
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use serde_json::json;

    /// Example JSON from the spec (observed on Plane 0.5.5 and the Jamsocket types).
    const STATES: &[&str] = &[
        r#"{"status":"ready","time":1795295454629}"#,
        r#"{"status":"scheduled","time":"2024-11-04T12:00:00.000Z"}"#,
        r#"{"status":"terminating","termination_reason":"external","termination_kind":"soft","time":1795295454629}"#,
        r#"{"status":"terminated","termination_reason":"external","termination_kind":"soft","exit_error":false,"time":1795295454629}"#,
        r#"{"status":"hard-terminating","termination_reason":"external","termination_kind":"hard","time":1795295454629}"#,
        r#"{"status":"terminated","termination_reason":"external","termination_kind":"hard","exit_error":true,"time":1795295454629}"#,
    ];

    #[test]
    fn spec_states_round_trip_exactly() {
        for s in STATES {
            let state: BackendState = serde_json::from_str(s).unwrap();
            let back: Value = serde_json::to_value(&state).unwrap();
            assert_eq!(back, serde_json::from_str::<Value>(s).unwrap(), "{s}");
        }
    }

    #[test]
    fn nulls_absent_fields_and_unknowns_are_accepted() {
        let s: BackendState = serde_json::from_str(
            r#"{"status":"terminated","time":"2024-01-01T00:00:00Z","termination_reason":null,"termination_kind":null,"exit_error":null,"extra":{"x":1}}"#,
        )
        .unwrap();
        assert_eq!(s.status, BackendStatus::Terminated);
        assert_eq!(s.termination_reason, None);
        assert_eq!(
            serde_json::to_string(&s).unwrap(),
            r#"{"status":"terminated","time":"2024-01-01T00:00:00Z"}"#
        );

        let s: BackendState = serde_json::from_str(
            r#"{"status":"draining","time":5,"termination_reason":"key_expired","termination_kind":"gentle"}"#,
        )
        .unwrap();
        assert_eq!(s.status, BackendStatus::Unknown("draining".into()));
        assert_eq!(s.status.rank(), None);
        assert_eq!(
            s.termination_reason,
            Some(TerminationReason::Unknown("key_expired".into()))
        );
        assert_eq!(
            s.termination_kind,
            Some(TerminationKind::Unknown("gentle".into()))
        );

        // Terminating without a reason is tolerated.
        let s: BackendState = serde_json::from_str(r#"{"status":"terminating","time":1}"#).unwrap();
        assert_eq!(s.status, BackendStatus::Terminating);
        // Missing status or time, or a wrong type, is an error (never a panic).
        for bad in [
            r#"{"time":1}"#,
            r#"{"status":"ready"}"#,
            r#"{"status":1,"time":1}"#,
            "[]",
            "null",
        ] {
            assert!(serde_json::from_str::<BackendState>(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn statuses_are_ordered_by_plane_rank() {
        let mut all = BackendStatus::ALL.to_vec();
        all.reverse();
        all.push(BackendStatus::Unknown("zzz".into()));
        all.sort();
        assert_eq!(all[0], BackendStatus::Scheduled);
        assert_eq!(all[7], BackendStatus::Terminated);
        assert_eq!(all[8], BackendStatus::Unknown("zzz".into()));
        assert!(BackendStatus::Terminating < BackendStatus::HardTerminating);
        for s in BackendStatus::ALL {
            assert_eq!(BackendStatus::from_wire(s.as_str()), s);
        }
        assert_eq!(BackendStatus::HardTerminating.as_str(), "hard-terminating");
        assert_eq!(TerminationReason::KeyExpired.as_str(), "keyexpired");
    }

    #[test]
    fn connect_responses_of_both_apis() {
        // Plane's /ctrl/connect, as observed.
        let plane = json!({
            "backend_id": "gvhhb3t3oc371t", "spawned": true, "status": "scheduled",
            "token": "tok", "url": "http://localhost:19090/tok/", "subdomain": null,
            "secret_token": "sec", "status_url": "http://127.0.0.1:18081/pub/b/gvhhb3t3oc371t/status",
            "drone": "dr-1"
        });
        let r: ConnectResponse = serde_json::from_value(plane).unwrap();
        assert_eq!(r.ready_url, None);
        assert_eq!(r.drone.as_deref(), Some("dr-1"));
        assert_eq!(r.status, BackendStatus::Scheduled);
        // Jamsocket v2, with an extra field.
        let jam = json!({
            "backend_id": "abc", "spawned": false, "status": "ready", "token": "t",
            "url": "https://abc.p.jamsocket.net/t/", "status_url": "https://api.jamsocket.com/v2/backend/abc/status",
            "ready_url": "https://abc.p.jamsocket.net/t/_plane_ready", "future": 1
        });
        let r: ConnectResponse = serde_json::from_value(jam.clone()).unwrap();
        assert!(!r.spawned);
        let mut expect = jam;
        expect.as_object_mut().unwrap().remove("future");
        assert_eq!(serde_json::to_value(&r).unwrap(), expect);
        // Required fields are required.
        assert!(serde_json::from_value::<ConnectResponse>(json!({"backend_id": "x"})).is_err());
    }

    #[test]
    fn connect_requests_of_both_apis() {
        let r: ConnectRequest = serde_json::from_value(json!({
            "key": "k", "spawn": {"tag": "v1", "max_idle_seconds": 30,
              "executable": {"mount": true, "env": {"A": "1"}, "resource_limits": {"cpu_period_percent": 50}}},
            "user": "u", "auth": {"role": "admin"}
        }))
        .unwrap();
        assert_eq!(r.config().and_then(|c| c.max_idle_seconds), Some(30));
        assert!(r.may_spawn());
        let r: ConnectRequest = serde_json::from_str(r#"{"spawn":false}"#).unwrap();
        assert!(!r.may_spawn());
        assert_eq!(serde_json::to_string(&ConnectRequest::new()).unwrap(), "{}");

        let p: PlaneConnectRequest = serde_json::from_str(
            r#"{"spawn_config":{"executable":{"image":"fake-image"},"max_idle_seconds":300}}"#,
        )
        .unwrap();
        let sc = p.spawn_config.as_ref().unwrap();
        assert_eq!(sc.max_idle_seconds, Some(300));
        assert_eq!(sc.executable, json!({"image": "fake-image"}));
        assert_eq!(
            serde_json::to_string(&p).unwrap(),
            r#"{"spawn_config":{"executable":{"image":"fake-image"},"max_idle_seconds":300}}"#
        );
    }

    fn arb_state() -> impl Strategy<Value = BackendState> {
        let status = prop_oneof![
            (0usize..8).prop_map(|i| BackendStatus::ALL[i].clone()),
            "[a-z-]{1,12}".prop_map(|s| BackendStatus::from_wire(&s)),
        ];
        let time = prop_oneof![
            any::<i64>().prop_map(Timestamp::EpochMillis),
            (0i64..4_000_000_000_000).prop_map(|ms| Timestamp::EpochMillis(ms).to_iso()),
        ];
        let reason =
            proptest::option::of("[a-z_]{1,14}".prop_map(|s| TerminationReason::from_wire(&s)));
        let kind = proptest::option::of("[a-z]{1,6}".prop_map(|s| TerminationKind::from_wire(&s)));
        (
            status,
            time,
            reason,
            kind,
            proptest::option::of(any::<bool>()),
        )
            .prop_map(
                |(status, time, termination_reason, termination_kind, exit_error)| BackendState {
                    status,
                    time,
                    termination_reason,
                    termination_kind,
                    exit_error,
                },
            )
    }

    proptest! {
        #[test]
        fn any_state_round_trips(state in arb_state()) {
            let json = serde_json::to_string(&state).unwrap();
            let back: BackendState = serde_json::from_str(&json).unwrap();
            prop_assert_eq!(back, state);
        }

        #[test]
        fn arbitrary_json_never_panics(s in "\\PC{0,80}") {
            let _ = serde_json::from_str::<BackendState>(&s);
            let _ = serde_json::from_str::<ConnectResponse>(&s);
        }
    }
}
