//! Health rules as a table: object in, status and message out.
#![allow(clippy::expect_used, clippy::unwrap_used, missing_docs)]

use berth_engine::health::{Status, check};
use serde_json::{Value, json};

fn dep(spec: Value, status: Value, generation: i64) -> Value {
    json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web", "generation": generation}, "spec": spec, "status": status})
}

fn cron(spec: Value, status: Value) -> Value {
    let mut spec = spec;
    spec["schedule"] = json!("0 * * * *");
    json!({"apiVersion": "batch/v1", "kind": "CronJob", "metadata": {"name": "c"}, "spec": spec, "status": status})
}

fn hpa(api_version: &str, conditions: Value) -> Value {
    json!({"apiVersion": api_version, "kind": "HorizontalPodAutoscaler", "metadata": {"name": "h"}, "status": {"conditions": conditions}})
}

#[test]
fn health_table() {
    let cases: Vec<(&str, Value, Status, &str)> = vec![
        (
            "deployment healthy",
            dep(
                json!({"replicas": 2}),
                json!({"observedGeneration": 1, "replicas": 2, "updatedReplicas": 2, "availableReplicas": 2}),
                1,
            ),
            Status::Healthy,
            "",
        ),
        (
            "deployment paused",
            dep(json!({"replicas": 2, "paused": true}), json!({}), 1),
            Status::Suspended,
            "Deployment is paused",
        ),
        (
            "deployment not observed",
            dep(json!({"replicas": 2}), json!({"observedGeneration": 1}), 2),
            Status::Progressing,
            "Waiting for rollout to finish: observed deployment generation less than desired generation",
        ),
        (
            "deployment updating",
            dep(
                json!({"replicas": 3}),
                json!({"observedGeneration": 1, "replicas": 3, "updatedReplicas": 1}),
                1,
            ),
            Status::Progressing,
            "Waiting for rollout to finish: 1 out of 3 new replicas have been updated...",
        ),
        (
            "deployment old pending",
            dep(
                json!({"replicas": 2}),
                json!({"observedGeneration": 1, "replicas": 3, "updatedReplicas": 2, "availableReplicas": 2}),
                1,
            ),
            Status::Progressing,
            "Waiting for rollout to finish: 1 old replicas are pending termination...",
        ),
        (
            "deployment unavailable",
            dep(
                json!({"replicas": 2}),
                json!({"observedGeneration": 1, "replicas": 2, "updatedReplicas": 2, "availableReplicas": 1}),
                1,
            ),
            Status::Progressing,
            "Waiting for rollout to finish: 1 of 2 updated replicas are available...",
        ),
        (
            "deployment deadline",
            dep(
                json!({"replicas": 2}),
                json!({"observedGeneration": 1, "conditions": [{"type": "Progressing", "status": "False", "reason": "ProgressDeadlineExceeded"}]}),
                1,
            ),
            Status::Degraded,
            "Deployment \"web\" exceeded its progress deadline",
        ),
        (
            "pod running ready",
            json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"}, "spec": {}, "status": {"phase": "Running", "conditions": [{"type": "Ready", "status": "True"}]}}),
            Status::Healthy,
            "",
        ),
        (
            "pod crashloop",
            json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"}, "spec": {"restartPolicy": "Always"}, "status": {"phase": "Running", "containerStatuses": [{"name": "c", "state": {"waiting": {"reason": "CrashLoopBackOff", "message": "back-off 10s restarting failed container"}}}]}}),
            Status::Degraded,
            "back-off 10s restarting failed container",
        ),
        (
            "pod image pull",
            json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"}, "spec": {}, "status": {"phase": "Pending", "containerStatuses": [{"name": "c", "state": {"waiting": {"reason": "ErrImagePull", "message": "pull failed"}}}]}}),
            Status::Degraded,
            "pull failed",
        ),
        (
            "pod pending",
            json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"}, "spec": {}, "status": {"phase": "Pending", "message": "0/3 nodes are available"}}),
            Status::Progressing,
            "0/3 nodes are available",
        ),
        (
            "pod restarted not ready",
            json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"}, "spec": {}, "status": {"phase": "Running", "containerStatuses": [{"name": "c", "state": {"running": {}}, "lastState": {"terminated": {"exitCode": 1}}}]}}),
            Status::Degraded,
            "",
        ),
        (
            "pod failed exit code",
            json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"}, "spec": {"restartPolicy": "Never"}, "status": {"phase": "Failed", "containerStatuses": [{"name": "job", "state": {"terminated": {"exitCode": 2}}}]}}),
            Status::Degraded,
            "container \"job\" failed with exit code 2",
        ),
        (
            "pod oom",
            json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"}, "spec": {"restartPolicy": "Never"}, "status": {"phase": "Failed", "containerStatuses": [{"name": "job", "state": {"terminated": {"exitCode": 137, "reason": "OOMKilled"}}}]}}),
            Status::Degraded,
            "OOMKilled",
        ),
        (
            "pod hook running",
            json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"}, "spec": {"restartPolicy": "Never"}, "status": {"phase": "Running"}}),
            Status::Progressing,
            "",
        ),
        (
            "pod succeeded",
            json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"}, "spec": {"restartPolicy": "Never"}, "status": {"phase": "Succeeded"}}),
            Status::Healthy,
            "",
        ),
        (
            "service lb waiting",
            json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "s"}, "spec": {"type": "LoadBalancer"}, "status": {}}),
            Status::Progressing,
            "",
        ),
        (
            "service lb ready",
            json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "s"}, "spec": {"type": "LoadBalancer"}, "status": {"loadBalancer": {"ingress": [{"ip": "192.0.2.1"}]}}}),
            Status::Healthy,
            "",
        ),
        (
            "service cluster ip",
            json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "s"}, "spec": {"type": "ClusterIP"}}),
            Status::Healthy,
            "",
        ),
        (
            "pvc bound",
            json!({"apiVersion": "v1", "kind": "PersistentVolumeClaim", "metadata": {"name": "c"}, "status": {"phase": "Bound"}}),
            Status::Healthy,
            "",
        ),
        (
            "pvc pending",
            json!({"apiVersion": "v1", "kind": "PersistentVolumeClaim", "metadata": {"name": "c"}, "status": {"phase": "Pending"}}),
            Status::Progressing,
            "",
        ),
        (
            "pvc lost",
            json!({"apiVersion": "v1", "kind": "PersistentVolumeClaim", "metadata": {"name": "c"}, "status": {"phase": "Lost"}}),
            Status::Degraded,
            "",
        ),
        (
            "job running",
            json!({"apiVersion": "batch/v1", "kind": "Job", "metadata": {"name": "j"}, "status": {"active": 1}}),
            Status::Progressing,
            "",
        ),
        (
            "job complete",
            json!({"apiVersion": "batch/v1", "kind": "Job", "metadata": {"name": "j"}, "status": {"conditions": [{"type": "Complete", "status": "True", "message": "Reached expected number of succeeded pods"}]}}),
            Status::Healthy,
            "Reached expected number of succeeded pods",
        ),
        (
            "job failed",
            json!({"apiVersion": "batch/v1", "kind": "Job", "metadata": {"name": "j"}, "status": {"conditions": [{"type": "Failed", "status": "True", "message": "Job has reached the specified backoff limit"}]}}),
            Status::Degraded,
            "Job has reached the specified backoff limit",
        ),
        (
            "job suspended",
            json!({"apiVersion": "batch/v1", "kind": "Job", "metadata": {"name": "j"}, "status": {"conditions": [{"type": "Suspended", "status": "True"}]}}),
            Status::Suspended,
            "",
        ),
        (
            "replicaset failure",
            json!({"apiVersion": "apps/v1", "kind": "ReplicaSet", "metadata": {"name": "r", "generation": 1}, "spec": {"replicas": 2}, "status": {"observedGeneration": 1, "conditions": [{"type": "ReplicaFailure", "status": "True", "message": "pods \"r-x\" is forbidden: exceeded quota"}]}}),
            Status::Degraded,
            "pods \"r-x\" is forbidden: exceeded quota",
        ),
        (
            "replicaset waiting",
            json!({"apiVersion": "apps/v1", "kind": "ReplicaSet", "metadata": {"name": "r", "generation": 1}, "spec": {"replicas": 2}, "status": {"observedGeneration": 1, "availableReplicas": 1}}),
            Status::Progressing,
            "Waiting for rollout to finish: 1 out of 2 new replicas are available...",
        ),
        (
            "statefulset waiting",
            json!({"apiVersion": "apps/v1", "kind": "StatefulSet", "metadata": {"name": "db", "generation": 1}, "spec": {"replicas": 3, "updateStrategy": {"type": "RollingUpdate"}}, "status": {"observedGeneration": 1, "readyReplicas": 1}}),
            Status::Progressing,
            "Waiting for 2 pods to be ready...",
        ),
        (
            "statefulset done",
            json!({"apiVersion": "apps/v1", "kind": "StatefulSet", "metadata": {"name": "db", "generation": 1}, "spec": {"replicas": 3, "updateStrategy": {"type": "RollingUpdate"}}, "status": {"observedGeneration": 1, "readyReplicas": 3, "currentReplicas": 3, "updatedReplicas": 3, "currentRevision": "db-1", "updateRevision": "db-1"}}),
            Status::Healthy,
            "statefulset rolling update complete 3 pods at revision db-1...",
        ),
        (
            "statefulset partition",
            json!({"apiVersion": "apps/v1", "kind": "StatefulSet", "metadata": {"name": "db", "generation": 2}, "spec": {"replicas": 3, "updateStrategy": {"type": "RollingUpdate", "rollingUpdate": {"partition": 1}}}, "status": {"observedGeneration": 2, "readyReplicas": 3, "updatedReplicas": 1}}),
            Status::Progressing,
            "Waiting for partitioned roll out to finish: 1 out of 2 new pods have been updated...",
        ),
        (
            "daemonset rolling",
            json!({"apiVersion": "apps/v1", "kind": "DaemonSet", "metadata": {"name": "agent", "generation": 1}, "spec": {}, "status": {"observedGeneration": 1, "desiredNumberScheduled": 3, "updatedNumberScheduled": 1, "numberAvailable": 1}}),
            Status::Progressing,
            "Waiting for daemon set \"agent\" rollout to finish: 1 out of 3 new pods have been updated...",
        ),
        (
            "daemonset healthy",
            json!({"apiVersion": "apps/v1", "kind": "DaemonSet", "metadata": {"name": "agent", "generation": 1}, "spec": {}, "status": {"observedGeneration": 1, "desiredNumberScheduled": 3, "updatedNumberScheduled": 3, "numberAvailable": 3}}),
            Status::Healthy,
            "",
        ),
        (
            "ingress waiting",
            json!({"apiVersion": "networking.k8s.io/v1", "kind": "Ingress", "metadata": {"name": "i"}, "status": {}}),
            Status::Progressing,
            "",
        ),
        (
            "ingress ready",
            json!({"apiVersion": "networking.k8s.io/v1", "kind": "Ingress", "metadata": {"name": "i"}, "status": {"loadBalancer": {"ingress": [{"hostname": "lb.example"}]}}}),
            Status::Healthy,
            "",
        ),
        (
            "apiservice unavailable",
            json!({"apiVersion": "apiregistration.k8s.io/v1", "kind": "APIService", "metadata": {"name": "v1beta1.metrics.k8s.io"}, "status": {"conditions": [{"type": "Available", "status": "False", "reason": "MissingEndpoints", "message": "endpoints for service/metrics-server have no addresses"}]}}),
            Status::Progressing,
            "MissingEndpoints: endpoints for service/metrics-server have no addresses",
        ),
        (
            "apiservice new",
            json!({"apiVersion": "apiregistration.k8s.io/v1", "kind": "APIService", "metadata": {"name": "x"}}),
            Status::Progressing,
            "Waiting to be processed",
        ),
        (
            "cronjob suspended",
            cron(
                json!({"suspend": true}),
                json!({"lastScheduleTime": "2026-11-01T10:00:00Z"}),
            ),
            Status::Healthy,
            "CronJob is Suspended",
        ),
        (
            "cronjob without status",
            json!({"apiVersion": "batch/v1", "kind": "CronJob", "metadata": {"name": "c"}, "spec": {"schedule": "* * * * *"}}),
            Status::Progressing,
            "Waiting for CronJob",
        ),
        (
            "cronjob never scheduled",
            cron(json!({}), json!({})),
            Status::Healthy,
            "CronJob has not been scheduled yet",
        ),
        (
            "cronjob never succeeded",
            cron(
                json!({}),
                json!({"lastScheduleTime": "2026-11-01T10:00:00Z"}),
            ),
            Status::Healthy,
            "The CronJob never completed successfully. It may not be healthy",
        ),
        (
            "cronjob running after a failure",
            cron(
                json!({}),
                json!({"lastScheduleTime": "2026-11-01T11:00:00Z", "lastSuccessfulTime": "2026-11-01T10:00:05Z", "active": [{"name": "c-1"}]}),
            ),
            Status::Healthy,
            "The job is running. Its last execution may not have been successful",
        ),
        (
            "cronjob last run failed",
            cron(
                json!({}),
                json!({"lastScheduleTime": "2026-11-01T11:00:00Z", "lastSuccessfulTime": "2026-11-01T10:00:05Z"}),
            ),
            Status::Degraded,
            "CronJob has not completed its last execution successfully",
        ),
        (
            "cronjob last run succeeded",
            cron(
                json!({}),
                json!({"lastScheduleTime": "2026-11-01T11:00:00Z", "lastSuccessfulTime": "2026-11-01T11:00:07Z"}),
            ),
            Status::Healthy,
            "CronJob has completed its last execution successfully",
        ),
        (
            "hpa v2 able to scale",
            hpa(
                "autoscaling/v2",
                json!([{"type": "AbleToScale", "status": "True", "reason": "ReadyForNewScale", "message": "recommended size matches current size"}]),
            ),
            Status::Healthy,
            "recommended size matches current size",
        ),
        (
            "hpa v2 cannot read metrics",
            hpa(
                "autoscaling/v2",
                json!([{"type": "ScalingActive", "status": "False", "reason": "FailedGetResourceMetric", "message": "unable to get metrics for resource cpu"}, {"type": "AbleToScale", "status": "True", "reason": "SucceededGetScale", "message": "ok"}]),
            ),
            Status::Degraded,
            "unable to get metrics for resource cpu",
        ),
        (
            "hpa v2 first condition wins, as in Argo CD",
            hpa(
                "autoscaling/v2",
                json!([{"type": "AbleToScale", "status": "True", "reason": "SucceededGetScale", "message": "the HPA controller was able to get the target's current scale"}, {"type": "ScalingActive", "status": "False", "reason": "FailedGetResourceMetric", "message": "no metrics"}]),
            ),
            Status::Healthy,
            "the HPA controller was able to get the target's current scale",
        ),
        (
            "hpa v2 limited",
            hpa(
                "autoscaling/v2",
                json!([{"type": "ScalingLimited", "status": "True", "reason": "TooManyReplicas", "message": "the desired replica count is more than the maximum replica count"}]),
            ),
            Status::Healthy,
            "the desired replica count is more than the maximum replica count",
        ),
        (
            "hpa v2 without conditions",
            hpa("autoscaling/v2", json!([])),
            Status::Progressing,
            "Waiting to Autoscale",
        ),
        (
            "hpa v1 conditions in the annotation",
            json!({"apiVersion": "autoscaling/v1", "kind": "HorizontalPodAutoscaler", "metadata": {"name": "h", "annotations": {
                "autoscaling.alpha.kubernetes.io/conditions": "[{\"type\":\"AbleToScale\",\"status\":\"False\",\"reason\":\"FailedGetScale\",\"message\":\"deployments/scale.apps \\\"web\\\" not found\"}]"}}}),
            Status::Degraded,
            "deployments/scale.apps \"web\" not found",
        ),
    ];
    for (name, obj, status, message) in cases {
        let got = check(&obj).unwrap_or_else(|| panic!("{name}: no check applied"));
        assert_eq!(
            (got.status, got.message.as_str()),
            (status, message),
            "{name}"
        );
    }
}
