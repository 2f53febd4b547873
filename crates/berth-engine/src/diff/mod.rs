//! Desired against live, per object, as Argo CD compares them.
//!
//! The comparison is between the live object and the *target*: what the live
//! object will be once the desired one is applied. When the controller has a
//! server-side dry-run result for the desired object it is the target, and
//! server defaults and admission changes are accounted for exactly. Without
//! one, the target is built offline: the desired fields laid over the live
//! object (items of named lists matched by name), minus the fields that the
//! last apply set and Git no longer has (from the last-applied annotation or
//! from our field manager's entry in `managedFields`).
//!
//! Both sides are normalized first: status, `managedFields`, server-set
//! metadata and the last-applied annotation go; a Secret's `stringData` is
//! folded into `data`. Then `ignoreDifferences` rules remove what they name,
//! Secret values are replaced by masks, and the remaining fields are compared
//! semantically: numbers by value, quantities by value (`1000m` is `1`) in
//! resource fields, and empty values (`null`, `{}`, `[]`, `""`) as absent.

mod jq;
mod mask;
pub mod path;
mod quantity;

use std::fmt;

use base64::Engine;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::glob::glob;
pub use jq::{JqDelete, JqError};
use path::{Path, Seg};

/// The annotation `kubectl apply` (and Argo CD's client-side apply) writes.
pub const LAST_APPLIED: &str = "kubectl.kubernetes.io/last-applied-configuration";
/// A resource's compare options (`IgnoreExtraneous`).
pub const COMPARE_OPTIONS: &str = "argocd.argoproj.io/compare-options";

/// Why a diff could not be computed.
#[derive(Debug, thiserror::Error)]
pub enum DiffError {
    /// An `ignoreDifferences` rule is invalid.
    #[error("ignoreDifferences[{index}]: {message}")]
    Rule {
        /// The rule's position in the list it came from.
        index: usize,
        /// What is wrong with it.
        message: String,
    },
    /// A jq path expression failed on an object.
    #[error("{object}: {source}")]
    Jq {
        /// `kind/namespace/name` of the object.
        object: String,
        /// The failure.
        source: JqError,
    },
    /// Neither a desired nor a live object was given.
    #[error("nothing to compare: neither a desired nor a live object")]
    Nothing,
}

/// One entry of `spec.ignoreDifferences` (or of an `argocd-cm`
/// `resource.customizations.ignoreDifferences.*` key, which has no
/// group/kind of its own).
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct IgnoreDifference {
    /// API group; `*` matches any, empty only the core group.
    #[serde(default)]
    pub group: String,
    /// Kind; `*` matches any.
    #[serde(default)]
    pub kind: String,
    /// Object name; empty matches any.
    #[serde(default)]
    pub name: String,
    /// Namespace; empty matches any.
    #[serde(default)]
    pub namespace: String,
    /// RFC 6901 pointers to ignore.
    #[serde(default)]
    pub json_pointers: Vec<String>,
    /// jq path expressions to ignore.
    #[serde(default)]
    pub jq_path_expressions: Vec<String>,
    /// Field managers whose fields are ignored.
    #[serde(default)]
    pub managed_fields_managers: Vec<String>,
}

/// A compiled [`IgnoreDifference`]; cloning it is cheaper than compiling
/// its jq expressions again.
#[derive(Debug, Clone)]
pub struct IgnoreRule {
    spec: IgnoreDifference,
    jq: Vec<JqDelete>,
}

