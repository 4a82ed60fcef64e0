//! Every JSTP message in our captured transcripts parses, and re-serializing a message that
//! Node wrote gives Node's bytes back (Node's output is canonical, spec §3.1), with three
//! documented exceptions: U+2028/U+2029, which we escape (§3.3); `Infinity`, which we refuse
//! to send (§3.3, quirk 1); and a trailing `undefined` that Node wrote as `[,1,]`, which
//! reads back (in Node too) as the two-element `[,1]` (quirk 2).

use connkit_jstp::value::{self, Expected, Found, ParseError, SerializeError};
use connkit_jstp::{Object, Value};

const DEMO: &str = include_str!("data/transcript-demo.log");
const WS: &str = include_str!("data/transcript-ws.log");
const RECONNECT: &str = include_str!("data/transcript-reconnect.log");
const RESTORE: &str = include_str!("data/transcript-restore.log");
const PROBE_TCP: &str = include_str!("data/probe-tcp.out");
const PROBE_WS: &str = include_str!("data/ws-probe.out");

/// Turns the log's `\xHH` notation for raw non-ASCII bytes back into bytes. Lower escapes
/// (`\x41` in a probe) are the message's own text.
fn decode_log(text: &str) -> Vec<u8> {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let raw_byte = text
            .get(i + 2..i + 4)
            .filter(|_| bytes[i] == b'\\' && bytes.get(i + 1) == Some(&b'x'))
            .and_then(|hex| u8::from_str_radix(hex, 16).ok())
            .filter(|&b| b >= 0x80);
        if let Some(b) = raw_byte {
            out.push(b);
            i += 4;
            continue;
        }
        out.push(bytes[i]);
        i += 1;
    }
    out
}

/// The JSTP messages in a proxy log (`<ms> C>S #<conn> <payload>`), with their direction.
/// TCP payloads are split at `␀`; WebSocket frames are taken when they are whole text or
/// binary messages, and their length is checked against the frame header.
fn proxy_log_messages(log: &str) -> Vec<(String, Vec<u8>)> {
    let mut out = Vec::new();
    for line in log.lines() {
        let mut parts = line.splitn(4, ' ');
        let (Some(_ms), Some(dir), Some(_conn), Some(payload)) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            continue;
        };
        if dir != "C>S" && dir != "S>C" {
            continue;
        }
        if payload.starts_with("GET ") || payload.starts_with("HTTP/") {
            continue;
        }
        if let Some(frame) = payload.strip_prefix("[ws ") {
            let (header, body) = frame.split_once("] ").unwrap_or((frame, ""));
            let field = |name: &str| {
                header
                    .split(' ')
                    .find_map(|f| f.strip_prefix(name))
                    .unwrap_or_default()
                    .to_owned()
            };
            if field("fin=") != "1" || !["1", "2"].contains(&field("op=").as_str()) {
                continue;
            }
            let bytes = decode_log(body);
            let len: usize = field("len=").parse().expect("frame length");
            if body.contains('␀') {
                // A probe that put a NUL into a WS message; checked in ws_probe_frames.
                continue;
            }
            assert_eq!(bytes.len(), len, "decoded frame length: {line}");
            out.push((line.to_owned(), bytes));
        } else {
            for piece in payload.split('␀').filter(|p| !p.is_empty()) {
                out.push((line.to_owned(), decode_log(piece)));
            }
        }
    }
    out
}

/// What we write for a message Node wrote: Node's bytes with U+2028/U+2029 escaped, and,
/// if the message has a trailing comma Node wrote for a trailing `undefined` (`[,1,]`),
/// without that comma: the element is gone once parsed, in Node as here (quirk 2). No
/// captured string contains `,]`, so the plain replacement is exact for this data.
fn expected_reserialization(node_bytes: &[u8]) -> Vec<u8> {
    String::from_utf8(node_bytes.to_vec())
        .expect("Node writes UTF-8")
        .replace('\u{2028}', "\\u2028")
        .replace('\u{2029}', "\\u2029")
        .replace(",]", "]")
        .into_bytes()
}

/// Parses a message Node wrote and checks that re-serializing gives its bytes back.
/// Returns the parsed message.
fn check_node_message(context: &str, bytes: &[u8]) -> Value {
    let v = value::parse(bytes).unwrap_or_else(|e| panic!("{context}: {e}"));
    assert!(v.as_object().is_some(), "{context}: not an object");
    match value::serialize(&v) {
        Ok(out) => assert_eq!(
            String::from_utf8_lossy(&out),
            String::from_utf8_lossy(&expected_reserialization(bytes)),
            "{context}"
        ),
        Err(SerializeError::NonFiniteNumber { value }) => {
            // Only the captured `ok:[Infinity]` (transcript-restore.log) may get here.
            assert_eq!(value, f64::INFINITY, "{context}");
            assert_eq!(v.to_string().as_bytes(), bytes, "{context}: Display");
        }
        Err(e) => panic!("{context}: {e}"),
    }
    v
}

