//! The engine: which objects belong to an application, what differs from
//! Git, whether the application is healthy, and in what order a sync applies
//! and prunes. It does no I/O, so every rule is a fast table-driven test.
//!
//! - [`diff`]: desired against live, normalized, with Secret values masked.
//! - [`glob`]: the glob patterns Argo CD's settings use.
//! - [`health`]: resource health with Argo CD's rules and messages.
//! - [`plan`]: sync and deletion plans: phases, waves, hooks, options.
//! - [`settings`]: the `argocd-cm` keys the engine honours.
//! - [`tracking`]: which app an object belongs to; copies and shared objects.
//! - [`lua`]: the sandbox that runs health scripts in Argo CD's format.

pub mod actions;
pub mod diff;
pub mod glob;
pub mod health;
pub mod lua;
pub mod plan;
pub mod settings;
pub mod tracking;