impl IgnoreRule {
    /// Compiles a rule; `index` names it in errors.
    pub fn new(index: usize, spec: IgnoreDifference) -> Result<IgnoreRule, DiffError> {
        for p in &spec.json_pointers {
            if !p.starts_with('/') {
                return Err(DiffError::Rule {
                    index,
                    message: format!(
                        "jsonPointers: {p:?} is not a JSON pointer; write it as /spec/replicas"
                    ),
                });
            }
        }
        let jq = spec
            .jq_path_expressions
            .iter()
            .map(|e| JqDelete::new(e))
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| DiffError::Rule {
                index,
                message: e.to_string(),
            })?;
        Ok(IgnoreRule { spec, jq })
    }

    /// Parses and compiles a list as written in an Application (`index` is
    /// the position in the list).
    pub fn parse_list(values: &[Value]) -> Result<Vec<IgnoreRule>, DiffError> {
        values
            .iter()
            .enumerate()
            .map(|(i, v)| {
                let spec: IgnoreDifference =
                    serde_json::from_value(v.clone()).map_err(|e| DiffError::Rule {
                        index: i,
                        message: e.to_string(),
                    })?;
                IgnoreRule::new(i, spec)
            })
            .collect()
    }

    /// Whether the rule applies to this object.
    pub fn matches(&self, group: &str, kind: &str, namespace: &str, name: &str) -> bool {
        glob(&self.spec.group, group)
            && glob(&self.spec.kind, kind)
            && (self.spec.name.is_empty() || self.spec.name == name)
            && (self.spec.namespace.is_empty() || self.spec.namespace == namespace)
    }
}

/// How objects are compared.
#[derive(Debug, Default)]
pub struct DiffOptions {
    /// `ignoreDifferences` rules, from the app and from `argocd-cm`.
    pub ignore: Vec<IgnoreRule>,
    /// Our field manager (`berth`): fields its server-side apply owns and
    /// Git no longer has are removals.
    pub field_manager: String,
    /// Annotation keys whose values are masked like Secret data
    /// (`resource.sensitive.mask.annotations`).
    pub mask_annotations: Vec<String>,
}

/// Whether an object matches Git.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum SyncStatus {
    /// Matches.
    Synced,
    /// Differs, is missing, or should be pruned.
    OutOfSync,
    /// Could not be compared.
    Unknown,
}

impl fmt::Display for SyncStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            SyncStatus::Synced => "Synced",
            SyncStatus::OutOfSync => "OutOfSync",
            SyncStatus::Unknown => "Unknown",
        })
    }
}

/// What a sync would do to the object.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Change {
    /// Nothing.
    None,
    /// Create it: in Git, not in the cluster.
    Create,
    /// Update it.
    Update,
    /// Prune it: in the cluster, not in Git.
    Prune,
}

/// One differing field.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct FieldChange {
    /// Where, as `.spec.replicas`.
    pub path: String,
    /// The live value (masked for Secrets), absent when the field is new.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub live: Option<Value>,
    /// The target value (masked), absent when the field goes away.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub target: Option<Value>,
}

/// The comparison of one object.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ResourceDiff {
    /// API group, empty for the core group.
    pub group: String,
    /// Kind.
    pub kind: String,
    /// Namespace, empty for cluster-scoped objects.
    pub namespace: String,
    /// Name.
    pub name: String,
    /// Synced or OutOfSync.
    pub status: SyncStatus,
    /// What a sync would do.
    pub change: Change,
    /// The fields that differ, in document order.
    pub fields: Vec<FieldChange>,
    /// The object carries `IgnoreExtraneous`: when it is only in the
    /// cluster it does not make the app OutOfSync.
    pub ignore_extraneous: bool,
    /// Normalized, masked live object.
    #[serde(skip)]
    pub live: Option<Value>,
    /// Normalized, masked target object.
    #[serde(skip)]
    pub target: Option<Value>,
}

impl ResourceDiff {
    /// `group/kind/namespace/name`, as people read it.
    pub fn id(&self) -> String {
        format!(
            "{}/{}/{}/{}",
            self.group, self.kind, self.namespace, self.name
        )
    }

