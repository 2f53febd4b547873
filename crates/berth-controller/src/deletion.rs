//! Deleting an Application with its resources, as Argo CD does: an
//! Application being deleted that carries the resources finalizer
//! (`resources-finalizer.argocd.argoproj.io`, or its `/foreground` and
//! `/background` forms) has its tracked objects deleted first, by the
//! engine's deletion plan (`PreDelete` hooks, then wave by wave from the
//! highest, waiting for each to be gone, then `PostDelete` hooks; CRDs,
//! `Delete=false` and `helm.sh/resource-policy: keep` objects stay;
//! `Delete=confirm` objects wait for the `argocd.argoproj.io/deletion-approved`
//! annotation). Only then is the finalizer removed and the Application
//! goes. Without the finalizer the resources stay, as in Argo CD.
//!
//! Only objects whose tracking names this application are deleted: the
//! live cache's index, never a label query a user could widen.

use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::time::{Duration, SystemTime};

use berth_api::time::rfc3339;
use berth_engine::plan::{DeletionInput, Propagation, Resource, Step};
use kube::runtime::events::EventType;
use serde_json::{Value, json};

use crate::controller::{Shared, compare_app};
use crate::sync::{self, Executor};

/// Argo CD's resources finalizer.
pub const RESOURCES_FINALIZER: &str = "resources-finalizer.argocd.argoproj.io";
/// Set on the Application (any value) to let `Delete=confirm` objects go.
pub const DELETION_APPROVED: &str = "argocd.argoproj.io/deletion-approved";

/// Whether `f` is the resources finalizer in one of its forms.
pub fn is_resources_finalizer(f: &str) -> bool {
    f == RESOURCES_FINALIZER
        || f.strip_prefix(RESOURCES_FINALIZER)
            .is_some_and(|rest| rest == "/foreground" || rest == "/background")
}

/// What became of a deletion step.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Finalized {
    /// Not ours to finalize (no resources finalizer): nothing done.
    NotOurs,
    /// Resources deleted and the finalizer removed.
    Done,
    /// Waiting (confirmation, or objects not gone yet); try again later.
    Waiting,
}

