//! The Node harness against real `node` processes (skipped without Node,
//! failing under `CI=true`).

use std::time::Duration;

use connkit_testkit::{NodeError, NodePeers, node_or_skip, within};

const SCRIPT: &str = "testkit_fixture.js";
const WAIT: Duration = Duration::from_secs(20);

#[tokio::test]
async fn ready_payload_then_stdout_lines_and_stdin_round_trip() {
    let Some(node) = node_or_skip() else { return };
    within(60, async {
        let mut p = node.spawn(SCRIPT, ["--mode=ready"]).expect("spawn");
        assert_eq!(p.wait_ready(WAIT).await.expect("ready"), "hello world");
        p.write_line("ping").await.expect("write");
        assert_eq!(
            p.next_line(WAIT).await.expect("line").as_deref(),
            Some("echo: ping")
        );
        p.write_line("héllo ✓").await.expect("write utf-8");
        assert_eq!(
            p.next_line(WAIT).await.expect("line").as_deref(),
            Some("echo: héllo ✓")
        );
        p.close_stdin();
        assert_eq!(
            p.next_line(WAIT).await.expect("line").as_deref(),
            Some("BYE")
        );
        assert_eq!(p.next_line(WAIT).await.expect("eof"), None);
        assert!(p.wait_exit(WAIT).await.expect("exit").success());
        assert!(p.write_line("late").await.is_err());
    })
    .await;
}

#[tokio::test]
async fn a_crash_before_ready_reports_status_and_stderr() {
    let Some(node) = node_or_skip() else { return };
    within(60, async {
        let mut p = node.spawn(SCRIPT, ["--mode=crash"]).expect("spawn");
        let err = p.wait_ready(WAIT).await.expect_err("must not be ready");
        assert!(matches!(err, NodeError::Exited { .. }), "{err:?}");
        let text = err.to_string();
        assert!(text.contains("before printing READY"), "{text}");
        assert!(text.contains("exit status: 3"), "{text}");
        assert!(text.contains("fixture crashing on purpose"), "{text}");
    })
    .await;
}

#[tokio::test]
async fn a_script_that_never_gets_ready_times_out_with_its_output() {
    let Some(node) = node_or_skip() else { return };
    within(60, async {
        let mut p = node.spawn(SCRIPT, ["--mode=silent"]).expect("spawn");
        let err = p
            .wait_ready(Duration::from_millis(1500))
            .await
            .expect_err("must time out");
        assert!(matches!(err, NodeError::TimedOut { .. }), "{err:?}");
        assert!(err.to_string().contains("not ready yet"), "{err}");
        p.kill().await.expect("kill");
        assert!(!p.wait_exit(WAIT).await.expect("exit").success());
    })
    .await;
}

#[tokio::test]
async fn the_pinned_peers_resolve_through_node_path() {
    let Some(node) = node_or_skip() else { return };
    assert!(node.node_modules().join("@metarhia/jstp").is_dir());
    assert!(node.install_dir().join("package-lock.json").is_file());
    within(60, async {
        let mut p = node
            .script(SCRIPT)
            .arg("--mode=peers")
            .env("CONNKIT_TESTKIT_FIXTURE", "1")
            .spawn()
            .expect("spawn");
        let ready = p.wait_ready(WAIT).await.expect("peers load");
        assert_eq!(
            ready,
            "@metarhia/jstp mdsf @crussell52/socket-ipc @connback/core"
        );
    })
    .await;
}

#[tokio::test]
async fn a_missing_script_is_reported_before_spawning() {
    let Some(node) = node_or_skip() else { return };
    let err = node
        .spawn("no_such_script.js", Vec::<String>::new())
        .expect_err("missing");
    assert!(matches!(err, NodeError::ScriptNotFound { .. }), "{err:?}");
}

#[test]
fn spawning_outside_a_runtime_is_an_error_not_a_panic() {
    let Some(node) = node_or_skip() else { return };
    let err = node
        .spawn(SCRIPT, ["--mode=ready"])
        .expect_err("no runtime");
    assert!(matches!(err, NodeError::NoRuntime), "{err:?}");
}

#[test]
fn ensure_is_idempotent_and_leaves_a_stamp() {
    let Some(first) = node_or_skip() else { return };
    let second = NodePeers::ensure().expect("second ensure");
    assert_eq!(first, second);
    assert!(first.install_dir().join(".connkit-npm.stamp").is_file());
}
