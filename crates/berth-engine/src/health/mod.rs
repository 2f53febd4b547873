//! Resource health, with Argo CD's statuses, order of severity, rules and
//! messages. One file per kind; [`check`] dispatches on the exact group and
//! kind (a Knative `Service` is not a core Service).

mod apps;
mod autoscaling;
mod batch;
mod core;
mod custom;

pub use custom::{HealthChecks, INVALID_STATUS, Origin, parse_status};

use std::fmt;

use serde_json::Value;

/// A health status, from best to worst in the order Argo CD ranks them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Status {
    /// Working as intended.
    Healthy,
    /// Paused or suspended on purpose.
    Suspended,
    /// Not there yet, but getting there.
    Progressing,
    /// Should exist and does not.
    Missing,
    /// Failed, or cannot reach its desired state.
    Degraded,
    /// Health cannot be assessed.
    Unknown,
}

impl fmt::Display for Status {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Status::Healthy => "Healthy",
            Status::Suspended => "Suspended",
            Status::Progressing => "Progressing",
            Status::Missing => "Missing",
            Status::Degraded => "Degraded",
            Status::Unknown => "Unknown",
        })
    }
}

/// A status with the message that explains it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Health {
    /// The status.
    pub status: Status,
    /// Why, in Argo CD's words; empty when there is nothing to say.
    pub message: String,
}

impl Health {
    /// A status with its message.
    pub fn new(status: Status, message: impl Into<String>) -> Health {
        Health {
            status,
            message: message.into(),
        }
    }
}

/// The health of one live object, or `None` when no built-in check applies.
/// An object being deleted is Progressing, whatever its kind.
pub fn check(obj: &Value) -> Option<Health> {
    if let Some(h) = pending_deletion(obj) {
        return Some(h);
    }
    let (group, kind) = berth_api::kinds::group_kind(obj);
    match (group, kind) {
        ("apps", "Deployment") => Some(apps::deployment(obj)),
        ("apps", "ReplicaSet") => Some(apps::replica_set(obj)),
        ("apps", "StatefulSet") => Some(apps::stateful_set(obj)),
        ("apps", "DaemonSet") => Some(apps::daemon_set(obj)),
        ("", "Pod") => Some(core::pod(obj)),
        ("", "Service") => Some(core::service(obj)),
        ("", "PersistentVolumeClaim") => Some(core::pvc(obj)),
        ("batch", "Job") => Some(batch::job(obj)),
        ("batch", "CronJob") => Some(batch::cron_job(obj)),
        ("autoscaling", "HorizontalPodAutoscaler") => match text(obj, "/apiVersion") {
            "autoscaling/v1" | "autoscaling/v2" | "autoscaling/v2beta1" | "autoscaling/v2beta2" => {
                Some(autoscaling::hpa(obj))
            }
            other => Some(Health::new(
                Status::Unknown,
                format!(
                    "unsupported HPA GVK: autoscaling/{}, Kind=HorizontalPodAutoscaler",
                    other.rsplit('/').next().unwrap_or_default()
                ),
            )),
        },
        ("networking.k8s.io", "Ingress") | ("extensions", "Ingress") => Some(core::ingress(obj)),
        ("apiregistration.k8s.io", "APIService") => Some(core::api_service(obj)),
        _ => None,
    }
}

/// Progressing, "Pending deletion", for an object being deleted, whatever
/// its kind and whatever check would otherwise apply.
pub(crate) fn pending_deletion(obj: &Value) -> Option<Health> {
    obj.pointer("/metadata/deletionTimestamp")
        .is_some_and(|v| !v.is_null())
        .then(|| Health::new(Status::Progressing, "Pending deletion"))
}

/// The application's health: the worst of its resources' (hooks left out
/// by the caller); Healthy when there are none.
pub fn aggregate<'a>(healths: impl IntoIterator<Item = &'a Status>) -> Status {
    healths
        .into_iter()
        .copied()
        .max()
        .unwrap_or(Status::Healthy)
}

/// The annotation that keeps a resource out of its application's health.
pub const IGNORE_HEALTHCHECK: &str = "argocd.argoproj.io/ignore-healthcheck";

/// One resource as its application's health sees it.
#[derive(Debug, Clone, Copy)]
pub struct AppResource<'a> {
    /// The live object, `None` when it does not exist.
    pub live: Option<&'a Value>,
    /// Its health, `None` when no check applies.
    pub status: Option<Status>,
    /// It is in Git (a target).
    pub in_git: bool,
    /// It is a hook.
    pub hook: bool,
}

