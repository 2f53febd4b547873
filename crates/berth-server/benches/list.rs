//! Listing applications through the API server: N Applications (default
//! 10,000) with a status of the size a small app has (five resources, one
//! history entry, an operation record), then `GET /api/v1/applications`
//! for the first page of 100 and for the whole list, and the web UI's list
//! page (`/applications`: its HTML, with the stylesheet and script it
//! loads), timed over HTTP on loopback with the bytes each answer takes,
//! and in Chromium (first contentful paint, bytes) when it is installed.
//!
//! Peer, side by side in the same rounds: kubectl listing the same
//! Applications from the Kubernetes API server (`kubectl get --raw` of the
//! first 100, and `kubectl get applications -o json` of all), the read an
//! Argo CD-less pipeline would do. Argo CD itself cannot be installed on
//! these machines; its published figure is 187 MB and 2.5–4.3 s for 6,000
//! applications.
//!
//! `cargo bench -p berth-server --bench list [-- N [ROUNDS]]` (needs the
//! local control plane's tools; `BERTH_TEST_KUBECONFIG` to use a running
//! one).
#![allow(clippy::expect_used, clippy::unwrap_used, missing_docs)]

use std::time::{Duration, Instant};

#[path = "support/browser.rs"]
mod browser;

use berth_server::{Server, ServerConfig};
use berth_testenv::TestNamespace;
use futures::StreamExt;
use kube::Api;
use kube::api::{DynamicObject, PostParams};
use serde_json::{Value, json};

