//! Health of objects as real controllers report them on the local control
//! plane (with the simulator's faults).
#![allow(clippy::expect_used, clippy::unwrap_used, missing_docs)]

use std::time::{Duration, Instant};

use berth_engine::health::{Status, check};
use berth_testenv::TestNamespace;
use kube::api::{Api, DynamicObject, ListParams, Patch, PatchParams};
use kube::discovery::ApiResource;
use serde_json::json;

async fn wait_health(api: &Api<DynamicObject>, name: &str, want: Status) -> String {
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let obj = api.get(name).await.unwrap();
        let value = serde_json::to_value(&obj).unwrap();
        let health = check(&value).unwrap();
        if health.status == want {
            return health.message;
        }
        assert!(
            Instant::now() < deadline,
            "{name}: still {:?} ({})",
            health.status,
            health.message
        );
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
}

fn deployment(name: &str, fault: Option<&str>) -> serde_json::Value {
    let annotations = match fault {
        Some(f) => json!({"testenv.berth.io/fault": f}),
        None => json!({}),
    };
    json!({
        "apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": name},
        "spec": {"replicas": 2, "progressDeadlineSeconds": 5, "selector": {"matchLabels": {"app": name}},
            "template": {"metadata": {"labels": {"app": name}, "annotations": annotations},
                "spec": {"containers": [{"name": "app", "image": "registry.example/app:1"}]}}}
    })
}

#[tokio::test]
async fn deployments_and_pods_as_controllers_report_them() {
    let ns = TestNamespace::new("engine-health").await.unwrap();
    let ar = ApiResource::from_gvk(&kube::api::GroupVersionKind::gvk(
        "apps",
        "v1",
        "Deployment",
    ));
    let deployments: Api<DynamicObject> = Api::namespaced_with(ns.client.clone(), &ns.name, &ar);
    for (name, fault) in [("good", None), ("crash", Some("CrashLoopBackOff"))] {
        deployments
            .patch(
                name,
                &PatchParams::apply("berth-test"),
                &Patch::Apply(deployment(name, fault)),
            )
            .await
            .unwrap();
    }
    assert_eq!(wait_health(&deployments, "good", Status::Healthy).await, "");
    assert_eq!(
        wait_health(&deployments, "crash", Status::Degraded).await,
        "Deployment \"crash\" exceeded its progress deadline"
    );

    let pod_ar = ApiResource::from_gvk(&kube::api::GroupVersionKind::gvk("", "v1", "Pod"));
    let pods: Api<DynamicObject> = Api::namespaced_with(ns.client.clone(), &ns.name, &pod_ar);
    let crashing = pods
        .list(&ListParams::default().labels("app=crash"))
        .await
        .unwrap();
    assert!(!crashing.items.is_empty());
    // Items of a list carry no apiVersion and kind of their own.
    let as_pod = |pod: &DynamicObject| {
        let mut v = serde_json::to_value(pod).unwrap();
        v["apiVersion"] = json!("v1");
        v["kind"] = json!("Pod");
        v
    };
    for pod in crashing.items {
        let health = check(&as_pod(&pod)).unwrap();
        assert_eq!(health.status, Status::Degraded);
        assert!(
            health
                .message
                .contains("back-off restarting failed container"),
            "{}",
            health.message
        );
    }
    for pod in pods
        .list(&ListParams::default().labels("app=good"))
        .await
        .unwrap()
        .items
    {
        assert_eq!(check(&as_pod(&pod)).unwrap().status, Status::Healthy);
    }
}

#[tokio::test]
async fn local_api_services_are_healthy() {
    let ns = TestNamespace::new("engine-apiservice").await.unwrap();
    let ar = ApiResource::from_gvk(&kube::api::GroupVersionKind::gvk(
        "apiregistration.k8s.io",
        "v1",
        "APIService",
    ));
    let api: Api<DynamicObject> = Api::all_with(ns.client.clone(), &ar);
    let obj = api.get("v1.apps").await.unwrap();
    let health = check(&serde_json::to_value(&obj).unwrap()).unwrap();
    assert_eq!(health.status, Status::Healthy);
    assert_eq!(
        health.message,
        "Local: Local APIServices are always available"
    );
}
