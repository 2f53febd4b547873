//! The repository cache: one bare repository on disk per repository (see
//! [`RepoUrl::cache_key`]), fetched with gix and read without a working
//! tree.
//!
//! Every call is blocking (gix's network client is); the controller runs them
//! on blocking threads. Calls on different repositories never wait for each
//! other: each repository has its own lock, taken exclusively to fetch and
//! shared to read.
//!
//! Credentials are used for one call and never stored: HTTPS credentials are
//! handed to gix in memory; an SSH key is written to a private file for the
//! one `ssh` process that needs it and removed afterwards.

use std::collections::{BTreeMap, HashMap};
use std::fs;
use std::io::Write;
use std::path::{Component, Path, PathBuf};
use std::sync::atomic::AtomicBool;
use std::sync::{Arc, Mutex, RwLock};

use crate::creds::Credentials;
use crate::revision::{self, RemoteRef, Resolution, Resolved, RevisionKind};
use crate::url::{self as repo_url, RepoUrl, Transport};

/// Why a repository operation failed. Messages name the repository by its
/// URL without credentials, and say what to check.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The URL is not valid.
    #[error(transparent)]
    Url(#[from] repo_url::Error),
    /// The server refused the credentials (or asked for some and none were given).
    #[error(
        "authentication to {url} failed: check the credentials in the repository Secret for this URL"
    )]
    Auth {
        /// The repository.
        url: String,
    },
    /// A network or protocol operation failed.
    #[error("{operation} {url}: {message}")]
    Remote {
        /// What was being done.
        operation: &'static str,
        /// The repository.
        url: String,
        /// gix's explanation, with any credentials removed.
        message: String,
    },
    /// The revision could not be resolved.
    #[error("{url}: {source}")]
    Revision {
        /// The repository.
        url: String,
        /// Why.
        #[source]
        source: revision::Error,
    },
    /// The revision resolved to a commit the server did not send.
    #[error(
        "{url}: commit {sha} is not in the repository (was the branch force-pushed or the commit deleted?)"
    )]
    MissingCommit {
        /// The repository.
        url: String,
        /// The commit.
        sha: String,
    },
    /// A path that leaves the repository, or is not what was expected.
    #[error("{url} at {commit}: path {path:?} {reason}")]
    Path {
        /// The repository.
        url: String,
        /// The commit.
        commit: String,
        /// The path as given or found.
        path: String,
        /// What is wrong with it.
        reason: String,
    },
    /// Reading the local cache failed.
    #[error("repository cache for {url}: {message}")]
    Cache {
        /// The repository.
        url: String,
        /// What failed.
        message: String,
    },
    /// A file operation on the cache directory failed.
    #[error("{context}: {source}")]
    Io {
        /// What was being done.
        context: String,
        /// Why.
        #[source]
        source: std::io::Error,
    },
}

/// Result with this module's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

fn io(context: impl Into<String>) -> impl FnOnce(std::io::Error) -> Error {
    let context = context.into();
    move |source| Error::Io { context, source }
}

/// Settings of the cache.
#[derive(Debug, Clone, Default)]
pub struct CacheOptions {
    /// `known_hosts` file for SSH host-key checking (Argo CD keeps it in
    /// the `argocd-ssh-known-hosts-cm` ConfigMap). Without one, SSH
    /// connections fail unless the credentials say `insecure`.
    pub known_hosts: Option<PathBuf>,
    /// Extra CA certificates (PEM) trusted for HTTPS, per host name (Argo CD
    /// keeps them in the `argocd-tls-certs-cm` ConfigMap, one key per host).
    pub tls_certs: std::collections::HashMap<String, String>,
}

/// Who and what a commit is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CommitInfo {
    /// Full SHA.
    pub sha: String,
    /// `Name <email>` of the author.
    pub author: String,
    /// `Name <email>` of the committer.
    pub committer: String,
    /// Commit time, seconds since the epoch.
    pub time: i64,
    /// The whole message.
    pub message: String,
    /// The signature header (`gpgsig`), armored, if the commit is signed.
    pub signature: Option<String>,
    /// The bytes the signature signs: the commit without its signature header.
    pub signed_payload: Option<Vec<u8>>,
}

/// An annotated tag.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TagInfo {
    /// The tag's name (without `refs/tags/`).
    pub name: String,
    /// The tag object's SHA.
    pub sha: String,
    /// The tag's signature block, armored, if it is signed.
    pub signature: Option<String>,
    /// The bytes the signature signs: the tag object before its signature.
    pub signed_payload: Option<Vec<u8>>,
}

/// A resolved revision with its commit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Revision {
    /// How the revision was resolved.
    pub resolved: Resolved,
    /// The commit.
    pub commit: CommitInfo,
    /// The annotated tag the revision went through, if it did.
    pub tag: Option<TagInfo>,
}

/// A file in a tree.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileEntry {
    /// Path relative to the directory listed.
    pub path: String,
    /// Blob id.
    pub oid: String,
    /// What it is.
    pub kind: EntryKind,
}

/// The kind of a tree entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EntryKind {
    /// A regular file.
    File,
    /// An executable file.
    Executable,
    /// A symbolic link (its blob is the target).
    Symlink,
    /// A submodule (a commit of another repository); its content is not here.
    Submodule,
}

/// What a fetch changed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FetchOutcome {
    /// Refs created or moved.
    pub updated: Vec<String>,
    /// Refs deleted because the remote no longer has them.
    pub pruned: Vec<String>,
}

/// The cache of bare repositories under one directory.
#[derive(Debug)]
pub struct RepoCache {
    root: PathBuf,
    options: CacheOptions,
    locks: Mutex<HashMap<String, Arc<RwLock<()>>>>,
}

const READY_MARKER: &str = "berth-ready";

impl RepoCache {
    /// Opens (creating it if needed) a cache under `root`.
    pub fn new(root: impl Into<PathBuf>, options: CacheOptions) -> Result<RepoCache> {
        let root = root.into();
        for sub in ["repos", "trees", "tmp"] {
            fs::create_dir_all(root.join(sub))
                .map_err(io(format!("create {}", root.join(sub).display())))?;
        }
        Ok(RepoCache {
            root,
            options,
            locks: Mutex::new(HashMap::new()),
        })
    }

