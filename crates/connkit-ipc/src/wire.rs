//! The default wire format: compact JSON `{"topic":…,"message":…}` followed by `00 00`.
//!
//! Encoding produces the bytes Node's `JSON.stringify` produces for the same value: keys in the
//! order `topic`, `message`; no whitespace; raw UTF-8; `"`, `\` and control characters
//! escaped (`\n`, `\u0000`, …); numbers in JavaScript's layout (`3`, not `3.0`; `1e+21`); a
//! missing message leaves the key out.
//!
//! Decoding accepts what Node's `JSON.parse` accepts: whitespace around the object, any key
//! order, unknown keys (ignored), duplicate keys (the last wins), a missing `message`, lone
//! UTF-16 surrogate escapes such as `"\ud800"` (replaced by U+FFFD), and invalid UTF-8 (each bad
//! sequence replaced by U+FFFD, as Node's string decoder does).
//!
//! ```
//! use connkit_ipc::wire::{decode, encode};
//! use serde_json::json;
//!
//! let mut buf = Vec::new();
//! encode("echo", Some(&json!({"seq": 0, "x": 1.0})), &mut buf)?;
//! assert_eq!(buf, b"{\"topic\":\"echo\",\"message\":{\"seq\":0,\"x\":1}}");
//! let env = decode(b" {\"message\":[1],\"topic\":\"a\",\"extra\":true}\n")?;
//! assert_eq!(env.topic, "a");
//! assert_eq!(env.message, Some(json!([1])));
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

