//! `berth admin health` and `berth admin diff` driven as a user would, on
//! files.
#![allow(clippy::expect_used, clippy::unwrap_used, missing_docs)]

use std::path::Path;
use std::process::{Command, Output};

use berth_testenv::git::TempDir;
use serde_json::Value;

const BERTH: &str = env!("CARGO_BIN_EXE_berth");

fn berth(args: &[&str]) -> Output {
    Command::new(BERTH).args(args).output().unwrap()
}

fn write(dir: &Path, name: &str, text: &str) -> String {
    let path = dir.join(name);
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(&path, text).unwrap();
    path.display().to_string()
}

fn lines(out: &Output) -> Vec<Value> {
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

const OBJECTS: &str = r#"
apiVersion: apps/v1
kind: Deployment
metadata: {name: web, namespace: prod, generation: 1}
spec: {replicas: 2, paused: true}
---
apiVersion: v1
kind: ConfigMap
metadata: {name: settings, namespace: prod}
---
apiVersion: example.com/v1
kind: Widget
metadata: {name: w1, namespace: prod}
status: {phase: Broken}
---
apiVersion: example.com/v1
kind: Gadget
metadata: {name: g1}
"#;

#[test]
fn health_lines_in_input_order_with_every_source() {
    let dir = TempDir::new("admin-health").unwrap();
    let objects = write(dir.path(), "objects.yaml", OBJECTS);
    // JSON input with a List is accepted too.
    let json_file = write(
        dir.path(),
        "more.json",
        r#"{"apiVersion": "v1", "kind": "List", "items": [{"apiVersion": "batch/v1", "kind": "CronJob", "metadata": {"name": "nightly", "namespace": "prod"}, "spec": {"schedule": "0 3 * * *", "suspend": true}}]}"#,
    );
    write(
        dir.path(),
        "custom/example.com/Widget/health.lua",
        "if obj.status.phase == 'Broken' then return {status = 'Degraded', message = 'from directory'} end",
    );
    write(
        dir.path(),
        "custom/_/Gadget/health.lua",
        "return obj.missing.field",
    );
    let custom = dir.path().join("custom").display().to_string();

    let out = berth(&[
        "admin",
        "health",
        &objects,
        &json_file,
        "--customizations",
        &custom,
        "-o",
        "json",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let got = lines(&out);
    let summary: Vec<(String, Value)> = got
        .iter()
        .map(|l| {
            (
                format!(
                    "{}/{}",
                    l["kind"].as_str().unwrap(),
                    l["name"].as_str().unwrap()
                ),
                l["status"].clone(),
            )
        })
        .collect();
    assert_eq!(
        summary,
        vec![
            ("Deployment/web".to_string(), Value::from("Suspended")),
            ("ConfigMap/settings".to_string(), Value::Null),
            ("Widget/w1".to_string(), Value::from("Degraded")),
            ("Gadget/g1".to_string(), Value::from("Unknown")),
            ("CronJob/nightly".to_string(), Value::from("Healthy")),
        ]
    );
    assert_eq!(got[0]["message"], "Deployment is paused");
    assert_eq!(got[0]["namespace"], "prod");
    assert_eq!(got[2]["message"], "from directory");
    assert!(
        got[3]["message"]
            .as_str()
            .unwrap()
            .contains("attempt to index"),
        "Lua error text: {}",
        got[3]["message"]
    );

    // argocd-cm wins over the directory.
    let cm = write(
        dir.path(),
        "argocd-cm.yaml",
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: argocd-cm, namespace: argocd}\ndata:\n  resource.customizations.health.example.com_Widget: |\n    return {status = 'Suspended', message = 'from argocd-cm'}\n",
    );
    let out = berth(&[
        "admin",
        "health",
        &objects,
        "--customizations",
        &custom,
        "--argocd-cm",
        &cm,
        "-o",
        "json",
    ]);
    let got = lines(&out);
    assert_eq!(got[2]["status"], "Suspended");
    assert_eq!(got[2]["message"], "from argocd-cm");

    // Text output: one line per object.
    let out = berth(&["admin", "health", &objects]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(text.lines().count(), 4, "{text}");
    assert!(
        text.starts_with("Deployment/prod/web\tSuspended\tDeployment is paused\n"),
        "{text}"
    );
}

#[test]
fn health_fails_only_on_unreadable_input() {
    let dir = TempDir::new("admin-health-bad").unwrap();
    let bad = write(dir.path(), "bad.yaml", "kind: [unclosed\n");
    let out = berth(&["admin", "health", &bad]);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("bad.yaml"), "{err}");
    let out = berth(&["admin", "health", "/nonexistent/objects.yaml"]);
    assert_eq!(out.status.code(), Some(1));
    let out = berth(&["admin", "health"]);
    assert_eq!(out.status.code(), Some(2), "usage error");
}

const DESIRED: &str = r#"
apiVersion: apps/v1
kind: Deployment
metadata: {name: web, namespace: prod}
spec:
  replicas: 3
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec:
      containers:
      - {name: app, image: "web:2", resources: {limits: {cpu: 1000m}}}
---
apiVersion: v1
kind: Secret
metadata: {name: db, namespace: prod}
stringData: {password: new-password-value}
"#;

const LIVE: &str = r#"
apiVersion: apps/v1
kind: Deployment
metadata: {name: web, namespace: prod, uid: abc, resourceVersion: "12", generation: 4}
spec:
  replicas: 2
  progressDeadlineSeconds: 600
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec:
      containers:
      - {name: app, image: "web:2", imagePullPolicy: IfNotPresent, resources: {limits: {cpu: "1"}}}
status: {replicas: 2}
---
apiVersion: v1
kind: Secret
metadata: {name: db, namespace: prod}
data: {password: b2xkLXBhc3N3b3JkLXZhbHVl}
---
apiVersion: v1
kind: ConfigMap
metadata: {name: leftover, namespace: prod}
"#;

#[test]
fn diff_exit_codes_and_masking() {
    let dir = TempDir::new("admin-diff").unwrap();
    let desired = write(dir.path(), "desired.yaml", DESIRED);
    let live = write(dir.path(), "live.yaml", LIVE);
    let out = berth(&["admin", "diff", "--live", &live, "--desired", &desired]);
    assert_eq!(
        out.status.code(),
        Some(1),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("-  replicas: 2"), "{text}");
    assert!(text.contains("+  replicas: 3"), "{text}");
    assert!(!text.contains("cpu"), "1000m equals 1: {text}");
    assert!(
        text.contains("live//ConfigMap/prod/leftover"),
        "extraneous shown: {text}"
    );
    for secret in [
        "new-password-value",
        "bmV3LXBhc3N3b3JkLXZhbHVl",
        "b2xkLXBhc3N3b3JkLXZhbHVl",
        "old-password-value",
    ] {
        assert!(!text.contains(secret), "secret leaked: {text}");
    }
    assert!(text.contains("++++++++"), "{text}");

    // JSON: one object per resource, with the changed paths.
    let out = berth(&[
        "admin",
        "diff",
        "--live",
        &live,
        "--desired",
        &desired,
        "-o",
        "json",
    ]);
    let got = lines(&out);
    assert_eq!(got.len(), 3);
    assert_eq!(got[0]["status"], "OutOfSync");
    assert_eq!(got[0]["fields"][0]["path"], ".spec.replicas");
    assert_eq!(got[2]["change"], "prune");

    // Ignoring what differs makes the objects the same: exit 0.
    let ignore = write(
        dir.path(),
        "ignore.yaml",
        "- {group: apps, kind: Deployment, jsonPointers: [/spec/replicas]}\n- {kind: Secret, jqPathExpressions: [.data]}\n",
    );
    let only = write(
        dir.path(),
        "live-only.yaml",
        &LIVE[..LIVE.find("---\napiVersion: v1\nkind: ConfigMap").unwrap()],
    );
    let out = berth(&[
        "admin",
        "diff",
        "--live",
        &only,
        "--desired",
        &desired,
        "--ignore-differences",
        &ignore,
    ]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    assert!(out.stdout.is_empty());

    // Errors exit 2 and name the problem.
    let bad = write(
        dir.path(),
        "bad-ignore.yaml",
        "- {kind: Deployment, jsonPointers: [spec/replicas]}\n",
    );
    let out = berth(&[
        "admin",
        "diff",
        "--live",
        &live,
        "--desired",
        &desired,
        "--ignore-differences",
        &bad,
    ]);
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("ignoreDifferences[0]: jsonPointers"), "{err}");
    let out = berth(&[
        "admin",
        "diff",
        "--live",
        "/nonexistent.yaml",
        "--desired",
        &desired,
    ]);
    assert_eq!(out.status.code(), Some(2));
}

const PLAN_OBJECTS: &str = r#"
apiVersion: batch/v1
kind: Job
metadata:
  name: migrate
  annotations: {argocd.argoproj.io/hook: PreSync, argocd.argoproj.io/hook-delete-policy: HookSucceeded}
spec: {template: {spec: {restartPolicy: Never, containers: [{name: m, image: "migrate:1"}]}}}
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: web, annotations: {argocd.argoproj.io/sync-wave: "1"}}
spec: {replicas: 1}
---
apiVersion: v1
kind: ConfigMap
metadata: {name: settings, namespace: shop}
data: {a: b}
"#;

#[test]
fn plan_orders_phases_waves_and_prunes() {
    let dir = TempDir::new("admin-plan").unwrap();
    let objects = write(dir.path(), "objects.yaml", PLAN_OBJECTS);
    let live = write(
        dir.path(),
        "live.yaml",
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: old, namespace: shop}\n---\napiVersion: v1\nkind: ConfigMap\nmetadata: {name: settings, namespace: shop}\ndata: {a: b}\n",
    );
    let out = berth(&[
        "admin",
        "plan",
        "-f",
        &objects,
        "--live",
        &live,
        "-n",
        "shop",
        "--prune",
        "--sync-option",
        "CreateNamespace=true",
        "--sync-option",
        "ApplyOutOfSyncOnly=true",
        "-o",
        "json",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let plan: Value = serde_json::from_slice(&out.stdout).unwrap();
    let groups: Vec<String> = plan["groups"]
        .as_array()
        .unwrap()
        .iter()
        .map(|g| format!("{} {}", g["phase"].as_str().unwrap(), g["wave"]))
        .collect();
    assert_eq!(groups, ["PreSync 0", "Sync 0", "Sync 1"], "{plan:#}");
    let text = serde_json::to_string(&plan).unwrap();
    // The namespace is created first; the in-sync ConfigMap is not applied
    // (ApplyOutOfSyncOnly) and the extraneous one is pruned.
    assert_eq!(plan["prepare"][0]["action"], "ensureNamespace", "{plan:#}");
    assert!(plan["skipped"].to_string().contains("settings"), "{plan:#}");
    let sync0 = plan["groups"][1]["steps"].to_string();
    assert!(
        sync0.contains("\"prune\"") && sync0.contains("\"old\""),
        "{sync0}"
    );
    assert!(!text.contains("\"error\""), "{text}");

    // Without --prune, the extraneous object is skipped, not pruned.
    let out = berth(&[
        "admin", "plan", "-f", &objects, "--live", &live, "-n", "shop",
    ]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success());
    assert!(!text.contains("prune ConfigMap"), "{text}");

    // A misspelt option value is an error that stops the plan.
    let bad = write(
        dir.path(),
        "bad.yaml",
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: c, annotations: {argocd.argoproj.io/sync-options: Prune=flase}}\n",
    );
    let out = berth(&["admin", "plan", "-f", &bad, "-n", "shop"]);
    assert_eq!(out.status.code(), Some(1));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("Prune=flase"), "{text}");
}

