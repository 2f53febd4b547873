//! Scale benchmarks of `berth controller`, run as its own process against
//! the local control plane, with a real Git server:
//!
//! - `apps N` (default 1,000): the shape of Argo CD's published scale test.
//!   N Applications of one ConfigMap each, automated, exist before the
//!   controller starts; measured: time from the controller's start until
//!   every app is Synced and its sync Succeeded, the controller's peak
//!   resident memory and its CPU seconds.
//! - `objects N` (default 500): one Application of N objects, already
//!   compared (OutOfSync) when the sync is asked for; measured: time from
//!   the request until the sync Succeeded, against `kubectl apply
//!   --server-side -f` of the same rendered objects into a fresh namespace
//!   of the same control plane, run side by side (alternating, ROUNDS
//!   times each).
//!
//! `cargo bench -p berth --bench scale -- apps [N]` or
//! `cargo bench -p berth --bench scale -- objects [N] [ROUNDS]`.
#![allow(clippy::expect_used, clippy::unwrap_used, missing_docs)]

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use berth_testenv::TestNamespace;
use berth_testenv::git::{GitFixture, TempDir, git_daemon};
use kube::Api;
use kube::api::{DynamicObject, ListParams, Patch, PatchParams, PostParams};
use serde_json::{Value, json};

/// Clock ticks per second for /proc/PID/stat (Linux's USER_HZ).
const TICKS: f64 = 100.0;

struct Process {
    child: Child,
}

