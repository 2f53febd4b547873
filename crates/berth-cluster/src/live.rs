//! The live state of one cluster: one watch per resource type, shared by
//! every application. Objects are kept without `managedFields` (most of
//! their bytes, and never compared) and indexed by the application their
//! tracking names, so an application's objects are a lookup, and any change
//! to a managed object is announced at once (drift is seen in seconds).
//!
//! A type the controller may not list or watch is reported, not fatal: its
//! objects are simply unknown, and the error says which type and why.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use berth_engine::tracking::{Owner, Tracking};
use futures::StreamExt;
use kube::api::DynamicObject;
use kube::runtime::watcher::{self, Event};
use kube::{Api, Client};
use serde_json::Value;
use tokio::sync::broadcast;
use tokio::task::JoinHandle;

use crate::discovery::{ResourceType, ResourceTypes};

/// Types never watched: high-churn objects no application manages, as in
/// Argo CD's default `resource.exclusions`.
pub const EXCLUDED: [(&str, &str); 7] = [
    ("", "Event"),
    ("events.k8s.io", "Event"),
    ("coordination.k8s.io", "Lease"),
    ("", "Endpoints"),
    ("discovery.k8s.io", "EndpointSlice"),
    ("authentication.k8s.io", "TokenReview"),
    ("authorization.k8s.io", "SubjectAccessReview"),
];

/// One object's identity.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ObjectKey {
    /// API group, empty for core.
    pub group: String,
    /// Kind.
    pub kind: String,
    /// Namespace, empty for cluster-scoped objects.
    pub namespace: String,
    /// Name.
    pub name: String,
}

impl ObjectKey {
    /// The key of a manifest or live object.
    pub fn of(obj: &Value) -> ObjectKey {
        let (group, kind) = berth_api::kinds::group_kind(obj);
        let text = |p: &str| {
            obj.pointer(p)
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_string()
        };
        ObjectKey {
            group: group.to_string(),
            kind: kind.to_string(),
            namespace: text("/metadata/namespace"),
            name: text("/metadata/name"),
        }
    }
}

/// A change to a cached object.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Change {
    /// The object.
    pub key: ObjectKey,
    /// The application it belongs to (before or after the change).
    pub app: Option<String>,
    /// It was deleted.
    pub deleted: bool,
}

#[derive(Default)]
struct State {
    objects: HashMap<ObjectKey, (Arc<Value>, Option<String>)>,
    by_app: HashMap<String, HashSet<ObjectKey>>,
    /// Objects by the UID of each owner their `ownerReferences` name, for
    /// resource trees (Deployment → ReplicaSet → Pod).
    by_owner: HashMap<String, HashSet<ObjectKey>>,
    /// Types whose first list is complete.
    synced: HashSet<(String, String)>,
    /// Types that cannot be watched, with why.
    errors: BTreeMap<(String, String), String>,
}

/// The UIDs an object's `ownerReferences` name.
fn owner_uids(obj: &Value) -> impl Iterator<Item = &str> {
    obj.pointer("/metadata/ownerReferences")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|r| r.get("uid").and_then(Value::as_str))
}

impl State {
    fn index_owners(&mut self, key: &ObjectKey, obj: &Value, add: bool) {
        for uid in owner_uids(obj) {
            if add {
                self.by_owner
                    .entry(uid.to_string())
                    .or_default()
                    .insert(key.clone());
            } else if let Some(set) = self.by_owner.get_mut(uid) {
                set.remove(key);
                if set.is_empty() {
                    self.by_owner.remove(uid);
                }
            }
        }
    }

