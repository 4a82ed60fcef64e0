//! A small incremental parser for `text/event-stream` (server-sent events), as the
//! [WHATWG spec](https://html.spec.whatwg.org/multipage/server-sent-events.html) describes it.
//!
//! Feed it the body in whatever chunks the network delivers; it keeps a partial line until
//! its end arrives, so the events are the same however the bytes were split. It handles
//! `\n`, `\r\n` and `\r` line ends (also split across chunks), a leading BOM, multi-line
//! `data`, `event`, `id` (kept across events, as the last event id to resume from), `retry`,
//! comments (`:` lines, used as keep-alives) and `data:` with or without a space.
//!
//! Memory is bounded: a line longer than the limit is dropped (and counted), and so is an
//! event whose data would grow past it.
//!
//! ```
//! use connkit_session::sse::SseParser;
//! let mut p = SseParser::new();
//! let mut events = p.feed(b"id: ready\nda");
//! assert!(events.is_empty()); // the line is not complete yet
//! events = p.feed(b"ta: {\"status\":\"ready\"}\n\n");
//! assert_eq!(events[0].data, r#"{"status":"ready"}"#);
//! assert_eq!(events[0].id.as_deref(), Some("ready"));
//! assert_eq!(p.last_event_id(), Some("ready"));
//! ```

use std::time::Duration;

/// The default longest line and longest event data: 1 MiB.
pub const DEFAULT_MAX_LINE: usize = 1024 * 1024;

/// One dispatched event.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct SseEvent {
    /// The `event` field, if one was given (the spec's default type is `message`).
    pub event: Option<String>,
    /// The data lines joined with `\n`.
    pub data: String,
    /// The last event id at dispatch time (ids persist across events).
    pub id: Option<String>,
}

/// The incremental parser. See the [module docs](self).
#[derive(Debug, Clone)]
pub struct SseParser {
    line: Vec<u8>,
    discarding: bool,
    after_cr: bool,
    started: bool,
    bom_seen: u8,
    data: String,
    has_data: bool,
    event: Option<String>,
    last_id: Option<String>,
    retry: Option<Duration>,
    comments: u64,
    dropped_lines: u64,
    max_line: usize,
}

impl Default for SseParser {
    fn default() -> Self {
        Self::new()
    }
}

impl SseParser {
    /// A parser with the default limit ([`DEFAULT_MAX_LINE`]).
    #[must_use]
    pub fn new() -> Self {
        Self::with_max_line(DEFAULT_MAX_LINE)
    }

    /// A parser that drops lines (and event data) longer than `max_line` bytes.
    #[must_use]
    pub fn with_max_line(max_line: usize) -> Self {
        Self {
            line: Vec::new(),
            discarding: false,
            after_cr: false,
            started: false,
            bom_seen: 0,
            data: String::new(),
            has_data: false,
            event: None,
            last_id: None,
            retry: None,
            comments: 0,
            dropped_lines: 0,
            max_line: max_line.max(1),
        }
    }

    /// Start with this last event id (as a reconnecting client does).
    #[must_use]
    pub fn with_last_event_id(mut self, id: Option<String>) -> Self {
        self.last_id = id;
        self
    }

    /// The last event id seen (to send back as `Last-Event-ID`).
    #[must_use]
    pub fn last_event_id(&self) -> Option<&str> {
        self.last_id.as_deref()
    }

    /// The last `retry` the server asked for.
    #[must_use]
    pub fn retry(&self) -> Option<Duration> {
        self.retry
    }

    /// How many comment lines (keep-alives) have been seen.
    #[must_use]
    pub fn comments(&self) -> u64 {
        self.comments
    }

    /// How many over-long lines (or over-long event data) were dropped.
    #[must_use]
    pub fn dropped_lines(&self) -> u64 {
        self.dropped_lines
    }

