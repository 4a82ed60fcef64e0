//! `connkit demo` runs every step on loopback and exits 0 with a summary.

#[test]
fn demo_runs_every_step_and_succeeds() {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_connkit"))
        .arg("demo")
        .output()
        .expect("run connkit demo");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("Summary"), "{stdout}");
    assert!(!stdout.contains("FAILED"), "{stdout}");
    for needle in [
        "ticks(3) → [3] with events tick 1, 2, 3",
        "both clients reconnected",
        "(same id); offline calls → [30], [70]",
        "scheduled → loading → starting → waiting → ready → terminating → terminated",
    ] {
        assert!(stdout.contains(needle), "missing `{needle}` in:\n{stdout}");
    }
    let (ok, total) = stdout
        .lines()
        .find_map(|l| l.strip_suffix(" steps worked"))
        .and_then(|l| l.split_once(" of "))
        .expect("a summary line");
    assert_eq!(ok, total);
}
