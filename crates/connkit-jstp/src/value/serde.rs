//! `serde` support: your types to and from [`Value`], and conversions to and from
//! [`serde_json::Value`].
//!
//! # Mapping
//!
//! | Rust (serde data model)          | [`Value`]                                            |
//! |----------------------------------|------------------------------------------------------|
//! | `bool`                           | `Bool`                                               |
//! | integers                         | `Number`; an integer an `f64` cannot hold exactly (beyond 2^53, odd) is an error ([`SerdeError::InexactInteger`]) rather than silently rounded |
//! | `f32`, `f64`                     | `Number` (`f32` through its shortest decimal form, so `0.1f32` is `0.1`) |
//! | `char`, `&str`, `String`         | `String`                                             |
//! | bytes (`serde_bytes`)            | `String`, base64, as Node sends a `Buffer` (spec §3.1); read back from base64 or from an array of numbers |
//! | `None`, `()`, unit struct        | `Null` (`null` or `undefined` both read back as `None`/`()`) |
//! | `Some(x)`, newtype struct        | `x`                                                  |
//! | sequences, tuples                | `Array`                                              |
//! | maps, structs                    | `Object`, in serialization order; map keys may be strings, chars, integers, floats or booleans (written as JavaScript's `String(key)`) |
//! | enums                            | externally tagged, as `serde_json`: `'Unit'`, `{Newtype:x}`, `{Tuple:[…]}`, `{Struct:{…}}` |
//!
//! Reading back, numbers go to integer types only when integral and in range, structs read
//! from objects or arrays, and `undefined` reads as a missing value (`None`, `()`).
//!
//! [`Value`] itself implements `Serialize` and `Deserialize` (through [`to_value`] it round
//! trips exactly, `undefined` included, except `undefined` object members, which are left
//! out as on the wire). Through other serializers (`serde_json`) it behaves like
//! `JSON.stringify`: `undefined` array elements become `null`, `undefined` members are
//! dropped, NaN and ±Infinity become `null`.
//!
//! # `serde_json::Value`
//!
//! `From<serde_json::Value> for Value` is lossless except that integers beyond 2^53 round to
//! the nearest `f64` (as `JSON.parse` does). `From<Value> for serde_json::Value` does what
//! `JSON.stringify` does: `undefined` becomes `null` at the top level and in arrays and is
//! dropped from objects, NaN and ±Infinity become `null`, integral numbers below 2^53 become
//! JSON integers. Note that `serde_json::Map` sorts its keys unless `serde_json`'s
//! `preserve_order` feature is enabled, so key order is lost there.

use std::fmt;

use ::serde::de::{
    self, DeserializeOwned, DeserializeSeed, EnumAccess, IntoDeserializer, MapAccess, SeqAccess,
    VariantAccess, Visitor,
};
use ::serde::ser::{self, Serialize, SerializeMap as _, SerializeSeq as _};
use ::serde::{Deserialize, Deserializer, Serializer, forward_to_deserialize_any};

use super::Value;
use super::number::{self, TWO_POW_53};
use super::object::{self, Object};

/// Name of the unit struct that carries [`Value::Undefined`] through `serde`; other
/// serializers see an ordinary unit struct (`null` in JSON).
const UNDEFINED_TOKEN: &str = "$connkit_jstp::Undefined";

/// Why a conversion between a Rust type and [`Value`] failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SerdeError {
    /// A message from the type's `Serialize`/`Deserialize` implementation (missing field,
    /// wrong type, …).
    #[error("{0}")]
    Message(String),
    /// An integer that no JavaScript number holds exactly.
    #[error("integer {0} cannot be represented exactly as a JavaScript number")]
    InexactInteger(String),
    /// A map key that is not a string, char, number or boolean.
    #[error("object keys must be strings, numbers, chars or booleans, not {0}")]
    InvalidKey(&'static str),
}

impl ser::Error for SerdeError {
    fn custom<T: fmt::Display>(msg: T) -> SerdeError {
        SerdeError::Message(msg.to_string())
    }
}

impl de::Error for SerdeError {
    fn custom<T: fmt::Display>(msg: T) -> SerdeError {
        SerdeError::Message(msg.to_string())
    }
}

/// Converts any `Serialize` type into a [`Value`] (see the module docs for the mapping).
///
/// # Errors
///
/// [`SerdeError`] when the type's `Serialize` fails, an integer is not exactly representable,
/// or a map key is not a string, number, char or boolean.
///
/// ```
/// use connkit_jstp::value::{self, Value};
///
/// #[derive(serde::Serialize)]
/// struct Point { x: i32, y: Option<f64> }
///
/// let v = value::to_value(&Point { x: 1, y: None })?;
/// assert_eq!(v.to_string(), "{x:1,y:null}");
/// # Ok::<(), value::SerdeError>(())
/// ```
pub fn to_value<T: Serialize + ?Sized>(value: &T) -> Result<Value, SerdeError> {
    value.serialize(ValueSerializer)
}

