//! Controller latencies on the local control plane with a real Git server:
//!
//! - commit to synced: a commit to a 20-object application, then the refresh
//!   annotation (what a webhook does; no poll wait), until the cluster has
//!   the change and the Application reports Synced at the new revision;
//! - self-heal: a change by hand to a managed object until it is reverted
//!   (drifts spaced beyond the self-heal delay, so the latency is measured
//!   rather than the back-off).
//!
//! `cargo bench -p berth-controller --bench latency [-- ROUNDS]` (default 20;
//! needs `make tools`).
#![allow(clippy::expect_used, clippy::unwrap_used, missing_docs)]

use std::time::{Duration, Instant};

use berth_controller::controller::{Config, Controller};
use berth_testenv::TestNamespace;
use berth_testenv::git::{GitFixture, TempDir, git_daemon};
use kube::Api;
use kube::api::{DynamicObject, Patch, PatchParams};
use serde_json::{Value, json};

fn files(round: usize) -> Vec<(String, String)> {
    let mut out = Vec::new();
    for i in 0..10 {
        out.push((
            format!("app/cm-{i}.yaml"),
            format!("apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: cm-{i}\ndata:\n  round: \"{}\"\n", if i == 0 { round } else { 0 }),
        ));
    }
    for i in 0..5 {
        out.push((
            format!("app/deploy-{i}.yaml"),
            format!("apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: web-{i}\nspec:\n  replicas: 1\n  selector:\n    matchLabels: {{app: web-{i}}}\n  template:\n    metadata:\n      labels: {{app: web-{i}}}\n    spec:\n      containers:\n      - name: web\n        image: registry.example/web:1.0\n"),
        ));
        out.push((
            format!("app/svc-{i}.yaml"),
            format!("apiVersion: v1\nkind: Service\nmetadata:\n  name: web-{i}\nspec:\n  selector: {{app: web-{i}}}\n  ports: [{{port: 80, targetPort: 8080}}]\n"),
        ));
    }
    out
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let idx = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[idx.min(sorted.len() - 1)]
}

fn ms(d: Duration) -> String {
    format!("{:.0} ms", d.as_secs_f64() * 1000.0)
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let rounds: usize = std::env::args()
        .skip(1)
        .find_map(|a| a.parse().ok())
        .unwrap_or(20);
    let ns = TestNamespace::new("bench-latency").await.unwrap();
    let control = format!("{}-argocd", ns.name);
    let fixture = GitFixture::new().unwrap();
    let initial = files(0);
    let refs: Vec<(&str, &str)> = initial
        .iter()
        .map(|(a, b)| (a.as_str(), b.as_str()))
        .collect();
    let repo = fixture.create_repo("bench", &refs).unwrap();
    let daemon = git_daemon(&fixture).unwrap();
    let url = format!("git://127.0.0.1:{}/bench.git", daemon.port);
    let cache = TempDir::new("bench-cache").unwrap();
    let controller = Controller::start(
        ns.client.clone(),
        Config::new(&control, cache.path().to_path_buf()),
    )
    .await
    .unwrap();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let running = tokio::spawn(controller.run(async {
        let _ = stopped.await;
    }));

    let ar = berth_cluster::bootstrap::application_resource();
    let apps: Api<DynamicObject> = Api::namespaced_with(ns.client.clone(), &control, &ar);
    let cms: Api<k8s_openapi::api::core::v1::ConfigMap> =
        Api::namespaced(ns.client.clone(), &ns.name);
    let app: DynamicObject = serde_json::from_value(json!({
        "apiVersion": "argoproj.io/v1alpha1", "kind": "Application",
        "metadata": {"name": "bench", "namespace": control},
        "spec": {"project": "default",
            "source": {"repoURL": url, "targetRevision": "main", "path": "app"},
            "destination": {"server": "https://kubernetes.default.svc", "namespace": ns.name},
            "syncPolicy": {"automated": {"prune": true, "selfHeal": true}}}
    }))
    .unwrap();
    apps.create(&Default::default(), &app).await.unwrap();

    let status = |o: &DynamicObject| serde_json::to_value(o).unwrap()["status"].clone();
    let round_value = || async {
        cms.get_opt("cm-0")
            .await
            .ok()
            .flatten()
            .and_then(|c| c.data)
            .and_then(|d| d.get("round").cloned())
    };
    // First sync.
    let start = Instant::now();
    loop {
        let s = status(&apps.get("bench").await.unwrap());
        if s["sync"]["status"] == "Synced" && s["health"]["status"] == "Healthy" {
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(120),
            "first sync: {s}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    eprintln!("first sync and healthy: {}", ms(start.elapsed()));

    let mut commit_to_synced = Vec::new();
    for round in 1..=rounds {
        let next = files(round);
        let refs: Vec<(&str, &str)> = next.iter().map(|(a, b)| (a.as_str(), b.as_str())).collect();
        let sha = repo.commit(&refs, &format!("round {round}")).unwrap();
        repo.push("main").unwrap();
        let t = Instant::now();
        apps.patch(
            "bench",
            &PatchParams::default(),
            &Patch::Merge(
                json!({"metadata": {"annotations": {"argocd.argoproj.io/refresh": "normal"}}}),
            ),
        )
        .await
        .unwrap();
        loop {
            let s = status(&apps.get("bench").await.unwrap());
            if round_value().await.as_deref() == Some(&round.to_string())
                && s["sync"]["status"] == "Synced"
                && s["sync"]["revision"] == Value::String(sha.clone())
            {
                break;
            }
            assert!(t.elapsed() < Duration::from_secs(120), "round {round}: {s}");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        commit_to_synced.push(t.elapsed());
    }

    let mut self_heal = Vec::new();
    for _ in 0..rounds {
        // Beyond the self-heal delay since the last sync.
        tokio::time::sleep(Duration::from_millis(5500)).await;
        let t = Instant::now();
        cms.patch(
            "cm-0",
            &PatchParams::default(),
            &Patch::Merge(json!({"data": {"round": "drifted"}})),
        )
        .await
        .unwrap();
        loop {
            if round_value().await.as_deref() == Some(&rounds.to_string()) {
                break;
            }
            assert!(t.elapsed() < Duration::from_secs(120), "self-heal");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        self_heal.push(t.elapsed());
    }
    let _ = stop.send(());
    let _ = running.await;

    commit_to_synced.sort();
    self_heal.sort();
    println!("| latency (20-object app) | median | p99 | min | max | rounds |");
    println!("|---|---|---|---|---|---|");
    for (name, v) in [
        ("commit to synced (refresh annotation)", &commit_to_synced),
        ("self-heal of a change by hand", &self_heal),
    ] {
        println!(
            "| {name} | {} | {} | {} | {} | {} |",
            ms(percentile(v, 0.5)),
            ms(percentile(v, 0.99)),
            ms(v[0]),
            ms(v[v.len() - 1]),
            v.len()
        );
    }
}
