//! Config management plugins, declared as Argo CD declares them (a
//! `ConfigManagementPlugin` with `init` and `generate` commands). The
//! commands run in a writable copy of the repository, in the application's
//! directory, with Argo CD's `ARGOCD_APP_*` variables, the application's
//! plugin environment (as `ARGOCD_ENV_*`) and parameters (as `PARAM_*` and
//! `ARGOCD_APP_PARAMETERS`), under the same limits as every tool. Their
//! stdout is a YAML (or JSON) stream of objects.

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde_json::{Value, json};

use crate::manifest;
use crate::tool::{self, Invocation};

/// Why a plugin could not be used.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The plugin's declaration is not valid.
    #[error("plugin {name}: {reason}")]
    Declaration {
        /// The plugin's name, or the file it came from.
        name: String,
        /// What is wrong.
        reason: String,
    },
    /// A command failed or overran its limits.
    #[error("plugin {name} {step}: {source}")]
    Command {
        /// The plugin.
        name: String,
        /// `init` or `generate`.
        step: &'static str,
        /// What happened.
        #[source]
        source: tool::Error,
    },
    /// `generate` printed something that is not a manifest stream.
    #[error(transparent)]
    Manifest(#[from] manifest::Error),
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

/// A command: program and arguments (Argo CD's `command` + `args`).
#[derive(Debug, Clone, Default)]
pub struct Command {
    /// The program and its first arguments.
    pub command: Vec<String>,
    /// More arguments.
    pub args: Vec<String>,
}

/// A plugin declaration.
#[derive(Debug, Clone)]
pub struct Plugin {
    /// `metadata.name` (with `-spec.version` appended when a version is
    /// set, as Argo CD names plugins).
    pub name: String,
    /// Run once before `generate`.
    pub init: Option<Command>,
    /// Prints the manifests.
    pub generate: Command,
    /// How long each command may run.
    pub timeout: Duration,
}

impl Plugin {
    /// Reads a `ConfigManagementPlugin` manifest (Argo CD's `plugin.yaml`).
    pub fn from_manifest(source: &str, text: &str) -> Result<Plugin, Error> {
        let bad = |reason: &str| Error::Declaration {
            name: source.to_string(),
            reason: reason.to_string(),
        };
        let doc: Value =
            serde_saphyr::from_str(text).map_err(|e| bad(&format!("not valid YAML: {e}")))?;
        if doc.get("kind").and_then(Value::as_str) != Some("ConfigManagementPlugin") {
            return Err(bad("expected kind ConfigManagementPlugin"));
        }
        let name = doc
            .pointer("/metadata/name")
            .and_then(Value::as_str)
            .ok_or_else(|| bad("metadata.name is required"))?;
        let name = match doc.pointer("/spec/version").and_then(Value::as_str) {
            Some(v) if !v.is_empty() => format!("{name}-{v}"),
            _ => name.to_string(),
        };
        let command = |ptr: &str| -> Option<Command> {
            let c = doc.pointer(ptr)?;
            let list = |k: &str| -> Vec<String> {
                c.get(k)
                    .and_then(Value::as_array)
                    .into_iter()
                    .flatten()
                    .filter_map(Value::as_str)
                    .map(str::to_string)
                    .collect()
            };
            Some(Command {
                command: list("command"),
                args: list("args"),
            })
        };
        let generate = command("/spec/generate")
            .filter(|c| !c.command.is_empty())
            .ok_or_else(|| bad("spec.generate.command is required"))?;
        Ok(Plugin {
            name,
            init: command("/spec/init").filter(|c| !c.command.is_empty()),
            generate,
            timeout: tool::DEFAULT_TIMEOUT,
        })
    }
}

/// A plugin parameter from the Application (`plugin.parameters`).
#[derive(Debug, Clone)]
pub enum Parameter {
    /// `string`.
    String(String, String),
    /// `array`.
    Array(String, Vec<String>),
    /// `map`.
    Map(String, Vec<(String, String)>),
}

/// What the plugin is told about the application.
#[derive(Debug, Clone, Default)]
pub struct Context {
    /// The Application's name.
    pub app_name: String,
    /// The destination namespace.
    pub namespace: String,
    /// The resolved commit SHA.
    pub revision: String,
    /// The source's `path`.
    pub source_path: String,
    /// The source's `repoURL`.
    pub repo_url: String,
    /// The source's `targetRevision`.
    pub target_revision: String,
    /// The destination's Kubernetes version.
    pub kube_version: String,
    /// The destination's API versions.
    pub api_versions: Vec<String>,
    /// `plugin.env` (names without the `ARGOCD_ENV_` prefix).
    pub env: Vec<(String, String)>,
    /// `plugin.parameters`.
    pub parameters: Vec<Parameter>,
}

/// `PARAM_` + the name upper-cased with anything else than letters and
/// digits turned into `_`, as Argo CD names parameter variables.
fn param_var(name: &str) -> String {
    let cleaned: String = name
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_ascii_uppercase()
            } else {
                '_'
            }
        })
        .collect();
    format!("PARAM_{cleaned}")
}

