//! The Node interop harness: pinned Node peers and Node scripts as child
//! processes.
//!
//! # Installing the peers
//!
//! The peers are pinned in `tests/interop/node/package.json` and
//! `package-lock.json`. [`NodePeers::ensure`] copies both files into
//! `<target dir>/interop-node/` and runs
//! `npm ci --no-audit --no-fund --ignore-scripts` there, once per content of
//! those files: a stamp file records a hash of them, and `npm ci` is skipped
//! while the stamp matches and `node_modules` exists. An exclusive file lock
//! on `<target dir>/interop-node/.connkit-npm.lock` keeps parallel test
//! binaries from installing at the same time.
//!
//! `--ignore-scripts` keeps installs the same whatever npm version runs them:
//! recent npm already skips dependency install scripts by default, older npm
//! would try to compile optional native add-ons. All pinned peers work without
//! them (`mdsf` falls back to its JavaScript serializer and says so on stderr).
//!
//! # Running scripts
//!
//! [`NodePeers::spawn`] and [`NodePeers::script`] start `node <script>` with
//! `NODE_PATH` pointing at the installed `node_modules`, so scripts can
//! `require('@metarhia/jstp')` and friends. A script tells the test it is
//! ready by printing a line `READY <payload>` (a port, a socket path, or
//! nothing); [`NodeProcess::wait_ready`] returns the payload.

use std::collections::VecDeque;
use std::ffi::{OsStr, OsString};
use std::fs::{self, File};
use std::io::{self, Read};
use std::path::{Path, PathBuf};
use std::process::{ExitStatus, Stdio};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader, Lines};
use tokio::process::{Child, ChildStdin, ChildStdout, Command};
use tokio::task::JoinHandle;

use crate::hash::Fnv64;
use crate::paths::{target_dir, workspace_root};

/// Where the Node scripts and the pinned `package.json` live, relative to the
/// workspace root.
pub const SCRIPTS_DIR: &str = "tests/interop/node";

/// Name of the install directory under the target directory.
pub const INSTALL_DIR: &str = "interop-node";

/// What to tell a person whose machine lacks Node.
pub const INSTALL_HINT: &str =
    "node and npm are required for interop tests: apt-get install nodejs npm";

/// The arguments given to npm; part of the stamp so a change reinstalls.
const NPM_CI_ARGS: [&str; 4] = ["ci", "--no-audit", "--no-fund", "--ignore-scripts"];
const STAMP_FILE: &str = ".connkit-npm.stamp";
const LOCK_FILE: &str = ".connkit-npm.lock";
const MANIFESTS: [&str; 2] = ["package.json", "package-lock.json"];
/// `npm ci` normally takes seconds; this only guards against a hung registry.
const NPM_CI_TIMEOUT: Duration = Duration::from_secs(600);

/// Most stderr kept per process (the tail is kept).
const STDERR_CAP: usize = 64 * 1024;
/// Most stdout lines kept for diagnostics while waiting for `READY`.
const STDOUT_SEEN_CAP: usize = 50;
/// How long error paths wait for a dying process to finish writing stderr.
const DRAIN_GRACE: Duration = Duration::from_secs(3);

/// Why the Node peers cannot be used on this machine.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Unavailable {
    /// `node` is not on `PATH`.
    #[error("`node` was not found on PATH; {INSTALL_HINT}")]
    NodeMissing,
    /// `npm` is not on `PATH`.
    #[error("`npm` was not found on PATH; {INSTALL_HINT}")]
    NpmMissing,
    /// `npm ci` failed (or could not be started, or timed out).
    #[error(
        "`npm ci` failed in {} ({status}); {INSTALL_HINT}, and the npm registry must be \
         reachable\n--- npm ci stderr ---\n{stderr}",
        dir.display()
    )]
    InstallFailed {
        /// The install directory.
        dir: PathBuf,
        /// The exit status, or why there is none.
        status: String,
        /// What npm printed on stderr.
        stderr: String,
    },
    /// The workspace or install directory could not be prepared.
    #[error("cannot prepare the Node peers: {context}: {message}")]
    Setup {
        /// What was being done.
        context: String,
        /// The underlying error.
        message: String,
    },
}

impl Unavailable {
    fn setup(context: impl Into<String>) -> impl FnOnce(io::Error) -> Self {
        let context = context.into();
        move |e| Self::Setup {
            context,
            message: e.to_string(),
        }
    }
}