/// The application's health, as Argo CD 3 aggregates it: the worst status
/// of its resources, leaving out hooks, resources annotated
/// `argocd.argoproj.io/ignore-healthcheck: "true"`, resources missing from
/// the cluster (their sync status already says so), and child Applications
/// whose own health is Missing or Unknown; Missing when Git has objects
/// and none of them exists; Healthy when nothing counts.
pub fn app_health<'a>(resources: impl IntoIterator<Item = AppResource<'a>>) -> Status {
    let (mut worst, mut targets, mut live_objects) = (Status::Healthy, 0usize, 0usize);
    for r in resources {
        if r.hook {
            continue;
        }
        if r.in_git {
            targets += 1;
        }
        let Some(live) = r.live else {
            continue;
        };
        live_objects += 1;
        let ignored = live
            .pointer("/metadata/annotations")
            .and_then(|a| a.get(IGNORE_HEALTHCHECK))
            .and_then(Value::as_str)
            == Some("true");
        let Some(status) = r.status else {
            continue;
        };
        let child_app = berth_api::kinds::group_kind(live) == ("argoproj.io", "Application")
            && matches!(status, Status::Missing | Status::Unknown);
        if !ignored && !child_app {
            worst = worst.max(status);
        }
    }
    if targets > 0 && live_objects == 0 {
        return Status::Missing;
    }
    worst
}

/// Reads an integer field, 0 when absent.
pub(crate) fn int(obj: &Value, pointer: &str) -> i64 {
    obj.pointer(pointer).and_then(Value::as_i64).unwrap_or(0)
}

/// Reads a string field, "" when absent.
pub(crate) fn text<'a>(obj: &'a Value, pointer: &str) -> &'a str {
    obj.pointer(pointer)
        .and_then(Value::as_str)
        .unwrap_or_default()
}

/// The status condition of `type_`, if present.
pub(crate) fn condition<'a>(obj: &'a Value, type_: &str) -> Option<&'a Value> {
    obj.pointer("/status/conditions")?
        .as_array()?
        .iter()
        .find(|c| c.get("type").and_then(Value::as_str) == Some(type_))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn severity_order_is_argo_cds() {
        assert_eq!(
            aggregate(&[Status::Healthy, Status::Suspended]),
            Status::Suspended
        );
        assert_eq!(
            aggregate(&[Status::Progressing, Status::Missing]),
            Status::Missing
        );
        assert_eq!(
            aggregate(&[Status::Degraded, Status::Missing, Status::Healthy]),
            Status::Degraded
        );
        assert_eq!(
            aggregate(&[Status::Degraded, Status::Unknown]),
            Status::Unknown
        );
        assert_eq!(aggregate(&[]), Status::Healthy);
    }

    #[test]
    fn app_health_leaves_out_what_argo_cd_leaves_out() {
        let live = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c"}});
        let ignored = json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "d",
            "annotations": {"argocd.argoproj.io/ignore-healthcheck": "true"}}});
        let child = json!({"apiVersion": "argoproj.io/v1alpha1", "kind": "Application", "metadata": {"name": "a"}});
        let r = |live: Option<&'static Value>, status: Option<Status>, hook: bool| AppResource {
            live,
            status,
            in_git: true,
            hook,
        };
        let live: &'static Value = Box::leak(Box::new(live));
        let ignored: &'static Value = Box::leak(Box::new(ignored));
        let child: &'static Value = Box::leak(Box::new(child));
        assert_eq!(
            app_health([r(Some(live), Some(Status::Healthy), false)]),
            Status::Healthy
        );
        assert_eq!(
            app_health([
                r(Some(live), Some(Status::Healthy), false),
                r(Some(live), Some(Status::Degraded), true),
                r(Some(ignored), Some(Status::Degraded), false),
                r(Some(child), Some(Status::Unknown), false),
                r(None, None, false),
            ]),
            Status::Healthy,
            "hooks, ignored, unknown child apps and missing objects do not count"
        );
        assert_eq!(
            app_health([r(Some(child), Some(Status::Degraded), false)]),
            Status::Degraded,
            "a degraded child app counts"
        );
        assert_eq!(
            app_health([r(None, None, false), r(None, None, false)]),
            Status::Missing
        );
        assert_eq!(app_health(std::iter::empty()), Status::Healthy);
        assert_eq!(
            app_health([
                r(Some(live), None, false),
                r(Some(live), Some(Status::Progressing), false)
            ]),
            Status::Progressing
        );
    }

    #[test]
    fn deletion_pending_is_progressing_for_any_kind() {
        let obj = json!({"apiVersion": "example.com/v1", "kind": "Widget", "metadata": {"name": "w", "deletionTimestamp": "2026-01-01T00:00:00Z"}});
        assert_eq!(
            check(&obj),
            Some(Health::new(Status::Progressing, "Pending deletion"))
        );
    }

    #[test]
    fn checks_apply_to_their_exact_group_only() {
        let knative = json!({"apiVersion": "serving.knative.dev/v1", "kind": "Service", "metadata": {"name": "s"}});
        assert_eq!(check(&knative), None);
        let widget = json!({"apiVersion": "example.com/v1", "kind": "Deployment", "metadata": {"name": "d"}});
        assert_eq!(check(&widget), None);
    }
}
