//! JSTP messages (spec §4): the typed [`Message`], read from a [`Value`] by Node's rules and
//! written with the kind first and the verb second.
//!
//! **Reading** ([`Message::from_value`]): a message is an object; its **first key** is the
//! kind and that key's value the header array `[id, target?, …]`; for most kinds the
//! **second key** is the verb and its value the payload. Keys after the second are ignored.
//! `{}` is an old-style heartbeat ([`Message::Heartbeat`]). A kind this crate does not know
//! is [`Message::Unknown`] (Node ignores those after the handshake). Ids are whatever
//! integer the peer sent: their sign says nothing about the direction (spec §4.1, §6.4).
//!
//! **Writing** ([`Message::to_value`], [`Message::to_bytes`]) gives the bytes Node writes:
//! `{call:[1,'calculator'],add:[2,3]}`.
//!
//! ```
//! use connkit_jstp::message::Message;
//!
//! let m = Message::parse(b"{call:[17,'calculator'],add:[2,3],extra:1}")?;
//! let Message::Call { id, interface, method, args } = &m else { unreachable!() };
//! assert_eq!((*id, interface.as_str(), method.as_str()), (17, "calculator", "add"));
//! assert_eq!(args.to_string(), "[2,3]");
//! // Extra keys are ignored, and the written form has the kind first and the verb second.
//! assert_eq!(m.to_bytes()?, b"{call:[17,'calculator'],add:[2,3]}");
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

use crate::error::RemoteError;
use crate::value::{self, Object, ParseError, SerializeError, Value};
use bytes::BufMut;
use std::fmt;

/// A message id: the sender's counter when it originated the message; replies reuse it.
pub type Id = i64;

/// One JSTP message.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum Message {
    /// `{handshake:[id,'app'(,'version')](,strategy:credentials)}`: a client asks to use an
    /// application. Sent with id 0.
    HandshakeRequest {
        /// The id (0 from every known client).
        id: Id,
        /// The application name (`header[1]`).
        app: String,
        /// The version or node-semver range asked for (`header[2]`), if any.
        version: Option<String>,
        /// The second key and its value: `login` with `['user','password']`, `session`,
        /// `anonymous` or a custom strategy. `None` means anonymous.
        strategy: Option<(String, Value)>,
    },
    /// `{handshake:[id],ok:…}` or `{handshake:[id],error:[…]}`: the server's answer. `ok` is
    /// the new session id (a string) or, for a restored session, a number.
    HandshakeReply {
        /// The id of the request (0).
        id: Id,
        /// The session id, or why the handshake was refused.
        result: Result<Value, RemoteError>,
    },
    /// `{call:[id,'interface'],method:args}`. `args` is kept as sent: the receiver answers
    /// 17 when it is missing (`Undefined`), `null` or not an array.
    Call {
        /// The caller's id.
        id: Id,
        /// The interface.
        interface: String,
        /// The method (the second key; empty when there is none).
        method: String,
        /// The arguments, normally an array.
        args: Value,
    },
    /// `{callback:[id],ok:[…]}` or `{callback:[id],error:[…]}`: the reply to a call or an
    /// inspect.
    Callback {
        /// The id of the call answered.
        id: Id,
        /// The values the method returned, or its error.
        result: Result<Vec<Value>, RemoteError>,
    },
    /// `{event:[id,'interface'],event:args}`. No reply. Dropped by the receiver when `args`
    /// is not an array.
    Event {
        /// The sender's id.
        id: Id,
        /// The interface.
        interface: String,
        /// The event name (the second key; empty when there is none).
        event: String,
        /// The arguments, normally an array.
        args: Value,
    },
    /// `{inspect:[id,'interface']}`: asks for the method names of an interface.
    Inspect {
        /// The sender's id.
        id: Id,
        /// The interface.
        interface: String,
    },
    /// `{ping:[id]}`.
    Ping {
        /// The sender's id.
        id: Id,
    },
    /// `{pong:[id]}`: the reply to a ping.
    Pong {
        /// The id of the ping.
        id: Id,
    },
    /// `{}`: an old-style heartbeat, ignored.
    Heartbeat,
    /// A kind this crate does not know (`state`, `stream`, `health` from the old protocol
    /// document, or anything else). Ignored after the handshake.
    Unknown {
        /// The first key.
        kind: String,
    },
}

