//! Keeping an Application small, and the full story elsewhere. Kubernetes
//! objects are limited in size (etcd refuses requests past 1.5 MiB, and
//! every watcher of Applications pays for each byte on every change), so
//! the lists in `status` are held to a budget: an app of 5,000 resources
//! stays well under 512 KiB. When a list must be cut, the entries that need
//! attention (out of sync, unhealthy, to prune, failed) are kept first, and
//! the cut is stated in the status (`status.berth`, an extension). Every
//! sync's complete per-resource result goes to SyncRecord objects (Berth's
//! API group), owned by the Application and kept for the last
//! [`RECORDS_KEPT`] syncs.

use serde_json::{Value, json};

/// Bytes of JSON `status.resources` may take.
pub const RESOURCES_BUDGET: usize = 300 * 1024;
/// Bytes of JSON `status.operationState.syncResult.resources` may take.
pub const SYNC_RESULT_BUDGET: usize = 100 * 1024;
/// Longest condition message kept, in bytes.
pub const CONDITION_MESSAGE_LIMIT: usize = 4096;
/// Most conditions kept.
pub const CONDITIONS_LIMIT: usize = 20;
/// Bytes of resource results one SyncRecord holds (well under etcd's
/// request limit).
pub const RECORD_PART_BUDGET: usize = 700 * 1024;
/// Syncs whose records are kept per application.
pub const RECORDS_KEPT: usize = 100;
/// The label naming a record's application (shortened when too long for
/// a label value).
pub const APP_LABEL: &str = "berth.io/application";

/// What [`fit`] left out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cut {
    /// Entries in the whole list.
    pub total: usize,
    /// Entries kept.
    pub shown: usize,
}

/// Keeps the entries of `list` that fit in `budget` bytes of JSON: first
/// those `important` selects, then the others, each group in list order;
/// the result keeps the list's order. `None` when nothing was cut.
pub fn fit(
    list: Vec<Value>,
    budget: usize,
    important: impl Fn(&Value) -> bool,
) -> (Vec<Value>, Option<Cut>) {
    let sizes: Vec<usize> = list.iter().map(|v| v.to_string().len() + 1).collect();
    if sizes.iter().sum::<usize>() <= budget {
        return (list, None);
    }
    let mut keep = vec![false; list.len()];
    let mut used = 0;
    for first in [true, false] {
        for (i, v) in list.iter().enumerate() {
            if keep[i] || important(v) != first {
                continue;
            }
            if used + sizes[i] > budget {
                continue;
            }
            used += sizes[i];
            keep[i] = true;
        }
    }
    let total = list.len();
    let kept: Vec<Value> = list
        .into_iter()
        .zip(keep)
        .filter_map(|(v, k)| k.then_some(v))
        .collect();
    let shown = kept.len();
    (kept, Some(Cut { total, shown }))
}

/// A `status.resources` entry that needs attention.
pub fn resource_needs_attention(r: &Value) -> bool {
    r.get("status").and_then(Value::as_str) != Some("Synced")
        || r.get("requiresPruning").and_then(Value::as_bool) == Some(true)
        || r.pointer("/health/status")
            .and_then(Value::as_str)
            .is_some_and(|h| h != "Healthy")
}

/// A `syncResult.resources` entry that needs attention.
pub fn result_needs_attention(r: &Value) -> bool {
    r.get("hookType").is_some() || r.get("status").and_then(Value::as_str) != Some("Synced")
}

/// Shortens condition messages and drops conditions past the limit, so one
/// pathological error cannot push the Application over its size.
pub fn bound_conditions(conditions: &mut Vec<Value>) {
    conditions.truncate(CONDITIONS_LIMIT);
    for c in conditions {
        if let Some(m) = c.get("message").and_then(Value::as_str)
            && m.len() > CONDITION_MESSAGE_LIMIT
        {
            let mut end = CONDITION_MESSAGE_LIMIT;
            while !m.is_char_boundary(end) {
                end -= 1;
            }
            let short = format!("{}… ({} bytes in all)", &m[..end], m.len());
            c["message"] = json!(short);
        }
    }
}

/// A label value for `app`: the name when it fits a label, otherwise a
/// prefix and a hash of the whole name.
pub fn app_label_value(app: &str) -> String {
    if app.len() <= 63 {
        return app.to_string();
    }
    let mut hash: u64 = 0xcbf29ce484222325;
    for b in app.bytes() {
        hash ^= u64::from(b);
        hash = hash.wrapping_mul(0x100000001b3);
    }
    format!("{}-{hash:016x}", app[..46].trim_end_matches(['-', '.']))
}

/// What one sync's records say besides the resources.
#[derive(Debug, Clone)]
pub struct SyncSummary<'a> {
    /// The Application's name.
    pub app: &'a str,
    /// Its uid, for the owner reference.
    pub app_uid: &'a str,
    /// The control namespace.
    pub namespace: &'a str,
    /// Seconds since the epoch when the sync started (names the records).
    pub started_secs: i64,
    /// `operationState` without `syncResult.resources`.
    pub state: &'a Value,
}

