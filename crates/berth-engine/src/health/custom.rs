//! Health checks from every source, in order of precedence:
//!
//! 1. `argocd-cm`: `resource.customizations.health.<group>_<kind>` keys and
//!    the older `resource.customizations` block (exact keys before
//!    wildcard ones);
//! 2. a directory in Argo CD's layout `<group>/<Kind>/health.lua`, where a
//!    group of `_` matches any group (read by the caller: the engine does no
//!    I/O);
//! 3. the checks Berth ships for widely used CRDs, including one for
//!    Crossplane managed resources applied by rule;
//! 4. the built-in checks ([`super::check`]).
//!
//! A script's result is final: one that returns nothing means the object
//! has no health, as in Argo CD, and does not fall back to a built-in.

use std::collections::HashMap;
use std::sync::Arc;

use serde_json::Value;

use super::{Health, Status};
use crate::glob::glob;
use crate::lua::{self, Limits, LuaError};

include!(concat!(env!("OUT_DIR"), "/shipped.rs"));

/// Argo CD's message for a script status outside the six it knows.
pub const INVALID_STATUS: &str = "Lua returned an invalid health status";

/// Where a script came from, for messages.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Origin {
    /// An `argocd-cm` key.
    ArgoCdCm(String),
    /// A file in a customizations directory.
    Directory(String),
    /// Shipped with Berth.
    Shipped(String),
}

impl Origin {
    fn name(&self) -> &str {
        match self {
            Origin::ArgoCdCm(s) | Origin::Directory(s) | Origin::Shipped(s) => s,
        }
    }
}

#[derive(Debug, Clone)]
struct Script {
    origin: Origin,
    source: Arc<str>,
}

/// A set of health checks: scripts from all sources plus the built-ins.
#[derive(Debug, Clone)]
pub struct HealthChecks {
    /// `argocd-cm` scripts by exact (group, kind).
    cm_exact: HashMap<(String, String), Script>,
    /// `argocd-cm` scripts whose group or kind has a `*`.
    cm_wildcard: Vec<(String, String, Script)>,
    /// Directory scripts by (group, kind); group `_` is any group.
    dir: HashMap<(String, String), Script>,
    shipped: HashMap<(String, String), Script>,
    crossplane: Option<Script>,
    application: bool,
    limits: Limits,
}

impl Default for HealthChecks {
    fn default() -> HealthChecks {
        HealthChecks::new()
    }
}

impl HealthChecks {
    /// Berth's shipped checks and the built-ins.
    pub fn new() -> HealthChecks {
        let shipped = SHIPPED
            .iter()
            .map(|(g, k, src)| {
                (
                    (g.to_string(), k.to_string()),
                    Script {
                        origin: Origin::Shipped(format!("{g}/{k}/health.lua")),
                        source: Arc::from(*src),
                    },
                )
            })
            .collect();
        HealthChecks {
            cm_exact: HashMap::new(),
            cm_wildcard: Vec::new(),
            dir: HashMap::new(),
            shipped,
            crossplane: CROSSPLANE_MANAGED.map(|src| Script {
                origin: Origin::Shipped("crossplane managed resource".into()),
                source: Arc::from(src),
            }),
            application: false,
            limits: Limits::default(),
        }
    }

    /// The (group, kind) pairs Berth ships checks for.
    pub fn shipped_kinds() -> impl Iterator<Item = (&'static str, &'static str)> {
        SHIPPED.iter().map(|(g, k, _)| (*g, *k))
    }

    /// Adds an `argocd-cm` script for `group`/`kind` (either may hold `*`).
    pub fn add_argocd_cm(&mut self, group: &str, kind: &str, key: &str, source: &str) {
        let script = Script {
            origin: Origin::ArgoCdCm(key.to_string()),
            source: Arc::from(source),
        };
        if group.contains('*') || kind.contains('*') {
            self.cm_wildcard
                .push((group.to_string(), kind.to_string(), script));
        } else {
            self.cm_exact
                .insert((group.to_string(), kind.to_string()), script);
        }
    }

    /// Adds a script from a customizations directory; `group` `_` matches
    /// any group. `path` names it in messages.
    pub fn add_directory(&mut self, group: &str, kind: &str, path: &str, source: &str) {
        self.dir.insert(
            (group.to_string(), kind.to_string()),
            Script {
                origin: Origin::Directory(path.to_string()),
                source: Arc::from(source),
            },
        );
    }

