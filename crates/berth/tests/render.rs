//! `berth render` driven as a user would, on a local directory and on a Git
//! repository at a revision.
#![allow(clippy::expect_used, clippy::unwrap_used, missing_docs)]

use std::process::Command;

use berth_testenv::git::{GitFixture, TempDir};
use serde_json::Value;

const BERTH: &str = env!("CARGO_BIN_EXE_berth");

fn berth(args: &[&str], cache: &std::path::Path) -> std::process::Output {
    Command::new(BERTH)
        .args(args)
        .env("BERTH_CACHE_DIR", cache)
        .output()
        .unwrap()
}

fn items(out: &std::process::Output) -> Vec<Value> {
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let list: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(list["kind"], "List");
    list["items"].as_array().unwrap().clone()
}

fn kinds(items: &[Value]) -> Vec<String> {
    items
        .iter()
        .map(|o| {
            format!(
                "{}/{}",
                o["kind"].as_str().unwrap(),
                o["metadata"]["name"].as_str().unwrap()
            )
        })
        .collect()
}

#[test]
fn renders_a_local_directory_in_apply_order() {
    let tmp = TempDir::new("berth-render-cli").unwrap();
    let app = tmp.path().join("app");
    std::fs::create_dir_all(&app).unwrap();
    std::fs::write(app.join("all.yaml"), "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: web}\n---\napiVersion: example.com/v1\nkind: Widget\nmetadata: {name: w}\n---\napiVersion: v1\nkind: ConfigMap\nmetadata: {name: cfg}\ndata: {mode: 0644}\n---\napiVersion: v1\nkind: Namespace\nmetadata: {name: shop}\n").unwrap();
    let out = berth(
        &[
            "render",
            "--local",
            tmp.path().to_str().unwrap(),
            "--path",
            "app",
            "-o",
            "json",
        ],
        tmp.path(),
    );
    let objs = items(&out);
    assert_eq!(
        kinds(&objs),
        [
            "Namespace/shop",
            "ConfigMap/cfg",
            "Deployment/web",
            "Widget/w"
        ]
    );
    assert_eq!(
        objs[1]["data"]["mode"], 420,
        "YAML read as Kubernetes reads it"
    );

    let yaml = berth(
        &[
            "render",
            "--local",
            tmp.path().to_str().unwrap(),
            "--path",
            "app",
        ],
        tmp.path(),
    );
    assert!(yaml.status.success());
    let text = String::from_utf8(yaml.stdout).unwrap();
    assert_eq!(text.matches("---\n").count(), 4);
    assert!(
        text.starts_with("---\napiVersion: v1\nkind: Namespace\n"),
        "{text}"
    );

    std::fs::write(app.join("broken.yaml"), "foo: bar\n").unwrap();
    let out = berth(
        &[
            "render",
            "--local",
            tmp.path().to_str().unwrap(),
            "--path",
            "app",
        ],
        tmp.path(),
    );
    assert_eq!(out.status.code(), Some(1));
    assert!(out.stdout.is_empty(), "no partial output");
    assert_eq!(
        String::from_utf8_lossy(&out.stderr).trim(),
        "error: broken.yaml (document 1): missing `apiVersion`: this is not a Kubernetes manifest"
    );
}

#[test]
fn renders_a_helm_chart_from_git_at_a_revision() {
    let fixture = GitFixture::new().unwrap();
    let chart = |replicas: &str| {
        vec![
            ("charts/web/Chart.yaml", "apiVersion: v2\nname: web\nversion: 0.1.0\n".to_string()),
            ("charts/web/values.yaml", format!("replicas: {replicas}\n")),
            (
                "charts/web/templates/deploy.yaml",
                "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: {{ .Release.Name }}-web, namespace: {{ .Release.Namespace }}}\nspec: {replicas: {{ .Values.replicas }}}\n".to_string(),
            ),
        ]
    };
    let files = chart("1");
    let refs: Vec<(&str, &str)> = files.iter().map(|(p, c)| (*p, c.as_str())).collect();
    let repo = fixture.create_repo("charts", &refs).unwrap();
    repo.tag("v1.0.0", true).unwrap();
    let files = chart("2");
    let refs: Vec<(&str, &str)> = files.iter().map(|(p, c)| (*p, c.as_str())).collect();
    repo.commit(&refs, "two replicas").unwrap();
    repo.push("main").unwrap();
    let tmp = TempDir::new("berth-render-git").unwrap();
    let url = repo.bare.display().to_string();

    for (revision, replicas) in [("main", 2), ("v1.0.0", 1), ("^1", 1)] {
        let out = berth(
            &[
                "render",
                "--repo",
                &url,
                "--revision",
                revision,
                "--path",
                "charts/web",
                "--release-name",
                "shop",
                "-n",
                "prod",
                "-o",
                "json",
            ],
            tmp.path(),
        );
        let objs = items(&out);
        assert_eq!(kinds(&objs), ["Deployment/shop-web"], "{revision}");
        assert_eq!(objs[0]["spec"]["replicas"], replicas, "{revision}");
        assert_eq!(objs[0]["metadata"]["namespace"], "prod");
    }
    let out = berth(
        &[
            "render",
            "--repo",
            &url,
            "--revision",
            "main",
            "--path",
            "charts/web",
            "--helm-set",
            "replicas=7",
            "-o",
            "json",
        ],
        tmp.path(),
    );
    assert_eq!(items(&out)[0]["spec"]["replicas"], 7);

    let out = berth(
        &[
            "render",
            "--repo",
            &url,
            "--revision",
            "nope",
            "--path",
            "charts/web",
        ],
        tmp.path(),
    );
    assert_eq!(out.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("unable to resolve 'nope' to a commit SHA")
    );
}

