//! Differential test against the real `mdsf` 1.1.1 (the serializer JSTP 2.3.0 uses), run by
//! `tests/interop/node/mdsf_roundtrip.js`.
//!
//! - Mode A (`stringify`): Node gets a value as JSON, writes it with `mdsf.stringify`; we
//!   parse Node's text back to the value, and our serializer must write Node's exact bytes
//!   (with U+2028/U+2029 escaped, the one intended difference).
//! - Mode B (`parse`): we serialize a value (holes, trailing `undefined`, top-level
//!   `undefined` included); Node reads it with `mdsf.parse` and describes what it got; that
//!   must be the value we sent.
//!
//! Objects are compared in JavaScript's key order (array-index keys first, ascending), which
//! is the order any Node object has. `__proto__` keys are left out of mode B: `mdsf.parse`
//! assigns them with `object[key] = value`, which sets the prototype instead of a member.
//!
//! Skips (prints `SKIPPED:`) without Node, fails under `CI=true`, as the harness decides.

mod common;

use std::io::Write as _;
use std::time::Duration;

use common::Shape;
use connkit_jstp::value;
use connkit_jstp::{Object, Value};
use connkit_testkit::NodeProcess;
use proptest::strategy::{Strategy, ValueTree};
use proptest::test_runner::TestRunner;

/// Generated values per mode, on top of the fixed corpus.
const GENERATED_PER_MODE: usize = 3000;

const JSON_LIKE: Shape = Shape {
    undefined: false,
    proto_keys: true,
};
const SENDABLE: Shape = Shape {
    undefined: true,
    proto_keys: false,
};

fn generate(shape: Shape, count: usize, seed_offset: usize) -> Vec<Value> {
    // Deterministic: the same values on every run and machine.
    let mut runner = TestRunner::deterministic();
    let strategy = common::value(shape);
    for _ in 0..seed_offset {
        let _ = strategy.new_tree(&mut runner);
    }
    (0..count)
        .map(|_| strategy.new_tree(&mut runner).expect("generate").current())
        .collect()
}

fn obj(pairs: Vec<(&str, Value)>) -> Value {
    Value::Object(pairs.into_iter().collect::<Object>())
}

/// Values from the spec and the known edge cases, all JSON-representable.
fn corpus() -> Vec<Value> {
    let mut out: Vec<Value> = [
        0.0,
        -0.0,
        42.0,
        -5.0,
        0.1 + 0.2,
        2.5,
        1e21,
        1e-7,
        1.5e-7,
        1e-6,
        1e20,
        123_456_789_012_345_680_000.0,
        5e-324,
        f64::MAX,
        f64::MIN_POSITIVE,
        9_007_199_254_740_993.0,
        -2.5e300,
        1.23e-18,
    ]
    .into_iter()
    .map(Value::from)
    .collect();
    for s in [
        "",
        "it's \"q\" \\ \n\t\u{1} ü € 😀 \u{2028}",
        "\u{0}\u{7f}\u{b}\u{1f}\u{8}\u{c}\r",
        "\u{2029}\u{2028}\u{2027}\u{202a}",
        "\u{feff}\u{a0}\u{10ffff}",
        "''\"\"\\\\",
        "2019-04-25T00:00:00.000Z",
    ] {
        out.push(Value::from(s));
    }
    out.push(Value::Null);
    out.push(Value::Bool(true));
    out.push(obj(vec![
        (
            "call",
            Value::from(vec![Value::from(17), Value::from("calculator")]),
        ),
        ("add", Value::from(vec![2, 3])),
    ]));
    out.push(obj(vec![
        ("a", Value::from(1)),
        ("1", Value::from(2)),
        ("b-c", Value::from(3)),
        ("__proto__", Value::from(4)),
        ("$x", Value::from(5)),
        ("_y", Value::from(6)),
        ("ü", Value::from(7)),
        ("", Value::from(8)),
        ("0", Value::from(9)),
        ("4294967295", Value::from(10)),
        ("4294967294", Value::from(11)),
        ("01", Value::from(12)),
    ]));
    out.push(obj(vec![(
        "echo",
        Value::from(vec![obj(vec![
            (
                "a",
                Value::from(vec![
                    Value::from(1),
                    Value::Null,
                    Value::from(true),
                    Value::from(false),
                    Value::from("x"),
                ]),
            ),
            ("b-c", obj(vec![("d", Value::Array(vec![]))])),
        ])]),
    )]));
    out
}

