//! The render cache: results keyed by a hash of exactly what determines them
//! — the content of the files the renderer reads, the options, and the tool
//! version — so a commit that changes nothing an application reads is a hit.
//! Bounded by entry count (least recently used goes first); safe for
//! concurrent readers.

use std::collections::{BTreeSet, HashMap};
use std::path::{Component, Path, PathBuf};
use std::sync::{Arc, Mutex};

use serde_json::Value;
use sha2::{Digest, Sha256};

use crate::detect::KUSTOMIZATION_FILES;

/// A cache key: a SHA-256 of the inputs, in hex.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Key(pub String);

/// Builds a [`Key`] from the inputs of one render.
#[derive(Default)]
pub struct KeyBuilder {
    hasher: Sha256,
}

impl std::fmt::Debug for KeyBuilder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("KeyBuilder")
    }
}

impl KeyBuilder {
    /// Adds a labelled value (an option, a tool version).
    pub fn value(mut self, label: &str, value: &str) -> Self {
        for part in [label.as_bytes(), &[0], value.as_bytes(), &[0]] {
            self.hasher.update(part);
        }
        self
    }

    /// Adds every regular file and symbolic link under each of `dirs`
    /// (relative path, then content), in a stable order. Hidden directories
    /// (`.git`) are skipped.
    pub fn tree(mut self, root: &Path, dirs: &BTreeSet<PathBuf>) -> std::io::Result<Self> {
        let mut files = BTreeSet::new();
        for dir in dirs {
            collect(root, &root.join(dir), &mut files)?;
        }
        for rel in files {
            let path = root.join(&rel);
            self.hasher.update(rel.to_string_lossy().as_bytes());
            self.hasher.update([0]);
            let meta = std::fs::symlink_metadata(&path)?;
            if meta.file_type().is_symlink() {
                self.hasher.update(b"link:");
                self.hasher
                    .update(std::fs::read_link(&path)?.to_string_lossy().as_bytes());
            } else {
                self.hasher.update(std::fs::read(&path)?);
            }
            self.hasher.update([0]);
        }
        Ok(self)
    }

    /// The key.
    pub fn finish(self) -> Key {
        Key(self
            .hasher
            .finalize()
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect())
    }
}

fn collect(root: &Path, dir: &Path, out: &mut BTreeSet<PathBuf>) -> std::io::Result<()> {
    let entries = match std::fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(e),
    };
    for entry in entries {
        let entry = entry?;
        let path = entry.path();
        let kind = entry.file_type()?;
        if kind.is_dir() {
            if !entry.file_name().to_string_lossy().starts_with('.') {
                collect(root, &path, out)?;
            }
        } else {
            out.insert(path.strip_prefix(root).unwrap_or(&path).to_path_buf());
        }
    }
    Ok(())
}

/// The directories a Kustomize application at `app` reads: its own, and
/// every local directory its kustomization files reach through
/// `resources`, `bases`, `components` and file references, followed
/// transitively. Paths are relative to `root`; anything that cannot be
/// followed (a remote base) is left out, as it is not part of the source.
pub fn kustomize_dirs(root: &Path, app: &Path) -> BTreeSet<PathBuf> {
    let mut seen = BTreeSet::new();
    let mut todo = vec![normalize(app)];
    while let Some(dir) = todo.pop() {
        let Some(dir) = dir else { continue };
        if !seen.insert(dir.clone()) {
            continue;
        }
        let Some(text) = KUSTOMIZATION_FILES
            .iter()
            .find_map(|f| std::fs::read_to_string(root.join(&dir).join(f)).ok())
        else {
            continue;
        };
        let Ok(doc) = serde_saphyr::from_str::<Value>(&text) else {
            continue;
        };
        let mut refs = Vec::new();
        for field in [
            "resources",
            "bases",
            "components",
            "crds",
            "patchesStrategicMerge",
        ] {
            refs.extend(
                doc.get(field)
                    .and_then(Value::as_array)
                    .into_iter()
                    .flatten()
                    .filter_map(Value::as_str)
                    .map(str::to_string),
            );
        }
        for patch in doc
            .get("patches")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            if let Some(p) = patch.get("path").and_then(Value::as_str) {
                refs.push(p.to_string());
            }
        }
        for r in refs {
            if r.contains("://") || r.starts_with("github.com/") || r.contains("?ref=") {
                continue;
            }
            let target = dir.join(&r);
            if root.join(&target).is_dir() {
                todo.push(normalize(&target));
            } else if let Some(parent) = target.parent() {
                // A file elsewhere (say ../shared/patch.yaml): its directory.
                todo.push(normalize(parent));
            }
        }
    }
    seen
}

