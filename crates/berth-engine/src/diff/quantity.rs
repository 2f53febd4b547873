//! Kubernetes resource quantities (`500m`, `1Gi`, `1e3`), compared by value
//! so that `1000m` equals `1` and `1Ki` equals `1024`.

/// The quantity in nano-units, or `None` when `s` is not a quantity or is
/// too large to hold (then callers compare the text).
pub(crate) fn parse(s: &str) -> Option<i128> {
    let s = s.trim();
    let (negative, s) = match s.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, s.strip_prefix('+').unwrap_or(s)),
    };
    let number_end = s
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(s.len());
    let (number, suffix) = s.split_at(number_end);
    if number.is_empty() || number == "." || number.matches('.').count() > 1 {
        return None;
    }
    let (whole, frac) = number.split_once('.').unwrap_or((number, ""));
    let digits: i128 = format!("{whole}{frac}").parse().ok()?;
    // The value is digits * 10^(exp10 - frac.len()) * 2^exp2, in nano-units.
    let (exp10, exp2): (i32, u32) = match suffix {
        "" => (9, 0),
        "n" => (0, 0),
        "u" => (3, 0),
        "m" => (6, 0),
        "k" => (12, 0),
        "M" => (15, 0),
        "G" => (18, 0),
        "T" => (21, 0),
        "P" => (24, 0),
        "E" => (27, 0),
        "Ki" => (9, 10),
        "Mi" => (9, 20),
        "Gi" => (9, 30),
        "Ti" => (9, 40),
        "Pi" => (9, 50),
        "Ei" => (9, 60),
        other => {
            let exp = other.strip_prefix(['e', 'E'])?;
            (9 + exp.parse::<i32>().ok()?, 0)
        }
    };
    let scale = exp10 - i32::try_from(frac.len()).ok()?;
    let mut value = digits.checked_mul(1i128.checked_shl(exp2)?)?;
    if scale >= 0 {
        value = value.checked_mul(10i128.checked_pow(u32::try_from(scale).ok()?)?)?;
    } else {
        // Below a nano-unit: Kubernetes rounds up.
        let div = 10i128.checked_pow(u32::try_from(-scale).ok()?)?;
        value = (value + div - 1) / div;
    }
    Some(if negative { -value } else { value })
}

/// Whether two quantities written differently have the same value.
pub(crate) fn equal(a: &str, b: &str) -> bool {
    a == b || matches!((parse(a), parse(b)), (Some(x), Some(y)) if x == y)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_values_written_differently() {
        for (a, b) in [
            ("1000m", "1"),
            ("0.5", "500m"),
            ("1Ki", "1024"),
            ("1Gi", "1073741824"),
            ("1e3", "1k"),
            ("1.5Gi", "1536Mi"),
            ("+1", "1"),
            ("100Mi", "104857600"),
        ] {
            assert!(equal(a, b), "{a} = {b}");
        }
        for (a, b) in [
            ("1", "2"),
            ("1Gi", "1G"),
            ("1m", "1"),
            ("abc", "1"),
            ("1x", "1"),
        ] {
            assert!(!equal(a, b), "{a} != {b}");
        }
        assert_eq!(parse("abc"), None);
        assert_eq!(parse(""), None);
        assert_eq!(parse("1.2.3"), None);
    }
}
