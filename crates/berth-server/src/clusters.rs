//! Clusters as Argo CD's API serves them, kept where Argo CD keeps them:
//! Secrets labelled `argocd.argoproj.io/secret-type: cluster` with `name`,
//! `server`, `config` (JSON: bearer token, basic auth, TLS client
//! configuration with base64 PEM data), `namespaces`, `clusterResources`
//! and `project`. The controller's own cluster (`in-cluster`,
//! `https://kubernetes.default.svc`) is always listed. A cluster is added
//! only once its API server answers with the given credentials;
//! credentials are never returned.

use std::collections::BTreeMap;
use std::time::SystemTime;

use axum::extract::{Path, RawQuery, State};
use axum::{Extension, Json};
use k8s_openapi::api::core::v1::Secret;
use kube::api::{DeleteParams, ListParams, ObjectMeta, PostParams};
use serde_json::{Value, json};

use crate::apps::query_pairs;
use crate::error::ApiError;
use crate::repositories::{fields, fnv32a};
use crate::{AppState, Caller};

/// The controller's own cluster, as Applications name it.
pub const IN_CLUSTER: &str = "https://kubernetes.default.svc";
const SECRET_TYPE: &str = "argocd.argoproj.io/secret-type";

fn secrets(state: &AppState) -> kube::Api<Secret> {
    kube::Api::namespaced(state.client.clone(), &state.namespace)
}

/// Argo CD's Secret name for a server: `cluster-<host>-<fnv32a>`.
fn secret_name(server: &str) -> String {
    let host: String = server
        .split("://")
        .nth(1)
        .unwrap_or(server)
        .split(['/', ':'])
        .next()
        .unwrap_or_default()
        .to_lowercase()
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '.' || c == '-' {
                c
            } else {
                '-'
            }
        })
        .collect();
    format!(
        "cluster-{}-{}",
        host.trim_matches(['-', '.']),
        fnv32a(server)
    )
}

fn rbac_object(server: &str, project: Option<&str>) -> String {
    match project.filter(|p| !p.is_empty()) {
        Some(p) => format!("{p}/{server}"),
        None => server.to_string(),
    }
}

/// A cluster as the API shows it: `config` without its secrets.
fn shown(f: &BTreeMap<String, String>) -> Value {
    let config: Value = f
        .get("config")
        .and_then(|c| serde_json::from_str(c).ok())
        .unwrap_or_else(|| json!({}));
    let mut tls = json!({"insecure": config.pointer("/tlsClientConfig/insecure").and_then(Value::as_bool).unwrap_or(false)});
    if let Some(n) = config.pointer("/tlsClientConfig/serverName") {
        tls["serverName"] = n.clone();
    }
    let mut c = json!({
        "server": f.get("server").cloned().unwrap_or_default(),
        "name": f.get("name").cloned().unwrap_or_default(),
        "config": {"tlsClientConfig": tls},
    });
    if let Some(ns) = f.get("namespaces").filter(|n| !n.is_empty()) {
        c["namespaces"] = json!(ns.split(',').map(str::trim).collect::<Vec<_>>());
    }
    if let Some(p) = f.get("project").filter(|p| !p.is_empty()) {
        c["project"] = json!(p);
    }
    if f.get("clusterResources").is_some_and(|v| v == "true") {
        c["clusterResources"] = json!(true);
    }
    c
}

/// Asks the cluster's API server for its version: Argo CD's
/// `connectionState` and `serverVersion`.
async fn probe(client: &kube::Client) -> (Value, Option<String>) {
    let at = berth_api::time::rfc3339(SystemTime::now());
    match tokio::time::timeout(
        std::time::Duration::from_secs(10),
        client.apiserver_version(),
    )
    .await
    {
        Ok(Ok(v)) => (
            json!({"status": "Successful", "message": "", "attemptedAt": at}),
            Some(format!("{}.{}", v.major, v.minor.trim_end_matches('+'))),
        ),
        Ok(Err(e)) => (
            json!({"status": "Failed", "message": e.to_string(), "attemptedAt": at}),
            None,
        ),
        Err(_) => (
            json!({"status": "Failed", "message": "no answer within 10 s", "attemptedAt": at}),
            None,
        ),
    }
}

async fn with_state(mut shown: Value, client: Result<kube::Client, String>) -> Value {
    let (state, version) = match client {
        Ok(c) => probe(&c).await,
        Err(e) => (
            json!({"status": "Failed", "message": e, "attemptedAt": berth_api::time::rfc3339(SystemTime::now())}),
            None,
        ),
    };
    shown["connectionState"] = state.clone();
    shown["info"] = json!({"connectionState": state});
    if let Some(v) = version {
        shown["serverVersion"] = json!(v);
        shown["info"]["serverVersion"] = json!(v);
    }
    shown
}

