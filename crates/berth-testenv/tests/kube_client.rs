//! kube-rs against the local control plane: the client features the
//! controller will build on.
#![allow(clippy::expect_used, clippy::unwrap_used, missing_docs)]

mod common;

use std::time::Duration;

use berth_testenv::TestNamespace;
use futures::{StreamExt, TryStreamExt};
use k8s_openapi::api::apps::v1::Deployment;
use kube::api::{Api, DynamicObject, ListParams, Patch, PatchParams, PostParams};
use kube::discovery::{ApiResource, Discovery, Scope};
use kube::runtime::{WatchStreamExt, watcher};
use serde_json::json;

#[tokio::test]
async fn aggregated_discovery_lists_core_and_apps_resources() {
    let ns = TestNamespace::new("kube-discovery").await.unwrap();
    let discovery = Discovery::new(ns.client.clone())
        .run_aggregated()
        .await
        .unwrap();

    let (deploy, caps) = discovery
        .groups()
        .flat_map(|g| g.recommended_resources())
        .find(|(ar, _)| ar.group == "apps" && ar.kind == "Deployment")
        .expect("apps/v1 Deployment is discovered");
    assert_eq!(deploy.version, "v1");
    assert_eq!(deploy.plural, "deployments");
    assert_eq!(caps.scope, Scope::Namespaced);
    assert!(
        caps.subresources
            .iter()
            .any(|(sub, _)| sub.plural == "deployments/scale" || sub.plural == "scale"),
        "scale subresource: {:?}",
        caps.subresources
            .iter()
            .map(|(s, _)| s.plural.clone())
            .collect::<Vec<_>>()
    );

    let (ns_res, caps) = discovery
        .groups()
        .flat_map(|g| g.recommended_resources())
        .find(|(ar, _)| ar.group.is_empty() && ar.kind == "Namespace")
        .expect("core Namespace is discovered");
    assert_eq!(ns_res.version, "v1");
    assert_eq!(caps.scope, Scope::Cluster);
}

#[tokio::test]
async fn dynamic_objects_can_be_listed_and_watched() {
    let ns = TestNamespace::new("kube-dynamic").await.unwrap();
    let ar = ApiResource::from_gvk_with_plural(
        &kube::api::GroupVersionKind::gvk("", "v1", "ConfigMap"),
        "configmaps",
    );
    let api: Api<DynamicObject> = Api::namespaced_with(ns.client.clone(), &ns.name, &ar);

    // Watch first, so the events of the objects created below are seen.
    let stream = watcher(api.clone(), watcher::Config::default()).applied_objects();
    let mut stream = Box::pin(stream);

    for name in ["alpha", "beta"] {
        let obj: DynamicObject = serde_json::from_value(json!({
            "apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": name},
            "data": {"key": name},
        }))
        .unwrap();
        api.create(&PostParams::default(), &obj).await.unwrap();
    }

    let listed = api.list(&ListParams::default()).await.unwrap();
    // The root-CA publisher may or may not have added kube-root-ca.crt yet.
    let mut names: Vec<_> = listed
        .items
        .iter()
        .filter_map(|o| o.metadata.name.clone())
        .filter(|n| n != "kube-root-ca.crt")
        .collect();
    names.sort();
    assert_eq!(names, ["alpha", "beta"]);
    let alpha = listed
        .items
        .iter()
        .find(|o| o.metadata.name.as_deref() == Some("alpha"))
        .unwrap();
    assert_eq!(alpha.data["data"]["key"], "alpha");

    let mut seen = std::collections::BTreeSet::new();
    while !(seen.contains("alpha") && seen.contains("beta")) {
        let next = tokio::time::timeout(Duration::from_secs(60), stream.try_next())
            .await
            .expect("watch events arrive")
            .unwrap()
            .expect("the watch stream goes on");
        if let Some(name) = next.metadata.name {
            seen.insert(name);
        }
    }
}

#[tokio::test]
async fn server_side_apply_dry_run_returns_defaults_without_persisting() {
    let ns = TestNamespace::new("kube-dryrun").await.unwrap();
    let api: Api<Deployment> = Api::namespaced(ns.client.clone(), &ns.name);
    let desired = json!({
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": "dry"},
        "spec": {
            "selector": {"matchLabels": {"app": "dry"}},
            "template": {
                "metadata": {"labels": {"app": "dry"}},
                "spec": {"containers": [{"name": "app", "image": "registry.example/app:latest"}]}
            }
        }
    });
    let params = PatchParams::apply("berth-test").dry_run();
    let defaulted = api
        .patch("dry", &params, &Patch::Apply(&desired))
        .await
        .unwrap();

    let spec = defaulted.spec.expect("spec");
    assert_eq!(spec.replicas, Some(1), "replicas defaulted");
    assert_eq!(spec.revision_history_limit, Some(10));
    assert_eq!(spec.progress_deadline_seconds, Some(600));
    assert_eq!(
        spec.strategy.and_then(|s| s.type_).as_deref(),
        Some("RollingUpdate")
    );
    let container = &spec.template.spec.expect("pod spec").containers[0];
    assert_eq!(
        container.image_pull_policy.as_deref(),
        Some("Always"),
        "`latest` images are pulled always"
    );
    assert_eq!(
        container.termination_message_path.as_deref(),
        Some("/dev/termination-log")
    );
    let managers: Vec<_> = defaulted
        .metadata
        .managed_fields
        .unwrap_or_default()
        .into_iter()
        .filter_map(|m| m.manager)
        .collect();
    assert_eq!(managers, ["berth-test"]);

    let err = api
        .get("dry")
        .await
        .expect_err("a dry run persists nothing");
    assert!(
        matches!(err, kube::Error::Api(ref s) if s.code == 404),
        "{err:?}"
    );
}

#[tokio::test]
async fn watch_stream_sees_deployment_become_available() {
    let ns = TestNamespace::new("kube-available").await.unwrap();
    let api: Api<Deployment> = Api::namespaced(ns.client.clone(), &ns.name);
    let desired = json!({
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": "ok"},
        "spec": {
            "replicas": 3,
            "selector": {"matchLabels": {"app": "ok"}},
            "template": {"metadata": {"labels": {"app": "ok"}},
                "spec": {"containers": [{"name": "app", "image": "registry.example/app:1"}]}}
        }
    });
    api.patch(
        "ok",
        &PatchParams::apply("berth-test"),
        &Patch::Apply(&desired),
    )
    .await
    .unwrap();
    let stream =
        watcher(api, watcher::Config::default().fields("metadata.name=ok")).applied_objects();
    let mut available = stream
        .try_filter(|d| {
            let st = d.status.clone().unwrap_or_default();
            std::future::ready(st.available_replicas == Some(3) && st.updated_replicas == Some(3))
        })
        .boxed();
    tokio::time::timeout(Duration::from_secs(120), available.next())
        .await
        .expect("three simulated replicas become available")
        .expect("stream yields")
        .unwrap();
}