/// Converts a [`Value`] into any `DeserializeOwned` type (see the module docs for the
/// mapping).
///
/// # Errors
///
/// [`SerdeError`] when the value does not fit the type.
///
/// ```
/// use connkit_jstp::value::{self, Value};
///
/// #[derive(serde::Deserialize, Debug, PartialEq)]
/// struct Point { x: i32, y: Option<f64> }
///
/// let v: Value = "{x:1,y:2.5}".parse()?;
/// assert_eq!(value::from_value::<Point>(v)?, Point { x: 1, y: Some(2.5) });
/// let args: (i32, i32) = value::from_value("[2,3]".parse()?)?;
/// assert_eq!(args, (2, 3));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn from_value<T: DeserializeOwned>(value: Value) -> Result<T, SerdeError> {
    T::deserialize(value)
}

// ---------------------------------------------------------------------------
// serde_json conversions
// ---------------------------------------------------------------------------

impl From<serde_json::Value> for Value {
    fn from(json: serde_json::Value) -> Value {
        match json {
            serde_json::Value::Null => Value::Null,
            serde_json::Value::Bool(b) => Value::Bool(b),
            serde_json::Value::Number(n) => Value::Number(n.as_f64().unwrap_or(f64::NAN)),
            serde_json::Value::String(s) => Value::String(s),
            serde_json::Value::Array(items) => {
                Value::Array(items.into_iter().map(Value::from).collect())
            }
            serde_json::Value::Object(map) => Value::Object(Object::from_unique(
                map.into_iter().map(|(k, v)| (k, Value::from(v))).collect(),
            )),
        }
    }
}

impl From<Value> for serde_json::Value {
    fn from(value: Value) -> serde_json::Value {
        match value {
            Value::Undefined | Value::Null => serde_json::Value::Null,
            Value::Bool(b) => serde_json::Value::Bool(b),
            Value::Number(n) => json_number(n),
            Value::String(s) => serde_json::Value::String(s),
            Value::Array(items) => {
                serde_json::Value::Array(items.into_iter().map(serde_json::Value::from).collect())
            }
            Value::Object(object) => serde_json::Value::Object(
                object
                    .into_iter()
                    .filter(|(_, v)| !v.is_undefined())
                    .map(|(k, v)| (k, serde_json::Value::from(v)))
                    .collect(),
            ),
        }
    }
}

fn json_number(n: f64) -> serde_json::Value {
    if let Some(i) = safe_integer(n) {
        return serde_json::Value::Number(i.into());
    }
    serde_json::Number::from_f64(n).map_or(serde_json::Value::Null, serde_json::Value::Number)
}

/// `n` as an `i64` when it is an integer below 2^53 in magnitude.
fn safe_integer(n: f64) -> Option<i64> {
    if n.fract() == 0.0 && n.abs() < TWO_POW_53 {
        // A safe integer converts exactly.
        Some(n as i64)
    } else {
        None
    }
}

// ---------------------------------------------------------------------------
// Serialize / Deserialize for Value
// ---------------------------------------------------------------------------

impl Serialize for Value {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self {
            Value::Undefined => serializer.serialize_unit_struct(UNDEFINED_TOKEN),
            Value::Null => serializer.serialize_unit(),
            Value::Bool(b) => serializer.serialize_bool(*b),
            Value::Number(n) => match safe_integer(*n) {
                Some(i) if !(*n == 0.0 && n.is_sign_negative()) => serializer.serialize_i64(i),
                _ => serializer.serialize_f64(*n),
            },
            Value::String(s) => serializer.serialize_str(s),
            Value::Array(items) => {
                let mut seq = serializer.serialize_seq(Some(items.len()))?;
                for item in items {
                    seq.serialize_element(item)?;
                }
                seq.end()
            }
            Value::Object(object) => object.serialize(serializer),
        }
    }
}

/// Members with an `undefined` value are left out, as on the wire.
impl Serialize for Object {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let present = self.values().filter(|v| !v.is_undefined()).count();
        let mut map = serializer.serialize_map(Some(present))?;
        for (k, v) in self {
            if !v.is_undefined() {
                map.serialize_entry(k, v)?;
            }
        }
        map.end()
    }
}

impl<'de> Deserialize<'de> for Value {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Value, D::Error> {
        deserializer.deserialize_any(ValueVisitor)
    }
}

impl<'de> Deserialize<'de> for Object {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Object, D::Error> {
        match Value::deserialize(deserializer)? {
            Value::Object(o) => Ok(o),
            other => Err(de::Error::invalid_type(unexpected(&other), &"an object")),
        }
    }
}

struct ValueVisitor;

