//! The default wire format: compact JSON `{"topic":…,"message":…}` followed by `00 00`.
//!
//! Encoding produces the bytes Node's `JSON.stringify` produces for the same value: keys in the
//! order `topic`, `message`; no whitespace; raw UTF-8; `"`, `\\` and control characters
//! escaped (`\n`, `\u0000`, …); numbers in JavaScript's layout (`3`, not `3.0`; `1e+21`); a
//! missing message leaves the key out. A received [`Payload`] is sent again byte for byte.
//!
//! Decoding accepts what Node's `JSON.parse` accepts: whitespace around the object, any key
//! order, unknown keys (ignored), duplicate keys (the last wins), a missing `message`, lone
//! UTF-16 surrogate escapes such as `"\ud800"` (replaced by U+FFFD), and invalid UTF-8 (each bad
//! sequence replaced by U+FFFD, as Node's string decoder does). The payload is checked, not
//! parsed: see [`Payload`].
//!
//! ```
//! use connkit_ipc::wire::{decode, encode, encode_value};
//! use serde_json::json;
//!
//! let mut buf = Vec::new();
//! encode_value("echo", Some(&json!({"seq": 0, "x": 1.0})), &mut buf)?;
//! assert_eq!(buf, b"{\"topic\":\"echo\",\"message\":{\"seq\":0,\"x\":1}}");
//! let env = decode(b" {\"message\":[1, 2],\"topic\":\"a\",\"extra\":true}\n")?;
//! assert_eq!(env.topic, "a");
//! assert_eq!(env.message.json().as_deref(), Some("[1, 2]")); // the sender's bytes
//! assert_eq!(env.message, json!([1, 2]));
//! buf.clear();
//! encode("echo", &env.message, &mut buf)?; // copied, not re-serialized
//! assert_eq!(buf, b"{\"topic\":\"echo\",\"message\":[1, 2]}");
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

use crate::Topic;
use crate::payload::{self, Payload, replace_lone_surrogates};
use bytes::Bytes;
use serde::de::{self, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde_json::Value;
use serde_json::value::RawValue;
use std::fmt;
use std::io;

/// The frame delimiter of socket-ipc 0.4.x: two NUL bytes.
pub const DELIMITER: &[u8] = b"\0\0";

/// One message on the wire: a topic and a payload.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Envelope {
    /// The topic. A topic that is not a JSON string on the wire is given as JavaScript would
    /// name its event (`String(topic)`): a missing topic is `"undefined"`, `null` is `"null"`.
    pub topic: Topic,
    /// The payload; absent when the `message` key is (Node's `undefined`).
    pub message: Payload,
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

/// Write `value` as `JSON.stringify` would: the same bytes as [`write_json`] (serde_json
/// with [`JsFormatter`]), with a faster string writer. Objects keep their key order.
pub(crate) fn write_value(value: &Value, out: &mut Vec<u8>) {
    match value {
        Value::Null => out.extend_from_slice(b"null"),
        Value::Bool(true) => out.extend_from_slice(b"true"),
        Value::Bool(false) => out.extend_from_slice(b"false"),
        Value::Number(n) => {
            if let Some(u) = n.as_u64() {
                write_u64(u, false, out);
            } else if let Some(i) = n.as_i64() {
                write_u64(i.unsigned_abs(), i < 0, out);
            } else if let Some(f) = n.as_f64() {
                if !connkit_core::jsnum::write_js_number(f, out) {
                    out.extend_from_slice(b"null");
                }
            } else {
                out.extend_from_slice(n.to_string().as_bytes());
            }
        }
        Value::String(s) => write_str(s, out),
        Value::Array(items) => {
            out.push(b'[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                write_value(item, out);
            }
            out.push(b']');
        }
        Value::Object(map) => {
            out.push(b'{');
            for (i, (k, v)) in map.iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                write_str(k, out);
                out.push(b':');
                write_value(v, out);
            }
            out.push(b'}');
        }
    }
}

