//! Connect policies (spec §9, Node's `client.connectPolicy`): what a client presents in each
//! handshake, the first one and every one the reconnector makes.
//!
//! A [`ConnectPolicy`] gets a [`ConnectRequest`] (the application, the endpoint, the attempt
//! and, when there is one, the session to resume) and answers the [`Credentials`]. The
//! built-ins behave as Node's `SimpleConnectPolicy`: they resume the session when there is
//! one, and otherwise present their own credentials ([`Anonymous`], [`Login`],
//! [`CustomStrategy`]). A policy that answers anything but [`Credentials::Session`] to a
//! request with a session starts a new session (see
//! [`ConnectionEvent::SessionReplaced`](crate::ConnectionEvent::SessionReplaced)).
//!
//! ```
//! use connkit_jstp::policy::{ConnectPolicy, ConnectRequest, Credentials};
//! use connkit_jstp::ClientOptions;
//!
//! /// A fresh token on every handshake, and no resume.
//! #[derive(Debug)]
//! struct Token;
//!
//! impl ConnectPolicy for Token {
//!     fn credentials(&self, request: &ConnectRequest<'_>) -> Credentials {
//!         Credentials::strategy("token", vec![format!("t{}", request.attempt)].into())
//!     }
//! }
//!
//! let opts = ClientOptions::new().connect_policy(Token);
//! ```

use crate::client::AppTarget;
use crate::value::Value;
use connkit_core::Endpoint;
use std::fmt;

/// What a handshake presents.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum Credentials {
    /// No strategy key at all: `{handshake:[0,'app']}`.
    Anonymous,
    /// `{handshake:[0,'app'],login:['user','password']}`.
    Login {
        /// The user name.
        user: String,
        /// The password.
        password: String,
    },
    /// `{handshake:[0,'app'],<name>:<credentials>}`, decided by the server's auth policy.
    Strategy {
        /// The strategy name (the key).
        name: String,
        /// Its value.
        credentials: Value,
    },
    /// Resume a session: `{handshake:[0,'app'],session:['<id>',<received>]}` (spec §6.2).
    Session {
        /// The session id.
        id: String,
        /// `receivedCount`: |id| of the last call, event, inspect or ping received.
        received: u64,
    },
}

impl Credentials {
    /// [`Credentials::Login`].
    #[must_use]
    pub fn login(user: impl Into<String>, password: impl Into<String>) -> Self {
        Self::Login {
            user: user.into(),
            password: password.into(),
        }
    }

    /// [`Credentials::Strategy`].
    #[must_use]
    pub fn strategy(name: impl Into<String>, credentials: Value) -> Self {
        Self::Strategy {
            name: name.into(),
            credentials,
        }
    }

    /// The strategy key and value of the handshake (`None`: anonymous).
    pub(crate) fn to_strategy(&self) -> Option<(String, Value)> {
        match self {
            Self::Anonymous => None,
            Self::Login { user, password } => Some((
                "login".to_owned(),
                Value::from(vec![
                    Value::from(user.as_str()),
                    Value::from(password.as_str()),
                ]),
            )),
            Self::Strategy { name, credentials } => Some((name.clone(), credentials.clone())),
            Self::Session { id, received } => Some((
                "session".to_owned(),
                Value::Array(vec![
                    Value::from(id.as_str()),
                    Value::from(*received as f64),
                ]),
            )),
        }
    }
}

/// The session a reconnect would resume.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct SessionRef<'a> {
    /// The session id.
    pub id: &'a str,
    /// Our `receivedCount`.
    pub received: u64,
}

impl SessionRef<'_> {
    /// The credentials that resume this session.
    #[must_use]
    pub fn resume(&self) -> Credentials {
        Credentials::Session {
            id: self.id.to_owned(),
            received: self.received,
        }
    }
}

/// One handshake about to be made.
#[derive(Debug, Clone, Copy)]
#[non_exhaustive]
pub struct ConnectRequest<'a> {
    /// The application asked for.
    pub app: &'a AppTarget,
    /// Where.
    pub endpoint: &'a Endpoint,
    /// 0 for the first connect, then the reconnector's attempt number (from 1).
    pub attempt: u32,
    /// The session to resume, if any (`None` on a first connect and after the server said
    /// the session is unknown).
    pub session: Option<SessionRef<'a>>,
}