/// The pinned Node peers, installed and ready to run scripts.
///
/// Get one with [`NodePeers::ensure`] or, in tests, with
/// [`node_or_skip`](crate::node_or_skip).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodePeers {
    node: PathBuf,
    install_dir: PathBuf,
    node_modules: PathBuf,
    scripts_dir: PathBuf,
}

impl NodePeers {
    /// Finds `node` and `npm` on `PATH` and installs the pinned peers into
    /// `<target dir>/interop-node/` unless they are already installed for the
    /// current lock file (see the [module docs](self)).
    ///
    /// The result is computed once per process and cached. This blocks the
    /// calling thread while `npm ci` runs.
    ///
    /// # Errors
    ///
    /// [`Unavailable`] says what is missing or what failed.
    pub fn ensure() -> Result<NodePeers, Unavailable> {
        static PEERS: OnceLock<Result<NodePeers, Unavailable>> = OnceLock::new();
        PEERS.get_or_init(install).clone()
    }

    /// The `node_modules` directory the peers are installed in (what scripts
    /// get as `NODE_PATH`).
    #[must_use]
    pub fn node_modules(&self) -> &Path {
        &self.node_modules
    }

    /// The install directory, `<target dir>/interop-node`.
    #[must_use]
    pub fn install_dir(&self) -> &Path {
        &self.install_dir
    }

    /// The directory scripts are resolved against,
    /// `<workspace root>/tests/interop/node`.
    #[must_use]
    pub fn scripts_dir(&self) -> &Path {
        &self.scripts_dir
    }

    /// The `node` executable found on `PATH`.
    #[must_use]
    pub fn node_binary(&self) -> &Path {
        &self.node
    }

    /// Starts building a `node <script>` invocation. A relative `script` is
    /// resolved against [`scripts_dir`](Self::scripts_dir), so
    /// `peers.script("echo_server.js")` runs `tests/interop/node/echo_server.js`.
    pub fn script(&self, script: impl AsRef<Path>) -> NodeScript {
        NodeScript {
            node: self.node.clone(),
            script: self.scripts_dir.join(script.as_ref()),
            args: Vec::new(),
            envs: Vec::new(),
            node_modules: self.node_modules.clone(),
            cwd: self.scripts_dir.clone(),
        }
    }

    /// Spawns `node <script> <args…>`; shorthand for
    /// `self.script(script).args(args).spawn()`.
    ///
    /// Must be called inside a tokio runtime.
    ///
    /// # Errors
    ///
    /// See [`NodeScript::spawn`].
    pub fn spawn<I, S>(&self, script: impl AsRef<Path>, args: I) -> Result<NodeProcess, NodeError>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        self.script(script).args(args).spawn()
    }
}

/// A `node <script>` invocation being configured; made by
/// [`NodePeers::script`].
#[derive(Debug, Clone)]
#[must_use = "a NodeScript does nothing until spawned"]
pub struct NodeScript {
    node: PathBuf,
    script: PathBuf,
    args: Vec<OsString>,
    envs: Vec<(OsString, OsString)>,
    node_modules: PathBuf,
    cwd: PathBuf,
}

impl NodeScript {
    /// Adds one argument after the script path.
    pub fn arg(mut self, arg: impl AsRef<OsStr>) -> Self {
        self.args.push(arg.as_ref().to_owned());
        self
    }

    /// Adds arguments after the script path.
    pub fn args<I, S>(mut self, args: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        self.args
            .extend(args.into_iter().map(|a| a.as_ref().to_owned()));
        self
    }

    /// Sets an environment variable for the script (on top of the inherited
    /// environment and `NODE_PATH`).
    pub fn env(mut self, key: impl AsRef<OsStr>, value: impl AsRef<OsStr>) -> Self {
        self.envs
            .push((key.as_ref().to_owned(), value.as_ref().to_owned()));
        self
    }