    fn upsert(&mut self, key: ObjectKey, obj: Value, app: Option<String>) -> Option<String> {
        self.index_owners(&key, &obj, true);
        let obj = Arc::new(obj);
        let previous = self
            .objects
            .insert(key.clone(), (Arc::clone(&obj), app.clone()));
        if let Some((old, _)) = &previous {
            // Owners removed from the object leave the index; those kept
            // were just added again.
            let gone: Vec<String> = owner_uids(old)
                .filter(|u| !owner_uids(&obj).any(|n| n == *u))
                .map(String::from)
                .collect();
            for uid in gone {
                if let Some(set) = self.by_owner.get_mut(&uid) {
                    set.remove(&key);
                }
            }
        }
        if let Some((_, Some(old))) = &previous
            && Some(old) != app.as_ref()
            && let Some(set) = self.by_app.get_mut(old)
        {
            set.remove(&key);
        }
        if let Some(a) = &app {
            self.by_app.entry(a.clone()).or_default().insert(key);
        }
        app.or(previous.and_then(|(_, a)| a))
    }

    fn remove(&mut self, key: &ObjectKey) -> Option<String> {
        let (obj, app) = self.objects.remove(key)?;
        self.index_owners(key, &obj, false);
        if let Some(a) = &app
            && let Some(set) = self.by_app.get_mut(a)
        {
            set.remove(key);
        }
        app
    }
}

/// The shared live cache of one cluster.
pub struct LiveCache {
    state: Arc<RwLock<State>>,
    changes: broadcast::Sender<Change>,
    client: Client,
    tracking: Arc<Tracking>,
    tasks: Mutex<Vec<JoinHandle<()>>>,
    watched: RwLock<Vec<(String, String)>>,
    /// Namespaces the watches are limited to (a namespaced cluster);
    /// `None`: the whole cluster.
    scope: Option<Vec<String>>,
}

impl std::fmt::Debug for LiveCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LiveCache")
            .field("watched", &self.watched().len())
            .finish()
    }
}

impl Drop for LiveCache {
    fn drop(&mut self) {
        if let Ok(tasks) = self.tasks.lock() {
            for t in tasks.iter() {
                t.abort();
            }
        }
    }
}

/// Drops what is never compared and costs memory.
fn strip(mut obj: Value) -> Value {
    if let Some(meta) = obj.get_mut("metadata").and_then(Value::as_object_mut) {
        meta.shift_remove("managedFields");
    }
    obj
}

impl LiveCache {
    /// Starts one watch per watchable type that `include` accepts (and that
    /// is not in [`EXCLUDED`]). Must be called inside a Tokio runtime.
    pub fn start(
        client: &Client,
        types: &ResourceTypes,
        tracking: Tracking,
        include: impl Fn(&ResourceType) -> bool,
    ) -> LiveCache {
        LiveCache::start_scoped(client, types, tracking, None, include)
    }

    /// As [`LiveCache::start`]; with `namespaces`, namespaced types are
    /// watched in those namespaces only (credentials limited to them, as
    /// an Argo CD namespaced cluster), and cluster-scoped ones only if
    /// `include` accepts them.
    pub fn start_scoped(
        client: &Client,
        types: &ResourceTypes,
        tracking: Tracking,
        namespaces: Option<Vec<String>>,
        include: impl Fn(&ResourceType) -> bool,
    ) -> LiveCache {
        let (changes, _) = broadcast::channel(4096);
        let cache = LiveCache {
            state: Arc::new(RwLock::new(State::default())),
            changes,
            client: client.clone(),
            tracking: Arc::new(tracking),
            tasks: Mutex::new(Vec::new()),
            watched: RwLock::new(Vec::new()),
            scope: namespaces.filter(|n| !n.is_empty()),
        };
        cache.watch_more(types, include);
        cache
    }

