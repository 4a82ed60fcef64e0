//! [`Payload`]: the `message` of one IPC message, kept as JSON text and parsed only on demand.
//!
//! A received payload is a slice of the received frame (no copy), checked once when the frame
//! arrives: anything `serde_json` would not parse into a [`Value`] is a decode error then, so
//! reading the payload later never fails. [`value`](Payload::value) parses it on first use and
//! keeps the result; [`deserialize`](Payload::deserialize) reads a typed value straight from
//! the text. Sending a received payload again (an echo, a forward, a broadcast) copies its
//! bytes: nothing is parsed or serialized.
//!
//! A payload is *absent* when the sender left the `message` key out (Node's `undefined`),
//! which is different from a JSON `null`.
//!
//! ```
//! use connkit_ipc::Payload;
//! use serde_json::json;
//!
//! // From a Value, an Option<Value>, any Serialize, or JSON text.
//! let a = Payload::from(json!({"seq": 1, "x": 1.0}));
//! assert_eq!(a.json().as_deref(), Some(r#"{"seq":1,"x":1}"#)); // JSON.stringify's layout
//! let b = Payload::from_json(r#"{"seq":1,"x":1}"#)?;
//! assert_eq!(a, b);
//! assert_eq!(b.value(), Some(&json!({"seq": 1, "x": 1})));
//!
//! #[derive(serde::Deserialize, serde::Serialize, Debug, PartialEq)]
//! struct Tick { seq: u32, x: f64 }
//! assert_eq!(b.deserialize::<Tick>()?, Tick { seq: 1, x: 1.0 });
//! let c = Payload::serialize(&Tick { seq: 1, x: 1.0 })?;
//! assert_eq!(c, b);
//!
//! let none = Payload::from(None);
//! assert!(none.is_absent());
//! assert_eq!(none, None::<serde_json::Value>);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

