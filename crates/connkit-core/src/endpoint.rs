//! [`Endpoint`]: where to connect or listen, written as a URL.
//!
//! | form | meaning |
//! |---|---|
//! | `tcp://host:port` | plain TCP |
//! | `tls://host:port` | TLS over TCP (rustls) |
//! | `unix:///abs/path`, `unix://relative/path` | a Unix socket file |
//! | `ws://host[:port][/path]` | WebSocket (port 80 by default, path `/` by default) |
//! | `wss://host[:port][/path]` | WebSocket over TLS (port 443 by default) |
//!
//! IPv6 hosts are written in brackets: `tcp://[::1]:8080`.
//!
//! ```
//! use connkit_core::Endpoint;
//! let ep: Endpoint = "ws://127.0.0.1:8080/jstp".parse()?;
//! assert_eq!(ep.port(), Some(8080));
//! assert_eq!(ep.to_string(), "ws://127.0.0.1:8080/jstp");
//! let unix: Endpoint = "unix:///run/app.sock".parse()?;
//! assert_eq!(unix.path().unwrap().to_str(), Some("/run/app.sock"));
//! # Ok::<(), connkit_core::EndpointError>(())
//! ```

use std::fmt;
use std::path::{Path, PathBuf};
use std::str::FromStr;

/// The transport an [`Endpoint`] uses, from its URL scheme.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Scheme {
    /// `tcp://`
    Tcp,
    /// `tls://`
    Tls,
    /// `unix://`
    Unix,
    /// `ws://`
    Ws,
    /// `wss://`
    Wss,
}

impl Scheme {
    /// The scheme as written in a URL, without `://`.
    #[must_use]
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Tcp => "tcp",
            Self::Tls => "tls",
            Self::Unix => "unix",
            Self::Ws => "ws",
            Self::Wss => "wss",
        }
    }

    /// Whether the scheme runs over TLS (`tls`, `wss`).
    #[must_use]
    pub const fn is_tls(self) -> bool {
        matches!(self, Self::Tls | Self::Wss)
    }

    /// Whether the scheme is a WebSocket (`ws`, `wss`).
    #[must_use]
    pub const fn is_websocket(self) -> bool {
        matches!(self, Self::Ws | Self::Wss)
    }
}

impl fmt::Display for Scheme {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Where to connect or listen: a TCP/TLS/WebSocket host and port, or a Unix socket path.
/// Parse one with [`str::parse`]; [`Display`](fmt::Display) writes it back as a URL.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Endpoint {
    scheme: Scheme,
    target: Target,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum Target {
    Net {
        host: String,
        port: u16,
        /// Path and query, WebSocket only; always starts with `/`.
        path: String,
    },
    Unix(PathBuf),
}

/// The part of an endpoint URL that was wrong.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum EndpointPart {
    /// The scheme (`tcp`, `tls`, `unix`, `ws`, `wss`) or the `://` after it.
    Scheme,
    /// The host.
    Host,
    /// The port.
    Port,
    /// The path.
    Path,
}

impl fmt::Display for EndpointPart {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Scheme => "scheme",
            Self::Host => "host",
            Self::Port => "port",
            Self::Path => "path",
        })
    }
}

/// An endpoint URL that could not be parsed; it names the bad part and says why.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid endpoint `{input}`: bad {part}: {reason}")]
pub struct EndpointError {
    input: String,
    part: EndpointPart,
    reason: String,
}

impl EndpointError {
    fn new(input: &str, part: EndpointPart, reason: impl Into<String>) -> Self {
        Self {
            input: input.to_owned(),
            part,
            reason: reason.into(),
        }
    }

    /// The part that was wrong.
    #[must_use]
    pub fn part(&self) -> EndpointPart {
        self.part
    }

    /// The text that was parsed.
    #[must_use]
    pub fn input(&self) -> &str {
        &self.input
    }

    /// Why that part is wrong.
    #[must_use]
    pub fn reason(&self) -> &str {
        &self.reason
    }
}

impl Endpoint {
    /// A `tcp://host:port` endpoint.
    pub fn tcp(host: impl Into<String>, port: u16) -> Self {
        Self::net(Scheme::Tcp, host.into(), port, String::new())
    }

    /// A `tls://host:port` endpoint.
    pub fn tls(host: impl Into<String>, port: u16) -> Self {
        Self::net(Scheme::Tls, host.into(), port, String::new())
    }

    /// A `ws://host:port/path` endpoint (`path` gets a leading `/` if it lacks one).
    pub fn ws(host: impl Into<String>, port: u16, path: &str) -> Self {
        Self::net(Scheme::Ws, host.into(), port, normalize_path(path))
    }

