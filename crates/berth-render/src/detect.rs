//! Which kind of source a directory is, when the Application does not say.

use std::path::Path;

/// A source type, named as in Argo CD.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SourceType {
    /// Plain manifests.
    Directory,
    /// A Kustomize directory.
    Kustomize,
    /// A Helm chart.
    Helm,
}

/// The file names Kustomize accepts for its configuration.
pub const KUSTOMIZATION_FILES: [&str; 3] =
    ["kustomization.yaml", "kustomization.yml", "Kustomization"];

/// Detects the type of the source at `dir` as Argo CD does: a
/// kustomization file makes it Kustomize, else a `Chart.yaml` makes it Helm,
/// else it is a directory of manifests.
pub fn detect(dir: &Path) -> SourceType {
    if KUSTOMIZATION_FILES.iter().any(|f| dir.join(f).is_file()) {
        SourceType::Kustomize
    } else if dir.join("Chart.yaml").is_file() {
        SourceType::Helm
    } else {
        SourceType::Directory
    }
}