    fn lock_for(&self, key: &str) -> Arc<RwLock<()>> {
        let mut locks = self.locks.lock().unwrap_or_else(|p| p.into_inner());
        locks.entry(key.to_string()).or_default().clone()
    }

    /// Where the bare repository for `url` lives.
    pub fn repo_dir(&self, url: &RepoUrl) -> PathBuf {
        self.root.join("repos").join(dir_name(&url.cache_key()))
    }

    /// Lists the remote's refs without fetching anything (`git ls-remote`).
    pub fn ls_remote(&self, url: &str, creds: Option<&Credentials>) -> Result<Vec<RemoteRef>> {
        let started = std::time::Instant::now();
        let result = self.ls_remote_timed(url, creds);
        crate::metrics::record(url, "ls-remote", started.elapsed(), result.is_ok());
        result
    }

    fn ls_remote_timed(&self, url: &str, creds: Option<&Credentials>) -> Result<Vec<RemoteRef>> {
        let url = RepoUrl::parse(url)?;
        let lock = self.lock_for(&url.cache_key());
        self.ensure_ready(&url, &lock)?;
        let _shared = lock.read().unwrap_or_else(|p| p.into_inner());
        let repo = self.open(&url)?;
        let session = Session::new(&self.root, &url, creds, &self.options)?;
        let repo = session.configure(repo, &url)?;
        let remote = repo
            .remote_at(url.for_git().as_str())
            .map_err(|e| session.error("connect to", &url, &e))?;
        let connection = remote
            .connect(gix::remote::Direction::Fetch)
            .map_err(|e| session.error("connect to", &url, &e))?;
        let connection = session.authenticate(connection, &repo, &url)?;
        let (map, _) = connection
            .ref_map(
                gix::progress::Discard,
                gix::remote::ref_map::Options {
                    prefix_from_spec_as_filter_on_remote: false,
                    ..Default::default()
                },
            )
            .map_err(|e| session.error("list refs of", &url, &e))?;
        Ok(map.remote_refs.iter().filter_map(to_remote_ref).collect())
    }

    /// Fetches every branch and tag into the cache (force-pushed branches
    /// included) and deletes local refs the remote no longer has.
    pub fn fetch(&self, url: &str, creds: Option<&Credentials>) -> Result<FetchOutcome> {
        let url = RepoUrl::parse(url)?;
        let (outcome, _) = self.fetch_if(&url, creds, |_, _| true)?;
        Ok(outcome.unwrap_or_default())
    }

    /// One connection: lists the remote's refs, shows them (and the local
    /// repository) to `decide`, and fetches only if it says so. Resolving a
    /// revision this way costs one round of requests, not two.
    fn fetch_if(
        &self,
        url: &RepoUrl,
        creds: Option<&Credentials>,
        decide: impl FnOnce(&gix::Repository, &[RemoteRef]) -> bool,
    ) -> Result<(Option<FetchOutcome>, Vec<RemoteRef>)> {
        let started = std::time::Instant::now();
        let result = self.fetch_if_timed(url, creds, decide);
        crate::metrics::record(&url.to_string(), "fetch", started.elapsed(), result.is_ok());
        result
    }

    fn fetch_if_timed(
        &self,
        url: &RepoUrl,
        creds: Option<&Credentials>,
        decide: impl FnOnce(&gix::Repository, &[RemoteRef]) -> bool,
    ) -> Result<(Option<FetchOutcome>, Vec<RemoteRef>)> {
        let lock = self.lock_for(&url.cache_key());
        let _exclusive = lock.write().unwrap_or_else(|p| p.into_inner());
        remove_stale_locks(&self.repo_dir(url));
        let repo = self.open_exclusive(url)?;
        let session = Session::new(&self.root, url, creds, &self.options)?;
        let repo = session.configure(repo, url)?;
        let remote = repo
            .remote_at(url.for_git().as_str())
            .map_err(|e| session.error("connect to", url, &e))?
            .with_refspecs(
                ["+refs/heads/*:refs/heads/*", "+refs/tags/*:refs/tags/*"],
                gix::remote::Direction::Fetch,
            )
            .map_err(|e| session.error("fetch", url, &e))?
            .with_fetch_tags(gix::remote::fetch::Tags::None);
        let connection = remote
            .connect(gix::remote::Direction::Fetch)
            .map_err(|e| session.error("connect to", url, &e))?;
        let connection = session.authenticate(connection, &repo, url)?;
        // All refs, HEAD included: the revision may name any of them.
        let options = gix::remote::ref_map::Options {
            prefix_from_spec_as_filter_on_remote: false,
            ..Default::default()
        };
        let prepare = connection
            .prepare_fetch(gix::progress::Discard, options)
            .map_err(|e| session.error("fetch", url, &e))?;
        let refs: Vec<RemoteRef> = prepare
            .ref_map()
            .remote_refs
            .iter()
            .filter_map(to_remote_ref)
            .collect();
        if !decide(&repo, &refs) {
            return Ok((None, refs));
        }
        let interrupt = AtomicBool::new(false);
        let outcome = prepare
            .receive(gix::progress::Discard, &interrupt)
            .map_err(|e| session.error("fetch", url, &e))?;

        let mut result = FetchOutcome::default();
        let update_refs = match &outcome.status {
            gix::remote::fetch::Status::Change { update_refs, .. }
            | gix::remote::fetch::Status::NoPackReceived { update_refs, .. } => update_refs,
        };
        for (update, edit) in update_refs.updates.iter().zip(update_refs.edits.iter()) {
            use gix::remote::fetch::refs::update::Mode;
            if matches!(update.mode, Mode::New | Mode::FastForward | Mode::Forced) {
                result.updated.push(edit.name.as_bstr().to_string());
            }
        }
        // gix does not prune: delete what the remote no longer advertises.
        let advertised: std::collections::HashSet<&str> =
            refs.iter().map(|r| r.name.as_str()).collect();
        let local: Vec<String> = repo
            .references()
            .map_err(|e| cache_error(url, &e))?
            .all()
            .map_err(|e| cache_error(url, &e))?
            .filter_map(|r| r.ok())
            .map(|r| r.name().as_bstr().to_string())
            .filter(|n| n.starts_with("refs/heads/") || n.starts_with("refs/tags/"))
            .collect();
        for name in local {
            if !advertised.contains(name.as_str())
                && let Ok(reference) = repo.find_reference(name.as_str())
            {
                reference.delete().map_err(|e| cache_error(url, &e))?;
                result.pruned.push(name);
            }
        }
        Ok((Some(result), refs))
    }

