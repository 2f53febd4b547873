//! The reconcile loop: Applications in the control namespace are compared
//! with Git continuously and their `status` kept current. Triggers: a
//! change to an Application's spec or its `argocd.argoproj.io/refresh`
//! annotation, any change to an object it manages (so drift shows in
//! seconds), and a periodic check of each app's sources. A queue
//! deduplicates per app and a fixed number of workers bound concurrency, so
//! no app can starve the others.
//!
//! Syncs run when an `operation` asks for one or the automated policy
//! allows it ([`crate::policy`]), executed from the engine's plan
//! ([`crate::sync`]); the operation's record and the history are written to
//! the Application's status as Argo CD writes them.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, SystemTime};

use berth_api::application::Application;
use berth_cluster::apply::{Applier, FIELD_MANAGER};
use berth_cluster::bootstrap::{application_resource, appproject_resource, syncrecord_resource};
use berth_cluster::discovery::ResourceTypes;
use berth_cluster::live::LiveCache;
use berth_render::cache::RenderCache;
use berth_source::creds::{CredentialStore, RepoSecret};
use berth_source::poll::RefPoller;
use berth_source::repo::{CacheOptions, RepoCache};
use futures::{FutureExt, StreamExt};
use k8s_openapi::api::core::v1::{ConfigMap, ObjectReference, Secret};
use kube::api::{DynamicObject, ListParams, Patch, PatchParams, PostParams};
use kube::runtime::events::{Event, EventType, Recorder, Reporter};
use kube::runtime::watcher::{self, Event as WatchEvent};
use kube::{Api, Client};
use serde_json::{Value, json};
use tokio::sync::{Notify, Semaphore};

use crate::compare::{self, Inputs};
use crate::policy::{self, Decision, SyncRequest};
use crate::record;
use crate::settings::ControllerSettings;
use crate::source::{self, Sources};
use crate::sync::{self, Executor};

/// How often an app held back by a running Argo CD looks again.
const ARGOCD_RECHECK: Duration = Duration::from_secs(10);

/// Argo CD's application controller in the control namespace with
/// replicas asked for (a StatefulSet, or a Deployment in some installs),
/// as `kind/name`, from the live cache.
fn argocd_running(shared: &Shared) -> Option<String> {
    for kind in ["StatefulSet", "Deployment"] {
        let key = berth_cluster::live::ObjectKey {
            group: "apps".into(),
            kind: kind.into(),
            namespace: shared.config.namespace.clone(),
            name: "argocd-application-controller".into(),
        };
        if let Some(obj) = shared.local.live.get(&key)
            && obj
                .pointer("/spec/replicas")
                .and_then(Value::as_i64)
                .unwrap_or(1)
                > 0
        {
            return Some(format!("{kind}/argocd-application-controller"));
        }
    }
    None
}

/// How often an operation held by a sync window looks again.
const WINDOW_RETRY: Duration = Duration::from_secs(10);

/// How many of the latest resource results a running sync shows in its
/// status.
const PROGRESS_RESULTS: usize = 200;

/// The refresh annotation (`normal` or `hard`).
pub const REFRESH_ANNOTATION: &str = "argocd.argoproj.io/refresh";

/// The label that marks Argo CD's repository Secrets.
pub const SECRET_TYPE_LABEL: &str = "argocd.argoproj.io/secret-type";

/// The controller's own cluster, as Applications name it.
pub const IN_CLUSTER: &str = "https://kubernetes.default.svc";

/// How often every app is compared even when nothing announced a change:
/// a safety net, not the way changes are found.
pub const FULL_RESYNC: Duration = Duration::from_secs(600);

/// Why [`Controller::run`] returned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stopped {
    /// The shutdown future completed.
    Shutdown,
    /// `argocd-cm` changed what the live cache watches or how it
    /// recognizes objects (tracking method, instance label, installation
    /// ID, exclusions): start the controller again to apply it.
    SettingsChanged,
}

/// Why the controller could not start.
#[derive(Debug, thiserror::Error)]
pub enum ControllerError {
    /// Bootstrap (CRDs, namespace, default project) failed.
    #[error(transparent)]
    Bootstrap(#[from] berth_cluster::bootstrap::BootstrapError),
    /// Discovery failed.
    #[error(transparent)]
    Discovery(#[from] berth_cluster::discovery::DiscoveryError),
    /// The repository cache could not be opened.
    #[error("cannot open the repository cache in {dir}: {source}")]
    Cache {
        /// Where.
        dir: PathBuf,
        /// Why.
        source: Box<berth_source::repo::Error>,
    },
}

/// How the controller runs.
#[derive(Debug, Clone)]
pub struct Config {
    /// The control namespace (`argocd`).
    pub namespace: String,
    /// Where Git mirrors, charts and scratch files go.
    pub cache_dir: PathBuf,
    /// How often each repository is checked for new commits and every app
    /// compared again, when `argocd-cm` sets no `timeout.reconciliation`
    /// (Berth's default 30 s).
    pub resync: Duration,
    /// Apps compared at once.
    pub workers: usize,
    /// The Kubernetes version Helm renders for.
    pub kube_version: String,
    /// What the API server reads of this controller; each start attaches
    /// its state.
    pub views: Arc<crate::views::Views>,
    /// Counters for `/metrics`, kept across restarts.
    pub metrics: Arc<crate::metrics::Metrics>,
    /// Take part in leader election (several replicas); `None`: this is
    /// the only controller and reconciles at once.
    pub leader_election: Option<crate::lease::LeaderElection>,
    /// Namespaces besides the control namespace whose Applications are
    /// reconciled (globs, as Argo CD's `application.namespaces`); an app
    /// there needs its project's `sourceNamespaces` to allow it. Empty:
    /// `application.namespaces` of `argocd-cmd-params-cm` is read at start.
    pub application_namespaces: Vec<String>,
}

impl Config {
    /// Defaults for `namespace`, with caches under `cache_dir`.
    pub fn new(namespace: &str, cache_dir: PathBuf) -> Config {
        Config {
            namespace: namespace.to_string(),
            cache_dir,
            resync: Duration::from_secs(30),
            workers: 4,
            kube_version: "1.34.0".into(),
            views: Arc::default(),
            metrics: Arc::default(),
            leader_election: None,
            application_namespaces: Vec::new(),
        }
    }

    /// Whether Applications in `namespace` are reconciled: the control
    /// namespace's always, others' when a glob of
    /// [`Config::application_namespaces`] matches.
    pub fn app_namespace_enabled(&self, namespace: &str) -> bool {
        namespace == self.namespace
            || self
                .application_namespaces
                .iter()
                .any(|g| berth_engine::glob::glob(g, namespace))
    }

    /// An Application's key in the controller, its metrics and its
    /// tracking: its name in the control namespace, `namespace_name`
    /// elsewhere (Argo CD's instance name; `_` cannot occur in either).
    pub fn app_key(&self, namespace: &str, name: &str) -> String {
        if namespace.is_empty() || namespace == self.namespace {
            name.to_string()
        } else {
            format!("{namespace}_{name}")
        }
    }

    /// The namespace and name of a key made by [`Config::app_key`].
    pub fn split_key<'a>(&'a self, key: &'a str) -> (&'a str, &'a str) {
        match key.split_once('_') {
            Some((namespace, name)) => (namespace, name),
            None => (self.namespace.as_str(), key),
        }
    }
}

/// The namespaces of `application.namespaces` in `argocd-cmd-params-cm`
/// (comma-separated globs), as Argo CD reads them.
pub async fn read_application_namespaces(client: &Client, namespace: &str) -> Vec<String> {
    let maps: Api<ConfigMap> = Api::namespaced(client.clone(), namespace);
    match maps.get_opt("argocd-cmd-params-cm").await {
        Ok(Some(cm)) => cm
            .data
            .unwrap_or_default()
            .get("application.namespaces")
            .map(|v| {
                v.split(',')
                    .map(str::trim)
                    .filter(|g| !g.is_empty())
                    .map(String::from)
                    .collect()
            })
            .unwrap_or_default(),
        Ok(None) => Vec::new(),
        Err(e) => {
            tracing::warn!(error = %e, "reading argocd-cmd-params-cm; Applications of the control namespace only");
            Vec::new()
        }
    }
}

/// The work queue: each app at most once, in arrival order.
#[derive(Default)]
struct Queue {
    order: Mutex<(std::collections::VecDeque<String>, HashSet<String>)>,
    notify: Notify,
}

impl Queue {
    fn push(&self, app: &str) {
        if let Ok(mut q) = self.order.lock()
            && q.1.insert(app.to_string())
        {
            q.0.push_back(app.to_string());
            self.notify.notify_one();
        }
    }

    async fn pop(&self) -> String {
        loop {
            let next = self.order.lock().ok().and_then(|mut q| {
                let app = q.0.pop_front()?;
                q.1.remove(&app);
                Some(app)
            });
            if let Some(app) = next {
                return app;
            }
            self.notify.notified().await;
        }
    }
}

pub(crate) struct Shared {
    pub(crate) config: Config,
    /// The controller's own cluster.
    pub(crate) local: Arc<Cluster>,
    /// The clusters of Argo CD's cluster Secrets, by server URL.
    pub(crate) remotes: RwLock<HashMap<String, Remote>>,
    pub(crate) repos: Arc<RepoCache>,
    /// One `ls-remote` per repository per interval, shared by its apps.
    pub(crate) poller: RefPoller,
    /// Render results by their inputs.
    renders: RenderCache,
    /// Repository credentials from the `repository`/`repo-creds` Secrets.
    credentials: RwLock<Arc<CredentialStore>>,
    /// `argocd-cm`, compiled; replaced as a whole when it changes.
    settings: RwLock<Arc<ControllerSettings>>,
    /// The `data` the settings were compiled from.
    settings_data: Mutex<BTreeMap<String, String>>,
    /// Signalled when `argocd-cm` changed what needs new watches.
    restart: Notify,
    /// Termination flags of the syncs running now, by app.
    cancels: Mutex<HashMap<String, Arc<AtomicBool>>>,
    /// The control namespace's Applications.
    pub(crate) apps: Api<DynamicObject>,
    pub(crate) client: Client,
    /// The ApprovalGates as last read (`None`: not readable yet).
    gates: RwLock<crate::gate::Gates>,
    /// Signs and checks sync requests and approvals; `None` when the key
    /// could not be had (gated syncs then wait).
    pub(crate) signer: Option<crate::approval::Signer>,
    pub(crate) projects: Api<DynamicObject>,
    /// Berth's SyncRecords in the control namespace.
    records: Api<DynamicObject>,
    recorder: Recorder,
    /// The last Application seen, by name.
    pub(crate) latest: Mutex<HashMap<String, Value>>,
    queue: Queue,
    /// Apps being reconciled, and those asked for meanwhile.
    running: Mutex<(HashSet<String>, HashSet<String>)>,
    /// Requested operations already run, as `app@resourceVersion` of the
    /// Application that carried them.
    handled: Mutex<HashSet<String>>,
    /// The latest automated sync per app: (revision, failed, the sources
    /// it synced).
    recent: Mutex<HashMap<String, (String, bool, Value)>>,
    /// Self-heal back-off per app: (revision, attempts, last attempt).
    heal: Mutex<HashMap<String, (String, u32, tokio::time::Instant)>>,
    /// When the warning about a running Argo CD was last logged.
    argocd_warned: Mutex<Option<std::time::Instant>>,
    /// Each cluster Secret's latest version seen, by server: a connection
    /// made for an older one is dropped.
    cluster_generations: Mutex<HashMap<String, u64>>,
    /// Set when this run ends, for the tasks it started on the side.
    stopping: AtomicBool,
}

/// A cluster Berth deploys to: its types, live objects and applier.
pub(crate) struct Cluster {
    /// Its API server's URL, as destinations name it.
    pub(crate) server: String,
    /// Its name (`in-cluster` for the controller's own).
    pub(crate) name: String,
    /// Its types, discovered again when CRDs or API services change (for
    /// a namespaced cluster, only at each connection).
    pub(crate) types: RwLock<Arc<ResourceTypes>>,
    pub(crate) live: LiveCache,
    pub(crate) applier: Applier,
    /// Dry-run results by desired object and live version.
    pub(crate) dry_runs: compare::DryRuns,
}

impl Cluster {
    /// Its types as last discovered.
    pub(crate) fn types(&self) -> Arc<ResourceTypes> {
        self.types
            .read()
            .map(|t| Arc::clone(&t))
            .unwrap_or_else(|p| Arc::clone(&p.into_inner()))
    }
}

/// A cluster of a cluster Secret, as far as the controller got with it.
#[derive(Clone)]
pub(crate) enum Remote {
    /// Its Secret was read; the connection is being made.
    Connecting { name: String },
    /// Connected: its caches are filling or full.
    Ready(Arc<Cluster>),
    /// It could not be reached (tried again every 30 s).
    Failed { name: String, error: String },
}

impl Shared {
    /// The cluster an Application deploys to, by `spec.destination`'s
    /// `server` or `name`; an error names what is wrong for a condition,
    /// `Ok(None)` while its connection is being made.
    pub(crate) fn cluster_for(&self, app: &Value) -> Result<Option<Arc<Cluster>>, String> {
        let text = |p: &str| app.pointer(p).and_then(Value::as_str).unwrap_or_default();
        let (server, name) = (
            text("/spec/destination/server"),
            text("/spec/destination/name"),
        );
        if server == IN_CLUSTER || (server.is_empty() && (name == "in-cluster" || name.is_empty()))
        {
            return Ok(Some(Arc::clone(&self.local)));
        }
        let remotes = self
            .remotes
            .read()
            .map_err(|_| "the cluster list is unavailable".to_string())?;
        let found = remotes.iter().find(|(s, r)| {
            if !server.is_empty() {
                return s.as_str() == server.trim_end_matches('/');
            }
            match r {
                Remote::Connecting { name: n } | Remote::Failed { name: n, .. } => n == name,
                Remote::Ready(c) => c.name == name,
            }
        });
        match found {
            Some((_, Remote::Ready(c))) => Ok(Some(Arc::clone(c))),
            Some((_, Remote::Connecting { .. })) => Ok(None),
            Some((s, Remote::Failed { error, .. })) => Err(format!(
                "spec.destination: cluster {s} cannot be reached: {error}"
            )),
            None => Err(format!(
                "spec.destination: cluster {} is not known: add it (`berth cluster add`, or an Argo CD cluster Secret in namespace {:?})",
                if server.is_empty() { name } else { server },
                self.config.namespace
            )),
        }
    }