impl<'de> Visitor<'de> for ValueVisitor {
    type Value = Value;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any JSTP value")
    }

    fn visit_bool<E>(self, v: bool) -> Result<Value, E> {
        Ok(Value::Bool(v))
    }

    fn visit_i64<E>(self, v: i64) -> Result<Value, E> {
        Ok(Value::from(v))
    }

    fn visit_u64<E>(self, v: u64) -> Result<Value, E> {
        Ok(Value::from(v))
    }

    // Wide integers round like JavaScript's Number(x).
    fn visit_i128<E>(self, v: i128) -> Result<Value, E> {
        Ok(Value::Number(v as f64))
    }

    fn visit_u128<E>(self, v: u128) -> Result<Value, E> {
        Ok(Value::Number(v as f64))
    }

    fn visit_f64<E>(self, v: f64) -> Result<Value, E> {
        Ok(Value::Number(v))
    }

    fn visit_str<E>(self, v: &str) -> Result<Value, E> {
        Ok(Value::String(v.to_owned()))
    }

    fn visit_string<E>(self, v: String) -> Result<Value, E> {
        Ok(Value::String(v))
    }

    fn visit_bytes<E>(self, v: &[u8]) -> Result<Value, E> {
        Ok(Value::String(base64_encode(v)))
    }

    fn visit_none<E>(self) -> Result<Value, E> {
        Ok(Value::Undefined)
    }

    fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Value, D::Error> {
        Value::deserialize(d)
    }

    fn visit_unit<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }

    fn visit_newtype_struct<D: Deserializer<'de>>(self, d: D) -> Result<Value, D::Error> {
        Value::deserialize(d)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        let mut items = Vec::with_capacity(seq.size_hint().unwrap_or(0).min(4096));
        while let Some(item) = seq.next_element::<Value>()? {
            items.push(item);
        }
        Ok(Value::Array(items))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
        let mut entries = Vec::with_capacity(map.size_hint().unwrap_or(0).min(4096));
        while let Some((k, v)) = map.next_entry::<String, Value>()? {
            if !v.is_undefined() {
                entries.push((k, v));
            }
        }
        Ok(Value::Object(Object::from(entries)))
    }
}

// ---------------------------------------------------------------------------
// Rust → Value
// ---------------------------------------------------------------------------

/// `serde::Serializer` whose output is a [`Value`].
struct ValueSerializer;

/// 2^53: integers of smaller magnitude are exact as `f64`.
const SAFE: u64 = 1 << 53;

fn exact_i128(v: i128) -> Result<Value, SerdeError> {
    // The common case without the (software) 128-bit conversions.
    if v.unsigned_abs() <= u128::from(SAFE) {
        // |v| ≤ 2^53: exact.
        return Ok(Value::Number(v as f64));
    }
    // Rounds; checked for exactness below.
    let f = v as f64;
    // f64 values in [-2^127, 2^127) convert back without saturation.
    if (-1.701_411_834_604_692_3e38..1.701_411_834_604_692_3e38).contains(&f) && f as i128 == v {
        return Ok(Value::Number(f));
    }
    Err(SerdeError::InexactInteger(v.to_string()))
}

fn exact_u128(v: u128) -> Result<Value, SerdeError> {
    if v <= u128::from(SAFE) {
        // v ≤ 2^53: exact.
        return Ok(Value::Number(v as f64));
    }
    // Rounds; checked for exactness below.
    let f = v as f64;
    // f64 values below 2^128 convert back without saturation.
    if f < 3.402_823_669_209_385e38 && f as u128 == v {
        return Ok(Value::Number(f));
    }
    Err(SerdeError::InexactInteger(v.to_string()))
}

/// An `f32` through its shortest decimal form (`0.1f32` → `0.1`, not `0.10000000149…`).
fn f32_to_f64(v: f32) -> f64 {
    if !v.is_finite() {
        return f64::from(v);
    }
    let mut buffer = zmij::Buffer::new();
    buffer.format_finite(v).parse().unwrap_or(f64::from(v))
}

impl Serializer for ValueSerializer {
    type Ok = Value;
    type Error = SerdeError;
    type SerializeSeq = SeqBuilder;
    type SerializeTuple = SeqBuilder;
    type SerializeTupleStruct = SeqBuilder;
    type SerializeTupleVariant = VariantSeqBuilder;
    type SerializeMap = MapBuilder;
    type SerializeStruct = MapBuilder;
    type SerializeStructVariant = VariantMapBuilder;

    fn serialize_bool(self, v: bool) -> Result<Value, SerdeError> {
        Ok(Value::Bool(v))
    }

    fn serialize_i8(self, v: i8) -> Result<Value, SerdeError> {
        Ok(Value::from(v))
    }

    fn serialize_i16(self, v: i16) -> Result<Value, SerdeError> {
        Ok(Value::from(v))
    }

    fn serialize_i32(self, v: i32) -> Result<Value, SerdeError> {
        Ok(Value::from(v))
    }

    fn serialize_i64(self, v: i64) -> Result<Value, SerdeError> {
        exact_i128(i128::from(v))
    }

    fn serialize_i128(self, v: i128) -> Result<Value, SerdeError> {
        exact_i128(v)
    }

    fn serialize_u8(self, v: u8) -> Result<Value, SerdeError> {
        Ok(Value::from(v))
    }

    fn serialize_u16(self, v: u16) -> Result<Value, SerdeError> {
        Ok(Value::from(v))
    }

    fn serialize_u32(self, v: u32) -> Result<Value, SerdeError> {
        Ok(Value::from(v))
    }

    fn serialize_u64(self, v: u64) -> Result<Value, SerdeError> {
        exact_u128(u128::from(v))
    }

    fn serialize_u128(self, v: u128) -> Result<Value, SerdeError> {
        exact_u128(v)
    }

    fn serialize_f32(self, v: f32) -> Result<Value, SerdeError> {
        Ok(Value::Number(f32_to_f64(v)))
    }

    fn serialize_f64(self, v: f64) -> Result<Value, SerdeError> {
        Ok(Value::Number(v))
    }

    fn serialize_char(self, v: char) -> Result<Value, SerdeError> {
        Ok(Value::from(v))
    }

