//! Sync approval gates (an extension): which apps need approvals before a
//! sync runs (`ApprovalGate`, cluster-scoped, so only administrators
//! write them), what one approval binds to (the revision, a hash of the
//! rendered objects and the options that change what is applied), and how
//! the approvals of a `SyncRequest` are counted.
//!
//! Nothing here trusts what a user with write access to Applications or to
//! Berth's namespace could have written: a request counts only when the
//! controller's signature over its spec holds, an approval only when the
//! API server's signature over it (which names the request's signature,
//! hence its binding) holds and it was made before the request expired.
//! Both signatures are HMAC-SHA256 with a key kept in the Secret
//! [`KEY_SECRET`], which such a user cannot read.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use hmac::{Hmac, Mac};
use k8s_openapi::api::core::v1::Secret;
use kube::api::{ObjectMeta, PostParams};
use kube::{Api, Client};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use crate::policy::SyncRequest;

/// The Secret, in the control namespace, that holds the signing key.
pub const KEY_SECRET: &str = "berth-approval-key";
/// An Application annotation that raises the approvals its syncs need
/// (never lowers what a gate asks).
pub const REQUIRED_ANNOTATION: &str = "berth.io/required-approvals";
/// `operation.info` entry: who asked for the sync (the API server writes it).
pub const INFO_REQUESTER: &str = "berth.io/requester";
/// `operation.info` entry: the API server's signature over the request.
pub const INFO_SIGNATURE: &str = "berth.io/signature";
/// `operation.info` entry: the SyncRequest an operation carries out, or
/// the name the API server chose for the request it opens.
pub const INFO_REQUEST: &str = "berth.io/request";
/// `operation.info` entry: when the API server signed the requester.
pub const INFO_SIGNED_AT: &str = "berth.io/signed-at";
/// `operation.info` entry: the API server found the app gated (for the
/// CLI; the controller decides on its own).
pub const INFO_GATED: &str = "berth.io/gated";
/// `operation.info` entry: a break-glass sync's reason.
pub const INFO_OVERRIDE: &str = "berth.io/override-reason";
/// The requester of requests the automated policy opens.
pub const AUTOMATED_REQUESTER: &str = "automated-sync";
/// How long a request stays open when no gate says.
pub const DEFAULT_TTL: Duration = Duration::from_secs(24 * 3600);
/// What a gate that cannot be read requires: more than any valid gate.
pub const UNREADABLE_GATE_APPROVALS: u32 = 101;
/// How long the API server's signature of a requester is good for: a
/// copy replayed later is not trusted.
pub const REQUESTER_SIGNATURE_TTL: Duration = Duration::from_secs(600);

/// The signing key could not be had.
#[derive(Debug, thiserror::Error)]
pub enum ApprovalError {
    /// The Secret could not be read or created.
    #[error("reading or creating Secret {namespace}/{KEY_SECRET}: {source}")]
    Key {
        /// The control namespace.
        namespace: String,
        /// The client error.
        source: kube::Error,
    },
    /// The Secret holds no usable key.
    #[error(
        "Secret {namespace}/{KEY_SECRET} has no usable key (data.key, 32 bytes or more): delete it and restart Berth to make a new one (pending approvals are then void)"
    )]
    KeyFormat {
        /// The control namespace.
        namespace: String,
    },
    /// No random bytes for a new key.
    #[error("reading random bytes for a new signing key: {0}")]
    Random(std::io::Error),
}

/// Signs and checks requests and approvals.
#[derive(Clone)]
pub struct Signer {
    key: Arc<Vec<u8>>,
}

impl std::fmt::Debug for Signer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Signer(..)")
    }
}

impl Signer {
    /// The key of [`KEY_SECRET`] in `namespace`, made (32 random bytes)
    /// when there is none; two replicas starting together agree on the
    /// first one written.
    pub async fn load_or_create(client: &Client, namespace: &str) -> Result<Signer, ApprovalError> {
        let secrets: Api<Secret> = Api::namespaced(client.clone(), namespace);
        let key_err = |source| ApprovalError::Key {
            namespace: namespace.to_string(),
            source,
        };
        for _ in 0..3 {
            if let Some(secret) = secrets.get_opt(KEY_SECRET).await.map_err(key_err)? {
                let key = secret
                    .data
                    .as_ref()
                    .and_then(|d| d.get("key"))
                    .map(|k| k.0.clone())
                    .filter(|k| k.len() >= 32)
                    .ok_or_else(|| ApprovalError::KeyFormat {
                        namespace: namespace.to_string(),
                    })?;
                return Ok(Signer::from_key(key));
            }
            let mut key = vec![0u8; 32];
            {
                use std::io::Read;
                std::fs::File::open("/dev/urandom")
                    .and_then(|mut f| f.read_exact(&mut key))
                    .map_err(ApprovalError::Random)?;
            }
            let secret = Secret {
                metadata: ObjectMeta {
                    name: Some(KEY_SECRET.into()),
                    namespace: Some(namespace.into()),
                    labels: Some(
                        [("app.kubernetes.io/part-of".to_string(), "berth".to_string())].into(),
                    ),
                    ..ObjectMeta::default()
                },
                data: Some([("key".to_string(), k8s_openapi::ByteString(key))].into()),
                ..Secret::default()
            };
            match secrets.create(&PostParams::default(), &secret).await {
                Ok(_) => {}
                // Another replica wrote one first: read it.
                Err(kube::Error::Api(s)) if s.code == 409 => {}
                Err(e) => return Err(key_err(e)),
            }
        }
        Err(ApprovalError::KeyFormat {
            namespace: namespace.to_string(),
        })
    }

