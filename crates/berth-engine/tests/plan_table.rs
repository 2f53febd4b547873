//! Sync and deletion planning against Argo CD 3.x's documented semantics.
//! The table pins the order of steps; the tests after it pin options,
//! diagnostics, skipped objects, serialization and deletion.

use berth_engine::plan::*;
use serde_json::{Value, json};

// --- manifests ---------------------------------------------------------------

fn manifest(api_version: &str, kind: &str, name: &str, annotations: &[(&str, &str)]) -> Value {
    let annotations: serde_json::Map<String, Value> = annotations
        .iter()
        .map(|(k, v)| (k.to_string(), Value::String(v.to_string())))
        .collect();
    json!({
        "apiVersion": api_version,
        "kind": kind,
        "metadata": {"name": name, "annotations": annotations},
    })
}

fn cm(name: &str, annotations: &[(&str, &str)]) -> Value {
    manifest("v1", "ConfigMap", name, annotations)
}

fn deploy(name: &str, annotations: &[(&str, &str)]) -> Value {
    manifest("apps/v1", "Deployment", name, annotations)
}

fn svc(name: &str) -> Value {
    manifest("v1", "Service", name, &[])
}

fn job(name: &str, annotations: &[(&str, &str)]) -> Value {
    manifest("batch/v1", "Job", name, annotations)
}

fn generated_job(prefix: &str, annotations: &[(&str, &str)]) -> Value {
    let mut obj = job("", annotations);
    obj["metadata"] =
        json!({"generateName": prefix, "annotations": obj["metadata"]["annotations"]});
    obj
}

fn namespace(name: &str, annotations: &[(&str, &str)]) -> Value {
    manifest("v1", "Namespace", name, annotations)
}

fn in_namespace(mut obj: Value, ns: &str) -> Value {
    obj["metadata"]["namespace"] = json!(ns);
    obj
}

fn crd(name: &str, group: &str, kind: &str, annotations: &[(&str, &str)]) -> Value {
    let mut obj = manifest(
        "apiextensions.k8s.io/v1",
        "CustomResourceDefinition",
        name,
        annotations,
    );
    obj["spec"] = json!({"group": group, "names": {"kind": kind}});
    obj
}

const WAVE: &str = "argocd.argoproj.io/sync-wave";
const HOOK: &str = "argocd.argoproj.io/hook";
const DELETE_POLICY: &str = "argocd.argoproj.io/hook-delete-policy";
const OPTIONS: &str = "argocd.argoproj.io/sync-options";
const HELM_HOOK: &str = "helm.sh/hook";
const HELM_WEIGHT: &str = "helm.sh/hook-weight";

fn new(obj: Value) -> Resource {
    Resource::desired(obj)
}

fn existing(obj: Value) -> Resource {
    Resource::existing(obj.clone(), obj, false)
}

fn in_sync(obj: Value) -> Resource {
    Resource::existing(obj.clone(), obj, true)
}

fn gone(obj: Value) -> Resource {
    Resource::extraneous(obj)
}

fn sync(resources: Vec<Resource>) -> SyncInput {
    SyncInput {
        resources,
        destination_namespace: "app".into(),
        ..SyncInput::default()
    }
}

fn pruning(resources: Vec<Resource>) -> SyncInput {
    SyncInput {
        prune: true,
        ..sync(resources)
    }
}

fn with_options(mut input: SyncInput, options: &[&str]) -> SyncInput {
    input.sync_options = options.iter().map(|o| o.to_string()).collect();
    input
}

// --- outlines ----------------------------------------------------------------

fn short(o: &ObjectRef) -> String {
    match &o.generate_name {
        Some(prefix) => format!("{}/{prefix}*", o.kind),
        None => format!("{}/{}", o.kind, o.name),
    }
}

fn shorts(objects: &[ObjectRef]) -> String {
    objects.iter().map(short).collect::<Vec<_>>().join(",")
}

fn step(s: &Step) -> String {
    match s {
        Step::EnsureNamespace(n) => format!("namespace {}", n.name),
        Step::Apply(a) => format!("apply {}", short(&a.object)),
        Step::Hook(h) => format!("hook {}", short(&h.object)),
        Step::Prune(p) => format!("prune {}", short(&p.object)),
        Step::Delete(d) => format!("delete {}", short(&d.object)),
        Step::DeleteHook(d) => format!("delete-hook {} {}", short(&d.object), d.policy),
        Step::Wait(b) => {
            let mut out = String::from("wait");
            for (label, list) in [
                ("healthy", &b.healthy),
                ("hooks", &b.hooks_completed),
                ("deleted", &b.deleted),
            ] {
                if !list.is_empty() {
                    out.push_str(&format!(" {label}={}", shorts(list)));
                }
            }
            out
        }
    }
}

/// Every step of the normal path, prefixed with its phase and wave.
fn outline(plan: &Plan) -> Vec<String> {
    let mut lines: Vec<String> = plan
        .prepare
        .iter()
        .map(|s| format!("prepare: {}", step(s)))
        .collect();
    for group in &plan.groups {
        for s in &group.steps {
            lines.push(format!("{} {}: {}", group.phase, group.wave, step(s)));
        }
    }
    lines
}

fn steps(list: &[Step]) -> Vec<String> {
    list.iter().map(step).collect()
}

// --- the table ----------------------------------------------------------------

struct Case {
    name: &'static str,
    input: SyncInput,
    outline: &'static [&'static str],
}

