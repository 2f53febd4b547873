//! Repositories as Argo CD's API serves them, kept where Argo CD keeps
//! them: Secrets labelled `argocd.argoproj.io/secret-type: repository` in
//! the control namespace (named `repo-<fnv32a of URL and project>`, as
//! Argo CD names them), which the controller reads as they change.
//! Credentials are write-only: no answer carries a password, token or key.
//! A repository is added only once a connection with its credentials
//! works (`git ls-remote`); Helm repositories are checked by fetching
//! their `index.yaml` through `helm`.

use std::collections::BTreeMap;
use std::time::SystemTime;

use axum::extract::{Path, RawQuery, State};
use axum::{Extension, Json};
use berth_source::creds::{Credentials, SecretString};
use k8s_openapi::api::core::v1::Secret;
use kube::api::{DeleteParams, ListParams, ObjectMeta, PostParams};
use serde_json::{Value, json};

use crate::apps::query_pairs;
use crate::error::ApiError;
use crate::{AppState, Caller};

/// Argo CD's label for its Secrets' kind.
const SECRET_TYPE: &str = "argocd.argoproj.io/secret-type";

/// Fields that are never returned.
const WRITE_ONLY: [&str; 4] = [
    "password",
    "sshPrivateKey",
    "tlsClientCertKey",
    "bearerToken",
];

/// Fields stored as given (all strings in the Secret).
const FIELDS: [&str; 14] = [
    "url",
    "type",
    "name",
    "project",
    "username",
    "password",
    "sshPrivateKey",
    "tlsClientCertData",
    "tlsClientCertKey",
    "bearerToken",
    "proxy",
    "noProxy",
    "insecure",
    "forceHttpBasicAuth",
];

/// FNV-1a, 32 bits: Argo CD's hash for Secret names.
pub(crate) fn fnv32a(text: &str) -> u32 {
    text.bytes().fold(0x811c_9dc5u32, |h, b| {
        (h ^ u32::from(b)).wrapping_mul(0x0100_0193)
    })
}

fn secret_name(url: &str, project: &str) -> String {
    format!("repo-{}", fnv32a(&format!("{url}{project}")))
}

fn secrets(state: &AppState) -> kube::Api<Secret> {
    kube::Api::namespaced(state.client.clone(), &state.namespace)
}

/// A Secret's data (and string data) as text, as Argo CD's repository
/// and cluster Secrets hold it.
pub(crate) fn fields(secret: &Secret) -> BTreeMap<String, String> {
    let mut out: BTreeMap<String, String> = secret
        .data
        .clone()
        .unwrap_or_default()
        .into_iter()
        .map(|(k, v)| (k, String::from_utf8_lossy(&v.0).into_owned()))
        .collect();
    for (k, v) in secret.string_data.clone().unwrap_or_default() {
        out.insert(k, v);
    }
    out
}

/// A repository as the API shows it: no write-only field.
fn shown(f: &BTreeMap<String, String>) -> Value {
    let text = |k: &str| f.get(k).cloned().unwrap_or_default();
    let flag = |k: &str| f.get(k).is_some_and(|v| v == "true");
    let mut repo = json!({
        "repo": text("url"),
        "type": f.get("type").cloned().unwrap_or_else(|| "git".into()),
        "insecure": flag("insecure"),
        "forceHttpBasicAuth": flag("forceHttpBasicAuth"),
    });
    for k in [
        "name",
        "project",
        "username",
        "tlsClientCertData",
        "proxy",
        "noProxy",
    ] {
        if let Some(v) = f.get(k).filter(|v| !v.is_empty()) {
            repo[k] = json!(v);
        }
    }
    // Whether a secret is set, never its value (Berth's extension).
    let set: Vec<&str> = WRITE_ONLY
        .iter()
        .copied()
        .filter(|k| f.get(*k).is_some_and(|v| !v.is_empty()))
        .collect();
    if !set.is_empty() {
        repo["berth"] = json!({"credentialsSet": set});
    }
    repo
}

