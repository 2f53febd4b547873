//! Prometheus metrics under Argo CD's names where Argo CD has them, in the
//! text exposition format: `argocd_app_info`, `argocd_app_sync_total`,
//! `argocd_app_reconcile` (histogram, seconds),
//! `argocd_cluster_api_resource_objects`, `argocd_git_request_total` and
//! `argocd_git_request_duration_seconds`, and the process's own
//! (`process_resident_memory_bytes`, `process_cpu_seconds_total`,
//! `process_open_fds`, `process_start_time_seconds`). Served by the API
//! server at `/metrics` for the controller in its process.

use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::Mutex;
use std::time::Duration;

use serde_json::Value;

/// `argocd_app_reconcile`'s upper bounds, in seconds (Argo CD's).
pub const RECONCILE_BUCKETS: [f64; 7] = [0.25, 0.5, 1.0, 2.0, 4.0, 8.0, 16.0];

#[derive(Debug, Default)]
struct Histogram {
    buckets: [u64; RECONCILE_BUCKETS.len()],
    count: u64,
    sum: f64,
}

/// What the controller counts as it runs; kept across its restarts.
#[derive(Debug, Default)]
pub struct Metrics {
    /// (app, project, destination server, phase) → syncs.
    syncs: Mutex<BTreeMap<(String, String, String, String), u64>>,
    /// (control namespace, destination server) → reconcile durations.
    reconciles: Mutex<BTreeMap<(String, String), Histogram>>,
}

impl Metrics {
    /// Counts a finished sync of `app` (as stored) ending in `phase`.
    pub fn sync_finished(&self, app: &Value, phase: &str) {
        let key = (
            text(app, "/metadata/name").to_string(),
            project(app).to_string(),
            text(app, "/spec/destination/server").to_string(),
            phase.to_string(),
        );
        if let Ok(mut s) = self.syncs.lock() {
            *s.entry(key).or_default() += 1;
        }
    }

    /// Records how long one reconcile of an app deploying to `server` took.
    pub fn reconciled(&self, namespace: &str, server: &str, took: Duration) {
        let Ok(mut r) = self.reconciles.lock() else {
            return;
        };
        let h = r
            .entry((namespace.to_string(), server.to_string()))
            .or_default();
        let secs = took.as_secs_f64();
        h.count += 1;
        h.sum += secs;
        for (i, bound) in RECONCILE_BUCKETS.iter().enumerate() {
            if secs <= *bound {
                h.buckets[i] += 1;
            }
        }
    }

    /// The exposition: these counters, `apps` (as stored) for
    /// `argocd_app_info`, and `objects` live objects watched.
    pub fn render(&self, apps: &[Value], objects: usize) -> String {
        let mut out = String::new();
        let _ = writeln!(out, "# HELP argocd_app_info Information about application.");
        let _ = writeln!(out, "# TYPE argocd_app_info gauge");
        for a in apps {
            let automated = a
                .pointer("/spec/syncPolicy/automated")
                .is_some_and(|x| x.is_object() && x.get("enabled") != Some(&Value::Bool(false)));
            let operation = a
                .pointer("/status/operationState/phase")
                .and_then(Value::as_str)
                .filter(|p| *p == "Running" || *p == "Terminating")
                .map(|_| "sync")
                .unwrap_or("");
            let _ = writeln!(
                out,
                "argocd_app_info{{autosync_enabled=\"{automated}\",dest_namespace=\"{}\",dest_server=\"{}\",health_status=\"{}\",name=\"{}\",namespace=\"{}\",operation=\"{operation}\",project=\"{}\",repo=\"{}\",sync_status=\"{}\"}} 1",
                esc(text(a, "/spec/destination/namespace")),
                esc(text(a, "/spec/destination/server")),
                esc(text(a, "/status/health/status")),
                esc(text(a, "/metadata/name")),
                esc(text(a, "/metadata/namespace")),
                esc(project(a)),
                esc(berth_source::url::redact(repo(a))),
                esc(text(a, "/status/sync/status")),
            );
        }
        let _ = writeln!(
            out,
            "# HELP argocd_app_sync_total Number of application syncs."
        );
        let _ = writeln!(out, "# TYPE argocd_app_sync_total counter");
        if let Ok(s) = self.syncs.lock() {
            for ((name, project, server, phase), n) in s.iter() {
                let _ = writeln!(
                    out,
                    "argocd_app_sync_total{{dest_server=\"{}\",name=\"{}\",phase=\"{}\",project=\"{}\"}} {n}",
                    esc(server),
                    esc(name),
                    esc(phase),
                    esc(project)
                );
            }
        }
        let _ = writeln!(
            out,
            "# HELP argocd_app_reconcile Application reconciliation performance in seconds."
        );
        let _ = writeln!(out, "# TYPE argocd_app_reconcile histogram");
        if let Ok(r) = self.reconciles.lock() {
            for ((namespace, server), h) in r.iter() {
                let labels = format!(
                    "dest_server=\"{}\",namespace=\"{}\"",
                    esc(server),
                    esc(namespace)
                );
                for (i, bound) in RECONCILE_BUCKETS.iter().enumerate() {
                    let _ = writeln!(
                        out,
                        "argocd_app_reconcile_bucket{{{labels},le=\"{bound}\"}} {}",
                        h.buckets[i]
                    );
                }
                let _ = writeln!(
                    out,
                    "argocd_app_reconcile_bucket{{{labels},le=\"+Inf\"}} {}",
                    h.count
                );
                let _ = writeln!(out, "argocd_app_reconcile_sum{{{labels}}} {}", h.sum);
                let _ = writeln!(out, "argocd_app_reconcile_count{{{labels}}} {}", h.count);
            }
        }
        let _ = writeln!(
            out,
            "# HELP argocd_cluster_api_resource_objects Number of k8s resource objects in the cache."
        );
        let _ = writeln!(out, "# TYPE argocd_cluster_api_resource_objects gauge");
        let _ = writeln!(
            out,
            "argocd_cluster_api_resource_objects{{server=\"{}\"}} {objects}",
            crate::controller::IN_CLUSTER
        );
        let git = berth_source::metrics::snapshot();
        let _ = writeln!(
            out,
            "# HELP argocd_git_request_total Number of git requests performed by repo server"
        );
        let _ = writeln!(out, "# TYPE argocd_git_request_total counter");
        for ((repo, kind), g) in &git {
            let _ = writeln!(
                out,
                "argocd_git_request_total{{repo=\"{}\",request_type=\"{kind}\"}} {}",
                esc(repo),
                g.count
            );
        }
        let _ = writeln!(
            out,
            "# HELP argocd_git_request_duration_seconds Git requests duration seconds."
        );
        let _ = writeln!(out, "# TYPE argocd_git_request_duration_seconds histogram");
        for ((repo, kind), g) in &git {
            let labels = format!("repo=\"{}\",request_type=\"{kind}\"", esc(repo));
            for (i, bound) in berth_source::metrics::BUCKETS.iter().enumerate() {
                let _ = writeln!(
                    out,
                    "argocd_git_request_duration_seconds_bucket{{{labels},le=\"{bound}\"}} {}",
                    g.buckets[i]
                );
            }
            let _ = writeln!(
                out,
                "argocd_git_request_duration_seconds_bucket{{{labels},le=\"+Inf\"}} {}",
                g.count
            );
            let _ = writeln!(
                out,
                "argocd_git_request_duration_seconds_sum{{{labels}}} {}",
                g.sum
            );
            let _ = writeln!(
                out,
                "argocd_git_request_duration_seconds_count{{{labels}}} {}",
                g.count
            );
        }
        let _ = writeln!(
            out,
            "# HELP berth_git_request_failures_total Git requests that failed (extension)."
        );
        let _ = writeln!(out, "# TYPE berth_git_request_failures_total counter");
        for ((repo, kind), g) in &git {
            let _ = writeln!(
                out,
                "berth_git_request_failures_total{{repo=\"{}\",request_type=\"{kind}\"}} {}",
                esc(repo),
                g.failed
            );
        }
        out.push_str(&process());
        out
    }
}