fn cases() -> Vec<Case> {
    vec![
        Case {
            name: "one wave applies namespaces first, then by kind, then by name",
            input: sync(vec![
                new(deploy("web", &[])),
                new(cm("b", &[])),
                new(cm("a", &[])),
                new(svc("web")),
                new(namespace("extra", &[])),
            ]),
            outline: &[
                "Sync 0: apply Namespace/extra",
                "Sync 0: apply ConfigMap/a",
                "Sync 0: apply ConfigMap/b",
                "Sync 0: apply Service/web",
                "Sync 0: apply Deployment/web",
            ],
        },
        Case {
            name: "custom resources come after known kinds, grouped by kind",
            input: sync(vec![
                new(manifest("example.com/v1", "Widget", "a", &[])),
                new(manifest("example.com/v1", "Gadget", "b", &[])),
                new(manifest("example.com/v1", "Gadget", "a", &[])),
                new(cm("z", &[])),
            ]),
            outline: &[
                "Sync 0: apply ConfigMap/z",
                "Sync 0: apply Gadget/a",
                "Sync 0: apply Gadget/b",
                "Sync 0: apply Widget/a",
            ],
        },
        Case {
            name: "waves run lowest first and each waits for health before the next",
            input: sync(vec![
                new(deploy("d", &[(WAVE, "1")])),
                new(cm("c", &[(WAVE, "-1")])),
                new(svc("s")),
            ]),
            outline: &[
                "Sync -1: apply ConfigMap/c",
                "Sync -1: wait healthy=ConfigMap/c",
                "Sync 0: apply Service/s",
                "Sync 0: wait healthy=Service/s",
                "Sync 1: apply Deployment/d",
            ],
        },
        Case {
            name: "PreSync hooks complete before the Sync phase",
            input: sync(vec![
                new(deploy("web", &[])),
                new(job("migrate", &[(HOOK, "PreSync")])),
            ]),
            outline: &[
                "PreSync 0: hook Job/migrate",
                "PreSync 0: wait hooks=Job/migrate",
                "Sync 0: apply Deployment/web",
            ],
        },
        Case {
            name: "PostSync hooks run once resources are healthy",
            input: sync(vec![
                new(job("smoke", &[(HOOK, "PostSync")])),
                new(deploy("web", &[])),
            ]),
            outline: &[
                "Sync 0: apply Deployment/web",
                "Sync 0: wait healthy=Deployment/web",
                "PostSync 0: hook Job/smoke",
                "PostSync 0: wait hooks=Job/smoke",
            ],
        },
        Case {
            name: "a hook naming several phases runs in each",
            input: sync(vec![
                new(job(
                    "notify",
                    &[
                        (HOOK, "PreSync, PostSync"),
                        (DELETE_POLICY, "HookSucceeded"),
                    ],
                )),
                new(cm("c", &[])),
            ]),
            outline: &[
                "PreSync 0: hook Job/notify",
                "PreSync 0: wait hooks=Job/notify",
                "Sync 0: apply ConfigMap/c",
                "Sync 0: wait healthy=ConfigMap/c",
                "PostSync 0: hook Job/notify",
                "PostSync 0: wait hooks=Job/notify",
            ],
        },
        Case {
            name: "a named hook created earlier in the sync is deleted before its next run",
            input: sync(vec![
                new(job("notify", &[(HOOK, "PreSync,PostSync")])),
                new(cm("c", &[])),
            ]),
            outline: &[
                "PreSync 0: hook Job/notify",
                "PreSync 0: wait hooks=Job/notify",
                "Sync 0: apply ConfigMap/c",
                "Sync 0: wait healthy=ConfigMap/c",
                "PostSync 0: delete-hook Job/notify BeforeHookCreation",
                "PostSync 0: wait deleted=Job/notify",
                "PostSync 0: hook Job/notify",
                "PostSync 0: wait hooks=Job/notify",
            ],
        },
        Case {
            name: "Skip is never applied",
            input: sync(vec![new(cm("a", &[])), new(cm("b", &[(HOOK, "Skip")]))]),
            outline: &["Sync 0: apply ConfigMap/a"],
        },
        Case {
            name: "Skip next to another hook type is ignored",
            input: sync(vec![new(job("j", &[(HOOK, "Skip,PreSync")]))]),
            outline: &["PreSync 0: hook Job/j", "PreSync 0: wait hooks=Job/j"],
        },
        Case {
            name: "Helm install and upgrade hooks become PreSync and PostSync",
            input: sync(vec![
                new(job("pre", &[(HELM_HOOK, "pre-install,pre-upgrade")])),
                new(job("post", &[(HELM_HOOK, "post-install")])),
                new(cm("c", &[])),
            ]),
            outline: &[
                "PreSync 0: hook Job/pre",
                "PreSync 0: wait hooks=Job/pre",
                "Sync 0: apply ConfigMap/c",
                "Sync 0: wait healthy=ConfigMap/c",
                "PostSync 0: hook Job/post",
                "PostSync 0: wait hooks=Job/post",
            ],
        },
        Case {
            name: "Helm hook weight is the wave",
            input: sync(vec![
                new(job("a", &[(HELM_HOOK, "pre-install"), (HELM_WEIGHT, "2")])),
                new(job("b", &[(HELM_HOOK, "pre-install"), (HELM_WEIGHT, "-1")])),
            ]),
            outline: &[
                "PreSync -1: hook Job/b",
                "PreSync -1: wait hooks=Job/b",
                "PreSync 2: hook Job/a",
                "PreSync 2: wait hooks=Job/a",
            ],
        },
        Case {
            name: "an Argo CD hook annotation wins over Helm's",
            input: sync(vec![
                new(job("j", &[(HOOK, "PostSync"), (HELM_HOOK, "pre-install")])),
                new(cm("c", &[])),
            ]),
            outline: &[
                "Sync 0: apply ConfigMap/c",
                "Sync 0: wait healthy=ConfigMap/c",
                "PostSync 0: hook Job/j",
                "PostSync 0: wait hooks=Job/j",
            ],
        },
        Case {
            name: "Helm crd-install is an ordinary resource",
            input: sync(vec![
                new(manifest("example.com/v1", "Widget", "w", &[])),
                new(crd(
                    "widgets.example.com",
                    "example.com",
                    "Widget",
                    &[(HELM_HOOK, "crd-install")],
                )),
            ]),
            outline: &[
                "Sync 0: apply CustomResourceDefinition/widgets.example.com",
                "Sync 0: apply Widget/w",
            ],
        },
        Case {
            name: "Helm test hooks are not applied",
            input: sync(vec![
                new(manifest("v1", "Pod", "t", &[(HELM_HOOK, "test-success")])),
                new(cm("c", &[])),
            ]),
            outline: &["Sync 0: apply ConfigMap/c"],
        },
        Case {
            name: "an existing named hook is deleted before it is created again",
            input: sync(vec![
                existing(job("migrate", &[(HOOK, "PreSync")])),
                new(cm("c", &[])),
            ]),
            outline: &[
                "PreSync 0: delete-hook Job/migrate BeforeHookCreation",
                "PreSync 0: wait deleted=Job/migrate",
                "PreSync 0: hook Job/migrate",
                "PreSync 0: wait hooks=Job/migrate",
                "Sync 0: apply ConfigMap/c",
            ],
        },
        Case {
            name: "without BeforeHookCreation an existing hook is only re-applied",
            input: sync(vec![existing(job(
                "migrate",
                &[(HOOK, "PreSync"), (DELETE_POLICY, "HookSucceeded")],
            ))]),
            outline: &[
                "PreSync 0: hook Job/migrate",
                "PreSync 0: wait hooks=Job/migrate",
            ],
        },
        Case {
            name: "hooks with generateName are never deleted before creation",
            input: sync(vec![new(generated_job("migrate-", &[(HOOK, "PreSync")]))]),
            outline: &[
                "PreSync 0: hook Job/migrate-*",
                "PreSync 0: wait hooks=Job/migrate-*",
            ],
        },
        Case {
            name: "extraneous objects are pruned before the applies of their wave",
            input: pruning(vec![new(cm("new", &[])), gone(cm("old", &[]))]),
            outline: &["Sync 0: prune ConfigMap/old", "Sync 0: apply ConfigMap/new"],
        },
        Case {
            name: "nothing is pruned unless the sync prunes",
            input: sync(vec![new(cm("new", &[])), gone(cm("old", &[]))]),
            outline: &["Sync 0: apply ConfigMap/new"],
        },
        Case {
            name: "Prune=false keeps an extraneous object",
            input: pruning(vec![
                gone(cm("keep", &[(OPTIONS, "Prune=false")])),
                gone(cm("old", &[])),
            ]),
            outline: &["Sync 0: prune ConfigMap/old"],
        },
        Case {
            name: "prune candidates are pruned in reverse wave order",
            input: pruning(vec![
                new(cm("a", &[(WAVE, "1")])),
                new(cm("b", &[(WAVE, "3")])),
                gone(deploy("old1", &[(WAVE, "1")])),
                gone(deploy("old3", &[(WAVE, "3")])),
            ]),
            outline: &[
                "Sync 1: prune Deployment/old3",
                "Sync 1: apply ConfigMap/a",
                "Sync 1: wait healthy=ConfigMap/a deleted=Deployment/old3",
                "Sync 3: prune Deployment/old1",
                "Sync 3: apply ConfigMap/b",
            ],
        },
        Case {
            name: "PruneLast prunes after every other wave",
            input: with_options(
                pruning(vec![
                    new(cm("a", &[])),
                    new(deploy("d", &[(WAVE, "2")])),
                    gone(cm("old", &[])),
                ]),
                &["PruneLast=true"],
            ),
            outline: &[
                "Sync 0: apply ConfigMap/a",
                "Sync 0: wait healthy=ConfigMap/a",
                "Sync 2: apply Deployment/d",
                "Sync 2: wait healthy=Deployment/d",
                "Sync 3: prune ConfigMap/old",
            ],
        },
        Case {
            name: "PruneLast on one resource moves only that prune",
            input: pruning(vec![
                new(cm("a", &[])),
                gone(cm("x", &[(OPTIONS, "PruneLast=true")])),
                gone(cm("y", &[])),
            ]),
            outline: &[
                "Sync 0: prune ConfigMap/y",
                "Sync 0: apply ConfigMap/a",
                "Sync 0: wait healthy=ConfigMap/a deleted=ConfigMap/y",
                "Sync 1: prune ConfigMap/x",
            ],
        },
        Case {
            name: "PruneLast after negative waves prunes in wave 1",
            input: with_options(
                pruning(vec![
                    new(cm("a", &[(WAVE, "-5")])),
                    gone(cm("old", &[(WAVE, "-5")])),
                ]),
                &["PruneLast=true"],
            ),
            outline: &[
                "Sync -5: apply ConfigMap/a",
                "Sync -5: wait healthy=ConfigMap/a",
                "Sync 1: prune ConfigMap/old",
            ],
        },
        Case {
            name: "ApplyOutOfSyncOnly applies only what differs or is missing",
            input: with_options(
                sync(vec![
                    in_sync(cm("same", &[])),
                    existing(cm("changed", &[])),
                    new(cm("new", &[])),
                ]),
                &["ApplyOutOfSyncOnly=true"],
            ),
            outline: &[
                "Sync 0: apply ConfigMap/changed",
                "Sync 0: apply ConfigMap/new",
            ],
        },
        Case {
            name: "ApplyOutOfSyncOnly still runs hooks",
            input: with_options(
                sync(vec![
                    Resource::existing(
                        job("hook", &[(HOOK, "PreSync")]),
                        job("hook", &[(HOOK, "PreSync")]),
                        true,
                    ),
                    in_sync(cm("same", &[])),
                ]),
                &["ApplyOutOfSyncOnly=true"],
            ),
            outline: &[
                "PreSync 0: delete-hook Job/hook BeforeHookCreation",
                "PreSync 0: wait deleted=Job/hook",
                "PreSync 0: hook Job/hook",
                "PreSync 0: wait hooks=Job/hook",
            ],
        },
        Case {
            name: "CreateNamespace creates the destination before any phase",
            input: with_options(
                sync(vec![
                    new(cm("c", &[])),
                    new(job("pre", &[(HOOK, "PreSync"), (WAVE, "-1")])),
                ]),
                &["CreateNamespace=true"],
            ),
            outline: &[
                "prepare: namespace app",
                "PreSync -1: hook Job/pre",
                "PreSync -1: wait hooks=Job/pre",
                "Sync 0: apply ConfigMap/c",
            ],
        },
        Case {
            name: "a namespace declared in Git is not created by CreateNamespace",
            input: with_options(
                sync(vec![new(cm("c", &[])), new(namespace("app", &[]))]),
                &["CreateNamespace=true"],
            ),
            outline: &["Sync 0: apply Namespace/app", "Sync 0: apply ConfigMap/c"],
        },
        Case {
            name: "an existing destination namespace needs no step",
            input: SyncInput {
                namespace_exists: true,
                ..with_options(sync(vec![new(cm("c", &[]))]), &["CreateNamespace=true"])
            },
            outline: &["Sync 0: apply ConfigMap/c"],
        },
        Case {
            name: "a namespace moves to the wave of the first object that lives in it",
            input: sync(vec![
                new(namespace("team", &[(WAVE, "5")])),
                new(in_namespace(cm("c", &[]), "team")),
                new(deploy("d", &[(WAVE, "5")])),
            ]),
            outline: &[
                "Sync 0: apply Namespace/team",
                "Sync 0: apply ConfigMap/c",
                "Sync 0: wait healthy=Namespace/team,ConfigMap/c",
                "Sync 5: apply Deployment/d",
            ],
        },
        Case {
            name: "a CRD moves before the first of its custom resources",
            input: sync(vec![
                new(crd(
                    "widgets.example.com",
                    "example.com",
                    "Widget",
                    &[(WAVE, "3")],
                )),
                new(manifest("example.com/v1", "Widget", "w", &[])),
                new(cm("late", &[(WAVE, "3")])),
            ]),
            outline: &[
                "Sync 0: apply CustomResourceDefinition/widgets.example.com",
                "Sync 0: apply Widget/w",
                "Sync 0: wait healthy=CustomResourceDefinition/widgets.example.com,Widget/w",
                "Sync 3: apply ConfigMap/late",
            ],
        },
        Case {
            name: "SyncFail hooks are not part of the normal path",
            input: sync(vec![
                new(deploy("web", &[])),
                new(job("cleanup", &[(HOOK, "SyncFail")])),
            ]),
            outline: &["Sync 0: apply Deployment/web"],
        },
        Case {
            name: "with a SyncFail hook the last wave also waits for resources",
            input: sync(vec![
                new(deploy("web", &[])),
                new(job("sync-hook", &[(HOOK, "Sync")])),
                new(job("cleanup", &[(HOOK, "SyncFail")])),
            ]),
            outline: &[
                "Sync 0: apply Deployment/web",
                "Sync 0: hook Job/sync-hook",
                "Sync 0: wait healthy=Deployment/web hooks=Job/sync-hook",
            ],
        },
        Case {
            name: "a single wave with a hook waits for the hook only",
            input: sync(vec![
                new(deploy("web", &[])),
                new(job("sync-hook", &[(HOOK, "Sync")])),
            ]),
            outline: &[
                "Sync 0: apply Deployment/web",
                "Sync 0: hook Job/sync-hook",
                "Sync 0: wait hooks=Job/sync-hook",
            ],
        },
        Case {
            name: "a sync without hooks runs none",
            input: SyncInput {
                skip_hooks: true,
                ..sync(vec![
                    new(job("pre", &[(HOOK, "PreSync")])),
                    new(cm("c", &[])),
                ])
            },
            outline: &["Sync 0: apply ConfigMap/c"],
        },
        Case {
            name: "deletion hooks do not run in a sync",
            input: sync(vec![
                new(job("bye", &[(HOOK, "PostDelete")])),
                new(job("before", &[(HELM_HOOK, "pre-delete")])),
                new(cm("c", &[])),
            ]),
            outline: &["Sync 0: apply ConfigMap/c"],
        },
        Case {
            name: "hooks left in the cluster are never pruned",
            input: pruning(vec![
                gone(job("old-migrate", &[(HOOK, "PreSync")])),
                gone(job("old-helm", &[(HELM_HOOK, "post-upgrade")])),
                new(cm("c", &[])),
            ]),
            outline: &["Sync 0: apply ConfigMap/c"],
        },
    ]
}

