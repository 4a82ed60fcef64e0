//! Writing a [`Value`] as the bytes Node's `mdsf.stringify` writes (spec §3.1, §3.3).
//!
//! - No whitespace anywhere.
//! - Object keys bare when they match `^[A-Za-z_$][A-Za-z0-9_$]*$`, otherwise quoted like
//!   strings (`'b-c'`, `'1'`, `'ü'`, `''`). Members whose value is `undefined` are left out.
//! - Strings in single quotes, escaped as `JSON.stringify` escapes them (`\"`, `\\`,
//!   `\b \f \n \r \t`, other C0 controls as `\u00xx` with lower-case hex), plus `\'`.
//!   Everything else is raw UTF-8 (DEL, non-BMP characters), **except U+2028 and U+2029**,
//!   written `\u2028` and `\u2029` (spec §3.3: both Node parsers read that form, the native
//!   one rejects them raw; Node itself writes them raw). No raw NUL is ever written.
//! - Numbers as JavaScript's `String(n)` (see `number.rs`): `42`, `-5`, `0.1`, `1e+21`,
//!   `1e-7`; `-0` is `0`. NaN and ±Infinity fail with
//!   [`SerializeError::NonFiniteNumber`]: Node's parser cannot read them and a Node client
//!   without an `'error'` listener crashes on them (spec §3.3, quirk 1).
//! - Arrays: `undefined` elements are empty slots (`[1,,3]`, `[,1]`), as Node writes them.
//!   When the **last** element is `undefined`, one more comma is written (`[1,,]`, `[,]`) so
//!   the array keeps its length; Node writes `[1,]` there, which reads back one element
//!   shorter (spec §3.1, quirk 2). Both Node parsers read `[1,,]` as `[1, undefined]`.
//! - `undefined` at the top level is written `undefined`.

use bytes::BufMut;

use super::Value;
use super::number;

/// Why a [`Value`] cannot be serialized.
#[derive(Debug, Clone, Copy, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum SerializeError {
    /// NaN, Infinity or -Infinity: Node's JSTP parser (mdsf's JavaScript fallback, what
    /// modern Node runs) rejects them and drops the connection, so they are never sent.
    #[error("{value} cannot be serialized: NaN and Infinity have no JSTP form that Node can parse")]
    NonFiniteNumber {
        /// The offending number.
        value: f64,
    },
}

/// Serializes `value` into a new buffer.
///
/// # Errors
///
/// [`SerializeError::NonFiniteNumber`] if the value contains NaN or ±Infinity.
///
/// ```
/// use connkit_jstp::value::{self, Object, Value};
///
/// let v: Value = [("ok", Value::from(vec![Value::from(1e21), Value::from("it's")]))]
///     .into_iter()
///     .collect::<Object>()
///     .into();
/// assert_eq!(value::serialize(&v)?, b"{ok:[1e+21,'it\\'s']}");
/// assert!(value::serialize(&Value::from(f64::NAN)).is_err());
/// # Ok::<(), value::SerializeError>(())
/// ```
pub fn serialize(value: &Value) -> Result<Vec<u8>, SerializeError> {
    let mut out = Vec::with_capacity(128);
    serialize_into(value, &mut out)?;
    Ok(out)
}

/// Serializes `value` into a new `String` (the output is always valid UTF-8).
///
/// # Errors
///
/// [`SerializeError::NonFiniteNumber`] if the value contains NaN or ±Infinity.
pub fn serialize_to_string(value: &Value) -> Result<String, SerializeError> {
    let bytes = serialize(value)?;
    // Only ASCII and copies of whole `str`s are written.
    Ok(String::from_utf8(bytes)
        .unwrap_or_else(|e| String::from_utf8_lossy(e.as_bytes()).into_owned()))
}

