//! ApplicationSets (Argo CD's `argoproj.io/v1alpha1` ApplicationSet): each
//! generator yields parameter sets, each set fills the template, and the
//! resulting Applications are created, updated and deleted to match,
//! owned by their ApplicationSet (so deleting it deletes them).
//!
//! Generators: `list` (`elements`, nested values flattened as `a.b`),
//! `matrix` (every combination of two generators; the second may use the
//! first's parameters), `merge` (the first generator's sets, overridden
//! by later ones' with the same `mergeKeys`),
//! `clusters` (the local cluster and Argo CD's cluster Secrets, with
//! `selector`; parameters `name`, `nameNormalized`, `server`,
//! `metadata.labels.<key>`, `metadata.annotations.<key>`) and `git`
//! `directories` (parameters `path`, `path.basename`,
//! `path.basenameNormalized`, `path[N]`) or `files` (each JSON or YAML
//! file's values, with `path.filename`). A generator's own `template`
//! overrides fields of the set's. Templates use Argo CD's default
//! `{{param}}` syntax; a parameter not given leaves its tag as written.
//! `syncPolicy.applicationsSync` (`create-only`, `create-update`,
//! `create-delete`, `sync`) and `preserveResourcesOnDeletion` are
//! honoured. Not yet: other generators (SCM, pull requests, cluster
//! decision resources, plugins), `goTemplate`, progressive syncs.

use std::collections::{BTreeMap, HashSet};
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::core::v1::Secret;
use kube::Api;
use kube::api::{DeleteParams, DynamicObject, ListParams, Patch, PatchParams};
use serde_json::{Map, Value, json};

use crate::controller::Shared;

/// One parameter set.
pub type Params = BTreeMap<String, String>;

/// A cluster as the clusters generator sees it.
#[derive(Debug, Clone, Default)]
pub struct ClusterInfo {
    /// Its name (`in-cluster` for the local one).
    pub name: String,
    /// Its API server URL.
    pub server: String,
    /// Labels of its Secret.
    pub labels: BTreeMap<String, String>,
    /// Annotations of its Secret.
    pub annotations: BTreeMap<String, String>,
}

/// The field manager of generated Applications.
pub const MANAGER: &str = "berth-applicationset";

/// How often ApplicationSets are generated again.
const INTERVAL: Duration = Duration::from_secs(3);

/// Argo CD's normalization of a name for use in another name: lower case,
/// anything but letters, digits, `-` and `.` becomes `-`.
fn normalized(s: &str) -> String {
    s.to_lowercase()
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '.' {
                c
            } else {
                '-'
            }
        })
        .collect()
}

/// Nested values as dotted parameters (`values.size`).
fn flatten(prefix: &str, v: &Value, out: &mut Params) {
    match v {
        Value::Object(m) => {
            for (k, v) in m {
                let key = if prefix.is_empty() {
                    k.clone()
                } else {
                    format!("{prefix}.{k}")
                };
                flatten(&key, v, out);
            }
        }
        Value::String(s) => {
            out.insert(prefix.to_string(), s.clone());
        }
        Value::Null => {
            out.insert(prefix.to_string(), String::new());
        }
        other => {
            out.insert(prefix.to_string(), other.to_string());
        }
    }
}

/// Whether `labels` satisfy a Kubernetes label selector
/// (`matchLabels`, `matchExpressions` with In, NotIn, Exists,
/// DoesNotExist).
fn selected(selector: &Value, labels: &BTreeMap<String, String>) -> Result<bool, String> {
    for (k, v) in selector
        .get("matchLabels")
        .and_then(Value::as_object)
        .into_iter()
        .flatten()
    {
        if labels.get(k).map(String::as_str) != v.as_str() {
            return Ok(false);
        }
    }
    for e in selector
        .get("matchExpressions")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        let key = e.get("key").and_then(Value::as_str).unwrap_or_default();
        let values: Vec<&str> = e
            .get("values")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter_map(Value::as_str)
            .collect();
        let have = labels.get(key).map(String::as_str);
        let ok = match e
            .get("operator")
            .and_then(Value::as_str)
            .unwrap_or_default()
        {
            "In" => have.is_some_and(|h| values.contains(&h)),
            "NotIn" => have.is_none_or(|h| !values.contains(&h)),
            "Exists" => have.is_some(),
            "DoesNotExist" => have.is_none(),
            other => {
                return Err(format!(
                    "selector operator {other:?}: use In, NotIn, Exists or DoesNotExist"
                ));
            }
        };
        if !ok {
            return Ok(false);
        }
    }
    Ok(true)
}