use serde::de::{self, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde_json::Value;
use std::fmt;
use std::io;

/// The frame delimiter of socket-ipc 0.4.x: two NUL bytes.
pub const DELIMITER: &[u8] = b"\0\0";

/// One message on the wire: a topic and an optional payload.
#[derive(Debug, Clone, PartialEq)]
pub struct Envelope {
    /// The topic. A topic that is not a JSON string on the wire is given as JavaScript would
    /// name its event (`String(topic)`): a missing topic is `"undefined"`, `null` is `"null"`.
    pub topic: String,
    /// The payload; `None` when the `message` key is absent (Node's `undefined`).
    pub message: Option<Value>,
}

/// A value that cannot be encoded.
#[derive(Debug, thiserror::Error)]
#[error("cannot encode the message: {reason}")]
pub struct EncodeError {
    reason: String,
}

impl EncodeError {
    /// An encode error with a reason.
    pub fn new(reason: impl Into<String>) -> Self {
        Self {
            reason: reason.into(),
        }
    }
}

/// A frame that cannot be decoded. Carries the start of the raw frame for diagnosis.
#[derive(Debug, Clone, thiserror::Error)]
#[error("cannot decode the frame: {reason} (frame starts {raw:?})")]
pub struct DecodeError {
    reason: String,
    raw: String,
}

impl DecodeError {
    /// A decode error for `frame` with a reason.
    pub fn new(reason: impl Into<String>, frame: &[u8]) -> Self {
        let end = frame.len().min(120);
        Self {
            reason: reason.into(),
            raw: String::from_utf8_lossy(&frame[..end]).into_owned(),
        }
    }

    /// Why the frame was rejected.
    #[must_use]
    pub fn reason(&self) -> &str {
        &self.reason
    }

    /// The first bytes of the frame, as text.
    #[must_use]
    pub fn raw(&self) -> &str {
        &self.raw
    }
}

/// Writes JSON as `JSON.stringify` does: serde_json's compact output, with JavaScript's number
/// layout for floats.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct JsFormatter;

impl serde_json::ser::Formatter for JsFormatter {
    fn write_f64<W: ?Sized + io::Write>(&mut self, writer: &mut W, value: f64) -> io::Result<()> {
        let mut out = Vec::with_capacity(24);
        if connkit_core::jsnum::write_js_number(value, &mut out) {
            writer.write_all(&out)
        } else {
            writer.write_all(b"null") // as JSON.stringify does for NaN and ±Infinity
        }
    }

    fn write_f32<W: ?Sized + io::Write>(&mut self, writer: &mut W, value: f32) -> io::Result<()> {
        self.write_f64(writer, f64::from(value))
    }
}

/// Serialize any `Serialize` value as `JSON.stringify` would, into `out`.
pub(crate) fn write_json<T: serde::Serialize + ?Sized>(
    value: &T,
    out: &mut Vec<u8>,
) -> Result<(), EncodeError> {
    let mut ser = serde_json::Serializer::with_formatter(out, JsFormatter);
    value
        .serialize(&mut ser)
        .map_err(|e| EncodeError::new(e.to_string()))
}

/// Append the JSON of one envelope (without the delimiter) to `out`.
///
/// # Errors
/// [`EncodeError`] when the message cannot be serialized (a `serde_json::Value` always can).
pub fn encode(topic: &str, message: Option<&Value>, out: &mut Vec<u8>) -> Result<(), EncodeError> {
    out.extend_from_slice(b"{\"topic\":");
    write_json(topic, out)?;
    if let Some(m) = message {
        out.extend_from_slice(b",\"message\":");
        write_json(m, out)?;
    }
    out.push(b'}');
    Ok(())
}

/// Decode one frame (without the delimiter).
///
/// # Errors
/// [`DecodeError`] for anything `JSON.parse` rejects (an empty frame, malformed JSON), and for
/// a `null` frame, which makes the Node library drop the connection too.
pub fn decode(frame: &[u8]) -> Result<Envelope, DecodeError> {
    match parse(frame) {
        Ok(env) => Ok(env),
        Err(first) => {
            // Rare paths: invalid UTF-8, or lone surrogate escapes, which JSON.parse accepts.
            let text = String::from_utf8_lossy(frame);
            let fixed = replace_lone_surrogates(&text);
            if matches!(text, std::borrow::Cow::Borrowed(_)) && fixed.is_none() {
                return Err(DecodeError::new(first.to_string(), frame));
            }
            let repaired = fixed.unwrap_or_else(|| text.into_owned());
            parse(repaired.as_bytes()).map_err(|e| DecodeError::new(e.to_string(), frame))
        }
    }
}

fn parse(frame: &[u8]) -> Result<Envelope, serde_json::Error> {
    let mut de = serde_json::Deserializer::from_slice(frame);
    let env = de.deserialize_any(EnvelopeVisitor)?;
    de.end()?;
    env.ok_or_else(|| de::Error::custom("the frame is `null`, not an object"))
}

/// Visits the top-level JSON value. `None` for `null` (an error); a non-object value yields
/// topic `undefined` and no message, as Node's library delivers it.
struct EnvelopeVisitor;

impl<'de> Visitor<'de> for EnvelopeVisitor {
    type Value = Option<Envelope>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON object with `topic` and `message`")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut topic: Option<Value> = None;
        let mut message: Option<Value> = None;
        while let Some(key) = map.next_key::<std::borrow::Cow<'de, str>>()? {
            match &*key {
                "topic" => topic = Some(map.next_value()?),
                "message" => message = Some(map.next_value()?),
                _ => {
                    map.next_value::<IgnoredAny>()?;
                }
            }
        }
        Ok(Some(Envelope {
            topic: topic
                .as_ref()
                .map_or_else(|| "undefined".to_owned(), js_string),
            message,
        }))
    }

    fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
        Ok(None)
    }

    fn visit_bool<E: de::Error>(self, _: bool) -> Result<Self::Value, E> {
        Ok(Some(undefined_envelope()))
    }

    fn visit_i64<E: de::Error>(self, _: i64) -> Result<Self::Value, E> {
        Ok(Some(undefined_envelope()))
    }

    fn visit_u64<E: de::Error>(self, _: u64) -> Result<Self::Value, E> {
        Ok(Some(undefined_envelope()))
    }

    fn visit_f64<E: de::Error>(self, _: f64) -> Result<Self::Value, E> {
        Ok(Some(undefined_envelope()))
    }

    fn visit_str<E: de::Error>(self, _: &str) -> Result<Self::Value, E> {
        Ok(Some(undefined_envelope()))
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        while seq.next_element::<IgnoredAny>()?.is_some() {}
        Ok(Some(undefined_envelope()))
    }
}

