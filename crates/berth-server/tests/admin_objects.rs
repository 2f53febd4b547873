//! Projects, repositories and clusters over real HTTP: Argo CD's paths and
//! shapes, stored where Argo CD stores them (AppProjects, labelled
//! Secrets), credentials write-only, connections tested against a real
//! Git server with basic authentication and the local control plane.
#![allow(clippy::expect_used, clippy::unwrap_used, missing_docs)]

use berth_server::{Server, ServerConfig};
use berth_testenv::TestNamespace;
use berth_testenv::git::{GitFixture, git_http};
use serde_json::{Value, json};

fn encode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn projects_repositories_and_clusters() {
    let ns = TestNamespace::new("admin-objects").await.unwrap();
    let control = format!("{}-argocd", ns.name);
    berth_cluster::bootstrap::install(&ns.client, &control)
        .await
        .unwrap();
    let app = format!(
        "apiVersion: argoproj.io/v1alpha1\nkind: Application\nmetadata:\n  name: user\n  namespace: {control}\nspec:\n  project: default\n  source:\n    repoURL: https://example.invalid/r.git\n    path: app\n  destination:\n    server: https://kubernetes.default.svc\n    namespace: {}\n",
        ns.name
    );
    berth_testenv::kubectl_ok(&ns.kubeconfig, &["apply", "-f", "-"], Some(&app)).unwrap();
    let server = Server::start(
        ns.client.clone(),
        ServerConfig {
            namespace: control.clone(),
            listen: "127.0.0.1:0".parse().unwrap(),
            views: None,
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
    use reqwest::Method;

    // Projects.
    let team = json!({"project": {"metadata": {"name": "team"}, "spec": {
        "description": "a team", "sourceRepos": ["*"],
        "destinations": [{"server": "*", "namespace": "team-*"}]}}});
    let (status, p) = call(Method::POST, "/api/v1/projects", Some(team.clone())).await;
    assert_eq!(status, 200, "{p}");
    assert_eq!(p["metadata"]["namespace"], control.as_str());
    let (status, _) = call(Method::POST, "/api/v1/projects", Some(team.clone())).await;
    assert_eq!(status, 409);
    let mut changed = team.clone();
    changed["upsert"] = json!(true);
    changed["project"]["spec"]["description"] = json!("the team");
    let (status, p) = call(Method::POST, "/api/v1/projects", Some(changed)).await;
    assert_eq!(status, 200, "{p}");
    assert_eq!(p["spec"]["description"], "the team");
    let (status, body) = call(
        Method::POST,
        "/api/v1/projects",
        Some(json!({"project": {"metadata": {"name": "bad"}, "spec": {"sourceRepos": "*"}}})),
    )
    .await;
    assert_eq!(status, 400);
    assert!(
        body["message"]
            .as_str()
            .unwrap()
            .contains("project.spec.sourceRepos: expected a list"),
        "{body}"
    );
    let (status, body) = call(
        Method::PUT,
        "/api/v1/projects/team",
        Some(json!({"project": {"spec": {"sourceRepos": ["https://git.example/*"]}}})),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["spec"]["sourceRepos"][0], "https://git.example/*");
    assert!(body["spec"].get("description").is_none(), "replaced whole");
    let (_, list) = call(Method::GET, "/api/v1/projects", None).await;
    let names: Vec<&str> = list["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["metadata"]["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["default", "team"]);
    let (status, body) = call(Method::DELETE, "/api/v1/projects/default", None).await;
    assert_eq!(status, 400, "used by an app");
    assert!(body["message"].as_str().unwrap().contains("user"), "{body}");
    assert_eq!(
        call(Method::DELETE, "/api/v1/projects/team", None).await.0,
        200
    );
    assert_eq!(
        call(Method::GET, "/api/v1/projects/team", None).await.0,
        404
    );

    // Repositories: a Git server that wants a password.
    let fixture = GitFixture::new().unwrap();
    fixture
        .create_repo("private", &[("app/cm.yaml", "kind: ConfigMap\n")])
        .unwrap();
    let git = git_http(&fixture, "robot", "s3cret-pass").unwrap();
    let url = format!("http://127.0.0.1:{}/git/private.git", git.port);
    let (status, body) = call(
        Method::POST,
        "/api/v1/repositories",
        Some(json!({"repo": url, "username": "robot", "password": "wrong"})),
    )
    .await;
    assert_eq!(status, 400, "{body}");
    assert!(
        body["message"]
            .as_str()
            .unwrap()
            .contains("unable to connect")
    );
    let (status, body) = call(
        Method::POST,
        &format!("/api/v1/repositories/{}/validate", encode(&url)),
        Some(json!({"username": "robot", "password": "s3cret-pass"})),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let (status, repo) = call(
        Method::POST,
        "/api/v1/repositories",
        Some(
            json!({"repo": url, "username": "robot", "password": "s3cret-pass", "name": "private"}),
        ),
    )
    .await;
    assert_eq!(status, 200, "{repo}");
    assert_eq!(repo["connectionState"]["status"], "Successful");
    assert!(!repo.to_string().contains("s3cret"), "write-only: {repo}");
    // Stored as Argo CD stores it, for the controller to read.
    let stored = berth_testenv::kubectl_ok(
        &ns.kubeconfig,
        &[
            "get",
            "secrets",
            "-n",
            &control,
            "-l",
            "argocd.argoproj.io/secret-type=repository",
            "-o",
            "jsonpath={.items[*].data.url}",
        ],
        None,
    )
    .unwrap();
    assert!(!stored.trim().is_empty(), "one repository Secret");
    let (status, list) = call(Method::GET, "/api/v1/repositories", None).await;
    assert_eq!(status, 200);
    assert_eq!(list["items"][0]["repo"], url.as_str());
    assert_eq!(list["items"][0]["connectionState"]["status"], "Successful");
    assert!(!list.to_string().contains("s3cret"));
    let (status, _) = call(
        Method::POST,
        "/api/v1/repositories",
        Some(json!({"repo": url, "username": "robot", "password": "s3cret-pass"})),
    )
    .await;
    assert_eq!(status, 409, "exists; upsert replaces");
    assert_eq!(
        call(
            Method::DELETE,
            &format!("/api/v1/repositories/{}", encode(&url)),
            None
        )
        .await
        .0,
        200
    );
    let (_, list) = call(Method::GET, "/api/v1/repositories", None).await;
    assert!(list["items"].as_array().unwrap().is_empty());

    // Clusters: the controller's own is always there.
    let (status, list) = call(Method::GET, "/api/v1/clusters", None).await;
    assert_eq!(status, 200, "{list}");
    assert_eq!(list["items"][0]["name"], "in-cluster");
    assert_eq!(list["items"][0]["connectionState"]["status"], "Successful");
    assert!(list["items"][0]["serverVersion"].is_string());
    // The local control plane added by its real address and credentials.
    let raw: Value = serde_json::from_str(
        &berth_testenv::kubectl_ok(
            &ns.kubeconfig,
            &["config", "view", "--raw", "--minify", "-o", "json"],
            None,
        )
        .unwrap(),
    )
    .unwrap();
    let cluster = &raw["clusters"][0]["cluster"];
    let user = &raw["users"][0]["user"];
    let address = cluster["server"].as_str().unwrap().to_string();
    let mut tls = json!({"caData": cluster["certificate-authority-data"]});
    if let Some(c) = user.get("client-certificate-data") {
        tls["certData"] = c.clone();
        tls["keyData"] = user["client-key-data"].clone();
    }
    let mut config = json!({"tlsClientConfig": tls});
    if let Some(t) = user.get("token") {
        config["bearerToken"] = t.clone();
    }
    let (status, body) = call(
        Method::POST,
        "/api/v1/clusters",
        Some(json!({"server": address, "name": "second", "config": {"bearerToken": "nope", "tlsClientConfig": {"caData": cluster["certificate-authority-data"]}}})),
    )
    .await;
    assert_eq!(status, 400, "bad credentials: {body}");
    let (status, added) = call(
        Method::POST,
        "/api/v1/clusters",
        Some(json!({"server": address, "name": "second", "config": config, "namespaces": ["a", "b"]})),
    )
    .await;
    assert_eq!(status, 200, "{added}");
    assert_eq!(added["connectionState"]["status"], "Successful");
    assert!(
        !added.to_string().contains("keyData") && !added.to_string().contains("bearerToken"),
        "credentials never returned: {added}"
    );
    let (status, got) = call(Method::GET, "/api/v1/clusters/second?id.type=name", None).await;
    assert_eq!(status, 200, "{got}");
    assert_eq!(got["server"], address.as_str());
    assert_eq!(got["namespaces"], json!(["a", "b"]));
    let (_, list) = call(Method::GET, "/api/v1/clusters", None).await;
    assert_eq!(list["items"].as_array().unwrap().len(), 2);
    let (status, _) = call(
        Method::DELETE,
        &format!(
            "/api/v1/clusters/{}",
            encode("https://kubernetes.default.svc")
        ),
        None,
    )
    .await;
    assert_eq!(status, 400, "the controller's own cluster stays");
    assert_eq!(
        call(
            Method::DELETE,
            &format!("/api/v1/clusters/{}", encode(&address)),
            None
        )
        .await
        .0,
        200
    );
    let (_, list) = call(Method::GET, "/api/v1/clusters", None).await;
    assert_eq!(list["items"].as_array().unwrap().len(), 1);
    drop(server);
}
