//! One comparison of an application: desired objects (rendered from Git),
//! live objects (from the shared cache), the server-side dry run of each
//! desired object as the exact target, then the engine's diff and health,
//! turned into the Application's `status` as Argo CD 3 writes it.

use std::collections::{BTreeMap, HashMap};
use std::hash::{Hash, Hasher};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use berth_cluster::apply::{Applier, ApplyOptions};
use berth_cluster::discovery::ResourceTypes;
use berth_cluster::live::ObjectKey;
use berth_engine::diff::{self, DiffOptions, IgnoreRule, ResourceDiff, SyncStatus};
use berth_engine::health::{self, AppResource, HealthChecks, Status};
use berth_engine::settings::Settings;
use futures::StreamExt;
use serde_json::{Value, json};

/// What a comparison found, ready to be written as `status`.
#[derive(Debug, Clone)]
pub struct Comparison {
    /// The app's sync status.
    pub sync: SyncStatus,
    /// The app's health.
    pub health: Status,
    /// One entry per resource, in `status.resources` form.
    pub resources: Vec<Value>,
    /// Problems that made the comparison impossible (the sync status is
    /// then Unknown), each a message.
    pub errors: Vec<String>,
    /// Problems worth reporting that did not stop the comparison: the API
    /// server refused the dry run of an object (the offline target was used).
    pub warnings: Vec<String>,
    /// Each object as the sync planner takes it: desired, live, in sync.
    pub pairs: Vec<berth_engine::plan::Resource>,
    /// Each compared object's diff, with its normalized, masked live and
    /// target (hooks are not compared).
    pub diffs: Vec<ResourceDiff>,
}

/// Everything a comparison reads.
pub struct Inputs<'a> {
    /// Desired objects, marked with tracking.
    pub desired: &'a [Value],
    /// The app's live objects from the cache.
    pub live: &'a [Arc<Value>],
    /// The app's `ignoreDifferences`.
    pub ignore: &'a [Value],
    /// `argocd-cm`'s customizations, compiled once.
    pub customizations: &'a Customizations,
    /// Earlier dry runs, reused while neither side changed.
    pub dry_runs: Option<&'a DryRuns>,
}

/// Server-side dry-run results, keyed by the desired object and the live
/// object's `resourceVersion`: while neither changes, the API server's
/// answer cannot either (apart from defaults that depend on other objects,
/// which is why entries also expire). This is what makes comparing an
/// unchanged app cheap: no request per object.
#[derive(Debug, Default)]
pub struct DryRuns {
    entries: Mutex<HashMap<u64, DryRun>>,
}

/// One cached dry run: the live version it was made against, when, and
/// the API server's answer.
type DryRun = (String, Instant, Arc<Value>);

impl DryRuns {
    /// Results older than this are asked for again.
    pub const MAX_AGE: Duration = Duration::from_secs(600);
    /// Past this many entries the cache starts over.
    pub const CAPACITY: usize = 200_000;

    fn key(desired: &Value) -> u64 {
        let mut h = std::collections::hash_map::DefaultHasher::new();
        desired.to_string().hash(&mut h);
        h.finish()
    }

    fn get(&self, key: u64, live_version: &str) -> Option<Arc<Value>> {
        let entries = self.entries.lock().ok()?;
        let (version, at, result) = entries.get(&key)?;
        (version == live_version && at.elapsed() < Self::MAX_AGE).then(|| Arc::clone(result))
    }

    fn put(&self, key: u64, live_version: &str, result: Arc<Value>) {
        if let Ok(mut entries) = self.entries.lock() {
            if entries.len() >= Self::CAPACITY {
                entries.clear();
            }
            entries.insert(key, (live_version.to_string(), Instant::now(), result));
        }
    }

    /// How many results are held.
    pub fn len(&self) -> usize {
        self.entries.lock().map(|e| e.len()).unwrap_or(0)
    }

