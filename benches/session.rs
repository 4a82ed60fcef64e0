//! connkit-session: reading a backend's status stream (SSE framing and the status JSON).

use connkit::session::BackendState;
use connkit::session::sse::SseParser;
use criterion::{Criterion, Throughput};
use std::hint::black_box;

/// A status stream as the dev server and Plane send it: 1000 events, read in 1 KiB chunks,
/// each event's data parsed into a [`BackendState`].
pub(crate) fn status_stream(c: &mut Criterion) {
    let mut g = c.benchmark_group("session/status stream");
    let statuses = ["scheduled", "loading", "starting", "waiting", "ready"];
    let mut stream = String::new();
    for i in 0..1000u64 {
        let status = statuses[(i % 5) as usize];
        stream.push_str(&format!(
            "data: {{\"status\":\"{status}\",\"time\":{}}}\nid: {status}\n\n",
            1_700_000_000_000 + i
        ));
        if i % 100 == 0 {
            stream.push_str(": keep-alive\n\n");
        }
    }
    let bytes = stream.into_bytes();
    g.throughput(Throughput::Elements(1000));
    g.bench_function("parse 1000 events in 1 KiB chunks", |b| {
        b.iter(|| {
            let mut parser = SseParser::new();
            let mut ready = 0u32;
            for chunk in bytes.chunks(1024) {
                for event in parser.feed(chunk) {
                    let state: BackendState = serde_json::from_str(&event.data)
                        .unwrap_or_else(|e| panic!("bad status: {e}"));
                    ready += u32::from(state.status.as_str() == "ready");
                }
            }
            assert_eq!(ready, 200);
            black_box(ready)
        });
    });
    g.finish();
}
