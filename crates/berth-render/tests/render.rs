//! Rendering with the real kustomize and helm (built by `testenv/`),
//! compared with the tools run directly.
#![allow(clippy::expect_used, clippy::unwrap_used, missing_docs)]

use std::collections::BTreeSet;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use berth_render::detect::{SourceType, detect};
use berth_render::directory::{self, DirectoryOptions};
use berth_render::helm::{self, HelmOptions, Parameter};
use berth_render::kustomize::{self, KustomizeOptions};
use berth_render::manifest::parse_stream;
use berth_render::tool::{self, Invocation};
use berth_testenv::git::TempDir;
use serde_json::Value;

fn write(root: &Path, files: &[(&str, &str)]) {
    for (path, content) in files {
        let p = root.join(path);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, content).unwrap();
    }
}

/// Objects as a set of (group/kind, namespace, name), the way the issue
/// compares outputs.
fn keys(objects: &[Value]) -> BTreeSet<String> {
    objects
        .iter()
        .map(|o| {
            format!(
                "{}/{} {} {}",
                o["apiVersion"].as_str().unwrap_or_default(),
                o["kind"].as_str().unwrap_or_default(),
                o["metadata"]["namespace"].as_str().unwrap_or_default(),
                o["metadata"]["name"].as_str().unwrap_or_default()
            )
        })
        .collect()
}

fn run_directly(program: &Path, dir: &Path, args: &[&str]) -> Vec<Value> {
    let out = Command::new(program)
        .current_dir(dir)
        .args(args)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    parse_stream("direct", &String::from_utf8_lossy(&out.stdout)).unwrap()
}

const DEPLOY: &str = "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: web\n  labels: {app: web}\nspec:\n  replicas: 1\n  selector: {matchLabels: {app: web}}\n  template:\n    metadata: {labels: {app: web}}\n    spec:\n      containers:\n      - {name: web, image: registry.example/web:1.0}\n";

#[test]
fn directories_recurse_include_and_exclude() {
    let tmp = TempDir::new("berth-dir").unwrap();
    let root = tmp.path();
    write(
        root,
        &[
            ("deploy.yaml", DEPLOY),
            (
                "svc.json",
                r#"{"apiVersion":"v1","kind":"Service","metadata":{"name":"web"},"spec":{"ports":[{"port":80}]}}"#,
            ),
            (
                "nested/cm.yml",
                "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: nested}\n---\napiVersion: v1\nkind: ConfigMap\nmetadata: {name: nested-2}\n",
            ),
            (
                "nested/deeper/skip-me.yaml",
                "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: skipped}\n",
            ),
            ("README.md", "not a manifest"),
        ],
    );
    assert_eq!(detect(root), SourceType::Directory);
    let names = |o: &[Value]| {
        o.iter()
            .map(|x| x["metadata"]["name"].as_str().unwrap().to_string())
            .collect::<Vec<_>>()
    };
    let flat = directory::render(root, &DirectoryOptions::default()).unwrap();
    assert_eq!(
        names(&flat),
        ["web", "web"],
        "deploy.yaml then svc.json, no subdirectories"
    );
    let all = directory::render(
        root,
        &DirectoryOptions {
            recurse: true,
            ..Default::default()
        },
    )
    .unwrap();
    assert_eq!(names(&all), ["web", "nested", "nested-2", "skipped", "web"]);
    let some = directory::render(
        root,
        &DirectoryOptions {
            recurse: true,
            exclude: Some("skip-*".into()),
            include: Some("{*.yaml,*.yml}".into()),
            ..Default::default()
        },
    )
    .unwrap();
    assert_eq!(names(&some), ["web", "nested", "nested-2"]);

    write(
        root,
        &[(
            "nested/bad.yaml",
            "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: ok}\n---\nreplicaCount: 3\n",
        )],
    );
    let err = directory::render(
        root,
        &DirectoryOptions {
            recurse: true,
            ..Default::default()
        },
    )
    .unwrap_err();
    assert_eq!(
        err.to_string(),
        "nested/bad.yaml (document 2): missing `apiVersion`: this is not a Kubernetes manifest"
    );
    let err = directory::render(
        root,
        &DirectoryOptions {
            include: Some("[".into()),
            ..Default::default()
        },
    )
    .unwrap_err();
    assert!(
        err.to_string()
            .starts_with("directory.include: \"[\" is not a valid glob pattern"),
        "{err}"
    );
}

