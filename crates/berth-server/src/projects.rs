//! AppProjects as Argo CD's API serves them: list, get, create (with
//! `upsert`), update, delete. The API server's schema validation names the
//! field of a wrong spec; a project still used by applications is not
//! deleted.

use axum::extract::{Path, RawQuery, State};
use axum::{Extension, Json};
use kube::api::{DeleteParams, DynamicObject, Patch, PatchParams, PostParams};
use serde_json::{Value, json};

use crate::apps::{project_of, render};
use crate::auth::Claims;
use crate::error::ApiError;
use crate::{AppState, Caller};

fn api(state: &AppState) -> kube::Api<DynamicObject> {
    kube::Api::namespaced_with(
        state.client.clone(),
        &state.namespace,
        &berth_cluster::bootstrap::appproject_resource(),
    )
}

pub(crate) async fn fetch(state: &AppState, name: &str) -> Result<DynamicObject, ApiError> {
    api(state)
        .get(name)
        .await
        .map_err(|e| ApiError::kube(&format!("project {name:?}"), e))
}

/// `GET /api/v1/projects`: the projects the caller may get.
pub async fn list(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
) -> Result<Json<Value>, ApiError> {
    let list = api(&state)
        .list(&Default::default())
        .await
        .map_err(|e| ApiError::kube("projects", e))?;
    let policy = state.policy();
    let items: Vec<Value> = list
        .items
        .iter()
        .filter(|p| {
            policy.allows(
                &caller.user,
                &caller.groups,
                "projects",
                "get",
                p.metadata.name.as_deref().unwrap_or_default(),
            )
        })
        .map(render)
        .collect();
    Ok(Json(json!({"metadata": {}, "items": items})))
}

/// `GET /api/v1/projects/{name}`.
pub async fn get(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(name): Path<String>,
) -> Result<Json<Value>, ApiError> {
    state.authorize(&caller, "projects", "get", &name)?;
    Ok(Json(render(&fetch(&state, &name).await?)))
}

/// An AppProject from Argo CD's request body `{project, upsert}` (a bare
/// AppProject is taken too), put in the control namespace.
fn incoming(state: &AppState, body: &Value, name: Option<&str>) -> Result<DynamicObject, ApiError> {
    let mut project = body.get("project").cloned().unwrap_or_else(|| body.clone());
    if !project.is_object() {
        return Err(ApiError::bad_request(
            "project: an AppProject object is required",
        ));
    }
    if let Some(m) = project.as_object_mut() {
        m.remove("status");
    }
    project["apiVersion"] = json!("argoproj.io/v1alpha1");
    project["kind"] = json!("AppProject");
    let given = project
        .pointer("/metadata/name")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_string();
    match name {
        Some(n) if !given.is_empty() && given != n => {
            return Err(ApiError::bad_request(format!(
                "project.metadata.name {given:?} does not match the path's {n:?}"
            )));
        }
        Some(n) => project["metadata"]["name"] = json!(n),
        None if given.is_empty() => {
            return Err(ApiError::bad_request("project.metadata.name: required"));
        }
        None => {}
    }
    project["metadata"]["namespace"] = json!(state.namespace);
    if project.get("spec").is_none_or(Value::is_null) {
        project["spec"] = json!({});
    }
    check_spec(&project["spec"]).map_err(|e| ApiError::bad_request(format!("project.spec.{e}")))?;
    serde_json::from_value(project).map_err(|e| ApiError::bad_request(e.to_string()))
}

/// What each AppProject spec field holds, as Argo CD's types say.
enum Shape {
    Text,
    Bool,
    Texts,
    /// A list of objects with these fields.
    Objects(&'static [(&'static str, Shape)]),
    /// An object with these fields.
    Object(&'static [(&'static str, Shape)]),
}

const GROUP_KIND: &[(&str, Shape)] = &[
    ("group", Shape::Text),
    ("kind", Shape::Text),
    ("name", Shape::Text),
];

