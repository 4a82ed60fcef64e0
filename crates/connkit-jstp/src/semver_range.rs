//! Version ranges as node-semver 6 reads them (spec §8), for choosing an application version
//! in the handshake.
//!
//! The Rust `semver` crate's requirement syntax is not node-semver's: it has no
//! space-separated AND, no `||`, no hyphen ranges, and reads a bare `1.2.3` as `^1.2.3`. This
//! module implements node-semver's grammar and matching (without its `loose` and
//! `includePrerelease` options, which JSTP never sets):
//!
//! | range | means |
//! |---|---|
//! | `1.2.3`, `=1.2.3`, `v1.2.3` | exactly 1.2.3 |
//! | `^1.2.3` / `^0.2.3` / `^0.0.3` | `>=1.2.3 <2.0.0` / `>=0.2.3 <0.3.0` / `>=0.0.3 <0.0.4` |
//! | `~1.2.3`, `~>1.2.3` / `~1.2` / `~1` | `>=1.2.3 <1.3.0` / `>=1.2.0 <1.3.0` / `>=1.0.0 <2.0.0` |
//! | `1`, `1.x`, `1.*` / `1.2`, `1.2.x` | `>=1.0.0 <2.0.0` / `>=1.2.0 <1.3.0` |
//! | `*`, `x`, `""` | any version |
//! | `>1.2.3`, `>=1.2`, `<2`, `<=1.2.x` | comparators (an `x` part rounds as node-semver does: `<=1.2.x` is `<1.3.0`) |
//! | `>=1.0.0 <2.0.0` | both (space-separated AND) |
//! | `1.x \|\| >=3.0.0` | either |
//! | `1.2.3 - 2.3` | `>=1.2.3 <2.4.0` |
//!
//! **Pre-releases** satisfy a range only if one comparator of the same alternative names a
//! pre-release of the same `major.minor.patch` (`^1.2.3-beta.1` matches `1.2.3-beta.2` and
//! `1.2.4` but not `1.2.4-alpha`); `*` matches no pre-release. Build metadata is ignored.
//!
//! ```
//! use connkit_jstp::semver_range::{Range, is_exact};
//! use semver::Version;
//!
//! let r: Range = ">=1.0.0 <2.0.0 || ^3.1".parse()?;
//! assert!(r.matches(&Version::new(1, 5, 0)));
//! assert!(r.matches(&Version::new(3, 9, 9)));
//! assert!(!r.matches(&Version::new(2, 0, 0)));
//! assert!(!r.matches(&Version::parse("1.5.0-rc.1")?));
//! assert!("1.2.3.4".parse::<Range>().is_err());
//! assert!(is_exact("1.0.0") && is_exact("v1.0.0") && !is_exact("^1.0.0"));
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

use std::cmp::Ordering;
use std::fmt;
use std::str::FromStr;

/// node-semver's `MAX_SAFE_INTEGER` bound on version numbers.
const MAX_SAFE: u64 = 9_007_199_254_740_991;
/// node-semver's `MAX_LENGTH` for a version string.
const MAX_LENGTH: usize = 256;

/// A range that node-semver cannot parse.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid semver range `{input}`")]
pub struct RangeError {
    input: String,
}

impl RangeError {
    /// The text given.
    #[must_use]
    pub fn input(&self) -> &str {
        &self.input
    }
}

/// A pre-release identifier: numeric ones compare as numbers and sort first.
#[derive(Debug, Clone, PartialEq, Eq)]
enum PreId {
    Num(u64),
    Alpha(String),
}

