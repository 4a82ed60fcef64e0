//! Value generators and helpers shared by the property tests and the Node differential test.
#![allow(dead_code, unreachable_pub)]

use connkit_jstp::{Object, Value};
use proptest::prelude::*;
use proptest::sample::select;

/// Numbers that stress the JavaScript layout rules (all finite).
pub fn number() -> impl Strategy<Value = f64> {
    let special = select(vec![
        0.0,
        -0.0,
        1.0,
        -1.0,
        0.1,
        0.1 + 0.2,
        2.5,
        1e21,
        -1e21,
        1e-7,
        1.5e-7,
        1e-6,
        0.000_001_5,
        1e20,
        999_999_999_999_999_900_000.0,
        123_456_789_012_345_680_000.0,
        5e-324,
        f64::MIN_POSITIVE,
        f64::MAX,
        -f64::MAX,
        9_007_199_254_740_991.0,
        9_007_199_254_740_992.0,
        9_007_199_254_740_994.0,
        -9_007_199_254_740_991.0,
        -2.5e300,
        1e300,
        4_294_967_295.0,
        1e15,
        1e16,
        123.456,
    ]);
    prop_oneof![
        3 => (-1000i32..1000).prop_map(f64::from),
        2 => any::<i64>().prop_map(|i| i as f64),
        3 => any::<u64>()
            .prop_map(f64::from_bits)
            .prop_filter("finite", |f| f.is_finite()),
        2 => (1u32..100_000, -40i32..40).prop_map(|(m, e)| f64::from(m) * 10f64.powi(e)),
        2 => special,
    ]
}

/// Characters that need escaping, are invisible, or are multi-byte.
fn tricky_char() -> impl Strategy<Value = char> {
    select(vec![
        '\'',
        '"',
        '\\',
        '\n',
        '\r',
        '\t',
        '\u{8}',
        '\u{c}',
        '\u{0}',
        '\u{1}',
        '\u{b}',
        '\u{1f}',
        '\u{7f}',
        '\u{80}',
        '\u{2028}',
        '\u{2029}',
        '\u{2027}',
        '\u{202a}',
        'ü',
        '€',
        '😀',
        '\u{feff}',
        '\u{a0}',
        '\u{e000}',
        '\u{10ffff}',
        '/',
        '*',
        ' ',
        'a',
        '0',
        '$',
        '{',
        '}',
        '[',
        ']',
        ',',
        ':',
    ])
}

/// Strings: short identifiers, and mixes of tricky and arbitrary characters.
pub fn string() -> impl Strategy<Value = String> {
    prop_oneof![
        2 => "[a-z]{0,8}",
        3 => proptest::collection::vec(prop_oneof![tricky_char(), any::<char>()], 0..12)
            .prop_map(String::from_iter),
    ]
}

/// Object keys: bare identifiers, integer-like keys (which Node orders first), and anything.
pub fn key(allow_proto: bool) -> BoxedStrategy<String> {
    let mut specials = vec![
        "",
        "01",
        "-1",
        "1.5",
        "4294967294",
        "4294967295",
        "1e3",
        "call",
        "ok",
        "$",
        "_",
    ];
    if allow_proto {
        specials.push("__proto__");
    }
    prop_oneof![
        4 => "[a-zA-Z_$][a-zA-Z0-9_$]{0,6}",
        2 => (0u32..30).prop_map(|n| n.to_string()),
        1 => select(specials).prop_map(str::to_owned),
        2 => string(),
    ]
    .boxed()
}

/// What a generated value may contain.
#[derive(Debug, Clone, Copy)]
pub struct Shape {
    /// `undefined` as array elements (holes) and at the top level.
    pub undefined: bool,
    /// `__proto__` object keys (Node's `mdsf.parse` drops them).
    pub proto_keys: bool,
}

/// Any finite value: what may be sent, and (with `undefined`) what round-trips.
pub fn value(shape: Shape) -> BoxedStrategy<Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        number().prop_map(Value::Number),
        string().prop_map(Value::String),
    ];
    let leaf = if shape.undefined {
        prop_oneof![1 => Just(Value::Undefined), 8 => leaf].boxed()
    } else {
        leaf.boxed()
    };
    leaf.prop_recursive(4, 64, 6, move |inner| {
        // Members are never `undefined`: they would not be on the wire at all.
        let member = inner
            .clone()
            .prop_map(|v| if v.is_undefined() { Value::Null } else { v });
        prop_oneof![
            proptest::collection::vec(inner, 0..6).prop_map(Value::Array),
            proptest::collection::vec((key(shape.proto_keys), member), 0..6)
                .prop_map(|pairs| Value::Object(Object::from(pairs))),
        ]
    })
    .boxed()
}

/// Whether `key` is an array index (`"0"` … `"4294967294"` in canonical form): JavaScript
/// objects list those keys first, in ascending order.
pub fn array_index(key: &str) -> Option<u32> {
    if key.is_empty() || (key.len() > 1 && key.starts_with('0')) {
        return None;
    }
    if !key.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    key.parse::<u32>().ok().filter(|&n| n != u32::MAX)
}

/// `v` with every object's keys in JavaScript's own-property order (array indices first,
/// ascending, then the rest in insertion order): what a Node object made from `v` lists.
pub fn js_order(v: &Value) -> Value {
    match v {
        Value::Array(items) => Value::Array(items.iter().map(js_order).collect()),
        Value::Object(o) => {
            let mut indices: Vec<(u32, String, Value)> = Vec::new();
            let mut others: Vec<(String, Value)> = Vec::new();
            for (k, item) in o {
                match array_index(k) {
                    Some(i) => indices.push((i, k.to_owned(), js_order(item))),
                    None => others.push((k.to_owned(), js_order(item))),
                }
            }
            indices.sort_by_key(|(i, _, _)| *i);
            let mut pairs: Vec<(String, Value)> =
                indices.into_iter().map(|(_, k, v)| (k, v)).collect();
            pairs.extend(others);
            Value::Object(Object::from(pairs))
        }
        other => other.clone(),
    }
}

/// `v` as JSON text with its key order kept (independent of serde_json's map features).
/// Numbers use Rust's shortest exponent form, which is valid JSON (`1e21`, `-0e0`).
pub fn to_json(v: &Value) -> String {
    let mut out = String::new();
    write_json(v, &mut out);
    out
}

fn write_json(v: &Value, out: &mut String) {
    match v {
        Value::Undefined | Value::Null => out.push_str("null"),
        Value::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
        Value::Number(n) => out.push_str(&format!("{n:e}")),
        Value::String(s) => out.push_str(&serde_json::to_string(s).unwrap_or_default()),
        Value::Array(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_json(item, out);
            }
            out.push(']');
        }
        Value::Object(o) => {
            out.push('{');
            for (i, (k, item)) in o.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                out.push_str(&serde_json::to_string(k).unwrap_or_default());
                out.push(':');
                write_json(item, out);
            }
            out.push('}');
        }
    }
}