/// Why a value is not a usable message.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum MessageError {
    /// The bytes are not a JSTP value.
    #[error("the message does not parse")]
    Parse(#[from] ParseError),
    /// The value is not an object.
    #[error("a message must be an object, not {0}")]
    NotAnObject(&'static str),
    /// The header (the first key's value) is not an array starting with an integer id, or
    /// its target is not a string where one is needed.
    #[error("`{kind}` message with a bad header")]
    BadHeader {
        /// The kind.
        kind: String,
    },
    /// A reply carries neither a usable `ok` nor an `error`.
    #[error("`{kind}` reply with neither `ok` nor `error`")]
    NoResult {
        /// The kind.
        kind: String,
        /// The id of the reply.
        id: Id,
    },
}

impl Message {
    /// Parse one message from the bytes between two NUL terminators (or one WebSocket
    /// message).
    ///
    /// # Errors
    /// [`MessageError::Parse`] for bytes that are not a JSTP value; otherwise as
    /// [`from_value`](Self::from_value).
    pub fn parse(bytes: &[u8]) -> Result<Message, MessageError> {
        Self::from_value(value::parse(bytes)?)
    }

    /// Read a message from a parsed value, by the rules of spec §4.
    ///
    /// # Errors
    /// [`MessageError::NotAnObject`], [`MessageError::BadHeader`] (the header is not an
    /// array that starts with an integer; a handshake request's app name or version, or the
    /// target of a call, event or inspect, is not a string), [`MessageError::NoResult`] (a
    /// handshake reply without `ok` or `error`, a callback without a truthy `ok` array or a
    /// truthy `error`).
    pub fn from_value(value: Value) -> Result<Message, MessageError> {
        let object = match value {
            Value::Object(o) => o,
            other => return Err(MessageError::NotAnObject(other.type_name())),
        };
        if object.is_empty() {
            return Ok(Message::Heartbeat);
        }
        let mut members = object.into_vec().into_iter();
        let Some((kind, header)) = members.next() else {
            return Ok(Message::Heartbeat);
        };
        let bad = |kind: &str| MessageError::BadHeader {
            kind: kind.to_owned(),
        };
        let header = match header {
            Value::Array(h) => h,
            _ => return Err(bad(&kind)),
        };
        let Some(id) = header.first().and_then(Value::as_i64) else {
            return Err(bad(&kind));
        };
        let target = |header: &[Value]| -> Result<String, MessageError> {
            match header.get(1) {
                Some(Value::String(s)) => Ok(s.clone()),
                _ => Err(bad(&kind)),
            }
        };
        let verb = members.next();
        Ok(match kind.as_str() {
            "handshake" => {
                if header.get(1).is_some_and(Value::is_truthy) {
                    let app = target(&header)?;
                    let version = match header.get(2) {
                        None | Some(Value::Undefined | Value::Null) => None,
                        Some(Value::String(s)) if s.is_empty() => None,
                        Some(Value::String(s)) => Some(s.clone()),
                        Some(_) => return Err(bad(&kind)),
                    };
                    Message::HandshakeRequest {
                        id,
                        app,
                        version,
                        strategy: verb,
                    }
                } else {
                    // Node looks the result up by name: `ok` when defined, else a truthy
                    // `error`.
                    let mut rest: Vec<(String, Value)> = verb.into_iter().chain(members).collect();
                    let ok = rest.iter().position(|(k, _)| k == "ok");
                    let err = rest.iter().position(|(k, _)| k == "error");
                    let result = match (ok, err) {
                        (Some(i), _) => Ok(rest.swap_remove(i).1),
                        (None, Some(i)) if rest[i].1.is_truthy() => {
                            Err(RemoteError::from_value(&rest[i].1))
                        }
                        _ => return Err(MessageError::NoResult { kind, id }),
                    };
                    Message::HandshakeReply { id, result }
                }
            }
            "call" => {
                let interface = target(&header)?;
                let (method, args) = verb.unwrap_or_default();
                Message::Call {
                    id,
                    interface,
                    method,
                    args,
                }
            }
            "callback" => {
                let mut rest: Vec<(String, Value)> = verb.into_iter().chain(members).collect();
                let ok = rest.iter().position(|(k, v)| k == "ok" && v.is_truthy());
                let result = match ok {
                    Some(i) => match rest.swap_remove(i).1 {
                        Value::Array(values) => Ok(values),
                        _ => return Err(MessageError::NoResult { kind, id }),
                    },
                    None => match rest.iter().find(|(k, v)| k == "error" && v.is_truthy()) {
                        Some((_, e)) => Err(RemoteError::from_value(e)),
                        None => return Err(MessageError::NoResult { kind, id }),
                    },
                };
                Message::Callback { id, result }
            }
            "event" => {
                let interface = target(&header)?;
                let (event, args) = verb.unwrap_or_default();
                Message::Event {
                    id,
                    interface,
                    event,
                    args,
                }
            }
            "inspect" => Message::Inspect {
                id,
                interface: target(&header)?,
            },
            "ping" => Message::Ping { id },
            "pong" => Message::Pong { id },
            _ => Message::Unknown { kind },
        })
    }

    /// The kind: the first key (`"handshake"`, `"call"`, …; empty for a heartbeat).
    #[must_use]
    pub fn kind(&self) -> &str {
        match self {
            Message::HandshakeRequest { .. } | Message::HandshakeReply { .. } => "handshake",
            Message::Call { .. } => "call",
            Message::Callback { .. } => "callback",
            Message::Event { .. } => "event",
            Message::Inspect { .. } => "inspect",
            Message::Ping { .. } => "ping",
            Message::Pong { .. } => "pong",
            Message::Heartbeat => "",
            Message::Unknown { kind } => kind,
        }
    }

    /// The id, if the message has one.
    #[must_use]
    pub fn id(&self) -> Option<Id> {
        match self {
            Message::HandshakeRequest { id, .. }
            | Message::HandshakeReply { id, .. }
            | Message::Call { id, .. }
            | Message::Callback { id, .. }
            | Message::Event { id, .. }
            | Message::Inspect { id, .. }
            | Message::Ping { id }
            | Message::Pong { id } => Some(*id),
            Message::Heartbeat | Message::Unknown { .. } => None,
        }
    }

    /// The message as a value: an object with the kind first and the verb second.
    /// [`Message::Unknown`] becomes `{kind:[]}`.
    #[must_use]
    pub fn to_value(&self) -> Value {
        let mut o = Object::with_capacity(2);
        let id = Value::from(self.id().unwrap_or(0));
        match self {
            Message::HandshakeRequest {
                app,
                version,
                strategy,
                ..
            } => {
                let mut header = vec![id, Value::from(app.as_str())];
                if let Some(v) = version {
                    header.push(Value::from(v.as_str()));
                }
                o.insert("handshake", Value::Array(header));
                if let Some((name, credentials)) = strategy {
                    o.insert(name.as_str(), credentials.clone());
                }
            }
            Message::HandshakeReply { result, .. } => {
                o.insert("handshake", Value::Array(vec![id]));
                match result {
                    Ok(v) => o.insert("ok", v.clone()),
                    Err(e) => o.insert("error", e.to_value()),
                };
            }
            Message::Call {
                interface,
                method,
                args,
                ..
            } => {
                o.insert(
                    "call",
                    Value::Array(vec![id, Value::from(interface.as_str())]),
                );
                o.insert(method.as_str(), args.clone());
            }
            Message::Callback { result, .. } => {
                o.insert("callback", Value::Array(vec![id]));
                match result {
                    Ok(values) => o.insert("ok", Value::Array(values.clone())),
                    Err(e) => o.insert("error", e.to_value()),
                };
            }
            Message::Event {
                interface,
                event,
                args,
                ..
            } => {
                o.insert(
                    "event",
                    Value::Array(vec![id, Value::from(interface.as_str())]),
                );
                o.insert(event.as_str(), args.clone());
            }
            Message::Inspect { interface, .. } => {
                o.insert(
                    "inspect",
                    Value::Array(vec![id, Value::from(interface.as_str())]),
                );
            }
            Message::Ping { .. } => {
                o.insert("ping", Value::Array(vec![id]));
            }
            Message::Pong { .. } => {
                o.insert("pong", Value::Array(vec![id]));
            }
            Message::Heartbeat => {}
            Message::Unknown { kind } => {
                o.insert(kind.as_str(), Value::Array(vec![]));
            }
        }
        Value::Object(o)
    }

    /// The bytes of the message (without the NUL terminator).
    ///
    /// # Errors
    /// [`SerializeError::NonFiniteNumber`] when a value is NaN or ±Infinity.
    pub fn to_bytes(&self) -> Result<Vec<u8>, SerializeError> {
        value::serialize(&self.to_value())
    }
}

// ---- Fast writers for the connection's hot path (no intermediate `Value`). ----

/// Write an integer id.
pub(crate) fn write_id<B: BufMut + ?Sized>(out: &mut B, id: Id) {
    if id < 0 {
        out.put_u8(b'-');
    }
    value::number::write_u64(id.unsigned_abs(), out);
}

/// Whether `s` can be written between single quotes as it is (no byte needs an escape).
fn is_plain(s: &str) -> bool {
    s.bytes().all(|b| match b {
        b'\'' | b'"' | b'\\' => false,
        0x20..=0x7E => true,
        // Raw UTF-8, except that U+2028/U+2029 (E2 80 A8/A9) are escaped: leave every E2
        // lead byte to the general writer.
        0x80.. => b != 0xE2,
        _ => false,
    })
}

/// Write a string as mdsf writes it.
pub(crate) fn write_str<B: BufMut + ?Sized>(out: &mut B, s: &str) {
    if is_plain(s) {
        out.put_u8(b'\'');
        out.put_slice(s.as_bytes());
        out.put_u8(b'\'');
    } else {
        // A string always serializes.
        let _ = value::serialize_into(&Value::String(s.to_owned()), out);
    }
}

/// Write an object key: bare when it is an ASCII identifier, quoted otherwise.
pub(crate) fn write_key<B: BufMut + ?Sized>(out: &mut B, key: &str) {
    let b = key.as_bytes();
    let bare = matches!(b.first(), Some(b'A'..=b'Z' | b'a'..=b'z' | b'_' | b'$'))
        && b[1..]
            .iter()
            .all(|&c| c.is_ascii_alphanumeric() || c == b'_' || c == b'$');
    if bare {
        out.put_slice(b);
    } else {
        write_str(out, key);
    }
}

/// Write a list of values as an array (holes as empty slots, a trailing hole kept).
pub(crate) fn write_values<B: BufMut + ?Sized>(
    out: &mut B,
    values: &[Value],
) -> Result<(), SerializeError> {
    out.put_u8(b'[');
    for (i, v) in values.iter().enumerate() {
        if i > 0 {
            out.put_u8(b',');
        }
        if !v.is_undefined() {
            value::serialize_into(v, out)?;
        }
    }
    if values.last().is_some_and(Value::is_undefined) {
        out.put_u8(b',');
    }
    out.put_u8(b']');
    Ok(())
}

/// The part of a `call` or `event` after its id: `,'interface'],verb:[args]}`.
pub(crate) fn write_target_tail<B: BufMut + ?Sized>(
    out: &mut B,
    interface: &str,
    verb: &str,
    args: &[Value],
) -> Result<(), SerializeError> {
    out.put_u8(b',');
    write_str(out, interface);
    out.put_slice(b"],");
    write_key(out, verb);
    out.put_u8(b':');
    write_values(out, args)?;
    out.put_u8(b'}');
    Ok(())
}

/// [`write_target_tail`] for typed arguments that serialize as a sequence (a tuple, an
/// array, a `Vec`, a tuple struct): each argument is converted and written in turn, with no
/// argument list in between. `false` for anything else or any failure (a value that does
/// not convert, NaN): `out` is then partly written, and the caller takes the general path,
/// which gives the same bytes or the same error.
pub(crate) fn write_typed_target_tail<A: serde::Serialize + ?Sized>(
    out: &mut Vec<u8>,
    interface: &str,
    verb: &str,
    args: &A,
) -> bool {
    out.put_u8(b',');
    write_str(out, interface);
    out.put_slice(b"],");
    write_key(out, verb);
    out.put_u8(b':');
    if args.serialize(ArgsWriter { out }).is_err() {
        return false;
    }
    out.put_u8(b'}');
    true
}

/// The serializer of [`write_typed_target_tail`]: a sequence at the top, written as
/// [`write_values`] writes a list; anything else is refused.
struct ArgsWriter<'a> {
    out: &'a mut Vec<u8>,
}