    /// A signer with this key.
    pub fn from_key(key: Vec<u8>) -> Signer {
        Signer { key: Arc::new(key) }
    }

    fn mac(&self, purpose: &str, payload: &Value) -> Hmac<Sha256> {
        // HMAC's own key preparation (hashed when longer than a block,
        // zero-padded), done here so the key is a block and the
        // constructor cannot fail.
        let mut block = [0u8; 64];
        if self.key.len() > block.len() {
            block[..32].copy_from_slice(&Sha256::digest(self.key.as_slice()));
        } else {
            block[..self.key.len()].copy_from_slice(&self.key);
        }
        let mut mac = <Hmac<Sha256> as hmac::digest::KeyInit>::new(&block.into());
        mac.update(purpose.as_bytes());
        mac.update(b"\n");
        mac.update(canonical(payload).as_bytes());
        mac
    }

    /// The signature of `payload` for `purpose` (hex).
    pub fn sign(&self, purpose: &str, payload: &Value) -> String {
        hex(&self.mac(purpose, payload).finalize().into_bytes())
    }

    /// Whether `signature` is this key's for `payload` and `purpose`
    /// (compared in constant time).
    pub fn verify(&self, purpose: &str, payload: &Value, signature: &str) -> bool {
        let Some(bytes) = unhex(signature) else {
            return false;
        };
        self.mac(purpose, payload).verify_slice(&bytes).is_ok()
    }
}

/// JSON with object keys sorted at every level, so the same value always
/// gives the same bytes.
pub fn canonical(v: &Value) -> String {
    fn sorted(v: &Value) -> Value {
        match v {
            Value::Object(m) => {
                let mut keys: Vec<&String> = m.keys().collect();
                keys.sort();
                let mut out = serde_json::Map::new();
                for k in keys {
                    out.insert(k.clone(), sorted(&m[k]));
                }
                Value::Object(out)
            }
            Value::Array(a) => Value::Array(a.iter().map(sorted).collect()),
            other => other.clone(),
        }
    }
    // Keys are inserted in order, and the map keeps that order whichever
    // way serde_json is built.
    sorted(v).to_string()
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn unhex(text: &str) -> Option<Vec<u8>> {
    if !text.len().is_multiple_of(2) {
        return None;
    }
    (0..text.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(text.get(i..i + 2)?, 16).ok())
        .collect()
}

/// One destination selector of a gate; an empty field matches anything.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct DestinationSelector {
    /// Server URL glob.
    pub server: String,
    /// Cluster name glob.
    pub name: String,
    /// Namespace glob.
    pub namespace: String,
}

/// An `ApprovalGate`.
#[derive(Debug, Clone, PartialEq)]
pub struct Gate {
    /// Its name.
    pub name: String,
    /// Project globs; empty for all.
    pub projects: Vec<String>,
    /// Application globs (`namespace/name` outside the control namespace);
    /// empty for all.
    pub applications: Vec<String>,
    /// Destinations; empty for all.
    pub destinations: Vec<DestinationSelector>,
    /// Distinct approvals needed.
    pub required: u32,
    /// Only members of these groups count; empty for anyone.
    pub groups: Vec<String>,
    /// The requester may count.
    pub allow_requester: bool,
    /// The commit's author may count.
    pub allow_author: bool,
    /// How long a request stays open.
    pub ttl: Duration,
}

fn strings(v: Option<&Value>) -> Vec<String> {
    v.and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .map(String::from)
        .collect()
}

