//! Embeds the health checks Berth ships (`health-checks/<group>/<Kind>/health.lua`,
//! Argo CD's layout) so the binary needs no files beside it.

use std::fmt::Write as _;
use std::path::Path;
use std::{env, fs};

fn main() {
    let root = Path::new("health-checks");
    // A directory is scanned whole for changes; naming files that may not
    // exist would make every build run this script again.
    println!("cargo:rerun-if-changed=health-checks");
    let mut entries = Vec::new();
    if let Ok(groups) = fs::read_dir(root) {
        for group in groups.flatten() {
            let group_name = group.file_name().to_string_lossy().to_string();
            if group_name.starts_with('_') || !group.path().is_dir() {
                continue;
            }
            let Ok(kinds) = fs::read_dir(group.path()) else {
                continue;
            };
            for kind in kinds.flatten() {
                let mut script = kind.path().join("health.lua");
                // A kind whose check is another kind's, word for word, names
                // it in `same-as` (`<group>/<Kind>`) instead of a copy.
                let alias = kind.path().join("same-as");
                if !script.is_file()
                    && let Ok(target) = fs::read_to_string(&alias)
                {
                    script = root.join(target.trim()).join("health.lua");
                }
                if script.is_file() {
                    println!("cargo:rerun-if-changed={}", script.display());
                    entries.push((
                        group_name.clone(),
                        kind.file_name().to_string_lossy().to_string(),
                        script,
                    ));
                }
            }
        }
    }
    entries.sort();
    let mut out = String::from(
        "/// Shipped checks: (group, kind, script).\npub(crate) const SHIPPED: &[(&str, &str, &str)] = &[\n",
    );
    // The scripts' text, not `include_str!` of absolute paths: cargo may
    // reuse this output for a checkout at another path (a shared target
    // directory), where those paths no longer exist.
    for (group, kind, script) in &entries {
        let Ok(text) = fs::read_to_string(script) else {
            continue;
        };
        let _ = writeln!(out, "    ({group:?}, {kind:?}, {text:?}),");
    }
    out.push_str("];\n");
    let managed = Path::new("health-checks/_rules/crossplane-managed/health.lua");
    println!("cargo:rerun-if-changed={}", managed.display());
    let managed_src = match fs::read_to_string(managed) {
        Ok(text) => format!("Some({text:?})"),
        Err(_) => "None".to_string(),
    };
    let _ = writeln!(
        out,
        "/// The check for Crossplane managed resources, applied by rule.\npub(crate) const CROSSPLANE_MANAGED: Option<&str> = {managed_src};"
    );
    let dest = Path::new(&env::var("OUT_DIR").unwrap_or_else(|_| ".".into())).join("shipped.rs");
    if let Err(e) = fs::write(&dest, out) {
        panic!("cannot write {}: {e}", dest.display());
    }
}