const SPEC: &[(&str, Shape)] = &[
    ("description", Shape::Text),
    ("sourceRepos", Shape::Texts),
    ("sourceNamespaces", Shape::Texts),
    (
        "destinations",
        Shape::Objects(&[
            ("server", Shape::Text),
            ("name", Shape::Text),
            ("namespace", Shape::Text),
        ]),
    ),
    ("clusterResourceWhitelist", Shape::Objects(GROUP_KIND)),
    ("clusterResourceBlacklist", Shape::Objects(GROUP_KIND)),
    ("namespaceResourceWhitelist", Shape::Objects(GROUP_KIND)),
    ("namespaceResourceBlacklist", Shape::Objects(GROUP_KIND)),
    (
        "roles",
        Shape::Objects(&[
            ("name", Shape::Text),
            ("description", Shape::Text),
            ("policies", Shape::Texts),
            ("groups", Shape::Texts),
            (
                "jwtTokens",
                Shape::Objects(&[
                    ("iat", Shape::Text),
                    ("exp", Shape::Text),
                    ("id", Shape::Text),
                ]),
            ),
        ]),
    ),
    (
        "syncWindows",
        Shape::Objects(&[
            ("kind", Shape::Text),
            ("schedule", Shape::Text),
            ("duration", Shape::Text),
            ("applications", Shape::Texts),
            ("namespaces", Shape::Texts),
            ("clusters", Shape::Texts),
            ("manualSync", Shape::Bool),
            ("timeZone", Shape::Text),
            ("andOperator", Shape::Bool),
            ("description", Shape::Text),
        ]),
    ),
    (
        "orphanedResources",
        Shape::Object(&[
            ("warn", Shape::Bool),
            ("ignore", Shape::Objects(GROUP_KIND)),
        ]),
    ),
    ("signatureKeys", Shape::Objects(&[("keyID", Shape::Text)])),
    ("permitOnlyProjectScopedClusters", Shape::Bool),
    (
        "destinationServiceAccounts",
        Shape::Objects(&[
            ("server", Shape::Text),
            ("namespace", Shape::Text),
            ("defaultServiceAccount", Shape::Text),
        ]),
    ),
];

/// Checks a spec against [`SPEC`]; the error names the field
/// (`destinations[0].server: expected a string`).
fn check_spec(spec: &Value) -> Result<(), String> {
    fn object(v: &Value, fields: &[(&str, Shape)], at: &str) -> Result<(), String> {
        let Some(map) = v.as_object() else {
            return Err(format!("{at}: expected an object"));
        };
        for (k, val) in map {
            let path = if at.is_empty() {
                k.clone()
            } else {
                format!("{at}.{k}")
            };
            let Some((_, shape)) = fields.iter().find(|(f, _)| f == k) else {
                return Err(format!("{path}: unknown field"));
            };
            check(val, shape, &path)?;
        }
        Ok(())
    }
    fn check(v: &Value, shape: &Shape, at: &str) -> Result<(), String> {
        if v.is_null() {
            return Ok(());
        }
        match shape {
            Shape::Text if v.is_string() => Ok(()),
            Shape::Text => Err(format!("{at}: expected a string")),
            Shape::Bool if v.is_boolean() => Ok(()),
            Shape::Bool => Err(format!("{at}: expected true or false")),
            Shape::Texts => match v.as_array() {
                Some(a) => a
                    .iter()
                    .enumerate()
                    .try_for_each(|(i, x)| check(x, &Shape::Text, &format!("{at}[{i}]"))),
                None => Err(format!("{at}: expected a list of strings")),
            },
            Shape::Objects(fields) => match v.as_array() {
                Some(a) => a
                    .iter()
                    .enumerate()
                    .try_for_each(|(i, x)| object(x, fields, &format!("{at}[{i}]"))),
                None => Err(format!("{at}: expected a list")),
            },
            Shape::Object(fields) => object(v, fields, at),
        }
    }
    if !spec.is_object() {
        return Err("spec: expected an object".into());
    }
    object(spec, SPEC, "")
}

/// `POST /api/v1/projects` with `{project, upsert}`.
pub async fn create(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Json(body): Json<Value>,
) -> Result<Json<Value>, ApiError> {
    let project = incoming(&state, &body, None)?;
    let name = project.metadata.name.clone().unwrap_or_default();
    state.authorize(&caller, "projects", "create", &name)?;
    let upsert = body.get("upsert").and_then(Value::as_bool).unwrap_or(false);
    match api(&state).create(&PostParams::default(), &project).await {
        Ok(p) => {
            tracing::info!(user = %caller.user, project = %name, "project created");
            Ok(Json(render(&p)))
        }
        Err(kube::Error::Api(s)) if s.code == 409 && upsert => {
            state.authorize(&caller, "projects", "update", &name)?;
            let patch = json!({"spec": project.data.get("spec")});
            let p = api(&state)
                .patch(&name, &PatchParams::default(), &Patch::Merge(&patch))
                .await
                .map_err(|e| ApiError::kube(&format!("project {name:?}"), e))?;
            Ok(Json(render(&p)))
        }
        Err(kube::Error::Api(s)) if s.code == 409 => Err(ApiError::conflict(format!(
            "project {name:?} already exists; send upsert: true to replace its spec"
        ))),
        Err(e) => Err(ApiError::kube(&format!("project {name:?}"), e)),
    }
}

