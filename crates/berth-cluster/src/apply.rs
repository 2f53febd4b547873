//! Changing the cluster: server-side apply (also as a dry run, which is how
//! the controller learns the exact object a sync would produce) and delete.

use kube::api::{
    DeleteParams, DynamicObject, Patch, PatchParams, PostParams, Preconditions, PropagationPolicy,
};
use kube::{Api, Client};
use serde_json::Value;

use crate::describe;
use crate::discovery::ResourceTypes;

/// Managers whose fields Berth takes over: Argo CD's controller (its
/// client-side apply records `Update`, its server-side apply `Apply`) and
/// kubectl's client-side apply.
pub const TAKE_OVER_MANAGERS: [&str; 3] = [
    "argocd-controller",
    "kubectl-client-side-apply",
    "kubectl-last-applied",
];

/// `live`'s `managedFields` with the entries of [`TAKE_OVER_MANAGERS`]
/// (not of a subresource) merged into `manager`'s `Apply` entry; `None`
/// when there are none.
pub fn upgraded_fields(live: &Value, manager: &str) -> Option<Vec<Value>> {
    let entries = live.pointer("/metadata/managedFields")?.as_array()?;
    let taken = |e: &Value| {
        e.get("manager")
            .and_then(Value::as_str)
            .is_some_and(|m| TAKE_OVER_MANAGERS.contains(&m))
            && e.get("subresource")
                .and_then(Value::as_str)
                .is_none_or(str::is_empty)
    };
    if !entries.iter().any(taken) {
        return None;
    }
    fn merge(into: &mut Value, from: &Value) {
        match (into.as_object_mut(), from.as_object()) {
            (Some(a), Some(b)) => {
                for (k, v) in b {
                    match a.get_mut(k) {
                        Some(existing) => merge(existing, v),
                        None => {
                            a.insert(k.clone(), v.clone());
                        }
                    }
                }
            }
            _ => *into = from.clone(),
        }
    }
    let mine = |e: &Value| {
        e.get("manager").and_then(Value::as_str) == Some(manager)
            && e.get("operation").and_then(Value::as_str) == Some("Apply")
            && e.get("subresource")
                .and_then(Value::as_str)
                .is_none_or(str::is_empty)
    };
    let mut fields = entries
        .iter()
        .find(|e| mine(e))
        .and_then(|e| e.get("fieldsV1").cloned())
        .unwrap_or_else(|| serde_json::json!({}));
    for e in entries.iter().filter(|e| taken(e)) {
        if let Some(f) = e.get("fieldsV1") {
            merge(&mut fields, f);
        }
    }
    let api_version = live.get("apiVersion").cloned().unwrap_or(Value::Null);
    let time = entries
        .iter()
        .filter(|e| taken(e) || mine(e))
        .filter_map(|e| e.get("time").cloned())
        .next_back()
        .unwrap_or(Value::Null);
    let mut out: Vec<Value> = entries
        .iter()
        .filter(|e| !taken(e) && !mine(e))
        .cloned()
        .collect();
    out.push(serde_json::json!({
        "manager": manager, "operation": "Apply", "apiVersion": api_version,
        "time": time, "fieldsType": "FieldsV1", "fieldsV1": fields,
    }));
    Some(out)
}

/// Berth's field manager for server-side apply.
pub const FIELD_MANAGER: &str = "berth";

/// Why an object could not be applied or deleted. Each names the object.
#[derive(Debug, thiserror::Error)]
pub enum ApplyError {
    /// The manifest has no apiVersion, kind or name.
    #[error("{object}: {message}")]
    Malformed {
        /// The object.
        object: String,
        /// What is missing.
        message: String,
    },
    /// The cluster does not serve the type.
    #[error(
        "{object}: the cluster does not serve {api_version} {kind}; install its CustomResourceDefinition first or correct apiVersion"
    )]
    UnknownType {
        /// The object.
        object: String,
        /// Its apiVersion.
        api_version: String,
        /// Its kind.
        kind: String,
    },
    /// A namespaced object without a namespace.
    #[error(
        "{object}: no namespace; set metadata.namespace or the application's destination namespace"
    )]
    NoNamespace {
        /// The object.
        object: String,
    },
    /// Another field manager owns a field with another value.
    #[error(
        "{object}: conflict with another field manager: {message}; sync with Force or hand the field over"
    )]
    Conflict {
        /// The object.
        object: String,
        /// The API server's message (names the managers and fields).
        message: String,
    },
    /// The object to delete was replaced by another of the same name since
    /// it was read; it is left alone.
    #[error(
        "{object}: not deleted: it was deleted and created again since it was read ({message})"
    )]
    Replaced {
        /// The object.
        object: String,
        /// The API server's message.
        message: String,
    },
    /// The API server refused the object (validation, admission).
    #[error("{object}: refused by the API server ({code} {reason}): {message}")]
    Refused {
        /// The object.
        object: String,
        /// HTTP code.
        code: u16,
        /// Kubernetes reason.
        reason: String,
        /// The message.
        message: String,
    },
    /// The request failed otherwise (connection, timeout).
    #[error("{object}: {source}")]
    Api {
        /// The object.
        object: String,
        /// The client error.
        source: kube::Error,
    },
}

