//! Parsing JSTP (mdsf) text into a [`Value`].
//!
//! The grammar is a superset of both Node parsers (spec §3.2, §3.3):
//!
//! - everything mdsf's JavaScript parser accepts: single- and double-quoted strings with
//!   `\b \f \n \r \t \v`, `\xHH`, `\uHHHH`, `\u{H…}` (1–8 digits, at most U+10FFFF), 1–3
//!   digit octal escapes (`\101` is `A`, up to `\777`), any other escaped character standing
//!   for itself (including a real line break), raw control characters and line breaks inside
//!   strings; numbers with an optional sign, `.5` and `5.`, exponents, `0x`/`0o`/`0b`
//!   integers; `true`, `false`, `null`, `undefined`; bare ASCII identifier keys and quoted
//!   keys; trailing commas; array holes; `//` and `/* */` comments;
//! - and what the native parser or plain JavaScript adds: `NaN`, `Infinity`, `-Infinity`;
//!   upper-case radix prefixes (`0X1F`); Unicode identifier keys (`{ü:1}`); numeric keys
//!   (`{1:2}`, stored as the string JavaScript would make of the number, `"1"`); whitespace
//!   between any two tokens (`{call :1}`, `{ }`), including the Unicode spaces and
//!   U+2028/U+2029; any number of comments in a row.
//!
//! It rejects what is garbage in every JavaScript reading: `1+2`, `1e5.5`, `+-1`, a legacy
//! octal literal (`01`), unterminated strings or comments, trailing input.
//!
//! Object members whose value is `undefined` are dropped and repeated keys resolve as in Node
//! (last value wins, first position kept). Lone surrogate escapes become U+FFFD. Invalid UTF-8
//! inside strings becomes U+FFFD (as Node's UTF-8 decoder does) unless
//! [`ParseOptions::reject_invalid_utf8`] is set.

use std::fmt;

use memchr::{memchr2, memmem};

use super::Value;
use super::number::{hex_value, radix_to_f64, to_js_string};
use super::object::{LINEAR_SCAN_MAX, Object, dedup_keys};

/// Settings for [`parse_with`].
///
/// ```
/// use connkit_jstp::value::{self, ParseError, ParseOptions};
///
/// let strict = ParseOptions::new().max_depth(2).reject_invalid_utf8(true);
/// assert!(value::parse_with(b"[[1]]", &strict).is_ok());
/// assert!(matches!(
///     value::parse_with(b"[[[1]]]", &strict),
///     Err(ParseError::TooDeep { position: 2, limit: 2 })
/// ));
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[must_use]
pub struct ParseOptions {
    max_depth: usize,
    reject_invalid_utf8: bool,
}

impl ParseOptions {
    /// The default nesting limit: 128 levels of arrays and objects.
    pub const DEFAULT_MAX_DEPTH: usize = 128;

    /// The defaults: depth limit [`DEFAULT_MAX_DEPTH`](Self::DEFAULT_MAX_DEPTH), invalid
    /// UTF-8 in strings replaced by U+FFFD.
    pub const fn new() -> ParseOptions {
        ParseOptions {
            max_depth: Self::DEFAULT_MAX_DEPTH,
            reject_invalid_utf8: false,
        }
    }

    /// How many arrays and objects may be nested (`[]` is depth 1). Deeper input fails with
    /// [`ParseError::TooDeep`] instead of exhausting the stack. The parser recurses once per
    /// level: about 300 bytes of stack each in release builds, about 2.5 KiB in debug builds,
    /// so keep this well below what the calling thread's stack allows (the default needs
    /// under 40 KiB in release builds).
    pub const fn max_depth(mut self, depth: usize) -> ParseOptions {
        self.max_depth = depth;
        self
    }

    /// Whether invalid UTF-8 inside a string is an error ([`ParseError::InvalidUtf8`])
    /// rather than replaced by U+FFFD (Node's behaviour, and the default).
    pub const fn reject_invalid_utf8(mut self, reject: bool) -> ParseOptions {
        self.reject_invalid_utf8 = reject;
        self
    }

    /// The nesting limit set with [`max_depth`](Self::max_depth).
    #[must_use]
    pub const fn depth_limit(&self) -> usize {
        self.max_depth
    }

