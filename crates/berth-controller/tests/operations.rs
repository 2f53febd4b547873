//! Operations as Argo CD exposes them, on the local control plane with a
//! real Git server: a sync to another revision and a rollback to a history
//! entry, a selective sync, terminating a running sync; and how sources are
//! reached: repository Secrets read while running, one remote check shared
//! by every comparison of the interval.
#![allow(clippy::expect_used, clippy::unwrap_used, missing_docs)]

use std::time::Duration;

mod common;

use common::{Harness, exists, kubectl, until};
use serde_json::{Value, json};

fn data(h: &Harness, cm: &str, key: &str) -> String {
    let out = kubectl(
        &h.ns,
        &[
            "get",
            "configmap",
            cm,
            "-n",
            &h.ns.name,
            "-o",
            &format!("jsonpath={{.data.{key}}}"),
        ],
        None,
    );
    out.trim().to_string()
}

fn cm(name: &str, color: &str) -> String {
    format!("apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: {name}\ndata:\n  color: {color}\n")
}

async fn wait_phase(h: &Harness, phase: &str, count: usize) -> Value {
    let mut last = Value::Null;
    for _ in 0..900 {
        last = h.app();
        let history = last["status"]["history"]
            .as_array()
            .map(|a| a.len())
            .unwrap_or(0);
        let op = &last["status"]["operationState"];
        if op["phase"] == phase && last.get("operation").is_none() && history >= count {
            return last;
        }
        if phase == "Succeeded" && op["phase"] == "Failed" {
            panic!("the sync failed: {op:#}");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("timed out waiting for {phase}: {:#}", last["status"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sync_to_a_revision_and_roll_back() {
    let h = Harness::start(
        "rollback",
        &[("app/a.yaml", &cm("a", "blue"))],
        "",
        Duration::from_secs(3),
    )
    .await;
    let first = h
        .repo
        .git(&["rev-parse", "HEAD"])
        .unwrap()
        .trim()
        .to_string();
    h.request_sync();
    wait_phase(&h, "Succeeded", 1).await;
    assert_eq!(data(&h, "a", "color"), "blue");

    h.repo
        .commit(&[("app/a.yaml", &cm("a", "green"))], "green")
        .unwrap();
    h.repo.push("main").unwrap();
    h.request_sync();
    let app = wait_phase(&h, "Succeeded", 2).await;
    assert_eq!(
        data(&h, "a", "color"),
        "green",
        "a requested sync takes the new commit at once"
    );
    let second = app["status"]["operationState"]["syncResult"]["revision"]
        .as_str()
        .unwrap()
        .to_string();
    assert_ne!(second, first);

    // A sync to an explicit revision: the first commit, by SHA.
    h.patch_app(
        &json!({"operation": {"sync": {"revision": first}, "initiatedBy": {"username": "alice"}}}),
    );
    let app = wait_phase(&h, "Succeeded", 3).await;
    assert_eq!(data(&h, "a", "color"), "blue");
    assert_eq!(
        app["status"]["operationState"]["syncResult"]["revision"],
        first
    );
    assert_eq!(
        app["status"]["operationState"]["operation"]["initiatedBy"]["username"],
        "alice"
    );
    // Compared with the spec's branch again afterwards: OutOfSync.
    until("OutOfSync against main", || {
        h.app()["status"]["sync"]["status"] == "OutOfSync"
    })
    .await;

    // A rollback as Argo CD's API asks for one: the history entry's
    // revision and source.
    let history = app["status"]["history"].as_array().unwrap();
    let entry = history
        .iter()
        .find(|e| e["revision"] == second.as_str())
        .unwrap();
    h.patch_app(
        &json!({"operation": {"sync": {"revision": entry["revision"], "source": entry["source"]}}}),
    );
    let app = wait_phase(&h, "Succeeded", 4).await;
    assert_eq!(data(&h, "a", "color"), "green");
    let last = app["status"]["history"]
        .as_array()
        .unwrap()
        .last()
        .unwrap()
        .clone();
    assert_eq!(last["revision"], second.as_str());
    assert_eq!(last["id"], 3, "history ids count up");
    h.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn selective_sync_touches_only_the_named_resources() {
    let h = Harness::start(
        "selective",
        &[
            ("app/a.yaml", &cm("a", "blue")),
            ("app/b.yaml", &cm("b", "blue")),
        ],
        "",
        Duration::from_secs(3),
    )
    .await;
    h.request_sync();
    wait_phase(&h, "Succeeded", 1).await;

    h.repo
        .commit(
            &[
                ("app/a.yaml", &cm("a", "red")),
                ("app/b.yaml", &cm("b", "red")),
            ],
            "both red",
        )
        .unwrap();
    h.repo.push("main").unwrap();
    h.patch_app(&json!({"operation": {"sync": {"resources": [{"group": "", "kind": "ConfigMap", "name": "b"}]}}}),
    );
    let app = wait_phase(&h, "Succeeded", 2).await;
    assert_eq!(
        data(&h, "b", "color"),
        "red",
        "the named resource is synced"
    );
    assert_eq!(data(&h, "a", "color"), "blue", "the other is left alone");
    let results = app["status"]["operationState"]["syncResult"]["resources"]
        .as_array()
        .unwrap();
    assert_eq!(results.len(), 1, "{results:#?}");
    assert_eq!(results[0]["name"], "b");
    until("a still OutOfSync", || {
        let app = h.app();
        app["status"]["sync"]["status"] == "OutOfSync"
            && app["status"]["resources"].as_array().is_some_and(|r| {
                r.iter()
                    .any(|r| r["name"] == "a" && r["status"] == "OutOfSync")
            })
    })
    .await;
    h.finish().await;
}

const SLOW_HOOK: &str = "apiVersion: batch/v1\nkind: Job\nmetadata:\n  name: slow\n  annotations:\n    argocd.argoproj.io/hook: PreSync\nspec:\n  template:\n    metadata:\n      annotations:\n        testenv.berth.io/ready-delay: 1h\n    spec:\n      restartPolicy: Never\n      containers:\n      - name: slow\n        image: registry.example/slow:1.0\n";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_running_sync_can_be_terminated() {
    let h = Harness::start(
        "terminate",
        &[
            ("app/hook.yaml", SLOW_HOOK),
            ("app/a.yaml", &cm("a", "blue")),
        ],
        "",
        Duration::from_secs(3),
    )
    .await;
    h.request_sync();
    until("the sync to wait for its hook", || {
        h.app()["status"]["operationState"]["phase"] == "Running" && exists(&h.ns, "job/slow")
    })
    .await;
    // What `argocd app terminate-op` does.
    h.patch_app(&json!({"status": {"operationState": {"phase": "Terminating"}}}));
    until("the operation to end", || {
        h.app()["status"]["operationState"]["phase"] == "Failed"
    })
    .await;
    let app = h.app();
    assert_eq!(
        app["status"]["operationState"]["message"], "Operation terminated",
        "{:#}",
        app["status"]["operationState"]
    );
    assert!(app.get("operation").is_none(), "request cleared");
    assert!(
        !exists(&h.ns, "configmap/a"),
        "nothing after the hook was applied"
    );
    h.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn repository_secrets_are_read_while_running() {
    let h = Harness::start_with(
        "creds",
        &[("app/a.yaml", &cm("a", "blue"))],
        "    automated: {}\n",
        Duration::from_secs(1),
        Some(("robot", "s3cret-pass")),
    )
    .await;
    until("a comparison error about the repository", || {
        let app = h.app();
        app["status"]["conditions"]
            .as_array()
            .is_some_and(|c| c.iter().any(|c| c["type"] == "ComparisonError"))
    })
    .await;
    let app = h.app();
    let message = app["status"]["conditions"][0]["message"].as_str().unwrap();
    assert!(message.contains("spec.source"), "{message}");
    assert!(!exists(&h.ns, "configmap/a"));

    let secret = format!(
        "apiVersion: v1\nkind: Secret\nmetadata:\n  name: creds-repo\n  namespace: {}\n  labels:\n    argocd.argoproj.io/secret-type: repository\nstringData:\n  url: {}\n  username: robot\n  password: s3cret-pass\n",
        h.control, h.url
    );
    kubectl(&h.ns, &["apply", "-f", "-"], Some(&secret));
    until("synced with the Secret's credentials", || {
        exists(&h.ns, "configmap/a") && h.app()["status"]["sync"]["status"] == "Synced"
    })
    .await;
    let app = h.app();
    let text = app["status"].to_string();
    assert!(!text.contains("s3cret-pass"), "no secret in the status");
    h.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn comparisons_share_one_remote_check_per_interval() {
    // An interval long enough that it never passes during the test.
    let h = Harness::start(
        "poll",
        &[("app/a.yaml", &cm("a", "blue"))],
        "    automated:\n      selfHeal: true\n",
        Duration::from_secs(3600),
    )
    .await;
    until("synced", || {
        exists(&h.ns, "configmap/a") && h.app()["status"]["sync"]["status"] == "Synced"
    })
    .await;
    let settled = h.daemon.upload_pack_requests();
    assert!(settled >= 1, "the repository was asked at least once");
    // Each manual change is drift: compared (and healed) again, from the
    // poller's answer and the render cache, without asking the remote.
    for i in 0..3 {
        kubectl(
            &h.ns,
            &[
                "patch",
                "configmap",
                "a",
                "-n",
                &h.ns.name,
                "--type",
                "merge",
                "-p",
                &format!(r#"{{"data":{{"color":"drift-{i}"}}}}"#),
            ],
            None,
        );
        until("healed", || data(&h, "a", "color") == "blue").await;
    }
    assert_eq!(
        h.daemon.upload_pack_requests(),
        settled,
        "no remote request for comparisons within the interval"
    );
    // A refresh asks again.
    kubectl(
        &h.ns,
        &[
            "annotate",
            "app",
            &h.name,
            "-n",
            &h.control,
            "argocd.argoproj.io/refresh=normal",
        ],
        None,
    );
    until("the refresh to ask the remote", || {
        h.daemon.upload_pack_requests() > settled
    })
    .await;
    h.finish().await;
}
