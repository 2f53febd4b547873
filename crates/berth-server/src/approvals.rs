//! Sync approvals (an extension): the requests of a gated app, and the
//! decisions on them. A decision is recorded with the authenticated
//! caller's identity and groups and signed with the key only Berth can
//! read, so the controller counts it; the request is found in the app's
//! namespace, and only a request the controller signed can be decided.

use std::time::SystemTime;

use axum::extract::{Path, State};
use axum::{Extension, Json};
use berth_controller::approval::{self, Approver, Requirement, Verdict};
use kube::Api;
use kube::api::{DynamicObject, ListParams, Patch, PatchParams, PostParams};
use serde_json::{Value, json};

use crate::apps::{AppRef, fetch, rbac_object};
use crate::error::ApiError;
use crate::{AppState, Caller};

fn requests_api(state: &AppState, app: &DynamicObject) -> Api<DynamicObject> {
    Api::namespaced_with(
        state.client.clone(),
        app.metadata
            .namespace
            .as_deref()
            .unwrap_or(&state.namespace),
        &berth_cluster::bootstrap::syncrequest_resource(),
    )
}

/// The ApprovalGates now, and what they (and the app's annotation) ask
/// of `app`.
pub(crate) async fn requirement(
    state: &AppState,
    app: &Value,
) -> Result<Option<Requirement>, ApiError> {
    let api: Api<DynamicObject> = Api::all_with(
        state.client.clone(),
        &berth_cluster::bootstrap::approvalgate_resource(),
    );
    let list = api
        .list(&ListParams::default())
        .await
        .map_err(|e| ApiError::kube("ApprovalGates", e))?;
    let objects: Vec<Value> = list
        .items
        .iter()
        .filter_map(|o| serde_json::to_value(o).ok())
        .collect();
    let gates = approval::gates_from(&objects);
    Ok(approval::requirement(
        &gates,
        app,
        &approval::qualified_name(app, &state.namespace),
        &approval::Target::from_spec(app),
    ))
}

fn records_api(state: &AppState) -> Api<DynamicObject> {
    Api::all_with(
        state.client.clone(),
        &berth_cluster::bootstrap::approvalrecord_resource(),
    )
}

/// The app's ApprovalRecords (rejections and executions that editing a
/// request cannot undo).
async fn records(state: &AppState, app: &DynamicObject) -> Result<Vec<Value>, ApiError> {
    let uid = app.metadata.uid.as_deref().unwrap_or_default();
    let list = records_api(state)
        .list(&ListParams::default().labels(&format!("{}={uid}", approval::RECORD_UID_LABEL)))
        .await
        .map_err(|e| ApiError::kube("ApprovalRecords", e))?;
    Ok(list
        .items
        .iter()
        .filter_map(|o| serde_json::to_value(o).ok())
        .filter(|r| r.pointer("/spec/applicationUID").and_then(Value::as_str) == Some(uid))
        .collect())
}

fn signer(state: &AppState) -> Result<&approval::Signer, ApiError> {
    state.signer.as_ref().ok_or_else(|| {
        ApiError::unavailable(format!(
            "the approval signing key (Secret {}) could not be read when the server started: see its log",
            approval::KEY_SECRET
        ))
    })
}

/// A request as the API shows it: the object without managed fields, and
/// where it stands (`status.verdict`, computed from its signatures now).
fn shown(
    state: &AppState,
    request: &DynamicObject,
    requirement: Option<&Requirement>,
    records: &[Value],
) -> Value {
    let mut v = serde_json::to_value(request).unwrap_or(Value::Null);
    if let Some(m) = v.get_mut("metadata").and_then(Value::as_object_mut) {
        m.remove("managedFields");
    }
    if let (Some(signer), Some(req)) = (state.signer.as_ref(), requirement) {
        let verdict = match approval::evaluate(signer, &v, req, records, jiff::Timestamp::now()) {
            Verdict::Approved { approvers } => json!({"state": "Approved", "approvers": approvers}),
            Verdict::Pending { have, need } => {
                json!({"state": "Pending", "approvals": have, "required": need})
            }
            Verdict::Rejected { by, comment } => {
                json!({"state": "Rejected", "by": by, "comment": comment})
            }
            Verdict::Expired => json!({"state": "Expired"}),
            Verdict::Forged => {
                json!({"state": "Forged", "message": "not signed by Berth: ignored"})
            }
        };
        v["status"]["verdict"] = verdict;
    }
    // Signatures are of no use to readers.
    if let Some(a) = v
        .pointer_mut("/status/approvals")
        .and_then(Value::as_array_mut)
    {
        for entry in a {
            if let Some(m) = entry.as_object_mut() {
                m.remove("signature");
            }
        }
    }
    v
}

