//! `apps/v1` workloads, with the rules of `kubectl rollout status` that
//! Argo CD follows.

use serde_json::Value;

use super::{Health, Status, condition, int, text};

/// Deployment.
pub(super) fn deployment(obj: &Value) -> Health {
    if obj.pointer("/spec/paused").and_then(Value::as_bool) == Some(true) {
        return Health::new(Status::Suspended, "Deployment is paused");
    }
    if int(obj, "/metadata/generation") > int(obj, "/status/observedGeneration") {
        return Health::new(
            Status::Progressing,
            "Waiting for rollout to finish: observed deployment generation less than desired generation",
        );
    }
    let name = text(obj, "/metadata/name");
    let (replicas, updated, total, available) = (
        obj.pointer("/spec/replicas").and_then(Value::as_i64),
        int(obj, "/status/updatedReplicas"),
        int(obj, "/status/replicas"),
        int(obj, "/status/availableReplicas"),
    );
    if condition(obj, "Progressing")
        .and_then(|c| c.get("reason"))
        .and_then(Value::as_str)
        == Some("ProgressDeadlineExceeded")
    {
        return Health::new(
            Status::Degraded,
            format!("Deployment {name:?} exceeded its progress deadline"),
        );
    }
    if let Some(r) = replicas.filter(|r| updated < *r) {
        return Health::new(
            Status::Progressing,
            format!(
                "Waiting for rollout to finish: {updated} out of {r} new replicas have been updated..."
            ),
        );
    }
    if total > updated {
        return Health::new(
            Status::Progressing,
            format!(
                "Waiting for rollout to finish: {} old replicas are pending termination...",
                total - updated
            ),
        );
    }
    if available < updated {
        return Health::new(
            Status::Progressing,
            format!(
                "Waiting for rollout to finish: {available} of {updated} updated replicas are available..."
            ),
        );
    }
    Health::new(Status::Healthy, "")
}

/// ReplicaSet.
pub(super) fn replica_set(obj: &Value) -> Health {
    if int(obj, "/metadata/generation") > int(obj, "/status/observedGeneration") {
        return Health::new(
            Status::Progressing,
            "Waiting for rollout to finish: observed replica set generation less than desired generation",
        );
    }
    if let Some(c) = condition(obj, "ReplicaFailure")
        .filter(|c| c.get("status").and_then(Value::as_str) == Some("True"))
    {
        return Health::new(
            Status::Degraded,
            c.get("message").and_then(Value::as_str).unwrap_or_default(),
        );
    }
    let available = int(obj, "/status/availableReplicas");
    if let Some(r) = obj
        .pointer("/spec/replicas")
        .and_then(Value::as_i64)
        .filter(|r| available < *r)
    {
        return Health::new(
            Status::Progressing,
            format!(
                "Waiting for rollout to finish: {available} out of {r} new replicas are available..."
            ),
        );
    }
    Health::new(Status::Healthy, "")
}

/// StatefulSet.
pub(super) fn stateful_set(obj: &Value) -> Health {
    let observed = int(obj, "/status/observedGeneration");
    if observed == 0 || int(obj, "/metadata/generation") > observed {
        return Health::new(
            Status::Progressing,
            "Waiting for statefulset spec update to be observed...",
        );
    }
    let replicas = obj.pointer("/spec/replicas").and_then(Value::as_i64);
    let ready = int(obj, "/status/readyReplicas");
    if let Some(r) = replicas.filter(|r| ready < *r) {
        return Health::new(
            Status::Progressing,
            format!("Waiting for {} pods to be ready...", r - ready),
        );
    }
    let updated = int(obj, "/status/updatedReplicas");
    match text(obj, "/spec/updateStrategy/type") {
        "OnDelete" => {
            return Health::new(
                Status::Healthy,
                format!("statefulset has {ready} ready pods"),
            );
        }
        "RollingUpdate" | ""
            if obj
                .pointer("/spec/updateStrategy/rollingUpdate")
                .is_some_and(Value::is_object) =>
        {
            if let (Some(r), Some(partition)) = (
                replicas,
                obj.pointer("/spec/updateStrategy/rollingUpdate/partition")
                    .and_then(Value::as_i64),
            ) && updated < r - partition
            {
                return Health::new(
                    Status::Progressing,
                    format!(
                        "Waiting for partitioned roll out to finish: {updated} out of {} new pods have been updated...",
                        r - partition
                    ),
                );
            }
            return Health::new(
                Status::Healthy,
                format!("partitioned roll out complete: {updated} new pods have been updated..."),
            );
        }
        _ => {}
    }
    let (update_rev, current_rev) = (
        text(obj, "/status/updateRevision"),
        text(obj, "/status/currentRevision"),
    );
    if update_rev != current_rev {
        return Health::new(
            Status::Progressing,
            format!(
                "waiting for statefulset rolling update to complete {updated} pods at revision {update_rev}..."
            ),
        );
    }
    Health::new(
        Status::Healthy,
        format!(
            "statefulset rolling update complete {} pods at revision {current_rev}...",
            int(obj, "/status/currentReplicas")
        ),
    )
}

/// DaemonSet.
pub(super) fn daemon_set(obj: &Value) -> Health {
    if int(obj, "/metadata/generation") > int(obj, "/status/observedGeneration") {
        return Health::new(
            Status::Progressing,
            "Waiting for rollout to finish: observed daemon set generation less than desired generation",
        );
    }
    let name = text(obj, "/metadata/name");
    let (updated, desired, available) = (
        int(obj, "/status/updatedNumberScheduled"),
        int(obj, "/status/desiredNumberScheduled"),
        int(obj, "/status/numberAvailable"),
    );
    if text(obj, "/spec/updateStrategy/type") == "OnDelete" {
        return Health::new(
            Status::Healthy,
            format!("daemon set {updated} out of {desired} new pods have been updated"),
        );
    }
    if updated < desired {
        return Health::new(
            Status::Progressing,
            format!(
                "Waiting for daemon set {name:?} rollout to finish: {updated} out of {desired} new pods have been updated..."
            ),
        );
    }
    if available < desired {
        return Health::new(
            Status::Progressing,
            format!(
                "Waiting for daemon set {name:?} rollout to finish: {available} of {desired} updated pods are available..."
            ),
        );
    }
    Health::new(Status::Healthy, "")
}