fn write_u64(mut n: u64, negative: bool, out: &mut Vec<u8>) {
    let mut digits = [0u8; 20];
    let mut at = digits.len();
    loop {
        at -= 1;
        digits[at] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    if negative {
        out.push(b'-');
    }
    out.extend_from_slice(&digits[at..]);
}

/// Whether the 32 bytes of `block` need no escape.
fn plain_block(block: &[u8; 32]) -> bool {
    let mut bits = 0;
    for word in block.chunks_exact(8) {
        let mut w = [0u8; 8];
        w.copy_from_slice(word);
        bits |= escape_bits(u64::from_le_bytes(w));
    }
    bits == 0
}

/// Non-zero when any of the 8 bytes of `w` is `"`, `\\` or below 0x20 (exact; bit tricks
/// from "Bit Twiddling Hacks": `haszero` and `hasless`).
fn escape_bits(w: u64) -> u64 {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGHS: u64 = 0x8080_8080_8080_8080;
    let below_space = w.wrapping_sub(ONES * 0x20) & !w;
    let q = w ^ (ONES * u64::from(b'"'));
    let quote = q.wrapping_sub(ONES) & !q;
    let b = w ^ (ONES * u64::from(b'\\'));
    let backslash = b.wrapping_sub(ONES) & !b;
    (below_space | quote | backslash) & HIGHS
}

/// The index of the first byte at or after `i` that is `"`, `\\` or below 0x20 (`b.len()`
/// when there is none), 32 then 8 bytes at a time. In [`escape_bits`] the lowest flagged
/// byte is always a real match (false flags can only follow a real one), so
/// `trailing_zeros` finds it.
pub(crate) fn next_special(b: &[u8], mut i: usize) -> usize {
    while let Some(block) = b.get(i..).and_then(<[u8]>::first_chunk::<32>)
        && plain_block(block)
    {
        i += 32;
    }
    while let Some(word) = b.get(i..).and_then(<[u8]>::first_chunk::<8>) {
        let bits = escape_bits(u64::from_le_bytes(*word));
        if bits != 0 {
            return i + (bits.trailing_zeros() / 8) as usize;
        }
        i += 8;
    }
    while let Some(&c) = b.get(i) {
        if c == b'"' || c == b'\\' || c < 0x20 {
            return i;
        }
        i += 1;
    }
    i
}

/// Write `s` as a JSON string, escaped as `JSON.stringify` escapes a string without lone
/// surrogates: `\"`, `\\`, `\b`, `\t`, `\n`, `\f`, `\r`, and `\u00xx` for the other control
/// characters. Runs with nothing to escape are found 8 bytes at a time and copied whole.
pub(crate) fn write_str(s: &str, out: &mut Vec<u8>) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let b = s.as_bytes();
    out.reserve(b.len() + 2);
    out.push(b'"');
    let mut start = 0;
    loop {
        let i = next_special(b, start);
        let Some(&c) = b.get(i) else { break };
        out.extend_from_slice(&b[start..i]);
        let short: &[u8] = match c {
            b'"' => b"\\\"",
            b'\\' => b"\\\\",
            0x08 => b"\\b",
            b'\t' => b"\\t",
            b'\n' => b"\\n",
            0x0c => b"\\f",
            b'\r' => b"\\r",
            _ => b"",
        };
        if short.is_empty() {
            out.extend_from_slice(b"\\u00");
            out.push(HEX[usize::from(c >> 4)]);
            out.push(HEX[usize::from(c & 0xf)]);
        } else {
            out.extend_from_slice(short);
        }
        start = i + 1;
    }
    out.extend_from_slice(&b[start..]);
    out.push(b'"');
}

/// Append the JSON of one envelope (without the delimiter) to `out`. The payload's JSON text
/// is copied as it is; a payload built from a value is written out in JavaScript's layout.
/// An absent payload leaves the `message` key out.
///
/// # Errors
/// None today (a [`Payload`] always has valid JSON); kept for custom payload kinds.
pub fn encode(topic: &str, message: &Payload, out: &mut Vec<u8>) -> Result<(), EncodeError> {
    out.reserve(topic.len() + message.known_len().unwrap_or(32) + 24);
    out.extend_from_slice(b"{\"topic\":");
    write_str(topic, out);
    if !message.is_absent() {
        out.extend_from_slice(b",\"message\":");
        message.write_to(out);
    }
    out.push(b'}');
    Ok(())
}

/// [`encode`] for a [`Value`] (`None`: no `message` key).
///
/// # Errors
/// Never for a `serde_json::Value`; the signature matches [`encode`].
pub fn encode_value(
    topic: &str,
    message: Option<&Value>,
    out: &mut Vec<u8>,
) -> Result<(), EncodeError> {
    out.extend_from_slice(b"{\"topic\":");
    write_str(topic, out);
    if let Some(m) = message {
        out.extend_from_slice(b",\"message\":");
        write_value(m, out);
    }
    out.push(b'}');
    Ok(())
}

