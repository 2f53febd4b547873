//! `berth render`: what an application's source declares, offline.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use berth_api::application::Application;
use berth_api::tracking::Method;
use berth_controller::source::{self, RenderJob, Sources};
use berth_render::detect::SourceType;
use berth_render::directory::DirectoryOptions;
use berth_render::helm::{HelmOptions, Parameter};
use berth_render::kustomize::KustomizeOptions;
use berth_source::repo::{CacheOptions, RepoCache};
use clap::{ArgGroup, Args, ValueEnum};
use serde_json::{Value, json};

/// The Kubernetes version assumed offline when none is given.
pub(crate) const DEFAULT_KUBE_VERSION: &str = "1.34.0";

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

pub(crate) fn repo_cache() -> Result<RepoCache> {
    let cache_dir = cache_dir();
    RepoCache::new(cache_dir.join("git"), CacheOptions::default())
        .with_context(|| format!("repository cache in {}", cache_dir.display()))
}

/// A local Git directory is read through the cache like any repository.
fn repo_url(url: &str) -> String {
    match Path::new(url).canonicalize() {
        Ok(local) if local.is_dir() => local.display().to_string(),
        _ => url.to_string(),
    }
}

fn fetch_repo(url: &str, revision: &str) -> Result<PathBuf> {
    let cache = repo_cache()?;
    let url = repo_url(url);
    let resolved = cache.resolve(&url, None, revision, "")?;
    eprintln!("{url} {revision} -> {}", resolved.resolved.sha);
    Ok(cache.materialize(&url, &resolved.resolved.sha, "")?)
}

fn job_from_flags(args: &RenderArgs) -> Result<RenderJob> {
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
    Ok(RenderJob {
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

fn render_application(file: &Path, args: &RenderArgs, work: &Path) -> Result<Vec<Value>> {
    let method = Method::parse(&args.tracking_method).with_context(|| {
        format!(
            "--tracking-method {:?}: use annotation, label or annotation+label",
            args.tracking_method
        )
    })?;
    let text =
        std::fs::read_to_string(file).with_context(|| format!("reading {}", file.display()))?;
    let mut app = Application::from_yaml(&file.display().to_string(), &text)?;
    for field in app.unknown_fields() {
        eprintln!(
            "warning: {}: unknown field {field} is ignored",
            file.display()
        );
    }
    // Local Git directories are named by path, relative to where berth runs.
    if let Some(s) = app.spec.source.as_mut() {
        s.repo_url = repo_url(&s.repo_url);
    }
    for s in &mut app.spec.sources {
        s.repo_url = repo_url(&s.repo_url);
    }
    let cache = repo_cache()?;
    let sources = Sources::direct(
        &cache,
        cache_dir().join("charts"),
        args.kube_version.clone(),
    );
    let settings = source::RenderSettings::new(&args.control_namespace, method);
    let rendered = source::render_application(&app, &sources, &settings, work)
        .with_context(|| file.display().to_string())?;
    Ok(rendered.objects)
}

fn render(args: &RenderArgs, work: &Path) -> Result<Vec<Value>> {
    if let Some(file) = &args.file {
        return render_application(file, args, work);
    }
    let job = job_from_flags(args)?;
    let mut objects = source::render_job(job, "--path", &work.join("render-0"))?;
    source::sort_for_apply(&mut objects);
    Ok(objects)
}

pub(crate) fn cache_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("BERTH_CACHE_DIR") {
        return PathBuf::from(dir);
    }
    crate::controller::cache_root().join("sources")
}

pub(crate) fn scratch_dir() -> Result<PathBuf> {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    let dir = std::env::temp_dir().join(format!("berth-render-{}-{nanos}", std::process::id()));
    std::fs::create_dir_all(&dir).with_context(|| format!("create {}", dir.display()))?;
    Ok(dir)
}
