//! Approval gates at the controller's admission point: every sync of a
//! gated app, however it was asked for (the API, a direct write of
//! `operation`, the automated policy, self-heal), passes [`admit`] before
//! anything is applied. A sync without enough valid approvals for exactly
//! the change about to be applied becomes (or waits on) a `SyncRequest`;
//! [`maintain`] moves requests along (expired, superseded, rejected) and
//! turns an approved request into the Application's `operation`, which
//! then runs like any other, crash-safe resume included.

use std::sync::Arc;
use std::time::SystemTime;

use berth_api::time::rfc3339;
use kube::Api;
use kube::api::{DynamicObject, ListParams, Patch, PatchParams, PostParams};
use kube::runtime::events::EventType;
use serde_json::{Value, json};

use crate::approval::{self, Gate, Requirement, Signer, Verdict};
use crate::controller::{Ready, Shared};
use crate::policy::SyncRequest;

/// Requests of one app carry this label (its name, as SyncRecords do).
pub const REQUEST_APP_LABEL: &str = crate::record::APP_LABEL;
/// At most this many objects are listed in a request's change summary.
const SUMMARY_OBJECTS: usize = 300;
/// Each object's diff in the summary is cut to this many bytes.
const SUMMARY_DIFF_BYTES: usize = 16 * 1024;

/// What the admission point decides for a sync of a gated app.
#[derive(Debug)]
pub(crate) enum Admit {
    /// Run it; when it carries out a request, mark that one executed.
    Run(Option<String>),
    /// Hold it: a request waits for approvals (the message says which;
    /// the request's name when there is one).
    Hold(String, Option<String>),
    /// Refuse it, with the reason.
    Refuse(String),
}

/// The gates as last read: `None` until they could be listed, and then
/// every sync of every app is held (gates that cannot be read must not
/// open anything).
pub(crate) type Gates = Option<Arc<Vec<Gate>>>;

fn qualified(shared: &Shared, raw: &Value) -> String {
    approval::qualified_name(raw, &shared.config.namespace)
}

/// What the gates require of `raw`'s syncs; `Err` when the gates are not
/// known (the admission holds).
pub(crate) fn requirement_of(shared: &Shared, raw: &Value) -> Result<Option<Requirement>, String> {
    match shared.gates() {
        Some(gates) => Ok(approval::requirement(&gates, raw, &qualified(shared, raw))),
        None => {
            // Without gates the annotation still applies; without knowing
            // them nothing runs.
            Err("the ApprovalGates cannot be read yet: syncs wait until they can".into())
        }
    }
}

fn requests_api(shared: &Shared, raw: &Value) -> Api<DynamicObject> {
    let namespace = raw
        .pointer("/metadata/namespace")
        .and_then(Value::as_str)
        .unwrap_or(&shared.config.namespace);
    Api::namespaced_with(
        shared.client.clone(),
        namespace,
        &berth_cluster::bootstrap::syncrequest_resource(),
    )
}

/// The app's requests, newest first.
async fn requests_of(shared: &Shared, raw: &Value) -> Result<Vec<Value>, String> {
    let name = raw
        .pointer("/metadata/name")
        .and_then(Value::as_str)
        .unwrap_or_default();
    let selector = format!(
        "{REQUEST_APP_LABEL}={}",
        crate::record::app_label_value(name)
    );
    let list = requests_api(shared, raw)
        .list(&ListParams::default().labels(&selector))
        .await
        .map_err(|e| format!("listing the app's SyncRequests: {e}"))?;
    let mut items: Vec<Value> = list
        .items
        .iter()
        .filter_map(|o| serde_json::to_value(o).ok())
        // Another app whose long name shares the label value.
        .filter(|r| r.pointer("/spec/application").and_then(Value::as_str) == Some(name))
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
    Ok(items)
}

fn info(raw: &Value, key: &str) -> Option<String> {
    raw.pointer("/operation/info")
        .and_then(Value::as_array)?
        .iter()
        .find(|i| i.get("name").and_then(Value::as_str) == Some(key))
        .and_then(|i| i.get("value").and_then(Value::as_str))
        .map(String::from)
}

