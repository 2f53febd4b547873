//! Applications outside the control namespace ("apps in any namespace"),
//! on the local control plane with a real Git server: an app in an enabled
//! namespace whose project lists it in `sourceNamespaces` syncs, tracked as
//! `namespace_name` so it never collides with a same-named app of the
//! control namespace, and keeps its SyncRecords beside it; an app whose
//! project does not list its namespace gets an `InvalidSpecError` and
//! deploys nothing; an app in a namespace not enabled is not touched; a
//! project that stops listing the namespace stops the app; a cascade
//! deletion removes only that app's objects.
#![allow(clippy::expect_used, clippy::unwrap_used, missing_docs)]

use std::time::Duration;

use berth_controller::controller::{Config, Controller};
use berth_testenv::TestNamespace;
use berth_testenv::git::{GitFixture, TempDir, git_daemon};
use serde_json::{Value, json};

fn kubectl(ns: &TestNamespace, args: &[&str], stdin: Option<&str>) -> String {
    berth_testenv::kubectl_ok(&ns.kubeconfig, args, stdin).unwrap()
}

fn get(ns: &TestNamespace, args: &[&str]) -> Option<Value> {
    let out = berth_testenv::kubectl(&ns.kubeconfig, args, None).unwrap();
    out.status
        .success()
        .then(|| serde_json::from_slice(&out.stdout).unwrap())
}