#[test]
fn table() {
    let cases = cases();
    assert!(cases.len() >= 25);
    let mut failures = Vec::new();
    for case in cases {
        let plan = plan_sync(&case.input);
        let got = outline(&plan);
        if got != case.outline {
            failures.push(format!(
                "{}:\n  expected {:#?}\n  got {:#?}",
                case.name, case.outline, got
            ));
        }
        assert!(!plan.has_errors(), "{}: {:?}", case.name, plan.diagnostics);
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

// --- apply options --------------------------------------------------------------

fn apply_step<'a>(plan: &'a Plan, name: &str) -> &'a ApplyStep {
    plan.steps()
        .find_map(|s| match s {
            Step::Apply(a) if a.object.name == name => Some(a),
            _ => None,
        })
        .unwrap_or_else(|| panic!("no apply step for {name}:\n{plan}"))
}

fn prune_step<'a>(plan: &'a Plan, name: &str) -> &'a PruneStep {
    plan.steps()
        .find_map(|s| match s {
            Step::Prune(p) if p.object.name == name => Some(p),
            _ => None,
        })
        .unwrap_or_else(|| panic!("no prune step for {name}:\n{plan}"))
}

#[test]
fn server_side_apply_from_the_application_and_turned_off_per_resource() {
    let plan = plan_sync(&with_options(
        sync(vec![
            new(cm("ssa", &[])),
            new(cm("csa", &[(OPTIONS, "ServerSideApply=false")])),
        ]),
        &["ServerSideApply=true"],
    ));
    let ssa = apply_step(&plan, "ssa").options;
    assert_eq!(ssa.strategy, ApplyStrategy::ServerSideApply);
    assert!(ssa.client_side_apply_migration);
    let csa = apply_step(&plan, "csa").options;
    assert_eq!(csa.strategy, ApplyStrategy::ClientSideApply);
    assert!(!csa.client_side_apply_migration);
}