    /// Whether none is held.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// What `argocd-cm` adds to every comparison, compiled when it is read
/// rather than on every reconcile.
#[derive(Debug)]
pub struct Customizations {
    /// `resource.customizations.ignoreDifferences.*`, or why they cannot be
    /// used (reported on every app).
    pub ignore: Result<Vec<IgnoreRule>, String>,
    /// `resource.sensitive.mask.annotations`.
    pub mask_annotations: Vec<String>,
}

impl Customizations {
    /// Compiles what `settings` holds.
    pub fn new(settings: &Settings) -> Customizations {
        Customizations {
            ignore: settings
                .ignore_rules()
                .map_err(|e| format!("argocd-cm resource.customizations.ignoreDifferences: {e}")),
            mask_annotations: settings.mask_annotations.clone(),
        }
    }
}

/// Compares, asking the API server for a dry run of each desired object.
pub async fn compare(
    inputs: Inputs<'_>,
    types: &ResourceTypes,
    applier: &Applier,
    checks: &HealthChecks,
) -> Comparison {
    let mut errors = Vec::new();
    let mut ignore = match IgnoreRule::parse_list(inputs.ignore) {
        Ok(rules) => rules,
        Err(e) => {
            errors.push(format!("spec.{e}"));
            Vec::new()
        }
    };
    match &inputs.customizations.ignore {
        Ok(rules) => ignore.extend(rules.iter().cloned()),
        Err(e) => errors.push(e.clone()),
    }
    let opts = DiffOptions {
        ignore,
        field_manager: berth_cluster::apply::FIELD_MANAGER.into(),
        mask_annotations: inputs.customizations.mask_annotations.clone(),
    };
    let mut live_by_key: BTreeMap<ObjectKey, &Value> = inputs
        .live
        .iter()
        .map(|o| (ObjectKey::of(o), o.as_ref()))
        .collect();
    let mut resources = Vec::new();
    let mut diffs: Vec<ResourceDiff> = Vec::new();
    let mut healths = Vec::new();
    let mut pairs = Vec::new();
    let mut warnings = Vec::new();
    // The dry runs first, several in flight: at thousands of objects the
    // round trips dominate.
    let mut runs = Vec::with_capacity(inputs.desired.len());
    for desired in inputs.desired {
        let live = live_by_key.get(&ObjectKey::of(desired)).copied();
        runs.push(predict(desired, live, inputs.dry_runs, types, applier));
    }
    let mut predictions = futures::stream::iter(runs)
        .buffered(DRY_RUN_CONCURRENCY)
        .collect::<Vec<_>>()
        .await
        .into_iter();
    for desired in inputs.desired {
        // One prediction per desired object, hooks included.
        let (predicted, warning) = predictions.next().unwrap_or((None, None));
        warnings.extend(warning);
        let key = ObjectKey::of(desired);
        let live = live_by_key.remove(&key);
        if berth_engine::plan::is_hook(desired) {
            // Hooks run during syncs; they are not resources to compare.
            pairs.push(berth_engine::plan::Resource::desired(desired.clone()));
            if let Some(l) = live {
                resources.push(hook_status(&key, l, checks));
            }
            continue;
        }
        let api_version = desired
            .get("apiVersion")
            .and_then(Value::as_str)
            .unwrap_or_default();
        let d = match diff::diff(Some(desired), live, predicted.as_deref(), &opts) {
            Ok(d) => d,
            Err(e) => {
                errors.push(e.to_string());
                continue;
            }
        };
        let h = match live {
            Some(l) => checks.check(l),
            None => Some(health::Health::new(Status::Missing, "")),
        };
        resources.push(resource_status(&d, api_version, h.as_ref(), false));
        healths.push((live, h.map(|h| h.status), true));
        pairs.push(match live {
            Some(l) => berth_engine::plan::Resource::existing(
                desired.clone(),
                l.clone(),
                d.status == SyncStatus::Synced,
            ),
            None => berth_engine::plan::Resource::desired(desired.clone()),
        });
        diffs.push(d);
    }
    // Tracked live objects Git no longer has.
    for (key, live) in live_by_key {
        if berth_engine::plan::is_hook(live) {
            resources.push(hook_status(&key, live, checks));
            continue;
        }
        let api_version = live
            .get("apiVersion")
            .and_then(Value::as_str)
            .unwrap_or_default();
        let Ok(d) = diff::diff(None, Some(live), None, &opts) else {
            continue;
        };
        let h = checks.check(live);
        resources.push(resource_status(&d, api_version, h.as_ref(), true));
        healths.push((Some(live), h.map(|h| h.status), false));
        pairs.push(berth_engine::plan::Resource::extraneous(live.clone()));
        diffs.push(d);
    }
    let sync = if errors.is_empty() {
        diff::app_status(&diffs)
    } else {
        SyncStatus::Unknown
    };
    let health = health::app_health(healths.iter().map(|(live, status, in_git)| AppResource {
        live: *live,
        status: *status,
        in_git: *in_git,
        hook: false,
    }));
    Comparison {
        sync,
        health,
        resources,
        errors,
        warnings,
        pairs,
        diffs,
    }
}

/// `status.summary` as Argo CD fills it: the container images of the
/// app's live objects, and external URLs (Ingress hosts, and the
/// `link.argocd.argoproj.io/external-link` annotation), each sorted and
/// without duplicates.
pub fn summary(live: &[Arc<Value>]) -> Value {
    let mut images = std::collections::BTreeSet::new();
    let mut urls = std::collections::BTreeSet::new();
    for obj in live {
        for spec in [
            obj.pointer("/spec"),
            obj.pointer("/spec/template/spec"),
            obj.pointer("/spec/jobTemplate/spec/template/spec"),
        ]
        .into_iter()
        .flatten()
        {
            for list in ["initContainers", "containers"] {
                for c in spec
                    .get(list)
                    .and_then(Value::as_array)
                    .into_iter()
                    .flatten()
                {
                    if let Some(image) = c.get("image").and_then(Value::as_str) {
                        images.insert(image.to_string());
                    }
                }
            }
        }
        if let Some(link) = obj
            .pointer("/metadata/annotations")
            .and_then(|a| a.get("link.argocd.argoproj.io/external-link"))
            .and_then(Value::as_str)
        {
            urls.insert(link.to_string());
        }
        if obj.get("kind").and_then(Value::as_str) == Some("Ingress") {
            let tls_hosts: Vec<&str> = obj
                .pointer("/spec/tls")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
                .flat_map(|t| {
                    t.get("hosts")
                        .and_then(Value::as_array)
                        .into_iter()
                        .flatten()
                })
                .filter_map(Value::as_str)
                .collect();
            for rule in obj
                .pointer("/spec/rules")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
            {
                let Some(host) = rule.get("host").and_then(Value::as_str) else {
                    continue;
                };
                let scheme = if tls_hosts.contains(&host) {
                    "https"
                } else {
                    "http"
                };
                let paths: Vec<&str> = rule
                    .pointer("/http/paths")
                    .and_then(Value::as_array)
                    .into_iter()
                    .flatten()
                    .filter_map(|p| p.get("path").and_then(Value::as_str))
                    .collect();
                if paths.is_empty() {
                    urls.insert(format!("{scheme}://{host}/"));
                }
                for path in paths {
                    let path = if path.starts_with('/') {
                        path.to_string()
                    } else {
                        format!("/{path}")
                    };
                    urls.insert(format!("{scheme}://{host}{path}"));
                }
            }
        }
    }
    let mut out = json!({});
    if !images.is_empty() {
        out["images"] = json!(images);
    }
    if !urls.is_empty() {
        out["externalURLs"] = json!(urls);
    }
    out
}

/// A hook a sync left (by its delete policy): listed with `hook: true`, as
/// Argo CD lists it, but neither compared nor counted in the app's health.
fn hook_status(key: &ObjectKey, live: &Value, checks: &HealthChecks) -> Value {
    let version = live
        .get("apiVersion")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .rsplit('/')
        .next()
        .unwrap_or_default()
        .to_string();
    let mut r = json!({"group": key.group, "version": version, "kind": key.kind,
        "namespace": key.namespace, "name": key.name, "status": "Synced", "hook": true});
    if let Some(m) = r.as_object_mut() {
        m.retain(|_, v| v.as_str() != Some(""));
    }
    if let Some(h) = checks.check(live) {
        r["health"] = json!({"status": h.status.to_string()});
    }
    r
}

/// Dry runs in flight at once.
const DRY_RUN_CONCURRENCY: usize = 8;

/// The exact target of one desired object: the API server's dry run (or a
/// cached one), `None` for hooks, types not served yet and a destination
/// namespace that does not exist yet (compared offline then); a refusal is
/// returned as a warning.
async fn predict(
    desired: &Value,
    live: Option<&Value>,
    dry_runs: Option<&DryRuns>,
    types: &ResourceTypes,
    applier: &Applier,
) -> (Option<Arc<Value>>, Option<String>) {
    if berth_engine::plan::is_hook(desired) {
        return (None, None);
    }
    let api_version = desired
        .get("apiVersion")
        .and_then(Value::as_str)
        .unwrap_or_default();
    let kind = desired
        .get("kind")
        .and_then(Value::as_str)
        .unwrap_or_default();
    let live_version = live
        .and_then(|l| l.pointer("/metadata/resourceVersion"))
        .and_then(Value::as_str)
        .unwrap_or("absent");
    let cache_key = dry_runs.map(|_| DryRuns::key(desired));
    if let (Some(cache), Some(key)) = (dry_runs, cache_key)
        && let Some(hit) = cache.get(key, live_version)
    {
        return (Some(hit), None);
    }
    if types.resolve(api_version, kind).is_none() {
        return (None, None);
    }
    let opts = ApplyOptions {
        dry_run: true,
        force: true,
    };
    match applier.apply(types, desired, opts).await {
        Ok(p) => {
            let p = Arc::new(p);
            if let (Some(cache), Some(key)) = (dry_runs, cache_key) {
                cache.put(key, live_version, Arc::clone(&p));
            }
            (Some(p), None)
        }
        Err(berth_cluster::apply::ApplyError::Refused { code: 404, .. }) => (None, None),
        Err(e) => (None, Some(e.to_string())),
    }
}

fn resource_status(
    d: &ResourceDiff,
    api_version: &str,
    h: Option<&health::Health>,
    extraneous: bool,
) -> Value {
    let version = api_version.rsplit('/').next().unwrap_or_default();
    let mut r = json!({
        "group": d.group,
        "version": version,
        "kind": d.kind,
        "namespace": d.namespace,
        "name": d.name,
        "status": d.status.to_string(),
    });
    // Argo CD omits empty fields here; at 5,000 resources it matters.
    if let Some(m) = r.as_object_mut() {
        m.retain(|_, v| v.as_str() != Some(""));
    }
    if let Some(h) = h {
        r["health"] = if h.message.is_empty() {
            json!({"status": h.status.to_string()})
        } else {
            json!({"status": h.status.to_string(), "message": h.message})
        };
    }
    if extraneous {
        r["requiresPruning"] = json!(true);
    }
    r
}
