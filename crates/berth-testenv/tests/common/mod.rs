//! Helpers shared by the integration tests of the local control plane.
#![allow(dead_code)]

use std::io::Write;
use std::path::PathBuf;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use berth_testenv::TestNamespace;

/// The kubectl closest to the control plane's Kubernetes version: kubectl is
/// supported one minor version away from the server, so a `kubectl.1.34` or
/// `kubectl.1.33` beside the `kubectl` on PATH is preferred.
/// `BERTH_TEST_KUBECTL` overrides.
pub fn kubectl_path() -> PathBuf {
    if let Some(p) = std::env::var_os("BERTH_TEST_KUBECTL") {
        return PathBuf::from(p);
    }
    let path = std::env::var_os("PATH").unwrap_or_default();
    for dir in std::env::split_paths(&path) {
        let candidate = dir.join("kubectl");
        if !candidate.is_file() {
            continue;
        }
        let real = std::fs::canonicalize(&candidate).unwrap_or(candidate.clone());
        if let Some(parent) = real.parent() {
            for version in ["kubectl.1.34", "kubectl.1.33"] {
                let sibling = parent.join(version);
                if sibling.is_file() {
                    return sibling;
                }
            }
        }
        return candidate;
    }
    PathBuf::from("kubectl")
}

/// Runs kubectl in the test's namespace, with `stdin` as its input.
pub fn kubectl(ns: &TestNamespace, args: &[&str], stdin: Option<&str>) -> Output {
    let mut cmd = Command::new(kubectl_path());
    cmd.arg("--kubeconfig")
        .arg(&ns.kubeconfig)
        .arg("-n")
        .arg(&ns.name)
        .args(args)
        .stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = cmd.spawn().expect("kubectl runs");
    if let Some(input) = stdin {
        child
            .stdin
            .take()
            .expect("stdin is piped")
            .write_all(input.as_bytes())
            .expect("write kubectl stdin");
    }
    child.wait_with_output().expect("kubectl finishes")
}

/// Runs kubectl and fails the test with its output unless it succeeds.
pub fn kubectl_ok(ns: &TestNamespace, args: &[&str], stdin: Option<&str>) -> String {
    let out = kubectl(ns, args, stdin);
    assert!(
        out.status.success(),
        "kubectl {args:?} failed ({}):\nstdout: {}\nstderr: {}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Polls `check` until it returns Some, failing the test with `what` after
/// `limit`. The limit bounds a hung test; it is not a timing assertion.
pub async fn eventually<T>(
    what: &str,
    limit: Duration,
    mut check: impl AsyncFnMut() -> Option<T>,
) -> T {
    let deadline = Instant::now() + limit;
    loop {
        if let Some(v) = check().await {
            return v;
        }
        assert!(
            Instant::now() < deadline,
            "gave up after {limit:?} waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// A fresh directory under the system temp dir, removed on drop.
pub struct TempDir(pub PathBuf);

impl TempDir {
    pub fn new(prefix: &str) -> TempDir {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0);
        let dir = std::env::temp_dir().join(format!("{prefix}-{}-{nanos}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("create temp dir");
        TempDir(dir)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}
