//! `berth up --demo`: a Git repository served by a real `git daemon`, with
//! an example service in environment directories (Kustomize base and
//! overlays for dev, staging and prod), and one Application per
//! environment with the policies careful teams use: dev automated with
//! self-heal, staging automated, prod manual.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

use anyhow::{Context, Result, bail};
use kube::Api;
use kube::api::{DynamicObject, Patch, PatchParams};
use serde_json::json;

const BASE: &[(&str, &str)] = &[
    (
        "guestbook/base/kustomization.yaml",
        "resources:\n- deployment.yaml\n- service.yaml\n- config.yaml\n",
    ),
    (
        "guestbook/base/deployment.yaml",
        "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: guestbook\nspec:\n  replicas: 1\n  selector:\n    matchLabels: {app: guestbook}\n  template:\n    metadata:\n      labels: {app: guestbook}\n    spec:\n      containers:\n      - name: guestbook\n        image: registry.example/guestbook:1.0\n        ports: [{containerPort: 8080}]\n",
    ),
    (
        "guestbook/base/service.yaml",
        "apiVersion: v1\nkind: Service\nmetadata:\n  name: guestbook\nspec:\n  selector: {app: guestbook}\n  ports: [{port: 80, targetPort: 8080}]\n",
    ),
    (
        "guestbook/base/config.yaml",
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: guestbook\ndata:\n  greeting: hello\n",
    ),
];

/// (environment, replicas, automated policy).
const ENVIRONMENTS: [(&str, u32, Option<bool>); 3] = [
    ("dev", 1, Some(true)),
    ("staging", 2, Some(false)),
    ("prod", 3, None),
];

/// The running demo: its git daemon stops when this is dropped.
pub struct Demo {
    daemon: Child,
    /// The repository's URL.
    pub url: String,
    /// Where the working clone is, for people to commit to.
    pub work: PathBuf,
}

impl Drop for Demo {
    fn drop(&mut self) {
        let _ = self.daemon.kill();
        let _ = self.daemon.wait();
    }
}

fn git(dir: &Path, args: &[&str]) -> Result<()> {
    let out = Command::new("git")
        .arg("-C")
        .arg(dir)
        .args(args)
        .env("GIT_AUTHOR_NAME", "Berth demo")
        .env("GIT_AUTHOR_EMAIL", "demo@berth.invalid")
        .env("GIT_COMMITTER_NAME", "Berth demo")
        .env("GIT_COMMITTER_EMAIL", "demo@berth.invalid")
        .output()
        .with_context(|| format!("running git {}", args.join(" ")))?;
    if !out.status.success() {
        bail!(
            "git {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(())
}

/// Creates the repository (once; an existing one is kept, with its
/// history) and serves it.
pub fn start(data_dir: &Path) -> Result<Demo> {
    let root = data_dir.join("demo");
    let served = root.join("srv");
    let bare = served.join("guestbook.git");
    let work = root.join("guestbook");
    if !bare.is_dir() {
        std::fs::create_dir_all(&served).context("creating the demo directory")?;
        std::fs::create_dir_all(&work).context("creating the demo directory")?;
        git(&work, &["init", "--quiet", "--initial-branch=main"])?;
        for (path, content) in BASE {
            write(&work, path, content)?;
        }
        for (env, replicas, _) in ENVIRONMENTS {
            write(
                &work,
                &format!("guestbook/overlays/{env}/kustomization.yaml"),
                &format!(
                    "resources:\n- ../../base\nreplicas:\n- name: guestbook\n  count: {replicas}\npatches:\n- patch: |-\n    apiVersion: v1\n    kind: ConfigMap\n    metadata:\n      name: guestbook\n    data:\n      environment: {env}\n"
                ),
            )?;
        }
        git(&work, &["add", "--all"])?;
        git(
            &work,
            &[
                "commit",
                "--quiet",
                "-m",
                "The guestbook in three environments",
            ],
        )?;
        git(
            &root,
            &[
                "clone",
                "--quiet",
                "--bare",
                "guestbook",
                "srv/guestbook.git",
            ],
        )?;
        git(&work, &["remote", "add", "origin", "../srv/guestbook.git"])?;
    }
    let port = TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .context("finding a free port for git daemon")?;
    // The daemon itself, not the `git daemon` wrapper, which would leave
    // the daemon running after the wrapper is stopped.
    let exec_path = Command::new("git")
        .arg("--exec-path")
        .output()
        .context("running git --exec-path (is git installed?)")?;
    let exec_path = PathBuf::from(String::from_utf8_lossy(&exec_path.stdout).trim());
    let daemon = Command::new(exec_path.join("git-daemon"))
        .arg("--reuseaddr")
        .arg("--listen=127.0.0.1")
        .arg(format!("--port={port}"))
        .arg(format!("--base-path={}", served.display()))
        .arg("--export-all")
        .arg(&served)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .context("starting git daemon for the demo (is git installed?)")?;
    // Wait until it accepts connections.
    for _ in 0..100 {
        if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    Ok(Demo {
        daemon,
        url: format!("git://127.0.0.1:{port}/guestbook.git"),
        work,
    })
}

fn write(root: &Path, path: &str, content: &str) -> Result<()> {
    let full = root.join(path);
    if let Some(parent) = full.parent() {
        std::fs::create_dir_all(parent)?;
    }
    std::fs::write(&full, content).with_context(|| format!("writing {}", full.display()))
}

/// Applies the three Applications (server-side, so a restart with another
/// daemon port updates their repoURL).
pub async fn apply_applications(
    client: &kube::Client,
    namespace: &str,
    url: &str,
) -> Result<Vec<String>> {
    let ar = berth_cluster::bootstrap::application_resource();
    let apps: Api<DynamicObject> = Api::namespaced_with(client.clone(), namespace, &ar);
    let mut names = Vec::new();
    for (env, _, automated) in ENVIRONMENTS {
        let name = format!("guestbook-{env}");
        let mut sync_policy = json!({"syncOptions": ["CreateNamespace=true"]});
        if let Some(self_heal) = automated {
            sync_policy["automated"] = json!({"prune": true, "selfHeal": self_heal});
        }
        let app = json!({
            "apiVersion": "argoproj.io/v1alpha1",
            "kind": "Application",
            "metadata": {"name": name, "namespace": namespace},
            "spec": {
                "project": "default",
                "source": {"repoURL": url, "targetRevision": "main", "path": format!("guestbook/overlays/{env}")},
                "destination": {"server": "https://kubernetes.default.svc", "namespace": format!("guestbook-{env}")},
                "syncPolicy": sync_policy,
            }
        });
        apps.patch(
            &name,
            &PatchParams::apply("berth-demo").force(),
            &Patch::Apply(&app),
        )
        .await
        .with_context(|| format!("creating Application {name}"))?;
        names.push(name);
    }
    Ok(names)
}
