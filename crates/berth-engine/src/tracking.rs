//! Which application a live object belongs to, read the way Argo CD 3 reads
//! it, and which objects only look like an application's.
//!
//! - Annotation tracking (the default): the tracking id must name the
//!   object itself (its group, kind, namespace and name). An id that names
//!   another object was copied along with the manifest (for example by a
//!   controller cloning a Secret) and the object is not the app's: it is
//!   never compared as the app's and never pruned.
//! - Label tracking: the instance label holds the app's name; nothing more
//!   can be checked.
//! - An installation ID (`installationID` in `argocd-cm`) lets several
//!   controllers share a cluster: an object is tracked only when its
//!   `argocd.argoproj.io/installation-id` annotation equals it, and, with no
//!   ID configured, only when it has none.

use std::collections::BTreeMap;

use berth_api::tracking::{INSTANCE_LABEL, Method, TRACKING_ID_ANNOTATION};
use serde::Serialize;
use serde_json::Value;

/// The annotation that carries the installation ID.
pub const INSTALLATION_ID_ANNOTATION: &str = "argocd.argoproj.io/installation-id";

/// How a controller reads tracking.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tracking {
    /// `application.resourceTrackingMethod`.
    pub method: Method,
    /// `application.instanceLabelKey`.
    pub instance_label: String,
    /// `installationID`, empty when not set.
    pub installation_id: String,
}

impl Default for Tracking {
    fn default() -> Tracking {
        Tracking {
            method: Method::Annotation,
            instance_label: INSTANCE_LABEL.to_string(),
            installation_id: String::new(),
        }
    }
}

/// What an object's tracking says.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "state", rename_all = "camelCase")]
pub enum Owner {
    /// Not tracked by any application.
    None,
    /// Belongs to this application (its qualified name).
    App {
        /// The application.
        app: String,
    },
    /// Carries an application's tracking but is not that application's:
    /// the id names another object, or the installation ID differs.
    LooksLike {
        /// The application named on the object.
        app: String,
        /// Why it is not taken as the app's.
        reason: String,
    },
}

fn annotation<'a>(obj: &'a Value, key: &str) -> Option<&'a str> {
    obj.pointer("/metadata/annotations")?.get(key)?.as_str()
}

fn label<'a>(obj: &'a Value, key: &str) -> Option<&'a str> {
    obj.pointer("/metadata/labels")?.get(key)?.as_str()
}

impl Tracking {
    /// The application a live object belongs to.
    pub fn owner(&self, obj: &Value) -> Owner {
        let claimed = match self.method {
            Method::Label => label(obj, &self.instance_label).map(|app| (app.to_string(), None)),
            Method::Annotation | Method::AnnotationAndLabel => {
                annotation(obj, TRACKING_ID_ANNOTATION).map(|id| match parse_id(id) {
                    Some(parsed) => (parsed.app.clone(), Some(parsed)),
                    None => (id.to_string(), None),
                })
            }
        };
        let Some((app, parsed)) = claimed else {
            return Owner::None;
        };
        let installation = annotation(obj, INSTALLATION_ID_ANNOTATION).unwrap_or_default();
        if installation != self.installation_id {
            return Owner::LooksLike {
                app,
                reason: if self.installation_id.is_empty() {
                    format!("installation-id {installation:?} belongs to another installation")
                } else {
                    format!(
                        "installation-id {installation:?} is not this installation's {:?}",
                        self.installation_id
                    )
                },
            };
        }
        if self.method != Method::Label {
            let Some(id) = parsed else {
                return Owner::LooksLike {
                    app,
                    reason: "tracking-id is not <app>:<group>/<kind>:<namespace>/<name>".into(),
                };
            };
            let (group, kind) = berth_api::kinds::group_kind(obj);
            let ns = obj
                .pointer("/metadata/namespace")
                .and_then(Value::as_str)
                .unwrap_or_default();
            let name = obj
                .pointer("/metadata/name")
                .and_then(Value::as_str)
                .unwrap_or_default();
            // Argo CD compares the group, kind and name, and the namespace
            // only for namespaced objects.
            let same = id.group == group
                && id.kind == kind
                && id.name == name
                && (ns.is_empty() || id.namespace == ns);
            if !same {
                return Owner::LooksLike {
                    app: id.app,
                    reason: format!(
                        "tracking-id names {}/{} {}/{}, not this object: it was copied",
                        id.group, id.kind, id.namespace, id.name
                    ),
                };
            }
            return Owner::App { app: id.app };
        }
        Owner::App { app }
    }
}

/// A parsed tracking id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TrackingId {
    /// Application (qualified with its namespace as `ns_app` when outside
    /// the control namespace).
    pub app: String,
    /// API group.
    pub group: String,
    /// Kind.
    pub kind: String,
    /// Namespace, empty for cluster-scoped objects.
    pub namespace: String,
    /// Name.
    pub name: String,
}

/// Parses `<app>:<group>/<kind>:<namespace>/<name>`.
pub fn parse_id(id: &str) -> Option<TrackingId> {
    let (app, rest) = id.split_once(':')?;
    let (gk, nn) = rest.split_once(':')?;
    let (group, kind) = gk.split_once('/')?;
    let (namespace, name) = nn.split_once('/')?;
    if app.is_empty() || kind.is_empty() || name.is_empty() {
        return None;
    }
    Some(TrackingId {
        app: app.into(),
        group: group.into(),
        kind: kind.into(),
        namespace: namespace.into(),
        name: name.into(),
    })
}