use crate::wire::{self, DecodeError, EncodeError};
use bytes::Bytes;
use serde::de::{self, DeserializeOwned, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_json::Value;
use std::borrow::Cow;
use std::fmt;
use std::sync::{Arc, OnceLock};

/// The payload of a message: JSON text, parsed on demand, or absent.
///
/// Cheap to clone (the text is shared). Clones made after the payload was parsed share the
/// parsed value too.
#[derive(Clone, Default)]
pub struct Payload(Repr);

#[derive(Clone, Default)]
enum Repr {
    /// No `message` key (JavaScript `undefined`).
    #[default]
    Absent,
    /// Checked JSON text (one value, UTF-8, no surrounding whitespace, no lone surrogate
    /// escapes), parsed on first use.
    Text {
        text: Bytes,
        parsed: OnceLock<Arc<Value>>,
    },
    /// A value given by the application, written out on demand.
    Value {
        value: Arc<Value>,
        text: OnceLock<Bytes>,
    },
}

impl Payload {
    /// No payload: the `message` key is left out, as Node does for `send(topic)`.
    #[must_use]
    pub const fn absent() -> Self {
        Self(Repr::Absent)
    }

    /// A payload holding `value`. It is written out when sent, in `JSON.stringify`'s layout.
    #[must_use]
    pub fn from_value(value: Value) -> Self {
        Self(Repr::Value {
            value: Arc::new(value),
            text: OnceLock::new(),
        })
    }

    /// Serialize any value once, now, as `JSON.stringify` would (compact, numbers in
    /// JavaScript's layout, NaN and ±Infinity as `null`).
    ///
    /// # Errors
    /// [`EncodeError`] when the value cannot be written as JSON (for example a map whose keys
    /// are not strings, or a `Serialize` implementation that fails).
    pub fn serialize<T: serde::Serialize + ?Sized>(value: &T) -> Result<Self, EncodeError> {
        crate::write_bytes(|out| wire::write_json(value, out)).map(Self::from_checked)
    }

    /// A payload from JSON text, which is sent as it is (byte for byte) after being checked
    /// once here. Whitespace around the value is dropped; lone UTF-16 surrogate escapes such
    /// as `"\ud800"` are replaced by `"\ufffd"`, as everywhere else in this crate.
    ///
    /// # Errors
    /// [`DecodeError`] when the text is not UTF-8 or not exactly one JSON value that
    /// `serde_json` can read into a [`Value`] (for example a number out of `f64` range).
    pub fn from_json(text: impl Into<Bytes>) -> Result<Self, DecodeError> {
        let text: Bytes = text.into();
        let s = std::str::from_utf8(&text).map_err(|e| DecodeError::new(e.to_string(), &text))?;
        let trimmed = s.trim_matches(|c| matches!(c, ' ' | '\t' | '\n' | '\r'));
        if trimmed.is_empty() {
            return Err(DecodeError::new("no JSON value", &text));
        }
        match check(trimmed) {
            Ok(()) => Ok(Self::from_checked(text.slice_ref(trimmed.as_bytes()))),
            Err(e) => match replace_lone_surrogates(trimmed) {
                Some(fixed) => match check(&fixed) {
                    Ok(()) => Ok(Self::from_checked(Bytes::from(fixed))),
                    Err(e) => Err(DecodeError::new(e.to_string(), &text)),
                },
                None => Err(DecodeError::new(e.to_string(), &text)),
            },
        }
    }

    /// Checked text (see [`check`]), without surrounding whitespace.
    pub(crate) fn from_checked(text: Bytes) -> Self {
        Self(Repr::Text {
            text,
            parsed: OnceLock::new(),
        })
    }

    /// Whether there is no payload (no `message` key on the wire).
    #[must_use]
    pub fn is_absent(&self) -> bool {
        matches!(self.0, Repr::Absent)
    }

    /// The JSON text as it goes on the wire; `None` when absent. A payload built from a
    /// [`Value`] is written out on the first call and kept.
    #[must_use]
    pub fn json(&self) -> Option<Cow<'_, str>> {
        self.json_bytes().map(|b| match std::str::from_utf8(b) {
            Ok(s) => Cow::Borrowed(s),
            // Never: the text was checked (or written by serde_json).
            Err(_) => String::from_utf8_lossy(b),
        })
    }

    /// The JSON text as bytes (shared, not copied); `None` when absent.
    #[must_use]
    pub fn json_bytes(&self) -> Option<&Bytes> {
        match &self.0 {
            Repr::Absent => None,
            Repr::Text { text, .. } => Some(text),
            Repr::Value { value, text } => Some(text.get_or_init(|| value_text(value))),
        }
    }

    /// The payload as a [`Value`], parsed on the first call and kept; `None` when absent.
    #[must_use]
    pub fn value(&self) -> Option<&Value> {
        match &self.0 {
            Repr::Absent => None,
            Repr::Text { text, parsed } => Some(parsed.get_or_init(|| Arc::new(parse(text)))),
            Repr::Value { value, .. } => Some(value),
        }
    }

    /// The payload as an owned [`Value`] (`None` when absent). Takes the value without a copy
    /// when this is its only holder.
    #[must_use]
    pub fn into_value(self) -> Option<Value> {
        let shared = match self.0 {
            Repr::Absent => return None,
            Repr::Text { text, parsed } => match parsed.into_inner() {
                Some(v) => v,
                None => return Some(parse(&text)),
            },
            Repr::Value { value, .. } => value,
        };
        Some(Arc::try_unwrap(shared).unwrap_or_else(|v| (*v).clone()))
    }

    /// Deserialize the payload into any type, straight from the JSON text (no [`Value`] in
    /// between). An absent payload reads as `null`, so `Option<T>` gives `None`.
    ///
    /// # Errors
    /// The `serde_json` error when the JSON does not fit `T`.
    pub fn deserialize<T: DeserializeOwned>(&self) -> Result<T, serde_json::Error> {
        match &self.0 {
            Repr::Absent => T::deserialize(&Value::Null),
            Repr::Text { text, parsed } => match parsed.get() {
                Some(v) => T::deserialize(&**v),
                None => serde_json::from_slice(text),
            },
            Repr::Value { value, .. } => T::deserialize(&**value),
        }
    }

    /// Append the JSON text to `out` (nothing when absent). A payload built from a value is
    /// written straight into `out`, not kept.
    pub(crate) fn write_to(&self, out: &mut Vec<u8>) {
        match &self.0 {
            Repr::Absent => {}
            Repr::Text { text, .. } => out.extend_from_slice(text),
            Repr::Value { value, text } => match text.get() {
                Some(t) => out.extend_from_slice(t),
                None => write_value(value, out),
            },
        }
    }

    /// The length of the JSON text when it is known without writing it out.
    pub(crate) fn known_len(&self) -> Option<usize> {
        match &self.0 {
            Repr::Absent => Some(0),
            Repr::Text { text, .. } => Some(text.len()),
            Repr::Value { text, .. } => text.get().map(Bytes::len),
        }
    }
}