#[test]
fn server_side_apply_per_resource_and_migration_turned_off() {
    let plan = plan_sync(&with_options(
        sync(vec![new(cm("c", &[(OPTIONS, "ServerSideApply=true")]))]),
        &["ClientSideApplyMigration=false"],
    ));
    let options = apply_step(&plan, "c").options;
    assert_eq!(options.strategy, ApplyStrategy::ServerSideApply);
    assert!(!options.client_side_apply_migration);
}

#[test]
fn replace_creates_replaces_or_updates_and_wins_over_server_side_apply() {
    let plan = plan_sync(&with_options(
        sync(vec![
            new(cm("fresh", &[])),
            existing(cm("there", &[])),
            existing(crd("widgets.example.com", "example.com", "Widget", &[])),
            existing(namespace("team", &[])),
        ]),
        &["Replace=true", "ServerSideApply=true"],
    ));
    assert_eq!(
        apply_step(&plan, "fresh").options.strategy,
        ApplyStrategy::Create
    );
    assert_eq!(
        apply_step(&plan, "there").options.strategy,
        ApplyStrategy::Replace
    );
    assert_eq!(
        apply_step(&plan, "widgets.example.com").options.strategy,
        ApplyStrategy::Update
    );
    assert_eq!(
        apply_step(&plan, "team").options.strategy,
        ApplyStrategy::Update
    );
}

