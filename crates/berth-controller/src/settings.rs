//! The controller's reading of `argocd-cm`: the keys that change what it
//! does, parsed and compiled once per version of the ConfigMap. A key with
//! a value that cannot be used is named in a warning and its default
//! applies; the rest of the ConfigMap still counts.

use std::collections::BTreeMap;
use std::time::Duration;

use berth_api::tracking::Method;
use berth_engine::glob::glob;
use berth_engine::health::HealthChecks;
use berth_engine::settings::Settings;
use serde_json::Value;

use crate::compare::Customizations;
use crate::source::RenderSettings;

/// One entry of `resource.exclusions` or `resource.inclusions`: matches when
/// a group, a kind and a cluster each match one of the globs (an empty
/// list matches everything), as Argo CD matches them.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct FilterRule {
    /// `apiGroups` globs.
    pub api_groups: Vec<String>,
    /// `kinds` globs.
    pub kinds: Vec<String>,
    /// `clusters` globs (server URLs).
    pub clusters: Vec<String>,
}

impl FilterRule {
    fn matches(&self, group: &str, kind: &str, cluster: &str) -> bool {
        let any = |globs: &[String], value: &str| {
            globs.is_empty() || globs.iter().any(|g| glob(g, value))
        };
        any(&self.api_groups, group) && any(&self.kinds, kind) && any(&self.clusters, cluster)
    }
}

/// Which resource types the controller manages and watches.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct ResourceFilter {
    /// `resource.exclusions`.
    pub exclusions: Vec<FilterRule>,
    /// `resource.inclusions`; when not empty, only these are managed.
    pub inclusions: Vec<FilterRule>,
}

impl ResourceFilter {
    /// Whether objects of `group`/`kind` on `cluster` are left alone.
    pub fn excluded(&self, group: &str, kind: &str, cluster: &str) -> bool {
        if self
            .exclusions
            .iter()
            .any(|r| r.matches(group, kind, cluster))
        {
            return true;
        }
        !self.inclusions.is_empty()
            && !self
                .inclusions
                .iter()
                .any(|r| r.matches(group, kind, cluster))
    }
}

/// Everything the controller takes from `argocd-cm`, compiled.
#[derive(Debug)]
pub struct ControllerSettings {
    /// Tracking, labels, installation ID and Kustomize options.
    pub render: RenderSettings,
    /// Health checks: built-ins, shipped scripts and `argocd-cm`'s.
    pub checks: HealthChecks,
    /// ignoreDifferences and masked annotations.
    pub customizations: Customizations,
    /// `timeout.reconciliation`: how often each repository is asked for
    /// new commits, when set; zero turns polling off, as in Argo CD.
    pub reconciliation: Option<Duration>,
    /// `resource.exclusions` and `resource.inclusions`.
    pub resources: ResourceFilter,
    /// `berth.takeOver: "true"` (extension): reconcile even while Argo
    /// CD's application controller runs in the control namespace.
    pub take_over: bool,
    /// Resource actions: shipped and `argocd-cm`'s.
    pub actions: berth_engine::actions::ResourceActions,
    /// Values that could not be used, each naming the key and what to do.
    pub warnings: Vec<String>,
}

impl ControllerSettings {
    /// Reads the `data` of `argocd-cm` (empty when there is none).
    pub fn from_data(control_namespace: &str, data: &BTreeMap<String, String>) -> Self {
        let mut warnings = Vec::new();
        let method = match data.get("application.resourceTrackingMethod") {
            None => Method::Annotation,
            Some(m) => Method::parse(m).unwrap_or_else(|| {
                warnings.push(format!(
                    "argocd-cm application.resourceTrackingMethod {m:?}: use annotation, label or annotation+label; using annotation"
                ));
                Method::Annotation
            }),
        };
        let mut render = RenderSettings::new(control_namespace, method);
        if let Some(label) = data.get("application.instanceLabelKey").map(|s| s.trim())
            && !label.is_empty()
        {
            render.instance_label = label.to_string();
        }
        if let Some(id) = data.get("installationID") {
            render.installation_id = id.trim().to_string();
        }
        if let Some(options) = data.get("kustomize.buildOptions") {
            render.kustomize_build_options =
                options.split_whitespace().map(str::to_string).collect();
        }
        let reconciliation = match data.get("timeout.reconciliation") {
            None => None,
            Some(v) => match crate::controller::parse_duration(v) {
                Some(d) => Some(d),
                None if v.trim() == "0" => Some(Duration::ZERO),
                None => {
                    warnings.push(format!(
                        "argocd-cm timeout.reconciliation {v:?}: use a duration such as 180s or 3m; using the default"
                    ));
                    None
                }
            },
        };
        let mut resources = ResourceFilter::default();
        for (key, list) in [
            ("resource.exclusions", &mut resources.exclusions),
            ("resource.inclusions", &mut resources.inclusions),
        ] {
            if let Some(text) = data.get(key) {
                match filter_rules(text) {
                    Ok(rules) => *list = rules,
                    Err(e) => warnings.push(format!("argocd-cm {key}: {e}; the key is ignored")),
                }
            }
        }
        let engine = match Settings::from_configmap_data(data) {
            Ok(s) => s,
            Err(e) => {
                warnings.push(format!("argocd-cm resource customizations ignored: {e}"));
                Settings::default()
            }
        };
        let mut checks = HealthChecks::new();
        engine.apply_health(&mut checks);
        let take_over = match data.get("berth.takeOver").map(|v| v.trim()) {
            None | Some("false") => false,
            Some("true") => true,
            Some(other) => {
                warnings.push(format!(
                    "argocd-cm berth.takeOver {other:?}: use true or false; using false"
                ));
                false
            }
        };
        ControllerSettings {
            take_over,
            render,
            checks,
            customizations: Customizations::new(&engine),
            actions: berth_engine::actions::ResourceActions::new(engine.actions.clone()),
            reconciliation,
            resources,
            warnings,
        }
    }

