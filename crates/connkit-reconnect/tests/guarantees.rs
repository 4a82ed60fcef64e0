//! One test per confirmed `@connback/core` bug (spec §8, B1–B16), named after the
//! behaviour we guarantee instead, plus the other promises of the supervisor.

mod common;

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::{Call, Harness, Scripted, Step, TestConn, expect, fail, ms, ok, opts};
use connkit_reconnect::{
    Error, ErrorKind, Event, Jitter, Options, OptionsError, State, Strategy, Supervisor,
};
use futures_util::StreamExt;
use tokio::time::Instant;

// B1: connback emits `connect(undefined)` after a connect timeout.
#[tokio::test(start_paused = true)]
async fn connect_timeout_is_a_failed_attempt_not_a_connection() {
    let h = Harness::start(
        vec![Step::Hang, Step::Hang, ok(0)],
        opts().connect_timeout(ms(200)),
    );
    h.until(250).await;
    assert_eq!(h.sup.current(), None);
    assert!(matches!(h.sup.current_state(), State::Backoff { .. }));
    h.until(2000).await;
    let log = h.log();
    assert_eq!(
        log,
        expect(&[
            (
                200,
                "error: timed out: connect attempt 1 took longer than 200ms"
            ),
            (200, "offline"),
            (200, "reconnect attempt 2 in 100ms"),
            (
                500,
                "error: timed out: connect attempt 2 took longer than 200ms"
            ),
            (500, "reconnect attempt 3 in 100ms"),
            (600, "connect #3"),
        ])
    );
    let timed_out = h.rec.events().into_iter().find_map(|e| match e {
        Event::Error(e) => Some(e),
        _ => None,
    });
    let timed_out = timed_out.unwrap();
    assert_eq!(timed_out.kind(), ErrorKind::TimedOut);
    assert!(timed_out.is_retryable());
    assert_eq!(
        h.conn.calls_where(|c| matches!(c, Call::Cancelled { .. })),
        vec![
            (200, Call::Cancelled { id: 1 }),
            (500, Call::Cancelled { id: 2 })
        ]
    );
}

// B2: a keepalive miss makes connback emit `end` and stop reconnecting for good.
#[tokio::test(start_paused = true)]
async fn keepalive_miss_reconnects_and_does_not_end() {
    let h = Harness::start(vec![ok(0), ok(0), ok(0)], opts().keepalive(ms(1000)));
    h.until(2100).await;
    assert_eq!(h.sup.current_state(), State::Connected { id: h.id(2) });
    // Reconnection still works after the miss: a later drop is handled normally ...
    h.sup.feed_close(h.id(2), false);
    h.until(2200).await;
    assert_eq!(h.sup.current_state(), State::Connected { id: h.id(3) });
    // ... and `end()` still ends, closing the live connection.
    h.sup.end(false).await;
    let log = h.log();
    assert_eq!(log.iter().filter(|(_, e)| e == "end").count(), 1);
    assert_eq!(
        log[log.len() - 2..],
        expect(&[(2200, "close #3"), (2200, "end")])
    );
    assert!(!log[..log.len() - 1].iter().any(|(_, e)| e == "end"));
    assert_eq!(
        h.conn.closes(),
        vec![
            (2000, Call::Close { id: 1, force: true }),
            (
                2100,
                Call::Close {
                    id: 2,
                    force: false
                }
            ),
            (
                2200,
                Call::Close {
                    id: 3,
                    force: false
                }
            ),
        ]
    );
}

// B3: connback's `reconnect()` while connected calls `end()` and usually ends dead.
#[tokio::test(start_paused = true)]
async fn reconnect_while_connected_replaces_the_connection_without_ending() {
    let h = Harness::start(vec![ok(0), ok(0), ok(0)], opts());
    h.until(100).await;
    h.sup.reconnect();
    h.until(200).await;
    // The old socket's close arrives late: it must not cancel or tear down anything.
    h.sup.feed_close(h.id(1), false);
    h.until(300).await;
    h.sup.reconnect();
    h.until(400).await;
    assert_eq!(
        h.log(),
        expect(&[
            (0, "connect #1"),
            (100, "close #1"),
            (100, "offline"),
            (100, "reconnect attempt 1 in 0ns"),
            (100, "connect #2"),
            (300, "close #2"),
            (300, "offline"),
            (300, "reconnect attempt 1 in 0ns"),
            (300, "connect #3"),
        ])
    );
    assert_eq!(h.sup.current_state(), State::Connected { id: h.id(3) });
}