    /// Parse the next chunk of the body and return the events it completed.
    pub fn feed(&mut self, chunk: &[u8]) -> Vec<SseEvent> {
        let mut out = Vec::new();
        let mut bytes = chunk;
        if !self.started {
            // A UTF-8 BOM may open the stream, possibly split across chunks.
            const BOM: &[u8] = b"\xEF\xBB\xBF";
            let mut i = 0;
            while !self.started && i < bytes.len() {
                let seen = usize::from(self.bom_seen);
                if BOM.get(seen) == Some(&bytes[i]) {
                    self.bom_seen += 1;
                    i += 1;
                    self.started = usize::from(self.bom_seen) == BOM.len();
                } else {
                    // Not a BOM after all: the bytes held back are ordinary content.
                    self.line.extend_from_slice(&BOM[..seen]);
                    self.started = true;
                }
            }
            bytes = &bytes[i..];
        }
        for &b in bytes {
            if self.after_cr {
                self.after_cr = false;
                if b == b'\n' {
                    continue;
                }
            }
            match b {
                b'\n' => self.end_line(&mut out),
                b'\r' => {
                    self.end_line(&mut out);
                    self.after_cr = true;
                }
                _ => {
                    if self.discarding {
                        continue;
                    }
                    if self.line.len() >= self.max_line {
                        self.line.clear();
                        self.discarding = true;
                        self.dropped_lines += 1;
                    } else {
                        self.line.push(b);
                    }
                }
            }
        }
        out
    }

    /// The body ended. An event without its closing blank line is discarded, as the spec
    /// says; the partial line is dropped. The last event id is kept.
    pub fn finish(&mut self) {
        self.line.clear();
        self.discarding = false;
        self.after_cr = false;
        self.started = false;
        self.bom_seen = 0;
        self.data.clear();
        self.has_data = false;
        self.event = None;
    }

    fn end_line(&mut self, out: &mut Vec<SseEvent>) {
        if self.discarding {
            self.discarding = false;
            return;
        }
        let line = std::mem::take(&mut self.line);
        if line.is_empty() {
            self.dispatch(out);
            return;
        }
        if line[0] == b':' {
            self.comments += 1;
            return;
        }
        let (name, value) = match line.iter().position(|&c| c == b':') {
            Some(i) => {
                let v = &line[i + 1..];
                (&line[..i], v.strip_prefix(b" ").unwrap_or(v))
            }
            None => (&line[..], &[][..]),
        };
        let value = String::from_utf8_lossy(value);
        match name {
            b"data" => {
                if self.data.len() + value.len() + 1 > self.max_line {
                    self.dropped_lines += 1;
                    return;
                }
                self.data.push_str(&value);
                self.data.push('\n');
                self.has_data = true;
            }
            b"event" => self.event = Some(value.into_owned()),
            b"id" if !value.contains('\0') => self.last_id = Some(value.into_owned()),
            b"retry" if !value.is_empty() && value.bytes().all(|c| c.is_ascii_digit()) => {
                if let Ok(ms) = value.parse::<u64>() {
                    self.retry = Some(Duration::from_millis(ms));
                }
            }
            _ => {} // unknown fields are ignored
        }
    }