/// The sequence being written by [`ArgsWriter`].
struct ArgsList<'a> {
    out: &'a mut Vec<u8>,
    count: usize,
    last_undefined: bool,
}

/// "Take the general path": no message, the general path reports the real error.
#[derive(Debug)]
struct NotDirect;

impl fmt::Display for NotDirect {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("not written directly")
    }
}

impl std::error::Error for NotDirect {}

impl serde::ser::Error for NotDirect {
    fn custom<T: fmt::Display>(_msg: T) -> Self {
        NotDirect
    }
}

impl ArgsList<'_> {
    fn element<T: serde::Serialize + ?Sized>(&mut self, v: &T) -> Result<(), NotDirect> {
        let v = value::to_value(v).map_err(|_| NotDirect)?;
        if self.count > 0 {
            self.out.put_u8(b',');
        }
        self.count += 1;
        self.last_undefined = v.is_undefined();
        if !self.last_undefined {
            value::serialize_into(&v, self.out).map_err(|_| NotDirect)?;
        }
        Ok(())
    }

    fn finish(self) -> Result<(), NotDirect> {
        if self.last_undefined {
            self.out.put_u8(b',');
        }
        self.out.put_u8(b']');
        Ok(())
    }
}

impl serde::ser::SerializeSeq for ArgsList<'_> {
    type Ok = ();
    type Error = NotDirect;

    fn serialize_element<T: serde::Serialize + ?Sized>(&mut self, v: &T) -> Result<(), NotDirect> {
        self.element(v)
    }

    fn end(self) -> Result<(), NotDirect> {
        self.finish()
    }
}

