//! `POST /api/webhook`, Argo CD's path: a Git provider's push refreshes, at
//! once, the applications that use that repository and branch (and, when
//! they say which paths they read with Argo CD's
//! `argocd.argoproj.io/manifest-generate-paths` annotation, only when one of
//! those paths changed). Deliveries are verified with the secrets Argo CD
//! keeps in `argocd-secret` (`webhook.github.secret`,
//! `webhook.gitlab.secret`, `webhook.gogs.secret`,
//! `webhook.bitbucket.uuid`).

use axum::Json;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::HeaderMap;
use berth_source::creds::SecretString;
use berth_source::url::same_url;
use berth_source::webhook::{PushEvent, WebhookConfig};
use k8s_openapi::api::core::v1::Secret;
use kube::Api;
use kube::api::{DynamicObject, Patch, PatchParams};
use serde_json::{Value, json};

use crate::AppState;
use crate::error::ApiError;

/// Argo CD's annotation naming the paths an application reads
/// (`;`-separated; relative to the source's path, or from the repository
/// root when they start with `/`).
pub const PATHS_ANNOTATION: &str = "argocd.argoproj.io/manifest-generate-paths";

async fn config(state: &AppState) -> Result<WebhookConfig, ApiError> {
    let secrets: Api<Secret> = Api::namespaced(state.client.clone(), &state.namespace);
    let data = secrets
        .get_opt(crate::auth::SERVER_SECRET)
        .await
        .map_err(|e| ApiError::kube("reading the webhook secrets", e))?
        .and_then(|s| s.data)
        .unwrap_or_default();
    let text = |k: &str| {
        data.get(k)
            .map(|v| String::from_utf8_lossy(&v.0).trim().to_string())
            .filter(|v| !v.is_empty())
    };
    Ok(WebhookConfig {
        github_secret: text("webhook.github.secret").map(SecretString::new),
        gitlab_secret: text("webhook.gitlab.secret").map(SecretString::new),
        gitea_secret: text("webhook.gogs.secret").map(SecretString::new),
        bitbucket_secret: None,
        bitbucket_uuid: text("webhook.bitbucket.uuid"),
        require_secrets: false,
    })
}

/// Whether a source (repoURL, targetRevision, path) follows the pushed ref.
fn source_follows(source: &Value, event: &PushEvent) -> bool {
    let Some(url) = source.get("repoURL").and_then(Value::as_str) else {
        return false;
    };
    if !event.repo_urls.iter().any(|u| same_url(u, url)) {
        return false;
    }
    let revision = source
        .get("targetRevision")
        .and_then(Value::as_str)
        .unwrap_or("HEAD");
    let short = event
        .ref_name
        .strip_prefix("refs/heads/")
        .or_else(|| event.ref_name.strip_prefix("refs/tags/"))
        .unwrap_or(&event.ref_name);
    // HEAD follows the default branch, which the payload does not name:
    // such apps are refreshed on any branch push (a refresh is cheap).
    revision.is_empty()
        || revision == "HEAD"
        || revision == short
        || revision == event.ref_name
        || event.after.as_deref() == Some(revision)
}

/// Whether the push touched a path the app says it reads.
fn paths_touched(app: &DynamicObject, source: &Value, event: &PushEvent) -> bool {
    let (Some(changed), Some(paths)) = (
        event.changed_paths.as_ref(),
        app.metadata
            .annotations
            .as_ref()
            .and_then(|a| a.get(PATHS_ANNOTATION)),
    ) else {
        return true;
    };
    let base = source
        .get("path")
        .and_then(Value::as_str)
        .unwrap_or(".")
        .trim_matches('/');
    let prefixes: Vec<String> = paths
        .split(';')
        .map(str::trim)
        .filter(|p| !p.is_empty())
        .map(|p| {
            let joined = match p.strip_prefix('/') {
                Some(abs) => abs.to_string(),
                None if p == "." => base.to_string(),
                None => format!("{base}/{p}"),
            };
            normalize_path(&joined)
        })
        .collect();
    changed.iter().any(|c| {
        prefixes
            .iter()
            .any(|p| p.is_empty() || c == p || c.starts_with(&format!("{p}/")))
    })
}

/// `a/./b/../c` as `a/c`.
fn normalize_path(p: &str) -> String {
    let mut out: Vec<&str> = Vec::new();
    for seg in p.split('/') {
        match seg {
            "" | "." => {}
            ".." => {
                out.pop();
            }
            s => out.push(s),
        }
    }
    out.join("/")
}

