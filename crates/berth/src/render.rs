//! `berth render`: what an application's source declares, offline.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use berth_api::application::Application;
use berth_api::tracking::{self, Method};
use berth_render::detect::{SourceType, detect};
use berth_render::directory::{self, DirectoryOptions};
use berth_render::helm::{self, ChartRef, HelmOptions, Parameter};
use berth_render::jsonnet::{JsonnetOptions, Var};
use berth_render::kustomize::{self, KustomizeOptions};
use berth_render::tool;
use berth_source::repo::{CacheOptions, RepoCache};
use clap::{ArgGroup, Args, ValueEnum};
use serde_json::{Value, json};

/// The Kubernetes version assumed offline when none is given.
const DEFAULT_KUBE_VERSION: &str = "1.34.0";

/// Arguments of `berth render`.
#[derive(Debug, Args)]
#[command(group(ArgGroup::new("source").required(true).args(["repo", "local", "file"])))]
pub struct RenderArgs {
    /// A Git repository (URL or local Git directory), read at --revision.
    #[arg(long)]
    repo: Option<String>,
    /// The revision to read with --repo: branch, tag, commit or version
    /// constraint, as an Application's targetRevision.
    #[arg(long, default_value = "HEAD", requires = "repo")]
    revision: String,
    /// A plain directory, rendered without Git.
    #[arg(long)]
    local: Option<PathBuf>,
    /// An Application manifest: its source, options and destination are
    /// used, and the output carries the tracking metadata the controller
    /// would apply.
    #[arg(short = 'f', long = "filename", value_name = "FILE")]
    file: Option<PathBuf>,
    /// With -f: Argo CD's `application.resourceTrackingMethod`.
    #[arg(long, default_value = "annotation")]
    tracking_method: String,
    /// With -f: the control namespace (Applications elsewhere are tracked as
    /// NAMESPACE_NAME, as Argo CD does).
    #[arg(long, default_value = "argocd")]
    control_namespace: String,
    /// The application's path inside the repository or directory.
    #[arg(long, default_value = ".")]
    path: String,
    /// The source type (default: detected as Argo CD does).
    #[arg(long = "type", value_enum, default_value = "auto")]
    source_type: TypeArg,
    /// Directory sources: read subdirectories too.
    #[arg(long)]
    recurse: bool,
    /// Directory sources: only files matching this glob.
    #[arg(long)]
    include: Option<String>,
    /// Directory sources: skip files matching this glob.
    #[arg(long)]
    exclude: Option<String>,
    /// Helm: the release name.
    #[arg(long, default_value = "release")]
    release_name: String,
    /// The destination namespace.
    #[arg(short = 'n', long, default_value = "default")]
    namespace: String,
    /// Helm: set a value (NAME=VALUE), as a parameter of the Application.
    #[arg(long = "helm-set", value_name = "NAME=VALUE")]
    helm_set: Vec<String>,
    /// Helm: a values file, relative to the chart (may be repeated).
    #[arg(long = "values", value_name = "FILE")]
    values: Vec<String>,
    /// The Kubernetes version to render for.
    #[arg(long, default_value = DEFAULT_KUBE_VERSION)]
    kube_version: String,
    /// Output format.
    #[arg(short = 'o', long, value_enum, default_value = "yaml")]
    output: OutputArg,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum TypeArg {
    Auto,
    Directory,
    Kustomize,
    Helm,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum OutputArg {
    Yaml,
    Json,
}

/// Runs `berth render`.
pub fn run(args: RenderArgs) -> Result<()> {
    let work = scratch_dir()?;
    let result = render(&args, &work);
    let _ = std::fs::remove_dir_all(&work);
    let objects = result?;
    let text = match args.output {
        OutputArg::Json => {
            let list =
                json!({"apiVersion": "v1", "kind": "List", "metadata": {}, "items": objects});
            serde_json::to_string_pretty(&list)? + "\n"
        }
        OutputArg::Yaml => {
            let mut out = String::new();
            for obj in &objects {
                out.push_str("---\n");
                out.push_str(&serde_saphyr::to_string(obj).context("writing YAML")?);
            }
            out
        }
    };
    print!("{text}");
    Ok(())
}

/// What to render, however it was asked for.
struct Job {
    root: PathBuf,
    path: String,
    source_type: Option<SourceType>,
    directory: DirectoryOptions,
    kustomize: KustomizeOptions,
    helm: HelmOptions,
    /// Application name for tracking metadata (with `-f` only).
    track_as: Option<String>,
    /// The destination namespace (with `-f` only).
    destination_namespace: Option<String>,
}

fn fetch_repo(url: &str, revision: &str) -> Result<PathBuf> {
    let cache_dir = cache_dir();
    let cache = RepoCache::new(cache_dir.join("git"), CacheOptions::default())
        .with_context(|| format!("repository cache in {}", cache_dir.display()))?;
    let url = match Path::new(url).canonicalize() {
        Ok(local) if local.is_dir() => local.display().to_string(),
        _ => url.to_string(),
    };
    let resolved = cache.resolve(&url, None, revision, "")?;
    eprintln!("{url} {revision} -> {}", resolved.resolved.sha);
    Ok(cache.materialize(&url, &resolved.resolved.sha, "")?)
}

fn job_from_flags(args: &RenderArgs) -> Result<Job> {
    let root = match (&args.repo, &args.local) {
        (Some(url), _) => fetch_repo(url, &args.revision)?,
        (None, Some(dir)) => dir
            .canonicalize()
            .with_context(|| format!("--local {}", dir.display()))?,
        (None, None) => bail!("give --repo, --local or -f"),
    };
    let mut parameters = Vec::new();
    for set in &args.helm_set {
        let Some((name, value)) = set.split_once('=') else {
            bail!("--helm-set {set:?}: expected NAME=VALUE");
        };
        parameters.push(Parameter {
            name: name.into(),
            value: value.into(),
            force_string: false,
        });
    }
    Ok(Job {
        root,
        path: args.path.clone(),
        source_type: match args.source_type {
            TypeArg::Auto => None,
            TypeArg::Directory => Some(SourceType::Directory),
            TypeArg::Kustomize => Some(SourceType::Kustomize),
            TypeArg::Helm => Some(SourceType::Helm),
        },
        directory: DirectoryOptions {
            recurse: args.recurse,
            include: args.include.clone(),
            exclude: args.exclude.clone(),
            ..Default::default()
        },
        kustomize: KustomizeOptions::default(),
        helm: HelmOptions {
            release_name: args.release_name.clone(),
            namespace: args.namespace.clone(),
            value_files: args.values.clone(),
            parameters,
            kube_version: Some(args.kube_version.clone()),
            ..Default::default()
        },
        track_as: None,
        destination_namespace: None,
    })
}

fn jobs_from_application(file: &Path, args: &RenderArgs, work: &Path) -> Result<Vec<Job>> {
    let text =
        std::fs::read_to_string(file).with_context(|| format!("reading {}", file.display()))?;
    let app = Application::from_yaml(&file.display().to_string(), &text)?;
    for field in app.unknown_fields() {
        eprintln!(
            "warning: {}: unknown field {field} is ignored",
            file.display()
        );
    }
    let sources = app.sources();
    // Sources with a `ref` lend their files to the others (`$ref/...`).
    let mut ref_roots = BTreeMap::new();
    for source in &sources {
        if let (Some(name), None) = (&source.ref_name, &source.chart) {
            let revision = source
                .target_revision
                .clone()
                .unwrap_or_else(|| "HEAD".into());
            ref_roots.insert(name.clone(), fetch_repo(&source.repo_url, &revision)?);
        }
    }
    let mut jobs = Vec::new();
    for (i, source) in sources.iter().enumerate() {
        // A source that only lends files renders nothing itself.
        if source.ref_name.is_some() && source.path.is_none() && source.chart.is_none() {
            continue;
        }
        jobs.push(job_for_source(
            &app,
            source,
            &ref_roots,
            file,
            args,
            &work.join(format!("source-{i}")),
        )?);
    }
    Ok(jobs)
}

fn job_for_source(
    app: &Application,
    source: &berth_api::application::Source,
    ref_roots: &BTreeMap<String, PathBuf>,
    file: &Path,
    args: &RenderArgs,
    work: &Path,
) -> Result<Job> {
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
                Some(serde_saphyr::to_string(obj).context("spec.source.helm.valuesObject")?)
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
                .unwrap_or_else(|| args.kube_version.clone()),
        ),
        api_versions: helm_src.api_versions.clone(),
        allow_remote_value_files: false,
        ref_roots: ref_roots.clone(),
    };
    let (root, path, source_type) = match &source.chart {
        Some(chart) => {
            let bin = tool::find("helm", None)?;
            let chart_ref = ChartRef {
                repo_url: source.repo_url.clone(),
                chart: chart.clone(),
                version: revision.clone(),
                pass_credentials: helm_src.pass_credentials,
                ..Default::default()
            };
            let dir = helm::pull(
                &chart_ref,
                &cache_dir().join("charts"),
                &bin,
                &work.join("pull"),
            )?;
            (dir, chart.clone(), Some(SourceType::Helm))
        }
        None => (
            fetch_repo(&source.repo_url, &revision)?,
            source.path.clone().unwrap_or_else(|| ".".into()),
            None,
        ),
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
            bail!(
                "{}: spec.source.kustomize.replicas: count of {:?} is not a number",
                file.display(),
                r.name
            );
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
    Ok(Job {
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
        track_as: Some(match app.metadata.namespace.as_deref() {
            Some(ns) if ns != args.control_namespace => format!("{ns}_{name}"),
            _ => name,
        }),
    })
}

fn render(args: &RenderArgs, work: &Path) -> Result<Vec<Value>> {
    let jobs = match &args.file {
        Some(file) => jobs_from_application(file, args, work)?,
        None => vec![job_from_flags(args)?],
    };
    let mut objects = Vec::new();
    for (i, job) in jobs.into_iter().enumerate() {
        objects.extend(render_job(job, args, &work.join(format!("render-{i}")))?);
    }
    // The order the sync applies them in: stable, so equal keys keep the
    // order the sources gave.
    objects.sort_by_key(key);
    Ok(objects)
}

fn render_job(job: Job, args: &RenderArgs, work: &Path) -> Result<Vec<Value>> {
    let app_dir = job.root.join(&job.path);
    if !app_dir.is_dir() {
        bail!("path {}: no such directory in the source", job.path);
    }
    let source_type = job.source_type.unwrap_or_else(|| detect(&app_dir));
    let mut job = job;
    job.directory.repo_root = Some(job.root.clone());
    let mut objects = match source_type {
        SourceType::Directory => directory::render(&app_dir, &job.directory)?,
        SourceType::Kustomize => {
            // Offline there is no argocd-cm: the default kustomize (or
            // kubectl's, as a last resort) serves every version.
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
    if let Some(app) = &job.track_as {
        let method = Method::parse(&args.tracking_method).with_context(|| {
            format!(
                "--tracking-method {:?}: use annotation, label or annotation+label",
                args.tracking_method
            )
        })?;
        for obj in &mut objects {
            tracking::mark(obj, app, method, tracking::INSTANCE_LABEL);
        }
    }
    Ok(objects)
}

/// `directory.jsonnet` as Argo CD writes it: `tlas` and `extVars` as lists
/// of `{name, value, code}`, `libs` as a list of paths.
fn jsonnet_options(spec: Option<&Value>) -> JsonnetOptions {
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

fn key(o: &Value) -> (usize, String, String, String) {
    let s = |p: &str| {
        o.pointer(p)
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string()
    };
    let (kind, ns, name) = (s("/kind"), s("/metadata/namespace"), s("/metadata/name"));
    (berth_api::kinds::apply_rank(&kind), kind, ns, name)
}

fn cache_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("BERTH_CACHE_DIR") {
        return PathBuf::from(dir);
    }
    let base = std::env::var_os("XDG_CACHE_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache")))
        .unwrap_or_else(std::env::temp_dir);
    base.join("berth").join("sources")
}

fn scratch_dir() -> Result<PathBuf> {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    let dir = std::env::temp_dir().join(format!("berth-render-{}-{nanos}", std::process::id()));
    std::fs::create_dir_all(&dir).with_context(|| format!("create {}", dir.display()))?;
    Ok(dir)
}
