//! [`ApiClient`]: the connect, status and terminate calls of the Jamsocket v2 API and of
//! Plane's controller, as `@jamsocket/server` makes them, with time limits, typed HTTP
//! errors and optional retries.

use crate::backend::default_backoff;
use crate::error::{Error, Result};
use crate::http::Http;
use crate::types::{BackendState, ConnectRequest, ConnectResponse, PlaneConnectRequest};
use connkit_core::backoff::BackoffPolicy;
use serde::Serialize;
use std::fmt;
use std::sync::Arc;
use std::time::Duration;
use url::Url;

/// The hosted Jamsocket API.
pub const JAMSOCKET_API_URL: &str = "https://api.jamsocket.com";
/// The port of a Jamsocket-style dev server (`jamsocket dev`, `connkit session dev`).
pub const DEV_PORT: u16 = 8080;

#[derive(Clone, PartialEq, Eq)]
enum Target {
    Jamsocket {
        account: String,
        service: String,
        token: String,
    },
    Plane,
}

impl fmt::Debug for Target {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Jamsocket {
                account, service, ..
            } => f
                .debug_struct("Jamsocket")
                .field("account", account)
                .field("service", service)
                .field("token", &"<redacted>")
                .finish(),
            Self::Plane => f.write_str("Plane"),
        }
    }
}

/// Settings of an [`ApiClient`]: which API, where, and the time limits.
///
/// ```no_run
/// use connkit_session::ApiOptions;
/// use std::time::Duration;
/// let api = ApiOptions::jamsocket("my-account", "my-service", "my-token")
///     .timeout(Duration::from_secs(5))
///     .retries(2)
///     .build()?;
/// # Ok::<(), connkit_session::Error>(())
/// ```
#[derive(Clone)]
#[must_use]
pub struct ApiOptions {
    target: Target,
    base: String,
    timeout: Duration,
    retries: u32,
    backoff: Arc<dyn BackoffPolicy>,
}

impl fmt::Debug for ApiOptions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ApiOptions")
            .field("target", &self.target)
            .field("base", &self.base)
            .field("timeout", &self.timeout)
            .field("retries", &self.retries)
            .finish_non_exhaustive()
    }
}

impl ApiOptions {
    fn with(target: Target, base: String) -> Self {
        Self {
            target,
            base,
            timeout: Duration::from_secs(30),
            retries: 0,
            backoff: default_backoff(),
        }
    }

    /// The hosted Jamsocket v2 API (`https://api.jamsocket.com`) as `account`, for `service`,
    /// authenticated with `token`.
    pub fn jamsocket(
        account: impl Into<String>,
        service: impl Into<String>,
        token: impl Into<String>,
    ) -> Self {
        Self::with(
            Target::Jamsocket {
                account: account.into(),
                service: service.into(),
                token: token.into(),
            },
            JAMSOCKET_API_URL.to_owned(),
        )
    }

    /// A Jamsocket-style dev server on `http://localhost:8080`: account, service and token
    /// are all `-`, as `@jamsocket/server` does with `{dev: true}`.
    pub fn dev() -> Self {
        Self::dev_port(DEV_PORT)
    }

    /// A dev server on `http://localhost:{port}`.
    pub fn dev_port(port: u16) -> Self {
        Self::jamsocket("-", "-", "-").api_url(format!("http://localhost:{port}"))
    }

    /// Plane's controller at `controller_url` (`POST /ctrl/connect`, `/pub/b/{id}/status`).
    pub fn plane(controller_url: impl Into<String>) -> Self {
        Self::with(Target::Plane, controller_url.into())
    }

    /// Read the settings from the environment, as `Jamsocket.fromEnv` does: with
    /// `JAMSOCKET_DEV=true` a dev server on `JAMSOCKET_DEV_PORT` (default 8080); otherwise
    /// `JAMSOCKET_ACCOUNT`, `JAMSOCKET_TOKEN` and `JAMSOCKET_SERVICE` (all required) and
    /// `JAMSOCKET_API_URL` (optional).
    ///
    /// # Errors
    /// [`Error::InvalidConfig`] naming the missing variables, or a bad port.
    pub fn from_env() -> Result<Self> {
        Self::from_vars(|name| std::env::var(name).ok())
    }

