//! Argo CD's RBAC over real HTTP: local accounts from `argocd-cm` and
//! `argocd-secret`, a policy from `argocd-rbac-cm` (roles, groups, globs,
//! a deny rule), a matrix of users × routes, lists filtered to what each
//! user may get, and a policy change applied while running.
#![allow(clippy::expect_used, clippy::unwrap_used, missing_docs)]

use std::time::Duration;

mod common;

use common::read_until;

use berth_server::{Server, ServerConfig};
use berth_testenv::TestNamespace;
use reqwest::StatusCode;
use serde_json::{Value, json};

fn kubectl(ns: &TestNamespace, args: &[&str], stdin: Option<&str>) -> String {
    berth_testenv::kubectl_ok(&ns.kubeconfig, args, stdin).unwrap()
}

const POLICY: &str = "g, alice, role:readonly\n\
p, role:deployer, applications, get, default/*, allow\n\
p, role:deployer, applications, sync, default/alpha, allow\n\
g, bob, role:deployer\n\
p, bob, applications, get, default/beta, deny\n";

fn rbac_cm(control: &str, policy: &str) -> String {
    let indented: String = policy.lines().map(|l| format!("    {l}\n")).collect();
    format!(
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: argocd-rbac-cm\n  namespace: {control}\ndata:\n  policy.csv: |\n{indented}"
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rbac_matrix() {
    let ns = TestNamespace::new("rbac").await.unwrap();
    let control = format!("{}-argocd", ns.name);
    kubectl(&ns, &["create", "namespace", &control], None);
    kubectl(
        &ns,
        &["apply", "-f", "-"],
        Some(&format!(
            "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: argocd-cm\n  namespace: {control}\ndata:\n  accounts.alice: login\n  accounts.bob: apiKey, login\n  accounts.erin: apiKey\n"
        )),
    );
    kubectl(&ns, &["apply", "-f", "-"], Some(&rbac_cm(&control, POLICY)));
    berth_cluster::bootstrap::install(&ns.client, &control)
        .await
        .unwrap();
    for (name, project) in [
        ("alpha", "default"),
        ("beta", "default"),
        ("gamma", "other"),
    ] {
        let app = format!(
            "apiVersion: argoproj.io/v1alpha1\nkind: Application\nmetadata:\n  name: {name}\n  namespace: {control}\nspec:\n  project: {project}\n  source:\n    repoURL: https://example.invalid/repo.git\n    path: app\n  destination:\n    server: https://kubernetes.default.svc\n    namespace: {}\n",
            ns.name
        );
        kubectl(&ns, &["apply", "-f", "-"], Some(&app));
    }
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
    // Passwords as Argo CD stores them: bcrypt hashes in argocd-secret.
    let hash = |p: &str| bcrypt::hash(p, 4).unwrap();
    let patch = json!({"stringData": {
        "accounts.alice.password": hash("alice-pass"),
        "accounts.bob.password": hash("bob-pass"),
        "accounts.erin.password": hash("erin-pass"),
    }});
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
            &patch.to_string(),
        ],
        None,
    );
    let base = server.url();
    let http = reqwest::Client::new();
    let login = async |user: &str, pass: &str| -> Option<String> {
        let r = http
            .post(format!("{base}/api/v1/session"))
            .json(&json!({"username": user, "password": pass}))
            .send()
            .await
            .unwrap();
        if r.status() != StatusCode::OK {
            return None;
        }
        r.json::<Value>().await.unwrap()["token"]
            .as_str()
            .map(String::from)
    };
    let admin_token = server.token_for("admin").unwrap();
    let alice = login("alice", "alice-pass").await.expect("alice logs in");
    let bob = login("bob", "bob-pass").await.expect("bob logs in");
    assert!(
        login("erin", "erin-pass").await.is_none(),
        "an account without login cannot log in"
    );
    assert!(login("carol", "x").await.is_none(), "no such account");

    let call = async |token: &str, method: &str, path: &str| -> (StatusCode, Value) {
        let url = format!("{base}{path}");
        let r = match method {
            "GET" => http.get(url),
            "POST" => http.post(url).json(&json!({})),
            "DELETE" => http.delete(url),
            _ => unreachable!(),
        }
        .bearer_auth(token)
        .send()
        .await
        .unwrap();
        let status = r.status();
        (status, r.json().await.unwrap_or(Value::Null))
    };
    let names = |v: &Value| -> Vec<String> {
        v["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|a| a["metadata"]["name"].as_str().unwrap().to_string())
            .collect()
    };

    // Lists show only what each may get.
    for (who, token, expected) in [
        ("admin", &admin_token, vec!["alpha", "beta", "gamma"]),
        ("alice", &alice, vec!["alpha", "beta", "gamma"]),
        ("bob", &bob, vec!["alpha"]),
    ] {
        let (status, list) = call(token, "GET", "/api/v1/applications").await;
        assert_eq!(status, StatusCode::OK, "{who}");
        assert_eq!(names(&list), expected, "{who}'s list");
    }

    // The matrix: (user, method, path, expected status).
    let forbidden = StatusCode::FORBIDDEN;
    let matrix: Vec<(&str, &String, &str, &str, StatusCode)> = vec![
        (
            "alice",
            &alice,
            "GET",
            "/api/v1/applications/alpha",
            StatusCode::OK,
        ),
        (
            "alice",
            &alice,
            "POST",
            "/api/v1/applications/alpha/sync",
            forbidden,
        ),
        (
            "alice",
            &alice,
            "POST",
            "/api/v1/applications/alpha/rollback",
            forbidden,
        ),
        (
            "alice",
            &alice,
            "DELETE",
            "/api/v1/applications/alpha/operation",
            forbidden,
        ),
        (
            "bob",
            &bob,
            "GET",
            "/api/v1/applications/alpha",
            StatusCode::OK,
        ),
        ("bob", &bob, "GET", "/api/v1/applications/beta", forbidden),
        (
            "bob",
            &bob,
            "GET",
            "/api/v1/applications/beta/managed-resources",
            forbidden,
        ),
        (
            "bob",
            &bob,
            "GET",
            "/api/v1/applications/beta/diff",
            forbidden,
        ),
        (
            "bob",
            &bob,
            "GET",
            "/api/v1/applications/beta/manifests",
            forbidden,
        ),
        (
            "bob",
            &bob,
            "GET",
            "/api/v1/applications/beta/resource-tree",
            forbidden,
        ),
        (
            "bob",
            &bob,
            "GET",
            "/api/v1/applications/beta/events",
            forbidden,
        ),
        (
            "bob",
            &bob,
            "GET",
            "/api/v1/applications/beta/resource?kind=ConfigMap&resourceName=x",
            forbidden,
        ),
        // Allowed, but this server runs without a controller: 503, not 403.
        (
            "bob",
            &bob,
            "GET",
            "/api/v1/applications/alpha/resource-tree",
            StatusCode::SERVICE_UNAVAILABLE,
        ),
        (
            "bob",
            &bob,
            "GET",
            "/api/v1/applications/alpha/events",
            StatusCode::OK,
        ),
        ("bob", &bob, "GET", "/api/v1/applications/gamma", forbidden),
        (
            "bob",
            &bob,
            "POST",
            "/api/v1/applications/beta/sync",
            forbidden,
        ),
        (
            "bob",
            &bob,
            "POST",
            "/api/v1/applications/alpha/sync",
            StatusCode::OK,
        ),
        // No controller runs here: the request stays pending.
        (
            "bob",
            &bob,
            "POST",
            "/api/v1/applications/alpha/sync",
            StatusCode::CONFLICT,
        ),
        (
            "admin",
            &admin_token,
            "POST",
            "/api/v1/applications/gamma/sync",
            StatusCode::OK,
        ),
        (
            "alice",
            &alice,
            "DELETE",
            "/api/v1/applications/alpha?cascade=false",
            forbidden,
        ),
        (
            "bob",
            &bob,
            "DELETE",
            "/api/v1/applications/alpha?cascade=false",
            forbidden,
        ),
    ];
    for (who, token, method, path, expected) in matrix {
        let (status, body) = call(token, method, path).await;
        assert_eq!(status, expected, "{who} {method} {path}: {body}");
        if status == forbidden {
            assert!(
                body["message"]
                    .as_str()
                    .unwrap()
                    .contains("permission denied"),
                "{body}"
            );
            assert_eq!(body["code"], 7);
        }
    }
    // The event stream shows bob only what he may get: the snapshot comes
    // in name order, then changes in order, so once alpha's change is
    // there, everything before it was filtered already.
    let mut sse = http
        .get(format!("{base}/api/v1/stream/applications"))
        .bearer_auth(&bob)
        .send()
        .await
        .unwrap();
    assert_eq!(sse.status(), StatusCode::OK);
    let mut seen = String::new();
    read_until(&mut sse, &mut seen, "\"alpha\"").await;
    for app in ["gamma", "beta", "alpha"] {
        kubectl(
            &ns,
            &[
                "annotate",
                "app",
                app,
                "-n",
                &control,
                "example.com/touched=yes",
            ],
            None,
        );
    }
    read_until(&mut sse, &mut seen, "example.com/touched").await;
    assert!(
        !seen.contains("\"beta\"") && !seen.contains("\"gamma\""),
        "{seen}"
    );
    drop(sse);

    let (_, alpha) = call(&admin_token, "GET", "/api/v1/applications/alpha").await;
    assert_eq!(alpha["operation"]["initiatedBy"]["username"], "bob");

    // A policy change applies to the next requests.
    let wider = format!("{POLICY}p, alice, applications, sync, default/*, allow\n");
    kubectl(&ns, &["apply", "-f", "-"], Some(&rbac_cm(&control, &wider)));
    let mut status = StatusCode::FORBIDDEN;
    for _ in 0..100 {
        status = call(&alice, "POST", "/api/v1/applications/beta/sync")
            .await
            .0;
        if status != StatusCode::FORBIDDEN {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(status, StatusCode::OK, "alice may sync after the change");

    // API tokens: created for oneself (with the apiKey capability) or by
    // someone allowed to update the account, listed, revoked.
    let send = async |token: &str, method: reqwest::Method, path: &str, body: Value| {
        let r = http
            .request(method, format!("{base}{path}"))
            .bearer_auth(token)
            .json(&body)
            .send()
            .await
            .unwrap();
        let status = r.status();
        (status, r.json::<Value>().await.unwrap_or(Value::Null))
    };
    use reqwest::Method;
    let (status, body) = send(
        &bob,
        Method::POST,
        "/api/v1/account/bob/token",
        json!({"id": "laptop"}),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let bob_api = body["token"].as_str().unwrap().to_string();
    let (status, list) = call(&bob_api, "GET", "/api/v1/applications").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(names(&list), ["alpha"], "the token acts as bob");
    let (_, account) = call(&bob, "GET", "/api/v1/account/bob").await;
    assert_eq!(account["tokens"][0]["id"], "laptop");
    let (status, _) = send(&alice, Method::POST, "/api/v1/account/bob/token", json!({})).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "another's account");
    let (status, body) = send(
        &alice,
        Method::POST,
        "/api/v1/account/alice/token",
        json!({}),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(
        body["message"].as_str().unwrap().contains("apiKey"),
        "{body}"
    );
    let (status, body) = send(
        &admin_token,
        Method::POST,
        "/api/v1/account/erin/token",
        json!({"id": "ci"}),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let erin_api = body["token"].as_str().unwrap().to_string();
    assert_eq!(
        call(&erin_api, "GET", "/api/v1/applications").await.0,
        StatusCode::OK
    );
    let (_, accounts) = call(&admin_token, "GET", "/api/v1/account").await;
    let listed: Vec<&str> = accounts["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["name"].as_str().unwrap())
        .collect();
    assert_eq!(listed, ["admin", "alice", "bob", "erin"]);
    let (status, _) = send(
        &bob,
        Method::DELETE,
        "/api/v1/account/bob/token/laptop",
        json!({}),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    let (status, body) = call(&bob_api, "GET", "/api/v1/applications").await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "revoked");
    assert!(
        body["message"].as_str().unwrap().contains("revoked"),
        "{body}"
    );

    // Project roles: their policies count only inside the project, their
    // tokens work while the role lists them.
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
            &json!({"spec": {"roles": [{"name": "ci", "policies": [
                "p, proj:default:ci, applications, get, default/alpha, allow",
                "p, proj:default:ci, applications, sync, default/alpha, allow",
                "p, proj:default:ci, applications, get, other/*, allow",
            ]}]}})
            .to_string(),
        ],
        None,
    );
    let role_token = "/api/v1/projects/default/roles/ci/token";
    let (status, _) = send(&bob, Method::POST, role_token, json!({"id": "pipeline"})).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "bob may not update projects");
    let (status, body) = send(
        &admin_token,
        Method::POST,
        "/api/v1/projects/default/roles/nope/token",
        json!({}),
    )
    .await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{body}");
    let (status, body) = send(
        &admin_token,
        Method::POST,
        role_token,
        json!({"id": "pipeline", "expiresIn": 3600}),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let ci = body["token"].as_str().unwrap().to_string();
    let mut listed = Value::Null;
    for _ in 0..100 {
        listed = call(&ci, "GET", "/api/v1/applications").await.1;
        if listed["items"].is_array() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(names(&listed), ["alpha"], "only what the role may get");
    assert_eq!(
        call(&ci, "GET", "/api/v1/applications/gamma").await.0,
        forbidden,
        "a role's policy outside its project is ignored"
    );
    let (status, _) = call(&ci, "POST", "/api/v1/applications/alpha/sync").await;
    assert_ne!(status, forbidden, "sync allowed by the role");
    let (status, _) = send(
        &admin_token,
        Method::DELETE,
        &format!("{role_token}/0?id=pipeline"),
        json!({}),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    let mut status = StatusCode::OK;
    for _ in 0..100 {
        status = call(&ci, "GET", "/api/v1/applications").await.0;
        if status == StatusCode::UNAUTHORIZED {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(status, StatusCode::UNAUTHORIZED, "revoked");

    // Passwords: changed by their owner, who proves the current one.
    let change = json!({"currentPassword": "wrong", "newPassword": "alice-new-pass"});
    assert_eq!(
        send(&alice, Method::PUT, "/api/v1/account/password", change)
            .await
            .0,
        StatusCode::UNAUTHORIZED
    );
    let short = json!({"currentPassword": "alice-pass", "newPassword": "short"});
    assert_eq!(
        send(&alice, Method::PUT, "/api/v1/account/password", short)
            .await
            .0,
        StatusCode::BAD_REQUEST
    );
    let change = json!({"currentPassword": "alice-pass", "newPassword": "alice-new-pass"});
    assert_eq!(
        send(&alice, Method::PUT, "/api/v1/account/password", change)
            .await
            .0,
        StatusCode::OK
    );
    assert!(login("alice", "alice-pass").await.is_none());
    // The sessions begun before the change end with it.
    let (status, body) = call(&alice, "GET", "/api/v1/applications").await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{body}");
    assert!(
        body["message"]
            .as_str()
            .unwrap()
            .contains("password changed"),
        "{body}"
    );
    let fresh = login("alice", "alice-new-pass")
        .await
        .expect("new password");
    assert_eq!(
        call(&fresh, "GET", "/api/v1/applications").await.0,
        StatusCode::OK
    );
    // New hashes are argon2id; Argo CD's bcrypt ones (bob's) still work.
    let stored = kubectl(
        &ns,
        &[
            "get",
            "secret",
            "argocd-secret",
            "-n",
            &control,
            "-o",
            "jsonpath={.data.accounts\\.alice\\.password}",
        ],
        None,
    );
    use base64::Engine;
    let hash = String::from_utf8(
        base64::engine::general_purpose::STANDARD
            .decode(stored.trim())
            .unwrap(),
    )
    .unwrap();
    assert!(hash.starts_with("$argon2id$"), "{hash}");
    assert!(login("bob", "bob-pass").await.is_some());

    // The audit log: who did what, from where, with what answer; written
    // just after each answer, so looked for until there.
    let mut entries = Value::Null;
    for _ in 0..100 {
        entries = call(&admin_token, "GET", "/api/v1/audit?application=alpha")
            .await
            .1;
        let has = |user: &str, status: u64| {
            entries["items"].as_array().is_some_and(|i| {
                i.iter().any(|e| {
                    e["user"] == user
                        && e["status"] == status
                        && e["method"] == "POST"
                        && e["path"] == "/api/v1/applications/alpha/sync"
                })
            })
        };
        if has("bob", 200) && has("bob", 409) && has("alice", 403) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let items = entries["items"].as_array().unwrap();
    assert!(
        items
            .iter()
            .any(|e| e["user"] == "bob" && e["status"] == 200),
        "{entries:#}"
    );
    assert!(items.iter().all(|e| e["application"] == "alpha"));
    assert!(
        items[0]["remoteAddr"]
            .as_str()
            .unwrap()
            .starts_with("127.0.0.1")
    );
    let (_, all) = call(&admin_token, "GET", "/api/v1/audit").await;
    assert!(
        all["items"]
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["user"] == "carol" && e["status"] == 401),
        "failed logins are recorded: {all:#}"
    );
    assert_eq!(
        call(&bob, "GET", "/api/v1/audit").await.0,
        StatusCode::FORBIDDEN
    );

    // A token past its expiry is refused.
    let short = server
        .token_valid_for("admin", Duration::from_secs(1))
        .unwrap();
    assert_eq!(
        call(&short, "GET", "/api/v1/applications").await.0,
        StatusCode::OK
    );
    tokio::time::sleep(Duration::from_millis(2100)).await;
    let (status, body) = call(&short, "GET", "/api/v1/applications").await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert!(
        body["message"].as_str().unwrap().contains("expired"),
        "{body}"
    );
    drop(server);
}
