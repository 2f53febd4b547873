//! Approval gates at the controller's admission point: every sync of a
//! gated app, however it was asked for (the API, a direct write of
//! `operation`, the automated policy, self-heal), passes [`admit`] before
//! anything is applied. A sync without enough valid approvals for exactly
//! the change about to be applied becomes (or waits on) a `SyncRequest`;
//! [`maintain`] moves requests along (expired, superseded, rejected) and
//! turns an approved request into the Application's `operation`, which
//! then runs like any other, crash-safe resume included.
//!
//! What cannot be undone by editing a request is kept in cluster-scoped
//! `ApprovalRecord`s (a rejection, an execution, an override's nonce):
//! an app's editors cannot write cluster-scoped objects.

use std::sync::Arc;
use std::time::SystemTime;

use berth_api::time::rfc3339;
use kube::Api;
use kube::api::{DeleteParams, DynamicObject, ListParams, Patch, PatchParams, PostParams};
use kube::runtime::events::EventType;
use serde_json::{Value, json};

use crate::approval::{self, Gate, Requirement, Signer, Target, Verdict};
use crate::controller::{Ready, Shared};
use crate::policy::SyncRequest;

/// Requests of one app carry this label (its name, as SyncRecords do).
pub const REQUEST_APP_LABEL: &str = crate::record::APP_LABEL;
/// At most this many objects are listed in a request's change summary.
const SUMMARY_OBJECTS: usize = 300;
/// Each object's diff in the summary is cut to this many bytes.
const SUMMARY_DIFF_BYTES: usize = 16 * 1024;
/// The summary's diffs together stay under this (objects are limited in
/// size by the API server).
const SUMMARY_BYTES: usize = 256 * 1024;
/// Closed requests kept per app (the newest); older ones are deleted.
const REQUESTS_KEPT: usize = 20;

