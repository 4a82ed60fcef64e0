//! The scenarios of `@connback/core` (spec §4), each with the exact event order and timing
//! we guarantee (spec §9). Where our order differs from the reference, the comment says so;
//! `docs/reconnect.md` has the table.
//!
//! Options as in the spec's traces: initial delay 100 ms, max delay 1 s, no jitter,
//! fibonacci, keepalive off, `stable_for` zero (so a drop starts a fresh schedule, as
//! connback does) unless the test says otherwise.

mod common;

use common::{Call, Harness, Step, expect, fail, ms, ok, opts};
use connkit_reconnect::State;
use futures_util::StreamExt;
use std::time::Duration;

// §4.1 First connect succeeds: `connect`, nothing else.
#[tokio::test(start_paused = true)]
async fn s4_1_first_connect_succeeds() {
    let h = Harness::start(vec![ok(10)], opts());
    h.until(5).await;
    assert_eq!(h.sup.current_state(), State::Connecting { attempt: 1 });
    assert_eq!(h.sup.current(), None);
    h.until(1000).await;
    assert_eq!(h.log(), expect(&[(10, "connect #1")]));
    assert_eq!(
        h.conn.calls(),
        vec![(0, Call::Connect { attempt: 1, id: 1 })]
    );
    let (id, conn) = h.sup.current_with_id().unwrap();
    assert_eq!(h.sup.current_state(), State::Connected { id });
    assert_eq!(conn.0, 1);
}

// §4.2 First connect fails, then retries. Differences from connback: the first failure is
// reported (`error`, B12); the initial attempt is attempt 1 of the schedule, so the first
// retry waits the initial delay instead of running at once; no `close` after failed
// attempts (there was no connection); `reconnect` is emitted when the retry is scheduled
// and carries its delay.
#[tokio::test(start_paused = true)]
async fn s4_2_first_connect_fails_then_retries_with_backoff() {
    let h = Harness::start(vec![fail(10), fail(10), fail(10), fail(10), ok(10)], opts());
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
            (230, "reconnect attempt 4 in 200ms"),
            (440, "error: connect failed: scripted failure of #4"),
            (440, "reconnect attempt 5 in 300ms"),
            (750, "connect #5"),
        ])
    );
    assert_eq!(
        h.conn.connects(),
        vec![
            (0, Call::Connect { attempt: 1, id: 1 }),
            (110, Call::Connect { attempt: 2, id: 2 }),
            (220, Call::Connect { attempt: 3, id: 3 }),
            (430, Call::Connect { attempt: 4, id: 4 }),
            (740, Call::Connect { attempt: 5, id: 5 }),
        ]
    );
}

// §4.2, state while waiting: `Backoff { attempt, until }`.
#[tokio::test(start_paused = true)]
async fn s4_2_state_shows_the_backoff_wait() {
    let h = Harness::start(vec![fail(10)], opts());
    h.until(50).await;
    assert_eq!(
        h.sup.current_state(),
        State::Backoff {
            attempt: 2,
            until: h.t0 + ms(110)
        }
    );
}

// §4.3 Connect timeout. connback emits `connect(undefined)` (B1); we cancel the token,
// report a `TimedOut` error and retry.
#[tokio::test(start_paused = true)]
async fn s4_3_connect_timeout_cancels_and_retries() {
    let h = Harness::start(vec![Step::Hang, ok(10)], opts().connect_timeout(ms(200)));
    h.until(1000).await;
    assert_eq!(
        h.log(),
        expect(&[
            (
                200,
                "error: timed out: connect attempt 1 took longer than 200ms"
            ),
            (200, "offline"),
            (200, "reconnect attempt 2 in 100ms"),
            (310, "connect #2"),
        ])
    );
    assert_eq!(
        h.conn.calls(),
        vec![
            (0, Call::Connect { attempt: 1, id: 1 }),
            (200, Call::Cancelled { id: 1 }),
            (300, Call::Connect { attempt: 2, id: 2 }),
        ]
    );
}

// §4.4 Keepalive timeout (keepalive 1 s, a ping that is never answered). connback emits a
// spurious `end` and stops reconnecting (B2). We ping after 1 s of silence, declare the
// connection dead after keepalive + keepalive timeout (2 s) without a heartbeat, and run
// the normal outage path: error, close (forced), offline, reconnect.
#[tokio::test(start_paused = true)]
async fn s4_4_keepalive_timeout() {
    let h = Harness::start(vec![ok(0), ok(0)], opts().keepalive(ms(1000)));
    h.until(2500).await;
    assert_eq!(
        h.log(),
        expect(&[
            (0, "connect #1"),
            (
                2000,
                "error: timed out: keepalive: nothing heard from connection #1 for 2s"
            ),
            (2000, "close #1 with error"),
            (2000, "offline"),
            (2000, "reconnect attempt 1 in 0ns"),
            (2000, "connect #2"),
        ])
    );
    assert_eq!(
        h.conn.calls(),
        vec![
            (0, Call::Connect { attempt: 1, id: 1 }),
            (1000, Call::Ping { id: 1 }),
            (2000, Call::Close { id: 1, force: true }),
            (2000, Call::Connect { attempt: 1, id: 2 }),
        ]
    );
    assert!(!h.sup.is_ended());
}