/// Who asked for the requested operation: the user the API server signed
/// for, verified; otherwise the claimed `initiatedBy`, unverified.
fn requester(signer: &Signer, raw: &Value) -> (String, bool, Option<String>) {
    let uid = raw
        .pointer("/metadata/uid")
        .and_then(Value::as_str)
        .unwrap_or_default();
    let sync = raw
        .pointer("/operation/sync")
        .cloned()
        .unwrap_or(Value::Null);
    if let (Some(user), Some(signature)) = (
        info(raw, approval::INFO_REQUESTER),
        info(raw, approval::INFO_SIGNATURE),
    ) {
        let reason = info(raw, approval::INFO_OVERRIDE).unwrap_or_default();
        if signer.verify(
            "requester",
            &approval::requester_payload(uid, &user, &sync, &reason),
            &signature,
        ) {
            let reason = (!reason.is_empty()).then_some(reason);
            return (user, true, reason);
        }
    }
    let claimed = raw
        .pointer("/operation/initiatedBy/username")
        .and_then(Value::as_str)
        .filter(|u| !u.is_empty())
        .unwrap_or("unknown")
        .to_string();
    (claimed, false, None)
}

/// The change summary kept with a request: what a sync would create,
/// update and prune, with each object's diff (Secret values are masked
/// in the comparison's diffs already).
fn summary(ready: &Ready) -> Value {
    use berth_engine::diff::Change;
    let (mut create, mut update, mut prune) = (0, 0, 0);
    let mut objects = Vec::new();
    for d in &ready.comparison.diffs {
        let change = match d.change {
            Change::None => continue,
            Change::Create => {
                create += 1;
                "create"
            }
            Change::Update => {
                update += 1;
                "update"
            }
            Change::Prune => {
                prune += 1;
                "prune"
            }
        };
        if objects.len() < SUMMARY_OBJECTS {
            let mut diff = d.unified();
            if diff.len() > SUMMARY_DIFF_BYTES {
                let mut cut = SUMMARY_DIFF_BYTES;
                while !diff.is_char_boundary(cut) {
                    cut -= 1;
                }
                diff.truncate(cut);
                diff.push_str("\n... (cut)\n");
            }
            objects.push(
                json!({"group": d.group, "kind": d.kind, "namespace": d.namespace,
                "name": d.name, "change": change, "diff": diff}),
            );
        }
    }
    json!({"create": create, "update": update, "prune": prune,
        "objects": objects, "truncated": create + update + prune > objects.len()})
}

/// The spec's hash, so a changed spec (parameters, source, destination)
/// supersedes pending requests.
fn spec_hash(raw: &Value) -> String {
    approval::binding(
        &[],
        &[raw.get("spec").cloned().unwrap_or(Value::Null)],
        &Value::Null,
    )["desiredHash"]
        .as_str()
        .unwrap_or_default()
        .to_string()
}

/// Whether `name` can name a SyncRequest.
fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 253
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !name.starts_with('-')
        && !name.ends_with('-')
}

fn random_suffix() -> String {
    use std::io::Read;
    let mut b = [0u8; 4];
    if std::fs::File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut b))
        .is_err()
    {
        let nanos = SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .map(|d| d.subsec_nanos())
            .unwrap_or_default();
        b = nanos.to_le_bytes();
    }
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// The commit author of the first source's revision, `Name <email>`.
async fn author(shared: &Arc<Shared>, raw: &Value, revision: &str) -> String {
    let url = raw
        .pointer("/spec/source/repoURL")
        .or_else(|| raw.pointer("/spec/sources/0/repoURL"))
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_string();
    if url.is_empty() || revision.len() != 40 {
        return String::new();
    }
    let repos = Arc::clone(&shared.repos);
    let revision = revision.to_string();
    tokio::task::spawn_blocking(move || {
        repos
            .commit_info(&url, &revision)
            .map(|c| c.author)
            .unwrap_or_default()
    })
    .await
    .unwrap_or_default()
}

