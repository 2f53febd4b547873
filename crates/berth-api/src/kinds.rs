//! The order in which a sync applies kinds within one wave, and renderers
//! print them: Argo CD uses Helm's install order (namespaces and CRDs before
//! what needs them, workloads after their configuration). Kinds not in the
//! list, custom resources included, come after all of them. Pruning runs in
//! the reverse order.

/// Kinds in apply order.
pub const APPLY_ORDER: [&str; 36] = [
    "PriorityClass",
    "Namespace",
    "NetworkPolicy",
    "ResourceQuota",
    "LimitRange",
    "PodSecurityPolicy",
    "PodDisruptionBudget",
    "ServiceAccount",
    "Secret",
    "SecretList",
    "ConfigMap",
    "StorageClass",
    "PersistentVolume",
    "PersistentVolumeClaim",
    "CustomResourceDefinition",
    "ClusterRole",
    "ClusterRoleList",
    "ClusterRoleBinding",
    "ClusterRoleBindingList",
    "Role",
    "RoleList",
    "RoleBinding",
    "RoleBindingList",
    "Service",
    "DaemonSet",
    "Pod",
    "ReplicationController",
    "ReplicaSet",
    "Deployment",
    "HorizontalPodAutoscaler",
    "StatefulSet",
    "Job",
    "CronJob",
    "IngressClass",
    "Ingress",
    "APIService",
];

/// The position of `kind` in the apply order; unknown kinds sort last.
pub fn apply_rank(kind: &str) -> usize {
    APPLY_ORDER
        .iter()
        .position(|k| *k == kind)
        .unwrap_or(APPLY_ORDER.len())
}

/// Sort key for applying: kind rank, then kind name (so unknown kinds are
/// grouped), then namespace and name.
pub fn apply_key<'a>(
    kind: &'a str,
    namespace: &'a str,
    name: &'a str,
) -> (usize, &'a str, &'a str, &'a str) {
    (apply_rank(kind), kind, namespace, name)
}

/// The API group (empty for the core group) and kind of a manifest.
pub fn group_kind(obj: &serde_json::Value) -> (&str, &str) {
    let api_version = obj
        .get("apiVersion")
        .and_then(serde_json::Value::as_str)
        .unwrap_or_default();
    let group = api_version.rsplit_once('/').map(|(g, _)| g).unwrap_or("");
    (
        group,
        obj.get("kind")
            .and_then(serde_json::Value::as_str)
            .unwrap_or_default(),
    )
}

/// Built-in kinds that are cluster-scoped. Offline, without discovery,
/// every other kind (custom resources included) is taken as namespaced.
pub const CLUSTER_SCOPED: [&str; 19] = [
    "Namespace",
    "Node",
    "PersistentVolume",
    "StorageClass",
    "CSIDriver",
    "CSINode",
    "VolumeAttachment",
    "PriorityClass",
    "RuntimeClass",
    "CustomResourceDefinition",
    "APIService",
    "ClusterRole",
    "ClusterRoleBinding",
    "MutatingWebhookConfiguration",
    "ValidatingWebhookConfiguration",
    "ValidatingAdmissionPolicy",
    "ValidatingAdmissionPolicyBinding",
    "IngressClass",
    "CertificateSigningRequest",
];

/// Whether a built-in `kind` is cluster-scoped (see [`CLUSTER_SCOPED`]).
pub fn is_cluster_scoped(kind: &str) -> bool {
    CLUSTER_SCOPED.contains(&kind)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dependencies_come_first() {
        let mut kinds = vec![
            "Deployment",
            "Widget",
            "CustomResourceDefinition",
            "Namespace",
            "ConfigMap",
            "Service",
            "Ingress",
        ];
        kinds.sort_by_key(|k| apply_key(k, "", ""));
        assert_eq!(
            kinds,
            [
                "Namespace",
                "ConfigMap",
                "CustomResourceDefinition",
                "Service",
                "Deployment",
                "Ingress",
                "Widget"
            ]
        );
    }

    #[test]
    fn unknown_kinds_sort_last_by_name() {
        let mut kinds = vec!["Zebra", "APIService", "Alpha"];
        kinds.sort_by_key(|k| apply_key(k, "", ""));
        assert_eq!(kinds, ["APIService", "Alpha", "Zebra"]);
    }
}
