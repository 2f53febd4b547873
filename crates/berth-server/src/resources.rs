//! What an application is made of: its managed resources with their
//! diffs, the diff against another revision, its rendered manifests, its
//! resource tree, one live resource and events. Read from the controller
//! running in the same process ([`berth_controller::views`]); events come
//! from the API server. Every route needs `applications, get` on the app.

use axum::extract::{Path, RawQuery, State};
use axum::{Extension, Json};
use berth_cluster::live::ObjectKey;
use berth_controller::views::{Managed, ViewError, Views};
use k8s_openapi::api::core::v1::Event;
use kube::Api;
use kube::api::{DynamicObject, ListParams};
use serde_json::{Value, json};

use crate::apps::{AppRef, fetch, query_pairs, rbac_object};
use crate::error::ApiError;
use crate::{AppState, Caller};

/// The app, if the caller may see it.
async fn readable(
    state: &AppState,
    caller: &Caller,
    app: &AppRef,
) -> Result<DynamicObject, ApiError> {
    let app = fetch(state, app).await?;
    state.authorize(caller, "applications", "get", &rbac_object(state, &app))?;
    Ok(app)
}

fn views(state: &AppState) -> Result<&Views, ApiError> {
    state.views.as_deref().ok_or_else(|| {
        ApiError::unavailable(
            "this server runs without a controller in its process: resource views are not available",
        )
    })
}

fn view_error(name: &str, e: ViewError) -> ApiError {
    match e {
        ViewError::NotRunning => ApiError::unavailable(e.to_string()),
        ViewError::NotManaged(..) => ApiError::not_found(e.to_string()),
        ViewError::Invalid(m) | ViewError::Compare(m) | ViewError::Action(m) => {
            ApiError::bad_request(format!("application {name:?}: {m}"))
        }
        ViewError::Cluster(m) => ApiError {
            status: axum::http::StatusCode::BAD_GATEWAY,
            message: format!("application {name:?}: the cluster refused the action's change: {m}"),
        },
    }
}

fn as_value(obj: &DynamicObject) -> Value {
    serde_json::to_value(obj).unwrap_or(Value::Null)
}

async fn managed_at(
    state: &AppState,
    app: &DynamicObject,
    revision: Option<&str>,
) -> Result<Managed, ApiError> {
    let name = app.metadata.name.clone().unwrap_or_default();
    views(state)?
        .managed(&as_value(app), revision)
        .await
        .map_err(|e| view_error(&name, e))
}

/// The `?revision=` a request asks to compare or render at.
fn revision_of(raw: Option<&str>) -> Option<String> {
    query_pairs(raw)
        .into_iter()
        .find(|(k, _)| k == "revision")
        .map(|(_, v)| v)
}

fn json_text(v: &Option<Value>) -> Value {
    v.as_ref()
        .map(|v| Value::String(v.to_string()))
        .unwrap_or(Value::Null)
}

/// `GET /api/v1/applications/{name}/managed-resources`: Argo CD's
/// `ManagedResourcesResponse`, states as JSON strings, Secret values
/// masked; `group`, `kind`, `namespace`, `name` filter.
pub async fn managed(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    app_ref: AppRef,
    RawQuery(raw): RawQuery,
) -> Result<Json<Value>, ApiError> {
    let app = readable(&state, &caller, &app_ref).await?;
    let params = query_pairs(raw.as_deref());
    let filter = |k: &str| params.iter().find(|(p, _)| p == k).map(|(_, v)| v.as_str());
    let managed = managed_at(&state, &app, None).await?;
    let items: Vec<Value> = managed
        .diffs
        .iter()
        .filter(|d| {
            filter("group").is_none_or(|g| g == d.group)
                && filter("kind").is_none_or(|k| k == d.kind)
                && filter("namespace").is_none_or(|n| n == d.namespace)
                && filter("name").is_none_or(|n| n == d.name)
        })
        .map(|d| {
            json!({
                "group": d.group,
                "kind": d.kind,
                "namespace": d.namespace,
                "name": d.name,
                "targetState": json_text(&d.target),
                "liveState": json_text(&d.live),
                "normalizedLiveState": json_text(&d.live),
                "predictedLiveState": json_text(&d.target),
                "hook": false,
                "modified": d.status == berth_engine::diff::SyncStatus::OutOfSync,
                "resourceVersion": d.live.as_ref().and_then(|l| l.pointer("/metadata/resourceVersion")),
            })
        })
        .collect();
    Ok(Json(json!({"items": items})))
}

/// `GET /api/v1/applications/{name}/diff` (Berth's extension): every
/// object's change against the app's target revision or `?revision=`
/// (branch, tag or commit): "what would this change do". Each item carries
/// its unified diff (`diff`), Secret values masked.
pub async fn diff(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    app_ref: AppRef,
    RawQuery(raw): RawQuery,
) -> Result<Json<Value>, ApiError> {
    let app = readable(&state, &caller, &app_ref).await?;
    let revision = revision_of(raw.as_deref());
    let managed = managed_at(&state, &app, revision.as_deref()).await?;
    let items: Vec<Value> = managed
        .diffs
        .iter()
        .map(|d| {
            let mut item = serde_json::to_value(d).unwrap_or(Value::Null);
            item["diff"] = json!(d.unified());
            item
        })
        .collect();
    Ok(Json(json!({
        "revisions": managed.revisions,
        "sync": managed.sync.to_string(),
        "items": items,
    })))
}

