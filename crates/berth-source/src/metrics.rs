//! Requests made to Git remotes, counted for Prometheus under Argo CD's
//! names (`argocd_git_request_total`, `argocd_git_request_duration_seconds`):
//! per repository (credentials removed from the URL) and request type
//! (`ls-remote`, `fetch`). Process-wide, as the remotes are.

use std::collections::BTreeMap;
use std::sync::{LazyLock, Mutex};
use std::time::Duration;

/// The histogram's upper bounds, in seconds (Argo CD's).
pub const BUCKETS: [f64; 7] = [0.1, 0.25, 0.5, 1.0, 2.0, 4.0, 10.0];

/// One repository and request type.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct GitRequests {
    /// Requests made.
    pub count: u64,
    /// Of them, failed.
    pub failed: u64,
    /// Requests at or under each of [`BUCKETS`].
    pub buckets: [u64; BUCKETS.len()],
    /// Seconds, summed.
    pub sum: f64,
}

static GIT: LazyLock<Mutex<BTreeMap<(String, &'static str), GitRequests>>> =
    LazyLock::new(|| Mutex::new(BTreeMap::new()));

/// Records one request to `repo`.
pub fn record(repo: &str, kind: &'static str, took: Duration, ok: bool) {
    let Ok(mut all) = GIT.lock() else {
        return;
    };
    let entry = all.entry((crate::url::redact(repo), kind)).or_default();
    entry.count += 1;
    if !ok {
        entry.failed += 1;
    }
    let secs = took.as_secs_f64();
    entry.sum += secs;
    for (i, bound) in BUCKETS.iter().enumerate() {
        if secs <= *bound {
            entry.buckets[i] += 1;
        }
    }
}

/// Every repository and request type so far.
pub fn snapshot() -> Vec<((String, &'static str), GitRequests)> {
    GIT.lock()
        .map(|all| all.iter().map(|(k, v)| (k.clone(), v.clone())).collect())
        .unwrap_or_default()
}
