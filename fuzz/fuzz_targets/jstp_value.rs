//! Fuzz the JSTP value parser: arbitrary bytes must never panic (with the default options and
//! with a tight depth limit); whatever parses must serialize, parse back to the same value,
//! and serialize to the same bytes again (the output is canonical).
#![no_main]

use connkit_jstp::value::{self, ParseOptions, SerializeError, Value};
use libfuzzer_sys::fuzz_target;

/// Same-ness for round trips: like `==`, but NaN equals NaN.
fn same(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => x == y || (x.is_nan() && y.is_nan()),
        (Value::Array(x), Value::Array(y)) => {
            x.len() == y.len() && x.iter().zip(y).all(|(a, b)| same(a, b))
        }
        (Value::Object(x), Value::Object(y)) => {
            x.len() == y.len() && x.iter().zip(y).all(|((ka, a), (kb, b))| ka == kb && same(a, b))
        }
        _ => a == b,
    }
}

fuzz_target!(|data: &[u8]| {
    let strict = ParseOptions::new().max_depth(8).reject_invalid_utf8(true);
    let _ = value::parse_with(data, &strict);

    let Ok(v) = value::parse(data) else { return };
    // Display never fails, even with NaN/Infinity inside.
    let _ = v.to_string();
    match value::serialize(&v) {
        Ok(bytes) => {
            assert!(!bytes.contains(&0), "raw NUL in output");
            let back = value::parse(&bytes).expect("serialized output parses");
            assert!(same(&back, &v), "round trip changed the value");
            let again = value::serialize(&back).expect("serializes again");
            assert_eq!(again, bytes, "output is not canonical");
        }
        // NaN and ±Infinity parse (a superset of Node) but are never sent.
        Err(SerializeError::NonFiniteNumber { value }) => assert!(!value.is_finite()),
        Err(e) => panic!("unexpected serialize error: {e}"),
    }
});