async fn stored(state: &AppState) -> Result<Vec<(Secret, BTreeMap<String, String>)>, ApiError> {
    Ok(secrets(state)
        .list(&ListParams::default().labels(&format!("{SECRET_TYPE}=cluster")))
        .await
        .map_err(|e| ApiError::kube("cluster Secrets", e))?
        .items
        .into_iter()
        .map(|s| {
            let f = fields(&s);
            (s, f)
        })
        .collect())
}

fn in_cluster() -> BTreeMap<String, String> {
    [("server", IN_CLUSTER), ("name", "in-cluster")]
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

async fn state_of(state: &AppState, f: &BTreeMap<String, String>) -> Value {
    let server = f.get("server").cloned().unwrap_or_default();
    if server == IN_CLUSTER && f.get("config").is_none() {
        return with_state(shown(f), Ok(state.client.clone())).await;
    }
    let config: Value = f
        .get("config")
        .and_then(|c| serde_json::from_str(c).ok())
        .unwrap_or_else(|| json!({}));
    with_state(
        shown(f),
        berth_cluster::remote::client_for(&server, &config)
            .await
            .map_err(|e| e.to_string()),
    )
    .await
}

/// `GET /api/v1/clusters`: those the caller may get, the controller's own
/// first, each with its connection state.
pub async fn list(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
) -> Result<Json<Value>, ApiError> {
    let policy = state.policy();
    let mut all: Vec<BTreeMap<String, String>> =
        stored(&state).await?.into_iter().map(|(_, f)| f).collect();
    if !all
        .iter()
        .any(|f| f.get("server").is_some_and(|s| s == IN_CLUSTER))
    {
        all.insert(0, in_cluster());
    }
    let visible: Vec<BTreeMap<String, String>> = all
        .into_iter()
        .filter(|f| {
            let server = f.get("server").cloned().unwrap_or_default();
            policy.allows(
                &caller.user,
                &caller.groups,
                "clusters",
                "get",
                &rbac_object(&server, f.get("project").map(String::as_str)),
            )
        })
        .collect();
    let items = futures::future::join_all(visible.iter().map(|f| state_of(&state, f))).await;
    Ok(Json(json!({"metadata": {}, "items": items})))
}

/// A cluster by server URL or name (`?id.type=name`, Argo CD's query).
async fn find(
    state: &AppState,
    id: &str,
    by_name: bool,
) -> Result<(Option<Secret>, BTreeMap<String, String>), ApiError> {
    let key = if by_name { "name" } else { "server" };
    if let Some((s, f)) = stored(state)
        .await?
        .into_iter()
        .find(|(_, f)| f.get(key).is_some_and(|v| v == id))
    {
        return Ok((Some(s), f));
    }
    let local = in_cluster();
    if local.get(key).is_some_and(|v| v == id) {
        return Ok((None, local));
    }
    Err(ApiError::not_found(format!("cluster {id:?}: not found")))
}

fn by_name(raw: Option<&str>) -> bool {
    query_pairs(raw)
        .iter()
        .any(|(k, v)| k == "id.type" && v == "name")
}

/// `GET /api/v1/clusters/{server}` (URL percent-encoded, or a name with
/// `?id.type=name`).
pub async fn get(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
    RawQuery(raw): RawQuery,
) -> Result<Json<Value>, ApiError> {
    let (_, f) = find(&state, &id, by_name(raw.as_deref())).await?;
    let server = f.get("server").cloned().unwrap_or_default();
    state.authorize(
        &caller,
        "clusters",
        "get",
        &rbac_object(&server, f.get("project").map(String::as_str)),
    )?;
    Ok(Json(state_of(&state, &f).await))
}

/// `POST /api/v1/clusters` with Argo CD's `Cluster` (`?upsert=true`
/// replaces one with the same server): checks the connection, then stores
/// the Secret.
pub async fn create(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    RawQuery(raw): RawQuery,
    Json(body): Json<Value>,
) -> Result<Json<Value>, ApiError> {
    let server = body
        .get("server")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .trim_end_matches('/')
        .to_string();
    if !(server.starts_with("https://") || server.starts_with("http://")) {
        return Err(ApiError::bad_request(
            "server: the cluster's API server URL (https://...) is required",
        ));
    }
    let name = body
        .get("name")
        .and_then(Value::as_str)
        .filter(|n| !n.is_empty())
        .ok_or_else(|| ApiError::bad_request("name: required"))?
        .to_string();
    let project = body
        .get("project")
        .and_then(Value::as_str)
        .unwrap_or_default();
    state.authorize(
        &caller,
        "clusters",
        "create",
        &rbac_object(&server, Some(project)),
    )?;
    let config = body.get("config").cloned().unwrap_or_else(|| json!({}));
    if !config.is_object() {
        return Err(ApiError::bad_request("config: must be an object"));
    }
    let namespaces: Vec<String> = match body.get("namespaces") {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::Array(a)) => a
            .iter()
            .map(|n| {
                n.as_str()
                    .map(String::from)
                    .ok_or_else(|| ApiError::bad_request("namespaces: a list of names"))
            })
            .collect::<Result<_, _>>()?,
        Some(_) => return Err(ApiError::bad_request("namespaces: a list of names")),
    };
    let upsert = body.get("upsert").and_then(Value::as_bool) == Some(true)
        || query_pairs(raw.as_deref())
            .iter()
            .any(|(k, v)| k == "upsert" && v == "true");
    let existing = stored(&state)
        .await?
        .into_iter()
        .find(|(_, f)| f.get("server").is_some_and(|s| *s == server));
    if existing.is_some() && !upsert {
        return Err(ApiError::conflict(format!(
            "cluster {server:?} already exists; use upsert to replace it"
        )));
    }
    if existing.is_some() {
        state.authorize(
            &caller,
            "clusters",
            "update",
            &rbac_object(&server, Some(project)),
        )?;
    }
    let client = berth_cluster::remote::client_for(&server, &config)
        .await
        .map_err(|e| e.to_string());
    let checked = with_state(json!({}), client).await;
    if checked["connectionState"]["status"] != "Successful" {
        return Err(ApiError::bad_request(format!(
            "cluster {server:?}: unable to connect: {}",
            checked["connectionState"]["message"]
                .as_str()
                .unwrap_or_default()
        )));
    }
    let mut data: BTreeMap<String, String> = [
        ("server".to_string(), server.clone()),
        ("name".to_string(), name),
        ("config".to_string(), config.to_string()),
    ]
    .into();
    if !namespaces.is_empty() {
        data.insert("namespaces".into(), namespaces.join(","));
    }
    if !project.is_empty() {
        data.insert("project".into(), project.to_string());
    }
    if body.get("clusterResources").and_then(Value::as_bool) == Some(true) {
        data.insert("clusterResources".into(), "true".into());
    }
    let secret_name = existing
        .as_ref()
        .and_then(|(s, _)| s.metadata.name.clone())
        .unwrap_or_else(|| secret_name(&server));
    let secret = Secret {
        metadata: ObjectMeta {
            name: Some(secret_name.clone()),
            namespace: Some(state.namespace.clone()),
            labels: Some([(SECRET_TYPE.to_string(), "cluster".to_string())].into()),
            annotations: Some(
                [("managed-by".to_string(), "argocd.argoproj.io".to_string())].into(),
            ),
            resource_version: existing
                .as_ref()
                .and_then(|(s, _)| s.metadata.resource_version.clone()),
            ..ObjectMeta::default()
        },
        string_data: Some(data.clone()),
        type_: Some("Opaque".into()),
        ..Secret::default()
    };
    let result = match existing {
        Some(_) => {
            secrets(&state)
                .replace(&secret_name, &PostParams::default(), &secret)
                .await
        }
        None => {
            secrets(&state)
                .create(&PostParams::default(), &secret)
                .await
        }
    };
    result.map_err(|e| ApiError::kube(&format!("cluster {server:?}"), e))?;
    tracing::info!(user = %caller.user, %server, "cluster saved");
    let mut c = shown(&data);
    for k in ["connectionState", "serverVersion", "info"] {
        if let Some(v) = checked.get(k) {
            c[k] = v.clone();
        }
    }
    Ok(Json(c))
}