    /// Starts the process: stdin, stdout and stderr piped, working directory
    /// the scripts directory, `NODE_PATH` the installed `node_modules`, and
    /// killed when the returned [`NodeProcess`] is dropped.
    ///
    /// # Errors
    ///
    /// [`NodeError::ScriptNotFound`], [`NodeError::NoRuntime`] when called
    /// outside a tokio runtime, or [`NodeError::Spawn`].
    pub fn spawn(self) -> Result<NodeProcess, NodeError> {
        let name = self.script.file_name().map_or_else(
            || self.script.display().to_string(),
            |n| n.to_string_lossy().into_owned(),
        );
        if !self.script.is_file() {
            return Err(NodeError::ScriptNotFound {
                script: name,
                path: self.script,
            });
        }
        if tokio::runtime::Handle::try_current().is_err() {
            return Err(NodeError::NoRuntime);
        }
        let mut cmd = Command::new(&self.node);
        cmd.arg(&self.script)
            .args(&self.args)
            .env("NODE_PATH", &self.node_modules)
            .envs(self.envs.iter().map(|(k, v)| (k, v)))
            .current_dir(&self.cwd)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        let mut child = cmd.spawn().map_err(|source| NodeError::Spawn {
            script: name.clone(),
            source,
        })?;
        let (Some(stdin), Some(stdout), Some(stderr)) =
            (child.stdin.take(), child.stdout.take(), child.stderr.take())
        else {
            return Err(NodeError::Spawn {
                script: name,
                source: io::Error::other("child process has no piped stdio"),
            });
        };
        let captured = Arc::new(Mutex::new(Vec::new()));
        let stderr_task = tokio::spawn(capture_stderr(name.clone(), stderr, Arc::clone(&captured)));
        tracing::debug!(script = %name, pid = ?child.id(), "node script started");
        Ok(NodeProcess {
            script: name,
            child,
            stdin: Some(stdin),
            stdout: BufReader::new(stdout).lines(),
            stderr: captured,
            stderr_task: Some(stderr_task),
            seen: VecDeque::new(),
        })
    }
}

/// Errors from running a Node script. Every variant that happens after the
/// process started carries its captured stderr, so a crashing script explains
/// itself in the test failure.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum NodeError {
    /// The script file does not exist.
    #[error("node script {script} not found at {}", path.display())]
    ScriptNotFound {
        /// The script's file name.
        script: String,
        /// Where it was looked for.
        path: PathBuf,
    },
    /// [`NodeScript::spawn`] was called outside a tokio runtime.
    #[error("a NodeProcess must be spawned inside a tokio runtime")]
    NoRuntime,
    /// `node` could not be started.
    #[error("cannot start node for {script}: {source}")]
    Spawn {
        /// The script's file name.
        script: String,
        /// The OS error.
        source: io::Error,
    },
    /// The script did not do what was awaited in time.
    #[error("{script}: timed out after {after:?} waiting for {what}{}", context(.stdout, .stderr))]
    TimedOut {
        /// The script's file name.
        script: String,
        /// What was awaited.
        what: &'static str,
        /// The timeout.
        after: Duration,
        /// Stdout lines seen while waiting for `READY`, if any.
        stdout: String,
        /// Captured stderr.
        stderr: String,
    },
    /// The script ended its stdout (normally by exiting) before it was
    /// expected to.
    #[error("{script} ended {when} ({status}){}", context(.stdout, .stderr))]
    Exited {
        /// The script's file name.
        script: String,
        /// When it happened, e.g. "before printing READY".
        when: &'static str,
        /// The exit status, or why it is unknown.
        status: String,
        /// Stdout lines seen before that, if any.
        stdout: String,
        /// Captured stderr.
        stderr: String,
    },
    /// Reading from or writing to the process failed.
    #[error("{script}: i/o error on {what}: {source}{}", context("", .stderr))]
    Io {
        /// The script's file name.
        script: String,
        /// Which stream.
        what: &'static str,
        /// The error.
        source: io::Error,
        /// Captured stderr.
        stderr: String,
    },
}

fn context(stdout: &str, stderr: &str) -> String {
    let mut out = String::new();
    if !stdout.is_empty() {
        out.push_str("\n--- stdout ---\n");
        out.push_str(stdout.trim_end());
    }
    out.push_str("\n--- stderr ---\n");
    if stderr.trim().is_empty() {
        out.push_str("(empty)");
    } else {
        out.push_str(stderr.trim_end());
    }
    out
}