/// The admission point for a sync of an app (`key` in the controller):
/// runs it when no gate covers the app, when it carries out a request
/// whose approvals hold for exactly this change, when it is an automated
/// sync (self-heal too) of a change already approved, or a break-glass
/// override; otherwise opens (or waits on) a request.
pub(crate) async fn admit(
    shared: &Arc<Shared>,
    key: &str,
    raw: &Value,
    ready: &Ready,
    request: &SyncRequest,
) -> Admit {
    let requirement = match requirement_of(shared, raw) {
        Ok(None) => return Admit::Run(None),
        Ok(Some(r)) => r,
        Err(message) => return Admit::Hold(message, None),
    };
    let Some(signer) = shared.signer.clone() else {
        return Admit::Hold(
            format!(
                "this app needs approvals ({}), and the signing key (Secret {}) could not be read: see the controller's log",
                requirement.sources().join(", "),
                approval::KEY_SECRET
            ),
            None,
        );
    };
    let binding = approval::binding(
        &ready.revisions,
        &ready.objects,
        &approval::options_of(request),
    );
    let now = jiff::Timestamp::now();
    let requests = match requests_of(shared, raw).await {
        Ok(r) => r,
        Err(message) => return Admit::Hold(message, None),
    };
    let name_of = |r: &Value| {
        r.pointer("/metadata/name")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string()
    };
    let approved_for_binding = requests.iter().find(|r| {
        r.pointer("/spec/binding") == Some(&binding)
            && matches!(
                approval::evaluate(&signer, r, &requirement, now),
                Verdict::Approved { .. }
            )
    });

    if !request.automated {
        let (user, verified, override_reason) = requester(&signer, raw);
        // Break glass: signed by the API server for a user with the
        // override right, with a reason.
        if let Some(reason) = override_reason {
            announce(
                shared,
                raw,
                EventType::Warning,
                "ApprovalOverridden",
                format!(
                    "{user} synced revision {} WITHOUT the required approvals ({}): {reason}",
                    ready.revisions.join(","),
                    requirement.sources().join(", ")
                ),
                &user,
            )
            .await;
            return Admit::Run(None);
        }
        // It carries out a request: that one must hold for this change.
        if let Some(carried) = info(raw, approval::INFO_REQUEST)
            && let Some(r) = requests.iter().find(|r| name_of(r) == carried)
            && r.pointer("/spec/operation").is_some()
        {
            let verdict = approval::evaluate(&signer, r, &requirement, now);
            if matches!(verdict, Verdict::Approved { .. }) {
                if r.pointer("/spec/binding") == Some(&binding) {
                    return Admit::Run(Some(carried));
                }
                set_phase(shared, raw, &carried, "Superseded",
                    "what would be applied changed after the approvals (revision, rendered objects or options)").await;
                return Admit::Refuse(format!(
                    "SyncRequest {carried}: the approved change no longer matches what would be applied (the revision, the rendered objects or the options changed); ask for a new sync"
                ));
            }
        }
        // A request for the same change by the same user is pending.
        if let Some(r) = requests.iter().find(|r| {
            r.pointer("/spec/binding") == Some(&binding)
                && r.pointer("/spec/requester/username")
                    .and_then(Value::as_str)
                    == Some(user.as_str())
                && matches!(
                    approval::evaluate(&signer, r, &requirement, now),
                    Verdict::Pending { .. }
                )
        }) {
            return Admit::Hold(
                format!("SyncRequest {} waits for approvals", name_of(r)),
                Some(name_of(r)),
            );
        }
        let chosen = info(raw, approval::INFO_REQUEST)
            .filter(|n| valid_name(n) && !requests.iter().any(|r| name_of(r) == *n));
        let mut operation = raw.get("operation").cloned().unwrap_or(Value::Null);
        if let Some(m) = operation.as_object_mut() {
            m.remove("info");
        }
        let follows_target = raw
            .pointer("/operation/sync/revision")
            .and_then(Value::as_str)
            .is_none_or(str::is_empty)
            && raw
                .pointer("/operation/sync/revisions")
                .is_none_or(|r| r.as_array().is_none_or(|a| a.is_empty()));
        return open(
            shared,
            key,
            raw,
            ready,
            &signer,
            &requirement,
            binding,
            Some(operation),
            (user, verified),
            follows_target,
            chosen,
        )
        .await;
    }

    // Automated (a new revision, or self-heal): only a change already
    // approved runs; otherwise one request per change.
    if let Some(r) = approved_for_binding {
        return Admit::Run(Some(name_of(r)));
    }
    if let Some(r) = requests.iter().find(|r| {
        r.pointer("/spec/binding") == Some(&binding)
            && r.pointer("/spec/automated").and_then(Value::as_bool) == Some(true)
            && !matches!(
                approval::evaluate(&signer, r, &requirement, now),
                Verdict::Forged
            )
    }) {
        let phase = r
            .pointer("/status/phase")
            .and_then(Value::as_str)
            .unwrap_or("Pending");
        return Admit::Hold(
            format!("SyncRequest {} for this change is {phase}", name_of(r)),
            Some(name_of(r)),
        );
    }
    open(
        shared,
        key,
        raw,
        ready,
        &signer,
        &requirement,
        binding,
        None,
        (approval::AUTOMATED_REQUESTER.to_string(), true),
        true,
        None,
    )
    .await
}