fn app(name: &str, control: &str, dest: &str) -> Value {
    let resources: Vec<Value> = (0..5)
        .map(|i| {
            json!({"version": "v1", "kind": if i == 0 { "Service" } else { "ConfigMap" },
                "namespace": dest, "name": format!("{name}-{i}"), "status": "Synced",
                "health": {"status": "Healthy"}})
        })
        .collect();
    let source = json!({"repoURL": "https://git.example.com/org/apps.git", "targetRevision": "main", "path": format!("apps/{name}")});
    let sha = "3f9c2a1b7e5d4c6a8b0f1e2d3c4b5a6978695a4b";
    json!({
        "apiVersion": "argoproj.io/v1alpha1", "kind": "Application",
        "metadata": {"name": name, "namespace": control, "labels": {"team": "shop"}},
        "spec": {"project": "default", "source": source,
            "destination": {"server": "https://kubernetes.default.svc", "namespace": dest},
            "syncPolicy": {"automated": {"prune": true, "selfHeal": true}}},
        "status": {
            "sync": {"status": "Synced", "revision": sha, "comparedTo": {"source": source,
                "destination": {"server": "https://kubernetes.default.svc", "namespace": dest}}},
            "health": {"status": "Healthy"},
            "resources": resources,
            "summary": {"images": ["registry.example.com/shop/web:1.4.2"]},
            "reconciledAt": "2026-11-28T16:45:00Z",
            "operationState": {"operation": {"sync": {"revision": sha}, "initiatedBy": {"automated": true}},
                "phase": "Succeeded", "message": "successfully synced (all tasks run)",
                "startedAt": "2026-11-28T16:40:00Z", "finishedAt": "2026-11-28T16:40:02Z",
                "syncResult": {"revision": sha, "source": source}},
            "history": [{"id": 0, "revision": sha, "source": source,
                "deployStartedAt": "2026-11-28T16:40:00Z", "deployedAt": "2026-11-28T16:40:02Z"}],
        },
    })
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
    let count = args.first().copied().unwrap_or(10_000);
    let rounds = args.get(1).copied().unwrap_or(5);
    let ns = TestNamespace::new("bench-list").await.unwrap();
    let control = format!("{}-argocd", ns.name);
    berth_cluster::bootstrap::install(&ns.client, &control)
        .await
        .unwrap();
    let apps: Api<DynamicObject> = Api::namespaced_with(
        ns.client.clone(),
        &control,
        &berth_cluster::bootstrap::application_resource(),
    );
    let start = Instant::now();
    let creates = futures::stream::iter((0..count).map(|i| {
        let apps = apps.clone();
        let obj: DynamicObject =
            serde_json::from_value(app(&format!("app-{i:05}"), &control, &ns.name)).unwrap();
        async move { apps.create(&PostParams::default(), &obj).await.unwrap() }
    }))
    .buffer_unordered(16)
    .count()
    .await;
    eprintln!(
        "{creates} Applications created in {:.0} s",
        start.elapsed().as_secs_f64()
    );

    let started = Instant::now();
    let server = Server::start(
        ns.client.clone(),
        ServerConfig {
            namespace: control.clone(),
            listen: "127.0.0.1:0".parse().unwrap(),
            views: None,
        },
    )
    .await
    .unwrap();
    eprintln!(
        "server ready (cache filled) in {:.1} s",
        started.elapsed().as_secs_f64()
    );
    let token = server.token_for("admin").unwrap();
    let http = reqwest::Client::new();
    let fetch = async |path: &str| -> (Duration, usize, Value) {
        let t = Instant::now();
        let body = http
            .get(format!("{}{path}", server.url()))
            .bearer_auth(&token)
            .send()
            .await
            .unwrap()
            .bytes()
            .await
            .unwrap();
        let elapsed = t.elapsed();
        let v: Value = serde_json::from_slice(&body).unwrap();
        (elapsed, body.len(), v)
    };
    let (mut page_times, mut full_times) = (Vec::new(), Vec::new());
    let (mut page_bytes, mut full_bytes) = (0, 0);
    for _ in 0..rounds {
        let (t, b, v) = fetch("/api/v1/applications?limit=100").await;
        assert_eq!(v["items"].as_array().unwrap().len(), 100.min(count));
        page_times.push(t);
        page_bytes = b;
        let (t, b, v) = fetch("/api/v1/applications").await;
        assert_eq!(v["items"].as_array().unwrap().len(), count);
        full_times.push(t);
        full_bytes = b;
    }
    // The peer: kubectl against the API server that stores the same
    // Applications, a whole process per request as a script would run it.
    let kubectl = |args: &[&str]| -> (Duration, usize) {
        let t = Instant::now();
        let out = std::process::Command::new("kubectl")
            .arg("--kubeconfig")
            .arg(&ns.kubeconfig)
            .args(args)
            .output()
            .unwrap();
        let elapsed = t.elapsed();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        (elapsed, out.stdout.len())
    };
    let raw_page =
        format!("/apis/argoproj.io/v1alpha1/namespaces/{control}/applications?limit=100");
    let (mut kpage_times, mut kfull_times) = (Vec::new(), Vec::new());
    let (mut kpage_bytes, mut kfull_bytes) = (0, 0);
    for _ in 0..rounds {
        let (t, b) = kubectl(&["get", "--raw", &raw_page]);
        kpage_times.push(t);
        kpage_bytes = b;
        let (t, b) = kubectl(&[
            "get",
            "applications.argoproj.io",
            "-n",
            &control,
            "-o",
            "json",
        ]);
        kfull_times.push(t);
        kfull_bytes = b;
    }
    // The web UI's list page, as a browser loads it: the page, then its
    // stylesheet and script.
    let cookie = format!("argocd.token={token}");
    let mut ui_times = Vec::new();
    let mut ui_bytes = 0;
    for _ in 0..rounds {
        let t = Instant::now();
        let mut bytes = 0;
        for path in ["/applications", "/ui/style.css", "/ui/live.js"] {
            let body = http
                .get(format!("{}{path}", server.url()))
                .header("cookie", &cookie)
                .send()
                .await
                .unwrap()
                .bytes()
                .await
                .unwrap();
            if path == "/applications" {
                let html = String::from_utf8_lossy(&body);
                assert_eq!(html.matches("<tr data-app=").count(), 100.min(count));
            }
            bytes += body.len();
        }
        ui_times.push(t.elapsed());
        ui_bytes = bytes;
    }
    println!("applications: {count}, rounds: {rounds}");
    println!(
        "web UI list page (HTML + CSS + script): {:.1} ms median, {} bytes",
        median(&ui_times).as_secs_f64() * 1000.0,
        ui_bytes
    );
    println!(
        "first page (100): {:.1} ms median, {} bytes",
        median(&page_times).as_secs_f64() * 1000.0,
        page_bytes
    );
    println!(
        "full list: {:.0} ms median, {:.1} MB",
        median(&full_times).as_secs_f64() * 1000.0,
        full_bytes as f64 / 1e6
    );
    println!(
        "per application in the full list: {} bytes",
        full_bytes / count.max(1)
    );
    // The list page as a browser shows it: first contentful paint and
    // everything transferred.
    browser::render(&server.url(), &token, &["/applications"], rounds);
    let (kp, kf) = (median(&kpage_times), median(&kfull_times));
    println!(
        "peer, kubectl get --raw (first 100): {:.1} ms median, {} bytes ({:.1}x Berth's first page)",
        kp.as_secs_f64() * 1000.0,
        kpage_bytes,
        kp.as_secs_f64() / median(&page_times).as_secs_f64()
    );
    println!(
        "peer, kubectl get -o json (all): {:.0} ms median, {:.1} MB ({:.1}x Berth's full list)",
        kf.as_secs_f64() * 1000.0,
        kfull_bytes as f64 / 1e6,
        kf.as_secs_f64() / median(&full_times).as_secs_f64()
    );
}
