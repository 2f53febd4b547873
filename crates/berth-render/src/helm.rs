//! Helm charts from a directory: the real `helm template`, with Argo CD's
//! options. Value files must stay inside the repository.

use std::path::{Component, Path};

use serde_json::Value;

use crate::manifest;
use crate::tool::{self, Invocation};

/// Why a Helm source could not be rendered.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Running helm failed.
    #[error(transparent)]
    Tool(#[from] tool::Error),
    /// Its output is not a valid manifest stream.
    #[error(transparent)]
    Manifest(#[from] manifest::Error),
    /// A value file is outside the repository, or missing.
    #[error("helm.valueFiles: {file:?} {reason}")]
    ValueFile {
        /// The file as given.
        file: String,
        /// What is wrong.
        reason: String,
    },
    /// A file parameter is outside the repository, or missing.
    #[error("helm.fileParameters: {name}: {path:?} {reason}")]
    FileParameter {
        /// The parameter.
        name: String,
        /// The path as given.
        path: String,
        /// What is wrong.
        reason: String,
    },
    /// A chart from a repository is not usable.
    #[error("chart {chart:?} {reason}")]
    Chart {
        /// The chart's name.
        chart: String,
        /// What is wrong.
        reason: String,
    },
    /// Writing scratch files failed.
    #[error("preparing {path}: {source}")]
    Io {
        /// What was being written.
        path: String,
        /// Why.
        #[source]
        source: std::io::Error,
    },
}

/// One `helm.parameters` entry.
#[derive(Debug, Clone)]
pub struct Parameter {
    /// The value's path, such as `image.tag`.
    pub name: String,
    /// The value.
    pub value: String,
    /// `forceString`: pass it as a string (`--set-string`).
    pub force_string: bool,
}

/// Argo CD's `spec.source.helm` options, plus what the destination gives.
#[derive(Debug, Clone, Default)]
pub struct HelmOptions {
    /// `releaseName` (Argo CD defaults it to the application's name).
    pub release_name: String,
    /// The destination namespace.
    pub namespace: String,
    /// `values` / `valuesObject`, as YAML text.
    pub values: Option<String>,
    /// `valueFiles`, relative to the chart's directory.
    pub value_files: Vec<String>,
    /// `ignoreMissingValueFiles`.
    pub ignore_missing_value_files: bool,
    /// `parameters`.
    pub parameters: Vec<Parameter>,
    /// `fileParameters`: (name, path relative to the chart's directory).
    pub file_parameters: Vec<(String, String)>,
    /// `skipCrds`: leave out the chart's `crds/`.
    pub skip_crds: bool,
    /// `skipTests`.
    pub skip_tests: bool,
    /// The destination's Kubernetes version (`--kube-version`).
    pub kube_version: Option<String>,
    /// The destination's API versions (`--api-versions`).
    pub api_versions: Vec<String>,
    /// Allow value files given as http(s) URLs (Argo CD refuses them unless
    /// configured to allow them); helm fetches them.
    pub allow_remote_value_files: bool,
    /// Roots of the Application's other sources by `ref` name, for value
    /// files written `$name/path` (multiple sources).
    pub ref_roots: std::collections::BTreeMap<String, std::path::PathBuf>,
}

/// A chart in a Helm repository (an Application with `chart` and an
/// http(s) `repoURL`).
#[derive(Clone, Default)]
pub struct ChartRef {
    /// The chart repository's URL.
    pub repo_url: String,
    /// The chart's name.
    pub chart: String,
    /// `targetRevision`: an exact version, or a constraint (`^1.2`, `*`).
    pub version: String,
    /// Repository user name.
    pub username: Option<String>,
    /// Repository password (never printed).
    pub password: Option<String>,
    /// `passCredentials`: send credentials to every domain (charts hosted
    /// elsewhere than the index).
    pub pass_credentials: bool,
    /// Skip TLS verification.
    pub insecure: bool,
    /// Extra CA certificates (PEM) for the repository's host.
    pub ca_pem: Option<String>,
}

impl std::fmt::Debug for ChartRef {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ChartRef")
            .field("repo_url", &self.repo_url)
            .field("chart", &self.chart)
            .field("version", &self.version)
            .field("username", &self.username)
            .finish_non_exhaustive()
    }
}