/// `DELETE /api/v1/clusters/{server}`: the controller's own cluster
/// cannot be removed.
pub async fn delete(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
    RawQuery(raw): RawQuery,
) -> Result<Json<Value>, ApiError> {
    let (secret, f) = find(&state, &id, by_name(raw.as_deref())).await?;
    let server = f.get("server").cloned().unwrap_or_default();
    state.authorize(
        &caller,
        "clusters",
        "delete",
        &rbac_object(&server, f.get("project").map(String::as_str)),
    )?;
    let Some(secret) = secret else {
        return Err(ApiError::bad_request(format!(
            "cluster {server:?} is the controller's own cluster and cannot be removed"
        )));
    };
    secrets(&state)
        .delete(
            &secret.metadata.name.unwrap_or_default(),
            &DeleteParams::default(),
        )
        .await
        .map_err(|e| ApiError::kube(&format!("cluster {server:?}"), e))?;
    tracing::info!(user = %caller.user, %server, "cluster removed");
    Ok(Json(json!({})))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secret_names_follow_argo_cd() {
        let n = secret_name("https://10.0.0.1:6443");
        assert!(n.starts_with("cluster-10.0.0.1-"), "{n}");
        assert_eq!(n, secret_name("https://10.0.0.1:6443"));
        assert_ne!(n, secret_name("https://10.0.0.2:6443"));
    }
}
