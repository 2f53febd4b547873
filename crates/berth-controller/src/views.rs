//! What the API server shows of a controller running in the same process:
//! an application's managed resources with their diffs (now, or against
//! another revision: "what would this change do"), its resource tree
//! (Deployment → ReplicaSet → Pod) and one live object. Everything is read
//! from the controller's own caches (live objects, renders, dry runs), so a
//! diff of an unchanged app costs no request to Git and none per object to
//! the API server. Argo CD's API server reads the same from its
//! controller's cache in Redis; Berth shares memory instead.
//!
//! The handle outlives restarts of the controller (a changed `argocd-cm`
//! starts it again): each start attaches its state.

use std::collections::HashSet;
use std::sync::{Arc, RwLock, Weak};

use berth_api::application::Application;
use berth_cluster::live::ObjectKey;
use berth_engine::diff::{ResourceDiff, SyncStatus};
use serde_json::{Value, json};

use crate::controller::{Cluster, Shared, compare_app};
use crate::source;

/// Why a view could not be made.
#[derive(Debug, thiserror::Error)]
pub enum ViewError {
    /// No controller runs in this process (or it is starting again).
    #[error("no controller is running in this process; try again in a moment")]
    NotRunning,
    /// The Application's spec cannot be read.
    #[error("{0}")]
    Invalid(String),
    /// Its sources could not be rendered or compared.
    #[error("{0}")]
    Compare(String),
    /// The object is not part of the application.
    #[error("{0} is not a resource of application {1:?}")]
    NotManaged(String, String),
    /// A resource action cannot be listed or run.
    #[error("{0}")]
    Action(String),
    /// The cluster refused an action's change.
    #[error("{0}")]
    Cluster(String),
}

/// The diffs of one application against a revision.
#[derive(Debug, Clone)]
pub struct Managed {
    /// The revision (commit) compared with, per source.
    pub revisions: Vec<String>,
    /// The app's sync status at that revision.
    pub sync: SyncStatus,
    /// One diff per compared object, in the comparison's order.
    pub diffs: Vec<ResourceDiff>,
    /// The rendered desired objects (hooks included), Secret values
    /// masked.
    pub desired: Vec<Value>,
}

/// The handle the API server holds; see the module documentation.
#[derive(Default)]
pub struct Views {
    shared: RwLock<Weak<Shared>>,
}

impl std::fmt::Debug for Views {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Views")
            .field("attached", &self.state().is_ok())
            .finish()
    }
}

impl Views {
    /// Makes the views read `shared` (each controller start does).
    pub(crate) fn attach(&self, shared: &Arc<Shared>) {
        if let Ok(mut s) = self.shared.write() {
            *s = Arc::downgrade(shared);
        }
    }

    fn state(&self) -> Result<Arc<Shared>, ViewError> {
        self.shared
            .read()
            .ok()
            .and_then(|s| s.upgrade())
            .ok_or(ViewError::NotRunning)
    }

    /// The app's objects compared with its target revision, or with
    /// `revision` (a branch, tag or commit; for several sources, one per
    /// source, comma-separated, empty keeping a source's own) when given.
    pub async fn managed(&self, app: &Value, revision: Option<&str>) -> Result<Managed, ViewError> {
        let shared = self.state()?;
        let name = shared.key_of(app);
        let mut stored = app.clone();
        // A requested operation would change what is rendered: the view is
        // of the spec (or of the revision asked for).
        if let Some(m) = stored.as_object_mut() {
            m.remove("operation");
        }
        if let Some(revision) = revision.filter(|r| !r.is_empty()) {
            let op = if stored.pointer("/spec/sources").is_some_and(Value::is_array) {
                json!({"sync": {"revisions": revision.split(',').map(str::trim).collect::<Vec<_>>()}})
            } else {
                json!({"sync": {"revision": revision}})
            };
            stored["operation"] = op;
        }
        let compared = compare_app(&shared, &name, &stored, false).await;
        let Some(ready) = compared.ready else {
            let message = compared
                .status
                .pointer("/conditions/0/message")
                .and_then(Value::as_str)
                .unwrap_or("the application could not be compared")
                .to_string();
            return Err(ViewError::Compare(message));
        };
        Ok(Managed {
            revisions: ready.revisions,
            sync: ready.comparison.sync,
            diffs: ready.comparison.diffs,
            desired: ready
                .objects
                .iter()
                .map(berth_engine::diff::masked)
                .collect(),
        })
    }