impl PartialOrd for PreId {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for PreId {
    fn cmp(&self, other: &Self) -> Ordering {
        match (self, other) {
            (PreId::Num(a), PreId::Num(b)) => a.cmp(b),
            (PreId::Num(_), PreId::Alpha(_)) => Ordering::Less,
            (PreId::Alpha(_), PreId::Num(_)) => Ordering::Greater,
            (PreId::Alpha(a), PreId::Alpha(b)) => a.cmp(b),
        }
    }
}

/// A full version for comparing: `major.minor.patch` and the pre-release (build ignored).
#[derive(Debug, Clone, PartialEq, Eq)]
struct Ver {
    major: u64,
    minor: u64,
    patch: u64,
    pre: Vec<PreId>,
}

impl Ver {
    fn new(major: u64, minor: u64, patch: u64) -> Self {
        Self {
            major,
            minor,
            patch,
            pre: Vec::new(),
        }
    }

    fn with_pre(mut self, pre: &[PreId]) -> Self {
        self.pre = pre.to_vec();
        self
    }

    fn from_semver(v: &semver::Version) -> Self {
        let pre = if v.pre.is_empty() {
            Vec::new()
        } else {
            v.pre.as_str().split('.').map(pre_id).collect()
        };
        Self {
            major: v.major,
            minor: v.minor,
            patch: v.patch,
            pre,
        }
    }

    fn same_triple(&self, other: &Ver) -> bool {
        (self.major, self.minor, self.patch) == (other.major, other.minor, other.patch)
    }

    fn check(self) -> Result<Self, ()> {
        if self.major > MAX_SAFE || self.minor > MAX_SAFE || self.patch > MAX_SAFE {
            Err(())
        } else {
            Ok(self)
        }
    }
}

impl PartialOrd for Ver {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Ver {
    fn cmp(&self, other: &Self) -> Ordering {
        (self.major, self.minor, self.patch)
            .cmp(&(other.major, other.minor, other.patch))
            .then_with(|| match (self.pre.is_empty(), other.pre.is_empty()) {
                (true, true) => Ordering::Equal,
                (true, false) => Ordering::Greater,
                (false, true) => Ordering::Less,
                (false, false) => self.pre.cmp(&other.pre),
            })
    }
}

fn pre_id(s: &str) -> PreId {
    if !s.is_empty()
        && s.bytes().all(|b| b.is_ascii_digit())
        && let Ok(n) = s.parse::<u64>()
        && n < MAX_SAFE
    {
        return PreId::Num(n);
    }
    PreId::Alpha(s.to_owned())
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Op {
    Eq,
    Lt,
    Le,
    Gt,
    Ge,
}

/// One comparator; `None` is node-semver's `ANY` (the empty comparator).
#[derive(Debug, Clone, PartialEq)]
struct Comparator {
    op: Op,
    version: Option<Ver>,
}

impl Comparator {
    fn any() -> Self {
        Self {
            op: Op::Eq,
            version: None,
        }
    }

    fn new(op: Op, version: Ver) -> Result<Self, ()> {
        Ok(Self {
            op,
            version: Some(version.check()?),
        })
    }

    fn test(&self, v: &Ver) -> bool {
        let Some(c) = &self.version else {
            return true;
        };
        let ord = v.cmp(c);
        match self.op {
            Op::Eq => ord == Ordering::Equal,
            Op::Lt => ord == Ordering::Less,
            Op::Le => ord != Ordering::Greater,
            Op::Gt => ord == Ordering::Greater,
            Op::Ge => ord != Ordering::Less,
        }
    }
}

/// One version part of a partial version: a number, or `x`/`X`/`*`/missing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Part {
    Num(u64),
    X,
}

impl Part {
    fn is_x(self) -> bool {
        self == Part::X
    }

    fn n(self) -> u64 {
        match self {
            Part::Num(n) => n,
            Part::X => 0,
        }
    }
}

/// node-semver's `XRANGEPLAIN`: `[v=\s]*` then up to three parts, then (after three parts)
/// an optional pre-release and build.
#[derive(Debug, Clone)]
struct Partial {
    /// The `[v=]*` prefix was empty or exactly `v` (what a plain comparator accepts).
    plain_prefix: bool,
    major: Part,
    minor: Part,
    patch: Part,
    pre: Vec<PreId>,
}

impl Partial {
    fn any_x(&self) -> bool {
        self.major.is_x() || self.minor.is_x() || self.patch.is_x()
    }

