//! The node and pod simulator: pods start, jobs complete, and the fault
//! annotation produces the failures health checks must recognise.
#![allow(clippy::expect_used, clippy::unwrap_used, missing_docs)]

mod common;

use std::time::Duration;

use berth_testenv::TestNamespace;
use common::eventually;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::{Node, Pod};
use kube::api::{Api, ListParams, Patch, PatchParams};
use serde_json::json;

const LIMIT: Duration = Duration::from_secs(120);

fn deployment(name: &str, fault: Option<&str>) -> serde_json::Value {
    let mut annotations = serde_json::Map::new();
    if let Some(f) = fault {
        annotations.insert("testenv.berth.io/fault".into(), f.into());
    }
    json!({
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": name},
        "spec": {
            "replicas": 2,
            "progressDeadlineSeconds": 5,
            "selector": {"matchLabels": {"app": name}},
            "template": {
                "metadata": {"labels": {"app": name}, "annotations": annotations},
                "spec": {"containers": [{"name": "app", "image": "registry.example/app:1"}]}
            }
        }
    })
}

async fn pods_of(ns: &TestNamespace, app: &str) -> Vec<Pod> {
    Api::<Pod>::namespaced(ns.client.clone(), &ns.name)
        .list(&ListParams::default().labels(&format!("app={app}")))
        .await
        .unwrap()
        .items
}

fn waiting_reason(pod: &Pod) -> Option<String> {
    pod.status
        .as_ref()?
        .container_statuses
        .as_ref()?
        .first()?
        .state
        .as_ref()?
        .waiting
        .as_ref()?
        .reason
        .clone()
}

fn condition(d: &Deployment, typ: &str) -> Option<(String, String)> {
    d.status
        .as_ref()?
        .conditions
        .as_ref()?
        .iter()
        .find(|c| c.type_ == typ)
        .map(|c| (c.status.clone(), c.reason.clone().unwrap_or_default()))
}

#[tokio::test]
async fn nodes_are_ready_and_schedulable() {
    let ns = TestNamespace::new("sim-nodes").await.unwrap();
    let nodes = Api::<Node>::all(ns.client.clone())
        .list(&ListParams::default())
        .await
        .unwrap();
    assert!(nodes.items.len() >= 3, "{} nodes", nodes.items.len());
    for node in nodes.items {
        let ready = node
            .status
            .unwrap()
            .conditions
            .unwrap()
            .into_iter()
            .find(|c| c.type_ == "Ready")
            .unwrap();
        assert_eq!(ready.status, "True");
        assert!(
            node.spec.unwrap().taints.unwrap_or_default().is_empty(),
            "no not-ready taint left"
        );
    }
}

#[tokio::test]
async fn crashloop_fault_keeps_a_deployment_unavailable() {
    let ns = TestNamespace::new("sim-crashloop").await.unwrap();
    let api: Api<Deployment> = Api::namespaced(ns.client.clone(), &ns.name);
    api.patch(
        "crash",
        &PatchParams::apply("berth-test"),
        &Patch::Apply(deployment("crash", Some("CrashLoopBackOff"))),
    )
    .await
    .unwrap();

    let pods = eventually("pods in CrashLoopBackOff", LIMIT, async || {
        let pods = pods_of(&ns, "crash").await;
        (pods.len() == 2
            && pods
                .iter()
                .all(|p| waiting_reason(p).as_deref() == Some("CrashLoopBackOff")))
        .then_some(pods)
    })
    .await;
    for pod in &pods {
        let st = pod.status.as_ref().unwrap();
        assert_eq!(st.phase.as_deref(), Some("Running"));
        let cs = &st.container_statuses.as_ref().unwrap()[0];
        assert!(!cs.ready);
        assert!(cs.restart_count >= 1);
        assert_eq!(
            cs.last_state
                .as_ref()
                .unwrap()
                .terminated
                .as_ref()
                .unwrap()
                .exit_code,
            1
        );
    }

    // The deployment controller itself gives up on it: never Available.
    let d = eventually("the progress deadline to pass", LIMIT, async || {
        let d = api.get("crash").await.unwrap();
        (condition(&d, "Progressing").map(|c| c.1).as_deref() == Some("ProgressDeadlineExceeded"))
            .then_some(d)
    })
    .await;
    assert_eq!(
        condition(&d, "Available").map(|c| c.0).as_deref(),
        Some("False")
    );
    assert_eq!(d.status.unwrap().available_replicas.unwrap_or(0), 0);
}

