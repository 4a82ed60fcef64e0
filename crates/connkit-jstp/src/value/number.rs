//! JavaScript number text: writing numbers the way `Number.prototype.toString` does, and
//! reading `0x`/`0o`/`0b` integer literals with correct rounding.
//!
//! Shortest round-trip digits come from [`zmij`] (Schubfach; the same digits V8 prints, and
//! already in the dependency graph through `serde_json`). Only the layout is JavaScript's
//! (ECMAScript `Number::toString`, spec §3.3):
//!
//! * `k` significant digits, decimal exponent `n` (the value is `0.d1d2… × 10^n`);
//! * `k ≤ n ≤ 21`: the digits and `n − k` zeros (`123456789012345680000`);
//! * `0 < n ≤ 21`: a decimal point inside the digits (`2.5`);
//! * `−6 < n ≤ 0`: `0.`, `−n` zeros, the digits (`0.000001`);
//! * otherwise exponent notation with an explicit sign: `1e+21`, `1.5e-7`.
//!
//! `-0` is written `0`, as JavaScript does.

use bytes::BufMut;

/// 2^53: integers strictly below this magnitude are exact in an f64 ("safe integers").
pub(crate) const TWO_POW_53: f64 = 9_007_199_254_740_992.0;

/// Two ASCII digits for every value 0..100.
const DIGIT_PAIRS: &[u8; 200] = b"\
0001020304050607080910111213141516171819\
2021222324252627282930313233343536373839\
4041424344454647484950515253545556575859\
6061626364656667686970717273747576777879\
8081828384858687888990919293949596979899";

/// Appends the decimal digits of `n`.
pub(crate) fn write_u64<B: BufMut + ?Sized>(mut n: u64, out: &mut B) {
    let mut buf = [0u8; 20];
    let mut i = buf.len();
    while n >= 100 {
        let pair = usize::try_from(n % 100).unwrap_or(0) * 2;
        n /= 100;
        i -= 2;
        buf[i..i + 2].copy_from_slice(&DIGIT_PAIRS[pair..pair + 2]);
    }
    if n >= 10 {
        let pair = usize::try_from(n).unwrap_or(0) * 2;
        i -= 2;
        buf[i..i + 2].copy_from_slice(&DIGIT_PAIRS[pair..pair + 2]);
    } else {
        i -= 1;
        // n < 10 here.
        buf[i] = b'0' + u8::try_from(n).unwrap_or(0);
    }
    out.put_slice(&buf[i..]);
}

/// Appends a finite `v` as JavaScript's `String(v)` would. The caller checks finiteness.
pub(crate) fn write_finite<B: BufMut + ?Sized>(v: f64, out: &mut B) {
    debug_assert!(v.is_finite());
    // Fast path: safe integers (and ±0) print all their digits, exactly.
    if v.fract() == 0.0 && v.abs() < TWO_POW_53 {
        if v < 0.0 {
            out.put_u8(b'-');
        }
        // An integer below 2^53 in magnitude converts exactly.
        write_u64(v.abs() as u64, out);
        return;
    }
    let mut buffer = zmij::Buffer::new();
    let text = buffer.format_finite(v).as_bytes();
    let Some(d) = Decimal::from_shortest(text) else {
        // Unreachable with zmij's output format; write its text rather than nothing.
        out.put_slice(text);
        return;
    };
    if v < 0.0 {
        out.put_u8(b'-');
    }
    d.write_js_layout(out);
}

/// Appends `v` as JavaScript's `String(v)` would, including `NaN`, `Infinity`, `-Infinity`.
pub(crate) fn write_js<B: BufMut + ?Sized>(v: f64, out: &mut B) {
    if v.is_nan() {
        out.put_slice(b"NaN");
    } else if v == f64::INFINITY {
        out.put_slice(b"Infinity");
    } else if v == f64::NEG_INFINITY {
        out.put_slice(b"-Infinity");
    } else {
        write_finite(v, out);
    }
}

/// `String(v)` in JavaScript (used for numeric object keys, `{1e3:x}` → key `"1000"`).
pub(crate) fn to_js_string(v: f64) -> String {
    let mut out = Vec::with_capacity(24);
    write_js(v, &mut out);
    // Only ASCII was written.
    String::from_utf8(out).unwrap_or_default()
}

/// Significant digits (no leading or trailing zeros) and the decimal exponent `n` such that
/// the value is `0.d1d2… × 10^n`.
struct Decimal {
    digits: [u8; 32],
    len: usize,
    n: i32,
}

