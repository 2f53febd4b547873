//! Directories of plain manifests (`.yaml`, `.yml`, `.json`).

use std::path::Path;

use globset::{Glob, GlobMatcher};
use serde_json::Value;

use crate::manifest;

/// Why a directory could not be rendered.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A manifest could not be parsed.
    #[error(transparent)]
    Manifest(#[from] manifest::Error),
    /// An include or exclude pattern is not a valid glob.
    #[error("directory.{field}: {pattern:?} is not a valid glob pattern: {reason}")]
    Pattern {
        /// `include` or `exclude`.
        field: &'static str,
        /// The pattern.
        pattern: String,
        /// Why.
        reason: String,
    },
    /// A Jsonnet file failed to evaluate.
    #[error(transparent)]
    Jsonnet(#[from] crate::jsonnet::Error),
    /// A file could not be read.
    #[error("{file}: {source}")]
    Read {
        /// The file, relative to the source root.
        file: String,
        /// Why.
        #[source]
        source: std::io::Error,
    },
}

/// Argo CD's `spec.source.directory` options.
#[derive(Debug, Clone, Default)]
pub struct DirectoryOptions {
    /// Read subdirectories too.
    pub recurse: bool,
    /// Only files matching this glob (relative path; `{a,b}` alternatives allowed).
    pub include: Option<String>,
    /// Skip files matching this glob.
    pub exclude: Option<String>,
    /// `directory.jsonnet`: for `.jsonnet` files.
    pub jsonnet: crate::jsonnet::JsonnetOptions,
    /// The repository root, which Jsonnet imports may not leave and
    /// `jsonnet.libs` are relative to (default: the directory itself).
    pub repo_root: Option<std::path::PathBuf>,
}

fn matcher(field: &'static str, pattern: &Option<String>) -> Result<Option<GlobMatcher>, Error> {
    match pattern.as_deref().map(str::trim).filter(|p| !p.is_empty()) {
        None => Ok(None),
        Some(p) => Glob::new(p)
            .map(|g| Some(g.compile_matcher()))
            .map_err(|e| Error::Pattern {
                field,
                pattern: p.to_string(),
                reason: e.kind().to_string(),
            }),
    }
}

/// Reads every manifest under `root`, files in path order, documents in
/// file order.
pub fn render(root: &Path, options: &DirectoryOptions) -> Result<Vec<Value>, Error> {
    let include = matcher("include", &options.include)?;
    let exclude = matcher("exclude", &options.exclude)?;
    let mut files = Vec::new();
    walk(root, root, options.recurse, &mut files)?;
    files.sort();
    let mut objects = Vec::new();
    for rel in files {
        // Argo CD matches patterns against the path and against the name.
        let name = rel.rsplit('/').next().unwrap_or(&rel).to_string();
        let hit = |m: &GlobMatcher| m.is_match(&rel) || m.is_match(&name);
        if include.as_ref().is_some_and(|m| !hit(m)) || exclude.as_ref().is_some_and(hit) {
            continue;
        }
        if rel.ends_with(".jsonnet") {
            let repo_root = options.repo_root.as_deref().unwrap_or(root);
            objects.extend(crate::jsonnet::evaluate(
                repo_root,
                &root.join(&rel),
                &options.jsonnet,
                crate::tool::DEFAULT_TIMEOUT,
            )?);
            continue;
        }
        let text = std::fs::read_to_string(root.join(&rel)).map_err(|source| Error::Read {
            file: rel.clone(),
            source,
        })?;
        objects.extend(manifest::parse_stream(&rel, &text)?);
    }
    Ok(objects)
}

fn walk(root: &Path, dir: &Path, recurse: bool, out: &mut Vec<String>) -> Result<(), Error> {
    let rel_of = |p: &Path| {
        p.strip_prefix(root)
            .unwrap_or(p)
            .to_string_lossy()
            .replace('\\', "/")
    };
    let entries = std::fs::read_dir(dir).map_err(|source| Error::Read {
        file: rel_of(dir),
        source,
    })?;
    for entry in entries.flatten() {
        let path = entry.path();
        let name = entry.file_name().to_string_lossy().to_string();
        // Follows symbolic links (the source layer has already refused any
        // that leave the checkout), but never into a directory twice.
        let Ok(meta) = std::fs::metadata(&path) else {
            continue;
        };
        if meta.is_dir() {
            if recurse && !name.starts_with('.') && !entry.file_type().is_ok_and(|t| t.is_symlink())
            {
                walk(root, &path, recurse, out)?;
            }
        } else if [".yaml", ".yml", ".json", ".jsonnet"]
            .iter()
            .any(|ext| name.ends_with(ext))
        {
            out.push(rel_of(&path));
        }
    }
    Ok(())
}