    /// A `wss://host:port/path` endpoint (`path` gets a leading `/` if it lacks one).
    pub fn wss(host: impl Into<String>, port: u16, path: &str) -> Self {
        Self::net(Scheme::Wss, host.into(), port, normalize_path(path))
    }

    /// A `unix://` endpoint for a socket file.
    pub fn unix(path: impl Into<PathBuf>) -> Self {
        Self {
            scheme: Scheme::Unix,
            target: Target::Unix(path.into()),
        }
    }

    fn net(scheme: Scheme, host: String, port: u16, path: String) -> Self {
        let host = host
            .strip_prefix('[')
            .and_then(|h| h.strip_suffix(']'))
            .map_or(host.clone(), str::to_owned);
        Self {
            scheme,
            target: Target::Net { host, port, path },
        }
    }

    /// The scheme.
    #[must_use]
    pub fn scheme(&self) -> Scheme {
        self.scheme
    }

    /// The host (without IPv6 brackets), or `None` for a Unix socket.
    #[must_use]
    pub fn host(&self) -> Option<&str> {
        match &self.target {
            Target::Net { host, .. } => Some(host),
            Target::Unix(_) => None,
        }
    }

    /// The port, or `None` for a Unix socket.
    #[must_use]
    pub fn port(&self) -> Option<u16> {
        match &self.target {
            Target::Net { port, .. } => Some(*port),
            Target::Unix(_) => None,
        }
    }

    /// The socket path of a `unix://` endpoint.
    #[must_use]
    pub fn path(&self) -> Option<&Path> {
        match &self.target {
            Target::Unix(p) => Some(p),
            Target::Net { .. } => None,
        }
    }

    /// The HTTP path (and query) of a WebSocket endpoint, `/` by default; `None` otherwise.
    #[must_use]
    pub fn ws_path(&self) -> Option<&str> {
        match &self.target {
            Target::Net { path, .. } if self.scheme.is_websocket() => {
                Some(if path.is_empty() { "/" } else { path })
            }
            _ => None,
        }
    }

    /// The same endpoint with another port (for example the real port after binding port 0).
    /// A Unix endpoint is returned unchanged.
    #[must_use]
    pub fn with_port(&self, port: u16) -> Self {
        let mut out = self.clone();
        if let Target::Net { port: p, .. } = &mut out.target {
            *p = port;
        }
        out
    }

    /// `host:port` as used by a socket address look-up, with brackets for IPv6.
    #[must_use]
    pub fn authority(&self) -> Option<String> {
        match &self.target {
            Target::Net { host, port, .. } => Some(format!("{}:{port}", bracket(host))),
            Target::Unix(_) => None,
        }
    }
}

fn bracket(host: &str) -> std::borrow::Cow<'_, str> {
    if host.contains(':') {
        format!("[{host}]").into()
    } else {
        host.into()
    }
}

fn normalize_path(path: &str) -> String {
    if path.is_empty() || path.starts_with('/') {
        path.to_owned()
    } else {
        format!("/{path}")
    }
}

impl fmt::Display for Endpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.target {
            Target::Unix(p) => write!(f, "unix://{}", p.display()),
            Target::Net { host, port, path } => {
                write!(f, "{}://{}:{port}", self.scheme, bracket(host))?;
                if self.scheme.is_websocket() {
                    f.write_str(if path.is_empty() { "/" } else { path })?;
                }
                Ok(())
            }
        }
    }
}

impl FromStr for Endpoint {
    type Err = EndpointError;

    fn from_str(input: &str) -> Result<Self, EndpointError> {
        let err = |part, reason: &str| EndpointError::new(input, part, reason);
        let (scheme, rest) = input.split_once("://").ok_or_else(|| {
            err(
                EndpointPart::Scheme,
                "expected `scheme://`, one of tcp, tls, unix, ws, wss",
            )
        })?;
        let scheme = match scheme.to_ascii_lowercase().as_str() {
            "tcp" => Scheme::Tcp,
            "tls" => Scheme::Tls,
            "unix" => Scheme::Unix,
            "ws" => Scheme::Ws,
            "wss" => Scheme::Wss,
            other => {
                return Err(err(
                    EndpointPart::Scheme,
                    &format!("unknown scheme `{other}`; expected tcp, tls, unix, ws or wss"),
                ));
            }
        };
        if scheme == Scheme::Unix {
            if rest.is_empty() {
                return Err(err(EndpointPart::Path, "the socket path is empty"));
            }
            if rest.contains('\0') {
                return Err(err(
                    EndpointPart::Path,
                    "the socket path contains a NUL byte",
                ));
            }
            return Ok(Self::unix(rest));
        }
        let (authority, path) = match rest.find(['/', '?']) {
            Some(i) => (&rest[..i], &rest[i..]),
            None => (rest, ""),
        };
        if !path.is_empty() && path != "/" && !scheme.is_websocket() {
            return Err(err(
                EndpointPart::Path,
                &format!("`{path}`: only ws:// and wss:// endpoints have a path"),
            ));
        }
        let (host, port) = split_host_port(authority).map_err(|(p, r)| err(p, &r))?;
        if host.is_empty() {
            return Err(err(EndpointPart::Host, "the host is empty"));
        }
        let port = match (port, scheme) {
            (Some(p), _) => p.parse::<u16>().map_err(|_| {
                err(
                    EndpointPart::Port,
                    &format!("`{p}` is not a number in 0..=65535"),
                )
            })?,
            (None, Scheme::Ws) => 80,
            (None, Scheme::Wss) => 443,
            (None, _) => {
                return Err(err(
                    EndpointPart::Port,
                    &format!("a {scheme}:// endpoint needs a port, as in {scheme}://{host}:8080"),
                ));
            }
        };
        let path = if scheme.is_websocket() {
            normalize_path(path)
        } else {
            String::new()
        };
        Ok(Self::net(scheme, host.to_owned(), port, path))
    }
}

