//! AppProject resource allow and deny lists at sync time, on the local
//! control plane with a real Git server: a sync that would write a kind the
//! project does not permit (a blacklisted namespaced kind, a cluster-scoped
//! kind outside the whitelist) fails as a whole, naming each refused
//! object, and writes nothing; once the project permits them it succeeds.
#![allow(clippy::expect_used, clippy::unwrap_used, missing_docs)]

use std::time::Duration;

mod common;

use common::{Harness, exists, kubectl, until};
use serde_json::json;

const CM: &str = "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: plain\ndata:\n  a: b\n";
const SECRET: &str =
    "apiVersion: v1\nkind: Secret\nmetadata:\n  name: hidden\nstringData:\n  a: b\n";

fn project(h: &Harness, spec: serde_json::Value) {
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
            &json!({"spec": spec}).to_string(),
        ],
        None,
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn resource_lists_refuse_the_whole_sync() {
    let extra_ns = format!("extra-{}", std::process::id());
    let namespace = format!("apiVersion: v1\nkind: Namespace\nmetadata:\n  name: {extra_ns}\n");
    let h = Harness::start(
        "resources",
        &[
            ("app/cm.yaml", CM),
            ("app/secret.yaml", SECRET),
            ("app/ns.yaml", &namespace),
        ],
        "",
        Duration::from_secs(30),
    )
    .await;
    project(
        &h,
        json!({"namespaceResourceBlacklist": [{"group": "", "kind": "Secret"}],
               "clusterResourceWhitelist": [{"group": "rbac.authorization.k8s.io", "kind": "*"}]}),
    );
    until("compared", || {
        h.app()["status"]["sync"]["status"] == "OutOfSync"
    })
    .await;
    h.request_sync();
    until("the sync refused", || {
        h.app()["status"]["operationState"]["phase"] == "Failed"
    })
    .await;
    let app = h.app();
    let message = app["status"]["operationState"]["message"].as_str().unwrap();
    assert!(
        message.contains(":Secret hidden is not permitted in project default")
            && message.contains(":Namespace"),
        "{message}"
    );
    assert!(!exists(&h.ns, "configmap/plain"), "nothing written");
    assert!(!exists(&h.ns, "secret/hidden"));

    project(
        &h,
        json!({"namespaceResourceBlacklist": null,
               "clusterResourceWhitelist": [{"group": "*", "kind": "*"}]}),
    );
    h.request_sync();
    until("the sync through", || {
        h.app()["status"]["operationState"]["phase"] == "Succeeded"
    })
    .await;
    assert!(exists(&h.ns, "configmap/plain") && exists(&h.ns, "secret/hidden"));
    kubectl(
        &h.ns,
        &["delete", "namespace", &extra_ns, "--wait=false"],
        None,
    );
    h.finish().await;
}