fn write_value(value: &Value, out: &mut Vec<u8>) {
    wire::write_value(value, out);
}

fn value_text(value: &Value) -> Bytes {
    crate::write_bytes(|out| {
        write_value(value, out);
        Ok::<_, std::convert::Infallible>(())
    })
    .unwrap_or_default()
}

/// Parse checked text.
fn parse(text: &[u8]) -> Value {
    serde_json::from_slice(text).unwrap_or_else(|e| {
        // Never: `check` accepts exactly what this parse accepts.
        tracing::error!(error = %e, "a checked payload did not parse");
        Value::Null
    })
}

/// Check that `text` is one JSON value that `serde_json` reads into a [`Value`], without
/// building it: the same grammar, string escapes, number range and depth limit, no
/// allocation except for strings with escapes. Whitespace around the value is allowed.
///
/// Common JSON (no `\u` escapes, no exponents, short numbers, shallow nesting) is recognised
/// by a quick scan first; anything else, valid or not, goes through `serde_json`.
pub(crate) fn check(text: &str) -> Result<(), serde_json::Error> {
    if quick::plain_json(text.as_bytes()) {
        return Ok(());
    }
    let mut de = serde_json::Deserializer::from_str(text);
    de::Deserialize::deserialize(&mut de).map(|Checked| ())?;
    de.end()
}

mod quick {
    //! A scan that says "valid" only for JSON `serde_json` certainly reads into a `Value`:
    //! strict grammar, no `\u` escape (lone surrogates are errors there), no exponent and at
    //! most 100 characters per number (no overflow), nesting below 100 (the limit is 128).
    //! Everything else is left to `serde_json`, which then also gives the error message.

    const MAX_DEPTH: usize = 100;
    const MAX_NUMBER: usize = 100;

    fn ws(b: &[u8], mut i: usize) -> usize {
        while let Some(b' ' | b'\t' | b'\n' | b'\r') = b.get(i) {
            i += 1;
        }
        i
    }

    /// The end of the string starting at `b[i] == '"'`.
    fn string(b: &[u8], mut i: usize) -> Option<usize> {
        i += 1;
        loop {
            i = crate::wire::next_special(b, i);
            match *b.get(i)? {
                b'"' => return Some(i + 1),
                b'\\' => match *b.get(i + 1)? {
                    b'"' | b'\\' | b'/' | b'b' | b'f' | b'n' | b'r' | b't' => i += 2,
                    _ => return None,
                },
                _ => return None,
            }
        }
    }

    /// After the key starting at `b[i] == '"'` and its colon: where the member's value starts.
    fn key(b: &[u8], i: usize) -> Option<usize> {
        let i = ws(b, string(b, i)?);
        (b.get(i) == Some(&b':')).then(|| ws(b, i + 1))
    }

    fn number(b: &[u8], start: usize) -> Option<usize> {
        let mut i = start;
        if b.get(i) == Some(&b'-') {
            i += 1;
        }
        match *b.get(i)? {
            b'0' => i += 1,
            b'1'..=b'9' => {
                while b.get(i).is_some_and(u8::is_ascii_digit) {
                    i += 1;
                }
            }
            _ => return None,
        }
        if b.get(i) == Some(&b'.') {
            i += 1;
            if !b.get(i).is_some_and(u8::is_ascii_digit) {
                return None;
            }
            while b.get(i).is_some_and(u8::is_ascii_digit) {
                i += 1;
            }
        }
        if matches!(b.get(i), Some(b'e' | b'E')) || i - start > MAX_NUMBER {
            return None;
        }
        Some(i)
    }

