//! Errors: [`RemoteError`] (what travels in `error:[…]`, spec §5) and the crate's [`Error`].

use crate::value::{SerdeError, SerializeError, Value};
use std::fmt;

/// `-1`: the connection closed before the reply to a call, inspect or ping arrived. Local
/// only: never sent on the wire.
pub const ERR_CALLBACK_LOST: i64 = -1;
/// `-2`: the connection closed before the handshake reply arrived. Local only.
pub const ERR_NO_HANDSHAKE_RESPONSE: i64 = -2;
/// `10`: no application with that name, or no version matching the request.
pub const ERR_APP_NOT_FOUND: i64 = 10;
/// `11`: the credentials were refused (or the strategy is unknown, or the session id is).
pub const ERR_AUTH_FAILED: i64 = 11;
/// `12`: the application has no such interface.
pub const ERR_INTERFACE_NOT_FOUND: i64 = 12;
/// `13`: defined by the protocol, never produced by the Node library or by us.
pub const ERR_INTERFACE_INCOMPATIBLE: i64 = 13;
/// `14`: the interface has no such method.
pub const ERR_METHOD_NOT_FOUND: i64 = 14;
/// `15`: a handshake request was sent to a client.
pub const ERR_NOT_A_SERVER: i64 = 15;
/// `16`: the method failed (panicked, or could not encode its result).
pub const ERR_INTERNAL_API_ERROR: i64 = 16;
/// `17`: the arguments are missing, not an array, or do not fit the method.
pub const ERR_INVALID_SIGNATURE: i64 = 17;

/// The default message for a predefined code (10–17, −1, −2), as Node's `RemoteError` has it.
#[must_use]
pub fn default_message(code: i64) -> Option<&'static str> {
    Some(match code {
        ERR_CALLBACK_LOST => "Connection closed before receiving callback",
        ERR_NO_HANDSHAKE_RESPONSE => "Connection closed before receiving handshake",
        ERR_APP_NOT_FOUND => "Application not found",
        ERR_AUTH_FAILED => "Authentication failed",
        ERR_INTERFACE_NOT_FOUND => "Interface not found",
        ERR_INTERFACE_INCOMPATIBLE => "Incompatible interface",
        ERR_METHOD_NOT_FOUND => "Method not found",
        ERR_NOT_A_SERVER => "Not a server",
        ERR_INTERNAL_API_ERROR => "Internal API error",
        ERR_INVALID_SIGNATURE => "Invalid signature",
        _ => return None,
    })
}

/// An error as JSTP carries it: `[code]`, `[code, message]` or `[code, message, ...info]`
/// (spec §5).
///
/// Methods return it to fail a call; callers get it back as [`Error::Remote`]. The wire form
/// follows Node's `RemoteError#toJSTP`: the message is sent only when the code is not a
/// predefined one (10–17, −1, −2) and a message was given, and `info` only together with the
/// message. So `RemoteError::new(11).message("bad password")` goes out as `[11]`.
///
/// ```
/// use connkit_jstp::{RemoteError, Value};
///
/// let e = RemoteError::new(100).message("Division by zero").info(vec![Value::from("a"), 1.into()]);
/// assert_eq!(e.to_value().to_string(), "[100,'Division by zero','a',1]");
/// let back = RemoteError::from_value(&e.to_value());
/// assert_eq!(back, e);
/// assert_eq!(RemoteError::new(12).to_string(), "Interface not found (code 12)");
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct RemoteError {
    code: i64,
    message: Option<String>,
    info: Option<Vec<Value>>,
}

impl RemoteError {
    /// An error with `code` and no message of its own (the default text is shown).
    #[must_use]
    pub fn new(code: i64) -> Self {
        Self {
            code,
            message: None,
            info: None,
        }
    }

    /// Set the message. Not sent for predefined codes (spec §5, quirk 11).
    #[must_use]
    pub fn message(mut self, message: impl Into<String>) -> Self {
        self.message = Some(message.into());
        self
    }

    /// Set the extra elements sent after the message (since 2.3.0).
    #[must_use]
    pub fn info(mut self, info: Vec<Value>) -> Self {
        self.info = Some(info);
        self
    }

    /// A generic failure as Node sends for a string error: `[1, text]`.
    #[must_use]
    pub fn text(text: impl Into<String>) -> Self {
        Self::new(1).message(text)
    }

    /// `[16]`: the method failed.
    #[must_use]
    pub fn internal() -> Self {
        Self::new(ERR_INTERNAL_API_ERROR)
    }

    /// `[17]`: the arguments do not fit.
    #[must_use]
    pub fn invalid_signature() -> Self {
        Self::new(ERR_INVALID_SIGNATURE)
    }

