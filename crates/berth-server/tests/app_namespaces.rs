//! Applications outside the control namespace over real HTTP, with the
//! namespaces enabled as Argo CD enables them (`application.namespaces` in
//! `argocd-cmd-params-cm`): create (refused in a namespace not enabled, or
//! one the project's `sourceNamespaces` does not list), list with
//! `appNamespace`, get by `?appNamespace=` and by `namespace/name`, sync,
//! resource tree and delete, next to a same-named app of the control
//! namespace.
#![allow(clippy::expect_used, clippy::unwrap_used, missing_docs)]

use std::time::Duration;

use berth_controller::controller::{Config, Controller};
use berth_server::{Server, ServerConfig};
use berth_testenv::TestNamespace;
use berth_testenv::git::{GitFixture, TempDir, git_daemon};
use serde_json::{Value, json};

fn kubectl(ns: &TestNamespace, args: &[&str], stdin: Option<&str>) -> String {
    berth_testenv::kubectl_ok(&ns.kubeconfig, args, stdin).unwrap()
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn apps_in_other_namespaces_over_http() {
    let ns = TestNamespace::new("apins").await.unwrap();
    let control = format!("{}-argocd", ns.name);
    let team = format!("{}-team", ns.name);
    for n in [&control, &team] {
        kubectl(&ns, &["create", "namespace", n], None);
    }
    // Read by both the controller and the server at start.
    kubectl(
        &ns,
        &[
            "create",
            "configmap",
            "argocd-cmd-params-cm",
            "-n",
            &control,
            &format!("--from-literal=application.namespaces={team}"),
        ],
        None,
    );
    let fixture = GitFixture::new().unwrap();
    fixture
        .create_repo(
            "apins",
            &[(
                "app/cm.yaml",
                "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: team-settings\ndata:\n  a: b\n",
            )],
        )
        .unwrap();
    let daemon = git_daemon(&fixture).unwrap();
    let url = format!("git://127.0.0.1:{}/apins.git", daemon.port);
    let cache = TempDir::new("apins-cache").unwrap();
    let config = Config::new(&control, cache.path().to_path_buf());
    let views = config.views.clone();
    let controller = Controller::start(ns.client.clone(), config).await.unwrap();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let running = tokio::spawn(controller.run(async {
        let _ = stopped.await;
    }));
    let project = json!({
        "apiVersion": "argoproj.io/v1alpha1", "kind": "AppProject",
        "metadata": {"name": "team", "namespace": control},
        "spec": {"sourceRepos": ["*"], "destinations": [{"server": "*", "namespace": "*"}],
                 "sourceNamespaces": [team]},
    });
    kubectl(&ns, &["apply", "-f", "-"], Some(&project.to_string()));
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
    let call = async |method: reqwest::Method, path: &str, body: Option<Value>| -> (u16, Value) {
        let mut r = http
            .request(method, format!("{base}{path}"))
            .bearer_auth(&token);
        if let Some(b) = body {
            r = r.json(&b);
        }
        let r = r.send().await.unwrap();
        let status = r.status().as_u16();
        (status, r.json().await.unwrap_or(Value::Null))
    };
    let app = |namespace: &str, project: &str| {
        json!({"metadata": {"name": "web", "namespace": namespace},
               "spec": {"project": project,
                        "source": {"repoURL": url, "targetRevision": "main", "path": "app"},
                        "destination": {"server": "https://kubernetes.default.svc", "namespace": ns.name}}})
    };

    // Not enabled, or not listed by the project: refused, naming why.
    let (code, body) = call(
        reqwest::Method::POST,
        "/api/v1/applications",
        Some(app("kube-system", "team")),
    )
    .await;
    assert_eq!(code, 400, "{body}");
    assert!(
        body["message"]
            .as_str()
            .unwrap()
            .contains("application.namespaces"),
        "{body}"
    );
    let (code, body) = call(
        reqwest::Method::POST,
        "/api/v1/applications",
        Some(app(&team, "default")),
    )
    .await;
    assert_eq!(code, 403, "{body}");
    assert!(
        body["message"]
            .as_str()
            .unwrap()
            .contains("sourceNamespaces"),
        "{body}"
    );

    // Created in the team's namespace, and a same-named one in control.
    let (code, body) = call(
        reqwest::Method::POST,
        "/api/v1/applications",
        Some(app(&team, "team")),
    )
    .await;
    assert_eq!(code, 200, "{body}");
    assert_eq!(body["metadata"]["namespace"], team.as_str());
    let (code, _) = call(
        reqwest::Method::POST,
        "/api/v1/applications",
        Some(app("", "default")),
    )
    .await;
    assert_eq!(code, 200);

    until("both listed", async || {
        let (_, l) = call(reqwest::Method::GET, "/api/v1/applications", None).await;
        l["items"].as_array().is_some_and(|i| i.len() == 2)
    })
    .await;
    let (_, l) = call(
        reqwest::Method::GET,
        &format!("/api/v1/applications?appNamespace={team}"),
        None,
    )
    .await;
    let items = l["items"].as_array().unwrap();
    assert_eq!(items.len(), 1);
    assert_eq!(items[0]["metadata"]["namespace"], team.as_str());
    // Pages across namespaces: one item each, no repeats.
    let (_, first) = call(reqwest::Method::GET, "/api/v1/applications?limit=1", None).await;
    let token = first["metadata"]["continue"].as_str().unwrap().to_string();
    let (_, second) = call(
        reqwest::Method::GET,
        &format!("/api/v1/applications?limit=1&continue={token}"),
        None,
    )
    .await;
    assert_ne!(
        first["items"][0]["metadata"]["namespace"],
        second["items"][0]["metadata"]["namespace"]
    );

    let (code, got) = call(
        reqwest::Method::GET,
        &format!("/api/v1/applications/web?appNamespace={team}"),
        None,
    )
    .await;
    assert_eq!(code, 200);
    assert_eq!(got["spec"]["project"], "team");
    let (code, got) = call(
        reqwest::Method::GET,
        &format!("/api/v1/applications/{team}%2Fweb"),
        None,
    )
    .await;
    assert_eq!(code, 200, "{got}");
    assert_eq!(got["spec"]["project"], "team");
    let (_, got) = call(reqwest::Method::GET, "/api/v1/applications/web", None).await;
    assert_eq!(got["spec"]["project"], "default", "the control namespace's");

    // Sync the team's app; its object appears and its tree shows it.
    let (code, body) = call(
        reqwest::Method::POST,
        &format!("/api/v1/applications/web/sync?appNamespace={team}"),
        Some(json!({})),
    )
    .await;
    assert_eq!(code, 200, "{body}");
    until("the team's app synced", async || {
        let (_, a) = call(
            reqwest::Method::GET,
            &format!("/api/v1/applications/web?appNamespace={team}"),
            None,
        )
        .await;
        a["status"]["operationState"]["phase"] == "Succeeded"
    })
    .await;
    let (_, tree) = call(
        reqwest::Method::GET,
        &format!("/api/v1/applications/web/resource-tree?appNamespace={team}"),
        None,
    )
    .await;
    assert!(
        tree["nodes"]
            .as_array()
            .unwrap()
            .iter()
            .any(|n| n["kind"] == "ConfigMap" && n["name"] == "team-settings"),
        "{tree}"
    );
    let (_, control_app) = call(reqwest::Method::GET, "/api/v1/applications/web", None).await;
    assert!(
        control_app["status"]["operationState"].is_null(),
        "the control namespace's web was not synced"
    );

    let (code, _) = call(
        reqwest::Method::DELETE,
        &format!("/api/v1/applications/web?appNamespace={team}&cascade=false"),
        None,
    )
    .await;
    assert_eq!(code, 200);
    let (code, _) = call(
        reqwest::Method::GET,
        &format!("/api/v1/applications/web?appNamespace={team}"),
        None,
    )
    .await;
    assert_eq!(code, 404);
    let (code, _) = call(reqwest::Method::GET, "/api/v1/applications/web", None).await;
    assert_eq!(code, 200, "the control namespace's web stays");

    drop(server);
    let _ = stop.send(());
    let _ = running.await;
}
