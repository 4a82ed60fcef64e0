//! Property tests: serialization round-trips, is deterministic and canonical; the parser
//! never panics; serde conversions round-trip.

mod common;

use std::collections::BTreeMap;

use common::Shape;
use connkit_jstp::value::{self, ParseError};
use connkit_jstp::{Value, from_value, to_value};
use proptest::prelude::*;
use serde::{Deserialize, Serialize};

const FULL: Shape = Shape {
    undefined: true,
    proto_keys: true,
};
const JSON_LIKE: Shape = Shape {
    undefined: false,
    proto_keys: true,
};

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn parse_of_serialize_is_identity(v in common::value(FULL)) {
        let bytes = value::serialize(&v).expect("finite values serialize");
        let back = value::parse(&bytes);
        prop_assert_eq!(back.as_ref(), Ok(&v), "{}", String::from_utf8_lossy(&bytes));
    }

    #[test]
    fn serialize_is_deterministic_and_canonical(v in common::value(FULL)) {
        let first = value::serialize(&v).expect("finite values serialize");
        prop_assert_eq!(&value::serialize(&v.clone()).expect("again"), &first);
        // Display writes the same bytes for finite values.
        let shown = v.to_string();
        prop_assert_eq!(shown.as_bytes(), &first[..]);
        // Appending to a non-empty buffer writes the same bytes after what was there.
        let mut reused = b"prefix".to_vec();
        value::serialize_into(&v, &mut reused).expect("into vec");
        prop_assert_eq!(&reused[6..], &first[..]);
        let mut bytes_mut = bytes::BytesMut::new();
        value::serialize_into(&v, &mut bytes_mut).expect("into BytesMut");
        prop_assert_eq!(&bytes_mut[..], &first[..]);
        // Re-serializing what was parsed gives the same bytes: the output is canonical.
        let back = value::parse(&first).expect("parses");
        prop_assert_eq!(value::serialize(&back).expect("again"), first);
    }

    #[test]
    fn output_never_holds_a_frame_terminator_or_raw_line_break(v in common::value(FULL)) {
        let bytes = value::serialize(&v).expect("finite values serialize");
        prop_assert!(!bytes.contains(&0), "raw NUL");
        prop_assert!(!bytes.contains(&b'\n') && !bytes.contains(&b'\r'), "raw line break");
        let text = String::from_utf8(bytes).expect("UTF-8");
        let separators = text.contains('\u{2028}') || text.contains('\u{2029}');
        prop_assert!(!separators, "raw line or paragraph separator");
    }

    #[test]
    fn value_round_trips_through_serde(v in common::value(FULL)) {
        prop_assert_eq!(to_value(&v), Ok(v.clone()));
        prop_assert_eq!(from_value::<Value>(v.clone()), Ok(v));
    }

    #[test]
    fn json_like_values_round_trip_through_serde_json(v in common::value(JSON_LIKE)) {
        // Key order survives only with serde_json's `preserve_order`; compare sorted keys.
        let json = serde_json::Value::from(v.clone());
        prop_assert_eq!(sorted(&Value::from(json)), sorted(&v));
    }

    #[test]
    fn parse_never_panics_on_bytes(bytes in proptest::collection::vec(any::<u8>(), 0..200)) {
        check_parse_total(&bytes)?;
    }

    #[test]
    fn parse_never_panics_on_mutated_messages(
        v in common::value(FULL),
        edits in proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..4),
    ) {
        let mut bytes = value::serialize(&v).expect("finite values serialize");
        for (at, byte) in edits {
            let i = at.index(bytes.len());
            bytes[i] = byte;
        }
        check_parse_total(&bytes)?;
    }
}

/// Parsing returns; an error points inside the input; a success round-trips.
fn check_parse_total(bytes: &[u8]) -> Result<(), TestCaseError> {
    match value::parse(bytes) {
        Err(e) => prop_assert!(e.position() <= bytes.len(), "{e}"),
        Ok(v) => {
            if let Ok(out) = value::serialize(&v) {
                let again = value::parse(&out);
                prop_assert_eq!(again.as_ref(), Ok(&v));
            }
        }
    }
    Ok(())
}