impl serde::ser::SerializeTuple for ArgsList<'_> {
    type Ok = ();
    type Error = NotDirect;

    fn serialize_element<T: serde::Serialize + ?Sized>(&mut self, v: &T) -> Result<(), NotDirect> {
        self.element(v)
    }

    fn end(self) -> Result<(), NotDirect> {
        self.finish()
    }
}

impl serde::ser::SerializeTupleStruct for ArgsList<'_> {
    type Ok = ();
    type Error = NotDirect;

    fn serialize_field<T: serde::Serialize + ?Sized>(&mut self, v: &T) -> Result<(), NotDirect> {
        self.element(v)
    }

    fn end(self) -> Result<(), NotDirect> {
        self.finish()
    }
}

impl<'a> serde::Serializer for ArgsWriter<'a> {
    type Ok = ();
    type Error = NotDirect;
    type SerializeSeq = ArgsList<'a>;
    type SerializeTuple = ArgsList<'a>;
    type SerializeTupleStruct = ArgsList<'a>;
    type SerializeTupleVariant = serde::ser::Impossible<(), NotDirect>;
    type SerializeMap = serde::ser::Impossible<(), NotDirect>;
    type SerializeStruct = serde::ser::Impossible<(), NotDirect>;
    type SerializeStructVariant = serde::ser::Impossible<(), NotDirect>;