fn classify(object: String, e: kube::Error) -> ApplyError {
    match e {
        kube::Error::Api(status) if status.code == 409 && status.reason == "Conflict" => {
            ApplyError::Conflict {
                object,
                message: status.message,
            }
        }
        kube::Error::Api(status) => ApplyError::Refused {
            object,
            code: status.code,
            reason: status.reason,
            message: status.message,
        },
        source => ApplyError::Api { object, source },
    }
}

/// How to apply.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ApplyOptions {
    /// Take fields other managers own (`Force=true`).
    pub force: bool,
    /// Ask for the result without changing anything.
    pub dry_run: bool,
}

/// Applies and deletes as one field manager.
#[derive(Clone)]
pub struct Applier {
    client: Client,
    manager: String,
    /// Objects (by uid) whose field ownership was already checked for
    /// take-over: one read per object and process.
    checked: std::sync::Arc<std::sync::Mutex<std::collections::HashSet<String>>>,
}

impl std::fmt::Debug for Applier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Applier")
            .field("manager", &self.manager)
            .finish()
    }
}

/// How deleted objects' dependents go.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Propagation {
    /// Dependents first, then the object (Argo CD's default for prune).
    #[default]
    Foreground,
    /// The object now, dependents by the garbage collector.
    Background,
    /// Dependents are left.
    Orphan,
}

impl Applier {
    /// An applier using field manager `manager`.
    pub fn new(client: Client, manager: &str) -> Applier {
        Applier {
            client,
            manager: manager.to_string(),
            checked: std::sync::Arc::default(),
        }
    }

    /// The client it uses.
    pub fn client(&self) -> &Client {
        &self.client
    }

    fn api(
        &self,
        types: &ResourceTypes,
        obj: &Value,
    ) -> Result<(Api<DynamicObject>, String), ApplyError> {
        let object = describe(obj);
        let text = |p: &str| obj.pointer(p).and_then(Value::as_str).unwrap_or_default();
        let (api_version, kind, name, ns) = (
            text("/apiVersion"),
            text("/kind"),
            text("/metadata/name"),
            text("/metadata/namespace"),
        );
        if api_version.is_empty() || kind.is_empty() || name.is_empty() {
            return Err(ApplyError::Malformed {
                object,
                message: "apiVersion, kind and metadata.name are required".into(),
            });
        }
        let t = types
            .resolve(api_version, kind)
            .ok_or_else(|| ApplyError::UnknownType {
                object: object.clone(),
                api_version: api_version.into(),
                kind: kind.into(),
            })?;
        let api = if t.namespaced {
            if ns.is_empty() {
                return Err(ApplyError::NoNamespace { object });
            }
            Api::namespaced_with(self.client.clone(), ns, &t.resource)
        } else {
            Api::all_with(self.client.clone(), &t.resource)
        };
        Ok((api, name.to_string()))
    }

    /// Server-side applies `obj`; returns the object as the API server
    /// stored it (or would store it, for a dry run).
    pub async fn apply(
        &self,
        types: &ResourceTypes,
        obj: &Value,
        opts: ApplyOptions,
    ) -> Result<Value, ApplyError> {
        let (api, name) = self.api(types, obj)?;
        let mut params = PatchParams::apply(&self.manager);
        if opts.force {
            params = params.force();
        }
        if opts.dry_run {
            params = params.dry_run();
        }
        let stored = api
            .patch(&name, &params, &Patch::Apply(obj))
            .await
            .map_err(|e| classify(describe(obj), e))?;
        serde_json::to_value(stored).map_err(|e| ApplyError::Malformed {
            object: describe(obj),
            message: format!("the API server's answer is not an object: {e}"),
        })
    }

