//! kubectl, an independent client, against the local control plane: the
//! behaviours later Berth features rely on (apply, rollout, server-side apply
//! conflicts, diff, garbage collection, watch) work as in a real cluster.
#![allow(clippy::expect_used, clippy::unwrap_used, missing_docs)]

mod common;

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use berth_testenv::TestNamespace;
use common::{eventually, kubectl, kubectl_ok, kubectl_path};

const APP: &str = r#"
apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
  labels: {app: web}
spec:
  replicas: 2
  selector:
    matchLabels: {app: web}
  template:
    metadata:
      labels: {app: web}
    spec:
      containers:
      - name: web
        image: registry.example/web:1.0
        ports: [{containerPort: 8080}]
---
apiVersion: v1
kind: Service
metadata:
  name: web
spec:
  selector: {app: web}
  ports: [{port: 80, targetPort: 8080}]
---
apiVersion: v1
kind: ConfigMap
metadata:
  name: web-config
data:
  color: blue
"#;

#[tokio::test]
async fn apply_then_rollout_status_succeeds_with_simulated_pods() {
    let ns = TestNamespace::new("kubectl-rollout").await.unwrap();
    let out = kubectl_ok(&ns, &["apply", "-f", "-"], Some(APP));
    assert!(out.contains("deployment.apps/web created"), "{out}");
    assert!(out.contains("service/web created"), "{out}");
    assert!(out.contains("configmap/web-config created"), "{out}");

    let out = kubectl_ok(
        &ns,
        &["rollout", "status", "deployment/web", "--timeout=120s"],
        None,
    );
    assert!(out.contains("successfully rolled out"), "{out}");

    let ready = kubectl_ok(
        &ns,
        &[
            "get",
            "deployment",
            "web",
            "-o",
            "jsonpath={.status.readyReplicas}",
        ],
        None,
    );
    assert_eq!(ready, "2");
    // The endpoints controller saw the simulated pods' IPs.
    let eps = kubectl_ok(
        &ns,
        &[
            "get",
            "endpointslices",
            "-l",
            "kubernetes.io/service-name=web",
            "-o",
            "jsonpath={.items[*].endpoints[*].addresses[*]}",
        ],
        None,
    );
    assert_eq!(eps.split_whitespace().count(), 2, "endpoints: {eps}");
}

#[tokio::test]
async fn server_side_apply_reports_a_conflict_between_field_managers() {
    let ns = TestNamespace::new("kubectl-ssa").await.unwrap();
    let cm = |color: &str| {
        format!(
            "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: shared\ndata:\n  color: {color}\n"
        )
    };
    kubectl_ok(
        &ns,
        &[
            "apply",
            "--server-side",
            "--field-manager=team-a",
            "-f",
            "-",
        ],
        Some(&cm("blue")),
    );

    let out = kubectl(
        &ns,
        &[
            "apply",
            "--server-side",
            "--field-manager=team-b",
            "-f",
            "-",
        ],
        Some(&cm("green")),
    );
    assert!(!out.status.success(), "second manager must conflict");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("conflict"), "{stderr}");
    assert!(
        stderr.contains("team-a"),
        "the conflict names the owning manager: {stderr}"
    );
    assert!(
        stderr.contains(".data.color"),
        "the conflict names the field: {stderr}"
    );
    let color = kubectl_ok(
        &ns,
        &["get", "configmap", "shared", "-o", "jsonpath={.data.color}"],
        None,
    );
    assert_eq!(color, "blue", "a refused apply changes nothing");

    kubectl_ok(
        &ns,
        &[
            "apply",
            "--server-side",
            "--field-manager=team-b",
            "--force-conflicts",
            "-f",
            "-",
        ],
        Some(&cm("green")),
    );
    let color = kubectl_ok(
        &ns,
        &["get", "configmap", "shared", "-o", "jsonpath={.data.color}"],
        None,
    );
    assert_eq!(color, "green");
}

