//! Semantic versions and version constraints in the language Argo CD accepts
//! in `targetRevision`: the constraint syntax of the Go library
//! Masterminds/semver v3, which differs from Rust's `semver` crate (`1.2`
//! means `>=1.2.0 <1.3.0`, `~` and `^` have their own rules for `0.x`,
//! `||` joins alternatives, hyphen ranges are allowed).
//!
//! Prereleases follow the library's current rule: a version with a
//! prerelease satisfies an AND group only if some constraint of that group
//! names a prerelease itself (so `>=1.0.0-0` admits `1.5.0-beta`, `>=1.0.0`
//! does not).

use std::cmp::Ordering;
use std::fmt;

/// Why a version or constraint could not be parsed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    /// Not a semantic version.
    #[error("{0:?} is not a semantic version")]
    InvalidVersion(String),
    /// Not a version constraint.
    #[error("{input:?} is not a version constraint: {reason}")]
    InvalidConstraint {
        /// The text given.
        input: String,
        /// What is wrong with it.
        reason: String,
    },
}

/// A semantic version, parsed leniently as Masterminds' `NewVersion` does: an
/// optional leading `v`, and missing minor or patch numbers read as 0.
#[derive(Debug, Clone)]
pub struct Version {
    /// Major number.
    pub major: u64,
    /// Minor number.
    pub minor: u64,
    /// Patch number.
    pub patch: u64,
    /// Prerelease identifiers (after `-`), empty for a release.
    pub pre: Vec<String>,
    /// Build metadata (after `+`); ignored when comparing.
    pub build: String,
    original: String,
}

impl Version {
    /// Parses `v1.2.3`, `1.2.3-rc.1+build`, `1.2` (= 1.2.0) or `1` (= 1.0.0).
    pub fn parse(input: &str) -> Result<Version, Error> {
        let bad = || Error::InvalidVersion(input.to_string());
        let body = input.strip_prefix('v').unwrap_or(input);
        let (body, build) = match body.split_once('+') {
            Some((b, m)) if valid_idents(m) => (b, m.to_string()),
            Some(_) => return Err(bad()),
            None => (body, String::new()),
        };
        let (core, pre) = match body.split_once('-') {
            Some((c, p)) if valid_idents(p) => (c, p.split('.').map(str::to_string).collect()),
            Some(_) => return Err(bad()),
            None => (body, Vec::new()),
        };
        let pre: Vec<String> = pre;
        if pre
            .iter()
            .any(|id| is_numeric(id) && id.len() > 1 && id.starts_with('0'))
        {
            return Err(bad());
        }
        let nums: Vec<&str> = core.split('.').collect();
        if nums.is_empty() || nums.len() > 3 || nums.iter().any(|n| !is_numeric(n)) {
            return Err(bad());
        }
        let num = |i: usize| -> Result<u64, Error> {
            nums.get(i)
                .map_or(Ok(0), |n| n.parse::<u64>().map_err(|_| bad()))
        };
        Ok(Version {
            major: num(0)?,
            minor: num(1)?,
            patch: num(2)?,
            pre,
            build,
            original: input.to_string(),
        })
    }

    /// The text this version was parsed from.
    pub fn original(&self) -> &str {
        &self.original
    }

    /// Whether this is a prerelease.
    pub fn is_prerelease(&self) -> bool {
        !self.pre.is_empty()
    }

    fn triple(&self) -> (u64, u64, u64) {
        (self.major, self.minor, self.patch)
    }
}

fn is_numeric(s: &str) -> bool {
    !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit())
}

