//! Whether to sync now, and how: one admission point for every operation,
//! whatever asked for it (a requested `operation`, or the automated
//! policy). Pure, so every rule is a table test.
//!
//! - A requested operation (`operation.sync`, what `kubectl patch` or the
//!   API sets) runs with its own options.
//! - The automated policy syncs an OutOfSync app once per revision. The
//!   same revision is synced again only with `selfHeal` (drift reverted),
//!   and then only when the back-off allows; a failed automated sync of a
//!   revision is not repeated (no hot loop against the API server).
//! - An empty desired state never prunes everything unless `allowEmpty`
//!   is set, automated or not.

use berth_engine::diff::SyncStatus;
use serde_json::{Value, json};

/// A sync to run.
#[derive(Debug, Clone, PartialEq)]
pub struct SyncRequest {
    /// Delete tracked objects no longer in Git.
    pub prune: bool,
    /// Ask the API server what would happen, change nothing.
    pub dry_run: bool,
    /// The sync options in force.
    pub sync_options: Vec<String>,
    /// `initiatedBy` for the operation's record.
    pub initiated_by: Value,
    /// The automated policy asked for it.
    pub automated: bool,
    /// `operation.sync.resources`: only these are synced (a selective
    /// sync); empty for all.
    pub resources: Vec<Selected>,
    /// `syncStrategy.apply` or `syncStrategy.hook` asked for `force`.
    pub force: bool,
    /// `syncStrategy.apply`: objects are applied without running hooks.
    pub skip_hooks: bool,
}

/// One resource of a selective sync, as Argo CD's `SyncOperationResource`
/// names it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Selected {
    /// API group, empty for core.
    pub group: String,
    /// Kind.
    pub kind: String,
    /// Namespace, empty for cluster-scoped objects (or any, when not given).
    pub namespace: String,
    /// Name.
    pub name: String,
}

impl Selected {
    /// Whether the object `obj` is this one. A resource named without a
    /// namespace matches the object in any namespace, as Argo CD does.
    pub fn matches(&self, obj: &Value) -> bool {
        let (group, kind) = berth_api::kinds::group_kind(obj);
        let text = |p: &str| obj.pointer(p).and_then(Value::as_str).unwrap_or_default();
        group == self.group
            && kind == self.kind
            && text("/metadata/name") == self.name
            && (self.namespace.is_empty() || text("/metadata/namespace") == self.namespace)
    }
}

fn selected(list: Option<&Value>) -> Vec<Selected> {
    list.and_then(Value::as_array)
        .into_iter()
        .flatten()
        .map(|r| {
            let text = |k: &str| {
                r.get(k)
                    .and_then(Value::as_str)
                    .unwrap_or_default()
                    .to_string()
            };
            Selected {
                group: text("group"),
                kind: text("kind"),
                namespace: text("namespace"),
                name: text("name"),
            }
        })
        .collect()
}

/// What to do.
#[derive(Debug, Clone, PartialEq)]
pub enum Decision {
    /// Nothing.
    Nothing,
    /// Sync.
    Sync(SyncRequest),
    /// A sync was asked for and is refused; the message says why and what
    /// to change.
    Refuse(String),
}

fn strings(v: Option<&Value>) -> Vec<String> {
    v.and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .map(String::from)
        .collect()
}

