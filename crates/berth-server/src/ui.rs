//! The web UI: pages rendered on the server from the same handlers the
//! REST API uses (so RBAC, masking and errors are the API's), plain forms
//! for every action, and a few lines of script for live status. No
//! front-end build step and no third-party front-end code: `cargo build`
//! alone serves it. Sessions are the API's `argocd.token` cookie
//! (`SameSite=Lax`; forms also check `Origin`).

use axum::extract::{Form, Path, RawQuery, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::{Extension, Json, Router};
use serde_json::{Value, json};
use std::collections::HashMap;
use std::fmt::Write as _;

use crate::apps::{AppRef, query_pairs};
use crate::error::ApiError;
use crate::{AppState, Caller};

/// The UI's routes, outside the API's authentication layer: a page
/// without a session redirects to the login page.
pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/", get(|| async { Redirect::to("/applications") }))
        .route("/login", get(login_page).post(login))
        .route("/logout", post(logout))
        .route("/applications", get(applications))
        .route("/applications/{name}", get(application))
        .route("/applications/{name}/diff", get(diff))
        .route("/applications/{name}/sync", post(sync))
        .route("/applications/{name}/refresh", post(refresh))
        .route("/applications/{name}/rollback", post(rollback))
        .route("/applications/{name}/delete", post(delete))
        .route("/applications/{name}/resource", get(resource))
        .route(
            "/applications/{name}/approvals/{request}",
            get(request_page).post(decide),
        )
        .route("/ui/style.css", get(style))
        .route("/ui/live.js", get(script))
}

/// Text for HTML: `&`, `<`, `>`, `"` and `'` escaped.
fn esc(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// A URL path segment or query value.
fn enc(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

fn text<'a>(v: &'a Value, pointer: &str) -> &'a str {
    v.pointer(pointer)
        .and_then(Value::as_str)
        .unwrap_or_default()
}

/// The session's caller, from the API's cookie.
fn caller(state: &AppState, headers: &HeaderMap) -> Option<Caller> {
    let token = headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .find_map(|c| c.trim().strip_prefix("argocd.token="))?
        .to_string();
    let claims = state
        .auth
        .verify_user(&token)
        .and_then(|c| crate::projects::check_role_token(state, c))
        .ok()?;
    Some(Caller {
        user: claims.sub,
        groups: claims.groups,
    })
}

/// A page for a session, or the login page's address.
fn session(state: &AppState, headers: &HeaderMap, here: &str) -> Result<Caller, Redirect> {
    caller(state, headers).ok_or_else(|| Redirect::to(&format!("/login?next={}", enc(here))))
}

/// Where to go after logging in: a path on this server only (browsers
/// read `//host` and `/\host` as another site).
fn local_path(next: &str) -> String {
    if next.starts_with('/') && !next.starts_with("//") && !next.contains('\\') {
        next.to_string()
    } else {
        "/applications".into()
    }
}

