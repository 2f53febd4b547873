//! Core (`v1`) kinds: Pod, Service, PersistentVolumeClaim.

use serde_json::Value;

use super::{Health, Status, condition, text};

fn statuses<'a>(obj: &'a Value, field: &str) -> impl Iterator<Item = &'a Value> {
    obj.pointer(&format!("/status/{field}"))
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
}

/// Pod.
pub(super) fn pod(obj: &Value) -> Health {
    let message = text(obj, "/status/message").to_string();
    let policy = match text(obj, "/spec/restartPolicy") {
        "" => "Always",
        p => p,
    };
    if policy == "Always" {
        // Containers stuck restarting or unable to start: ErrImagePull,
        // ImagePullBackOff, CrashLoopBackOff, CreateContainerConfigError...
        let stuck: Vec<&str> = statuses(obj, "containerStatuses")
            .filter_map(|c| c.pointer("/state/waiting"))
            .filter(|w| {
                let reason = w.get("reason").and_then(Value::as_str).unwrap_or_default();
                reason.starts_with("Err")
                    || reason.ends_with("Error")
                    || reason.ends_with("BackOff")
            })
            .map(|w| w.get("message").and_then(Value::as_str).unwrap_or_default())
            .collect();
        if !stuck.is_empty() {
            return Health::new(Status::Degraded, stuck.join(", "));
        }
    }
    match text(obj, "/status/phase") {
        "Pending" => Health::new(Status::Progressing, message),
        "Succeeded" => Health::new(Status::Healthy, message),
        "Failed" => {
            if !message.is_empty() {
                return Health::new(Status::Degraded, message);
            }
            let failure = statuses(obj, "initContainerStatuses")
                .chain(statuses(obj, "containerStatuses"))
                .find_map(|c| {
                    let t = c.pointer("/state/terminated")?;
                    let msg = t.get("message").and_then(Value::as_str).unwrap_or_default();
                    let code = t.get("exitCode").and_then(Value::as_i64).unwrap_or(0);
                    if !msg.is_empty() {
                        Some(msg.to_string())
                    } else if t.get("reason").and_then(Value::as_str) == Some("OOMKilled") {
                        Some("OOMKilled".to_string())
                    } else if code != 0 {
                        Some(format!(
                            "container {:?} failed with exit code {code}",
                            c.get("name").and_then(Value::as_str).unwrap_or_default()
                        ))
                    } else {
                        None
                    }
                });
            Health::new(Status::Degraded, failure.unwrap_or_default())
        }
        "Running" => match policy {
            "Always" => {
                let ready = condition(obj, "Ready")
                    .and_then(|c| c.get("status"))
                    .and_then(Value::as_str)
                    == Some("True");
                if ready {
                    return Health::new(Status::Healthy, message);
                }
                if statuses(obj, "containerStatuses").any(|c| {
                    c.pointer("/lastState/terminated")
                        .is_some_and(Value::is_object)
                }) {
                    return Health::new(Status::Degraded, message);
                }
                Health::new(Status::Progressing, message)
            }
            // Pods that run to completion (usually hooks) are not healthy
            // until they have completed.
            _ => Health::new(Status::Progressing, message),
        },
        _ => Health::new(Status::Unknown, message),
    }
}

/// Service: a LoadBalancer is Progressing until it has an ingress.
pub(super) fn service(obj: &Value) -> Health {
    if text(obj, "/spec/type") == "LoadBalancer" {
        let has_ingress = obj
            .pointer("/status/loadBalancer/ingress")
            .and_then(Value::as_array)
            .is_some_and(|a| !a.is_empty());
        if !has_ingress {
            return Health::new(Status::Progressing, "");
        }
    }
    Health::new(Status::Healthy, "")
}

/// Ingress: Progressing until the load balancer reports an address.
pub(super) fn ingress(obj: &Value) -> Health {
    let has_ingress = obj
        .pointer("/status/loadBalancer/ingress")
        .and_then(Value::as_array)
        .is_some_and(|a| !a.is_empty());
    Health::new(
        if has_ingress {
            Status::Healthy
        } else {
            Status::Progressing
        },
        "",
    )
}

/// APIService: its `Available` condition decides.
pub(super) fn api_service(obj: &Value) -> Health {
    match condition(obj, "Available") {
        Some(c) => {
            let field = |k: &str| c.get(k).and_then(Value::as_str).unwrap_or_default();
            let message = format!("{}: {}", field("reason"), field("message"));
            let status = if field("status") == "True" {
                Status::Healthy
            } else {
                Status::Progressing
            };
            Health::new(status, message)
        }
        None => Health::new(Status::Progressing, "Waiting to be processed"),
    }
}

/// PersistentVolumeClaim.
pub(super) fn pvc(obj: &Value) -> Health {
    match text(obj, "/status/phase") {
        "Lost" => Health::new(Status::Degraded, ""),
        "Pending" => Health::new(Status::Progressing, ""),
        "Bound" => Health::new(Status::Healthy, ""),
        _ => Health::new(Status::Unknown, ""),
    }
}
