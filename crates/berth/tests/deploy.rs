//! The install manifests on the local control plane: `kubectl apply -k
//! deploy/` applies cleanly, and a controller running with the identity of
//! the ServiceAccount they create (impersonated) does its job — installs
//! what it needs, compares and syncs an Application — with exactly that
//! RBAC, which does not let it impersonate or escalate.
#![allow(clippy::expect_used, clippy::unwrap_used, missing_docs)]

use std::path::PathBuf;
use std::time::Duration;

use berth_controller::controller::{Config, Controller};
use berth_testenv::TestNamespace;
use berth_testenv::git::{GitFixture, TempDir, git_daemon};

fn deploy_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../deploy")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_install_manifests_apply_and_their_rbac_suffices() {
    let ns = TestNamespace::new("deploy").await.unwrap();
    let kubectl = |args: &[&str]| berth_testenv::kubectl(&ns.kubeconfig, args, None).unwrap();
    let out = kubectl(&["apply", "-k", deploy_dir().to_str().unwrap()]);
    assert!(
        out.status.success(),
        "kubectl apply -k deploy/: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    // The image is not built here: the Deployment is not run.
    let out = kubectl(&[
        "scale",
        "deployment",
        "berth",
        "-n",
        "argocd",
        "--replicas=0",
    ]);
    assert!(out.status.success());
    let sa = "system:serviceaccount:argocd:berth";
    let can = |verb: &str, what: &str| {
        let out = kubectl(&["auth", "can-i", verb, what, "--as", sa, "-A"]);
        String::from_utf8_lossy(&out.stdout).trim() == "yes"
    };
    assert!(can("create", "deployments.apps"));
    assert!(can("watch", "secrets"));
    assert!(!can("impersonate", "users"), "no impersonation");
    assert!(!can("escalate", "clusterroles.rbac.authorization.k8s.io"));
    assert!(!can("bind", "clusterroles.rbac.authorization.k8s.io"));

    // The controller as that ServiceAccount.
    let kubeconfig = kube::config::Kubeconfig::read_from(&ns.kubeconfig).unwrap();
    let mut config = kube::Config::from_custom_kubeconfig(kubeconfig, &Default::default())
        .await
        .unwrap();
    config.auth_info.impersonate = Some(sa.to_string());
    let client = kube::Client::try_from(config).unwrap();
    let fixture = GitFixture::new().unwrap();
    fixture
        .create_repo(
            "deployed",
            &[(
                "app/cm.yaml",
                "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: installed\ndata:\n  by: berth\n",
            )],
        )
        .unwrap();
    let daemon = git_daemon(&fixture).unwrap();
    let url = format!("git://127.0.0.1:{}/deployed.git", daemon.port);
    let cache = TempDir::new("deploy-cache").unwrap();
    let controller = Controller::start(client, Config::new("argocd", cache.path().to_path_buf()))
        .await
        .expect("the ServiceAccount may install and discover");
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let running = tokio::spawn(controller.run(async {
        let _ = stopped.await;
    }));
    let name = format!("deployed-{}", &ns.name[ns.name.len() - 6..]);
    let app = format!(
        "apiVersion: argoproj.io/v1alpha1\nkind: Application\nmetadata:\n  name: {name}\n  namespace: argocd\nspec:\n  project: default\n  source:\n    repoURL: {url}\n    targetRevision: main\n    path: app\n  destination:\n    server: https://kubernetes.default.svc\n    namespace: {}\n  syncPolicy:\n    automated: {{}}\n",
        ns.name
    );
    berth_testenv::kubectl_ok(&ns.kubeconfig, &["apply", "-f", "-"], Some(&app)).unwrap();
    let mut synced = false;
    for _ in 0..300 {
        let out = kubectl(&[
            "get",
            "configmap",
            "installed",
            "-n",
            &ns.name,
            "-o",
            "jsonpath={.data.by}",
        ]);
        if String::from_utf8_lossy(&out.stdout).trim() == "berth" {
            synced = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let status = kubectl(&[
        "get",
        "app",
        &name,
        "-n",
        "argocd",
        "-o",
        "jsonpath={.status}",
    ]);
    assert!(
        synced,
        "synced with the ServiceAccount's RBAC: {}",
        String::from_utf8_lossy(&status.stdout)
    );
    let _ = stop.send(());
    let _ = running.await;
    let _ = kubectl(&["delete", "app", &name, "-n", "argocd", "--wait=false"]);
}