#[test]
fn replace_false_on_a_resource_overrides_the_application() {
    let plan = plan_sync(&with_options(
        sync(vec![existing(cm("c", &[(OPTIONS, "Replace=false")]))]),
        &["Replace=true"],
    ));
    assert_eq!(
        apply_step(&plan, "c").options.strategy,
        ApplyStrategy::ClientSideApply
    );
}

#[test]
fn force_comes_from_the_resource_or_the_operation() {
    let plan = plan_sync(&sync(vec![
        new(cm("forced", &[(OPTIONS, "Force=true,Replace=true")])),
        new(cm("plain", &[])),
    ]));
    assert!(apply_step(&plan, "forced").options.force);
    assert!(!apply_step(&plan, "plain").options.force);

    let forced_sync = SyncInput {
        force: true,
        ..sync(vec![new(cm("plain", &[]))])
    };
    assert!(apply_step(&plan_sync(&forced_sync), "plain").options.force);
}

#[test]
fn force_in_the_application_options_is_reported_and_has_no_effect() {
    let plan = plan_sync(&with_options(
        sync(vec![new(cm("c", &[]))]),
        &["Force=true"],
    ));
    assert!(!apply_step(&plan, "c").options.force);
    assert!(matches!(
        plan.diagnostics.as_slice(),
        [Diagnostic {
            severity: Severity::Warning,
            object: None,
            problem: Problem::ResourceOnlyOption { .. },
        }]
    ));
}

#[test]
fn validate_false_anywhere_turns_validation_off() {
    let plan = plan_sync(&sync(vec![
        new(cm("loose", &[(OPTIONS, "Validate=false")])),
        new(cm("strict", &[])),
    ]));
    assert!(!apply_step(&plan, "loose").options.validate);
    assert!(apply_step(&plan, "strict").options.validate);

    let plan = plan_sync(&with_options(
        sync(vec![new(cm("c", &[(OPTIONS, "Validate=true")]))]),
        &["Validate=false"],
    ));
    assert!(!apply_step(&plan, "c").options.validate);
    assert!(matches!(
        plan.diagnostics.as_slice(),
        [Diagnostic {
            severity: Severity::Warning,
            problem: Problem::NotOverridden { .. },
            ..
        }]
    ));
}

#[test]
fn dry_run_is_skipped_for_types_whose_crd_is_in_the_sync_or_when_asked() {
    let plan = plan_sync(&sync(vec![
        new(crd("widgets.example.com", "example.com", "Widget", &[])),
        new(manifest("example.com/v1", "Widget", "w", &[])),
        new(manifest(
            "constraints.gatekeeper.sh/v1beta1",
            "K8sRequiredLabels",
            "k",
            &[(OPTIONS, "SkipDryRunOnMissingResource=true")],
        )),
        new(cm("c", &[])),
    ]));
    assert!(apply_step(&plan, "w").options.skip_dry_run_if_type_missing);
    assert!(apply_step(&plan, "k").options.skip_dry_run_if_type_missing);
    assert!(!apply_step(&plan, "c").options.skip_dry_run_if_type_missing);

    let plan = plan_sync(&with_options(
        sync(vec![new(cm("c", &[]))]),
        &["SkipDryRunOnMissingResource=true"],
    ));
    assert!(apply_step(&plan, "c").options.skip_dry_run_if_type_missing);
}

#[test]
fn respect_ignore_differences_resource_overrides_application() {
    let plan = plan_sync(&with_options(
        sync(vec![
            existing(deploy("on", &[])),
            existing(deploy(
                "off",
                &[(OPTIONS, "RespectIgnoreDifferences=false")],
            )),
        ]),
        &["RespectIgnoreDifferences=true"],
    ));
    assert!(apply_step(&plan, "on").options.respect_ignore_differences);
    assert!(!apply_step(&plan, "off").options.respect_ignore_differences);
}

#[test]
fn change_says_create_update_or_unchanged() {
    let plan = plan_sync(&sync(vec![
        new(cm("a", &[])),
        existing(cm("b", &[])),
        in_sync(cm("c", &[])),
    ]));
    let changes: Vec<Change> = ["a", "b", "c"]
        .iter()
        .map(|n| apply_step(&plan, n).change)
        .collect();
    assert_eq!(changes, [Change::Create, Change::Update, Change::Unchanged]);
}

// --- pruning options ---------------------------------------------------------------

