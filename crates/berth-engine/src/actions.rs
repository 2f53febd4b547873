//! Resource actions in Argo CD's format: per kind, a discovery script that
//! says which actions a live object offers (`{restart = {}, pause =
//! {disabled = true}}`) and one script per action that returns the changed
//! object, or a list of operations (`{operation = "patch" | "create",
//! resource = ...}`). Scripts come from `argocd-cm`
//! (`resource.customizations.actions.<group>_<kind>`, or `actions` in the
//! `resource.customizations` block) or are shipped: restart for
//! Deployments, StatefulSets and DaemonSets, pause and resume for
//! Deployments. They run in the health scripts' sandbox ([`crate::lua`]).

use std::collections::BTreeMap;

use serde_json::{Map, Value};

use crate::lua::{Limits, LuaError};

/// Why an action cannot be listed or run.
#[derive(Debug, thiserror::Error)]
pub enum ActionError {
    /// The kind has no actions.
    #[error("{kind} has no resource actions (see resource.customizations.actions in argocd-cm)")]
    NoActions {
        /// `group/Kind`.
        kind: String,
    },
    /// The object does not offer this action.
    #[error("{kind} offers no action {action:?}; it offers: {offered}")]
    Unknown {
        /// `group/Kind`.
        kind: String,
        /// The action asked for.
        action: String,
        /// Those it offers, comma-separated.
        offered: String,
    },
    /// The action is offered but disabled for this object now.
    #[error("action {action:?} is disabled for this {kind} now")]
    Disabled {
        /// `group/Kind`.
        kind: String,
        /// The action.
        action: String,
    },
    /// A script failed.
    #[error(transparent)]
    Script(#[from] LuaError),
    /// A script returned something an action cannot be.
    #[error("{script}: {message}")]
    Result {
        /// The script's name.
        script: String,
        /// What is wrong.
        message: String,
    },
    /// An `argocd-cm` entry is not an action customization.
    #[error("argocd-cm: key {key:?}: {message}")]
    Settings {
        /// The key.
        key: String,
        /// What is wrong.
        message: String,
    },
}

/// One kind's scripts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ActionScripts {
    /// Where they come from (an `argocd-cm` key, or `shipped`).
    pub source: String,
    /// `discovery.lua`.
    pub discovery: String,
    /// Each action's `action.lua`, by name.
    pub definitions: BTreeMap<String, String>,
}

impl ActionScripts {
    /// Reads the YAML Argo CD keeps under
    /// `resource.customizations.actions.<group>_<kind>`:
    /// `discovery.lua` and `definitions: [{name, action.lua}]`.
    pub fn from_yaml(key: &str, text: &str) -> Result<ActionScripts, ActionError> {
        let bad = |message: String| ActionError::Settings {
            key: key.to_string(),
            message,
        };
        let v: Value = serde_saphyr::from_str(text).map_err(|e| bad(e.to_string()))?;
        let discovery = v
            .get("discovery.lua")
            .and_then(Value::as_str)
            .ok_or_else(|| bad("discovery.lua: required (the script that lists actions)".into()))?
            .to_string();
        let mut definitions = BTreeMap::new();
        for (i, d) in v
            .get("definitions")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .enumerate()
        {
            let name = d.get("name").and_then(Value::as_str).unwrap_or_default();
            let script = d
                .get("action.lua")
                .and_then(Value::as_str)
                .unwrap_or_default();
            if name.is_empty() || script.is_empty() {
                return Err(bad(format!(
                    "definitions[{i}]: name and action.lua are required"
                )));
            }
            definitions.insert(name.to_string(), script.to_string());
        }
        Ok(ActionScripts {
            source: key.to_string(),
            discovery,
            definitions,
        })
    }
}

/// An action a live object offers (Argo CD's `ResourceAction`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResourceAction {
    /// Its name.
    pub name: String,
    /// Offered but not usable on the object now.
    pub disabled: bool,
    /// An icon for a UI (Font Awesome class), when the script gives one.
    pub icon_class: String,
    /// A label for a UI, when the script gives one.
    pub display_name: String,
}