// B4: after a failed manual `reconnect()` connback is stuck with `connecting = true`.
#[tokio::test(start_paused = true)]
async fn failed_manual_reconnect_is_retried_with_backoff() {
    let h = Harness::start(
        vec![fail(0), fail(0), fail(0), fail(0), ok(0)],
        opts().max_attempts(2),
    );
    h.until(500).await;
    assert_eq!(h.sup.current_state(), State::GaveUp);
    h.sup.reconnect();
    h.until(2000).await;
    assert_eq!(
        h.log(),
        expect(&[
            (0, "error: connect failed: scripted failure of #1"),
            (0, "offline"),
            (0, "reconnect attempt 2 in 100ms"),
            (100, "error: connect failed: scripted failure of #2"),
            (100, "gave up after 2 attempts"),
            (500, "reconnect attempt 1 in 0ns"),
            (500, "error: connect failed: scripted failure of #3"),
            (500, "reconnect attempt 2 in 100ms"),
            (600, "error: connect failed: scripted failure of #4"),
            (600, "gave up after 2 attempts"),
        ])
    );
    // And again: a manual reconnect always gets a fresh cycle.
    h.sup.reconnect();
    h.until(2100).await;
    assert_eq!(h.sup.current_state(), State::Connected { id: h.id(5) });
}

// B5: in connback one `reschedulePingTimer()` at 0.5 P makes every later ping 0.5 P apart.
#[tokio::test(start_paused = true)]
async fn reschedule_ping_defers_one_ping_and_keeps_the_period() {
    let h = Harness::start(vec![ok(0)], opts().keepalive(ms(1000)));
    h.conn.answer_pings_after(Some(0));
    h.until(500).await;
    h.sup.reschedule_ping(h.id(1));
    h.until(5000).await;
    assert_eq!(h.conn.pings(), vec![1500, 2500, 3500, 4500]);
    assert_eq!(h.log(), expect(&[(0, "connect #1")]));
}

// §6 weak point: in connback, outbound traffic (rescheduling) postpones the liveness check,
// so an app that sends often never detects a dead peer.
#[tokio::test(start_paused = true)]
async fn outbound_traffic_never_postpones_dead_peer_detection() {
    let h = Harness::start(vec![ok(0), ok(0)], opts().keepalive(ms(1000)));
    h.until(100).await;
    let id = h.id(1);
    for t in (300..=2400).step_by(300) {
        h.until(t).await;
        h.sup.reschedule_ping(id);
    }
    // Pings were deferred every time, but nothing was heard for 2 s: dead at 2000.
    assert!(h.conn.pings().is_empty());
    assert_eq!(
        h.log()[..3],
        expect(&[
            (0, "connect #1"),
            (
                2000,
                "error: timed out: keepalive: nothing heard from connection #1 for 2s"
            ),
            (2000, "close #1 with error"),
        ])
    );
}

// The keepalive timeout is its own setting: with 1 s pings and a 300 ms timeout a silent
// peer is dropped 1.3 s after the last heartbeat.
#[tokio::test(start_paused = true)]
async fn keepalive_timeout_is_separate_from_the_ping_interval() {
    let h = Harness::start(
        vec![ok(0), ok(0)],
        opts().keepalive(ms(1000)).keepalive_timeout(ms(300)),
    );
    h.until(500).await;
    h.sup.feed_heartbeat(h.id(1));
    h.until(3000).await;
    assert_eq!(h.conn.pings()[0], 1500);
    assert_eq!(
        h.log()[1],
        (
            1800,
            "error: timed out: keepalive: nothing heard from connection #1 for 1.3s".to_owned()
        )
    );
}