fn kubectl(ns: &berth_testenv::TestNamespace, args: &[&str], stdin: Option<&str>) -> String {
    let mut all = vec!["-n", ns.name.as_str()];
    all.extend_from_slice(args);
    berth_testenv::kubectl_ok(&ns.kubeconfig, &all, stdin).unwrap()
}

const SHOP: &str = r#"
apiVersion: apps/v1
kind: Deployment
metadata: {name: web, labels: {app: web}}
spec:
  replicas: 2
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec:
      containers:
      - name: web
        image: registry.example/web:1.0
        ports: [{containerPort: 8080}]
        resources: {limits: {cpu: 500m, memory: 0.5Gi}}
---
apiVersion: v1
kind: Service
metadata: {name: web}
spec:
  selector: {app: web}
  ports: [{port: 80, targetPort: 8080}]
---
apiVersion: v1
kind: ConfigMap
metadata: {name: web-config}
data: {color: blue, size: large}
---
apiVersion: v1
kind: Secret
metadata: {name: db}
stringData: {password: correct-horse-battery}
"#;

/// The offline diff on objects a real API server returned: its defaults,
/// status and metadata are no differences; a scale and a removed field are.
#[tokio::test]
async fn diff_against_what_a_real_api_server_returns() {
    let ns = berth_testenv::TestNamespace::new("admin-diff-live")
        .await
        .unwrap();
    let dir = TempDir::new("admin-diff-live").unwrap();
    let desired_text = SHOP.replace(
        "metadata: {name: ",
        &format!("metadata: {{namespace: {}, name: ", ns.name),
    );
    let desired = write(dir.path(), "desired.yaml", &desired_text);
    let names = [
        "deployment/web",
        "service/web",
        "configmap/web-config",
        "secret/db",
    ];
    let get = |file: &str| {
        let mut args = vec!["get"];
        args.extend(names);
        args.extend(["-o", "yaml"]);
        write(dir.path(), file, &kubectl(&ns, &args, None))
    };
    let diff =
        |live: &str, desired: &str| berth(&["admin", "diff", "--live", live, "--desired", desired]);

    kubectl(&ns, &["apply", "-f", "-"], Some(&desired_text));
    let live = get("live-1.yaml");
    let out = diff(&live, &desired);
    assert_eq!(
        out.status.code(),
        Some(0),
        "freshly applied objects are in sync: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );

    // Someone scales by hand: drift.
    kubectl(&ns, &["scale", "deployment/web", "--replicas=5"], None);
    let live = get("live-2.yaml");
    let out = diff(&live, &desired);
    assert_eq!(out.status.code(), Some(1));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("-  replicas: 5") && text.contains("+  replicas: 2"),
        "{text}"
    );
    assert!(
        !text.contains("correct-horse-battery") && !text.contains("Y29ycmVjdC1ob3JzZS1iYXR0ZXJ5"),
        "{text}"
    );

    // A key removed from Git that the last apply set is a difference.
    kubectl(&ns, &["scale", "deployment/web", "--replicas=2"], None);
    let live = get("live-3.yaml");
    let fewer = write(
        dir.path(),
        "fewer.yaml",
        &desired_text.replace(", size: large", ""),
    );
    let out = berth(&[
        "admin",
        "diff",
        "--live",
        &live,
        "--desired",
        &fewer,
        "-o",
        "json",
    ]);
    assert_eq!(out.status.code(), Some(1));
    let got = lines(&out);
    let cm = got.iter().find(|d| d["kind"] == "ConfigMap").unwrap();
    assert_eq!(cm["fields"][0]["path"], ".data.size", "{cm}");
    assert!(
        got.iter()
            .filter(|d| d["kind"] != "ConfigMap")
            .all(|d| d["status"] == "Synced"),
        "{got:?}"
    );

    // The same for server-side apply, read from Berth's field manager.
    let ssa = SHOP
        .replace(
            "metadata: {name: ",
            &format!("metadata: {{namespace: {}, name: ssa-", ns.name),
        )
        .replace("name: db}", "name: ssa-db}");
    let ssa_file = write(dir.path(), "ssa.yaml", &ssa);
    kubectl(
        &ns,
        &[
            "apply",
            "--server-side",
            "--field-manager",
            "berth",
            "-f",
            "-",
        ],
        Some(&ssa),
    );
    let live = write(
        dir.path(),
        "live-ssa.yaml",
        // kubectl hides managedFields unless asked.
        &kubectl(
            &ns,
            &[
                "get",
                "deployment/ssa-web",
                "configmap/ssa-web-config",
                "-o",
                "yaml",
                "--show-managed-fields",
            ],
            None,
        ),
    );
    let only = |text: &str| {
        text.split("---")
            .filter(|d| d.contains("kind: Deployment") || d.contains("kind: ConfigMap"))
            .collect::<Vec<_>>()
            .join("---")
    };
    let ssa_desired = write(dir.path(), "ssa-desired.yaml", &only(&ssa));
    let out = diff(&live, &ssa_desired);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    let ssa_fewer = write(
        dir.path(),
        "ssa-fewer.yaml",
        &only(&ssa).replace(", size: large", ""),
    );
    let out = diff(&live, &ssa_fewer);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stdout).contains("-  size: large"));
    let _ = ssa_file;
}
