//! Every health check Berth ships, run on its cases in Argo CD's test layout
//! (`<group>/<Kind>/health_test.yaml` naming inputs under `testdata/`), by
//! the same sandbox and lookup the controller uses.
#![allow(clippy::expect_used, clippy::unwrap_used, missing_docs)]

use std::path::{Path, PathBuf};

use berth_engine::health::HealthChecks;
use berth_engine::lua::{self, Limits};
use serde_json::Value;

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("health-checks")
}

fn yaml(path: &Path) -> Value {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_saphyr::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// The directories holding a `health_test.yaml`.
fn case_dirs() -> Vec<PathBuf> {
    let mut dirs = Vec::new();
    for group in std::fs::read_dir(root()).unwrap().flatten() {
        if !group.path().is_dir() {
            continue;
        }
        for kind in std::fs::read_dir(group.path()).unwrap().flatten() {
            if kind.path().join("health_test.yaml").is_file() {
                dirs.push(kind.path());
            }
        }
    }
    dirs.sort();
    dirs
}

#[test]
fn shipped_checks_pass_their_cases() {
    let checks = HealthChecks::new();
    let mut count = 0;
    let dirs = case_dirs();
    assert!(
        dirs.len() >= 10,
        "expected the shipped checks, found {dirs:?}"
    );
    for dir in dirs {
        let by_rule = dir.parent().unwrap().file_name().unwrap() == "_rules";
        // Only the rule scripts are read here; kinds go through the lookup.
        let script = if by_rule {
            std::fs::read_to_string(dir.join("health.lua")).unwrap()
        } else {
            String::new()
        };
        let spec = yaml(&dir.join("health_test.yaml"));
        for case in spec["tests"].as_array().unwrap() {
            let input = dir.join(case["inputPath"].as_str().unwrap());
            let obj = yaml(&input);
            // An empty healthStatus means the script reports nothing.
            let want = case["healthStatus"]["status"].as_str().map(|status| {
                (
                    status.to_string(),
                    case["healthStatus"]["message"]
                        .as_str()
                        .unwrap_or_default()
                        .to_string(),
                )
            });
            // Kinds are found by the same lookup the controller uses; the
            // rule-based script runs directly as well.
            let got = if by_rule {
                lua::run("rule", &script, &obj, Limits::default())
                    .unwrap()
                    .map(|r| (r.status, r.message))
            } else {
                checks
                    .check(&obj)
                    .map(|h| (h.status.to_string(), h.message))
            };
            assert_eq!(got, want, "{}", input.display());
            count += 1;
        }
    }
    assert!(count >= 40, "only {count} cases");
}

#[test]
fn every_shipped_kind_is_registered() {
    let shipped: Vec<(String, String)> = HealthChecks::shipped_kinds()
        .map(|(g, k)| (g.to_string(), k.to_string()))
        .collect();
    for dir in case_dirs() {
        let group = dir
            .parent()
            .unwrap()
            .file_name()
            .unwrap()
            .to_string_lossy()
            .to_string();
        if group == "_rules" {
            continue;
        }
        let kind = dir.file_name().unwrap().to_string_lossy().to_string();
        assert!(
            shipped.contains(&(group.clone(), kind.clone())),
            "{group}/{kind} not embedded"
        );
    }
}