impl Decimal {
    /// Reads `[-]int[.frac][e[+-]exp]` as printed by a shortest-digits formatter.
    fn from_shortest(text: &[u8]) -> Option<Decimal> {
        let mut d = Decimal {
            digits: [0; 32],
            len: 0,
            n: 0,
        };
        let mut i = usize::from(text.first() == Some(&b'-'));
        let mut point: i32 = 0;
        let mut seen_point = false;
        while let Some(&c) = text.get(i) {
            match c {
                b'0'..=b'9' => {
                    if d.len == 0 && c == b'0' {
                        // A leading zero moves the point left when it is after the point.
                        if seen_point {
                            point -= 1;
                        }
                    } else {
                        *d.digits.get_mut(d.len)? = c;
                        d.len += 1;
                        if !seen_point {
                            point += 1;
                        }
                    }
                }
                b'.' => seen_point = true,
                b'e' | b'E' => break,
                _ => return None,
            }
            i += 1;
        }
        let mut exp: i32 = 0;
        if matches!(text.get(i), Some(b'e' | b'E')) {
            let rest = std::str::from_utf8(text.get(i + 1..)?).ok()?;
            exp = rest.strip_prefix('+').unwrap_or(rest).parse().ok()?;
        }
        while d.len > 0 && d.digits[d.len - 1] == b'0' {
            d.len -= 1;
        }
        if d.len == 0 {
            return None;
        }
        d.n = point + exp;
        Some(d)
    }

    fn write_js_layout<B: BufMut + ?Sized>(&self, out: &mut B) {
        let digits = &self.digits[..self.len];
        let k = i32::try_from(self.len).unwrap_or(i32::MAX);
        let n = self.n;
        if k <= n && n <= 21 {
            out.put_slice(digits);
            for _ in k..n {
                out.put_u8(b'0');
            }
        } else if 0 < n && n <= 21 {
            let split = usize::try_from(n).unwrap_or(0);
            out.put_slice(&digits[..split]);
            out.put_u8(b'.');
            out.put_slice(&digits[split..]);
        } else if -6 < n && n <= 0 {
            out.put_slice(b"0.");
            for _ in n..0 {
                out.put_u8(b'0');
            }
            out.put_slice(digits);
        } else {
            let e = n - 1;
            out.put_u8(digits[0]);
            if digits.len() > 1 {
                out.put_u8(b'.');
                out.put_slice(&digits[1..]);
            }
            out.put_u8(b'e');
            out.put_u8(if e < 0 { b'-' } else { b'+' });
            write_u64(u64::from(e.unsigned_abs()), out);
        }
    }
}

/// The value of a `0x`/`0o`/`0b` literal's digits, correctly rounded to the nearest f64 (ties
/// to even), as JavaScript's `parseInt(digits, 16 | 8 | 2)` gives it. Returns `+Infinity` past
/// `f64::MAX`.
///
/// `bits` is 4, 3 or 1; every byte of `digits` is a valid digit of that radix.
pub(crate) fn radix_to_f64(digits: &[u8], bits: u32) -> f64 {
    let mut mant: u64 = 0;
    let mut width: u32 = 0; // significant bits held in `mant`
    let mut dropped: u64 = 0; // bits past the first 64 (they only scale and round)
    let mut sticky = false;
    for &c in digits {
        let val = u64::from(hex_value(c));
        for b in (0..bits).rev() {
            let bit = (val >> b) & 1;
            if width == 0 && bit == 0 {
                continue;
            }
            if width < 64 {
                mant = (mant << 1) | bit;
                width += 1;
            } else {
                dropped += 1;
                sticky |= bit == 1;
            }
        }
    }
    if width <= 53 {
        // Below 2^53: exact.
        return mant as f64;
    }
    let shift = width - 53;
    let mut top = mant >> shift;
    let rest = mant & ((1u64 << shift) - 1);
    let half = 1u64 << (shift - 1);
    let round_up = rest > half || (rest == half && (sticky || top & 1 == 1));
    let mut exp = u64::from(shift) + dropped;
    if round_up {
        top += 1;
        if top == 1u64 << 53 {
            top >>= 1;
            exp += 1;
        }
    }
    if exp > 1023 {
        return f64::INFINITY;
    }
    // 2^exp, built exactly from its bits; exp ≤ 1023 here.
    let scale = f64::from_bits((exp + 1023) << 52);
    // top < 2^53: exact.
    top as f64 * scale
}