// §4.4 with a peer that answers: heartbeats keep the connection up indefinitely.
#[tokio::test(start_paused = true)]
async fn s4_4_answered_pings_keep_the_connection() {
    let h = Harness::start(vec![ok(0)], opts().keepalive(ms(1000)));
    h.conn.answer_pings_after(Some(300));
    h.until(10_000).await;
    assert_eq!(h.log(), expect(&[(0, "connect #1")]));
    // A heartbeat defers the next ping: ping, answer 300 ms later, ping 1 s after that.
    assert_eq!(
        h.conn.pings(),
        vec![1000, 2300, 3600, 4900, 6200, 7500, 8800]
    );
}

// §4.5 Server closes the connection. connback: offline, reconnect, connect#2, then the
// user's `close`. We emit `close` first (B16), and `connector.close` is called for the
// dead connection too (every connection is closed exactly once).
#[tokio::test(start_paused = true)]
async fn s4_5_server_closes_the_connection() {
    let h = Harness::start(
        vec![
            Step::OkThenClose {
                after: 0,
                live: 500,
                had_error: false,
            },
            ok(10),
        ],
        opts(),
    );
    h.until(1000).await;
    assert_eq!(
        h.log(),
        expect(&[
            (0, "connect #1"),
            (500, "close #1"),
            (500, "offline"),
            (500, "reconnect attempt 1 in 0ns"),
            (510, "connect #2"),
        ])
    );
    assert_eq!(
        h.conn.calls(),
        vec![
            (0, Call::Connect { attempt: 1, id: 1 }),
            (
                500,
                Call::Close {
                    id: 1,
                    force: false
                }
            ),
            (500, Call::Connect { attempt: 1, id: 2 }),
        ]
    );
}

// §4.5 with `feedClose(true)`: the payload says so.
#[tokio::test(start_paused = true)]
async fn s4_5_server_closes_with_error() {
    let h = Harness::start(
        vec![Step::OkThenClose {
            after: 0,
            live: 500,
            had_error: true,
        }],
        opts(),
    );
    h.until(600).await;
    assert_eq!(
        h.log(),
        expect(&[
            (0, "connect #1"),
            (500, "close #1 with error"),
            (500, "offline"),
            (500, "reconnect attempt 1 in 0ns"),
            (500, "connect #2"),
        ])
    );
}

// §4.5 when the retries fail: one `error` per failure and a growing delay; no `close` per
// failed attempt (connback emits `close(undefined)` after each).
#[tokio::test(start_paused = true)]
async fn s4_5_server_closes_and_retries_fail() {
    let h = Harness::start(
        vec![
            Step::OkThenClose {
                after: 0,
                live: 500,
                had_error: false,
            },
            fail(10),
            fail(10),
            ok(0),
        ],
        opts(),
    );
    h.until(1000).await;
    assert_eq!(
        h.log(),
        expect(&[
            (0, "connect #1"),
            (500, "close #1"),
            (500, "offline"),
            (500, "reconnect attempt 1 in 0ns"),
            (510, "error: connect failed: scripted failure of #2"),
            (510, "reconnect attempt 2 in 100ms"),
            (620, "error: connect failed: scripted failure of #3"),
            (620, "reconnect attempt 3 in 100ms"),
            (720, "connect #4"),
        ])
    );
}

// §4.5 `feedError` while connected. connback: error, offline, reconnect, close, and the old
// connection is never closed (B10). We: error, close (with error), offline, reconnect, and
// `connector.close(conn, force = true)`.
#[tokio::test(start_paused = true)]
async fn s4_5_feed_error_while_connected() {
    let h = Harness::start(vec![ok(0), ok(10)], opts());
    h.until(500).await;
    h.sup.feed_error(
        h.id(1),
        connkit_reconnect::Error::new(connkit_reconnect::ErrorKind::Io, "reset by peer"),
    );
    h.until(1000).await;
    assert_eq!(
        h.log(),
        expect(&[
            (0, "connect #1"),
            (500, "error: i/o error: reset by peer"),
            (500, "close #1 with error"),
            (500, "offline"),
            (500, "reconnect attempt 1 in 0ns"),
            (510, "connect #2"),
        ])
    );
    assert_eq!(
        h.conn.closes(),
        vec![(500, Call::Close { id: 1, force: true })]
    );
}