fn kustomize_fixture(root: &Path) {
    write(
        root,
        &[
            (
                "base/kustomization.yaml",
                "resources: [deploy.yaml, svc.yaml]\nconfigMapGenerator:\n- name: web-config\n  literals: [color=blue]\n",
            ),
            ("base/deploy.yaml", DEPLOY),
            (
                "base/svc.yaml",
                "apiVersion: v1\nkind: Service\nmetadata: {name: web}\nspec:\n  selector: {app: web}\n  ports: [{port: 80}]\n",
            ),
            (
                "components/monitoring/kustomization.yaml",
                "apiVersion: kustomize.config.k8s.io/v1alpha1\nkind: Component\nresources: [monitor.yaml]\n",
            ),
            (
                "components/monitoring/monitor.yaml",
                "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: monitoring}\n",
            ),
            (
                "overlays/prod/kustomization.yaml",
                "resources: [../../base]\nnamespace: prod\npatches:\n- target: {kind: Deployment, name: web}\n  patch: |-\n    - op: replace\n      path: /spec/replicas\n      value: 3\n",
            ),
        ],
    );
}

#[test]
fn kustomize_overlay_matches_kustomize_build() {
    let tmp = TempDir::new("berth-kust").unwrap();
    let repo = tmp.path().join("repo");
    kustomize_fixture(&repo);
    let bin = tool::find("kustomize", None).unwrap();
    assert_eq!(detect(&repo.join("overlays/prod")), SourceType::Kustomize);
    let ours = kustomize::render(
        &repo,
        "overlays/prod",
        &KustomizeOptions::default(),
        &bin,
        &tmp.path().join("work"),
    )
    .unwrap();
    let direct = run_directly(&bin, &repo.join("overlays/prod"), &["build", "."]);
    assert_eq!(keys(&ours), keys(&direct));
    assert_eq!(ours, direct, "same objects, same order");
    let deploy = ours.iter().find(|o| o["kind"] == "Deployment").unwrap();
    assert_eq!(deploy["spec"]["replicas"], 3);
    assert_eq!(deploy["metadata"]["namespace"], "prod");
}

#[test]
fn kustomize_options_are_applied_as_argo_cd_does() {
    let tmp = TempDir::new("berth-kust-opts").unwrap();
    let repo = tmp.path().join("repo");
    kustomize_fixture(&repo);
    let bin = tool::find("kustomize", None).unwrap();
    let options = KustomizeOptions {
        name_prefix: Some("team-".into()),
        name_suffix: Some("-v2".into()),
        images: vec!["registry.example/web=registry.example/web:2.0".into()],
        common_labels: [("owner".to_string(), "platform".to_string())].into(),
        common_annotations: [("berth.test/note".to_string(), "hello".to_string())].into(),
        namespace: Some("staging".into()),
        replicas: vec![("web".into(), 5)],
        components: vec!["../../components/monitoring".into()],
        ..Default::default()
    };
    let out = kustomize::render(
        &repo,
        "overlays/prod",
        &options,
        &bin,
        &tmp.path().join("work"),
    )
    .unwrap();
    let deploy = out.iter().find(|o| o["kind"] == "Deployment").unwrap();
    assert_eq!(deploy["metadata"]["name"], "team-web-v2");
    assert_eq!(deploy["metadata"]["namespace"], "staging");
    assert_eq!(deploy["metadata"]["labels"]["owner"], "platform");
    assert_eq!(
        deploy["metadata"]["annotations"]["berth.test/note"],
        "hello"
    );
    assert_eq!(deploy["spec"]["replicas"], 5);
    assert_eq!(
        deploy["spec"]["template"]["spec"]["containers"][0]["image"],
        "registry.example/web:2.0"
    );
    assert!(
        out.iter()
            .any(|o| o["metadata"]["name"] == "team-monitoring-v2"),
        "component added"
    );
    // The source itself is untouched (edits happen in a copy).
    let original = std::fs::read_to_string(repo.join("overlays/prod/kustomization.yaml")).unwrap();
    assert!(!original.contains("team-"), "{original}");
}

