//! Sync planning with Argo CD 3.x's semantics: from the desired and live
//! objects of an application and its sync options to an explicit [`Plan`]
//! of phases, waves and steps, which people can read ([`Plan`]'s `Display`),
//! tools can store (`serde`), runs can compare (`PartialEq`) and the
//! controller executes. Pure: nothing here talks to a cluster.
//!
//! - [`plan_sync`] plans a sync operation: `PreSync`, `Sync` and `PostSync`
//!   groups (one per phase and wave), what to do when the sync succeeds and
//!   when it fails (`SyncFail` hooks, hook deletion policies).
//! - [`plan_deletion`] plans the deletion of an application: `PreDelete`
//!   hooks, deletion of its objects wave by wave (highest first), then
//!   `PostDelete` hooks.
//!
//! Problems are collected, never dropped: every unknown sync option, bad
//! value or unreadable annotation becomes a [`Diagnostic`] naming the object
//! and the option; [`Plan::validate`] refuses a plan that has errors.

use std::cmp::{Ordering, Reverse};
use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::fmt;

use berth_api::kinds::{apply_rank, group_kind, is_cluster_scoped};
use serde::Serialize;
use serde_json::Value;

/// Per-resource sync options, comma separated.
pub const SYNC_OPTIONS_ANNOTATION: &str = "argocd.argoproj.io/sync-options";
/// The wave of a resource or hook: an integer, 0 by default.
pub const SYNC_WAVE_ANNOTATION: &str = "argocd.argoproj.io/sync-wave";
/// The hook types of an object, comma separated.
pub const HOOK_ANNOTATION: &str = "argocd.argoproj.io/hook";
/// When a hook is deleted, comma separated.
pub const HOOK_DELETE_POLICY_ANNOTATION: &str = "argocd.argoproj.io/hook-delete-policy";
/// Helm's hook types, mapped onto Argo CD's.
pub const HELM_HOOK_ANNOTATION: &str = "helm.sh/hook";
/// Helm's hook weight, the wave when there is no sync-wave annotation.
pub const HELM_HOOK_WEIGHT_ANNOTATION: &str = "helm.sh/hook-weight";
/// Helm's hook deletion policies, added to Argo CD's.
pub const HELM_HOOK_DELETE_POLICY_ANNOTATION: &str = "helm.sh/hook-delete-policy";
/// `keep` here protects an object from deletion with its application.
pub const HELM_RESOURCE_POLICY_ANNOTATION: &str = "helm.sh/resource-policy";

const CRD_GROUP: &str = "apiextensions.k8s.io";
const CRD_KIND: &str = "CustomResourceDefinition";

/// Errors of this module.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The plan has error diagnostics: running it would mean guessing what
    /// the manifests meant.
    #[error("the plan has {count} error(s); the first: {first}")]
    Invalid {
        /// How many error diagnostics the plan has.
        count: usize,
        /// The first of them.
        first: Box<Diagnostic>,
    },
}

/// This module's result type.
pub type Result<T, E = Error> = std::result::Result<T, E>;

// ---------------------------------------------------------------------------
// Input

/// One object of the application: what Git wants, what the cluster has, or
/// both. The caller pairs desired and live objects by group, kind,
/// namespace and name.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Resource {
    /// The rendered manifest, already marked with tracking; `None` when the
    /// object is no longer in Git.
    pub desired: Option<Value>,
    /// The object in the cluster; `None` when it does not exist yet.
    pub live: Option<Value>,
    /// The diff found no difference (only meaningful with both sides).
    pub in_sync: bool,
    /// Another application that also tracks this object, if any.
    pub shared_with: Option<String>,
}

impl Resource {
    /// An object in Git that the cluster does not have yet.
    pub fn desired(desired: Value) -> Resource {
        Resource {
            desired: Some(desired),
            ..Resource::default()
        }
    }

    /// An object in Git and in the cluster.
    pub fn existing(desired: Value, live: Value, in_sync: bool) -> Resource {
        Resource {
            desired: Some(desired),
            live: Some(live),
            in_sync,
            shared_with: None,
        }
    }

    /// An object of the application that is no longer in Git.
    pub fn extraneous(live: Value) -> Resource {
        Resource {
            live: Some(live),
            ..Resource::default()
        }
    }

    /// Marks the object as also tracked by application `app`.
    pub fn shared_with(mut self, app: impl Into<String>) -> Resource {
        self.shared_with = Some(app.into());
        self
    }
}

/// Labels and annotations for the destination namespace
/// (`spec.syncPolicy.managedNamespaceMetadata`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct NamespaceMetadata {
    /// Labels to set.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub labels: BTreeMap<String, String>,
    /// Annotations to set.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: BTreeMap<String, String>,
}

/// Everything [`plan_sync`] needs for one sync operation.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct SyncInput {
    /// The application's objects.
    pub resources: Vec<Resource>,
    /// `spec.syncPolicy.syncOptions` (or the operation's), `Key=Value` each.
    pub sync_options: Vec<String>,
    /// Pruning was requested for this sync (`syncPolicy.automated.prune`
    /// or the operation's `prune`).
    pub prune: bool,
    /// The operation asked for a forced sync (its sync strategy's `force`).
    pub force: bool,
    /// Hooks are not run (an apply-strategy or selective sync).
    pub skip_hooks: bool,
    /// `spec.destination.namespace`: the namespace of namespaced objects
    /// that name none, and the namespace `CreateNamespace=true` creates.
    pub destination_namespace: String,
    /// The destination namespace already exists.
    pub namespace_exists: bool,
    /// `spec.syncPolicy.managedNamespaceMetadata`.
    pub managed_namespace_metadata: Option<NamespaceMetadata>,
}

/// Everything [`plan_deletion`] needs to delete an application.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct DeletionInput {
    /// The application's objects: live ones are deleted, desired ones
    /// provide the `PreDelete` and `PostDelete` hooks.
    pub resources: Vec<Resource>,
    /// `spec.syncPolicy.syncOptions` (for `Delete=false|confirm`).
    pub sync_options: Vec<String>,
    /// `spec.destination.namespace`.
    pub destination_namespace: String,
    /// Foreground by default; background when the Application carries the
    /// background-deletion finalizer.
    pub propagation: Propagation,
}

// ---------------------------------------------------------------------------
// Vocabulary

/// A sync phase, in execution order, then the phases of application
/// deletion.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
pub enum Phase {
    /// Hooks run before anything is applied.
    PreSync,
    /// Resources, and `Sync` hooks with them.
    Sync,
    /// Hooks run once the sync succeeded and everything is healthy.
    PostSync,
    /// Hooks run when the sync fails.
    SyncFail,
    /// Hooks run before an application's objects are deleted.
    PreDelete,
    /// The deletion of an application's objects (Argo CD has no name for
    /// this step; Berth needs one for its groups).
    Delete,
    /// Hooks run after an application's objects are deleted.
    PostDelete,
}

impl Phase {
    /// Argo CD's name of the phase.
    pub fn as_str(self) -> &'static str {
        match self {
            Phase::PreSync => "PreSync",
            Phase::Sync => "Sync",
            Phase::PostSync => "PostSync",
            Phase::SyncFail => "SyncFail",
            Phase::PreDelete => "PreDelete",
            Phase::Delete => "Delete",
            Phase::PostDelete => "PostDelete",
        }
    }

    fn runs_in_sync(self) -> bool {
        matches!(
            self,
            Phase::PreSync | Phase::Sync | Phase::PostSync | Phase::SyncFail
        )
    }
}

impl fmt::Display for Phase {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// When a hook is deleted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
pub enum DeletePolicy {
    /// After the operation succeeded.
    HookSucceeded,
    /// After the operation failed.
    HookFailed,
    /// Before the hook is created again (the default).
    BeforeHookCreation,
    /// Never (newer Argo CD): the hook stays.
    Never,
}

impl fmt::Display for DeletePolicy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            DeletePolicy::HookSucceeded => "HookSucceeded",
            DeletePolicy::HookFailed => "HookFailed",
            DeletePolicy::BeforeHookCreation => "BeforeHookCreation",
            DeletePolicy::Never => "Never",
        })
    }
}

/// Whether an object may be pruned (`Prune=`) or deleted with its
/// application (`Delete=`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
#[serde(rename_all = "camelCase")]
pub enum Removal {
    /// Yes (`true`, the default).
    #[default]
    Allow,
    /// No (`false`).
    Deny,
    /// Only once someone confirms (`confirm`).
    Confirm,
}

/// How the API server deletes an object's dependents.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
#[serde(rename_all = "camelCase")]
pub enum Propagation {
    /// Dependents first, then the object (Argo CD's default for pruning).
    #[default]
    Foreground,
    /// The object now, dependents by the garbage collector.
    Background,
    /// Dependents are kept.
    Orphan,
}

impl fmt::Display for Propagation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Propagation::Foreground => "foreground",
            Propagation::Background => "background",
            Propagation::Orphan => "orphan",
        })
    }
}

/// How an object is written to the cluster.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub enum ApplyStrategy {
    /// `kubectl apply` (the default).
    ClientSideApply,
    /// `kubectl apply --server-side --force-conflicts`.
    ServerSideApply,
    /// `kubectl create`: `Replace=true` and the object does not exist.
    Create,
    /// `kubectl replace`: `Replace=true` and the object exists.
    Replace,
    /// An update keeping the live resource version: `Replace=true` on a
    /// CRD or Namespace, where a replace could delete what they hold.
    Update,
}

impl fmt::Display for ApplyStrategy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ApplyStrategy::ClientSideApply => "client-side apply",
            ApplyStrategy::ServerSideApply => "server-side apply",
            ApplyStrategy::Create => "create",
            ApplyStrategy::Replace => "replace",
            ApplyStrategy::Update => "update",
        })
    }
}

/// What applying an object changes, as far as the plan knows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub enum Change {
    /// The object does not exist yet.
    Create,
    /// The object exists and differs.
    Update,
    /// The object exists and is in sync; it is applied anyway.
    Unchanged,
}

impl fmt::Display for Change {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Change::Create => "create",
            Change::Update => "update",
            Change::Unchanged => "unchanged",
        })
    }
}