    fn serialize_seq(self, _len: Option<usize>) -> Result<ArgsList<'a>, NotDirect> {
        self.out.put_u8(b'[');
        Ok(ArgsList {
            out: self.out,
            count: 0,
            last_undefined: false,
        })
    }

    fn serialize_tuple(self, len: usize) -> Result<ArgsList<'a>, NotDirect> {
        self.serialize_seq(Some(len))
    }

    fn serialize_tuple_struct(
        self,
        _name: &'static str,
        len: usize,
    ) -> Result<ArgsList<'a>, NotDirect> {
        self.serialize_seq(Some(len))
    }

    fn serialize_bool(self, _v: bool) -> Result<(), NotDirect> {
        Err(NotDirect)
    }

    fn serialize_i64(self, _v: i64) -> Result<(), NotDirect> {
        Err(NotDirect)
    }

    fn serialize_u64(self, _v: u64) -> Result<(), NotDirect> {
        Err(NotDirect)
    }

    fn serialize_f64(self, _v: f64) -> Result<(), NotDirect> {
        Err(NotDirect)
    }

    fn serialize_i8(self, _v: i8) -> Result<(), NotDirect> {
        Err(NotDirect)
    }

    fn serialize_i16(self, _v: i16) -> Result<(), NotDirect> {
        Err(NotDirect)
    }

    fn serialize_i32(self, _v: i32) -> Result<(), NotDirect> {
        Err(NotDirect)
    }

    fn serialize_u8(self, _v: u8) -> Result<(), NotDirect> {
        Err(NotDirect)
    }

    fn serialize_u16(self, _v: u16) -> Result<(), NotDirect> {
        Err(NotDirect)
    }

    fn serialize_u32(self, _v: u32) -> Result<(), NotDirect> {
        Err(NotDirect)
    }

    fn serialize_f32(self, _v: f32) -> Result<(), NotDirect> {
        Err(NotDirect)
    }

    fn serialize_char(self, _v: char) -> Result<(), NotDirect> {
        Err(NotDirect)
    }

    fn serialize_str(self, _v: &str) -> Result<(), NotDirect> {
        Err(NotDirect)
    }

    fn serialize_bytes(self, _v: &[u8]) -> Result<(), NotDirect> {
        Err(NotDirect)
    }

    fn serialize_none(self) -> Result<(), NotDirect> {
        Err(NotDirect)
    }

    fn serialize_some<T: serde::Serialize + ?Sized>(self, _v: &T) -> Result<(), NotDirect> {
        Err(NotDirect)
    }

    fn serialize_unit(self) -> Result<(), NotDirect> {
        Err(NotDirect)
    }

    fn serialize_unit_struct(self, _name: &'static str) -> Result<(), NotDirect> {
        Err(NotDirect)
    }

    fn serialize_unit_variant(
        self,
        _name: &'static str,
        _index: u32,
        _variant: &'static str,
    ) -> Result<(), NotDirect> {
        Err(NotDirect)
    }

    fn serialize_newtype_struct<T: serde::Serialize + ?Sized>(
        self,
        _name: &'static str,
        _v: &T,
    ) -> Result<(), NotDirect> {
        Err(NotDirect)
    }

    fn serialize_newtype_variant<T: serde::Serialize + ?Sized>(
        self,
        _name: &'static str,
        _index: u32,
        _variant: &'static str,
        _v: &T,
    ) -> Result<(), NotDirect> {
        Err(NotDirect)
    }

    fn serialize_tuple_variant(
        self,
        _name: &'static str,
        _index: u32,
        _variant: &'static str,
        _len: usize,
    ) -> Result<Self::SerializeTupleVariant, NotDirect> {
        Err(NotDirect)
    }

    fn serialize_map(self, _len: Option<usize>) -> Result<Self::SerializeMap, NotDirect> {
        Err(NotDirect)
    }

    fn serialize_struct(
        self,
        _name: &'static str,
        _len: usize,
    ) -> Result<Self::SerializeStruct, NotDirect> {
        Err(NotDirect)
    }

    fn serialize_struct_variant(
        self,
        _name: &'static str,
        _index: u32,
        _variant: &'static str,
        _len: usize,
    ) -> Result<Self::SerializeStructVariant, NotDirect> {
        Err(NotDirect)
    }
}

/// The part of an `inspect` after its id: `,'interface']}`.
pub(crate) fn write_inspect_tail<B: BufMut + ?Sized>(out: &mut B, interface: &str) {
    out.put_u8(b',');
    write_str(out, interface);
    out.put_slice(b"]}");
}

/// A whole `callback`: `{callback:[id],ok:[…]}`.
pub(crate) fn write_callback_ok<B: BufMut + ?Sized>(
    out: &mut B,
    id: Id,
    values: &[Value],
) -> Result<(), SerializeError> {
    out.put_slice(b"{callback:[");
    write_id(out, id);
    out.put_slice(b"],ok:");
    write_values(out, values)?;
    out.put_u8(b'}');
    Ok(())
}

/// A whole `callback` with an error: `{callback:[id],error:[…]}`.
pub(crate) fn write_callback_error<B: BufMut + ?Sized>(
    out: &mut B,
    id: Id,
    error: &RemoteError,
) -> Result<(), SerializeError> {
    out.put_slice(b"{callback:[");
    write_id(out, id);
    out.put_slice(b"],error:");
    value::serialize_into(&error.to_value(), out)?;
    out.put_u8(b'}');
    Ok(())
}

/// A whole `pong`.
pub(crate) fn write_pong<B: BufMut + ?Sized>(out: &mut B, id: Id) {
    out.put_slice(b"{pong:[");
    write_id(out, id);
    out.put_slice(b"]}");
}

// ---- Fast readers for the two messages of every call (anything unusual falls back). ----

/// `-?[0-9]{1,15}` without leading zeros, then `stop`; returns the id and the rest.
fn fast_id(b: &[u8], stop: u8) -> Option<(Id, &[u8])> {
    let (neg, digits) = match b.first() {
        Some(b'-') => (true, &b[1..]),
        _ => (false, b),
    };
    let len = digits.iter().position(|c| !c.is_ascii_digit())?;
    if len == 0 || len > 15 || (len > 1 && digits[0] == b'0') || digits.get(len) != Some(&stop) {
        return None;
    }
    let mut n: Id = 0;
    for &d in &digits[..len] {
        n = n * 10 + Id::from(d - b'0');
    }
    Some((if neg { -n } else { n }, &digits[len + 1..]))
}

/// The values of an `ok` list. A method's result is usually one value: kept inline, it
/// costs no list allocation on the way from the method (or the reply) to the caller.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum OkList {
    /// Exactly one value.
    One(Value),
    /// Any number of values.
    Many(Vec<Value>),
}

impl OkList {
    /// No values (no allocation).
    pub(crate) const EMPTY: OkList = OkList::Many(Vec::new());

    /// The values, in order.
    pub(crate) fn as_slice(&self) -> &[Value] {
        match self {
            OkList::One(v) => std::slice::from_ref(v),
            OkList::Many(v) => v,
        }
    }