#[test]
fn proxy_transcripts_parse_and_reserialize_to_node_bytes() {
    let mut count = 0;
    for (name, log) in [
        ("transcript-demo.log", DEMO),
        ("transcript-ws.log", WS),
        ("transcript-reconnect.log", RECONNECT),
        ("transcript-restore.log", RESTORE),
    ] {
        let messages = proxy_log_messages(log);
        assert!(!messages.is_empty(), "{name}");
        for (line, bytes) in messages {
            // Both sides of these logs are Node (our reference client and server).
            check_node_message(&format!("{name}: {line}"), &bytes);
            count += 1;
        }
    }
    assert!(count >= 180, "only {count} messages found");
}

#[test]
fn captured_messages_have_the_expected_values() {
    let messages: Vec<Vec<u8>> = proxy_log_messages(DEMO)
        .into_iter()
        .map(|(_, b)| b)
        .collect();
    let find = |prefix: &str| {
        messages
            .iter()
            .find(|m| m.starts_with(prefix.as_bytes()))
            .map(|m| value::parse(m).expect("parses"))
            .unwrap_or_else(|| panic!("no message starting {prefix}"))
    };
    let echo = find("{call:[6,'calculator'],echo:[");
    assert_eq!(
        echo.get("echo").and_then(|a| a.at(0)),
        Some(&Value::from("it's \"q\" \\ \n\t\u{1} ü € 😀 \u{2028}"))
    );
    let holes = find("{callback:[8],ok:[[1,,3]]}");
    assert_eq!(
        holes.get("ok").and_then(|a| a.at(0)),
        Some(&Value::from(vec![
            Value::from(1),
            Value::Undefined,
            Value::from(3)
        ]))
    );
    let big = find("{call:[5,'calculator'],add:[-5,1e+21]}");
    assert_eq!(
        big.get("add").and_then(|a| a.at(1)),
        Some(&Value::from(1e21))
    );
    let sum = find("{callback:[4],ok:[0.30000000000000004]}");
    assert_eq!(
        sum.get("ok").and_then(|a| a.at(0)),
        Some(&Value::from(0.1 + 0.2))
    );
    let nested = find("{call:[7,'calculator'],echo:[{a:[1,null,true,false,'x']");
    let inner: Object = [
        (
            "a",
            Value::from(vec![
                Value::from(1),
                Value::Null,
                Value::from(true),
                Value::from(false),
                Value::from("x"),
            ]),
        ),
        (
            "b-c",
            Value::Object([("d", Value::Array(vec![]))].into_iter().collect()),
        ),
    ]
    .into_iter()
    .collect();
    assert_eq!(
        nested.get("echo").and_then(|a| a.at(0)),
        Some(&Value::Object(inner))
    );
}

/// `probe-tcp.out`: `== case` sections with `C> …` (hand-written by the probe) and `S< …`
/// (Node's replies).
fn probe_sections(text: &str) -> Vec<(String, Vec<String>, Vec<String>)> {
    let mut sections: Vec<(String, Vec<String>, Vec<String>)> = Vec::new();
    for line in text.lines() {
        if let Some(name) = line.strip_prefix("== ") {
            sections.push((name.to_owned(), Vec::new(), Vec::new()));
        } else if let Some((_, sent, received)) = sections.last_mut() {
            if let Some(rest) = line.strip_prefix("  C> ") {
                sent.push(rest.to_owned());
            } else if let Some(rest) = line.strip_prefix("  S< ") {
                received.push(rest.to_owned());
            }
        }
    }
    sections
}