    fn serialize_str(self, v: &str) -> Result<Value, SerdeError> {
        Ok(Value::from(v))
    }

    fn serialize_bytes(self, v: &[u8]) -> Result<Value, SerdeError> {
        Ok(Value::String(base64_encode(v)))
    }

    fn serialize_none(self) -> Result<Value, SerdeError> {
        Ok(Value::Null)
    }

    fn serialize_some<T: Serialize + ?Sized>(self, value: &T) -> Result<Value, SerdeError> {
        value.serialize(self)
    }

    fn serialize_unit(self) -> Result<Value, SerdeError> {
        Ok(Value::Null)
    }

    fn serialize_unit_struct(self, name: &'static str) -> Result<Value, SerdeError> {
        Ok(if name == UNDEFINED_TOKEN {
            Value::Undefined
        } else {
            Value::Null
        })
    }

    fn serialize_unit_variant(
        self,
        _name: &'static str,
        _index: u32,
        variant: &'static str,
    ) -> Result<Value, SerdeError> {
        Ok(Value::from(variant))
    }

    fn serialize_newtype_struct<T: Serialize + ?Sized>(
        self,
        _name: &'static str,
        value: &T,
    ) -> Result<Value, SerdeError> {
        value.serialize(self)
    }

    fn serialize_newtype_variant<T: Serialize + ?Sized>(
        self,
        _name: &'static str,
        _index: u32,
        variant: &'static str,
        value: &T,
    ) -> Result<Value, SerdeError> {
        let inner = value.serialize(ValueSerializer)?;
        Ok(single_member(variant, inner))
    }

    fn serialize_seq(self, len: Option<usize>) -> Result<SeqBuilder, SerdeError> {
        Ok(SeqBuilder {
            items: Vec::with_capacity(len.unwrap_or(0).min(4096)),
        })
    }

    fn serialize_tuple(self, len: usize) -> Result<SeqBuilder, SerdeError> {
        self.serialize_seq(Some(len))
    }

    fn serialize_tuple_struct(
        self,
        _name: &'static str,
        len: usize,
    ) -> Result<SeqBuilder, SerdeError> {
        self.serialize_seq(Some(len))
    }

    fn serialize_tuple_variant(
        self,
        _name: &'static str,
        _index: u32,
        variant: &'static str,
        len: usize,
    ) -> Result<VariantSeqBuilder, SerdeError> {
        Ok(VariantSeqBuilder {
            variant,
            items: Vec::with_capacity(len.min(4096)),
        })
    }

    fn serialize_map(self, len: Option<usize>) -> Result<MapBuilder, SerdeError> {
        Ok(MapBuilder {
            entries: Vec::with_capacity(len.unwrap_or(0).min(4096)),
            key: None,
        })
    }

    fn serialize_struct(self, _name: &'static str, len: usize) -> Result<MapBuilder, SerdeError> {
        self.serialize_map(Some(len))
    }

    fn serialize_struct_variant(
        self,
        _name: &'static str,
        _index: u32,
        variant: &'static str,
        len: usize,
    ) -> Result<VariantMapBuilder, SerdeError> {
        Ok(VariantMapBuilder {
            variant,
            entries: Vec::with_capacity(len.min(4096)),
        })
    }
}

fn single_member(key: &str, value: Value) -> Value {
    Value::Object(Object::from_unique(vec![(key.to_owned(), value)]))
}

struct SeqBuilder {
    items: Vec<Value>,
}

impl ser::SerializeSeq for SeqBuilder {
    type Ok = Value;
    type Error = SerdeError;

    fn serialize_element<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<(), SerdeError> {
        self.items.push(value.serialize(ValueSerializer)?);
        Ok(())
    }

    fn end(self) -> Result<Value, SerdeError> {
        Ok(Value::Array(self.items))
    }
}

impl ser::SerializeTuple for SeqBuilder {
    type Ok = Value;
    type Error = SerdeError;

    fn serialize_element<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<(), SerdeError> {
        ser::SerializeSeq::serialize_element(self, value)
    }

    fn end(self) -> Result<Value, SerdeError> {
        ser::SerializeSeq::end(self)
    }
}

impl ser::SerializeTupleStruct for SeqBuilder {
    type Ok = Value;
    type Error = SerdeError;

    fn serialize_field<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<(), SerdeError> {
        ser::SerializeSeq::serialize_element(self, value)
    }

    fn end(self) -> Result<Value, SerdeError> {
        ser::SerializeSeq::end(self)
    }
}

struct VariantSeqBuilder {
    variant: &'static str,
    items: Vec<Value>,
}

impl ser::SerializeTupleVariant for VariantSeqBuilder {
    type Ok = Value;
    type Error = SerdeError;

    fn serialize_field<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<(), SerdeError> {
        self.items.push(value.serialize(ValueSerializer)?);
        Ok(())
    }

    fn end(self) -> Result<Value, SerdeError> {
        Ok(single_member(self.variant, Value::Array(self.items)))
    }
}

struct MapBuilder {
    entries: Vec<(String, Value)>,
    key: Option<String>,
}

impl ser::SerializeMap for MapBuilder {
    type Ok = Value;
    type Error = SerdeError;

