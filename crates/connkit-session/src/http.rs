//! The HTTP client underneath (reqwest with rustls), kept out of the public API.

use crate::error::{Error, Result};
use bytes::Bytes;
use futures_util::{Stream, StreamExt};
use serde::Serialize;
use serde::de::DeserializeOwned;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;
use url::Url;

/// A body being received, chunk by chunk.
pub(crate) type ByteStream = Pin<Box<dyn Stream<Item = Result<Bytes>> + Send>>;

/// The largest JSON answer read (connect responses and states are a few hundred bytes).
const MAX_JSON: usize = 1024 * 1024;
/// How much of an error body is kept for the message.
const MAX_ERROR_BODY: usize = 1024;

#[derive(Debug, Clone)]
pub(crate) struct Http {
    client: reqwest::Client,
    timeout: Duration,
}

impl Http {
    /// A client whose connects and whole JSON requests are bounded by `timeout` (the
    /// stream's headers too; its body is not, it is watched by the idle timeout).
    pub(crate) fn new(timeout: Duration) -> Result<Self> {
        let client = reqwest::Client::builder()
            .connect_timeout(timeout)
            .user_agent(concat!("connkit-session/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| Error::InvalidConfig(format!("cannot build the HTTP client: {e}")))?;
        Ok(Self { client, timeout })
    }

    /// `GET url` and parse the JSON answer.
    pub(crate) async fn get_json<T: DeserializeOwned>(&self, url: &Url) -> Result<T> {
        let req = self
            .client
            .get(url.clone())
            .header("accept", "application/json");
        self.json(url, req).await
    }

    /// `POST url` with a JSON body (and a bearer token) and parse the JSON answer.
    pub(crate) async fn post_json<B: Serialize + ?Sized, T: DeserializeOwned>(
        &self,
        url: &Url,
        bearer: Option<&str>,
        body: &B,
    ) -> Result<T> {
        let body = serde_json::to_vec(body)
            .map_err(|e| Error::InvalidConfig(format!("cannot encode the request body: {e}")))?;
        let mut req = self
            .client
            .post(url.clone())
            .header("content-type", "application/json")
            .header("accept", "application/json")
            .body(body);
        if let Some(token) = bearer {
            req = req.bearer_auth(token);
        }
        self.json(url, req).await
    }

    /// `POST url` with a JSON body (and a bearer token); the answer's body is not used.
    pub(crate) async fn post_discard<B: Serialize + ?Sized>(
        &self,
        url: &Url,
        bearer: Option<&str>,
        body: &B,
    ) -> Result<()> {
        let body = serde_json::to_vec(body)
            .map_err(|e| Error::InvalidConfig(format!("cannot encode the request body: {e}")))?;
        let mut req = self
            .client
            .post(url.clone())
            .header("content-type", "application/json")
            .body(body);
        if let Some(token) = bearer {
            req = req.bearer_auth(token);
        }
        self.body(url, req).await.map(|_| ())
    }

    async fn json<T: DeserializeOwned>(
        &self,
        url: &Url,
        req: reqwest::RequestBuilder,
    ) -> Result<T> {
        let body = self.body(url, req).await?;
        serde_json::from_slice(&body).map_err(|e| Error::InvalidResponse {
            url: url.to_string(),
            message: format!("{e} in {}", snippet(&body)),
        })
    }

    async fn body(&self, url: &Url, req: reqwest::RequestBuilder) -> Result<Vec<u8>> {
        let work = async {
            let resp = req.send().await.map_err(|e| request_error(url, &e))?;
            let resp = check(url, resp).await?;
            read_limited(url, resp, MAX_JSON).await
        };
        tokio::time::timeout(self.timeout, work)
            .await
            .map_err(|_| Error::Timeout {
                url: url.to_string(),
                after: self.timeout,
            })?
    }

    /// `GET url` as an event stream, resuming after `last_event_id`. The status is checked
    /// before the body is handed over.
    pub(crate) async fn open_stream(
        &self,
        url: &Url,
        last_event_id: Option<&str>,
    ) -> Result<ByteStream> {
        let mut req = self
            .client
            .get(url.clone())
            .header("accept", "text/event-stream")
            .header("cache-control", "no-cache");
        if let Some(id) = last_event_id {
            req = req.header("last-event-id", id);
        }
        let resp = tokio::time::timeout(self.timeout, req.send())
            .await
            .map_err(|_| Error::Timeout {
                url: url.to_string(),
                after: self.timeout,
            })?
            .map_err(|e| request_error(url, &e))?;
        let resp = check(url, resp).await?;
        let owned = url.to_string();
        Ok(Box::pin(resp.bytes_stream().map(move |r| {
            r.map_err(|e| Error::Request {
                url: owned.clone(),
                message: "the stream failed".into(),
                source: Some(Arc::new(e)),
            })
        })))
    }
}

fn request_error(url: &Url, e: &reqwest::Error) -> Error {
    let message = if e.is_connect() {
        "cannot connect"
    } else if e.is_timeout() {
        "timed out"
    } else {
        "the request failed"
    };
    // reqwest::Error is not Clone; keep its text chain as the cause.
    Error::Request {
        url: url.to_string(),
        message: format!("{message}: {}", connkit_core::error::display_chain(e)),
        source: None,
    }
}

/// Turn an error status into an [`Error`], reading a little of the body for the message.
async fn check(url: &Url, resp: reqwest::Response) -> Result<reqwest::Response> {
    let status = resp.status();
    if status.is_success() {
        return Ok(resp);
    }
    if status.as_u16() == 429 {
        let retry_after = resp
            .headers()
            .get("retry-after")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<u64>().ok())
            .map(Duration::from_secs);
        return Err(Error::RateLimited {
            url: url.to_string(),
            retry_after,
        });
    }
    let body = read_limited(url, resp, MAX_ERROR_BODY)
        .await
        .map(|b| snippet(&b))
        .unwrap_or_default();
    Err(Error::Http {
        url: url.to_string(),
        status: status.as_u16(),
        body,
    })
}

/// Read the body, keeping at most `max` bytes (an error-status body is truncated; a JSON
/// body that is too long is an error).
async fn read_limited(url: &Url, resp: reqwest::Response, max: usize) -> Result<Vec<u8>> {
    let truncate = !resp.status().is_success();
    let mut body = Vec::new();
    let mut stream = resp.bytes_stream();
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.map_err(|e| request_error(url, &e))?;
        body.extend_from_slice(&chunk);
        if body.len() > max {
            if truncate {
                body.truncate(max);
                break;
            }
            return Err(Error::InvalidResponse {
                url: url.to_string(),
                message: format!("the body is longer than {max} bytes"),
            });
        }
    }
    Ok(body)
}

fn snippet(body: &[u8]) -> String {
    let text = String::from_utf8_lossy(body);
    let mut s: String = text.chars().take(200).collect();
    if text.chars().count() > 200 {
        s.push('…');
    }
    s
}
