//! One test per serialization and parsing rule, with the exact bytes from the spec
//! (`jstp.md` §3) or from what Node 20 with mdsf 1.1.1 prints.

use connkit_jstp::value::{self, Expected, Found, ParseError, ParseOptions, SerializeError};
use connkit_jstp::{Object, Value};

fn arr(items: Vec<Value>) -> Value {
    Value::Array(items)
}

fn obj(pairs: Vec<(&str, Value)>) -> Value {
    Value::Object(pairs.into_iter().collect::<Object>())
}

fn s(text: &str) -> Value {
    Value::from(text)
}

fn n(x: f64) -> Value {
    Value::Number(x)
}

const U: Value = Value::Undefined;

/// The serialization as text.
fn ser(v: &Value) -> String {
    value::serialize_to_string(v).unwrap_or_else(|e| panic!("{e}"))
}

fn parse(text: &str) -> Value {
    value::parse(text.as_bytes()).unwrap_or_else(|e| panic!("{text:?}: {e}"))
}

fn parse_err(text: &[u8]) -> ParseError {
    match value::parse(text) {
        Ok(v) => panic!("{:?} parsed as {v:?}", String::from_utf8_lossy(text)),
        Err(e) => e,
    }
}

// ---------------------------------------------------------------------------
// Serialization (§3.1, §3.3)
// ---------------------------------------------------------------------------

#[test]
fn messages_are_compact_with_kind_first() {
    // §4.3, transcript-demo.log.
    let call = obj(vec![
        ("call", arr(vec![n(17.0), s("calculator")])),
        ("add", arr(vec![n(2.0), n(3.0)])),
    ]);
    assert_eq!(ser(&call), "{call:[17,'calculator'],add:[2,3]}");
    let handshake = obj(vec![
        ("handshake", arr(vec![n(0.0)])),
        ("ok", s("0f42439f-4857-486c-bce8-4011ed03366c")),
    ]);
    assert_eq!(
        ser(&handshake),
        "{handshake:[0],ok:'0f42439f-4857-486c-bce8-4011ed03366c'}"
    );
    let error = obj(vec![
        ("callback", arr(vec![n(12.0)])),
        (
            "error",
            arr(vec![n(100.0), s("Division by zero"), s("a"), n(1.0)]),
        ),
    ]);
    assert_eq!(
        ser(&error),
        "{callback:[12],error:[100,'Division by zero','a',1]}"
    );
    assert_eq!(ser(&obj(vec![])), "{}");
    assert_eq!(ser(&arr(vec![])), "[]");
}

#[test]
fn keys_are_bare_identifiers_or_quoted_strings() {
    // §3.1: bare iff /^[A-Za-z_$][A-Za-z0-9_$]*$/; Node prints `{'1':2,a:1,'b-c':3,$x:5,_y:1}`
    // (its object puts the integer key first; ours keeps the order given).
    let v = obj(vec![
        ("1", n(2.0)),
        ("a", n(1.0)),
        ("b-c", n(3.0)),
        ("$x", n(5.0)),
        ("_y", n(1.0)),
        ("ü", n(1.0)),
        ("", n(1.0)),
        ("a b", n(1.0)),
        ("it's", n(1.0)),
        ("__proto__", n(4.0)),
    ]);
    assert_eq!(
        ser(&v),
        "{'1':2,a:1,'b-c':3,$x:5,_y:1,'ü':1,'':1,'a b':1,'it\\'s':1,__proto__:4}"
    );
}