    /// A unified diff of the live (`---`) and target (`+++`) YAML, empty
    /// when they are the same. Secret values appear only as masks.
    pub fn unified(&self) -> String {
        if self.status == SyncStatus::Synced {
            return String::new();
        }
        let yaml = |v: &Option<Value>| {
            v.as_ref()
                .map(|v| serde_saphyr::to_string(v).unwrap_or_else(|e| format!("# {e}\n")))
                .unwrap_or_default()
        };
        let (live, target) = (yaml(&self.live), yaml(&self.target));
        let id = self.id();
        similar::TextDiff::from_lines(&live, &target)
            .unified_diff()
            .context_radius(3)
            .header(&format!("live/{id}"), &format!("target/{id}"))
            .to_string()
    }
}

/// A copy of `obj` fit to be shown: a Secret's values masked as the diff
/// masks them.
pub fn masked(obj: &Value) -> Value {
    let mut copy = obj.clone();
    if berth_api::kinds::group_kind(obj) == ("", "Secret") {
        mask::secrets(None, Some(&mut copy));
        // kubectl's record of its last apply holds the values in clear.
        if let Some(a) = copy
            .pointer_mut("/metadata/annotations")
            .and_then(Value::as_object_mut)
        {
            a.shift_remove("kubectl.kubernetes.io/last-applied-configuration");
        }
    }
    copy
}

/// Compares one object. `desired` is the object from Git (already marked
/// with tracking), `live` the cluster's, and `predicted` the server-side
/// dry-run of applying `desired`, when the caller has one.
pub fn diff(
    desired: Option<&Value>,
    live: Option<&Value>,
    predicted: Option<&Value>,
    opts: &DiffOptions,
) -> Result<ResourceDiff, DiffError> {
    let any = desired.or(live).ok_or(DiffError::Nothing)?;
    let (group, kind) = berth_api::kinds::group_kind(any);
    let (group, kind) = (group.to_string(), kind.to_string());
    let namespace = str_at(any, "/metadata/namespace").to_string();
    let name = str_at(any, "/metadata/name").to_string();
    let ignore_extraneous = live
        .and_then(|l| l.pointer("/metadata/annotations"))
        .and_then(|a| a.get(COMPARE_OPTIONS))
        .and_then(Value::as_str)
        .is_some_and(|o| o.split(',').any(|x| x.trim() == "IgnoreExtraneous"));
    let object = format!("{kind}/{namespace}/{name}");

    // Status and server metadata are dropped on copy; the previous apply's
    // record is read from the untouched live object.
    let live_lean = live.map(lean_clone);
    let target = match (desired, live, &live_lean, predicted) {
        (None, ..) => None,
        (Some(_), _, _, Some(p)) => Some(lean_clone(p)),
        (Some(d), Some(l), Some(lean), None) => {
            let previous = previous_apply(l, &opts.field_manager);
            Some(overlay(
                lean,
                d,
                previous.as_ref().map(PreviousOwned::view),
                false,
            ))
        }
        (Some(d), ..) => Some(d.clone()),
    };
    let mut target = target.map(|t| normalize(t, &group, &kind));
    let mut live_n = live_lean.map(|l| normalize(l, &group, &kind));

    for rule in opts
        .ignore
        .iter()
        .filter(|r| r.matches(&group, &kind, &namespace, &name))
    {
        for side in [&mut target, &mut live_n].into_iter().flatten() {
            for p in &rule.spec.json_pointers {
                path::remove_pointer(side, p);
            }
            for jq in &rule.jq {
                *side = jq.apply(side).map_err(|source| DiffError::Jq {
                    object: object.clone(),
                    source,
                })?;
            }
        }
        if let (Some(t), Some(l), Some(raw_live)) = (&mut target, &live_n, live) {
            for manager in &rule.spec.managed_fields_managers {
                take_managed_fields(t, l, raw_live, manager);
            }
        }
    }

    if group.is_empty() && kind == "Secret" {
        mask::secrets(target.as_mut(), live_n.as_mut());
    }
    if !opts.mask_annotations.is_empty() {
        mask::annotations(target.as_mut(), live_n.as_mut(), &opts.mask_annotations);
    }

    let mut fields = Vec::new();
    let change = match (&target, &live_n) {
        (Some(t), Some(l)) => {
            compare(Some(t), Some(l), &mut Vec::new(), &mut fields);
            if fields.is_empty() {
                Change::None
            } else {
                Change::Update
            }
        }
        (Some(_), None) => Change::Create,
        (None, Some(_)) => Change::Prune,
        (None, None) => Change::None,
    };
    Ok(ResourceDiff {
        group,
        kind,
        namespace,
        name,
        status: if change == Change::None {
            SyncStatus::Synced
        } else {
            SyncStatus::OutOfSync
        },
        change,
        fields,
        ignore_extraneous,
        live: live_n,
        target,
    })
}