impl Process {
    fn rss_peak_kib(&self) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id()))
            .unwrap_or_default();
        status
            .lines()
            .find(|l| l.starts_with("VmHWM:"))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|v| v.parse().ok())
            .unwrap_or(0)
    }

    fn cpu_seconds(&self) -> f64 {
        let stat =
            std::fs::read_to_string(format!("/proc/{}/stat", self.child.id())).unwrap_or_default();
        // Fields after the command name (which may hold spaces).
        let rest = stat.rsplit_once(')').map(|(_, r)| r).unwrap_or_default();
        let fields: Vec<&str> = rest.split_whitespace().collect();
        let ticks = |i: usize| {
            fields
                .get(i)
                .and_then(|v| v.parse::<f64>().ok())
                .unwrap_or(0.0)
        };
        // utime and stime are fields 14 and 15 of stat: 11 and 12 here.
        (ticks(11) + ticks(12)) / TICKS
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start_controller(kubeconfig: &Path, control: &str, cache: &Path) -> Process {
    let log = std::fs::File::create(cache.join("controller.log")).unwrap();
    let child = Command::new(env!("CARGO_BIN_EXE_berth"))
        .args(["controller", "--kubeconfig"])
        .arg(kubeconfig)
        .args(["--namespace", control, "--cache-dir"])
        .arg(cache.join("cache"))
        .env("RUST_LOG", "warn")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .unwrap();
    Process { child }
}

fn app(name: &str, control: &str, url: &str, path: &str, dest: &str, automated: bool) -> Value {
    let mut spec = json!({"project": "default",
        "source": {"repoURL": url, "targetRevision": "main", "path": path},
        "destination": {"server": "https://kubernetes.default.svc", "namespace": dest}});
    if automated {
        spec["syncPolicy"] = json!({"automated": {"prune": true}});
    }
    json!({"apiVersion": "argoproj.io/v1alpha1", "kind": "Application",
        "metadata": {"name": name, "namespace": control}, "spec": spec})
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

async fn apps_bench(count: usize) {
    let ns = TestNamespace::new("bench-apps").await.unwrap();
    let control = format!("{}-argocd", ns.name);
    let fixture = GitFixture::new().unwrap();
    let files: Vec<(String, String)> = (0..count)
        .map(|i| {
            (
                format!("apps/app-{i:05}/cm.yaml"),
                format!("apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: cm-{i:05}\ndata:\n  index: \"{i}\"\n"),
            )
        })
        .collect();
    let refs: Vec<(&str, &str)> = files
        .iter()
        .map(|(a, b)| (a.as_str(), b.as_str()))
        .collect();
    fixture.create_repo("apps", &refs).unwrap();
    let daemon = git_daemon(&fixture).unwrap();
    let url = format!("git://127.0.0.1:{}/apps.git", daemon.port);
    let cache = TempDir::new("bench-apps").unwrap();

    // The CRDs and namespace come from a first, short start.
    let boot = berth_cluster::bootstrap::install(&ns.client, &control).await;
    boot.unwrap();
    let apps: Api<DynamicObject> = Api::namespaced_with(
        ns.client.clone(),
        &control,
        &berth_cluster::bootstrap::application_resource(),
    );
    for i in 0..count {
        let a = app(
            &format!("app-{i:05}"),
            &control,
            &url,
            &format!("apps/app-{i:05}"),
            &ns.name,
            true,
        );
        apps.create(&PostParams::default(), &serde_json::from_value(a).unwrap())
            .await
            .unwrap();
    }
    eprintln!("{count} Applications created; starting the controller");
    let start = Instant::now();
    let controller = start_controller(&ns.kubeconfig, &control, cache.path());
    let mut last_report = Instant::now();
    loop {
        let list = apps.list(&ListParams::default()).await.unwrap();
        let done = list
            .items
            .iter()
            .filter(|a| {
                let s = &a.data["status"];
                s["sync"]["status"] == "Synced" && s["operationState"]["phase"] == "Succeeded"
            })
            .count();
        if done == count {
            break;
        }
        if last_report.elapsed() > Duration::from_secs(10) {
            eprintln!(
                "  {done}/{count} synced after {:.0} s",
                start.elapsed().as_secs_f64()
            );
            last_report = Instant::now();
        }
        assert!(
            start.elapsed() < Duration::from_secs(3600),
            "not all synced after an hour"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    let elapsed = start.elapsed();
    let (rss, cpu) = (controller.rss_peak_kib(), controller.cpu_seconds());
    // Steady state: a minute of periodic checks of unchanged apps.
    tokio::time::sleep(Duration::from_secs(60)).await;
    let (rss_steady, cpu_steady) = (controller.rss_peak_kib(), controller.cpu_seconds());
    println!("apps: {count}");
    println!("start to all synced: {:.1} s", elapsed.as_secs_f64());
    println!("controller peak RSS: {:.0} MiB", rss as f64 / 1024.0);
    println!("controller CPU: {cpu:.1} s");
    println!(
        "next 60 s idle (periodic checks): +{:.1} CPU s, peak RSS {:.0} MiB",
        cpu_steady - cpu,
        rss_steady as f64 / 1024.0
    );
    println!(
        "git upload-pack requests (ls-remote + fetch): {}",
        daemon.upload_pack_requests()
    );
}

fn kubectl(kubeconfig: &Path, args: &[&str]) -> std::process::Output {
    Command::new("kubectl")
        .arg("--kubeconfig")
        .arg(kubeconfig)
        .args(args)
        .output()
        .unwrap()
}

async fn objects_bench(count: usize, rounds: usize) {
    let ns = TestNamespace::new("bench-objects").await.unwrap();
    let control = format!("{}-argocd", ns.name);
    let mut manifest = String::new();
    for i in 0..count {
        manifest.push_str(&format!(
            "---\napiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: item-{i:05}\n  labels:\n    app.kubernetes.io/name: item\ndata:\n  index: \"{i}\"\n  payload: \"{}\"\n",
            "x".repeat(200)
        ));
    }
    let fixture = GitFixture::new().unwrap();
    fixture
        .create_repo("objects", &[("app/items.yaml", &manifest)])
        .unwrap();
    let daemon = git_daemon(&fixture).unwrap();
    let url = format!("git://127.0.0.1:{}/objects.git", daemon.port);
    let cache = TempDir::new("bench-objects").unwrap();
    let file = cache.path().join("items.yaml");
    std::fs::write(&file, &manifest).unwrap();
    let _controller = start_controller(&ns.kubeconfig, &control, cache.path());
    let apps: Api<DynamicObject> = Api::namespaced_with(
        ns.client.clone(),
        &control,
        &berth_cluster::bootstrap::application_resource(),
    );
    // The controller installs the CRDs; wait for them.
    for _ in 0..600 {
        if apps.list(&ListParams::default()).await.is_ok() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    let mut berth_times = Vec::new();
    let mut kubectl_times = Vec::new();
    for round in 0..rounds {
        // kubectl into a fresh namespace.
        let target = format!("{}-k{round}", ns.name);
        assert!(
            kubectl(&ns.kubeconfig, &["create", "namespace", &target])
                .status
                .success()
        );
        let t = Instant::now();
        let out = Command::new("kubectl")
            .arg("--kubeconfig")
            .arg(&ns.kubeconfig)
            .args(["apply", "--server-side", "-n", &target, "-f"])
            .arg(&file)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        kubectl_times.push(t.elapsed());

        // Berth into another fresh namespace.
        let dest = format!("{}-b{round}", ns.name);
        assert!(
            kubectl(&ns.kubeconfig, &["create", "namespace", &dest])
                .status
                .success()
        );
        let name = format!("objects-{round}");
        let a = app(&name, &control, &url, "app", &dest, false);
        apps.create(&PostParams::default(), &serde_json::from_value(a).unwrap())
            .await
            .unwrap();
        loop {
            let s = apps.get(&name).await.unwrap().data["status"].clone();
            if s["sync"]["status"] == "OutOfSync" {
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let t = Instant::now();
        apps.patch(
            &name,
            &PatchParams::default(),
            &Patch::Merge(json!({"operation": {"sync": {}}})),
        )
        .await
        .unwrap();
        loop {
            let s = apps.get(&name).await.unwrap().data["status"].clone();
            match s["operationState"]["phase"].as_str() {
                Some("Succeeded") => break,
                Some("Failed" | "Error") => panic!("sync failed: {}", s["operationState"]),
                _ => {}
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        berth_times.push(t.elapsed());
        eprintln!(
            "round {round}: kubectl {:.2} s, berth {:.2} s",
            kubectl_times[round].as_secs_f64(),
            berth_times[round].as_secs_f64()
        );
    }
    let (b, k) = (median(berth_times), median(kubectl_times));
    println!("objects: {count}, rounds: {rounds}");
    println!(
        "berth sync (request to Succeeded): {:.2} s median",
        b.as_secs_f64()
    );
    println!(
        "kubectl apply --server-side -f: {:.2} s median",
        k.as_secs_f64()
    );
    println!(
        "ratio kubectl/berth: {:.2}x",
        k.as_secs_f64() / b.as_secs_f64()
    );
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let args: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| a != "--bench")
        .collect();
    let number =
        |i: usize, default: usize| args.get(i).and_then(|a| a.parse().ok()).unwrap_or(default);
    match args.first().map(String::as_str) {
        Some("objects") => objects_bench(number(1, 500), number(2, 5)).await,
        _ => apps_bench(number(1, 1000)).await,
    }
}
