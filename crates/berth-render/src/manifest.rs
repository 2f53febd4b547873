//! Parsing manifest streams as Kubernetes does.
//!
//! YAML follows what `kubectl` and Argo CD accept (YAML 1.1 habits of the Go
//! YAML library): `0644` is the octal 420, `yes`/`no`/`on`/`off` are
//! booleans, integers up to 64 bits stay exact, a key given twice in one
//! mapping is an error. Several documents per file are allowed; empty
//! documents are skipped; a `List` (`kind: List` or `*List` with `items`) is
//! flattened into its items. Every object must have `apiVersion`, `kind` and
//! `metadata.name` (or `generateName`); errors name the file and document.

use serde_json::Value;

/// Why a manifest stream was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    /// The text is not valid YAML or JSON.
    #[error("{file}: {detail}")]
    Syntax {
        /// The file, relative to the source root.
        file: String,
        /// The parser's explanation, with the line.
        detail: String,
    },
    /// A document is not a Kubernetes object.
    #[error("{file} (document {document}): {reason}")]
    NotAnObject {
        /// The file, relative to the source root.
        file: String,
        /// 1-based index of the document in the file.
        document: usize,
        /// What is missing or wrong.
        reason: String,
    },
}

/// Parses a YAML or JSON stream from `file` (used in messages only).
pub fn parse_stream(file: &str, text: &str) -> Result<Vec<Value>, Error> {
    // The parser's default budget (1,024 documents, 250,000 nodes) guards
    // a configuration file; a rendered application may hold many thousands
    // of objects. Alias expansion stays guarded by the alias/anchor ratio.
    let options = serde_saphyr::options! {
        legacy_octal_numbers: true,
        duplicate_keys: serde_saphyr::DuplicateKeyPolicy::Error,
        budget: serde_saphyr::budget! {
            max_documents: 1_000_000,
            max_nodes: 50_000_000,
            max_events: 200_000_000,
        },
    };
    let docs: Vec<Value> =
        serde_saphyr::from_multiple_with_options(text, options).map_err(|e| Error::Syntax {
            file: file.to_string(),
            detail: e.to_string().lines().next().unwrap_or_default().to_string(),
        })?;
    let mut objects = Vec::new();
    for (i, doc) in docs.into_iter().enumerate() {
        collect(file, i + 1, doc, &mut objects)?;
    }
    Ok(objects)
}

fn collect(file: &str, document: usize, doc: Value, out: &mut Vec<Value>) -> Result<(), Error> {
    let not_object = |reason: String| Error::NotAnObject {
        file: file.to_string(),
        document,
        reason,
    };
    match doc {
        Value::Null => Ok(()),
        Value::Object(ref map) => {
            let kind = map.get("kind").and_then(Value::as_str).unwrap_or_default();
            if (kind == "List" || kind.ends_with("List"))
                && map.get("items").is_some_and(Value::is_array)
            {
                if let Some(Value::Array(items)) = map.get("items") {
                    for item in items.clone() {
                        check(&item).map_err(&not_object)?;
                        out.push(item);
                    }
                }
                return Ok(());
            }
            check(&doc).map_err(not_object)?;
            out.push(doc);
            Ok(())
        }
        other => Err(not_object(format!(
            "expected a Kubernetes object (a mapping with apiVersion and kind), found {}",
            describe(&other)
        ))),
    }
}

fn check(obj: &Value) -> Result<(), String> {
    let Some(map) = obj.as_object() else {
        return Err(format!(
            "expected a Kubernetes object, found {}",
            describe(obj)
        ));
    };
    let field = |k: &str| map.get(k).and_then(Value::as_str).filter(|s| !s.is_empty());
    if field("apiVersion").is_none() {
        return Err("missing `apiVersion`: this is not a Kubernetes manifest".into());
    }
    if field("kind").is_none() {
        return Err("missing `kind`: this is not a Kubernetes manifest".into());
    }
    let meta = map.get("metadata").and_then(Value::as_object);
    let named = meta.is_some_and(|m| {
        m.get("name")
            .and_then(Value::as_str)
            .is_some_and(|n| !n.is_empty())
            || m.get("generateName")
                .and_then(Value::as_str)
                .is_some_and(|n| !n.is_empty())
    });
    if !named {
        return Err(format!(
            "{} has no `metadata.name`",
            field("kind").unwrap_or_default()
        ));
    }
    Ok(())
}

