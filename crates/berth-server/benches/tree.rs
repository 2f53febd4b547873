//! The web UI's application page for a large app: one Application of N
//! resources (default 2,000: 5% Deployments of one replica, whose
//! ReplicaSets and Pods join the tree, 5% Services, the rest ConfigMaps),
//! synced by the controller running in the same process as the API server,
//! as `berth up` runs them, against the local control plane with a real
//! Git server. Measured: the page's HTML over HTTP on loopback (median and
//! bytes), as a tree and as the flat list, and in Chromium (first
//! contentful paint, load, bytes) when it is installed.
//!
//! `cargo bench -p berth-server --bench tree [-- N [ROUNDS]]`.
#![allow(clippy::expect_used, clippy::unwrap_used, missing_docs)]

use std::time::{Duration, Instant};

#[path = "support/browser.rs"]
mod browser;

use berth_controller::controller::{Config, Controller};
use berth_server::{Server, ServerConfig};
use berth_testenv::TestNamespace;
use berth_testenv::git::{GitFixture, TempDir, git_daemon};
use serde_json::Value;

fn manifest(count: usize) -> String {
    let mut m = String::new();
    let (deployments, services) = (count / 20, count / 20);
    for i in 0..count {
        if i < deployments {
            m.push_str(&format!(
                "---\napiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: web-{i:04}\nspec:\n  replicas: 1\n  selector:\n    matchLabels: {{app: web-{i:04}}}\n  template:\n    metadata:\n      labels: {{app: web-{i:04}}}\n    spec:\n      containers:\n      - name: web\n        image: registry.example.com/web:1.0\n"
            ));
        } else if i < deployments + services {
            m.push_str(&format!(
                "---\napiVersion: v1\nkind: Service\nmetadata:\n  name: svc-{i:04}\nspec:\n  ports:\n  - port: 80\n  selector: {{app: web}}\n"
            ));
        } else {
            m.push_str(&format!(
                "---\napiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: cm-{i:04}\ndata:\n  index: \"{i}\"\n"
            ));
        }
    }
    m
}

fn median(v: &[Duration]) -> Duration {
    let mut v = v.to_vec();
    v.sort();
    v[v.len() / 2]
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let args: Vec<usize> = std::env::args()
        .skip(1)
        .filter_map(|a| a.parse().ok())
        .collect();
    let count = args.first().copied().unwrap_or(2_000);
    let rounds = args.get(1).copied().unwrap_or(5);
    let ns = TestNamespace::new("bench-tree").await.unwrap();
    let control = format!("{}-argocd", ns.name);
    berth_cluster::bootstrap::install(&ns.client, &control)
        .await
        .unwrap();
    let fixture = GitFixture::new().unwrap();
    fixture
        .create_repo("tree", &[("app/all.yaml", &manifest(count))])
        .unwrap();
    let daemon = git_daemon(&fixture).unwrap();
    let url = format!("git://127.0.0.1:{}/tree.git", daemon.port);
    let cache = TempDir::new("bench-tree").unwrap();
    let config = Config::new(&control, cache.path().to_path_buf());
    let views = config.views.clone();
    let controller = Controller::start(ns.client.clone(), config).await.unwrap();
    let (_stop, stopped) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(controller.run(async {
        let _ = stopped.await;
    }));
    let server = Server::start(
        ns.client.clone(),
        ServerConfig {
            namespace: control.clone(),
            listen: "127.0.0.1:0".parse().unwrap(),
            views: Some(views),
        },
    )
    .await
    .unwrap();
    let base = server.url();
    let token = server.token_for("admin").unwrap();
    let app = format!("tree-{}", &ns.name[ns.name.len() - 6..]);
    let application = format!(
        "apiVersion: argoproj.io/v1alpha1\nkind: Application\nmetadata:\n  name: {app}\n  namespace: {control}\nspec:\n  project: default\n  source:\n    repoURL: {url}\n    targetRevision: main\n    path: app\n  destination:\n    server: https://kubernetes.default.svc\n    namespace: {}\n  syncPolicy:\n    automated: {{}}\n",
        ns.name
    );
    berth_testenv::kubectl_ok(&ns.kubeconfig, &["apply", "-f", "-"], Some(&application)).unwrap();
    let http = reqwest::Client::new();
    let start = Instant::now();
    loop {
        let a: Value = http
            .get(format!("{base}/api/v1/applications/{app}"))
            .bearer_auth(&token)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap_or(Value::Null);
        if a["status"]["sync"]["status"] == "Synced"
            && a["status"]["operationState"]["phase"] == "Succeeded"
        {
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(900),
            "not synced: {}",
            a["status"]["operationState"]
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    eprintln!(
        "{count} resources synced in {:.0} s",
        start.elapsed().as_secs_f64()
    );
    // The tree grows as the ReplicaSets and Pods appear.
    let tree_nodes = async || -> usize {
        let t: Value = http
            .get(format!("{base}/api/v1/applications/{app}/resource-tree"))
            .bearer_auth(&token)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        t["nodes"].as_array().map(Vec::len).unwrap_or(0)
    };
    let want = count + 2 * (count / 20);
    for _ in 0..600 {
        if tree_nodes().await >= want {
            break;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let nodes = tree_nodes().await;
    let cookie = format!("argocd.token={token}");
    let page = format!("/applications/{app}");
    let flat = format!("/applications/{app}?resources=list");
    println!("resources: {count}, tree nodes: {nodes}, rounds: {rounds}");
    for path in [&page, &flat] {
        let mut times = Vec::new();
        let mut bytes = 0;
        for _ in 0..rounds {
            let t = Instant::now();
            let body = http
                .get(format!("{base}{path}"))
                .header("cookie", &cookie)
                .send()
                .await
                .unwrap()
                .text()
                .await
                .unwrap();
            times.push(t.elapsed());
            assert!(body.contains(&format!("{count} resources")), "{path}");
            bytes = body.len();
        }
        println!(
            "server {path}: {:.0} ms median, {} bytes of HTML",
            median(&times).as_secs_f64() * 1000.0,
            bytes
        );
    }
    browser::render(&base, &token, &[&page, &flat], rounds);
}
