//! The handlers: sessions, and Applications as Argo CD's API serves them.

use std::sync::Arc;

use axum::extract::{Path, RawQuery, State};
use axum::http::Method;
use axum::routing::{MethodRouter, delete, get, post, put};
use axum::{Extension, Json};
use base64::Engine;
use kube::api::{DeleteParams, DynamicObject, Patch, PatchParams, PostParams};
use serde_json::{Value, json};

use berth_controller::deletion::RESOURCES_FINALIZER;

use crate::error::ApiError;
use crate::{AppState, Caller, ROUTES};

/// The handler of one route of [`ROUTES`]; a route without one is a
/// programming error, caught by the route-table test.
pub fn handler(method: &Method, path: &str) -> MethodRouter<AppState> {
    match (method.as_str(), path) {
        ("GET", "/api/version") => get(version),
        ("GET", "/api/openapi.json") => get(openapi),
        ("GET", "/metrics") => get(metrics),
        ("GET", "/healthz") => get(|| async { "ok" }),
        ("GET", "/readyz") => get(readyz),
        ("POST", "/api/v1/session") => post(login),
        ("POST", "/api/webhook") => post(crate::webhook::receive),
        ("GET", "/api/v1/stream/applications") => get(crate::stream::applications),
        ("GET", "/api/v1/account") => get(crate::accounts::list),
        ("GET", "/api/v1/account/{name}") => get(crate::accounts::get),
        ("POST", "/api/v1/account/{name}/token") => post(crate::accounts::create_token),
        ("DELETE", "/api/v1/account/{name}/token/{id}") => delete(crate::accounts::delete_token),
        ("PUT", "/api/v1/account/password") => put(crate::accounts::update_password),
        ("GET", "/api/v1/audit") => get(crate::audit::list),
        ("GET", "/api/v1/applications/{name}/managed-resources") => get(crate::resources::managed),
        ("GET", "/api/v1/applications/{name}/diff") => get(crate::resources::diff),
        ("GET", "/api/v1/applications/{name}/manifests") => get(crate::resources::manifests),
        ("GET", "/api/v1/applications/{name}/resource-tree") => get(crate::resources::tree),
        ("GET", "/api/v1/applications/{name}/resource") => get(crate::resources::resource),
        ("GET", "/api/v1/applications/{name}/events") => get(crate::resources::events),
        ("GET", "/api/v1/applications/{name}/syncwindows") => get(sync_windows),
        ("GET", "/api/v1/applications/{name}/resource/actions") => {
            get(crate::resources::resource_actions)
        }
        ("POST", "/api/v1/applications/{name}/resource/actions") => {
            post(crate::resources::run_resource_action)
        }
        ("POST", "/api/v1/applications/{name}/resource/actions/v2") => {
            post(crate::resources::run_resource_action)
        }
        ("GET", "/api/v1/applications/{name}/revisions/{revision}/metadata") => {
            get(crate::resources::revision_metadata)
        }
        ("GET", "/api/v1/applicationsets") => get(crate::appsets::list),
        ("GET", "/api/v1/applicationsets/{name}") => get(crate::appsets::get),
        ("GET", "/api/v1/projects") => get(crate::projects::list),
        ("POST", "/api/v1/projects/{project}/roles/{role}/token") => {
            post(crate::projects::create_role_token)
        }
        ("DELETE", "/api/v1/projects/{project}/roles/{role}/token/{iat}") => {
            delete(crate::projects::delete_role_token)
        }
        ("GET", "/api/v1/projects/{name}") => get(crate::projects::get),
        ("POST", "/api/v1/projects") => post(crate::projects::create),
        ("PUT", "/api/v1/projects/{name}") => put(crate::projects::update),
        ("DELETE", "/api/v1/projects/{name}") => delete(crate::projects::delete),
        ("GET", "/api/v1/repositories") => get(crate::repositories::list),
        ("GET", "/api/v1/repositories/{repo}") => get(crate::repositories::get),
        ("POST", "/api/v1/repositories") => post(crate::repositories::create),
        ("POST", "/api/v1/repositories/{repo}/validate") => post(crate::repositories::validate),
        ("DELETE", "/api/v1/repositories/{repo}") => delete(crate::repositories::delete),
        ("GET", "/api/v1/clusters") => get(crate::clusters::list),
        ("GET", "/api/v1/clusters/{server}") => get(crate::clusters::get),
        ("POST", "/api/v1/clusters") => post(crate::clusters::create),
        ("DELETE", "/api/v1/clusters/{server}") => delete(crate::clusters::delete),
        ("GET", "/api/v1/session/userinfo") => get(userinfo),
        ("DELETE", "/api/v1/session") => delete(logout),
        ("GET", "/api/v1/settings") => get(crate::oidc::settings),
        ("GET", "/auth/login") => get(crate::oidc::login),
        ("GET", "/auth/callback") => get(crate::oidc::callback),
        ("GET", "/api/v1/applications") => get(list),
        ("GET", "/api/v1/applications/{name}") => get(get_app),
        ("POST", "/api/v1/applications") => post(create),
        ("PUT", "/api/v1/applications/{name}") => put(update),
        ("DELETE", "/api/v1/applications/{name}") => delete(remove),
        ("POST", "/api/v1/applications/{name}/sync") => post(sync),
        ("POST", "/api/v1/applications/{name}/rollback") => post(rollback),
        ("DELETE", "/api/v1/applications/{name}/operation") => delete(terminate),
        ("GET", "/api/v1/applications/{name}/approvals") => get(crate::approvals::list),
        ("GET", "/api/v1/applications/{name}/approvals/{request}") => get(crate::approvals::get),
        ("POST", "/api/v1/applications/{name}/approvals/{request}") => {
            post(crate::approvals::decide)
        }
        _ => get(|| async { ApiError::internal("route without a handler") }),
    }
}

