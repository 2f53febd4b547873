//! Resource tracking as Argo CD does it: which application an object belongs
//! to is written on the object, by default in the annotation
//! `argocd.argoproj.io/tracking-id` with the value
//! `<app>:<group>/<kind>:<namespace>/<name>`, or in the label
//! `app.kubernetes.io/instance`, or both.

use serde_json::Value;

/// The tracking annotation.
pub const TRACKING_ID_ANNOTATION: &str = "argocd.argoproj.io/tracking-id";
/// The default instance label (`application.instanceLabelKey` changes it).
pub const INSTANCE_LABEL: &str = "app.kubernetes.io/instance";

/// `application.resourceTrackingMethod`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Method {
    /// The annotation only (Argo CD 3's default).
    #[default]
    Annotation,
    /// The label only.
    Label,
    /// Both.
    AnnotationAndLabel,
}

impl Method {
    /// Parses Argo CD's setting (`annotation`, `label`, `annotation+label`).
    pub fn parse(s: &str) -> Option<Method> {
        match s.trim() {
            "" | "annotation" => Some(Method::Annotation),
            "label" => Some(Method::Label),
            "annotation+label" => Some(Method::AnnotationAndLabel),
            _ => None,
        }
    }
}

/// The tracking id of `obj` for application `app` (already qualified with
/// its namespace when not in the control namespace, `ns_name`).
pub fn tracking_id(app: &str, obj: &Value) -> String {
    let (group, kind) = crate::kinds::group_kind(obj);
    let ns = obj
        .pointer("/metadata/namespace")
        .and_then(Value::as_str)
        .unwrap_or_default();
    let name = obj
        .pointer("/metadata/name")
        .and_then(Value::as_str)
        .unwrap_or_default();
    format!("{app}:{group}/{kind}:{ns}/{name}")
}

/// Marks `obj` as belonging to `app` with `method`.
pub fn mark(obj: &mut Value, app: &str, method: Method, instance_label: &str) {
    let id = tracking_id(app, obj);
    let Some(meta) = obj.get_mut("metadata").and_then(Value::as_object_mut) else {
        return;
    };
    let mut put = |field: &str, key: &str, value: &str| {
        let entry = meta
            .entry(field.to_string())
            .or_insert_with(|| Value::Object(Default::default()));
        if !entry.is_object() {
            *entry = Value::Object(Default::default());
        }
        if let Some(map) = entry.as_object_mut() {
            map.insert(key.to_string(), Value::String(value.to_string()));
        }
    };
    if matches!(method, Method::Annotation | Method::AnnotationAndLabel) {
        put("annotations", TRACKING_ID_ANNOTATION, &id);
    }
    if matches!(method, Method::Label | Method::AnnotationAndLabel) {
        put("labels", instance_label, app);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn tracking_ids_follow_argo_cd_format() {
        let deploy = json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web", "namespace": "prod"}});
        assert_eq!(
            tracking_id("shop", &deploy),
            "shop:apps/Deployment:prod/web"
        );
        let ns = json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "prod"}});
        assert_eq!(tracking_id("shop", &ns), "shop:/Namespace:/prod");
    }

    #[test]
    fn marking_by_method() {
        let base = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c", "namespace": "n", "labels": {"a": "b"}}});
        let mut a = base.clone();
        mark(&mut a, "app", Method::Annotation, INSTANCE_LABEL);
        assert_eq!(
            a["metadata"]["annotations"][TRACKING_ID_ANNOTATION],
            "app:/ConfigMap:n/c"
        );
        assert!(a["metadata"]["labels"].get(INSTANCE_LABEL).is_none());
        let mut b = base.clone();
        mark(&mut b, "app", Method::AnnotationAndLabel, INSTANCE_LABEL);
        assert_eq!(b["metadata"]["labels"][INSTANCE_LABEL], "app");
        assert_eq!(b["metadata"]["labels"]["a"], "b", "other labels kept");
        assert_eq!(
            Method::parse("annotation+label"),
            Some(Method::AnnotationAndLabel)
        );
        assert_eq!(Method::parse("bogus"), None);
    }
}