    fn full(&self) -> Ver {
        Ver::new(self.major.n(), self.minor.n(), self.patch.n()).with_pre(&self.pre)
    }
}

/// `0|[1-9]\d*` as a number (no leading zeros), within `MAX_SAFE`.
fn numeric(s: &str) -> Option<u64> {
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) || (s.len() > 1 && s.starts_with('0'))
    {
        return None;
    }
    s.parse::<u64>().ok().filter(|n| *n <= MAX_SAFE)
}

fn xpart(s: &str) -> Option<Part> {
    match s {
        "x" | "X" | "*" => Some(Part::X),
        _ => numeric(s).map(Part::Num),
    }
}

/// A pre-release identifier: numeric without leading zeros, or `[0-9A-Za-z-]+` with a
/// non-digit.
fn valid_pre_id(s: &str) -> bool {
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-') {
        return false;
    }
    if s.bytes().all(|b| b.is_ascii_digit()) {
        return s == "0" || !s.starts_with('0');
    }
    true
}

fn valid_build_id(s: &str) -> bool {
    !s.is_empty() && s.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
}

/// Split `1.2.3-pre+build` into the dotted part, the pre-release and the build.
fn split_pre_build(s: &str) -> Option<(&str, Option<&str>, Option<&str>)> {
    let (rest, build) = match s.split_once('+') {
        Some((r, b)) => (r, Some(b)),
        None => (s, None),
    };
    let (main, pre) = match rest.split_once('-') {
        Some((m, p)) => (m, Some(p)),
        None => (rest, None),
    };
    if let Some(p) = pre
        && !p.split('.').all(valid_pre_id)
    {
        return None;
    }
    if let Some(b) = build
        && !b.split('.').all(valid_build_id)
    {
        return None;
    }
    Some((main, pre, build))
}

fn parse_partial(s: &str) -> Option<Partial> {
    let body = s.trim_start_matches(['v', '=']);
    let prefix = &s[..s.len() - body.len()];
    let plain_prefix = prefix.is_empty() || prefix == "v";
    let (main, pre, build) = split_pre_build(body)?;
    let parts: Vec<&str> = main.split('.').collect();
    if parts.is_empty() || parts.len() > 3 {
        return None;
    }
    // A pre-release or build needs all three parts.
    if (pre.is_some() || build.is_some()) && parts.len() != 3 {
        return None;
    }
    let major = xpart(parts[0])?;
    let minor = match parts.get(1) {
        Some(p) => xpart(p)?,
        None => Part::X,
    };
    let patch = match parts.get(2) {
        Some(p) => xpart(p)?,
        None => Part::X,
    };
    Some(Partial {
        plain_prefix,
        major,
        minor,
        patch,
        pre: pre
            .map(|p| p.split('.').map(pre_id).collect())
            .unwrap_or_default(),
    })
}

/// Parse an exact version as `semver.valid` does (`v?` prefix allowed, no whitespace, no
/// `x` parts).
fn parse_exact(s: &str) -> Option<Ver> {
    if s.len() > MAX_LENGTH {
        return None;
    }
    let body = s.strip_prefix('v').unwrap_or(s);
    let (main, pre, _) = split_pre_build(body)?;
    let mut parts = main.split('.');
    let (Some(a), Some(b), Some(c), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return None;
    };
    Some(
        Ver::new(numeric(a)?, numeric(b)?, numeric(c)?).with_pre(
            &pre.map(|p| p.split('.').map(pre_id).collect::<Vec<_>>())
                .unwrap_or_default(),
        ),
    )
}

/// Whether `s` is an exact version to node-semver (`semver.valid(s)` is not null):
/// `1.0.0`, `v1.0.0`, `1.0.0-rc.1+build`. The JSTP server looks such a request up as an
/// exact key, so `v1.0.0` finds nothing (spec §8).
#[must_use]
pub fn is_exact(s: &str) -> bool {
    parse_exact(s).is_some()
}

