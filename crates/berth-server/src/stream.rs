//! `GET /api/v1/stream/applications`: server-sent events of application
//! changes, as Argo CD streams them (`{"result": {"type", "application"}}`),
//! first one `ADDED` event per matching application, then every change.
//! Filtered by `name`, `projects` and `selector`, and by RBAC: a user only
//! sees the applications they may get, checked against the policy in force
//! at each event. Berth's extension: `fields=summary` sends each
//! application as only its name, namespace, project, sync and health
//! status and operation phase (what a list shows), about 250 bytes
//! instead of the whole object.

use std::convert::Infallible;
use std::sync::Arc;

use axum::Extension;
use axum::extract::{RawQuery, State};
use axum::response::sse::{Event, KeepAlive, Sse};
use futures::{Stream, StreamExt};
use kube::api::DynamicObject;
use serde_json::{Value, json};
use tokio::sync::broadcast::error::RecvError;

use crate::apps::{
    labels_of, project_of, query_pairs, query_values, rbac_object, render, selector_matches,
};
use crate::{AppChange, AppState, Caller};

/// The stream's filters.
struct Filter {
    names: Vec<String>,
    projects: Vec<String>,
    selector: Option<String>,
}

impl Filter {
    fn matches(&self, app: &DynamicObject) -> bool {
        let name = app.metadata.name.as_deref().unwrap_or_default();
        let project = project_of(app);
        let labels = labels_of(app);
        (self.names.is_empty() || self.names.iter().any(|n| n == name))
            && (self.projects.is_empty() || self.projects.iter().any(|p| p == project))
            && self
                .selector
                .as_deref()
                .is_none_or(|s| selector_matches(s, &labels))
    }
}

fn event(kind: &str, app: &DynamicObject, summary: bool) -> Event {
    let mut app = render(app);
    if summary {
        let pick = |p: &str| app.pointer(p).cloned().unwrap_or(Value::Null);
        app = json!({
            "metadata": {"name": pick("/metadata/name"), "namespace": pick("/metadata/namespace")},
            "spec": {"project": pick("/spec/project")},
            "status": {
                "sync": {"status": pick("/status/sync/status")},
                "health": {"status": pick("/status/health/status")},
                "operationState": {"phase": pick("/status/operationState/phase")},
            },
        });
    }
    let data = json!({"result": {"type": kind, "application": app}});
    Event::default().data(data.to_string())
}

/// The handler.
pub async fn applications(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    RawQuery(raw): RawQuery,
) -> Sse<impl Stream<Item = Result<Event, Infallible>>> {
    let params = query_pairs(raw.as_deref());
    let values = |k: &str| -> Vec<String> {
        query_values(&params, k)
            .into_iter()
            .map(str::to_string)
            .collect()
    };
    let mut projects = values("projects");
    projects.extend(values("project"));
    let filter = Arc::new(Filter {
        names: values("name"),
        projects,
        selector: values("selector").into_iter().next(),
    });
    let summary = values("fields").iter().any(|f| f == "summary");
    // Subscribed before the snapshot, so no change falls between them.
    let receiver = state.changes.subscribe();
    let mut snapshot = state.store.state();
    snapshot.sort_by(|a, b| a.metadata.name.cmp(&b.metadata.name));
    let initial = futures::stream::iter(
        snapshot
            .into_iter()
            .map(|app| AppChange { kind: "ADDED", app }),
    );
    let changes = futures::stream::unfold(receiver, |mut rx| async move {
        loop {
            match rx.recv().await {
                Ok(change) => return Some((change, rx)),
                // A slow client missed changes; it goes on with the next.
                Err(RecvError::Lagged(_)) => continue,
                Err(RecvError::Closed) => return None,
            }
        }
    });
    let stream = initial.chain(changes).filter_map(move |change| {
        let state = Arc::clone(&state);
        let filter = Arc::clone(&filter);
        let caller = caller.clone();
        async move {
            let visible = filter.matches(&change.app)
                && state.policy().allows(
                    &caller.user,
                    &caller.groups,
                    "applications",
                    "get",
                    &rbac_object(&state, &change.app),
                );
            visible.then(|| Ok(event(change.kind, &change.app, summary)))
        }
    });
    Sse::new(stream).keep_alive(KeepAlive::default())
}
