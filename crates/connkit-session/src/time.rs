//! [`Timestamp`]: the `time` of a backend state, as an ISO-8601 string (Jamsocket) or as
//! integer milliseconds since the Unix epoch (Plane).

use serde::de::{self, Deserializer, Visitor};
use serde::{Deserialize, Serialize, Serializer};
use std::fmt;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// When a backend entered a state.
///
/// Jamsocket-style servers send an ISO-8601 string (`"2024-11-04T12:00:00.000Z"`), Plane
/// sends integer milliseconds since the Unix epoch (`1730721600000`). Both are accepted and
/// each is written back in the form it came in, so a state round-trips unchanged.
/// [`epoch_millis`](Self::epoch_millis) reads either as a number.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Timestamp {
    /// Milliseconds since the Unix epoch (Plane's form).
    EpochMillis(i64),
    /// A string, normally RFC 3339 / ISO-8601 (Jamsocket's form). Kept as received.
    Text(String),
}

impl Timestamp {
    /// The current time, as epoch milliseconds.
    #[must_use]
    pub fn now_millis() -> Self {
        Self::EpochMillis(system_time_millis(SystemTime::now()))
    }

    /// The current time, as an ISO-8601 string in UTC with milliseconds.
    #[must_use]
    pub fn now_iso() -> Self {
        Self::Text(format_iso_millis(system_time_millis(SystemTime::now())))
    }

    /// Milliseconds since the Unix epoch, or `None` for a string that is not an RFC 3339
    /// date-time.
    #[must_use]
    pub fn epoch_millis(&self) -> Option<i64> {
        match self {
            Self::EpochMillis(ms) => Some(*ms),
            Self::Text(s) => parse_iso_millis(s),
        }
    }

    /// The same instant as an ISO-8601 string (unchanged if it already is text).
    #[must_use]
    pub fn to_iso(&self) -> Self {
        match self {
            Self::EpochMillis(ms) => Self::Text(format_iso_millis(*ms)),
            Self::Text(_) => self.clone(),
        }
    }

    /// The same instant as epoch milliseconds; text that does not parse is kept as text.
    #[must_use]
    pub fn to_epoch_millis(&self) -> Self {
        match self.epoch_millis() {
            Some(ms) => Self::EpochMillis(ms),
            None => self.clone(),
        }
    }

    /// The instant as a [`SystemTime`], when it can be read.
    #[must_use]
    pub fn to_system_time(&self) -> Option<SystemTime> {
        let ms = self.epoch_millis()?;
        if ms >= 0 {
            UNIX_EPOCH.checked_add(Duration::from_millis(ms.unsigned_abs()))
        } else {
            UNIX_EPOCH.checked_sub(Duration::from_millis(ms.unsigned_abs()))
        }
    }
}

impl fmt::Display for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::EpochMillis(ms) => f.write_str(&format_iso_millis(*ms)),
            Self::Text(s) => f.write_str(s),
        }
    }
}

impl Serialize for Timestamp {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            Self::EpochMillis(ms) => s.serialize_i64(*ms),
            Self::Text(t) => s.serialize_str(t),
        }
    }
}

impl<'de> Deserialize<'de> for Timestamp {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = Timestamp;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("an ISO-8601 string or integer milliseconds since the epoch")
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<Timestamp, E> {
                Ok(Timestamp::EpochMillis(v))
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Timestamp, E> {
                i64::try_from(v)
                    .map(Timestamp::EpochMillis)
                    .map_err(|_| E::custom("epoch milliseconds out of range"))
            }
            fn visit_f64<E: de::Error>(self, v: f64) -> Result<Timestamp, E> {
                // Whole numbers written as floats (1.7e12) are tolerated.
                if v.is_finite() && v.fract() == 0.0 && v.abs() < 9.0e15 {
                    #[allow(clippy::cast_possible_truncation)]
                    Ok(Timestamp::EpochMillis(v as i64))
                } else {
                    Err(E::custom("epoch milliseconds must be a whole number"))
                }
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Timestamp, E> {
                Ok(Timestamp::Text(v.to_owned()))
            }
            fn visit_string<E: de::Error>(self, v: String) -> Result<Timestamp, E> {
                Ok(Timestamp::Text(v))
            }
        }
        d.deserialize_any(V)
    }
}

fn system_time_millis(t: SystemTime) -> i64 {
    match t.duration_since(UNIX_EPOCH) {
        Ok(d) => i64::try_from(d.as_millis()).unwrap_or(i64::MAX),
        Err(e) => i64::try_from(e.duration().as_millis()).map_or(i64::MIN, |m| -m),
    }
}

/// Days since 1970-01-01 of a proleptic Gregorian date (Hinnant's civil algorithm).
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// The date of a day number (inverse of [`days_from_civil`]).
fn civil_from_days(z: i64) -> (i64, i64, i64) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

