//! The diff of an app, and one resource: live and desired manifests, its
//! diff and events.

use axum::extract::{Form, Path, RawQuery, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use axum::{Extension, Json};
use serde_json::{Value, json};
use std::collections::HashMap;
use std::fmt::Write as _;

use super::*;

pub(super) async fn diff(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(name): Path<String>,
    RawQuery(raw): RawQuery,
) -> Response {
    let split = wants_split(raw.as_deref());
    let base = format!("/applications/{}/diff", enc(&name));
    let here = if split {
        format!("{base}?view=split")
    } else {
        base.clone()
    };
    let user = match session(&state, &headers, &here) {
        Ok(c) => c,
        Err(r) => return r.into_response(),
    };
    let items = match crate::resources::diff(
        State(state.clone()),
        Extension(user.clone()),
        app_ref(&name),
        RawQuery(None),
    )
    .await
    {
        Ok(Json(v)) => v["items"].as_array().cloned().unwrap_or_default(),
        Err(e) => return api_error(&user.user, e),
    };
    let mut body = format!(
        r#"<p class="crumbs"><a href="/applications">Applications</a> / <a href="/applications/{}">{}</a> / diff</p><h1>Diff of {}</h1>"#,
        enc(&name),
        esc(&name),
        esc(&name)
    );
    let differing: Vec<&Value> = items
        .iter()
        .filter(|i| !text(i, "/diff").is_empty())
        .collect();
    if differing.is_empty() {
        body.push_str(r#"<p class="empty">The live objects match Git.</p>"#);
    } else {
        body.push_str(&view_switch(&base, split));
    }
    for i in differing {
        let _ = write!(
            body,
            r#"<section class="diff"><h2>{} {}/{}</h2>"#,
            esc(text(i, "/kind")),
            esc(text(i, "/namespace")),
            esc(text(i, "/name"))
        );
        diff_view(&mut body, text(i, "/diff"), split);
        body.push_str("</section>");
    }
    page(&format!("Diff of {name}"), Some(&user.user), &body).into_response()
}

/// A manifest (a JSON string, as the API gives it) as YAML.
pub(super) fn yaml(manifest: &str) -> String {
    serde_json::from_str::<Value>(manifest)
        .ok()
        .and_then(|v| serde_saphyr::to_string(&v).ok())
        .unwrap_or_else(|| manifest.to_string())
}

/// One resource of an app: its live and desired manifests, the diff, and
/// its events.
pub(super) async fn resource(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(name): Path<String>,
    RawQuery(raw): RawQuery,
) -> Response {
    let here = format!(
        "/applications/{}/resource?{}",
        enc(&name),
        raw.clone().unwrap_or_default()
    );
    let user = match session(&state, &headers, &here) {
        Ok(c) => c,
        Err(r) => return r.into_response(),
    };
    let params = query_pairs(raw.as_deref());
    let get = |k: &str| {
        params
            .iter()
            .find(|(p, _)| p == k)
            .map(|(_, v)| v.clone())
            .unwrap_or_default()
    };
    let (group, kind, namespace, object) = (
        get("group"),
        get("kind"),
        get("namespace"),
        get("resourceName"),
    );
    let filter = format!(
        "group={}&kind={}&namespace={}&name={}",
        enc(&group),
        enc(&kind),
        enc(&namespace),
        enc(&object)
    );
    let managed = match crate::resources::managed(
        State(state.clone()),
        Extension(user.clone()),
        app_ref(&name),
        RawQuery(Some(filter)),
    )
    .await
    {
        Ok(Json(v)) => v,
        Err(e) => return api_error(&user.user, e),
    };
    let Some(item) = managed["items"].as_array().and_then(|i| i.first()).cloned() else {
        return error_page(
            &user.user,
            StatusCode::NOT_FOUND,
            &format!("{kind} {namespace}/{object} is not a resource of {name}"),
        );
    };
    let diff = crate::resources::diff(
        State(state.clone()),
        Extension(user.clone()),
        app_ref(&name),
        RawQuery(None),
    )
    .await
    .ok()
    .and_then(|Json(v)| {
        v["items"].as_array()?.iter().find_map(|i| {
            (text(i, "/kind") == kind
                && text(i, "/name") == object
                && text(i, "/namespace") == namespace)
                .then(|| text(i, "/diff").to_string())
        })
    })
    .unwrap_or_default();
    // By uid: objects of other kinds may share the name.
    let uid = crate::resources::resource(
        State(state.clone()),
        Extension(user.clone()),
        app_ref(&name),
        RawQuery(Some(format!(
            "group={}&kind={}&namespace={}&resourceName={}",
            enc(&group),
            enc(&kind),
            enc(&namespace),
            enc(&object)
        ))),
    )
    .await
    .ok()
    .and_then(|Json(v)| serde_json::from_str::<Value>(text(&v, "/manifest")).ok())
    .and_then(|l| {
        l.pointer("/metadata/uid")
            .and_then(Value::as_str)
            .map(String::from)
    });
    let events = match uid {
        None => Vec::new(),
        Some(uid) => crate::resources::events(
            State(state.clone()),
            Extension(user.clone()),
            app_ref(&name),
            RawQuery(Some(format!(
                "resourceNamespace={}&resourceName={}&resourceUID={}",
                enc(&namespace),
                enc(&object),
                enc(&uid)
            ))),
        )
        .await
        .ok()
        .and_then(|Json(v)| v["items"].as_array().cloned())
        .unwrap_or_default(),
    };
    let title = format!("{kind} {object}");
    let mut body = format!(
        r#"<p class="crumbs"><a href="/applications">Applications</a> / <a href="/applications/{}">{}</a> / {}</p><h1>{}</h1>"#,
        enc(&name),
        esc(&name),
        esc(&title),
        esc(&title)
    );
    if let Some(notice) = params.iter().find(|(k, _)| k == "notice").map(|(_, v)| v) {
        let _ = write!(
            body,
            r#"<p class="notice" role="status">{}</p>"#,
            esc(notice)
        );
    }
    body.push_str(&actions_section(&state, &user, &name, &group, &kind, &namespace, &object).await);
    let live = text(&item, "/liveState");
    let desired = text(&item, "/targetState");
    let show = |s: &str| {
        if s.is_empty() || s == "null" {
            "(none)".to_string()
        } else {
            yaml(s)
        }
    };
    let _ = write!(
        body,
        r#"<section class="manifests"><div><h2>Live</h2><pre id="live">{}</pre></div><div><h2>Desired</h2><pre id="desired">{}</pre></div></section>"#,
        yaml::block(&show(live)),
        yaml::block(&show(desired))
    );
    body.push_str(r#"<section class="diff"><h2>Diff</h2>"#);
    if diff.is_empty() {
        body.push_str("<pre>(no difference)</pre>");
    } else {
        let split = wants_split(raw.as_deref());
        // The page's own address without the view and a notice.
        let base = format!(
            "/applications/{}/resource?{}",
            enc(&name),
            params
                .iter()
                .filter(|(k, _)| k != "view" && k != "notice")
                .map(|(k, v)| format!("{}={}", enc(k), enc(v)))
                .collect::<Vec<_>>()
                .join("&")
        );
        body.push_str(&view_switch(&base, split));
        diff_view(&mut body, &diff, split);
    }
    body.push_str("</section>");
    body.push_str(r#"<section><h2>Events</h2>"#);
    if events.is_empty() {
        body.push_str(r#"<p class="empty">No events.</p>"#);
    } else {
        body.push_str(r#"<table class="events"><thead><tr><th>Type</th><th>Reason</th><th>Message</th><th>Last seen</th></tr></thead><tbody>"#);
        for e in &events {
            let _ = write!(
                body,
                "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
                esc(text(e, "/type")),
                esc(text(e, "/reason")),
                esc(text(e, "/message")),
                esc(text(e, "/lastTimestamp"))
            );
        }
        body.push_str("</tbody></table>");
    }
    body.push_str("</section>");
    page(&title, Some(&user.user), &body).into_response()
}

/// The resource actions this resource offers, as buttons for those the
/// user may run (disabled ones greyed); nothing for kinds without actions.
async fn actions_section(
    state: &AppState,
    user: &Caller,
    name: &str,
    group: &str,
    kind: &str,
    namespace: &str,
    object: &str,
) -> String {
    let reference = app_ref(name);
    let Ok(Json(listed)) = crate::resources::resource_actions(
        State(state.clone()),
        Extension(user.clone()),
        reference.clone(),
        RawQuery(Some(format!(
            "group={}&kind={}&namespace={}&resourceName={}",
            enc(group),
            enc(kind),
            enc(namespace),
            enc(object)
        ))),
    )
    .await
    else {
        return String::new();
    };
    let Ok(app) = crate::apps::fetch(state, &reference).await else {
        return String::new();
    };
    let rbac = crate::apps::rbac_object(state, &app);
    let mut buttons = String::new();
    for a in listed["actions"].as_array().into_iter().flatten() {
        let action = text(a, "/name");
        if state
            .authorize(
                user,
                "applications",
                &format!("action/{group}/{kind}/{action}"),
                &rbac,
            )
            .is_err()
        {
            continue;
        }
        let label = match text(a, "/displayName") {
            "" => action,
            d => d,
        };
        let _ = write!(
            buttons,
            r#"<button name="action" value="{}"{}>{}</button>"#,
            esc(action),
            if a["disabled"] == true {
                " disabled"
            } else {
                ""
            },
            esc(label)
        );
    }
    if buttons.is_empty() {
        return String::new();
    }
    format!(
        r#"<section class="actions" aria-label="resource actions"><form method="post" action="/applications/{}/resource/action?group={}&amp;kind={}&amp;namespace={}&amp;resourceName={}" id="resource-actions">{buttons}</form></section>"#,
        enc(name),
        enc(group),
        enc(kind),
        enc(namespace),
        enc(object)
    )
}

/// Runs a resource action from the resource page's form, then shows the
/// page again with what happened.
pub(super) async fn run_action(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(name): Path<String>,
    RawQuery(raw): RawQuery,
    Form(form): Form<HashMap<String, String>>,
) -> Response {
    let back = format!(
        "/applications/{}/resource?{}",
        enc(&name),
        raw.clone().unwrap_or_default()
    );
    let user = match form_session(&state, &headers, &back) {
        Ok(c) => c,
        Err(r) => return *r,
    };
    let action = form.get("action").cloned().unwrap_or_default();
    match crate::resources::run_resource_action(
        State(state.clone()),
        Extension(user.clone()),
        app_ref(&name),
        RawQuery(raw),
        Some(Json(json!(action))),
    )
    .await
    {
        Ok(_) => Redirect::to(&format!(
            "{back}&notice={}",
            enc(&format!("{action}: done"))
        ))
        .into_response(),
        Err(e) => api_error(&user.user, e),
    }
}