fn valid_idents(s: &str) -> bool {
    !s.is_empty()
        && s.split('.')
            .all(|id| !id.is_empty() && id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-'))
}

impl PartialEq for Version {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}

impl Eq for Version {}

impl PartialOrd for Version {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Version {
    /// Semantic Versioning 2.0 precedence; build metadata is ignored.
    fn cmp(&self, other: &Self) -> Ordering {
        self.triple()
            .cmp(&other.triple())
            .then_with(|| compare_pre(&self.pre, &other.pre))
    }
}

fn compare_pre(a: &[String], b: &[String]) -> Ordering {
    match (a.is_empty(), b.is_empty()) {
        (true, true) => return Ordering::Equal,
        (true, false) => return Ordering::Greater,
        (false, true) => return Ordering::Less,
        (false, false) => {}
    }
    for (x, y) in a.iter().zip(b) {
        let ord = match (is_numeric(x), is_numeric(y)) {
            (true, true) => x.len().cmp(&y.len()).then_with(|| x.cmp(y)),
            (true, false) => Ordering::Less,
            (false, true) => Ordering::Greater,
            (false, false) => x.cmp(y),
        };
        if ord != Ordering::Equal {
            return ord;
        }
    }
    a.len().cmp(&b.len())
}

impl fmt::Display for Version {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}.{}", self.major, self.minor, self.patch)?;
        if !self.pre.is_empty() {
            write!(f, "-{}", self.pre.join("."))?;
        }
        if !self.build.is_empty() {
            write!(f, "+{}", self.build)?;
        }
        Ok(())
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Op {
    Eq,
    Ne,
    Gt,
    Lt,
    Ge,
    Le,
    Tilde,
    Caret,
}

/// One comparison, such as `>=1.2` or `~1.4`.
#[derive(Debug, Clone)]
struct Term {
    op: Op,
    /// The version, with missing or wildcard parts set to 0.
    v: Version,
    /// The major number was a wildcard (`*`, `x`).
    any_major: bool,
    /// The minor number was missing or a wildcard.
    minor_dirty: bool,
    /// The patch number was missing or a wildcard.
    patch_dirty: bool,
}

impl Term {
    fn dirty(&self) -> bool {
        self.any_major || self.minor_dirty || self.patch_dirty
    }

    fn matches(&self, v: &Version) -> bool {
        let c = &self.v;
        if self.any_major {
            // `*`, `x`, `~*`, `^*`, `>=*`: any version; `<*`, `>*`: none.
            return match self.op {
                Op::Eq | Op::Tilde | Op::Caret | Op::Ge | Op::Le => true,
                Op::Ne | Op::Gt | Op::Lt => false,
            };
        }
        match self.op {
            Op::Eq if self.dirty() => self.tilde(v),
            Op::Eq => v == c,
            Op::Ne => {
                if self.dirty() {
                    let same_range = v.major == c.major
                        && (self.minor_dirty || v.minor == c.minor)
                        && (self.patch_dirty || self.minor_dirty || v.patch == c.patch);
                    !same_range
                } else {
                    v != c
                }
            }
            Op::Gt => {
                if !self.dirty() {
                    v > c
                } else if v.major != c.major {
                    v.major > c.major
                } else if self.minor_dirty {
                    false
                } else {
                    v.minor > c.minor
                }
            }
            Op::Lt => v < c,
            Op::Ge => v >= c,
            Op::Le => {
                if !self.dirty() {
                    v <= c
                } else if v.major != c.major {
                    v.major < c.major
                } else {
                    self.minor_dirty || v.minor <= c.minor
                }
            }
            Op::Tilde => self.tilde(v),
            Op::Caret => {
                if v < c {
                    return false;
                }
                if c.major > 0 || self.minor_dirty {
                    return v.major == c.major;
                }
                if v.major > 0 {
                    return false;
                }
                if c.minor > 0 || self.patch_dirty {
                    return v.minor == c.minor;
                }
                if v.minor > 0 {
                    return false;
                }
                v.patch == c.patch
            }
        }
    }

    fn tilde(&self, v: &Version) -> bool {
        let c = &self.v;
        if v < c {
            return false;
        }
        // `~0.0.0` accepts everything (a documented special case).
        if c.triple() == (0, 0, 0) && !self.minor_dirty && !self.patch_dirty {
            return true;
        }
        v.major == c.major && (self.minor_dirty || v.minor == c.minor)
    }
}

/// A version constraint: alternatives (`||`) of AND groups of comparisons.
#[derive(Debug, Clone)]
pub struct Constraint {
    groups: Vec<Vec<Term>>,
    original: String,
}

impl Constraint {
    /// Parses a constraint such as `>=1.0.0 <2.0.0`, `~1.4`, `^2`, `1.2.*`,
    /// `1.2 - 1.4.5` or `^1 || ^2`.
    pub fn parse(input: &str) -> Result<Constraint, Error> {
        let invalid = |reason: &str| Error::InvalidConstraint {
            input: input.to_string(),
            reason: reason.to_string(),
        };
        if input.trim().is_empty() {
            return Err(invalid("it is empty"));
        }
        let mut groups = Vec::new();
        for group in input.split("||") {
            let tokens = tokenize(group);
            if tokens.is_empty() {
                return Err(invalid("an alternative (between `||`) is empty"));
            }
            let mut terms = Vec::new();
            let mut i = 0;
            while i < tokens.len() {
                // A hyphen range `A - B` is `>=A <=B`.
                if tokens.get(i + 1).map(String::as_str) == Some("-") {
                    let (Some(low), Some(high)) = (tokens.get(i), tokens.get(i + 2)) else {
                        return Err(invalid("a hyphen range needs a version on each side"));
                    };
                    terms.push(parse_term(&format!(">={low}")).map_err(|r| invalid(&r))?);
                    terms.push(parse_term(&format!("<={high}")).map_err(|r| invalid(&r))?);
                    i += 3;
                    continue;
                }
                terms.push(parse_term(&tokens[i]).map_err(|r| invalid(&r))?);
                i += 1;
            }
            groups.push(terms);
        }
        Ok(Constraint {
            groups,
            original: input.to_string(),
        })
    }

    /// Whether `v` satisfies the constraint.
    pub fn matches(&self, v: &Version) -> bool {
        self.groups.iter().any(|terms| {
            if v.is_prerelease() && !terms.iter().any(|t| t.v.is_prerelease()) {
                return false;
            }
            terms.iter().all(|t| t.matches(v))
        })
    }

    /// The text this constraint was parsed from.
    pub fn original(&self) -> &str {
        &self.original
    }
}

/// Splits an AND group into terms: whitespace or commas separate them, and an
/// operator may be followed by spaces before its version (`>= 1.2`).
fn tokenize(group: &str) -> Vec<String> {
    let mut tokens: Vec<String> = Vec::new();
    let mut pending_op = String::new();
    for word in group
        .split(|c: char| c.is_whitespace() || c == ',')
        .filter(|w| !w.is_empty())
    {
        if word.chars().all(|c| "=!<>~^".contains(c)) && word != "-" {
            pending_op.push_str(word);
            continue;
        }
        tokens.push(format!("{pending_op}{word}"));
        pending_op.clear();
    }
    if !pending_op.is_empty() {
        tokens.push(pending_op);
    }
    tokens
}

fn parse_term(token: &str) -> Result<Term, String> {
    let split = token
        .find(|c: char| !"=!<>~^".contains(c))
        .unwrap_or(token.len());
    let (op, ver) = token.split_at(split);
    let op = match op {
        "" | "=" => Op::Eq,
        "!=" => Op::Ne,
        ">" => Op::Gt,
        "<" => Op::Lt,
        ">=" | "=>" => Op::Ge,
        "<=" | "=<" => Op::Le,
        "~" | "~>" => Op::Tilde,
        "^" => Op::Caret,
        other => return Err(format!("unknown operator {other:?} in {token:?}")),
    };
    if ver.is_empty() {
        return Err(format!("{token:?} has no version"));
    }
    let is_x = |s: &str| matches!(s, "x" | "X" | "*");
    let body = ver.strip_prefix('v').unwrap_or(ver);
    // Split off prerelease/build from the numeric part before looking for
    // wildcards, so that `1.2.x-beta` is handled as the library does.
    let cut = body.find(['-', '+']).unwrap_or(body.len());
    let (nums, rest) = body.split_at(cut);
    let parts: Vec<&str> = nums.split('.').collect();
    if parts.len() > 3 || parts.iter().any(|p| p.is_empty()) {
        return Err(format!("{ver:?} is not a version"));
    }
    let any_major = is_x(parts[0]);
    let minor_dirty = any_major || parts.len() < 2 || is_x(parts[1]);
    let patch_dirty = minor_dirty || parts.len() < 3 || is_x(parts[2]);
    let mut concrete = Vec::new();
    for (i, p) in parts.iter().enumerate() {
        if is_x(p) {
            break;
        }
        if i > 0 && is_x(parts[i - 1]) {
            break;
        }
        concrete.push(*p);
    }
    let numeric = if concrete.is_empty() {
        "0".to_string()
    } else {
        concrete.join(".")
    };
    let v = Version::parse(&format!("{numeric}{rest}")).map_err(|e| e.to_string())?;
    Ok(Term {
        op,
        v,
        any_major,
        minor_dirty: minor_dirty && !any_major,
        patch_dirty: patch_dirty && !any_major,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(s: &str) -> Version {
        Version::parse(s).unwrap()
    }

    #[test]
    fn parses_versions_leniently() {
        assert_eq!(v("v1.2.3").to_string(), "1.2.3");
        assert_eq!(v("1.2").to_string(), "1.2.0");
        assert_eq!(v("1").to_string(), "1.0.0");
        assert_eq!(v("1.2-beta").to_string(), "1.2.0-beta");
        assert_eq!(v("1.2.3-rc.1+build.5").to_string(), "1.2.3-rc.1+build.5");
        assert_eq!(v("v1.2.3").original(), "v1.2.3");
        for bad in [
            "", "V1.2.3", "1.2.3.4", "1.x", "a.b.c", "1.2.3-01", "1.2.3-", "1..2", "latest",
        ] {
            assert!(Version::parse(bad).is_err(), "{bad:?} must not parse");
        }
    }

    #[test]
    fn orders_by_semver_precedence() {
        let ordered = [
            "1.0.0-alpha",
            "1.0.0-alpha.1",
            "1.0.0-alpha.beta",
            "1.0.0-beta",
            "1.0.0-beta.2",
            "1.0.0-beta.11",
            "1.0.0-rc.1",
            "1.0.0",
            "1.0.1",
            "1.1.0",
            "2.0.0",
        ];
        for pair in ordered.windows(2) {
            assert!(v(pair[0]) < v(pair[1]), "{} < {}", pair[0], pair[1]);
        }
        assert_eq!(v("1.0.0+a"), v("1.0.0+b"), "build metadata is ignored");
    }

    /// (constraint, versions that match, versions that do not)
    const CASES: &[(&str, &[&str], &[&str])] = &[
        (
            "1.2.3",
            &["1.2.3", "v1.2.3", "1.2.3+meta"],
            &["1.2.4", "1.2.2"],
        ),
        ("=1.2.3", &["1.2.3"], &["1.2.4"]),
        ("1.2", &["1.2.0", "1.2.9"], &["1.3.0", "1.1.9"]),
        ("1.2.x", &["1.2.0", "1.2.9"], &["1.3.0"]),
        ("1.2.*", &["1.2.0", "1.2.77"], &["1.3.0", "1.1.0"]),
        ("1", &["1.0.0", "1.9.9"], &["2.0.0", "0.9.0"]),
        ("1.x", &["1.0.0", "1.9.9"], &["2.0.0"]),
        ("*", &["0.0.1", "1.2.3", "99.0.0"], &["1.0.0-rc.1"]),
        ("x", &["3.0.0"], &[]),
        ("!=1.2.3", &["1.2.4", "1.2.2"], &["1.2.3"]),
        ("!=1.2", &["1.3.0", "1.1.0"], &["1.2.0", "1.2.5"]),
        ("!=1.x", &["2.0.0", "0.1.0"], &["1.0.0", "1.5.0"]),
        (">1.2.3", &["1.2.4", "2.0.0"], &["1.2.3", "1.0.0"]),
        (">1.2", &["1.3.0", "2.0.0"], &["1.2.0", "1.2.9"]),
        (">1", &["2.0.0"], &["1.9.9"]),
        ("<1.2.3", &["1.2.2", "0.1.0"], &["1.2.3", "1.3.0"]),
        ("<1.2", &["1.1.9"], &["1.2.0", "1.2.1"]),
        ("<1.x", &["0.9.0"], &["1.0.0"]),
        (">=1.2.3", &["1.2.3", "2.0.0"], &["1.2.2"]),
        (">=1.2", &["1.2.0"], &["1.1.9"]),
        ("=>1.2", &["1.2.0"], &["1.1.9"]),
        ("<=1.2.3", &["1.2.3", "1.0.0"], &["1.2.4"]),
        ("<=1.2", &["1.2.0", "1.2.9"], &["1.3.0"]),
        ("<=1", &["1.9.9", "0.1.0"], &["2.0.0"]),
        ("=<1.x", &["1.9.9"], &["2.0.0"]),
        ("~1.2.3", &["1.2.3", "1.2.9"], &["1.3.0", "1.2.2"]),
        ("~>1.2.3", &["1.2.3", "1.2.9"], &["1.3.0"]),
        ("~1.2", &["1.2.0", "1.2.9"], &["1.3.0"]),
        ("~1", &["1.0.0", "1.9.0"], &["2.0.0"]),
        ("~1.4", &["1.4.0", "1.4.7"], &["1.5.0", "1.3.9"]),
        ("~0", &["0.0.1", "0.9.9"], &["1.0.0"]),
        ("~0.0", &["0.0.5"], &["0.1.0"]),
        ("~0.0.0", &["0.0.0", "1.2.3", "9.0.0"], &[]),
        ("~*", &["1.0.0", "0.0.1"], &[]),
        ("^1.2.3", &["1.2.3", "1.9.0"], &["2.0.0", "1.2.2"]),
        ("^1.2", &["1.2.0", "1.9.0"], &["2.0.0", "1.1.0"]),
        ("^1", &["1.0.0", "1.9.9"], &["2.0.0", "0.9.0"]),
        ("^2", &["2.0.0", "2.5.1"], &["3.0.0", "1.9.9"]),
        ("^0.2.3", &["0.2.3", "0.2.9"], &["0.3.0", "0.2.2"]),
        ("^0.2", &["0.2.0", "0.2.9"], &["0.3.0"]),
        ("^0.0.3", &["0.0.3"], &["0.0.4", "0.0.2"]),
        ("^0.0", &["0.0.9"], &["0.1.0"]),
        ("^0", &["0.9.9"], &["1.0.0"]),
        ("^0.0.0", &["0.0.0"], &["1.2.3", "0.0.1"]),
        (">=1.0.0 <2.0.0", &["1.0.0", "1.9.9"], &["2.0.0", "0.9.9"]),
        (">=1.0.0, <2.0.0", &["1.5.0"], &["2.0.0"]),
        (">= 1.0.0 , < 2.0.0", &["1.5.0"], &["2.0.0"]),
        ("1.2 - 1.4.5", &["1.2.0", "1.4.5"], &["1.4.6", "1.1.9"]),
        ("1 - 2", &["1.0.0", "2.9.9"], &["3.0.0"]),
        ("^1 || ^3", &["1.5.0", "3.1.0"], &["2.0.0"]),
        (">=1.0.0 <2.0.0 || >=3.0.0", &["1.0.0", "3.5.0"], &["2.5.0"]),
        // Prereleases only where a constraint of the same group names one.
        (">=1.0.0", &["1.5.0"], &["1.5.0-beta"]),
        (">=1.0.0-0", &["1.5.0", "1.5.0-beta"], &[]),
        ("^1.1.2-alpha", &["1.2.1-beta1", "1.1.2"], &["2.0.0-alpha"]),
        (
            "~1.2.3-beta.2",
            &["1.2.4-beta.2", "1.2.3"],
            &["1.3.0-beta.2"],
        ),
        ("*-0", &["1.0.0-rc.1", "1.0.0"], &[]),
    ];

    #[test]
    fn constraint_table() {
        for (constraint, yes, no) in CASES {
            let c = Constraint::parse(constraint).unwrap_or_else(|e| panic!("{constraint}: {e}"));
            for version in *yes {
                assert!(
                    c.matches(&v(version)),
                    "{constraint:?} must match {version}"
                );
            }
            for version in *no {
                assert!(
                    !c.matches(&v(version)),
                    "{constraint:?} must not match {version}"
                );
            }
        }
    }

    #[test]
    fn invalid_constraints_are_errors() {
        for bad in [
            "",
            "||",
            ">=",
            "1.2.3.4",
            "abc",
            "=~1.2",
            ">=1.0.0 ||",
            "1.2 -",
        ] {
            assert!(Constraint::parse(bad).is_err(), "{bad:?} must not parse");
        }
    }
}