/// Appends the serialization of `value` to `out` (a reused `Vec<u8>`, a `BytesMut`, …).
///
/// # Errors
///
/// [`SerializeError::NonFiniteNumber`] if the value contains NaN or ±Infinity. The bytes
/// written before the bad number stay in `out`; truncate to the length it had before the call
/// if the buffer is reused.
///
/// ```
/// use bytes::BytesMut;
/// use connkit_jstp::value::{self, Value};
///
/// let mut frame = BytesMut::new();
/// value::serialize_into(&"calc".into(), &mut frame)?;
/// frame.extend_from_slice(b"\0");
/// assert_eq!(&frame[..], b"'calc'\0");
/// # Ok::<(), value::SerializeError>(())
/// ```
pub fn serialize_into<B: BufMut + ?Sized>(
    value: &Value,
    out: &mut B,
) -> Result<(), SerializeError> {
    Writer {
        out,
        lenient: false,
    }
    .top(value)
}

/// The `Display` form: the wire form, with non-finite numbers written as Node writes them.
pub(crate) fn write_display(value: &Value, out: &mut Vec<u8>) {
    // Lenient mode never fails.
    let _ = Writer { out, lenient: true }.top(value);
}

struct Writer<'a, B: ?Sized> {
    out: &'a mut B,
    /// Write NaN/Infinity as text instead of failing (Display only).
    lenient: bool,
}

impl<B: BufMut + ?Sized> Writer<'_, B> {
    fn top(&mut self, value: &Value) -> Result<(), SerializeError> {
        match value {
            Value::Undefined => {
                self.out.put_slice(b"undefined");
                Ok(())
            }
            other => self.value(other),
        }
    }

    /// Any value but a top-level `undefined` (arrays and objects handle theirs).
    fn value(&mut self, value: &Value) -> Result<(), SerializeError> {
        match value {
            Value::Undefined => {}
            Value::Null => self.out.put_slice(b"null"),
            Value::Bool(true) => self.out.put_slice(b"true"),
            Value::Bool(false) => self.out.put_slice(b"false"),
            Value::Number(n) => self.number(*n)?,
            Value::String(s) => write_string(s, self.out),
            Value::Array(items) => {
                self.out.put_u8(b'[');
                if let Some((last, init)) = items.split_last() {
                    for item in init {
                        self.value(item)?;
                        self.out.put_u8(b',');
                    }
                    self.value(last)?;
                    if last.is_undefined() {
                        // Keep the length: `[1,,]` is [1, undefined], `[1,]` would be [1].
                        self.out.put_u8(b',');
                    }
                }
                self.out.put_u8(b']');
            }
            Value::Object(object) => {
                self.out.put_u8(b'{');
                let mut first = true;
                for (key, item) in object {
                    if item.is_undefined() {
                        continue;
                    }
                    if !first {
                        self.out.put_u8(b',');
                    }
                    first = false;
                    write_key(key, self.out);
                    self.out.put_u8(b':');
                    self.value(item)?;
                }
                self.out.put_u8(b'}');
            }
        }
        Ok(())
    }

    fn number(&mut self, n: f64) -> Result<(), SerializeError> {
        if n.is_finite() {
            number::write_finite(n, self.out);
            Ok(())
        } else if self.lenient {
            number::write_js(n, self.out);
            Ok(())
        } else {
            Err(SerializeError::NonFiniteNumber { value: n })
        }
    }
}

/// Whether `key` matches `^[A-Za-z_$][A-Za-z0-9_$]*$` (mdsf writes such keys bare).
fn is_bare_key(key: &str) -> bool {
    let bytes = key.as_bytes();
    matches!(bytes.first(), Some(b'A'..=b'Z' | b'a'..=b'z' | b'_' | b'$'))
        && bytes[1..]
            .iter()
            .all(|&b| b.is_ascii_alphanumeric() || b == b'_' || b == b'$')
}

fn write_key<B: BufMut + ?Sized>(key: &str, out: &mut B) {
    if is_bare_key(key) {
        out.put_slice(key.as_bytes());
    } else {
        write_string(key, out);
    }
}