/// Matches a slash-separated path against a pattern whose segments may
/// hold `*` and `?`, and whose `**` segment matches any number of
/// segments.
fn path_matches(pattern: &str, path: &str) -> bool {
    fn segment(p: &[u8], s: &[u8]) -> bool {
        match (p.first(), s.first()) {
            (None, None) => true,
            (Some(b'*'), _) => segment(&p[1..], s) || (!s.is_empty() && segment(p, &s[1..])),
            (Some(b'?'), Some(_)) => segment(&p[1..], &s[1..]),
            (Some(a), Some(b)) if a == b => segment(&p[1..], &s[1..]),
            _ => false,
        }
    }
    fn segments(p: &[&str], s: &[&str]) -> bool {
        match (p.first(), s.first()) {
            (None, None) => true,
            (Some(&"**"), _) => segments(&p[1..], s) || (!s.is_empty() && segments(p, &s[1..])),
            (Some(a), Some(b)) => segment(a.as_bytes(), b.as_bytes()) && segments(&p[1..], &s[1..]),
            _ => false,
        }
    }
    let p: Vec<&str> = pattern.trim_matches('/').split('/').collect();
    let s: Vec<&str> = path.trim_matches('/').split('/').collect();
    segments(&p, &s)
}

/// The directories and the regular files under `root` (relative,
/// `/`-separated, sorted), hidden ones and `.git` left out. Symbolic links
/// are not followed out of the checkout.
fn walk(root: &Path) -> (Vec<String>, Vec<String>) {
    let (mut dirs, mut files) = (Vec::new(), Vec::new());
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        for e in entries.flatten() {
            if e.file_name().to_string_lossy().starts_with('.') {
                continue;
            }
            let path = e.path();
            let Ok(kind) = e.file_type() else { continue };
            let Ok(rel) = path.strip_prefix(root) else {
                continue;
            };
            let rel = rel.to_string_lossy().replace('\\', "/");
            if kind.is_dir() {
                dirs.push(rel);
                stack.push(path);
            } else if kind.is_file() {
                files.push(rel);
            }
        }
    }
    dirs.sort();
    files.sort();
    (dirs, files)
}

/// The paths the generator's `{path, exclude}` entries select.
fn selected_paths<'a>(paths: &'a [String], entries: &[Value]) -> Vec<&'a String> {
    let (mut include, mut exclude) = (Vec::new(), Vec::new());
    for e in entries {
        let path = e.get("path").and_then(Value::as_str).unwrap_or_default();
        if e.get("exclude").and_then(Value::as_bool).unwrap_or(false) {
            exclude.push(path);
        } else {
            include.push(path);
        }
    }
    paths
        .iter()
        .filter(|d| include.iter().any(|p| path_matches(p, d)))
        .filter(|d| !exclude.iter().any(|p| path_matches(p, d)))
        .collect()
}

/// The git directories generator's parameters for one directory.
fn directory_params(path: &str) -> Params {
    let mut p = Params::new();
    let base = path.rsplit('/').next().unwrap_or(path);
    p.insert("path".into(), path.to_string());
    p.insert("path.basename".into(), base.to_string());
    p.insert("path.basenameNormalized".into(), normalized(base));
    for (i, seg) in path.split('/').filter(|s| !s.is_empty()).enumerate() {
        p.insert(format!("path[{i}]"), seg.to_string());
    }
    p
}

/// The git files generator: each matching JSON or YAML file gives its
/// values (a top-level list gives one set per item), with the file's
/// `path` (its directory), `path.basename`, `path.basenameNormalized`,
/// `path.filename`, `path.filenameNormalized` and `path[N]`.
fn file_params(root: &Path, files: &[Value], field: &str) -> Result<Vec<Params>, String> {
    let (_, all) = walk(root);
    let mut out = Vec::new();
    for file in selected_paths(&all, files) {
        let text = std::fs::read_to_string(root.join(file))
            .map_err(|e| format!("{field}: reading {file}: {e}"))?;
        let parsed: Value = serde_saphyr::from_str(&text)
            .map_err(|e| format!("{field}: {file} is not JSON or YAML: {e}"))?;
        let items = match parsed {
            Value::Array(items) => items,
            other => vec![other],
        };
        let (dir, name) = file.rsplit_once('/').unwrap_or(("", file));
        for item in items {
            let mut p = Params::new();
            flatten("", &item, &mut p);
            p.extend(directory_params(dir));
            p.insert("path.filename".into(), name.to_string());
            p.insert("path.filenameNormalized".into(), normalized(name));
            out.push(p);
        }
    }
    Ok(out)
}

/// What the generators need from outside: clusters and Git checkouts.
pub trait Inputs {
    /// Every cluster (the local one first).
    fn clusters(&self) -> Vec<ClusterInfo>;
    /// A checkout of `repo` at `revision`.
    fn checkout(&self, repo: &str, revision: &str) -> Result<std::path::PathBuf, String>;
}