/// `GET /metrics`: the controller's metrics in Prometheus' text format.
async fn metrics(State(state): State<AppState>) -> axum::response::Response {
    use axum::response::IntoResponse;
    let Some(views) = state.views.as_deref() else {
        return ApiError::unavailable("no controller runs in this process: no metrics here")
            .into_response();
    };
    match views.metrics() {
        Ok(text) => (
            [(
                axum::http::header::CONTENT_TYPE,
                "text/plain; version=0.0.4; charset=utf-8",
            )],
            text,
        )
            .into_response(),
        Err(e) => ApiError::unavailable(e.to_string()).into_response(),
    }
}

/// `GET /readyz`: 200 once the controller (when there is one) runs.
async fn readyz(State(state): State<AppState>) -> axum::response::Response {
    use axum::response::IntoResponse;
    match state.views.as_deref() {
        Some(v) if !v.ready() => {
            ApiError::unavailable("the controller is starting").into_response()
        }
        _ => "ok".into_response(),
    }
}

async fn version() -> Json<Value> {
    Json(json!({"Version": format!("v{}+berth", crate::VERSION)}))
}

async fn openapi() -> Json<Value> {
    Json(crate::openapi::document(ROUTES))
}

async fn login(State(state): State<AppState>, body: Json<Value>) -> axum::response::Response {
    use axum::response::IntoResponse;
    let text = |k: &str| {
        body.get(k)
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string()
    };
    let (user, password) = (text("username"), text("password"));
    // The audit log names who tried, whether or not it worked.
    let actor = Extension(crate::audit::Actor(user.clone()));
    if user.is_empty() {
        return (actor, ApiError::bad_request("username: required")).into_response();
    }
    match state.auth.login(&user, &password).await {
        Ok(token) => {
            tracing::info!(user = %user, "login");
            // Browsers keep the session in Argo CD's HTTP-only cookie;
            // other clients use the token in the body.
            let cookie = format!(
                "argocd.token={token}; Path=/; HttpOnly; SameSite=Lax; Max-Age={}",
                crate::auth::SESSION.as_secs()
            );
            (
                actor,
                [(axum::http::header::SET_COOKIE, cookie)],
                Json(json!({"token": token})),
            )
                .into_response()
        }
        Err(e) => (actor, e).into_response(),
    }
}

/// `DELETE /api/v1/session`: the browser's cookie is cleared. The token
/// itself stays valid until it expires (24 h); API tokens are revoked
/// instead.
async fn logout() -> axum::response::Response {
    use axum::response::IntoResponse;
    (
        [(
            axum::http::header::SET_COOKIE,
            "argocd.token=; Path=/; HttpOnly; SameSite=Lax; Max-Age=0",
        )],
        Json(json!({})),
    )
        .into_response()
}

async fn userinfo(Extension(caller): Extension<Caller>) -> Json<Value> {
    Json(
        json!({"loggedIn": true, "username": caller.user, "iss": "argocd", "groups": caller.groups}),
    )
}

/// `a=1&b=x%20y&b=z` as pairs, in order (repeated keys kept).
pub(crate) fn query_pairs(raw: Option<&str>) -> Vec<(String, String)> {
    fn decode(s: &str) -> String {
        let bytes = s.as_bytes();
        let mut out = Vec::with_capacity(bytes.len());
        let mut i = 0;
        while i < bytes.len() {
            match bytes[i] {
                b'+' => out.push(b' '),
                b'%' if i + 2 < bytes.len() => {
                    let hex = std::str::from_utf8(&bytes[i + 1..i + 3]).unwrap_or("");
                    match u8::from_str_radix(hex, 16) {
                        Ok(b) => {
                            out.push(b);
                            i += 2;
                        }
                        Err(_) => out.push(b'%'),
                    }
                }
                b => out.push(b),
            }
            i += 1;
        }
        String::from_utf8_lossy(&out).into_owned()
    }
    raw.unwrap_or_default()
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|p| match p.split_once('=') {
            Some((k, v)) => (decode(k), decode(v)),
            None => (decode(p), String::new()),
        })
        .collect()
}

/// Every value of `key`: repeated keys and comma-separated values both
/// count, empty ones do not.
pub(crate) fn query_values<'a>(params: &'a [(String, String)], key: &str) -> Vec<&'a str> {
    params
        .iter()
        .filter(|(k, _)| k == key)
        .flat_map(|(_, v)| v.split(','))
        .map(str::trim)
        .filter(|v| !v.is_empty())
        .collect()
}

/// Whether `labels` satisfy a label selector (`k=v`, `k==v`, `k!=v`, `k`,
/// `!k`, comma-separated).
pub(crate) fn selector_matches(selector: &str, labels: &serde_json::Map<String, Value>) -> bool {
    selector
        .split(',')
        .map(str::trim)
        .filter(|t| !t.is_empty())
        .all(|term| {
            let get = |k: &str| labels.get(k.trim()).and_then(Value::as_str);
            if let Some((k, v)) = term.split_once("!=") {
                get(k) != Some(v.trim())
            } else if let Some((k, v)) = term.split_once("==").or_else(|| term.split_once('=')) {
                get(k) == Some(v.trim())
            } else if let Some(k) = term.strip_prefix('!') {
                get(k).is_none()
            } else {
                get(term).is_some()
            }
        })
}

