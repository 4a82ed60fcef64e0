//! Applications (spec §8): a name, a version, interfaces of methods, and event handlers; and
//! [`Applications`], the index a server chooses versions from.

use crate::connection::{Context, FastHash};
use crate::error::{Error, RemoteError, Result};
use crate::message::OkList;
use crate::semver_range::{self, Range};
use crate::value::{Value, from_value, to_value};
use futures_util::FutureExt;
use serde::Serialize;
use serde::de::DeserializeOwned;
use std::any::TypeId;
use std::collections::HashMap;
use std::fmt;
use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::pin::Pin;
use std::sync::Arc;

/// What a method's future resolves to: the `ok` list, or the error sent back.
pub(crate) type MethodFuture =
    Pin<Box<dyn Future<Output = std::result::Result<OkList, RemoteError>> + Send>>;
type MethodFn = Arc<dyn Fn(Context, Vec<Value>) -> MethodFuture + Send + Sync>;
pub(crate) type EventFuture = Pin<Box<dyn Future<Output = ()> + Send>>;
type EventFn = Arc<dyn Fn(Context, Vec<Value>) -> EventFuture + Send + Sync>;

/// Arguments for a typed method or event handler: the argument list as an array (so a tuple
/// `(A, B)` takes exactly two arguments). A method of no arguments takes `()`.
fn decode_args<A: DeserializeOwned>(args: Vec<Value>) -> std::result::Result<A, RemoteError> {
    let empty = args.is_empty();
    match from_value::<A>(Value::Array(args)) {
        Ok(a) => Ok(a),
        // `()` reads from `null`, not from `[]`.
        Err(_) if empty => {
            from_value::<A>(Value::Null).map_err(|_| RemoteError::invalid_signature())
        }
        Err(_) => Err(RemoteError::invalid_signature()),
    }
}

/// A typed method's result as the `ok` list: `()` gives `ok:[]` (what Node sends for an
/// async method that returns nothing), anything else one element.
fn encode_result<R: Serialize + 'static>(r: &R) -> std::result::Result<OkList, RemoteError> {
    if TypeId::of::<R>() == TypeId::of::<()>() {
        return Ok(OkList::EMPTY);
    }
    to_value(r)
        .map(OkList::One)
        .map_err(|_| RemoteError::internal())
}

/// The message of a caught panic.
pub(crate) fn panic_message(payload: &(dyn std::any::Any + Send)) -> String {
    if let Some(s) = payload.downcast_ref::<&str>() {
        (*s).to_owned()
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s.clone()
    } else {
        "a panic with a non-string payload".to_owned()
    }
}

/// The methods of one interface, in the order they were added (the order an `inspect`
/// reply lists them in).
///
/// Methods are async closures that get a [`Context`] (the connection that called) and the
/// arguments, and return values or a [`RemoteError`]:
///
/// ```
/// use connkit_jstp::{Interface, RemoteError, Value};
///
/// let calculator = Interface::new()
///     .method("answer", |_ctx, (): ()| async { Ok(42) })
///     .method("add", |_ctx, (a, b): (f64, f64)| async move { Ok(a + b) })
///     .method("divide", |_ctx, (a, b): (f64, f64)| async move {
///         if b == 0.0 {
///             return Err(RemoteError::new(100).message("Division by zero"));
///         }
///         Ok(a / b)
///     })
///     // Untyped: any number of arguments, any number of results (`ok:[1,'two']`).
///     .raw_method("pair", |_ctx, args: Vec<Value>| async move { Ok(args) });
/// assert_eq!(calculator.method_names().collect::<Vec<_>>(), ["answer", "add", "divide", "pair"]);
/// ```
///
/// **Arity.** Node rejects a call whose argument count differs from the function's declared
/// parameter count with error 17 (spec §4.3). A typed method takes its arguments as one
/// `serde` value read from the argument array, so a tuple `(A, B)` accepts exactly two
/// arguments, `()` none, `Vec<T>` any number; a wrong count, or an argument of the wrong
/// type, is answered with 17 (Invalid signature) and the method is not run. Holes count:
/// `[1,,3]` is three arguments, the second `undefined` (which reads as `None` for an
/// `Option`). Untyped methods ([`raw_method`](Self::raw_method)) get the array as it came
/// and check it themselves.
///
/// **Failures.** A method that returns `Err(e)` sends `e`; one that panics (or whose result
/// cannot be encoded, e.g. NaN) sends 16 (Internal API error). Nothing else is affected: the
/// connection stays up, and the panic is reported as a server event.
#[derive(Clone, Default)]
pub struct Interface {
    methods: Vec<(String, MethodFn)>,
    index: HashMap<String, usize, FastHash>,
}

