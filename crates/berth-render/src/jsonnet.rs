//! Jsonnet, evaluated natively (jrsonnet) for directory sources with
//! `directory.jsonnet` options: top-level arguments, external variables and
//! library paths. Imports are confined to the repository: an import that
//! resolves outside it (absolute paths, `..`, symbolic links) is refused, and
//! only regular files can be read. Recursion is bounded by a stack limit.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use jrsonnet_evaluator::trace::{CompactFormat, PathResolver, TraceFormat};
use jrsonnet_evaluator::{
    AsPathLike, IStr, ImportResolver, SourcePath, State, apply_tla, manifest::JsonFormat,
    stack::limit_stack_depth, tla::TlaArg,
};
use jrsonnet_ir::{SourceFifo, SourceFile};
use serde_json::Value;

/// Why a Jsonnet file could not be evaluated.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    /// Evaluation failed; the message carries file, line and column.
    #[error("{file}: {message}")]
    Evaluation {
        /// The file, relative to the repository.
        file: String,
        /// jrsonnet's explanation, with repository paths made relative.
        message: String,
    },
    /// Evaluation ran longer than allowed. (It goes on in the background
    /// until it finishes: only a separate process could stop it.)
    #[error("{file}: evaluation did not finish within {limit:?}")]
    Timeout {
        /// The file.
        file: String,
        /// The limit.
        limit: std::time::Duration,
    },
    /// The result is not a Kubernetes object or a list of them.
    #[error("{file}: the result must be an object or an array of objects, not {found}")]
    Shape {
        /// The file.
        file: String,
        /// What it evaluated to.
        found: String,
    },
}

/// A top-level argument or external variable.
#[derive(Debug, Clone)]
pub struct Var {
    /// Its name.
    pub name: String,
    /// Its value: a string, or Jsonnet code when `code` is set.
    pub value: String,
    /// Whether `value` is Jsonnet code.
    pub code: bool,
}

/// Argo CD's `directory.jsonnet` options.
#[derive(Debug, Clone, Default)]
pub struct JsonnetOptions {
    /// `tlas`.
    pub tlas: Vec<Var>,
    /// `extVars`.
    pub ext_vars: Vec<Var>,
    /// `libs`: library directories, relative to the repository root.
    pub libs: Vec<String>,
}

/// Stack depth allowed to a program (function calls deep).
const MAX_STACK: usize = 500;

#[derive(jrsonnet_gcmodule::Acyclic)]
struct ConfinedResolver {
    base: PathBuf,
    libs: Vec<PathBuf>,
    root: PathBuf,
}

impl ConfinedResolver {
    fn check(&self, p: &Path) -> jrsonnet_evaluator::Result<Option<SourcePath>> {
        let real = match std::fs::canonicalize(p) {
            Ok(c) => c,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => jrsonnet_evaluator::bail!(jrsonnet_evaluator::ImportIo(e.to_string())),
        };
        if !real.starts_with(&self.root) {
            jrsonnet_evaluator::bail!(jrsonnet_evaluator::RuntimeError(
                format!(
                    "import of {} refused: it leaves the repository",
                    p.display()
                )
                .into()
            ));
        }
        if !real.is_file() {
            jrsonnet_evaluator::bail!(jrsonnet_evaluator::RuntimeError(
                format!("import of {} refused: not a regular file", p.display()).into()
            ));
        }
        Ok(Some(SourcePath::new(SourceFile::new(real))))
    }
}

impl ImportResolver for ConfinedResolver {
    fn resolve_from(
        &self,
        from: &SourcePath,
        path: &dyn AsPathLike,
    ) -> jrsonnet_evaluator::Result<SourcePath> {
        let requested = path.as_path();
        let rel: &Path = requested.as_ref();
        let dir = if let Some(f) = from.downcast_ref::<SourceFile>() {
            f.path()
                .parent()
                .map(Path::to_path_buf)
                .unwrap_or_else(|| self.base.clone())
        } else {
            self.base.clone()
        };
        for d in std::iter::once(&dir).chain(self.libs.iter()) {
            if let Some(found) = self.check(&d.join(rel))? {
                return Ok(found);
            }
        }
        jrsonnet_evaluator::bail!(jrsonnet_evaluator::ImportFileNotFound(
            from.clone(),
            path.as_path().to_owned()
        ))
    }

    fn load_file_contents(&self, id: &SourcePath) -> jrsonnet_evaluator::Result<Vec<u8>> {
        if let Some(f) = id.downcast_ref::<SourceFile>() {
            return std::fs::read(f.path()).map_err(|e| {
                jrsonnet_evaluator::Error::from(jrsonnet_evaluator::ImportIo(e.to_string()))
            });
        }
        if let Some(f) = id.downcast_ref::<SourceFifo>() {
            return Ok(f.1.to_vec());
        }
        jrsonnet_evaluator::bail!(jrsonnet_evaluator::ResolvedFileNotFound(id.clone()))
    }
}

