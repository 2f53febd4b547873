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
}

/// Resolves `rel` against the chart directory and refuses anything that
/// would leave the repository.
fn inside(repo_root: &Path, chart_dir: &Path, rel: &str) -> Result<std::path::PathBuf, String> {
    let p = Path::new(rel);
    if p.is_absolute() {
        return Err("is absolute; give a path inside the repository".into());
    }
    if rel.contains("://") {
        return Err("is a URL; remote value files are not allowed".into());
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
        let path = inside(repo_root, &chart_dir, file).map_err(|reason| Error::ValueFile {
            file: file.clone(),
            reason,
        })?;
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