/// One pass of an Application's cascading deletion.
pub(crate) async fn finalize(shared: &Arc<Shared>, name: &str, raw: &Value) -> Finalized {
    let finalizers: Vec<String> = raw
        .pointer("/metadata/finalizers")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .map(String::from)
        .collect();
    let ours: Vec<&String> = finalizers
        .iter()
        .filter(|f| is_resources_finalizer(f))
        .collect();
    if ours.is_empty() {
        return Finalized::NotOurs;
    }
    let propagation = if ours.iter().any(|f| f.ends_with("/background")) {
        Propagation::Background
    } else {
        Propagation::Foreground
    };
    // The spec's sources give the hooks; an app that cannot be rendered any
    // more (repository gone) still has its live objects deleted.
    let mut stored = raw.clone();
    if let Some(m) = stored.as_object_mut() {
        m.remove("operation");
    }
    let cluster = match shared.cluster_for(raw) {
        Ok(Some(c)) => c,
        Ok(None) => return Finalized::Waiting,
        Err(message) => {
            write_condition(shared, name, &message, &rfc3339(SystemTime::now())).await;
            return Finalized::Waiting;
        }
    };
    let compared = compare_app(shared, name, &stored, false).await;
    let (resources, desired, live) = match compared.ready {
        Some(ready) => (ready.comparison.pairs, ready.objects, ready.live),
        None => {
            let track = crate::views::track_of(raw, &shared.config.namespace)
                .unwrap_or_else(|| name.to_string());
            let live = cluster.live.app_objects(&track);
            let resources = live
                .iter()
                .map(|o| Resource::extraneous(o.as_ref().clone()))
                .collect();
            (resources, Vec::new(), live)
        }
    };
    let options: Vec<String> = raw
        .pointer("/spec/syncPolicy/syncOptions")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .map(String::from)
        .collect();
    let destination = raw
        .pointer("/spec/destination/namespace")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_string();
    let mut plan = berth_engine::plan::plan_deletion(&DeletionInput {
        resources,
        sync_options: options,
        destination_namespace: destination,
        propagation,
    });
    let approved = raw
        .pointer("/metadata/annotations")
        .and_then(|a| a.get(DELETION_APPROVED))
        .is_some();
    let mut awaiting = Vec::new();
    for group in &mut plan.groups {
        for step in &mut group.steps {
            if let Step::Delete(d) = step
                && d.requires_confirmation
            {
                if approved {
                    d.requires_confirmation = false;
                } else {
                    awaiting.push(format!("{}/{}", d.object.kind, d.object.name));
                }
            }
        }
    }
    let now = rfc3339(SystemTime::now());
    if !awaiting.is_empty() {
        let message = format!(
            "waiting for deletion confirmation of {} (Delete=confirm): annotate the application with {DELETION_APPROVED}",
            awaiting.join(", ")
        );
        write_condition(shared, name, &message, &now).await;
        return Finalized::Waiting;
    }
    let settings = shared.settings();
    let types = cluster.types();
    let cancel = AtomicBool::new(false);
    let executor = Executor {
        types: &types,
        applier: &cluster.applier,
        checks: &settings.checks,
        desired: desired
            .iter()
            .map(|o| (sync::object_ref(o), o.clone()))
            .collect(),
        live: live
            .iter()
            .map(|o| (sync::object_ref(o), o.as_ref().clone()))
            .collect(),
        revision: String::new(),
        started_at: 0,
        wait_limit: sync::WAIT_LIMIT,
        cancel: Some(&cancel),
        progress: None,
        operation: String::new(),
        done_hooks: Default::default(),
    };
    tracing::info!(app = %name, ?propagation, "deleting the application's resources");
    let outcome = executor.run(&plan, false, true).await;
    if outcome.phase != "Succeeded" {
        let message = format!("deleting resources: {}", outcome.message);
        tracing::warn!(app = %name, %message, "deletion not finished");
        write_condition(shared, name, &message, &now).await;
        return Finalized::Waiting;
    }
    // The finalizer goes, guarded by the version read: a finalizer added
    // meanwhile is not dropped.
    let kept: Vec<&String> = finalizers
        .iter()
        .filter(|f| !is_resources_finalizer(f))
        .collect();
    let patch = json!({"metadata": {
        "finalizers": kept,
        "resourceVersion": raw.pointer("/metadata/resourceVersion"),
    }});
    match shared.patch_app(name, &patch).await {
        Ok(_) => {
            tracing::info!(app = %name, skipped = plan.skipped.len(), "application's resources deleted");
            shared
                .event(
                    raw,
                    EventType::Normal,
                    "ResourceDeleted",
                    format!(
                        "Deleted the application's resources; {} kept",
                        plan.skipped.len()
                    ),
                )
                .await;
            Finalized::Done
        }
        Err(e) => {
            tracing::warn!(app = %name, error = %e, "removing the resources finalizer");
            Finalized::Waiting
        }
    }
}

/// How long until a deletion that is waiting looks again.
pub(crate) const RETRY: Duration = Duration::from_secs(5);

async fn write_condition(shared: &Shared, name: &str, message: &str, now: &str) {
    let patch = json!({"status": {"conditions": [
        {"type": "DeletionError", "message": message, "lastTransitionTime": now}
    ]}});
    if let Err(e) = shared.patch_app(name, &patch).await {
        tracing::warn!(app = %name, error = %e, "writing the deletion condition");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finalizer_forms() {
        assert!(is_resources_finalizer(RESOURCES_FINALIZER));
        assert!(is_resources_finalizer(
            "resources-finalizer.argocd.argoproj.io/foreground"
        ));
        assert!(is_resources_finalizer(
            "resources-finalizer.argocd.argoproj.io/background"
        ));
        assert!(!is_resources_finalizer(
            "resources-finalizer.argocd.argoproj.io/other"
        ));
        assert!(!is_resources_finalizer("example.com/keep"));
    }
}
