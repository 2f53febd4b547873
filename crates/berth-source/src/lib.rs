//! Git sources for Berth: which commit each application should run, and
//! the files at that commit.
//!
//! - [`url`]: repository URLs, Argo CD's normalization, cache keys, redaction;
//! - [`creds`]: repository credentials from Argo CD's Secrets;
//! - [`repo`]: the repository cache: fetch, ls-remote, reading commits and trees;
//! - [`poll`]: one `ls-remote` per repository per interval, shared by its applications;
//! - [`semver`]: version constraints in the language Argo CD accepts;
//! - [`signature`]: OpenPGP and SSH commit signatures against a project's keys;
//! - [`revision`]: resolving `targetRevision` against a repository's refs;
//! - [`webhook`]: verifying and reading push webhooks.
//!
//! This crate renders nothing and never touches the cluster.

pub mod creds;
pub mod metrics;
pub mod poll;
pub mod repo;
pub mod revision;
pub mod semver;
pub mod signature;
pub mod url;
pub mod webhook;