/// The app's sync status from its resources' (hooks left out by the
/// caller): OutOfSync when any differs, is missing or is extraneous, except
/// extraneous objects marked `IgnoreExtraneous`; Unknown when any could not
/// be compared.
pub fn app_status<'a>(diffs: impl IntoIterator<Item = &'a ResourceDiff>) -> SyncStatus {
    let mut status = SyncStatus::Synced;
    for d in diffs {
        match d.status {
            SyncStatus::Unknown => return SyncStatus::Unknown,
            SyncStatus::OutOfSync if !(d.change == Change::Prune && d.ignore_extraneous) => {
                status = SyncStatus::OutOfSync
            }
            _ => {}
        }
    }
    status
}

fn str_at<'a>(v: &'a Value, pointer: &str) -> &'a str {
    v.pointer(pointer)
        .and_then(Value::as_str)
        .unwrap_or_default()
}

/// Metadata the API server sets, which Git never holds.
const SERVER_METADATA: [&str; 8] = [
    "managedFields",
    "uid",
    "resourceVersion",
    "generation",
    "creationTimestamp",
    "selfLink",
    "deletionTimestamp",
    "deletionGracePeriodSeconds",
];

/// A copy without what normalization would remove anyway (status and
/// server metadata, `managedFields` being most of a live object's bytes).
fn lean_clone(obj: &Value) -> Value {
    let Some(map) = obj.as_object() else {
        return obj.clone();
    };
    let mut out = Map::with_capacity(map.len());
    for (k, v) in map {
        match (k.as_str(), v) {
            ("status", _) => {}
            ("metadata", Value::Object(meta)) => {
                let mut m = Map::with_capacity(meta.len());
                for (mk, mv) in meta {
                    if !SERVER_METADATA.contains(&mk.as_str()) {
                        m.insert(mk.clone(), mv.clone());
                    }
                }
                out.insert(k.clone(), Value::Object(m));
            }
            _ => {
                out.insert(k.clone(), v.clone());
            }
        }
    }
    Value::Object(out)
}

/// Removes what is never compared, and folds a Secret's `stringData` into
/// `data` as the API server does.
pub fn normalize(mut obj: Value, group: &str, kind: &str) -> Value {
    let Some(map) = obj.as_object_mut() else {
        return obj;
    };
    map.shift_remove("status");
    if let Some(meta) = map.get_mut("metadata").and_then(Value::as_object_mut) {
        for key in SERVER_METADATA {
            meta.shift_remove(key);
        }
        if let Some(ann) = meta.get_mut("annotations").and_then(Value::as_object_mut) {
            ann.shift_remove(LAST_APPLIED);
        }
        for key in ["annotations", "labels"] {
            if meta
                .get(key)
                .is_some_and(|v| v.is_null() || v.as_object().is_some_and(Map::is_empty))
            {
                meta.shift_remove(key);
            }
        }
    }
    if group.is_empty()
        && kind == "Secret"
        && let Some(Value::Object(string_data)) = map.shift_remove("stringData")
    {
        let data = map
            .entry("data")
            .or_insert_with(|| Value::Object(Map::new()));
        if !data.is_object() {
            *data = Value::Object(Map::new());
        }
        if let Some(data) = data.as_object_mut() {
            for (k, v) in string_data {
                let text = match v {
                    Value::String(s) => s,
                    Value::Null => String::new(),
                    other => other.to_string(),
                };
                data.insert(
                    k,
                    Value::String(base64::engine::general_purpose::STANDARD.encode(text)),
                );
            }
        }
    }
    obj
}