/// `GET /api/v1/applications/{name}/manifests`: the rendered desired
/// objects at the target revision or `?revision=`, as JSON strings
/// (Argo CD's `ManifestResponse`), Secret values masked.
pub async fn manifests(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    app_ref: AppRef,
    RawQuery(raw): RawQuery,
) -> Result<Json<Value>, ApiError> {
    let app = readable(&state, &caller, &app_ref).await?;
    let revision = revision_of(raw.as_deref());
    let managed = managed_at(&state, &app, revision.as_deref()).await?;
    let manifests: Vec<String> = managed.desired.iter().map(Value::to_string).collect();
    Ok(Json(json!({
        "manifests": manifests,
        "revision": managed.revisions.first(),
        "namespace": app.data.pointer("/spec/destination/namespace"),
        "server": app.data.pointer("/spec/destination/server"),
    })))
}

/// `GET /api/v1/applications/{name}/resource-tree`: Argo CD's
/// `ApplicationTree`.
pub async fn tree(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    app_ref: AppRef,
) -> Result<Json<Value>, ApiError> {
    let name = app_ref.to_string();
    let app = readable(&state, &caller, &app_ref).await?;
    let tree = views(&state)?
        .tree(&as_value(&app))
        .await
        .map_err(|e| view_error(&name, e))?;
    Ok(Json(tree))
}

/// `GET /api/v1/applications/{name}/revisions/{revision}/metadata`:
/// Argo CD's `RevisionMetadata` (author, date, message, tags) of a commit
/// of the app's source (`sourceIndex` for the others of several), as
/// long as the controller has fetched it; 404 otherwise.
pub async fn revision_metadata(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    app_ref: AppRef,
    Path(params): Path<std::collections::HashMap<String, String>>,
    RawQuery(raw): RawQuery,
) -> Result<Json<Value>, ApiError> {
    let name = app_ref.to_string();
    let app = readable(&state, &caller, &app_ref).await?;
    let revision = params.get("revision").cloned().unwrap_or_default();
    let index = query_pairs(raw.as_deref())
        .into_iter()
        .find(|(k, _)| k == "sourceIndex")
        .map(|(_, v)| v.parse::<usize>())
        .transpose()
        .map_err(|_| ApiError::bad_request("sourceIndex: a number (0 for the first source)"))?
        .unwrap_or(0);
    views(&state)?
        .revision_metadata(&as_value(&app), &revision, index)
        .await
        .map_err(|e| view_error(&name, e))?
        .map(Json)
        .ok_or_else(|| {
            ApiError::not_found(format!(
                "revision {revision:?} of application {name:?} is not a fetched commit of its Git source"
            ))
        })
}

/// The object a request names with Argo CD's query parameters
/// (`namespace`, `resourceName`, `group`, `kind`).
fn requested_key(params: &[(String, String)]) -> Result<ObjectKey, ApiError> {
    let get = |k: &str| {
        params
            .iter()
            .find(|(p, _)| p == k)
            .map(|(_, v)| v.clone())
            .unwrap_or_default()
    };
    let key = ObjectKey {
        group: get("group"),
        kind: get("kind"),
        namespace: get("namespace"),
        name: get("resourceName"),
    };
    if key.kind.is_empty() || key.name.is_empty() {
        return Err(ApiError::bad_request(
            "kind and resourceName: required (with group and namespace where they apply)",
        ));
    }
    Ok(key)
}

/// `GET /api/v1/applications/{name}/resource`: one live object of the
/// app's tree as `{manifest}` (a JSON string), Secret values masked.
pub async fn resource(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    app_ref: AppRef,
    RawQuery(raw): RawQuery,
) -> Result<Json<Value>, ApiError> {
    let name = app_ref.to_string();
    let app = readable(&state, &caller, &app_ref).await?;
    let key = requested_key(&query_pairs(raw.as_deref()))?;
    let obj = views(&state)?
        .live_object(&as_value(&app), &key)
        .map_err(|e| view_error(&name, e))?
        .ok_or_else(|| {
            ApiError::not_found(format!(
                "{} {}/{}: not in the cluster",
                key.kind, key.namespace, key.name
            ))
        })?;
    Ok(Json(json!({"manifest": obj.to_string()})))
}

/// `GET /api/v1/applications/{name}/resource/actions`: Argo CD's
/// `{actions: [{name, disabled, iconClass, displayName}]}` for one of the
/// app's resources (`namespace`, `resourceName`, `group`, `kind`).
pub async fn resource_actions(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    app_ref: AppRef,
    RawQuery(raw): RawQuery,
) -> Result<Json<Value>, ApiError> {
    let name = app_ref.to_string();
    let app = readable(&state, &caller, &app_ref).await?;
    let key = requested_key(&query_pairs(raw.as_deref()))?;
    let actions = views(&state)?
        .resource_actions(&as_value(&app), &key)
        .map_err(|e| view_error(&name, e))?;
    Ok(Json(json!({
        "actions": actions.iter().map(berth_engine::actions::ResourceAction::to_json).collect::<Vec<_>>()
    })))
}

