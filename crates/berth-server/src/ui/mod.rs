//! The web UI: pages rendered on the server from the same handlers the
//! REST API uses (so RBAC, masking and errors are the API's), plain forms
//! for every action, and a few lines of script for live status. No
//! front-end build step and no third-party front-end code: `cargo build`
//! alone serves it. Sessions are the API's `argocd.token` cookie
//! (`SameSite=Lax`; forms also check `Origin`).

use axum::Router;
use axum::extract::{Form, RawQuery, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use serde_json::Value;
use std::collections::HashMap;

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
        .route("/applications", get(list::applications))
        .route("/applications/{name}", get(app::application))
        .route("/applications/{name}/diff", get(resource::diff))
        .route("/applications/{name}/sync", post(app::sync))
        .route("/applications/{name}/refresh", post(app::refresh))
        .route("/applications/{name}/rollback", post(app::rollback))
        .route("/applications/{name}/delete", post(app::delete))
        .route("/applications/{name}/resource", get(resource::resource))
        .route(
            "/applications/{name}/resource/action",
            post(resource::run_action),
        )
        .route(
            "/applications/{name}/approvals/{request}",
            get(approvals::request_page).post(approvals::decide),
        )
        .route("/applicationsets", get(appsets::list))
        .route("/ui/counts", get(list::counts_fragment))
        .route("/ui/style.css", get(assets::style))
        .route("/ui/live.js", get(assets::script))
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

/// A unified diff's lines, highlighted and classed (inside a `<pre>`).
fn diff_lines(body: &mut String, diff: &str) {
    yaml::unified(body, diff);
}

/// A diff shown unified or side by side (`view=split` in the URL), with
/// the links that switch between the two; `base` is the page's address
/// without `view`.
fn diff_view(body: &mut String, diff: &str, split: bool) {
    if split {
        body.push_str(r#"<div class="split-wrap">"#);
        yaml::split(body, diff);
        body.push_str("</div>");
    } else {
        body.push_str("<pre>");
        yaml::unified(body, diff);
        body.push_str("</pre>");
    }
}

/// The "unified · side by side" switch of a diff.
fn view_switch(base: &str, split: bool) -> String {
    let sep = if base.contains('?') { '&' } else { '?' };
    format!(
        r#"<p class="views">Diff: <a href="{}"{}>unified</a> · <a href="{}{sep}view=split"{}>side by side</a></p>"#,
        esc(base),
        if split { "" } else { r#" aria-current="page""# },
        esc(base),
        if split { r#" aria-current="page""# } else { "" },
    )
}

/// Whether the query asks for the side-by-side diff.
fn wants_split(raw: Option<&str>) -> bool {
    query_pairs(raw)
        .iter()
        .any(|(k, v)| k == "view" && v == "split")
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
            r#"<nav><a href="/applications" class="brand">Berth</a><a href="/applicationsets">ApplicationSets</a><span class="who">{}</span><form method="post" action="/logout"><button>Log out</button></form></nav>"#,
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
            r#"<h1>Log in</h1>{error}<form method="post" action="/login" class="login"><input type="hidden" name="next" value="{}"><label>User name <input name="username" autocomplete="username" required autofocus></label><label>Password <input name="password" type="password" autocomplete="current-password" required></label><button type="submit">Log in</button></form><p><a href="/auth/login?return_url={}" id="sso">Log in with single sign-on</a></p>"#,
            esc(next),
            esc(&enc(&local_path(next)))
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

/// An app named `name` or `namespace/name`.
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

mod app;
mod approvals;
mod appsets;
mod assets;
mod list;
mod resource;
mod yaml;

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