    /// Resolves `revision` (Argo CD's `targetRevision`) to a commit, fetching
    /// in the same connection when the cache does not have it yet.
    pub fn resolve(
        &self,
        url: &str,
        creds: Option<&Credentials>,
        revision: &str,
        tag_prefix: &str,
    ) -> Result<Revision> {
        let parsed = RepoUrl::parse(url)?;
        let mut resolution = None;
        self.fetch_if(&parsed, creds, |repo, refs| {
            let r = revision::resolve(revision, refs, tag_prefix);
            let needed = match &r {
                Ok(Resolution::Resolved(found)) => !repo_has_commit(repo, &found.sha),
                Ok(Resolution::ShortSha(prefix)) => expand_in(repo, prefix).is_none(),
                Err(_) => false,
            };
            resolution = Some(r);
            needed
        })?;
        let not_found = || Error::Revision {
            url: parsed.to_string(),
            source: revision::Error::NotFound {
                revision: revision.to_string(),
            },
        };
        let resolution = resolution
            .ok_or_else(not_found)?
            .map_err(|source| Error::Revision {
                url: parsed.to_string(),
                source,
            })?;
        let resolved = match resolution {
            Resolution::Resolved(r) => r,
            Resolution::ShortSha(prefix) => {
                let sha = self
                    .with_repo(&parsed, |repo| Ok(expand_in(repo, &prefix)))?
                    .ok_or_else(not_found)?;
                Resolved {
                    sha,
                    ref_name: None,
                    kind: RevisionKind::Commit,
                }
            }
        };
        // The commit and the tag it was reached through, in one opening.
        let (commit, tag) = self.with_repo(&parsed, |repo| {
            let commit = commit_info_in(repo, &parsed, &resolved.sha)?;
            let tag = resolved
                .ref_name
                .as_deref()
                .filter(|name| name.starts_with("refs/tags/"))
                .and_then(|name| tag_info_in(repo, name));
            Ok((commit, tag))
        })?;
        Ok(Revision {
            resolved,
            commit,
            tag,
        })
    }

    fn with_repo<T>(
        &self,
        url: &RepoUrl,
        f: impl FnOnce(&gix::Repository) -> Result<T>,
    ) -> Result<T> {
        let lock = self.lock_for(&url.cache_key());
        {
            // The common case: the entry is there and opens.
            let _shared = lock.read().unwrap_or_else(|p| p.into_inner());
            if self.repo_dir(url).join(READY_MARKER).exists()
                && let Ok(repo) = self.open(url)
            {
                return f(&repo);
            }
        }
        self.ensure_ready(url, &lock)?;
        let _shared = lock.read().unwrap_or_else(|p| p.into_inner());
        let repo = self.open(url)?;
        f(&repo)
    }

    /// Author, committer, time, message and signature of a cached commit.
    pub fn commit_info(&self, url: &str, sha: &str) -> Result<CommitInfo> {
        let url = RepoUrl::parse(url)?;
        self.with_repo(&url, |repo| commit_info_in(repo, &url, sha))
    }

    /// Lists the files under `path` (recursively) at `sha`. `path` is
    /// relative to the repository root; `""` or `.` is the root.
    pub fn list_files(&self, url: &str, sha: &str, path: &str) -> Result<Vec<FileEntry>> {
        let url = RepoUrl::parse(url)?;
        self.with_repo(&url, |repo| {
            let commit = find_commit(repo, &url, sha)?;
            let tree = subtree(repo, &url, &commit, path)?;
            let mut recorder = gix::traverse::tree::Recorder::default();
            tree.traverse()
                .breadthfirst(&mut recorder)
                .map_err(|e| cache_error(&url, &e))?;
            let mut files: Vec<FileEntry> = recorder
                .records
                .into_iter()
                .filter_map(|r| {
                    let kind = match r.mode.kind() {
                        gix::object::tree::EntryKind::Blob => EntryKind::File,
                        gix::object::tree::EntryKind::BlobExecutable => EntryKind::Executable,
                        gix::object::tree::EntryKind::Link => EntryKind::Symlink,
                        gix::object::tree::EntryKind::Commit => EntryKind::Submodule,
                        gix::object::tree::EntryKind::Tree => return None,
                    };
                    Some(FileEntry {
                        path: r.filepath.to_string(),
                        oid: r.oid.to_string(),
                        kind,
                    })
                })
                .collect();
            files.sort_by(|a, b| a.path.cmp(&b.path));
            Ok(files)
        })
    }

    /// Reads one file at `sha`. A symlink is refused (read its target
    /// instead), as is a path that leaves the repository.
    pub fn read_file(&self, url: &str, sha: &str, path: &str) -> Result<Vec<u8>> {
        let url = RepoUrl::parse(url)?;
        self.with_repo(&url, |repo| {
            let commit = find_commit(repo, &url, sha)?;
            let clean = clean_path(&url, sha, path)?;
            let tree = commit.tree().map_err(|e| cache_error(&url, &e))?;
            let entry = tree
                .lookup_entry_by_path(&clean)
                .map_err(|e| cache_error(&url, &e))?
                .ok_or_else(|| path_error(&url, sha, path, "does not exist"))?;
            match entry.mode().kind() {
                gix::object::tree::EntryKind::Blob
                | gix::object::tree::EntryKind::BlobExecutable => {}
                gix::object::tree::EntryKind::Link => {
                    return Err(path_error(&url, sha, path, "is a symbolic link"));
                }
                _ => return Err(path_error(&url, sha, path, "is not a file")),
            }
            let blob = repo
                .find_blob(entry.oid())
                .map_err(|e| cache_error(&url, &e))?;
            Ok(blob.data.clone())
        })
    }

