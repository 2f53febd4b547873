//! The `argocd-cm` keys that change what the engine does: resource
//! customizations (health scripts and `ignoreDifferences`), masked
//! annotations, and Berth's own switch for Application health.

use std::collections::BTreeMap;

use serde_json::Value;

use crate::diff::{IgnoreDifference, IgnoreRule};
use crate::health::HealthChecks;

/// Berth's extension key that turns on Application (app-of-apps) health.
pub const APPLICATION_HEALTH_KEY: &str = "berth.health.application";

const HEALTH_PREFIX: &str = "resource.customizations.health.";
const IGNORE_PREFIX: &str = "resource.customizations.ignoreDifferences.";
const OPEN_LIBS_PREFIX: &str = "resource.customizations.useOpenLibs.";
const ACTIONS_PREFIX: &str = "resource.customizations.actions.";
const LEGACY_BLOCK: &str = "resource.customizations";
const MASK_ANNOTATIONS: &str = "resource.sensitive.mask.annotations";

/// An `argocd-cm` entry that cannot be used.
#[derive(Debug, thiserror::Error, Clone, PartialEq, Eq)]
pub enum SettingsError {
    /// A customization key does not name `<group>_<kind>`.
    #[error("argocd-cm: key {key:?} must end in <group>_<kind> (or <kind> for the core group)")]
    Key {
        /// The key.
        key: String,
    },
    /// A value is not the YAML it should be.
    #[error("argocd-cm: key {key:?}: {message}")]
    Value {
        /// The key.
        key: String,
        /// What is wrong.
        message: String,
    },
}

/// What the engine takes from `argocd-cm`.
#[derive(Debug, Default)]
pub struct Settings {
    /// Health scripts: (group, kind, key, source); group or kind may be `*`.
    pub health: Vec<(String, String, String, String)>,
    /// `ignoreDifferences` customizations, with group and kind filled in.
    pub ignore_differences: Vec<IgnoreDifference>,
    /// `resource.sensitive.mask.annotations`.
    pub mask_annotations: Vec<String>,
    /// Berth's Application health check is on.
    pub application_health: bool,
    /// Resource actions: (group, kind, scripts).
    pub actions: Vec<(String, String, crate::actions::ActionScripts)>,
}

/// An action customization's problem, without the key it already names.
fn action_message(e: crate::actions::ActionError) -> String {
    match e {
        crate::actions::ActionError::Settings { message, .. } => message,
        other => other.to_string(),
    }
}

impl Settings {
    /// Reads the `data` of an `argocd-cm` ConfigMap.
    pub fn from_configmap_data(data: &BTreeMap<String, String>) -> Result<Settings, SettingsError> {
        let mut s = Settings::default();
        // The block first: per-type keys override it, as in Argo CD.
        if let Some(block) = data.get(LEGACY_BLOCK) {
            let parsed: BTreeMap<String, BTreeMap<String, Value>> =
                serde_saphyr::from_str(block).map_err(|e| SettingsError::Value {
                    key: LEGACY_BLOCK.into(),
                    message: e.to_string(),
                })?;
            for (gk, fields) in parsed {
                let (group, kind) = match gk.rsplit_once('/') {
                    Some((g, k)) => (g.to_string(), k.to_string()),
                    None => (String::new(), gk.clone()),
                };
                if let Some(src) = fields.get("health.lua").and_then(Value::as_str) {
                    s.health.push((
                        group.clone(),
                        kind.clone(),
                        format!("{LEGACY_BLOCK}[{gk}]"),
                        src.to_string(),
                    ));
                }
                if let Some(text) = fields.get("ignoreDifferences").and_then(Value::as_str) {
                    s.ignore_differences
                        .push(ignore_from_yaml(LEGACY_BLOCK, text, &group, &kind)?);
                }
                if let Some(text) = fields.get("actions").and_then(Value::as_str) {
                    let key = format!("{LEGACY_BLOCK}[{gk}]");
                    let scripts =
                        crate::actions::ActionScripts::from_yaml(&key, text).map_err(|e| {
                            SettingsError::Value {
                                key: key.clone(),
                                message: action_message(e),
                            }
                        })?;
                    s.actions.push((group.clone(), kind.clone(), scripts));
                }
            }
        }
        for (key, value) in data {
            if let Some(gk) = key.strip_prefix(HEALTH_PREFIX) {
                let (group, kind) = split_group_kind(key, gk)?;
                s.health.retain(|(g, k, _, _)| !(g == &group && k == &kind));
                s.health.push((group, kind, key.clone(), value.clone()));
            } else if let Some(gk) = key.strip_prefix(IGNORE_PREFIX) {
                let (group, kind) = split_group_kind(key, gk)?;
                s.ignore_differences
                    .push(ignore_from_yaml(key, value, &group, &kind)?);
            } else if let Some(gk) = key.strip_prefix(ACTIONS_PREFIX) {
                let (group, kind) = split_group_kind(key, gk)?;
                let scripts =
                    crate::actions::ActionScripts::from_yaml(key, value).map_err(|e| {
                        SettingsError::Value {
                            key: key.clone(),
                            message: action_message(e),
                        }
                    })?;
                s.actions.retain(|(g, k, _)| !(g == &group && k == &kind));
                s.actions.push((group, kind, scripts));
            } else if let Some(gk) = key.strip_prefix(OPEN_LIBS_PREFIX) {
                // Berth's sandbox always offers string, table and math and
                // never io or os.execute, whatever this says.
                split_group_kind(key, gk)?;
            } else if key == MASK_ANNOTATIONS {
                s.mask_annotations = value
                    .split(',')
                    .map(str::trim)
                    .filter(|a| !a.is_empty())
                    .map(String::from)
                    .collect();
            } else if key == APPLICATION_HEALTH_KEY {
                s.application_health = value.trim() == "true";
            }
        }
        Ok(s)
    }