/// The RBAC object of a repository: its URL, `project/URL` when scoped.
fn rbac_object(f: &BTreeMap<String, String>) -> String {
    let url = f.get("url").cloned().unwrap_or_default();
    match f.get("project").filter(|p| !p.is_empty()) {
        Some(p) => format!("{p}/{url}"),
        None => url,
    }
}

fn credentials(f: &BTreeMap<String, String>) -> Credentials {
    let text = |k: &str| f.get(k).filter(|v| !v.is_empty()).cloned();
    let secret = |k: &str| text(k).map(SecretString::new);
    Credentials {
        username: text("username"),
        password: secret("password"),
        bearer_token: secret("bearerToken"),
        ssh_private_key: secret("sshPrivateKey"),
        tls_client_cert_data: text("tlsClientCertData"),
        tls_client_cert_key: secret("tlsClientCertKey"),
        insecure: f.get("insecure").is_some_and(|v| v == "true"),
        proxy: text("proxy"),
        no_proxy: text("noProxy"),
        force_http_basic_auth: f.get("forceHttpBasicAuth").is_some_and(|v| v == "true"),
        ..Credentials::default()
    }
}

/// Tries to reach the repository with its credentials: Argo CD's
/// `connectionState`.
async fn connection_state(state: &AppState, f: &BTreeMap<String, String>) -> Value {
    let url = f.get("url").cloned().unwrap_or_default();
    let kind = f.get("type").cloned().unwrap_or_else(|| "git".into());
    let creds = credentials(f);
    let repos = std::sync::Arc::clone(&state.repos);
    let result = tokio::task::spawn_blocking(move || -> Result<(), String> {
        if kind == "helm" {
            return helm_index(&url, &creds);
        }
        repos
            .ls_remote(&url, Some(&creds))
            .map(|_| ())
            .map_err(|e| e.to_string())
    });
    let at = berth_api::time::rfc3339(SystemTime::now());
    match tokio::time::timeout(std::time::Duration::from_secs(30), result).await {
        Ok(Ok(Ok(()))) => json!({"status": "Successful", "message": "", "attemptedAt": at}),
        Ok(Ok(Err(e))) => json!({"status": "Failed", "message": e, "attemptedAt": at}),
        Ok(Err(e)) => json!({"status": "Failed", "message": e.to_string(), "attemptedAt": at}),
        Err(_) => {
            json!({"status": "Failed", "message": "no answer within 30 s", "attemptedAt": at})
        }
    }
}

/// Fetches a Helm repository's index with `helm repo add` into a scratch
/// configuration.
fn helm_index(url: &str, creds: &Credentials) -> Result<(), String> {
    let helm = berth_render::tool::find("helm", None).map_err(|e| e.to_string())?;
    let scratch = std::env::temp_dir().join(format!(
        "berth-helm-check-{}-{}",
        std::process::id(),
        fnv32a(url)
    ));
    let mut command = std::process::Command::new(helm);
    command
        .env("HELM_REPOSITORY_CONFIG", scratch.join("repositories.yaml"))
        .env("HELM_REPOSITORY_CACHE", scratch.join("cache"))
        .env("HELM_CONFIG_HOME", scratch.join("config"))
        .env("HELM_CACHE_HOME", scratch.join("cache"))
        .args(["repo", "add", "--force-update", "check", url]);
    if let Some(u) = &creds.username {
        command.args(["--username", u]);
    }
    if creds.insecure {
        command.arg("--insecure-skip-tls-verify");
    }
    command.stdin(std::process::Stdio::piped());
    if creds.password.is_some() {
        command.arg("--password-stdin");
    }
    let mut child = command
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .map_err(|e| format!("running helm: {e}"))?;
    if let (Some(p), Some(mut stdin)) = (&creds.password, child.stdin.take()) {
        use std::io::Write;
        let _ = stdin.write_all(p.expose().as_bytes());
    }
    let out = child
        .wait_with_output()
        .map_err(|e| format!("running helm: {e}"))?;
    let _ = std::fs::remove_dir_all(&scratch);
    if out.status.success() {
        Ok(())
    } else {
        Err(String::from_utf8_lossy(&out.stderr).trim().to_string())
    }
}