    /// Writes the directory `path` at `sha` into a read-only directory and
    /// returns it. The directory is named after the commit and path, so a
    /// second call reuses it. Symbolic links are kept when they point inside
    /// the written directory and refused otherwise.
    pub fn materialize(&self, url: &str, sha: &str, path: &str) -> Result<PathBuf> {
        let parsed = RepoUrl::parse(url)?;
        let clean = clean_path(&parsed, sha, path)?;
        let name = dir_name(&format!("{}@{sha}:{clean}", parsed.cache_key()));
        let target = self.root.join("trees").join(&name);
        if target.join(READY_MARKER).exists() {
            return Ok(target.join("src"));
        }
        let files = self.list_files(url, sha, &clean)?;
        // Unique per call: threads of one process materialize the same tree
        // at once when several applications share a repository.
        static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
        let tmp = self.root.join("tmp").join(format!(
            "{name}.{}.{}",
            std::process::id(),
            NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
        ));
        let _ = make_writable(&tmp);
        let _ = fs::remove_dir_all(&tmp);
        let src = tmp.join("src");
        fs::create_dir_all(&src).map_err(io(format!("create {}", src.display())))?;
        self.with_repo(&parsed, |repo| {
            for file in &files {
                let rel = Path::new(&file.path);
                let dest = src.join(rel);
                if let Some(parent) = dest.parent() {
                    fs::create_dir_all(parent)
                        .map_err(io(format!("create {}", parent.display())))?;
                }
                let oid = gix::ObjectId::from_hex(file.oid.as_bytes())
                    .map_err(|e| cache_error(&parsed, &e))?;
                match file.kind {
                    EntryKind::Submodule => continue,
                    EntryKind::Symlink => {
                        let blob = repo.find_blob(oid).map_err(|e| cache_error(&parsed, &e))?;
                        let link = String::from_utf8_lossy(&blob.data).to_string();
                        let shown = join_display(&clean, &file.path);
                        check_symlink(&parsed, sha, &shown, rel, &link)?;
                        std::os::unix::fs::symlink(&link, &dest)
                            .map_err(io(format!("link {}", dest.display())))?;
                    }
                    EntryKind::File | EntryKind::Executable => {
                        let blob = repo.find_blob(oid).map_err(|e| cache_error(&parsed, &e))?;
                        fs::write(&dest, &blob.data)
                            .map_err(io(format!("write {}", dest.display())))?;
                    }
                }
            }
            Ok(())
        })?;
        fs::File::create(tmp.join(READY_MARKER)).map_err(io("write marker"))?;
        make_read_only(&src)?;
        match fs::rename(&tmp, &target) {
            Ok(()) => {}
            // Another caller materialized the same tree meanwhile.
            Err(_) if target.join(READY_MARKER).exists() => {
                let _ = make_writable(&tmp);
                let _ = fs::remove_dir_all(&tmp);
            }
            Err(e) => return Err(io(format!("rename into {}", target.display()))(e)),
        }
        Ok(target.join("src"))
    }

    /// The paths (files) that differ between two commits: added, removed or
    /// changed, including a change of file mode.
    pub fn changed_paths(&self, url: &str, from: &str, to: &str) -> Result<Vec<String>> {
        let all = |sha: &str| -> Result<BTreeMap<String, (String, EntryKind)>> {
            Ok(self
                .list_files(url, sha, "")?
                .into_iter()
                .map(|f| (f.path, (f.oid, f.kind)))
                .collect())
        };
        let (old, new) = (all(from)?, all(to)?);
        let mut changed: Vec<String> = old
            .iter()
            .filter(|(p, v)| new.get(*p) != Some(v))
            .map(|(p, _)| p.clone())
            .collect();
        changed.extend(new.keys().filter(|p| !old.contains_key(*p)).cloned());
        changed.sort();
        Ok(changed)
    }

    /// Whether the cache entry exists and opens.
    fn usable(&self, url: &RepoUrl) -> bool {
        let dir = self.repo_dir(url);
        dir.join(READY_MARKER).exists()
            && gix::open_opts(&dir, gix::open::Options::isolated()).is_ok()
    }

    /// Makes sure the entry exists, creating it (or re-creating it, if a
    /// crash left it unusable) under the entry's exclusive lock. Must be
    /// called without holding that lock.
    fn ensure_ready(&self, url: &RepoUrl, lock: &RwLock<()>) -> Result<()> {
        if self.usable(url) {
            return Ok(());
        }
        let _exclusive = lock.write().unwrap_or_else(|p| p.into_inner());
        self.init_if_needed(url)
    }

    /// Creates the entry if it is missing or unusable. The caller holds the
    /// entry's exclusive lock.
    fn init_if_needed(&self, url: &RepoUrl) -> Result<()> {
        if self.usable(url) {
            return Ok(());
        }
        let dir = self.repo_dir(url);
        let _ = fs::remove_dir_all(&dir);
        let tmp = self.root.join("tmp").join(format!(
            "{}.init.{}.{}",
            dir.file_name()
                .map(|n| n.to_string_lossy().to_string())
                .unwrap_or_default(),
            std::process::id(),
            unique()
        ));
        let _ = fs::remove_dir_all(&tmp);
        gix::init_bare(&tmp).map_err(|e| cache_error(url, &e))?;
        fs::File::create(tmp.join(READY_MARKER)).map_err(io("write marker"))?;
        fs::rename(&tmp, &dir).map_err(io(format!("rename into {}", dir.display())))?;
        Ok(())
    }

    /// Opens the entry, creating or re-creating it as needed; the caller
    /// holds the entry's exclusive lock.
    fn open_exclusive(&self, url: &RepoUrl) -> Result<gix::Repository> {
        if self.repo_dir(url).join(READY_MARKER).exists()
            && let Ok(repo) = self.open(url)
        {
            return Ok(repo);
        }
        self.init_if_needed(url)?;
        self.open(url)
    }

    /// Opens the entry; the caller holds its lock (shared or exclusive)
    /// and has made sure it is ready.
    fn open(&self, url: &RepoUrl) -> Result<gix::Repository> {
        gix::open_opts(self.repo_dir(url), gix::open::Options::isolated())
            .map_err(|e| cache_error(url, &e))
    }
}