#[test]
fn kustomize_errors_are_the_tools_own() {
    let tmp = TempDir::new("berth-kust-err").unwrap();
    let repo = tmp.path().join("repo");
    write(
        &repo,
        &[("app/kustomization.yaml", "resources: [missing.yaml]\n")],
    );
    let bin = tool::find("kustomize", None).unwrap();
    let err = kustomize::render(
        &repo,
        "app",
        &KustomizeOptions::default(),
        &bin,
        &tmp.path().join("work"),
    )
    .unwrap_err();
    let text = err.to_string();
    assert!(text.starts_with("kustomize failed: "), "{text}");
    assert!(text.contains("missing.yaml"), "{text}");
    assert!(
        !text.contains(&repo.display().to_string()),
        "paths are relative: {text}"
    );
}

fn chart_fixture(root: &Path) {
    write(
        root,
        &[
            (
                "chart/Chart.yaml",
                "apiVersion: v2\nname: shop\nversion: 1.2.3\nappVersion: \"2.0\"\n",
            ),
            (
                "chart/values.yaml",
                "replicas: 1\nimage: {repository: registry.example/shop, tag: \"2.0\"}\ndb: {password: \"\"}\n",
            ),
            ("chart/values-prod.yaml", "replicas: 4\n"),
            (
                "chart/templates/_helpers.tpl",
                "{{- define \"shop.fullname\" -}}{{ .Release.Name }}-{{ .Chart.Name }}{{- end -}}\n",
            ),
            (
                "chart/templates/deployment.yaml",
                "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: {{ include \"shop.fullname\" . }}\nspec:\n  replicas: {{ .Values.replicas }}\n  selector: {matchLabels: {app: shop}}\n  template:\n    metadata: {labels: {app: shop}}\n    spec:\n      containers:\n      - name: shop\n        image: \"{{ .Values.image.repository }}:{{ .Values.image.tag }}\"\n",
            ),
            (
                "chart/templates/secret.yaml",
                "apiVersion: v1\nkind: Secret\nmetadata: {name: {{ include \"shop.fullname\" . }}-db}\nstringData:\n  password: {{ required \"db.password is required\" .Values.db.password | quote }}\n",
            ),
            (
                "chart/templates/existing.yaml",
                "{{- $cm := lookup \"v1\" \"ConfigMap\" .Release.Namespace \"seen\" }}\napiVersion: v1\nkind: ConfigMap\nmetadata: {name: {{ include \"shop.fullname\" . }}-lookup}\ndata:\n  found: {{ if $cm }}\"yes\"{{ else }}\"no\"{{ end }}\n",
            ),
            (
                "chart/templates/migrate-hook.yaml",
                "apiVersion: batch/v1\nkind: Job\nmetadata:\n  name: migrate\n  annotations:\n    helm.sh/hook: pre-upgrade,pre-install\n    helm.sh/hook-delete-policy: before-hook-creation\nspec:\n  template:\n    spec:\n      restartPolicy: Never\n      containers: [{name: m, image: registry.example/migrate:1}]\n",
            ),
            (
                "chart/templates/tests/test.yaml",
                "apiVersion: v1\nkind: Pod\nmetadata:\n  name: shop-test\n  annotations: {helm.sh/hook: test}\nspec:\n  containers: [{name: t, image: registry.example/t:1}]\n",
            ),
            (
                "chart/crds/widget.yaml",
                "apiVersion: apiextensions.k8s.io/v1\nkind: CustomResourceDefinition\nmetadata: {name: widgets.example.com}\nspec:\n  group: example.com\n  names: {kind: Widget, plural: widgets}\n  scope: Namespaced\n  versions: [{name: v1, served: true, storage: true, schema: {openAPIV3Schema: {type: object}}}]\n",
            ),
            (
                "chart/charts/cache/Chart.yaml",
                "apiVersion: v2\nname: cache\nversion: 0.1.0\n",
            ),
            (
                "chart/charts/cache/templates/svc.yaml",
                "apiVersion: v1\nkind: Service\nmetadata: {name: {{ .Release.Name }}-cache}\nspec: {ports: [{port: 6379}]}\n",
            ),
            ("secret-values.yaml", "db: {password: s3cret}\n"),
        ],
    );
}