/// A running `node <script>` child process.
///
/// Stdout is read line by line ([`wait_ready`](Self::wait_ready),
/// [`next_line`](Self::next_line)); stderr is captured in the background and
/// included in every error ([`stderr`](Self::stderr) gives it on demand, and
/// each line is also logged with `tracing` at debug level). The process is
/// killed when this value is dropped.
#[derive(Debug)]
pub struct NodeProcess {
    script: String,
    child: Child,
    stdin: Option<ChildStdin>,
    stdout: Lines<BufReader<ChildStdout>>,
    stderr: Arc<Mutex<Vec<u8>>>,
    stderr_task: Option<JoinHandle<()>>,
    seen: VecDeque<String>,
}

impl NodeProcess {
    /// The script's file name, as used in messages.
    #[must_use]
    pub fn script(&self) -> &str {
        &self.script
    }

    /// The OS process id, while the process has not been reaped.
    #[must_use]
    pub fn id(&self) -> Option<u32> {
        self.child.id()
    }

    /// Reads stdout lines until one is `READY` or starts with `READY `
    /// and returns the rest of that line, trimmed: `READY 41235` gives
    /// `"41235"`, a bare `READY` gives `""`. Earlier lines are kept for error
    /// messages and logged at debug level.
    ///
    /// Cancel safe: no line is lost if the future is dropped.
    ///
    /// # Errors
    ///
    /// [`NodeError::TimedOut`] after `timeout`, [`NodeError::Exited`] when
    /// stdout ends first (the script crashed), [`NodeError::Io`]; all carry
    /// the script's stderr.
    pub async fn wait_ready(&mut self, timeout: Duration) -> Result<String, NodeError> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            match tokio::time::timeout_at(deadline, self.stdout.next_line()).await {
                Err(_) => {
                    return Err(NodeError::TimedOut {
                        script: self.script.clone(),
                        what: "a READY line on stdout",
                        after: timeout,
                        stdout: self.seen_stdout(),
                        stderr: self.stderr(),
                    });
                }
                Ok(Ok(Some(line))) => {
                    if let Some(payload) = ready_payload(&line) {
                        return Ok(payload.to_owned());
                    }
                    tracing::debug!(script = %self.script, line = %line, "node stdout");
                    if self.seen.len() == STDOUT_SEEN_CAP {
                        self.seen.pop_front();
                    }
                    self.seen.push_back(line);
                }
                Ok(Ok(None)) => return Err(self.ended("before printing READY").await),
                Ok(Err(source)) => return Err(self.io_error("stdout", source)),
            }
        }
    }

    /// The next stdout line (without its line ending), or `None` once stdout
    /// has ended.
    ///
    /// Cancel safe: no line is lost if the future is dropped.
    ///
    /// # Errors
    ///
    /// [`NodeError::TimedOut`] when no complete line arrives within
    /// `timeout`, or [`NodeError::Io`].
    pub async fn next_line(&mut self, timeout: Duration) -> Result<Option<String>, NodeError> {
        match tokio::time::timeout(timeout, self.stdout.next_line()).await {
            Err(_) => Err(NodeError::TimedOut {
                script: self.script.clone(),
                what: "a line on stdout",
                after: timeout,
                stdout: String::new(),
                stderr: self.stderr(),
            }),
            Ok(Ok(line)) => Ok(line),
            Ok(Err(source)) => Err(self.io_error("stdout", source)),
        }
    }

    /// Writes `line` and a `\n` to the script's stdin, for scripts that take
    /// commands from the test.
    ///
    /// # Errors
    ///
    /// [`NodeError::Io`] when stdin was closed or the write failed.
    pub async fn write_line(&mut self, line: &str) -> Result<(), NodeError> {
        let result = match self.stdin.as_mut() {
            None => Err(io::Error::new(
                io::ErrorKind::BrokenPipe,
                "stdin was closed",
            )),
            Some(stdin) => {
                let mut buf = Vec::with_capacity(line.len() + 1);
                buf.extend_from_slice(line.as_bytes());
                buf.push(b'\n');
                match stdin.write_all(&buf).await {
                    Ok(()) => stdin.flush().await,
                    Err(e) => Err(e),
                }
            }
        };
        result.map_err(|source| self.io_error("stdin", source))
    }

    /// Closes the script's stdin (it sees end of input).
    pub fn close_stdin(&mut self) {
        self.stdin = None;
    }

    /// Waits for the process to exit and returns its status.
    ///
    /// Cancel safe.
    ///
    /// # Errors
    ///
    /// [`NodeError::TimedOut`] after `timeout` (the process keeps running),
    /// or [`NodeError::Io`].
    pub async fn wait_exit(&mut self, timeout: Duration) -> Result<ExitStatus, NodeError> {
        match tokio::time::timeout(timeout, self.child.wait()).await {
            Err(_) => Err(NodeError::TimedOut {
                script: self.script.clone(),
                what: "the process to exit",
                after: timeout,
                stdout: String::new(),
                stderr: self.stderr(),
            }),
            Ok(Ok(status)) => Ok(status),
            Ok(Err(source)) => Err(self.io_error("wait", source)),
        }
    }

    /// Kills the process (SIGKILL on Unix) and waits for it to be reaped.
    ///
    /// # Errors
    ///
    /// [`NodeError::Io`] when the signal could not be sent.
    pub async fn kill(&mut self) -> Result<(), NodeError> {
        match self.child.kill().await {
            Ok(()) => Ok(()),
            Err(source) => Err(self.io_error("kill", source)),
        }
    }

    /// What the script has written to stderr so far (at most the last
    /// 64 KiB), lossily decoded as UTF-8.
    #[must_use]
    pub fn stderr(&self) -> String {
        let buf = self
            .stderr
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        String::from_utf8_lossy(&buf).into_owned()
    }

    fn seen_stdout(&self) -> String {
        self.seen
            .iter()
            .map(String::as_str)
            .collect::<Vec<_>>()
            .join("\n")
    }

    fn io_error(&self, what: &'static str, source: io::Error) -> NodeError {
        NodeError::Io {
            script: self.script.clone(),
            what,
            source,
            stderr: self.stderr(),
        }
    }

    /// Builds the error for "stdout ended early": waits briefly for the exit
    /// status and for stderr to be fully read, so the message is complete.
    async fn ended(&mut self, when: &'static str) -> NodeError {
        let status = match tokio::time::timeout(DRAIN_GRACE, self.child.wait()).await {
            Ok(Ok(status)) => status.to_string(),
            Ok(Err(e)) => format!("exit status unknown: {e}"),
            Err(_) => "stdout closed but the process is still running".to_owned(),
        };
        if let Some(task) = self.stderr_task.take() {
            // A timeout or a join error only means stderr may be incomplete.
            let _ = tokio::time::timeout(DRAIN_GRACE, task).await;
        }
        NodeError::Exited {
            script: self.script.clone(),
            when,
            status,
            stdout: self.seen_stdout(),
            stderr: self.stderr(),
        }
    }
}