// §4.6 `end()` during the initial attempt. connback does not cancel it; a late success
// emits `connect` after `end` and leaks (B7). We cancel the attempt, emit only `end`, and
// close the connection the connector returns anyway.
#[tokio::test(start_paused = true)]
async fn s4_6_end_during_the_first_attempt() {
    let h = Harness::start(vec![Step::IgnoreCancel { ok_after: 100 }], opts());
    h.until(50).await;
    h.sup.end(false).await;
    assert_eq!(h.sup.current_state(), State::Ended);
    h.until(1000).await;
    assert_eq!(h.log(), expect(&[(50, "end")]));
    assert_eq!(
        h.conn.calls(),
        vec![
            (0, Call::Connect { attempt: 1, id: 1 }),
            (50, Call::Cancelled { id: 1 }),
            (100, Call::Close { id: 1, force: true }),
        ]
    );
}

// §4.6 `end()` during a backoff delay. connback then emits a spurious `error(Canceled)` and
// `close` (B8). We emit `end` and nothing after it.
#[tokio::test(start_paused = true)]
async fn s4_6_end_during_a_backoff_delay() {
    let h = Harness::start(vec![fail(10)], opts());
    let mut events = h.sup.events();
    h.until(50).await;
    h.sup.end(false).await;
    h.until(5000).await;
    assert_eq!(
        h.log(),
        expect(&[
            (10, "error: connect failed: scripted failure of #1"),
            (10, "offline"),
            (10, "reconnect attempt 2 in 100ms"),
            (50, "end"),
        ])
    );
    assert_eq!(h.conn.connects().len(), 1);
    // The stream ends after `End`.
    let mut streamed = Vec::new();
    while let Some(e) = events.next().await {
        streamed.push(e.unwrap().to_string());
    }
    assert_eq!(streamed.last().map(String::as_str), Some("end"));
    assert_eq!(streamed.len(), 4);
}

// §4.6 `end()` during a reconnect attempt: the attempt is cancelled, no error follows.
#[tokio::test(start_paused = true)]
async fn s4_6_end_during_a_reconnect_attempt() {
    let h = Harness::start(vec![fail(10), Step::Hang], opts());
    h.until(150).await;
    h.sup.end(true).await;
    h.until(5000).await;
    assert_eq!(
        h.log(),
        expect(&[
            (10, "error: connect failed: scripted failure of #1"),
            (10, "offline"),
            (10, "reconnect attempt 2 in 100ms"),
            (150, "end"),
        ])
    );
    assert_eq!(
        h.conn.calls(),
        vec![
            (0, Call::Connect { attempt: 1, id: 1 }),
            (110, Call::Connect { attempt: 2, id: 2 }),
            (150, Call::Cancelled { id: 2 }),
        ]
    );
}

// §4.7 `end()` while connected: the connection is closed (with the given `force`), `close`
// then `end` are emitted, and a second `end()` does nothing. connback emits no `close`
// until the transport reports it, and keeps `connected` true meanwhile.
#[tokio::test(start_paused = true)]
async fn s4_7_end_while_connected() {
    let h = Harness::start(vec![ok(0)], opts().keepalive(ms(1000)));
    h.until(100).await;
    h.sup.end(true).await;
    assert!(h.sup.is_ended());
    assert_eq!(h.sup.current(), None);
    h.sup.end(false).await;
    h.sup.feed_close(h.id(1), true);
    h.sup.reconnect();
    h.until(5000).await;
    assert_eq!(
        h.log(),
        expect(&[(0, "connect #1"), (100, "close #1"), (100, "end")])
    );
    // The keepalive stopped with it: no ping at 1000 ms.
    assert_eq!(
        h.conn.calls(),
        vec![
            (0, Call::Connect { attempt: 1, id: 1 }),
            (100, Call::Close { id: 1, force: true }),
        ]
    );
}

// §4.8 `reconnect()` after `end()`. connback revives the instance for one attempt; we keep
// `end` final (nothing is emitted after `End`).
#[tokio::test(start_paused = true)]
async fn s4_8_reconnect_after_end_does_nothing() {
    let h = Harness::start(vec![ok(0)], opts());
    h.until(10).await;
    h.sup.end(false).await;
    h.sup.reconnect();
    h.until(1000).await;
    assert_eq!(
        h.log(),
        expect(&[(0, "connect #1"), (10, "close #1"), (10, "end")])
    );
    assert_eq!(h.conn.connects().len(), 1);
    assert_eq!(h.sup.current_state(), State::Ended);
}

