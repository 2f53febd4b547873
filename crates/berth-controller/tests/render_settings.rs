//! `argocd-cm` settings that shape rendering, through the real renderer:
//! `kustomize.buildOptions` reach `kustomize build`, and the instance label
//! and installation ID mark the objects.
#![allow(clippy::expect_used, clippy::unwrap_used, missing_docs)]

use std::collections::BTreeMap;

use berth_api::application::Application;
use berth_controller::settings::ControllerSettings;
use berth_controller::source::{self, Sources};
use berth_source::repo::{CacheOptions, RepoCache};
use berth_testenv::git::{GitFixture, TempDir};

#[test]
fn kustomize_build_options_and_marking_from_argocd_cm() {
    let fixture = GitFixture::new().unwrap();
    let repo = fixture
        .create_repo(
            "kz",
            &[
                (
                    "shared/cm.yaml",
                    "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: shared\ndata:\n  a: b\n",
                ),
                (
                    "app/kustomization.yaml",
                    "resources:\n- ../shared/cm.yaml\n",
                ),
            ],
        )
        .unwrap();
    let cache_dir = TempDir::new("kz-cache").unwrap();
    let cache = RepoCache::new(cache_dir.path().join("git"), CacheOptions::default()).unwrap();
    let app = Application::from_yaml(
        "app.yaml",
        &format!(
            "apiVersion: argoproj.io/v1alpha1\nkind: Application\nmetadata:\n  name: kz\n  namespace: argocd\nspec:\n  project: default\n  source:\n    repoURL: {}\n    targetRevision: main\n    path: app\n  destination:\n    server: https://kubernetes.default.svc\n    namespace: shop\n",
            repo.bare.display()
        ),
    )
    .unwrap();
    let sources = Sources::direct(&cache, cache_dir.path().join("charts"), "1.34.0".into());
    let work = TempDir::new("kz-work").unwrap();

    // Kustomize's default load restrictor refuses a file outside the app.
    let defaults = ControllerSettings::from_data("argocd", &BTreeMap::new());
    let err = source::render_application(&app, &sources, &defaults.render, work.path())
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("shared/cm.yaml") || err.contains("security"),
        "{err}"
    );

    let data: BTreeMap<String, String> = [
        (
            "kustomize.buildOptions",
            "--load-restrictor LoadRestrictionsNone",
        ),
        ("application.resourceTrackingMethod", "annotation+label"),
        ("application.instanceLabelKey", "example.com/app"),
        ("installationID", "east"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();
    let settings = ControllerSettings::from_data("argocd", &data);
    assert!(settings.warnings.is_empty(), "{:?}", settings.warnings);
    let rendered =
        source::render_application(&app, &sources, &settings.render, work.path()).unwrap();
    assert_eq!(rendered.objects.len(), 1);
    let meta = &rendered.objects[0]["metadata"];
    assert_eq!(meta["labels"]["example.com/app"], "kz");
    assert_eq!(
        meta["annotations"]["argocd.argoproj.io/installation-id"],
        "east"
    );
    assert_eq!(
        meta["annotations"]["argocd.argoproj.io/tracking-id"],
        "kz:/ConfigMap:shop/shared"
    );
}