/// An Application's project (`default` when it names none).
pub(crate) fn project_of(app: &DynamicObject) -> &str {
    app.data
        .pointer("/spec/project")
        .and_then(Value::as_str)
        .filter(|p| !p.is_empty())
        .unwrap_or("default")
}

/// An Application's labels, as a JSON map for [`selector_matches`].
pub(crate) fn labels_of(app: &DynamicObject) -> serde_json::Map<String, Value> {
    app.metadata
        .labels
        .as_ref()
        .map(|l| {
            l.iter()
                .map(|(k, v)| (k.clone(), Value::String(v.clone())))
                .collect()
        })
        .unwrap_or_default()
}

/// The RBAC object of an Application: `project/name`, or Argo CD's
/// `project/namespace/name` for one outside the control namespace.
pub(crate) fn rbac_object(state: &AppState, app: &DynamicObject) -> String {
    let name = app.metadata.name.as_deref().unwrap_or_default();
    match app.metadata.namespace.as_deref() {
        Some(ns) if ns != state.namespace => format!("{}/{ns}/{name}", project_of(app)),
        _ => format!("{}/{name}", project_of(app)),
    }
}

/// An Application a route names: `{name}`, in the namespace of Argo CD's
/// `appNamespace` query parameter (the control namespace without it), or
/// `{namespace/name}`.
#[derive(Debug, Clone)]
pub struct AppRef {
    /// Its name.
    pub name: String,
    /// Its namespace, when the request names one.
    pub namespace: Option<String>,
}

impl AppRef {
    /// The reference of an Application object.
    pub fn of(app: &DynamicObject) -> AppRef {
        AppRef {
            name: app.metadata.name.clone().unwrap_or_default(),
            namespace: app.metadata.namespace.clone(),
        }
    }
}

impl std::fmt::Display for AppRef {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.namespace {
            Some(ns) => write!(f, "{ns}/{}", self.name),
            None => f.write_str(&self.name),
        }
    }
}

impl<S: Send + Sync> axum::extract::FromRequestParts<S> for AppRef {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut axum::http::request::Parts,
        state: &S,
    ) -> Result<Self, Self::Rejection> {
        let Path(params) =
            Path::<std::collections::HashMap<String, String>>::from_request_parts(parts, state)
                .await
                .map_err(|e| ApiError::bad_request(e.body_text()))?;
        let name = params.get("name").cloned().unwrap_or_default();
        let param = query_pairs(parts.uri.query())
            .into_iter()
            .find(|(k, _)| k == "appNamespace")
            .map(|(_, v)| v)
            .filter(|v| !v.is_empty());
        // Berth's extension: `namespace/name` (the `/` encoded) in the
        // path, as Argo CD's CLI takes it.
        match name.split_once('/') {
            Some((ns, n)) => {
                if param.as_deref().is_some_and(|p| p != ns) {
                    return Err(ApiError::bad_request(format!(
                        "appNamespace {:?} differs from the namespace {ns:?} in the name {name:?}",
                        param.unwrap_or_default()
                    )));
                }
                Ok(AppRef {
                    name: n.to_string(),
                    namespace: Some(ns.to_string()),
                })
            }
            None => Ok(AppRef {
                name,
                namespace: param,
            }),
        }
    }
}

/// An Application's name as people and the CLI give it: `namespace/name`
/// outside the control namespace.
pub(crate) fn display_name(state: &AppState, app: &Value) -> String {
    let name = app
        .pointer("/metadata/name")
        .and_then(Value::as_str)
        .unwrap_or_default();
    match app.pointer("/metadata/namespace").and_then(Value::as_str) {
        Some(ns) if ns != state.namespace => format!("{ns}/{name}"),
        _ => name.to_string(),
    }
}

/// An Application as the API returns it: without `managedFields`.
pub(crate) fn render(obj: &DynamicObject) -> Value {
    let mut v = serde_json::to_value(obj).unwrap_or(Value::Null);
    if let Some(m) = v.get_mut("metadata").and_then(Value::as_object_mut) {
        m.remove("managedFields");
    }
    v
}

/// `GET /api/v1/applications/{name}/syncwindows`: Argo CD's
/// `ApplicationSyncWindowsResponse`: the project's windows that apply to
/// the app (`assignedWindows`), those open now (`activeWindows`), and
/// whether a manual sync may run now (`canSync`).
pub(crate) async fn sync_windows(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    app_ref: AppRef,
) -> Result<Json<Value>, ApiError> {
    let app = fetch(&state, &app_ref).await?;
    state.authorize(&caller, "applications", "get", &rbac_object(&state, &app))?;
    let project = project_of(&app).to_string();
    let p = crate::projects::fetch(&state, &project).await?;
    let spec = p.data.get("spec").cloned().unwrap_or(Value::Null);
    let verdict =
        berth_controller::windows::evaluate(&render(&app), &project, &spec, jiff::Timestamp::now());
    let plain = |w: &Value| {
        let mut w = w.clone();
        if let Some(m) = w.as_object_mut() {
            m.remove("active");
        }
        w
    };
    Ok(Json(json!({
        "assignedWindows": verdict.windows.iter().map(plain).collect::<Vec<_>>(),
        "activeWindows": verdict.windows.iter().filter(|w| w["active"] == true).map(plain).collect::<Vec<_>>(),
        "canSync": verdict.manual,
    })))
}