/// Decode one frame (without the delimiter), copying it. See [`decode_bytes`].
///
/// # Errors
/// As [`decode_bytes`].
pub fn decode(frame: &[u8]) -> Result<Envelope, DecodeError> {
    decode_bytes(Bytes::copy_from_slice(frame))
}

/// Decode one frame (without the delimiter). The payload is a slice of `frame`, checked but
/// not parsed (see [`Payload`]).
///
/// Frames in the compact shape every `JSON.stringify` peer sends (`{"topic":"…","message":…}`
/// with no escape in the topic) take a fast path ([`decode_compact`]); anything else takes
/// the general one ([`decode_general`]). Both give the same result for every input.
///
/// # Errors
/// [`DecodeError`] for anything `JSON.parse` rejects (an empty frame, malformed JSON), for a
/// `null` frame, which makes the Node library drop the connection too, and for values
/// `serde_json` cannot represent (a number beyond `f64` range, nesting deeper than 128).
pub fn decode_bytes(frame: Bytes) -> Result<Envelope, DecodeError> {
    match std::str::from_utf8(&frame) {
        Ok(text) => match compact(&frame, text) {
            Some(env) => Ok(env),
            None => general(&frame, Some(text)),
        },
        Err(_) => general(&frame, None),
    }
}

/// The fast path alone: `Some` when `frame` has the compact shape
/// `{"topic":"<no escapes>"}` or `{"topic":"<no escapes>","message":<JSON>}` (no whitespace
/// outside strings, valid UTF-8, a payload that checks), `None` otherwise. When it is `Some`,
/// it equals what [`decode_general`] returns.
#[must_use]
pub fn decode_compact(frame: &Bytes) -> Option<Envelope> {
    compact(frame, std::str::from_utf8(frame).ok()?)
}

/// The general path alone: a full `serde_json` parse of the frame, with the repairs
/// `JSON.parse` and Node's string decoder imply (invalid UTF-8 and lone surrogate escapes
/// become U+FFFD).
///
/// # Errors
/// As [`decode_bytes`].
pub fn decode_general(frame: &Bytes) -> Result<Envelope, DecodeError> {
    general(frame, std::str::from_utf8(frame).ok())
}

const PREFIX: &[u8] = b"{\"topic\":\"";
const MESSAGE_KEY: &[u8] = b",\"message\":";

fn compact(frame: &Bytes, text: &str) -> Option<Envelope> {
    let rest = text.as_bytes().strip_prefix(PREFIX)?;
    let end = next_special(rest, 0);
    if rest.get(end) != Some(&b'"') {
        return None;
    }
    // `end` is at an ASCII byte, so a char boundary.
    let topic_range = PREFIX.len()..PREFIX.len() + end;
    text.get(topic_range.clone())?;
    let topic = || Topic::from_frame(frame, topic_range.clone());
    let after = &rest[end + 1..];
    if after == b"}" {
        return Some(Envelope {
            topic: topic(),
            message: Payload::absent(),
        });
    }
    let value = after.strip_prefix(MESSAGE_KEY)?.strip_suffix(b"}")?;
    let is_ws = |c: &u8| matches!(c, b' ' | b'\t' | b'\n' | b'\r');
    if value.first().is_none_or(is_ws) || value.last().is_none_or(is_ws) {
        return None;
    }
    let start = PREFIX.len() + end + 1 + MESSAGE_KEY.len();
    let range = start..start + value.len();
    payload::check(text.get(range.clone())?).ok()?;
    Some(Envelope {
        topic: topic(),
        message: Payload::from_checked(frame.slice(range)),
    })
}

fn general(frame: &Bytes, text: Option<&str>) -> Result<Envelope, DecodeError> {
    let first = match text {
        Some(text) => match parse(text, frame) {
            Ok(env) => return Ok(env),
            Err(e) => Some(e),
        },
        None => None,
    };
    // Rare paths: invalid UTF-8, or lone surrogate escapes, which JSON.parse accepts.
    let lossy = String::from_utf8_lossy(frame);
    let repaired = match (replace_lone_surrogates(&lossy), first) {
        (Some(fixed), _) => fixed,
        (None, Some(err)) => return Err(DecodeError::new(err.to_string(), frame)),
        (None, None) => lossy.into_owned(),
    };
    let owner = Bytes::from(repaired);
    let text = std::str::from_utf8(&owner).map_err(|e| DecodeError::new(e.to_string(), frame))?;
    parse(text, &owner).map_err(|e| DecodeError::new(e.to_string(), frame))
}

