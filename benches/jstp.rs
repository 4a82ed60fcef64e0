//! connkit-jstp: parsing and serializing JSTP (mdsf) values, on the hot path of every message.

use connkit_jstp::value;
use criterion::{Criterion, Throughput};
use std::hint::black_box;

/// The call from the spec (§4.3).
const CALL: &[u8] = b"{call:[17,'calculator'],add:[2,3]}";

/// A reply of about 1 KiB: an array of records with strings, integers, decimals, booleans,
/// `null`, a quoted key and an escape, as application payloads look.
fn reply_1k() -> Vec<u8> {
    let mut text = String::from("{callback:[42],ok:[[");
    let mut i = 0;
    while text.len() < 980 {
        if i > 0 {
            text.push(',');
        }
        text.push_str(&format!(
            "{{id:{i},name:'item {i}',price:{}.25,tags:['new','sale'],active:{},'on-hand':{},note:null}}",
            10 + i * 7,
            i % 2 == 0,
            i * 3 % 11,
        ));
        i += 1;
    }
    text.push_str("],'it\\'s done']}");
    text.into_bytes()
}

pub(crate) fn value(c: &mut Criterion) {
    let mut g = c.benchmark_group("jstp/value");
    let big = reply_1k();
    let parsed_call = value::parse(CALL).unwrap_or_else(|e| panic!("{e}"));
    let parsed_big = value::parse(&big).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        value::serialize(&parsed_big).unwrap_or_else(|e| panic!("{e}")),
        big,
        "the 1 KiB message is canonical"
    );

    g.throughput(Throughput::Bytes(CALL.len() as u64));
    g.bench_function("parse call (34 B)", |b| {
        b.iter(|| black_box(value::parse(black_box(CALL))))
    });
    g.bench_function("serialize call (34 B), reused buffer", |b| {
        let mut out = Vec::with_capacity(64);
        b.iter(|| {
            out.clear();
            value::serialize_into(black_box(&parsed_call), &mut out)
                .unwrap_or_else(|e| panic!("{e}"));
            black_box(out.len())
        })
    });

    g.throughput(Throughput::Bytes(big.len() as u64));
    g.bench_function(format!("parse reply ({} B)", big.len()), |b| {
        b.iter(|| black_box(value::parse(black_box(&big))))
    });
    g.bench_function(
        format!("serialize reply ({} B), reused buffer", big.len()),
        |b| {
            let mut out = Vec::with_capacity(2048);
            b.iter(|| {
                out.clear();
                value::serialize_into(black_box(&parsed_big), &mut out)
                    .unwrap_or_else(|e| panic!("{e}"));
                black_box(out.len())
            })
        },
    );

    // For scale: serde_json on the same data as JSON.
    let json = serde_json::to_vec(&serde_json::Value::from(parsed_big.clone()))
        .unwrap_or_else(|e| panic!("{e}"));
    g.throughput(Throughput::Bytes(json.len() as u64));
    g.bench_function(
        format!("serde_json parse of the same reply ({} B)", json.len()),
        |b| {
            b.iter(|| black_box(serde_json::from_slice::<serde_json::Value>(black_box(&json)).ok()))
        },
    );
    g.finish();
}
