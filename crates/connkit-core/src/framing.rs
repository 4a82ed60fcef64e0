//! Delimiter framing for stream sockets: each message is followed by a fixed byte sequence.
//!
//! JSTP ends each message with one NUL (`\0`); socket-ipc with two (`\0\0`). Neither
//! serializer ever writes a raw NUL inside a message, so the delimiter is unambiguous.
//!
//! [`DelimiterCodec`] is a `tokio_util` codec. The scan is incremental: bytes already searched
//! are not searched again when more arrive, so one large frame costs O(n) however it is split
//! into reads. A frame longer than the configured maximum is an error
//! ([`FrameError::TooLong`]) as soon as that many bytes have arrived without a delimiter, so a
//! peer that never sends one cannot grow the buffer without bound.
//!
//! ```
//! use bytes::BytesMut;
//! use tokio_util::codec::Decoder;
//! use connkit_core::framing::DelimiterCodec;
//!
//! let mut codec = DelimiterCodec::new(b"\0\0", 1024)?;
//! let mut buf = BytesMut::from(&b"{\"topic\":\"a\"}\0\0{\"to"[..]);
//! assert_eq!(&codec.decode(&mut buf)?.unwrap()[..], b"{\"topic\":\"a\"}");
//! assert!(codec.decode(&mut buf)?.is_none()); // the second frame is not complete yet
//! # Ok::<(), connkit_core::framing::FrameError>(())
//! ```

use bytes::{BufMut, Bytes, BytesMut};
use std::io;
use tokio_util::codec::{Decoder, Encoder};

/// The default maximum frame length: 8 MiB, as the Node JSTP server enforces.
pub const DEFAULT_MAX_FRAME_LEN: usize = 8 * 1024 * 1024;

/// A framing failure.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum FrameError {
    /// An inbound frame grew beyond the maximum length without a delimiter.
    #[error("frame exceeds the maximum length of {limit} bytes")]
    TooLong {
        /// The configured maximum.
        limit: usize,
    },
    /// The stream ended inside a frame (bytes after the last delimiter).
    #[error("the stream ended inside a frame ({pending} bytes without a delimiter)")]
    Truncated {
        /// How many bytes were pending.
        pending: usize,
    },
    /// An outbound message contains the delimiter, so it cannot be framed.
    #[error("the message contains the frame delimiter at byte {at}")]
    DelimiterInMessage {
        /// The offset of the delimiter in the message.
        at: usize,
    },
    /// An outbound message is longer than the maximum frame length.
    #[error("the message of {len} bytes exceeds the maximum frame length of {limit} bytes")]
    MessageTooLong {
        /// The message length.
        len: usize,
        /// The configured maximum.
        limit: usize,
    },
    /// The delimiter given to [`DelimiterCodec::new`] is empty.
    #[error("the frame delimiter must not be empty")]
    EmptyDelimiter,
    /// Reading or writing the socket failed.
    #[error(transparent)]
    Io(#[from] io::Error),
}

/// Splits a byte stream into frames ending with a delimiter, and writes frames the same way.
#[derive(Debug, Clone)]
pub struct DelimiterCodec {
    delimiter: Bytes,
    finder: memchr::memmem::Finder<'static>,
    max_frame_len: usize,
    /// Bytes of the current buffer already known to hold no complete delimiter.
    scanned: usize,
    /// After an oversize frame, the rest of the stream is not decoded.
    failed: bool,
}

impl DelimiterCodec {
    /// A codec for `delimiter` that rejects frames longer than `max_frame_len` bytes
    /// (the delimiter not counted).
    ///
    /// # Errors
    /// [`FrameError::EmptyDelimiter`] when `delimiter` is empty.
    pub fn new(delimiter: &[u8], max_frame_len: usize) -> Result<Self, FrameError> {
        if delimiter.is_empty() {
            return Err(FrameError::EmptyDelimiter);
        }
        Ok(Self {
            delimiter: Bytes::copy_from_slice(delimiter),
            finder: memchr::memmem::Finder::new(delimiter).into_owned(),
            max_frame_len,
            scanned: 0,
            failed: false,
        })
    }

    /// Where the delimiter first occurs in `hay`. A one-byte delimiter (NUL for JSTP and
    /// socket-ipc) takes `memchr`, cheaper than the substring searcher on short messages.
    fn find(&self, hay: &[u8]) -> Option<usize> {
        match *self.delimiter {
            [byte] => memchr::memchr(byte, hay),
            _ => self.finder.find(hay),
        }
    }