/// An object the plan refers to. Namespaced objects without a namespace get
/// the destination namespace; hooks with `metadata.generateName` have an
/// empty `name` until the executor names them ([`generated_hook_name`]).
#[derive(Debug, Clone, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ObjectRef {
    /// API group, empty for the core group.
    pub group: String,
    /// Kind.
    pub kind: String,
    /// Namespace, empty for cluster-scoped objects.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub namespace: String,
    /// Name, empty for a hook named at sync time.
    pub name: String,
    /// `metadata.generateName` of a hook named at sync time.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub generate_name: Option<String>,
    /// `apiVersion` of the manifest.
    pub api_version: String,
}

impl ObjectRef {
    /// Describes `obj`, giving namespaced kinds `default_namespace` when the
    /// manifest has none; the problem is what makes the object unusable.
    fn describe(obj: &Value, default_namespace: &str) -> (ObjectRef, Option<Problem>) {
        let (group, kind) = group_kind(obj);
        let text = |pointer: &str| {
            obj.pointer(pointer)
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_string()
        };
        let mut namespace = text("/metadata/namespace");
        if namespace.is_empty() && !is_cluster_scoped(kind) {
            namespace = default_namespace.to_string();
        }
        let name = text("/metadata/name");
        let generate_name = Some(text("/metadata/generateName")).filter(|_| name.is_empty());
        let generate_name = generate_name.filter(|g| !g.is_empty());
        let api_version = text("/apiVersion");
        let problem = if api_version.is_empty() {
            Some(Problem::MissingField {
                field: "apiVersion",
            })
        } else if kind.is_empty() {
            Some(Problem::MissingField { field: "kind" })
        } else if name.is_empty() && generate_name.is_none() {
            Some(Problem::MissingField {
                field: "metadata.name",
            })
        } else {
            None
        };
        let oref = ObjectRef {
            group: group.to_string(),
            kind: kind.to_string(),
            namespace,
            name,
            generate_name,
            api_version,
        };
        (oref, problem)
    }

    /// The name to sort by: the name, or the generateName prefix.
    fn sort_name(&self) -> &str {
        self.generate_name.as_deref().unwrap_or(&self.name)
    }

    fn is_crd(&self) -> bool {
        self.group == CRD_GROUP && self.kind == CRD_KIND
    }
}

impl fmt::Display for ObjectRef {
    /// `Kind.group namespace/name`, as `kubectl` spells types; a hook named
    /// at sync time shows its prefix followed by `*`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.kind)?;
        if !self.group.is_empty() {
            write!(f, ".{}", self.group)?;
        }
        f.write_str(" ")?;
        if !self.namespace.is_empty() {
            write!(f, "{}/", self.namespace)?;
        }
        match &self.generate_name {
            Some(prefix) => write!(f, "{prefix}*"),
            None => f.write_str(&self.name),
        }
    }
}

/// The name Argo CD gives a hook with `metadata.generateName`: the prefix,
/// then the first seven characters of the revision, the phase and the
/// operation's start time in Unix seconds, lower-cased.
pub fn generated_hook_name(
    generate_name: &str,
    revision: &str,
    phase: Phase,
    started_at_unix: i64,
) -> String {
    let revision: String = if revision.chars().count() >= 8 {
        revision.chars().take(7).collect()
    } else {
        revision.to_string()
    };
    let suffix = format!("{revision}-{phase}-{started_at_unix}").to_lowercase();
    format!("{generate_name}{suffix}")
}

// ---------------------------------------------------------------------------
// Sync options

/// Where a sync option was written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub enum OptionOrigin {
    /// `spec.syncPolicy.syncOptions`.
    Application,
    /// The object's `argocd.argoproj.io/sync-options` annotation.
    Annotation,
}

impl fmt::Display for OptionOrigin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            OptionOrigin::Application => f.write_str("spec.syncPolicy.syncOptions"),
            OptionOrigin::Annotation => write!(f, "annotation {SYNC_OPTIONS_ANNOTATION}"),
        }
    }
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Scope {
    Both,
    ApplicationOnly,
    ResourceOnly,
}

/// Every option Berth knows, and where it has an effect in Argo CD.
const KNOWN_OPTIONS: [(&str, Scope); 14] = [
    ("Prune", Scope::Both),
    ("Delete", Scope::Both),
    ("Validate", Scope::Both),
    ("CreateNamespace", Scope::ApplicationOnly),
    ("ApplyOutOfSyncOnly", Scope::Both),
    ("PrunePropagationPolicy", Scope::ApplicationOnly),
    ("PruneLast", Scope::Both),
    ("Replace", Scope::Both),
    // Argo CD ignores Force=true in syncOptions; the operation's sync
    // strategy carries the application-wide force.
    ("Force", Scope::ResourceOnly),
    ("ServerSideApply", Scope::Both),
    ("RespectIgnoreDifferences", Scope::Both),
    ("FailOnSharedResource", Scope::ApplicationOnly),
    ("SkipDryRunOnMissingResource", Scope::Both),
    ("ClientSideApplyMigration", Scope::ApplicationOnly),
];

/// Sync options as written in one place (the Application, or one object's
/// annotation); `None` means not given. [`plan_sync`] combines the two.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct SyncOptions {
    /// `Prune=true|false|confirm`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub prune: Option<Removal>,
    /// `Delete=true|false|confirm`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub delete: Option<Removal>,
    /// `Validate=true|false`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub validate: Option<bool>,
    /// `CreateNamespace=true|false`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub create_namespace: Option<bool>,
    /// `ApplyOutOfSyncOnly=true|false`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub apply_out_of_sync_only: Option<bool>,
    /// `PrunePropagationPolicy=foreground|background|orphan`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub prune_propagation_policy: Option<Propagation>,
    /// `PruneLast=true|false`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub prune_last: Option<bool>,
    /// `Replace=true|false`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub replace: Option<bool>,
    /// `Force=true|false` (resources only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub force: Option<bool>,
    /// `ServerSideApply=true|false`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub server_side_apply: Option<bool>,
    /// `RespectIgnoreDifferences=true|false`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub respect_ignore_differences: Option<bool>,
    /// `FailOnSharedResource=true|false`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fail_on_shared_resource: Option<bool>,
    /// `SkipDryRunOnMissingResource=true|false`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub skip_dry_run_on_missing_resource: Option<bool>,
    /// `ClientSideApplyMigration=true|false`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub client_side_apply_migration: Option<bool>,
}

impl SyncOptions {
    /// Parses `items` written at `origin`. Unknown keys, options that have
    /// no effect where they are written and contradictions are warnings;
    /// invalid values are errors. The first of two contradicting options
    /// wins, as Argo CD's lookups find the first.
    pub fn parse<'a>(
        items: impl IntoIterator<Item = &'a str>,
        origin: OptionOrigin,
    ) -> (SyncOptions, Vec<Diagnostic>) {
        let mut diagnostics = Vec::new();
        let options = parse_options(items, origin, None, &mut diagnostics);
        (options, diagnostics)
    }

    fn bool_slot(&mut self, key: &str) -> Option<&mut Option<bool>> {
        Some(match key {
            "Validate" => &mut self.validate,
            "CreateNamespace" => &mut self.create_namespace,
            "ApplyOutOfSyncOnly" => &mut self.apply_out_of_sync_only,
            "PruneLast" => &mut self.prune_last,
            "Replace" => &mut self.replace,
            "Force" => &mut self.force,
            "ServerSideApply" => &mut self.server_side_apply,
            "RespectIgnoreDifferences" => &mut self.respect_ignore_differences,
            "FailOnSharedResource" => &mut self.fail_on_shared_resource,
            "SkipDryRunOnMissingResource" => &mut self.skip_dry_run_on_missing_resource,
            "ClientSideApplyMigration" => &mut self.client_side_apply_migration,
            _ => return None,
        })
    }
}

/// Stores `value` unless an earlier option set a different one; reports
/// whether the two contradict.
fn put<T: Copy + PartialEq>(slot: &mut Option<T>, value: T) -> bool {
    match slot {
        Some(old) => *old != value,
        None => {
            *slot = Some(value);
            false
        }
    }
}

fn parse_options<'a>(
    items: impl IntoIterator<Item = &'a str>,
    origin: OptionOrigin,
    object: Option<&ObjectRef>,
    diagnostics: &mut Vec<Diagnostic>,
) -> SyncOptions {
    let mut options = SyncOptions::default();
    let mut report = |severity: Severity, problem: Problem| {
        diagnostics.push(Diagnostic {
            severity,
            object: object.cloned(),
            problem,
        });
    };
    for item in items.into_iter().map(str::trim).filter(|i| !i.is_empty()) {
        let option = item.to_string();
        let Some((key, value)) = item.split_once('=') else {
            report(
                Severity::Warning,
                Problem::MalformedSyncOption { option, origin },
            );
            continue;
        };
        let Some(&(_, scope)) = KNOWN_OPTIONS.iter().find(|(k, _)| *k == key) else {
            let suggestion = KNOWN_OPTIONS
                .iter()
                .find(|(k, _)| k.eq_ignore_ascii_case(key))
                .map(|(k, _)| *k);
            report(
                Severity::Warning,
                Problem::UnknownSyncOption {
                    option,
                    origin,
                    suggestion,
                },
            );
            continue;
        };
        match (scope, origin) {
            (Scope::ApplicationOnly, OptionOrigin::Annotation) => {
                report(Severity::Warning, Problem::ApplicationOnlyOption { option });
                continue;
            }
            (Scope::ResourceOnly, OptionOrigin::Application) => {
                report(Severity::Warning, Problem::ResourceOnlyOption { option });
                continue;
            }
            _ => {}
        }
        let conflict = match key {
            "Prune" | "Delete" => {
                let Some(removal) = parse_removal(value) else {
                    report(
                        Severity::Error,
                        Problem::InvalidSyncOptionValue {
                            option,
                            origin,
                            expected: "true, false or confirm",
                        },
                    );
                    continue;
                };
                let slot = if key == "Prune" {
                    &mut options.prune
                } else {
                    &mut options.delete
                };
                put(slot, removal)
            }
            "PrunePropagationPolicy" => {
                let Some(policy) = parse_propagation(value) else {
                    report(
                        Severity::Error,
                        Problem::InvalidSyncOptionValue {
                            option,
                            origin,
                            expected: "foreground, background or orphan",
                        },
                    );
                    continue;
                };
                put(&mut options.prune_propagation_policy, policy)
            }
            _ => {
                let parsed = match value {
                    "true" => Some(true),
                    "false" => Some(false),
                    _ => None,
                };
                let (Some(flag), Some(slot)) = (parsed, options.bool_slot(key)) else {
                    report(
                        Severity::Error,
                        Problem::InvalidSyncOptionValue {
                            option,
                            origin,
                            expected: "true or false",
                        },
                    );
                    continue;
                };
                put(slot, flag)
            }
        };
        if conflict {
            report(
                Severity::Warning,
                Problem::ConflictingSyncOption { option, origin },
            );
        }
    }
    options
}

