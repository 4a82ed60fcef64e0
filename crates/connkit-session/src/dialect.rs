//! Where the status stream of a backend lives, given its status URL.

use crate::error::{Error, Result};
use url::Url;

/// The two URL conventions for a backend's status stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum StreamDialect {
    /// Jamsocket (hosted API v2 and `jamsocket dev`): the stream is the status URL plus
    /// `/stream` (`…/v2/backend/{id}/status/stream`).
    Jamsocket,
    /// Plane: the status URL is `…/pub/b/{id}/status` and the stream is its sibling
    /// `…/pub/b/{id}/status-stream`.
    Plane,
}

impl StreamDialect {
    /// Plane when the URL's path ends in `/pub/b/{id}/status`, Jamsocket otherwise.
    ///
    /// ```
    /// use connkit_session::StreamDialect;
    /// let plane = "http://127.0.0.1:8080/pub/b/gvhhb3t3oc371t/status".parse()?;
    /// assert_eq!(StreamDialect::detect(&plane), StreamDialect::Plane);
    /// let jam = "https://api.jamsocket.com/v2/backend/abc/status".parse()?;
    /// assert_eq!(StreamDialect::detect(&jam), StreamDialect::Jamsocket);
    /// # Ok::<(), url::ParseError>(())
    /// ```
    #[must_use]
    pub fn detect(status_url: &Url) -> Self {
        let segments: Vec<&str> = status_url
            .path_segments()
            .map(|s| s.filter(|p| !p.is_empty()).collect())
            .unwrap_or_default();
        match segments.as_slice() {
            [.., "pub", "b", _, "status"] => Self::Plane,
            _ => Self::Jamsocket,
        }
    }

    /// The stream URL for `status_url` in this dialect (the query, if any, is kept).
    ///
    /// ```
    /// use connkit_session::StreamDialect;
    /// let url = "http://localhost:8080/v2/backend/abc/status".parse()?;
    /// assert_eq!(
    ///     StreamDialect::Jamsocket.stream_url(&url)?.as_str(),
    ///     "http://localhost:8080/v2/backend/abc/status/stream"
    /// );
    /// let url = "http://localhost:8080/pub/b/abc/status".parse()?;
    /// assert_eq!(
    ///     StreamDialect::Plane.stream_url(&url)?.as_str(),
    ///     "http://localhost:8080/pub/b/abc/status-stream"
    /// );
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    ///
    /// # Errors
    /// [`Error::InvalidUrl`] when the URL cannot have a path (`mailto:`), or, for Plane,
    /// when its path does not end in `/status`.
    pub fn stream_url(self, status_url: &Url) -> Result<Url> {
        if status_url.cannot_be_a_base() {
            return Err(Error::invalid_url(status_url.as_str(), "it has no path"));
        }
        let path = status_url.path().trim_end_matches('/');
        let new_path = match self {
            Self::Jamsocket => format!("{path}/stream"),
            Self::Plane => match path.strip_suffix("/status") {
                Some(base) => format!("{base}/status-stream"),
                None => {
                    return Err(Error::invalid_url(
                        status_url.as_str(),
                        "a Plane status URL ends in /status",
                    ));
                }
            },
        };
        let mut url = status_url.clone();
        url.set_path(&new_path);
        url.set_fragment(None);
        Ok(url)
    }
}

/// Parse a status URL: absolute, `http` or `https`.
pub(crate) fn parse_status_url(s: &str) -> Result<Url> {
    let url = Url::parse(s.trim()).map_err(|e| Error::invalid_url(s, e.to_string()))?;
    match url.scheme() {
        "http" | "https" => Ok(url),
        other => Err(Error::invalid_url(
            s,
            format!("the scheme must be http or https, not {other}"),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn detection_and_stream_urls() {
        let u = |s: &str| Url::parse(s).unwrap();
        assert_eq!(
            StreamDialect::detect(&u("http://h/pub/b/x/status/")),
            StreamDialect::Plane
        );
        assert_eq!(
            StreamDialect::detect(&u("http://h/prefix/pub/b/x/status")),
            StreamDialect::Plane
        );
        assert_eq!(
            StreamDialect::detect(&u("http://h/pub/b/x/status/stream")),
            StreamDialect::Jamsocket
        );
        assert_eq!(
            StreamDialect::detect(&u("http://h/v2/backend/x/status")),
            StreamDialect::Jamsocket
        );
        assert_eq!(
            StreamDialect::Jamsocket
                .stream_url(&u("http://h/v2/backend/x/status?a=1#f"))
                .unwrap()
                .as_str(),
            "http://h/v2/backend/x/status/stream?a=1"
        );
        assert!(
            StreamDialect::Plane
                .stream_url(&u("http://h/v2/backend/x/state"))
                .is_err()
        );
        assert!(StreamDialect::Plane.stream_url(&u("mailto:a@b")).is_err());
        assert!(parse_status_url("ftp://h/x").is_err());
        assert!(parse_status_url("not a url").is_err());
        assert!(parse_status_url(" http://h/x ").is_ok());
    }
}
