//! Render cost: a 500-object Kustomize application and a 200-object Helm
//! chart, rendered cold (the tool runs), from the cache (the key is computed
//! from the files, then looked up), and by the tool run directly.
//!
//! `cargo bench -p berth-render --bench render [-- ROUNDS]`
#![allow(clippy::expect_used, clippy::unwrap_used, missing_docs)]

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use berth_render::cache::{KeyBuilder, RenderCache, kustomize_dirs};
use berth_render::helm::{self, HelmOptions};
use berth_render::kustomize::{self, KustomizeOptions};
use berth_render::tool;
use berth_testenv::git::TempDir;

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

fn ms(d: Duration) -> String {
    format!("{:.1} ms", d.as_secs_f64() * 1000.0)
}

fn write(root: &Path, path: &str, content: &str) {
    let p = root.join(path);
    std::fs::create_dir_all(p.parent().unwrap()).unwrap();
    std::fs::write(p, content).unwrap();
}

fn main() {
    let rounds: usize = std::env::args()
        .skip(1)
        .find_map(|a| a.parse().ok())
        .unwrap_or(9);
    let tmp = TempDir::new("berth-render-bench").unwrap();
    let repo = tmp.path().join("repo");

    // Kustomize: 100 apps x (Deployment, Service, ConfigMap, ServiceAccount, PDB) = 500 objects.
    let mut resources = Vec::new();
    for i in 0..100 {
        let file = format!("app-{i:03}.yaml");
        write(
            &repo,
            &format!("base/{file}"),
            &format!(
                "apiVersion: apps/v1\nkind: Deployment\nmetadata: {{name: app-{i}}}\nspec:\n  replicas: 1\n  selector: {{matchLabels: {{app: app-{i}}}}}\n  template:\n    metadata: {{labels: {{app: app-{i}}}}}\n    spec:\n      serviceAccountName: app-{i}\n      containers: [{{name: app, image: registry.example/app-{i}:1.0, ports: [{{containerPort: 8080}}]}}]\n---\napiVersion: v1\nkind: Service\nmetadata: {{name: app-{i}}}\nspec: {{selector: {{app: app-{i}}}, ports: [{{port: 80, targetPort: 8080}}]}}\n---\napiVersion: v1\nkind: ConfigMap\nmetadata: {{name: app-{i}}}\ndata: {{LOG_LEVEL: info, INDEX: \"{i}\"}}\n---\napiVersion: v1\nkind: ServiceAccount\nmetadata: {{name: app-{i}}}\n---\napiVersion: policy/v1\nkind: PodDisruptionBudget\nmetadata: {{name: app-{i}}}\nspec: {{minAvailable: 1, selector: {{matchLabels: {{app: app-{i}}}}}}}\n"
            ),
        );
        resources.push(file);
    }
    write(
        &repo,
        "base/kustomization.yaml",
        &format!(
            "resources:\n{}",
            resources
                .iter()
                .map(|r| format!("- {r}\n"))
                .collect::<String>()
        ),
    );
    write(
        &repo,
        "overlays/prod/kustomization.yaml",
        "resources: [../../base]\nnamespace: prod\nnamePrefix: prod-\ncommonLabels: {env: prod}\npatches:\n- target: {kind: Deployment}\n  patch: |-\n    - op: replace\n      path: /spec/replicas\n      value: 3\n",
    );

    // Helm: 200 objects from a range over values.
    let mut values = String::from("apps:\n");
    for i in 0..100 {
        values.push_str(&format!("- {{name: svc-{i}, port: {}}}\n", 8000 + i));
    }
    write(
        &repo,
        "chart/Chart.yaml",
        "apiVersion: v2\nname: bench\nversion: 0.1.0\n",
    );
    write(&repo, "chart/values.yaml", &values);
    write(
        &repo,
        "chart/templates/_helpers.tpl",
        "{{- define \"bench.labels\" -}}\napp.kubernetes.io/instance: {{ .Release.Name }}\n{{- end -}}\n",
    );
    write(
        &repo,
        "chart/templates/apps.yaml",
        "{{- range .Values.apps }}\n---\napiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: {{ .name }}\n  labels:\n    {{- include \"bench.labels\" $ | nindent 4 }}\nspec:\n  selector: {matchLabels: {app: {{ .name }}}}\n  template:\n    metadata: {labels: {app: {{ .name }}}}\n    spec:\n      containers: [{name: app, image: \"registry.example/{{ .name }}:1\", ports: [{containerPort: {{ .port }}}]}]\n---\napiVersion: v1\nkind: Service\nmetadata: {name: {{ .name }}}\nspec: {selector: {app: {{ .name }}}, ports: [{port: {{ .port }}}]}\n{{- end }}\n",
    );

    let kustomize_bin = tool::find("kustomize", None).unwrap();
    let helm_bin = tool::find("helm", None).unwrap();
    let work = tmp.path().join("work");
    let kopts = KustomizeOptions::default();
    let hopts = HelmOptions {
        release_name: "bench".into(),
        namespace: "bench".into(),
        kube_version: Some("1.34.0".into()),
        ..Default::default()
    };

    let render_k =
        || kustomize::render(&repo, "overlays/prod", &kopts, &kustomize_bin, &work).unwrap();
    let render_h = || helm::render(&repo, "chart", &hopts, &helm_bin, &work).unwrap();
    let (nk, nh) = (render_k().len(), render_h().len());
    let key_k = || {
        KeyBuilder::default()
            .value("type", "kustomize")
            .tree(&repo, &kustomize_dirs(&repo, Path::new("overlays/prod")))
            .unwrap()
            .finish()
    };
    let chart_dirs: BTreeSet<PathBuf> = [PathBuf::from("chart")].into();
    let key_h = || {
        KeyBuilder::default()
            .value("type", "helm")
            .tree(&repo, &chart_dirs)
            .unwrap()
            .finish()
    };

    let direct = |program: &Path, dir: &Path, args: &[&str]| {
        let t = Instant::now();
        let out = Command::new(program)
            .current_dir(dir)
            .args(args)
            .output()
            .unwrap();
        assert!(out.status.success());
        t.elapsed()
    };
    let cache = RenderCache::new(16);
    let mut rows = Vec::new();
    for (name, objects, render, key, tool_run) in [
        (
            "Kustomize overlay",
            nk,
            &render_k as &dyn Fn() -> Vec<serde_json::Value>,
            &key_k as &dyn Fn() -> berth_render::cache::Key,
            Box::new(|| direct(&kustomize_bin, &repo.join("overlays/prod"), &["build", "."]))
                as Box<dyn Fn() -> Duration>,
        ),
        (
            "Helm chart",
            nh,
            &render_h,
            &key_h,
            Box::new(|| {
                direct(
                    &helm_bin,
                    &repo.join("chart"),
                    &[
                        "template",
                        "bench",
                        ".",
                        "--namespace",
                        "bench",
                        "--kube-version",
                        "1.34.0",
                    ],
                )
            }),
        ),
    ] {
        let (mut cold, mut cached, mut tool_times) = (Vec::new(), Vec::new(), Vec::new());
        for round in 0..rounds {
            let run_cold = || {
                let t = Instant::now();
                cache
                    .get_or_render::<()>(key(), true, || Ok(render()))
                    .unwrap();
                t.elapsed()
            };
            if round % 2 == 0 {
                cold.push(run_cold());
                tool_times.push(tool_run());
            } else {
                tool_times.push(tool_run());
                cold.push(run_cold());
            }
            let t = Instant::now();
            let hit = cache
                .get_or_render::<()>(key(), false, || panic!("must be a hit"))
                .unwrap();
            cached.push(t.elapsed());
            assert_eq!(hit.len(), objects);
        }
        rows.push((
            name,
            objects,
            median(cold),
            median(cached),
            median(tool_times),
        ));
    }
    println!(
        "| source ({rounds} rounds, medians) | objects | Berth cold | Berth cached | tool run directly | cold / tool | cached / tool |"
    );
    println!("|---|---|---|---|---|---|---|");
    for (name, n, cold, cached, tool_time) in rows {
        println!(
            "| {name} | {n} | {} | {} | {} | {:.2} | {:.3} |",
            ms(cold),
            ms(cached),
            ms(tool_time),
            cold.as_secs_f64() / tool_time.as_secs_f64(),
            cached.as_secs_f64() / tool_time.as_secs_f64()
        );
    }
}