/// `GET /api/v1/applications`: Argo CD's filters (`name`, `projects`,
/// `selector`, `repo`) and Berth's (`sync`, `health`, `search`, the
/// destination's `cluster` (server URL or name) and `namespace`; `limit`
/// and `continue` for pages, in name order).
pub(crate) async fn list(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    RawQuery(raw): RawQuery,
) -> Result<Json<Value>, ApiError> {
    let params = query_pairs(raw.as_deref());
    let all = |k: &str| query_values(&params, k);
    let one = |k: &str| all(k).first().map(|s| s.to_string());
    let projects = all("projects");
    let projects: Vec<&str> = projects.into_iter().chain(all("project")).collect();
    let limit = match one("limit") {
        None => None,
        Some(l) => Some(l.parse::<usize>().map_err(|_| {
            ApiError::bad_request(format!("limit {l:?}: expected a positive number"))
        })?),
    };
    let after = match one("continue") {
        None => None,
        Some(c) => Some(
            base64::engine::general_purpose::URL_SAFE_NO_PAD
                .decode(c.as_bytes())
                .ok()
                .and_then(|b| String::from_utf8(b).ok())
                .ok_or_else(|| ApiError::bad_request("continue: not a token this server gave"))?,
        ),
    };
    let app_namespace = one("appNamespace").filter(|n| !n.is_empty());
    let (name, selector, repo, sync, health, search) = (
        one("name"),
        one("selector"),
        one("repo"),
        all("sync"),
        all("health"),
        one("search").map(|s| s.to_lowercase()),
    );
    let (clusters, namespaces) = (all("cluster"), all("namespace"));
    let policy = state.policy();
    // Only what the caller may see, before filters and pages.
    let mut apps: Vec<Arc<DynamicObject>> = state
        .store
        .state()
        .into_iter()
        .filter(|a| {
            policy.allows(
                &caller.user,
                &caller.groups,
                "applications",
                "get",
                &rbac_object(&state, a),
            )
        })
        .collect();
    // Pages in (name, namespace) order; the continue token is the last
    // item's `name/namespace`.
    let order = |a: &DynamicObject| {
        format!(
            "{}/{}",
            a.metadata.name.as_deref().unwrap_or_default(),
            a.metadata.namespace.as_deref().unwrap_or_default()
        )
    };
    apps.sort_by_cached_key(|a| order(a));
    let matching = apps.into_iter().filter(|a| {
        let n = a.metadata.name.as_deref().unwrap_or_default();
        let d = &a.data;
        let text = |p: &str| d.pointer(p).and_then(Value::as_str).unwrap_or_default();
        let project = project_of(a);
        let labels = labels_of(a);
        name.as_deref().is_none_or(|x| x == n)
            && app_namespace
                .as_deref()
                .is_none_or(|x| a.metadata.namespace.as_deref() == Some(x))
            && (projects.is_empty() || projects.contains(&project))
            && selector
                .as_deref()
                .is_none_or(|s| selector_matches(s, &labels))
            && repo.as_deref().is_none_or(|r| {
                text("/spec/source/repoURL") == r
                    || d.pointer("/spec/sources")
                        .and_then(Value::as_array)
                        .is_some_and(|s| s.iter().any(|s| s["repoURL"] == r))
            })
            && (sync.is_empty() || sync.contains(&text("/status/sync/status")))
            && (health.is_empty() || health.contains(&text("/status/health/status")))
            && search
                .as_deref()
                .is_none_or(|s| n.to_lowercase().contains(s))
            && (clusters.is_empty()
                || clusters.contains(&text("/spec/destination/server"))
                || clusters.contains(&text("/spec/destination/name")))
            && (namespaces.is_empty() || namespaces.contains(&text("/spec/destination/namespace")))
    });
    let after_start: Vec<Arc<DynamicObject>> = matching
        .filter(|a| after.as_deref().is_none_or(|last| order(a).as_str() > last))
        .collect();
    let total = after_start.len();
    let page: Vec<&Arc<DynamicObject>> = after_start
        .iter()
        .take(limit.unwrap_or(usize::MAX).max(1))
        .collect();
    let mut metadata = json!({});
    if page.len() < total
        && let Some(last) = page.last().map(|a| order(a))
    {
        metadata["continue"] = json!(base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(last));
        metadata["remainingItemCount"] = json!(total - page.len());
    }
    let items: Vec<Value> = page.iter().map(|a| render(a)).collect();
    Ok(Json(json!({"metadata": metadata, "items": items})))
}

pub(crate) async fn fetch(state: &AppState, app: &AppRef) -> Result<DynamicObject, ApiError> {
    let namespace = app.namespace.as_deref().unwrap_or(&state.namespace);
    if !state.app_namespace_enabled(namespace) {
        return Err(ApiError::bad_request(format!(
            "appNamespace {namespace:?}: Applications in this namespace are not enabled (application.namespaces in argocd-cmd-params-cm)"
        )));
    }
    state
        .apps_in(namespace)
        .get(&app.name)
        .await
        .map_err(|e| ApiError::kube(&format!("application {:?}", app.to_string()), e))
}

/// The Applications of `app`'s namespace.
fn api_of(state: &AppState, app: &DynamicObject) -> kube::Api<DynamicObject> {
    state.apps_in(
        app.metadata
            .namespace
            .as_deref()
            .unwrap_or(&state.namespace),
    )
}

