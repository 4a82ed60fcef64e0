//! One dev backend: a local process walked through Plane's statuses.

use crate::time::Timestamp;
use crate::types::{BackendState, BackendStatus, TerminationKind, TerminationReason};
use std::collections::BTreeMap;
use std::process::{ExitStatus, Stdio};
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;
use tokio::process::{Child, Command};
use tokio::sync::{Notify, watch};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};

/// How a backend is asked to stop.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum StopRequest {
    Soft,
    Hard,
}

/// What the lifecycle needs to know, fixed at spawn.
#[derive(Debug, Clone)]
pub(crate) struct Spec {
    pub(crate) command: Vec<String>,
    pub(crate) env: BTreeMap<String, String>,
    pub(crate) max_idle: Duration,
    pub(crate) lifetime: Option<Duration>,
    pub(crate) startup_timeout: Duration,
    pub(crate) grace: Duration,
    pub(crate) poll: Duration,
}

/// One backend, shared by the routes and its lifecycle task.
#[derive(Debug)]
pub(crate) struct Backend {
    pub(crate) id: String,
    pub(crate) key: Option<String>,
    pub(crate) port: u16,
    /// Every state so far, in order (times as epoch milliseconds).
    pub(crate) history: watch::Sender<Vec<BackendState>>,
    last_activity: Mutex<Instant>,
    streams: AtomicUsize,
    stop: Mutex<Option<StopRequest>>,
    stop_notify: Notify,
}

impl Backend {
    pub(crate) fn new(id: String, key: Option<String>, port: u16) -> Self {
        Self {
            id,
            key,
            port,
            history: watch::Sender::new(Vec::new()),
            last_activity: Mutex::new(Instant::now()),
            streams: AtomicUsize::new(0),
            stop: Mutex::new(None),
            stop_notify: Notify::new(),
        }
    }

    pub(crate) fn current(&self) -> Option<BackendState> {
        self.history.borrow().last().cloned()
    }

    pub(crate) fn status(&self) -> Option<BackendStatus> {
        self.history.borrow().last().map(|s| s.status.clone())
    }

    pub(crate) fn is_terminated(&self) -> bool {
        self.status().is_some_and(|s| s.is_terminated())
    }

    /// Record `scheduled` (done by the connect route, before it answers).
    pub(crate) fn schedule(&self) {
        self.push(state(BackendStatus::Scheduled));
    }

    fn push(&self, state: BackendState) {
        info!(backend = %self.id, status = %state.status, "backend status");
        self.history.send_modify(|h| h.push(state));
    }

    /// Something used the backend (a connect).
    pub(crate) fn touch(&self) {
        *lock(&self.last_activity) = Instant::now();
    }

    /// A status stream opened; the backend counts as active while it stays open.
    pub(crate) fn stream_guard(self: &std::sync::Arc<Self>) -> StreamGuard {
        self.streams.fetch_add(1, Ordering::Relaxed);
        self.touch();
        StreamGuard(std::sync::Arc::clone(self))
    }

    fn idle_for(&self) -> Duration {
        if self.streams.load(Ordering::Relaxed) > 0 {
            return Duration::ZERO;
        }
        lock(&self.last_activity).elapsed()
    }

    /// Ask the lifecycle to stop the backend (a hard request upgrades a soft one).
    pub(crate) fn request_stop(&self, how: StopRequest) {
        let mut stop = lock(&self.stop);
        if *stop != Some(StopRequest::Hard) {
            *stop = Some(how);
        }
        drop(stop);
        self.stop_notify.notify_one();
    }

    fn take_stop(&self) -> Option<StopRequest> {
        lock(&self.stop).take()
    }
}

/// Decrements the open-stream count when a status stream ends.
#[derive(Debug)]
pub(crate) struct StreamGuard(std::sync::Arc<Backend>);