/// `POST /api/v1/applications/{name}/resource/actions` (the action's name
/// as a JSON string in the body, the resource in the query, as Argo CD's
/// first form) and `POST .../resource/actions/v2` (everything in the body:
/// `{action, namespace, resourceName, group, kind}`): runs a resource
/// action. RBAC: `applications`, `action/<group>/<kind>/<action>`.
pub async fn run_resource_action(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    app_ref: AppRef,
    RawQuery(raw): RawQuery,
    body: Option<Json<Value>>,
) -> Result<Json<Value>, ApiError> {
    let name = app_ref.to_string();
    // Those who may not see the app may not act on it either.
    let app = readable(&state, &caller, &app_ref).await?;
    let body = body.map(|Json(b)| b).unwrap_or(Value::Null);
    let mut params = query_pairs(raw.as_deref());
    let action = match &body {
        Value::String(a) => a.clone(),
        Value::Object(m) => {
            // The v2 body carries the resource too.
            for (field, param) in [
                ("namespace", "namespace"),
                ("resourceName", "resourceName"),
                ("group", "group"),
                ("kind", "kind"),
            ] {
                if let Some(v) = m.get(field).and_then(Value::as_str) {
                    params.retain(|(k, _)| k != param);
                    params.push((param.to_string(), v.to_string()));
                }
            }
            m.get("action")
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_string()
        }
        _ => String::new(),
    };
    if action.is_empty() {
        return Err(ApiError::bad_request(
            "the action to run: the body is its name as a JSON string (\"restart\"), or {\"action\": ...} for /v2",
        ));
    }
    let key = requested_key(&params)?;
    state.authorize(
        &caller,
        "applications",
        &format!("action/{}/{}/{action}", key.group, key.kind),
        &rbac_object(&state, &app),
    )?;
    views(&state)?
        .run_resource_action(&as_value(&app), &key, &action)
        .await
        .map_err(|e| view_error(&name, e))?;
    Ok(Json(json!({})))
}

/// `GET /api/v1/applications/{name}/events`: the app's Kubernetes Events,
/// or with `resourceNamespace`, `resourceName` (and `resourceUID`) those of
/// one of its resources; newest last.
pub async fn events(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    app_ref: AppRef,
    RawQuery(raw): RawQuery,
) -> Result<Json<Value>, ApiError> {
    let name = app_ref.to_string();
    let app = readable(&state, &caller, &app_ref).await?;
    let params = query_pairs(raw.as_deref());
    let get = |k: &str| {
        params
            .iter()
            .find(|(p, _)| p == k)
            .map(|(_, v)| v.clone())
            .filter(|v| !v.is_empty())
    };
    let (namespace, fields) = match get("resourceName") {
        Some(resource) => {
            let namespace = get("resourceNamespace").unwrap_or_default();
            // Events of another app's objects are not this app's to show.
            if let Some(views) = state.views.as_deref() {
                let tree = views
                    .tree(&as_value(&app))
                    .await
                    .map_err(|e| view_error(&name, e))?;
                let part = tree["nodes"].as_array().is_some_and(|nodes| {
                    nodes.iter().any(|n| {
                        n["name"] == resource.as_str()
                            && n["namespace"] == namespace.as_str()
                            && get("resourceUID").is_none_or(|u| n["uid"] == u.as_str())
                    })
                });
                if !part {
                    return Err(ApiError::not_found(format!(
                        "{namespace}/{resource} is not a resource of application {name:?}"
                    )));
                }
            }
            let mut fields = format!("involvedObject.name={resource}");
            if let Some(uid) = get("resourceUID") {
                fields.push_str(&format!(",involvedObject.uid={uid}"));
            }
            (namespace, fields)
        }
        None => (
            state.namespace.clone(),
            format!(
                "involvedObject.name={name},involvedObject.kind=Application,involvedObject.uid={}",
                app.metadata.uid.clone().unwrap_or_default()
            ),
        ),
    };
    let api: Api<Event> = if namespace.is_empty() {
        Api::all(state.client.clone())
    } else {
        Api::namespaced(state.client.clone(), &namespace)
    };
    let mut list = api
        .list(&ListParams::default().fields(&fields))
        .await
        .map_err(|e| ApiError::kube(&format!("events of application {name:?}"), e))?;
    list.items.sort_by(|a, b| {
        let at = |e: &Event| {
            e.last_timestamp
                .as_ref()
                .map(|t| t.0)
                .or_else(|| e.event_time.as_ref().map(|t| t.0))
                .or_else(|| e.metadata.creation_timestamp.as_ref().map(|t| t.0))
        };
        at(a).cmp(&at(b))
    });
    let items: Vec<Value> = list
        .items
        .iter()
        .map(|e| serde_json::to_value(e).unwrap_or(Value::Null))
        .collect();
    Ok(Json(json!({"metadata": {}, "items": items})))
}