/// `v` with every object's keys sorted.
fn sorted(v: &Value) -> Value {
    match v {
        Value::Array(items) => Value::Array(items.iter().map(sorted).collect()),
        Value::Object(o) => {
            let mut pairs: Vec<(String, Value)> = o
                .iter()
                .map(|(k, item)| (k.to_owned(), sorted(item)))
                .collect();
            pairs.sort_by(|a, b| a.0.cmp(&b.0));
            Value::Object(pairs.into())
        }
        other => other.clone(),
    }
}

#[test]
fn deep_nesting_is_an_error_not_a_stack_overflow() {
    let deep = "[".repeat(1_000_000);
    assert!(matches!(
        value::parse(deep.as_bytes()),
        Err(ParseError::TooDeep {
            limit: 128,
            position: 128
        })
    ));
    let deep = "{a:".repeat(1_000_000);
    assert!(matches!(
        value::parse(deep.as_bytes()),
        Err(ParseError::TooDeep { limit: 128, .. })
    ));
}

// ---------------------------------------------------------------------------
// User types through serde
// ---------------------------------------------------------------------------

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
enum Shape2 {
    Unit,
    Newtype(i32),
    Tuple(i32, String),
    Struct { x: f64, y: Option<bool> },
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Record {
    id: i64,
    name: String,
    ratio: f64,
    small: u8,
    flag: bool,
    maybe: Option<String>,
    list: Vec<i32>,
    pair: (u16, char),
    map: BTreeMap<String, Vec<Option<i32>>>,
    numbered: BTreeMap<u32, bool>,
    shape: Shape2,
    shapes: Vec<Shape2>,
    nested: Option<Box<Record>>,
    unit: (),
}

fn shape2() -> impl Strategy<Value = Shape2> {
    prop_oneof![
        Just(Shape2::Unit),
        any::<i32>().prop_map(Shape2::Newtype),
        (any::<i32>(), ".{0,5}").prop_map(|(a, b)| Shape2::Tuple(a, b)),
        (common::number(), any::<Option<bool>>()).prop_map(|(x, y)| Shape2::Struct { x, y }),
    ]
}

fn record() -> impl Strategy<Value = Record> {
    (flat_record(), proptest::option::of(flat_record())).prop_map(|(mut outer, inner)| {
        outer.nested = inner.map(Box::new);
        outer
    })
}

fn flat_record() -> impl Strategy<Value = Record> {
    (
        (
            -(1i64 << 53)..(1i64 << 53),
            common::string(),
            common::number(),
            any::<u8>(),
            any::<bool>(),
            proptest::option::of(common::string()),
            proptest::collection::vec(any::<i32>(), 0..5),
            (any::<u16>(), any::<char>()),
        ),
        (
            proptest::collection::btree_map(
                common::string(),
                proptest::collection::vec(any::<Option<i32>>(), 0..3),
                0..4,
            ),
            proptest::collection::btree_map(any::<u32>(), any::<bool>(), 0..4),
            shape2(),
            proptest::collection::vec(shape2(), 0..3),
        ),
    )
        .prop_map(
            |(
                (id, name, ratio, small, flag, maybe, list, pair),
                (map, numbered, shape, shapes),
            )| Record {
                id,
                name,
                ratio,
                small,
                flag,
                maybe,
                list,
                pair,
                map,
                numbered,
                shape,
                shapes,
                nested: None,
                unit: (),
            },
        )
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(500))]

    #[test]
    fn user_types_round_trip_through_value_and_the_wire(r in record()) {
        let v = to_value(&r).expect("to_value");
        prop_assert_eq!(from_value::<Record>(v.clone()).expect("from_value"), r.clone());
        let wire = value::serialize(&v).expect("serialize");
        let parsed = value::parse(&wire).expect("parse");
        prop_assert_eq!(from_value::<Record>(parsed).expect("from wire"), r);
    }
}
