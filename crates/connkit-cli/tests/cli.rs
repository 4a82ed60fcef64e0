//! The `connkit` binary's contract: arguments, output, exit codes.

use std::process::Command;

fn connkit(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_connkit"))
        .args(args)
        .output()
        .expect("run connkit")
}

#[test]
fn version_and_help() {
    let out = connkit(&["--version"]);
    assert!(out.status.success());
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        format!("connkit {}", env!("CARGO_PKG_VERSION"))
    );
    let out = connkit(&["--help"]);
    assert!(out.status.success());
    assert!(String::from_utf8_lossy(&out.stdout).contains("Usage: connkit"));
}

#[test]
fn endpoint_prints_json_and_bad_input_exits_2() {
    let out = connkit(&["endpoint", "wss://[::1]/jstp"]);
    assert!(out.status.success());
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
    assert_eq!(v["scheme"], "wss");
    assert_eq!(v["host"], "::1");
    assert_eq!(v["port"], 443);
    assert_eq!(v["path"], "/jstp");
    let out = connkit(&["endpoint", "tcp://host"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("bad port"));
}

#[test]
fn unknown_subcommand_is_a_usage_error() {
    let out = connkit(&["no-such-command"]);
    assert_eq!(out.status.code(), Some(2));
}
