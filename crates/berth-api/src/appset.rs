//! How an ApplicationSet's status reads at a glance, for lists.

use serde_json::Value;

/// Where a set stands, from Argo CD's status conditions.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SetState {
    /// Every Application it declares is written.
    UpToDate,
    /// It reports an error (the message).
    Error(String),
    /// Not generated yet.
    Pending,
}

impl SetState {
    /// From an ApplicationSet object (JSON).
    pub fn of(set: &Value) -> SetState {
        let condition = |kind: &str| {
            set.pointer("/status/conditions")
                .and_then(Value::as_array)
                .and_then(|c| c.iter().find(|c| c["type"] == kind))
        };
        if let Some(e) = condition("ErrorOccurred").filter(|c| c["status"] == "True") {
            return SetState::Error(e["message"].as_str().unwrap_or_default().to_string());
        }
        if condition("ResourcesUpToDate").is_some_and(|c| c["status"] == "True") {
            return SetState::UpToDate;
        }
        SetState::Pending
    }

    /// `UpToDate`, `Error` or `Pending`.
    pub fn label(&self) -> &'static str {
        match self {
            SetState::UpToDate => "UpToDate",
            SetState::Error(_) => "Error",
            SetState::Pending => "Pending",
        }
    }
}

/// The kinds of a set's generators (`list`, `git`, ...), in order.
pub fn generator_kinds(set: &Value) -> Vec<String> {
    set.pointer("/spec/generators")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|g| {
            g.as_object()?
                .keys()
                .find(|k| k.as_str() != "template")
                .cloned()
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn states_follow_the_conditions() {
        let with = |c: Value| json!({"spec": {"generators": [{"list": {}, "template": {}}]}, "status": {"conditions": c}});
        assert_eq!(SetState::of(&json!({})), SetState::Pending);
        assert_eq!(
            SetState::of(&with(
                json!([{"type": "ResourcesUpToDate", "status": "True"}])
            )),
            SetState::UpToDate
        );
        assert_eq!(
            SetState::of(&with(
                json!([{"type": "ErrorOccurred", "status": "True", "message": "bad"}])
            )),
            SetState::Error("bad".into())
        );
        assert_eq!(generator_kinds(&with(json!([]))), ["list"]);
    }
}
