//! Argo CD's `Application` (`argoproj.io/v1alpha1`), the parts Berth reads:
//! field names and meanings as Argo CD defines them. Fields Berth does not
//! know are kept aside and reported by [`Application::unknown_fields`], so a
//! typo (`targetRevison`) is caught without refusing a valid Argo CD object.

use std::collections::BTreeMap;

use serde::Deserialize;
use serde_json::Value;

/// Why an Application manifest could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    /// Not YAML, or not an Application.
    #[error("{source_name}: {reason}")]
    Invalid {
        /// The file.
        source_name: String,
        /// What is wrong.
        reason: String,
    },
}

/// Extra fields found where Berth expects none.
type Unknown = BTreeMap<String, Value>;

/// An Argo CD Application.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Application {
    /// `argoproj.io/v1alpha1`.
    pub api_version: String,
    /// `Application`.
    pub kind: String,
    /// Name, namespace, labels, annotations, finalizers.
    pub metadata: Metadata,
    /// The desired state.
    pub spec: ApplicationSpec,
}

/// The metadata Berth reads.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Metadata {
    /// Name.
    #[serde(default)]
    pub name: String,
    /// Namespace (the control namespace, `argocd` by default).
    #[serde(default)]
    pub namespace: Option<String>,
    /// Labels.
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    /// Annotations.
    #[serde(default)]
    pub annotations: BTreeMap<String, String>,
    /// Finalizers.
    #[serde(default)]
    pub finalizers: Vec<String>,
}

/// `spec`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ApplicationSpec {
    /// The AppProject.
    #[serde(default)]
    pub project: String,
    /// One source.
    #[serde(default)]
    pub source: Option<Source>,
    /// Several sources (`spec.sources`).
    #[serde(default)]
    pub sources: Vec<Source>,
    /// Where to deploy.
    #[serde(default)]
    pub destination: Destination,
    /// Sync policy.
    #[serde(default)]
    pub sync_policy: Option<SyncPolicy>,
    /// `ignoreDifferences`, kept as given for the engine.
    #[serde(default)]
    pub ignore_differences: Vec<Value>,
    /// Other fields (`info`, `revisionHistoryLimit`, ...).
    #[serde(flatten)]
    pub other: BTreeMap<String, Value>,
}

/// A source: a Git directory or a Helm chart.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Source {
    /// Git repository or Helm repository URL.
    #[serde(rename = "repoURL", default)]
    pub repo_url: String,
    /// Directory in the repository.
    #[serde(default)]
    pub path: Option<String>,
    /// Branch, tag, commit, or chart version.
    #[serde(default)]
    pub target_revision: Option<String>,
    /// Chart name, for Helm repositories.
    #[serde(default)]
    pub chart: Option<String>,
    /// `ref`, naming this source for `$ref/...` value files.
    #[serde(rename = "ref", default)]
    pub ref_name: Option<String>,
    /// A name for the source.
    #[serde(default)]
    pub name: Option<String>,
    /// Directory options.
    #[serde(default)]
    pub directory: Option<DirectorySource>,
    /// Kustomize options.
    #[serde(default)]
    pub kustomize: Option<KustomizeSource>,
    /// Helm options.
    #[serde(default)]
    pub helm: Option<HelmSource>,
    /// Plugin options.
    #[serde(default)]
    pub plugin: Option<PluginSource>,
    /// Fields Berth does not know.
    #[serde(flatten)]
    pub unknown: Unknown,
}

/// `source.directory`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DirectorySource {
    /// Read subdirectories.
    #[serde(default)]
    pub recurse: bool,
    /// Include glob.
    #[serde(default)]
    pub include: Option<String>,
    /// Exclude glob.
    #[serde(default)]
    pub exclude: Option<String>,
    /// Jsonnet options, kept as given.
    #[serde(default)]
    pub jsonnet: Option<Value>,
    /// Fields Berth does not know.
    #[serde(flatten)]
    pub unknown: Unknown,
}

/// `source.kustomize`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct KustomizeSource {
    /// `namePrefix`.
    #[serde(default)]
    pub name_prefix: Option<String>,
    /// `nameSuffix`.
    #[serde(default)]
    pub name_suffix: Option<String>,
    /// `images`.
    #[serde(default)]
    pub images: Vec<String>,
    /// `commonLabels`.
    #[serde(default)]
    pub common_labels: BTreeMap<String, String>,
    /// `commonAnnotations`.
    #[serde(default)]
    pub common_annotations: BTreeMap<String, String>,
    /// `forceCommonLabels`.
    #[serde(default)]
    pub force_common_labels: bool,
    /// `forceCommonAnnotations`.
    #[serde(default)]
    pub force_common_annotations: bool,
    /// `namespace`.
    #[serde(default)]
    pub namespace: Option<String>,
    /// `replicas`: name and count (a number or a string holding one).
    #[serde(default)]
    pub replicas: Vec<Replica>,
    /// `components`.
    #[serde(default)]
    pub components: Vec<String>,
    /// `patches`, kept as given.
    #[serde(default)]
    pub patches: Vec<Value>,
    /// `version`: a kustomize version configured in `argocd-cm`.
    #[serde(default)]
    pub version: Option<String>,
    /// Fields Berth does not know (or does not apply yet).
    #[serde(flatten)]
    pub unknown: Unknown,
}