/// What the previous apply set, to tell a field removed from Git from a
/// field the server defaulted.
#[derive(Clone, Copy)]
enum Previous<'a> {
    /// The last-applied annotation (client-side apply).
    Applied(&'a Value),
    /// Our manager's `fieldsV1` (server-side apply).
    Fields(&'a Value),
}

/// The previous apply's record, owned: the last-applied annotation is
/// parsed from text.
enum PreviousOwned<'a> {
    Applied(Value),
    Fields(&'a Value),
}

impl PreviousOwned<'_> {
    fn view(&self) -> Previous<'_> {
        match self {
            PreviousOwned::Applied(v) => Previous::Applied(v),
            PreviousOwned::Fields(f) => Previous::Fields(f),
        }
    }
}

fn previous_apply<'a>(live: &'a Value, manager: &str) -> Option<PreviousOwned<'a>> {
    if let Some(text) = live
        .pointer("/metadata/annotations")
        .and_then(|a| a.get(LAST_APPLIED))
        .and_then(Value::as_str)
        && let Ok(v) = serde_json::from_str::<Value>(text)
    {
        return Some(PreviousOwned::Applied(v));
    }
    if manager.is_empty() {
        return None;
    }
    live.pointer("/metadata/managedFields")?
        .as_array()?
        .iter()
        .find(|m| {
            m.get("manager").and_then(Value::as_str) == Some(manager)
                && m.get("operation").and_then(Value::as_str) == Some("Apply")
        })
        .and_then(|m| m.get("fieldsV1"))
        .map(PreviousOwned::Fields)
}

/// The `f:<key>` entry of a field set, without building the key.
fn field_entry<'a>(fields: &'a Value, key: &str) -> Option<&'a Value> {
    fields
        .as_object()?
        .iter()
        .find(|(k, _)| k.strip_prefix("f:") == Some(key))
        .map(|(_, v)| v)
}

impl<'a> Previous<'a> {
    /// Whether the entry names fields inside it, rather than the whole
    /// value (an empty map in last-applied names nothing inside).
    fn has_children(self) -> bool {
        match self {
            Previous::Applied(v) => v.is_object(),
            Previous::Fields(f) => f.as_object().is_some_and(|m| m.keys().any(|k| k != ".")),
        }
    }

    fn child(self, key: &str) -> Option<Previous<'a>> {
        match self {
            Previous::Applied(v) => v.get(key).map(Previous::Applied),
            Previous::Fields(f) => field_entry(f, key).map(Previous::Fields),
        }
    }

    /// The entry for the list item whose merge key `key` is `value`.
    fn item(self, key: &str, value: &Value) -> Option<Previous<'a>> {
        match self {
            Previous::Applied(Value::Array(items)) => items
                .iter()
                .find(|i| i.get(key) == Some(value))
                .map(Previous::Applied),
            Previous::Applied(_) => None,
            Previous::Fields(f) => {
                let want = serde_json::json!({ key: value }).to_string();
                f.get(format!("k:{want}")).map(Previous::Fields)
            }
        }
    }
}

/// The keys by which Kubernetes merges lists of objects, in the order they
/// are tried: an item list is merged when every item, desired and live,
/// has the key.
const MERGE_KEYS: [&str; 5] = ["name", "containerPort", "port", "mountPath", "ip"];