#[test]
fn helm_chart_matches_helm_template() {
    let tmp = TempDir::new("berth-helm").unwrap();
    let repo = tmp.path().join("repo");
    chart_fixture(&repo);
    let bin = tool::find("helm", None).unwrap();
    assert_eq!(detect(&repo.join("chart")), SourceType::Helm);
    let options = HelmOptions {
        release_name: "prod".into(),
        namespace: "shop".into(),
        value_files: vec!["values-prod.yaml".into(), "../secret-values.yaml".into()],
        parameters: vec![Parameter {
            name: "image.tag".into(),
            value: "2.1".into(),
            force_string: true,
        }],
        kube_version: Some("1.34.0".into()),
        ..Default::default()
    };
    let ours = helm::render(&repo, "chart", &options, &bin, &tmp.path().join("work")).unwrap();
    let direct = run_directly(
        &bin,
        &repo.join("chart"),
        &[
            "template",
            "prod",
            ".",
            "--namespace",
            "shop",
            "--include-crds",
            "--values",
            "values-prod.yaml",
            "--values",
            "../secret-values.yaml",
            "--set-string",
            "image.tag=2.1",
            "--kube-version",
            "1.34.0",
        ],
    );
    assert_eq!(keys(&ours), keys(&direct));
    let kinds: BTreeSet<_> = ours
        .iter()
        .map(|o| o["kind"].as_str().unwrap().to_string())
        .collect();
    assert!(
        kinds.contains("CustomResourceDefinition") && kinds.contains("Job"),
        "CRDs and hooks kept: {kinds:?}"
    );
    let deploy = ours.iter().find(|o| o["kind"] == "Deployment").unwrap();
    assert_eq!(deploy["metadata"]["name"], "prod-shop");
    assert_eq!(deploy["spec"]["replicas"], 4);
    assert_eq!(
        deploy["spec"]["template"]["spec"]["containers"][0]["image"],
        "registry.example/shop:2.1"
    );
    let job = ours.iter().find(|o| o["kind"] == "Job").unwrap();
    assert_eq!(
        job["metadata"]["annotations"]["helm.sh/hook"],
        "pre-upgrade,pre-install"
    );
    let lookup = ours
        .iter()
        .find(|o| o["metadata"]["name"] == "prod-shop-lookup")
        .unwrap();
    assert_eq!(
        lookup["data"]["found"], "no",
        "lookup finds nothing offline"
    );
    assert!(
        ours.iter().any(|o| o["metadata"]["name"] == "prod-cache"),
        "subchart rendered"
    );

    let skipped = helm::render(
        &repo,
        "chart",
        &HelmOptions {
            skip_crds: true,
            skip_tests: true,
            ..options.clone()
        },
        &bin,
        &tmp.path().join("work2"),
    )
    .unwrap();
    assert!(
        !skipped
            .iter()
            .any(|o| o["kind"] == "CustomResourceDefinition")
    );
    assert!(!skipped.iter().any(|o| o["metadata"]["name"] == "shop-test"));
}

#[test]
fn helm_failures_are_clear() {
    let tmp = TempDir::new("berth-helm-err").unwrap();
    let repo = tmp.path().join("repo");
    chart_fixture(&repo);
    let bin = tool::find("helm", None).unwrap();
    let work = tmp.path().join("work");
    let base = HelmOptions {
        release_name: "r".into(),
        namespace: "n".into(),
        ..Default::default()
    };

    let err = helm::render(&repo, "chart", &base, &bin, &work)
        .unwrap_err()
        .to_string();
    assert!(err.starts_with("helm failed: "), "{err}");
    assert!(
        err.contains("db.password is required"),
        "the chart's own message: {err}"
    );

    for (file, reason) in [
        ("../../etc/passwd", "leaves the repository"),
        (
            "/etc/passwd",
            "is absolute; give a path inside the repository",
        ),
        (
            "https://example.com/values.yaml",
            "is a URL; remote value files are not allowed unless configured",
        ),
        (
            "missing.yaml",
            "does not exist (set ignoreMissingValueFiles to skip it)",
        ),
    ] {
        let opts = HelmOptions {
            value_files: vec![file.into()],
            ..base.clone()
        };
        let err = helm::render(&repo, "chart", &opts, &bin, &work)
            .unwrap_err()
            .to_string();
        assert_eq!(err, format!("helm.valueFiles: {file:?} {reason}"));
    }
    std::os::unix::fs::symlink("/etc/hostname", repo.join("chart/link.yaml")).unwrap();
    let opts = HelmOptions {
        value_files: vec!["link.yaml".into()],
        ..base.clone()
    };
    let err = helm::render(&repo, "chart", &opts, &bin, &work)
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("leaves the repository through a symbolic link"),
        "{err}"
    );
    let opts = HelmOptions {
        value_files: vec!["missing.yaml".into(), "../secret-values.yaml".into()],
        ignore_missing_value_files: true,
        ..base
    };
    assert!(helm::render(&repo, "chart", &opts, &bin, &work).is_ok());
}

