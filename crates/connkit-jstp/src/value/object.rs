//! [`Object`]: the members of a JSTP object, in order, with unique keys.

use std::collections::HashMap;
use std::collections::hash_map::Entry;
use std::fmt;

use super::Value;

/// Up to this many members, duplicate keys are found by a linear scan; above it, with a
/// hash map (so hostile input with many keys stays linear).
pub(crate) const LINEAR_SCAN_MAX: usize = 16;

/// The members of a JSTP object: `(key, value)` pairs in order, each key at most once.
///
/// **Why a `Vec` of pairs and not a map.** JSTP messages are small objects whose key order is
/// part of the protocol (the first key is the message kind, the second the verb, spec §4.1).
/// A vector keeps insertion order by construction, costs one allocation, clones and drops
/// cheaply, and for the one to five keys of a message a linear lookup beats hashing. Lookups
/// by key are O(n), which is fine for messages; building an object from many pairs at once
/// ([`FromIterator`], [`Extend`], `From<Vec<_>>`, the parser) removes duplicates with a hash
/// map, so it stays O(n) even for hostile input.
///
/// **Duplicate keys** follow Node (`object[key] = value` in mdsf's parser, spec §3.2): the
/// last value wins and the key keeps the position of its first appearance.
///
/// **Order** is insertion order. Node orders *integer-like* keys (`'0'`, `'1'`, …) first
/// when it builds an object; this type does not reorder anything, so equality
/// ([`PartialEq`]) is order-sensitive.
///
/// Members whose value is [`Value::Undefined`] may be stored, but they are left out when the
/// object is serialized, as Node leaves them out; the parser never produces them.
///
/// ```
/// use connkit_jstp::{Object, Value};
///
/// let mut o = Object::new();
/// o.insert("call", Value::from(vec![Value::from(17), Value::from("calculator")]));
/// o.insert("add", Value::from(vec![2, 3]));
/// assert_eq!(o.get_index(0).map(|(k, _)| k), Some("call"));
/// assert_eq!(Value::from(o).to_string(), "{call:[17,'calculator'],add:[2,3]}");
/// ```
#[derive(Clone, Default, PartialEq)]
pub struct Object {
    entries: Vec<(String, Value)>,
}

impl Object {
    /// An empty object.
    #[must_use]
    pub const fn new() -> Object {
        Object {
            entries: Vec::new(),
        }
    }

    /// An empty object with room for `capacity` members.
    #[must_use]
    pub fn with_capacity(capacity: usize) -> Object {
        Object {
            entries: Vec::with_capacity(capacity),
        }
    }

    /// Wraps pairs the caller knows to have unique keys.
    pub(crate) fn from_unique(entries: Vec<(String, Value)>) -> Object {
        debug_assert!(has_unique_keys(&entries));
        Object { entries }
    }

    /// The number of members.
    #[must_use]
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether there are no members.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The value of member `key`.
    #[must_use]
    pub fn get(&self, key: &str) -> Option<&Value> {
        self.entries.iter().find(|(k, _)| k == key).map(|(_, v)| v)
    }

    /// The value of member `key`, mutably.
    pub fn get_mut(&mut self, key: &str) -> Option<&mut Value> {
        self.entries
            .iter_mut()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v)
    }

    /// Whether member `key` exists.
    #[must_use]
    pub fn contains_key(&self, key: &str) -> bool {
        self.entries.iter().any(|(k, _)| k == key)
    }

    /// The member at `index` (0 is the first key written on the wire).
    #[must_use]
    pub fn get_index(&self, index: usize) -> Option<(&str, &Value)> {
        self.entries.get(index).map(|(k, v)| (k.as_str(), v))
    }

    /// The member at `index`, with its value mutable.
    pub fn get_index_mut(&mut self, index: usize) -> Option<(&str, &mut Value)> {
        self.entries.get_mut(index).map(|(k, v)| (k.as_str(), v))
    }

    /// The position of member `key`.
    #[must_use]
    pub fn index_of(&self, key: &str) -> Option<usize> {
        self.entries.iter().position(|(k, _)| k == key)
    }

    /// Sets member `key`. An existing member keeps its position and its old value is
    /// returned; a new member goes last. O(n) in the number of members.
    pub fn insert(&mut self, key: impl Into<String>, value: impl Into<Value>) -> Option<Value> {
        let key = key.into();
        let value = value.into();
        match self.entries.iter_mut().find(|(k, _)| *k == key) {
            Some((_, slot)) => Some(std::mem::replace(slot, value)),
            None => {
                self.entries.push((key, value));
                None
            }
        }
    }

    /// Removes member `key` and returns its value; the members after it move up one place,
    /// so the order of the others is kept.
    pub fn remove(&mut self, key: &str) -> Option<Value> {
        let index = self.index_of(key)?;
        Some(self.entries.remove(index).1)
    }

    /// Removes every member.
    pub fn clear(&mut self) {
        self.entries.clear();
    }

    /// Reserves room for `additional` more members.
    pub fn reserve(&mut self, additional: usize) {
        self.entries.reserve(additional);
    }

    /// The members in order.
    pub fn iter(&self) -> Iter<'_> {
        Iter(self.entries.iter())
    }

    /// The members in order, values mutable.
    pub fn iter_mut(&mut self) -> IterMut<'_> {
        IterMut(self.entries.iter_mut())
    }

    /// The keys in order.
    pub fn keys(&self) -> impl DoubleEndedIterator<Item = &str> + ExactSizeIterator + '_ {
        self.entries.iter().map(|(k, _)| k.as_str())
    }

    /// The values in order.
    pub fn values(&self) -> impl DoubleEndedIterator<Item = &Value> + ExactSizeIterator + '_ {
        self.entries.iter().map(|(_, v)| v)
    }

    /// The members as a slice of pairs.
    #[must_use]
    pub fn as_slice(&self) -> &[(String, Value)] {
        &self.entries
    }

    /// The members as a vector of pairs (unique keys, in order).
    #[must_use]
    pub fn into_vec(self) -> Vec<(String, Value)> {
        self.entries
    }
}

