//! Whole frames from a byte stream, with a read buffer that is only held while bytes flow.
//!
//! Frames are split off the read buffer without copying (they share its allocation). When
//! the buffer is empty and the socket has nothing more, the buffer is let go, so an idle
//! connection holds no read buffer; the next read goes to a small buffer on the stack first
//! and only then into a new heap buffer.

use super::io::BoxRead;
use crate::framing::{DelimiterCodec, FrameError};
use bytes::{Bytes, BytesMut};
use std::mem::MaybeUninit;
use std::pin::Pin;
use std::task::{Context, Poll, ready};
use tokio::io::{AsyncRead, ReadBuf};
use tokio_util::codec::Decoder;

/// The heap read buffer's usual size.
const READ_CHUNK: usize = 16 * 1024;
/// The first read after an idle period goes to the stack, this much at most.
const FIRST_READ: usize = 4 * 1024;
/// Read only with at least this much room; otherwise grow first.
const MIN_ROOM: usize = 1024;

pub(crate) struct FrameReader {
    io: BoxRead,
    codec: DelimiterCodec,
    buf: BytesMut,
    eof: bool,
}

impl FrameReader {
    pub(crate) fn new(io: BoxRead, codec: DelimiterCodec) -> Self {
        Self {
            io,
            codec,
            buf: BytesMut::new(),
            eof: false,
        }
    }

    /// The next frame; `None` at the end of the stream. After an error, call no more.
    pub(crate) fn poll_frame(
        &mut self,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Bytes, FrameError>>> {
        loop {
            if self.eof {
                return Poll::Ready(self.codec.decode_eof(&mut self.buf).transpose());
            }
            if !self.buf.is_empty()
                && let Some(frame) = self.codec.decode(&mut self.buf)?
            {
                return Poll::Ready(Some(Ok(frame)));
            }
            if self.buf.capacity() == 0 {
                // Idle until now: hold no heap buffer unless bytes arrive.
                let mut scratch = [MaybeUninit::<u8>::uninit(); FIRST_READ];
                let mut rb = ReadBuf::uninit(&mut scratch);
                ready!(Pin::new(&mut self.io).poll_read(cx, &mut rb))?;
                let got = rb.filled();
                if got.is_empty() {
                    self.eof = true;
                    continue;
                }
                let mut buf = BytesMut::with_capacity(if got.len() == FIRST_READ {
                    READ_CHUNK
                } else {
                    got.len()
                });
                buf.extend_from_slice(got);
                self.buf = buf;
                continue;
            }
            if self.buf.capacity() - self.buf.len() < MIN_ROOM {
                // Doubling, so that a large frame arriving in pieces costs O(n) copies.
                let more = READ_CHUNK.max(self.buf.len());
                self.buf.reserve(more);
            }
            match tokio_util::io::poll_read_buf(Pin::new(&mut self.io), cx, &mut self.buf) {
                Poll::Pending => {
                    if self.buf.is_empty() {
                        // Nothing pending: let the buffer go while the peer is quiet (the
                        // frames already returned keep what they share of it).
                        self.buf = BytesMut::new();
                    }
                    return Poll::Pending;
                }
                Poll::Ready(Err(e)) => return Poll::Ready(Some(Err(FrameError::Io(e)))),
                Poll::Ready(Ok(0)) => self.eof = true,
                Poll::Ready(Ok(_)) => {}
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::AsyncWriteExt;

    async fn frames(chunks: Vec<Vec<u8>>) -> Vec<Result<Bytes, String>> {
        let (mut w, r) = tokio::io::duplex(64);
        let writer = tokio::spawn(async move {
            for c in chunks {
                w.write_all(&c).await.unwrap();
                tokio::task::yield_now().await;
            }
        });
        let codec = DelimiterCodec::new(b"\0", 64 * 1024).unwrap();
        let mut reader = FrameReader::new(Box::new(r), codec);
        let mut out = Vec::new();
        while let Some(item) = std::future::poll_fn(|cx| reader.poll_frame(cx)).await {
            let failed = item.is_err();
            out.push(item.map_err(|e| e.to_string()));
            if failed {
                break;
            }
        }
        writer.await.unwrap();
        out
    }

    #[tokio::test]
    async fn frames_across_reads_and_idle_gaps() {
        let big = vec![b'x'; 40_000];
        let mut wire = b"a\0bc\0".to_vec();
        wire.extend_from_slice(&big);
        wire.extend_from_slice(b"\0d\0");
        let chunks = wire.chunks(1000).map(<[u8]>::to_vec).collect();
        let got = frames(chunks).await;
        let got: Vec<Bytes> = got.into_iter().map(Result::unwrap).collect();
        assert_eq!(got.len(), 4);
        assert_eq!(&got[0][..], b"a");
        assert_eq!(&got[1][..], b"bc");
        assert_eq!(got[2].len(), 40_000);
        assert_eq!(&got[3][..], b"d");
    }

    #[tokio::test]
    async fn a_truncated_stream_is_an_error() {
        let got = frames(vec![b"a\0b".to_vec()]).await;
        assert_eq!(got.len(), 2);
        assert!(got[1].is_err());
    }
}