    /// The values as a list.
    pub(crate) fn into_vec(self) -> Vec<Value> {
        match self {
            OkList::One(v) => vec![v],
            OkList::Many(v) => v,
        }
    }

    /// The first value, `undefined` when there is none.
    pub(crate) fn into_first(self) -> Value {
        match self {
            OkList::One(v) => v,
            OkList::Many(mut v) if !v.is_empty() => v.swap_remove(0),
            OkList::Many(_) => Value::Undefined,
        }
    }
}

impl From<Vec<Value>> for OkList {
    fn from(v: Vec<Value>) -> Self {
        OkList::Many(v)
    }
}

/// `{callback:[<id>],ok:[…]}` exactly as Node and we write it: the id and the `ok` list.
/// `None` for anything else (the general path then reads it).
pub(crate) fn fast_callback(b: &[u8]) -> Option<(Id, OkList)> {
    let rest = b.strip_prefix(b"{callback:[")?;
    let (id, rest) = fast_id(rest, b']')?;
    let body = rest.strip_prefix(b",ok:")?.strip_suffix(b"}")?;
    let inner = body.strip_prefix(b"[")?.strip_suffix(b"]")?;
    // The usual reply is one value: read it as a value of its own (no list). A list of any
    // other length, or with holes, does not read as one value and takes the general reading.
    if !inner.is_empty() {
        // One level less, as the value sits inside the list.
        const INNER: value::ParseOptions =
            value::ParseOptions::new().max_depth(value::ParseOptions::DEFAULT_MAX_DEPTH - 1);
        if let Ok(v) = value::parse_with(inner, &INNER) {
            return Some((id, OkList::One(v)));
        }
    }
    match value::parse(body) {
        Ok(Value::Array(values)) => Some((id, OkList::Many(values))),
        _ => None,
    }
}

