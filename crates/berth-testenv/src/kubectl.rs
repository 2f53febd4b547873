//! kubectl, the independent client tests check Berth against.

use std::io::Write as _;
use std::path::Path;
use std::process::{Command, Output, Stdio};

use crate::error::{Error, Result};

/// Runs `kubectl --kubeconfig KUBECONFIG ARGS...` (kubectl from `PATH`),
/// with `stdin` on its standard input.
pub fn kubectl(kubeconfig: &Path, args: &[&str], stdin: Option<&str>) -> Result<Output> {
    let mut child = Command::new("kubectl")
        .arg("--kubeconfig")
        .arg(kubeconfig)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| Error::io("run kubectl", e))?;
    if let Some(mut input) = child.stdin.take() {
        input
            .write_all(stdin.unwrap_or_default().as_bytes())
            .map_err(|e| Error::io("write to kubectl", e))?;
    }
    child
        .wait_with_output()
        .map_err(|e| Error::io("wait for kubectl", e))
}

/// Like [`kubectl`], returning stdout; a failure is an error with stderr.
pub fn kubectl_ok(kubeconfig: &Path, args: &[&str], stdin: Option<&str>) -> Result<String> {
    let out = kubectl(kubeconfig, args, stdin)?;
    if !out.status.success() {
        return Err(Error::Kubectl {
            args: args.join(" "),
            stderr: String::from_utf8_lossy(&out.stderr).trim().to_string(),
        });
    }
    Ok(String::from_utf8_lossy(&out.stdout).to_string())
}