/// The annotated tag a ref points to, with its signature split off the way
/// git does: the signature block is the tail of the tag object, from a line
/// starting `-----BEGIN ... SIGNATURE-----`.
fn tag_info_in(repo: &gix::Repository, ref_name: &str) -> Option<TagInfo> {
    let reference = repo.find_reference(ref_name).ok()?;
    let id = reference.target().try_id()?.to_owned();
    let object = repo.find_object(id).ok()?;
    if object.kind != gix::object::Kind::Tag {
        return None;
    }
    let data: &[u8] = &object.data;
    let start = [
        "-----BEGIN PGP SIGNATURE-----",
        "-----BEGIN SSH SIGNATURE-----",
    ]
    .iter()
    .filter_map(|marker| {
        let m = marker.as_bytes();
        (0..data.len().saturating_sub(m.len()) + 1)
            .find(|&i| data[i..].starts_with(m) && (i == 0 || data[i - 1] == b'\n'))
    })
    .min();
    let (signature, signed_payload) = match start {
        Some(i) => (
            Some(String::from_utf8_lossy(&data[i..]).to_string()),
            Some(data[..i].to_vec()),
        ),
        None => (None, None),
    };
    Some(TagInfo {
        name: ref_name.trim_start_matches("refs/tags/").to_string(),
        sha: id.to_string(),
        signature,
        signed_payload,
    })
}

fn commit_info_in(repo: &gix::Repository, url: &RepoUrl, sha: &str) -> Result<CommitInfo> {
    let commit = find_commit(repo, url, sha)?;
    let person = |s: gix::actor::SignatureRef<'_>| format!("{} <{}>", s.name, s.email);
    let author = commit.author().map_err(|e| cache_error(url, &e))?;
    let committer = commit.committer().map_err(|e| cache_error(url, &e))?;
    let time = commit.time().map_err(|e| cache_error(url, &e))?.seconds;
    let message = commit
        .message_raw()
        .map_err(|e| cache_error(url, &e))?
        .to_string();
    let (signature, signed_payload) = match commit.signature().map_err(|e| cache_error(url, &e))? {
        Some((sig, signed)) => (Some(sig.to_string()), Some(signed.to_bstring().to_vec())),
        None => (None, None),
    };
    Ok(CommitInfo {
        sha: commit.id.to_string(),
        author: person(author),
        committer: person(committer),
        time,
        message,
        signature,
        signed_payload,
    })
}

fn repo_has_commit(repo: &gix::Repository, sha: &str) -> bool {
    gix::ObjectId::from_hex(sha.as_bytes()).is_ok_and(|id| repo.find_commit(id).is_ok())
}

fn expand_in(repo: &gix::Repository, prefix: &str) -> Option<String> {
    let id = repo.rev_parse_single(prefix).ok()?;
    id.object()
        .ok()?
        .peel_to_commit()
        .ok()
        .map(|c| c.id.to_string())
}

/// A crash during a fetch can leave `*.lock` files behind, which would make
/// every later ref update fail. Only this process uses the cache entry, and
/// the caller holds the entry's exclusive lock, so any lock file found is
/// stale.
fn remove_stale_locks(dir: &Path) {
    fn walk(dir: &Path) {
        let Ok(entries) = fs::read_dir(dir) else {
            return;
        };
        for entry in entries.flatten() {
            let path = entry.path();
            if path.is_dir() {
                walk(&path);
            } else if path.extension().is_some_and(|e| e == "lock") {
                let _ = fs::remove_file(&path);
            }
        }
    }
    walk(&dir.join("refs"));
    let _ = fs::remove_file(dir.join("packed-refs.lock"));
    let _ = fs::remove_file(dir.join("config.lock"));
}

/// Per-call settings: the SSH command with its key file, and credentials.
struct Session {
    overrides: Vec<String>,
    key_file: Option<PathBuf>,
    /// ssh's stderr, which gix does not report, kept to explain failures.
    ssh_stderr: Option<PathBuf>,
    username: Option<String>,
    password: Option<String>,
    https: Option<HttpsSettings>,
}

/// What HTTPS needs beyond a user name and password.
#[derive(Default)]
struct HttpsSettings {
    bearer_token: Option<String>,
    ca_pem: Option<String>,
    client_cert_pem: Option<String>,
    client_key_pem: Option<String>,
    insecure: bool,
    proxy: Option<String>,
    force_basic: bool,
}

impl HttpsSettings {
    fn is_empty(&self) -> bool {
        self.bearer_token.is_none()
            && self.ca_pem.is_none()
            && self.client_cert_pem.is_none()
            && !self.insecure
            && self.proxy.is_none()
            && !self.force_basic
    }
}

impl Session {
    fn new(
        root: &Path,
        url: &RepoUrl,
        creds: Option<&Credentials>,
        options: &CacheOptions,
    ) -> Result<Session> {
        let mut session = Session {
            overrides: Vec::new(),
            key_file: None,
            ssh_stderr: None,
            username: None,
            password: None,
            https: None,
        };
        match url.transport {
            Transport::Ssh => {
                let mut cmd = vec![
                    "ssh".to_string(),
                    "-o BatchMode=yes".into(),
                    "-o IdentitiesOnly=yes".into(),
                    "-o ConnectTimeout=20".into(),
                ];
                let insecure = creds.is_some_and(|c| c.insecure || c.insecure_ignore_host_key);
                if insecure {
                    cmd.push("-o StrictHostKeyChecking=no".into());
                    cmd.push("-o UserKnownHostsFile=/dev/null".into());
                } else {
                    cmd.push("-o StrictHostKeyChecking=yes".into());
                    let known = options
                        .known_hosts
                        .clone()
                        .unwrap_or_else(|| PathBuf::from("/dev/null"));
                    cmd.push(format!(
                        "-o UserKnownHostsFile={}",
                        shell_quote(&known.to_string_lossy())
                    ));
                }
                if let Some(key) = creds.and_then(|c| c.ssh_private_key.as_ref()) {
                    let path =
                        root.join("tmp")
                            .join(format!("key-{}-{}", std::process::id(), unique()));
                    write_private(&path, key.expose())?;
                    cmd.push(format!("-i {}", shell_quote(&path.to_string_lossy())));
                    session.key_file = Some(path);
                } else {
                    // Without a key of ours, no agent or user key is used either.
                    cmd.push("-o PubkeyAuthentication=no".into());
                }
                let stderr =
                    root.join("tmp")
                        .join(format!("ssh-err-{}-{}", std::process::id(), unique()));
                cmd.push("-o LogLevel=ERROR".into());
                cmd.push(format!("2>>{}", shell_quote(&stderr.to_string_lossy())));
                session.ssh_stderr = Some(stderr);
                session
                    .overrides
                    .push(format!("core.sshCommand={}", cmd.join(" ")));
                session.overrides.push("ssh.variant=ssh".into());
            }
            Transport::Https | Transport::Http => {
                if let Some(c) = creds {
                    session.username = c.username.clone();
                    session.password = c.password.as_ref().map(|p| p.expose().to_string());
                    if session.password.is_some() && session.username.is_none() {
                        // As Argo CD does for a token without a user name.
                        session.username = Some("x-access-token".into());
                    }
                }
                let settings = HttpsSettings {
                    bearer_token: creds
                        .and_then(|c| c.bearer_token.as_ref())
                        .map(|t| t.expose().to_string()),
                    ca_pem: options.tls_certs.get(&url.host).cloned(),
                    client_cert_pem: creds.and_then(|c| c.tls_client_cert_data.clone()),
                    client_key_pem: creds
                        .and_then(|c| c.tls_client_cert_key.as_ref())
                        .map(|k| k.expose().to_string()),
                    insecure: creds.is_some_and(|c| c.insecure),
                    proxy: creds.and_then(|c| c.proxy.clone()),
                    force_basic: creds.is_some_and(|c| c.force_http_basic_auth),
                };
                if !settings.is_empty() {
                    session.https = Some(settings);
                }
            }
            Transport::Git | Transport::File => {}
        }
        Ok(session)
    }

