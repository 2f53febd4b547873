//! One control plane per test run, one namespace per test.
//!
//! The test command (`make test`) starts a control plane once and passes its
//! kubeconfig in `BERTH_TEST_KUBECONFIG` (and its data directory in
//! `BERTH_TEST_DATA_DIR`), so that every test binary shares it. When a test is
//! run by hand without them, the first test in the binary starts a control
//! plane of its own, which lives until the binary exits.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Mutex, OnceLock};
use std::time::{SystemTime, UNIX_EPOCH};

use k8s_openapi::api::core::v1::Namespace;
use kube::api::{ObjectMeta, PostParams};
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::{Api, Client, Config};

use crate::control_plane::{ControlPlane, Options};
use crate::error::{Error, Result};
use crate::tools::find_tool;

/// Environment variable naming the shared control plane's kubeconfig.
pub const KUBECONFIG_ENV: &str = "BERTH_TEST_KUBECONFIG";
/// Environment variable naming the shared control plane's data directory.
pub const DATA_DIR_ENV: &str = "BERTH_TEST_DATA_DIR";

/// The control plane shared by the tests of one run.
#[derive(Debug, Clone)]
pub struct SharedCluster {
    /// Admin kubeconfig.
    pub kubeconfig: PathBuf,
    /// Data directory (PKI, logs), needed to issue user credentials.
    pub data_dir: PathBuf,
}

static SHARED: OnceLock<Result<SharedCluster, String>> = OnceLock::new();
// Kept for the life of the test binary: statics are never dropped, and the
// control plane exits when the binary's end closes its stdin.
static FALLBACK: Mutex<Option<ControlPlane>> = Mutex::new(None);

/// The shared control plane: the one named by `BERTH_TEST_KUBECONFIG`, or one
/// started on first use.
pub fn shared() -> Result<SharedCluster> {
    SHARED
        .get_or_init(|| {
            if let Some(kubeconfig) = std::env::var_os(KUBECONFIG_ENV) {
                let kubeconfig = PathBuf::from(kubeconfig);
                let data_dir = std::env::var_os(DATA_DIR_ENV)
                    .map(PathBuf::from)
                    .or_else(|| kubeconfig.parent().map(Path::to_path_buf))
                    .unwrap_or_default();
                return Ok(SharedCluster {
                    kubeconfig,
                    data_dir,
                });
            }
            let plane =
                ControlPlane::start(Options::default().quiet(true)).map_err(|e| e.to_string())?;
            let cluster = SharedCluster {
                kubeconfig: plane.kubeconfig().to_path_buf(),
                data_dir: plane.data_dir().to_path_buf(),
            };
            if let Ok(mut slot) = FALLBACK.lock() {
                *slot = Some(plane);
            }
            Ok(cluster)
        })
        .clone()
        .map_err(|message| {
            Error::io(
                "start the shared control plane",
                std::io::Error::other(message),
            )
        })
}

/// Builds a client from a kubeconfig file.
pub async fn client_for(kubeconfig: &Path) -> Result<Client> {
    let kc = Kubeconfig::read_from(kubeconfig).map_err(|e| Error::Kubeconfig {
        path: kubeconfig.to_path_buf(),
        source: Box::new(e),
    })?;
    let config = Config::from_custom_kubeconfig(kc, &KubeConfigOptions::default())
        .await
        .map_err(|e| Error::Kubeconfig {
            path: kubeconfig.to_path_buf(),
            source: Box::new(e),
        })?;
    Ok(Client::try_from(config)?)
}

/// A namespace of its own for one test, on the shared control plane.
#[derive(Clone)]
pub struct TestNamespace {
    /// An admin client.
    pub client: Client,
    /// The namespace's name.
    pub name: String,
    /// The admin kubeconfig.
    pub kubeconfig: PathBuf,
    /// The control plane's data directory.
    pub data_dir: PathBuf,
}

impl std::fmt::Debug for TestNamespace {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TestNamespace")
            .field("name", &self.name)
            .finish()
    }
}

impl TestNamespace {
    /// Creates a fresh namespace named after `prefix` plus a unique suffix.
    pub async fn new(prefix: &str) -> Result<TestNamespace> {
        let cluster = tokio::task::spawn_blocking(shared)
            .await
            .map_err(|e| Error::io("start the shared control plane", std::io::Error::other(e)))??;
        let client = client_for(&cluster.kubeconfig).await?;
        let name = unique_name(prefix);
        let ns = Namespace {
            metadata: ObjectMeta {
                name: Some(name.clone()),
                labels: Some([("berth.test/namespace".to_string(), "true".to_string())].into()),
                ..Default::default()
            },
            ..Default::default()
        };
        Api::<Namespace>::all(client.clone())
            .create(&PostParams::default(), &ns)
            .await?;
        Ok(TestNamespace {
            client,
            name,
            kubeconfig: cluster.kubeconfig,
            data_dir: cluster.data_dir,
        })
    }

    /// Writes a kubeconfig for a non-admin user (a client certificate signed
    /// by the cluster CA) and returns its path. The user has no permissions
    /// until RBAC grants some.
    pub fn issue_user(&self, user: &str, groups: &[&str]) -> Result<PathBuf> {
        let out = self
            .data_dir
            .join(format!("user-{}-{}.kubeconfig", self.name, user));
        let program = find_tool("berth-testenv")?;
        let status = Command::new(&program)
            .arg("issue-user")
            .arg("--data-dir")
            .arg(&self.data_dir)
            .arg("--name")
            .arg(user)
            .arg("--groups")
            .arg(groups.join(","))
            .arg("--out")
            .arg(&out)
            .status()
            .map_err(|source| Error::Spawn {
                path: program.clone(),
                source,
            })?;
        if !status.success() {
            return Err(Error::io(
                format!("issue credentials for {user}"),
                std::io::Error::other(format!("berth-testenv issue-user exited with {status}")),
            ));
        }
        Ok(out)
    }
}

/// A DNS-1123 label made of `prefix` and a suffix unique in this run.
fn unique_name(prefix: &str) -> String {
    static COUNTER: AtomicU32 = AtomicU32::new(0);
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let suffix = format!("{:x}{:x}{n}", std::process::id() % 0xffff, nanos % 0xfffff);
    let mut clean: String = prefix
        .to_ascii_lowercase()
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
        .collect();
    clean.truncate(40);
    format!("{}-{suffix}", clean.trim_matches('-'))
}

#[cfg(test)]
mod tests {
    use super::unique_name;

    #[test]
    fn unique_names_are_dns_labels_and_differ() {
        let a = unique_name("Kubectl_Apply/Test");
        let b = unique_name("Kubectl_Apply/Test");
        assert_ne!(a, b);
        for name in [&a, &b] {
            assert!(name.len() <= 63, "{name}");
            assert!(
                name.chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-'),
                "{name}"
            );
            assert!(name.starts_with("kubectl-apply-test-"), "{name}");
        }
    }
}
