//! JSTP values and their wire form (the mdsf format, spec §3).
//!
//! - [`Value`] and [`Object`]: the data model. `undefined` is kept apart from `null`, object
//!   key order is kept, numbers are `f64`.
//! - [`parse`] / [`parse_with`]: bytes of one message (or any value) to a [`Value`]. Accepts a
//!   superset of what Node's parsers accept; errors carry the byte position.
//! - [`serialize`] / [`serialize_into`]: a [`Value`] to the bytes Node's `mdsf.stringify`
//!   writes, into a fresh `Vec<u8>` or appended to any [`bytes::BufMut`] (a reused `Vec<u8>`
//!   or `BytesMut`).
//! - [`to_value`] / [`from_value`]: your own `serde` types to and from [`Value`].
//!
//! `docs/jstp.md` ("Serialization") lists every decision relative to Node.
//!
//! ```
//! use connkit_jstp::value::{self, Value};
//!
//! let msg = value::parse(b"{call:[17,'calculator'],add:[2,3]}")?;
//! let (kind, header) = msg.as_object().and_then(|o| o.get_index(0)).unwrap();
//! assert_eq!(kind, "call");
//! assert_eq!(header.at(0).and_then(Value::as_i64), Some(17));
//!
//! let mut out = Vec::new();
//! value::serialize_into(&msg, &mut out)?;
//! assert_eq!(out, b"{call:[17,'calculator'],add:[2,3]}");
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

use std::borrow::Cow;
use std::fmt;
use std::str::FromStr;

pub(crate) mod number;
mod object;
mod parse;
mod serde;
mod serialize;

pub use object::{IntoIter, Iter, IterMut, Object};
pub use parse::{Expected, Found, ParseError, ParseOptions, parse, parse_with};
pub use serialize::{SerializeError, serialize, serialize_into, serialize_to_string};

pub use self::serde::{SerdeError, from_value, to_value};

/// One JSTP value.
///
/// The wire format is a subset of JavaScript object-literal syntax, so the model is
/// JavaScript's: `undefined` and `null` are different values (an array hole is `undefined`,
/// and Node checks argument counts, spec §3.3), objects keep their key order, and every number
/// is an IEEE `f64`.
///
/// Equality is structural: numbers compare as `f64` (`0 == -0`, `NaN != NaN`) and objects
/// compare in order.
///
/// [`Display`](fmt::Display) writes the wire form (what [`serialize`] writes), except that a
/// non-finite number is written `NaN`/`Infinity`/`-Infinity` (as `mdsf.stringify` writes it)
/// instead of failing; use [`serialize`] for anything that goes to a peer.
#[derive(Debug, Clone, PartialEq, Default)]
pub enum Value {
    /// JavaScript `undefined`: an array hole, a missing value. Left out of objects and written
    /// as an empty slot in arrays when serialized; `undefined` at the top level.
    #[default]
    Undefined,
    /// `null`.
    Null,
    /// `true` or `false`.
    Bool(bool),
    /// A number. Anything an `f64` holds can be stored, but NaN and ±Infinity cannot be
    /// serialized ([`SerializeError::NonFiniteNumber`]).
    Number(f64),
    /// A string (Unicode scalar values; lone surrogates on the wire become U+FFFD).
    String(String),
    /// An array; holes are [`Value::Undefined`].
    Array(Vec<Value>),
    /// An object with ordered, unique keys.
    Object(Object),
}