    fn configure(&self, repo: gix::Repository, url: &RepoUrl) -> Result<gix::Repository> {
        if self.overrides.is_empty() {
            return Ok(repo);
        }
        let mut repo = repo;
        let mut config = repo.config_snapshot_mut();
        for o in &self.overrides {
            let (key, value) = o.split_once('=').unwrap_or((o.as_str(), ""));
            config.set_raw_value(key, value).map_err(|e| Error::Cache {
                url: url.to_string(),
                message: format!("set {key}: {e}"),
            })?;
        }
        config.commit().map_err(|e| Error::Cache {
            url: url.to_string(),
            message: format!("configure: {e}"),
        })?;
        Ok(repo)
    }

    fn authenticate<'a, 'r, T: gix::protocol::transport::client::blocking_io::Transport>(
        &self,
        connection: gix::remote::Connection<'a, 'static, 'r, T>,
        repo: &gix::Repository,
        url: &RepoUrl,
    ) -> Result<gix::remote::Connection<'a, 'static, 'r, T>> {
        let username = self.username.clone();
        let password = self.password.clone();
        let mut connection = connection.with_credentials(move |action| {
            use gix::credentials::helper::Action;
            Ok(match action {
                Action::Get(ctx) => match (&username, &password) {
                    (Some(u), Some(p)) => Some(gix::credentials::protocol::Outcome {
                        identity: gix::sec::identity::Account {
                            username: u.clone(),
                            password: p.clone(),
                            oauth_refresh_token: None,
                        },
                        next: ctx.into(),
                    }),
                    _ => None,
                },
                Action::Store(_) | Action::Erase(_) => None,
            })
        });
        if let Some(https) = &self.https {
            connection = connection.with_transport_options(self.http_options(https, repo, url)?);
        }
        Ok(connection)
    }

    /// gix's HTTP options, with what the repository Secret and the TLS
    /// settings ask for: a bearer token header, extra CA certificates, a
    /// client certificate, a proxy, or no certificate verification.
    fn http_options(
        &self,
        https: &HttpsSettings,
        repo: &gix::Repository,
        url: &RepoUrl,
    ) -> Result<Box<dyn std::any::Any>> {
        use gix::protocol::transport::client::blocking_io::http;
        let config = |message: String| Error::Cache {
            url: url.to_string(),
            message,
        };
        let mut options: http::Options = repo
            .transport_options(url.for_git().as_str(), None)
            .ok()
            .flatten()
            .and_then(|o| o.downcast::<http::Options>().ok())
            .map(|o| *o)
            .unwrap_or_default();
        if let Some(token) = &https.bearer_token {
            options
                .extra_headers
                .push(format!("Authorization: Bearer {token}"));
        }
        if https.force_basic
            && let (Some(u), Some(p)) = (&self.username, &self.password)
        {
            use base64::Engine;
            let encoded = base64::engine::general_purpose::STANDARD.encode(format!("{u}:{p}"));
            options
                .extra_headers
                .push(format!("Authorization: Basic {encoded}"));
        }
        let ca = match &https.ca_pem {
            Some(pem) => Some(
                reqwest::Certificate::from_pem_bundle(pem.as_bytes()).map_err(|e| {
                    config(format!(
                        "the TLS certificates for {} are not valid PEM: {e}",
                        url.host
                    ))
                })?,
            ),
            None => None,
        };
        let identity = match (&https.client_cert_pem, &https.client_key_pem) {
            (Some(cert), Some(key)) => Some(
                reqwest::Identity::from_pem(format!("{cert}\n{key}").as_bytes())
                    .map_err(|e| config(format!("tlsClientCertData/tlsClientCertKey are not a valid PEM certificate and key: {e}")))?,
            ),
            (Some(_), None) | (None, Some(_)) => {
                return Err(config("tlsClientCertData and tlsClientCertKey must be given together".into()));
            }
            (None, None) => None,
        };
        let proxy = match &https.proxy {
            Some(p) => Some(
                reqwest::Proxy::all(p)
                    .map_err(|e| config(format!("proxy {}: {e}", repo_url::redact(p))))?,
            ),
            None => None,
        };
        let insecure = https.insecure;
        let configure = move |mut builder: reqwest::blocking::ClientBuilder| {
            if let Some(ca) = &ca {
                builder = builder.tls_certs_merge([ca.clone()].into_iter().flatten());
            }
            if let Some(identity) = &identity {
                builder = builder.identity(identity.clone());
            }
            if let Some(proxy) = &proxy {
                builder = builder.proxy(proxy.clone());
            }
            if insecure {
                builder = builder.tls_danger_accept_invalid_certs(true);
            }
            Ok(builder)
        };
        options.backend = Some(std::sync::Arc::new(std::sync::Mutex::new(
            http::reqwest::Options {
                configure_client: Some(Box::new(configure)),
                configure_request: None,
            },
        )));
        Ok(Box::new(options))
    }
}