impl Drop for NodeProcess {
    fn drop(&mut self) {
        // kill_on_drop(true) kills the child; the stderr reader then sees EOF
        // and ends on its own. Abort it anyway in case a grandchild holds the
        // pipe open.
        if let Some(task) = self.stderr_task.take() {
            task.abort();
        }
    }
}

/// `READY` → `""`, `READY 41235` → `"41235"`, anything else → `None`.
fn ready_payload(line: &str) -> Option<&str> {
    let rest = line.strip_prefix("READY")?;
    if rest.is_empty() {
        Some("")
    } else if rest.starts_with(char::is_whitespace) {
        Some(rest.trim())
    } else {
        None
    }
}

async fn capture_stderr(
    script: String,
    stderr: tokio::process::ChildStderr,
    captured: Arc<Mutex<Vec<u8>>>,
) {
    let mut reader = BufReader::new(stderr);
    let mut line = Vec::new();
    loop {
        line.clear();
        match reader.read_until(b'\n', &mut line).await {
            Ok(0) | Err(_) => break,
            Ok(_) => {
                tracing::debug!(
                    script = %script,
                    line = %String::from_utf8_lossy(&line).trim_end(),
                    "node stderr"
                );
                let mut buf = captured
                    .lock()
                    .unwrap_or_else(|poisoned| poisoned.into_inner());
                buf.extend_from_slice(&line);
                if buf.len() > STDERR_CAP {
                    let excess = buf.len() - STDERR_CAP;
                    buf.drain(..excess);
                }
            }
        }
    }
}

// ---------------------------------------------------------------------------
// Installation
// ---------------------------------------------------------------------------