    /// `kubectl replace` (`Replace=true`): creates `obj` when it does not
    /// exist, otherwise replaces the live object whole (fields Git does not
    /// set are dropped, whoever set them), guarded by the live
    /// `resourceVersion` so a concurrent change is not overwritten blindly.
    /// Returns the stored object.
    pub async fn replace(
        &self,
        types: &ResourceTypes,
        obj: &Value,
        dry_run: bool,
    ) -> Result<Value, ApplyError> {
        let (api, name) = self.api(types, obj)?;
        let params = PostParams {
            dry_run,
            field_manager: Some(self.manager.clone()),
        };
        let malformed = |e: serde_json::Error| ApplyError::Malformed {
            object: describe(obj),
            message: format!("not a Kubernetes object: {e}"),
        };
        let mut desired: DynamicObject = serde_json::from_value(obj.clone()).map_err(malformed)?;
        let stored = match api
            .get_opt(&name)
            .await
            .map_err(|e| classify(describe(obj), e))?
        {
            None => api.create(&params, &desired).await,
            Some(live) => {
                desired.metadata.resource_version = live.metadata.resource_version.clone();
                api.replace(&name, &params, &desired).await
            }
        }
        .map_err(|e| classify(describe(obj), e))?;
        serde_json::to_value(stored).map_err(|e| ApplyError::Malformed {
            object: describe(obj),
            message: format!("the API server's answer is not an object: {e}"),
        })
    }

    /// Applies a JSON merge patch to the object `obj` names (a resource
    /// action's change), as this field manager; returns the stored object.
    pub async fn merge_patch(
        &self,
        types: &ResourceTypes,
        obj: &Value,
        patch: &Value,
    ) -> Result<Value, ApplyError> {
        let (api, name) = self.api(types, obj)?;
        let params = PatchParams {
            field_manager: Some(self.manager.clone()),
            ..PatchParams::default()
        };
        let stored = api
            .patch(&name, &params, &Patch::Merge(patch))
            .await
            .map_err(|e| classify(describe(obj), e))?;
        serde_json::to_value(stored).map_err(|e| ApplyError::Malformed {
            object: describe(obj),
            message: format!("the API server's answer is not an object: {e}"),
        })
    }

    /// Creates `obj` (a resource action's new object, such as a Job from a
    /// CronJob); returns the stored object.
    pub async fn create(&self, types: &ResourceTypes, obj: &Value) -> Result<Value, ApplyError> {
        let (api, _) = self.api(types, obj)?;
        let params = PostParams {
            dry_run: false,
            field_manager: Some(self.manager.clone()),
        };
        let desired: DynamicObject =
            serde_json::from_value(obj.clone()).map_err(|e| ApplyError::Malformed {
                object: describe(obj),
                message: format!("not a Kubernetes object: {e}"),
            })?;
        let stored = api
            .create(&params, &desired)
            .await
            .map_err(|e| classify(describe(obj), e))?;
        serde_json::to_value(stored).map_err(|e| ApplyError::Malformed {
            object: describe(obj),
            message: format!("the API server's answer is not an object: {e}"),
        })
    }

    /// Reads the live object a manifest (or reference) names; `None` when
    /// it does not exist.
    pub async fn get(
        &self,
        types: &ResourceTypes,
        obj: &Value,
    ) -> Result<Option<Value>, ApplyError> {
        let (api, name) = self.api(types, obj)?;
        match api.get_opt(&name).await {
            Ok(Some(o)) => serde_json::to_value(o)
                .map(Some)
                .map_err(|e| ApplyError::Malformed {
                    object: describe(obj),
                    message: format!("the API server's answer is not an object: {e}"),
                }),
            Ok(None) => Ok(None),
            Err(e) => Err(classify(describe(obj), e)),
        }
    }

