//! [`Topic`]: the topic of a message, an immutable UTF-8 string that is cheap to clone.

use bytes::Bytes;
use std::borrow::Borrow;
use std::cmp::Ordering;
use std::fmt;
use std::hash::{Hash, Hasher};
use std::ops::Deref;

/// Topics up to this many bytes are held inline: no allocation and no shared count.
const INLINE: usize = 22;

/// The topic of a message: an immutable UTF-8 string, cheap to clone, used as a `&str`.
///
/// A received topic is not copied into a `String` of its own: a short one (up to 22 bytes)
/// is held inline, a longer one shares the received frame's memory, as the
/// [`Payload`](crate::Payload) does. It reads as a `str` ([`Deref`], [`as_str`](Self::as_str))
/// and compares with `str` and `String` either way round:
///
/// ```
/// use connkit_ipc::Topic;
///
/// let topic = Topic::from("chat");
/// assert!(topic == "chat" && "chat" == topic);
/// assert_eq!(topic, String::from("chat"));
/// assert!(topic.starts_with("ch")); // any `str` method
/// let s: &str = &topic;
/// assert_eq!(s, "chat");
/// assert_eq!(topic.to_string(), "chat");
/// assert_eq!(String::from(topic.clone()), "chat");
/// assert_eq!(format!("{topic} {topic:?}"), r#"chat "chat""#);
/// // A `HashMap<Topic, _>` is looked up with a `&str`.
/// let counts = std::collections::HashMap::from([(topic, 1)]);
/// assert_eq!(counts.get("chat"), Some(&1));
/// ```
///
/// A long received topic keeps the frame it arrived in alive for as long as the topic (or a
/// clone) is kept. To keep many long topics for a long time, keep them as `String`s.
#[derive(Clone)]
pub struct Topic(Repr);

#[derive(Clone)]
enum Repr {
    /// UTF-8 in `buf[..len]`.
    Inline { len: u8, buf: [u8; INLINE] },
    /// UTF-8.
    Shared(Bytes),
}

impl Topic {
    /// A topic from a `&'static str`, without a copy.
    #[must_use]
    pub const fn from_static(topic: &'static str) -> Self {
        Self(Repr::Shared(Bytes::from_static(topic.as_bytes())))
    }

    /// The topic at `range` of a received frame, which the caller checked is UTF-8 there: a
    /// copy when short, a share of the frame otherwise. Empty for a range out of bounds
    /// (callers never pass one).
    pub(crate) fn from_frame(frame: &Bytes, range: std::ops::Range<usize>) -> Self {
        match frame.get(range.clone()) {
            Some(text) => {
                Self::inline(text).unwrap_or_else(|| Self(Repr::Shared(frame.slice(range))))
            }
            None => Self::default(),
        }
    }

    fn inline(text: &[u8]) -> Option<Self> {
        let mut buf = [0u8; INLINE];
        buf.get_mut(..text.len())?.copy_from_slice(text);
        let len = u8::try_from(text.len()).ok()?;
        Some(Self(Repr::Inline { len, buf }))
    }

    /// The topic as bytes (UTF-8).
    fn bytes(&self) -> &[u8] {
        match &self.0 {
            Repr::Inline { len, buf } => buf.get(..usize::from(*len)).unwrap_or_default(),
            Repr::Shared(b) => b,
        }
    }

    /// The topic as a `&str`.
    #[must_use]
    pub fn as_str(&self) -> &str {
        // Always UTF-8 (checked when the topic was made); the check is a quick scan.
        std::str::from_utf8(self.bytes()).unwrap_or_default()
    }
}

impl Default for Topic {
    /// The empty topic.
    fn default() -> Self {
        Self(Repr::Inline {
            len: 0,
            buf: [0; INLINE],
        })
    }
}

impl Deref for Topic {
    type Target = str;

    fn deref(&self) -> &str {
        self.as_str()
    }
}

impl AsRef<str> for Topic {
    fn as_ref(&self) -> &str {
        self.as_str()
    }
}

impl Borrow<str> for Topic {
    fn borrow(&self) -> &str {
        self.as_str()
    }
}

impl fmt::Display for Topic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self.as_str(), f)
    }
}

impl fmt::Debug for Topic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self.as_str(), f)
    }
}

impl PartialEq for Topic {
    fn eq(&self, other: &Self) -> bool {
        self.bytes() == other.bytes()
    }
}

impl Eq for Topic {}

