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

/// CronJob, with the rules Argo CD 3.2 ships: a CronJob that has run is
/// Healthy unless its last scheduled run came after its last success and
/// nothing is running; suspension is Healthy, not Suspended, so a CronJob
/// kept paused on purpose does not mark its application Suspended.
pub(super) fn cron_job(obj: &Value) -> Health {
    if obj.pointer("/spec/suspend").and_then(Value::as_bool) == Some(true) {
        return Health::new(Status::Healthy, "CronJob is Suspended");
    }
    let Some(status) = obj.get("status").filter(|s| !s.is_null()) else {
        return Health::new(Status::Progressing, "Waiting for CronJob");
    };
    let last_schedule = status.get("lastScheduleTime").and_then(Value::as_str);
    let last_success = status.get("lastSuccessfulTime").and_then(Value::as_str);
    let active = status
        .get("active")
        .and_then(Value::as_array)
        .is_some_and(|a| !a.is_empty());
    match (last_schedule, last_success) {
        (None, _) => Health::new(Status::Healthy, "CronJob has not been scheduled yet"),
        (Some(_), None) => Health::new(
            Status::Healthy,
            "The CronJob never completed successfully. It may not be healthy",
        ),
        _ if active => Health::new(
            Status::Healthy,
            "The job is running. Its last execution may not have been successful",
        ),
        // RFC 3339 times in UTC compare correctly as text.
        (Some(scheduled), Some(succeeded)) if succeeded < scheduled => Health::new(
            Status::Degraded,
            "CronJob has not completed its last execution successfully",
        ),
        _ => Health::new(
            Status::Healthy,
            "CronJob has completed its last execution successfully",
        ),
    }
}
