//! Berth's shared vocabulary, used by every stage of the pipeline and
//! talking to nothing: Argo CD's API types (to come) and the constants their
//! semantics depend on.
//!
//! - [`kinds`]: the order in which kinds are applied (and pruned in reverse).

pub mod kinds;
