//! The CustomResourceDefinitions Berth installs when they are missing:
//! Argo CD's Application and AppProject (schemas that keep every field
//! Argo CD defines), Berth's own in its API group `berth.io`, and the
//! `default` AppProject Argo CD creates.

/// Argo CD's control namespace, Berth's default.
pub const CONTROL_NAMESPACE: &str = "argocd";

/// The Application CRD (YAML).
pub const APPLICATION_CRD: &str = include_str!("../../../deploy/crds/application.yaml");

/// The AppProject CRD (YAML).
pub const APPPROJECT_CRD: &str = include_str!("../../../deploy/crds/appproject.yaml");

/// The ApplicationSet CRD (YAML).
pub const APPLICATIONSET_CRD: &str = include_str!("../../../deploy/crds/applicationset.yaml");

/// Berth's extension API group.
pub const BERTH_GROUP: &str = "berth.io";

/// Berth's per-sync record CRD (YAML).
pub const SYNCRECORD_CRD: &str = include_str!("../../../deploy/crds/syncrecord.yaml");

/// Berth's audit log CRD (YAML).
pub const AUDITENTRY_CRD: &str = include_str!("../../../deploy/crds/auditentry.yaml");

/// Berth's sync approval gate CRD (YAML), cluster-scoped.
pub const APPROVALGATE_CRD: &str = include_str!("../../../deploy/crds/approvalgate.yaml");

/// Berth's approval record CRD (YAML), cluster-scoped.
pub const APPROVALRECORD_CRD: &str = include_str!("../../../deploy/crds/approvalrecord.yaml");

/// Berth's sync request CRD (YAML).
pub const SYNCREQUEST_CRD: &str = include_str!("../../../deploy/crds/syncrequest.yaml");

/// The `default` AppProject, as Argo CD creates it: any source, any
/// destination, every cluster-scoped kind.
pub fn default_project(namespace: &str) -> serde_json::Value {
    serde_json::json!({
        "apiVersion": "argoproj.io/v1alpha1",
        "kind": "AppProject",
        "metadata": {"name": "default", "namespace": namespace},
        "spec": {
            "sourceRepos": ["*"],
            "destinations": [{"server": "*", "namespace": "*"}],
            "clusterResourceWhitelist": [{"group": "*", "kind": "*"}]
        }
    })
}

/// Every CRD Berth installs, parsed.
pub fn crds() -> Result<Vec<serde_json::Value>, serde_saphyr::Error> {
    [
        APPLICATION_CRD,
        APPPROJECT_CRD,
        SYNCRECORD_CRD,
        AUDITENTRY_CRD,
        APPROVALGATE_CRD,
        SYNCREQUEST_CRD,
        APPROVALRECORD_CRD,
        APPLICATIONSET_CRD,
    ]
    .iter()
    .map(|text| serde_saphyr::from_str(text))
    .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crds_parse_and_name_argo_cds_types() {
        let crds = crds().unwrap();
        assert_eq!(crds[0]["metadata"]["name"], "applications.argoproj.io");
        assert_eq!(crds[0]["spec"]["names"]["shortNames"][0], "app");
        assert_eq!(crds[1]["metadata"]["name"], "appprojects.argoproj.io");
        assert_eq!(crds[2]["spec"]["group"], BERTH_GROUP);
        assert_eq!(crds[3]["metadata"]["name"], "auditentries.berth.io");
        assert_eq!(
            crds[4]["spec"]["scope"], "Cluster",
            "gates: administrators only"
        );
        assert_eq!(crds[5]["metadata"]["name"], "syncrequests.berth.io");
        assert_eq!(crds[7]["metadata"]["name"], "applicationsets.argoproj.io");
        assert_eq!(default_project("argocd")["spec"]["sourceRepos"][0], "*");
    }
}