/// Downloads (`helm pull`) a chart from a Helm repository into
/// `cache_dir`, unless an exact version is already there, and returns the
/// directory holding the unpacked chart. Versions given as constraints are
/// pulled each time, as a newer matching version may have appeared.
pub fn pull(
    chart: &ChartRef,
    cache_dir: &Path,
    helm: &Path,
    work: &Path,
) -> Result<std::path::PathBuf, Error> {
    use sha2::{Digest, Sha256};
    let io = |path: &Path| {
        let path = path.display().to_string();
        move |source| Error::Io { path, source }
    };
    if chart.chart.is_empty() || chart.chart.contains('/') || chart.chart.contains("..") {
        return Err(Error::Chart {
            chart: chart.chart.clone(),
            reason: "is not a chart name".into(),
        });
    }
    let exact = !chart.version.is_empty()
        && chart
            .version
            .trim_start_matches('v')
            .split(['.', '-', '+'])
            .take(3)
            .all(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()))
        && chart.version.matches('.').count() >= 2;
    let digest: String = Sha256::digest(
        format!("{}\n{}\n{}", chart.repo_url, chart.chart, chart.version).as_bytes(),
    )
    .iter()
    .take(12)
    .map(|b| format!("{b:02x}"))
    .collect();
    let dest = cache_dir.join(format!(
        "{}-{}-{digest}",
        chart.chart,
        if exact {
            chart.version.as_str()
        } else {
            "range"
        }
    ));
    if exact && dest.join(&chart.chart).join("Chart.yaml").is_file() {
        return Ok(dest);
    }
    let tmp = work.join("pull");
    let _ = std::fs::remove_dir_all(&tmp);
    std::fs::create_dir_all(&tmp).map_err(io(&tmp))?;
    let mut inv = Invocation::new(helm.to_path_buf(), work)
        .args([
            "pull",
            chart.chart.as_str(),
            "--repo",
            chart.repo_url.as_str(),
            "--untar",
            "--untardir",
        ])
        .args([tmp.display().to_string()]);
    if !chart.version.is_empty() && chart.version != "*" {
        inv = inv.args(["--version", chart.version.as_str()]);
    }
    if let (Some(u), Some(p)) = (&chart.username, &chart.password) {
        inv = inv.args(["--username", u.as_str(), "--password", p.as_str()]);
    }
    if chart.pass_credentials {
        inv = inv.args(["--pass-credentials"]);
    }
    if chart.insecure {
        inv = inv.args(["--insecure-skip-tls-verify"]);
    }
    if let Some(ca) = &chart.ca_pem {
        let ca_file = work.join("repo-ca.pem");
        std::fs::write(&ca_file, ca).map_err(io(&ca_file))?;
        inv = inv.args(["--ca-file".to_string(), ca_file.display().to_string()]);
    }
    let home = helm_home(work, &mut inv)?;
    inv.run(&home).map_err(|e| match e {
        // helm repeats the password in some messages; never pass it on.
        tool::Error::Failed { tool, message } => {
            let message = match &chart.password {
                Some(p) if !p.is_empty() => message.replace(p.as_str(), "***"),
                _ => message,
            };
            Error::Tool(tool::Error::Failed { tool, message })
        }
        other => Error::Tool(other),
    })?;
    if !tmp.join(&chart.chart).join("Chart.yaml").is_file() {
        return Err(Error::Chart {
            chart: chart.chart.clone(),
            reason: "was downloaded but holds no Chart.yaml".into(),
        });
    }
    std::fs::create_dir_all(cache_dir).map_err(io(cache_dir))?;
    let _ = std::fs::remove_dir_all(&dest);
    std::fs::rename(&tmp, &dest).map_err(io(&dest))?;
    Ok(dest)
}

/// Private helm home directories for one invocation.
fn helm_home(work: &Path, inv: &mut Invocation) -> Result<std::path::PathBuf, Error> {
    let home = work.join("home");
    for sub in ["cache", "config", "data"] {
        let dir = home.join(sub);
        std::fs::create_dir_all(&dir).map_err(|source| Error::Io {
            path: dir.display().to_string(),
            source,
        })?;
        inv.env.push((
            format!("HELM_{}_HOME", sub.to_uppercase()),
            dir.display().to_string(),
        ));
    }
    Ok(home)
}

