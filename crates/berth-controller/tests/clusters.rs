//! Deploying to another cluster through an Argo CD cluster Secret, with two
//! local control planes side by side and a real Git server: an app whose
//! destination names the second cluster is synced there (and not in the
//! controller's own), an app for a cluster that cannot be reached reports
//! it while the others go on; a CRD created there after the connection is
//! discovered, and an app of its custom resources syncs.
#![allow(clippy::expect_used, clippy::unwrap_used, missing_docs)]

use std::time::Duration;

mod common;

use base64::Engine;
use common::{Harness, kubectl, until};
use serde_json::{Value, json};

const WIDGET_CRD: &str = "apiVersion: apiextensions.k8s.io/v1\nkind: CustomResourceDefinition\nmetadata:\n  name: widgets.far.example\nspec:\n  group: far.example\n  names: {kind: Widget, plural: widgets, singular: widget}\n  scope: Namespaced\n  versions:\n  - name: v1\n    served: true\n    storage: true\n    schema:\n      openAPIV3Schema:\n        type: object\n        x-kubernetes-preserve-unknown-fields: true\n";
const WIDGET: &str =
    "apiVersion: far.example/v1\nkind: Widget\nmetadata:\n  name: gear\nspec:\n  teeth: 12\n";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cluster_secret_destination_on_a_second_control_plane() {
    let dir = berth_testenv::git::TempDir::new("second-plane").unwrap();
    let data_dir = dir.path().join("plane");
    let second = tokio::task::spawn_blocking(move || {
        berth_testenv::ControlPlane::start(
            berth_testenv::Options::default()
                .data_dir(data_dir)
                .quiet(true),
        )
    })
    .await
    .unwrap()
    .expect("a second control plane");
    let second_kubeconfig = second.kubeconfig().to_path_buf();
    let on_second = |args: &[&str]| berth_testenv::kubectl(&second_kubeconfig, args, None).unwrap();

    let cm = "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: far\ndata:\n  where: second\n";
    // The harness's app deploys to the controller's own cluster.
    let h = Harness::start(
        "clusters",
        &[("app/cm.yaml", cm), ("widgets/widget.yaml", WIDGET)],
        "    automated: {}\n",
        Duration::from_secs(30),
    )
    .await;
    until("the local app synced", || {
        h.app()["status"]["sync"]["status"] == "Synced"
    })
    .await;

    // The second cluster, as Argo CD's cluster Secret.
    let raw: Value = serde_json::from_slice(
        &on_second(&["config", "view", "--raw", "--minify", "-o", "json"]).stdout,
    )
    .unwrap();
    let cluster = &raw["clusters"][0]["cluster"];
    let user = &raw["users"][0]["user"];
    let mut tls = json!({"caData": cluster["certificate-authority-data"]});
    if let Some(c) = user.get("client-certificate-data") {
        tls["certData"] = c.clone();
        tls["keyData"] = user["client-key-data"].clone();
    }
    let mut config = json!({"tlsClientConfig": tls});
    if let Some(t) = user.get("token") {
        config["bearerToken"] = t.clone();
    }
    let server = cluster["server"].as_str().unwrap().to_string();
    let b64 = |s: &str| base64::engine::general_purpose::STANDARD.encode(s);
    let secret = |name: &str, server: &str, config: &Value| {
        json!({"apiVersion": "v1", "kind": "Secret",
            "metadata": {"name": name, "namespace": h.control,
                "labels": {"argocd.argoproj.io/secret-type": "cluster"}},
            "data": {"name": b64(name), "server": b64(server), "config": b64(&config.to_string())}})
        .to_string()
    };
    kubectl(
        &h.ns,
        &["apply", "-f", "-"],
        Some(&secret("second", &server, &config)),
    );
    kubectl(
        &h.ns,
        &["apply", "-f", "-"],
        Some(&secret(
            "nowhere",
            "https://127.0.0.1:1",
            &json!({"bearerToken": "x", "tlsClientConfig": {"insecure": true}}),
        )),
    );
    let target_ns = format!("far-{}", std::process::id());
    let app_at = |name: &str, destination: &str, path: &str| {
        format!(
            "apiVersion: argoproj.io/v1alpha1\nkind: Application\nmetadata:\n  name: {name}\n  namespace: {}\nspec:\n  project: default\n  source:\n    repoURL: {}\n    targetRevision: main\n    path: {path}\n  destination:\n    name: {destination}\n    namespace: {target_ns}\n  syncPolicy:\n    automated: {{}}\n    syncOptions: [CreateNamespace=true]\n",
            h.control, h.url
        )
    };
    let app = |name: &str, destination: &str| app_at(name, destination, "app");
    let far = format!("far-{}", std::process::id());
    let lost = format!("lost-{}", std::process::id());
    kubectl(&h.ns, &["apply", "-f", "-"], Some(&app(&far, "second")));
    kubectl(&h.ns, &["apply", "-f", "-"], Some(&app(&lost, "nowhere")));

    until("the object on the second cluster", || {
        let out = on_second(&[
            "get",
            "configmap",
            "far",
            "-n",
            &target_ns,
            "-o",
            "jsonpath={.data.where}",
        ]);
        String::from_utf8_lossy(&out.stdout).trim() == "second"
    })
    .await;
    let here = berth_testenv::kubectl(
        &h.ns.kubeconfig,
        &["get", "configmap", "far", "-n", &target_ns],
        None,
    )
    .unwrap();
    assert!(
        !here.status.success(),
        "not in the controller's own cluster"
    );
    let app_json = |name: &str| -> Value {
        serde_json::from_str(&kubectl(
            &h.ns,
            &["get", "app", name, "-n", &h.control, "-o", "json"],
            None,
        ))
        .unwrap()
    };
    until("the far app Synced", || {
        app_json(&far)["status"]["sync"]["status"] == "Synced"
    })
    .await;
    until("the unreachable cluster reported on its app only", || {
        app_json(&lost)["status"]["conditions"]
            .as_array()
            .is_some_and(|c| {
                c.iter().any(|c| {
                    c["message"].as_str().is_some_and(|m| {
                        m.contains("cannot be reached") || m.contains("connecting")
                    })
                })
            })
    })
    .await;
    assert_eq!(
        h.app()["status"]["sync"]["status"],
        "Synced",
        "the local app unaffected"
    );

    // A CRD created on the second cluster after the connection: its
    // type is discovered there, and an app of its resources syncs.
    let crd = berth_testenv::kubectl(&second_kubeconfig, &["apply", "-f", "-"], Some(WIDGET_CRD))
        .unwrap();
    assert!(
        crd.status.success(),
        "{}",
        String::from_utf8_lossy(&crd.stderr)
    );
    let widgets = format!("widgets-{}", std::process::id());
    kubectl(
        &h.ns,
        &["apply", "-f", "-"],
        Some(&app_at(&widgets, "second", "widgets")),
    );
    until("the widget on the second cluster", || {
        let out = on_second(&[
            "get",
            "widgets.far.example",
            "gear",
            "-n",
            &target_ns,
            "-o",
            "jsonpath={.spec.teeth}",
        ]);
        String::from_utf8_lossy(&out.stdout).trim() == "12"
    })
    .await;
    until("the widgets app Synced", || {
        app_json(&widgets)["status"]["sync"]["status"] == "Synced"
    })
    .await;

    // A namespaced cluster: credentials that reach the app's namespace only.
    on_second(&["create", "serviceaccount", "limited", "-n", &target_ns]);
    on_second(&[
        "create",
        "rolebinding",
        "limited-admin",
        "-n",
        &target_ns,
        "--clusterrole=admin",
        &format!("--serviceaccount={target_ns}:limited"),
    ]);
    let token = String::from_utf8_lossy(
        &on_second(&["create", "token", "limited", "-n", &target_ns]).stdout,
    )
    .trim()
    .to_string();
    let limited = json!({"bearerToken": token,
        "tlsClientConfig": {"caData": cluster["certificate-authority-data"]}});
    let mut namespaced: Value = serde_json::from_str(&secret("second", &server, &limited)).unwrap();
    namespaced["data"]["namespaces"] = json!(b64(&target_ns));
    kubectl(&h.ns, &["apply", "-f", "-"], Some(&namespaced.to_string()));
    // Those credentials may not create namespaces: the option goes.
    kubectl(
        &h.ns,
        &[
            "patch",
            "app",
            &far,
            "-n",
            &h.control,
            "--type",
            "merge",
            "-p",
            r#"{"spec":{"syncPolicy":{"syncOptions":null}}}"#,
        ],
        None,
    );
    let changed =
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: far\ndata:\n  where: namespaced\n";
    h.repo
        .commit(&[("app/cm.yaml", changed)], "namespaced")
        .unwrap();
    h.repo.push("main").unwrap();
    kubectl(
        &h.ns,
        &[
            "annotate",
            "app",
            &far,
            "-n",
            &h.control,
            "argocd.argoproj.io/refresh=normal",
            "--overwrite",
        ],
        None,
    );
    until("synced with namespace-limited credentials", || {
        let out = on_second(&[
            "get",
            "configmap",
            "far",
            "-n",
            &target_ns,
            "-o",
            "jsonpath={.data.where}",
        ]);
        String::from_utf8_lossy(&out.stdout).trim() == "namespaced"
            && app_json(&far)["status"]["sync"]["status"] == "Synced"
    })
    .await;
    h.finish().await;
    drop(second);
}
