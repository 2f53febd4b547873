//! Kustomize sources: the real `kustomize build`, with Argo CD's options
//! applied the way Argo CD applies them (`kustomize edit` in a writable copy
//! of the repository, since bases may live outside the application's path).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde_json::Value;

use crate::manifest;
use crate::tool::{self, Invocation};

/// Why a Kustomize source could not be rendered.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Running kustomize failed.
    #[error(transparent)]
    Tool(#[from] tool::Error),
    /// Its output is not a valid manifest stream.
    #[error(transparent)]
    Manifest(#[from] manifest::Error),
    /// An option is not valid.
    #[error("kustomize.{field}: {reason}")]
    Option {
        /// The option.
        field: &'static str,
        /// What is wrong.
        reason: String,
    },
    /// Preparing the working copy failed.
    #[error("preparing {path}: {source}")]
    Io {
        /// What was being prepared.
        path: String,
        /// Why.
        #[source]
        source: std::io::Error,
    },
}

/// A patch in Argo CD's `kustomize.patches` (inline patch and target).
#[derive(Debug, Clone, Default)]
pub struct Patch {
    /// Inline patch (strategic merge or JSON 6902, as YAML or JSON).
    pub patch: Option<String>,
    /// A patch file, relative to the application's directory.
    pub path: Option<String>,
    /// Target selectors: group, version, kind, name, namespace,
    /// labelSelector, annotationSelector.
    pub target: BTreeMap<String, String>,
}

/// Argo CD's `spec.source.kustomize` options.
#[derive(Debug, Clone, Default)]
pub struct KustomizeOptions {
    /// `namePrefix`.
    pub name_prefix: Option<String>,
    /// `nameSuffix`.
    pub name_suffix: Option<String>,
    /// `images` (`name=newName:tag`, `name:tag`, `name@digest`).
    pub images: Vec<String>,
    /// `commonLabels`.
    pub common_labels: BTreeMap<String, String>,
    /// `commonAnnotations`.
    pub common_annotations: BTreeMap<String, String>,
    /// `forceCommonLabels`: overwrite labels already set.
    pub force_common_labels: bool,
    /// `forceCommonAnnotations`: overwrite annotations already set.
    pub force_common_annotations: bool,
    /// `namespace`.
    pub namespace: Option<String>,
    /// `replicas`: (name, count).
    pub replicas: Vec<(String, i64)>,
    /// `components`: paths relative to the application's directory.
    pub components: Vec<String>,
    /// `patches`.
    pub patches: Vec<Patch>,
    /// Extra `kustomize build` flags (`argocd-cm` `kustomize.buildOptions`).
    pub build_options: Vec<String>,
}

impl KustomizeOptions {
    fn edits(&self) -> Result<Vec<Vec<String>>, Error> {
        let mut edits = Vec::new();
        let s = |v: &[&str]| v.iter().map(|x| x.to_string()).collect::<Vec<_>>();
        if let Some(p) = &self.name_prefix {
            edits.push(s(&["edit", "set", "nameprefix", "--", p]));
        }
        if let Some(p) = &self.name_suffix {
            edits.push(s(&["edit", "set", "namesuffix", "--", p]));
        }
        if !self.images.is_empty() {
            let mut e = s(&["edit", "set", "image"]);
            e.extend(self.images.iter().cloned());
            edits.push(e);
        }
        if !self.replicas.is_empty() {
            let mut e = s(&["edit", "set", "replicas"]);
            e.extend(self.replicas.iter().map(|(n, c)| format!("{n}={c}")));
            edits.push(e);
        }
        for (field, kind, map, force) in [
            (
                "commonLabels",
                "label",
                &self.common_labels,
                self.force_common_labels,
            ),
            (
                "commonAnnotations",
                "annotation",
                &self.common_annotations,
                self.force_common_annotations,
            ),
        ] {
            if map.is_empty() {
                continue;
            }
            if let Some(bad) = map.keys().find(|k| k.contains(',') || k.is_empty()) {
                return Err(Error::Option {
                    field: if field == "commonLabels" {
                        "commonLabels"
                    } else {
                        "commonAnnotations"
                    },
                    reason: format!("key {bad:?} is not valid"),
                });
            }
            let mut e = s(&["edit", "add", kind]);
            if force {
                e.push("--force".into());
            }
            e.push(
                map.iter()
                    .map(|(k, v)| format!("{k}:{v}"))
                    .collect::<Vec<_>>()
                    .join(","),
            );
            edits.push(e);
        }
        if let Some(ns) = &self.namespace {
            edits.push(s(&["edit", "set", "namespace", "--", ns]));
        }
        for c in &self.components {
            edits.push(s(&["edit", "add", "component", c]));
        }
        for p in &self.patches {
            let mut e = s(&["edit", "add", "patch"]);
            match (&p.patch, &p.path) {
                (Some(inline), None) => e.extend([String::from("--patch"), inline.clone()]),
                (None, Some(path)) => e.extend([String::from("--path"), path.clone()]),
                _ => {
                    return Err(Error::Option {
                        field: "patches",
                        reason: "each patch needs exactly one of `patch` or `path`".into(),
                    });
                }
            }
            for (k, v) in &p.target {
                let flag = match k.as_str() {
                    "group" => "--group",
                    "version" => "--version",
                    "kind" => "--kind",
                    "name" => "--name",
                    "namespace" => "--namespace",
                    "labelSelector" => "--label-selector",
                    "annotationSelector" => "--annotation-selector",
                    other => {
                        return Err(Error::Option {
                            field: "patches",
                            reason: format!("unknown target field {other:?}"),
                        });
                    }
                };
                e.extend([flag.to_string(), v.clone()]);
            }
            edits.push(e);
        }
        Ok(edits)
    }
}

/// How to run Kustomize.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Kustomize {
    /// The `kustomize` binary.
    Binary(PathBuf),
    /// `kubectl kustomize`, the last resort: it builds but cannot edit, so
    /// applications with Kustomize options need the real binary.
    Kubectl(PathBuf),
}