/// `YYYY-MM-DDTHH:MM:SS.mmmZ`, as JavaScript's `Date.prototype.toISOString` writes it.
pub(crate) fn format_iso_millis(ms: i64) -> String {
    let days = ms.div_euclid(86_400_000);
    let rem = ms.rem_euclid(86_400_000);
    let (y, m, d) = civil_from_days(days);
    let (h, rem) = (rem / 3_600_000, rem % 3_600_000);
    let (min, rem) = (rem / 60_000, rem % 60_000);
    let (s, milli) = (rem / 1000, rem % 1000);
    format!("{y:04}-{m:02}-{d:02}T{h:02}:{min:02}:{s:02}.{milli:03}Z")
}

/// Parse an RFC 3339 date-time (`2024-11-04T12:00:00Z`, fractional seconds and numeric
/// offsets allowed, `t`/`z`/space accepted) into epoch milliseconds.
pub(crate) fn parse_iso_millis(s: &str) -> Option<i64> {
    let b = s.trim().as_bytes();
    let num = |r: std::ops::Range<usize>| -> Option<i64> {
        let part = b.get(r)?;
        if part.is_empty() || !part.iter().all(u8::is_ascii_digit) {
            return None;
        }
        std::str::from_utf8(part).ok()?.parse().ok()
    };
    let y = num(0..4)?;
    let m = num(5..7)?;
    let d = num(8..10)?;
    if b.get(4) != Some(&b'-') || b.get(7) != Some(&b'-') {
        return None;
    }
    if !matches!(b.get(10), Some(b'T' | b't' | b' ')) {
        return None;
    }
    let h = num(11..13)?;
    let mi = num(14..16)?;
    let sec = num(17..19)?;
    if b.get(13) != Some(&b':') || b.get(16) != Some(&b':') {
        return None;
    }
    if !(1..=12).contains(&m) || !(1..=31).contains(&d) || h > 23 || mi > 59 || sec > 60 {
        return None;
    }
    let mut i = 19;
    let mut millis = 0i64;
    if b.get(i) == Some(&b'.') {
        i += 1;
        let start = i;
        while b.get(i).is_some_and(u8::is_ascii_digit) {
            if i - start < 3 {
                millis = millis * 10 + i64::from(b[i] - b'0');
            }
            i += 1;
        }
        if i == start {
            return None;
        }
        for _ in (i - start)..3 {
            millis *= 10;
        }
    }
    let offset_min = match b.get(i) {
        Some(b'Z' | b'z') if i + 1 == b.len() => 0,
        Some(sign @ (b'+' | b'-')) if i + 6 == b.len() && b.get(i + 3) == Some(&b':') => {
            let oh = num(i + 1..i + 3)?;
            let om = num(i + 4..i + 6)?;
            let o = oh * 60 + om;
            if *sign == b'-' { -o } else { o }
        }
        _ => return None,
    };
    let days = days_from_civil(y, m, d);
    let secs = days * 86_400 + h * 3600 + mi * 60 + sec - offset_min * 60;
    Some(secs * 1000 + millis)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn iso_examples() {
        assert_eq!(parse_iso_millis("1970-01-01T00:00:00Z"), Some(0));
        assert_eq!(parse_iso_millis("1970-01-01T00:00:00.5Z"), Some(500));
        assert_eq!(
            parse_iso_millis("2024-11-04T12:00:00.123+01:00"),
            Some(1_730_718_000_123)
        );
        assert_eq!(
            format_iso_millis(1_730_721_600_123),
            "2024-11-04T12:00:00.123Z"
        );
        assert_eq!(format_iso_millis(-1), "1969-12-31T23:59:59.999Z");
        for bad in [
            "",
            "2024-11-04",
            "2024-13-01T00:00:00Z",
            "2024-11-04T00:00:00",
            "x",
            "2024-11-04T00:00:00.Z",
        ] {
            assert_eq!(parse_iso_millis(bad), None, "{bad}");
        }
    }

    #[test]
    fn both_forms_deserialize_and_round_trip() {
        let t: Timestamp = serde_json::from_str("1795295454629").unwrap();
        assert_eq!(t, Timestamp::EpochMillis(1_795_295_454_629));
        assert_eq!(serde_json::to_string(&t).unwrap(), "1795295454629");
        let s: Timestamp = serde_json::from_str("\"2026-11-21T21:10:54.629Z\"").unwrap();
        assert_eq!(s.epoch_millis(), Some(1_795_295_454_629));
        assert_eq!(
            serde_json::to_string(&s).unwrap(),
            "\"2026-11-21T21:10:54.629Z\""
        );
        assert_eq!(t.to_iso(), s);
        assert!(serde_json::from_str::<Timestamp>("true").is_err());
        assert!(serde_json::from_str::<Timestamp>("1.5").is_err());
    }

    proptest! {
        #[test]
        fn format_then_parse_is_identity(ms in -62_135_596_800_000i64..253_402_300_799_999i64) {
            prop_assert_eq!(parse_iso_millis(&format_iso_millis(ms)), Some(ms));
        }

        #[test]
        fn parse_never_panics(s in "\\PC{0,40}") {
            let _ = parse_iso_millis(&s);
        }
    }
}