// B6: connback's user `retry` option replaces the internal one and wedges the instance.
#[tokio::test(start_paused = true)]
async fn retry_predicate_can_stop_retries_without_breaking_bookkeeping() {
    let asked = Arc::new(Mutex::new(Vec::new()));
    let a = Arc::clone(&asked);
    let h = Harness::start(
        vec![fail(0), fail(0), fail(0), ok(0)],
        opts().retry(move |e, attempts| {
            a.lock().unwrap().push((e.kind(), attempts));
            attempts < 2
        }),
    );
    h.until(1000).await;
    assert_eq!(
        h.log(),
        expect(&[
            (0, "error: connect failed: scripted failure of #1"),
            (0, "offline"),
            (0, "reconnect attempt 2 in 100ms"),
            (100, "error: connect failed: scripted failure of #2"),
            (100, "gave up after 2 attempts"),
        ])
    );
    assert_eq!(
        *asked.lock().unwrap(),
        vec![(ErrorKind::ConnectFailed, 1), (ErrorKind::ConnectFailed, 2)]
    );
    // Bookkeeping intact: a manual reconnect runs a normal cycle.
    h.sup.reconnect();
    h.until(1500).await;
    assert_eq!(h.sup.current_state(), State::Connected { id: h.id(4) });
}

// B6, the other half: the predicate cannot make a fatal error retryable.
#[tokio::test(start_paused = true)]
async fn retry_predicate_cannot_retry_a_fatal_error() {
    let h = Harness::start(
        vec![Step::Fail {
            after: 10,
            kind: ErrorKind::InvalidConfig,
        }],
        opts().retry(|_, _| true),
    );
    h.until(1000).await;
    assert_eq!(
        h.log(),
        expect(&[
            (10, "error: invalid configuration: scripted failure of #1"),
            (10, "offline"),
            (10, "gave up after 1 attempt"),
        ])
    );
    assert_eq!(h.conn.connects().len(), 1);
}

// B7: connback's `end()` during the first attempt neither cancels it nor closes a late
// connection, and emits `connect` after `end`.
#[tokio::test(start_paused = true)]
async fn end_during_first_attempt_cancels_it_and_closes_a_late_connection() {
    let h = Harness::start(vec![Step::IgnoreCancel { ok_after: 300 }], opts());
    let mut events = h.sup.events();
    h.until(100).await;
    h.sup.end(false).await;
    h.until(1000).await;
    assert_eq!(h.log(), expect(&[(100, "end")]));
    assert_eq!(
        h.conn.calls(),
        vec![
            (0, Call::Connect { attempt: 1, id: 1 }),
            (100, Call::Cancelled { id: 1 }),
            (300, Call::Close { id: 1, force: true }),
        ]
    );
    assert_eq!(events.next().await, Some(Ok(Event::End)));
    assert_eq!(events.next().await, None);
}

// B8: connback emits `error(Canceled)` and `close` after `end()` when a cycle was running.
#[tokio::test(start_paused = true)]
async fn end_during_backoff_emits_nothing_after_end() {
    for end_at in [5, 50, 110, 115] {
        let h = Harness::start(vec![fail(10), fail(10), fail(10)], opts());
        h.until(end_at).await;
        h.sup.end(false).await;
        h.until(10_000).await;
        let log = h.log();
        assert_eq!(log.last().unwrap(), &(end_at, "end".to_owned()), "{log:?}");
        assert!(log.iter().all(|(t, _)| *t <= end_at), "{log:?}");
        assert!(
            !log.iter().any(|(_, e)| e.contains("ancel")),
            "no cancellation error may surface: {log:?}"
        );
    }
}