/// Splits `host:port`, `[v6]:port`, `host` or `[v6]`.
fn split_host_port(authority: &str) -> Result<(&str, Option<&str>), (EndpointPart, String)> {
    if let Some(rest) = authority.strip_prefix('[') {
        let (host, after) = rest.split_once(']').ok_or((
            EndpointPart::Host,
            "missing `]` after an IPv6 address".to_owned(),
        ))?;
        if host.parse::<std::net::Ipv6Addr>().is_err() {
            return Err((
                EndpointPart::Host,
                format!("`{host}` is not an IPv6 address"),
            ));
        }
        return match after {
            "" => Ok((host, None)),
            p => match p.strip_prefix(':') {
                Some(port) => Ok((host, Some(port))),
                None => Err((EndpointPart::Port, format!("unexpected `{p}` after `]`"))),
            },
        };
    }
    match authority.rsplit_once(':') {
        Some((host, _)) if host.contains(':') => Err((
            EndpointPart::Host,
            format!("`{authority}`: write IPv6 addresses in brackets, as in [::1]:8080"),
        )),
        Some((host, port)) => Ok((host, Some(port))),
        None => Ok((authority, None)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(s: &str) -> Endpoint {
        s.parse().unwrap()
    }

    #[test]
    fn round_trips() {
        for s in [
            "tcp://127.0.0.1:80",
            "tls://example.com:443",
            "unix:///tmp/a.sock",
            "unix://rel/a.sock",
            "ws://h:1/",
            "ws://h:1/jstp?x=1",
            "wss://[::1]:9/p",
            "tcp://[::1]:0",
        ] {
            assert_eq!(parse(s).to_string(), s, "{s}");
        }
    }

    #[test]
    fn defaults_and_accessors() {
        let ws = parse("ws://localhost");
        assert_eq!(ws.port(), Some(80));
        assert_eq!(ws.ws_path(), Some("/"));
        assert_eq!(parse("wss://h/x").port(), Some(443));
        assert_eq!(parse("tcp://[::1]:5").host(), Some("::1"));
        assert_eq!(
            parse("tcp://[::1]:5").authority().as_deref(),
            Some("[::1]:5")
        );
        assert_eq!(parse("unix://./s").path(), Some(Path::new("./s")));
        assert_eq!(parse("TCP://a:1").scheme(), Scheme::Tcp);
        assert_eq!(parse("tcp://a:1/").to_string(), "tcp://a:1");
        assert_eq!(parse("tcp://a:0").with_port(7).port(), Some(7));
    }

    #[test]
    fn errors_name_the_bad_part() {
        let cases = [
            ("127.0.0.1:80", EndpointPart::Scheme),
            ("http://a:1", EndpointPart::Scheme),
            ("tcp://a", EndpointPart::Port),
            ("tcp://a:99999", EndpointPart::Port),
            ("tcp://a:x", EndpointPart::Port),
            ("tcp://:80", EndpointPart::Host),
            ("tcp://::1:80", EndpointPart::Host),
            ("tcp://[::1:80", EndpointPart::Host),
            ("tcp://[zz]:80", EndpointPart::Host),
            ("tcp://a:1/path", EndpointPart::Path),
            ("unix://", EndpointPart::Path),
        ];
        for (input, part) in cases {
            let e = input.parse::<Endpoint>().unwrap_err();
            assert_eq!(e.part(), part, "{input}: {e}");
            assert!(e.to_string().contains(input), "{e}");
        }
    }
}