/// The directories a Helm chart at `chart` reads inside its repository: the
/// chart's own, and those of its value and file-parameter files (paths
/// relative to the chart; `$ref/...` files of other sources and URLs are the
/// caller's to add).
pub fn helm_dirs(chart: &Path, files: &[String]) -> BTreeSet<PathBuf> {
    let mut dirs: BTreeSet<PathBuf> = normalize(chart).into_iter().collect();
    for f in files {
        if f.starts_with('$') || f.contains("://") {
            continue;
        }
        if let Some(parent) = Path::new(f).parent()
            && let Some(dir) = normalize(&chart.join(parent))
        {
            dirs.insert(dir);
        }
    }
    // A directory inside another one adds nothing.
    let all: Vec<PathBuf> = dirs.iter().cloned().collect();
    dirs.retain(|d| !all.iter().any(|o| o != d && d.starts_with(o)));
    dirs
}

/// `a/b/../c` → `a/c`; None if it climbs above the root.
fn normalize(p: &Path) -> Option<PathBuf> {
    let mut out = PathBuf::new();
    for c in p.components() {
        match c {
            Component::Normal(n) => out.push(n),
            Component::ParentDir if !out.pop() => {
                return None;
            }
            _ => {}
        }
    }
    Some(out)
}

struct Entry {
    objects: Arc<Vec<Value>>,
    used: u64,
}

/// A bounded, shared cache of render results.
pub struct RenderCache {
    capacity: usize,
    inner: Mutex<(HashMap<Key, Entry>, u64)>,
}

impl std::fmt::Debug for RenderCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RenderCache")
            .field("capacity", &self.capacity)
            .finish()
    }
}

impl RenderCache {
    /// A cache holding at most `capacity` results.
    pub fn new(capacity: usize) -> Self {
        RenderCache {
            capacity: capacity.max(1),
            inner: Mutex::new((HashMap::new(), 0)),
        }
    }

    /// The cached result for `key`, if any.
    pub fn get(&self, key: &Key) -> Option<Arc<Vec<Value>>> {
        let mut guard = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        let (map, clock) = &mut *guard;
        *clock += 1;
        let now = *clock;
        map.get_mut(key).map(|e| {
            e.used = now;
            e.objects.clone()
        })
    }

    /// Stores a result, evicting the least recently used one when full.
    pub fn put(&self, key: Key, objects: Vec<Value>) -> Arc<Vec<Value>> {
        let objects = Arc::new(objects);
        let mut guard = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        let (map, clock) = &mut *guard;
        *clock += 1;
        if map.len() >= self.capacity
            && !map.contains_key(&key)
            && let Some(oldest) = map
                .iter()
                .min_by_key(|(_, e)| e.used)
                .map(|(k, _)| k.clone())
        {
            map.remove(&oldest);
        }
        map.insert(
            key,
            Entry {
                objects: objects.clone(),
                used: *clock,
            },
        );
        objects
    }

    /// Returns the cached result or renders, stores and returns it. With
    /// `refresh` (a hard refresh) the cache is bypassed and overwritten.
    pub fn get_or_render<E>(
        &self,
        key: Key,
        refresh: bool,
        render: impl FnOnce() -> Result<Vec<Value>, E>,
    ) -> Result<Arc<Vec<Value>>, E> {
        if !refresh && let Some(hit) = self.get(&key) {
            return Ok(hit);
        }
        Ok(self.put(key, render()?))
    }