// B9: connback's `feedClose` is not tied to a connection; a late close from an old socket
// tears down the new one.
#[tokio::test(start_paused = true)]
async fn stale_feeds_from_an_old_connection_are_ignored() {
    let h = Harness::start(vec![ok(0), ok(0)], opts().keepalive(ms(1000)));
    h.until(100).await;
    let old = h.id(1);
    let old_feed = h.conn.feed(1);
    h.sup.feed_close(old, false);
    h.until(200).await;
    assert_eq!(h.sup.current_state(), State::Connected { id: h.id(2) });
    // Everything the old connection reports now is ignored.
    h.sup.feed_close(old, true);
    h.sup.feed_error(old, Error::new(ErrorKind::Io, "late"));
    old_feed.close(true);
    old_feed.error(Error::new(ErrorKind::Io, "late"));
    // ... including heartbeats: they do not keep #2 alive.
    for t in (300..=2500).step_by(200) {
        h.until(t).await;
        old_feed.heartbeat();
    }
    assert_eq!(
        h.log(),
        expect(&[
            (0, "connect #1"),
            (100, "close #1"),
            (100, "offline"),
            (100, "reconnect attempt 1 in 0ns"),
            (100, "connect #2"),
            (
                2100,
                "error: timed out: keepalive: nothing heard from connection #2 for 2s"
            ),
            (2100, "close #2 with error"),
            (2100, "offline"),
            (2100, "reconnect attempt 1 in 0ns"),
            (2100, "connect #3"),
        ])
    );
    assert_eq!(
        h.conn.closes(),
        vec![
            (
                100,
                Call::Close {
                    id: 1,
                    force: false
                }
            ),
            (2100, Call::Close { id: 2, force: true }),
        ]
    );
}

// B9, the early case: a close fed for the connection being made, before `connect` returned,
// is applied once it has (not lost, not applied to another connection).
#[tokio::test(start_paused = true)]
async fn a_close_fed_before_connect_returns_is_applied_to_that_connection() {
    let h = Harness::start(
        vec![
            Step::ClosedBeforeReturn {
                close_at: 10,
                after: 20,
            },
            ok(0),
        ],
        opts(),
    );
    h.until(100).await;
    assert_eq!(
        h.log(),
        expect(&[
            (20, "connect #1"),
            (20, "close #1"),
            (20, "offline"),
            (20, "reconnect attempt 1 in 0ns"),
            (20, "connect #2"),
        ])
    );
}

// B10: connback's `feedError` leaves the connection open.
#[tokio::test(start_paused = true)]
async fn feed_error_closes_the_connection() {
    let h = Harness::start(vec![ok(0)], opts());
    h.until(100).await;
    h.conn
        .feed(1)
        .error(Error::new(ErrorKind::Protocol, "garbage"));
    h.until(200).await;
    assert_eq!(
        h.conn.closes(),
        vec![(100, Call::Close { id: 1, force: true })]
    );
    assert_eq!(
        h.log()[1..3],
        expect(&[
            (100, "error: protocol error: garbage"),
            (100, "close #1 with error"),
        ])
    );
}

// B11: connback drops (does not close) a connection that arrives after cancellation.
#[tokio::test(start_paused = true)]
async fn connection_arriving_after_cancellation_is_closed() {
    let h = Harness::start(
        vec![Step::IgnoreCancel { ok_after: 150 }, ok(0)],
        opts().connect_timeout(ms(100)),
    );
    h.until(1000).await;
    assert_eq!(
        h.log(),
        expect(&[
            (
                100,
                "error: timed out: connect attempt 1 took longer than 100ms"
            ),
            (100, "offline"),
            (100, "reconnect attempt 2 in 100ms"),
            (200, "connect #2"),
        ])
    );
    assert_eq!(
        h.conn.calls(),
        vec![
            (0, Call::Connect { attempt: 1, id: 1 }),
            (100, Call::Cancelled { id: 1 }),
            (150, Call::Close { id: 1, force: true }),
            (200, Call::Connect { attempt: 2, id: 2 }),
        ]
    );
}

// B12: connback swallows the error of the first attempt.
#[tokio::test(start_paused = true)]
async fn first_connect_failure_is_reported_as_error() {
    let h = Harness::start(vec![fail(10)], opts());
    let mut errors = Vec::new();
    let seen = Arc::new(Mutex::new(Vec::new()));
    let s = Arc::clone(&seen);
    let _guard = h.sup.on_error(move |e| s.lock().unwrap().push(e.kind()));
    h.until(20).await;
    errors.extend(seen.lock().unwrap().iter().copied());
    assert_eq!(errors, vec![ErrorKind::ConnectFailed]);
    assert_eq!(
        h.log()[0],
        (
            10,
            "error: connect failed: scripted failure of #1".to_owned()
        )
    );
}