/// The apps a push concerns, by name (`namespace/name` outside
/// `control_namespace`).
pub fn affected(
    apps: &[std::sync::Arc<DynamicObject>],
    event: &PushEvent,
    control_namespace: &str,
) -> Vec<String> {
    let mut names = Vec::new();
    for app in apps {
        let sources: Vec<&Value> = app
            .data
            .pointer("/spec/source")
            .into_iter()
            .chain(
                app.data
                    .pointer("/spec/sources")
                    .and_then(Value::as_array)
                    .into_iter()
                    .flatten(),
            )
            .collect();
        if sources
            .iter()
            .any(|s| source_follows(s, event) && paths_touched(app, s, event))
            && let Some(n) = &app.metadata.name
        {
            match app.metadata.namespace.as_deref() {
                Some(ns) if ns != control_namespace => names.push(format!("{ns}/{n}")),
                _ => names.push(n.clone()),
            }
        }
    }
    names.sort();
    names
}

/// `POST /api/webhook`.
pub async fn receive(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Json<Value>, ApiError> {
    let pairs: Vec<(String, String)> = headers
        .iter()
        .filter_map(|(k, v)| Some((k.as_str().to_string(), v.to_str().ok()?.to_string())))
        .collect();
    let config = config(&state).await?;
    let event = match berth_source::webhook::parse(&pairs, &body, &config) {
        Ok(Some(e)) => e,
        // A ping or another event: nothing to do.
        Ok(None) => return Ok(Json(json!({"refreshed": []}))),
        Err(e) => {
            let message = e.to_string();
            return Err(
                if message.contains("refused") || message.contains("signature") {
                    ApiError::unauthenticated(message)
                } else {
                    ApiError::bad_request(message)
                },
            );
        }
    };
    let names = affected(&state.store.state(), &event, &state.namespace);
    let patch = json!({"metadata": {"annotations": {"argocd.argoproj.io/refresh": "normal"}}});
    for name in &names {
        // `namespace/name` outside the control namespace.
        let (namespace, app) = name
            .split_once('/')
            .unwrap_or((state.namespace.as_str(), name.as_str()));
        if let Err(e) = state
            .apps_in(namespace)
            .patch(app, &PatchParams::default(), &Patch::Merge(&patch))
            .await
        {
            tracing::warn!(app = %name, error = %e, "refreshing after a webhook");
        }
    }
    tracing::info!(r#ref = %event.ref_name, apps = names.len(), "webhook push");
    Ok(Json(json!({"refreshed": names})))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    fn app(name: &str, source: Value, paths: Option<&str>) -> Arc<DynamicObject> {
        let mut obj = json!({"apiVersion": "argoproj.io/v1alpha1", "kind": "Application",
            "metadata": {"name": name}, "spec": {"source": source}});
        if let Some(p) = paths {
            obj["metadata"]["annotations"] = json!({PATHS_ANNOTATION: p});
        }
        Arc::new(serde_json::from_value(obj).unwrap())
    }

    #[test]
    fn pushes_refresh_the_apps_of_their_repository_branch_and_paths() {
        let event = PushEvent {
            provider: berth_source::webhook::Provider::GitHub,
            repo_urls: vec![
                "https://github.com/org/shop".into(),
                "git@github.com:org/shop.git".into(),
            ],
            ref_name: "refs/heads/main".into(),
            after: Some("abc".into()),
            changed_paths: Some(vec!["apps/web/deploy.yaml".into()]),
        };
        let apps = vec![
            app(
                "web",
                json!({"repoURL": "https://github.com/org/shop.git", "targetRevision": "main", "path": "apps/web"}),
                None,
            ),
            app(
                "ssh",
                json!({"repoURL": "git@github.com:org/shop.git", "targetRevision": "HEAD", "path": "apps/api"}),
                None,
            ),
            app(
                "other-branch",
                json!({"repoURL": "https://github.com/org/shop", "targetRevision": "release", "path": "apps/web"}),
                None,
            ),
            app(
                "other-repo",
                json!({"repoURL": "https://github.com/org/blog", "targetRevision": "main", "path": "apps/web"}),
                None,
            ),
            app(
                "narrowed-miss",
                json!({"repoURL": "https://github.com/org/shop", "targetRevision": "main", "path": "apps/api"}),
                Some("."),
            ),
            app(
                "narrowed-hit",
                json!({"repoURL": "https://github.com/org/shop", "targetRevision": "main", "path": "apps/api"}),
                Some("../web;/docs"),
            ),
        ];
        assert_eq!(
            affected(&apps, &event, "argocd"),
            ["narrowed-hit", "ssh", "web"]
        );
    }
}