/// The parameter sets of one generator (`field` names it in errors), with
/// the template override it carries.
pub fn generate(
    generator: &Value,
    field: &str,
    inputs: &dyn Inputs,
) -> Result<Vec<Params>, String> {
    if let Some(list) = generator.get("list") {
        let mut out = Vec::new();
        for (i, e) in list
            .get("elements")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .enumerate()
        {
            if !e.is_object() {
                return Err(format!(
                    "{field}.list.elements[{i}]: expected an object of parameters"
                ));
            }
            let mut p = Params::new();
            flatten("", e, &mut p);
            out.push(p);
        }
        return Ok(out);
    }
    if let Some(c) = generator.get("clusters") {
        let selector = c
            .get("selector")
            .filter(|s| s.as_object().is_some_and(|m| !m.is_empty()));
        let mut out = Vec::new();
        for cluster in inputs.clusters() {
            if let Some(s) = selector {
                // The local cluster has no Secret, so no labels: a
                // selector leaves it out, as in Argo CD.
                if cluster.name == "in-cluster" && cluster.labels.is_empty() {
                    continue;
                }
                if !selected(s, &cluster.labels)
                    .map_err(|e| format!("{field}.clusters.selector: {e}"))?
                {
                    continue;
                }
            }
            let mut p = Params::new();
            p.insert("name".into(), cluster.name.clone());
            p.insert("nameNormalized".into(), normalized(&cluster.name));
            p.insert("server".into(), cluster.server.clone());
            for (k, v) in &cluster.labels {
                p.insert(format!("metadata.labels.{k}"), v.clone());
            }
            for (k, v) in &cluster.annotations {
                p.insert(format!("metadata.annotations.{k}"), v.clone());
            }
            if let Some(values) = c.get("values") {
                let mut extra = Params::new();
                flatten("values", values, &mut extra);
                // Values may use the cluster's own parameters.
                for (k, v) in extra {
                    let filled = fill(&v, &p);
                    p.insert(k, filled);
                }
            }
            out.push(p);
        }
        return Ok(out);
    }
    if let Some(m) = generator.get("matrix") {
        let children: Vec<&Value> = m
            .get("generators")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .collect();
        let [first, second] = children.as_slice() else {
            return Err(format!(
                "{field}.matrix.generators: exactly two generators are combined ({} given)",
                children.len()
            ));
        };
        let mut out = Vec::new();
        for a in generate(first, &format!("{field}.matrix.generators[0]"), inputs)? {
            // The second may use the first's parameters, as in Argo CD.
            let second = render(second, &a);
            for b in generate(&second, &format!("{field}.matrix.generators[1]"), inputs)? {
                let mut p = a.clone();
                p.extend(b);
                out.push(p);
            }
        }
        return Ok(out);
    }
    if let Some(m) = generator.get("merge") {
        let keys: Vec<String> = m
            .get("mergeKeys")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter_map(Value::as_str)
            .map(String::from)
            .collect();
        if keys.is_empty() {
            return Err(format!(
                "{field}.merge.mergeKeys: name the parameters that match sets up"
            ));
        }
        let children: Vec<&Value> = m
            .get("generators")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .collect();
        let Some((base, rest)) = children.split_first() else {
            return Err(format!("{field}.merge.generators: at least one generator"));
        };
        let mut out = generate(base, &format!("{field}.merge.generators[0]"), inputs)?;
        let key_of = |p: &Params| -> Option<Vec<String>> {
            keys.iter().map(|k| p.get(k).cloned()).collect()
        };
        // Later generators override the base's sets whose merge keys they
        // share; sets of theirs that match none are dropped, as in Argo CD.
        for (i, g) in rest.iter().enumerate() {
            for over in generate(g, &format!("{field}.merge.generators[{}]", i + 1), inputs)? {
                let Some(k) = key_of(&over) else { continue };
                for p in out.iter_mut().filter(|p| key_of(p).as_ref() == Some(&k)) {
                    p.extend(over.clone());
                }
            }
        }
        return Ok(out);
    }
    if let Some(g) = generator.get("git") {
        let text = |k: &str| g.get(k).and_then(Value::as_str).unwrap_or_default();
        let repo = text("repoURL");
        if repo.is_empty() {
            return Err(format!("{field}.git.repoURL: required"));
        }
        let revision = match text("revision") {
            "" => "HEAD",
            r => r,
        };
        let root = inputs
            .checkout(repo, revision)
            .map_err(|e| format!("{field}.git: {e}"))?;
        if let Some(files) = g.get("files").and_then(Value::as_array) {
            return file_params(&root, files, &format!("{field}.git.files"));
        }
        let Some(dirs) = g.get("directories").and_then(Value::as_array) else {
            return Err(format!("{field}.git: give directories or files"));
        };
        let (all, _) = walk(&root);
        return Ok(selected_paths(&all, dirs)
            .into_iter()
            .map(|d| directory_params(d))
            .collect());
    }
    let kind = generator
        .as_object()
        .and_then(|m| m.keys().find(|k| k.as_str() != "template"))
        .cloned()
        .unwrap_or_else(|| "(none)".into());
    Err(format!(
        "{field}: the {kind} generator is not supported yet (list, clusters, git, matrix and merge are)"
    ))
}