    /// The ApprovalGates as last read; `None` while they cannot be read.
    pub(crate) fn gates(&self) -> crate::gate::Gates {
        self.gates.read().map(|g| g.clone()).unwrap_or(None)
    }

    /// The settings in force now.
    pub(crate) fn settings(&self) -> Arc<ControllerSettings> {
        self.settings
            .read()
            .map(|s| Arc::clone(&s))
            .unwrap_or_else(|p| Arc::clone(&p.into_inner()))
    }

    /// How often repositories are checked and apps compared again.
    fn interval(&self) -> Duration {
        self.settings().reconciliation.unwrap_or(self.config.resync)
    }

    pub(crate) fn credentials(&self) -> Arc<CredentialStore> {
        self.credentials
            .read()
            .map(|s| Arc::clone(&s))
            .unwrap_or_else(|p| Arc::clone(&p.into_inner()))
    }

    /// Every app known, for a change that concerns them all.
    /// The Applications of `namespace`.
    pub(crate) fn apps_in(&self, namespace: &str) -> Api<DynamicObject> {
        if namespace == self.config.namespace {
            self.apps.clone()
        } else {
            Api::namespaced_with(self.client.clone(), namespace, &application_resource())
        }
    }

    /// The key of an Application object (see [`Config::app_key`]).
    pub(crate) fn key_of(&self, app: &Value) -> String {
        let text = |p: &str| app.pointer(p).and_then(Value::as_str).unwrap_or_default();
        self.config
            .app_key(text("/metadata/namespace"), text("/metadata/name"))
    }

    /// A merge patch to the Application of `key`, in its namespace.
    pub(crate) async fn patch_app(
        &self,
        key: &str,
        patch: &Value,
    ) -> Result<DynamicObject, kube::Error> {
        let (namespace, name) = self.config.split_key(key);
        self.apps_in(namespace)
            .patch(name, &PatchParams::default(), &Patch::Merge(patch))
            .await
    }

    fn all_apps(&self) -> Vec<String> {
        self.latest
            .lock()
            .map(|l| l.keys().cloned().collect())
            .unwrap_or_default()
    }

    /// Self-heal may sync the same revision again once its back-off has
    /// passed since the last attempt: 5 s (Argo CD's self-heal timeout),
    /// doubling for each attempt that did not bring the app back in sync,
    /// at most 3 minutes. A new revision starts over.
    /// How long until self-heal may sync again; zero when it may now.
    fn heal_wait(&self, app: &str, revision: &str) -> Duration {
        let Ok(heal) = self.heal.lock() else {
            return Duration::from_secs(5);
        };
        match heal.get(app) {
            Some((rev, attempts, last)) if rev == revision => {
                let wait = Duration::from_secs(5)
                    .saturating_mul(1 << (*attempts).min(6))
                    .min(Duration::from_secs(180));
                (*last + wait).saturating_duration_since(tokio::time::Instant::now())
            }
            _ => Duration::ZERO,
        }
    }

    fn note_heal_attempt(&self, app: &str, revision: &str) {
        if let Ok(mut heal) = self.heal.lock() {
            let attempts = match heal.get(app) {
                Some((rev, n, _)) if rev == revision => n + 1,
                _ => 0,
            };
            heal.insert(
                app.to_string(),
                (revision.to_string(), attempts, tokio::time::Instant::now()),
            );
        }
    }

    /// A Kubernetes Event on the Application, as Argo CD records sync
    /// start and end; failing to record one is logged, never fatal.
    pub(crate) async fn event(&self, app: &Value, type_: EventType, reason: &str, note: String) {
        let text = |p: &str| app.pointer(p).and_then(Value::as_str).map(String::from);
        let reference = ObjectReference {
            api_version: text("/apiVersion"),
            kind: text("/kind"),
            name: text("/metadata/name"),
            namespace: text("/metadata/namespace"),
            uid: text("/metadata/uid"),
            resource_version: text("/metadata/resourceVersion"),
            ..ObjectReference::default()
        };
        let event = Event {
            type_,
            reason: reason.to_string(),
            // The API caps notes at 1 KiB.
            note: Some(note.chars().take(1000).collect()),
            action: "Sync".into(),
            secondary: None,
        };
        if let Err(e) = self.recorder.publish(&event, &reference).await {
            tracing::warn!(error = %e, reason, "recording an event");
        }
    }

    /// The app is in sync again: the next drift waits only the base delay.
    fn note_in_sync(&self, app: &str) {
        if let Ok(mut heal) = self.heal.lock()
            && let Some(entry) = heal.get_mut(app)
        {
            entry.1 = 0;
        }
    }
}

/// A running controller.
pub struct Controller {
    client: Client,
    shared: Arc<Shared>,
}

impl std::fmt::Debug for Controller {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Controller")
            .field("namespace", &self.shared.config.namespace)
            .finish()
    }
}

impl Controller {
    /// Installs what is missing, discovers the cluster, reads `argocd-cm`
    /// and the repository Secrets, and starts the live cache.
    pub async fn start(client: Client, mut config: Config) -> Result<Controller, ControllerError> {
        if config.application_namespaces.is_empty() {
            config.application_namespaces =
                read_application_namespaces(&client, &config.namespace).await;
        }
        if !config.application_namespaces.is_empty() {
            tracing::info!(namespaces = ?config.application_namespaces, "Applications reconciled in these namespaces too");
        }
        let installed = berth_cluster::bootstrap::install(&client, &config.namespace).await?;
        for what in &installed.created {
            tracing::info!(created = %what, "installed");
        }
        let types = ResourceTypes::discover(&client).await?;
        let data = read_argocd_cm(&client, &config.namespace).await;
        let settings = ControllerSettings::from_data(&config.namespace, &data);
        for warning in &settings.warnings {
            tracing::warn!(problem = %warning, "argocd-cm");
        }
        let tracking = settings.tracking();
        let filter = settings.resources.clone();
        let live = LiveCache::start(&client, &types, tracking, move |t| {
            !filter.excluded(&t.resource.group, &t.resource.kind, IN_CLUSTER)
        });
        let repos = Arc::new(
            RepoCache::new(config.cache_dir.join("git"), CacheOptions::default()).map_err(|e| {
                ControllerError::Cache {
                    dir: config.cache_dir.clone(),
                    source: Box::new(e),
                }
            })?,
        );
        let poller = RefPoller::new(
            Arc::clone(&repos),
            poll_interval(settings.reconciliation.unwrap_or(config.resync)),
        );
        let credentials = read_repo_secrets(&client, &config.namespace).await;
        // Read before the first reconcile, so no gated app syncs unseen.
        let gates = read_gates(&client).await;
        let signer = match crate::approval::Signer::load_or_create(&client, &config.namespace).await
        {
            Ok(s) => Some(s),
            Err(e) => {
                tracing::error!(error = %e, "approval signing key: gated apps cannot sync");
                None
            }
        };
        let apps = Api::namespaced_with(client.clone(), &config.namespace, &application_resource());
        let projects =
            Api::namespaced_with(client.clone(), &config.namespace, &appproject_resource());
        let records =
            Api::namespaced_with(client.clone(), &config.namespace, &syncrecord_resource());
        let controller = Controller {
            client: client.clone(),
            shared: Arc::new(Shared {
                config,
                local: Arc::new(Cluster {
                    server: IN_CLUSTER.into(),
                    name: "in-cluster".into(),
                    types: RwLock::new(Arc::new(types)),
                    live,
                    applier: Applier::new(client.clone(), FIELD_MANAGER),
                    dry_runs: compare::DryRuns::default(),
                }),
                remotes: RwLock::new(HashMap::new()),
                repos,
                poller,
                renders: RenderCache::new(4096),
                credentials: RwLock::new(Arc::new(credentials)),
                settings: RwLock::new(Arc::new(settings)),
                settings_data: Mutex::new(data),
                restart: Notify::new(),
                cancels: Mutex::new(HashMap::new()),
                recorder: Recorder::new(
                    client.clone(),
                    Reporter {
                        controller: "berth".into(),
                        instance: None,
                    },
                ),
                records,
                apps,
                client: client.clone(),
                gates: RwLock::new(gates),
                signer,
                projects,
                latest: Mutex::new(HashMap::new()),
                queue: Queue::default(),
                running: Mutex::new((HashSet::new(), HashSet::new())),
                heal: Mutex::new(HashMap::new()),
                recent: Mutex::new(HashMap::new()),
                handled: Mutex::new(HashSet::new()),
                argocd_warned: Mutex::new(None),
                cluster_generations: Mutex::new(HashMap::new()),
                stopping: AtomicBool::new(false),
            }),
        };
        controller.shared.config.views.attach(&controller.shared);
        Ok(controller)
    }