impl Drop for StreamGuard {
    fn drop(&mut self) {
        self.0.streams.fetch_sub(1, Ordering::Relaxed);
        self.0.touch();
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

fn state(status: BackendStatus) -> BackendState {
    BackendState::new(status, Timestamp::now_millis())
}

/// Why the lifecycle is ending the backend.
struct Ending {
    reason: Option<TerminationReason>,
    how: StopRequest,
}

/// Run the backend from `scheduled` to `terminated`.
pub(crate) async fn lifecycle(
    backend: std::sync::Arc<Backend>,
    spec: Spec,
    shutdown: CancellationToken,
) {
    backend.push(state(BackendStatus::Loading));
    let mut child = match spawn(&backend, &spec) {
        Ok(child) => child,
        Err(e) => {
            warn!(backend = %backend.id, error = %e, "cannot start the backend command");
            backend.push(
                state(BackendStatus::Terminated)
                    .with_reason(TerminationReason::InternalError)
                    .with_exit_error(true),
            );
            return;
        }
    };
    backend.push(state(BackendStatus::Starting));
    backend.push(state(BackendStatus::Waiting));
    let started = Instant::now();
    let lifetime_end = spec.lifetime.map(|l| started + l);

    // Waiting: until the port accepts a connection.
    let ending = loop {
        if let Some(how) = backend.take_stop() {
            break Ending {
                reason: Some(TerminationReason::External),
                how,
            };
        }
        if started.elapsed() >= spec.startup_timeout {
            warn!(backend = %backend.id, "the backend did not accept connections in time");
            break Ending {
                reason: Some(TerminationReason::StartupTimeout),
                how: StopRequest::Hard,
            };
        }
        if tokio::net::TcpStream::connect(("127.0.0.1", backend.port))
            .await
            .is_ok()
        {
            backend.push(state(BackendStatus::Ready));
            break run_ready(&backend, &spec, &mut child, &shutdown, lifetime_end).await;
        }
        tokio::select! {
            status = child.wait() => {
                exited(&backend, status.ok(), None, None);
                return;
            }
            () = tokio::time::sleep(spec.poll) => {}
            () = backend.stop_notify.notified() => {}
            () = shutdown.cancelled() => break Ending { reason: Some(TerminationReason::External), how: StopRequest::Hard },
        }
    };
    terminate(&backend, &spec, &mut child, ending).await;
}

/// Ready: until the process exits, a stop is requested, it idles too long or the server
/// shuts down.
async fn run_ready(
    backend: &Backend,
    spec: &Spec,
    child: &mut Child,
    shutdown: &CancellationToken,
    lifetime_end: Option<Instant>,
) -> Ending {
    let tick = (spec.max_idle / 4).clamp(Duration::from_millis(10), Duration::from_secs(1));
    loop {
        if let Some(how) = backend.take_stop() {
            return Ending {
                reason: Some(TerminationReason::External),
                how,
            };
        }
        if backend.idle_for() >= spec.max_idle {
            info!(backend = %backend.id, "idle for too long; sweeping");
            return Ending {
                reason: Some(TerminationReason::Swept),
                how: StopRequest::Soft,
            };
        }
        if lifetime_end.is_some_and(|end| Instant::now() >= end) {
            return Ending {
                reason: Some(TerminationReason::KeyExpired),
                how: StopRequest::Soft,
            };
        }
        tokio::select! {
            status = child.wait() => {
                exited(backend, status.ok(), None, None);
                return Ending { reason: None, how: StopRequest::Soft };
            }
            () = tokio::time::sleep(tick) => {}
            () = backend.stop_notify.notified() => {}
            () = shutdown.cancelled() => return Ending { reason: Some(TerminationReason::External), how: StopRequest::Hard },
        }
    }
}

/// Record `terminated` for a process that exited, with how it was asked to stop.
fn exited(
    backend: &Backend,
    status: Option<ExitStatus>,
    reason: Option<TerminationReason>,
    kind: Option<TerminationKind>,
) {
    if backend.is_terminated() {
        return;
    }
    let exit_error = status.is_some_and(|s| exit_error(&s));
    debug!(backend = %backend.id, ?status, "backend process exited");
    let mut s = state(BackendStatus::Terminated).with_exit_error(exit_error);
    s.termination_reason = reason;
    s.termination_kind = kind;
    backend.push(s);
}

/// Non-zero exit code, or killed by SIGKILL; a process ended by SIGTERM (asked to stop)
/// did not fail.
fn exit_error(status: &ExitStatus) -> bool {
    use std::os::unix::process::ExitStatusExt;
    match status.code() {
        Some(code) => code != 0,
        None => status.signal() != Some(15),
    }
}

async fn terminate(backend: &Backend, spec: &Spec, child: &mut Child, ending: Ending) {
    if backend.is_terminated() {
        return;
    }
    let reason = ending.reason;
    let with = |status: BackendStatus, kind: TerminationKind| {
        let mut s = state(status).with_kind(kind);
        s.termination_reason = reason.clone();
        s
    };
    let mut kind = TerminationKind::Soft;
    if ending.how == StopRequest::Soft {
        backend.push(with(BackendStatus::Terminating, TerminationKind::Soft));
        signal(child, rustix::process::Signal::TERM);
        let soft = tokio::time::timeout(spec.grace, wait_or_hard(backend, child)).await;
        match soft {
            Ok(Some(status)) => {
                exited(backend, Some(status), reason, Some(kind));
                return;
            }
            Ok(None) => info!(backend = %backend.id, "hard terminate requested"),
            Err(_) => info!(backend = %backend.id, "did not stop in time; killing"),
        }
    }
    kind = TerminationKind::Hard;
    backend.push(with(BackendStatus::HardTerminating, TerminationKind::Hard));
    signal(child, rustix::process::Signal::KILL);
    let _ = child.start_kill();
    let status = child.wait().await.ok();
    exited(backend, status, reason, Some(kind));
}

/// Wait for the process to exit (`Some`), or for a hard stop request (`None`).
async fn wait_or_hard(backend: &Backend, child: &mut Child) -> Option<ExitStatus> {
    loop {
        tokio::select! {
            status = child.wait() => return status.ok(),
            () = backend.stop_notify.notified() => {
                if backend.take_stop() == Some(StopRequest::Hard) {
                    return None;
                }
            }
        }
    }
}

/// Signal the backend's whole process group (it leads its own group), so that a shell's
/// children go too.
fn signal(child: &Child, sig: rustix::process::Signal) {
    let pid = child
        .id()
        .and_then(|id| i32::try_from(id).ok())
        .and_then(rustix::process::Pid::from_raw);
    let Some(pid) = pid else { return };
    if let Err(e) = rustix::process::kill_process_group(pid, sig) {
        debug!(error = %e, "signalling the backend's group failed; signalling the process");
        let _ = rustix::process::kill_process(pid, sig);
    }
}

fn spawn(backend: &Backend, spec: &Spec) -> std::io::Result<Child> {
    let (program, args): (&str, Vec<&str>) = match spec.command.as_slice() {
        [] => {
            return Err(std::io::Error::new(
                std::io::ErrorKind::InvalidInput,
                "no backend command is configured",
            ));
        }
        // One word with spaces: a shell command line.
        [line] if line.contains(char::is_whitespace) => ("/bin/sh", vec!["-c", line.as_str()]),
        [program, args @ ..] => (program.as_str(), args.iter().map(String::as_str).collect()),
    };
    let mut cmd = Command::new(program);
    cmd.args(args)
        .envs(&spec.env)
        .env("PORT", backend.port.to_string())
        .env("SESSION_BACKEND_ID", &backend.id)
        .stdin(Stdio::null())
        .stdout(stdout_to_stderr())
        .process_group(0)
        .kill_on_drop(true);
    if let Some(key) = &backend.key {
        cmd.env("SESSION_BACKEND_KEY", key);
    }
    cmd.spawn()
}

/// The backend's stdout goes to our stderr, so that a CLI's stdout stays JSON only.
fn stdout_to_stderr() -> Stdio {
    use std::os::fd::AsFd;
    match std::io::stderr().as_fd().try_clone_to_owned() {
        Ok(fd) => Stdio::from(fd),
        Err(_) => Stdio::null(),
    }
}