/// Whether `c` is whitespace to JavaScript's `\s`.
fn js_space(c: char) -> bool {
    matches!(
        c,
        '\t' | '\n' | '\u{b}' | '\u{c}' | '\r' | ' ' | '\u{a0}' | '\u{1680}' | '\u{2000}'
            ..='\u{200a}'
                | '\u{2028}'
                | '\u{2029}'
                | '\u{202f}'
                | '\u{205f}'
                | '\u{3000}'
                | '\u{feff}'
    )
}

/// A node-semver range: alternatives (`||`) of comparator sets (space-separated AND).
#[derive(Debug, Clone, PartialEq)]
pub struct Range {
    raw: String,
    sets: Vec<Vec<Comparator>>,
}

impl Range {
    /// Parse a range as `new semver.Range(text)` does.
    ///
    /// # Errors
    /// [`RangeError`] when node-semver would throw "Invalid SemVer Range" or "Invalid
    /// comparator" (so `semver.validRange` would return null).
    pub fn parse(text: &str) -> Result<Range, RangeError> {
        let err = || RangeError {
            input: text.to_owned(),
        };
        let raw = text
            .split(js_space)
            .filter(|s| !s.is_empty())
            .collect::<Vec<_>>()
            .join(" ");
        let mut sets = Vec::new();
        for alternative in raw.split("||") {
            sets.push(parse_set(alternative.trim_matches(js_space)).map_err(|()| err())?);
        }
        Ok(Range { raw, sets })
    }

    /// Whether `version` satisfies the range (node-semver's `Range#test`).
    #[must_use]
    pub fn matches(&self, version: &semver::Version) -> bool {
        let v = Ver::from_semver(version);
        self.sets.iter().any(|set| test_set(set, &v))
    }

    /// The range as given, with runs of whitespace collapsed.
    #[must_use]
    pub fn as_str(&self) -> &str {
        &self.raw
    }
}

impl FromStr for Range {
    type Err = RangeError;

    fn from_str(s: &str) -> Result<Self, RangeError> {
        Range::parse(s)
    }
}

impl fmt::Display for Range {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.raw)
    }
}

fn test_set(set: &[Comparator], v: &Ver) -> bool {
    if !set.iter().all(|c| c.test(v)) {
        return false;
    }
    if v.pre.is_empty() {
        return true;
    }
    // A pre-release passes only if a comparator of this set names a pre-release of the same
    // major.minor.patch.
    set.iter().any(|c| {
        c.version
            .as_ref()
            .is_some_and(|a| !a.pre.is_empty() && a.same_triple(v))
    })
}

/// One alternative: a hyphen range, or space-separated comparators.
fn parse_set(set: &str) -> Result<Vec<Comparator>, ()> {
    let tokens: Vec<&str> = set.split(js_space).filter(|t| !t.is_empty()).collect();
    if let [from, "-", to] = tokens[..]
        && let (Some(f), Some(t)) = (parse_partial(from), parse_partial(to))
    {
        return hyphen(&f, &t);
    }
    // `> 1.2.3`, `~ 1.2`, `^ 1.2.3`: an operator alone joins the next token.
    let mut merged: Vec<String> = Vec::with_capacity(tokens.len());
    let mut i = 0;
    while i < tokens.len() {
        let t = tokens[i];
        if matches!(t, "<" | "<=" | ">" | ">=" | "=" | "~" | "~>" | "^") && i + 1 < tokens.len() {
            merged.push(format!("{t}{}", tokens[i + 1]));
            i += 2;
        } else {
            merged.push(t.to_owned());
            i += 1;
        }
    }
    if merged.is_empty() {
        return Ok(vec![Comparator::any()]);
    }
    let mut out = Vec::new();
    for token in &merged {
        out.extend(parse_token(token)?);
    }
    Ok(out)
}