impl fmt::Debug for Interface {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Interface")
            .field("methods", &self.method_names().collect::<Vec<_>>())
            .finish()
    }
}

impl Interface {
    /// An interface with no methods.
    #[must_use]
    pub fn new() -> Self {
        Self::default()
    }

    fn insert(mut self, name: String, f: MethodFn) -> Self {
        match self.index.get(&name) {
            Some(&i) => self.methods[i].1 = f,
            None => {
                self.index.insert(name.clone(), self.methods.len());
                self.methods.push((name, f));
            }
        }
        self
    }

    /// Add (or replace) a typed method: its arguments are read from the argument array into
    /// `A` with `serde` (a tuple for fixed arguments), and its result is sent as `ok:[r]`
    /// (`ok:[]` for `()`).
    #[must_use]
    pub fn method<A, R, F, Fut>(self, name: impl Into<String>, f: F) -> Self
    where
        A: DeserializeOwned + Send + 'static,
        R: Serialize + Send + 'static,
        F: Fn(Context, A) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = std::result::Result<R, RemoteError>> + Send + 'static,
    {
        let f: MethodFn = Arc::new(move |ctx: Context, args: Vec<Value>| -> MethodFuture {
            match decode_args::<A>(args) {
                Err(e) => Box::pin(std::future::ready(Err(e))),
                Ok(a) => {
                    let fut = f(ctx, a);
                    Box::pin(async move { encode_result(&fut.await?) })
                }
            }
        });
        self.insert(name.into(), f)
    }

    /// Add (or replace) an untyped method: it gets the argument array as it came and returns
    /// the whole `ok` list (`Ok(vec![])` sends `ok:[]`, `Ok(vec![a, b])` sends `ok:[a,b]`,
    /// as a Node method calling `callback(null, a, b)`).
    #[must_use]
    pub fn raw_method<F, Fut>(self, name: impl Into<String>, f: F) -> Self
    where
        F: Fn(Context, Vec<Value>) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = std::result::Result<Vec<Value>, RemoteError>> + Send + 'static,
    {
        let f: MethodFn = Arc::new(move |ctx: Context, args: Vec<Value>| -> MethodFuture {
            let fut = f(ctx, args);
            Box::pin(async move { fut.await.map(OkList::Many) })
        });
        self.insert(name.into(), f)
    }

    /// The method names, in order.
    pub fn method_names(&self) -> impl ExactSizeIterator<Item = &str> + '_ {
        self.methods.iter().map(|(n, _)| n.as_str())
    }

    fn get(&self, name: &str) -> Option<&MethodFn> {
        self.index.get(name).map(|&i| &self.methods[i].1)
    }
}

/// How a call is answered: at once (lookup failures, bad arguments) or by a method's future.
pub(crate) enum Dispatch {
    Now(std::result::Result<OkList, RemoteError>),
    Later(MethodFuture),
    /// The method panicked before returning its future: answer 16, report the message.
    Panicked(String),
}

/// A JSTP application: a name, a [`semver::Version`], [`Interface`]s, and event handlers.
///
/// Servers serve one or more applications (several versions of one name are chosen between by
/// the client's range); a client has one too, for the methods the server may call on it and
/// for handling events (the default is an empty `jstp` 1.0.0, as in Node).
///
/// ```
/// use connkit_jstp::{Application, Interface};
///
/// let app = Application::new("calc", semver::Version::new(1, 0, 0))
///     .interface("calculator", Interface::new().method("answer", |_ctx, (): ()| async { Ok(42) }))
///     .on_event("calculator", "hello", |ctx, (who,): (String,)| async move {
///         let _ = ctx.emit("calculator", "helloBack", vec![who.into()]).await;
///     });
/// assert_eq!(app.to_string(), "calc@1.0.0");
/// let parsed = Application::parse("calc@2.1.0")?;
/// assert_eq!(parsed.version(), &semver::Version::new(2, 1, 0));
/// # Ok::<(), connkit_jstp::Error>(())
/// ```
#[derive(Clone)]
pub struct Application {
    name: String,
    version: semver::Version,
    interfaces: HashMap<String, Interface, FastHash>,
    events: HashMap<String, HashMap<String, EventFn>>,
}

impl fmt::Debug for Application {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Application")
            .field("name", &self.name)
            .field("version", &self.version.to_string())
            .field("interfaces", &self.interfaces)
            .finish_non_exhaustive()
    }
}