#[test]
fn prune_propagation_defaults_to_foreground() {
    let plan = plan_sync(&pruning(vec![gone(cm("old", &[]))]));
    assert_eq!(
        prune_step(&plan, "old").propagation,
        Propagation::Foreground
    );

    for (option, expected) in [
        ("PrunePropagationPolicy=background", Propagation::Background),
        ("PrunePropagationPolicy=orphan", Propagation::Orphan),
        ("PrunePropagationPolicy=foreground", Propagation::Foreground),
    ] {
        let plan = plan_sync(&with_options(
            pruning(vec![gone(cm("old", &[]))]),
            &[option],
        ));
        assert_eq!(prune_step(&plan, "old").propagation, expected, "{option}");
    }
}

#[test]
fn prune_confirm_flags_the_step_and_a_resource_overrides_the_application() {
    let plan = plan_sync(&with_options(
        pruning(vec![
            gone(cm("ask", &[])),
            gone(cm("free", &[(OPTIONS, "Prune=true")])),
        ]),
        &["Prune=confirm"],
    ));
    assert!(prune_step(&plan, "ask").requires_confirmation);
    assert!(!prune_step(&plan, "free").requires_confirmation);
}

#[test]
fn prune_false_in_the_application_is_overridden_by_prune_true_on_a_resource() {
    let plan = plan_sync(&with_options(
        pruning(vec![
            gone(cm("kept", &[])),
            gone(cm("pruned", &[(OPTIONS, "Prune=true")])),
        ]),
        &["Prune=false"],
    ));
    assert_eq!(outline(&plan), ["Sync 0: prune ConfigMap/pruned"]);
    assert_eq!(plan.skipped[0].reason, SkipReason::PruneDisabled);
}

#[test]
fn unpruned_candidates_still_count_for_the_last_wave() {
    // Argo CD runs a skipped prune as a task of its wave: wave 0 is not the
    // last one, so it waits for health.
    let plan = plan_sync(&pruning(vec![
        new(cm("a", &[])),
        gone(cm("kept", &[(WAVE, "4"), (OPTIONS, "Prune=false")])),
    ]));
    assert_eq!(
        outline(&plan),
        [
            "Sync 0: apply ConfigMap/a",
            "Sync 0: wait healthy=ConfigMap/a"
        ]
    );
}

// --- skipped objects ----------------------------------------------------------------

#[test]
fn skipped_objects_say_why() {
    let plan = plan_sync(&with_options(
        sync(vec![
            in_sync(cm("same", &[])),
            gone(cm("old", &[])),
            new(cm("skip", &[(HOOK, "Skip")])),
            gone(job("old-hook", &[(HOOK, "PreSync")])),
            new(job("bye", &[(HOOK, "PostDelete")])),
            new(manifest("v1", "Pod", "test", &[(HELM_HOOK, "test")])),
        ]),
        &["ApplyOutOfSyncOnly=true"],
    ));
    // Ordered by group, kind, namespace and name.
    let reasons: Vec<(String, SkipReason)> = plan
        .skipped
        .iter()
        .map(|s| (s.object.name.clone(), s.reason))
        .collect();
    assert_eq!(
        reasons,
        [
            ("old".to_string(), SkipReason::PruneNotRequested),
            ("same".to_string(), SkipReason::InSync),
            ("skip".to_string(), SkipReason::SkipAnnotation),
            ("test".to_string(), SkipReason::NoHookPhase),
            ("bye".to_string(), SkipReason::DeletionHook),
            ("old-hook".to_string(), SkipReason::HookNotPruned),
        ]
    );
}

// --- diagnostics -------------------------------------------------------------------

fn messages(plan: &Plan) -> Vec<String> {
    plan.diagnostics.iter().map(ToString::to_string).collect()
}

#[test]
fn unknown_application_option_is_reported_with_a_suggestion() {
    let plan = plan_sync(&with_options(
        sync(vec![new(cm("c", &[]))]),
        &["prune=false", "NoSuchThing=true", "Validate"],
    ));
    assert_eq!(
        messages(&plan),
        [
            "warning: unknown sync option \"prune=false\" in spec.syncPolicy.syncOptions (did you mean Prune?)",
            "warning: unknown sync option \"NoSuchThing=true\" in spec.syncPolicy.syncOptions",
            "warning: sync option \"Validate\" in spec.syncPolicy.syncOptions is not of the form Key=Value",
        ]
    );
    assert!(plan.validate().is_ok());
}

#[test]
fn unknown_resource_option_names_the_object_and_the_option() {
    let plan = plan_sync(&sync(vec![new(cm(
        "c",
        &[(OPTIONS, "Foo=bar, CreateNamespace=true")],
    ))]));
    assert_eq!(
        messages(&plan),
        [
            "warning: ConfigMap app/c: unknown sync option \"Foo=bar\" in annotation argocd.argoproj.io/sync-options",
            "warning: ConfigMap app/c: sync option \"CreateNamespace=true\" has no effect on a resource; set it in spec.syncPolicy.syncOptions",
        ]
    );
}

#[test]
fn bad_option_values_are_errors_and_block_the_plan() {
    let plan = plan_sync(&with_options(
        sync(vec![new(cm("c", &[(OPTIONS, "Prune=flase")]))]),
        &["PrunePropagationPolicy=Background"],
    ));
    assert_eq!(
        messages(&plan),
        [
            "error: sync option \"PrunePropagationPolicy=Background\" in spec.syncPolicy.syncOptions has an invalid value: expected foreground, background or orphan",
            "error: ConfigMap app/c: sync option \"Prune=flase\" in annotation argocd.argoproj.io/sync-options has an invalid value: expected true, false or confirm",
        ]
    );
    let err = plan.validate().err().map(|e| e.to_string());
    assert_eq!(
        err.as_deref(),
        Some(
            "the plan has 2 error(s); the first: error: sync option \"PrunePropagationPolicy=Background\" in spec.syncPolicy.syncOptions has an invalid value: expected foreground, background or orphan"
        )
    );
}