    /// `[11]`: authentication failed.
    #[must_use]
    pub fn auth_failed() -> Self {
        Self::new(ERR_AUTH_FAILED)
    }

    /// The code.
    #[must_use]
    pub fn code(&self) -> i64 {
        self.code
    }

    /// The message: the one given, or the default text of a predefined code, or the code as
    /// text (as Node's `RemoteError` does).
    #[must_use]
    pub fn text_message(&self) -> String {
        match (&self.message, default_message(self.code)) {
            (Some(m), _) if !m.is_empty() => m.clone(),
            (_, Some(d)) => d.to_owned(),
            _ => self.code.to_string(),
        }
    }

    /// The message given (or received), if any.
    #[must_use]
    pub fn given_message(&self) -> Option<&str> {
        self.message.as_deref()
    }

    /// The extra elements after the message, if any.
    #[must_use]
    pub fn get_info(&self) -> Option<&[Value]> {
        self.info.as_deref()
    }

    /// Whether the code is one of the predefined ones (10–17, −1, −2).
    #[must_use]
    pub fn is_predefined(&self) -> bool {
        default_message(self.code).is_some()
    }

    /// The wire form, an array (Node's `toJSTP`).
    #[must_use]
    pub fn to_value(&self) -> Value {
        let mut out = vec![Value::from(self.code)];
        if let Some(m) = &self.message
            && !self.is_predefined()
            && !m.is_empty()
            && *m != self.code.to_string()
        {
            out.push(Value::from(m.as_str()));
            if let Some(info) = &self.info {
                out.extend(info.iter().cloned());
            }
        }
        Value::Array(out)
    }

    /// Read an `error` member. An array gives `code`, `message` and `info` as Node's
    /// `RemoteError.fromJstpArray` does; anything else (which Node never sends) becomes
    /// code 1 with the value's text.
    #[must_use]
    pub fn from_value(value: &Value) -> Self {
        match value {
            Value::Array(items) => {
                let code = items.first().and_then(Value::as_i64);
                match code {
                    Some(code) => Self {
                        code,
                        message: match items.get(1) {
                            Some(Value::String(s)) if !s.is_empty() => Some(s.clone()),
                            _ => None,
                        },
                        info: (items.len() > 2).then(|| items[2..].to_vec()),
                    },
                    None => Self::text(value.to_string()),
                }
            }
            Value::Number(_) => value
                .as_i64()
                .map_or_else(|| Self::text(value.to_string()), Self::new),
            Value::String(s) => Self::text(s.clone()),
            other => Self::text(other.to_string()),
        }
    }
}

impl fmt::Display for RemoteError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} (code {})", self.text_message(), self.code)
    }
}

impl std::error::Error for RemoteError {}

/// A string fails a call as Node does with a string: `[1, text]`.
impl From<String> for RemoteError {
    fn from(text: String) -> Self {
        Self::text(text)
    }
}

/// A string fails a call as Node does with a string: `[1, text]`.
impl From<&str> for RemoteError {
    fn from(text: &str) -> Self {
        Self::text(text)
    }
}

/// A number fails a call as Node does with a number: `[code]`.
impl From<i64> for RemoteError {
    fn from(code: i64) -> Self {
        Self::new(code)
    }
}

/// Arguments that do not convert to the method's types: `[17]`.
impl From<SerdeError> for RemoteError {
    fn from(_: SerdeError) -> Self {
        Self::invalid_signature()
    }
}