/// The value of one hexadecimal (or octal, or binary) digit.
pub(crate) fn hex_value(c: u8) -> u8 {
    match c {
        b'0'..=b'9' => c - b'0',
        b'a'..=b'f' => c - b'a' + 10,
        b'A'..=b'F' => c - b'A' + 10,
        _ => 0,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn js(v: f64) -> String {
        to_js_string(v)
    }

    #[test]
    fn layout_matches_number_to_string() {
        // Each expectation is what `String(x)` prints in Node 20 (spec §3.1 and §3.3).
        let cases: &[(f64, &str)] = &[
            (0.0, "0"),
            (-0.0, "0"),
            (1.0, "1"),
            (-5.0, "-5"),
            (42.0, "42"),
            (2.5, "2.5"),
            (0.1 + 0.2, "0.30000000000000004"),
            (1e21, "1e+21"),
            (1e-7, "1e-7"),
            (1.5e-7, "1.5e-7"),
            (-2.5e300, "-2.5e+300"),
            (123_456_789_012_345_680_000.0, "123456789012345680000"),
            (1e20, "100000000000000000000"),
            (0.000_001, "0.000001"),
            (0.000_001_2, "0.0000012"),
            (0.5, "0.5"),
            (1.23e-18, "1.23e-18"),
            (5e-324, "5e-324"),
            (f64::MAX, "1.7976931348623157e+308"),
            (9_007_199_254_740_991.0, "9007199254740991"),
            (9_007_199_254_740_992.0, "9007199254740992"),
            (2f64.powi(60), "1152921504606847000"),
            (1e16, "10000000000000000"),
            (123.456, "123.456"),
            (-0.001, "-0.001"),
            (f64::NAN, "NaN"),
            (f64::INFINITY, "Infinity"),
            (f64::NEG_INFINITY, "-Infinity"),
        ];
        for &(v, want) in cases {
            assert_eq!(js(v), want, "{v:e}");
        }
    }

    #[test]
    fn integers_use_the_fast_path_exactly() {
        for v in [
            0u64,
            7,
            10,
            99,
            100,
            101,
            999,
            1000,
            12_345_678,
            9_007_199_254_740_991,
        ] {
            assert_eq!(js(v as f64), v.to_string());
            assert_eq!(
                js(-(v as f64)),
                if v == 0 { "0".into() } else { format!("-{v}") }
            );
        }
    }

    #[test]
    fn radix_literals_round_to_nearest_even() {
        assert_eq!(radix_to_f64(b"ff", 4), 255.0);
        assert_eq!(radix_to_f64(b"0", 4), 0.0);
        assert_eq!(radix_to_f64(b"000", 1), 0.0);
        assert_eq!(radix_to_f64(b"777", 3), 511.0);
        assert_eq!(radix_to_f64(b"101", 1), 5.0);
        // 2^53 + 1 is a tie between 2^53 and 2^53 + 2: even wins (2^53).
        assert_eq!(radix_to_f64(b"20000000000001", 4), 9_007_199_254_740_992.0);
        // 2^53 + 3 is a tie between 2^53 + 2 and 2^53 + 4: even mantissa is 2^53 + 4.
        assert_eq!(radix_to_f64(b"20000000000003", 4), 9_007_199_254_740_996.0);
        // Just above the tie (a sticky bit far below) rounds up.
        assert_eq!(
            radix_to_f64(b"200000000000010000000000000001", 4),
            radix_to_f64(b"200000000000020000000000000000", 4)
        );
        let n = u64::from_str_radix("1fffffffffffff1", 16).unwrap_or_default();
        assert_eq!(radix_to_f64(b"1fffffffffffff1", 4), n as f64);
        assert_eq!(radix_to_f64(&[b'f'; 300], 4), f64::INFINITY);
        assert_eq!(
            radix_to_f64(&[b'f'; 256], 4),
            f64::INFINITY,
            "2^1024 - 1 rounds up past f64::MAX"
        );
        let max_hex = format!("1{}", "f".repeat(255));
        assert!(radix_to_f64(max_hex.as_bytes(), 4).is_finite());
    }

    proptest::proptest! {
        #[test]
        fn radix_matches_exact_u64_conversion(n in proptest::num::u64::ANY) {
            let hex = format!("{n:x}");
            let oct = format!("{n:o}");
            let bin = format!("{n:b}");
            let want = n as f64; // Rust's u64 → f64 rounds to nearest even.
            proptest::prop_assert_eq!(radix_to_f64(hex.as_bytes(), 4), want);
            proptest::prop_assert_eq!(radix_to_f64(oct.as_bytes(), 3), want);
            proptest::prop_assert_eq!(radix_to_f64(bin.as_bytes(), 1), want);
        }

        #[test]
        fn text_reads_back_to_the_same_number(bits in proptest::num::u64::ANY) {
            let v = f64::from_bits(bits);
            proptest::prop_assume!(v.is_finite());
            let text = js(v);
            let back: f64 = text.parse().map_err(|e| proptest::test_runner::TestCaseError::fail(format!("{text}: {e}")))?;
            proptest::prop_assert_eq!(back, v, "{}", text);
        }
    }
}