/// Opens a request for the change `binding`.
#[allow(clippy::too_many_arguments)]
async fn open(
    shared: &Arc<Shared>,
    key: &str,
    raw: &Value,
    ready: &Ready,
    signer: &Signer,
    requirement: &Requirement,
    binding: Value,
    operation: Option<Value>,
    (user, verified): (String, bool),
    follows_target: bool,
    chosen: Option<String>,
) -> Admit {
    let app_name = raw
        .pointer("/metadata/name")
        .and_then(Value::as_str)
        .unwrap_or_default();
    let name = chosen.unwrap_or_else(|| {
        let base: String = app_name.chars().take(240).collect();
        format!("{base}-{}", random_suffix())
    });
    let now = jiff::Timestamp::now();
    let ttl = jiff::SignedDuration::try_from(requirement.ttl)
        .unwrap_or(jiff::SignedDuration::from_hours(24));
    let expires = now.checked_add(ttl).unwrap_or(now);
    let author = author(
        shared,
        raw,
        ready
            .revisions
            .first()
            .map(String::as_str)
            .unwrap_or_default(),
    )
    .await;
    let mut spec = json!({
        "application": app_name,
        "applicationUID": raw.pointer("/metadata/uid"),
        "binding": binding,
        "automated": operation.is_none(),
        "operation": operation,
        "followsTarget": follows_target,
        "specHash": spec_hash(raw),
        "requester": {"username": user, "verified": verified},
        "author": author,
        "requiredApprovals": requirement.required(),
        "gates": requirement.sources(),
        "createdAt": rfc3339(SystemTime::now()),
        "expiresAt": expires.strftime("%Y-%m-%dT%H:%M:%SZ").to_string(),
        "summary": summary(ready),
    });
    if spec["operation"].is_null()
        && let Some(m) = spec.as_object_mut()
    {
        m.remove("operation");
    }
    spec["signature"] = json!(signer.sign("request", &spec));
    let obj = json!({
        "apiVersion": format!("{}/v1alpha1", berth_api::crds::BERTH_GROUP),
        "kind": "SyncRequest",
        "metadata": {
            "name": name,
            "namespace": raw.pointer("/metadata/namespace"),
            "labels": {REQUEST_APP_LABEL: crate::record::app_label_value(app_name)},
            "ownerReferences": [{"apiVersion": "argoproj.io/v1alpha1", "kind": "Application",
                "name": app_name, "uid": raw.pointer("/metadata/uid")}],
        },
        "spec": spec,
    });
    let Ok(obj) = serde_json::from_value::<DynamicObject>(obj) else {
        return Admit::Hold("a SyncRequest could not be built".into(), None);
    };
    let api = requests_api(shared, raw);
    if let Err(e) = api.create(&PostParams::default(), &obj).await {
        return Admit::Hold(format!("opening a SyncRequest: {e}"), None);
    }
    let status = json!({"status": {"phase": "Pending", "approvals": []}});
    if let Err(e) = api
        .patch_status(&name, &PatchParams::default(), &Patch::Merge(&status))
        .await
    {
        tracing::warn!(app = %key, request = %name, error = %e, "writing the request's phase");
    }
    announce(
        shared,
        raw,
        EventType::Normal,
        "ApprovalRequested",
        format!(
            "SyncRequest {name}: {user} asks to sync revision {} ({} approval(s) needed: {})",
            ready.revisions.join(","),
            requirement.required(),
            requirement.sources().join(", ")
        ),
        &user,
    )
    .await;
    Admit::Hold(
        format!("SyncRequest {name} waits for approvals"),
        Some(name),
    )
}