/// An object that two or more applications' desired states contain.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SharedResource {
    /// `group/kind/namespace/name`.
    pub object: String,
    /// The applications, sorted.
    pub apps: Vec<String>,
}

impl SharedResource {
    /// Argo CD's `SharedResourceWarning` message, from `app`'s point of view.
    pub fn warning(&self, app: &str, kind: &str, name: &str) -> String {
        let others: Vec<&str> = self
            .apps
            .iter()
            .map(String::as_str)
            .filter(|a| *a != app)
            .collect();
        format!(
            "{kind}/{name} is part of applications {app} and {}",
            others.join(", ").replace('_', "/")
        )
    }
}

/// Finds objects that several applications want: input is each app's name
/// with its desired objects.
pub fn shared_resources<'a>(
    apps: impl IntoIterator<Item = (&'a str, &'a [Value])>,
) -> Vec<SharedResource> {
    let mut by_object: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for (app, objects) in apps {
        for obj in objects {
            let (group, kind) = berth_api::kinds::group_kind(obj);
            let ns = obj
                .pointer("/metadata/namespace")
                .and_then(Value::as_str)
                .unwrap_or_default();
            let name = obj
                .pointer("/metadata/name")
                .and_then(Value::as_str)
                .unwrap_or_default();
            let entry = by_object
                .entry(format!("{group}/{kind}/{ns}/{name}"))
                .or_default();
            if !entry.iter().any(|a| a == app) {
                entry.push(app.to_string());
            }
        }
    }
    by_object
        .into_iter()
        .filter(|(_, apps)| apps.len() > 1)
        .map(|(object, mut apps)| {
            apps.sort();
            SharedResource { object, apps }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn cm(annotations: Value, labels: Value) -> Value {
        json!({"apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": "c", "namespace": "prod", "annotations": annotations, "labels": labels}})
    }

    #[test]
    fn tracking_table() {
        let annotation = Tracking::default();
        let label = Tracking {
            method: Method::Label,
            ..Tracking::default()
        };
        let with_id = Tracking {
            installation_id: "east".into(),
            ..Tracking::default()
        };
        let own = json!({"argocd.argoproj.io/tracking-id": "shop:/ConfigMap:prod/c"});
        let cases: Vec<(&str, &Tracking, Value, &str)> = vec![
            (
                "annotation names the object",
                &annotation,
                cm(own.clone(), json!({})),
                "app shop",
            ),
            ("no tracking", &annotation, cm(json!({}), json!({})), "none"),
            (
                "annotation copied from another object",
                &annotation,
                cm(
                    json!({"argocd.argoproj.io/tracking-id": "shop:/ConfigMap:prod/original"}),
                    json!({}),
                ),
                "looks shop",
            ),
            (
                "annotation for another kind",
                &annotation,
                cm(
                    json!({"argocd.argoproj.io/tracking-id": "shop:/Secret:prod/c"}),
                    json!({}),
                ),
                "looks shop",
            ),
            (
                "annotation that is not an id",
                &annotation,
                cm(
                    json!({"argocd.argoproj.io/tracking-id": "garbage"}),
                    json!({}),
                ),
                "looks garbage",
            ),
            (
                "label only, annotation method",
                &annotation,
                cm(json!({}), json!({"app.kubernetes.io/instance": "shop"})),
                "none",
            ),
            (
                "label method",
                &label,
                cm(json!({}), json!({"app.kubernetes.io/instance": "shop"})),
                "app shop",
            ),
            (
                "label method ignores the annotation",
                &label,
                cm(own.clone(), json!({})),
                "none",
            ),
            (
                "installation ID missing on the object",
                &with_id,
                cm(own.clone(), json!({})),
                "looks shop",
            ),
            (
                "installation ID matches",
                &with_id,
                cm(
                    json!({"argocd.argoproj.io/tracking-id": "shop:/ConfigMap:prod/c", "argocd.argoproj.io/installation-id": "east"}),
                    json!({}),
                ),
                "app shop",
            ),
            (
                "installation ID on the object, none configured",
                &annotation,
                cm(
                    json!({"argocd.argoproj.io/tracking-id": "shop:/ConfigMap:prod/c", "argocd.argoproj.io/installation-id": "west"}),
                    json!({}),
                ),
                "looks shop",
            ),
        ];
        for (name, tracking, obj, want) in cases {
            let got = match tracking.owner(&obj) {
                Owner::None => "none".to_string(),
                Owner::App { app } => format!("app {app}"),
                Owner::LooksLike { app, .. } => format!("looks {app}"),
            };
            assert_eq!(got, want, "{name}");
        }
    }

    #[test]
    fn cluster_scoped_objects_match_without_namespace() {
        let ns = json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "prod",
            "annotations": {"argocd.argoproj.io/tracking-id": "shop:/Namespace:/prod"}}});
        assert_eq!(
            Tracking::default().owner(&ns),
            Owner::App { app: "shop".into() }
        );
    }

    #[test]
    fn shared_resources_and_warning() {
        let a = vec![
            json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c", "namespace": "n"}}),
        ];
        let b = vec![
            json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c", "namespace": "n"}}),
            json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "d", "namespace": "n"}}),
        ];
        let shared = shared_resources([("shop", a.as_slice()), ("team_billing", b.as_slice())]);
        assert_eq!(shared.len(), 1);
        assert_eq!(shared[0].object, "/ConfigMap/n/c");
        assert_eq!(
            shared[0].warning("shop", "ConfigMap", "c"),
            "ConfigMap/c is part of applications shop and team/billing"
        );
    }
}
