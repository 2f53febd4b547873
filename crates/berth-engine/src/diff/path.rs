//! Paths into JSON documents: built from JSON pointers and from server-side
//! apply's `FieldsV1` sets, and removed from objects.

use std::fmt;

use serde_json::Value;

/// One step of a path.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Seg {
    /// An object key.
    Key(String),
    /// A list index.
    Index(usize),
}

/// A path from the root of an object.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct Path(pub Vec<Seg>);

impl fmt::Display for Path {
    /// `.spec.template.spec.containers[0].image`, the form jq and Argo CD's
    /// messages use; keys that are not plain identifiers are quoted.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.0.is_empty() {
            return f.write_str(".");
        }
        for seg in &self.0 {
            match seg {
                Seg::Key(k)
                    if !k.is_empty()
                        && k.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') =>
                {
                    write!(f, ".{k}")?
                }
                Seg::Key(k) => write!(f, "[{}]", Value::String(k.clone()))?,
                Seg::Index(i) => write!(f, "[{i}]")?,
            }
        }
        Ok(())
    }
}

/// Removes the value at an RFC 6901 JSON pointer; a pointer that does not
/// exist in `obj` changes nothing. Returns whether something was removed.
pub(crate) fn remove_pointer(obj: &mut Value, pointer: &str) -> bool {
    if pointer.is_empty() {
        return false;
    }
    let Some(rest) = pointer.strip_prefix('/') else {
        return false;
    };
    let segs: Vec<String> = rest
        .split('/')
        .map(|s| s.replace("~1", "/").replace("~0", "~"))
        .collect();
    let Some((last, parents)) = segs.split_last() else {
        return false;
    };
    let mut cur = obj;
    for seg in parents {
        cur = match cur {
            Value::Object(map) => match map.get_mut(seg) {
                Some(v) => v,
                None => return false,
            },
            Value::Array(items) => match seg.parse::<usize>().ok().and_then(|i| items.get_mut(i)) {
                Some(v) => v,
                None => return false,
            },
            _ => return false,
        };
    }
    match cur {
        Value::Object(map) => map.shift_remove(last).is_some(),
        Value::Array(items) => match last.parse::<usize>() {
            Ok(i) if i < items.len() => {
                items.remove(i);
                true
            }
            _ => false,
        },
        _ => false,
    }
}

/// Removes the value at `path`; see [`remove_pointer`].
pub(crate) fn remove(obj: &mut Value, path: &[Seg]) -> bool {
    let Some((last, parents)) = path.split_last() else {
        return false;
    };
    let mut cur = obj;
    for seg in parents {
        cur = match (cur, seg) {
            (Value::Object(map), Seg::Key(k)) => match map.get_mut(k) {
                Some(v) => v,
                None => return false,
            },
            (Value::Array(items), Seg::Index(i)) => match items.get_mut(*i) {
                Some(v) => v,
                None => return false,
            },
            _ => return false,
        };
    }
    match (cur, last) {
        (Value::Object(map), Seg::Key(k)) => map.shift_remove(k).is_some(),
        (Value::Array(items), Seg::Index(i)) if *i < items.len() => {
            items.remove(*i);
            true
        }
        _ => false,
    }
}

/// The concrete paths in `obj` of the leaf fields a server-side apply
/// field set (`metadata.managedFields[].fieldsV1`) names: `f:<name>` is a
/// field, `k:<json>` the list item whose keys match, `v:<json>` the list
/// item equal to the value, `i:<n>` an index. Paths are returned deepest
/// first within a list so that removing them in order keeps indices valid.
pub(crate) fn fields_v1_paths(fields: &Value, obj: &Value) -> Vec<Vec<Seg>> {
    let mut out = Vec::new();
    walk(fields, obj, &mut Vec::new(), &mut out);
    // Remove list items from the highest index down.
    out.sort_by(|a, b| b.cmp(a));
    out
}