/// Argo CD's default template syntax: `{{name}}` (spaces inside allowed)
/// replaced by the parameter; an unknown one is left as written.
fn fill(text: &str, params: &Params) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(start) = rest.find("{{") {
        out.push_str(&rest[..start]);
        let after = &rest[start + 2..];
        match after.find("}}") {
            Some(end) => {
                let key = after[..end].trim();
                match params.get(key) {
                    Some(v) => out.push_str(v),
                    None => out.push_str(&rest[start..start + 2 + end + 2]),
                }
                rest = &after[end + 2..];
            }
            None => {
                out.push_str(&rest[start..]);
                rest = "";
            }
        }
    }
    out.push_str(rest);
    out
}

/// The template with every string filled (keys too).
pub fn render(template: &Value, params: &Params) -> Value {
    match template {
        Value::String(s) => Value::String(fill(s, params)),
        Value::Array(a) => Value::Array(a.iter().map(|v| render(v, params)).collect()),
        Value::Object(m) => Value::Object(
            m.iter()
                .map(|(k, v)| (fill(k, params), render(v, params)))
                .collect::<Map<String, Value>>(),
        ),
        other => other.clone(),
    }
}

/// `over`'s fields over `base`'s, objects merged key by key.
fn merged(base: &Value, over: &Value) -> Value {
    match (base, over) {
        (Value::Object(b), Value::Object(o)) => {
            let mut out = b.clone();
            for (k, v) in o {
                let next = match out.get(k) {
                    Some(old) => merged(old, v),
                    None => v.clone(),
                };
                out.insert(k.clone(), next);
            }
            Value::Object(out)
        }
        (_, o) => o.clone(),
    }
}

/// The Applications an ApplicationSet's spec declares, each with its
/// name; an error names the field at fault.
pub fn applications(set: &Value, inputs: &dyn Inputs) -> Result<Vec<Value>, String> {
    let spec = set.get("spec").cloned().unwrap_or(Value::Null);
    if spec.get("goTemplate").and_then(Value::as_bool) == Some(true) {
        return Err(
            "spec.goTemplate: Go templates are not supported yet; use {{param}} templates".into(),
        );
    }
    let template = spec.get("template").cloned().unwrap_or(Value::Null);
    let mut out = Vec::new();
    let mut names = HashSet::new();
    for (i, g) in spec
        .get("generators")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .enumerate()
    {
        let field = format!("spec.generators[{i}]");
        let template = match g.get("template") {
            Some(t) => merged(&template, t),
            None => template.clone(),
        };
        for params in generate(g, &field, inputs)? {
            let filled = render(&template, &params);
            let name = filled
                .pointer("/metadata/name")
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_string();
            if name.is_empty() || name.contains("{{") {
                return Err(format!(
                    "{field}: the template's metadata.name is {name:?} for parameters {params:?}"
                ));
            }
            if !names.insert(name.clone()) {
                return Err(format!(
                    "the generators give two applications named {name:?}; make the template's name unique"
                ));
            }
            out.push(filled);
        }
    }
    Ok(out)
}

/// The live inputs: cluster Secrets read now, Git through the
/// controller's cache and shared poller.
struct Live<'a> {
    shared: &'a Shared,
    clusters: Vec<ClusterInfo>,
}

impl Inputs for Live<'_> {
    fn clusters(&self) -> Vec<ClusterInfo> {
        self.clusters.clone()
    }

    fn checkout(&self, repo: &str, revision: &str) -> Result<std::path::PathBuf, String> {
        let credentials = self.shared.credentials();
        let sources = crate::source::Sources {
            cache: &self.shared.repos,
            charts_dir: self.shared.config.cache_dir.join("charts"),
            kube_version: self.shared.config.kube_version.clone(),
            poller: Some(&self.shared.poller),
            credentials: Some(&credentials),
            renders: None,
            hard: false,
        };
        crate::source::fetch(&sources, "repoURL", repo, revision, None)
            .map(|(dir, _)| dir)
            .map_err(|e| e.to_string())
    }
}