/// What to do with each byte inside a string: 0 copy, `b'u'` write `\u00xx`, `b'L'` maybe a
/// line or paragraph separator (0xE2), anything else: write a backslash and that byte.
static ESCAPE: [u8; 256] = {
    let mut table = [0u8; 256];
    let mut i = 0;
    while i < 0x20 {
        table[i] = b'u';
        i += 1;
    }
    table[0x08] = b'b';
    table[0x09] = b't';
    table[0x0A] = b'n';
    table[0x0C] = b'f';
    table[0x0D] = b'r';
    table[b'"' as usize] = b'"';
    table[b'\'' as usize] = b'\'';
    table[b'\\' as usize] = b'\\';
    table[0xE2] = b'L';
    table
};

const HEX: &[u8; 16] = b"0123456789abcdef";

fn write_string<B: BufMut + ?Sized>(s: &str, out: &mut B) {
    let bytes = s.as_bytes();
    out.put_u8(b'\'');
    let mut start = 0;
    let mut i = 0;
    while i < bytes.len() {
        let b = bytes[i];
        let action = ESCAPE[usize::from(b)];
        if action == 0 {
            i += 1;
            continue;
        }
        if action == b'L' {
            // U+2028 is E2 80 A8, U+2029 is E2 80 A9.
            match bytes.get(i + 1..i + 3) {
                Some([0x80, last @ (0xA8 | 0xA9)]) => {
                    out.put_slice(&bytes[start..i]);
                    out.put_slice(if *last == 0xA8 {
                        b"\\u2028"
                    } else {
                        b"\\u2029"
                    });
                    i += 3;
                    start = i;
                }
                _ => i += 1,
            }
            continue;
        }
        out.put_slice(&bytes[start..i]);
        if action == b'u' {
            out.put_slice(b"\\u00");
            out.put_u8(HEX[usize::from(b >> 4)]);
            out.put_u8(HEX[usize::from(b & 0xF)]);
        } else {
            out.put_u8(b'\\');
            out.put_u8(action);
        }
        i += 1;
        start = i;
    }
    out.put_slice(&bytes[start..]);
    out.put_u8(b'\'');
}

#[cfg(test)]
mod tests {
    use super::*;

    fn string(s: &str) -> String {
        let mut out = Vec::new();
        write_string(s, &mut out);
        String::from_utf8(out).unwrap_or_default()
    }

    #[test]
    fn bare_keys_are_ascii_identifiers() {
        for k in [
            "a",
            "call",
            "$x",
            "_y",
            "A1",
            "__proto__",
            "undefined",
            "if",
        ] {
            assert!(is_bare_key(k), "{k}");
        }
        for k in ["", "1", "1a", "b-c", "ü", "a b", "é1", "a.b"] {
            assert!(!is_bare_key(k), "{k}");
        }
    }

    #[test]
    fn string_escapes_are_json_plus_single_quote() {
        assert_eq!(string("plain"), "'plain'");
        assert_eq!(string("it's"), "'it\\'s'");
        assert_eq!(string("\"q\""), "'\\\"q\\\"'");
        assert_eq!(string("\\"), "'\\\\'");
        assert_eq!(string("\u{8}\u{c}\n\r\t"), "'\\b\\f\\n\\r\\t'");
        assert_eq!(
            string("\u{0}\u{1}\u{b}\u{1f}"),
            "'\\u0000\\u0001\\u000b\\u001f'"
        );
        assert_eq!(string("\u{7f}ü€😀"), "'\u{7f}ü€😀'");
        assert_eq!(string("\u{2028}\u{2029}"), "'\\u2028\\u2029'");
        // Other characters starting with 0xE2 are left alone.
        assert_eq!(string("\u{2027}\u{202a}→"), "'\u{2027}\u{202a}→'");
    }
}
