//! Syncs on the local control plane with a real Git server: a requested
//! operation with a PreSync hook, then the automated policy (new commits,
//! prune, self-heal), and the empty-state guard.
#![allow(clippy::expect_used, clippy::unwrap_used, missing_docs)]

use std::time::Duration;

mod common;

use common::{Harness, exists, kubectl, until};
use serde_json::Value;

const CONFIG: &str =
    "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: settings\ndata:\n  color: blue\n";
const DEPLOY: &str = "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: web\nspec:\n  replicas: 2\n  selector:\n    matchLabels: {app: web}\n  template:\n    metadata:\n      labels: {app: web}\n    spec:\n      containers:\n      - name: web\n        image: registry.example/web:1.0\n";
const HOOK: &str = "apiVersion: batch/v1\nkind: Job\nmetadata:\n  name: migrate\n  annotations:\n    argocd.argoproj.io/hook: PreSync\n    argocd.argoproj.io/hook-delete-policy: HookSucceeded\nspec:\n  template:\n    spec:\n      restartPolicy: Never\n      containers:\n      - name: migrate\n        image: registry.example/migrate:1.0\n";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requested_and_automated_syncs() {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::new("berth_controller=info"))
        .with_test_writer()
        .try_init();
    let h = Harness::start(
        "web",
        &[
            ("app/config.yaml", CONFIG),
            ("app/deploy.yaml", DEPLOY),
            ("app/hook.yaml", HOOK),
        ],
        "",
        Duration::from_secs(3),
    )
    .await;
    let (ns, control, name, repo) = (&h.ns, &h.control, &h.name, &h.repo);
    let get_app = || h.app();
    until("OutOfSync", || {
        get_app()["status"]["sync"]["status"] == "OutOfSync"
    })
    .await;
    assert!(!exists(ns, "configmap/settings"), "manual: nothing applied");

    // A requested sync, as `kubectl patch` asks for one.
    kubectl(
        ns,
        &[
            "patch",
            "app",
            name,
            "-n",
            control,
            "--type",
            "merge",
            "-p",
            r#"{"operation":{"sync":{"prune":true}}}"#,
        ],
        None,
    );
    until("the sync to finish", || {
        get_app()["status"]["operationState"]["phase"] == "Succeeded"
    })
    .await;
    let app_now = get_app();
    assert!(app_now.get("operation").is_none(), "request cleared");
    let results = app_now["status"]["operationState"]["syncResult"]["resources"]
        .as_array()
        .unwrap()
        .clone();
    let order: Vec<String> = results
        .iter()
        .map(|r| {
            format!(
                "{} {}",
                r["syncPhase"].as_str().unwrap(),
                r["kind"].as_str().unwrap()
            )
        })
        .collect();
    assert_eq!(
        order,
        ["PreSync Job", "Sync ConfigMap", "Sync Deployment"],
        "{results:#?}"
    );
    assert_eq!(app_now["status"]["history"].as_array().unwrap().len(), 1);
    let events = kubectl(
        ns,
        &[
            "get",
            "events",
            "-n",
            control,
            "--field-selector",
            &format!("involvedObject.name={name}"),
            "-o",
            "json",
        ],
        None,
    );
    let events: Value = serde_json::from_str(&events).unwrap();
    let reasons: Vec<String> = events["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            format!(
                "{} {}",
                e["reason"].as_str().unwrap_or_default(),
                e["message"].as_str().unwrap_or_default()
            )
        })
        .collect();
    assert!(
        reasons
            .iter()
            .any(|r| r.starts_with("OperationStarted Initiated sync to")),
        "{reasons:?}"
    );
    assert!(
        reasons
            .iter()
            .any(|r| r.starts_with("OperationCompleted Sync operation to")
                && r.ends_with("succeeded")),
        "{reasons:?}"
    );
    assert!(exists(ns, "configmap/settings") && exists(ns, "deployment/web"));
    until("the hook deleted (HookSucceeded)", || {
        !exists(ns, "job/migrate")
    })
    .await;
    until("Synced and Healthy", || {
        let s = get_app()["status"].clone();
        s["sync"]["status"] == "Synced" && s["health"]["status"] == "Healthy"
    })
    .await;
    // The request ran once, even though copies of the Application read
    // before it was cleared may still carry it.
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(
        get_app()["status"]["history"].as_array().unwrap().len(),
        1,
        "a requested operation runs once"
    );

    // Automated with prune and self-heal: a commit that changes one object
    // and removes another is synced without being asked.
    kubectl(
        ns,
        &[
            "patch",
            "app",
            name,
            "-n",
            control,
            "--type",
            "merge",
            "-p",
            r#"{"spec":{"syncPolicy":{"automated":{"prune":true,"selfHeal":true}}}}"#,
        ],
        None,
    );
    repo.commit(
        &[("app/config.yaml", &CONFIG.replace("blue", "green"))],
        "green",
    )
    .unwrap();
    std::fs::remove_file(repo.work.join("app/deploy.yaml")).unwrap();
    repo.commit(&[], "drop the deployment").unwrap();
    repo.push("main").unwrap();
    let color = || {
        kubectl(
            ns,
            &[
                "get",
                "configmap/settings",
                "-n",
                &ns.name,
                "-o",
                "jsonpath={.data.color}",
            ],
            None,
        )
    };
    until("the new commit synced", || color() == "green").await;
    until("the removed Deployment pruned", || {
        !exists(ns, "deployment/web")
    })
    .await;

    // Self-heal reverts a change by hand.
    kubectl(
        ns,
        &[
            "patch",
            "configmap/settings",
            "-n",
            &ns.name,
            "-p",
            r#"{"data":{"color":"red"}}"#,
        ],
        None,
    );
    for _ in 0..300 {
        if color() == "green" {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    if color() != "green" {
        panic!("drift not reverted: {:#}", get_app()["status"]);
    }

    // An empty desired state never prunes everything without allowEmpty.
    for file in ["app/config.yaml", "app/hook.yaml"] {
        std::fs::remove_file(repo.work.join(file)).unwrap();
    }
    repo.commit(&[("app/README.md", "nothing here\n")], "empty")
        .unwrap();
    repo.push("main").unwrap();
    until("the refusal", || {
        get_app()["status"]["conditions"]
            .as_array()
            .is_some_and(|c| {
                c.iter().any(|c| {
                    c["type"] == "SyncError"
                        && c["message"]
                            .as_str()
                            .unwrap_or_default()
                            .contains("allowEmpty")
                })
            })
    })
    .await;
    assert!(exists(ns, "configmap/settings"), "nothing pruned");

    h.finish().await;
}

const FAILING_HOOK: &str = "apiVersion: batch/v1\nkind: Job\nmetadata:\n  name: migrate\n  annotations:\n    argocd.argoproj.io/hook: PreSync\nspec:\n  backoffLimit: 0\n  template:\n    metadata:\n      annotations:\n        testenv.berth.io/fault: Failed\n    spec:\n      restartPolicy: Never\n      containers:\n      - name: migrate\n        image: registry.example/migrate:1.0\n";
const ON_FAILURE: &str = "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: sync-failed\n  annotations:\n    argocd.argoproj.io/hook: SyncFail\ndata:\n  note: the sync failed\n";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_presync_hook_stops_the_sync_retries_and_runs_syncfail_hooks() {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::new("berth_controller=info"))
        .with_test_writer()
        .try_init();
    let h = Harness::start(
        "failing",
        &[
            ("app/config.yaml", CONFIG),
            ("app/hook.yaml", FAILING_HOOK),
            ("app/on-failure.yaml", ON_FAILURE),
        ],
        "    automated: {}\n    retry:\n      limit: 1\n      backoff: {duration: 1s, factor: 2, maxDuration: 5s}\n",
        Duration::from_secs(30),
    )
    .await;
    let ns = &h.ns;
    let get_app = || h.app();
    until("the sync to fail", || {
        get_app()["status"]["operationState"]["phase"] == "Failed"
    })
    .await;
    let state = get_app()["status"]["operationState"].clone();
    assert_eq!(state["retryCount"], 1, "{state:#}");
    let message = state["message"].as_str().unwrap();
    assert!(
        message.contains("PreSync hook") && message.contains("migrate"),
        "{message}"
    );
    // The Sync phase never ran; the SyncFail hook did.
    assert!(
        !exists(ns, "configmap/settings"),
        "nothing applied after the failed hook"
    );
    assert!(exists(ns, "configmap/sync-failed"), "SyncFail hook ran");
    // The hooks left behind are listed as hooks, not as resources to prune.
    until("the failed hook listed as a hook", || {
        get_app()["status"]["resources"]
            .as_array()
            .is_some_and(|r| {
                r.iter().any(|r| {
                    r["kind"] == "Job"
                        && r["hook"] == true
                        && r["health"]["status"] == "Degraded"
                        && r.get("requiresPruning").is_none()
                })
            })
    })
    .await;
    // Automated: a failed revision is not retried again and again.
    tokio::time::sleep(Duration::from_secs(4)).await;
    assert_eq!(
        get_app()["status"]["operationState"]["finishedAt"],
        state["finishedAt"],
        "no new attempt for the same revision"
    );
    assert!(
        get_app()["status"]["history"]
            .as_array()
            .is_none_or(|h| h.is_empty())
    );

    h.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_prune_a_removed_object_is_left_and_marked() {
    let extra =
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: extra\ndata:\n  kept: \"yes\"\n";
    let h = Harness::start(
        "noprune",
        &[("app/config.yaml", CONFIG), ("app/extra.yaml", extra)],
        "    automated: {}\n",
        Duration::from_secs(3),
    )
    .await;
    let ns = &h.ns;
    until("the first automated sync", || {
        h.app()["status"]["sync"]["status"] == "Synced"
    })
    .await;
    assert!(exists(ns, "configmap/extra"));

    std::fs::remove_file(h.repo.work.join("app/extra.yaml")).unwrap();
    let sha = h.repo.commit(&[], "drop extra").unwrap();
    h.repo.push("main").unwrap();
    until("the new revision synced without pruning", || {
        let s = h.app()["status"].clone();
        s["operationState"]["syncResult"]["revision"] == sha.as_str()
            && s["operationState"]["phase"] == "Succeeded"
    })
    .await;
    assert!(exists(ns, "configmap/extra"), "not pruned without prune");
    until("marked as requiring pruning", || {
        let s = h.app()["status"].clone();
        s["sync"]["status"] == "OutOfSync"
            && s["resources"].as_array().is_some_and(|r| {
                r.iter()
                    .any(|r| r["name"] == "extra" && r["requiresPruning"] == true)
            })
    })
    .await;
    h.finish().await;
}

fn waved(name: &str, wave: i32) -> String {
    format!(
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: {name}\n  annotations:\n    argocd.argoproj.io/sync-wave: \"{wave}\"\ndata:\n  wave: \"{wave}\"\n"
    )
}

const CRASHING: &str = "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: crashing\n  annotations:\n    argocd.argoproj.io/sync-wave: \"1\"\nspec:\n  replicas: 1\n  progressDeadlineSeconds: 3\n  selector:\n    matchLabels: {app: crashing}\n  template:\n    metadata:\n      labels: {app: crashing}\n      annotations:\n        testenv.berth.io/fault: CrashLoopBackOff\n    spec:\n      containers:\n      - name: web\n        image: registry.example/web:1.0\n";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn waves_run_in_order_and_crash_looping_pods_stop_the_sync_degraded() {
    let h = Harness::start(
        "waves",
        &[
            ("app/early.yaml", &waved("early", -1)),
            ("app/zero.yaml", &waved("zero", 0)),
            ("app/crashing.yaml", CRASHING),
            ("app/late.yaml", &waved("late", 2)),
        ],
        "",
        Duration::from_secs(30),
    )
    .await;
    until("compared", || {
        h.app()["status"]["sync"]["status"] == "OutOfSync"
    })
    .await;
    h.request_sync();
    // The degraded wave takes seconds to fail: meanwhile the status shows
    // where the sync is and what it has done.
    until("progress while the sync runs", || {
        let app = h.app();
        let state = &app["status"]["operationState"];
        state["phase"] == "Running"
            && state["message"]
                .as_str()
                .is_some_and(|m| m.contains("Sync wave 1"))
            && state["syncResult"]["resources"]
                .as_array()
                .is_some_and(|r| r.iter().any(|r| r["name"] == "zero"))
    })
    .await;
    // Berth's extension: every wave with its steps done, the current one
    // (wave 1) started and the later one (wave 2) not.
    let running = h.app();
    let groups = running["status"]["operationState"]["berth"]["progress"]["groups"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    let shape: Vec<(String, i64)> = groups
        .iter()
        .map(|g| {
            (
                g["phase"].as_str().unwrap().to_string(),
                g["wave"].as_i64().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        shape,
        [
            ("Sync".to_string(), -1),
            ("Sync".to_string(), 0),
            ("Sync".to_string(), 1),
            ("Sync".to_string(), 2)
        ],
        "{groups:?}"
    );
    assert_eq!(
        groups[1]["done"], groups[1]["total"],
        "wave 0 done: {groups:?}"
    );
    assert_eq!(groups[3]["done"], 0, "wave 2 not started: {groups:?}");
    until("the sync to fail on the degraded wave", || {
        h.app()["status"]["operationState"]["phase"] == "Failed"
    })
    .await;
    let app = h.app();
    let state = &app["status"]["operationState"];
    assert!(
        state["berth"].get("progress").is_none(),
        "the progress ends with the sync: {}",
        state["berth"]
    );
    let message = state["message"].as_str().unwrap();
    assert!(
        message.contains("crashing") && message.contains("Degraded"),
        "{message}"
    );
    let applied: Vec<&str> = state["syncResult"]["resources"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["name"].as_str().unwrap())
        .collect();
    assert_eq!(applied, ["early", "zero", "crashing"], "waves in order");
    assert!(
        !exists(&h.ns, "configmap/late"),
        "the wave after a degraded one never runs"
    );
    until("the app Degraded", || {
        h.app()["status"]["health"]["status"] == "Degraded"
    })
    .await;
    h.finish().await;
}

fn replaced(value: &str) -> String {
    format!(
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: replaced\n  annotations:\n    argocd.argoproj.io/sync-options: Replace=true\ndata:\n  value: {value}\n"
    )
}

fn frozen(value: &str) -> String {
    format!(
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: frozen\n  annotations:\n    argocd.argoproj.io/sync-options: Force=true\nimmutable: true\ndata:\n  value: {value}\n"
    )
}

fn json_of(h: &Harness, what: &str) -> Value {
    serde_json::from_str(&kubectl(
        &h.ns,
        &["get", what, "-n", &h.ns.name, "-o", "json"],
        None,
    ))
    .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replace_and_force_sync_options() {
    let h = Harness::start(
        "replace",
        &[
            ("app/replaced.yaml", &replaced("a")),
            ("app/frozen.yaml", &frozen("v1")),
        ],
        "",
        Duration::from_secs(30),
    )
    .await;
    let sync = |count: usize| {
        h.request_sync();
        let h = &h;
        async move {
            until("the sync to succeed", || {
                let app = h.app();
                app["status"]["history"].as_array().map(|a| a.len()) == Some(count)
                    && app.get("operation").is_none()
            })
            .await;
            let app = h.app();
            assert_eq!(
                app["status"]["operationState"]["phase"], "Succeeded",
                "{:#}",
                app["status"]["operationState"]
            );
        }
    };
    until("compared", || {
        h.app()["status"]["sync"]["status"] == "OutOfSync"
    })
    .await;
    sync(1).await;
    let first_uid = json_of(&h, "configmap/frozen")["metadata"]["uid"].clone();
    kubectl(
        &h.ns,
        &[
            "label",
            "configmap",
            "replaced",
            "-n",
            &h.ns.name,
            "by-hand=yes",
        ],
        None,
    );
    h.repo
        .commit(
            &[
                ("app/replaced.yaml", &replaced("b")),
                ("app/frozen.yaml", &frozen("v2")),
            ],
            "change both",
        )
        .unwrap();
    h.repo.push("main").unwrap();
    sync(2).await;
    let r = json_of(&h, "configmap/replaced");
    assert_eq!(r["data"]["value"], "b");
    assert!(
        r["metadata"]["labels"].get("by-hand").is_none(),
        "a replace drops what Git does not declare: {:#}",
        r["metadata"]
    );
    let f = json_of(&h, "configmap/frozen");
    assert_eq!(
        f["data"]["value"], "v2",
        "an immutable object is recreated with Force=true"
    );
    assert_ne!(f["metadata"]["uid"], first_uid);
    let results = h.app()["status"]["operationState"]["syncResult"]["resources"].clone();
    let messages: Vec<&str> = results
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["message"].as_str().unwrap())
        .collect();
    assert!(
        messages.contains(&"configmap replaced replaced"),
        "{messages:?}"
    );
    assert!(
        messages.contains(&"configmap frozen recreated"),
        "{messages:?}"
    );
    h.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_app_installs_a_crd_and_manages_its_resources() {
    let group = format!(
        "t{}.example.com",
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos()
    );
    let crd = format!(
        "apiVersion: apiextensions.k8s.io/v1\nkind: CustomResourceDefinition\nmetadata:\n  name: widgets.{group}\nspec:\n  group: {group}\n  names: {{kind: Widget, plural: widgets, singular: widget, listKind: WidgetList}}\n  scope: Namespaced\n  versions:\n  - name: v1\n    served: true\n    storage: true\n    schema:\n      openAPIV3Schema:\n        type: object\n        x-kubernetes-preserve-unknown-fields: true\n"
    );
    let widget = |size: &str| {
        format!(
            "apiVersion: {group}/v1\nkind: Widget\nmetadata:\n  name: gear\n  annotations:\n    argocd.argoproj.io/sync-options: SkipDryRunOnMissingResource=true\nspec:\n  size: {size}\n"
        )
    };
    let h = Harness::start(
        "crd",
        &[
            ("app/crd.yaml", &crd),
            ("app/widget.yaml", &widget("small")),
        ],
        "",
        Duration::from_secs(30),
    )
    .await;
    until("compared", || {
        h.app()["status"]["sync"]["status"] == "OutOfSync"
    })
    .await;
    h.request_sync();
    until("synced, the custom resource included", || {
        let app = h.app();
        app["status"]["operationState"]["phase"] == "Succeeded"
            && app["status"]["sync"]["status"] == "Synced"
            && app["status"]["resources"].as_array().is_some_and(|r| {
                r.iter()
                    .any(|r| r["kind"] == "Widget" && r["status"] == "Synced")
            })
    })
    .await;
    // The new type is watched: a change by hand is seen.
    kubectl(
        &h.ns,
        &[
            "patch",
            &format!("widgets.{group}"),
            "gear",
            "-n",
            &h.ns.name,
            "--type",
            "merge",
            "-p",
            r#"{"spec":{"size":"large"}}"#,
        ],
        None,
    );
    until("drift on the custom resource", || {
        h.app()["status"]["resources"].as_array().is_some_and(|r| {
            r.iter()
                .any(|r| r["kind"] == "Widget" && r["status"] == "OutOfSync")
        })
    })
    .await;
    kubectl(
        &h.ns,
        &["delete", "crd", &format!("widgets.{group}"), "--wait=false"],
        None,
    );
    h.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn self_heal_reverts_kubectl_scale_of_a_deployment() {
    let h = Harness::start(
        "scale-heal",
        &[("app/deploy.yaml", DEPLOY)],
        "    automated:\n      selfHeal: true\n",
        Duration::from_secs(30),
    )
    .await;
    let replicas = || {
        kubectl(
            &h.ns,
            &[
                "get",
                "deployment/web",
                "-n",
                &h.ns.name,
                "-o",
                "jsonpath={.spec.replicas}",
            ],
            None,
        )
    };
    until("synced", || {
        exists(&h.ns, "deployment/web") && h.app()["status"]["sync"]["status"] == "Synced"
    })
    .await;
    kubectl(
        &h.ns,
        &["scale", "deployment/web", "-n", &h.ns.name, "--replicas=5"],
        None,
    );
    until("kubectl scale reverted", || replicas() == "2").await;
    until("Synced again", || {
        h.app()["status"]["sync"]["status"] == "Synced"
    })
    .await;
    h.finish().await;
}
