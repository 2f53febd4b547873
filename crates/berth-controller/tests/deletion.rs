//! Deleting an Application, on the local control plane with a real Git
//! server: with Argo CD's resources finalizer its resources go first
//! (`Delete=false` ones stay, `Delete=confirm` ones wait for approval, a
//! `PostDelete` hook runs) and then the Application; without it, the
//! resources stay. Objects the app does not track are never touched.
#![allow(clippy::expect_used, clippy::unwrap_used, missing_docs)]

use std::time::Duration;

mod common;

use common::{Harness, exists, kubectl, kubectl_out, until};
use serde_json::json;

fn cm(name: &str, annotations: &str) -> String {
    format!(
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: {name}\n{annotations}data:\n  color: blue\n"
    )
}

const POST_DELETE: &str = "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: goodbye\n  annotations:\n    argocd.argoproj.io/hook: PostDelete\ndata:\n  said: goodbye\n";

async fn synced(h: &Harness) {
    until("synced", || {
        let a = h.app();
        a["status"]["sync"]["status"] == "Synced"
            && a["status"]["operationState"]["phase"] == "Succeeded"
    })
    .await;
}

fn app_exists(h: &Harness) -> bool {
    kubectl_out(&h.ns, &["get", "app", &h.name, "-n", &h.control], None)
        .status
        .success()
}

fn delete_app(h: &Harness) {
    kubectl(
        &h.ns,
        &["delete", "app", &h.name, "-n", &h.control, "--wait=false"],
        None,
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cascade_deletes_tracked_resources_and_honours_delete_options() {
    let keep = "  annotations:\n    argocd.argoproj.io/sync-options: Delete=false\n";
    let confirm = "  annotations:\n    argocd.argoproj.io/sync-options: Delete=confirm\n";
    let h = Harness::start(
        "cascade",
        &[
            ("app/a.yaml", &cm("doomed", "")),
            ("app/b.yaml", &cm("kept", keep)),
            ("app/c.yaml", &cm("careful", confirm)),
            ("app/hook.yaml", POST_DELETE),
        ],
        "    automated: {}\n",
        Duration::from_secs(30),
    )
    .await;
    synced(&h).await;
    // Not the app's: same namespace, never tracked.
    kubectl(
        &h.ns,
        &["create", "configmap", "bystander", "-n", &h.ns.name],
        None,
    );
    h.patch_app(&json!({"metadata": {"finalizers": ["resources-finalizer.argocd.argoproj.io"]}}));
    delete_app(&h);

    // Delete=confirm holds the whole deletion until approved, and says so.
    until("the confirmation asked for", || {
        h.app()["status"]["conditions"].as_array().is_some_and(|c| {
            c.iter().any(|c| {
                c["type"] == "DeletionError"
                    && c["message"].as_str().unwrap().contains("ConfigMap/careful")
            })
        })
    })
    .await;
    assert!(exists(&h.ns, "configmap/doomed"), "nothing deleted yet");
    assert!(app_exists(&h));
    h.patch_app(&json!({"metadata": {"annotations": {"argocd.argoproj.io/deletion-approved": "2026-11-28T00:00:00Z"}}}));

    until("the application gone", || !app_exists(&h)).await;
    assert!(!exists(&h.ns, "configmap/doomed"), "cascade deleted it");
    assert!(!exists(&h.ns, "configmap/careful"), "deleted once approved");
    assert!(exists(&h.ns, "configmap/kept"), "Delete=false stays");
    assert!(exists(&h.ns, "configmap/bystander"), "not the app's");
    assert!(
        exists(&h.ns, "configmap/goodbye"),
        "the PostDelete hook ran after the resources were gone"
    );
    h.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_the_finalizer_resources_stay_and_background_form_works() {
    let h = Harness::start(
        "orphan",
        &[("app/a.yaml", &cm("stays", ""))],
        "    automated: {}\n",
        Duration::from_secs(30),
    )
    .await;
    synced(&h).await;
    delete_app(&h);
    until("the application gone", || !app_exists(&h)).await;
    // Long enough for a wrong cascade to have happened.
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert!(exists(&h.ns, "configmap/stays"), "no finalizer, no cascade");

    // The same app again, with the background form: its resources go.
    let app = format!(
        "apiVersion: argoproj.io/v1alpha1\nkind: Application\nmetadata:\n  name: {}\n  namespace: {}\n  finalizers:\n  - resources-finalizer.argocd.argoproj.io/background\nspec:\n  project: default\n  source:\n    repoURL: {}\n    targetRevision: main\n    path: app\n  destination:\n    server: https://kubernetes.default.svc\n    namespace: {}\n  syncPolicy:\n    automated: {{}}\n",
        h.name, h.control, h.url, h.ns.name
    );
    kubectl(&h.ns, &["apply", "-f", "-"], Some(&app));
    // Its object is still there from before: in sync without a sync.
    until("compared", || {
        h.app()["status"]["sync"]["status"] == "Synced"
    })
    .await;
    delete_app(&h);
    until("the application gone", || !app_exists(&h)).await;
    assert!(!exists(&h.ns, "configmap/stays"), "background cascade");
    h.finish().await;
}