/// Sets a request's phase (and a message), as information: the
/// controller never reads it as authority.
async fn set_phase(shared: &Shared, raw: &Value, request: &str, phase: &str, message: &str) {
    let patch = json!({"status": {"phase": phase, "message": message, "updatedAt": rfc3339(SystemTime::now())}});
    if let Err(e) = requests_api(shared, raw)
        .patch_status(request, &PatchParams::default(), &Patch::Merge(&patch))
        .await
    {
        tracing::warn!(request, error = %e, "writing a SyncRequest's phase");
    }
}

/// A request was carried out.
pub(crate) async fn executed(shared: &Arc<Shared>, raw: &Value, request: &str) {
    let done = requests_api(shared, raw)
        .get_opt(request)
        .await
        .ok()
        .flatten()
        .and_then(|r| serde_json::to_value(r).ok())
        .and_then(|r| {
            r.pointer("/status/phase")
                .and_then(Value::as_str)
                .map(String::from)
        });
    if done.as_deref() == Some("Executed") {
        return;
    }
    set_phase(shared, raw, request, "Executed", "the approved sync ran").await;
    let user = raw
        .pointer("/operation/initiatedBy/username")
        .and_then(Value::as_str)
        .unwrap_or(approval::AUTOMATED_REQUESTER)
        .to_string();
    announce(
        shared,
        raw,
        EventType::Normal,
        "ApprovedSyncExecuted",
        format!("SyncRequest {request}: the approved sync ran"),
        &user,
    )
    .await;
}