    /// How objects are recognized as an app's, from these settings.
    pub fn tracking(&self) -> berth_engine::tracking::Tracking {
        berth_engine::tracking::Tracking {
            method: self.render.method,
            instance_label: self.render.instance_label.clone(),
            installation_id: self.render.installation_id.clone(),
        }
    }

    /// Whether a change from `self` to `next` changes what the live cache
    /// watches or how it recognizes an app's objects.
    pub fn live_cache_differs(&self, next: &ControllerSettings) -> bool {
        self.render.method != next.render.method
            || self.render.instance_label != next.render.instance_label
            || self.render.installation_id != next.render.installation_id
            || self.resources != next.resources
    }
}

/// Parses a list of `{apiGroups, kinds, clusters}` entries (YAML).
fn filter_rules(text: &str) -> Result<Vec<FilterRule>, String> {
    let parsed: Value = serde_saphyr::from_str(text).map_err(|e| e.to_string())?;
    let Some(items) = parsed.as_array() else {
        if parsed.is_null() {
            return Ok(Vec::new());
        }
        return Err("expected a list of {apiGroups, kinds, clusters} entries".into());
    };
    let mut rules = Vec::new();
    for (i, item) in items.iter().enumerate() {
        let list = |field: &str| -> Result<Vec<String>, String> {
            match item.get(field) {
                None | Some(Value::Null) => Ok(Vec::new()),
                Some(Value::Array(a)) => a
                    .iter()
                    .map(|v| {
                        v.as_str()
                            .map(str::to_string)
                            .ok_or_else(|| format!("entry {i}: {field} must list strings"))
                    })
                    .collect(),
                Some(_) => Err(format!("entry {i}: {field} must be a list")),
            }
        };
        rules.push(FilterRule {
            api_groups: list("apiGroups")?,
            kinds: list("kinds")?,
            clusters: list("clusters")?,
        });
    }
    Ok(rules)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn data(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn defaults_without_a_config_map() {
        let s = ControllerSettings::from_data("argocd", &BTreeMap::new());
        assert_eq!(s.render.method, Method::Annotation);
        assert_eq!(s.render.instance_label, berth_api::tracking::INSTANCE_LABEL);
        assert_eq!(s.reconciliation, None);
        assert!(s.warnings.is_empty());
        assert!(
            !s.resources
                .excluded("apps", "Deployment", "https://kubernetes.default.svc")
        );
    }

    #[test]
    fn keys_are_read() {
        let s = ControllerSettings::from_data(
            "argocd",
            &data(&[
                ("application.resourceTrackingMethod", "label"),
                ("application.instanceLabelKey", "example.com/app"),
                ("installationID", "east"),
                ("timeout.reconciliation", "3m"),
                (
                    "kustomize.buildOptions",
                    "--enable-helm  --load-restrictor LoadRestrictionsNone",
                ),
            ]),
        );
        assert_eq!(s.render.method, Method::Label);
        assert_eq!(s.render.instance_label, "example.com/app");
        assert_eq!(s.render.installation_id, "east");
        assert_eq!(s.reconciliation, Some(Duration::from_secs(180)));
        assert_eq!(
            s.render.kustomize_build_options,
            ["--enable-helm", "--load-restrictor", "LoadRestrictionsNone"]
        );
        let off =
            ControllerSettings::from_data("argocd", &data(&[("timeout.reconciliation", "0")]));
        assert_eq!(off.reconciliation, Some(Duration::ZERO));
    }

    #[test]
    fn bad_values_are_named_and_defaulted() {
        let s = ControllerSettings::from_data(
            "argocd",
            &data(&[
                ("application.resourceTrackingMethod", "uid"),
                ("timeout.reconciliation", "soon"),
                ("resource.exclusions", "kinds: [Secret]"),
            ]),
        );
        assert_eq!(s.render.method, Method::Annotation);
        assert_eq!(s.reconciliation, None);
        assert_eq!(s.warnings.len(), 3, "{:?}", s.warnings);
        assert!(s.warnings[0].contains("application.resourceTrackingMethod"));
        assert!(s.warnings[1].contains("timeout.reconciliation"));
        assert!(s.warnings[2].contains("resource.exclusions"));
    }

    #[test]
    fn exclusions_and_inclusions_match_as_argo_cd() {
        let here = "https://kubernetes.default.svc";
        let s = ControllerSettings::from_data(
            "argocd",
            &data(&[(
                "resource.exclusions",
                "- apiGroups: ['*.example.com']\n  kinds: ['*']\n  clusters: ['*']\n- apiGroups: ['']\n  kinds: [Secret]\n  clusters: ['https://elsewhere']\n",
            )]),
        );
        assert!(s.resources.excluded("metrics.example.com", "Sample", here));
        assert!(
            !s.resources.excluded("", "Secret", here),
            "another cluster's rule"
        );
        assert!(s.resources.excluded("", "Secret", "https://elsewhere"));
        assert!(!s.resources.excluded("apps", "Deployment", here));

        let only = ControllerSettings::from_data(
            "argocd",
            &data(&[(
                "resource.inclusions",
                "- apiGroups: ['', apps]\n  kinds: ['*']\n",
            )]),
        );
        assert!(!only.resources.excluded("apps", "Deployment", here));
        assert!(!only.resources.excluded("", "ConfigMap", here));
        assert!(
            only.resources.excluded("batch", "Job", here),
            "not included"
        );
    }
}