    /// Whether invalid UTF-8 in strings is rejected.
    #[must_use]
    pub const fn rejects_invalid_utf8(&self) -> bool {
        self.reject_invalid_utf8
    }
}

impl Default for ParseOptions {
    fn default() -> ParseOptions {
        ParseOptions::new()
    }
}

/// Why some bytes are not a JSTP value. Every variant carries the byte offset into the input
/// where the problem starts ([`ParseError::position`]).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ParseError {
    /// Something else was found where `expected` was required.
    #[error("expected {expected}, found {found} at byte {position}")]
    Unexpected {
        /// Byte offset of what was found.
        position: usize,
        /// What the grammar required there.
        expected: Expected,
        /// What was there.
        found: Found,
    },
    /// A number literal that no JavaScript reading accepts (such as `01`).
    #[error("invalid number at byte {position}: {reason}")]
    InvalidNumber {
        /// Byte offset of the number.
        position: usize,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// A malformed escape sequence in a string (`\x4`, `\u{110000}`, …).
    #[error("invalid escape sequence at byte {position}: {reason}")]
    InvalidEscape {
        /// Byte offset of the backslash.
        position: usize,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// Arrays and objects nested deeper than [`ParseOptions::max_depth`].
    #[error("nesting deeper than {limit} levels at byte {position}")]
    TooDeep {
        /// Byte offset of the bracket that went too deep.
        position: usize,
        /// The limit in force.
        limit: usize,
    },
    /// Invalid UTF-8 inside a string, with [`ParseOptions::reject_invalid_utf8`] set.
    #[error("invalid UTF-8 in a string at byte {position}")]
    InvalidUtf8 {
        /// Byte offset of the first invalid byte.
        position: usize,
    },
}

impl ParseError {
    /// The byte offset into the input where the problem starts.
    #[must_use]
    pub fn position(&self) -> usize {
        match self {
            ParseError::Unexpected { position, .. }
            | ParseError::InvalidNumber { position, .. }
            | ParseError::InvalidEscape { position, .. }
            | ParseError::TooDeep { position, .. }
            | ParseError::InvalidUtf8 { position } => *position,
        }
    }
}

/// What the parser required where it failed; see [`ParseError::Unexpected`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Expected {
    /// Any value.
    Value,
    /// A value, a `,` (hole) or `]`.
    ValueOrArrayEnd,
    /// An object key or `}`.
    KeyOrObjectEnd,
    /// `:` after an object key.
    Colon,
    /// `,` or `}` after an object member.
    CommaOrObjectEnd,
    /// `,` or `]` after an array element.
    CommaOrArrayEnd,
    /// Nothing more (only whitespace and comments may follow the value).
    EndOfInput,
    /// A decimal digit.
    Digit,
    /// A hexadecimal digit.
    HexDigit,
    /// An octal digit.
    OctalDigit,
    /// A binary digit.
    BinaryDigit,
    /// The closing quote of a string.
    ClosingQuote,
    /// A character after a backslash.
    EscapedCharacter,
    /// `*/`, the end of a block comment.
    CommentEnd,
    /// This keyword (`true`, `false`, `null`, `undefined`, `NaN`, `Infinity`).
    Keyword(&'static str),
}

impl fmt::Display for Expected {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Expected::Value => f.write_str("a value"),
            Expected::ValueOrArrayEnd => f.write_str("a value, `,` or `]`"),
            Expected::KeyOrObjectEnd => f.write_str("an object key or `}`"),
            Expected::Colon => f.write_str("`:`"),
            Expected::CommaOrObjectEnd => f.write_str("`,` or `}`"),
            Expected::CommaOrArrayEnd => f.write_str("`,` or `]`"),
            Expected::EndOfInput => f.write_str("end of input"),
            Expected::Digit => f.write_str("a digit"),
            Expected::HexDigit => f.write_str("a hexadecimal digit"),
            Expected::OctalDigit => f.write_str("an octal digit"),
            Expected::BinaryDigit => f.write_str("a binary digit"),
            Expected::ClosingQuote => f.write_str("a closing quote"),
            Expected::EscapedCharacter => f.write_str("a character after `\\`"),
            Expected::CommentEnd => f.write_str("`*/`"),
            Expected::Keyword(word) => write!(f, "`{word}`"),
        }
    }
}