impl ResourceAction {
    /// As Argo CD's API shows it.
    pub fn to_json(&self) -> Value {
        let mut m = Map::new();
        m.insert("name".into(), Value::from(self.name.clone()));
        m.insert("disabled".into(), Value::from(self.disabled));
        if !self.icon_class.is_empty() {
            m.insert("iconClass".into(), Value::from(self.icon_class.clone()));
        }
        if !self.display_name.is_empty() {
            m.insert("displayName".into(), Value::from(self.display_name.clone()));
        }
        Value::Object(m)
    }
}

/// What running an action asks of the cluster.
#[derive(Debug, Clone, PartialEq)]
pub enum Operation {
    /// Change the object: the JSON merge patch from the live object to the
    /// one the script returned.
    Patch {
        /// The object as the script left it (identifies the target).
        object: Value,
        /// The merge patch.
        patch: Value,
    },
    /// Create a new object (a Job from a CronJob).
    Create(Value),
}

/// The actions known to a controller: `argocd-cm`'s, then the shipped
/// ones.
#[derive(Debug, Clone, Default)]
pub struct ResourceActions {
    custom: Vec<(String, String, ActionScripts)>,
}

const LIMITS: Limits = Limits {
    timeout: std::time::Duration::from_secs(1),
    memory: 64 << 20,
};

const RESTART: &str = r#"local os = require("os")
obj.spec = obj.spec or {}
obj.spec.template = obj.spec.template or {}
obj.spec.template.metadata = obj.spec.template.metadata or {}
obj.spec.template.metadata.annotations = obj.spec.template.metadata.annotations or {}
obj.spec.template.metadata.annotations["kubectl.kubernetes.io/restartedAt"] = os.date("!%Y-%m-%dT%H:%M:%SZ")
return obj
"#;

const RESTART_ONLY: &str = r#"return {restart = {iconClass = "fa fa-fw fa-redo"}}
"#;

const DEPLOYMENT_DISCOVERY: &str = r#"local paused = obj.spec ~= nil and obj.spec.paused == true
return {
  restart = {iconClass = "fa fa-fw fa-redo"},
  pause = {disabled = paused, iconClass = "fa fa-fw fa-pause-circle"},
  resume = {disabled = not paused, iconClass = "fa fa-fw fa-play-circle"},
}
"#;

const PAUSE: &str = r#"obj.spec.paused = true
return obj
"#;

const RESUME: &str = r#"obj.spec.paused = nil
return obj
"#;

/// The shipped scripts of `group/kind`.
fn shipped(group: &str, kind: &str) -> Option<ActionScripts> {
    let restart = || ("restart".to_string(), RESTART.to_string());
    let (discovery, definitions) = match (group, kind) {
        ("apps", "Deployment") => (
            DEPLOYMENT_DISCOVERY,
            BTreeMap::from([
                restart(),
                ("pause".to_string(), PAUSE.to_string()),
                ("resume".to_string(), RESUME.to_string()),
            ]),
        ),
        ("apps", "StatefulSet" | "DaemonSet") => (RESTART_ONLY, BTreeMap::from([restart()])),
        _ => return None,
    };
    Some(ActionScripts {
        source: "shipped".into(),
        discovery: discovery.to_string(),
        definitions,
    })
}

fn group_kind(obj: &Value) -> (String, String) {
    let api_version = obj
        .get("apiVersion")
        .and_then(Value::as_str)
        .unwrap_or_default();
    let group = api_version
        .rsplit_once('/')
        .map(|(g, _)| g)
        .unwrap_or_default();
    let kind = obj.get("kind").and_then(Value::as_str).unwrap_or_default();
    (group.to_string(), kind.to_string())
}

impl ResourceActions {
    /// The shipped actions and `custom` ones, each `(group, kind, scripts)`
    /// (a kind's custom scripts replace its shipped ones).
    pub fn new(custom: Vec<(String, String, ActionScripts)>) -> ResourceActions {
        ResourceActions { custom }
    }

    fn scripts(&self, obj: &Value) -> Result<(String, ActionScripts), ActionError> {
        let (group, kind) = group_kind(obj);
        let label = if group.is_empty() {
            kind.clone()
        } else {
            format!("{group}/{kind}")
        };
        let found = self
            .custom
            .iter()
            .rev()
            .find(|(g, k, _)| g == &group && k == &kind)
            .map(|(_, _, s)| s.clone())
            .or_else(|| shipped(&group, &kind));
        found
            .map(|s| (label.clone(), s))
            .ok_or(ActionError::NoActions { kind: label })
    }