    /// Starts watches for the types of `types` not watched yet (a CRD was
    /// installed, an API service came up) that `include` accepts; returns
    /// the (group, kind) pairs added.
    pub fn watch_more(
        &self,
        types: &ResourceTypes,
        include: impl Fn(&ResourceType) -> bool,
    ) -> Vec<(String, String)> {
        let (Ok(mut watched), Ok(mut tasks)) = (self.watched.write(), self.tasks.lock()) else {
            return Vec::new();
        };
        let mut added = Vec::new();
        for t in types.kinds() {
            let gk = (t.resource.group.clone(), t.resource.kind.clone());
            if !t.watchable()
                || EXCLUDED.contains(&(gk.0.as_str(), gk.1.as_str()))
                || !include(t)
                || watched.contains(&gk)
            {
                continue;
            }
            watched.push(gk.clone());
            added.push(gk.clone());
            let apis: Vec<(Api<DynamicObject>, Option<String>)> = match &self.scope {
                Some(namespaces) if t.namespaced => namespaces
                    .iter()
                    .map(|ns| {
                        (
                            Api::namespaced_with(self.client.clone(), ns, &t.resource),
                            Some(ns.clone()),
                        )
                    })
                    .collect(),
                _ => vec![(Api::all_with(self.client.clone(), &t.resource), None)],
            };
            for (api, namespace) in apis {
                tasks.push(tokio::spawn(watch_type(
                    api,
                    namespace,
                    t.resource.api_version.clone(),
                    gk.clone(),
                    Arc::clone(&self.state),
                    self.changes.clone(),
                    Arc::clone(&self.tracking),
                )));
            }
        }
        watched.sort();
        added
    }

    /// Changes from now on.
    pub fn subscribe(&self) -> broadcast::Receiver<Change> {
        self.changes.subscribe()
    }

    /// The cached objects of `app`, sorted by key.
    pub fn app_objects(&self, app: &str) -> Vec<Arc<Value>> {
        let Ok(state) = self.state.read() else {
            return Vec::new();
        };
        let mut keys: Vec<&ObjectKey> = state
            .by_app
            .get(app)
            .map(|s| s.iter().collect())
            .unwrap_or_default();
        keys.sort();
        keys.into_iter()
            .filter_map(|k| state.objects.get(k).map(|(o, _)| Arc::clone(o)))
            .collect()
    }

    /// One cached object.
    pub fn get(&self, key: &ObjectKey) -> Option<Arc<Value>> {
        self.state
            .read()
            .ok()?
            .objects
            .get(key)
            .map(|(o, _)| Arc::clone(o))
    }

    /// The cached objects whose `ownerReferences` name `uid`, sorted by
    /// key.
    pub fn children(&self, uid: &str) -> Vec<Arc<Value>> {
        let Ok(state) = self.state.read() else {
            return Vec::new();
        };
        let mut keys: Vec<&ObjectKey> = state
            .by_owner
            .get(uid)
            .map(|s| s.iter().collect())
            .unwrap_or_default();
        keys.sort();
        keys.into_iter()
            .filter_map(|k| state.objects.get(k).map(|(o, _)| Arc::clone(o)))
            .collect()
    }

    /// The cached objects of namespace `namespace` that no application
    /// tracks, sorted by key (a scan of the cache: for the projects that
    /// ask for orphaned resources).
    pub fn untracked_in(&self, namespace: &str) -> Vec<Arc<Value>> {
        let Ok(state) = self.state.read() else {
            return Vec::new();
        };
        let mut found: Vec<(&ObjectKey, &Arc<Value>)> = state
            .objects
            .iter()
            .filter(|(k, (_, app))| app.is_none() && k.namespace == namespace)
            .map(|(k, (o, _))| (k, o))
            .collect();
        found.sort_by(|a, b| a.0.cmp(b.0));
        found.into_iter().map(|(_, o)| Arc::clone(o)).collect()
    }

    /// How many objects are cached.
    pub fn len(&self) -> usize {
        self.state.read().map(|s| s.objects.len()).unwrap_or(0)
    }

    /// Whether nothing is cached.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The watched (group, kind) pairs, sorted.
    pub fn watched(&self) -> Vec<(String, String)> {
        self.watched.read().map(|w| w.clone()).unwrap_or_default()
    }

    /// Types that cannot be watched, with the reason, e.g. forbidden by
    /// RBAC. Their objects are unknown.
    pub fn errors(&self) -> Vec<((String, String), String)> {
        self.state
            .read()
            .map(|s| {
                s.errors
                    .iter()
                    .map(|(k, v)| (k.clone(), v.clone()))
                    .collect()
            })
            .unwrap_or_default()
    }