    /// Argo CD's `RevisionMetadata` of a commit of the app's first source
    /// (or of source `index`): author, date, message and tags. Read from
    /// the controller's Git cache, so only commits it has fetched are
    /// known; `None` for others and for Helm repositories.
    pub async fn revision_metadata(
        &self,
        app: &Value,
        revision: &str,
        index: usize,
    ) -> Result<Option<Value>, ViewError> {
        let shared = self.state()?;
        let url = app
            .pointer("/spec/source/repoURL")
            .filter(|_| index == 0)
            .or_else(|| app.pointer(&format!("/spec/sources/{index}/repoURL")))
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string();
        let is_helm = app
            .pointer("/spec/source/chart")
            .filter(|_| index == 0)
            .or_else(|| app.pointer(&format!("/spec/sources/{index}/chart")))
            .is_some();
        if url.is_empty() || is_helm || revision.len() != 40 {
            return Ok(None);
        }
        let repos = Arc::clone(&shared.repos);
        let revision = revision.to_string();
        let info = tokio::task::spawn_blocking(move || repos.commit_info(&url, &revision).ok())
            .await
            .ok()
            .flatten();
        Ok(info.map(|c| {
            json!({
                "author": c.author,
                "date": berth_api::time::rfc3339(std::time::UNIX_EPOCH + std::time::Duration::from_secs(u64::try_from(c.time).unwrap_or_default())),
                "message": c.message.trim_end(),
                "tags": [],
                "signatureInfo": if c.signature.is_some() { "signed" } else { "" },
            })
        }))
    }

    /// Argo CD's `ApplicationTree`: the app's live objects and, through
    /// `ownerReferences`, everything they own, each with its health; when
    /// its project monitors orphaned resources, those of the destination
    /// namespace as `orphanedNodes`.
    pub async fn tree(&self, app: &Value) -> Result<Value, ViewError> {
        let shared = self.state()?;
        let settings = shared.settings();
        let track = self.track(&shared, app)?;
        let cluster = cluster_of(&shared, app)?;
        let mut nodes = Vec::new();
        let mut seen = HashSet::new();
        let mut queue: std::collections::VecDeque<Arc<Value>> =
            cluster.live.app_objects(&track).into();
        while let Some(obj) = queue.pop_front() {
            let uid = text(&obj, "/metadata/uid");
            if !uid.is_empty() && !seen.insert(uid.to_string()) {
                continue;
            }
            nodes.push(node(&obj, settings.checks.check(&obj)));
            if !uid.is_empty() {
                queue.extend(cluster.live.children(uid));
            }
        }
        let mut orphaned = Vec::new();
        let project = match text(app, "/spec/project") {
            "" => "default",
            p => p,
        };
        let namespace = text(app, "/spec/destination/namespace");
        if !namespace.is_empty()
            && let Ok(Some(p)) = shared.projects.get_opt(project).await
        {
            let spec = serde_json::to_value(&p)
                .ok()
                .and_then(|v| v.get("spec").cloned())
                .unwrap_or(Value::Null);
            let candidates = cluster.live.untracked_in(namespace);
            if let Some(found) = crate::project::orphans(&spec, &candidates) {
                orphaned = found
                    .into_iter()
                    .map(|o| node(o, settings.checks.check(o)))
                    .collect();
            }
        }
        Ok(json!({"nodes": nodes, "orphanedNodes": orphaned, "hosts": []}))
    }

