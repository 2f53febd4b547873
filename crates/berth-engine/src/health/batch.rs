//! `batch/v1` Job.

use serde_json::Value;

use super::{Health, Status};

/// Job: Progressing until a Complete, Failed or Suspended condition.
pub(super) fn job(obj: &Value) -> Health {
    let (mut failed, mut complete, mut suspended) = (false, false, false);
    let (mut fail_message, mut message) = (String::new(), String::new());
    for c in obj
        .pointer("/status/conditions")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        let msg = c
            .get("message")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string();
        match c.get("type").and_then(Value::as_str) {
            Some("Failed") => {
                failed = true;
                complete = true;
                fail_message = msg;
            }
            Some("Complete") => {
                complete = true;
                message = msg;
            }
            Some("Suspended") => {
                complete = true;
                message = msg;
                suspended |= c.get("status").and_then(Value::as_str) == Some("True");
            }
            _ => {}
        }
    }
    if !complete {
        Health::new(Status::Progressing, message)
    } else if failed {
        Health::new(Status::Degraded, fail_message)
    } else if suspended {
        Health::new(Status::Suspended, fail_message)
    } else {
        Health::new(Status::Healthy, message)
    }
}
