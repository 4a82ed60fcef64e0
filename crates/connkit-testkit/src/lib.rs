//! Test support for connkit. Nothing here is published; it exists so the
//! workspace's tests share one way of doing the awkward parts:
//!
//! - [`node`]: install the pinned Node peers from `tests/interop/node/` once
//!   per lock file, and run Node scripts as child processes that announce
//!   readiness with a `READY …` line on stdout.
//! - [`node_or_skip`] / [`require_node!`]: the policy for machines without
//!   Node. Under `CI=true` a missing Node is a test failure that says what to
//!   install; elsewhere the test prints `SKIPPED: <reason>` and passes.
//! - [`net`]: short, unique Unix socket paths and (racy) free TCP ports.
//! - [`within`]: a hard timeout for every network test.
//! - [`proxy`]: a TCP fault proxy ([`FaultProxy`]) for reconnect tests.
//!
//! # Example
//!
//! ```no_run
//! # async fn example() -> Result<(), Box<dyn std::error::Error>> {
//! use std::time::Duration;
//!
//! let Some(node) = connkit_testkit::node_or_skip() else { return Ok(()) };
//! connkit_testkit::within(30, async {
//!     let mut peer = node.spawn("echo_server.js", ["--delim=2"])?;
//!     let port: u16 = peer.wait_ready(Duration::from_secs(10)).await?.parse()?;
//!     // ... connect to 127.0.0.1:{port} and talk to it ...
//!     # let _ = port;
//!     Ok(())
//! })
//! .await
//! # }
//! ```
//!
//! Helpers that panic say so under a `# Panics` heading; they are test
//! assertions. Everything else reports problems through `Result`.

#![deny(missing_docs)]
#![deny(unreachable_pub)]

use std::io::Write as _;

pub mod net;
pub mod node;
pub mod proxy;
pub mod timeout;

mod hash;
mod paths;

pub use node::{NodeError, NodePeers, NodeProcess, NodeScript, Unavailable};
pub use paths::{target_dir, workspace_root};
pub use proxy::FaultProxy;
pub use timeout::within;

/// Returns `true` when the `CI` environment variable says we run under CI
/// (`true`, `1` or `yes`, any case).
///
/// Under CI, missing test prerequisites are failures, not skips.
#[must_use]
pub fn is_ci() -> bool {
    std::env::var("CI")
        .map(|v| matches!(v.trim().to_ascii_lowercase().as_str(), "true" | "1" | "yes"))
        .unwrap_or(false)
}

/// Ensures the pinned Node peers are installed and returns them, or decides
/// that the calling test is skipped.
///
/// Use it at the top of every interop test:
///
/// ```no_run
/// let Some(node) = connkit_testkit::node_or_skip() else { return };
/// # let _ = node;
/// ```
///
/// When Node is unavailable (no `node` or `npm` on `PATH`, or `npm ci`
/// failed) and [`is_ci`] is false, this prints `SKIPPED: <reason>` to stderr
/// (not captured by the test harness, so it shows in passing runs too) and
/// returns `None`, so the test returns early and passes.
///
/// This blocks the calling thread while `npm ci` runs (first call per lock
/// content only); that is fine at the start of a test.
///
/// # Panics
///
/// Under CI (`CI=true`) an unavailable Node is a test failure: this panics
/// with a message that says what to install and includes `npm ci`'s stderr.
#[must_use]
pub fn node_or_skip() -> Option<NodePeers> {
    match NodePeers::ensure() {
        Ok(peers) => Some(peers),
        Err(why) if is_ci() => {
            panic!("interop test prerequisites missing under CI=true: {why}")
        }
        Err(why) => {
            // Written to the real stderr, past libtest's output capture, so
            // skips show up in the log of a passing run.
            let _ = writeln!(std::io::stderr(), "SKIPPED: {why}");
            None
        }
    }
}

/// Evaluates to the [`NodePeers`], or returns from the enclosing function
/// (which must return `()`) when the test is skipped.
///
/// The policy is that of [`node_or_skip`], including its panic under CI.
///
/// ```no_run
/// # fn test() {
/// let node = connkit_testkit::require_node!();
/// # let _ = node;
/// # }
/// ```
#[macro_export]
macro_rules! require_node {
    () => {
        match $crate::node_or_skip() {
            ::std::option::Option::Some(peers) => peers,
            ::std::option::Option::None => return,
        }
    };
}
