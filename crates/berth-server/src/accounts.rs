//! Accounts, their API tokens and passwords, with Argo CD's paths and
//! shapes: `GET /api/v1/account[/{name}]`, `POST /api/v1/account/{name}/token`,
//! `DELETE /api/v1/account/{name}/token/{id}`, `PUT /api/v1/account/password`.
//! An account is `admin` (unless `admin.enabled: "false"`) or one declared
//! in `argocd-cm` as `accounts.NAME: login, apiKey`; only an account with
//! the `apiKey` capability can have tokens. Acting on another account needs
//! RBAC `accounts, update, NAME`; on one's own, nothing more.

use std::collections::BTreeMap;
use std::time::Duration;

use axum::extract::{Path, State};
use axum::{Extension, Json};
use k8s_openapi::api::core::v1::ConfigMap;
use kube::Api;
use serde_json::{Value, json};

use crate::error::ApiError;
use crate::{AppState, Caller};

/// One account: name, whether enabled, capabilities.
struct Account {
    name: String,
    enabled: bool,
    capabilities: Vec<String>,
}

async fn accounts(state: &AppState) -> Result<Vec<Account>, ApiError> {
    let maps: Api<ConfigMap> = Api::namespaced(state.client.clone(), &state.namespace);
    let cm: BTreeMap<String, String> = maps
        .get_opt("argocd-cm")
        .await
        .map_err(|e| ApiError::kube("reading argocd-cm", e))?
        .and_then(|c| c.data)
        .unwrap_or_default();
    let mut out = vec![Account {
        name: "admin".into(),
        enabled: cm.get("admin.enabled").map(|v| v.trim()) != Some("false"),
        capabilities: cm
            .get("accounts.admin")
            .map(|c| c.split(',').map(|s| s.trim().to_string()).collect())
            .unwrap_or_else(|| vec!["login".into()]),
    }];
    for (key, value) in &cm {
        let Some(name) = key.strip_prefix("accounts.") else {
            continue;
        };
        if name.contains('.') || name == "admin" {
            continue;
        }
        out.push(Account {
            name: name.to_string(),
            enabled: cm
                .get(&format!("accounts.{name}.enabled"))
                .map(|v| v.trim())
                != Some("false"),
            capabilities: value
                .split(',')
                .map(|s| s.trim().to_string())
                .filter(|s| !s.is_empty())
                .collect(),
        });
    }
    Ok(out)
}

fn render(state: &AppState, a: &Account) -> Value {
    let tokens: Vec<Value> = state
        .auth
        .tokens_of(&a.name)
        .into_iter()
        .map(|t| {
            let mut v = json!({"id": t.id, "issuedAt": t.iat});
            if t.exp > 0 {
                v["expiresAt"] = json!(t.exp);
            }
            v
        })
        .collect();
    json!({"name": a.name, "enabled": a.enabled, "capabilities": a.capabilities, "tokens": tokens})
}

async fn find(state: &AppState, name: &str) -> Result<Account, ApiError> {
    accounts(state)
        .await?
        .into_iter()
        .find(|a| a.name == name)
        .ok_or_else(|| {
            ApiError::not_found(format!(
                "account {name:?} does not exist; declare it in argocd-cm as accounts.{name}"
            ))
        })
}

/// Own account: always; another: RBAC `accounts, update, NAME`.
fn may_change(state: &AppState, caller: &Caller, name: &str) -> Result<(), ApiError> {
    if caller.user == name {
        return Ok(());
    }
    state.authorize(caller, "accounts", "update", name)
}

/// `GET /api/v1/account`: the accounts the caller may get.
pub async fn list(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
) -> Result<Json<Value>, ApiError> {
    let policy = state.policy();
    let items: Vec<Value> = accounts(&state)
        .await?
        .iter()
        .filter(|a| {
            a.name == caller.user
                || policy.allows(&caller.user, &caller.groups, "accounts", "get", &a.name)
        })
        .map(|a| render(&state, a))
        .collect();
    Ok(Json(json!({"items": items})))
}

/// `GET /api/v1/account/{name}`.
pub async fn get(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(name): Path<String>,
) -> Result<Json<Value>, ApiError> {
    if caller.user != name {
        state.authorize(&caller, "accounts", "get", &name)?;
    }
    let a = find(&state, &name).await?;
    Ok(Json(render(&state, &a)))
}

/// `POST /api/v1/account/{name}/token` with `{id, expiresIn}` (seconds;
/// 0 or absent: no expiry).
pub async fn create_token(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(name): Path<String>,
    body: Option<Json<Value>>,
) -> Result<Json<Value>, ApiError> {
    may_change(&state, &caller, &name)?;
    let a = find(&state, &name).await?;
    if !a.capabilities.iter().any(|c| c == "apiKey") {
        return Err(ApiError::bad_request(format!(
            "account {name:?} does not have the apiKey capability; add it in argocd-cm: accounts.{name}: apiKey, login"
        )));
    }
    let body = body.map(|b| b.0).unwrap_or_else(|| json!({}));
    let expires = body
        .get("expiresIn")
        .and_then(|v| {
            v.as_u64()
                .or_else(|| v.as_str().and_then(|s| s.parse().ok()))
        })
        .filter(|s| *s > 0)
        .map(Duration::from_secs);
    let id = body.get("id").and_then(Value::as_str).unwrap_or_default();
    let (token, record) = state.auth.issue_api_token(&name, id, expires).await?;
    tracing::info!(user = %caller.user, account = %name, id = %record.id, "API token created");
    Ok(Json(json!({"token": token})))
}

/// `DELETE /api/v1/account/{name}/token/{id}`.
pub async fn delete_token(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path((name, id)): Path<(String, String)>,
) -> Result<Json<Value>, ApiError> {
    may_change(&state, &caller, &name)?;
    state.auth.revoke(&name, &id).await?;
    tracing::info!(user = %caller.user, account = %name, %id, "API token revoked");
    Ok(Json(json!({})))
}

/// `PUT /api/v1/account/password` with `{name, currentPassword,
/// newPassword}`: the caller proves who they are with their own current
/// password; `name` (default: the caller) is the account changed.
pub async fn update_password(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Json(body): Json<Value>,
) -> Result<Json<Value>, ApiError> {
    let text = |k: &str| {
        body.get(k)
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string()
    };
    let name = match text("name") {
        n if n.is_empty() => caller.user.clone(),
        n => n,
    };
    may_change(&state, &caller, &name)?;
    find(&state, &name).await?;
    if !state
        .auth
        .password_matches(&caller.user, &text("currentPassword"))
        .await?
    {
        return Err(ApiError::unauthenticated(
            "currentPassword: it is not the current password of the caller",
        ));
    }
    state.auth.set_password(&name, &text("newPassword")).await?;
    tracing::info!(user = %caller.user, account = %name, "password updated");
    Ok(Json(json!({})))
}