async fn until(what: &str, f: impl Fn() -> bool) {
    for _ in 0..900 {
        if f() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("timed out waiting for {what}");
}

fn cm(name: &str) -> String {
    format!("apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: {name}\ndata:\n  a: b\n")
}

fn app(name: &str, namespace: &str, project: &str, path: &str, url: &str, dest: &str) -> String {
    format!(
        "apiVersion: argoproj.io/v1alpha1\nkind: Application\nmetadata:\n  name: {name}\n  namespace: {namespace}\nspec:\n  project: {project}\n  source:\n    repoURL: {url}\n    targetRevision: main\n    path: {path}\n  destination:\n    server: https://kubernetes.default.svc\n    namespace: {dest}\n  syncPolicy:\n    automated: {{}}\n"
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn apps_in_other_namespaces_follow_the_projects_source_namespaces() {
    let ns = TestNamespace::new("appns").await.unwrap();
    let control = format!("{}-argocd", ns.name);
    let team = format!("{}-team", ns.name);
    let off = format!("{}-off", ns.name);
    for n in [&team, &off] {
        kubectl(&ns, &["create", "namespace", n], None);
    }
    let fixture = GitFixture::new().unwrap();
    let _repo = fixture
        .create_repo(
            "appns",
            &[
                ("team/cm.yaml", &cm("paint-team")),
                ("control/cm.yaml", &cm("paint-control")),
                ("stray/cm.yaml", &cm("paint-stray")),
                ("off/cm.yaml", &cm("paint-off")),
            ],
        )
        .unwrap();
    let daemon = git_daemon(&fixture).unwrap();
    let url = format!("git://127.0.0.1:{}/appns.git", daemon.port);
    let cache = TempDir::new("appns-cache").unwrap();
    let mut config = Config::new(&control, cache.path().to_path_buf());
    config.resync = Duration::from_secs(2);
    // A glob: the `-team` namespace is enabled, `-off` is not.
    config.application_namespaces = vec![format!("{}-te*", ns.name)];
    let controller = Controller::start(ns.client.clone(), config).await.unwrap();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let running = tokio::spawn(controller.run(async {
        let _ = stopped.await;
    }));

    let project = json!({
        "apiVersion": "argoproj.io/v1alpha1", "kind": "AppProject",
        "metadata": {"name": "team", "namespace": control},
        "spec": {"sourceRepos": ["*"], "destinations": [{"server": "*", "namespace": "*"}],
                 "sourceNamespaces": [team]},
    });
    kubectl(&ns, &["apply", "-f", "-"], Some(&project.to_string()));
    let dest = ns.name.as_str();
    let apps = [
        app("web", &team, "team", "team", &url, dest),
        app("web", &control, "default", "control", &url, dest),
        app("stray", &team, "default", "stray", &url, dest),
        app("web", &off, "team", "off", &url, dest),
    ];
    kubectl(&ns, &["apply", "-f", "-"], Some(&apps.join("---\n")));

    let app_json = |namespace: &str, name: &str| {
        get(&ns, &["get", "app", name, "-n", namespace, "-o", "json"]).unwrap()
    };
    let object = |name: &str| get(&ns, &["get", "configmap", name, "-n", dest, "-o", "json"]);
    until("both webs synced", || {
        object("paint-team").is_some() && object("paint-control").is_some()
    })
    .await;
    let tracking = |name: &str| {
        object(name).unwrap()["metadata"]["annotations"]["argocd.argoproj.io/tracking-id"]
            .as_str()
            .unwrap_or_default()
            .to_string()
    };
    assert!(
        tracking("paint-team").starts_with(&format!("{team}_web:")),
        "{}",
        tracking("paint-team")
    );
    assert!(tracking("paint-control").starts_with("web:"));
    until("the team's web reported Synced", || {
        app_json(&team, "web")["status"]["sync"]["status"] == "Synced"
    })
    .await;
    until("the team's web sync recorded beside it", || {
        get(
            &ns,
            &["get", "syncrecords.berth.io", "-n", &team, "-o", "json"],
        )
        .is_some_and(|l| {
            l["items"]
                .as_array()
                .is_some_and(|i| i.iter().any(|r| r["spec"]["application"] == "web"))
        })
    })
    .await;

    // Its project does not list the namespace: refused, nothing deployed.
    until("the stray app refused", || {
        app_json(&team, "stray")["status"]["conditions"]
            .as_array()
            .is_some_and(|c| {
                c.iter().any(|c| {
                    c["type"] == "InvalidSpecError"
                        && c["message"]
                            .as_str()
                            .is_some_and(|m| m.contains("spec.sourceNamespaces"))
                })
            })
    })
    .await;
    assert!(object("paint-stray").is_none(), "nothing of the stray app");
    // A namespace not enabled: not even a status.
    assert!(object("paint-off").is_none());
    assert!(
        app_json(&off, "web").get("status").is_none(),
        "an app in a namespace not enabled is not reconciled"
    );

    // The project stops listing the namespace: the app stops.
    kubectl(
        &ns,
        &[
            "patch",
            "appproject",
            "team",
            "-n",
            &control,
            "--type",
            "merge",
            "-p",
            r#"{"spec":{"sourceNamespaces":[]}}"#,
        ],
        None,
    );
    until("the team's web refused", || {
        app_json(&team, "web")["status"]["conditions"]
            .as_array()
            .is_some_and(|c| c.iter().any(|c| c["type"] == "InvalidSpecError"))
    })
    .await;
    kubectl(
        &ns,
        &[
            "patch",
            "appproject",
            "team",
            "-n",
            &control,
            "--type",
            "merge",
            "-p",
            &json!({"spec": {"sourceNamespaces": [team]}}).to_string(),
        ],
        None,
    );

    // Cascade deletion of the team's web: its object goes, the control
    // namespace's same-named app keeps its own.
    kubectl(
        &ns,
        &[
            "patch",
            "app",
            "web",
            "-n",
            &team,
            "--type",
            "merge",
            "-p",
            r#"{"metadata":{"finalizers":["resources-finalizer.argocd.argoproj.io"]}}"#,
        ],
        None,
    );
    kubectl(
        &ns,
        &["delete", "app", "web", "-n", &team, "--wait=false"],
        None,
    );
    until("the team's web and its object gone", || {
        object("paint-team").is_none()
            && get(&ns, &["get", "app", "web", "-n", &team, "-o", "json"]).is_none()
    })
    .await;
    assert!(
        object("paint-control").is_some(),
        "the other web's object stays"
    );

    let _ = stop.send(());
    let _ = running.await;
}