/// `GET /api/v1/applications/{name}`; `?refresh=normal|hard` sets Argo
/// CD's refresh annotation first.
pub(crate) async fn get_app(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    app_ref: AppRef,
    RawQuery(raw): RawQuery,
) -> Result<Json<Value>, ApiError> {
    let params = query_pairs(raw.as_deref());
    let name = app_ref.to_string();
    let app = fetch(&state, &app_ref).await?;
    state.authorize(&caller, "applications", "get", &rbac_object(&state, &app))?;
    if let Some((_, kind)) = params.iter().find(|(k, _)| k == "refresh") {
        if kind != "normal" && kind != "hard" {
            return Err(ApiError::bad_request(format!(
                "refresh {kind:?}: use normal or hard"
            )));
        }
        let patch = json!({"metadata": {"annotations": {"argocd.argoproj.io/refresh": kind}}});
        let obj = api_of(&state, &app)
            .patch(
                &app_ref.name,
                &PatchParams::default(),
                &Patch::Merge(&patch),
            )
            .await
            .map_err(|e| ApiError::kube(&format!("application {name:?}"), e))?;
        return Ok(Json(render(&obj)));
    }
    Ok(Json(render(&app)))
}

/// An Application from a request body: Argo CD's `Application` JSON, in
/// the control namespace unless it names another that is enabled (for an
/// update, the existing one's); `status` and `operation` are not the
/// caller's to write.
fn incoming(
    state: &AppState,
    body: &Value,
    existing: Option<&DynamicObject>,
) -> Result<DynamicObject, ApiError> {
    let name = existing.and_then(|e| e.metadata.name.as_deref());
    let mut app = body.clone();
    if !app.is_object() {
        return Err(ApiError::bad_request(
            "the body must be an Application object",
        ));
    }
    if let Some(m) = app.as_object_mut() {
        m.remove("status");
        m.remove("operation");
    }
    app["apiVersion"] = json!("argoproj.io/v1alpha1");
    app["kind"] = json!("Application");
    let given = app
        .pointer("/metadata/name")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_string();
    match name {
        Some(n) if !given.is_empty() && given != n => {
            return Err(ApiError::bad_request(format!(
                "metadata.name {given:?} does not match the path's {n:?}"
            )));
        }
        Some(n) => app["metadata"]["name"] = json!(n),
        None if given.is_empty() => return Err(ApiError::bad_request("metadata.name: required")),
        None => {}
    }
    let given_ns = app
        .pointer("/metadata/namespace")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_string();
    let namespace = match existing.and_then(|e| e.metadata.namespace.clone()) {
        Some(current) if !given_ns.is_empty() && given_ns != current => {
            return Err(ApiError::bad_request(format!(
                "metadata.namespace {given_ns:?}: the application lives in {current:?}; an application cannot move"
            )));
        }
        Some(current) => current,
        None if given_ns.is_empty() => state.namespace.clone(),
        None if state.app_namespace_enabled(&given_ns) => given_ns,
        None => {
            return Err(ApiError::bad_request(format!(
                "metadata.namespace {given_ns:?}: Applications in this namespace are not enabled; use {:?} or a namespace of application.namespaces in argocd-cmd-params-cm",
                state.namespace
            )));
        }
    };
    app["metadata"]["namespace"] = json!(namespace);
    if !app.get("spec").is_some_and(Value::is_object) {
        return Err(ApiError::bad_request("spec: required"));
    }
    // The same checks the controller makes, so a wrong spec is refused at
    // once rather than reported later as a condition.
    let label = format!("Application {given}");
    berth_api::application::Application::from_value(&label, app.clone())
        .map_err(|e| ApiError::bad_request(e.to_string()))?;
    serde_json::from_value(app).map_err(|e| ApiError::bad_request(e.to_string()))
}

/// Refuses an Application outside the control namespace whose project's
/// `sourceNamespaces` does not name its namespace (the controller would
/// not reconcile it).
async fn source_namespace_permitted(state: &AppState, app: &DynamicObject) -> Result<(), ApiError> {
    if app.metadata.namespace.as_deref() == Some(state.namespace.as_str()) {
        return Ok(());
    }
    let project = project_of(app).to_string();
    let spec = crate::projects::fetch(state, &project)
        .await
        .map(|p| p.data.get("spec").cloned().unwrap_or(Value::Null))
        .map_err(|_| {
            ApiError::bad_request(format!(
                "spec.project: AppProject {project:?} does not exist in namespace {:?}",
                state.namespace
            ))
        })?;
    berth_controller::project::source_namespace(&render(app), &state.namespace, &project, &spec)
        .map_err(ApiError::forbidden)
}

/// `POST /api/v1/applications`: creates an application; with
/// `?upsert=true` an existing one gets the new spec.
async fn create(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    RawQuery(raw): RawQuery,
    Json(body): Json<Value>,
) -> Result<Json<Value>, ApiError> {
    let app = incoming(&state, &body, None)?;
    state.authorize(
        &caller,
        "applications",
        "create",
        &rbac_object(&state, &app),
    )?;
    source_namespace_permitted(&state, &app).await?;
    let name = app.metadata.name.clone().unwrap_or_default();
    let upsert = query_pairs(raw.as_deref())
        .iter()
        .any(|(k, v)| k == "upsert" && v == "true");
    let api = api_of(&state, &app);
    match api.create(&PostParams::default(), &app).await {
        Ok(obj) => {
            tracing::info!(user = %caller.user, app = %name, "application created");
            Ok(Json(render(&obj)))
        }
        Err(kube::Error::Api(s)) if s.code == 409 && upsert => {
            state.authorize(
                &caller,
                "applications",
                "update",
                &rbac_object(&state, &app),
            )?;
            let patch = json!({"metadata": {"labels": app.metadata.labels, "annotations": app.metadata.annotations},
                "spec": app.data.get("spec")});
            let obj = api
                .patch(&name, &PatchParams::default(), &Patch::Merge(&patch))
                .await
                .map_err(|e| ApiError::kube(&format!("application {name:?}"), e))?;
            Ok(Json(render(&obj)))
        }
        Err(kube::Error::Api(s)) if s.code == 409 => Err(ApiError::conflict(format!(
            "application {name:?} already exists; use ?upsert=true to replace its spec"
        ))),
        Err(e) => Err(ApiError::kube(&format!("application {name:?}"), e)),
    }
}

