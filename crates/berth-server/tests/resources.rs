//! What an application is made of, over real HTTP: managed resources with
//! masked Secrets, the diff now and against another branch, manifests at a
//! revision, the resource tree (Deployment → ReplicaSet → Pod, built by
//! the control plane's own controllers), one live resource, events, and
//! resource actions (shipped and from `argocd-cm`, with RBAC).
#![allow(clippy::expect_used, clippy::unwrap_used, missing_docs)]

use std::time::Duration;

use berth_controller::controller::{Config, Controller};
use berth_server::{Server, ServerConfig};
use berth_testenv::TestNamespace;
use berth_testenv::git::{GitFixture, TempDir, git_daemon};
use serde_json::Value;

fn kubectl_stdin(kubeconfig: &std::path::Path, manifest: &str) {
    berth_testenv::kubectl_ok(kubeconfig, &["apply", "-f", "-"], Some(manifest)).unwrap();
}

async fn until(what: &str, mut f: impl AsyncFnMut() -> bool) {
    for _ in 0..600 {
        if f().await {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("timed out waiting for {what}");
}

const DEPLOYMENT: &str = "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: web\nspec:\n  replicas: 1\n  selector:\n    matchLabels:\n      app: web\n  template:\n    metadata:\n      labels:\n        app: web\n    spec:\n      containers:\n      - name: web\n        image: registry.example/web:1.0\n";

fn config_map(color: &str) -> String {
    format!(
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: settings\ndata:\n  color: {color}\n"
    )
}

const SECRET: &str = "apiVersion: v1\nkind: Secret\nmetadata:\n  name: creds\nstringData:\n  password: hunter2-in-git\n";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn resource_views_over_http() {
    let ns = TestNamespace::new("views").await.unwrap();
    let control = format!("{}-argocd", ns.name);
    let fixture = GitFixture::new().unwrap();
    let repo = fixture
        .create_repo(
            "views",
            &[
                ("app/deploy.yaml", DEPLOYMENT),
                ("app/cm.yaml", &config_map("blue")),
                ("app/secret.yaml", SECRET),
            ],
        )
        .unwrap();
    // A branch with a change, to ask "what would this do".
    repo.commit(&[("app/cm.yaml", &config_map("green"))], "green")
        .unwrap();
    repo.push("next").unwrap();
    let daemon = git_daemon(&fixture).unwrap();
    let url = format!("git://127.0.0.1:{}/views.git", daemon.port);
    let cache = TempDir::new("views-cache").unwrap();
    let config = Config::new(&control, cache.path().to_path_buf());
    let views = config.views.clone();
    let controller = Controller::start(ns.client.clone(), config).await.unwrap();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let running = tokio::spawn(controller.run(async {
        let _ = stopped.await;
    }));
    let server = Server::start(
        ns.client.clone(),
        ServerConfig {
            namespace: control.clone(),
            listen: "127.0.0.1:0".parse().unwrap(),
            views: Some(views),
        },
    )
    .await
    .unwrap();
    let base = server.url();
    let token = server.token_for("admin").unwrap();
    let http = reqwest::Client::new();
    let get = async |path: &str| -> (u16, Value) {
        let r = http
            .get(format!("{base}{path}"))
            .bearer_auth(&token)
            .send()
            .await
            .unwrap();
        let status = r.status().as_u16();
        (status, r.json().await.unwrap_or(Value::Null))
    };

    // A name no other test's app has: tracking is by name, cluster-wide.
    let app = format!("web-{}", &ns.name[ns.name.len() - 6..]);
    let manifest = format!(
        "apiVersion: argoproj.io/v1alpha1\nkind: Application\nmetadata:\n  name: {app}\n  namespace: {control}\nspec:\n  project: default\n  source:\n    repoURL: {url}\n    targetRevision: main\n    path: app\n  destination:\n    server: https://kubernetes.default.svc\n    namespace: {}\n  syncPolicy:\n    automated: {{}}\n",
        ns.name
    );
    berth_testenv::kubectl_ok(&ns.kubeconfig, &["apply", "-f", "-"], Some(&manifest)).unwrap();
    until("web synced", async || {
        let (_, a) = get(&format!("/api/v1/applications/{app}")).await;
        a["status"]["sync"]["status"] == "Synced"
            && a["status"]["operationState"]["phase"] == "Succeeded"
    })
    .await;

    // Managed resources: Argo CD's shape, states as JSON strings, the
    // Secret's value never shown.
    let (status, managed) = get(&format!("/api/v1/applications/{app}/managed-resources")).await;
    assert_eq!(status, 200, "{managed}");
    let items = managed["items"].as_array().unwrap();
    let kinds: Vec<&str> = items.iter().map(|i| i["kind"].as_str().unwrap()).collect();
    assert!(
        kinds.contains(&"Deployment") && kinds.contains(&"ConfigMap") && kinds.contains(&"Secret"),
        "{kinds:?}"
    );
    assert!(
        !managed.to_string().contains("hunter2"),
        "Secret values masked"
    );
    assert!(
        !managed.to_string().contains("aHVudGVyMi"),
        "not even base64"
    );
    let cm = items.iter().find(|i| i["kind"] == "ConfigMap").unwrap();
    let live: Value = serde_json::from_str(cm["liveState"].as_str().unwrap()).unwrap();
    assert_eq!(live["data"]["color"], "blue");
    assert_eq!(cm["modified"], false);
    let (_, only) = get(&format!(
        "/api/v1/applications/{app}/managed-resources?kind=Deployment"
    ))
    .await;
    assert_eq!(only["items"].as_array().unwrap().len(), 1);

    // The diff: nothing now; against the branch, the ConfigMap's change.
    let (status, now) = get(&format!("/api/v1/applications/{app}/diff")).await;
    assert_eq!(status, 200, "{now}");
    assert_eq!(now["sync"], "Synced");
    assert!(
        now["items"]
            .as_array()
            .unwrap()
            .iter()
            .all(|i| i["diff"] == "")
    );
    let (status, next) = get(&format!("/api/v1/applications/{app}/diff?revision=next")).await;
    assert_eq!(status, 200, "{next}");
    assert_eq!(next["sync"], "OutOfSync");
    let changed: Vec<&Value> = next["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|i| i["diff"] != "")
        .collect();
    assert_eq!(changed.len(), 1, "{next}");
    let diff = changed[0]["diff"].as_str().unwrap();
    assert!(
        diff.contains("-  color: blue") && diff.contains("+  color: green"),
        "{diff}"
    );
    assert_eq!(changed[0]["kind"], "ConfigMap");
    let (status, bad) = get(&format!(
        "/api/v1/applications/{app}/diff?revision=no-such-branch"
    ))
    .await;
    assert_eq!(status, 400, "{bad}");
    assert!(
        bad["message"].as_str().unwrap().contains("no-such-branch"),
        "{bad}"
    );
    // Asking changed nothing: the app is still at main.
    let (_, a) = get(&format!("/api/v1/applications/{app}")).await;
    assert_eq!(a["status"]["sync"]["status"], "Synced");

    // Manifests at a revision.
    let (status, m) = get(&format!(
        "/api/v1/applications/{app}/manifests?revision=next"
    ))
    .await;
    assert_eq!(status, 200, "{m}");
    let manifests = m["manifests"].as_array().unwrap();
    assert_eq!(manifests.len(), 3);
    assert!(
        manifests
            .iter()
            .any(|s| s.as_str().unwrap().contains("green"))
    );
    assert!(!m.to_string().contains("hunter2"));

    // The tree: the Deployment, the ReplicaSet it owns, the Pod that owns.
    let mut tree = Value::Null;
    until(
        "Deployment → ReplicaSet → Pod in the tree",
        async || {
            tree = get(&format!("/api/v1/applications/{app}/resource-tree"))
                .await
                .1;
            let nodes = tree["nodes"].as_array().cloned().unwrap_or_default();
            let of = |k: &str| nodes.iter().find(|n| n["kind"] == k).cloned();
            match (of("Deployment"), of("ReplicaSet"), of("Pod")) {
                (Some(d), Some(rs), Some(pod)) => {
                    rs["parentRefs"][0]["uid"] == d["uid"]
                        && pod["parentRefs"][0]["uid"] == rs["uid"]
                }
                _ => false,
            }
        },
    )
    .await;
    let nodes = tree["nodes"].as_array().unwrap();
    let deployment = nodes.iter().find(|n| n["kind"] == "Deployment").unwrap();
    assert_eq!(deployment["images"][0], "registry.example/web:1.0");
    assert!(deployment["health"]["status"].is_string());
    let rs = nodes.iter().find(|n| n["kind"] == "ReplicaSet").unwrap();
    assert_eq!(rs["group"], "apps");

    // One live resource: an owned one is the app's, another object is not.
    let rs_name = rs["name"].as_str().unwrap();
    let (status, r) = get(&format!(
        "/api/v1/applications/{app}/resource?namespace={}&resourceName={rs_name}&group=apps&kind=ReplicaSet&version=v1",
        ns.name
    ))
    .await;
    assert_eq!(status, 200, "{r}");
    let manifest: Value = serde_json::from_str(r["manifest"].as_str().unwrap()).unwrap();
    assert_eq!(manifest["metadata"]["name"], rs_name);
    let (status, r) = get(&format!(
        "/api/v1/applications/{app}/resource?namespace={}&resourceName=creds&kind=Secret&version=v1",
        ns.name
    ))
    .await;
    assert_eq!(status, 200, "{r}");
    assert!(!r.to_string().contains("aHVudGVyMi"), "Secret masked: {r}");
    berth_testenv::kubectl_ok(
        &ns.kubeconfig,
        &["create", "configmap", "stranger", "-n", &ns.name],
        None,
    )
    .unwrap();
    until("the stranger is cached", async || {
        get(&format!(
            "/api/v1/applications/{app}/resource?namespace={}&resourceName=stranger&kind=ConfigMap",
            ns.name
        ))
        .await
        .0 == 404
    })
    .await;
    let (status, _) = get(&format!(
        "/api/v1/applications/{app}/resource?kind=ConfigMap"
    ))
    .await;
    assert_eq!(status, 400, "resourceName required");

    // Events: the app's (the sync's start and end), and a resource's.
    let (status, events) = get(&format!("/api/v1/applications/{app}/events")).await;
    assert_eq!(status, 200, "{events}");
    let reasons: Vec<&str> = events["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|e| e["reason"].as_str())
        .collect();
    assert!(!reasons.is_empty(), "the sync's events: {events}");
    let (status, events) = get(&format!(
        "/api/v1/applications/{app}/events?resourceNamespace={}&resourceName=web",
        ns.name
    ))
    .await;
    assert_eq!(status, 200, "{events}");
    until("the Deployment's scaling event", async || {
        get(&format!(
            "/api/v1/applications/{app}/events?resourceNamespace={}&resourceName=web",
            ns.name
        ))
        .await
        .1["items"]
            .as_array()
            .is_some_and(|i| i.iter().any(|e| e["reason"] == "ScalingReplicaSet"))
    })
    .await;
    let (status, _) = get(&format!(
        "/api/v1/applications/{app}/events?resourceNamespace={}&resourceName=stranger",
        ns.name
    ))
    .await;
    assert_eq!(status, 404, "another object's events are not the app's");
    let (status, _) = get("/api/v1/applications/nope/resource-tree").await;
    assert_eq!(status, 404);

    // Orphaned resources, when the project asks for them.
    berth_testenv::kubectl_ok(
        &ns.kubeconfig,
        &[
            "patch",
            "appproject",
            "default",
            "-n",
            &control,
            "--type",
            "merge",
            "-p",
            r#"{"spec":{"orphanedResources":{"warn":true,"ignore":[{"kind":"Secret"}]}}}"#,
        ],
        None,
    )
    .unwrap();
    let (_, _) = get(&format!("/api/v1/applications/{app}?refresh=normal")).await;
    until("the orphan reported", async || {
        get(&format!("/api/v1/applications/{app}")).await.1["status"]["conditions"]
            .as_array()
            .is_some_and(|c| {
                c.iter().any(|c| {
                    c["type"] == "OrphanedResourceWarning"
                        && c["message"] == "Application has 1 orphaned resources"
                })
            })
    })
    .await;
    let (_, tree) = get(&format!("/api/v1/applications/{app}/resource-tree")).await;
    let orphans: Vec<&str> = tree["orphanedNodes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n["name"].as_str().unwrap())
        .collect();
    assert_eq!(
        orphans,
        ["stranger"],
        "owned, built-in and ignored ones left out"
    );

    // Metrics, with Argo CD's names, and the health endpoints.
    let r = http.get(format!("{base}/metrics")).send().await.unwrap();
    assert_eq!(r.status(), 200);
    let text = r.text().await.unwrap();
    for needle in [
        format!("name=\"{app}\""),
        "sync_status=\"Synced\"".to_string(),
        "argocd_app_sync_total{".to_string(),
        "phase=\"Succeeded\",project=\"default\"} 1".to_string(),
        "argocd_app_reconcile_bucket{".to_string(),
        "argocd_cluster_api_resource_objects{".to_string(),
        "argocd_git_request_total{".to_string(),
        "request_type=\"ls-remote\"".to_string(),
        "process_resident_memory_bytes ".to_string(),
    ] {
        assert!(text.contains(&needle), "{needle} in:\n{text}");
    }
    assert_eq!(
        http.get(format!("{base}/healthz"))
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
    assert_eq!(
        http.get(format!("{base}/readyz"))
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
    // Resource actions: what a Deployment offers, a restart through
    // Argo CD's first form, pause through /v2, refusals named.
    let q = format!(
        "namespace={}&resourceName=web&group=apps&kind=Deployment",
        ns.name
    );
    let (status, listed) = get(&format!("/api/v1/applications/{app}/resource/actions?{q}")).await;
    assert_eq!(status, 200, "{listed}");
    let offered: Vec<(String, bool)> = listed["actions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| {
            (
                a["name"].as_str().unwrap().to_string(),
                a["disabled"] == true,
            )
        })
        .collect();
    assert_eq!(
        offered,
        [
            ("pause".to_string(), false),
            ("restart".to_string(), false),
            ("resume".to_string(), true)
        ]
    );
    let (status, none) = get(&format!(
        "/api/v1/applications/{app}/resource/actions?namespace={}&resourceName=settings&kind=ConfigMap",
        ns.name
    ))
    .await;
    assert_eq!(status, 400, "{none}");
    assert!(
        none["message"]
            .as_str()
            .unwrap()
            .contains("ConfigMap has no resource actions"),
        "{none}"
    );
    let post = async |user_token: &str, path: &str, body: Value| -> (u16, Value) {
        let r = http
            .post(format!("{base}{path}"))
            .bearer_auth(user_token)
            .json(&body)
            .send()
            .await
            .unwrap();
        let status = r.status().as_u16();
        (status, r.json().await.unwrap_or(Value::Null))
    };
    let kubectl = |args: &[&str]| berth_testenv::kubectl_ok(&ns.kubeconfig, args, None).unwrap();
    let restarted_at = || {
        kubectl(&[
            "get",
            "deployment",
            "web",
            "-n",
            &ns.name,
            "-o",
            "jsonpath={.spec.template.metadata.annotations.kubectl\\.kubernetes\\.io/restartedAt}",
        ])
    };
    assert_eq!(restarted_at(), "", "not restarted yet");
    let (status, answer) = post(
        &token,
        &format!("/api/v1/applications/{app}/resource/actions?{q}"),
        serde_json::json!("restart"),
    )
    .await;
    assert_eq!(status, 200, "{answer}");
    let at = restarted_at();
    assert!(at.ends_with('Z') && at.len() == 20, "restartedAt {at:?}");
    // The restart is not drift: the app stays Synced.
    let (_, a) = get(&format!("/api/v1/applications/{app}?refresh=normal")).await;
    assert_eq!(a["metadata"]["name"], app.as_str());
    tokio::time::sleep(Duration::from_secs(2)).await;
    let (_, a) = get(&format!("/api/v1/applications/{app}")).await;
    assert_eq!(a["status"]["sync"]["status"], "Synced", "{}", a["status"]);
    // Disabled and unknown actions are refused by name.
    let (status, e) = post(
        &token,
        &format!("/api/v1/applications/{app}/resource/actions?{q}"),
        serde_json::json!("resume"),
    )
    .await;
    assert_eq!(status, 400);
    assert!(e["message"].as_str().unwrap().contains("disabled"), "{e}");
    // /v2: the resource in the body.
    let (status, e) = post(
        &token,
        &format!("/api/v1/applications/{app}/resource/actions/v2"),
        serde_json::json!({"action": "pause", "namespace": ns.name, "resourceName": "web", "group": "apps", "kind": "Deployment"}),
    )
    .await;
    assert_eq!(status, 200, "{e}");
    assert_eq!(
        kubectl(&[
            "get",
            "deployment",
            "web",
            "-n",
            &ns.name,
            "-o",
            "jsonpath={.spec.paused}"
        ]),
        "true"
    );
    // An object the app only owns (a Pod) offers no action.
    let pod = kubectl(&[
        "get",
        "pods",
        "-n",
        &ns.name,
        "-l",
        "app=web",
        "-o",
        "jsonpath={.items[0].metadata.name}",
    ]);
    let (status, e) = post(
        &token,
        &format!("/api/v1/applications/{app}/resource/actions/v2"),
        serde_json::json!({"action": "restart", "namespace": ns.name, "resourceName": pod, "kind": "Pod"}),
    )
    .await;
    assert!(status == 400 || status == 404, "{status} {e}");
    // RBAC: `action/<group>/<kind>/<name>`; ops may restart, not resume.
    kubectl_stdin(
        &ns.kubeconfig,
        &format!(
            "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: argocd-rbac-cm\n  namespace: {control}\ndata:\n  policy.csv: |\n    p, ops, applications, get, */*, allow\n    p, ops, applications, action/apps/Deployment/restart, */*, allow\n"
        ),
    );
    let ops = server.token_for("ops").unwrap();
    let mut refused = 0;
    until("the policy read", async || {
        let (status, _) = post(
            &ops,
            &format!("/api/v1/applications/{app}/resource/actions?{q}"),
            serde_json::json!("resume"),
        )
        .await;
        refused = status;
        status == 403
    })
    .await;
    assert_eq!(refused, 403);
    let (status, e) = post(
        &ops,
        &format!("/api/v1/applications/{app}/resource/actions?{q}"),
        serde_json::json!("restart"),
    )
    .await;
    assert_eq!(status, 200, "{e}");
    // A custom action from argocd-cm, replacing the shipped ones.
    kubectl_stdin(
        &ns.kubeconfig,
        &format!(
            "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: argocd-cm\n  namespace: {control}\ndata:\n  resource.customizations.actions.apps_Deployment: |\n    discovery.lua: |\n      return {{[\"scale-to-two\"] = {{displayName = \"Scale to 2\"}}}}\n    definitions:\n    - name: scale-to-two\n      action.lua: |\n        obj.spec.replicas = 2\n        return obj\n"
        ),
    );
    until("the custom action listed", async || {
        let (_, l) = get(&format!("/api/v1/applications/{app}/resource/actions?{q}")).await;
    // An action may change only the object it runs on.
    kubectl_stdin(
        &ns.kubeconfig,
        &format!("apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: argocd-cm\n  namespace: {control}\ndata:\n  resource.customizations.actions.apps_Deployment: |\n    discovery.lua: |\n      return {{[\"scale-to-two\"] = {{}}, elsewhere = {{}}, note = {{}}, escape = {{}}}}\n    definitions:\n    - name: scale-to-two\n      action.lua: |\n        obj.spec.replicas = 2\n        return obj\n    - name: elsewhere\n      action.lua: |\n        obj.metadata.name = \"other\"\n        return obj\n    - name: note\n      action.lua: |\n        return {{{{operation = \"create\", resource = {{apiVersion = \"v1\", kind = \"ConfigMap\", metadata = {{name = \"note\"}}, data = {{by = \"action\"}}}}}}}}\n    - name: escape\n      action.lua: |\n        return {{{{operation = \"create\", resource = {{apiVersion = \"v1\", kind = \"ConfigMap\", metadata = {{name = \"note\", namespace = \"kube-system\"}}}}}}}}\n"),
    );
    let mut refusal = Value::Null;
    for _ in 0..100 {
        let (status, e) = post(
            &token,
            &format!("/api/v1/applications/{app}/resource/actions?{q}"),
            serde_json::json!("elsewhere"),
        )
        .await;
        refusal = serde_json::json!({"status": status, "body": e});
        if status == 400 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(
        refusal["body"]["message"].as_str().unwrap().contains("may only change the Deployment it runs on"),
        "{refusal}"
    );
    // Created objects land beside the one the action runs on, nowhere else.
    let (status, e) = post(
        &token,
        &format!("/api/v1/applications/{app}/resource/actions?{q}"),
        serde_json::json!("note"),
    )
    .await;
    assert_eq!(status, 200, "{e}");
    assert_eq!(
        kubectl(&["get", "configmap", "note", "-n", &ns.name, "-o", "jsonpath={.data.by}"]),
        "action"
    );
    let (status, e) = post(
        &token,
        &format!("/api/v1/applications/{app}/resource/actions?{q}"),
        serde_json::json!("escape"),
    )
    .await;
    assert_eq!(status, 400, "{e}");
    assert!(e["message"].as_str().unwrap().contains("outside namespace"), "{e}");
        l["actions"][0]["name"] == "scale-to-two"
            && l["actions"].as_array().is_some_and(|a| a.len() == 1)
    })
    .await;
    let (status, e) = post(
        &token,
        &format!("/api/v1/applications/{app}/resource/actions?{q}"),
        serde_json::json!("scale-to-two"),
    )
    .await;
    assert_eq!(status, 200, "{e}");
    assert_eq!(
        kubectl(&[
            "get",
            "deployment",
            "web",
            "-n",
            &ns.name,
            "-o",
            "jsonpath={.spec.replicas}"
        ]),
        "2"
    );

    drop(server);
    let _ = stop.send(());
    let _ = running.await;
}