impl fmt::Debug for Object {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_map()
            .entries(self.entries.iter().map(|(k, v)| (k, v)))
            .finish()
    }
}

/// Builds an object from pairs that may repeat keys: the last value wins, at the position of
/// the first appearance (Node's behaviour).
impl From<Vec<(String, Value)>> for Object {
    fn from(mut entries: Vec<(String, Value)>) -> Object {
        dedup_keys(&mut entries);
        Object { entries }
    }
}

impl<K: Into<String>, V: Into<Value>> FromIterator<(K, V)> for Object {
    fn from_iter<I: IntoIterator<Item = (K, V)>>(iter: I) -> Object {
        let entries: Vec<(String, Value)> = iter
            .into_iter()
            .map(|(k, v)| (k.into(), v.into()))
            .collect();
        Object::from(entries)
    }
}

/// Adds members as [`Object::insert`] would, one after another (duplicates resolved with a
/// hash map, so large extensions stay linear).
impl<K: Into<String>, V: Into<Value>> Extend<(K, V)> for Object {
    fn extend<I: IntoIterator<Item = (K, V)>>(&mut self, iter: I) {
        self.entries
            .extend(iter.into_iter().map(|(k, v)| (k.into(), v.into())));
        dedup_keys(&mut self.entries);
    }
}

impl IntoIterator for Object {
    type Item = (String, Value);
    type IntoIter = IntoIter;

    fn into_iter(self) -> IntoIter {
        IntoIter(self.entries.into_iter())
    }
}

impl<'a> IntoIterator for &'a Object {
    type Item = (&'a str, &'a Value);
    type IntoIter = Iter<'a>;

    fn into_iter(self) -> Iter<'a> {
        self.iter()
    }
}

impl<'a> IntoIterator for &'a mut Object {
    type Item = (&'a str, &'a mut Value);
    type IntoIter = IterMut<'a>;

    fn into_iter(self) -> IterMut<'a> {
        self.iter_mut()
    }
}

/// Iterator over `(&key, &value)`; see [`Object::iter`].
#[derive(Debug, Clone)]
pub struct Iter<'a>(std::slice::Iter<'a, (String, Value)>);

impl<'a> Iterator for Iter<'a> {
    type Item = (&'a str, &'a Value);

    fn next(&mut self) -> Option<Self::Item> {
        self.0.next().map(|(k, v)| (k.as_str(), v))
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        self.0.size_hint()
    }
}

impl DoubleEndedIterator for Iter<'_> {
    fn next_back(&mut self) -> Option<Self::Item> {
        self.0.next_back().map(|(k, v)| (k.as_str(), v))
    }
}

impl ExactSizeIterator for Iter<'_> {}

/// Iterator over `(&key, &mut value)`; see [`Object::iter_mut`].
#[derive(Debug)]
pub struct IterMut<'a>(std::slice::IterMut<'a, (String, Value)>);

impl<'a> Iterator for IterMut<'a> {
    type Item = (&'a str, &'a mut Value);

    fn next(&mut self) -> Option<Self::Item> {
        self.0.next().map(|(k, v)| (k.as_str(), v))
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        self.0.size_hint()
    }
}

