//! Pages timed in a real browser by `ui-tests/render.mjs` (Debian's
//! Chromium driven by playwright-core), when both are installed
//! (`scripts/install-deps.sh`).

use std::path::PathBuf;
use std::process::Command;

/// The repository's root.
fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// Loads each of `paths` `rounds` times in a fresh browser context with
/// the session `token`, and prints the medians (first contentful paint,
/// load, bytes) as `render.mjs` reports them; says why when it cannot run.
pub fn render(base: &str, token: &str, paths: &[&str], rounds: usize) -> Vec<serde_json::Value> {
    let chromium = std::env::var("CHROMIUM").unwrap_or_else(|_| "/usr/bin/chromium".into());
    let root = root();
    if !root.join("ui-tests/node_modules/playwright-core").is_dir()
        || !std::path::Path::new(&chromium).exists()
    {
        println!(
            "browser timings skipped: needs Chromium at {chromium} and `npm ci` in ui-tests/ (scripts/install-deps.sh)"
        );
        return Vec::new();
    }
    let out = Command::new("node")
        .arg(root.join("ui-tests/render.mjs"))
        .current_dir(root.join("ui-tests"))
        .env("BERTH_URL", base)
        .env("TOKEN", token)
        .env("PATHS", paths.join(","))
        .env("ROUNDS", rounds.to_string())
        .env("CHROMIUM", &chromium)
        .output()
        .expect("node runs");
    assert!(
        out.status.success(),
        "render.mjs failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .inspect(|v: &serde_json::Value| {
            println!(
                "browser {}: first contentful paint {} ms, load {} ms (medians of {}), {} bytes transferred, {} elements",
                v["path"].as_str().unwrap_or_default(),
                v["fcp_ms"],
                v["load_ms"],
                v["rounds"],
                v["bytes"],
                v["elements"]
            )
        })
        .collect()
}