/// A unified diff as lines classed for highlighting.
fn diff_lines(body: &mut String, diff: &str) {
    for line in diff.lines() {
        let class = match line.as_bytes().first() {
            Some(b'+') if !line.starts_with("+++") => "add",
            Some(b'-') if !line.starts_with("---") => "del",
            Some(b'@') => "hunk",
            _ => "ctx",
        };
        let _ = writeln!(body, r#"<span class="{class}">{}</span>"#, esc(line));
    }
}

/// A form's sender: refused from another site, sent to log in without a
/// session.
fn form_session(
    state: &AppState,
    headers: &HeaderMap,
    here: &str,
) -> Result<Caller, Box<Response>> {
    if !same_origin(headers) {
        return Err(Box::new(
            (StatusCode::FORBIDDEN, "cross-site form refused").into_response(),
        ));
    }
    session(state, headers, here).map_err(|r| Box::new(r.into_response()))
}

/// Forms are refused when another site sent them.
fn same_origin(headers: &HeaderMap) -> bool {
    let Some(origin) = headers.get(header::ORIGIN).and_then(|v| v.to_str().ok()) else {
        return true;
    };
    let host = headers
        .get(header::HOST)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    origin
        .split_once("://")
        .is_some_and(|(_, rest)| rest.trim_end_matches('/') == host)
}

fn page(title: &str, user: Option<&str>, body: &str) -> Html<String> {
    let nav = match user {
        Some(u) => format!(
            r#"<nav><a href="/applications" class="brand">Berth</a><span class="who">{}</span><form method="post" action="/logout"><button>Log out</button></form></nav>"#,
            esc(u)
        ),
        None => r#"<nav><span class="brand">Berth</span></nav>"#.to_string(),
    };
    Html(format!(
        r#"<!doctype html><html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1"><title>{} · Berth</title><link rel="stylesheet" href="/ui/style.css"></head><body>{nav}<main>{body}</main><script src="/ui/live.js" defer></script></body></html>"#,
        esc(title)
    ))
}

fn error_page(user: &str, status: StatusCode, message: &str) -> Response {
    (
        status,
        page(
            "Error",
            Some(user),
            &format!(
                r#"<h1>Something went wrong</h1><p class="error" role="alert">{}</p><p><a href="/applications">Back to the applications</a></p>"#,
                esc(message)
            ),
        ),
    )
        .into_response()
}

fn api_error(user: &str, e: ApiError) -> Response {
    error_page(user, e.status, &e.message)
}

fn badge(kind: &str, value: &str) -> String {
    let value = if value.is_empty() { "Unknown" } else { value };
    format!(
        r#"<span class="badge {kind}-{}">{}</span>"#,
        esc(&value.to_lowercase()),
        esc(value)
    )
}

async fn login_page(RawQuery(raw): RawQuery) -> Html<String> {
    let next = query_pairs(raw.as_deref())
        .into_iter()
        .find(|(k, _)| k == "next")
        .map(|(_, v)| v)
        .unwrap_or_default();
    login_form(&next, "")
}

fn login_form(next: &str, error: &str) -> Html<String> {
    let error = if error.is_empty() {
        String::new()
    } else {
        format!(r#"<p class="error" role="alert">{}</p>"#, esc(error))
    };
    page(
        "Log in",
        None,
        &format!(
            r#"<h1>Log in</h1>{error}<form method="post" action="/login" class="login"><input type="hidden" name="next" value="{}"><label>User name <input name="username" autocomplete="username" required autofocus></label><label>Password <input name="password" type="password" autocomplete="current-password" required></label><button type="submit">Log in</button></form><p><a href="/auth/login">Log in with single sign-on</a></p>"#,
            esc(next)
        ),
    )
}

async fn login(
    State(state): State<AppState>,
    headers: HeaderMap,
    Form(form): Form<HashMap<String, String>>,
) -> Response {
    if !same_origin(&headers) {
        return (StatusCode::FORBIDDEN, "cross-site form refused").into_response();
    }
    let field = |k: &str| form.get(k).cloned().unwrap_or_default();
    let next = field("next");
    let next = local_path(&next);
    match state
        .auth
        .login(&field("username"), &field("password"))
        .await
    {
        Ok(token) => {
            tracing::info!(user = %field("username"), "login (web UI)");
            let cookie = format!(
                "argocd.token={token}; Path=/; HttpOnly; SameSite=Lax; Max-Age={}",
                crate::auth::SESSION.as_secs()
            );
            ([(header::SET_COOKIE, cookie)], Redirect::to(&next)).into_response()
        }
        Err(e) => (e.status, login_form(&next, &e.message)).into_response(),
    }
}

async fn logout() -> Response {
    (
        [(
            header::SET_COOKIE,
            "argocd.token=; Path=/; HttpOnly; SameSite=Lax; Max-Age=0".to_string(),
        )],
        Redirect::to("/login"),
    )
        .into_response()
}

/// The list's filters, kept in the URL.
const FILTERS: [&str; 5] = ["search", "project", "sync", "health", "selector"];

async fn applications(
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
    // Counts over everything the user may see.
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
            &crate::apps::rbac_object(&state, &a),
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
    let mut body = String::from("<h1>Applications</h1>");
    if !get("notice").is_empty() {
        let _ = write!(
            body,
            r#"<p class="notice" role="status">{}</p>"#,
            esc(&get("notice"))
        );
    }
    let _ = write!(body, r#"<p class="counts" aria-label="counts">"#);
    for (k, n) in &sync_counts {
        let _ = write!(
            body,
            r#"<a href="/applications?sync={}">{} {n}</a> "#,
            enc(k),
            badge("sync", k)
        );
    }
    for (k, n) in &health_counts {
        let _ = write!(
            body,
            r#"<a href="/applications?health={}">{} {n}</a> "#,
            enc(k),
            badge("health", k)
        );
    }
    body.push_str("</p>");
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
        r#"<form method="get" action="/applications" class="filters" role="search"><label>Name <input name="search" value="{}" placeholder="name contains"></label><label>Project <input name="project" value="{}"></label><label>Labels <input name="selector" value="{}" placeholder="env=prod"></label>{}{}<input type="hidden" name="view" value="{}"><button type="submit">Filter</button> <a href="/applications">Clear</a></form>"#,
        esc(&get("search")),
        esc(&get("project")),
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
    if items.is_empty() {
        body.push_str(r#"<p class="empty">No application matches.</p>"#);
    } else if tiles {
        body.push_str(r#"<ul class="tiles">"#);
        for a in &items {
            let name = crate::apps::display_name(&state, a);
            let _ = write!(
                body,
                r#"<li class="tile" data-app="{}"><a href="/applications/{}"><strong>{}</strong></a><span>{} {}</span><small>{} · {}</small></li>"#,
                esc(&name),
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
                r#"<tr data-app="{}"><td><a href="/applications/{}">{}</a></td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>"#,
                esc(&name),
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

fn app_ref(name: &str) -> AppRef {
    match name.split_once('/') {
        Some((ns, n)) => AppRef {
            name: n.to_string(),
            namespace: Some(ns.to_string()),
        },
        None => AppRef {
            name: name.to_string(),
            namespace: None,
        },
    }
}

async fn application(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(name): Path<String>,
    RawQuery(raw): RawQuery,
) -> Response {
    let user = match session(&state, &headers, &format!("/applications/{}", enc(&name))) {
        Ok(c) => c,
        Err(r) => return r.into_response(),
    };
    let reference = app_ref(&name);
    let app = match crate::apps::fetch(&state, &reference).await {
        Ok(a) => a,
        Err(e) => return api_error(&user.user, e),
    };
    let object = crate::apps::rbac_object(&state, &app);
    if let Err(e) = state.authorize(&user, "applications", "get", &object) {
        return api_error(&user.user, e);
    }
    let may_sync = state
        .authorize(&user, "applications", "sync", &object)
        .is_ok();
    let a = crate::apps::render(&app);
    let notice = query_pairs(raw.as_deref())
        .into_iter()
        .find(|(k, _)| k == "notice")
        .map(|(_, v)| format!(r#"<p class="notice" role="status">{}</p>"#, esc(&v)))
        .unwrap_or_default();
    let mut body = format!(
        r#"<p class="crumbs"><a href="/applications">Applications</a> / {}</p><h1>{}</h1>{notice}"#,
        esc(&name),
        esc(&name)
    );
    let op = &a["status"]["operationState"];
    let _ = write!(
        body,
        r#"<section class="summary" data-live="/api/v1/applications/{}{}"><dl>
<dt>Sync</dt><dd id="sync-status" data-field="status.sync.status">{}</dd>
<dt>Health</dt><dd id="health-status" data-field="status.health.status">{}</dd>
<dt>Operation</dt><dd><span id="op-phase" data-field="status.operationState.phase">{}</span> <span id="op-message" data-field="status.operationState.message">{}</span></dd>
<dt>Project</dt><dd>{}</dd>
<dt>Repository</dt><dd>{}</dd>
<dt>Path</dt><dd>{}</dd>
<dt>Target revision</dt><dd>{}</dd>
<dt>Synced revision</dt><dd><code>{}</code></dd>
<dt>Destination</dt><dd>{} {}</dd>
<dt>Sync policy</dt><dd>{}</dd>
</dl></section>"#,
        enc(&reference.name),
        reference
            .namespace
            .as_ref()
            .map(|ns| format!("?appNamespace={}", enc(ns)))
            .unwrap_or_default(),
        esc(text(&a, "/status/sync/status")),
        esc(text(&a, "/status/health/status")),
        esc(text(op, "/phase")),
        esc(text(op, "/message")),
        esc(text(&a, "/spec/project")),
        esc(text(&a, "/spec/source/repoURL")),
        esc(text(&a, "/spec/source/path")),
        esc(text(&a, "/spec/source/targetRevision")),
        esc(text(&a, "/status/sync/revision")),
        esc(text(&a, "/spec/destination/server")),
        esc(text(&a, "/spec/destination/namespace")),
        if a.pointer("/spec/syncPolicy/automated").is_some() {
            "automated"
        } else {
            "manual"
        },
    );
    if let Some(conditions) = a["status"]["conditions"]
        .as_array()
        .filter(|c| !c.is_empty())
    {
        body.push_str(r#"<section><h2>Conditions</h2><ul class="conditions">"#);
        for c in conditions {
            let _ = write!(
                body,
                "<li><strong>{}</strong> {}</li>",
                esc(text(c, "/type")),
                esc(text(c, "/message"))
            );
        }
        body.push_str("</ul></section>");
    }
    let _ = write!(
        body,
        r#"<section class="actions"><a class="button" href="/applications/{}/diff">Diff</a>"#,
        enc(&name)
    );
    let _ = write!(
        body,
        r#"<form method="post" action="/applications/{}/refresh"><button name="kind" value="normal">Refresh</button><button name="kind" value="hard">Hard refresh</button></form>"#,
        enc(&name)
    );
    if may_sync {
        // Resources to sync (none ticked: all), and Argo CD's options.
        let mut choices = String::new();
        for r in a["status"]["resources"].as_array().into_iter().flatten() {
            let value = format!(
                "{}:{}:{}:{}",
                text(r, "/group"),
                text(r, "/kind"),
                text(r, "/namespace"),
                text(r, "/name")
            );
            let _ = write!(
                choices,
                r#"<label class="choice"><input type="checkbox" name="resource" value="{}"> {} {} <small>{}</small></label>"#,
                esc(&value),
                esc(text(r, "/kind")),
                esc(text(r, "/name")),
                esc(text(r, "/status"))
            );
        }
        let mut options = String::new();
        for o in [
            "ApplyOutOfSyncOnly=true",
            "CreateNamespace=true",
            "ServerSideApply=true",
            "Replace=true",
            "PruneLast=true",
        ] {
            let _ = write!(
                options,
                r#"<label class="choice"><input type="checkbox" name="option" value="{o}"> {o}</label>"#
            );
        }
        let _ = write!(
            body,
            r#"<form method="post" action="/applications/{}/sync" class="sync"><label><input type="checkbox" name="prune" value="true"> Prune</label><label><input type="checkbox" name="dryRun" value="true"> Dry run</label><label>Revision <input name="revision" placeholder="{}"></label><details><summary>Resources and options</summary><fieldset><legend>Only these resources</legend>{choices}</fieldset><fieldset><legend>Sync options</legend>{options}</fieldset></details><button type="submit" id="sync">Sync</button></form>"#,
            enc(&name),
            esc(text(&a, "/spec/source/targetRevision"))
        );
    }
    body.push_str("</section>");
    // The resource tree, as the API builds it.
    let tree = crate::resources::tree(
        State(state.clone()),
        Extension(user.clone()),
        reference.clone(),
    )
    .await;
    body.push_str(r#"<section><h2>Resources</h2>"#);
    match tree {
        Ok(Json(t)) => {
            // The app's resources (those not created yet too), each with
            // what it owns in the cluster.
            let nodes = t["nodes"].as_array().cloned().unwrap_or_default();
            body.push_str(r#"<ul class="tree">"#);
            for r in a["status"]["resources"].as_array().into_iter().flatten() {
                let same = |n: &&Value| {
                    text(n, "/kind") == text(r, "/kind")
                        && text(n, "/name") == text(r, "/name")
                        && text(n, "/namespace") == text(r, "/namespace")
                };
                let link = format!(
                    "/applications/{}/resource?group={}&kind={}&namespace={}&resourceName={}",
                    enc(&name),
                    enc(text(r, "/group")),
                    enc(text(r, "/kind")),
                    enc(text(r, "/namespace")),
                    enc(text(r, "/name"))
                );
                let _ = write!(
                    body,
                    r#"<li><span class="kind">{}</span> <a href="{}">{}</a> {} {}"#,
                    esc(text(r, "/kind")),
                    esc(&link),
                    esc(text(r, "/name")),
                    badge("sync", text(r, "/status")),
                    badge("health", text(r, "/health/status")),
                );
                if let Some(live) = nodes.iter().find(same) {
                    children(&mut body, live, &nodes, 0);
                }
                body.push_str("</li>");
            }
            body.push_str("</ul>");
        }
        Err(e) => {
            let _ = write!(body, r#"<p class="error">{}</p>"#, esc(&e.message));
        }
    }
    body.push_str("</section>");
    approvals_section(&state, &user, &reference, &name, &mut body).await;
    if let Some(history) = a["status"]["history"].as_array().filter(|h| !h.is_empty()) {
        body.push_str(r#"<section><h2>History</h2><table class="history"><thead><tr><th>ID</th><th>Revision</th><th>Deployed</th><th>By</th><th></th></tr></thead><tbody>"#);
        for h in history.iter().rev() {
            let by = match text(h, "/initiatedBy/username") {
                "" => "automated",
                u => u,
            };
            let rollback = if may_sync {
                format!(
                    r#"<form method="post" action="/applications/{}/rollback"><input type="hidden" name="id" value="{}"><button>Roll back</button></form>"#,
                    enc(&name),
                    esc(&h["id"].to_string())
                )
            } else {
                String::new()
            };
            let _ = write!(
                body,
                "<tr><td>{}</td><td><code>{}</code></td><td>{}</td><td>{}</td><td>{rollback}</td></tr>",
                esc(&h["id"].to_string()),
                esc(&text(h, "/revision").chars().take(12).collect::<String>()),
                esc(text(h, "/deployedAt")),
                esc(by)
            );
        }
        body.push_str("</tbody></table></section>");
    }
    if state
        .authorize(&user, "applications", "delete", &object)
        .is_ok()
    {
        let _ = write!(
            body,
            r#"<section class="danger"><h2>Delete</h2><form method="post" action="/applications/{}/delete" class="sync"><label>Type the name to confirm <input name="confirm" autocomplete="off" required></label><label><input type="checkbox" name="cascade" value="true" checked> Delete its resources too</label><button type="submit">Delete</button></form></section>"#,
            enc(&name)
        );
    }
    page(&name, Some(&user.user), &body).into_response()
}

/// What `node` owns (ReplicaSets of a Deployment, their Pods), nested.
fn children(body: &mut String, node: &Value, all: &[Value], depth: usize) {
    let uid = text(node, "/uid");
    if depth > 8 || uid.is_empty() {
        return;
    }
    let owned: Vec<&Value> = all
        .iter()
        .filter(|n| {
            n["parentRefs"]
                .as_array()
                .is_some_and(|p| p.iter().any(|r| text(r, "/uid") == uid))
        })
        .collect();
    if owned.is_empty() {
        return;
    }
    body.push_str("<ul>");
    for c in owned {
        let _ = write!(
            body,
            r#"<li><span class="kind">{}</span> {} {}"#,
            esc(text(c, "/kind")),
            esc(text(c, "/name")),
            badge("health", text(c, "/health/status"))
        );
        children(body, c, all, depth + 1);
        body.push_str("</li>");
    }
    body.push_str("</ul>");
}

async fn diff(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(name): Path<String>,
) -> Response {
    let user = match session(
        &state,
        &headers,
        &format!("/applications/{}/diff", enc(&name)),
    ) {
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
    }
    for i in differing {
        let _ = write!(
            body,
            r#"<section class="diff"><h2>{} {}/{}</h2><pre>"#,
            esc(text(i, "/kind")),
            esc(text(i, "/namespace")),
            esc(text(i, "/name"))
        );
        diff_lines(&mut body, text(i, "/diff"));
        body.push_str("</pre></section>");
    }
    page(&format!("Diff of {name}"), Some(&user.user), &body).into_response()
}

async fn sync(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(name): Path<String>,
    Form(fields): Form<Vec<(String, String)>>,
) -> Response {
    // Repeated fields (resources, options) as lists.
    let all = |k: &str| -> Vec<String> {
        fields
            .iter()
            .filter(|(f, _)| f == k)
            .map(|(_, v)| v.clone())
            .collect()
    };
    let form: HashMap<String, String> = fields.iter().cloned().collect();
    let user = match form_session(&state, &headers, &format!("/applications/{}", enc(&name))) {
        Ok(c) => c,
        Err(r) => return *r,
    };
    let flag = |k: &str| form.get(k).is_some_and(|v| v == "true");
    let mut body = json!({"prune": flag("prune"), "dryRun": flag("dryRun")});
    if let Some(r) = form.get("revision").filter(|r| !r.trim().is_empty()) {
        body["revision"] = json!(r.trim());
    }
    let resources: Vec<Value> = all("resource")
        .iter()
        .filter_map(|r| {
            let mut parts = r.splitn(4, ':');
            let (group, kind, namespace, name) =
                (parts.next()?, parts.next()?, parts.next()?, parts.next()?);
            Some(json!({"group": group, "kind": kind, "namespace": namespace, "name": name}))
        })
        .collect();
    if !resources.is_empty() {
        body["resources"] = json!(resources);
    }
    let options = all("option");
    if !options.is_empty() {
        body["syncOptions"] = json!({"items": options});
    }
    match crate::apps::sync(
        State(state.clone()),
        Extension(user.clone()),
        app_ref(&name),
        Some(Json(body)),
    )
    .await
    {
        Ok(Json(a)) => {
            let gated = a["operation"]["info"].as_array().is_some_and(|i| {
                i.iter()
                    .any(|e| e["name"] == "berth.io/gated" && e["value"] == "true")
            });
            let notice = if gated {
                "Sync requested: it waits for approval"
            } else {
                "Sync requested"
            };
            Redirect::to(&format!(
                "/applications/{}?notice={}",
                enc(&name),
                enc(notice)
            ))
            .into_response()
        }
        Err(e) => api_error(&user.user, e),
    }
}

async fn refresh(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(name): Path<String>,
    Form(form): Form<HashMap<String, String>>,
) -> Response {
    let user = match form_session(&state, &headers, &format!("/applications/{}", enc(&name))) {
        Ok(c) => c,
        Err(r) => return *r,
    };
    let kind = if form.get("kind").is_some_and(|k| k == "hard") {
        "hard"
    } else {
        "normal"
    };
    match crate::apps::get_app(
        State(state.clone()),
        Extension(user.clone()),
        app_ref(&name),
        RawQuery(Some(format!("refresh={kind}"))),
    )
    .await
    {
        Ok(_) => Redirect::to(&format!(
            "/applications/{}?notice={}",
            enc(&name),
            enc(&format!("{kind} refresh requested"))
        ))
        .into_response(),
        Err(e) => api_error(&user.user, e),
    }
}

/// The sync requests of a gated app: the newest ten with where each
/// stands, and the app's audit trail.
async fn approvals_section(
    state: &AppState,
    user: &Caller,
    reference: &AppRef,
    name: &str,
    body: &mut String,
) {
    let Ok(Json(list)) = crate::approvals::list(
        State(state.clone()),
        Extension(user.clone()),
        reference.clone(),
    )
    .await
    else {
        return;
    };
    let Some(requirement) = list["requirement"].as_object() else {
        return;
    };
    let gates: Vec<&str> = requirement
        .get("gates")
        .and_then(Value::as_array)
        .map(|g| g.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    let _ = write!(
        body,
        r#"<section class="approvals"><h2>Approvals</h2><p>Syncs need {} approval(s): {}.</p>"#,
        requirement.get("required").cloned().unwrap_or_default(),
        esc(&gates.join(", "))
    );
    let items = list["items"].as_array().cloned().unwrap_or_default();
    if items.is_empty() {
        body.push_str(r#"<p class="empty">No sync requests yet.</p>"#);
    } else {
        body.push_str(r#"<table class="requests"><thead><tr><th>Request</th><th>State</th><th>Approvals</th><th>Requester</th><th>Revision</th><th>Changes</th><th>Expires</th></tr></thead><tbody>"#);
        for r in items.iter().take(10) {
            let id = text(r, "/metadata/name");
            let verdict = &r["status"]["verdict"];
            let phase = match text(r, "/status/phase") {
                "" => text(verdict, "/state"),
                p => p,
            };
            let approvals = match (verdict.get("approvals"), verdict.get("required")) {
                (Some(h), Some(n)) => format!("{h} of {n}"),
                _ => verdict
                    .get("approvers")
                    .and_then(Value::as_array)
                    .map(|a| {
                        a.iter()
                            .filter_map(Value::as_str)
                            .collect::<Vec<_>>()
                            .join(", ")
                    })
                    .unwrap_or_default(),
            };
            let summary = &r["spec"]["summary"];
            let _ = write!(
                body,
                r#"<tr data-request="{}"><td><a href="/applications/{}/approvals/{}">{}</a></td><td class="phase">{}</td><td>{}</td><td>{}</td><td><code>{}</code></td><td>+{} ~{} -{}</td><td>{}</td></tr>"#,
                esc(id),
                enc(name),
                enc(id),
                esc(id),
                esc(phase),
                esc(&approvals),
                esc(text(r, "/spec/requester/username")),
                esc(&r["spec"]["binding"]["revisions"][0]
                    .as_str()
                    .unwrap_or_default()
                    .chars()
                    .take(12)
                    .collect::<String>()),
                summary["create"],
                summary["update"],
                summary["prune"],
                esc(text(r, "/spec/expiresAt")),
            );
        }
        body.push_str("</tbody></table>");
    }
    body.push_str("</section>");
    // The audit trail: the app's API calls and approval events.
    if let Ok(Json(audit)) = crate::audit::list(
        State(state.clone()),
        Extension(user.clone()),
        RawQuery(Some(format!(
            "application={}&limit=20",
            enc(&reference.name)
        ))),
    )
    .await
    {
        let entries = audit["items"].as_array().cloned().unwrap_or_default();
        if !entries.is_empty() {
            body.push_str(r#"<section><h2>Audit trail</h2><table class="audit"><thead><tr><th>Time</th><th>Who</th><th>What</th></tr></thead><tbody>"#);
            for e in &entries {
                let what = match text(e, "/action") {
                    "" => format!(
                        "{} {} → {}",
                        text(e, "/method"),
                        text(e, "/path"),
                        e["status"]
                    ),
                    action => format!("{action}: {}", text(e, "/message")),
                };
                let _ = write!(
                    body,
                    "<tr><td>{}</td><td>{}</td><td>{}</td></tr>",
                    esc(text(e, "/time")),
                    esc(text(e, "/user")),
                    esc(&what)
                );
            }
            body.push_str("</tbody></table></section>");
        }
    }
}

/// One sync request: what it would change, the decisions so far, and
/// the approve and reject forms for users who may decide.
async fn request_page(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path((name, request)): Path<(String, String)>,
) -> Response {
    let here = format!("/applications/{}/approvals/{}", enc(&name), enc(&request));
    let user = match session(&state, &headers, &here) {
        Ok(c) => c,
        Err(r) => return r.into_response(),
    };
    let params: HashMap<String, String> = [
        ("name".to_string(), name.clone()),
        ("request".to_string(), request.clone()),
    ]
    .into();
    let r = match crate::approvals::get(
        State(state.clone()),
        Extension(user.clone()),
        app_ref(&name),
        Path(params),
    )
    .await
    {
        Ok(Json(v)) => v,
        Err(e) => return api_error(&user.user, e),
    };
    let reference = app_ref(&name);
    let may_decide = match crate::apps::fetch(&state, &reference).await {
        Ok(app) => state
            .authorize(
                &user,
                "applications",
                "approve",
                &crate::apps::rbac_object(&state, &app),
            )
            .is_ok(),
        Err(_) => false,
    };
    let verdict = &r["status"]["verdict"];
    let state_text = match text(verdict, "/state") {
        "Pending" => format!(
            "Pending: {} of {} approvals",
            verdict["approvals"], verdict["required"]
        ),
        "Approved" => format!(
            "Approved by {}",
            verdict["approvers"]
                .as_array()
                .map(|a| a
                    .iter()
                    .filter_map(Value::as_str)
                    .collect::<Vec<_>>()
                    .join(", "))
                .unwrap_or_default()
        ),
        s => s.to_string(),
    };
    let mut body = format!(
        r#"<p class="crumbs"><a href="/applications">Applications</a> / <a href="/applications/{}">{}</a> / request</p><h1>Sync request {}</h1><p id="request-state" class="notice">{}</p><p>Phase: <strong id="request-phase">{}</strong>. Requested by {}{} for revision <code>{}</code>; expires {}.</p>"#,
        enc(&name),
        esc(&name),
        esc(&request),
        esc(&state_text),
        esc(text(&r, "/status/phase")),
        esc(text(&r, "/spec/requester/username")),
        if r.pointer("/spec/requester/verified") == Some(&json!(false)) {
            " (unverified)"
        } else {
            ""
        },
        esc(r["spec"]["binding"]["revisions"][0]
            .as_str()
            .unwrap_or_default()),
        esc(text(&r, "/spec/expiresAt")),
    );
    let decisions = r["status"]["approvals"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    if !decisions.is_empty() {
        body.push_str(r#"<h2>Decisions</h2><ul class="decisions">"#);
        for d in &decisions {
            let _ = write!(
                body,
                "<li><strong>{}</strong> {} at {}{}</li>",
                esc(text(d, "/user")),
                esc(text(d, "/decision")),
                esc(text(d, "/at")),
                match text(d, "/comment") {
                    "" => String::new(),
                    c => format!(": {}", esc(c)),
                }
            );
        }
        body.push_str("</ul>");
    }
    if may_decide && text(verdict, "/state") == "Pending" {
        let action = format!("/applications/{}/approvals/{}", enc(&name), enc(&request));
        let _ = write!(
            body,
            r#"<section class="actions"><form method="post" action="{a}" class="sync"><input type="hidden" name="decision" value="approve"><label>Comment <input name="comment"></label><button type="submit" id="approve">Approve</button></form><form method="post" action="{a}" class="sync"><input type="hidden" name="decision" value="reject"><label>Why <input name="comment" required></label><button type="submit" id="reject">Reject</button></form></section>"#,
            a = esc(&action)
        );
    }
    let summary = &r["spec"]["summary"];
    let _ = write!(
        body,
        r#"<h2>What it would change</h2><p>{} to create, {} to update, {} to prune{}.</p>"#,
        summary["create"],
        summary["update"],
        summary["prune"],
        if summary["truncated"] == true {
            " (the first objects are shown)"
        } else {
            ""
        }
    );
    for o in summary["objects"].as_array().into_iter().flatten() {
        let _ = write!(
            body,
            r#"<section class="diff"><h3>{} {} {}/{}</h3><pre>"#,
            esc(text(o, "/change")),
            esc(text(o, "/kind")),
            esc(text(o, "/namespace")),
            esc(text(o, "/name"))
        );
        diff_lines(&mut body, text(o, "/diff"));
        body.push_str("</pre></section>");
    }
    page(&format!("Sync request {request}"), Some(&user.user), &body).into_response()
}

async fn decide(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path((name, request)): Path<(String, String)>,
    Form(form): Form<HashMap<String, String>>,
) -> Response {
    let here = format!("/applications/{}/approvals/{}", enc(&name), enc(&request));
    let user = match form_session(&state, &headers, &here) {
        Ok(c) => c,
        Err(r) => return *r,
    };
    let params: HashMap<String, String> = [
        ("name".to_string(), name.clone()),
        ("request".to_string(), request.clone()),
    ]
    .into();
    let body = json!({
        "decision": form.get("decision").cloned().unwrap_or_default(),
        "comment": form.get("comment").cloned().unwrap_or_default(),
    });
    match crate::approvals::decide(
        State(state.clone()),
        Extension(user.clone()),
        app_ref(&name),
        Path(params),
        Json(body),
    )
    .await
    {
        Ok(_) => Redirect::to(&here).into_response(),
        Err(e) => api_error(&user.user, e),
    }
}

async fn rollback(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(name): Path<String>,
    Form(form): Form<HashMap<String, String>>,
) -> Response {
    let user = match form_session(&state, &headers, &format!("/applications/{}", enc(&name))) {
        Ok(c) => c,
        Err(r) => return *r,
    };
    let id = form.get("id").cloned().unwrap_or_default();
    match crate::apps::rollback(
        State(state.clone()),
        Extension(user.clone()),
        app_ref(&name),
        Json(json!({"id": id})),
    )
    .await
    {
        Ok(_) => Redirect::to(&format!(
            "/applications/{}?notice={}",
            enc(&name),
            enc(&format!("Rollback to history entry {id} requested"))
        ))
        .into_response(),
        Err(e) => api_error(&user.user, e),
    }
}

async fn delete(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(name): Path<String>,
    Form(form): Form<HashMap<String, String>>,
) -> Response {
    let user = match form_session(&state, &headers, &format!("/applications/{}", enc(&name))) {
        Ok(c) => c,
        Err(r) => return *r,
    };
    if form.get("confirm").map(|c| c.trim()) != Some(name.as_str()) {
        return error_page(
            &user.user,
            StatusCode::BAD_REQUEST,
            &format!("Not deleted: type the application's name, {name}, to confirm."),
        );
    }
    let cascade = form.get("cascade").is_some_and(|c| c == "true");
    match crate::apps::remove(
        State(state.clone()),
        Extension(user.clone()),
        app_ref(&name),
        RawQuery(Some(format!("cascade={cascade}"))),
    )
    .await
    {
        Ok(_) => Redirect::to(&format!(
            "/applications?notice={}",
            enc(&format!("{name} deleted"))
        ))
        .into_response(),
        Err(e) => api_error(&user.user, e),
    }
}

/// A manifest (a JSON string, as the API gives it) as YAML.
fn yaml(manifest: &str) -> String {
    serde_json::from_str::<Value>(manifest)
        .ok()
        .and_then(|v| serde_saphyr::to_string(&v).ok())
        .unwrap_or_else(|| manifest.to_string())
}

/// One resource of an app: its live and desired manifests, the diff, and
/// its events.
async fn resource(
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
        esc(&show(live)),
        esc(&show(desired))
    );
    body.push_str(r#"<section class="diff"><h2>Diff</h2><pre>"#);
    if diff.is_empty() {
        body.push_str("(no difference)");
    }
    diff_lines(&mut body, &diff);
    body.push_str("</pre></section>");
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

async fn style() -> Response {
    ([(header::CONTENT_TYPE, "text/css; charset=utf-8")], STYLE).into_response()
}

async fn script() -> Response {
    (
        [(header::CONTENT_TYPE, "text/javascript; charset=utf-8")],
        SCRIPT,
    )
        .into_response()
}

const STYLE: &str = r#"
:root { --fg: #1d2330; --muted: #5b6577; --line: #d9dde5; --bg: #f7f8fa; --accent: #1f5fbf; }
* { box-sizing: border-box; }
body { margin: 0; font: 15px/1.45 system-ui, sans-serif; color: var(--fg); background: var(--bg); }
nav { display: flex; gap: 1rem; align-items: center; padding: .6rem 1.2rem; background: #1d2330; color: #fff; }
nav a, nav .brand { color: #fff; font-weight: 700; text-decoration: none; }
nav .who { margin-left: auto; }
nav form { margin: 0; }
main { max-width: 1200px; margin: 0 auto; padding: 1rem 1.2rem 3rem; }
a { color: var(--accent); }
button, .button { font: inherit; padding: .35rem .8rem; border: 1px solid var(--line); border-radius: 4px; background: #fff; color: var(--fg); cursor: pointer; text-decoration: none; display: inline-block; }
button:focus-visible, a:focus-visible, input:focus-visible, select:focus-visible { outline: 3px solid #7aa7ff; outline-offset: 1px; }
#sync { background: var(--accent); color: #fff; border-color: var(--accent); }
.filters, .sync, .actions form, .login { display: flex; flex-wrap: wrap; gap: .6rem; align-items: end; margin: .6rem 0; }
.login { flex-direction: column; align-items: stretch; max-width: 22rem; }
label { display: inline-flex; flex-direction: column; font-size: .85rem; color: var(--muted); gap: .15rem; }
.sync label:has(input[type=checkbox]) { flex-direction: row; align-items: center; }
input, select { font: inherit; padding: .3rem .4rem; border: 1px solid var(--line); border-radius: 4px; }
table { width: 100%; border-collapse: collapse; background: #fff; }
th, td { text-align: left; padding: .4rem .6rem; border-bottom: 1px solid var(--line); vertical-align: top; }
.badge { display: inline-block; min-width: 6.5rem; text-align: center; padding: .05rem .4rem; border-radius: 3px; font-size: .8rem; font-weight: 600; background: #e6e8ee; }
.sync-synced, .health-healthy { background: #d7f2df; color: #11602a; }
.sync-outofsync { background: #fde7c7; color: #7a4300; }
.health-degraded, .health-missing { background: #fbd9d9; color: #8a1414; }
.health-progressing { background: #dbe8fb; color: #17457f; }
.tiles { list-style: none; padding: 0; display: grid; grid-template-columns: repeat(auto-fill, minmax(15rem, 1fr)); gap: .8rem; }
.tile { background: #fff; border: 1px solid var(--line); border-radius: 6px; padding: .7rem; display: flex; flex-direction: column; gap: .35rem; }
.summary dl { display: grid; grid-template-columns: max-content 1fr; gap: .3rem 1rem; background: #fff; padding: .8rem; border: 1px solid var(--line); border-radius: 6px; }
.summary dt { color: var(--muted); }
.summary dd { margin: 0; min-height: 1.4em; }
.actions { display: flex; flex-wrap: wrap; gap: 1rem; align-items: end; margin: 1rem 0; }
.tree, .tree ul { list-style: none; padding-left: 1.2rem; }
.tree li { padding: .15rem 0; }
.kind { color: var(--muted); font-size: .85rem; min-width: 7rem; display: inline-block; }
.diff pre { background: #fff; border: 1px solid var(--line); padding: .6rem; overflow-x: auto; font-size: .85rem; }
.diff .add { color: #11602a; background: #eafbef; display: block; }
.diff .del { color: #8a1414; background: #fdeeee; display: block; }
.diff .hunk { color: #6b4fbb; display: block; }
.diff .ctx { display: block; }
.error { color: #8a1414; }
.manifests { display: grid; grid-template-columns: minmax(0, 1fr) minmax(0, 1fr); gap: 1rem; }
.manifests pre { background: #fff; border: 1px solid var(--line); padding: .6rem; overflow-x: auto; font-size: .8rem; max-height: 32rem; }
.history form { margin: 0; }
details { flex-basis: 100%; }
fieldset { border: 1px solid var(--line); border-radius: 4px; margin: .4rem 0; display: flex; flex-wrap: wrap; gap: .3rem 1rem; }
label.choice { flex-direction: row; align-items: center; gap: .3rem; color: var(--fg); }
.danger { margin-top: 2rem; border-top: 1px solid var(--line); }
@media (max-width: 900px) { .manifests { grid-template-columns: 1fr; } }
.notice { background: #e8f0fe; padding: .4rem .6rem; border-radius: 4px; }
.crumbs { color: var(--muted); }
@media (max-width: 700px) { table.apps td:nth-child(5), table.apps th:nth-child(5), table.apps td:nth-child(6), table.apps th:nth-child(6) { display: none; } }
"#;

/// Live status: the summary's fields follow the Application (polled from
/// the API every two seconds), text only, so nothing moves.
const SCRIPT: &str = r#"
(function () {
  var live = document.querySelector('[data-live]');
  if (!live) return;
  var url = live.getAttribute('data-live');
  function pick(obj, path) {
    return path.split('.').reduce(function (o, k) { return o == null ? undefined : o[k]; }, obj);
  }
  function tick() {
    fetch(url, { credentials: 'same-origin' }).then(function (r) { return r.ok ? r.json() : null; }).then(function (app) {
      if (!app) return;
      live.querySelectorAll('[data-field]').forEach(function (el) {
        var v = pick(app, el.getAttribute('data-field'));
        var t = v == null ? '' : String(v);
        if (el.textContent !== t) el.textContent = t;
      });
    }).catch(function () {}).finally(function () { setTimeout(tick, 2000); });
  }
  setTimeout(tick, 1000);
})();
"#;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_is_escaped_for_html() {
        assert_eq!(
            esc(r#"<script>alert("x")</script>&'"#),
            "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;&amp;&#39;"
        );
        assert_eq!(enc("team-a/web app"), "team-a%2Fweb%20app");
    }

    #[test]
    fn logins_go_back_to_this_server_only() {
        assert_eq!(local_path("/applications/web"), "/applications/web");
        assert_eq!(local_path("//evil.example/x"), "/applications");
        assert_eq!(local_path("/\\evil.example"), "/applications");
        assert_eq!(local_path("https://evil.example"), "/applications");
    }

    #[test]
    fn forms_from_other_sites_are_refused() {
        let mut h = HeaderMap::new();
        h.insert(header::HOST, "127.0.0.1:8080".parse().unwrap());
        assert!(same_origin(&h), "no Origin: a same-site navigation");
        h.insert(header::ORIGIN, "http://127.0.0.1:8080".parse().unwrap());
        assert!(same_origin(&h));
        h.insert(header::ORIGIN, "https://evil.example".parse().unwrap());
        assert!(!same_origin(&h));
    }
}