/// Extra values for mode B: holes and `undefined` in every position.
fn sendable_corpus() -> Vec<Value> {
    let u = || Value::Undefined;
    let one = || Value::from(1);
    vec![
        Value::Undefined,
        Value::Array(vec![u()]),
        Value::Array(vec![u(), u()]),
        Value::Array(vec![one(), u()]),
        Value::Array(vec![u(), one()]),
        Value::Array(vec![u(), one(), u()]),
        Value::Array(vec![one(), u(), Value::from(3)]),
        Value::Array(vec![Value::Array(vec![u()]), u()]),
        obj(vec![("ok", Value::Array(vec![u(), u(), one()]))]),
    ]
}

/// Reads the `tag` encoding of `mdsf_roundtrip.js` back into a value.
fn from_tagged(j: &serde_json::Value) -> Result<Value, String> {
    use serde_json::Value as J;
    Ok(match j {
        J::Null => Value::Null,
        J::Bool(b) => Value::Bool(*b),
        J::String(s) => Value::String(s.clone()),
        J::Object(m) => {
            if m.contains_key("u") {
                Value::Undefined
            } else if let Some(J::String(n)) = m.get("n") {
                let x = if n == "-0" {
                    -0.0
                } else {
                    n.parse::<f64>().map_err(|e| format!("number {n}: {e}"))?
                };
                Value::Number(x)
            } else if let Some(J::Array(items)) = m.get("a") {
                Value::Array(items.iter().map(from_tagged).collect::<Result<_, _>>()?)
            } else if let Some(J::Array(pairs)) = m.get("o") {
                let mut out = Vec::with_capacity(pairs.len());
                for pair in pairs {
                    match pair.as_array().map(Vec::as_slice) {
                        Some([J::String(k), v]) => out.push((k.clone(), from_tagged(v)?)),
                        _ => return Err(format!("bad member {pair}")),
                    }
                }
                Value::Object(Object::from(out))
            } else {
                return Err(format!("unknown tag {j}"));
            }
        }
        other => return Err(format!("untagged {other}")),
    })
}

async fn ask(
    peer: &mut NodeProcess,
    mode: &str,
    payload: &str,
) -> Result<serde_json::Value, String> {
    peer.write_line(&format!("{mode} {payload}"))
        .await
        .map_err(|e| e.to_string())?;
    let line = peer
        .next_line(Duration::from_secs(20))
        .await
        .map_err(|e| e.to_string())?
        .ok_or("the Node script ended")?;
    let reply: serde_json::Value =
        serde_json::from_str(&line).map_err(|e| format!("{e}: {line}"))?;
    match reply.get("ok") {
        Some(ok) => Ok(ok.clone()),
        None => Err(format!("Node error: {}", reply["error"])),
    }
}

#[derive(Default)]
struct Tally {
    compared: usize,
    separator_differences: usize,
    failures: Vec<String>,
}

impl Tally {
    fn fail(&mut self, what: String) {
        self.failures.push(what);
    }
}

