//! Clients for the clusters Argo CD's cluster Secrets describe
//! (`argocd.argoproj.io/secret-type: cluster`: `server`, `name`, and
//! `config` with a bearer token, basic auth or a TLS client certificate,
//! and CA data).

use serde_json::{Value, json};

/// Why a client for a cluster could not be made.
#[derive(Debug, thiserror::Error)]
pub enum RemoteError {
    /// The Secret's `config` cannot be read as a client configuration.
    #[error("config: {0}")]
    Config(String),
    /// The client could not be built from it.
    #[error("client: {0}")]
    Client(String),
}

/// A client for a cluster from Argo CD's `config`, through a kubeconfig
/// so the PEM data is read as kubectl reads it.
pub async fn client_for(server: &str, config: &Value) -> Result<kube::Client, RemoteError> {
    let tls = config.get("tlsClientConfig").cloned().unwrap_or(json!({}));
    let mut cluster = json!({"server": server});
    if let Some(ca) = tls.get("caData").and_then(Value::as_str) {
        cluster["certificate-authority-data"] = json!(ca);
    }
    if tls.get("insecure").and_then(Value::as_bool) == Some(true) {
        cluster["insecure-skip-tls-verify"] = json!(true);
    }
    if let Some(n) = tls.get("serverName").and_then(Value::as_str) {
        cluster["tls-server-name"] = json!(n);
    }
    let mut user = json!({});
    for (from, to) in [
        ("bearerToken", "token"),
        ("username", "username"),
        ("password", "password"),
    ] {
        if let Some(v) = config.get(from).and_then(Value::as_str) {
            user[to] = json!(v);
        }
    }
    for (from, to) in [
        ("certData", "client-certificate-data"),
        ("keyData", "client-key-data"),
    ] {
        if let Some(v) = tls.get(from).and_then(Value::as_str) {
            user[to] = json!(v);
        }
    }
    let kubeconfig = json!({
        "apiVersion": "v1", "kind": "Config",
        "clusters": [{"name": "c", "cluster": cluster}],
        "users": [{"name": "u", "user": user}],
        "contexts": [{"name": "x", "context": {"cluster": "c", "user": "u"}}],
        "current-context": "x",
    });
    let kubeconfig: kube::config::Kubeconfig =
        serde_json::from_value(kubeconfig).map_err(|e| RemoteError::Config(e.to_string()))?;
    let config = kube::Config::from_custom_kubeconfig(kubeconfig, &Default::default())
        .await
        .map_err(|e| RemoteError::Config(e.to_string()))?;
    kube::Client::try_from(config).map_err(|e| RemoteError::Client(e.to_string()))
}