// B13: connback resets its counter on every connection, so a server that accepts and drops
// at once is retried in an undelayed loop.
#[tokio::test(start_paused = true)]
async fn flapping_server_backs_off_until_the_connection_is_stable() {
    let flap = Step::OkThenClose {
        after: 0,
        live: 10,
        had_error: false,
    };
    let mut steps = vec![flap; 5];
    steps.push(Step::OkThenClose {
        after: 0,
        live: 2000,
        had_error: false,
    });
    let h = Harness::start(steps, opts().stable_for(ms(1000)));
    h.until(3300).await;
    let reconnects: Vec<(u64, String)> = h
        .log()
        .into_iter()
        .filter(|(_, e)| e.starts_with("reconnect"))
        .collect();
    assert_eq!(
        reconnects,
        expect(&[
            (10, "reconnect attempt 2 in 100ms"),
            (120, "reconnect attempt 3 in 100ms"),
            (230, "reconnect attempt 4 in 200ms"),
            (440, "reconnect attempt 5 in 300ms"),
            (750, "reconnect attempt 6 in 500ms"),
            // #6 stayed up for 2 s (more than stable_for): a fresh schedule.
            (3250, "reconnect attempt 1 in 0ns"),
        ])
    );
    let connects: Vec<u64> = h.conn.connects().into_iter().map(|(t, _)| t).collect();
    assert_eq!(connects, vec![0, 110, 220, 430, 740, 1250, 3250]);
}

// B13, contrast: with `stable_for` zero every drop starts over (connback's behaviour).
#[tokio::test(start_paused = true)]
async fn without_stable_for_every_drop_starts_a_fresh_schedule() {
    let flap = Step::OkThenClose {
        after: 0,
        live: 10,
        had_error: false,
    };
    let h = Harness::start(vec![flap; 3], opts().stable_for(Duration::ZERO));
    h.until(25).await;
    let connects: Vec<u64> = h.conn.connects().into_iter().map(|(t, _)| t).collect();
    assert_eq!(connects, vec![0, 10, 20]);
}

// B13: with the default `stable_for` (10 s) the flapping case backs off too.
#[tokio::test(start_paused = true)]
async fn default_options_back_off_a_flapping_server() {
    let flap = Step::OkThenClose {
        after: 0,
        live: 0,
        had_error: false,
    };
    let t0 = Instant::now();
    let conn = Scripted::new(t0, vec![flap; 20]);
    let options = Options::builder()
        .jitter(Jitter::None)
        .keepalive(Duration::ZERO)
        .build()
        .unwrap();
    let sup = Supervisor::spawn(conn.clone(), options);
    tokio::time::sleep(ms(10_000)).await;
    let connects: Vec<u64> = conn.connects().into_iter().map(|(t, _)| t).collect();
    // 1 s, 1 s, 2 s, 3 s apart: not a hot loop.
    assert_eq!(connects, vec![0, 1000, 2000, 4000, 7000]);
    drop(sup);
}

// B14: connback stalls silently once its attempts are exhausted.
#[tokio::test(start_paused = true)]
async fn exhausted_attempts_report_gave_up() {
    let h = Harness::start(vec![fail(10); 5], opts().max_attempts(3));
    h.until(2000).await;
    assert_eq!(
        h.log(),
        expect(&[
            (10, "error: connect failed: scripted failure of #1"),
            (10, "offline"),
            (10, "reconnect attempt 2 in 100ms"),
            (120, "error: connect failed: scripted failure of #2"),
            (120, "reconnect attempt 3 in 100ms"),
            (230, "error: connect failed: scripted failure of #3"),
            (230, "gave up after 3 attempts"),
        ])
    );
    assert_eq!(h.sup.current_state(), State::GaveUp);
    assert!(h.rec.events().contains(&Event::GaveUp { attempts: 3 }));
    let err = h.sup.connected().await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::ConnectFailed);
}

// B14, flapping: unstable connections count towards the limit.
#[tokio::test(start_paused = true)]
async fn max_attempts_also_bounds_a_flapping_server() {
    let flap = Step::OkThenClose {
        after: 0,
        live: 10,
        had_error: false,
    };
    let h = Harness::start(vec![flap; 10], opts().stable_for(ms(1000)).max_attempts(3));
    h.until(5000).await;
    assert_eq!(h.conn.connects().len(), 3);
    assert_eq!(
        h.log().last().unwrap(),
        &(230, "gave up after 3 attempts".to_owned())
    );
}