impl fmt::Display for Application {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}@{}", self.name, self.version)
    }
}

impl Application {
    /// An application with no interfaces.
    #[must_use]
    pub fn new(name: impl Into<String>, version: semver::Version) -> Self {
        Self {
            name: name.into(),
            version,
            interfaces: HashMap::default(),
            events: HashMap::new(),
        }
    }

    /// `'name@1.2.3'` or `'name'` (version 1.0.0; also `'name@'`), split at the last `@` as
    /// Node does.
    ///
    /// # Errors
    /// [`Error::InvalidApplication`] when the version is not an exact semver version.
    pub fn parse(spec: &str) -> Result<Self> {
        match spec.rsplit_once('@') {
            None => Ok(Self::new(spec, semver::Version::new(1, 0, 0))),
            Some((name, "")) => Ok(Self::new(name, semver::Version::new(1, 0, 0))),
            Some((name, version)) => {
                if !semver_range::is_exact(version) {
                    return Err(Error::InvalidApplication(spec.to_owned()));
                }
                let version = semver::Version::parse(version.strip_prefix('v').unwrap_or(version))
                    .map_err(|_| Error::InvalidApplication(spec.to_owned()))?;
                Ok(Self::new(name, version))
            }
        }
    }

    /// The default client application: `jstp` 1.0.0 with no interfaces.
    #[must_use]
    pub fn empty_client() -> Self {
        Self::new("jstp", semver::Version::new(1, 0, 0))
    }

    /// Add (or replace) an interface.
    #[must_use]
    pub fn interface(mut self, name: impl Into<String>, interface: Interface) -> Self {
        self.interfaces.insert(name.into(), interface);
        self
    }

    /// Handle the remote event `event` of `interface` with a typed handler: the argument
    /// array is read into `A` (events whose arguments do not fit are dropped). Handlers run
    /// concurrently on the connection's task; a panic is caught and reported.
    #[must_use]
    pub fn on_event<A, F, Fut>(
        self,
        interface: impl Into<String>,
        event: impl Into<String>,
        f: F,
    ) -> Self
    where
        A: DeserializeOwned + Send + 'static,
        F: Fn(Context, A) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = ()> + Send + 'static,
    {
        let f: EventFn = Arc::new(move |ctx: Context, args: Vec<Value>| -> EventFuture {
            match decode_args::<A>(args) {
                Ok(a) => Box::pin(f(ctx, a)),
                Err(_) => Box::pin(std::future::ready(())),
            }
        });
        self.insert_event(interface.into(), event.into(), f)
    }

    /// Handle the remote event `event` of `interface` with the argument array as it came.
    #[must_use]
    pub fn on_raw_event<F, Fut>(
        self,
        interface: impl Into<String>,
        event: impl Into<String>,
        f: F,
    ) -> Self
    where
        F: Fn(Context, Vec<Value>) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = ()> + Send + 'static,
    {
        let f: EventFn = Arc::new(move |ctx: Context, args: Vec<Value>| -> EventFuture {
            Box::pin(f(ctx, args))
        });
        self.insert_event(interface.into(), event.into(), f)
    }

    fn insert_event(mut self, interface: String, event: String, f: EventFn) -> Self {
        self.events.entry(interface).or_default().insert(event, f);
        self
    }

    /// The name.
    #[must_use]
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The version.
    #[must_use]
    pub fn version(&self) -> &semver::Version {
        &self.version
    }