#[test]
fn renders_an_application_manifest_with_tracking_metadata() {
    let fixture = GitFixture::new().unwrap();
    let repo = fixture
        .create_repo(
            "gitops",
            &[
                ("base/kustomization.yaml", "resources: [deploy.yaml]\n"),
                ("base/deploy.yaml", "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: web}\nspec: {replicas: 1}\n"),
                ("overlays/prod/kustomization.yaml", "resources: [../../base]\n"),
            ],
        )
        .unwrap();
    let tmp = TempDir::new("berth-render-app").unwrap();
    let app = format!(
        r#"apiVersion: argoproj.io/v1alpha1
kind: Application
metadata:
  name: shop
  namespace: argocd
spec:
  project: default
  source:
    repoURL: {url}
    targetRevision: main
    path: overlays/prod
    kustomize:
      namePrefix: prod-
      namespace: shop-prod
      replicas:
      - name: web
        count: "3"
      commonLabels: {{team: payments}}
  destination:
    server: https://kubernetes.default.svc
    namespace: shop-prod
"#,
        url = repo.bare.display()
    );
    let file = tmp.path().join("app.yaml");
    std::fs::write(&file, &app).unwrap();
    let out = berth(
        &["render", "-f", file.to_str().unwrap(), "-o", "json"],
        tmp.path(),
    );
    let objs = items(&out);
    assert_eq!(kinds(&objs), ["Deployment/prod-web"]);
    let d = &objs[0];
    assert_eq!(d["metadata"]["namespace"], "shop-prod");
    assert_eq!(d["spec"]["replicas"], 3);
    assert_eq!(d["metadata"]["labels"]["team"], "payments");
    assert_eq!(
        d["metadata"]["annotations"]["argocd.argoproj.io/tracking-id"],
        "shop:apps/Deployment:shop-prod/prod-web"
    );

    let out = berth(
        &[
            "render",
            "-f",
            file.to_str().unwrap(),
            "--tracking-method",
            "label",
            "-o",
            "json",
        ],
        tmp.path(),
    );
    let objs = items(&out);
    assert_eq!(
        objs[0]["metadata"]["labels"]["app.kubernetes.io/instance"],
        "shop"
    );
    assert!(
        objs[0]["metadata"]["annotations"]
            .get("argocd.argoproj.io/tracking-id")
            .is_none()
    );

    // A typo is reported, not fatal.
    std::fs::write(
        &file,
        app.replace("targetRevision: main", "targetRevison: main"),
    )
    .unwrap();
    let out = berth(
        &["render", "-f", file.to_str().unwrap(), "-o", "json"],
        tmp.path(),
    );
    assert!(out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("unknown field spec.source.targetRevison is ignored"),
        "{stderr}"
    );

    std::fs::write(
        &file,
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: x}\n",
    )
    .unwrap();
    let out = berth(&["render", "-f", file.to_str().unwrap()], tmp.path());
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("expected apiVersion argoproj.io/v1alpha1 and kind Application"),
        "{stderr}"
    );
}

#[test]
fn renders_multiple_sources_with_ref_value_files() {
    let fixture = GitFixture::new().unwrap();
    let charts = fixture
        .create_repo(
            "charts-multi",
            &[
                ("web/Chart.yaml", "apiVersion: v2\nname: web\nversion: 0.1.0\n"),
                ("web/values.yaml", "replicas: 1\n"),
                ("web/templates/d.yaml", "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: {{ .Release.Name }}}\nspec: {replicas: {{ .Values.replicas }}}\n"),
                ("extra/cm.yaml", "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: extra}\n"),
            ],
        )
        .unwrap();
    let values = fixture
        .create_repo("values-multi", &[("envs/prod.yaml", "replicas: 5\n")])
        .unwrap();
    let tmp = TempDir::new("berth-render-multi").unwrap();
    let app = |value_file: &str| {
        format!(
            "apiVersion: argoproj.io/v1alpha1\nkind: Application\nmetadata: {{name: web, namespace: argocd}}\nspec:\n  project: default\n  destination: {{namespace: prod}}\n  sources:\n  - repoURL: {charts}\n    path: web\n    helm:\n      valueFiles: [\"{value_file}\"]\n  - repoURL: {charts}\n    path: extra\n  - repoURL: {values}\n    targetRevision: main\n    ref: values\n",
            charts = charts.bare.display(),
            values = values.bare.display()
        )
    };
    let file = tmp.path().join("app.yaml");
    std::fs::write(&file, app("$values/envs/prod.yaml")).unwrap();
    let out = berth(
        &["render", "-f", file.to_str().unwrap(), "-o", "json"],
        tmp.path(),
    );
    let objs = items(&out);
    assert_eq!(kinds(&objs), ["ConfigMap/extra", "Deployment/web"]);
    assert_eq!(
        objs[1]["spec"]["replicas"], 5,
        "value file from the `values` source"
    );

    for (bad, reason) in [
        (
            "$other/envs/prod.yaml",
            "refers to source ref \"other\", which no source of the application defines",
        ),
        ("$values/../../../etc/passwd", "leaves the repository"),
    ] {
        std::fs::write(&file, app(bad)).unwrap();
        let out = berth(&["render", "-f", file.to_str().unwrap()], tmp.path());
        assert_eq!(out.status.code(), Some(1));
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(stderr.contains(reason), "{bad}: {stderr}");
    }
}