    /// One live object of the app's tree, Secret values masked.
    pub fn live_object(&self, app: &Value, key: &ObjectKey) -> Result<Option<Value>, ViewError> {
        let shared = self.state()?;
        let track = self.track(&shared, app)?;
        let cluster = cluster_of(&shared, app)?;
        let Some(obj) = cluster.live.get(key) else {
            return Ok(None);
        };
        // Part of the app: tracked by it, or owned (transitively) by an
        // object it tracks.
        let tracked: HashSet<ObjectKey> = cluster
            .live
            .app_objects(&track)
            .iter()
            .map(|o| ObjectKey::of(o))
            .collect();
        let mut current = Arc::clone(&obj);
        for _ in 0..16 {
            if tracked.contains(&ObjectKey::of(&current)) {
                return Ok(Some(berth_engine::diff::masked(&obj)));
            }
            let Some(owner) = owner_of(&cluster, &current) else {
                break;
            };
            current = owner;
        }
        let app_name = text(app, "/metadata/name").to_string();
        Err(ViewError::NotManaged(
            format!("{}/{} {}", key.kind, key.namespace, key.name),
            app_name,
        ))
    }

    /// The resource actions a resource the app tracks offers now (Argo CD
    /// offers none on the objects they own, such as a Deployment's Pods).
    pub fn resource_actions(
        &self,
        app: &Value,
        key: &ObjectKey,
    ) -> Result<Vec<berth_engine::actions::ResourceAction>, ViewError> {
        let shared = self.state()?;
        let obj = self.tracked_object(&shared, app, key)?;
        let settings = shared.settings();
        // Scripts may take up to their limit: off the async workers.
        tokio::task::block_in_place(|| settings.actions.list(&obj))
            .map_err(|e| ViewError::Action(e.to_string()))
    }

    /// Runs resource action `action` on a resource the app tracks: its
    /// script's changes are patched onto the live object (and any objects
    /// it creates are created) in the app's cluster, as Berth's field
    /// manager. Returns the objects as stored.
    pub async fn run_resource_action(
        &self,
        app: &Value,
        key: &ObjectKey,
        action: &str,
    ) -> Result<Vec<Value>, ViewError> {
        let shared = self.state()?;
        let obj = self.tracked_object(&shared, app, key)?;
        let settings = shared.settings();
        let operations = tokio::task::block_in_place(|| settings.actions.run(&obj, action))
            .map_err(|e| ViewError::Action(e.to_string()))?;
        let cluster = cluster_of(&shared, app)?;
        let types = cluster.types();
        let project_name = match text(app, "/spec/project") {
            "" => "default".to_string(),
            p => p.to_string(),
        };
        let project = shared
            .projects
            .get_opt(&project_name)
            .await
            .ok()
            .flatten()
            .and_then(|p| serde_json::to_value(&p).ok())
            .and_then(|v| v.get("spec").cloned())
            .ok_or_else(|| {
                ViewError::Action(format!("AppProject {project_name:?} cannot be read"))
            })?;
        // Everything is checked before anything is changed: a patch only
        // of the object the action was asked for; a new object namespaced,
        // beside it, and of a kind the project permits.
        let mut checked = Vec::new();
        for op in operations {
            match op {
                berth_engine::actions::Operation::Patch { object, patch } => {
                    if ObjectKey::of(&object) != *key {
                        return Err(ViewError::Action(format!(
                            "action {action:?} returned {} {}/{} to patch; an action may only change the {} it runs on",
                            text(&object, "/kind"),
                            text(&object, "/metadata/namespace"),
                            text(&object, "/metadata/name"),
                            key.kind
                        )));
                    }
                    checked.push((object, Some(patch)));
                }
                berth_engine::actions::Operation::Create(mut object) => {
                    let api_version = text(&object, "/apiVersion").to_string();
                    let kind = text(&object, "/kind").to_string();
                    let namespaced = types
                        .resolve(&api_version, &kind)
                        .map(|t| t.namespaced)
                        .ok_or_else(|| {
                            ViewError::Action(format!(
                                "action {action:?} would create a {kind} ({api_version}), a type the cluster does not serve"
                            ))
                        })?;
                    let Some(meta) = object.get_mut("metadata").and_then(Value::as_object_mut)
                    else {
                        return Err(ViewError::Action(format!(
                            "action {action:?} would create an object without metadata"
                        )));
                    };
                    let namespace = meta
                        .get("namespace")
                        .and_then(Value::as_str)
                        .unwrap_or_default()
                        .to_string();
                    if !namespaced
                        || key.namespace.is_empty()
                        || (!namespace.is_empty() && namespace != key.namespace)
                    {
                        return Err(ViewError::Action(format!(
                            "action {action:?} would create a {kind} outside namespace {:?}; actions create objects only beside the one they run on",
                            key.namespace
                        )));
                    }
                    meta.insert("namespace".into(), Value::from(key.namespace.clone()));
                    let group = api_version
                        .rsplit_once('/')
                        .map(|(g, _)| g)
                        .unwrap_or_default();
                    let name = text(&object, "/metadata/name").to_string();
                    if !crate::project::resource_permitted(&project, group, &kind, &name, true) {
                        return Err(ViewError::Action(format!(
                            "action {action:?} would create {kind} {name:?}, which AppProject {project_name:?} does not permit"
                        )));
                    }
                    checked.push((object, None));
                }
            }
        }
        let mut stored = Vec::new();
        for (object, patch) in checked {
            let done = match patch {
                Some(patch) => cluster.applier.merge_patch(&types, &object, &patch).await,
                None => cluster.applier.create(&types, &object).await,
            };
            stored.push(
                done.map(|o| berth_engine::diff::masked(&o))
                    .map_err(|e| ViewError::Cluster(e.to_string()))?,
            );
        }
        tracing::info!(app = %text(app, "/metadata/name"), action, kind = %key.kind, object = %key.name, "resource action run");
        Ok(stored)
    }