/// What the parser found where it failed; see [`ParseError::Unexpected`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Found {
    /// The input ended.
    End,
    /// This character.
    Char(char),
    /// A byte that does not start valid UTF-8.
    Byte(u8),
}

impl fmt::Display for Found {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Found::End => f.write_str("end of input"),
            Found::Char(c) => write!(f, "'{}'", c.escape_debug()),
            Found::Byte(b) => write!(f, "byte 0x{b:02x}"),
        }
    }
}

/// Parses one value with the default [`ParseOptions`]. Whitespace and comments may surround
/// it; anything else after it is an error.
///
/// Never panics, whatever the input.
///
/// # Errors
///
/// [`ParseError`] with the byte position and what was expected there.
///
/// ```
/// use connkit_jstp::value::{self, Expected, Found, ParseError, Value};
///
/// let v = value::parse(b"/* lenient */ { call: [ 0x1, \"calc\", ], add: [+0x10, .5], }")?;
/// assert_eq!(v.to_string(), "{call:[1,'calc'],add:[16,0.5]}");
///
/// assert_eq!(
///     value::parse(b"{a:1 b:2}"),
///     Err(ParseError::Unexpected {
///         position: 5,
///         expected: Expected::CommaOrObjectEnd,
///         found: Found::Char('b'),
///     })
/// );
/// # Ok::<(), ParseError>(())
/// ```
pub fn parse(input: &[u8]) -> Result<Value, ParseError> {
    parse_with(input, &ParseOptions::new())
}

/// Parses one value with the given options; see [`parse`].
///
/// # Errors
///
/// [`ParseError`] with the byte position and what was expected there.
pub fn parse_with(input: &[u8], options: &ParseOptions) -> Result<Value, ParseError> {
    let mut p = Parser {
        s: input,
        pos: 0,
        depth: 0,
        max_depth: options.max_depth,
        strict_utf8: options.reject_invalid_utf8,
    };
    let value = p.value()?;
    p.skip_clutter()?;
    if p.pos < input.len() {
        return Err(p.unexpected(Expected::EndOfInput));
    }
    Ok(value)
}

struct Parser<'a> {
    s: &'a [u8],
    pos: usize,
    depth: usize,
    max_depth: usize,
    strict_utf8: bool,
}