/// `GET /api/v1/applications/{name}/approvals`: the app's sync requests,
/// newest first, each with its change summary and decisions.
pub async fn list(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    app_ref: AppRef,
) -> Result<Json<Value>, ApiError> {
    let app = fetch(&state, &app_ref).await?;
    state.authorize(&caller, "applications", "get", &rbac_object(&state, &app))?;
    let name = app.metadata.name.clone().unwrap_or_default();
    let selector = format!(
        "{}={}",
        berth_controller::record::APP_LABEL,
        berth_controller::record::app_label_value(&name)
    );
    let list = requests_api(&state, &app)
        .list(&ListParams::default().labels(&selector))
        .await
        .map_err(|e| ApiError::kube(&format!("the SyncRequests of {app_ref}"), e))?;
    let rendered = crate::apps::render(&app);
    let requirement = requirement(&state, &rendered).await?;
    let records = records(&state, &app).await?;
    let mut items: Vec<Value> = list
        .items
        .iter()
        .filter(|r| {
            r.data.pointer("/spec/application").and_then(Value::as_str) == Some(name.as_str())
        })
        .map(|r| shown(&state, r, requirement.as_ref(), &records))
        .collect();
    items.sort_by(|a, b| {
        let t = |v: &Value| {
            v.pointer("/spec/createdAt")
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_string()
        };
        t(b).cmp(&t(a))
    });
    Ok(Json(json!({
        "items": items,
        "requirement": requirement.map(|r| json!({"required": r.required(), "gates": r.sources()})),
    })))
}

async fn one(
    state: &AppState,
    app: &DynamicObject,
    request: &str,
) -> Result<DynamicObject, ApiError> {
    let obj = requests_api(state, app)
        .get(request)
        .await
        .map_err(|e| ApiError::kube(&format!("SyncRequest {request:?}"), e))?;
    if obj
        .data
        .pointer("/spec/application")
        .and_then(Value::as_str)
        != app.metadata.name.as_deref()
    {
        return Err(ApiError::not_found(format!(
            "SyncRequest {request:?} is not one of application {:?}",
            app.metadata.name.as_deref().unwrap_or_default()
        )));
    }
    Ok(obj)
}

/// `GET /api/v1/applications/{name}/approvals/{request}`: one request,
/// with the change it would apply (`spec.summary`).
pub async fn get(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    app_ref: AppRef,
    Path(params): Path<std::collections::HashMap<String, String>>,
) -> Result<Json<Value>, ApiError> {
    let app = fetch(&state, &app_ref).await?;
    state.authorize(&caller, "applications", "get", &rbac_object(&state, &app))?;
    let request = params.get("request").cloned().unwrap_or_default();
    let obj = one(&state, &app, &request).await?;
    let requirement = requirement(&state, &crate::apps::render(&app)).await?;
    let records = records(&state, &app).await?;
    Ok(Json(shown(&state, &obj, requirement.as_ref(), &records)))
}