fn walk(fields: &Value, obj: &Value, at: &mut Vec<Seg>, out: &mut Vec<Vec<Seg>>) {
    let Some(set) = fields.as_object() else {
        return;
    };
    let leaf = set.is_empty();
    if leaf {
        out.push(at.clone());
        return;
    }
    for (key, sub) in set {
        if key == "." {
            // The node itself is owned (a list item or map), beside its children.
            if sub.as_object().is_some_and(|m| m.is_empty()) && !at.is_empty() {
                out.push(at.clone());
            }
            continue;
        }
        if let Some(name) = key.strip_prefix("f:") {
            if let Some(child) = obj.get(name) {
                at.push(Seg::Key(name.to_string()));
                walk(sub, child, at, out);
                at.pop();
            }
        } else if let Some(json) = key.strip_prefix("k:") {
            let Ok(Value::Object(keys)) = serde_json::from_str::<Value>(json) else {
                continue;
            };
            if let Some(items) = obj.as_array()
                && let Some(i) = items.iter().position(|item| {
                    keys.iter()
                        .all(|(k, v)| item.get(k).is_some_and(|x| scalar_eq(x, v)))
                })
            {
                at.push(Seg::Index(i));
                walk(sub, &items[i], at, out);
                at.pop();
            }
        } else if let Some(json) = key.strip_prefix("v:") {
            let Ok(value) = serde_json::from_str::<Value>(json) else {
                continue;
            };
            if let Some(items) = obj.as_array()
                && let Some(i) = items.iter().position(|item| *item == value)
            {
                at.push(Seg::Index(i));
                out.push(at.clone());
                at.pop();
            }
        } else if let Some(n) = key.strip_prefix("i:")
            && let (Ok(i), Some(items)) = (n.parse::<usize>(), obj.as_array())
            && let Some(item) = items.get(i)
        {
            at.push(Seg::Index(i));
            walk(sub, item, at, out);
            at.pop();
        }
    }
}

/// Keys in `k:` are written as JSON, where an integer port is `8080` and the
/// object may hold it as `8080` too; strings compare as strings.
fn scalar_eq(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => x.as_f64() == y.as_f64(),
        _ => a == b,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn pointers_remove_and_unescape() {
        let mut obj =
            json!({"metadata": {"annotations": {"a/b": "1", "c": "2"}}, "list": [1, 2, 3]});
        assert!(remove_pointer(&mut obj, "/metadata/annotations/a~1b"));
        assert!(remove_pointer(&mut obj, "/list/1"));
        assert!(!remove_pointer(&mut obj, "/missing/x"));
        assert!(!remove_pointer(&mut obj, "/list/9"));
        assert_eq!(
            obj,
            json!({"metadata": {"annotations": {"c": "2"}}, "list": [1, 3]})
        );
    }

    #[test]
    fn fields_v1_names_concrete_paths() {
        let obj = json!({"spec": {"replicas": 3, "template": {"spec": {"containers": [
            {"name": "a", "image": "a:1"}, {"name": "b", "image": "b:1"}
        ]}}}});
        let fields = json!({"f:spec": {"f:replicas": {}, "f:template": {"f:spec": {"f:containers": {
            "k:{\"name\":\"b\"}": {".": {}, "f:image": {}}
        }}}}});
        let paths = fields_v1_paths(&fields, &obj);
        let shown: Vec<String> = paths.iter().map(|p| Path(p.clone()).to_string()).collect();
        assert!(shown.contains(&".spec.replicas".to_string()), "{shown:?}");
        assert!(
            shown.contains(&".spec.template.spec.containers[1].image".to_string()),
            "{shown:?}"
        );
    }

    #[test]
    fn paths_display_like_jq() {
        let p = Path(vec![
            Seg::Key("metadata".into()),
            Seg::Key("annotations".into()),
            Seg::Key("a.b/c".into()),
            Seg::Index(2),
        ]);
        assert_eq!(p.to_string(), ".metadata.annotations[\"a.b/c\"][2]");
    }
}
