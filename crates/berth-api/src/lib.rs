//! Berth's shared vocabulary, used by every stage of the pipeline and
//! talking to nothing: Argo CD's API types (to come) and the constants their
//! semantics depend on.
//!
//! - [`application`]: Argo CD's `Application`, as far as Berth reads it;
//! - [`crds`]: the Application and AppProject CRDs Berth installs;
//! - [`kinds`]: the order in which kinds are applied (and pruned in reverse);
//! - [`tracking`]: how objects are marked as belonging to an application.

pub mod application;
pub mod appset;
pub mod crds;
pub mod kinds;
pub mod time;
pub mod tracking;