impl PartialOrd for Topic {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

/// The order of the strings (byte order, as for `str`).
impl Ord for Topic {
    fn cmp(&self, other: &Self) -> Ordering {
        self.bytes().cmp(other.bytes())
    }
}

/// Hashes as the `str` does, so a `&str` finds a `Topic` key.
impl Hash for Topic {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.as_str().hash(state);
    }
}

impl PartialEq<str> for Topic {
    fn eq(&self, other: &str) -> bool {
        self.bytes() == other.as_bytes()
    }
}

impl PartialEq<&str> for Topic {
    fn eq(&self, other: &&str) -> bool {
        self.bytes() == other.as_bytes()
    }
}

impl PartialEq<String> for Topic {
    fn eq(&self, other: &String) -> bool {
        self.bytes() == other.as_bytes()
    }
}

impl PartialEq<Topic> for str {
    fn eq(&self, other: &Topic) -> bool {
        other == self
    }
}

impl PartialEq<Topic> for &str {
    fn eq(&self, other: &Topic) -> bool {
        other == self
    }
}

impl PartialEq<Topic> for String {
    fn eq(&self, other: &Topic) -> bool {
        other == self
    }
}

impl From<&str> for Topic {
    fn from(topic: &str) -> Self {
        Self::inline(topic.as_bytes())
            .unwrap_or_else(|| Self(Repr::Shared(Bytes::copy_from_slice(topic.as_bytes()))))
    }
}

impl From<&String> for Topic {
    fn from(topic: &String) -> Self {
        Self::from(topic.as_str())
    }
}

/// Takes the `String`'s buffer when the topic is long (no copy).
impl From<String> for Topic {
    fn from(topic: String) -> Self {
        Self::inline(topic.as_bytes()).unwrap_or_else(|| Self(Repr::Shared(Bytes::from(topic))))
    }
}

impl From<Topic> for String {
    fn from(topic: Topic) -> Self {
        topic.as_str().to_owned()
    }
}

impl serde::Serialize for Topic {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

impl<'de> serde::Deserialize<'de> for Topic {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        String::deserialize(d).map(Self::from)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    fn hash_of<T: Hash + ?Sized>(v: &T) -> u64 {
        use std::collections::hash_map::DefaultHasher;
        let mut h = DefaultHasher::new();
        v.hash(&mut h);
        h.finish()
    }

    #[test]
    fn every_representation_reads_compares_and_hashes_as_its_text() {
        for text in [
            "",
            "echo",
            "é😀",
            &"x".repeat(22),
            &"y".repeat(23),
            &"é".repeat(40),
        ] {
            let shared = Bytes::copy_from_slice(text.as_bytes());
            let made = [
                Topic::from(text),
                Topic::from(text.to_owned()),
                Topic::from(&text.to_owned()),
                Topic::from_frame(&shared, 0..shared.len()),
                Topic(Repr::Shared(shared.clone())),
            ];
            for t in &made {
                assert_eq!(t.as_str(), text);
                assert_eq!(&**t, text);
                let owned = text.to_owned();
                assert!(*t == *text && *t == text && *t == owned);
                assert!(*text == *t && text == *t && owned == *t);
                assert_eq!(hash_of(t), hash_of(text));
                assert_eq!(String::from(t.clone()), text);
                assert_eq!(t.to_string(), text);
                assert_eq!(format!("{t:?}"), format!("{text:?}"));
                for u in &made {
                    assert_eq!(t, u);
                    assert_eq!(t.cmp(u), Ordering::Equal);
                }
            }
        }
        assert!(matches!(Topic::from("x".repeat(22)).0, Repr::Inline { .. }));
        assert!(matches!(Topic::from("x".repeat(23)).0, Repr::Shared(_)));
        assert_eq!(Topic::default(), "");
        let frame = Bytes::from_static(b"[topic]");
        assert_eq!(Topic::from_frame(&frame, 1..6), "topic");
        assert_eq!(Topic::from_frame(&frame, 1..60), "");
        assert_eq!(Topic::from_static("static"), "static");
        let (short, long) = (Topic::from("a"), Topic::from("b".repeat(30)));
        assert!(short < long);
        let set: HashSet<Topic> = ["a", "b"].into_iter().map(Topic::from).collect();
        assert!(set.contains("a") && !set.contains("c"));
    }

    #[test]
    fn serializes_as_a_string() {
        let t = Topic::from("a\"b");
        let json = serde_json::to_string(&t).unwrap();
        assert_eq!(json, r#""a\"b""#);
        assert_eq!(serde_json::from_str::<Topic>(&json).unwrap(), t);
    }
}
