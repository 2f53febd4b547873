//! Changing the cluster: server-side apply (also as a dry run, which is how
//! the controller learns the exact object a sync would produce) and delete.

use kube::api::{
    DeleteParams, DynamicObject, Patch, PatchParams, PostParams, Preconditions, PropagationPolicy,
};
use kube::{Api, Client};
use serde_json::Value;

use crate::describe;
use crate::discovery::ResourceTypes;

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