    /// `true` only if `b` is one JSON value (whitespace around allowed) that serde_json
    /// accepts; `false` means "ask serde_json".
    pub(super) fn plain_json(b: &[u8]) -> bool {
        // Open containers: `true` for an object.
        let mut stack = [false; MAX_DEPTH];
        let mut depth = 0;
        let mut i = ws(b, 0);
        'value: loop {
            // A value starts at `i`.
            let Some(&c) = b.get(i) else { return false };
            i = match c {
                b'{' | b'[' => {
                    if depth == MAX_DEPTH {
                        return false;
                    }
                    stack[depth] = c == b'{';
                    depth += 1;
                    i = ws(b, i + 1);
                    match (c, b.get(i)) {
                        (b'{', Some(b'}')) | (b'[', Some(b']')) => {
                            depth -= 1;
                            i + 1
                        }
                        (b'{', Some(b'"')) => {
                            let Some(value) = key(b, i) else {
                                return false;
                            };
                            i = value;
                            continue 'value;
                        }
                        (b'{', _) => return false,
                        _ => continue 'value,
                    }
                }
                b'"' => match string(b, i) {
                    Some(end) => end,
                    None => return false,
                },
                b't' if b[i..].starts_with(b"true") => i + 4,
                b'f' if b[i..].starts_with(b"false") => i + 5,
                b'n' if b[i..].starts_with(b"null") => i + 4,
                b'-' | b'0'..=b'9' => match number(b, i) {
                    Some(end) => end,
                    None => return false,
                },
                _ => return false,
            };
            // After a value: close containers, or a comma and the next value.
            loop {
                i = ws(b, i);
                if depth == 0 {
                    return i == b.len();
                }
                let in_object = stack[depth - 1];
                match b.get(i) {
                    Some(b',') => {
                        i = ws(b, i + 1);
                        if in_object {
                            if b.get(i) != Some(&b'"') {
                                return false;
                            }
                            let Some(value) = key(b, i) else {
                                return false;
                            };
                            i = value;
                        }
                        continue 'value;
                    }
                    Some(b'}') if in_object => {
                        depth -= 1;
                        i += 1;
                    }
                    Some(b']') if !in_object => {
                        depth -= 1;
                        i += 1;
                    }
                    _ => return false,
                }
            }
        }
    }
}

/// A JSON value that was read and thrown away.
struct Checked;

impl<'de> de::Deserialize<'de> for Checked {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(CheckVisitor)
    }
}

struct CheckVisitor;

impl<'de> Visitor<'de> for CheckVisitor {
    type Value = Checked;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any JSON value")
    }

    fn visit_bool<E: de::Error>(self, _: bool) -> Result<Checked, E> {
        Ok(Checked)
    }

    fn visit_i64<E: de::Error>(self, _: i64) -> Result<Checked, E> {
        Ok(Checked)
    }

    fn visit_u64<E: de::Error>(self, _: u64) -> Result<Checked, E> {
        Ok(Checked)
    }

    fn visit_f64<E: de::Error>(self, _: f64) -> Result<Checked, E> {
        Ok(Checked)
    }

    fn visit_str<E: de::Error>(self, _: &str) -> Result<Checked, E> {
        Ok(Checked)
    }

    fn visit_unit<E: de::Error>(self) -> Result<Checked, E> {
        Ok(Checked)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Checked, A::Error> {
        while seq.next_element::<Checked>()?.is_some() {}
        Ok(Checked)
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Checked, A::Error> {
        while map.next_key::<Checked>()?.is_some() {
            map.next_value::<Checked>()?;
        }
        Ok(Checked)
    }
}

/// Replace `\uXXXX` escapes of unpaired UTF-16 surrogates with `\ufffd` (same length).
/// Returns `None` when there is nothing to replace.
pub(crate) fn replace_lone_surrogates(text: &str) -> Option<String> {
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

impl fmt::Debug for Payload {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.0 {
            Repr::Absent => f.write_str("Payload(absent)"),
            Repr::Text { text, .. } => {
                write!(f, "Payload({})", String::from_utf8_lossy(text))
            }
            Repr::Value { value, .. } => write!(f, "Payload({value})"),
        }
    }
}

impl Payload {
    /// The value this payload puts on the wire (for a payload built from a value: its JSON
    /// text read back, so `1.0` is `1` and `-0.0` is `0`, as `JSON.stringify` writes them).
    fn wire_value(&self) -> Option<Cow<'_, Value>> {
        match &self.0 {
            Repr::Absent => None,
            Repr::Text { .. } => self.value().map(Cow::Borrowed),
            Repr::Value { .. } => self.json_bytes().map(|t| Cow::Owned(parse(t))),
        }
    }
}