/// The live object after applying `desired`.
/// Where the desired and live values are the same written differently
/// (`2.0` and `2`, `1000m` and `1` in a resource field), the live spelling
/// is kept so that people see no change where there is none.
fn overlay(live: &Value, desired: &Value, previous: Option<Previous<'_>>, quantity: bool) -> Value {
    match (live, desired) {
        (Value::Object(l), Value::Object(d)) => {
            let mut out = Map::new();
            for (k, lv) in l {
                match d.get(k) {
                    Some(dv) => {
                        let prev = previous.and_then(|p| p.child(k));
                        let q = quantity || QUANTITY_KEYS.contains(&k.as_str());
                        out.insert(k.clone(), overlay(lv, dv, prev, q));
                    }
                    // Set by the previous apply and gone from Git: removed. A
                    // map the previous apply set keys in loses only those
                    // keys (the server's own annotations stay).
                    None if let Some(prev) = previous.and_then(|p| p.child(k)) => {
                        if lv.is_object() && prev.has_children() {
                            let rest =
                                overlay(lv, &Value::Object(Map::new()), Some(prev), quantity);
                            if rest.as_object().is_some_and(|m| !m.is_empty()) {
                                out.insert(k.clone(), rest);
                            }
                        }
                    }
                    None => {
                        out.insert(k.clone(), lv.clone());
                    }
                }
            }
            for (k, dv) in d {
                if !l.contains_key(k) {
                    out.insert(k.clone(), dv.clone());
                }
            }
            Value::Object(out)
        }
        (Value::Array(l), Value::Array(d)) => {
            let key = MERGE_KEYS.iter().find(|k| {
                l.iter().chain(d.iter()).all(|i| i.get(**k).is_some())
                    && !(l.is_empty() && d.is_empty())
            });
            match key {
                Some(key) => Value::Array(
                    d.iter()
                        .map(|di| {
                            let id = di.get(*key);
                            match l.iter().find(|li| li.get(*key) == id) {
                                Some(li) => {
                                    let prev = previous.zip(id).and_then(|(p, id)| p.item(key, id));
                                    overlay(li, di, prev, quantity)
                                }
                                None => di.clone(),
                            }
                        })
                        .collect(),
                ),
                None if l.len() == d.len() => Value::Array(
                    l.iter()
                        .zip(d)
                        .map(|(li, di)| overlay(li, di, None, quantity))
                        .collect(),
                ),
                None => desired.clone(),
            }
        }
        (Value::Number(a), Value::Number(b)) if a.as_f64() == b.as_f64() => live.clone(),
        (l, d) if quantity => match (scalar_text(l), scalar_text(d)) {
            (Some(x), Some(y)) if quantity::equal(&x, &y) => live.clone(),
            _ => desired.clone(),
        },
        _ => desired.clone(),
    }
}

/// Takes the fields `manager` owns in the live object into the target, so
/// they compare equal (Argo CD's `managedFieldsManagers`).
fn take_managed_fields(target: &mut Value, live: &Value, raw_live: &Value, manager: &str) {
    let Some(entries) = raw_live
        .pointer("/metadata/managedFields")
        .and_then(Value::as_array)
    else {
        return;
    };
    for entry in entries
        .iter()
        .filter(|e| e.get("manager").and_then(Value::as_str) == Some(manager))
    {
        let Some(fields) = entry.get("fieldsV1") else {
            continue;
        };
        for p in path::fields_v1_paths(fields, raw_live) {
            match get(live, &p) {
                Some(v) => {
                    set(target, &p, v.clone());
                }
                None => {
                    path::remove(target, &p);
                }
            }
        }
    }
}

fn get<'a>(v: &'a Value, p: &[Seg]) -> Option<&'a Value> {
    p.iter().try_fold(v, |cur, seg| match seg {
        Seg::Key(k) => cur.get(k),
        Seg::Index(i) => cur.get(i),
    })
}