#[tokio::test]
async fn image_pull_and_never_ready_faults() {
    let ns = TestNamespace::new("sim-faults").await.unwrap();
    let api: Api<Deployment> = Api::namespaced(ns.client.clone(), &ns.name);
    for (name, fault) in [("pull", "ImagePullBackOff"), ("stuck", "NeverReady")] {
        api.patch(
            name,
            &PatchParams::apply("berth-test"),
            &Patch::Apply(deployment(name, Some(fault))),
        )
        .await
        .unwrap();
    }
    eventually("pods in ImagePullBackOff", LIMIT, async || {
        let pods = pods_of(&ns, "pull").await;
        (pods.len() == 2
            && pods.iter().all(|p| {
                waiting_reason(p).as_deref() == Some("ImagePullBackOff")
                    && p.status.as_ref().unwrap().phase.as_deref() == Some("Pending")
            }))
        .then_some(())
    })
    .await;
    let pods = eventually("never-ready pods running", LIMIT, async || {
        let pods = pods_of(&ns, "stuck").await;
        let running = |p: &Pod| {
            p.status
                .as_ref()
                .and_then(|s| s.container_statuses.as_ref())
                .and_then(|c| c.first())
                .and_then(|c| c.state.as_ref())
                .is_some_and(|s| s.running.is_some())
        };
        (pods.len() == 2 && pods.iter().all(running)).then_some(pods)
    })
    .await;
    for pod in pods {
        let ready = pod
            .status
            .unwrap()
            .conditions
            .unwrap()
            .into_iter()
            .find(|c| c.type_ == "Ready")
            .unwrap();
        assert_eq!(ready.status, "False");
    }
    let d = eventually(
        "progress deadline of the never-ready deployment",
        LIMIT,
        async || {
            let d = api.get("stuck").await.unwrap();
            (condition(&d, "Progressing").map(|c| c.1).as_deref()
                == Some("ProgressDeadlineExceeded"))
            .then_some(d)
        },
    )
    .await;
    assert_eq!(d.status.unwrap().ready_replicas.unwrap_or(0), 0);
}

#[tokio::test]
async fn jobs_complete_and_failed_fault_fails_them() {
    let ns = TestNamespace::new("sim-jobs").await.unwrap();
    let api: Api<Job> = Api::namespaced(ns.client.clone(), &ns.name);
    for (name, fault) in [("ok", None), ("bad", Some("Failed"))] {
        let mut annotations = serde_json::Map::new();
        if let Some(f) = fault {
            annotations.insert("testenv.berth.io/fault".into(), json!(f));
        }
        let job = json!({
            "apiVersion": "batch/v1", "kind": "Job",
            "metadata": {"name": name},
            "spec": {
                "backoffLimit": 0,
                "template": {
                    "metadata": {"annotations": annotations},
                    "spec": {"restartPolicy": "Never", "containers": [{"name": "run", "image": "registry.example/task:1"}]}
                }
            }
        });
        api.patch(name, &PatchParams::apply("berth-test"), &Patch::Apply(&job))
            .await
            .unwrap();
    }
    let job_condition = |job: &Job, typ: &str| {
        job.status
            .as_ref()
            .and_then(|s| s.conditions.as_ref())
            .is_some_and(|cs| cs.iter().any(|c| c.type_ == typ && c.status == "True"))
    };
    eventually("job ok to complete", LIMIT, async || {
        let job = api.get("ok").await.unwrap();
        job_condition(&job, "Complete").then_some(())
    })
    .await;
    eventually("job bad to fail", LIMIT, async || {
        let job = api.get("bad").await.unwrap();
        job_condition(&job, "Failed").then_some(())
    })
    .await;
    let ok = api.get("ok").await.unwrap();
    assert_eq!(ok.status.unwrap().succeeded, Some(1));
}