/// `PUT /api/v1/applications/{name}`: replaces the spec (and labels and
/// annotations), keeping status and operation.
async fn update(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    app_ref: AppRef,
    Json(body): Json<Value>,
) -> Result<Json<Value>, ApiError> {
    let name = app_ref.to_string();
    let current = fetch(&state, &app_ref).await?;
    state.authorize(
        &caller,
        "applications",
        "update",
        &rbac_object(&state, &current),
    )?;
    let app = incoming(&state, &body, Some(&current))?;
    // Moving an app to another project needs the right there too.
    state.authorize(
        &caller,
        "applications",
        "update",
        &rbac_object(&state, &app),
    )?;
    source_namespace_permitted(&state, &app).await?;
    // The controller writes the status meanwhile: a replace that meets
    // a newer version is made again on it (the spec is the caller's).
    let mut current = current;
    for _ in 0..5 {
        let mut replaced = current.clone();
        replaced.metadata.labels = app.metadata.labels.clone();
        replaced.metadata.annotations = app.metadata.annotations.clone();
        replaced.data["spec"] = app.data.get("spec").cloned().unwrap_or(Value::Null);
        match api_of(&state, &current)
            .replace(&app_ref.name, &PostParams::default(), &replaced)
            .await
        {
            Ok(obj) => {
                tracing::info!(user = %caller.user, app = %name, "application updated");
                return Ok(Json(render(&obj)));
            }
            Err(kube::Error::Api(s)) if s.code == 409 => {
                current = fetch(&state, &app_ref).await?;
            }
            Err(e) => return Err(ApiError::kube(&format!("application {name:?}"), e)),
        }
    }
    Err(ApiError::conflict(format!(
        "application {name:?} keeps changing; try again"
    )))
}

/// `DELETE /api/v1/applications/{name}`: by default (cascade) the
/// controller deletes the app's resources first, through Argo CD's
/// resources finalizer (`?propagationPolicy=background` for its
/// background form); with `?cascade=false` the Application goes and its
/// resources stay.
pub(crate) async fn remove(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    app_ref: AppRef,
    RawQuery(raw): RawQuery,
) -> Result<Json<Value>, ApiError> {
    let name = app_ref.to_string();
    let app = fetch(&state, &app_ref).await?;
    state.authorize(
        &caller,
        "applications",
        "delete",
        &rbac_object(&state, &app),
    )?;
    let api = api_of(&state, &app);
    let params = query_pairs(raw.as_deref());
    let cascade = params
        .iter()
        .find(|(k, _)| k == "cascade")
        .map(|(_, v)| v != "false")
        .unwrap_or(true);
    let finalizer = match params
        .iter()
        .find(|(k, _)| k == "propagationPolicy")
        .map(|(_, v)| v.as_str())
    {
        None | Some("") | Some("foreground") => RESOURCES_FINALIZER.to_string(),
        Some("background") => format!("{RESOURCES_FINALIZER}/background"),
        Some(other) => {
            return Err(ApiError::bad_request(format!(
                "propagationPolicy {other:?}: use foreground or background"
            )));
        }
    };
    // Cascade: the resources finalizer makes the deletion wait for the
    // controller to delete the resources. Not cascading: it goes first, as
    // in Argo CD. The version guard keeps a finalizer someone else adds;
    // a version the controller moved (status) is read again.
    let mut app = app;
    let mut settled = false;
    for _ in 0..5 {
        let finalizers = app.metadata.finalizers.clone().unwrap_or_default();
        let ours = |f: &String| berth_controller::deletion::is_resources_finalizer(f);
        let others: Vec<String> = finalizers.iter().filter(|f| !ours(f)).cloned().collect();
        let wanted: Vec<String> = if !cascade {
            others
        } else if finalizers.iter().any(ours) {
            finalizers.clone()
        } else {
            others.into_iter().chain([finalizer.clone()]).collect()
        };
        if wanted == finalizers {
            settled = true;
            break;
        }
        let patch = json!({"metadata": {"finalizers": wanted, "resourceVersion": app.metadata.resource_version}});
        match api
            .patch(
                &app_ref.name,
                &PatchParams::default(),
                &Patch::Merge(&patch),
            )
            .await
        {
            Ok(_) => {
                settled = true;
                break;
            }
            Err(kube::Error::Api(s)) if s.code == 409 => app = fetch(&state, &app_ref).await?,
            Err(e) => return Err(ApiError::kube(&format!("application {name:?}"), e)),
        }
    }
    if !settled {
        return Err(ApiError::conflict(format!(
            "application {name:?} keeps changing; try again"
        )));
    }
    api.delete(&app_ref.name, &DeleteParams::default())
        .await
        .map_err(|e| ApiError::kube(&format!("application {name:?}"), e))?;
    if cascade {
        tracing::info!(user = %caller.user, app = %name, "application deleted with its resources");
    } else {
        tracing::info!(user = %caller.user, app = %name, "application deleted (resources kept)");
    }
    Ok(Json(json!({})))
}