fn hyphen(from: &Partial, to: &Partial) -> Result<Vec<Comparator>, ()> {
    let mut out = Vec::new();
    if from.major.is_x() {
        out.push(Comparator::any());
    } else if from.minor.is_x() {
        out.push(Comparator::new(Op::Ge, Ver::new(from.major.n(), 0, 0))?);
    } else if from.patch.is_x() {
        out.push(Comparator::new(
            Op::Ge,
            Ver::new(from.major.n(), from.minor.n(), 0),
        )?);
    } else if from.plain_prefix {
        out.push(Comparator::new(Op::Ge, from.full())?);
    } else {
        return Err(());
    }
    if to.major.is_x() {
        out.push(Comparator::any());
    } else if to.minor.is_x() {
        out.push(Comparator::new(Op::Lt, Ver::new(to.major.n() + 1, 0, 0))?);
    } else if to.patch.is_x() {
        out.push(Comparator::new(
            Op::Lt,
            Ver::new(to.major.n(), to.minor.n() + 1, 0),
        )?);
    } else if !to.pre.is_empty() || to.plain_prefix {
        out.push(Comparator::new(Op::Le, to.full())?);
    } else {
        return Err(());
    }
    Ok(out)
}

fn parse_token(token: &str) -> Result<Vec<Comparator>, ()> {
    if let Some(rest) = token.strip_prefix('^') {
        return caret(&parse_partial(rest).ok_or(())?);
    }
    if let Some(rest) = token.strip_prefix("~>").or_else(|| token.strip_prefix('~')) {
        return tilde(&parse_partial(rest).ok_or(())?);
    }
    let (op, rest) = if let Some(r) = token.strip_prefix("<=") {
        (Some(Op::Le), r)
    } else if let Some(r) = token.strip_prefix(">=") {
        (Some(Op::Ge), r)
    } else if let Some(r) = token.strip_prefix('<') {
        (Some(Op::Lt), r)
    } else if let Some(r) = token.strip_prefix('>') {
        (Some(Op::Gt), r)
    } else if let Some(r) = token.strip_prefix('=') {
        (Some(Op::Eq), r)
    } else {
        (None, token)
    };
    let p = parse_partial(rest).ok_or(())?;
    if p.any_x() {
        return xrange(op, &p);
    }
    if !p.plain_prefix {
        return Err(());
    }
    Ok(vec![Comparator::new(op.unwrap_or(Op::Eq), p.full())?])
}

fn two(lo: Ver, hi: Ver) -> Result<Vec<Comparator>, ()> {
    Ok(vec![
        Comparator::new(Op::Ge, lo)?,
        Comparator::new(Op::Lt, hi)?,
    ])
}

fn tilde(p: &Partial) -> Result<Vec<Comparator>, ()> {
    let (ma, mi, pa) = (p.major.n(), p.minor.n(), p.patch.n());
    if p.major.is_x() {
        Ok(vec![Comparator::any()])
    } else if p.minor.is_x() {
        two(Ver::new(ma, 0, 0), Ver::new(ma + 1, 0, 0))
    } else if p.patch.is_x() {
        two(Ver::new(ma, mi, 0), Ver::new(ma, mi + 1, 0))
    } else {
        two(
            Ver::new(ma, mi, pa).with_pre(&p.pre),
            Ver::new(ma, mi + 1, 0),
        )
    }
}

fn caret(p: &Partial) -> Result<Vec<Comparator>, ()> {
    let (ma, mi, pa) = (p.major.n(), p.minor.n(), p.patch.n());
    if p.major.is_x() {
        Ok(vec![Comparator::any()])
    } else if p.minor.is_x() {
        two(Ver::new(ma, 0, 0), Ver::new(ma + 1, 0, 0))
    } else if p.patch.is_x() {
        if ma == 0 {
            two(Ver::new(ma, mi, 0), Ver::new(ma, mi + 1, 0))
        } else {
            two(Ver::new(ma, mi, 0), Ver::new(ma + 1, 0, 0))
        }
    } else {
        let lo = Ver::new(ma, mi, pa).with_pre(&p.pre);
        let hi = match (ma, mi) {
            (0, 0) => Ver::new(0, 0, pa + 1),
            (0, _) => Ver::new(0, mi + 1, 0),
            _ => Ver::new(ma + 1, 0, 0),
        };
        two(lo, hi)
    }
}

