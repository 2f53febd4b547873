//! Berth's cluster side: what the API server serves ([`discovery`]), one
//! shared cache of live objects indexed by tracking ([`live`]), and the
//! calls that change the cluster ([`apply`]), and what must exist before
//! the controller starts ([`bootstrap`]). It decides nothing: the
//! engine plans, the controller drives.

pub mod apply;
pub mod bootstrap;
pub mod discovery;
pub mod live;
pub mod remote;

/// `Kind namespace/name` (or `Kind name` when cluster-scoped), as errors
/// and logs name an object.
pub fn describe(obj: &serde_json::Value) -> String {
    let kind = obj
        .get("kind")
        .and_then(serde_json::Value::as_str)
        .unwrap_or("object");
    let ns = obj
        .pointer("/metadata/namespace")
        .and_then(serde_json::Value::as_str)
        .unwrap_or_default();
    let name = obj
        .pointer("/metadata/name")
        .and_then(serde_json::Value::as_str)
        .unwrap_or_default();
    if ns.is_empty() {
        format!("{kind} {name}")
    } else {
        format!("{kind} {ns}/{name}")
    }
}