    /// The actions `obj` offers, by name.
    pub fn list(&self, obj: &Value) -> Result<Vec<ResourceAction>, ActionError> {
        let (_, scripts) = self.scripts(obj)?;
        let name = format!("{}[discovery.lua]", scripts.source);
        let found = crate::lua::eval(&name, &scripts.discovery, obj, LIMITS)?;
        let map = match found {
            Value::Object(m) => m,
            Value::Null => Map::new(),
            other => {
                return Err(ActionError::Result {
                    script: name,
                    message: format!(
                        "expected a table of actions by name, got {}",
                        kind_of(&other)
                    ),
                });
            }
        };
        let text = |v: &Value, k: &str| {
            v.get(k)
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_string()
        };
        let mut actions: Vec<ResourceAction> = map
            .into_iter()
            .map(|(name, v)| ResourceAction {
                disabled: v.get("disabled").and_then(Value::as_bool).unwrap_or(false),
                icon_class: text(&v, "iconClass"),
                display_name: text(&v, "displayName"),
                name,
            })
            .collect();
        actions.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(actions)
    }

    /// Runs `action` on the live object `obj`: what to do to the cluster.
    /// Refused when the object does not offer it or it is disabled.
    pub fn run(&self, obj: &Value, action: &str) -> Result<Vec<Operation>, ActionError> {
        let (label, scripts) = self.scripts(obj)?;
        let offered = self.list(obj)?;
        match offered.iter().find(|a| a.name == action) {
            None => {
                return Err(ActionError::Unknown {
                    kind: label,
                    action: action.to_string(),
                    offered: offered
                        .iter()
                        .map(|a| a.name.as_str())
                        .collect::<Vec<_>>()
                        .join(", "),
                });
            }
            Some(a) if a.disabled => {
                return Err(ActionError::Disabled {
                    kind: label,
                    action: action.to_string(),
                });
            }
            Some(_) => {}
        }
        let Some(source) = scripts.definitions.get(action) else {
            return Err(ActionError::Result {
                script: format!("{}[discovery.lua]", scripts.source),
                message: format!("lists {action:?}, which has no definition"),
            });
        };
        let name = format!("{}[{action}]", scripts.source);
        let out = crate::lua::eval(&name, source, obj, LIMITS)?;
        let bad = |message: String| ActionError::Result {
            script: name.clone(),
            message,
        };
        match out {
            // The changed object itself.
            Value::Object(ref m) if m.contains_key("kind") => Ok(vec![Operation::Patch {
                patch: merge_patch(obj, &out),
                object: out,
            }]),
            // Operations.
            Value::Array(items) => items
                .into_iter()
                .enumerate()
                .map(|(i, item)| {
                    let op = item
                        .get("operation")
                        .and_then(Value::as_str)
                        .unwrap_or_default();
                    let resource = item.get("resource").cloned().unwrap_or(Value::Null);
                    if !resource.is_object() {
                        return Err(bad(format!("[{i}]: resource: expected an object")));
                    }
                    match op {
                        "patch" => Ok(Operation::Patch {
                            patch: merge_patch(obj, &resource),
                            object: resource,
                        }),
                        "create" => Ok(Operation::Create(resource)),
                        other => Err(bad(format!(
                            "[{i}]: operation {other:?}: expected \"patch\" or \"create\""
                        ))),
                    }
                })
                .collect(),
            other => Err(bad(format!(
                "expected the changed object or a list of operations, got {}",
                kind_of(&other)
            ))),
        }
    }
}

fn kind_of(v: &Value) -> &'static str {
    match v {
        Value::Null => "nothing",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "a list",
        Value::Object(_) => "a table",
    }
}

