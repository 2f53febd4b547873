//! What the API server serves: every resource type with its scope and
//! verbs, from aggregated discovery (one request per API group list).
//! Refreshed when CRDs or API services change.

use std::collections::HashMap;

use kube::Client;
use kube::discovery::{ApiCapabilities, ApiResource, Discovery, Scope};

/// Discovery failed.
#[derive(Debug, thiserror::Error)]
pub enum DiscoveryError {
    /// The API server could not be asked.
    #[error("cannot discover the API server's resource types: {0}")]
    Api(#[from] kube::Error),
}

/// One served resource type.
#[derive(Debug, Clone)]
pub struct ResourceType {
    /// Group, version, kind and plural.
    pub resource: ApiResource,
    /// Whether objects live in namespaces.
    pub namespaced: bool,
    /// The verbs the API server allows on it (`list`, `watch`, `patch`...).
    pub verbs: Vec<String>,
}

impl ResourceType {
    /// Whether it can be listed and watched.
    pub fn watchable(&self) -> bool {
        ["list", "watch"]
            .iter()
            .all(|v| self.verbs.iter().any(|x| x == v))
    }
}

/// The resource types of one cluster.
#[derive(Debug, Clone, Default)]
pub struct ResourceTypes {
    /// By (apiVersion, kind): every served version.
    by_version: HashMap<(String, String), ResourceType>,
    /// By (group, kind): the group's preferred version.
    preferred: HashMap<(String, String), ResourceType>,
}

fn entry(resource: ApiResource, caps: ApiCapabilities) -> ResourceType {
    ResourceType {
        resource,
        namespaced: caps.scope == Scope::Namespaced,
        verbs: caps.operations,
    }
}

impl ResourceTypes {
    /// Asks the API server.
    pub async fn discover(client: &Client) -> Result<ResourceTypes, DiscoveryError> {
        let discovery = Discovery::new(client.clone()).run_aggregated().await?;
        let mut types = ResourceTypes::default();
        for group in discovery.groups() {
            for version in group.versions() {
                for (ar, caps) in group.versioned_resources(version) {
                    types
                        .by_version
                        .insert((ar.api_version.clone(), ar.kind.clone()), entry(ar, caps));
                }
            }
            for (ar, caps) in group.recommended_resources() {
                types
                    .preferred
                    .insert((ar.group.clone(), ar.kind.clone()), entry(ar, caps));
            }
        }
        Ok(types)
    }

    /// The type for a manifest's `apiVersion` and `kind`, if served.
    pub fn resolve(&self, api_version: &str, kind: &str) -> Option<&ResourceType> {
        self.by_version
            .get(&(api_version.to_string(), kind.to_string()))
    }

    /// The preferred version of a group and kind.
    pub fn preferred(&self, group: &str, kind: &str) -> Option<&ResourceType> {
        self.preferred.get(&(group.to_string(), kind.to_string()))
    }

    /// One type per group and kind (the preferred version), for watching.
    pub fn kinds(&self) -> impl Iterator<Item = &ResourceType> {
        self.preferred.values()
    }

    /// Whether a group and kind is namespaced, when served.
    pub fn namespaced(&self, group: &str, kind: &str) -> Option<bool> {
        self.preferred(group, kind).map(|t| t.namespaced)
    }

    /// How many (version, kind) pairs are served.
    pub fn len(&self) -> usize {
        self.by_version.len()
    }

    /// Whether nothing is served (never true for a working API server).
    pub fn is_empty(&self) -> bool {
        self.by_version.is_empty()
    }
}
