//! `kill -9` of `berth controller` at three points of a sync — while a
//! PreSync hook runs, between two waves, while a prune waits for its object
//! to go — on the local control plane with a real Git server: after a
//! restart each operation converges, its record is kept, and no hook runs
//! twice for the same operation (one hook Job per operation, the same Job
//! object across the restart).
#![allow(clippy::expect_used, clippy::unwrap_used, missing_docs)]

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use berth_testenv::TestNamespace;
use berth_testenv::git::{GitFixture, TempDir, git_daemon};
use serde_json::{Value, json};

const BERTH: &str = env!("CARGO_BIN_EXE_berth");

/// The controller, killed with SIGKILL when dropped.
struct Running(Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn controller(kubeconfig: &Path, control: &str, cache: &Path, log: &Path) -> Running {
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(log)
        .unwrap();
    Running(
        Command::new(BERTH)
            .args(["controller", "--kubeconfig"])
            .arg(kubeconfig)
            .args(["-n", control, "--cache-dir"])
            .arg(cache)
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap(),
    )
}

/// kill -9, no chance to write anything.
fn kill9(mut c: Running) {
    c.0.kill().unwrap();
    c.0.wait().unwrap();
}

fn files(color: &str, image: &str, with_cm: bool) -> Vec<(String, String)> {
    let mut out = vec![
        (
            "app/pre.yaml".to_string(),
            "apiVersion: batch/v1\nkind: Job\nmetadata:\n  generateName: pre-\n  annotations:\n    argocd.argoproj.io/hook: PreSync\nspec:\n  backoffLimit: 0\n  template:\n    spec:\n      restartPolicy: Never\n      containers:\n      - name: pre\n        image: registry.example/migrate:1\n".to_string(),
        ),
        (
            "app/deploy.yaml".to_string(),
            format!("apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: web\n  annotations:\n    argocd.argoproj.io/sync-wave: \"1\"\nspec:\n  replicas: 1\n  selector:\n    matchLabels: {{app: web}}\n  template:\n    metadata:\n      labels: {{app: web}}\n    spec:\n      containers:\n      - name: web\n        image: {image}\n"),
        ),
    ];
    if with_cm {
        out.push((
            "app/cm.yaml".to_string(),
            format!("apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: first\ndata:\n  color: {color}\n"),
        ));
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_nine_at_three_points_of_a_sync_converges() {
    let ns = TestNamespace::new("crash").await.unwrap();
    let control = format!("{}-argocd", ns.name);
    let kubectl = |args: &[&str], stdin: Option<&str>| {
        berth_testenv::kubectl(&ns.kubeconfig, args, stdin).unwrap()
    };
    let out_of = |o: std::process::Output| String::from_utf8_lossy(&o.stdout).trim().to_string();
    let fixture = GitFixture::new().unwrap();
    let initial = files("blue", "registry.example/web:1", true);
    let refs: Vec<(&str, &str)> = initial
        .iter()
        .map(|(a, b)| (a.as_str(), b.as_str()))
        .collect();
    let repo = fixture.create_repo("crash", &refs).unwrap();
    let daemon = git_daemon(&fixture).unwrap();
    let url = format!("git://127.0.0.1:{}/crash.git", daemon.port);
    let dir = TempDir::new("crash").unwrap();
    let cache = dir.path().join("cache");
    let log = dir.path().join("controller.log");
    let app_name = format!("crash-{}", &ns.name[ns.name.len() - 6..]);

    let mut running = controller(&ns.kubeconfig, &control, &cache, &log);
    let app = format!(
        "apiVersion: argoproj.io/v1alpha1\nkind: Application\nmetadata:\n  name: {app_name}\n  namespace: {control}\nspec:\n  project: default\n  source:\n    repoURL: {url}\n    targetRevision: main\n    path: app\n  destination:\n    server: https://kubernetes.default.svc\n    namespace: {}\n",
        ns.name
    );
    // Created once the controller has installed the CRDs.
    let deadline = Instant::now() + Duration::from_secs(60);
    while !kubectl(&["apply", "-f", "-"], Some(&app)).status.success() {
        assert!(
            Instant::now() < deadline,
            "the Application could not be created"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let app_json = || -> Value {
        serde_json::from_str(&out_of(kubectl(
            &["get", "app", &app_name, "-n", &control, "-o", "json"],
            None,
        )))
        .unwrap_or(Value::Null)
    };
    let wait = async |what: &str, f: &dyn Fn() -> bool| {
        let deadline = Instant::now() + Duration::from_secs(90);
        while !f() {
            assert!(
                Instant::now() < deadline,
                "timed out waiting for {what}; controller log:\n{}",
                std::fs::read_to_string(&log).unwrap_or_default()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    };
    let jobs = || -> Vec<(String, String)> {
        let list: Value = serde_json::from_str(&out_of(kubectl(
            &["get", "jobs", "-n", &ns.name, "-o", "json"],
            None,
        )))
        .unwrap_or(Value::Null);
        list["items"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|j| {
                (
                    j["metadata"]["name"]
                        .as_str()
                        .unwrap_or_default()
                        .to_string(),
                    j["metadata"]["uid"]
                        .as_str()
                        .unwrap_or_default()
                        .to_string(),
                )
            })
            .collect()
    };
    let sync = |app: &str| {
        kubectl(
            &[
                "patch", "app", app, "-n", &control, "--type", "merge", "-p",
                &json!({"operation": {"sync": {"prune": true}, "initiatedBy": {"username": "test"}}}).to_string(),
            ],
            None,
        )
    };
    let succeeded_at = |revision: &str| {
        let a = app_json();
        a.get("operation").is_none_or(Value::is_null)
            && a["status"]["operationState"]["phase"] == "Succeeded"
            && a["status"]["operationState"]["syncResult"]["revision"] == revision
    };
    wait("compared", &|| {
        app_json()["status"]["sync"]["status"].is_string()
    })
    .await;
    let first = out_of(kubectl(
        &[
            "get",
            "app",
            &app_name,
            "-n",
            &control,
            "-o",
            "jsonpath={.status.sync.revision}",
        ],
        None,
    ));

    // 1. During the PreSync hook.
    assert!(sync(&app_name).status.success());
    wait("the hook Job", &|| !jobs().is_empty()).await;
    kill9(running);
    let hook = jobs();
    running = controller(&ns.kubeconfig, &control, &cache, &log);
    wait("the first operation done", &|| succeeded_at(&first)).await;
    assert_eq!(jobs(), hook, "the same hook Job, not a second run");
    assert_eq!(
        out_of(kubectl(
            &[
                "get",
                "configmap",
                "first",
                "-n",
                &ns.name,
                "-o",
                "jsonpath={.data.color}"
            ],
            None
        )),
        "blue"
    );

    // 2. Between waves: wave 0 applied, wave 1 not yet healthy.
    let next = files("green", "registry.example/web:2", true);
    let refs: Vec<(&str, &str)> = next.iter().map(|(a, b)| (a.as_str(), b.as_str())).collect();
    let second = repo.commit(&refs, "green").unwrap();
    repo.push("main").unwrap();
    kubectl(
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
    wait("the new commit compared", &|| {
        app_json()["status"]["sync"]["revision"] == second.as_str()
    })
    .await;
    assert!(sync(&app_name).status.success());
    wait("wave 0 applied", &|| {
        out_of(kubectl(
            &[
                "get",
                "configmap",
                "first",
                "-n",
                &ns.name,
                "-o",
                "jsonpath={.data.color}",
            ],
            None,
        )) == "green"
    })
    .await;
    kill9(running);
    let hooks_before = jobs();
    assert_eq!(
        hooks_before.len(),
        2,
        "one hook Job per operation: {hooks_before:?}"
    );
    running = controller(&ns.kubeconfig, &control, &cache, &log);
    wait("the second operation done", &|| succeeded_at(&second)).await;
    assert_eq!(jobs(), hooks_before, "the hook it had run is not run again");
    assert_eq!(
        out_of(kubectl(
            &[
                "get",
                "deployment",
                "web",
                "-n",
                &ns.name,
                "-o",
                "jsonpath={.spec.template.spec.containers[0].image}"
            ],
            None
        )),
        "registry.example/web:2"
    );

    // 3. During a prune: the ConfigMap leaves Git, a finalizer holds it.
    kubectl(
        &[
            "patch",
            "configmap",
            "first",
            "-n",
            &ns.name,
            "--type",
            "merge",
            "-p",
            r#"{"metadata":{"finalizers":["example.com/hold"]}}"#,
        ],
        None,
    );
    let last = files("green", "registry.example/web:2", false);
    let refs: Vec<(&str, &str)> = last.iter().map(|(a, b)| (a.as_str(), b.as_str())).collect();
    repo.git(&["rm", "--quiet", "app/cm.yaml"]).unwrap();
    let third = repo.commit(&refs, "drop the ConfigMap").unwrap();
    repo.push("main").unwrap();
    kubectl(
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
    wait("the third commit compared", &|| {
        app_json()["status"]["sync"]["revision"] == third.as_str()
    })
    .await;
    assert!(sync(&app_name).status.success());
    wait("the prune under way", &|| {
        !out_of(kubectl(
            &[
                "get",
                "configmap",
                "first",
                "-n",
                &ns.name,
                "-o",
                "jsonpath={.metadata.deletionTimestamp}",
            ],
            None,
        ))
        .is_empty()
    })
    .await;
    kill9(running);
    let hooks_before = jobs();
    assert_eq!(hooks_before.len(), 3, "{hooks_before:?}");
    kubectl(
        &[
            "patch",
            "configmap",
            "first",
            "-n",
            &ns.name,
            "--type",
            "merge",
            "-p",
            r#"{"metadata":{"finalizers":null}}"#,
        ],
        None,
    );
    running = controller(&ns.kubeconfig, &control, &cache, &log);
    wait("the third operation done", &|| succeeded_at(&third)).await;
    assert_eq!(jobs(), hooks_before, "no hook run twice");
    assert!(
        !kubectl(&["get", "configmap", "first", "-n", &ns.name], None)
            .status
            .success(),
        "pruned"
    );
    // The operations' records are kept.
    let history = app_json()["status"]["history"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    assert_eq!(history.len(), 3, "{history:?}");
    let records = out_of(kubectl(
        &["get", "syncrecords.berth.io", "-n", &control, "-o", "name"],
        None,
    ));
    assert_eq!(records.lines().count(), 3, "{records}");
    drop(running);
}
