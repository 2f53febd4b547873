//! Berth's API server: Argo CD's REST API (paths, methods and JSON shapes)
//! over the Applications in the control namespace, so scripts and
//! pipelines written against Argo CD keep working with a bearer token.
//! Berth's own additions are marked as extensions in the OpenAPI document
//! served at `/api/openapi.json`, which is generated from the same route
//! table the router is built from.
//!
//! The server never applies anything to a destination: a sync or rollback
//! writes the Application's `operation`, which the controller's single
//! admission point then runs.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use axum::Router;
use axum::extract::{DefaultBodyLimit, Request, State};
use axum::http::{HeaderMap, Method, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use futures::StreamExt;
use kube::api::DynamicObject;
use kube::runtime::reflector::{self, Store};
use kube::runtime::watcher;
use kube::{Api, Client};

pub mod accounts;
pub mod approvals;
pub mod apps;
pub mod appsets;
pub mod audit;
pub mod auth;
pub mod clusters;
pub mod error;
pub mod oidc;
pub mod openapi;
pub mod projects;
pub mod rbac;
pub mod repositories;
pub mod resources;
pub mod stream;
pub mod ui;
pub mod webhook;

use error::ApiError;

/// The server's version, as `GET /api/version` reports it.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");
/// Largest request body accepted.
pub const BODY_LIMIT: usize = 1024 * 1024;
/// Longest a request may take.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(60);

/// Why the server could not start.
#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    /// Authentication could not be set up.
    #[error(transparent)]
    Auth(#[from] auth::AuthError),
    /// The scratch repository cache (for connection tests) could not be
    /// made, or the random source for its name read.
    #[error("the repository cache for connection tests: {0}")]
    Cache(#[from] Box<berth_source::repo::Error>),
    /// The address could not be bound.
    #[error("listening on {addr}: {source}")]
    Listen {
        /// The address.
        addr: SocketAddr,
        /// Why.
        source: std::io::Error,
    },
}

/// How the server runs.
#[derive(Debug, Clone)]
pub struct ServerConfig {
    /// The control namespace (`argocd`).
    pub namespace: String,
    /// Where to listen; port 0 picks a free one.
    pub listen: SocketAddr,
    /// The views of the controller running in the same process, for
    /// diffs, manifests and resource trees; without them those routes
    /// answer 503.
    pub views: Option<Arc<berth_controller::views::Views>>,
}

/// What every handler shares.
pub struct Shared {
    /// The Kubernetes client.
    pub client: Client,
    /// The control namespace.
    pub namespace: String,
    /// Applications in it.
    pub apps: Api<DynamicObject>,
    /// Other namespaces whose Applications are served (globs, from
    /// `application.namespaces` in `argocd-cmd-params-cm`, read at start).
    pub app_namespaces: Vec<String>,
    /// A watch-fed copy of them, for lists without a request to the API
    /// server.
    pub store: Store<DynamicObject>,
    /// Passwords and tokens.
    pub auth: auth::Auth,
    /// `argocd-rbac-cm`, parsed; replaced whole when it changes.
    pub policy: RwLock<Arc<rbac::Policy>>,
    /// Every change to an Application, for the event stream.
    pub changes: tokio::sync::broadcast::Sender<AppChange>,
    /// The in-process controller's views.
    pub views: Option<Arc<berth_controller::views::Views>>,
    /// Single sign-on: logins under way, the provider's keys.
    pub oidc: oidc::Oidc,
    /// The AppProjects by name, for project role tokens.
    pub projects: RwLock<Arc<BTreeMap<String, serde_json::Value>>>,
    /// A scratch cache for repository connection tests.
    pub repos: Arc<berth_source::repo::RepoCache>,
    /// Signs requesters and approval decisions (`None` when the key
    /// could not be had: gated syncs and decisions are then refused).
    pub signer: Option<berth_controller::approval::Signer>,
}

/// A change to an Application, as the event stream sends it.
#[derive(Debug, Clone)]
pub struct AppChange {
    /// `ADDED`, `MODIFIED` or `DELETED`, Argo CD's event types.
    pub kind: &'static str,
    /// The Application after (or, deleted, before) the change.
    pub app: Arc<DynamicObject>,
}

impl Shared {
    /// Whether Applications in `namespace` are served: the control
    /// namespace's, and those `application.namespaces` enables.
    pub fn app_namespace_enabled(&self, namespace: &str) -> bool {
        namespace == self.namespace
            || self
                .app_namespaces
                .iter()
                .any(|g| berth_engine::glob::glob(g, namespace))
    }

    /// The Applications of `namespace`.
    pub fn apps_in(&self, namespace: &str) -> Api<DynamicObject> {
        if namespace == self.namespace {
            self.apps.clone()
        } else {
            Api::namespaced_with(
                self.client.clone(),
                namespace,
                &berth_cluster::bootstrap::application_resource(),
            )
        }
    }

    /// The policy in force.
    pub fn policy(&self) -> Arc<rbac::Policy> {
        self.policy
            .read()
            .map(|p| Arc::clone(&p))
            .unwrap_or_else(|p| Arc::clone(&p.into_inner()))
    }

    /// Refuses unless `caller` may do `action` on `resource` `object`.
    pub fn authorize(
        &self,
        caller: &Caller,
        resource: &str,
        action: &str,
        object: &str,
    ) -> Result<(), ApiError> {
        if self
            .policy()
            .allows(&caller.user, &caller.groups, resource, action, object)
        {
            return Ok(());
        }
        Err(ApiError::forbidden(format!(
            "permission denied: {resource}, {action}, {object}, sub: {}",
            caller.user
        )))
    }
}

/// The handlers' state.
pub type AppState = Arc<Shared>;

/// The authenticated caller, set by the authentication layer.
#[derive(Debug, Clone)]
pub struct Caller {
    /// The user (token subject).
    pub user: String,
    /// Groups the token carries (OIDC); none for local users.
    pub groups: Vec<String>,
}

/// A running server.
pub struct Server {
    /// Scratch space for connection tests, removed with the server.
    scratch: std::path::PathBuf,
    addr: SocketAddr,
    shared: AppState,
    task: tokio::task::JoinHandle<()>,
}

impl std::fmt::Debug for Server {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Server").field("addr", &self.addr).finish()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.task.abort();
        let _ = std::fs::remove_dir_all(&self.scratch);
    }
}

impl Server {
    /// Sets up authentication, starts the Application cache and listens.
    pub async fn start(client: Client, config: ServerConfig) -> Result<Server, ServerError> {
        let auth = auth::Auth::setup(&client, &config.namespace).await?;
        let resource = berth_cluster::bootstrap::application_resource();
        let apps: Api<DynamicObject> =
            Api::namespaced_with(client.clone(), &config.namespace, &resource);
        let app_namespaces =
            berth_controller::controller::read_application_namespaces(&client, &config.namespace)
                .await;
        let signer = match berth_controller::approval::Signer::load_or_create(
            &client,
            &config.namespace,
        )
        .await
        {
            Ok(s) => Some(s),
            Err(e) => {
                tracing::error!(error = %e, "approval signing key: gated syncs and approvals are refused");
                None
            }
        };
        let writer = reflector::store::Writer::new(resource.clone());
        let store = writer.as_reader();
        // With other namespaces enabled all are watched, and only theirs
        // kept.
        let watched = if app_namespaces.is_empty() {
            apps.clone()
        } else {
            Api::all_with(client.clone(), &resource)
        };
        let (control, globs) = (config.namespace.clone(), app_namespaces.clone());
        let feed = reflector::reflector(
            writer,
            watcher::watcher(watched, watcher::Config::default()).filter(move |event| {
                let keep = match event {
                    Ok(watcher::Event::Apply(o) | watcher::Event::InitApply(o)) => {
                        let ns = o.metadata.namespace.as_deref().unwrap_or_default();
                        ns == control || globs.iter().any(|g| berth_engine::glob::glob(g, ns))
                    }
                    _ => true,
                };
                std::future::ready(keep)
            }),
        );
        let (changes, _) = tokio::sync::broadcast::channel(4096);
        let suffix: String = auth::random_bytes(4)
            .map_err(auth::AuthError::Random)?
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        let scratch =
            std::env::temp_dir().join(format!("berth-server-{}-{suffix}", std::process::id()));
        let repos = berth_source::repo::RepoCache::new(
            &scratch,
            berth_source::repo::CacheOptions::default(),
        )
        .map_err(Box::new)?;
        let shared = Arc::new(Shared {
            repos: Arc::new(repos),
            changes,
            client: client.clone(),
            namespace: config.namespace.clone(),
            apps,
            app_namespaces,
            signer,
            store: store.clone(),
            auth,
            policy: RwLock::new(Arc::new(rbac::Policy::from_data(&BTreeMap::new()))),
            views: config.views.clone(),
            projects: RwLock::new(Arc::new(BTreeMap::new())),
            oidc: oidc::Oidc::default(),
        });
        let policy_task = tokio::spawn(watch_rbac(Arc::clone(&shared), client.clone()));
        let secret_task = tokio::spawn(watch_server_secret(Arc::clone(&shared), client.clone()));
        let listener = tokio::net::TcpListener::bind(config.listen)
            .await
            .map_err(|source| ServerError::Listen {
                addr: config.listen,
                source,
            })?;
        let addr = listener
            .local_addr()
            .map_err(|source| ServerError::Listen {
                addr: config.listen,
                source,
            })?;
        let router = router(Arc::clone(&shared));
        let stream_shared = Arc::clone(&shared);
        let task = tokio::spawn(async move {
            let watch = tokio::spawn(async move {
                let mut feed = std::pin::pin!(feed);
                while let Some(event) = feed.next().await {
                    let change = match event {
                        Ok(watcher::Event::Apply(a)) => Some(("MODIFIED", a)),
                        Ok(watcher::Event::Delete(a)) => Some(("DELETED", a)),
                        Ok(_) => None,
                        Err(e) => {
                            tracing::warn!(error = %e, "watching Applications");
                            tokio::time::sleep(Duration::from_secs(1)).await;
                            None
                        }
                    };
                    if let Some((kind, app)) = change {
                        let _ = stream_shared.changes.send(AppChange {
                            kind,
                            app: Arc::new(app),
                        });
                    }
                }
            });
            let service = router.into_make_service_with_connect_info::<SocketAddr>();
            if let Err(e) = axum::serve(listener, service).await {
                tracing::error!(error = %e, "API server stopped");
            }
            watch.abort();
            policy_task.abort();
            secret_task.abort();
        });
        // Lists are answered from the cache: wait for its first fill.
        let _ = tokio::time::timeout(Duration::from_secs(30), store.wait_until_ready()).await;
        tracing::info!(%addr, "API server listening");
        Ok(Server {
            addr,
            shared,
            task,
            scratch,
        })
    }

    /// The address it listens on.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Its base URL.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// A token for `user` that does not expire (for `berth up`'s CLI
    /// configuration).
    pub fn token_for(&self, user: &str) -> Result<String, ApiError> {
        self.shared.auth.issue(user, None)
    }

    /// A token for `user` valid for `valid_for`.
    pub fn token_valid_for(&self, user: &str, valid_for: Duration) -> Result<String, ApiError> {
        self.shared.auth.issue(user, Some(valid_for))
    }
}

/// The routes: method, path (OpenAPI syntax), summary, whether Berth's
/// extension, and whether it needs authentication. The router and the
/// OpenAPI document are both built from this table.
pub const ROUTES: &[openapi::Route] = &[
    openapi::Route::new("GET", "/api/version", "Server version", false, false),
    openapi::Route::new("GET", "/api/openapi.json", "This document", true, false),
    openapi::Route::new(
        "GET",
        "/metrics",
        "Prometheus metrics of the controller in this process (Argo CD's names)",
        false,
        false,
    ),
    openapi::Route::new("GET", "/healthz", "The process is up", false, false),
    openapi::Route::new(
        "GET",
        "/readyz",
        "Ready: the application cache is filled and the controller (if any) running",
        false,
        false,
    ),
    openapi::Route::new(
        "POST",
        "/api/v1/session",
        "Log in: returns a token",
        false,
        false,
    ),
    openapi::Route::new(
        "POST",
        "/api/webhook",
        "Git push webhook (GitHub, GitLab, Gitea/Gogs, Bitbucket): refreshes the apps of that repository and branch",
        false,
        false,
    ),
    openapi::Route::new(
        "GET",
        "/api/v1/settings",
        "What a client needs before logging in: the server's URL and its SSO provider",
        false,
        false,
    ),
    openapi::Route::new(
        "GET",
        "/auth/login",
        "Single sign-on: to the OIDC provider with PKCE (`return_url`: a path here, or a loopback address for the CLI)",
        false,
        false,
    ),
    openapi::Route::new(
        "GET",
        "/auth/callback",
        "Single sign-on: the provider's answer; sets the `argocd.token` cookie",
        false,
        false,
    ),
    openapi::Route::new(
        "DELETE",
        "/api/v1/session",
        "Log out: clears the browser's session cookie",
        false,
        true,
    ),
    openapi::Route::new(
        "GET",
        "/api/v1/session/userinfo",
        "Who the caller is",
        false,
        true,
    ),
    openapi::Route::new(
        "GET",
        "/api/v1/applications",
        "List applications",
        false,
        true,
    ),
    openapi::Route::new(
        "GET",
        "/api/v1/applications/{name}",
        "Get an application (`?refresh=normal|hard` refreshes it)",
        false,
        true,
    ),
    openapi::Route::new(
        "POST",
        "/api/v1/applications",
        "Create an application (`?upsert=true` replaces one with another spec)",
        false,
        true,
    ),
    openapi::Route::new(
        "PUT",
        "/api/v1/applications/{name}",
        "Update an application's spec",
        false,
        true,
    ),
    openapi::Route::new(
        "DELETE",
        "/api/v1/applications/{name}",
        "Delete an application (`?cascade=false` keeps its resources)",
        false,
        true,
    ),
    openapi::Route::new(
        "POST",
        "/api/v1/applications/{name}/sync",
        "Sync an application",
        false,
        true,
    ),
    openapi::Route::new(
        "POST",
        "/api/v1/applications/{name}/rollback",
        "Roll back to a history entry",
        false,
        true,
    ),
    openapi::Route::new(
        "DELETE",
        "/api/v1/applications/{name}/operation",
        "Terminate the running operation",
        false,
        true,
    ),
    openapi::Route::new(
        "GET",
        "/api/v1/applications/{name}/approvals",
        "The app's sync requests (gated apps), newest first, with their change summaries and decisions",
        true,
        true,
    ),
    openapi::Route::new(
        "GET",
        "/api/v1/applications/{name}/approvals/{request}",
        "One sync request, with the change it would apply",
        true,
        true,
    ),
    openapi::Route::new(
        "POST",
        "/api/v1/applications/{name}/approvals/{request}",
        "Approve or reject a sync request ({decision: approve|reject, comment}); RBAC action approve",
        true,
        true,
    ),
    openapi::Route::new(
        "GET",
        "/api/v1/applications/{name}/managed-resources",
        "Managed resources with live and target states (JSON strings, Secret values masked); `group`, `kind`, `namespace`, `name` filter",
        false,
        true,
    ),
    openapi::Route::new(
        "GET",
        "/api/v1/applications/{name}/diff",
        "Each object's change and unified diff against the target revision or `?revision=` (branch, tag or commit)",
        true,
        true,
    ),
    openapi::Route::new(
        "GET",
        "/api/v1/applications/{name}/manifests",
        "Rendered manifests at the target revision or `?revision=`",
        false,
        true,
    ),
    openapi::Route::new(
        "GET",
        "/api/v1/applications/{name}/resource-tree",
        "Live objects and what they own (parentRefs), with health",
        false,
        true,
    ),
    openapi::Route::new(
        "GET",
        "/api/v1/applications/{name}/resource",
        "One live resource of the app (`namespace`, `resourceName`, `group`, `kind`), Secret values masked",
        false,
        true,
    ),
    openapi::Route::new(
        "GET",
        "/api/v1/applications/{name}/events",
        "Kubernetes Events of the app, or of one of its resources (`resourceNamespace`, `resourceName`, `resourceUID`)",
        false,
        true,
    ),
    openapi::Route::new(
        "GET",
        "/api/v1/applications/{name}/syncwindows",
        "The project's sync windows that apply to the app, those open now, and whether a manual sync may run",
        false,
        true,
    ),
    openapi::Route::new(
        "GET",
        "/api/v1/applications/{name}/resource/actions",
        "The resource actions one of the app's resources offers (`namespace`, `resourceName`, `group`, `kind`)",
        false,
        true,
    ),
    openapi::Route::new(
        "POST",
        "/api/v1/applications/{name}/resource/actions",
        "Run a resource action: its name as a JSON string in the body, the resource in the query (RBAC `action/<group>/<kind>/<name>`)",
        false,
        true,
    ),
    openapi::Route::new(
        "POST",
        "/api/v1/applications/{name}/resource/actions/v2",
        "Run a resource action: `{action, namespace, resourceName, group, kind}` in the body",
        false,
        true,
    ),
    openapi::Route::new(
        "GET",
        "/api/v1/applications/{name}/revisions/{revision}/metadata",
        "Author, date, message and tags of a commit of the app's Git source (`sourceIndex`)",
        false,
        true,
    ),
    openapi::Route::new(
        "GET",
        "/api/v1/applicationsets",
        "List ApplicationSets (read-only; written with kubectl)",
        false,
        true,
    ),
    openapi::Route::new(
        "GET",
        "/api/v1/applicationsets/{name}",
        "One ApplicationSet with its status",
        false,
        true,
    ),
    openapi::Route::new("GET", "/api/v1/projects", "List projects", false, true),
    openapi::Route::new(
        "POST",
        "/api/v1/projects/{project}/roles/{role}/token",
        "Create a token for a project role (`{expiresIn, id}`), recorded in the role's jwtTokens",
        false,
        true,
    ),
    openapi::Route::new(
        "DELETE",
        "/api/v1/projects/{project}/roles/{role}/token/{iat}",
        "Revoke a project role token (by its iat, or `?id=`)",
        false,
        true,
    ),
    openapi::Route::new("GET", "/api/v1/projects/{name}", "One project", false, true),
    openapi::Route::new(
        "POST",
        "/api/v1/projects",
        "Create a project (`{project, upsert}`)",
        false,
        true,
    ),
    openapi::Route::new(
        "PUT",
        "/api/v1/projects/{name}",
        "Replace a project's spec (`{project}`)",
        false,
        true,
    ),
    openapi::Route::new(
        "DELETE",
        "/api/v1/projects/{name}",
        "Delete a project no application uses",
        false,
        true,
    ),
    openapi::Route::new(
        "GET",
        "/api/v1/repositories",
        "List repositories with their connection state (credentials never returned)",
        false,
        true,
    ),
    openapi::Route::new(
        "GET",
        "/api/v1/repositories/{repo}",
        "One repository (URL percent-encoded)",
        false,
        true,
    ),
    openapi::Route::new(
        "POST",
        "/api/v1/repositories",
        "Add a repository once it can be reached (`?upsert=true` replaces)",
        false,
        true,
    ),
    openapi::Route::new(
        "POST",
        "/api/v1/repositories/{repo}/validate",
        "Test access to a repository with the credentials given; nothing stored",
        false,
        true,
    ),
    openapi::Route::new(
        "DELETE",
        "/api/v1/repositories/{repo}",
        "Remove a repository",
        false,
        true,
    ),
    openapi::Route::new(
        "GET",
        "/api/v1/clusters",
        "List clusters (the controller's own first) with connection state and version",
        false,
        true,
    ),
    openapi::Route::new(
        "GET",
        "/api/v1/clusters/{server}",
        "One cluster by server URL (percent-encoded) or name (`?id.type=name`)",
        false,
        true,
    ),
    openapi::Route::new(
        "POST",
        "/api/v1/clusters",
        "Add a cluster once its API server answers (`?upsert=true` replaces)",
        false,
        true,
    ),
    openapi::Route::new(
        "DELETE",
        "/api/v1/clusters/{server}",
        "Remove a cluster",
        false,
        true,
    ),
    openapi::Route::new(
        "GET",
        "/api/v1/stream/applications",
        "Server-sent events of application changes (`name`, `projects`, `selector` filters; extension: `fields=summary`)",
        false,
        true,
    ),
    openapi::Route::new(
        "GET",
        "/api/v1/account",
        "List accounts and their API tokens",
        false,
        true,
    ),
    openapi::Route::new("GET", "/api/v1/account/{name}", "One account", false, true),
    openapi::Route::new(
        "POST",
        "/api/v1/account/{name}/token",
        "Create an API token (`{id, expiresIn}`)",
        false,
        true,
    ),
    openapi::Route::new(
        "DELETE",
        "/api/v1/account/{name}/token/{id}",
        "Revoke an API token",
        false,
        true,
    ),
    openapi::Route::new(
        "PUT",
        "/api/v1/account/password",
        "Change a password (`{name, currentPassword, newPassword}`)",
        false,
        true,
    ),
    openapi::Route::new(
        "GET",
        "/api/v1/audit",
        "The audit log: every mutating call (`application`, `since`, `limit`)",
        true,
        true,
    ),
];

async fn authenticate(
    State(state): State<AppState>,
    headers: HeaderMap,
    mut request: Request,
    next: Next,
) -> Response {
    let bearer = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::to_string);
    // Browsers carry the session in Argo CD's cookie.
    let cookie = headers
        .get_all("cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|c| c.trim().strip_prefix("argocd.token="))
        .map(str::to_string)
        .next();
    let Some(token) = bearer.or(cookie) else {
        return ApiError::unauthenticated(
            "no session information: log in (berth login) or send a bearer token",
        )
        .into_response();
    };
    match state
        .auth
        .verify_user(&token)
        .and_then(|c| projects::check_role_token(&state, c))
    {
        Ok(claims) => {
            let caller = Caller {
                user: claims.sub,
                groups: claims.groups,
            };
            request.extensions_mut().insert(caller.clone());
            let mut response = next.run(request).await;
            // For the audit layer outside this one.
            response.extensions_mut().insert(caller);
            response
        }
        Err(e) => e.into_response(),
    }
}

/// Follows `argocd-secret`: API tokens created or revoked by another
/// replica (or by hand) count at the next request.
async fn watch_server_secret(shared: AppState, client: Client) {
    use k8s_openapi::api::core::v1::Secret;
    let secrets: Api<Secret> = Api::namespaced(client, &shared.namespace);
    let config =
        watcher::Config::default().fields(&format!("metadata.name={}", auth::SERVER_SECRET));
    let mut stream = watcher::watcher(secrets, config).boxed();
    while let Some(event) = stream.next().await {
        match event {
            Ok(watcher::Event::Apply(s) | watcher::Event::InitApply(s)) => {
                let data = s.data.unwrap_or_default();
                shared.auth.set_tokens(auth::tokens_from(&data));
                shared
                    .auth
                    .set_password_mtimes(auth::password_mtimes(&data));
            }
            Ok(watcher::Event::Delete(_)) => shared.auth.set_tokens(Default::default()),
            Ok(_) => {}
            Err(e) => {
                tracing::warn!(error = %e, "watching the server Secret");
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
        }
    }
}

/// Follows `argocd-rbac-cm` and the AppProjects' roles: a change applies
/// to the next request.
async fn watch_rbac(shared: AppState, client: Client) {
    use k8s_openapi::api::core::v1::ConfigMap;
    enum Change {
        Rbac(BTreeMap<String, String>),
        Project(Option<Box<DynamicObject>>, Option<String>),
        ProjectsListed,
    }
    let maps: Api<ConfigMap> = Api::namespaced(client.clone(), &shared.namespace);
    let config = watcher::Config::default().fields("metadata.name=argocd-rbac-cm");
    let rbac = watcher::watcher(maps, config).filter_map(|event| async move {
        match event {
            Ok(watcher::Event::Apply(cm) | watcher::Event::InitApply(cm)) => {
                Some(Change::Rbac(cm.data.unwrap_or_default()))
            }
            Ok(watcher::Event::Delete(_)) => Some(Change::Rbac(BTreeMap::new())),
            Ok(_) => None,
            Err(e) => {
                tracing::warn!(error = %e, "watching argocd-rbac-cm");
                tokio::time::sleep(Duration::from_secs(1)).await;
                None
            }
        }
    });
    let projects: Api<DynamicObject> = Api::namespaced_with(
        client,
        &shared.namespace,
        &berth_cluster::bootstrap::appproject_resource(),
    );
    let projects =
        watcher::watcher(projects, watcher::Config::default()).filter_map(|event| async move {
            match event {
                Ok(watcher::Event::Apply(p) | watcher::Event::InitApply(p)) => {
                    Some(Change::Project(Some(Box::new(p)), None))
                }
                Ok(watcher::Event::Delete(p)) => Some(Change::Project(None, p.metadata.name)),
                Ok(watcher::Event::InitDone) => Some(Change::ProjectsListed),
                Ok(_) => None,
                Err(e) => {
                    tracing::warn!(error = %e, "watching AppProjects");
                    tokio::time::sleep(Duration::from_secs(1)).await;
                    None
                }
            }
        });
    let mut changes = futures::stream::select(rbac.boxed(), projects.boxed());
    let mut data = BTreeMap::new();
    let mut known: BTreeMap<String, serde_json::Value> = BTreeMap::new();
    while let Some(change) = changes.next().await {
        match change {
            Change::Rbac(d) => data = d,
            Change::Project(Some(p), _) => {
                let name = p.metadata.name.clone().unwrap_or_default();
                known.insert(name, serde_json::to_value(&p).unwrap_or_default());
            }
            Change::Project(None, name) => {
                known.remove(&name.unwrap_or_default());
            }
            Change::ProjectsListed => {}
        }
        let mut policy = rbac::Policy::from_data(&data);
        policy.add_project_roles(known.values());
        for problem in &policy.problems {
            tracing::warn!(%problem, "RBAC policy");
        }
        if let Ok(mut p) = shared.policy.write() {
            *p = Arc::new(policy);
        }
        if let Ok(mut p) = shared.projects.write() {
            *p = Arc::new(known.clone());
        }
    }
}

async fn timeout(request: Request, next: Next) -> Response {
    match tokio::time::timeout(REQUEST_TIMEOUT, next.run(request)).await {
        Ok(r) => r,
        Err(_) => ApiError {
            status: StatusCode::REQUEST_TIMEOUT,
            message: format!(
                "the request took longer than {} s",
                REQUEST_TIMEOUT.as_secs()
            ),
        }
        .into_response(),
    }
}

/// The router, from [`ROUTES`].
pub fn router(state: AppState) -> Router {
    let mut open = Router::new();
    let mut protected = Router::new();
    for route in ROUTES {
        let method: Method = route.method.parse().unwrap_or(Method::GET);
        let handler = apps::handler(&method, route.path);
        if route.authenticated {
            protected = protected.route(route.path, handler);
        } else {
            open = open.route(route.path, handler);
        }
    }
    let protected = protected.layer(middleware::from_fn_with_state(
        Arc::clone(&state),
        authenticate,
    ));
    open.merge(protected)
        .merge(ui::routes())
        .fallback(|| async { ApiError::not_found("no such route; see /api/openapi.json") })
        .layer(middleware::from_fn_with_state(
            Arc::clone(&state),
            audit::record,
        ))
        .layer(middleware::from_fn(timeout))
        // Pages and lists compress about tenfold; event streams are left
        // as they are (the default predicate skips them).
        .layer(tower_http::compression::CompressionLayer::new())
        .layer(DefaultBodyLimit::max(BODY_LIMIT))
        .with_state(state)
}