fn parse_removal(value: &str) -> Option<Removal> {
    match value {
        "true" => Some(Removal::Allow),
        "false" => Some(Removal::Deny),
        "confirm" => Some(Removal::Confirm),
        _ => None,
    }
}

fn parse_propagation(value: &str) -> Option<Propagation> {
    match value {
        "foreground" => Some(Propagation::Foreground),
        "background" => Some(Propagation::Background),
        "orphan" => Some(Propagation::Orphan),
        _ => None,
    }
}

// ---------------------------------------------------------------------------
// Diagnostics

/// How bad a problem is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "camelCase")]
pub enum Severity {
    /// The plan must not run ([`Plan::validate`] fails).
    Error,
    /// Probably not what was meant; the plan does what Argo CD would do.
    Warning,
    /// Worth knowing.
    Info,
}

impl fmt::Display for Severity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Severity::Error => "error",
            Severity::Warning => "warning",
            Severity::Info => "info",
        })
    }
}

fn hint(suggestion: &Option<&'static str>) -> String {
    suggestion
        .map(|s| format!(" (did you mean {s}?)"))
        .unwrap_or_default()
}

/// What is wrong; the message is part of Berth's interface.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, thiserror::Error)]
#[serde(tag = "code", rename_all = "camelCase")]
pub enum Problem {
    /// A sync option Argo CD does not know (it would ignore it).
    #[error("unknown sync option \"{option}\" in {origin}{}", hint(.suggestion))]
    UnknownSyncOption {
        /// The option as written.
        option: String,
        /// Where.
        origin: OptionOrigin,
        /// The known option differing only in case.
        #[serde(skip_serializing_if = "Option::is_none")]
        suggestion: Option<&'static str>,
    },
    /// A sync option without `=`.
    #[error("sync option \"{option}\" in {origin} is not of the form Key=Value")]
    MalformedSyncOption {
        /// The option as written.
        option: String,
        /// Where.
        origin: OptionOrigin,
    },
    /// A known option with a value it does not take.
    #[error("sync option \"{option}\" in {origin} has an invalid value: expected {expected}")]
    InvalidSyncOptionValue {
        /// The option as written.
        option: String,
        /// Where.
        origin: OptionOrigin,
        /// The values it takes.
        expected: &'static str,
    },
    /// The same option given twice with different values.
    #[error("sync option \"{option}\" in {origin} contradicts an earlier one, which wins")]
    ConflictingSyncOption {
        /// The option as written.
        option: String,
        /// Where.
        origin: OptionOrigin,
    },
    /// An option that only works in `spec.syncPolicy.syncOptions`.
    #[error(
        "sync option \"{option}\" has no effect on a resource; set it in spec.syncPolicy.syncOptions"
    )]
    ApplicationOnlyOption {
        /// The option as written.
        option: String,
    },
    /// An option that only works in a resource's annotation.
    #[error(
        "sync option \"{option}\" has no effect in spec.syncPolicy.syncOptions; set it in the annotation {SYNC_OPTIONS_ANNOTATION} of the resources concerned"
    )]
    ResourceOnlyOption {
        /// The option as written.
        option: String,
    },
    /// A resource's option that Argo CD combines with the Application's
    /// instead of letting it override.
    #[error(
        "sync option \"{option}\" on the resource does not override \"{application}\" in spec.syncPolicy.syncOptions"
    )]
    NotOverridden {
        /// The resource's option.
        option: String,
        /// The Application's option that wins.
        application: String,
    },
    /// A wave or hook weight that is not an integer.
    #[error("annotation {annotation}: \"{value}\" is not an integer")]
    InvalidWave {
        /// The annotation.
        annotation: &'static str,
        /// Its value.
        value: String,
    },
    /// A hook type nobody knows.
    #[error("annotation {annotation}: unknown hook type \"{value}\"")]
    UnknownHookType {
        /// The annotation.
        annotation: &'static str,
        /// The unknown type.
        value: String,
    },
    /// A Helm hook type Argo CD does not map to any of its phases.
    #[error("Helm hook \"{value}\" is not supported by Argo CD and is ignored")]
    UnsupportedHelmHook {
        /// The Helm hook type.
        value: String,
    },
    /// `Skip` next to other hook types.
    #[error("hook type Skip is ignored next to other hook types")]
    SkipWithOtherHooks,
    /// A hook deletion policy nobody knows.
    #[error("annotation {annotation}: unknown hook deletion policy \"{value}\"")]
    UnknownDeletePolicy {
        /// The annotation.
        annotation: &'static str,
        /// The unknown policy.
        value: String,
    },
    /// A named hook that exists and is not deleted before creation: it is
    /// applied again, which does not run it again.
    #[error(
        "the hook exists and is only re-applied, not run again; add the BeforeHookCreation deletion policy or use metadata.generateName"
    )]
    HookNotRerun,
    /// A required field is missing.
    #[error("object has no {field}")]
    MissingField {
        /// The field.
        field: &'static str,
    },
    /// `metadata.generateName` on an object that is not a hook.
    #[error("metadata.generateName is only supported on hooks; set metadata.name")]
    GenerateNameWithoutHook,
    /// The same object twice in the input.
    #[error("object is listed more than once")]
    DuplicateObject,
    /// Another application tracks the object too.
    #[error("object is also managed by application \"{application}\"")]
    SharedResource {
        /// The other application.
        application: String,
    },
}

/// A problem found while planning, with the object it concerns.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Diagnostic {
    /// How bad.
    pub severity: Severity,
    /// The object, or `None` for the Application's own options.
    pub object: Option<ObjectRef>,
    /// What.
    pub problem: Problem,
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: ", self.severity)?;
        if let Some(object) = &self.object {
            write!(f, "{object}: ")?;
        }
        write!(f, "{}", self.problem)
    }
}

impl Serialize for Diagnostic {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        #[derive(Serialize)]
        struct Out<'a> {
            severity: Severity,
            #[serde(skip_serializing_if = "Option::is_none")]
            object: Option<&'a ObjectRef>,
            #[serde(flatten)]
            problem: &'a Problem,
            message: String,
        }
        Out {
            severity: self.severity,
            object: self.object.as_ref(),
            problem: &self.problem,
            message: self.problem.to_string(),
        }
        .serialize(serializer)
    }
}

// ---------------------------------------------------------------------------
// Output

/// Which operation a plan is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub enum PlanKind {
    /// A sync.
    Sync,
    /// The deletion of the application.
    Deletion,
}

/// The plan of one operation. Steps run in order: `prepare`, then each
/// group, then `on_success` or `on_failure`. Within a group, consecutive
/// `Prune`, `Delete` or `DeleteHook` steps may run concurrently, and so may
/// consecutive `Apply`/`Hook` steps of the same kind (Argo CD applies one
/// kind at a time); a [`Step::Wait`] is a barrier. Argo CD also pauses
/// between waves (`ARGOCD_SYNC_WAVE_DELAY`, 2 seconds) so that controllers
/// see the change before health is read: that is the executor's business.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Plan {
    /// Sync or deletion.
    pub kind: PlanKind,
    /// The Application's sync options as understood.
    pub options: SyncOptions,
    /// Pruning was requested.
    pub prune: bool,
    /// Before every phase (the destination namespace).
    pub prepare: Vec<Step>,
    /// One group per phase and wave, in execution order.
    pub groups: Vec<Group>,
    /// Once every group succeeded.
    pub on_success: Vec<Step>,
    /// As soon as a step fails (or a hook fails, or a resource degrades):
    /// hook deletions, then the `SyncFail` hooks.
    pub on_failure: Vec<Step>,
    /// Objects the plan leaves alone, and why, ordered by group, kind,
    /// namespace and name.
    pub skipped: Vec<Skipped>,
    /// Problems found, application-wide ones first.
    pub diagnostics: Vec<Diagnostic>,
}

/// The steps of one phase and wave.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Group {
    /// The phase.
    pub phase: Phase,
    /// The wave.
    pub wave: i64,
    /// In order; the last one is usually the wave's [`Step::Wait`].
    pub steps: Vec<Step>,
}

/// One thing to do.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "action", rename_all = "camelCase")]
pub enum Step {
    /// Create the destination namespace, or set its managed metadata.
    EnsureNamespace(NamespaceStep),
    /// Apply a resource.
    Apply(ApplyStep),
    /// Create a hook (applied like a resource) and, at the next wait, wait
    /// for it to complete.
    Hook(HookStep),
    /// Delete an extraneous resource.
    Prune(PruneStep),
    /// Delete a resource of an application being deleted.
    Delete(DeleteStep),
    /// Delete a hook because of its deletion policy.
    DeleteHook(DeleteHookStep),
    /// Wait before going on.
    Wait(Barrier),
}

/// [`Step::EnsureNamespace`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct NamespaceStep {
    /// The namespace.
    pub name: String,
    /// It does not exist yet.
    pub create: bool,
    /// Managed labels and annotations, to set with server-side apply so
    /// that labels and annotations set by others stay.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub metadata: Option<NamespaceMetadata>,
}

/// How to write an object.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ApplyOptions {
    /// Apply, server-side apply, create, replace or update.
    pub strategy: ApplyStrategy,
    /// Delete and re-create when the change cannot be applied (`Force=true`).
    pub force: bool,
    /// Validate against the schema (`Validate=false` turns it off).
    pub validate: bool,
    /// Skip the dry run when the API server does not know the type yet
    /// (`SkipDryRunOnMissingResource=true`, or the CRD is in this sync).
    pub skip_dry_run_if_type_missing: bool,
    /// Keep live values of ignored differences (`RespectIgnoreDifferences`).
    pub respect_ignore_differences: bool,
    /// Move fields of client-side apply to Berth's manager first
    /// (server-side apply only; `ClientSideApplyMigration`).
    pub client_side_apply_migration: bool,
}

impl fmt::Display for ApplyOptions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.strategy)?;
        if self.force {
            f.write_str(", force")?;
        }
        if !self.validate {
            f.write_str(", no validation")?;
        }
        if self.skip_dry_run_if_type_missing {
            f.write_str(", no dry run if the type is missing")?;
        }
        if self.respect_ignore_differences {
            f.write_str(", respecting ignoreDifferences")?;
        }
        Ok(())
    }
}

