//! Pluggable codecs. The encoder is shared by every connection; each connection gets its own
//! decoder state. [`JsonTranscoder`] is the default and the only one Node peers understand.
//!
//! A custom transcoder (see `examples/ipc_custom_transcoder.rs`) picks its delimiter and its
//! body format; the message model stays `topic: `[`Topic`](crate::Topic) +
//! `message: `[`Payload`]. The decoder gets each frame as [`Bytes`], so a payload can be a
//! slice of it without a copy.
//!
//! ```
//! use bytes::Bytes;
//! use connkit_ipc::Payload;
//! use connkit_ipc::transcoder::{Decoder, Transcoder};
//! use connkit_ipc::wire::{DecodeError, EncodeError, Envelope};
//!
//! /// Lines of `topic<TAB>text`, one message per `\n`.
//! #[derive(Debug)]
//! struct Tsv;
//! #[derive(Debug)]
//! struct TsvDecoder;
//!
//! impl Transcoder for Tsv {
//!     fn delimiter(&self) -> &[u8] { b"\n" }
//!     fn encode(&self, topic: &str, message: &Payload, out: &mut Vec<u8>) -> Result<(), EncodeError> {
//!         let text = message.value().and_then(|m| m.as_str()).ok_or_else(|| EncodeError::new("text messages only"))?;
//!         if text.contains('\n') || topic.contains('\t') { return Err(EncodeError::new("tab or newline")); }
//!         out.extend_from_slice(format!("{topic}\t{text}").as_bytes());
//!         Ok(())
//!     }
//!     fn decoder(&self) -> Box<dyn Decoder> { Box::new(TsvDecoder) }
//! }
//!
//! impl Decoder for TsvDecoder {
//!     fn decode(&mut self, frame: Bytes) -> Result<Envelope, DecodeError> {
//!         let text = std::str::from_utf8(&frame).map_err(|e| DecodeError::new(e.to_string(), &frame))?;
//!         let (topic, msg) = text.split_once('\t').ok_or_else(|| DecodeError::new("no tab", &frame))?;
//!         Ok(Envelope { topic: topic.into(), message: serde_json::Value::from(msg).into() })
//!     }
//! }
//! ```

use crate::Payload;
use crate::wire::{self, DecodeError, EncodeError, Envelope};
use bytes::Bytes;
use std::fmt;

/// Encodes envelopes and makes per-connection decoders.
pub trait Transcoder: Send + Sync + fmt::Debug + 'static {
    /// The bytes that end each frame; the encoded body must never contain them.
    /// Default: two NUL bytes, as socket-ipc 0.4.
    fn delimiter(&self) -> &[u8] {
        wire::DELIMITER
    }

    /// Append the body of one frame (without the delimiter) to `out`. Use
    /// [`Payload::json_bytes`] for the payload's JSON text, [`Payload::value`] for a parsed
    /// value, or [`Payload::deserialize`] for a typed one.
    ///
    /// # Errors
    /// [`EncodeError`] when the message cannot be encoded; nothing is sent.
    fn encode(&self, topic: &str, message: &Payload, out: &mut Vec<u8>) -> Result<(), EncodeError>;

    /// A fresh decoder for one connection.
    fn decoder(&self) -> Box<dyn Decoder>;

    /// Whether no frame [`encode`](Self::encode) writes can contain the
    /// [`delimiter`](Self::delimiter), so the search for it before each send can be skipped.
    /// Default `false`: every frame is searched, and one that contains the delimiter is
    /// refused (`ErrorKind::InvalidMessage`) instead of corrupting the stream.
    fn frames_exclude_delimiter(&self) -> bool {
        false
    }
}

/// Per-connection decoding state.
pub trait Decoder: Send + fmt::Debug {
    /// Decode the body of one frame (without the delimiter).
    ///
    /// # Errors
    /// [`DecodeError`]: the connection that sent the frame is closed; others carry on.
    fn decode(&mut self, frame: Bytes) -> Result<Envelope, DecodeError>;
}

/// The default codec: compact JSON, byte-compatible with socket-ipc's JSON transcoder.
#[derive(Debug, Clone, Copy, Default)]
pub struct JsonTranscoder;

#[derive(Debug, Clone, Copy, Default)]
struct JsonDecoder;

impl Transcoder for JsonTranscoder {
    fn encode(&self, topic: &str, message: &Payload, out: &mut Vec<u8>) -> Result<(), EncodeError> {
        wire::encode(topic, message, out)
    }

    fn decoder(&self) -> Box<dyn Decoder> {
        Box::new(JsonDecoder)
    }

    /// JSON text never holds a raw NUL: outside strings it is not allowed, inside strings
    /// it is written `\u0000`. Payloads given as text were checked.
    fn frames_exclude_delimiter(&self) -> bool {
        true
    }
}

impl Decoder for JsonDecoder {
    fn decode(&mut self, frame: Bytes) -> Result<Envelope, DecodeError> {
        wire::decode_bytes(frame)
    }
}