// B15: connback validates `maxDelay > initialDelay` lazily, throwing from an event listener.
#[test]
fn invalid_options_are_rejected_at_build() {
    use connkit_core::backoff::BackoffError;
    let err = |b: connkit_reconnect::OptionsBuilder| b.build().unwrap_err();
    assert!(matches!(
        err(Options::builder()
            .initial_delay(ms(5000))
            .max_delay(ms(1000))),
        OptionsError::Backoff(BackoffError::MaxBelowInitial { .. })
    ));
    assert_eq!(
        err(Options::builder()
            .strategy(Strategy::Exponential)
            .factor(0.5)),
        OptionsError::Backoff(BackoffError::InvalidFactor(0.5))
    );
    assert_eq!(
        err(Options::builder().max_attempts(0)),
        OptionsError::Backoff(BackoffError::ZeroMaxAttempts)
    );
    assert_eq!(
        err(Options::builder().initial_delay(Duration::ZERO)),
        OptionsError::ZeroInitialDelay
    );
    assert_eq!(
        err(Options::builder().connect_timeout(Duration::ZERO)),
        OptionsError::ZeroConnectTimeout
    );
    assert_eq!(
        err(Options::builder().keepalive_timeout(Duration::ZERO)),
        OptionsError::ZeroKeepaliveTimeout
    );
    // A disabled keepalive needs no timeout; "no connect timeout" is explicit.
    assert!(
        Options::builder()
            .keepalive(Duration::ZERO)
            .no_connect_timeout()
            .build()
            .is_ok()
    );
    assert!(
        err(Options::builder().max_delay(ms(1)))
            .to_string()
            .contains("below")
    );
}

// B16: connback's user `close` listeners run after `offline` and `reconnect`.
#[tokio::test(start_paused = true)]
async fn close_is_emitted_before_offline_and_reconnect() {
    let h = Harness::start(
        vec![
            Step::OkThenClose {
                after: 0,
                live: 100,
                had_error: false,
            },
            Step::OkThenClose {
                after: 0,
                live: 100,
                had_error: true,
            },
        ],
        opts(),
    );
    h.until(150).await;
    let events = h.rec.events();
    let order: Vec<&str> = events
        .iter()
        .map(|e| match e {
            Event::Connect { .. } => "connect",
            Event::Close { .. } => "close",
            Event::Offline => "offline",
            Event::Reconnect { .. } => "reconnect",
            Event::Error(_) => "error",
            Event::GaveUp { .. } => "gave up",
            Event::End => "end",
            _ => "other",
        })
        .collect();
    assert_eq!(
        order,
        ["connect", "close", "offline", "reconnect", "connect"]
    );
}

// A fatal error (bad credentials, bad address) ends the loop at once.
#[tokio::test(start_paused = true)]
async fn fatal_connect_error_gives_up_at_once() {
    let h = Harness::start(
        vec![
            fail(0),
            Step::Fail {
                after: 0,
                kind: ErrorKind::Tls,
            },
        ],
        opts(),
    );
    h.until(5000).await;
    assert_eq!(
        h.log(),
        expect(&[
            (0, "error: connect failed: scripted failure of #1"),
            (0, "offline"),
            (0, "reconnect attempt 2 in 100ms"),
            (100, "error: tls error: scripted failure of #2"),
            (100, "gave up after 2 attempts"),
        ])
    );
    assert_eq!(h.conn.connects().len(), 2);
}

// A fed error that is fatal stops reconnecting too.
#[tokio::test(start_paused = true)]
async fn fatal_fed_error_gives_up_after_closing() {
    let h = Harness::start(vec![ok(0)], opts());
    h.until(100).await;
    h.sup
        .feed_error(h.id(1), Error::new(ErrorKind::Handshake, "auth revoked"));
    h.until(1000).await;
    assert_eq!(
        h.log(),
        expect(&[
            (0, "connect #1"),
            (100, "error: handshake rejected: auth revoked"),
            (100, "close #1 with error"),
            (100, "offline"),
            (100, "gave up after 0 attempts"),
        ])
    );
    assert_eq!(
        h.conn.closes(),
        vec![(100, Call::Close { id: 1, force: true })]
    );
}