/// [`Step::Apply`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ApplyStep {
    /// The resource.
    pub object: ObjectRef,
    /// What it changes.
    pub change: Change,
    /// How.
    pub options: ApplyOptions,
}

/// [`Step::Hook`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct HookStep {
    /// The hook (named with the phase when it has a generateName).
    pub object: ObjectRef,
    /// The phase it runs in.
    pub phase: Phase,
    /// What it changes: an existing named hook without
    /// `BeforeHookCreation` is only updated.
    pub change: Change,
    /// How it is written.
    pub options: ApplyOptions,
    /// Its deletion policies.
    pub delete_policies: Vec<DeletePolicy>,
}

/// [`Step::Prune`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PruneStep {
    /// The extraneous resource.
    pub object: ObjectRef,
    /// `PrunePropagationPolicy`.
    pub propagation: Propagation,
    /// `Prune=confirm`: wait for someone to confirm before deleting.
    pub requires_confirmation: bool,
}

/// [`Step::Delete`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct DeleteStep {
    /// The resource.
    pub object: ObjectRef,
    /// Propagation of the application's deletion.
    pub propagation: Propagation,
    /// `Delete=confirm`: wait for someone to confirm before deleting.
    pub requires_confirmation: bool,
}

/// [`Step::DeleteHook`]. The policy says when: `BeforeHookCreation` now
/// (then wait until it is gone); `HookSucceeded` and `HookFailed` in a
/// sync's `on_success` and `on_failure` unconditionally, and inside a
/// deletion hook group only if that group's hooks succeeded or failed. A
/// hook that does not exist is not an error.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct DeleteHookStep {
    /// The hook.
    pub object: ObjectRef,
    /// The phase of the hook's run (it names hooks with a generateName).
    pub phase: Phase,
    /// The policy that deletes it.
    pub policy: DeletePolicy,
    /// How dependents are deleted.
    pub propagation: Propagation,
}

/// [`Step::Wait`]: every list must be satisfied before the next step.
/// Healthy means health `Healthy` (or no health check); `Degraded` fails the
/// operation, anything else keeps waiting.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Barrier {
    /// Resources that must become healthy.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub healthy: Vec<ObjectRef>,
    /// Hooks that must complete successfully.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub hooks_completed: Vec<ObjectRef>,
    /// Objects that must be gone.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub deleted: Vec<ObjectRef>,
}

impl Barrier {
    fn is_empty(&self) -> bool {
        self.healthy.is_empty() && self.hooks_completed.is_empty() && self.deleted.is_empty()
    }
}

/// An object the plan does not touch.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Skipped {
    /// The object.
    pub object: ObjectRef,
    /// Why.
    pub reason: SkipReason,
}

/// Why an object is left alone.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub enum SkipReason {
    /// In sync, and `ApplyOutOfSyncOnly=true`.
    InSync,
    /// Extraneous, but this sync does not prune.
    PruneNotRequested,
    /// Extraneous, but `Prune=false`.
    PruneDisabled,
    /// `argocd.argoproj.io/hook: Skip`.
    SkipAnnotation,
    /// A hook, and this sync runs no hooks.
    HooksNotRun,
    /// A hook of application deletion only.
    DeletionHook,
    /// A hook without any phase Argo CD runs.
    NoHookPhase,
    /// A hook left in the cluster: hooks are never pruned.
    HookNotPruned,
    /// The object cannot be planned (see the diagnostics).
    Invalid,
    /// A CRD: deleting it would delete every custom resource of its type.
    CrdKept,
    /// `Delete=false`.
    DeleteDisabled,
    /// `helm.sh/resource-policy: keep`.
    ResourcePolicyKeep,
}

impl fmt::Display for SkipReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            SkipReason::InSync => "in sync, not applied (ApplyOutOfSyncOnly=true)",
            SkipReason::PruneNotRequested => "not pruned: this sync does not prune",
            SkipReason::PruneDisabled => "not pruned (Prune=false)",
            SkipReason::SkipAnnotation => "skipped (hook type Skip)",
            SkipReason::HooksNotRun => "hook not run: this sync runs no hooks",
            SkipReason::DeletionHook => "hook runs only when the application is deleted",
            SkipReason::NoHookPhase => "hook without a phase Argo CD runs: not applied",
            SkipReason::HookNotPruned => "hook: never pruned",
            SkipReason::Invalid => "not planned: invalid object",
            SkipReason::CrdKept => "not deleted: CRDs are kept",
            SkipReason::DeleteDisabled => "not deleted (Delete=false)",
            SkipReason::ResourcePolicyKeep => "not deleted (helm.sh/resource-policy: keep)",
        })
    }
}

impl Plan {
    fn empty(kind: PlanKind, options: SyncOptions, prune: bool) -> Plan {
        Plan {
            kind,
            options,
            prune,
            prepare: Vec::new(),
            groups: Vec::new(),
            on_success: Vec::new(),
            on_failure: Vec::new(),
            skipped: Vec::new(),
            diagnostics: Vec::new(),
        }
    }

    /// The steps of the normal path: `prepare`, then every group.
    pub fn steps(&self) -> impl Iterator<Item = &Step> {
        self.prepare
            .iter()
            .chain(self.groups.iter().flat_map(|g| g.steps.iter()))
    }

    /// The error diagnostics.
    pub fn errors(&self) -> impl Iterator<Item = &Diagnostic> {
        self.diagnostics
            .iter()
            .filter(|d| d.severity == Severity::Error)
    }

    /// Whether the plan has error diagnostics.
    pub fn has_errors(&self) -> bool {
        self.errors().next().is_some()
    }

    /// Fails when the plan has errors: an executor must not run it.
    pub fn validate(&self) -> Result<()> {
        let count = self.errors().count();
        match self.errors().next() {
            None => Ok(()),
            Some(first) => Err(Error::Invalid {
                count,
                first: Box::new(first.clone()),
            }),
        }
    }

    /// The plan for people (the same as `to_string()`).
    pub fn render_text(&self) -> String {
        self.to_string()
    }
}

impl fmt::Display for Step {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Step::EnsureNamespace(s) => {
                let verb = if s.create { "create" } else { "update" };
                write!(f, "{verb} namespace {}", s.name)?;
                if s.metadata.is_some() {
                    f.write_str(" with managed metadata")?;
                }
                Ok(())
            }
            Step::Apply(s) => write!(f, "apply {} ({}, {})", s.object, s.change, s.options),
            Step::Hook(s) => {
                let policies: Vec<String> =
                    s.delete_policies.iter().map(ToString::to_string).collect();
                write!(
                    f,
                    "run hook {} ({}, {}; deleted: {})",
                    s.object,
                    s.change,
                    s.options,
                    policies.join(", ")
                )
            }
            Step::Prune(s) => {
                write!(f, "prune {} ({}", s.object, s.propagation)?;
                if s.requires_confirmation {
                    f.write_str(", after confirmation")?;
                }
                f.write_str(")")
            }
            Step::Delete(s) => {
                write!(f, "delete {} ({}", s.object, s.propagation)?;
                if s.requires_confirmation {
                    f.write_str(", after confirmation")?;
                }
                f.write_str(")")
            }
            Step::DeleteHook(s) => write!(f, "delete hook {} ({})", s.object, s.policy),
            Step::Wait(b) => {
                let list = |objects: &[ObjectRef]| {
                    objects
                        .iter()
                        .map(ToString::to_string)
                        .collect::<Vec<_>>()
                        .join(", ")
                };
                let mut parts = Vec::new();
                if !b.healthy.is_empty() {
                    parts.push(format!("healthy: {}", list(&b.healthy)));
                }
                if !b.hooks_completed.is_empty() {
                    parts.push(format!("hooks completed: {}", list(&b.hooks_completed)));
                }
                if !b.deleted.is_empty() {
                    parts.push(format!("deleted: {}", list(&b.deleted)));
                }
                write!(f, "wait until {}", parts.join("; "))
            }
        }
    }
}

impl fmt::Display for Plan {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let title = match self.kind {
            PlanKind::Sync => "sync plan",
            PlanKind::Deletion => "deletion plan",
        };
        let steps = self.steps().filter(|s| !matches!(s, Step::Wait(_))).count();
        let count = |severity| {
            self.diagnostics
                .iter()
                .filter(|d| d.severity == severity)
                .count()
        };
        write!(
            f,
            "{title}: {steps} step(s) in {} group(s), {} error(s), {} warning(s)",
            self.groups.len(),
            count(Severity::Error),
            count(Severity::Warning)
        )?;
        if self.kind == PlanKind::Sync {
            f.write_str(if self.prune {
                ", pruning"
            } else {
                ", not pruning"
            })?;
        }
        writeln!(f)?;
        let section = |f: &mut fmt::Formatter<'_>, title: &str, steps: &[Step]| {
            if steps.is_empty() {
                return Ok(());
            }
            writeln!(f, "{title}:")?;
            steps.iter().try_for_each(|s| writeln!(f, "  {s}"))
        };
        section(f, "before all phases", &self.prepare)?;
        for group in &self.groups {
            section(
                f,
                &format!("{} wave {}", group.phase, group.wave),
                &group.steps,
            )?;
        }
        section(f, "when the sync succeeds", &self.on_success)?;
        section(f, "when the sync fails", &self.on_failure)?;
        if !self.skipped.is_empty() {
            writeln!(f, "left alone:")?;
            for s in &self.skipped {
                writeln!(f, "  {}: {}", s.object, s.reason)?;
            }
        }
        self.diagnostics.iter().try_for_each(|d| writeln!(f, "{d}"))
    }
}

// ---------------------------------------------------------------------------
// Reading annotations

fn annotation<'a>(obj: &'a Value, key: &str) -> Option<&'a str> {
    obj.get("metadata")?.get("annotations")?.get(key)?.as_str()
}

/// Comma-separated values, trimmed, without empty ones and repeats, as Argo
/// CD reads its list annotations.
fn csv(value: &str) -> Vec<&str> {
    let mut out: Vec<&str> = Vec::new();
    for item in value.split(',').map(str::trim) {
        if !item.is_empty() && !out.contains(&item) {
            out.push(item);
        }
    }
    out
}