impl Gate {
    /// A gate from its object. A field that cannot be read is an error
    /// that names it; the caller applies the strictest reading instead
    /// (see [`Gate::fail_closed`]).
    pub fn from_object(obj: &Value) -> Result<Gate, String> {
        let name = obj
            .pointer("/metadata/name")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string();
        let spec = obj.get("spec").cloned().unwrap_or(Value::Null);
        let field = |f: &str, why: String| format!("ApprovalGate {name}: spec.{f}: {why}");
        let required = match spec.get("requiredApprovals") {
            None | Some(Value::Null) => 1,
            Some(v) => v
                .as_u64()
                .filter(|n| (1..=100).contains(n))
                .ok_or_else(|| {
                    field(
                        "requiredApprovals",
                        format!("{v} is not a number from 1 to 100"),
                    )
                })? as u32,
        };
        let ttl = match spec.get("requestTTL").and_then(Value::as_str) {
            None => DEFAULT_TTL,
            Some(t) => crate::controller::parse_duration(t)
                .filter(|d| !d.is_zero())
                .ok_or_else(|| {
                    field(
                        "requestTTL",
                        format!("{t:?} is not a duration such as 24h or 30m"),
                    )
                })?,
        };
        let flag = |f: &str| -> Result<bool, String> {
            match spec.get(f) {
                None | Some(Value::Null) => Ok(false),
                Some(Value::Bool(b)) => Ok(*b),
                Some(v) => Err(field(f, format!("{v} is not true or false"))),
            }
        };
        let destinations = spec
            .get("destinations")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .map(|d| {
                let text = |k: &str| {
                    d.get(k)
                        .and_then(Value::as_str)
                        .unwrap_or_default()
                        .to_string()
                };
                DestinationSelector {
                    server: text("server"),
                    name: text("name"),
                    namespace: text("namespace"),
                }
            })
            .collect();
        Ok(Gate {
            projects: strings(spec.get("projects")),
            applications: strings(spec.get("applications")),
            destinations,
            required,
            groups: strings(spec.pointer("/approvers/groups")),
            allow_requester: flag("allowRequesterApproval")?,
            allow_author: flag("allowAuthorApproval")?,
            ttl,
            name,
        })
    }

    /// The strictest reading of a gate that cannot be read: it covers
    /// every application and needs more approvals than any gate may ask
    /// (so nothing it might cover syncs, except by override) until it is
    /// fixed; a typo never opens production, nor lowers a gate.
    pub fn fail_closed(name: &str) -> Gate {
        Gate {
            name: name.to_string(),
            projects: Vec::new(),
            applications: Vec::new(),
            destinations: Vec::new(),
            required: UNREADABLE_GATE_APPROVALS,
            groups: Vec::new(),
            allow_requester: false,
            allow_author: false,
            ttl: DEFAULT_TTL,
        }
    }

    /// Whether the gate covers `app`, named `qualified` (its name, or
    /// `namespace/name` outside the control namespace), deploying to
    /// `target` (its cluster as resolved, and every namespace it writes).
    pub fn covers(&self, app: &Value, qualified: &str, target: &Target) -> bool {
        use berth_engine::glob::glob;
        let text = |p: &str| app.pointer(p).and_then(Value::as_str).unwrap_or_default();
        let project = match text("/spec/project") {
            "" => "default",
            p => p,
        };
        let any_or = |globs: &[String], value: &str| {
            globs.is_empty() || globs.iter().any(|g| glob(g, value))
        };
        any_or(&self.projects, project)
            && any_or(&self.applications, qualified)
            && (self.destinations.is_empty()
                || self.destinations.iter().any(|d| {
                    let field = |g: &str, v: &str| g.is_empty() || glob(g, v);
                    field(&d.server, &target.server)
                        && field(&d.name, &target.name)
                        && (d.namespace.is_empty()
                            || target.namespaces.iter().any(|n| glob(&d.namespace, n)))
                }))
    }
}

/// Where an app deploys, as gates match it: the cluster resolved (not
/// the spec's spelling of it) and every namespace it writes to.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Target {
    /// The cluster's server URL, without a trailing `/`.
    pub server: String,
    /// The cluster's name (`in-cluster` for the controller's own).
    pub name: String,
    /// The destination namespace and those of the rendered objects.
    pub namespaces: Vec<String>,
}

impl Target {
    /// The target as the spec alone says it (the controller's own cluster
    /// for an empty destination or `in-cluster`), when nothing is
    /// rendered: the API server's view.
    pub fn from_spec(app: &Value) -> Target {
        let text = |p: &str| app.pointer(p).and_then(Value::as_str).unwrap_or_default();
        let (mut server, mut name) = (
            text("/spec/destination/server")
                .trim_end_matches('/')
                .to_string(),
            text("/spec/destination/name").to_string(),
        );
        if server == crate::project::IN_CLUSTER_SERVER
            || (server.is_empty() && (name.is_empty() || name == crate::project::IN_CLUSTER_NAME))
        {
            server = crate::project::IN_CLUSTER_SERVER.into();
            name = crate::project::IN_CLUSTER_NAME.into();
        }
        Target {
            server,
            name,
            namespaces: vec![text("/spec/destination/namespace").to_string()],
        }
    }
}

/// The gates of a list of ApprovalGate objects; one that cannot be read
/// is logged and taken at its strictest ([`Gate::fail_closed`]).
pub fn gates_from(objects: &[Value]) -> Vec<Gate> {
    objects
        .iter()
        .map(|o| {
            Gate::from_object(o).unwrap_or_else(|e| {
                let name = o.pointer("/metadata/name").and_then(Value::as_str).unwrap_or_default();
                tracing::error!(gate = %name, problem = %e, "ApprovalGate cannot be read: it covers every app with one approval until fixed");
                Gate::fail_closed(name)
            })
        })
        .collect()
}