    /// Runs until `shutdown` completes, or until `argocd-cm` changes what
    /// only a new start can apply ([`Stopped::SettingsChanged`]; syncs in
    /// progress finish first).
    pub async fn run(self, shutdown: impl std::future::Future<Output = ()>) -> Stopped {
        let shared = self.shared;
        let _ = shared.local.live.wait_ready(Duration::from_secs(60)).await;
        // Types it may not list or watch (RBAC) are reported, not fatal:
        // their objects are unknown to comparisons.
        for ((group, kind), why) in shared.local.live.errors() {
            tracing::warn!(group = %group, kind = %kind, error = %why, "resource type not watched");
        }
        // Aborted however this future ends: returning, or dropped (the
        // task running it aborted), so nothing of this run goes on.
        let mut tasks = AbortOnDrop(
            vec![
                tokio::spawn(watch_apps(Arc::clone(&shared))),
                tokio::spawn(watch_live(Arc::clone(&shared))),
                tokio::spawn(resync(Arc::clone(&shared))),
                tokio::spawn(watch_argocd_cm(Arc::clone(&shared), self.client.clone())),
                tokio::spawn(watch_repo_secrets(Arc::clone(&shared), self.client.clone())),
                tokio::spawn(watch_api_types(Arc::clone(&shared), self.client.clone())),
                tokio::spawn(watch_clusters(Arc::clone(&shared), self.client.clone())),
                tokio::spawn(watch_gates(Arc::clone(&shared), self.client.clone())),
                tokio::spawn(crate::appset::run(Arc::clone(&shared))),
            ],
            Arc::clone(&shared),
        );
        let limit = Arc::new(Semaphore::new(shared.config.workers.max(1)));
        let workers = {
            let shared = Arc::clone(&shared);
            tokio::spawn(async move {
                loop {
                    let app = shared.queue.pop().await;
                    // One reconcile per app at a time; a request meanwhile
                    // runs once it is done.
                    let busy = shared.running.lock().map(|mut r| {
                        if r.0.contains(&app) {
                            r.1.insert(app.clone());
                            true
                        } else {
                            r.0.insert(app.clone());
                            false
                        }
                    });
                    if busy.unwrap_or(true) {
                        continue;
                    }
                    let Ok(permit) = Arc::clone(&limit).acquire_owned().await else {
                        return;
                    };
                    let shared = Arc::clone(&shared);
                    tokio::spawn(async move {
                        let started = std::time::Instant::now();
                        reconcile(&shared, &app).await;
                        let server = shared
                            .latest
                            .lock()
                            .ok()
                            .and_then(|l| {
                                l.get(&app)
                                    .and_then(|a| a.pointer("/spec/destination/server"))
                                    .and_then(Value::as_str)
                                    .map(String::from)
                            })
                            .unwrap_or_default();
                        shared.config.metrics.reconciled(
                            &shared.config.namespace,
                            &server,
                            started.elapsed(),
                        );
                        drop(permit);
                        let again = shared.running.lock().map(|mut r| {
                            r.0.remove(&app);
                            r.1.remove(&app)
                        });
                        if again.unwrap_or(false) {
                            shared.queue.push(&app);
                        }
                    });
                }
            })
        };
        tasks.0.push(workers);
        let stopped = tokio::select! {
            _ = shutdown => Stopped::Shutdown,
            _ = shared.restart.notified() => Stopped::SettingsChanged,
        };
        drop(tasks);
        if stopped == Stopped::SettingsChanged {
            // Reconciles already started finish, so a new start never
            // runs the same operation alongside them.
            while shared
                .running
                .lock()
                .map(|r| !r.0.is_empty())
                .unwrap_or(false)
            {
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            tracing::info!("argocd-cm changed tracking or resource filters; starting again");
        }
        stopped
    }
}

impl Controller {
    /// Runs until `shutdown` completes, starting again (new watches, same
    /// cluster and configuration) whenever `argocd-cm` changes what only a
    /// new start can apply.
    pub async fn serve(
        self,
        shutdown: impl std::future::Future<Output = ()>,
    ) -> Result<(), ControllerError> {
        let (client, config) = (self.client.clone(), self.shared.config.clone());
        let mut shutdown = std::pin::pin!(shutdown);
        let mut controller = Some(self);
        loop {
            // With leader election, only the Lease's holder reconciles;
            // the others wait with their caches started.
            let mut leadership = None;
            if let Some(le) = &config.leader_election {
                tokio::select! {
                    held = crate::lease::acquire(&client, &config.namespace, le) => leadership = Some(held),
                    _ = &mut shutdown => return Ok(()),
                }
            }
            let started = match controller.take() {
                Some(c) => c,
                None => Controller::start(client.clone(), config.clone()).await?,
            };
            let cancels = Arc::clone(&started.shared);
            let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
            let mut run = std::pin::pin!(started.run(async {
                let _ = stopped.await;
            }));
            let lost = async {
                match leadership.as_mut() {
                    Some(l) => l.lost().await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                why = &mut run => {
                    if why == Stopped::Shutdown {
                        if let Some(l) = leadership {
                            l.release().await;
                        }
                        return Ok(());
                    }
                }
                _ = &mut shutdown => {
                    let _ = stop.send(());
                    run.await;
                    if let Some(l) = leadership {
                        l.release().await;
                    }
                    return Ok(());
                }
                _ = lost => {
                    // Another replica may start within the lease's
                    // remaining time: running operations stop now.
                    if let Ok(c) = cancels.cancels.lock() {
                        for flag in c.values() {
                            flag.store(true, Ordering::Relaxed);
                        }
                    }
                    let _ = stop.send(());
                    run.await;
                    tracing::warn!("leadership lost; waiting to lead again");
                }
            }
        }
    }
}

/// A run's tasks, aborted when dropped; the run's side tasks (cluster
/// connections) are told to stop.
struct AbortOnDrop(Vec<tokio::task::JoinHandle<()>>, Arc<Shared>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.1.stopping.store(true, Ordering::Relaxed);
        for t in &self.0 {
            t.abort();
        }
    }
}

/// The poller's interval for a reconciliation timeout: zero turns periodic
/// checks off, so answers are kept until a refresh asks again.
fn poll_interval(reconciliation: Duration) -> Duration {
    if reconciliation.is_zero() {
        Duration::from_secs(365 * 24 * 3600)
    } else {
        reconciliation
    }
}

/// The `data` of `argocd-cm` in the control namespace, empty when there is
/// none; a ConfigMap that cannot be read is logged and defaults apply.
async fn read_argocd_cm(client: &Client, namespace: &str) -> BTreeMap<String, String> {
    let maps: Api<ConfigMap> = Api::namespaced(client.clone(), namespace);
    match maps.get_opt("argocd-cm").await {
        Ok(Some(cm)) => cm.data.unwrap_or_default(),
        Ok(None) => BTreeMap::new(),
        Err(e) => {
            tracing::warn!(error = %e, "reading argocd-cm; using defaults");
            BTreeMap::new()
        }
    }
}

/// Follows `argocd-cm`: customizations, health checks, the reconciliation
/// timeout and Kustomize options apply at once (every app is compared
/// again); tracking and resource filters ask for a new start.
async fn watch_argocd_cm(shared: Arc<Shared>, client: Client) {
    let maps: Api<ConfigMap> = Api::namespaced(client, &shared.config.namespace);
    let config = watcher::Config::default().fields("metadata.name=argocd-cm");
    let mut stream = watcher::watcher(maps, config).boxed();
    while let Some(event) = stream.next().await {
        let data = match event {
            Ok(WatchEvent::Apply(cm) | WatchEvent::InitApply(cm)) => cm.data.unwrap_or_default(),
            Ok(WatchEvent::Delete(_)) => BTreeMap::new(),
            Ok(_) => continue,
            Err(e) => {
                tracing::warn!(error = %e, "watching argocd-cm");
                tokio::time::sleep(Duration::from_secs(1)).await;
                continue;
            }
        };
        let changed = shared
            .settings_data
            .lock()
            .map(|mut d| {
                let changed = *d != data;
                *d = data.clone();
                changed
            })
            .unwrap_or(false);
        if !changed {
            continue;
        }
        let next = ControllerSettings::from_data(&shared.config.namespace, &data);
        for warning in &next.warnings {
            tracing::warn!(problem = %warning, "argocd-cm");
        }
        if shared.settings().live_cache_differs(&next) {
            shared.restart.notify_one();
            return;
        }
        shared.poller.set_interval(poll_interval(
            next.reconciliation.unwrap_or(shared.config.resync),
        ));
        if let Ok(mut s) = shared.settings.write() {
            *s = Arc::new(next);
        }
        tracing::info!("argocd-cm changed; comparing every app again");
        for app in shared.all_apps() {
            shared.queue.push(&app);
        }
    }
}

/// The ApprovalGates, parsed; one that cannot be read is taken at its
/// strictest ([`crate::approval::Gate::fail_closed`]). `None` when they
/// cannot be listed.
fn parse_gates(objects: &[DynamicObject]) -> Vec<crate::approval::Gate> {
    let values: Vec<Value> = objects
        .iter()
        .filter_map(|o| serde_json::to_value(o).ok())
        .collect();
    crate::approval::gates_from(&values)
}

async fn read_gates(client: &Client) -> crate::gate::Gates {
    let api: Api<DynamicObject> = Api::all_with(
        client.clone(),
        &berth_cluster::bootstrap::approvalgate_resource(),
    );
    match api.list(&ListParams::default()).await {
        Ok(list) => Some(Arc::new(parse_gates(&list.items))),
        Err(e) => {
            tracing::error!(error = %e, "listing ApprovalGates: every sync waits until they can be read");
            None
        }
    }
}

/// Follows the ApprovalGates; a change compares every app again (its
/// approval state in the status changes).
async fn watch_gates(shared: Arc<Shared>, client: Client) {
    use kube::runtime::WatchStreamExt;
    let api: Api<DynamicObject> =
        Api::all_with(client, &berth_cluster::bootstrap::approvalgate_resource());
    let mut objects: HashMap<String, DynamicObject> = HashMap::new();
    let mut stream = watcher::watcher(api, watcher::Config::default())
        .default_backoff()
        .boxed();
    let mut initial: Vec<DynamicObject> = Vec::new();
    while let Some(event) = stream.next().await {
        match event {
            Ok(WatchEvent::Init) => initial.clear(),
            Ok(WatchEvent::InitApply(o)) => initial.push(o),
            Ok(WatchEvent::InitDone) => {
                objects = initial
                    .drain(..)
                    .map(|o| (o.metadata.name.clone().unwrap_or_default(), o))
                    .collect();
            }
            Ok(WatchEvent::Apply(o)) => {
                objects.insert(o.metadata.name.clone().unwrap_or_default(), o);
            }
            Ok(WatchEvent::Delete(o)) => {
                objects.remove(&o.metadata.name.clone().unwrap_or_default());
            }
            Err(e) => {
                tracing::warn!(error = %e, "watching ApprovalGates");
                continue;
            }
        }
        if matches!(initial.len(), 0) {
            let list: Vec<DynamicObject> = objects.values().cloned().collect();
            let parsed = Arc::new(parse_gates(&list));
            let changed = shared
                .gates
                .read()
                .map(|g| g.as_deref() != Some(parsed.as_ref()))
                .unwrap_or(true);
            if changed {
                if let Ok(mut g) = shared.gates.write() {
                    *g = Some(parsed);
                }
                for app in shared.all_apps() {
                    shared.queue.push(&app);
                }
            }
        }
    }
}

/// Follows CustomResourceDefinitions and APIServices: after a change, the
/// cluster's types are discovered again and the new ones watched, so an
/// app that installs a CRD can manage its custom resources.
async fn watch_api_types(shared: Arc<Shared>, client: Client) {
    let local = Arc::downgrade(&shared.local);
    watch_types_of(shared, local, client).await;
}

/// Discovers a cluster's types again when its CRDs or APIServices change,
/// and watches the new ones; ends when the cluster is dropped (a remote
/// one reconnected or removed).
async fn watch_types_of(shared: Arc<Shared>, cluster: std::sync::Weak<Cluster>, client: Client) {
    use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
    use k8s_openapi::kube_aggregator::pkg::apis::apiregistration::v1::APIService;
    use kube::runtime::WatchStreamExt;
    // Backed off: credentials that may not watch these fail every time.
    let crds = watcher::watcher(
        Api::<CustomResourceDefinition>::all(client.clone()),
        watcher::Config::default(),
    )
    .default_backoff()
    .map(|e| matches!(e, Ok(WatchEvent::Apply(_) | WatchEvent::Delete(_))));
    let services = watcher::watcher(
        Api::<APIService>::all(client.clone()),
        watcher::Config::default(),
    )
    .default_backoff()
    .map(|e| matches!(e, Ok(WatchEvent::Apply(_) | WatchEvent::Delete(_))));
    let mut changes = futures::stream::select(crds.boxed(), services.boxed());
    let gone = || cluster.strong_count() == 0 || shared.stopping.load(Ordering::Relaxed);
    loop {
        // Looked at now and then, so watches of a cluster no longer used
        // end even when nothing changes there.
        let changed = tokio::select! {
            c = changes.next() => c,
            _ = tokio::time::sleep(Duration::from_secs(30)) => Some(false),
        };
        match changed {
            None => return,
            _ if gone() => return,
            Some(false) => continue,
            Some(true) => {}
        }
        // A CRD changes several times on its way to Established: one
        // discovery for the burst.
        tokio::time::sleep(Duration::from_millis(300)).await;
        while let Some(Some(_)) = changes.next().now_or_never() {}
        let Some(cluster) = cluster.upgrade() else {
            return;
        };
        match ResourceTypes::discover(&client).await {
            Ok(types) => {
                let settings = shared.settings();
                let added = cluster.live.watch_more(&types, |t| {
                    !settings.resources.excluded(
                        &t.resource.group,
                        &t.resource.kind,
                        &cluster.server,
                    )
                });
                if let Ok(mut current) = cluster.types.write() {
                    *current = Arc::new(types);
                }
                if !added.is_empty() {
                    tracing::info!(server = %cluster.server, types = ?added, "new resource types watched");
                }
            }
            Err(e) => {
                tracing::warn!(server = %cluster.server, error = %e, "discovering resource types again")
            }
        }
    }
}

/// A cluster Secret's server, name and `config`; `None` (logged) for one
/// that cannot be used, and for the controller's own cluster.
fn cluster_secret(secret: &Secret) -> Option<(String, String, Value)> {
    // `namespaces` and `clusterResources` ride along in the config for
    // the connection (a namespaced cluster).
    let data = secret.data.clone().unwrap_or_default();
    let text = |k: &str| {
        data.get(k)
            .map(|v| String::from_utf8_lossy(&v.0).trim().to_string())
            .unwrap_or_default()
    };
    let secret_name = secret.metadata.name.clone().unwrap_or_default();
    let server = text("server").trim_end_matches('/').to_string();
    if server.is_empty() {
        tracing::warn!(secret = %secret_name, "cluster Secret without server: ignored");
        return None;
    }
    if server == IN_CLUSTER {
        return None;
    }
    let config = match text("config") {
        c if c.is_empty() => json!({}),
        c => match serde_json::from_str(&c) {
            Ok(v) => v,
            Err(e) => {
                tracing::warn!(secret = %secret_name, error = %e, "cluster Secret config is not JSON: ignored");
                return None;
            }
        },
    };
    let name = match text("name") {
        n if n.is_empty() => server.clone(),
        n => n,
    };
    let mut config = config;
    let namespaces: Vec<String> = text("namespaces")
        .split(',')
        .map(|n| n.trim().to_string())
        .filter(|n| !n.is_empty())
        .collect();
    if !namespaces.is_empty()
        && let Some(m) = config.as_object_mut()
    {
        m.insert("berth.namespaces".into(), json!(namespaces));
        m.insert(
            "berth.clusterResources".into(),
            json!(text("clusterResources") == "true"),
        );
    }
    Some((server, name, config))
}

/// Follows Argo CD's cluster Secrets: each cluster is connected (its types
/// discovered, a live cache started) and every app compared again; a
/// cluster that cannot be reached is tried again every 30 s, and only the
/// apps that deploy to it report it.
async fn watch_clusters(shared: Arc<Shared>, client: Client) {
    let secrets: Api<Secret> = Api::namespaced(client, &shared.config.namespace);
    let config = watcher::Config::default().labels(&format!("{SECRET_TYPE_LABEL}=cluster"));
    let mut stream = watcher::watcher(secrets, config).boxed();
    while let Some(event) = stream.next().await {
        match event {
            Ok(WatchEvent::Apply(s) | WatchEvent::InitApply(s)) => {
                if let Some((server, name, config)) = cluster_secret(&s) {
                    connect_cluster(&shared, server, name, config);
                }
            }
            Ok(WatchEvent::Delete(s)) => {
                if let Some((server, ..)) = cluster_secret(&s) {
                    if let Ok(mut g) = shared.cluster_generations.lock() {
                        *g.entry(server.clone()).or_default() += 1;
                    }
                    if let Ok(mut r) = shared.remotes.write() {
                        r.remove(&server);
                    }
                    tracing::info!(%server, "cluster removed");
                    for app in shared.all_apps() {
                        shared.queue.push(&app);
                    }
                }
            }
            Ok(_) => {}
            Err(e) => {
                tracing::warn!(error = %e, "watching cluster Secrets");
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
        }
    }
}

/// Connects to a cluster of a cluster Secret in the background.
fn connect_cluster(shared: &Arc<Shared>, server: String, name: String, config: Value) {
    let generation = shared
        .cluster_generations
        .lock()
        .map(|mut g| {
            let n = g.entry(server.clone()).or_default();
            *n += 1;
            *n
        })
        .unwrap_or(0);
    // Whether this connection is still wanted.
    fn current(shared: &Shared, server: &str, generation: u64) -> bool {
        !shared.stopping.load(Ordering::Relaxed)
            && shared
                .cluster_generations
                .lock()
                .map(|g| g.get(server).copied() == Some(generation))
                .unwrap_or(false)
    }
    if let Ok(mut r) = shared.remotes.write() {
        r.insert(server.clone(), Remote::Connecting { name: name.clone() });
    }
    let shared = Arc::clone(shared);
    tokio::spawn(async move {
        loop {
            let result = connect_once(&shared, &server, &name, &config).await;
            if !current(&shared, &server, generation) {
                return;
            }
            let ok = result.is_ok();
            let remote = match result {
                Ok((cluster, client, namespaced)) => {
                    tracing::info!(%server, %name, "cluster connected");
                    // New CRDs there are watched as they come; a namespaced
                    // cluster's credentials cannot watch them.
                    if !namespaced {
                        tokio::spawn(watch_types_of(
                            Arc::clone(&shared),
                            Arc::downgrade(&cluster),
                            client,
                        ));
                    }
                    let mut changes = cluster.live.subscribe();
                    let follower = Arc::clone(&shared);
                    tokio::spawn(async move {
                        loop {
                            match changes.recv().await {
                                Ok(change) => {
                                    if let Some(app) = change.app {
                                        follower.queue.push(&app);
                                    }
                                }
                                Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => {
                                    for app in follower.all_apps() {
                                        follower.queue.push(&app);
                                    }
                                }
                                Err(_) => return,
                            }
                        }
                    });
                    Remote::Ready(cluster)
                }
                Err(error) => {
                    tracing::warn!(%server, %name, %error, "cluster cannot be reached; trying again in 30 s");
                    Remote::Failed {
                        name: name.clone(),
                        error,
                    }
                }
            };
            if let Ok(mut r) = shared.remotes.write() {
                r.insert(server.clone(), remote);
            }
            for app in shared.all_apps() {
                shared.queue.push(&app);
            }
            if ok {
                return;
            }
            tokio::time::sleep(CLUSTER_RETRY).await;
            if !current(&shared, &server, generation) {
                return;
            }
        }
    });
}

/// How often a cluster that could not be reached is tried again.
const CLUSTER_RETRY: Duration = Duration::from_secs(30);

async fn connect_once(
    shared: &Shared,
    server: &str,
    name: &str,
    config: &Value,
) -> Result<(Arc<Cluster>, Client, bool), String> {
    let client = berth_cluster::remote::client_for(server, config)
        .await
        .map_err(|e| e.to_string())?;
    let types = tokio::time::timeout(Duration::from_secs(15), ResourceTypes::discover(&client))
        .await
        .map_err(|_| "no answer within 15 s".to_string())?
        .map_err(|e| e.to_string())?;
    let settings = shared.settings();
    let filter = settings.resources.clone();
    let server_owned = server.to_string();
    // A namespaced cluster: its credentials reach those namespaces only
    // (and cluster-scoped types only with clusterResources).
    let namespaces: Option<Vec<String>> = config
        .get("berth.namespaces")
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(Value::as_str)
                .map(String::from)
                .collect()
        });
    let namespaced = namespaces.is_some();
    let cluster_resources = namespaces.is_none()
        || config
            .get("berth.clusterResources")
            .and_then(Value::as_bool)
            == Some(true);
    let live =
        LiveCache::start_scoped(&client, &types, settings.tracking(), namespaces, move |t| {
            (t.namespaced || cluster_resources)
                && !filter.excluded(&t.resource.group, &t.resource.kind, &server_owned)
        });
    let _ = live.wait_ready(Duration::from_secs(30)).await;
    let cluster = Arc::new(Cluster {
        server: server.to_string(),
        name: name.to_string(),
        types: RwLock::new(Arc::new(types)),
        live,
        applier: Applier::new(client.clone(), FIELD_MANAGER),
        dry_runs: compare::DryRuns::default(),
    });
    Ok((cluster, client, namespaced))
}