    fn serialize_key<T: Serialize + ?Sized>(&mut self, key: &T) -> Result<(), SerdeError> {
        self.key = Some(key.serialize(KeySerializer)?);
        Ok(())
    }

    fn serialize_value<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<(), SerdeError> {
        let key = self.key.take().ok_or_else(|| {
            SerdeError::Message("serialize_value called before serialize_key".into())
        })?;
        self.entries.push((key, value.serialize(ValueSerializer)?));
        Ok(())
    }

    fn end(self) -> Result<Value, SerdeError> {
        Ok(Value::Object(Object::from(self.entries)))
    }
}

impl ser::SerializeStruct for MapBuilder {
    type Ok = Value;
    type Error = SerdeError;

    fn serialize_field<T: Serialize + ?Sized>(
        &mut self,
        key: &'static str,
        value: &T,
    ) -> Result<(), SerdeError> {
        self.entries
            .push((key.to_owned(), value.serialize(ValueSerializer)?));
        Ok(())
    }

    fn end(self) -> Result<Value, SerdeError> {
        ser::SerializeMap::end(self)
    }
}

struct VariantMapBuilder {
    variant: &'static str,
    entries: Vec<(String, Value)>,
}

impl ser::SerializeStructVariant for VariantMapBuilder {
    type Ok = Value;
    type Error = SerdeError;

    fn serialize_field<T: Serialize + ?Sized>(
        &mut self,
        key: &'static str,
        value: &T,
    ) -> Result<(), SerdeError> {
        self.entries
            .push((key.to_owned(), value.serialize(ValueSerializer)?));
        Ok(())
    }

    fn end(self) -> Result<Value, SerdeError> {
        Ok(single_member(
            self.variant,
            Value::Object(Object::from(self.entries)),
        ))
    }
}

/// Serializes a map key to the string JavaScript would make of it.
struct KeySerializer;

impl KeySerializer {
    fn invalid(what: &'static str) -> SerdeError {
        SerdeError::InvalidKey(what)
    }
}

macro_rules! key_via_display {
    ($($method:ident: $t:ty),*) => {$(
        fn $method(self, v: $t) -> Result<String, SerdeError> {
            Ok(v.to_string())
        }
    )*};
}

impl Serializer for KeySerializer {
    type Ok = String;
    type Error = SerdeError;
    type SerializeSeq = ser::Impossible<String, SerdeError>;
    type SerializeTuple = ser::Impossible<String, SerdeError>;
    type SerializeTupleStruct = ser::Impossible<String, SerdeError>;
    type SerializeTupleVariant = ser::Impossible<String, SerdeError>;
    type SerializeMap = ser::Impossible<String, SerdeError>;
    type SerializeStruct = ser::Impossible<String, SerdeError>;
    type SerializeStructVariant = ser::Impossible<String, SerdeError>;

    key_via_display!(
        serialize_bool: bool,
        serialize_i8: i8,
        serialize_i16: i16,
        serialize_i32: i32,
        serialize_i64: i64,
        serialize_i128: i128,
        serialize_u8: u8,
        serialize_u16: u16,
        serialize_u32: u32,
        serialize_u64: u64,
        serialize_u128: u128,
        serialize_char: char
    );

    fn serialize_f32(self, v: f32) -> Result<String, SerdeError> {
        Ok(number::to_js_string(f32_to_f64(v)))
    }

    fn serialize_f64(self, v: f64) -> Result<String, SerdeError> {
        Ok(number::to_js_string(v))
    }

    fn serialize_str(self, v: &str) -> Result<String, SerdeError> {
        Ok(v.to_owned())
    }

    fn serialize_bytes(self, _v: &[u8]) -> Result<String, SerdeError> {
        Err(Self::invalid("bytes"))
    }

    fn serialize_none(self) -> Result<String, SerdeError> {
        Err(Self::invalid("None"))
    }

    fn serialize_some<T: Serialize + ?Sized>(self, value: &T) -> Result<String, SerdeError> {
        value.serialize(self)
    }

    fn serialize_unit(self) -> Result<String, SerdeError> {
        Err(Self::invalid("()"))
    }

    fn serialize_unit_struct(self, _name: &'static str) -> Result<String, SerdeError> {
        Err(Self::invalid("a unit struct"))
    }

    fn serialize_unit_variant(
        self,
        _name: &'static str,
        _index: u32,
        variant: &'static str,
    ) -> Result<String, SerdeError> {
        Ok(variant.to_owned())
    }

    fn serialize_newtype_struct<T: Serialize + ?Sized>(
        self,
        _name: &'static str,
        value: &T,
    ) -> Result<String, SerdeError> {
        value.serialize(self)
    }

    fn serialize_newtype_variant<T: Serialize + ?Sized>(
        self,
        _name: &'static str,
        _index: u32,
        _variant: &'static str,
        _value: &T,
    ) -> Result<String, SerdeError> {
        Err(Self::invalid("an enum variant with data"))
    }

    fn serialize_seq(self, _len: Option<usize>) -> Result<Self::SerializeSeq, SerdeError> {
        Err(Self::invalid("a sequence"))
    }

    fn serialize_tuple(self, _len: usize) -> Result<Self::SerializeTuple, SerdeError> {
        Err(Self::invalid("a tuple"))
    }

