//! Fuzz the delimiter codec: arbitrary bytes, split into arbitrary reads, must never panic,
//! and the frames must not depend on how the bytes were split.
#![no_main]

use bytes::BytesMut;
use connkit_core::framing::DelimiterCodec;
use libfuzzer_sys::fuzz_target;
use tokio_util::codec::Decoder;

fn frames(data: &[u8], delim: &[u8], max: usize, step: usize) -> (Vec<Vec<u8>>, bool) {
    let Ok(mut codec) = DelimiterCodec::new(delim, max) else { return (Vec::new(), true) };
    let mut buf = BytesMut::new();
    let mut out = Vec::new();
    for chunk in data.chunks(step.max(1)) {
        buf.extend_from_slice(chunk);
        loop {
            match codec.decode(&mut buf) {
                Ok(Some(f)) => {
                    assert!(f.len() <= max);
                    assert!(!f.windows(delim.len()).any(|w| w == delim));
                    out.push(f.to_vec());
                }
                Ok(None) => break,
                Err(_) => return (out, true),
            }
        }
    }
    let failed = codec.decode_eof(&mut buf).is_err();
    (out, failed)
}

fuzz_target!(|input: &[u8]| {
    if input.len() < 3 {
        return;
    }
    let delim: &[u8] = if input[0] & 1 == 0 { b"\0" } else { b"\0\0" };
    let max = usize::from(input[1]) * 4;
    let step = usize::from(input[2]);
    let data = &input[3..];
    let (whole, whole_failed) = frames(data, delim, max, data.len().max(1));
    let (split, split_failed) = frames(data, delim, max, step);
    if !whole_failed && !split_failed {
        assert_eq!(whole, split);
    }
});
