//! ApplicationSets on the local control plane with a real Git server: a
//! git directories generator makes one Application per directory (a new
//! directory pushed makes one more), which the controller then syncs; a
//! list generator's removed element deletes its Application; a matrix
//! combines Git's directories with a list; an
//! unsupported generator (pull requests) is reported in the status and changes nothing;
//! nothing is generated while Argo CD's ApplicationSet controller runs;
//! deleting the ApplicationSet deletes what it made.
#![allow(clippy::expect_used, clippy::unwrap_used, missing_docs)]

use std::time::Duration;

mod common;

use common::{Harness, exists, kubectl, until};
use serde_json::{Value, json};

fn cm(name: &str) -> String {
    format!("apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: {name}\ndata:\n  from: appset\n")
}

fn apps_of(h: &Harness, set: &str) -> Vec<String> {
    let list: Value = serde_json::from_str(&kubectl(
        &h.ns,
        &["get", "applications", "-n", &h.control, "-o", "json"],
        None,
    ))
    .unwrap();
    let mut names: Vec<String> = list["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|a| {
            a["metadata"]["ownerReferences"]
                .as_array()
                .is_some_and(|o| {
                    o.iter()
                        .any(|r| r["kind"] == "ApplicationSet" && r["name"] == set)
                })
        })
        .map(|a| a["metadata"]["name"].as_str().unwrap().to_string())
        .collect();
    names.sort();
    names
}

fn apply(h: &Harness, manifest: &Value) {
    kubectl(&h.ns, &["apply", "-f", "-"], Some(&manifest.to_string()));
}