/// What the admission point decides for a sync of a gated app.
#[derive(Debug)]
pub(crate) enum Admit {
    /// Run it; when it carries out a request, record that one executed.
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

/// Where the app deploys, as resolved: its cluster, and every namespace it
/// writes to (the destination's and the rendered objects').
fn target_of(raw: &Value, ready: &Ready) -> Target {
    let mut namespaces = vec![
        raw.pointer("/spec/destination/namespace")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string(),
    ];
    for o in &ready.objects {
        if let Some(ns) = o.pointer("/metadata/namespace").and_then(Value::as_str)
            && !namespaces.iter().any(|n| n == ns)
        {
            namespaces.push(ns.to_string());
        }
    }
    Target {
        server: ready.cluster.server.trim_end_matches('/').to_string(),
        name: ready.cluster.name.clone(),
        namespaces,
    }
}

/// The binding of a sync of `raw` as `ready` renders it, with `request`'s
/// options.
pub(crate) fn binding_for(raw: &Value, ready: &Ready, request: &SyncRequest) -> Value {
    approval::binding(
        &binding_target(raw, ready),
        &ready.revisions,
        &ready.objects,
        &approval::options_of(request),
    )
}

/// The binding of the change carried out last for this app (its newest
/// `Executed` ApprovalRecord): the state self-heal may restore.
pub(crate) async fn last_executed(shared: &Shared, raw: &Value) -> Option<Value> {
    let records = records_of(shared, raw).await.ok()?;
    records
        .iter()
        .filter(|r| r.pointer("/spec/kind").and_then(Value::as_str) == Some("Executed"))
        .max_by_key(|r| {
            r.pointer("/spec/at")
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_string()
        })
        .and_then(|r| r.pointer("/spec/binding").cloned())
}

/// What an approval of this app's change binds besides the change: the
/// app itself (its uid: a re-created app starts afresh), its cluster and
/// namespace, and its spec.
fn binding_target(raw: &Value, ready: &Ready) -> Value {
    let text = |p: &str| raw.pointer(p).and_then(Value::as_str).unwrap_or_default();
    json!({
        "uid": text("/metadata/uid"),
        "namespace": text("/metadata/namespace"),
        "name": text("/metadata/name"),
        "server": ready.cluster.server.trim_end_matches('/'),
        "destinationNamespace": text("/spec/destination/namespace"),
        "specHash": spec_hash(raw),
    })
}

/// What the gates require of `raw`'s syncs to `target`; `Err` when the
/// gates are not known (the admission holds).
pub(crate) fn requirement_of(
    shared: &Shared,
    raw: &Value,
    target: &Target,
) -> Result<Option<Requirement>, String> {
    match shared.gates() {
        Some(gates) => Ok(approval::requirement(
            &gates,
            raw,
            &approval::qualified_name(raw, &shared.config.namespace),
            target,
        )),
        None => Err("the ApprovalGates cannot be read yet: syncs wait until they can".into()),
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

fn records_api(shared: &Shared) -> Api<DynamicObject> {
    Api::all_with(
        shared.client.clone(),
        &berth_cluster::bootstrap::approvalrecord_resource(),
    )
}

fn name_of(r: &Value) -> String {
    r.pointer("/metadata/name")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_string()
}

fn signature_of(r: &Value) -> String {
    r.pointer("/spec/signature")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_string()
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

/// The app's ApprovalRecords (by its uid).
async fn records_of(shared: &Shared, raw: &Value) -> Result<Vec<Value>, String> {
    let uid = raw
        .pointer("/metadata/uid")
        .and_then(Value::as_str)
        .unwrap_or_default();
    let list = records_api(shared)
        .list(&ListParams::default().labels(&format!("{}={uid}", approval::RECORD_UID_LABEL)))
        .await
        .map_err(|e| format!("listing the app's ApprovalRecords: {e}"))?;
    Ok(list
        .items
        .iter()
        .filter_map(|o| serde_json::to_value(o).ok())
        .filter(|r| r.pointer("/spec/applicationUID").and_then(Value::as_str) == Some(uid))
        .collect())
}

/// Writes a record; `Ok(false)` when one of that name exists (a nonce or a
/// request already used).
async fn write_record(shared: &Shared, record: Value) -> Result<bool, String> {
    let obj: DynamicObject =
        serde_json::from_value(record).map_err(|e| format!("an ApprovalRecord: {e}"))?;
    match records_api(shared)
        .create(&PostParams::default(), &obj)
        .await
    {
        Ok(_) => Ok(true),
        Err(kube::Error::Api(s)) if s.code == 409 => Ok(false),
        Err(e) => Err(format!("writing an ApprovalRecord: {e}")),
    }
}

/// The record of `kind` for `key` among `records`.
fn has_record(records: &[Value], kind: &str, key: &str) -> bool {
    records.iter().any(|r| {
        r.pointer("/spec/kind").and_then(Value::as_str) == Some(kind)
            && r.pointer("/spec/key").and_then(Value::as_str) == Some(key)
    })
}

fn info(raw: &Value, key: &str) -> Option<String> {
    raw.pointer("/operation/info")
        .and_then(Value::as_array)?
        .iter()
        .find(|i| i.get("name").and_then(Value::as_str) == Some(key))
        .and_then(|i| i.get("value").and_then(Value::as_str))
        .map(String::from)
}

/// Who asked for the requested operation. Verified when the API server
/// signed it for this app, this `sync`, lately (a copy replayed later is
/// not), and its nonce names no request yet; otherwise the claimed
/// `initiatedBy`, unverified. With the override reason the server signed.
struct Requester {
    user: String,
    verified: bool,
    nonce: Option<String>,
    override_reason: Option<String>,
}

fn requester(signer: &Signer, raw: &Value, requests: &[Value]) -> Requester {
    let uid = raw
        .pointer("/metadata/uid")
        .and_then(Value::as_str)
        .unwrap_or_default();
    let sync = raw
        .pointer("/operation/sync")
        .cloned()
        .unwrap_or(Value::Null);
    let signed = (|| {
        let user = info(raw, approval::INFO_REQUESTER)?;
        let signature = info(raw, approval::INFO_SIGNATURE)?;
        let nonce = info(raw, approval::INFO_REQUEST)?;
        let at = info(raw, approval::INFO_SIGNED_AT)?;
        let reason = info(raw, approval::INFO_OVERRIDE).unwrap_or_default();
        let payload = approval::requester_payload(uid, &user, &sync, &reason, &nonce, &at);
        if !signer.verify("requester", &payload, &signature) {
            return None;
        }
        let age = jiff::Timestamp::now().duration_since(at.parse::<jiff::Timestamp>().ok()?);
        let fresh = age.as_secs() >= -60 && age.unsigned_abs() <= approval::REQUESTER_SIGNATURE_TTL;
        let unused = !requests.iter().any(|r| name_of(r) == nonce);
        (fresh && unused).then_some((user, nonce, reason))
    })();
    match signed {
        Some((user, nonce, reason)) => Requester {
            user,
            verified: true,
            nonce: Some(nonce),
            override_reason: (!reason.is_empty()).then_some(reason),
        },
        None => Requester {
            user: raw
                .pointer("/operation/initiatedBy/username")
                .and_then(Value::as_str)
                .filter(|u| !u.is_empty())
                .unwrap_or("unknown")
                .to_string(),
            verified: false,
            nonce: None,
            override_reason: None,
        },
    }
}

/// The change summary kept with a request: what a sync would create,
/// update and prune, with each object's diff (Secret values are masked
/// in the comparison's diffs already).
fn summary(ready: &Ready) -> Value {
    use berth_engine::diff::Change;
    let (mut create, mut update, mut prune) = (0, 0, 0);
    let mut objects = Vec::new();
    let mut used = 0;
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
        if objects.len() < SUMMARY_OBJECTS && used < SUMMARY_BYTES {
            let mut diff = d.unified();
            if diff.len() > SUMMARY_DIFF_BYTES {
                let mut cut = SUMMARY_DIFF_BYTES;
                while !diff.is_char_boundary(cut) {
                    cut -= 1;
                }
                diff.truncate(cut);
                diff.push_str("\n... (cut)\n");
            }
            used += diff.len();
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
/// supersedes pending requests and voids approvals.
fn spec_hash(raw: &Value) -> String {
    approval::hash_of(&raw.get("spec").cloned().unwrap_or(Value::Null))
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
/// runs it when no gate covers the app, when it carries out an approved
/// request (once) whose approvals hold for exactly this change, when it is
/// an automated sync (self-heal too) back to the change executed last, or
/// a break-glass override; otherwise opens (or waits on) a request.
pub(crate) async fn admit(
    shared: &Arc<Shared>,
    key: &str,
    raw: &Value,
    ready: &Ready,
    request: &SyncRequest,
) -> Admit {
    let target = target_of(raw, ready);
    let requirement = match requirement_of(shared, raw, &target) {
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
        &binding_target(raw, ready),
        &ready.revisions,
        &ready.objects,
        &approval::options_of(request),
    );
    let now = jiff::Timestamp::now();
    let (requests, records) = match (
        requests_of(shared, raw).await,
        records_of(shared, raw).await,
    ) {
        (Ok(r), Ok(c)) => (r, c),
        (Err(m), _) | (_, Err(m)) => return Admit::Hold(m, None),
    };
    let verdict = |r: &Value| approval::evaluate(&signer, r, &requirement, &records, now);

    if !request.automated {
        let who = requester(&signer, raw, &requests);
        // Break glass: signed by the API server for a user with the
        // override right, with a reason; its nonce is used once.
        if let (Some(reason), Some(nonce)) = (&who.override_reason, &who.nonce) {
            let record = approval::record(
                "Overridden",
                nonce,
                raw,
                "",
                &binding,
                &who.user,
                reason,
                &rfc3339(SystemTime::now()),
            );
            match write_record(shared, record).await {
                Ok(true) => {
                    announce(
                        shared,
                        raw,
                        EventType::Warning,
                        "ApprovalOverridden",
                        format!(
                            "{} synced revision {} WITHOUT the required approvals ({}): {reason}",
                            who.user,
                            ready.revisions.join(","),
                            requirement.sources().join(", ")
                        ),
                        &who.user,
                    )
                    .await;
                    return Admit::Run(None);
                }
                Ok(false) => {
                    return Admit::Refuse(
                        "this break-glass override was used already: ask for a new one".into(),
                    );
                }
                Err(m) => return Admit::Hold(m, None),
            }
        }
        // It carries out a request: approved, not carried out before, and
        // for exactly this change.
        if let Some(carried) = info(raw, approval::INFO_REQUEST)
            && let Some(r) = requests
                .iter()
                .find(|r| name_of(r) == carried && r.pointer("/spec/operation").is_some())
            && matches!(verdict(r), Verdict::Approved { .. })
        {
            if has_record(&records, "Executed", &signature_of(r)) {
                return Admit::Refuse(format!(
                    "SyncRequest {carried} was carried out already; ask for a new sync"
                ));
            }
            if r.pointer("/spec/binding") == Some(&binding) {
                return Admit::Run(Some(carried));
            }
            set_phase(
                shared,
                raw,
                &carried,
                "Superseded",
                "what would be applied changed after the approvals (revision, rendered objects, spec or options)",
            )
            .await;
            return Admit::Refuse(format!(
                "SyncRequest {carried}: the approved change no longer matches what would be applied (the revision, the rendered objects, the spec or the options changed); ask for a new sync"
            ));
        }
        // A request for the same change by the same user is pending.
        if let Some(r) = requests.iter().find(|r| {
            r.pointer("/spec/binding") == Some(&binding)
                && r.pointer("/spec/requester/username")
                    .and_then(Value::as_str)
                    .is_some_and(|u| approval::same_user(u, &who.user))
                && matches!(verdict(r), Verdict::Pending { .. })
        }) {
            return Admit::Hold(
                format!("SyncRequest {} waits for approvals", name_of(r)),
                Some(name_of(r)),
            );
        }
        let mut operation = raw.get("operation").cloned().unwrap_or(Value::Null);
        if let Some(m) = operation.as_object_mut() {
            m.remove("info");
        }
        let pinned = |p: &str| {
            raw.pointer(p).is_some_and(|r| match r {
                Value::String(s) => !s.is_empty(),
                Value::Array(a) => a.iter().any(|x| x.as_str().is_some_and(|s| !s.is_empty())),
                _ => false,
            })
        };
        let follows_target =
            !pinned("/operation/sync/revision") && !pinned("/operation/sync/revisions");
        let chosen = who.nonce.clone().filter(|n| valid_name(n));
        return open(
            shared,
            key,
            raw,
            ready,
            Opening {
                signer: &signer,
                requirement: &requirement,
                binding,
                operation: Some(operation),
                requester: (who.user, who.verified),
                follows_target,
                chosen,
            },
        )
        .await;
    }

    // Automated. Self-heal: back to the change carried out last.
    let last = records
        .iter()
        .filter(|r| r.pointer("/spec/kind").and_then(Value::as_str) == Some("Executed"))
        .max_by_key(|r| {
            r.pointer("/spec/at")
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_string()
        });
    if last.and_then(|r| r.pointer("/spec/binding")) == Some(&binding) {
        return Admit::Run(None);
    }
    // A new change: its request, approved and not carried out yet, runs.
    if let Some(r) = requests.iter().find(|r| {
        r.pointer("/spec/binding") == Some(&binding)
            && r.pointer("/spec/automated").and_then(Value::as_bool) == Some(true)
            && !has_record(&records, "Executed", &signature_of(r))
            && matches!(verdict(r), Verdict::Approved { .. })
    }) {
        return Admit::Run(Some(name_of(r)));
    }
    // Pending or closed: one request per change (a new one after expiry).
    if let Some(r) = requests.iter().find(|r| {
        r.pointer("/spec/binding") == Some(&binding)
            && r.pointer("/spec/automated").and_then(Value::as_bool) == Some(true)
            && !matches!(verdict(r), Verdict::Forged | Verdict::Expired)
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
    // Older automated requests of this app are superseded by this one.
    for r in &requests {
        if r.pointer("/spec/automated").and_then(Value::as_bool) == Some(true)
            && matches!(verdict(r), Verdict::Pending { .. })
            && r.pointer("/status/phase").and_then(Value::as_str) != Some("Superseded")
        {
            set_phase(
                shared,
                raw,
                &name_of(r),
                "Superseded",
                "a newer change to sync",
            )
            .await;
        }
    }
    open(
        shared,
        key,
        raw,
        ready,
        Opening {
            signer: &signer,
            requirement: &requirement,
            binding,
            operation: None,
            // Whoever changed the target is not known: one approval more.
            requester: (approval::AUTOMATED_REQUESTER.to_string(), false),
            follows_target: true,
            chosen: None,
        },
    )
    .await
}

/// What a new request is made of.
struct Opening<'a> {
    signer: &'a Signer,
    requirement: &'a Requirement,
    binding: Value,
    operation: Option<Value>,
    requester: (String, bool),
    follows_target: bool,
    chosen: Option<String>,
}

/// Opens a request for the change `binding`.
async fn open(
    shared: &Arc<Shared>,
    key: &str,
    raw: &Value,
    ready: &Ready,
    o: Opening<'_>,
) -> Admit {
    let app_name = raw
        .pointer("/metadata/name")
        .and_then(Value::as_str)
        .unwrap_or_default();
    let name = o.chosen.unwrap_or_else(|| {
        let base: String = app_name.chars().take(240).collect();
        format!("{base}-{}", random_suffix())
    });
    let (user, verified) = o.requester;
    let now = jiff::Timestamp::now();
    let ttl = jiff::SignedDuration::try_from(o.requirement.ttl)
        .unwrap_or(jiff::SignedDuration::from_hours(24));
    let expires = now.checked_add(ttl).unwrap_or_else(|_| {
        now.checked_add(jiff::SignedDuration::from_hours(24))
            .unwrap_or(now)
    });
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
        "binding": o.binding,
        "automated": o.operation.is_none(),
        "operation": o.operation,
        "followsTarget": o.follows_target,
        "requester": {"username": user, "verified": verified},
        "author": author,
        "requiredApprovals": o.requirement.required(),
        "gates": o.requirement.sources(),
        "createdAt": rfc3339(SystemTime::now()),
        "expiresAt": expires.strftime("%Y-%m-%dT%H:%M:%SZ").to_string(),
        "summary": summary(ready),
    });
    if spec["operation"].is_null()
        && let Some(m) = spec.as_object_mut()
    {
        m.remove("operation");
    }
    spec["signature"] = json!(o.signer.sign("request", &spec));
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
            o.requirement.required(),
            o.requirement.sources().join(", ")
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

/// A request was carried out: its ApprovalRecord (so it never runs
/// again, and self-heal knows the approved state), its phase, the audit.
pub(crate) async fn executed(shared: &Arc<Shared>, raw: &Value, request: &str) {
    let Ok(Some(obj)) = requests_api(shared, raw).get_opt(request).await else {
        return;
    };
    let Ok(r) = serde_json::to_value(obj) else {
        return;
    };
    let user = r
        .pointer("/spec/requester/username")
        .and_then(Value::as_str)
        .unwrap_or(approval::AUTOMATED_REQUESTER)
        .to_string();
    let record = approval::record(
        "Executed",
        &signature_of(&r),
        raw,
        request,
        r.pointer("/spec/binding").unwrap_or(&Value::Null),
        &user,
        "",
        &rfc3339(SystemTime::now()),
    );
    if let Err(e) = write_record(shared, record).await {
        tracing::warn!(request, error = %e, "recording an executed request");
    }
    set_phase(shared, raw, request, "Executed", "the approved sync ran").await;
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
/// pending): expired, superseded by a new target or spec, rejected; the
/// newest approved manual request becomes the Application's `operation`.
/// Deletes closed requests beyond the newest few. Returns
/// `status.berth.approval` for the app, `Null` when it is not gated.
pub(crate) async fn maintain(shared: &Arc<Shared>, key: &str, raw: &Value, ready: &Ready) -> Value {
    let target = target_of(raw, ready);
    let requirement = match requirement_of(shared, raw, &target) {
        Ok(Some(r)) => r,
        Ok(None) => return Value::Null,
        Err(message) => return json!({"message": message}),
    };
    let summary_of = || json!({"required": requirement.required(), "gates": requirement.sources()});
    let Some(signer) = shared.signer.clone() else {
        let mut out = summary_of();
        out["message"] = json!("the signing key could not be read");
        return out;
    };
    let (Ok(requests), Ok(records)) = (
        requests_of(shared, raw).await,
        records_of(shared, raw).await,
    ) else {
        return summary_of();
    };
    let now = jiff::Timestamp::now();
    let current = binding_target(raw, ready);
    let mut shown = Value::Null;
    let mut launched = false;
    let mut closed = 0;
    for r in &requests {
        let name = name_of(r);
        let phase = r
            .pointer("/status/phase")
            .and_then(Value::as_str)
            .unwrap_or("Pending");
        let verdict = approval::evaluate(&signer, r, &requirement, &records, now);
        let executed = has_record(&records, "Executed", &signature_of(r));
        if executed
            || matches!(
                verdict,
                Verdict::Forged | Verdict::Rejected { .. } | Verdict::Expired
            )
            || phase == "Superseded"
        {
            closed += 1;
            if closed > REQUESTS_KEPT {
                let _ = requests_api(shared, raw)
                    .delete(&name, &DeleteParams::default())
                    .await;
                continue;
            }
        }
        if executed {
            if phase != "Executed" {
                set_phase(shared, raw, &name, "Executed", "the approved sync ran").await;
            }
            continue;
        }
        let stale = r.pointer("/spec/binding/target") != Some(&current)
            || (r.pointer("/spec/followsTarget").and_then(Value::as_bool) == Some(true)
                && r.pointer("/spec/binding/revisions") != Some(&json!(ready.revisions)));
        let user = r
            .pointer("/spec/requester/username")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string();
        match verdict {
            Verdict::Forged => {
                if phase != "Forged" {
                    set_phase(shared, raw, &name, "Forged", "not signed by Berth: ignored").await;
                    tracing::warn!(app = %key, request = %name, "a SyncRequest without a valid signature: ignored");
                }
            }
            Verdict::Rejected { by, comment } => {
                if phase != "Rejected" {
                    set_phase(
                        shared,
                        raw,
                        &name,
                        "Rejected",
                        &format!("rejected by {by}: {comment}"),
                    )
                    .await;
                }
            }
            Verdict::Expired => {
                if phase != "Expired" {
                    set_phase(shared, raw, &name, "Expired", "not approved in time").await;
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
            }
            _ if phase == "Superseded" => {}
            Verdict::Pending { .. } | Verdict::Approved { .. } if stale => {
                set_phase(
                    shared,
                    raw,
                    &name,
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
                    set_phase(shared, raw, &name, "Pending", "").await;
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
                        &name,
                        "Approved",
                        &format!("approved by {}", approvers.join(", ")),
                    )
                    .await;
                }
                if shown.is_null() {
                    shown = json!({"request": name, "phase": "Approved", "approvers": approvers});
                }
                // The newest approved manual request runs as the app's
                // operation; the version guard keeps an operation someone
                // writes meanwhile.
                if !launched
                    && let Some(operation) = r.pointer("/spec/operation").filter(|o| o.is_object())
                    && raw.get("operation").is_none_or(Value::is_null)
                {
                    launched = true;
                    let mut op = operation.clone();
                    op["initiatedBy"] = json!({"username": user});
                    op["info"] = json!([
                        {"name": approval::INFO_REQUEST, "value": name},
                        {"name": "berth.io/approved-by", "value": approvers.join(", ")},
                    ]);
                    let patch = json!({
                        "metadata": {"resourceVersion": raw.pointer("/metadata/resourceVersion")},
                        "operation": op,
                    });
                    match shared.patch_app(key, &patch).await {
                        Ok(_) => {
                            tracing::info!(app = %key, request = %name, "approved: the sync starts")
                        }
                        Err(e) => {
                            tracing::warn!(app = %key, request = %name, error = %e, "starting an approved sync")
                        }
                    }
                }
            }
        }
    }
    // Every key, so a merge patch of the status drops those of an
    // earlier state.
    let mut out = json!({"request": null, "phase": null, "approvals": null,
        "approvers": null, "message": null});
    for (k, v) in summary_of()
        .as_object()
        .into_iter()
        .flatten()
        .chain(shown.as_object().into_iter().flatten())
    {
        out[k] = v.clone();
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
