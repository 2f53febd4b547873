//! What the controller needs before it starts: Argo CD's Application and
//! AppProject CRDs (installed when missing; an existing definition, such as
//! Argo CD's own, is left as it is), Berth's own CRDs (installed, and
//! replaced when the shipped definition changed), the control namespace,
//! and the `default` AppProject (created when missing, never overwritten).

use std::time::Duration;

use k8s_openapi::api::core::v1::Namespace;
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{ApiResource, DynamicObject, PostParams};
use kube::{Api, Client};
use serde_json::Value;

/// Bootstrap failed.
#[derive(Debug, thiserror::Error)]
pub enum BootstrapError {
    /// A shipped definition does not parse (a build defect).
    #[error("the shipped definition of {what} is invalid: {message}")]
    Definition {
        /// Which.
        what: String,
        /// Why.
        message: String,
    },
    /// The API server refused or failed a request.
    #[error("cannot {action}: {source}")]
    Api {
        /// What was being done.
        action: String,
        /// The client error.
        source: kube::Error,
    },
    /// A CRD did not become established in time.
    #[error("CustomResourceDefinition {name} was not established after {waited:?}: {reason}")]
    NotEstablished {
        /// The CRD.
        name: String,
        /// How long was waited.
        waited: Duration,
        /// Its last condition message.
        reason: String,
    },
}

/// What bootstrap created (empty when everything was there).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Installed {
    /// Objects created, as `Kind name`.
    pub created: Vec<String>,
}

fn api_err(action: impl Into<String>) -> impl FnOnce(kube::Error) -> BootstrapError {
    let action = action.into();
    move |source| BootstrapError::Api { action, source }
}

fn already_exists(e: &kube::Error) -> bool {
    matches!(e, kube::Error::Api(s) if s.code == 409)
}

fn argo_resource(kind: &str, plural: &str) -> ApiResource {
    ApiResource {
        group: "argoproj.io".into(),
        version: "v1alpha1".into(),
        api_version: "argoproj.io/v1alpha1".into(),
        kind: kind.into(),
        plural: plural.into(),
    }
}

/// Argo CD's Application, for dynamic clients.
pub fn application_resource() -> ApiResource {
    argo_resource("Application", "applications")
}

/// Argo CD's ApplicationSet, for dynamic clients.
pub fn applicationset_resource() -> ApiResource {
    argo_resource("ApplicationSet", "applicationsets")
}

/// Argo CD's AppProject, for dynamic clients.
pub fn appproject_resource() -> ApiResource {
    argo_resource("AppProject", "appprojects")
}

/// Berth's SyncRecord, for dynamic clients.
pub fn syncrecord_resource() -> ApiResource {
    ApiResource {
        group: berth_api::crds::BERTH_GROUP.into(),
        version: "v1alpha1".into(),
        api_version: format!("{}/v1alpha1", berth_api::crds::BERTH_GROUP),
        kind: "SyncRecord".into(),
        plural: "syncrecords".into(),
    }
}

/// Berth's ApprovalGate (cluster-scoped), for dynamic clients.
pub fn approvalgate_resource() -> ApiResource {
    berth_resource("ApprovalGate", "approvalgates")
}

/// Berth's ApprovalRecord (cluster-scoped), for dynamic clients.
pub fn approvalrecord_resource() -> ApiResource {
    berth_resource("ApprovalRecord", "approvalrecords")
}

/// Berth's SyncRequest, for dynamic clients.
pub fn syncrequest_resource() -> ApiResource {
    berth_resource("SyncRequest", "syncrequests")
}

fn berth_resource(kind: &str, plural: &str) -> ApiResource {
    ApiResource {
        group: berth_api::crds::BERTH_GROUP.into(),
        version: "v1alpha1".into(),
        api_version: format!("{}/v1alpha1", berth_api::crds::BERTH_GROUP),
        kind: kind.into(),
        plural: plural.into(),
    }
}

/// Berth's AuditEntry, for dynamic clients.
pub fn auditentry_resource() -> ApiResource {
    ApiResource {
        group: berth_api::crds::BERTH_GROUP.into(),
        version: "v1alpha1".into(),
        api_version: format!("{}/v1alpha1", berth_api::crds::BERTH_GROUP),
        kind: "AuditEntry".into(),
        plural: "auditentries".into(),
    }
}

/// Marks Berth's CRDs with the revision of their shipped definition.
const DEFINITION_ANNOTATION: &str = "berth.io/definition";

/// A stable hash of a definition (FNV-1a over its JSON).
fn definition_hash(def: &Value) -> String {
    let mut hash: u64 = 0xcbf29ce484222325;
    for b in def.to_string().bytes() {
        hash ^= u64::from(b);
        hash = hash.wrapping_mul(0x100000001b3);
    }
    format!("{hash:016x}")
}

