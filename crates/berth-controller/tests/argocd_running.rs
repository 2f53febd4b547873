//! Berth beside a running Argo CD, on the local control plane with a real
//! Git server: while Argo CD's application controller (a StatefulSet in the
//! control namespace) has replicas, Berth leaves the Applications alone;
//! scaled to zero, or with `berth.takeOver: "true"` in `argocd-cm`, Berth
//! reconciles them.
#![allow(clippy::expect_used, clippy::unwrap_used, missing_docs)]

use std::time::Duration;

mod common;

use common::{Harness, kubectl, kubectl_out, until};
use serde_json::json;

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

fn push(h: &Harness, c: &str) {
    h.repo.commit(&[("app/cm.yaml", &cm(c))], c).unwrap();
    h.repo.push("main").unwrap();
    h.patch_app(&json!({"metadata": {"annotations": {"argocd.argoproj.io/refresh": "normal"}}}));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_running_argocd_controller_holds_berth_back() {
    let h = Harness::start(
        "argo-beside",
        &[("app/cm.yaml", &cm("blue"))],
        "    automated: {}\n",
        Duration::from_secs(30),
    )
    .await;
    until("first sync", || color(&h) == "blue").await;
    let statefulset = format!(
        "apiVersion: apps/v1\nkind: StatefulSet\nmetadata:\n  name: argocd-application-controller\n  namespace: {}\nspec:\n  replicas: 1\n  serviceName: argocd-application-controller\n  selector:\n    matchLabels: {{app: argocd-application-controller}}\n  template:\n    metadata:\n      labels: {{app: argocd-application-controller}}\n    spec:\n      containers:\n      - name: controller\n        image: registry.example/argocd:3\n",
        h.control
    );
    kubectl(&h.ns, &["apply", "-f", "-"], Some(&statefulset));
    tokio::time::sleep(Duration::from_secs(1)).await;
    push(&h, "green");
    tokio::time::sleep(Duration::from_secs(4)).await;
    assert_eq!(color(&h), "blue", "held back while Argo CD runs");
    assert!(
        h.app()["metadata"]["annotations"]
            .get("argocd.argoproj.io/refresh")
            .is_some(),
        "not even the refresh is taken up"
    );

    // Scaled to zero: Berth goes on.
    kubectl(
        &h.ns,
        &[
            "scale",
            "statefulset",
            "argocd-application-controller",
            "-n",
            &h.control,
            "--replicas=0",
        ],
        None,
    );
    until("synced once Argo CD is scaled to zero", || {
        color(&h) == "green"
    })
    .await;

    // Running again, but argocd-cm says Berth leads.
    kubectl(
        &h.ns,
        &[
            "scale",
            "statefulset",
            "argocd-application-controller",
            "-n",
            &h.control,
            "--replicas=1",
        ],
        None,
    );
    tokio::time::sleep(Duration::from_secs(1)).await;
    push(&h, "red");
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(color(&h), "green", "held back again");
    kubectl(
        &h.ns,
        &["apply", "-f", "-"],
        Some(&format!(
            "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: argocd-cm\n  namespace: {}\ndata:\n  berth.takeOver: \"true\"\n",
            h.control
        )),
    );
    until("synced with berth.takeOver", || color(&h) == "red").await;
    h.finish().await;
}