/// `PUT /api/v1/projects/{name}` with `{project}`: replaces the spec.
pub async fn update(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(name): Path<String>,
    Json(body): Json<Value>,
) -> Result<Json<Value>, ApiError> {
    state.authorize(&caller, "projects", "update", &name)?;
    let project = incoming(&state, &body, Some(&name))?;
    let mut current = fetch(&state, &name).await?;
    current.data["spec"] = project.data.get("spec").cloned().unwrap_or(json!({}));
    current.metadata.labels = project.metadata.labels.clone().or(current.metadata.labels);
    let p = api(&state)
        .replace(&name, &PostParams::default(), &current)
        .await
        .map_err(|e| ApiError::kube(&format!("project {name:?}"), e))?;
    tracing::info!(user = %caller.user, project = %name, "project updated");
    Ok(Json(render(&p)))
}

/// `DELETE /api/v1/projects/{name}`: refused while applications use it.
pub async fn delete(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(name): Path<String>,
) -> Result<Json<Value>, ApiError> {
    state.authorize(&caller, "projects", "delete", &name)?;
    fetch(&state, &name).await?;
    let users: Vec<String> = state
        .store
        .state()
        .iter()
        .filter(|a| project_of(a) == name)
        .filter_map(|a| a.metadata.name.clone())
        .collect();
    if !users.is_empty() {
        return Err(ApiError::bad_request(format!(
            "project {name:?} is referenced by {} applications ({}); move or delete them first",
            users.len(),
            users.iter().take(5).cloned().collect::<Vec<_>>().join(", ")
        )));
    }
    api(&state)
        .delete(&name, &DeleteParams::default())
        .await
        .map_err(|e| ApiError::kube(&format!("project {name:?}"), e))?;
    tracing::info!(user = %caller.user, project = %name, "project deleted");
    Ok(Json(json!({})))
}

/// The subject prefix of project role tokens: `proj:PROJECT:ROLE`.
pub const ROLE_SUBJECT_PREFIX: &str = "proj:";

/// A project role token is honoured only while the role lists it
/// (`spec.roles[].jwtTokens`, by id, or by issue time for tokens without
/// one, as Argo CD records them); other tokens pass unchanged.
pub fn check_role_token(state: &AppState, claims: Claims) -> Result<Claims, ApiError> {
    let Some(rest) = claims.sub.strip_prefix(ROLE_SUBJECT_PREFIX) else {
        return Ok(claims);
    };
    let (project, role) = rest.split_once(':').unwrap_or((rest, ""));
    let projects = state
        .projects
        .read()
        .map(|p| std::sync::Arc::clone(&p))
        .map_err(|_| ApiError::internal("project state"))?;
    let listed = projects
        .get(project)
        .and_then(|p| p.pointer("/spec/roles"))
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter(|r| r.get("name").and_then(Value::as_str) == Some(role))
        .flat_map(|r| {
            r.get("jwtTokens")
                .and_then(Value::as_array)
                .cloned()
                .unwrap_or_default()
        })
        .any(|t| {
            let id = t.get("id").and_then(Value::as_str).unwrap_or_default();
            let iat = t
                .get("iat")
                .and_then(|v| v.as_u64().or_else(|| v.as_str()?.parse().ok()));
            if id.is_empty() {
                iat == Some(claims.iat)
            } else {
                id == claims.jti
            }
        });
    if listed {
        Ok(claims)
    } else {
        Err(ApiError::unauthenticated(format!(
            "the token of role {role:?} in project {project:?} has been revoked or its role removed"
        )))
    }
}

fn role_index(project: &DynamicObject, role: &str) -> Result<usize, ApiError> {
    project
        .data
        .pointer("/spec/roles")
        .and_then(Value::as_array)
        .and_then(|roles| {
            roles
                .iter()
                .position(|r| r.get("name").and_then(Value::as_str) == Some(role))
        })
        .ok_or_else(|| {
            ApiError::not_found(format!(
                "project {:?} has no role {role:?}; add it to spec.roles first",
                project.metadata.name.as_deref().unwrap_or_default()
            ))
        })
}