#[test]
fn invalid_sync_wave_is_an_error_naming_object_and_annotation() {
    let plan = plan_sync(&sync(vec![new(deploy("web", &[(WAVE, "first")]))]));
    assert_eq!(
        messages(&plan),
        [
            "error: Deployment.apps app/web: annotation argocd.argoproj.io/sync-wave: \"first\" is not an integer"
        ]
    );
    assert!(plan.validate().is_err());
}

#[test]
fn unknown_hook_types_and_policies_are_reported() {
    let plan = plan_sync(&sync(vec![new(job(
        "j",
        &[(HOOK, "PreSync,Presync"), (DELETE_POLICY, "OnSuccess")],
    ))]));
    assert_eq!(
        messages(&plan),
        [
            "warning: Job.batch app/j: annotation argocd.argoproj.io/hook: unknown hook type \"Presync\"",
            "warning: Job.batch app/j: annotation argocd.argoproj.io/hook-delete-policy: unknown hook deletion policy \"OnSuccess\"",
        ]
    );
}

#[test]
fn a_hook_of_unknown_type_only_is_not_applied() {
    let plan = plan_sync(&sync(vec![new(job("j", &[(HOOK, "Before")]))]));
    assert!(plan.groups.is_empty());
    assert_eq!(plan.skipped[0].reason, SkipReason::NoHookPhase);
}

#[test]
fn an_existing_hook_that_will_not_run_again_is_explained() {
    let plan = plan_sync(&sync(vec![existing(job(
        "j",
        &[(HOOK, "PreSync"), (DELETE_POLICY, "HookSucceeded")],
    ))]));
    assert_eq!(plan.diagnostics.len(), 1);
    assert_eq!(plan.diagnostics[0].severity, Severity::Info);
    assert_eq!(plan.diagnostics[0].problem, Problem::HookNotRerun);
}

#[test]
fn invalid_objects_are_errors() {
    let plan = plan_sync(&sync(vec![
        new(json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {}})),
        new(json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"generateName": "c-"}})),
        new(cm("twice", &[])),
        new(cm("twice", &[])),
    ]));
    let problems: Vec<&Problem> = plan.errors().map(|d| &d.problem).collect();
    assert_eq!(
        problems,
        [
            &Problem::MissingField {
                field: "metadata.name"
            },
            &Problem::GenerateNameWithoutHook,
            &Problem::DuplicateObject,
        ]
    );
    assert_eq!(outline(&plan), ["Sync 0: apply ConfigMap/twice"]);
}

#[test]
fn shared_resources_warn_unless_the_application_fails_on_them() {
    let input = sync(vec![new(cm("c", &[])).shared_with("other")]);
    let plan = plan_sync(&input);
    assert_eq!(
        messages(&plan),
        ["warning: ConfigMap app/c: object is also managed by application \"other\""]
    );
    let plan = plan_sync(&with_options(input, &["FailOnSharedResource=true"]));
    assert!(plan.has_errors());
}

// --- success and failure -------------------------------------------------------------

#[test]
fn hook_deletion_policies_apply_when_the_sync_ends() {
    let plan = plan_sync(&sync(vec![
        new(job(
            "a",
            &[(HOOK, "PreSync"), (DELETE_POLICY, "HookSucceeded")],
        )),
        new(job(
            "b",
            &[(HOOK, "PostSync"), (DELETE_POLICY, "HookFailed")],
        )),
        new(generated_job(
            "c-",
            &[
                (HOOK, "SyncFail"),
                ("helm.sh/hook-delete-policy", "hook-failed"),
            ],
        )),
        new(cm("x", &[])),
    ]));
    assert_eq!(steps(&plan.on_success), ["delete-hook Job/a HookSucceeded"]);
    assert_eq!(
        steps(&plan.on_failure),
        [
            "delete-hook Job/b HookFailed",
            "hook Job/c-*",
            "wait hooks=Job/c-*",
            "delete-hook Job/c-* HookFailed",
        ]
    );
}

#[test]
fn a_named_hook_in_two_phases_is_deleted_once() {
    let plan = plan_sync(&sync(vec![new(job(
        "n",
        &[(HOOK, "PreSync,PostSync"), (DELETE_POLICY, "HookSucceeded")],
    ))]));
    assert_eq!(steps(&plan.on_success), ["delete-hook Job/n HookSucceeded"]);
}

#[test]
fn syncfail_hook_of_an_earlier_phase_is_recreated() {
    let plan = plan_sync(&sync(vec![new(job("j", &[(HOOK, "PreSync,SyncFail")]))]));
    assert_eq!(
        steps(&plan.on_failure),
        [
            "delete-hook Job/j BeforeHookCreation",
            "wait deleted=Job/j",
            "hook Job/j",
            "wait hooks=Job/j",
        ]
    );
}

// --- stability -----------------------------------------------------------------------

fn mixed() -> Vec<Resource> {
    vec![
        new(deploy("web", &[(WAVE, "1"), (OPTIONS, "Bogus=1")])),
        new(cm("cfg", &[])),
        new(job("migrate", &[(HOOK, "PreSync")])),
        gone(cm("old", &[(WAVE, "2")])),
        new(svc("web")),
        new(cm("bad", &[(WAVE, "x")])),
    ]
}

#[test]
fn the_plan_does_not_depend_on_input_order() {
    let forward = plan_sync(&pruning(mixed()));
    let mut reversed = mixed();
    reversed.reverse();
    assert_eq!(forward, plan_sync(&pruning(reversed)));
}

