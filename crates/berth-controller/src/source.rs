//! From an Application's sources to its desired objects: fetch each source
//! at its revision (Git through the repository cache, Helm charts from
//! their repositories), render it with Argo CD's options, put namespaced
//! objects without a namespace into the destination namespace, and mark
//! every object with the application's tracking.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use berth_api::application::{Application, Source};
use berth_api::tracking::{self, Method};
use berth_render::cache::{KeyBuilder, RenderCache};
use berth_render::detect::{SourceType, detect};
use berth_render::directory::{self, DirectoryOptions};
use berth_render::helm::{self, ChartRef, HelmOptions, Parameter};
use berth_render::jsonnet::{JsonnetOptions, Var};
use berth_render::kustomize::{self, KustomizeOptions};
use berth_render::tool;
use berth_source::creds::CredentialStore;
use berth_source::poll::RefPoller;
use berth_source::repo::RepoCache;
use berth_source::revision::{self, Resolution};
use serde_json::Value;

/// Why an application's sources could not be turned into objects. Nothing
/// is ever deleted because of one: the controller reports it and keeps the
/// application's resources.
#[derive(Debug, thiserror::Error)]
pub enum SourceError {
    /// A repository or revision could not be fetched.
    #[error("{field}: {repo} at {revision}: {source}")]
    Fetch {
        /// The source field, e.g. `spec.sources[1]`.
        field: String,
        /// The repository.
        repo: String,
        /// The revision asked for.
        revision: String,
        /// Why (boxed: it is large and rare).
        source: Box<berth_source::repo::Error>,
    },
    /// A field of the Application has a value that cannot be used.
    #[error("{field}: {message}")]
    Invalid {
        /// The field.
        field: String,
        /// What is wrong and what to do.
        message: String,
    },
    /// The application's path is not a directory of the source.
    #[error("{field}.path {path:?}: no such directory in the source")]
    NoPath {
        /// The source field.
        field: String,
        /// The path.
        path: String,
    },
    /// The repository could not be asked for its branches and tags; the
    /// answer is kept for the poll interval, so a broken repository is not
    /// asked again by every application that uses it.
    #[error("{field}: {repo} at {revision}: {message}")]
    Unreachable {
        /// The source field.
        field: String,
        /// The repository.
        repo: String,
        /// The revision asked for.
        revision: String,
        /// Why.
        message: String,
    },
    /// A tool (helm, kustomize) could not be found.
    #[error(transparent)]
    Tool(#[from] tool::Error),
    /// A directory source failed to render.
    #[error(transparent)]
    Directory(#[from] directory::Error),
    /// Kustomize failed.
    #[error(transparent)]
    Kustomize(#[from] kustomize::Error),
    /// Helm failed.
    #[error(transparent)]
    Helm(#[from] helm::Error),
}

/// Where sources come from.
pub struct Sources<'a> {
    /// The Git repository cache.
    pub cache: &'a RepoCache,
    /// Where pulled Helm charts are cached.
    pub charts_dir: PathBuf,
    /// The Kubernetes version Helm renders for when the app names none.
    pub kube_version: String,
    /// Shares one `ls-remote` per repository and poll interval between
    /// applications; without it every render asks the remote.
    pub poller: Option<&'a RefPoller>,
    /// Repository credentials (Argo CD's `repository` and `repo-creds`
    /// Secrets).
    pub credentials: Option<&'a CredentialStore>,
    /// Render results by a hash of everything they depend on.
    pub renders: Option<&'a RenderCache>,
    /// A hard refresh: the remote is asked again and the render cache is
    /// bypassed (and refilled).
    pub hard: bool,
}

impl<'a> Sources<'a> {
    /// Sources read straight from `cache`, with nothing shared or cached
    /// between renders (a one-off render).
    pub fn direct(cache: &'a RepoCache, charts_dir: PathBuf, kube_version: String) -> Self {
        Sources {
            cache,
            charts_dir,
            kube_version,
            poller: None,
            credentials: None,
            renders: None,
            hard: false,
        }
    }
}

/// The `argocd-cm` settings that shape what an application renders to and
/// how its objects are marked as its own.
#[derive(Debug, Clone, PartialEq)]
pub struct RenderSettings {
    /// The control namespace (`argocd`): Applications elsewhere track
    /// their objects as `namespace_name`.
    pub control_namespace: String,
    /// `application.resourceTrackingMethod`.
    pub method: Method,
    /// `application.instanceLabelKey`.
    pub instance_label: String,
    /// `installationID`, empty when not set.
    pub installation_id: String,
    /// `kustomize.buildOptions`, split into arguments.
    pub kustomize_build_options: Vec<String>,
}

impl RenderSettings {
    /// Argo CD's defaults for the control namespace `control_namespace`.
    pub fn new(control_namespace: &str, method: Method) -> Self {
        RenderSettings {
            control_namespace: control_namespace.to_string(),
            method,
            instance_label: tracking::INSTANCE_LABEL.to_string(),
            installation_id: String::new(),
            kustomize_build_options: Vec::new(),
        }
    }
}

/// How rendered objects are marked as an application's.
#[derive(Debug, Clone, PartialEq)]
pub struct Marking {
    /// The tracking name (see [`tracking_name`]).
    pub app: String,
    /// The tracking method.
    pub method: Method,
    /// The label key of the label method.
    pub instance_label: String,
    /// Written as `argocd.argoproj.io/installation-id` when not empty.
    pub installation_id: String,
}

/// One rendering to do: a source at a revision, with its options.
#[derive(Debug, Clone)]
pub struct RenderJob {
    /// The checked-out source (repository root or pulled chart).
    pub root: PathBuf,
    /// The application's path inside it.
    pub path: String,
    /// The source type; detected as Argo CD does when `None`.
    pub source_type: Option<SourceType>,
    /// Directory options.
    pub directory: DirectoryOptions,
    /// Kustomize options.
    pub kustomize: KustomizeOptions,
    /// Helm options.
    pub helm: HelmOptions,
    /// How the objects are marked as the application's.
    pub track_as: Option<Marking>,
    /// The destination namespace for namespaced objects without one.
    pub destination_namespace: Option<String>,
}

/// The desired objects and the commits they came from.
#[derive(Debug, Clone, Default)]
pub struct Rendered {
    /// Objects in apply order.
    pub objects: Vec<Value>,
    /// One resolved revision (commit SHA or chart version) per source.
    pub revisions: Vec<String>,
}

/// The name objects are tracked under: the app's name, qualified as
/// `namespace_name` when the Application is outside the control namespace,
/// as Argo CD does.
pub fn tracking_name(app: &Application, control_namespace: &str) -> String {
    let name = app.metadata.name.clone();
    match app.metadata.namespace.as_deref() {
        Some(ns) if ns != control_namespace => format!("{ns}_{name}"),
        _ => name,
    }
}

pub(crate) fn fetch(
    sources: &Sources<'_>,
    field: &str,
    url: &str,
    revision: &str,
    project: Option<&str>,
) -> Result<(PathBuf, String), SourceError> {
    let fetch_err = |source| SourceError::Fetch {
        field: field.to_string(),
        repo: url.to_string(),
        revision: revision.to_string(),
        source: Box::new(source),
    };
    let creds = sources.credentials.and_then(|c| c.lookup(url, project));
    // The poller's shared answer names the commit; the remote is asked
    // again (and fetched from) only when the cache lacks that commit.
    let known = if revision::is_full_sha(revision) {
        Some(revision.to_ascii_lowercase())
    } else if let Some(poller) = sources.poller {
        if sources.hard {
            poller.invalidate(url);
        }
        match poller.refs(url, creds.as_ref()) {
            Ok(refs) => match revision::resolve(revision, &refs, "") {
                Ok(Resolution::Resolved(r)) => Some(r.sha),
                _ => None,
            },
            Err(e) => {
                return Err(SourceError::Unreachable {
                    field: field.to_string(),
                    repo: url.to_string(),
                    revision: revision.to_string(),
                    message: e.to_string(),
                });
            }
        }
    } else {
        None
    };
    if let Some(sha) = known
        && let Ok(dir) = sources.cache.materialize(url, &sha, "")
    {
        return Ok((dir, sha));
    }
    let resolved = sources
        .cache
        .resolve(url, creds.as_ref(), revision, "")
        .map_err(fetch_err)?;
    let sha = resolved.resolved.sha.clone();
    let dir = sources
        .cache
        .materialize(url, &sha, "")
        .map_err(fetch_err)?;
    Ok((dir, sha))
}

/// Renders every source of `app`. With a render cache in `sources`, a
/// render whose inputs (the sources' specs, the commits they resolved to,
/// the settings) were rendered before is answered from it.
pub fn render_application(
    app: &Application,
    sources: &Sources<'_>,
    settings: &RenderSettings,
    work: &Path,
) -> Result<Rendered, SourceError> {
    let list = app.sources();
    let field = |i: usize| {
        if app.spec.sources.is_empty() {
            "spec.source".to_string()
        } else {
            format!("spec.sources[{i}]")
        }
    };
    let project = Some(app.spec.project.as_str()).filter(|p| !p.is_empty());
    // Every Git source is resolved first: the commits are part of the
    // render cache's key.
    let mut fetched = Vec::with_capacity(list.len());
    for (i, source) in list.iter().enumerate() {
        fetched.push(match &source.chart {
            Some(_) => None,
            None => {
                let revision = source.target_revision.as_deref().unwrap_or("HEAD");
                Some(fetch(
                    sources,
                    &field(i),
                    &source.repo_url,
                    revision,
                    project,
                )?)
            }
        });
    }
    // Sources with a `ref` lend their files to the others (`$ref/...`).
    let mut ref_roots = BTreeMap::new();
    for (source, fetched) in list.iter().zip(&fetched) {
        if let (Some(name), Some((dir, _))) = (&source.ref_name, fetched) {
            ref_roots.insert(name.clone(), dir.clone());
        }
    }
    let renders = |s: &Source| !(s.ref_name.is_some() && s.path.is_none() && s.chart.is_none());
    let revisions: Vec<String> = list
        .iter()
        .zip(&fetched)
        .filter(|(s, _)| renders(s))
        .map(|(s, f)| match f {
            Some((_, sha)) => sha.clone(),
            None => s.target_revision.clone().unwrap_or_default(),
        })
        .collect();
    let marking = Marking {
        app: tracking_name(app, &settings.control_namespace),
        method: settings.method,
        instance_label: settings.instance_label.clone(),
        installation_id: settings.installation_id.clone(),
    };
    let key = sources
        .renders
        .map(|_| render_key(app, &fetched, &marking, settings, &sources.kube_version));
    if let (Some(cache), Some(key), false) = (sources.renders, &key, sources.hard)
        && let Some(hit) = cache.get(key)
    {
        return Ok(Rendered {
            objects: hit.as_ref().clone(),
            revisions,
        });
    }
    let mut objects = Vec::new();
    for (i, (source, fetched)) in list.iter().zip(fetched).enumerate() {
        // A source that only lends files renders nothing itself.
        if !renders(source) {
            continue;
        }
        let work = work.join(format!("source-{i}"));
        let (mut job, _) =
            job_for_source(app, source, &field(i), &ref_roots, fetched, sources, &work)?;
        job.track_as = Some(marking.clone());
        job.kustomize
            .build_options
            .extend(settings.kustomize_build_options.iter().cloned());
        objects.extend(render_job(job, &field(i), &work.join("render"))?);
    }
    sort_for_apply(&mut objects);
    if let (Some(cache), Some(key)) = (sources.renders, key) {
        cache.put(key, objects.clone());
    }
    Ok(Rendered { objects, revisions })
}

/// Renders `app`'s source from a local directory instead of Git, as
/// Argo CD's `app diff --local` does: `dir` is the application's own
/// directory (what `repoURL` + `path` would give), rendered with the
/// source's options and marked as the app's. Applications with several
/// sources are refused.
pub fn render_local(
    app: &Application,
    dir: &Path,
    sources: &Sources<'_>,
    settings: &RenderSettings,
    work: &Path,
) -> Result<Vec<Value>, SourceError> {
    let list = app.sources();
    let [source] = list.as_slice() else {
        return Err(SourceError::Invalid {
            field: "spec.sources".into(),
            message: "a local render takes an application with one source".into(),
        });
    };
    if source.chart.is_some() {
        return Err(SourceError::Invalid {
            field: "spec.source.chart".into(),
            message:
                "a chart from a Helm repository has no local directory to render; use --revision"
                    .into(),
        });
    }
    let mut local = (*source).clone();
    local.path = Some(".".into());
    let (mut job, _) = job_for_source(
        app,
        &local,
        "spec.source",
        &BTreeMap::new(),
        Some((dir.to_path_buf(), "local".into())),
        sources,
        work,
    )?;
    job.track_as = Some(Marking {
        app: tracking_name(app, &settings.control_namespace),
        method: settings.method,
        instance_label: settings.instance_label.clone(),
        installation_id: settings.installation_id.clone(),
    });
    job.kustomize
        .build_options
        .extend(settings.kustomize_build_options.iter().cloned());
    let mut objects = render_job(job, "spec.source", &work.join("render"))?;
    sort_for_apply(&mut objects);
    Ok(objects)
}

/// What a render depends on: the application's sources and destination,
/// the commit of each Git source, the marking, the settings and the
/// Kubernetes version. Chart sources name a version that may be a range, so
/// their key also changes every ten minutes.
fn render_key(
    app: &Application,
    fetched: &[Option<(PathBuf, String)>],
    marking: &Marking,
    settings: &RenderSettings,
    kube_version: &str,
) -> berth_render::cache::Key {
    // Debug output of the parsed spec: deterministic, and covers every
    // field the renderers read.
    let spec = format!(
        "{:?}|{:?}|{:?}",
        app.spec.source, app.spec.sources, app.spec.destination
    );
    let mut key = KeyBuilder::default()
        .value("spec", &spec)
        .value("app", &marking.app)
        .value("method", &format!("{:?}", marking.method))
        .value("label", &marking.instance_label)
        .value("installation", &marking.installation_id)
        .value("kustomize", &settings.kustomize_build_options.join("\u{0}"))
        .value("kube", kube_version);
    for f in fetched {
        key = match f {
            Some((_, sha)) => key.value("commit", sha),
            None => {
                let bucket = std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map(|d| d.as_secs() / 600)
                    .unwrap_or(0);
                key.value("chart", &bucket.to_string())
            }
        };
    }
    key.finish()
}

/// Sorts objects in the order a sync applies them (stable: equal keys keep
/// the order the sources gave).
pub fn sort_for_apply(objects: &mut [Value]) {
    objects.sort_by_key(|o| {
        let s = |p: &str| {
            o.pointer(p)
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_string()
        };
        let (kind, ns, name) = (s("/kind"), s("/metadata/namespace"), s("/metadata/name"));
        (berth_api::kinds::apply_rank(&kind), kind, ns, name)
    });
}

fn job_for_source(
    app: &Application,
    source: &Source,
    field: &str,
    ref_roots: &BTreeMap<String, PathBuf>,
    fetched: Option<(PathBuf, String)>,
    sources: &Sources<'_>,
    work: &Path,
) -> Result<(RenderJob, String), SourceError> {
    let name = app.metadata.name.clone();
    let namespace = app.spec.destination.namespace.clone().unwrap_or_default();
    let revision = source
        .target_revision
        .clone()
        .unwrap_or_else(|| "HEAD".into());
    let helm_src = source.helm.clone().unwrap_or_default();
    let mut helm_options = HelmOptions {
        release_name: helm_src
            .release_name
            .clone()
            .unwrap_or_else(|| name.clone()),
        namespace: helm_src
            .namespace
            .clone()
            .unwrap_or_else(|| namespace.clone()),
        values: match (&helm_src.values_object, &helm_src.values) {
            (Some(obj), _) => {
                Some(
                    serde_saphyr::to_string(obj).map_err(|e| SourceError::Invalid {
                        field: format!("{field}.helm.valuesObject"),
                        message: e.to_string(),
                    })?,
                )
            }
            (None, v) => v.clone(),
        },
        value_files: helm_src.value_files.clone(),
        ignore_missing_value_files: helm_src.ignore_missing_value_files,
        parameters: helm_src
            .parameters
            .iter()
            .map(|p| Parameter {
                name: p.name.clone(),
                value: p.value.clone(),
                force_string: p.force_string,
            })
            .collect(),
        file_parameters: helm_src
            .file_parameters
            .iter()
            .map(|p| (p.name.clone(), p.path.clone()))
            .collect(),
        skip_crds: helm_src.skip_crds,
        skip_tests: helm_src.skip_tests,
        kube_version: Some(
            helm_src
                .kube_version
                .clone()
                .unwrap_or_else(|| sources.kube_version.clone()),
        ),
        api_versions: helm_src.api_versions.clone(),
        allow_remote_value_files: false,
        ref_roots: ref_roots.clone(),
    };
    let (root, path, source_type, resolved) = match &source.chart {
        Some(chart) => {
            let bin = tool::find("helm", None)?;
            // A Helm repository's credentials come from the same Secrets
            // (`type: helm`).
            let project = Some(app.spec.project.as_str()).filter(|p| !p.is_empty());
            let creds = sources
                .credentials
                .and_then(|c| c.lookup(&source.repo_url, project));
            let chart_ref = ChartRef {
                repo_url: source.repo_url.clone(),
                chart: chart.clone(),
                version: revision.clone(),
                pass_credentials: helm_src.pass_credentials,
                username: creds.as_ref().and_then(|c| c.username.clone()),
                password: creds
                    .as_ref()
                    .and_then(|c| c.password.as_ref())
                    .map(|p| p.expose().to_string()),
                insecure: creds.as_ref().is_some_and(|c| c.insecure),
                ..Default::default()
            };
            let dir = helm::pull(&chart_ref, &sources.charts_dir, &bin, &work.join("pull"))?;
            (dir, chart.clone(), Some(SourceType::Helm), revision.clone())
        }
        None => {
            let (dir, sha) = match fetched {
                Some(f) => f,
                None => fetch(sources, field, &source.repo_url, &revision, None)?,
            };
            (
                dir,
                source.path.clone().unwrap_or_else(|| ".".into()),
                None,
                sha,
            )
        }
    };
    if helm_options.namespace.is_empty() {
        helm_options.namespace = "default".into();
    }
    let k = source.kustomize.clone().unwrap_or_default();
    let mut replicas = Vec::new();
    for r in &k.replicas {
        let count = match &r.count {
            Value::Number(n) => n.as_i64(),
            Value::String(s) => s.trim().parse().ok(),
            _ => None,
        };
        let Some(count) = count else {
            return Err(SourceError::Invalid {
                field: format!("{field}.kustomize.replicas"),
                message: format!("count of {:?} is not a number", r.name),
            });
        };
        replicas.push((r.name.clone(), count));
    }
    let mut patches = Vec::new();
    for p in &k.patches {
        let text = |k: &str| p.get(k).and_then(Value::as_str).map(str::to_string);
        let target = p
            .get("target")
            .and_then(Value::as_object)
            .map(|t| {
                t.iter()
                    .filter_map(|(k, v)| v.as_str().map(|v| (k.clone(), v.to_string())))
                    .collect()
            })
            .unwrap_or_default();
        patches.push(berth_render::kustomize::Patch {
            patch: text("patch"),
            path: text("path"),
            target,
        });
    }
    let d = source.directory.clone().unwrap_or_default();
    Ok((
        RenderJob {
            root,
            path,
            source_type,
            directory: DirectoryOptions {
                recurse: d.recurse,
                include: d.include.clone(),
                exclude: d.exclude.clone(),
                jsonnet: jsonnet_options(d.jsonnet.as_ref()),
                repo_root: None,
            },
            kustomize: KustomizeOptions {
                name_prefix: k.name_prefix.clone(),
                name_suffix: k.name_suffix.clone(),
                images: k.images.clone(),
                common_labels: k.common_labels.clone(),
                common_annotations: k.common_annotations.clone(),
                force_common_labels: k.force_common_labels,
                force_common_annotations: k.force_common_annotations,
                namespace: k.namespace.clone(),
                replicas,
                components: k.components.clone(),
                patches,
                build_options: Vec::new(),
            },
            helm: helm_options,
            destination_namespace: app.spec.destination.namespace.clone(),
            track_as: None,
        },
        resolved,
    ))
}

/// Renders one job; `field` names its source in errors.
pub fn render_job(job: RenderJob, field: &str, work: &Path) -> Result<Vec<Value>, SourceError> {
    let app_dir = job.root.join(&job.path);
    if !app_dir.is_dir() {
        return Err(SourceError::NoPath {
            field: field.to_string(),
            path: job.path.clone(),
        });
    }
    let source_type = job.source_type.unwrap_or_else(|| detect(&app_dir));
    let mut job = job;
    job.directory.repo_root = Some(job.root.clone());
    let mut objects = match source_type {
        SourceType::Directory => directory::render(&app_dir, &job.directory)?,
        SourceType::Kustomize => {
            // Without argocd-cm the default kustomize (or kubectl's, as a
            // last resort) serves every version.
            let kz = kustomize::Kustomize::locate(None, &BTreeMap::new())?;
            kustomize::render_with(&job.root, &job.path, &job.kustomize, &kz, work)?
        }
        SourceType::Helm => {
            let bin = tool::find("helm", None)?;
            helm::render(&job.root, &job.path, &job.helm, &bin, work)?
        }
    };
    if let Some(ns) = job
        .track_as
        .as_ref()
        .and(job.destination_namespace.as_deref())
        .filter(|n| !n.is_empty())
    {
        // As the controller applies them: namespaced objects without a
        // namespace go to the destination's.
        for obj in &mut objects {
            let kind = obj
                .get("kind")
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_string();
            let has_ns = obj
                .pointer("/metadata/namespace")
                .and_then(Value::as_str)
                .is_some_and(|n| !n.is_empty());
            if !has_ns
                && !berth_api::kinds::is_cluster_scoped(&kind)
                && let Some(meta) = obj.get_mut("metadata").and_then(Value::as_object_mut)
            {
                meta.insert("namespace".into(), Value::String(ns.to_string()));
            }
        }
    }
    if let Some(m) = &job.track_as {
        for obj in &mut objects {
            tracking::mark(obj, &m.app, m.method, &m.instance_label);
            if !m.installation_id.is_empty()
                && let Some(meta) = obj.get_mut("metadata").and_then(Value::as_object_mut)
            {
                let annotations = meta
                    .entry("annotations")
                    .or_insert_with(|| Value::Object(Default::default()));
                if let Some(a) = annotations.as_object_mut() {
                    a.insert(
                        berth_engine::tracking::INSTALLATION_ID_ANNOTATION.into(),
                        Value::String(m.installation_id.clone()),
                    );
                }
            }
        }
    }
    Ok(objects)
}

/// `directory.jsonnet` as Argo CD writes it: `tlas` and `extVars` as lists
/// of `{name, value, code}`, `libs` as a list of paths.
pub fn jsonnet_options(spec: Option<&Value>) -> JsonnetOptions {
    let Some(spec) = spec else {
        return JsonnetOptions::default();
    };
    let vars = |field: &str| -> Vec<Var> {
        spec.get(field)
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter_map(|v| {
                Some(Var {
                    name: v.get("name")?.as_str()?.to_string(),
                    value: v
                        .get("value")
                        .and_then(Value::as_str)
                        .unwrap_or_default()
                        .to_string(),
                    code: v.get("code").and_then(Value::as_bool).unwrap_or(false),
                })
            })
            .collect()
    };
    JsonnetOptions {
        tlas: vars("tlas"),
        ext_vars: vars("extVars"),
        libs: spec
            .get("libs")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter_map(Value::as_str)
            .map(str::to_string)
            .collect(),
    }
}
