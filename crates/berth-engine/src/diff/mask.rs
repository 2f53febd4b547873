//! Secret values never leave the engine: before anything is compared or
//! shown, each value of a Secret's `data` is replaced by a mask of `+`
//! characters. Per key, the first distinct value gets eight, each further
//! distinct value four more (Argo CD's masks), so equal values keep equal
//! masks and different values different ones, and the comparison made on
//! masks gives the same answer as on the values.

use serde_json::{Map, Value};

fn mask(n: usize) -> Value {
    Value::String("+".repeat(8 + 4 * n))
}

/// Masks the values under `field` (an object) of both sides, key by key.
fn mask_map(
    target: Option<&mut Map<String, Value>>,
    live: Option<&mut Map<String, Value>>,
    only: Option<&[String]>,
) {
    let mut sides: Vec<&mut Map<String, Value>> = target.into_iter().chain(live).collect();
    let mut keys: Vec<String> = Vec::new();
    for side in &sides {
        for k in side.keys() {
            if !keys.contains(k) && only.is_none_or(|o| o.contains(k)) {
                keys.push(k.clone());
            }
        }
    }
    for key in keys {
        let mut seen: Vec<Value> = Vec::new();
        for side in sides.iter_mut() {
            if let Some(v) = side.get_mut(&key) {
                let n = match seen.iter().position(|s| s == v) {
                    Some(n) => n,
                    None => {
                        seen.push(v.clone());
                        seen.len() - 1
                    }
                };
                *v = mask(n);
            }
        }
    }
}

/// Masks `data` of a Secret on both sides (`stringData` has already been
/// folded into `data` by normalization; any left is masked too).
pub(super) fn secrets(mut target: Option<&mut Value>, mut live: Option<&mut Value>) {
    for field in ["data", "stringData"] {
        let t = target
            .as_deref_mut()
            .and_then(|t| t.get_mut(field))
            .and_then(Value::as_object_mut);
        let l = live
            .as_deref_mut()
            .and_then(|l| l.get_mut(field))
            .and_then(Value::as_object_mut);
        mask_map(t, l, None);
    }
}

/// Masks the listed annotations on both sides.
pub(super) fn annotations(target: Option<&mut Value>, live: Option<&mut Value>, keys: &[String]) {
    let t = target
        .and_then(|t| t.pointer_mut("/metadata/annotations"))
        .and_then(Value::as_object_mut);
    let l = live
        .and_then(|l| l.pointer_mut("/metadata/annotations"))
        .and_then(Value::as_object_mut);
    mask_map(t, l, Some(keys));
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn equal_values_equal_masks_different_values_different_masks() {
        let mut t = json!({"data": {"a": "c2VjcmV0", "b": "eA==", "c": "bmV3"}});
        let mut l = json!({"data": {"a": "c2VjcmV0", "b": "eQ==", "d": "b2xk"}});
        secrets(Some(&mut t), Some(&mut l));
        assert_eq!(t["data"]["a"], l["data"]["a"]);
        assert_eq!(t["data"]["a"], "++++++++");
        assert_ne!(t["data"]["b"], l["data"]["b"]);
        assert_eq!(l["data"]["b"], "++++++++++++");
        assert_eq!(t["data"]["c"], "++++++++");
        assert_eq!(l["data"]["d"], "++++++++");
        let text = format!("{t}{l}");
        for secret in ["c2VjcmV0", "eA==", "eQ==", "bmV3", "b2xk"] {
            assert!(!text.contains(secret));
        }
    }
}
