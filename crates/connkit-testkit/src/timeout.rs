//! Hard timeouts for network tests.
//!
//! A network test that hangs ties up CI until the job limit; one that fails
//! after a few seconds says where it was. Wrap the body of every network test
//! in [`within`].

use std::future::Future;
use std::panic::Location;
use std::time::Duration;

/// Runs `f`, failing the test if it takes longer than `secs` seconds.
///
/// ```no_run
/// # async fn example() {
/// connkit_testkit::within(10, async {
///     // ... talk to a peer ...
/// })
/// .await;
/// # }
/// ```
///
/// Call it like an `async fn`; it is written as a function returning a future
/// so that the panic can name the caller's file and line.
///
/// Uses the tokio clock: under `#[tokio::test(start_paused = true)]` the clock
/// jumps ahead whenever the runtime is idle, so a test waiting on a real socket
/// or child process would time out at once. Use it with real time only.
///
/// # Panics
///
/// This is a test assertion: it panics with `test timed out after N s (at
/// file:line)` when the deadline passes. It must be awaited inside a tokio
/// runtime with the time driver enabled (as `#[tokio::test]` provides).
#[track_caller]
pub fn within<F: Future>(secs: u64, f: F) -> impl Future<Output = F::Output> {
    let caller = Location::caller();
    async move {
        match tokio::time::timeout(Duration::from_secs(secs), f).await {
            Ok(output) => output,
            Err(_) => panic!("test timed out after {secs} s (at {caller})"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::within;

    #[tokio::test]
    async fn returns_the_output_in_time() {
        assert_eq!(within(5, async { 7 }).await, 7);
    }

    #[tokio::test]
    #[should_panic(expected = "test timed out after 0 s")]
    async fn panics_with_a_clear_message_when_late() {
        within(0, std::future::pending::<()>()).await;
    }
}