    /// Takes over the fields that earlier appliers own in the live object
    /// `obj` (Argo CD's client-side and server-side managers, kubectl's
    /// client-side apply), as `kubectl apply --server-side` upgrades a
    /// client-side-applied object: their `managedFields` entries are merged
    /// into this applier's `Apply` entry, so a field later removed from
    /// Git is removed from the cluster by the next apply. Each object is
    /// checked once per process; returns whether anything changed.
    pub async fn take_over(&self, types: &ResourceTypes, obj: &Value) -> Result<bool, ApplyError> {
        // An object not known yet (not tracked: applied by someone else)
        // is checked by identity.
        let key = obj
            .pointer("/metadata/uid")
            .and_then(Value::as_str)
            .map(String::from)
            .unwrap_or_else(|| describe(obj));
        let uid = key.as_str();
        if !self
            .checked
            .lock()
            .map(|mut c| c.insert(key.clone()))
            .unwrap_or(false)
        {
            return Ok(false);
        }
        let Some(live) = self.get(types, obj).await? else {
            return Ok(false);
        };
        let Some(fields) = upgraded_fields(&live, &self.manager) else {
            return Ok(false);
        };
        let (api, name) = self.api(types, obj)?;
        let patch: json_patch::Patch = serde_json::from_value(serde_json::json!([
            {"op": "test", "path": "/metadata/resourceVersion", "value": live.pointer("/metadata/resourceVersion")},
            {"op": "replace", "path": "/metadata/managedFields", "value": fields},
        ]))
        .map_err(|e| ApplyError::Malformed {
            object: describe(obj),
            message: e.to_string(),
        })?;
        match api
            .patch(&name, &PatchParams::default(), &Patch::Json::<()>(patch))
            .await
        {
            Ok(_) => Ok(true),
            // Changed meanwhile: checked again at the next sync.
            Err(kube::Error::Api(s)) if s.code == 409 || s.code == 422 => {
                if let Ok(mut c) = self.checked.lock() {
                    c.remove(uid);
                }
                Ok(false)
            }
            Err(e) => Err(classify(describe(obj), e)),
        }
    }

    /// Deletes the live object `obj`, only if it is still the same object
    /// (its `uid`): a prune never removes an object that was deleted and
    /// created again by someone else in between. An object already gone is
    /// not an error.
    pub async fn delete(
        &self,
        types: &ResourceTypes,
        obj: &Value,
        propagation: Propagation,
    ) -> Result<(), ApplyError> {
        let (api, name) = self.api(types, obj)?;
        let params = DeleteParams {
            propagation_policy: Some(match propagation {
                Propagation::Foreground => PropagationPolicy::Foreground,
                Propagation::Background => PropagationPolicy::Background,
                Propagation::Orphan => PropagationPolicy::Orphan,
            }),
            preconditions: obj
                .pointer("/metadata/uid")
                .and_then(Value::as_str)
                .map(|uid| Preconditions {
                    uid: Some(uid.to_string()),
                    resource_version: None,
                }),
            ..DeleteParams::default()
        };
        match api.delete(&name, &params).await {
            Ok(_) => Ok(()),
            Err(kube::Error::Api(status)) if status.code == 404 => Ok(()),
            Err(kube::Error::Api(status)) if status.code == 409 => Err(ApplyError::Replaced {
                object: describe(obj),
                message: status.message,
            }),
            Err(e) => Err(classify(describe(obj), e)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn earlier_appliers_fields_become_berths() {
        let live = json!({"apiVersion": "v1", "metadata": {"managedFields": [
            {"manager": "kubectl-client-side-apply", "operation": "Update", "apiVersion": "v1",
             "time": "2026-01-01T00:00:00Z", "fieldsType": "FieldsV1",
             "fieldsV1": {"f:data": {".": {}, "f:a": {}, "f:b": {}}}},
            {"manager": "berth", "operation": "Apply", "apiVersion": "v1",
             "time": "2026-01-02T00:00:00Z", "fieldsType": "FieldsV1",
             "fieldsV1": {"f:data": {"f:a": {}}, "f:metadata": {"f:annotations": {"f:x": {}}}}},
            {"manager": "kubectl-edit", "operation": "Update", "apiVersion": "v1",
             "fieldsType": "FieldsV1", "fieldsV1": {"f:data": {"f:c": {}}}},
            {"manager": "argocd-controller", "operation": "Update", "apiVersion": "v1",
             "subresource": "status", "fieldsType": "FieldsV1", "fieldsV1": {"f:status": {}}},
        ]}});
        let out = upgraded_fields(&live, "berth").unwrap();
        let managers: Vec<&str> = out.iter().map(|e| e["manager"].as_str().unwrap()).collect();
        assert_eq!(
            managers,
            ["kubectl-edit", "argocd-controller", "berth"],
            "a user's edit and a subresource stay"
        );
        let mine = &out[2];
        assert_eq!(mine["operation"], "Apply");
        assert_eq!(
            mine["fieldsV1"],
            json!({"f:data": {"f:a": {}, ".": {}, "f:b": {}}, "f:metadata": {"f:annotations": {"f:x": {}}}})
        );
        let plain =
            json!({"metadata": {"managedFields": [{"manager": "berth", "operation": "Apply"}]}});
        assert!(
            upgraded_fields(&plain, "berth").is_none(),
            "nothing to take over"
        );
    }
}