fn describe(v: &Value) -> &'static str {
    match v {
        Value::Null => "an empty document",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "a list",
        Value::Object(_) => "a mapping",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn yaml_is_read_as_kubernetes_reads_it() {
        let text = "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: a}\ndata:\n  mode: 0644\n  flag: yes\n  big: 9007199254740993\n  str: \"0644\"\n  neg: -12\n";
        let objs = parse_stream("a.yaml", text).unwrap();
        assert_eq!(objs[0]["data"]["mode"], json!(420));
        assert_eq!(objs[0]["data"]["flag"], json!(true));
        assert_eq!(objs[0]["data"]["big"].as_u64(), Some(9007199254740993));
        assert_eq!(objs[0]["data"]["str"], json!("0644"));
        assert_eq!(objs[0]["data"]["neg"], json!(-12));
    }

    #[test]
    fn streams_lists_and_empty_documents() {
        let text = "---\n# only a comment\n---\napiVersion: v1\nkind: ConfigMap\nmetadata: {name: a}\n---\napiVersion: v1\nkind: List\nitems:\n- {apiVersion: v1, kind: Secret, metadata: {name: b}}\n- {apiVersion: v1, kind: Service, metadata: {name: c}}\n";
        let names: Vec<_> = parse_stream("s.yaml", text)
            .unwrap()
            .iter()
            .map(|o| o["metadata"]["name"].as_str().unwrap().to_string())
            .collect();
        assert_eq!(names, ["a", "b", "c"]);
        let json_text = r#"{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"j"}}"#;
        assert_eq!(parse_stream("j.json", json_text).unwrap().len(), 1);
    }

    #[test]
    fn streams_of_many_thousand_objects() {
        let mut text = String::new();
        for i in 0..20_000 {
            text.push_str(&format!(
                "---\napiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: c{i}\ndata:\n  i: \"{i}\"\n"
            ));
        }
        assert_eq!(parse_stream("many.yaml", &text).unwrap().len(), 20_000);
    }

    #[test]
    fn duplicate_keys_are_errors() {
        let err = parse_stream(
            "dup.yaml",
            "apiVersion: v1\nkind: ConfigMap\nkind: Secret\nmetadata: {name: a}\n",
        )
        .unwrap_err();
        assert!(matches!(err, Error::Syntax { .. }), "{err:?}");
        assert!(err.to_string().starts_with("dup.yaml: "), "{err}");
        assert!(
            err.to_string().to_lowercase().contains("duplicate"),
            "{err}"
        );
    }

    #[test]
    fn non_kubernetes_documents_name_the_file_and_document() {
        let text = "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: a}\n---\nfoo: bar\n";
        let err = parse_stream("apps/web/values.yaml", text).unwrap_err();
        assert_eq!(
            err.to_string(),
            "apps/web/values.yaml (document 2): missing `apiVersion`: this is not a Kubernetes manifest"
        );
        let err = parse_stream("x.yaml", "- a\n- b\n").unwrap_err();
        assert_eq!(
            err.to_string(),
            "x.yaml (document 1): expected a Kubernetes object (a mapping with apiVersion and kind), found a list"
        );
        let err =
            parse_stream("x.yaml", "apiVersion: v1\nkind: ConfigMap\nmetadata: {}\n").unwrap_err();
        assert_eq!(
            err.to_string(),
            "x.yaml (document 1): ConfigMap has no `metadata.name`"
        );
        let err = parse_stream("bad.yaml", "a: [unclosed\n").unwrap_err();
        assert!(err.to_string().starts_with("bad.yaml: "), "{err}");
    }
}