    /// Turns on Berth's check for Argo CD Applications (app of apps): an
    /// Application's health is the one in its status. Off by default, as
    /// Argo CD has no such check since 1.8.
    pub fn enable_application_check(&mut self, on: bool) {
        self.application = on;
    }

    /// Sets the time and memory limits for scripts.
    pub fn set_limits(&mut self, limits: Limits) {
        self.limits = limits;
    }

    fn script_for(&self, group: &str, kind: &str, obj: &Value) -> Option<&Script> {
        let key = (group.to_string(), kind.to_string());
        if let Some(s) = self.cm_exact.get(&key) {
            return Some(s);
        }
        if let Some((_, _, s)) = self
            .cm_wildcard
            .iter()
            .find(|(g, k, _)| glob(g, group) && glob(k, kind))
        {
            return Some(s);
        }
        if let Some(s) = self
            .dir
            .get(&key)
            .or_else(|| self.dir.get(&("_".to_string(), kind.to_string())))
        {
            return Some(s);
        }
        if let Some(s) = self.shipped.get(&key) {
            return Some(s);
        }
        if is_crossplane_managed(group, obj) {
            return self.crossplane.as_ref();
        }
        None
    }

    /// The health of one live object, or `None` when no check applies or
    /// the check that applies reports nothing.
    pub fn check(&self, obj: &Value) -> Option<Health> {
        if let Some(h) = super::pending_deletion(obj) {
            return Some(h);
        }
        let (group, kind) = berth_api::kinds::group_kind(obj);
        if let Some(script) = self.script_for(group, kind, obj) {
            return run_script(script, obj, self.limits);
        }
        if self.application && group == "argoproj.io" && kind == "Application" {
            return Some(application(obj));
        }
        super::check(obj)
    }
}

fn run_script(script: &Script, obj: &Value, limits: Limits) -> Option<Health> {
    match lua::run(script.origin.name(), &script.source, obj, limits) {
        Ok(None) => None,
        Ok(Some(r)) => Some(match parse_status(&r.status) {
            Some(status) => Health::new(status, r.message),
            None => Health::new(Status::Unknown, INVALID_STATUS),
        }),
        Err(e @ (LuaError::Setup(_) | LuaError::Timeout { .. } | LuaError::Memory { .. })) => {
            Some(Health::new(Status::Unknown, e.to_string()))
        }
        Err(LuaError::Compile { message, .. } | LuaError::Runtime { message, .. }) => {
            Some(Health::new(Status::Unknown, message))
        }
    }
}

/// The statuses a script may return, spelled as Argo CD spells them.
pub fn parse_status(s: &str) -> Option<Status> {
    Some(match s {
        "Healthy" => Status::Healthy,
        "Suspended" => Status::Suspended,
        "Progressing" => Status::Progressing,
        "Missing" => Status::Missing,
        "Degraded" => Status::Degraded,
        "Unknown" => Status::Unknown,
        _ => return None,
    })
}

/// Crossplane managed resources live in one group per provider; they are
/// recognised by the provider group suffixes, or by carrying both of
/// Crossplane's `Synced` and `Ready` conditions (composites and claims in
/// groups of the user's choosing).
fn is_crossplane_managed(group: &str, obj: &Value) -> bool {
    if group.ends_with(".crossplane.io") || group.ends_with(".upbound.io") {
        return true;
    }
    let types: Vec<&str> = obj
        .pointer("/status/conditions")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|c| c.get("type").and_then(Value::as_str))
        .collect();
    types.contains(&"Synced") && types.contains(&"Ready")
}

