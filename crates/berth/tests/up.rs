//! `berth up` driven as a user would: start, use the cluster, stop with a
//! signal, start again on the same data directory.
#![allow(clippy::expect_used, clippy::unwrap_used, missing_docs)]

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

const BERTH: &str = env!("CARGO_BIN_EXE_berth");

fn temp_dir(prefix: &str) -> PathBuf {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    let dir = std::env::temp_dir().join(format!("{prefix}-{}-{nanos}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// Starts `berth up` and returns it with the kubeconfig path it printed.
fn start_up(data_dir: &Path) -> (Child, PathBuf) {
    start_up_with(data_dir, &[])
}

fn start_up_with(data_dir: &Path, extra: &[&str]) -> (Child, PathBuf) {
    let (child, kubeconfig, _) = start_up_server(data_dir, extra);
    (child, kubeconfig)
}

/// One `berth up` starts at a time in this binary: each starts a control
/// plane, and two choosing their free ports at the same moment can pick
/// the same one. Running side by side once started is fine.
static STARTING: std::sync::Mutex<()> = std::sync::Mutex::new(());

/// Starts `berth up` (its API server on a free port) and returns it with
/// the kubeconfig path and the server URL it printed. Its log goes to
/// `up.log` beside the data directory, quoted when it fails to start.
fn start_up_server(data_dir: &Path, extra: &[&str]) -> (Child, PathBuf, String) {
    let _one_at_a_time = STARTING.lock().unwrap_or_else(|p| p.into_inner());
    let log_path = data_dir.with_extension("up.log");
    let log = std::fs::File::create(&log_path).unwrap();
    let mut child = Command::new(BERTH)
        .args(["up", "--listen", "127.0.0.1:0", "--data-dir"])
        .arg(data_dir)
        .args(extra)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::from(log))
        .spawn()
        .unwrap();
    let said = || {
        let text = std::fs::read_to_string(&log_path).unwrap_or_default();
        let tail: Vec<&str> = text.lines().rev().take(30).collect();
        tail.into_iter().rev().collect::<Vec<_>>().join("\n")
    };
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    let line = rx
        .recv_timeout(Duration::from_secs(180))
        .unwrap_or_else(|e| {
            panic!(
                "berth up prints a line when ready ({e}); its log:\n{}",
                said()
            )
        });
    let path = line
        .strip_prefix("kubeconfig: ")
        .unwrap_or_else(|| panic!("unexpected first line {line:?}"));
    let path = PathBuf::from(path);
    assert!(path.is_absolute(), "{path:?}");
    assert_eq!(path, data_dir.join("kubeconfig"));
    let line = rx
        .recv_timeout(Duration::from_secs(60))
        .unwrap_or_else(|e| {
            panic!(
                "berth up prints the server line ({e}); its log:\n{}",
                said()
            )
        });
    let server = line
        .strip_prefix("server: ")
        .unwrap_or_else(|| panic!("unexpected second line {line:?}"))
        .to_string();
    assert!(server.starts_with("http://127.0.0.1:"), "{server}");
    assert!(
        !server.ends_with(":0"),
        "the port picked is shown: {server}"
    );
    (child, path, server)
}

fn kubectl(kubeconfig: &Path, args: &[&str]) -> String {
    let out = Command::new("kubectl")
        .arg("--kubeconfig")
        .arg(kubeconfig)
        .args(args)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "kubectl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// `kubectl apply -f -` of `manifest`.
fn kubectl_stdin(kubeconfig: &Path, manifest: &str) {
    use std::io::Write as _;
    let mut child = Command::new("kubectl")
        .arg("--kubeconfig")
        .arg(kubeconfig)
        .args(["apply", "-f", "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(manifest.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "kubectl apply: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn testenv_running_on(data_dir: &Path) -> bool {
    let out = Command::new("pgrep")
        .arg("-f")
        .arg(format!("berth-testenv run .*{}", data_dir.display()))
        .output()
        .unwrap();
    out.status.success()
}

fn stop(mut child: Child, signal: &str) -> std::process::ExitStatus {
    let status = Command::new("kill")
        .arg(format!("-{signal}"))
        .arg(child.id().to_string())
        .status()
        .unwrap();
    assert!(status.success());
    child.wait().unwrap()
}

#[test]
fn up_serves_a_cluster_stops_on_sigterm_and_comes_back_with_the_same_state() {
    let dir = temp_dir("berth-up");
    let (child, kubeconfig) = start_up(&dir);
    let nodes = kubectl(&kubeconfig, &["get", "nodes", "-o", "name"]);
    assert_eq!(nodes.lines().count(), 3, "{nodes}");
    // The controller is ready when the line is printed: Argo CD's CRDs,
    // the argocd namespace and the default project are there.
    let project = kubectl(
        &kubeconfig,
        &["get", "appproject", "default", "-n", "argocd", "-o", "name"],
    );
    assert_eq!(project.trim(), "appproject.argoproj.io/default");
    kubectl(
        &kubeconfig,
        &["create", "configmap", "kept", "--from-literal=k=v"],
    );
    let first = std::fs::read(&kubeconfig).unwrap();

    let status = stop(child, "TERM");
    assert!(
        status.success(),
        "SIGTERM stops berth up with exit 0, got {status}"
    );
    assert!(
        !testenv_running_on(&dir),
        "the control plane stopped with it"
    );

    let (child, kubeconfig) = start_up(&dir);
    assert_eq!(
        std::fs::read(&kubeconfig).unwrap(),
        first,
        "same CA, credentials and address"
    );
    let value = kubectl(
        &kubeconfig,
        &["get", "configmap", "kept", "-o", "jsonpath={.data.k}"],
    );
    assert_eq!(value, "v", "etcd data survived the restart");
    let status = stop(child, "INT");
    assert!(
        status.success(),
        "Ctrl-C stops berth up with exit 0, got {status}"
    );
    assert!(!testenv_running_on(&dir));
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn up_fails_at_once_naming_the_build_command_when_the_control_plane_is_missing() {
    let dir = temp_dir("berth-up-missing");
    let out = Command::new(BERTH)
        .args(["up", "--data-dir"])
        .arg(&dir)
        .env("BERTH_TOOLS_DIR", dir.join("no-tools"))
        .env("PATH", "/usr/bin:/bin")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("berth-testenv is not built"), "{stderr}");
    assert!(stderr.contains("make tools"), "{stderr}");
    assert!(
        out.stdout.is_empty(),
        "nothing on stdout: {}",
        String::from_utf8_lossy(&out.stdout)
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn usage_errors_exit_2() {
    let out = Command::new(BERTH)
        .args(["up", "--no-such-flag"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let out = Command::new(BERTH).arg("--version").output().unwrap();
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        format!("berth {}", env!("CARGO_PKG_VERSION"))
    );
}

/// Kills `berth up` if the test fails before stopping it.
struct Running(Option<Child>);

impl Drop for Running {
    fn drop(&mut self) {
        if let Some(mut child) = self.0.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

#[test]
fn demo_environments_sync_by_their_policies() {
    let dir = temp_dir("berth-up-demo");
    let (child, kubeconfig, server_url) = start_up_server(&dir, &["--demo"]);
    let mut running = Running(Some(child));
    let status = |app: &str| -> (String, String) {
        let out = kubectl(
            &kubeconfig,
            &[
                "get",
                "app",
                app,
                "-n",
                "argocd",
                "-o",
                "jsonpath={.status.sync.status} {.status.health.status}",
            ],
        );
        let mut parts = out.split(' ');
        (
            parts.next().unwrap_or_default().to_string(),
            parts.next().unwrap_or_default().to_string(),
        )
    };
    let mut ready = false;
    for _ in 0..600 {
        let dev = status("guestbook-dev");
        let staging = status("guestbook-staging");
        let prod = status("guestbook-prod");
        if dev == ("Synced".into(), "Healthy".into())
            && staging == ("Synced".into(), "Healthy".into())
            && prod.0 == "OutOfSync"
        {
            ready = true;
            break;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    assert!(
        ready,
        "dev {:?}, staging {:?}, prod {:?}",
        status("guestbook-dev"),
        status("guestbook-staging"),
        status("guestbook-prod")
    );
    // The overlays' own settings reached the cluster; prod waits for a person.
    let replicas = kubectl(
        &kubeconfig,
        &[
            "get",
            "deployment",
            "guestbook",
            "-n",
            "guestbook-staging",
            "-o",
            "jsonpath={.spec.replicas}",
        ],
    );
    assert_eq!(replicas, "2");
    let env = kubectl(
        &kubeconfig,
        &[
            "get",
            "configmap",
            "guestbook",
            "-n",
            "guestbook-dev",
            "-o",
            "jsonpath={.data.environment}",
        ],
    );
    assert_eq!(env, "dev");
    let prod = Command::new("kubectl")
        .arg("--kubeconfig")
        .arg(&kubeconfig)
        .args(["get", "namespace", "guestbook-prod"])
        .output()
        .unwrap();
    assert!(!prod.status.success(), "prod is manual: nothing created");
    let daemon_running = || {
        Command::new("pgrep")
            .arg("-f")
            .arg(format!("git-daemon.*{}", dir.display()))
            .output()
            .unwrap()
            .status
            .success()
    };
    assert!(daemon_running(), "the demo's git daemon serves");

    // The Application of the design document, applied verbatim with kubectl
    // (only its repoURL pointed at a reachable repository).
    let fixture = berth_testenv::git::GitFixture::new().unwrap();
    fixture
        .create_repo(
            "yourrepo",
            &[(
                "services/my-service/config.yaml",
                "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: my-service\ndata:\n  greeting: hello\n",
            )],
        )
        .unwrap();
    let server = berth_testenv::git::git_daemon(&fixture).unwrap();
    let example = include_str!("example-application.yaml").replace(
        "https://github.com/yourorg/yourrepo",
        &format!("git://127.0.0.1:{}/yourrepo.git", server.port),
    );
    kubectl(&kubeconfig, &["create", "namespace", "production"]);
    let mut apply = Command::new("kubectl")
        .arg("--kubeconfig")
        .arg(&kubeconfig)
        .args(["apply", "-f", "-"])
        .stdin(Stdio::piped())
        .spawn()
        .unwrap();
    use std::io::Write;
    apply
        .stdin
        .take()
        .unwrap()
        .write_all(example.as_bytes())
        .unwrap();
    assert!(apply.wait().unwrap().success());
    let mut synced = false;
    for _ in 0..600 {
        if status("my-service") == ("Synced".into(), "Healthy".into()) {
            synced = true;
            break;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    assert!(synced, "my-service: {:?}", status("my-service"));
    let greeting = kubectl(
        &kubeconfig,
        &[
            "get",
            "configmap",
            "my-service",
            "-n",
            "production",
            "-o",
            "jsonpath={.data.greeting}",
        ],
    );
    assert_eq!(greeting, "hello");

    // The CLI, logged in as admin by berth up, drives the same apps.
    let config = dir.join("berth-config");
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(&config).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600, "the CLI configuration holds a token");
    let cli = |args: &[&str]| {
        Command::new(BERTH)
            .arg("--config")
            .arg(&config)
            .args(args)
            .output()
            .unwrap()
    };
    let listed = cli(&["app", "list", "-o", "name"]);
    assert!(
        listed.status.success(),
        "{}",
        String::from_utf8_lossy(&listed.stderr)
    );
    let names = String::from_utf8_lossy(&listed.stdout).to_string();
    for app in [
        "guestbook-dev",
        "guestbook-prod",
        "guestbook-staging",
        "my-service",
    ] {
        assert!(names.lines().any(|l| l == app), "{app} in {names}");
    }
    let table = String::from_utf8_lossy(&cli(&["app", "list"]).stdout).to_string();
    assert!(table.starts_with("NAME"), "{table}");
    assert!(
        table.lines().any(|l| l.starts_with("guestbook-prod")
            && l.contains("OutOfSync")
            && l.contains("Manual")),
        "{table}"
    );
    // BERTH_CONFIG does the same as --config.
    let via_env = Command::new(BERTH)
        .env("BERTH_CONFIG", &config)
        .args(["app", "get", "guestbook-prod", "-o", "json"])
        .output()
        .unwrap();
    assert!(via_env.status.success());
    let prod: serde_json::Value = serde_json::from_slice(&via_env.stdout).unwrap();
    assert_eq!(prod["metadata"]["name"], "guestbook-prod");
    // What a sync would do, with kubectl diff's exit codes.
    let diff = cli(&["app", "diff", "guestbook-prod"]);
    let text = String::from_utf8_lossy(&diff.stdout).to_string();
    assert_eq!(diff.status.code(), Some(1), "different: {text}");
    assert!(
        text.contains("+++ target/apps/Deployment/guestbook-prod/guestbook")
            && text.contains("+  replicas:"),
        "{text}"
    );
    assert!(!text.contains('\u{1b}'), "no colours off a terminal");
    assert_eq!(cli(&["app", "diff", "no-such-app"]).status.code(), Some(2));
    let manifests =
        String::from_utf8_lossy(&cli(&["app", "manifests", "guestbook-prod"]).stdout).to_string();
    assert!(manifests.contains("kind: Deployment"), "{manifests}");
    // A sync through the server: progress, results, exit 0.
    let synced = cli(&["app", "sync", "guestbook-prod"]);
    let out = String::from_utf8_lossy(&synced.stdout).to_string();
    assert!(
        synced.status.success(),
        "{out}\n{}",
        String::from_utf8_lossy(&synced.stderr)
    );
    assert!(out.contains("Succeeded"), "{out}");
    assert!(
        out.contains("Deployment") && out.contains("Synced"),
        "{out}"
    );
    let waited = cli(&[
        "app",
        "wait",
        "guestbook-prod",
        "--sync",
        "--health",
        "--timeout",
        "120",
    ]);
    assert!(
        waited.status.success(),
        "{}",
        String::from_utf8_lossy(&waited.stderr)
    );
    let same = cli(&["app", "diff", "guestbook-prod"]);
    assert_eq!(
        same.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&same.stdout)
    );
    // A local checkout, before committing: the same files show no
    // difference, a changed replica count shows as one.
    let repo = kubectl(
        &kubeconfig,
        &[
            "get",
            "app",
            "guestbook-prod",
            "-n",
            "argocd",
            "-o",
            "jsonpath={.spec.source.repoURL}",
        ],
    );
    let path = kubectl(
        &kubeconfig,
        &[
            "get",
            "app",
            "guestbook-prod",
            "-n",
            "argocd",
            "-o",
            "jsonpath={.spec.source.path}",
        ],
    );
    let checkout = dir.join("checkout");
    let cloned = Command::new("git")
        .args(["clone", "-q", &repo])
        .arg(&checkout)
        .output()
        .unwrap();
    assert!(
        cloned.status.success(),
        "{}",
        String::from_utf8_lossy(&cloned.stderr)
    );
    let local = checkout.join(&path);
    let local_same = cli(&[
        "app",
        "diff",
        "guestbook-prod",
        "--local",
        local.to_str().unwrap(),
    ]);
    assert_eq!(
        local_same.status.code(),
        Some(0),
        "{}{}",
        String::from_utf8_lossy(&local_same.stdout),
        String::from_utf8_lossy(&local_same.stderr)
    );
    let kustomization = local.join("kustomization.yaml");
    let text = std::fs::read_to_string(&kustomization).unwrap();
    assert!(text.contains("count: 3"), "{text}");
    std::fs::write(&kustomization, text.replace("count: 3", "count: 5")).unwrap();
    let local_changed = cli(&[
        "app",
        "diff",
        "guestbook-prod",
        "--local",
        local.to_str().unwrap(),
    ]);
    let shown = String::from_utf8_lossy(&local_changed.stdout).to_string();
    assert_eq!(local_changed.status.code(), Some(1), "{shown}");
    assert!(
        shown.contains("-  replicas: 3") && shown.contains("+  replicas: 5"),
        "{shown}"
    );
    let missing = cli(&[
        "app",
        "diff",
        "guestbook-prod",
        "--local",
        "/nonexistent/dir",
    ]);
    assert_eq!(
        missing.status.code(),
        Some(2),
        "an error exits 2, as kubectl diff"
    );
    let mut resources = String::new();
    for _ in 0..100 {
        resources = String::from_utf8_lossy(&cli(&["app", "resources", "guestbook-prod"]).stdout)
            .to_string();
        if resources.contains("  ReplicaSet") {
            break;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    assert!(
        resources.lines().any(|l| l.starts_with("Deployment"))
            && resources.lines().any(|l| l.starts_with("  ReplicaSet")),
        "the ReplicaSet under its Deployment: {resources}"
    );
    // An ApplicationSet applied with kubectl: its Application made and
    // listed by the CLI.
    kubectl_stdin(
        &kubeconfig,
        &format!(
            "apiVersion: argoproj.io/v1alpha1\nkind: ApplicationSet\nmetadata:\n  name: teams\n  namespace: argocd\nspec:\n  generators:\n  - list:\n      elements:\n      - team: red\n  template:\n    metadata:\n      name: '{{{{team}}}}-guestbook'\n    spec:\n      project: default\n      source:\n        repoURL: {repo}\n        targetRevision: HEAD\n        path: {path}\n      destination:\n        server: https://kubernetes.default.svc\n        namespace: team-red\n"
        ),
    );
    let mut sets = String::new();
    for _ in 0..100 {
        sets = String::from_utf8_lossy(&cli(&["appset", "list"]).stdout).to_string();
        if sets
            .lines()
            .any(|l| l.starts_with("teams") && l.contains("UpToDate"))
        {
            break;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    assert!(
        sets.starts_with("NAME")
            && sets.lines().any(|l| l.starts_with("teams")
                && l.contains("list")
                && l.contains(" 1 ")
                && l.contains("UpToDate")),
        "{sets}"
    );
    let made = cli(&["app", "get", "red-guestbook", "-o", "json"]);
    assert!(
        made.status.success(),
        "{}",
        String::from_utf8_lossy(&made.stderr)
    );
    // Resource actions from the CLI: listed, then a restart.
    let listed = cli(&[
        "app",
        "actions",
        "list",
        "guestbook-prod",
        "--kind",
        "Deployment",
    ]);
    let listed = String::from_utf8_lossy(&listed.stdout).to_string();
    assert!(
        listed.starts_with("GROUP")
            && listed
                .lines()
                .any(|l| l.contains("Deployment") && l.contains("restart") && l.contains("false")),
        "{listed}"
    );
    let ran = cli(&[
        "app",
        "actions",
        "run",
        "guestbook-prod",
        "restart",
        "--kind",
        "Deployment",
    ]);
    assert!(
        ran.status.success()
            && String::from_utf8_lossy(&ran.stdout)
                .contains("restart: Deployment guestbook-prod/guestbook done"),
        "{}{}",
        String::from_utf8_lossy(&ran.stdout),
        String::from_utf8_lossy(&ran.stderr)
    );
    let many = cli(&["app", "actions", "run", "guestbook-prod", "restart"]);
    assert_eq!(
        many.status.code(),
        Some(1),
        "no --kind: the ConfigMap and Service offer none, ambiguous or refused"
    );
    // The audit log has the sync, by admin.
    let mut audit = String::new();
    for _ in 0..50 {
        audit =
            String::from_utf8_lossy(&cli(&["audit", "--app", "guestbook-prod"]).stdout).to_string();
        if audit.contains("/api/v1/applications/guestbook-prod/sync") {
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(
        audit.starts_with("TIME")
            && audit.lines().any(|l| l.contains("admin")
                && l.contains("POST")
                && l.contains("/api/v1/applications/guestbook-prod/sync")
                && l.contains("200")),
        "{audit}"
    );
    let history =
        String::from_utf8_lossy(&cli(&["app", "history", "guestbook-prod"]).stdout).to_string();
    assert!(history.starts_with("ID"), "{history}");
    assert!(
        history
            .lines()
            .nth(1)
            .is_some_and(|l| l.starts_with('0') && l.contains("admin")),
        "{history}"
    );
    // Create from a manifest, delete keeping the resources.
    let manifest = dir.join("extra-app.yaml");
    std::fs::write(
        &manifest,
        include_str!("example-application.yaml")
            .replace("name: my-service", "name: extra")
            .replace(
                "https://github.com/yourorg/yourrepo",
                "https://example.invalid/repo.git",
            ),
    )
    .unwrap();
    let created = cli(&["app", "create", "-f", manifest.to_str().unwrap()]);
    assert!(
        created.status.success(),
        "{}",
        String::from_utf8_lossy(&created.stderr)
    );
    assert!(
        cli(&["app", "delete", "extra", "--cascade=false"])
            .status
            .success()
    );
    let refreshed = cli(&["app", "refresh", "guestbook-dev", "--hard"]);
    assert!(
        refreshed.status.success(),
        "{}",
        String::from_utf8_lossy(&refreshed.stderr)
    );
    // Projects, repositories and clusters.
    let ok = |args: &[&str]| {
        let out = cli(args);
        assert!(
            out.status.success(),
            "berth {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).to_string()
    };
    ok(&[
        "proj",
        "create",
        "team",
        "-s",
        "*",
        "-d",
        "*,team-*",
        "--description",
        "a team",
    ]);
    let projects = ok(&["proj", "list"]);
    assert!(
        projects
            .lines()
            .any(|l| l.starts_with("team") && l.contains("team-*")),
        "{projects}"
    );
    let in_use = cli(&["proj", "delete", "default"]);
    assert_eq!(in_use.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&in_use.stderr).contains("referenced by"));
    ok(&["proj", "delete", "team"]);
    let dev: serde_json::Value =
        serde_json::from_str(&ok(&["app", "get", "guestbook-dev", "-o", "json"])).unwrap();
    let repo_url = dev["spec"]["source"]["repoURL"]
        .as_str()
        .unwrap()
        .to_string();
    ok(&["repo", "add", &repo_url, "--name", "guestbook"]);
    let repos = ok(&["repo", "list"]);
    assert!(
        repos
            .lines()
            .any(|l| l.contains(&repo_url) && l.contains("Successful")),
        "{repos}"
    );
    let unreachable = cli(&["repo", "add", "git://127.0.0.1:1/nothing.git"]);
    assert_eq!(unreachable.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&unreachable.stderr).contains("unable to connect"));
    ok(&["repo", "rm", &repo_url]);
    let context = kubectl(&kubeconfig, &["config", "current-context"]);
    ok(&[
        "cluster",
        "add",
        context.trim(),
        "--kubeconfig",
        kubeconfig.to_str().unwrap(),
        "--name",
        "second",
    ]);
    let clusters = ok(&["cluster", "list"]);
    assert!(
        clusters
            .lines()
            .any(|l| l.contains("in-cluster") && l.contains("Successful"))
            && clusters
                .lines()
                .any(|l| l.contains("second") && l.contains("Successful")),
        "{clusters}"
    );
    ok(&["cluster", "rm", "second"]);
    let completion = cli(&["completion", "bash"]);
    assert!(completion.status.success());
    assert!(String::from_utf8_lossy(&completion.stdout).contains("berth"));
    let accounts = String::from_utf8_lossy(&cli(&["account", "list"]).stdout).to_string();
    assert!(
        accounts
            .lines()
            .any(|l| l.starts_with("admin") && l.contains("login")),
        "{accounts}"
    );
    let no_key = cli(&["account", "generate-token"]);
    assert_eq!(no_key.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&no_key.stderr).contains("apiKey"),
        "admin has no apiKey capability by default"
    );
    let version = String::from_utf8_lossy(&cli(&["version"]).stdout).to_string();
    assert!(version.contains(&server_url), "{version}");
    // Usage errors exit 2; a refused request exits 1 with the server's words.
    assert_eq!(cli(&["app", "sync"]).status.code(), Some(2));
    let missing = cli(&["app", "get", "no-such-app"]);
    assert_eq!(missing.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&missing.stderr).contains("not found"));

    // A production gate: a sync waits for another user's approval.
    kubectl_stdin(
        &kubeconfig,
        "apiVersion: berth.io/v1alpha1\nkind: ApprovalGate\nmetadata:\n  name: production\nspec:\n  applications: [guestbook-prod]\n  requiredApprovals: 1\n---\napiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: argocd-rbac-cm\n  namespace: argocd\ndata:\n  policy.csv: |\n    p, bob, applications, get, */*, allow\n    p, bob, applications, approve, */*, allow\n",
    );
    let admin_password = kubectl(
        &kubeconfig,
        &[
            "get",
            "secret",
            "argocd-initial-admin-secret",
            "-n",
            "argocd",
            "-o",
            "go-template={{.data.password | base64decode}}",
        ],
    );
    kubectl_stdin(
        &kubeconfig,
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: argocd-cm\n  namespace: argocd\ndata:\n  accounts.bob: login\n",
    );
    // The server follows argocd-cm: the account appears in a moment.
    let mut set_ok = false;
    for _ in 0..50 {
        let mut child = Command::new(BERTH)
            .arg("--config")
            .arg(&config)
            .args(["account", "update-password", "--account", "bob"])
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        use std::io::Write as _;
        child
            .stdin
            .take()
            .unwrap()
            .write_all(format!("{admin_password}\nbob-password-1\n").as_bytes())
            .unwrap();
        if child.wait().unwrap().success() {
            set_ok = true;
            break;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    assert!(set_ok, "bob's password set");
    let bob_config = dir.join("bob-config");
    let bob = |args: &[&str]| {
        Command::new(BERTH)
            .arg("--config")
            .arg(&bob_config)
            .args(args)
            .output()
            .unwrap()
    };
    let login = bob(&[
        "login",
        &server_url,
        "--username",
        "bob",
        "--password",
        "bob-password-1",
    ]);
    assert!(
        login.status.success(),
        "{}",
        String::from_utf8_lossy(&login.stderr)
    );
    let requested = cli(&["app", "sync", "guestbook-prod"]);
    assert!(
        requested.status.success(),
        "{}",
        String::from_utf8_lossy(&requested.stderr)
    );
    let said = String::from_utf8_lossy(&requested.stdout).to_string();
    let id = said
        .split_whitespace()
        .skip_while(|w| *w != "request")
        .nth(1)
        .unwrap_or_else(|| panic!("a request ID: {said}"))
        .to_string();
    assert!(said.contains("needs approval"), "{said}");
    let listed = ok(&["app", "approvals", "guestbook-prod"]);
    assert!(
        listed
            .lines()
            .any(|l| l.starts_with(&id) && l.contains("Pending")),
        "{listed}"
    );
    let own = cli(&["app", "approve", "guestbook-prod", "--request", &id]);
    assert_eq!(own.status.code(), Some(1), "the requester cannot approve");
    assert!(String::from_utf8_lossy(&own.stderr).contains("requester"));
    let approved = bob(&[
        "app",
        "approve",
        "guestbook-prod",
        "--request",
        &id,
        "--comment",
        "ok",
    ]);
    assert!(
        approved.status.success(),
        "{}",
        String::from_utf8_lossy(&approved.stderr)
    );
    let mut executed = false;
    for _ in 0..300 {
        let list: serde_json::Value =
            serde_json::from_str(&ok(&["app", "approvals", "guestbook-prod", "-o", "json"]))
                .unwrap();
        if list["items"]
            .as_array()
            .unwrap()
            .iter()
            .any(|r| r["metadata"]["name"] == id.as_str() && r["status"]["phase"] == "Executed")
        {
            executed = true;
            break;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    assert!(executed, "the approved request ran");
    // `--wait` follows the request to its sync.
    let waiting = Command::new(BERTH)
        .arg("--config")
        .arg(&config)
        .args([
            "app",
            "sync",
            "guestbook-prod",
            "--wait",
            "--timeout",
            "120",
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // The request it opened, as it says on its first line.
    let mut waiting = waiting;
    let out = waiting.stdout.take().unwrap();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let mut lines = BufReader::new(out).lines().map_while(Result::ok);
        if let Some(first) = lines.next() {
            let _ = tx.send(first);
        }
        let rest: Vec<String> = lines.collect();
        let _ = tx.send(rest.join("\n"));
    });
    let first = match rx.recv_timeout(Duration::from_secs(90)) {
        Ok(l) => l,
        Err(e) => {
            let _ = waiting.kill();
            let err = waiting.wait_with_output().unwrap();
            panic!(
                "the waiting sync said nothing ({e}): {}",
                String::from_utf8_lossy(&err.stderr)
            );
        }
    };
    let pending = first
        .split_whitespace()
        .skip_while(|w| *w != "request")
        .nth(1)
        .unwrap_or_else(|| panic!("a request ID: {first}"))
        .to_string();
    let mut approved_ok = false;
    let mut said = String::new();
    for _ in 0..150 {
        // The controller opens the request a moment after the sync (longer
        // on a loaded machine).
        let approved = bob(&["app", "approve", "guestbook-prod", "--request", &pending]);
        if approved.status.success() {
            approved_ok = true;
            break;
        }
        said = String::from_utf8_lossy(&approved.stderr).to_string();
        std::thread::sleep(Duration::from_millis(200));
    }
    assert!(approved_ok, "bob approves request {pending}: {said}");
    let waited = waiting.wait_with_output().unwrap();
    assert!(
        waited.status.success(),
        "{}",
        String::from_utf8_lossy(&waited.stderr)
    );
    let rest = rx.recv_timeout(Duration::from_secs(10)).unwrap_or_default();
    assert!(rest.contains("approved; syncing"), "{first}\n{rest}");
    kubectl(
        &kubeconfig,
        &["delete", "approvalgate.berth.io", "production"],
    );

    // Single sign-on from the CLI, against a real OIDC provider.
    let tools = std::env::var("BERTH_TOOLS_DIR").expect("BERTH_TOOLS_DIR");
    let mut idp = Killed(
        Command::new(format!("{tools}/mockidp"))
            .args([
                "-client-id",
                "berth",
                "-client-secret",
                "berth-secret",
                "-sub",
                "sso-user",
            ])
            .stdout(Stdio::piped())
            .spawn()
            .unwrap(),
    );
    let mut line = String::new();
    BufReader::new(idp.0.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let issuer = line.trim().strip_prefix("ISSUER=").unwrap().to_string();
    let oidc =
        format!("name: Test\nissuer: {issuer}\nclientID: berth\nclientSecret: berth-secret\n");
    let exists = Command::new("kubectl")
        .arg("--kubeconfig")
        .arg(&kubeconfig)
        .args(["get", "configmap", "argocd-cm", "-n", "argocd"])
        .output()
        .unwrap()
        .status
        .success();
    if exists {
        let patch = serde_json::json!({"data": {"oidc.config": oidc}}).to_string();
        kubectl(
            &kubeconfig,
            &[
                "patch",
                "configmap",
                "argocd-cm",
                "-n",
                "argocd",
                "--type",
                "merge",
                "-p",
                &patch,
            ],
        );
    } else {
        kubectl(
            &kubeconfig,
            &[
                "create",
                "configmap",
                "argocd-cm",
                "-n",
                "argocd",
                &format!("--from-literal=oidc.config={oidc}"),
            ],
        );
    }
    let sso_config = dir.join("sso-config");
    let mut login = Command::new(BERTH)
        .arg("--config")
        .arg(&sso_config)
        .args(["login", &server_url, "--sso", "--sso-port", "0"])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut address = String::new();
    let mut err = BufReader::new(login.stderr.take().unwrap());
    while !address.starts_with("http") {
        address.clear();
        assert!(
            err.read_line(&mut address).unwrap() > 0,
            "no address printed"
        );
    }
    // The browser's part: every redirect followed to the CLI's listener.
    let page = reqwest::blocking::get(address.trim()).unwrap();
    assert!(page.status().is_success(), "{}", page.status());
    assert!(page.text().unwrap().contains("Logged in"));
    assert!(login.wait().unwrap().success());
    let who = Command::new(BERTH)
        .arg("--config")
        .arg(&sso_config)
        .args(["account", "get-user-info"])
        .output()
        .unwrap();
    let who = String::from_utf8_lossy(&who.stdout).to_string();
    assert!(who.contains("Username: sso-user"), "{who}");
    drop(idp);

    let status = stop(running.0.take().unwrap(), "TERM");
    assert!(status.success(), "{status:?}");
    assert!(
        !daemon_running(),
        "the demo's git daemon stops with berth up"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn up_on_an_existing_cluster_starts_no_control_plane() {
    let cluster = berth_testenv::shared().unwrap();
    let dir = temp_dir("berth-up-external");
    let mut child = Command::new(BERTH)
        .args(["up", "--listen", "127.0.0.1:0", "--data-dir"])
        .arg(&dir)
        .arg("--kubeconfig")
        .arg(&cluster.kubeconfig)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    let line = rx
        .recv_timeout(Duration::from_secs(120))
        .expect("berth up prints a line when ready");
    assert_eq!(
        line,
        format!("kubeconfig: {}", cluster.kubeconfig.display()),
        "the given cluster's kubeconfig is named"
    );
    assert!(!testenv_running_on(&dir), "no local control plane");
    assert!(!dir.join("kubeconfig").exists());
    // The controller made the cluster ready before the line.
    kubectl(
        &cluster.kubeconfig,
        &["get", "appproject", "default", "-n", "argocd"],
    );
    let status = stop(child, "TERM");
    assert!(status.success(), "{status:?}");
    let _ = std::fs::remove_dir_all(&dir);
}

/// A child process killed when dropped, even by a failing assertion.
struct Killed(Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// The web UI in a real browser: Debian's Chromium driven by
/// playwright-core (`ui-tests/e2e.mjs`) against `berth up --demo`, as
/// admin and as a read-only user. Screenshots of each screen are saved
/// to `target/ui-screenshots/` (see docs/ui.md).
#[test]
fn web_ui_in_a_real_browser() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let root = root.canonicalize().unwrap();
    assert!(
        root.join("ui-tests/node_modules/playwright-core").is_dir(),
        "playwright-core is not installed: run `npm ci` in ui-tests/ (scripts/test.sh does)"
    );
    let chromium = std::env::var("CHROMIUM").unwrap_or_else(|_| "/usr/bin/chromium".into());
    assert!(
        Path::new(&chromium).exists(),
        "no Chromium at {chromium}: install Debian's chromium (scripts/install-deps.sh does) or set CHROMIUM"
    );
    let dir = temp_dir("berth-up-ui");
    let (child, kubeconfig, server_url) = start_up_server(&dir, &["--demo"]);
    let mut running = Running(Some(child));
    let sync_status = |app: &str| {
        kubectl(
            &kubeconfig,
            &[
                "get",
                "app",
                app,
                "-n",
                "argocd",
                "-o",
                "jsonpath={.status.sync.status}",
            ],
        )
    };
    let mut ready = false;
    for _ in 0..600 {
        if sync_status("guestbook-prod") == "OutOfSync" && sync_status("guestbook-dev") == "Synced"
        {
            ready = true;
            break;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    assert!(ready, "the demo's apps compared");
    // A real OpenID Connect provider for single sign-on; its user is in
    // the group `sso-viewers`.
    let tools = std::env::var("BERTH_TOOLS_DIR").expect("BERTH_TOOLS_DIR (make test sets it)");
    let mut idp = Command::new(format!("{tools}/mockidp"))
        .args(["-sub", "alice", "-groups", "sso-viewers"])
        .stdout(Stdio::piped())
        .spawn()
        .expect("tools/bin/mockidp (testenv/build.sh builds it)");
    let mut line = String::new();
    std::io::BufRead::read_line(
        &mut std::io::BufReader::new(idp.stdout.take().unwrap()),
        &mut line,
    )
    .unwrap();
    let _idp = Running(Some(idp));
    let issuer = line.trim().strip_prefix("ISSUER=").unwrap().to_string();
    // A read-only user, as Argo CD declares one; single sign-on.
    kubectl_stdin(
        &kubeconfig,
        &format!(
            "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: argocd-cm\n  namespace: argocd\ndata:\n  accounts.viewer: login\n  accounts.approver: login\n  oidc.config: |\n    name: Test IdP\n    issuer: {issuer}\n    clientID: berth\n    clientSecret: $oidc.clientSecret\n    requestedScopes: [openid, profile, email, groups]\n---\napiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: argocd-rbac-cm\n  namespace: argocd\ndata:\n  policy.csv: |\n    g, viewer, role:readonly\n    g, approver, role:readonly\n    g, sso-viewers, role:readonly\n    p, approver, applications, approve, */*, allow\n---\napiVersion: berth.io/v1alpha1\nkind: ApprovalGate\nmetadata:\n  name: ui-dev\nspec:\n  applications: [guestbook-dev]\n  requiredApprovals: 1\n"
        ),
    );
    kubectl(
        &kubeconfig,
        &[
            "patch",
            "secret",
            "argocd-secret",
            "-n",
            "argocd",
            "--type",
            "merge",
            "-p",
            r#"{"stringData":{"oidc.clientSecret":"berth-secret"}}"#,
        ],
    );
    // An app whose sync takes seconds, so that its progress can be
    // watched: the demo's prod overlay with the ConfigMap in wave 1, and
    // the local control plane's ready-delay annotation on every object
    // (wave 0's pods are ready after 8 s).
    let repo = kubectl(
        &kubeconfig,
        &[
            "get",
            "app",
            "guestbook-prod",
            "-n",
            "argocd",
            "-o",
            "jsonpath={.spec.source.repoURL}",
        ],
    );
    let path = kubectl(
        &kubeconfig,
        &[
            "get",
            "app",
            "guestbook-prod",
            "-n",
            "argocd",
            "-o",
            "jsonpath={.spec.source.path}",
        ],
    );
    kubectl_stdin(
        &kubeconfig,
        &format!(
            "apiVersion: argoproj.io/v1alpha1\nkind: Application\nmetadata:\n  name: guestbook-slow\n  namespace: argocd\nspec:\n  project: default\n  source:\n    repoURL: {repo}\n    path: {path}\n    targetRevision: HEAD\n    kustomize:\n      commonAnnotations:\n        testenv.berth.io/ready-delay: 8s\n      patches:\n      - target: {{kind: ConfigMap, name: guestbook}}\n        patch: |-\n          apiVersion: v1\n          kind: ConfigMap\n          metadata:\n            name: guestbook\n            annotations:\n              argocd.argoproj.io/sync-wave: \"1\"\n  destination:\n    server: https://kubernetes.default.svc\n    namespace: guestbook-slow\n  syncPolicy:\n    syncOptions: [CreateNamespace=true]\n"
        ),
    );
    // An ApplicationSet, for its page.
    kubectl_stdin(
        &kubeconfig,
        &format!(
            "apiVersion: argoproj.io/v1alpha1\nkind: ApplicationSet\nmetadata:\n  name: teams\n  namespace: argocd\nspec:\n  generators:\n  - list:\n      elements:\n      - team: blue\n  template:\n    metadata:\n      name: '{{{{team}}}}-guestbook'\n    spec:\n      project: default\n      source:\n        repoURL: {repo}\n        path: {path}\n        targetRevision: HEAD\n      destination:\n        server: https://kubernetes.default.svc\n        namespace: team-blue\n"
        ),
    );
    // Another copy for the Firefox run.
    kubectl_stdin(
        &kubeconfig,
        &format!(
            "apiVersion: argoproj.io/v1alpha1\nkind: Application\nmetadata:\n  name: guestbook-fox\n  namespace: argocd\nspec:\n  project: default\n  source:\n    repoURL: {repo}\n    path: {path}\n    targetRevision: HEAD\n  destination:\n    server: https://kubernetes.default.svc\n    namespace: guestbook-fox\n  syncPolicy:\n    syncOptions: [CreateNamespace=true]\n"
        ),
    );
    let mut compared = false;
    for _ in 0..600 {
        if sync_status("guestbook-slow") == "OutOfSync"
            && sync_status("guestbook-fox") == "OutOfSync"
        {
            compared = true;
            break;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    assert!(compared, "guestbook-slow and guestbook-fox compared");
    let admin_password = kubectl(
        &kubeconfig,
        &[
            "get",
            "secret",
            "argocd-initial-admin-secret",
            "-n",
            "argocd",
            "-o",
            "go-template={{.data.password | base64decode}}",
        ],
    );
    let config = dir.join("berth-config");
    for account in ["viewer", "approver"] {
        let mut set = false;
        for _ in 0..50 {
            let mut child = Command::new(BERTH)
                .arg("--config")
                .arg(&config)
                .args(["account", "update-password", "--account", account])
                .stdin(Stdio::piped())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .unwrap();
            use std::io::Write as _;
            child
                .stdin
                .take()
                .unwrap()
                .write_all(format!("{admin_password}\n{account}-password-1\n").as_bytes())
                .unwrap();
            if child.wait().unwrap().success() {
                set = true;
                break;
            }
            std::thread::sleep(Duration::from_millis(200));
        }
        assert!(set, "{account}'s password set");
    }
    let shots = root.join("target/ui-screenshots");
    // Fresh: every screenshot asserted below is this run's.
    let _ = std::fs::remove_dir_all(&shots);
    let out = Command::new("node")
        .arg(root.join("ui-tests/e2e.mjs"))
        .current_dir(root.join("ui-tests"))
        .env("BERTH_URL", &server_url)
        .env("ADMIN_PASSWORD", &admin_password)
        .env("VIEWER_USER", "viewer")
        .env("VIEWER_PASSWORD", "viewer-password-1")
        .env("APPROVER_USER", "approver")
        .env("APPROVER_PASSWORD", "approver-password-1")
        .env("SCREENSHOTS", &shots)
        .env("CHROMIUM", &chromium)
        .output()
        .unwrap();
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "the browser test failed:\n{said}");
    assert!(
        said.contains("ok: the app became Synced, seen live"),
        "{said}"
    );
    for screen in [
        "login",
        "applications",
        "applications-tiles",
        "applicationsets",
        "application",
        "diff",
        "diff-split",
        "sync-dialog",
        "synced",
        "sync-progress",
        "applications-live",
        "narrow-applications",
        "narrow-application",
        "narrow-diff",
        "narrow-resources",
        "resource",
        "resource-actions",
        "history",
        "approvals",
        "request",
        "read-only",
    ] {
        assert!(
            shots.join(format!("{screen}.png")).is_file(),
            "screenshot {screen}"
        );
    }
    assert_eq!(
        sync_status("guestbook-prod"),
        "Synced",
        "synced from the browser"
    );
    // The same UI in Firefox.
    let firefox = std::env::var("FIREFOX").unwrap_or_else(|_| "/usr/bin/firefox-esr".into());
    assert!(
        Path::new(&firefox).exists(),
        "no Firefox at {firefox}: install Debian's firefox-esr (scripts/install-deps.sh does) or set FIREFOX"
    );
    let out = Command::new("node")
        .arg(root.join("ui-tests/firefox.mjs"))
        .current_dir(root.join("ui-tests"))
        .env("BERTH_URL", &server_url)
        .env("ADMIN_PASSWORD", &admin_password)
        .env("APP", "guestbook-fox")
        .env("SCREENSHOTS", &shots)
        .env("FIREFOX", &firefox)
        .output()
        .unwrap();
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "the Firefox test failed:\n{said}");
    assert_eq!(
        sync_status("guestbook-fox"),
        "Synced",
        "synced from Firefox"
    );
    for screen in [
        "firefox-applications",
        "firefox-diff",
        "firefox-synced",
        "firefox-narrow",
    ] {
        assert!(
            shots.join(format!("{screen}.png")).is_file(),
            "screenshot {screen}"
        );
    }
    let staging = Command::new("kubectl")
        .arg("--kubeconfig")
        .arg(&kubeconfig)
        .args(["get", "app", "guestbook-staging", "-n", "argocd"])
        .output()
        .unwrap();
    assert!(!staging.status.success(), "deleted from the browser");
    let kept = kubectl(
        &kubeconfig,
        &[
            "get",
            "deployment",
            "guestbook",
            "-n",
            "guestbook-staging",
            "-o",
            "name",
        ],
    );
    assert!(
        kept.contains("guestbook"),
        "without cascade its resources stay"
    );
    let status = stop(running.0.take().unwrap(), "TERM");
    assert!(status.success(), "{status:?}");
    let _ = std::fs::remove_dir_all(&dir);
}