/// Evaluates `file` (inside `root`) and returns the objects it declares,
/// on a thread of its own with a large stack, waiting at most `timeout`.
pub fn evaluate(
    root: &Path,
    file: &Path,
    options: &JsonnetOptions,
    timeout: std::time::Duration,
) -> Result<Vec<Value>, Error> {
    let (tx, rx) = std::sync::mpsc::channel();
    let (root_owned, file_owned, opts) = (root.to_path_buf(), file.to_path_buf(), options.clone());
    let rel = file
        .strip_prefix(root)
        .unwrap_or(file)
        .display()
        .to_string();
    let spawned = std::thread::Builder::new()
        .name("jsonnet".into())
        .stack_size(256 << 20)
        .spawn(move || {
            let _ = tx.send(evaluate_here(&root_owned, &file_owned, &opts));
        });
    if let Err(e) = spawned {
        return Err(Error::Evaluation {
            file: rel,
            message: format!("could not start the evaluator: {e}"),
        });
    }
    match rx.recv_timeout(timeout) {
        Ok(result) => result,
        Err(std::sync::mpsc::RecvTimeoutError::Timeout) => Err(Error::Timeout {
            file: rel,
            limit: timeout,
        }),
        Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => Err(Error::Evaluation {
            file: rel,
            message: "the evaluator stopped unexpectedly".into(),
        }),
    }
}

fn evaluate_here(root: &Path, file: &Path, options: &JsonnetOptions) -> Result<Vec<Value>, Error> {
    let root = root.canonicalize().unwrap_or_else(|_| root.to_path_buf());
    let rel = file
        .strip_prefix(&root)
        .unwrap_or(file)
        .display()
        .to_string();
    let fail = |message: String| Error::Evaluation {
        file: rel.clone(),
        message: message.replace(&format!("{}/", root.display()), ""),
    };
    let format = |e: &jrsonnet_evaluator::Error| {
        let f = CompactFormat {
            resolver: PathResolver::Absolute,
            max_trace: 20,
            padding: 4,
        };
        f.format(e).unwrap_or_else(|_| e.to_string())
    };
    let std_ctx = jrsonnet_stdlib::ContextInitializer::new(PathResolver::Absolute);
    for v in &options.ext_vars {
        if v.code {
            std_ctx
                .add_ext_code(&v.name, v.value.as_str())
                .map_err(|e| fail(format(&e)))?;
        } else {
            std_ctx.add_ext_str(v.name.as_str().into(), v.value.as_str().into());
        }
    }
    let resolver = ConfinedResolver {
        base: file
            .parent()
            .map(Path::to_path_buf)
            .unwrap_or_else(|| root.clone()),
        libs: options.libs.iter().map(|l| root.join(l)).collect(),
        root: root.clone(),
    };
    let mut builder = State::builder();
    builder
        .import_resolver(resolver)
        .context_initializer(std_ctx);
    let state = builder.build();
    let Some(_entered) = state.try_enter() else {
        return Err(fail(
            "another Jsonnet evaluation is running on this thread".into(),
        ));
    };
    let _depth = limit_stack_depth(MAX_STACK);
    // IStr is an interned string: its hash never changes.
    #[allow(clippy::mutable_key_type)]
    let mut tlas: HashMap<IStr, TlaArg> = HashMap::new();
    for v in &options.tlas {
        let arg = if v.code {
            TlaArg::InlineCode(v.value.clone())
        } else {
            TlaArg::String(v.value.as_str().into())
        };
        tlas.insert(v.name.as_str().into(), arg);
    }
    let real = file.canonicalize().unwrap_or_else(|_| file.to_path_buf());
    let val = state.import(real.as_path()).map_err(|e| fail(format(&e)))?;
    let val = apply_tla(&tlas, val).map_err(|e| fail(format(&e)))?;
    let json = val
        .manifest(JsonFormat::minify())
        .map_err(|e| fail(format(&e)))?;
    let value: Value = serde_json::from_str(&json).map_err(|e| fail(e.to_string()))?;
    let shape = |found: &str| Error::Shape {
        file: rel.clone(),
        found: found.to_string(),
    };
    match value {
        Value::Array(items) => {
            if items.iter().any(|i| !i.is_object()) {
                return Err(shape("an array holding something else than objects"));
            }
            Ok(items)
        }
        Value::Object(_) => Ok(vec![value]),
        Value::Null => Ok(Vec::new()),
        Value::String(_) => Err(shape("a string")),
        Value::Number(_) => Err(shape("a number")),
        Value::Bool(_) => Err(shape("a boolean")),
    }
}