impl Kustomize {
    /// Finds Kustomize for an application: with `version` (the
    /// application's `kustomize.version`), the binary configured for it in
    /// `configured` (Argo CD's `kustomize.path.<version>` in `argocd-cm`);
    /// otherwise `kustomize` as [`tool::find`] finds it, else `kubectl`.
    pub fn locate(
        version: Option<&str>,
        configured: &BTreeMap<String, PathBuf>,
    ) -> Result<Kustomize, Error> {
        if let Some(v) = version.filter(|v| !v.is_empty()) {
            return match configured.get(v) {
                Some(path) => Ok(Kustomize::Binary(tool::find("kustomize", Some(path))?)),
                None => Err(Error::Option {
                    field: "version",
                    reason: format!(
                        "kustomize {v} is not configured; set kustomize.path.{v} in argocd-cm (configured: {})",
                        if configured.is_empty() {
                            "none".to_string()
                        } else {
                            configured.keys().cloned().collect::<Vec<_>>().join(", ")
                        }
                    ),
                }),
            };
        }
        match tool::find("kustomize", None) {
            Ok(path) => Ok(Kustomize::Binary(path)),
            Err(not_found) => tool::find("kubectl", None)
                .map(Kustomize::Kubectl)
                .map_err(|_| Error::Tool(not_found)),
        }
    }
}

/// Renders with whichever Kustomize `locate` found.
pub fn render_with(
    repo_root: &Path,
    app_path: &str,
    options: &KustomizeOptions,
    kustomize: &Kustomize,
    work: &Path,
) -> Result<Vec<Value>, Error> {
    match kustomize {
        Kustomize::Binary(path) => render(repo_root, app_path, options, path, work),
        Kustomize::Kubectl(kubectl) => {
            if !options.edits()?.is_empty() {
                return Err(Error::Option {
                    field: "options",
                    reason: "this application sets Kustomize options, which need the kustomize binary; kubectl kustomize cannot apply them".into(),
                });
            }
            let home = work.join("home");
            std::fs::create_dir_all(&home).map_err(|source| Error::Io {
                path: home.display().to_string(),
                source,
            })?;
            let mut build = Invocation::new(kubectl.clone(), &repo_root.join(app_path))
                .args(["kustomize", "."]);
            build.args.extend(options.build_options.iter().cloned());
            let out = build.run(&home)?;
            Ok(manifest::parse_stream(
                &format!("kubectl kustomize {app_path}"),
                &String::from_utf8_lossy(&out),
            )?)
        }
    }
}

/// Renders the Kustomize application at `app_path` in the repository at
/// `repo_root`; `work` is a private scratch directory.
pub fn render(
    repo_root: &Path,
    app_path: &str,
    options: &KustomizeOptions,
    kustomize: &Path,
    work: &Path,
) -> Result<Vec<Value>, Error> {
    let edits = options.edits()?;
    let io = |path: &Path| {
        let path = path.display().to_string();
        move |source| Error::Io { path, source }
    };
    std::fs::create_dir_all(work).map_err(io(work))?;
    let root: PathBuf = if edits.is_empty() {
        repo_root.to_path_buf()
    } else {
        let copy = work.join("src");
        let _ = std::fs::remove_dir_all(&copy);
        copy_writable(repo_root, &copy).map_err(io(&copy))?;
        copy
    };
    let app_dir = root.join(app_path);
    let home = work.join("home");
    std::fs::create_dir_all(&home).map_err(io(&home))?;
    for edit in edits {
        Invocation::new(kustomize.to_path_buf(), &app_dir)
            .args(edit)
            .run(&home)?;
    }
    let mut build = Invocation::new(kustomize.to_path_buf(), &app_dir).args(["build", "."]);
    build.args.extend(options.build_options.iter().cloned());
    let out = build.run(&home)?;
    let text = String::from_utf8_lossy(&out);
    Ok(manifest::parse_stream(
        &format!("kustomize build {app_path}"),
        &text,
    )?)
}

/// Copies a tree, making the copy writable (sources come read-only).
pub(crate) fn copy_writable(from: &Path, to: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::create_dir_all(to)?;
    std::fs::set_permissions(to, std::fs::Permissions::from_mode(0o755))?;
    for entry in std::fs::read_dir(from)? {
        let entry = entry?;
        let (src, dst) = (entry.path(), to.join(entry.file_name()));
        let kind = entry.file_type()?;
        if kind.is_symlink() {
            std::os::unix::fs::symlink(std::fs::read_link(&src)?, &dst)?;
        } else if kind.is_dir() {
            copy_writable(&src, &dst)?;
        } else {
            std::fs::copy(&src, &dst)?;
            std::fs::set_permissions(&dst, std::fs::Permissions::from_mode(0o644))?;
        }
    }
    Ok(())
}