/// Moves the app's requests along at each comparison (no operation
/// pending): expired, superseded by a new target or spec, rejected; an
/// approved manual request becomes the Application's `operation`. Returns
/// `status.berth.approval` for the app, `Null` when it is not gated.
pub(crate) async fn maintain(shared: &Arc<Shared>, key: &str, raw: &Value, ready: &Ready) -> Value {
    let requirement = match requirement_of(shared, raw) {
        Ok(Some(r)) => r,
        Ok(None) => return Value::Null,
        Err(message) => return json!({"message": message}),
    };
    let Some(signer) = shared.signer.clone() else {
        return json!({"required": requirement.required(), "message": "the signing key could not be read"});
    };
    let Ok(requests) = requests_of(shared, raw).await else {
        return json!({"required": requirement.required(), "gates": requirement.sources()});
    };
    let now = jiff::Timestamp::now();
    let hash = spec_hash(raw);
    let mut shown = Value::Null;
    for r in &requests {
        let name = r
            .pointer("/metadata/name")
            .and_then(Value::as_str)
            .unwrap_or_default();
        let phase = r
            .pointer("/status/phase")
            .and_then(Value::as_str)
            .unwrap_or("Pending");
        if matches!(
            phase,
            "Executed" | "Rejected" | "Expired" | "Superseded" | "Forged"
        ) {
            continue;
        }
        let verdict = approval::evaluate(&signer, r, &requirement, now);
        let stale = r.pointer("/spec/specHash").and_then(Value::as_str) != Some(hash.as_str())
            || (r.pointer("/spec/followsTarget").and_then(Value::as_bool) == Some(true)
                && r.pointer("/spec/binding/revisions") != Some(&json!(ready.revisions)));
        let user = r
            .pointer("/spec/requester/username")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string();
        match verdict {
            Verdict::Forged => {
                set_phase(shared, raw, name, "Forged", "not signed by Berth: ignored").await;
                tracing::warn!(app = %key, request = %name, "a SyncRequest without a valid signature: ignored");
            }
            Verdict::Rejected { by, comment } => {
                set_phase(
                    shared,
                    raw,
                    name,
                    "Rejected",
                    &format!("rejected by {by}: {comment}"),
                )
                .await;
                announce(
                    shared,
                    raw,
                    EventType::Warning,
                    "ApprovalRejected",
                    format!("SyncRequest {name} rejected by {by}: {comment}"),
                    &by,
                )
                .await;
            }
            Verdict::Expired => {
                set_phase(shared, raw, name, "Expired", "not approved in time").await;
                announce(
                    shared,
                    raw,
                    EventType::Warning,
                    "ApprovalExpired",
                    format!("SyncRequest {name} expired without the approvals it needed"),
                    &user,
                )
                .await;
            }
            Verdict::Pending { .. } | Verdict::Approved { .. } if stale => {
                set_phase(
                    shared,
                    raw,
                    name,
                    "Superseded",
                    "a new revision or a changed spec",
                )
                .await;
                announce(
                    shared,
                    raw,
                    EventType::Normal,
                    "ApprovalSuperseded",
                    format!(
                        "SyncRequest {name} superseded: the app's target revision or spec changed"
                    ),
                    &user,
                )
                .await;
            }
            Verdict::Pending { have, need } => {
                if phase != "Pending" {
                    set_phase(shared, raw, name, "Pending", "").await;
                }
                if shown.is_null() {
                    shown = json!({"request": name, "phase": "Pending", "approvals": have, "required": need});
                }
            }
            Verdict::Approved { approvers } => {
                if phase != "Approved" {
                    set_phase(
                        shared,
                        raw,
                        name,
                        "Approved",
                        &format!("approved by {}", approvers.join(", ")),
                    )
                    .await;
                }
                if shown.is_null() {
                    shown = json!({"request": name, "phase": "Approved", "approvers": approvers});
                }
                // A manual request runs as the app's operation.
                if let Some(operation) = r.pointer("/spec/operation").filter(|o| o.is_object())
                    && raw.get("operation").is_none_or(Value::is_null)
                {
                    let mut op = operation.clone();
                    op["initiatedBy"] = json!({"username": user});
                    op["info"] = json!([
                        {"name": approval::INFO_REQUEST, "value": name},
                        {"name": "berth.io/approved-by", "value": approvers.join(", ")},
                    ]);
                    if let Err(e) = shared.patch_app(key, &json!({"operation": op})).await {
                        tracing::warn!(app = %key, request = %name, error = %e, "starting an approved sync");
                    } else {
                        tracing::info!(app = %key, request = %name, "approved: the sync starts");
                    }
                }
            }
        }
    }
    let mut out = json!({"required": requirement.required(), "gates": requirement.sources()});
    if let Some(m) = shown.as_object() {
        for (k, v) in m {
            out[k] = v.clone();
        }
    }
    out
}

/// An approval event: a Kubernetes Event on the app and an entry in the
/// audit log.
async fn announce(
    shared: &Shared,
    raw: &Value,
    type_: EventType,
    reason: &str,
    note: String,
    user: &str,
) {
    shared.event(raw, type_, reason, note.clone()).await;
    let app = raw
        .pointer("/metadata/name")
        .and_then(Value::as_str)
        .unwrap_or_default();
    let entry = json!({
        "apiVersion": format!("{}/v1alpha1", berth_api::crds::BERTH_GROUP),
        "kind": "AuditEntry",
        "metadata": {"generateName": "audit-", "namespace": shared.config.namespace,
            "labels": {"berth.io/application": app}},
        "spec": {"time": rfc3339(SystemTime::now()), "user": user, "application": app,
            "action": reason, "message": note, "method": "", "path": "", "status": 0, "remoteAddr": ""},
    });
    let api: Api<DynamicObject> = Api::namespaced_with(
        shared.client.clone(),
        &shared.config.namespace,
        &berth_cluster::bootstrap::auditentry_resource(),
    );
    match serde_json::from_value::<DynamicObject>(entry) {
        Ok(o) => {
            if let Err(e) = api.create(&PostParams::default(), &o).await {
                tracing::warn!(app, reason, error = %e, "writing an audit entry");
            }
        }
        Err(e) => tracing::warn!(error = %e, "an audit entry"),
    }
    if type_ == EventType::Warning {
        tracing::warn!(app, reason, "{note}");
    } else {
        tracing::info!(app, reason, "{note}");
    }
}