    /// The live object `key` names, when the app tracks it (not when it
    /// only owns it through another).
    fn tracked_object(
        &self,
        shared: &Arc<Shared>,
        app: &Value,
        key: &ObjectKey,
    ) -> Result<Value, ViewError> {
        let track = self.track(shared, app)?;
        let cluster = cluster_of(shared, app)?;
        let not_managed = || {
            ViewError::NotManaged(
                format!("{}/{} {}", key.kind, key.namespace, key.name),
                text(app, "/metadata/name").to_string(),
            )
        };
        let obj = cluster.live.get(key).ok_or_else(not_managed)?;
        let tracked = cluster
            .live
            .app_objects(&track)
            .iter()
            .any(|o| ObjectKey::of(o) == *key);
        if !tracked {
            return Err(ViewError::Action(format!(
                "{} {}/{} is not tracked by application {:?}: actions run only on the app's own resources, not on objects they own",
                key.kind,
                key.namespace,
                key.name,
                text(app, "/metadata/name")
            )));
        }
        Ok(obj.as_ref().clone())
    }

    /// The Prometheus exposition of the controller (see
    /// [`crate::metrics`]).
    pub fn metrics(&self) -> Result<String, ViewError> {
        let shared = self.state()?;
        let mut apps: Vec<Value> = shared
            .latest
            .lock()
            .map(|l| l.values().cloned().collect())
            .unwrap_or_default();
        apps.sort_by(|a, b| text(a, "/metadata/name").cmp(text(b, "/metadata/name")));
        Ok(shared.config.metrics.render(&apps, shared.local.live.len()))
    }

    /// Whether a controller is attached and its caches are filled.
    pub fn ready(&self) -> bool {
        self.state().is_ok()
    }

    fn track(&self, shared: &Arc<Shared>, app: &Value) -> Result<String, ViewError> {
        let name = text(app, "/metadata/name");
        let parsed = Application::from_value(&format!("Application {name}"), app.clone())
            .map_err(|e| ViewError::Invalid(e.to_string()))?;
        Ok(source::tracking_name(&parsed, &shared.config.namespace))
    }
}