/// The label selector of Argo CD's repository Secrets.
fn repo_secret_selector() -> String {
    format!("{SECRET_TYPE_LABEL} in (repository,repo-creds)")
}

/// One Secret's credentials; a Secret that cannot be used is logged by
/// name (never its values) and left out.
fn repo_secret(secret: &Secret) -> Option<RepoSecret> {
    let name = format!(
        "{}/{}",
        secret.metadata.namespace.as_deref().unwrap_or_default(),
        secret.metadata.name.as_deref().unwrap_or_default()
    );
    let label = secret
        .metadata
        .labels
        .as_ref()
        .and_then(|l| l.get(SECRET_TYPE_LABEL))?;
    let mut data: BTreeMap<String, Vec<u8>> = secret
        .data
        .as_ref()
        .map(|d| d.iter().map(|(k, v)| (k.clone(), v.0.clone())).collect())
        .unwrap_or_default();
    if let Some(plain) = &secret.string_data {
        for (k, v) in plain {
            data.insert(k.clone(), v.clone().into_bytes());
        }
    }
    match RepoSecret::from_data(&name, label, &data) {
        Ok(s) => Some(s),
        Err(e) => {
            tracing::warn!(secret = %name, error = %e, "repository Secret ignored");
            None
        }
    }
}

/// The repository Secrets in the control namespace, read once at start so
/// the first comparisons already have them.
async fn read_repo_secrets(client: &Client, namespace: &str) -> CredentialStore {
    let secrets: Api<Secret> = Api::namespaced(client.clone(), namespace);
    match secrets
        .list(&ListParams::default().labels(&repo_secret_selector()))
        .await
    {
        Ok(list) => CredentialStore::new(list.items.iter().filter_map(repo_secret)),
        Err(e) => {
            tracing::warn!(error = %e, "listing repository Secrets; none used");
            CredentialStore::default()
        }
    }
}

/// Follows the repository Secrets: a change replaces the credentials, drops
/// the answers the poller holds for that repository, and compares every
/// app again.
async fn watch_repo_secrets(shared: Arc<Shared>, client: Client) {
    let secrets: Api<Secret> = Api::namespaced(client, &shared.config.namespace);
    let config = watcher::Config::default().labels(&repo_secret_selector());
    let mut stream = watcher::watcher(secrets, config).boxed();
    let mut known: BTreeMap<String, Option<RepoSecret>> = BTreeMap::new();
    let mut initial: Option<BTreeMap<String, Option<RepoSecret>>> = None;
    while let Some(event) = stream.next().await {
        let mut touched = Vec::new();
        match event {
            Ok(WatchEvent::Init) => {
                initial = Some(BTreeMap::new());
                continue;
            }
            Ok(WatchEvent::InitApply(s)) => {
                if let Some(i) = initial.as_mut() {
                    i.insert(s.metadata.name.clone().unwrap_or_default(), repo_secret(&s));
                }
                continue;
            }
            Ok(WatchEvent::InitDone) => {
                let next = initial.take().unwrap_or_default();
                if next == known {
                    continue;
                }
                touched.extend(
                    next.values()
                        .chain(known.values())
                        .flatten()
                        .map(|s| s.url.clone()),
                );
                known = next;
            }
            Ok(WatchEvent::Apply(s)) => {
                let name = s.metadata.name.clone().unwrap_or_default();
                let parsed = repo_secret(&s);
                touched.extend(parsed.iter().map(|p| p.url.clone()));
                if let Some(Some(old)) = known.insert(name, parsed) {
                    touched.push(old.url);
                }
            }
            Ok(WatchEvent::Delete(s)) => {
                let name = s.metadata.name.clone().unwrap_or_default();
                if let Some(Some(old)) = known.remove(&name) {
                    touched.push(old.url);
                }
            }
            Err(e) => {
                tracing::warn!(error = %e, "watching repository Secrets");
                tokio::time::sleep(Duration::from_secs(1)).await;
                continue;
            }
        }
        let store = CredentialStore::new(known.values().flatten().cloned());
        if let Ok(mut c) = shared.credentials.write() {
            *c = Arc::new(store);
        }
        for url in &touched {
            shared.poller.invalidate(url);
        }
        tracing::info!(repositories = touched.len(), "repository Secrets changed");
        for app in shared.all_apps() {
            shared.queue.push(&app);
        }
    }
}

/// What of an Application, when changed, calls for a comparison: not its
/// status, which the controller itself writes.
fn trigger_key(app: &Value) -> String {
    json!([
        app.get("spec"),
        app.get("operation"),
        app.pointer("/metadata/annotations")
            .and_then(|a| a.get(REFRESH_ANNOTATION)),
        app.pointer("/metadata/deletionTimestamp"),
        app.pointer("/metadata/annotations")
            .and_then(|a| a.get(crate::deletion::DELETION_APPROVED)),
    ])
    .to_string()
}