    /// How many results are held.
    pub fn len(&self) -> usize {
        self.inner.lock().unwrap_or_else(|p| p.into_inner()).0.len()
    }

    /// Whether nothing is held.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(root: &Path, files: &[(&str, &str)]) {
        for (p, c) in files {
            let p = root.join(p);
            std::fs::create_dir_all(p.parent().unwrap()).unwrap();
            std::fs::write(p, c).unwrap();
        }
    }

    fn tmp(name: &str) -> PathBuf {
        let d =
            std::env::temp_dir().join(format!("berth-cache-test-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).unwrap();
        d
    }

    #[test]
    fn kustomize_dirs_follow_local_references_only() {
        let root = tmp("kdirs");
        write(
            &root,
            &[
                (
                    "base/kustomization.yaml",
                    "resources: [deploy.yaml, https://example.com/remote.yaml]\n",
                ),
                ("base/deploy.yaml", "x"),
                ("components/mon/kustomization.yaml", "resources: []\n"),
                ("shared/patch.yaml", "x"),
                (
                    "overlays/prod/kustomization.yaml",
                    "resources: [../../base]\ncomponents: [../../components/mon]\npatches:\n- path: ../../shared/patch.yaml\n",
                ),
                ("unrelated/kustomization.yaml", "resources: []\n"),
            ],
        );
        let dirs = kustomize_dirs(&root, Path::new("overlays/prod"));
        let got: Vec<_> = dirs.iter().map(|d| d.display().to_string()).collect();
        assert_eq!(got, ["base", "components/mon", "overlays/prod", "shared"]);
        let _ = std::fs::remove_dir_all(&root);
    }

    #[test]
    fn helm_dirs_cover_the_chart_and_its_value_files() {
        let dirs = helm_dirs(
            Path::new("charts/shop"),
            &[
                "values-prod.yaml".into(),
                "../../envs/prod/values.yaml".into(),
                "$values/x.yaml".into(),
                "https://example.com/v.yaml".into(),
            ],
        );
        let got: Vec<_> = dirs.iter().map(|d| d.display().to_string()).collect();
        assert_eq!(got, ["charts/shop", "envs/prod"]);
    }

    #[test]
    fn keys_change_with_content_and_options_only() {
        let root = tmp("keys");
        write(&root, &[("app/a.yaml", "a"), ("other/b.yaml", "b")]);
        let dirs: BTreeSet<PathBuf> = [PathBuf::from("app")].into();
        let key = || {
            KeyBuilder::default()
                .value("type", "directory")
                .tree(&root, &dirs)
                .unwrap()
                .finish()
        };
        let k1 = key();
        write(&root, &[("other/b.yaml", "changed elsewhere")]);
        assert_eq!(key(), k1, "a change outside the app's files is a hit");
        write(&root, &[("app/a.yaml", "changed")]);
        let k2 = key();
        assert_ne!(k2, k1);
        let with_option = KeyBuilder::default()
            .value("type", "kustomize")
            .tree(&root, &dirs)
            .unwrap()
            .finish();
        assert_ne!(with_option, k2);
        let _ = std::fs::remove_dir_all(&root);
    }

    #[test]
    fn lru_eviction_and_hard_refresh() {
        let cache = RenderCache::new(2);
        let k = |s: &str| Key(s.into());
        cache.put(k("a"), vec![]);
        cache.put(k("b"), vec![]);
        cache.get(&k("a"));
        cache.put(k("c"), vec![]);
        assert!(
            cache.get(&k("b")).is_none(),
            "least recently used went first"
        );
        assert!(cache.get(&k("a")).is_some());
        let mut renders = 0;
        for refresh in [false, false, true] {
            cache
                .get_or_render::<()>(k("d"), refresh, || {
                    renders += 1;
                    Ok(vec![Value::Null])
                })
                .unwrap();
        }
        assert_eq!(renders, 2, "one miss, one hit, one hard refresh");
        assert_eq!(cache.len(), 2);
    }
}