/// The name an app is matched by in gates: `namespace/name` outside the
/// control namespace.
pub fn qualified_name(app: &Value, control_namespace: &str) -> String {
    let text = |p: &str| app.pointer(p).and_then(Value::as_str).unwrap_or_default();
    match text("/metadata/namespace") {
        ns if ns.is_empty() || ns == control_namespace => text("/metadata/name").to_string(),
        ns => format!("{ns}/{}", text("/metadata/name")),
    }
}

/// One rule a request's approvals must satisfy: a gate's, or the app's
/// annotation's.
#[derive(Debug, Clone, PartialEq)]
pub struct Rule {
    /// Where it comes from (`ApprovalGate NAME`, or the annotation).
    pub source: String,
    /// Distinct approvals needed.
    pub required: u32,
    /// Only members of these groups count; empty for anyone.
    pub groups: Vec<String>,
    /// The requester may count.
    pub allow_requester: bool,
    /// The commit's author may count.
    pub allow_author: bool,
}

/// What the gates (and the app's annotation) require of an app's syncs.
#[derive(Debug, Clone, PartialEq)]
pub struct Requirement {
    /// Every rule must be satisfied.
    pub rules: Vec<Rule>,
    /// How long a request stays open: the shortest of the gates'.
    pub ttl: Duration,
}

impl Requirement {
    /// The most approvals any rule needs (the figure people are shown).
    pub fn required(&self) -> u32 {
        self.rules.iter().map(|r| r.required).max().unwrap_or(0)
    }

    /// The gates' names, for messages.
    pub fn sources(&self) -> Vec<String> {
        self.rules.iter().map(|r| r.source.clone()).collect()
    }
}

/// What `app` (named `qualified`) needs, `None` when no gate covers it
/// and it asks for no approvals itself. The annotation only adds: a value
/// at or below the gates' is without effect.
pub fn requirement(
    gates: &[Gate],
    app: &Value,
    qualified: &str,
    target: &Target,
) -> Option<Requirement> {
    let covering: Vec<&Gate> = gates
        .iter()
        .filter(|g| g.covers(app, qualified, target))
        .collect();
    let mut rules: Vec<Rule> = covering
        .iter()
        .map(|g| Rule {
            source: format!("ApprovalGate {}", g.name),
            required: g.required,
            groups: g.groups.clone(),
            allow_requester: g.allow_requester,
            allow_author: g.allow_author,
        })
        .collect();
    let asked = app
        .pointer("/metadata/annotations")
        .and_then(|a| a.get(REQUIRED_ANNOTATION))
        .and_then(Value::as_str)
        .and_then(|v| v.trim().parse::<u32>().ok())
        .filter(|n| (1..=100).contains(n));
    if let Some(n) = asked
        && rules.iter().all(|r| r.required < n)
    {
        rules.push(Rule {
            source: format!("annotation {REQUIRED_ANNOTATION}"),
            required: n,
            groups: Vec::new(),
            allow_requester: false,
            allow_author: false,
        });
    }
    if rules.is_empty() {
        return None;
    }
    let ttl = covering.iter().map(|g| g.ttl).min().unwrap_or(DEFAULT_TTL);
    Some(Requirement { rules, ttl })
}

/// The options of a sync that change what it applies; a dry run changes
/// nothing and is never gated.
pub fn options_of(request: &SyncRequest) -> Value {
    let mut resources: Vec<String> = request
        .resources
        .iter()
        .map(|r| format!("{}/{}/{}/{}", r.group, r.kind, r.namespace, r.name))
        .collect();
    resources.sort();
    let mut sync_options = request.sync_options.clone();
    sync_options.sort();
    json!({
        "prune": request.prune,
        "resources": resources,
        "syncOptions": sync_options,
        "force": request.force,
        "skipHooks": request.skip_hooks,
    })
}

/// What an approval binds to: the app (its uid, so a re-created app
/// starts afresh) and where it deploys, its spec, the revisions, a hash of
/// the rendered objects (in a stable order), and the options.
pub fn binding(target: &Value, revisions: &[String], objects: &[Value], options: &Value) -> Value {
    let mut texts: Vec<String> = objects.iter().map(canonical).collect();
    texts.sort();
    let mut hash = Sha256::new();
    for t in &texts {
        hash.update(t.as_bytes());
        hash.update(b"\n");
    }
    json!({
        "target": target,
        "revisions": revisions,
        "desiredHash": hex(&hash.finalize()),
        "options": options,
    })
}

/// A stable hash of any value (hex SHA-256 of its canonical JSON).
pub fn hash_of(v: &Value) -> String {
    hex(&Sha256::digest(canonical(v).as_bytes()))
}

/// What the API server signs for the user who asks for a sync: the app,
/// the user, the `sync` asked for, a break-glass reason if any, a nonce
/// (the request's name, used once) and when it was signed.
pub fn requester_payload(
    app_uid: &str,
    user: &str,
    sync: &Value,
    override_reason: &str,
    nonce: &str,
    signed_at: &str,
) -> Value {
    json!({"app": app_uid, "user": user, "sync": sync, "override": override_reason,
        "nonce": nonce, "at": signed_at})
}

