//! Starting, restarting and stopping control planes; several side by side;
//! non-admin users.
#![allow(clippy::expect_used, clippy::unwrap_used, missing_docs)]

mod common;

use std::time::Duration;

use berth_testenv::{ControlPlane, Options, TestNamespace, client_for};
use common::TempDir;
use k8s_openapi::api::core::v1::{ConfigMap, Namespace, Secret};
use kube::api::{Api, ObjectMeta, PostParams};
use serde_json::json;

fn pid_alive(pid: u32) -> bool {
    std::path::Path::new(&format!("/proc/{pid}")).exists()
        && !std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|s| s.contains(") Z "))
}

async fn create_configmap(kubeconfig: &std::path::Path, name: &str) {
    let client = client_for(kubeconfig).await.unwrap();
    let cm = ConfigMap {
        metadata: ObjectMeta {
            name: Some(name.into()),
            ..Default::default()
        },
        data: Some([("k".to_string(), "v".to_string())].into()),
        ..Default::default()
    };
    Api::<ConfigMap>::namespaced(client, "default")
        .create(&PostParams::default(), &cm)
        .await
        .unwrap();
}

#[tokio::test]
async fn two_control_planes_run_side_by_side_and_stop_when_stdin_closes() {
    let (a_dir, b_dir) = (TempDir::new("berth-side-a"), TempDir::new("berth-side-b"));
    let a =
        ControlPlane::start(Options::default().data_dir(&a_dir.0).nodes(1).quiet(true)).unwrap();
    let b =
        ControlPlane::start(Options::default().data_dir(&b_dir.0).nodes(1).quiet(true)).unwrap();
    assert_ne!(
        std::fs::read(a.kubeconfig()).unwrap(),
        std::fs::read(b.kubeconfig()).unwrap()
    );

    create_configmap(a.kubeconfig(), "only-in-a").await;
    let b_client = client_for(b.kubeconfig()).await.unwrap();
    let err = Api::<ConfigMap>::namespaced(b_client, "default")
        .get("only-in-a")
        .await
        .unwrap_err();
    assert!(
        matches!(err, kube::Error::Api(ref s) if s.code == 404),
        "instances share nothing: {err:?}"
    );

    let (pid_a, pid_b) = (a.pid(), b.pid());
    assert!(
        a.stop(Duration::from_secs(30)).unwrap(),
        "closing stdin stops it cleanly"
    );
    assert!(!pid_alive(pid_a));
    assert!(pid_alive(pid_b), "stopping one leaves the other running");
    drop(b);
    assert!(!pid_alive(pid_b), "dropping the handle stops it");
}

#[tokio::test]
async fn restart_on_the_same_data_dir_keeps_objects_and_credentials() {
    let dir = TempDir::new("berth-restart");
    let first =
        ControlPlane::start(Options::default().data_dir(&dir.0).nodes(1).quiet(true)).unwrap();
    create_configmap(first.kubeconfig(), "survivor").await;
    let kubeconfig = std::fs::read(first.kubeconfig()).unwrap();
    assert!(first.stop(Duration::from_secs(30)).unwrap());

    let second =
        ControlPlane::start(Options::default().data_dir(&dir.0).nodes(1).quiet(true)).unwrap();
    assert_eq!(
        std::fs::read(second.kubeconfig()).unwrap(),
        kubeconfig,
        "same CA, credentials and address"
    );
    let client = client_for(second.kubeconfig()).await.unwrap();
    let cm = Api::<ConfigMap>::namespaced(client, "default")
        .get("survivor")
        .await
        .unwrap();
    assert_eq!(cm.data.unwrap()["k"], "v");
}

#[tokio::test]
async fn a_data_dir_in_use_is_refused() {
    let dir = TempDir::new("berth-locked");
    let _first =
        ControlPlane::start(Options::default().data_dir(&dir.0).nodes(1).quiet(true)).unwrap();
    let err =
        ControlPlane::start(Options::default().data_dir(&dir.0).nodes(1).quiet(true)).unwrap_err();
    assert!(matches!(err, berth_testenv::Error::Exited { .. }), "{err}");
}