impl Context {
    fn environment(&self) -> Vec<(String, String)> {
        let short = |n: usize| self.revision.chars().take(n).collect::<String>();
        let mut env = vec![
            ("ARGOCD_APP_NAME".to_string(), self.app_name.clone()),
            ("ARGOCD_APP_NAMESPACE".into(), self.namespace.clone()),
            ("ARGOCD_APP_REVISION".into(), self.revision.clone()),
            ("ARGOCD_APP_REVISION_SHORT".into(), short(7)),
            ("ARGOCD_APP_REVISION_SHORT_8".into(), short(8)),
            ("ARGOCD_APP_SOURCE_PATH".into(), self.source_path.clone()),
            ("ARGOCD_APP_SOURCE_REPO_URL".into(), self.repo_url.clone()),
            (
                "ARGOCD_APP_SOURCE_TARGET_REVISION".into(),
                self.target_revision.clone(),
            ),
            ("KUBE_VERSION".into(), self.kube_version.clone()),
            ("KUBE_API_VERSIONS".into(), self.api_versions.join(",")),
        ];
        for (k, v) in &self.env {
            env.push((format!("ARGOCD_ENV_{k}"), v.clone()));
        }
        let mut all = Vec::new();
        for p in &self.parameters {
            match p {
                Parameter::String(name, value) => {
                    env.push((param_var(name), value.clone()));
                    all.push(json!({"name": name, "string": value}));
                }
                Parameter::Array(name, values) => {
                    for (i, v) in values.iter().enumerate() {
                        env.push((format!("{}_{i}", param_var(name)), v.clone()));
                    }
                    all.push(json!({"name": name, "array": values}));
                }
                Parameter::Map(name, entries) => {
                    let mut map = serde_json::Map::new();
                    for (k, v) in entries {
                        env.push((
                            format!(
                                "{}_{}",
                                param_var(name),
                                param_var(k).trim_start_matches("PARAM_")
                            ),
                            v.clone(),
                        ));
                        map.insert(k.clone(), Value::String(v.clone()));
                    }
                    all.push(json!({"name": name, "map": map}));
                }
            }
        }
        env.push((
            "ARGOCD_APP_PARAMETERS".into(),
            Value::Array(all).to_string(),
        ));
        env
    }
}

/// Runs the plugin for the application at `app_path` in `repo_root`.
pub fn render(
    repo_root: &Path,
    app_path: &str,
    plugin: &Plugin,
    context: &Context,
    work: &Path,
) -> Result<Vec<Value>, Error> {
    let io = |path: &Path| {
        let path = path.display().to_string();
        move |source| Error::Io { path, source }
    };
    let copy = work.join("src");
    let _ = std::fs::remove_dir_all(&copy);
    crate::kustomize::copy_writable(repo_root, &copy).map_err(io(&copy))?;
    let app_dir: PathBuf = copy.join(app_path);
    let home = work.join("home");
    std::fs::create_dir_all(&home).map_err(io(&home))?;
    let env = context.environment();
    let run = |step: &'static str, cmd: &Command| -> Result<Vec<u8>, Error> {
        let Some((program, first)) = cmd.command.split_first() else {
            return Err(Error::Declaration {
                name: plugin.name.clone(),
                reason: format!("{step}.command is empty"),
            });
        };
        let program = if program.contains('/') {
            PathBuf::from(program)
        } else {
            tool::find(program, None).map_err(|source| Error::Command {
                name: plugin.name.clone(),
                step,
                source,
            })?
        };
        let mut inv = Invocation::new(program, &app_dir)
            .args(first.iter().cloned())
            .args(cmd.args.iter().cloned());
        inv.env = env.clone();
        inv.timeout = plugin.timeout;
        inv.run(&home).map_err(|source| Error::Command {
            name: plugin.name.clone(),
            step,
            source,
        })
    };
    if let Some(init) = &plugin.init {
        run("init", init)?;
    }
    let out = run("generate", &plugin.generate)?;
    Ok(manifest::parse_stream(
        &format!("plugin {} output", plugin.name),
        &String::from_utf8_lossy(&out),
    )?)
}
