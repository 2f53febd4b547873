//! Two controllers on one control namespace with leader election, on the
//! local control plane with a real Git server: one holds the Lease and
//! syncs, the other syncs nothing; when the leader dies without a word
//! (its task aborted, as a crash would), the standby takes the Lease once
//! it expires and syncs the next commit.
#![allow(clippy::expect_used, clippy::unwrap_used, missing_docs)]

use std::sync::Arc;
use std::time::Duration;

use berth_controller::controller::{Config, Controller};
use berth_controller::lease::LeaderElection;
use berth_controller::metrics::Metrics;
use berth_testenv::TestNamespace;
use berth_testenv::git::{GitFixture, TempDir, git_daemon};
use serde_json::Value;

fn kubectl(ns: &TestNamespace, args: &[&str], stdin: Option<&str>) -> String {
    berth_testenv::kubectl_ok(&ns.kubeconfig, args, stdin).unwrap()
}

async fn until(what: &str, mut f: impl FnMut() -> bool) {
    for _ in 0..600 {
        if f() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("timed out waiting for {what}");
}

fn cm(color: &str) -> String {
    format!("apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: paint\ndata:\n  color: {color}\n")
}

fn synced_count(m: &Metrics) -> usize {
    m.render(&[], 0)
        .lines()
        .filter(|l| l.starts_with("argocd_app_sync_total{") && l.contains("Succeeded"))
        .map(|l| l.rsplit(' ').next().unwrap().parse::<usize>().unwrap())
        .sum()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_leader_syncs_and_a_standby_takes_over() {
    let ns = TestNamespace::new("ha").await.unwrap();
    let control = format!("{}-argocd", ns.name);
    let fixture = GitFixture::new().unwrap();
    let repo = fixture
        .create_repo("ha", &[("app/cm.yaml", &cm("blue"))])
        .unwrap();
    let daemon = git_daemon(&fixture).unwrap();
    let url = format!("git://127.0.0.1:{}/ha.git", daemon.port);
    let mut replicas = Vec::new();
    for identity in ["replica-a", "replica-b"] {
        let cache = TempDir::new(&format!("ha-{identity}")).unwrap();
        let mut config = Config::new(&control, cache.path().to_path_buf());
        config.leader_election = Some(LeaderElection {
            lease_name: "berth-controller".into(),
            identity: identity.into(),
            lease_duration: Duration::from_secs(3),
            renew_deadline: Duration::from_secs(2),
            retry_period: Duration::from_millis(500),
        });
        let metrics: Arc<Metrics> = Arc::clone(&config.metrics);
        let controller = Controller::start(ns.client.clone(), config).await.unwrap();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let task = tokio::spawn(controller.serve(async {
            let _ = stopped.await;
        }));
        replicas.push((identity, metrics, stop, task, cache));
    }
    let name = format!("ha-{}", &ns.name[ns.name.len() - 6..]);
    kubectl(
        &ns,
        &["apply", "-f", "-"],
        Some(&format!(
            "apiVersion: argoproj.io/v1alpha1\nkind: Application\nmetadata:\n  name: {name}\n  namespace: {control}\nspec:\n  project: default\n  source:\n    repoURL: {url}\n    targetRevision: main\n    path: app\n  destination:\n    server: https://kubernetes.default.svc\n    namespace: {}\n  syncPolicy:\n    automated: {{}}\n",
            ns.name
        )),
    );
    let color = || {
        berth_testenv::kubectl(
            &ns.kubeconfig,
            &[
                "get",
                "configmap",
                "paint",
                "-n",
                &ns.name,
                "-o",
                "jsonpath={.data.color}",
            ],
            None,
        )
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .unwrap_or_default()
    };
    until("the first sync", || color() == "blue").await;
    let holder = || {
        let lease: Value = serde_json::from_str(&kubectl(
            &ns,
            &[
                "get",
                "lease",
                "berth-controller",
                "-n",
                &control,
                "-o",
                "json",
            ],
            None,
        ))
        .unwrap();
        lease["spec"]["holderIdentity"]
            .as_str()
            .unwrap_or_default()
            .to_string()
    };
    let leader = holder();
    let (lead, standby): (Vec<_>, Vec<_>) = replicas.into_iter().partition(|r| r.0 == leader);
    let (lead, standby) = (
        lead.into_iter().next().unwrap(),
        standby.into_iter().next().unwrap(),
    );
    until("the leader's sync counted", || synced_count(&lead.1) >= 1).await;
    assert_eq!(synced_count(&standby.1), 0, "the standby synced nothing");

    // The leader dies without releasing the Lease.
    lead.3.abort();
    let _ = lead.3.await;
    until("the standby holds the Lease", || holder() == standby.0).await;
    repo.commit(&[("app/cm.yaml", &cm("green"))], "green")
        .unwrap();
    repo.push("main").unwrap();
    kubectl(
        &ns,
        &[
            "annotate",
            "app",
            &name,
            "-n",
            &control,
            "argocd.argoproj.io/refresh=normal",
            "--overwrite",
        ],
        None,
    );
    let lead_before = synced_count(&lead.1);
    until("the new leader's sync", || color() == "green").await;
    // The count follows the apply (after the status write), so it is
    // waited for, not read at once.
    until("the new leader's sync counted", || {
        synced_count(&standby.1) >= 1
    })
    .await;
    assert_eq!(
        synced_count(&lead.1),
        lead_before,
        "the dead leader synced nothing more"
    );
    let _ = standby.2.send(());
    let _ = standby.3.await;
    drop(lead.4);
}