// §4.8 `reconnect()` while connected. connback emits `end` and usually ends dead (B3). We
// close the connection gracefully and reconnect with a fresh schedule.
#[tokio::test(start_paused = true)]
async fn s4_8_reconnect_while_connected() {
    let h = Harness::start(vec![ok(0), ok(10)], opts().stable_for(ms(60_000)));
    h.until(100).await;
    h.sup.reconnect();
    h.until(1000).await;
    assert_eq!(
        h.log(),
        expect(&[
            (0, "connect #1"),
            (100, "close #1"),
            (100, "offline"),
            (100, "reconnect attempt 1 in 0ns"),
            (110, "connect #2"),
        ])
    );
    assert_eq!(
        h.conn.calls(),
        vec![
            (0, Call::Connect { attempt: 1, id: 1 }),
            (
                100,
                Call::Close {
                    id: 1,
                    force: false
                }
            ),
            (100, Call::Connect { attempt: 1, id: 2 }),
        ]
    );
}

// §4.8 `reconnect()` during a backoff cycle. connback runs a second, parallel attempt.
// We skip the rest of the wait and make one attempt now, with a fresh schedule.
#[tokio::test(start_paused = true)]
async fn s4_8_reconnect_during_backoff() {
    let h = Harness::start(vec![fail(10), ok(10)], opts().initial_delay(ms(1000)));
    h.until(50).await;
    h.sup.reconnect();
    h.until(5000).await;
    assert_eq!(
        h.log(),
        expect(&[
            (10, "error: connect failed: scripted failure of #1"),
            (10, "offline"),
            (10, "reconnect attempt 2 in 1s"),
            (50, "reconnect attempt 1 in 0ns"),
            (60, "connect #2"),
        ])
    );
    assert_eq!(
        h.conn.connects(),
        vec![
            (0, Call::Connect { attempt: 1, id: 1 }),
            (50, Call::Connect { attempt: 1, id: 2 }),
        ]
    );
}

// §4.8 `reconnect()` while an attempt runs: ignored, never a second attempt in parallel.
#[tokio::test(start_paused = true)]
async fn s4_8_reconnect_during_an_attempt_is_ignored() {
    let h = Harness::start(vec![ok(100)], opts());
    h.until(50).await;
    h.sup.reconnect();
    h.until(1000).await;
    assert_eq!(h.log(), expect(&[(100, "connect #1")]));
    assert_eq!(h.conn.connects().len(), 1);
}

// §5 `offline` is emitted once per outage, not per failed attempt.
#[tokio::test(start_paused = true)]
async fn s5_offline_once_per_outage() {
    let h = Harness::start(
        vec![
            fail(0),
            fail(0),
            Step::OkThenClose {
                after: 0,
                live: 1000,
                had_error: false,
            },
            fail(0),
            ok(0),
        ],
        opts(),
    );
    h.until(5000).await;
    let offline: Vec<u64> = h
        .log()
        .into_iter()
        .filter(|(_, e)| e == "offline")
        .map(|(t, _)| t)
        .collect();
    // Outage 1: the first connect failed at 0. Outage 2: connection #3 dropped at 1200.
    assert_eq!(offline, vec![0, 1200]);
}

// §7 the delays themselves: fibonacci 100, 100, 200, 300, 500, 800, then capped at 1 s.
#[tokio::test(start_paused = true)]
async fn s7_fibonacci_delays_are_capped() {
    let h = Harness::start(vec![fail(0); 10], opts().max_attempts(10));
    h.until(60_000).await;
    let delays: Vec<String> = h
        .log()
        .into_iter()
        .filter_map(|(_, e)| e.strip_prefix("reconnect ").map(str::to_owned))
        .collect();
    assert_eq!(
        delays,
        [
            "attempt 2 in 100ms",
            "attempt 3 in 100ms",
            "attempt 4 in 200ms",
            "attempt 5 in 300ms",
            "attempt 6 in 500ms",
            "attempt 7 in 800ms",
            "attempt 8 in 1s",
            "attempt 9 in 1s",
            "attempt 10 in 1s",
        ]
    );
    let connect_times: Vec<u64> = h.conn.connects().into_iter().map(|(t, _)| t).collect();
    assert_eq!(
        connect_times,
        [0, 100, 200, 400, 700, 1200, 2000, 3000, 4000, 5000]
    );
    assert_eq!(
        h.log().last().unwrap(),
        &(5000, "gave up after 10 attempts".to_owned())
    );
    let _ = Duration::ZERO;
}