/// The wave: the sync-wave annotation, else Helm's hook weight, else 0. An
/// annotation that is not an integer is an error; Argo CD silently falls
/// back to the next source, which the plan does too so that the rest of it
/// can be reviewed.
fn wave_of(obj: &Value, report: &mut impl FnMut(Severity, Problem)) -> i64 {
    for annotation_key in [SYNC_WAVE_ANNOTATION, HELM_HOOK_WEIGHT_ANNOTATION] {
        if let Some(value) = annotation(obj, annotation_key) {
            match value.parse::<i64>() {
                Ok(wave) => return wave,
                Err(_) => report(
                    Severity::Error,
                    Problem::InvalidWave {
                        annotation: annotation_key,
                        value: value.to_string(),
                    },
                ),
            }
        }
    }
    0
}

/// How Argo CD sees an object as a hook.
#[derive(Debug, Default)]
struct HookInfo {
    /// A hook: never applied or pruned as a resource.
    is_hook: bool,
    /// `Skip` alone: neither applied nor pruned.
    skip: bool,
    /// The phases it runs in, sorted.
    phases: Vec<Phase>,
    /// Its deletion policies (hooks only).
    policies: Vec<DeletePolicy>,
}

/// Whether Argo CD treats the object as a hook (by `argocd.argoproj.io/hook`
/// or Helm's hook annotations): hooks have no sync status, do not count in
/// the application's health, and are never pruned as resources.
pub fn is_hook(obj: &Value) -> bool {
    hook_info(obj, &mut |_, _| {}).is_hook
}

fn hook_info(obj: &Value, report: &mut impl FnMut(Severity, Problem)) -> HookInfo {
    let mut info = HookInfo::default();
    if let Some(value) = annotation(obj, HOOK_ANNOTATION) {
        for item in csv(value) {
            let phase = match item {
                "PreSync" => Phase::PreSync,
                "Sync" => Phase::Sync,
                "PostSync" => Phase::PostSync,
                "SyncFail" => Phase::SyncFail,
                "PreDelete" => Phase::PreDelete,
                "PostDelete" => Phase::PostDelete,
                "Skip" => {
                    info.skip = true;
                    continue;
                }
                other => {
                    report(
                        Severity::Warning,
                        Problem::UnknownHookType {
                            annotation: HOOK_ANNOTATION,
                            value: other.to_string(),
                        },
                    );
                    continue;
                }
            };
            info.phases.push(phase);
        }
        if info.skip && info.phases.iter().any(|p| p.runs_in_sync()) {
            report(Severity::Warning, Problem::SkipWithOtherHooks);
            info.skip = false;
        }
        // Argo CD reads Helm's hook types only when its own annotation names
        // none it knows; the object is a hook either way.
        if info.phases.is_empty() && !info.skip {
            helm_phases(obj, report, &mut info.phases);
        }
        info.is_hook = !info.skip;
    } else if let Some(value) = annotation(obj, HELM_HOOK_ANNOTATION) {
        // Helm marks CRDs with this annotation too; they are not hooks.
        info.is_hook = value != "crd-install";
        if info.is_hook {
            helm_phases(obj, report, &mut info.phases);
        }
    }
    info.phases.sort();
    info.phases.dedup();
    if info.is_hook || !info.phases.is_empty() {
        info.policies = delete_policies(obj, report);
    }
    info
}

fn helm_phases(obj: &Value, report: &mut impl FnMut(Severity, Problem), phases: &mut Vec<Phase>) {
    let Some(value) = annotation(obj, HELM_HOOK_ANNOTATION) else {
        return;
    };
    for item in csv(value) {
        match item {
            "pre-install" | "pre-upgrade" => phases.push(Phase::PreSync),
            "post-install" | "post-upgrade" => phases.push(Phase::PostSync),
            "pre-delete" => phases.push(Phase::PreDelete),
            "post-delete" => phases.push(Phase::PostDelete),
            "crd-install" => {}
            "test" | "test-success" | "test-failure" | "pre-rollback" | "post-rollback" => report(
                Severity::Info,
                Problem::UnsupportedHelmHook {
                    value: item.to_string(),
                },
            ),
            other => report(
                Severity::Warning,
                Problem::UnknownHookType {
                    annotation: HELM_HOOK_ANNOTATION,
                    value: other.to_string(),
                },
            ),
        }
    }
}

/// Argo CD's and Helm's policies together; `BeforeHookCreation` when none.
fn delete_policies(obj: &Value, report: &mut impl FnMut(Severity, Problem)) -> Vec<DeletePolicy> {
    let mut policies = Vec::new();
    let sources = [
        (
            HOOK_DELETE_POLICY_ANNOTATION,
            ["HookSucceeded", "HookFailed", "BeforeHookCreation", "Never"],
        ),
        (
            HELM_HOOK_DELETE_POLICY_ANNOTATION,
            ["hook-succeeded", "hook-failed", "before-hook-creation", ""],
        ),
    ];
    let meanings = [
        DeletePolicy::HookSucceeded,
        DeletePolicy::HookFailed,
        DeletePolicy::BeforeHookCreation,
        DeletePolicy::Never,
    ];
    for (annotation_key, names) in sources {
        let Some(value) = annotation(obj, annotation_key) else {
            continue;
        };
        for item in csv(value) {
            match names.iter().position(|n| *n == item) {
                Some(i) => {
                    if !policies.contains(&meanings[i]) {
                        policies.push(meanings[i]);
                    }
                }
                None => report(
                    Severity::Warning,
                    Problem::UnknownDeletePolicy {
                        annotation: annotation_key,
                        value: item.to_string(),
                    },
                ),
            }
        }
    }
    if policies.is_empty() {
        policies.push(DeletePolicy::BeforeHookCreation);
    }
    policies
}

/// The group and kind a CRD manifest defines.
fn crd_defines(obj: &Value) -> Option<String> {
    if group_kind(obj) != (CRD_GROUP, CRD_KIND) {
        return None;
    }
    let group = obj.pointer("/spec/group")?.as_str()?;
    let kind = obj.pointer("/spec/names/kind")?.as_str()?;
    Some(format!("{group}/{kind}"))
}

// ---------------------------------------------------------------------------
// Planning a sync

/// One object in one phase, before grouping.
#[derive(Debug)]
struct Task {
    phase: Phase,
    wave: i64,
    obj: ObjectRef,
    rank: usize,
    action: Action,
    /// The group/kind this task's CRD defines.
    defines: Option<String>,
}

#[derive(Debug)]
enum Action {
    Apply {
        options: ApplyOptions,
        change: Change,
        /// In sync and `ApplyOutOfSyncOnly`: kept for wave arithmetic only.
        filtered: bool,
    },
    Hook {
        options: ApplyOptions,
        policies: Vec<DeletePolicy>,
        live: bool,
    },
    Prune {
        confirm: bool,
        last: bool,
    },
    /// A prune candidate that is not pruned: Argo CD still counts it in
    /// wave arithmetic.
    NoPrune {
        last: bool,
    },
}

impl Task {
    fn has_target(&self) -> bool {
        matches!(self.action, Action::Apply { .. } | Action::Hook { .. })
    }

    fn is_prune_candidate(&self) -> bool {
        matches!(self.action, Action::Prune { .. } | Action::NoPrune { .. })
    }

    fn prune_last(&self) -> bool {
        matches!(
            self.action,
            Action::Prune { last: true, .. } | Action::NoPrune { last: true }
        )
    }

    fn filtered(&self) -> bool {
        matches!(self.action, Action::Apply { filtered: true, .. })
    }

    fn key(&self) -> (Phase, i64) {
        (self.phase, self.wave)
    }
}

/// Phase, wave, kind, then name, as Argo CD sorts; unknown kinds are grouped
/// by kind and namespace and group break the remaining ties, so that the
/// order never depends on the input's.
fn order(a: &Task, b: &Task) -> Ordering {
    (
        a.phase,
        a.wave,
        a.rank,
        &a.obj.kind,
        a.obj.sort_name(),
        &a.obj.namespace,
        &a.obj.group,
    )
        .cmp(&(
            b.phase,
            b.wave,
            b.rank,
            &b.obj.kind,
            b.obj.sort_name(),
            &b.obj.namespace,
            &b.obj.group,
        ))
}

/// Moves a dependency (a namespace, a CRD) before the first task that needs
/// it when it sorts later, giving it that task's phase and wave.
fn pull_dependencies_forward(
    tasks: &mut Vec<Task>,
    provides: fn(&Task) -> Option<String>,
    needs: fn(&Task) -> Option<String>,
) {
    let mut first_use: HashMap<String, usize> = HashMap::new();
    for i in 0..tasks.len() {
        if !tasks[i].has_target() {
            continue;
        }
        if let Some(key) = provides(&tasks[i]) {
            if let Some(&at) = first_use.get(&key) {
                let (phase, wave) = tasks[at].key();
                let mut task = tasks.remove(i);
                task.phase = phase;
                task.wave = wave;
                tasks.insert(at, task);
                for index in first_use.values_mut() {
                    if *index >= at {
                        *index += 1;
                    }
                }
            }
        } else if let Some(key) = needs(&tasks[i]) {
            first_use.entry(key).or_insert(i);
        }
    }
}

fn provides_namespace(t: &Task) -> Option<String> {
    (t.obj.group.is_empty() && t.obj.kind == "Namespace").then(|| t.obj.name.clone())
}

fn needs_namespace(t: &Task) -> Option<String> {
    (!t.obj.namespace.is_empty()).then(|| t.obj.namespace.clone())
}

fn provides_crd(t: &Task) -> Option<String> {
    t.defines.clone()
}

fn needs_crd(t: &Task) -> Option<String> {
    Some(format!("{}/{}", t.obj.group, t.obj.kind))
}

/// What is shared while planning the objects of one application.
struct Planner<'a> {
    app: &'a SyncOptions,
    namespace: &'a str,
    crds: HashSet<String>,
    diagnostics: Vec<Diagnostic>,
    skipped: Vec<Skipped>,
    seen: HashSet<(String, String, String, String, Option<String>)>,
}

