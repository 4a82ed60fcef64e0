//! Fuzz the socket-ipc wire decoder: any bytes as one frame must never panic; the compact
//! fast path, when it accepts a frame, must agree with the general path (same topic, same
//! payload bytes); the full decoder must equal the general path; a decoded message must
//! encode and decode back to itself; and a payload given as JSON text is accepted exactly
//! when `serde_json` reads it into a `Value` (lone surrogate escapes aside: those are
//! repaired).
#![no_main]

use bytes::Bytes;
use connkit_ipc::wire;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if !data.windows(2).any(|w| w == b"\\u") {
        let ours = connkit_ipc::Payload::from_json(data.to_vec());
        let serde = serde_json::from_slice::<serde_json::Value>(data);
        assert_eq!(ours.is_ok(), serde.is_ok(), "{ours:?} vs {serde:?}");
        if let (Ok(p), Ok(v)) = (ours, serde) {
            assert_eq!(p.value(), Some(&v));
        }
    }
    let frame = Bytes::copy_from_slice(data);
    let general = wire::decode_general(&frame);
    if let Some(fast) = wire::decode_compact(&frame) {
        let g = general
            .as_ref()
            .expect("the general path accepts what the fast path accepts");
        assert_eq!(&fast, g);
        assert_eq!(fast.message.json_bytes(), g.message.json_bytes());
    }
    let full = wire::decode_bytes(frame.clone());
    match (&full, &general) {
        (Ok(a), Ok(b)) => {
            assert_eq!(a, b);
            assert_eq!(a.message.json_bytes(), b.message.json_bytes());
        }
        (Err(a), Err(b)) => assert_eq!(a.reason(), b.reason()),
        (a, b) => panic!("decode {a:?} but general {b:?}"),
    }
    if let Ok(env) = full {
        // A checked payload always reads as a Value.
        let _ = env.message.value();
        let mut out = Vec::new();
        wire::encode(&env.topic, &env.message, &mut out).expect("encode");
        assert!(!out.windows(2).any(|w| w == wire::DELIMITER));
        let again = wire::decode(&out).expect("re-encoded frames decode");
        assert_eq!(again.topic, env.topic);
        assert_eq!(again.message.json_bytes(), env.message.json_bytes());
        // Our frames take the fast path unless the topic needs escapes.
        if !env.topic.chars().any(|c| c == '"' || c == '\\' || c < ' ') {
            assert!(wire::decode_compact(&Bytes::from(out)).is_some(), "our frames are compact");
        }
    }
});