impl Parser<'_> {
    fn peek(&self) -> Option<u8> {
        self.s.get(self.pos).copied()
    }

    fn unexpected(&self, expected: Expected) -> ParseError {
        ParseError::Unexpected {
            position: self.pos,
            expected,
            found: self.found(),
        }
    }

    fn found(&self) -> Found {
        match self.s.get(self.pos..) {
            None | Some([]) => Found::End,
            Some(rest) => match decode_char(rest) {
                Some((c, _)) => Found::Char(c),
                None => Found::Byte(rest[0]),
            },
        }
    }

    /// Skips whitespace (ASCII, Unicode spaces, line terminators, BOM) and comments.
    #[inline(always)]
    fn skip_clutter(&mut self) -> Result<(), ParseError> {
        // Compact input (what Node sends) has no clutter: one table lookup and out.
        match self.peek() {
            Some(b) if CLUTTER_START[usize::from(b)] => self.skip_clutter_slow(),
            _ => Ok(()),
        }
    }

    #[inline(never)]
    fn skip_clutter_slow(&mut self) -> Result<(), ParseError> {
        loop {
            let Some(b) = self.peek() else { return Ok(()) };
            match b {
                b' ' | b'\t' | b'\n' | b'\r' | 0x0B | 0x0C => self.pos += 1,
                b'/' => match self.s.get(self.pos + 1) {
                    Some(b'/') => {
                        // Ends at CR or LF only, as in mdsf's parser.
                        let body = self.pos + 2;
                        self.pos = match memchr2(b'\n', b'\r', &self.s[body..]) {
                            Some(i) => body + i,
                            None => self.s.len(),
                        };
                    }
                    Some(b'*') => {
                        let body = self.pos + 2;
                        match memmem::find(&self.s[body..], b"*/") {
                            Some(i) => self.pos = body + i + 2,
                            None => {
                                self.pos = self.s.len();
                                return Err(self.unexpected(Expected::CommentEnd));
                            }
                        }
                    }
                    _ => return Ok(()),
                },
                0x80.. => match unicode_space_len(&self.s[self.pos..]) {
                    Some(n) => self.pos += n,
                    None => return Ok(()),
                },
                _ => return Ok(()),
            }
        }
    }

    fn value(&mut self) -> Result<Value, ParseError> {
        self.skip_clutter()?;
        let Some(b) = self.peek() else {
            return Err(self.unexpected(Expected::Value));
        };
        match b {
            b'{' => self.object(),
            b'[' => self.array(),
            b'\'' | b'"' => self.string(b).map(Value::String),
            b'0'..=b'9' => match self.small_integer() {
                Some(n) => Ok(Value::Number(n)),
                None => self.number(true).map(Value::Number),
            },
            b'-' | b'+' | b'.' => self.number(true).map(Value::Number),
            b't' => self.keyword("true", Value::Bool(true)),
            b'f' => self.keyword("false", Value::Bool(false)),
            b'n' => self.keyword("null", Value::Null),
            b'u' => self.keyword("undefined", Value::Undefined),
            b'N' => self.keyword("NaN", Value::Number(f64::NAN)),
            b'I' => self.keyword("Infinity", Value::Number(f64::INFINITY)),
            _ => Err(self.unexpected(Expected::Value)),
        }
    }

    fn keyword(&mut self, word: &'static str, value: Value) -> Result<Value, ParseError> {
        if self.s[self.pos..].starts_with(word.as_bytes()) {
            self.pos += word.len();
            Ok(value)
        } else {
            // Point at the first byte that differs.
            let matching = self.s[self.pos..]
                .iter()
                .zip(word.as_bytes())
                .take_while(|(a, b)| a == b)
                .count();
            self.pos += matching;
            Err(self.unexpected(Expected::Keyword(word)))
        }
    }

    fn enter(&mut self) -> Result<(), ParseError> {
        if self.depth >= self.max_depth {
            return Err(ParseError::TooDeep {
                position: self.pos,
                limit: self.max_depth,
            });
        }
        self.depth += 1;
        Ok(())
    }

    fn array(&mut self) -> Result<Value, ParseError> {
        self.enter()?;
        self.pos += 1; // '['
        let mut items = Vec::new();
        loop {
            self.skip_clutter()?;
            match self.peek() {
                Some(b']') => {
                    self.pos += 1;
                    break;
                }
                Some(b',') => {
                    // A hole: `[,1]`, `[1,,2]`. A single trailing comma is not one (`[1,]`).
                    items.push(Value::Undefined);
                    self.pos += 1;
                }
                Some(b) if starts_value(b) => {
                    items.push(self.value()?);
                    self.skip_clutter()?;
                    match self.peek() {
                        Some(b',') => self.pos += 1,
                        Some(b']') => {
                            self.pos += 1;
                            break;
                        }
                        _ => return Err(self.unexpected(Expected::CommaOrArrayEnd)),
                    }
                }
                _ => return Err(self.unexpected(Expected::ValueOrArrayEnd)),
            }
        }
        self.depth -= 1;
        Ok(Value::Array(items))
    }

    fn object(&mut self) -> Result<Value, ParseError> {
        self.enter()?;
        self.pos += 1; // '{'
        let mut entries: Vec<(String, Value)> = Vec::new();
        let mut unchecked = false;
        loop {
            self.skip_clutter()?;
            if self.peek() == Some(b'}') {
                self.pos += 1;
                break;
            }
            let key = self.key()?;
            self.skip_clutter()?;
            if self.peek() != Some(b':') {
                return Err(self.unexpected(Expected::Colon));
            }
            self.pos += 1;
            let value = self.value()?;
            // Node skips the assignment for `undefined` (the member is absent).
            if !value.is_undefined() {
                if entries.len() < LINEAR_SCAN_MAX {
                    match entries.iter_mut().find(|(k, _)| *k == key) {
                        Some((_, slot)) => *slot = value,
                        None => entries.push((key, value)),
                    }
                } else {
                    entries.push((key, value));
                    unchecked = true;
                }
            }
            self.skip_clutter()?;
            match self.peek() {
                Some(b',') => self.pos += 1,
                Some(b'}') => {
                    self.pos += 1;
                    break;
                }
                _ => return Err(self.unexpected(Expected::CommaOrObjectEnd)),
            }
        }
        if unchecked {
            dedup_keys(&mut entries);
        }
        self.depth -= 1;
        Ok(Value::Object(Object::from_unique(entries)))
    }

    fn key(&mut self) -> Result<String, ParseError> {
        let start = self.pos;
        match self.peek() {
            Some(q @ (b'\'' | b'"')) => self.string(q),
            Some(b'A'..=b'Z' | b'a'..=b'z' | b'_' | b'$') => {
                self.pos += 1;
                while let Some(b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'_' | b'$') = self.peek()
                {
                    self.pos += 1;
                }
                if self.peek().is_some_and(|b| b >= 0x80) {
                    self.identifier_tail();
                }
                Ok(self.ident_text(start))
            }
            Some(b'0'..=b'9' | b'.') => {
                let n = self.number(false)?;
                Ok(to_js_string(n))
            }
            Some(0x80..) => match decode_char(&self.s[self.pos..]) {
                Some((c, len)) if unicode_ident::is_xid_start(c) => {
                    self.pos += len;
                    self.identifier_tail();
                    Ok(self.ident_text(start))
                }
                _ => Err(self.unexpected(Expected::KeyOrObjectEnd)),
            },
            _ => Err(self.unexpected(Expected::KeyOrObjectEnd)),
        }
    }

    /// Consumes identifier-continue characters (ASCII and Unicode).
    fn identifier_tail(&mut self) {
        while let Some(b) = self.peek() {
            if b.is_ascii_alphanumeric() || b == b'_' || b == b'$' {
                self.pos += 1;
                continue;
            }
            if b < 0x80 {
                break;
            }
            match decode_char(&self.s[self.pos..]) {
                Some((c, len))
                    if unicode_ident::is_xid_continue(c) || c == '\u{200C}' || c == '\u{200D}' =>
                {
                    self.pos += len;
                }
                _ => break,
            }
        }
    }

    fn ident_text(&self, start: usize) -> String {
        // Only ASCII identifier bytes and whole decoded characters were consumed, so this is
        // valid UTF-8 (`from_utf8` has an ASCII fast path).
        std::str::from_utf8(&self.s[start..self.pos])
            .map(str::to_owned)
            .unwrap_or_default()
    }

    /// Fast path for the most common number: an unsigned integer of 1 to 15 digits (below
    /// 2^53, so exact) with no fraction or exponent after it, and no leading zero. Consumes
    /// it and returns its value, or consumes nothing and returns `None`.
    #[inline(always)]
    fn small_integer(&mut self) -> Option<f64> {
        let rest = &self.s[self.pos..];
        let len = rest
            .iter()
            .take(16)
            .take_while(|b| b.is_ascii_digit())
            .count();
        if len == 0 || len > 15 || (len > 1 && rest[0] == b'0') {
            return None;
        }
        if matches!(
            rest.get(len),
            Some(b'.' | b'e' | b'E' | b'x' | b'X' | b'o' | b'O' | b'b' | b'B')
        ) {
            return None;
        }
        let n = rest[..len]
            .iter()
            .fold(0u64, |acc, &d| acc * 10 + u64::from(d - b'0'));
        self.pos += len;
        Some(n as f64)
    }

    /// A number literal; `signed` allows a leading `+`/`-` (not in keys).
    fn number(&mut self, signed: bool) -> Result<f64, ParseError> {
        let start = self.pos;
        let mut negative = false;
        if signed {
            match self.peek() {
                Some(b'-') => {
                    negative = true;
                    self.pos += 1;
                }
                Some(b'+') => self.pos += 1,
                _ => {}
            }
        }
        let magnitude = match (self.peek(), self.s.get(self.pos + 1)) {
            (Some(b'I'), _) => match self.keyword("Infinity", Value::Undefined) {
                Ok(_) => f64::INFINITY,
                Err(e) => return Err(e),
            },
            (Some(b'N'), _) => match self.keyword("NaN", Value::Undefined) {
                Ok(_) => f64::NAN,
                Err(e) => return Err(e),
            },
            (Some(b'0'), Some(&p @ (b'x' | b'X' | b'o' | b'O' | b'b' | b'B'))) => {
                self.pos += 2;
                let (bits, expected): (u32, Expected) = match p {
                    b'x' | b'X' => (4, Expected::HexDigit),
                    b'o' | b'O' => (3, Expected::OctalDigit),
                    _ => (1, Expected::BinaryDigit),
                };
                let digits = self.pos;
                while let Some(d) = self.peek() {
                    let ok = match bits {
                        4 => d.is_ascii_hexdigit(),
                        3 => (b'0'..=b'7').contains(&d),
                        _ => d == b'0' || d == b'1',
                    };
                    if !ok {
                        break;
                    }
                    self.pos += 1;
                }
                if self.pos == digits {
                    return Err(self.unexpected(expected));
                }
                radix_to_f64(&self.s[digits..self.pos], bits)
            }
            _ => self.decimal(start)?,
        };
        Ok(if negative { -magnitude } else { magnitude })
    }

    /// `digits [. digits] [e [+-] digits]` with at least one digit before the exponent.
    fn decimal(&mut self, start: usize) -> Result<f64, ParseError> {
        let text_start = self.pos;
        while let Some(b'0'..=b'9') = self.peek() {
            self.pos += 1;
        }
        let int_len = self.pos - text_start;
        if int_len > 1 && self.s[text_start] == b'0' {
            return Err(ParseError::InvalidNumber {
                position: start,
                reason: "a leading zero (legacy octal literal); use 0o for octal",
            });
        }
        let mut plain_integer = true;
        let mut frac_len = 0;
        if self.peek() == Some(b'.') {
            plain_integer = false;
            self.pos += 1;
            let frac_start = self.pos;
            while let Some(b'0'..=b'9') = self.peek() {
                self.pos += 1;
            }
            frac_len = self.pos - frac_start;
        }
        if int_len == 0 && frac_len == 0 {
            return Err(self.unexpected(Expected::Digit));
        }
        if let Some(b'e' | b'E') = self.peek() {
            plain_integer = false;
            self.pos += 1;
            if let Some(b'+' | b'-') = self.peek() {
                self.pos += 1;
            }
            let exp_start = self.pos;
            while let Some(b'0'..=b'9') = self.peek() {
                self.pos += 1;
            }
            if self.pos == exp_start {
                return Err(self.unexpected(Expected::Digit));
            }
        }
        let text = &self.s[text_start..self.pos];
        if plain_integer && int_len <= 15 {
            // Fast path: below 10^15 < 2^53, exact.
            let n = text
                .iter()
                .fold(0u64, |acc, &d| acc * 10 + u64::from(d - b'0'));
            return Ok(n as f64);
        }
        std::str::from_utf8(text)
            .ok()
            .and_then(|t| t.parse::<f64>().ok())
            .ok_or(ParseError::InvalidNumber {
                position: start,
                reason: "not a decimal number",
            })
    }

    /// A quoted string; `self.pos` is at the opening quote.
    fn string(&mut self, quote: u8) -> Result<String, ParseError> {
        self.pos += 1;
        let mut chunk_start = self.pos;
        let mut out: Option<String> = None;
        loop {
            let Some(i) = memchr2(quote, b'\\', &self.s[self.pos..]) else {
                self.pos = self.s.len();
                return Err(self.unexpected(Expected::ClosingQuote));
            };
            let at = self.pos + i;
            let chunk = &self.s[chunk_start..at];
            if self.s[at] == quote {
                self.pos = at + 1;
                return match out {
                    None => self.owned_text(chunk, chunk_start),
                    Some(mut text) => {
                        self.push_text(&mut text, chunk, chunk_start)?;
                        Ok(text)
                    }
                };
            }
            let text = out.get_or_insert_with(|| String::with_capacity(chunk.len() + 16));
            self.push_text(text, chunk, chunk_start)?;
            self.pos = at + 1;
            self.escape(text, at)?;
            chunk_start = self.pos;
        }
    }

    fn owned_text(&self, chunk: &[u8], offset: usize) -> Result<String, ParseError> {
        match std::str::from_utf8(chunk) {
            Ok(s) => Ok(s.to_owned()),
            Err(e) if self.strict_utf8 => Err(ParseError::InvalidUtf8 {
                position: offset + e.valid_up_to(),
            }),
            Err(_) => Ok(String::from_utf8_lossy(chunk).into_owned()),
        }
    }

    fn push_text(&self, out: &mut String, chunk: &[u8], offset: usize) -> Result<(), ParseError> {
        match std::str::from_utf8(chunk) {
            Ok(s) => out.push_str(s),
            Err(e) if self.strict_utf8 => {
                return Err(ParseError::InvalidUtf8 {
                    position: offset + e.valid_up_to(),
                });
            }
            Err(_) => out.push_str(&String::from_utf8_lossy(chunk)),
        }
        Ok(())
    }

    /// One escape sequence; `self.pos` is just past the backslash at `backslash`.
    fn escape(&mut self, out: &mut String, backslash: usize) -> Result<(), ParseError> {
        let Some(c) = self.peek() else {
            return Err(self.unexpected(Expected::EscapedCharacter));
        };
        let simple = match c {
            b'b' => Some('\u{8}'),
            b'f' => Some('\u{c}'),
            b'n' => Some('\n'),
            b'r' => Some('\r'),
            b't' => Some('\t'),
            b'v' => Some('\u{b}'),
            _ => None,
        };
        if let Some(ch) = simple {
            out.push(ch);
            self.pos += 1;
            return Ok(());
        }
        match c {
            b'0'..=b'7' => {
                // mdsf: one to three octal digits, so `\101` is 'A' and `\777` is U+01FF.
                let mut code = 0u32;
                let mut n = 0;
                while n < 3 {
                    match self.peek() {
                        Some(d @ b'0'..=b'7') => {
                            code = code * 8 + u32::from(d - b'0');
                            self.pos += 1;
                            n += 1;
                        }
                        _ => break,
                    }
                }
                out.push(char::from_u32(code).unwrap_or(char::REPLACEMENT_CHARACTER));
            }
            b'x' => {
                self.pos += 1;
                let code = self.fixed_hex(2).ok_or(ParseError::InvalidEscape {
                    position: backslash,
                    reason: "\\x needs two hexadecimal digits",
                })?;
                out.push(char::from_u32(code).unwrap_or(char::REPLACEMENT_CHARACTER));
            }
            b'u' => {
                self.pos += 1;
                let code = self.unicode_escape(backslash)?;
                self.push_code_unit_or_point(out, code)?;
            }
            0x80.. => {
                // A non-ASCII character stands for itself; leave it for the next text chunk
                // (which also handles invalid UTF-8 there).
            }
            _ => {
                // Any other ASCII character stands for itself: \' \" \\ \/ and a real CR or LF.
                out.push(char::from(c));
                self.pos += 1;
            }
        }
        Ok(())
    }

    /// Pushes a code point from a `\u` escape, joining a high surrogate with an immediately
    /// following `\u` low surrogate; a lone surrogate becomes U+FFFD.
    fn push_code_unit_or_point(&mut self, out: &mut String, code: u32) -> Result<(), ParseError> {
        match code {
            0xD800..=0xDBFF => {
                if self.s[self.pos..].starts_with(b"\\u") {
                    let save = self.pos;
                    self.pos += 2;
                    let low = self.unicode_escape(save)?;
                    if (0xDC00..=0xDFFF).contains(&low) {
                        let joined = 0x10000 + ((code - 0xD800) << 10) + (low - 0xDC00);
                        out.push(char::from_u32(joined).unwrap_or(char::REPLACEMENT_CHARACTER));
                        return Ok(());
                    }
                    self.pos = save;
                }
                out.push(char::REPLACEMENT_CHARACTER);
            }
            _ => out.push(char::from_u32(code).unwrap_or(char::REPLACEMENT_CHARACTER)),
        }
        Ok(())
    }

    /// The code of `\uHHHH` or `\u{H…}`; `self.pos` is just past the `u`.
    fn unicode_escape(&mut self, backslash: usize) -> Result<u32, ParseError> {
        if self.peek() != Some(b'{') {
            return self.fixed_hex(4).ok_or(ParseError::InvalidEscape {
                position: backslash,
                reason: "\\u needs four hexadecimal digits or {…}",
            });
        }
        self.pos += 1;
        let digits = self.pos;
        while self.peek().is_some_and(|d| d.is_ascii_hexdigit()) {
            self.pos += 1;
        }
        let count = self.pos - digits;
        if self.peek() != Some(b'}') || count == 0 || count > 8 {
            return Err(ParseError::InvalidEscape {
                position: backslash,
                reason: "\\u{…} needs one to eight hexadecimal digits",
            });
        }
        let code = self.s[digits..self.pos]
            .iter()
            .fold(0u32, |acc, &d| (acc << 4) | u32::from(hex_value(d)));
        self.pos += 1; // '}'
        if code > 0x10_FFFF {
            return Err(ParseError::InvalidEscape {
                position: backslash,
                reason: "code point above U+10FFFF",
            });
        }
        Ok(code)
    }

    /// Exactly `n` hexadecimal digits.
    fn fixed_hex(&mut self, n: usize) -> Option<u32> {
        let digits = self.s.get(self.pos..self.pos + n)?;
        if !digits.iter().all(u8::is_ascii_hexdigit) {
            return None;
        }
        self.pos += n;
        Some(
            digits
                .iter()
                .fold(0u32, |acc, &d| (acc << 4) | u32::from(hex_value(d))),
        )
    }
}