    /// The delimiter.
    #[must_use]
    pub fn delimiter(&self) -> &[u8] {
        &self.delimiter
    }

    /// The maximum frame length.
    #[must_use]
    pub fn max_frame_len(&self) -> usize {
        self.max_frame_len
    }

    /// Checks that `msg` can be framed: no delimiter inside, not over the maximum length.
    ///
    /// # Errors
    /// [`FrameError::DelimiterInMessage`] or [`FrameError::MessageTooLong`].
    pub fn check_message(&self, msg: &[u8]) -> Result<(), FrameError> {
        if msg.len() > self.max_frame_len {
            return Err(FrameError::MessageTooLong {
                len: msg.len(),
                limit: self.max_frame_len,
            });
        }
        match self.find(msg) {
            Some(at) => Err(FrameError::DelimiterInMessage { at }),
            None => Ok(()),
        }
    }

    /// Appends `msg` and the delimiter to `dst` (no checks; see [`check_message`](Self::check_message)).
    pub fn write_frame(&self, msg: &[u8], dst: &mut BytesMut) {
        dst.reserve(msg.len() + self.delimiter.len());
        dst.put_slice(msg);
        dst.put_slice(&self.delimiter);
    }
}

impl Decoder for DelimiterCodec {
    type Item = Bytes;
    type Error = FrameError;

    fn decode(&mut self, src: &mut BytesMut) -> Result<Option<Bytes>, FrameError> {
        if self.failed {
            return Ok(None);
        }
        let dlen = self.delimiter.len();
        let start = self.scanned.min(src.len());
        if let Some(pos) = self.find(&src[start..]) {
            let end = start + pos;
            self.scanned = 0;
            if end > self.max_frame_len {
                self.failed = true;
                return Err(FrameError::TooLong {
                    limit: self.max_frame_len,
                });
            }
            // One split with the delimiter, then a shorter view (no second update of `src`).
            let mut frame = src.split_to(end + dlen).freeze();
            frame.truncate(end);
            return Ok(Some(frame));
        }
        // Everything but a possible delimiter prefix at the end has been searched.
        self.scanned = src.len().saturating_sub(dlen - 1);
        if self.scanned > self.max_frame_len {
            self.failed = true;
            return Err(FrameError::TooLong {
                limit: self.max_frame_len,
            });
        }
        Ok(None)
    }

    fn decode_eof(&mut self, src: &mut BytesMut) -> Result<Option<Bytes>, FrameError> {
        match self.decode(src)? {
            Some(frame) => Ok(Some(frame)),
            None if src.is_empty() || self.failed => Ok(None),
            None => {
                let pending = src.len();
                src.clear();
                self.scanned = 0;
                Err(FrameError::Truncated { pending })
            }
        }
    }
}

impl<T: AsRef<[u8]>> Encoder<T> for DelimiterCodec {
    type Error = FrameError;