/// `operation.info` for every sync: who asks, signed with a nonce (the
/// name of the request it opens if the app is gated) and the time, so the
/// controller can trust it once and not a copy later; a break-glass
/// reason; and whether this server found the app gated (for the CLI).
pub(crate) async fn requester_info(
    state: &AppState,
    app: &DynamicObject,
    user: &str,
    sync: &Value,
    override_reason: &str,
) -> Result<Value, ApiError> {
    use berth_controller::approval;
    let gated = crate::approvals::requirement(state, &render(app))
        .await?
        .is_some();
    if !gated && !override_reason.is_empty() {
        return Err(ApiError::bad_request(
            "approvalOverride: this application needs no approvals; sync it without an override",
        ));
    }
    let Some(signer) = state.signer.as_ref() else {
        if gated {
            return Err(ApiError::unavailable(
                "the approval signing key could not be read when the server started",
            ));
        }
        return Ok(json!([]));
    };
    let uid = app.metadata.uid.as_deref().unwrap_or_default();
    let base: String = app
        .metadata
        .name
        .as_deref()
        .unwrap_or_default()
        .chars()
        .take(240)
        .collect();
    let suffix: String = crate::auth::random_bytes(6)
        .map_err(|e| ApiError::internal(format!("random bytes: {e}")))?
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    let nonce = format!("{base}-{suffix}");
    let at = berth_api::time::rfc3339(std::time::SystemTime::now());
    let signature = signer.sign(
        "requester",
        &approval::requester_payload(uid, user, sync, override_reason, &nonce, &at),
    );
    let mut info = vec![
        json!({"name": approval::INFO_REQUESTER, "value": user}),
        json!({"name": approval::INFO_SIGNATURE, "value": signature}),
        json!({"name": approval::INFO_REQUEST, "value": nonce}),
        json!({"name": approval::INFO_SIGNED_AT, "value": at}),
    ];
    if gated {
        info.push(json!({"name": approval::INFO_GATED, "value": "true"}));
    }
    if !override_reason.is_empty() {
        info.push(json!({"name": approval::INFO_OVERRIDE, "value": override_reason}));
    }
    Ok(json!(info))
}

/// Writes `operation` unless one is already there, guarded by the
/// Application's resourceVersion.
async fn request_operation(
    state: &AppState,
    app: &DynamicObject,
    operation: Value,
) -> Result<Json<Value>, ApiError> {
    let app_ref = AppRef::of(app);
    let name = app_ref.to_string();
    let api = api_of(state, app);
    let mut app = app.clone();
    // The version guard keeps two requests from both writing an operation;
    // a newer version because the controller wrote the status is checked
    // again and the request made on it.
    for _ in 0..5 {
        if app.data.get("operation").is_some_and(|o| !o.is_null()) {
            return Err(ApiError::conflict(format!(
                "application {name:?}: another operation is already in progress"
            )));
        }
        let patch = json!({
            "metadata": {"resourceVersion": app.metadata.resource_version},
            "operation": operation,
        });
        match api
            .patch(
                &app_ref.name,
                &PatchParams::default(),
                &Patch::Merge(&patch),
            )
            .await
        {
            Ok(obj) => return Ok(Json(render(&obj))),
            Err(kube::Error::Api(s)) if s.code == 409 => app = fetch(state, &app_ref).await?,
            Err(e) => return Err(ApiError::kube(&format!("application {name:?}"), e)),
        }
    }
    Err(ApiError::conflict(format!(
        "application {name:?} keeps changing; try again"
    )))
}

/// `POST /api/v1/applications/{name}/sync` with Argo CD's
/// `ApplicationSyncRequest`.
pub(crate) async fn sync(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    app_ref: AppRef,
    body: Option<Json<Value>>,
) -> Result<Json<Value>, ApiError> {
    let body = body.map(|b| b.0).unwrap_or_else(|| json!({}));
    if body.get("manifests").is_some_and(|m| !m.is_null()) {
        return Err(ApiError::bad_request(
            "manifests: syncing local manifests is not supported; commit them to Git",
        ));
    }
    let name = app_ref.to_string();
    let app = fetch(&state, &app_ref).await?;
    state.authorize(&caller, "applications", "sync", &rbac_object(&state, &app))?;
    // Refused at once when the project's sync windows block manual syncs
    // (the controller's admission point would hold the operation).
    let project = project_of(&app).to_string();
    if let Ok(p) = crate::projects::fetch(&state, &project).await {
        let spec = p.data.get("spec").cloned().unwrap_or(Value::Null);
        let verdict = berth_controller::windows::evaluate(
            &render(&app),
            &project,
            &spec,
            jiff::Timestamp::now(),
        );
        if !verdict.manual {
            return Err(ApiError::forbidden(format!(
                "cannot sync application {name:?}: {}",
                verdict.reason
            )));
        }
    }
    let mut sync = json!({
        "prune": body.get("prune").and_then(Value::as_bool).unwrap_or(false),
        "dryRun": body.get("dryRun").and_then(Value::as_bool).unwrap_or(false),
    });
    for (from, to) in [
        ("revision", "revision"),
        ("revisions", "revisions"),
        ("resources", "resources"),
        ("strategy", "syncStrategy"),
    ] {
        if let Some(v) = body.get(from).filter(|v| !v.is_null()) {
            sync[to] = v.clone();
        }
    }
    if let Some(items) = body.pointer("/syncOptions/items").filter(|v| v.is_array()) {
        sync["syncOptions"] = items.clone();
    }
    let mut operation = json!({"sync": sync, "initiatedBy": {"username": caller.user}});
    if let Some(retry) = body.get("retryStrategy").filter(|v| !v.is_null()) {
        operation["retry"] = retry.clone();
    }
    // Berth's extension: a break-glass sync of a gated app, for a role
    // with `override`, with a reason.
    let override_reason = match body.get("approvalOverride") {
        None | Some(Value::Null) => String::new(),
        Some(Value::String(r)) if !r.trim().is_empty() => {
            state.authorize(
                &caller,
                "applications",
                "override",
                &rbac_object(&state, &app),
            )?;
            r.trim().to_string()
        }
        Some(_) => {
            return Err(ApiError::bad_request(
                "approvalOverride: the reason for syncing without approvals is required",
            ));
        }
    };
    operation["info"] = requester_info(
        &state,
        &app,
        &caller.user,
        &operation["sync"],
        &override_reason,
    )
    .await?;
    tracing::info!(user = %caller.user, app = %name, "sync requested");
    request_operation(&state, &app, operation).await
}