    fn serialize_tuple_struct(
        self,
        _name: &'static str,
        _len: usize,
    ) -> Result<Self::SerializeTupleStruct, SerdeError> {
        Err(Self::invalid("a tuple struct"))
    }

    fn serialize_tuple_variant(
        self,
        _name: &'static str,
        _index: u32,
        _variant: &'static str,
        _len: usize,
    ) -> Result<Self::SerializeTupleVariant, SerdeError> {
        Err(Self::invalid("an enum variant with data"))
    }

    fn serialize_map(self, _len: Option<usize>) -> Result<Self::SerializeMap, SerdeError> {
        Err(Self::invalid("a map"))
    }

    fn serialize_struct(
        self,
        _name: &'static str,
        _len: usize,
    ) -> Result<Self::SerializeStruct, SerdeError> {
        Err(Self::invalid("a struct"))
    }

    fn serialize_struct_variant(
        self,
        _name: &'static str,
        _index: u32,
        _variant: &'static str,
        _len: usize,
    ) -> Result<Self::SerializeStructVariant, SerdeError> {
        Err(Self::invalid("an enum variant with data"))
    }
}

// ---------------------------------------------------------------------------
// Value → Rust
// ---------------------------------------------------------------------------

fn unexpected(value: &Value) -> de::Unexpected<'_> {
    match value {
        Value::Undefined => de::Unexpected::Other("undefined"),
        Value::Null => de::Unexpected::Unit,
        Value::Bool(b) => de::Unexpected::Bool(*b),
        Value::Number(n) => de::Unexpected::Float(*n),
        Value::String(s) => de::Unexpected::Str(s),
        Value::Array(_) => de::Unexpected::Seq,
        Value::Object(_) => de::Unexpected::Map,
    }
}

fn visit_number<'de, V: Visitor<'de>>(n: f64, visitor: V) -> Result<V::Value, SerdeError> {
    // Integral numbers in i64/u64 range go to the integer visitors so that integer types
    // (and untagged enums, serde_json::Value, …) accept them.
    if n.fract() == 0.0 {
        // Range and integrality checked: the casts are exact.
        if (0.0..18_446_744_073_709_551_616.0).contains(&n) {
            return visitor.visit_u64(n as u64);
        }
        if (-9_223_372_036_854_775_808.0..0.0).contains(&n) {
            return visitor.visit_i64(n as i64);
        }
    }
    visitor.visit_f64(n)
}

fn visit_array<'de, V: Visitor<'de>>(
    items: Vec<Value>,
    visitor: V,
) -> Result<V::Value, SerdeError> {
    let len = items.len();
    let mut seq = SeqDeserializer {
        iter: items.into_iter(),
    };
    let out = visitor.visit_seq(&mut seq)?;
    if seq.iter.len() == 0 {
        Ok(out)
    } else {
        Err(de::Error::invalid_length(len, &"fewer elements in array"))
    }
}

fn visit_object<'de, V: Visitor<'de>>(object: Object, visitor: V) -> Result<V::Value, SerdeError> {
    let len = object.len();
    let mut map = MapDeserializer {
        iter: object.into_iter(),
        value: None,
    };
    let out = visitor.visit_map(&mut map)?;
    if map.iter.len() == 0 {
        Ok(out)
    } else {
        Err(de::Error::invalid_length(len, &"fewer members in object"))
    }
}

impl<'de> Deserializer<'de> for Value {
    type Error = SerdeError;

    fn deserialize_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, SerdeError> {
        match self {
            Value::Undefined => visitor.visit_none(),
            Value::Null => visitor.visit_unit(),
            Value::Bool(b) => visitor.visit_bool(b),
            Value::Number(n) => visit_number(n, visitor),
            Value::String(s) => visitor.visit_string(s),
            Value::Array(items) => visit_array(items, visitor),
            Value::Object(object) => visit_object(object, visitor),
        }
    }

    fn deserialize_f32<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, SerdeError> {
        self.deserialize_f64(visitor)
    }

    fn deserialize_f64<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, SerdeError> {
        match self {
            Value::Number(n) => visitor.visit_f64(n),
            other => other.deserialize_any(visitor),
        }
    }

    fn deserialize_option<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, SerdeError> {
        match self {
            Value::Undefined | Value::Null => visitor.visit_none(),
            other => visitor.visit_some(other),
        }
    }

    fn deserialize_unit<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, SerdeError> {
        match self {
            Value::Undefined | Value::Null => visitor.visit_unit(),
            other => Err(de::Error::invalid_type(unexpected(&other), &visitor)),
        }
    }