async fn all(state: &AppState) -> Result<Vec<Secret>, ApiError> {
    Ok(secrets(state)
        .list(&ListParams::default().labels(&format!("{SECRET_TYPE}=repository")))
        .await
        .map_err(|e| ApiError::kube("repository Secrets", e))?
        .items)
}

/// `GET /api/v1/repositories`: those the caller may get, each with its
/// connection state.
pub async fn list(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
) -> Result<Json<Value>, ApiError> {
    let policy = state.policy();
    let visible: Vec<BTreeMap<String, String>> = all(&state)
        .await?
        .iter()
        .map(fields)
        .filter(|f| {
            policy.allows(
                &caller.user,
                &caller.groups,
                "repositories",
                "get",
                &rbac_object(f),
            )
        })
        .collect();
    let states =
        futures::future::join_all(visible.iter().map(|f| connection_state(&state, f))).await;
    let items: Vec<Value> = visible
        .iter()
        .zip(states)
        .map(|(f, s)| {
            let mut r = shown(f);
            r["connectionState"] = s;
            r
        })
        .collect();
    Ok(Json(json!({"metadata": {}, "items": items})))
}

async fn find(state: &AppState, url: &str) -> Result<(Secret, BTreeMap<String, String>), ApiError> {
    all(state)
        .await?
        .into_iter()
        .map(|s| {
            let f = fields(&s);
            (s, f)
        })
        .find(|(_, f)| f.get("url").is_some_and(|u| u == url))
        .ok_or_else(|| ApiError::not_found(format!("repository {url:?}: not found")))
}

/// `GET /api/v1/repositories/{repo}` (the URL, percent-encoded).
pub async fn get(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(url): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let (_, f) = find(&state, &url).await?;
    state.authorize(&caller, "repositories", "get", &rbac_object(&f))?;
    let mut r = shown(&f);
    r["connectionState"] = connection_state(&state, &f).await;
    Ok(Json(r))
}

/// The fields of a request body (Argo CD's `Repository`).
fn body_fields(body: &Value) -> Result<BTreeMap<String, String>, ApiError> {
    let repo = body.get("repo").and_then(Value::as_str).unwrap_or_default();
    if repo.is_empty() {
        return Err(ApiError::bad_request(
            "repo: the repository URL is required",
        ));
    }
    let mut f = BTreeMap::new();
    f.insert("url".to_string(), repo.to_string());
    for k in FIELDS.iter().skip(1) {
        match body.get(*k) {
            Some(Value::String(s)) if !s.is_empty() => {
                f.insert(k.to_string(), s.clone());
            }
            Some(Value::Bool(b)) => {
                f.insert(k.to_string(), b.to_string());
            }
            Some(Value::Null) | None => {}
            Some(Value::String(_)) => {}
            Some(other) => {
                return Err(ApiError::bad_request(format!(
                    "{k}: expected a string or boolean, got {other}"
                )));
            }
        }
    }
    match f.get("type").map(String::as_str) {
        None | Some("git") | Some("helm") => {}
        Some(other) => {
            return Err(ApiError::bad_request(format!(
                "type {other:?}: use git or helm"
            )));
        }
    }
    Ok(f)
}

