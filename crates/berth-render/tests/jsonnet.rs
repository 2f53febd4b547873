//! Jsonnet directories: libraries, top-level arguments, external variables,
//! confinement to the repository, bounded recursion.
#![allow(clippy::expect_used, clippy::unwrap_used, missing_docs)]

use std::path::Path;
use std::time::Duration;

use berth_render::directory::{self, DirectoryOptions};
use berth_render::jsonnet::{self, JsonnetOptions, Var};
use berth_testenv::git::TempDir;

fn write(root: &Path, files: &[(&str, &str)]) {
    for (p, c) in files {
        let p = root.join(p);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, c).unwrap();
    }
}

fn var(name: &str, value: &str, code: bool) -> Var {
    Var {
        name: name.into(),
        value: value.into(),
        code,
    }
}

#[test]
fn a_jsonnet_app_with_libraries_tlas_and_ext_vars() {
    let tmp = TempDir::new("berth-jsonnet").unwrap();
    let repo = tmp.path();
    write(
        repo,
        &[
            (
                "lib/k.libsonnet",
                "{ deployment(name, replicas):: { apiVersion: 'apps/v1', kind: 'Deployment', metadata: { name: name }, spec: { replicas: replicas } } }",
            ),
            (
                "apps/web/main.jsonnet",
                "local k = import 'k.libsonnet';\nlocal util = import '../shared/util.libsonnet';\nfunction(replicas=1, suffix='') [\n  k.deployment('web' + suffix, replicas),\n  { apiVersion: 'v1', kind: 'ConfigMap', metadata: { name: util.name('cfg') }, data: { env: std.extVar('env'), count: std.toString(std.extVar('count') + 1) } },\n]\n",
            ),
            ("apps/shared/util.libsonnet", "{ name(x):: 'web-' + x }"),
            (
                "apps/web/plain.yaml",
                "apiVersion: v1\nkind: Service\nmetadata: {name: web}\n",
            ),
        ],
    );
    let options = DirectoryOptions {
        jsonnet: JsonnetOptions {
            tlas: vec![var("replicas", "3", true), var("suffix", "-prod", false)],
            ext_vars: vec![var("env", "production", false), var("count", "41", true)],
            libs: vec!["lib".into()],
        },
        repo_root: Some(repo.to_path_buf()),
        ..Default::default()
    };
    let objs = directory::render(&repo.join("apps/web"), &options).unwrap();
    let names: Vec<_> = objs
        .iter()
        .map(|o| o["metadata"]["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["web-prod", "web-cfg", "web"]);
    assert_eq!(objs[0]["spec"]["replicas"], 3);
    assert_eq!(objs[1]["data"]["env"], "production");
    assert_eq!(objs[1]["data"]["count"], "42");
}

#[test]
fn imports_cannot_leave_the_repository() {
    let tmp = TempDir::new("berth-jsonnet-escape").unwrap();
    let repo = tmp.path().join("repo");
    write(
        &repo,
        &[
            ("app/abs.jsonnet", "import '/etc/hostname'"),
            ("app/up.jsonnet", "importstr '../../outside.txt'"),
            ("app/link.jsonnet", "importstr 'secret-link'"),
        ],
    );
    write(tmp.path(), &[("outside.txt", "secret")]);
    std::os::unix::fs::symlink(tmp.path().join("outside.txt"), repo.join("app/secret-link"))
        .unwrap();
    for file in ["abs.jsonnet", "up.jsonnet", "link.jsonnet"] {
        let err = jsonnet::evaluate(
            &repo,
            &repo.join("app").join(file),
            &JsonnetOptions::default(),
            Duration::from_secs(30),
        )
        .unwrap_err();
        let text = err.to_string();
        assert!(text.starts_with(&format!("app/{file}: ")), "{text}");
        assert!(text.contains("leaves the repository"), "{file}: {text}");
        assert!(!text.contains("secret\""), "{text}");
    }
}

#[test]
fn errors_name_the_file_and_line_and_runaways_are_bounded() {
    let tmp = TempDir::new("berth-jsonnet-err").unwrap();
    let repo = tmp.path();
    write(
        repo,
        &[
            (
                "app/bad.jsonnet",
                "{\n  a: 1,\n  b: error 'values.region is required',\n}",
            ),
            ("app/recurse.jsonnet", "local f(n) = f(n + 1) + 1; f(0)"),
            ("app/scalar.jsonnet", "'just a string'"),
            // A hundred million steps over small arrays: long, but little memory.
            (
                "app/loop.jsonnet",
                "std.foldl(function(a, x) std.foldl(function(b, y) b + 1, std.range(0, 9999), a), std.range(0, 9999), 0)",
            ),
        ],
    );
    let eval = |f: &str, t: u64| {
        jsonnet::evaluate(
            repo,
            &repo.join("app").join(f),
            &JsonnetOptions::default(),
            Duration::from_secs(t),
        )
    };
    let err = eval("bad.jsonnet", 30).unwrap_err().to_string();
    assert!(err.starts_with("app/bad.jsonnet: "), "{err}");
    assert!(err.contains("values.region is required"), "{err}");
    assert!(err.contains("bad.jsonnet:3"), "names the line: {err}");
    let err = eval("recurse.jsonnet", 60).unwrap_err().to_string();
    assert!(err.to_lowercase().contains("stack"), "{err}");
    let err = eval("scalar.jsonnet", 30).unwrap_err().to_string();
    assert_eq!(
        err,
        "app/scalar.jsonnet: the result must be an object or an array of objects, not a string"
    );
    let err = eval("loop.jsonnet", 1).unwrap_err().to_string();
    assert_eq!(err, "app/loop.jsonnet: evaluation did not finish within 1s");
}