/// Installs what is missing, in `namespace` (Argo CD's `argocd` by
/// default), and waits until the CRDs serve.
pub async fn install(client: &Client, namespace: &str) -> Result<Installed, BootstrapError> {
    let mut installed = Installed::default();
    let crds: Api<CustomResourceDefinition> = Api::all(client.clone());
    let definitions = berth_api::crds::crds().map_err(|e| BootstrapError::Definition {
        what: "the CRDs".into(),
        message: e.to_string(),
    })?;
    let mut names = Vec::new();
    for def in definitions {
        let ours = def.pointer("/spec/group").and_then(Value::as_str)
            == Some(berth_api::crds::BERTH_GROUP);
        let revision = definition_hash(&def);
        let mut def = def;
        if ours {
            def["metadata"]["annotations"][DEFINITION_ANNOTATION] = Value::String(revision.clone());
        }
        let crd: CustomResourceDefinition =
            serde_json::from_value(def).map_err(|e| BootstrapError::Definition {
                what: "a CRD".into(),
                message: e.to_string(),
            })?;
        let name = crd.metadata.name.clone().unwrap_or_default();
        names.push(name.clone());
        let existing = crds
            .get_opt(&name)
            .await
            .map_err(api_err(format!("read CustomResourceDefinition {name}")))?;
        // Berth's own definitions follow the binary (a new field in a
        // schema would otherwise be pruned); Argo CD's are never touched.
        if let Some(current) = &existing
            && ours
            && current
                .metadata
                .annotations
                .as_ref()
                .and_then(|a| a.get(DEFINITION_ANNOTATION))
                != Some(&revision)
        {
            let mut replaced = crd.clone();
            replaced.metadata.resource_version = current.metadata.resource_version.clone();
            match crds.replace(&name, &PostParams::default(), &replaced).await {
                Ok(_) => installed
                    .created
                    .push(format!("CustomResourceDefinition {name} (updated)")),
                // Another replica updated it meanwhile.
                Err(kube::Error::Api(s)) if s.code == 409 => {}
                Err(e) => {
                    return Err(api_err(format!("update CustomResourceDefinition {name}"))(
                        e,
                    ));
                }
            }
        }
        if existing.is_none() {
            match crds.create(&PostParams::default(), &crd).await {
                Ok(_) => installed
                    .created
                    .push(format!("CustomResourceDefinition {name}")),
                // Another replica was faster.
                Err(e) if already_exists(&e) => {}
                Err(e) => {
                    return Err(api_err(format!("create CustomResourceDefinition {name}"))(
                        e,
                    ));
                }
            }
        }
    }
    for name in &names {
        wait_established(&crds, name, Duration::from_secs(60)).await?;
    }

    let namespaces: Api<Namespace> = Api::all(client.clone());
    if namespaces
        .get_opt(namespace)
        .await
        .map_err(api_err(format!("read namespace {namespace}")))?
        .is_none()
    {
        let ns: Namespace = serde_json::from_value(
            serde_json::json!({"metadata": {"name": namespace}}),
        )
        .map_err(|e| BootstrapError::Definition {
            what: "the namespace".into(),
            message: e.to_string(),
        })?;
        match namespaces.create(&PostParams::default(), &ns).await {
            Ok(_) => installed.created.push(format!("Namespace {namespace}")),
            Err(e) if already_exists(&e) => {}
            Err(e) => return Err(api_err(format!("create namespace {namespace}"))(e)),
        }
    }

    let resource = appproject_resource();
    let projects: Api<DynamicObject> = Api::namespaced_with(client.clone(), namespace, &resource);
    if projects
        .get_opt("default")
        .await
        .map_err(api_err("read AppProject default"))?
        .is_none()
    {
        let project: DynamicObject =
            serde_json::from_value(berth_api::crds::default_project(namespace)).map_err(|e| {
                BootstrapError::Definition {
                    what: "the default AppProject".into(),
                    message: e.to_string(),
                }
            })?;
        match projects.create(&PostParams::default(), &project).await {
            Ok(_) => installed.created.push("AppProject default".into()),
            Err(e) if already_exists(&e) => {}
            Err(e) => return Err(api_err("create AppProject default")(e)),
        }
    }
    Ok(installed)
}

async fn wait_established(
    crds: &Api<CustomResourceDefinition>,
    name: &str,
    timeout: Duration,
) -> Result<(), BootstrapError> {
    let start = tokio::time::Instant::now();
    let mut reason = String::from("no status yet");
    loop {
        let crd = crds
            .get(name)
            .await
            .map_err(api_err(format!("read CustomResourceDefinition {name}")))?;
        let conditions = serde_json::to_value(&crd.status)
            .ok()
            .and_then(|s| s.get("conditions").cloned())
            .unwrap_or(Value::Null);
        if let Some(c) = conditions
            .as_array()
            .into_iter()
            .flatten()
            .find(|c| c["type"] == "Established")
        {
            if c["status"] == "True" {
                return Ok(());
            }
            reason = c["message"].as_str().unwrap_or_default().to_string();
        }
        if start.elapsed() >= timeout {
            return Err(BootstrapError::NotEstablished {
                name: name.to_string(),
                waited: timeout,
                reason,
            });
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
