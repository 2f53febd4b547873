//! AppProject sync windows at the controller's admission point, on the
//! local control plane with a real Git server: a deny window holds the
//! automated sync of a new commit while letting a manual one through when
//! `manualSync` is set; without it the requested sync waits, Running, and
//! runs once the window is gone. The window state is in the status.
#![allow(clippy::expect_used, clippy::unwrap_used, missing_docs)]

use std::time::Duration;

mod common;

use common::{Harness, kubectl, kubectl_out, until};
use serde_json::{Value, json};

fn cm(color: &str) -> String {
    format!("apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: paint\ndata:\n  color: {color}\n")
}

fn color(h: &Harness) -> String {
    let out = kubectl_out(
        &h.ns,
        &[
            "get",
            "configmap",
            "paint",
            "-n",
            &h.ns.name,
            "-o",
            "jsonpath={.data.color}",
        ],
        None,
    );
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

fn set_windows(h: &Harness, windows: Value) {
    kubectl(
        &h.ns,
        &[
            "patch",
            "appproject",
            "default",
            "-n",
            &h.control,
            "--type",
            "merge",
            "-p",
            &json!({"spec": {"syncWindows": windows}}).to_string(),
        ],
        None,
    );
}

fn commit(h: &Harness, c: &str) -> String {
    let sha = h.repo.commit(&[("app/cm.yaml", &cm(c))], c).unwrap();
    h.repo.push("main").unwrap();
    h.patch_app(&json!({"metadata": {"annotations": {"argocd.argoproj.io/refresh": "normal"}}}));
    sha
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deny_window_holds_automated_sync_and_manual_sync_follows_manual_sync_flag() {
    let h = Harness::start(
        "windows",
        &[("app/cm.yaml", &cm("blue"))],
        "    automated: {}\n",
        Duration::from_secs(30),
    )
    .await;
    until("first sync", || color(&h) == "blue").await;

    // A deny window open now (every minute, for an hour), manual syncs let
    // through.
    let deny = |manual: bool| {
        json!([{"kind": "deny", "schedule": "* * * * *", "duration": "1h",
            "applications": ["*"], "manualSync": manual}])
    };
    set_windows(&h, deny(true));
    let sha = commit(&h, "green");
    until("the new commit compared, the window reported", || {
        let a = h.app();
        a["status"]["sync"]["revision"] == sha.as_str()
            && a["status"]["sync"]["status"] == "OutOfSync"
            && a["status"]["berth"]["syncWindows"]["syncAllowed"] == false
            && a["status"]["berth"]["syncWindows"]["manualSyncAllowed"] == true
    })
    .await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(color(&h), "blue", "the automated sync is held");
    let a = h.app();
    assert!(
        a["status"]["berth"]["syncWindows"]["message"]
            .as_str()
            .unwrap()
            .contains("deny window active"),
        "{:#}",
        a["status"]["berth"]
    );
    h.request_sync();
    until("the manual sync through the window", || {
        color(&h) == "green"
    })
    .await;

    // Without manualSync the requested sync waits, Running, and says why.
    set_windows(&h, deny(false));
    commit(&h, "red");
    until("OutOfSync at the new commit", || {
        h.app()["status"]["sync"]["status"] == "OutOfSync"
    })
    .await;
    h.request_sync();
    until("the operation held", || {
        let state = &h.app()["status"]["operationState"];
        state["phase"] == "Running"
            && state["message"]
                .as_str()
                .is_some_and(|m| m.contains("blocked"))
    })
    .await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(color(&h), "green", "nothing applied while held");

    // The window goes: the held operation runs.
    set_windows(&h, Value::Null);
    until("the held sync done", || color(&h) == "red").await;
    until("the window state gone from the status", || {
        let a = h.app();
        a["status"]["operationState"]["phase"] == "Succeeded"
            && a["status"]["berth"]["syncWindows"].is_null()
    })
    .await;
    h.finish().await;
}