    /// The interface names (in no particular order).
    pub fn interface_names(&self) -> impl Iterator<Item = &str> + '_ {
        self.interfaces.keys().map(String::as_str)
    }

    /// The method names of `interface`, in order (what `inspect` answers), or `None` when
    /// there is no such interface.
    #[must_use]
    pub fn methods(&self, interface: &str) -> Option<Vec<&str>> {
        self.interfaces
            .get(interface)
            .map(|i| i.method_names().collect())
    }

    /// Whether an event handler is registered for `interface.event`.
    pub(crate) fn has_event_handler(&self, interface: &str, event: &str) -> bool {
        self.events
            .get(interface)
            .is_some_and(|e| e.contains_key(event))
    }

    /// Route a call by spec §4.3: falsy arguments → 17, unknown interface → 12, unknown
    /// method → 14, arguments not an array → 17, then the method.
    pub(crate) fn dispatch(
        &self,
        ctx: Context,
        interface: &str,
        method: &str,
        args: Value,
    ) -> Dispatch {
        if !args.is_truthy() {
            return Dispatch::Now(Err(RemoteError::invalid_signature()));
        }
        let Some(iface) = self.interfaces.get(interface) else {
            return Dispatch::Now(Err(RemoteError::new(crate::error::ERR_INTERFACE_NOT_FOUND)));
        };
        let Some(f) = iface.get(method) else {
            return Dispatch::Now(Err(RemoteError::new(crate::error::ERR_METHOD_NOT_FOUND)));
        };
        let Value::Array(args) = args else {
            return Dispatch::Now(Err(RemoteError::invalid_signature()));
        };
        match std::panic::catch_unwind(AssertUnwindSafe(|| f(ctx, args))) {
            Ok(fut) => Dispatch::Later(fut),
            Err(payload) => Dispatch::Panicked(panic_message(&*payload)),
        }
    }

    /// The handler future for an event, if there is a handler; `Err(message)` when the
    /// handler panicked before returning its future.
    pub(crate) fn event_handler(
        &self,
        ctx: Context,
        interface: &str,
        event: &str,
        args: Vec<Value>,
    ) -> std::result::Result<Option<EventFuture>, String> {
        let Some(f) = self.events.get(interface).and_then(|e| e.get(event)) else {
            return Ok(None);
        };
        std::panic::catch_unwind(AssertUnwindSafe(|| f(ctx, args)))
            .map(Some)
            .map_err(|payload| panic_message(&*payload))
    }
}

/// Run a method future, turning a panic into `Err(message)`.
pub(crate) async fn run_caught<F: Future>(fut: F) -> std::result::Result<F::Output, String> {
    AssertUnwindSafe(fut)
        .catch_unwind()
        .await
        .map_err(|payload| panic_message(&*payload))
}

/// The applications a server offers, by name and version (Node's `createAppsIndex`), and the
/// version choice of spec §8.
///
/// ```
/// use connkit_jstp::{Application, Applications};
/// use semver::Version;
///
/// let mut apps = Applications::new();
/// apps.add(Application::new("testApp", Version::new(1, 0, 0)))?;
/// apps.add(Application::new("testApp", Version::new(2, 0, 0)))?;
/// let pick = |v: Option<&str>| apps.select("testApp", v).map(|a| a.version().to_string());
/// assert_eq!(pick(None).as_deref(), Some("2.0.0"));        // latest
/// assert_eq!(pick(Some("1")).as_deref(), Some("1.0.0"));   // highest match of a range
/// assert_eq!(pick(Some("^2.0.0")).as_deref(), Some("2.0.0"));
/// assert_eq!(pick(Some("1.0.0")).as_deref(), Some("1.0.0")); // exact
/// assert_eq!(pick(Some("v1.0.0")), None);                  // exact, but not a key
/// assert_eq!(pick(Some("^3.0.0")), None);
/// assert_eq!(pick(Some("not a range")), None);
/// # Ok::<(), connkit_jstp::Error>(())
/// ```
#[derive(Debug, Clone, Default)]
pub struct Applications {
    /// Each name's versions, newest first.
    by_name: HashMap<String, Vec<Arc<Application>>>,
}

impl Applications {
    /// No applications.
    #[must_use]
    pub fn new() -> Self {
        Self::default()
    }

    /// Add an application.
    ///
    /// # Errors
    /// [`Error::DuplicateApplication`] when the same name and version is already there.
    pub fn add(&mut self, app: Application) -> Result<()> {
        self.add_shared(Arc::new(app))
    }

    /// Add an application already in an `Arc`.
    ///
    /// # Errors
    /// As [`add`](Self::add).
    pub fn add_shared(&mut self, app: Arc<Application>) -> Result<()> {
        let versions = self.by_name.entry(app.name.clone()).or_default();
        if versions
            .iter()
            .any(|a| a.version.to_string() == app.version.to_string())
        {
            return Err(Error::DuplicateApplication {
                name: app.name.clone(),
                version: app.version.to_string(),
            });
        }
        versions.push(app);
        versions.sort_by(|a, b| b.version.cmp_precedence(&a.version));
        Ok(())
    }