/// `POST /api/v1/projects/{project}/roles/{role}/token` with
/// `{expiresIn, id}`: a JWT whose subject is `proj:PROJECT:ROLE`, listed
/// in the role's `jwtTokens` so it can be revoked.
pub async fn create_role_token(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path((project, role)): Path<(String, String)>,
    body: Option<Json<Value>>,
) -> Result<Json<Value>, ApiError> {
    state.authorize(&caller, "projects", "update", &project)?;
    let body = body.map(|b| b.0).unwrap_or_else(|| json!({}));
    let p = fetch(&state, &project).await?;
    let index = role_index(&p, &role)?;
    let iat = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let expires_in = body
        .get("expiresIn")
        .and_then(|v| v.as_u64().or_else(|| v.as_str()?.parse().ok()))
        .unwrap_or(0);
    let id = match body
        .get("id")
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty())
    {
        Some(id) => id.to_string(),
        None => crate::auth::random_bytes(8)
            .map(|b| b.iter().map(|x| format!("{x:02x}")).collect())
            .map_err(|e| ApiError::internal(format!("token id: {e}")))?,
    };
    let exp = (expires_in > 0).then(|| iat + expires_in);
    let claims = Claims {
        iss: "argocd".into(),
        sub: format!("{ROLE_SUBJECT_PREFIX}{project}:{role}"),
        iat,
        nbf: iat,
        exp,
        jti: id.clone(),
        groups: Vec::new(),
    };
    let token = state.auth.sign(&claims)?;
    let record = json!({"iat": iat, "exp": exp.unwrap_or(0), "id": id});
    let has_list = p
        .data
        .pointer(&format!("/spec/roles/{index}/jwtTokens"))
        .is_some_and(Value::is_array);
    let add = if has_list {
        json!({"op": "add", "path": format!("/spec/roles/{index}/jwtTokens/-"), "value": record})
    } else {
        json!({"op": "add", "path": format!("/spec/roles/{index}/jwtTokens"), "value": [record]})
    };
    // The test makes the write fail if the roles moved meanwhile.
    let patch: json_patch::Patch = serde_json::from_value(json!([
        {"op": "test", "path": format!("/spec/roles/{index}/name"), "value": role},
        add,
    ]))
    .map_err(|e| ApiError::internal(format!("patch: {e}")))?;
    api(&state)
        .patch(&project, &PatchParams::default(), &Patch::Json::<()>(patch))
        .await
        .map_err(|e| ApiError::kube(&format!("project {project:?}"), e))?;
    tracing::info!(user = %caller.user, %project, %role, token = %claims.jti, "project role token created");
    Ok(Json(json!({"token": token})))
}

/// `DELETE /api/v1/projects/{project}/roles/{role}/token/{iat}` (or
/// `?id=`): removes the token from the role's list; it stops working at
/// once.
pub async fn delete_role_token(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path((project, role, iat)): Path<(String, String, String)>,
    RawQuery(raw): RawQuery,
) -> Result<Json<Value>, ApiError> {
    state.authorize(&caller, "projects", "update", &project)?;
    let id = crate::apps::query_pairs(raw.as_deref())
        .into_iter()
        .find(|(k, _)| k == "id")
        .map(|(_, v)| v);
    let p = fetch(&state, &project).await?;
    let index = role_index(&p, &role)?;
    let tokens = p
        .data
        .pointer(&format!("/spec/roles/{index}/jwtTokens"))
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    let kept: Vec<Value> = tokens
        .iter()
        .filter(|t| match &id {
            Some(id) => t.get("id").and_then(Value::as_str) != Some(id.as_str()),
            None => {
                t.get("iat")
                    .map(|v| v.to_string().trim_matches('"').to_string())
                    != Some(iat.clone())
            }
        })
        .cloned()
        .collect();
    if kept.len() == tokens.len() {
        return Err(ApiError::not_found(format!(
            "role {role:?} of project {project:?} has no such token"
        )));
    }
    let patch: json_patch::Patch = serde_json::from_value(json!([
        {"op": "test", "path": format!("/spec/roles/{index}/name"), "value": role},
        {"op": "replace", "path": format!("/spec/roles/{index}/jwtTokens"), "value": kept},
    ]))
    .map_err(|e| ApiError::internal(format!("patch: {e}")))?;
    api(&state)
        .patch(&project, &PatchParams::default(), &Patch::Json::<()>(patch))
        .await
        .map_err(|e| ApiError::kube(&format!("project {project:?}"), e))?;
    tracing::info!(user = %caller.user, %project, %role, "project role token revoked");
    Ok(Json(json!({})))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn specs_are_checked_field_by_field() {
        assert!(
            check_spec(
                &json!({"sourceRepos": ["*"], "destinations": [{"server": "*", "namespace": "*"}]})
            )
            .is_ok()
        );
        assert_eq!(
            check_spec(&json!({"sourceRepos": "*"})).unwrap_err(),
            "sourceRepos: expected a list of strings"
        );
        assert_eq!(
            check_spec(&json!({"destinations": [{"server": 1}]})).unwrap_err(),
            "destinations[0].server: expected a string"
        );
        assert_eq!(
            check_spec(&json!({"sourceRepo": ["*"]})).unwrap_err(),
            "sourceRepo: unknown field"
        );
        assert!(
            check_spec(&json!({"syncWindows": [{"kind": "allow", "manualSync": true}]})).is_ok()
        );
    }
}