    /// [`from_env`](Self::from_env) with the variables looked up by `var`.
    ///
    /// ```
    /// use connkit_session::ApiOptions;
    /// let vars = |name: &str| match name {
    ///     "JAMSOCKET_DEV" => Some("true".to_owned()),
    ///     "JAMSOCKET_DEV_PORT" => Some("9000".to_owned()),
    ///     _ => None,
    /// };
    /// let options = ApiOptions::from_vars(vars)?;
    /// assert_eq!(options.base_url(), "http://localhost:9000");
    /// # Ok::<(), connkit_session::Error>(())
    /// ```
    ///
    /// # Errors
    /// As [`from_env`](Self::from_env).
    pub fn from_vars(var: impl Fn(&str) -> Option<String>) -> Result<Self> {
        if var("JAMSOCKET_DEV").as_deref() == Some("true") {
            let port = match var("JAMSOCKET_DEV_PORT") {
                None => DEV_PORT,
                Some(p) => p.trim().parse::<u16>().map_err(|_| {
                    Error::InvalidConfig(format!(
                        "JAMSOCKET_DEV_PORT must be a port number, not {p:?}"
                    ))
                })?,
            };
            return Ok(Self::dev_port(port));
        }
        let names = ["JAMSOCKET_ACCOUNT", "JAMSOCKET_TOKEN", "JAMSOCKET_SERVICE"];
        let values: Vec<Option<String>> = names
            .iter()
            .map(|n| var(n).filter(|v| !v.is_empty()))
            .collect();
        let missing: Vec<&str> = names
            .iter()
            .zip(&values)
            .filter(|(_, v)| v.is_none())
            .map(|(n, _)| *n)
            .collect();
        if !missing.is_empty() {
            return Err(Error::InvalidConfig(format!(
                "set JAMSOCKET_DEV=true, or all of JAMSOCKET_ACCOUNT, JAMSOCKET_TOKEN and JAMSOCKET_SERVICE (missing: {})",
                missing.join(", ")
            )));
        }
        let mut v = values.into_iter().flatten();
        let (account, token, service) = (
            v.next().unwrap_or_default(),
            v.next().unwrap_or_default(),
            v.next().unwrap_or_default(),
        );
        let mut options = Self::jamsocket(account, service, token);
        if let Some(url) = var("JAMSOCKET_API_URL").filter(|u| !u.is_empty()) {
            options = options.api_url(url);
        }
        Ok(options)
    }

    /// The API's base URL (default `https://api.jamsocket.com` for Jamsocket).
    pub fn api_url(mut self, url: impl Into<String>) -> Self {
        self.base = url.into();
        self
    }

    /// The base URL set now.
    #[must_use]
    pub fn base_url(&self) -> &str {
        &self.base
    }

    /// The time limit of each request, connecting included (default 30 s).
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout.max(Duration::from_millis(1));
        self
    }

    /// Retry a request that failed in a retryable way (network, timeout, 5xx, 429) up to
    /// this many times, waiting the backoff's delays (or a 429's `Retry-After`). Default 0:
    /// a connect without a key is not idempotent.
    pub fn retries(mut self, retries: u32) -> Self {
        self.retries = retries;
        self
    }

    /// The backoff between retries (default exponential from 1 s, equal jitter).
    pub fn backoff_policy(mut self, policy: Arc<dyn BackoffPolicy>) -> Self {
        self.backoff = policy;
        self
    }

    /// Check the settings and make the client.
    ///
    /// # Errors
    /// [`Error::InvalidUrl`] for a base URL that is not absolute `http`/`https`.
    pub fn build(self) -> Result<ApiClient> {
        let base = crate::dialect::parse_status_url(&self.base)?;
        if base.cannot_be_a_base() {
            return Err(Error::invalid_url(&self.base, "it has no path"));
        }
        Ok(ApiClient {
            inner: Arc::new(Inner {
                http: Http::new(self.timeout)?,
                target: self.target,
                base,
                retries: self.retries,
                backoff: self.backoff,
            }),
        })
    }
}

/// Makes connect, status and terminate calls. Cheap to clone.
///
/// ```no_run
/// use connkit_session::{ApiClient, ConnectRequest};
/// # async fn demo() -> Result<(), connkit_session::Error> {
/// let api = ApiClient::dev()?;
/// let response = api.connect(&ConnectRequest::new().key("room-1")).await?;
/// let again = api.connect(&ConnectRequest::new().key("room-1")).await?;
/// assert_eq!(response.backend_id, again.backend_id);
/// api.terminate(&response.backend_id, false).await?;
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct ApiClient {
    inner: Arc<Inner>,
}