/// `POST /api/v1/repositories` (`?upsert=true` replaces one with the same
/// URL): checks the connection, then stores the Secret.
pub async fn create(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    RawQuery(raw): RawQuery,
    Json(body): Json<Value>,
) -> Result<Json<Value>, ApiError> {
    let f = body_fields(&body)?;
    state.authorize(&caller, "repositories", "create", &rbac_object(&f))?;
    let url = f.get("url").cloned().unwrap_or_default();
    let upsert = body.get("upsert").and_then(Value::as_bool) == Some(true)
        || query_pairs(raw.as_deref())
            .iter()
            .any(|(k, v)| k == "upsert" && v == "true");
    let existing = find(&state, &url).await.ok();
    if existing.is_some() && !upsert {
        return Err(ApiError::conflict(format!(
            "repository {url:?} already exists; use upsert to replace it"
        )));
    }
    if existing.is_some() {
        state.authorize(&caller, "repositories", "update", &rbac_object(&f))?;
    }
    let connection = connection_state(&state, &f).await;
    if connection["status"] != "Successful" {
        return Err(ApiError::bad_request(format!(
            "repository {url:?}: unable to connect: {}",
            connection["message"].as_str().unwrap_or_default()
        )));
    }
    let name = match &existing {
        Some((s, _)) => s.metadata.name.clone().unwrap_or_default(),
        None => secret_name(&url, f.get("project").map(String::as_str).unwrap_or("")),
    };
    let secret = Secret {
        metadata: ObjectMeta {
            name: Some(name.clone()),
            namespace: Some(state.namespace.clone()),
            labels: Some([(SECRET_TYPE.to_string(), "repository".to_string())].into()),
            annotations: Some(
                [("managed-by".to_string(), "argocd.argoproj.io".to_string())].into(),
            ),
            resource_version: existing
                .as_ref()
                .and_then(|(s, _)| s.metadata.resource_version.clone()),
            ..ObjectMeta::default()
        },
        string_data: Some(f.clone()),
        type_: Some("Opaque".into()),
        ..Secret::default()
    };
    let result = match existing {
        Some(_) => {
            secrets(&state)
                .replace(&name, &PostParams::default(), &secret)
                .await
        }
        None => {
            secrets(&state)
                .create(&PostParams::default(), &secret)
                .await
        }
    };
    result.map_err(|e| ApiError::kube(&format!("repository {url:?}"), e))?;
    tracing::info!(user = %caller.user, repo = %url, "repository saved");
    let mut r = shown(&f);
    r["connectionState"] = connection;
    Ok(Json(r))
}

/// `POST /api/v1/repositories/{repo}/validate`: whether the repository
/// can be reached with the credentials in the body; nothing is stored.
pub async fn validate(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(url): Path<String>,
    body: Option<Json<Value>>,
) -> Result<Json<Value>, ApiError> {
    let mut body = body.map(|b| b.0).unwrap_or_else(|| json!({}));
    body["repo"] = json!(url);
    let f = body_fields(&body)?;
    state.authorize(&caller, "repositories", "create", &rbac_object(&f))?;
    let connection = connection_state(&state, &f).await;
    if connection["status"] != "Successful" {
        return Err(ApiError::bad_request(format!(
            "repository {url:?}: unable to connect: {}",
            connection["message"].as_str().unwrap_or_default()
        )));
    }
    Ok(Json(json!({})))
}

/// `DELETE /api/v1/repositories/{repo}`.
pub async fn delete(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(url): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let (secret, f) = find(&state, &url).await?;
    state.authorize(&caller, "repositories", "delete", &rbac_object(&f))?;
    let name = secret.metadata.name.unwrap_or_default();
    secrets(&state)
        .delete(&name, &DeleteParams::default())
        .await
        .map_err(|e| ApiError::kube(&format!("repository {url:?}"), e))?;
    tracing::info!(user = %caller.user, repo = %url, "repository removed");
    Ok(Json(json!({})))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fnv32a_matches_the_reference_values() {
        // The FNV-1a reference test vectors.
        assert_eq!(fnv32a(""), 0x811c_9dc5);
        assert_eq!(fnv32a("a"), 0xe40c_292c);
        assert_eq!(fnv32a("foobar"), 0xbf9c_f968);
    }

    #[test]
    fn write_only_fields_are_never_shown() {
        let f: BTreeMap<String, String> = [
            ("url", "https://git.example/r.git"),
            ("username", "u"),
            ("password", "p4ss"),
            ("sshPrivateKey", "KEY"),
        ]
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        let s = shown(&f).to_string();
        assert!(!s.contains("p4ss") && !s.contains("KEY"), "{s}");
        assert!(s.contains("credentialsSet"));
    }
}