    fn deserialize_unit_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        visitor: V,
    ) -> Result<V::Value, SerdeError> {
        self.deserialize_unit(visitor)
    }

    fn deserialize_newtype_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        visitor: V,
    ) -> Result<V::Value, SerdeError> {
        visitor.visit_newtype_struct(self)
    }

    fn deserialize_bytes<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, SerdeError> {
        match self {
            Value::String(s) => match base64_decode(&s) {
                Some(bytes) => visitor.visit_byte_buf(bytes),
                None => Err(de::Error::invalid_value(
                    de::Unexpected::Str(&s),
                    &"a base64 string",
                )),
            },
            other => other.deserialize_any(visitor),
        }
    }

    fn deserialize_byte_buf<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, SerdeError> {
        self.deserialize_bytes(visitor)
    }

    fn deserialize_enum<V: Visitor<'de>>(
        self,
        _name: &'static str,
        _variants: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, SerdeError> {
        match self {
            Value::String(variant) => visitor.visit_enum(EnumDeserializer {
                variant,
                value: None,
            }),
            Value::Object(object) if object.len() == 1 => {
                let mut members = object.into_iter();
                match members.next() {
                    Some((variant, value)) => visitor.visit_enum(EnumDeserializer {
                        variant,
                        value: Some(value),
                    }),
                    None => Err(de::Error::invalid_length(0, &"an object with one member")),
                }
            }
            other => Err(de::Error::invalid_type(
                unexpected(&other),
                &"a string or an object with one member",
            )),
        }
    }

    fn deserialize_ignored_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, SerdeError> {
        drop(self);
        visitor.visit_unit()
    }

    forward_to_deserialize_any! {
        bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 char str string
        seq tuple tuple_struct map struct identifier
    }
}

impl IntoDeserializer<'_, SerdeError> for Value {
    type Deserializer = Value;

    fn into_deserializer(self) -> Value {
        self
    }
}

struct SeqDeserializer {
    iter: std::vec::IntoIter<Value>,
}

impl<'de> SeqAccess<'de> for SeqDeserializer {
    type Error = SerdeError;

    fn next_element_seed<T: DeserializeSeed<'de>>(
        &mut self,
        seed: T,
    ) -> Result<Option<T::Value>, SerdeError> {
        match self.iter.next() {
            Some(item) => seed.deserialize(item).map(Some),
            None => Ok(None),
        }
    }

    fn size_hint(&self) -> Option<usize> {
        Some(self.iter.len())
    }
}

struct MapDeserializer {
    iter: object::IntoIter,
    value: Option<Value>,
}

impl<'de> MapAccess<'de> for MapDeserializer {
    type Error = SerdeError;

    fn next_key_seed<K: DeserializeSeed<'de>>(
        &mut self,
        seed: K,
    ) -> Result<Option<K::Value>, SerdeError> {
        match self.iter.next() {
            Some((k, v)) => {
                self.value = Some(v);
                seed.deserialize(KeyDeserializer(k)).map(Some)
            }
            None => Ok(None),
        }
    }

    fn next_value_seed<V: DeserializeSeed<'de>>(
        &mut self,
        seed: V,
    ) -> Result<V::Value, SerdeError> {
        match self.value.take() {
            Some(v) => seed.deserialize(v),
            None => Err(de::Error::custom("next_value called before next_key")),
        }
    }

    fn size_hint(&self) -> Option<usize> {
        Some(self.iter.len())
    }
}

struct EnumDeserializer {
    variant: String,
    value: Option<Value>,
}

impl<'de> EnumAccess<'de> for EnumDeserializer {
    type Error = SerdeError;
    type Variant = VariantDeserializer;

    fn variant_seed<V: DeserializeSeed<'de>>(
        self,
        seed: V,
    ) -> Result<(V::Value, VariantDeserializer), SerdeError> {
        let variant = seed.deserialize(KeyDeserializer(self.variant))?;
        Ok((variant, VariantDeserializer { value: self.value }))
    }
}

struct VariantDeserializer {
    value: Option<Value>,
}

impl<'de> VariantAccess<'de> for VariantDeserializer {
    type Error = SerdeError;

    fn unit_variant(self) -> Result<(), SerdeError> {
        match self.value {
            None | Some(Value::Null | Value::Undefined) => Ok(()),
            Some(other) => Err(de::Error::invalid_type(
                unexpected(&other),
                &"a unit variant",
            )),
        }
    }

    fn newtype_variant_seed<T: DeserializeSeed<'de>>(
        self,
        seed: T,
    ) -> Result<T::Value, SerdeError> {
        match self.value {
            Some(v) => seed.deserialize(v),
            None => Err(de::Error::invalid_type(
                de::Unexpected::UnitVariant,
                &"a newtype variant",
            )),
        }
    }

    fn tuple_variant<V: Visitor<'de>>(
        self,
        _len: usize,
        visitor: V,
    ) -> Result<V::Value, SerdeError> {
        match self.value {
            Some(Value::Array(items)) => visit_array(items, visitor),
            Some(other) => Err(de::Error::invalid_type(
                unexpected(&other),
                &"a tuple variant",
            )),
            None => Err(de::Error::invalid_type(
                de::Unexpected::UnitVariant,
                &"a tuple variant",
            )),
        }
    }

    fn struct_variant<V: Visitor<'de>>(
        self,
        _fields: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, SerdeError> {
        match self.value {
            Some(Value::Object(object)) => visit_object(object, visitor),
            Some(Value::Array(items)) => visit_array(items, visitor),
            Some(other) => Err(de::Error::invalid_type(
                unexpected(&other),
                &"a struct variant",
            )),
            None => Err(de::Error::invalid_type(
                de::Unexpected::UnitVariant,
                &"a struct variant",
            )),
        }
    }
}

/// Deserializes an object key; numeric and boolean types parse it from the string.
struct KeyDeserializer(String);