/// The SyncRecord objects for one sync: its results split into parts that
/// each fit a request.
pub fn records(summary: &SyncSummary<'_>, resources: &[Value]) -> Vec<Value> {
    let mut parts: Vec<Vec<Value>> = vec![Vec::new()];
    let mut used = 0;
    for r in resources {
        let size = r.to_string().len() + 1;
        if used + size > RECORD_PART_BUDGET && parts.last().is_some_and(|p| !p.is_empty()) {
            parts.push(Vec::new());
            used = 0;
        }
        used += size;
        if let Some(p) = parts.last_mut() {
            p.push(r.clone());
        }
    }
    let count = parts.len();
    let base = record_base(summary.app, summary.started_secs);
    let text = |p: &str| summary.state.pointer(p).cloned().unwrap_or(Value::Null);
    parts
        .into_iter()
        .enumerate()
        .map(|(i, part)| {
            json!({
                "apiVersion": format!("{}/v1alpha1", berth_api::crds::BERTH_GROUP),
                "kind": "SyncRecord",
                "metadata": {
                    "name": format!("{base}-{i}"),
                    "namespace": summary.namespace,
                    "labels": {
                        APP_LABEL: app_label_value(summary.app),
                        "berth.io/sync": summary.started_secs.to_string(),
                    },
                    "ownerReferences": [{
                        "apiVersion": "argoproj.io/v1alpha1",
                        "kind": "Application",
                        "name": summary.app,
                        "uid": summary.app_uid,
                    }],
                },
                "spec": {
                    "application": summary.app,
                    "phase": text("/phase"),
                    "message": text("/message"),
                    "revision": text("/syncResult/revision"),
                    "startedAt": text("/startedAt"),
                    "finishedAt": text("/finishedAt"),
                    "operation": text("/operation"),
                    "initiatedBy": text("/operation/initiatedBy"),
                    "part": i,
                    "parts": count,
                    "resourceCount": resources.len(),
                    "resources": part,
                },
            })
        })
        .collect()
}

/// The name shared by one sync's records, before the part number.
pub fn record_base(app: &str, started_secs: i64) -> String {
    // Object names are at most 253 characters.
    let app: String = app.chars().take(220).collect();
    format!("{app}-{started_secs}")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(i: usize, status: &str) -> Value {
        json!({"version": "v1", "kind": "ConfigMap", "namespace": "shop", "name": format!("cm-{i:05}"), "status": status})
    }

    #[test]
    fn small_lists_are_untouched() {
        let list: Vec<Value> = (0..10).map(|i| entry(i, "Synced")).collect();
        let (kept, cut) = fit(list.clone(), RESOURCES_BUDGET, resource_needs_attention);
        assert_eq!(kept, list);
        assert_eq!(cut, None);
    }

    #[test]
    fn five_thousand_resources_fit_keeping_what_needs_attention() {
        let list: Vec<Value> = (0..5000)
            .map(|i| {
                entry(
                    i,
                    if i % 1000 == 999 {
                        "OutOfSync"
                    } else {
                        "Synced"
                    },
                )
            })
            .collect();
        let (kept, cut) = fit(list, RESOURCES_BUDGET, resource_needs_attention);
        let cut = cut.unwrap();
        assert_eq!(cut.total, 5000);
        assert_eq!(cut.shown, kept.len());
        assert!(kept.len() < 5000 && kept.len() > 1000, "{}", kept.len());
        let size: usize = kept.iter().map(|v| v.to_string().len() + 1).sum();
        assert!(size <= RESOURCES_BUDGET);
        let out: Vec<&Value> = kept.iter().filter(|r| r["status"] == "OutOfSync").collect();
        assert_eq!(
            out.len(),
            5,
            "every out-of-sync entry kept, though last in the list"
        );
        let names: Vec<&str> = kept.iter().map(|r| r["name"].as_str().unwrap()).collect();
        let mut sorted = names.clone();
        sorted.sort();
        assert_eq!(names, sorted, "list order kept");
    }

    #[test]
    fn conditions_are_bounded() {
        let mut c: Vec<Value> = (0..30)
            .map(|_| json!({"type": "ComparisonError", "message": "é".repeat(5000)}))
            .collect();
        bound_conditions(&mut c);
        assert_eq!(c.len(), CONDITIONS_LIMIT);
        let m = c[0]["message"].as_str().unwrap();
        assert!(m.len() < CONDITION_MESSAGE_LIMIT + 64);
        assert!(
            m.ends_with("(10000 bytes in all)"),
            "{}",
            &m[m.len() - 40..]
        );
    }

    #[test]
    fn records_split_into_parts_that_fit_a_request() {
        let resources: Vec<Value> = (0..20_000).map(|i| entry(i, "Synced")).collect();
        let state =
            json!({"phase": "Succeeded", "syncResult": {"revision": "abc"}, "startedAt": "t"});
        let summary = SyncSummary {
            app: "shop",
            app_uid: "uid-1",
            namespace: "argocd",
            started_secs: 1_795_883_392,
            state: &state,
        };
        let recs = records(&summary, &resources);
        assert!(recs.len() >= 2);
        let mut total = 0;
        for (i, r) in recs.iter().enumerate() {
            assert!(r.to_string().len() < 1024 * 1024);
            assert_eq!(r["metadata"]["name"], format!("shop-1795883392-{i}"));
            assert_eq!(r["spec"]["parts"], recs.len());
            assert_eq!(r["spec"]["revision"], "abc");
            assert_eq!(r["metadata"]["ownerReferences"][0]["uid"], "uid-1");
            total += r["spec"]["resources"].as_array().unwrap().len();
        }
        assert_eq!(total, 20_000, "every result recorded");
    }

    #[test]
    fn long_names_make_valid_labels() {
        let long = "a".repeat(100);
        let v = app_label_value(&long);
        assert!(v.len() <= 63, "{v}");
        assert_ne!(app_label_value(&format!("{long}b")), v);
        assert_eq!(app_label_value("shop"), "shop");
    }
}
