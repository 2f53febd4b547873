//! Berth's controller: [`source`] turns an Application's sources into the
//! desired objects (as `berth render -f` also does), [`compare`] compares
//! them with the cluster, and [`controller`] runs the loop that keeps every
//! Application's status current.

pub mod approval;
pub mod appset;
pub mod compare;
pub mod controller;
pub mod deletion;
pub(crate) mod gate;
pub mod lease;
pub mod metrics;
pub mod policy;
pub mod project;
pub mod record;
pub mod settings;
pub mod source;
pub mod sync;
pub mod views;
pub mod windows;
