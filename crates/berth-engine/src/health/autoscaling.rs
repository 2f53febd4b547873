//! `autoscaling` HorizontalPodAutoscaler, as Argo CD judges it: by the first
//! condition that says something, in the order the controller wrote them.

use serde_json::Value;

use super::{Health, Status};

/// Condition (type, reason) pairs that mean the autoscaler cannot work.
const DEGRADED: [(&str, &str); 4] = [
    ("AbleToScale", "FailedGetScale"),
    ("AbleToScale", "FailedUpdateScale"),
    ("ScalingActive", "FailedGetResourceMetric"),
    ("ScalingActive", "InvalidSelector"),
];

/// HorizontalPodAutoscaler of `autoscaling/v1` (conditions in the
/// `autoscaling.alpha.kubernetes.io/conditions` annotation) or `v2*`
/// (`status.conditions`).
pub(super) fn hpa(obj: &Value) -> Health {
    let api_version = obj
        .get("apiVersion")
        .and_then(Value::as_str)
        .unwrap_or_default();
    let conditions: Vec<Value> = if api_version == "autoscaling/v1" {
        obj.pointer("/metadata/annotations")
            .and_then(|a| a.get("autoscaling.alpha.kubernetes.io/conditions"))
            .and_then(Value::as_str)
            .and_then(|s| serde_json::from_str::<Vec<Value>>(s).ok())
            .unwrap_or_default()
    } else {
        obj.pointer("/status/conditions")
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default()
    };
    let field = |c: &Value, k: &str| {
        c.get(k)
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string()
    };
    for c in &conditions {
        let (type_, reason) = (field(c, "type"), field(c, "reason"));
        if DEGRADED.contains(&(type_.as_str(), reason.as_str())) {
            return Health::new(Status::Degraded, field(c, "message"));
        }
        if (type_ == "AbleToScale" || type_ == "ScalingLimited") && field(c, "status") == "True" {
            return Health::new(Status::Healthy, field(c, "message"));
        }
    }
    Health::new(Status::Progressing, "Waiting to Autoscale")
}