// A failing ping is an error of that connection.
#[tokio::test(start_paused = true)]
async fn ping_failure_is_treated_as_a_connection_error() {
    let h = Harness::start(vec![ok(0), ok(0)], opts().keepalive(ms(1000)));
    h.conn.fail_pings(Some(ErrorKind::Closed));
    h.until(1500).await;
    assert_eq!(
        h.log()[..4],
        expect(&[
            (0, "connect #1"),
            (1000, "error: connection closed: scripted ping failure"),
            (1000, "close #1 with error"),
            (1000, "offline"),
        ])
    );
}

// Dropping the last handle ends the supervisor like `end(false)`.
#[tokio::test(start_paused = true)]
async fn dropping_the_last_handle_ends_the_supervisor() {
    let h = Harness::start(vec![ok(0)], opts());
    let mut state = h.sup.state();
    let mut events = h.sup.events();
    h.until(100).await;
    let feed = h.conn.feed(1);
    let common::Harness { sup, conn, rec, .. } = h;
    let clone = sup.clone();
    drop(sup);
    tokio::time::sleep(ms(10)).await;
    assert_eq!(
        *state.borrow_and_update(),
        State::Connected { id: feed.id() }
    );
    drop(clone);
    state.wait_for(|s| *s == State::Ended).await.unwrap();
    assert_eq!(
        events.next().await.unwrap().unwrap().to_string(),
        "connect #1"
    );
    assert_eq!(
        events.next().await.unwrap().unwrap().to_string(),
        "close #1"
    );
    assert_eq!(events.next().await, Some(Ok(Event::End)));
    assert_eq!(events.next().await, None);
    assert_eq!(
        conn.closes(),
        vec![(
            110,
            Call::Close {
                id: 1,
                force: false
            }
        )]
    );
    // A feed held by a reader does not keep the supervisor alive, and is harmless after.
    feed.close(true);
    assert_eq!(rec.log().last().unwrap().1, "end");
}

// `end` is idempotent across clones and concurrent calls: one `End`, one close.
#[tokio::test(start_paused = true)]
async fn end_is_idempotent() {
    let h = Harness::start(vec![ok(0)], opts());
    h.until(10).await;
    let a = h.sup.clone();
    let b = h.sup.clone();
    tokio::join!(a.end(true), b.end(false), h.sup.end(false));
    assert_eq!(
        h.log(),
        expect(&[(0, "connect #1"), (10, "close #1"), (10, "end")])
    );
    assert_eq!(
        h.conn.closes(),
        vec![(10, Call::Close { id: 1, force: true })]
    );
    assert!(h.sup.connected().await.is_err());
}

// The event stream and the callbacks see the same events in the same order; an
// unsubscribed callback sees nothing more.
#[tokio::test(start_paused = true)]
async fn stream_and_callbacks_agree_and_unsubscribe_works() {
    let t0 = Instant::now();
    let conn = Scripted::new(
        t0,
        vec![
            fail(0),
            Step::OkThenClose {
                after: 0,
                live: 50,
                had_error: true,
            },
            ok(0),
        ],
    );
    let sup = Supervisor::new(conn, opts().build().unwrap());
    let mut stream = sup.events();
    let seen = Arc::new(Mutex::new(Vec::new()));
    let s = Arc::clone(&seen);
    let all = sup.on_event(move |e| s.lock().unwrap().push(e.clone()));
    let counts = Arc::new(AtomicU32::new(0));
    let bump = |by: u32| {
        let c = Arc::clone(&counts);
        move || {
            c.fetch_add(by, Ordering::SeqCst);
        }
    };
    let connect = bump(1000);
    let _connect = sup.on_connect(move |id, conn: &TestConn| {
        assert_eq!(id.get(), conn.0);
        connect();
    });
    let offline = sup.on_offline(bump(100));
    let reconnect = bump(10);
    let _reconnect = sup.on_reconnect(move |_, _| reconnect());
    let close = bump(1);
    let _close = sup.on_close(move |_, _| close());
    let gave_up = bump(1_000_000);
    let _gave_up = sup.on_gave_up(move |_| gave_up());
    let _end = sup.on_end(bump(10_000));
    sup.start();
    // offline at 0, connect #2 at 100, close + offline + connect #3 at 150.
    tokio::time::sleep(ms(120)).await;
    offline.unsubscribe();
    tokio::time::sleep(ms(1000)).await;
    sup.end(false).await;
    drop(all);
    let mut from_stream = Vec::new();
    while let Some(e) = stream.next().await {
        from_stream.push(e.unwrap());
    }
    assert_eq!(*seen.lock().unwrap(), from_stream);
    assert_eq!(from_stream.len(), 10);
    // 2 connects, 1 offline (the second came after unsubscribing), 2 reconnects, 2 closes
    // (#2 dropped, #3 closed by `end`), 1 end, no gave-up.
    assert_eq!(counts.load(Ordering::SeqCst), 2000 + 100 + 20 + 2 + 10_000);
}