/// `POST /api/v1/applications/{name}/rollback` with `{id, dryRun, prune}`:
/// a sync of the history entry's revision and source. Refused while
/// automated sync is on, as Argo CD does.
pub(crate) async fn rollback(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    app_ref: AppRef,
    Json(body): Json<Value>,
) -> Result<Json<Value>, ApiError> {
    let name = app_ref.to_string();
    let app = fetch(&state, &app_ref).await?;
    state.authorize(&caller, "applications", "sync", &rbac_object(&state, &app))?;
    if app
        .data
        .pointer("/spec/syncPolicy/automated")
        .is_some_and(|a| a.is_object() && a.get("enabled").and_then(Value::as_bool) != Some(false))
    {
        return Err(ApiError::bad_request(format!(
            "application {name:?}: rollback cannot be initiated when auto-sync is enabled"
        )));
    }
    let id = body
        .get("id")
        .and_then(|v| {
            v.as_i64()
                .or_else(|| v.as_str().and_then(|s| s.parse().ok()))
        })
        .ok_or_else(|| {
            ApiError::bad_request("id: the history entry to roll back to is required")
        })?;
    let history = app
        .data
        .pointer("/status/history")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    let entry = history
        .iter()
        .find(|h| h.get("id").and_then(Value::as_i64) == Some(id))
        .ok_or_else(|| {
            ApiError::not_found(format!(
                "application {name:?} has no history entry {id}; see its status.history"
            ))
        })?;
    let mut sync = json!({
        "revision": entry.get("revision"),
        "dryRun": body.get("dryRun").and_then(Value::as_bool).unwrap_or(false),
        "prune": body.get("prune").and_then(Value::as_bool).unwrap_or(false),
    });
    if let Some(source) = entry.get("source").filter(|s| s.is_object()) {
        sync["source"] = source.clone();
    }
    if let Some(sources) = entry.get("sources").filter(|s| s.is_array()) {
        sync["sources"] = sources.clone();
        sync["revisions"] = entry.get("revisions").cloned().unwrap_or(Value::Null);
    }
    tracing::info!(user = %caller.user, app = %name, id, "rollback requested");
    let info = requester_info(&state, &app, &caller.user, &sync, "").await?;
    request_operation(
        &state,
        &app,
        json!({"sync": sync, "initiatedBy": {"username": caller.user}, "info": info}),
    )
    .await
}

/// `DELETE /api/v1/applications/{name}/operation`: asks the controller to
/// terminate the running operation.
async fn terminate(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    app_ref: AppRef,
) -> Result<Json<Value>, ApiError> {
    let name = app_ref.to_string();
    let app = fetch(&state, &app_ref).await?;
    state.authorize(&caller, "applications", "sync", &rbac_object(&state, &app))?;
    let phase = app
        .data
        .pointer("/status/operationState/phase")
        .and_then(Value::as_str);
    if phase != Some("Running") {
        return Err(ApiError::bad_request(format!(
            "application {name:?}: Unable to terminate operation. No operation is in progress"
        )));
    }
    let patch = json!({"status": {"operationState": {"phase": "Terminating"}}});
    api_of(&state, &app)
        .patch(
            &app_ref.name,
            &PatchParams::default(),
            &Patch::Merge(&patch),
        )
        .await
        .map_err(|e| ApiError::kube(&format!("application {name:?}"), e))?;
    tracing::info!(user = %caller.user, app = %name, "termination requested");
    Ok(Json(json!({})))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn queries_decode() {
        let p = query_pairs(Some("projects=a&projects=b%2Fc&search=web+app&x"));
        assert_eq!(
            p,
            vec![
                ("projects".to_string(), "a".to_string()),
                ("projects".to_string(), "b/c".to_string()),
                ("search".to_string(), "web app".to_string()),
                ("x".to_string(), String::new()),
            ]
        );
        assert_eq!(
            query_pairs(Some("a=%zz%4")),
            vec![("a".into(), "%zz%4".into())]
        );
    }

    #[test]
    fn selectors() {
        let labels: serde_json::Map<String, Value> =
            serde_json::from_value(json!({"env": "prod", "team": "shop"})).unwrap();
        assert!(selector_matches("env=prod", &labels));
        assert!(selector_matches("env==prod,team", &labels));
        assert!(!selector_matches("env!=prod", &labels));
        assert!(selector_matches("!tier", &labels));
        assert!(!selector_matches("tier", &labels));
    }

    #[test]
    fn every_route_has_a_handler_and_a_document_entry() {
        let doc = crate::openapi::document(ROUTES);
        for r in ROUTES {
            let op = &doc["paths"][r.path][r.method.to_lowercase()];
            assert!(op.is_object(), "{} {} in the document", r.method, r.path);
        }
    }
}
