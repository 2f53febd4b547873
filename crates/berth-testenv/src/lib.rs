//! Berth's local Kubernetes control plane, seen from Rust.
//!
//! The control plane itself is a Go program (`testenv/` in the repository)
//! built from the official Kubernetes modules: etcd, kube-apiserver,
//! kube-controller-manager and kube-scheduler in one process, plus a node and
//! pod simulator. This crate finds that program, starts it, waits until it is
//! ready and stops it again:
//!
//! - [`ControlPlane`] starts one instance (`berth up` and multi-cluster tests);
//! - [`kubectl()`] runs kubectl, the independent client;
//! - [`git`] runs real Git servers (git daemon, smart HTTP, sshd) for tests;
//! - [`shared`] and [`TestNamespace`] give each test its own namespace on one
//!   control plane per test run.
//!
//! The control plane exits by itself when its standard input closes, so it
//! never outlives the process that started it, even after a panic or a kill.

mod control_plane;
mod error;
pub mod git;
pub mod http;
mod kubectl;
mod shared;
mod tools;

pub use control_plane::{ControlPlane, Options};
pub use error::{Error, Result};
pub use kubectl::{kubectl, kubectl_ok};
pub use shared::{DATA_DIR_ENV, KUBECONFIG_ENV, SharedCluster, TestNamespace, client_for, shared};
pub use tools::{BUILD_COMMAND, find_tool, tools_dir};
