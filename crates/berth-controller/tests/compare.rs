//! The controller on the local control plane with a real Git server: an
//! Application is compared and its status reported; drift shows; a broken
//! source is a condition and nothing is deleted.
#![allow(clippy::expect_used, clippy::unwrap_used, missing_docs)]

use std::process::Command;
use std::time::Duration;

use berth_controller::controller::{Config, Controller};
use berth_testenv::TestNamespace;
use berth_testenv::git::{GitFixture, TempDir, git_daemon};
use serde_json::Value;

fn kubectl(ns: &TestNamespace, args: &[&str], stdin: Option<&str>) -> String {
    berth_testenv::kubectl_ok(&ns.kubeconfig, args, stdin).unwrap()
}

const CONFIG: &str =
    "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: shop-config\ndata:\n  color: blue\n";
const DEPLOY: &str = "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: shop\nspec:\n  replicas: 2\n  selector:\n    matchLabels: {app: shop}\n  template:\n    metadata:\n      labels: {app: shop}\n    spec:\n      containers:\n      - name: shop\n        image: registry.example/shop:1.0\n";

async fn status_where(
    ns: &TestNamespace,
    control: &str,
    app: &str,
    what: &str,
    pred: impl Fn(&Value) -> bool,
) -> Value {
    for _ in 0..600 {
        let out = kubectl(ns, &["get", "app", app, "-n", control, "-o", "json"], None);
        let v: Value = serde_json::from_str(&out).unwrap();
        if pred(&v["status"]) {
            return v["status"].clone();
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let out = kubectl(ns, &["get", "app", app, "-n", control, "-o", "json"], None);
    panic!("timed out waiting for {what}: {out}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_follows_git_and_the_cluster() {
    let ns = TestNamespace::new("ctl-dest").await.unwrap();
    let control = format!("{}-argocd", ns.name);
    let fixture = GitFixture::new().unwrap();
    let repo = fixture
        .create_repo(
            "shop",
            &[("app/config.yaml", CONFIG), ("app/deploy.yaml", DEPLOY)],
        )
        .unwrap();
    let daemon = git_daemon(&fixture).unwrap();
    let url = format!("git://127.0.0.1:{}/shop.git", daemon.port);
    let first = String::from_utf8(
        Command::new("git")
            .arg("-C")
            .arg(&repo.bare)
            .args(["rev-parse", "HEAD"])
            .output()
            .unwrap()
            .stdout,
    )
    .unwrap()
    .trim()
    .to_string();

    let cache = TempDir::new("ctl-cache").unwrap();
    let mut config = Config::new(&control, cache.path().to_path_buf());
    config.resync = Duration::from_secs(5);
    let controller = Controller::start(ns.client.clone(), config).await.unwrap();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let running = tokio::spawn(controller.run(async {
        let _ = stopped.await;
    }));

    let app_name = format!("shop-{}", &ns.name[ns.name.len() - 6..]);
    let app = format!(
        "apiVersion: argoproj.io/v1alpha1\nkind: Application\nmetadata:\n  name: {app_name}\n  namespace: {control}\nspec:\n  project: default\n  source:\n    repoURL: {url}\n    targetRevision: main\n    path: app\n  destination:\n    server: https://kubernetes.default.svc\n    namespace: {}\n",
        ns.name
    );
    kubectl(&ns, &["apply", "-f", "-"], Some(&app));

    // Nothing deployed yet: OutOfSync and Missing, at Git's commit.
    let status = status_where(&ns, &control, &app_name, "OutOfSync", |s| {
        s["sync"]["status"] == "OutOfSync"
    })
    .await;
    assert_eq!(status["sync"]["revision"], first.as_str());
    assert_eq!(status["health"]["status"], "Missing");
    let resources = status["resources"].as_array().unwrap();
    assert_eq!(resources.len(), 2, "{status:#}");
    assert!(
        resources
            .iter()
            .all(|r| r["status"] == "OutOfSync" && r["health"]["status"] == "Missing")
    );
    assert!(status["reconciledAt"].as_str().unwrap().ends_with('Z'));

    // Deployed by hand exactly as Git says (with the app's tracking): Synced
    // and, once the simulated pods are ready, Healthy.
    let tracked = |text: &str, kind: &str, name: &str| {
        text.replacen(
            "metadata:\n",
            &format!(
                "metadata:\n  namespace: {ns}\n  annotations:\n    argocd.argoproj.io/tracking-id: \"{app_name}:{group}/{kind}:{ns}/{name}\"\n",
                ns = ns.name,
                group = if kind == "Deployment" { "apps" } else { "" },
            ),
            1,
        )
    };
    kubectl(
        &ns,
        &[
            "apply",
            "--server-side",
            "--field-manager",
            "berth",
            "-f",
            "-",
        ],
        Some(&format!(
            "{}---\n{}",
            tracked(CONFIG, "ConfigMap", "shop-config"),
            tracked(DEPLOY, "Deployment", "shop")
        )),
    );
    let status = status_where(&ns, &control, &app_name, "Synced and Healthy", |s| {
        s["sync"]["status"] == "Synced" && s["health"]["status"] == "Healthy"
    })
    .await;
    assert!(status.get("conditions").is_none(), "{status:#}");

    // Drift by hand is seen without waiting for a resync.
    kubectl(
        &ns,
        &["scale", "deployment/shop", "-n", &ns.name, "--replicas=5"],
        None,
    );
    let status = status_where(&ns, &control, &app_name, "drift", |s| {
        s["sync"]["status"] == "OutOfSync"
    })
    .await;
    let find = |kind: &str| {
        status["resources"]
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["kind"] == kind)
            .unwrap()
            .clone()
    };
    assert_eq!(find("Deployment")["status"], "OutOfSync");
    assert_eq!(find("ConfigMap")["status"], "Synced");

    // A broken commit: a condition names the file, resources stay, and
    // nothing in the cluster is touched.
    repo.commit(&[("app/deploy.yaml", "kind: [unclosed\n")], "break it")
        .unwrap();
    repo.push("main").unwrap();
    kubectl(
        &ns,
        &[
            "annotate",
            "app",
            &app_name,
            "-n",
            &control,
            "argocd.argoproj.io/refresh=normal",
            "--overwrite",
        ],
        None,
    );
    let status = status_where(&ns, &control, &app_name, "ComparisonError", |s| {
        s["conditions"][0]["type"] == "ComparisonError"
    })
    .await;
    let message = status["conditions"][0]["message"].as_str().unwrap();
    assert!(message.contains("deploy.yaml"), "{message}");
    assert_eq!(status["sync"]["status"], "Unknown");
    assert_eq!(
        status["resources"].as_array().unwrap().len(),
        2,
        "resources kept"
    );
    kubectl(
        &ns,
        &[
            "get",
            "deployment/shop",
            "configmap/shop-config",
            "-n",
            &ns.name,
        ],
        None,
    );
    // The refresh annotation is removed once done.
    let mut gone = false;
    for _ in 0..100 {
        let now: Value = serde_json::from_str(&kubectl(
            &ns,
            &["get", "app", &app_name, "-n", &control, "-o", "json"],
            None,
        ))
        .unwrap();
        if now
            .pointer("/metadata/annotations/argocd.argoproj.io~1refresh")
            .is_none()
        {
            gone = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(gone, "refresh annotation removed");

    // An AppProject that does not permit the destination: reported as an
    // InvalidSpecError, nothing rendered or applied.
    let project = format!(
        "apiVersion: argoproj.io/v1alpha1\nkind: AppProject\nmetadata:\n  name: restricted\n  namespace: {control}\nspec:\n  sourceRepos: ['*']\n  destinations:\n  - {{server: https://kubernetes.default.svc, namespace: elsewhere}}\n"
    );
    kubectl(&ns, &["apply", "-f", "-"], Some(&project));
    let denied = app
        .replace(
            &format!("name: {app_name}"),
            &format!("name: {app_name}-denied"),
        )
        .replace("project: default", "project: restricted");
    kubectl(&ns, &["apply", "-f", "-"], Some(&denied));
    let status = status_where(
        &ns,
        &control,
        &format!("{app_name}-denied"),
        "InvalidSpecError",
        |s| s["conditions"][0]["type"] == "InvalidSpecError",
    )
    .await;
    let message = status["conditions"][0]["message"].as_str().unwrap();
    assert!(
        message.contains("not permitted in project \"restricted\""),
        "{message}"
    );
    let missing = app
        .replace(
            &format!("name: {app_name}"),
            &format!("name: {app_name}-orphan"),
        )
        .replace("project: default", "project: nowhere");
    kubectl(&ns, &["apply", "-f", "-"], Some(&missing));
    let status = status_where(
        &ns,
        &control,
        &format!("{app_name}-orphan"),
        "missing project",
        |s| s["conditions"][0]["type"] == "InvalidSpecError",
    )
    .await;
    assert!(
        status["conditions"][0]["message"]
            .as_str()
            .unwrap()
            .contains("spec.project")
    );

    let _ = stop.send(());
    running.await.unwrap();
}