/// The name an Application's objects are tracked by, when its spec can be
/// read.
pub(crate) fn track_of(app: &Value, control_namespace: &str) -> Option<String> {
    let name = text(app, "/metadata/name");
    let parsed = Application::from_value(&format!("Application {name}"), app.clone()).ok()?;
    Some(source::tracking_name(&parsed, control_namespace))
}

/// The cluster `app` deploys to, for a view.
fn cluster_of(shared: &Shared, app: &Value) -> Result<Arc<Cluster>, ViewError> {
    match shared.cluster_for(app) {
        Ok(Some(c)) => Ok(c),
        Ok(None) => Err(ViewError::Compare(
            "the connection to its cluster is being made; try again in a moment".into(),
        )),
        Err(m) => Err(ViewError::Compare(m)),
    }
}

fn text<'a>(v: &'a Value, pointer: &str) -> &'a str {
    v.pointer(pointer)
        .and_then(Value::as_str)
        .unwrap_or_default()
}

/// The first owner of `obj` found in the cache.
fn owner_of(cluster: &Cluster, obj: &Value) -> Option<Arc<Value>> {
    let namespace = text(obj, "/metadata/namespace");
    obj.pointer("/metadata/ownerReferences")
        .and_then(Value::as_array)?
        .iter()
        .find_map(|r| {
            let api_version = text(r, "/apiVersion");
            let group = api_version
                .split_once('/')
                .map(|(g, _)| g)
                .unwrap_or_default();
            let key = ObjectKey {
                group: group.to_string(),
                kind: text(r, "/kind").to_string(),
                namespace: namespace.to_string(),
                name: text(r, "/name").to_string(),
            };
            // A cluster-scoped owner has no namespace.
            cluster.live.get(&key).or_else(|| {
                cluster.live.get(&ObjectKey {
                    namespace: String::new(),
                    ..key
                })
            })
        })
}

/// One `ResourceNode` of Argo CD's tree.
fn node(obj: &Value, health: Option<berth_engine::health::Health>) -> Value {
    let (group, kind) = berth_api::kinds::group_kind(obj);
    let version = text(obj, "/apiVersion")
        .rsplit('/')
        .next()
        .unwrap_or_default();
    let namespace = text(obj, "/metadata/namespace");
    let parents: Vec<Value> = obj
        .pointer("/metadata/ownerReferences")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .map(|r| {
            let api_version = text(r, "/apiVersion");
            json!({
                "group": api_version.split_once('/').map(|(g, _)| g).unwrap_or_default(),
                "kind": text(r, "/kind"),
                "namespace": namespace,
                "name": text(r, "/name"),
                "uid": text(r, "/uid"),
            })
        })
        .collect();
    let mut images: Vec<&str> = Vec::new();
    for pointer in [
        "/spec/containers",
        "/spec/initContainers",
        "/spec/template/spec/containers",
        "/spec/template/spec/initContainers",
    ] {
        for c in obj
            .pointer(pointer)
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            if let Some(i) = c.get("image").and_then(Value::as_str)
                && !images.contains(&i)
            {
                images.push(i);
            }
        }
    }
    let mut n = json!({
        "group": group,
        "version": version,
        "kind": kind,
        "namespace": namespace,
        "name": text(obj, "/metadata/name"),
        "uid": text(obj, "/metadata/uid"),
        "resourceVersion": text(obj, "/metadata/resourceVersion"),
        "createdAt": obj.pointer("/metadata/creationTimestamp"),
    });
    if !parents.is_empty() {
        n["parentRefs"] = json!(parents);
    }
    if !images.is_empty() {
        n["images"] = json!(images);
    }
    if let Some(h) = health {
        n["health"] = json!({"status": h.status.to_string(), "message": h.message});
        if h.message.is_empty()
            && let Some(m) = n["health"].as_object_mut()
        {
            m.shift_remove("message");
        }
    }
    n
}