#[test]
fn tools_are_bounded_in_time_and_output() {
    let tmp = TempDir::new("berth-tool").unwrap();
    let sleep = tool::find("sleep", None).unwrap();
    let mut slow = Invocation::new(sleep, tmp.path()).args(["30"]);
    slow.timeout = Duration::from_millis(300);
    let err = slow.run(tmp.path()).unwrap_err();
    assert_eq!(
        err.to_string(),
        "sleep did not finish within 300ms and was stopped"
    );

    let yes = tool::find("yes", None).unwrap();
    let mut chatty = Invocation::new(yes, tmp.path());
    chatty.max_output = 1 << 20;
    let err = chatty.run(tmp.path()).unwrap_err();
    assert_eq!(
        err.to_string(),
        "yes printed more than 1048576 bytes and was stopped"
    );

    let err = tool::find("no-such-tool-anywhere", None).unwrap_err();
    assert!(
        err.to_string()
            .starts_with("no-such-tool-anywhere not found (looked in "),
        "{err}"
    );

    // The environment is scrubbed: nothing of the parent's (this test
    // process has dozens of variables) reaches the tool.
    let env = tool::find("env", None).unwrap();
    let printed = Invocation::new(env, tmp.path()).run(tmp.path()).unwrap();
    let printed = String::from_utf8(printed).unwrap();
    let names: BTreeSet<_> = printed
        .lines()
        .filter_map(|l| l.split('=').next())
        .collect();
    assert_eq!(names, BTreeSet::from(["HOME", "PATH"]));
}

#[test]
fn kustomize_versions_and_the_kubectl_fallback() {
    use berth_render::kustomize::{Kustomize, render_with};
    use std::collections::BTreeMap;
    let tmp = TempDir::new("berth-kust-locate").unwrap();
    let repo = tmp.path().join("repo");
    kustomize_fixture(&repo);
    let real = tool::find("kustomize", None).unwrap();
    let configured: BTreeMap<String, std::path::PathBuf> =
        [("v5.8.2".to_string(), real.clone())].into();
    assert_eq!(
        Kustomize::locate(Some("v5.8.2"), &configured).unwrap(),
        Kustomize::Binary(real.clone())
    );
    let err = Kustomize::locate(Some("v4.5.7"), &configured).unwrap_err();
    assert_eq!(
        err.to_string(),
        "kustomize.version: kustomize v4.5.7 is not configured; set kustomize.path.v4.5.7 in argocd-cm (configured: v5.8.2)"
    );

    // kubectl's built-in Kustomize builds the same overlay...
    let kubectl = tool::find("kubectl", None).unwrap();
    let work = tmp.path().join("work");
    let via_kubectl = render_with(
        &repo,
        "overlays/prod",
        &KustomizeOptions::default(),
        &Kustomize::Kubectl(kubectl.clone()),
        &work,
    )
    .unwrap();
    let via_binary = render_with(
        &repo,
        "overlays/prod",
        &KustomizeOptions::default(),
        &Kustomize::Binary(real),
        &work,
    )
    .unwrap();
    assert_eq!(keys(&via_kubectl), keys(&via_binary));
    // ...but cannot apply options.
    let with_prefix = KustomizeOptions {
        name_prefix: Some("x-".into()),
        ..Default::default()
    };
    let err = render_with(
        &repo,
        "overlays/prod",
        &with_prefix,
        &Kustomize::Kubectl(kubectl),
        &work,
    )
    .unwrap_err();
    assert!(
        err.to_string().contains("need the kustomize binary"),
        "{err}"
    );
}
