//! A small, stable content hash for stamp files.
//!
//! `std`'s `DefaultHasher` may change between Rust releases, which would only
//! cost a spurious reinstall, but a hash written into a file should not depend
//! on the compiler. FNV-1a (64-bit) is enough to notice that a lock file
//! changed; it is not used for anything security-related.

const OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
const PRIME: u64 = 0x0000_0100_0000_01b3;

/// Incremental FNV-1a 64-bit hasher.
#[derive(Debug, Clone)]
pub(crate) struct Fnv64(u64);

impl Fnv64 {
    pub(crate) fn new() -> Self {
        Self(OFFSET)
    }

    /// Feeds `bytes`, prefixed by their length so that the concatenation of
    /// several inputs cannot collide with a different split of the same bytes.
    pub(crate) fn update(&mut self, bytes: &[u8]) -> &mut Self {
        for b in (bytes.len() as u64).to_le_bytes().iter().chain(bytes) {
            self.0 ^= u64::from(*b);
            self.0 = self.0.wrapping_mul(PRIME);
        }
        self
    }

    /// The hash as 16 lowercase hex digits.
    pub(crate) fn hex(&self) -> String {
        format!("{:016x}", self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::Fnv64;

    #[test]
    fn same_input_same_hash_and_different_input_different_hash() {
        let a = Fnv64::new().update(b"lock").update(b"v1").hex();
        let b = Fnv64::new().update(b"lock").update(b"v1").hex();
        let c = Fnv64::new().update(b"lock").update(b"v2").hex();
        assert_eq!(a, b);
        assert_ne!(a, c);
        assert_eq!(a.len(), 16);
    }

    #[test]
    fn input_boundaries_matter() {
        let a = Fnv64::new().update(b"ab").update(b"c").hex();
        let b = Fnv64::new().update(b"a").update(b"bc").hex();
        assert_ne!(a, b);
    }
}