#[test]
fn json_field_names_are_stable() {
    let plan = plan_sync(&with_options(
        pruning(vec![
            new(deploy("web", &[(OPTIONS, "ServerSideApply=true")])),
            gone(cm("old", &[])),
        ]),
        &["PrunePropagationPolicy=background", "Oops=1"],
    ));
    let value = serde_json::to_value(&plan).unwrap_or_default();
    assert_eq!(
        value,
        json!({
            "kind": "sync",
            "options": {"prunePropagationPolicy": "background"},
            "prune": true,
            "prepare": [],
            "groups": [{
                "phase": "Sync",
                "wave": 0,
                "steps": [
                    {
                        "action": "prune",
                        "object": {"group": "", "kind": "ConfigMap", "namespace": "app", "name": "old", "apiVersion": "v1"},
                        "propagation": "background",
                        "requiresConfirmation": false
                    },
                    {
                        "action": "apply",
                        "object": {"group": "apps", "kind": "Deployment", "namespace": "app", "name": "web", "apiVersion": "apps/v1"},
                        "change": "create",
                        "options": {
                            "strategy": "serverSideApply",
                            "force": false,
                            "validate": true,
                            "skipDryRunIfTypeMissing": false,
                            "respectIgnoreDifferences": false,
                            "clientSideApplyMigration": true
                        }
                    }
                ]
            }],
            "onSuccess": [],
            "onFailure": [],
            "skipped": [],
            "diagnostics": [{
                "severity": "warning",
                "code": "unknownSyncOption",
                "option": "Oops=1",
                "origin": "application",
                "message": "unknown sync option \"Oops=1\" in spec.syncPolicy.syncOptions"
            }]
        })
    );
}

// --- deletion ------------------------------------------------------------------------

fn deletion(resources: Vec<Resource>, options: &[&str]) -> DeletionInput {
    DeletionInput {
        resources,
        sync_options: options.iter().map(|o| o.to_string()).collect(),
        destination_namespace: "app".into(),
        propagation: Propagation::Foreground,
    }
}

fn live(obj: Value) -> Resource {
    Resource::existing(obj.clone(), obj, true)
}

#[test]
fn deletion_goes_from_the_highest_wave_down_waiting_for_each() {
    let plan = plan_deletion(&deletion(
        vec![
            live(cm("cfg", &[(WAVE, "-1")])),
            live(deploy("web", &[(WAVE, "2")])),
            live(svc("web")),
            gone(cm("stray", &[])),
        ],
        &[],
    ));
    assert_eq!(
        outline(&plan),
        [
            "Delete 2: delete Deployment/web",
            "Delete 2: wait deleted=Deployment/web",
            "Delete 0: delete Service/web",
            "Delete 0: delete ConfigMap/stray",
            "Delete 0: wait deleted=Service/web,ConfigMap/stray",
            "Delete -1: delete ConfigMap/cfg",
            "Delete -1: wait deleted=ConfigMap/cfg",
        ]
    );
}

#[test]
fn deletion_keeps_crds_delete_false_and_helm_keep() {
    let plan = plan_deletion(&deletion(
        vec![
            live(crd("widgets.example.com", "example.com", "Widget", &[])),
            live(manifest(
                "v1",
                "PersistentVolumeClaim",
                "data",
                &[(OPTIONS, "Delete=false")],
            )),
            live(cm("kept", &[("helm.sh/resource-policy", "keep")])),
            live(cm("ask", &[(OPTIONS, "Delete=confirm")])),
        ],
        &[],
    ));
    let reasons: Vec<SkipReason> = plan.skipped.iter().map(|s| s.reason).collect();
    assert_eq!(
        reasons,
        [
            SkipReason::ResourcePolicyKeep,
            SkipReason::DeleteDisabled,
            SkipReason::CrdKept,
        ]
    );
    let delete = plan.steps().find_map(|s| match s {
        Step::Delete(d) => Some(d),
        _ => None,
    });
    assert!(delete.is_some_and(|d| d.object.name == "ask" && d.requires_confirmation));
}

#[test]
fn deletion_honours_the_application_delete_option_unless_a_resource_overrides_it() {
    let plan = plan_deletion(&deletion(
        vec![
            live(cm("kept", &[])),
            live(cm("deleted", &[(OPTIONS, "Delete=true")])),
        ],
        &["Delete=false"],
    ));
    assert_eq!(
        outline(&plan),
        [
            "Delete 0: delete ConfigMap/deleted",
            "Delete 0: wait deleted=ConfigMap/deleted",
        ]
    );
}

#[test]
fn deletion_runs_predelete_hooks_first_and_postdelete_hooks_last() {
    let plan = plan_deletion(&DeletionInput {
        propagation: Propagation::Background,
        ..deletion(
            vec![
                new(job(
                    "drain",
                    &[(HOOK, "PreDelete"), (DELETE_POLICY, "HookSucceeded")],
                )),
                new(job(
                    "notify",
                    &[
                        (HELM_HOOK, "post-delete"),
                        ("helm.sh/hook-delete-policy", "hook-failed"),
                    ],
                )),
                live(deploy("web", &[(WAVE, "1")])),
                new(cm("not-deployed", &[])),
            ],
            &[],
        )
    });
    assert_eq!(
        outline(&plan),
        [
            "PreDelete 0: hook Job/drain",
            "PreDelete 0: wait hooks=Job/drain",
            "PreDelete 0: delete-hook Job/drain HookSucceeded",
            "Delete 1: delete Deployment/web",
            "Delete 1: wait deleted=Deployment/web",
            "Delete 0: delete Job/drain",
            "Delete 0: wait deleted=Job/drain",
            "PostDelete 0: hook Job/notify",
            "PostDelete 0: wait hooks=Job/notify",
            "PostDelete 0: delete-hook Job/notify HookFailed",
        ]
    );
    let propagation = plan.steps().find_map(|s| match s {
        Step::Delete(d) => Some(d.propagation),
        _ => None,
    });
    assert_eq!(propagation, Some(Propagation::Background));
}

#[test]
fn deletion_waits_for_a_hook_left_from_an_earlier_attempt() {
    let plan = plan_deletion(&deletion(
        vec![Resource::existing(
            job("notify", &[(HOOK, "PostDelete")]),
            job("notify", &[(HOOK, "PostDelete")]),
            false,
        )],
        &[],
    ));
    let lines = outline(&plan);
    assert!(lines.contains(&"PostDelete 0: wait hooks=Job/notify".to_string()));
    assert!(!lines.contains(&"PostDelete 0: hook Job/notify".to_string()));
}
