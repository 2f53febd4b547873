//! What the controller's end-to-end tests share: a controller on its own
//! control namespace, a Git server with one repository, one Application.
#![allow(clippy::expect_used, clippy::unwrap_used, missing_docs, dead_code)]

use std::time::Duration;

use berth_controller::controller::{Config, Controller};
use berth_testenv::TestNamespace;
use berth_testenv::git::{GitFixture, TempDir, git_daemon};
use serde_json::Value;

pub fn kubectl_out(ns: &TestNamespace, args: &[&str], stdin: Option<&str>) -> std::process::Output {
    berth_testenv::kubectl(&ns.kubeconfig, args, stdin).unwrap()
}

pub fn kubectl(ns: &TestNamespace, args: &[&str], stdin: Option<&str>) -> String {
    berth_testenv::kubectl_ok(&ns.kubeconfig, args, stdin).unwrap()
}

pub fn exists(ns: &TestNamespace, what: &str) -> bool {
    kubectl_out(ns, &["get", what, "-n", &ns.name], None)
        .status
        .success()
}

pub async fn until(what: &str, f: impl Fn() -> bool) {
    for _ in 0..900 {
        if f() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("timed out waiting for {what}");
}

/// A controller on its own control namespace, a Git server with one
/// repository, and one Application on it.
pub struct Harness {
    pub ns: TestNamespace,
    pub control: String,
    pub name: String,
    pub repo: berth_testenv::git::Repo,
    pub url: String,
    pub fixture: GitFixture,
    pub daemon: berth_testenv::git::Server,
    _cache: TempDir,
    stop: tokio::sync::oneshot::Sender<()>,
    running: tokio::task::JoinHandle<berth_controller::controller::Stopped>,
}

impl Harness {
    /// `sync_policy` is the YAML of `spec.syncPolicy` (indented under it),
    /// empty for none.
    pub async fn start(
        prefix: &str,
        files: &[(&str, &str)],
        sync_policy: &str,
        resync: Duration,
    ) -> Harness {
        Harness::start_with(prefix, files, sync_policy, resync, None).await
    }

    /// As [`Harness::start`]; with `basic_auth`, the repository is served
    /// over HTTP and needs that user and password.
    pub async fn start_with(
        prefix: &str,
        files: &[(&str, &str)],
        sync_policy: &str,
        resync: Duration,
        basic_auth: Option<(&str, &str)>,
    ) -> Harness {
        let ns = TestNamespace::new(prefix).await.unwrap();
        let control = format!("{}-argocd", ns.name);
        let fixture = GitFixture::new().unwrap();
        let repo = fixture.create_repo(prefix, files).unwrap();
        let (daemon, url) = match basic_auth {
            None => {
                let daemon = git_daemon(&fixture).unwrap();
                let url = format!("git://127.0.0.1:{}/{prefix}.git", daemon.port);
                (daemon, url)
            }
            Some((user, password)) => {
                let server = berth_testenv::git::git_http(&fixture, user, password).unwrap();
                let url = format!("http://127.0.0.1:{}/git/{prefix}.git", server.port);
                (server, url)
            }
        };
        let cache = TempDir::new(&format!("{prefix}-cache")).unwrap();
        let mut config = Config::new(&control, cache.path().to_path_buf());
        config.resync = resync;
        let controller = Controller::start(ns.client.clone(), config).await.unwrap();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let running = tokio::spawn(controller.run(async {
            let _ = stopped.await;
        }));
        let name = format!("{prefix}-{}", &ns.name[ns.name.len() - 6..]);
        let policy = if sync_policy.is_empty() {
            String::new()
        } else {
            format!("  syncPolicy:\n{sync_policy}")
        };
        let app = format!(
            "apiVersion: argoproj.io/v1alpha1\nkind: Application\nmetadata:\n  name: {name}\n  namespace: {control}\nspec:\n  project: default\n  source:\n    repoURL: {url}\n    targetRevision: main\n    path: app\n  destination:\n    server: https://kubernetes.default.svc\n    namespace: {}\n{policy}",
            ns.name
        );
        kubectl(&ns, &["apply", "-f", "-"], Some(&app));
        let url = url.clone();
        Harness {
            ns,
            control,
            name,
            repo,
            url,
            fixture,
            daemon,
            _cache: cache,
            stop,
            running,
        }
    }

    /// A merge patch of the Application, as `kubectl patch` sends it.
    pub fn patch_app(&self, patch: &Value) {
        kubectl(
            &self.ns,
            &[
                "patch",
                "app",
                &self.name,
                "-n",
                &self.control,
                "--type",
                "merge",
                "-p",
                &patch.to_string(),
            ],
            None,
        );
    }

    /// Requests a sync (`operation.sync: {}`).
    pub fn request_sync(&self) {
        self.patch_app(&serde_json::json!({"operation": {"sync": {}}}));
    }

    pub fn app(&self) -> Value {
        serde_json::from_str(&kubectl(
            &self.ns,
            &["get", "app", &self.name, "-n", &self.control, "-o", "json"],
            None,
        ))
        .unwrap()
    }

    pub async fn finish(self) {
        let _ = self.stop.send(());
        self.running.await.unwrap();
    }
}
