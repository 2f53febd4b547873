//! The applications list: tiles or a compact table, filters kept in the
//! URL, counts over every app the user may see, pages of 100.

use axum::extract::{RawQuery, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{Html, IntoResponse, Response};
use axum::{Extension, Json};
use serde_json::Value;
use std::fmt::Write as _;

use super::*;

/// The list's filters, kept in the URL.
pub(super) const FILTERS: [&str; 7] = [
    "search",
    "project",
    "cluster",
    "namespace",
    "sync",
    "health",
    "selector",
];

pub(super) async fn applications(
    State(state): State<AppState>,
    headers: HeaderMap,
    RawQuery(raw): RawQuery,
) -> Response {
    let here = format!("/applications?{}", raw.clone().unwrap_or_default());
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
    let tiles = get("view") == "tiles";
    // The API's list, with its RBAC and filters, a page of 100.
    let mut query: Vec<String> = FILTERS
        .iter()
        .filter(|f| !get(f).is_empty())
        .map(|f| format!("{f}={}", enc(&get(f))))
        .collect();
    query.push("limit=100".into());
    if !get("continue").is_empty() {
        query.push(format!("continue={}", enc(&get("continue"))));
    }
    let listed = crate::apps::list(
        State(state.clone()),
        Extension(user.clone()),
        RawQuery(Some(query.join("&"))),
    )
    .await;
    let listed = match listed {
        Ok(Json(v)) => v,
        Err(e) => return api_error(&user.user, e),
    };
    let items = listed["items"].as_array().cloned().unwrap_or_default();
    let mut body = String::from("<h1>Applications</h1>");
    if !get("notice").is_empty() {
        let _ = write!(
            body,
            r#"<p class="notice" role="status">{}</p>"#,
            esc(&get("notice"))
        );
    }
    let _ = write!(
        body,
        r#"<p class="counts" id="counts" aria-label="counts">{}</p>"#,
        counts(&state, &user)
    );
    let select = |name: &str, label: &str, options: &[&str]| {
        let mut s =
            format!(r#"<label>{label} <select name="{name}"><option value="">any</option>"#);
        for o in options {
            let selected = if get(name) == *o { " selected" } else { "" };
            let _ = write!(s, r#"<option{selected}>{o}</option>"#);
        }
        s.push_str("</select></label>");
        s
    };
    let _ = write!(
        body,
        r#"<form method="get" action="/applications" class="filters" role="search"><label>Name <input name="search" value="{}" placeholder="name contains"></label><label>Project <input name="project" value="{}"></label><label>Cluster <input name="cluster" value="{}" placeholder="server URL or name"></label><label>Namespace <input name="namespace" value="{}" placeholder="destination"></label><label>Labels <input name="selector" value="{}" placeholder="env=prod"></label>{}{}<input type="hidden" name="view" value="{}"><button type="submit">Filter</button> <a href="/applications">Clear</a></form>"#,
        esc(&get("search")),
        esc(&get("project")),
        esc(&get("cluster")),
        esc(&get("namespace")),
        esc(&get("selector")),
        select("sync", "Sync", &["Synced", "OutOfSync", "Unknown"]),
        select(
            "health",
            "Health",
            &[
                "Healthy",
                "Progressing",
                "Degraded",
                "Suspended",
                "Missing",
                "Unknown"
            ]
        ),
        if tiles { "tiles" } else { "list" },
    );
    let others: Vec<String> = FILTERS
        .iter()
        .filter(|f| !get(f).is_empty())
        .map(|f| format!("{f}={}", enc(&get(f))))
        .collect();
    let switch = |view: &str| {
        let mut q = others.clone();
        q.push(format!("view={view}"));
        format!("/applications?{}", q.join("&"))
    };
    let _ = write!(
        body,
        r#"<p class="views">View: <a href="{}"{}>list</a> · <a href="{}"{}>tiles</a></p>"#,
        esc(&switch("list")),
        if tiles { "" } else { r#" aria-current="page""# },
        esc(&switch("tiles")),
        if tiles { r#" aria-current="page""# } else { "" },
    );
    // Live updates of the rows shown (and the counts), from the event
    // stream cut down to what a list shows.
    let mut stream = String::from("/api/v1/stream/applications?fields=summary");
    for a in &items {
        let _ = write!(stream, "&name={}", enc(text(a, "/metadata/name")));
    }
    if items.is_empty() {
        body.push_str(r#"<div id="list">"#);
    } else {
        let _ = write!(body, r#"<div id="list" data-stream="{}">"#, esc(&stream));
    }
    if items.is_empty() {
        body.push_str(r#"<p class="empty">No application matches.</p>"#);
    } else if tiles {
        body.push_str(r#"<ul class="tiles">"#);
        for a in &items {
            let name = crate::apps::display_name(&state, a);
            let _ = write!(
                body,
                r#"<li class="tile" data-app="{}" data-key="{}"><a href="/applications/{}"><strong>{}</strong></a><span>{} {}</span><small>{} · {}</small></li>"#,
                esc(&name),
                esc(&format!(
                    "{}/{}",
                    text(a, "/metadata/namespace"),
                    text(a, "/metadata/name")
                )),
                enc(&name),
                esc(&name),
                badge("sync", text(a, "/status/sync/status")),
                badge("health", text(a, "/status/health/status")),
                esc(text(a, "/spec/project")),
                esc(text(a, "/spec/destination/namespace")),
            );
        }
        body.push_str("</ul>");
    } else {
        body.push_str(r#"<table class="apps"><thead><tr><th>Name</th><th>Project</th><th>Sync</th><th>Health</th><th>Destination</th><th>Repository</th></tr></thead><tbody>"#);
        for a in &items {
            let name = crate::apps::display_name(&state, a);
            let _ = write!(
                body,
                r#"<tr data-app="{}" data-key="{}"><td><a href="/applications/{}">{}</a></td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>"#,
                esc(&name),
                esc(&format!(
                    "{}/{}",
                    text(a, "/metadata/namespace"),
                    text(a, "/metadata/name")
                )),
                enc(&name),
                esc(&name),
                esc(text(a, "/spec/project")),
                badge("sync", text(a, "/status/sync/status")),
                badge("health", text(a, "/status/health/status")),
                esc(text(a, "/spec/destination/namespace")),
                esc(text(a, "/spec/source/repoURL")),
            );
        }
        body.push_str("</tbody></table>");
    }
    body.push_str("</div>");
    if let Some(next) = listed.pointer("/metadata/continue").and_then(Value::as_str) {
        let mut q = others.clone();
        q.push(format!("continue={}", enc(next)));
        if tiles {
            q.push("view=tiles".into());
        }
        let _ = write!(
            body,
            r#"<p class="more"><a href="/applications?{}" rel="next">Next page ({} more)</a></p>"#,
            esc(&q.join("&")),
            listed
                .pointer("/metadata/remainingItemCount")
                .cloned()
                .unwrap_or_default()
        );
    }
    page("Applications", Some(&user.user), &body).into_response()
}

/// The sync and health counts over every app the user may see, each a
/// link to the list filtered by it.
fn counts(state: &AppState, user: &Caller) -> String {
    let policy = state.policy();
    let (mut sync_counts, mut health_counts) = (
        std::collections::BTreeMap::<String, usize>::new(),
        std::collections::BTreeMap::<String, usize>::new(),
    );
    for a in state.store.state() {
        if !policy.allows(
            &user.user,
            &user.groups,
            "applications",
            "get",
            &crate::apps::rbac_object(state, &a),
        ) {
            continue;
        }
        let t = |p: &str| {
            a.data
                .pointer(p)
                .and_then(Value::as_str)
                .unwrap_or("Unknown")
                .to_string()
        };
        *sync_counts.entry(t("/status/sync/status")).or_default() += 1;
        *health_counts.entry(t("/status/health/status")).or_default() += 1;
    }
    let mut out = String::new();
    for (k, n) in &sync_counts {
        let _ = write!(
            out,
            r#"<a href="/applications?sync={}">{} {n}</a> "#,
            enc(k),
            badge("sync", k)
        );
    }
    for (k, n) in &health_counts {
        let _ = write!(
            out,
            r#"<a href="/applications?health={}">{} {n}</a> "#,
            enc(k),
            badge("health", k)
        );
    }
    out
}

/// `/ui/counts`: the counts alone, for the list page's live updates.
pub(super) async fn counts_fragment(State(state): State<AppState>, headers: HeaderMap) -> Response {
    match caller(&state, &headers) {
        Some(user) => Html(counts(&state, &user)).into_response(),
        None => StatusCode::UNAUTHORIZED.into_response(),
    }
}