async fn clusters(shared: &Shared) -> Vec<ClusterInfo> {
    let mut out = vec![ClusterInfo {
        name: "in-cluster".into(),
        server: crate::project::IN_CLUSTER_SERVER.into(),
        ..ClusterInfo::default()
    }];
    let secrets: Api<Secret> = Api::namespaced(shared.client.clone(), &shared.config.namespace);
    let Ok(list) = secrets
        .list(&ListParams::default().labels("argocd.argoproj.io/secret-type=cluster"))
        .await
    else {
        return out;
    };
    for s in list {
        let field = |k: &str| {
            s.data
                .as_ref()
                .and_then(|d| d.get(k))
                .map(|b| String::from_utf8_lossy(&b.0).to_string())
                .unwrap_or_default()
        };
        let server = field("server");
        let info = ClusterInfo {
            name: match field("name") {
                n if n.is_empty() => server.clone(),
                n => n,
            },
            server: server.clone(),
            labels: s
                .metadata
                .labels
                .clone()
                .unwrap_or_default()
                .into_iter()
                .collect(),
            annotations: s
                .metadata
                .annotations
                .clone()
                .unwrap_or_default()
                .into_iter()
                .collect(),
        };
        // A Secret for the local cluster gives it labels.
        if server.trim_end_matches('/') == crate::project::IN_CLUSTER_SERVER {
            out[0].labels = info.labels;
            out[0].annotations = info.annotations;
            if !info.name.is_empty() && info.name != server {
                out[0].name = info.name;
            }
        } else if !server.is_empty() {
            out.push(info);
        }
    }
    out
}

/// Argo CD's ApplicationSet controller in the control namespace, with
/// replicas asked for.
fn argocd_generating(shared: &Shared) -> bool {
    let key = berth_cluster::live::ObjectKey {
        group: "apps".into(),
        kind: "Deployment".into(),
        namespace: shared.config.namespace.clone(),
        name: "argocd-applicationset-controller".into(),
    };
    shared.local.live.get(&key).is_some_and(|o| {
        o.pointer("/spec/replicas")
            .and_then(Value::as_i64)
            .unwrap_or(1)
            > 0
    })
}

/// Whether generators (nested ones too) include a clusters generator.
fn uses_clusters(generators: &Value) -> bool {
    match generators {
        Value::Array(items) => items.iter().any(uses_clusters),
        Value::Object(m) => m.contains_key("clusters") || m.values().any(uses_clusters),
        _ => false,
    }
}

/// Generates every ApplicationSet of the control namespace again, every
/// few seconds, for as long as the controller runs.
pub(crate) async fn run(shared: Arc<Shared>) {
    let sets: Api<DynamicObject> = Api::namespaced_with(
        shared.client.clone(),
        &shared.config.namespace,
        &berth_cluster::bootstrap::applicationset_resource(),
    );
    let mut warned: Option<std::time::Instant> = None;
    loop {
        // Argo CD's own ApplicationSet controller would fight over every
        // generated app: Berth holds back, as it does for Applications,
        // unless `berth.takeOver` says it leads.
        if argocd_generating(&shared) && !shared.settings().take_over {
            if warned.is_none_or(|w| w.elapsed() > Duration::from_secs(60)) {
                warned = Some(std::time::Instant::now());
                tracing::warn!(
                    "Argo CD's argocd-applicationset-controller runs in the control namespace: Berth generates no ApplicationSet until it is scaled to zero (or berth.takeOver is \"true\" in argocd-cm)"
                );
            }
            tokio::time::sleep(INTERVAL).await;
            continue;
        }
        match sets.list(&ListParams::default()).await {
            Ok(list) => {
                // Cluster Secrets are read only when a set asks for them.
                let clusters = if list
                    .iter()
                    .any(|s| uses_clusters(&s.data["spec"]["generators"]))
                {
                    clusters(&shared).await
                } else {
                    Vec::new()
                };
                for set in list {
                    reconcile(&shared, &sets, &set, &clusters).await;
                }
            }
            Err(e) => tracing::debug!(error = %e, "listing ApplicationSets"),
        }
        tokio::time::sleep(INTERVAL).await;
    }
}

fn condition(kind: &str, ok: bool, reason: &str, message: &str) -> Value {
    json!({"type": kind, "status": if ok { "True" } else { "False" }, "reason": reason,
        "message": message, "lastTransitionTime": berth_api::time::rfc3339(std::time::SystemTime::now())})
}