/// Everything that can go wrong in connkit-jstp.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The peer answered with an error (a failed call, a refused handshake), or a request
    /// ended locally with −1 (the connection closed before the reply) or −2 (it closed before
    /// the handshake reply).
    #[error("remote error: {0}")]
    Remote(RemoteError),
    /// A transport failure: connect, bind, TLS, WebSocket, socket I/O, oversize message.
    #[error(transparent)]
    Transport(#[from] connkit_core::Error),
    /// A value cannot be sent (NaN or ±Infinity, which Node cannot read); nothing was sent.
    #[error("cannot serialize the message")]
    Serialize(#[from] SerializeError),
    /// Arguments or a result did not convert to or from the Rust types asked for.
    #[error("cannot convert a value")]
    Convert(#[from] SerdeError),
    /// The version range given for an application is not a valid node-semver range; nothing
    /// was sent (Node: "Invalid semver version range").
    #[error("invalid semver version range `{range}`")]
    InvalidRange {
        /// The range given.
        range: String,
    },
    /// An application name or version is invalid (for example `calc@1.x` for an
    /// [`Application`](crate::Application), which needs an exact version).
    #[error("invalid application `{0}`")]
    InvalidApplication(String),
    /// Two applications with the same name and version were given to a server.
    #[error("application {name}@{version} is registered twice")]
    DuplicateApplication {
        /// The name.
        name: String,
        /// The version.
        version: String,
    },
    /// The peer broke the protocol (a message that does not parse, a non-handshake message
    /// before the handshake, a second handshake); the connection was closed.
    #[error("protocol violation: {0}")]
    Protocol(String),
    /// The handshake did not finish in time; the connection was closed.
    #[error("the handshake did not finish within {0:?}")]
    HandshakeTimeout(std::time::Duration),
    /// The connection is closed: the request was not sent.
    #[error("the connection is closed")]
    Closed,
    /// An option is invalid.
    #[error("invalid option: {0}")]
    InvalidOption(String),
}

impl Error {
    /// The remote error, if this is one.
    #[must_use]
    pub fn remote(&self) -> Option<&RemoteError> {
        match self {
            Self::Remote(e) => Some(e),
            _ => None,
        }
    }

    /// Whether a new connection attempt may succeed where this one failed: transport errors
    /// that are retryable, lost callbacks and handshake replies, timeouts and closed
    /// connections. Refused handshakes (10, 11), bad options and bad ranges are fatal.
    #[must_use]
    pub fn is_retryable(&self) -> bool {
        match self {
            Self::Transport(e) => e.is_retryable(),
            Self::Remote(e) => matches!(e.code(), ERR_CALLBACK_LOST | ERR_NO_HANDSHAKE_RESPONSE),
            Self::HandshakeTimeout(_) | Self::Closed | Self::Protocol(_) => true,
            _ => false,
        }
    }
}

/// A bad endpoint URL, as a transport error of kind `InvalidEndpoint`.
impl From<connkit_core::EndpointError> for Error {
    fn from(e: connkit_core::EndpointError) -> Self {
        Self::Transport(e.into())
    }
}

impl From<RemoteError> for Error {
    fn from(e: RemoteError) -> Self {
        Self::Remote(e)
    }
}

/// A `Result` with [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn predefined_codes_drop_their_message_on_the_wire() {
        let e = RemoteError::new(ERR_AUTH_FAILED).message("bad password");
        assert_eq!(e.to_value().to_string(), "[11]");
        assert_eq!(e.text_message(), "bad password");
        assert_eq!(RemoteError::new(16).to_value().to_string(), "[16]");
        assert_eq!(RemoteError::new(16).text_message(), "Internal API error");
    }

    #[test]
    fn custom_codes_send_message_and_info() {
        let e = RemoteError::new(100)
            .message("Division by zero")
            .info(vec!["a".into(), 1.into()]);
        assert_eq!(e.to_value().to_string(), "[100,'Division by zero','a',1]");
        // Info without a message is not sent (Node: the message is the code's text).
        let e = RemoteError::new(100).info(vec![1.into()]);
        assert_eq!(e.to_value().to_string(), "[100]");
        assert_eq!(e.text_message(), "100");
        assert_eq!(
            RemoteError::text("nope").to_value().to_string(),
            "[1,'nope']"
        );
        assert_eq!(RemoteError::from("nope").code(), 1);
        assert_eq!(RemoteError::from(14).to_value().to_string(), "[14]");
    }

    #[test]
    fn received_errors_get_default_messages() {
        let e = RemoteError::from_value(&crate::value::parse(b"[12]").unwrap());
        assert_eq!(e.code(), 12);
        assert_eq!(e.text_message(), "Interface not found");
        assert_eq!(e.get_info(), None);
        let e = RemoteError::from_value(&crate::value::parse(b"[100,'x','a',1]").unwrap());
        assert_eq!(e.text_message(), "x");
        assert_eq!(e.get_info(), Some(&["a".into(), 1.into()][..]));
        let e = RemoteError::from_value(&crate::value::parse(b"[777]").unwrap());
        assert_eq!(e.text_message(), "777");
        assert_eq!(
            RemoteError::from_value(&Value::from("boom")),
            RemoteError::text("boom")
        );
        assert_eq!(RemoteError::from_value(&Value::from(14)).code(), 14);
    }

    #[test]
    fn every_predefined_code_has_its_node_message() {
        let table = [
            (10, "Application not found"),
            (11, "Authentication failed"),
            (12, "Interface not found"),
            (13, "Incompatible interface"),
            (14, "Method not found"),
            (15, "Not a server"),
            (16, "Internal API error"),
            (17, "Invalid signature"),
            (-1, "Connection closed before receiving callback"),
            (-2, "Connection closed before receiving handshake"),
        ];
        for (code, text) in table {
            assert_eq!(default_message(code), Some(text));
            assert_eq!(RemoteError::new(code).to_value(), Value::from(vec![code]));
        }
        assert_eq!(default_message(1), None);
    }
}