async fn watch_apps(shared: Arc<Shared>) {
    let mut keys: HashMap<String, String> = HashMap::new();
    // Other namespaces too: all are watched, those not enabled skipped.
    let api = if shared.config.application_namespaces.is_empty() {
        shared.apps.clone()
    } else {
        Api::all_with(shared.client.clone(), &application_resource())
    };
    let enabled = |o: &DynamicObject| {
        shared
            .config
            .app_namespace_enabled(o.metadata.namespace.as_deref().unwrap_or_default())
    };
    let mut stream = watcher::watcher(api, watcher::Config::default()).boxed();
    while let Some(event) = stream.next().await {
        let obj = match event {
            Ok(WatchEvent::Apply(o) | WatchEvent::InitApply(o)) if enabled(&o) => o,
            Ok(WatchEvent::Delete(o)) => {
                let name = shared.config.app_key(
                    o.metadata.namespace.as_deref().unwrap_or_default(),
                    o.metadata.name.as_deref().unwrap_or_default(),
                );
                keys.remove(&name);
                if let Ok(mut latest) = shared.latest.lock() {
                    latest.remove(&name);
                }
                continue;
            }
            Ok(_) => continue,
            Err(e) => {
                tracing::warn!(error = %e, "watching Applications");
                tokio::time::sleep(Duration::from_secs(1)).await;
                continue;
            }
        };
        let name = shared.config.app_key(
            obj.metadata.namespace.as_deref().unwrap_or_default(),
            obj.metadata.name.as_deref().unwrap_or_default(),
        );
        let Ok(value) = serde_json::to_value(&obj) else {
            continue;
        };
        let key = trigger_key(&value);
        if value
            .pointer("/status/operationState/phase")
            .and_then(Value::as_str)
            == Some("Terminating")
            && let Some(flag) = shared
                .cancels
                .lock()
                .ok()
                .and_then(|c| c.get(&name).cloned())
        {
            tracing::info!(app = %name, "terminating the running operation");
            flag.store(true, Ordering::Relaxed);
        }
        if let Ok(mut latest) = shared.latest.lock() {
            latest.insert(name.clone(), value);
        }
        if keys.get(&name) != Some(&key) {
            keys.insert(name.clone(), key);
            shared.queue.push(&name);
        }
    }
}

/// A change to a managed object: compare its app now.
async fn watch_live(shared: Arc<Shared>) {
    let mut changes = shared.local.live.subscribe();
    loop {
        match changes.recv().await {
            Ok(change) => {
                if let Some(app) = change.app {
                    // Apps outside the control namespace are tracked as
                    // `namespace_name`: their keys here.
                    shared.queue.push(&app);
                }
            }
            Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => {
                // Missed changes: compare everything.
                let names: Vec<String> = shared
                    .latest
                    .lock()
                    .map(|l| l.keys().cloned().collect())
                    .unwrap_or_default();
                for n in names {
                    shared.queue.push(&n);
                }
            }
            Err(_) => return,
        }
    }
}

/// Every app is compared again each interval: the poller asks each
/// repository once, and an app whose commit, spec and objects did not
/// change is answered from the render and dry-run caches. With
/// `timeout.reconciliation: 0` only the full resync remains.
async fn resync(shared: Arc<Shared>) {
    loop {
        let interval = shared.interval();
        let wait = if interval.is_zero() {
            FULL_RESYNC
        } else {
            interval.min(FULL_RESYNC)
        };
        tokio::time::sleep(wait).await;
        for n in shared.all_apps() {
            shared.queue.push(&n);
        }
    }
}

async fn reconcile(shared: &Arc<Shared>, name: &str) {
    let Some(raw) = shared.latest.lock().ok().and_then(|l| l.get(name).cloned()) else {
        return;
    };
    // Argo CD's application controller running beside Berth would fight
    // it over every app: nothing is done (not even a status write) until
    // it is scaled to zero, or `berth.takeOver` says Berth leads.
    if let Some(argo) = argocd_running(shared)
        && !shared.settings().take_over
    {
        let warn = shared
            .argocd_warned
            .lock()
            .map(|mut w| {
                let due =
                    w.is_none_or(|at: std::time::Instant| at.elapsed() > Duration::from_secs(60));
                if due {
                    *w = Some(std::time::Instant::now());
                }
                due
            })
            .unwrap_or(false);
        if warn {
            tracing::warn!(
                %argo,
                namespace = %shared.config.namespace,
                "Argo CD's application controller is running: Berth reconciles nothing until it is scaled to zero (or argocd-cm sets berth.takeOver: \"true\")"
            );
        }
        let shared = Arc::clone(shared);
        let name = name.to_string();
        tokio::spawn(async move {
            tokio::time::sleep(ARGOCD_RECHECK).await;
            shared.queue.push(&name);
        });
        return;
    }

    // Being deleted: no comparison or sync, only the cascade if asked for.
    if raw
        .pointer("/metadata/deletionTimestamp")
        .is_some_and(|t| !t.is_null())
    {
        if crate::deletion::finalize(shared, name, &raw).await
            == crate::deletion::Finalized::Waiting
        {
            let shared = Arc::clone(shared);
            let name = name.to_string();
            tokio::spawn(async move {
                tokio::time::sleep(crate::deletion::RETRY).await;
                shared.queue.push(&name);
            });
        }
        return;
    }
    let refresh = raw
        .pointer("/metadata/annotations")
        .and_then(|a| a.get(REFRESH_ANNOTATION))
        .and_then(Value::as_str);
    // A refresh, or a sync asked for, looks at the repositories again now
    // rather than at the poller's last answer; a hard refresh also renders
    // again.
    if refresh.is_some() || raw.pointer("/operation/sync").is_some() {
        for url in repo_urls(&raw) {
            shared.poller.invalidate(&url);
        }
    }
    let hard = refresh == Some("hard");
    let Compared { mut status, ready } = compare_app(shared, name, &raw, hard).await;
    if let Some(ready) = ready {
        if ready.comparison.sync == berth_engine::diff::SyncStatus::Synced {
            shared.note_in_sync(name);
        }
        let heal_wait = shared.heal_wait(name, &ready.revision);
        let heal_allowed = heal_wait.is_zero();
        let decision = policy::decide(
            &raw,
            ready.comparison.sync,
            &ready.revision,
            ready.objects.is_empty(),
            heal_allowed,
            shared
                .recent
                .lock()
                .ok()
                .and_then(|r| r.get(name).cloned())
                .filter(|(_, _, sources)| *sources == sources_of(&raw))
                .as_ref()
                .map(|(rev, failed, _)| (rev.as_str(), *failed)),
        );
        if decision == Decision::Nothing
            && !heal_allowed
            && ready.comparison.sync == berth_engine::diff::SyncStatus::OutOfSync
        {
            // Drift that self-heal's back-off holds back: look again when
            // it has passed, not only at the next periodic check.
            let shared = Arc::clone(shared);
            let name = name.to_string();
            tokio::spawn(async move {
                tokio::time::sleep(heal_wait).await;
                shared.queue.push(&name);
            });
        }
        // Approval gates: requests moved along, the state in the status
        // (Berth's extension), an approved request started.
        if raw.get("operation").is_none_or(Value::is_null) {
            let approval = crate::gate::maintain(shared, name, &raw, &ready).await;
            if !approval.is_null() {
                if !status.get("berth").is_some_and(Value::is_object) {
                    status["berth"] = json!({});
                }
                status["berth"]["approval"] = approval;
            }
        }
        // The project's sync windows, at the admission point: whatever
        // asked for the sync.
        let verdict = crate::windows::evaluate(
            &raw,
            &ready.project_name,
            &ready.project,
            jiff::Timestamp::now(),
        );
        if !verdict.windows.is_empty() {
            if !status.get("berth").is_some_and(Value::is_object) {
                status["berth"] = json!({});
            }
            status["berth"]["syncWindows"] = verdict.to_status();
        }
        let decision = match decision {
            Decision::Sync(request) if request.automated && !verdict.automated => {
                tracing::debug!(app = %name, reason = %verdict.reason, "automated sync held by a sync window");
                Decision::Nothing
            }
            Decision::Sync(request) if !request.automated && !verdict.manual => {
                // As Argo CD does: the operation waits, Running, until a
                // window lets it through.
                let now = rfc3339(SystemTime::now());
                let started = raw
                    .pointer("/status/operationState/startedAt")
                    .filter(|_| {
                        raw.pointer("/status/operationState/phase")
                            .and_then(Value::as_str)
                            == Some("Running")
                    })
                    .cloned()
                    .unwrap_or_else(|| json!(now));
                status["operationState"] = json!({
                    "operation": raw.get("operation"),
                    "phase": "Running",
                    "message": format!("Sync operation blocked: {}", verdict.reason),
                    "startedAt": started,
                });
                let patch = json!({"status": status});
                if let Err(e) = shared.patch_app(name, &patch).await {
                    tracing::warn!(app = %name, error = %e, "writing status");
                }
                let shared = Arc::clone(shared);
                let name = name.to_string();
                tokio::spawn(async move {
                    tokio::time::sleep(WINDOW_RETRY).await;
                    shared.queue.push(&name);
                });
                return;
            }
            other => other,
        };
        // The approval gates, at the same point: a sync of a gated app
        // runs only with approvals for exactly this change.
        let mut carried = None;
        let decision = match decision {
            Decision::Sync(request) if !request.dry_run => {
                match crate::gate::admit(shared, name, &raw, &ready, &request).await {
                    crate::gate::Admit::Run(r) => {
                        carried = r;
                        Decision::Sync(request)
                    }
                    crate::gate::Admit::Refuse(message) => Decision::Refuse(message),
                    crate::gate::Admit::Hold(message, held) => {
                        tracing::info!(app = %name, %message, "sync held for approvals");
                        if !status.get("berth").is_some_and(Value::is_object) {
                            status["berth"] = json!({});
                        }
                        if !status["berth"]
                            .get("approval")
                            .is_some_and(Value::is_object)
                        {
                            status["berth"]["approval"] = json!({});
                        }
                        status["berth"]["approval"]["message"] = json!(message);
                        if let Some(r) = &held {
                            status["berth"]["approval"]["request"] = json!(r);
                        }
                        if raw.get("operation").is_some_and(|o| !o.is_null()) {
                            // A request holds the operation now; without
                            // one (gates or key unreadable, a failed
                            // write) it stays and is looked at again.
                            if held.is_some() {
                                if let Err(e) = shared
                                    .patch_app(name, &json!({"operation": null, "status": status}))
                                    .await
                                {
                                    tracing::warn!(app = %name, error = %e, "handing the operation to its request");
                                }
                            } else {
                                let shared = Arc::clone(shared);
                                let name = name.to_string();
                                tokio::spawn(async move {
                                    tokio::time::sleep(WINDOW_RETRY).await;
                                    shared.queue.push(&name);
                                });
                            }
                            return;
                        }
                        // While a newer change waits, self-heal restores
                        // the change carried out last, and only that.
                        if request.automated && heal_to_approved(shared, name, &raw).await {
                            shared.queue.push(name);
                            return;
                        }
                        Decision::Nothing
                    }
                }
            }
            other => other,
        };
        match decision {
            Decision::Nothing => {}
            Decision::Refuse(message) => {
                let now = rfc3339(SystemTime::now());
                let conditions = status["conditions"].as_array().cloned().unwrap_or_default();
                let mut conditions = conditions;
                conditions.push(
                    json!({"type": "SyncError", "message": message, "lastTransitionTime": now}),
                );
                status["conditions"] = json!(conditions);
                if raw.pointer("/operation").is_some() {
                    // The refused request is answered and removed.
                    status["operationState"] = json!({
                        "operation": raw.get("operation"),
                        "phase": "Failed",
                        "message": message,
                        "startedAt": now,
                        "finishedAt": now,
                    });
                    let patch = json!({"status": status, "operation": null});
                    if let Err(e) = shared.patch_app(name, &patch).await {
                        tracing::warn!(app = %name, error = %e, "writing status");
                    }
                    return;
                }
            }
            Decision::Sync(request) => {
                if request.automated {
                    shared.note_heal_attempt(name, &ready.revision);
                } else {
                    // A requested operation runs once: the copy of the
                    // Application read before its request was cleared must
                    // not run it again.
                    let version = raw
                        .pointer("/metadata/resourceVersion")
                        .and_then(Value::as_str)
                        .unwrap_or_default()
                        .to_string();
                    let seen = shared
                        .handled
                        .lock()
                        .map(|mut h| h.insert(format!("{name}@{version}")))
                        .unwrap_or(false);
                    if !seen {
                        return;
                    }
                }
                run_sync(shared, name, &raw, ready, request).await;
                if let Some(r) = carried {
                    crate::gate::executed(shared, &raw, &r).await;
                }
                // Compare again with what the sync did.
                shared.queue.push(name);
                return;
            }
        }
    }
    // Unchanged apart from the time: nothing to write.
    let mut old = raw.get("status").cloned().unwrap_or(Value::Null);
    let mut new = status.clone();
    for s in [&mut old, &mut new] {
        if let Some(m) = s.as_object_mut() {
            m.remove("reconciledAt");
            // Written by syncs, not by the comparison (a merge patch keeps them).
            m.remove("operationState");
            m.remove("history");
            // Nulls in the approval state remove keys: absent is the same.
            if let Some(a) = m
                .get_mut("berth")
                .and_then(|b| b.get_mut("approval"))
                .and_then(Value::as_object_mut)
            {
                a.retain(|_, v| !v.is_null());
            }
            if let Some(c) = m.get_mut("conditions").and_then(Value::as_array_mut) {
                for cond in c {
                    if let Some(cm) = cond.as_object_mut() {
                        cm.remove("lastTransitionTime");
                    }
                }
            }
        }
    }
    // A refresh asked for is done: the annotation goes, as in Argo CD.
    let refreshed = raw
        .pointer("/metadata/annotations")
        .and_then(|a| a.get(REFRESH_ANNOTATION))
        .is_some();
    if old == new && !stale(&raw, shared.interval()) && !refreshed {
        return;
    }
    // A merge patch keeps keys it does not name: ones the comparison no
    // longer reports (a condition resolved, a cut undone) are removed.
    if let (Some(old), Some(new)) = (
        raw.get("status").and_then(Value::as_object),
        status.as_object_mut(),
    ) {
        for key in old.keys() {
            if !new.contains_key(key) && key != "operationState" && key != "history" {
                new.insert(key.clone(), Value::Null);
            }
        }
        // The same one level down, in Berth's own status block.
        if let (Some(old_berth), Some(new_berth)) = (
            old.get("berth").and_then(Value::as_object),
            new.get_mut("berth").and_then(Value::as_object_mut),
        ) {
            for key in old_berth.keys() {
                if !new_berth.contains_key(key) {
                    new_berth.insert(key.clone(), Value::Null);
                }
            }
        }
    }
    let mut patch = json!({"status": status});
    if refreshed {
        patch["metadata"] = json!({"annotations": {REFRESH_ANNOTATION: null}});
    }
    if let Err(e) = shared.patch_app(name, &patch).await {
        tracing::warn!(app = %name, error = %e, "writing status");
    }
}

