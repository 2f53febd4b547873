//! `argocd-cm` honoured by the controller: a health script and an
//! ignoreDifferences customization.
#![allow(clippy::expect_used, clippy::unwrap_used, missing_docs)]

use std::time::Duration;

use berth_controller::controller::{Config, Controller, Stopped};
use berth_testenv::TestNamespace;
use berth_testenv::git::{GitFixture, TempDir, git_daemon};
use serde_json::Value;

fn kubectl(ns: &TestNamespace, args: &[&str], stdin: Option<&str>) -> String {
    berth_testenv::kubectl_ok(&ns.kubeconfig, args, stdin).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn customizations_from_argocd_cm() {
    let ns = TestNamespace::new("cm-dest").await.unwrap();
    let control = format!("{}-argocd", ns.name);
    kubectl(&ns, &["create", "namespace", &control], None);
    let cm = format!(
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: argocd-cm\n  namespace: {control}\ndata:\n  resource.customizations.health.ConfigMap: |\n    return {{status = \"Degraded\", message = \"from argocd-cm \" .. obj.data.color}}\n  resource.customizations.ignoreDifferences.all: |\n    jsonPointers:\n    - /data/size\n"
    );
    kubectl(&ns, &["apply", "-f", "-"], Some(&cm));

    let fixture = GitFixture::new().unwrap();
    fixture
        .create_repo(
            "cm",
            &[(
                "app/settings.yaml",
                "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: settings\ndata:\n  color: blue\n  size: large\n",
            )],
        )
        .unwrap();
    let daemon = git_daemon(&fixture).unwrap();
    let cache = TempDir::new("cm-cache").unwrap();
    let controller = Controller::start(
        ns.client.clone(),
        Config::new(&control, cache.path().to_path_buf()),
    )
    .await
    .unwrap();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let running = tokio::spawn(controller.run(async {
        let _ = stopped.await;
    }));
    let name = format!("cm-{}", &ns.name[ns.name.len() - 6..]);
    let app = format!(
        "apiVersion: argoproj.io/v1alpha1\nkind: Application\nmetadata:\n  name: {name}\n  namespace: {control}\nspec:\n  project: default\n  source:\n    repoURL: git://127.0.0.1:{}/cm.git\n    targetRevision: main\n    path: app\n  destination:\n    server: https://kubernetes.default.svc\n    namespace: {}\n",
        daemon.port, ns.name
    );
    kubectl(&ns, &["apply", "-f", "-"], Some(&app));
    kubectl(
        &ns,
        &[
            "patch",
            "app",
            &name,
            "-n",
            &control,
            "--type",
            "merge",
            "-p",
            r#"{"operation":{"sync":{}}}"#,
        ],
        None,
    );
    let status = || -> Value {
        let app: Value = serde_json::from_str(&kubectl(
            &ns,
            &["get", "app", &name, "-n", &control, "-o", "json"],
            None,
        ))
        .unwrap();
        app["status"].clone()
    };
    let wait = |what: &'static str, pred: &dyn Fn(&Value) -> bool| {
        for _ in 0..600 {
            let s = status();
            if pred(&s) {
                return s;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        panic!("timed out waiting for {what}: {:#}", status());
    };
    let s = wait("synced, with the script's health", &|s| {
        s["sync"]["status"] == "Synced" && s["health"]["status"] == "Degraded"
    });
    let resource = &s["resources"][0];
    assert_eq!(resource["health"]["message"], "from argocd-cm blue");

    // A field ignored for every kind does not make the app OutOfSync...
    kubectl(
        &ns,
        &[
            "patch",
            "configmap/settings",
            "-n",
            &ns.name,
            "-p",
            r#"{"data":{"size":"small"}}"#,
        ],
        None,
    );
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(status()["sync"]["status"], "Synced");
    // ...another one does.
    kubectl(
        &ns,
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
    wait("drift on a field not ignored", &|s| {
        s["sync"]["status"] == "OutOfSync"
    });

    // A new health script applies while running: no restart.
    let changed = cm.replace("from argocd-cm", "changed in argocd-cm");
    kubectl(&ns, &["apply", "-f", "-"], Some(&changed));
    wait("the new script's health", &|s| {
        s["resources"][0]["health"]["message"] == "changed in argocd-cm red"
    });

    let _ = stop.send(());
    assert_eq!(running.await.unwrap(), Stopped::Shutdown);
}

/// Tracking by label with a custom key and an excluded kind: settings the
/// live cache depends on, read at start and applied again (by a new start,
/// in the same process) when they change.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tracking_and_exclusions_from_argocd_cm() {
    let ns = TestNamespace::new("cm-track").await.unwrap();
    let control = format!("{}-argocd", ns.name);
    kubectl(&ns, &["create", "namespace", &control], None);
    let settings = |label: &str| {
        format!(
            "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: argocd-cm\n  namespace: {control}\ndata:\n  application.resourceTrackingMethod: label\n  application.instanceLabelKey: {label}\n  installationID: east\n  resource.exclusions: |\n    - apiGroups: ['']\n      kinds: [Secret]\n"
        )
    };
    kubectl(
        &ns,
        &["apply", "-f", "-"],
        Some(&settings("example.com/app")),
    );
    let fixture = GitFixture::new().unwrap();
    let repo = fixture
        .create_repo(
            "track",
            &[
                (
                    "app/settings.yaml",
                    "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: settings\ndata:\n  color: blue\n",
                ),
                (
                    "app/token.yaml",
                    "apiVersion: v1\nkind: Secret\nmetadata:\n  name: token\nstringData:\n  token: abc\n",
                ),
            ],
        )
        .unwrap();
    let daemon = git_daemon(&fixture).unwrap();
    let cache = TempDir::new("cm-track-cache").unwrap();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let controller = Controller::start(
        ns.client.clone(),
        Config::new(&control, cache.path().to_path_buf()),
    )
    .await
    .unwrap();
    let serving = tokio::spawn(controller.serve(async {
        let _ = stopped.await;
    }));
    let name = format!("track-{}", &ns.name[ns.name.len() - 6..]);
    let app = format!(
        "apiVersion: argoproj.io/v1alpha1\nkind: Application\nmetadata:\n  name: {name}\n  namespace: {control}\nspec:\n  project: default\n  source:\n    repoURL: git://127.0.0.1:{}/track.git\n    targetRevision: main\n    path: app\n  destination:\n    server: https://kubernetes.default.svc\n    namespace: {}\n  syncPolicy:\n    automated: {{}}\n",
        daemon.port, ns.name
    );
    kubectl(&ns, &["apply", "-f", "-"], Some(&app));
    let label = |key: &str| {
        let out = berth_testenv::kubectl(
            &ns.kubeconfig,
            &["get", "configmap", "settings", "-n", &ns.name, "-o", "json"],
            None,
        )
        .unwrap();
        if !out.status.success() {
            return None;
        }
        let cm: Value = serde_json::from_slice(&out.stdout).unwrap();
        cm["metadata"]["labels"][key].as_str().map(String::from)
    };
    for _ in 0..600 {
        if label("example.com/app").is_some() {
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_eq!(label("example.com/app").as_deref(), Some(name.as_str()));
    let installation = kubectl(
        &ns,
        &[
            "get",
            "configmap",
            "settings",
            "-n",
            &ns.name,
            "-o",
            "jsonpath={.metadata.annotations.argocd\\.argoproj\\.io/installation-id}",
        ],
        None,
    );
    assert_eq!(installation, "east", "objects carry the installation ID");
    let app_status = || -> Value {
        let app: Value = serde_json::from_str(&kubectl(
            &ns,
            &["get", "app", &name, "-n", &control, "-o", "json"],
            None,
        ))
        .unwrap();
        app["status"].clone()
    };
    // The sync that labelled the object may still be finishing.
    for _ in 0..600 {
        let s = app_status();
        if s["sync"]["status"] == "Synced" && s["operationState"]["phase"] != "Running" {
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let s = app_status();
    assert_eq!(s["sync"]["status"], "Synced", "{s:#}");
    let conditions = s["conditions"].as_array().cloned().unwrap_or_default();
    assert!(
        conditions
            .iter()
            .any(|c| c["type"] == "ExcludedResourceWarning"
                && c["message"].as_str().unwrap().contains("Secret token")),
        "{conditions:#?}"
    );
    let secret = berth_testenv::kubectl(
        &ns.kubeconfig,
        &["get", "secret", "token", "-n", &ns.name],
        None,
    )
    .unwrap();
    assert!(!secret.status.success(), "an excluded kind is not applied");

    // Another label key: the controller starts again and tracks by it.
    kubectl(
        &ns,
        &["apply", "-f", "-"],
        Some(&settings("example.com/owner")),
    );
    // The object carries the old key only: not this app's any more, so
    // the new start finds the app OutOfSync, and a sync marks it again.
    for _ in 0..600 {
        if app_status()["sync"]["status"] == "OutOfSync" {
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_eq!(app_status()["sync"]["status"], "OutOfSync");
    kubectl(
        &ns,
        &[
            "patch",
            "app",
            &name,
            "-n",
            &control,
            "--type",
            "merge",
            "-p",
            r#"{"operation":{"sync":{}}}"#,
        ],
        None,
    );
    for _ in 0..600 {
        if label("example.com/owner").is_some() {
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_eq!(label("example.com/owner").as_deref(), Some(name.as_str()));
    drop(repo);
    let _ = stop.send(());
    serving.await.unwrap().unwrap();
}
