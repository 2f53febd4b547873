//! Installing Argo CD's CRDs and the default project, then applying the
//! Application from the design guide verbatim with kubectl.
#![allow(clippy::expect_used, clippy::unwrap_used, missing_docs)]

use berth_cluster::bootstrap;
use berth_testenv::TestNamespace;
use serde_json::Value;

const EXAMPLE: &str = r#"
apiVersion: argoproj.io/v1alpha1
kind: Application
metadata:
  name: my-service
  namespace: argocd
spec:
  project: default
  source:
    repoURL: https://github.com/yourorg/yourrepo
    targetRevision: main
    path: services/my-service
  destination:
    server: https://kubernetes.default.svc
    namespace: production
  syncPolicy:
    automated:
      prune: true
      selfHeal: true
    retry:
      limit: 5
      backoff: {duration: 5s, factor: 2, maxDuration: 3m}
  ignoreDifferences:
  - group: apps
    kind: Deployment
    jsonPointers: [/spec/replicas]
  aFieldFromAFutureArgoCd: {kept: true}
"#;

fn kubectl(ns: &TestNamespace, args: &[&str], stdin: Option<&str>) -> String {
    berth_testenv::kubectl_ok(&ns.kubeconfig, args, stdin).unwrap()
}

#[tokio::test]
async fn crds_namespace_and_default_project_then_argo_cd_manifests_apply() {
    // The shared control plane is shared by every test: bootstrap twice and
    // concurrently is exactly what must be harmless.
    let ns = TestNamespace::new("bootstrap").await.unwrap();
    let (a, b) = tokio::join!(
        bootstrap::install(&ns.client, "argocd"),
        bootstrap::install(&ns.client, "argocd")
    );
    a.unwrap();
    b.unwrap();
    let again = bootstrap::install(&ns.client, "argocd").await.unwrap();
    assert!(
        again.created.is_empty(),
        "nothing left to create: {again:?}"
    );

    let project: Value = serde_json::from_str(&kubectl(
        &ns,
        &["get", "appproject", "default", "-n", "argocd", "-o", "json"],
        None,
    ))
    .unwrap();
    assert_eq!(project["spec"]["sourceRepos"][0], "*");

    // A unique name, so this test owns its Application.
    let name = format!("my-service-{}", &ns.name[ns.name.len() - 6..]);
    let manifest = EXAMPLE.replace("name: my-service\n", &format!("name: {name}\n"));
    let out = kubectl(&ns, &["apply", "-f", "-"], Some(&manifest));
    assert!(out.contains("created"), "{out}");
    let app: Value = serde_json::from_str(&kubectl(
        &ns,
        &["get", "app", &name, "-n", "argocd", "-o", "json"],
        None,
    ))
    .unwrap();
    assert_eq!(app["spec"]["syncPolicy"]["automated"]["selfHeal"], true);
    assert_eq!(
        app["spec"]["syncPolicy"]["retry"]["backoff"]["maxDuration"],
        "3m"
    );
    assert_eq!(
        app["spec"]["aFieldFromAFutureArgoCd"]["kept"], true,
        "unknown fields are kept"
    );
    let table = kubectl(&ns, &["get", "applications", "-n", "argocd"], None);
    assert!(
        table.contains("SYNC STATUS") && table.contains("HEALTH STATUS"),
        "{table}"
    );
    kubectl(&ns, &["delete", "app", &name, "-n", "argocd"], None);
}