/// Self-heal of a gated app whose target waits for approval: when the
/// live objects drifted from the change carried out last (its Executed
/// ApprovalRecord), that change, rendered again from its revisions, is
/// synced if it still binds exactly as approved. Whether it synced.
async fn heal_to_approved(shared: &Arc<Shared>, name: &str, raw: &Value) -> bool {
    if raw
        .pointer("/spec/syncPolicy/automated/selfHeal")
        .and_then(Value::as_bool)
        != Some(true)
    {
        return false;
    }
    let Some(approved) = crate::gate::last_executed(shared, raw).await else {
        return false;
    };
    let revisions: Vec<String> = approved
        .pointer("/revisions")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|r| r.as_str().map(String::from))
        .collect();
    let Some(first) = revisions.first() else {
        return false;
    };
    if !shared.heal_wait(name, first).is_zero() {
        return false;
    }
    let mut pinned = raw.clone();
    pinned["operation"] = if raw.pointer("/spec/sources").is_some_and(Value::is_array) {
        json!({"sync": {"revisions": revisions}, "initiatedBy": {"automated": true}})
    } else {
        json!({"sync": {"revision": first}, "initiatedBy": {"automated": true}})
    };
    let Compared { ready, .. } = compare_app(shared, name, &pinned, false).await;
    let Some(ready) = ready else {
        return false;
    };
    if ready.comparison.sync != berth_engine::diff::SyncStatus::OutOfSync {
        return false;
    }
    let Decision::Sync(request) = policy::decide(
        raw,
        ready.comparison.sync,
        &ready.revision,
        ready.objects.is_empty(),
        true,
        None,
    ) else {
        return false;
    };
    if !request.automated || crate::gate::binding_for(&pinned, &ready, &request) != approved {
        return false;
    }
    tracing::info!(app = %name, revision = %ready.revision, "self-heal back to the change approved last");
    shared.note_heal_attempt(name, &ready.revision);
    run_sync(shared, name, &pinned, ready, request).await;
    true
}

/// Whether `reconciledAt` is older than the resync period, so the time is
/// refreshed even when nothing else changed.
fn stale(raw: &Value, resync: Duration) -> bool {
    let Some(at) = raw.pointer("/status/reconciledAt").and_then(Value::as_str) else {
        return true;
    };
    let now = rfc3339(SystemTime::now());
    // Same-length UTC timestamps compare as text; a minute's margin.
    let then = at.get(..16).unwrap_or(at);
    let now_min = now.get(..16).unwrap_or(&now);
    resync >= Duration::from_secs(60) && then < now_min
}

/// A comparison with what a sync needs.
pub(crate) struct Compared {
    pub(crate) status: Value,
    /// Present when the sources rendered and were compared.
    pub(crate) ready: Option<Ready>,
}

pub(crate) struct Ready {
    app: Application,
    pub(crate) objects: Vec<Value>,
    /// The first source's revision (Argo CD's `revision`).
    revision: String,
    /// Every rendering source's revision (Argo CD's `revisions`).
    pub(crate) revisions: Vec<String>,
    pub(crate) comparison: compare::Comparison,
    pub(crate) live: Vec<Arc<Value>>,
    /// The AppProject's name and `spec`, for its sync windows.
    pub(crate) project_name: String,
    pub(crate) project: Value,
    /// The cluster it deploys to.
    pub(crate) cluster: Arc<Cluster>,
}

/// An app's `spec.source` and `spec.sources`, to tell whether they are the
/// ones synced last.
fn sources_of(raw: &Value) -> Value {
    json!([raw.pointer("/spec/source"), raw.pointer("/spec/sources")])
}

/// The repositories an Application's sources (and a requested
/// operation's source) read.
fn repo_urls(raw: &Value) -> Vec<String> {
    let mut urls: Vec<String> = [
        raw.pointer("/spec/source"),
        raw.pointer("/operation/sync/source"),
    ]
    .into_iter()
    .flatten()
    .chain(
        raw.pointer("/spec/sources")
            .and_then(Value::as_array)
            .into_iter()
            .flatten(),
    )
    .filter_map(|s| s.get("repoURL").and_then(Value::as_str))
    .map(str::to_string)
    .collect();
    urls.sort();
    urls.dedup();
    urls
}

/// The Application as a requested sync sees it: `operation.sync.source`
/// (a rollback's) replaces the source, and `revision` / `revisions` replace
/// the target revisions, as Argo CD applies them.
fn with_operation(raw: &Value) -> Value {
    let Some(op) = raw.pointer("/operation/sync").filter(|o| o.is_object()) else {
        return raw.clone();
    };
    let mut app = raw.clone();
    if let Some(source) = op.get("source").filter(|s| s.is_object()) {
        app["spec"]["source"] = source.clone();
        if let Some(spec) = app.get_mut("spec").and_then(Value::as_object_mut) {
            spec.remove("sources");
        }
    }
    if let Some(revision) = op
        .get("revision")
        .and_then(Value::as_str)
        .filter(|r| !r.is_empty())
        && app.pointer("/spec/source").is_some_and(Value::is_object)
    {
        app["spec"]["source"]["targetRevision"] = json!(revision);
    }
    if let Some(revisions) = op.get("revisions").and_then(Value::as_array)
        && let Some(sources) = app
            .pointer_mut("/spec/sources")
            .and_then(Value::as_array_mut)
    {
        for (source, revision) in sources.iter_mut().zip(revisions) {
            if let Some(r) = revision.as_str().filter(|r| !r.is_empty()) {
                source["targetRevision"] = json!(r);
            }
        }
    }
    app
}

pub(crate) async fn compare_app(
    shared: &Arc<Shared>,
    name: &str,
    stored: &Value,
    hard: bool,
) -> Compared {
    let now = rfc3339(SystemTime::now());
    let effective = with_operation(stored);
    let raw = &effective;
    let settings = shared.settings();
    let app = match Application::from_value(&format!("Application {name}"), raw.clone()) {
        Ok(a) => a,
        Err(e) => {
            return Compared {
                status: json!({
                    "sync": {"status": "Unknown"},
                    "health": {"status": "Unknown"},
                    "conditions": [{"type": "InvalidSpecError", "message": e.to_string(), "lastTransitionTime": now}],
                    "reconciledAt": now,
                }),
                ready: None,
            };
        }
    };
    // The project's rules come before anything is fetched or applied.
    let project_name = if app.spec.project.is_empty() {
        "default".to_string()
    } else {
        app.spec.project.clone()
    };
    let project = match shared.projects.get_opt(&project_name).await {
        Ok(Some(p)) => serde_json::to_value(&p)
            .ok()
            .and_then(|v| v.get("spec").cloned())
            .unwrap_or(Value::Null),
        Ok(None) => {
            return invalid(
                raw,
                &format!(
                    "spec.project: AppProject {project_name:?} does not exist in namespace {:?}",
                    shared.config.namespace
                ),
                &now,
            );
        }
        Err(e) => {
            return Compared {
                status: failed(
                    raw,
                    &format!("reading AppProject {project_name:?}: {e}"),
                    &now,
                ),
                ready: None,
            };
        }
    };
    if let Err(message) =
        crate::project::source_namespace(raw, &shared.config.namespace, &project_name, &project)
    {
        return invalid(raw, &message, &now);
    }
    if let Err(message) = crate::project::check(raw, &project_name, &project) {
        return invalid(raw, &message, &now);
    }
    // The cluster it deploys to: ours, or one of a cluster Secret.
    let cluster = match shared.cluster_for(raw) {
        Ok(Some(c)) => c,
        Ok(None) => {
            return Compared {
                status: failed(raw, "spec.destination: connecting to its cluster", &now),
                ready: None,
            };
        }
        Err(message) => {
            return Compared {
                status: failed(raw, &message, &now),
                ready: None,
            };
        }
    };
    let compared_to = json!({
        "source": raw.pointer("/spec/source"),
        "sources": raw.pointer("/spec/sources"),
        "destination": raw.pointer("/spec/destination"),
    });
    let track = source::tracking_name(&app, &shared.config.namespace);
    let credentials = shared.credentials();
    let work = shared
        .config
        .cache_dir
        .join("work")
        .join(format!("{name}-{}", std::process::id()));
    // Git and the renderers block: off the async workers.
    let rendered = {
        let shared = Arc::clone(shared);
        let app = app.clone();
        let work = work.clone();
        let settings = Arc::clone(&settings);
        tokio::task::spawn_blocking(move || {
            let sources = Sources {
                cache: &shared.repos,
                charts_dir: shared.config.cache_dir.join("charts"),
                kube_version: shared.config.kube_version.clone(),
                poller: Some(&shared.poller),
                credentials: Some(&credentials),
                renders: Some(&shared.renders),
                hard,
            };
            let r = source::render_application(&app, &sources, &settings.render, &work);
            let _ = std::fs::remove_dir_all(&work);
            r
        })
        .await
    };
    let rendered = match rendered {
        Ok(Ok(r)) => r,
        Ok(Err(e)) => {
            return Compared {
                status: failed(raw, &e.to_string(), &now),
                ready: None,
            };
        }
        Err(e) => {
            return Compared {
                status: failed(raw, &format!("rendering stopped: {e}"), &now),
                ready: None,
            };
        }
    };
    let live = cluster.live.app_objects(&track);
    let ignore = raw
        .pointer("/spec/ignoreDifferences")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    let mut conditions = Vec::new();
    let mut rendered = rendered;
    // Excluded types are not managed: left out, and said so.
    rendered.objects.retain(|o| {
        let (group, kind) = berth_api::kinds::group_kind(o);
        if !settings.resources.excluded(group, kind, &cluster.server) {
            return true;
        }
        let name = o
            .pointer("/metadata/name")
            .and_then(Value::as_str)
            .unwrap_or_default();
        conditions.push(json!({
            "type": "ExcludedResourceWarning",
            "message": format!("Resource {group}/{kind} {name} is excluded in the settings"),
            "lastTransitionTime": now,
        }));
        false
    });
    // Objects in Git that another application's tracking claims.
    let tracking = settings.tracking();
    let mut shared_with = HashMap::new();
    for o in &rendered.objects {
        let key = berth_cluster::live::ObjectKey::of(o);
        let Some(l) = cluster.live.get(&key) else {
            continue;
        };
        let other = match tracking.owner(&l) {
            berth_engine::tracking::Owner::App { app } => app,
            berth_engine::tracking::Owner::LooksLike { app, .. } => app,
            _ => continue,
        };
        if other != track {
            conditions.push(json!({
                "type": "SharedResourceWarning",
                "message": format!("{}/{} is part of applications {} and {}", key.kind, key.name, other.replace('_', "/"), track.replace('_', "/")),
                "lastTransitionTime": now,
            }));
            shared_with.insert(key, other);
        }
    }
    // Orphaned resources, when the project asks (Argo CD's
    // `orphanedResources`): untracked objects in the destination namespace.
    let destination_ns = app.spec.destination.namespace.clone().unwrap_or_default();
    if !destination_ns.is_empty() {
        let candidates = cluster.live.untracked_in(&destination_ns);
        if let Some(orphans) = crate::project::orphans(&project, &candidates)
            && !orphans.is_empty()
            && project
                .pointer("/orphanedResources/warn")
                .and_then(Value::as_bool)
                .unwrap_or(false)
        {
            conditions.push(json!({
                "type": "OrphanedResourceWarning",
                "message": format!("Application has {} orphaned resources", orphans.len()),
                "lastTransitionTime": now,
            }));
        }
    }
    let compare_started = std::time::Instant::now();
    let mut c = compare::compare(
        Inputs {
            desired: &rendered.objects,
            live: &live,
            ignore: &ignore,
            customizations: &settings.customizations,
            dry_runs: (!hard).then_some(&cluster.dry_runs),
        },
        &cluster.types(),
        &cluster.applier,
        &settings.checks,
    )
    .await;
    tracing::debug!(
        app = %name,
        objects = rendered.objects.len(),
        sync = %c.sync,
        elapsed_ms = compare_started.elapsed().as_millis() as u64,
        "compared"
    );
    for pair in &mut c.pairs {
        if let Some(d) = &pair.desired
            && let Some(app) = shared_with.get(&berth_cluster::live::ObjectKey::of(d))
        {
            pair.shared_with = Some(app.clone());
        }
    }
    let mut sync = json!({"status": c.sync.to_string(), "comparedTo": compared_to});
    if rendered.revisions.len() == 1 {
        sync["revision"] = json!(rendered.revisions[0]);
    } else {
        sync["revisions"] = json!(rendered.revisions);
    }
    let (resources, cut) = record::fit(
        c.resources.clone(),
        record::RESOURCES_BUDGET,
        record::resource_needs_attention,
    );
    let mut status = json!({
        "sync": sync,
        "health": {"status": c.health.to_string()},
        "resources": resources,
        "summary": compare::summary(&live),
        "reconciledAt": now,
    });
    if let Some(cut) = cut {
        // Berth's extension: the list is cut to fit the size budget.
        status["berth"] = json!({"resources": {"total": cut.total, "shown": cut.shown}});
    }
    let problems: Vec<String> = c.errors.iter().chain(&c.warnings).cloned().collect();
    if !problems.is_empty() {
        conditions.insert(
            0,
            json!({
                "type": "ComparisonError",
                "message": problems.join("; "),
                "lastTransitionTime": now,
            }),
        );
    }
    record::bound_conditions(&mut conditions);
    if !conditions.is_empty() {
        status["conditions"] = json!(conditions);
    }
    Compared {
        status,
        ready: Some(Ready {
            app,
            revision: rendered.revisions.first().cloned().unwrap_or_default(),
            revisions: rendered.revisions.clone(),
            objects: rendered.objects,
            comparison: c,
            live,
            project_name,
            project,
            cluster,
        }),
    }
}