impl Session {
    /// An error for a failed remote operation, explained by what ssh said
    /// when it was ssh that failed.
    fn error(&self, operation: &'static str, url: &RepoUrl, e: &dyn std::fmt::Display) -> Error {
        let read = || {
            self.ssh_stderr
                .as_ref()
                .and_then(|p| fs::read_to_string(p).ok())
                .map(|s| s.trim().to_string())
                .filter(|s| !s.is_empty())
        };
        // ssh may still be finishing its last words when gix sees the
        // connection close.
        let said = read().or_else(|| {
            self.ssh_stderr.as_ref()?;
            std::thread::sleep(std::time::Duration::from_millis(100));
            read()
        });
        match said {
            Some(said) => remote_error(operation, url, &format!("{e:#}; ssh: {said}")),
            None => remote_error(operation, url, e),
        }
    }
}

impl Drop for Session {
    fn drop(&mut self) {
        for path in [&self.key_file, &self.ssh_stderr].into_iter().flatten() {
            let _ = fs::remove_file(path);
        }
    }
}

fn unique() -> u64 {
    use std::sync::atomic::{AtomicU64, Ordering};
    static N: AtomicU64 = AtomicU64::new(0);
    N.fetch_add(1, Ordering::Relaxed)
}

fn write_private(path: &Path, content: &str) -> Result<()> {
    use std::os::unix::fs::OpenOptionsExt;
    let mut f = fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .map_err(io(format!("write key file {}", path.display())))?;
    let mut content = content.replace("\r\n", "\n");
    if !content.ends_with('\n') {
        // ssh refuses a key file without a final newline.
        content.push('\n');
    }
    f.write_all(content.as_bytes())
        .map_err(io(format!("write key file {}", path.display())))
}

fn shell_quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', "'\\''"))
}

fn to_remote_ref(r: &gix::protocol::handshake::Ref) -> Option<RemoteRef> {
    use gix::protocol::handshake::Ref;
    Some(match r {
        Ref::Direct {
            full_ref_name,
            object,
        } => RemoteRef {
            name: full_ref_name.to_string(),
            target: object.to_string(),
            peeled: None,
            symref_target: None,
        },
        Ref::Peeled {
            full_ref_name,
            tag,
            object,
        } => RemoteRef {
            name: full_ref_name.to_string(),
            target: tag.to_string(),
            peeled: Some(object.to_string()),
            symref_target: None,
        },
        Ref::Symbolic {
            full_ref_name,
            target,
            tag,
            object,
        } => RemoteRef {
            name: full_ref_name.to_string(),
            target: tag
                .map(|t| t.to_string())
                .unwrap_or_else(|| object.to_string()),
            peeled: tag.map(|_| object.to_string()),
            symref_target: Some(target.to_string()),
        },
        Ref::Unborn { .. } => return None,
    })
}

fn remote_error(operation: &'static str, url: &RepoUrl, e: &dyn std::fmt::Display) -> Error {
    let message = format!("{e:#}");
    let lower = message.to_ascii_lowercase();
    // HTTP status codes as words of their own: a port such as 40173 or a
    // SHA holding "401" is not a refusal.
    let status_code = lower
        .split(|c: char| !c.is_ascii_alphanumeric())
        .any(|w| w == "401" || w == "403");
    if status_code
        || lower.contains("authentication")
        || lower.contains("unauthenticated")
        || lower.contains("permission denied")
        || lower.contains("credentials")
    {
        return Error::Auth {
            url: url.to_string(),
        };
    }
    let message = if lower.contains("host key verification failed")
        || lower.contains("no matching host key")
    {
        format!(
            "{message} (add the server's key to the known hosts, or set `insecure` in the repository Secret)"
        )
    } else {
        message
    };
    Error::Remote {
        operation,
        url: url.to_string(),
        message: repo_url::redact(&message),
    }
}

fn cache_error(url: &RepoUrl, e: &dyn std::fmt::Display) -> Error {
    Error::Cache {
        url: url.to_string(),
        message: format!("{e:#}"),
    }
}

fn path_error(url: &RepoUrl, commit: &str, path: &str, reason: &str) -> Error {
    Error::Path {
        url: url.to_string(),
        commit: commit.to_string(),
        path: path.to_string(),
        reason: reason.to_string(),
    }
}

fn find_commit<'r>(repo: &'r gix::Repository, url: &RepoUrl, sha: &str) -> Result<gix::Commit<'r>> {
    let missing = || Error::MissingCommit {
        url: url.to_string(),
        sha: sha.to_string(),
    };
    let id = gix::ObjectId::from_hex(sha.as_bytes()).map_err(|_| missing())?;
    let object = repo.find_object(id).map_err(|_| missing())?;
    object.peel_to_commit().map_err(|_| missing())
}

/// A repository-relative path with `.` and empty components removed;
/// absolute paths and `..` are refused.
fn clean_path(url: &RepoUrl, commit: &str, path: &str) -> Result<String> {
    let mut parts = Vec::new();
    for component in Path::new(path).components() {
        match component {
            Component::Normal(p) => parts.push(p.to_string_lossy().to_string()),
            Component::CurDir => {}
            Component::ParentDir => {
                return Err(path_error(
                    url,
                    commit,
                    path,
                    "leaves the repository (`..`)",
                ));
            }
            Component::RootDir | Component::Prefix(_) => {
                return Err(path_error(
                    url,
                    commit,
                    path,
                    "is absolute; give a path relative to the repository root",
                ));
            }
        }
    }
    Ok(parts.join("/"))
}