/// The name of the ApprovalRecord of `kind` for `key` (a request's
/// signature, or an override's nonce): one per key, so creating it twice
/// fails.
pub fn record_name(kind: &str, key: &str) -> String {
    let digest = hex(&Sha256::digest(key.as_bytes()));
    format!("{}-{}", kind.to_lowercase(), &digest[..40])
}

/// An ApprovalRecord: what happened to a request (`Rejected`,
/// `Executed`) or an override (`Overridden`), kept cluster-scoped where an
/// app's editors cannot write, so it cannot be undone by editing the
/// request.
#[allow(clippy::too_many_arguments)]
pub fn record(
    kind: &str,
    key: &str,
    app: &Value,
    request: &str,
    binding: &Value,
    user: &str,
    comment: &str,
    at: &str,
) -> Value {
    let text = |p: &str| app.pointer(p).cloned().unwrap_or(Value::Null);
    json!({
        "apiVersion": format!("{}/v1alpha1", berth_api::crds::BERTH_GROUP),
        "kind": "ApprovalRecord",
        "metadata": {
            "name": record_name(kind, key),
            "labels": {RECORD_UID_LABEL: text("/metadata/uid")},
        },
        "spec": {
            "kind": kind,
            "application": text("/metadata/name"),
            "applicationNamespace": text("/metadata/namespace"),
            "applicationUID": text("/metadata/uid"),
            "request": request,
            "key": key,
            "binding": binding,
            "user": user,
            "comment": comment,
            "at": at,
        },
    })
}

/// ApprovalRecords carry their app's uid in this label.
pub const RECORD_UID_LABEL: &str = "berth.io/application-uid";

/// What the API server signs for one decision on a request.
pub fn approval_payload(request_signature: &str, approval: &Value) -> Value {
    let text = |k: &str| approval.get(k).cloned().unwrap_or(Value::Null);
    json!({
        "request": request_signature,
        "user": text("user"),
        "groups": text("groups"),
        "decision": text("decision"),
        "comment": text("comment"),
        "at": text("at"),
    })
}

/// A request's spec without its signature, as signed.
pub fn unsigned_spec(spec: &Value) -> Value {
    let mut s = spec.clone();
    if let Some(m) = s.as_object_mut() {
        m.remove("signature");
    }
    s
}

/// One approver who counts, as recorded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Approver {
    /// The user.
    pub user: String,
    /// Their groups at the time.
    pub groups: Vec<String>,
}

/// Where a request stands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// Every rule is satisfied.
    Approved {
        /// Who approved, in order.
        approvers: Vec<String>,
    },
    /// Waiting for approvals.
    Pending {
        /// Approvals that count so far (for the rule furthest from done).
        have: u32,
        /// Approvals that rule needs.
        need: u32,
    },
    /// Someone with the right to approve rejected it.
    Rejected {
        /// Who.
        by: String,
        /// Why.
        comment: String,
    },
    /// It expired before enough approvals came.
    Expired,
    /// Not the controller's: its signature does not hold.
    Forged,
}

/// Whether `user` is the commit's author (`Name <email>`): the same
/// email or name, ignoring case.
fn is_author(user: &str, author: &str) -> bool {
    let user = user.trim().to_lowercase();
    if user.is_empty() || author.trim().is_empty() {
        return false;
    }
    let author = author.to_lowercase();
    let (name, email) = match author.split_once('<') {
        Some((n, e)) => (
            n.trim().to_string(),
            e.trim_end_matches('>').trim().to_string(),
        ),
        None => (author.trim().to_string(), String::new()),
    };
    user == name || user == email
}

/// A request's requester, whether the API server vouched for them, and
/// the commit's author, from its spec.
fn who_asked(spec: &Value) -> (&str, bool, &str) {
    let text = |p: &str| spec.pointer(p).and_then(Value::as_str).unwrap_or_default();
    (
        text("/requester/username"),
        spec.pointer("/requester/verified")
            .and_then(Value::as_bool)
            .unwrap_or(false),
        text("/author"),
    )
}

/// Why one approver would not count for any of `requirement`'s rules on
/// the request `spec`, if so (the API server refuses such an approval at
/// once).
pub fn refusal(requirement: &Requirement, spec: &Value, approver: &Approver) -> Option<String> {
    let (requester, verified, author) = who_asked(spec);
    let mut reasons = BTreeSet::new();
    for rule in &requirement.rules {
        if verified && !rule.allow_requester && same_user(&approver.user, requester) {
            reasons.insert(format!(
                "{} does not let the requester approve their own sync",
                rule.source
            ));
        } else if !rule.allow_author && is_author(&approver.user, author) {
            reasons.insert(format!(
                "{} does not let the commit's author approve it",
                rule.source
            ));
        } else if !rule.groups.is_empty()
            && !rule.groups.iter().any(|g| approver.groups.contains(g))
        {
            reasons.insert(format!(
                "{} counts only members of {}",
                rule.source,
                rule.groups.join(", ")
            ));
        } else {
            return None;
        }
    }
    Some(reasons.into_iter().collect::<Vec<_>>().join("; "))
}