struct Inner {
    http: Http,
    target: Target,
    base: Url,
    retries: u32,
    backoff: Arc<dyn BackoffPolicy>,
}

impl fmt::Debug for ApiClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ApiClient")
            .field("target", &self.inner.target)
            .field("base", &self.inner.base.as_str())
            .finish_non_exhaustive()
    }
}

impl ApiClient {
    /// A client for a dev server on `localhost:8080` ([`ApiOptions::dev`]).
    ///
    /// # Errors
    /// When the HTTP client cannot be made.
    pub fn dev() -> Result<Self> {
        ApiOptions::dev().build()
    }

    /// A client configured from the `JAMSOCKET_*` variables ([`ApiOptions::from_env`]).
    ///
    /// # Errors
    /// As [`ApiOptions::from_env`] and [`ApiOptions::build`].
    pub fn from_env() -> Result<Self> {
        ApiOptions::from_env()?.build()
    }

    /// The base URL.
    #[must_use]
    pub fn base_url(&self) -> &Url {
        &self.inner.base
    }

    /// Whether this client talks to Plane's controller.
    #[must_use]
    pub fn is_plane(&self) -> bool {
        self.inner.target == Target::Plane
    }

    fn url(&self, segments: &[&str]) -> Result<Url> {
        let mut url = self.inner.base.clone();
        {
            let mut path = url
                .path_segments_mut()
                .map_err(|()| Error::invalid_url(self.inner.base.as_str(), "it has no path"))?;
            path.pop_if_empty();
            path.extend(segments);
        }
        Ok(url)
    }

    /// Get or spawn a backend through the Jamsocket v2 API:
    /// `POST {api}/v2/service/{account}/{service}/connect` with the bearer token.
    ///
    /// Cancel safe in the sense that dropping it abandons the request (the server may still
    /// have spawned a backend).
    ///
    /// # Errors
    /// [`Error::Http`] with the status (a 409 for `spawn: false` on an unknown key),
    /// [`Error::RateLimited`] for 429, [`Error::Timeout`], [`Error::Request`],
    /// [`Error::InvalidResponse`]; [`Error::InvalidConfig`] on a Plane client (use
    /// [`connect_plane`](Self::connect_plane)).
    pub async fn connect(&self, request: &ConnectRequest) -> Result<ConnectResponse> {
        let Target::Jamsocket {
            account,
            service,
            token,
        } = &self.inner.target
        else {
            return Err(Error::InvalidConfig(
                "connect() speaks the Jamsocket API; use connect_plane() with Plane".into(),
            ));
        };
        let url = self.url(&["v2", "service", account, service, "connect"])?;
        self.retrying(|| self.inner.http.post_json(&url, Some(token), request))
            .await
    }

    /// Get or spawn a backend through Plane's controller: `POST {controller}/ctrl/connect`.
    ///
    /// Cancel safe as [`connect`](Self::connect).
    ///
    /// # Errors
    /// As [`connect`](Self::connect); Plane answers 409 for a key held with another tag or
    /// an unheld key without `spawn_config`.
    pub async fn connect_plane(&self, request: &PlaneConnectRequest) -> Result<ConnectResponse> {
        let url = self.url(&["ctrl", "connect"])?;
        let bearer = self.bearer();
        self.retrying(|| self.inner.http.post_json(&url, bearer, request))
            .await
    }

    fn bearer(&self) -> Option<&str> {
        match &self.inner.target {
            Target::Jamsocket { token, .. } => Some(token),
            Target::Plane => None,
        }
    }

    /// The status URL of a backend (`/v2/backend/{id}/status` or `/pub/b/{id}/status`).
    ///
    /// # Errors
    /// [`Error::InvalidUrl`] if the base URL cannot have a path.
    pub fn status_url(&self, backend_id: &str) -> Result<Url> {
        match self.inner.target {
            Target::Jamsocket { .. } => self.url(&["v2", "backend", backend_id, "status"]),
            Target::Plane => self.url(&["pub", "b", backend_id, "status"]),
        }
    }

    /// A backend's current state.
    ///
    /// Cancel safe.
    ///
    /// # Errors
    /// [`Error::Http`] (404 for an unknown backend) and the other request errors.
    pub async fn status(&self, backend_id: &str) -> Result<BackendState> {
        let url = self.status_url(backend_id)?;
        self.retrying(|| self.inner.http.get_json(&url)).await
    }