    fn encode(&mut self, msg: T, dst: &mut BytesMut) -> Result<(), FrameError> {
        let msg = msg.as_ref();
        self.check_message(msg)?;
        self.write_frame(msg, dst);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn decode_all(codec: &mut DelimiterCodec, chunks: &[&[u8]]) -> Result<Vec<Bytes>, FrameError> {
        let mut buf = BytesMut::new();
        let mut out = Vec::new();
        for c in chunks {
            buf.extend_from_slice(c);
            while let Some(f) = codec.decode(&mut buf)? {
                out.push(f);
            }
        }
        while let Some(f) = codec.decode_eof(&mut buf)? {
            out.push(f);
        }
        Ok(out)
    }

    #[test]
    fn two_nul_delimiter_splits_like_node() {
        // socket-ipc spec §1: `A\0\0\0B\0\0` gives `A` and `\0B`.
        let mut c = DelimiterCodec::new(b"\0\0", 100).unwrap();
        let frames = decode_all(&mut c, &[b"A\0\0\0B\0\0"]).unwrap();
        assert_eq!(
            frames,
            vec![Bytes::from_static(b"A"), Bytes::from_static(b"\0B")]
        );
    }

    #[test]
    fn delimiter_split_across_reads() {
        let mut c = DelimiterCodec::new(b"\0\0", 100).unwrap();
        let frames = decode_all(&mut c, &[b"ab\0", b"\0cd\0", b"\0"]).unwrap();
        assert_eq!(
            frames,
            vec![Bytes::from_static(b"ab"), Bytes::from_static(b"cd")]
        );
    }

    #[test]
    fn oversize_frame_is_an_error_before_the_delimiter_arrives() {
        let mut c = DelimiterCodec::new(b"\0", 4).unwrap();
        let mut buf = BytesMut::from(&b"12345"[..]);
        assert!(matches!(
            c.decode(&mut buf),
            Err(FrameError::TooLong { limit: 4 })
        ));
        // Exactly the limit is fine.
        let mut c = DelimiterCodec::new(b"\0", 4).unwrap();
        assert_eq!(decode_all(&mut c, &[b"1234\0"]).unwrap().len(), 1);
        let mut c = DelimiterCodec::new(b"\0", 4).unwrap();
        assert!(matches!(
            decode_all(&mut c, &[b"12345\0"]),
            Err(FrameError::TooLong { .. })
        ));
    }

    #[test]
    fn truncated_stream_is_reported() {
        let mut c = DelimiterCodec::new(b"\0", 100).unwrap();
        assert!(matches!(
            decode_all(&mut c, &[b"a\0bc"]),
            Err(FrameError::Truncated { pending: 2 })
        ));
    }

    #[test]
    fn encoder_refuses_messages_it_cannot_frame() {
        let mut c = DelimiterCodec::new(b"\0\0", 8).unwrap();
        let mut dst = BytesMut::new();
        assert!(matches!(
            c.encode(&b"a\0\0b"[..], &mut dst),
            Err(FrameError::DelimiterInMessage { at: 1 })
        ));
        assert!(matches!(
            c.encode(&b"123456789"[..], &mut dst),
            Err(FrameError::MessageTooLong { len: 9, limit: 8 })
        ));
        c.encode(&b"a\0b"[..], &mut dst).unwrap();
        assert_eq!(&dst[..], b"a\0b\0\0");
        assert!(matches!(
            DelimiterCodec::new(b"", 1),
            Err(FrameError::EmptyDelimiter)
        ));
    }

    #[test]
    fn large_frame_in_small_reads_is_linear() {
        // 4 MiB in 1 KiB reads: with a quadratic rescan this would take minutes.
        let mut c = DelimiterCodec::new(b"\0", DEFAULT_MAX_FRAME_LEN).unwrap();
        let mut buf = BytesMut::new();
        let chunk = vec![b'x'; 1024];
        for _ in 0..4096 {
            buf.extend_from_slice(&chunk);
            assert!(c.decode(&mut buf).unwrap().is_none());
        }
        buf.extend_from_slice(b"\0");
        assert_eq!(c.decode(&mut buf).unwrap().unwrap().len(), 4 * 1024 * 1024);
    }

    fn frames_strategy() -> impl Strategy<Value = Vec<Vec<u8>>> {
        // Frames of bytes with NUL allowed only as a lone byte for the 2-NUL delimiter test.
        proptest::collection::vec(proptest::collection::vec(1u8..=255, 0..64), 0..20)
    }

    proptest! {
        #[test]
        fn any_split_yields_the_same_frames(
            frames in frames_strategy(),
            cuts in proptest::collection::vec(0usize..2000, 0..30),
            two in any::<bool>(),
        ) {
            let delim: &[u8] = if two { b"\0\0" } else { b"\0" };
            let mut wire = Vec::new();
            for f in &frames {
                wire.extend_from_slice(f);
                wire.extend_from_slice(delim);
            }
            let mut points: Vec<usize> = cuts.into_iter().map(|c| c % (wire.len() + 1)).collect();
            points.sort_unstable();
            let mut chunks: Vec<&[u8]> = Vec::new();
            let mut last = 0;
            for p in points {
                chunks.push(&wire[last..p]);
                last = p;
            }
            chunks.push(&wire[last..]);
            let mut c = DelimiterCodec::new(delim, 64).unwrap();
            let got = decode_all(&mut c, &chunks).unwrap();
            let want: Vec<Bytes> = frames.into_iter().map(Bytes::from).collect();
            prop_assert_eq!(got, want);
        }

        #[test]
        fn oversize_is_always_detected(len in 9usize..200, split in 1usize..50) {
            let mut wire = vec![b'a'; len];
            wire.push(0);
            let chunks: Vec<&[u8]> = wire.chunks(split).collect();
            let mut c = DelimiterCodec::new(b"\0", 8).unwrap();
            let is_too_long = matches!(decode_all(&mut c, &chunks), Err(FrameError::TooLong { .. }));
            prop_assert!(is_too_long);
        }
    }
}