/// `POST /api/v1/applications/{name}/approvals/{request}` with
/// `{decision: approve|reject, comment}`: records the caller's decision
/// (RBAC action `approve` on the application). A rejection needs a
/// comment; an approval that would not count (the requester's own, the
/// commit author's, outside the gate's groups) is refused with the reason.
pub async fn decide(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    app_ref: AppRef,
    Path(params): Path<std::collections::HashMap<String, String>>,
    Json(body): Json<Value>,
) -> Result<Json<Value>, ApiError> {
    let app = fetch(&state, &app_ref).await?;
    state.authorize(
        &caller,
        "applications",
        "approve",
        &rbac_object(&state, &app),
    )?;
    let request = params.get("request").cloned().unwrap_or_default();
    let decision = body
        .get("decision")
        .and_then(Value::as_str)
        .unwrap_or_default();
    if decision != "approve" && decision != "reject" {
        return Err(ApiError::bad_request("decision: use approve or reject"));
    }
    let comment = body
        .get("comment")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .trim()
        .to_string();
    if decision == "reject" && comment.is_empty() {
        return Err(ApiError::bad_request("comment: a rejection says why"));
    }
    let signer = signer(&state)?;
    let rendered_app = crate::apps::render(&app);
    let Some(requirement) = requirement(&state, &rendered_app).await? else {
        return Err(ApiError::conflict(format!(
            "application {app_ref} is not gated (no ApprovalGate covers it): its syncs need no approval"
        )));
    };
    let api = requests_api(&state, &app);
    for _ in 0..5 {
        let obj = one(&state, &app, &request).await?;
        let value = serde_json::to_value(&obj).unwrap_or(Value::Null);
        let now = jiff::Timestamp::now();
        let records = records(&state, &app).await?;
        if records.iter().any(|r| {
            r.pointer("/spec/kind").and_then(Value::as_str) == Some("Executed")
                && r.pointer("/spec/request").and_then(Value::as_str) == Some(request.as_str())
        }) {
            return Err(ApiError::conflict(format!(
                "SyncRequest {request:?} was carried out already: it can no longer be decided"
            )));
        }
        match approval::evaluate(signer, &value, &requirement, &records, now) {
            Verdict::Forged => {
                return Err(ApiError::conflict(format!(
                    "SyncRequest {request:?} was not made by Berth (its signature does not hold): it cannot be decided"
                )));
            }
            Verdict::Expired => {
                return Err(ApiError::conflict(format!(
                    "SyncRequest {request:?} expired: ask for a new sync"
                )));
            }
            Verdict::Rejected { by, .. } => {
                return Err(ApiError::conflict(format!(
                    "SyncRequest {request:?} was rejected by {by}"
                )));
            }
            Verdict::Approved { .. } | Verdict::Pending { .. } => {}
        }
        let phase = value
            .pointer("/status/phase")
            .and_then(Value::as_str)
            .unwrap_or("Pending");
        if matches!(phase, "Superseded" | "Executed") {
            return Err(ApiError::conflict(format!(
                "SyncRequest {request:?} is {phase}: it can no longer be decided"
            )));
        }
        let approvals: Vec<Value> = value
            .pointer("/status/approvals")
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default();
        // Only decisions Berth signed count here too: a forged entry
        // naming someone does not keep them from deciding.
        let request_signature = value
            .pointer("/spec/signature")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string();
        if approvals.iter().any(|a| {
            a.get("user")
                .and_then(Value::as_str)
                .is_some_and(|u| approval::same_user(u, &caller.user))
                && signer.verify(
                    "approval",
                    &approval::approval_payload(&request_signature, a),
                    a.get("signature")
                        .and_then(Value::as_str)
                        .unwrap_or_default(),
                )
        }) {
            return Err(ApiError::conflict(format!(
                "{} has already decided on SyncRequest {request:?}: a decision counts once",
                caller.user
            )));
        }
        if decision == "approve"
            && let Some(why) = approval::refusal(
                &requirement,
                &value["spec"],
                &Approver {
                    user: caller.user.clone(),
                    groups: caller.groups.clone(),
                },
            )
        {
            return Err(ApiError::forbidden(format!(
                "{}'s approval would not count: {why}",
                caller.user
            )));
        }
        let at = berth_api::time::rfc3339(SystemTime::now());
        // A rejection stands where editing the request cannot undo it.
        if decision == "reject" {
            let record = approval::record(
                "Rejected",
                &request_signature,
                &rendered_app,
                &request,
                value.pointer("/spec/binding").unwrap_or(&Value::Null),
                &caller.user,
                &comment,
                &at,
            );
            let obj: DynamicObject = serde_json::from_value(record)
                .map_err(|e| ApiError::internal(format!("an ApprovalRecord: {e}")))?;
            match records_api(&state)
                .create(&PostParams::default(), &obj)
                .await
            {
                Ok(_) => {}
                Err(kube::Error::Api(s)) if s.code == 409 => {}
                Err(e) => return Err(ApiError::kube("the rejection's ApprovalRecord", e)),
            }
        }
        let mut entry = json!({
            "user": caller.user,
            "groups": caller.groups,
            "decision": decision,
            "comment": comment,
            "at": at,
        });
        entry["signature"] = json!(signer.sign(
            "approval",
            &approval::approval_payload(&request_signature, &entry)
        ));
        let mut all = approvals;
        all.push(entry);
        // The version guard keeps two decisions made at once.
        let patch = json!({
            "metadata": {"resourceVersion": obj.metadata.resource_version},
            "status": {"approvals": all},
        });
        match api
            .patch_status(&request, &PatchParams::default(), &Patch::Merge(&patch))
            .await
        {
            Ok(updated) => {
                tracing::info!(user = %caller.user, app = %app_ref, %request, decision, "approval decision");
                // The controller looks at the app again now.
                let refresh =
                    json!({"metadata": {"annotations": {"argocd.argoproj.io/refresh": "normal"}}});
                let apps = state.apps_in(
                    app.metadata
                        .namespace
                        .as_deref()
                        .unwrap_or(&state.namespace),
                );
                if let Err(e) = apps
                    .patch(
                        &app_ref.name,
                        &PatchParams::default(),
                        &Patch::Merge(&refresh),
                    )
                    .await
                {
                    tracing::warn!(app = %app_ref, error = %e, "refreshing after a decision");
                }
                return Ok(Json(shown(&state, &updated, Some(&requirement), &records)));
            }
            Err(kube::Error::Api(s)) if s.code == 409 => continue,
            Err(e) => return Err(ApiError::kube(&format!("SyncRequest {request:?}"), e)),
        }
    }
    Err(ApiError::conflict(format!(
        "SyncRequest {request:?} keeps changing; try again"
    )))
}
