//! Discovery, server-side apply, delete and the live cache against the
//! local control plane, with kubectl as the independent client.
#![allow(clippy::expect_used, clippy::unwrap_used, missing_docs)]

use std::time::Duration;

use berth_cluster::apply::{Applier, ApplyError, ApplyOptions, FIELD_MANAGER, Propagation};
use berth_cluster::discovery::ResourceTypes;
use berth_cluster::live::{LiveCache, ObjectKey};
use berth_engine::diff::{DiffOptions, SyncStatus, diff};
use berth_engine::tracking::Tracking;
use berth_testenv::TestNamespace;
use serde_json::{Value, json};

fn kubectl(ns: &TestNamespace, args: &[&str], stdin: Option<&str>) -> std::process::Output {
    let mut all = vec!["-n", ns.name.as_str()];
    all.extend_from_slice(args);
    berth_testenv::kubectl(&ns.kubeconfig, &all, stdin).unwrap()
}

fn kubectl_ok(ns: &TestNamespace, args: &[&str], stdin: Option<&str>) -> String {
    let out = kubectl(ns, args, stdin);
    assert!(
        out.status.success(),
        "kubectl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).to_string()
}

fn config_map(ns: &str, name: &str, data: Value) -> Value {
    json!({"apiVersion": "v1", "kind": "ConfigMap",
        "metadata": {"name": name, "namespace": ns,
            "annotations": {"argocd.argoproj.io/tracking-id": format!("shop:/ConfigMap:{ns}/{name}")}},
        "data": data})
}

#[tokio::test]
async fn discovery_knows_scopes_and_versions() {
    let ns = TestNamespace::new("cluster-discovery").await.unwrap();
    let types = ResourceTypes::discover(&ns.client).await.unwrap();
    let deploy = types.resolve("apps/v1", "Deployment").unwrap();
    assert!(deploy.namespaced);
    assert_eq!(deploy.resource.plural, "deployments");
    assert!(deploy.watchable());
    assert_eq!(types.namespaced("", "Namespace"), Some(false));
    assert_eq!(
        types.namespaced("rbac.authorization.k8s.io", "ClusterRole"),
        Some(false)
    );
    assert!(types.resolve("apps/v9", "Deployment").is_none());
    assert!(types.resolve("example.com/v1", "Widget").is_none());
}

#[tokio::test]
async fn apply_dry_run_and_delete() {
    let ns = TestNamespace::new("cluster-apply").await.unwrap();
    let types = ResourceTypes::discover(&ns.client).await.unwrap();
    let applier = Applier::new(ns.client.clone(), FIELD_MANAGER);
    let cm = config_map(&ns.name, "settings", json!({"color": "blue"}));

    // Create: kubectl sees it, owned by Berth's field manager.
    let stored = applier
        .apply(&types, &cm, ApplyOptions::default())
        .await
        .unwrap();
    assert!(stored.pointer("/metadata/uid").is_some());
    let seen = kubectl_ok(
        &ns,
        &[
            "get",
            "configmap/settings",
            "-o",
            "json",
            "--show-managed-fields",
        ],
        None,
    );
    let seen: Value = serde_json::from_str(&seen).unwrap();
    assert_eq!(seen["data"]["color"], "blue");
    assert_eq!(
        seen["metadata"]["managedFields"][0]["manager"],
        FIELD_MANAGER
    );

    // A dry run predicts the change without making it; the engine's diff
    // against the prediction sees exactly that change.
    let changed = config_map(&ns.name, "settings", json!({"color": "green"}));
    let predicted = applier
        .apply(
            &types,
            &changed,
            ApplyOptions {
                dry_run: true,
                ..ApplyOptions::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(predicted["data"]["color"], "green");
    let live: Value = serde_json::from_str(&kubectl_ok(
        &ns,
        &["get", "configmap/settings", "-o", "json"],
        None,
    ))
    .unwrap();
    assert_eq!(live["data"]["color"], "blue", "dry run changed nothing");
    let d = diff(
        Some(&changed),
        Some(&live),
        Some(&predicted),
        &DiffOptions::default(),
    )
    .unwrap();
    assert_eq!(d.status, SyncStatus::OutOfSync);
    assert_eq!(d.fields.len(), 1, "{:?}", d.fields);
    assert_eq!(d.fields[0].path, ".data.color");
    let same = applier
        .apply(
            &types,
            &cm,
            ApplyOptions {
                dry_run: true,
                ..ApplyOptions::default()
            },
        )
        .await
        .unwrap();
    let d = diff(Some(&cm), Some(&live), Some(&same), &DiffOptions::default()).unwrap();
    assert_eq!(d.status, SyncStatus::Synced, "{:?}", d.fields);

    // Applying the same object again changes nothing.
    let again = applier
        .apply(&types, &cm, ApplyOptions::default())
        .await
        .unwrap();
    assert_eq!(
        again["metadata"]["resourceVersion"],
        stored["metadata"]["resourceVersion"]
    );

    // Delete honours the uid precondition: a re-created object survives a
    // prune aimed at the old one.
    kubectl_ok(&ns, &["delete", "configmap/settings"], None);
    kubectl_ok(
        &ns,
        &[
            "create",
            "configmap",
            "settings",
            "--from-literal=owner=someone-else",
        ],
        None,
    );
    let err = applier
        .delete(&types, &stored, Propagation::Foreground)
        .await;
    assert!(matches!(err, Err(ApplyError::Replaced { .. })), "{err:?}");
    let still = kubectl_ok(
        &ns,
        &["get", "configmap/settings", "-o", "jsonpath={.data.owner}"],
        None,
    );
    assert_eq!(still, "someone-else");
    let current: Value = serde_json::from_str(&kubectl_ok(
        &ns,
        &["get", "configmap/settings", "-o", "json"],
        None,
    ))
    .unwrap();
    applier
        .delete(&types, &current, Propagation::Background)
        .await
        .unwrap();
    let out = kubectl(&ns, &["get", "configmap/settings"], None);
    assert!(!out.status.success(), "deleted");
    // Deleting what is already gone is fine.
    applier
        .delete(&types, &current, Propagation::Background)
        .await
        .unwrap();
}

#[tokio::test]
async fn apply_errors_name_the_object_and_what_to_do() {
    let ns = TestNamespace::new("cluster-apply-errors").await.unwrap();
    let types = ResourceTypes::discover(&ns.client).await.unwrap();
    let applier = Applier::new(ns.client.clone(), FIELD_MANAGER);

    let widget = json!({"apiVersion": "example.com/v1", "kind": "Widget", "metadata": {"name": "w", "namespace": ns.name}});
    let err = applier
        .apply(&types, &widget, ApplyOptions::default())
        .await
        .unwrap_err();
    assert!(matches!(err, ApplyError::UnknownType { .. }), "{err}");
    assert!(err.to_string().contains("Widget"), "{err}");
    assert!(
        err.to_string().contains("CustomResourceDefinition"),
        "{err}"
    );

    let no_ns = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c"}});
    let err = applier
        .apply(&types, &no_ns, ApplyOptions::default())
        .await
        .unwrap_err();
    assert!(matches!(err, ApplyError::NoNamespace { .. }), "{err}");

    let invalid = json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web", "namespace": ns.name},
        "spec": {"replicas": -1, "selector": {"matchLabels": {"a": "b"}}, "template": {"metadata": {"labels": {"a": "b"}}, "spec": {"containers": [{"name": "c", "image": "x"}]}}}});
    let err = applier
        .apply(&types, &invalid, ApplyOptions::default())
        .await
        .unwrap_err();
    match &err {
        ApplyError::Refused { object, code, .. } => {
            assert_eq!(*code, 422);
            assert_eq!(object, &format!("Deployment {}/web", ns.name));
        }
        other => panic!("{other}"),
    }
    assert!(err.to_string().contains("spec.replicas"), "{err}");

    // A field another manager set: conflict, named; Force takes it.
    let cm = config_map(&ns.name, "shared", json!({"color": "blue"}));
    kubectl_ok(
        &ns,
        &[
            "apply",
            "--server-side",
            "--field-manager",
            "someone-else",
            "-f",
            "-",
        ],
        Some(&cm.to_string()),
    );
    let mine = config_map(&ns.name, "shared", json!({"color": "red"}));
    let err = applier
        .apply(&types, &mine, ApplyOptions::default())
        .await
        .unwrap_err();
    match &err {
        ApplyError::Conflict { message, .. } => {
            assert!(message.contains("someone-else"), "{message}")
        }
        other => panic!("{other}"),
    }
    let taken = applier
        .apply(
            &types,
            &mine,
            ApplyOptions {
                force: true,
                ..ApplyOptions::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(taken["data"]["color"], "red");
}

async fn eventually<F: Fn() -> bool>(what: &str, f: F) {
    for _ in 0..300 {
        if f() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("timed out waiting for {what}");
}

#[tokio::test]
async fn objects_there_before_the_cache_starts_have_their_type() {
    let ns = TestNamespace::new("cluster-listed").await.unwrap();
    let deploy = json!({"apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": "web", "namespace": ns.name},
        "spec": {"replicas": 0, "selector": {"matchLabels": {"app": "web"}},
            "template": {"metadata": {"labels": {"app": "web"}},
                "spec": {"containers": [{"name": "web", "image": "registry.example/web:1"}]}}}});
    kubectl_ok(&ns, &["apply", "-f", "-"], Some(&deploy.to_string()));
    // Listed, not watched: list items carry no apiVersion or kind.
    let types = ResourceTypes::discover(&ns.client).await.unwrap();
    let cache = LiveCache::start(&ns.client, &types, Tracking::default(), |t| {
        t.resource.kind == "Deployment"
    });
    assert!(cache.wait_ready(Duration::from_secs(30)).await);
    let key = ObjectKey {
        group: "apps".into(),
        kind: "Deployment".into(),
        namespace: ns.name.clone(),
        name: "web".into(),
    };
    let cached = cache.get(&key).expect("found under its group");
    assert_eq!(cached["apiVersion"], "apps/v1");
    assert_eq!(cached["kind"], "Deployment");
}

#[tokio::test]
async fn live_cache_indexes_by_tracking_and_sees_changes() {
    let ns = TestNamespace::new("cluster-live").await.unwrap();
    let types = ResourceTypes::discover(&ns.client).await.unwrap();
    let cache = LiveCache::start(&ns.client, &types, Tracking::default(), |t| {
        // Keep the test light: the kinds it uses.
        ["ConfigMap", "Deployment", "ReplicaSet", "Pod"].contains(&t.resource.kind.as_str())
    });
    assert!(cache.wait_ready(Duration::from_secs(30)).await);
    assert!(cache.errors().is_empty(), "{:?}", cache.errors());
    let mut changes = cache.subscribe();

    let cm = config_map(&ns.name, "tracked", json!({"a": "1"}));
    kubectl_ok(&ns, &["apply", "-f", "-"], Some(&cm.to_string()));
    // A copy whose tracking id names another object is not the app's.
    let mut copy = config_map(&ns.name, "copy", json!({"a": "1"}));
    copy["metadata"]["annotations"]["argocd.argoproj.io/tracking-id"] =
        json!(format!("shop:/ConfigMap:{}/tracked", ns.name));
    kubectl_ok(&ns, &["apply", "-f", "-"], Some(&copy.to_string()));
    kubectl_ok(&ns, &["create", "configmap", "untracked"], None);

    let key = ObjectKey {
        group: String::new(),
        kind: "ConfigMap".into(),
        namespace: ns.name.clone(),
        name: "tracked".into(),
    };
    eventually("the tracked ConfigMap", || cache.get(&key).is_some()).await;
    let names: Vec<String> = cache
        .app_objects("shop")
        .iter()
        .filter(|o| o["metadata"]["namespace"] == ns.name.as_str())
        .map(|o| o["metadata"]["name"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(names, ["tracked"]);
    let cached = cache.get(&key).unwrap();
    assert!(
        cached.pointer("/metadata/managedFields").is_none(),
        "stripped"
    );

    // A change by hand is announced, naming the app.
    kubectl_ok(
        &ns,
        &["patch", "configmap/tracked", "-p", r#"{"data":{"a":"2"}}"#],
        None,
    );
    let change = tokio::time::timeout(Duration::from_secs(15), async {
        loop {
            let c = changes.recv().await.unwrap();
            if c.key == key && !c.deleted {
                let now = cache.get(&key).unwrap();
                if now["data"]["a"] == "2" {
                    return c;
                }
            }
        }
    })
    .await
    .expect("change announced");
    assert_eq!(change.app.as_deref(), Some("shop"));

    kubectl_ok(&ns, &["delete", "configmap/tracked"], None);
    eventually("the deletion", || cache.get(&key).is_none()).await;
    assert!(
        cache
            .app_objects("shop")
            .iter()
            .all(|o| o["metadata"]["namespace"] != ns.name.as_str())
    );
}

#[tokio::test]
async fn types_the_controller_may_not_list_are_reported_not_fatal() {
    let ns = TestNamespace::new("cluster-rbac").await.unwrap();
    // A user who may list and watch ConfigMaps cluster-wide, and nothing else.
    let role = r#"
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRole
metadata: {name: berth-test-cm-reader}
rules:
- apiGroups: [""]
  resources: [configmaps]
  verbs: [list, watch, get]
"#;
    kubectl_ok(&ns, &["apply", "-f", "-"], Some(role));
    let user = format!("{}-reader", ns.name);
    kubectl_ok(
        &ns,
        &[
            "create",
            "clusterrolebinding",
            &user,
            "--clusterrole=berth-test-cm-reader",
            &format!("--user={user}"),
        ],
        None,
    );
    let kubeconfig = ns.issue_user(&user, &[]).unwrap();
    let client = berth_testenv::client_for(&kubeconfig).await.unwrap();
    // Discovery is open to every authenticated user.
    let types = ResourceTypes::discover(&client).await.unwrap();
    let cache = LiveCache::start(&client, &types, Tracking::default(), |t| {
        ["ConfigMap", "Secret"].contains(&t.resource.kind.as_str())
    });
    assert!(cache.wait_ready(Duration::from_secs(30)).await);
    let errors = cache.errors();
    assert_eq!(errors.len(), 1, "{errors:?}");
    assert_eq!(errors[0].0, (String::new(), "Secret".to_string()));
    assert!(errors[0].1.contains("forbidden"), "{}", errors[0].1);
    // ConfigMaps are still watched.
    kubectl_ok(
        &ns,
        &["apply", "-f", "-"],
        Some(&config_map(&ns.name, "visible", json!({})).to_string()),
    );
    let key = ObjectKey {
        group: String::new(),
        kind: "ConfigMap".into(),
        namespace: ns.name.clone(),
        name: "visible".into(),
    };
    eventually("a ConfigMap despite the forbidden Secrets", || {
        cache.get(&key).is_some()
    })
    .await;
}