fn set_status(h: &Harness, set: &str) -> Value {
    serde_json::from_str::<Value>(&kubectl(
        &h.ns,
        &["get", "applicationset", set, "-n", &h.control, "-o", "json"],
        None,
    ))
    .unwrap()["status"]
        .clone()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn application_sets_make_applications_from_generators() {
    let h = Harness::start(
        "appset",
        &[
            ("app/cm.yaml", &cm("unused")),
            ("apps/web/cm.yaml", &cm("web")),
            ("apps/api/cm.yaml", &cm("api")),
            ("apps/skip/cm.yaml", &cm("skip")),
        ],
        "",
        Duration::from_secs(3),
    )
    .await;
    // Tracking is by name, cluster-wide: names unique to this test.
    let suffix = &h.ns.name[h.ns.name.len() - 6..];
    let template = |name: &str, path: &str| {
        json!({"metadata": {"name": name, "labels": {"made-by": "appset"}},
            "spec": {"project": "default",
                "source": {"repoURL": h.url, "targetRevision": "main", "path": path},
                "destination": {"server": "https://kubernetes.default.svc", "namespace": h.ns.name},
                "syncPolicy": {"automated": {"prune": true}}}})
    };
    let dirs = json!({"apiVersion": "argoproj.io/v1alpha1", "kind": "ApplicationSet",
        "metadata": {"name": "dirs", "namespace": h.control},
        "spec": {"generators": [{"git": {"repoURL": h.url, "revision": "main",
            "directories": [{"path": "apps/*"}, {"path": "apps/skip", "exclude": true}]}}],
            "template": template(&format!("{{{{path.basename}}}}-{suffix}"), "{{path}}")}});
    apply(&h, &dirs);
    let (web, api, db) = (
        format!("web-{suffix}"),
        format!("api-{suffix}"),
        format!("db-{suffix}"),
    );
    until("one Application per directory", || {
        apps_of(&h, "dirs") == [api.clone(), web.clone()]
    })
    .await;
    until("the generated apps synced", || {
        exists(&h.ns, "configmap/web") && exists(&h.ns, "configmap/api")
    })
    .await;
    assert!(!exists(&h.ns, "configmap/skip"), "the excluded directory");
    until("the status says up to date", || {
        let s = set_status(&h, "dirs");
        s["conditions"].as_array().is_some_and(|c| {
            c.iter()
                .any(|c| c["type"] == "ResourcesUpToDate" && c["status"] == "True")
        }) && s["resources"].as_array().is_some_and(|r| r.len() == 2)
    })
    .await;

    // A directory pushed: one more Application.
    h.repo
        .commit(&[("apps/db/cm.yaml", &cm("db"))], "db")
        .unwrap();
    h.repo.push("main").unwrap();
    until("the new directory's Application", || {
        apps_of(&h, "dirs") == [api.clone(), db.clone(), web.clone()]
    })
    .await;

    // A list generator: an element removed deletes its Application.
    let listed = |elements: Value| {
        json!({"apiVersion": "argoproj.io/v1alpha1", "kind": "ApplicationSet",
            "metadata": {"name": "listed", "namespace": h.control},
            "spec": {"generators": [{"list": {"elements": elements}}],
                "template": template(&format!("{{{{team}}}}-{suffix}"), "apps/{{dir}}")}})
    };
    let (red, blue) = (format!("red-{suffix}"), format!("blue-{suffix}"));
    apply(
        &h,
        &listed(json!([{"team": "red", "dir": "web"}, {"team": "blue", "dir": "api"}])),
    );
    until("two listed Applications", || {
        apps_of(&h, "listed") == [blue.clone(), red.clone()]
    })
    .await;
    apply(&h, &listed(json!([{"team": "red", "dir": "web"}])));
    until("the removed element's Application deleted", || {
        apps_of(&h, "listed") == [red.clone()]
    })
    .await;

    // A matrix: Git's directories with a list, the list using the
    // directory's parameters.
    let matrix = json!({"apiVersion": "argoproj.io/v1alpha1", "kind": "ApplicationSet",
        "metadata": {"name": "matrix", "namespace": h.control},
        "spec": {"generators": [{"matrix": {"generators": [
            {"git": {"repoURL": h.url, "revision": "main", "directories": [{"path": "apps/web"}, {"path": "apps/api"}]}},
            {"list": {"elements": [{"tier": "{{path.basename}}x"}]}}]}}],
            "template": template(&format!("m-{{{{tier}}}}-{suffix}"), "{{path}}")}});
    apply(&h, &matrix);
    until("one Application per combination", || {
        apps_of(&h, "matrix") == [format!("m-apix-{suffix}"), format!("m-webx-{suffix}")]
    })
    .await;

    // An unsupported generator: said in the status, nothing made.
    let broken = json!({"apiVersion": "argoproj.io/v1alpha1", "kind": "ApplicationSet",
        "metadata": {"name": "broken", "namespace": h.control},
        "spec": {"generators": [{"pullRequest": {}}], "template": template("x", "apps/web")}});
    apply(&h, &broken);
    until("the error reported", || {
        set_status(&h, "broken")["conditions"]
            .as_array()
            .is_some_and(|c| {
                c.iter().any(|c| {
                    c["type"] == "ErrorOccurred"
                        && c["status"] == "True"
                        && c["message"].as_str().is_some_and(|m| {
                            m.contains(
                                "spec.generators[0]: the pullRequest generator is not supported yet",
                            )
                        })
                })
            })
    })
    .await;
    assert!(apps_of(&h, "broken").is_empty());

    // Beside Argo CD's own ApplicationSet controller, Berth holds back.
    kubectl(
        &h.ns,
        &[
            "create",
            "deployment",
            "argocd-applicationset-controller",
            "-n",
            &h.control,
            "--image",
            "registry.example/argocd:3",
        ],
        None,
    );
    let held = json!({"apiVersion": "argoproj.io/v1alpha1", "kind": "ApplicationSet",
        "metadata": {"name": "held", "namespace": h.control},
        "spec": {"generators": [{"list": {"elements": [{"team": "green", "dir": "web"}]}}],
            "template": template(&format!("held-{{{{team}}}}-{suffix}"), "apps/{{dir}}")}});
    // Seen by the live cache first.
    tokio::time::sleep(Duration::from_secs(2)).await;
    apply(&h, &held);
    tokio::time::sleep(Duration::from_secs(8)).await;
    assert!(
        apps_of(&h, "held").is_empty(),
        "nothing generated beside Argo CD's controller"
    );
    kubectl(
        &h.ns,
        &[
            "scale",
            "deployment",
            "argocd-applicationset-controller",
            "-n",
            &h.control,
            "--replicas",
            "0",
        ],
        None,
    );
    until(
        "generated once Argo CD's controller is scaled to zero",
        || apps_of(&h, "held") == [format!("held-green-{suffix}")],
    )
    .await;

    // Deleting the set deletes its Applications (owner references).
    kubectl(
        &h.ns,
        &["delete", "applicationset", "listed", "-n", &h.control],
        None,
    );
    until("the set's Applications garbage-collected", || {
        apps_of(&h, "listed").is_empty()
    })
    .await;
    h.finish().await;
}