    /// Waits until every watched type has been listed once or has failed,
    /// up to `timeout`; returns whether that happened.
    pub async fn wait_ready(&self, timeout: Duration) -> bool {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let done = self
                .state
                .read()
                .map(|s| {
                    self.watched()
                        .iter()
                        .all(|gk| s.synced.contains(gk) || s.errors.contains_key(gk))
                })
                .unwrap_or(false);
            if done {
                return true;
            }
            if tokio::time::Instant::now() >= deadline {
                return false;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

async fn watch_type(
    api: Api<DynamicObject>,
    namespace: Option<String>,
    api_version: String,
    gk: (String, String),
    state: Arc<RwLock<State>>,
    changes: broadcast::Sender<Change>,
    tracking: Arc<Tracking>,
) {
    let mut stream = watcher::watcher(api, watcher::Config::default()).boxed();
    // Objects seen during a re-list, to drop those deleted while the watch
    // was down.
    let mut relist: Option<HashSet<ObjectKey>> = None;
    let mut failures = 0u32;
    while let Some(event) = stream.next().await {
        let event = match event {
            Ok(e) => {
                failures = 0;
                if let Ok(mut s) = state.write() {
                    s.errors.remove(&gk);
                }
                e
            }
            Err(e) => {
                let message = e.to_string();
                tracing::warn!(group = %gk.0, kind = %gk.1, error = %message, "cannot watch resource type");
                if let Ok(mut s) = state.write() {
                    s.errors.insert(gk.clone(), message);
                }
                // The watcher retries on the next poll; pace it.
                failures = failures.saturating_add(1);
                let wait = Duration::from_millis(200u64.saturating_mul(1 << failures.min(7)));
                tokio::time::sleep(wait.min(Duration::from_secs(30))).await;
                continue;
            }
        };
        let mut record = |obj: DynamicObject, deleted: bool| {
            let Ok(value) = serde_json::to_value(&obj) else {
                return;
            };
            let mut value = strip(value);
            // The key depends on apiVersion and kind: an object that comes
            // without them (the API server may leave them out of list
            // items) gets them from the type being watched.
            if let Some(map) = value.as_object_mut() {
                if map.get("kind").is_none_or(|k| !k.is_string()) {
                    map.insert("kind".into(), Value::String(gk.1.clone()));
                }
                if map.get("apiVersion").is_none_or(|v| !v.is_string()) {
                    map.insert("apiVersion".into(), Value::String(api_version.clone()));
                }
            }
            let key = ObjectKey::of(&value);
            if let Some(seen) = relist.as_mut() {
                seen.insert(key.clone());
            }
            let app = match tracking.owner(&value) {
                Owner::App { app } => Some(app),
                _ => None,
            };
            let Ok(mut s) = state.write() else {
                return;
            };
            let app = if deleted {
                s.remove(&key)
            } else {
                s.upsert(key.clone(), value, app)
            };
            drop(s);
            let _ = changes.send(Change { key, app, deleted });
        };
        match event {
            Event::Apply(obj) => record(obj, false),
            Event::Delete(obj) => record(obj, true),
            Event::Init => relist = Some(HashSet::new()),
            Event::InitApply(obj) => record(obj, false),
            Event::InitDone => {
                let seen = relist.take().unwrap_or_default();
                let Ok(mut s) = state.write() else {
                    continue;
                };
                let gone: Vec<ObjectKey> = s
                    .objects
                    .keys()
                    .filter(|k| {
                        k.group == gk.0
                            && k.kind == gk.1
                            && namespace.as_ref().is_none_or(|n| *n == k.namespace)
                            && !seen.contains(*k)
                    })
                    .cloned()
                    .collect();
                let mut removed = Vec::new();
                for key in gone {
                    let app = s.remove(&key);
                    removed.push(Change {
                        key,
                        app,
                        deleted: true,
                    });
                }
                s.synced.insert(gk.clone());
                drop(s);
                for c in removed {
                    let _ = changes.send(c);
                }
            }
        }
    }
}