/// One `kustomize.replicas` entry.
#[derive(Debug, Clone, Deserialize)]
pub struct Replica {
    /// The workload's name.
    pub name: String,
    /// The count, as Argo CD accepts it: a number or a string.
    pub count: Value,
}

/// `source.helm`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct HelmSource {
    /// `releaseName`.
    #[serde(default)]
    pub release_name: Option<String>,
    /// `valueFiles`.
    #[serde(default)]
    pub value_files: Vec<String>,
    /// `values` (YAML text).
    #[serde(default)]
    pub values: Option<String>,
    /// `valuesObject`.
    #[serde(default)]
    pub values_object: Option<Value>,
    /// `parameters`.
    #[serde(default)]
    pub parameters: Vec<HelmParameter>,
    /// `fileParameters`.
    #[serde(default)]
    pub file_parameters: Vec<HelmFileParameter>,
    /// `skipCrds`.
    #[serde(default)]
    pub skip_crds: bool,
    /// `skipTests`.
    #[serde(default)]
    pub skip_tests: bool,
    /// `passCredentials`.
    #[serde(default)]
    pub pass_credentials: bool,
    /// `ignoreMissingValueFiles`.
    #[serde(default)]
    pub ignore_missing_value_files: bool,
    /// `namespace`: overrides the destination namespace for Helm.
    #[serde(default)]
    pub namespace: Option<String>,
    /// `kubeVersion`.
    #[serde(default)]
    pub kube_version: Option<String>,
    /// `apiVersions`.
    #[serde(default)]
    pub api_versions: Vec<String>,
    /// `version`: Helm major version (Argo CD accepts `v3`).
    #[serde(default)]
    pub version: Option<String>,
    /// Fields Berth does not know.
    #[serde(flatten)]
    pub unknown: Unknown,
}

/// One `helm.parameters` entry.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct HelmParameter {
    /// Value path.
    pub name: String,
    /// Value.
    #[serde(default)]
    pub value: String,
    /// Pass as a string.
    #[serde(default)]
    pub force_string: bool,
}

/// One `helm.fileParameters` entry.
#[derive(Debug, Clone, Deserialize)]
pub struct HelmFileParameter {
    /// Value path.
    pub name: String,
    /// File, relative to the chart.
    pub path: String,
}

/// `source.plugin`.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct PluginSource {
    /// The plugin's name.
    #[serde(default)]
    pub name: Option<String>,
    /// `env`: name/value pairs.
    #[serde(default)]
    pub env: Vec<BTreeMap<String, String>>,
    /// `parameters`, kept as given.
    #[serde(default)]
    pub parameters: Vec<Value>,
}

/// `spec.destination`.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct Destination {
    /// Cluster API URL.
    #[serde(default)]
    pub server: Option<String>,
    /// Cluster name.
    #[serde(default)]
    pub name: Option<String>,
    /// Namespace for namespaced objects without one.
    #[serde(default)]
    pub namespace: Option<String>,
    /// Fields Berth does not know.
    #[serde(flatten)]
    pub unknown: Unknown,
}

/// `spec.syncPolicy`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SyncPolicy {
    /// Automated sync; absent means manual.
    #[serde(default)]
    pub automated: Option<Automated>,
    /// `syncOptions` such as `CreateNamespace=true`.
    #[serde(default)]
    pub sync_options: Vec<String>,
    /// Other fields (`retry`, `managedNamespaceMetadata`), kept as given.
    #[serde(flatten)]
    pub other: BTreeMap<String, Value>,
}

/// `syncPolicy.automated`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Automated {
    /// Delete what was removed from Git.
    #[serde(default)]
    pub prune: bool,
    /// Revert changes made in the cluster.
    #[serde(default)]
    pub self_heal: bool,
    /// Allow syncing to an empty set of objects.
    #[serde(default)]
    pub allow_empty: bool,
    /// `enabled` (Argo CD 3.x); absent means enabled.
    #[serde(default)]
    pub enabled: Option<bool>,
}

impl Application {
    /// Reads one Application from YAML or JSON; `source_name` names the file
    /// in errors.
    pub fn from_yaml(source_name: &str, text: &str) -> Result<Application, Error> {
        let invalid = |reason: String| Error::Invalid {
            source_name: source_name.to_string(),
            reason,
        };
        let value: Value =
            serde_saphyr::from_str(text).map_err(|e| invalid(format!("not valid YAML: {e}")))?;
        Application::from_value(source_name, value)
    }

