//! The approvals of a gated app: its requests, one request's change and
//! decisions, and the forms to decide.

use axum::extract::{Form, Path, RawQuery, State};
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Redirect, Response};
use axum::{Extension, Json};
use serde_json::{Value, json};
use std::collections::HashMap;
use std::fmt::Write as _;

use super::*;

/// The sync requests of a gated app: the newest ten with where each
/// stands, and the app's audit trail.
pub(super) async fn approvals_section(
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
pub(super) async fn request_page(
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

pub(super) async fn decide(
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
