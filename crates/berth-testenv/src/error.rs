//! Errors of starting and using the local control plane.

use std::path::PathBuf;
use std::process::ExitStatus;
use std::time::Duration;

/// What can go wrong when starting or using the local control plane.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A tool binary (such as `berth-testenv`) was found nowhere.
    #[error("{name} is not built (looked in {searched}); build it with `{build_command}`")]
    ToolNotFound {
        /// The binary's name.
        name: String,
        /// The places that were searched, for the message.
        searched: String,
        /// The command that builds it.
        build_command: &'static str,
    },
    /// The control plane process could not be started.
    #[error("could not start {path}: {source}")]
    Spawn {
        /// The program that failed to start.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The control plane exited before it was ready.
    #[error("the control plane exited before it was ready ({status}); its logs are in {logs}")]
    Exited {
        /// Its exit status.
        status: ExitStatus,
        /// Where to look for the reason.
        logs: String,
    },
    /// The control plane did not report readiness in time.
    #[error("the control plane was not ready after {0:?}")]
    NotReady(Duration),
    /// A file or process operation failed.
    #[error("{context}: {source}")]
    Io {
        /// What was being done.
        context: String,
        /// Why it failed.
        #[source]
        source: std::io::Error,
    },
    /// The kubeconfig written by the control plane could not be used.
    #[error("kubeconfig {path}: {source}")]
    Kubeconfig {
        /// The kubeconfig file.
        path: PathBuf,
        /// Why it could not be used.
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    /// A Kubernetes API call failed.
    #[error("kubernetes api: {0}")]
    Kube(#[from] kube::Error),
    /// A kubectl command failed.
    #[error("kubectl {args}: {stderr}")]
    Kubectl {
        /// Its arguments.
        args: String,
        /// What it printed on stderr.
        stderr: String,
    },
}

/// Result with this crate's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    pub(crate) fn io(context: impl Into<String>, source: std::io::Error) -> Self {
        Error::Io {
            context: context.into(),
            source,
        }
    }
}