impl DoubleEndedIterator for IterMut<'_> {
    fn next_back(&mut self) -> Option<Self::Item> {
        self.0.next_back().map(|(k, v)| (k.as_str(), v))
    }
}

impl ExactSizeIterator for IterMut<'_> {}

/// Owning iterator over `(key, value)`; see [`Object`]'s `IntoIterator`.
#[derive(Debug)]
pub struct IntoIter(std::vec::IntoIter<(String, Value)>);

impl Iterator for IntoIter {
    type Item = (String, Value);

    fn next(&mut self) -> Option<Self::Item> {
        self.0.next()
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        self.0.size_hint()
    }
}

impl DoubleEndedIterator for IntoIter {
    fn next_back(&mut self) -> Option<Self::Item> {
        self.0.next_back()
    }
}

impl ExactSizeIterator for IntoIter {}

/// Removes repeated keys the way Node's `object[key] = value` does: the last value wins and
/// the key keeps the position of its first appearance.
pub(crate) fn dedup_keys(entries: &mut Vec<(String, Value)>) {
    let n = entries.len();
    if n < 2 {
        return;
    }
    // (later index, index of the first appearance of the same key), later ascending.
    let mut repeats: Vec<(usize, usize)> = Vec::new();
    if n <= LINEAR_SCAN_MAX {
        for i in 1..n {
            if let Some(first) = entries[..i].iter().position(|(k, _)| *k == entries[i].0) {
                repeats.push((i, first));
            }
        }
    } else {
        let mut first_seen: HashMap<&str, usize> = HashMap::with_capacity(n);
        for (i, (k, _)) in entries.iter().enumerate() {
            match first_seen.entry(k.as_str()) {
                Entry::Occupied(e) => repeats.push((i, *e.get())),
                Entry::Vacant(e) => {
                    e.insert(i);
                }
            }
        }
    }
    if repeats.is_empty() {
        return;
    }
    let mut drop = vec![false; n];
    for &(later, first) in &repeats {
        let value = std::mem::take(&mut entries[later].1);
        entries[first].1 = value;
        drop[later] = true;
    }
    let mut index = 0;
    entries.retain(|_| {
        let keep = !drop[index];
        index += 1;
        keep
    });
}

fn has_unique_keys(entries: &[(String, Value)]) -> bool {
    let mut keys: Vec<&str> = entries.iter().map(|(k, _)| k.as_str()).collect();
    keys.sort_unstable();
    keys.windows(2).all(|w| w[0] != w[1])
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pairs(items: &[(&str, i32)]) -> Vec<(String, Value)> {
        items
            .iter()
            .map(|&(k, v)| (k.to_owned(), Value::from(v)))
            .collect()
    }

    #[test]
    fn repeated_keys_keep_first_position_and_last_value() {
        let o = Object::from(pairs(&[("a", 1), ("b", 2), ("a", 3), ("c", 4), ("b", 5)]));
        assert_eq!(o.into_vec(), pairs(&[("a", 3), ("b", 5), ("c", 4)]));
    }

    #[test]
    fn large_objects_dedup_with_the_same_rule() {
        let mut items: Vec<(String, i32)> = (0..100).map(|i| (format!("k{i}"), i)).collect();
        items.push(("k5".into(), 500));
        items.push(("k99".into(), 990));
        items.push(("k5".into(), 501));
        let o: Object = items.into_iter().collect();
        assert_eq!(o.len(), 100);
        assert_eq!(o.get_index(5), Some(("k5", &Value::from(501))));
        assert_eq!(o.get_index(99), Some(("k99", &Value::from(990))));
    }

    #[test]
    fn insert_replaces_in_place_and_remove_keeps_order() {
        let mut o: Object = [("x", 1), ("y", 2), ("z", 3)].into_iter().collect();
        assert_eq!(o.insert("y", 20), Some(Value::from(2)));
        assert_eq!(o.insert("w", 4), None);
        assert_eq!(o.keys().collect::<Vec<_>>(), ["x", "y", "z", "w"]);
        assert_eq!(o.remove("x"), Some(Value::from(1)));
        assert_eq!(o.keys().collect::<Vec<_>>(), ["y", "z", "w"]);
        assert_eq!(o.get("y"), Some(&Value::from(20)));
        assert_eq!(o.remove("nope"), None);
    }

    #[test]
    fn extend_dedups_against_existing_members() {
        let mut o: Object = [("a", 1), ("b", 2)].into_iter().collect();
        o.extend([("b", 20), ("c", 3), ("a", 10)]);
        assert_eq!(o.into_vec(), pairs(&[("a", 10), ("b", 20), ("c", 3)]));
    }
}