#[tokio::test]
async fn issued_users_get_only_what_rbac_grants() {
    let ns = TestNamespace::new("rbac-user").await.unwrap();
    let kubeconfig = ns.issue_user("dev-alice", &["developers"]).unwrap();
    let alice = client_for(&kubeconfig).await.unwrap();

    let err = Api::<ConfigMap>::namespaced(alice.clone(), &ns.name)
        .list(&Default::default())
        .await
        .unwrap_err();
    assert!(
        matches!(err, kube::Error::Api(ref s) if s.code == 403),
        "no permissions yet: {err:?}"
    );

    // Grant the group edit rights on ConfigMaps only, in this namespace.
    let admin = ns.client.clone();
    let role: kube::api::DynamicObject = serde_json::from_value(json!({
        "apiVersion": "rbac.authorization.k8s.io/v1", "kind": "Role",
        "metadata": {"name": "cm-editor", "namespace": ns.name},
        "rules": [{"apiGroups": [""], "resources": ["configmaps"], "verbs": ["*"]}]
    }))
    .unwrap();
    let binding: kube::api::DynamicObject = serde_json::from_value(json!({
        "apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding",
        "metadata": {"name": "developers-cm", "namespace": ns.name},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "cm-editor"},
        "subjects": [{"apiGroup": "rbac.authorization.k8s.io", "kind": "Group", "name": "developers"}]
    })).unwrap();
    let gvk = |k: &str| {
        kube::api::ApiResource::from_gvk(&kube::api::GroupVersionKind::gvk(
            "rbac.authorization.k8s.io",
            "v1",
            k,
        ))
    };
    Api::namespaced_with(admin.clone(), &ns.name, &gvk("Role"))
        .create(&PostParams::default(), &role)
        .await
        .unwrap();
    Api::namespaced_with(admin.clone(), &ns.name, &gvk("RoleBinding"))
        .create(&PostParams::default(), &binding)
        .await
        .unwrap();

    let cms = Api::<ConfigMap>::namespaced(alice.clone(), &ns.name);
    let cm = ConfigMap {
        metadata: ObjectMeta {
            name: Some("by-alice".into()),
            ..Default::default()
        },
        ..Default::default()
    };
    cms.create(&PostParams::default(), &cm).await.unwrap();
    let err = Api::<Secret>::namespaced(alice.clone(), &ns.name)
        .list(&Default::default())
        .await
        .unwrap_err();
    assert!(
        matches!(err, kube::Error::Api(ref s) if s.code == 403),
        "secrets stay forbidden: {err:?}"
    );
    let err = Api::<Namespace>::all(alice)
        .list(&Default::default())
        .await
        .unwrap_err();
    assert!(
        matches!(err, kube::Error::Api(ref s) if s.code == 403),
        "cluster scope stays forbidden: {err:?}"
    );
}

#[tokio::test]
async fn control_plane_exits_when_its_parent_is_killed() {
    // A parent that holds the control plane's stdin and is then killed with
    // SIGKILL, as a panicking or killed test run would be: no cleanup code
    // runs, yet the control plane must not outlive it.
    let dir = TempDir::new("berth-orphan");
    let program = berth_testenv::find_tool("berth-testenv").unwrap();
    let script = format!(
        "mkfifo '{d}/in'; '{p}' run --data-dir '{d}/cluster' --nodes 1 --exit-with-stdin <'{d}/in' >'{d}/out' 2>/dev/null & echo $! >'{d}/pid'; exec 3>'{d}/in'; exec sleep 600",
        d = dir.0.display(),
        p = program.display()
    );
    let mut parent = std::process::Command::new("bash")
        .arg("-c")
        .arg(script)
        .spawn()
        .unwrap();
    common::eventually(
        "the orphan-to-be to be ready",
        Duration::from_secs(120),
        async || {
            std::fs::read_to_string(dir.0.join("out"))
                .ok()
                .filter(|s| s.starts_with("kubeconfig: "))
                .map(|_| ())
        },
    )
    .await;
    let pid: u32 = std::fs::read_to_string(dir.0.join("pid"))
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    assert!(pid_alive(pid));
    parent.kill().unwrap();
    parent.wait().unwrap();
    common::eventually(
        "the control plane to exit after its parent died",
        Duration::from_secs(60),
        async || (!pid_alive(pid)).then_some(()),
    )
    .await;
}