fn install() -> Result<NodePeers, Unavailable> {
    let node = find_on_path("node").ok_or(Unavailable::NodeMissing)?;
    let npm = find_on_path("npm").ok_or(Unavailable::NpmMissing)?;
    let root = workspace_root().map_err(Unavailable::setup("finding the workspace root"))?;
    let scripts_dir = root.join(SCRIPTS_DIR);
    let install_dir = target_dir()
        .map_err(Unavailable::setup("finding the target directory"))?
        .join(INSTALL_DIR);
    install_into(&npm, &scripts_dir, &install_dir)?;
    Ok(NodePeers {
        node,
        node_modules: install_dir.join("node_modules"),
        install_dir,
        scripts_dir,
    })
}

/// Copies the manifests from `scripts_dir` to `install_dir` and runs `npm ci`
/// there unless the stamp says this content is already installed.
fn install_into(npm: &Path, scripts_dir: &Path, install_dir: &Path) -> Result<(), Unavailable> {
    let node_modules = install_dir.join("node_modules");
    let mut manifests = Vec::with_capacity(MANIFESTS.len());
    for name in MANIFESTS {
        let path = scripts_dir.join(name);
        let bytes =
            fs::read(&path).map_err(Unavailable::setup(format!("reading {}", path.display())))?;
        manifests.push((name, bytes));
    }
    let mut hasher = Fnv64::new();
    hasher.update(NPM_CI_ARGS.join(" ").as_bytes());
    for (name, bytes) in &manifests {
        hasher.update(name.as_bytes()).update(bytes);
    }
    let stamp = hasher.hex();

    fs::create_dir_all(install_dir).map_err(Unavailable::setup(format!(
        "creating {}",
        install_dir.display()
    )))?;
    let lock_path = install_dir.join(LOCK_FILE);
    let lock = File::options()
        .create(true)
        .truncate(false)
        .read(true)
        .write(true)
        .open(&lock_path)
        .map_err(Unavailable::setup(format!(
            "opening {}",
            lock_path.display()
        )))?;
    // Blocks while another test binary installs; released when `lock` drops.
    lock.lock().map_err(Unavailable::setup(format!(
        "locking {}",
        lock_path.display()
    )))?;

    let stamp_path = install_dir.join(STAMP_FILE);
    let installed = fs::read_to_string(&stamp_path).is_ok_and(|s| s.trim() == stamp);
    if installed && node_modules.is_dir() {
        tracing::debug!(dir = %install_dir.display(), "node peers already installed");
        return Ok(());
    }
    // A stale stamp must not survive a failed install.
    match fs::remove_file(&stamp_path) {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(e) => {
            return Err(Unavailable::setup(format!(
                "removing {}",
                stamp_path.display()
            ))(e));
        }
    }
    for (name, bytes) in &manifests {
        let dest = install_dir.join(name);
        if fs::read(&dest).ok().as_deref() != Some(bytes.as_slice()) {
            fs::write(&dest, bytes)
                .map_err(Unavailable::setup(format!("writing {}", dest.display())))?;
        }
    }
    run_npm_ci(npm, install_dir)?;
    fs::write(&stamp_path, format!("{stamp}\n")).map_err(Unavailable::setup(format!(
        "writing {}",
        stamp_path.display()
    )))?;
    Ok(())
}

fn run_npm_ci(npm: &Path, dir: &Path) -> Result<(), Unavailable> {
    let failed = |status: String, stderr: String| Unavailable::InstallFailed {
        dir: dir.to_path_buf(),
        status,
        stderr,
    };
    tracing::info!(dir = %dir.display(), "installing the pinned Node peers with npm ci");
    let started = Instant::now();
    let mut cmd = std::process::Command::new(npm);
    cmd.args(NPM_CI_ARGS)
        .current_dir(dir)
        .env("npm_config_update_notifier", "false")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut attempt = 0;
    let mut child = loop {
        match cmd.spawn() {
            Ok(child) => break child,
            // ETXTBSY: a just-written executable (a fake npm in tests) is
            // briefly held open by a process forked in another thread.
            Err(e) if e.kind() == io::ErrorKind::ExecutableFileBusy && attempt < 20 => {
                attempt += 1;
                std::thread::sleep(Duration::from_millis(50));
            }
            Err(e) => {
                return Err(failed(
                    format!("could not start {}: {e}", npm.display()),
                    String::new(),
                ));
            }
        }
    };
    let stdout = child.stdout.take().map(drain_in_thread);
    let stderr = child.stderr.take().map(drain_in_thread);
    let status = loop {
        match child.try_wait() {
            Ok(Some(status)) => break Ok(status),
            Ok(None) if started.elapsed() > NPM_CI_TIMEOUT => {
                // Best effort: the process may have exited in the meantime.
                let _ = child.kill();
                let _ = child.wait();
                break Err(format!("timed out after {} s", NPM_CI_TIMEOUT.as_secs()));
            }
            Ok(None) => std::thread::sleep(Duration::from_millis(50)),
            Err(e) => break Err(format!("waiting for npm failed: {e}")),
        }
    };
    let join = |h: Option<std::thread::JoinHandle<String>>| {
        h.and_then(|h| h.join().ok()).unwrap_or_default()
    };
    let out = join(stdout);
    let err = join(stderr);
    match status {
        Ok(status) if status.success() => {
            tracing::info!(elapsed_ms = %started.elapsed().as_millis(), "npm ci done");
            Ok(())
        }
        Ok(status) => Err(failed(status.to_string(), join_output(&out, &err))),
        Err(why) => Err(failed(why, join_output(&out, &err))),
    }
}