/// One ApplicationSet: its Applications made to match, its status
/// written.
async fn reconcile(
    shared: &Arc<Shared>,
    sets: &Api<DynamicObject>,
    set: &DynamicObject,
    clusters: &[ClusterInfo],
) {
    let name = set.metadata.name.clone().unwrap_or_default();
    let uid = set.metadata.uid.clone().unwrap_or_default();
    if set.metadata.deletion_timestamp.is_some() || uid.is_empty() {
        return;
    }
    let raw = serde_json::to_value(set).unwrap_or(Value::Null);
    let generated = {
        let shared = Arc::clone(shared);
        let raw = raw.clone();
        let clusters = clusters.to_vec();
        // Git checkouts block: off the async workers.
        tokio::task::spawn_blocking(move || {
            let inputs = Live {
                shared: &shared,
                clusters,
            };
            applications(&raw, &inputs)
        })
        .await
        .unwrap_or_else(|e| Err(format!("generating: {e}")))
    };
    let status_of = |conditions: Vec<Value>, resources: Vec<Value>| json!({"status": {"conditions": conditions, "resources": resources}});
    let desired = match generated {
        Ok(d) => d,
        Err(message) => {
            tracing::warn!(applicationset = %name, %message, "ApplicationSet not generated");
            let status = status_of(
                vec![
                    condition(
                        "ErrorOccurred",
                        true,
                        "ApplicationGenerationFromParamsError",
                        &message,
                    ),
                    condition("ParametersGenerated", false, "ErrorOccurred", &message),
                    condition("ResourcesUpToDate", false, "ErrorOccurred", &message),
                ],
                Vec::new(),
            );
            let _ = sets
                .patch_status(&name, &PatchParams::default(), &Patch::Merge(&status))
                .await;
            return;
        }
    };
    let policy = raw
        .pointer("/spec/syncPolicy/applicationsSync")
        .and_then(Value::as_str)
        .unwrap_or("sync");
    let (may_update, may_delete) = match policy {
        "create-only" => (false, false),
        "create-update" => (true, false),
        "create-delete" => (false, true),
        _ => (true, true),
    };
    let preserve = raw
        .pointer("/spec/syncPolicy/preserveResourcesOnDeletion")
        .and_then(Value::as_bool)
        .unwrap_or(false);
    let namespace = shared.config.namespace.clone();
    let apps = &shared.apps;
    // The set's Applications (name, being deleted), from the controller's
    // watch-fed copies: no request per set and cycle.
    let owned: Vec<(String, bool)> = shared
        .latest
        .lock()
        .map(|l| {
            l.values()
                .filter(|a| {
                    a.pointer("/metadata/namespace").and_then(Value::as_str)
                        == Some(namespace.as_str())
                })
                .filter(|a| {
                    a.pointer("/metadata/ownerReferences")
                        .and_then(Value::as_array)
                        .is_some_and(|o| o.iter().any(|r| r["uid"] == uid.as_str()))
                })
                .map(|a| {
                    (
                        a.pointer("/metadata/name")
                            .and_then(Value::as_str)
                            .unwrap_or_default()
                            .to_string(),
                        a.pointer("/metadata/deletionTimestamp").is_some(),
                    )
                })
                .collect()
        })
        .unwrap_or_default();
    let mut errors = Vec::new();
    let mut resources = Vec::new();
    let wanted: HashSet<String> = desired
        .iter()
        .filter_map(|d| {
            d.pointer("/metadata/name")
                .and_then(Value::as_str)
                .map(String::from)
        })
        .collect();
    for d in &desired {
        let app_name = d
            .pointer("/metadata/name")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string();
        let exists = owned.iter().any(|(n, _)| *n == app_name);
        if exists && !may_update {
            continue;
        }
        let mut meta = d.get("metadata").cloned().unwrap_or_else(|| json!({}));
        meta["name"] = json!(app_name);
        meta["namespace"] = json!(namespace);
        meta["ownerReferences"] = json!([{
            "apiVersion": "argoproj.io/v1alpha1", "kind": "ApplicationSet", "name": name, "uid": uid,
            "controller": true, "blockOwnerDeletion": true,
        }]);
        let app = json!({"apiVersion": "argoproj.io/v1alpha1", "kind": "Application",
            "metadata": meta, "spec": d.get("spec").cloned().unwrap_or_else(|| json!({}))});
        match apps
            .patch(
                &app_name,
                &PatchParams::apply(MANAGER).force(),
                &Patch::Apply(&app),
            )
            .await
        {
            Ok(_) => resources.push(json!({"group": "argoproj.io", "version": "v1alpha1",
                "kind": "Application", "name": app_name, "namespace": namespace})),
            Err(e) => errors.push(format!("Application {app_name}: {e}")),
        }
    }
    if may_delete {
        for (app_name, deleting) in &owned {
            if wanted.contains(app_name) || *deleting {
                continue;
            }
            if preserve {
                // No cascade: its resources stay in the cluster.
                let _ = apps
                    .patch(
                        app_name,
                        &PatchParams::default(),
                        &Patch::Merge(&json!({"metadata": {"finalizers": null}})),
                    )
                    .await;
            }
            if let Err(e) = apps.delete(app_name, &DeleteParams::default()).await {
                errors.push(format!("deleting Application {app_name}: {e}"));
            } else {
                tracing::info!(applicationset = %name, app = %app_name, "generated Application deleted");
            }
        }
    }
    let ok = errors.is_empty();
    let message = if ok {
        format!("{} applications up to date", desired.len())
    } else {
        errors.join("; ")
    };
    let status = status_of(
        vec![
            condition(
                "ErrorOccurred",
                !ok,
                if ok {
                    "ApplicationSetUpToDate"
                } else {
                    "UpdateApplicationError"
                },
                &message,
            ),
            condition(
                "ParametersGenerated",
                true,
                "ParametersGenerated",
                "Successfully generated parameters for all Applications",
            ),
            condition(
                "ResourcesUpToDate",
                ok,
                if ok {
                    "ApplicationSetUpToDate"
                } else {
                    "UpdateApplicationError"
                },
                &message,
            ),
        ],
        resources,
    );
    // Written only when it changes (the times aside): no write every cycle.
    let shown = |v: &Value| {
        let mut v = v.clone();
        for c in v
            .pointer_mut("/status/conditions")
            .and_then(Value::as_array_mut)
            .into_iter()
            .flatten()
        {
            if let Some(m) = c.as_object_mut() {
                m.remove("lastTransitionTime");
            }
        }
        v["status"].clone()
    };
    if shown(&status)
        != shown(&json!({"status": raw.get("status").cloned().unwrap_or(Value::Null)}))
    {
        let _ = sets
            .patch_status(&name, &PatchParams::default(), &Patch::Merge(&status))
            .await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Fake {
        root: std::path::PathBuf,
    }

    impl Inputs for Fake {
        fn clusters(&self) -> Vec<ClusterInfo> {
            vec![
                ClusterInfo {
                    name: "in-cluster".into(),
                    server: "https://kubernetes.default.svc".into(),
                    ..ClusterInfo::default()
                },
                ClusterInfo {
                    name: "Prod EU".into(),
                    server: "https://prod-eu.example".into(),
                    labels: [("env".to_string(), "prod".to_string())].into(),
                    annotations: BTreeMap::new(),
                },
            ]
        }

        fn checkout(&self, _: &str, _: &str) -> Result<std::path::PathBuf, String> {
            Ok(self.root.clone())
        }
    }

    fn set(generators: Value) -> Value {
        json!({"spec": {"generators": generators, "template": {
            "metadata": {"name": "{{ name }}-guestbook", "labels": {"from": "{{server}}"}},
            "spec": {"project": "default", "destination": {"server": "{{server}}", "namespace": "guestbook"},
                "source": {"repoURL": "https://git.example/apps.git", "path": "guestbook/{{missing}}"}}}}})
    }

    #[test]
    fn the_list_and_clusters_generators_fill_the_template() {
        let fake = Fake {
            root: std::env::temp_dir(),
        };
        let apps = applications(
            &set(json!([{"list": {"elements": [{"name": "a", "server": "https://a.example"}]}}])),
            &fake,
        )
        .unwrap();
        assert_eq!(apps.len(), 1);
        assert_eq!(apps[0]["metadata"]["name"], "a-guestbook");
        assert_eq!(
            apps[0]["spec"]["destination"]["server"],
            "https://a.example"
        );
        // An unknown parameter stays as written, as in Argo CD.
        assert_eq!(apps[0]["spec"]["source"]["path"], "guestbook/{{missing}}");

        let all = applications(&set(json!([{"clusters": {}}])), &fake).unwrap();
        let names: Vec<&str> = all
            .iter()
            .map(|a| a["metadata"]["name"].as_str().unwrap())
            .collect();
        assert_eq!(names, ["in-cluster-guestbook", "Prod EU-guestbook"]);
        let mut normalized_set =
            set(json!([{"clusters": {"selector": {"matchLabels": {"env": "prod"}}}}]));
        normalized_set["spec"]["template"]["metadata"]["name"] =
            json!("{{nameNormalized}}-{{metadata.labels.env}}");
        let prod = applications(&normalized_set, &fake).unwrap();
        assert_eq!(prod.len(), 1, "the selector leaves the local cluster out");
        assert_eq!(prod[0]["metadata"]["name"], "prod-eu-prod");
    }

    #[test]
    fn git_directories_are_matched_and_excluded() {
        let root = std::env::temp_dir().join(format!("berth-appset-{}", std::process::id()));
        for d in [
            "apps/web",
            "apps/api",
            "apps/skip",
            "apps/web/nested",
            ".git/objects",
            "docs",
        ] {
            std::fs::create_dir_all(root.join(d)).unwrap();
        }
        let fake = Fake { root: root.clone() };
        let mut s = set(
            json!([{"git": {"repoURL": "https://git.example/apps.git", "revision": "main",
            "directories": [{"path": "apps/*"}, {"path": "apps/skip", "exclude": true}]}}]),
        );
        s["spec"]["template"]["metadata"]["name"] = json!("{{path.basename}}");
        s["spec"]["template"]["spec"]["source"]["path"] = json!("{{path}}");
        let apps = applications(&s, &fake).unwrap();
        let got: Vec<(String, String)> = apps
            .iter()
            .map(|a| {
                (
                    a["metadata"]["name"].as_str().unwrap().to_string(),
                    a["spec"]["source"]["path"].as_str().unwrap().to_string(),
                )
            })
            .collect();
        assert_eq!(
            got,
            [
                ("api".to_string(), "apps/api".to_string()),
                ("web".to_string(), "apps/web".to_string())
            ]
        );
        let _ = std::fs::remove_dir_all(&root);
        assert!(path_matches("apps/**", "apps/web/nested"));
        assert!(!path_matches("apps/*", "apps/web/nested"));
    }

    #[test]
    fn git_files_and_matrix_combine() {
        let root = std::env::temp_dir().join(format!("berth-appset-files-{}", std::process::id()));
        std::fs::create_dir_all(root.join("envs/dev")).unwrap();
        std::fs::create_dir_all(root.join("envs/prod")).unwrap();
        std::fs::write(
            root.join("envs/dev/config.json"),
            r#"{"env": "dev", "size": {"replicas": 1}}"#,
        )
        .unwrap();
        std::fs::write(
            root.join("envs/prod/config.yaml"),
            "env: prod\nsize:\n  replicas: 3\n",
        )
        .unwrap();
        let fake = Fake { root: root.clone() };
        let files = json!({"git": {"repoURL": "r", "files": [{"path": "envs/*/config.*"}]}});
        let sets = generate(&files, "g", &fake).unwrap();
        assert_eq!(sets.len(), 2);
        assert_eq!(sets[0]["env"], "dev");
        assert_eq!(sets[0]["size.replicas"], "1");
        assert_eq!(sets[0]["path"], "envs/dev");
        assert_eq!(sets[0]["path.filename"], "config.json");
        assert_eq!(sets[1]["path[1]"], "prod");
        // Every cluster with every environment; the second generator uses
        // the first's parameters.
        let mut s = set(json!([{"matrix": {"generators": [
            {"clusters": {}},
            {"list": {"elements": [{"env": "dev", "where": "{{name}}"}, {"env": "prod", "where": "{{name}}"}]}}]}}]));
        s["spec"]["template"]["metadata"]["name"] = json!("{{nameNormalized}}-{{env}}");
        s["spec"]["template"]["metadata"]["labels"] = json!({"where": "{{where}}"});
        let apps = applications(&s, &fake).unwrap();
        let names: Vec<&str> = apps
            .iter()
            .map(|a| a["metadata"]["name"].as_str().unwrap())
            .collect();
        assert_eq!(
            names,
            [
                "in-cluster-dev",
                "in-cluster-prod",
                "prod-eu-dev",
                "prod-eu-prod"
            ]
        );
        assert_eq!(apps[2]["metadata"]["labels"]["where"], "Prod EU");
        let one = generate(
            &json!({"matrix": {"generators": [{"list": {"elements": []}}]}}),
            "g",
            &fake,
        )
        .unwrap_err();
        assert!(one.contains("exactly two"), "{one}");
        let _ = std::fs::remove_dir_all(&root);
    }

    #[test]
    fn errors_name_the_field() {
        let fake = Fake {
            root: std::env::temp_dir(),
        };
        let dup = applications(
            &set(json!([{"list": {"elements": [{"name": "a", "server": "x"}, {"name": "a", "server": "y"}]}}])),
            &fake,
        )
        .unwrap_err();
        assert!(
            dup.contains("two applications named \"a-guestbook\""),
            "{dup}"
        );
        let scm = applications(&set(json!([{"scmProvider": {}}])), &fake).unwrap_err();
        assert_eq!(
            scm,
            "spec.generators[0]: the scmProvider generator is not supported yet (list, clusters, git, matrix and merge are)"
        );
        // Merge: the clusters, the prod one given another namespace.
        let merged_sets = generate(
            &json!({"merge": {"mergeKeys": ["server"], "generators": [
                {"clusters": {}},
                {"list": {"elements": [{"server": "https://prod-eu.example", "ns": "eu"}, {"server": "https://nowhere", "ns": "x"}]}}]}}),
            "g",
            &fake,
        )
        .unwrap();
        assert_eq!(merged_sets.len(), 2, "the base's sets, no more");
        assert_eq!(merged_sets[1]["ns"], "eu");
        assert!(!merged_sets[0].contains_key("ns"));
        let mut go = set(json!([]));
        go["spec"]["goTemplate"] = json!(true);
        assert!(
            applications(&go, &fake)
                .unwrap_err()
                .starts_with("spec.goTemplate")
        );
        // A generator's own template overrides the set's fields.
        let over = applications(
            &set(
                json!([{"list": {"elements": [{"name": "b", "server": "s"}]},
                "template": {"spec": {"destination": {"namespace": "other"}}}}]),
            ),
            &fake,
        )
        .unwrap();
        assert_eq!(over[0]["spec"]["destination"]["namespace"], "other");
        assert_eq!(over[0]["spec"]["destination"]["server"], "s");
    }
}