fn subtree<'r>(
    repo: &'r gix::Repository,
    url: &RepoUrl,
    commit: &gix::Commit<'r>,
    path: &str,
) -> Result<gix::Tree<'r>> {
    let sha = commit.id.to_string();
    let clean = clean_path(url, &sha, path)?;
    let tree = commit.tree().map_err(|e| cache_error(url, &e))?;
    if clean.is_empty() {
        return Ok(tree);
    }
    // Walk component by component so a symbolic link on the way is reported
    // as such rather than as a missing directory.
    let mut current = tree;
    let mut walked = String::new();
    for part in clean.split('/') {
        if !walked.is_empty() {
            walked.push('/');
        }
        walked.push_str(part);
        let entry = current
            .lookup_entry_by_path(part)
            .map_err(|e| cache_error(url, &e))?
            .ok_or_else(|| path_error(url, &sha, &walked, "does not exist"))?;
        match entry.mode().kind() {
            gix::object::tree::EntryKind::Tree => {
                current = repo
                    .find_object(entry.oid())
                    .and_then(|o| o.try_into_tree())
                    .map_err(|e| cache_error(url, &e))?;
            }
            gix::object::tree::EntryKind::Link => {
                return Err(path_error(
                    url,
                    &sha,
                    &walked,
                    "is a symbolic link; give the directory it points to",
                ));
            }
            _ => return Err(path_error(url, &sha, &walked, "is not a directory")),
        }
    }
    let _ = repo;
    Ok(current)
}

fn join_display(base: &str, rel: &str) -> String {
    if base.is_empty() {
        rel.to_string()
    } else {
        format!("{base}/{rel}")
    }
}

/// Refuses a symbolic link whose target leaves the directory being written:
/// absolute targets (devices, `/etc/...`) and `..` climbing past the top.
fn check_symlink(url: &RepoUrl, commit: &str, shown: &str, rel: &Path, target: &str) -> Result<()> {
    let escape = |why: &str| {
        path_error(
            url,
            commit,
            shown,
            &format!("is a symbolic link to {target:?}, which {why}"),
        )
    };
    let target_path = Path::new(target);
    if target_path.is_absolute() {
        return Err(escape("is an absolute path outside the repository"));
    }
    let mut depth: i64 = rel.components().count() as i64 - 1;
    for component in target_path.components() {
        match component {
            Component::ParentDir => {
                depth -= 1;
                if depth < 0 {
                    return Err(escape("points outside the application's directory"));
                }
            }
            Component::Normal(_) => depth += 1,
            Component::CurDir => {}
            Component::RootDir | Component::Prefix(_) => return Err(escape("is absolute")),
        }
    }
    Ok(())
}

fn make_read_only(dir: &Path) -> Result<()> {
    use std::os::unix::fs::PermissionsExt;
    for entry in fs::read_dir(dir)
        .map_err(io(format!("read {}", dir.display())))?
        .flatten()
    {
        let path = entry.path();
        let meta = fs::symlink_metadata(&path).map_err(io(format!("stat {}", path.display())))?;
        if meta.file_type().is_symlink() {
            continue;
        }
        if meta.is_dir() {
            make_read_only(&path)?;
            fs::set_permissions(&path, fs::Permissions::from_mode(0o555))
                .map_err(io(format!("chmod {}", path.display())))?;
        } else {
            fs::set_permissions(&path, fs::Permissions::from_mode(0o444))
                .map_err(io(format!("chmod {}", path.display())))?;
        }
    }
    fs::set_permissions(dir, fs::Permissions::from_mode(0o555))
        .map_err(io(format!("chmod {}", dir.display())))
}

fn make_writable(dir: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    if !dir.exists() {
        return Ok(());
    }
    fs::set_permissions(dir, fs::Permissions::from_mode(0o755))?;
    for entry in fs::read_dir(dir)?.flatten() {
        let path = entry.path();
        let meta = fs::symlink_metadata(&path)?;
        if meta.is_dir() {
            make_writable(&path)?;
        }
    }
    Ok(())
}

/// A file-system-safe directory name for a cache key: readable prefix plus
/// a stable hash (FNV-1a), so distinct keys never collide after sanitizing.
fn dir_name(key: &str) -> String {
    let mut hash: u64 = 0xcbf29ce484222325;
    for b in key.bytes() {
        hash ^= u64::from(b);
        hash = hash.wrapping_mul(0x100000001b3);
    }
    let mut readable: String = key
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '.' || c == '-' {
                c
            } else {
                '_'
            }
        })
        .collect();
    readable.truncate(80);
    format!("{readable}-{hash:016x}")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn url() -> RepoUrl {
        RepoUrl::parse("https://h/r").unwrap()
    }

    #[test]
    fn refusals_are_told_from_other_failures() {
        let url = url();
        let auth = |m: &str| matches!(remote_error("fetch", &url, &m), Error::Auth { .. });
        assert!(auth("HTTP status 401 Unauthorized"));
        assert!(auth("server answered 403"));
        assert!(auth("git@host: Permission denied (publickey)."));
        assert!(!auth(
            "https://127.0.0.1:40173/x: invalid peer certificate: UnknownIssuer"
        ));
        assert!(!auth("object 4010abc403 is missing"));
    }

    #[test]
    fn paths_that_leave_the_repository_are_refused() {
        assert_eq!(clean_path(&url(), "c", "./apps//web/").unwrap(), "apps/web");
        assert_eq!(clean_path(&url(), "c", "").unwrap(), "");
        let err = clean_path(&url(), "c", "apps/../../etc").unwrap_err();
        assert_eq!(
            err.to_string(),
            "https://h/r at c: path \"apps/../../etc\" leaves the repository (`..`)"
        );
        assert!(
            clean_path(&url(), "c", "/etc/passwd")
                .unwrap_err()
                .to_string()
                .contains("is absolute")
        );
    }

    #[test]
    fn symlinks_must_stay_inside() {
        let ok = |rel: &str, target: &str| check_symlink(&url(), "c", rel, Path::new(rel), target);
        assert!(ok("a/link", "b.yaml").is_ok());
        assert!(ok("a/link", "../top.yaml").is_ok());
        assert!(ok("a/b/link", "../../x").is_ok());
        assert!(ok("link", "../x").is_err());
        assert!(ok("a/link", "../../x").is_err());
        assert!(ok("a/link", "/etc/passwd").is_err());
        assert!(ok("a/link", "/dev/zero").is_err());
        assert!(ok("a/link", "b/../../../x").is_err());
    }

    #[test]
    fn dir_names_are_safe_and_distinct() {
        let a = dir_name("github.com/org/repo");
        let b = dir_name("github.com/org_repo");
        assert_ne!(a, b);
        assert!(
            a.chars()
                .all(|c| c.is_ascii_alphanumeric() || "._-".contains(c)),
            "{a}"
        );
        assert_eq!(a, dir_name("github.com/org/repo"), "stable");
    }
}