    /// Terminate a backend: gracefully, or at once with `hard`.
    /// Jamsocket: `POST /v2/backend/{id}/terminate {"hard":…}`; Plane:
    /// `POST /ctrl/b/{id}/soft-terminate` or `/hard-terminate`.
    ///
    /// Cancel safe in the sense that dropping it abandons the request.
    ///
    /// # Errors
    /// [`Error::Http`] (404 for an unknown backend) and the other request errors.
    pub async fn terminate(&self, backend_id: &str, hard: bool) -> Result<()> {
        #[derive(Serialize)]
        struct Body {
            hard: bool,
        }
        let (url, body) = match self.inner.target {
            Target::Jamsocket { .. } => (
                self.url(&["v2", "backend", backend_id, "terminate"])?,
                Body { hard },
            ),
            Target::Plane => (
                self.url(&[
                    "ctrl",
                    "b",
                    backend_id,
                    if hard {
                        "hard-terminate"
                    } else {
                        "soft-terminate"
                    },
                ])?,
                Body { hard },
            ),
        };
        let bearer = self.bearer();
        self.retrying(|| self.inner.http.post_discard(&url, bearer, &body))
            .await
    }

    async fn retrying<T, F, Fut>(&self, mut f: F) -> Result<T>
    where
        F: FnMut() -> Fut,
        Fut: std::future::Future<Output = Result<T>>,
    {
        let mut delays = self.inner.backoff.new_schedule();
        let _ = delays.next(); // the first attempt is not delayed
        let mut retries = 0;
        loop {
            match f().await {
                Err(e) if e.is_retryable() && retries < self.inner.retries => {
                    retries += 1;
                    let delay = match &e {
                        Error::RateLimited {
                            retry_after: Some(d),
                            ..
                        } => *d,
                        _ => delays.next().unwrap_or(Duration::from_secs(1)),
                    };
                    tracing::debug!(error = %e, retries, ?delay, "retrying");
                    tokio::time::sleep(delay).await;
                }
                other => return other,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn env_configuration() {
        let dev = |name: &str| (name == "JAMSOCKET_DEV").then(|| "true".to_owned());
        assert_eq!(
            ApiOptions::from_vars(dev).unwrap().base_url(),
            "http://localhost:8080"
        );
        let bad_port = |name: &str| match name {
            "JAMSOCKET_DEV" => Some("true".to_owned()),
            "JAMSOCKET_DEV_PORT" => Some("80x".to_owned()),
            _ => None,
        };
        assert!(matches!(
            ApiOptions::from_vars(bad_port),
            Err(Error::InvalidConfig(_))
        ));
        let partial = |name: &str| (name == "JAMSOCKET_ACCOUNT").then(|| "acct".to_owned());
        let err = ApiOptions::from_vars(partial).unwrap_err().to_string();
        assert!(err.contains("JAMSOCKET_TOKEN, JAMSOCKET_SERVICE"), "{err}");
        let full = |name: &str| {
            Some(
                match name {
                    "JAMSOCKET_ACCOUNT" => "a",
                    "JAMSOCKET_TOKEN" => "t",
                    "JAMSOCKET_SERVICE" => "s",
                    "JAMSOCKET_API_URL" => "http://127.0.0.1:1/base/",
                    _ => return None,
                }
                .to_owned(),
            )
        };
        let o = ApiOptions::from_vars(full).unwrap();
        assert_eq!(o.base_url(), "http://127.0.0.1:1/base/");
        assert!(format!("{o:?}").contains("<redacted>"));
    }

    #[tokio::test]
    async fn urls_of_both_apis() {
        let jam = ApiOptions::jamsocket("a c", "s", "t")
            .api_url("http://h:1/base/")
            .build()
            .unwrap();
        assert_eq!(
            jam.status_url("id1").unwrap().as_str(),
            "http://h:1/base/v2/backend/id1/status"
        );
        assert_eq!(
            jam.url(&["v2", "service", "a c", "s", "connect"])
                .unwrap()
                .as_str(),
            "http://h:1/base/v2/service/a%20c/s/connect"
        );
        let plane = ApiOptions::plane("http://h:2").build().unwrap();
        assert_eq!(
            plane.status_url("x/y").unwrap().as_str(),
            "http://h:2/pub/b/x%2Fy/status"
        );
        assert!(plane.is_plane());
        assert!(matches!(
            plane.connect(&ConnectRequest::new()).await,
            Err(Error::InvalidConfig(_))
        ));
        assert!(ApiOptions::plane("nope").build().is_err());
    }
}