/// `{call:[<id>,'<interface>'],<method>:<args>}` with a plain interface name and a bare
/// method key: the id, interface, method and arguments. `None` for anything else.
pub(crate) fn fast_call(b: &[u8]) -> Option<(Id, &str, &str, Value)> {
    let rest = b.strip_prefix(b"{call:[")?;
    let (id, rest) = fast_id(rest, b',')?;
    let rest = rest.strip_prefix(b"'")?;
    let end = rest
        .iter()
        .position(|&c| c == b'\'' || c == b'\\' || c < 0x20)?;
    if rest[end] != b'\'' {
        return None;
    }
    let interface = std::str::from_utf8(&rest[..end]).ok()?;
    let rest = rest[end + 1..].strip_prefix(b"],")?;
    let key_len = rest
        .iter()
        .position(|&c| !(c.is_ascii_alphanumeric() || c == b'_' || c == b'$'))?;
    if key_len == 0 || rest[0].is_ascii_digit() || rest[key_len] != b':' {
        return None;
    }
    // A bare key is ASCII.
    let method = std::str::from_utf8(&rest[..key_len]).ok()?;
    let body = rest[key_len + 1..].strip_suffix(b"}")?;
    let args = value::parse(body).ok()?;
    if args.is_undefined() {
        // `{call:[…],m:undefined}` drops the member in the general reading; let it decide.
        return None;
    }
    Some((id, interface, method, args))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(s: &str) -> Result<Message, MessageError> {
        Message::parse(s.as_bytes())
    }

    #[test]
    fn every_kind_from_the_captures() {
        assert_eq!(
            parse("{handshake:[0,'testApp','^1.0.0']}").unwrap(),
            Message::HandshakeRequest {
                id: 0,
                app: "testApp".into(),
                version: Some("^1.0.0".into()),
                strategy: None,
            }
        );
        assert_eq!(
            parse("{handshake:[0,'testApp'],login:['user','secret']}").unwrap(),
            Message::HandshakeRequest {
                id: 0,
                app: "testApp".into(),
                version: None,
                strategy: Some(("login".into(), Value::from(vec!["user", "secret"]))),
            }
        );
        assert_eq!(
            parse("{handshake:[0],ok:'0f42439f-4857-486c-bce8-4011ed03366c'}").unwrap(),
            Message::HandshakeReply {
                id: 0,
                result: Ok("0f42439f-4857-486c-bce8-4011ed03366c".into()),
            }
        );
        assert_eq!(
            parse("{handshake:[0],error:[10]}").unwrap(),
            Message::HandshakeReply {
                id: 0,
                result: Err(RemoteError::new(10)),
            }
        );
        assert_eq!(
            parse("{callback:[13],ok:[1,'two']}").unwrap(),
            Message::Callback {
                id: 13,
                result: Ok(vec![1.into(), "two".into()]),
            }
        );
        assert_eq!(
            parse("{callback:[12],error:[100,'Division by zero','a',1]}").unwrap(),
            Message::Callback {
                id: 12,
                result: Err(RemoteError::new(100)
                    .message("Division by zero")
                    .info(vec!["a".into(), 1.into()])),
            }
        );
        assert_eq!(
            parse("{event:[-2,'calculator'],tick:[1,'1.0.0']}").unwrap(),
            Message::Event {
                id: -2,
                interface: "calculator".into(),
                event: "tick".into(),
                args: Value::from(vec![Value::from(1), "1.0.0".into()]),
            }
        );
        assert_eq!(
            parse("{inspect:[1,'calculator']}").unwrap(),
            Message::Inspect {
                id: 1,
                interface: "calculator".into()
            }
        );
        assert_eq!(parse("{ping:[-3]}").unwrap(), Message::Ping { id: -3 });
        assert_eq!(parse("{pong:[4]}").unwrap(), Message::Pong { id: 4 });
        assert_eq!(parse("{}").unwrap(), Message::Heartbeat);
        assert_eq!(
            parse("{foo:[1]}").unwrap(),
            Message::Unknown { kind: "foo".into() }
        );
    }

    #[test]
    fn kind_first_verb_second_extra_keys_ignored() {
        let m = parse("{call:[3,'calculator'],add:[2,3],later:[9]}").unwrap();
        assert_eq!(
            m,
            Message::Call {
                id: 3,
                interface: "calculator".into(),
                method: "add".into(),
                args: Value::from(vec![2, 3]),
            }
        );
        // The kind is the FIRST key, wherever `call` appears.
        assert_eq!(
            parse("{add:[2,3],call:[3,'calculator']}").unwrap(),
            Message::Unknown { kind: "add".into() }
        );
    }

    #[test]
    fn call_payload_is_kept_as_sent_for_the_dispatcher() {
        // No verb, `null` args, non-array args: all reach the dispatcher (answered 17).
        let Message::Call { method, args, .. } = parse("{call:[1,'calculator']}").unwrap() else {
            panic!()
        };
        assert_eq!((method.as_str(), args), ("", Value::Undefined));
        let Message::Call { args, .. } = parse("{call:[1,'calculator'],answer:null}").unwrap()
        else {
            panic!()
        };
        assert_eq!(args, Value::Null);
        let Message::Call { args, .. } = parse("{call:[1,'calculator'],echo:5}").unwrap() else {
            panic!()
        };
        assert_eq!(args, Value::from(5));
    }

    #[test]
    fn ids_are_taken_as_sent_whatever_the_sign() {
        assert_eq!(parse("{call:[-5,'c'],answer:[]}").unwrap().id(), Some(-5));
        assert_eq!(parse("{event:[1,'c'],x:[]}").unwrap().id(), Some(1));
    }

    #[test]
    fn malformed_messages_are_typed_errors() {
        assert!(matches!(
            parse("[1,2]"),
            Err(MessageError::NotAnObject("array"))
        ));
        assert!(matches!(
            parse("42"),
            Err(MessageError::NotAnObject("number"))
        ));
        assert!(matches!(parse("{ }"), Ok(Message::Heartbeat)));
        assert!(matches!(
            parse("{call:5}"),
            Err(MessageError::BadHeader { .. })
        ));
        assert!(matches!(
            parse("{call:['x','c'],a:[]}"),
            Err(MessageError::BadHeader { .. })
        ));
        assert!(matches!(
            parse("{call:[1],a:[]}"),
            Err(MessageError::BadHeader { .. })
        ));
        assert!(matches!(
            parse("{call:[1.5,'c'],a:[]}"),
            Err(MessageError::BadHeader { .. })
        ));
        assert!(matches!(
            parse("{ping:[]}"),
            Err(MessageError::BadHeader { .. })
        ));
        assert!(matches!(
            parse("{handshake:[0]}"),
            Err(MessageError::NoResult { id: 0, .. })
        ));
        assert!(matches!(
            parse("{callback:[3],ok:5}"),
            Err(MessageError::NoResult { id: 3, .. })
        ));
        assert!(matches!(
            parse("{callback:[3]}"),
            Err(MessageError::NoResult { .. })
        ));
        assert!(matches!(
            parse("{call:[1,'c'],a:[]}\0"),
            Err(MessageError::Parse(_))
        ));
        assert!(matches!(parse(""), Err(MessageError::Parse(_))));
    }

    #[test]
    fn handshake_with_empty_app_name_is_a_response() {
        // Quirk 15: `header[1]` must be truthy for a request.
        assert!(matches!(
            parse("{handshake:[0,''],ok:'x'}").unwrap(),
            Message::HandshakeReply { .. }
        ));
        assert!(matches!(
            parse("{handshake:[0,'']}"),
            Err(MessageError::NoResult { .. })
        ));
    }

    #[test]
    fn callback_reads_a_truthy_ok_then_a_truthy_error() {
        assert_eq!(
            parse("{callback:[1],ok:[]}").unwrap(),
            Message::Callback {
                id: 1,
                result: Ok(vec![])
            }
        );
        assert_eq!(
            parse("{callback:[1],ok:null,error:[14]}").unwrap(),
            Message::Callback {
                id: 1,
                result: Err(RemoteError::new(14))
            }
        );
    }

    #[test]
    fn written_forms_match_node_bytes() {
        let cases = [
            "{handshake:[0,'testApp','^1.0.0']}",
            "{handshake:[0,'testApp'],login:['user','secret']}",
            "{handshake:[0],ok:'0f42439f-4857-486c-bce8-4011ed03366c'}",
            "{handshake:[0],error:[10]}",
            "{call:[21,'calculator'],callClient:['srv']}",
            "{callback:[-1],ok:['hello srv from client']}",
            "{callback:[12],error:[100,'Division by zero','a',1]}",
            "{callback:[1],ok:[]}",
            "{event:[-2,'calculator'],tick:[1,'1.0.0']}",
            "{inspect:[24,'nope']}",
            "{ping:[-3]}",
            "{pong:[4]}",
            "{}",
        ];
        for c in cases {
            let m = parse(c).unwrap();
            assert_eq!(String::from_utf8(m.to_bytes().unwrap()).unwrap(), c);
        }
    }

    #[test]
    fn typed_arguments_written_directly_agree_with_the_general_path() {
        fn general<A: serde::Serialize + ?Sized>(args: &A) -> Option<Vec<u8>> {
            let values = crate::connection::args_to_values(args).ok()?;
            let mut out = Vec::new();
            write_target_tail(&mut out, "calc", "add", &values).ok()?;
            Some(out)
        }
        fn check<A: serde::Serialize + ?Sized>(args: &A, direct: bool) {
            let mut out = Vec::new();
            let written = write_typed_target_tail(&mut out, "calc", "add", args);
            assert_eq!(written, direct);
            if written {
                assert_eq!(Some(out), general(args));
            }
        }
        check(&(7u64, 1), true);
        check(&(-1.5f64, "it's ü\u{2028}", true), true);
        check(&vec![1, 2, 3], true);
        check(&[0u8; 0], true);
        check(&(Option::<u8>::None, Value::Undefined), true);
        check(&(1, Value::Undefined), true);
        check(&(vec![(1, 2)], Some("x")), true);
        check(&(f64::NAN,), false);
        check(&(), false);
        check(&5, false);
        check(&Option::<(u8,)>::None, false);
        #[derive(serde::Serialize)]
        struct Pair(u8, u8);
        check(&Pair(1, 2), true);
        #[derive(serde::Serialize)]
        struct Named {
            a: u8,
        }
        check(&Named { a: 1 }, false);
        check(&(Named { a: 1 },), true);
    }

    #[test]
    fn fast_readers_agree_with_the_general_reading() {
        let cases = [
            "{callback:[1],ok:[6]}",
            "{callback:[1],ok:[6,7]}",
            "{callback:[1],ok:[6,]}",
            "{callback:[1],ok:[,]}",
            "{callback:[1],ok:[ ]}",
            "{callback:[1],ok:[undefined]}",
            "{callback:[1],ok:['a,b']}",
            "{callback:[1],ok:[[1],[2]]}",
            "{callback:[1],ok:[1]]}",
            "{callback:[-12],ok:[]}",
            "{callback:[0],ok:[[1,,3],{a:'x'}]}",
            "{callback:[1],ok:[6],extra:1}",
            "{callback:[01],ok:[6]}",
            "{callback:[1],ok:5}",
            "{callback:[1],error:[14]}",
            "{callback:[1] ,ok:[1]}",
            "{call:[1,'calculator'],add:[1,2]}",
            "{call:[-7,'calc ü'],_m$1:[]}",
            "{call:[1,'calculator'],add:null}",
            "{call:[1,'calculator'],add:[1],x:[2]}",
            "{call:[1,'it\\'s'],add:[1]}",
            "{call:[1,'c'],'add':[1]}",
            "{call:[1,'c'],1a:[1]}",
            "{call:[1,'c'],a:undefined}",
            "{call:[1,\"c\"],a:[1]}",
            "{call:[1,'c',2],a:[1]}",
            "{call:[1e1,'c'],a:[1]}",
        ];
        for c in cases {
            let general = Message::parse(c.as_bytes()).ok();
            if let Some((id, values)) = fast_callback(c.as_bytes()) {
                assert_eq!(
                    general,
                    Some(Message::Callback {
                        id,
                        result: Ok(values.into_vec())
                    }),
                    "{c}"
                );
            }
            if let Some((id, interface, method, args)) = fast_call(c.as_bytes()) {
                assert_eq!(
                    general,
                    Some(Message::Call {
                        id,
                        interface: interface.to_owned(),
                        method: method.to_owned(),
                        args
                    }),
                    "{c}"
                );
            }
        }
        assert!(fast_callback(b"{callback:[1],ok:[6]}").is_some());
        assert!(fast_callback(b"{callback:[1],ok:[6],extra:1}").is_none());
        assert!(fast_call(b"{call:[1,'calculator'],add:[1,2]}").is_some());
        assert!(fast_call(b"{call:[1,'c'],a:[1],x:[2]}").is_none());
    }

    #[test]
    fn fast_writers_agree_with_the_value_serializer() {
        let args = vec![
            Value::from(1),
            Value::Undefined,
            Value::from("it's ü\u{2028}"),
            Value::Undefined,
        ];
        for (iface, verb) in [
            ("calculator", "add"),
            ("a b", "x-y"),
            ("it's", "ü"),
            ("", ""),
        ] {
            let mut fast = b"{call:[".to_vec();
            write_id(&mut fast, -42);
            write_target_tail(&mut fast, iface, verb, &args).unwrap();
            let slow = Message::Call {
                id: -42,
                interface: iface.into(),
                method: verb.into(),
                args: Value::Array(args.clone()),
            }
            .to_bytes()
            .unwrap();
            assert_eq!(
                String::from_utf8(fast).unwrap(),
                String::from_utf8(slow).unwrap()
            );
        }
        for id in [0, 1, -1, 9, 10, -10, i64::MAX, i64::MIN] {
            let mut out = Vec::new();
            write_id(&mut out, id);
            assert_eq!(out, id.to_string().as_bytes());
        }
        let mut out = Vec::new();
        write_callback_error(&mut out, 7, &RemoteError::new(11).message("x")).unwrap();
        assert_eq!(out, b"{callback:[7],error:[11]}");
        let mut out = Vec::new();
        assert!(write_callback_ok(&mut out, 1, &[f64::NAN.into()]).is_err());
    }
}