#[tokio::test]
async fn diff_shows_a_change_without_changing_the_object() {
    let ns = TestNamespace::new("kubectl-diff").await.unwrap();
    kubectl_ok(&ns, &["apply", "-f", "-"], Some(APP));

    let same = kubectl(&ns, &["diff", "-f", "-"], Some(APP));
    assert_eq!(
        same.status.code(),
        Some(0),
        "no change: {}",
        String::from_utf8_lossy(&same.stdout)
    );

    let changed = APP.replace("color: blue", "color: red");
    let out = kubectl(&ns, &["diff", "-f", "-"], Some(&changed));
    assert_eq!(
        out.status.code(),
        Some(1),
        "kubectl diff exits 1 on a difference: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let diff = String::from_utf8_lossy(&out.stdout);
    assert!(diff.contains("-  color: blue"), "{diff}");
    assert!(diff.contains("+  color: red"), "{diff}");

    let color = kubectl_ok(
        &ns,
        &[
            "get",
            "configmap",
            "web-config",
            "-o",
            "jsonpath={.data.color}",
        ],
        None,
    );
    assert_eq!(color, "blue", "diff must not change the live object");
}

#[tokio::test]
async fn deleting_a_deployment_garbage_collects_its_replicasets_and_pods() {
    let ns = TestNamespace::new("kubectl-gc").await.unwrap();
    kubectl_ok(&ns, &["apply", "-f", "-"], Some(APP));
    kubectl_ok(
        &ns,
        &["rollout", "status", "deployment/web", "--timeout=120s"],
        None,
    );
    let before = kubectl_ok(
        &ns,
        &["get", "replicasets,pods", "-l", "app=web", "-o", "name"],
        None,
    );
    assert_eq!(
        before
            .lines()
            .filter(|l| l.starts_with("replicaset"))
            .count(),
        1,
        "{before}"
    );
    assert_eq!(
        before.lines().filter(|l| l.starts_with("pod/")).count(),
        2,
        "{before}"
    );

    kubectl_ok(&ns, &["delete", "deployment", "web"], None);
    eventually(
        "replicasets and pods of web to be garbage-collected",
        Duration::from_secs(90),
        async || {
            let left = kubectl_ok(
                &ns,
                &["get", "replicasets,pods", "-l", "app=web", "-o", "name"],
                None,
            );
            left.trim().is_empty().then_some(())
        },
    )
    .await;
}

#[tokio::test]
async fn get_watch_sees_changes() {
    let ns = TestNamespace::new("kubectl-watch").await.unwrap();
    kubectl_ok(
        &ns,
        &["create", "configmap", "before-watch", "--from-literal=a=0"],
        None,
    );
    let mut watcher = Command::new(kubectl_path())
        .arg("--kubeconfig")
        .arg(&ns.kubeconfig)
        .args([
            "-n",
            &ns.name,
            "get",
            "configmaps",
            "-w",
            "--output-watch-events",
            "--no-headers",
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let stdout = watcher.stdout.take().unwrap();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    // Lines are `EVENT NAME DATA AGE`. The watch is established once it has
    // listed what existed before it started.
    let event = |line: &str| {
        let mut words = line.split_whitespace();
        (
            words.next().unwrap_or_default().to_string(),
            words.next().unwrap_or_default().to_string(),
        )
    };
    loop {
        let line = rx
            .recv_timeout(Duration::from_secs(60))
            .expect("watch lists existing objects");
        if event(&line) == ("ADDED".to_string(), "before-watch".to_string()) {
            break;
        }
    }

    kubectl_ok(
        &ns,
        &["create", "configmap", "watched", "--from-literal=a=1"],
        None,
    );
    kubectl_ok(
        &ns,
        &[
            "patch",
            "configmap",
            "watched",
            "-p",
            r#"{"data":{"a":"2"}}"#,
        ],
        None,
    );
    kubectl_ok(&ns, &["delete", "configmap", "watched"], None);

    let mut seen = Vec::new();
    while seen.len() < 3 {
        let line = rx
            .recv_timeout(Duration::from_secs(60))
            .unwrap_or_else(|_| panic!("watch events so far: {seen:?}"));
        let (kind, name) = event(&line);
        if name == "watched" {
            seen.push(kind);
        }
    }
    let _ = watcher.kill();
    let _ = watcher.wait();
    assert_eq!(seen, ["ADDED", "MODIFIED", "DELETED"]);
}
