//! The audit log (an extension): every mutating call (anything but `GET`),
//! with who, what, when, from where and the HTTP status, appended as an
//! `AuditEntry` object (`auditentries.berth.io`) in the control namespace.
//! The API creates entries and never changes or deletes them. Calls about
//! an application are also Kubernetes Events on it.
//! `GET /api/v1/audit?application=NAME&since=RFC3339&limit=N` reads them.

use std::net::SocketAddr;
use std::time::SystemTime;

use axum::extract::{ConnectInfo, RawQuery, Request, State};
use axum::http::Method;
use axum::middleware::Next;
use axum::response::Response;
use axum::{Extension, Json};
use k8s_openapi::api::core::v1::ObjectReference;
use kube::Api;
use kube::api::{DynamicObject, ListParams, PostParams};
use kube::runtime::events::{Event, EventType, Recorder, Reporter};
use serde_json::{Value, json};

use crate::apps::query_pairs;
use crate::error::ApiError;
use crate::{AppState, Caller};

/// Who made a call that carries no token (a login names its user).
#[derive(Debug, Clone)]
pub struct Actor(pub String);

/// The application a path concerns: `/api/v1/applications/{name}[/...]`.
fn application_of(path: &str) -> Option<String> {
    let rest = path.strip_prefix("/api/v1/applications/")?;
    let name = rest.split('/').next()?;
    (!name.is_empty()).then(|| name.to_string())
}

/// Records mutating calls after they are answered.
pub async fn record(State(state): State<AppState>, request: Request, next: Next) -> Response {
    if request.method() == Method::GET {
        return next.run(request).await;
    }
    let method = request.method().to_string();
    let path = request.uri().path().to_string();
    let forwarded = request
        .headers()
        .get("x-forwarded-for")
        .and_then(|v| v.to_str().ok())
        .map(|v| v.split(',').next().unwrap_or_default().trim().to_string());
    let peer = request
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map(|c| c.0.to_string());
    let response = next.run(request).await;
    let user = response
        .extensions()
        .get::<Caller>()
        .map(|c| c.user.clone())
        .or_else(|| response.extensions().get::<Actor>().map(|a| a.0.clone()))
        .unwrap_or_else(|| "anonymous".into());
    let entry = Entry {
        time: berth_api::time::rfc3339(SystemTime::now()),
        user,
        method,
        application: application_of(&path),
        path,
        status: response.status().as_u16(),
        remote: forwarded.or(peer).unwrap_or_default(),
    };
    tokio::spawn(write(state, entry));
    response
}

struct Entry {
    time: String,
    user: String,
    method: String,
    path: String,
    application: Option<String>,
    status: u16,
    remote: String,
}

async fn write(state: AppState, e: Entry) {
    let api: Api<DynamicObject> = Api::namespaced_with(
        state.client.clone(),
        &state.namespace,
        &berth_cluster::bootstrap::auditentry_resource(),
    );
    let mut labels = json!({});
    if let Some(app) = &e.application {
        labels["berth.io/application"] = json!(app);
    }
    let obj = json!({
        "apiVersion": format!("{}/v1alpha1", berth_api::crds::BERTH_GROUP),
        "kind": "AuditEntry",
        "metadata": {"generateName": "audit-", "namespace": state.namespace, "labels": labels},
        "spec": {"time": e.time, "user": e.user, "method": e.method, "path": e.path,
            "application": e.application, "status": e.status, "remoteAddr": e.remote},
    });
    match serde_json::from_value::<DynamicObject>(obj) {
        Ok(o) => {
            if let Err(err) = api.create(&PostParams::default(), &o).await {
                tracing::warn!(error = %err, user = %e.user, path = %e.path, "writing an audit entry");
            }
        }
        Err(err) => tracing::warn!(error = %err, "an audit entry"),
    }
    if let Some(app) = &e.application {
        let recorder = Recorder::new(
            state.client.clone(),
            Reporter {
                controller: "berth-server".into(),
                instance: None,
            },
        );
        let reference = ObjectReference {
            api_version: Some("argoproj.io/v1alpha1".into()),
            kind: Some("Application".into()),
            name: Some(app.clone()),
            namespace: Some(state.namespace.clone()),
            ..ObjectReference::default()
        };
        let event = Event {
            type_: if e.status < 400 {
                EventType::Normal
            } else {
                EventType::Warning
            },
            reason: "ResourceUpdated".into(),
            note: Some(format!(
                "{} {} {} by {} from {}: {}",
                e.method, e.path, "answered", e.user, e.remote, e.status
            )),
            action: e.method.clone(),
            secondary: None,
        };
        if let Err(err) = recorder.publish(&event, &reference).await {
            tracing::warn!(error = %err, app = %app, "recording an audit event");
        }
    }
}

/// `GET /api/v1/audit`: entries, newest first. With `application=NAME`,
/// needs RBAC `applications, get` on it; without, `accounts, get, *`.
pub async fn list(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    RawQuery(raw): RawQuery,
) -> Result<Json<Value>, ApiError> {
    let params = query_pairs(raw.as_deref());
    let one = |k: &str| {
        params
            .iter()
            .find(|(key, _)| key == k)
            .map(|(_, v)| v.clone())
    };
    let application = one("application");
    let mut lp = ListParams::default();
    match &application {
        Some(app) => {
            let obj = state
                .apps
                .get(app)
                .await
                .map_err(|e| ApiError::kube(&format!("application {app:?}"), e))?;
            state.authorize(
                &caller,
                "applications",
                "get",
                &crate::apps::rbac_object(&state, &obj),
            )?;
            lp = lp.labels(&format!("berth.io/application={app}"));
        }
        None => state.authorize(&caller, "accounts", "get", "*")?,
    }
    let since = one("since").unwrap_or_default();
    let limit: usize = match one("limit") {
        None => 100,
        Some(l) => l
            .parse()
            .map_err(|_| ApiError::bad_request(format!("limit {l:?}: expected a number")))?,
    };
    let api: Api<DynamicObject> = Api::namespaced_with(
        state.client.clone(),
        &state.namespace,
        &berth_cluster::bootstrap::auditentry_resource(),
    );
    let list = api
        .list(&lp)
        .await
        .map_err(|e| ApiError::kube("reading the audit log", e))?;
    // Same-length UTC timestamps order as text.
    let mut items: Vec<Value> = list
        .items
        .iter()
        .map(|o| o.data.get("spec").cloned().unwrap_or(Value::Null))
        .filter(|s| s["time"].as_str().unwrap_or_default() >= since.as_str())
        .collect();
    items.sort_by(|a, b| b["time"].as_str().cmp(&a["time"].as_str()));
    items.truncate(limit);
    Ok(Json(json!({"items": items})))
}