/// The JSON merge patch (RFC 7386) that turns `from` into `to`. Status and
/// bookkeeping metadata are left out: an action changes the object's
/// desired state only. An empty table where `from` has an empty list is
/// no change (Lua cannot tell the two apart).
pub fn merge_patch(from: &Value, to: &Value) -> Value {
    fn diff(from: &Value, to: &Value) -> Option<Value> {
        match (from, to) {
            (Value::Object(a), Value::Object(b)) => {
                let mut out = Map::new();
                for (k, old) in a {
                    match b.get(k) {
                        // Lua has no null: a null field comes back absent.
                        None if old.is_null() => {}
                        None => {
                            out.insert(k.clone(), Value::Null);
                        }
                        Some(new) => {
                            if let Some(d) = diff(old, new) {
                                out.insert(k.clone(), d);
                            }
                        }
                    }
                }
                for (k, new) in b {
                    if !a.contains_key(k) {
                        out.insert(k.clone(), new.clone());
                    }
                }
                (!out.is_empty()).then_some(Value::Object(out))
            }
            (Value::Array(a), Value::Object(b)) if a.is_empty() && b.is_empty() => None,
            // 1 and 1.0 are one value once through Lua.
            (Value::Number(a), Value::Number(b)) if a.as_f64() == b.as_f64() => None,
            (a, b) if a == b => None,
            (_, b) => Some(b.clone()),
        }
    }
    /// `to` with its empty tables made empty lists where `from` has lists
    /// (a round trip through Lua loses the difference).
    fn restore(from: &Value, to: &Value) -> Value {
        match (from, to) {
            // An emptied list comes back from Lua as an empty table.
            (Value::Array(_), Value::Object(b)) if b.is_empty() => Value::Array(Vec::new()),
            (Value::Object(a), Value::Object(b)) => Value::Object(
                b.iter()
                    .map(|(k, v)| {
                        let v = a.get(k).map_or_else(|| v.clone(), |old| restore(old, v));
                        (k.clone(), v)
                    })
                    .collect(),
            ),
            (Value::Array(a), Value::Array(b)) => Value::Array(
                b.iter()
                    .enumerate()
                    .map(|(i, v)| a.get(i).map_or_else(|| v.clone(), |old| restore(old, v)))
                    .collect(),
            ),
            (_, b) => b.clone(),
        }
    }
    let to = restore(from, to);
    let mut patch = diff(from, &to).unwrap_or_else(|| Value::Object(Map::new()));
    if let Some(m) = patch.as_object_mut() {
        m.remove("status");
        if let Some(meta) = m.get_mut("metadata").and_then(Value::as_object_mut) {
            for k in [
                "resourceVersion",
                "uid",
                "generation",
                "creationTimestamp",
                "managedFields",
                "selfLink",
            ] {
                meta.remove(k);
            }
            if meta.is_empty() {
                m.remove("metadata");
            }
        }
    }
    patch
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn deployment(paused: bool) -> Value {
        let mut d = json!({
            "apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": "web", "namespace": "shop", "resourceVersion": "7"},
            "spec": {"replicas": 2, "template": {"metadata": {"labels": {"app": "web"}},
                "spec": {"containers": [{"name": "web", "image": "nginx", "args": []}]}}},
            "status": {"replicas": 2},
        });
        if paused {
            d["spec"]["paused"] = json!(true);
        }
        d
    }

    #[test]
    fn a_deployment_offers_restart_pause_and_resume() {
        let actions = ResourceActions::default();
        let names = |paused: bool| -> Vec<(String, bool)> {
            actions
                .list(&deployment(paused))
                .unwrap()
                .into_iter()
                .map(|a| (a.name, a.disabled))
                .collect()
        };
        assert_eq!(
            names(false),
            [
                ("pause".to_string(), false),
                ("restart".to_string(), false),
                ("resume".to_string(), true)
            ]
        );
        assert_eq!(names(true)[0], ("pause".to_string(), true));
    }

    #[test]
    fn restart_patches_only_the_template_annotation() {
        let ops = ResourceActions::default()
            .run(&deployment(false), "restart")
            .unwrap();
        let [Operation::Patch { patch, .. }] = ops.as_slice() else {
            panic!("{ops:?}");
        };
        let at = patch["spec"]["template"]["metadata"]["annotations"]
            ["kubectl.kubernetes.io/restartedAt"]
            .as_str()
            .unwrap();
        assert!(at.ends_with('Z') && at.len() == 20, "{at}");
        // Nothing else: not the replicas, not the empty args list.
        assert_eq!(
            patch,
            &json!({"spec": {"template": {"metadata": {"annotations": {"kubectl.kubernetes.io/restartedAt": at}}}}})
        );
    }

    #[test]
    fn resume_removes_paused_and_disabled_actions_are_refused() {
        let actions = ResourceActions::default();
        let ops = actions.run(&deployment(true), "resume").unwrap();
        assert!(
            matches!(&ops[..], [Operation::Patch { patch, .. }] if patch == &json!({"spec": {"paused": null}})),
            "{ops:?}"
        );
        assert!(matches!(
            actions.run(&deployment(false), "resume"),
            Err(ActionError::Disabled { .. })
        ));
        let e = actions.run(&deployment(false), "scale").unwrap_err();
        assert_eq!(
            e.to_string(),
            "apps/Deployment offers no action \"scale\"; it offers: pause, restart, resume"
        );
        let cm = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "x"}});
        assert!(matches!(
            actions.list(&cm),
            Err(ActionError::NoActions { .. })
        ));
    }

    #[test]
    fn patches_survive_the_round_trip_through_lua() {
        let live = json!({"apiVersion": "v1", "kind": "X", "metadata": {"name": "a", "creationTimestamp": null},
            "spec": {"args": ["a", "b"], "ratio": 1.0, "keep": []}});
        // What Lua gives back: nulls gone, 1.0 as 1, an emptied list as {}.
        let back = json!({"apiVersion": "v1", "kind": "X", "metadata": {"name": "a"},
            "spec": {"args": {}, "ratio": 1, "keep": {}}});
        assert_eq!(merge_patch(&live, &back), json!({"spec": {"args": []}}));
    }

    #[test]
    fn a_result_too_large_to_convert_is_refused() {
        let e = crate::lua::eval(
            "big",
            "local t = {} for i = 1, 60 do t = {t, t} end return t",
            &json!({}),
            LIMITS,
        )
        .unwrap_err();
        assert!(e.to_string().contains("more than"), "{e}");
    }

    #[test]
    fn custom_actions_from_argocd_cm_replace_shipped_ones_and_may_create() {
        let scripts = ActionScripts::from_yaml(
            "resource.customizations.actions.batch_CronJob",
            "discovery.lua: |\n  return {[\"create-job\"] = {}}\ndefinitions:\n- name: create-job\n  action.lua: |\n    local job = {apiVersion = \"batch/v1\", kind = \"Job\", metadata = {name = obj.metadata.name .. \"-manual\", namespace = obj.metadata.namespace}, spec = obj.spec.jobTemplate.spec}\n    return {{operation = \"create\", resource = job}}\n",
        )
        .unwrap();
        let actions = ResourceActions::new(vec![("batch".into(), "CronJob".into(), scripts)]);
        let cron = json!({"apiVersion": "batch/v1", "kind": "CronJob",
            "metadata": {"name": "report", "namespace": "jobs"},
            "spec": {"schedule": "0 * * * *", "jobTemplate": {"spec": {"template": {"spec": {"restartPolicy": "Never"}}}}}});
        let ops = actions.run(&cron, "create-job").unwrap();
        let [Operation::Create(job)] = ops.as_slice() else {
            panic!("{ops:?}");
        };
        assert_eq!(job["metadata"]["name"], "report-manual");
        assert_eq!(job["spec"]["template"]["spec"]["restartPolicy"], "Never");
        // A broken definition is named.
        let e = ActionScripts::from_yaml("k", "definitions:\n- name: x\n").unwrap_err();
        assert!(e.to_string().contains("discovery.lua"), "{e}");
        // A script error names the script.
        let broken = ActionScripts::from_yaml(
            "resource.customizations.actions.apps_Deployment",
            "discovery.lua: return {go = {}}\ndefinitions:\n- name: go\n  action.lua: error('no')\n",
        )
        .unwrap();
        let actions = ResourceActions::new(vec![("apps".into(), "Deployment".into(), broken)]);
        let e = actions.run(&deployment(false), "go").unwrap_err();
        assert!(
            e.to_string()
                .contains("resource.customizations.actions.apps_Deployment[go]"),
            "{e}"
        );
    }
}