// Full jitter with a seed: delays stay within [0, base] and repeat run after run.
#[tokio::test(start_paused = true)]
async fn seeded_full_jitter_is_bounded_and_repeatable() {
    async fn delays(seed: u64) -> Vec<Duration> {
        let h = Harness::start(
            vec![fail(0); 8],
            opts().jitter(Jitter::Full).seed(seed).max_attempts(8),
        );
        h.until(20_000).await;
        h.rec
            .events()
            .into_iter()
            .filter_map(|e| match e {
                Event::Reconnect { delay, .. } => Some(delay),
                _ => None,
            })
            .collect()
    }
    let a = delays(7).await;
    assert_eq!(a, delays(7).await);
    assert_ne!(a, delays(8).await);
    let policy = opts().jitter(Jitter::None).build().unwrap();
    let base: Vec<Duration> = policy.backoff().new_schedule().skip(1).take(7).collect();
    assert_eq!(a.len(), 7);
    for (d, b) in a.iter().zip(&base) {
        assert!(d <= b, "{d:?} > {b:?}");
    }
}

// `delay_first_attempt` waits before the very first attempt too.
#[tokio::test(start_paused = true)]
async fn delay_first_attempt_delays_the_first_connect() {
    let h = Harness::start(vec![ok(0)], opts().delay_first_attempt(true));
    h.until(50).await;
    assert!(matches!(
        h.sup.current_state(),
        State::Backoff { attempt: 1, .. }
    ));
    h.until(500).await;
    assert_eq!(h.log(), expect(&[(100, "connect #1")]));
}

// `connected()` waits through failed attempts for the first connection.
#[tokio::test(start_paused = true)]
async fn connected_waits_for_the_first_connection() {
    let h = Harness::start(vec![fail(10), ok(10)], opts());
    let (id, conn) = h.sup.connected().await.unwrap();
    assert_eq!(id.get(), 2);
    assert_eq!(conn, TestConn(2));
    assert_eq!(common::elapsed(h.t0), 120);
}

// A supervisor made with `new` does nothing until `start`; `end` before `start` ends it.
#[tokio::test(start_paused = true)]
async fn nothing_happens_before_start() {
    let t0 = Instant::now();
    let conn = Scripted::new(t0, vec![]);
    let sup = Supervisor::new(conn.clone(), opts().build().unwrap());
    let mut events = sup.events();
    tokio::time::sleep(ms(1000)).await;
    assert_eq!(sup.current_state(), State::Idle);
    assert!(conn.calls().is_empty());
    sup.end(false).await;
    assert_eq!(events.next().await, Some(Ok(Event::End)));
    assert_eq!(events.next().await, None);
    assert!(sup.events().next().await.is_none());
    sup.start();
    tokio::time::sleep(ms(1000)).await;
    assert!(conn.calls().is_empty());
}

// A connector that panics is a failed attempt, not a wedged supervisor.
#[tokio::test(start_paused = true)]
async fn a_panicking_connector_is_a_failed_attempt() {
    let h = Harness::start(vec![Step::Panic, ok(0)], opts());
    h.until(500).await;
    assert_eq!(
        h.log(),
        expect(&[
            (
                0,
                "error: connect failed: the connect task ended without a result (did the connector panic?)"
            ),
            (0, "offline"),
            (0, "reconnect attempt 2 in 100ms"),
            (100, "connect #2"),
        ])
    );
}