/// A user name as compared: identity providers differ in case.
pub fn same_user(a: &str, b: &str) -> bool {
    a.trim().eq_ignore_ascii_case(b.trim())
}

/// The rejection among `records` (the app's ApprovalRecords) of the
/// request signed `signature`, if any: (who, why).
pub fn rejection(records: &[Value], signature: &str) -> Option<(String, String)> {
    records.iter().find_map(|r| {
        let spec = r.get("spec")?;
        let text = |k: &str| {
            spec.get(k)
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_string()
        };
        (text("kind") == "Rejected" && text("key") == signature)
            .then(|| (text("user"), text("comment")))
    })
}

/// Where `request` (a SyncRequest object) stands against `requirement`
/// at `now`, given its app's ApprovalRecords. Only signed content is
/// read: the spec under the controller's signature, approvals under the
/// server's, made before the request expired; a rejection also stands in
/// the records, where editing the request cannot remove it.
pub fn evaluate(
    signer: &Signer,
    request: &Value,
    requirement: &Requirement,
    records: &[Value],
    now: jiff::Timestamp,
) -> Verdict {
    let spec = request.get("spec").cloned().unwrap_or(Value::Null);
    let signature = spec
        .get("signature")
        .and_then(Value::as_str)
        .unwrap_or_default();
    if !signer.verify("request", &unsigned_spec(&spec), signature) {
        return Verdict::Forged;
    }
    if let Some((by, comment)) = rejection(records, signature) {
        return Verdict::Rejected { by, comment };
    }
    let Some(expires) = spec
        .get("expiresAt")
        .and_then(Value::as_str)
        .and_then(|t| t.parse::<jiff::Timestamp>().ok())
    else {
        return Verdict::Forged;
    };
    let (requester, verified, author) = who_asked(&spec);
    // Valid decisions, first per user.
    let mut seen = BTreeSet::new();
    let mut approvers: Vec<Approver> = Vec::new();
    for a in request
        .pointer("/status/approvals")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        let sig = a
            .get("signature")
            .and_then(Value::as_str)
            .unwrap_or_default();
        if !signer.verify("approval", &approval_payload(signature, a), sig) {
            continue;
        }
        let in_time = a
            .get("at")
            .and_then(Value::as_str)
            .and_then(|t| t.parse::<jiff::Timestamp>().ok())
            .is_some_and(|at| at <= expires);
        if !in_time {
            continue;
        }
        let user = a
            .get("user")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string();
        if user.trim().is_empty() || !seen.insert(user.trim().to_lowercase()) {
            continue;
        }
        if a.get("decision").and_then(Value::as_str) == Some("reject") {
            return Verdict::Rejected {
                by: user,
                comment: a
                    .get("comment")
                    .and_then(Value::as_str)
                    .unwrap_or_default()
                    .to_string(),
            };
        }
        if a.get("decision").and_then(Value::as_str) == Some("approve") {
            approvers.push(Approver {
                user,
                groups: strings(a.get("groups")),
            });
        }
    }
    let mut short: Option<(u32, u32)> = None;
    for rule in &requirement.rules {
        let have = approvers
            .iter()
            .filter(|a| {
                (rule.allow_requester || !verified || !same_user(&a.user, requester))
                    && (rule.allow_author || !is_author(&a.user, author))
                    && (rule.groups.is_empty() || rule.groups.iter().any(|g| a.groups.contains(g)))
            })
            .count() as u32;
        // Without a verified requester, one of the approvers may be the
        // requester: one more is needed so that enough are not.
        let need = rule.required + u32::from(!verified && !rule.allow_requester);
        if have < need && short.is_none_or(|(h, n)| n - h < need - have) {
            short = Some((have, need));
        }
    }
    match short {
        None => Verdict::Approved {
            approvers: approvers.into_iter().map(|a| a.user).collect(),
        },
        Some(_) if now > expires => Verdict::Expired,
        Some((have, need)) => Verdict::Pending { have, need },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn gate(spec: Value) -> Gate {
        Gate::from_object(&json!({"metadata": {"name": "prod"}, "spec": spec})).unwrap()
    }

    fn app(project: &str, ns: &str) -> Value {
        json!({"metadata": {"name": "web", "annotations": {}},
               "spec": {"project": project, "destination": {"server": "https://kubernetes.default.svc", "namespace": ns}}})
    }

    #[test]
    fn gates_select_by_project_app_and_destination() {
        let g = gate(json!({"destinations": [{"namespace": "prod-*"}], "requiredApprovals": 2}));
        let at = |a: &Value| Target::from_spec(a);
        let prod = app("default", "prod-eu");
        assert!(g.covers(&prod, "web", &at(&prod)));
        let staging = app("default", "staging");
        assert!(!g.covers(&staging, "web", &at(&staging)));
        // An object written into a covered namespace makes it covered.
        let mut sneaky = at(&staging);
        sneaky.namespaces.push("prod-eu".into());
        assert!(g.covers(&staging, "web", &sneaky));
        // The cluster as resolved, whatever the spec calls it.
        let by_name = json!({"spec": {"destination": {"name": "in-cluster", "namespace": "x"}}});
        let g = gate(json!({"destinations": [{"server": "https://kubernetes.default.svc"}]}));
        assert!(g.covers(&by_name, "web", &at(&by_name)));
        let g = gate(json!({"projects": ["pay*"], "applications": ["web", "team-a/*"]}));
        let pay = app("payments", "x");
        assert!(g.covers(&pay, "web", &at(&pay)));
        assert!(g.covers(&pay, "team-a/api", &at(&pay)));
        let def = app("default", "x");
        assert!(!g.covers(&def, "web", &at(&def)));
        assert!(!g.covers(&pay, "api", &at(&pay)));
        let err = Gate::from_object(
            &json!({"metadata": {"name": "bad"}, "spec": {"requestTTL": "soon"}}),
        )
        .unwrap_err();
        assert!(err.contains("spec.requestTTL"), "{err}");
    }

    #[test]
    fn the_annotation_tightens_only() {
        let gates = [gate(json!({"requiredApprovals": 2}))];
        let mut a = app("default", "x");
        a["metadata"]["annotations"][REQUIRED_ANNOTATION] = json!("1");
        assert_eq!(
            requirement(&gates, &a, "web", &Target::default())
                .unwrap()
                .required(),
            2
        );
        a["metadata"]["annotations"][REQUIRED_ANNOTATION] = json!("3");
        assert_eq!(
            requirement(&gates, &a, "web", &Target::default())
                .unwrap()
                .required(),
            3
        );
        assert_eq!(
            requirement(&[], &a, "web", &Target::default())
                .unwrap()
                .required(),
            3
        );
        assert!(requirement(&[], &app("default", "x"), "web", &Target::default()).is_none());
    }

    #[test]
    fn bindings_change_with_objects_revision_and_options() {
        let objs = [
            json!({"kind": "ConfigMap", "data": {"a": "1"}}),
            json!({"kind": "Secret"}),
        ];
        let swapped = [objs[1].clone(), objs[0].clone()];
        let opts = json!({"prune": false});
        let b = binding(&json!({}), &["abc".into()], &objs, &opts);
        assert_eq!(
            b,
            binding(&json!({}), &["abc".into()], &swapped, &opts),
            "order does not matter"
        );
        assert_ne!(b, binding(&json!({}), &["abd".into()], &objs, &opts));
        assert_ne!(b, binding(&json!({}), &["abc".into()], &objs[..1], &opts));
        assert_ne!(
            b,
            binding(&json!({}), &["abc".into()], &objs, &json!({"prune": true}))
        );
    }

    fn signed_request(signer: &Signer, requester: &str, verified: bool, author: &str) -> Value {
        let spec = json!({"application": "web", "binding": {"revisions": ["abc"]},
            "requester": {"username": requester, "verified": verified}, "author": author,
            "expiresAt": "2030-01-01T00:00:00Z"});
        let mut spec = spec;
        spec["signature"] = json!(signer.sign("request", &spec));
        json!({"metadata": {"name": "web-1"}, "spec": spec, "status": {"approvals": []}})
    }

    fn approve(signer: &Signer, request: &mut Value, user: &str, groups: &[&str], decision: &str) {
        let sig = request["spec"]["signature"].as_str().unwrap().to_string();
        let mut a = json!({"user": user, "groups": groups, "decision": decision, "comment": "", "at": "2029-06-01T00:00:00Z"});
        a["signature"] = json!(signer.sign("approval", &approval_payload(&sig, &a)));
        request["status"]["approvals"]
            .as_array_mut()
            .unwrap()
            .push(a);
    }

    fn req(n: u32) -> Requirement {
        Requirement {
            rules: vec![Rule {
                source: "ApprovalGate prod".into(),
                required: n,
                groups: vec![],
                allow_requester: false,
                allow_author: false,
            }],
            ttl: DEFAULT_TTL,
        }
    }

    #[test]
    fn approvals_count_once_per_user_and_not_the_requester_or_author() {
        let s = Signer::from_key(vec![7; 32]);
        let now: jiff::Timestamp = "2029-06-02T00:00:00Z".parse().unwrap();
        let mut r = signed_request(&s, "alice", true, "Carol <carol@example.com>");
        approve(&s, &mut r, "alice", &[], "approve");
        approve(&s, &mut r, "carol@example.com", &[], "approve");
        approve(&s, &mut r, "bob", &[], "approve");
        approve(&s, &mut r, "bob", &[], "approve");
        assert_eq!(
            evaluate(&s, &r, &req(2), &[], now),
            Verdict::Pending { have: 1, need: 2 }
        );
        approve(&s, &mut r, "dave", &[], "approve");
        assert!(matches!(
            evaluate(&s, &r, &req(2), &[], now),
            Verdict::Approved { .. }
        ));
        approve(&s, &mut r, "erin", &[], "reject");
        assert!(matches!(
            evaluate(&s, &r, &req(2), &[], now),
            Verdict::Rejected { .. }
        ));
    }

    #[test]
    fn forgeries_and_late_approvals_do_not_count() {
        let s = Signer::from_key(vec![7; 32]);
        let other = Signer::from_key(vec![8; 32]);
        let now: jiff::Timestamp = "2029-06-02T00:00:00Z".parse().unwrap();
        // A request written by someone without the key.
        let forged = signed_request(&other, "alice", true, "");
        assert_eq!(evaluate(&s, &forged, &req(1), &[], now), Verdict::Forged);
        // A genuine request with its binding altered afterwards.
        let mut altered = signed_request(&s, "alice", true, "");
        altered["spec"]["binding"]["revisions"][0] = json!("evil");
        assert_eq!(evaluate(&s, &altered, &req(1), &[], now), Verdict::Forged);
        // An approval signed with another key, or edited after signing.
        let mut r = signed_request(&s, "alice", true, "");
        approve(&other, &mut r, "bob", &[], "approve");
        assert_eq!(
            evaluate(&s, &r, &req(1), &[], now),
            Verdict::Pending { have: 0, need: 1 }
        );
        approve(&s, &mut r, "bob", &[], "approve");
        r["status"]["approvals"][1]["user"] = json!("mallory");
        assert_eq!(
            evaluate(&s, &r, &req(1), &[], now),
            Verdict::Pending { have: 0, need: 1 }
        );
        // Expired.
        let r = signed_request(&s, "alice", true, "");
        let later: jiff::Timestamp = "2031-01-01T00:00:00Z".parse().unwrap();
        assert_eq!(evaluate(&s, &r, &req(1), &[], later), Verdict::Expired);
    }

    #[test]
    fn an_unverified_requester_needs_one_more_and_groups_restrict() {
        let s = Signer::from_key(vec![7; 32]);
        let now: jiff::Timestamp = "2029-06-02T00:00:00Z".parse().unwrap();
        let mut r = signed_request(&s, "bob", false, "");
        approve(&s, &mut r, "alice", &["dev"], "approve");
        assert_eq!(
            evaluate(&s, &r, &req(1), &[], now),
            Verdict::Pending { have: 1, need: 2 }
        );
        approve(&s, &mut r, "carol", &["sre"], "approve");
        assert!(matches!(
            evaluate(&s, &r, &req(1), &[], now),
            Verdict::Approved { .. }
        ));
        let mut sre = req(2);
        sre.rules[0].groups = vec!["sre".into()];
        assert_eq!(
            evaluate(&s, &r, &sre, &[], now),
            Verdict::Pending { have: 1, need: 3 }
        );
        let why = refusal(
            &sre,
            &r["spec"],
            &Approver {
                user: "x".into(),
                groups: vec!["dev".into()],
            },
        )
        .unwrap();
        assert!(why.contains("members of sre"), "{why}");
    }

    #[test]
    fn the_block_key_is_hmacs_own() {
        let key = vec![5u8; 100];
        let ours = Signer::from_key(key.clone()).sign("p", &json!(1));
        let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(&key).unwrap();
        mac.update(b"p\n1");
        assert_eq!(ours, hex(&mac.finalize().into_bytes()));
    }

    #[test]
    fn a_recorded_rejection_stands_and_names_differ_only_in_case() {
        let s = Signer::from_key(vec![7; 32]);
        let now: jiff::Timestamp = "2029-06-02T00:00:00Z".parse().unwrap();
        let mut r = signed_request(&s, "alice", true, "");
        approve(&s, &mut r, "ALICE", &[], "approve");
        approve(&s, &mut r, "Bob", &[], "approve");
        approve(&s, &mut r, "bob", &[], "approve");
        assert_eq!(
            evaluate(&s, &r, &req(2), &[], now),
            Verdict::Pending { have: 1, need: 2 }
        );
        let sig = r["spec"]["signature"].as_str().unwrap().to_string();
        let rec = record(
            "Rejected",
            &sig,
            &json!({}),
            "web-1",
            &json!(null),
            "carol",
            "no",
            "2029-06-01T00:00:00Z",
        );
        assert!(matches!(
            evaluate(&s, &r, &req(1), std::slice::from_ref(&rec), now),
            Verdict::Rejected { .. }
        ));
        assert_eq!(rec["metadata"]["name"], record_name("Rejected", &sig));
        assert_eq!(record_name("Executed", &sig).len(), "executed-".len() + 40);
    }

    #[test]
    fn unreadable_gates_ask_more_than_any_valid_one() {
        assert!(Gate::fail_closed("x").required > 100);
    }

    #[test]
    fn canonical_json_sorts_keys() {
        assert_eq!(
            canonical(&json!({"b": 1, "a": {"d": 2, "c": 3}})),
            r#"{"a":{"c":3,"d":2},"b":1}"#
        );
    }
}
