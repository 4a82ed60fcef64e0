//! Numbers written the way JavaScript writes them (`Number.prototype.toString`, which
//! `JSON.stringify` and JSTP's serializer both use), so that our bytes equal Node's.
//!
//! Shortest round-trip digits; plain notation for exponents from -7 to 20, exponent notation
//! with an explicit sign outside that (`1e+21`, `1.5e-7`); no `.0` on integers; `-0` is `0`.
//!
//! ```
//! use connkit_core::jsnum::format_js_number;
//! assert_eq!(format_js_number(3.0).as_deref(), Some("3"));
//! assert_eq!(format_js_number(1e21).as_deref(), Some("1e+21"));
//! assert_eq!(format_js_number(0.000001).as_deref(), Some("0.000001"));
//! assert_eq!(format_js_number(1.5e-7).as_deref(), Some("1.5e-7"));
//! assert_eq!(format_js_number(f64::NAN), None);
//! ```

/// Append `v` as JavaScript would write it. Returns `false` (writing nothing) for NaN and
/// ±Infinity, which have no JSON or JSTP form.
pub fn write_js_number(v: f64, out: &mut Vec<u8>) -> bool {
    if !v.is_finite() {
        return false;
    }
    if v == 0.0 {
        out.push(b'0');
        return true;
    }
    // Fast path: integers below 2^53 print all their digits, exactly.
    if v.fract() == 0.0 && v.abs() < 9_007_199_254_740_992.0 {
        #[allow(
            clippy::cast_possible_truncation,
            reason = "checked to be an integer below 2^53"
        )]
        let i = v as i64;
        out.extend_from_slice(i.to_string().as_bytes());
        return true;
    }
    let mut buf = ryu::Buffer::new();
    let s = buf.format_finite(v.abs());
    let (mant, exp) = match s.split_once('e') {
        Some((m, e)) => (m, e.parse::<i32>().unwrap_or(0)),
        None => (s, 0),
    };
    let (int, frac) = mant.split_once('.').unwrap_or((mant, ""));
    let mut digits: Vec<u8> = int.bytes().chain(frac.bytes()).collect();
    // Decimal point position relative to the digit string: value = 0.d1d2… × 10^n.
    let mut n = i32::try_from(int.len()).unwrap_or(i32::MAX) + exp;
    let lead = digits.iter().take_while(|&&d| d == b'0').count();
    digits.drain(..lead);
    n -= i32::try_from(lead).unwrap_or(0);
    while digits.last() == Some(&b'0') {
        digits.pop();
    }
    let k = i32::try_from(digits.len()).unwrap_or(i32::MAX);
    if v < 0.0 {
        out.push(b'-');
    }
    if k <= n && n <= 21 {
        out.extend_from_slice(&digits);
        out.extend(std::iter::repeat_n(
            b'0',
            usize::try_from(n - k).unwrap_or(0),
        ));
    } else if 0 < n && n <= 21 {
        let n = usize::try_from(n).unwrap_or(0);
        out.extend_from_slice(&digits[..n]);
        out.push(b'.');
        out.extend_from_slice(&digits[n..]);
    } else if -6 < n && n <= 0 {
        out.extend_from_slice(b"0.");
        out.extend(std::iter::repeat_n(b'0', usize::try_from(-n).unwrap_or(0)));
        out.extend_from_slice(&digits);
    } else {
        let e = n - 1;
        out.push(digits[0]);
        if digits.len() > 1 {
            out.push(b'.');
            out.extend_from_slice(&digits[1..]);
        }
        out.push(b'e');
        out.push(if e < 0 { b'-' } else { b'+' });
        out.extend_from_slice(e.unsigned_abs().to_string().as_bytes());
    }
    true
}

/// `v` as JavaScript would write it, or `None` for NaN and ±Infinity.
#[must_use]
pub fn format_js_number(v: f64) -> Option<String> {
    let mut out = Vec::with_capacity(24);
    if write_js_number(v, &mut out) {
        String::from_utf8(out).ok()
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::format_js_number as f;

    #[test]
    fn matches_javascript() {
        // Each expectation is what `String(x)` prints in Node 20.
        let cases: &[(f64, &str)] = &[
            (0.0, "0"),
            (-0.0, "0"),
            (1.0, "1"),
            (-1.0, "-1"),
            (3.0, "3"),
            (0.1, "0.1"),
            (0.5, "0.5"),
            (-2.5, "-2.5"),
            (1.0 / 3.0, "0.3333333333333333"),
            (123.456, "123.456"),
            (1e20, "100000000000000000000"),
            (1e21, "1e+21"),
            (1.5e21, "1.5e+21"),
            (123456789012345680000.0, "123456789012345680000"),
            (0.000001, "0.000001"),
            (0.0000012, "0.0000012"),
            (1e-7, "1e-7"),
            (1.5e-7, "1.5e-7"),
            (-1.5e-7, "-1.5e-7"),
            (9007199254740992.0, "9007199254740992"),
            (9007199254740993.0, "9007199254740992"),
            (1.7976931348623157e308, "1.7976931348623157e+308"),
            (5e-324, "5e-324"),
            (2f64.powi(60), "1152921504606847000"),
            (9007199254740991.0, "9007199254740991"),
            (0.1 + 0.2, "0.30000000000000004"),
            (100.0, "100"),
            (1e6, "1000000"),
            (12.0e-3, "0.012"),
        ];
        for &(v, want) in cases {
            assert_eq!(f(v).as_deref(), Some(want), "{v:e}");
        }
        assert_eq!(f(f64::NAN), None);
        assert_eq!(f(f64::INFINITY), None);
        assert_eq!(f(f64::NEG_INFINITY), None);
    }

    proptest::proptest! {
        #[test]
        fn round_trips_through_rust_parsing(v in proptest::num::f64::NORMAL | proptest::num::f64::SUBNORMAL) {
            let s = f(v).unwrap();
            let back: f64 = s.parse().unwrap();
            proptest::prop_assert_eq!(back, if v == 0.0 { 0.0 } else { v }, "{}", s);
        }
    }
}
