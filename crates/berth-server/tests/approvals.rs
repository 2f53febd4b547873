//! Sync approval gates end to end, over real HTTP, with the controller,
//! the local control plane and a real Git server: a sync of a gated app
//! opens a request instead of syncing; one approval, then two from
//! distinct users (the same user twice counts once, the requester cannot
//! approve, a user without `approve` cannot); a new commit supersedes a
//! pending request; a rejection closes one; requests expire; a restricted
//! user who patches `operation` directly or forges approvals or requests
//! gets no sync; automated sync opens a request per revision and self-heal
//! restores only the approved state; break-glass override works for the
//! override role only and is audited.
#![allow(clippy::expect_used, clippy::unwrap_used, missing_docs)]

use std::time::Duration;

use berth_controller::controller::{Config, Controller};
use berth_server::{Server, ServerConfig};
use berth_testenv::TestNamespace;
use berth_testenv::git::{GitFixture, TempDir, git_daemon};
use reqwest::Method;
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

fn cm(color: &str) -> String {
    format!("apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: paint\ndata:\n  color: {color}\n")
}

const POLICY: &str = "\
p, role:dev, applications, get, */*, allow
p, role:dev, applications, sync, */*, allow
p, role:approver, applications, get, */*, allow
p, role:approver, applications, approve, */*, allow
p, role:breakglass, applications, override, */*, allow
g, alice, role:dev
g, alice, role:approver
g, dave, role:dev
g, bob, role:approver
g, carol, role:approver
g, erin, role:dev
g, erin, role:breakglass
";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gated_syncs_need_approvals() {
    let ns = TestNamespace::new("gates").await.unwrap();
    let control = format!("{}-argocd", ns.name);
    let fixture = GitFixture::new().unwrap();
    let repo = fixture
        .create_repo("gates", &[("app/cm.yaml", &cm("blue"))])
        .unwrap();
    let daemon = git_daemon(&fixture).unwrap();
    let url = format!("git://127.0.0.1:{}/gates.git", daemon.port);
    let cache = TempDir::new("gates-cache").unwrap();
    let mut config = Config::new(&control, cache.path().to_path_buf());
    config.resync = Duration::from_secs(2);
    let views = config.views.clone();
    let controller = Controller::start(ns.client.clone(), config).await.unwrap();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let running = tokio::spawn(controller.run(async {
        let _ = stopped.await;
    }));
    let indented: String = POLICY.lines().map(|l| format!("    {l}\n")).collect();
    kubectl(
        &ns,
        &["apply", "-f", "-"],
        Some(&format!(
            "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: argocd-rbac-cm\n  namespace: {control}\ndata:\n  policy.csv: |\n{indented}"
        )),
    );
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
    let call =
        async |user: &str, method: Method, path: &str, body: Option<Value>| -> (u16, Value) {
            let token = server.token_for(user).unwrap();
            let mut r = http
                .request(method, format!("{base}{path}"))
                .bearer_auth(token);
            if let Some(b) = body {
                r = r.json(&b);
            }
            let r = r.send().await.unwrap();
            let status = r.status().as_u16();
            (status, r.json().await.unwrap_or(Value::Null))
        };

    let app = format!("pay-{}", &ns.name[ns.name.len() - 6..]);
    let gate = format!("gate-{app}");
    let gate_spec = |required: u32, ttl: &str| {
        json!({"apiVersion": "berth.io/v1alpha1", "kind": "ApprovalGate",
            "metadata": {"name": gate},
            "spec": {"applications": [app], "requiredApprovals": required, "requestTTL": ttl}})
        .to_string()
    };
    kubectl(&ns, &["apply", "-f", "-"], Some(&gate_spec(1, "1h")));
    kubectl(
        &ns,
        &["apply", "-f", "-"],
        Some(&format!(
            "apiVersion: argoproj.io/v1alpha1\nkind: Application\nmetadata:\n  name: {app}\n  namespace: {control}\nspec:\n  project: default\n  source:\n    repoURL: {url}\n    targetRevision: main\n    path: app\n  destination:\n    server: https://kubernetes.default.svc\n    namespace: {}\n",
            ns.name
        )),
    );
    let color = || {
        berth_testenv::kubectl(
            &ns.kubeconfig,
            &[
                "get",
                "configmap",
                "paint",
                "-n",
                &ns.name,
                "-o",
                "jsonpath={.data.color}",
            ],
            None,
        )
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .unwrap_or_default()
    };
    let app_path = format!("/api/v1/applications/{app}");
    let get_app = async || call("admin", Method::GET, &app_path, None).await.1;
    let request_of = |a: &Value| -> String {
        a["operation"]["info"]
            .as_array()
            .and_then(|i| i.iter().find(|e| e["name"] == "berth.io/request"))
            .and_then(|e| e["value"].as_str())
            .unwrap_or_default()
            .to_string()
    };
    let request = async |id: &str| {
        call(
            "admin",
            Method::GET,
            &format!("{app_path}/approvals/{id}"),
            None,
        )
        .await
        .1
    };
    let decide = async |user: &str, id: &str, decision: &str, comment: &str| {
        call(
            user,
            Method::POST,
            &format!("{app_path}/approvals/{id}"),
            Some(json!({"decision": decision, "comment": comment})),
        )
        .await
    };
    let sync = async |user: &str| {
        let (code, a) = call(
            user,
            Method::POST,
            &format!("{app_path}/sync"),
            Some(json!({})),
        )
        .await;
        assert_eq!(code, 200, "{a}");
        let id = request_of(&a);
        assert!(!id.is_empty(), "a gated sync names its request: {a}");
        id
    };
    let refresh = || {
        kubectl(
            &ns,
            &[
                "annotate",
                "app",
                &app,
                "-n",
                &control,
                "argocd.argoproj.io/refresh=normal",
                "--overwrite",
            ],
            None,
        );
    };
    let push = |c: &str| -> String {
        let sha = repo.commit(&[("app/cm.yaml", &cm(c))], c).unwrap();
        repo.push("main").unwrap();
        refresh();
        sha
    };
    until("compared", async || {
        get_app().await["status"]["sync"]["status"] == "OutOfSync"
    })
    .await;

    // One approval: the sync waits as a request.
    let id1 = sync("alice").await;
    until("the request pending", async || {
        request(&id1).await["status"]["verdict"]["state"] == "Pending"
    })
    .await;
    let r1 = request(&id1).await;
    assert_eq!(
        r1["spec"]["requester"],
        json!({"username": "alice", "verified": true})
    );
    assert_eq!(
        r1["spec"]["summary"]["create"], 1,
        "{}",
        r1["spec"]["summary"]
    );
    assert!(
        r1["spec"]["summary"]["objects"][0]["diff"]
            .as_str()
            .unwrap()
            .contains("blue")
    );
    until("the operation handed to the request", async || {
        get_app().await["operation"].is_null()
    })
    .await;
    assert_eq!(
        get_app().await["status"]["berth"]["approval"]["request"],
        id1.as_str()
    );
    assert_eq!(color(), "", "nothing synced before approval");
    let (code, body) = decide("alice", &id1, "approve", "").await;
    assert_eq!(code, 403, "the requester cannot approve: {body}");
    assert!(
        body["message"].as_str().unwrap().contains("requester"),
        "{body}"
    );
    let (code, _) = decide("dave", &id1, "approve", "").await;
    assert_eq!(code, 403, "no approve right");
    let (code, body) = decide("bob", &id1, "approve", "looks fine").await;
    assert_eq!(code, 200, "{body}");
    until("synced once approved", async || color() == "blue").await;
    until("the request executed", async || {
        request(&id1).await["status"]["phase"] == "Executed"
    })
    .await;
    let history = get_app().await["status"]["history"].clone();
    assert_eq!(history[0]["initiatedBy"]["username"], "alice", "{history}");
    let (code, _) = decide("carol", &id1, "approve", "").await;
    assert_eq!(code, 409, "an executed request is closed");

    // Two approvals from distinct users; the same user twice counts once.
    kubectl(&ns, &["apply", "-f", "-"], Some(&gate_spec(2, "1h")));
    let _ = push("green");
    until("green is the target", async || {
        get_app().await["status"]["sync"]["status"] == "OutOfSync"
    })
    .await;
    let id2 = sync("alice").await;
    until("request 2 pending", async || {
        request(&id2).await["status"]["verdict"]["state"] == "Pending"
    })
    .await;
    assert_eq!(decide("bob", &id2, "approve", "").await.0, 200);
    assert_eq!(
        decide("bob", &id2, "approve", "").await.0,
        409,
        "once per user"
    );
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(color(), "blue", "one of two approvals syncs nothing");
    assert_eq!(request(&id2).await["status"]["verdict"]["approvals"], 1);
    assert_eq!(decide("carol", &id2, "approve", "").await.0, 200);
    until("synced with two approvals", async || color() == "green").await;

    // A new commit supersedes a pending request.
    let _ = push("red");
    until("red is the target", async || {
        get_app().await["status"]["sync"]["status"] == "OutOfSync"
    })
    .await;
    let id3 = sync("alice").await;
    until("request 3 pending", async || {
        request(&id3).await["status"]["phase"] == "Pending"
    })
    .await;
    let _ = push("yellow");
    until("request 3 superseded", async || {
        request(&id3).await["status"]["phase"] == "Superseded"
    })
    .await;
    assert_eq!(decide("bob", &id3, "approve", "").await.0, 409);

    // A rejection closes a request.
    let id4 = sync("alice").await;
    until("request 4 pending", async || {
        request(&id4).await["status"]["phase"] == "Pending"
    })
    .await;
    assert_eq!(
        decide("bob", &id4, "reject", "").await.0,
        400,
        "a rejection says why"
    );
    assert_eq!(
        decide("bob", &id4, "reject", "not during the sale").await.0,
        200
    );
    until("request 4 rejected", async || {
        request(&id4).await["status"]["phase"] == "Rejected"
    })
    .await;
    assert_eq!(decide("carol", &id4, "approve", "").await.0, 409);
    // Removing the rejection from the request does not reopen it: it
    // stands in an ApprovalRecord, cluster-scoped.
    kubectl(
        &ns,
        &[
            "patch",
            "syncrequest.berth.io",
            &id4,
            "-n",
            &control,
            "--subresource=status",
            "--type",
            "merge",
            "-p",
            r#"{"status":{"approvals":[],"phase":"Pending"}}"#,
        ],
        None,
    );
    assert_eq!(decide("carol", &id4, "approve", "").await.0, 409);
    assert_eq!(
        request(&id4).await["status"]["verdict"]["state"],
        "Rejected"
    );
    assert_eq!(color(), "green");

    // A restricted user of the control plane patches `operation` and
    // forges approvals and a request: no sync.
    kubectl(
        &ns,
        &["apply", "-f", "-"],
        Some(&format!(
            "apiVersion: rbac.authorization.k8s.io/v1\nkind: Role\nmetadata:\n  name: app-editor\n  namespace: {control}\nrules:\n- apiGroups: [argoproj.io]\n  resources: [applications]\n  verbs: [get, list, watch, patch, update]\n- apiGroups: [berth.io]\n  resources: [syncrequests, syncrequests/status]\n  verbs: [get, list, create, patch, update]\n---\napiVersion: rbac.authorization.k8s.io/v1\nkind: RoleBinding\nmetadata:\n  name: mallory-app-editor\n  namespace: {control}\nsubjects:\n- {{kind: User, name: mallory, apiGroup: rbac.authorization.k8s.io}}\nroleRef: {{kind: Role, name: app-editor, apiGroup: rbac.authorization.k8s.io}}\n"
        )),
    );
    let as_mallory = |args: &[&str]| {
        let mut all = vec!["--as=mallory"];
        all.extend_from_slice(args);
        berth_testenv::kubectl(&ns.kubeconfig, &all, None).unwrap()
    };
    let secret_read = as_mallory(&["get", "secret", "berth-approval-key", "-n", &control]);
    assert!(!secret_read.status.success(), "mallory cannot read the key");
    let patched = as_mallory(&[
        "patch",
        "app",
        &app,
        "-n",
        &control,
        "--type",
        "merge",
        "-p",
        r#"{"operation":{"sync":{},"initiatedBy":{"username":"bob"}}}"#,
    ]);
    assert!(
        patched.status.success(),
        "{}",
        String::from_utf8_lossy(&patched.stderr)
    );
    until("mallory's operation became a request", async || {
        get_app().await["operation"].is_null()
            && get_app().await["status"]["berth"]["approval"]["request"].is_string()
    })
    .await;
    let id5 = get_app().await["status"]["berth"]["approval"]["request"]
        .as_str()
        .unwrap()
        .to_string();
    let r5 = request(&id5).await;
    assert_eq!(
        r5["spec"]["requester"],
        json!({"username": "bob", "verified": false}),
        "claimed, not verified"
    );
    // Forged approvals on the genuine request.
    let forged = json!({"status": {"approvals": [
        {"user": "carol", "decision": "approve", "at": "2026-01-01T00:00:00Z", "signature": "00".repeat(32)},
        {"user": "bob", "decision": "approve", "at": "2026-01-01T00:00:00Z", "signature": "ab".repeat(32)},
    ]}});
    let wrote = as_mallory(&[
        "patch",
        "syncrequest.berth.io",
        &id5,
        "-n",
        &control,
        "--subresource=status",
        "--type",
        "merge",
        "-p",
        &forged.to_string(),
    ]);
    assert!(
        wrote.status.success(),
        "{}",
        String::from_utf8_lossy(&wrote.stderr)
    );
    // A forged request, approved, carried by the operation.
    let fake = json!({"apiVersion": "berth.io/v1alpha1", "kind": "SyncRequest",
        "metadata": {"name": format!("{app}-fake"), "namespace": control,
            "labels": {"berth.io/application": app}},
        "spec": {"application": app, "binding": r5["spec"]["binding"], "operation": {"sync": {}},
            "requester": {"username": "bob", "verified": true}, "expiresAt": "2099-01-01T00:00:00Z",
            "signature": "11".repeat(32)}});
    let created = berth_testenv::kubectl(
        &ns.kubeconfig,
        &["--as=mallory", "create", "-f", "-"],
        Some(&fake.to_string()),
    )
    .unwrap();
    assert!(
        created.status.success(),
        "{}",
        String::from_utf8_lossy(&created.stderr)
    );
    as_mallory(&[
        "patch", "app", &app, "-n", &control, "--type", "merge", "-p",
        &json!({"operation": {"sync": {}, "info": [{"name": "berth.io/request", "value": format!("{app}-fake")}]}}).to_string(),
    ]);
    refresh();
    until("the forged request marked", async || {
        request(&format!("{app}-fake")).await["status"]["phase"] == "Forged"
    })
    .await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(
        color(),
        "green",
        "no sync from forged approvals or requests"
    );
    assert_eq!(request(&id5).await["status"]["verdict"]["state"], "Pending");
    // An unverified requester needs one more approval than the gate asks.
    assert_eq!(request(&id5).await["status"]["verdict"]["required"], 3);

    // Expiry.
    kubectl(&ns, &["apply", "-f", "-"], Some(&gate_spec(1, "2s")));
    let id6 = sync("alice").await;
    until("request 6 expired", async || {
        refresh();
        request(&id6).await["status"]["phase"] == "Expired"
    })
    .await;
    assert_eq!(decide("bob", &id6, "approve", "").await.0, 409);
    assert_eq!(color(), "green");

    // Automated sync opens a request per revision; self-heal restores the
    // approved state only.
    kubectl(&ns, &["apply", "-f", "-"], Some(&gate_spec(1, "1h")));
    kubectl(
        &ns,
        &[
            "patch",
            "app",
            &app,
            "-n",
            &control,
            "--type",
            "merge",
            "-p",
            r#"{"spec":{"syncPolicy":{"automated":{"selfHeal":true}}}}"#,
        ],
        None,
    );
    let purple = push("purple");
    let automated = async |sha: &str| -> Option<(String, Value)> {
        let (_, list) = call("admin", Method::GET, &format!("{app_path}/approvals"), None).await;
        list["items"]
            .as_array()?
            .iter()
            .find(|r| {
                r["spec"]["automated"] == true
                    && r["status"]["phase"] == "Pending"
                    && r["spec"]["binding"]["revisions"][0] == sha
            })
            .map(|r| {
                (
                    r["metadata"]["name"].as_str().unwrap().to_string(),
                    r.clone(),
                )
            })
    };
    until("an automated request for purple", async || {
        automated(&purple).await.is_some()
    })
    .await;
    let (id7, r7) = automated(&purple).await.unwrap();
    assert_eq!(r7["spec"]["requester"]["username"], "automated-sync");
    assert_eq!(color(), "green");
    // Who changed the target is not known: one approval more than the
    // gate's.
    assert_eq!(decide("bob", &id7, "approve", "").await.0, 200);
    assert_eq!(request(&id7).await["status"]["verdict"]["required"], 2);
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(color(), "green");
    assert_eq!(decide("carol", &id7, "approve", "").await.0, 200);
    until("purple applied once approved", async || color() == "purple").await;
    kubectl(
        &ns,
        &[
            "patch",
            "configmap",
            "paint",
            "-n",
            &ns.name,
            "--type",
            "merge",
            "-p",
            r#"{"data":{"color":"hacked"}}"#,
        ],
        None,
    );
    until("self-heal restored the approved state", async || {
        color() == "purple"
    })
    .await;
    let orange = push("orange");
    until("an automated request for orange", async || {
        automated(&orange).await.is_some()
    })
    .await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(
        color(),
        "purple",
        "self-heal never applies the unapproved revision"
    );
    // Drift while orange waits: self-heal restores purple, the approved.
    kubectl(
        &ns,
        &[
            "patch",
            "configmap",
            "paint",
            "-n",
            &ns.name,
            "--type",
            "merge",
            "-p",
            r#"{"data":{"color":"hacked-again"}}"#,
        ],
        None,
    );
    until("self-heal restored the approved purple", async || {
        color() == "purple"
    })
    .await;

    // Break glass: only for the override role, with a reason, audited.
    let (code, _) = call(
        "dave",
        Method::POST,
        &format!("{app_path}/sync"),
        Some(json!({"approvalOverride": "I want to"})),
    )
    .await;
    assert_eq!(code, 403, "dave may not override");
    let (code, body) = call(
        "erin",
        Method::POST,
        &format!("{app_path}/sync"),
        Some(json!({"approvalOverride": "incident 42"})),
    )
    .await;
    assert_eq!(code, 200, "{body}");
    until("the override synced orange", async || color() == "orange").await;
    // The override's signed request, copied from the status and written
    // again by mallory for a newer commit: refused, nothing applied.
    let used = get_app().await["status"]["operationState"]["operation"].clone();
    assert!(used["info"].is_array(), "{used}");
    let _ = push("black");
    until("black is the target", async || {
        get_app().await["status"]["sync"]["revision"] != json!(orange)
    })
    .await;
    let replay = json!({"operation": {"sync": used["sync"].clone(), "info": used["info"].clone(),
        "initiatedBy": {"username": "erin"}}});
    let replay = {
        let mut r = replay;
        if let Some(sync) = r["operation"]["sync"].as_object_mut() {
            // As erin's request was made: without what the controller
            // added (the resolved revision, the options in force).
            sync.remove("revision");
            sync.remove("syncOptions");
        }
        r
    };
    let wrote = as_mallory(&[
        "patch",
        "app",
        &app,
        "-n",
        &control,
        "--type",
        "merge",
        "-p",
        &replay.to_string(),
    ]);
    assert!(
        wrote.status.success(),
        "{}",
        String::from_utf8_lossy(&wrote.stderr)
    );
    until("the replayed override refused", async || {
        get_app().await["status"]["operationState"]["message"]
            .as_str()
            .is_some_and(|m| m.contains("used already"))
    })
    .await;
    assert_eq!(color(), "orange", "the replay applied nothing");
    until("the override audited", async || {
        let list = kubectl(
            &ns,
            &["get", "auditentries.berth.io", "-n", &control, "-o", "json"],
            None,
        );
        let list: Value = serde_json::from_str(&list).unwrap();
        list["items"].as_array().unwrap().iter().any(|e| {
            e["spec"]["action"] == "ApprovalOverridden"
                && e["spec"]["user"] == "erin"
                && e["spec"]["message"]
                    .as_str()
                    .unwrap()
                    .contains("incident 42")
        })
    })
    .await;

    kubectl(&ns, &["delete", "approvalgate.berth.io", &gate], None);
    drop(server);
    let _ = stop.send(());
    let _ = running.await;
}
