//! Taking over objects another applier wrote, on the local control plane
//! with a real Git server: an object first applied with `kubectl apply`
//! (client-side, as Argo CD applies by default) is synced by Berth, then a
//! field removed from Git is removed from the cluster, as `kubectl apply
//! --server-side` does after upgrading a client-side-applied object.
#![allow(clippy::expect_used, clippy::unwrap_used, missing_docs)]

use std::time::Duration;

mod common;

use common::{Harness, kubectl, until};
use serde_json::{Value, json};

fn cm(keys: &[(&str, &str)]) -> String {
    let data: String = keys
        .iter()
        .map(|(k, v)| format!("  {k}: \"{v}\"\n"))
        .collect();
    format!("apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: legacy\ndata:\n{data}")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fields_applied_client_side_are_taken_over() {
    let both = cm(&[("a", "1"), ("b", "2")]);
    let h = Harness::start(
        "migrate",
        &[("app/cm.yaml", &both)],
        "",
        Duration::from_secs(30),
    )
    .await;
    // Applied before Berth, client-side, as Argo CD does.
    kubectl(&h.ns, &["apply", "-n", &h.ns.name, "-f", "-"], Some(&both));
    let live = |h: &Harness| -> Value {
        serde_json::from_str(&kubectl(
            &h.ns,
            &[
                "get",
                "configmap",
                "legacy",
                "-n",
                &h.ns.name,
                "-o",
                "json",
                "--show-managed-fields",
            ],
            None,
        ))
        .unwrap()
    };
    assert!(
        live(&h).to_string().contains("kubectl-client-side-apply"),
        "client-side applied"
    );
    until("compared", || {
        h.app()["status"]["sync"]["status"].is_string()
    })
    .await;
    h.request_sync();
    until("the first sync", || {
        h.app()["status"]["operationState"]["phase"] == "Succeeded"
    })
    .await;
    let managers: Vec<String> = live(&h)["metadata"]["managedFields"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["manager"].as_str().unwrap().to_string())
        .collect();
    assert!(
        !managers.iter().any(|m| m == "kubectl-client-side-apply"),
        "ownership moved to Berth: {managers:?}"
    );

    // A key removed from Git goes from the cluster.
    h.repo
        .commit(&[("app/cm.yaml", &cm(&[("a", "1")]))], "drop b")
        .unwrap();
    h.repo.push("main").unwrap();
    h.patch_app(&json!({"metadata": {"annotations": {"argocd.argoproj.io/refresh": "normal"}}}));
    until("OutOfSync", || {
        h.app()["status"]["sync"]["status"] == "OutOfSync"
    })
    .await;
    h.request_sync();
    until("the key removed", || live(&h)["data"].get("b").is_none()).await;
    assert_eq!(live(&h)["data"]["a"], "1");
    until("Synced", || h.app()["status"]["sync"]["status"] == "Synced").await;
    h.finish().await;
}