/// Sets the value at `p` when its parent exists.
fn set(v: &mut Value, p: &[Seg], value: Value) -> bool {
    let Some((last, parents)) = p.split_last() else {
        return false;
    };
    let mut cur = v;
    for seg in parents {
        let next = match seg {
            Seg::Key(k) => cur.get_mut(k),
            Seg::Index(i) => cur.get_mut(*i),
        };
        match next {
            Some(n) => cur = n,
            None => return false,
        }
    }
    match (cur, last) {
        (Value::Object(m), Seg::Key(k)) => {
            m.insert(k.clone(), value);
            true
        }
        (Value::Array(items), Seg::Index(i)) if *i < items.len() => {
            items[*i] = value;
            true
        }
        _ => false,
    }
}

/// Whether Kubernetes treats the value as not set.
fn is_empty(v: Option<&Value>) -> bool {
    match v {
        None | Some(Value::Null) => true,
        Some(Value::Object(m)) => m.is_empty(),
        Some(Value::Array(a)) => a.is_empty(),
        Some(Value::String(s)) => s.is_empty(),
        _ => false,
    }
}

/// Fields under these keys hold resource quantities.
const QUANTITY_KEYS: [&str; 12] = [
    "limits",
    "requests",
    "hard",
    "capacity",
    "allocatable",
    "sizeLimit",
    "max",
    "min",
    "default",
    "defaultRequest",
    "maxLimitRequestRatio",
    "overhead",
];

/// A path segment borrowed from the objects being compared, so walking
/// them allocates nothing until a difference is recorded.
#[derive(Clone, Copy)]
enum At<'a> {
    Key(&'a str),
    Index(usize),
}

fn in_quantity_field(at: &[At<'_>]) -> bool {
    at.iter()
        .any(|s| matches!(s, At::Key(k) if QUANTITY_KEYS.contains(k)))
}

fn owned_path(at: &[At<'_>]) -> Path {
    Path(
        at.iter()
            .map(|s| match s {
                At::Key(k) => Seg::Key((*k).to_string()),
                At::Index(i) => Seg::Index(*i),
            })
            .collect(),
    )
}

fn scalar_text(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

fn compare<'a>(
    target: Option<&'a Value>,
    live: Option<&'a Value>,
    at: &mut Vec<At<'a>>,
    out: &mut Vec<FieldChange>,
) {
    if is_empty(target) && is_empty(live) {
        return;
    }
    let differ = match (target, live) {
        (Some(Value::Object(t)), Some(Value::Object(l))) => {
            for (k, tv) in t {
                at.push(At::Key(k));
                compare(Some(tv), l.get(k), at, out);
                at.pop();
            }
            for (k, lv) in l {
                if !t.contains_key(k) {
                    at.push(At::Key(k));
                    compare(None, Some(lv), at, out);
                    at.pop();
                }
            }
            false
        }
        (Some(Value::Array(t)), Some(Value::Array(l))) if t.len() == l.len() => {
            for (i, (tv, lv)) in t.iter().zip(l).enumerate() {
                at.push(At::Index(i));
                compare(Some(tv), Some(lv), at, out);
                at.pop();
            }
            false
        }
        (Some(Value::Number(a)), Some(Value::Number(b))) => a.as_f64() != b.as_f64(),
        (Some(a), Some(b)) if in_quantity_field(at) => match (scalar_text(a), scalar_text(b)) {
            (Some(x), Some(y)) => !quantity::equal(&x, &y),
            _ => a != b,
        },
        (Some(a), Some(b)) => a != b,
        _ => true,
    };
    if differ {
        out.push(FieldChange {
            path: owned_path(at).to_string(),
            live: live.cloned(),
            target: target.cloned(),
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn globs() {
        assert!(glob("*", "apps"));
        assert!(glob("*", ""));
        assert!(glob("", ""));
        assert!(!glob("", "apps"));
        assert!(glob("*.crossplane.io", "aws.crossplane.io"));
        assert!(!glob("*.crossplane.io", "crossplane.io.evil"));
        assert!(glob("apps", "apps"));
        assert!(glob("a*c", "abc"));
    }
}
