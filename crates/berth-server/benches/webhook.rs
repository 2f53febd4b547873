//! Through the API server, with the controller in the same process, on the
//! local control plane and a real Git server, a 20-object application
//! (10 ConfigMaps, 5 Deployments, 5 Services, automated sync):
//!
//! - push to synced: a commit, then GitHub's push webhook to
//!   `/api/webhook`, until the cluster has the change and the Application
//!   reports Synced at the new commit (the webhook's own answer is timed
//!   too);
//! - diff: `GET /api/v1/applications/NAME/diff` of the unchanged app,
//!   beside `kubectl diff --server-side` of the same manifests (the peer:
//!   kubectl asks the API server for a dry run of every object each time).
//!
//! `cargo bench -p berth-server --bench webhook [-- ROUNDS]` (default 20;
//! needs the local control plane's tools; `BERTH_TEST_KUBECONFIG` to use a
//! running one).
#![allow(clippy::expect_used, clippy::unwrap_used, missing_docs)]

use std::time::{Duration, Instant};

use berth_controller::controller::{Config, Controller};
use berth_server::{Server, ServerConfig};
use berth_testenv::TestNamespace;
use berth_testenv::git::{GitFixture, TempDir, git_daemon};
use kube::Api;
use kube::api::DynamicObject;
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
    format!("{:.1} ms", d.as_secs_f64() * 1000.0)
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let rounds: usize = std::env::args()
        .skip(1)
        .find_map(|a| a.parse().ok())
        .unwrap_or(20);
    let ns = TestNamespace::new("bench-webhook").await.unwrap();
    let control = format!("{}-argocd", ns.name);
    let fixture = GitFixture::new().unwrap();
    let initial = files(0);
    let refs: Vec<(&str, &str)> = initial
        .iter()
        .map(|(a, b)| (a.as_str(), b.as_str()))
        .collect();
    let repo = fixture.create_repo("hooked", &refs).unwrap();
    let daemon = git_daemon(&fixture).unwrap();
    let url = format!("git://127.0.0.1:{}/hooked.git", daemon.port);
    let cache = TempDir::new("bench-webhook-cache").unwrap();
    // Polling far away: only the webhook brings commits in.
    let mut config = Config::new(&control, cache.path().to_path_buf());
    config.resync = Duration::from_secs(3600);
    let views = config.views.clone();
    let controller = Controller::start(ns.client.clone(), config).await.unwrap();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let running = tokio::spawn(controller.run(async {
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
    let http = reqwest::Client::new();

    let name = format!("hooked-{}", &ns.name[ns.name.len() - 6..]);
    let ar = berth_cluster::bootstrap::application_resource();
    let apps: Api<DynamicObject> = Api::namespaced_with(ns.client.clone(), &control, &ar);
    let cms: Api<k8s_openapi::api::core::v1::ConfigMap> =
        Api::namespaced(ns.client.clone(), &ns.name);
    let app: DynamicObject = serde_json::from_value(json!({
        "apiVersion": "argoproj.io/v1alpha1", "kind": "Application",
        "metadata": {"name": name, "namespace": control},
        "spec": {"project": "default",
            "source": {"repoURL": url, "targetRevision": "main", "path": "app"},
            "destination": {"server": "https://kubernetes.default.svc", "namespace": ns.name},
            "syncPolicy": {"automated": {"prune": true, "selfHeal": true}}}
    }))
    .unwrap();
    apps.create(&Default::default(), &app).await.unwrap();
    let status = |o: &DynamicObject| serde_json::to_value(o).unwrap()["status"].clone();
    let start = Instant::now();
    loop {
        let s = status(&apps.get(&name).await.unwrap());
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

    let round_value = || async {
        cms.get_opt("cm-0")
            .await
            .ok()
            .flatten()
            .and_then(|c| c.data)
            .and_then(|d| d.get("round").cloned())
    };
    let mut push_to_synced = Vec::new();
    let mut webhook_answer = Vec::new();
    for round in 1..=rounds {
        let next = files(round);
        let refs: Vec<(&str, &str)> = next.iter().map(|(a, b)| (a.as_str(), b.as_str())).collect();
        let sha = repo.commit(&refs, &format!("round {round}")).unwrap();
        repo.push("main").unwrap();
        let payload = json!({"ref": "refs/heads/main", "after": sha,
            "repository": {"html_url": url, "clone_url": url},
            "commits": [{"added": [], "modified": ["app/cm-0.yaml"], "removed": []}]});
        let t = Instant::now();
        let r = http
            .post(format!("{base}/api/webhook"))
            .header("X-GitHub-Event", "push")
            .json(&payload)
            .send()
            .await
            .unwrap();
        webhook_answer.push(t.elapsed());
        let body: Value = r.json().await.unwrap();
        assert_eq!(body["refreshed"], json!([name]), "{body}");
        loop {
            let s = status(&apps.get(&name).await.unwrap());
            if round_value().await.as_deref() == Some(&round.to_string())
                && s["sync"]["status"] == "Synced"
                && s["sync"]["revision"] == Value::String(sha.clone())
            {
                break;
            }
            assert!(t.elapsed() < Duration::from_secs(120), "round {round}: {s}");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        push_to_synced.push(t.elapsed());
    }

    // Diff of the unchanged app, and kubectl's of the same manifests.
    let dir = TempDir::new("bench-webhook-manifests").unwrap();
    for (path, content) in files(rounds) {
        let file = dir.path().join(path.replace('/', "-"));
        std::fs::write(file, content).unwrap();
    }
    let mut berth_diff = Vec::new();
    let mut kubectl_diff = Vec::new();
    for _ in 0..rounds {
        let t = Instant::now();
        let r = http
            .get(format!("{base}/api/v1/applications/{name}/diff"))
            .bearer_auth(&token)
            .send()
            .await
            .unwrap();
        let d: Value = r.json().await.unwrap();
        berth_diff.push(t.elapsed());
        assert_eq!(d["sync"], "Synced", "{d}");
        let t = Instant::now();
        let out = std::process::Command::new("kubectl")
            .arg("--kubeconfig")
            .arg(&ns.kubeconfig)
            .args([
                "diff",
                "--server-side",
                "--force-conflicts",
                "-n",
                &ns.name,
                "-f",
            ])
            .arg(dir.path())
            .output()
            .unwrap();
        kubectl_diff.push(t.elapsed());
        assert!(
            out.status.code().is_some_and(|c| c <= 1),
            "kubectl diff: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    drop(server);
    let _ = stop.send(());
    let _ = running.await;

    for v in [
        &mut push_to_synced,
        &mut webhook_answer,
        &mut berth_diff,
        &mut kubectl_diff,
    ] {
        v.sort();
    }
    println!("| 20-object app | median | p99 | min | max | rounds |");
    println!("|---|---|---|---|---|---|");
    for (what, v) in [
        ("push webhook to synced", &push_to_synced),
        ("webhook answer", &webhook_answer),
        ("`GET .../diff` (unchanged app)", &berth_diff),
        (
            "`kubectl diff --server-side` (same manifests)",
            &kubectl_diff,
        ),
    ] {
        println!(
            "| {what} | {} | {} | {} | {} | {} |",
            ms(percentile(v, 0.5)),
            ms(percentile(v, 0.99)),
            ms(v[0]),
            ms(v[v.len() - 1]),
            v.len()
        );
    }
    println!(
        "\ndiff: berth {:.1}x faster than kubectl (medians)",
        percentile(&kubectl_diff, 0.5).as_secs_f64() / percentile(&berth_diff, 0.5).as_secs_f64()
    );
}