impl Value {
    /// The JavaScript `typeof`-like name of this value's type: `"undefined"`, `"null"`,
    /// `"boolean"`, `"number"`, `"string"`, `"array"` or `"object"`.
    #[must_use]
    pub fn type_name(&self) -> &'static str {
        match self {
            Value::Undefined => "undefined",
            Value::Null => "null",
            Value::Bool(_) => "boolean",
            Value::Number(_) => "number",
            Value::String(_) => "string",
            Value::Array(_) => "array",
            Value::Object(_) => "object",
        }
    }

    /// Whether this is `undefined`.
    #[must_use]
    pub fn is_undefined(&self) -> bool {
        matches!(self, Value::Undefined)
    }

    /// Whether this is `null`.
    #[must_use]
    pub fn is_null(&self) -> bool {
        matches!(self, Value::Null)
    }

    /// Whether this is `null` or `undefined` (JavaScript's `x == null`).
    #[must_use]
    pub fn is_nullish(&self) -> bool {
        matches!(self, Value::Null | Value::Undefined)
    }

    /// JavaScript truthiness: `false`, `0`, `-0`, `NaN`, `''`, `null` and `undefined` are
    /// falsy, everything else (including `[]` and `{}`) is truthy. Node reads a callback's
    /// `ok` member only if it is truthy (spec §4.3).
    #[must_use]
    pub fn is_truthy(&self) -> bool {
        match self {
            Value::Undefined | Value::Null => false,
            Value::Bool(b) => *b,
            Value::Number(n) => *n != 0.0 && !n.is_nan(),
            Value::String(s) => !s.is_empty(),
            Value::Array(_) | Value::Object(_) => true,
        }
    }

    /// The boolean, if this is one.
    #[must_use]
    pub fn as_bool(&self) -> Option<bool> {
        match self {
            Value::Bool(b) => Some(*b),
            _ => None,
        }
    }

    /// The number, if this is one.
    #[must_use]
    pub fn as_f64(&self) -> Option<f64> {
        match self {
            Value::Number(n) => Some(*n),
            _ => None,
        }
    }

    /// The number as an `i64`, if it is an integer that an `i64` holds exactly (no rounding,
    /// no truncation). Message ids are read this way.
    #[must_use]
    pub fn as_i64(&self) -> Option<i64> {
        let n = self.as_f64()?;
        // -2^63 ≤ n < 2^63 and integral: the cast is exact.
        if n.fract() == 0.0
            && (-9_223_372_036_854_775_808.0..9_223_372_036_854_775_808.0).contains(&n)
        {
            Some(n as i64)
        } else {
            None
        }
    }

    /// The number as a `u64`, if it is a non-negative integer that a `u64` holds exactly.
    #[must_use]
    pub fn as_u64(&self) -> Option<u64> {
        let n = self.as_f64()?;
        // 0 ≤ n < 2^64 and integral: the cast is exact.
        if n.fract() == 0.0 && (0.0..18_446_744_073_709_551_616.0).contains(&n) {
            Some(n as u64)
        } else {
            None
        }
    }

    /// Whether this is a number that is a JavaScript *safe integer* (`Number.isSafeInteger`:
    /// an integer with magnitude at most 2^53 − 1).
    #[must_use]
    pub fn is_safe_integer(&self) -> bool {
        self.as_f64()
            .is_some_and(|n| n.fract() == 0.0 && n.abs() < number::TWO_POW_53)
    }

    /// The string, if this is one.
    #[must_use]
    pub fn as_str(&self) -> Option<&str> {
        match self {
            Value::String(s) => Some(s),
            _ => None,
        }
    }

    /// The elements, if this is an array.
    #[must_use]
    pub fn as_array(&self) -> Option<&Vec<Value>> {
        match self {
            Value::Array(a) => Some(a),
            _ => None,
        }
    }

    /// The elements, mutably, if this is an array.
    pub fn as_array_mut(&mut self) -> Option<&mut Vec<Value>> {
        match self {
            Value::Array(a) => Some(a),
            _ => None,
        }
    }

    /// The members, if this is an object.
    #[must_use]
    pub fn as_object(&self) -> Option<&Object> {
        match self {
            Value::Object(o) => Some(o),
            _ => None,
        }
    }

    /// The members, mutably, if this is an object.
    pub fn as_object_mut(&mut self) -> Option<&mut Object> {
        match self {
            Value::Object(o) => Some(o),
            _ => None,
        }
    }

    /// Member `key`, if this is an object that has it.
    #[must_use]
    pub fn get(&self, key: &str) -> Option<&Value> {
        self.as_object()?.get(key)
    }

    /// Element `index`, if this is an array that long. A hole is `Some(&Value::Undefined)`.
    #[must_use]
    pub fn at(&self, index: usize) -> Option<&Value> {
        self.as_array()?.get(index)
    }

    /// Takes the value out, leaving [`Value::Undefined`].
    pub fn take(&mut self) -> Value {
        std::mem::take(self)
    }

    /// The string, moved out; any other value is given back as the error.
    ///
    /// # Errors
    ///
    /// `self` unchanged when it is not a string.
    pub fn into_string(self) -> Result<String, Value> {
        match self {
            Value::String(s) => Ok(s),
            other => Err(other),
        }
    }

    /// The elements, moved out; any other value is given back as the error.
    ///
    /// # Errors
    ///
    /// `self` unchanged when it is not an array.
    pub fn into_array(self) -> Result<Vec<Value>, Value> {
        match self {
            Value::Array(items) => Ok(items),
            other => Err(other),
        }
    }

    /// The members, moved out; any other value is given back as the error.
    ///
    /// # Errors
    ///
    /// `self` unchanged when it is not an object.
    pub fn into_object(self) -> Result<Object, Value> {
        match self {
            Value::Object(o) => Ok(o),
            other => Err(other),
        }
    }
}

impl fmt::Display for Value {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut out = Vec::with_capacity(64);
        serialize::write_display(self, &mut out);
        f.write_str(std::str::from_utf8(&out).map_err(|_| fmt::Error)?)
    }
}

impl FromStr for Value {
    type Err = ParseError;

    /// Parses with the default [`ParseOptions`].
    fn from_str(s: &str) -> Result<Value, ParseError> {
        parse(s.as_bytes())
    }
}

impl From<bool> for Value {
    fn from(b: bool) -> Value {
        Value::Bool(b)
    }
}

impl From<f64> for Value {
    fn from(n: f64) -> Value {
        Value::Number(n)
    }
}

impl From<f32> for Value {
    fn from(n: f32) -> Value {
        Value::Number(f64::from(n))
    }
}