macro_rules! key_parse {
    ($($method:ident => $visit:ident: $t:ty),*) => {$(
        fn $method<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, SerdeError> {
            match self.0.parse::<$t>() {
                Ok(n) => visitor.$visit(n),
                Err(_) => visitor.visit_string(self.0),
            }
        }
    )*};
}

impl<'de> Deserializer<'de> for KeyDeserializer {
    type Error = SerdeError;

    fn deserialize_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, SerdeError> {
        visitor.visit_string(self.0)
    }

    key_parse!(
        deserialize_bool => visit_bool: bool,
        deserialize_i8 => visit_i8: i8,
        deserialize_i16 => visit_i16: i16,
        deserialize_i32 => visit_i32: i32,
        deserialize_i64 => visit_i64: i64,
        deserialize_i128 => visit_i128: i128,
        deserialize_u8 => visit_u8: u8,
        deserialize_u16 => visit_u16: u16,
        deserialize_u32 => visit_u32: u32,
        deserialize_u64 => visit_u64: u64,
        deserialize_u128 => visit_u128: u128,
        deserialize_f32 => visit_f32: f32,
        deserialize_f64 => visit_f64: f64
    );

    fn deserialize_option<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, SerdeError> {
        visitor.visit_some(self)
    }

    fn deserialize_newtype_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        visitor: V,
    ) -> Result<V::Value, SerdeError> {
        visitor.visit_newtype_struct(self)
    }

    fn deserialize_enum<V: Visitor<'de>>(
        self,
        _name: &'static str,
        _variants: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, SerdeError> {
        visitor.visit_enum(self.0.into_deserializer())
    }

    forward_to_deserialize_any! {
        char str string bytes byte_buf unit unit_struct seq tuple tuple_struct map struct
        identifier ignored_any
    }
}

// ---------------------------------------------------------------------------
// base64 (Node's Buffer#toString('base64'): standard alphabet, padded)
// ---------------------------------------------------------------------------

const BASE64: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

fn base64_encode(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let b0 = chunk[0];
        let b1 = chunk.get(1).copied().unwrap_or(0);
        let b2 = chunk.get(2).copied().unwrap_or(0);
        let n = (u32::from(b0) << 16) | (u32::from(b1) << 8) | u32::from(b2);
        let sextet = |shift: u32| char::from(BASE64[((n >> shift) & 63) as usize]);
        out.push(sextet(18));
        out.push(sextet(12));
        out.push(if chunk.len() > 1 { sextet(6) } else { '=' });
        out.push(if chunk.len() > 2 { sextet(0) } else { '=' });
    }
    out
}

/// Decodes standard or URL-safe base64, padded or not.
fn base64_decode(text: &str) -> Option<Vec<u8>> {
    let body = text.trim_end_matches('=');
    if text.len() - body.len() > 2 || body.len() % 4 == 1 {
        return None;
    }
    let mut out = Vec::with_capacity(body.len() * 3 / 4);
    let mut acc = 0u32;
    let mut bits = 0;
    for c in body.bytes() {
        let v = match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'+' | b'-' => 62,
            b'/' | b'_' => 63,
            _ => return None,
        };
        acc = (acc << 6) | u32::from(v);
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push(u8::try_from((acc >> bits) & 0xFF).unwrap_or(0));
        }
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_matches_node_buffers() {
        // Buffer.from(x).toString('base64') in Node.
        for (raw, text) in [
            (&b""[..], ""),
            (b"f", "Zg=="),
            (b"fo", "Zm8="),
            (b"foo", "Zm9v"),
            (b"foob", "Zm9vYg=="),
            (&[0xFF, 0xFE, 0x00], "//4A"),
        ] {
            assert_eq!(base64_encode(raw), text);
            assert_eq!(base64_decode(text).as_deref(), Some(raw));
        }
        assert_eq!(base64_decode("Zm9vYg").as_deref(), Some(&b"foob"[..]));
        assert_eq!(
            base64_decode("__4A").as_deref(),
            Some(&[0xFF, 0xFE, 0x00][..])
        );
        assert_eq!(base64_decode("Z"), None);
        assert_eq!(base64_decode("Zm9v!"), None);
    }

    #[test]
    fn integers_must_be_exact() {
        assert_eq!(to_value(&9_007_199_254_740_993_u64).ok(), None);
        assert_eq!(
            to_value(&9_007_199_254_740_992_u64),
            Ok(Value::Number(9_007_199_254_740_992.0))
        );
        assert_eq!(
            to_value(&-9_007_199_254_740_992_i64),
            Ok(Value::Number(-9_007_199_254_740_992.0))
        );
        assert_eq!(to_value(&-9_007_199_254_740_993_i64).ok(), None);
        assert_eq!(to_value(&(1u64 << 63)), Ok(Value::Number(2f64.powi(63))));
        assert!(to_value(&u64::MAX).is_err());
        assert!(to_value(&i64::MAX).is_err());
        assert_eq!(to_value(&i64::MIN), Ok(Value::Number(-(2f64.powi(63)))));
        assert_eq!(to_value(&i128::MIN), Ok(Value::Number(-(2f64.powi(127)))));
        assert!(to_value(&u128::MAX).is_err());
        assert_eq!(to_value(&0.1f32), Ok(Value::Number(0.1)));
    }
}