    /// Reads one Application from a JSON value (as the API server returns
    /// it); `source_name` names it in errors.
    pub fn from_value(source_name: &str, value: Value) -> Result<Application, Error> {
        let invalid = |reason: String| Error::Invalid {
            source_name: source_name.to_string(),
            reason,
        };
        let field = |k: &str| {
            value
                .get(k)
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_string()
        };
        if field("apiVersion") != "argoproj.io/v1alpha1" || field("kind") != "Application" {
            return Err(invalid(format!(
                "expected apiVersion argoproj.io/v1alpha1 and kind Application, found {} {}",
                field("apiVersion"),
                field("kind")
            )));
        }
        // The error names the field (`spec.source.path: invalid type...`).
        let app: Application = serde_path_to_error::deserialize(value)
            .map_err(|e| invalid(format!("{}: {}", e.path(), e.inner())))?;
        if app.metadata.name.is_empty() {
            return Err(invalid("metadata.name is required".into()));
        }
        if app.spec.source.is_none() && app.spec.sources.is_empty() {
            return Err(invalid("spec.source (or spec.sources) is required".into()));
        }
        Ok(app)
    }

    /// The sources, whether given as `source` or `sources`.
    pub fn sources(&self) -> Vec<&Source> {
        match &self.spec.source {
            Some(s) => vec![s],
            None => self.spec.sources.iter().collect(),
        }
    }

    /// Dotted paths of fields Berth does not know, for a warning.
    pub fn unknown_fields(&self) -> Vec<String> {
        let mut out = Vec::new();
        let mut add = |prefix: &str, unknown: &Unknown| {
            out.extend(unknown.keys().map(|k| format!("{prefix}.{k}")))
        };
        for (i, s) in self.sources().into_iter().enumerate() {
            let prefix = if self.spec.source.is_some() {
                "spec.source".to_string()
            } else {
                format!("spec.sources[{i}]")
            };
            add(&prefix, &s.unknown);
            if let Some(d) = &s.directory {
                add(&format!("{prefix}.directory"), &d.unknown);
            }
            if let Some(k) = &s.kustomize {
                add(&format!("{prefix}.kustomize"), &k.unknown);
            }
            if let Some(h) = &s.helm {
                add(&format!("{prefix}.helm"), &h.unknown);
            }
        }
        add("spec.destination", &self.spec.destination.unknown);
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const DESIGN_EXAMPLE: &str = r#"
apiVersion: argoproj.io/v1alpha1
kind: Application
metadata:
  name: my-service
  namespace: argocd
spec:
  project: default
  source:
    repoURL: https://github.com/yourorg/yourrepo
    targetRevision: main
    path: services/my-service
  destination:
    server: https://kubernetes.default.svc
    namespace: production
  syncPolicy:
    automated:
      prune: true
      selfHeal: true
"#;

    #[test]
    fn reads_the_canonical_example() {
        let app = Application::from_yaml("app.yaml", DESIGN_EXAMPLE).unwrap();
        assert_eq!(app.metadata.name, "my-service");
        let src = app.sources()[0];
        assert_eq!(src.repo_url, "https://github.com/yourorg/yourrepo");
        assert_eq!(src.path.as_deref(), Some("services/my-service"));
        assert_eq!(
            app.spec.destination.namespace.as_deref(),
            Some("production")
        );
        let auto = app.spec.sync_policy.clone().unwrap().automated.unwrap();
        assert!(auto.prune && auto.self_heal);
        assert!(app.unknown_fields().is_empty());
    }

    #[test]
    fn typos_are_reported_not_fatal() {
        let text = DESIGN_EXAMPLE.replace("targetRevision: main", "targetRevison: main");
        let app = Application::from_yaml("app.yaml", &text).unwrap();
        assert_eq!(app.unknown_fields(), ["spec.source.targetRevison"]);
        assert_eq!(app.sources()[0].target_revision, None);
    }

    #[test]
    fn bad_manifests_say_what_is_wrong() {
        let err = Application::from_yaml(
            "a.yaml",
            "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: x}\nspec: {}\n",
        )
        .unwrap_err();
        assert_eq!(
            err.to_string(),
            "a.yaml: expected apiVersion argoproj.io/v1alpha1 and kind Application, found v1 ConfigMap"
        );
        let err = Application::from_yaml("a.yaml", "apiVersion: argoproj.io/v1alpha1\nkind: Application\nmetadata: {name: x}\nspec: {project: default}\n").unwrap_err();
        assert_eq!(
            err.to_string(),
            "a.yaml: spec.source (or spec.sources) is required"
        );
        let err = Application::from_yaml("a.yaml", "apiVersion: argoproj.io/v1alpha1\nkind: Application\nmetadata: {name: x}\nspec: {source: {helm: {skipCrds: maybe}}}\n").unwrap_err();
        assert!(
            err.to_string()
                .starts_with("a.yaml: spec.source.helm.skipCrds: invalid type"),
            "the field is named: {err}"
        );
    }
}