/// An Application's own reported health; Progressing until it has one.
fn application(obj: &Value) -> Health {
    let status = obj
        .pointer("/status/health/status")
        .and_then(Value::as_str)
        .and_then(parse_status);
    let message = obj
        .pointer("/status/health/message")
        .and_then(Value::as_str)
        .unwrap_or_default();
    match status {
        Some(s) => Health::new(s, message),
        None => Health::new(Status::Progressing, ""),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn widget() -> Value {
        json!({"apiVersion": "example.com/v1", "kind": "Widget", "metadata": {"name": "w"}, "status": {"ready": true}})
    }

    #[test]
    fn precedence_argocd_cm_then_directory_then_shipped_then_builtin() {
        let mut checks = HealthChecks::new();
        assert_eq!(
            checks.check(&widget()),
            None,
            "no check for an unknown kind"
        );
        checks.add_directory(
            "_",
            "Widget",
            "_/Widget/health.lua",
            "return {status = 'Degraded', message = 'dir any'}",
        );
        assert_eq!(checks.check(&widget()).unwrap().message, "dir any");
        checks.add_directory(
            "example.com",
            "Widget",
            "example.com/Widget/health.lua",
            "return {status = 'Suspended', message = 'dir'}",
        );
        assert_eq!(checks.check(&widget()).unwrap().message, "dir");
        checks.add_argocd_cm(
            "example.*",
            "*",
            "resource.customizations",
            "return {status = 'Progressing', message = 'wild'}",
        );
        assert_eq!(checks.check(&widget()).unwrap().message, "wild");
        checks.add_argocd_cm(
            "example.com",
            "Widget",
            "resource.customizations.health.example.com_Widget",
            "return {status = 'Healthy', message = 'cm ' .. tostring(obj.status.ready)}",
        );
        assert_eq!(
            checks.check(&widget()),
            Some(Health::new(Status::Healthy, "cm true"))
        );

        // A script overrides a built-in check, and one returning nothing
        // leaves the object without health.
        let svc = json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "s"}, "spec": {"type": "LoadBalancer"}});
        assert_eq!(checks.check(&svc).unwrap().status, Status::Progressing);
        checks.add_argocd_cm(
            "",
            "Service",
            "resource.customizations.health.Service",
            "return {}",
        );
        assert_eq!(checks.check(&svc), None);
    }

    #[test]
    fn invalid_status_and_errors_are_unknown() {
        let mut checks = HealthChecks::new();
        checks.add_argocd_cm("example.com", "Widget", "k", "return {status = 'Fine'}");
        assert_eq!(
            checks.check(&widget()),
            Some(Health::new(Status::Unknown, INVALID_STATUS))
        );
        checks.add_argocd_cm(
            "example.com",
            "Widget",
            "k",
            "return {message = 'only a message'}",
        );
        assert_eq!(
            checks.check(&widget()),
            Some(Health::new(Status::Unknown, INVALID_STATUS))
        );
        checks.add_argocd_cm("example.com", "Widget", "k", "return obj.missing.field");
        let h = checks.check(&widget()).unwrap();
        assert_eq!(h.status, Status::Unknown);
        assert!(h.message.starts_with("k:1:"), "{}", h.message);
        checks.add_argocd_cm("example.com", "Widget", "k", "while true do end");
        checks.set_limits(Limits {
            timeout: std::time::Duration::from_millis(50),
            ..Limits::default()
        });
        let h = checks.check(&widget()).unwrap();
        assert_eq!(h.status, Status::Unknown);
        assert!(h.message.contains("time limit"), "{}", h.message);
    }

    #[test]
    fn application_check_is_off_by_default() {
        let app = json!({"apiVersion": "argoproj.io/v1alpha1", "kind": "Application", "metadata": {"name": "child"},
            "status": {"health": {"status": "Degraded", "message": "child broken"}}});
        let mut checks = HealthChecks::new();
        assert_eq!(checks.check(&app), None);
        checks.enable_application_check(true);
        assert_eq!(
            checks.check(&app),
            Some(Health::new(Status::Degraded, "child broken"))
        );
        let fresh = json!({"apiVersion": "argoproj.io/v1alpha1", "kind": "Application", "metadata": {"name": "c"}});
        assert_eq!(checks.check(&fresh).unwrap().status, Status::Progressing);
    }

    #[test]
    fn deletion_comes_before_scripts() {
        let mut checks = HealthChecks::new();
        checks.add_argocd_cm("example.com", "Widget", "k", "return {status = 'Healthy'}");
        let mut w = widget();
        w["metadata"]["deletionTimestamp"] = json!("2026-11-28T00:00:00Z");
        assert_eq!(
            checks.check(&w),
            Some(Health::new(Status::Progressing, "Pending deletion"))
        );
    }
}