/// Decides for the Application `app` (as stored), given the comparison's
/// sync status, the revision it compared, whether the desired state is
/// empty, and whether self-heal's back-off allows another attempt now.
/// `recent` is the controller's own memory of its latest automated sync of
/// this app (revision, failed), which the stored status may not show yet;
/// the caller passes it only when the app's sources are the ones synced
/// then.
pub fn decide(
    app: &Value,
    sync: SyncStatus,
    revision: &str,
    desired_empty: bool,
    heal_allowed: bool,
    recent: Option<(&str, bool)>,
) -> Decision {
    let policy = app.pointer("/spec/syncPolicy");
    let app_options = strings(policy.and_then(|p| p.get("syncOptions")));
    let automated = policy
        .and_then(|p| p.get("automated"))
        .filter(|a| a.is_object() && a.get("enabled").and_then(Value::as_bool) != Some(false));
    let flag = |k: &str| {
        automated
            .and_then(|a| a.get(k))
            .and_then(Value::as_bool)
            .unwrap_or(false)
    };
    let allow_empty = flag("allowEmpty");
    let empty_refusal = "the desired state is empty and pruning would delete every resource of the application; set spec.syncPolicy.automated.allowEmpty: true if that is intended".to_string();

    if let Some(op) = app.pointer("/operation/sync").filter(|o| o.is_object()) {
        // A rollback (an operation carrying a history entry's source)
        // would be undone at once by the automated policy; Argo CD refuses
        // it, and so does this admission point, whatever wrote it.
        if automated.is_some() && op.get("source").is_some_and(Value::is_object) {
            return Decision::Refuse(
                "rollback cannot be initiated when auto-sync is enabled: remove spec.syncPolicy.automated first".into(),
            );
        }
        let prune = op.get("prune").and_then(Value::as_bool).unwrap_or(false);
        if prune && desired_empty && !allow_empty {
            return Decision::Refuse(empty_refusal);
        }
        let options = strings(op.get("syncOptions"));
        let strategy = op.get("syncStrategy");
        let apply = strategy
            .and_then(|s| s.get("apply"))
            .filter(|a| a.is_object());
        let force = apply
            .or_else(|| strategy.and_then(|s| s.get("hook")))
            .and_then(|s| s.get("force"))
            .and_then(Value::as_bool)
            .unwrap_or(false);
        let resources = selected(op.get("resources"));
        return Decision::Sync(SyncRequest {
            skip_hooks: apply.is_some() || !resources.is_empty(),
            resources,
            force,
            prune,
            dry_run: op.get("dryRun").and_then(Value::as_bool).unwrap_or(false),
            sync_options: if options.is_empty() {
                app_options
            } else {
                options
            },
            initiated_by: app
                .pointer("/operation/initiatedBy")
                .cloned()
                .unwrap_or_else(|| json!({"username": "kubernetes-api"})),
            automated: false,
        });
    }

    if automated.is_none() || sync != SyncStatus::OutOfSync {
        return Decision::Nothing;
    }
    let last = app.pointer("/status/operationState");
    let last_revision = last
        .and_then(|l| l.pointer("/syncResult/revision"))
        .or_else(|| last.and_then(|l| l.pointer("/operation/sync/revision")))
        .and_then(Value::as_str);
    let last_automated = last
        .and_then(|l| l.pointer("/operation/initiatedBy/automated"))
        .and_then(Value::as_bool)
        == Some(true);
    let last_failed = last
        .and_then(|l| l.get("phase"))
        .and_then(Value::as_str)
        .is_some_and(|p| p == "Failed" || p == "Error");
    // Once per (revision, parameters), as Argo CD: a changed source (Helm
    // parameters, a path) with the same commit is synced again. A record
    // without its source counts as the same.
    let same_source = last.is_none_or(|l| {
        let recorded = |field: &str| l.pointer(&format!("/syncResult/{field}"));
        let spec = |field: &str| app.pointer(&format!("/spec/{field}"));
        ["source", "sources"].iter().all(|f| match recorded(f) {
            None | Some(Value::Null) => true,
            Some(r) => Some(r) == spec(f),
        })
    });
    // A sync still Running in the status was interrupted (the controller
    // died): it is resumed, not counted as done.
    let interrupted = last.and_then(|l| l.get("phase")).and_then(Value::as_str) == Some("Running");
    let (attempted, failed) = match recent {
        Some((rev, failed)) if rev == revision => (true, failed),
        _ => (
            last_automated && last_revision == Some(revision) && same_source && !interrupted,
            last_failed,
        ),
    };
    if attempted && (failed || !flag("selfHeal") || !heal_allowed) {
        return Decision::Nothing;
    }
    let prune = flag("prune");
    if desired_empty && !allow_empty {
        return Decision::Refuse(empty_refusal);
    }
    Decision::Sync(SyncRequest {
        prune,
        dry_run: false,
        sync_options: app_options,
        initiated_by: json!({"automated": true}),
        automated: true,
        resources: Vec::new(),
        force: false,
        skip_hooks: false,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn app(policy: Value, last: Value, operation: Value) -> Value {
        let mut a = json!({"spec": {"syncPolicy": policy}, "status": {}});
        if !last.is_null() {
            a["status"]["operationState"] = last;
        }
        if !operation.is_null() {
            a["operation"] = operation;
        }
        a
    }

    fn last(revision: &str, automated: bool, phase: &str) -> Value {
        json!({"operation": {"sync": {"revision": revision}, "initiatedBy": {"automated": automated}},
            "phase": phase, "syncResult": {"revision": revision}})
    }

    fn is_sync(d: &Decision) -> bool {
        matches!(d, Decision::Sync(_))
    }

    #[test]
    fn an_interrupted_automated_sync_is_resumed() {
        let auto = json!({"automated": {}});
        let done = app(auto.clone(), last("abc", true, "Succeeded"), Value::Null);
        assert!(!is_sync(&decide(
            &done,
            SyncStatus::OutOfSync,
            "abc",
            false,
            true,
            None
        )));
        let interrupted = app(auto, last("abc", true, "Running"), Value::Null);
        assert!(
            is_sync(&decide(
                &interrupted,
                SyncStatus::OutOfSync,
                "abc",
                false,
                true,
                None
            )),
            "the controller died during it: it runs again"
        );
    }

    #[test]
    fn policy_table() {
        use SyncStatus::*;
        let auto = json!({"automated": {"prune": true}});
        let heal = json!({"automated": {"prune": true, "selfHeal": true}});
        let cases: Vec<(&str, Value, SyncStatus, bool, bool, bool)> = vec![
            // (name, app, sync, empty, heal allowed, syncs)
            (
                "manual policy reports and waits",
                app(json!({}), Value::Null, Value::Null),
                OutOfSync,
                false,
                true,
                false,
            ),
            (
                "automated syncs a new revision",
                app(auto.clone(), Value::Null, Value::Null),
                OutOfSync,
                false,
                true,
                true,
            ),
            (
                "automated does nothing when in sync",
                app(auto.clone(), Value::Null, Value::Null),
                Synced,
                false,
                true,
                false,
            ),
            (
                "automated: unknown is not a reason",
                app(auto.clone(), Value::Null, Value::Null),
                Unknown,
                false,
                true,
                false,
            ),
            (
                "automated syncs a revision once",
                app(auto.clone(), last("abc", true, "Succeeded"), Value::Null),
                OutOfSync,
                false,
                true,
                false,
            ),
            (
                "automated syncs the next revision",
                app(auto.clone(), last("old", true, "Succeeded"), Value::Null),
                OutOfSync,
                false,
                true,
                true,
            ),
            (
                "a manual sync of this revision does not count",
                app(auto.clone(), last("abc", false, "Succeeded"), Value::Null),
                OutOfSync,
                false,
                true,
                true,
            ),
            (
                "selfHeal reverts drift on the same revision",
                app(heal.clone(), last("abc", true, "Succeeded"), Value::Null),
                OutOfSync,
                false,
                true,
                true,
            ),
            (
                "selfHeal waits for its back-off",
                app(heal.clone(), last("abc", true, "Succeeded"), Value::Null),
                OutOfSync,
                false,
                false,
                false,
            ),
            (
                "a failed automated sync is not repeated",
                app(heal.clone(), last("abc", true, "Failed"), Value::Null),
                OutOfSync,
                false,
                true,
                false,
            ),
            (
                "automated disabled by enabled: false",
                app(
                    json!({"automated": {"enabled": false}}),
                    Value::Null,
                    Value::Null,
                ),
                OutOfSync,
                false,
                true,
                false,
            ),
            (
                "a requested operation runs whatever the policy",
                app(json!({}), Value::Null, json!({"sync": {}})),
                Synced,
                false,
                true,
                true,
            ),
        ];
        for (name, a, sync, empty, heal_ok, want) in cases {
            let d = decide(&a, sync, "abc", empty, heal_ok, None);
            assert_eq!(is_sync(&d), want, "{name}: {d:?}");
        }
    }

    #[test]
    fn the_controllers_memory_counts_before_the_status_shows_it() {
        let a = app(
            json!({"automated": {"prune": true}}),
            last("old", true, "Succeeded"),
            Value::Null,
        );
        assert!(is_sync(&decide(
            &a,
            SyncStatus::OutOfSync,
            "abc",
            false,
            true,
            None
        )));
        assert!(!is_sync(&decide(
            &a,
            SyncStatus::OutOfSync,
            "abc",
            false,
            true,
            Some(("abc", false))
        )));
        let heal = app(
            json!({"automated": {"selfHeal": true}}),
            Value::Null,
            Value::Null,
        );
        assert!(
            !is_sync(&decide(
                &heal,
                SyncStatus::OutOfSync,
                "abc",
                false,
                true,
                Some(("abc", true))
            )),
            "failed: not repeated"
        );
        assert!(is_sync(&decide(
            &heal,
            SyncStatus::OutOfSync,
            "abc",
            false,
            true,
            Some(("abc", false))
        )));
    }

    #[test]
    fn empty_desired_state_never_prunes_everything() {
        let a = app(
            json!({"automated": {"prune": true}}),
            Value::Null,
            Value::Null,
        );
        assert!(
            matches!(decide(&a, SyncStatus::OutOfSync, "abc", true, true, None), Decision::Refuse(m) if m.contains("allowEmpty"))
        );
        let allowed = app(
            json!({"automated": {"prune": true, "allowEmpty": true}}),
            Value::Null,
            Value::Null,
        );
        assert!(is_sync(&decide(
            &allowed,
            SyncStatus::OutOfSync,
            "abc",
            true,
            true,
            None
        )));
        let manual = app(json!({}), Value::Null, json!({"sync": {"prune": true}}));
        assert!(matches!(
            decide(&manual, SyncStatus::OutOfSync, "abc", true, true, None),
            Decision::Refuse(_)
        ));
        let no_prune = app(json!({}), Value::Null, json!({"sync": {"prune": false}}));
        assert!(is_sync(&decide(
            &no_prune,
            SyncStatus::OutOfSync,
            "abc",
            true,
            true,
            None
        )));
    }

    #[test]
    fn operation_options() {
        let a = app(
            json!({"syncOptions": ["CreateNamespace=true"]}),
            Value::Null,
            json!({"sync": {"prune": true, "dryRun": true}, "initiatedBy": {"username": "alice"}}),
        );
        let Decision::Sync(r) = decide(&a, SyncStatus::OutOfSync, "abc", false, true, None) else {
            panic!()
        };
        assert!(r.prune && r.dry_run && !r.automated);
        assert_eq!(r.sync_options, vec!["CreateNamespace=true"]);
        assert_eq!(r.initiated_by["username"], "alice");
        assert!(r.resources.is_empty() && !r.force && !r.skip_hooks);
    }

    #[test]
    fn automated_syncs_again_when_the_parameters_change() {
        let source = json!({"repoURL": "r", "path": "p", "helm": {"parameters": [{"name": "a", "value": "1"}]}});
        let mut a = app(json!({"automated": {}}), Value::Null, Value::Null);
        a["spec"]["source"] = source.clone();
        a["status"]["operationState"] = json!({"operation": {"initiatedBy": {"automated": true}},
            "phase": "Succeeded", "syncResult": {"revision": "abc", "source": source}});
        let d = decide(&a, SyncStatus::OutOfSync, "abc", false, true, None);
        assert_eq!(d, Decision::Nothing, "same revision, same parameters");
        a["spec"]["source"]["helm"]["parameters"][0]["value"] = json!("2");
        let d = decide(&a, SyncStatus::OutOfSync, "abc", false, true, None);
        assert!(is_sync(&d), "same revision, new parameters: {d:?}");
    }

    #[test]
    fn rollback_is_refused_while_automated() {
        let rollback =
            json!({"sync": {"revision": "abc", "source": {"repoURL": "r", "path": "p"}}});
        let a = app(json!({"automated": {}}), Value::Null, rollback.clone());
        let Decision::Refuse(m) = decide(&a, SyncStatus::OutOfSync, "abc", false, true, None)
        else {
            panic!("refused")
        };
        assert!(m.contains("auto-sync is enabled"), "{m}");
        let manual = app(json!({}), Value::Null, rollback);
        assert!(is_sync(&decide(
            &manual,
            SyncStatus::OutOfSync,
            "abc",
            false,
            true,
            None
        )));
        let plain = app(
            json!({"automated": {}}),
            Value::Null,
            json!({"sync": {"revision": "abc"}}),
        );
        assert!(
            is_sync(&decide(
                &plain,
                SyncStatus::OutOfSync,
                "abc",
                false,
                true,
                None
            )),
            "a sync to a revision is not a rollback"
        );
    }

    #[test]
    fn selective_syncs_and_strategies() {
        let op = |sync: Value| {
            let a = app(json!({}), Value::Null, json!({ "sync": sync }));
            match decide(&a, SyncStatus::OutOfSync, "abc", false, true, None) {
                Decision::Sync(r) => r,
                other => panic!("{other:?}"),
            }
        };
        let r = op(json!({"resources": [{"group": "apps", "kind": "Deployment", "name": "web"}]}));
        assert!(r.skip_hooks, "a selective sync runs no hooks");
        let web = json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web", "namespace": "shop"}});
        let other = json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "api", "namespace": "shop"}});
        assert!(r.resources[0].matches(&web), "no namespace named: any");
        assert!(!r.resources[0].matches(&other));
        let in_ns = op(
            json!({"resources": [{"group": "apps", "kind": "Deployment", "name": "web", "namespace": "dev"}]}),
        );
        assert!(!in_ns.resources[0].matches(&web));

        let apply = op(json!({"syncStrategy": {"apply": {"force": true}}}));
        assert!(apply.skip_hooks && apply.force);
        let hook = op(json!({"syncStrategy": {"hook": {"force": true}}}));
        assert!(!hook.skip_hooks && hook.force);
    }
}