impl<'a> Planner<'a> {
    fn new(app: &'a SyncOptions, namespace: &'a str, resources: &[Resource]) -> Planner<'a> {
        let crds = resources
            .iter()
            .filter_map(|r| r.desired.as_ref())
            .filter_map(crd_defines)
            .collect();
        Planner {
            app,
            namespace,
            crds,
            diagnostics: Vec::new(),
            skipped: Vec::new(),
            seen: HashSet::new(),
        }
    }

    fn report(&mut self, object: &ObjectRef, severity: Severity, problem: Problem) {
        self.diagnostics.push(Diagnostic {
            severity,
            object: Some(object.clone()),
            problem,
        });
    }

    fn skip(&mut self, object: &ObjectRef, reason: SkipReason) {
        self.skipped.push(Skipped {
            object: object.clone(),
            reason,
        });
    }

    /// Describes the object and rejects it when it cannot be planned.
    fn admit(&mut self, obj: &Value) -> Option<ObjectRef> {
        let (oref, problem) = ObjectRef::describe(obj, self.namespace);
        if let Some(problem) = problem {
            self.report(&oref, Severity::Error, problem);
            self.skip(&oref, SkipReason::Invalid);
            return None;
        }
        let identity = (
            oref.group.clone(),
            oref.kind.clone(),
            oref.namespace.clone(),
            oref.name.clone(),
            oref.generate_name.clone(),
        );
        if !self.seen.insert(identity) {
            self.report(&oref, Severity::Error, Problem::DuplicateObject);
            return None;
        }
        Some(oref)
    }

    /// The object's annotation options, and the wave and hook facts, with
    /// their problems reported against the object.
    fn read(&mut self, obj: &Value, oref: &ObjectRef) -> (SyncOptions, i64, HookInfo) {
        let items = annotation(obj, SYNC_OPTIONS_ANNOTATION)
            .map(csv)
            .unwrap_or_default();
        let options = parse_options(
            items,
            OptionOrigin::Annotation,
            Some(oref),
            &mut self.diagnostics,
        );
        let mut problems = Vec::new();
        let mut report = |severity, problem| problems.push((severity, problem));
        let wave = wave_of(obj, &mut report);
        let hook = hook_info(obj, &mut report);
        for (severity, problem) in problems {
            self.report(oref, severity, problem);
        }
        self.check_overrides(&options, oref);
        (options, wave, hook)
    }

    /// Argo CD ORs these resource options with the Application's: a
    /// resource saying the opposite is ignored, which deserves a warning.
    fn check_overrides(&mut self, res: &SyncOptions, oref: &ObjectRef) {
        let pairs = [
            ("Validate", res.validate, self.app.validate, false),
            ("PruneLast", res.prune_last, self.app.prune_last, true),
            (
                "SkipDryRunOnMissingResource",
                res.skip_dry_run_on_missing_resource,
                self.app.skip_dry_run_on_missing_resource,
                true,
            ),
        ];
        for (key, resource, app, winning) in pairs {
            if app == Some(winning) && resource == Some(!winning) {
                self.report(
                    oref,
                    Severity::Warning,
                    Problem::NotOverridden {
                        option: format!("{key}={}", !winning),
                        application: format!("{key}={winning}"),
                    },
                );
            }
        }
    }

    fn apply_options(
        &self,
        res: &SyncOptions,
        oref: &ObjectRef,
        live: Option<&Value>,
        force_sync: bool,
    ) -> ApplyOptions {
        // Argo CD also honours Replace=true and Force=true written on the
        // live object.
        let live_says = |option: &str| {
            live.and_then(|l| annotation(l, SYNC_OPTIONS_ANNOTATION))
                .is_some_and(|v| csv(v).contains(&option))
        };
        let replace = res
            .replace
            .unwrap_or_else(|| live_says("Replace=true") || self.app.replace == Some(true));
        let force = res.force == Some(true) || live_says("Force=true") || force_sync;
        let server_side = res
            .server_side_apply
            .or(self.app.server_side_apply)
            .unwrap_or(false);
        let strategy = match (replace, live.is_some()) {
            (true, true) if oref.is_crd() || oref.kind == "Namespace" => ApplyStrategy::Update,
            (true, true) => ApplyStrategy::Replace,
            (true, false) => ApplyStrategy::Create,
            (false, _) if server_side => ApplyStrategy::ServerSideApply,
            (false, _) => ApplyStrategy::ClientSideApply,
        };
        let gk = format!("{}/{}", oref.group, oref.kind);
        ApplyOptions {
            strategy,
            force,
            validate: self.app.validate != Some(false) && res.validate != Some(false),
            skip_dry_run_if_type_missing: self.app.skip_dry_run_on_missing_resource == Some(true)
                || res.skip_dry_run_on_missing_resource == Some(true)
                || self.crds.contains(&gk),
            respect_ignore_differences: res
                .respect_ignore_differences
                .or(self.app.respect_ignore_differences)
                .unwrap_or(false),
            client_side_apply_migration: strategy == ApplyStrategy::ServerSideApply
                && self.app.client_side_apply_migration != Some(false),
        }
    }
}

/// Sorts diagnostics (application-wide first, then by object) and skipped
/// objects, keeping each object's own order, so plans compare equal across
/// runs whatever order the input came in.
fn finish(plan: &mut Plan, planner: Planner<'_>) {
    plan.diagnostics.extend(planner.diagnostics);
    plan.diagnostics.sort_by(|a, b| {
        a.object
            .is_some()
            .cmp(&b.object.is_some())
            .then_with(|| a.object.cmp(&b.object))
    });
    plan.skipped = planner.skipped;
    plan.skipped.sort_by(|a, b| a.object.cmp(&b.object));
}

/// Plans a sync with Argo CD 3.x's rules; see the module documentation and
/// the notes that come with it for the rules and their sources.
pub fn plan_sync(input: &SyncInput) -> Plan {
    let mut app_diagnostics = Vec::new();
    let app = parse_options(
        input.sync_options.iter().map(String::as_str),
        OptionOrigin::Application,
        None,
        &mut app_diagnostics,
    );
    let mut plan = Plan::empty(PlanKind::Sync, app.clone(), input.prune);
    plan.diagnostics = app_diagnostics;
    let mut planner = Planner::new(&app, &input.destination_namespace, &input.resources);
    let propagation = app.prune_propagation_policy.unwrap_or_default();
    let mut tasks = Vec::new();

    for resource in &input.resources {
        let Some(obj) = resource.desired.as_ref().or(resource.live.as_ref()) else {
            continue;
        };
        let Some(oref) = planner.admit(obj) else {
            continue;
        };
        let (res, wave, hook) = planner.read(obj, &oref);
        if let Some(other) = &resource.shared_with {
            let severity = if app.fail_on_shared_resource == Some(true) {
                Severity::Error
            } else {
                Severity::Warning
            };
            let problem = Problem::SharedResource {
                application: other.clone(),
            };
            planner.report(&oref, severity, problem);
        }
        let rank = apply_rank(&oref.kind);
        let task = |phase, action| Task {
            phase,
            wave,
            obj: oref.clone(),
            rank,
            action,
            defines: resource.desired.as_ref().and_then(crd_defines),
        };

        if hook.skip {
            planner.skip(&oref, SkipReason::SkipAnnotation);
            continue;
        }
        if resource.desired.is_none() {
            // Hooks are never pruned; other extraneous objects are prune
            // candidates in the Sync phase, at the live object's wave.
            if hook.is_hook {
                planner.skip(&oref, SkipReason::HookNotPruned);
                continue;
            }
            let removal = res.prune.or(app.prune).unwrap_or_default();
            let last = app.prune_last == Some(true) || res.prune_last == Some(true);
            let action = if !input.prune {
                planner.skip(&oref, SkipReason::PruneNotRequested);
                Action::NoPrune { last }
            } else if removal == Removal::Deny {
                planner.skip(&oref, SkipReason::PruneDisabled);
                Action::NoPrune { last }
            } else {
                Action::Prune {
                    confirm: removal == Removal::Confirm,
                    last,
                }
            };
            tasks.push(task(Phase::Sync, action));
            continue;
        }
        let live = resource.live.as_ref();
        let options = planner.apply_options(&res, &oref, live, input.force);

        if hook.is_hook {
            let sync_phases: Vec<Phase> = hook
                .phases
                .iter()
                .copied()
                .filter(|p| p.runs_in_sync())
                .collect();
            if input.skip_hooks {
                planner.skip(&oref, SkipReason::HooksNotRun);
            } else if sync_phases.is_empty() {
                let reason = if hook.phases.is_empty() {
                    SkipReason::NoHookPhase
                } else {
                    SkipReason::DeletionHook
                };
                planner.skip(&oref, reason);
            } else {
                let rerun = hook.policies.contains(&DeletePolicy::BeforeHookCreation);
                if live.is_some() && oref.generate_name.is_none() && !rerun {
                    planner.report(&oref, Severity::Info, Problem::HookNotRerun);
                }
                for phase in sync_phases {
                    let action = Action::Hook {
                        options,
                        policies: hook.policies.clone(),
                        live: live.is_some(),
                    };
                    tasks.push(task(phase, action));
                }
            }
            continue;
        }
        if oref.generate_name.is_some() {
            planner.report(&oref, Severity::Error, Problem::GenerateNameWithoutHook);
            planner.skip(&oref, SkipReason::Invalid);
            continue;
        }
        let change = match (live, resource.in_sync) {
            (None, _) => Change::Create,
            (Some(_), false) => Change::Update,
            (Some(_), true) => Change::Unchanged,
        };
        let out_of_sync_only = res
            .apply_out_of_sync_only
            .or(app.apply_out_of_sync_only)
            .unwrap_or(false);
        let filtered = change == Change::Unchanged && out_of_sync_only;
        if filtered {
            planner.skip(&oref, SkipReason::InSync);
        }
        let action = Action::Apply {
            options,
            change,
            filtered,
        };
        tasks.push(task(Phase::Sync, action));
    }

    reverse_prune_waves(&mut tasks);
    // PruneLast prunes after every other wave of the Sync phase, prune
    // candidates included, and never before wave 1.
    let last_wave = tasks
        .iter()
        .filter(|t| t.phase == Phase::Sync)
        .map(|t| t.wave)
        .fold(0, i64::max)
        .saturating_add(1);
    for task in tasks.iter_mut().filter(|t| t.prune_last()) {
        task.wave = last_wave;
    }
    tasks.sort_by(order);
    pull_dependencies_forward(&mut tasks, provides_namespace, needs_namespace);
    pull_dependencies_forward(&mut tasks, provides_crd, needs_crd);

    // Argo CD waits for resources to become healthy only when the operation
    // spans several phases or waves, counting every task (SyncFail hooks,
    // in-sync resources and unpruned candidates included).
    let multi_step = match (tasks.first(), tasks.last()) {
        (Some(first), Some(last)) => first.key() != last.key(),
        _ => false,
    };
    let (fail_tasks, tasks): (Vec<Task>, Vec<Task>) =
        tasks.into_iter().partition(|t| t.phase == Phase::SyncFail);

    plan.prepare = namespace_step(input, &app);
    let mut emitter = Emitter {
        propagation,
        created: HashSet::new(),
    };
    let remaining: Vec<&Task> = tasks.iter().filter(|t| !t.filtered()).collect();
    let final_key = remaining.last().map(|t| t.key());
    for chunk in remaining.chunk_by(|a, b| a.key() == b.key()) {
        let (phase, wave) = chunk[0].key();
        let finale = Some((phase, wave)) == final_key;
        let steps = emitter.group(chunk, finale, multi_step);
        if !steps.is_empty() {
            plan.groups.push(Group { phase, wave, steps });
        }
    }

    // A named hook run in several phases is one object: delete it once.
    let hooks_with = |steps: &[Step], policy| -> Vec<Step> {
        let mut seen = HashSet::new();
        steps
            .iter()
            .filter_map(|s| match s {
                Step::Hook(h) if h.delete_policies.contains(&policy) => {
                    let instance = h.object.generate_name.is_some().then_some(h.phase);
                    seen.insert((h.object.clone(), instance)).then(|| {
                        Step::DeleteHook(DeleteHookStep {
                            object: h.object.clone(),
                            phase: h.phase,
                            policy,
                            propagation,
                        })
                    })
                }
                _ => None,
            })
            .collect()
    };
    let ran: Vec<Step> = plan.steps().cloned().collect();
    plan.on_success = hooks_with(&ran, DeletePolicy::HookSucceeded);
    plan.on_failure = hooks_with(&ran, DeletePolicy::HookFailed);
    // SyncFail hooks run together, in order but without waves.
    let fail_tasks: Vec<&Task> = fail_tasks.iter().collect();
    let fail_steps = emitter.group(&fail_tasks, true, false);
    let fail_deletions = hooks_with(&fail_steps, DeletePolicy::HookFailed);
    plan.on_failure.extend(fail_steps);
    plan.on_failure.extend(fail_deletions);

    finish(&mut plan, planner);
    plan
}

