//! The ApplicationSets the user may see: their generators, whether each
//! is up to date (or the error it reports) and the Applications it made.

use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use std::fmt::Write as _;

use super::*;

/// `/applicationsets`.
pub(super) async fn list(State(state): State<AppState>, headers: HeaderMap) -> Response {
    let user = match session(&state, &headers, "/applicationsets") {
        Ok(c) => c,
        Err(r) => return r.into_response(),
    };
    let sets = match crate::appsets::list(State(state.clone()), Extension(user.clone())).await {
        Ok(Json(v)) => v["items"].as_array().cloned().unwrap_or_default(),
        Err(e) => return api_error(&user.user, e),
    };
    let mut body = String::from(
        r#"<p class="crumbs"><a href="/applications">Applications</a> / ApplicationSets</p><h1>ApplicationSets</h1>"#,
    );
    if sets.is_empty() {
        body.push_str(r#"<p class="empty">No ApplicationSet (they are written with kubectl).</p>"#);
    } else {
        body.push_str(r#"<table class="apps appsets"><thead><tr><th>Name</th><th>Generators</th><th>Status</th><th>Applications</th></tr></thead><tbody>"#);
        for s in &sets {
            let generators = berth_api::appset::generator_kinds(s);
            let status = match berth_api::appset::SetState::of(s) {
                berth_api::appset::SetState::Error(m) => format!(
                    r#"<span class="badge health-degraded">Error</span> <span class="error">{}</span>"#,
                    esc(&m)
                ),
                berth_api::appset::SetState::UpToDate => {
                    r#"<span class="badge health-healthy">UpToDate</span>"#.to_string()
                }
                berth_api::appset::SetState::Pending => {
                    r#"<span class="badge">Pending</span>"#.to_string()
                }
            };
            let mut apps = String::new();
            for r in s["status"]["resources"].as_array().into_iter().flatten() {
                let name = text(r, "/name");
                let _ = write!(
                    apps,
                    r#"<a href="/applications/{}">{}</a> "#,
                    enc(name),
                    esc(name)
                );
            }
            let _ = write!(
                body,
                r#"<tr data-appset="{}"><td>{}</td><td>{}</td><td>{status}</td><td>{apps}</td></tr>"#,
                esc(text(s, "/metadata/name")),
                esc(text(s, "/metadata/name")),
                esc(&generators.join(", ")),
            );
        }
        body.push_str("</tbody></table>");
    }
    page("ApplicationSets", Some(&user.user), &body).into_response()
}