/// An Application its project does not permit, or that names no project:
/// reported, never synced.
fn invalid(raw: &Value, message: &str, now: &str) -> Compared {
    let mut status = failed(raw, message, now);
    status["conditions"][0]["type"] = json!("InvalidSpecError");
    Compared {
        status,
        ready: None,
    }
}

/// A comparison that could not be made: the condition says why; the last
/// known resources and health are kept (nothing is ever deleted because a
/// source failed).
fn failed(raw: &Value, message: &str, now: &str) -> Value {
    let mut status = raw.get("status").cloned().unwrap_or_else(|| json!({}));
    if !status.is_object() {
        status = json!({});
    }
    // Only the sync writes these; a copy from a possibly stale read must
    // never overwrite what it wrote.
    if let Some(m) = status.as_object_mut() {
        m.remove("operationState");
        m.remove("history");
    }
    status["sync"]["status"] = json!("Unknown");
    status["conditions"] = json!([{
        "type": "ComparisonError",
        "message": message,
        "lastTransitionTime": now,
    }]);
    status["reconciledAt"] = json!(now);
    status
}

pub use berth_api::time::rfc3339;

/// Records that a sync starts, runs the engine's plan, and records the
/// outcome (`operationState`, `history`), clearing the request.
async fn run_sync(
    shared: &Arc<Shared>,
    name: &str,
    raw: &Value,
    ready: Ready,
    request: SyncRequest,
) {
    // An operation the status still shows Running, for this revision, was
    // interrupted (the controller died): it resumes under its own start
    // time, so its hooks keep their names and the ones it completed are
    // not run again.
    let last = raw.pointer("/status/operationState");
    let resumed = last.filter(|l| {
        l.get("phase").and_then(Value::as_str) == Some("Running")
            && l.pointer("/operation/sync/revision")
                .and_then(Value::as_str)
                == Some(ready.revision.as_str())
    });
    let started = resumed
        .and_then(|l| l.get("startedAt"))
        .and_then(Value::as_str)
        .map(String::from)
        .unwrap_or_else(|| rfc3339(SystemTime::now()));
    let started_secs = started
        .parse::<jiff::Timestamp>()
        .map(|t| t.as_second())
        .unwrap_or(0);
    let done_hooks: HashSet<String> = resumed
        .and_then(|l| l.pointer("/syncResult/resources"))
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter(|r| r.get("hookType").is_some() && r["status"] == "Synced")
        .filter_map(|r| r.get("name").and_then(Value::as_str).map(String::from))
        .collect();
    if resumed.is_some() {
        tracing::info!(app = %name, started = %started, hooks_done = done_hooks.len(), "resuming an interrupted operation");
    }
    let settings = shared.settings();
    // The operation as asked for (Argo CD keeps the request), with the
    // revision it resolved to.
    let operation = match raw.get("operation").filter(|o| o.is_object()) {
        Some(op) => {
            let mut op = op.clone();
            // `sync` written as something other than an object is
            // replaced, not indexed into.
            if !op.get("sync").is_some_and(Value::is_object) {
                op["sync"] = json!({});
            }
            op["sync"]["revision"] = json!(ready.revision);
            op
        }
        None => json!({
            "sync": {
                "revision": ready.revision,
                "prune": request.prune,
                "dryRun": request.dry_run,
                "syncOptions": request.sync_options,
            },
            "initiatedBy": request.initiated_by,
        }),
    };
    // A new operation replaces the last one's record whole.
    let running = json!({"status": {"operationState": {
        "operation": operation, "phase": "Running", "message": "syncing", "startedAt": started,
        "finishedAt": null, "syncResult": null, "retryCount": null, "berth": null,
    }}});
    if let Err(e) = shared.patch_app(name, &running).await {
        tracing::warn!(app = %name, error = %e, "recording the sync start");
    }
    tracing::info!(app = %name, revision = %ready.revision, automated = request.automated, "sync started");
    let initiated = if request.automated {
        format!("Initiated automated sync to '{}'", ready.revision)
    } else {
        format!("Initiated sync to '{}'", ready.revision)
    };
    shared
        .event(raw, EventType::Normal, "OperationStarted", initiated)
        .await;

    let destination = ready
        .app
        .spec
        .destination
        .namespace
        .clone()
        .unwrap_or_default();
    let mut resources = ready.comparison.pairs.clone();
    if !request.resources.is_empty() {
        // A selective sync touches only what it names.
        resources.retain(|r| {
            r.desired
                .as_ref()
                .or(r.live.as_ref())
                .is_some_and(|o| request.resources.iter().any(|s| s.matches(o)))
        });
    }
    let resources_for_check = resources.clone();
    let plan = berth_engine::plan::plan_sync(&berth_engine::plan::SyncInput {
        resources,
        sync_options: request.sync_options.clone(),
        prune: request.prune,
        force: request.force,
        skip_hooks: request.skip_hooks,
        destination_namespace: destination.clone(),
        namespace_exists: ready
            .cluster
            .live
            .get(&berth_cluster::live::ObjectKey {
                group: String::new(),
                kind: "Namespace".into(),
                namespace: String::new(),
                name: destination,
            })
            .is_some(),
        managed_namespace_metadata: None,
    });
    let mut retry_count = 0u32;
    let cancel = Arc::new(AtomicBool::new(false));
    if let Ok(mut c) = shared.cancels.lock() {
        c.insert(name.to_string(), Arc::clone(&cancel));
    }
    // The project's resource lists, checked for everything the sync would
    // write or delete before anything is: one refused object fails it all,
    // as in Argo CD.
    let types = ready.cluster.types();
    let mut refused = Vec::new();
    for r in &resources_for_check {
        let Some(obj) = r
            .desired
            .as_ref()
            .or(if request.prune { r.live.as_ref() } else { None })
        else {
            continue;
        };
        let (group, kind) = berth_api::kinds::group_kind(obj);
        let obj_name = obj
            .pointer("/metadata/name")
            .and_then(Value::as_str)
            .unwrap_or_default();
        let namespaced = types.namespaced(group, kind).unwrap_or(true);
        if !crate::project::resource_permitted(&ready.project, group, kind, obj_name, namespaced) {
            let message = format!(
                "resource {group}:{kind} {obj_name} is not permitted in project {}",
                ready.project_name
            );
            refused.push(sync::result(
                &sync::object_ref(obj),
                berth_engine::plan::Phase::Sync,
                "SyncFailed",
                message,
                false,
            ));
        }
    }
    let outcome = if !refused.is_empty() {
        let messages: Vec<&str> = refused
            .iter()
            .filter_map(|r| r["message"].as_str())
            .collect();
        sync::Outcome {
            phase: "Failed",
            message: format!(
                "one or more synchronization tasks are not valid: {}",
                messages.join("; ")
            ),
            resources: refused.clone(),
            hooks: Vec::new(),
        }
    } else {
        match plan.validate() {
            Err(e) => sync::Outcome {
                phase: "Failed",
                message: format!("{e}; see `berth admin plan` for the full plan"),
                resources: Vec::new(),
                hooks: Vec::new(),
            },
            Ok(()) => {
                let types = ready.cluster.types();
                // Progress goes to the status as it happens (at most four
                // writes a second), as Argo CD fills `syncResult.resources`
                // while a sync runs; the final write below replaces it.
                let (progress_tx, mut progress_rx) =
                    tokio::sync::watch::channel(sync::Report::default());
                let progress_writer = {
                    let shared = Arc::clone(shared);
                    let name = name.to_string();
                    tokio::spawn(async move {
                        // `dirty`: a newer report came during the pause.
                        let mut dirty = false;
                        loop {
                            if !dirty && progress_rx.changed().await.is_err() {
                                return;
                            }
                            dirty = false;
                            let r = progress_rx.borrow_and_update().clone();
                            // Bounded: the latest results, not thousands.
                            let recent: Vec<Value> = r
                                .resources
                                .iter()
                                .skip(r.resources.len().saturating_sub(PROGRESS_RESULTS))
                                .cloned()
                                .collect();
                            let patch = json!({"status": {"operationState": {
                                "message": format!("{} wave {}: {} of {} steps done", r.phase, r.wave, r.done, r.total),
                                "syncResult": {"resources": recent},
                                // Berth's extension: every phase and wave
                                // with its steps done, for progress bars.
                                "berth": {"progress": {"phase": r.phase, "wave": r.wave,
                                    "done": r.done, "total": r.total,
                                    "groups": r.groups.iter().map(sync::GroupProgress::to_json).collect::<Vec<_>>()}},
                            }}});
                            if let Err(e) = shared.patch_app(&name, &patch).await {
                                tracing::debug!(app = %name, error = %e, "writing sync progress");
                            }
                            // A pause between writes; the end of the sync ends
                            // it at once (the final result follows).
                            let until = tokio::time::Instant::now() + Duration::from_millis(250);
                            loop {
                                tokio::select! {
                                    _ = tokio::time::sleep_until(until) => break,
                                    changed = progress_rx.changed() => match changed {
                                        Ok(()) => dirty = true,
                                        Err(_) => return,
                                    },
                                }
                            }
                        }
                    })
                };
                let executor = Executor {
                    types: &types,
                    applier: &ready.cluster.applier,
                    checks: &settings.checks,
                    desired: ready
                        .objects
                        .iter()
                        .map(|o| (sync::object_ref(o), o.clone()))
                        .collect(),
                    live: ready
                        .live
                        .iter()
                        .map(|o| (sync::object_ref(o), o.as_ref().clone()))
                        .collect(),
                    revision: ready.revision.clone(),
                    started_at: started_secs,
                    wait_limit: sync::WAIT_LIMIT,
                    cancel: Some(&cancel),
                    progress: Some(&progress_tx),
                    operation: started.clone(),
                    done_hooks: done_hooks.clone(),
                };
                let retry = Retry::of(raw);
                let mut attempt = 0u32;
                let outcome = loop {
                    let last = !retry.again(attempt);
                    let outcome = executor.run(&plan, request.dry_run, last).await;
                    if outcome.phase == "Succeeded"
                        || last
                        || request.dry_run
                        || executor.cancelled()
                    {
                        retry_count = attempt;
                        break outcome;
                    }
                    let wait = retry.delay(attempt);
                    attempt += 1;
                    tracing::info!(app = %name, attempt, wait_ms = wait.as_millis() as u64, error = %outcome.message, "sync failed; retrying");
                    let retrying = json!({"status": {"operationState": {
                        "operation": operation, "phase": "Running", "startedAt": started,
                        "retryCount": attempt,
                        "message": format!("retrying attempt #{attempt} in {}s: {}", wait.as_secs(), outcome.message),
                    }}});
                    let _ = shared.patch_app(name, &retrying).await;
                    // A termination asked for during the wait ends it.
                    let deadline = tokio::time::Instant::now() + wait;
                    while tokio::time::Instant::now() < deadline && !executor.cancelled() {
                        tokio::time::sleep(Duration::from_millis(200)).await;
                    }
                    executor.remove_hooks(&outcome.hooks).await;
                };
                // The last progress is written before the result, never after.
                drop(executor);
                drop(progress_tx);
                let _ = progress_writer.await;
                outcome
            }
        }
    };
    if let Ok(mut c) = shared.cancels.lock() {
        c.remove(name);
    }
    if request.automated
        && !request.dry_run
        && let Ok(mut recent) = shared.recent.lock()
    {
        recent.insert(
            name.to_string(),
            (
                ready.revision.clone(),
                outcome.phase != "Succeeded",
                sources_of(raw),
            ),
        );
    }
    let finished = rfc3339(SystemTime::now());
    tracing::info!(app = %name, phase = outcome.phase, message = %outcome.message, "sync finished");
    shared.config.metrics.sync_finished(raw, outcome.phase);
    if outcome.phase == "Succeeded" {
        shared
            .event(
                raw,
                EventType::Normal,
                "OperationCompleted",
                format!("Sync operation to {} succeeded", ready.revision),
            )
            .await;
    } else {
        shared
            .event(
                raw,
                EventType::Warning,
                "OperationCompleted",
                format!(
                    "Sync operation to {} failed: {}",
                    ready.revision, outcome.message
                ),
            )
            .await;
    }
    // What was synced: a rollback's source, not the spec's.
    let synced = with_operation(raw);
    let source = synced
        .pointer("/spec/source")
        .cloned()
        .unwrap_or(Value::Null);
    let sources = synced.pointer("/spec/sources").cloned();
    let all_results = outcome.resources;
    let (shown, cut) = record::fit(
        all_results.clone(),
        record::SYNC_RESULT_BUDGET,
        record::result_needs_attention,
    );
    let mut state = json!({
        "operation": operation,
        "phase": outcome.phase,
        "message": outcome.message,
        "startedAt": started,
        "finishedAt": finished,
        "syncResult": {"revision": ready.revision, "source": source, "resources": shown},
        "retryCount": null,
        "berth": null,
    });
    if let Some(sources) = &sources {
        state["syncResult"]["sources"] = sources.clone();
    }
    if retry_count > 0 {
        state["retryCount"] = json!(retry_count);
    }
    if !request.dry_run {
        // Berth's extension: where the complete result is kept, and
        // whether the list above is cut.
        let mut berth = json!({"syncRecord": record::record_base(name, started_secs)});
        if let Some(cut) = cut {
            berth["resources"] = json!({"total": cut.total, "shown": cut.shown});
        }
        state["berth"] = berth;
    }
    let mut history = raw
        .pointer("/status/history")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    if outcome.phase == "Succeeded" && !request.dry_run {
        let id = history
            .iter()
            .filter_map(|h| h.get("id").and_then(Value::as_i64))
            .max()
            .unwrap_or(-1)
            + 1;
        let mut entry = json!({
            "id": id,
            "revision": ready.revision,
            "source": source,
            "deployStartedAt": started,
            "deployedAt": finished,
            "initiatedBy": request.initiated_by,
        });
        if let Some(sources) = &sources {
            entry["sources"] = sources.clone();
            entry["revisions"] = json!(ready.revisions);
        }
        history.push(entry);
        // Argo CD's default revisionHistoryLimit.
        let limit = raw
            .pointer("/spec/revisionHistoryLimit")
            .and_then(Value::as_u64)
            .unwrap_or(10) as usize;
        if history.len() > limit {
            history.drain(..history.len() - limit);
        }
    }
    let mut patch =
        json!({"status": {"operationState": state, "history": history}, "operation": null});
    // The running sync's progress ends with it (a merge patch keeps what
    // it does not name).
    if let Some(berth) = patch
        .pointer_mut("/status/operationState/berth")
        .and_then(Value::as_object_mut)
    {
        berth.insert("progress".into(), Value::Null);
    }
    if let Err(e) = shared.patch_app(name, &patch).await {
        tracing::warn!(app = %name, error = %e, "recording the sync outcome");
    }
    if !request.dry_run {
        write_records(shared, name, raw, started_secs, &state, &all_results).await;
    }
}