/// Prune candidates are pruned in reverse wave order: the lowest wave that
/// has prune candidates swaps with the highest, the second lowest with the
/// second highest, and so on.
fn reverse_prune_waves(tasks: &mut [Task]) {
    let waves: Vec<i64> = tasks
        .iter()
        .filter(|t| t.is_prune_candidate())
        .map(|t| t.wave)
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect();
    let mirror: HashMap<i64, i64> = waves
        .iter()
        .zip(waves.iter().rev())
        .map(|(from, to)| (*from, *to))
        .collect();
    for task in tasks.iter_mut().filter(|t| t.is_prune_candidate()) {
        if let Some(&wave) = mirror.get(&task.wave) {
            task.wave = wave;
        }
    }
}

fn namespace_step(input: &SyncInput, app: &SyncOptions) -> Vec<Step> {
    let name = &input.destination_namespace;
    if app.create_namespace != Some(true) || name.is_empty() {
        return Vec::new();
    }
    let declared = input
        .resources
        .iter()
        .filter_map(|r| r.desired.as_ref())
        .any(|d| {
            group_kind(d) == ("", "Namespace")
                && d.pointer("/metadata/name").and_then(Value::as_str) == Some(name)
        });
    let create = !input.namespace_exists;
    if declared || !(create || input.managed_namespace_metadata.is_some()) {
        return Vec::new();
    }
    vec![Step::EnsureNamespace(NamespaceStep {
        name: name.clone(),
        create,
        metadata: input.managed_namespace_metadata.clone(),
    })]
}

/// Turns tasks into steps, remembering which named hooks the plan creates
/// so that a later run of the same hook deletes it first.
struct Emitter {
    propagation: Propagation,
    created: HashSet<ObjectRef>,
}

impl Emitter {
    /// The steps of one phase and wave, as Argo CD runs a wave: prunes,
    /// then deletion of hooks to re-create, then the rest by kind; then the
    /// wait. The last group waits only when it has hooks: otherwise the
    /// sync is done once everything is applied.
    fn group(&mut self, tasks: &[&Task], finale: bool, multi_step: bool) -> Vec<Step> {
        let mut steps = Vec::new();
        let mut barrier = Barrier::default();

        let mut prunes: Vec<(&Task, bool)> = tasks
            .iter()
            .filter_map(|t| match t.action {
                Action::Prune { confirm, .. } => Some((*t, confirm)),
                _ => None,
            })
            .collect();
        // Prunes of one wave run concurrently; listing dependents before
        // what they depend on keeps the plan readable and a sequential
        // executor safe.
        prunes.sort_by(|(a, _), (b, _)| {
            (Reverse(a.rank), &a.obj.kind, &a.obj.name, &a.obj.namespace).cmp(&(
                Reverse(b.rank),
                &b.obj.kind,
                &b.obj.name,
                &b.obj.namespace,
            ))
        });
        for (task, confirm) in prunes {
            steps.push(Step::Prune(PruneStep {
                object: task.obj.clone(),
                propagation: self.propagation,
                requires_confirmation: confirm,
            }));
            barrier.deleted.push(task.obj.clone());
        }

        let mut recreated = Vec::new();
        for task in tasks {
            if let Action::Hook { policies, live, .. } = &task.action {
                let exists = *live || self.created.contains(&task.obj);
                if task.obj.generate_name.is_none()
                    && exists
                    && policies.contains(&DeletePolicy::BeforeHookCreation)
                {
                    steps.push(Step::DeleteHook(DeleteHookStep {
                        object: task.obj.clone(),
                        phase: task.phase,
                        policy: DeletePolicy::BeforeHookCreation,
                        propagation: self.propagation,
                    }));
                    recreated.push(task.obj.clone());
                }
            }
        }
        if !recreated.is_empty() {
            steps.push(Step::Wait(Barrier {
                deleted: recreated.clone(),
                ..Barrier::default()
            }));
        }

        for task in tasks {
            match &task.action {
                Action::Apply {
                    options,
                    change,
                    filtered: false,
                } => {
                    steps.push(Step::Apply(ApplyStep {
                        object: task.obj.clone(),
                        change: *change,
                        options: *options,
                    }));
                    if multi_step {
                        barrier.healthy.push(task.obj.clone());
                    }
                }
                Action::Hook {
                    options,
                    policies,
                    live,
                } => {
                    let exists = *live || self.created.contains(&task.obj);
                    let change = if exists && !recreated.contains(&task.obj) {
                        Change::Update
                    } else {
                        Change::Create
                    };
                    steps.push(Step::Hook(HookStep {
                        object: task.obj.clone(),
                        phase: task.phase,
                        change,
                        options: *options,
                        delete_policies: policies.clone(),
                    }));
                    if task.obj.generate_name.is_none() {
                        self.created.insert(task.obj.clone());
                    }
                    barrier.hooks_completed.push(task.obj.clone());
                }
                _ => {}
            }
        }

        let waits = !finale || !barrier.hooks_completed.is_empty();
        if waits && !barrier.is_empty() && !steps.is_empty() {
            steps.push(Step::Wait(barrier));
        }
        steps
    }
}

// ---------------------------------------------------------------------------
// Planning the deletion of an application

/// A `PreDelete` or `PostDelete` hook of an application being deleted.
struct DeletionHook {
    object: ObjectRef,
    policies: Vec<DeletePolicy>,
    live: bool,
}

/// An object to delete with its application.
struct Doomed {
    rank: usize,
    object: ObjectRef,
    confirm: bool,
}

/// Plans the deletion of an application as Argo CD 3.x does: `PreDelete`
/// hooks, then the application's objects wave by wave from the highest,
/// waiting for each wave to be gone, then `PostDelete` hooks. CRDs,
/// `Delete=false` and `helm.sh/resource-policy: keep` objects stay.
pub fn plan_deletion(input: &DeletionInput) -> Plan {
    let mut app_diagnostics = Vec::new();
    let app = parse_options(
        input.sync_options.iter().map(String::as_str),
        OptionOrigin::Application,
        None,
        &mut app_diagnostics,
    );
    let mut plan = Plan::empty(PlanKind::Deletion, app.clone(), false);
    plan.diagnostics = app_diagnostics;
    let mut planner = Planner::new(&app, &input.destination_namespace, &input.resources);
    let mut hooks: BTreeMap<Phase, Vec<DeletionHook>> = BTreeMap::new();
    let mut doomed: BTreeMap<Reverse<i64>, Vec<Doomed>> = BTreeMap::new();

    for resource in &input.resources {
        let mut quiet = |_: Severity, _: Problem| {};
        let delete_phases: Vec<Phase> = resource
            .desired
            .as_ref()
            .map(|d| hook_info(d, &mut quiet).phases)
            .unwrap_or_default()
            .into_iter()
            .filter(|p| matches!(p, Phase::PreDelete | Phase::PostDelete))
            .collect();
        if resource.live.is_none() && delete_phases.is_empty() {
            continue;
        }
        let Some(obj) = resource.live.as_ref().or(resource.desired.as_ref()) else {
            continue;
        };
        let Some(oref) = planner.admit(obj) else {
            continue;
        };
        let (res, wave, _) = planner.read(obj, &oref);
        if let Some(desired) = &resource.desired {
            for &phase in &delete_phases {
                hooks.entry(phase).or_default().push(DeletionHook {
                    object: oref.clone(),
                    policies: hook_info(desired, &mut quiet).policies,
                    live: resource.live.is_some(),
                });
            }
        }
        // A PreDelete hook carries the application's tracking, so the
        // deletion removes it with everything else; a PostDelete hook only
        // exists once the deletion is over.
        if resource.live.is_none() && !delete_phases.contains(&Phase::PreDelete) {
            continue;
        }
        let removal = res.delete.or(app.delete).unwrap_or_default();
        if oref.is_crd() {
            planner.skip(&oref, SkipReason::CrdKept);
        } else if removal == Removal::Deny {
            planner.skip(&oref, SkipReason::DeleteDisabled);
        } else if annotation(obj, HELM_RESOURCE_POLICY_ANNOTATION)
            .is_some_and(|v| csv(v).contains(&"keep"))
        {
            planner.skip(&oref, SkipReason::ResourcePolicyKeep);
        } else {
            doomed.entry(Reverse(wave)).or_default().push(Doomed {
                rank: apply_rank(&oref.kind),
                object: oref,
                confirm: removal == Removal::Confirm,
            });
        }
    }

    if let Some(entries) = hooks.get_mut(&Phase::PreDelete) {
        plan.groups
            .push(deletion_hook_group(Phase::PreDelete, entries));
    }
    for (Reverse(wave), mut objects) in doomed {
        objects.sort_by(|a, b| {
            (
                Reverse(a.rank),
                &a.object.kind,
                &a.object.name,
                &a.object.namespace,
            )
                .cmp(&(
                    Reverse(b.rank),
                    &b.object.kind,
                    &b.object.name,
                    &b.object.namespace,
                ))
        });
        let mut steps: Vec<Step> = objects
            .iter()
            .map(|d| {
                Step::Delete(DeleteStep {
                    object: d.object.clone(),
                    propagation: input.propagation,
                    requires_confirmation: d.confirm,
                })
            })
            .collect();
        steps.push(Step::Wait(Barrier {
            deleted: objects.into_iter().map(|d| d.object).collect(),
            ..Barrier::default()
        }));
        plan.groups.push(Group {
            phase: Phase::Delete,
            wave,
            steps,
        });
    }
    if let Some(entries) = hooks.get_mut(&Phase::PostDelete) {
        plan.groups
            .push(deletion_hook_group(Phase::PostDelete, entries));
    }

    finish(&mut plan, planner);
    plan
}

