//! One application: its summary, actions (refresh, sync, rollback,
//! delete) and resource tree.

use axum::extract::{Form, Path, RawQuery, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use axum::{Extension, Json};
use serde_json::{Value, json};
use std::collections::HashMap;
use std::fmt::Write as _;

use super::approvals::approvals_section;
use super::*;

pub(super) async fn application(
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
    // The synced commit's message and author, from the controller's Git
    // cache.
    let commit = match text(&a, "/status/sync/revision") {
        "" => String::new(),
        revision => match crate::resources::revision_metadata(
            State(state.clone()),
            Extension(user.clone()),
            reference.clone(),
            Path(HashMap::from([(
                "revision".to_string(),
                revision.to_string(),
            )])),
            RawQuery(None),
        )
        .await
        {
            Ok(Json(m)) => format!(
                r#" <span class="commit">{}</span> <small>{} · {}</small>"#,
                esc(text(&m, "/message").lines().next().unwrap_or_default()),
                esc(text(&m, "/author")),
                esc(text(&m, "/date")),
            ),
            Err(_) => String::new(),
        },
    };
    // Made by an ApplicationSet: said, with a link to the sets.
    let made_by = a["metadata"]["ownerReferences"]
        .as_array()
        .and_then(|o| o.iter().find(|r| r["kind"] == "ApplicationSet"))
        .map(|r| {
            format!(
                r#"<dt>ApplicationSet</dt><dd><a href="/applicationsets">{}</a></dd>"#,
                esc(text(r, "/name"))
            )
        })
        .unwrap_or_default();
    let policy = match a.pointer("/spec/syncPolicy/automated") {
        Some(auto) => {
            let mut p = String::from("automated");
            if auto["prune"] == true {
                p.push_str(", prune");
            }
            if auto["selfHeal"] == true {
                p.push_str(", self-heal");
            }
            p
        }
        None => "manual".into(),
    };
    let w = &a["status"]["berth"]["syncWindows"];
    let windows = if w.is_object() {
        let verdict = match (w["syncAllowed"] == true, w["manualSyncAllowed"] == true) {
            (true, _) => "open",
            (false, true) => "closed to automated syncs",
            (false, false) => "closed",
        };
        format!("{verdict} {}", esc(text(w, "/message")))
    } else {
        "none apply".into()
    };
    let _ = write!(
        body,
        r#"<section class="summary" data-live="/api/v1/applications/{}{}"><dl>
<dt>Sync</dt><dd id="sync-status" data-field="status.sync.status">{}</dd>
<dt>Health</dt><dd id="health-status" data-field="status.health.status">{}</dd>
<dt>Operation</dt><dd><span id="op-phase" data-field="status.operationState.phase">{}</span> <span id="op-message" data-field="status.operationState.message">{}</span></dd>
{made_by}<dt>Project</dt><dd>{}</dd>
<dt>Repository</dt><dd>{}</dd>
<dt>Path</dt><dd>{}</dd>
<dt>Target revision</dt><dd>{}</dd>
<dt>Revision</dt><dd><code>{}</code>{commit}</dd>
<dt>Destination</dt><dd>{} {}</dd>
<dt>Sync policy</dt><dd>{policy}</dd>
<dt>Sync windows</dt><dd>{windows}</dd>
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
    );
    body.push_str(&progress_section(op));
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
    let flat = query_pairs(raw.as_deref())
        .iter()
        .any(|(k, v)| k == "resources" && v == "list");
    body.push_str(r#"<section id="resources"><h2>Resources</h2>"#);
    match tree {
        Ok(Json(t)) => {
            let nodes = t["nodes"].as_array().cloned().unwrap_or_default();
            let declared = a["status"]["resources"]
                .as_array()
                .cloned()
                .unwrap_or_default();
            resources_section(&mut body, &name, &declared, &nodes, flat);
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

/// The running sync's phases and waves with their steps done, and its
/// results so far (newest first); the last sync's results when none runs.
/// The box has a fixed height so that live updates move nothing around
/// it; the page's script redraws it from the Application.
fn progress_section(op: &Value) -> String {
    let mut out = String::from(
        r#"<section class="progress" aria-labelledby="progress-title"><h2 id="progress-title">Sync progress</h2><div class="progress-box" id="progress" aria-live="polite">"#,
    );
    let progress = &op["berth"]["progress"];
    let results = op["syncResult"]["resources"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    if op.is_null() {
        out.push_str(r#"<p class="empty" id="progress-head">No sync has run.</p>"#);
    } else {
        let _ = write!(
            out,
            r#"<p id="progress-head"><strong>{}</strong> {}</p>"#,
            esc(text(op, "/phase")),
            esc(text(op, "/message"))
        );
    }
    out.push_str(r#"<ol class="waves" id="progress-waves">"#);
    for g in progress["groups"].as_array().into_iter().flatten() {
        let (done, total) = (
            g["done"].as_u64().unwrap_or(0),
            g["total"].as_u64().unwrap_or(0),
        );
        let _ = write!(
            out,
            r#"<li><span class="wave">{} · wave {}</span> <progress max="{total}" value="{done}"></progress> <span>{done} of {total}</span></li>"#,
            esc(text(g, "/phase")),
            esc(&g["wave"].to_string()),
        );
    }
    out.push_str(r#"</ol><table class="results"><thead><tr><th>Kind</th><th>Name</th><th>Phase</th><th>Result</th><th>Message</th></tr></thead><tbody id="progress-results">"#);
    for r in results.iter().rev().take(PROGRESS_ROWS) {
        let _ = write!(
            out,
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            esc(text(r, "/kind")),
            esc(text(r, "/name")),
            esc(text(r, "/syncPhase")),
            esc(text(r, "/status")),
            esc(text(r, "/message")),
        );
    }
    out.push_str("</tbody></table></div></section>");
    out
}

/// Results shown in the progress box (the status keeps the latest 200
/// while a sync runs).
const PROGRESS_ROWS: usize = 50;

/// Above this many resources, the tree starts collapsed.
const OPEN_TREE_LIMIT: usize = 200;

/// What the cluster has under each object, by the owner's uid.
struct Owned<'a>(HashMap<&'a str, Vec<&'a Value>>);

impl<'a> Owned<'a> {
    fn new(nodes: &'a [Value]) -> Owned<'a> {
        let mut by_owner: HashMap<&str, Vec<&Value>> = HashMap::new();
        for n in nodes {
            for p in n["parentRefs"].as_array().into_iter().flatten() {
                by_owner.entry(text(p, "/uid")).or_default().push(n);
            }
        }
        Owned(by_owner)
    }

    fn of(&self, node: &Value) -> &[&'a Value] {
        match text(node, "/uid") {
            "" => &[],
            uid => self.0.get(uid).map(Vec::as_slice).unwrap_or_default(),
        }
    }
}

/// The app's resources (those not created yet too), each with what it
/// owns in the cluster (Deployment → ReplicaSet → Pod): a tree whose
/// branches fold (`<details>`, so keyboards and browsers without script
/// work), or with `?resources=list` a flat table for large apps.
fn resources_section(
    body: &mut String,
    name: &str,
    declared: &[Value],
    nodes: &[Value],
    flat: bool,
) {
    let key = |v: &Value| {
        (
            text(v, "/kind").to_string(),
            text(v, "/namespace").to_string(),
            text(v, "/name").to_string(),
        )
    };
    let live: HashMap<(String, String, String), &Value> =
        nodes.iter().map(|n| (key(n), n)).collect();
    let owned = Owned::new(nodes);
    let base = format!("/applications/{}", enc(name));
    let _ = write!(
        body,
        r#"<p class="views">{} resources, {} objects in the cluster · View: <a href="{base}#resources"{}>tree</a> · <a href="{base}?resources=list#resources"{}>list</a></p>"#,
        declared.len(),
        nodes.len(),
        if flat { "" } else { r#" aria-current="page""# },
        if flat { r#" aria-current="page""# } else { "" },
    );
    let link = |r: &Value| {
        format!(
            "/applications/{}/resource?group={}&kind={}&namespace={}&resourceName={}",
            enc(name),
            enc(text(r, "/group")),
            enc(text(r, "/kind")),
            enc(text(r, "/namespace")),
            enc(text(r, "/name"))
        )
    };
    if flat {
        body.push_str(r#"<table class="flat"><thead><tr><th>Kind</th><th>Namespace</th><th>Name</th><th>Sync</th><th>Health</th><th>Owned by</th></tr></thead><tbody>"#);
        let rows = |body: &mut String, n: &Value, synced: &str, owner: &str, linked: bool| {
            let shown = if linked {
                format!(
                    r#"<a href="{}">{}</a>"#,
                    esc(&link(n)),
                    esc(text(n, "/name"))
                )
            } else {
                esc(text(n, "/name"))
            };
            let _ = write!(
                body,
                "<tr><td>{}</td><td>{}</td><td>{shown}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
                esc(text(n, "/kind")),
                esc(text(n, "/namespace")),
                if synced.is_empty() {
                    String::new()
                } else {
                    badge("sync", synced)
                },
                badge("health", text(n, "/health/status")),
                esc(owner),
            );
        };
        for r in declared {
            rows(body, r, text(r, "/status"), "", true);
            // What it owns, depth first, each row naming its owner.
            let mut stack: Vec<(&Value, String)> = live
                .get(&key(r))
                .map(|l| {
                    owned
                        .of(l)
                        .iter()
                        .rev()
                        .map(|c| (*c, format!("{} {}", text(r, "/kind"), text(r, "/name"))))
                        .collect()
                })
                .unwrap_or_default();
            let mut seen = 0;
            while let Some((c, owner)) = stack.pop() {
                seen += 1;
                if seen > 10_000 {
                    break;
                }
                rows(body, c, "", &owner, false);
                let me = format!("{} {}", text(c, "/kind"), text(c, "/name"));
                stack.extend(owned.of(c).iter().rev().map(|g| (*g, me.clone())));
            }
        }
        body.push_str("</tbody></table>");
        return;
    }
    let open = if declared.len() <= OPEN_TREE_LIMIT {
        " open"
    } else {
        ""
    };
    body.push_str(r#"<ul class="tree">"#);
    for r in declared {
        let head = format!(
            r#"<span class="kind">{}</span> <a href="{}">{}</a> {} {}"#,
            esc(text(r, "/kind")),
            esc(&link(r)),
            esc(text(r, "/name")),
            badge("sync", text(r, "/status")),
            badge("health", text(r, "/health/status")),
        );
        match live.get(&key(r)).filter(|l| !owned.of(l).is_empty()) {
            Some(l) => {
                let _ = write!(body, "<li><details{open}><summary>{head}</summary>");
                children(body, l, &owned, 0);
                body.push_str("</details></li>");
            }
            None => {
                let _ = write!(body, r#"<li class="leaf">{head}</li>"#);
            }
        }
    }
    body.push_str("</ul>");
}

/// What `node` owns (ReplicaSets of a Deployment, their Pods), nested.
fn children(body: &mut String, node: &Value, owned: &Owned<'_>, depth: usize) {
    let kids = owned.of(node);
    if depth > 8 || kids.is_empty() {
        return;
    }
    body.push_str("<ul>");
    for c in kids {
        let _ = write!(
            body,
            r#"<li><span class="kind">{}</span> {} {}"#,
            esc(text(c, "/kind")),
            esc(text(c, "/name")),
            badge("health", text(c, "/health/status"))
        );
        children(body, c, owned, depth + 1);
        body.push_str("</li>");
    }
    body.push_str("</ul>");
}

pub(super) async fn sync(
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

pub(super) async fn refresh(
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

pub(super) async fn rollback(
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

pub(super) async fn delete(
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