#[test]
fn tcp_probe_replies_reserialize_and_probes_parse_as_a_superset() {
    let mut node_messages = 0;
    let mut probes = 0;
    for (case, sent, received) in probe_sections(PROBE_TCP) {
        for payload in &received {
            for piece in payload.split('␀').filter(|p| !p.is_empty()) {
                check_node_message(&format!("{case}: {piece}"), &decode_log(piece));
                node_messages += 1;
            }
        }
        for payload in &sent {
            let mut bytes = decode_log(payload);
            if case == "lenientSyntax" || case == "rawNewlineInString" {
                // The log shows the raw LF these probes sent as `\n`.
                bytes = String::from_utf8(bytes)
                    .expect("UTF-8")
                    .replace("\\n", "\n")
                    .into_bytes();
            }
            let text = String::from_utf8(bytes).expect("UTF-8");
            let frames: Vec<&str> = text.split('␀').collect();
            // Every frame but the unterminated tail (empty here).
            for frame in &frames[..frames.len() - 1] {
                let result = value::parse(frame.as_bytes());
                probes += 1;
                match (case.as_str(), *frame) {
                    // Two NULs in a row: an empty frame is a parse error for us as for Node.
                    ("emptyFrame", "") => assert_eq!(
                        result,
                        Err(ParseError::Unexpected {
                            position: 0,
                            expected: Expected::Value,
                            found: Found::End
                        })
                    ),
                    // Node's JS parser rejects these; our parser accepts them (§3.3).
                    ("emptyWithSpace", "{ }") => {
                        assert_eq!(result, Ok(Value::Object(Object::new())))
                    }
                    ("spaceBeforeColon", f) if f.starts_with("{call :") => {
                        assert_eq!(
                            result.map(|v| v.to_string()).as_deref(),
                            Ok("{call:[1,'calculator'],answer:[]}")
                        );
                    }
                    ("nanArg", f) if f.contains("NaN") => {
                        let v = result.expect("NaN parses");
                        assert!(
                            v.get("echo")
                                .and_then(|a| a.at(0))
                                .and_then(Value::as_f64)
                                .is_some_and(f64::is_nan)
                        );
                    }
                    ("infinityArg", f) if f.contains("Infinity") => {
                        let v = result.expect("Infinity parses");
                        assert_eq!(
                            v.get("echo").and_then(|a| a.at(0)),
                            Some(&Value::from(f64::INFINITY))
                        );
                    }
                    ("numericKey", f) if f.contains("{1:2}") => {
                        let v = result.expect("numeric key parses");
                        assert_eq!(v.to_string(), "{call:[1,'calculator'],echo:[{'1':2}]}");
                    }
                    // A top-level array parses; the message layer rejects non-objects.
                    ("notAnObject", "[1,2]") => {
                        assert_eq!(result, Ok(Value::from(vec![1, 2])));
                    }
                    ("lenientSyntax", f) if f.contains("/* c */") => {
                        assert_eq!(
                            result.map(|v| v.to_string()).as_deref(),
                            Ok("{call:[1,'calculator'],add:[16,0.5]}")
                        );
                    }
                    ("escapes", f) if f.contains("echo") => {
                        let v = result.expect("escapes parse");
                        assert_eq!(
                            v.get("echo").and_then(|a| a.at(0)),
                            Some(&Value::from("AB😀😀A\u{0}'\""))
                        );
                    }
                    ("holes", f) if f.contains("echo") => {
                        let v = result.expect("holes parse");
                        assert_eq!(v.to_string(), "{call:[1,'calculator'],echo:[[,1,,]]}");
                    }
                    ("rawNewlineInString", f) if f.contains("echo") => {
                        let v = result.expect("raw LF parses");
                        assert_eq!(
                            v.get("echo").and_then(|a| a.at(0)),
                            Some(&Value::from("a\nb"))
                        );
                    }
                    (case, frame) => {
                        let v = result.unwrap_or_else(|e| panic!("{case}: {frame:?}: {e}"));
                        assert!(v.as_object().is_some(), "{case}: {frame:?}");
                    }
                }
            }
        }
    }
    assert!(node_messages >= 40, "{node_messages}");
    assert!(probes >= 50, "{probes}");
}

#[test]
fn ws_probe_frames() {
    let mut checked = 0;
    for (case, sent, received) in probe_sections(PROBE_WS) {
        for payload in &received {
            if payload.contains("...(") {
                continue; // elided
            }
            check_node_message(&format!("{case}: {payload}"), &decode_log(payload));
            checked += 1;
        }
        for payload in &sent {
            let Some(quoted) = payload
                .strip_prefix("text ")
                .or_else(|| payload.strip_prefix("binary "))
                .filter(|q| q.starts_with('"'))
            else {
                continue; // elided
            };
            let frame: String = serde_json::from_str(quoted).expect("JSON-quoted frame");
            let result = value::parse(frame.as_bytes());
            checked += 1;
            match case.as_str() {
                // A NUL inside a WS message is a parse error (§2.2), for us too.
                "nulTerminated" if frame.contains('\0') => assert_eq!(
                    result,
                    Err(ParseError::Unexpected {
                        position: 33,
                        expected: Expected::EndOfInput,
                        found: Found::Char('\0')
                    })
                ),
                "twoMessagesOneFrame" if frame.contains('\0') => assert!(result.is_err()),
                "nonObjectFrame" if frame == "42" => assert_eq!(result, Ok(Value::from(42))),
                _ => assert!(
                    result.is_ok_and(|v| v.as_object().is_some()),
                    "{case}: {frame}"
                ),
            }
        }
    }
    assert!(checked >= 15, "{checked}");
}