/// Resolves `rel` against the chart directory and refuses anything that
/// would leave the repository.
fn inside(repo_root: &Path, chart_dir: &Path, rel: &str) -> Result<std::path::PathBuf, String> {
    let p = Path::new(rel);
    if p.is_absolute() {
        return Err("is absolute; give a path inside the repository".into());
    }
    if rel.contains("://") {
        return Err("is a URL; remote value files are not allowed unless configured".into());
    }
    let mut resolved = chart_dir.to_path_buf();
    for c in p.components() {
        match c {
            Component::ParentDir => {
                resolved.pop();
            }
            Component::Normal(n) => resolved.push(n),
            Component::CurDir => {}
            _ => return Err("is not a relative path".into()),
        }
        if !resolved.starts_with(repo_root) {
            return Err("leaves the repository".into());
        }
    }
    // A symbolic link may point elsewhere: check where it really is.
    if let (Ok(real), Ok(root)) = (resolved.canonicalize(), repo_root.canonicalize())
        && !real.starts_with(&root)
    {
        return Err("leaves the repository through a symbolic link".into());
    }
    Ok(resolved)
}

/// Renders the chart at `app_path` in `repo_root`; `work` is a private
/// scratch directory.
pub fn render(
    repo_root: &Path,
    app_path: &str,
    options: &HelmOptions,
    helm: &Path,
    work: &Path,
) -> Result<Vec<Value>, Error> {
    let io = |path: &Path| {
        let path = path.display().to_string();
        move |source| Error::Io { path, source }
    };
    let chart_dir = repo_root.join(app_path);
    std::fs::create_dir_all(work).map_err(io(work))?;
    let release = if options.release_name.is_empty() {
        "release".to_string()
    } else {
        options.release_name.clone()
    };
    let mut inv = Invocation::new(helm.to_path_buf(), &chart_dir).args(["template", &release, "."]);
    if !options.namespace.is_empty() {
        inv = inv.args(["--namespace", &options.namespace]);
    }
    if !options.skip_crds {
        inv = inv.args(["--include-crds"]);
    }
    if options.skip_tests {
        inv = inv.args(["--skip-tests"]);
    }
    for file in &options.value_files {
        if options.allow_remote_value_files
            && (file.starts_with("https://") || file.starts_with("http://"))
        {
            inv = inv.args(["--values", file.as_str()]);
            continue;
        }
        let path = match file.strip_prefix('$') {
            // `$ref/path`: a file of another source, confined to that source.
            Some(rest) => {
                let (name, rel) = rest.split_once('/').unwrap_or((rest, ""));
                let root = options.ref_roots.get(name).ok_or_else(|| Error::ValueFile {
                    file: file.clone(),
                    reason: format!("refers to source ref {name:?}, which no source of the application defines"),
                })?;
                inside(root, root, rel)
            }
            None => inside(repo_root, &chart_dir, file),
        }
        .map_err(|reason| Error::ValueFile { file: file.clone(), reason })?;
        if !path.is_file() {
            if options.ignore_missing_value_files {
                continue;
            }
            return Err(Error::ValueFile {
                file: file.clone(),
                reason: "does not exist (set ignoreMissingValueFiles to skip it)".into(),
            });
        }
        inv = inv.args(["--values".to_string(), path.display().to_string()]);
    }
    if let Some(values) = &options.values {
        let path = work.join("values-inline.yaml");
        std::fs::write(&path, values).map_err(io(&path))?;
        inv = inv.args(["--values".to_string(), path.display().to_string()]);
    }
    for p in &options.parameters {
        let flag = if p.force_string {
            "--set-string"
        } else {
            "--set"
        };
        inv = inv.args([flag.to_string(), format!("{}={}", p.name, p.value)]);
    }
    for (name, rel) in &options.file_parameters {
        let path = inside(repo_root, &chart_dir, rel).map_err(|reason| Error::FileParameter {
            name: name.clone(),
            path: rel.clone(),
            reason,
        })?;
        inv = inv.args([
            "--set-file".to_string(),
            format!("{name}={}", path.display()),
        ]);
    }
    if let Some(v) = &options.kube_version {
        inv = inv.args(["--kube-version", v]);
    }
    for api in &options.api_versions {
        inv = inv.args(["--api-versions", api]);
    }
    let home = work.join("home");
    for sub in ["cache", "config", "data"] {
        let dir = home.join(sub);
        std::fs::create_dir_all(&dir).map_err(io(&dir))?;
        inv.env.push((
            format!("HELM_{}_HOME", sub.to_uppercase()),
            dir.display().to_string(),
        ));
    }
    let out = inv.run(&home)?;
    let text = String::from_utf8_lossy(&out);
    Ok(manifest::parse_stream(
        &format!("helm template {app_path}"),
        &text,
    )?)
}