/// Parse `text`, a view of `owner`; the payload is a slice of `owner`.
fn parse(text: &str, owner: &Bytes) -> Result<Envelope, serde_json::Error> {
    let mut de = serde_json::Deserializer::from_str(text);
    let env = de.deserialize_any(EnvelopeVisitor)?;
    de.end()?;
    let env = env.ok_or_else(|| de::Error::custom("the frame is `null`, not an object"))?;
    let message = match env.message {
        None => Payload::absent(),
        Some(raw) => {
            // The raw value was only checked loosely (as serde_json skips values); check it
            // as a `Value` parse would.
            payload::check(raw.get())?;
            Payload::from_checked(owner.slice_ref(raw.get().as_bytes()))
        }
    };
    Ok(Envelope {
        topic: env.topic,
        message,
    })
}

struct RawEnvelope<'a> {
    topic: Topic,
    message: Option<&'a RawValue>,
}

/// Visits the top-level JSON value. `None` for `null` (an error); a non-object value yields
/// topic `undefined` and no message, as Node's library delivers it.
struct EnvelopeVisitor;

impl<'de> Visitor<'de> for EnvelopeVisitor {
    type Value = Option<RawEnvelope<'de>>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON object with `topic` and `message`")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut topic: Option<Value> = None;
        let mut message: Option<&'de RawValue> = None;
        while let Some(key) = map.next_key::<std::borrow::Cow<'de, str>>()? {
            match &*key {
                "topic" => topic = Some(map.next_value()?),
                "message" => message = Some(map.next_value()?),
                _ => {
                    map.next_value::<IgnoredAny>()?;
                }
            }
        }
        Ok(Some(RawEnvelope {
            topic: topic
                .as_ref()
                .map_or_else(undefined, |t| Topic::from(js_string(t))),
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

/// The topic of a message without one: JavaScript's `String(undefined)`.
fn undefined() -> Topic {
    Topic::from_static("undefined")
}

fn undefined_envelope<'a>() -> RawEnvelope<'a> {
    RawEnvelope {
        topic: undefined(),
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

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use serde_json::json;

    fn enc(topic: &str, message: Option<Value>) -> Vec<u8> {
        let mut out = Vec::new();
        encode_value(topic, message.as_ref(), &mut out).unwrap();
        let mut via_payload = Vec::new();
        encode(topic, &message.clone().into(), &mut via_payload).unwrap();
        assert_eq!(out, via_payload, "encode and encode_value agree");
        out
    }

    fn undefined() -> Envelope {
        Envelope {
            topic: "undefined".into(),
            message: Payload::absent(),
        }
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
            enc("a\"b\\c\u{1}\n", Some(json!(1))),
            br#"{"topic":"a\"b\\c\u0001\n","message":1}"#
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
                message: json!({"k": 1}).into()
            }
        );
        let env = decode(br#"{"topic":"x"}"#).unwrap();
        assert_eq!(env.message, None);
        assert!(env.message.is_absent());
        let env = decode(br#"{"topic":"a","topic":"b","zz":[1,{"q":2}]}"#).unwrap();
        assert_eq!(env.topic, "b", "the last duplicate key wins");
        let env = decode(br#"{"topic":"a","message":1,"message":[2]}"#).unwrap();
        assert_eq!(env.message, Some(json!([2])), "the last duplicate key wins");
        assert_eq!(decode(br#"{"message":1}"#).unwrap().topic, "undefined");
        assert_eq!(decode(br#"{"topic":null}"#).unwrap().topic, "null");
        assert_eq!(decode(br#"{"topic":5}"#).unwrap().topic, "5");
        assert_eq!(decode(br#"{"topic":[1,null,"a"]}"#).unwrap().topic, "1,,a");
        assert_eq!(decode(b"42").unwrap(), undefined());
        assert_eq!(decode(br#""s""#).unwrap(), undefined());
        // Unknown keys are skipped as JSON.parse would read them (loosely).
        assert_eq!(
            decode(br#"{"topic":"a","x":"\ud800","y":1e400}"#)
                .unwrap()
                .topic,
            "a"
        );
    }

    #[test]
    fn lone_surrogates_and_bad_utf8_become_replacement_characters() {
        let env = decode(br#"{"topic":"u","message":"\u00e9\u0000\ud800"}"#).unwrap();
        assert_eq!(env.message, Some(json!("é\u{0}\u{fffd}")));
        let env = decode(br#"{"topic":"u","message":"a\udc00b\ud83d\ude00"}"#).unwrap();
        assert_eq!(env.message, Some(json!("a\u{fffd}b😀")));
        let env = decode(b"{\"topic\":\"u\",\"message\":\"\xff\xc3\"}").unwrap();
        assert_eq!(env.message, Some(json!("\u{fffd}\u{fffd}")));
        assert_eq!(
            env.message.json().as_deref(),
            Some("\"\u{fffd}\u{fffd}\""),
            "the payload text is the repaired text"
        );
        // An escaped backslash before `u` is not an escape.
        let env = decode(br#"{"topic":"u","message":"\\ud800"}"#).unwrap();
        assert_eq!(env.message, Some(json!("\\ud800")));
        let env = decode(br#"{"topic":"\ud800","message":1}"#).unwrap();
        assert_eq!(env.topic, "\u{fffd}");
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
            b"{\"topic\":\"a\",\"message\":}",
            b"{\"topic\":\"a\",\"message\":1",
            b"{\"topic\":\"a\",\"message\":\"\x01\"}",
        ] {
            let err = decode(bad).unwrap_err();
            assert!(!err.reason().is_empty(), "{bad:?}");
        }
        assert!(decode(b"null").unwrap_err().reason().contains("null"));
        // What serde_json cannot hold in a Value stays an error, as before payloads were lazy.
        assert!(decode(br#"{"topic":"a","message":1e400}"#).is_err());
        let deep = format!(
            "{{\"topic\":\"a\",\"message\":{}{}}}",
            "[".repeat(200),
            "]".repeat(200)
        );
        assert!(decode(deep.as_bytes()).is_err());
    }

    #[test]
    fn compact_frames_take_the_fast_path_and_keep_their_bytes() {
        for frame in [
            &br#"{"topic":"echo","message":{"seq":0,"pad":"xxxxxxxxxxxxxxxx"}}"#[..],
            br#"{"topic":"","message":null}"#,
            br#"{"topic":"t"}"#,
            "{\"topic\":\"é😀\",\"message\":[\"\\u0000\\n\",1e+21,{}]}".as_bytes(),
            br#"{"topic":"a","message":{"topic":"b","message":"c"}}"#,
        ] {
            let bytes = Bytes::copy_from_slice(frame);
            let fast = decode_compact(&bytes).expect("compact");
            assert_eq!(&fast, &decode_general(&bytes).unwrap());
            let mut again = Vec::new();
            encode(&fast.topic, &fast.message, &mut again).unwrap();
            assert_eq!(again, frame, "re-encoding copies the bytes");
        }
        for frame in [
            &br#"{"topic":"a" ,"message":1}"#[..],
            br#"{"topic":"a","message": 1}"#,
            br#"{"topic":"a","message":1 }"#,
            br#"{"topic":"a\"b","message":1}"#,
            br#"{"topic":"a","message":1,"x":2}"#,
            br#"{"topic":"a","message":1,"message":2}"#,
            br#"{"message":1,"topic":"a"}"#,
            br#"{"topic":"a","message":"\ud800"}"#,
            br#"{"topic":"a","message":1e400}"#,
            br#"{"topic":"a"} "#,
            b"{\"topic\":\"a\",\"message\":\"\xff\"}",
        ] {
            assert_eq!(
                decode_compact(&Bytes::copy_from_slice(frame)),
                None,
                "{frame:?}"
            );
        }
    }

    fn json_value() -> impl Strategy<Value = Value> {
        let leaf = prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::Bool),
            any::<i64>().prop_map(|i| json!(i)),
            any::<u64>().prop_map(|i| json!(i)),
            "[\"\\\\\u{0}-\u{1f}\u{7f}aé😀]{0,24}".prop_map(Value::String),
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

    /// Pieces that make frames awkward for a fast path.
    fn nasty_piece() -> impl Strategy<Value = Vec<u8>> {
        prop_oneof![
            Just(b"\"".to_vec()),
            Just(b"\\".to_vec()),
            Just(b"}".to_vec()),
            Just(b"{".to_vec()),
            Just(b",".to_vec()),
            Just(b":".to_vec()),
            Just(b" ".to_vec()),
            Just(b"\n".to_vec()),
            Just(b"\0".to_vec()),
            Just(b"\x01".to_vec()),
            Just(b"\xff".to_vec()),
            Just(b"\xc3".to_vec()),
            Just("é".as_bytes().to_vec()),
            Just(br#"\ud800"#.to_vec()),
            Just(br#"\udc00"#.to_vec()),
            Just(br#"\u0000"#.to_vec()),
            Just(br#","message":"#.to_vec()),
            Just(br#","topic":"#.to_vec()),
            Just(br#""message""#.to_vec()),
            Just(b"1e400".to_vec()),
            Just(b"null".to_vec()),
            Just(b"[".to_vec()),
            Just(b"]".to_vec()),
            proptest::collection::vec(any::<u8>(), 1..4),
        ]
    }

    /// A compact frame, then a few random edits with nasty pieces.
    fn frame() -> impl Strategy<Value = Vec<u8>> {
        (
            "[a-z\"\\\\é\u{0}\n]{0,6}",
            proptest::option::of(json_value()),
            proptest::collection::vec(
                (any::<prop::sample::Index>(), 0..3usize, nasty_piece()),
                0..4,
            ),
        )
            .prop_map(|(topic, message, edits)| {
                let mut f = Vec::new();
                encode_value(&topic, message.as_ref(), &mut f).unwrap();
                for (at, kind, piece) in edits {
                    let i = at.index(f.len() + 1);
                    match kind {
                        0 => {
                            f.splice(i..i, piece);
                        }
                        1 => {
                            let end = (i + piece.len()).min(f.len());
                            f.splice(i..end, piece);
                        }
                        _ => {
                            let end = (i + piece.len()).min(f.len());
                            f.drain(i..end);
                        }
                    }
                }
                f
            })
    }

    fn same(a: &Envelope, b: &Envelope) -> bool {
        a == b && a.message.json() == b.message.json()
    }

    proptest! {
        #[test]
        fn encode_then_decode_is_identity(topic in ".*", message in proptest::option::of(json_value())) {
            let bytes = enc(&topic, message.clone());
            prop_assert!(!bytes.contains(&0), "a raw NUL would break the framing");
            let env = decode(&bytes).unwrap();
            prop_assert_eq!(&env.topic, &topic);
            // Floats go through JS layout; compare numerically.
            prop_assert_eq!(env.message.value().map(|v| v.to_string()), message.map(|v| {
                let mut out = Vec::new();
                write_json(&v, &mut out).unwrap();
                serde_json::from_slice::<Value>(&out).unwrap().to_string()
            }));
            // Sending the received payload again gives the same bytes.
            let mut again = Vec::new();
            encode(&env.topic, &env.message, &mut again).unwrap();
            prop_assert_eq!(again, bytes);
        }

        #[test]
        fn value_writer_equals_serde_json_with_js_numbers(v in json_value(), s in ".*") {
            let mut ours = Vec::new();
            write_value(&v, &mut ours);
            let mut theirs = Vec::new();
            write_json(&v, &mut theirs).unwrap();
            prop_assert_eq!(ours, theirs);
            let mut ours = Vec::new();
            write_str(&s, &mut ours);
            prop_assert_eq!(ours, serde_json::to_vec(&s).unwrap());
        }

        #[test]
        fn next_special_finds_the_first_byte_to_escape(
            b in proptest::collection::vec(prop_oneof![Just(b'"'), Just(b'\\'), Just(0u8), Just(0x1f), Just(0x20), Just(0x7f), Just(0xff), any::<u8>(), Just(b'a')], 0..80),
            start in 0usize..80,
        ) {
            let start = start.min(b.len());
            let naive = b[start..].iter().position(|&c| c == b'"' || c == b'\\' || c < 0x20).map_or(b.len(), |p| start + p);
            prop_assert_eq!(next_special(&b, start), naive);
        }

        #[test]
        fn decode_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..256)) {
            let _ = decode(&bytes);
        }

        #[test]
        fn fast_and_general_paths_agree(f in frame()) {
            let bytes = Bytes::from(f);
            let general = decode_general(&bytes);
            if let Some(fast) = decode_compact(&bytes) {
                let g = general.as_ref().expect("the general path accepts what the fast one does");
                prop_assert!(same(&fast, g), "fast {:?} general {:?}", fast, g);
            }
            match (decode_bytes(bytes.clone()), &general) {
                (Ok(a), Ok(b)) => prop_assert!(same(&a, b), "{:?} vs {:?}", a, b),
                (Err(a), Err(b)) => prop_assert_eq!(a.reason(), b.reason()),
                (a, b) => prop_assert!(false, "decode {:?} general {:?}", a, b),
            }
        }
    }
}