/// Deletion hooks all start together, without waves; once they completed,
/// those whose policy matches the outcome of the whole group are deleted.
fn deletion_hook_group(phase: Phase, entries: &mut [DeletionHook]) -> Group {
    entries.sort_by(|a, b| {
        let key = |h: &DeletionHook| {
            (
                apply_rank(&h.object.kind),
                h.object.kind.clone(),
                h.object.sort_name().to_string(),
                h.object.namespace.clone(),
            )
        };
        key(a).cmp(&key(b))
    });
    let mut steps = Vec::new();
    let mut barrier = Barrier::default();
    for hook in entries.iter() {
        // An existing hook is left from an earlier attempt: it is waited
        // for, not created again.
        if !hook.live {
            steps.push(Step::Hook(HookStep {
                object: hook.object.clone(),
                phase,
                change: Change::Create,
                options: ApplyOptions {
                    strategy: ApplyStrategy::Create,
                    force: false,
                    validate: true,
                    skip_dry_run_if_type_missing: false,
                    respect_ignore_differences: false,
                    client_side_apply_migration: false,
                },
                delete_policies: hook.policies.clone(),
            }));
        }
        barrier.hooks_completed.push(hook.object.clone());
    }
    steps.push(Step::Wait(barrier));
    for policy in [DeletePolicy::HookSucceeded, DeletePolicy::HookFailed] {
        for hook in entries.iter().filter(|h| h.policies.contains(&policy)) {
            steps.push(Step::DeleteHook(DeleteHookStep {
                object: hook.object.clone(),
                phase,
                policy,
                propagation: Propagation::Background,
            }));
        }
    }
    Group {
        phase,
        wave: 0,
        steps,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn with_annotations(kind: &str, name: &str, annotations: Value) -> Value {
        json!({
            "apiVersion": "v1",
            "kind": kind,
            "metadata": {"name": name, "annotations": annotations},
        })
    }

    fn collect(obj: &Value) -> (i64, HookInfo, Vec<(Severity, Problem)>) {
        let mut problems = Vec::new();
        let mut report = |s, p| problems.push((s, p));
        let wave = wave_of(obj, &mut report);
        let hook = hook_info(obj, &mut report);
        (wave, hook, problems)
    }

    #[test]
    fn csv_trims_drops_empty_and_repeats() {
        assert_eq!(csv(" a, b ,,a ,c"), ["a", "b", "c"]);
        assert!(csv("").is_empty());
    }

    #[test]
    fn wave_accepts_what_go_atoi_accepts() {
        for (text, wave) in [("5", 5), ("-3", -3), ("+2", 2), ("007", 7)] {
            let obj = with_annotations("ConfigMap", "c", json!({SYNC_WAVE_ANNOTATION: text}));
            let (got, _, problems) = collect(&obj);
            assert_eq!((got, problems.len()), (wave, 0), "{text}");
        }
    }

    #[test]
    fn invalid_wave_is_an_error_and_falls_back_to_the_helm_weight() {
        let obj = with_annotations(
            "ConfigMap",
            "c",
            json!({SYNC_WAVE_ANNOTATION: " 1", HELM_HOOK_WEIGHT_ANNOTATION: "4"}),
        );
        let (wave, _, problems) = collect(&obj);
        assert_eq!(wave, 4);
        assert_eq!(
            problems,
            [(
                Severity::Error,
                Problem::InvalidWave {
                    annotation: SYNC_WAVE_ANNOTATION,
                    value: " 1".into()
                }
            )]
        );
    }

    #[test]
    fn helm_weight_applies_to_any_object_without_a_sync_wave() {
        let obj = with_annotations("ConfigMap", "c", json!({HELM_HOOK_WEIGHT_ANNOTATION: "-2"}));
        assert_eq!(collect(&obj).0, -2);
    }

    #[test]
    fn skip_alone_is_neither_hook_nor_resource() {
        let obj = with_annotations("ConfigMap", "c", json!({HOOK_ANNOTATION: "Skip"}));
        let (_, hook, problems) = collect(&obj);
        assert!(hook.skip && !hook.is_hook && problems.is_empty());
    }

    #[test]
    fn unknown_argo_hook_type_falls_back_to_helm_types() {
        let obj = with_annotations(
            "Job",
            "j",
            json!({HOOK_ANNOTATION: "PreSnyc", HELM_HOOK_ANNOTATION: "post-install"}),
        );
        let (_, hook, problems) = collect(&obj);
        assert!(hook.is_hook);
        assert_eq!(hook.phases, [Phase::PostSync]);
        assert!(matches!(
            problems.as_slice(),
            [(Severity::Warning, Problem::UnknownHookType { .. })]
        ));
    }

    #[test]
    fn crd_install_alone_is_not_a_hook() {
        let obj = with_annotations(
            "CustomResourceDefinition",
            "x",
            json!({HELM_HOOK_ANNOTATION: "crd-install"}),
        );
        assert!(!collect(&obj).1.is_hook);
        let obj = with_annotations(
            "CustomResourceDefinition",
            "x",
            json!({HELM_HOOK_ANNOTATION: "crd-install,pre-install"}),
        );
        assert_eq!(collect(&obj).1.phases, [Phase::PreSync]);
    }

    #[test]
    fn delete_policies_merge_argo_and_helm_and_default_to_before_hook_creation() {
        let obj = with_annotations(
            "Job",
            "j",
            json!({
                HOOK_ANNOTATION: "PreSync",
                HOOK_DELETE_POLICY_ANNOTATION: "HookSucceeded",
                HELM_HOOK_DELETE_POLICY_ANNOTATION: "hook-failed,hook-succeeded",
            }),
        );
        assert_eq!(
            collect(&obj).1.policies,
            [DeletePolicy::HookSucceeded, DeletePolicy::HookFailed]
        );
        let obj = with_annotations("Job", "j", json!({HOOK_ANNOTATION: "PreSync"}));
        assert_eq!(collect(&obj).1.policies, [DeletePolicy::BeforeHookCreation]);
    }

    #[test]
    fn options_parse_values_scopes_and_conflicts() {
        let (options, diagnostics) = SyncOptions::parse(
            [
                "Prune=confirm",
                " ServerSideApply=true ",
                "Force=true",
                "Prune=false",
                "Validate=False",
            ],
            OptionOrigin::Application,
        );
        assert_eq!(options.prune, Some(Removal::Confirm));
        assert_eq!(options.server_side_apply, Some(true));
        assert_eq!(options.force, None);
        let codes: Vec<_> = diagnostics
            .iter()
            .map(|d| (d.severity, &d.problem))
            .collect();
        assert!(matches!(
            codes.as_slice(),
            [
                (Severity::Warning, Problem::ResourceOnlyOption { .. }),
                (Severity::Warning, Problem::ConflictingSyncOption { .. }),
                (Severity::Error, Problem::InvalidSyncOptionValue { .. }),
            ]
        ));
    }

    #[test]
    fn prune_waves_mirror_around_the_middle() {
        let mut tasks: Vec<Task> = [1, 3, 5, 3]
            .into_iter()
            .map(|wave| Task {
                phase: Phase::Sync,
                wave,
                obj: ObjectRef::default(),
                rank: 0,
                action: Action::Prune {
                    confirm: false,
                    last: false,
                },
                defines: None,
            })
            .collect();
        reverse_prune_waves(&mut tasks);
        let waves: Vec<i64> = tasks.iter().map(|t| t.wave).collect();
        assert_eq!(waves, [5, 3, 1, 3]);
    }

    #[test]
    fn generated_names_follow_argo() {
        assert_eq!(
            generated_hook_name("migrate-", "0123456789abcdef", Phase::PreSync, 1700000000),
            "migrate-0123456-presync-1700000000"
        );
        assert_eq!(
            generated_hook_name("x-", "HEAD", Phase::PostSync, 5),
            "x-head-postsync-5"
        );
    }

    #[test]
    fn text_rendering_is_stable() {
        let input = SyncInput {
            resources: vec![
                Resource::desired(json!({
                    "apiVersion": "batch/v1", "kind": "Job",
                    "metadata": {"generateName": "migrate-",
                                 "annotations": {HOOK_ANNOTATION: "PreSync", HOOK_DELETE_POLICY_ANNOTATION: "HookSucceeded"}},
                })),
                Resource::desired(
                    json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "cfg"}}),
                ),
                Resource::extraneous(
                    json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "old", "namespace": "web"}}),
                ),
            ],
            sync_options: vec!["CreateNamespace=true".into(), "Prune=nope".into()],
            prune: true,
            destination_namespace: "web".into(),
            ..SyncInput::default()
        };
        let text = plan_sync(&input).render_text();
        let expected = "\
sync plan: 4 step(s) in 2 group(s), 1 error(s), 0 warning(s), pruning
before all phases:
  create namespace web
PreSync wave 0:
  run hook Job.batch web/migrate-* (create, client-side apply; deleted: HookSucceeded)
  wait until hooks completed: Job.batch web/migrate-*
Sync wave 0:
  prune ConfigMap web/old (foreground)
  apply ConfigMap web/cfg (create, client-side apply)
when the sync succeeds:
  delete hook Job.batch web/migrate-* (HookSucceeded)
error: sync option \"Prune=nope\" in spec.syncPolicy.syncOptions has an invalid value: expected true, false or confirm
";
        assert_eq!(text, expected);
    }
}
