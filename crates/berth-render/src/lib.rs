//! Manifest generation: turns a source directory plus an Application's
//! source options into the ordered list of Kubernetes objects it declares,
//! or a clear error.
//!
//! - [`manifest`]: YAML and JSON streams parsed as Kubernetes parses them;
//! - [`cache`]: results keyed by what determines them, bounded;
//! - [`directory`]: plain directories of manifests (recurse, include, exclude);
//! - [`detect`]: the source type, as Argo CD detects it;
//! - [`tool`]: finding and running external tools with a timeout, an output
//!   cap and a scrubbed environment;
//! - [`kustomize`] and [`helm`]: the real tools, with Argo CD's options;
//! - [`plugin`]: config management plugins.
//!
//! The crate knows nothing of the cluster beyond a Kubernetes version and
//! API list handed to it.

pub mod cache;
pub mod detect;
pub mod directory;
pub mod helm;
pub mod jsonnet;
pub mod kustomize;
pub mod manifest;
pub mod plugin;
pub mod tool;
