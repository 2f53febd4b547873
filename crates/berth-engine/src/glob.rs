//! Glob patterns as Argo CD uses them in `ignoreDifferences` groups and
//! kinds, resource customization keys and AppProject rules.

/// `*` matches any run of characters (`/` included), `?` one character.
pub fn glob(pattern: &str, value: &str) -> bool {
    let (p, v): (Vec<char>, Vec<char>) = (pattern.chars().collect(), value.chars().collect());
    // Iterative matching with backtracking to the last `*`.
    let (mut pi, mut vi) = (0usize, 0usize);
    let (mut star, mut mark) = (None::<usize>, 0usize);
    while vi < v.len() {
        if pi < p.len() && (p[pi] == '?' || p[pi] == v[vi]) {
            pi += 1;
            vi += 1;
        } else if pi < p.len() && p[pi] == '*' {
            star = Some(pi);
            mark = vi;
            pi += 1;
        } else if let Some(s) = star {
            pi = s + 1;
            mark += 1;
            vi = mark;
        } else {
            return false;
        }
    }
    while pi < p.len() && p[pi] == '*' {
        pi += 1;
    }
    pi == p.len()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stars_and_question_marks() {
        assert!(glob("*", ""));
        assert!(glob("", ""));
        assert!(!glob("", "apps"));
        assert!(glob("a*c", "abc"));
        assert!(glob("team-?", "team-a"));
        assert!(!glob("team-?", "team-ab"));
    }
}