/// Bytes that may start whitespace or a comment.
static CLUTTER_START: [bool; 256] = {
    let mut table = [false; 256];
    let mut i = 0x80;
    while i < 256 {
        table[i] = true;
        i += 1;
    }
    table[b' ' as usize] = true;
    table[b'\t' as usize] = true;
    table[b'\n' as usize] = true;
    table[b'\r' as usize] = true;
    table[0x0B] = true;
    table[0x0C] = true;
    table[b'/' as usize] = true;
    table
};

/// Whether a value can start with byte `b` (see `Parser::value`).
fn starts_value(b: u8) -> bool {
    matches!(
        b,
        b'{' | b'[' | b'\'' | b'"' | b'0'
            ..=b'9' | b'-' | b'+' | b'.' | b't' | b'f' | b'n' | b'u' | b'N' | b'I'
    )
}

/// The character at the start of `bytes` and its length in bytes, if it is valid UTF-8.
fn decode_char(bytes: &[u8]) -> Option<(char, usize)> {
    let len = match *bytes.first()? {
        0x00..=0x7F => 1,
        0xC2..=0xDF => 2,
        0xE0..=0xEF => 3,
        0xF0..=0xF4 => 4,
        _ => return None,
    };
    let c = std::str::from_utf8(bytes.get(..len)?)
        .ok()?
        .chars()
        .next()?;
    Some((c, len))
}

/// The length of a non-ASCII JavaScript whitespace or line terminator at the start of
/// `bytes`: NBSP, the other Unicode `Zs` spaces, U+2028, U+2029 and the BOM (U+FEFF).
fn unicode_space_len(bytes: &[u8]) -> Option<usize> {
    match bytes {
        [0xC2, 0xA0, ..] => Some(2),                                   // U+00A0
        [0xE1, 0x9A, 0x80, ..] => Some(3),                             // U+1680
        [0xE2, 0x80, 0x80..=0x8A | 0xA8 | 0xA9 | 0xAF, ..] => Some(3), // U+2000–200A, 2028, 2029, 202F
        [0xE2, 0x81, 0x9F, ..] => Some(3),                             // U+205F
        [0xE3, 0x80, 0x80, ..] => Some(3),                             // U+3000
        [0xEF, 0xBB, 0xBF, ..] => Some(3),                             // U+FEFF
        _ => None,
    }
}