#[test]
fn strings_use_json_escapes_plus_single_quote() {
    // §3.1, captured: 'it\'s \"q\" \\ \n\t\u0001 ü € 😀 <U+2028>' — Node writes U+2028 raw;
    // we write \u2028 (§3.3).
    let v = s("it's \"q\" \\ \n\t\u{1} ü € 😀 \u{2028}");
    assert_eq!(
        ser(&v),
        "'it\\'s \\\"q\\\" \\\\ \\n\\t\\u0001 ü € 😀 \\u2028'"
    );
    // Node: mdsf.stringify('\u2028\u2029\u007f\u0000\u000b\'"\\') (minus the raw separators).
    assert_eq!(
        ser(&s("\u{7f}\u{0}\u{b}'\"\\\u{8}\u{c}\r\u{1f}")),
        "'\u{7f}\\u0000\\u000b\\'\\\"\\\\\\b\\f\\r\\u001f'"
    );
    assert_eq!(ser(&s("\u{2029}")), "'\\u2029'");
    assert_eq!(ser(&s("")), "''");
    assert_eq!(
        ser(&s("2019-04-25T00:00:00.000Z")),
        "'2019-04-25T00:00:00.000Z'"
    );
}

#[test]
fn numbers_use_javascript_layout() {
    // §3.1 and §3.3.
    for (x, want) in [
        (42.0, "42"),
        (-5.0, "-5"),
        (0.1 + 0.2, "0.30000000000000004"),
        (2.5, "2.5"),
        (1e21, "1e+21"),
        (1e-7, "1e-7"),
        (1.5e-7, "1.5e-7"),
        (-2.5e300, "-2.5e+300"),
        (123_456_789_012_345_680_000.0, "123456789012345680000"),
        (0.000_001, "0.000001"),
        (-0.0, "0"),
        (5e-324, "5e-324"),
        (1.23e-18, "1.23e-18"),
        (f64::MAX, "1.7976931348623157e+308"),
        (9_007_199_254_740_993.0, "9007199254740992"),
    ] {
        assert_eq!(ser(&n(x)), want, "{x:e}");
    }
}

#[test]
fn literals() {
    assert_eq!(ser(&Value::Null), "null");
    assert_eq!(ser(&Value::Bool(true)), "true");
    assert_eq!(ser(&Value::Bool(false)), "false");
    // §3.1: `undefined` at the top level becomes `undefined`.
    assert_eq!(ser(&U), "undefined");
}

#[test]
fn nan_and_infinity_are_a_typed_error() {
    // §3.3, quirk 1: never sent.
    for x in [f64::NAN, f64::INFINITY, f64::NEG_INFINITY] {
        let err = value::serialize(&obj(vec![("ok", arr(vec![n(x)]))])).unwrap_err();
        assert!(
            matches!(err, SerializeError::NonFiniteNumber { value } if value.to_bits() == x.to_bits())
        );
        assert!(err.to_string().contains("cannot be serialized"), "{err}");
    }
    // Display writes what mdsf.stringify writes (not for the wire).
    assert_eq!(
        obj(vec![("ok", arr(vec![n(f64::INFINITY)]))]).to_string(),
        "{ok:[Infinity]}"
    );
}

#[test]
fn undefined_members_are_left_out() {
    // §3.1: an entry whose value is undefined is left out.
    let v = obj(vec![("a", n(1.0)), ("b", U), ("c", n(3.0))]);
    assert_eq!(ser(&v), "{a:1,c:3}");
    assert_eq!(ser(&obj(vec![("b", U)])), "{}");
}

#[test]
fn undefined_elements_are_holes_and_keep_the_length() {
    // §3.1: [1,undefined,3] → [1,,3], [undefined,1] → [,1] as Node writes them.
    assert_eq!(ser(&arr(vec![n(1.0), U, n(3.0)])), "[1,,3]");
    assert_eq!(ser(&arr(vec![U, n(1.0)])), "[,1]");
    // Node writes [1,undefined] as `[1,]` and [undefined] as `[]`, losing the last element
    // (quirk 2). We write one more comma, which both Node parsers read back at full length.
    assert_eq!(ser(&arr(vec![n(1.0), U])), "[1,,]");
    assert_eq!(ser(&arr(vec![U])), "[,]");
    assert_eq!(ser(&arr(vec![U, n(1.0), U])), "[,1,,]");
    assert_eq!(ser(&arr(vec![U, U])), "[,,]");
}

