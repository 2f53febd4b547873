//! ApplicationSets as Argo CD's API serves them, read-only: list and get.
//! RBAC as Argo CD's: resource `applicationsets`, object
//! `<project of the template>/<name>`. They are written with kubectl (or
//! Git, through an Application that deploys them); the controller
//! generates their Applications.

use axum::extract::{Path, State};
use axum::{Extension, Json};
use kube::api::DynamicObject;
use serde_json::{Value, json};

use crate::apps::render;
use crate::error::ApiError;
use crate::{AppState, Caller};

fn api(state: &AppState) -> kube::Api<DynamicObject> {
    kube::Api::namespaced_with(
        state.client.clone(),
        &state.namespace,
        &berth_cluster::bootstrap::applicationset_resource(),
    )
}

/// The RBAC object of a set: the project its template names.
fn object(set: &DynamicObject) -> String {
    let project = set
        .data
        .pointer("/spec/template/spec/project")
        .and_then(Value::as_str)
        .filter(|p| !p.is_empty())
        .unwrap_or("default");
    format!(
        "{project}/{}",
        set.metadata.name.as_deref().unwrap_or_default()
    )
}

/// `GET /api/v1/applicationsets`: the sets the caller may get.
pub async fn list(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
) -> Result<Json<Value>, ApiError> {
    let list = api(&state)
        .list(&Default::default())
        .await
        .map_err(|e| ApiError::kube("applicationsets", e))?;
    let policy = state.policy();
    let items: Vec<Value> = list
        .items
        .iter()
        .filter(|s| {
            policy.allows(
                &caller.user,
                &caller.groups,
                "applicationsets",
                "get",
                &object(s),
            )
        })
        .map(render)
        .collect();
    Ok(Json(json!({"metadata": {}, "items": items})))
}

/// `GET /api/v1/applicationsets/{name}`.
pub async fn get(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(name): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let set = api(&state)
        .get(&name)
        .await
        .map_err(|e| ApiError::kube(&format!("applicationset {name:?}"), e))?;
    state.authorize(&caller, "applicationsets", "get", &object(&set))?;
    Ok(Json(render(&set)))
}