    /// Whether there are no applications.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.by_name.is_empty()
    }

    /// Every application, in no particular order.
    pub fn iter(&self) -> impl Iterator<Item = &Arc<Application>> + '_ {
        self.by_name.values().flatten()
    }

    /// The application a handshake for `name` and `version` gets (spec §8):
    /// no version → the latest; an exact version (`semver.valid`) → that exact key only;
    /// otherwise the highest version satisfying the node-semver range (pre-releases only
    /// when the range names them). `None` (error 10) when nothing fits or the range is
    /// invalid.
    #[must_use]
    pub fn select(&self, name: &str, version: Option<&str>) -> Option<Arc<Application>> {
        let versions = self.by_name.get(name)?;
        let Some(version) = version.filter(|v| !v.is_empty()) else {
            return versions.first().cloned();
        };
        if semver_range::is_exact(version) {
            return versions
                .iter()
                .find(|a| a.version.to_string() == version)
                .cloned();
        }
        let range = Range::parse(version).ok()?;
        versions.iter().find(|a| range.matches(&a.version)).cloned()
    }
}

impl FromIterator<Application> for Applications {
    /// Later duplicates are dropped; use [`Applications::add`] to see them as errors.
    fn from_iter<I: IntoIterator<Item = Application>>(iter: I) -> Self {
        let mut apps = Self::new();
        for app in iter {
            let _ = apps.add(app);
        }
        apps
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use semver::Version;

    #[test]
    fn duplicates_are_refused() {
        let mut apps = Applications::new();
        apps.add(Application::new("a", Version::new(1, 0, 0)))
            .unwrap();
        let e = apps
            .add(Application::new("a", Version::new(1, 0, 0)))
            .unwrap_err();
        assert!(matches!(e, Error::DuplicateApplication { .. }));
    }

    #[test]
    fn selection_prefers_the_highest_match_and_skips_prereleases() {
        let apps: Applications = ["1.0.0", "1.5.0", "2.0.0", "2.1.0-beta.1"]
            .iter()
            .map(|v| Application::new("x", Version::parse(v).unwrap()))
            .collect();
        let pick = |v: Option<&str>| apps.select("x", v).map(|a| a.version().to_string());
        assert_eq!(pick(None).as_deref(), Some("2.1.0-beta.1")); // latest = highest semver
        assert_eq!(pick(Some("1")).as_deref(), Some("1.5.0"));
        assert_eq!(pick(Some("~1.0")).as_deref(), Some("1.0.0"));
        assert_eq!(pick(Some("*")).as_deref(), Some("2.0.0"));
        assert_eq!(
            pick(Some(">=2.1.0-beta.0")).as_deref(),
            Some("2.1.0-beta.1")
        );
        assert_eq!(pick(Some("1.0.0 || 2.0.0")).as_deref(), Some("2.0.0"));
        assert_eq!(pick(Some("2.1.0-beta.1")).as_deref(), Some("2.1.0-beta.1"));
        assert_eq!(pick(Some("1.2.3.4")), None);
        assert_eq!(
            apps.select("y", None).map(|a| a.version().to_string()),
            None
        );
    }

    #[test]
    fn application_names_split_at_the_last_at() {
        let a = Application::parse("@scope/app@1.2.3").unwrap();
        assert_eq!(
            (a.name(), a.version().to_string().as_str()),
            ("@scope/app", "1.2.3")
        );
        let a = Application::parse("plain").unwrap();
        assert_eq!(a.version(), &Version::new(1, 0, 0));
        assert!(Application::parse("x@1.x").is_err());
        assert_eq!(Application::parse("x@").unwrap().to_string(), "x@1.0.0");
    }

    #[test]
    fn typed_arguments_enforce_arity() {
        assert_eq!(
            decode_args::<(f64, f64)>(vec![1.into(), 2.into()]).unwrap(),
            (1.0, 2.0)
        );
        assert!(decode_args::<(f64, f64)>(vec![1.into()]).is_err());
        assert!(decode_args::<(f64, f64)>(vec![1.into(), 2.into(), 3.into()]).is_err());
        assert!(decode_args::<(f64, f64)>(vec!["1".into(), 2.into()]).is_err());
        decode_args::<()>(vec![]).unwrap();
        assert!(decode_args::<()>(vec![Value::Null]).is_err());
        assert_eq!(
            decode_args::<(Option<f64>,)>(vec![Value::Undefined]).unwrap(),
            (None,)
        );
        assert_eq!(decode_args::<Vec<f64>>(vec![]).unwrap(), Vec::<f64>::new());
        assert_eq!(encode_result(&()).unwrap().into_vec(), Vec::<Value>::new());
        assert_eq!(encode_result(&5).unwrap().into_vec(), vec![Value::from(5)]);
        assert_eq!(
            encode_result(&Option::<u8>::None).unwrap().as_slice(),
            [Value::Null]
        );
    }
}