macro_rules! from_exact_int {
    ($($t:ty),*) => {$(
        impl From<$t> for Value {
            fn from(n: $t) -> Value {
                Value::Number(f64::from(n))
            }
        }
    )*};
}
from_exact_int!(i8, i16, i32, u8, u16, u32);

macro_rules! from_wide_int {
    ($($t:ty),*) => {$(
        /// Converts as JavaScript's `Number(x)` does: exact up to 2^53 in magnitude, rounded
        /// to the nearest `f64` beyond.
        impl From<$t> for Value {
            fn from(n: $t) -> Value {
                Value::Number(n as f64)
            }
        }
    )*};
}
from_wide_int!(i64, u64, isize, usize);

impl From<String> for Value {
    fn from(s: String) -> Value {
        Value::String(s)
    }
}

impl From<&str> for Value {
    fn from(s: &str) -> Value {
        Value::String(s.to_owned())
    }
}

impl From<Box<str>> for Value {
    fn from(s: Box<str>) -> Value {
        Value::String(s.into_string())
    }
}

impl From<Cow<'_, str>> for Value {
    fn from(s: Cow<'_, str>) -> Value {
        Value::String(s.into_owned())
    }
}

impl From<char> for Value {
    fn from(c: char) -> Value {
        Value::String(c.to_string())
    }
}

impl From<Object> for Value {
    fn from(o: Object) -> Value {
        Value::Object(o)
    }
}

impl<T: Into<Value>> From<Vec<T>> for Value {
    fn from(items: Vec<T>) -> Value {
        Value::Array(items.into_iter().map(Into::into).collect())
    }
}

impl<T: Clone + Into<Value>> From<&[T]> for Value {
    fn from(items: &[T]) -> Value {
        Value::Array(items.iter().cloned().map(Into::into).collect())
    }
}

impl<T: Into<Value>, const N: usize> From<[T; N]> for Value {
    fn from(items: [T; N]) -> Value {
        Value::Array(items.into_iter().map(Into::into).collect())
    }
}

/// `None` becomes `null` (as with `serde`, see [`to_value`]); use [`Value::Undefined`]
/// explicitly for a hole or an omitted member.
impl<T: Into<Value>> From<Option<T>> for Value {
    fn from(v: Option<T>) -> Value {
        v.map_or(Value::Null, Into::into)
    }
}

/// Collects into an array.
impl<T: Into<Value>> FromIterator<T> for Value {
    fn from_iter<I: IntoIterator<Item = T>>(iter: I) -> Value {
        Value::Array(iter.into_iter().map(Into::into).collect())
    }
}

impl PartialEq<str> for Value {
    fn eq(&self, other: &str) -> bool {
        self.as_str() == Some(other)
    }
}

impl PartialEq<&str> for Value {
    fn eq(&self, other: &&str) -> bool {
        self.as_str() == Some(*other)
    }
}

impl PartialEq<f64> for Value {
    fn eq(&self, other: &f64) -> bool {
        self.as_f64() == Some(*other)
    }
}

impl PartialEq<bool> for Value {
    fn eq(&self, other: &bool) -> bool {
        self.as_bool() == Some(*other)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn integer_accessors_refuse_rounding() {
        assert_eq!(Value::from(17).as_i64(), Some(17));
        assert_eq!(Value::from(-5).as_i64(), Some(-5));
        assert_eq!(Value::from(2.5).as_i64(), None);
        assert_eq!(Value::from(-1).as_u64(), None);
        assert_eq!(Value::from(f64::NAN).as_i64(), None);
        assert_eq!(Value::from(9.3e18).as_i64(), None);
        assert_eq!(
            Value::from(9.3e18).as_u64(),
            Some(9_300_000_000_000_000_000)
        );
        assert_eq!(Value::from(2f64.powi(64)).as_u64(), None);
        assert!(Value::from(9_007_199_254_740_991_i64).is_safe_integer());
        assert!(!Value::from(9_007_199_254_740_992_i64).is_safe_integer());
        assert!(!Value::from("1").is_safe_integer());
    }

    #[test]
    fn truthiness_is_javascripts() {
        for v in [
            Value::Undefined,
            Value::Null,
            false.into(),
            0.into(),
            (-0.0).into(),
            f64::NAN.into(),
            "".into(),
        ] {
            assert!(!v.is_truthy(), "{v:?}");
        }
        for v in [
            true.into(),
            1.into(),
            "0".into(),
            Value::Array(vec![]),
            Value::Object(Object::new()),
        ] {
            assert!(v.is_truthy(), "{v:?}");
        }
    }

    #[test]
    fn display_writes_the_wire_form_and_tolerates_nan() {
        let v = Value::from(vec![Value::from(1), Value::Undefined, Value::from("it's")]);
        assert_eq!(v.to_string(), "[1,,'it\\'s']");
        assert_eq!(Value::from(f64::NAN).to_string(), "NaN");
        assert_eq!(
            Value::from(vec![f64::NEG_INFINITY]).to_string(),
            "[-Infinity]"
        );
    }
}