/// Equal when both are absent, or both put the same JSON value on the wire (compared as
/// text first, then as values: `{"a":1,"b":2}` equals `{"b":2,"a":1}`, and a payload built
/// from `1.0` equals one received as `1`).
impl PartialEq for Payload {
    fn eq(&self, other: &Self) -> bool {
        match (&self.0, &other.0) {
            (Repr::Absent, Repr::Absent) => true,
            (Repr::Absent, _) | (_, Repr::Absent) => false,
            _ if self.json_bytes() == other.json_bytes() => true,
            _ => self.wire_value() == other.wire_value(),
        }
    }
}

/// Compares [`value`](Payload::value) with `other`.
impl PartialEq<Value> for Payload {
    fn eq(&self, other: &Value) -> bool {
        self.value() == Some(other)
    }
}

/// `None` equals an absent payload; `Some(v)` as `PartialEq<Value>`.
impl PartialEq<Option<Value>> for Payload {
    fn eq(&self, other: &Option<Value>) -> bool {
        match other {
            None => self.is_absent(),
            Some(v) => self == v,
        }
    }
}

impl From<Value> for Payload {
    fn from(value: Value) -> Self {
        Self::from_value(value)
    }
}

/// Writes the value out now (no clone of the value).
impl From<&Value> for Payload {
    fn from(value: &Value) -> Self {
        Self::from_checked(value_text(value))
    }
}

/// `None` is an absent payload.
impl From<Option<Value>> for Payload {
    fn from(value: Option<Value>) -> Self {
        value.map_or_else(Self::absent, Self::from_value)
    }
}

impl From<&Payload> for Payload {
    fn from(p: &Payload) -> Self {
        p.clone()
    }
}

/// Absent payloads serialize as `null`; others as their value.
impl serde::Serialize for Payload {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self.value() {
            None => s.serialize_none(),
            Some(v) => v.serialize(s),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn check_accepts_exactly_what_value_parsing_accepts() {
        for text in [
            "1",
            "-0",
            "1e21",
            "1.5e-7",
            "12345678901234567890",
            "123456789012345678901234567890",
            "1e400",
            "-1e400",
            "\"\\ud800\"",
            "\"\\ud83d\\ude00\"",
            "\"\\udc00\\ud800\"",
            "\"a\\u0000b\"",
            "\"\u{0}\"",
            "\"\t\"",
            "[1,2,]",
            "{\"a\":1,}",
            "{\"a\":1,\"a\":2}",
            "{\"a\" : [ 1 , {} ] }",
            " 1 ",
            "",
            "nul",
            "null",
            "true false",
            "01",
            "1.",
            ".1",
            "+1",
            "\"\\x\"",
            "\"\\u12\"",
            "[",
            "{\"a\"}",
            "{1:2}",
        ] {
            let value: Result<Value, _> = serde_json::from_str(text);
            assert_eq!(check(text).is_ok(), value.is_ok(), "{text:?}");
        }
        let deep = format!("{}{}", "[".repeat(200), "]".repeat(200));
        assert!(check(&deep).is_err());
        assert!(serde_json::from_str::<Value>(&deep).is_err());
    }

    #[test]
    fn the_quick_scan_accepts_only_what_serde_json_accepts() {
        for (text, plain) in [
            ("1", true),
            ("-0", true),
            ("-0.5", true),
            (" {\"a\" : [1, {\"b\":null}], \"c\":\"é\\n\"} ", true),
            ("[]", true),
            ("{}", true),
            ("[[],{},\"\",true,false,null]", true),
            ("\"\\\"\\\\\\/\\b\\f\\n\\r\\t\"", true),
            ("1e3", false),
            ("\"\\u0041\"", false),
            ("01", false),
            ("1.", false),
            ("-", false),
            ("[1,]", false),
            ("{\"a\":1,}", false),
            ("{\"a\"}", false),
            ("{1:2}", false),
            ("[1 2]", false),
            ("\"\u{1}\"", false),
            ("nul", false),
            ("truex", false),
            ("1 2", false),
            ("", false),
            ("[", false),
            ("]", false),
        ] {
            assert_eq!(quick::plain_json(text.as_bytes()), plain, "{text:?}");
        }
        let deep = |n: usize| format!("{}{}", "[".repeat(n), "]".repeat(n));
        assert!(quick::plain_json(deep(100).as_bytes()));
        assert!(!quick::plain_json(deep(101).as_bytes()));
        assert!(!quick::plain_json("9".repeat(101).as_bytes()));
    }