    fn dispatch(&mut self, out: &mut Vec<SseEvent>) {
        let event = self.event.take();
        if !self.has_data {
            self.data.clear();
            return;
        }
        self.has_data = false;
        let mut data = std::mem::take(&mut self.data);
        if data.ends_with('\n') {
            data.pop();
        }
        out.push(SseEvent {
            event,
            data,
            id: self.last_id.clone(),
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn parse_all(chunks: &[&[u8]]) -> (Vec<SseEvent>, SseParser) {
        let mut p = SseParser::new();
        let mut out = Vec::new();
        for c in chunks {
            out.extend(p.feed(c));
        }
        (out, p)
    }

    #[test]
    fn plane_stream_with_ids_and_keepalives() {
        let body = b"data: {\"status\":\"scheduled\",\"time\":1}\nid: scheduled\n\n:\n\ndata:{\"status\":\"ready\",\"time\":2}\nid: ready\n\n";
        let (events, p) = parse_all(&[body]);
        assert_eq!(events.len(), 2);
        assert_eq!(events[0].data, r#"{"status":"scheduled","time":1}"#);
        assert_eq!(events[0].id.as_deref(), Some("scheduled"));
        assert_eq!(events[1].data, r#"{"status":"ready","time":2}"#);
        assert_eq!(p.last_event_id(), Some("ready"));
        assert_eq!(p.comments(), 1);
    }

    #[test]
    fn multiline_data_crlf_cr_event_retry_and_bom() {
        let (events, p) = parse_all(&[
            b"\xEF\xBB",
            b"\xBFevent: up\r\ndata: a\r\ndata\rdata: b\r\rretry: 1500\nretry: x\n",
        ]);
        assert_eq!(events.len(), 1);
        assert_eq!(events[0].event.as_deref(), Some("up"));
        assert_eq!(events[0].data, "a\n\nb");
        assert_eq!(p.retry(), Some(Duration::from_millis(1500)));
    }

    #[test]
    fn blank_events_and_unterminated_events_dispatch_nothing() {
        let (events, mut p) = parse_all(&[b"event: x\n\nid: 7\n\ndata: partial\n"]);
        assert!(events.is_empty());
        assert_eq!(p.last_event_id(), Some("7"));
        p.finish();
        assert!(p.feed(b"\n").is_empty(), "the unterminated event is gone");
        assert_eq!(p.last_event_id(), Some("7"));
    }

    #[test]
    fn long_lines_are_dropped_and_the_stream_recovers() {
        let mut p = SseParser::with_max_line(16);
        let mut body = b"data: ".to_vec();
        body.extend(std::iter::repeat_n(b'x', 100));
        body.extend_from_slice(b"\n\ndata: ok\n\n");
        let events = p.feed(&body);
        assert_eq!(events.len(), 1);
        assert_eq!(events[0].data, "ok");
        assert_eq!(p.dropped_lines(), 1);
    }

    fn arb_event() -> impl Strategy<Value = (Option<String>, Vec<String>, Option<String>)> {
        (
            proptest::option::of("[a-z]{1,8}"),
            proptest::collection::vec("[^\r\n]{0,20}", 1..4),
            proptest::option::of("[a-z0-9-]{1,10}"),
        )
    }

    proptest! {
        /// Any chunking of any byte stream gives the same events and the same final id.
        #[test]
        fn chunking_never_changes_the_events(
            body in proptest::collection::vec(prop_oneof![
                Just(b'\n'), Just(b'\r'), Just(b':'), Just(b' '), Just(b'd'), Just(b'a'),
                Just(b't'), Just(b'i'), Just(0xEFu8), Just(0xBB), Just(0xBF), any::<u8>()
            ], 0..300),
            cuts in proptest::collection::vec(0usize..300, 0..20),
        ) {
            let (whole, pw) = parse_all(&[&body]);
            let mut cuts: Vec<usize> = cuts.into_iter().map(|c| c.min(body.len())).collect();
            cuts.sort_unstable();
            let mut chunks: Vec<&[u8]> = Vec::new();
            let mut start = 0;
            for c in cuts {
                chunks.push(&body[start..c]);
                start = c;
            }
            chunks.push(&body[start..]);
            let (split, ps) = parse_all(&chunks);
            prop_assert_eq!(whole, split);
            prop_assert_eq!(pw.last_event_id(), ps.last_event_id());
            prop_assert_eq!(pw.retry(), ps.retry());
        }

        /// Encoded events come back as they were, whatever the chunking.
        #[test]
        fn encoded_events_round_trip(
            events in proptest::collection::vec(arb_event(), 0..6),
            crlf in any::<bool>(),
            chunk in 1usize..17,
        ) {
            let nl = if crlf { "\r\n" } else { "\n" };
            let mut body = String::new();
            let mut want = Vec::new();
            let mut last_id = None;
            for (event, data, id) in &events {
                if let Some(e) = event { body.push_str(&format!("event: {e}{nl}")); }
                for d in data { body.push_str(&format!("data: {d}{nl}")); }
                if let Some(i) = id { body.push_str(&format!("id: {i}{nl}")); last_id = Some(i.clone()); }
                body.push_str(&format!(":keep-alive{nl}{nl}"));
                want.push(SseEvent { event: event.clone(), data: data.join("\n"), id: last_id.clone() });
            }
            let chunks: Vec<&[u8]> = body.as_bytes().chunks(chunk).collect();
            let (got, _) = parse_all(&chunks);
            prop_assert_eq!(got, want);
        }
    }
}