fn undefined_envelope() -> Envelope {
    Envelope {
        topic: "undefined".to_owned(),
        message: None,
    }
}

/// JavaScript's `String(value)` for a JSON value.
fn js_string(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Null => "null".to_owned(),
        Value::Bool(b) => b.to_string(),
        Value::Number(n) => n
            .as_f64()
            .and_then(connkit_core::jsnum::format_js_number)
            .unwrap_or_else(|| n.to_string()),
        Value::Array(items) => items
            .iter()
            .map(|i| {
                if i.is_null() {
                    String::new()
                } else {
                    js_string(i)
                }
            })
            .collect::<Vec<_>>()
            .join(","),
        Value::Object(_) => "[object Object]".to_owned(),
    }
}

/// Replace `\uXXXX` escapes of unpaired UTF-16 surrogates with `\ufffd` (same length).
/// Returns `None` when there is nothing to replace.
fn replace_lone_surrogates(text: &str) -> Option<String> {
    let b = text.as_bytes();
    let hex = |at: usize| -> Option<u16> {
        let s = b.get(at..at + 4)?;
        u16::from_str_radix(std::str::from_utf8(s).ok()?, 16).ok()
    };
    let mut out: Option<Vec<u8>> = None;
    let mut in_string = false;
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'"' => in_string = !in_string,
            b'\\' if in_string => {
                if let (Some(b'u'), Some(unit)) = (b.get(i + 1), hex(i + 2)) {
                    let is_high = (0xD800..0xDC00).contains(&unit);
                    let is_low = (0xDC00..0xE000).contains(&unit);
                    let paired = is_high
                        && b.get(i + 6) == Some(&b'\\')
                        && b.get(i + 7) == Some(&b'u')
                        && hex(i + 8).is_some_and(|lo| (0xDC00..0xE000).contains(&lo));
                    if paired {
                        i += 12;
                        continue;
                    }
                    if is_high || is_low {
                        let buf = out.get_or_insert_with(|| b.to_vec());
                        buf[i + 2..i + 6].copy_from_slice(b"fffd");
                    }
                    i += 6;
                    continue;
                }
                i += 2;
                continue;
            }
            _ => {}
        }
        i += 1;
    }
    out.and_then(|v| String::from_utf8(v).ok())
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use serde_json::json;

    fn enc(topic: &str, message: Option<Value>) -> Vec<u8> {
        let mut out = Vec::new();
        encode(topic, message.as_ref(), &mut out).unwrap();
        out
    }

    #[test]
    fn encodes_like_json_stringify() {
        // Captured bytes from socket-ipc.md §1.
        assert_eq!(
            enc("echo", Some(json!({"seq": 0, "pad": "xxxxxxxxxxxxxxxx"}))),
            br#"{"topic":"echo","message":{"seq":0,"pad":"xxxxxxxxxxxxxxxx"}}"#
        );
        assert_eq!(enc("", None), br#"{"topic":""}"#);
        assert_eq!(
            enc("u", Some(json!("é\u{0}"))),
            b"{\"topic\":\"u\",\"message\":\"\xc3\xa9\\u0000\"}"
        );
        assert_eq!(
            enc(
                "t",
                Some(json!("\u{8}\t\n\u{c}\r\"\\/\u{1f}\u{7f}\u{2028}"))
            ),
            "{\"topic\":\"t\",\"message\":\"\\b\\t\\n\\f\\r\\\"\\\\/\\u001f\u{7f}\u{2028}\"}"
                .as_bytes()
        );
        assert_eq!(
            enc(
                "n",
                Some(json!([
                    1.0,
                    -0.0,
                    1e21,
                    0.1,
                    1.5e-7,
                    -7,
                    12345678901234567890u64
                ]))
            ),
            br#"{"topic":"n","message":[1,0,1e+21,0.1,1.5e-7,-7,12345678901234567890]}"#
        );
        assert_eq!(
            enc("z", Some(Value::Null)),
            br#"{"topic":"z","message":null}"#
        );
    }

    #[test]
    fn decodes_what_json_parse_accepts() {
        let env = decode(b" \n{\"topic\":\"a\",\"message\":{\"k\":1}}\t ").unwrap();
        assert_eq!(
            env,
            Envelope {
                topic: "a".into(),
                message: Some(json!({"k": 1}))
            }
        );
        let env = decode(br#"{"topic":"x"}"#).unwrap();
        assert_eq!(env.message, None);
        let env = decode(br#"{"topic":"a","topic":"b","zz":[1,{"q":2}]}"#).unwrap();
        assert_eq!(env.topic, "b", "the last duplicate key wins");
        assert_eq!(decode(br#"{"message":1}"#).unwrap().topic, "undefined");
        assert_eq!(decode(br#"{"topic":null}"#).unwrap().topic, "null");
        assert_eq!(decode(br#"{"topic":5}"#).unwrap().topic, "5");
        assert_eq!(decode(br#"{"topic":[1,null,"a"]}"#).unwrap().topic, "1,,a");
        assert_eq!(decode(b"42").unwrap(), undefined_envelope());
        assert_eq!(decode(br#""s""#).unwrap(), undefined_envelope());
    }

    #[test]
    fn lone_surrogates_and_bad_utf8_become_replacement_characters() {
        let env = decode(br#"{"topic":"u","message":"\u00e9\u0000\ud800"}"#).unwrap();
        assert_eq!(env.message, Some(json!("é\u{0}\u{fffd}")));
        let env = decode(br#"{"topic":"u","message":"a\udc00b\ud83d\ude00"}"#).unwrap();
        assert_eq!(env.message, Some(json!("a\u{fffd}b😀")));
        let env = decode(b"{\"topic\":\"u\",\"message\":\"\xff\xc3\"}").unwrap();
        assert_eq!(env.message, Some(json!("\u{fffd}\u{fffd}")));
        // An escaped backslash before `u` is not an escape.
        let env = decode(br#"{"topic":"u","message":"\\ud800"}"#).unwrap();
        assert_eq!(env.message, Some(json!("\\ud800")));
    }

    #[test]
    fn rejects_what_json_parse_rejects() {
        for bad in [
            &b""[..],
            b"{not json",
            b"null",
            b"{\"topic\":\"a\"} x",
            b"\0B",
            b"{'topic':1}",
        ] {
            let err = decode(bad).unwrap_err();
            assert!(!err.reason().is_empty(), "{bad:?}");
        }
        assert!(decode(b"null").unwrap_err().reason().contains("null"));
    }

    fn json_value() -> impl Strategy<Value = Value> {
        let leaf = prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::Bool),
            any::<i64>().prop_map(|i| json!(i)),
            any::<f64>()
                .prop_filter("finite", |f| f.is_finite())
                .prop_map(|f| json!(f)),
            ".*".prop_map(Value::String),
        ];
        leaf.prop_recursive(4, 64, 8, |inner| {
            prop_oneof![
                proptest::collection::vec(inner.clone(), 0..8).prop_map(Value::Array),
                proptest::collection::vec((".*", inner), 0..8)
                    .prop_map(|kv| Value::Object(kv.into_iter().collect())),
            ]
        })
    }

    proptest! {
        #[test]
        fn encode_then_decode_is_identity(topic in ".*", message in proptest::option::of(json_value())) {
            let bytes = enc(&topic, message.clone());
            prop_assert!(!bytes.contains(&0), "a raw NUL would break the framing");
            let env = decode(&bytes).unwrap();
            prop_assert_eq!(env.topic, topic);
            // Floats go through JS layout; compare numerically.
            prop_assert_eq!(env.message.map(|v| v.to_string()), message.map(|v| {
                let mut out = Vec::new();
                write_json(&v, &mut out).unwrap();
                serde_json::from_slice::<Value>(&out).unwrap().to_string()
            }));
        }

        #[test]
        fn decode_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..256)) {
            let _ = decode(&bytes);
        }
    }
}