/// Mode A: Node serializes, we parse and compare, and our bytes must equal Node's.
async fn mode_a(peer: &mut NodeProcess, values: &[Value]) -> Tally {
    let mut t = Tally::default();
    for v in values {
        let json = common::to_json(v);
        let node_text = match ask(peer, "stringify", &json).await {
            Ok(serde_json::Value::String(s)) => s,
            Ok(other) => {
                t.fail(format!("A {json}: Node returned {other}"));
                continue;
            }
            Err(e) => {
                t.fail(format!("A {json}: {e}"));
                continue;
            }
        };
        t.compared += 1;
        let expected = common::js_order(v);
        match value::parse(node_text.as_bytes()) {
            Ok(parsed) if parsed == expected => {}
            Ok(parsed) => t.fail(format!(
                "A parse {node_text:?}: got {parsed:?}, sent {expected:?}"
            )),
            Err(e) => t.fail(format!("A parse {node_text:?}: {e}")),
        }
        let node_canonical = node_text
            .replace('\u{2028}', "\\u2028")
            .replace('\u{2029}', "\\u2029");
        if node_canonical != node_text {
            t.separator_differences += 1;
        }
        match value::serialize_to_string(&expected) {
            Ok(ours) if ours == node_canonical => {}
            Ok(ours) => t.fail(format!(
                "A bytes for {json}: Node {node_text:?}, ours {ours:?}"
            )),
            Err(e) => t.fail(format!("A serialize {json}: {e}")),
        }
    }
    t
}

/// Mode B: we serialize, Node parses, and what Node read must be what we sent.
async fn mode_b(peer: &mut NodeProcess, values: &[Value]) -> Tally {
    let mut t = Tally::default();
    for v in values {
        let ours = value::serialize_to_string(v).expect("generated values are finite");
        let quoted = serde_json::to_string(&ours).expect("JSON string");
        let tagged = match ask(peer, "parse", &quoted).await {
            Ok(tagged) => tagged,
            Err(e) => {
                t.fail(format!("B Node could not parse {ours:?}: {e}"));
                continue;
            }
        };
        t.compared += 1;
        let expected = common::js_order(v);
        match from_tagged(&tagged) {
            Ok(read) if read == expected => {}
            Ok(read) => t.fail(format!("B {ours:?}: Node read {read:?}, sent {expected:?}")),
            Err(e) => t.fail(format!("B {ours:?}: {e}")),
        }
    }
    t
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rust_and_node_mdsf_agree_on_bytes_and_values() {
    let Some(node) = connkit_testkit::node_or_skip() else {
        return;
    };
    connkit_testkit::within(600, async move {
        let mut peer = node
            .spawn("mdsf_roundtrip.js", std::iter::empty::<&str>())
            .expect("spawn mdsf_roundtrip.js");
        peer.wait_ready(Duration::from_secs(30))
            .await
            .expect("mdsf_roundtrip.js ready");

        let mut a_values = corpus();
        a_values.extend(generate(JSON_LIKE, GENERATED_PER_MODE, 0));
        let a = mode_a(&mut peer, &a_values).await;

        let mut b_values: Vec<Value> = corpus()
            .into_iter()
            .filter(|v| !common::to_json(v).contains("\"__proto__\""))
            .collect();
        b_values.extend(sendable_corpus());
        b_values.extend(generate(SENDABLE, GENERATED_PER_MODE, 1));
        let b = mode_b(&mut peer, &b_values).await;

        peer.close_stdin();
        let _ = peer.wait_exit(Duration::from_secs(10)).await;

        let _ = writeln!(
            std::io::stderr(),
            "mdsf differential (Node {}): mode A compared {} values ({} with U+2028/U+2029), \
             mode B compared {} values; {} failures",
            node.node_binary().display(),
            a.compared,
            a.separator_differences,
            b.compared,
            a.failures.len() + b.failures.len(),
        );
        let failures: Vec<&String> = a.failures.iter().chain(&b.failures).collect();
        assert!(
            failures.is_empty(),
            "{} disagreements with mdsf, first ones:\n{}",
            failures.len(),
            failures
                .iter()
                .take(12)
                .map(|f| f.as_str())
                .collect::<Vec<_>>()
                .join("\n")
        );
        assert_eq!(a.compared, a_values.len());
        assert_eq!(b.compared, b_values.len());
        assert!(a.separator_differences > 0, "the corpus has U+2028");
    })
    .await;
}