#[test]
fn serialize_into_appends() {
    let mut buf = b"{x}\0".to_vec();
    value::serialize_into(&arr(vec![n(1.0)]), &mut buf).unwrap();
    assert_eq!(buf, b"{x}\0[1]");
    let mut bytes = bytes::BytesMut::from(&b"ab"[..]);
    value::serialize_into(&s("c"), &mut bytes).unwrap();
    assert_eq!(&bytes[..], b"ab'c'");
}

// ---------------------------------------------------------------------------
// Parsing: what Node accepts (§3.2)
// ---------------------------------------------------------------------------

#[test]
fn lenient_syntax_from_the_probe() {
    // probe-tcp.out `lenientSyntax`: Node answered {callback:[1],ok:[16.5]}.
    let v = parse(" /* c */ { call: [ 0x1 , \"calculator\" , ] , // line\n add: [ +0x10, .5, ], }");
    assert_eq!(ser(&v), "{call:[1,'calculator'],add:[16,0.5]}");
}

#[test]
fn string_escapes_from_the_probe() {
    // probe-tcp.out `escapes`: Node echoed 'AB😀😀A\u0000\'\"'.
    let v = parse(r#"'\x41\u0042\u{1F600}\ud83d\ude00\101\0\'\"'"#);
    assert_eq!(v, s("AB😀😀A\u{0}'\""));
    assert_eq!(ser(&v), "'AB😀😀A\\u0000\\'\\\"'");
}

#[test]
fn every_escape_form() {
    assert_eq!(parse(r"'\b\f\n\r\t\v'"), s("\u{8}\u{c}\n\r\t\u{b}"));
    assert_eq!(parse(r"'\/\q\8\9\\'"), s("/q89\\"));
    // mdsf reads up to three octal digits: \400 is U+0100 (JavaScript would read ' 0').
    assert_eq!(parse(r"'\400\777\08\1234'"), s("\u{100}\u{1ff}\u{0}8S4"));
    assert_eq!(
        parse(r"'\u{0}\u{10FFFF}\u{00000041}'"),
        s("\u{0}\u{10ffff}A")
    );
    // A backslash before a real line break keeps the line break (mdsf, not JavaScript).
    assert_eq!(parse("'a\\\nb\\\r\nc'"), s("a\nb\r\nc"));
    // Escaped non-ASCII stands for itself.
    assert_eq!(parse("'\\ü\\😀'"), s("ü😀"));
    // Surrogate pairs join in either escape form; lone surrogates become U+FFFD (§3.3).
    assert_eq!(parse(r"'\uD83D\uDE00'"), s("😀"));
    assert_eq!(parse(r"'\ud83d\u{de00}'"), s("😀"));
    assert_eq!(parse(r"'\ud800'"), s("\u{fffd}"));
    assert_eq!(parse(r"'\udc00\ud800x'"), s("\u{fffd}\u{fffd}x"));
    assert_eq!(parse(r"'\ud800\u0041'"), s("\u{fffd}A"));
    assert_eq!(parse(r"'\ud800\ud800\udc00'"), s("\u{fffd}\u{10000}"));
}

#[test]
fn raw_control_characters_and_line_breaks_in_strings() {
    // probe-tcp.out `rawNewlineInString`: 'a<LF>b' echoed as 'a\nb'.
    assert_eq!(parse("'a\nb'"), s("a\nb"));
    assert_eq!(parse("'\u{0}\u{1}\t\u{2028}'"), s("\u{0}\u{1}\t\u{2028}"));
}

#[test]
fn both_quote_styles() {
    // probe-tcp.out `quotedKey`: {'a b':1,"c":2} echoed as {'a b':1,c:2}.
    let v = parse(r#"{'a b':1,"c":2}"#);
    assert_eq!(ser(&v), "{'a b':1,c:2}");
    assert_eq!(parse(r#""it's""#), s("it's"));
    assert_eq!(parse(r#"'say "hi"'"#), s("say \"hi\""));
}

#[test]
fn number_forms() {
    for (text, want) in [
        ("0", 0.0),
        ("-0", -0.0),
        ("+1", 1.0),
        (".5", 0.5),
        ("5.", 5.0),
        ("-.5", -0.5),
        ("1e5", 1e5),
        ("1E+5", 1e5),
        ("2.5e-3", 2.5e-3),
        ("0x1F", 31.0),
        ("0o17", 15.0),
        ("0b101", 5.0),
        ("-0x10", -16.0),
        ("+0x10", 16.0),
        ("123456789012345680000", 123_456_789_012_345_680_000.0),
        ("9007199254740993", 9_007_199_254_740_992.0),
        ("0.30000000000000004", 0.1 + 0.2),
        ("1e400", f64::INFINITY),
        ("5e-324", 5e-324),
    ] {
        let v = parse(text);
        assert_eq!(v.as_f64().map(f64::to_bits), Some(want.to_bits()), "{text}");
    }
}

#[test]
fn holes_and_trailing_commas() {
    // §3.2: [,1] → [undefined,1]; [1,] → [1]; [,1,,] → [undefined,1,undefined].
    assert_eq!(parse("[,1]"), arr(vec![U, n(1.0)]));
    assert_eq!(parse("[1,]"), arr(vec![n(1.0)]));
    assert_eq!(parse("[,1,,]"), arr(vec![U, n(1.0), U]));
    assert_eq!(parse("[,]"), arr(vec![U]));
    assert_eq!(parse("[ ]"), arr(vec![]));
    assert_eq!(parse("[1,undefined]"), arr(vec![n(1.0), U]));
    assert_eq!(parse("{a:1,}"), obj(vec![("a", n(1.0))]));
}

#[test]
fn undefined_members_are_dropped_and_repeated_keys_resolve_like_node() {
    // §3.2; Node: mdsf.parse('{a:1,a:undefined,b:2,a:3}') is {a:3,b:2}.
    assert_eq!(
        parse("{a:1,a:undefined,b:2,a:3}"),
        obj(vec![("a", n(3.0)), ("b", n(2.0))])
    );
    assert_eq!(parse("{a:undefined,b:1}"), obj(vec![("b", n(1.0))]));
    assert_eq!(parse("undefined"), U);
    // probe-tcp.out `undefinedLiteral`: echo:[undefined] is an array of one undefined.
    assert_eq!(parse("[undefined]"), arr(vec![U]));
}

#[test]
fn many_repeated_keys_stay_linear_and_correct() {
    let mut text = String::from("{");
    for i in 0..5000 {
        text.push_str(&format!("k{}:{},", i % 100, i));
    }
    text.push('}');
    let v = parse(&text);
    let o = v.as_object().unwrap();
    assert_eq!(o.len(), 100);
    assert_eq!(o.get_index(0), Some(("k0", &n(4900.0))));
    assert_eq!(o.get_index(99), Some(("k99", &n(4999.0))));
}

// ---------------------------------------------------------------------------
// Parsing: the superset we accept beyond Node's JS parser (§3.3)
// ---------------------------------------------------------------------------

#[test]
fn superset_of_both_node_parsers() {
    // Rejected by the fallback, accepted by the native parser or JavaScript.
    assert!(parse("NaN").as_f64().unwrap().is_nan());
    assert_eq!(parse("Infinity"), n(f64::INFINITY));
    assert_eq!(parse("-Infinity"), n(f64::NEG_INFINITY));
    assert_eq!(parse("[+Infinity]"), arr(vec![n(f64::INFINITY)]));
    assert_eq!(parse("0X1F"), n(31.0));
    assert_eq!(parse("0O17"), n(15.0));
    assert_eq!(parse("0B11"), n(3.0));
    // Numeric keys are stored as JavaScript's String(number).
    assert_eq!(parse("{1:2}"), obj(vec![("1", n(2.0))]));
    assert_eq!(
        parse("{1e3:1,0x10:2,.5:3,1.50:4}"),
        obj(vec![
            ("1000", n(1.0)),
            ("16", n(2.0)),
            ("0.5", n(3.0)),
            ("1.5", n(4.0))
        ])
    );
    // Unicode identifier keys.
    assert_eq!(
        parse("{ü:1,café:2,名前:3,a\u{200d}b:4}"),
        obj(vec![
            ("ü", n(1.0)),
            ("café", n(2.0)),
            ("名前", n(3.0)),
            ("a\u{200d}b", n(4.0))
        ])
    );
    // Whitespace before ':' and inside an empty object.
    assert_eq!(
        ser(&parse("{call :[1,'calculator'],answer:[]}")),
        "{call:[1,'calculator'],answer:[]}"
    );
    assert_eq!(parse("{ }"), obj(vec![]));
    // Any number of comments.
    assert_eq!(parse("[1/*a*//*b*/,2]"), arr(vec![n(1.0), n(2.0)]));
    assert_eq!(
        parse("/*a*/ //b\n /*c*/[1 //d\n//e\n,2]//f"),
        arr(vec![n(1.0), n(2.0)])
    );
    // Unicode whitespace, line separators and the BOM.
    assert_eq!(
        parse("\u{feff}\u{a0}[\u{2028}1,\u{2029}2\u{3000}]\u{202f}"),
        arr(vec![n(1.0), n(2.0)])
    );
}

#[test]
fn a_line_comment_ends_only_at_cr_or_lf() {
    // As in mdsf's parser: U+2028 does not end it.
    assert_eq!(parse("[1//x\u{2028}2\n]"), arr(vec![n(1.0)]));
    assert_eq!(parse("[1//x\r,2]"), arr(vec![n(1.0), n(2.0)]));
}

#[test]
fn invalid_utf8_in_strings_becomes_replacement_characters() {
    // Node decodes the stream as UTF-8 first, replacing invalid bytes.
    assert_eq!(
        value::parse(b"'a\xffb\xe2\x82'").unwrap(),
        s("a\u{fffd}b\u{fffd}")
    );
    assert_eq!(value::parse(b"'\\n\xc3'").unwrap(), s("\n\u{fffd}"));
    let strict = ParseOptions::new().reject_invalid_utf8(true);
    assert_eq!(
        value::parse_with(b"['ok','a\xffb']", &strict),
        Err(ParseError::InvalidUtf8 { position: 8 })
    );
    assert_eq!(
        value::parse_with(b"'\\t\xff'", &strict),
        Err(ParseError::InvalidUtf8 { position: 3 })
    );
    // Outside strings invalid bytes are unexpected, and reported as bytes.
    assert_eq!(
        parse_err(b"[1,\xff]"),
        ParseError::Unexpected {
            position: 3,
            expected: Expected::ValueOrArrayEnd,
            found: Found::Byte(0xff)
        }
    );
}

// ---------------------------------------------------------------------------
// Parsing: what we reject, with positions
// ---------------------------------------------------------------------------

fn unexpected(position: usize, expected: Expected, found: Found) -> ParseError {
    ParseError::Unexpected {
        position,
        expected,
        found,
    }
}

#[test]
fn garbage_numbers_are_rejected() {
    // §3.2 lists these as accepted by mistake by the fallback; §3.3: reject them.
    assert_eq!(
        parse_err(b"1+2"),
        unexpected(1, Expected::EndOfInput, Found::Char('+'))
    );
    assert_eq!(
        parse_err(b"1e5.5"),
        unexpected(3, Expected::EndOfInput, Found::Char('.'))
    );
    assert_eq!(
        parse_err(b"+-1"),
        unexpected(1, Expected::Digit, Found::Char('-'))
    );
    assert!(matches!(
        parse_err(b"[01]"),
        ParseError::InvalidNumber { position: 1, .. }
    ));
    assert!(matches!(
        parse_err(b"-007"),
        ParseError::InvalidNumber { position: 0, .. }
    ));
    assert_eq!(
        parse_err(b"0x"),
        unexpected(2, Expected::HexDigit, Found::End)
    );
    assert_eq!(
        parse_err(b"0b2"),
        unexpected(2, Expected::BinaryDigit, Found::Char('2'))
    );
    assert_eq!(parse_err(b"1e"), unexpected(2, Expected::Digit, Found::End));
    assert_eq!(parse_err(b"-"), unexpected(1, Expected::Digit, Found::End));
    assert_eq!(parse_err(b"."), unexpected(1, Expected::Digit, Found::End));
    assert_eq!(
        parse_err(b"- 1"),
        unexpected(1, Expected::Digit, Found::Char(' '))
    );
    assert_eq!(
        parse_err(b"1_000"),
        unexpected(1, Expected::EndOfInput, Found::Char('_'))
    );
}

#[test]
fn structural_errors_report_position_and_expectation() {
    assert_eq!(parse_err(b""), unexpected(0, Expected::Value, Found::End));
    assert_eq!(
        parse_err(b"  // only a comment"),
        unexpected(19, Expected::Value, Found::End)
    );
    assert_eq!(
        parse_err(b"{a:1 b:2}"),
        unexpected(5, Expected::CommaOrObjectEnd, Found::Char('b'))
    );
    assert_eq!(
        parse_err(b"{,}"),
        unexpected(1, Expected::KeyOrObjectEnd, Found::Char(','))
    );
    assert_eq!(
        parse_err(b"{a 1}"),
        unexpected(3, Expected::Colon, Found::Char('1'))
    );
    assert_eq!(
        parse_err(b"{-1:2}"),
        unexpected(1, Expected::KeyOrObjectEnd, Found::Char('-'))
    );
    assert_eq!(
        parse_err(b"[1 2]"),
        unexpected(3, Expected::CommaOrArrayEnd, Found::Char('2'))
    );
    assert_eq!(
        parse_err(b"[1,"),
        unexpected(3, Expected::ValueOrArrayEnd, Found::End)
    );
    assert_eq!(
        parse_err(b"{a:"),
        unexpected(3, Expected::Value, Found::End)
    );
    assert_eq!(
        parse_err(b"{}x"),
        unexpected(2, Expected::EndOfInput, Found::Char('x'))
    );
    assert_eq!(
        parse_err(b"{}{}"),
        unexpected(2, Expected::EndOfInput, Found::Char('{'))
    );
    assert_eq!(
        parse_err(b"nul"),
        unexpected(3, Expected::Keyword("null"), Found::End)
    );
    assert_eq!(
        parse_err(b"[True]"),
        unexpected(1, Expected::ValueOrArrayEnd, Found::Char('T'))
    );
    assert_eq!(
        parse_err(b"Infinit"),
        unexpected(7, Expected::Keyword("Infinity"), Found::End)
    );
    assert_eq!(
        parse_err(b"/"),
        unexpected(0, Expected::Value, Found::Char('/'))
    );
    assert_eq!(
        parse_err(b"[1] /* open"),
        unexpected(11, Expected::CommentEnd, Found::End)
    );
    // A NUL outside a string (two messages in one WebSocket frame, ws-probe.out).
    assert_eq!(
        parse_err(b"{call:[1,'calculator'],add:[1,2]}\0{ping:[2]}"),
        unexpected(33, Expected::EndOfInput, Found::Char('\0'))
    );
    assert_eq!(
        parse_err("[1,ü]".as_bytes()),
        unexpected(3, Expected::ValueOrArrayEnd, Found::Char('ü'))
    );
}

#[test]
fn string_errors() {
    assert_eq!(
        parse_err(b"'abc"),
        unexpected(4, Expected::ClosingQuote, Found::End)
    );
    assert_eq!(
        parse_err(b"'abc\""),
        unexpected(5, Expected::ClosingQuote, Found::End)
    );
    assert_eq!(
        parse_err(b"'abc\\"),
        unexpected(5, Expected::EscapedCharacter, Found::End)
    );
    for (text, position) in [
        (&br"'\x4'"[..], 1),
        (br"'ab\xZZ'", 3),
        (br"'\u12'", 1),
        (br"'\u{}'", 1),
        (br"'\u{110000}'", 1),
        (br"'\u{000000041}'", 1),
        (br"'\u{41'", 1),
        (br"'\ud800\u12'", 7),
    ] {
        assert!(
            matches!(parse_err(text), ParseError::InvalidEscape { position: p, .. } if p == position),
            "{:?} {:?}",
            String::from_utf8_lossy(text),
            parse_err(text)
        );
    }
}

#[test]
fn error_messages_read_well() {
    assert_eq!(
        parse_err(b"{a:1 b:2}").to_string(),
        "expected `,` or `}`, found 'b' at byte 5"
    );
    assert_eq!(
        parse_err(b"'x").to_string(),
        "expected a closing quote, found end of input at byte 2"
    );
    assert_eq!(
        parse_err(b"[\xfe]").to_string(),
        "expected a value, `,` or `]`, found byte 0xfe at byte 1"
    );
    assert_eq!(
        parse_err(b"[\n\t1 \n 2]").to_string(),
        "expected `,` or `]`, found '2' at byte 7"
    );
    assert_eq!(
        parse_err(b"01").to_string(),
        "invalid number at byte 0: a leading zero (legacy octal literal); use 0o for octal"
    );
}

#[test]
fn depth_limit_is_configurable() {
    let nested = |depth: usize| format!("{}{}", "[".repeat(depth), "]".repeat(depth));
    assert!(value::parse(nested(128).as_bytes()).is_ok());
    assert_eq!(
        value::parse(nested(129).as_bytes()),
        Err(ParseError::TooDeep {
            position: 128,
            limit: 128
        })
    );
    let shallow = ParseOptions::new().max_depth(1);
    assert!(value::parse_with(b"{a:1}", &shallow).is_ok());
    assert!(value::parse_with(b"{a:[1]}", &shallow).is_err());
    assert!(value::parse_with(b"1", &ParseOptions::new().max_depth(0)).is_ok());
    assert!(value::parse_with(b"[]", &ParseOptions::new().max_depth(0)).is_err());
    // Each level costs stack (about 300 bytes in release builds, a few KiB in debug builds),
    // so a high limit needs a thread with a big enough stack.
    let deep_input = nested(1000);
    let parsed = std::thread::Builder::new()
        .stack_size(16 << 20)
        .spawn(move || {
            let deep = ParseOptions::new().max_depth(1000);
            value::parse_with(deep_input.as_bytes(), &deep).is_ok()
        })
        .unwrap()
        .join()
        .unwrap();
    assert!(parsed);
}

// ---------------------------------------------------------------------------
// Accessors used by the message layer
// ---------------------------------------------------------------------------

#[test]
fn message_parts_by_position() {
    let v = parse("{callback:[13],ok:[1,'two'],extra:1}");
    let o = v.as_object().unwrap();
    assert_eq!(o.get_index(0).map(|(k, _)| k), Some("callback"));
    assert_eq!(o.get_index(1).map(|(k, _)| k), Some("ok"));
    assert_eq!(
        v.get("callback")
            .and_then(|h| h.at(0))
            .and_then(Value::as_i64),
        Some(13)
    );
    assert!(v.get("ok").unwrap().is_truthy());
    assert_eq!(v.get("ok").and_then(|a| a.at(1)), Some(&s("two")));
    assert_eq!(v.get("error"), None);
    assert_eq!(
        "{a:[1,,3]}"
            .parse::<Value>()
            .unwrap()
            .get("a")
            .and_then(|a| a.at(1)),
        Some(&U)
    );
}
