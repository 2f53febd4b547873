//! YAML for people: lines highlighted on the server (keys, strings,
//! numbers, booleans and null, comments), and diffs unified or side by
//! side. A line-by-line scanner is enough: manifests come from the API as
//! JSON turned into YAML, so block scalars and flow styles are rare, and
//! a line the scanner does not understand is shown as plain text.

use std::fmt::Write as _;

use super::esc;

/// One line of YAML as HTML, its parts in classed spans.
pub(super) fn highlight(line: &str) -> String {
    let indent = line.len() - line.trim_start().len();
    let (lead, mut rest) = line.split_at(indent);
    let mut out = esc(lead);
    // Sequence markers, possibly several (`- - a`).
    while let Some(after) = rest
        .strip_prefix("- ")
        .or_else(|| (rest == "-").then_some(""))
    {
        out.push_str(r#"<span class="y-punct">-</span> "#);
        rest = after;
    }
    if let Some(comment) = rest.strip_prefix('#') {
        let _ = write!(out, r#"<span class="y-comment">#{}</span>"#, esc(comment));
        return out;
    }
    match key_split(rest) {
        Some((key, value)) => {
            let _ = write!(
                out,
                r#"<span class="y-key">{}</span><span class="y-punct">:</span>"#,
                esc(key)
            );
            if !value.is_empty() {
                out.push(' ');
                out.push_str(&scalar(value.trim_start()));
            }
        }
        None => out.push_str(&scalar(rest)),
    }
    out
}

/// `key: value` or `key:`, the key plain or quoted; `None` for a line
/// that is only a value.
fn key_split(s: &str) -> Option<(&str, &str)> {
    let end = if let Some(q @ ('"' | '\'')) = s.chars().next() {
        // A quoted key ends at its closing quote.
        let close = s[1..].find(q)? + 2;
        s[close..].starts_with(':').then_some(close)?
    } else {
        s.find(": ").or_else(|| s.strip_suffix(':').map(str::len))?
    };
    let key = &s[..end];
    if key.is_empty() || key.contains(" #") {
        return None;
    }
    Some((key, s[end + 1..].trim_end_matches('\r')))
}

/// A value: its kind decides its class.
fn scalar(v: &str) -> String {
    if v.is_empty() {
        return String::new();
    }
    let class = if v.starts_with('"') || v.starts_with('\'') {
        "y-str"
    } else if matches!(
        v,
        "true" | "false" | "null" | "~" | "True" | "False" | "Null"
    ) || v.starts_with('|')
        || v.starts_with('>')
        || v == "{}"
        || v == "[]"
    {
        "y-lit"
    } else if v.parse::<f64>().is_ok() {
        "y-num"
    } else {
        "y-str"
    };
    format!(r#"<span class="{class}">{}</span>"#, esc(v))
}

/// A unified diff's line, classed by what it is.
enum Row<'a> {
    /// A hunk header (`@@ -1,4 +1,5 @@`).
    Hunk(&'a str),
    /// A line both sides have.
    Same(&'a str),
    /// Removed lines, then added ones: one change.
    Change(Vec<&'a str>, Vec<&'a str>),
}

/// A unified diff's rows (the `---`/`+++` header left out).
fn rows(diff: &str) -> Vec<Row<'_>> {
    let mut out: Vec<Row<'_>> = Vec::new();
    for line in diff.lines() {
        if line.starts_with("---") || line.starts_with("+++") {
            continue;
        }
        let (mark, rest) = line.split_at(line.len().min(1));
        match mark {
            "@" => out.push(Row::Hunk(line)),
            "-" => match out.last_mut() {
                // Removals gather until an addition starts.
                Some(Row::Change(del, add)) if add.is_empty() => del.push(rest),
                _ => out.push(Row::Change(vec![rest], Vec::new())),
            },
            "+" => match out.last_mut() {
                Some(Row::Change(_, add)) => add.push(rest),
                _ => out.push(Row::Change(Vec::new(), vec![rest])),
            },
            _ => out.push(Row::Same(line.strip_prefix(' ').unwrap_or(line))),
        }
    }
    out
}

/// A unified diff, each line highlighted and classed (`add`, `del`,
/// `hunk`, `ctx`) inside a `<pre>`.
pub(super) fn unified(body: &mut String, diff: &str) {
    for line in diff.lines() {
        let (class, mark, rest) = match line.as_bytes().first() {
            Some(b'+') if !line.starts_with("+++") => ("add", "+", &line[1..]),
            Some(b'-') if !line.starts_with("---") => ("del", "-", &line[1..]),
            Some(b'@') => ("hunk", "", line),
            Some(b' ') => ("ctx", " ", &line[1..]),
            _ => ("ctx", "", line),
        };
        let shown = if class == "hunk" || line.starts_with("---") || line.starts_with("+++") {
            esc(line)
        } else {
            format!("{mark}{}", highlight(rest))
        };
        // Block spans: a newline between them would show as an empty line.
        let _ = write!(body, r#"<span class="{class}">{shown}</span>"#);
    }
}

/// A unified diff side by side: live on the left, Git on the right, a
/// change's removed and added lines paired row by row.
pub(super) fn split(body: &mut String, diff: &str) {
    body.push_str(r#"<table class="split"><thead><tr><th scope="col">Live</th><th scope="col">Desired (Git)</th></tr></thead><tbody>"#);
    let cell = |class: &str, line: Option<&str>| match line {
        Some(l) => format!(r#"<td class="{class}"><code>{}</code></td>"#, highlight(l)),
        None => r#"<td class="none"></td>"#.to_string(),
    };
    for row in rows(diff) {
        match row {
            Row::Hunk(h) => {
                let _ = write!(
                    body,
                    r#"<tr class="hunk"><td colspan="2">{}</td></tr>"#,
                    esc(h)
                );
            }
            Row::Same(l) => {
                let _ = write!(
                    body,
                    "<tr>{}{}</tr>",
                    cell("ctx", Some(l)),
                    cell("ctx", Some(l))
                );
            }
            Row::Change(del, add) => {
                for i in 0..del.len().max(add.len()) {
                    let _ = write!(
                        body,
                        "<tr>{}{}</tr>",
                        cell("del", del.get(i).copied()),
                        cell("add", add.get(i).copied())
                    );
                }
            }
        }
    }
    body.push_str("</tbody></table>");
}

/// A whole manifest, highlighted, one line per line.
pub(super) fn block(manifest: &str) -> String {
    let mut out = String::with_capacity(manifest.len() * 2);
    for line in manifest.lines() {
        out.push_str(&highlight(line));
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_values_and_comments_are_classed() {
        assert_eq!(
            highlight("  replicas: 3"),
            r#"  <span class="y-key">replicas</span><span class="y-punct">:</span> <span class="y-num">3</span>"#
        );
        assert_eq!(
            highlight("- name: web"),
            r#"<span class="y-punct">-</span> <span class="y-key">name</span><span class="y-punct">:</span> <span class="y-str">web</span>"#
        );
        assert_eq!(
            highlight("metadata:"),
            r#"<span class="y-key">metadata</span><span class="y-punct">:</span>"#
        );
        assert!(highlight("  enabled: true").contains(r#"<span class="y-lit">true</span>"#));
        assert_eq!(
            highlight("# note <b>"),
            r#"<span class="y-comment"># note &lt;b&gt;</span>"#
        );
        // A colon inside a value does not make a key of it.
        assert!(
            highlight("  image: nginx:1.27").contains(r#"<span class="y-str">nginx:1.27</span>"#)
        );
        // Text that could be markup is escaped everywhere.
        assert!(!highlight("a: <script>").contains("<script>"));
        assert!(!highlight("<script>: x").contains("<script>"));
    }

    #[test]
    fn a_change_pairs_removed_and_added_lines() {
        let diff =
            "--- live\n+++ desired\n@@ -1,3 +1,3 @@\n a: 1\n-b: 2\n-c: 3\n+b: 4\n d: 5\n+e: 6\n";
        let mut html = String::new();
        split(&mut html, diff);
        let rows: Vec<&str> = html.split("<tr").skip(2).collect();
        assert_eq!(rows.len(), 6, "{html}");
        assert!(rows[0].contains("hunk"));
        // b: 2 beside b: 4, then c: 3 beside nothing.
        assert!(
            rows[2].contains(r#"class="del""#)
                && rows[2].contains(">2<")
                && rows[2].contains(">4<")
        );
        assert!(rows[3].contains(">3<") && rows[3].contains(r#"class="none""#));
        assert!(rows[4].contains(">5<"));
        assert!(rows[5].contains(r#"class="none""#) && rows[5].contains(">6<"));
        let mut uni = String::new();
        unified(&mut uni, diff);
        assert_eq!(uni.matches(r#"class="del""#).count(), 2);
        assert_eq!(uni.matches(r#"class="add""#).count(), 2);
    }
}