/// node-semver's `replaceXRange` (plus `replaceStars`) for a partial with an `x` part.
fn xrange(op: Option<Op>, p: &Partial) -> Result<Vec<Comparator>, ()> {
    let op = match op {
        Some(Op::Eq) => None,
        other => other,
    };
    let xm = p.major.is_x() || p.minor.is_x();
    let (mut ma, mut mi) = (p.major.n(), p.minor.n());
    if p.major.is_x() {
        return Ok(match op {
            Some(Op::Gt | Op::Lt) => {
                // Nothing is allowed: `<0.0.0-0`.
                vec![Comparator::new(
                    Op::Lt,
                    Ver::new(0, 0, 0).with_pre(&[PreId::Num(0)]),
                )?]
            }
            _ => vec![Comparator::any()],
        });
    }
    match op {
        Some(op) => {
            if xm {
                mi = 0;
            }
            let op = match op {
                Op::Gt => {
                    if xm {
                        ma += 1;
                        mi = 0;
                    } else {
                        mi += 1;
                    }
                    Op::Ge
                }
                Op::Le => {
                    if xm {
                        ma += 1;
                    } else {
                        mi += 1;
                    }
                    Op::Lt
                }
                other => other,
            };
            Ok(vec![Comparator::new(op, Ver::new(ma, mi, 0))?])
        }
        None if xm => two(Ver::new(ma, 0, 0), Ver::new(ma + 1, 0, 0)),
        None => two(Ver::new(ma, mi, 0), Ver::new(ma, mi + 1, 0)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(s: &str) -> semver::Version {
        semver::Version::parse(s).unwrap()
    }

    fn sat(range: &str, version: &str) -> bool {
        Range::parse(range)
            .unwrap_or_else(|e| panic!("{e}"))
            .matches(&v(version))
    }

    #[track_caller]
    fn yes(range: &str, versions: &[&str]) {
        for ver in versions {
            assert!(sat(range, ver), "{range} should match {ver}");
        }
    }

    #[track_caller]
    fn no(range: &str, versions: &[&str]) {
        for ver in versions {
            assert!(!sat(range, ver), "{range} should not match {ver}");
        }
    }

    #[test]
    fn spec_examples() {
        // §8: `'1'` gives 1.0.0, `'^2.0.0'` gives 2.0.0, `'^3.0.0'` finds nothing.
        yes("1", &["1.0.0"]);
        no("1", &["2.0.0"]);
        yes("^2.0.0", &["2.0.0"]);
        no("^2.0.0", &["1.0.0"]);
        no("^3.0.0", &["1.0.0", "2.0.0"]);
        yes("^1.0.0", &["1.0.0"]);
        no("^1.0.0", &["2.0.0"]);
    }

    #[test]
    fn exact() {
        yes("1.2.3", &["1.2.3", "1.2.3+build.7"]);
        no("1.2.3", &["1.2.4", "1.2.2", "1.2.3-rc.1"]);
        yes("=1.2.3", &["1.2.3"]);
        yes("v1.2.3", &["1.2.3"]);
        yes("=v1.2.3", &["1.2.3"]);
        yes("1.2.3-rc.1", &["1.2.3-rc.1"]);
        no("1.2.3-rc.1", &["1.2.3-rc.2", "1.2.3"]);
    }

    #[test]
    fn is_exact_follows_semver_valid() {
        for s in [
            "1.0.0",
            "v1.0.0",
            "0.0.0",
            "1.2.3-rc.1",
            "1.2.3+b.1",
            "1.2.3-0.a-b+x",
        ] {
            assert!(is_exact(s), "{s}");
        }
        for s in [
            "1",
            "1.0",
            "^1.0.0",
            "=1.0.0",
            " 1.0.0",
            "1.0.0 ",
            "01.0.0",
            "1.0.x",
            "1.0.0-01",
            "1.0.0-",
            "1.0.0+",
            "",
            "vv1.0.0",
            "9007199254740992.0.0",
        ] {
            assert!(!is_exact(s), "{s}");
        }
    }

    #[test]
    fn caret() {
        yes("^1.2.3", &["1.2.3", "1.9.9", "1.2.4"]);
        no("^1.2.3", &["1.2.2", "2.0.0", "2.0.0-0", "1.3.0-beta"]);
        yes("^0.2.3", &["0.2.3", "0.2.9"]);
        no("^0.2.3", &["0.3.0", "0.2.2"]);
        yes("^0.0.3", &["0.0.3"]);
        no("^0.0.3", &["0.0.4", "0.0.2"]);
        yes("^1.2", &["1.2.0", "1.9.0"]);
        no("^1.2", &["1.1.9", "2.0.0"]);
        yes("^0.2", &["0.2.0", "0.2.9"]);
        no("^0.2", &["0.3.0"]);
        yes("^1", &["1.0.0", "1.9.9"]);
        yes("^1.x", &["1.5.0"]);
        yes("^*", &["0.0.1", "9.9.9"]);
        yes("^ 1.2.3", &["1.5.0"]);
        yes("^v1.2.3", &["1.5.0"]);
    }

    #[test]
    fn tilde() {
        yes("~1.2.3", &["1.2.3", "1.2.9"]);
        no("~1.2.3", &["1.3.0", "1.2.2"]);
        yes("~>1.2.3", &["1.2.5"]);
        yes("~1.2", &["1.2.0", "1.2.9"]);
        no("~1.2", &["1.3.0"]);
        yes("~1", &["1.0.0", "1.9.0"]);
        no("~1", &["2.0.0"]);
        yes("~0.2.3", &["0.2.4"]);
        no("~0.2.3", &["0.3.0"]);
        yes("~ 1.2.3", &["1.2.4"]);
        yes(
            "~1.2.3-beta.2",
            &["1.2.3-beta.2", "1.2.3-beta.10", "1.2.3", "1.2.4"],
        );
        no("~1.2.3-beta.2", &["1.2.3-beta.1", "1.2.4-beta.2", "1.3.0"]);
    }

    #[test]
    fn x_ranges_and_bare_majors_and_minors() {
        yes("1.x", &["1.0.0", "1.9.9"]);
        no("1.x", &["2.0.0", "0.9.9"]);
        yes("1.X", &["1.2.3"]);
        yes("1.*", &["1.2.3"]);
        yes("1.2.x", &["1.2.0", "1.2.9"]);
        no("1.2.x", &["1.3.0"]);
        yes("1.2", &["1.2.0", "1.2.9"]);
        no("1.2", &["1.3.0", "1.1.0"]);
        yes("0", &["0.0.1", "0.9.9"]);
        no("0", &["1.0.0"]);
        for any in ["*", "x", "X", "", "  ", "x.x", "*.*.*", ">=*"] {
            yes(any, &["0.0.0", "1.2.3", "99.0.0"]);
            no(any, &["1.0.0-rc.1"]);
        }
    }

    #[test]
    fn comparators() {
        yes(">1.2.3", &["1.2.4", "2.0.0"]);
        no(">1.2.3", &["1.2.3", "1.0.0"]);
        yes(">=1.2.3", &["1.2.3"]);
        yes("<1.2.3", &["1.2.2"]);
        no("<1.2.3", &["1.2.3", "1.2.3-rc.1"]);
        yes("<=1.2.3", &["1.2.3"]);
        no("<=1.2.3", &["1.2.4"]);
        yes("> 1.2.3", &["1.3.0"]);
        yes(">= 1.2.3", &["1.2.3"]);
        // x parts in comparators round as node-semver does.
        yes(">1", &["2.0.0"]);
        no(">1", &["1.9.9"]);
        yes(">1.2", &["1.3.0"]);
        no(">1.2", &["1.2.9"]);
        yes(">=1.2", &["1.2.0"]);
        no(">=1.2", &["1.1.9"]);
        yes("<2", &["1.9.9"]);
        no("<2", &["2.0.0"]);
        yes("<=1.2.x", &["1.2.9"]);
        no("<=1.2.x", &["1.3.0"]);
        yes("<=1", &["1.9.9"]);
        no("<=1", &["2.0.0"]);
        no(">*", &["0.0.0", "1.0.0"]);
        no("<*", &["0.0.0", "1.0.0"]);
        yes("=1.x", &["1.4.0"]);
    }

    #[test]
    fn and_or_and_hyphen() {
        yes(">=1.0.0 <2.0.0", &["1.0.0", "1.9.9"]);
        no(">=1.0.0 <2.0.0", &["2.0.0", "0.9.9"]);
        yes(">= 1.0.0   < 2.0.0", &["1.5.0"]);
        yes("1.x || >=3.0.0", &["1.2.0", "3.0.0", "4.1.0"]);
        no("1.x || >=3.0.0", &["2.0.0"]);
        yes("^1.0.0||^2.0.0", &["2.1.0"]);
        yes("1.x || ", &["7.0.0"]);
        yes("1.2.3 - 2.3.4", &["1.2.3", "2.3.4"]);
        no("1.2.3 - 2.3.4", &["2.3.5", "1.2.2"]);
        yes("1.2 - 2.3", &["1.2.0", "2.3.9"]);
        no("1.2 - 2.3", &["2.4.0"]);
        yes("1.2.3 - 2", &["2.9.9"]);
        no("1.2.3 - 2", &["3.0.0"]);
        yes("* - 2", &["0.0.1"]);
    }

    #[test]
    fn prereleases_only_when_the_range_names_them() {
        yes(
            "^1.2.3-beta.1",
            &["1.2.3-beta.1", "1.2.3-beta.2", "1.2.3", "1.9.0"],
        );
        no("^1.2.3-beta.1", &["1.2.4-alpha", "1.2.3-alpha", "2.0.0-0"]);
        yes(">=1.0.0-rc.1", &["1.0.0-rc.2", "1.0.0", "3.0.0"]);
        no(">=1.0.0-rc.1", &["1.0.1-rc.1"]);
        no("^1.0.0", &["1.5.0-beta"]);
        no("1.x", &["1.5.0-beta"]);
        // Numeric identifiers compare as numbers and sort before alphanumeric ones.
        yes(">1.0.0-2", &["1.0.0-10", "1.0.0-alpha"]);
        yes("<1.0.0-beta", &["1.0.0-alpha"]);
        yes("<1.0.0-alpha.1", &["1.0.0-alpha"]);
    }

    #[test]
    fn invalid_ranges() {
        for bad in [
            "1.2.3.4",
            "01",
            "1.02",
            "^01.2.3",
            "abc",
            "1.2.3-",
            ">",
            ">=",
            "~",
            "^",
            "1.2.3 foo",
            ">==1.2.3",
            "=>1.2.3",
            "vv1.2.3",
            "1.2-beta",
            "1.2.3-01",
            "9007199254740992",
            "^9007199254740992.0.0",
            "1.2.3 -",
            ">=1.2.3 || abc",
        ] {
            assert!(Range::parse(bad).is_err(), "{bad:?} should be invalid");
        }
        for good in [
            "1",
            "1.2",
            "v1",
            "=1",
            " ^1.0.0 ",
            "~> 1.2",
            "1.2.3+build",
            "x.x.x",
            "<=0.7.x",
        ] {
            assert!(Range::parse(good).is_ok(), "{good:?} should be valid");
        }
        assert_eq!(Range::parse("1.2.3.4").unwrap_err().input(), "1.2.3.4");
    }

    #[test]
    fn display_collapses_whitespace() {
        assert_eq!(
            Range::parse("  >=1.0.0\t <2 ").unwrap().to_string(),
            ">=1.0.0 <2"
        );
    }
}
