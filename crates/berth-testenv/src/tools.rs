//! Finding the project's tool binaries (`berth-testenv`, `helm`, `kustomize`).

use std::env;
use std::path::{Path, PathBuf};

use crate::error::{Error, Result};

/// The command that builds every tool into the project's tools directory.
pub const BUILD_COMMAND: &str = "make tools";

/// The project-local tools directory, if one can be found.
///
/// In order: `$BERTH_TOOLS_DIR`; `tools/bin` in an ancestor of the running
/// executable (a `target/*/berth` built in the repository); `tools/bin` in an
/// ancestor of the current directory.
pub fn tools_dir() -> Option<PathBuf> {
    if let Some(dir) = env::var_os("BERTH_TOOLS_DIR") {
        return Some(PathBuf::from(dir));
    }
    let from_exe = env::current_exe().ok().and_then(|exe| find_up(&exe));
    from_exe.or_else(|| env::current_dir().ok().and_then(|cwd| find_up(&cwd)))
}

fn find_up(start: &Path) -> Option<PathBuf> {
    start
        .ancestors()
        .map(|dir| dir.join("tools").join("bin"))
        .find(|dir| dir.is_dir())
}

/// Finds the tool `name`: in the tools directory first, then on `PATH`.
pub fn find_tool(name: &str) -> Result<PathBuf> {
    let mut searched = Vec::new();
    if let Some(dir) = tools_dir() {
        let candidate = dir.join(name);
        if candidate.is_file() {
            return Ok(candidate);
        }
        searched.push(dir.display().to_string());
    }
    if let Some(path) = env::var_os("PATH") {
        for dir in env::split_paths(&path) {
            let candidate = dir.join(name);
            if candidate.is_file() {
                return Ok(candidate);
            }
        }
        searched.push("PATH".to_string());
    }
    Err(Error::ToolNotFound {
        name: name.to_string(),
        searched: searched.join(", "),
        build_command: BUILD_COMMAND,
    })
}
