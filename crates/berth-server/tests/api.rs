//! The API over real HTTP, backed by the local control plane and a running
//! controller with a real Git server: login (and its limit), tokens, the
//! route table and its document, lists with filters and pages, sync,
//! rollback, terminate and refresh with Argo CD's paths and shapes.
#![allow(clippy::expect_used, clippy::unwrap_used, missing_docs)]

use std::time::Duration;

mod common;

use common::read_until;

use base64::Engine;
use berth_controller::controller::{Config, Controller};
use berth_server::{ROUTES, Server, ServerConfig};
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
async fn the_api_over_http() {
    let ns = TestNamespace::new("api").await.unwrap();
    let control = format!("{}-argocd", ns.name);
    let fixture = GitFixture::new().unwrap();
    fixture
        .create_repo(
            "api",
            &[(
                "app/cm.yaml",
                "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: settings\ndata:\n  color: blue\n",
            )],
        )
        .unwrap();
    let daemon = git_daemon(&fixture).unwrap();
    let url = format!("git://127.0.0.1:{}/api.git", daemon.port);
    let cache = TempDir::new("api-cache").unwrap();
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
    let http = reqwest::Client::new();

    // Three apps: two manual, one automated.
    for (name, automated) in [("alpha", false), ("beta", false), ("gamma", true)] {
        let policy = if automated {
            "  syncPolicy:\n    automated: {}\n"
        } else {
            ""
        };
        let app = format!(
            "apiVersion: argoproj.io/v1alpha1\nkind: Application\nmetadata:\n  name: {name}\n  namespace: {control}\n  labels:\n    team: {}\nspec:\n  project: default\n  source:\n    repoURL: {url}\n    targetRevision: main\n    path: app\n  destination:\n    server: https://kubernetes.default.svc\n    namespace: {}\n{policy}",
            if name == "beta" { "web" } else { "data" },
            ns.name
        );
        kubectl(&ns, &["apply", "-f", "-"], Some(&app));
    }

    // No token: 401 with Argo CD's error shape.
    let r = http
        .get(format!("{base}/api/v1/applications"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["code"], 16);
    assert!(body["message"].as_str().unwrap().contains("log in"));
    let r = http
        .get(format!("{base}/api/v1/applications"))
        .bearer_auth("not-a-token")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);

    // The admin's first password, where Argo CD keeps it.
    let encoded = kubectl(
        &ns,
        &[
            "get",
            "secret",
            "argocd-initial-admin-secret",
            "-n",
            &control,
            "-o",
            "jsonpath={.data.password}",
        ],
        None,
    );
    let password = String::from_utf8(
        base64::engine::general_purpose::STANDARD
            .decode(encoded.trim())
            .unwrap(),
    )
    .unwrap();
    let login = |user: &str, pass: &str| {
        http.post(format!("{base}/api/v1/session"))
            .json(&json!({"username": user, "password": pass}))
            .send()
    };
    assert_eq!(login("admin", "wrong").await.unwrap().status(), 401);
    let r = login("admin", &password).await.unwrap();
    assert_eq!(r.status(), 200);
    let cookie = r.headers()["set-cookie"].to_str().unwrap().to_string();
    assert!(
        cookie.starts_with("argocd.token=") && cookie.contains("HttpOnly"),
        "a browser session: {cookie}"
    );
    let token = r.json::<Value>().await.unwrap()["token"]
        .as_str()
        .unwrap()
        .to_string();
    // Guessing is limited per user.
    for _ in 0..5 {
        assert_eq!(login("mallory", "guess").await.unwrap().status(), 401);
    }
    assert_eq!(login("mallory", "guess").await.unwrap().status(), 429);

    let get = |path: String| http.get(format!("{base}{path}")).bearer_auth(&token).send();
    let who: Value = get("/api/v1/session/userinfo".into())
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(who["username"], "admin");
    let version: Value = get("/api/version".into())
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(version["Version"].as_str().unwrap().contains("berth"));

    // Every route is in the document.
    let doc: Value = get("/api/openapi.json".into())
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    for r in ROUTES {
        assert!(
            doc["paths"][r.path][r.method.to_lowercase()].is_object(),
            "{} {}",
            r.method,
            r.path
        );
    }
    let r = get("/api/v1/nothing".into()).await.unwrap();
    assert_eq!(r.status(), 404);

    // Lists: every app once compared; filters; pages.
    until("three apps compared", async || {
        let list: Value = get("/api/v1/applications".into())
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        list["items"].as_array().is_some_and(|i| {
            i.len() == 3 && i.iter().all(|a| a["status"]["sync"]["status"].is_string())
        })
    })
    .await;
    let names = |v: &Value| -> Vec<String> {
        v["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|a| a["metadata"]["name"].as_str().unwrap().to_string())
            .collect()
    };
    let page1: Value = get("/api/v1/applications?limit=2".into())
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(names(&page1), ["alpha", "beta"]);
    assert_eq!(page1["metadata"]["remainingItemCount"], 1);
    let next = page1["metadata"]["continue"].as_str().unwrap();
    let page2: Value = get(format!("/api/v1/applications?limit=2&continue={next}"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(names(&page2), ["gamma"]);
    assert!(page2["metadata"].get("continue").is_none());
    let web: Value = get("/api/v1/applications?selector=team%3Dweb".into())
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(names(&web), ["beta"]);
    let search: Value = get("/api/v1/applications?search=AMM".into())
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(names(&search), ["gamma"]);
    // The destination's cluster and namespace.
    let here: Value = get(format!(
        "/api/v1/applications?cluster=https%3A%2F%2Fkubernetes.default.svc&namespace={}",
        ns.name
    ))
    .await
    .unwrap()
    .json()
    .await
    .unwrap();
    assert_eq!(names(&here), ["alpha", "beta", "gamma"]);
    for other in ["cluster=https%3A%2F%2Felsewhere", "namespace=elsewhere"] {
        let v: Value = get(format!("/api/v1/applications?{other}"))
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert!(names(&v).is_empty(), "{other}: {v}");
    }
    let none: Value = get("/api/v1/applications?projects=other".into())
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(names(&none).is_empty());
    assert!(page1["items"][0]["metadata"].get("managedFields").is_none());
    assert_eq!(
        get("/api/v1/applications?limit=x".into())
            .await
            .unwrap()
            .status(),
        400
    );

    // Sync with Argo CD's request shape.
    let r = http
        .post(format!("{base}/api/v1/applications/alpha/sync"))
        .bearer_auth(&token)
        .json(&json!({"prune": true, "syncOptions": {"items": ["CreateNamespace=true"]}}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let app_of = async |name: &str| -> Value {
        get(format!("/api/v1/applications/{name}"))
            .await
            .unwrap()
            .json()
            .await
            .unwrap()
    };
    let mut tries = 0;
    until("alpha synced", async || {
        let a = app_of("alpha").await;
        tries += 1;
        if tries % 100 == 0 {
            // Shown only when the test fails.
            eprintln!(
                "alpha: {:#}",
                json!([a["operation"], a["status"]["operationState"]])
            );
        }
        a["status"]["operationState"]["phase"] == "Succeeded"
    })
    .await;
    let alpha = app_of("alpha").await;
    let op = &alpha["status"]["operationState"]["operation"];
    assert_eq!(op["initiatedBy"]["username"], "admin");
    assert_eq!(op["sync"]["syncOptions"][0], "CreateNamespace=true");

    // Rollback: refused with automated sync on, done otherwise.
    let rollback = |name: &str, id: i64| {
        http.post(format!("{base}/api/v1/applications/{name}/rollback"))
            .bearer_auth(&token)
            .json(&json!({"id": id}))
            .send()
    };
    let r = rollback("gamma", 0).await.unwrap();
    assert_eq!(r.status(), 400);
    let body: Value = r.json().await.unwrap();
    assert!(
        body["message"]
            .as_str()
            .unwrap()
            .contains("auto-sync is enabled")
    );
    assert_eq!(rollback("alpha", 42).await.unwrap().status(), 404);
    assert_eq!(rollback("alpha", 0).await.unwrap().status(), 200);
    until("the rollback recorded", async || {
        app_of("alpha").await["status"]["history"]
            .as_array()
            .is_some_and(|h| h.len() == 2)
    })
    .await;

    // A sync window that blocks manual syncs: refused at once.
    let windows = |w: Value| {
        kubectl(
            &ns,
            &[
                "patch",
                "appproject",
                "default",
                "-n",
                &control,
                "--type",
                "merge",
                "-p",
                &json!({"spec": {"syncWindows": w}}).to_string(),
            ],
            None,
        )
    };
    windows(
        json!([{"kind": "deny", "schedule": "* * * * *", "duration": "1h", "applications": ["beta"]}]),
    );
    let r = http
        .post(format!("{base}/api/v1/applications/beta/sync"))
        .bearer_auth(&token)
        .json(&json!({}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
    let body: Value = r.json().await.unwrap();
    assert!(
        body["message"].as_str().unwrap().contains("deny window"),
        "{body}"
    );
    // Argo CD's syncwindows route: assigned, active, canSync.
    let sw: Value = get("/api/v1/applications/beta/syncwindows".into())
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(sw["canSync"], false, "{sw}");
    assert_eq!(sw["activeWindows"][0]["kind"], "deny", "{sw}");
    assert_eq!(sw["assignedWindows"][0]["applications"][0], "beta", "{sw}");
    assert!(sw["assignedWindows"][0].get("active").is_none(), "{sw}");
    let other: Value = get("/api/v1/applications/alpha/syncwindows".into())
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(other["canSync"], true, "{other}");
    assert_eq!(other["assignedWindows"], json!([]), "{other}");
    windows(Value::Null);

    // Terminate with nothing running.
    let r = http
        .delete(format!("{base}/api/v1/applications/beta/operation"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);

    // Refresh: the annotation is set, and the controller removes it.
    let refreshed: Value = get("/api/v1/applications/beta?refresh=hard".into())
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        refreshed["metadata"]["annotations"]["argocd.argoproj.io/refresh"],
        "hard"
    );
    until("the refresh done", async || {
        app_of("beta").await["metadata"]["annotations"]
            .get("argocd.argoproj.io/refresh")
            .is_none()
    })
    .await;
    assert_eq!(
        get("/api/v1/applications/nope".into())
            .await
            .unwrap()
            .status(),
        404
    );

    // Create, update, delete with Argo CD's shapes.
    let delta = json!({"metadata": {"name": "delta"}, "spec": {"project": "default",
        "source": {"repoURL": url, "targetRevision": "main", "path": "app"},
        "destination": {"server": "https://kubernetes.default.svc", "namespace": ns.name}}});
    let send = async |method: reqwest::Method, path: &str, body: Option<&Value>| {
        let mut r = http
            .request(method, format!("{base}{path}"))
            .bearer_auth(&token);
        if let Some(b) = body {
            r = r.json(b);
        }
        let r = r.send().await.unwrap();
        let status = r.status();
        (status, r.json::<Value>().await.unwrap_or(Value::Null))
    };
    use reqwest::Method;
    let (status, created) = send(Method::POST, "/api/v1/applications", Some(&delta)).await;
    assert_eq!(status, 200, "{created}");
    assert_eq!(created["metadata"]["namespace"], control.as_str());
    let (status, _) = send(Method::POST, "/api/v1/applications", Some(&delta)).await;
    assert_eq!(status, 409, "exists");
    let mut moved = delta.clone();
    moved["spec"]["source"]["targetRevision"] = json!("HEAD");
    let (status, upserted) = send(
        Method::POST,
        "/api/v1/applications?upsert=true",
        Some(&moved),
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(upserted["spec"]["source"]["targetRevision"], "HEAD");
    let mut bad = delta.clone();
    bad["spec"]["source"] = json!("not an object");
    let (status, body) = send(Method::POST, "/api/v1/applications", Some(&bad)).await;
    assert_eq!(status, 400);
    assert!(body["message"].as_str().unwrap().contains("spec"), "{body}");
    let mut elsewhere = delta.clone();
    elsewhere["metadata"]["namespace"] = json!("kube-system");
    assert_eq!(
        send(Method::POST, "/api/v1/applications", Some(&elsewhere))
            .await
            .0,
        400
    );
    let mut renamed = delta.clone();
    renamed["metadata"]["name"] = json!("other");
    assert_eq!(
        send(Method::PUT, "/api/v1/applications/delta", Some(&renamed))
            .await
            .0,
        400
    );
    let (status, updated) = send(Method::PUT, "/api/v1/applications/delta", Some(&delta)).await;
    assert_eq!(status, 200);
    assert_eq!(updated["spec"]["source"]["targetRevision"], "main");
    let (status, body) = send(
        Method::DELETE,
        "/api/v1/applications/delta?propagationPolicy=sideways",
        None,
    )
    .await;
    assert_eq!(status, 400, "{body}");
    // Cascade (the default): the resources finalizer is added and the
    // controller removes it once the app's resources are gone.
    let (status, body) = send(Method::DELETE, "/api/v1/applications/delta", None).await;
    assert_eq!(status, 200, "{body}");
    until("delta gone", async || {
        get("/api/v1/applications/delta".into())
            .await
            .unwrap()
            .status()
            == 404
    })
    .await;

    // The event stream: the current state first, then each change.
    let mut sse = http
        .get(format!("{base}/api/v1/stream/applications?name=beta"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(sse.status(), 200);
    let mut seen = String::new();
    read_until(&mut sse, &mut seen, "\"ADDED\"").await;
    kubectl(
        &ns,
        &[
            "annotate",
            "app",
            "beta",
            "-n",
            &control,
            "example.com/touched=yes",
        ],
        None,
    );
    read_until(&mut sse, &mut seen, "example.com/touched").await;
    assert!(seen.contains("\"MODIFIED\""), "{seen}");
    assert!(seen.contains("\"result\""), "Argo CD's event shape");
    assert!(!seen.contains("\"alpha\""), "filtered by name");
    drop(sse);

    // A push webhook (GitHub's shape, no secret configured) refreshes the
    // apps of that repository and branch, and none of another.
    let push = |repo: &str, r#ref: &str| {
        json!({"ref": r#ref, "after": "0123456789abcdef0123456789abcdef01234567",
            "repository": {"html_url": repo, "clone_url": repo},
            "commits": [{"added": [], "modified": ["app/cm.yaml"], "removed": []}], "size": 1})
    };
    let hook = async |payload: Value| -> (reqwest::StatusCode, Value) {
        let r = http
            .post(format!("{base}/api/webhook"))
            .header("X-GitHub-Event", "push")
            .json(&payload)
            .send()
            .await
            .unwrap();
        let status = r.status();
        (status, r.json().await.unwrap_or(Value::Null))
    };
    let (status, body) = hook(push(&url, "refs/heads/main")).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["refreshed"], json!(["alpha", "beta", "gamma"]));
    let (_, body) = hook(push(&url, "refs/heads/other")).await;
    assert_eq!(body["refreshed"], json!([]), "another branch");
    let (_, body) = hook(push("https://example.com/else.git", "refs/heads/main")).await;
    assert_eq!(body["refreshed"], json!([]), "another repository");
    // With a secret configured, an unsigned delivery is refused.
    kubectl(
        &ns,
        &[
            "patch",
            "secret",
            "argocd-secret",
            "-n",
            &control,
            "--type",
            "merge",
            "-p",
            r#"{"stringData":{"webhook.github.secret":"s3cret"}}"#,
        ],
        None,
    );
    let (status, _) = hook(push(&url, "refs/heads/main")).await;
    assert_eq!(status, 401);

    drop(server);
    let _ = stop.send(());
    let _ = running.await;
}