/// Writes the sync's SyncRecords and removes those of syncs older than the
/// last [`record::RECORDS_KEPT`]. A failure is logged: the Application's
/// own status already has the outcome.
async fn write_records(
    shared: &Arc<Shared>,
    name: &str,
    raw: &Value,
    started_secs: i64,
    state: &Value,
    results: &[Value],
) {
    let uid = raw
        .pointer("/metadata/uid")
        .and_then(Value::as_str)
        .unwrap_or_default();
    let mut summary_state = state.clone();
    if let Some(r) = summary_state
        .get_mut("syncResult")
        .and_then(Value::as_object_mut)
    {
        r.remove("resources");
    }
    // Beside their Application: an owner reference cannot cross
    // namespaces.
    let (namespace, app_name) = shared.config.split_key(name);
    let records = if namespace == shared.config.namespace {
        shared.records.clone()
    } else {
        Api::namespaced_with(shared.client.clone(), namespace, &syncrecord_resource())
    };
    let summary = record::SyncSummary {
        app: app_name,
        app_uid: uid,
        namespace,
        started_secs,
        state: &summary_state,
    };
    for rec in record::records(&summary, results) {
        let Ok(obj) = serde_json::from_value::<DynamicObject>(rec) else {
            continue;
        };
        if let Err(e) = records.create(&PostParams::default(), &obj).await {
            tracing::warn!(app = %name, error = %e, "writing a SyncRecord");
        }
    }
    let selector = format!(
        "{}={}",
        record::APP_LABEL,
        record::app_label_value(app_name)
    );
    let Ok(list) = records
        .list_metadata(&ListParams::default().labels(&selector))
        .await
    else {
        return;
    };
    let mut syncs: Vec<i64> = list
        .items
        .iter()
        .filter_map(|r| {
            r.metadata
                .labels
                .as_ref()?
                .get("berth.io/sync")?
                .parse()
                .ok()
        })
        .collect();
    syncs.sort_unstable();
    syncs.dedup();
    if syncs.len() <= record::RECORDS_KEPT {
        return;
    }
    let oldest_kept = syncs[syncs.len() - record::RECORDS_KEPT];
    for r in &list.items {
        let sync: i64 = r
            .metadata
            .labels
            .as_ref()
            .and_then(|l| l.get("berth.io/sync"))
            .and_then(|s| s.parse().ok())
            .unwrap_or(i64::MAX);
        if sync < oldest_kept
            && let Some(n) = &r.metadata.name
        {
            let _ = records.delete(n, &Default::default()).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_changes_do_not_trigger() {
        let a = json!({"spec": {"x": 1}, "status": {"sync": {"status": "Synced"}}});
        let b = json!({"spec": {"x": 1}, "status": {"sync": {"status": "OutOfSync"}}});
        assert_eq!(trigger_key(&a), trigger_key(&b));
        let c = json!({"spec": {"x": 2}});
        assert_ne!(trigger_key(&a), trigger_key(&c));
        let refresh = json!({"spec": {"x": 1}, "metadata": {"annotations": {"argocd.argoproj.io/refresh": "hard"}}});
        assert_ne!(trigger_key(&a), trigger_key(&refresh));
    }
}

/// `syncPolicy.retry` (or the operation's `retry`): how often a failed sync
/// is tried again, and how long to wait in between.
#[derive(Debug, Clone, Copy, PartialEq)]
struct Retry {
    /// Retries after the first attempt; negative for no limit.
    limit: i64,
    duration: Duration,
    factor: f64,
    max: Duration,
}

impl Retry {
    fn of(app: &Value) -> Retry {
        let spec = app
            .pointer("/operation/retry")
            .or_else(|| app.pointer("/spec/syncPolicy/retry"));
        let backoff = spec.and_then(|r| r.get("backoff"));
        let dur = |key: &str, default: Duration| {
            backoff
                .and_then(|b| b.get(key))
                .and_then(Value::as_str)
                .and_then(parse_duration)
                .unwrap_or(default)
        };
        Retry {
            limit: spec
                .and_then(|r| r.get("limit"))
                .and_then(Value::as_i64)
                .unwrap_or(if spec.is_some() { 5 } else { 0 }),
            duration: dur("duration", Duration::from_secs(5)),
            factor: backoff
                .and_then(|b| b.get("factor"))
                .and_then(Value::as_f64)
                .unwrap_or(2.0),
            max: dur("maxDuration", Duration::from_secs(180)),
        }
    }

    fn again(&self, attempt: u32) -> bool {
        self.limit < 0 || i64::from(attempt) < self.limit
    }

    fn delay(&self, attempt: u32) -> Duration {
        let secs = self.duration.as_secs_f64() * self.factor.max(1.0).powi(attempt as i32);
        Duration::from_secs_f64(secs.min(self.max.as_secs_f64()))
    }
}

/// Go's duration syntax as Argo CD writes it: `5s`, `3m`, `1h30m`, `500ms`.
pub fn parse_duration(s: &str) -> Option<Duration> {
    let mut total = 0f64;
    let mut rest = s.trim();
    if rest.is_empty() {
        return None;
    }
    while !rest.is_empty() {
        let end = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(rest.len());
        let (number, tail) = rest.split_at(end);
        let value: f64 = number.parse().ok()?;
        let unit_end = tail
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(tail.len());
        let (unit, next) = tail.split_at(unit_end);
        let scale = match unit {
            "h" => 3600.0,
            "m" => 60.0,
            "s" => 1.0,
            "ms" => 0.001,
            _ => return None,
        };
        total += value * scale;
        rest = next;
    }
    Duration::try_from_secs_f64(total).ok()
}

#[cfg(test)]
mod retry_tests {
    use super::*;

    #[test]
    fn durations_and_backoff() {
        assert_eq!(parse_duration("5s"), Some(Duration::from_secs(5)));
        assert_eq!(parse_duration("3m"), Some(Duration::from_secs(180)));
        assert_eq!(parse_duration("1h30m"), Some(Duration::from_secs(5400)));
        assert_eq!(parse_duration("500ms"), Some(Duration::from_millis(500)));
        assert_eq!(parse_duration("five"), None);
        let r = Retry::of(
            &json!({"spec": {"syncPolicy": {"retry": {"limit": 3, "backoff": {"duration": "2s", "factor": 3, "maxDuration": "10s"}}}}}),
        );
        assert!(r.again(0) && r.again(2) && !r.again(3));
        assert_eq!(r.delay(0), Duration::from_secs(2));
        assert_eq!(r.delay(1), Duration::from_secs(6));
        assert_eq!(r.delay(2), Duration::from_secs(10), "capped");
        let none = Retry::of(&json!({"spec": {}}));
        assert!(!none.again(0), "no retry policy: one attempt");
        let unlimited = Retry::of(&json!({"spec": {"syncPolicy": {"retry": {"limit": -1}}}}));
        assert!(unlimited.again(1000));
    }
}
