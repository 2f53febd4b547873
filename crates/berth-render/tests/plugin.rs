//! Config management plugins, run for real (shell commands).
#![allow(clippy::expect_used, clippy::unwrap_used, missing_docs)]

use std::time::Duration;

use berth_render::plugin::{self, Context, Parameter, Plugin};
use berth_testenv::git::TempDir;

const PLUGIN: &str = r#"
apiVersion: argoproj.io/v1alpha1
kind: ConfigManagementPlugin
metadata:
  name: envsubst
spec:
  version: v1.0
  init:
    command: [sh, -c]
    args: ["echo initialized > .init-ran"]
  generate:
    command: [sh, -c]
    args:
    - |
      test -f .init-ran || { echo "init did not run" >&2; exit 3; }
      cat <<EOF2
      apiVersion: v1
      kind: ConfigMap
      metadata:
        name: $ARGOCD_APP_NAME-config
        namespace: $ARGOCD_APP_NAMESPACE
      data:
        revision: "$ARGOCD_APP_REVISION_SHORT"
        path: "$ARGOCD_APP_SOURCE_PATH"
        env: "$ARGOCD_ENV_GREETING"
        size: "$PARAM_SIZE"
        first: "$PARAM_REGIONS_0"
        params: '$ARGOCD_APP_PARAMETERS'
        parent-env-visible: "${CARGO_MANIFEST_DIR:-no}"
        file: "$(cat template.txt)"
      EOF2
"#;

#[test]
fn plugins_get_argo_cd_variables_and_nothing_else() {
    let tmp = TempDir::new("berth-plugin").unwrap();
    let repo = tmp.path().join("repo");
    std::fs::create_dir_all(repo.join("apps/web")).unwrap();
    std::fs::write(repo.join("apps/web/template.txt"), "from the repository").unwrap();
    let plugin = Plugin::from_manifest("plugin.yaml", PLUGIN).unwrap();
    assert_eq!(plugin.name, "envsubst-v1.0");
    let context = Context {
        app_name: "web".into(),
        namespace: "prod".into(),
        revision: "0123456789abcdef0123456789abcdef01234567".into(),
        source_path: "apps/web".into(),
        env: vec![("GREETING".into(), "hello".into())],
        parameters: vec![
            Parameter::String("size".into(), "large".into()),
            Parameter::Array("regions".into(), vec!["eu".into(), "us".into()]),
        ],
        ..Default::default()
    };
    // cargo gives this test process CARGO_MANIFEST_DIR: were the
    // environment passed on, the plugin would print it.
    assert!(std::env::var("CARGO_MANIFEST_DIR").is_ok());
    let objs = plugin::render(
        &repo,
        "apps/web",
        &plugin,
        &context,
        &tmp.path().join("work"),
    )
    .unwrap();
    let data = &objs[0]["data"];
    assert_eq!(objs[0]["metadata"]["name"], "web-config");
    assert_eq!(objs[0]["metadata"]["namespace"], "prod");
    assert_eq!(data["revision"], "0123456");
    assert_eq!(data["path"], "apps/web");
    assert_eq!(data["env"], "hello");
    assert_eq!(data["size"], "large");
    assert_eq!(data["first"], "eu");
    assert_eq!(data["file"], "from the repository");
    assert_eq!(
        data["parent-env-visible"], "no",
        "the environment is scrubbed"
    );
    let params: serde_json::Value = serde_json::from_str(data["params"].as_str().unwrap()).unwrap();
    assert_eq!(params[1]["array"][1], "us");
    assert!(
        !repo.join("apps/web/.init-ran").exists(),
        "the source is never written to"
    );
}

#[test]
fn plugin_failures_are_clear() {
    let tmp = TempDir::new("berth-plugin-err").unwrap();
    let repo = tmp.path().join("repo");
    std::fs::create_dir_all(repo.join("app")).unwrap();
    let decl = |generate: &str| {
        format!(
            "apiVersion: argoproj.io/v1alpha1\nkind: ConfigManagementPlugin\nmetadata: {{name: p}}\nspec:\n  generate:\n    command: [sh, -c]\n    args: [{generate:?}]\n"
        )
    };

    let failing =
        Plugin::from_manifest("p.yaml", &decl("echo 'values missing' >&2; exit 1")).unwrap();
    let err = plugin::render(
        &repo,
        "app",
        &failing,
        &Context::default(),
        &tmp.path().join("w1"),
    )
    .unwrap_err();
    assert_eq!(
        err.to_string(),
        "plugin p generate: sh failed: values missing"
    );

    let mut slow = Plugin::from_manifest("p.yaml", &decl("sleep 30")).unwrap();
    slow.timeout = Duration::from_millis(300);
    let err = plugin::render(
        &repo,
        "app",
        &slow,
        &Context::default(),
        &tmp.path().join("w2"),
    )
    .unwrap_err();
    assert_eq!(
        err.to_string(),
        "plugin p generate: sh did not finish within 300ms and was stopped"
    );

    let garbage = Plugin::from_manifest("p.yaml", &decl("echo 'not: a manifest'")).unwrap();
    let err = plugin::render(
        &repo,
        "app",
        &garbage,
        &Context::default(),
        &tmp.path().join("w3"),
    )
    .unwrap_err();
    assert_eq!(
        err.to_string(),
        "plugin p output (document 1): missing `apiVersion`: this is not a Kubernetes manifest"
    );

    let err = Plugin::from_manifest(
        "bad.yaml",
        "kind: ConfigManagementPlugin\nmetadata: {name: q}\nspec: {}\n",
    )
    .unwrap_err();
    assert_eq!(
        err.to_string(),
        "plugin bad.yaml: spec.generate.command is required"
    );
}