fn text<'a>(v: &'a Value, p: &str) -> &'a str {
    v.pointer(p).and_then(Value::as_str).unwrap_or_default()
}

fn project(app: &Value) -> &str {
    match text(app, "/spec/project") {
        "" => "default",
        p => p,
    }
}

fn repo(app: &Value) -> &str {
    match text(app, "/spec/source/repoURL") {
        "" => text(app, "/spec/sources/0/repoURL"),
        r => r,
    }
}

/// A label value, escaped as the format wants.
fn esc(s: impl AsRef<str>) -> String {
    s.as_ref()
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

/// The process's own metrics, from `/proc` (Linux); nothing elsewhere.
fn process() -> String {
    let mut out = String::new();
    let Ok(stat) = std::fs::read_to_string("/proc/self/stat") else {
        return out;
    };
    // Fields after the command name, which may hold spaces.
    let fields: Vec<&str> = stat
        .rsplit_once(')')
        .map(|(_, rest)| rest.split_whitespace().collect())
        .unwrap_or_default();
    // Linux's clock tick (100 Hz) and page size (4 KiB) on the platforms
    // Berth builds for; asking sysconf would need libc for two constants.
    let ticks = 100.0;
    let page = 4096.0;
    let field = |i: usize| fields.get(i).and_then(|f| f.parse::<f64>().ok());
    if let (Some(utime), Some(stime)) = (field(11), field(12)) {
        let _ = writeln!(
            out,
            "# HELP process_cpu_seconds_total Total user and system CPU time spent in seconds."
        );
        let _ = writeln!(out, "# TYPE process_cpu_seconds_total counter");
        let _ = writeln!(out, "process_cpu_seconds_total {}", (utime + stime) / ticks);
    }
    if let Some(rss) = field(21) {
        let _ = writeln!(
            out,
            "# HELP process_resident_memory_bytes Resident memory size in bytes."
        );
        let _ = writeln!(out, "# TYPE process_resident_memory_bytes gauge");
        let _ = writeln!(out, "process_resident_memory_bytes {}", rss * page);
    }
    if let (Some(start), Ok(uptime)) = (field(19), std::fs::read_to_string("/proc/uptime")) {
        let up: f64 = uptime
            .split_whitespace()
            .next()
            .and_then(|u| u.parse().ok())
            .unwrap_or(0.0);
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs_f64())
            .unwrap_or(0.0);
        let _ = writeln!(
            out,
            "# HELP process_start_time_seconds Start time of the process since unix epoch in seconds."
        );
        let _ = writeln!(out, "# TYPE process_start_time_seconds gauge");
        let _ = writeln!(
            out,
            "process_start_time_seconds {:.0}",
            now - up + start / ticks
        );
    }
    if let Ok(fds) = std::fs::read_dir("/proc/self/fd") {
        let _ = writeln!(
            out,
            "# HELP process_open_fds Number of open file descriptors."
        );
        let _ = writeln!(out, "# TYPE process_open_fds gauge");
        let _ = writeln!(out, "process_open_fds {}", fds.count());
    }
    out
}