    proptest::proptest! {
        #[test]
        fn quick_scan_is_never_wrong(text in "[\\[\\]{}\",:0-9.eE+\\- \\\\a-z\u{1}é]{0,40}") {
            if quick::plain_json(text.as_bytes()) {
                proptest::prop_assert!(serde_json::from_str::<Value>(&text).is_ok(), "{:?}", text);
            }
        }

        #[test]
        fn quick_scan_accepts_generated_json(v in json_value()) {
            let text = serde_json::to_string(&v).unwrap();
            let quick = quick::plain_json(text.as_bytes());
            proptest::prop_assert_eq!(check(&text).is_ok(), true);
            if !text.contains("\\u") && !text.contains('e') && !text.contains('E') {
                proptest::prop_assert!(quick, "{}", text);
            }
        }
    }

    fn json_value() -> impl proptest::strategy::Strategy<Value = Value> {
        use proptest::prelude::*;
        let leaf = prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::Bool),
            any::<i64>().prop_map(|i| json!(i)),
            (-1e6f64..1e6).prop_map(|f| json!(f)),
            "[a-z\"\\\\/\n\t]{0,8}".prop_map(Value::String),
        ];
        leaf.prop_recursive(4, 32, 6, |inner| {
            prop_oneof![
                proptest::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
                proptest::collection::vec(("[a-z]{0,4}", inner), 0..6)
                    .prop_map(|kv| Value::Object(kv.into_iter().collect())),
            ]
        })
    }

    #[test]
    fn conversions() {
        assert!(Payload::default().is_absent());
        assert!(Payload::from(None).is_absent());
        assert_eq!(Payload::from(None).json(), None);
        assert_eq!(
            Payload::from(None).deserialize::<Option<u8>>().unwrap(),
            None
        );
        let p = Payload::from(json!([1.0, -0.0, "é"]));
        assert_eq!(p.json().as_deref(), Some("[1,0,\"é\"]"));
        assert_eq!(
            Payload::from(&json!({"b": 1, "a": 2})).json().as_deref(),
            Some("{\"b\":1,\"a\":2}")
        );
        let t = Payload::from_json(" \n[1,0,\"é\"]\t").unwrap();
        assert_eq!(t.json().as_deref(), Some("[1,0,\"é\"]"));
        assert_eq!(t, p);
        assert_eq!(t.clone().into_value(), Some(json!([1, 0, "é"])));
        assert_eq!(
            t.deserialize::<(u8, u8, String)>().unwrap(),
            (1, 0, "é".to_owned())
        );
        let s = Payload::from_json(r#""\ud800x""#).unwrap();
        assert_eq!(s.json().as_deref(), Some(r#""\ufffdx""#));
        assert_eq!(s, json!("\u{fffd}x"));
        for bad in ["", " ", "1 2", "{", "1e400", "\"\u{1}\""] {
            assert!(Payload::from_json(bad).is_err(), "{bad:?}");
        }
        assert!(Payload::from_json(&b"\"\xff\""[..]).is_err());
        assert_eq!(
            Payload::serialize(&(f64::NAN, 1e21, 0.1))
                .unwrap()
                .json()
                .as_deref(),
            Some("[null,1e+21,0.1]")
        );
        let unordered = Payload::from_json(r#"{"a":1,"b":2}"#).unwrap();
        assert_eq!(unordered, Payload::from_json(r#"{"b":2,"a":1}"#).unwrap());
        assert_ne!(unordered, Payload::absent());
        assert_ne!(Payload::from(Value::Null), Payload::absent());
        assert_eq!(serde_json::to_string(&Payload::absent()).unwrap(), "null");
        assert_eq!(
            serde_json::to_string(&unordered).unwrap(),
            r#"{"a":1,"b":2}"#
        );
    }
}
