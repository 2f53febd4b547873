//! Charts from a real Helm chart repository (static files served by
//! lighttpd, indexed by `helm repo index`), pulled with the real helm.
#![allow(clippy::expect_used, clippy::unwrap_used, missing_docs)]

use std::path::Path;
use std::process::Command;

use berth_render::helm::{self, ChartRef, HelmOptions};
use berth_render::tool;
use berth_testenv::git::TempDir;
use berth_testenv::http::static_http;

fn run(program: &Path, args: &[&str]) {
    let out = Command::new(program)
        .args(args)
        .env("HOME", std::env::temp_dir())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Packages version `v` of a one-Deployment chart into `dir`.
fn package(helm: &Path, src: &Path, dir: &Path, v: &str) {
    let chart = src.join(format!("web-{v}"));
    std::fs::create_dir_all(chart.join("templates")).unwrap();
    std::fs::write(
        chart.join("Chart.yaml"),
        format!("apiVersion: v2\nname: web\nversion: {v}\n"),
    )
    .unwrap();
    std::fs::write(chart.join("values.yaml"), "replicas: 1\n").unwrap();
    std::fs::write(
        chart.join("templates/deploy.yaml"),
        format!("apiVersion: apps/v1\nkind: Deployment\nmetadata: {{name: {{{{ .Release.Name }}}}-web, labels: {{chart-version: \"{v}\"}}}}\nspec: {{replicas: {{{{ .Values.replicas }}}}}}\n"),
    )
    .unwrap();
    run(
        helm,
        &[
            "package",
            chart.to_str().unwrap(),
            "-d",
            dir.to_str().unwrap(),
        ],
    );
}

#[test]
fn charts_are_pulled_from_public_and_private_repositories_and_cached() {
    let helm_bin = tool::find("helm", None).unwrap();
    let tmp = TempDir::new("berth-chart-repo").unwrap();
    let root = tmp.path().join("srv");
    let mut server = static_http(&root, &tmp.path().join("state"), "reader", "chart-pw").unwrap();
    let base = format!("http://127.0.0.1:{}", server.port);
    for area in ["public", "private"] {
        let dir = root.join(area).join("charts");
        std::fs::create_dir_all(&dir).unwrap();
        for v in ["1.0.0", "1.2.0", "2.0.0"] {
            package(&helm_bin, &tmp.path().join("src").join(area), &dir, v);
        }
        run(
            &helm_bin,
            &[
                "repo",
                "index",
                dir.to_str().unwrap(),
                "--url",
                &format!("{base}/{area}/charts"),
            ],
        );
    }
    let cache = tmp.path().join("charts-cache");
    let work = tmp.path().join("work");
    let render = |chart_dir: &Path| {
        let options = HelmOptions {
            release_name: "shop".into(),
            namespace: "prod".into(),
            ..Default::default()
        };
        helm::render(chart_dir, "web", &options, &helm_bin, &work.join("render")).unwrap()
    };
    let version_of = |objs: &[serde_json::Value]| {
        objs[0]["metadata"]["labels"]["chart-version"]
            .as_str()
            .unwrap()
            .to_string()
    };

    let public = ChartRef {
        repo_url: format!("{base}/public/charts"),
        chart: "web".into(),
        version: "1.2.0".into(),
        ..Default::default()
    };
    let dir = helm::pull(&public, &cache, &helm_bin, &work).unwrap();
    let objs = render(&dir);
    assert_eq!(objs[0]["metadata"]["name"], "shop-web");
    assert_eq!(version_of(&objs), "1.2.0");

    let newest_1 = ChartRef {
        version: "^1".into(),
        ..public.clone()
    };
    assert_eq!(
        version_of(&render(
            &helm::pull(&newest_1, &cache, &helm_bin, &work).unwrap()
        )),
        "1.2.0"
    );

    let private = ChartRef {
        repo_url: format!("{base}/private/charts"),
        version: "2.0.0".into(),
        ..public.clone()
    };
    let err = helm::pull(&private, &cache, &helm_bin, &work)
        .unwrap_err()
        .to_string();
    assert!(err.starts_with("helm failed: "), "{err}");
    assert!(err.contains("401"), "{err}");
    let wrong = ChartRef {
        username: Some("reader".into()),
        password: Some("not-it".into()),
        ..private.clone()
    };
    let err = helm::pull(&wrong, &cache, &helm_bin, &work)
        .unwrap_err()
        .to_string();
    assert!(!err.contains("not-it"), "no password in messages: {err}");
    let with_creds = ChartRef {
        username: Some("reader".into()),
        password: Some("chart-pw".into()),
        ..private.clone()
    };
    assert_eq!(
        version_of(&render(
            &helm::pull(&with_creds, &cache, &helm_bin, &work).unwrap()
        )),
        "2.0.0"
    );
    let debug = format!("{with_creds:?}");
    assert!(!debug.contains("chart-pw"), "{debug}");

    let missing = ChartRef {
        chart: "nope".into(),
        ..public.clone()
    };
    let err = helm::pull(&missing, &cache, &helm_bin, &work)
        .unwrap_err()
        .to_string();
    assert!(err.contains("nope"), "{err}");

    // Exact versions come from the cache once pulled: the server is not needed.
    server.stop();
    assert_eq!(
        version_of(&render(
            &helm::pull(&public, &cache, &helm_bin, &work).unwrap()
        )),
        "1.2.0"
    );
    assert!(
        helm::pull(&newest_1, &cache, &helm_bin, &work).is_err(),
        "ranges ask the repository again"
    );
}
