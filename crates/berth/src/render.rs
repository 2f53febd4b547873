//! `berth render`: what an application's source declares, offline.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use berth_render::detect::{SourceType, detect};
use berth_render::directory::{self, DirectoryOptions};
use berth_render::helm::{self, HelmOptions, Parameter};
use berth_render::kustomize::{self, KustomizeOptions};
use berth_render::tool;
use berth_source::repo::{CacheOptions, RepoCache};
use clap::{ArgGroup, Args, ValueEnum};
use serde_json::{Value, json};

/// The Kubernetes version assumed offline when none is given.
const DEFAULT_KUBE_VERSION: &str = "1.34.0";

/// Arguments of `berth render`.
#[derive(Debug, Args)]
#[command(group(ArgGroup::new("source").required(true).args(["repo", "local"])))]
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

fn render(args: &RenderArgs, work: &Path) -> Result<Vec<Value>> {
    let root: PathBuf = match (&args.repo, &args.local) {
        (Some(url), _) => {
            let cache_dir = cache_dir();
            let cache = RepoCache::new(&cache_dir, CacheOptions::default())
                .with_context(|| format!("repository cache in {}", cache_dir.display()))?;
            let url = match Path::new(url).canonicalize() {
                Ok(local) if local.is_dir() => local.display().to_string(),
                _ => url.clone(),
            };
            let revision = cache.resolve(&url, None, &args.revision, "")?;
            eprintln!("{url} {} -> {}", args.revision, revision.resolved.sha);
            cache.materialize(&url, &revision.resolved.sha, "")?
        }
        (None, Some(dir)) => dir
            .canonicalize()
            .with_context(|| format!("--local {}", dir.display()))?,
        (None, None) => bail!("give --repo or --local"),
    };
    let app_dir = root.join(&args.path);
    if !app_dir.is_dir() {
        bail!("--path {}: no such directory in the source", args.path);
    }
    let source_type = match args.source_type {
        TypeArg::Auto => detect(&app_dir),
        TypeArg::Directory => SourceType::Directory,
        TypeArg::Kustomize => SourceType::Kustomize,
        TypeArg::Helm => SourceType::Helm,
    };
    let mut objects = match source_type {
        SourceType::Directory => directory::render(
            &app_dir,
            &DirectoryOptions {
                recurse: args.recurse,
                include: args.include.clone(),
                exclude: args.exclude.clone(),
            },
        )?,
        SourceType::Kustomize => {
            let bin = tool::find("kustomize", None)?;
            kustomize::render(&root, &args.path, &KustomizeOptions::default(), &bin, work)?
        }
        SourceType::Helm => {
            let bin = tool::find("helm", None)?;
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
            let options = HelmOptions {
                release_name: args.release_name.clone(),
                namespace: args.namespace.clone(),
                value_files: args.values.clone(),
                parameters,
                kube_version: Some(args.kube_version.clone()),
                ..Default::default()
            };
            helm::render(&root, &args.path, &options, &bin, work)?
        }
    };
    // The order the sync applies them in: stable, so equal keys keep the
    // order the source gave.
    objects.sort_by_key(key);
    Ok(objects)
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