/// Decides the credentials of each handshake of a client (spec §9). Set with
/// [`ClientOptions::connect_policy`](crate::ClientOptions::connect_policy); the default is
/// [`Anonymous`].
pub trait ConnectPolicy: Send + Sync + fmt::Debug + 'static {
    /// The credentials for `request`. Return [`SessionRef::resume`] of `request.session` to
    /// resume it; anything else starts a new session.
    fn credentials(&self, request: &ConnectRequest<'_>) -> Credentials;
}

impl<P: ConnectPolicy + ?Sized> ConnectPolicy for std::sync::Arc<P> {
    fn credentials(&self, request: &ConnectRequest<'_>) -> Credentials {
        (**self).credentials(request)
    }
}

/// Anonymous handshakes; resumes the session when there is one.
#[derive(Debug, Clone, Copy, Default)]
pub struct Anonymous;

impl ConnectPolicy for Anonymous {
    fn credentials(&self, request: &ConnectRequest<'_>) -> Credentials {
        request
            .session
            .map_or(Credentials::Anonymous, |s| s.resume())
    }
}

/// The `login` strategy; resumes the session when there is one.
#[derive(Clone)]
pub struct Login {
    user: String,
    password: String,
}

impl fmt::Debug for Login {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Login")
            .field("user", &self.user)
            .finish_non_exhaustive()
    }
}

impl Login {
    /// Log in as `user` with `password`.
    #[must_use]
    pub fn new(user: impl Into<String>, password: impl Into<String>) -> Self {
        Self {
            user: user.into(),
            password: password.into(),
        }
    }
}

impl ConnectPolicy for Login {
    fn credentials(&self, request: &ConnectRequest<'_>) -> Credentials {
        request.session.map_or_else(
            || Credentials::login(self.user.clone(), self.password.clone()),
            |s| s.resume(),
        )
    }
}

/// A custom strategy (`{handshake:[0,'app'],<name>:<credentials>}`); resumes the session
/// when there is one.
#[derive(Debug, Clone)]
pub struct CustomStrategy {
    name: String,
    credentials: Value,
}

impl CustomStrategy {
    /// The strategy `name` with `credentials`.
    #[must_use]
    pub fn new(name: impl Into<String>, credentials: Value) -> Self {
        Self {
            name: name.into(),
            credentials,
        }
    }
}

impl ConnectPolicy for CustomStrategy {
    fn credentials(&self, request: &ConnectRequest<'_>) -> Credentials {
        request.session.map_or_else(
            || Credentials::strategy(self.name.clone(), self.credentials.clone()),
            |s| s.resume(),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn built_ins_resume_when_there_is_a_session_and_present_theirs_otherwise() {
        let app = AppTarget::from("calc@^1.0.0");
        let endpoint: Endpoint = "tcp://127.0.0.1:1".parse().unwrap();
        let first = ConnectRequest {
            app: &app,
            endpoint: &endpoint,
            attempt: 0,
            session: None,
        };
        let again = ConnectRequest {
            attempt: 3,
            session: Some(SessionRef {
                id: "s",
                received: 7,
            }),
            ..first
        };
        let resume = Credentials::Session {
            id: "s".into(),
            received: 7,
        };
        assert_eq!(Anonymous.credentials(&first), Credentials::Anonymous);
        assert_eq!(Anonymous.credentials(&again), resume);
        let login = Login::new("user", "secret");
        assert_eq!(
            login.credentials(&first),
            Credentials::login("user", "secret")
        );
        assert_eq!(login.credentials(&again), resume);
        assert!(!format!("{login:?}").contains("secret"));
        let token = CustomStrategy::new("token", Value::from(vec!["abc"]));
        assert_eq!(
            token.credentials(&first).to_strategy(),
            Some(("token".into(), Value::from(vec!["abc"])))
        );
        assert_eq!(token.credentials(&again), resume);
        assert_eq!(
            resume.to_strategy(),
            Some((
                "session".into(),
                Value::Array(vec![Value::from("s"), Value::from(7.0)])
            ))
        );
    }
}