    /// Adds these scripts and switches to a set of health checks.
    pub fn apply_health(&self, checks: &mut HealthChecks) {
        for (group, kind, key, source) in &self.health {
            checks.add_argocd_cm(group, kind, key, source);
        }
        checks.enable_application_check(self.application_health);
    }

    /// Compiles the `ignoreDifferences` customizations.
    pub fn ignore_rules(&self) -> Result<Vec<IgnoreRule>, crate::diff::DiffError> {
        self.ignore_differences
            .iter()
            .enumerate()
            .map(|(i, d)| IgnoreRule::new(i, d.clone()))
            .collect()
    }
}

/// `<group>_<kind>`, `<kind>` for the core group, `all` for any.
fn split_group_kind(key: &str, gk: &str) -> Result<(String, String), SettingsError> {
    if gk == "all" {
        return Ok(("*".into(), "*".into()));
    }
    match gk.split('_').collect::<Vec<_>>()[..] {
        [kind] if !kind.is_empty() => Ok((String::new(), kind.to_string())),
        [group, kind] if !kind.is_empty() => Ok((group.to_string(), kind.to_string())),
        _ => Err(SettingsError::Key { key: key.into() }),
    }
}

fn ignore_from_yaml(
    key: &str,
    text: &str,
    group: &str,
    kind: &str,
) -> Result<IgnoreDifference, SettingsError> {
    let mut d: IgnoreDifference =
        serde_saphyr::from_str(text).map_err(|e| SettingsError::Value {
            key: key.into(),
            message: e.to_string(),
        })?;
    d.group = group.to_string();
    d.kind = kind.to_string();
    Ok(d)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn data(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn keys_name_group_and_kind() {
        let s = Settings::from_configmap_data(&data(&[
            (
                "resource.customizations.health.cert-manager.io_Certificate",
                "return {status='Healthy'}",
            ),
            ("resource.customizations.health.Service", "return {}"),
            (
                "resource.customizations.ignoreDifferences.apps_Deployment",
                "jsonPointers:\n- /spec/replicas\n",
            ),
            (
                "resource.customizations.ignoreDifferences.all",
                "managedFieldsManagers:\n- kube-controller-manager\n",
            ),
            (
                "resource.sensitive.mask.annotations",
                "a.example/token, b.example/key",
            ),
            ("berth.health.application", "true"),
            ("timeout.reconciliation", "180s"),
        ]))
        .unwrap();
        let kinds: Vec<(&str, &str)> = s
            .health
            .iter()
            .map(|(g, k, _, _)| (g.as_str(), k.as_str()))
            .collect();
        assert!(kinds.contains(&("cert-manager.io", "Certificate")));
        assert!(kinds.contains(&("", "Service")));
        let apps = s
            .ignore_differences
            .iter()
            .find(|d| d.group == "apps")
            .unwrap();
        assert_eq!(apps.kind, "Deployment");
        assert_eq!(apps.json_pointers, vec!["/spec/replicas"]);
        let all = s
            .ignore_differences
            .iter()
            .find(|d| d.group == "*")
            .unwrap();
        assert_eq!(all.kind, "*");
        assert_eq!(s.mask_annotations, vec!["a.example/token", "b.example/key"]);
        assert!(s.application_health);
        assert_eq!(s.ignore_rules().unwrap().len(), 2);
    }

    #[test]
    fn legacy_block_is_overridden_by_keys() {
        let s = Settings::from_configmap_data(&data(&[
            ("resource.customizations", "example.com/Widget:\n  health.lua: |\n    return {status = 'Degraded'}\n\"*.example.org/*\":\n  health.lua: return {status = 'Healthy'}\n"),
            ("resource.customizations.health.example.com_Widget", "return {status = 'Suspended'}"),
        ]))
        .unwrap();
        let mut checks = HealthChecks::new();
        s.apply_health(&mut checks);
        let w =
            json!({"apiVersion": "example.com/v1", "kind": "Widget", "metadata": {"name": "w"}});
        assert_eq!(
            checks.check(&w).unwrap().status,
            crate::health::Status::Suspended
        );
        let g =
            json!({"apiVersion": "a.example.org/v1", "kind": "Gadget", "metadata": {"name": "g"}});
        assert_eq!(
            checks.check(&g).unwrap().status,
            crate::health::Status::Healthy
        );
    }

    #[test]
    fn bad_entries_are_named() {
        let err =
            Settings::from_configmap_data(&data(&[("resource.customizations.health.a_b_c", "")]))
                .unwrap_err();
        assert!(
            err.to_string()
                .contains("resource.customizations.health.a_b_c"),
            "{err}"
        );
        let err = Settings::from_configmap_data(&data(&[(
            "resource.customizations.ignoreDifferences.apps_Deployment",
            "jsonPointer: [/x]",
        )]))
        .unwrap_err();
        assert!(err.to_string().contains("jsonPointer"), "{err}");
    }
}