fn join_output(stdout: &str, stderr: &str) -> String {
    if stdout.trim().is_empty() {
        stderr.to_owned()
    } else {
        format!("{stderr}\n--- npm ci stdout ---\n{stdout}")
    }
}

fn drain_in_thread<R: Read + Send + 'static>(mut pipe: R) -> std::thread::JoinHandle<String> {
    std::thread::spawn(move || {
        let mut buf = Vec::new();
        // A read error just truncates what we can report.
        let _ = pipe.read_to_end(&mut buf);
        String::from_utf8_lossy(&buf).into_owned()
    })
}

/// The first executable file called `name` in a `PATH` directory.
fn find_on_path(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .filter(|dir| !dir.as_os_str().is_empty())
        .map(|dir| dir.join(name))
        .find(|candidate| is_executable(candidate))
}

#[cfg(unix)]
fn is_executable(path: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    fs::metadata(path).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

#[cfg(not(unix))]
fn is_executable(path: &Path) -> bool {
    path.is_file()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ready_lines_are_recognised() {
        assert_eq!(ready_payload("READY"), Some(""));
        assert_eq!(ready_payload("READY 41235"), Some("41235"));
        assert_eq!(ready_payload("READY  /tmp/x.sock \r"), Some("/tmp/x.sock"));
        assert_eq!(ready_payload("READYING"), None);
        assert_eq!(ready_payload("not READY"), None);
        assert_eq!(ready_payload(""), None);
    }

    #[test]
    fn path_lookup_finds_sh_and_not_nonsense() {
        assert!(find_on_path("sh").is_some());
        assert!(find_on_path("connkit-no-such-program-here").is_none());
    }

    #[test]
    fn unavailable_messages_say_what_to_install() {
        assert!(
            Unavailable::NodeMissing
                .to_string()
                .contains("apt-get install nodejs npm")
        );
        let failed = Unavailable::InstallFailed {
            dir: PathBuf::from("/x"),
            status: "exit status: 1".into(),
            stderr: "npm ERR! boom".into(),
        };
        let text = failed.to_string();
        assert!(
            text.contains("npm ERR! boom") && text.contains("nodejs npm"),
            "{text}"
        );
    }

    /// A fake `npm` that logs its arguments to `calls.log`, then behaves as
    /// `body` says.
    #[cfg(unix)]
    fn fake_npm(dir: &Path, body: &str) -> PathBuf {
        use std::os::unix::fs::PermissionsExt;
        let path = dir.join("npm");
        let script = format!(
            "#!/bin/sh\necho \"$@\" >> \"{}/calls.log\"\n{body}\n",
            dir.display()
        );
        fs::write(&path, script).expect("write fake npm");
        fs::set_permissions(&path, fs::Permissions::from_mode(0o755)).expect("chmod");
        path
    }

    #[cfg(unix)]
    fn manifests(dir: &Path, lock: &str) {
        fs::write(dir.join("package.json"), "{}").expect("package.json");
        fs::write(dir.join("package-lock.json"), lock).expect("package-lock.json");
    }

    #[cfg(unix)]
    fn calls(dir: &Path) -> usize {
        fs::read_to_string(dir.join("calls.log")).map_or(0, |s| s.lines().count())
    }

    #[cfg(unix)]
    #[test]
    fn npm_ci_runs_once_per_lock_content() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let (bin, scripts, install) = (
            tmp.path().join("bin"),
            tmp.path().join("s"),
            tmp.path().join("i"),
        );
        for d in [&bin, &scripts] {
            fs::create_dir_all(d).expect("mkdir");
        }
        let npm = fake_npm(&bin, "mkdir -p node_modules");
        manifests(&scripts, "v1");

        install_into(&npm, &scripts, &install).expect("first install");
        assert_eq!(calls(&bin), 1);
        assert_eq!(
            fs::read_to_string(bin.join("calls.log"))
                .expect("log")
                .trim(),
            "ci --no-audit --no-fund --ignore-scripts"
        );
        assert_eq!(
            fs::read_to_string(install.join("package-lock.json")).expect("copied"),
            "v1"
        );
        install_into(&npm, &scripts, &install).expect("second install");
        assert_eq!(calls(&bin), 1, "same lock: npm ci must not run again");

        manifests(&scripts, "v2");
        install_into(&npm, &scripts, &install).expect("changed lock");
        assert_eq!(calls(&bin), 2, "new lock content: npm ci runs again");

        fs::remove_dir_all(install.join("node_modules")).expect("rm node_modules");
        install_into(&npm, &scripts, &install).expect("missing node_modules");
        assert_eq!(calls(&bin), 3, "node_modules gone: npm ci runs again");
    }

    #[cfg(unix)]
    #[test]
    fn concurrent_installs_run_npm_ci_once() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let (bin, scripts, install) = (
            tmp.path().join("bin"),
            tmp.path().join("s"),
            tmp.path().join("i"),
        );
        for d in [&bin, &scripts] {
            fs::create_dir_all(d).expect("mkdir");
        }
        manifests(&scripts, "v1");
        let npm = fake_npm(&bin, "sleep 0.3\nmkdir -p node_modules");
        std::thread::scope(|s| {
            let handles: Vec<_> = (0..4)
                .map(|_| s.spawn(|| install_into(&npm, &scripts, &install)))
                .collect();
            for h in handles {
                h.join().expect("thread").expect("install");
            }
        });
        assert_eq!(calls(&bin), 1, "the file lock must serialise installs");
    }

    #[cfg(unix)]
    #[test]
    fn a_failing_npm_ci_reports_its_stderr_and_leaves_no_stamp() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let (bin, scripts, install) = (
            tmp.path().join("bin"),
            tmp.path().join("s"),
            tmp.path().join("i"),
        );
        for d in [&bin, &scripts] {
            fs::create_dir_all(d).expect("mkdir");
        }
        manifests(&scripts, "v1");
        let ok = fake_npm(&bin, "mkdir -p node_modules");
        install_into(&ok, &scripts, &install).expect("install");
        manifests(&scripts, "v2");
        let bad = fake_npm(&bin, "echo 'npm error network unreachable' >&2\nexit 1");
        let err = install_into(&bad, &scripts, &install).expect_err("must fail");
        let text = err.to_string();
        assert!(matches!(err, Unavailable::InstallFailed { .. }), "{err:?}");
        assert!(text.contains("npm error network unreachable"), "{text}");
        assert!(text.contains("exit status: 1"), "{text}");
        assert!(text.contains("apt-get install nodejs npm"), "{text}");
        assert!(
            !install.join(STAMP_FILE).exists(),
            "no stamp after a failed install"
        );
    }

    #[test]
    fn missing_manifests_are_a_setup_error() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let err = install_into(Path::new("/bin/false"), tmp.path(), &tmp.path().join("i"))
            .expect_err("no manifests");
        assert!(matches!(err, Unavailable::Setup { .. }), "{err:?}");
    }

    #[test]
    fn error_context_shows_stdout_and_stderr() {
        let e = NodeError::Exited {
            script: "x.js".into(),
            when: "before printing READY",
            status: "exit status: 1".into(),
            stdout: "hello".into(),
            stderr: "TypeError: nope\n".into(),
        };
        let text = e.to_string();
        assert!(
            text.contains("x.js ended before printing READY (exit status: 1)"),
            "{text}"
        );
        assert!(text.contains("--- stdout ---\nhello"), "{text}");
        assert!(text.contains("--- stderr ---\nTypeError: nope"), "{text}");
    }
}
